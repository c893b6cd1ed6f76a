"""Bad configurations are refused before anything runs, each problem named
by its JSON path; a certificate that does not match its key stops startup
with a clear error."""

import json
import unittest

from tests.lib import harness
from tests.lib.harness import cluster, cluster_tls, config, listener


class ConfigValidationTest(harness.IntegrationTest):

    def base(self):
        nginx_port = harness.free_port()  # --validate connects to nothing
        c = cluster("c", [f"127.0.0.1:{nginx_port}"], cluster_tls(self.pki))
        return config([listener("l", "c")], [c])

    def validate(self, cfg):
        sidecar = self.make_sidecar(cfg, name=f"config-{len(self._sidecars)}")
        return sidecar.validate()

    def assert_problem(self, cfg, path, *words):
        """--validate must fail and print a line `path: ...` containing
        every word; returns the line."""
        code, output = self.validate(cfg)
        self.assertNotEqual(code, 0, output)
        lines = [l for l in output.splitlines() if l.startswith(path)]
        self.assertTrue(lines, f"no line starting with {path!r} in:\n{output}")
        for line in lines:
            if all(w in line for w in words):
                return line
        self.fail(f"no line for {path!r} mentions {words}:\n{output}")

    def test_valid_config_passes(self):
        code, output = self.validate(self.base())
        self.assertEqual(code, 0, output)

    def test_misspelt_key_is_named_with_a_suggestion(self):
        cfg = self.base()
        cfg["clusters"][0]["tls"]["verfiy_depth"] = 4
        code, output = self.validate(cfg)
        self.assertNotEqual(code, 0)
        self.assertIn('clusters[0].tls.verfiy_depth: unknown key; did you mean "verify_depth"?',
                      output.splitlines())

    def test_wrong_type(self):
        cfg = self.base()
        cfg["clusters"][0]["connect_timeout_ms"] = "fast"
        self.assert_problem(cfg, "clusters[0].connect_timeout_ms:")

    def test_verify_without_trusted_ca(self):
        cfg = self.base()
        del cfg["clusters"][0]["tls"]["trusted_ca"]
        cfg["clusters"][0]["tls"]["verify"] = True
        self.assert_problem(cfg, "clusters[0].tls", "trusted_ca")

    def test_unknown_cluster(self):
        cfg = self.base()
        cfg["listeners"][0]["cluster"] = "nope"
        self.assert_problem(cfg, "listeners[0].cluster:", "nope")

    def test_tls_1_1_is_refused(self):
        cfg = self.base()
        cfg["clusters"][0]["tls"]["protocols"] = ["TLSv1.1", "TLSv1.2"]
        self.assert_problem(cfg, "clusters[0].tls.protocols", "TLSv1.1")

    def test_bad_port(self):
        cfg = self.base()
        cfg["listeners"][0]["address"] = "127.0.0.1:70000"
        self.assert_problem(cfg, "listeners[0].address:")

    def test_every_problem_is_reported_at_once(self):
        cfg = self.base()
        cfg["clusters"][0]["tls"]["verfiy_depth"] = 4
        cfg["clusters"][0]["connect_timeout_ms"] = "fast"
        cfg["listeners"][0]["cluster"] = "nope"
        cfg["listeners"][0]["address"] = "127.0.0.1:70000"
        code, output = self.validate(cfg)
        self.assertNotEqual(code, 0)
        for path in ("clusters[0].tls.verfiy_depth:", "clusters[0].connect_timeout_ms:",
                     "listeners[0].cluster:", "listeners[0].address:"):
            self.assertTrue(any(l.startswith(path) for l in output.splitlines()),
                            f"{path} missing from:\n{output}")

    def test_not_json_is_refused(self):
        sidecar = self.make_sidecar(self.base(), name="broken-json")
        harness.write_file(sidecar.config_path, '{"listeners": [}')
        code, output = sidecar.validate()
        self.assertNotEqual(code, 0)
        self.assertTrue(output.strip(), "no message for a file that is not JSON")

    def test_two_missing_files_are_both_reported_by_their_keys(self):
        cfg = self.base()
        missing_crt, missing_ca = self.tmp.join("gone", "client.crt"), self.tmp.join("gone", "ca.crt")
        cfg["clusters"][0]["tls"].update(certificate=missing_crt, trusted_ca=missing_ca)
        code, output = self.validate(cfg)
        self.assertEqual(code, 1, output)
        lines = output.splitlines()
        self.assertIn(f"clusters[0].tls.certificate: cannot open {missing_crt}: No such file or "
                      f"directory", lines)
        self.assertIn(f"clusters[0].tls.trusted_ca: cannot open {missing_ca}: No such file or "
                      f"directory", lines)
        self.assertTrue(lines[-1].endswith(": 2 problems"), output)

    def test_every_cluster_tls_problem_is_shown_at_start(self):
        # Not only --validate: a sidecar that does not start says every reason.
        cfg = self.base()
        second = json.loads(json.dumps(cfg["clusters"][0]))
        second["name"] = "d"
        cfg["clusters"].append(second)
        missing = self.tmp.join("gone.crt")
        cfg["clusters"][0]["tls"]["certificate"] = missing
        cfg["clusters"][1]["tls"]["private_key"] = self.pki.other_server.key
        cfg["clusters"][1]["tls"]["ciphers"] = "NO-SUCH-CIPHER"
        sidecar = self.make_sidecar(cfg)
        self.assertEqual(sidecar.start_refused(), 1)
        lines = sidecar.log().splitlines()
        self.assertIn(f"clusters[0].tls.certificate: cannot open {missing}: No such file or "
                      f"directory", lines)
        self.assertTrue(any(l.startswith("clusters[1].tls.private_key: private key ") and
                            "does not match certificate" in l for l in lines), lines)
        self.assertTrue(any(l.startswith('clusters[1].tls.ciphers: invalid ciphers "NO-SUCH-CIPHER"')
                            for l in lines), lines)
        self.assertTrue(lines[-1].endswith(": 3 problems; not started"), lines)
        self.assertFalse(harness.port_accepts(sidecar.listener_port()))

    def test_a_doubled_comma_is_named_with_its_line_and_column(self):
        sidecar = self.make_sidecar(self.base(), name="double-comma")
        harness.write_file(sidecar.config_path, '{\n  "workers": 2,\n  "listeners": [],,\n'
                                                '  "clusters": []\n}\n')
        code, output = sidecar.validate()
        self.assertEqual(code, 1, output)
        self.assertIn("line 3, column 19: invalid JSON: unexpected ','; two commas in a row",
                      output)
        self.assertNotIn("ends too early", output)
        self.assertTrue(output.splitlines()[-1].endswith(": 1 problem"), output)

    def test_a_cluster_naming_the_identity_secrets_passes(self):
        # Its certificate and trust bundle come from the identity agent at
        # run time: --validate has no files of them to check.
        cfg = self.base()
        cfg["clusters"][0]["tls"] = {"certificate_secret": "default",
                                     "validation_secret": "ROOTCA",
                                     "server_name": harness.SERVER_NAME}
        cfg["identity"] = {"ca_address": f"127.0.0.1:{harness.free_port()}",
                           "tls": cluster_tls(self.pki)}
        code, output = self.validate(cfg)
        self.assertEqual(code, 0, output)

    def test_validate_does_not_start_anything(self):
        cfg = self.base()
        sidecar = self.make_sidecar(cfg)
        code, output = sidecar.validate()
        self.assertEqual(code, 0, output)
        self.assertFalse(harness.port_accepts(sidecar.listener_port()))
        self.assertFalse(harness.port_accepts(sidecar.admin_port))

    def test_key_not_matching_certificate_stops_startup(self):
        other = self.pki.issue_client("mismatch")
        cfg = self.base()
        cfg["clusters"][0]["tls"]["private_key"] = other.key
        sidecar = self.make_sidecar(cfg)
        self.assertNotEqual(sidecar.start_refused(), 0)
        log = sidecar.log()
        self.assertRegex(log.lower(), r"match", log)
        self.assertTrue(self.pki.client.crt in log or other.key in log,
                        f"the error names neither file:\n{log}")
        self.assertFalse(harness.port_accepts(sidecar.listener_port()))


if __name__ == "__main__":
    unittest.main()
