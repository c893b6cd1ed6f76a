#!/usr/bin/env python3
"""make_seeds.py: writes the seed corpora of fuzz/corpus (files named seed-*).

Small valid and near-valid inputs, made from the tests' fixtures and tools:
Envoy-encoded resources and DiscoveryResponses from tests/node
(make_fixtures.js, make_resource_fixtures.js: needs `npm ci --prefix
tests/node`), keys, certificates and CSRs from the openssl CLI, key sets and
tokens from tests/node/sa_token.js, configurations from deploy/ and the
README, requests and responses written here. Inputs the fuzzers found
(crash-*, leak-*, timeout-* renamed to finding-*) and merged ones are kept
apart from the seeds and never rewritten by this script.

    python3 fuzz/make_seeds.py        # from the repository's root
"""
import base64
import glob
import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def varint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def split_seed(choices, a=0x12, b=0x34):
    return bytes([choices, a, b])


def http_seeds():
    requests = {
        "get": "GET /orders?id=7 HTTP/1.1\r\nHost: shop.local:8080\r\nAccept: */*\r\n\r\n",
        "hop_by_hop": "POST /orders HTTP/1.1\r\nHost: shop.local\r\nConnection: keep-alive, X-Secret\r\n"
        "X-Secret: hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\n"
        "X-Forwarded-Proto: https\r\nContent-Length: 5\r\n\r\nhello",
        "absolute": "GET http://api.shop:8080/orders?id=7 HTTP/1.1\r\nHost: other\r\n\r\n",
        "absolute_no_path": "GET http://[::1]:8080?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "http10": "GET / HTTP/1.0\r\n\r\n",
        "upgrade": "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "connect": "CONNECT api.shop:443 HTTP/1.1\r\nHost: api.shop:443\r\n\r\n",
        "two_hosts": "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "space_name": "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",
        "te_cl": "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "folded": "GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n",
        "pipelined": "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
    }
    for name, text in requests.items():
        for choices in (0, 3):
            write("http_request", "%s_%d" % (name, choices), split_seed(choices) + text.encode())
    responses = {
        "length": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Hop\r\n"
        "X-Hop: 1\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "until_close": "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody until close",
        "continue": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        "switching": "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        "not_modified": "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        "empty_reason": "HTTP/1.1 503 \r\nRetry-After: 1\r\n\r\n",
        "bad_name": "HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: 0\r\n\r\n",
    }
    for name, text in responses.items():
        for choices in (0, 1, 2):
            write("http_response", "%s_%d" % (name, choices), split_seed(choices) + text.encode())
    bodies = {
        "rq_chunked": (0, "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhello\r\n1a; ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n"),
        "rq_length": (0, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"),
        "rq_http10": (2, "POST /up HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc"),
        "rs_chunked": (1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        "rs_chunked_10": (3, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        "rs_length": (1, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
        "rs_close": (1, "HTTP/1.1 200 OK\r\n\r\nuntil the end"),
        "rs_close_10": (3, "HTTP/1.0 200 OK\r\n\r\nuntil the end"),
        "rs_interim": (1, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    }
    for name, (choices, text) in bodies.items():
        for a in (0x00, 0x5A):
            write("http_chunked", "%s_%x" % (name, a), split_seed(choices, a, a ^ 0xFF) + text.encode())
    admin = {
        "ready": "GET /ready HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "quit": "POST /quitquitquit HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        "quit_get": "GET /quitquitquit HTTP/1.1\r\n\r\n",
        "absolute": "GET http://127.0.0.1:15000/stats?x=1 HTTP/1.1\r\n\r\n",
        "not_found": "DELETE /nope%22%0a HTTP/1.1\r\n\r\n",
        "keep_alive": "HEAD /stats HTTP/1.1\r\n\r\nGET /clusters?format=json HTTP/1.1\r\n\r\n",
        "body": "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "bad": "GET stats HTTP/1.1\r\n\r\n",
        "stats_query": "GET /stats?format=prometheus&filter=%5Ecluster%5C.+&usedonly HTTP/1.1\r\n"
                       "\r\nGET /stats?filter=%zz&format=%00 HTTP/1.1\r\n\r\n",
    }
    for name, text in admin.items():
        write("admin_request", name, bytes([0x21, 0x43]) + text.encode())


def config_seeds():
    sources = glob.glob(os.path.join(ROOT, "deploy", "kubernetes", "**", "*.json"), recursive=True)
    sources += glob.glob(os.path.join(ROOT, "bench", "logs", "**", "sc_sidecar.json"), recursive=True)
    for path in sorted(sources):
        name = os.path.relpath(path, ROOT).replace("/", "_")
        with open(path, "rb") as f:
            write("config", name, f.read())
    write("config", "minimal", json.dumps({
        "listeners": [{"name": "in", "listen": "127.0.0.1:15001", "cluster": "up"}],
        "clusters": [{"name": "up", "endpoints": ["127.0.0.1:8443"],
                      "tls": {"ca_file": "ca.pem", "cert_file": "c.pem", "key_file": "c.key"}}]}))
    write("config", "syntax_error", '{"listeners": [ {"name": "in",, } ]')
    write("config", "not_object", "[1, 2, 3]")


def xds_seeds(tmp):
    fixtures = os.path.join(tmp, "fixtures")
    resources = os.path.join(tmp, "resources")
    node = os.path.join(ROOT, "tests", "node")
    subprocess.run(["node", os.path.join(node, "make_fixtures.js"), fixtures], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["node", os.path.join(node, "make_resource_fixtures.js"), resources], check=True,
                   stdout=subprocess.DEVNULL)
    kinds = {"cluster": 0, "endpoints": 1, "secret": 2, "listener": 3}
    for folder in (fixtures, resources):
        for path in sorted(glob.glob(os.path.join(folder, "*.pb"))):
            name = os.path.basename(path)[:-3]
            with open(path, "rb") as f:
                data = f.read()
            if name.startswith("response_"):
                write("xds_response", name, data)
                # The gRPC stream carrying it, in two messages.
                frame = b"\0" + len(data).to_bytes(4, "big") + data
                write("grpc_framing", name, bytes([6, 0x11, 0x22]) + frame + frame)
                continue
            if name.startswith("request"):
                continue
            for word, kind in kinds.items():
                if word in name.split("_")[:3]:
                    write("xds_resource", os.path.basename(folder) + "_" + name, bytes([kind]) + data)
                    break
    for path in sorted(glob.glob(os.path.join(node, "testdata", "c_response_*.json"))):
        with open(path, "rb") as f:
            write("json_pb", os.path.basename(path)[:-5], b"\x01" + f.read())
    write("json_pb", "any_cluster", b"\x00" + json.dumps({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "a",
        "type": "STRICT_DNS", "connect_timeout": "1.5s", "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": "a", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "a.b", "port_value": 443}}}}]}]},
        "metadata": {"filter_metadata": {"x": {"list": [1, "two", None, True, {"k": []}]}}}}).encode())
    write("json_pb", "wrappers", b"\x03" + json.dumps({
        "name": "l", "per_connection_buffer_limit_bytes": 1024,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": "8080"}}}).encode())
    write("json_pb", "secret_bytes", b"\x05" + json.dumps({
        "name": "s", "tls_certificate": {"certificate_chain": {"inline_bytes": "LS0tLQ"},
                                         "private_key": {"inline_string": "k"}}}).encode())
    write("grpc_framing", "empty_and_split", bytes([3, 0x01, 0x02]) + b"\0\0\0\0\0" + b"\0\0\0\0\x03abc")
    write("grpc_framing", "too_large", bytes([2, 0, 0]) + b"\0\0\0\0\x06abcdef")
    write("grpc_framing", "compressed", bytes([5, 0, 0]) + b"\x01\0\0\0\x01a")
    write("grpc_framing", "percent", bytes([4, 0, 0]) + b"\0\0\0\0\x01a%41%zz%")


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=stdin).stdout


def cert_seeds(tmp):
    ec_key = os.path.join(tmp, "ec.key")
    rsa_key = os.path.join(tmp, "rsa.key")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec_key)
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa_key)
    ca = openssl("req", "-x509", "-key", ec_key, "-subj", "/O=mesh/CN=mesh CA", "-days", "3650",
                 "-addext", "basicConstraints=critical,CA:TRUE")
    leaf = openssl("req", "-x509", "-key", rsa_key, "-subj", "/CN=orders,O=shop", "-days", "30",
                   "-addext", "subjectAltName=DNS:orders.shop,IP:10.0.0.1,URI:spiffe://td/ns/a/sa/b,"
                   "email:a@b.c")
    with open(ec_key, "rb") as f:
        ec_pem = f.read()
    with open(rsa_key, "rb") as f:
        rsa_pem = f.read()
    encrypted = openssl("pkcs8", "-topk8", "-in", ec_key, "-passout", "pass:fuzz-password",
                        "-v2", "aes-128-cbc")
    sec1 = openssl("ec", "-in", ec_key)
    write("pem", "chain", b"\x00" + leaf + ca)
    write("pem", "ca", b"\x00" + ca)
    write("pem", "key_ec_pkcs8", b"\x01" + ec_pem)
    write("pem", "key_rsa", b"\x01" + rsa_pem)
    write("pem", "key_sec1", b"\x01" + sec1)
    write("pem", "key_encrypted", b"\x03" + encrypted)
    write("pem", "key_and_cert", b"\x01" + leaf + rsa_pem)
    write("pem", "garbage", b"\x00-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    csr = openssl("req", "-new", "-key", ec_key, "-subj", "/",
                  "-addext", "subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/orders")
    csr_rsa = openssl("req", "-new", "-key", rsa_key, "-subj", "/CN=x",
                      "-addext", "subjectAltName=URI:spiffe://td/a,DNS:x.y",
                      "-addext", "basicConstraints=CA:TRUE")
    write("csr", "ec_spiffe", csr)
    write("csr", "rsa_ca_dns", csr_rsa)
    write("csr", "truncated", csr[: len(csr) // 2])
    # Istio's IstioCertificateRequest: csr = 1, validity_duration = 3, metadata = 4 (a Struct).
    value = field(3, b"x")  # Value.string_value
    metadata = field(1, field(1, b"cluster") + field(2, value))  # Struct.fields entry
    write("istio_ca_request", "ec", field(1, csr) + varint(3 << 3) + varint(3600) + field(4, metadata))
    write("istio_ca_request", "rsa_no_metadata", field(1, csr_rsa))
    write("istio_ca_request", "not_a_csr", field(1, b"hello"))

    # Key sets and tokens from sa_token.js (Node's crypto).
    node = os.path.join(ROOT, "tests", "node", "sa_token.js")
    keys = os.path.join(tmp, "keys")
    subprocess.run(["node", node, "keygen", "--out", keys, "--kid", "rsa1", "--alg", "RS256"], check=True)
    subprocess.run(["node", node, "keygen", "--out", keys, "--kid", "ec1", "--alg", "ES256"], check=True)
    with open(os.path.join(keys, "jwks.json"), "rb") as f:
        jwks = f.read()
    write("jwks", "rsa_and_ec", jwks)
    write("jwks", "private", json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA",
                                                   "d": "AA"}]}))
    write("jwks", "skipped", json.dumps({"keys": [{"kty": "oct", "k": "AA"},
                                                  {"kty": "RSA", "alg": "RS512", "n": "AQAB", "e": "AQAB"}]}))
    mint = ["node", node, "mint", "--iss", "https://kubernetes.default.svc.cluster.local",
            "--aud", "istio-ca", "--ns", "shop", "--sa", "orders", "--pod", "orders-1"]
    for kid, alg in (("rsa1", "RS256"), ("ec1", "ES256"), ("ec1", "none"), ("rsa1", "HS256")):
        token = subprocess.run(mint + ["--key", os.path.join(keys, kid + ".key.pem"), "--kid", kid,
                                       "--alg", alg], check=True, capture_output=True).stdout.strip()
        write("jwt", "%s_%s" % (kid, alg), b"\x00" + token)
    header = {"alg": "ES256", "kid": "fuzz", "typ": "JWT"}
    claims = {"iss": "https://kubernetes.default.svc.cluster.local", "aud": ["istio-ca"],
              "sub": "system:serviceaccount:shop:orders", "exp": 1900000000, "iat": 1700000000,
              "nbf": 1700000000,
              "kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "orders", "uid": "u"},
                                "pod": {"name": "orders-1", "uid": "p"}}}
    write("jwt", "signed_valid", b"\x01" + json.dumps(header).encode() + b"\n" + json.dumps(claims).encode())
    expired = dict(claims, exp=1600000000)
    write("jwt", "signed_expired", b"\x01" + json.dumps(header).encode() + b"\n" + json.dumps(expired).encode())
    no_pod = dict(claims)
    no_pod["kubernetes.io"] = {"namespace": "shop", "serviceaccount": {"name": "orders"}}
    write("jwt", "signed_no_pod", b"\x01" + json.dumps({"alg": "ES256"}).encode() + b"\n" +
          json.dumps(no_pod).encode())
    write("jwt", "signed_crit", b"\x01" + json.dumps({"alg": "ES256", "crit": ["x"]}).encode() + b"\n{}")


def admission_review_seeds():
    """AdmissionReviews as the API server sends them to xds-server's webhook:
    a first byte choosing the path (0 /inject, 1 /inject-namespace, 2
    /validate), then the body."""
    pod = {"metadata": {"generateName": "checkout-5d8f9c7b6d-", "labels": {"app": "checkout"},
                        "annotations": {"mtls-sidecar/inject": "true"}},
           "spec": {"serviceAccountName": "checkout",
                    "containers": [{"name": "app", "image": "curlimages/curl:8.10.1",
                                    "ports": [{"containerPort": 8080}]}],
                    "volumes": [{"name": "tmp", "emptyDir": {}}]}}

    def review(obj, version="admission.k8s.io/v1", uid="0d6b1b3c", operation="CREATE",
               namespace="shop"):
        request = {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                   "resource": {"group": "", "version": "v1", "resource": "pods"},
                   "namespace": namespace, "operation": operation, "object": obj}
        if uid is None:
            del request["uid"]
        return json.dumps({"apiVersion": version, "kind": "AdmissionReview", "request": request})

    plain = json.loads(json.dumps(pod))
    del plain["metadata"]["annotations"]
    hostnet = json.loads(json.dumps(pod))
    hostnet["spec"]["hostNetwork"] = True
    injected = json.loads(json.dumps(pod))
    injected["metadata"]["annotations"]["mtls-sidecar/status"] = "1.0.0"
    injected["spec"]["initContainers"] = [{"name": "mtls-sidecar", "image": "mtls-sidecar:1"}]
    write("admission_review", "inject", b"\x00" + review(pod).encode())
    write("admission_review", "inject_namespace", b"\x01" + review(plain).encode())
    write("admission_review", "validate_stripped", b"\x02" + review(injected).encode())
    write("admission_review", "validate_not_injected", b"\x02" + review(pod).encode())
    write("admission_review", "host_network", b"\x00" + review(hostnet).encode())
    write("admission_review", "kube_system", b"\x01" + review(plain, namespace="kube-system").encode())
    write("admission_review", "v1beta1", b"\x00" + review(pod, version="admission.k8s.io/v1beta1").encode())
    write("admission_review", "no_uid", b"\x00" + review(pod, uid=None).encode())
    write("admission_review", "update", b"\x00" + review(pod, operation="UPDATE").encode())
    write("admission_review", "not_json", b"\x00{\"apiVersion\": ")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for folder in glob.glob(os.path.join(CORPUS, "*")):
            for seed in glob.glob(os.path.join(folder, "seed-*")):
                os.remove(seed)
        http_seeds()
        config_seeds()
        xds_seeds(tmp)
        cert_seeds(tmp)
        admission_review_seeds()
    for folder in sorted(glob.glob(os.path.join(CORPUS, "*"))):
        print("%-20s %d inputs" % (os.path.basename(folder), len(os.listdir(folder))))


if __name__ == "__main__":
    main()
