"""webhook_client.py: xds-server's admission webhook as the Kubernetes API
server and hostile peers see it, over real HTTPS (python's http.client and
ssl, verifying the serving certificate against the CA made at test time),
with the returned JSON Patch applied by the jsonpatch library (an RFC 6902
implementation written elsewhere). Run by xds_server_webhook_test.sh, which
starts the server; every check that fails is printed, and the exit status
is the count of failures (0: all passed).

usage: webhook_client.py DIR WEBHOOK_PORT STATUS_PORT CERTS_TOOL DEPLOYMENT_YAML
"""
import base64
import copy
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time

import jsonpatch
import yaml

DIR, PORT, STATUS_PORT, CERTS, DEPLOYMENT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
CA = os.path.join(DIR, "ca", "ca.crt")
failures = 0


def check(ok, what):
    global failures
    if not ok:
        failures += 1
        print("FAIL: " + what, flush=True)
    return ok


def context(alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=CA)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def connect():
    return http.client.HTTPSConnection("localhost", PORT, context=context(), timeout=10)


def status():
    conn = http.client.HTTPConnection("127.0.0.1", STATUS_PORT, timeout=10)
    conn.request("GET", "/status")
    doc = json.loads(conn.getresponse().read())
    conn.close()
    return doc.get("webhook", {})


def post(conn, path, body, content_type="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", path + "?timeout=10s", body=data, headers={"Content-Type": content_type})
    response = conn.getresponse()
    return response.status, response.read()


uid_counter = [0]


def review(pod, namespace="shop", operation="CREATE", kind=None, version="admission.k8s.io/v1"):
    uid_counter[0] += 1
    return {
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d6b1b3c-%08d" % uid_counter[0],
            "kind": kind or {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": False,
        },
    }


def admit(conn, path, pod, **kw):
    """Posts a review; returns (response object, the pod patched) or fails."""
    rv = review(pod, **kw)
    code, body = post(conn, path, rv)
    if not check(code == 200, "%s: HTTP %d %r" % (path, code, body[:200])):
        return None, None
    doc = json.loads(body)
    check(doc.get("apiVersion") == "admission.k8s.io/v1" and doc.get("kind") == "AdmissionReview",
          "%s: the answer is a v1 AdmissionReview: %r" % (path, doc))
    response = doc["response"]
    check(response.get("uid") == rv["request"]["uid"], "%s: the uid is echoed" % path)
    patched = pod
    if "patch" in response:
        check(response.get("patchType") == "JSONPatch", "%s: patchType JSONPatch" % path)
        patch = json.loads(base64.b64decode(response["patch"]))
        check(len(patch) > 0, "%s: a patch sent is not empty" % path)
        patched = jsonpatch.apply_patch(pod, patch)
    return response, patched


def template_pod():
    for doc in yaml.safe_load_all(open(DEPLOYMENT)):
        if doc and doc.get("kind") == "Deployment":
            pod = copy.deepcopy(doc["spec"]["template"])
            pod["metadata"]["generateName"] = doc["metadata"]["name"] + "-5d8f9c7b6d-"
            pod.setdefault("annotations", None)
            pod.pop("annotations")
            return pod
    raise SystemExit("no Deployment in " + DEPLOYMENT)


def annotated(pod, value):
    pod = copy.deepcopy(pod)
    pod["metadata"].setdefault("annotations", {})["mtls-sidecar/inject"] = value
    return pod


def sidecar_of(pod):
    for c in pod.get("spec", {}).get("initContainers", []):
        if c.get("name") == "mtls-sidecar":
            return c
    return None


def check_injected(response, pod, what):
    if response is None:
        return
    check(response.get("allowed") is True and "patch" in response, what + ": allowed with a patch")
    sidecar = sidecar_of(pod)
    if not check(sidecar is not None, what + ": the sidecar is the init container"):
        return
    check(pod["spec"]["initContainers"][0]["name"] == "mtls-sidecar", what + ": first among init containers")
    check(sidecar.get("restartPolicy") == "Always", what + ": restartPolicy Always")
    check(sidecar.get("image") == "registry.test/mtls-sidecar:9.9.9", what + ": --inject-image and --inject-tag: " + str(sidecar.get("image")))
    check(pod["metadata"]["annotations"].get("mtls-sidecar/status") == "9.9.9", what + ": the status annotation")
    text = json.dumps(pod)
    check('"audience": "xds.test"' in text, what + ": --token-audience is the projected token's audience")
    check('"name": "test-sidecar-config"' in text, what + ": --inject-config-map")
    check(pod["spec"]["containers"][0]["name"] == "app", what + ": the app container is kept")


def check_no_patch(response, what):
    if response is None:
        return
    check(response.get("allowed") is True and "patch" not in response and "patchType" not in response,
          what + ": allowed without a patch: %r" % response)


def check_denied(response, words, what):
    if response is None:
        return
    st = response.get("status", {})
    check(response.get("allowed") is False and st.get("code") == 403 and "patch" not in response,
          what + ": allowed false, code 403: %r" % response)
    for w in words:
        check(w in st.get("message", ""), what + ": the sentence names %r: %r" % (w, st.get("message")))


def serial_of(sock):
    der = sock.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout
    return out.strip().decode()


# ---- injection ----------------------------------------------------------------
conn = connect()
base = template_pod()
r, injected = admit(conn, "/inject", annotated(base, "true"))
check_injected(r, injected, "/inject with the annotation")
check(conn.sock.version() is not None and conn.sock.selected_alpn_protocol() == "http/1.1",
      "ALPN: http/1.1 selected (%r)" % conn.sock.selected_alpn_protocol())

r, p = admit(conn, "/inject-namespace", base)
check_injected(r, p, "/inject-namespace without the annotation")
r, _ = admit(conn, "/inject", base)
check_no_patch(r, "/inject without the annotation (namespace not labelled)")
r, _ = admit(conn, "/inject-namespace", annotated(base, "false"))
check_no_patch(r, "/inject-namespace, the pod opted out")
r, _ = admit(conn, "/inject", injected)
check_no_patch(r, "/inject, a pod already injected")
r, _ = admit(conn, "/inject-namespace", injected)
check_no_patch(r, "/inject-namespace, a pod already injected")

hostnet = annotated(base, "true")
hostnet["spec"]["hostNetwork"] = True
r, _ = admit(conn, "/inject", hostnet)
check_denied(r, ["hostNetwork"], "hostNetwork")
collide = annotated(base, "true")
collide["spec"]["volumes"].append({"name": "mtls-sidecar-token", "emptyDir": {}})
r, _ = admit(conn, "/inject", collide)
check_denied(r, ["mtls-sidecar-token"], "a volume named like ours")
r, _ = admit(conn, "/inject", annotated(base, "yes"))
check_denied(r, ["yes"], "an annotation that is not a boolean")

for ns in ("kube-system", "mtls-test-system"):
    r, _ = admit(conn, "/inject", annotated(base, "true"), namespace=ns)
    check_no_patch(r, "/inject in %s" % ns)
    r, _ = admit(conn, "/inject-namespace", base, namespace=ns)
    check_no_patch(r, "/inject-namespace in %s" % ns)

r, _ = admit(conn, "/inject", annotated(base, "true"), operation="UPDATE")
check_no_patch(r, "an UPDATE")
r, _ = admit(conn, "/inject", {"metadata": {"name": "x"}}, kind={"group": "apps", "version": "v1", "kind": "Deployment"})
check_no_patch(r, "a Deployment")

# ---- validation ---------------------------------------------------------------
stripped = copy.deepcopy(injected)
del sidecar_of(stripped)["restartPolicy"]
r, _ = admit(conn, "/validate", stripped)
check_denied(r, ["restartPolicy", "native sidecars", "1.29", "SidecarContainers"], "/validate, restartPolicy dropped")
r, _ = admit(conn, "/validate", injected)
check_no_patch(r, "/validate, an injected pod")
r, _ = admit(conn, "/validate", annotated(base, "true"))
check_denied(r, ["not injected", "mutating webhook"], "/validate, asked for injection but not injected")
r, _ = admit(conn, "/validate", base)
check_no_patch(r, "/validate, a pod that asked nothing")
r, _ = admit(conn, "/validate", annotated(base, "true"), namespace="kube-system")
check_no_patch(r, "/validate in kube-system")
conn.close()

# ---- bad requests -----------------------------------------------------------------
conn = connect()
code, body = post(conn, "/inject", b"{not json")
check(code == 400 and b"not JSON" in body, "invalid JSON: 400 (%d %r)" % (code, body))
code, body = post(conn, "/inject", review(base, version="admission.k8s.io/v1beta1"))
check(code == 400 and b"admissionReviewVersions" in body, "v1beta1: 400 saying what to set (%d %r)" % (code, body))
rv = review(base)
del rv["request"]["uid"]
code, body = post(conn, "/inject", rv)
check(code == 400 and b"uid" in body, "no uid: 400 (%d %r)" % (code, body))
code, body = post(conn, "/inject", review(base), content_type="text/plain")
check(code == 415, "Content-Type text/plain: 415 (%d)" % code)
conn.request("GET", "/inject")
resp = conn.getresponse()
check(resp.status == 405 and resp.getheader("Allow") == "POST", "GET: 405 Allow: POST (%d)" % resp.status)
resp.read()
code, body = post(conn, "/mutate", review(base))
check(code == 404, "an unknown path: 404 (%d)" % code)
code, body = post(conn, "/inject", review(base))
check(code == 200, "the connection still serves after the bad requests (%d)" % code)
conn.close()

# A body over the cap: 413 as soon as the head declares it, and the
# connection closes (the server reads no more of it).
before = status()
big = json.dumps(review(annotated(base, "true"))).encode()
big_len = 1100 * 1024
tls = context().wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=5), server_hostname="localhost")
tls.sendall(b"POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % big_len + big[:1000])
answer = b""
try:
    while True:
        data = tls.recv(4096)
        if not data:
            break
        answer += data
except (ConnectionError, ssl.SSLError):
    pass
tls.close()
check(answer.startswith(b"HTTP/1.1 413") and b"--webhook-max-body-bytes" in answer,
      "a body over the cap: 413 saying which flag (%r)" % answer[:200])
after = status()
check(after["http"]["body_too_large"] == before["http"]["body_too_large"] + 1, "body_too_large counted")

# ---- hostile peers -------------------------------------------------------------------
before = status()
t0 = time.monotonic()
raw = socket.create_connection(("127.0.0.1", PORT), timeout=5)
raw.sendall(b"GET /inject HTTP/1.1\r\nHost: x\r\n\r\n")
try:
    data = raw.recv(4096)
    check(not data.startswith(b"HTTP/"), "plaintext HTTP to the TLS port gets no HTTP answer: %r" % data[:60])
    while data:
        data = raw.recv(4096)
    closed = True
except (ConnectionResetError, socket.timeout) as e:
    closed = not isinstance(e, socket.timeout)
check(closed and time.monotonic() - t0 < 1.0,
      "plaintext HTTP to the TLS port: the socket is closed at once (%.1f s), not by the 2 s timeout" % (time.monotonic() - t0))
raw.close()
raw = socket.create_connection(("127.0.0.1", PORT), timeout=5)
raw.sendall(os.urandom(3000))
try:
    while raw.recv(4096):
        pass
except ConnectionResetError:
    pass
except socket.timeout:
    check(False, "garbage to the TLS port: the socket is closed")
raw.close()
conn = connect()
code, _ = post(conn, "/inject", review(base))
check(code == 200, "served after plaintext and garbage")
conn.close()
after = status()
check(after["http"]["tls_failures"] >= before["http"]["tls_failures"] + 2, "tls_failures counted: %r" % after["http"])

# ALPN: a client offering h2 only is refused; h2 then http/1.1 gets http/1.1.
try:
    s = context(alpn=("h2",)).wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=5), server_hostname="localhost")
    check(False, "ALPN h2 only: the handshake is refused (got %r)" % s.selected_alpn_protocol())
    s.close()
except (ssl.SSLError, ConnectionError):
    pass
s = context(alpn=("h2", "http/1.1")).wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=5), server_hostname="localhost")
check(s.selected_alpn_protocol() == "http/1.1", "ALPN h2,http/1.1: http/1.1 selected")
s.close()

# Clients that never send: a TCP connection, a finished handshake. Both are
# closed by the request timeout (2 s in the test), and counted.
before = status()
silent = socket.create_connection(("127.0.0.1", PORT), timeout=8)
silent_tls = context().wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=8), server_hostname="localhost")
t0 = time.monotonic()
try:
    check(silent.recv(10) == b"", "a client that never sends: closed")
except ConnectionResetError:
    pass
except socket.timeout:
    check(False, "a TCP client that never sends is closed by the request timeout")
try:
    check(silent_tls.recv(10) == b"", "a TLS client that never sends: closed")
except (ConnectionResetError, ssl.SSLError):
    pass
except socket.timeout:
    check(False, "a TLS client that never sends is closed by the request timeout")
elapsed = time.monotonic() - t0
check(1.0 < elapsed < 6, "closed after about the 2 s timeout (%.1f s)" % elapsed)
silent.close()
silent_tls.close()
after = status()
check(after["http"]["timeouts"] >= before["http"]["timeouts"] + 2, "timeouts counted: %r" % after["http"])

# A keep-alive connection idle longer than the request timeout (2 s) but
# within the idle timeout (4 s) is still served; past the idle timeout it
# is closed, and counted.
before = status()
conn = connect()
code, _ = post(conn, "/inject", review(base))
time.sleep(3)
try:
    code, _ = post(conn, "/inject", review(base))
    check(code == 200, "served after 3 s idle (%d)" % code)
except (ConnectionError, http.client.HTTPException, ssl.SSLError) as e:
    check(False, "a connection idle 3 s (idle timeout 4 s) is still served: %r" % e)
sock = conn.sock
sock.settimeout(8)
t0 = time.monotonic()
try:
    closed = sock.recv(10) == b""
except (ConnectionError, ssl.SSLError):
    closed = True
except socket.timeout:
    closed = False
check(closed and 3 < time.monotonic() - t0 < 6, "an idle connection closed after the 4 s idle timeout (%.1f s)" % (time.monotonic() - t0))
conn.close()
after = status()
check(after["http"]["idle_closed"] >= before["http"]["idle_closed"] + 1, "idle_closed counted: %r" % after["http"])
check(after["limits"]["idle_timeout_ms"] == 4000, "the idle timeout in /status")

# A request begun on an idle keep-alive connection has the request timeout
# (2 s) from its first byte, not what is left of the idle timeout (4 s).
before = status()
conn = connect()
code, _ = post(conn, "/inject", review(base))
time.sleep(0.5)
conn.sock.sendall(b"POST /inject HTTP/1.1\r\nHost: localhost\r\n")
t0 = time.monotonic()
conn.sock.settimeout(8)
try:
    closed = conn.sock.recv(10) == b""
except (ConnectionError, ssl.SSLError):
    closed = True
except socket.timeout:
    closed = False
elapsed = time.monotonic() - t0
check(closed and 1.5 < elapsed < 3.0, "a request begun after idling is closed by the 2 s request timeout (%.1f s)" % elapsed)
conn.close()
after = status()
check(after["http"]["timeouts"] == before["http"]["timeouts"] + 1 and
      after["http"]["idle_closed"] == before["http"]["idle_closed"], "counted as a timeout, not idle: %r" % after["http"])

# ---- 1000 reviews on one keep-alive connection ------------------------------------
conn = connect()
post(conn, "/inject", review(base))
sock = conn.sock
ok = 0
for i in range(1000):
    pod = annotated(base, "true" if i % 2 else "false")
    r, p = admit(conn, "/inject-namespace", pod)
    if r is not None and (("patch" in r) == (i % 2 == 1)):
        ok += 1
check(ok == 1000, "1000 keep-alive reviews answered right: %d" % ok)
check(conn.sock is sock, "1000 reviews on one connection (no reconnect)")
conn.close()

# Two reviews in two TLS records sent in one TCP write (pipelined): both
# answered, in order; the second waits inside TLS while the first is
# answered (python's SSLObject over memory BIOs builds the records).
sock = socket.create_connection(("127.0.0.1", PORT), timeout=5)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = context().wrap_bio(incoming, outgoing, server_hostname="localhost")
while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        sock.sendall(outgoing.read())
        incoming.write(sock.recv(65536))
sock.sendall(outgoing.read())
uids = []
for value in ("true", "false"):
    rv = review(annotated(base, value))
    uids.append(rv["request"]["uid"].encode())
    body = json.dumps(rv).encode()
    tls.write((b"POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body)
sock.sendall(outgoing.read())
answer = b""
deadline = time.monotonic() + 5
while uids[1] not in answer and time.monotonic() < deadline:
    try:
        answer += tls.read(65536)
    except ssl.SSLWantReadError:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        incoming.write(data)
sock.close()
check(answer.count(b"HTTP/1.1 200") == 2 and 0 <= answer.find(uids[0]) < answer.find(uids[1]),
      "two pipelined reviews in two TLS records: both answered in order (%r)" % answer[-200:])

# ---- the serving certificate rotated under an open connection --------------------------
old_conn = connect()
code, _ = post(old_conn, "/inject", review(base))
check(code == 200, "before the rotation")
old_serial = serial_of(old_conn.sock)
fresh = os.path.join(DIR, "fresh")
subprocess.run([CERTS, "issue", "--ca", os.path.join(DIR, "ca"), "--out", fresh, "--dns", "localhost",
                "--ip", "127.0.0.1", "--server"], check=True, capture_output=True)
webhook_dir = os.path.join(DIR, "webhook")
for ext in ("key", "crt"):  # the key first, then the certificate: renamed in, whole
    os.replace(fresh + "." + ext, os.path.join(webhook_dir, "tls.%s.new" % ext))
    os.replace(os.path.join(webhook_dir, "tls.%s.new" % ext), os.path.join(webhook_dir, "tls." + ext))
new_serial = old_serial
deadline = time.monotonic() + 10
while new_serial == old_serial and time.monotonic() < deadline:
    time.sleep(0.2)
    c = connect()
    code, _ = post(c, "/validate", review(base))
    new_serial = serial_of(c.sock)
    c.close()
check(new_serial != old_serial, "a new connection gets the rotated certificate (%s, was %s)" % (new_serial, old_serial))
code, body = post(old_conn, "/inject", review(annotated(base, "true")))
check(code == 200 and b'"patch"' in body, "the open connection keeps working after the rotation (%d)" % code)
check(serial_of(old_conn.sock) == old_serial, "the open connection keeps its certificate")
old_conn.close()
st = status()
check(st["serving_certificate"]["reloads"] >= 1, "the reload is in /status")
check("expiration_time" in st["serving_certificate"].get("current", {}),
      "/status shows the serving certificate's expiry: %r" % st["serving_certificate"].get("current"))

# ---- the counters -------------------------------------------------------------------------
for key in ("reviews", "injected", "not_requested", "opted_out", "namespace_skipped", "already_injected",
            "refused", "denied_by_validate", "allowed_by_validate", "bad_requests", "ignored"):
    check(st.get(key, 0) > 0, "/status webhook.%s counted: %r" % (key, st.get(key)))
check(st["limits"]["max_body_bytes"] == 1048576, "the body cap's default in /status")
print("webhook_client: %d failure(s)" % failures, flush=True)
sys.exit(min(failures, 100))
