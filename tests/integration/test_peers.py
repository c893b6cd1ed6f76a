"""The peers behave as the sidecar tests assume, checked with Python's own
TLS client (no sidecar here). If nginx stopped rejecting handshakes without
SNI, say, the sidecar's sni_required test would prove nothing; this file
fails first and says why. The load that the rotation tests count on is
checked here too: every kind of bad answer is a failed request."""

import datetime
import socket
import ssl
import unittest

from tests.lib import harness
from tests.lib.harness import SERVER_NAME
from tests.lib.load import HeldRequest, RequestLoad


class PeersTest(harness.IntegrationTest):

    def client_context(self, with_certificate=True, versions=None):
        context = ssl.create_default_context(cafile=self.pki.ca_crt)
        if with_certificate:
            context.load_cert_chain(self.pki.client.crt, self.pki.client.key)
        if versions:
            context.minimum_version = getattr(ssl.TLSVersion, versions[0].replace(".", "_"))
            context.maximum_version = getattr(ssl.TLSVersion, versions[-1].replace(".", "_"))
        return context

    def tls_connect(self, port, server_hostname=SERVER_NAME, **kwargs):
        context = self.client_context(**kwargs)
        if server_hostname is None:
            context.check_hostname = False
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.addCleanup(sock.close)
        return context.wrap_socket(sock, server_hostname=server_hostname)

    def test_pki_certificates_carry_the_promised_names_and_dates(self):
        server = self.pki.inspect(self.pki.server.crt)
        self.assertIn(f"DNS:{SERVER_NAME}", server["subject_alt_names"])
        self.assertIn("IP:127.0.0.1", server["subject_alt_names"])
        client = self.pki.inspect(self.pki.client.crt)
        self.assertIn(f"URI:{harness.CLIENT_URI}", client["subject_alt_names"])
        self.assertRegex(client["serial_number"], r"^[0-9a-f]+$")
        expired = self.pki.inspect(self.pki.expired.crt)
        expiry = datetime.datetime.strptime(expired["expiration_time"], "%Y-%m-%dT%H:%M:%SZ")
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.assertLess(expiry, now)
        wrong = self.pki.inspect(self.pki.wrong_name.crt)
        self.assertNotIn(f"DNS:{SERVER_NAME}", wrong["subject_alt_names"])
        self.assertNotIn("IP:127.0.0.1", wrong["subject_alt_names"])
        self.assertNotEqual(self.pki.serial(self.pki.client.crt),
                            self.pki.serial(self.pki.issue_client("client2").crt))

    def test_https_upstream_logs_protocol_and_client_serial(self):
        nginx = self.start_https()
        for version in ("TLSv1.2", "TLSv1.3"):
            with self.subTest(version=version):
                tls = self.tls_connect(nginx.port, versions=[version])
                tls.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: upstream.test\r\n"
                            b"Connection: close\r\n\r\n")
                response = harness.recv_until_eof(tls)
                self.assertTrue(response.startswith(b"HTTP/1.1 200"), response[:200])
                self.assertTrue(response.endswith(b"hello from nginx\n"))
        entries = nginx.wait_access_entries(2)
        self.assertEqual([e["protocol"] for e in entries], ["TLSv1.2", "TLSv1.3"])
        for entry in entries:
            self.assertEqual(harness.normalize_serial(entry["client_serial"]),
                             self.pki.serial(self.pki.client.crt))
            self.assertEqual(entry["server_name"], SERVER_NAME)

    def test_https_upstream_without_client_certificate_answers_400(self):
        # nginx checks the client certificate after the handshake: this is
        # why the client_certificate_rejected test uses harness.TlsServer.
        nginx = self.start_https()
        tls = self.tls_connect(nginx.port, with_certificate=False)
        tls.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n")
        self.assertTrue(harness.recv_until_eof(tls).startswith(b"HTTP/1.1 400"))

    def test_require_sni_upstream_rejects_a_handshake_without_sni(self):
        nginx = self.start_https(require_sni=True)
        with self.assertRaisesRegex(ssl.SSLError, "UNRECOGNIZED_NAME"):
            self.tls_connect(nginx.port, server_hostname=None)
        tls = self.tls_connect(nginx.port)
        tls.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: upstream.test\r\nConnection: close\r\n\r\n")
        self.assertTrue(harness.recv_until_eof(tls).startswith(b"HTTP/1.1 200"))

    def test_stream_upstream_echoes_and_logs_client_serial(self):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port)
        tls = self.tls_connect(nginx.port)
        tls.sendall(b"ping")
        self.assertEqual(harness.recv_exactly(tls, 4), b"ping")
        tls.close()
        entry = nginx.wait_access_entries(1)[0]
        self.assertEqual(harness.normalize_serial(entry["client_serial"]),
                         self.pki.serial(self.pki.client.crt))

    def test_tls_server_refuses_a_client_without_certificate_with_an_alert(self):
        for version, alert in (("TLSv1.2", "HANDSHAKE_FAILURE"),
                               ("TLSv1.3", "CERTIFICATE_REQUIRED")):
            with self.subTest(version=version):
                server = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                               client_ca=self.pki.ca_crt, versions=[version])
                with self.assertRaisesRegex(ssl.SSLError, alert):
                    tls = self.tls_connect(server.port, with_certificate=False)
                    # TLS 1.3: the alert comes after the client's Finished.
                    tls.sendall(b"x")
                    tls.recv(1)
                tls = self.tls_connect(server.port)
                tls.sendall(b"x")
                self.assertEqual(tls.recv(1), b"x")

    def test_silent_server_accepts_and_never_answers(self):
        server = self.start_tcp_server(harness.silent_handler)
        sock = self.connect(server.port)
        sock.sendall(b"\x16\x03\x01")
        with self.assertRaises(socket.timeout):
            sock.settimeout(0.3)
            sock.recv(1)


    def test_load_counts_every_bad_answer_as_a_failure(self):
        # A plain HTTP server whose answers go wrong in turn: a truncated
        # body, a garbage status line, a wrong body, a 503, a body cut short; then
        # good answers. Each bad one is a failure; no thread dies of it.
        good = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"
        bad = [b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\nhello\n",
               b"garbage\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhellO\n",
               b"HTTP/1.1 503 Busy\r\nContent-Length: 6\r\n\r\nhello\n",
               b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhel"]
        answers = iter(bad)

        def handler(conn):
            conn.settimeout(5)
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    more = conn.recv(4096)
                    if not more:
                        return
                    head += more
                answer = next(answers, good)
                conn.sendall(answer)
                if answer is not good:
                    conn.close()
                    return

        server = self.start_tcp_server(handler)
        load = RequestLoad(server.port, threads=2, expected=b"hello\n")
        self.addCleanup(load.stop)
        # Not load.wait_more: it returns at the first failure, before the
        # other bad answers have been asked for.
        harness.wait_until(lambda: len(load.failures) >= len(bad) and load.successes >= 20,
                           what="every bad answer and 20 good ones")
        load.stop()
        self.assertEqual(len(load.failures), len(bad), load.failures)
        for seen in ("IncompleteRead", "BadStatusLine", "first difference at byte 4",
                     "status 503", "IncompleteRead"):
            self.assertTrue(any(seen in f for f in load.failures), (seen, load.failures))
        # A held answer reports its own too.
        answers = iter(bad)
        held = HeldRequest(server.port, "/", b"hello\n", hold_after=1)
        self.assertRegex(held.finish() or "", r"IncompleteRead")

if __name__ == "__main__":
    unittest.main()
