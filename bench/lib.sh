# bench/lib.sh: what the benchmarks that put nginx and the sidecar side by side
# share (bench/run.sh: L4; bench/http.sh: HTTP). Sourced, not run:
#
#   source "$(dirname "$0")/lib.sh"
#   bench_init "$@"        arguments, limits, temp dir + cleanup, binaries, machine,
#                          certificates, ports
#   start_upstream         the mTLS nginx upstream, one port per originator
#   start_nginx DIR PORT   an nginx whose DIR/nginx.conf the caller wrote (NGINX_PID)
#   start_sidecar PROTOCOL the sidecar with one listener and the cluster (SIDECAR_PID)
#   stop_sidecar, check_nginx_log, check_wrk, anomaly, setv, stop_tree
#
# Before bench_init a script may set LOG_DIR (default bench/logs: where the logs of
# the last run are copied; only its files are replaced) and define
# bench_arg ARG, which returns 0 when it took a script-specific argument.
#
# After bench_init: QUICK (0/1), MODE (quick/full), ROUNDS (--rounds=N; default 3, or
# 1 with --quick: each load runs ROUNDS times per originator, in turn, with
# BENCH_ROUND=1.. exported so that `setv` keeps each round's value and the median),
# HERE, REPO, T (the temp dir),
# RES (results JSON), NOFILE, SIDECAR, CERTS, the PKI in $T/pki (ca, server, client)
# and the ports P_UP_NGX P_UP_SC (upstream, for nginx / for the sidecar), P_NGX P_SC
# (the originators) and P_ADMIN (the sidecar's admin). Everything listens on
# 127.0.0.1; every long-running process started here is in STARTED and is stopped at
# exit, whatever the exit.

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
LOG_DIR=${LOG_DIR:-$HERE/logs}
M() { python3 "$HERE/measure.py" "$@"; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- arguments
bench_args() {
  local a
  QUICK=0
  ROUNDS=""
  for a in "$@"; do
    case "$a" in
      --quick) QUICK=1 ;;
      --rounds=*) ROUNDS=${a#--rounds=}
        [[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "--rounds wants 1..99, like --rounds=5" >&2; exit 2; } ;;
      -h|--help) awk 'NR == 1 { next } /^#/ { print; next } { exit }' "$0"; exit 0 ;;
      *) if ! declare -F bench_arg >/dev/null || ! bench_arg "$a"; then
           echo "unknown argument: $a" >&2; exit 2
         fi ;;
    esac
  done
  if [ "$QUICK" = 1 ]; then MODE=quick; else MODE=full; fi
  if [ -z "$ROUNDS" ]; then if [ "$QUICK" = 1 ]; then ROUNDS=1; else ROUNDS=3; fi; fi
}

# in_turn ROUND NAME...: the names in the order of round ROUND (1, 2, ...): as
# given in odd rounds, reversed in even ones, so that neither originator always
# runs first (on a warmer or a quieter machine)
in_turn() {
  local round=$1; shift
  if [ $((round % 2)) = 1 ]; then echo "$@"; else echo "$@" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n")}'; fi
}

# ---------------------------------------------------------------- limits
bench_limits() {
  NOFILE_NOTE=""
  if ! ulimit -n 65536 2>/dev/null; then
    local hard; hard=$(ulimit -Hn)
    ulimit -n "$hard"
    NOFILE_NOTE="ulimit -n 65536 refused (hard limit $hard); ran with $hard"
    log "$NOFILE_NOTE"
  fi
  NOFILE=$(ulimit -n)
}

# ---------------------------------------------------------------- temp dir + cleanup
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

bench_cleanup() {
  local rc=$? p f
  trap - EXIT INT TERM
  for p in "${STARTED[@]}"; do stop_tree "$p"; done
  # the loads run in the foreground with bounded timeouts; kill any leftover job too
  for p in $(jobs -p); do kill -KILL "$p" 2>/dev/null; done
  mkdir -p "$LOG_DIR"
  find "$LOG_DIR" -maxdepth 1 -type f -delete
  for f in "$T"/sidecar.log "$T"/sc/sidecar.json "$T"/up/error.log "$T"/up/nginx.conf \
           "$T"/orig/error.log "$T"/orig/nginx.conf "$T"/results.json "$T"/*.wrk "$T"/*.out; do
    [ -f "$f" ] && cp "$f" "$LOG_DIR/$(echo "${f#$T/}" | tr / _)"
  done
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $T"; else rm -rf "$T"; fi
  exit $rc
}

bench_tempdir() {
  T=$(mktemp -d /tmp/mtls-bench.XXXXXX)
  RES="$T/results.json"
  trap bench_cleanup EXIT
  trap 'log interrupted; exit 130' INT TERM
}

anomaly() { log "ANOMALY: $*"; M set "$RES" anomalies x "$(python3 -c 'import json,sys;print(json.dumps(sys.argv[1]))' "$*")"; }
setv() { M set "$RES" "$1" "$2" "$3"; }

# ---------------------------------------------------------------- binaries
bench_binaries() {
  mkdir -p "$T/bin"
  if [ -n "${SIDECAR_BIN:-}" ] && [ -n "${CERTS_BIN:-}" ]; then
    cp "$SIDECAR_BIN" "$T/bin/sidecar"; cp "$CERTS_BIN" "$T/bin/certs"
  else
    local ob=${BAZEL_OUTPUT_BASE:-/tmp/bzl-bench} bin
    "$REPO/tools/fetch-boringssl.sh" || { log "cannot fetch BoringSSL's source"; exit 1; }
    log "building with bazel --output_base=$ob"
    if ! (cd "$REPO" && timeout 1500 bazel --output_base="$ob" build -c opt --symlink_prefix=/ //sidecar:sidecar //certs:certs) \
         >"$T/build.out" 2>&1; then
      tail -30 "$T/build.out" >&2; log "build failed"; exit 1
    fi
    bin=$(cd "$REPO" && timeout 120 bazel --output_base="$ob" info -c opt bazel-bin 2>/dev/null)
    cp "$bin/sidecar/sidecar" "$bin/certs/certs" "$T/bin/"
  fi
  chmod u+w "$T/bin/"*
  SIDECAR="$T/bin/sidecar"; CERTS="$T/bin/certs"
}

# ---------------------------------------------------------------- machine
bench_machine() {
  setv - mode "\"$MODE\""
  setv - rounds "$ROUNDS"
  setv machine nproc "$(nproc)"
  setv machine kernel "\"$(uname -r)\""
  setv machine date "\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
  setv machine nginx "\"$(nginx -v 2>&1 | sed 's/.*: //')\""
  setv machine wrk "\"$(wrk --version 2>&1 | head -1 | awk '{print "wrk", $2}')\""
  setv machine nofile "$NOFILE"
  [ -n "$NOFILE_NOTE" ] && anomaly "$NOFILE_NOTE"
  return 0
}

# ---------------------------------------------------------------- certificates
bench_certs() {
  mkdir -p "$T/pki"
  (
    cd "$T/pki" &&
    timeout 30 "$CERTS" ca --out "$T/pki" &&
    timeout 30 "$CERTS" issue --ca "$T/pki" --out "$T/pki/server" --dns upstream.bench --ip 127.0.0.1 --server &&
    timeout 30 "$CERTS" issue --ca "$T/pki" --out "$T/pki/client" --dns client.bench --ip 127.0.0.1 \
       --client --uri spiffe://bench/client
  ) >"$T/certs.out" 2>&1 || { cat "$T/certs.out" >&2; log "certificate generation failed"; exit 1; }
}

bench_init() {
  bench_args "$@"
  bench_limits
  bench_tempdir
  bench_binaries
  bench_machine
  bench_certs
  read -r P_UP_NGX P_UP_SC P_NGX P_SC P_ADMIN <<<"$(M freeport 5)"
  log "ports: upstream $P_UP_NGX (for nginx) $P_UP_SC (for sidecar); nginx $P_NGX; sidecar $P_SC; admin $P_ADMIN"
}

# ---------------------------------------------------------------- nginx
# start_nginx DIR PORT: test and start the nginx of DIR/nginx.conf (prefix DIR, error
# log DIR/error.log), wait until it accepts on PORT and all its workers are up.
# Sets NGINX_PID (the master); returns 1 when it does not start.
start_nginx() {
  local dir=$1 port=$2 workers i
  timeout 30 nginx -t -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/t.out" 2>&1 \
    || { cat "$dir/t.out" >&2; return 1; }
  nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
  NGINX_PID=$!; STARTED+=("$NGINX_PID")
  M wait-port "$port" 15 || { log "nginx in $dir did not start"; cat "$dir/error.log" >&2; return 1; }
  workers=$(awk '$1 == "worker_processes" { print $2 + 0 }' "$dir/nginx.conf")
  for i in $(seq 50); do [ "$(M pids "$NGINX_PID" | wc -l)" -gt "${workers:-1}" ] && break; sleep 0.1; done
}

# nginx_proxy_ssl: the client TLS directives of an nginx originator (stream or http),
# the same settings as the sidecar's cluster (SIDECAR_CLUSTER_TLS).
nginx_proxy_ssl() {
  cat <<EOF
proxy_ssl_certificate $T/pki/client.crt;
    proxy_ssl_certificate_key $T/pki/client.key;
    proxy_ssl_trusted_certificate $T/pki/ca.crt;
    proxy_ssl_verify on;
    proxy_ssl_verify_depth 4;
    proxy_ssl_name upstream.bench;
    proxy_ssl_server_name on;
    proxy_ssl_session_reuse on;
    proxy_ssl_protocols TLSv1.2 TLSv1.3;
EOF
}

# start_upstream: the mTLS HTTP upstream nginx, one worker, a port per originator
# (P_UP_NGX, P_UP_SC). /small answers "ok\n"; /big serves $T/up/www/big if the caller
# made it. The access log ($T/up/access.log) has one line per request:
#   server_port ssl_session_reused ssl_protocol status bytes_sent connection connection_requests
# and a connection may carry 100,000 requests, so the originators' limits decide.
start_upstream() {
  mkdir -p "$T/up/www" "$T/up/tmp"
  chmod 755 "$T" "$T/up" "$T/up/www"   # nginx workers run as an unprivileged user
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
  log_format bench '\$server_port \$ssl_session_reused \$ssl_protocol \$status \$bytes_sent \$connection \$connection_requests';
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
  start_nginx "$T/up" "$P_UP_NGX" && M wait-port "$P_UP_SC" 15 \
    || { log "upstream did not start"; exit 1; }
  UP_PID=$NGINX_PID
}

# check_nginx_log NAME FILE: an anomaly for each error-level line of an nginx error log
check_nginx_log() {
  local name=$1 f=$2 n
  n=$(grep -cE '\[(error|crit|alert|emerg)\]' "$f" 2>/dev/null); n=${n:-0}
  [ "$n" != 0 ] && anomaly "$name error.log: $n error-level lines, e.g. $(grep -E '\[(error|crit|alert|emerg)\]' "$f" | head -2 | cut -c1-300 | tr '\n' ' ')"
  return 0
}

# ---------------------------------------------------------------- sidecar
# The cluster of every sidecar run: the upstream's port for the sidecar, with the
# same TLS settings as nginx_proxy_ssl.
SIDECAR_CLUSTER_TLS='"tls":{"certificate":"client.crt","private_key":"client.key","trusted_ca":"ca.crt",
          "server_name":"upstream.bench","protocols":["TLSv1.2","TLSv1.3"],"session_reuse":true}'

# start_sidecar PROTOCOL [LISTENER_KEYS]: the sidecar, 2 workers, with listener "l" on
# P_SC ("protocol": PROTOCOL, plus the JSON members LISTENER_KEYS, like
# '"idle_timeout_ms":600000') and cluster "c" on the upstream; waits until it is
# ready and accepts on P_SC. Sets SIDECAR_PID; returns 1 when it does not start.
start_sidecar() {
  local protocol=$1 keys=${2:+,$2}
  # config + certs in a folder of their own: the sidecar watches the folders that hold
  # its certificate files, so nothing else (logs, results) may be written there
  mkdir -p "$T/sc"
  cp "$T/pki/client.crt" "$T/pki/client.key" "$T/pki/ca.crt" "$T/sc/"
  cat >"$T/sc/sidecar.json" <<EOF
{"admin":{"address":"127.0.0.1:$P_ADMIN"},"workers":2,
 "listeners":[{"name":"l","address":"127.0.0.1:$P_SC","protocol":"$protocol","cluster":"c"$keys}],
 "clusters":[{"name":"c","endpoints":["127.0.0.1:$P_UP_SC"],
   $SIDECAR_CLUSTER_TLS}]}
EOF
  "$SIDECAR" --config "$T/sc/sidecar.json" >"$T/sidecar.log" 2>&1 &
  SIDECAR_PID=$!; STARTED+=("$SIDECAR_PID")
  M wait-http "http://127.0.0.1:$P_ADMIN/ready" 20 || { log "sidecar not ready"; tail -20 "$T/sidecar.log" >&2; return 1; }
  M wait-port "$P_SC" 10 || { log "sidecar listener not up"; return 1; }
}

# stop_sidecar PID: stop the sidecar; anomalies if it had exited before, or its
# output (shutdown included) has warnings or errors, or it reloaded certificates
# that did not change
stop_sidecar() {
  local pid=$1 n
  if ! kill -0 "$pid" 2>/dev/null; then
    anomaly "sidecar exited during the run: $(tail -3 "$T/sidecar.log" | tr '\n' ' ')"
  fi
  stop_tree "$pid"
  n=$(grep -ciE '(^|[^a-z])(warn|warning|error|fatal|crit)' "$T/sidecar.log" 2>/dev/null); n=${n:-0}
  if [ "$n" != 0 ]; then
    anomaly "sidecar stderr: $n warn/error lines; first ones: $(grep -iE '(^|[^a-z])(warn|warning|error|fatal|crit)' "$T/sidecar.log" | head -3 | cut -c1-300 | tr '\n' ' ')"
  fi
  n=$(grep -c 'certificate files changed; reloading' "$T/sidecar.log" 2>/dev/null); n=${n:-0}
  [ "$n" != 0 ] && anomaly "sidecar stderr: $n 'certificate files changed; reloading' lines although no certificate file changed during the run"
  return 0
}

# ---------------------------------------------------------------- loads
check_wrk() {  # check_wrk NAME LOAD FILE: an anomaly for errors wrk reported, or no request
  local line
  while IFS= read -r line; do
    [ -n "$line" ] && anomaly "$line"
  done <<<"$(M wrk-check "$1" "$2" "$3")"
  return 0
}
