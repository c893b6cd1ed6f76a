"""Sequential connections resume the TLS session: nginx sees "r" in
$ssl_session_reused for all but the first handshake of each worker."""

import unittest

from tests.lib import harness
from tests.lib.harness import cluster_tls, http_get

CONNECTIONS = 10
WORKERS = 2


class SessionResumptionTest(harness.IntegrationTest):

    def assert_resumes(self, protocol):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(self.pki, protocols=[protocol]),
                                      workers=WORKERS)
        for i in range(CONNECTIONS):
            status, _ = http_get(sidecar.listener_port(), f"/hello.txt?n={i}")
            self.assertEqual(status, 200)
            # The next connection may only offer a session once nginx's
            # ticket has arrived: the request completing guarantees that.
            nginx.wait_access_entries(i + 1)
        entries = nginx.wait_access_entries(CONNECTIONS)
        reused = [e["reused"] for e in entries]
        self.assertTrue(all(e["protocol"] == protocol for e in entries), entries)
        # Each worker may keep its own cache: at most one full handshake each.
        self.assertLessEqual(reused.count("."), WORKERS, reused)
        self.assertEqual(reused[0], ".", reused)
        self.assertEqual(reused.count("r"), CONNECTIONS - reused.count("."))
        # The sidecar counts the same.
        self.assertEqual(sidecar.stat("ssl_session_reused"), reused.count("r"))
        self.assertEqual(sidecar.stat("ssl_handshake_full"), reused.count("."))
        self.assertEqual(sidecar.stat("ssl_handshake"), CONNECTIONS)

    def test_tls_1_3_sessions_are_resumed(self):
        self.assert_resumes("TLSv1.3")

    def test_tls_1_2_sessions_are_resumed(self):
        self.assert_resumes("TLSv1.2")

    def test_session_reuse_false_never_resumes(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(self.pki, session_reuse=False))
        for i in range(4):
            self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt")[0], 200)
            nginx.wait_access_entries(i + 1)
        self.assertEqual([e["reused"] for e in nginx.wait_access_entries(4)], ["."] * 4)


if __name__ == "__main__":
    unittest.main()
