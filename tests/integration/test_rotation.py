"""Certificate rotation under load: the sidecar picks up new certificate
files (file rename, Kubernetes ..data symlink swap, SIGHUP) without failing a
single connection; new connections present the new certificate; connections
opened before keep working. A broken certificate is refused and the old one
keeps serving."""

import http.client
import os
import shutil
import signal
import threading
import time
import unittest

from tests.lib import harness
from tests.lib.harness import (SERVER_NAME, cluster, cluster_tls, config, http_get, listener,
                                normalize_serial)


class Load:
    """Load makes connections through the sidecar from `threads` threads in
    a loop, one request each, until stop() (or 30 s); it records every
    failure."""

    def __init__(self, port, threads=2):
        self.port = port
        self.successes = 0
        self.failures = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self, index):
        deadline = time.monotonic() + 30
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            try:
                status, body = http_get(self.port, f"/hello.txt?load={index}-{n}", timeout=5)
                ok = status == 200 and body == b"hello from nginx\n"
                failure = None if ok else (index, n, status, body[:200])
            except OSError as e:
                failure = (index, n, repr(e))
            with self._lock:
                if failure:
                    self.failures.append(failure)
                else:
                    self.successes += 1

    def run_for(self, seconds, successes, timeout=10):
        """run_for lets the load run for `seconds` more and waits until it
        has made at least `successes` more connections (or failed)."""
        target = self.successes + successes
        time.sleep(seconds)
        harness.wait_until(lambda: self.successes >= target or self.failures, timeout,
                           what=f"{successes} more successful connections under load")

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def error_strings(document):
    """error_strings returns every non-empty string value whose key
    mentions "error", anywhere in a JSON document."""
    found = []

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and "error" in key.lower() and value:
            found.append(value)

    walk(document)
    return found


class RotationTest(harness.IntegrationTest):

    def start_pair(self, tls_dir, config_extra=None):
        """Starts nginx and a sidecar whose client certificate is
        tls_dir/tls.crt and tls.key, trusting tls_dir/ca.crt."""
        nginx = self.start_https()
        tls = cluster_tls(self.pki, certificate=os.path.join(tls_dir, "tls.crt"),
                          private_key=os.path.join(tls_dir, "tls.key"),
                          trusted_ca=os.path.join(tls_dir, "ca.crt"))
        sidecar = self.simple_sidecar(nginx.port, tls, **(config_extra or {}))
        return nginx, sidecar

    def served_serial(self, sidecar):
        """The serials of the client certificates /certs says are in use for
        new connections (contexts marked "current" when /certs marks them;
        older ones may live on while connections hold them)."""
        certs = sidecar.admin_json("/certs")["certificates"]
        if any("current" in c for c in certs):
            certs = [c for c in certs if c.get("current")]
        return {normalize_serial(chain["serial_number"]) for c in certs for chain in c["cert_chain"]}

    def nginx_serial_for(self, nginx, marker):
        harness.wait_until(lambda: any(marker in e["request"] for e in nginx.access_entries()),
                           what=f"nginx to log {marker}")
        entry = [e for e in nginx.access_entries() if marker in e["request"]][-1]
        return normalize_serial(entry["client_serial"]), entry

    def rotate_under_load(self, tls_dir, swap, config_extra=None):
        """The scenario every rotation shares; `swap(new_pair, sidecar)`
        puts the new certificate in place (and signals, when it has to)."""
        nginx, sidecar = self.start_pair(tls_dir, config_extra)
        old_serial = self.pki.serial(self.pki.client.crt)
        new_pair = self.pki.issue_client(f"rotated-{self._testMethodName}")
        new_serial = self.pki.serial(new_pair.crt)
        self.assertIn(old_serial, self.served_serial(sidecar))

        # A connection opened before the swap, kept alive across it.
        before = http.client.HTTPConnection("127.0.0.1", sidecar.listener_port(), timeout=10)
        self.addCleanup(before.close)
        before.request("GET", "/hello.txt?kept=1", headers={"Host": SERVER_NAME})
        response = before.getresponse()
        self.assertEqual((response.status, response.read()), (200, b"hello from nginx\n"))

        reloads_before = len(sidecar.log_lines(r"tls reloaded: cluster=c "))
        load = Load(sidecar.listener_port())
        self.addCleanup(load.stop)
        load.run_for(0.7, successes=5)

        swap(new_pair, sidecar)
        harness.wait_until(lambda: new_serial in self.served_serial(sidecar),
                           what="/certs to show the new certificate")
        sidecar.wait_log(r"tls reloaded: cluster=c generation=\d+", count=reloads_before + 1)
        load.run_for(1.0, successes=10)
        load.stop()
        self.assertEqual(load.failures, [])
        self.assertGreater(load.successes, 10)

        # New connections present the new certificate.
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?after=1")[0], 200)
        serial, _ = self.nginx_serial_for(nginx, "after=1")
        self.assertEqual(serial, new_serial)

        # The connection opened before still works, on its old session.
        before.request("GET", "/hello.txt?kept=2", headers={"Host": SERVER_NAME})
        response = before.getresponse()
        self.assertEqual((response.status, response.read()), (200, b"hello from nginx\n"))
        first, first_entry = self.nginx_serial_for(nginx, "kept=1")
        second, second_entry = self.nginx_serial_for(nginx, "kept=2")
        self.assertEqual(first_entry["connection"], second_entry["connection"],
                         "the kept connection was replaced")
        self.assertEqual((first, second), (old_serial, old_serial))
        return nginx, sidecar

    def copy_initial(self, folder):
        os.makedirs(folder, exist_ok=True)
        shutil.copy(self.pki.client.crt, os.path.join(folder, "tls.crt"))
        shutil.copy(self.pki.client.key, os.path.join(folder, "tls.key"))
        shutil.copy(self.pki.ca_crt, os.path.join(folder, "ca.crt"))

    def test_files_replaced_by_rename(self):
        tls_dir = self.tmp.join("tls")
        self.copy_initial(tls_dir)

        def swap(pair, sidecar):
            with open(pair.key, "rb") as f:
                harness.replace_file_atomically(os.path.join(tls_dir, "tls.key"), f.read())
            with open(pair.crt, "rb") as f:
                harness.replace_file_atomically(os.path.join(tls_dir, "tls.crt"), f.read())

        self.rotate_under_load(tls_dir, swap)

    def test_kubernetes_data_symlink_swap(self):
        tls_dir = self.tmp.mkdir("secret")
        self.copy_initial(os.path.join(tls_dir, "..2026_01_01_00_00_00.000000001"))
        os.symlink("..2026_01_01_00_00_00.000000001", os.path.join(tls_dir, "..data"))
        for name in ("tls.crt", "tls.key", "ca.crt"):
            os.symlink(os.path.join("..data", name), os.path.join(tls_dir, name))

        def swap(pair, sidecar):
            new = os.path.join(tls_dir, "..2026_01_02_00_00_00.000000002")
            os.makedirs(new)
            shutil.copy(pair.crt, os.path.join(new, "tls.crt"))
            shutil.copy(pair.key, os.path.join(new, "tls.key"))
            shutil.copy(self.pki.ca_crt, os.path.join(new, "ca.crt"))
            os.symlink(os.path.basename(new), os.path.join(tls_dir, "..data_tmp"))
            os.rename(os.path.join(tls_dir, "..data_tmp"), os.path.join(tls_dir, "..data"))
            # The kubelet removes the old folder right after the swap.
            shutil.rmtree(os.path.join(tls_dir, "..2026_01_01_00_00_00.000000001"))

        self.rotate_under_load(tls_dir, swap)

    def test_other_files_in_the_certificate_folder_do_not_trigger_reloads(self):
        # A log or any other file written next to the certificates must not
        # make the sidecar re-read them (it once reloaded every 200 ms when
        # its own log lived there).
        tls_dir = self.tmp.join("tls")
        self.copy_initial(tls_dir)
        nginx = self.start_https()
        tls = cluster_tls(self.pki, certificate=os.path.join(tls_dir, "tls.crt"),
                          private_key=os.path.join(tls_dir, "tls.key"),
                          trusted_ca=os.path.join(tls_dir, "ca.crt"))
        sidecar = self.start_sidecar(
            config([listener("l", "c")], [cluster("c", [f"127.0.0.1:{nginx.port}"], tls)]),
            args=["--log-level", "debug"])
        for i in range(20):
            harness.write_file(os.path.join(tls_dir, "app.log"), f"line {i}\n" * (i + 1))
            time.sleep(0.02)
        time.sleep(0.5)
        self.assertEqual(sidecar.log_lines("certificate files changed"), [], sidecar.log())
        # ...while a change to a watched file still does.
        harness.replace_file_atomically(os.path.join(tls_dir, "ca.crt"),
                                        open(self.pki.ca_crt, "rb").read() + b"\n")
        sidecar.wait_log("certificate files changed")

    def test_sighup_reloads_when_watching_is_off(self):
        tls_dir = self.tmp.join("tls")
        self.copy_initial(tls_dir)

        def swap(pair, sidecar):
            shutil.copy(pair.key, os.path.join(tls_dir, "tls.key"))
            shutil.copy(pair.crt, os.path.join(tls_dir, "tls.crt"))
            # With watch_certificates off, nothing happens until SIGHUP.
            time.sleep(1.0)
            self.assertNotIn(self.pki.serial(pair.crt), self.served_serial(sidecar))
            sidecar.send_signal(signal.SIGHUP)

        self.rotate_under_load(tls_dir, swap, {"watch_certificates": False})

    def test_broken_certificate_is_refused_and_the_old_one_keeps_serving(self):
        tls_dir = self.tmp.join("tls")
        self.copy_initial(tls_dir)
        nginx, sidecar = self.start_pair(tls_dir)
        old_serial = self.pki.serial(self.pki.client.crt)
        errors_before = set(error_strings(sidecar.admin_json("/certs")) +
                            error_strings(sidecar.admin_json("/clusters?format=json")))

        # 1. Not a certificate at all.
        harness.replace_file_atomically(os.path.join(tls_dir, "tls.crt"), b"not a certificate\n")
        sidecar.wait_log(r"tls reload refused: cluster=c\b")
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?broken=1")[0], 200)
        self.assertEqual(self.nginx_serial_for(nginx, "broken=1")[0], old_serial)
        self.assertIn(old_serial, self.served_serial(sidecar))
        errors_after = set(error_strings(sidecar.admin_json("/certs")) +
                           error_strings(sidecar.admin_json("/clusters?format=json")))
        self.assertTrue(errors_after - errors_before,
                        "neither /certs nor /clusters shows the refused reload")

        # 2. A valid certificate whose key is not in place yet.
        new_pair = self.pki.issue_client("rotated-broken")
        with open(new_pair.crt, "rb") as f:
            harness.replace_file_atomically(os.path.join(tls_dir, "tls.crt"), f.read())
        sidecar.wait_log(r"tls reload refused: cluster=c\b", count=2)
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?broken=2")[0], 200)
        self.assertEqual(self.nginx_serial_for(nginx, "broken=2")[0], old_serial)

        # 3. The key arrives: the new pair is taken.
        with open(new_pair.key, "rb") as f:
            harness.replace_file_atomically(os.path.join(tls_dir, "tls.key"), f.read())
        sidecar.wait_log(r"tls reloaded: cluster=c generation=\d+")
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?fixed=1")[0], 200)
        self.assertEqual(self.nginx_serial_for(nginx, "fixed=1")[0],
                         self.pki.serial(new_pair.crt))
        self.assertTrue(sidecar.is_running())


if __name__ == "__main__":
    unittest.main()
