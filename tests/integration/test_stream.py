"""The TCP relay's edges: half-close, idle timeout, a client that leaves
during the upstream handshake, an upstream that closes mid-stream."""

import os
import socket
import time
import unittest

from tests.lib import harness
from tests.lib.harness import cluster, cluster_tls, config, http_get, listener


class StreamTest(harness.IntegrationTest):

    def test_half_close_delivers_the_whole_echo_then_eof(self):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port, half_close=True)
        sidecar = self.simple_sidecar(nginx.port)
        payload = os.urandom(512 * 1024)
        sock = self.connect(sidecar.listener_port())
        # The upstream only ends its side after it saw our EOF: receiving
        # everything and then EOF proves the half-close went through.
        echoed, errors = harness.echo_round_trip(sock, payload, timeout=15)
        self.assertEqual(errors, [])
        self.assertEqual(len(echoed), len(payload))
        self.assertEqual(echoed, payload)

    def test_half_close_small_message(self):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port, half_close=True)
        sidecar = self.simple_sidecar(nginx.port)
        sock = self.connect(sidecar.listener_port())
        sock.sendall(b"hello")
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(harness.recv_until_eof(sock, timeout=10), b"hello")

    def test_idle_connection_is_closed_by_the_idle_timeout(self):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port)
        sidecar = self.simple_sidecar(nginx.port, listener_extra={"idle_timeout_ms": 500})
        sock = self.connect(sidecar.listener_port())
        # Taken before the last traffic: what the test measures is never
        # shorter than the idle time the sidecar saw.
        before_last_traffic = time.monotonic()
        sock.sendall(b"ping")
        self.assertEqual(harness.recv_exactly(sock, 4), b"ping")
        # Closed (generous deadline: 20 times the timeout), and by the idle
        # timeout: its counter says so, not a window on the clock.
        self.assertEqual(harness.recv_until_eof(sock, timeout=10), b"")
        idle = time.monotonic() - before_last_traffic
        self.assertEqual(sidecar.stat("downstream_cx_idle_timeout"), 1)
        # Not before the timeout (less a little for the loop's coarse clock).
        self.assertGreaterEqual(idle, 0.45)

    def test_active_connection_outlives_the_idle_timeout(self):
        echo = self.start_echo()
        nginx = self.start_stream(echo.port)
        # A tick every 0.1 s against a 1 s timeout: only a pause of ten ticks
        # on a busy machine would let it expire; ticking for 2.5 timeouts
        # shows that traffic, not the connection's age, is what counts.
        sidecar = self.simple_sidecar(nginx.port, listener_extra={"idle_timeout_ms": 1000})
        sock = self.connect(sidecar.listener_port())
        started = time.monotonic()
        while time.monotonic() - started < 2.5:
            sock.sendall(b"tick")
            self.assertEqual(harness.recv_exactly(sock, 4), b"tick")
            time.sleep(0.1)
        self.assertEqual(sidecar.stat("downstream_cx_idle_timeout"), 0)

    def test_client_leaving_mid_handshake_leaves_the_sidecar_healthy(self):
        silent = self.start_tcp_server(harness.silent_handler)
        nginx = self.start_https()
        stuck = cluster("stuck", [f"127.0.0.1:{silent.port}"], cluster_tls(self.pki),
                        handshake_timeout_ms=500, max_connect_attempts=1)
        good = cluster("good", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))
        sidecar = self.start_sidecar(config([listener("to_stuck", "stuck"),
                                             listener("to_good", "good")], [stuck, good]))
        stuck_port, good_port = sidecar.listener_port(0), sidecar.listener_port(1)

        # Clients that connect and close at once, while the upstream
        # handshake hangs.
        for _ in range(5):
            socket.create_connection(("127.0.0.1", stuck_port), timeout=5).close()

        def stuck_connections():
            """(attempts begun, attempts open) to the stuck upstream."""
            host = sidecar.hosts("stuck")[0]
            return harness.host_stat(host, "cx_total"), harness.host_stat(host, "cx_active")

        def five_attempts_ended():
            total, active = stuck_connections()
            return total >= 5 and active == 0

        # Their five attempts began and all ended: cancelled, or (the fault
        # looked for) timed out, which logs its line before it ends.
        harness.wait_until(five_attempts_ended, what="the attempts of the clients that left to end")
        # A client that stays: the handshake timeout must close it cleanly
        # (the deadline is 20 times the timeout).
        sock = self.connect(stuck_port)
        self.assertTrue(harness.is_closed_without_data(sock, timeout=10))
        sidecar.wait_log(rf"handshake failed: cluster=stuck endpoint=127\.0\.0\.1:{silent.port} "
                         r"sni=upstream\.test reason=timeout\b")
        self.assertGreaterEqual(silent.accepted, 1)
        # The clients that left were not kept waiting for their handshake
        # timeout: their upstream attempts were cancelled when they left.
        self.assertEqual(len(sidecar.log_lines(r"cluster=stuck .*reason=timeout")), 1,
                         sidecar.log())

        self.assertTrue(sidecar.is_running())
        self.assertEqual(sidecar.admin_get("/ready")[0], 200)
        self.assertEqual(http_get(good_port, "/hello.txt"), (200, b"hello from nginx\n"))
        # Nothing is left behind: every connection to the stuck upstream ended.
        harness.wait_until(lambda: stuck_connections()[1] == 0,
                           what="no active connection to the stuck upstream")
        harness.wait_until(lambda: sidecar.stat("downstream_cx_active") == 0,
                           what="no active client connection")

    def test_upstream_closing_mid_stream_gives_the_client_eof(self):
        payload = os.urandom(64 * 1024)
        backend = self.start_tcp_server(harness.sender_handler(payload))
        nginx = self.start_stream(backend.port, half_close=False)
        sidecar = self.simple_sidecar(nginx.port)
        sock = self.connect(sidecar.listener_port())
        sock.sendall(b"go")
        received = harness.recv_until_eof(sock, timeout=10)
        self.assertEqual(received, payload)

        self.assertTrue(sidecar.is_running())
        self.assertEqual(sidecar.admin_get("/ready")[0], 200)
        # The same path works again.
        sock = self.connect(sidecar.listener_port())
        sock.sendall(b"go again")
        self.assertEqual(harness.recv_until_eof(sock, timeout=10), payload)


if __name__ == "__main__":
    unittest.main()
