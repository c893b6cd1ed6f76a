"""The admin endpoint: every path answers with the documented fields, keys
never leak, unknown paths get a JSON 404."""

import http.client
import json
import socket
import threading
import time
import unittest

from tests.lib import harness
from tests.lib.control_plane import xds_bootstrap
from tests.lib.harness import (CLIENT_URI, cluster, cluster_tls, config, http_get, listener,
                               normalize_serial)
from tests.lib.pki import find_key_material, key_material_of_file


class AdminTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.nginx = self.start_https()
        self.sidecar = self.simple_sidecar(self.nginx.port)
        # Some traffic, so that counters have something to count.
        self.assertEqual(http_get(self.sidecar.listener_port(), "/hello.txt")[0], 200)

    def test_ready(self):
        self.assertEqual(self.sidecar.admin_get("/ready"), (200, "LIVE\n"))
        # Set-up waited for that 200; what it cannot show is a 503: a sidecar
        # whose control plane has given nothing yet is up (its admin endpoint
        # answers, its state is LIVE) but not ready.
        closed, port = harness.closed_port()
        self.addCleanup(closed.close)
        xds = xds_bootstrap(port, self.pki.client, self.pki.ca_crt, "waiting",
                            initial_fetch_timeout_ms=60000)
        waiting = self.make_sidecar(config([], [], xds=xds), name="waiting")
        waiting.start(wait_ready=False)
        info = harness.wait_until(lambda: waiting.admin_json("/server_info"),
                                  what="the waiting sidecar's admin endpoint")
        self.assertEqual(info["state"], "LIVE")
        self.assertEqual(waiting.admin_get("/ready"), (503, "NOT READY\n"))
        self.assertTrue(waiting.is_running(), waiting.log())

    def test_server_info(self):
        info = self.sidecar.admin_json("/server_info")
        self.assertEqual(info["state"], "LIVE")
        self.assertIn(self.sidecar.config_path, json.dumps(info))

    def test_clusters(self):
        clusters = self.sidecar.admin_json("/clusters?format=json")["cluster_statuses"]
        self.assertEqual([c["name"] for c in clusters], ["c"])
        hosts = clusters[0]["host_statuses"]
        self.assertEqual(len(hosts), 1)
        host = hosts[0]
        self.assertEqual(host["address"]["socket_address"]["address"], "127.0.0.1")
        self.assertEqual(int(host["address"]["socket_address"]["port_value"]), self.nginx.port)
        # Set-up made one request, on one connection, that has ended.
        self.assertEqual(harness.host_stat(host, "cx_total"), 1, host)
        self.assertEqual(harness.host_stat(host, "cx_connect_fail"), 0, host)
        self.assertEqual(harness.host_stat(host, "ssl_handshake_failures"), 0, host)
        harness.wait_until(lambda: harness.host_stat(self.sidecar.hosts("c")[0], "cx_active") == 0,
                           what="cx_active to come back to 0")
        self.assertIs(host["health_status"]["failed_outlier_check"], False)
        self.assertIn("last_error", host)

    def test_certs(self):
        certificates = self.sidecar.admin_json("/certs")["certificates"]
        self.assertGreaterEqual(len(certificates), 1)
        chain = certificates[0]["cert_chain"]
        leaf = chain[0]
        self.assertEqual(leaf["path"], self.pki.client.crt)
        self.assertEqual(normalize_serial(leaf["serial_number"]),
                         self.pki.serial(self.pki.client.crt))
        self.assertIn(CLIENT_URI, json.dumps(leaf["subject_alt_names"]))
        for key in ("valid_from", "expiration_time", "days_until_expiration"):
            self.assertIn(key, leaf)
        self.assertGreaterEqual(int(leaf["days_until_expiration"]), 0)
        cas = certificates[0]["ca_cert"]
        self.assertEqual([normalize_serial(c["serial_number"]) for c in cas],
                         [self.pki.serial(self.pki.ca_crt)])

    def test_material_given_in_the_file_works_and_is_redacted(self):
        # PEM text in the config itself (certificate_pem, private_key_pem,
        # trusted_ca_pem), as the control plane's SDS gives it.
        nginx = self.start_https()
        read = lambda path: harness.read_text(path)
        tls = cluster_tls(self.pki, certificate=None, private_key=None, trusted_ca=None)
        tls.update(certificate_pem=read(self.pki.client.crt),
                   private_key_pem=read(self.pki.client.key),
                   trusted_ca_pem=read(self.pki.ca_crt))
        sidecar = self.start_sidecar(
            config([listener("l", "c")], [cluster("c", [f"127.0.0.1:{nginx.port}"], tls)]),
            name="inline")
        self.assertEqual(http_get(sidecar.listener_port(0), "/hello.txt"),
                         (200, b"hello from nginx\n"))
        status, body = sidecar.admin_get("/config_dump")
        self.assertEqual(status, 200)
        self.assertNotIn("PRIVATE KEY", body)
        dumped = json.loads(body)["configs"][0]["config"]["clusters"][0]["tls"]
        self.assertEqual(dumped["private_key_pem"], "[redacted]")
        self.assertIn("BEGIN CERTIFICATE", dumped["certificate_pem"])

    def test_no_page_shows_key_material(self):
        # A key given as a path and one given inline: neither appears, in
        # any form (PEM body or its lines, DER, the private value), on any
        # page, nor in the log.
        inline_pair = self.pki.issue_client("inline-client")
        tls = cluster_tls(self.pki, certificate=None, private_key=None)
        tls.update(certificate_pem=harness.read_text(inline_pair.crt),
                   private_key_pem=harness.read_text(inline_pair.key))
        inline = self.simple_sidecar(self.nginx.port, tls, name="inline")
        self.assertEqual(http_get(inline.listener_port(), "/hello.txt"),
                         (200, b"hello from nginx\n"))
        material = key_material_of_file(self.pki.client.key)
        material.update(key_material_of_file(inline_pair.key))
        for sidecar in (self.sidecar, inline):
            places = sidecar.admin_pages()
            places["log"] = sidecar.log()
            self.assertEqual(find_key_material(places, material), [])
        # The check sees a key where there is one.
        self.assertTrue(find_key_material({"key file": harness.read_text(inline_pair.key)},
                                          material))

    def test_config_dump_redacts_private_keys(self):
        status, body = self.sidecar.admin_get("/config_dump")
        self.assertEqual(status, 200)
        self.assertNotIn("BEGIN", body)
        self.assertNotIn(self.pki.client.key, body)
        dump = json.loads(body)
        redacted = []

        def walk(value):
            if isinstance(value, dict):
                for k, v in value.items():
                    if k == "private_key":
                        redacted.append(v)
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(dump)
        self.assertTrue(redacted, "no private_key in /config_dump")
        self.assertEqual(set(redacted), {"[redacted]"})
        # The rest of the configuration is there.
        self.assertIn(self.pki.client.crt, body)

    def test_stats(self):
        stats = self.sidecar.stats()
        for name in ("ssl_handshake", "ssl_session_reused", "ssl_handshake_full",
                     "downstream_cx_total", "upstream_cx_connect_fail"):
            self.assertIsNotNone(self.sidecar.stat(name), f"{name} missing from {sorted(stats)}")
        self.assertGreaterEqual(self.sidecar.stat("downstream_cx_total"), 1)
        self.assertGreaterEqual(self.sidecar.stat("ssl_handshake"), 1)
        self.assertEqual(self.sidecar.stat("upstream_cx_connect_fail"), 0)

    def test_stats_prometheus(self):
        status, body = self.sidecar.admin_get("/stats/prometheus")
        self.assertEqual(status, 200)
        samples = [l for l in body.splitlines() if l and not l.startswith("#")]
        self.assertTrue(samples)
        for line in samples:
            self.assertRegex(line, r"^mtls_sidecar_\w+(\{[^}]*\})? -?[0-9.eE+-]+$")
        total = [l for l in samples if l.startswith("mtls_sidecar_downstream_cx_total")]
        self.assertTrue(total, body)
        self.assertGreaterEqual(float(total[0].rsplit(" ", 1)[1]), 1)

    def test_unknown_path_is_a_json_404(self):
        status, content_type, body = self.sidecar.admin_request("GET", "/no/such/path")
        self.assertEqual(status, 404)
        self.assertIsInstance(json.loads(body), dict)

    def test_counters_follow_traffic(self):
        before = self.sidecar.stat("downstream_cx_total")
        for _ in range(3):
            self.assertEqual(http_get(self.sidecar.listener_port(), "/hello.txt")[0], 200)
        harness.wait_until(lambda: self.sidecar.stat("downstream_cx_total") == before + 3,
                           what="downstream_cx_total to grow by 3")
        host = self.sidecar.hosts("c")[0]
        self.assertGreaterEqual(harness.host_stat(host, "cx_total"), 4)


class AdminHostileTest(harness.IntegrationTest):
    """The admin endpoint against a browser page on the same machine (a
    cross-site POST, DNS rebinding) and against connections that trickle."""

    def setUp(self):
        super().setUp()
        self.nginx = self.start_https()
        self.sidecar = self.simple_sidecar(self.nginx.port)

    def request(self, method, path, headers):
        conn = http.client.HTTPConnection("127.0.0.1", self.sidecar.admin_port, timeout=5)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def test_foreign_host_is_refused_and_nothing_done(self):
        # DNS rebinding: evil.example resolves to 127.0.0.1; the browser sends its name.
        status, body = self.request("GET", "/config_dump", {"Host": "evil.example:15000"})
        self.assertEqual(status, 421)
        self.assertNotIn(b"clusters", body)
        status, _ = self.request("POST", "/quitquitquit", {"Host": "evil.example"})
        self.assertEqual(status, 421)
        time.sleep(0.5)  # a drain would have begun by now
        self.assertTrue(self.sidecar.is_running())
        self.assertEqual(self.sidecar.admin_get("/ready")[0], 200)
        # The local names, with and without port, are served.
        port = self.sidecar.admin_port
        for host in ("localhost", f"localhost:{port}", "127.0.0.1", f"127.0.0.1:{port}",
                     "[::1]", f"[::1]:{port}", "LOCALHOST"):
            self.assertEqual(self.request("GET", "/ready", {"Host": host})[0], 200, host)
        for host in ("localhost.evil.example", "127.0.0.1.evil.example", "[::1]x", "::1",
                     "localhost:80x", ""):
            self.assertEqual(self.request("GET", "/ready", {"Host": host})[0], 421, host)

    def test_cross_site_post_is_refused(self):
        port = self.sidecar.admin_port
        status, _ = self.request("POST", "/quitquitquit",
                                 {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"})
        self.assertEqual(status, 403)
        status, _ = self.request("POST", "/quitquitquit",
                                 {"Host": f"127.0.0.1:{port}", "Origin": "null"})
        self.assertEqual(status, 403)
        time.sleep(0.5)
        self.assertTrue(self.sidecar.is_running())
        # A GET with a foreign Origin changes nothing and is answered.
        status, _ = self.request("GET", "/ready", {"Host": f"127.0.0.1:{port}",
                                                  "Origin": "http://evil.example"})
        self.assertEqual(status, 200)
        # A local page may POST.
        status, _ = self.request("POST", "/quitquitquit",
                                 {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
        self.assertEqual(status, 200)
        self.sidecar.process.wait(10)

    def test_trickling_connections_do_not_take_every_slot(self):
        stop = threading.Event()
        socks = []
        for _ in range(70):  # more than the 64 slots, whatever else is open
            s = socket.create_connection(("127.0.0.1", self.sidecar.admin_port), timeout=5)
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        time.sleep(0.5)  # all accepted (or refused) before the first byte

        def trickle():
            request = b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000
            for i in range(len(request)):
                for s in socks:
                    try:
                        s.send(request[i:i + 1])
                    except OSError:
                        pass
                if stop.wait(0.2):
                    return

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(stop.set)
        time.sleep(1)
        for _ in range(5):
            status, body = self.sidecar.admin_get("/ready", timeout=3)
            self.assertEqual(status, 200, body)
            time.sleep(0.3)


if __name__ == "__main__":
    unittest.main()
