#!/bin/bash
# server_main_test.sh: xds-server's command line, without starting a
# server: --help and --version, which flags are required (and that those
# with a default are not), and that a refused value names the flag, the
# value and what is accepted. Every flag server_main.c knows must be in
# --help and in docs/xds-server.md.
set -u
NAME=server_main
# shellcheck source=tests/sh_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
SERVER="$RUNFILES/xds-server/xds-server"

# No arguments: the flags without a default are named, the others are not.
expect_exit 2 "$SERVER"
for flag in --tls-cert --tls-key --ca-cert --ca-key; do
  expect_in "$DIR/err" "$flag" "no arguments"
done
for flag in --listen --status-address; do
  grep -q -- "$flag" "$DIR/err" && fail "no arguments: $flag has a default, yet: $(cat "$DIR/err")"
done
expect_exit 2 "$SERVER" --tls-cert a.crt --ca-key ca.key
expect_in "$DIR/err" "--tls-key and --ca-cert are required" "two flags missing"

# --help: every flag of the table and the switches, in --help and in the docs.
expect_exit 0 "$SERVER" --help
cp "$DIR/out" "$DIR/help"
flags=$(grep -o '{"--[a-z-]*", set_' "$RUNFILES/xds-server/server_main.c" | sed 's/{"\(--[a-z-]*\)".*/\1/')
flags="$flags --accept-workload-certificates --serve-workload-keys --version --help"
[ "$(echo "$flags" | wc -w)" -gt 30 ] || fail "found only these flags in server_main.c: $flags"
for flag in $flags; do
  grep -qE -- "$flag( |$|,)" "$DIR/help" || fail "--help does not describe $flag"
  [ "$flag" = --help ] ||
    grep -qF -- "\`$flag" "$RUNFILES/docs/xds-server.md" || fail "docs/xds-server.md does not name $flag"
done
grep -E -- "--listen IP:PORT .*\[127\.0\.0\.1:18000\]" "$DIR/help" >/dev/null ||
  fail "--help does not give --listen's default"
grep -E -- "--cert-ttl .*at least 2s" "$DIR/help" >/dev/null || fail "--help does not give the TTL's minimum"

# --version: the version every program prints (common/version.h).
version=$(project_version)
expect_exit 0 "$SERVER" --version
grep -q "^xds-server $version (" "$DIR/out" || fail "--version printed: $(cat "$DIR/out")"

# A refused value: the flag, the value as given, what is accepted; exit 2.
# expect_refused FLAG VALUE ACCEPTED: both forms, --flag VALUE and --flag=VALUE.
expect_refused() {
  local flag=$1 value=$2 accepted=$3
  for form in separate joined; do
    if [ "$form" = separate ]; then
      expect_exit 2 "$SERVER" "$flag" "$value"
    else
      expect_exit 2 "$SERVER" "$flag=$value"
    fi
    expect_in "$DIR/err" "xds-server: $flag \"$value\" is not accepted: give $accepted" "$flag $value"
  done
}
durations="like 90s, 15m, 24h, 30d or plain seconds"
expect_refused --cert-ttl 1s "a duration of at least 2s, $durations"
expect_refused --cert-ttl 1h30m "a duration of at least 2s, $durations"
expect_refused --ca-overlap 0 "a duration of at least 1s, $durations"
expect_refused --jwks-refresh soon "a duration of at least 1s, $durations"
expect_refused --token-skew -5s "a duration of at least 1s, $durations"
expect_refused --drain-delay 2h "a duration from 0s to 1h, $durations"
expect_refused --debounce-ms 0 "a whole number of milliseconds from 1 to 60000"
expect_refused --debounce-ms 60001 "a whole number of milliseconds from 1 to 60000"
expect_refused --csr-rate-limit -1 "a whole number from 0 (no limit) to 1000000"
expect_refused --max-connections 0 "a whole number from 1 to 1000000"
expect_refused --max-connections-per-peer 1e3 "a whole number from 1 to 1000000"
expect_refused --max-streams-per-connection 1000001 "a whole number from 1 to 1000000"
expect_refused --max-request-bytes 4294967297 "a whole number of bytes from 1 to 4294967296"
expect_refused --max-buffered-bytes 99999999999999999999999 "a whole number of bytes from 1 to"
expect_refused --max-queued-bytes 16MiB "a whole number of bytes from 1 to"
expect_refused --log-level loud "debug, info, warn or error"

# A flag at the end with no value says what it wants.
expect_exit 2 "$SERVER" --cert-ttl
expect_in "$DIR/err" "--cert-ttl needs a value: a duration of at least 2s" "--cert-ttl alone"
expect_exit 2 "$SERVER" --tls-cert
expect_in "$DIR/err" "--tls-cert needs a value" "--tls-cert alone"
expect_exit 2 "$SERVER" --frobnicate
expect_in "$DIR/err" "unknown flag --frobnicate" "an unknown flag"

finish
