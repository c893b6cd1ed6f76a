#!/usr/bin/env bash
# The demo: the sidecar configured by the control plane.
#
# A workload CA made on the spot with the `certs` CLI; nginx as an upstream
# that requires client certificates from that CA (ssl_verify_client on);
# xds-server, the reference control plane, which is also the workload CA:
# it serves the cluster, its endpoints and the listener from a folder of
# Envoy JSON files, and signs the sidecar's certificate request over Istio's
# CA API for the identity its bootstrap certificate proves. The sidecar makes
# its own key, which never leaves it, and renews its certificate every 10-14
# s here (xds-server caps lifetimes at --cert-ttl 20s). It starts with
# nothing but the control plane's address, its bootstrap certificate and
# "identity": {}.
#
# Then: requests through it (nginx prints the client certificate's serial),
# /certs and the xDS status, a live rotation while traffic flows and a
# connection stays open (both generations in /certs), and an edit to the
# resource files reaching the sidecar in a fraction of a second: an HTTP
# listener whose requests share a few pooled mTLS connections.
#
# Ports (all on 127.0.0.1): 15000 sidecar admin, 15001 and 15002 sidecar
# listeners, 18000 ADS, 18001 xds-server /status, 18443 nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

section() { printf '\n== %s\n' "$*"; }

section "dependencies (tools/install-deps.sh)"
tools/install-deps.sh
echo "ok"

section "building //sidecar:sidecar //certs:certs //xds-server:xds-server"
build_log=$(mktemp)
if ! bazel build //sidecar:sidecar //certs:certs //xds-server:xds-server >"$build_log" 2>&1; then
  grep -v -E "^(INFO|Loading|Analyzing|\[)" "$build_log" >&2
  rm -f "$build_log"
  echo "demo: the build failed" >&2
  exit 1
fi
grep -E "Build completed" "$build_log" | tail -n 1
rm -f "$build_log"
# Ask Bazel where the binaries are rather than trusting the bazel-bin
# symlink, which any other Bazel command in this tree may re-point.
bin=$(bazel info bazel-bin 2>/dev/null)
sidecar=$bin/sidecar/sidecar
certs=$bin/certs/certs
xds_server=$bin/xds-server/xds-server
for binary in "$sidecar" "$certs" "$xds_server"; do
  [ -x "$binary" ] || { echo "demo: $binary was not built" >&2; exit 1; }
done

demo=$root/.demo
for port in 15000 15001 15002 18000 18001 18443; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "demo: 127.0.0.1:$port is already in use (an earlier demo still running?)" >&2
    exit 1
  fi
done
rm -rf "$demo"
mkdir -p "$demo/pki" "$demo/resources" "$demo/nginx/logs"

pids=()
cleanup() {
  exec 3>&-
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() {  # wait_for WHAT COMMAND...: up to 10 s
  local what=$1
  shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: $what did not come up; logs in $demo" >&2
  exit 1
}

# Compact views of the admin endpoints' JSON (python3: no jq on a fresh
# Debian). `view.py NAME` reads the JSON on stdin.
cat >"$demo/view.py" <<'PY'
import json, re, sys

view, data = sys.argv[1], json.load(sys.stdin)

def short(type_url):
    return {"Cluster": "CDS", "ClusterLoadAssignment": "EDS", "Listener": "LDS",
            "Secret": "SDS"}.get(type_url.rsplit(".", 1)[-1], type_url)

def log_serials():
    # /certs lists a certificate's details only when it came from a file;
    # for SDS material the sidecar's "tls loaded/reloaded" log line names
    # the serial of each generation.
    serials = {}
    with open(sys.argv[2]) as log:
        for line in log:
            m = re.search(r"tls (?:re)?loaded: .*generation=(\d+) serial=(\w+)", line)
            if m:
                serials[int(m.group(1))] = m.group(2)
    return serials

if view == "certs":
    serials = log_serials()
    print(f"  {'generation':>10}  {'for':<22} {'connections':>11}  client certificate serial")
    for c in sorted(data["certificates"], key=lambda c: c["generation"]):
        chain = c.get("cert_chain") or []
        serial = chain[0]["serial_number"] if chain else serials.get(c["generation"], "?")
        role = "new connections" if c["current"] else "open connections only"
        print(f"  {c['generation']:>10}  {role:<22} {c['active_connections']:>11}  {serial.upper()}")
elif view == "xds":
    cp = next(c for c in data["configs"] if c["@type"].endswith("XdsStatus"))
    plane = cp["control_plane"]
    print(f"  control plane {plane['address']}: {plane['state']}, node {plane['node_id']}, "
          f"{cp['dynamic_clusters']} clusters, {cp['dynamic_listeners']} listeners, "
          f"{cp['warming_clusters']} warming")
    for t in cp["resource_types"]:
        names = "*" if t["wildcard"] else ",".join(t["resource_names"])
        nack = f"  last_nack: {t['last_nack']}" if t.get("last_nack") else ""
        print(f"  {short(t['type_url'])}  version {t['version_info']}  nonce {t['nonce']:>2}  "
              f"acks {t['acks']}  nacks {t['nacks']}  names {names}{nack}")
elif view == "version":
    cp = next(c for c in data["configs"] if c["@type"].endswith("XdsStatus"))
    print(next(t["version_info"] for t in cp["resource_types"] if short(t["type_url"]) == sys.argv[2]))
elif view == "status":
    for node in data["nodes"]:
        print(f"  node {node['id']} (cluster {node['cluster']}): {node['spiffe_id']}, proved by {node['proof']}")
        print("    " + "  ".join(f"{k} {'synced' if t['synced'] else 'NOT synced'}"
                                  for k, t in sorted(node["types"].items())))
    ca = data["ca_api"]
    print(f"  CA API: {ca['calls']} CreateCertificate calls, {ca['signed']} signed, "
          f"refused {sum(ca['refused'].values())}")
elif view == "identity":
    local = data["local_identity"]
    print(f"  {local['spiffe_id']} (from {local['spiffe_id_from']}, proof: {local['proof']})")
    print(f"  serial {local['serial'].upper()}, valid {local['not_before']} to {local['not_after']}, "
          f"renewal at {local['next_renewal']}")
    print(f"  key locked in memory: {local['key_locked']}; CSR round trip {local['last_round_trip_ms']:.1f} ms")
elif view == "latency":
    latency = data["http_rq_latency_ms"]
    print(f"latency p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms")
elif view == "stat":
    print(next(s["value"] for s in data["stats"] if s["name"] == sys.argv[2]))
elif view == "stats":
    wanted = ("downstream_cx_total", "ssl_handshake", "ssl_session_reused", "tls_reload_success",
              "xds_stream_established", "xds_update_success", "xds_update_rejected")
    for s in data["stats"]:
        if s["name"] in wanted:
            print(f"  {s['name']:<24} {s['value']}")
PY
view() { python3 "$demo/view.py" "$@"; }
admin() { curl -s "http://127.0.0.1:15000$1"; }
request() {  # request PORT: one HTTP request through a sidecar listener
  curl -s --max-time 3 "http://127.0.0.1:$1/" -H "Host: upstream.demo"
}

section "the workload CA and the certificates made by hand (certs ca / certs issue)"
"$certs" ca --out "$demo/pki/ca" --cn "demo workload CA" >/dev/null
"$certs" issue --ca "$demo/pki/ca" --out "$demo/pki/xds-server" --dns xds.demo --ip 127.0.0.1 --server >/dev/null
"$certs" ca --out "$demo/pki/bootstrap-ca" --cn "demo bootstrap CA" >/dev/null
"$certs" issue --ca "$demo/pki/bootstrap-ca" --out "$demo/pki/bootstrap" \
  --uri spiffe://cluster.local/ns/shop/sa/orders --client >/dev/null
"$certs" issue --ca "$demo/pki/ca" --out "$demo/pki/upstream" --dns upstream.demo --ip 127.0.0.1 --server >/dev/null
echo "pki/ca/ca.crt         the workload CA (xds-server signs the sidecars' certificates with it)"
echo "pki/xds-server.crt    the control plane's server certificate (xds.demo)"
echo "pki/bootstrap-ca      the CA of bootstrap certificates (xds-server --client-ca)"
echo "pki/bootstrap.crt     the sidecar's bootstrap certificate: it proves spiffe://cluster.local/ns/shop/sa/orders"
echo "pki/upstream.crt      nginx's server certificate (upstream.demo)"
echo "(no client certificate or key for the upstream: the sidecar makes its key, xds-server signs its CSR)"

section "nginx upstream on 127.0.0.1:18443 (ssl_verify_client on, trusts the workload CA)"
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
    ssl_client_certificate $demo/pki/ca/ca.crt;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      default_type text/plain;
      return 200 "nginx: client=\$ssl_client_s_dn serial=\$ssl_client_serial \$ssl_protocol\n";
    }
  }
}
NGINX
/usr/sbin/nginx -p "$demo/nginx" -c "$demo/nginx/nginx.conf" &
pids+=($!)
wait_for "nginx on 127.0.0.1:18443" bash -c 'exec 3<>/dev/tcp/127.0.0.1/18443'
echo "ok"

section "the control plane's resources: resources/upstream.json (Envoy JSON)"
# One listener, its cluster (EDS endpoints; client certificate and trust
# bundle by SDS from the control plane) and its endpoints.
cat >"$demo/resources/upstream.json" <<'JSON'
{"resources": [
  {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
   "name": "upstream", "type": "EDS", "connect_timeout": "1.5s",
   "eds_cluster_config": {"eds_config": {"ads": {}}},
   "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
     "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
     "sni": "upstream.demo",
     "common_tls_context": {
       "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": {"ads": {}}}],
       "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": {"ads": {}}}}}}},
  {"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
   "cluster_name": "upstream",
   "endpoints": [{"lb_endpoints": [
     {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 18443}}}}]}]},
  {"@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
   "name": "upstream-in", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15001}},
   "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
     "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
     "stat_prefix": "upstream", "cluster": "upstream"}}]}]}
]}
JSON
echo "Cluster upstream                 EDS, SNI upstream.demo, SDS secrets \"default\" + \"ROOTCA\""
echo "ClusterLoadAssignment upstream   127.0.0.1:18443"
echo "Listener upstream-in             127.0.0.1:15001 -> cluster upstream"

section "xds-server: ADS and Istio's CA API on 127.0.0.1:18000, workload CA, --cert-ttl 20s"
"$xds_server" --listen 127.0.0.1:18000 --status-address 127.0.0.1:18001 \
  --tls-cert "$demo/pki/xds-server.crt" --tls-key "$demo/pki/xds-server.key" \
  --ca-cert "$demo/pki/ca/ca.crt" --ca-key "$demo/pki/ca/ca.key" \
  --client-ca "$demo/pki/bootstrap-ca/ca.crt" \
  --config-dir "$demo/resources" --cert-ttl 20s 2>"$demo/xds-server.log" &
pids+=($!)
wait_for "xds-server (log: $demo/xds-server.log)" curl -sf http://127.0.0.1:18001/status
grep -E "files: loaded|serving ADS" "$demo/xds-server.log" | sed 's/^[^ ]* /  /'

section "the sidecar: the control plane, and its own identity agent (\"identity\": {})"
cat >"$demo/sidecar.json" <<'JSON'
{
  "admin": {"address": "127.0.0.1:15000"},
  "workers": 2,
  "xds": {
    "address": "127.0.0.1:18000",
    "tls": {"certificate": "pki/bootstrap.crt", "private_key": "pki/bootstrap.key",
            "trusted_ca": "pki/ca/ca.crt", "server_name": "xds.demo"},
    "node": {"id": "orders.shop", "cluster": "orders"},
    "initial_fetch_timeout_ms": 5000,
    "backup_path": "xds-backup.json"
  },
  "identity": {}
}
JSON
cat "$demo/sidecar.json"
"$sidecar" --validate --config "$demo/sidecar.json"
"$sidecar" --config "$demo/sidecar.json" 2>"$demo/sidecar.log" &
pids+=($!)
wait_for "the sidecar (log: $demo/sidecar.log)" curl -sf http://127.0.0.1:15000/ready
grep -E "xds|identity|tls loaded" "$demo/sidecar.log" | sed 's/^[^ ]* /  /'

section "traffic: plain HTTP to 127.0.0.1:15001, mTLS to nginx with the sidecar's own key"
for _ in 1 2 3; do request 15001; done
echo "xds-server GET /status (who the node proved to be, what the CA signed):"
curl -s http://127.0.0.1:18001/status | view status
echo "sidecar GET /certs: its local identity (the key is in locked memory, never shown):"
admin /certs | view identity

section "sidecar GET /certs"
admin /certs | view certs "$demo/sidecar.log"
section "sidecar GET /config_dump: the xDS status (configs[1])"
admin /config_dump | view xds

section "live rotation: a connection opened now stays open across it"
exec 3<>/dev/tcp/127.0.0.1/15001
first_generation=$(admin /certs | python3 -c 'import json,sys
print(max(c["generation"] for c in json.load(sys.stdin)["certificates"] if c["current"]))')
wait_for "the open connection's upstream" bash -c \
  'curl -s http://127.0.0.1:15000/certs | grep -q "\"active_connections\":[1-9]"'
echo "GET /certs before the rotation:"
admin /certs | view certs "$demo/sidecar.log"
echo "traffic every 0.2 s until the sidecar renews its certificate (10-14 s after the first; a new key, a new CSR) ..."
(while :; do
  out=$(request 15001) && echo "${out##*serial=}" | cut -d' ' -f1 || echo FAILED
  sleep 0.2
done) >"$demo/traffic.log" 2>&1 &
traffic=$!
pids+=("$traffic")
start=$SECONDS
until admin /certs | python3 -c 'import json,sys
sys.exit(not any(c["current"] and c["generation"] > '"$first_generation"' for c in json.load(sys.stdin)["certificates"]))'; do
  if [ $((SECONDS - start)) -gt 30 ]; then echo "demo: no rotation within 30 s; see $demo" >&2; exit 1; fi
  sleep 0.2
done
sleep 1  # a few more requests on the new certificate
kill "$traffic"
wait "$traffic" 2>/dev/null || true
grep -E "tls reloaded" "$demo/sidecar.log" | tail -n 1 | sed 's/^[^ ]* /  /'
echo "requests during the rotation: $(wc -l <"$demo/traffic.log"), failed: $(grep -c FAILED "$demo/traffic.log" || true); serials seen at nginx, in order:"
uniq -c "$demo/traffic.log" | sed 's/^ */  /'
echo "GET /certs after the rotation: the old generation lives on for the open connection"
admin /certs | view certs "$demo/sidecar.log"
echo "a new connection presents the new certificate:"
request 15001
echo "the connection opened before the rotation still presents the old one:"
printf 'GET / HTTP/1.1\r\nHost: upstream.demo\r\nConnection: close\r\n\r\n' >&3
tail -n 1 <&3
exec 3>&-
sleep 0.2
echo "GET /certs once it closed:"
admin /certs | view certs "$demo/sidecar.log"

section "a config change: an HTTP listener (127.0.0.1:15002) added to resources/upstream.json"
# An HttpConnectionManager with its routes inline: the sidecar proxies HTTP/1.1
# over pooled keep-alive mTLS connections to the same cluster.
lds_before=$(admin /config_dump | view version LDS)
python3 - "$demo/resources/upstream.json" <<'PY'
import json, os, sys
path = sys.argv[1]
with open(path) as f:
    doc = json.load(f)
doc["resources"].append({
    "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
    "name": "web", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 15002}},
    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                     "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "web",
            "route_config": {"name": "web", "virtual_hosts": [{"name": "all", "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]})
# Written beside it and renamed in: a file starting with "." is not read.
tmp = os.path.join(os.path.dirname(path), ".upstream.json.tmp")
with open(tmp, "w") as f:
    json.dump(doc, f, indent=1)
PY
edited=$(date +%s%N)
mv "$demo/resources/.upstream.json.tmp" "$demo/resources/upstream.json"
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/15002) 2>/dev/null && break
  sleep 0.01
done
echo "127.0.0.1:15002 accepting $(( ($(date +%s%N) - edited) / 1000000 )) ms after the edit"
grep -E "files: loaded|LDS now" "$demo/xds-server.log" | tail -n 2 | sed 's/^[^ ]* /  /'
grep -E "type=listener" "$demo/sidecar.log" | tail -n 1 | sed 's/^[^ ]* /  /'
echo "LDS version in /config_dump: $lds_before -> $(admin /config_dump | view version LDS)"
pool_new=$(admin /stats | view stat http_pool_new)
echo "100 requests from 10 clients, each on its own keep-alive connection to 127.0.0.1:15002:"
: >"$demo/http.log"
curl_pids=()
for c in $(seq 10); do
  curl -s --max-time 5 -H "Host: upstream.demo" \
    $(for i in $(seq 10); do echo "http://127.0.0.1:15002/?client=$c&n=$i"; done) >>"$demo/http.log" &
  curl_pids+=($!)
done
for p in "${curl_pids[@]}"; do wait "$p" || true; done
echo "  answers: $(grep -c serial= "$demo/http.log") of 100; upstream connections opened for them: $(( $(admin /stats | view stat http_pool_new) - pool_new ))"
echo "  GET /stats: $(admin /stats | view stat http_rq_2xx) 2xx, $(admin /stats | view stat http_pool_reused) on pooled connections, $(admin /stats | view latency)"
admin /config_dump | view xds

section "sidecar GET /stats (selected)"
admin /stats | view stats

section "done"
echo "logs and files in $demo (sidecar.log, xds-server.log, nginx/logs, xds-backup.json)"
