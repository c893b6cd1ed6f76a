"""Overload from the hostile side: a sidecar out of descriptors pauses its
listeners instead of spinning on accept(2) and logs the failures once a
second with a count, then serves again once descriptors come back; a
listener's max_connections refuses the connection over it (counted as
downstream_cx_overflow) while the others are served."""

import http.client
import math
import os
import socket
import time
import unittest

from tests.lib import harness
from tests.lib.harness import (SERVER_NAME, cluster, cluster_tls, config, http_get,
                               http_listener, is_closed_without_data, listener, wait_until)

# accept(2) failing for lack of descriptors, old wording and new.
ACCEPT_FAILED = r"accept failed on listener"


def cpu_ticks(pid):
    """cpu_ticks returns the user + system clock ticks of `pid` (all its
    threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def open_idle(port, count):
    """open_idle connects `count` sockets that send nothing."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


class OverloadTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.nginx = self.start_https()

    def close_all(self, socks):
        for s in socks:
            s.close()

    def test_out_of_descriptors_pauses_accepting(self):
        tls = cluster_tls(self.pki)
        http_l = http_listener("web", "c")
        tcp_l = listener("raw", "c")
        sidecar = self.make_sidecar(
            config([http_l, tcp_l], [cluster("c", [f"127.0.0.1:{self.nginx.port}"], tls)]))
        sidecar.launcher = ["prlimit", "--nofile=64:64", "--"]
        sidecar.start()
        self.assertEqual(http_get(sidecar.listener_port(0), "/hello.txt")[0], 200)

        # 45 idle keep-alive clients take what descriptors are left; 15 more
        # on each listener wait in the backlogs.
        socks = open_idle(sidecar.listener_port(0), 45)
        self.addCleanup(self.close_all, socks)
        socks += open_idle(sidecar.listener_port(0), 15)
        socks += open_idle(sidecar.listener_port(1), 15)
        # Both listeners out of descriptors (and so paused) before measuring.
        for name in ("web", "raw"):
            sidecar.wait_log(rf"{ACCEPT_FAILED} {name}\b")

        pid = sidecar.process.pid
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        lines_before = len(sidecar.log_lines(ACCEPT_FAILED))
        ticks_before = cpu_ticks(pid)
        started = time.monotonic()
        time.sleep(3)  # the span measured, not a wait for an event
        ticks = cpu_ticks(pid) - ticks_before
        elapsed = time.monotonic() - started
        lines = len(sidecar.log_lines(ACCEPT_FAILED)) - lines_before
        budget = int(elapsed * ticks_per_second)
        print(f"\nout of descriptors: {ticks} CPU ticks of {budget} in {elapsed:.1f}s, "
              f"{lines} 'accept failed' lines")
        # Spinning costs a core per worker (hundreds of ticks); paused
        # listeners wake a few times a second.
        self.assertLess(ticks, budget // 10, "the workers spin on accept")
        # One line a second per listener and worker at most (2 x 2), with room
        # for the second boundaries, over the span as it was measured (a busy
        # machine may have slept longer than asked).
        self.assertLessEqual(lines, 4 * (math.ceil(elapsed) + 1) + 2,
                             "the accept failures are not rate-limited")
        counted = [l for l in sidecar.log_lines(ACCEPT_FAILED) if "since the last line" in l]
        self.assertTrue(counted, "no line says how many failures it stands for")

        # Descriptors come back: both listeners serve again, once the sidecar
        # has seen every one of the 75 connections end (those still in the
        # backlogs are accepted after the pause and end at once).
        self.close_all(socks)
        wait_until(lambda: sidecar.stat("downstream_cx_total") >= 75 and
                   sidecar.stat("downstream_cx_active") == 0,
                   what="the sidecar to accept and close the 75 connections")
        self.assertEqual(http_get(sidecar.listener_port(0), "/hello.txt"),
                         (200, b"hello from nginx\n"))
        self.assertEqual(http_get(sidecar.listener_port(1), "/hello.txt"),
                         (200, b"hello from nginx\n"))
        self.assertGreater(sidecar.stat("downstream_cx_accept_fail"), 0)

    def test_max_connections_refuses_the_one_over(self):
        tls = cluster_tls(self.pki)
        sidecar = self.start_sidecar(
            config([dict(http_listener("web", "c"), max_connections=3)],
                   [cluster("c", [f"127.0.0.1:{self.nginx.port}"], tls)]))
        port = sidecar.listener_port(0)
        kept = []
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.auto_open = 0
            conn.connect()
            self.addCleanup(conn.close)
            kept.append(conn)

        def get(conn):
            conn.request("GET", "/hello.txt", headers={"Host": SERVER_NAME})
            response = conn.getresponse()
            return response.status, response.read()

        for conn in kept:
            self.assertEqual(get(conn), (200, b"hello from nginx\n"))
        over = self.connect(port)
        self.assertTrue(is_closed_without_data(over), "the 4th connection was not closed")
        self.assertEqual(sidecar.stat("downstream_cx_overflow"), 1)
        # The three go on.
        for conn in kept:
            self.assertEqual(get(conn), (200, b"hello from nginx\n"))
        # One leaves: there is room again.
        kept[0].close()
        wait_until(lambda: sidecar.stat("downstream_cx_active") == 2,
                   what="the closed connection to leave the count")
        self.assertEqual(http_get(port, "/hello.txt"), (200, b"hello from nginx\n"))
        self.assertEqual(sidecar.stat("downstream_cx_overflow"), 1)

    def test_max_connections_is_checked(self):
        sidecar = self.make_sidecar(
            config([listener("l", "c", max_connections=0)],
                   [cluster("c", ["127.0.0.1:1"], cluster_tls(self.pki))]))
        code, output = sidecar.validate()
        self.assertNotEqual(code, 0)
        self.assertIn("listeners[0].max_connections: must be between 1 and 1000000, got 0", output)


if __name__ == "__main__":
    unittest.main()
