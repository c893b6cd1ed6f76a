#!/bin/sh
# make-certs.sh [--force]: makes, with the certs CLI, the certificates that
# examples/sidecar.json points at, in examples/pki/:
#   ca/ca.crt, ca/ca.key      a CA that signs both sides
#   client.crt, client.key    the sidecar's client certificate
#                             (URI SAN spiffe://cluster.local/ns/shop/sa/client)
#   upstream.crt, upstream.key  the upstream's certificate (localhost,
#                             127.0.0.1, spiffe://cluster.local/ns/shop/sa/orders),
#                             for a test upstream such as openssl s_server
# The certificates live 30 days; the CA ten years.
# Files that exist are kept, and certs says so; --force replaces them all.
# CERTS names the certs binary (default: bazel-bin/certs/certs of this
# repository, from `bazel build //certs:certs`).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
certs=${CERTS:-$here/../bazel-bin/certs/certs}
force=
case "${1:-}" in
  --force) force=--force ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac
pki=$here/pki
"$certs" ca --out "$pki/ca" --cn "mtls-sidecar example CA" $force
"$certs" issue --ca "$pki/ca" --out "$pki/client" --client \
  --uri spiffe://cluster.local/ns/shop/sa/client --ttl 30d $force
"$certs" issue --ca "$pki/ca" --out "$pki/upstream" --server --dns localhost --ip 127.0.0.1 \
  --uri spiffe://cluster.local/ns/shop/sa/orders --ttl 30d $force
