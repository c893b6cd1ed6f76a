#!/bin/bash
# main_test.sh: the sidecar's command line, without starting it: --help names
# the signals and every admin path (the table of admin_route.c), as the
# README's tables do; --version prints the version that certs and xds-server
# print; usage errors name what is wrong and exit 2.
set -u
NAME=main
# shellcheck source=tests/sh_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
SIDECAR="$RUNFILES/sidecar/sidecar"
README="$RUNFILES/README.md"

expect_exit 0 "$SIDECAR" --help
cp "$DIR/out" "$DIR/help"
for signal in SIGHUP SIGTERM SIGINT; do
  grep -q "$signal" "$DIR/help" || fail "--help does not name $signal"
  grep -q "^| .*$signal" "$README" || fail "the README's table does not name $signal"
done
grep -q "SIGHUP  *reload" "$DIR/help" || fail "--help does not say that SIGHUP reloads"
grep -q "SIGTERM, SIGINT  *drain" "$DIR/help" || fail "--help does not say that SIGTERM drains"
paths=$(grep -o '= "/[a-z_/]*"' "$RUNFILES/sidecar/admin/admin_route.c" | tr -d '="')
[ "$(echo "$paths" | wc -w)" -ge 8 ] || fail "found only these admin paths: $paths"
for path in $paths; do
  method=GET
  [ "$path" = /quitquitquit ] && method=POST
  grep -qE "^  $method +$path " "$DIR/help" || fail "--help does not list $method $path"
  grep -qF "\`$method $path" "$README" || fail "the README's admin table does not list $method $path"
done

# One version for every program (common/version.h).
version=$(project_version)
[ -n "$version" ] || fail "no MS_VERSION in common/version.h"
expect_exit 0 "$SIDECAR" --version
grep -q "^sidecar $version (" "$DIR/out" || fail "sidecar --version printed: $(cat "$DIR/out")"
expect_exit 0 "$RUNFILES/certs/certs" --version
grep -q "^certs $version (" "$DIR/out" || fail "certs --version printed: $(cat "$DIR/out")"
expect_exit 0 "$RUNFILES/xds-server/xds-server" --version
grep -q "^xds-server $version (" "$DIR/out" || fail "xds-server --version printed: $(cat "$DIR/out")"

# Usage errors: exit 2, naming what is wrong.
expect_exit 2 "$SIDECAR"
grep -q -- "--config FILE is required" "$DIR/err" || fail "no arguments: $(cat "$DIR/err")"
expect_exit 2 "$SIDECAR" --config x.json --log-level loud
grep -qF -- '--log-level "loud" is not accepted: give debug, info, warn or error' "$DIR/err" ||
  fail "--log-level loud: $(cat "$DIR/err")"
expect_exit 2 "$SIDECAR" --config x.json extra
grep -qF 'unexpected argument "extra"' "$DIR/err" || fail "an extra argument: $(cat "$DIR/err")"

finish
