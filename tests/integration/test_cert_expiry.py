"""Certificate expiry is loud (issue 11, item 1). A certificate in use that
expires while the sidecar runs, from a file, from the control plane's SDS (the
xDS backup file included) or from the identity agent, is logged as an error
(once, then at a slow repeat), counted in /stats and /stats/prometheus
(Envoy's server.days_until_first_cert_expiring, a gauge per certificate),
marked "expired" in /certs and /clusters, and, when the operator asks for it,
fails /ready. A certificate past its warning share of its lifetime is logged
as a warning and marked "expiring". A rotation to a fresh certificate clears
all of it.

The certificates are real, made at test time with the certs CLI: a short
lifetime (a few seconds) for those that must expire while the sidecar runs.
Every wait is for the event itself (a log line, an admin page), with a
generous deadline."""

import os
import re

from tests.lib import harness
from tests.lib.control_plane import (XdsServer, backend_resources, wait_serving, write_resources,
                                     xds_bootstrap, xds_server_certificates)
from tests.lib.harness import (CLIENT_URI, cluster_tls, http_get, normalize_serial,
                               replace_file_atomically)

HELLO = b"hello from nginx\n"
# Long enough for the sidecar to load the certificate before it expires,
# also under the sanitizers on a busy machine.
SHORT_TTL_S = 8
# How long a test waits for a certificate of SHORT_TTL_S to expire and be
# reported.
EXPIRY_WAIT_S = SHORT_TTL_S + 40
DAYS_STAT = "server.days_until_first_cert_expiring"
# mtls_sidecar_certificate_expiry_seconds{source="file",name="/x",kind="leaf",serial="ab"} -3
GAUGE = re.compile(r'^mtls_sidecar_(certificate_\w+)\{source="([^"]*)",name="((?:[^"\\]|\\.)*)",'
                   r'kind="(leaf|ca)",serial="([0-9a-f]+)"\} (-?\d+)$', re.MULTILINE)


def certificate_gauges(sidecar, family="certificate_expiry_seconds"):
    """certificate_gauges returns {(source, name, kind, serial): value} of one
    per-certificate family of /stats/prometheus."""
    status, text = sidecar.admin_get("/stats/prometheus")
    assert status == 200, text
    return {(m.group(2), m.group(3), m.group(4), normalize_serial(m.group(5))): int(m.group(6))
            for m in GAUGE.finditer(text) if m.group(1) == family}


def prometheus_value(sidecar, name):
    """prometheus_value returns the value of the unlabelled sample `name`."""
    text = sidecar.admin_get("/stats/prometheus")[1]
    match = re.search(rf"^{re.escape(name)} (-?\d+)$", text, re.MULTILINE)
    assert match, f"no {name} in /stats/prometheus:\n{text[:3000]}"
    return int(match.group(1))


def current_context(sidecar, cluster_name="c"):
    """current_context returns the /certs entry of the context the cluster
    uses now."""
    for entry in sidecar.admin_json("/certs")["certificates"]:
        if entry.get("current") and cluster_name in entry["cluster"]:
            return entry
    raise AssertionError(f"no current context for {cluster_name} in /certs")


def cluster_certificate(sidecar, cluster_name="c"):
    """cluster_certificate returns /clusters' tls.certificate of a cluster."""
    for c in sidecar.admin_json("/clusters?format=json")["cluster_statuses"]:
        if c["name"] == cluster_name:
            return c["tls"]["certificate"]
    raise AssertionError(f"cluster {cluster_name} not in /clusters")


def copy_pair(pair, folder):
    """copy_pair puts `pair` at folder/tls.crt and tls.key, each file
    replaced in one rename (the sidecar watches the folder)."""
    for source, name in ((pair.key, "tls.key"), (pair.crt, "tls.crt")):
        with open(source, "rb") as f:
            replace_file_atomically(os.path.join(folder, name), f.read())
    return harness.CertPair(os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key"))


def wait_expired_line(sidecar, what, name, serial):
    """wait_expired_line waits for the error that the certificate `serial`
    (a `what` from `name`, e.g. "file /x/tls.crt") has expired."""
    return sidecar.wait_log(rf" error certificate expired: {what} \({re.escape(name)}, serial "
                            rf"0*{serial}\b.* and is still in use", timeout=EXPIRY_WAIT_S)


class CertExpiryTest(harness.IntegrationTest):

    def short_lived_client(self, name):
        """short_lived_client issues a client certificate that expires
        SHORT_TTL_S seconds from now."""
        return self.pki.issue(name, cn="client", uris=[CLIENT_URI], client=True,
                              ttl=f"{SHORT_TTL_S}s")

    def start_with_client(self, pair, **config_extra):
        """start_with_client starts nginx (requiring a client certificate
        from pki.ca) and a sidecar whose cluster `c` presents a copy of
        `pair` from a folder of its own; returns (nginx, sidecar, the
        copy)."""
        nginx = self.start_https()
        presented = copy_pair(pair, self.tmp.mkdir("tls"))
        tls = cluster_tls(self.pki, certificate=presented.crt, private_key=presented.key)
        return nginx, self.simple_sidecar(nginx.port, tls, **config_extra), presented

    def rotate(self, sidecar, presented, cluster_name="c"):
        """rotate puts a fresh client certificate (2.5 days) in place of
        `presented` and waits until the cluster uses it and the workers have
        taken it up; returns its serial."""
        fresh = self.pki.issue(f"fresh-{self._testMethodName}", cn="client", uris=[CLIENT_URI],
                               client=True, ttl="60h")
        copy_pair(fresh, os.path.dirname(presented.crt))
        serial = self.pki.serial(fresh.crt)
        harness.wait_until(
            lambda: normalize_serial(
                current_context(sidecar, cluster_name)["cert_chain"][0]["serial_number"]) == serial,
            what="the cluster to present the fresh certificate")
        sidecar.wait_workers_current()
        return serial

    def test_a_client_certificate_that_expires_while_running_is_loud(self):
        short = self.short_lived_client("short-lived")
        nginx, sidecar, presented = self.start_with_client(short)
        serial = self.pki.serial(short.crt)
        port = sidecar.listener_port()

        # The error line, as soon as it expired.
        lines = wait_expired_line(sidecar, "client certificate", f"file {presented.crt}",
                                       serial)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("cluster c", lines[0])
        # It is still presented (the data path does not change), and nginx
        # refuses it as the issue saw: 400 after the handshake.
        self.assertEqual(http_get(port, "/hello.txt")[0], 400)
        # Envoy's gauge, clamped at 0 as Envoy's, in both formats.
        self.assertEqual(sidecar.stats()[DAYS_STAT], 0)
        self.assertEqual(prometheus_value(sidecar, "mtls_sidecar_server_days_until_first_cert_"
                                                   "expiring"), 0)
        # A gauge per certificate: the leaf's is negative, the CA's is not.
        gauges = certificate_gauges(sidecar)
        self.assertLess(gauges[("file", presented.crt, "leaf", serial)], 0, gauges)
        ca_serial = self.pki.serial(self.pki.ca_crt)
        self.assertGreater(gauges[("file", self.pki.ca_crt, "ca", ca_serial)], 0, gauges)
        # /stats' filter picks them by the names docs/stats.md gives them.
        status, text = sidecar.admin_get("/stats/prometheus?filter=certificate%5C.expiry_seconds")
        self.assertEqual(status, 200, text)
        self.assertIn("mtls_sidecar_certificate_expiry_seconds{", text)
        self.assertNotIn("mtls_sidecar_certificate_expiration_timestamp_seconds{", text)
        self.assertNotIn("days_until_first_cert_expiring", text)
        ends = certificate_gauges(sidecar, "certificate_expiration_timestamp_seconds")
        inspected = self.pki.inspect(short.crt)
        self.assertIn(("file", presented.crt, "leaf", serial), ends)
        # /certs and /clusters say so.
        context = current_context(sidecar)
        leaf = context["cert_chain"][0]
        self.assertEqual(leaf["state"], "expired", leaf)
        self.assertLess(leaf["seconds_until_expiration"], 0)
        self.assertEqual(leaf["days_until_expiration"], -1)
        self.assertEqual(leaf["expiration_time"], inspected["expiration_time"])
        self.assertEqual([c["state"] for c in context["ca_cert"]], ["valid"])
        certificate = cluster_certificate(sidecar)
        self.assertEqual(certificate["state"], "expired", certificate)
        self.assertEqual(normalize_serial(certificate["serial_number"]), serial)
        # /ready stays LIVE unless the operator asks otherwise.
        self.assertEqual(sidecar.admin_get("/ready"), (200, "LIVE\n"))

        # A rotation clears it all.
        fresh_serial = self.rotate(sidecar, presented)
        self.assertEqual(current_context(sidecar)["cert_chain"][0]["state"], "valid")
        self.assertEqual(cluster_certificate(sidecar)["state"], "valid")
        self.assertEqual(sidecar.stats()[DAYS_STAT], 2)
        gauges = certificate_gauges(sidecar)
        self.assertNotIn(("file", presented.crt, "leaf", serial), gauges)
        self.assertGreater(gauges[("file", presented.crt, "leaf", fresh_serial)], 59 * 3600)
        self.assertEqual(http_get(port, "/hello.txt"), (200, HELLO))
        sidecar.wait_log(rf" info certificate no longer in use: client certificate "
                         rf"\(file {re.escape(presented.crt)}, serial 0*{serial}\), which was "
                         r"expired")
        self.assertEqual(len(sidecar.log_lines(" error certificate expired: ")), 1)

    def test_a_certificate_past_its_warning_share_is_a_warning(self):
        # Valid from 9 hours ago for 10 hours: 90% of its lifetime has passed.
        old = self.pki.issue("old", cn="client", uris=[CLIENT_URI], client=True,
                             not_before="-9h", ttl=f"{10 * 3600 - 300}s")
        nginx, sidecar, presented = self.start_with_client(old)
        serial = self.pki.serial(old.crt)
        pattern = (rf" warn certificate expiring: client certificate \(file "
                   rf"{re.escape(presented.crt)}, serial 0*{serial}, [^)]*cluster c\) is past 80% "
                   r"of its lifetime .* and still in use, not replaced; it expires in (59m|1h 0m)")
        sidecar.wait_log(pattern)
        self.assertEqual(current_context(sidecar)["cert_chain"][0]["state"], "expiring")
        self.assertEqual(cluster_certificate(sidecar)["state"], "expiring")
        seconds = certificate_gauges(sidecar)[("file", presented.crt, "leaf", serial)]
        self.assertTrue(3000 < seconds <= 3600, seconds)
        self.assertEqual(sidecar.stats()[DAYS_STAT], 0)  # less than a day left
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))
        # Said once, not at every check: a reload publishes and checks again.
        sidecar.reload(sidecar.config, r"configuration applied: .* \(snapshot \d+\)")
        self.assertEqual(len(sidecar.log_lines(pattern)), 1)
        self.assertEqual(sidecar.log_lines(" error certificate "), [])

        # With the warning at 95% the same certificate is valid and quiet.
        quiet = self.simple_sidecar(nginx.port, cluster_tls(self.pki, certificate=presented.crt,
                                                            private_key=presented.key),
                                    name="quiet", certificates={"warn_lifetime_percent": 95})
        self.assertEqual(current_context(quiet)["cert_chain"][0]["state"], "valid")
        self.assertEqual(quiet.log_lines("certificate expiring"), [])

    def test_ready_fails_on_an_expired_certificate_when_asked(self):
        short = self.short_lived_client("short-lived-ready")
        nginx, sidecar, presented = self.start_with_client(
            short, certificates={"ready_fails_on_expired": True})
        self.assertEqual(sidecar.admin_get("/ready")[0], 200)
        harness.wait_until(lambda: sidecar.admin_get("/ready") ==
                           (503, "NOT READY: a certificate the sidecar presents has expired "
                                 "(certificates.ready_fails_on_expired; see /certs)\n"),
                           timeout=EXPIRY_WAIT_S, what="/ready to fail on the expired certificate")
        wait_expired_line(sidecar, "client certificate", f"file {presented.crt}",
                               self.pki.serial(short.crt))
        self.rotate(sidecar, presented)
        self.assertEqual(sidecar.admin_get("/ready"), (200, "LIVE\n"))

    def test_an_expired_ca_in_the_trust_bundle_is_counted_but_ready_stays(self):
        # A bundle with the CA that signs nginx and a CA that ends in 2 s (a
        # root kept in the bundle until it ends, as in a CA rotation).
        ending_ca = self.tmp.join("ending-ca")
        self.pki.run("ca", "--out", ending_ca, "--cn", "ending-ca", "--ttl", "2s")
        bundle = self.tmp.join("bundle.crt")
        with open(bundle, "wb") as out:
            for path in (self.pki.ca_crt, os.path.join(ending_ca, "ca.crt")):
                with open(path, "rb") as f:
                    out.write(f.read())
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(self.pki, trusted_ca=bundle),
                                      certificates={"ready_fails_on_expired": True})
        ending_serial = self.pki.serial(os.path.join(ending_ca, "ca.crt"))
        line = wait_expired_line(sidecar, "trusted CA certificate", f"file {bundle}",
                                      ending_serial)[0]
        self.assertIn("CN=ending-ca", line)
        self.assertIn("peer certificates that chain only to it fail verification", line)
        self.assertEqual(sidecar.stats()[DAYS_STAT], 0)
        gauges = certificate_gauges(sidecar)
        self.assertLess(gauges[("file", bundle, "ca", ending_serial)], 0)
        states = {normalize_serial(c["serial_number"]): c["state"]
                  for c in current_context(sidecar)["ca_cert"]}
        self.assertEqual(states, {self.pki.serial(self.pki.ca_crt): "valid",
                                  ending_serial: "expired"})
        # Only what the sidecar presents fails /ready; the other root still
        # verifies the upstream.
        self.assertEqual(sidecar.admin_get("/ready"), (200, "LIVE\n"))
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt"), (200, HELLO))


# ---- from the control plane ----------------------------------------------------------

NODE_ID = "orders.shop"
NODE_SPIFFE_ID = "spiffe://cluster.local/ns/shop/sa/orders"


class ControlPlaneCertExpiryTest(harness.IntegrationTest):
    """The certificates the control plane gives (SDS, also from the backup
    file), the identity agent's, and the control plane credential."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.xds_tls, cls.bootstrap_ca_dir, cls.bootstrap = xds_server_certificates(
            cls.pki, NODE_SPIFFE_ID)

    def start_mesh(self, cert_ttl, **sidecar_extra):
        """start_mesh starts nginx, xds-server (the workload CA, certificates
        of `cert_ttl`) serving cluster `backend` and listener `backend-in`,
        and a sidecar that takes them; returns (control plane, sidecar,
        listener port)."""
        nginx = self.start_https()
        config_dir = self.tmp.mkdir("resources")
        port = harness.free_port()
        write_resources(os.path.join(config_dir, "backend.json"),
                        backend_resources([nginx.port], port))
        control_plane = XdsServer(self.tmp.mkdir("xds-server"), self.xds_tls, self.pki.ca_dir,
                                  config_dir, cert_ttl=cert_ttl,
                                  client_ca=os.path.join(self.bootstrap_ca_dir, "ca.crt"),
                                  args=["--serve-workload-keys"])
        self.addCleanup(control_plane.finish)
        control_plane.start()
        xds = xds_bootstrap(control_plane.port, self.bootstrap, self.pki.ca_crt, NODE_ID,
                            "orders", initial_fetch_timeout_ms=5000)
        xds.update(sidecar_extra.pop("xds_extra", {}))
        sidecar = self.start_sidecar(harness.config([], [], xds=xds, **sidecar_extra))
        wait_serving(control_plane, NODE_ID)
        return control_plane, sidecar, port

    def check_control_plane_credential(self, sidecar):
        """The bootstrap certificate and its CA are in use: shown in /certs'
        xds_client and counted in /stats/prometheus."""
        shown = {(c["path"], normalize_serial(c["serial_number"]), c["state"])
                 for c in sidecar.admin_json("/certs")["xds_client"]}
        bootstrap_serial = self.pki.serial(self.bootstrap.crt)
        self.assertEqual(shown, {(self.bootstrap.crt, bootstrap_serial, "valid"),
                                 (self.pki.ca_crt, self.pki.serial(self.pki.ca_crt), "valid")})
        gauges = certificate_gauges(sidecar)
        self.assertGreater(gauges[("xds_client", self.bootstrap.crt, "leaf", bootstrap_serial)], 0)

    def test_an_sds_certificate_served_from_the_backup_expires_loudly(self):
        backup = self.tmp.join("xds-backup.json")
        control_plane, sidecar, port = self.start_mesh("30s", xds_extra={"backup_path": backup})
        self.check_control_plane_credential(sidecar)
        # Right after a rotation, the control plane goes away and the
        # sidecar restarts (a clean stop writes the backup): it serves the
        # backup's certificate, which nobody renews any more.
        rotated = r"tls reloaded: cluster=backend generation=\d+ serial=([0-9a-f]+)"
        lines = sidecar.wait_log(rotated, count=len(sidecar.log_lines(rotated)) + 1, timeout=60)
        serial = normalize_serial(re.search(rotated, lines[-1]).group(1))
        self.assertEqual(control_plane.stop(), 0)
        self.assertEqual(sidecar.stop(), 0)
        restarted = self.make_sidecar(sidecar.config, name="restarted").start()
        restarted.wait_log(r"xds: the control plane is unreachable; serving the last "
                           r"configuration it gave")
        lines = wait_expired_line(restarted, "client certificate", "sds default", serial)
        self.assertIn("cluster backend", lines[0])
        self.assertEqual(restarted.stats()[DAYS_STAT], 0)
        self.assertLess(certificate_gauges(restarted)[("sds", "default", "leaf", serial)], 0)
        self.assertEqual(current_context(restarted, "backend")["cert_chain"][0]["state"],
                         "expired")
        self.assertEqual(cluster_certificate(restarted, "backend")["state"], "expired")
        self.assertEqual(http_get(port, "/hello.txt")[0], 400)

    def test_the_identity_agents_certificate_expires_loudly_when_its_ca_is_gone(self):
        control_plane, sidecar, port = self.start_mesh("20s", identity={})
        self.check_control_plane_credential(sidecar)
        # Right after a renewal, the CA goes away: nothing renews any more.
        renewals = len(sidecar.log_lines(r"identity: certificate "))
        lines = sidecar.wait_log(r"identity: certificate ", count=renewals + 1, timeout=60)
        serial = normalize_serial(re.search(r"serial=([0-9a-f]+)", lines[-1]).group(1))
        control_plane.kill()
        lines = wait_expired_line(sidecar, "client certificate", "identity default", serial)
        self.assertIn("cluster backend", lines[0])
        local = sidecar.admin_json("/certs")["local_identity"]
        self.assertEqual(local["certificate_state"], "expired")
        self.assertLess(local["seconds_until_expiration"], 0)
        self.assertLess(certificate_gauges(sidecar)[("identity", "default", "leaf", serial)], 0)
        self.assertEqual(sidecar.stats()[DAYS_STAT], 0)
        self.assertEqual(cluster_certificate(sidecar, "backend")["state"], "expired")


if __name__ == "__main__":
    import unittest
    unittest.main()
