#!/usr/bin/env bash
# Builds the mtls-sidecar image with podman, here, without a registry:
#
#   deploy/image/build.sh [--tag NAME:TAG]      (default mtls-sidecar:dev; as root)
#
# 1. installs podman, runc, catatonit and debootstrap if missing (Debian's);
# 2. writes the containers.conf podman needs on these machines (runc, not
#    crun; rlimits the sandbox allows) into the state folder, and uses it
#    through CONTAINERS_CONF;
# 3. makes the base image once: `debootstrap --variant=minbase bookworm` with
#    the binaries' runtime libraries, imported as
#    localhost/mtls-sidecar-base:bookworm-HASH (HASH: of the package list);
#    reused while it exists, re-imported from the cached rootfs tarball when
#    only the tarball is left;
# 4. builds the release binaries on this host with Bazel (-c opt
#    --strip=always): sidecar, xds-server, mtls-inject (this machine is
#    Debian 12 like the base, so the shared libraries are the same);
# 5. `podman build -f deploy/Containerfile` over a staged context holding
#    only those binaries, and prints the image's size.
#
# Environment: MTLS_IMAGE_STATE (state folder: containers.conf and the base's
# rootfs tarball; default /var/cache/mtls-sidecar), DEBIAN_MIRROR (for
# debootstrap; default Debian's). The image: see deploy/Containerfile and
# deploy/README.md, "1. Build the image".
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=mtls-sidecar:dev
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=${2:?--tag needs NAME:TAG}; shift 2 ;;
    --tag=*) tag=${1#--tag=}; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "build.sh: run as root (rootful podman: rootless needs subuids this sandbox lacks)" >&2
  exit 1
fi

# shellcheck source=deploy/image/podman_env.sh
. deploy/image/podman_env.sh
mtls_podman_setup   # packages, containers.conf, CONTAINERS_CONF

# The runtime libraries of the three binaries (ldd; checked again in the
# Containerfile, which fails the build when one is missing).
mtls_base_image localhost/mtls-sidecar-base \
  libuv1,libcjson1,libnghttp2-14,libprotobuf-c1,libhttp-parser2.9,libyaml-0-2
base=$mtls_image

echo "build.sh: bazel build -c opt --strip=always (sidecar, xds-server, mtls-inject)" >&2
tools/fetch-boringssl.sh
opt=(-c opt --strip=always)
bazel build "${opt[@]}" //sidecar:sidecar //xds-server:xds-server //inject:mtls-inject
bin=$(bazel info "${opt[@]}" bazel-bin 2>/dev/null)

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/bin"
install -m 0755 "$bin/sidecar/sidecar" "$bin/xds-server/xds-server" "$bin/inject/mtls-inject" \
  "$context/bin/"

podman build --network none --build-arg "BASE=$base" -f deploy/Containerfile \
  -t "$tag" "$context"

# The gather stage's images an earlier build left untagged (130 MB each).
podman image prune -f --filter label=mtls-sidecar.stage=gather >/dev/null

size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "build.sh: $tag: $size bytes ($(numfmt --to=iec-i --suffix=B "$size"))"
