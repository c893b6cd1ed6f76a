"""One owner per listen address. Listeners bind one SO_REUSEPORT socket per
worker, which would also let a second process of the same user bind the same
address and silently take part of the traffic: a listener address that
another process listens on is refused at start, at reload and by --validate,
naming the holder, while the workers of one sidecar still share it and a
reload that keeps or renames a listener keeps working."""

import os
import socket
import unittest

from tests.lib import harness
from tests.lib.harness import cluster, cluster_tls, config, http_get, listener


def reuseport_listener(host="127.0.0.1", port=0, family=socket.AF_INET):
    """reuseport_listener listens as the sidecar's workers do (SO_REUSEPORT),
    so that the kernel alone would let the sidecar share its port."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(16)
    return sock


class PortOwnerTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.nginx = self.start_https(files={"who": b"nginx\n"})

    def orders(self):
        return cluster("orders", [f"127.0.0.1:{self.nginx.port}"], cluster_tls(self.pki))

    def taken(self, **kwargs):
        sock = reuseport_listener(**kwargs)
        self.addCleanup(sock.close)
        return sock, sock.getsockname()[1]

    def test_second_sidecar_with_the_same_listener_is_refused(self):
        first = self.start_sidecar(config([listener("in", "orders")], [self.orders()]),
                                   name="first")
        port = first.listener_port()
        second = self.make_sidecar(config([listener("in", "orders", port=port)],
                                          [self.orders()]), name="second")
        self.assertNotEqual(second.start_refused(), 0)
        self.assertRegex(second.log(), rf"listeners\[0\]\.address: address 127\.0\.0\.1:{port} is in "
                                       rf"use by another process \(pid {first.process.pid}, "
                                       rf"sidecar\)")
        self.assertFalse(harness.port_accepts(second.admin_port))
        # The first one keeps all of its port: every connection reaches it.
        for _ in range(6):
            self.assertEqual(http_get(port, "/who"), (200, b"nginx\n"))
        self.assertGreaterEqual(first.stat("downstream_cx_total"), 6)

    def test_a_reuseport_socket_of_another_program_is_refused(self):
        _, port = self.taken()
        sidecar = self.make_sidecar(config([listener("in", "orders", port=port)],
                                           [self.orders()]))
        self.assertNotEqual(sidecar.start_refused(), 0)
        self.assertIn(f"address 127.0.0.1:{port} is in use by another process "
                      f"(pid {os.getpid()}, ", sidecar.log())

    def test_a_wildcard_listener_overlaps_a_specific_address(self):
        _, port = self.taken(host="0.0.0.0")
        sidecar = self.make_sidecar(config([listener("in", "orders", port=port)],
                                           [self.orders()]))
        self.assertNotEqual(sidecar.start_refused(), 0)
        self.assertIn(f"address 127.0.0.1:{port} is in use by another process", sidecar.log())

    def test_an_ipv6_only_listener_on_the_same_port_is_no_conflict(self):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback here")
        sock.listen(1)
        port = sock.getsockname()[1]
        sidecar = self.start_sidecar(config([listener("in", "orders", port=port)],
                                            [self.orders()]))
        self.assertEqual(http_get(port, "/who"), (200, b"nginx\n"))
        self.assertTrue(sidecar.is_running())

    def test_reload_adding_a_taken_address_is_refused(self):
        first = config([listener("in", "orders")], [self.orders()])
        sidecar = self.start_sidecar(first)
        port = sidecar.listener_port()
        _, taken_port = self.taken()
        second = config([listener("in", "orders", port=port),
                         listener("more", "orders", port=taken_port)], [self.orders()],
                        admin_port=sidecar.admin_port)
        sidecar.reload(second, r"config reload refused: .* has 1 problem; the "
                               r"configuration in force stays")
        self.assertTrue(sidecar.log_lines(
            rf"config reload refused: listeners\[1\]\.address: address 127\.0\.0\.1:{taken_port} "
            rf"is in use by another process \(pid {os.getpid()}, "), sidecar.log())
        dump = sidecar.admin_json("/config_dump")["configs"][0]["config"]
        self.assertEqual([l["name"] for l in dump["listeners"]], ["in"])
        self.assertEqual(http_get(port, "/who"), (200, b"nginx\n"))

    def test_reload_renaming_a_listener_keeps_its_address(self):
        # The renamed listener is new (new sockets) while the old one still
        # holds the address: both are this process's, so that is no conflict.
        sidecar = self.start_sidecar(config([listener("in", "orders")], [self.orders()]))
        port = sidecar.listener_port()
        renamed = config([listener("renamed", "orders", port=port)], [self.orders()],
                         admin_port=sidecar.admin_port)
        sidecar.reload(renamed, r"configuration applied: 1 listener,")
        self.assertEqual(http_get(port, "/who"), (200, b"nginx\n"))
        dump = sidecar.admin_json("/config_dump")["configs"][0]["config"]
        self.assertEqual([l["name"] for l in dump["listeners"]], ["renamed"])

    def test_validate_fails_on_a_taken_port(self):
        _, port = self.taken()
        sidecar = self.make_sidecar(config([listener("in", "orders", port=port)],
                                           [self.orders()]))
        code, output = sidecar.validate()
        self.assertEqual(code, 1, output)
        self.assertIn(f"listeners[0].address: address 127.0.0.1:{port} is in use by another "
                      f"process (pid {os.getpid()}, ", output)

    def test_validate_accepts_the_ports_of_the_sidecar_running_the_same_file(self):
        # `sidecar --validate` before a SIGHUP, as `nginx -t` before a reload.
        sidecar = self.start_sidecar(config([listener("in", "orders")], [self.orders()]))
        code, output = sidecar.validate()
        self.assertEqual(code, 0, output)
        self.assertIn(f"held by the sidecar running this file (pid {sidecar.process.pid})",
                      output)


if __name__ == "__main__":
    unittest.main()
