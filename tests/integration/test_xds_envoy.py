"""The sidecar against a control plane written elsewhere: @grpc/grpc-js with
Envoy's own .proto files (tests/node/xds_test_control_plane.js), over mutual
TLS, pushing Envoy-encoded resources that set fields outside the sidecar's
subset, in front of nginx that requires a client certificate.

* Envoy's resources carry traffic: an EDS cluster whose client certificate
  and trust bundle come over SDS (PEM made now by the certs CLI), its
  ClusterLoadAssignment, a TcpProxy listener; nginx sees the certificate
  SDS pushed; every response is ACKed with its version_info and nonce; a
  new SDS certificate reaches the next connection.
* Invalid resources (a Cluster whose transport_socket is not an
  UpstreamTlsContext, a Listener on a pipe, a Secret whose key does not
  match its certificate) are NACKed with a message naming the resource;
  traffic carries on with the last good configuration; a good update is
  accepted after them.
* An HTTP listener: an HttpConnectionManager with inline routes to two EDS
  clusters (host and path), which goes live once both clusters are;
  requests reach the nginx their route names; rds and a wildcard domain
  are NACKed by name.
* A hostile control plane (protobuf garbage, an oversized message,
  duplicate names, unexpected types, malformed HTTP/2 from a raw TLS
  server) gets a NACK or a reset stream; traffic carries on, the sidecar
  reconnects, and it never crashes (the harness checks sanitizer reports).

Needs node and tests/node/node_modules (`npm ci --prefix tests/node`, which
tools/install-deps.sh runs): without them the test fails saying so.
"""

import base64
import http.client
import json
import os
import re
import unittest

from tests.lib import harness
from tests.lib.control_plane import (CLUSTER_TYPE, ENDPOINTS_TYPE, LISTENER_TYPE, SECRET_TYPE,
                                     XDS_SERVER_NAME, xds_bootstrap, xds_status)
from tests.lib.harness import SERVER_NAME, http_get, normalize_serial, wait_until
from tests.lib.node import node_setup
from tests.lib.support import DEFAULT_TIMEOUT, Process, read_text

NODE_ID = "orders.shop"
NODE_CLUSTER = "orders"
HELLO = b"hello from nginx\n"
UPSTREAM_TLS_TYPE = ("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                     "UpstreamTlsContext")
DOWNSTREAM_TLS_TYPE = ("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                       "DownstreamTlsContext")
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FILE_ACCESS_LOG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
ROUTE_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
ADS = {"ads": {}, "resource_api_version": "V3"}

# google.rpc.Code INVALID_ARGUMENT, what a NACK carries.
INVALID_ARGUMENT = 3
# HTTP/2 error codes (RFC 9113, section 7).
H2_PROTOCOL_ERROR = 0x1
H2_FRAME_SIZE_ERROR = 0x6
H2_COMPRESSION_ERROR = 0x9


# ---- node and the control plane -----------------------------------------------------




class ControlPlane:
    """ControlPlane runs tests/node/xds_test_control_plane.js (its header
    says what it does) and speaks to its control port. `tls` is its own
    certificate; sidecars must present one signed by `ca`."""

    def __init__(self, folder, tls, ca, timeout=30):
        node, scripts = node_setup()
        os.makedirs(folder, exist_ok=True)
        self.log_path = os.path.join(folder, "control-plane.jsonl")
        self.output_path = os.path.join(folder, "control-plane.out")
        ready_file = os.path.join(folder, "control-plane.ready")
        self.process = Process([node, os.path.join(scripts, "xds_test_control_plane.js"),
                                "--ca", ca, "--cert", tls.crt, "--key", tls.key,
                                "--log", self.log_path, "--ready-file", ready_file],
                               self.output_path)

        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"the control plane exited with {self.process.poll()}:\n"
                                     f"{read_text(self.output_path)}")
            return os.path.exists(ready_file) and json.loads(read_text(ready_file))

        ports = wait_until(ready, timeout, what="the node control plane to listen")
        self.ads_port = ports["ads_port"]
        self.control_port = ports["control_port"]

    def stop(self):
        self.process.terminate()

    def command(self, name, body=None, timeout=DEFAULT_TIMEOUT):
        """command POSTs /name with a JSON body and returns the JSON answer;
        an answer other than 200 fails the test with the control plane's
        words."""
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=timeout)
        try:
            conn.request("POST", f"/{name}", body=json.dumps(body or {}),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read() or b"{}")
        finally:
            conn.close()
        if response.status != 200:
            raise AssertionError(f"control plane /{name}: {response.status} {answer}")
        return answer

    def set(self, type_name, version, resources):
        """set replaces the snapshot of `type_name` and returns the responses
        it pushed ([{stream, nonce}])."""
        return self.command("set", {"type": type_name, "version": version,
                                    "resources": resources})["sent"]

    def send(self, version, resources=(), **body):
        """send writes one response outside the snapshot on the newest
        stream: type= or type_url=, padding_bytes=. Returns {stream, nonce}."""
        return self.command("send", dict(body, version=version, resources=list(resources)))

    def events(self, event=None):
        records = []
        for line in read_text(self.log_path).splitlines():
            if line.strip():
                record = json.loads(line)
                if event is None or record["event"] == event:
                    records.append(record)
        return records

    def log_tail(self, lines=60):
        return "\n".join(read_text(self.log_path).splitlines()[-lines:])

    def wait_event(self, predicate, what, timeout=DEFAULT_TIMEOUT, event=None):
        """wait_event waits for a logged record that satisfies `predicate`
        and returns the first."""
        try:
            return wait_until(lambda: next((r for r in self.events(event) if predicate(r)), None),
                              timeout, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\ncontrol plane log (end):\n{self.log_tail()}") from None

    def wait_answer(self, sent, timeout=DEFAULT_TIMEOUT):
        """wait_answer returns the request that answers the response `sent`
        ({stream, nonce}): the ACK or NACK carrying its nonce."""
        return self.wait_event(
            lambda r: r["stream"] == sent["stream"] and r["response_nonce"] == sent["nonce"],
            f"an ACK or NACK of nonce {sent['nonce']} on stream {sent['stream']}",
            timeout, event="request")

    def wait_new_stream(self, after, timeout=DEFAULT_TIMEOUT):
        """wait_new_stream waits until the sidecar has ACKed a Cluster
        response on a stream numbered above `after`, and returns that
        stream's number."""
        ack = self.wait_event(
            lambda r: r["stream"] > after and r["type_url"] == CLUSTER_TYPE and
            r["response_nonce"] != "" and r["error_detail"] is None,
            f"the sidecar to ACK CDS on a stream after stream {after}", timeout, event="request")
        return ack["stream"]

    def open_streams(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port, timeout=5)
        try:
            conn.request("GET", "/state")
            return json.loads(conn.getresponse().read())["open_streams"]
        finally:
            conn.close()


# ---- Envoy resources, with fields outside the sidecar's subset ---------------------------


def pem_bytes(path):
    """pem_bytes is a file's content as the proto3 JSON of a bytes field
    (base64)."""
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode("ascii")


def file_access_log(path):
    return {"name": "envoy.access_loggers.file",
            "typed_config": {"@type": FILE_ACCESS_LOG_TYPE, "path": path}}


def upstream_tls(sni=SERVER_NAME):
    return {
        "@type": UPSTREAM_TLS_TYPE,
        "common_tls_context": {
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                           "tls_maximum_protocol_version": "TLSv1_3",
                           "signature_algorithms": ["ecdsa_secp256r1_sha256",
                                                    "rsa_pss_rsae_sha256"]},  # outside
            "tls_certificate_sds_secret_configs": [{"name": "client-cert", "sds_config": ADS}],
            "validation_context_sds_secret_config": {"name": "upstream-ca", "sds_config": ADS},
        },
        "sni": sni,
        "enforce_rsa_key_usage": True,  # outside
    }


def eds_cluster(name="backend", service="backend-eds", connect_timeout="2s", tls=None):
    """eds_cluster is an EDS Cluster whose TLS material comes over SDS, with
    Envoy fields the sidecar does not implement."""
    return {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": dict(ADS, initial_fetch_timeout="10s"),
                               "service_name": service},
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "transport_socket": {"name": "envoy.transport_sockets.tls",
                             "typed_config": tls or upstream_tls()},
        # Outside the subset: ignored, never an error.
        "circuit_breakers": {"thresholds": [{"priority": "DEFAULT", "max_connections": 1000,
                                             "max_pending_requests": 100, "max_retries": 3}]},
        "common_lb_config": {"healthy_panic_threshold": {"value": 40.0},
                             "ignore_new_hosts_until_first_hc": True},
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_probes": 3,
                                                          "keepalive_time": 300,
                                                          "keepalive_interval": 30}},
        "per_connection_buffer_limit_bytes": 32768,
        "dns_lookup_family": "V4_ONLY",
        "cleanup_interval": "5s",
        "close_connections_on_host_health_failure": True,
        "metadata": {"filter_metadata": {"istio": {"default_original_port": 8443,
                                                   "services": [{"host": "backend.shop"}]}}},
        "health_checks": [{"timeout": "1s", "interval": "5s", "unhealthy_threshold": 3,
                           "healthy_threshold": 2, "tcp_health_check": {}}],
    }


def load_assignment(port, service="backend-eds"):
    """load_assignment puts 127.0.0.1:port in priority 0, with locality,
    metadata and a policy the sidecar ignores, and an endpoint in priority 1
    that it must not use."""
    return {
        "cluster_name": service,
        "endpoints": [
            {"locality": {"region": "local", "zone": "loopback"},
             "lb_endpoints": [{
                 "endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                             "port_value": port}},
                              "health_check_config": {"port_value": port},  # outside
                              "hostname": "nginx.local"},  # outside
                 "health_status": "HEALTHY",
                 "load_balancing_weight": 5,
                 "metadata": {"filter_metadata": {"envoy.lb": {"canary": False}}}}],  # outside
             "load_balancing_weight": 100},
            # Priority 1: only for failover, which the sidecar does not do.
            {"priority": 1,
             "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                 "address": "127.0.0.1", "port_value": 9}}}}]},
        ],
        "policy": {"overprovisioning_factor": 140},  # outside
    }


def tcp_listener(port, name="app", cluster="backend", address=None):
    """tcp_listener is a Listener with one TcpProxy filter to `cluster`, and
    listener-level and filter-level fields the sidecar ignores."""
    return {
        "name": name,
        "address": address or {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "stat_prefix": "outbound_app",  # outside
        "per_connection_buffer_limit_bytes": 65536,  # outside
        "access_log": [file_access_log("/dev/null")],  # outside
        "traffic_direction": "OUTBOUND",  # outside
        "continue_on_listener_filters_timeout": True,  # outside
        "filter_chains": [{
            "name": "app-chain",  # outside
            "filters": [{
                "name": "envoy.filters.network.tcp_proxy",
                "typed_config": {
                    "@type": TCP_PROXY_TYPE,
                    "stat_prefix": "app_tcp",
                    "cluster": cluster,
                    "idle_timeout": "300s",
                    "access_log": [file_access_log("/dev/null")],  # outside
                    "downstream_idle_timeout": "60s",  # outside
                    "max_connect_attempts": 2,
                }}],
        }],
    }


def http_listener(port, virtual_hosts, name="web", **manager):
    """http_listener is a Listener with an HttpConnectionManager whose
    routes are inline (`virtual_hosts`) and whose last HTTP filter is the
    router, with fields the sidecar ignores; `manager` adds or replaces the
    manager's fields."""
    typed_config = {
        "@type": HCM_TYPE,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "stream_idle_timeout": "20s",
        "use_remote_address": True,  # outside
        "common_http_protocol_options": {"idle_timeout": "60s"},  # outside
        "route_config": {"name": f"{name}-routes", "virtual_hosts": virtual_hosts},
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": ROUTER_TYPE}}],
    }
    typed_config.update(manager)
    typed_config = {key: value for key, value in typed_config.items() if value is not None}
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": typed_config}]}],
    }


def certificate_secret(pair, name="client-cert", key=None):
    """certificate_secret is an SDS Secret with pair's certificate and key
    (or the key at `key`) as inline PEM bytes."""
    return {"name": name,
            "tls_certificate": {"certificate_chain": {"inline_bytes": pem_bytes(pair.crt)},
                                "private_key": {"inline_bytes": pem_bytes(key or pair.key)}}}


def validation_secret(ca_crt, name="upstream-ca"):
    return {"name": name,
            "validation_context": {
                "trusted_ca": {"inline_bytes": pem_bytes(ca_crt)},
                "match_typed_subject_alt_names": [{"san_type": "DNS",
                                                   "matcher": {"exact": SERVER_NAME}}],
                "max_verify_depth": 4,
                "only_verify_leaf_cert_crl": True}}  # outside


# ---- the tests ------------------------------------------------------------------------


class XdsEnvoyTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            node_setup()
            pki = cls.pki
            cls.xds_tls = pki.issue("xds-server", cn=XDS_SERVER_NAME, dns=[XDS_SERVER_NAME],
                                    ips=["127.0.0.1"], server=True)
            cls.bootstrap = pki.issue("bootstrap", cn="bootstrap",
                                      uris=["spiffe://test/bootstrap"], client=True)
            # Made now and pushed over SDS: nginx must see these, never the
            # bootstrap certificate.
            cls.sds_first = pki.issue_client("sds-first")
            cls.sds_second = pki.issue_client("sds-second")
        except BaseException:
            super().tearDownClass()
            raise

    def setUp(self):
        super().setUp()
        self.control_plane = ControlPlane(self.tmp.mkdir("control-plane"), self.xds_tls,
                                          self.pki.ca_crt)
        self.addCleanup(self.control_plane.stop)

    # ---- set up -------------------------------------------------------------

    def start_world(self):
        """start_world: nginx requiring a client certificate, the control
        plane's snapshot at version "1" (CDS, EDS, LDS, SDS), and a sidecar
        that has made it live. Returns (nginx, sidecar, listener port)."""
        self.nginx = self.start_https()
        self.listener_port = harness.free_port()
        cp = self.control_plane
        cp.set("Secret", "1", [certificate_secret(self.sds_first),
                               validation_secret(self.pki.ca_crt)])
        cp.set("ClusterLoadAssignment", "1", [load_assignment(self.nginx.port)])
        cp.set("Cluster", "1", [eds_cluster()])
        cp.set("Listener", "1", [tcp_listener(self.listener_port)])
        xds = xds_bootstrap(cp.ads_port, self.bootstrap, self.pki.ca_crt, NODE_ID, NODE_CLUSTER,
                            initial_fetch_timeout_ms=30000)
        # A long initial fetch timeout: /ready must come from accepted
        # updates, not from giving up on them.
        self.sidecar = self.start_sidecar(harness.config([], [], xds=xds), "xds-envoy")
        harness.wait_port(self.listener_port, process=self.sidecar.process.popen,
                          what="the sidecar")
        self.assert_serves(self.sds_first)
        return self.nginx, self.sidecar, self.listener_port

    # ---- checks -------------------------------------------------------------

    def probe(self):
        """probe makes one new connection through the listener, checks that
        it gets nginx's file, and returns (the nginx that served it, its
        access log entry)."""
        self.probes = getattr(self, "probes", 0) + 1
        marker = f"/hello.txt?probe={self.probes}"
        self.assertEqual(http_get(self.listener_port, marker), (200, HELLO))

        def logged():
            for nginx in self._nginxes:
                for entry in nginx.access_entries():
                    if entry["request"].split()[1] == marker:
                        return nginx, entry
            return None

        nginx, entry = wait_until(logged, what=f"nginx to log {marker}")
        self.assertEqual(entry["client_verify"], "SUCCESS")
        self.assertEqual(entry["server_name"], SERVER_NAME)
        return nginx, entry

    def assert_serves(self, pair):
        """assert_serves: a new connection through the listener reaches the
        first nginx, which saw `pair`'s certificate on it."""
        nginx, entry = self.probe()
        self.assertIs(nginx, self.nginx)
        self.assertEqual(normalize_serial(entry["client_serial"]), self.pki.serial(pair.crt))

    def wait_serves(self, pair, nginx=None):
        """wait_serves: within a few connections of an accepted update (the
        workers take a new configuration up on their own loops), new
        connections reach `nginx` (default: the first) with `pair`'s
        certificate."""
        want = (nginx or self.nginx, self.pki.serial(pair.crt))
        seen = []

        def served():
            by, entry = self.probe()
            seen.append((by.port, normalize_serial(entry["client_serial"])))
            return (by, seen[-1][1]) == want

        try:
            wait_until(served, what=f"new connections to reach nginx {want[0].port} with serial "
                       f"{want[1]}")
        except AssertionError as e:
            raise AssertionError(f"{e}; saw (nginx port, serial): {seen}") from None

    def type_status(self, type_url):
        status = xds_status(self.sidecar.admin_json("/config_dump"))
        for entry in status["resource_types"]:
            if entry["type_url"] == type_url:
                return entry
        self.fail(f"{type_url} not in /config_dump's resource_types: {status}")

    def assert_acked(self, sent, version):
        """assert_acked: the response `sent` was answered with an ACK of
        `version`."""
        answer = self.control_plane.wait_answer(sent)
        self.assertIsNone(answer["error_detail"], answer)
        self.assertEqual(answer["version_info"], version, answer)
        return answer

    def assert_nacked(self, sent, kept_version, *fragments):
        """assert_nacked: the response `sent` was answered with a NACK that
        keeps `kept_version` and whose message holds every fragment.
        Returns the message."""
        answer = self.control_plane.wait_answer(sent)
        detail = answer["error_detail"]
        self.assertIsNotNone(detail, f"expected a NACK, got an ACK: {answer}")
        self.assertEqual(detail["code"], INVALID_ARGUMENT, answer)
        self.assertEqual(answer["version_info"], kept_version, answer)
        for fragment in fragments:
            self.assertIn(fragment, detail["message"])
        return detail["message"]

    def stat(self, name):
        return self.sidecar.stats()[name]

    def wait_stat(self, name, value):
        try:
            wait_until(lambda: self.stat(name) == value, what=f"{name} to be {value}")
        except AssertionError as e:
            raise AssertionError(f"{e}; it is {self.stat(name)}") from None

    def assert_still_serving(self, kept=None, pair=None):
        """assert_still_serving: the sidecar runs, a kept connection (an
        http.client connection opened before) and a new one both work."""
        self.assertTrue(self.sidecar.is_running(), self.sidecar.log())
        if kept is not None:
            kept.request("GET", "/hello.txt?kept=1", headers={"Host": SERVER_NAME})
            response = kept.getresponse()
            self.assertEqual((response.status, response.read()), (200, HELLO))
        self.assert_serves(pair or self.sds_first)

    def open_kept_connection(self):
        kept = http.client.HTTPConnection("127.0.0.1", self.listener_port, timeout=10)
        self.addCleanup(kept.close)
        kept.request("GET", "/hello.txt?kept=0", headers={"Host": SERVER_NAME})
        response = kept.getresponse()
        self.assertEqual((response.status, response.read()), (200, HELLO))
        return kept

    def assert_versions(self, expected):
        """assert_versions: /config_dump shows these accepted versions, by
        type URL."""
        status = xds_status(self.sidecar.admin_json("/config_dump"))
        versions = {t["type_url"]: t["version_info"] for t in status["resource_types"]}
        for type_url, version in expected.items():
            self.assertEqual(versions.get(type_url), version, status)

    ALL_ONE = {CLUSTER_TYPE: "1", ENDPOINTS_TYPE: "1", LISTENER_TYPE: "1", SECRET_TYPE: "1"}

    def assert_clean_exit(self):
        """assert_clean_exit: SIGTERM ends the sidecar with 0 (and, under
        ASan, no leak report)."""
        self.assertEqual(self.sidecar.stop(), 0, self.sidecar.log())

    # ---- 1. Envoy's resources carry traffic --------------------------------------

    def test_envoy_resources_carry_traffic_and_every_response_is_acked(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane

        # The node, on the stream's first request only; CDS and LDS
        # wildcard, EDS and SDS the names the cluster gives.
        requests = cp.events("request")
        self.assertEqual(requests[0]["stream"], 1)
        self.assertEqual(requests[0]["type_url"], CLUSTER_TYPE)
        self.assertEqual(requests[0]["node"]["id"], NODE_ID)
        self.assertEqual(requests[0]["node"]["cluster"], NODE_CLUSTER)
        self.assertEqual(requests[0]["node"]["user_agent_name"], "mtls-sidecar")
        self.assertTrue(all(r["node"] is None for r in requests[1:]), requests)
        names = {}
        for r in requests:
            names.setdefault(r["type_url"], r["resource_names"])
        self.assertEqual(names[CLUSTER_TYPE], [])
        self.assertEqual(names[LISTENER_TYPE], [])
        wait_until(lambda: any(r["type_url"] == SECRET_TYPE for r in cp.events("request")),
                   what="an SDS request")
        last_names = {r["type_url"]: r["resource_names"] for r in cp.events("request")}
        self.assertEqual(last_names[ENDPOINTS_TYPE], ["backend-eds"])
        self.assertEqual(sorted(last_names[SECRET_TYPE]), ["client-cert", "upstream-ca"])

        # Every response the control plane sent was ACKed with its version
        # and nonce, and with no error.
        responses = cp.events("response")
        self.assertEqual(sorted({r["type_url"] for r in responses}),
                         sorted([CLUSTER_TYPE, ENDPOINTS_TYPE, LISTENER_TYPE, SECRET_TYPE]))
        for response in responses:
            self.assert_acked(response, response["version_info"])
        self.assertEqual(
            sorted(name for r in responses if r["type_url"] == SECRET_TYPE
                   for name in r["resource_names"]),
            ["client-cert", "upstream-ca"])

        # What the sidecar says about it.
        sidecar.wait_log(r"xds update accepted: type=cluster version=1 resources=1 ")
        sidecar.wait_log(r"xds update accepted: type=listener version=1 resources=1 ")
        sidecar.wait_log(r"xds: connected to 127\.0\.0\.1:%d" % cp.ads_port)
        status = xds_status(sidecar.admin_json("/config_dump"))
        self.assertEqual(status["control_plane"]["state"], "CONNECTED")
        self.assertEqual(status["control_plane"]["streams"], 1)
        self.assertIs(status["control_plane"]["serving_backup"], False)
        self.assertEqual((status["dynamic_clusters"], status["warming_clusters"],
                          status["dynamic_listeners"]), (1, 0, 1))
        by_type = {t["type_url"]: t for t in status["resource_types"]}
        for type_url in self.ALL_ONE:
            entry = by_type[type_url]
            self.assertEqual(entry["version_info"], "1", entry)
            self.assertGreaterEqual(entry["acks"], 1, entry)
            self.assertEqual(entry["nacks"], 0, entry)
            self.assertNotIn("last_nack", entry)
        self.assertIs(by_type[CLUSTER_TYPE]["wildcard"], True)
        self.assertIs(by_type[LISTENER_TYPE]["wildcard"], True)
        self.assertEqual(by_type[ENDPOINTS_TYPE]["resource_names"], ["backend-eds"])
        self.assertEqual(by_type[SECRET_TYPE]["resource_names"], ["client-cert", "upstream-ca"])
        stats = sidecar.stats()
        self.assertGreaterEqual(stats["xds_update_success"], 4)
        self.assertEqual(stats["xds_update_rejected"], 0)
        self.assertEqual(stats["xds_stream_established"], 1)
        self.assertEqual(sidecar.admin_get("/ready"), (200, "LIVE\n"))
        # The key pushed over SDS never shows.
        with open(self.sds_first.key) as f:
            key_body = f.read().splitlines()[1]
        self.assertNotIn(key_body, sidecar.admin_get("/config_dump")[1])
        self.assertNotIn(key_body, sidecar.log())

        # A new certificate over SDS reaches the next connection.
        sent = cp.set("Secret", "2", [certificate_secret(self.sds_second),
                                      validation_secret(self.pki.ca_crt)])
        self.assertEqual(len(sent), 1, sent)
        self.assert_acked(sent[0], "2")
        sidecar.wait_log(r"xds update accepted: type=secret version=2 resources=2 ")
        self.wait_serves(self.sds_second)
        self.assert_serves(self.sds_second)
        self.assertEqual(self.type_status(SECRET_TYPE)["version_info"], "2")

        # New endpoints over EDS: the next connection goes to a second nginx.
        second = self.start_https()
        sent = cp.set("ClusterLoadAssignment", "2", [load_assignment(second.port)])
        self.assert_acked(sent[0], "2")
        self.wait_serves(self.sds_second, nginx=second)
        self.assertIs(self.probe()[0], second)
        self.assert_clean_exit()

    # ---- 2. invalid resources are NACKed ------------------------------------------------

    def test_invalid_resources_are_nacked_and_the_last_good_config_keeps_serving(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        kept = self.open_kept_connection()
        other = self.pki.issue_client("other-key")
        bad_updates = [
            # (type, type URL, resources, what the NACK must say)
            ("Cluster", CLUSTER_TYPE,
             [eds_cluster(tls={"@type": DOWNSTREAM_TLS_TYPE,
                               "require_client_certificate": True})],
             ['cluster "backend"', "transport_socket.typed_config", UPSTREAM_TLS_TYPE,
              DOWNSTREAM_TLS_TYPE]),
            ("Listener", LISTENER_TYPE,
             [tcp_listener(port, address={"pipe": {"path": self.tmp.join("app.sock")}})],
             ['listener "app"', "address", "pipe"]),
            ("Secret", SECRET_TYPE,
             [certificate_secret(self.sds_second, key=other.key),
              validation_secret(self.pki.ca_crt)],
             # The refusal comes from loading the material into the
             # cluster's TLS context, so it names the cluster using it.
             ["(backend)", "private key", "does not match certificate"]),
        ]
        for rejected, (type_name, type_url, resources, fragments) in enumerate(bad_updates, 1):
            with self.subTest(type_name):
                sent = cp.set(type_name, "2", resources)
                self.assertEqual(len(sent), 1, sent)
                message = self.assert_nacked(sent[0], "1", *fragments)
                self.assertNotIn("BEGIN", message)  # no key material in a NACK
                self.wait_stat("xds_update_rejected", rejected)
                entry = self.type_status(type_url)
                self.assertEqual(entry["version_info"], "1", entry)
                self.assertEqual(entry["nacks"], 1, entry)
                self.assertEqual(entry["last_nack"], {"version_info": "2", "message": message})
                sidecar.wait_log(r"xds update rejected: type=%s version=2: .*; the configuration "
                                 r"in force stays" % type_url)
                # The last good configuration: the kept connection, new
                # connections, and the first certificate still.
                self.assert_still_serving(kept)
        self.assertEqual(self.stat("xds_stream_established"), 1)
        self.assert_versions(self.ALL_ONE)

        # Good updates are accepted after them.
        success = self.stat("xds_update_success")
        sent = cp.set("Secret", "3", [certificate_secret(self.sds_second),
                                      validation_secret(self.pki.ca_crt)])
        self.assert_acked(sent[0], "3")
        sent = cp.set("Cluster", "3", [eds_cluster(connect_timeout="3s")])
        self.assert_acked(sent[0], "3")
        sent = cp.set("Listener", "3", [tcp_listener(port)])
        self.assert_acked(sent[0], "3")
        self.wait_stat("xds_update_success", success + 3)
        self.assertEqual(self.stat("xds_update_rejected"), 3)
        entry = self.type_status(CLUSTER_TYPE)
        self.assertEqual(entry["version_info"], "3")
        self.assertEqual(entry["last_nack"]["version_info"], "2")  # history stays
        self.wait_serves(self.sds_second)
        self.assert_still_serving(kept, pair=self.sds_second)
        self.assert_clean_exit()

    # ---- 3. an HTTP listener ---------------------------------------------------------------

    # Two virtual hosts: payments.shop and pay.shop go to payments; any
    # other host goes to payments under /pay/, to backend otherwise.
    WEB_ROUTES = [
        {"name": "any", "domains": ["*"], "routes": [
            {"name": "pay", "match": {"prefix": "/pay/"},
             "route": {"cluster": "payments", "timeout": "0s"}},  # timeout: outside
            {"match": {"prefix": "/"},
             "route": {"cluster": "backend", "retry_policy": {"retry_on": "5xx"}}}]},  # outside
        {"name": "payments", "domains": ["payments.shop", "pay.shop"],
         "request_headers_to_add": [{"header": {"key": "x-mesh", "value": "1"}}],  # outside
         "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "payments"}}]},
    ]

    def test_http_connection_manager_routes_requests_by_host_and_path(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        payments_body = b"hello from payments\n"
        payments = self.start_https(files={"hello.txt": payments_body,
                                           "pay/who.txt": payments_body})
        web_port = harness.free_port()
        sent = cp.set("Cluster", "2", [eds_cluster(), eds_cluster("payments", "payments-eds")])
        self.assert_acked(sent[0], "2")
        sent = cp.set("Listener", "2", [tcp_listener(port),
                                        http_listener(web_port, self.WEB_ROUTES)])
        self.assert_acked(sent[0], "2")
        # Accepted, not live: payments has no endpoints yet (Envoy warms a
        # listener until its routes' clusters are ready too).
        sidecar.wait_log(r"xds update accepted: type=listener version=2 resources=2 ")
        self.assertFalse(harness.port_accepts(web_port))
        self.assert_serves(self.sds_first)

        sent = cp.set("ClusterLoadAssignment", "2",
                      [load_assignment(nginx.port), load_assignment(payments.port, "payments-eds")])
        self.assert_acked(sent[-1], "2")
        harness.wait_port(web_port, process=sidecar.process.popen, what="the HTTP listener")
        cases = [
            # (Host, path, the nginx that must answer, its answer)
            ("backend.shop", "/hello.txt?web=1", nginx, (200, HELLO)),
            ("backend.shop", "/pay/who.txt?web=2", payments, (200, payments_body)),
            ("payments.shop", "/hello.txt?web=3", payments, (200, payments_body)),
            ("PAY.shop:8080", "/hello.txt?web=4", payments, (200, payments_body)),  # case, port
            ("other.shop", "/payment?web=5", nginx, (404, None)),  # not under "/pay/"
        ]
        for host, path, upstream, (status, body) in cases:
            with self.subTest(host=host, path=path):
                answer = http_get(web_port, path, host=host)
                self.assertEqual(answer[0], status, answer)
                if body is not None:
                    self.assertEqual(answer[1], body)
                entry = wait_until(
                    lambda: next((e for e in upstream.access_entries()
                                  if e["request"].split()[1] == path), None),
                    what=f"nginx {upstream.port} to log {path}")
                # Over mutual TLS, with the certificate SDS pushed.
                self.assertEqual(entry["client_verify"], "SUCCESS")
                self.assertEqual(normalize_serial(entry["client_serial"]),
                                 self.pki.serial(self.sds_first.crt))

        # What the sidecar made of it: the exact domains first, then "*".
        config = sidecar.admin_json("/config_dump")["configs"][0]["config"]
        web = next(listener for listener in config["listeners"] if listener["name"] == "web")
        self.assertEqual(web["protocol"], "http")
        self.assertEqual(web["cluster"], "backend")  # the "*" and "/" route's
        self.assertEqual(web["http"]["request_timeout_ms"], 20000)
        # /config_dump shows every key of a route; those not set are null.
        routes = [{k: v for k, v in r.items() if v is not None} for r in web["http"]["routes"]]
        self.assertEqual(routes, [
            {"host": "payments.shop", "cluster": "payments"},
            {"host": "pay.shop", "cluster": "payments"},
            {"path_prefix": "/pay/", "cluster": "payments"},
            {"cluster": "backend"},
        ])
        status = xds_status(sidecar.admin_json("/config_dump"))
        self.assertEqual((status["dynamic_clusters"], status["warming_clusters"],
                          status["dynamic_listeners"]), (2, 0, 2))

        # What it cannot honour is NACKed by name; the routes in force stay.
        bad = [
            (http_listener(web_port, self.WEB_ROUTES, rds={"route_config_name": "web-routes",
                                                           "config_source": ADS},
                           route_config=None),
             ['listener "web"', "typed_config.rds: not supported"]),
            (http_listener(web_port, [{"name": "wild", "domains": ["*.shop"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "payments"}}]}]),
             ['listener "web"', 'domains[0]: "*.shop": wildcards other than "*" alone']),
            (http_listener(web_port, [{"name": "regex", "domains": ["*"], "routes": [
                {"match": {"safe_regex": {"regex": "/pay/.*"}},
                 "route": {"cluster": "payments"}}]}]),
             ['listener "web"', "routes[0].match.safe_regex: regular expressions"]),
        ]
        for version, (listener, fragments) in enumerate(bad, 3):
            with self.subTest(nack=fragments[1]):
                sent = cp.set("Listener", str(version), [tcp_listener(port), listener])
                self.assert_nacked(sent[0], "2", *fragments)
                self.assertEqual(http_get(web_port, "/pay/who.txt", host="backend.shop"),
                                 (200, payments_body))
        self.assert_serves(self.sds_first)
        self.assert_clean_exit()

    # ---- 4. a hostile control plane ---------------------------------------------------------

    def test_protobuf_garbage_as_a_message_resets_the_stream(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        kept = self.open_kept_connection()
        # Field 1 (version_info) announcing 16 bytes, then one: no protobuf
        # parser takes it.
        cp.command("garbage", {"hex": "0a10ab"})
        sidecar.wait_log(r"xds: ADS stream to 127\.0\.0\.1:%d ended: protocol error: a "
                         r"DiscoveryResponse did not decode: 3 bytes that are not a valid "
                         r"envoy\.service\.discovery\.v3\.DiscoveryResponse message; "
                         r"retrying in \d+ ms" % cp.ads_port)
        cp.wait_event(lambda r: r["stream"] == 1, "stream 1 to end", event="stream_end")
        self.assert_still_serving(kept)
        # A new stream: the node again, the accepted versions, no nonce.
        stream = cp.wait_new_stream(after=1)
        first = [r for r in cp.events("request") if r["stream"] == stream][0]
        self.assertEqual((first["type_url"], first["version_info"], first["response_nonce"]),
                         (CLUSTER_TYPE, "1", ""))
        self.assertEqual(first["node"]["id"], NODE_ID)
        self.assertEqual(self.stat("xds_stream_closed"), 1)
        self.assertEqual(self.stat("xds_stream_established"), 2)
        self.assertEqual(self.stat("xds_update_rejected"), 0)
        self.assert_versions(self.ALL_ONE)
        self.assert_still_serving(kept)
        self.assert_clean_exit()

    def test_deeply_nested_resource_does_not_crash_the_sidecar(self):
        """A Cluster followed by Envoy's metadata (field 25) holding a
        google.protobuf.Value 30,000 levels deep (~120 KB): protobuf-c would
        recurse once per level in a field it knew. Our subset has no field
        that nests without end, so the bytes stay opaque (an unknown field)
        and the nesting guard (xds/proto/pb_depth.h) walks past them: the update is
        taken, the sidecar runs and serves, its ADS stream stays up. A
        nesting past 64 levels in a field we decode is refused with a NACK
        naming it (pb_depth_test)."""
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        kept = self.open_kept_connection()

        def varint(n):
            out = bytearray()
            while n > 0x7F:
                out.append((n & 0x7F) | 0x80)
                n >>= 7
            out.append(n)
            return bytes(out)

        def ld(number, payload):
            return varint(number << 3 | 2) + varint(len(payload)) + payload

        # Value { list_value { values { ... { null_value } } } }, inside out.
        prefixes, length = [], 2
        for level in range(1, 30001):
            prefix = varint((1 if level % 2 == 1 else 6) << 3 | 2) + varint(length)
            prefixes.append(prefix)
            length += len(prefix)
        value = b"".join(reversed(prefixes)) + b"\x08\x00"
        struct = ld(1, ld(1, b"deep") + ld(2, value))             # Struct.fields
        metadata = ld(1, ld(1, b"envoy.lb") + ld(2, struct))      # Metadata.filter_metadata
        deep = dict(eds_cluster(connect_timeout="3s"), **{"@append_hex": ld(25, metadata).hex()})
        sent = cp.send("deep", type="Cluster", resources=[deep])
        self.assertGreater(sent["bytes"], 100000)
        self.assert_acked(sent, "deep")
        self.assert_still_serving(kept)
        self.assertEqual(cp.open_streams(), [1])
        self.assertEqual(self.stat("xds_stream_closed"), 0)
        self.assert_clean_exit()

    def test_stream_ended_by_the_server_resumes_with_the_accepted_versions(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        kept = self.open_kept_connection()
        self.assertEqual(cp.command("end_streams", {"code": 14, "details": "going away"}),
                         {"ended": [1]})
        sidecar.wait_log(r"xds: ADS stream to 127\.0\.0\.1:%d ended: UNAVAILABLE: going away; "
                         r"retrying in \d+ ms" % cp.ads_port)
        stream = cp.wait_new_stream(after=1)
        # The new stream asks for every type again with the versions in
        # force and no nonce; the node comes once, first.
        first = {}
        for r in cp.events("request"):
            if r["stream"] == stream:
                first.setdefault(r["type_url"], r)
        self.assertEqual({t: (r["version_info"], r["response_nonce"]) for t, r in first.items()},
                         {t: ("1", "") for t in self.ALL_ONE})
        self.assertEqual(first[ENDPOINTS_TYPE]["resource_names"], ["backend-eds"])
        self.assertEqual(sorted(first[SECRET_TYPE]["resource_names"]),
                         ["client-cert", "upstream-ca"])
        self.assertEqual(first[CLUSTER_TYPE]["node"]["id"], NODE_ID)
        self.assertEqual([t for t, r in first.items() if r["node"] is not None], [CLUSTER_TYPE])
        # What the control plane sends again is ACKed.
        for response in cp.events("response"):
            if response["stream"] == stream:
                self.assert_acked(response, "1")
        self.assertEqual(self.stat("xds_stream_established"), 2)
        self.assertEqual(self.stat("xds_stream_closed"), 1)
        self.assert_still_serving(kept)
        self.assert_clean_exit()

    def test_oversized_message_resets_the_stream(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        kept = self.open_kept_connection()
        # A valid DiscoveryResponse, version "big", over gRPC's 4 MiB.
        sent = cp.send("big", [eds_cluster(connect_timeout="9s")], type="Cluster",
                       padding_bytes=5 << 20)
        self.assertGreater(sent["bytes"], 4 << 20)
        sidecar.wait_log(r"xds: ADS stream to 127\.0\.0\.1:%d ended: RESOURCE_EXHAUSTED: .*"
                         r"\(%d vs\. 4194304 bytes\); retrying in \d+ ms"
                         % (cp.ads_port, sent["bytes"]))
        self.assert_still_serving(kept)
        stream = cp.wait_new_stream(after=sent["stream"])
        # Never ACKed nor NACKed: it was never read.
        self.assertEqual([r for r in cp.events("request") if r["response_nonce"] == sent["nonce"]],
                         [])
        self.assertEqual(self.stat("xds_stream_established"), 2)
        self.assertGreater(stream, sent["stream"])
        self.assert_versions(self.ALL_ONE)
        self.assert_still_serving(kept)
        self.assert_clean_exit()

    def test_bad_responses_are_nacked_without_dropping_the_stream(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        kept = self.open_kept_connection()
        cases = [
            # (what, send arguments, version kept, NACK fragments)
            ("duplicate names",
             dict(type="Cluster", resources=[eds_cluster(), eds_cluster(connect_timeout="4s")]),
             "1", ['cluster "backend": the name appears twice in one response']),
            ("undecodable resource",
             dict(type="Cluster", resources=[{"@raw": {"type_url": CLUSTER_TYPE,
                                                       "hex": "0a10ab"}}]),
             "1", ["cluster", "not a valid"]),
            ("a Listener inside a CDS response",
             dict(type="Cluster", resources=[dict(tcp_listener(port), **{"@type": "Listener"})]),
             "1", ["type_url", CLUSTER_TYPE, LISTENER_TYPE]),
            ("plaintext cluster",
             dict(type="Cluster", resources=[{k: v for k, v in eds_cluster().items()
                                              if k != "transport_socket"}]),
             "1", ['cluster "backend"', "transport_socket"]),
            ("unexpected type URL",
             dict(type_url=ROUTE_TYPE, resources=[]),
             "", ["unexpected type", ROUTE_TYPE]),
        ]
        for what, body, kept_version, fragments in cases:
            with self.subTest(what):
                rejected = self.stat("xds_update_rejected")
                sent = cp.send("bad", **body)
                self.assert_nacked(sent, kept_version, *fragments)
                if body.get("type_url") != ROUTE_TYPE:
                    # The unexpected type is refused by the ADS client itself.
                    self.wait_stat("xds_update_rejected", rejected + 1)
                self.assert_still_serving(kept)
        self.assertEqual(cp.open_streams(), [1])
        self.assertEqual(self.stat("xds_stream_established"), 1)
        self.assertEqual(self.stat("xds_stream_closed"), 0)
        self.assert_versions(self.ALL_ONE)
        self.assertEqual(self.type_status(CLUSTER_TYPE)["last_nack"]["version_info"], "bad")
        # And the next good update is taken.
        sent = cp.set("Cluster", "2", [eds_cluster(connect_timeout="3s")])
        self.assert_acked(sent[0], "2")
        self.assert_still_serving(kept)
        self.assert_clean_exit()

    # Each scenario of xds_test_control_plane.js's raw TLS server, the
    # GOAWAY error code RFC 9113 asks of the client (None: a stream error,
    # where closing the stream is enough), and what /config_dump's
    # last_disconnect must say after "ADS stream to ADDRESS ended: ".
    HOSTILE_H2 = [
        ("http1_answer", H2_PROTOCOL_ERROR, "UNAVAILABLE: HTTP/2 session with {address} ended: "
         "Remote peer returned unexpected data while we expected SETTINGS frame"),
        ("settings_bad_length", H2_FRAME_SIZE_ERROR,
         "UNAVAILABLE: HTTP/2 session with {address} ended"),
        ("oversized_frame", H2_FRAME_SIZE_ERROR, "UNAVAILABLE: HTTP/2 session with {address} ended"),
        ("headers_on_stream_0", H2_PROTOCOL_ERROR,
         "UNAVAILABLE: HTTP/2 session with {address} ended"),
        ("bad_hpack", H2_COMPRESSION_ERROR, "UNAVAILABLE: HTTP/2 session with {address} ended"),
        ("data_on_idle_stream", H2_PROTOCOL_ERROR,
         "UNAVAILABLE: HTTP/2 session with {address} ended"),
        ("window_update_zero", H2_PROTOCOL_ERROR,
         "UNAVAILABLE: HTTP/2 session with {address} ended"),
        ("truncated_grpc_message", None,
         "INTERNAL: the server ended the stream in the middle of a message"),
    ]

    def test_malformed_http2_closes_the_connection_and_the_sidecar_reconnects(self):
        nginx, sidecar, port = self.start_world()
        cp = self.control_plane
        kept = self.open_kept_connection()
        stream = 1
        address = f"127.0.0.1:{cp.ads_port}"
        for index, (scenario, goaway, why) in enumerate(self.HOSTILE_H2, 1):
            with self.subTest(scenario):
                cp.command("hostile_h2", {"scenario": scenario})
                connection = cp.wait_event(lambda r: r["index"] == index,
                                           f"the sidecar to connect to the raw server ({scenario})",
                                           timeout=15, event="hostile_connection")
                self.assertEqual(connection["alpn"], "h2")
                self.assertIs(connection["client_certificate"], True)
                closed = cp.wait_event(lambda r: r["index"] == index,
                                       f"the raw connection to close ({scenario})",
                                       timeout=15, event="hostile_closed")
                # The sidecar closed it, not our 10 s timer.
                self.assertEqual(closed["by"], "client", closed)
                if goaway is not None:
                    self.assertEqual(closed["goaway_error_code"], goaway, closed)
                self.assert_still_serving(kept)
                # Back on gRPC: a new stream, ACKed.
                stream = cp.wait_new_stream(after=stream, timeout=20)
                plane = xds_status(sidecar.admin_json("/config_dump"))["control_plane"]
                self.assertRegex(plane["last_disconnect"],
                                 r"^ADS stream to %s ended: %s.*; retrying in \d+ ms$"
                                 % (re.escape(address), re.escape(why.format(address=address))))
                self.assert_versions(self.ALL_ONE)
                self.assertTrue(sidecar.is_running(), sidecar.log())
        dump = xds_status(sidecar.admin_json("/config_dump"))
        self.assertEqual(dump["control_plane"]["state"], "CONNECTED")
        self.assertEqual(self.stat("xds_update_rejected"), 0)
        self.assert_still_serving(kept)
        self.assert_clean_exit()


if __name__ == "__main__":
    unittest.main()
