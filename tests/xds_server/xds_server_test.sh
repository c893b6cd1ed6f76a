#!/bin/bash
# xds_server_test.sh: the real xds-server binary against a real ADS client
# written elsewhere: @grpc/grpc-js with Envoy's own .proto files
# (tests/node/ads_client.js), over mutual TLS on loopback.
#   1. config: CDS/EDS/LDS from a JSON directory, SDS certificate and bundle,
#      ACK, an edit within a second, NACK and stale nonce in /status, an
#      invalid file reported with the last good version kept.
#   2. rotation: --cert-ttl 6s, a new certificate within 4.2 s; a CA rotation
#      through the watched CA files (bundle with both CAs, then the new one).
#   3. SIGTERM: the server exits 0 after closing its loop cleanly.
# Certificates come from the certs CLI at test time. Needs node and
# tests/node/node_modules (npm ci --prefix tests/node).
set -u
NAME=xds_server_test
# shellcheck source=tests/xds_server/xds_server_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/xds_server/xds_server_lib.sh"

mkdir -p "$DIR/conf"
issue_certs spiffe://cluster.local/ns/shop/sa/orders bootstrap
# The server's own certificate and the trust the client starts with outlive
# a CA rotation: keep a copy of the first CA.
cp "$DIR/ca/ca.crt" "$DIR/first-ca.crt"

# stop_server LOG: SIGTERM, and the server must exit 0 (clean loop; no leaks
# under ASan).
stop_server() {
  kill -TERM "$server_pid"
  if wait "$server_pid"; then
    passed=$((passed + 1))
    echo "ok: xds-server exits 0 on SIGTERM"
  else
    failed=$((failed + 1))
    echo "FAIL: xds-server did not shut down cleanly; its log:" >&2
    tail -40 "$1" >&2
  fi
}

# run_client LOG NAME ARGS...: runs ads_client.js, counting the result.
run_client() {
  local log=$1 name=$2
  shift 2
  if timeout 90 node "$NODE_DIR/ads_client.js" --address "127.0.0.1:$ads_port" \
    --ca "$DIR/first-ca.crt" --cert "$DIR/client.crt" --key "$DIR/client.key" \
    --status-url "http://127.0.0.1:$status_port" "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name (server log below)" >&2
    cat "$log" >&2
  fi
}

# 1. Configuration from files, SDS, ACK/NACK, edits, invalid files.
node "$NODE_DIR/ads_client.js" --mode write-config --config-dir "$DIR/conf" ||
  { echo "FAIL: could not write the configuration" >&2; exit 1; }
if start_server "$DIR/config.log" --config-dir "$DIR/conf" --serve-workload-keys; then
  run_client "$DIR/config.log" "the config scenario" --mode config --config-dir "$DIR/conf"
  for want in 'connected from' 'ACK CDS' 'NACK CDS' 'test NACK: connect_timeout too long' \
    'backend.json: resources\[0\].conect_timeout' 'certificate issued'; do
    if grep -q "$want" "$DIR/config.log"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "FAIL: no log line with \"$want\"" >&2
    fi
  done
  if grep -qi 'BEGIN.*PRIVATE KEY' "$DIR/config.log"; then
    failed=$((failed + 1))
    echo "FAIL: key material in the log" >&2
  fi
  stop_server "$DIR/config.log"
else
  failed=$((failed + 1))
  echo "FAIL: xds-server did not start:" >&2
  cat "$DIR/config.log" >&2
fi

# 2. Certificate rotation and CA rotation.
if start_server "$DIR/rotation.log" --cert-ttl 6s --ca-overlap 3s --serve-workload-keys; then
  run_client "$DIR/rotation.log" "the rotation scenario" --mode rotation \
    --certs-tool "$CERTS" --ca-dir "$DIR/ca"
  stop_server "$DIR/rotation.log"
else
  failed=$((failed + 1))
  echo "FAIL: xds-server did not start:" >&2
  cat "$DIR/rotation.log" >&2
fi

echo "xds_server_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
