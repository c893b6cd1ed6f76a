#!/bin/bash
# istio_ca_node_test.sh: Istio's CA API with a real gRPC implementation,
# @grpc/grpc-js (tests/node/istio_ca_client.js), on loopback over mutual TLS:
#   1. against xds-server: a CSR (key and CSR from the openssl CLI) for the
#      bootstrap certificate's SPIFFE ID gets a chain whose leaf certifies
#      the key, names that ID, lasts no more than asked, verifies to the
#      bundle; a CSR for another identity is PERMISSION_DENIED naming both;
#   2. against tests/node/istio_ca_server.js, the stand-in CA the sidecar's
#      tests use: the same, and its misbehaving mode is noticed.
# Needs node, openssl and tests/node/node_modules (npm ci --prefix tests/node).
set -u
NAME=istio_ca_node
# shellcheck source=tests/node/node_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/node/node_test_lib.sh"
SERVER="$RUNFILES/xds-server/xds-server"
ID="spiffe://cluster.local/ns/default/sa/node-client"
require_command openssl
issue_certs "$ID" bootstrap

# client NAME PORT ARGS...: runs the grpc-js client, counting the result.
client() {
  local name="$1" port="$2"
  shift 2
  if timeout 60 node "$NODE_DIR/istio_ca_client.js" --address "127.0.0.1:$port" \
    --ca "$DIR/ca/ca.crt" --cert "$DIR/client.crt" --key "$DIR/client.key" --spiffe-id "$ID" "$@"; then
    passed=$((passed + 1))
  else
    echo "FAIL: $name" >&2
    failed=$((failed + 1))
  fi
}

# 1. xds-server.
"$SERVER" --listen 127.0.0.1:0 --status-address off --tls-cert "$DIR/server.crt" \
  --tls-key "$DIR/server.key" --client-ca "$DIR/bootstrap-ca/ca.crt" --ca-cert "$DIR/ca/ca.crt" \
  --ca-key "$DIR/ca/ca.key" --cert-ttl 1h >"$DIR/xds_server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
if port=$(wait_for "$DIR/xds_server.log" $server_pid '.*serving ADS on [^ ]* \(port ([0-9]+)\).*'); then
  client "xds-server: a certificate for the caller's CSR" "$port" --expect ok --validity 600
  client "xds-server: validity capped at --cert-ttl" "$port" --expect ok --validity 3600
  client "xds-server: another identity's CSR is refused" "$port" --expect denied
  kill -TERM $server_pid
  if ! wait $server_pid; then
    echo "FAIL: xds-server did not shut down cleanly" >&2
    failed=$((failed + 1))
  fi
  grep -q "ca_api: signed serial .* for $ID" "$DIR/xds_server.log" ||
    { echo "FAIL: xds-server logged no signing" >&2; failed=$((failed + 1)); }
else
  echo "FAIL: xds-server did not start" >&2
  failed=$((failed + 1))
fi
[ "$failed" -eq 0 ] || cat "$DIR/xds_server.log" >&2

# 2. The stand-in CA, well-behaved and not.
for mode in ok other-identity; do
  node "$NODE_DIR/istio_ca_server.js" --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" \
    --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" --client-ca "$DIR/bootstrap-ca/ca.crt" \
    --mode "$mode" >"$DIR/node_$mode.port" 2>"$DIR/node_$mode.log" &
  pid=$!
  pids+=("$pid")
  if port=$(wait_for "$DIR/node_$mode.port" $pid "$WAIT_PORT"); then
    if [ "$mode" = ok ]; then
      client "istio_ca_server.js: a certificate" "$port" --expect ok --validity 600
      client "istio_ca_server.js: another identity refused" "$port" --expect denied
    else
      client "istio_ca_server.js --mode $mode is noticed" "$port" --expect mismatch
    fi
  else
    echo "FAIL: istio_ca_server.js --mode $mode did not start:" >&2
    cat "$DIR/node_$mode.log" >&2
    failed=$((failed + 1))
  fi
  kill $pid 2>/dev/null
done

echo "istio_ca_node_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
