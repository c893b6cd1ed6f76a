"""pki.py: certificates for the tests, made with the real `certs` CLI."""

import base64
import json
import os
import re
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
              server=False, ttl=None, not_before=None, key_password_file=None, key=None):
        """issue makes PREFIX.crt and PREFIX.key under the Pki folder and
        returns a CertPair. With `key` (a key file) the certificate is for
        that key, and the pair names it."""
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
        if key:
            args += ["--key", key]
        self.run(*args)
        pair = CertPair(prefix + ".crt", key or prefix + ".key")
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


# ---- key material -------------------------------------------------------------

KEY_PEM = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----[A-Za-z0-9+/=\s]+"
                     rb"-----END \1PRIVATE KEY-----")


def key_pems_in(data):
    """key_pems_in returns every unencrypted private key PEM block found in
    the bytes `data`."""
    return [match.group(0) for match in KEY_PEM.finditer(data)]


def key_material(pem, name="key"):
    """key_material returns {what: text} for every form in which the private
    key `pem` (bytes) could leak: the base64 body of its PKCS#8 and of its
    traditional PEM, whole and line by line, the hex of both DERs, and the
    private value in hex and base64. Hex forms are lower case; compare them
    with lower-cased text."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    found = {}
    for form_name, form in (("PKCS#8", serialization.PrivateFormat.PKCS8),
                            ("traditional", serialization.PrivateFormat.TraditionalOpenSSL)):
        der = key.private_bytes(serialization.Encoding.DER, form, serialization.NoEncryption())
        body = key.private_bytes(serialization.Encoding.PEM, form,
                                 serialization.NoEncryption()).decode().splitlines()[1:-1]
        found[f"{name} {form_name} base64"] = "".join(body)
        for j, line in enumerate(body):
            found[f"{name} {form_name} base64 line {j}"] = line
        found[f"{name} {form_name} DER hex"] = der.hex()
    numbers = key.private_numbers()
    value = getattr(numbers, "private_value", None) or getattr(numbers, "d")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    found[f"{name} private value hex"] = raw.hex()
    found[f"{name} private value base64"] = base64.b64encode(raw).decode()
    return found


def key_material_of_file(path, name=None):
    with open(path, "rb") as f:
        return key_material(f.read(), name or os.path.basename(path))


def find_key_material(places, material):
    """find_key_material returns "WHAT in WHERE" for each piece of
    `material` (from key_material) found in `places` ({where: text})."""
    found = []
    for where, text in places.items():
        lower = text.lower()
        for what, secret in material.items():
            if secret in (lower if "hex" in what else text):
                found.append(f"{what} in {where}")
    return found
