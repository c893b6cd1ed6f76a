#!/bin/bash
# xds_server_webhook_test.sh: xds-server's admission webhook (docs/xds-server.md,
# "The admission webhook") as the API server and hostile peers see it over
# real HTTPS: the real binary started with the webhook flags, its serving
# certificate made here with the certs tool, and webhook_client.py (python's
# http.client and ssl, jsonpatch applying the patches) checking injection,
# refusals, validation, bad requests, caps, slow and plaintext peers, 1000
# keep-alive reviews and a certificate rotation under an open connection.
# Then: one log line per decision, never the object; xds-server exits 0.
set -u
NAME=xds_server_webhook_test
# shellcheck source=tests/sh_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
CERTS="$RUNFILES/certs/certs"
SERVER="$RUNFILES/xds-server/xds-server"
command -v openssl >/dev/null || { echo "FAIL: openssl is not installed" >&2; exit 1; }
find_python yaml jsonpatch || { echo "FAIL: no python3 with PyYAML and jsonpatch (apt-get install python3-jsonpatch python3-yaml)" >&2; exit 1; }

"$CERTS" ca --out "$DIR/ca" >/dev/null &&
  "$CERTS" ca --out "$DIR/bootstrap-ca" --cn "bootstrap CA" >/dev/null &&
  "$CERTS" issue --ca "$DIR/ca" --out "$DIR/server" --dns localhost --ip 127.0.0.1 \
    --server >/dev/null &&
  mkdir -p "$DIR/webhook" &&
  "$CERTS" issue --ca "$DIR/ca" --out "$DIR/webhook/tls" --dns localhost --ip 127.0.0.1 \
    --server >/dev/null ||
  { echo "FAIL: could not issue certificates" >&2; exit 1; }

log="$DIR/server.log"
"$SERVER" --listen 127.0.0.1:0 --status-address 127.0.0.1:0 \
  --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" \
  --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" \
  --client-ca "$DIR/bootstrap-ca/ca.crt" --debounce-ms 50 \
  --webhook-address 127.0.0.1:0 --webhook-cert "$DIR/webhook/tls.crt" \
  --webhook-key "$DIR/webhook/tls.key" --webhook-request-timeout 2s \
  --webhook-idle-timeout 4s \
  --inject-image registry.test/mtls-sidecar --inject-tag 9.9.9 \
  --inject-config-map test-sidecar-config --namespace mtls-test-system \
  --token-audience xds.test 2>"$log" &
server_pid=$!
pids+=("$server_pid")
webhook_port="" status_port=""
for _ in $(seq 100); do
  line=$(grep -m1 'admission webhook (HTTPS) on' "$log")
  if [ -n "$line" ]; then
    webhook_port=$(sed -E 's/.*\(port ([0-9]+)\)$/\1/' <<<"$line")
    status_port=$(grep -m1 'serving ADS on' "$log" | sed -E 's/.*status on .* \(port ([0-9]+)\)$/\1/')
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$webhook_port" ] || { echo "FAIL: xds-server did not start: $(cat "$log")" >&2; exit 1; }

timeout 300 "$python" "$RUNFILES/tests/xds_server/webhook_client.py" "$DIR" "$webhook_port" \
  "$status_port" "$CERTS" "$RUNFILES/inject/testdata/deployment.yaml" ||
  fail "webhook_client.py (above)"

# One line per decision, naming the pod; never the object.
grep -q 'webhook: /inject pod shop/checkout-5d8f9c7b6d-\*: injected' "$log" ||
  fail "no decision line for the injected pod: $(grep webhook: "$log" | head -5)"
grep -q 'webhook: /validate: denied by validate: pod shop/checkout-5d8f9c7b6d-\*: .*restartPolicy' "$log" ||
  fail "no line for the validate denial"
! grep -q 'curlimages' "$log" || fail "the log holds the object: $(grep -m1 curlimages "$log")"
grep -q 'webhook tls: serving certificate reloaded' "$log" || fail "no reload line"

kill -TERM "$server_pid"
wait "$server_pid"
rc=$?
[ "$rc" -eq 0 ] || fail "xds-server exited $rc after SIGTERM: $(tail -5 "$log")"
pids=()

# Without --webhook-cert the webhook serves the ADS pair (--tls-cert).
# With --webhook-max-connections 2, a third connection closes the oldest
# idle one (counted: evicted), and is served.
"$SERVER" --listen 127.0.0.1:0 --status-address 127.0.0.1:0 \
  --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" \
  --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" \
  --client-ca "$DIR/bootstrap-ca/ca.crt" --webhook-address 127.0.0.1:0 \
  --webhook-max-connections 2 2>"$DIR/default.log" &
server_pid=$!
pids+=("$server_pid")
port=""
for _ in $(seq 100); do
  port=$(sed -nE 's/.*admission webhook \(HTTPS\) on .* \(port ([0-9]+)\)$/\1/p' "$DIR/default.log")
  [ -n "$port" ] && break
  sleep 0.1
done
served=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
  -alpn http/1.1 2>/dev/null | openssl x509 -noout -serial)
want=$(openssl x509 -noout -serial -in "$DIR/server.crt")
[ -n "$want" ] && [ "$served" = "$want" ] ||
  fail "without --webhook-cert the webhook serves --tls-cert ($want), not \"$served\""
status_port=$(grep -m1 'serving ADS on' "$DIR/default.log" | sed -E 's/.*status on .* \(port ([0-9]+)\)$/\1/')
"$python" - "$port" "$status_port" "$DIR/ca/ca.crt" <<'PY' || fail "the connection cap (above)"
import http.client, json, ssl, sys
port, status_port, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
def review(conn):
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "namespace": "shop", "operation": "CREATE",
                                   "object": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}}})
    conn.request("POST", "/inject", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status
conns = [http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5) for _ in range(3)]
assert review(conns[0]) == 200 and review(conns[1]) == 200
assert review(conns[2]) == 200, "the third connection is served"
try:
    conns[0].sock.settimeout(3)
    assert conns[0].sock.recv(10) == b"", "the oldest idle connection is closed"
except (ConnectionError, ssl.SSLError):
    pass
assert review(conns[1]) == 200, "the second one is kept"
s = http.client.HTTPConnection("127.0.0.1", status_port, timeout=5)
s.request("GET", "/status")
evicted = json.loads(s.getresponse().read())["webhook"]["http"]["evicted"]
assert evicted == 1, "evicted counted: %r" % evicted
PY
kill -TERM "$server_pid"
wait "$server_pid"
pids=()

# One of the pair alone is refused at start, naming both flags.
expect_exit 1 "$SERVER" --listen 127.0.0.1:0 --status-address off \
  --tls-cert "$DIR/server.crt" --tls-key "$DIR/server.key" \
  --ca-cert "$DIR/ca/ca.crt" --ca-key "$DIR/ca/ca.key" \
  --client-ca "$DIR/bootstrap-ca/ca.crt" --webhook-address 127.0.0.1:0 \
  --webhook-cert "$DIR/webhook/tls.crt"
expect_in "$DIR/err" "--webhook-cert and --webhook-key go together" "the pair"
finish
