#!/usr/bin/env bash
# check_schema.sh PATH...: validate.js on PATH (YAML files or folders) with
# the node_modules of deploy/schema in the source tree (`npm ci --prefix
# deploy/schema`; tools/install-deps.sh does it). Fails, saying so, without
# node or node_modules: a check that did not run is not a pass.
set -euo pipefail
# This file may be a Bazel runfile: its real folder holds node_modules.
dir="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
if ! command -v node >/dev/null 2>&1; then
  echo "FAIL: node is not installed (tools/install-deps.sh installs it)" >&2
  exit 1
fi
if [ ! -d "$dir/node_modules/kubernetes-models" ] ||
   [ ! -d "$dir/node_modules/@kubernetes-models/cert-manager" ]; then
  echo "FAIL: $dir/node_modules is missing: run \`npm ci --prefix deploy/schema\`" \
    "(tools/install-deps.sh does it)" >&2
  exit 1
fi
exec node "$dir/validate.js" "$@"
