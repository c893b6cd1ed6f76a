"""A client that speaks TLS to a plaintext listener (an application left on
https:// after the sidecar was put beside it) is named in the log with the
fix and counted, on both kinds of listener: an HTTP listener answers 400
(which the client's TLS library reports as "wrong version number"), a TCP
listener relays the bytes as it relays any bytes."""

import socket
import ssl
import unittest

from tests.lib import harness
from tests.lib.harness import cluster, cluster_tls, config, http_listener, listener

HINT = ("hint: the client speaks TLS to a plaintext listener: point it at http:// or disable "
        "its TLS; the sidecar adds TLS towards the upstream")


class WrongProtocolTest(harness.IntegrationTest):

    def start(self, make_listener):
        nginx = self.start_https()
        c = cluster("c", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))
        return nginx, self.start_sidecar(config([make_listener("orders", "c")], [c]))

    def speak_tls(self, port):
        """speak_tls starts a TLS handshake with the listener, as a client
        configured for https:// would, and returns the error it ends in."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            with self.assertRaises((ssl.SSLError, ConnectionError)) as caught:
                context.wrap_socket(sock, server_hostname=harness.SERVER_NAME)
        return str(caught.exception)

    def test_http_listener(self):
        nginx, sidecar = self.start(http_listener)
        error = self.speak_tls(sidecar.listener_port())
        self.assertIn("WRONG_VERSION_NUMBER", error.upper().replace(" ", "_"))
        line = sidecar.wait_log(r"listener=orders: a client sent a TLS handshake")[0]
        self.assertIn("answered 400", line)
        self.assertIn(HINT, line)
        self.assertNotIn("invalid HTTP method", sidecar.log())
        self.assertEqual(sidecar.stat("downstream_cx_tls_to_plaintext"), 1)
        self.assertEqual(sidecar.stat("listener.orders.downstream_cx_tls_to_plaintext"), 1)
        self.assertEqual(nginx.access_entries(all_entries=True), [])
        # Plain HTTP still works on the same listener.
        self.assertEqual(harness.http_get(sidecar.listener_port(), "/hello.txt")[0], 200)
        self.assertEqual(sidecar.stat("downstream_cx_tls_to_plaintext"), 1)

    def test_tcp_listener(self):
        nginx, sidecar = self.start(listener)
        self.speak_tls(sidecar.listener_port())
        line = sidecar.wait_log(r"listener=orders: a client sent a TLS handshake")[0]
        self.assertIn("relayed as bytes", line)
        self.assertIn(HINT, line)
        self.assertEqual(sidecar.stat("downstream_cx_tls_to_plaintext"), 1)
        # Relayed: nginx got the ClientHello inside our TLS and refused it as HTTP.
        entries = nginx.wait_access_entries(1)
        self.assertEqual(entries[0]["status"], "400", entries)
        self.assertEqual(harness.http_get(sidecar.listener_port(), "/hello.txt")[0], 200)
        self.assertEqual(sidecar.stat("downstream_cx_tls_to_plaintext"), 1)

    def test_counted_per_connection(self):
        _, sidecar = self.start(listener)
        for _ in range(3):
            self.speak_tls(sidecar.listener_port())
        harness.wait_until(lambda: sidecar.stat("downstream_cx_tls_to_plaintext") == 3,
                           what="three connections counted")
        prometheus = sidecar.admin_get("/stats/prometheus")[1]
        self.assertRegex(prometheus, r"downstream_cx_tls_to_plaintext(_total)? 3\b")


if __name__ == "__main__":
    unittest.main()
