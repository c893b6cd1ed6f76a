"""sidecar.py: sidecar configurations as dicts, and the sidecar process
with helpers for its admin endpoint and its log."""

import http.client
import json
import os
import re
import signal
import subprocess
import time

from tests.lib.support import (DEFAULT_TIMEOUT, SERVER_NAME, Process, free_port, read_text,
                               sidecar_bin, wait_until, write_file)


# ---- the sidecar --------------------------------------------------------------


# A line in which a sanitizer (bazel test --config=asan) reports a problem.
SANITIZER_REPORT = re.compile(r"^.*(?:ERROR: \w+Sanitizer|runtime error:|SUMMARY: \w+Sanitizer).*$",
                              re.MULTILINE)


# Every page of the admin endpoint a GET may read (what a leak would show in).
ADMIN_PAGES = ("/certs", "/config_dump", "/clusters", "/clusters?format=json", "/server_info",
               "/stats", "/stats/prometheus", "/ready")


def cluster_tls(pki, **overrides):
    """cluster_tls returns the TLS block of a cluster that presents
    pki.client, trusts pki.ca and expects upstream.test. A value of None
    in overrides removes the key."""
    tls = {
        "certificate": pki.client.crt,
        "private_key": pki.client.key,
        "trusted_ca": pki.ca_crt,
        "server_name": SERVER_NAME,
    }
    for key, value in overrides.items():
        if value is None:
            tls.pop(key, None)
        else:
            tls[key] = value
    return tls


def cluster(name, endpoints, tls, **extra):
    c = {"name": name, "endpoints": list(endpoints), "connect_timeout_ms": 2000,
         "handshake_timeout_ms": 3000, "tls": tls}
    c.update(extra)
    return c


def listener(name, cluster_name, port=None, **extra):
    entry = {"name": name, "address": f"127.0.0.1:{port or free_port()}", "protocol": "tcp",
             "cluster": cluster_name}
    entry.update(extra)
    return entry


def http_listener(name, cluster_name, port=None, **http):
    """http_listener returns a listener with "protocol": "http" whose
    "http" object holds `http` (all defaults when empty)."""
    entry = listener(name, cluster_name, port, protocol="http")
    if http:
        entry["http"] = dict(http)
    return entry


def config(listeners, clusters, admin_port=None, **extra):
    c = {"admin": {"address": f"127.0.0.1:{admin_port or free_port()}"}, "workers": 2,
         "drain_timeout_ms": 2000, "listeners": list(listeners), "clusters": list(clusters)}
    c.update(extra)
    return c


def host_stat(host, name):
    """host_stat returns the counter `name` of one host of /clusters, whose
    "stats" is an object {name: value} or Envoy's list [{name, value}]."""
    stats = host["stats"]
    if isinstance(stats, dict):
        return int(stats[name])
    for entry in stats:
        if entry["name"] == name:
            return int(entry["value"])
    raise KeyError(f"no stat {name} in {stats}")


def listener_port(entry):
    return int(entry["address"].rsplit(":", 1)[1])


class Sidecar:
    """Sidecar writes `config` (a dict) as JSON into `folder` and runs the
    real binary on it, stderr captured to a file."""

    def __init__(self, folder, config_dict, name="sidecar", args=()):
        self.bin = sidecar_bin()
        self.args = list(args)
        # Put before the binary, e.g. ["prlimit", "--nofile=64"]: the
        # launcher must exec the sidecar so that its pid is the sidecar's.
        self.launcher = []
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.config = config_dict
        self.config_path = os.path.join(folder, f"{name}.json")
        self.log_path = os.path.join(folder, f"{name}.log")
        self.admin_port = int(config_dict["admin"]["address"].rsplit(":", 1)[1])
        self.process = None
        write_file(self.config_path, json.dumps(config_dict, indent=2))

    def listener_port(self, index=0):
        return listener_port(self.config["listeners"][index])

    def start(self, wait_ready=True, timeout=DEFAULT_TIMEOUT):
        argv = self.launcher + [self.bin, "--config", self.config_path] + self.args
        self.process = Process(argv, self.log_path)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def start_refused(self, timeout=10):
        """start_refused starts the sidecar on a configuration it must refuse
        and returns its exit code (AssertionError when it keeps running)."""
        self.start(wait_ready=False)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the sidecar started, but should not have:\n{self.log()}")

    def wait_ready(self, timeout=DEFAULT_TIMEOUT):
        def ready():
            code = self.process.poll()
            if code is not None:
                raise AssertionError(f"sidecar exited with {code} before /ready:\n{self.log()}")
            try:
                return self.admin_get("/ready", timeout=1)[0] == 200
            except OSError:
                return False

        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    return
            except AssertionError:
                raise
            if time.monotonic() >= deadline:
                raise AssertionError(f"sidecar /ready was not 200 within {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def validate(self):
        """validate runs `sidecar --validate` on the config and returns
        (exit code, output)."""
        result = subprocess.run([self.bin, "--validate", "--config", self.config_path],
                                capture_output=True, text=True, timeout=30)
        output = result.stdout + result.stderr
        reports = SANITIZER_REPORT.findall(output)
        if reports:
            raise AssertionError(f"sidecar --validate: sanitizer report:\n{output}")
        return result.returncode, output

    def admin_request(self, method, path, timeout=5):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request(method, path)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            conn.close()

    def admin_get(self, path, timeout=5):
        """admin_get returns (status, body text)."""
        status, _, body = self.admin_request("GET", path, timeout)
        return status, body.decode("utf-8", "replace")

    def admin_json(self, path):
        status, body = self.admin_get(path)
        if status != 200:
            raise AssertionError(f"GET {path}: status {status}: {body}")
        return json.loads(body)

    def admin_pages(self):
        """admin_pages returns {path: body text} of every page in ADMIN_PAGES,
        each of which must answer 200."""
        pages = {}
        for page in ADMIN_PAGES:
            status, body = self.admin_get(page)
            if status != 200:
                raise AssertionError(f"GET {page}: status {status}: {body[:500]}")
            pages[page] = body
        return pages

    def stats(self):
        """stats returns /stats as {name: value}."""
        return {s["name"]: s["value"] for s in self.admin_json("/stats")["stats"]}

    def stat(self, name):
        """stat returns the counter `name`; without one of that exact name,
        the sum of those ending in ".name" (per-cluster counters); None
        when there is neither."""
        stats = self.stats()
        if name in stats:
            return int(stats[name])
        matches = [int(v) for k, v in stats.items() if k.endswith("." + name)]
        return sum(matches) if matches else None

    def hosts(self, cluster_name):
        for c in self.admin_json("/clusters?format=json")["cluster_statuses"]:
            if c["name"] == cluster_name:
                return c["host_statuses"]
        raise AssertionError(f"cluster {cluster_name} not in /clusters")

    def log(self):
        return read_text(self.log_path)

    def log_lines(self, pattern):
        """log_lines returns the log lines matching the regex `pattern`."""
        regex = re.compile(pattern)
        return [line for line in self.log().splitlines() if regex.search(line)]

    def wait_log(self, pattern, count=1, timeout=DEFAULT_TIMEOUT):
        """wait_log waits until `count` lines match `pattern` and returns them."""
        try:
            return wait_until(lambda: len(self.log_lines(pattern)) >= count and
                              self.log_lines(pattern), timeout,
                              what=f"{count} sidecar log line(s) matching {pattern!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}\nsidecar log:\n{self.log()}") from None

    def reload(self, new_config, expect_log):
        """reload writes `new_config` (a dict) as the file, sends SIGHUP and
        waits for one more log line matching `expect_log`, which it returns."""
        write_file(self.config_path, json.dumps(new_config, indent=2))
        count = len(self.log_lines(expect_log))
        self.send_signal(signal.SIGHUP)
        line = self.wait_log(expect_log, count=count + 1)[-1]
        self.wait_workers_current()
        return line

    def wait_workers_current(self):
        """wait_workers_current waits until every worker has taken up the
        configuration last put in force (/server_info's workers_current): a
        request sent before may still meet the one before it."""
        wait_until(lambda: self.admin_json("/server_info")["workers_current"],
                   what="the workers to take up the new configuration")

    def send_signal(self, sig):
        self.process.signal(sig)

    def is_running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """stop sends SIGTERM and returns the exit code (raises
        AssertionError when the process outlives `timeout`)."""
        self.process.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sidecar still running {timeout}s after SIGTERM:\n{self.log()}")

    def kill(self):
        """kill ends the process at once (SIGKILL); idempotent."""
        if self.process is not None:
            self.process.kill()

    def finish(self):
        """finish is the cleanup: SIGTERM, so that a sanitizer build reports
        leaks at exit, then SIGKILL if the drain outlasts its timeout."""
        if self.is_running():
            self.process.signal(signal.SIGTERM)
            try:
                self.process.wait(self.config.get("drain_timeout_ms", 20000) / 1000 + 5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def sanitizer_reports(self):
        """sanitizer_reports returns the lines of the log in which
        AddressSanitizer, LeakSanitizer or UBSan reported a problem."""
        return SANITIZER_REPORT.findall(self.log())
