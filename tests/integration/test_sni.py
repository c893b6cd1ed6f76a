"""An upstream that requires SNI (nginx with ssl_reject_handshake on in the
default server) works with the default configuration and fails, with a log
line that says SNI is the likely cause, when SNI is turned off."""

import unittest

from tests.lib import harness
from tests.lib.harness import SERVER_NAME, cluster_tls, http_get


class SniTest(harness.IntegrationTest):

    def test_default_config_sends_server_name_as_sni(self):
        nginx = self.start_https(require_sni=True)
        sidecar = self.simple_sidecar(nginx.port)
        status, body = http_get(sidecar.listener_port(), "/hello.txt")
        self.assertEqual((status, body), (200, b"hello from nginx\n"))
        self.assertEqual(nginx.wait_access_entries(1)[-1]["server_name"], SERVER_NAME)

    def test_send_sni_false_fails_with_a_hint(self):
        nginx = self.start_https(require_sni=True)
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(self.pki, send_sni=False),
                                      cluster_extra={"max_connect_attempts": 1})
        sock = self.connect(sidecar.listener_port())
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: upstream.test\r\n\r\n")
        self.assertTrue(harness.is_closed_without_data(sock))
        line = sidecar.wait_log(rf"handshake failed: cluster=c endpoint=127\.0\.0\.1:{nginx.port} "
                                r"sni=none reason=sni_required\b")[0]
        self.assertIn("alert unrecognized_name (112)", line)
        self.assertIn("hint: the upstream may require SNI", line)
        self.assertEqual(nginx.access_entries(), [])


if __name__ == "__main__":
    unittest.main()
