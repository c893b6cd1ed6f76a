#!/usr/bin/env bash
# mTLS origination benchmark: nginx stream `proxy_ssl` vs mtls-sidecar, side by side.
#
#   bench/run.sh [--quick]
#
# Environment (optional):
#   SIDECAR_BIN, CERTS_BIN  use these binaries instead of building with Bazel
#   BAZEL_OUTPUT_BASE       private output base for the build (default /tmp/bzl-bench)
#   KEEP_TMP=1              keep the temp dir (default: removed at exit)
#
# Everything runs in a temp dir on 127.0.0.1 only; every process started here is
# stopped at exit. Results: printed and written to bench/results.md; the logs of the
# last run are copied to bench/logs/.
set -uo pipefail

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "unknown argument: $a" >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
M() { python3 "$HERE/measure.py" "$@"; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "$QUICK" = 1 ]; then D=4; NC_D=4; IDLE_N=500; MODE=quick; else D=10; NC_D=10; IDLE_N=2000; MODE=full; fi
NC_CONNS=32          # concurrency of the new-connection-per-request load
BIG_BYTES=1073741824 # 1 GiB

# ---------------------------------------------------------------- limits
NOFILE_NOTE=""
if ! ulimit -n 65536 2>/dev/null; then
  HARD=$(ulimit -Hn)
  ulimit -n "$HARD"
  NOFILE_NOTE="ulimit -n 65536 refused (hard limit $HARD); ran with $HARD"
  log "$NOFILE_NOTE"
fi
NOFILE=$(ulimit -n)

# ---------------------------------------------------------------- temp dir + cleanup
T=$(mktemp -d /tmp/mtls-bench.XXXXXX)
RES="$T/results.json"
STARTED=()   # pids of the long-running processes started here

stop_tree() {  # stop_tree PID: TERM, wait up to 5 s, then KILL it and its descendants
  local root=$1 kids p i
  kill -0 "$root" 2>/dev/null || return 0
  kids=$(M pids "$root" 2>/dev/null)
  kill -TERM "$root" 2>/dev/null
  for i in $(seq 50); do kill -0 "$root" 2>/dev/null || break; sleep 0.1; done
  for p in $kids; do kill -KILL "$p" 2>/dev/null; done
  wait "$root" 2>/dev/null
  return 0
}

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${STARTED[@]}"; do stop_tree "$p"; done
  # the loads run in the foreground with bounded timeouts; kill any leftover job too
  for p in $(jobs -p); do kill -KILL "$p" 2>/dev/null; done
  mkdir -p "$HERE/logs"
  rm -f "$HERE"/logs/*
  for f in "$T"/sidecar.log "$T"/sc/sidecar.json "$T"/up/error.log "$T"/up/nginx.conf \
           "$T"/orig/error.log "$T"/orig/nginx.conf "$T"/results.json "$T"/*.wrk "$T"/*.out; do
    [ -f "$f" ] && cp "$f" "$HERE/logs/$(echo "${f#$T/}" | tr / _)"
  done
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
  exit $rc
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

anomaly() { log "ANOMALY: $*"; M set "$RES" anomalies x "$(python3 -c 'import json,sys;print(json.dumps(sys.argv[1]))' "$*")"; }
setv() { M set "$RES" "$1" "$2" "$3"; }

# ---------------------------------------------------------------- binaries
mkdir -p "$T/bin"
if [ -n "${SIDECAR_BIN:-}" ] && [ -n "${CERTS_BIN:-}" ]; then
  cp "$SIDECAR_BIN" "$T/bin/sidecar"; cp "$CERTS_BIN" "$T/bin/certs"
else
  OB=${BAZEL_OUTPUT_BASE:-/tmp/bzl-bench}
  log "building with bazel --output_base=$OB"
  if ! (cd "$REPO" && timeout 1500 bazel --output_base="$OB" build -c opt --symlink_prefix=/ //sidecar:sidecar //certs:certs) \
       >"$T/build.out" 2>&1; then
    tail -30 "$T/build.out" >&2; log "build failed"; exit 1
  fi
  BIN=$(cd "$REPO" && timeout 120 bazel --output_base="$OB" info -c opt bazel-bin 2>/dev/null)
  cp "$BIN/sidecar/sidecar" "$BIN/certs/certs" "$T/bin/"
fi
chmod u+w "$T/bin/"*
SIDECAR="$T/bin/sidecar"; CERTS="$T/bin/certs"

# ---------------------------------------------------------------- machine
setv - mode "\"$MODE\""
setv machine nproc "$(nproc)"
setv machine kernel "\"$(uname -r)\""
setv machine date "\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
setv machine nginx "\"$(nginx -v 2>&1 | sed 's/.*: //')\""
setv machine wrk "\"$(wrk --version 2>&1 | head -1 | awk '{print "wrk", $2}')\""
setv machine nofile "$NOFILE"
setv - idle_n "$IDLE_N"
setv - ka_cmd "\"wrk -t2 -c64 -d${D}s /small\""
setv - nc_cmd "\"wrk -t2 -c${NC_CONNS} -d${NC_D}s -H 'Connection: close' /small\""
[ -n "$NOFILE_NOTE" ] && anomaly "$NOFILE_NOTE"

# ---------------------------------------------------------------- certificates
mkdir -p "$T/pki"
(
  cd "$T/pki" &&
  timeout 30 "$CERTS" ca --out "$T/pki" &&
  timeout 30 "$CERTS" issue --ca "$T/pki" --out "$T/pki/server" --dns upstream.bench --ip 127.0.0.1 --server &&
  timeout 30 "$CERTS" issue --ca "$T/pki" --out "$T/pki/client" --dns client.bench --ip 127.0.0.1 \
     --client --uri spiffe://bench/client
) >"$T/certs.out" 2>&1 || { cat "$T/certs.out" >&2; log "certificate generation failed"; exit 1; }

# ---------------------------------------------------------------- ports
read -r P_UP_NGX P_UP_SC P_NGX P_SC P_ADMIN <<<"$(M freeport 5)"
log "ports: upstream $P_UP_NGX (for nginx) $P_UP_SC (for sidecar); nginx $P_NGX; sidecar $P_SC; admin $P_ADMIN"

# ---------------------------------------------------------------- upstream nginx (mTLS HTTP)
mkdir -p "$T/up/www" "$T/up/tmp"
chmod 755 "$T" "$T/up" "$T/up/www"   # nginx workers run as an unprivileged user
log "making the 1 GiB file"
timeout 300 head -c "$BIG_BYTES" /dev/urandom >"$T/up/www/big" || { log "cannot make big file"; exit 1; }
chmod 644 "$T/up/www/big"
cat >"$T/up/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $T/up/nginx.pid;
error_log $T/up/error.log warn;
events { worker_connections 20000; }
http {
  client_body_temp_path $T/up/tmp; proxy_temp_path $T/up/tmp; fastcgi_temp_path $T/up/tmp;
  uwsgi_temp_path $T/up/tmp; scgi_temp_path $T/up/tmp;
  default_type application/octet-stream;
  log_format bench '\$server_port \$ssl_session_reused \$ssl_protocol \$status \$bytes_sent';
  access_log $T/up/access.log bench;
  keepalive_requests 100000;
  keepalive_timeout 900s;
  server {
    listen 127.0.0.1:$P_UP_NGX ssl backlog=4096;
    listen 127.0.0.1:$P_UP_SC ssl backlog=4096;
    server_name upstream.bench;
    ssl_certificate $T/pki/server.crt;
    ssl_certificate_key $T/pki/server.key;
    ssl_client_certificate $T/pki/ca.crt;
    ssl_verify_client on;
    ssl_verify_depth 4;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:S:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets on;
    root $T/up/www;
    location = /small { return 200 "ok\n"; }
    location = /big { }
  }
}
EOF
nginx -t -p "$T/up/" -c "$T/up/nginx.conf" -e "$T/up/error.log" >"$T/up/t.out" 2>&1 \
  || { cat "$T/up/t.out" >&2; exit 1; }
nginx -p "$T/up/" -c "$T/up/nginx.conf" -e "$T/up/error.log" -g 'daemon off;' >"$T/up/stdout.log" 2>&1 &
UP_PID=$!; STARTED+=("$UP_PID")
M wait-port "$P_UP_NGX" 15 && M wait-port "$P_UP_SC" 15 || { log "upstream did not start"; cat "$T/up/error.log" >&2; exit 1; }

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
    proxy_ssl_certificate $T/pki/client.crt;
    proxy_ssl_certificate_key $T/pki/client.key;
    proxy_ssl_trusted_certificate $T/pki/ca.crt;
    proxy_ssl_verify on;
    proxy_ssl_verify_depth 4;
    proxy_ssl_name upstream.bench;
    proxy_ssl_server_name on;
    proxy_ssl_session_reuse on;
    proxy_ssl_protocols TLSv1.2 TLSv1.3;
  }
}
EOF
  nginx -t -p "$T/orig/" -c "$T/orig/nginx.conf" -e "$T/orig/error.log" >"$T/orig/t.out" 2>&1 \
    || { cat "$T/orig/t.out" >&2; return 1; }
  nginx -p "$T/orig/" -c "$T/orig/nginx.conf" -e "$T/orig/error.log" -g 'daemon off;' >"$T/orig/stdout.log" 2>&1 &
  ORIG_PID=$!; STARTED+=("$ORIG_PID")
  M wait-port "$P_NGX" 15 || { log "nginx originator did not start"; return 1; }
  # wait for both workers
  local i; for i in $(seq 50); do [ "$(M pids "$ORIG_PID" | wc -l)" -ge 3 ] && break; sleep 0.1; done
}

start_sidecar() {
  # config + certs in a folder of their own: the sidecar watches the folders that hold
  # its certificate files, so nothing else (logs, results) may be written there
  mkdir -p "$T/sc"
  cp "$T/pki/client.crt" "$T/pki/client.key" "$T/pki/ca.crt" "$T/sc/"
  cat >"$T/sc/sidecar.json" <<EOF
{"admin":{"address":"127.0.0.1:$P_ADMIN"},"workers":2,
 "listeners":[{"name":"l","address":"127.0.0.1:$P_SC","protocol":"tcp","cluster":"c","idle_timeout_ms":600000}],
 "clusters":[{"name":"c","endpoints":["127.0.0.1:$P_UP_SC"],
   "tls":{"certificate":"client.crt","private_key":"client.key","trusted_ca":"ca.crt",
          "server_name":"upstream.bench","protocols":["TLSv1.2","TLSv1.3"],"session_reuse":true}}]}
EOF
  "$SIDECAR" --config "$T/sc/sidecar.json" >"$T/sidecar.log" 2>&1 &
  ORIG_PID=$!; STARTED+=("$ORIG_PID")
  M wait-http "http://127.0.0.1:$P_ADMIN/ready" 20 || { log "sidecar not ready"; tail -20 "$T/sidecar.log" >&2; return 1; }
  M wait-port "$P_SC" 10 || { log "sidecar listener not up"; return 1; }
}

# ---------------------------------------------------------------- loads
check_wrk() {  # check_wrk NAME LOAD FILE JSON
  local name=$1 load=$2 f=$3 j=$4 e
  e=$(M calc "$(M get "$j" errors_connect)+$(M get "$j" errors_read)+$(M get "$j" errors_write)+$(M get "$j" errors_timeout)+$(M get "$j" non2xx)")
  if [ "$e" != 0 ]; then
    anomaly "$name load $load: wrk reported errors: $(grep -E 'Socket errors|Non-2xx' "$f" | tr '\n' ' ') (of $(M get "$j" requests) requests)"
  fi
  [ "$(M get "$j" requests)" = 0 ] && anomaly "$name load $load: wrk completed no requests"
}

run_loads() {  # run_loads NAME PORT PID UPSTREAM_PORT
  local name=$1 port=$2 pid=$3 upport=$4 c0 c1 j out l0 l1 s0 s1 url="http://127.0.0.1:$2"

  sleep 1
  local rss; rss=$(M rss "$pid")
  setv "$name" baseline_rss_mb "$(M calc "$rss/1024")"
  setv "$name" nprocs "$(M pids "$pid" | wc -l)"
  log "$name: baseline RSS $rss KB"

  # (d) idle connections first, on a fresh process (the allocator has not yet been
  # grown by the other loads)
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

  # (a) keep-alive requests
  log "$name: (a) keep-alive ${D}s"
  timeout 20 wrk -t2 -c64 -d1s "$url/small" >/dev/null 2>&1   # warm-up
  sleep 1
  c0=$(M cpu "$pid")
  timeout $((D + 30)) wrk -t2 -c64 -d${D}s "$url/small" >"$T/$name.ka.wrk" 2>&1
  c1=$(M cpu "$pid")
  j=$(M wrk "$T/$name.ka.wrk")
  check_wrk "$name" a "$T/$name.ka.wrk" "$j"
  setv "$name" ka_requests "$(M get "$j" requests)"
  setv "$name" ka_rps "$(M get "$j" rps | sed 's/^$/null/')"
  setv "$name" ka_cpu_s "$(M calc "$c1-$c0")"
  setv "$name" ka_cpu_us_per_req "$(M calc "($c1-$c0)*1e6/$(M get "$j" requests)")"
  sleep 2

  # (b) a new connection (and upstream TLS connection) per request
  log "$name: (b) new connection per request ${NC_D}s"
  timeout 20 wrk -t1 -c4 -d1s -H 'Connection: close' "$url/small" >/dev/null 2>&1   # warm-up
  sleep 2
  [ "$name" = sidecar ] && s0=$(M stats "http://127.0.0.1:$P_ADMIN/stats")
  l0=$(wc -l <"$T/up/access.log")
  c0=$(M cpu "$pid")
  timeout $((NC_D + 30)) wrk -t2 -c$NC_CONNS -d${NC_D}s -H 'Connection: close' "$url/small" >"$T/$name.nc.wrk" 2>&1
  c1=$(M cpu "$pid")
  sleep 0.5
  l1=$(wc -l <"$T/up/access.log")
  j=$(M wrk "$T/$name.nc.wrk")
  check_wrk "$name" b "$T/$name.nc.wrk" "$j"
  setv "$name" nc_requests "$(M get "$j" requests)"
  setv "$name" nc_rps "$(M get "$j" rps | sed 's/^$/null/')"
  setv "$name" nc_cpu_s "$(M calc "$c1-$c0")"
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

  # (c) 1 GiB transfer
  log "$name: (c) 1 GiB transfer"
  c0=$(M cpu "$pid")
  out=$(timeout 600 curl -s -o /dev/null --max-time 580 -w '%{http_code} %{size_download} %{time_total}' "$url/big")
  c1=$(M cpu "$pid")
  read -r code size secs <<<"$out"
  setv "$name" bulk_http_code "${code:-0}"
  setv "$name" bulk_bytes "${size:-0}"
  setv "$name" bulk_cpu_s "$(M calc "$c1-$c0")"
  setv "$name" bulk_mb_per_cpu_s "$(M calc "1024/($c1-$c0)")"
  setv "$name" bulk_mb_per_s "$(M calc "$BIG_BYTES/1048576/${secs:-0}")"
  if [ "${code:-}" != 200 ] || [ "${size:-}" != "$BIG_BYTES" ]; then
    anomaly "$name load c: bulk transfer got HTTP ${code:-none}, $size of $BIG_BYTES bytes (curl: '$out')"
  fi
  sleep 1
  setv "$name" final_rss_mb "$(M calc "$(M rss "$pid")/1024")"
}

# nginx stream originator
log "=== nginx stream proxy_ssl"
start_nginx_orig || exit 1
run_loads nginx "$P_NGX" "$ORIG_PID" "$P_UP_NGX"
stop_tree "$ORIG_PID"
n=$(grep -cE '\[(error|crit|alert|emerg)\]' "$T/orig/error.log" 2>/dev/null); n=${n:-0}
[ "$n" != 0 ] && anomaly "nginx originator error.log: $n error-level lines, e.g. $(grep -E '\[(error|crit|alert|emerg)\]' "$T/orig/error.log" | head -2 | cut -c1-300 | tr '\n' ' ')"
sleep 3

# sidecar
log "=== sidecar"
start_sidecar || exit 1
run_loads sidecar "$P_SC" "$ORIG_PID" "$P_UP_SC"
if ! kill -0 "$ORIG_PID" 2>/dev/null; then
  anomaly "sidecar exited during the run: $(tail -3 "$T/sidecar.log" | tr '\n' ' ')"
fi
stop_tree "$ORIG_PID"
n=$(grep -ciE '(^|[^a-z])(warn|warning|error|fatal|crit)' "$T/sidecar.log" 2>/dev/null); n=${n:-0}
if [ "$n" != 0 ]; then
  anomaly "sidecar stderr: $n warn/error lines; first ones: $(grep -iE '(^|[^a-z])(warn|warning|error|fatal|crit)' "$T/sidecar.log" | head -3 | cut -c1-300 | tr '\n' ' ')"
fi
n=$(grep -c 'certificate files changed; reloading' "$T/sidecar.log" 2>/dev/null); n=${n:-0}
[ "$n" != 0 ] && anomaly "sidecar stderr: $n 'certificate files changed; reloading' lines although no certificate file changed during the run"
n=$(grep -cE '\[(error|crit|alert|emerg)\]' "$T/up/error.log" 2>/dev/null); n=${n:-0}
[ "$n" != 0 ] && anomaly "upstream error.log: $n error-level lines, e.g. $(grep -E '\[(error|crit|alert|emerg)\]' "$T/up/error.log" | head -2 | cut -c1-300 | tr '\n' ' ')"

# ---------------------------------------------------------------- report
M report "$RES" "$HERE/results.md"
log "written $HERE/results.md (logs in $HERE/logs/)"
