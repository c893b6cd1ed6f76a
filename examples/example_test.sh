#!/bin/bash
# example_test.sh: the example of the README, as a new user follows it, so
# that it cannot rot: examples/make-certs.sh makes the certificates with the
# certs CLI, `sidecar --validate` accepts examples/sidecar.json, every
# address in it is on loopback or localhost, and, on free ports instead of
# its fixed ones, it proxies a request to the README's openssl s_server
# upstream, which sees the sidecar's client certificate. A second
# make-certs.sh keeps the CA; --force replaces it. The README shows
# sidecar.json as its configuration example.
set -u
NAME=example
# shellcheck source=tests/sh_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
SIDECAR="$RUNFILES/sidecar/sidecar"
EXAMPLES="$DIR/examples"

# A copy of the folder as a clone has it (pki/ is made, never checked in).
mkdir -p "$EXAMPLES"
cp "$RUNFILES/examples/sidecar.json" "$RUNFILES/examples/make-certs.sh" "$EXAMPLES/"
export CERTS="$RUNFILES/certs/certs"

"$EXAMPLES/make-certs.sh" >"$DIR/certs.out" 2>&1 || fail "make-certs.sh: $(cat "$DIR/certs.out")"
"$SIDECAR" --validate --config "$EXAMPLES/sidecar.json" >"$DIR/validate.out" 2>&1 ||
  fail "sidecar --validate refused the example: $(cat "$DIR/validate.out")"
grep -q "valid (1 listener, 1 cluster)" "$DIR/validate.out" ||
  fail "--validate said: $(cat "$DIR/validate.out")"

# The README shows this file as its configuration example.
python3 - "$RUNFILES/README.md" "$EXAMPLES/sidecar.json" <<'PY' ||
import json, re, sys
readme = open(sys.argv[1]).read()
section = readme[readme.index("\n## Configuration\n"):]
shown = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))
assert shown == json.load(open(sys.argv[2])), "the README's example differs from examples/sidecar.json"
PY
  fail "the README's configuration example is not examples/sidecar.json"

# Loopback addresses and names that resolve, nothing routable.
python3 - "$EXAMPLES/sidecar.json" <<'PY' || fail "the example names an address off this machine"
import json, sys
config = json.load(open(sys.argv[1]))
addresses = [config["admin"]["address"]] + [l["address"] for l in config["listeners"]]
assert all(a.startswith(("127.0.0.1:", "[::1]:")) for a in addresses), addresses
for cluster in config["clusters"]:
    for endpoint in cluster["endpoints"]:
        address = endpoint if isinstance(endpoint, str) else endpoint["address"]
        assert address.rsplit(":", 1)[0] in ("localhost", "127.0.0.1", "[::1]"), address
PY

# Run it: the example with free ports, the README's upstream, one request.
read -r admin_port listener_port upstream_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
python3 - "$EXAMPLES/sidecar.json" "$EXAMPLES/run.json" "$admin_port" "$listener_port" \
  "$upstream_port" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["admin"]["address"] = f"127.0.0.1:{sys.argv[3]}"
config["listeners"][0]["address"] = f"127.0.0.1:{sys.argv[4]}"
config["clusters"][0]["endpoints"] = [f"localhost:{sys.argv[5]}"]
json.dump(config, open(sys.argv[2], "w"))
PY
(cd "$EXAMPLES" && exec openssl s_server -accept "$upstream_port" -cert pki/upstream.crt \
  -key pki/upstream.key -CAfile pki/ca/ca.crt -Verify 1 -verify_return_error -www) \
  >"$DIR/upstream.log" 2>&1 &
pids+=($!)
"$SIDECAR" --config "$EXAMPLES/run.json" >"$DIR/sidecar.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  [ "$(curl -s -m 1 "http://127.0.0.1:$admin_port/ready")" = LIVE ] && break
  sleep 0.1
done
curl -s -m 5 "http://127.0.0.1:$listener_port/" >"$DIR/answer" 2>&1
grep -q "s_server" "$DIR/answer" ||
  fail "no answer from the upstream through the sidecar: $(head -c 500 "$DIR/answer")
sidecar log: $(cat "$DIR/sidecar.log")
upstream log: $(cat "$DIR/upstream.log")"
grep -q "CN = spiffe://cluster.local/ns/shop/sa/client" "$DIR/upstream.log" ||
  fail "the upstream did not see the client certificate: $(cat "$DIR/upstream.log")"
stop_processes

# Made once: a second run keeps the CA, --force replaces it.
cp "$EXAMPLES/pki/ca/ca.key" "$DIR/ca.key.first"
"$EXAMPLES/make-certs.sh" >"$DIR/again.out" 2>&1 && fail "a second make-certs.sh succeeded"
grep -q "already exist; nothing was written. --force replaces them" "$DIR/again.out" ||
  fail "a second make-certs.sh said: $(cat "$DIR/again.out")"
cmp -s "$EXAMPLES/pki/ca/ca.key" "$DIR/ca.key.first" || fail "a second make-certs.sh replaced the CA"
"$EXAMPLES/make-certs.sh" --force >"$DIR/force.out" 2>&1 || fail "make-certs.sh --force: $(cat "$DIR/force.out")"
cmp -s "$EXAMPLES/pki/ca/ca.key" "$DIR/ca.key.first" && fail "make-certs.sh --force kept the CA"
"$SIDECAR" --validate --config "$EXAMPLES/sidecar.json" >"$DIR/validate.out" 2>&1 ||
  fail "sidecar --validate after --force: $(cat "$DIR/validate.out")"

finish
