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


class IdentityTest(harness.IntegrationTest):

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
        log = os.path.join(self.tmp.path, f"hold-{node_id}.log")
        process = Process(self.caller_argv(pair, node_id, **claims) + ["--hold", str(seconds)],
                          log)
        self.addCleanup(process.kill)

        def answered():
            text = harness.read_text(log).strip()
            return json.loads(text.splitlines()[0]) if text.startswith("{") else None

        return wait_until(answered, 20, what=f"node {node_id} to be answered")

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
        self.assertIsNone(self.call(self.workload, "alice.a", wait=1)["status"])
        new_ca = self.pki.make_ca("workload-ca-2", "workload-ca-2")
        for name in ("ca.key", "ca.crt"):  # the key first: a half-done update is refused
            harness.replace_file_atomically(os.path.join(ca_dir, name),
                                            harness.read_text(os.path.join(new_ca, name)))
        wait_until(lambda: server.status()["ca"]["rotations"] == 1, 10, what="the CA rotation")
        rotated_at = time.monotonic()
        # In the overlap the old CA still authenticates.
        self.assertIsNone(self.call(self.workload, "alice.a", wait=1)["status"])
        wait_until(lambda: not server.status()["ca"]["retiring"], 15,
                   what="the old CA to leave the bundle")
        self.assertGreaterEqual(time.monotonic() - rotated_at, 3)
        result = self.call(self.workload, "alice.a", wait=1)
        self.assertEqual(result["status"], UNAVAILABLE, result)
        self.assertIn("unknown ca", result["details"].lower())


if __name__ == "__main__":
    unittest.main()
