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
RUNFILES="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}"
SERVER="$RUNFILES/xds/xds-server"
CERTS="$RUNFILES/certs/certs"
# This script's runfile is a symlink into the source tree, where tests/node
# and its node_modules live.
SOURCE_ROOT="$(dirname "$(dirname "$(dirname "$(readlink -f "$RUNFILES/tests/xds_server/xds_server_test.sh")")")")"
NODE_DIR="$SOURCE_ROOT/tests/node"
DIR="${TEST_TMPDIR:-$(mktemp -d)}/xds_server"
passed=0
failed=0
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

if ! command -v node >/dev/null; then
  echo "FAIL: node is not installed (tools/install-deps.sh installs it)" >&2
  exit 1
fi
if [ ! -d "$NODE_DIR/node_modules/@grpc/grpc-js" ] ||
  [ ! -d "$NODE_DIR/node_modules/@grpc/grpc-js-xds/deps/envoy-api" ]; then
  echo "FAIL: $NODE_DIR/node_modules lacks @grpc/grpc-js or @grpc/grpc-js-xds:" \
    "run \`npm ci --prefix tests/node\` first (tools/install-deps.sh does it)" >&2
  exit 1
fi

rm -rf "$DIR"
mkdir -p "$DIR/conf"
"$CERTS" ca --out "$DIR/ca" >/dev/null &&
  "$CERTS" issue --ca "$DIR/ca" --out "$DIR/server" --dns localhost --ip 127.0.0.1 --server >/dev/null &&
  "$CERTS" ca --out "$DIR/bootstrap-ca" --cn bootstrap-ca >/dev/null &&
  "$CERTS" issue --ca "$DIR/bootstrap-ca" --out "$DIR/client" --client \
    --uri spiffe://cluster.local/ns/shop/sa/orders >/dev/null ||
  { echo "FAIL: could not issue certificates" >&2; exit 1; }
# The server's own certificate and the trust the client starts with outlive
# a CA rotation: keep a copy of the first CA.
cp "$DIR/ca/ca.crt" "$DIR/first-ca.crt"

# start_server LOG ARGS...: starts xds-server on free ports; sets
# server_pid, ads_port, status_port. Returns 1 if it did not come up.
start_server() {
  local log=$1
  shift
  "$SERVER" --listen 127.0.0.1:0 --status-address 127.0.0.1:0 \
    --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" \
    --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" \
    --client-ca "$DIR/bootstrap-ca/ca.crt" --serve-workload-keys "$@" 2>"$log" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 100); do
    local line
    line=$(grep -m1 'serving ADS on' "$log")
    if [ -n "$line" ]; then
      ads_port=$(sed -E 's/.*\(port ([0-9]+)\), status.*/\1/' <<<"$line")
      status_port=$(sed -E 's/.*status on .* \(port ([0-9]+)\)$/\1/' <<<"$line")
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

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
if start_server "$DIR/config.log" --config-dir "$DIR/conf"; then
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
if start_server "$DIR/rotation.log" --cert-ttl 6s --ca-overlap 3s; then
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
