"""A request through the sidecar reaches nginx over mutual TLS, with the
TLS version the cluster asks for and the sidecar's own client certificate."""

import os
import shutil
import unittest

from tests.lib import harness
from tests.lib.harness import SERVER_NAME, cluster_tls, http_get, normalize_serial


class RoundTripTest(harness.IntegrationTest):

    def assert_round_trip(self, sidecar, nginx, protocol=None, server_name=SERVER_NAME):
        status, body = http_get(sidecar.listener_port(), "/hello.txt")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"hello from nginx\n")
        entry = nginx.wait_access_entries(1)[-1]
        if protocol:
            self.assertEqual(entry["protocol"], protocol)
        self.assertEqual(entry["client_verify"], "SUCCESS")
        self.assertEqual(normalize_serial(entry["client_serial"]),
                         self.pki.serial(self.pki.client.crt))
        self.assertEqual(entry["server_name"], server_name)

    def test_tls_1_2(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(self.pki, protocols=["TLSv1.2"]))
        self.assert_round_trip(sidecar, nginx, "TLSv1.2")

    def test_tls_1_3(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(self.pki, protocols=["TLSv1.3"]))
        self.assert_round_trip(sidecar, nginx, "TLSv1.3")

    def test_default_protocols_negotiate_tls_1_3(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port)
        self.assert_round_trip(sidecar, nginx, "TLSv1.3")

    def test_listener_up_is_logged(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port)
        port = sidecar.listener_port()
        sidecar.wait_log(rf"listening: listener=l address=127\.0\.0\.1:{port}\b")

    def test_ip_endpoint_without_server_name_sends_no_sni_and_checks_the_ip_san(self):
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(self.pki, server_name=None))
        # nginx logs an empty $ssl_server_name when the client sent no SNI.
        self.assert_round_trip(sidecar, nginx, server_name="")

    def test_encrypted_private_key_with_password_file(self):
        password_file = self.tmp.join("key-password")
        harness.write_file(password_file, "correct horse battery staple\n", mode=0o600)
        pair = self.pki.issue(f"encrypted-{self._testMethodName}", cn="client",
                              uris=[harness.CLIENT_URI], client=True,
                              key_password_file=password_file)
        with open(pair.key) as f:
            self.assertIn("ENCRYPTED", f.read())
        nginx = self.start_https()
        sidecar = self.simple_sidecar(nginx.port, cluster_tls(
            self.pki, certificate=pair.crt, private_key=pair.key, password_file=password_file))
        self.assertEqual(http_get(sidecar.listener_port(), "/hello.txt")[0], 200)
        entry = nginx.wait_access_entries(1)[-1]
        self.assertEqual(normalize_serial(entry["client_serial"]), self.pki.serial(pair.crt))
        # Where the password lives is as secret as the key.
        dump = sidecar.admin_get("/config_dump")[1]
        self.assertNotIn(password_file, dump)
        self.assertNotIn("correct horse", dump)

    def test_encrypted_private_key_with_the_wrong_password_stops_startup(self):
        password_file = self.tmp.join("key-password")
        harness.write_file(password_file, "correct horse battery staple\n", mode=0o600)
        wrong_file = self.tmp.join("wrong-password")
        harness.write_file(wrong_file, "wrong\n", mode=0o600)
        pair = self.pki.issue(f"encrypted-{self._testMethodName}", cn="client",
                              uris=[harness.CLIENT_URI], client=True,
                              key_password_file=password_file)
        c = harness.cluster("c", [f"127.0.0.1:{harness.free_port()}"], cluster_tls(
            self.pki, certificate=pair.crt, private_key=pair.key, password_file=wrong_file))
        sidecar = self.make_sidecar(harness.config([harness.listener("l", "c")], [c]))
        self.assertNotEqual(sidecar.start_refused(), 0)
        self.assertIn(pair.key, sidecar.log())
        self.assertNotIn("correct horse", sidecar.log())

    def test_relative_paths_resolve_against_the_config_folder(self):
        nginx = self.start_https()
        folder = self.tmp.mkdir("sidecar")
        os.makedirs(os.path.join(folder, "tls"))
        shutil.copy(self.pki.client.crt, os.path.join(folder, "tls", "client.crt"))
        shutil.copy(self.pki.client.key, os.path.join(folder, "tls", "client.key"))
        shutil.copy(self.pki.ca_crt, os.path.join(folder, "tls", "ca.crt"))
        tls = cluster_tls(self.pki, certificate="tls/client.crt", private_key="tls/client.key",
                          trusted_ca="tls/ca.crt")
        c = harness.cluster("c", [f"127.0.0.1:{nginx.port}"], tls)
        sidecar = self.make_sidecar(harness.config([harness.listener("l", "c")], [c]))
        code, output = sidecar.validate()
        self.assertEqual(code, 0, output)
        # Start from another working directory: paths must not depend on it.
        sidecar.start()
        self.assert_round_trip(sidecar, nginx)


if __name__ == "__main__":
    unittest.main()
