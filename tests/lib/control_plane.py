"""control_plane.py: the reference control plane (`//xds-server:xds-server`) as a
test peer: the process, its GET /status, the Envoy JSON resource files it
serves from --config-dir, and the sidecar's `xds` section that points at it
(docs/xds-server.md).

The binary is found like the sidecar's: the runfiles root under `bazel test`,
XDS_SERVER_BIN by hand."""

import http.client
import json
import os
import re
import signal
import subprocess

from tests.lib.sidecar import SANITIZER_REPORT
from tests.lib.support import (DEFAULT_TIMEOUT, SERVER_NAME, Process, find_binary, free_port,
                               read_text, replace_file_atomically, wait_until)

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINTS_TYPE = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# The name the xds-server's own certificate carries (and the sidecar checks).
XDS_SERVER_NAME = "xds.local"


def xds_server_bin():
    return find_binary("XDS_SERVER_BIN", "xds-server/xds-server")


# ---- Envoy resources, as the proto3 JSON the resource files hold ---------------


def eds_cluster(name, sni, secret="default", trust="ROOTCA", connect_timeout="1.5s"):
    """eds_cluster is a Cluster whose endpoints come over EDS and whose
    client certificate and trust bundle come over SDS (ADS for all)."""
    return {
        "@type": CLUSTER_TYPE,
        "name": name, "type": "EDS", "connect_timeout": connect_timeout,
        "eds_cluster_config": {"eds_config": {"ads": {}}},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                     "UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [
                    {"name": secret, "sds_config": {"ads": {}}}],
                "validation_context_sds_secret_config": {
                    "name": trust, "sds_config": {"ads": {}}}}}},
    }


def load_assignment(cluster_name, ports, host="127.0.0.1"):
    """load_assignment is a ClusterLoadAssignment with one endpoint per port."""
    return {
        "@type": ENDPOINTS_TYPE,
        "cluster_name": cluster_name,
        "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
            for port in ports]}],
    }


def tcp_listener(name, port, cluster_name, host="127.0.0.1"):
    """tcp_listener is a Listener on host:port relaying to cluster_name."""
    return {
        "@type": LISTENER_TYPE,
        "name": name,
        "address": {"socket_address": {"address": host, "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3."
                     "TcpProxy",
            "stat_prefix": name, "cluster": cluster_name}}]}],
    }


def http_listener(name, port, virtual_hosts, host="127.0.0.1"):
    """http_listener is a Listener on host:port whose HttpConnectionManager
    routes requests by `virtual_hosts` (Envoy's RouteConfiguration
    virtual_hosts, inline) through the router filter."""
    return {
        "@type": LISTENER_TYPE,
        "name": name,
        "address": {"socket_address": {"address": host, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network."
                         "http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {"name": name, "virtual_hosts": virtual_hosts},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3."
                             "Router"}}]}}]}],
    }


def backend_resources(upstream_ports, listener_port):
    """backend_resources are what the xds-server tests serve: cluster
    `backend` over EDS, its client certificate and trust over SDS ("default",
    "ROOTCA"), SNI SERVER_NAME, its endpoints 127.0.0.1:upstream_ports, and
    TCP listener `backend-in` on 127.0.0.1:listener_port."""
    return [
        eds_cluster("backend", SERVER_NAME),
        load_assignment("backend", upstream_ports),
        tcp_listener("backend-in", listener_port, "backend"),
    ]


def write_resources(path, resources):
    """write_resources puts {"resources": [...]} at `path` through a rename,
    so that the watching server never reads half a file."""
    replace_file_atomically(path, json.dumps({"resources": list(resources)}, indent=1))


def xds_bootstrap(port, bootstrap, trusted_ca, node_id, node_cluster=None, **extra):
    """xds_bootstrap is the sidecar's `xds` section for a control plane on
    127.0.0.1:port; `bootstrap` is the CertPair the sidecar presents."""
    section = {
        "address": f"127.0.0.1:{port}",
        "tls": {"certificate": bootstrap.crt, "private_key": bootstrap.key,
                "trusted_ca": trusted_ca, "server_name": XDS_SERVER_NAME},
        "node": {"id": node_id, "cluster": node_cluster or node_id},
    }
    section.update(extra)
    return section


def xds_status(config_dump):
    """xds_status returns the mtls_sidecar.XdsStatus entry of a sidecar's
    /config_dump (a parsed document)."""
    for entry in config_dump["configs"]:
        if entry.get("@type", "").endswith("mtls_sidecar.XdsStatus"):
            return entry
    raise AssertionError(f"no XdsStatus in /config_dump: {json.dumps(config_dump)[:2000]}")


def versions_by_type(status):
    """versions_by_type maps "CDS", "EDS", "LDS", "SDS" to the version_info
    an XdsStatus shows."""
    names = {CLUSTER_TYPE: "CDS", ENDPOINTS_TYPE: "EDS", LISTENER_TYPE: "LDS", SECRET_TYPE: "SDS"}
    return {names.get(t["type_url"], t["type_url"]): t["version_info"]
            for t in status["resource_types"]}


def xds_server_certificates(pki, bootstrap_uri):
    """xds_server_certificates issues, with the Pki's CA as the workload CA,
    xds-server's own certificate (XDS_SERVER_NAME, 127.0.0.1), and makes a
    bootstrap CA of its own with a sidecar's bootstrap certificate for
    bootstrap_uri. Returns (server CertPair, bootstrap CA folder, bootstrap
    CertPair)."""
    tls = pki.issue("xds-server", cn=XDS_SERVER_NAME, dns=[XDS_SERVER_NAME], ips=["127.0.0.1"],
                    server=True)
    bootstrap_ca_dir = pki.make_ca("bootstrap-ca", "bootstrap-ca")
    bootstrap = pki.issue("bootstrap", ca_dir=bootstrap_ca_dir, cn="bootstrap",
                          uris=[bootstrap_uri], client=True)
    return tls, bootstrap_ca_dir, bootstrap


# ---- the process ---------------------------------------------------------------


class XdsServer:
    """XdsServer runs the real xds-server: `tls` (a CertPair) is its own
    certificate, `ca_dir` holds the workload CA (ca.crt, ca.key), resources
    come from `config_dir`, `client_ca` is the CA of the sidecars' bootstrap
    certificates. The ports are chosen once, so that start() after
    kill() or stop() brings it back on the same address, as a restarted
    control plane would. Each start writes its own log file."""

    def __init__(self, folder, tls, ca_dir, config_dir, cert_ttl="1h", port=None,
                 status_port=None, client_ca=None, args=()):
        self.bin = xds_server_bin()
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.port = port or free_port()
        self.status_port = status_port or free_port()
        self.argv = [self.bin, "--listen", f"127.0.0.1:{self.port}",
                     "--status-address", f"127.0.0.1:{self.status_port}",
                     "--tls-cert", tls.crt, "--tls-key", tls.key,
                     "--ca-cert", os.path.join(ca_dir, "ca.crt"),
                     "--ca-key", os.path.join(ca_dir, "ca.key"),
                     "--config-dir", config_dir, "--cert-ttl", cert_ttl] + (
                         ["--client-ca", client_ca] if client_ca else []) + list(args)
        self.process = None
        self.log_paths = []

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=DEFAULT_TIMEOUT):
        """start runs the server and waits until /status answers (the ADS
        port listens before it; probing that port would log a failed
        handshake)."""
        if self.is_running():
            raise AssertionError("xds-server is already running")
        log_path = os.path.join(self.folder, f"xds-server-{len(self.log_paths) + 1}.log")
        self.log_paths.append(log_path)
        self.process = Process(self.argv, log_path)

        def up():
            code = self.process.poll()
            if code is not None:
                raise AssertionError(f"xds-server exited with {code}:\n{self.log()}")
            return self.status_or_none() is not None

        try:
            wait_until(up, timeout, what=f"xds-server on {self.address}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nxds-server log:\n{self.log()}") from None
        return self

    def is_running(self):
        return self.process is not None and self.process.poll() is None

    def status(self, timeout=5):
        """status returns GET /status as a dict."""
        conn = http.client.HTTPConnection("127.0.0.1", self.status_port, timeout=timeout)
        try:
            conn.request("GET", "/status")
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise AssertionError(f"xds-server /status: {response.status}: {body[:500]}")
            return json.loads(body)
        finally:
            conn.close()

    def status_or_none(self):
        try:
            return self.status(timeout=1)
        except (OSError, ValueError):
            return None

    def node(self, node_id):
        """node returns the /status entry of node_id's stream, or None."""
        status = self.status_or_none() or {}
        for entry in status.get("nodes", []):
            if entry.get("id") == node_id:
                return entry
        return None

    def kill(self):
        """kill ends the server at once (SIGKILL), as a crash or an evicted
        pod would; idempotent."""
        if self.process is not None:
            self.process.kill()

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """stop sends SIGTERM and returns the exit code (0 is a clean exit)."""
        self.process.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"xds-server still running {timeout}s after SIGTERM:\n"
                                 f"{self.log()}") from None
        finally:
            self.process.kill()  # closes the log

    def finish(self):
        """finish is the cleanup: SIGTERM (a sanitizer build then reports
        leaks), SIGKILL when it lingers."""
        if self.is_running():
            self.process.signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def log(self):
        """log returns the log of the latest run."""
        return read_text(self.log_paths[-1]) if self.log_paths else ""

    def all_logs(self):
        return "".join(f"---- {p} ----\n{read_text(p)}" for p in self.log_paths)

    def wait_log(self, pattern, timeout=DEFAULT_TIMEOUT):
        """wait_log waits until a line of the latest run matches `pattern`."""
        regex = re.compile(pattern)
        try:
            return wait_until(lambda: [l for l in self.log().splitlines() if regex.search(l)],
                              timeout, what=f"xds-server log line matching {pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nxds-server log:\n{self.log()}") from None

    def sanitizer_reports(self):
        return [line for p in self.log_paths for line in SANITIZER_REPORT.findall(read_text(p))]


def wait_serving(server, node_id, timeout=DEFAULT_TIMEOUT):
    """wait_serving waits until node_id has a stream on `server` whose every
    type is synced (the last version sent was ACKed) and returns the entry."""

    def synced():
        node = server.node(node_id)
        if node and node.get("types") and all(t.get("synced") for t in node["types"].values()):
            return node
        return None

    return wait_until(synced, timeout, what=f"node {node_id} synced on {server.address}")
