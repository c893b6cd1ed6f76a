# shellcheck shell=bash
# podman_env.sh: podman on these machines, for deploy/image/build.sh and
# tests/kube/kube_play_test.sh (sourced, not run).
#
#   mtls_podman_setup
#       installs podman, runc, catatonit and debootstrap when missing
#       (Debian's packages), writes $MTLS_IMAGE_STATE/containers.conf and
#       exports CONTAINERS_CONF=it: runc (crun fails here: "cgroups in hybrid
#       mode not supported") and default rlimits the sandbox allows.
#   mtls_base_image REPOSITORY INCLUDES
#       sets mtls_image to REPOSITORY:bookworm-HASH (HASH: of INCLUDES, so
#       another list makes another image) and makes that image once:
#       `debootstrap --variant=minbase --include=INCLUDES bookworm`, kept as a
#       tarball in $MTLS_IMAGE_STATE, imported with `podman import`. Does
#       nothing when the image exists; re-imports the tarball when only it is
#       left.
MTLS_IMAGE_STATE=${MTLS_IMAGE_STATE:-/var/cache/mtls-sidecar}

mtls_podman_setup() {
  local missing=() package
  for package in podman runc catatonit debootstrap; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "podman_env: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
      >/dev/null
  fi
  mkdir -p "$MTLS_IMAGE_STATE"
  local conf="$MTLS_IMAGE_STATE/containers.conf"
  cat >"$conf.tmp.$$" <<'CONF'
# Written by deploy/image/podman_env.sh. crun fails on these machines
# ("cgroups in hybrid mode not supported"); runc works with the rlimits the
# sandbox allows.
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
CONF
  mv "$conf.tmp.$$" "$conf"
  export CONTAINERS_CONF="$conf"
}

mtls_base_image() {
  local includes=$2 hash
  # The hash covers the list and how the image is made (bump "2" when that
  # changes).
  hash=$(printf '2 %s' "$includes" | sha256sum | cut -c1-12)
  mtls_image="$1:bookworm-$hash"
  local name=$mtls_image
  if podman image exists "$name"; then return 0; fi
  local tarball
  tarball="$MTLS_IMAGE_STATE/$(printf '%s' "$name" | tr '/:' '__').tar.gz"
  (
    # One maker at a time (build.sh and the test may run together).
    flock 9
    if podman image exists "$name"; then exit 0; fi
    if [ ! -s "$tarball" ]; then
      local rootfs
      rootfs=$(mktemp -d "$MTLS_IMAGE_STATE/rootfs.XXXXXX")
      echo "podman_env: debootstrap --variant=minbase bookworm for $name (once; a few minutes)" >&2
      if ! debootstrap --variant=minbase --include="$includes" bookworm "$rootfs" \
        ${DEBIAN_MIRROR:-} >"$rootfs.log" 2>&1; then
        tail -20 "$rootfs.log" >&2
        rm -rf "$rootfs" "$rootfs.log"
        echo "podman_env: debootstrap failed" >&2
        exit 1
      fi
      rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
      tar -C "$rootfs" -czf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$rootfs" "$rootfs.log"
    fi
    # An imported rootfs has no configuration: give it Debian's PATH.
    podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      "$tarball" "$name" >/dev/null 2>"$MTLS_IMAGE_STATE/import.log" || { cat "$MTLS_IMAGE_STATE/import.log" >&2; exit 1; }
    echo "podman_env: imported $name from $tarball" >&2
  ) 9>"$MTLS_IMAGE_STATE/base.lock"
}
