"""Certificate rotation under load: the sidecar picks up new certificate
files (file rename, Kubernetes ..data symlink swap, SIGHUP) and a new trust
bundle without failing a single request, small or large (a large answer is
held in flight across every change); new connections present the new
certificate; connections opened before keep working. A broken certificate is
refused and the old one keeps serving."""

import http.client
import os
import pathlib
import shutil
import signal
import socket
import ssl
import time
import unittest

from tests.lib import harness
from tests.lib.harness import (SERVER_NAME, CertPair, cluster, cluster_tls, config, http_get,
                                listener, normalize_serial)
from tests.lib.load import LARGE_BODY as BIG, LARGE_BODY_RATE, HeldRequest, RequestLoad

HELLO = b"hello from nginx\n"


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

    def start_pair(self, tls_dir, config_extra=None, server=None, **tls_extra):
        """Starts nginx (serving hello.txt and big.bin, with `server` or
        pki.server) and a sidecar whose client certificate is
        tls_dir/tls.crt and tls.key, trusting tls_dir/ca.crt (more of the
        cluster's tls in tls_extra)."""
        nginx = self.start_https(server=server, files={"hello.txt": HELLO, "big.bin": BIG})
        tls = cluster_tls(self.pki, certificate=os.path.join(tls_dir, "tls.crt"),
                          private_key=os.path.join(tls_dir, "tls.key"),
                          trusted_ca=os.path.join(tls_dir, "ca.crt"), **tls_extra)
        sidecar = self.simple_sidecar(nginx.port, tls, **(config_extra or {}))
        return nginx, sidecar

    def start_traffic(self, port):
        """start_traffic puts a large answer in flight, held there until
        finish_traffic, and starts loads of new connections for small and
        for large answers (the large ones read slowly enough to be in
        flight for about half a second each)."""
        held = HeldRequest(port, "/big.bin", BIG)
        self.addCleanup(held.release)
        held.wait_held()
        small = RequestLoad(port, threads=2)
        big = RequestLoad(port, threads=2, path="/big.bin", expected=BIG, tag="big",
                          bytes_per_second=LARGE_BODY_RATE)
        for load in (small, big):
            self.addCleanup(load.stop)
        small.wait_more(5)
        big.wait_more(2)
        return held, small, big

    def finish_traffic(self, traffic, changes):
        """finish_traffic lets the loads make more requests after the last
        change, releases the held answer and checks that not one request
        failed; `changes` says what happened meanwhile (for the message)."""
        held, small, big = traffic
        small.wait_more(10)
        big.wait_more(2)
        held_failure = held.finish()
        small.stop()
        big.stop()
        failures = small.failures + big.failures + ([held_failure] if held_failure else [])
        self.assertEqual(failures, [], f"requests failed across {changes}")
        self.assertGreaterEqual(small.successes, 15)
        self.assertGreaterEqual(big.successes, 4)
        return held, small, big

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
        """The scenario every rotation shares; `swap(new_pair, sidecar, nginx)`
        puts the new certificate in place (and signals, when it has to).
        Not one request may fail, and a large answer held in flight from
        before the swap reaches its end after the reload."""
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
        self.assertEqual((response.status, response.read()), (200, HELLO))

        reloads_before = len(sidecar.log_lines(r"tls reloaded: cluster=c "))
        traffic = self.start_traffic(sidecar.listener_port())
        swap(new_pair, sidecar, nginx)
        harness.wait_until(lambda: new_serial in self.served_serial(sidecar),
                           what="/certs to show the new certificate")
        sidecar.wait_log(r"tls reloaded: cluster=c generation=\d+", count=reloads_before + 1)
        held, _, _ = self.finish_traffic(traffic, "the client certificate's rotation")

        # New connections present the new certificate; the held answer was
        # carried by the old one to its end.
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?after=1")[0], 200)
        serial, _ = self.nginx_serial_for(nginx, "after=1")
        self.assertEqual(serial, new_serial)
        held_serial, held_entry = self.nginx_serial_for(nginx, held.marker)
        self.assertEqual((held_serial, held_entry["bytes"]), (old_serial, str(len(BIG))))

        # The connection opened before still works, on its old session.
        before.request("GET", "/hello.txt?kept=2", headers={"Host": SERVER_NAME})
        response = before.getresponse()
        self.assertEqual((response.status, response.read()), (200, HELLO))
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

        def swap(pair, sidecar, nginx):
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

        def swap(pair, sidecar, nginx):
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
        # A change to a watched file reloads 200 ms after the burst of events
        # it belongs to has settled: while app.log keeps being written every
        # 20 ms, that reload comes only if app.log's events are ignored
        # (each one that counted would put the reload off again).
        harness.replace_file_atomically(os.path.join(tls_dir, "ca.crt"),
                                        open(self.pki.ca_crt, "rb").read() + b"\n")
        writes_after_reload = None
        for i in range(500):  # 10 s at most
            harness.write_file(os.path.join(tls_dir, "app.log"), f"line {i}\n" * (i + 1))
            if sidecar.log_lines("certificate files changed"):
                writes_after_reload = i
                break
            time.sleep(0.02)
        self.assertIsNotNone(writes_after_reload,
                             f"no reload while app.log was written every 20 ms for 10 s:\n"
                             f"{sidecar.log()}")
        # ...and then the files read again are the watched ones only: once
        # app.log falls quiet, no second reload follows. A change to a watched
        # file is the later event that the second reload would come before.
        harness.replace_file_atomically(os.path.join(tls_dir, "tls.crt"),
                                        open(self.pki.client.crt, "rb").read() + b"\n")
        sidecar.wait_log("certificate files changed", count=2)
        harness.write_file(os.path.join(tls_dir, "app.log"), "quiet\n")
        harness.replace_file_atomically(os.path.join(tls_dir, "tls.key"),
                                        open(self.pki.client.key, "rb").read() + b"\n")
        sidecar.wait_log("certificate files changed", count=3)
        self.assertEqual(len(sidecar.log_lines("certificate files changed")), 3, sidecar.log())

    def test_sighup_reloads_when_watching_is_off(self):
        tls_dir = self.tmp.join("tls")
        self.copy_initial(tls_dir)

        def swap(pair, sidecar, nginx):
            shutil.copy(pair.key, os.path.join(tls_dir, "tls.key"))
            shutil.copy(pair.crt, os.path.join(tls_dir, "tls.crt"))
            # With watch_certificates off, nothing happens until SIGHUP: the
            # next 30 connections (a watcher would reload 200 ms after the
            # write) still present the old certificate at nginx...
            probes = [f"/hello.txt?unwatched={i}" for i in range(30)]
            for path in probes:
                self.assertEqual(http_get(sidecar.listener_port(), path), (200, HELLO))
            old_serial = self.pki.serial(self.pki.client.crt)
            seen = {self.nginx_serial_for(nginx, path.split("?")[1])[0] for path in probes}
            self.assertEqual(seen, {old_serial})
            self.assertNotIn(self.pki.serial(pair.crt), self.served_serial(sidecar))
            # ...and the one reload that comes follows the signal.
            sidecar.send_signal(signal.SIGHUP)
            sidecar.wait_log(r"tls reloaded: cluster=c ")
            log = sidecar.log()
            self.assertLess(log.index("SIGHUP: reloading"), log.index("tls reloaded: cluster=c "),
                            log)

        self.rotate_under_load(tls_dir, swap, {"watch_certificates": False})

    def test_trust_bundle_rotates_with_the_upstream_certificate(self):
        # The upstream's certificate moves to a new CA: the sidecar's bundle
        # gains the new CA, nginx takes a certificate from it, the bundle
        # drops the old CA. Not one request fails on the way, and an answer
        # in flight from before the first change reaches its end after the
        # last one.
        tls_dir = self.tmp.join("tls")
        self.copy_initial(tls_dir)
        # nginx reads ssl_certificate with a variable at each handshake: the
        # certificate moves when the file is replaced. Certificate and key
        # share one file, replaced at once.
        server_dir = self.tmp.mkdir("nginx-certificate")
        served = CertPair(os.path.join(server_dir, "$ssl_server_name.pem"),
                          os.path.join(server_dir, "$ssl_server_name.pem"))
        self.move_upstream_certificate(server_dir, self.pki.server)
        # No session reuse: every connection verifies the upstream's
        # certificate against the bundle in force (a resumed session would not).
        nginx, sidecar = self.start_pair(tls_dir, server=served, session_reuse=False)
        old_ca, new_ca = (pathlib.Path(path).read_bytes() for path in (self.pki.ca_crt,
                                                                         self.pki.other_ca_crt))
        old_ca_serial, new_ca_serial = (self.pki.serial(path) for path in (self.pki.ca_crt,
                                                                           self.pki.other_ca_crt))
        self.assertEqual(self.trusted_serials(sidecar), [old_ca_serial])
        traffic = self.start_traffic(sidecar.listener_port())
        _, small, big = traffic
        reloads = len(sidecar.log_lines(r"tls reloaded: cluster=c "))

        def trust(bundle, serials):
            nonlocal reloads
            harness.replace_file_atomically(os.path.join(tls_dir, "ca.crt"), bundle)
            reloads += 1
            sidecar.wait_log(r"tls reloaded: cluster=c ", count=reloads)
            sidecar.wait_workers_current()
            harness.wait_until(lambda: self.trusted_serials(sidecar) == sorted(serials),
                               what=f"/certs to show the trust bundle {serials}: "
                                    f"{sidecar.admin_json('/certs')}")
            small.wait_more(5)
            big.wait_more(1)
            self.assertEqual(small.failures + big.failures, [])

        trust(old_ca + new_ca, [old_ca_serial, new_ca_serial])
        # The new certificate keeps nginx's key: nginx opens the file once
        # for the certificate and again for the key, so a handshake between
        # the two could pair the old certificate with a new key (an
        # internal_error alert that is nginx's, not the sidecar's).
        renewed = self.pki.issue("renewed-server", ca_dir=self.pki.other_ca_dir,
                                 cn=SERVER_NAME, dns=[SERVER_NAME], server=True,
                                 key=self.pki.server.key)
        self.move_upstream_certificate(server_dir, renewed)
        harness.wait_until(lambda: self.upstream_trusted_by(nginx.port, self.pki.other_ca_crt),
                           what="nginx to present the certificate from the new CA")
        small.wait_more(5)
        big.wait_more(1)
        trust(new_ca, [new_ca_serial])
        self.finish_traffic(traffic, "the trust bundle's rotation")
        # New connections verify the new certificate against the new bundle.
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?after=1"), (200, HELLO))
        self.assertEqual(harness.host_stat(sidecar.hosts("c")[0], "ssl_handshake_failures"), 0)
        self.assertEqual(sidecar.stat("ssl_session_reused"), 0)

    def move_upstream_certificate(self, server_dir, pair):
        """The certificate and key nginx serves for upstream.test, in one
        file replaced at once."""
        pem = b"".join(pathlib.Path(path).read_bytes() for path in (pair.crt, pair.key))
        harness.replace_file_atomically(os.path.join(server_dir, SERVER_NAME + ".pem"), pem)

    def trusted_serials(self, sidecar):
        """The serials of the CAs the current context of cluster c trusts."""
        certs = [c for c in sidecar.admin_json("/certs")["certificates"] if c.get("current", True)]
        return sorted(normalize_serial(ca["serial_number"]) for c in certs for ca in c["ca_cert"])

    def upstream_trusted_by(self, port, ca_file):
        """upstream_trusted_by is True when 127.0.0.1:port completes a
        handshake for upstream.test whose certificate ca_file verifies."""
        context = ssl.create_default_context(cafile=ca_file)
        context.load_cert_chain(self.pki.client.crt, self.pki.client.key)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=SERVER_NAME):
                return True

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
        sidecar.wait_workers_current()
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt?fixed=1")[0], 200)
        self.assertEqual(self.nginx_serial_for(nginx, "fixed=1")[0],
                         self.pki.serial(new_pair.crt))
        self.assertTrue(sidecar.is_running())


if __name__ == "__main__":
    unittest.main()
