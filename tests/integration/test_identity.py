"""The sidecar as its own identity agent ("identity"): its key is made in the
process, a CSR goes to an Istio CA (tests/node/istio_ca_server.js, grpc-js
signing with the openssl CLI, which checks that the CSR asks for the identity
its caller proved), and the certificate answers the secrets "default" and
"ROOTCA" that a static cluster names, in front of nginx that requires a
client certificate from the mesh CA.

* The first certificate: /ready waits for it; nginx sees its serial; /certs
  shows local_identity; counters move. Proved by the bootstrap certificate,
  or by the service-account token alone (sent as "authorization: Bearer",
  the SPIFFE ID made from its kubernetes.io claims).
* Bad answers (another SPIFFE ID, another key, expired, not PEM, an error
  status) are refused, logged and retried; the certificate in force keeps
  serving while renewals fail.
* Renewal under load: a 6 s certificate renewed several times while short
  connections stream through and long-lived ones stay open: no failure,
  nginx sees new serials.
* The key is in the process's memory (read as root through /proc/PID/mem)
  and matches the certificate served, and neither it (PEM body, DER, raw
  scalar) nor the token appears in any admin page, log line or file the
  sidecar wrote.
"""

import base64
import json
import os
import re
import subprocess
import time
import unittest

from tests.lib import harness
from tests.lib.control_plane import (SECRET_TYPE, XdsServer, backend_resources, wait_serving,
                                     write_resources, xds_bootstrap, xds_server_certificates,
                                     xds_status)
from tests.lib.harness import KeptConnections, SERVER_NAME, http_get, normalize_serial, wait_until
from tests.lib.load import RequestLoad
from tests.lib.node import node_script
from tests.lib.pki import find_key_material, key_material
from tests.lib.support import Process, read_text, write_file

HELLO = b"hello from nginx\n"
TOKEN_IDENTITY = "spiffe://cluster.local/ns/shop/sa/orders"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token():
    """make_token returns a service-account token's shape for shop/orders
    (the CA here compares it as a string; nobody verifies its signature)."""
    claims = {"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:shop:orders",
              "aud": ["istio-ca"], "exp": int(time.time()) + 3600,
              "kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "orders"}}}
    return ".".join([b64url(b'{"alg":"RS256","kid":"test"}'),
                     b64url(json.dumps(claims).encode()), b64url(os.urandom(64))])


TOKEN = make_token()


class IstioCa:
    """IstioCa runs tests/node/istio_ca_server.js (its header says what it
    does) with the Pki's CA as the mesh CA and pki.server as its TLS
    certificate; callers prove themselves by a certificate of the Pki's CA,
    or (token=True) by TOKEN only. restart() changes its --mode on the same
    port."""

    def __init__(self, folder, pki, mode="ok", token=False):
        self.folder = folder
        self.pki = pki
        self.token = token
        self.port = 0
        self.runs = 0
        self.process = None
        self.start(mode)

    def start(self, mode, timeout=30):
        self.runs += 1
        out = os.path.join(self.folder, f"ca-{self.runs}.out")
        proof = (["--token", TOKEN, "--token-identity", TOKEN_IDENTITY] if self.token
                 else ["--client-ca", self.pki.ca_crt])
        self.process = Process(node_script("istio_ca_server.js") + [
            "--ca-cert", self.pki.ca_crt, "--ca-key", os.path.join(self.pki.ca_dir, "ca.key"),
            "--tls-cert", self.pki.server.crt, "--tls-key", self.pki.server.key,
            "--mode", mode, "--port", str(self.port)] + proof, out)

        def port():
            if self.process.poll() is not None:
                raise AssertionError(f"the CA exited with {self.process.poll()}:\n"
                                     f"{self.process.log()}")
            lines = [l for l in self.process.log().splitlines() if l.strip().isdigit()]
            return lines and int(lines[0])

        self.port = wait_until(port, timeout, what="the node CA to listen")

    def restart(self, mode):
        self.stop()
        self.start(mode)

    def calls(self):
        """calls returns the JSON lines of every run, one per call."""
        calls = []
        for run in range(1, self.runs + 1):
            text = read_text(os.path.join(self.folder, f"ca-{run}.out"))
            calls += [json.loads(l) for l in text.splitlines() if l.startswith("{")]
        return calls

    def stop(self):
        self.process.terminate()


class IdentityTest(harness.IntegrationTest):

    def start_ca(self, mode="ok", token=False):
        ca = IstioCa(self.tmp.mkdir("ca"), self.pki, mode, token)
        self.addCleanup(ca.stop)
        return ca

    def start_identity_sidecar(self, ca, nginx_port, ttl=3600, wait_ready=True, certificate=True):
        token_file = os.path.join(self.tmp.mkdir("token"), "token")
        write_file(token_file, TOKEN + "\n")
        tls = {"trusted_ca": self.pki.ca_crt, "server_name": SERVER_NAME}
        if certificate:
            tls.update(certificate=self.pki.client.crt, private_key=self.pki.client.key)
        section = {"ca_address": f"127.0.0.1:{ca.port}", "tls": tls, "token_file": token_file,
                   "requested_ttl_seconds": ttl}
        cluster_tls = {"certificate_secret": "default", "validation_secret": "ROOTCA",
                       "server_name": SERVER_NAME}
        c = harness.cluster("mesh", [f"127.0.0.1:{nginx_port}"], cluster_tls)
        l = harness.listener("l", "mesh")
        sidecar = self.make_sidecar(harness.config([l], [c], identity=section))
        return sidecar.start(wait_ready=wait_ready, timeout=20)

    def local_identity(self, sidecar):
        return sidecar.admin_json("/certs")["local_identity"]

    def served_serial(self, sidecar):
        return normalize_serial(self.local_identity(sidecar)["serial"])

    # ---- the first certificate ----------------------------------------------------

    def test_certificate_reaches_nginx(self):
        ca = self.start_ca()
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port)
        status, body = http_get(sidecar.listener_port(), "/hello.txt")
        self.assertEqual((status, body), (200, HELLO))

        local = self.local_identity(sidecar)
        self.assertEqual(local["spiffe_id"], harness.CLIENT_URI)
        self.assertEqual(local["proof"], "certificate+token")
        self.assertEqual(local["ca_address"], f"127.0.0.1:{ca.port}")
        self.assertIsNone(local["last_error"])
        self.assertTrue(local["key_locked"], local)
        for field in ("not_before", "not_after", "next_renewal"):
            self.assertRegex(local[field], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        entry = nginx.wait_access_entries(1)[-1]
        self.assertEqual(normalize_serial(entry["client_serial"]), self.served_serial(sidecar))
        self.assertEqual(entry["client_verify"], "SUCCESS")
        # The CA signed what the bootstrap certificate proved, for the TTL asked for.
        call = ca.calls()[-1]
        self.assertEqual((call["identity"], call["signed"], call["validity_duration"]),
                         (harness.CLIENT_URI, harness.CLIENT_URI, 3600))
        stats = sidecar.stats()
        self.assertEqual(stats["identity_csr_success"], 1)
        self.assertEqual(stats["identity_csr_failure"], 0)
        self.assertRegex(sidecar.log(), r"identity: certificate issued for spiffe://test/client "
                                        r"obtained in [0-9.]+ ms")
        _, prometheus = sidecar.admin_get("/stats/prometheus")
        self.assertRegex(prometheus, r"identity_csr_success\S* 1")

    def test_token_alone_proves_the_identity(self):
        ca = self.start_ca(token=True)
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port, certificate=False)
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        local = self.local_identity(sidecar)
        self.assertEqual((local["spiffe_id"], local["proof"]), (TOKEN_IDENTITY, "token"))
        self.assertEqual(ca.calls()[-1]["signed"], TOKEN_IDENTITY)

    def test_not_ready_until_the_first_certificate(self):
        ca = self.start_ca("error:14:the CA is resting")
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port, wait_ready=False)
        wait_until(lambda: "the CA is resting" in sidecar.log(), what="a failed first request")
        self.assertEqual(sidecar.admin_get("/ready")[0], 503)
        local = self.local_identity(sidecar)
        self.assertIsNone(local["serial"])
        self.assertIn("UNAVAILABLE", local["last_error"])
        ca.restart("ok")
        sidecar.wait_ready(timeout=15)
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        self.assertGreaterEqual(sidecar.stats()["identity_csr_failure"], 1)

    # ---- bad answers -------------------------------------------------------------------

    def test_bad_answers_are_refused_and_retried(self):
        ca = self.start_ca("other-identity")
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port, ttl=6, wait_ready=False)
        refusals = [("other-identity", "the certificate is for spiffe://cluster.local/ns/evil/"
                                       "sa/mallory, not for us (spiffe://test/client)"),
                    ("wrong-key", "the certificate is for another key than the one we asked for"),
                    ("expired", "the certificate expired at"),
                    ("garbage", "answer refused: the certificate chain")]
        for i, (mode, words) in enumerate(refusals):
            if i:
                ca.restart(mode)
            wait_until(lambda: words in sidecar.log(), timeout=20, what=f"{mode} refused")
            self.assertEqual(sidecar.admin_get("/ready")[0], 503)
        ca.restart("ok")
        sidecar.wait_ready(timeout=20)
        first = self.served_serial(sidecar)
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))

        # Renewals fail: the certificate in force keeps serving.
        ca.restart("error:13:signer down")
        wait_until(lambda: "signer down" in sidecar.log(), timeout=15, what="a failed renewal")
        self.assertEqual(self.served_serial(sidecar), first)
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        self.assertIn("the certificate in force stays", sidecar.log())
        ca.restart("ok")
        wait_until(lambda: self.served_serial(sidecar) != first, timeout=15,
                   what="a good renewal after the failures")
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        stats = sidecar.stats()
        self.assertGreaterEqual(stats["identity_csr_failure"], 5)
        self.assertGreaterEqual(stats["identity_rotations"], 1)

    # ---- renewal under load ------------------------------------------------------------

    def test_renewal_under_load(self):
        ca = self.start_ca()
        nginx = self.start_https(keepalive_requests=100000)
        sidecar = self.start_identity_sidecar(ca, nginx.port, ttl=6)
        port = sidecar.listener_port()
        # New connections from four threads, and three kept connections with
        # a request every 0.2 s: any failed or wrong answer counts.
        load = RequestLoad(port, threads=4, expected=HELLO)
        self.addCleanup(load.stop)
        kept = KeptConnections(port, count=3, interval=0.2, expected=HELLO)
        self.addCleanup(kept.close)
        try:
            wait_until(lambda: sidecar.stats()["identity_rotations"] >= 3 or load.failures or
                       kept.failures, timeout=30, interval=0.5, what="three renewals")
        finally:
            load.stop()
            kept.stop()
        self.assertEqual(load.failures + kept.failures, [])
        self.assertGreaterEqual(sidecar.stats()["identity_rotations"], 3)
        self.assertGreater(load.successes, 50)
        self.assertGreater(kept.requests, 30)
        entries = nginx.access_entries()
        serials = {normalize_serial(e["client_serial"]) for e in entries}
        self.assertGreaterEqual(len(serials), 3, serials)
        # The long-lived connections kept one TLS connection each.
        long_lived = {e["connection"] for e in entries if int(e["connection_requests"]) > 20}
        self.assertGreaterEqual(len(long_lived), 3)

    # ---- the key never leaves ---------------------------------------------------------

    def test_key_appears_nowhere_but_in_memory(self):
        from cryptography.hazmat.primitives import serialization

        ca = self.start_ca()
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port, ttl=6)
        wait_until(lambda: sidecar.stats()["identity_rotations"] >= 1, timeout=15,
                   what="a renewal")
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        serial = self.served_serial(sidecar)
        keys, certificates = read_memory_pems(sidecar.process.pid)
        served = [c for c in certificates if format(c.serial_number, "x") == serial]
        self.assertTrue(served, "the served certificate is in the sidecar's memory")
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        served_public = served[0].public_key().public_bytes(serialization.Encoding.DER, spki)
        self.assertTrue(keys, "a private key PEM in the sidecar's memory")
        self.assertTrue([k for k in keys if k.public_key().public_bytes(
            serialization.Encoding.DER, spki) == served_public],
            "the key in memory is the served certificate's")

        secrets = {"the token": TOKEN, "the token's signature": TOKEN.rsplit(".", 1)[1]}
        for i, key in enumerate(keys):
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            secrets.update(key_material(pem, f"key {i}"))
        places = sidecar.admin_pages()
        places["sidecar log"] = sidecar.log()
        for folder, _, files in os.walk(sidecar.folder):
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    places[path] = f.read().decode("latin-1")
        self.assertEqual(find_key_material(places, secrets), [])
        config = sidecar.admin_json("/config_dump")["configs"][0]["config"]
        self.assertIn("identity", config)


class XdsServerIdentityTest(harness.IntegrationTest):
    """The identity agent against xds-server's CreateCertificate, with the
    bootstrap certificate as the proof, and Envoy-shaped resources from it
    (an EDS cluster whose certificate and trust come over SDS as "default"
    and "ROOTCA")."""

    NODE_ID = "orders.shop"
    SPIFFE_ID = "spiffe://cluster.local/ns/shop/sa/orders"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.xds_tls, cls.bootstrap_ca_dir, cls.bootstrap = xds_server_certificates(
            cls.pki, cls.SPIFFE_ID)

    def start_mesh(self, nginx, args=()):
        """start_mesh starts xds-server serving an EDS cluster "backend" to
        nginx, whose certificate and trust come over SDS as "default" and
        "ROOTCA", and a TCP listener to it; returns (server, listener port).
        No --serve-workload-keys: xds-server makes no key, the sidecar asks."""
        config_dir = self.tmp.mkdir("resources")
        listener_port = harness.free_port()
        write_resources(os.path.join(config_dir, "backend.json"),
                        backend_resources([nginx.port], listener_port))
        control_plane = XdsServer(self.tmp.mkdir("xds-server"), self.xds_tls, self.pki.ca_dir,
                                  config_dir, cert_ttl="6s",
                                  client_ca=os.path.join(self.bootstrap_ca_dir, "ca.crt"),
                                  args=args)
        self.addCleanup(control_plane.finish)
        control_plane.start()
        return control_plane, listener_port

    def test_certificate_from_xds_server(self):
        nginx = self.start_https()
        control_plane, listener_port = self.start_mesh(nginx)
        backup = os.path.join(self.tmp.mkdir("state"), "xds.json")
        xds = xds_bootstrap(control_plane.port, self.bootstrap, self.pki.ca_crt, self.NODE_ID,
                            "orders", backup_path=backup)
        sidecar = self.start_sidecar(harness.config([], [], xds=xds, identity={}), name="sidecar")
        wait_serving(control_plane, self.NODE_ID)
        self.assertEqual(http_get(listener_port, "/hello.txt"), (200, HELLO))
        local = sidecar.admin_json("/certs")["local_identity"]
        self.assertEqual((local["spiffe_id"], local["proof"], local["ca_address"]),
                         (self.SPIFFE_ID, "certificate", control_plane.address))
        entry = nginx.wait_access_entries(1)[-1]
        self.assertEqual(normalize_serial(entry["client_serial"]),
                         normalize_serial(local["serial"]))
        # The sidecar asks for neither name over SDS, and no cluster waits for them.
        status = xds_status(sidecar.admin_json("/config_dump"))
        sds = [t for t in status["resource_types"] if t["type_url"] == SECRET_TYPE]
        self.assertTrue(all(t["resource_names"] == [] for t in sds), sds)
        self.assertEqual(status["warming_clusters"], 0)
        # Renewed from xds-server (6 s certificates) while traffic goes on.
        first = local["serial"]
        wait_until(lambda: sidecar.admin_json("/certs")["local_identity"]["serial"] != first,
                   timeout=15, what="a renewal from xds-server")
        self.assertEqual(http_get(listener_port, "/hello.txt"), (200, HELLO))
        # The backup file keeps the control plane's resources, not our key.
        wait_until(lambda: os.path.exists(backup), what="the backup file")
        with open(backup) as f:
            text = f.read()
        self.assertNotIn("PRIVATE KEY", text)
        from cryptography.hazmat.primitives import serialization
        keys, _ = read_memory_pems(sidecar.process.pid)
        self.assertTrue(keys)
        for key in keys:
            der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            self.assertNotIn(base64.b64encode(der).decode()[:40], text)

    def test_token_proves_the_identity_to_xds_server(self):
        """A sidecar with no client certificate at all: its service-account
        token authenticates the ADS stream and CreateCertificate, and names
        the SPIFFE ID it asks for."""
        def sa_token(*args):
            result = subprocess.run(node_script("sa_token.js") + list(args),
                                    capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            return result.stdout.strip()

        keys = self.tmp.mkdir("keys")
        key = sa_token("keygen", "--out", keys, "--kid", "k1", "--alg", "ES256")
        issuer = "https://kubernetes.default.svc"
        token = sa_token("mint", "--key", key, "--kid", "k1", "--iss", issuer,
                         "--aud", "mtls-sidecar", "--ns", "shop", "--sa", "orders")
        token_file = os.path.join(self.tmp.mkdir("token"), "token")
        write_file(token_file, token + "\n")
        nginx = self.start_https()
        control_plane, listener_port = self.start_mesh(nginx, args=[
            "--jwks-file", os.path.join(keys, "jwks.json"), "--token-issuer", issuer])
        xds = xds_bootstrap(control_plane.port, self.bootstrap, self.pki.ca_crt, self.NODE_ID,
                            "orders")
        del xds["tls"]["certificate"], xds["tls"]["private_key"]
        sidecar = self.start_sidecar(harness.config([], [], xds=xds,
                                                    identity={"token_file": token_file}))
        node = wait_serving(control_plane, self.NODE_ID)
        self.assertEqual(node["spiffe_id"], self.SPIFFE_ID)
        self.assertEqual(http_get(listener_port, "/hello.txt"), (200, HELLO))
        local = sidecar.admin_json("/certs")["local_identity"]
        self.assertEqual((local["spiffe_id"], local["spiffe_id_from"], local["proof"]),
                         (self.SPIFFE_ID, "token", "token"))
        pages = list(sidecar.admin_pages().values()) + [sidecar.log()]
        for text in pages:
            self.assertNotIn(token.rsplit(".", 1)[1], text)
            self.assertNotIn(token.split(".")[1], text)


PEM = re.compile(rb"-----BEGIN (PRIVATE KEY|CERTIFICATE)-----\n[A-Za-z0-9+/=\n]+"
                 rb"-----END (?:PRIVATE KEY|CERTIFICATE)-----")


def read_memory_pems(pid):
    """read_memory_pems reads the writable memory of process `pid` (as root:
    the sidecar made itself non-dumpable) and returns the distinct PKCS#8
    private keys and the certificates found in it as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    keys, certificates = {}, {}
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if not fields[1].startswith("rw") or end - start > (64 << 20):
                continue
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            for match in PEM.finditer(chunk):
                pem = match.group(0) + b"\n"
                try:
                    if match.group(1) == b"PRIVATE KEY":
                        keys[pem] = serialization.load_pem_private_key(pem, None)
                    else:
                        certificates[pem] = x509.load_pem_x509_certificate(pem)
                except ValueError:
                    continue
    return list(keys.values()), list(certificates.values())


if __name__ == "__main__":
    unittest.main()
