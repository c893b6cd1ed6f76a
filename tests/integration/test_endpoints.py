"""Endpoints: a dead endpoint costs the client nothing, and endpoints can be
host names with weights."""

import unittest

from tests.lib import harness
from tests.lib.harness import cluster, cluster_tls, config, http_get, listener

CONNECTIONS = 50


class EndpointsTest(harness.IntegrationTest):

    def test_one_of_two_endpoints_down_every_connection_succeeds(self):
        nginx = self.start_https()
        dead_socket, dead = harness.closed_port()  # connections to it are refused
        self.addCleanup(dead_socket.close)
        c = cluster("c", [f"127.0.0.1:{dead}", f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki),
                    outlier_detection={"consecutive_failures": 3, "base_ejection_ms": 30000,
                                       "max_ejection_ms": 60000})
        l = listener("l", "c")
        sidecar = self.start_sidecar(config([l], [c]))
        failures = []
        for i in range(CONNECTIONS):
            try:
                status, body = http_get(sidecar.listener_port(), f"/hello.txt?n={i}")
                if status != 200 or body != b"hello from nginx\n":
                    failures.append((i, status, body[:100]))
            except OSError as e:
                failures.append((i, repr(e)))
        self.assertEqual(failures, [])
        self.assertEqual(len(nginx.wait_access_entries(CONNECTIONS)), CONNECTIONS)
        # The dead endpoint was really tried (or this test proves nothing)...
        sidecar.wait_log(rf"connect failed: cluster=c endpoint=127\.0\.0\.1:{dead}\b")
        hosts = {h["address"]["socket_address"]["port_value"]: h for h in sidecar.hosts("c")}
        self.assertGreaterEqual(harness.host_stat(hosts[dead], "cx_connect_fail"), 1)
        # ...and, after 3 failures in a row, ejected.
        self.assertTrue(hosts[dead]["health_status"]["failed_outlier_check"], hosts[dead])
        self.assertFalse(hosts[nginx.port]["health_status"]["failed_outlier_check"])
        self.assertEqual(harness.host_stat(hosts[nginx.port], "cx_connect_fail"), 0)

    def test_every_endpoint_down_closes_the_client_and_says_why(self):
        dead_socket, dead = harness.closed_port()
        self.addCleanup(dead_socket.close)
        c = cluster("c", [f"127.0.0.1:{dead}"], cluster_tls(self.pki))
        sidecar = self.start_sidecar(config([listener("l", "c")], [c]))
        sock = self.connect(sidecar.listener_port())
        self.assertTrue(harness.is_closed_without_data(sock, timeout=10))
        sidecar.wait_log(rf"connect failed: cluster=c endpoint=127\.0\.0\.1:{dead}\b")
        self.assertGreaterEqual(sidecar.stat("upstream_cx_connect_fail"), 1)
        self.assertEqual(sidecar.stat("downstream_cx_no_endpoint"), 1)
        self.assertEqual(sidecar.admin_get("/ready")[0], 200)

    def test_round_robin_spreads_connections_by_weight(self):
        light = self.start_https()
        heavy = self.start_https()
        c = cluster("c", [f"127.0.0.1:{light.port}",
                          {"address": f"127.0.0.1:{heavy.port}", "weight": 3}],
                    cluster_tls(self.pki), lb_policy="round_robin")
        sidecar = self.start_sidecar(config([listener("l", "c")], [c]))
        total = 40
        for i in range(total):
            self.assertEqual(http_get(sidecar.listener_port(), f"/hello.txt?n={i}")[0], 200)
        harness.wait_until(lambda: len(light.access_entries()) + len(heavy.access_entries())
                           == total, what="nginx to log every request")
        light_count, heavy_count = len(light.access_entries()), len(heavy.access_entries())
        # Smooth weighted round robin, per worker: 3 to 1, give or take one
        # per worker.
        self.assertGreaterEqual(light_count, 6, (light_count, heavy_count))
        self.assertGreaterEqual(heavy_count, 2 * light_count, (light_count, heavy_count))

    def test_endpoint_as_host_name_with_weight(self):
        nginx = self.start_https()
        c = cluster("c", [{"address": f"localhost:{nginx.port}", "weight": 2}],
                    cluster_tls(self.pki))
        sidecar = self.start_sidecar(config([listener("l", "c")], [c]))
        status, body = http_get(sidecar.listener_port(), "/hello.txt")
        self.assertEqual((status, body), (200, b"hello from nginx\n"))
        # server_name is set, so SNI is upstream.test, not the endpoint's host.
        self.assertEqual(nginx.wait_access_entries(1)[-1]["server_name"], harness.SERVER_NAME)


if __name__ == "__main__":
    unittest.main()
