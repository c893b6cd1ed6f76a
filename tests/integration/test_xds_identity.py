"""test_xds_identity.py: an identity comes from what a caller proves, never from
what it claims (docs/xds-server.md, "Trust model").

Real xds-server, real callers written elsewhere (@grpc/grpc-js with Envoy's
own .proto files: tests/node/ads_caller.js), certificates made at test time.
The server runs with --serve-workload-keys, its most exposed mode: the SDS
Secret "default" then carries a private key, the prize an attacker wants.

The attacker, Bob, holds a valid bootstrap certificate of his own
(spiffe://cluster.local/ns/b/sa/bob) and tries to get Alice's certificate and
key: by claiming her node id, her namespace and service account in the node
metadata, a node id she holds, and with certificates the server must not
take as proof."""

import json
import os
import shutil
import subprocess
import time
import unittest

from tests.lib import harness
from tests.lib.control_plane import XDS_SERVER_NAME, XdsServer
from tests.lib.node import node_script
from tests.lib.support import Process, wait_until

ALICE = "spiffe://cluster.local/ns/a/sa/alice"
BOB = "spiffe://cluster.local/ns/b/sa/bob"

OK, UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE = 0, 16, 7, 14


class IdentityCase(harness.IntegrationTest):
    """IdentityCase: the certificates and the callers; no tests of its own."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pki = cls.pki
        cls.xds_tls = pki.issue("xds-server", cn=XDS_SERVER_NAME, dns=[XDS_SERVER_NAME],
                                ips=["127.0.0.1"], server=True)
        cls.bootstrap_ca_dir = pki.make_ca("bootstrap-ca", "bootstrap-ca")
        cls.bootstrap_ca = os.path.join(cls.bootstrap_ca_dir, "ca.crt")

        def bootstrap(name, *uris):
            return pki.issue(name, ca_dir=cls.bootstrap_ca_dir, cn=name, uris=list(uris),
                             client=True)

        cls.alice = bootstrap("alice", ALICE)
        cls.bob = bootstrap("bob", BOB)
        cls.two_ids = bootstrap("two-ids", BOB, ALICE)
        cls.no_id = pki.issue("no-id", ca_dir=cls.bootstrap_ca_dir, cn="no-id", client=True)
        cls.other_domain = bootstrap("other-domain", "spiffe://evil.example/ns/a/sa/alice")
        cls.odd_path = bootstrap("odd-path", "spiffe://cluster.local/workload/alice")
        # Signed by the workload CA, as every certificate the server issues.
        cls.workload = pki.issue("workload", cn="alice", uris=[ALICE], client=True)
        cls.untrusted = pki.issue("untrusted", ca_dir=pki.other_ca_dir, cn="bob", uris=[BOB],
                                  client=True)

    def setUp(self):
        super().setUp()
        config_dir = self.tmp.mkdir("resources")
        self.server = XdsServer(self.tmp.mkdir("xds-server"), self.xds_tls, self.pki.ca_dir,
                                config_dir, client_ca=self.bootstrap_ca,
                                args=["--serve-workload-keys"])
        self.addCleanup(self._dump_server_log_on_failure)
        self.addCleanup(self.server.finish)
        self.server.start()

    def _dump_server_log_on_failure(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            print(f"\n---- xds-server log ----\n{self.server.log()[-20000:]}")

    # ---- callers ----------------------------------------------------------------

    def caller_argv(self, pair, node_id, namespace=None, service_account=None, token=None):
        argv = node_script("ads_caller.js") + [
            "--address", self.server.address, "--ca", self.pki.ca_crt, "--node-id", node_id]
        if pair is not None:
            argv += ["--cert", pair.crt, "--key", pair.key]
        if namespace:
            argv += ["--namespace", namespace]
        if service_account:
            argv += ["--service-account", service_account]
        if token:
            argv += ["--token", token]
        return argv

    def call(self, pair, node_id, wait=3, **claims):
        """call makes one ADS call and returns what came back (a dict); a
        stream still open after `wait` seconds has status None."""
        argv = self.caller_argv(pair, node_id, **claims) + ["--wait", str(wait)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if result.returncode != 0 or not result.stdout.strip():
            self.fail(f"ads_caller.js failed ({result.returncode}): {result.stderr[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def hold(self, pair, node_id, seconds=30, **claims):
        """hold connects a node that stays connected; returns its first answer."""
        self._holds = getattr(self, "_holds", 0) + 1
        log = os.path.join(self.tmp.path, f"hold-{node_id}-{self._holds}.log")
        process = Process(self.caller_argv(pair, node_id, **claims) + ["--hold", str(seconds)],
                          log)
        self.addCleanup(process.kill)

        def answered():
            text = harness.read_text(log).strip()
            return json.loads(text.splitlines()[0]) if text.startswith("{") else None

        return wait_until(answered, 20, what=f"node {node_id} to be answered")

    def assert_answered(self, pair, node_id):
        """assert_answered: a stream of `pair` as `node_id` is accepted, told
        by the server's first answer (the trust bundle, ROOTCA, is served
        to every caller it accepts), not by a stream still open after a
        while."""
        result = self.hold(pair, node_id, seconds=1)
        self.assertIsNone(result["status"], result)
        self.assertIn("ROOTCA", [s["name"] for s in result["secrets"]], result)

    def assert_refused(self, result, code, *words):
        self.assertEqual(result["status"], code, result)
        self.assertEqual(result["secrets"], [], "a refused caller got secrets")
        for word in words:
            self.assertIn(word, result["details"])

    def assert_no_secret_of(self, identity):
        """No stream of the server holds a certificate for `identity` except
        the ones its owner opened."""
        for node in self.server.status()["nodes"]:
            if node.get("spiffe_id") == identity:
                self.assertNotIn("bob", node["id"], node)



class IdentityTest(IdentityCase):
    """Bootstrap certificates as proof."""

    # ---- the tests ----------------------------------------------------------------

    def test_a_node_gets_the_identity_it_proves(self):
        result = self.hold(self.alice, "alice.a")
        default = [s for s in result["secrets"] if s["name"] == "default"]
        self.assertEqual(len(default), 1, result)
        self.assertTrue(default[0]["has_key"])
        self.assertEqual(default[0]["uri_sans"], [ALICE])
        node = self.server.node("alice.a")
        self.assertEqual(node["spiffe_id"], ALICE)
        self.assertEqual(node["proof"], "bootstrap certificate")
        # A bare node id claims nothing: the identity is still the proven one.
        result = self.call(self.bob, "bobs-laptop")
        self.assertEqual([s["uri_sans"] for s in result["secrets"] if s["name"] == "default"],
                         [[BOB]], result)

    def test_claiming_another_node_id_is_refused(self):
        self.hold(self.alice, "alice.a")
        result = self.call(self.bob, "alice.a")
        self.assert_refused(result, PERMISSION_DENIED, '"a"', '"alice"', BOB)
        self.assert_no_secret_of(ALICE)
        # With Alice gone the claim is still refused: it is not about who came first.
        result = self.call(self.bob, "alice.a")
        self.assert_refused(result, PERMISSION_DENIED, BOB)

    def test_claiming_another_namespace_or_account_in_metadata_is_refused(self):
        self.hold(self.alice, "alice.a")
        for claims in ({"namespace": "a", "service_account": "alice"}, {"namespace": "a"},
                       {"service_account": "alice"}):
            with self.subTest(**claims):
                result = self.call(self.bob, "bob-node", **claims)
                self.assert_refused(result, PERMISSION_DENIED, BOB)
        # Istio's node id form claims the namespace.
        result = self.call(self.bob, "sidecar~10.0.0.9~alice-7d9f.a~a.svc.cluster.local")
        self.assert_refused(result, PERMISSION_DENIED, BOB)
        self.assertIn(f"caller proved {BOB}", self.server.log())

    def test_a_node_id_held_by_another_identity_is_refused(self):
        first = self.hold(self.alice, "shared-pod")
        self.assertEqual([s["uri_sans"] for s in first["secrets"] if s["name"] == "default"],
                         [[ALICE]])
        result = self.call(self.bob, "shared-pod")
        self.assert_refused(result, PERMISSION_DENIED, "in use by another identity", BOB)

    def test_certificates_that_prove_nothing(self):
        cases = [
            (self.two_ids, UNAUTHENTICATED, "2 SPIFFE IDs"),
            (self.no_id, UNAUTHENTICATED, "0 SPIFFE IDs"),
            (self.other_domain, UNAUTHENTICATED, "trust domain"),
            (self.odd_path, UNAUTHENTICATED, "/ns/NAMESPACE/sa/SERVICE_ACCOUNT"),
        ]
        for pair, code, words in cases:
            with self.subTest(certificate=os.path.basename(pair.crt)):
                self.assert_refused(self.call(pair, "alice.a"), code, words)
        # Not trusted (another CA; the workload CA is not a bootstrap CA), or
        # no certificate at all: the handshake itself fails.
        for pair in (self.untrusted, self.workload, None):
            with self.subTest(certificate=pair and os.path.basename(pair.crt)):
                result = self.call(pair, "alice.a")
                self.assertEqual(result["status"], UNAVAILABLE, result)
                self.assertEqual(result["secrets"], [])
        self.assertEqual(self.server.status()["nodes"], [])

    def test_workload_certificates_are_not_bootstrap_credentials(self):
        """Even where the bootstrap CA is the workload CA, a certificate the
        server issued proves nothing to it; --accept-workload-certificates
        says otherwise, explicitly."""
        self.server.finish()
        config_dir = self.tmp.mkdir("resources")
        for args, want in (([], UNAUTHENTICATED), (["--accept-workload-certificates"], OK)):
            with self.subTest(args=args):
                server = XdsServer(self.tmp.mkdir(f"xds-server-{len(args)}"), self.xds_tls,
                                   self.pki.ca_dir, config_dir, client_ca=self.pki.ca_crt,
                                   args=["--serve-workload-keys"] + args)
                self.addCleanup(server.finish)
                self.server = server.start()
                result = self.call(self.workload, "alice.a")
                if want == OK:
                    self.assertIsNone(result["status"], result)
                    self.assertEqual([s["uri_sans"] for s in result["secrets"]
                                      if s["name"] == "default"], [[ALICE]])
                else:
                    self.assert_refused(result, want, "workload certificate",
                                        "--accept-workload-certificates")
                server.finish()

    def test_a_retired_ca_stops_authenticating(self):
        """With --accept-workload-certificates, a certificate of the old
        workload CA opens streams during the rotation's overlap and not
        after it."""
        self.server.finish()
        ca_dir = self.tmp.mkdir("workload-ca")
        for name in ("ca.crt", "ca.key"):
            shutil.copy(os.path.join(self.pki.ca_dir, name), os.path.join(ca_dir, name))
        server = XdsServer(self.tmp.mkdir("xds-server-rotating"), self.xds_tls, ca_dir,
                           self.tmp.mkdir("resources"), cert_ttl="2s",
                           args=["--accept-workload-certificates", "--ca-overlap", "4s",
                                 "--debounce-ms", "50"])
        self.addCleanup(server.finish)
        self.server = server.start()
        self.assert_answered(self.workload, "alice.a")
        new_ca = self.pki.make_ca("workload-ca-2", "workload-ca-2")
        for name in ("ca.key", "ca.crt"):  # the key first: a half-done update is refused
            harness.replace_file_atomically(os.path.join(ca_dir, name),
                                            harness.read_text(os.path.join(new_ca, name)))
        wait_until(lambda: server.status()["ca"]["rotations"] == 1, 10, what="the CA rotation")
        rotated_at = time.monotonic()
        # In the overlap the old CA still authenticates.
        self.assert_answered(self.workload, "alice.a")
        wait_until(lambda: not server.status()["ca"]["retiring"], 15,
                   what="the old CA to leave the bundle")
        self.assertGreaterEqual(time.monotonic() - rotated_at, 3)
        # A refusal ends the call at once; the long wait only bounds it.
        result = self.call(self.workload, "alice.a", wait=10)
        self.assertEqual(result["status"], UNAVAILABLE, result)
        self.assertIn("unknown ca", result["details"].lower())


ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "mtls-sidecar"


class TokenTest(IdentityCase):
    """Service-account tokens as proof: minted by tests/node/sa_token.js with
    Node's own crypto, verified by xds-server against a key-set file."""

    def setUp(self):
        harness.IntegrationTest.setUp(self)
        self.keys = self.tmp.mkdir("keys")
        self.rsa_key = self.sa_token("keygen", "--out", self.keys, "--kid", "k1", "--alg", "RS256")
        self.ec_key = self.sa_token("keygen", "--out", self.keys, "--kid", "k2", "--alg", "ES256")
        self.jwks = os.path.join(self.keys, "jwks.json")
        self.server = XdsServer(self.tmp.mkdir("xds-server"), self.xds_tls, self.pki.ca_dir,
                                self.tmp.mkdir("resources"), client_ca=self.bootstrap_ca,
                                args=["--serve-workload-keys", "--jwks-file", self.jwks,
                                      "--token-issuer", ISSUER, "--token-audience", AUDIENCE,
                                      "--debounce-ms", "50"])
        self.addCleanup(self._dump_server_log_on_failure)
        self.addCleanup(self.server.finish)
        self.server.start()

    def sa_token(self, *args):
        result = subprocess.run(node_script("sa_token.js") + list(args), capture_output=True,
                                text=True, timeout=30)
        if result.returncode != 0:
            self.fail(f"sa_token.js {args[0]} failed: {result.stderr[-2000:]}")
        return result.stdout.strip()

    def token(self, ns="a", sa="alice", key=None, kid="k1", **fields):
        """token writes a minted token to a file and returns its path."""
        args = ["mint", "--key", key or self.rsa_key, "--kid", kid, "--iss", ISSUER,
                "--aud", AUDIENCE, "--ns", ns, "--sa", sa]
        for name, value in fields.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        path = os.path.join(self.tmp.path, f"token-{time.monotonic_ns()}")
        harness.write_file(path, self.sa_token(*args))
        return path

    def call_with_token(self, token, node_id="alice.a", **claims):
        return self.call(None, node_id, token=token, **claims)

    def test_valid_tokens_prove_their_identity(self):
        for key, kid in ((self.rsa_key, "k1"), (self.ec_key, "k2")):
            with self.subTest(kid=kid):
                result = self.call_with_token(self.token(key=key, kid=kid))
                self.assertIsNone(result["status"], result)
                self.assertEqual([s["uri_sans"] for s in result["secrets"]
                                  if s["name"] == "default"], [[ALICE]])
        node = self.server.node("alice.a")
        self.assertIsNone(node)  # the callers are gone
        self.assertNotIn("eyJ", self.server.log(), "a token reached the log")

    def test_tokens_that_prove_nothing(self):
        cases = {
            "expired": (self.token(exp_in=-300), "expired"),
            "not yet valid": (self.token(nbf_in=600), "not valid before"),
            "another audience": (None, "aud"),
            "bad signature": (None, "does not verify"),
            "alg none": (self.token(alg="none"), "none"),
            "HMAC with the public key": (self.token(alg="HS256"), "HS256"),
            "unknown key": (None, "no key in the key set"),
        }
        # Tokens the helper cannot make with one flag.
        wrong_aud = os.path.join(self.tmp.path, "wrong-aud")
        harness.write_file(wrong_aud, self.sa_token(
            "mint", "--key", self.rsa_key, "--kid", "k1", "--iss", ISSUER, "--aud", "other",
            "--ns", "a", "--sa", "alice"))
        cases["another audience"] = (wrong_aud, "aud")
        wrong_iss = os.path.join(self.tmp.path, "wrong-iss")
        harness.write_file(wrong_iss, self.sa_token(
            "mint", "--key", self.rsa_key, "--kid", "k1", "--iss", "https://evil.example",
            "--aud", AUDIENCE, "--ns", "a", "--sa", "alice"))
        cases["another issuer"] = (wrong_iss, "iss")
        good = harness.read_text(self.token())
        head, payload, signature = good.split(".")
        flipped = os.path.join(self.tmp.path, "flipped")
        harness.write_file(flipped, f"{head}.{payload}.{signature[:-4]}AAAA")
        cases["bad signature"] = (flipped, "does not verify")
        stranger = self.sa_token("keygen", "--out", self.tmp.mkdir("stranger"), "--kid", "k9")
        cases["unknown key"] = (self.token(key=stranger, kid="k9"), "no key in the key set")
        for what, (token, words) in cases.items():
            with self.subTest(what):
                self.assert_refused(self.call_with_token(token), UNAUTHENTICATED, words)
        # No certificate and no token.
        self.assert_refused(self.call(None, "alice.a"), UNAUTHENTICATED, "no proof of identity")
        self.assertEqual(self.server.status()["nodes"], [])

    def test_a_rotated_key_set_file_is_picked_up(self):
        new_key = self.sa_token("keygen", "--out", self.tmp.mkdir("next"), "--kid", "k3")
        token = self.token(key=new_key, kid="k3")
        self.assert_refused(self.call_with_token(token), UNAUTHENTICATED, "k3")
        # The issuer rotates: the key set now holds k3 and not k1.
        self.sa_token("jwks", "--out", self.jwks, "--keys", f"{new_key},{self.ec_key}")
        wait_until(lambda: "k3" in json.dumps(self.server.status().get("token_keys")), 10,
                   what="the new key set")
        result = self.call_with_token(token)
        self.assertIsNone(result["status"], result)
        self.assert_refused(self.call_with_token(self.token()), UNAUTHENTICATED, "k1")

    def test_a_token_for_another_namespace_than_the_node_claims(self):
        token = self.token(ns="b", sa="bob")
        self.assert_refused(self.call_with_token(token, "alice.a"), PERMISSION_DENIED, BOB)
        self.assert_refused(self.call_with_token(token, "node-1", namespace="a"),
                            PERMISSION_DENIED, BOB)
        # A token beats a certificate: Bob's token over Alice's connection is Bob.
        result = self.call(self.alice, "bob.b", token=token)
        self.assertEqual([s["uri_sans"] for s in result["secrets"] if s["name"] == "default"],
                         [[BOB]], result)



if __name__ == "__main__":
    unittest.main()
