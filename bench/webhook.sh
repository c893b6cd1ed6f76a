#!/usr/bin/env bash
# Admission webhook latency: xds-server's POST /inject (an AdmissionReview
# of a realistic pod, answered with the injection patch: JSON parsed, the
# pod injected by inject/'s code, the answer built and base64-encoded) next
# to nginx answering the same POST over HTTPS with a fixed JSON body of the
# same size (the floor: a server that does no work), in the same run.
#
#   bench/webhook.sh [COUNT] [ROUNDS]      default 3000 reviews, 3 rounds
#
# The client is bench/webhook_load.py for both (python's http.client and
# ssl, the certificate verified): per-review latency, p50 and p99, (1) on
# one keep-alive connection (COUNT reviews), (2) on a new TLS connection
# per review (COUNT/5 reviews, the connect and the handshake included).
# Both servers: one worker, TLS 1.3 (X25519, the same ECDSA P-256
# certificate from //certs), ALPN http/1.1. Each round runs xds-server and
# nginx in turn (reversed every other round); the report gives each
# round's figures and the median ratio. Results: printed and written to
# their section of bench/results.md.
#
# XDS_SERVER_BIN, CERTS_BIN: use these binaries instead of building with
# Bazel (-c opt, BAZEL_OUTPUT_BASE, default /tmp/bzl-bench).
set -euo pipefail
COUNT=${1:-3000}
ROUNDS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
if [ -z "${XDS_SERVER_BIN:-}" ]; then
  OB=${BAZEL_OUTPUT_BASE:-/tmp/bzl-bench}
  (cd "$REPO" && bazel --output_base="$OB" build -c opt --symlink_prefix=/ \
     //xds-server:xds-server //certs:certs >&2)
  BIN=$(cd "$REPO" && bazel --output_base="$OB" info -c opt bazel-bin 2>/dev/null)
  XDS_SERVER_BIN=$BIN/xds-server/xds-server CERTS_BIN=$BIN/certs/certs
fi
command -v nginx >/dev/null || { echo "nginx is not installed" >&2; exit 1; }
T=$(mktemp -d /tmp/webhook-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P_XDS=$(port) P_STATUS=$(port) P_HOOK=$(port) P_NGX=$(port)

cd "$T"
"$CERTS_BIN" ca --out ca >/dev/null
"$CERTS_BIN" ca --out bootstrap-ca --cn "bootstrap CA" >/dev/null
"$CERTS_BIN" issue --ca ca --out server --dns localhost --ip 127.0.0.1 --server >/dev/null

# The review: the Deployment's pod template of inject/testdata, annotated.
python3 - "$REPO/inject/testdata/deployment.yaml" >review.json <<'PY'
import json, sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "Deployment":
        pod = doc["spec"]["template"]
        pod["metadata"]["generateName"] = "checkout-5d8f9c7b6d-"
        pod["metadata"]["annotations"] = {"mtls-sidecar/inject": "true"}
        print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                          "request": {"uid": "0d6b1b3c-9f8e-4a55-8c1e-1234567890ab",
                                      "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                      "resource": {"group": "", "version": "v1", "resource": "pods"},
                                      "namespace": "shop", "operation": "CREATE",
                                      "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                                      "object": pod}}))
PY

"$XDS_SERVER_BIN" --listen "127.0.0.1:$P_XDS" --status-address "127.0.0.1:$P_STATUS" \
  --tls-cert server.crt --tls-key server.key --ca-cert ca/ca.crt --ca-key ca/ca.key \
  --client-ca bootstrap-ca/ca.crt --webhook-address "127.0.0.1:$P_HOOK" 2>xds-server.log &
PIDS+=($!)
for _ in $(seq 100); do grep -q 'admission webhook' xds-server.log && break; sleep 0.1; done

# nginx's fixed answer: xds-server's own answer to this review, byte for byte.
curl -sS --cacert ca/ca.crt -H 'Content-Type: application/json' --data-binary @review.json \
  "https://localhost:$P_HOOK/inject" -o answer.json
grep -q '"patch"' answer.json || { echo "xds-server did not inject: $(cat answer.json)" >&2; exit 1; }
mkdir -p ngx/tmp
cat >ngx/nginx.conf <<NGX
worker_processes 1;
pid $T/ngx/nginx.pid;
error_log $T/ngx/error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path $T/ngx/tmp; proxy_temp_path $T/ngx/tmp; fastcgi_temp_path $T/ngx/tmp;
  uwsgi_temp_path $T/ngx/tmp; scgi_temp_path $T/ngx/tmp;
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 1m;
  server {
    listen 127.0.0.1:$P_NGX ssl;
    ssl_certificate $T/server.crt;
    ssl_certificate_key $T/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    location = /inject {
      default_type application/json;
      return 200 '$(cat answer.json)';
    }
  }
}
NGX
nginx -p "$T/ngx" -c "$T/ngx/nginx.conf" -g 'daemon off;' 2>ngx/stderr &
PIDS+=($!)
for _ in $(seq 50); do [ -s ngx/nginx.pid ] && break; sleep 0.1; done
cmp -s answer.json <(curl -sS --cacert ca/ca.crt -H 'Content-Type: application/json' \
  --data-binary @review.json "https://localhost:$P_NGX/inject") ||
  { echo "nginx does not answer the same bytes" >&2; exit 1; }

run() { # NAME PORT MODE COUNT
  python3 "$HERE/webhook_load.py" localhost "$2" ca/ca.crt /inject review.json "$4" "$3"
}
echo "review $(wc -c <review.json) bytes, answer $(wc -c <answer.json) bytes; $COUNT keep-alive and $((COUNT / 5)) new-connection reviews per round" >&2
: >results.jsonl
for round in $(seq "$ROUNDS"); do
  order="xds nginx"
  [ $((round % 2)) = 0 ] && order="nginx xds"
  for who in $order; do
    p=$P_HOOK; [ "$who" = nginx ] && p=$P_NGX
    ka=$(run "$who" "$p" keepalive "$COUNT")
    nc=$(run "$who" "$p" new $((COUNT / 5)))
    echo "{\"round\": $round, \"server\": \"$who\", \"keepalive\": $ka, \"new\": $nc}" | tee -a results.jsonl >&2
  done
done
grep -q '"reviews"' <(curl -sS "127.0.0.1:$P_STATUS/status") || echo "warning: no webhook section in /status" >&2

python3 - results.jsonl "$COUNT" "$HERE/results.md" "$(nproc)" "$(nginx -v 2>&1 | sed 's/.*\///')" \
  "$(wc -c <review.json)" "$(wc -c <answer.json)" <<'PY'
import json, statistics, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
count, results, cpus, nginx_version, review_bytes, answer_bytes = sys.argv[2:8]
lines = []
def fmt(us): return "%.0f µs" % us
for mode, label in (("keepalive", "one keep-alive connection"), ("new", "a new TLS connection per review")):
    lines.append("| %s | round | xds-server p50 | nginx p50 | ratio p50 | xds-server p99 | nginx p99 | ratio p99 |" % label)
    lines.append("|---|---|---|---|---|---|---|---|")
    r50, r99 = [], []
    for rnd in sorted({r["round"] for r in rows}):
        x = next(r for r in rows if r["round"] == rnd and r["server"] == "xds")[mode]
        n = next(r for r in rows if r["round"] == rnd and r["server"] == "nginx")[mode]
        r50.append(x["p50_us"] / n["p50_us"]); r99.append(x["p99_us"] / n["p99_us"])
        lines.append("| | %d | %s | %s | %.2f | %s | %s | %.2f |" % (rnd, fmt(x["p50_us"]), fmt(n["p50_us"]), r50[-1],
                                                         fmt(x["p99_us"]), fmt(n["p99_us"]), r99[-1]))
    lines.append("| | **median** | | | **%.2f** | | | **%.2f** |" % (statistics.median(r50), statistics.median(r99)))
    lines.append("")
body = "\n".join(lines)
section = """<!-- begin bench/webhook.sh -->
## Admission webhook latency: xds-server `POST /inject` vs nginx returning a fixed answer (`bench/webhook.sh`)

%s, this machine (%s CPUs), `-c opt` xds-server, nginx %s (1 worker), both TLS 1.3 on loopback with
the same certificate; the client is `bench/webhook_load.py` (python `http.client`), the same for
both: it adds its own time to every figure, equally. The review: the Deployment of
`inject/testdata/deployment.yaml` as a pod (%s bytes), answered with the injection patch (%s bytes;
nginx returns those bytes). Per review: %s on one keep-alive connection, %d with a new connection
each (connect and handshake included).

%s
<!-- end bench/webhook.sh -->""" % (datetime.date.today().isoformat(), cpus, nginx_version, review_bytes, answer_bytes,
                                   count, int(count) // 5, body)
print(section)
text = open(results).read()
if "<!-- begin bench/webhook.sh -->" in text:
    a = text.index("<!-- begin bench/webhook.sh -->")
    b = text.index("<!-- end bench/webhook.sh -->") + len("<!-- end bench/webhook.sh -->")
    text = text[:a] + section + text[b:]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(results, "w").write(text)
PY
