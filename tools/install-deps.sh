#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12, from
# Debian's packages only. Safe to run again: it installs only what is missing.
# With --fuzz, also what tools/fuzz.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  bazel-bootstrap bazel-rules-java bazel-platforms    # Bazel 4.2.3 and the rules it needs offline
  xz-utils                                           # BoringSSL's source (tools/fetch-boringssl.sh)
  libuv1-dev libcjson-dev libhttp-parser-dev          # event loop, JSON, HTTP/1 parser
  libyaml-dev                                         # mtls-inject's YAML (inject/manifest.c)
  libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev  # xDS (gRPC, protobuf; libprotobuf-dev has the well-known .proto files)
  gcc g++ libc6-dev python3 python3-yaml              # toolchain, the test harness, deploy/check.sh
  python3-jsonpatch                                   # inject_cli_test, deploy/check.sh: the patch applied by another RFC 6902 implementation
  nginx libnginx-mod-stream curl openssl wrk          # real peers for tests, demo and benchmarks
  podman runc catatonit debootstrap                   # the image and tests/kube (runc: crun fails here)
)

# tools/fuzz.sh: clang and libFuzzer's runtime (install-deps.sh --fuzz).
if [ "${1:-}" = "--fuzz" ]; then
  packages+=(clang-14 libclang-rt-14-dev)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The nginx package starts a system nginx on port 80; the tests and the demo
  # run their own, so stop it where a service manager is present.
  if command -v systemctl >/dev/null 2>&1; then $sudo systemctl stop nginx >/dev/null 2>&1 || true; fi
fi

# BoringSSL, built from Debian's source package and linked in (see
# third_party/boringssl/boringssl.BUILD).
tools/fetch-boringssl.sh

# Node test peers (a real gRPC stack, Envoy's own .proto files): from npm.
if [ -f tests/node/package.json ]; then
  if ! command -v npm >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if [ ! -d tests/node/node_modules ] || [ tests/node/package-lock.json -nt tests/node/node_modules ]; then
    npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
    touch tests/node/node_modules
  fi
fi

# deploy/check.sh's strict schema check (deploy/schema/validate.js): Kubernetes'
# API schema from npm (kubernetes-models), with its own lockfile.
if [ -f deploy/schema/package.json ]; then
  if ! command -v npm >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if [ ! -d deploy/schema/node_modules ] || [ deploy/schema/package-lock.json -nt deploy/schema/node_modules ]; then
    npm ci --prefix deploy/schema --no-audit --no-fund --loglevel=error
    touch deploy/schema/node_modules
  fi
fi
