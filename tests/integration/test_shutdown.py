"""Stopping: SIGTERM drains and exits 0 within the drain timeout, also with
a connection open; POST /quitquitquit does the same. While draining, the
listeners accept nothing, /ready answers 503, and the last connection's end
ends the drain."""

import signal
import subprocess
import time
import unittest

from tests.lib import harness

# A drain that the open connection runs out: the sidecar closes it then.
DRAIN_MS = 1000
# A drain that only the connection's end can finish within the test.
LONG_DRAIN_MS = 60000
# Slack on top of a drain for the exit itself, on a busy machine.
EXIT_SLACK_S = 10
# The two ways to ask for a stop: the signal, and POST /quitquitquit.
STOPS = ("SIGTERM", "quitquitquit")


class ShutdownTest(harness.IntegrationTest):

    def start_with_open_connection(self, drain_ms, name):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port)
        sidecar = self.simple_sidecar(nginx.port, drain_timeout_ms=drain_ms, name=name)
        sock = self.connect(sidecar.listener_port())
        sock.sendall(b"ping")
        self.assertEqual(harness.recv_exactly(sock, 4), b"ping")
        return sidecar, sock

    def ask_to_stop(self, sidecar, how):
        if how == "SIGTERM":
            sidecar.send_signal(signal.SIGTERM)
        else:
            self.assertEqual(sidecar.admin_request("POST", "/quitquitquit")[0], 200)

    def wait_exit(self, sidecar, timeout):
        try:
            code = sidecar.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"still running {timeout}s after shutdown:\n{sidecar.log()}")
        self.assertEqual(code, 0, sidecar.log())

    def test_exits_0_within_the_drain_timeout_with_a_connection_open(self):
        for how in STOPS:
            with self.subTest(how=how):
                sidecar, sock = self.start_with_open_connection(DRAIN_MS, f"sidecar-{how}")
                started = time.monotonic()
                self.ask_to_stop(sidecar, how)
                self.wait_exit(sidecar, DRAIN_MS / 1000 + EXIT_SLACK_S)
                # `started` was taken before the stop was asked for: the open
                # connection held the sidecar for the whole drain (less a
                # little for the loop's coarse clock), then it was closed.
                self.assertGreaterEqual(time.monotonic() - started, DRAIN_MS / 1000 - 0.1)
                sidecar.wait_log(r"drain timeout: closing 1 connection\b")
                self.assertEqual(harness.recv_until_eof(sock, timeout=10), b"")

    def test_draining_is_visible_and_ends_with_the_last_connection(self):
        for how in STOPS:
            with self.subTest(how=how):
                sidecar, sock = self.start_with_open_connection(LONG_DRAIN_MS,
                                                                f"sidecar-{how}")
                self.ask_to_stop(sidecar, how)
                harness.wait_until(lambda: sidecar.admin_get("/ready", timeout=1)[0] == 503,
                                   what="/ready to answer 503 while draining")
                self.assertEqual(sidecar.admin_json("/server_info")["state"], "DRAINING")
                harness.wait_until(lambda: not harness.port_accepts(sidecar.listener_port()),
                                   what="the listener to stop accepting")
                # All of this while the drain goes on (it lasts far longer
                # than these waits), and the open connection still works.
                self.assertTrue(sidecar.is_running(), "the listener stopped with the process")
                sock.sendall(b"pong")
                self.assertEqual(harness.recv_exactly(sock, 4), b"pong")
                # Its end ends the drain, long before the drain timeout.
                sock.close()
                self.wait_exit(sidecar, EXIT_SLACK_S)
                self.assertEqual(sidecar.log_lines(r"drain timeout"), [])

    def test_sigterm_without_connections_exits_at_once(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, drain_timeout_ms=LONG_DRAIN_MS)
        # Nothing holds the drain: the exit comes long before its timeout.
        self.assertEqual(sidecar.stop(timeout=EXIT_SLACK_S), 0, sidecar.log())


if __name__ == "__main__":
    unittest.main()
