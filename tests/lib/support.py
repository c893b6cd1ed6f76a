"""support.py: the integration tests' basic tools: bounded waits, free
ports, socket reads with deadlines, files, temp folders, child processes and
where the project's binaries are (standard library only)."""

import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Slack for anything that should happen "at once" on a loaded 2-core machine.
DEFAULT_TIMEOUT = 10.0

SERVER_NAME = "upstream.test"
CLIENT_URI = "spiffe://test/client"


# ---- small helpers ----------------------------------------------------------


_HANDED_OUT = set()


def free_port():
    """free_port returns a TCP port on 127.0.0.1 that nothing listens on now
    and that this process has not handed out before (the kernel may offer a
    port again before the first taker has bound it)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port that was not handed out already")


def closed_port():
    """closed_port returns (sock, port): a socket bound to a port on
    127.0.0.1 that does not listen, so connecting to the port is refused,
    and no other test can take the port while `sock` stays open. The caller
    closes sock."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, interval=0.05, what="condition"):
    """wait_until polls `predicate` until it returns a true value and returns
    that value; raises AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the condition may not be observable yet
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, timeout=DEFAULT_TIMEOUT, process=None, what=None):
    """wait_port waits until 127.0.0.1:port accepts connections. When
    `process` (a Popen) exits first, fails at once."""

    def ready():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what or 'process'} exited with {process.returncode} "
                                 f"before port {port} accepted connections")
        return port_accepts(port)

    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() >= deadline:
            raise AssertionError(f"port {port} did not accept connections within {timeout}s")
        time.sleep(0.05)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def normalize_serial(serial):
    """normalize_serial makes serials from nginx (upper case) and from
    `certs inspect` (lower case) comparable: no colons, lower case, no
    leading zeros."""
    return (serial or "").replace(":", "").lower().lstrip("0")


class ResetBeforeEof(ConnectionResetError):
    """ResetBeforeEof: the peer reset the connection instead of closing it;
    `data` holds what was read before."""

    def __init__(self, data):
        super().__init__(f"connection reset by the peer after {len(data)} bytes (no FIN)")
        self.data = data


def recv_until_eof(sock, timeout=DEFAULT_TIMEOUT, limit=None, reset_ok=False):
    """recv_until_eof reads until the peer closes with a FIN (returns the
    bytes) or raises socket.timeout after `timeout` seconds overall. A reset
    is not a clean close: it raises ResetBeforeEof (with the bytes read),
    unless reset_ok, when it ends the read like a FIN."""
    deadline = time.monotonic() + timeout
    chunks = []
    total = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout(f"no EOF within {timeout}s ({total} bytes read)")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            if reset_ok:
                return b"".join(chunks)
            raise ResetBeforeEof(b"".join(chunks)) from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if limit is not None and total >= limit:
            return b"".join(chunks)


def echo_round_trip(sock, payload, timeout=DEFAULT_TIMEOUT):
    """echo_round_trip sends `payload` from a thread, then half-closes
    (SHUT_WR), while reading until EOF; returns (bytes read, send errors).
    Against an echo upstream, getting everything back and then EOF proves
    the data and the half-close both went through."""
    errors = []

    def send():
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(e)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    echoed = recv_until_eof(sock, timeout=timeout)
    sender.join(timeout=10)
    return echoed, errors


def recv_exactly(sock, n, timeout=DEFAULT_TIMEOUT):
    deadline = time.monotonic() + timeout
    chunks = []
    got = 0
    while got < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout(f"only {got} of {n} bytes within {timeout}s")
        sock.settimeout(remaining)
        chunk = sock.recv(min(1 << 16, n - got))
        if not chunk:
            raise AssertionError(f"EOF after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def closed_how(sock, timeout=DEFAULT_TIMEOUT):
    """closed_how waits for the peer's first move: "fin" (a clean close),
    "reset" (an abort) or "data" (it sent bytes); raises socket.timeout when
    the connection stayed open and silent."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1 << 16)
    except ConnectionResetError:
        return "reset"
    return "fin" if data == b"" else "data"


def is_closed_without_data(sock, timeout=DEFAULT_TIMEOUT):
    """is_closed_without_data returns True when the peer closes (FIN or
    reset: for a refusal either is right) without sending a byte within
    `timeout`; False when data came; raises socket.timeout when the
    connection stayed open. Where a clean close matters, use closed_how."""
    return closed_how(sock, timeout) != "data"


def http_get(port, path, host=SERVER_NAME, timeout=DEFAULT_TIMEOUT, keep_alive=False):
    """http_get sends one plaintext HTTP/1.1 GET to 127.0.0.1:port (a sidecar
    listener) and returns (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Host": host}
        if not keep_alive:
            headers["Connection"] = "close"
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def read_http_response(reader, head_request=False):
    """read_http_response reads one HTTP/1.1 response from `reader` (a
    socket's makefile("rb"); its socket's timeout bounds each read) and
    returns (status, headers, body): headers a dict of lower-case names to
    values (repeated ones joined by ", "). A 1xx, 204, 304 or the answer to
    a HEAD (head_request) has no body; otherwise the body is framed by
    Content-Length, chunked, or the end of the connection. Raises
    AssertionError when the connection ends before a status line."""
    line = reader.readline()
    if not line:
        raise AssertionError("the connection ended before a response")
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if head_request or status < 200 or status in (204, 304):
        return status, headers, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int(reader.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return status, headers, b"".join(chunks)
            chunks.append(reader.read(size))
            reader.readline()
    if "content-length" in headers:
        length = int(headers["content-length"])
        body = reader.read(length)
        if len(body) != length:
            raise AssertionError(f"EOF after {len(body)} of {length} body bytes")
        return status, headers, body
    return status, headers, reader.read()


class KeptConnections:
    """KeptConnections opens `count` HTTP/1.1 keep-alive connections through
    the sidecar, makes one GET of `path` on each at once, then keeps each
    busy from its own thread with a GET every `interval` seconds (0: back to
    back) until stop(), expecting 200 and `expected`. Each request is tagged
    ?kept=K-N. http.client would quietly reconnect a closed connection;
    auto_open = 0 turns that into a failure, and a thread stops at its first
    failure."""

    def __init__(self, port, count=3, interval=0.2, path="/hello.txt",
                 expected=b"hello from nginx\n"):
        self.requests = 0
        self.failures = []
        self._interval = interval
        self._path = path
        self._expected = expected
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns = []
        for k in range(count):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.connect()
            conn.auto_open = 0
            self._conns.append(conn)
            self._exchange(conn, f"kept={k}-0")
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                         for k in range(count)]
        for thread in self._threads:
            thread.start()

    def _exchange(self, conn, marker):
        conn.request("GET", f"{self._path}?{marker}", headers={"Host": SERVER_NAME})
        response = conn.getresponse()
        body = response.read()
        if (response.status, body) != (200, self._expected):
            raise AssertionError(f"{marker}: {response.status} {body[:200]!r}")
        with self._lock:
            self.requests += 1

    def _run(self, k):
        n = 0
        while not self._stop.wait(self._interval):
            n += 1
            try:
                self._exchange(self._conns[k], f"kept={k}-{n}")
            except Exception as e:  # any failure counts: a truncated body, a garbage line...
                with self._lock:
                    self.failures.append((k, n, repr(e)))
                return

    def wait_more(self, count, timeout=20):
        """wait_more waits for `count` more successful requests (or a
        failure, which the test's assertions then show)."""
        target = self.requests + count
        wait_until(lambda: self.requests >= target or self.failures, timeout,
                   what=f"{count} more requests on the kept connections")

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def close(self):
        self.stop()
        for conn in self._conns:
            conn.close()


class Trickle:
    """Trickle sends `data` a byte at a time, to each of `socks`, every
    `interval` seconds, from a thread of its own, until the bytes run out or
    stop() (a slow client: a slowloris). A send that fails, the peer having
    closed, is passed over. `rounds` counts the bytes each socket was sent."""

    def __init__(self, socks, data, interval=0.2):
        self.rounds = 0
        self._socks = list(socks)
        self._data = data
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        for i in range(len(self._data)):
            for sock in self._socks:
                try:
                    sock.send(self._data[i:i + 1])
                except OSError:
                    pass
            self.rounds += 1
            if self._stop.wait(self._interval):
                return

    def wait_rounds(self, count, timeout=DEFAULT_TIMEOUT):
        """wait_rounds waits until `count` more rounds went out."""
        target = self.rounds + count
        wait_until(lambda: self.rounds >= target, timeout, what=f"{count} more rounds of trickle")

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def write_file(path, data, mode=None):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def replace_file_atomically(path, data):
    """replace_file_atomically writes `data` next to `path` and renames it
    over `path`, as deployment tools do."""
    tmp = f"{path}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    write_file(tmp, data)
    os.rename(tmp, path)


def find_binary(env_name, relative):
    """find_binary locates a project binary: $env_name, the runfiles root
    (bazel test), $RUNFILES_DIR, or the repository's bazel-bin/."""
    override = os.environ.get(env_name)
    candidates = [override] if override else []
    candidates.append(os.path.join(os.getcwd(), relative))
    for var in ("RUNFILES_DIR", "TEST_SRCDIR"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "mtls_sidecar", relative))
    candidates.append(os.path.join(REPO_ROOT, "bazel-bin", relative))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return os.path.abspath(candidate)
    # A failure, not a skip: a suite that skips everything must not pass.
    raise AssertionError(f"{relative} not found (set {env_name}); looked in {candidates}")


def certs_bin():
    return find_binary("CERTS_BIN", "certs/certs")


def sidecar_bin():
    return find_binary("SIDECAR_BIN", "sidecar/sidecar")


NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


# ---- temporary folders ------------------------------------------------------


class TempDir:
    """TempDir is a folder under $TEST_TMPDIR (or the system's temp folder)
    removed by cleanup(); use as a context manager or register cleanup with
    addCleanup."""

    def __init__(self, prefix="mtls-"):
        base = os.environ.get("TEST_TMPDIR") or None
        self.path = tempfile.mkdtemp(prefix=prefix, dir=base)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def mkdir(self, *parts):
        path = self.join(*parts)
        os.makedirs(path, exist_ok=True)
        return path

    def cleanup(self):
        if os.environ.get("KEEP_TEST_DIRS"):
            return
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


# ---- processes --------------------------------------------------------------


class Process:
    """Process wraps a Popen whose stdout and stderr go to files."""

    def __init__(self, argv, log_path, cwd=None, env=None):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
                                      env=env, stdin=subprocess.DEVNULL)

    @property
    def pid(self):
        return self.popen.pid

    def poll(self):
        return self.popen.poll()

    def log(self):
        return read_text(self.log_path)

    def signal(self, sig):
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """wait returns the exit code, or raises subprocess.TimeoutExpired."""
        return self.popen.wait(timeout=timeout)

    def terminate(self, timeout=5):
        """terminate sends SIGTERM, waits up to `timeout` seconds, then
        kills what still runs; idempotent."""
        self.signal(signal.SIGTERM)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self):
        """kill ends the process now (SIGKILL) if it still runs; idempotent."""
        if self.popen.poll() is None:
            self.popen.kill()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if not self._log.closed:
            self._log.close()
