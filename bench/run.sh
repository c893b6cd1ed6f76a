#!/usr/bin/env bash
# mTLS origination benchmark: nginx stream `proxy_ssl` vs mtls-sidecar, side by side.
#
#   bench/run.sh [--quick] [--rounds=N]
#
# Loads, through each originator to the mTLS upstream nginx: baseline RSS and (d)
# N idle connections (once, on fresh processes), then in rounds (--rounds=N,
# default 3, --quick 1; nginx and the sidecar in turn, the first alternating):
# (a) keep-alive requests, (b) a new connection per request, (c) a 1 GiB transfer.
# The report gives each figure's median over the rounds and each round's ratio.
#
# Environment (optional):
#   SIDECAR_BIN, CERTS_BIN  use these binaries instead of building with Bazel
#   BAZEL_OUTPUT_BASE       private output base for the build (default /tmp/bzl-bench)
#   KEEP_TMP=1              keep the temp dir (default: removed at exit)
#
# Everything runs in a temp dir on 127.0.0.1 only; every process started here is
# stopped at exit. Results: printed and written to their section of bench/results.md;
# the logs of the last run are copied to bench/logs/. What this shares with
# bench/http.sh is in bench/lib.sh.
set -uo pipefail

source "$(dirname "$0")/lib.sh"
bench_init "$@"

if [ "$QUICK" = 1 ]; then D=4; NC_D=4; IDLE_N=500; else D=10; NC_D=10; IDLE_N=2000; fi
NC_CONNS=32          # concurrency of the new-connection-per-request load
BIG_BYTES=1073741824 # 1 GiB

setv - idle_n "$IDLE_N"
setv - ka_cmd "\"wrk -t2 -c64 -d${D}s /small\""
setv - nc_cmd "\"wrk -t2 -c${NC_CONNS} -d${NC_D}s -H 'Connection: close' /small\""

# ---------------------------------------------------------------- upstream nginx (mTLS HTTP)
mkdir -p "$T/up/www"
log "making the 1 GiB file"
timeout 300 head -c "$BIG_BYTES" /dev/urandom >"$T/up/www/big" || { log "cannot make big file"; exit 1; }
chmod 644 "$T/up/www/big"
start_upstream

# ---------------------------------------------------------------- originators
start_nginx_orig() {
  mkdir -p "$T/orig"
  cat >"$T/orig/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
worker_rlimit_nofile $NOFILE;
pid $T/orig/nginx.pid;
error_log $T/orig/error.log warn;
events { worker_connections 20000; }
stream {
  server {
    listen 127.0.0.1:$P_NGX backlog=4096;
    proxy_pass 127.0.0.1:$P_UP_NGX;
    proxy_timeout 600s;
    proxy_ssl on;
    $(nginx_proxy_ssl)
  }
}
EOF
  start_nginx "$T/orig" "$P_NGX" || { log "nginx originator did not start"; return 1; }
  ORIG_PID=$NGINX_PID
}

# ---------------------------------------------------------------- loads
# Each load function takes NAME PORT PID UPSTREAM_PORT and records under NAME.

load_idle() {  # baseline RSS, then (d) idle connections: once, on a fresh process
  local name=$1 port=$2 pid=$3 out
  sleep 1
  local rss; rss=$(M rss "$pid")
  setv "$name" baseline_rss_mb "$(M calc "$rss/1024")"
  setv "$name" nprocs "$(M pids "$pid" | wc -l)"
  log "$name: baseline RSS $rss KB"

  # (d) before the other loads, on a fresh process (the allocator has not yet been
  # grown by them)
  log "$name: (d) $IDLE_N idle connections"
  out=$(timeout 300 python3 "$HERE/measure.py" idle "$port" "$IDLE_N" "$pid" 2)
  echo "$out" >"$T/$name.idle.out"
  if [ -n "$out" ]; then
    setv "$name" idle_kb_per_conn "$(M get "$out" kb_per_conn | sed 's/^$/null/')"
    setv "$name" idle_opened "$(M get "$out" opened)"
    setv "$name" idle_rss_before_kb "$(M get "$out" rss_before_kb)"
    setv "$name" idle_rss_after_kb "$(M get "$out" rss_after_kb)"
    [ "$(M get "$out" opened)" != "$IDLE_N" ] && anomaly "$name load d: only $(M get "$out" opened)/$IDLE_N idle connections answered: $(M get "$out" errors)"
  else
    anomaly "$name load d: idle helper failed or timed out"
  fi
  sleep 2
}

load_ka() {
  # (a) keep-alive requests
  local name=$1 port=$2 pid=$3 c0 c1 k0 k1 j url="http://127.0.0.1:$2"
  log "$name: (a) keep-alive ${D}s"
  timeout 20 wrk -t2 -c64 -d1s "$url/small" >/dev/null 2>&1   # warm-up
  sleep 1
  read -r c0 k0 <<<"$(M cpu "$pid")"
  timeout $((D + 30)) wrk -t2 -c64 -d${D}s "$url/small" >"$T/$name.ka.wrk" 2>&1
  read -r c1 k1 <<<"$(M cpu "$pid")"
  j=$(M wrk "$T/$name.ka.wrk")
  check_wrk "$name" a "$T/$name.ka.wrk"
  setv "$name" ka_requests "$(M get "$j" requests)"
  setv "$name" ka_rps "$(M get "$j" rps | sed 's/^$/null/')"
  setv "$name" ka_cpu_s "$(M calc "$c1-$c0")"
  setv "$name" ka_cpu_sys_s "$(M calc "$k1-$k0")"
  setv "$name" ka_cpu_us_per_req "$(M calc "($c1-$c0)*1e6/$(M get "$j" requests)")"
  sleep 2
}

load_nc() {
  # (b) a new connection (and upstream TLS connection) per request
  local name=$1 port=$2 pid=$3 upport=$4 c0 c1 k0 k1 j l0 l1 s0 s1 tot res t13 url="http://127.0.0.1:$2"
  log "$name: (b) new connection per request ${NC_D}s"
  timeout 20 wrk -t1 -c4 -d1s -H 'Connection: close' "$url/small" >/dev/null 2>&1   # warm-up
  sleep 2
  [ "$name" = sidecar ] && s0=$(M stats "http://127.0.0.1:$P_ADMIN/stats")
  l0=$(wc -l <"$T/up/access.log")
  read -r c0 k0 <<<"$(M cpu "$pid")"
  timeout $((NC_D + 30)) wrk -t2 -c$NC_CONNS -d${NC_D}s -H 'Connection: close' "$url/small" >"$T/$name.nc.wrk" 2>&1
  read -r c1 k1 <<<"$(M cpu "$pid")"
  sleep 0.5
  l1=$(wc -l <"$T/up/access.log")
  j=$(M wrk "$T/$name.nc.wrk")
  check_wrk "$name" b "$T/$name.nc.wrk"
  setv "$name" nc_requests "$(M get "$j" requests)"
  setv "$name" nc_rps "$(M get "$j" rps | sed 's/^$/null/')"
  setv "$name" nc_cpu_s "$(M calc "$c1-$c0")"
  setv "$name" nc_cpu_sys_s "$(M calc "$k1-$k0")"
  setv "$name" nc_cpu_ms_per_conn "$(M calc "($c1-$c0)*1e3/$(M get "$j" requests)")"
  read -r tot res t13 <<<"$(sed -n "$((l0 + 1)),${l1}p" "$T/up/access.log" |
      awk -v p="$upport" '$1==p {n++; if ($2=="r") r++; if ($3=="TLSv1.3") t++} END {print n+0, r+0, t+0}')"
  setv "$name" nc_upstream_log_lines "$tot"
  setv "$name" nc_resumed_pct "$(M calc "100.0*$res/$tot")"
  setv "$name" nc_tls13_pct "$(M calc "100.0*$t13/$tot")"
  if [ "$name" = sidecar ]; then
    s1=$(M stats "http://127.0.0.1:$P_ADMIN/stats")
    local hs reused full
    hs=$(M calc "$(M get "$s1" ssl_handshake)-$(M get "$s0" ssl_handshake)")
    reused=$(M calc "$(M get "$s1" ssl_session_reused)-$(M get "$s0" ssl_session_reused)")
    full=$(M calc "$(M get "$s1" ssl_handshake_full)-$(M get "$s0" ssl_handshake_full)")
    setv "$name" nc_stats_ssl_handshake "$hs"
    setv "$name" nc_stats_ssl_session_reused "$reused"
    setv "$name" nc_stats_ssl_handshake_full "$full"
    setv "$name" nc_stats_resumed_pct "$(M calc "100.0*$reused/$hs")"
    echo "$s1" >"$T/sidecar.stats.out"
  fi
  sleep 2
}

load_bulk() {
  # (c) 1 GiB transfer
  local name=$1 port=$2 pid=$3 c0 c1 k0 k1 out code size secs url="http://127.0.0.1:$2"
  log "$name: (c) 1 GiB transfer"
  read -r c0 k0 <<<"$(M cpu "$pid")"
  out=$(timeout 600 curl -s -o /dev/null --max-time 580 -w '%{http_code} %{size_download} %{time_total}' "$url/big")
  read -r c1 k1 <<<"$(M cpu "$pid")"
  read -r code size secs <<<"$out"
  setv "$name" bulk_http_code "${code:-0}"
  setv "$name" bulk_bytes "${size:-0}"
  setv "$name" bulk_cpu_s "$(M calc "$c1-$c0")"
  setv "$name" bulk_cpu_sys_s "$(M calc "$k1-$k0")"
  setv "$name" bulk_mb_per_cpu_s "$(M calc "1024/($c1-$c0)")"
  setv "$name" bulk_mb_per_s "$(M calc "$BIG_BYTES/1048576/${secs:-0}")"
  if [ "${code:-}" != 200 ] || [ "${size:-}" != "$BIG_BYTES" ]; then
    anomaly "$name load c: bulk transfer got HTTP ${code:-none}, $size of $BIG_BYTES bytes (curl: '$out')"
  fi
}

log "=== starting nginx stream proxy_ssl and the sidecar"
start_nginx_orig || exit 1
NGX_PID=$ORIG_PID
start_sidecar tcp '"idle_timeout_ms":600000' || exit 1
SC_PID=$SIDECAR_PID
ORIGINATORS="nginx:$P_NGX:$NGX_PID:$P_UP_NGX sidecar:$P_SC:$SC_PID:$P_UP_SC"   # name:port:pid:upstream port

for o in $ORIGINATORS; do
  IFS=: read -r name port pid upport <<<"$o"
  load_idle "$name" "$port" "$pid" "$upport"
done
for round in $(seq "$ROUNDS"); do
  export BENCH_ROUND=$round
  for load in ka nc bulk; do
    for o in $(in_turn "$round" $ORIGINATORS); do
      IFS=: read -r name port pid upport <<<"$o"
      log "$name: round $round of $ROUNDS"
      "load_$load" "$name" "$port" "$pid" "$upport"
    done
  done
done
unset BENCH_ROUND
sleep 1
for o in $ORIGINATORS; do
  IFS=: read -r name port pid upport <<<"$o"
  setv "$name" final_rss_mb "$(M calc "$(M rss "$pid")/1024")"
done

stop_tree "$NGX_PID"
check_nginx_log "nginx originator" "$T/orig/error.log"
stop_sidecar "$SC_PID"
check_nginx_log upstream "$T/up/error.log"

# ---------------------------------------------------------------- report
M report "$RES" "$HERE/results.md"
log "written $HERE/results.md (logs in $HERE/logs/)"
