"""harness.py: what the integration tests are made of (standard library only):
the IntegrationTest base class, and one import for the pieces it is built from
(support.py: waits, ports, sockets, files, processes; pki.py: certificates
from the `certs` CLI; peers.py: nginx and Python servers; sidecar.py: configs
and the sidecar process).

Every test starts the real binaries (`certs`, `sidecar`) and real peers on
loopback: nginx (HTTPS, HTTPS that requires SNI, or TLS stream in front of a
Python echo server) and small Python servers. Every wait is bounded; every
process and thread a test starts is stopped by the test's cleanups, also when
the test fails.

Binaries: under `bazel test` the working directory is the runfiles root of the
`mtls_sidecar` workspace, so `sidecar/sidecar` and `certs/certs` are found
there. By hand, set SIDECAR_BIN and CERTS_BIN (or build them so that
bazel-bin/ holds them) and run e.g.
    python3 -m unittest tests.integration.test_admin
from the repository root. NGINX_BIN overrides /usr/sbin/nginx.
"""

import os
import socket
import unittest

# The tests use these through `harness.`: one import for everything.
from tests.lib.peers import (HttpsServer, Nginx, TcpServer, TlsServer, echo_handler,
                             reset_after_head_handler, sender_handler, silent_handler,
                             upgrade_echo_handler)
from tests.lib.pki import CertPair, Pki
from tests.lib.sidecar import (Sidecar, cluster, cluster_tls, config, host_stat, http_listener,
                               listener, listener_port)
from tests.lib.support import (CLIENT_URI, DEFAULT_TIMEOUT, SERVER_NAME, KeptConnections,
                               Process, ResetBeforeEof, TempDir, Trickle, closed_how, closed_port,
                               echo_round_trip, free_port, http_get, is_closed_without_data, normalize_serial, port_accepts,
                               read_http_response, read_text, recv_exactly, recv_until_eof,
                               replace_file_atomically, sha256, wait_port, wait_until,
                               write_file)


# ---- the test case base -----------------------------------------------------------


class IntegrationTest(unittest.TestCase):
    """IntegrationTest gives each test a temp folder, a Pki shared by the
    test class, and start_* helpers whose processes end in cleanups."""

    pki = None
    _class_tmp = None

    @classmethod
    def setUpClass(cls):
        cls._class_tmp = TempDir(prefix=f"{cls.__name__}-")
        try:
            cls.pki = Pki(cls._class_tmp.join("pki"))
        except BaseException:
            cls._class_tmp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls._class_tmp is not None:
            cls._class_tmp.cleanup()

    def setUp(self):
        self.tmp = TempDir(prefix=f"{self._testMethodName}-")
        self.addCleanup(self.tmp.cleanup)
        self._sidecars = []
        self._nginxes = []
        self.addCleanup(self._dump_logs_on_failure)
        # Runs before the dump and after every sidecar was stopped.
        self.addCleanup(self._check_sanitizers)

    def _check_sanitizers(self):
        reports = [line for s in self._sidecars for line in s.sanitizer_reports()]
        if reports:
            self.fail("the sidecar's sanitizers reported:\n" + "\n".join(reports))

    def _dump_logs_on_failure(self):
        # unittest has no "did it fail" hook; print logs when the outcome has errors.
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = outcome is not None and not getattr(outcome, "success", True)
        if result is not None:
            for test, _ in list(result.failures) + list(result.errors):
                if test is self:
                    failed = True
        if failed or os.environ.get("SHOW_SIDECAR_LOGS"):
            for s in self._sidecars:
                print(f"\n---- sidecar log {s.log_path} ----\n{s.log()}")
            for n in self._nginxes:
                print(f"\n---- nginx error log {n.error_log} (end) ----\n{n.error_text()[-3000:]}")

    # Python peers
    def start_echo(self):
        server = TcpServer(echo_handler)
        self.addCleanup(server.close)
        return server

    def start_tcp_server(self, handler):
        server = TcpServer(handler)
        self.addCleanup(server.close)
        return server

    def start_tls_server(self, **kwargs):
        server = TlsServer(**kwargs)
        self.addCleanup(server.close)
        return server

    def start_https_server(self, server=None):
        """start_https_server runs a Python HttpsServer with pki.server (or
        `server`) that requires a client certificate from pki.ca."""
        pair = server or self.pki.server
        upstream = HttpsServer(pair.crt, pair.key, self.pki.ca_crt)
        self.addCleanup(upstream.close)
        return upstream

    # nginx
    def start_nginx(self, nginx, files=None):
        for name, data in (files or {}).items():
            nginx.add_file(name, data)
        self.addCleanup(nginx.stop)
        self._nginxes.append(nginx)
        return nginx.start()

    def start_https(self, server=None, files=None, **kwargs):
        """start_https runs nginx HTTPS with pki.server (or `server`),
        requiring a client certificate from pki.ca unless told otherwise."""
        kwargs.setdefault("client_ca", self.pki.ca_crt)
        nginx = Nginx.https(self.tmp.mkdir(f"nginx-{free_port()}"), server or self.pki.server,
                            **kwargs)
        files = files if files is not None else {"hello.txt": b"hello from nginx\n"}
        return self.start_nginx(nginx, files)

    def start_stream(self, backend_port, server=None, **kwargs):
        kwargs.setdefault("client_ca", self.pki.ca_crt)
        nginx = Nginx.stream(self.tmp.mkdir(f"nginx-{free_port()}"), server or self.pki.server,
                             backend_port=backend_port, **kwargs)
        return self.start_nginx(nginx)

    # the sidecar
    def make_sidecar(self, config_dict, name="sidecar", args=()):
        sidecar = Sidecar(self.tmp.mkdir("sidecar"), config_dict, name, args)
        self.addCleanup(sidecar.finish)
        self._sidecars.append(sidecar)
        return sidecar

    def start_sidecar(self, config_dict, name="sidecar", args=()):
        return self.make_sidecar(config_dict, name, args).start()

    def simple_sidecar(self, upstream_port, tls=None, cluster_extra=None, listener_extra=None,
                       name="sidecar", **config_extra):
        """simple_sidecar starts a sidecar with one listener `l` relaying to
        one cluster `c` with the endpoint 127.0.0.1:upstream_port."""
        c = cluster("c", [f"127.0.0.1:{upstream_port}"], tls or cluster_tls(self.pki),
                    **(cluster_extra or {}))
        l = listener("l", "c", **(listener_extra or {}))
        return self.start_sidecar(config([l], [c], **config_extra), name=name)

    def connect(self, port, timeout=DEFAULT_TIMEOUT):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.addCleanup(sock.close)
        return sock
