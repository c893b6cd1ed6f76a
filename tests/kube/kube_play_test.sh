#!/usr/bin/env bash
# kube_play_test.sh: the image, the manifests and the injector end to end,
# played by `podman kube play` (issue 13, "The image, built and run here").
# Run by tools/test.sh as its own stage, outside Bazel (podman needs root and
# real namespaces, not Bazel's sandbox):
#
#   tests/kube/kube_play_test.sh        (as root; exit 0 pass, 1 fail, 77 skip)
#
# 1. Builds the image (deploy/image/build.sh) and a peer image (Debian
#    minbase with nginx-light and curl, by debootstrap, cached).
# 2. Makes, at test time, with the `certs` CLI: the workload CA (xds-server's
#    --ca-cert/--ca-key), a control-plane CA and xds-server's serving
#    certificate from it, nginx's server certificate from the workload CA;
#    with tests/node/sa_token.js: a signing key, its JWKS, and a
#    service-account token for shop/checkout (iss, aud mtls-sidecar, the
#    kubernetes.io claims) that xds-server verifies.
# 3. Renders the control plane with `kubectl kustomize
#    deploy/kubernetes/control-plane` (xds-server's --inject-image and
#    --inject-tag set to the image built here, as the kustomization's images
#    set them in a cluster); writes a Pod (app + nginx, annotated
#    mtls-sidecar/inject: "true") and injects it with the image's own
#    mtls-inject; tests/kube/kube_manifests.py translates only what podman
#    cannot do (Secrets, ConfigMaps, projected tokens and emptyDirs as
#    hostPath folders of the files made here; the native sidecar as a
#    regular container; $(VAR) in args; free loopback ports).
# 4. Plays the control plane with `podman kube play --network host` (all
#    traffic on 127.0.0.1, never a bridge address); once xds-server is ready
#    (/readyz), sends the Pod, as the API server would for namespace shop
#    (labelled for injection), to the played webhook: an AdmissionReview v1
#    to /inject-namespace over HTTPS on its loopback port, the serving
#    certificate verified against the control-plane CA. The JSON Patch,
#    applied by python's jsonpatch, must give what the image's mtls-inject
#    wrote, and /validate must allow the result. The webhook's result is
#    what is played: the pod a cluster would run (equal to mtls-inject's,
#    so the command's output is played too).
# 5. Plays the workload and checks: the app's request reaches nginx through
#    the sidecar (200 and nginx's body); the sidecar's certificate is the
#    one xds-server issued for its token's identity; nginx's log shows the
#    workload's SPIFFE ID; the sidecar and xds-server run as 65532 on a
#    read-only root filesystem.
# 6. Prints the image size, the webhook review's round trip and the time
#    from `kube play` to the first request through the sidecar. Removes
#    every pod and file, pass or fail.
#
# SKIP (exit 77) only when podman cannot run at all here (not root, podman
# not installable, or no container starts), with the reason.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

NS=shop
SA=checkout
POD=mtls-e2e-app
SPIFFE_ID="spiffe://cluster.local/ns/$NS/sa/$SA"
UPSTREAM_ID="spiffe://cluster.local/ns/$NS/sa/orders"
ISSUER=https://kubernetes.default.svc.cluster.local
IMAGE_REPO=localhost/mtls-sidecar
IMAGE_TAG=kube-e2e
IMAGE="$IMAGE_REPO:$IMAGE_TAG"
CP_POD=xds-server-pod-0 # podman's name for the Deployment's pod

say() { echo "kube_play_test: $*"; }
skip() {
  say "SKIP: $*"
  exit 77
}
failures=0
fail() {
  say "FAIL: $*"
  failures=$((failures + 1))
}
die() {
  fail "$*"
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n "$0" "$@"
  fi
  skip "podman here needs root (rootful: rootless podman needs subuids and user namespaces) and this is uid $(id -u) without sudo"
fi

# shellcheck source=deploy/image/podman_env.sh
. deploy/image/podman_env.sh
mtls_podman_setup || skip "podman, runc, catatonit or debootstrap could not be installed (apt-get failed)"
podman info >/dev/null 2>"/tmp/kube_play_test.podman-info.$$" ||
  skip "podman info fails: $(tail -3 "/tmp/kube_play_test.podman-info.$$")"
rm -f "/tmp/kube_play_test.podman-info.$$"
# The python3 on PATH (which may be a pyenv one) or Debian's, whichever has
# PyYAML and jsonpatch (the webhook's patch is applied with it).
py=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml, jsonpatch' 2>/dev/null; then
    py=$candidate
    break
  fi
done
[ -n "$py" ] || die "no python3 with PyYAML and jsonpatch (apt-get install python3-yaml python3-jsonpatch)"

work=$(mktemp -d /tmp/mtls-kube-e2e.XXXXXX)
chmod 0755 "$work"
cp_yaml="$work/control-plane.yaml"
wl_yaml="$work/workload.yaml"
cleanup() {
  local status=$?
  trap '' PIPE # a reader gone: the writes below fail, the cleanup goes on
  if [ "$failures" -gt 0 ] || [ "$status" -ne 0 ]; then
    for c in $(podman ps -a --format '{{.Names}}' | grep -- '^xds-server-pod.*-xds-server$') \
      "$POD-mtls-sidecar" "$POD-nginx"; do
      podman container exists "$c" 2>/dev/null || continue
      echo "--- podman logs $c (last 40 lines)"
      podman logs "$c" 2>&1 | tail -40
    done
    [ -f "$work/nginx-state/error.log" ] && { echo "--- nginx error.log"; tail -20 "$work/nginx-state/error.log"; }
  fi
  for f in "$wl_yaml" "$cp_yaml"; do
    [ -f "$f" ] && podman kube down "$f" >/dev/null 2>&1
  done
  podman pod rm -f -t 0 "$POD" "$CP_POD" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE # so that cleanup runs on these too
# A run killed before its cleanup leaves its pods: remove them first.
podman pod rm -f -t 0 "$POD" "$CP_POD" >/dev/null 2>&1

# ---- images ------------------------------------------------------------------------
mtls_base_image localhost/mtls-e2e-peer nginx-light,curl || die "the peer image could not be made"
PEER=$mtls_image
if ! out=$(podman run --rm --network none "$PEER" true 2>&1); then
  skip "podman cannot run a container here: $out"
fi
say "building the image (deploy/image/build.sh)"
build_log="$work/build.log"
deploy/image/build.sh --tag "$IMAGE" >"$build_log" 2>&1 || {
  tail -30 "$build_log"
  die "deploy/image/build.sh failed"
}
image_size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
say "image $IMAGE: $image_size bytes ($(numfmt --to=iec-i --suffix=B "$image_size"))"
opt=(-c opt --strip=always)
bazel build "${opt[@]}" //certs:certs >"$work/bazel-certs.log" 2>&1 || {
  tail -20 "$work/bazel-certs.log"
  die "bazel build //certs:certs failed"
}
certs="$(bazel info "${opt[@]}" bazel-bin 2>/dev/null)/certs/certs"

# ---- certificates, keys, the token -------------------------------------------------
pki="$work/pki"
"$certs" ca --out "$pki/workload-ca" --cn "e2e workload CA" >/dev/null &&
  "$certs" ca --out "$pki/control-plane-ca" --cn "e2e control-plane CA" >/dev/null &&
  "$certs" issue --ca "$pki/control-plane-ca" --out "$pki/xds-server" --server \
    --dns xds-server.mtls-system.svc --ip 127.0.0.1 --ttl 2h >/dev/null &&
  "$certs" issue --ca "$pki/workload-ca" --out "$pki/nginx" --server \
    --dns orders.shop.svc --uri "$UPSTREAM_ID" --ttl 2h >/dev/null ||
  die "the certs CLI failed"
node tests/node/sa_token.js keygen --out "$work/sa-keys" --kid e2e-key --alg ES256 >/dev/null ||
  die "sa_token.js keygen failed"

# The folders the pods mount (Secrets, ConfigMaps and projected volumes in a
# cluster), owned by the pods' user, 65532 (fsGroup's job in a cluster).
mkdir -p "$work"/{xds-tls,xds-ca,xds-resources,xds-jwks,xds-kube-api,sidecar-config,sidecar-token,sidecar-state,nginx-conf,nginx-state}
cp "$pki/xds-server.crt" "$work/xds-tls/tls.crt"
cp "$pki/xds-server.key" "$work/xds-tls/tls.key"
cp "$pki/control-plane-ca/ca.crt" "$work/xds-tls/ca.crt"
cp "$pki/workload-ca/ca.crt" "$work/xds-ca/tls.crt"
cp "$pki/workload-ca/ca.key" "$work/xds-ca/tls.key"
cp "$work/sa-keys/jwks.json" "$work/xds-jwks/jwks.json"
cp "$pki/control-plane-ca/ca.crt" "$work/sidecar-config/bootstrap-ca.pem"
node tests/node/sa_token.js mint --key "$work/sa-keys/e2e-key.key.pem" --kid e2e-key \
  --iss "$ISSUER" --aud mtls-sidecar --ns "$NS" --sa "$SA" --pod "$POD" \
  >"$work/sidecar-token/token" || die "sa_token.js mint failed"
chown -R 65532:65532 "$work"/{xds-tls,xds-ca,xds-resources,xds-jwks,sidecar-config,sidecar-token,sidecar-state}
chmod -R go-rwx "$work/xds-ca" "$work/xds-tls"

# ---- ports: free loopback ports for what the test itself configures ---------------
read -r NGINX_PORT LISTEN_PORT ADMIN_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
taken=(--taken "$NGINX_PORT" --taken "$LISTEN_PORT" --taken "$ADMIN_PORT")

# ---- the control plane: rendered, translated --------------------------------------
kubectl kustomize deploy/kubernetes/control-plane >"$work/control-plane.rendered.yaml" ||
  die "kubectl kustomize deploy/kubernetes/control-plane failed"
python3 tests/kube/kube_manifests.py "$work/control-plane.rendered.yaml" "$cp_yaml" \
  "$work/cp-ports.json" "${taken[@]}" \
  --image "mtls-sidecar=$IMAGE" \
  --volume "tls=$work/xds-tls" --volume "workload-ca=$work/xds-ca" \
  --volume "resources=$work/xds-resources" \
  --mount "xds-server=e2e-jwks:$work/xds-jwks:/etc/xds-server/jwks" \
  --volume "kube-api=$work/xds-kube-api" \
  --drop-arg "xds-server=--jwks-url" --drop-arg "xds-server=--jwks-ca" \
  --drop-arg "xds-server=--jwks-token" \
  --set-arg "xds-server=--jwks-file=/etc/xds-server/jwks/jwks.json" \
  --set-arg "xds-server=--token-issuer=$ISSUER" \
  --set-arg "xds-server=--inject-image=$IMAGE_REPO" \
  --set-arg "xds-server=--inject-tag=$IMAGE_TAG" ||
  die "translating the control plane failed"
port_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ports"][sys.argv[2]])' "$@"; }
XDS_PORT=$(port_of "$work/cp-ports.json" xds-server/18000) || die "no ADS port in the rendered Deployment"
STATUS_PORT=$(port_of "$work/cp-ports.json" xds-server/18001) || die "no status port in the rendered Deployment"
WEBHOOK_PORT=$(port_of "$work/cp-ports.json" xds-server/15017) || die "no webhook port in the rendered Deployment"

# What xds-server serves: nginx as cluster "orders" (mTLS, nginx's SPIFFE ID
# checked, the sidecar's certificate and trust by SDS) and the app's
# plaintext listener.
cat >"$work/xds-resources/e2e.json" <<EOF
{"resources": [
  {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
   "name": "orders", "type": "STATIC", "connect_timeout": "1s",
   "load_assignment": {"cluster_name": "orders", "endpoints": [{"lb_endpoints": [
     {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": $NGINX_PORT}}}}]}]},
   "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
     "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
     "sni": "orders.shop.svc",
     "common_tls_context": {
       "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": {"ads": {}}}],
       "combined_validation_context": {
         "default_validation_context": {"match_typed_subject_alt_names": [
           {"san_type": "URI", "matcher": {"exact": "$UPSTREAM_ID"}}]},
         "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": {"ads": {}}}}}}}},
  {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
   "name": "orders", "address": {"socket_address": {"address": "127.0.0.1", "port_value": $LISTEN_PORT}},
   "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
     "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
     "stat_prefix": "orders", "cluster": "orders"}}]}]}
]}
EOF

# ---- the workload: a Pod, injected by the image's mtls-inject, translated ----------
# The bootstrap ConfigMap's sidecar.json: xds-server over TLS (its serving
# certificate's CA), the token as proof, the node's namespace and service
# account in metadata (the injected --node-id is POD.NAMESPACE).
cat >"$work/sidecar-config/sidecar.json" <<EOF
{
  "admin": {"address": "127.0.0.1:$ADMIN_PORT"},
  "workers": 1,
  "drain_timeout_ms": 1000,
  "xds": {
    "address": "127.0.0.1:$XDS_PORT",
    "tls": {"trusted_ca": "/etc/mtls-sidecar/bootstrap-ca.pem", "server_name": "xds-server.mtls-system.svc"},
    "node": {"id": "set-by-node-id", "cluster": "$POD",
             "metadata": {"NAMESPACE": "$NS", "SERVICE_ACCOUNT": "$SA"}},
    "initial_fetch_timeout_ms": 15000,
    "backup_path": "/var/lib/mtls-sidecar/xds-backup.json"
  },
  "identity": {"token_file": "/var/run/secrets/mtls-sidecar/token"}
}
EOF
chown 65532:65532 "$work/sidecar-config/sidecar.json"

body="mtls-e2e $(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mkdir -p "$work/nginx-conf/www"
echo "$body" >"$work/nginx-conf/www/hello.txt"
cp "$pki/nginx.crt" "$pki/nginx.key" "$work/nginx-conf/"
cp "$pki/workload-ca/ca.crt" "$work/nginx-conf/workload-ca.crt"
cat >"$work/nginx-conf/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid /state/nginx.pid;
error_log /state/error.log info;
events { worker_connections 64; }
http {
  # nginx has no variable for a URI SAN: log the client's certificate; the
  # test reads its SAN with openssl.
  log_format peer '\$status \$request_uri verify=\$ssl_client_verify cert=\$ssl_client_escaped_cert';
  access_log /state/access.log peer;
  client_body_temp_path /state/body;
  proxy_temp_path /state/proxy;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate /conf/nginx.crt;
    ssl_certificate_key /conf/nginx.key;
    ssl_client_certificate /conf/workload-ca.crt;
    ssl_verify_client on;
    root /conf/www;
  }
}
EOF

cat >"$work/pod.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $POD
  namespace: $NS
  annotations:
    mtls-sidecar/inject: "true"
spec:
  serviceAccountName: $SA
  containers:
    - name: app
      image: $PEER
      command: ["sleep", "infinity"]
    - name: nginx
      image: $PEER
      command: ["nginx", "-c", "/conf/nginx.conf"]
      volumeMounts:
        - {name: nginx-conf, mountPath: /conf, readOnly: true}
        - {name: nginx-state, mountPath: /state}
  volumes:
    - name: nginx-conf
      hostPath: {path: $work/nginx-conf, type: Directory}
    - name: nginx-state
      hostPath: {path: $work/nginx-state, type: Directory}
EOF
podman run --rm -i --network none --entrypoint /usr/local/bin/mtls-inject "$IMAGE" \
  --image "$IMAGE_REPO" --tag "$IMAGE_TAG" - <"$work/pod.yaml" >"$work/workload.injected.yaml" \
  2>"$work/inject.log" || {
  cat "$work/inject.log"
  die "the image's mtls-inject refused the pod"
}
grep -q "injected" "$work/inject.log" || die "mtls-inject did not inject: $(cat "$work/inject.log")"

# ---- play the control plane ------------------------------------------------------------
t0=$(date +%s%N)
timeout 120 podman kube play --network host "$cp_yaml" >"$work/play-cp.log" 2>&1 || {
  cat "$work/play-cp.log"
  die "podman kube play (control plane) failed"
}

# ---- the played webhook injects the pod as mtls-inject did ---------------------------
# The API server's part: once xds-server is ready, the Pod as an
# AdmissionReview v1 to /inject-namespace (shop is labelled for injection),
# over HTTPS to the webhook's loopback port, its certificate (xds-server's
# serving one, --tls-cert) verified against the control-plane CA and the
# address 127.0.0.1. Its result is the pod played below.
readyz=$("$py" -c 'import json, sys
print(next(p["port"] for p in json.load(open(sys.argv[1]))["probes"] if p["probe"] == "readinessProbe"))' \
  "$work/cp-ports.json") || die "no readinessProbe for xds-server in the rendered Deployment"
"$py" - "$readyz" "$WEBHOOK_PORT" "$pki/control-plane-ca/ca.crt" "$work/pod.yaml" \
  "$work/workload.injected.yaml" "$work/workload.webhook.yaml" <<'PY' || die "the played webhook (above)"
import base64, copy, http.client, json, ssl, sys, time, urllib.request
import jsonpatch, yaml
readyz, port, ca, pod_path, injected_path, out_path = sys.argv[1:]
deadline = time.monotonic() + 60
while True:  # the control plane healthy: /readyz 200, as kubelet would see it
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{readyz}/readyz", timeout=2).status == 200:
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("kube_play_test: FAIL: xds-server's /readyz never answered 200 within 60 s")
    time.sleep(0.1)
pod = yaml.safe_load(open(pod_path))
conn = http.client.HTTPSConnection("127.0.0.1", int(port), timeout=10,
                                   context=ssl.create_default_context(cafile=ca))
t = time.perf_counter()
conn.connect()
handshake = time.perf_counter() - t


def review(path, obj, uid):
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"],
        "operation": "CREATE", "userInfo": {"username": "kube-play-test"}, "object": obj,
        "dryRun": False}})
    t = time.perf_counter()
    conn.request("POST", path + "?timeout=10s", body=body, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    data = answer.read()
    elapsed = time.perf_counter() - t
    assert answer.status == 200, f"{path}: HTTP {answer.status}: {data[:300]!r}"
    response = json.loads(data)["response"]
    assert response.get("uid") == uid, f"{path}: the uid is not echoed: {response}"
    return response, elapsed


response, rtt = review("/inject-namespace", pod, "e2e-inject-1")
assert response.get("allowed") is True and response.get("patchType") == "JSONPatch", \
    f"/inject-namespace did not inject the pod: {response}"
patched = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
injected = yaml.safe_load(open(injected_path))
if patched != injected:
    first = jsonpatch.make_patch(injected, patched).patch[:3]
    sys.exit(f"kube_play_test: FAIL: the webhook's pod is not the image's mtls-inject's: {first}")
valid, _ = review("/validate", patched, "e2e-validate-1")
assert valid.get("allowed") is True, f"/validate does not allow the injected pod: {valid}"
conn.close()
with open(out_path, "w") as f:
    yaml.safe_dump(patched, f, sort_keys=False)
print(f"kube_play_test: ok: the played webhook (/inject-namespace on 127.0.0.1:{port}, its "
      f"certificate verified) injected the pod exactly as the image's mtls-inject did; /validate "
      f"allows it; review round trip {rtt * 1000:.2f} ms (TLS handshake {handshake * 1000:.2f} ms)")
PY

# The webhook's result, translated; the control plane's ports are taken too.
read -r -a cp_taken < <(python3 -c 'import json, sys
print(" ".join(f"--taken {p}" for p in json.load(open(sys.argv[1]))["ports"].values()))' \
  "$work/cp-ports.json")
python3 tests/kube/kube_manifests.py "$work/workload.webhook.yaml" "$wl_yaml" \
  "$work/wl-ports.json" "${taken[@]}" "${cp_taken[@]}" \
  --volume "mtls-sidecar-config=$work/sidecar-config" \
  --volume "mtls-sidecar-token=$work/sidecar-token" \
  --volume "mtls-sidecar-state=$work/sidecar-state" ||
  die "translating the injected workload failed"

# ---- play the workload ---------------------------------------------------------------
t_wl=$(date +%s%N)
timeout 120 podman kube play --network host "$wl_yaml" >"$work/play-wl.log" 2>&1 || {
  cat "$work/play-wl.log"
  die "podman kube play (workload) failed"
}

# The app's first request through the sidecar, retried until it answers.
answer=""
deadline=$((SECONDS + 90))
while [ $SECONDS -lt $deadline ]; do
  answer=$(podman exec "$POD-app" curl -sS --max-time 2 -o - -w '\n%{http_code}' \
    "http://127.0.0.1:$LISTEN_PORT/hello.txt" 2>/dev/null) && [ "${answer##*$'\n'}" = 200 ] && break
  sleep 0.2
done
t1=$(date +%s%N)
got=${answer%$'\n'*}
if [ "${answer##*$'\n'}" = 200 ] && [ "${got%$'\n'}" = "$body" ]; then
  say "ok: the app's request reached nginx through the sidecar (200, nginx's body)"
else
  die "no 200 with nginx's body through the sidecar within 90 s (last: ${answer:-nothing})"
fi
ms() { echo $((($1 - $2) / 1000000)); }
say "time from kube play to the first request through the sidecar: $(ms "$t1" "$t0") ms (from the control plane's play; $(ms "$t1" "$t_wl") ms from the workload's)"

# ---- the sidecar's certificate came from xds-server ----------------------------------
cp_container=$(podman ps -a --format '{{.Names}}' | grep -- '^xds-server-pod.*-xds-server$' | head -1)
[ -n "$cp_container" ] || die "no xds-server container (podman ps -a: $(podman ps -a --format '{{.Names}}' | tr '\n' ' '))"
podman logs "$cp_container" >"$work/xds-server.log" 2>&1
python3 - "$ADMIN_PORT" "$STATUS_PORT" "$SPIFFE_ID" "$work/xds-server.log" <<'PY' || fail "the sidecar's certificate is not xds-server's (above)"
import json, re, sys, urllib.request
admin, status, spiffe_id, log_path = sys.argv[1:]
certs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/certs", timeout=5))
local = certs.get("local_identity") or {}
assert local.get("spiffe_id") == spiffe_id and local.get("proof") == "token", \
    f"the sidecar's /certs local_identity: {local}"
chains = [c for entry in certs.get("certificates", []) for c in entry.get("cert_chain", [])]
leaf = next((c for c in chains if {"uri": spiffe_id} in c.get("subject_alt_names", [])), None)
assert leaf, f"no certificate for {spiffe_id} in the sidecar's /certs: {json.dumps(certs)[:1500]}"
server = json.load(urllib.request.urlopen(f"http://127.0.0.1:{status}/status", timeout=5))
nodes = [n for n in server.get("nodes", []) if n.get("spiffe_id") == spiffe_id]
assert nodes and nodes[0].get("proof") == "service-account token", \
    f"xds-server /status lists no node {spiffe_id} proved by its token: {server.get('nodes')}"
log = open(log_path).read()
signed = re.findall(r"ca_api: signed serial ([0-9a-f]+) for (\S+) \(proof: ([^)]*)\)", log)
assert (leaf["serial_number"], spiffe_id, "service-account token") in signed, \
    f"xds-server's log shows no signing of serial {leaf['serial_number']}: {signed}"
print(f"kube_play_test: ok: the sidecar's certificate for {spiffe_id} (serial "
      f"{leaf['serial_number']}, issuer {leaf['issuer']}) is one xds-server signed for its "
      f"service-account token; xds-server's /status shows node {nodes[0].get('id')}")
PY

# ---- nginx saw the workload's SPIFFE ID ------------------------------------------------
line=$(grep ' /hello.txt verify=SUCCESS cert=' "$work/nginx-state/access.log" | tail -1)
if [ -z "$line" ]; then
  fail "nginx logged no verified request (log: $(tail -3 "$work/nginx-state/access.log" 2>/dev/null))"
else
  printf '%s' "${line#*cert=}" | python3 -c 'import sys, urllib.parse; sys.stdout.write(urllib.parse.unquote(sys.stdin.read().strip()))' \
    >"$work/client.pem"
  san=$(openssl x509 -in "$work/client.pem" -noout -ext subjectAltName 2>&1)
  if grep -q "URI:$SPIFFE_ID\$" <<<"$san" &&
    openssl verify -CAfile "$pki/workload-ca/ca.crt" "$work/client.pem" >/dev/null 2>&1; then
    say "ok: nginx's log shows the client $SPIFFE_ID, signed by the workload CA"
  else
    fail "nginx's client certificate is not the workload's: $san"
  fi
fi

# ---- the probes, sent as kubelet would (podman cannot run them: see kube_manifests.py) --
python3 - "$work/cp-ports.json" "$work/wl-ports.json" <<'PY' || fail "a probe does not answer 200 (above)"
import json, sys, urllib.error, urllib.request
bad = 0
for path in sys.argv[1:]:
    for p in json.load(open(path))["probes"]:
        url = f"http://127.0.0.1:{p['port']}{p['path']}"
        try:
            code = urllib.request.urlopen(url, timeout=5).status
        except urllib.error.HTTPError as e:
            code = e.code
        except OSError as e:
            code = str(e)
        what = f"{p['container']} {p['probe']} GET {url}: {code}"
        print(f"kube_play_test: {'ok' if code == 200 else 'FAIL'}: {what}")
        bad += code != 200
sys.exit(1 if bad else 0)
PY

# ---- non-root, read-only root filesystem ------------------------------------------------
for c in "$POD-mtls-sidecar" "$cp_container"; do
  read -r ro user pid < <(podman inspect --format '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}} {{.State.Pid}}' "$c")
  uid=$(awk '/^Uid:/ {print $2 ":" $3 ":" $4 ":" $5}' "/proc/$pid/status" 2>/dev/null)
  gid=$(awk '/^Gid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  root_opts=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" 2>/dev/null | tail -1)
  if [ "$ro" = true ] && [ "$uid" = "65532:65532:65532:65532" ] && [ "$gid" = 65532 ] &&
    [[ "$root_opts" == ro* ]]; then
    say "ok: $c runs as 65532:65532 (podman User $user) on a read-only root (mount $root_opts)"
  else
    fail "$c: ReadonlyRootfs=$ro User=$user uid=$uid gid=$gid root mount=$root_opts"
  fi
done

if [ "$failures" -gt 0 ]; then
  say "FAIL: $failures check(s) failed"
  exit 1
fi
say "PASS (image $(numfmt --to=iec-i --suffix=B "$image_size"); first request $(ms "$t1" "$t0") ms after kube play)"
