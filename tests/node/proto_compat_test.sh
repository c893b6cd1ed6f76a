#!/usr/bin/env bash
# proto_compat_test.sh XDS_PROTO_TEST PROTO_DIR: our xDS .proto subset and
# protobuf-c code against Envoy's own .proto files, loaded by Node
# (tests/node/envoy_protos.js). Run by `bazel test //xds/proto:proto_compat_test`.
#   1. check_subset.js: every message, field number, type, oneof and enum
#      value in PROTO_DIR is Envoy's.
#   2. make_fixtures.js encodes resources with Envoy's files (with fields
#      outside our subset); XDS_PROTO_TEST --read-envoy decodes and checks them.
#   3. XDS_PROTO_TEST --write encodes messages; decode.js reads them with
#      Envoy's files and compares with testdata/c_*.json.
set -euo pipefail

xds_proto_test=$1
proto_dir=$2

# node_modules is not a Bazel input: it lives next to the real package.json,
# which the runfiles link to.
node_dir=$(dirname "$(readlink -f tests/node/package.json)")
if [ ! -d "$node_dir/node_modules/@grpc/grpc-js-xds/deps/envoy-api" ]; then
  echo "FAIL: $node_dir/node_modules lacks @grpc/grpc-js-xds (Envoy's .proto files)." >&2
  echo "      Run: npm ci --prefix tests/node   (tools/install-deps.sh does it)" >&2
  exit 1
fi
if ! command -v node >/dev/null 2>&1; then
  echo "FAIL: node is not installed (tools/install-deps.sh installs it)." >&2
  exit 1
fi

work=${TEST_TMPDIR:-$(mktemp -d)}
mkdir -p "$work/envoy" "$work/ours"

echo "== our subset against Envoy's .proto files"
node "$node_dir/check_subset.js" "$proto_dir"

echo "== Envoy encodes, we decode"
node "$node_dir/make_fixtures.js" "$work/envoy"
"$xds_proto_test" --read-envoy "$work/envoy"

echo "== we encode, Envoy decodes"
"$xds_proto_test" --write "$work/ours"
for pair in DiscoveryRequest:c_request DiscoveryResponse:c_response_cds \
  DiscoveryResponse:c_response_lds DiscoveryResponse:c_response_sds; do
  type=${pair%%:*}
  name=${pair#*:}
  node "$node_dir/decode.js" "$type" "$work/ours/$name.pb" "$node_dir/testdata/$name.json" >/dev/null
done
echo "proto compatibility with Envoy's .proto files: ok"
