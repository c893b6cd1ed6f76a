"""The admin endpoint: every path answers with the documented fields, keys
never leak, unknown paths get a JSON 404."""

import http.client
import json
import re
import signal
import socket
import time
import unittest
import urllib.parse

from tests.lib import harness
from tests.lib.control_plane import xds_bootstrap
from tests.lib.harness import (CLIENT_URI, SERVER_NAME, cluster, cluster_tls, config, http_get,
                               listener, normalize_serial)
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
        self.assertEqual(waiting.admin_get("/ready"),
                         (503, "NOT READY: waiting for the control plane's first clusters and "
                               "listeners (at most xds.initial_fetch_timeout_ms)\n"))
        self.assertTrue(waiting.is_running(), waiting.log())

    def test_health_address_answers_ready_and_nothing_else(self):
        # An injected pod's probes: the kubelet reaches --health-address on
        # the pod's IP (here loopback), naming that IP as Host; it gets
        # /ready and nothing else, while the admin endpoint stays where it
        # is. --node-id names the node over the file's xds.node.id (the
        # bootstrap names one too).
        closed, xds_port = harness.closed_port()
        self.addCleanup(closed.close)
        xds = xds_bootstrap(xds_port, self.pki.client, self.pki.ca_crt, "from-the-file",
                            initial_fetch_timeout_ms=60000)
        health_port = harness.free_port()
        waiting = self.make_sidecar(config([], [], xds=xds), name="injected",
                                    args=["--health-address", f"127.0.0.1:{health_port}",
                                          "--node-id", "checkout-7d9c.shop"])
        waiting.start(wait_ready=False)
        harness.wait_until(lambda: waiting.admin_json("/server_info"),
                           what="the injected sidecar's admin endpoint")

        def probe(method, path, host="10.1.2.3:15021"):
            conn = http.client.HTTPConnection("127.0.0.1", health_port, timeout=5)
            self.addCleanup(conn.close)
            conn.request(method, path, headers={"Host": host})
            response = conn.getresponse()
            return response.status, response.read()

        # The same answer as the admin endpoint's /ready, the reason included.
        self.assertEqual(probe("GET", "/ready"),
                         (503, b"NOT READY: waiting for the control plane's first clusters and "
                               b"listeners (at most xds.initial_fetch_timeout_ms)\n"))
        self.assertEqual(probe("HEAD", "/ready")[0], 503)
        for method, path in (("GET", "/config_dump"), ("GET", "/stats"), ("GET", "/certs"),
                             ("POST", "/quitquitquit"), ("POST", "/ready")):
            status, body = probe(method, path)
            self.assertEqual(status, 404, (method, path))
            self.assertNotIn(b"paths", body)  # no list of what the admin endpoint serves
        self.assertTrue(waiting.is_running(), waiting.log())
        configs = waiting.admin_json("/config_dump")["configs"]
        self.assertEqual(configs[0]["config"]["xds"]["node"]["id"], "checkout-7d9c.shop")
        self.assertEqual(configs[1]["control_plane"]["node_id"], "checkout-7d9c.shop")
        self.assertIn("xds: node checkout-7d9c.shop subscribing", waiting.log())
        # A ready sidecar's probe answers 200 there.
        ready_port = harness.free_port()
        c = cluster("c", [f"127.0.0.1:{self.nginx.port}"], cluster_tls(self.pki))
        self.start_sidecar(config([listener("l", "c")], [c]), name="ready-injected",
                           args=["--health-address", f"127.0.0.1:{ready_port}"])
        conn = http.client.HTTPConnection("127.0.0.1", ready_port, timeout=5)
        self.addCleanup(conn.close)
        conn.request("GET", "/ready", headers={"Host": "10.1.2.3:15021"})
        response = conn.getresponse()
        self.assertEqual((response.status, response.read()), (200, b"LIVE\n"))

    def test_server_info(self):
        info = self.sidecar.admin_json("/server_info")
        self.assertEqual(info["state"], "LIVE")
        self.assertIn(self.sidecar.config_path, json.dumps(info))
        self.assertIs(info["workers_current"], True)  # /ready said 200: the workers serve it

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


def prometheus_samples(body):
    """prometheus_samples returns {'family{labels}': value} of a text body."""
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


class EnvoyStatsTest(harness.IntegrationTest):
    """Stats an Envoy user can use (issue 11, item 6): per listener and per
    cluster with Envoy's prefixes and names, ?filter= and ?format=, reloads
    counted."""

    def setUp(self):
        super().setUp()
        self.nginx = self.start_https()
        c = cluster("c", [f"127.0.0.1:{self.nginx.port}"], cluster_tls(self.pki))
        self.config = config([listener("front", "c"), listener("back", "c")], [c])
        self.sidecar = self.start_sidecar(self.config)

    def get(self, listener_index):
        port = self.sidecar.listener_port(listener_index)
        self.assertEqual(http_get(port, "/hello.txt")[0], 200)

    def reload(self, new_config, expect_log):
        harness.write_file(self.sidecar.config_path, json.dumps(new_config, indent=2))
        count = len(self.sidecar.log_lines(expect_log))
        self.sidecar.send_signal(signal.SIGHUP)
        self.sidecar.wait_log(expect_log, count=count + 1)

    def test_per_listener_counters_under_envoy_prefixes(self):
        for index in (0, 0, 1):
            self.get(index)
        harness.wait_until(lambda: self.sidecar.stat("downstream_cx_active") == 0,
                           what="every connection to end")
        stats = self.sidecar.stats()
        self.assertEqual(stats["listener.front.downstream_cx_total"], 2, stats)
        self.assertEqual(stats["listener.back.downstream_cx_total"], 1, stats)
        self.assertEqual(stats["downstream_cx_total"], 3)  # the server-wide sum stays
        for name in ("downstream_cx_active", "downstream_cx_overflow",
                     "downstream_cx_idle_timeout", "downstream_cx_no_endpoint"):
            self.assertEqual(stats[f"listener.front.{name}"], 0, name)
        # TCP listeners have no HTTP connection manager stats.
        self.assertFalse([k for k in stats if k.startswith("http.")], stats)
        prometheus = prometheus_samples(self.sidecar.admin_get("/stats/prometheus")[1])
        self.assertEqual(
            prometheus['mtls_sidecar_listener_downstream_cx_total{listener="front"}'], 2)
        self.assertEqual(
            prometheus['mtls_sidecar_listener_downstream_cx_active{listener="back"}'], 0)

        # A listener kept by a reload keeps its counters; a new one starts at 0.
        kept = json.loads(json.dumps(self.config))
        kept["listeners"].append(listener("extra", "c"))
        self.reload(kept, r"configuration applied: 3 listeners")
        stats = self.sidecar.stats()
        self.assertEqual(stats["listener.front.downstream_cx_total"], 2, stats)
        self.assertEqual(stats["listener.extra.downstream_cx_total"], 0, stats)
        self.get(1)
        harness.wait_until(
            lambda: self.sidecar.stats()["listener.back.downstream_cx_total"] == 2,
            what="listener.back.downstream_cx_total to reach 2")

    def test_cluster_counters_use_envoys_names(self):
        for _ in range(3):
            self.get(0)
        harness.wait_until(lambda: self.sidecar.stat("downstream_cx_active") == 0,
                           what="every connection to end")
        stats = self.sidecar.stats()
        expect = {"upstream_cx_total": 3, "upstream_cx_active": 0, "upstream_cx_connect_fail": 0,
                  "upstream_cx_connect_timeout": 0, "ssl.handshake": 3,
                  "ssl.connection_error": 0, "upstream_rq_total": 0, "upstream_rq_retry": 0}
        for name, value in expect.items():
            self.assertEqual(stats.get(f"cluster.c.{name}"), value, f"cluster.c.{name}: {stats}")
        # Sessions are resumed after the first handshake, and counted per cluster too.
        self.assertEqual(stats["cluster.c.ssl.session_reused"], stats["ssl_session_reused"])
        self.assertGreaterEqual(stats["cluster.c.ssl.session_reused"], 1)
        prometheus = prometheus_samples(self.sidecar.admin_get("/stats/prometheus")[1])
        self.assertEqual(prometheus['mtls_sidecar_cluster_ssl_handshake{cluster="c"}'], 3)

    def test_filter_and_format(self):
        self.get(0)
        names = [s["name"] for s in
                 self.sidecar.admin_json("/stats?filter=" + urllib.parse.quote(r"^listener\."))
                 ["stats"]]
        self.assertTrue(names)
        self.assertTrue(all(n.startswith("listener.") for n in names), names)
        self.assertIn("listener.front.downstream_cx_total", names)
        only = self.sidecar.admin_json("/stats?format=json&filter=cx_total$")
        self.assertEqual(sorted(s["name"] for s in only["stats"]),
                         ["cluster.c.upstream_cx_total", "downstream_cx_total",
                          "listener.back.downstream_cx_total",
                          "listener.front.downstream_cx_total", "upstream_cx_total"])
        self.assertNotIn("http_rq_latency_ms", only)  # the histogram is a stat like the others
        # ?format=prometheus is /stats/prometheus; the filter picks the same stats.
        status, content_type, body = self.sidecar.admin_request(
            "GET", "/stats?format=prometheus&filter=" + urllib.parse.quote("^listener\\.front\\."))
        self.assertEqual((status, content_type), (200, "text/plain; version=0.0.4"))
        text = body.decode()
        samples = prometheus_samples(text)
        self.assertTrue(samples)
        self.assertTrue(all('{listener="front"}' in k for k in samples), text)
        # Each family still has its HELP and TYPE.
        self.assertIn("# TYPE mtls_sidecar_listener_downstream_cx_total counter", text)
        self.assertIn("# TYPE mtls_sidecar_listener_downstream_cx_active gauge", text)
        status, body = self.sidecar.admin_get("/stats/prometheus?filter=^downstream_cx_total$")
        self.assertEqual(list(prometheus_samples(body)), ["mtls_sidecar_downstream_cx_total"])
        self.assertEqual(self.sidecar.admin_get("/stats/prometheus?format=json")[0], 200)
        # Refusals name what is wrong.
        status, body = self.sidecar.admin_get("/stats?filter=" + urllib.parse.quote("(cx"))
        self.assertEqual(status, 400)
        self.assertIn("(cx", json.loads(body)["error"])
        status, body = self.sidecar.admin_get("/stats?filter=" + "a" * 300)
        self.assertEqual(status, 400)
        self.assertIn("filter", json.loads(body)["error"])
        status, body = self.sidecar.admin_get("/stats?format=xml")
        self.assertEqual(status, 400)
        self.assertIn("format", json.loads(body)["error"])

    def test_docs_list_every_stat(self):
        http_config = json.loads(json.dumps(self.config))
        http_config["listeners"].append(harness.http_listener("web", "c"))
        http_config["admin"]["address"] = f"127.0.0.1:{harness.free_port()}"
        for entry in http_config["listeners"]:
            entry["address"] = f"127.0.0.1:{harness.free_port()}"
        names = self.start_sidecar(http_config, name="web").stats()
        docs = harness.read_text("docs/stats.md")
        missing = []
        for name in names:
            generic = re.sub(r"^(listener|http|cluster)\.[^.]+\.", r"\1.<name>.", name)
            generic = re.sub(r"^ssl\.handshake_failure\..*", "ssl.handshake_failure.<reason>",
                             generic)
            first_of_range = re.sub(r"_[2-5]xx$", "_1xx", generic)  # "_1xx ... _5xx"
            if f"`{generic}`" not in docs and f"`{first_of_range}`" not in docs:
                missing.append(generic)
        self.assertEqual(missing, [], "docs/stats.md does not list these")

    def test_reloads_are_counted(self):
        self.assertEqual((self.sidecar.stat("config_reload_success"),
                          self.sidecar.stat("config_reload_failure")), (0, 0))
        broken = json.loads(json.dumps(self.config))
        broken["clusters"][0]["lb_policy"] = "fastest"
        self.reload(broken, r"config reload refused: .* problem")
        self.assertEqual(self.sidecar.stat("config_reload_failure"), 1)
        self.reload(self.config, r"configuration applied")
        self.assertEqual((self.sidecar.stat("config_reload_success"),
                          self.sidecar.stat("config_reload_failure")), (1, 1))


class AdminPagesTest(harness.IntegrationTest):
    """Admin pages that said what is not so (issue 11, item 8)."""

    def setUp(self):
        super().setUp()
        self.nginx = self.start_https()

    def test_config_dump_shows_what_is_in_force_defaults_filled_in(self):
        tls = cluster_tls(self.pki, password_file=None)
        tls["password_file"] = None  # written as null: nothing to redact
        sidecar = self.simple_sidecar(self.nginx.port, tls)
        dump = sidecar.admin_json("/config_dump")["configs"][0]["config"]
        c = dump["clusters"][0]
        self.assertIsNone(c["tls"]["password_file"])
        self.assertEqual(c["tls"]["private_key"], "[redacted]")
        # Keys the file leaves out, with the defaults in force.
        self.assertEqual(c["lb_policy"], "round_robin")
        self.assertEqual(c["tls"]["verify_depth"], 4)
        self.assertEqual(c["tls"]["protocols"], ["TLSv1.2", "TLSv1.3"])
        self.assertIs(c["tls"]["send_sni"], True)
        self.assertEqual(c["outlier_detection"], {"consecutive_failures": 3,
                                                  "base_ejection_ms": 5000,
                                                  "max_ejection_ms": 300000})
        self.assertEqual(c["http_pool"]["max_idle"], 256)
        self.assertEqual(c["endpoints"], [{"address": f"127.0.0.1:{self.nginx.port}",
                                           "weight": 1}])
        l = dump["listeners"][0]
        self.assertEqual((l["idle_timeout_ms"], l["max_connections"]), (3600000, 10000))
        self.assertIsNone(dump["xds"])
        self.assertTrue(dump["watch_certificates"])
        # What is shown is itself a configuration that runs as it is shown.
        c["tls"]["private_key"] = self.pki.client.key
        dump["admin"]["address"] = f"127.0.0.1:{harness.free_port()}"
        l["address"] = f"127.0.0.1:{harness.free_port()}"
        copy = self.make_sidecar(dump, name="copy")
        self.assertEqual(copy.validate()[0], 0, copy.validate()[1])

    def test_clusters_say_which_sni_each_host_sends(self):
        named = self.simple_sidecar(self.nginx.port)  # server_name upstream.test
        host = named.hosts("c")[0]
        self.assertEqual(host["sni"], SERVER_NAME)
        bare = self.simple_sidecar(self.nginx.port, cluster_tls(self.pki, server_name=None),
                                   name="bare")
        host = bare.hosts("c")[0]
        self.assertIsNone(host["sni"])
        self.assertIn("IP address", host["sni_absent_reason"])
        off = self.simple_sidecar(self.nginx.port, cluster_tls(self.pki, send_sni=False),
                                  name="off")
        host = off.hosts("c")[0]
        self.assertIsNone(host["sni"])
        self.assertIn("send_sni", host["sni_absent_reason"])
        tls = off.admin_json("/clusters")["cluster_statuses"][0]["tls"]
        self.assertIs(tls["send_sni"], False)
        self.assertNotIn("sni", tls)  # the setting is not what is sent

    def test_last_error_is_the_whole_line(self):
        untrusted = self.start_https(server=self.pki.other_server)
        name = "orders-" + "x" * 120  # a long name makes a long line
        c = cluster(name, [f"127.0.0.1:{untrusted.port}"], cluster_tls(self.pki),
                    max_connect_attempts=1)
        sidecar = self.start_sidecar(config([listener("l", name)], [c]))
        sock = self.connect(sidecar.listener_port())
        self.assertTrue(harness.is_closed_without_data(sock, timeout=10))
        line = sidecar.wait_log(r"handshake failed: cluster=orders-x+ ")[0]
        last_error = sidecar.hosts(name)[0]["last_error"]
        self.assertGreater(len(last_error), 320)
        self.assertTrue(line.endswith(last_error), f"{last_error!r} is not the end of {line!r}")
        self.assertIn("reason=unknown_ca", last_error)


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

    def assert_not_draining(self):
        """No drain began. The admin endpoint starts one (/quitquitquit) once
        its answer is written, on the main loop, before it reads a request
        that comes after; and /ready answers 503 from the drain's start. So
        a later request answered 200, LIVE, shows that the refused POSTs
        started nothing, however late they were."""
        self.assertEqual(self.sidecar.admin_get("/ready"), (200, "LIVE\n"))
        self.assertEqual(self.sidecar.admin_json("/server_info")["state"], "LIVE")
        self.assertTrue(self.sidecar.is_running())

    def test_foreign_host_is_refused_and_nothing_done(self):
        # DNS rebinding: evil.example resolves to 127.0.0.1; the browser sends its name.
        status, body = self.request("GET", "/config_dump", {"Host": "evil.example:15000"})
        self.assertEqual(status, 421)
        self.assertNotIn(b"clusters", body)
        status, _ = self.request("POST", "/quitquitquit", {"Host": "evil.example"})
        self.assertEqual(status, 421)
        self.assert_not_draining()
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
        self.assert_not_draining()
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
        socks = []
        for _ in range(70):  # more than the 64 slots, whatever else is open
            s = socket.create_connection(("127.0.0.1", self.sidecar.admin_port), timeout=5)
            socks.append(s)
        self.addCleanup(lambda: [s.close() for s in socks])
        # All accepted before the first byte: the last ones took the slots of
        # the oldest, which the sidecar closed and counted.
        harness.wait_until(lambda: self.sidecar.stat("admin_cx_evicted") >= len(socks) - 64,
                           what="the sidecar to take every connection, evicting the oldest")
        trickle = harness.Trickle(
            socks, b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100000)
        self.addCleanup(trickle.stop)
        # Each request while the trickle goes on, a round of it apart.
        for _ in range(5):
            trickle.wait_rounds(2)
            status, body = self.sidecar.admin_get("/ready", timeout=3)
            self.assertEqual(status, 200, body)
        # Each connection closed to make room is counted: at least the six
        # of the seventy over the 64 slots.
        self.assertGreaterEqual(self.sidecar.stat("admin_cx_evicted"), 6)

    def raw_request(self, data):
        """raw_request sends `data` on a new admin connection and returns
        the status of the answer, read before the connection ends."""
        sock = self.connect(self.sidecar.admin_port, timeout=10)
        sock.sendall(data)
        reader = sock.makefile("rb")
        self.addCleanup(reader.close)
        return harness.read_http_response(reader)[0]

    def test_refused_requests_are_counted(self):
        port = self.sidecar.admin_port
        local = f"Host: 127.0.0.1:{port}\r\n".encode()
        refusals = [
            (421, b"GET /ready HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
            (403, b"POST /quitquitquit HTTP/1.1\r\n" + local +
             b"Origin: http://evil.example\r\nContent-Length: 0\r\n\r\n"),
            (431, b"GET /ready HTTP/1.1\r\n" + local + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n"),
            (414, b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\n" + local + b"\r\n"),
            (413, b"GET /ready HTTP/1.1\r\n" + local + b"Content-Length: 100000\r\n\r\n"),
            (400, b"NOT HTTP\r\n\r\n"),
            (400, b"GET /stats?filter=%28cx HTTP/1.1\r\n" + local + b"\r\n"),
        ]
        for status, data in refusals:
            self.assertEqual(self.raw_request(data), status, data[:60])
        # Answers that are not refusals are not counted.
        self.assertEqual(self.sidecar.admin_get("/no/such/path")[0], 404)
        self.assertEqual(self.sidecar.stat("admin_rq_refused"), len(refusals))
        prometheus = self.sidecar.admin_get("/stats/prometheus")[1]
        self.assertIn(f"mtls_sidecar_admin_rq_refused {len(refusals)}", prometheus)
        self.assertTrue(self.sidecar.is_running())

    def test_a_request_not_whole_within_10_s_is_closed_and_counted(self):
        sock = self.connect(self.sidecar.admin_port, timeout=30)
        started = time.monotonic()
        sock.sendall(b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.assertTrue(harness.is_closed_without_data(sock, timeout=30))
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(elapsed, 9, "closed before the 10 s deadline")
        self.assertEqual(self.sidecar.stat("admin_cx_timeout"), 1)


if __name__ == "__main__":
    unittest.main()
