# xds_server_lib.sh: what the xds-server shell tests share, sourced after
# they set NAME (their runfile's base name, which also names their folder).
# Sets RUNFILES, SERVER, CERTS, NODE_DIR, DIR, passed, failed, pids; kills
# what is in pids on exit; fails at once without node or node_modules.
RUNFILES="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}"
SERVER="$RUNFILES/xds/xds-server"
CERTS="$RUNFILES/certs/certs"
# The script's runfile is a symlink into the source tree, where tests/node
# and its node_modules live.
SOURCE_ROOT="$(dirname "$(dirname "$(dirname "$(readlink -f "$RUNFILES/tests/xds_server/$NAME.sh")")")")"
NODE_DIR="$SOURCE_ROOT/tests/node"
DIR="${TEST_TMPDIR:-$(mktemp -d)}/$NAME"
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

# start_server LOG ARGS...: starts xds-server on free ports with the
# certificates in $DIR (server.crt/key, ca/ca.crt/key, the bootstrap CA
# bootstrap-ca/ca.crt) and ARGS; sets
# server_pid, ads_port, status_port. Returns 1 if it did not come up.
start_server() {
  local log=$1
  shift
  "$SERVER" --listen 127.0.0.1:0 --status-address 127.0.0.1:0 \
    --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" \
    --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" \
    --client-ca "$DIR/bootstrap-ca/ca.crt" "$@" 2>"$log" &
  server_pid=$!
  pids+=("$server_pid")
  wait_serving "$log"
}

# wait_serving LOG: waits for the "serving ADS on" line of the server
# started as server_pid; sets ads_port and status_port.
wait_serving() {
  local log=$1 line
  for _ in $(seq 100); do
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
