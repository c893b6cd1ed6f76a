"""Stopping: SIGTERM drains and exits 0 within the drain timeout, also with
a connection open; POST /quitquitquit does the same."""

import signal
import subprocess
import time
import unittest

from tests.lib import harness

DRAIN_MS = 1000


class ShutdownTest(harness.IntegrationTest):

    def start_with_open_connection(self):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port)
        sidecar = self.simple_sidecar(nginx.port, drain_timeout_ms=DRAIN_MS)
        sock = self.connect(sidecar.listener_port())
        sock.sendall(b"ping")
        self.assertEqual(harness.recv_exactly(sock, 4), b"ping")
        return sidecar, sock

    def assert_exits_within_drain(self, sidecar, sock, started):
        # Draining stops accepting at once (the open connection keeps the
        # process alive meanwhile, or it has already exited).
        harness.wait_until(lambda: not harness.port_accepts(sidecar.listener_port()), timeout=0.5,
                           what="the listener to stop accepting")
        try:
            code = sidecar.process.wait(DRAIN_MS / 1000 + 3)
        except subprocess.TimeoutExpired:
            self.fail(f"still running {DRAIN_MS / 1000 + 3}s after shutdown:\n{sidecar.log()}")
        self.assertEqual(code, 0, sidecar.log())
        self.assertLess(time.monotonic() - started, DRAIN_MS / 1000 + 3)
        # The open connection was closed, not left hanging.
        self.assertEqual(harness.recv_until_eof(sock, timeout=2), b"")

    def test_sigterm_with_an_idle_connection_exits_0_within_the_drain_timeout(self):
        sidecar, sock = self.start_with_open_connection()
        started = time.monotonic()
        sidecar.send_signal(signal.SIGTERM)
        self.assert_exits_within_drain(sidecar, sock, started)

    def test_draining_is_visible_on_the_admin_endpoint(self):
        sidecar, sock = self.start_with_open_connection()
        started = time.monotonic()
        sidecar.send_signal(signal.SIGTERM)
        # The open connection keeps the sidecar draining for DRAIN_MS.
        harness.wait_until(lambda: sidecar.admin_get("/ready", timeout=1)[0] == 503, timeout=0.5,
                           what="/ready to answer 503 while draining")
        self.assertEqual(sidecar.admin_json("/server_info")["state"], "DRAINING")
        self.assert_exits_within_drain(sidecar, sock, started)

    def test_sigterm_without_connections_exits_at_once(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, drain_timeout_ms=5000)
        started = time.monotonic()
        self.assertEqual(sidecar.stop(timeout=5), 0, sidecar.log())
        self.assertLess(time.monotonic() - started, 3)

    def test_quitquitquit(self):
        sidecar, sock = self.start_with_open_connection()
        started = time.monotonic()
        status, _, _ = sidecar.admin_request("POST", "/quitquitquit")
        self.assertEqual(status, 200)
        self.assert_exits_within_drain(sidecar, sock, started)


if __name__ == "__main__":
    unittest.main()
