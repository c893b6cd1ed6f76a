# shellcheck shell=bash
# node_test_lib.sh: what the shell tests with Node.js peers (tests/node)
# share, sourced after they set NAME (the name of their folder):
#   NAME=grpc_node
#   source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/node/node_test_lib.sh"
# Sets RUNFILES, CERTS (the certs CLI; the test lists //certs in its data),
# NODE_DIR (tests/node in the source tree), DIR (a fresh folder for the
# test's files), passed=0, failed=0 and pids=(); kills what is in pids on
# exit. Fails the test at once without node or @grpc/grpc-js.
: "${NAME:?set NAME before sourcing node_test_lib.sh}"
RUNFILES="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}"
CERTS="$RUNFILES/certs/certs"
# This file's runfile is a symlink into the source tree, where tests/node
# and its node_modules live (node_modules is not a Bazel input).
NODE_DIR="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
DIR="${TEST_TMPDIR:-$(mktemp -d)}/$NAME"
# shellcheck disable=SC2034 # for the tests that source this
passed=0 failed=0
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

# require_command NAME...: fails the test at once unless each command is
# installed.
require_command() {
  local name
  for name in "$@"; do
    command -v "$name" >/dev/null && continue
    echo "FAIL: $name is not installed (tools/install-deps.sh installs it)" >&2
    exit 1
  done
}

# require_node_module PATH...: fails the test at once unless each PATH is in
# tests/node/node_modules.
require_node_module() {
  local module
  for module in "$@"; do
    [ -d "$NODE_DIR/node_modules/$module" ] && continue
    echo "FAIL: $NODE_DIR/node_modules has no $module:" \
      "run \`npm ci --prefix tests/node\` first (tools/install-deps.sh does it)" >&2
    exit 1
  done
}

# issue_certs CLIENT_URI [bootstrap]: makes in $DIR a CA (ca/ca.crt, .key),
# a server certificate from it for localhost and 127.0.0.1 (server.crt,
# .key) and a client certificate for CLIENT_URI (client.crt, .key): from
# ca/, or with "bootstrap" from a CA of its own, bootstrap-ca/ (what
# xds-server's --client-ca trusts). Fails the test at once if it cannot.
issue_certs() {
  local client_ca="$DIR/ca"
  if [ "${2:-}" = bootstrap ]; then
    client_ca="$DIR/bootstrap-ca"
    "$CERTS" ca --out "$client_ca" --cn "bootstrap CA" >/dev/null ||
      { echo "FAIL: could not make the bootstrap CA" >&2; exit 1; }
  fi
  "$CERTS" ca --out "$DIR/ca" >/dev/null &&
    "$CERTS" issue --ca "$DIR/ca" --out "$DIR/server" --dns localhost --ip 127.0.0.1 \
      --server >/dev/null &&
    "$CERTS" issue --ca "$client_ca" --out "$DIR/client" --uri "$1" --client >/dev/null ||
    { echo "FAIL: could not issue certificates" >&2; exit 1; }
}

# wait_for FILE PID REGEX: prints the first capture of REGEX (sed -E) in
# FILE, within 15 s; returns 1 sooner if PID exits first.
wait_for() {
  local found
  for _ in $(seq 150); do
    found=$(sed -nE "s/$3/\\1/p" "$1" 2>/dev/null | head -1)
    [ -n "$found" ] && { echo "$found"; return 0; }
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# WAIT_PORT: wait_for's REGEX for a file holding a port number.
# shellcheck disable=SC2034 # for the tests that source this
WAIT_PORT='^([0-9]+)$'

rm -rf "$DIR"
mkdir -p "$DIR"
require_command node
require_node_module @grpc/grpc-js
