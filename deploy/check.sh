#!/usr/bin/env bash
# deploy/check.sh: offline checks of the Kubernetes manifests in deploy/.
# Never contacts a cluster.
#
#   - every YAML file under deploy/kubernetes parses, and every document has
#     apiVersion, kind and metadata.name;
#   - sidecar.json in configmap.yaml is valid JSON and the component example's
#     copy says the same;
#   - the sidecar container, its volumes and the Certificate of the example
#     Deployment and of the component patch are the same (kept in step);
#   - if kubectl is installed: `kubectl kustomize` renders deploy/kubernetes
#     and deploy/kubernetes/examples/component, and in the second the
#     component injected the native sidecar into the annotated Deployment
#     only, keeping that Deployment's own volumes.
#
# Needs python3 with PyYAML (Debian: python3-yaml). Exits non-zero on any
# failure, 0 when everything checked passed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Work on a copy with symlinks resolved: kustomize refuses the symlinked
# files of a Bazel runfiles tree.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -rL "$here/kubernetes" "$work/kubernetes"
k8s="$work/kubernetes"

# The python3 on PATH (which may be a pyenv one) or Debian's, whichever has
# PyYAML.
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ]; then
  echo "deploy/check.sh: python3 with PyYAML is required (apt-get install python3-yaml)" >&2
  exit 1
fi

rendered_dir="$(mktemp -d)"
trap 'rm -rf "$rendered_dir" "$work"' EXIT

# Components need kustomize >= 3.7. kubectl prints its embedded kustomize
# version (v4 or later) since 1.24. A kubectl that does not print it is
# skipped: Debian 12's kubernetes-client (1.20) is too old for components.
kustomize_major=""
if command -v kubectl >/dev/null 2>&1; then
  kustomize_major="$(kubectl version --client 2>/dev/null |
    sed -n 's/^Kustomize Version: v\([0-9]*\)\..*/\1/p')"
fi
if [ -n "$kustomize_major" ] && [ "$kustomize_major" -ge 4 ]; then
  kubectl kustomize "$k8s" >"$rendered_dir/example.yaml"
  kubectl kustomize "$k8s/examples/component" >"$rendered_dir/component.yaml"
  echo "deploy/check.sh: kubectl kustomize rendered both kustomizations"
else
  echo "deploy/check.sh: no kubectl with kustomize >= 4; skipping the kustomize renders"
fi

"$python" - "$k8s" "$rendered_dir" <<'PY'
import json
import os
import sys

import yaml

k8s, rendered_dir = sys.argv[1], sys.argv[2]
failures = []


def fail(message):
    failures.append(message)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def only(docs, kind, name=None):
    found = [d for d in docs if d.get("kind") == kind
             and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise SystemExit(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def sidecar(spec):
    return [c for c in spec.get("initContainers", []) if c["name"] == "mtls-sidecar"]


# 1. Every YAML file parses; every document names itself.
files = {}
for root, _, names in os.walk(k8s):
    for name in sorted(names):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(root, name)
        rel = os.path.relpath(path, k8s)
        try:
            files[rel] = load_all(path)
        except yaml.YAMLError as e:
            fail(f"{rel}: not valid YAML: {e}")
            continue
        for i, doc in enumerate(files[rel]):
            for key in ("apiVersion", "kind"):
                if key not in doc:
                    fail(f"{rel}[{i}]: no {key}")
            kind = doc.get("kind", "")
            if kind not in ("Kustomization", "Component") and not doc.get("metadata", {}).get("name"):
                fail(f"{rel}[{i}]: no metadata.name")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)

# 2. sidecar.json is JSON, and the two copies agree.
configmap = only(files["configmap.yaml"], "ConfigMap", "mtls-sidecar-config")
try:
    config = json.loads(configmap["data"]["sidecar.json"])
except (KeyError, ValueError) as e:
    fail(f"configmap.yaml: data.sidecar.json is not JSON: {e}")
    config = None
try:
    with open(os.path.join(k8s, "examples/component/sidecar.json")) as f:
        if config is not None and json.load(f) != config:
            fail("examples/component/sidecar.json differs from configmap.yaml's sidecar.json")
except ValueError as e:
    fail(f"examples/component/sidecar.json is not JSON: {e}")
if config is not None:
    for cluster in config.get("clusters", []):
        for key in ("certificate", "private_key", "trusted_ca"):
            path = cluster.get("tls", {}).get(key, "")
            if not path.startswith("/etc/mtls-sidecar/certs/"):
                fail(f"sidecar.json: {cluster.get('name')}.tls.{key} is not under the Secret mount: {path}")

# 3. The example Deployment and the component patch inject the same thing.
example = pod_spec(only(files["deployment-example.yaml"], "Deployment"))
patch = pod_spec(only(files["components/mtls-sidecar/patch.yaml"], "Deployment"))
if sidecar(example) != sidecar(patch) or len(sidecar(patch)) != 1:
    fail("the mtls-sidecar init container differs between deployment-example.yaml and components/mtls-sidecar/patch.yaml")
example_volumes = {v["name"]: v for v in example.get("volumes", [])}
for volume in patch.get("volumes", []):
    if example_volumes.get(volume["name"]) != volume:
        fail(f"volume {volume['name']} differs between deployment-example.yaml and the component patch")
for rel in ("certificate.yaml", "examples/component/certificate.yaml"):
    spec = only(files[rel], "Certificate")["spec"]
    if spec.get("secretName") != "mtls-sidecar-certs":
        fail(f"{rel}: secretName is not the Secret the pod mounts (mtls-sidecar-certs)")
    if "client auth" not in spec.get("usages", []):
        fail(f"{rel}: usages lack client auth")
    if not all(u.startswith("spiffe://") for u in spec.get("uris", [])) or not spec.get("uris"):
        fail(f"{rel}: uris must be SPIFFE IDs")

# 4. The native sidecar is sound.
for container in sidecar(example):
    if container.get("restartPolicy") != "Always":
        fail("mtls-sidecar: restartPolicy is not Always (not a native sidecar)")
    sc = container.get("securityContext", {})
    expected = {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False}
    for key, value in expected.items():
        if sc.get(key) != value:
            fail(f"mtls-sidecar: securityContext.{key} is not {value}")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        fail("mtls-sidecar: capabilities do not drop ALL")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail("mtls-sidecar: seccompProfile is not RuntimeDefault")
    for probe in ("startupProbe", "readinessProbe"):
        if "exec" not in container.get(probe, {}):
            fail(f"mtls-sidecar: {probe} is not an exec probe (admin listens on 127.0.0.1)")
    for mount in container.get("volumeMounts", []):
        if mount["name"] == "mtls-sidecar-certs" and "subPath" in mount:
            fail("mtls-sidecar: the certificate Secret is mounted with subPath (renewals would never arrive)")
grace = example.get("terminationGracePeriodSeconds", 30)
drain_s = (config or {}).get("drain_timeout_ms", 20000) / 1000
if grace <= drain_s:
    fail(f"deployment-example.yaml: terminationGracePeriodSeconds {grace} is not above the drain timeout {drain_s}s")

# 5. What kubectl kustomize rendered, when it ran.
component_render = os.path.join(rendered_dir, "component.yaml")
if os.path.exists(component_render):
    docs = load_all(component_render)
    example_render = load_all(os.path.join(rendered_dir, "example.yaml"))
    if sorted(d["kind"] for d in example_render) != ["Certificate", "ConfigMap", "Deployment"]:
        fail("deploy/kubernetes renders an unexpected set of objects")
    injected = pod_spec(only(docs, "Deployment", "checkout"))
    containers = sidecar(injected)
    if len(containers) != 1 or containers[0].get("restartPolicy") != "Always":
        fail("component: the annotated Deployment did not get the native sidecar")
    elif containers[0]["image"] != "mtls-sidecar:dev":
        fail(f"component: the images transformer did not apply ({containers[0]['image']})")
    volumes = {v["name"]: v for v in injected.get("volumes", [])}
    if set(volumes) != {"tmp", "mtls-sidecar-config", "mtls-sidecar-certs"}:
        fail(f"component: unexpected volumes {sorted(volumes)}")
    generated = only(docs, "ConfigMap")["metadata"]["name"]
    if volumes.get("mtls-sidecar-config", {}).get("configMap", {}).get("name") != generated:
        fail("component: the config volume does not reference the generated ConfigMap")
    if pod_spec(only(docs, "Deployment", "untouched")).get("initContainers"):
        fail("component: a Deployment without the annotation was changed")

if failures:
    print("\n".join(f"deploy/check.sh: FAIL {m}" for m in failures), file=sys.stderr)
    sys.exit(1)
print(f"deploy/check.sh: ok ({len(files)} YAML files)")
PY
