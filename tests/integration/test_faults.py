"""The fault matrix (issue 10, section 4): each fault, against real peers on
loopback, shows that the connection at fault gets the documented outcome,
that another connection through the same sidecar and worker ("workers": 1)
keeps working during and after it, and that the sidecar's descriptors and
RSS come back to their baseline (read from /proc) afterwards.

HTTP faults come from FaultyHttpUpstream (tests/lib/faults.py), routed as
/fault/...; the healthy neighbour is nginx behind the same listener. Each
test prints its figures (descriptors, RSS, latencies) on one "figures:" line."""

import contextlib
import http.client
import itertools
import resource
import socket
import threading
import time
import unittest
import zlib

from tests.lib import harness
from tests.lib.faults import (MB, SANITIZED, Footprint, FaultyHttpUpstream, MallocProbe,
                              RssSampler, Slowloris, TlsPeer, pattern_chunk,
                              private_hosts_wrapper, reset, rewrite_in_place, stream_pattern_crc,
                              tcp_end, tcp_fin, wait_back_to)
from tests.lib.harness import (SERVER_NAME, KeptConnections, cluster, cluster_tls, config,
                               http_get, http_listener, listener)
from tests.lib.support import sidecar_bin

HELLO = b"hello from nginx\n"
# RSS may stay a little above its baseline after a fault (malloc keeps freed
# pages); a leak of one connection's buffers per fault would not fit.
RSS_TOLERANCE_KB = 2048


def figures(test, **values):
    print(f"\nfigures: {test.id().rsplit('.', 1)[-1]}: " +
          ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)


def read_to_close(sock, timeout=10):
    """read_to_close reads until the peer ends the connection; returns
    (bytes, "fin" or "reset"); raises socket.timeout when it stays open."""
    try:
        return harness.recv_until_eof(sock, timeout), "fin"
    except harness.ResetBeforeEof as reset:
        return reset.data, "reset"


def read_head(sock, timeout=10):
    """read_head reads a response head from `sock`; returns (status,
    {lower-case name: value}, the body bytes read after it)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(1 << 16)
        if not more:
            raise AssertionError(f"the connection ended inside a response head: {data!r}")
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, rest


def p99(latencies):
    ordered = sorted(latencies)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


class FaultTest(harness.IntegrationTest):

    # ---- set-ups ---------------------------------------------------------------

    def start_probed_sidecar(self, config_dict):
        """start_probed_sidecar starts a sidecar with the malloc probe
        preloaded; returns (sidecar, probe); no probe (None) when SANITIZED."""
        sidecar = self.make_sidecar(config_dict)
        if SANITIZED:
            return sidecar.start(), None
        probe = MallocProbe(self.tmp.path)
        sidecar.bin = probe.wrap(self.tmp.path, sidecar.bin)
        return sidecar.start(), probe

    def probed_baseline(self, sidecar, probe):
        """probed_baseline returns (Footprint after a trim, bytes allocated;
        None without a probe)."""
        in_use = probe.in_use_after_trim() if probe is not None else None
        return Footprint.settled(sidecar.process.pid), in_use

    def back_after_a_burst(self, probe, baseline, in_use_before, slack=256 * 1024, timeout=60):
        """back_after_a_burst checks the sidecar after a burst of connections
        ended: descriptors back to `baseline`; the bytes malloc has allocated
        back to `in_use_before` (+`slack`); and, once the free pages are
        trimmed, RSS back to the baseline (+RSS_TOLERANCE_KB). RSS before
        the trim stays near its peak (glibc keeps a worker arena's freed
        pages): it is reported, not asserted. Returns (footprint after the
        burst, bytes allocated, footprint after the trim)."""
        closed = wait_back_to(baseline, 1 << 30, timeout)
        if probe is None:
            return closed, None, closed
        in_use = probe.in_use_after_trim()
        self.assertLessEqual(in_use, in_use_before + slack,
                             f"malloc holds {in_use} bytes, {in_use_before} before the burst")
        return closed, in_use, wait_back_to(baseline, RSS_TOLERANCE_KB)

    def start_faulty(self, name="faulty", host="127.0.0.1", port=0):
        peer = FaultyHttpUpstream(self.pki.server.crt, self.pki.server.key, self.pki.ca_crt,
                                  name, host, port)
        self.addCleanup(peer.close)
        return peer

    def start_tls_peer(self, session):
        peer = TlsPeer(self.pki.server.crt, self.pki.server.key, self.pki.ca_crt, session)
        self.addCleanup(peer.close)
        return peer

    def start_http_pair(self, endpoints_before=(), faulty_extra=None, **http):
        """start_http_pair starts nginx (the healthy upstream) and a
        FaultyHttpUpstream, and a sidecar with one worker and one HTTP
        listener: /fault... goes to cluster "faulty" (`endpoints_before`,
        then the faulty upstream; no retries unless `faulty_extra` says),
        the rest to nginx. Returns (faulty, sidecar)."""
        nginx = self.start_https()
        faulty = self.start_faulty()
        healthy = cluster("healthy", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))
        extra = {"retries": {"max_retries": 0}}
        extra.update(faulty_extra or {})
        bad = cluster("faulty", list(endpoints_before) + [f"127.0.0.1:{faulty.port}"],
                      cluster_tls(self.pki), **extra)
        entry = http_listener("l", "healthy", routes=[{"path_prefix": "/fault",
                                                       "cluster": "faulty"}], **http)
        return faulty, self.start_sidecar(config([entry], [healthy, bad], workers=1))

    def faulty_connections_open(self, sidecar):
        """faulty_connections_open: the sidecar's connections to the faulty
        upstream, pooled ones included (/clusters cx_active)."""
        return sum(harness.host_stat(host, "cx_active") for host in sidecar.hosts("faulty"))

    @contextlib.contextmanager
    def http_neighbour(self, sidecar, rss_tolerance_kb=RSS_TOLERANCE_KB):
        """http_neighbour warms the sidecar up (one request to each
        upstream), reads its footprint, and keeps a keep-alive client busy
        on nginx (a GET every 50 ms) while the block runs; then that client
        must have had no failure, new requests to both upstreams must
        succeed, and descriptors and RSS must come back to the baseline.
        Yields the KeptConnections."""
        port = sidecar.listener_port()
        self.assertEqual(http_get(port, "/hello.txt"), (200, HELLO))
        self.assertEqual(http_get(port, "/fault/ok")[0], 200)
        baseline = Footprint.settled(sidecar.process.pid)
        kept = KeptConnections(port, count=1, interval=0.05)
        try:
            yield kept
            kept.wait_more(3)
        finally:
            kept.close()
        self.assertEqual(kept.failures, [])
        self.assertEqual(http_get(port, "/hello.txt"), (200, HELLO))
        self.assertEqual(http_get(port, "/fault/ok")[0], 200)
        try:
            after = wait_back_to(baseline, rss_tolerance_kb)
        except AssertionError as e:
            connections = {c: harness.host_stat(sidecar.hosts(c)[0], "cx_active")
                           for c in ("healthy", "faulty")}
            raise AssertionError(f"{e}; upstream connections open: {connections}, "
                                 f"client connections open: "
                                 f"{sidecar.stat('downstream_cx_active')}") from None
        figures(self, baseline=baseline, after=after, neighbour_requests=kept.requests)

    def raw_request(self, port, head):
        sock = self.connect(port)
        sock.sendall(head)
        return sock

    def partial_response(self, faulty, sidecar, kept, path):
        """partial_response asks `path` (a mid-body fault) and reads the
        head and the 64 KiB the upstream sends; meanwhile the neighbour gets
        answers; then releases the upstream's fault. Returns (socket, head
        headers, body bytes so far)."""
        sock = self.raw_request(sidecar.listener_port(),
                                f"GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
        status, headers, body = read_head(sock)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-length"], "1048576")
        while len(body) < 65536:
            more = sock.recv(1 << 16)
            self.assertTrue(more, f"EOF after {len(body)} of the 65536 bytes sent")
            body += more
        kept.wait_more(3)  # the worker serves others while this exchange hangs mid-body
        faulty.release.set()
        return sock, headers, body

    # ---- HTTP: the upstream fails in the middle of a response ----------------------------

    def assert_cut_off(self, path, what):
        """assert_cut_off: the upstream at `path` fails after 64 KiB of its
        body; the client gets those bytes and then the end of its connection
        (not a hang, never a complete-looking response), and the sidecar
        keeps no connection to that upstream (`what` it waits for)."""
        faulty, sidecar = self.start_http_pair()
        with self.http_neighbour(sidecar) as kept:
            sock, _, body = self.partial_response(faulty, sidecar, kept, path)
            rest, how = read_to_close(sock)
            self.assertEqual(body + rest, b"p" * 65536)
            self.assertIn(how, ("fin", "reset"))
            harness.wait_until(lambda: self.faulty_connections_open(sidecar) == 0, what=what)
        figures(self, client_saw=how)

    def test_http_upstream_reset_mid_response_cuts_the_client_off(self):
        self.assert_cut_off("/fault/rst", "no connection to the upstream that reset")

    def test_http_upstream_fin_mid_body_is_not_pooled(self):
        self.assert_cut_off("/fault/fin", "the cut upstream connection closed, not pooled")

    def test_http_upstream_stalling_after_the_head_is_closed_at_request_timeout(self):
        faulty, sidecar = self.start_http_pair(request_timeout_ms=1000)
        with self.http_neighbour(sidecar) as kept:
            # Lower bounds on time are measured from before the request: the
            # test's own delays can only lengthen them.
            started = time.monotonic()
            sock = self.raw_request(sidecar.listener_port(),
                                    f"GET /fault/stall HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n"
                                    .encode())
            status, headers, body = read_head(sock)
            # The head was passed on, so a 504 can no longer be sent: the
            # documented outcome is the connection closed.
            self.assertEqual((status, headers["content-length"], body), (200, "1000", b""))
            kept.wait_more(5)
            rest, how = read_to_close(sock, timeout=10)
            elapsed = time.monotonic() - started
            self.assertEqual(rest, b"")
            self.assertIn(how, ("fin", "reset"))
            self.assertGreaterEqual(elapsed, 0.9)
            # The upstream side is closed too.
            harness.wait_until(lambda: faulty.connections[-1]["end"] in ("eof", "reset"),
                               what="the sidecar closed the stalled upstream connection")
            harness.wait_until(lambda: self.faulty_connections_open(sidecar) == 0,
                               what="no connection to the stalled upstream")
        figures(self, client_saw=how, closed_after_s=f"{elapsed:.2f}")

    def test_http_upstream_silent_before_the_head_gets_504(self):
        faulty, sidecar = self.start_http_pair(request_timeout_ms=1000)
        with self.http_neighbour(sidecar) as kept:
            started = time.monotonic()
            sock = self.raw_request(sidecar.listener_port(),
                                    f"GET /fault/silent HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n"
                                    .encode())
            kept.wait_more(5)
            status, headers, body = read_head(sock)
            elapsed = time.monotonic() - started
            self.assertEqual(status, 504)
            self.assertGreaterEqual(elapsed, 0.9)
            harness.wait_until(lambda: faulty.connections[-1]["end"] in ("eof", "reset"),
                               what="the sidecar closed the silent upstream connection")
            sock.close()
        figures(self, answered_after_s=f"{elapsed:.2f}")

    def test_http_stalled_handshake_moves_on_or_answers_502(self):
        silent = self.start_tcp_server(harness.silent_handler)
        # The stalling endpoint is picked first; a GET may go to the next
        # one, a POST is never sent twice: 502 with the failure line.
        faulty, sidecar = self.start_http_pair(
            endpoints_before=[{"address": f"127.0.0.1:{silent.port}", "weight": 1000}],
            faulty_extra={"handshake_timeout_ms": 700, "retries": {"max_retries": 1},
                          "outlier_detection": {"consecutive_failures": 0}})
        with self.http_neighbour(sidecar) as kept:
            started = time.monotonic()
            self.assertEqual(http_get(sidecar.listener_port(), "/fault/ok?moved"),
                             (200, b"ok faulty /fault/ok?moved\n"))
            moved_after = time.monotonic() - started
            self.assertGreaterEqual(moved_after, 0.6)
            kept.wait_more(3)
            sock = self.raw_request(sidecar.listener_port(),
                                    f"POST /fault/ok HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                                    f"Content-Length: 2\r\n\r\nhi".encode())
            status, _, body = read_head(sock)
            self.assertEqual(status, 502)
            sock.close()
            sidecar.wait_log(rf"handshake failed: cluster=faulty endpoint=127\.0\.0\.1:"
                             rf"{silent.port} .*reason=timeout")
        figures(self, next_endpoint_after_s=f"{moved_after:.2f}")

    def check_garbage(self, path, check_closed=True):
        """check_garbage asks `path` (an "ok" answer with a second response
        glued after it, or sent once the client has the answer: /fault/
        garbage-later) on a keep-alive client connection, and then
        /fault/ok?next on it."""
        faulty, sidecar = self.start_http_pair()
        with self.http_neighbour(sidecar):
            conn = http.client.HTTPConnection("127.0.0.1", sidecar.listener_port(), timeout=10)
            self.addCleanup(conn.close)
            conn.connect()
            conn.auto_open = 0
            conn.request("GET", path, headers={"Host": SERVER_NAME})
            response = conn.getresponse()
            self.assertEqual((response.status, response.read()), (200, b"ok\n"))
            dirty = faulty.connections[-1]
            self.assertEqual(dirty["paths"][-1], path)
            if path.endswith("-later"):
                # The garbage comes now, on the connection the pool holds
                # idle; the next request is sent once the sidecar has read it
                # and closed that connection (check_closed would fail on a
                # request sent before).
                faulty.release.set()
                harness.wait_until(lambda: dirty["end"] in ("eof", "reset"),
                                   what="the sidecar to close the pooled connection on garbage")
            # The next request on the same client connection gets its own
            # answer, never the bytes glued after the last one.
            try:
                conn.request("GET", "/fault/ok?next", headers={"Host": SERVER_NAME})
                response = conn.getresponse()
                status, body = response.status, response.read()
            except (OSError, http.client.HTTPException) as e:
                status, body = None, repr(e).encode()
            self.assertNotIn(b"injected", body)
            self.assertEqual((status, body), (200, b"ok faulty /fault/ok?next\n"))
            if check_closed:
                # The upstream connection that sent them is closed (its
                # framing is in doubt), not reused.
                self.assertNotIn("/fault/ok?next", dirty["paths"])
                harness.wait_until(lambda: dirty["end"] in ("eof", "reset"),
                                   what="the sidecar closed the upstream that sent garbage")
            conn.close()

    def test_http_garbage_glued_to_a_response_never_reaches_the_next_request(self):
        self.check_garbage("/fault/garbage", check_closed=False)

    # Bytes glued to a complete response in the same read put the connection's
    # framing in doubt: it is closed, not pooled (issue 10, 1a).
    def test_http_upstream_that_glued_garbage_to_a_response_is_closed(self):
        self.check_garbage("/fault/garbage")

    def test_http_garbage_after_a_response_on_a_pooled_connection_is_dropped(self):
        self.check_garbage("/fault/garbage-later")

    def test_http_client_reset_mid_upload_closes_the_upstream_side(self):
        faulty, sidecar = self.start_http_pair()
        with self.http_neighbour(sidecar) as kept:
            size = 100 * MB
            sock = self.raw_request(sidecar.listener_port(),
                                    f"POST /fault/upload HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                                    f"Content-Length: {size}\r\n\r\n".encode())
            for index in range(4):
                sock.sendall(pattern_chunk(index))
            harness.wait_until(lambda: self.faulty_connections_open(sidecar) >= 1,
                               what="the upload under way")
            kept.wait_more(3)
            reset(sock)
            upload = faulty.connections[-1]
            harness.wait_until(lambda: upload["end"] in ("eof", "reset"),
                               what="the upstream side of the cut upload closed")
            harness.wait_until(lambda: self.faulty_connections_open(sidecar) == 0,
                               what="no connection left to the upload's upstream")
            self.assertEqual(upload["paths"][-1], "/fault/upload")
            self.assertLess(faulty.uploads[-1][0], size)
        figures(self, upstream_saw=upload["end"], upload_bytes_seen=faulty.uploads[-1])

    # ---- L4 ---------------------------------------------------------------------------

    def start_l4_pair(self, faulty_endpoints, **faulty_cluster):
        """start_l4_pair starts a TLS echo server and a sidecar with one
        worker and two TCP listeners: "faulty" (listener 0) to
        `faulty_endpoints` and "echo" (listener 1) to the echo server."""
        echo = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                     client_ca=self.pki.ca_crt)
        bad = cluster("faulty", faulty_endpoints, cluster_tls(self.pki), **faulty_cluster)
        good = cluster("echo", [f"127.0.0.1:{echo.port}"], cluster_tls(self.pki))
        return self.start_sidecar(config([listener("faulty", "faulty"), listener("echo", "echo")],
                                         [bad, good], workers=1))

    @contextlib.contextmanager
    def l4_neighbour(self, sidecar, rss_tolerance_kb=RSS_TOLERANCE_KB):
        """l4_neighbour reads the sidecar's footprint, opens an echo
        connection through listener 1 and yields ping(), a round trip on
        it; after the block: a last ping, a new connection's round trip,
        and descriptors and RSS back to the baseline."""
        port = sidecar.listener_port(1)
        probe = self.connect(port)
        self.assertEqual(harness.echo_round_trip(probe, b"warm")[0], b"warm")
        probe.close()
        harness.wait_until(lambda: sidecar.stat("downstream_cx_active") == 0,
                           what="the warm-up connection closed")
        baseline = Footprint.settled(sidecar.process.pid)
        sock = self.connect(port)
        count = [0]

        def ping():
            count[0] += 1
            message = f"ping {count[0]}".encode()
            sock.sendall(message)
            self.assertEqual(harness.recv_exactly(sock, len(message)), message)

        ping()
        yield ping
        ping()
        sock.close()
        fresh = self.connect(port)
        self.assertEqual(harness.echo_round_trip(fresh, b"after")[0], b"after")
        fresh.close()
        after = wait_back_to(baseline, rss_tolerance_kb)
        figures(self, baseline=baseline, after=after, pings=count[0])

    def upstream_ends_mid_stream(self, end):
        """upstream_ends_mid_stream: the upstream sends 64 KiB, the client
        reads them, then the upstream ends its connection by end(tls) and
        keeps the socket open until the sidecar closes it. Returns how the
        client's connection ended ("fin" or "reset") and by how much
        upstream_cx_destroy_remote moved."""
        release = threading.Event()

        def session(_peer, tls, _record):
            tls.sendall(b"s" * 65536)
            release.wait(30)
            end(tls)

        peer = self.start_tls_peer(session)
        sidecar = self.start_l4_pair([f"127.0.0.1:{peer.port}"])
        with self.l4_neighbour(sidecar) as ping:
            sock = self.connect(sidecar.listener_port(0))
            self.assertEqual(harness.recv_exactly(sock, 65536), b"s" * 65536)
            ping()
            destroyed = sidecar.stat("upstream_cx_destroy_remote")
            release.set()
            rest, how = read_to_close(sock)
            destroyed = sidecar.stat("upstream_cx_destroy_remote") - destroyed
            self.assertEqual(rest, b"")
            sock.close()
            ping()
        figures(self, client_saw=how)
        return how, destroyed

    # An abort travels as an abort: the upstream's reset becomes the
    # client's (SO_LINGER 0), never a FIN that looks like a complete stream.
    def test_l4_upstream_reset_mid_stream_resets_the_client(self):
        self.assertEqual(self.upstream_ends_mid_stream(reset), ("reset", 1))

    # A TLS stream that breaks (here a record that does not open) is an abort too.
    def test_l4_upstream_tls_failure_mid_stream_resets_the_client(self):
        def bad_record(tls):
            # Application data whose authentication tag cannot be right.
            socket.socket.sendall(tls, b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
            socket.socket.settimeout(tls, 30)
            socket.socket.recv(tls, 1)  # until the sidecar closes

        self.assertEqual(self.upstream_ends_mid_stream(bad_record), ("reset", 1))

    # A FIN without close_notify is a truncation that nginx and Envoy take
    # as a close, and so does the sidecar: the client gets a FIN.
    def test_l4_upstream_fin_without_close_notify_is_a_close(self):
        def fin(tls):
            tcp_fin(tls)
            socket.socket.settimeout(tls, 30)
            socket.socket.recv(tls, 1)  # until the sidecar closes

        self.assertEqual(self.upstream_ends_mid_stream(fin), ("fin", 1))

    def test_l4_client_reset_mid_upload_resets_the_upstream(self):
        received = [0]

        def session(_peer, tls, record):
            while received[0] < 65536:
                data = tls.recv(1 << 16)
                if not data:
                    return
                received[0] += len(data)
            how = tcp_end(tls, timeout=30)
            record["end"] = "eof" if how == "fin" else how

        peer = self.start_tls_peer(session)
        sidecar = self.start_l4_pair([f"127.0.0.1:{peer.port}"])
        with self.l4_neighbour(sidecar) as ping:
            sock = self.connect(sidecar.listener_port(0))
            sock.sendall(b"u" * 65536)
            harness.wait_until(lambda: received[0] == 65536, what="the upload at the upstream")
            ping()
            reset(sock)
            harness.wait_until(lambda: peer.ended(1), what="the upstream connection's end")
            self.assertEqual(peer.ended(1), "reset")
            self.assertEqual(sidecar.stat("downstream_cx_reset"), 1)
            ping()
        figures(self, upstream_saw=peer.ended(1))

    def test_l4_client_half_close_still_gets_the_answer(self):
        def session(_peer, tls, record):
            got = 0
            while True:
                data = tls.recv(1 << 16)
                if not data:
                    break
                got += len(data)
            record["end"] = "eof"
            tls.sendall(f"{got} bytes\n".encode())
            tls.unwrap()

        peer = self.start_tls_peer(session)
        sidecar = self.start_l4_pair([f"127.0.0.1:{peer.port}"])
        with self.l4_neighbour(sidecar) as ping:
            sock = self.connect(sidecar.listener_port(0))
            sock.sendall(b"x" * 100000)
            sock.shutdown(socket.SHUT_WR)
            ping()
            # The answer written after our FIN, then a clean FIN.
            answer, how = read_to_close(sock)
            self.assertEqual((answer, how), (b"100000 bytes\n", "fin"))

    def test_l4_upstream_half_close_lets_the_client_keep_sending(self):
        # nginx stream (proxy_half_close on) passes the backend's FIN on as a
        # FIN; the client must see the banner and EOF, and what it sends
        # after that must still reach the backend.
        received = []

        def backend(conn):
            conn.sendall(b"banner\n")
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            got = 0
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                got += len(data)
            received.append(got)

        server = self.start_tcp_server(backend)
        nginx = self.start_stream(server.port, half_close=True)
        sidecar = self.start_l4_pair([f"127.0.0.1:{nginx.port}"])
        with self.l4_neighbour(sidecar) as ping:
            sock = self.connect(sidecar.listener_port(0))
            banner, how = read_to_close(sock)
            self.assertEqual((banner, how), (b"banner\n", "fin"))
            ping()
            sock.sendall(b"y" * 200000)
            sock.shutdown(socket.SHUT_WR)
            harness.wait_until(lambda: received, what="the backend saw the client's FIN")
            self.assertEqual(received, [200000])

    def test_l4_stalled_handshake_moves_on_or_closes(self):
        silent = self.start_tcp_server(harness.silent_handler)
        echo = self.start_tls_server(cert=self.pki.server.crt, key=self.pki.server.key,
                                     client_ca=self.pki.ca_crt)
        # listener 0: the stalling endpoint first, then a working one.
        sidecar = self.start_l4_pair(
            [{"address": f"127.0.0.1:{silent.port}", "weight": 1000},
             {"address": f"127.0.0.1:{echo.port}", "weight": 1}],
            handshake_timeout_ms=700, max_connect_attempts=2)
        with self.l4_neighbour(sidecar) as ping:
            started = time.monotonic()  # the handshake begins at the accept
            sock = self.connect(sidecar.listener_port(0))
            sock.sendall(b"moved on")
            ping()  # not held up by the stalled handshake
            self.assertEqual(harness.recv_exactly(sock, 8), b"moved on")
            moved_after = time.monotonic() - started
            self.assertGreaterEqual(moved_after, 0.6)
            sidecar.wait_log(rf"handshake failed: cluster=faulty endpoint=127\.0\.0\.1:"
                             rf"{silent.port} .*reason=timeout")
            sock.close()
        figures(self, next_endpoint_after_s=f"{moved_after:.2f}")

    def test_l4_stalled_handshake_with_no_other_endpoint_closes_the_client(self):
        silent = self.start_tcp_server(harness.silent_handler)
        sidecar = self.start_l4_pair([f"127.0.0.1:{silent.port}"], handshake_timeout_ms=700,
                                     max_connect_attempts=1)
        with self.l4_neighbour(sidecar) as ping:
            started = time.monotonic()  # the handshake begins at the accept
            sock = self.connect(sidecar.listener_port(0))
            ping()
            data, how = read_to_close(sock)
            elapsed = time.monotonic() - started
            self.assertEqual(data, b"")
            self.assertGreaterEqual(elapsed, 0.6)
        figures(self, client_saw=how, closed_after_s=f"{elapsed:.2f}")

    # ---- DNS ----------------------------------------------------------------------------

    def test_dns_answer_that_changes_moves_new_connections_and_requests(self):
        hosts = self.tmp.join("hosts")
        harness.write_file(hosts, "127.0.0.1 localhost\n127.0.0.1 upstream.fault.test\n")
        wrapper = private_hosts_wrapper(self.tmp.path, hosts, sidecar_bin())
        if wrapper is None:
            self.skipTest("no mount namespace here (unshare --mount needs root): cannot change "
                          "what a name resolves to for the sidecar alone")
        a = self.start_faulty("a", "127.0.0.1")
        b = self.start_faulty("b", "127.0.0.2", a.port)
        endpoint = [f"upstream.fault.test:{a.port}"]
        sidecar = self.make_sidecar(config(
            [http_listener("http", "c"), listener("l4", "c4")],
            [cluster("c", endpoint, cluster_tls(self.pki), dns_refresh_ms=200),
             cluster("c4", endpoint, cluster_tls(self.pki), dns_refresh_ms=200)], workers=1))
        sidecar.bin = wrapper
        sidecar.start()
        http_port, l4_port = sidecar.listener_port(0), sidecar.listener_port(1)

        def l4_name():
            sock = socket.create_connection(("127.0.0.1", l4_port), timeout=10)
            with sock:
                sock.sendall(f"GET /ok HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
                return read_head(sock)[2].split(b" ")[1]

        # A keep-alive client whose requests go on pooled connections.
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        self.addCleanup(conn.close)

        def http_name():
            conn.request("GET", "/ok", headers={"Host": SERVER_NAME})
            return conn.getresponse().read().split(b" ")[1]

        self.assertEqual((http_name(), l4_name()), (b"a", b"a"))
        baseline = Footprint.settled(sidecar.process.pid)
        rewrite_in_place(hosts, "127.0.0.1 localhost\n127.0.0.2 upstream.fault.test\n")
        harness.wait_until(lambda: l4_name() == b"b", timeout=5,
                           what="new L4 connections going to the new address")
        # The pooled connection to the old address must not carry new
        # requests once the name no longer resolves to it.
        harness.wait_until(lambda: http_name() == b"b", timeout=5,
                           what="HTTP requests going to the new address")
        self.assertEqual((http_name(), l4_name()), (b"b", b"b"))
        after = wait_back_to(baseline, RSS_TOLERANCE_KB)
        figures(self, baseline=baseline, after=after)

    # ---- load: 10,000 connections, slowloris, 1 GB each way ---------------------------------

    def test_ten_thousand_l4_connections_held(self):
        # Each relayed connection costs the sidecar two descriptors. The
        # limit is raised as far as this machine allows (children inherit
        # it); without CAP_SYS_RESOURCE the hard limit caps it, and a hard
        # limit of 20,000 (this container's) leaves room for 9,900.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * 10000 + 200
        if hard < want:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
                hard = want
            except (ValueError, OSError):
                pass
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        count = min(10000, (hard - 200) // 2 // 100 * 100)
        if count < 5000:
            self.skipTest(f"RLIMIT_NOFILE's hard limit {hard} leaves room for {count} connections")
        want = hard

        nginx = harness.Nginx.https(self.tmp.mkdir("nginx"), self.pki.server,
                                    client_ca=self.pki.ca_crt)
        nginx.conf = (nginx.conf
                      .replace("worker_processes 1;",
                               f"worker_processes 1;\nworker_rlimit_nofile {want};")
                      .replace("worker_connections 1024;",
                               f"worker_connections {count + 2000};")
                      .replace("keepalive_timeout 60s;",
                               "keepalive_timeout 60s;\n    client_header_timeout 300s;"))
        self.start_nginx(nginx, {"hello.txt": HELLO})
        sidecar, probe = self.start_probed_sidecar(config(
            [listener("l", "c")],
            [cluster("c", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki),
                     connect_timeout_ms=30000, handshake_timeout_ms=30000)], workers=1))
        port = sidecar.listener_port()
        pid = sidecar.process.pid

        def get_hello(sock):
            sock.sendall(f"GET /hello.txt HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                         f"Connection: close\r\n\r\n".encode())
            return harness.recv_until_eof(sock, timeout=30)

        with socket.create_connection(("127.0.0.1", port), timeout=10) as warm:
            self.assertIn(HELLO, get_hello(warm))
        harness.wait_until(lambda: sidecar.stat("downstream_cx_active") == 0,
                           what="the warm-up connection closed")
        baseline, in_use_before = self.probed_baseline(sidecar, probe)

        socks = []

        def close_all():
            for s in socks:
                try:
                    reset(s)  # no TIME_WAIT left on the machine's ports
                except OSError:
                    pass
            socks.clear()

        self.addCleanup(close_all)

        def hold():
            """Opens `count` connections in batches, checks them, closes
            them; returns (held footprint, seconds to open, seconds for a
            new connection's request while they are held)."""
            handshakes_before = sidecar.stat("ssl_handshake")
            started = time.monotonic()
            for batch in range(0, count, 500):
                for _ in range(min(500, count - batch)):
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=30))
                # Bounded load: each batch is relayed before the next comes.
                harness.wait_until(
                    lambda: sidecar.stat("ssl_handshake") - handshakes_before >= len(socks),
                    timeout=60, interval=0.2, what=f"{len(socks)} upstream handshakes")
            opened_in = time.monotonic() - started
            self.assertEqual(sidecar.stat("downstream_cx_active"), count)
            held = Footprint(pid)
            self.assertGreaterEqual(held.fds, 2 * count)
            # Held connections work end to end, and so does a new one.
            for sock in socks[::1000]:
                self.assertIn(HELLO, get_hello(sock))
            began = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as fresh:
                self.assertIn(HELLO, get_hello(fresh))
            fresh_s = time.monotonic() - began
            self.assertEqual(sidecar.admin_get("/ready")[0], 200)
            close_all()
            harness.wait_until(lambda: sidecar.stat("downstream_cx_active") == 0, timeout=60,
                               what="every client connection closed")
            return held, opened_in, fresh_s

        # The first burst may grow what is sized by the peak of connections
        # for good (measured: +104 KB at 800 connections, then stable over
        # four more bursts; +328 KB at 9,900): 64 bytes a connection allowed.
        # A second burst must then leave nothing (256 KiB of slack).
        held, opened_in, fresh_s = hold()
        closed, in_use_first, trimmed = self.back_after_a_burst(
            probe, baseline, in_use_before, slack=256 * 1024 + 64 * count)
        held2, _, _ = hold()
        closed2, in_use, trimmed2 = self.back_after_a_burst(probe, baseline, in_use_first)
        per_connection = (held.rss_kb - baseline.rss_kb) / count
        figures(self, connections=count, rlimit_nofile=hard, baseline=baseline, held=held,
                after_close=closed, after_malloc_trim=trimmed, held_again=held2,
                after_close_again=closed2, after_malloc_trim_again=trimmed2,
                malloc_in_use_before=in_use_before, malloc_in_use_after_first=in_use_first,
                malloc_in_use_after_second=in_use,
                rss_per_connection_kb=f"{per_connection:.1f}", opened_in_s=f"{opened_in:.1f}",
                new_connection_while_held_s=f"{fresh_s:.3f}")

    def time_requests(self, port, count, seconds=0):
        """time_requests makes `count` GETs one after the other on one
        keep-alive connection (more until `seconds` have passed) and returns
        each one's latency in seconds."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.connect()
        conn.auto_open = 0
        latencies = []
        deadline = time.monotonic() + seconds
        try:
            for i in itertools.count():
                if i >= count and time.monotonic() >= deadline:
                    break
                began = time.perf_counter()
                conn.request("GET", f"/hello.txt?n={i}", headers={"Host": SERVER_NAME})
                response = conn.getresponse()
                body = response.read()
                latencies.append(time.perf_counter() - began)
                self.assertEqual((response.status, body), (200, HELLO))
        finally:
            conn.close()
        return latencies

    def test_slowloris_does_not_slow_normal_traffic(self):
        nginx = self.start_https()
        # The slowloris heads are held for the whole measure: no deadline
        # (request_headers_timeout_ms would answer them 408 after 10 s).
        sidecar, probe = self.start_probed_sidecar(config(
            [http_listener("l", "c", request_headers_timeout_ms=0)],
            [cluster("c", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))], workers=1))
        port, pid = sidecar.listener_port(), sidecar.process.pid
        self.time_requests(port, 50)  # warm: the pool and the session cache
        harness.wait_until(lambda: sidecar.stat("downstream_cx_active") == 0,
                           what="the warm-up connection closed")
        baseline, in_use_before = self.probed_baseline(sidecar, probe)
        samples = 1000
        idle_before = p99(self.time_requests(port, samples, 3))

        slow = Slowloris(port, 1000, 60, self.tmp.join("slowloris.log"))
        self.addCleanup(slow.close)
        harness.wait_until(slow.connected, timeout=30, what="1000 slowloris connections")
        harness.wait_until(lambda: sidecar.stat("downstream_cx_active") >= 1000,
                           what="the sidecar holding the slowloris connections")
        harness.wait_until(lambda: slow.rounds() >= 3, what="two seconds of trickle")
        # Up to three rounds under the trickle, the best one counting: a
        # shared machine's noise spoils a round now and then, while a worker
        # that the slowloris connections really slow down (a scan per byte,
        # a stall) spoils every round.
        rounds = []
        while len(rounds) < 3 and (not rounds or min(rounds) > 2 * idle_before):
            rounds.append(p99(self.time_requests(port, samples, 3)))
        under = min(rounds)
        held = Footprint(pid)
        # The slowloris connections are still held, unanswered.
        self.assertGreaterEqual(sidecar.stat("downstream_cx_active"), 1000)
        self.assertGreaterEqual(held.fds, baseline.fds + 1000)
        slow.close()
        harness.wait_until(lambda: sidecar.stat("downstream_cx_active") == 0,
                           what="the slowloris connections closed")
        idle_after = p99(self.time_requests(port, samples, 3))
        closed, in_use, trimmed = self.back_after_a_burst(probe, baseline, in_use_before)
        idle = max(idle_before, idle_after)
        figures(self, p99_idle_before_ms=f"{idle_before * 1000:.2f}",
                p99_slowloris_ms=f"{under * 1000:.2f}",
                p99_slowloris_rounds_ms=" ".join(f"{r * 1000:.2f}" for r in rounds),
                p99_idle_after_ms=f"{idle_after * 1000:.2f}", baseline=baseline, held=held,
                after_close=closed, malloc_in_use_before=in_use_before,
                malloc_in_use_after=in_use, after_malloc_trim=trimmed)
        self.assertLessEqual(under, 2 * idle,
                             f"p99 under slowloris {under * 1000:.2f} ms, idle "
                             f"{idle_before * 1000:.2f} / {idle_after * 1000:.2f} ms")

    def test_one_gigabyte_each_way_in_constant_memory(self):
        size = 1024 * MB
        faulty, sidecar = self.start_http_pair()
        port, pid = sidecar.listener_port(), sidecar.process.pid
        bound_kb = 32 * 1024
        with self.http_neighbour(sidecar, rss_tolerance_kb=4096):
            baseline_kb = Footprint(pid).rss_kb

            # Up: the body streams from pattern chunks, never held whole.
            sampler = RssSampler(pid)
            began = time.monotonic()
            sock = self.raw_request(port, f"POST /fault/upload HTTP/1.1\r\nHost: {SERVER_NAME}\r\n"
                                          f"Content-Length: {size}\r\n\r\n".encode())
            sock.settimeout(120)
            for index in range(size // MB):
                sock.sendall(pattern_chunk(index))
            status, headers, body = read_head(sock, timeout=120)
            while len(body) < int(headers["content-length"]):
                body += sock.recv(1 << 16)
            up_s = time.monotonic() - began
            up_peak_kb = sampler.stop()
            self.assertEqual(status, 200)
            self.assertEqual(body.decode(), f"{size} {stream_pattern_crc(size):08x}\n")
            sock.close()

            # Down.
            sampler = RssSampler(pid)
            began = time.monotonic()
            sock = self.raw_request(port, f"GET /fault/download?{size} HTTP/1.1\r\n"
                                          f"Host: {SERVER_NAME}\r\n\r\n".encode())
            status, headers, first = read_head(sock, timeout=120)
            self.assertEqual((status, int(headers["content-length"])), (200, size))
            crc, got = zlib.crc32(first), len(first)
            buffer = bytearray(MB)
            view = memoryview(buffer)
            sock.settimeout(120)
            while got < size:
                n = sock.recv_into(view, min(MB, size - got))
                self.assertNotEqual(n, 0, f"EOF after {got} bytes")
                crc = zlib.crc32(view[:n], crc)
                got += n
            down_s = time.monotonic() - began
            down_peak_kb = sampler.stop()
            self.assertEqual(crc, stream_pattern_crc(size))
            sock.close()
        figures(self, rss_baseline_mb=f"{baseline_kb / 1024:.1f}",
                rss_peak_upload_mb=f"{up_peak_kb / 1024:.1f}",
                rss_peak_download_mb=f"{down_peak_kb / 1024:.1f}",
                upload_mb_s=f"{size / MB / up_s:.0f}", download_mb_s=f"{size / MB / down_s:.0f}")
        if not SANITIZED:  # ASan's quarantine holds up to 256 MB of freed memory
            self.assertLess(up_peak_kb, baseline_kb + bound_kb)
            self.assertLess(down_peak_kb, baseline_kb + bound_kb)


if __name__ == "__main__":
    unittest.main()
