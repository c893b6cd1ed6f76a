"""HTTP mode: a "protocol": "http" listener parses HTTP/1.1 from the client
and sends each request over pooled keep-alive mTLS connections. Proved here
against nginx and Python HTTPS upstreams: keep-alive reuse, bodies both ways
(Content-Length, chunked, 20 MB, HEAD), pipelining, 100-continue, forwarded
and hop-by-hop headers, the answers the sidecar gives itself (400, 413,
431, 502, 503, 504), retries of idempotent requests only, and certificate
rotation under keep-alive load."""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import threading
import time
import unittest

from tests.lib import harness
from tests.lib.harness import (SERVER_NAME, KeptConnections, cluster, cluster_tls, config,
                               http_get, http_listener, normalize_serial, read_http_response,
                               sha256)

HELLO = b"hello from nginx\n"
MB = 1024 * 1024
# KeptConnections' requests as nginx logs them: connection K's Nth request.
KEPT_REQUEST = re.compile(r"GET /hello\.txt\?kept=(\d+)-(\d+) ")


def stat(sidecar, name):
    """stat returns the sidecar counter `name`; fails when /stats lacks it."""
    value = sidecar.stat(name)
    if value is None:
        raise AssertionError(f"/stats has no {name}")
    return value


def header_values(request, name):
    """header_values returns every value of header `name` (any case) that
    an HttpsServer request record holds, in order."""
    return [v for k, v in request["headers"] if k.lower() == name.lower()]


class RawClient:
    """RawClient is one client connection through the sidecar on which the
    test writes bytes of its choosing and reads responses back."""

    def __init__(self, test, port, timeout=10):
        self.sock = test.connect(port, timeout=timeout)
        self.reader = self.sock.makefile("rb")
        test.addCleanup(self.reader.close)

    def send(self, data):
        self.sock.sendall(data)

    def response(self, head_request=False):
        return read_http_response(self.reader, head_request)

    def closed(self, timeout=5):
        """closed returns True when the sidecar ends the connection (EOF or
        reset) without another byte within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            return self.reader.read(1) == b""
        except ConnectionResetError:
            return True


class HttpTest(harness.IntegrationTest):

    def start_http_sidecar(self, endpoints, tls=None, http=None, workers=2, **cluster_extra):
        """start_http_sidecar starts a sidecar with one HTTP listener `l`
        (its "http" object: `http`) for one cluster `c` of `endpoints`
        (ports on 127.0.0.1, or endpoint strings or dicts as they are)."""
        endpoints = [f"127.0.0.1:{e}" if isinstance(e, int) else e for e in endpoints]
        c = cluster("c", endpoints, tls or cluster_tls(self.pki), **cluster_extra)
        return self.start_sidecar(config([http_listener("l", "c", **(http or {}))], [c],
                                         workers=workers))

    def keep_alive_client(self, sidecar, timeout=10):
        """An http.client connection that fails instead of reconnecting."""
        conn = http.client.HTTPConnection("127.0.0.1", sidecar.listener_port(), timeout=timeout)
        self.addCleanup(conn.close)
        conn.connect()
        conn.auto_open = 0
        return conn

    def exchange(self, conn, method, path, body=None, headers=None, **kwargs):
        """exchange makes one request on `conn`; returns (status, headers,
        body)."""
        all_headers = {"Host": SERVER_NAME}
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers, **kwargs)
        response = conn.getresponse()
        return response.status, response, response.read()

    # ---- 1. keep-alive and the pool ------------------------------------------------

    def test_keep_alive_requests_reuse_a_few_upstream_connections(self):
        nginx = self.start_https()
        sidecar = self.start_http_sidecar([nginx.port])
        conn = self.keep_alive_client(sidecar)
        failures = []
        for i in range(300):
            status, _, body = self.exchange(conn, "GET", f"/hello.txt?n={i}")
            if (status, body) != (200, HELLO):
                failures.append((i, status, body[:200]))
        self.assertEqual(failures, [])
        entries = [e for e in nginx.wait_access_entries(300) if "?n=" in e["request"]]
        self.assertEqual(len(entries), 300)
        self.assertEqual({e["status"] for e in entries}, {"200"})
        connections = {e["connection"] for e in entries}
        self.assertLessEqual(len(connections), 4, f"nginx saw {len(connections)} connections")
        self.assertGreaterEqual(stat(sidecar, "http_pool_reused"), 290)
        self.assertLessEqual(stat(sidecar, "http_pool_new"), 4)
        self.assertLessEqual(stat(sidecar, "ssl_handshake"), 4)
        self.assertEqual(stat(sidecar, "http_rq_total"), 300)
        self.assertEqual(stat(sidecar, "http_rq_2xx"), 300)

    def test_pool_serves_one_request_per_client_connection(self):
        # Clients that close after each request still reuse upstream
        # connections: the pool belongs to the worker, not the client.
        nginx = self.start_https()
        sidecar = self.start_http_sidecar([nginx.port])
        for i in range(100):
            self.assertEqual(http_get(sidecar.listener_port(), f"/hello.txt?n={i}"), (200, HELLO))
        entries = nginx.wait_access_entries(100)
        connections = {e["connection"] for e in entries}
        self.assertLessEqual(len(connections), 4, f"nginx saw {len(connections)} connections")
        self.assertGreaterEqual(stat(sidecar, "http_pool_reused"), 96)

    def test_upstream_keepalive_requests_limit_is_honored(self):
        # nginx says "Connection: close" on the 50th answer of a connection;
        # the sidecar opens another and the client never notices.
        nginx = self.start_https(keepalive_requests=50)
        sidecar = self.start_http_sidecar([nginx.port])
        conn = self.keep_alive_client(sidecar)
        for i in range(150):
            status, _, body = self.exchange(conn, "GET", f"/hello.txt?n={i}")
            self.assertEqual((status, body), (200, HELLO), f"request {i}")
        entries = nginx.wait_access_entries(150)
        self.assertLessEqual(max(int(e["connection_requests"]) for e in entries), 50)
        connections = {e["connection"] for e in entries}
        self.assertGreaterEqual(len(connections), 3)
        self.assertEqual(stat(sidecar, "http_rq_5xx"), 0)
        self.assertEqual(stat(sidecar, "http_rq_retry"), 0)
        # The later connections resume the first one's TLS session, and the
        # sidecar counts what nginx saw.
        resumed = {e["connection"] for e in entries if e["reused"] == "r"}
        self.assertGreaterEqual(len(resumed), len(connections) - 2, entries[::50])
        self.assertEqual(stat(sidecar, "ssl_session_reused"), len(resumed))
        self.assertEqual(stat(sidecar, "ssl_handshake"), len(connections))

    def test_max_requests_closes_a_connection_and_counts_it(self):
        nginx = self.start_https()
        sidecar = self.start_http_sidecar([nginx.port], http_pool={"max_requests": 2})
        conn = self.keep_alive_client(sidecar)
        for i in range(5):
            self.assertEqual(self.exchange(conn, "GET", f"/hello.txt?n={i}")[::2], (200, HELLO))
        # 2 + 2 + 1: the first two connections closed after their second request.
        self.assertEqual(len({e["connection"] for e in nginx.wait_access_entries(5)}), 3)
        self.assertEqual(stat(sidecar, "http_pool_new"), 3)
        self.assertEqual(stat(sidecar, "upstream_cx_max_requests"), 2)
        self.assertEqual(stat(sidecar, "cluster.c.upstream_cx_max_requests"), 2)
        self.assertIn('mtls_sidecar_cluster_upstream_cx_max_requests{cluster="c"} 2',
                      sidecar.admin_get("/stats/prometheus")[1])

    def test_max_lifetime_retires_a_connection_and_counts_it(self):
        nginx = self.start_https()
        sidecar = self.start_http_sidecar([nginx.port], http_pool={"max_lifetime_ms": 300})
        conn = self.keep_alive_client(sidecar)
        self.assertEqual(self.exchange(conn, "GET", "/hello.txt")[0], 200)
        time.sleep(0.5)  # the pooled connection grows too old while idle
        self.assertEqual(self.exchange(conn, "GET", "/hello.txt")[0], 200)
        self.assertEqual(stat(sidecar, "http_pool_reused"), 0)
        self.assertEqual(stat(sidecar, "upstream_cx_max_duration_reached"), 1)
        self.assertEqual(stat(sidecar, "cluster.c.upstream_cx_max_duration_reached"), 1)

    def test_pool_idle_timeout_closes_a_connection_and_counts_it(self):
        nginx = self.start_https()
        sidecar = self.start_http_sidecar([nginx.port], http_pool={"idle_timeout_ms": 200})
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        harness.wait_until(lambda: stat(sidecar, "upstream_cx_idle_timeout") == 1,
                           what="the idle upstream connection closed and counted")
        self.assertEqual(stat(sidecar, "http_pool_idle"), 0)
        self.assertEqual(stat(sidecar, "cluster.c.upstream_cx_idle_timeout"), 1)

    def test_a_full_pool_evicts_its_least_recently_used_connection_and_counts_it(self):
        big = os.urandom(16 * MB)
        nginx = self.start_https(files={"big.bin": big})
        sidecar = self.start_http_sidecar([nginx.port], workers=1, http_pool={"max_idle": 1})
        # Two responses held back by clients that do not read yet: two
        # upstream connections at once, for a pool that keeps one.
        clients = []
        for _ in range(2):
            raw = RawClient(self, sidecar.listener_port(), timeout=30)
            raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            raw.send(f"GET /big.bin HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
            clients.append(raw)
        harness.wait_until(lambda: stat(sidecar, "http_pool_new") == 2,
                           what="two upstream connections")
        for raw in clients:
            status, _, body = raw.response()
            self.assertEqual((status, sha256(body)), (200, sha256(big)))
        harness.wait_until(lambda: stat(sidecar, "http_pool_evicted") == 1,
                           what="the least recently used connection evicted")
        self.assertEqual(stat(sidecar, "http_pool_idle"), 1)
        prometheus = sidecar.admin_get("/stats/prometheus")[1]
        self.assertIn("mtls_sidecar_http_pool_evicted 1", prometheus)

    # ---- 2. bodies ------------------------------------------------------------------

    def test_request_bodies_with_content_length_and_chunked(self):
        upstream = self.start_https_server()
        sidecar = self.start_http_sidecar([upstream.port])
        payload = os.urandom(5 * MB)
        conn = self.keep_alive_client(sidecar, timeout=30)

        status, _, body = self.exchange(conn, "POST", "/echo?framing=length", body=payload)
        self.assertEqual(status, 200)
        self.assertEqual((len(body), sha256(body)), (len(payload), sha256(payload)))

        pieces = (payload[i:i + 100_000] for i in range(0, len(payload), 100_000))
        status, _, body = self.exchange(conn, "POST", "/echo?framing=chunked", body=pieces,
                                        headers={"Transfer-Encoding": "chunked"},
                                        encode_chunked=True)
        self.assertEqual(status, 200)
        self.assertEqual((len(body), sha256(body)), (len(payload), sha256(payload)))

        by_path = {r["path"]: r for r in upstream.requests}
        self.assertEqual(by_path["/echo?framing=length"]["body_length"], len(payload))
        self.assertFalse(by_path["/echo?framing=length"]["chunked"])
        self.assertEqual(header_values(by_path["/echo?framing=length"], "Content-Length"),
                         [str(len(payload))])
        self.assertEqual(by_path["/echo?framing=chunked"]["body_length"], len(payload))
        self.assertTrue(by_path["/echo?framing=chunked"]["chunked"])

    def test_large_response_and_head(self):
        big = os.urandom(20 * MB)
        nginx = self.start_https(files={"big.bin": big, "hello.txt": HELLO})
        sidecar = self.start_http_sidecar([nginx.port])
        conn = self.keep_alive_client(sidecar, timeout=30)

        status, response, body = self.exchange(conn, "GET", "/big.bin")
        self.assertEqual(status, 200)
        self.assertEqual(response.getheader("Content-Length"), str(len(big)))
        self.assertEqual((len(body), sha256(body)), (len(big), sha256(big)))

        # HEAD: the length, no body; the next answer on the connection is
        # not polluted by one.
        raw = RawClient(self, sidecar.listener_port())
        raw.send(f"HEAD /big.bin HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
        status, headers, body = raw.response(head_request=True)
        self.assertEqual((status, headers.get("content-length"), body), (200, str(len(big)), b""))
        raw.send(f"GET /hello.txt HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
        status, _, body = raw.response()
        self.assertEqual((status, body), (200, HELLO))

    # ---- 3. pipelining ----------------------------------------------------------------

    def test_pipelined_requests_are_answered_in_order(self):
        files = {"a.txt": b"alpha\n", "b.txt": b"bravo bravo\n", "c.txt": b"charlie charlie charlie\n"}
        nginx = self.start_https(files=files)
        sidecar = self.start_http_sidecar([nginx.port])
        raw = RawClient(self, sidecar.listener_port())
        raw.send(f"GET /a.txt HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n"
                 f"GET /b.txt HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n"
                 f"GET /c.txt HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n"
                 .encode())
        answers = [raw.response() for _ in range(3)]
        self.assertEqual([(status, body) for status, _, body in answers],
                         [(200, files["a.txt"]), (200, files["b.txt"]), (200, files["c.txt"])])
        self.assertTrue(raw.closed(), "the connection stayed open after Connection: close")
        self.assertEqual([e["request"].split()[1] for e in nginx.wait_access_entries(3)],
                         ["/a.txt", "/b.txt", "/c.txt"])

    # ---- 4. 100-continue --------------------------------------------------------------

    def test_expect_100_continue(self):
        upstream = self.start_https_server()
        sidecar = self.start_http_sidecar([upstream.port])
        payload = os.urandom(256 * 1024)
        raw = RawClient(self, sidecar.listener_port())
        raw.send(f"POST /echo HTTP/1.1\r\nHost: {SERVER_NAME}\r\nContent-Length: {len(payload)}\r\n"
                 f"Expect: 100-continue\r\n\r\n".encode())
        # The body is held back until the interim answer comes (or 5 s).
        raw.sock.settimeout(5)
        status, _, _ = raw.response()
        self.assertEqual(status, 100)
        raw.sock.settimeout(10)
        raw.send(payload)
        status, _, body = raw.response()
        self.assertEqual(status, 200)
        self.assertEqual(sha256(body), sha256(payload))
        self.assertEqual(header_values(upstream.requests[-1], "Expect"), ["100-continue"])

    def test_upgrade_becomes_a_tunnel(self):
        heads = []
        upstream = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                         client_ca=self.pki.ca_crt,
                                         session=harness.upgrade_echo_handler(heads))
        sidecar = self.start_http_sidecar([upstream.port])
        raw = RawClient(self, sidecar.listener_port())
        # The client's first tunnel bytes may ride along with its head.
        raw.send(f"GET /chat HTTP/1.1\r\nHost: {SERVER_NAME}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                 "early\n".encode())
        wanted = b"upgraded\nearly\n"
        got = raw.sock.recv(1 << 16)
        deadline = time.monotonic() + 10
        while wanted not in got and time.monotonic() < deadline:
            more = raw.sock.recv(1 << 16)
            if not more:
                break
            got += more
        head, _, rest = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), got[:200])
        self.assertIn(b"\r\nUpgrade: websocket", head)
        self.assertEqual(rest, wanted)
        # The upstream was asked for the upgrade, hop-by-hop headers and all.
        self.assertEqual(len(heads), 1)
        self.assertIn("\r\nUpgrade: websocket", heads[0])
        self.assertIn("\r\nConnection: upgrade", heads[0])
        # Then bytes pass both ways as they are, 1 MB of them.
        payload = os.urandom(1 << 20)
        sender = threading.Thread(target=raw.sock.sendall, args=(payload,))
        sender.start()
        echoed = b""
        while len(echoed) < len(payload):
            more = raw.sock.recv(1 << 16)
            if not more:
                break
            echoed += more
        sender.join(10)
        self.assertEqual(sha256(echoed), sha256(payload))
        self.assertEqual(stat(sidecar, "http_rq_1xx"), 1)

    def test_a_slow_client_is_not_an_upstream_timeout(self):
        big = os.urandom(16 << 20)
        nginx = self.start_https(files={"big.bin": big})
        # request_timeout_ms bounds the upstream's silences; a client that
        # pauses longer than that while the response waits for it is fine.
        sidecar = self.start_http_sidecar([nginx.port], http={"request_timeout_ms": 300,
                                                              "client_idle_timeout_ms": 5000})
        raw = RawClient(self, sidecar.listener_port())
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        raw.send(f"GET /big.bin HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
        got = b""
        for _ in range(3):
            time.sleep(0.8)  # longer than request_timeout_ms, with the pipe full
            got += raw.sock.recv(1 << 20)
        while True:
            head_end = got.find(b"\r\n\r\n")
            if head_end >= 0 and len(got) - head_end - 4 >= len(big):
                break
            more = raw.sock.recv(1 << 20)
            if not more:
                break
            got += more
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
        self.assertEqual(sha256(got[got.find(b"\r\n\r\n") + 4:]), sha256(big))
        self.assertEqual(stat(sidecar, "http_rq_timeout"), 0)

    def test_a_client_that_stops_reading_is_closed_after_client_idle_timeout(self):
        big = os.urandom(16 << 20)
        nginx = self.start_https(files={"big.bin": big})
        sidecar = self.start_http_sidecar([nginx.port], http={"client_idle_timeout_ms": 700})
        raw = RawClient(self, sidecar.listener_port())
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        raw.send(f"GET /big.bin HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
        sidecar.wait_log(r"the client read nothing for 700 ms; closing", timeout=10)
        # What was in flight can still be read, then the connection ends.
        raw.sock.settimeout(10)
        try:
            while raw.sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
        self.assertEqual(http_get(sidecar.listener_port(), "/big.bin")[0], 200)
        # Counted as an idle timeout, for the listener and server-wide.
        self.assertEqual(stat(sidecar, "listener.l.downstream_cx_idle_timeout"), 1)
        self.assertEqual(stat(sidecar, "downstream_cx_idle_timeout"), 1)

    def test_an_idle_keep_alive_client_is_closed_after_client_idle_timeout(self):
        nginx = self.start_https()
        sidecar = self.start_http_sidecar([nginx.port], http={"client_idle_timeout_ms": 500})
        raw = RawClient(self, sidecar.listener_port())
        raw.send(f"GET /hello.txt HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
        self.assertEqual(raw.response()[::2], (200, HELLO))
        # Idle between requests: the idle timeout's, not the head deadline's.
        self.assertTrue(raw.closed(timeout=10))
        self.assertEqual(stat(sidecar, "listener.l.downstream_cx_idle_timeout"), 1)
        self.assertEqual(stat(sidecar, "downstream_rq_header_timeout"), 0)

    def test_routes_and_no_route(self):
        nginx = self.start_https(files={"hello.txt": HELLO})
        other = self.start_https_server()
        c = cluster("c", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))
        o = cluster("o", [f"127.0.0.1:{other.port}"], cluster_tls(self.pki))
        routes = [{"host": "api.shop", "path_prefix": "/echo", "cluster": "o"},
                  {"path_prefix": "/hello", "cluster": "c"}]
        sidecar = self.start_sidecar(config(
            [http_listener("l", "c", routes=routes),
             http_listener("strict", "c", routes=routes, no_route="404")], [c, o]))
        for port in (sidecar.listener_port(0), sidecar.listener_port(1)):
            self.assertEqual(http_get(port, "/hello.txt"), (200, HELLO))
            self.assertEqual(http_get(port, "/echo", host="API.shop:8080")[0], 200)
        before = len(other.requests)
        # No route: the listener's cluster, or 404 without an upstream.
        self.assertEqual(http_get(sidecar.listener_port(0), "/echo", host="else.shop")[0], 404)
        nginx.wait_access_entries(3)
        status, body = http_get(sidecar.listener_port(1), "/echo", host="else.shop")
        self.assertEqual(status, 404)
        self.assertIn(b"no route", body)
        self.assertEqual(len(other.requests), before)
        self.assertEqual(len(nginx.access_entries()), 3)

    # ---- 5. headers -------------------------------------------------------------------

    def test_forwarded_and_hop_by_hop_headers(self):
        upstream = self.start_https_server()
        tls = cluster_tls(self.pki)
        clusters = [cluster("rewrites", [f"127.0.0.1:{upstream.port}"], tls,
                            host_header="backend.internal"),
                    cluster("plain", [f"127.0.0.1:{upstream.port}"], tls)]
        listeners = [http_listener("forwarding", "rewrites"),
                     http_listener("quiet", "plain", add_x_forwarded_for=False)]
        sidecar = self.start_sidecar(config(listeners, clusters))

        raw = RawClient(self, sidecar.listener_port(0))
        raw.send(b"GET /first HTTP/1.1\r\nHost: client.example\r\n"
                 b"Connection: X-Foo\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\n"
                 b"Proxy-Connection: keep-alive\r\nTE: trailers\r\n"
                 b"X-End-To-End: kept\r\nX-Forwarded-Proto: https\r\n\r\n")
        self.assertEqual(raw.response()[0], 200)
        raw.send(b"GET /second HTTP/1.1\r\nHost: client.example\r\n"
                 b"X-Forwarded-For: 10.1.2.3\r\n\r\n")
        self.assertEqual(raw.response()[0], 200)
        first, second = upstream.requests[-2:]
        self.assertEqual((first["path"], second["path"]), ("/first", "/second"))
        names = {name.lower() for name, _ in first["headers"]}
        for hop_by_hop in ("x-foo", "keep-alive", "proxy-connection", "te"):
            self.assertNotIn(hop_by_hop, names, first["headers"])
        self.assertNotIn("x-foo", " ".join(header_values(first, "Connection")).lower())
        self.assertEqual(header_values(first, "X-End-To-End"), ["kept"])
        self.assertEqual(header_values(first, "Host"), ["backend.internal"])
        self.assertEqual(header_values(first, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(header_values(first, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(header_values(second, "X-Forwarded-For"), ["10.1.2.3, 127.0.0.1"])

        # Without host_header the client's Host passes; add_x_forwarded_for
        # false adds nothing.
        raw = RawClient(self, sidecar.listener_port(1))
        raw.send(b"GET /quiet HTTP/1.1\r\nHost: client.example\r\n\r\n")
        self.assertEqual(raw.response()[0], 200)
        quiet = upstream.requests[-1]
        self.assertEqual(quiet["path"], "/quiet")
        self.assertEqual(header_values(quiet, "Host"), ["client.example"])
        self.assertEqual(header_values(quiet, "X-Forwarded-For"), [])
        self.assertEqual(header_values(quiet, "X-Forwarded-Proto"), [])

    # ---- 6. the sidecar's own answers when the upstream fails -------------------------

    def get(self, sidecar, path="/hello.txt", timeout=10):
        """One GET on a new connection: (status, body text)."""
        status, body = http_get(sidecar.listener_port(), path, timeout=timeout)
        return status, body.decode("utf-8", "replace")

    def test_502_when_the_upstream_requires_sni_and_none_is_sent(self):
        nginx = self.start_https(require_sni=True)
        sidecar = self.start_http_sidecar([nginx.port], cluster_tls(self.pki, send_sni=False))
        status, body = self.get(sidecar)
        self.assertEqual(status, 502, body)
        self.assertIn("reason=sni_required", body)
        self.assertIn("may require SNI", body)
        self.assertEqual(nginx.access_entries(), [])
        self.assertGreaterEqual(stat(sidecar, "http_rq_5xx"), 1)

    def test_502_when_the_upstream_certificate_is_from_an_unknown_ca(self):
        nginx = self.start_https(server=self.pki.other_server)
        sidecar = self.start_http_sidecar([nginx.port])
        status, body = self.get(sidecar)
        self.assertEqual(status, 502, body)
        self.assertIn("reason=unknown_ca", body)
        self.assertEqual(nginx.access_entries(), [])

    def test_502_when_the_only_endpoint_refuses_connections(self):
        dead_socket, dead = harness.closed_port()
        self.addCleanup(dead_socket.close)
        sidecar = self.start_http_sidecar([dead])
        status, body = self.get(sidecar)
        self.assertEqual(status, 502, body)
        self.assertIn(f"connect failed: cluster=c endpoint=127.0.0.1:{dead}", body)

    def test_503_when_no_endpoint_can_be_picked(self):
        # A host name that never resolves leaves the cluster without an
        # address: nothing to try, and nothing failed (pick_upstream's 503).
        sidecar = self.start_http_sidecar(["no-such-host.invalid:443"])
        status, body = self.get(sidecar)
        self.assertEqual(status, 503, body)
        self.assertIn("no endpoint available", body)

    def test_504_when_the_upstream_never_answers(self):
        silent = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                       client_ca=self.pki.ca_crt,
                                       session=harness.silent_handler)
        sidecar = self.start_http_sidecar([silent.port], http={"request_timeout_ms": 500})
        started = time.monotonic()
        status, body = self.get(sidecar)
        elapsed = time.monotonic() - started
        self.assertEqual(status, 504, body)
        self.assertIn("request_timeout_ms", body)
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, 5)
        self.assertEqual(stat(sidecar, "http_rq_timeout"), 1)
        self.assertEqual(stat(sidecar, "http.l.downstream_rq_timeout"), 1)
        self.assertEqual(stat(sidecar, "cluster.c.upstream_rq_timeout"), 1)
        self.assertEqual(stat(sidecar, "http.l.downstream_rq_5xx"), 1)

    # ---- 7. retries -------------------------------------------------------------------

    def start_retry_pair(self):
        """A cluster whose first pick is an upstream that resets every
        connection after reading a request head (weight 1000), and whose
        other endpoint is a working HttpsServer (weight 1)."""
        heads = []
        resetting = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                          client_ca=self.pki.ca_crt,
                                          session=harness.reset_after_head_handler(heads))
        working = self.start_https_server()
        sidecar = self.start_http_sidecar(
            [{"address": f"127.0.0.1:{resetting.port}", "weight": 1000},
             {"address": f"127.0.0.1:{working.port}", "weight": 1}])
        return heads, working, sidecar

    def test_get_is_retried_on_another_endpoint(self):
        heads, working, sidecar = self.start_retry_pair()
        for method in ("GET", "DELETE"):
            conn = http.client.HTTPConnection("127.0.0.1", sidecar.listener_port(), timeout=10)
            self.addCleanup(conn.close)
            status, _, body = self.exchange(conn, method, f"/retried-{method}")
            self.assertEqual((status, body), (200, f"{method} /retried-{method}\n".encode()))
        self.assertEqual([h.split("\r\n")[0] for h in heads],
                         ["GET /retried-GET HTTP/1.1", "DELETE /retried-DELETE HTTP/1.1"])
        self.assertEqual([(r["method"], r["path"]) for r in working.requests],
                         [("GET", "/retried-GET"), ("DELETE", "/retried-DELETE")])
        self.assertGreaterEqual(stat(sidecar, "http_rq_retry"), 2)
        self.assertEqual(stat(sidecar, "cluster.c.upstream_rq_retry"),
                         stat(sidecar, "http_rq_retry"))
        self.assertEqual(stat(sidecar, "http_rq_5xx"), 0)

    def test_post_is_not_retried(self):
        heads, working, sidecar = self.start_retry_pair()
        conn = http.client.HTTPConnection("127.0.0.1", sidecar.listener_port(), timeout=10)
        self.addCleanup(conn.close)
        status, _, body = self.exchange(conn, "POST", "/echo", body=b"order #1")
        self.assertEqual(status, 502, body)
        self.assertIn(b"upstream failed", body)
        self.assertEqual([h.split("\r\n")[0] for h in heads], ["POST /echo HTTP/1.1"])
        self.assertEqual(working.requests, [])
        self.assertEqual(stat(sidecar, "http_rq_retry"), 0)

    # ---- 8. malformed and oversized requests ----------------------------------------

    def test_malformed_request_gets_400_and_its_connection_closes(self):
        nginx = self.start_https()
        sidecar = self.start_http_sidecar([nginx.port])
        bystander = self.keep_alive_client(sidecar)
        self.assertEqual(self.exchange(bystander, "GET", "/hello.txt?before=1")[0::2],
                         (200, HELLO))
        raw = RawClient(self, sidecar.listener_port())
        raw.send(b"NOT A REQUEST\r\n\r\n")
        status, headers, body = raw.response()
        self.assertEqual(status, 400, body)
        self.assertEqual(headers.get("connection", "").lower(), "close")
        self.assertTrue(raw.closed(), "the connection stayed open after 400")
        self.assertEqual(self.exchange(bystander, "GET", "/hello.txt?after=1")[0::2],
                         (200, HELLO))
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?new=1"), (200, HELLO))
        self.assertEqual(stat(sidecar, "http_rq_4xx"), 1)

    def test_ambiguous_request_framing_gets_400_and_reaches_no_upstream(self):
        # Request smuggling: a front and a back end that frame the same bytes
        # differently. Each of these heads is refused before any byte goes
        # upstream, and only its own connection closes.
        upstream = self.start_https_server()
        sidecar = self.start_http_sidecar([upstream.port])
        bystander = self.keep_alive_client(sidecar)
        self.assertEqual(self.exchange(bystander, "GET", "/before")[0], 200)
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        heads = [
            # both Content-Length and Transfer-Encoding (CL.TE / TE.CL)
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
            # two different Content-Lengths
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n"
            b"\r\nabc" + smuggled,
            # a Content-Length that is not a number
            b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc" + smuggled,
            # a chunk size that is not hexadecimal
            b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nabc\r\n0\r\n\r\n" + smuggled,
            # a space before the colon (RFC 9112 5.1: must be rejected)
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc" + smuggled,
            # two Host headers: routed by one, served by the other (RFC 9112 3.2)
            b"GET /f HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            # an HTTP/1.1 request without a Host header (RFC 9112 3.2)
            b"GET /g HTTP/1.1\r\nAccept: */*\r\n\r\n",
        ]
        reasons = []
        for head in heads:
            raw = RawClient(self, sidecar.listener_port())
            raw.send(head)
            status, headers, body = raw.response()
            self.assertEqual(status, 400, (head, body))
            reasons.append(body)
            self.assertEqual(headers.get("connection", "").lower(), "close")
            self.assertTrue(raw.closed(), f"the connection stayed open after 400: {head!r}")
        self.assertEqual(self.exchange(bystander, "GET", "/after")[0], 200)
        paths = [r["path"] for r in upstream.requests]
        self.assertEqual(paths, ["/before", "/after"])
        self.assertEqual(stat(sidecar, "http_rq_4xx"), len(heads))
        self.assertIn(b"a header name that is not a token", reasons[4])
        self.assertIn(b"more than one Host header", reasons[5])
        self.assertIn(b"without a Host header", reasons[6])
        # HTTP/1.0 needs no Host.
        raw = RawClient(self, sidecar.listener_port())
        raw.send(b"GET /h HTTP/1.0\r\n\r\n")
        self.assertEqual(raw.response()[0], 200)

    def test_an_absolute_url_is_routed_and_sent_in_origin_form(self):
        # RFC 9112 3.2.2: the authority of an absolute-form target wins over
        # Host; the upstream gets the origin form and that authority as Host.
        default, orders = self.start_https_server(), self.start_https_server()
        sidecar = self.start_sidecar(config(
            [http_listener("l", "d", routes=[{"host": "orders.shop", "cluster": "o"}])],
            [cluster("d", [f"127.0.0.1:{default.port}"], cluster_tls(self.pki)),
             cluster("o", [f"127.0.0.1:{orders.port}"], cluster_tls(self.pki))]))
        for target, host in [(b"http://orders.shop:8080/list?page=2", b"elsewhere"),
                             (b"http://user@orders.shop?page=3", b"orders.shop"),
                             (b"http://[::1]:9/v6", b"orders.shop")]:
            raw = RawClient(self, sidecar.listener_port())
            raw.send(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            self.assertEqual(raw.response()[0], 200, target)
        got = [(r["path"], header_values(r, "Host")) for r in orders.requests]
        self.assertEqual(got, [("/list?page=2", ["orders.shop:8080"]),
                               ("/?page=3", ["orders.shop"])])
        self.assertEqual([(r["path"], header_values(r, "Host")) for r in default.requests],
                         [("/v6", ["[::1]:9"])])
        # What is neither a path nor an absolute URL is refused; CONNECT is not proxied.
        for head, status in [(b"GET orders.shop/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
                             (b"CONNECT orders.shop:443 HTTP/1.1\r\nHost: a\r\n\r\n", 405)]:
            raw = RawClient(self, sidecar.listener_port())
            raw.send(head)
            self.assertEqual(raw.response()[0], status, head)

    def test_a_response_header_name_with_a_space_is_a_502(self):
        # "Content-Length : 5" from an upstream: framed by some hops and not by
        # others, so it is not passed on.
        babbler = self.start_tls_server(
            cert=self.pki.server.crt, key=self.pki.server.key, client_ca=self.pki.ca_crt,
            session=harness.sender_handler(b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"))
        sidecar = self.start_http_sidecar([babbler.port])
        status, _, body = self.exchange(self.keep_alive_client(sidecar), "GET", "/x")
        self.assertEqual(status, 502, body)
        self.assertIn(b"invalid response: a header name that is not a token", body)

    def test_garbage_from_clients_and_an_upstream_closes_those_sockets_only(self):
        nginx = self.start_https()
        # An upstream that answers every request head with bytes that are not HTTP.
        babbler = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                        client_ca=self.pki.ca_crt,
                                        session=harness.sender_handler(os.urandom(4096)))
        c = cluster("c", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))
        bad = cluster("bad", [f"127.0.0.1:{babbler.port}"], cluster_tls(self.pki))
        sidecar = self.start_sidecar(config(
            [http_listener("l", "c", routes=[{"path_prefix": "/bad/", "cluster": "bad"}])],
            [c, bad]))
        bystander = self.keep_alive_client(sidecar)
        self.assertEqual(self.exchange(bystander, "GET", "/hello.txt?before=1")[0::2],
                         (200, HELLO))
        rng = random.Random(7)
        for i in range(30):
            raw = RawClient(self, sidecar.listener_port())
            prefix = [b"", b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked"
                      b"\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n"][i % 4]
            try:
                raw.send(prefix + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
            except OSError:
                pass  # the sidecar may already have answered and closed
            raw.sock.close()
        # The upstream's garbage is a 502 for that request, nothing more.
        status, _, body = self.exchange(self.keep_alive_client(sidecar), "GET", "/bad/x")
        self.assertEqual(status, 502, body)
        self.assertIn(b"invalid response", body)
        self.assertEqual(self.exchange(bystander, "GET", "/hello.txt?after=1")[0::2],
                         (200, HELLO))
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?new=1"), (200, HELLO))
        self.assertTrue(sidecar.is_running())

    def test_head_over_the_default_limit_gets_431(self):
        # The Python upstream, as nginx itself refuses header lines over 8 KiB.
        upstream = self.start_https_server()
        sidecar = self.start_http_sidecar([upstream.port])
        raw = RawClient(self, sidecar.listener_port())
        raw.send(f"GET /big-head HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                 f"X-Big: {'a' * 100_000}\r\n\r\n".encode())
        status, _, body = raw.response()
        self.assertEqual(status, 431, body)
        self.assertTrue(raw.closed(), "the connection stayed open after 431")
        self.assertEqual(upstream.requests, [])
        # Just under the limit (65536) passes.
        raw = RawClient(self, sidecar.listener_port())
        raw.send(f"GET /large-head HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                 f"X-Big: {'a' * 60_000}\r\n\r\n".encode())
        self.assertEqual(raw.response()[0::2], (200, b"GET /large-head\n"))
        self.assertEqual(len(header_values(upstream.requests[-1], "X-Big")[0]), 60_000)

    def test_body_over_the_limit_gets_413(self):
        upstream = self.start_https_server()
        sidecar = self.start_http_sidecar([upstream.port],
                                          http={"max_request_body_bytes": 1000})
        raw = RawClient(self, sidecar.listener_port())
        # The head alone earns the answer: the body is never waited for.
        raw.send(f"POST /echo HTTP/1.1\r\nHost: {SERVER_NAME}\r\nContent-Length: 2000\r\n\r\n"
                 .encode())
        status, _, body = raw.response()
        self.assertEqual(status, 413, body)
        self.assertTrue(raw.closed(), "the connection stayed open after 413")
        self.assertEqual(upstream.requests, [])
        # At the limit passes.
        conn = self.keep_alive_client(sidecar)
        self.assertEqual(self.exchange(conn, "POST", "/echo", body=b"x" * 1000)[0::2],
                         (200, b"x" * 1000))
        # A chunked body is cut off where it passes the limit, first chunk or later.
        for chunks in ([2000], [600, 600]):
            raw = RawClient(self, sidecar.listener_port())
            raw.send(f"POST /echo HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
            for size in chunks:
                raw.send(f"{size:x}\r\n".encode() + b"y" * size + b"\r\n")
            raw.send(b"0\r\n\r\n")
            status, _, body = raw.response()
            self.assertEqual(status, 413, (chunks, body))
            self.assertTrue(raw.closed(), f"the connection stayed open after 413 ({chunks})")

    def test_sigterm_closes_idle_keep_alive_connections_at_once(self):
        nginx = self.start_https(files={"hello.txt": HELLO})
        c = cluster("c", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))
        sidecar = self.start_sidecar(config([http_listener("l", "c")], [c],
                                            drain_timeout_ms=20000))
        conn = self.keep_alive_client(sidecar)
        self.assertEqual(self.exchange(conn, "GET", "/hello.txt")[0::2], (200, HELLO))
        started = time.monotonic()
        sidecar.send_signal(signal.SIGTERM)
        # Idle between requests: closed at once, not kept for the 20 s drain.
        self.assertEqual(harness.recv_until_eof(conn.sock, timeout=5), b"")
        code = sidecar.process.wait(10)
        self.assertEqual(code, 0, sidecar.log())
        self.assertLess(time.monotonic() - started, 10)

    def test_access_log_and_latency_stats(self):
        nginx = self.start_https(files={"hello.txt": HELLO})
        log_path = os.path.join(self.tmp.mkdir("logs"), "access.jsonl")
        sidecar = self.start_http_sidecar([nginx.port], http={"access_log": log_path})
        conn = self.keep_alive_client(sidecar)
        self.assertEqual(self.exchange(conn, "GET", "/hello.txt?a=\"b\"")[0], 200)
        # The head and the body in one write: http.client writes them apart,
        # and nginx answers 404 without waiting for a body, so the exchange
        # could end (the connection closing after it) before the body came.
        # Same connection (same worker: its pool holds the upstream).
        conn.sock.sendall(b"POST /missing HTTP/1.1\r\nHost: " + SERVER_NAME.encode() +
                          b"\r\nContent-Length: 5\r\n\r\n12345")
        response = http.client.HTTPResponse(conn.sock)
        response.begin()
        response.read()
        self.assertEqual(response.status, 404)
        harness.wait_until(lambda: os.path.exists(log_path) and
                           len(open(log_path).read().splitlines()) == 2,
                           timeout=5, what="two access log lines")
        entries = [json.loads(line) for line in open(log_path).read().splitlines()]
        first, second = entries
        self.assertEqual((first["method"], first["status"], first["path"]),
                         ("GET", 200, '/hello.txt?a="b"'))
        self.assertEqual((second["method"], second["status"], second["bytes_received"]),
                         ("POST", 404, 5))
        for e in entries:
            self.assertEqual(e["cluster"], "c")
            self.assertEqual(e["endpoint"], f"127.0.0.1:{nginx.port}")
            self.assertEqual(e["authority"], SERVER_NAME)
            self.assertEqual(e["client"], "127.0.0.1")
            self.assertGreater(e["duration_ms"], 0)
            self.assertLessEqual(e["upstream_response_ms"], e["duration_ms"])
        self.assertEqual(first["bytes_sent"], len(HELLO))
        self.assertFalse(first["upstream_reused"])
        self.assertTrue(second["upstream_reused"])
        latency = sidecar.admin_json("/stats")["http_rq_latency_ms"]
        self.assertEqual(latency["count"], 2)
        # Quantiles from the histogram are stated as what they are: the upper
        # bound of the bucket holding each (Prometheus' "le"), never an
        # interpolated figure; the mean is exact.
        self.assertNotIn("p50", latency)
        bounds = [b["le"] for b in latency["buckets"]]
        self.assertEqual(bounds[:4], [0.5, 1, 2, 5])
        for q in ("p50_le", "p90_le", "p99_le"):
            self.assertIn(latency[q], bounds, q)
        self.assertLessEqual(latency["p50_le"], latency["p99_le"])
        self.assertAlmostEqual(latency["mean"], latency["sum"] / 2)
        entries_ms = [e["duration_ms"] for e in entries]
        slowest = max(entries_ms)
        self.assertGreaterEqual(latency["p99_le"], slowest * 0.9)  # the bound holds it
        self.assertEqual(latency["buckets"][-1]["count"], 2)
        # Per listener (Envoy's HTTP connection manager's names) and per cluster.
        stats = sidecar.stats()
        self.assertEqual((stats["http.l.downstream_rq_total"], stats["http.l.downstream_rq_2xx"],
                          stats["http.l.downstream_rq_4xx"], stats["http.l.downstream_rq_5xx"]),
                         (2, 1, 1, 0), stats)
        self.assertEqual(stats["cluster.c.upstream_rq_total"], 2)
        self.assertEqual(stats["listener.l.downstream_cx_total"], 1)
        prometheus = sidecar.admin_get("/stats/prometheus")[1]
        self.assertIn('mtls_sidecar_http_rq_latency_seconds_bucket{le="+Inf"} 2', prometheus)
        self.assertIn("mtls_sidecar_http_rq_latency_seconds_count 2", prometheus)
        self.assertIn('mtls_sidecar_cluster_upstream_rq_4xx{cluster="c"} 1', prometheus)
        self.assertIn('mtls_sidecar_http_downstream_rq_4xx{listener="l"} 1', prometheus)

    # ---- 9. rotation under keep-alive load -------------------------------------------

    def test_certificate_rotation_under_keep_alive_load(self):
        tls_dir = self.tmp.mkdir("tls")
        shutil.copy(self.pki.client.crt, os.path.join(tls_dir, "tls.crt"))
        shutil.copy(self.pki.client.key, os.path.join(tls_dir, "tls.key"))
        nginx = self.start_https(files={"hello.txt": HELLO, "after.txt": HELLO})
        tls = cluster_tls(self.pki, certificate=os.path.join(tls_dir, "tls.crt"),
                          private_key=os.path.join(tls_dir, "tls.key"))
        sidecar = self.start_http_sidecar([nginx.port], tls)
        old_serial = self.pki.serial(self.pki.client.crt)
        new_pair = self.pki.issue_client("rotated-http")
        new_serial = self.pki.serial(new_pair.crt)

        # Four client connections kept busy back to back across the swap.
        load = KeptConnections(sidecar.listener_port(), count=4, interval=0)
        self.addCleanup(load.close)
        load.wait_more(100)
        with open(new_pair.key, "rb") as f:
            harness.replace_file_atomically(os.path.join(tls_dir, "tls.key"), f.read())
        with open(new_pair.crt, "rb") as f:
            harness.replace_file_atomically(os.path.join(tls_dir, "tls.crt"), f.read())
        sidecar.wait_log(r"tls reloaded: cluster=c generation=\d+")

        def serials_by_connection():
            """{kept connection: the client serials nginx saw for its
            requests, in the order it made them}."""
            requests = {}
            for e in nginx.access_entries():
                match = KEPT_REQUEST.match(e["request"])
                if match:
                    requests.setdefault(int(match[1]), []).append(
                        (int(match[2]), normalize_serial(e["client_serial"])))
            return {k: [serial for _, serial in sorted(v)] for k, v in requests.items()}

        # Every kept connection comes to the new certificate, and 200 more
        # requests are made after that.
        harness.wait_until(lambda: all(new_serial in serials_by_connection().get(k, ())
                                       for k in range(4)) or load.failures,
                           what="every kept connection to present the new certificate")
        load.wait_more(200)
        load.stop()
        self.assertEqual(load.failures, [])
        self.assertEqual(stat(sidecar, "http_rq_5xx"), 0)

        # New client connections after the rotation.
        after = KeptConnections(sidecar.listener_port(), count=2, interval=0, path="/after.txt")
        self.addCleanup(after.close)
        after.wait_more(20)
        after.stop()
        self.assertEqual(after.failures, [])

        entries = nginx.wait_access_entries(load.requests + after.requests)
        self.assertEqual({e["status"] for e in entries}, {"200"})
        kept = [normalize_serial(e["client_serial"]) for e in entries
                if e["request"].startswith("GET /hello.txt?kept=")]
        fresh = [normalize_serial(e["client_serial"]) for e in entries
                 if e["request"].startswith("GET /after.txt?kept=")]
        self.assertEqual((len(kept), len(fresh)), (load.requests, after.requests))
        # The kept connections went from the old certificate to the new one
        # once and for all: once a worker has the new context, its pool hands
        # out no upstream connection built on the old one. So each kept
        # connection's requests are old ones, then new ones only, to the
        # last; and every later connection presents the new certificate.
        self.assertEqual(kept[0], old_serial)
        for k, serials in serials_by_connection().items():
            switch = serials.index(new_serial)
            self.assertEqual((set(serials[:switch]) - {old_serial}, set(serials[switch:])),
                             (set(), {new_serial}), f"kept connection {k}: {serials}")
        self.assertEqual(set(fresh), {new_serial})

if __name__ == "__main__":
    unittest.main()
