"""100 MB of random bytes cross the sidecar unchanged."""

import hashlib
import http.client
import os
import socket
import unittest

from tests.lib import harness

SIZE = 100 * 1024 * 1024


class LargeTransferTest(harness.IntegrationTest):

    def test_100_mb_download_has_the_same_sha256(self):
        nginx = self.start_https()
        path = os.path.join(nginx.www, "big.bin")
        expected = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(SIZE // (1 << 20)):
                chunk = os.urandom(1 << 20)
                expected.update(chunk)
                f.write(chunk)
        sidecar = self.simple_sidecar(nginx.port)

        conn = http.client.HTTPConnection("127.0.0.1", sidecar.listener_port(), timeout=60)
        self.addCleanup(conn.close)
        conn.request("GET", "/big.bin", headers={"Host": harness.SERVER_NAME,
                                                 "Connection": "close"})
        response = conn.getresponse()
        self.assertEqual(response.status, 200)
        got = hashlib.sha256()
        size = 0
        while True:
            chunk = response.read(1 << 20)
            if not chunk:
                break
            got.update(chunk)
            size += len(chunk)
        self.assertEqual(size, SIZE)
        self.assertEqual(got.hexdigest(), expected.hexdigest())
        entry = nginx.wait_access_entries(1)[-1]
        self.assertEqual(entry["status"], "200")
        self.assertEqual(int(entry["bytes"]), SIZE)

    def test_10_mb_each_way_through_a_stream_upstream(self):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port)
        sidecar = self.simple_sidecar(nginx.port)
        payload = os.urandom(10 * 1024 * 1024)
        sock = self.connect(sidecar.listener_port(), timeout=60)

        echoed, errors = harness.echo_round_trip(sock, payload, timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(len(echoed), len(payload))
        self.assertEqual(harness.sha256(echoed), harness.sha256(payload))


if __name__ == "__main__":
    unittest.main()
