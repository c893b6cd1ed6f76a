#!/bin/bash
# xds_server_hostile_test.sh: the real xds-server binary against hostile
# clients on loopback (tests/node/hostile_ads_client.js, raw HTTP/2 from
# Node, messages encoded by hand), each followed by a well-formed client
# that must be served:
#   a. node.metadata nested 30,000 deep: the stream ends INVALID_ARGUMENT
#      naming the cause, the server stays up;
#   b. a node.id with a newline and an ANSI escape: one log line, escaped;
#   c. 1,000 streams at once on one connection: 100 answered, the rest
#      refused (REFUSED_STREAM) or left waiting, counted in /status;
#   d. a client that never reads while the server pushes: disconnected past
#      --max-queued-bytes, the server's memory bounded;
#   e. descriptors exhausted (RLIMIT_NOFILE 64): accepting pauses instead of
#      spinning (CPU under 0.3 s over 2 s), few log lines; served after.
# Needs node and tests/node/node_modules (npm ci --prefix tests/node).
set -u
NAME=xds_server_hostile_test
# shellcheck source=tests/xds_server/xds_server_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/xds_server/xds_server_lib.sh"

check() { # check NAME CONDITION-EXIT-STATUS [DETAIL]
  if [ "$2" -eq 0 ]; then
    passed=$((passed + 1))
    echo "ok: $1"
  else
    failed=$((failed + 1))
    echo "FAIL: $1${3:+: $3}" >&2
  fi
}

mkdir -p "$DIR/conf"
issue_certs spiffe://cluster.local/ns/hostile/sa/tester bootstrap
# 40 clusters: a CDS response of a few KiB.
{
  echo '{"resources": ['
  for i in $(seq 1 40); do
    [ "$i" -gt 1 ] && echo ','
    echo "{\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\", \"name\": \"c$i\","
    echo " \"type\": \"EDS\", \"connect_timeout\": \"1.5s\", \"eds_cluster_config\": {\"eds_config\": {\"ads\": {}}}}"
  done
  echo ']}'
} >"$DIR/conf/clusters.json"

hostile() { # hostile MODE ARGS...: prints the client's JSON line
  timeout 60 node "$NODE_DIR/hostile_ads_client.js" --address "127.0.0.1:$ads_port" \
    --ca "$DIR/ca/ca.crt" --cert "$DIR/client.crt" --key "$DIR/client.key" --mode "$@"
}

json() { # json FIELD.PATH < JSON
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);
    for (const k of process.argv[1].split(".")) v=v===undefined?undefined:v[k];
    console.log(typeof v==="object"?JSON.stringify(v):String(v))})' "$1"
}

status_json() {
  curl -s --max-time 5 "http://127.0.0.1:$status_port/status"
}

served() { # served NAME: a well-formed client gets a response
  local out
  out=$(hostile served --id "well-formed")
  [ "$(json served <<<"$out")" = true ]
  check "$1: a well-formed client is served afterwards" $? "$out"
}

alive() {
  kill -0 "$server_pid" 2>/dev/null
  check "$1: xds-server is still running" $?
}

cpu_ticks() { # utime + stime of a process, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

rss_kib() {
  awk '/VmRSS/ {print $2}' "/proc/$1/status"
}

# ---- a, b, c, d: one server --------------------------------------------------
log="$DIR/hostile.log"
if ! start_server "$log" --config-dir "$DIR/conf" --max-queued-bytes 1048576; then
  echo "FAIL: xds-server did not start:" >&2
  cat "$log" >&2
  exit 1
fi

# a. 30,000 levels of Value/ListValue in node.metadata.
out=$(hostile deep --depth 30000)
echo "deep: $out"
[ "$(json status <<<"$out")" = 3 ]
check "a: 30,000-deep node.metadata ends the stream INVALID_ARGUMENT" $? "$out"
grep -q 'nests deeper than 64 levels' <<<"$(json message <<<"$out")"
check "a: the grpc-message names the cause" $? "$out"
alive "a"
[ "$(status_json | json limits.requests_refused)" = 1 ]
check "a: /status counts the refused request" $?
served "a"

# b. A node.id that would forge a log line, in color (no dot: a bare name,
# which claims no identity).
id=$'evil\n2026-01-01T00:00:00Z info forged \x1b[31mred'
out=$(hostile served --id "$id")
[ "$(json served <<<"$out")" = true ]
check "b: the node with a hostile id is served" $? "$out"
grep -q 'node evil\\x0a2026-01-01T00:00:00Z info forged \\x1b\[31mred (cluster' "$log" &&
  ! grep -q '^2026-01-01T00:00:00Z' "$log"
check "b: its id is logged escaped, each event on one line" $? "$(grep -a forged "$log")"
! grep -q $'\x1b' "$log"
check "b: no escape character reaches the log" $?

# c. 1,000 streams on one connection.
out=$(hostile streams --streams 1000)
echo "streams: $out"
answered=$(json answered <<<"$out")
refused=$(json refused <<<"$out")
waiting=$(json waiting <<<"$out")
[ "$answered" = 100 ]
check "c: exactly 100 of 1,000 streams answered on one connection" $? "$out"
[ $((answered + refused + waiting)) = 1000 ] && [ "$((refused + waiting))" = 900 ]
check "c: the other 900 refused or left waiting" $? "$out"
counted=$(status_json | json limits.streams_per_connection.refused)
[ "$counted" = "$refused" ]
check "c: /status counts the $refused refused streams" $? "counted $counted"
alive "c"
served "c"

# d. A client that never reads.
rss_before=$(rss_kib "$server_pid")
out=$(hostile noread --streams 50 --seconds 20)
rss_after=$(rss_kib "$server_pid")
echo "noread: $out; server RSS ${rss_before} KiB before, ${rss_after} KiB after"
[ "$(json closed_by_server <<<"$out")" = true ]
check "d: a client that never reads is disconnected" $? "$out"
[ "$(status_json | json limits.queued_bytes_per_connection.connections_closed)" -ge 1 ]
check "d: /status counts it" $?
[ $((rss_after - rss_before)) -lt 65536 ]
check "d: the server's memory stays bounded (+$((rss_after - rss_before)) KiB)" $?
grep -q 'does not read' "$log"
check "d: the log says why" $?
alive "d"
served "d"

kill -TERM "$server_pid"
wait "$server_pid"
check "xds-server exits 0 on SIGTERM after all that" $?

# ---- e. descriptors exhausted -------------------------------------------------
log="$DIR/emfile.log"
# 64 descriptors: the server's own (listeners, epoll, watches, ...) and some
# connections; the client holds 150.
(
  ulimit -n 64
  exec "$SERVER" --listen 127.0.0.1:0 --status-address 127.0.0.1:0 \
    --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" \
    --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" --config-dir "$DIR/conf" \
    --client-ca "$DIR/bootstrap-ca/ca.crt"
) 2>"$log" &
server_pid=$!
pids+=("$server_pid")
wait_serving "$log" || { echo "FAIL: xds-server did not start:" >&2; cat "$log" >&2; exit 1; }
# Hold 150 idle TCP connections (no TLS) until told to stop.
python3 - "$ads_port" "$DIR/hold" <<'PY' &
import os, socket, sys, time
port, flag = int(sys.argv[1]), sys.argv[2]
held = []
for _ in range(150):
    s = socket.create_connection(("127.0.0.1", port))
    held.append(s)
open(flag, "w").close()
while os.path.exists(flag):
    time.sleep(0.05)
for s in held:
    s.close()
PY
holder=$!
pids+=("$holder")
for _ in $(seq 100); do [ -e "$DIR/hold" ] && break; sleep 0.05; done
sleep 0.5
ticks_before=$(cpu_ticks "$server_pid")
sleep 2
ticks_after=$(cpu_ticks "$server_pid")
hz=$(getconf CLK_TCK)
cpu_ms=$(((ticks_after - ticks_before) * 1000 / hz))
echo "descriptors exhausted: ${cpu_ms} ms of CPU over 2 s"
[ "$cpu_ms" -lt 300 ]
check "e: accepting pauses instead of spinning (${cpu_ms} ms of CPU over 2 s)" $?
lines=$(grep -c 'accepting a connection failed' "$log")
[ "$lines" -ge 1 ] && [ "$lines" -le 5 ]
check "e: at most one log line a second ($lines lines)" $? "$(grep 'accepting' "$log" | head -3)"
rm -f "$DIR/hold"
wait "$holder"
sleep 1.5 # the pause (1 s at most) ends, the closed connections are accepted and dropped
alive "e"
served "e"
failures=$(status_json | json limits.accept_failures)
[ "$failures" -ge 1 ]
check "e: /status counts $failures accept failures" $?
kill -TERM "$server_pid"
wait "$server_pid"
check "e: xds-server exits 0 on SIGTERM" $?

echo "xds_server_hostile_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
