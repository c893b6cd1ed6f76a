#!/usr/bin/env bash
# HTTP/1.1 mTLS origination benchmark: nginx `proxy_pass https://` over `keepalive`
# upstream connections vs the mtls-sidecar's "protocol": "http" listener over its
# connection pool, side by side, the same TLS settings, the same loads.
#
#   bench/http.sh [--quick] [--rate=N] [--rounds=N]
#
# Loads, on GET /small through each originator to the mTLS upstream nginx:
#   (1) closed loop: wrk -t2 -c64 -d10s --latency (--quick: 4 s)
#   (2) the same offered load: wrk -t2 -c32 at a fixed rate (bench/fixed_rate.lua),
#       N requests/s with --rate=N, else half the lower of the two rates in (1)
# Each load runs --rounds=N times (default 3, --quick 1), nginx and the sidecar in
# turn; the report gives the median of each figure and each round's ratio.
# Measured per originator and load: CPU per request (/proc, all its processes),
# requests/s, p50/p99 (wrk --latency), and TLS handshakes per 10,000 requests
# (connections the originator opened, from the upstream's access log; for the
# sidecar also its ssl_handshake stat).
#
# Environment (optional), as for bench/run.sh:
#   SIDECAR_BIN, CERTS_BIN  use these binaries instead of building with Bazel
#   BAZEL_OUTPUT_BASE       private output base for the build (default /tmp/bzl-bench)
#   KEEP_TMP=1              keep the temp dir (default: removed at exit)
#
# Everything runs in a temp dir on 127.0.0.1 only; every process started here is
# stopped at exit. Results: printed and written to their section of bench/results.md;
# the logs of the last run are copied to bench/logs/http/. What this shares with
# bench/run.sh is in bench/lib.sh.
set -uo pipefail

LOG_DIR=$(cd "$(dirname "$0")" && pwd)/logs/http
RATE=""
bench_arg() {
  case "$1" in
    --rate=*) RATE=${1#--rate=}; [[ $RATE =~ ^[1-9][0-9]*$ ]] || { echo "--rate wants requests per second, like --rate=5000" >&2; exit 2; } ;;
    *) return 1 ;;
  esac
}
source "$(dirname "$0")/lib.sh"
bench_init "$@"

if [ "$QUICK" = 1 ]; then D=4; else D=10; fi
KA_CONNS=64   # load (1)
FR_CONNS=32   # load (2): enough that each connection's turn (FR_CONNS/rate) dwarfs a response time
setv - ka_cmd "\"wrk -t2 -c$KA_CONNS -d${D}s --latency /small\""

start_upstream

# ---------------------------------------------------------------- originators
start_nginx_orig() {
  mkdir -p "$T/orig/tmp"
  cat >"$T/orig/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile $NOFILE;
pid $T/orig/nginx.pid;
error_log $T/orig/error.log warn;
events { worker_connections 20000; }
http {
  client_body_temp_path $T/orig/tmp; proxy_temp_path $T/orig/tmp; fastcgi_temp_path $T/orig/tmp;
  uwsgi_temp_path $T/orig/tmp; scgi_temp_path $T/orig/tmp;
  access_log off;
  # client side: wrk's connections stay open, as the sidecar keeps them (nginx's
  # default would close each after 1000 requests)
  keepalive_requests 1000000;
  upstream u { server 127.0.0.1:$P_UP_NGX; keepalive 256; }
  server {
    listen 127.0.0.1:$P_NGX backlog=4096;
    location / {
      proxy_pass https://u;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      $(nginx_proxy_ssl)
    }
  }
}
EOF
  start_nginx "$T/orig" "$P_NGX" || { log "nginx originator did not start"; return 1; }
}

log "=== starting nginx proxy_pass https:// and the sidecar"
start_nginx_orig || exit 1
NGX_PID=$NGINX_PID
start_sidecar http || exit 1
SC_PID=$SIDECAR_PID
ORIGINATORS="nginx:$P_NGX:$NGX_PID:$P_UP_NGX sidecar:$P_SC:$SC_PID:$P_UP_SC"   # name:port:pid:upstream port
setv - config_note "\"nginx: worker_processes 2, upstream keepalive 256 (per worker, as the sidecar's max_idle default), proxy_http_version 1.1, Connection \\\"\\\", the proxy_ssl_* settings of the sidecar's cluster, access_log off, client-side keepalive_requests 1000000 (the sidecar does not limit client requests either); sidecar: workers 2, one \\\"protocol\\\": \\\"http\\\" listener with its defaults (it adds X-Forwarded-For and X-Forwarded-Proto, nginx as configured does not), http_pool defaults (max_idle 256 per worker, max_requests 1000).\""

# ---------------------------------------------------------------- loads
# measure NAME LOAD PID UPSTREAM_PORT WRK_ARGS...: run wrk with WRK_ARGS against one
# originator and record, under NAME, LOAD_<metric>: requests, rps, latencies, CPU of
# the originator's processes, and the upstream connections it opened meanwhile.
measure() {
  local name=$1 load=$2 pid=$3 upport=$4 c0 c1 k0 k1 l0 l1 stats=()
  shift 4
  local f="$T/$name.$load.wrk"
  [ "$name" = sidecar ] && stats+=("$(M stats "http://127.0.0.1:$P_ADMIN/stats")")
  l0=$(wc -l <"$T/up/access.log")
  read -r c0 k0 <<<"$(M cpu "$pid")"
  timeout $((D + 30)) wrk "$@" >"$f" 2>&1
  read -r c1 k1 <<<"$(M cpu "$pid")"
  sleep 0.5   # the upstream logs the last answers
  l1=$(wc -l <"$T/up/access.log")
  if [ "$name" = sidecar ]; then
    stats+=("$(M stats "http://127.0.0.1:$P_ADMIN/stats")")
    timeout 10 curl -s --max-time 5 "http://127.0.0.1:$P_ADMIN/stats" >"$T/sidecar.$load.stats.out"
  fi
  check_wrk "$name" "$load" "$f"
  M record-load "$RES" "$name" "$load" "$f" "$(M calc "$c1-$c0")" "$T/up/access.log" "$upport" \
    "$l0" "$l1" "${stats[@]}" >"$T/$name.$load.out"
  setv "$name" "${load}_cpu_sys_s" "$(M calc "$k1-$k0")"
}

# (1) closed loop, each originator as fast as it answers
for round in $(seq "$ROUNDS"); do
  export BENCH_ROUND=$round
  for o in $(in_turn "$round" $ORIGINATORS); do
    IFS=: read -r name port pid upport <<<"$o"
    log "$name: (1) closed loop ${D}s, round $round of $ROUNDS"
    timeout 20 wrk -t2 -c$KA_CONNS -d1s "http://127.0.0.1:$port/small" >/dev/null 2>&1   # warm-up
    sleep 1
    measure "$name" ka "$pid" "$upport" -t2 -c$KA_CONNS -d${D}s --latency "http://127.0.0.1:$port/small"
    sleep 2
  done
done
declare -A KA_RPS   # the median closed-loop rates
for name in nginx sidecar; do KA_RPS[$name]=$(M value "$RES" "$name" ka_rps); done

# (2) the same offered load for both: a fixed rate well below both capacities
if [ -z "$RATE" ]; then
  RATE=$(M calc "max(100, int(min(${KA_RPS[nginx]:-0}, ${KA_RPS[sidecar]:-0}) / 2 / 100) * 100)")
  [ "$RATE" = 100 ] && anomaly "load (2): no closed-loop rate from load (1) (nginx ${KA_RPS[nginx]:-none}/s, sidecar ${KA_RPS[sidecar]:-none}/s); offered 100 requests/s"
  RATE_HOW="half the lower of the two closed-loop rates of load (1), rounded down to 100/s"
else
  RATE_HOW="given with --rate"
fi
FR_CMD="wrk -t2 -c$FR_CONNS -d${D}s --latency -s bench/fixed_rate.lua /small -- $RATE 2"
setv - fr_rate "$RATE"
setv - fr_cmd "\"$FR_CMD\""
setv - fr_how "\"$RATE requests/s ($RATE_HOW), offered to each originator in turn. wrk alone is closed loop (a faster originator gets more load); bench/fixed_rate.lua gives each of wrk's 2 threads a fixed schedule, one send every 2/$RATE s, and each request waits for the next free slot, so both originators are offered exactly $RATE requests/s whatever their speed, from $FR_CONNS connections (each connection's turn, $FR_CONNS/$RATE s, far longer than a response). A late request is sent at once without moving the schedule; the row '(2) requests/s achieved' shows whether an originator kept up. Latency: from each request's send to its response (wrk --latency).\""
for round in $(seq "$ROUNDS"); do
  export BENCH_ROUND=$round
  for o in $(in_turn "$round" $ORIGINATORS); do
    IFS=: read -r name port pid upport <<<"$o"
    log "$name: (2) $RATE requests/s for ${D}s, round $round of $ROUNDS"
    timeout 20 wrk -t2 -c$FR_CONNS -d1s -s "$HERE/fixed_rate.lua" "http://127.0.0.1:$port/small" -- "$RATE" 2 >/dev/null 2>&1   # warm-up
    sleep 1
    measure "$name" fr "$pid" "$upport" -t2 -c$FR_CONNS -d${D}s --latency -s "$HERE/fixed_rate.lua" \
      "http://127.0.0.1:$port/small" -- "$RATE" 2
    rps=$(M get "$(M wrk "$T/$name.fr.wrk")" rps)
    [ "$(M calc "${rps:-0} < 0.95 * $RATE")" = true ] && anomaly "$name load (2), round $round: achieved ${rps:-no} requests/s of $RATE offered: it did not keep up (or the machine was busy)"
    sleep 2
  done
done
unset BENCH_ROUND

# ---------------------------------------------------------------- stop, check, report
stop_tree "$NGX_PID"
check_nginx_log "nginx originator" "$T/orig/error.log"
stop_sidecar "$SC_PID"
check_nginx_log upstream "$T/up/error.log"

M report-http "$RES" "$HERE/results.md"
log "written $HERE/results.md (logs in $LOG_DIR/)"
