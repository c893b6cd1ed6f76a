"""Revocation along the whole chain (Envoy's default, only_verify_leaf_cert_crl
false): with an upstream whose certificate comes from an intermediate CA,
a CRL of the root that revokes the intermediate refuses the upstream, and a
chain with a CA that has no CRL is refused too. The chain and the CRLs are
made with the openssl CLI (the `certs` CLI makes no intermediates)."""

import os
import subprocess
import unittest

from tests.lib import harness
from tests.lib.harness import (SERVER_NAME, CertPair, cluster, cluster_tls, config, http_get,
                               http_listener, read_text, write_file)

CA_EXTENSIONS = ("basicConstraints=critical,CA:TRUE\n"
                 "keyUsage=critical,keyCertSign,cRLSign\n"
                 "subjectKeyIdentifier=hash\n"
                 "authorityKeyIdentifier=keyid\n")
LEAF_EXTENSIONS = ("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n"
                   f"subjectAltName=DNS:{SERVER_NAME},IP:127.0.0.1\n"
                   "authorityKeyIdentifier=keyid\n")


class Chain:
    """Chain makes root -> intermediate -> leaf in `folder` with openssl,
    and a CRL for each CA (openssl ca, one index per CA)."""

    def __init__(self, folder):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.root_crt, self.root_key = self._ca("root", None)
        self.inter_crt, self.inter_key = self._ca("intermediate", "root")
        leaf_crt, leaf_key = self._cert("leaf", "intermediate", LEAF_EXTENSIONS)
        chain = self.path("leaf-chain.crt")
        write_file(chain, read_text(leaf_crt) + read_text(self.inter_crt))
        self.server = CertPair(chain, leaf_key)

    def path(self, name):
        return os.path.join(self.dir, name)

    def openssl(self, *args):
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30,
                                cwd=self.dir)
        if result.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args)}: {result.stdout}{result.stderr}")

    def _cert(self, name, issuer, extensions):
        key, crt, csr, ext = (self.path(name + s) for s in (".key", ".crt", ".csr", ".ext"))
        write_file(ext, extensions)
        self.openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        if issuer is None:
            self.openssl("x509", "-req", "-in", csr, "-signkey", key, "-out", crt, "-days", "30",
                         "-extfile", ext)
        else:
            self.openssl("x509", "-req", "-in", csr, "-CA", self.path(issuer + ".crt"), "-CAkey",
                         self.path(issuer + ".key"), "-CAcreateserial", "-out", crt, "-days",
                         "30", "-extfile", ext)
        return crt, key

    def _ca(self, name, issuer):
        extensions = CA_EXTENSIONS
        if issuer is None:  # self-signed: no authority key identifier to copy
            extensions = extensions.replace("authorityKeyIdentifier=keyid\n", "")
        crt, key = self._cert(name, issuer, extensions)
        write_file(self.path(name + ".index"), "")
        write_file(self.path(name + ".crlnumber"), "01\n")
        write_file(self.path(name + ".cnf"),
                   "[ca]\ndefault_ca = this\n[this]\n"
                   f"database = {self.path(name + '.index')}\n"
                   f"crlnumber = {self.path(name + '.crlnumber')}\n"
                   f"certificate = {crt}\nprivate_key = {key}\n"
                   "default_md = sha256\ndefault_crl_days = 30\n")
        return crt, key

    def revoke(self, ca, crt):
        self.openssl("ca", "-config", self.path(ca + ".cnf"), "-revoke", crt)

    def crl(self, ca):
        """crl returns the PEM text of a fresh CRL of `ca`."""
        out = self.path(ca + ".crl")
        self.openssl("ca", "-config", self.path(ca + ".cnf"), "-gencrl", "-out", out)
        return read_text(out)


class RevocationTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.chain = Chain(self.tmp.mkdir("chain"))
        self.nginx = self.start_https(server=self.chain.server)

    def get_through(self, crl_pem, name):
        """get_through starts a sidecar that trusts the root with `crl_pem`
        and returns the status of a GET through it."""
        crl = self.tmp.join(f"{name}.crl")
        write_file(crl, crl_pem)
        tls = cluster_tls(self.pki, trusted_ca=self.chain.root_crt, crl=crl)
        sidecar = self.start_sidecar(
            config([http_listener("l", "c")], [cluster("c", [f"127.0.0.1:{self.nginx.port}"], tls)]),
            name=name)
        status, _ = http_get(sidecar.listener_port(), "/hello.txt")
        return status, sidecar

    def test_chain_with_a_crl_for_each_ca_is_accepted(self):
        status, _ = self.get_through(self.chain.crl("root") + self.chain.crl("intermediate"), "ok")
        self.assertEqual(status, 200)

    def test_revoked_intermediate_is_refused(self):
        self.chain.revoke("root", self.chain.inter_crt)
        status, sidecar = self.get_through(
            self.chain.crl("root") + self.chain.crl("intermediate"), "revoked")
        self.assertNotEqual(status, 200, "an upstream under a revoked intermediate was accepted")
        self.assertGreaterEqual(sidecar.stat("ssl_connection_error"), 1)
        sidecar.wait_log("revoked")

    def test_a_ca_without_crl_is_refused(self):
        # Only the root's CRL: the intermediate's certificates cannot be
        # checked, so none is accepted (Envoy's rule).
        status, sidecar = self.get_through(self.chain.crl("root"), "missing")
        self.assertNotEqual(status, 200, "a chain with a CA without CRL was accepted")
        sidecar.wait_log("CRL")


if __name__ == "__main__":
    unittest.main()
