"""The sidecar follows its trust bundles without a restart, as Kubernetes
delivers them: ConfigMap volumes (trust-manager) that kubelet updates by
writing a new `..YYYY_MM_DD...` folder and renaming a `..data` symlink over
the old one. The mesh is the real one: xds-server is the control plane and
the workload CA (Istio CA API), the sidecar is its own identity agent, nginx
is the upstream.

* The workload CA rotates: identity.trust_bundle_file becomes old+new CA,
  ROOTCA is published again, nginx moves to a certificate from the new CA:
  new connections through the sidecar succeed, and a connection opened before
  the swap goes on.
* A trust bundle that holds no certificate is refused: counted, logged, the
  last good bundle keeps serving and /certs still shows it.
* The control plane's serving CA rotates: the sidecar's xds.tls.trusted_ca
  becomes old+new (the open stream stays), xds-server restarts with a
  certificate from the new CA, and the sidecar reconnects to it; the
  identity agent's next CSR (over the same xds.tls) goes through too.
"""

import http.client
import os
import pathlib
import re
import sys
import time
import unittest

from tests.lib import harness
from tests.lib.control_plane import (XDS_SERVER_NAME, XdsServer, backend_resources, wait_serving,
                                     write_resources, xds_bootstrap, xds_server_certificates,
                                     xds_status)
from tests.lib.harness import SERVER_NAME, http_get, normalize_serial
from tests.lib.pki import CertPair

NODE_ID = "orders.shop"
NODE_SPIFFE_ID = "spiffe://cluster.local/ns/shop/sa/orders"
HELLO = b"hello from nginx\n"


class KubeletVolume:
    """KubeletVolume is a folder laid out as kubelet lays out a ConfigMap or
    Secret volume: each file is a symlink through `..data`, itself a symlink
    to the folder of the current version (`..2026_12_06_10_00_00.N`); an
    update writes a new version folder and renames a new `..data` over the
    old one, then removes the old folder, as kubelet's AtomicWriter does."""

    def __init__(self, folder):
        self.folder = folder
        self.version = 0
        self.current = None
        os.makedirs(folder, exist_ok=True)

    def path(self, name):
        return os.path.join(self.folder, name)

    def put(self, files):
        """put swaps in a new version holding `files` ({name: bytes})."""
        self.version += 1
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
        version_dir = f"..{stamp}.{self.version}"
        os.mkdir(self.path(version_dir))
        for name, data in files.items():
            pathlib.Path(self.path(version_dir), name).write_bytes(data)
            if not os.path.islink(self.path(name)):
                os.symlink(os.path.join("..data", name), self.path(name))
        os.symlink(version_dir, self.path("..data_tmp"))
        os.replace(self.path("..data_tmp"), self.path("..data"))
        if self.current:
            for name in os.listdir(self.path(self.current)):
                os.unlink(os.path.join(self.path(self.current), name))
            os.rmdir(self.path(self.current))
        self.current = version_dir


def report(what):
    """report prints a measured number to the test log."""
    print(f"[measured] {what}", file=sys.stderr, flush=True)


def read(path):
    return pathlib.Path(path).read_bytes()


class TrustReloadTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The workload CA is the Pki's CA (xds-server signs with it, nginx's
        # first certificate is from it); the bootstrap certificates come
        # from a CA of their own.
        cls.xds_tls, cls.bootstrap_ca_dir, cls.bootstrap = xds_server_certificates(
            cls.pki, NODE_SPIFFE_ID)

    def setUp(self):
        super().setUp()
        self.control_planes = []
        self.addCleanup(self._check_control_plane_sanitizers)

    def _check_control_plane_sanitizers(self):
        reports = [line for c in self.control_planes for line in c.sanitizer_reports()]
        if reports:
            self.fail("xds-server's sanitizers reported:\n" + "\n".join(reports))

    # ---- the mesh ------------------------------------------------------------------

    def start_upstream(self):
        """start_upstream runs nginx whose certificate for upstream.test is read
        at each handshake from one file (certificate and key together), so
        that move_nginx changes it at once. No session resumption: every
        connection verifies nginx's certificate against the bundle in force
        (a resumed session would not)."""
        self.nginx_dir = self.tmp.mkdir("nginx-certificate")
        self.move_nginx(self.pki.server)
        served = CertPair(os.path.join(self.nginx_dir, "$ssl_server_name.pem"),
                          os.path.join(self.nginx_dir, "$ssl_server_name.pem"))
        return self.start_https(server=served, session_resumption=False)

    def move_nginx(self, pair):
        pem = read(pair.crt) + read(pair.key)
        harness.replace_file_atomically(os.path.join(self.nginx_dir, SERVER_NAME + ".pem"), pem)

    def start_mesh(self, nginx_port, cert_ttl="1h", xds_tls_volume=None):
        """start_mesh starts xds-server (its serving certificate from
        `xds_tls_volume` when given) serving cluster `backend` to nginx and
        listener `backend-in`, and a sidecar that is its own identity agent
        with its trust bundle and its xds.tls.trusted_ca in kubelet volumes
        (self.bundle, self.bootstrap_trust). Returns (control plane, sidecar,
        listener port)."""
        config_dir = self.tmp.mkdir("resources")
        port = harness.free_port()
        write_resources(os.path.join(config_dir, "backend.json"),
                        backend_resources([nginx_port], port))
        tls = self.xds_tls
        if xds_tls_volume:
            tls = CertPair(xds_tls_volume.path("tls.crt"), xds_tls_volume.path("tls.key"))
        control_plane = XdsServer(self.tmp.mkdir("xds-server"), tls, self.pki.ca_dir, config_dir,
                                  cert_ttl=cert_ttl,
                                  client_ca=os.path.join(self.bootstrap_ca_dir, "ca.crt"))
        self.addCleanup(control_plane.finish)
        self.control_planes.append(control_plane)
        control_plane.start()

        self.bundle = KubeletVolume(self.tmp.mkdir("workload-trust"))
        self.bundle.put({"ca.crt": read(self.pki.ca_crt)})
        self.bootstrap_trust = KubeletVolume(self.tmp.mkdir("bootstrap-trust"))
        self.bootstrap_trust.put({"ca.crt": read(self.pki.ca_crt)})
        xds = xds_bootstrap(control_plane.port, self.bootstrap, self.bootstrap_trust.path("ca.crt"),
                            NODE_ID, "orders", initial_fetch_timeout_ms=5000)
        identity = {"trust_bundle_file": self.bundle.path("ca.crt")}
        sidecar = self.start_sidecar(harness.config([], [], xds=xds, identity=identity))
        wait_serving(control_plane, NODE_ID)
        sidecar.wait_ready()
        return control_plane, sidecar, port

    def bundle_serials(self, sidecar):
        bundle = sidecar.admin_json("/certs")["local_identity"]["trust_bundle"]
        return sorted(normalize_serial(c["serial_number"]) for c in bundle["certificates"])

    def rootca_serials(self, sidecar):
        """The CAs the current context of cluster backend (the only one) trusts."""
        certs = [c for c in sidecar.admin_json("/certs")["certificates"] if c.get("current", True)]
        return sorted({normalize_serial(ca["serial_number"]) for c in certs
                       for ca in c.get("ca_cert", [])})

    # ---- the workload CA -------------------------------------------------------------

    def test_the_workload_ca_rotates_through_the_trust_bundle_file(self):
        nginx = self.start_upstream()
        control_plane, sidecar, port = self.start_mesh(nginx.port)
        old_serial = self.pki.serial(self.pki.ca_crt)
        new_serial = self.pki.serial(self.pki.other_ca_crt)
        self.assertEqual(self.bundle_serials(sidecar), [old_serial])
        self.assertEqual(http_get(port, "/hello.txt?before=1"), (200, HELLO))
        # A keep-alive connection opened before anything changes.
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(kept.close)
        kept.request("GET", "/hello.txt?kept=1", headers={"Host": SERVER_NAME})
        response = kept.getresponse()
        self.assertEqual((response.status, response.read()), (200, HELLO))

        # trust-manager adds the new CA: kubelet swaps ..data.
        began = time.monotonic()
        self.bundle.put({"ca.crt": read(self.pki.ca_crt) + read(self.pki.other_ca_crt)})
        harness.wait_until(lambda: sidecar.stat("identity_trust_bundle_reloads") == 1,
                           what="the trust bundle's reload")
        report(f"trust bundle: reloaded {(time.monotonic() - began) * 1000:.0f} ms after the "
               f"..data swap (200 ms of it the watcher's settling)")
        sidecar.wait_log(r"identity: trust bundle \S+ reloaded: 2 certificates \(serial ")
        sidecar.wait_workers_current()
        self.assertEqual(self.bundle_serials(sidecar), sorted([old_serial, new_serial]))
        harness.wait_until(lambda: self.rootca_serials(sidecar) == sorted([old_serial,
                                                                           new_serial]),
                           what="ROOTCA with both CAs in cluster backend's context")

        # nginx moves to a certificate from the new CA (same key: nginx opens
        # certificate and key separately).
        renewed = self.pki.issue("renewed-server", ca_dir=self.pki.other_ca_dir, cn=SERVER_NAME,
                                 dns=[SERVER_NAME], server=True, key=self.pki.server.key)
        self.move_nginx(renewed)
        for i in range(5):
            self.assertEqual(http_get(port, f"/hello.txt?after={i}"), (200, HELLO))
        kept.request("GET", "/hello.txt?kept=2", headers={"Host": SERVER_NAME})
        response = kept.getresponse()
        self.assertEqual((response.status, response.read()), (200, HELLO))
        self.assertEqual(sidecar.stat("identity_trust_bundle_reload_failure"), 0)
        self.assertEqual(len(sidecar.log_lines(r"identity: trust bundle \S+ reloaded")), 1)
        self.assertEqual(sidecar.stat("ssl_session_reused"), 0)

    def test_a_trust_bundle_without_a_certificate_is_refused(self):
        nginx = self.start_upstream()
        control_plane, sidecar, port = self.start_mesh(nginx.port)
        old_serial = self.pki.serial(self.pki.ca_crt)
        self.bundle.put({"ca.crt": b"-----BEGIN CERTIFICATE-----\ngarbage\n"
                                   b"-----END CERTIFICATE-----\n"})
        harness.wait_until(lambda: sidecar.stat("identity_trust_bundle_reload_failure") == 1,
                           what="the garbage bundle to be refused")
        sidecar.wait_log(r"identity: trust bundle \S+ refused: .*; the last good bundle stays")
        bundle = sidecar.admin_json("/certs")["local_identity"]["trust_bundle"]
        self.assertTrue(bundle["last_error"], bundle)
        self.assertEqual(self.bundle_serials(sidecar), [old_serial])
        self.assertEqual(self.rootca_serials(sidecar), [old_serial])
        self.assertEqual(sidecar.stat("identity_trust_bundle_reloads"), 0)
        self.assertEqual(http_get(port, "/hello.txt?after-garbage=1"), (200, HELLO))
        # An empty file too; then a good one again is taken.
        self.bundle.put({"ca.crt": b""})
        harness.wait_until(lambda: sidecar.stat("identity_trust_bundle_reload_failure") == 2,
                           what="the empty bundle to be refused")
        self.bundle.put({"ca.crt": read(self.pki.ca_crt) + read(self.pki.other_ca_crt)})
        harness.wait_until(lambda: sidecar.stat("identity_trust_bundle_reloads") == 1,
                           what="the good bundle after the garbage")
        self.assertIsNone(sidecar.admin_json("/certs")["local_identity"]["trust_bundle"]
                          ["last_error"])
        self.assertEqual(http_get(port, "/hello.txt?after-good=1"), (200, HELLO))

    # ---- the control plane's serving CA --------------------------------------------------

    def test_the_control_plane_ca_rotates_and_the_sidecar_reconnects(self):
        nginx = self.start_upstream()
        xds_volume = KubeletVolume(self.tmp.mkdir("xds-server-tls"))
        xds_volume.put({"tls.crt": read(self.xds_tls.crt), "tls.key": read(self.xds_tls.key)})
        control_plane, sidecar, port = self.start_mesh(nginx.port, cert_ttl="20s",
                                                       xds_tls_volume=xds_volume)
        established = sidecar.stat("xds_stream_established")
        new_ca_dir = self.pki.make_ca("xds-ca-2", "xds-ca-2")
        new_ca = os.path.join(new_ca_dir, "ca.crt")

        # trust-manager adds the new CA to the sidecar's bootstrap trust:
        # both channels (ADS and the CA's, which uses xds.tls too) take it
        # for their next connection; the open stream stays.
        self.bootstrap_trust.put({"ca.crt": read(self.pki.ca_crt) + read(new_ca)})
        harness.wait_until(lambda: sidecar.stat("xds_client_tls_reloads") == 2,
                           what="xds.tls reloaded for the ADS and the CA channels")
        sidecar.wait_log(r"xds: the control plane's TLS files changed \(2 trusted CAs\)")
        sidecar.wait_log(r"identity: the CA's TLS files \(xds.tls\) changed \(2 trusted CAs\)")
        self.assertEqual(sidecar.stat("xds_stream_established"), established)
        shown = {normalize_serial(c["serial_number"])
                 for c in sidecar.admin_json("/certs")["xds_client"]}
        self.assertIn(self.pki.serial(new_ca), shown)

        # cert-manager gives xds-server a certificate from the new CA, and
        # the control plane restarts: the sidecar reconnects and verifies it.
        renewed = self.pki.issue("xds-server-new-ca", ca_dir=new_ca_dir, cn=XDS_SERVER_NAME,
                                 dns=[XDS_SERVER_NAME], ips=["127.0.0.1"], server=True)
        xds_volume.put({"tls.crt": read(renewed.crt), "tls.key": read(renewed.key)})
        control_plane.stop()
        control_plane.start()
        began = time.monotonic()
        harness.wait_until(lambda: sidecar.stat("xds_stream_established") > established,
                           timeout=30, what="the sidecar to reconnect to the new certificate")
        report(f"control plane CA: the sidecar reconnected {(time.monotonic() - began) * 1000:.0f}"
               f" ms after the restarted xds-server answered")
        harness.wait_until(
            lambda: xds_status(sidecar.admin_json("/config_dump"))["control_plane"]["state"] ==
            "CONNECTED", what="the ADS stream up again")
        wait_serving(control_plane, NODE_ID)
        # The identity agent's next renewal (20 s certificates) reaches the
        # CA on the new certificate.
        issued = sidecar.stat("identity_csr_success")
        harness.wait_until(lambda: sidecar.stat("identity_csr_success") > issued, timeout=30,
                           what="a renewal over the CA channel after the restart")
        self.assertIsNone(sidecar.admin_json("/certs")["local_identity"]["last_error"])
        self.assertEqual(sidecar.stat("xds_client_tls_reload_failure"), 0)
        self.assertEqual(http_get(port, "/hello.txt?after=1"), (200, HELLO))

    def test_bootstrap_tls_files_that_do_not_load_keep_the_last_context(self):
        nginx = self.start_upstream()
        control_plane, sidecar, port = self.start_mesh(nginx.port)
        established = sidecar.stat("xds_stream_established")
        self.bootstrap_trust.put({"ca.crt": b"not a certificate\n"})
        harness.wait_until(lambda: sidecar.stat("xds_client_tls_reload_failure") == 2,
                           what="xds.tls refused for both channels")
        sidecar.wait_log(r"xds: the control plane's TLS files are refused: xds.tls: ")
        self.assertEqual(sidecar.stat("xds_client_tls_reloads"), 0)
        # The last good context serves the next connection.
        control_plane.stop()
        control_plane.start()
        harness.wait_until(lambda: sidecar.stat("xds_stream_established") > established,
                           timeout=30, what="the sidecar to reconnect with the last good context")
        self.assertEqual(http_get(port, "/hello.txt?after=1"), (200, HELLO))


if __name__ == "__main__":
    unittest.main()
