#!/bin/bash
# cli_test.sh: the `certs` CLI end to end: ca, issue (plain, encrypted,
# expired), inspect, version, usage errors with their exit codes, and files
# that exist kept unless --force.
set -u
NAME=cli
# shellcheck source=tests/sh_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
CERTS="$RUNFILES/certs/certs"

expect_exit 0 "$CERTS" --help
for command in ca issue inspect version help; do
  grep -q "^  certs $command" "$DIR/out" || fail "--help does not describe $command"
done
expect_exit 0 "$CERTS" help
grep -q "certs issue" "$DIR/out" || fail "certs help does not print the usage"

# The version: the one every program prints (common/version.h).
version=$(project_version)
[ -n "$version" ] || fail "no MS_VERSION in common/version.h"
for form in --version version; do
  expect_exit 0 "$CERTS" "$form"
  grep -q "^certs $version (" "$DIR/out" || fail "certs $form printed: $(cat "$DIR/out")"
done
expect_exit 2 "$CERTS" version extra
expect_exit 2 "$CERTS"
expect_exit 2 "$CERTS" frobnicate
expect_exit 2 "$CERTS" ca
expect_exit 2 "$CERTS" ca --out "$DIR/ca" --ttl forever
grep -q "invalid --ttl" "$DIR/err" || fail "bad --ttl message: $(cat "$DIR/err")"
expect_exit 2 "$CERTS" issue --ca "$DIR/ca"
expect_exit 2 "$CERTS" issue --ca "$DIR/ca" --out "$DIR/x" --dns
expect_exit 2 "$CERTS" inspect

expect_exit 0 "$CERTS" ca --out "$DIR/ca/nested" --cn "CLI Test CA"
[ -f "$DIR/ca/nested/ca.crt" ] && [ -f "$DIR/ca/nested/ca.key" ] || fail "ca files missing"
[ "$(stat -c %a "$DIR/ca/nested/ca.key")" = 600 ] || fail "ca.key is not 0600"
CA="$DIR/ca/nested"

expect_exit 1 "$CERTS" issue --ca "$DIR/nowhere" --out "$DIR/x"
grep -q "nowhere/ca.crt" "$DIR/err" || fail "missing CA message: $(cat "$DIR/err")"

expect_exit 0 "$CERTS" issue --ca "$CA" --out "$DIR/web" --dns web.test --ip 10.0.0.7 \
  --uri spiffe://td/ns/shop/sa/web --server
expect_exit 0 "$CERTS" inspect "$DIR/web.crt"
python3 - "$DIR/out" <<'PY' || fail "inspect output: $(cat "$DIR/out")"
import json, sys
info = json.load(open(sys.argv[1]))
assert info["subject"] == "CN=web.test", info
assert info["issuer"] == "CN=CLI Test CA", info
assert info["subject_alt_names"] == ["DNS:web.test", "IP:10.0.0.7", "URI:spiffe://td/ns/shop/sa/web"], info
assert info["is_ca"] is False
assert len(info["sha256_fingerprint"]) == 64
assert info["days_until_expiration"] in (0, 1)
PY

# openssl checks what we wrote with an implementation of its own; without it
# this test proves less, so it fails (tools/install-deps.sh installs it).
command -v openssl >/dev/null || fail "openssl is not installed (tools/install-deps.sh installs it)"
openssl verify -CAfile "$CA/ca.crt" "$DIR/web.crt" >/dev/null || fail "openssl verify web.crt"
openssl x509 -in "$DIR/web.crt" -noout -text | grep -q "TLS Web Server Authentication" ||
  fail "web.crt lacks serverAuth"
openssl x509 -in "$DIR/web.crt" -noout -text | grep -q "TLS Web Client Authentication" &&
  fail "--server alone should not add clientAuth"

# Expired on purpose, for tests: valid from 48h ago for 24h.
expect_exit 0 "$CERTS" issue --ca "$CA" --out "$DIR/old" --dns old.test --not-before -48h --ttl 24h
expect_exit 0 "$CERTS" inspect "$DIR/old.crt"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["days_until_expiration"] < 0, d' \
  "$DIR/out" || fail "old.crt is not expired"

# An encrypted key.
printf 'hunter2\n' >"$DIR/pass"
expect_exit 0 "$CERTS" issue --ca "$CA" --out "$DIR/locked" --key-password-file "$DIR/pass"
grep -q ENCRYPTED "$DIR/locked.key" || fail "locked.key is not encrypted"
openssl pkey -in "$DIR/locked.key" -passin pass:hunter2 -noout || fail "openssl cannot decrypt"
expect_exit 0 "$CERTS" inspect "$DIR/locked.crt"
grep -q '"CN=workload"' "$DIR/out" || fail "default CN is not workload"

# A renewal that keeps the key: --key certifies an existing (here encrypted)
# key and writes the certificate only.
expect_exit 0 "$CERTS" issue --ca "$CA" --out "$DIR/renewed" --dns renewed.test \
  --key "$DIR/locked.key" --key-password-file "$DIR/pass"
[ -e "$DIR/renewed.key" ] && fail "certs issue --key wrote a key"
[ "$(openssl x509 -in "$DIR/renewed.crt" -noout -pubkey)" = \
  "$(openssl pkey -in "$DIR/locked.key" -passin pass:hunter2 -pubout)" ] ||
  fail "renewed.crt is not for the key in locked.key"
openssl verify -CAfile "$CA/ca.crt" "$DIR/renewed.crt" >/dev/null || fail "openssl verify renewed.crt"
expect_exit 1 "$CERTS" issue --ca "$CA" --out "$DIR/renewed2" --key "$DIR/locked.key"
grep -q "encrypted" "$DIR/err" || fail "an encrypted --key without a password: $(cat "$DIR/err")"
[ -e "$DIR/renewed2.crt" ] && fail "a refused certs issue --key wrote a certificate"

# Several certificates in one file: a JSON array.
cat "$DIR/web.crt" "$CA/ca.crt" >"$DIR/bundle.pem"
expect_exit 0 "$CERTS" inspect "$DIR/bundle.pem"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d) == 2 and d[1]["is_ca"], d' \
  "$DIR/out" || fail "bundle is not an array of 2"

# Files that exist are kept: a second `certs ca` would orphan every
# certificate the first CA signed.
expect_exit 0 "$CERTS" ca --out "$DIR/keep" --cn "Kept CA"
cp "$DIR/keep/ca.key" "$DIR/kept-ca.key"
cp "$DIR/keep/ca.crt" "$DIR/kept-ca.crt"
expect_exit 1 "$CERTS" ca --out "$DIR/keep" --cn "Other CA"
grep -q "keep/ca.crt and .*keep/ca.key already exist; nothing was written. --force replaces them" \
  "$DIR/err" || fail "second certs ca: $(cat "$DIR/err")"
cmp -s "$DIR/keep/ca.key" "$DIR/kept-ca.key" || fail "a second certs ca replaced ca.key"
cmp -s "$DIR/keep/ca.crt" "$DIR/kept-ca.crt" || fail "a second certs ca replaced ca.crt"
# One file of the two is enough to refuse, and it is the one named.
rm "$DIR/keep/ca.crt"
expect_exit 1 "$CERTS" ca --out "$DIR/keep"
grep -q "keep/ca.key already exists; nothing was written. --force replaces it" "$DIR/err" ||
  fail "certs ca over ca.key alone: $(cat "$DIR/err")"
[ -e "$DIR/keep/ca.crt" ] && fail "a refused certs ca wrote ca.crt"
cmp -s "$DIR/keep/ca.key" "$DIR/kept-ca.key" || fail "a refused certs ca replaced ca.key"
expect_exit 0 "$CERTS" ca --out "$DIR/keep" --cn "Other CA" --force
cmp -s "$DIR/keep/ca.key" "$DIR/kept-ca.key" && fail "certs ca --force kept the old ca.key"
[ "$(stat -c %a "$DIR/keep/ca.key")" = 600 ] || fail "the replaced ca.key is not 0600"
openssl x509 -in "$DIR/keep/ca.crt" -noout -subject | grep -q "Other CA" ||
  fail "certs ca --force did not write the new ca.crt"
[ "$(ls -A "$DIR/keep" | tr '\n' ' ')" = "ca.crt ca.key " ] ||
  fail "files left next to the CA: $(ls -A "$DIR/keep")"

# The same for issue: web.crt and web.key exist from above.
cp "$DIR/web.key" "$DIR/kept-web.key"
cp "$DIR/web.crt" "$DIR/kept-web.crt"
expect_exit 1 "$CERTS" issue --ca "$CA" --out "$DIR/web" --dns other.test
grep -q "web.crt and .*web.key already exist; nothing was written. --force replaces them" \
  "$DIR/err" || fail "second certs issue: $(cat "$DIR/err")"
cmp -s "$DIR/web.key" "$DIR/kept-web.key" || fail "a second certs issue replaced web.key"
cmp -s "$DIR/web.crt" "$DIR/kept-web.crt" || fail "a second certs issue replaced web.crt"
expect_exit 0 "$CERTS" issue --ca "$CA" --out "$DIR/web" --dns other.test --force
cmp -s "$DIR/web.key" "$DIR/kept-web.key" && fail "certs issue --force kept the old web.key"
[ "$(stat -c %a "$DIR/web.key")" = 600 ] || fail "the replaced web.key is not 0600"
openssl verify -CAfile "$CA/ca.crt" "$DIR/web.crt" >/dev/null || fail "the replaced web.crt"
openssl x509 -in "$DIR/web.crt" -noout -ext subjectAltName | grep -q "other.test" ||
  fail "certs issue --force did not write the new web.crt"

expect_exit 1 "$CERTS" inspect "$DIR/pass"
grep -q "holds no PEM certificate" "$DIR/err" || fail "inspect of non-PEM: $(cat "$DIR/err")"

finish
