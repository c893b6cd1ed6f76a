# shellcheck shell=bash
# xds_server_lib.sh: what the xds-server shell tests share, sourced after
# they set NAME (their runfile's base name, which also names their folder):
# tests/node/node_test_lib.sh (RUNFILES, CERTS, NODE_DIR, DIR, passed,
# failed, pids, issue_certs, wait_for), SERVER, and start_server. Fails at
# once without node, @grpc/grpc-js or @grpc/grpc-js-xds.
# shellcheck source=tests/node/node_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/node/node_test_lib.sh"
SERVER="$RUNFILES/xds-server/xds-server"
require_node_module @grpc/grpc-js-xds/deps/envoy-api

# start_server LOG ARGS...: starts xds-server on free ports with the
# certificates in $DIR (issue_certs URI bootstrap: server.crt/key,
# ca/ca.crt/key, the bootstrap CA bootstrap-ca/ca.crt) and ARGS; sets
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
