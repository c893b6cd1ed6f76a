#!/usr/bin/env bash
# The demo: a CA and certificates made on the spot, nginx as an upstream that
# requires client certificates (ssl_verify_client on), the sidecar in front
# of it, requests flowing through, the admin endpoint's /certs and /clusters,
# and the client certificate rotating live while a connection stays open.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools/install-deps.sh

echo "== building"
bazel build //sidecar:sidecar //certs:certs 2>&1 | grep -E "ERROR|Build completed" || true
sidecar=$root/bazel-bin/sidecar/sidecar
certs=$root/bazel-bin/certs/certs

demo=$root/.demo
rm -rf "$demo"
mkdir -p "$demo/pki" "$demo/nginx/logs"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== certificates (certs ca / certs issue)"
"$certs" ca --out "$demo/pki" --cn "demo workload CA"
"$certs" issue --ca "$demo/pki" --out "$demo/pki/upstream" --dns upstream.demo --ip 127.0.0.1 --server --ttl 24h
"$certs" issue --ca "$demo/pki" --out "$demo/pki/client" --uri spiffe://demo/ns/default/sa/app --client --ttl 1h
echo "client certificate serial: $("$certs" inspect "$demo/pki/client.crt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["serial_number"])')"

echo "== nginx upstream on 127.0.0.1:18443 (mTLS: ssl_verify_client on)"
cat >"$demo/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
error_log $demo/nginx/logs/error.log warn;
pid $demo/nginx/nginx.pid;
events {}
http {
  access_log $demo/nginx/logs/access.log;
  client_body_temp_path $demo/nginx/tmp;
  server {
    listen 127.0.0.1:18443 ssl;
    server_name upstream.demo;
    ssl_certificate $demo/pki/upstream.crt;
    ssl_certificate_key $demo/pki/upstream.key;
    ssl_client_certificate $demo/pki/ca.crt;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      default_type text/plain;
      return 200 "hello from the mTLS upstream: client=\$ssl_client_s_dn serial=\$ssl_client_serial protocol=\$ssl_protocol resumed=\$ssl_session_reused\n";
    }
  }
}
NGINX
/usr/sbin/nginx -p "$demo/nginx" -c "$demo/nginx/nginx.conf" &
pids+=($!)
wait_for() {  # wait_for WHAT COMMAND...: up to 5 s
  local what=$1; shift
  for _ in $(seq 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: $what did not come up; see $demo" >&2
  exit 1
}
wait_for "nginx on 127.0.0.1:18443" bash -c 'exec 3<>/dev/tcp/127.0.0.1/18443'

echo "== sidecar: 127.0.0.1:15001 (plaintext in) -> upstream.demo via 127.0.0.1:18443 (mTLS out)"
cat >"$demo/sidecar.json" <<JSON
{
  "admin": {"address": "127.0.0.1:15000"},
  "workers": 2,
  "listeners": [{"name": "upstream", "address": "127.0.0.1:15001", "cluster": "upstream"}],
  "clusters": [{
    "name": "upstream",
    "endpoints": ["127.0.0.1:18443"],
    "tls": {
      "certificate": "pki/client.crt", "private_key": "pki/client.key",
      "trusted_ca": "pki/ca.crt", "server_name": "upstream.demo"
    }
  }]
}
JSON
"$sidecar" --validate --config "$demo/sidecar.json"
"$sidecar" --config "$demo/sidecar.json" 2>"$demo/sidecar.log" &
pids+=($!)
wait_for "the sidecar (log: $demo/sidecar.log)" curl -sf http://127.0.0.1:15000/ready

echo "== traffic: the application speaks plain HTTP to the sidecar"
for _ in 1 2 3; do curl -s http://127.0.0.1:15001/ -H "Host: upstream.demo"; done

echo "== GET /certs"
show() {  # show PATH LINES: an admin endpoint's JSON, pretty, first LINES lines
  curl -s "http://127.0.0.1:15000$1" | python3 -m json.tool >"$demo/admin.json"
  head -n "$2" "$demo/admin.json"
}
show /certs 45
echo "== GET /clusters?format=json"
show "/clusters?format=json" 45

echo "== rotating the client certificate live (new files renamed into place)"
exec 3<>/dev/tcp/127.0.0.1/15001   # a connection opened before the rotation
"$certs" issue --ca "$demo/pki" --out "$demo/pki/next" --uri spiffe://demo/ns/default/sa/app --client --ttl 1h
mv "$demo/pki/next.key" "$demo/pki/client.key"
mv "$demo/pki/next.crt" "$demo/pki/client.crt"
for _ in $(seq 30); do grep -q "tls reloaded" "$demo/sidecar.log" && break; sleep 0.1; done
grep "tls reloaded" "$demo/sidecar.log" || true
echo "new connections present the new certificate:"
curl -s http://127.0.0.1:15001/ -H "Host: upstream.demo"
echo "== GET /certs after the rotation while the old connection is open: both generations, each with its connections"
curl -s http://127.0.0.1:15000/certs | python3 -c 'import json,sys
for c in json.load(sys.stdin)["certificates"]:
    chain = c.get("cert_chain") or [{}]
    print("generation", c.get("generation"), "serial", chain[0].get("serial_number"), "expires", chain[0].get("expiration_time"), "connections", c.get("active_connections"))'
printf 'GET / HTTP/1.1\r\nHost: upstream.demo\r\nConnection: close\r\n\r\n' >&3
echo "the connection opened before the rotation still works (old certificate):"
tail -n 1 <&3
exec 3>&-
echo "== stats"
curl -s http://127.0.0.1:15000/stats | python3 -c 'import json,sys
for s in json.load(sys.stdin)["stats"]:
    if s["name"] in ("downstream_cx_total","ssl_handshake","ssl_session_reused","ssl_handshake_full","tls_reload_success"): print(" ", s["name"], s["value"])'
echo "== the sidecar's log"
cat "$demo/sidecar.log"
