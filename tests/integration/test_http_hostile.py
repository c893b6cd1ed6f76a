"""HTTP mode under hostile peers: what an upstream or a client can do to
other requests by bending the protocol, and what it costs the worker.

* An upstream that sends a body after a head that ends its message (1xx,
  204, 304, the answer to a HEAD) gets none of it to the client, and the
  connection it used is closed, not pooled: the client's next request gets
  its own answer, from another upstream connection.
* A client reading a large response slowly, while other keep-alive clients
  keep the same worker busy, gets every byte.
* A request head of 30,000 tiny headers costs the worker work in proportion
  to its size, not to its square.
* A long host_header reaches the upstream whole, and the header after it
  intact.
* A request head that trickles in a byte at a time is answered 408 and
  closed at request_headers_timeout_ms, while the same worker serves others;
  an idle keep-alive connection is not held to that deadline."""

import json
import os
import socket
import threading
import time
import unittest

from tests.lib import harness
from tests.lib.harness import (SERVER_NAME, KeptConnections, cluster, cluster_tls, config,
                               http_listener, read_http_response, sha256)

MB = 1024 * 1024

# A complete response, smuggled as the body of one that must not have one.
INJECTED = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\ninjected\n"


def read_request_head(tls, buffered):
    """read_request_head reads one request head from `tls` after the bytes
    `buffered`; returns (head bytes, bytes after it), or (None, b"") when
    the peer closed first."""
    data = buffered
    while b"\r\n\r\n" not in data:
        more = tls.recv(1 << 16)
        if not more:
            return None, b""
        data += more
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


class ScriptedUpstream(harness.TlsServer):
    """ScriptedUpstream is a TLS upstream (client certificate required)
    that reads bodiless requests on keep-alive connections and answers each
    with answer(method, path) -> bytes, sent in one write. `served` lists
    (connection number, method, path, head bytes) per request."""

    def __init__(self, pki, answer):
        self.answer = answer
        self.served = []
        self._lock = threading.Lock()
        self._numbers = iter(range(1, 1 << 30))
        super().__init__(pki.server.crt, pki.server.key, pki.ca_crt, session=self._serve)

    def _serve(self, tls):
        with self._lock:
            number = next(self._numbers)
        buffered = b""
        while True:
            head, buffered = read_request_head(tls, buffered)
            if head is None:
                return
            method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            with self._lock:
                self.served.append((number, method, path, head))
            tls.sendall(self.answer(method, path))


def real_answer(method, path):
    body = f"real {method} {path}\n".encode()
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), b"" if method == "HEAD" else body)


def hostile_answer(method, path):
    """Answers that end at their head, each followed by INJECTED; anything
    else gets its real answer."""
    smuggled = b"Content-Length: %d\r\n\r\n%s" % (len(INJECTED), INJECTED)
    if path.startswith("/inject204"):
        return b"HTTP/1.1 204 No Content\r\n" + smuggled
    if path.startswith("/inject304"):
        return b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n" + smuggled
    if path.startswith("/inject100"):
        # An interim answer with a "body", then the real final answer.
        return b"HTTP/1.1 100 Continue\r\n" + smuggled + real_answer(method, path)
    if path.startswith("/inject-head") and method == "HEAD":
        return b"HTTP/1.1 200 OK\r\n" + smuggled
    return real_answer(method, path)


def cpu_ticks(pid):
    """cpu_ticks returns the user and system CPU time process `pid` used
    so far, in clock ticks (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class HttpHostileTest(harness.IntegrationTest):

    def http_sidecar(self, port, workers=2, http=None, **cluster_extra):
        """http_sidecar starts a sidecar with one HTTP listener `l` (its
        "http" object: `http`) for one cluster `c` of 127.0.0.1:port."""
        c = cluster("c", [f"127.0.0.1:{port}"], cluster_tls(self.pki), **cluster_extra)
        return self.start_sidecar(config([http_listener("l", "c", **(http or {}))], [c],
                                         workers=workers))

    def raw_client(self, sidecar, timeout=10):
        sock = self.connect(sidecar.listener_port(), timeout=timeout)
        reader = sock.makefile("rb")
        self.addCleanup(reader.close)
        return sock, reader

    # ---- (a) no body after a head that ends the message ----------------------------------

    def test_a_body_after_a_bodiless_head_never_reaches_the_client(self):
        upstream = ScriptedUpstream(self.pki, hostile_answer)
        self.addCleanup(upstream.close)
        sidecar = self.http_sidecar(upstream.port)
        cases = [("GET", "/inject204", 204), ("GET", "/inject304", 304),
                 ("HEAD", "/inject-head", 200), ("GET", "/inject100", None)]
        for method, path, status in cases:
            with self.subTest(method=method, path=path):
                sock, reader = self.raw_client(sidecar)
                sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
                got, headers, body = read_http_response(reader, head_request=method == "HEAD")
                if status is None:
                    # The interim answer passes; what follows its head is
                    # the upstream's final answer to this request.
                    self.assertEqual(got, 100)
                    got, headers, body = read_http_response(reader)
                else:
                    self.assertEqual((got, body), (status, b""))
                    self.assertNotIn("content-length", headers if status == 204 else {})
                # The next request on the same client connection gets its
                # own answer, never the injected one.
                sock.sendall(f"GET /next{path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
                got, _, body = read_http_response(reader)
                self.assertEqual((got, body), (200, f"real GET /next{path}\n".encode()))
                # ... from another upstream connection: the one that sent
                # bytes after the head was closed, not pooled.
                numbers = {p: n for n, _, p, _ in upstream.served}
                self.assertNotEqual(numbers[f"/next{path}"], numbers[path],
                                    "the upstream connection was reused")

    # ---- (b) a slow reader while the worker is busy ---------------------------------------

    def test_a_slow_reader_gets_the_whole_body_while_others_keep_the_worker_busy(self):
        big, medium = os.urandom(24 * MB), os.urandom(MB)
        nginx = self.start_https(files={"big.bin": big, "medium.bin": medium})
        c = cluster("c", [f"127.0.0.1:{nginx.port}"], cluster_tls(self.pki))
        sidecar = self.start_sidecar(config([http_listener("l", "c")], [c], workers=1))
        # The others read whole TLS read-aheads too, into the same scratch.
        kept = KeptConnections(sidecar.listener_port(), count=3, interval=0, path="/medium.bin",
                               expected=medium)
        self.addCleanup(kept.close)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", sidecar.listener_port()))
        sock.sendall(f"GET /big.bin HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
        reader = sock.makefile("rb", buffering=0)
        self.addCleanup(reader.close)
        head = b""
        while b"\r\n\r\n" not in head:
            byte = reader.read(1)
            self.assertTrue(byte, "the connection ended before the head")
            head += byte
        self.assertIn(b" 200 ", head.split(b"\r\n", 1)[0])
        # About 80 KB/s for the first SLOW_BYTES (the whole body when set to
        # 0), then as fast as it comes.
        slow = int(os.environ.get("SLOW_BYTES", str(6 * MB))) or len(big)
        got = bytearray()
        start = time.monotonic()
        while len(got) < len(big):
            chunk = sock.recv(min(8192, len(big) - len(got)))
            if not chunk:
                break
            got += chunk
            if len(got) < slow:
                ahead = len(got) / (80 * 1024) - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        self.assertEqual(len(got), len(big), f"the body ended after {len(got)} bytes")
        self.assertEqual(sha256(bytes(got)), sha256(big))
        kept.stop()
        self.assertEqual(kept.failures, [])
        self.assertGreater(kept.requests, 10)

    # ---- (c) many tiny headers cost linear work -------------------------------------------

    def test_many_tiny_headers_cost_work_in_proportion_to_their_bytes(self):
        upstream = ScriptedUpstream(self.pki, real_answer)
        self.addCleanup(upstream.close)
        sidecar = self.http_sidecar(upstream.port, workers=1)
        pid = sidecar.process.pid
        # Two heads of about the same size inside the default 64 KiB: 60
        # headers of 1,000 bytes, and 30,000 headers of one byte each.
        few = "".join(f"X-Pad-{i}: {'v' * 1000}\r\n" for i in range(60)).encode()
        many = b"a:\r\n" * 30000

        def send(sock, reader, headers, path):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n".encode() + headers +
                         b"\r\n")
            status, _, body = read_http_response(reader)
            self.assertEqual((status, body), (200, f"real GET {path}\n".encode()))

        sock, reader = self.raw_client(sidecar, timeout=60)
        other, other_reader = self.raw_client(sidecar, timeout=60)
        send(sock, reader, few, "/warm-up")
        rounds = 20
        before = cpu_ticks(pid)
        for i in range(rounds):
            send(sock, reader, few, f"/few-{i}")
            send(other, other_reader, b"", f"/small-few-{i}")
        baseline = max(cpu_ticks(pid) - before, 5)
        # The same number of rounds with the many-header head: the work must
        # stay within a generous multiple of the baseline's (per header, a
        # linear pass costs more than per byte, but not 30,000 times more).
        # A small request on another connection of the same worker is
        # answered after each.
        limit = 15 * baseline
        before = cpu_ticks(pid)
        for i in range(rounds):
            send(sock, reader, many, f"/many-{i}")
            send(other, other_reader, b"", f"/small-many-{i}")
            used = cpu_ticks(pid) - before
            self.assertLessEqual(used, limit,
                                 f"{i + 1} many-header heads took {used} ticks of CPU; "
                                 f"{rounds} small ones took {baseline}")
        heads = [head for _, _, path, head in upstream.served if path == "/many-0"]
        self.assertEqual(heads[0].count(b"\r\na:"), 30000)

    # ---- (h) a long host_header --------------------------------------------------------------

    def test_a_long_host_header_reaches_the_upstream_whole(self):
        upstream = self.start_https_server()
        host = "h" * 1990 + ".example"
        sidecar = self.http_sidecar(upstream.port, host_header=host)
        sock, reader = self.raw_client(sidecar)
        sock.sendall(b"GET /long-host HTTP/1.1\r\nHost: client.example\r\nX-After: kept\r\n\r\n")
        status, _, body = read_http_response(reader)
        self.assertEqual((status, body), (200, b"GET /long-host\n"))
        request = upstream.requests[-1]
        self.assertEqual([v for k, v in request["headers"] if k.lower() == "host"], [host])
        self.assertEqual([v for k, v in request["headers"] if k.lower() == "x-after"], ["kept"])
        self.assertEqual([v for k, v in request["headers"] if k.lower() == "x-forwarded-for"],
                         ["127.0.0.1"])

    # ---- (d) a request head that trickles in -------------------------------------------------

    def test_a_trickling_request_head_gets_408_and_a_close(self):
        upstream = ScriptedUpstream(self.pki, real_answer)
        self.addCleanup(upstream.close)
        log_path = os.path.join(self.tmp.mkdir("logs"), "access.jsonl")
        sidecar = self.http_sidecar(upstream.port, workers=1,
                                    http={"request_headers_timeout_ms": 1000,
                                          "access_log": log_path})
        # A byte every 200 ms: the whole head would take about 20 s.
        head = (f"GET /trickle HTTP/1.1\r\nHost: {SERVER_NAME}\r\nX-Slow: {'a' * 40}\r\n\r\n"
                .encode())
        trickle_seconds = len(head) * 0.2
        sock, reader = self.raw_client(sidecar, timeout=trickle_seconds)
        # A connection that sends nothing at all: its deadline runs from the accept.
        _, silent_reader = self.raw_client(sidecar, timeout=trickle_seconds)
        started = time.monotonic()
        trickle = harness.Trickle([sock], head, interval=0.2)
        self.addCleanup(trickle.stop)

        # Another client of the same worker is served meanwhile, and its
        # keep-alive connection, idle for longer than the head deadline, is
        # not held to it: the deadline starts with a head's first byte.
        other, other_reader = self.raw_client(sidecar)
        for i, path in enumerate(("/meanwhile", "/after-idle")):
            if i:
                time.sleep(1.5)
            other.sendall(f"GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\n\r\n".encode())
            status, _, body = read_http_response(other_reader)
            self.assertEqual((status, body), (200, f"real GET {path}\n".encode()))

        # Both get 408 and the connection's end, long before the trickled
        # head could have been whole.
        for name, connection in (("trickling", reader), ("silent", silent_reader)):
            status, headers, _ = read_http_response(connection)
            self.assertEqual((status, headers.get("connection")), (408, "close"), name)
            try:
                self.assertEqual(connection.read(1), b"", name)
            except ConnectionResetError:
                pass
        elapsed = time.monotonic() - started
        self.assertLess(elapsed, trickle_seconds,
                        f"408 after {elapsed:.1f} s; the head would be whole at {trickle_seconds} s")
        trickle.stop()
        self.assertEqual(sidecar.stat("downstream_rq_header_timeout"), 2)
        self.assertEqual(sidecar.stat("http.l.downstream_rq_header_timeout"), 2)
        dumped = sidecar.admin_json("/config_dump")["configs"][0]["config"]["listeners"][0]
        self.assertEqual(dumped["http"]["request_headers_timeout_ms"], 1000)
        self.assertNotIn("/trickle", [path for _, _, path, _ in upstream.served])
        # The access log has both: the trickled head with what came of its
        # target, the silent one without the method it never sent.
        entries = [json.loads(line) for line in harness.read_text(log_path).splitlines()]
        timed_out = {e["method"]: e["path"] for e in entries if e["status"] == 408}
        self.assertEqual(set(timed_out), {None, "GET"}, entries)
        self.assertIsNone(timed_out[None])
        self.assertTrue("/trickle".startswith(timed_out["GET"]), entries)


if __name__ == "__main__":
    unittest.main()
