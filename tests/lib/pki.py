"""pki.py: certificates for the tests, made with the real `certs` CLI."""

import json
import os
import subprocess

from tests.lib.support import CLIENT_URI, SERVER_NAME, certs_bin, normalize_serial


# ---- certificates -----------------------------------------------------------


class CertPair:
    def __init__(self, crt, key):
        self.crt = crt
        self.key = key

    def __repr__(self):
        return f"CertPair({self.crt!r}, {self.key!r})"


class Pki:
    """Pki makes, with the real `certs` CLI, everything the tests need:
       ca            the trusted CA (ca.crt, ca.key in ca/)
       server        upstream certificate: DNS upstream.test, IP 127.0.0.1
       client        the sidecar's certificate: URI spiffe://test/client
       other_ca      a second CA the sidecar does not trust
       other_server  like `server`, signed by other_ca
       expired       like `server`, expired a day ago
       wrong_name    signed by ca, DNS wrong.test only (no IP SAN)
    Further certificates come from issue()."""

    def __init__(self, folder):
        self.bin = certs_bin()
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.ca_dir = self.make_ca("ca", "test-ca")
        self.ca_crt = os.path.join(self.ca_dir, "ca.crt")
        self.other_ca_dir = self.make_ca("other-ca", "other-ca")
        self.other_ca_crt = os.path.join(self.other_ca_dir, "ca.crt")
        server_names = dict(dns=[SERVER_NAME], ips=["127.0.0.1"], server=True)
        self.server = self.issue("server", cn=SERVER_NAME, **server_names)
        self.client = self.issue("client", cn="client", uris=[CLIENT_URI], client=True)
        self.other_server = self.issue("other-server", ca_dir=self.other_ca_dir, cn=SERVER_NAME,
                                       **server_names)
        self.expired = self.issue("expired", cn=SERVER_NAME, not_before="-48h", ttl="24h",
                                  **server_names)
        self.wrong_name = self.issue("wrong-name", cn="wrong.test", dns=["wrong.test"],
                                     server=True)

    def run(self, *args, check=True):
        result = subprocess.run([self.bin, *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"certs {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    def make_ca(self, name, cn):
        out = os.path.join(self.dir, name)
        self.run("ca", "--out", out, "--cn", cn)
        for f in ("ca.crt", "ca.key"):
            if not os.path.isfile(os.path.join(out, f)):
                raise AssertionError(f"certs ca did not write {out}/{f}")
        return out

    def issue(self, name, ca_dir=None, cn=None, dns=(), ips=(), uris=(), client=False,
              server=False, ttl=None, not_before=None, key_password_file=None):
        """issue makes PREFIX.crt and PREFIX.key under the Pki folder and
        returns a CertPair."""
        prefix = os.path.join(self.dir, name)
        args = ["issue", "--ca", ca_dir or self.ca_dir, "--out", prefix]
        if cn:
            args += ["--cn", cn]
        for d in dns:
            args += ["--dns", d]
        for ip in ips:
            args += ["--ip", ip]
        for uri in uris:
            args += ["--uri", uri]
        if client:
            args.append("--client")
        if server:
            args.append("--server")
        if ttl:
            args += ["--ttl", ttl]
        if not_before:
            args += ["--not-before", not_before]
        if key_password_file:
            args += ["--key-password-file", key_password_file]
        self.run(*args)
        pair = CertPair(prefix + ".crt", prefix + ".key")
        for f in (pair.crt, pair.key):
            if not os.path.isfile(f):
                raise AssertionError(f"certs issue did not write {f}")
        return pair

    def issue_client(self, name):
        """issue_client makes another client certificate like `client`."""
        return self.issue(name, cn="client", uris=[CLIENT_URI], client=True)

    def inspect(self, path):
        return json.loads(self.run("inspect", path).stdout)

    def serial(self, path):
        """serial returns the normalized serial number of the certificate."""
        return normalize_serial(self.inspect(path)["serial_number"])
