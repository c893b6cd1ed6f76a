"""load.py: traffic through a sidecar listener while something changes under
it (a certificate, a trust bundle, the control plane), counted honestly:
every request is checked in full, and anything but a 200 with exactly the
expected body (a short, long or different body, a garbage status line, a
truncated read, any exception at all) is a failed request. A load thread
that ends before it is told to stop is a failure too.

RequestLoad opens a new connection for every request; HeldRequest keeps one
large response in flight until the test lets it finish, so that a test can
put a change in the middle of a transfer."""

import hashlib
import http.client
import os
import threading
import time

from tests.lib.support import DEFAULT_TIMEOUT, SERVER_NAME, wait_until

# A large answer for nginx to serve: large enough that a HeldRequest stays in
# flight (the sidecar's and the kernel's buffers hold far less than the part
# not yet read), and that RequestLoad at LARGE_BODY_RATE needs about half a
# second for each.
LARGE_BODY = os.urandom(8 << 20)
LARGE_BODY_RATE = 16 << 20


def _first_difference(got, expected):
    for i, (a, b) in enumerate(zip(got, expected)):
        if a != b:
            return i
    return min(len(got), len(expected))


def check_answer(marker, status, body, expected):
    """check_answer returns None when (status, body) is (200, expected), or a
    description of what was seen: status, length, where the body first
    differs and its first bytes."""
    if status == 200 and body == expected:
        return None
    if status != 200:
        return f"{marker}: status {status}, {len(body)} body bytes: {body[:200]!r}"
    at = _first_difference(body, expected)
    return (f"{marker}: 200 with {len(body)} body bytes of {len(expected)} expected, first "
            f"difference at byte {at}: {body[at:at + 64]!r} (sha256 {hashlib.sha256(body).hexdigest()[:16]})")


def read_paced(response, bytes_per_second=None, chunk=64 * 1024, pause=None):
    """read_paced reads a response body to its end, at most bytes_per_second
    (None: as fast as it comes); `pause(bytes_read)` runs after each chunk.
    Returns the body; raises http.client.IncompleteRead when the connection
    ended before the Content-Length it announced (http.client's read(amt)
    would quietly return the part it got)."""
    parts, got, began = [], 0, time.monotonic()
    while True:
        data = response.read(chunk)
        if not data:
            if response.length:
                raise http.client.IncompleteRead(b"".join(parts), response.length)
            return b"".join(parts)
        parts.append(data)
        got += len(data)
        if pause is not None:
            pause(got)
        if bytes_per_second:
            ahead = got / bytes_per_second - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)


class RequestLoad:
    """RequestLoad runs `threads` threads that each open a new connection to
    127.0.0.1:port, send one GET of `path` tagged ?TAG=THREAD-N and read the
    answer (at `bytes_per_second` when set, so that large bodies stay in
    flight for a while), in a loop until stop() or `limit` seconds.

    successes counts good answers, failures lists a description of each bad
    one. started maps each tag to when its request began (time.time());
    spans lists (tag, began, ended) in time.monotonic() of the good ones."""

    def __init__(self, port, threads=3, path="/hello.txt", expected=b"hello from nginx\n",
                 tag="load", bytes_per_second=None, limit=120, timeout=10):
        self.port = port
        self.path = path
        self.expected = expected
        self.tag = tag
        self.successes = 0
        self.failures = []
        self.started = {}
        self.spans = []
        self._bytes_per_second = bytes_per_second
        self._timeout = timeout
        self._limit = limit
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def _fetch(self, marker):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self._timeout)
        try:
            conn.request("GET", f"{self.path}?{marker}",
                         headers={"Host": SERVER_NAME, "Connection": "close"})
            response = conn.getresponse()
            return response.status, read_paced(response, self._bytes_per_second)
        finally:
            conn.close()

    def _run(self, index):
        deadline = time.monotonic() + self._limit
        n = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                n += 1
                marker = f"{self.tag}={index}-{n}"
                with self._lock:
                    self.started[marker] = time.time()
                began = time.monotonic()
                try:
                    failure = check_answer(marker, *self._fetch(marker), self.expected)
                except Exception as e:  # every kind of failure counts, none ends the thread
                    failure = f"{marker}: {e!r}"
                with self._lock:
                    if failure:
                        self.failures.append(failure)
                    else:
                        self.successes += 1
                        self.spans.append((marker, began, time.monotonic()))
        except BaseException as e:
            with self._lock:
                self.failures.append(f"{self.tag} thread {index} died: {e!r}")
            raise

    def in_flight_at(self, moment):
        """in_flight_at returns the tags of the good requests that began
        before `moment` (time.monotonic()) and ended after it."""
        with self._lock:
            return [marker for marker, began, ended in self.spans if began < moment < ended]

    def wait_more(self, count, timeout=20):
        """wait_more waits for `count` more good answers; it returns early
        when a request fails or a thread has ended (the test's assertions
        then show it)."""
        target = self.successes + count
        wait_until(lambda: self.successes >= target or self.failures or not self.running(),
                   timeout, what=f"{count} more good answers from the {self.tag} load")

    def running(self):
        return all(thread.is_alive() for thread in self._threads)

    def stop(self):
        """stop ends the threads; a thread that had already ended, or that
        does not end within 30 s, is recorded as a failure. Idempotent."""
        if self._stop.is_set():
            return
        if not self.running():
            self.failures.append(f"a {self.tag} thread ended before stop()")
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
            if thread.is_alive():
                self.failures.append(f"a {self.tag} thread is still running 30 s after stop()")


class HeldRequest:
    """HeldRequest opens one connection to 127.0.0.1:port, GETs `path`
    (?held=NAME) and reads the first `hold_after` bytes of the answer; then
    it waits, its response in flight, until release(), and reads the rest.
    wait_held() returns once it is holding; finish() releases it and returns
    None for a good answer (200, exactly `expected`) or what went wrong."""

    def __init__(self, port, path, expected, name="1", hold_after=1 << 20, limit=60):
        self.port = port
        self.marker = f"held={name}"
        self.result = None
        self._path = path
        self._expected = expected
        self._hold_after = hold_after
        self._limit = limit
        self._holding = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _pause(self, got):
        if got >= self._hold_after and not self._release.is_set():
            self._holding.set()
            if not self._release.wait(self._limit):
                raise AssertionError(f"not released within {self._limit} s")

    def _run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self._limit)
        try:
            conn.request("GET", f"{self._path}?{self.marker}", headers={"Host": SERVER_NAME})
            response = conn.getresponse()
            body = read_paced(response, pause=self._pause)
            self.result = check_answer(self.marker, response.status, body, self._expected)
        except BaseException as e:
            self.result = f"{self.marker}: {e!r}"
        finally:
            conn.close()
            self._holding.set()

    def wait_held(self, timeout=DEFAULT_TIMEOUT):
        """wait_held waits until the request holds `hold_after` bytes, its
        answer not complete; fails with what went wrong otherwise."""
        if not self._holding.wait(timeout) or not self._thread.is_alive():
            raise AssertionError(f"{self.marker} is not in flight: {self.result or 'no answer'}")

    def release(self):
        self._release.set()

    def finish(self, timeout=30):
        """finish releases the request, waits for its end and returns None
        for a good answer or a description of the bad one."""
        self.release()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return f"{self.marker}: no complete answer within {timeout} s of release"
        return self.result
