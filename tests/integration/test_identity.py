"""The sidecar as its own identity agent ("identity"): its key is made in the
process, a CSR goes to an Istio CA (tests/node/identity_test_ca.js, grpc-js
signing with the openssl CLI), and the certificate answers the secrets
"default" and "ROOTCA" that a static cluster names, in front of nginx that
requires a client certificate from the mesh CA.

* The first certificate: /ready waits for it; nginx sees its serial; the CA
  saw the CSR for the bootstrap certificate's SPIFFE ID with the token as
  "authorization: Bearer"; /certs shows local_identity; counters move.
* Bad answers (another SPIFFE ID, another key, expired, two URI SANs, an
  untrusted CA, UNAVAILABLE) are refused, logged and retried; the
  certificate in force keeps serving.
* Renewal under load: a 6 s certificate renewed several times while short
  connections stream through and long-lived ones stay open: no failure,
  nginx sees new serials.
* The key is in the process's memory (read as root through /proc/PID/mem)
  and matches the certificate served, and neither it (PEM body, DER, raw
  scalar) nor the token appears in any admin page, log line or file the
  sidecar wrote.
"""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from tests.lib import harness
from tests.lib.harness import SERVER_NAME, http_get, normalize_serial, wait_until
from tests.lib.support import DEFAULT_TIMEOUT, REPO_ROOT, Process, read_text, write_file

HELLO = b"hello from nginx\n"
# A service-account token's shape (the CA here does not verify it).
TOKEN = ("eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ."
         "eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW"
         "50OnNob3A6b3JkZXJzIn0.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWhlcmUtdG9rZW4tNDI")
ADMIN_PAGES = ("/certs", "/config_dump", "/clusters?format=json", "/server_info", "/stats",
               "/stats/prometheus", "/ready")


def node_setup():
    node = shutil.which("node")
    if node is None:
        raise AssertionError("node is not installed (tools/install-deps.sh installs it)")
    script = os.path.join("tests", "node", "identity_test_ca.js")
    for base in (os.getcwd(), REPO_ROOT):
        candidate = os.path.join(base, script)
        if os.path.isfile(candidate):
            folder = os.path.dirname(os.path.realpath(candidate))
            if not os.path.isdir(os.path.join(folder, "node_modules", "@grpc", "grpc-js")):
                raise AssertionError(f"{folder}/node_modules lacks @grpc/grpc-js: run "
                                     "`npm ci --prefix tests/node` first")
            return node, folder
    raise AssertionError(f"{script} not found under {os.getcwd()} or {REPO_ROOT}")


class IstioCa:
    """IstioCa runs tests/node/identity_test_ca.js (its header says what it
    does) with the Pki's CA as the mesh CA and pki.server as its TLS
    certificate."""

    def __init__(self, folder, pki, timeout=30):
        node, scripts = node_setup()
        os.makedirs(folder, exist_ok=True)
        self.work = os.path.join(folder, "work")
        self.log_path = os.path.join(folder, "ca.jsonl")
        ready_file = os.path.join(folder, "ca.ready")
        self.process = Process([node, os.path.join(scripts, "identity_test_ca.js"),
                                "--ca", pki.ca_crt, "--ca-key", os.path.join(pki.ca_dir, "ca.key"),
                                "--cert", pki.server.crt, "--key", pki.server.key,
                                "--work", self.work, "--log", self.log_path,
                                "--ready-file", ready_file], os.path.join(folder, "ca.out"))

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"the CA exited with {self.process.poll()}:\n"
                                     f"{self.process.log()}")
            return os.path.exists(ready_file) and json.loads(read_text(ready_file))

        ports = wait_until(ready, timeout, what="the node CA to listen")
        self.port = ports["port"]
        self.control_port = ports["control_port"]

    def queue(self, *modes):
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=5)
        try:
            conn.request("POST", "/mode", body=json.dumps({"queue": list(modes)}))
            assert conn.getresponse().status == 200
        finally:
            conn.close()

    def requests(self):
        return [json.loads(line) for line in read_text(self.log_path).splitlines()
                if '"request"' in line]

    def stop(self):
        self.process.signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.process.kill()


class IdentityTest(harness.IntegrationTest):

    def start_ca(self, *queue):
        ca = IstioCa(self.tmp.mkdir("ca"), self.pki)
        self.addCleanup(ca.stop)
        if queue:
            ca.queue(*queue)
        return ca

    def start_identity_sidecar(self, ca, nginx_port, ttl=3600, wait_ready=True, **identity):
        token_file = os.path.join(self.tmp.mkdir("token"), "token")
        write_file(token_file, TOKEN + "\n")
        section = {"ca_address": f"127.0.0.1:{ca.port}",
                   "tls": {"trusted_ca": self.pki.ca_crt, "server_name": SERVER_NAME,
                           "certificate": self.pki.client.crt,
                           "private_key": self.pki.client.key},
                   "token_file": token_file, "requested_ttl_seconds": ttl}
        section.update(identity)
        tls = {"certificate_secret": "default", "validation_secret": "ROOTCA",
               "server_name": SERVER_NAME}
        c = harness.cluster("mesh", [f"127.0.0.1:{nginx_port}"], tls)
        l = harness.listener("l", "mesh")
        sidecar = self.make_sidecar(harness.config([l], [c], identity=section))
        return sidecar.start(wait_ready=wait_ready)

    def local_identity(self, sidecar):
        return sidecar.admin_json("/certs")["local_identity"]

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
        self.assertEqual(normalize_serial(entry["client_serial"]), normalize_serial(local["serial"]))
        self.assertEqual(entry["client_verify"], "SUCCESS")

        request = ca.requests()[-1]
        self.assertEqual(request["uri"], harness.CLIENT_URI)
        self.assertEqual(request["ttl"], 3600)
        self.assertEqual(request["authorization"], "Bearer " + TOKEN)
        self.assertEqual(normalize_serial(request["serial"]), normalize_serial(local["serial"]))
        stats = sidecar.stats()
        self.assertEqual(stats["identity_csr_success"], 1)
        self.assertEqual(stats["identity_csr_failure"], 0)
        self.assertRegex(sidecar.log(), r"identity: certificate issued for spiffe://test/client "
                                        r"obtained in [0-9.]+ ms")
        # The same numbers in Prometheus' format.
        _, prometheus = sidecar.admin_get("/stats/prometheus")
        self.assertRegex(prometheus, r"identity_csr_success\S* 1")

    def test_not_ready_until_the_first_certificate(self):
        ca = self.start_ca("unavailable", "unavailable")
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port, wait_ready=False)
        wait_until(lambda: "the CA is resting" in sidecar.log(), what="a failed first request")
        self.assertEqual(sidecar.admin_get("/ready")[0], 503)
        local = self.local_identity(sidecar)
        self.assertIsNone(local["serial"])
        self.assertIn("UNAVAILABLE", local["last_error"])
        sidecar.wait_ready(timeout=15)
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        self.assertEqual(sidecar.stats()["identity_csr_failure"], 2)

    # ---- bad answers -------------------------------------------------------------------

    def test_bad_answers_are_refused_and_retried(self):
        ca = self.start_ca("wrong_id", "wrong_key", "expired")
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port, ttl=6, wait_ready=False)
        sidecar.wait_ready(timeout=20)
        log = sidecar.log()
        self.assertIn("the certificate is for spiffe://evil/ns/x/sa/y, not for us", log)
        self.assertIn("the certificate is for another key than the one we asked for", log)
        self.assertIn("the certificate expired at", log)
        first = self.local_identity(sidecar)["serial"]
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))

        # The renewals fail: the certificate in force keeps serving.
        ca.queue("two_uris", "untrusted")
        wait_until(lambda: "does not chain to the trust bundle" in sidecar.log(), timeout=15,
                   what="the untrusted answer refused")
        self.assertIn("the certificate has 2 URI SANs", sidecar.log())
        self.assertEqual(self.local_identity(sidecar)["serial"], first)
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        wait_until(lambda: self.local_identity(sidecar)["serial"] != first, timeout=15,
                   what="a good renewal after the bad answers")
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        stats = sidecar.stats()
        self.assertEqual(stats["identity_csr_failure"], 5)
        self.assertGreaterEqual(stats["identity_rotations"], 1)

    # ---- renewal under load ------------------------------------------------------------

    def test_renewal_under_load(self):
        ca = self.start_ca()
        nginx = self.start_https(keepalive_requests=100000)
        sidecar = self.start_identity_sidecar(ca, nginx.port, ttl=6)
        port = sidecar.listener_port()
        failures, done = [], threading.Event()
        counts = {"short": 0, "long": 0}
        lock = threading.Lock()

        def short_connections():
            while not done.is_set():
                try:
                    result = http_get(port, "/hello.txt", timeout=5)
                    if result != (200, HELLO):
                        failures.append(f"short: {result}")
                    with lock:
                        counts["short"] += 1
                except OSError as e:
                    failures.append(f"short: {e!r}")

        def long_connection():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                while not done.is_set():
                    conn.request("GET", "/hello.txt", headers={"Host": SERVER_NAME})
                    response = conn.getresponse()
                    if (response.status, response.read()) != (200, HELLO):
                        failures.append("long: bad answer")
                    with lock:
                        counts["long"] += 1
                    time.sleep(0.2)
            except (OSError, http.client.HTTPException) as e:
                failures.append(f"long: {e!r}")
            finally:
                conn.close()

        threads = [threading.Thread(target=short_connections) for _ in range(4)]
        threads += [threading.Thread(target=long_connection) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: sidecar.stats()["identity_rotations"] >= 3, timeout=30,
                       interval=0.5, what="three renewals")
        finally:
            done.set()
            for t in threads:
                t.join(10)
        self.assertEqual(failures, [])
        self.assertGreater(counts["short"], 50)
        self.assertGreater(counts["long"], 30)
        entries = nginx.access_entries()
        serials = {normalize_serial(e["client_serial"]) for e in entries}
        self.assertGreaterEqual(len(serials), 3, serials)
        # The long-lived connections kept one TLS connection each.
        long_lived = {e["connection"] for e in entries if int(e["connection_requests"]) > 20}
        self.assertGreaterEqual(len(long_lived), 3)

    # ---- the key never leaves ---------------------------------------------------------

    def test_key_appears_nowhere_but_in_memory(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        ca = self.start_ca()
        nginx = self.start_https()
        sidecar = self.start_identity_sidecar(ca, nginx.port, ttl=6)
        wait_until(lambda: sidecar.stats()["identity_rotations"] >= 1, timeout=15,
                   what="a renewal")
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        serial = normalize_serial(self.local_identity(sidecar)["serial"])
        served = None
        for name in os.listdir(ca.work):
            if name.startswith("cert-"):
                with open(os.path.join(ca.work, name), "rb") as f:
                    cert = x509.load_pem_x509_certificate(f.read())
                if format(cert.serial_number, "x") == serial:
                    served = cert
        self.assertIsNotNone(served, "the served certificate is in the CA's folder")
        served_public = served.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

        keys = read_private_keys(sidecar.process.pid)
        self.assertTrue(keys, "a private key PEM in the sidecar's memory")
        matching = [k for k in keys if k.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            == served_public]
        self.assertTrue(matching, "the key in memory is the served certificate's")

        secrets = {"the token": TOKEN, "the token's signature": TOKEN.rsplit(".", 1)[1]}
        for i, key in enumerate(keys):
            der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            body = "".join(pem.splitlines()[1:-1])
            secrets[f"key {i} base64"] = body
            for line in pem.splitlines()[1:-1]:
                secrets[f"key {i} base64 line"] = line
            secrets[f"key {i} DER hex"] = der.hex()
            secrets[f"key {i} scalar hex"] = format(key.private_numbers().private_value, "064x")
        places = {f"admin {page}": sidecar.admin_get(page)[1] for page in ADMIN_PAGES}
        places["sidecar log"] = sidecar.log()
        for folder, _, files in os.walk(sidecar.folder):
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    places[path] = f.read().decode("latin-1")
        for where, text in places.items():
            lowered = text.lower()
            for what, secret in secrets.items():
                self.assertNotIn(secret.lower() if "hex" in what else secret,
                                 lowered if "hex" in what else text, f"{what} in {where}")
        config = sidecar.admin_json("/config_dump")["configs"][0]["config"]
        self.assertIn("identity", config)


PEM_KEY = re.compile(rb"-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+-----END PRIVATE KEY-----")


def read_private_keys(pid):
    """read_private_keys reads the writable memory of process `pid` (as
    root: the sidecar made itself non-dumpable) and returns the distinct
    PKCS#8 private keys found in it as PEM."""
    from cryptography.hazmat.primitives import serialization

    found = {}
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
            for match in PEM_KEY.finditer(chunk):
                try:
                    key = serialization.load_pem_private_key(match.group(0) + b"\n", None)
                except ValueError:
                    continue
                found[match.group(0)] = key
    return list(found.values())


if __name__ == "__main__":
    unittest.main()
