"""faults.py: peers and measuring tools for the fault matrix
(tests/integration/test_faults.py): an mTLS HTTP/1.1 upstream whose request
path picks how it misbehaves, a TLS peer on any loopback address, the
sidecar's descriptors and RSS, a sampler of its RSS, a slowloris run in its
own process, a probe of the sidecar's malloc (memory allocated, not pages
kept), and a sidecar whose /etc/hosts is private to it (a mount namespace),
so that a test can change what a host name resolves to without touching the
machine's."""

import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib

from tests.lib.peers import TcpServer
from tests.lib.support import (DEFAULT_TIMEOUT, Process, closed_how, find_binary, wait_until,
                               write_file)

MB = 1024 * 1024


# ---- the sidecar's footprint ------------------------------------------------------


def descriptors(pid):
    """descriptors returns how many descriptors process `pid` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid):
    """rss_kb returns VmRSS of process `pid` in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.MULTILINE).group(1))


class Footprint:
    """Footprint is a process's descriptors and RSS at one moment."""

    def __init__(self, pid):
        self.pid = pid
        self.fds = descriptors(pid)
        self.rss_kb = rss_kb(pid)

    @classmethod
    def settled(cls, pid, samples=5, interval=0.05):
        """settled returns the Footprint with the fewest descriptors of a few
        read `interval` apart: a baseline must not count the socket of an
        admin request the test just made, which the sidecar closes a moment
        later."""
        best = cls(pid)
        for _ in range(samples - 1):
            time.sleep(interval)
            now = cls(pid)
            if now.fds < best.fds:
                best = now
        return best

    def __repr__(self):
        return f"{self.fds} descriptors, RSS {self.rss_kb / 1024:.1f} MB"


# Under AddressSanitizer (tools/test.sh's second run sets ASAN_OPTIONS) freed
# memory waits in ASan's quarantine (256 MB) and RSS says nothing about the
# sidecar: memory figures are checked in the normal run, descriptors in both;
# and the malloc probe cannot be preloaded ahead of ASan's runtime.
SANITIZED = bool(os.environ.get("ASAN_OPTIONS"))


def wait_back_to(baseline, rss_tolerance_kb, timeout=DEFAULT_TIMEOUT):
    """wait_back_to waits until the process of `baseline` (a Footprint) has
    no more descriptors than then and an RSS within `rss_tolerance_kb` of
    then (descriptors only when SANITIZED); returns the Footprint reached,
    raises AssertionError naming both when it does not come back within
    `timeout`."""
    last = [None]

    def back():
        now = last[0] = Footprint(baseline.pid)
        rss_ok = SANITIZED or now.rss_kb <= baseline.rss_kb + rss_tolerance_kb
        return now.fds <= baseline.fds and rss_ok

    try:
        wait_until(back, timeout, interval=0.1, what="descriptors and RSS back to the baseline")
    except AssertionError as e:
        raise AssertionError(f"{e}: baseline {baseline}, now {last[0]} "
                             f"(RSS tolerance {rss_tolerance_kb} KiB)") from None
    return last[0]


class MallocProbe:
    """MallocProbe runs a sidecar with tests/lib/malloc_probe.so preloaded
    and asks it, through a FIFO, for the bytes malloc has allocated (all
    arenas and mmapped chunks) and to hand its free pages back (malloc_trim):
    after a burst of connections, RSS stays at its peak although everything
    was freed (glibc keeps the pages of a worker's arena for reuse), so only
    the allocated bytes show a leak, and RSS after the trim is comparable
    with a baseline taken the same way."""

    def __init__(self, folder):
        self.fifo = os.path.join(folder, "malloc-probe")
        os.mkfifo(self.fifo)
        self.library = find_binary("MALLOC_PROBE", "tests/lib/malloc_probe.so")

    def wrap(self, folder, program):
        """wrap writes a script that runs `program` with its arguments and
        the probe preloaded (same process id); returns its path."""
        path = os.path.join(folder, "with-malloc-probe.sh")
        write_file(path, f"#!/bin/sh\nLD_PRELOAD={self.library} MALLOC_PROBE_FIFO={self.fifo} "
                   f"exec {program} \"$@\"\n", mode=0o755)
        return path

    def in_use_after_trim(self, timeout=DEFAULT_TIMEOUT):
        """in_use_after_trim returns the bytes malloc had allocated, once the
        probe has also trimmed the free pages."""
        out = self.fifo + ".out"
        if os.path.exists(out):
            os.unlink(out)

        def ask():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: the probe is not waiting yet
                return False
            try:
                os.write(fd, b"trim\n")
            finally:
                os.close(fd)
            return True

        wait_until(ask, timeout, what="the malloc probe waiting on its FIFO")
        wait_until(lambda: os.path.exists(out), timeout, what="the malloc probe's answer")
        with open(out) as f:
            return int(f.read().split()[1])


class RssSampler:
    """RssSampler reads the RSS of `pid` every `interval` seconds in a
    thread until stop(); `peak_kb` is the highest seen."""

    def __init__(self, pid, interval=0.1):
        self.pid = pid
        self.peak_kb = rss_kb(pid)
        self.samples = 0
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self._interval):
            try:
                self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
                self.samples += 1
            except OSError:
                return

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak_kb


# ---- TLS peers on any loopback address ---------------------------------------------


def reset(sock):
    """reset aborts `sock` (SO_LINGER 0: the kernel sends RST, no FIN and
    no close_notify)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def tcp_fin(tls):
    """tcp_fin ends the sending side of a TLS socket's TCP connection (FIN)
    without a close_notify: the TLS stream is cut, not closed."""
    socket.socket.shutdown(tls, socket.SHUT_WR)


def tcp_end(tls, timeout=DEFAULT_TIMEOUT):
    """tcp_end waits for the end of the TCP connection under a TLS socket
    and returns closed_how's answer ("fin", "reset" or "data"), read from
    the socket itself: Python's ssl reports a reset as a ragged EOF, so
    only the socket tells a reset from a FIN."""
    with socket.socket(fileno=os.dup(tls.fileno())) as plain:
        return closed_how(plain, timeout)


class TlsPeer(TcpServer):
    """TlsPeer is an OpenSSL server (client certificate from `client_ca`
    required) on host:port (any 127.x address; port 0: any). Each
    connection runs session(peer, tls, record) in a thread of its own;
    `record` is a dict kept in `connections` (number, paths, end: "eof" when
    the sidecar closed it, "reset" when it reset it, "peer" when the session
    ended it)."""

    def __init__(self, cert, key, client_ca, session, host="127.0.0.1", port=0):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.load_verify_locations(client_ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.session = session
        self.connections = []
        super().__init__(None, port=port, host=host)

    def _accepted(self, conn):
        record = {"number": len(self.connections) + 1, "paths": [], "end": None}
        self.connections.append(record)
        return (record,)

    def _run(self, conn, record):
        conn.settimeout(30)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            record["end"] = "handshake failed"
            conn.close()
            return
        try:
            self.session(self, tls, record)
            if record["end"] is None:
                record["end"] = "peer"
        except ConnectionResetError:
            record["end"] = "reset"
        except (ssl.SSLError, OSError) as e:
            record["end"] = record["end"] or f"error {e!r}"
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def ended(self, number):
        """ended returns how connection `number` (1-based) ended, or None."""
        with self.lock:
            return self.connections[number - 1]["end"]


class _Reader:
    """_Reader buffers a TLS socket's bytes for a server that parses
    request heads itself."""

    def __init__(self, tls):
        self.tls = tls
        self.buffer = b""

    def head(self):
        """head returns (method, path, {lower-case name: value}) of the next
        request, or None when the peer closed (raises ConnectionResetError
        on a reset)."""
        while b"\r\n\r\n" not in self.buffer:
            more = self.tls.recv(1 << 16)
            if not more:
                return None
            self.buffer += more
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return method, path, headers

    def body(self, length, on_bytes):
        """body reads `length` body bytes, handing each piece to on_bytes;
        returns how many came before the peer closed (length when all)."""
        got = 0
        if self.buffer:
            piece, self.buffer = self.buffer[:length], self.buffer[length:]
            on_bytes(piece)
            got += len(piece)
        while got < length:
            more = self.tls.recv(min(1 << 20, length - got))
            if not more:
                return got
            on_bytes(more)
            got += len(more)
        return got


def pattern_chunk(index, size=MB):
    """pattern_chunk returns the `index`th chunk of a stream that the test
    and a peer can both make without keeping it: 8 bytes of index, then a
    fixed filler."""
    return struct.pack(">Q", index) + _FILLER[:size - 8]


_FILLER = bytes(range(256)) * (MB // 256)


class FaultyHttpUpstream(TlsPeer):
    """FaultyHttpUpstream is an HTTP/1.1 keep-alive upstream whose request
    path picks its behaviour (any prefix before the last segment is
    ignored, so routes may add one):

      .../ok          200, body "ok NAME PATH\\n" (NAME: the server's name)
      .../rst         head with Content-Length 1 MiB, 64 KiB of it, then a
                      TCP reset once `release` is set
      .../fin         the same, then a FIN without close_notify
      .../stall       a head with Content-Length 1000 and then nothing; waits
                      for the sidecar to close (end "eof"/"reset")
      .../silent      no answer at all; waits for the sidecar to close
      .../garbage     "ok" with a complete second response glued after it in
                      the same write ("HTTP/1.1 200 ... injected")
      .../garbage-later  "ok", then the same second response once `release`
                      is set (the test sets it when the client has the "ok")
      .../upload      reads the body (Content-Length), answers its length
                      and CRC-32; a body cut short ends the connection and is
                      counted in `uploads_cut`
      .../download?N  200 with N bytes of pattern_chunk()s

    `partial_sent` is set once a mid-body fault has sent its 64 KiB."""

    def __init__(self, cert, key, client_ca, name="faulty", host="127.0.0.1", port=0):
        self.name = name
        self.release = threading.Event()
        self.partial_sent = threading.Event()
        self.uploads = []  # (bytes received, expected) per upload, complete or not
        super().__init__(cert, key, client_ca, self._serve, host, port)

    @staticmethod
    def _answer(tls, body, status="200 OK"):
        tls.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)

    def _partial(self, tls):
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + b"p" * 65536)
        self.partial_sent.set()
        self.release.wait(30)

    def _serve(self, _peer, tls, record):
        reader = _Reader(tls)
        while True:
            request = reader.head()
            if request is None:
                record["end"] = "eof"
                return
            method, path, headers = request
            record["paths"].append(path)
            what = path.split("?")[0].rsplit("/", 1)[-1]
            if what == "ok":
                length = int(headers.get("content-length") or 0)
                reader.body(length, lambda _: None)
                self._answer(tls, f"ok {self.name} {path}\n".encode())
            elif what == "rst":
                self._partial(tls)
                reset(tls)
                record["end"] = "peer"
                return
            elif what == "fin":
                self._partial(tls)
                tcp_fin(tls)
                record["end"] = "peer"
                return
            elif what in ("stall", "silent"):
                if what == "stall":
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                while tls.recv(1 << 16):
                    pass
                record["end"] = "eof"
                return
            elif what in ("garbage", "garbage-later"):
                injected = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\ninjected\n"
                ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
                if what == "garbage":
                    tls.sendall(ok + injected)
                else:
                    tls.sendall(ok)
                    self.release.wait(30)
                    tls.sendall(injected)
            elif what == "upload":
                expected = int(headers["content-length"])
                crc = [0]

                def take(piece):
                    crc[0] = zlib.crc32(piece, crc[0])

                got = reader.body(expected, take)
                self.uploads.append((got, expected))
                if got < expected:
                    record["end"] = "eof"
                    return
                self._answer(tls, f"{got} {crc[0]:08x}\n".encode())
            elif what == "download":
                size = int(path.split("?", 1)[1])
                tls.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                sent, index = 0, 0
                while sent < size:
                    chunk = pattern_chunk(index)[:size - sent]
                    tls.sendall(chunk)
                    sent += len(chunk)
                    index += 1
            else:
                self._answer(tls, b"no such fault\n", "404 Not Found")


def stream_pattern_crc(size):
    """stream_pattern_crc returns the CRC-32 of the first `size` bytes of the
    pattern_chunk() stream, computed chunk by chunk."""
    crc, done, index = 0, 0, 0
    while done < size:
        chunk = pattern_chunk(index)[:size - done]
        crc = zlib.crc32(chunk, crc)
        done += len(chunk)
        index += 1
    return crc


# ---- slowloris, in a process of its own --------------------------------------------

_SLOWLORIS = r"""
import socket, sys, time
port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for i in range(count):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /slow HTTP/1.1\r\nHost: upstream.test\r\nX-Slow: ")
    socks.append(s)
print("connected", len(socks), flush=True)
end = time.monotonic() + seconds
sent = 0
while time.monotonic() < end:
    started = time.monotonic()
    for s in socks:
        s.sendall(b"a")
        sent += 1
    print("round", flush=True)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
print("sent", sent, flush=True)
for s in socks:
    s.close()
"""


class Slowloris:
    """Slowloris opens `count` connections to 127.0.0.1:port in a process of
    its own (so that it does not take the test's GIL while the test times
    requests), sends each an unfinished request head, then one more byte to
    each every second for `seconds`, then closes them. close() ends it."""

    def __init__(self, port, count, seconds, log_path):
        self.process = Process([sys.executable, "-c", _SLOWLORIS, str(port), str(count),
                                str(seconds)], log_path)

    def connected(self):
        return "connected" in self.process.log()

    def rounds(self):
        """rounds returns how many rounds of a byte on each connection went out."""
        return self.process.log().count("round\n")

    def wait(self, timeout):
        return self.process.wait(timeout)

    def close(self):
        self.process.kill()


# ---- a private /etc/hosts ------------------------------------------------------------


def private_hosts_wrapper(folder, hosts_path, program):
    """private_hosts_wrapper writes a script that runs `program` with the
    script's arguments in a mount namespace of its own where `hosts_path` is
    bind-mounted on /etc/hosts (the machine's file and every other process
    are untouched; `program` keeps the script's process id); returns its
    path, or None when this machine cannot make a mount namespace (not
    root, no unshare).
    Rewrite hosts_path in place (same inode), not by rename: the bind mount
    holds the inode."""
    try:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                f"mount --bind {hosts_path} /etc/hosts"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        return None
    path = os.path.join(folder, "with-private-hosts.sh")
    write_file(path, "#!/bin/sh\n"
               f"exec unshare --mount --propagation private sh -c "
               f"'mount --bind {hosts_path} /etc/hosts && exec \"$@\"' sh {program} \"$@\"\n",
               mode=0o755)
    return path


def rewrite_in_place(path, text):
    """rewrite_in_place replaces the content of `path` keeping its inode."""
    with open(path, "r+") as f:
        f.seek(0)
        f.write(text)
        f.truncate()
