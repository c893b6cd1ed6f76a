#!/usr/bin/env bash
# resources_envoy_test.sh RESOURCES_TEST: xds/resources/resources.h on resources encoded
# with Envoy's own .proto files (tests/node/envoy_protos.js), with fields
# outside our subset. Run by `bazel test //xds/resources:resources_envoy_test`.
#   1. tests/node/make_resource_fixtures.js writes the resources;
#   2. RESOURCES_TEST --envoy checks the structs they decode to and the exact
#      messages of the ones we refuse.
set -euo pipefail

decoder=$1

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

work=${TEST_TMPDIR:-$(mktemp -d)}/envoy_resources
mkdir -p "$work"

echo "== Envoy encodes resources"
node "$node_dir/make_resource_fixtures.js" "$work"
echo "== we decode them"
"$decoder" --envoy "$work"
