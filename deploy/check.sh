#!/usr/bin/env bash
# deploy/check.sh [KUBERNETES_DIR [WORKLOADS_DIR]]: offline checks of the
# Kubernetes manifests in deploy/kubernetes and of what injection makes of
# the workloads in deploy/testdata/workloads. Never contacts a cluster.
#
#   - `kubectl kustomize` (kustomize >= 4) renders control-plane/ and
#     workload/;
#   - every manifest, every render, every workload fixture, the inject
#     command's output for each, and each fixture with the real webhook's
#     JSON Patch applied by python's jsonpatch, is validated against
#     Kubernetes' API schema (and
#     cert-manager's and trust-manager's) with unknown fields as errors
#     (deploy/schema; a misspelled field fails);
#   - check_manifests.py: the manifests agree with each other and with
#     injection: no Secret, no workload Certificate, no Component; the
#     control plane's flags, ports, probes, mounts, NetworkPolicy (ADS and
#     webhook in; the API server out), RBAC (the key set only), the two CAs
#     kept apart, the Service, the webhooks (paths, failure policies, the CA
#     injector; which pods each takes is the routing's, below), the Bundles' targets against the
#     ConfigMaps the injected volume projects, sidecar.json's paths against
#     the injected mounts; each fixture injected, left alone or refused as
#     testdata/workloads/expected.json says, the command and the webhook's
#     patch giving the same object;
#   - check_webhook.py: the webhook is the real xds-server, started on a
#     loopback port with a serving certificate made here by `certs`, sent
#     each fixture's pod as an AdmissionReview v1 over HTTPS (the
#     certificate verified) to the webhooks the API server would call:
#     decided from the render by deploy/schema/route.js (rules,
#     namespaceSelector with each namespace's labels, objectSelector, the
#     matchConditions evaluated by a CEL engine, @marcbachmann/cel-js), the
#     mutating ones in order on the object the previous patches made, then
#     /validate on the result; the webhooks called must be the ones
#     expected.json lists per fixture; its patch
#     must give mtls-inject's object, its refusals mtls-inject's sentence,
#     and /validate must allow each injected pod and deny it without the
#     sidecar's restartPolicy. Prints the latency per review (mean, max);
#   - the sample sidecar.json passes `sidecar --validate` (with its files
#     made by `certs`).
#
# The tools: python3 with PyYAML and jsonpatch (Debian: python3-yaml,
# python3-jsonpatch), node with deploy/schema/node_modules (the schema; the
# CEL engine), kubectl, and the project's binaries mtls-inject, xds-server, sidecar and certs (Bazel's
# runfiles, or bazel-bin/ after `bazel build //inject:all //xds-server
# //sidecar //certs`). XDS_SERVER=PATH runs another xds-server for the
# webhook (check_test.sh: one that injects another tag, which must fail).
# Exits non-zero on any failure, 0 when everything checked passed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_src="${1:-$here/kubernetes}"
workloads_src="${2:-$here/testdata/workloads}"
# Work on copies with symlinks resolved: kustomize refuses the symlinked
# files of a Bazel runfiles tree.
work="$(mktemp -d)"
rendered_dir="$(mktemp -d)"
trap 'rm -rf "$rendered_dir" "$work"' EXIT
cp -rL "$k8s_src" "$work/kubernetes"
cp -rL "$workloads_src" "$work/workloads"
k8s="$work/kubernetes"

die() {
  echo "deploy/check.sh: FAIL: $*" >&2
  exit 1
}

# The python3 on PATH (which may be a pyenv one) or Debian's, whichever has
# PyYAML and jsonpatch.
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml, jsonpatch' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
[ -n "$python" ] || die "python3 with PyYAML and jsonpatch is required (apt-get install python3-yaml python3-jsonpatch)"

# The project's binaries: runfiles first (bazel test), then bazel-bin.
tool() {
  local candidate
  for candidate in "$here/../$1" "$here/../bazel-bin/$1"; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  die "$1 not found: bazel build //${1%/*}:${1##*/}"
}
inject="$(tool inject/mtls-inject)"
xds_server="${XDS_SERVER:-$(tool xds-server/xds-server)}"
sidecar="$(tool sidecar/sidecar)"
certs="$(tool certs/certs)"

# kubectl prints its embedded kustomize version (v4 or later) since 1.24.
# Without one the renders cannot be checked, and the check fails rather than
# pass having checked less: Debian 12's kubernetes-client (1.20) is too old;
# these machines carry a newer kubectl (the Google Cloud SDK's).
kustomize_major=""
if command -v kubectl >/dev/null 2>&1; then
  kustomize_major="$(kubectl version --client 2>/dev/null |
    sed -n 's/^Kustomize Version: v\([0-9]*\)\..*/\1/p')"
fi
if [ -z "$kustomize_major" ] || [ "$kustomize_major" -lt 4 ]; then
  die "no kubectl with kustomize >= 4 to render the kustomizations"
fi
kubectl kustomize "$k8s/control-plane" >"$rendered_dir/control-plane.yaml"
kubectl kustomize "$k8s/workload" >"$rendered_dir/workload.yaml"
echo "deploy/check.sh: kubectl kustomize rendered control-plane and workload"

status=0
# The manifests agree, and injection (the command, and the real webhook)
# makes RENDERED/injected and RENDERED/webhook.
"$python" "$here/check_manifests.py" "$work" "$rendered_dir" "$inject" "$xds_server" "$certs" ||
  status=1

# Kubernetes' API schema, unknown fields as errors (deploy/schema/validate.js;
# deploy/README.md, "What is verified offline"): the renders, every plain
# YAML file, the fixtures as written, and what injection made of them.
# schema DIR PATH...: validate PATH... from DIR (short names in the report).
# Not in a subshell: a failure must reach $status.
schema() {
  local dir=$1
  shift
  if ! (cd "$dir" && "$here/schema/check_schema.sh" "$@"); then
    echo "deploy/check.sh: FAIL: the schema check (above)" >&2
    status=1
  fi
}
schema "$rendered_dir" control-plane.yaml workload.yaml
schema "$work" kubernetes workloads
for folder in injected webhook; do
  if [ -n "$(ls "$rendered_dir/$folder" 2>/dev/null)" ]; then
    schema "$rendered_dir" "$folder"
  else
    echo "deploy/check.sh: FAIL: nothing in $folder/ to validate" >&2
    status=1
  fi
done

# The sample sidecar.json, as the sidecar reads it: its files made here, at
# the paths it names (rewritten into a temporary folder).
if [ -s "$rendered_dir/sidecar.json" ]; then
  files="$rendered_dir/files"
  mkdir -p "$files"
  "$certs" ca --out "$files/ca" >/dev/null 2>&1 || die "certs ca failed"
  printf 'header.payload.signature\n' >"$files/token"
  "$python" - "$rendered_dir/sidecar.json" "$files" >"$files/sidecar.json" <<'PY'
import json, socket, sys
config, files = json.load(open(sys.argv[1])), sys.argv[2]
with socket.socket() as s:  # --validate tries the admin address: a free port
    s.bind(("127.0.0.1", 0))
    config["admin"] = {"address": f"127.0.0.1:{s.getsockname()[1]}"}
tls = config["xds"]["tls"]
tls["trusted_ca"] = f"{files}/ca/ca.crt"
config["identity"]["trust_bundle_file"] = f"{files}/ca/ca.crt"
config["identity"]["token_file"] = f"{files}/token"
if "backup_path" in config["xds"]:
    config["xds"]["backup_path"] = f"{files}/backup.json"
json.dump(config, sys.stdout)
PY
  if "$sidecar" --config "$files/sidecar.json" --node-id 'sidecar~10.0.0.1~app-1.shop~shop.svc.cluster.local' \
    --validate >"$files/validate.out" 2>&1; then
    echo "deploy/check.sh: sidecar --validate: $(cat "$files/validate.out")"
  else
    cat "$files/validate.out" >&2
    echo "deploy/check.sh: FAIL: the sample sidecar.json does not pass sidecar --validate" >&2
    status=1
  fi
fi

[ "$status" -eq 0 ] || exit 1
echo "deploy/check.sh: ok"
