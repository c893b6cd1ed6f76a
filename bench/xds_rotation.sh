#!/usr/bin/env bash
# Secret rotation at scale: N clusters (default 10,000) from xds-server, all
# using the same SDS secrets ("default", "ROOTCA"); the certificate rotates
# every few seconds. Prints how long the sidecar took to apply each update
# (its "applied_in" log field: from the response decoded to the new contexts
# published) and its RSS. Target: a rotation applied in under 50 ms.
#
#   bench/xds_rotation.sh [CLUSTERS] [ROTATIONS]
#
# SIDECAR_BIN, XDS_SERVER_BIN, CERTS_BIN: use these binaries instead of
# building with Bazel (BAZEL_OUTPUT_BASE, default /tmp/bzl-bench).
set -euo pipefail
CLUSTERS=${1:-10000}
ROTATIONS=${2:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SIDECAR_BIN:-}" ]; then
  OB=${BAZEL_OUTPUT_BASE:-/tmp/bzl-bench}
  (cd "$REPO" && bazel --output_base="$OB" build -c opt --symlink_prefix=/ \
     //sidecar:sidecar //xds-server:xds-server //certs:certs >&2)
  BIN=$(cd "$REPO" && bazel --output_base="$OB" info -c opt bazel-bin 2>/dev/null)
  SIDECAR_BIN=$BIN/sidecar/sidecar XDS_SERVER_BIN=$BIN/xds-server/xds-server CERTS_BIN=$BIN/certs/certs
fi
T=$(mktemp -d /tmp/xds-rotation.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ADS=$(port) STATUS=$(port) ADMIN=$(port)

cd "$T"
"$CERTS_BIN" ca --out ca >/dev/null
"$CERTS_BIN" issue --ca ca --out server --dns xds.local --ip 127.0.0.1 --server >/dev/null
"$CERTS_BIN" issue --ca ca --out bootstrap --uri spiffe://cluster.local/ns/default/sa/bootstrap --client >/dev/null
mkdir res
python3 - "$CLUSTERS" <<'PY'
import json, sys
n = int(sys.argv[1])
tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    "sni": "backend.local", "common_tls_context": {
        "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": {"ads": {}}}],
        "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": {"ads": {}}}}}}
res = [{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": f"c{i}",
        "type": "STATIC", "connect_timeout": "1s", "transport_socket": tls,
        "load_assignment": {"cluster_name": f"c{i}", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]}}
       for i in range(n)]
json.dump({"resources": res}, open("res/clusters.json", "w"))
PY
cat > sidecar.json <<JSON
{"admin": {"address": "127.0.0.1:$ADMIN"}, "workers": 2,
 "xds": {"address": "127.0.0.1:$ADS",
         "tls": {"certificate": "bootstrap.crt", "private_key": "bootstrap.key",
                 "trusted_ca": "ca/ca.crt", "server_name": "xds.local"},
         "node": {"id": "bench.default"}}}
JSON
"$XDS_SERVER_BIN" --listen 127.0.0.1:$ADS --status-address 127.0.0.1:$STATUS --tls-cert server.crt \
  --tls-key server.key --ca-cert ca/ca.crt --ca-key ca/ca.key --config-dir res --cert-ttl 6s \
  > xds-server.log 2>&1 &
PIDS+=($!)
sleep 1
"$SIDECAR_BIN" --config sidecar.json > sidecar.log 2>&1 &
SIDECAR=$!
PIDS+=($SIDECAR)
for _ in $(seq 1 $((ROTATIONS * 6 + 30))); do
  sleep 1
  [ "$(grep -c 'applied_in=.* rotation' sidecar.log || true)" -ge "$ROTATIONS" ] && break
done
echo "clusters: $CLUSTERS (all sharing the SDS secrets default and ROOTCA)"
grep -o 'xds update accepted: type=[a-z]* .*applied_in=[0-9.]*ms\( rotation\)\?' sidecar.log |
  sed -E 's/xds update accepted: type=([a-z]*) version=[0-9a-f]* resources=([0-9]*) applied_in=([0-9.]*ms)( rotation)?/  \1 (\2 resources)\4: \3/'
echo "sidecar RSS: $(ps -o rss= -p $SIDECAR | tr -d ' ') KiB"
