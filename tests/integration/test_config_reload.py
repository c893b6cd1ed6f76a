"""SIGHUP re-reads the whole configuration: listeners and clusters come and
go, what stays keeps its sockets, counters and connections, and a bad file
or an address that cannot be bound is refused while the old configuration
keeps serving."""

import http.client
import json
import os
import socket
import unittest

from tests.lib import harness
from tests.lib.harness import cluster, cluster_tls, config, http_get, listener


class ConfigReloadTest(harness.IntegrationTest):
    def setUp(self):
        super().setUp()
        self.blue = self.start_https(files={"who": b"blue\n"})
        self.green = self.start_https(files={"who": b"green\n"})

    def cluster_to(self, name, nginx):
        return cluster(name, [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))

    def keep_alive_get(self, conn, path="/who"):
        conn.request("GET", path, headers={"Host": harness.SERVER_NAME})
        response = conn.getresponse()
        return response.status, response.read()

    def test_listeners_and_clusters_come_and_go(self):
        first = config([listener("to_blue", "blue")], [self.cluster_to("blue", self.blue)])
        sidecar = self.start_sidecar(first)
        blue_port = sidecar.listener_port(0)
        self.assertEqual(http_get(blue_port, "/who"), (200, b"blue\n"))
        # A connection that stays open across every reload below.
        kept = http.client.HTTPConnection("127.0.0.1", blue_port, timeout=10)
        self.addCleanup(kept.close)
        self.assertEqual(self.keep_alive_get(kept), (200, b"blue\n"))

        # Add a listener and a cluster.
        green_listener = listener("to_green", "green")
        second = config([listener("to_blue", "blue", port=blue_port),
                         green_listener],
                        [self.cluster_to("blue", self.blue), self.cluster_to("green", self.green)],
                        admin_port=sidecar.admin_port)
        sidecar.reload(second, r"configuration applied: 2 listeners, 2 clusters")
        green_port = harness.listener_port(green_listener)
        self.assertEqual(http_get(green_port, "/who"), (200, b"green\n"))
        self.assertEqual(http_get(blue_port, "/who"), (200, b"blue\n"))
        self.assertEqual(self.keep_alive_get(kept), (200, b"blue\n"))
        # The blue endpoint kept its counters: same endpoint, same state.
        self.assertGreaterEqual(harness.host_stat(sidecar.hosts("blue")[0], "cx_total"), 3)

        # Point the blue listener at green, and remove the green listener.
        third = config([listener("to_blue", "green", port=blue_port)],
                       [self.cluster_to("green", self.green)], admin_port=sidecar.admin_port)
        sidecar.reload(third, r"configuration applied: 1 listener, 1 cluster ")
        self.assertEqual(http_get(blue_port, "/who"), (200, b"green\n"))
        harness.wait_until(lambda: not harness.port_accepts(green_port),
                           what="the removed listener to stop accepting")
        # The connection opened under the first configuration still works,
        # on the cluster it started with.
        self.assertEqual(self.keep_alive_get(kept), (200, b"blue\n"))
        self.assertEqual(sidecar.admin_get("/ready")[0], 200)

    def test_bad_file_is_refused_and_the_old_configuration_stays(self):
        first = config([listener("to_blue", "blue")], [self.cluster_to("blue", self.blue)])
        sidecar = self.start_sidecar(first)
        port = sidecar.listener_port(0)
        broken = json.loads(json.dumps(first))
        broken["clusters"][0]["tls"]["verfiy_depth"] = 3
        sidecar.reload(broken, r"config reload refused: .*problem")
        self.assertTrue(sidecar.log_lines(r"config reload refused: clusters\[0\]\.tls\.verfiy_depth"))
        self.assertEqual(http_get(port, "/who"), (200, b"blue\n"))

    def test_new_cluster_with_bad_certificates_is_refused(self):
        first = config([listener("to_blue", "blue")], [self.cluster_to("blue", self.blue)])
        sidecar = self.start_sidecar(first)
        port = sidecar.listener_port(0)
        bad = self.cluster_to("green", self.green)
        bad["tls"]["certificate"] = self.pki.server.crt  # does not match the client key
        second = config([listener("to_blue", "blue", port=port),
                         listener("to_green", "green")],
                        [self.cluster_to("blue", self.blue), bad], admin_port=sidecar.admin_port)
        sidecar.reload(second, r"config reload refused: clusters\[1\]\.tls\.private_key: "
                               r"private key .* does not match certificate")
        self.assertEqual(http_get(port, "/who"), (200, b"blue\n"))
        self.assertEqual(len(sidecar.admin_json("/clusters?format=json")["cluster_statuses"]), 1)

    def test_address_in_use_is_refused(self):
        first = config([listener("to_blue", "blue")], [self.cluster_to("blue", self.blue)])
        sidecar = self.start_sidecar(first)
        port = sidecar.listener_port(0)
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        taken_port = taken.getsockname()[1]
        second = config([listener("to_blue", "blue", port=port),
                         listener("to_green", "green", port=taken_port)],
                        [self.cluster_to("blue", self.blue), self.cluster_to("green", self.green)],
                        admin_port=sidecar.admin_port)
        sidecar.reload(second, r"config reload refused: listeners\[1\]\.address: "
                               rf"address 127\.0\.0\.1:{taken_port} is in use by another "
                               rf"process \(pid {os.getpid()}, ")
        self.assertEqual(http_get(port, "/who"), (200, b"blue\n"))

    # ---- a change of what is verified, with the same certificate files ----

    def get_or_fail(self, port):
        """get_or_fail returns the status of a GET through `port`, or None
        when the connection ended without a response."""
        try:
            return http_get(port, "/who")[0]
        except (OSError, http.client.HTTPException):
            return None

    def verification_change(self, **tls_change):
        """verification_change serves through an HTTP listener (which pools
        its upstream connection) and a TCP listener (whose second connection
        resumes the first's session), then reloads the same files with
        `tls_change`, which blue's certificate does not satisfy: neither a
        pooled connection nor a cached session may carry a request past the
        new check."""
        web = harness.http_listener("web", "blue")
        raw = listener("raw", "blue")
        first = config([web, raw], [self.cluster_to("blue", self.blue)], workers=1)
        sidecar = self.start_sidecar(first)
        web_port, raw_port = sidecar.listener_port(0), sidecar.listener_port(1)
        self.assertEqual(http_get(web_port, "/who"), (200, b"blue\n"))
        self.assertEqual(http_get(raw_port, "/who"), (200, b"blue\n"))
        self.assertEqual(http_get(raw_port, "/who"), (200, b"blue\n"))
        self.assertGreaterEqual(sidecar.stat("http_pool_idle"), 1, "nothing pooled")
        self.assertGreaterEqual(sidecar.stat("ssl_session_reused"), 1, "no session resumed")
        reused = sidecar.stat("ssl_session_reused")
        pooled = sidecar.stat("http_pool_reused")

        changed = self.cluster_to("blue", self.blue)
        changed["tls"].update(tls_change)
        second = config([harness.http_listener("web", "blue", port=web_port),
                         listener("raw", "blue", port=raw_port)], [changed],
                        admin_port=sidecar.admin_port, workers=1)
        sidecar.reload(second, r"configuration applied")
        self.assertNotEqual(self.get_or_fail(web_port), 200,
                            "a pooled connection carried a request past the new check")
        self.assertNotEqual(self.get_or_fail(raw_port), 200,
                            "a cached session resumed past the new check")
        self.assertEqual(sidecar.stat("ssl_session_reused"), reused)
        self.assertEqual(sidecar.stat("http_pool_reused"), pooled)
        self.assertGreaterEqual(sidecar.stat("ssl_connection_error"), 2)
        return sidecar

    def test_changed_subject_alt_names_make_a_new_context(self):
        self.verification_change(match_subject_alt_names=["URI:spiffe://test/someone-else"])

    def test_changed_server_name_makes_a_new_context(self):
        self.verification_change(server_name="wrong.test")


if __name__ == "__main__":
    unittest.main()
