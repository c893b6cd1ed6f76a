#!/bin/bash
# xds_server_probe_test.sh: what kubelet's probes and a rolling restart see
# of the real xds-server binary (docs/xds-server.md, "Health checks"):
#   1. GET /healthz and GET /readyz on the status address and on
#      --health-address, plain text of a few bytes; the health address
#      serves nothing else (/status is 404 there);
#   2. /readyz is 503 with the reason while a resource file has never
#      loaded, 200 once it is fixed (and /healthz stays 200 all along);
#   3. --drain-delay: SIGTERM turns /readyz to 503 "draining", the ADS port
#      still accepts and completes TLS handshakes, and the server exits 0
#      after the delay, not before; a second SIGTERM ends a drain at once.
# Needs curl and openssl (the s_client handshake).
set -u
NAME=xds_server_probe_test
# shellcheck source=tests/sh_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
CERTS="$RUNFILES/certs/certs"
SERVER="$RUNFILES/xds-server/xds-server"
for tool in curl openssl; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed" >&2; exit 1; }
done

"$CERTS" ca --out "$DIR/ca" >/dev/null &&
  "$CERTS" ca --out "$DIR/bootstrap-ca" --cn "bootstrap CA" >/dev/null &&
  "$CERTS" issue --ca "$DIR/ca" --out "$DIR/server" --dns localhost --ip 127.0.0.1 \
    --server >/dev/null &&
  "$CERTS" issue --ca "$DIR/bootstrap-ca" --out "$DIR/client" \
    --uri spiffe://cluster.local/ns/shop/sa/orders --client >/dev/null ||
  { echo "FAIL: could not issue certificates" >&2; exit 1; }
mkdir -p "$DIR/conf"
echo '{"resources": []}' >"$DIR/conf/good.json"

# start LOG ARGS...: xds-server on free ports with ARGS; sets server_pid,
# ads_port, status_port and health_port. Returns 1 if it did not come up.
start() {
  local log=$1 line
  shift
  "$SERVER" --listen 127.0.0.1:0 --status-address 127.0.0.1:0 --health-address 127.0.0.1:0 \
    --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" \
    --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" \
    --client-ca "$DIR/bootstrap-ca/ca.crt" --config-dir "$DIR/conf" --debounce-ms 50 \
    "$@" 2>"$log" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 100); do
    line=$(grep -m1 'health checks (/healthz, /readyz) on' "$log")
    if [ -n "$line" ]; then
      health_port=$(sed -E 's/.*\(port ([0-9]+)\)$/\1/' <<<"$line")
      line=$(grep -m1 'serving ADS on' "$log")
      ads_port=$(sed -E 's/.*\(port ([0-9]+)\), status.*/\1/' <<<"$line")
      status_port=$(sed -E 's/.*status on .* \(port ([0-9]+)\)$/\1/' <<<"$line")
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "xds-server did not start: $(cat "$log")"
  return 1
}

# get PORT PATH: prints "STATUS BODY" (the body on one line).
get() {
  local code
  code=$(curl -s -m 5 -o "$DIR/body" -w '%{http_code}' "http://127.0.0.1:$1$2")
  echo "$code $(tr '\n' ' ' <"$DIR/body" | sed 's/ $//')"
}

# expect_get PORT PATH WANT WHAT: GET PATH answers exactly WANT ("200 ok").
expect_get() {
  local got
  got=$(get "$1" "$2")
  [ "$got" = "$3" ] || fail "$4: GET $2 on port $1 answered \"$got\", want \"$3\""
}

# wait_get PORT PATH WANT WHAT: the same, within 10 s.
wait_get() {
  for _ in $(seq 100); do
    [ "$(get "$1" "$2")" = "$3" ] && return 0
    sleep 0.1
  done
  expect_get "$@"
}

# handshake: a TLS handshake with the ADS port completes (the bootstrap
# client certificate, h2 offered).
handshake() {
  timeout 5 openssl s_client -connect "127.0.0.1:$ads_port" -alpn h2 \
    -cert "$DIR/client.crt" -key "$DIR/client.key" -CAfile "$DIR/ca/ca.crt" \
    </dev/null >"$DIR/s_client.out" 2>&1 &&
    grep -q 'Verify return code: 0 (ok)' "$DIR/s_client.out"
}

# 1. Both addresses, both paths; /status only on the status address.
if start "$DIR/probes.log"; then
  for port in "$status_port" "$health_port"; do
    expect_get "$port" /healthz "200 ok" "liveness"
    expect_get "$port" /readyz "200 ready" "readiness"
  done
  [ "$(curl -s -m 5 -o /dev/null -w '%{size_download}' "http://127.0.0.1:$health_port/healthz")" = 3 ] ||
    fail "/healthz is not 3 bytes"
  expect_get "$status_port" "/healthz?verbose=1" "200 ok" "a query is ignored"
  [ "$(get "$status_port" /status | cut -c1-3)" = 200 ] || fail "/status on the status address"
  expect_get "$health_port" /status \
    '404 {"error": "not found; this address serves GET /healthz and /readyz only"}' \
    "the health address serves nothing else"
  [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST \
    "http://127.0.0.1:$health_port/healthz")" = 405 ] || fail "POST /healthz is not 405"
  kill -TERM "$server_pid"
  wait "$server_pid" || fail "xds-server did not exit 0 on SIGTERM: $(tail -20 "$DIR/probes.log")"
fi

# 2. A resource file that has never loaded holds readiness, not liveness.
echo '{"resources": [' >"$DIR/conf/broken.json"
if start "$DIR/broken.log"; then
  want="503 not ready: resource file broken.json has never loaded (its resources are not served; see /status file_errors)"
  expect_get "$health_port" /readyz "$want" "a file that never loaded"
  expect_get "$health_port" /healthz "200 ok" "liveness with a broken file"
  [ "$(curl -s -m 5 "http://127.0.0.1:$status_port/status" |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["server"]; print(s["ready"], s["not_ready_reason"].startswith("resource file broken.json"))')" = \
    "False True" ] || fail "/status does not say why it is not ready"
  echo '{"resources": []}' >"$DIR/conf/broken.json.tmp"
  mv "$DIR/conf/broken.json.tmp" "$DIR/conf/broken.json"
  wait_get "$health_port" /readyz "200 ready" "the file fixed"
  # Broken again: its last good version is served, and the server stays ready.
  echo '{"resources": [' >"$DIR/conf/broken.json"
  for _ in $(seq 100); do
    grep -q 'keeping its last good version' "$DIR/broken.log" && break
    sleep 0.1
  done
  grep -q 'keeping its last good version' "$DIR/broken.log" ||
    fail "the file broken again was not reloaded: $(cat "$DIR/broken.log")"
  expect_get "$health_port" /readyz "200 ready" "a file broken after it loaded"
  kill -TERM "$server_pid"
  wait "$server_pid" || fail "xds-server did not exit 0 on SIGTERM: $(tail -20 "$DIR/broken.log")"
fi
rm -f "$DIR/conf/broken.json"

# 3. --drain-delay: not ready at once, still serving, gone after the delay.
if start "$DIR/drain.log" --drain-delay 3s; then
  handshake || fail "no handshake before the drain: $(cat "$DIR/s_client.out")"
  began=$(date +%s%N)
  kill -TERM "$server_pid"
  wait_get "$health_port" /readyz "503 not ready: draining: shutting down" "draining"
  expect_get "$health_port" /healthz "200 ok" "liveness while draining"
  handshake || fail "no handshake while draining: $(cat "$DIR/s_client.out")"
  grep -q 'SIGTERM received; draining' "$DIR/drain.log" || fail "no drain line in the log"
  kill -0 "$server_pid" 2>/dev/null || fail "xds-server exited before the drain delay"
  wait "$server_pid" || fail "xds-server did not exit 0 after the drain: $(tail -20 "$DIR/drain.log")"
  elapsed_ms=$((($(date +%s%N) - began) / 1000000))
  [ "$elapsed_ms" -ge 2900 ] || fail "xds-server exited ${elapsed_ms} ms after SIGTERM, before 3 s"
  [ "$elapsed_ms" -lt 8000 ] || fail "xds-server exited ${elapsed_ms} ms after SIGTERM"
  grep -q 'the drain delay is over, shutting down' "$DIR/drain.log" || fail "no end-of-drain line"
fi
# A second signal ends the drain at once.
if start "$DIR/drain2.log" --drain-delay 60s; then
  kill -TERM "$server_pid"
  wait_get "$health_port" /readyz "503 not ready: draining: shutting down" "draining (2)"
  began=$(date +%s%N)
  kill -TERM "$server_pid"
  wait "$server_pid" || fail "xds-server did not exit 0 on a second SIGTERM"
  elapsed_ms=$((($(date +%s%N) - began) / 1000000))
  [ "$elapsed_ms" -lt 5000 ] || fail "a second SIGTERM took ${elapsed_ms} ms"
fi

finish
