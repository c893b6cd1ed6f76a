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
#   - the control plane (kubernetes/control-plane): its Envoy JSON resources
#     parse and refer to each other, xds-server's flags point into its
#     mounts (whole folders, watched), its pod is locked down with httpGet
#     probes on the health address (/healthz, /readyz; /status stays on
#     loopback; no exec, no shell), a --drain-delay within the grace period,
#     a spread over zones and nodes, and a NetworkPolicy with ingress on the
#     ADS port only and no egress (it fetches nothing), the Service, serving certificate
#     and the sidecars' "xds" section agree on one name and port, and the
#     workload example's bootstrap Certificate and backup folder fit;
#   - `kubectl kustomize` (required: kustomize >= 4) renders deploy/kubernetes,
#     deploy/kubernetes/examples/component and the two control-plane
#     kustomizations; in examples/component the component injected the
#     native sidecar into the annotated Deployment only, keeping that
#     Deployment's own volumes; in control-plane/workload it did the same
#     with the backup folder added.
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
# version (v4 or later) since 1.24. Without one the renders cannot be checked,
# and the check fails rather than pass having checked less: Debian 12's
# kubernetes-client (1.20) is too old for components; these machines carry a
# newer kubectl (the Google Cloud SDK's).
kustomize_major=""
if command -v kubectl >/dev/null 2>&1; then
  kustomize_major="$(kubectl version --client 2>/dev/null |
    sed -n 's/^Kustomize Version: v\([0-9]*\)\..*/\1/p')"
fi
if [ -n "$kustomize_major" ] && [ "$kustomize_major" -ge 4 ]; then
  kubectl kustomize "$k8s" >"$rendered_dir/example.yaml"
  kubectl kustomize "$k8s/examples/component" >"$rendered_dir/component.yaml"
  kubectl kustomize "$k8s/control-plane" >"$rendered_dir/control-plane.yaml"
  kubectl kustomize "$k8s/control-plane/workload" >"$rendered_dir/workload.yaml"
  echo "deploy/check.sh: kubectl kustomize rendered all four kustomizations"
else
  echo "deploy/check.sh: FAIL: no kubectl with kustomize >= 4 to render the kustomizations" >&2
  exit 1
fi

# Kubernetes' API schema, unknown fields as errors: every render and every
# plain YAML file (deploy/schema/validate.js; deploy/README.md, "Schema check").
schema_status=0
(cd "$rendered_dir" && "$here/schema/check_schema.sh" ./*.yaml) || schema_status=1
(cd "$work" && "$here/schema/check_schema.sh" kubernetes) || schema_status=1
[ "$schema_status" -eq 0 ] || { echo "deploy/check.sh: FAIL: the schema check (above)" >&2; exit 1; }

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
def check_client_certificate(rel, spec):
    if spec.get("secretName") != "mtls-sidecar-certs":
        fail(f"{rel}: secretName is not the Secret the pod mounts (mtls-sidecar-certs)")
    if "client auth" not in spec.get("usages", []):
        fail(f"{rel}: usages lack client auth")
    if not all(u.startswith("spiffe://") for u in spec.get("uris", [])) or not spec.get("uris"):
        fail(f"{rel}: uris must be SPIFFE IDs")


for rel in ("certificate.yaml", "examples/component/certificate.yaml",
            "control-plane/workload/bootstrap-certificate.yaml"):
    check_client_certificate(rel, only(files[rel], "Certificate")["spec"])


# 4. The native sidecar is sound.
def check_locked_down(name, container):
    """The restricted Pod Security Standard, and a read-only root."""
    sc = container.get("securityContext", {})
    expected = {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False}
    for key, value in expected.items():
        if sc.get(key) != value:
            fail(f"{name}: securityContext.{key} is not {value}")
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        fail(f"{name}: capabilities do not drop ALL")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        fail(f"{name}: seccompProfile is not RuntimeDefault")
    if not container.get("resources", {}).get("limits", {}).get("memory"):
        fail(f"{name}: no memory limit")


for container in sidecar(example):
    if container.get("restartPolicy") != "Always":
        fail("mtls-sidecar: restartPolicy is not Always (not a native sidecar)")
    check_locked_down("mtls-sidecar", container)
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

# 5. The control plane: xds-server and what a sidecar needs to use it.
CP = "control-plane/"
TYPE = "type.googleapis.com/envoy.config."
SDS_NAMES = {"default", "ROOTCA"}  # what xds-server's CA serves


def sds_names(tls):
    common = tls.get("common_tls_context", {})
    configs = list(common.get("tls_certificate_sds_secret_configs", []))
    for holder in (common, common.get("combined_validation_context", {})):
        if "validation_context_sds_secret_config" in holder:
            configs.append(holder["validation_context_sds_secret_config"])
    return [c.get("name") for c in configs]


def check_resources(rel, key, text, found):
    """One file of xds-server's --config-dir (docs/xds-server.md, "Resource files")."""
    where = f"{rel}: data.{key}"
    if key.startswith(".") or not key.endswith(".json"):
        fail(f"{where}: xds-server reads only *.json files not starting with '.'")
        return
    try:
        doc = json.loads(text)
    except ValueError as e:
        fail(f"{where}: not JSON: {e}")
        return
    resources = doc if isinstance(doc, list) else doc.get("resources", [doc])
    for i, r in enumerate(resources):
        kind = r.get("@type", "")
        if kind == TYPE + "cluster.v3.Cluster":
            found["clusters"][r.get("name")] = r
        elif kind == TYPE + "endpoint.v3.ClusterLoadAssignment":
            found["endpoints"].add(r.get("cluster_name"))
        elif kind == TYPE + "listener.v3.Listener":
            found["listeners"][r.get("name")] = r
        else:
            fail(f"{where}: resources[{i}]: @type {kind!r} is not a Cluster, ClusterLoadAssignment or Listener")


resources_map = only(files[CP + "resources.yaml"], "ConfigMap")
found = {"clusters": {}, "endpoints": set(), "listeners": {}}
for key, text in resources_map.get("data", {}).items():
    check_resources(CP + "resources.yaml", key, text, found)
if not found["listeners"] or not found["clusters"]:
    fail(f"{CP}resources.yaml: no Listener or no Cluster")
for name, cluster in found["clusters"].items():
    if cluster.get("type") == "EDS" and name not in found["endpoints"]:
        fail(f"{CP}resources.yaml: EDS cluster {name} has no ClusterLoadAssignment")
    tls = cluster.get("transport_socket", {}).get("typed_config", {})
    names = sds_names(tls)
    if "default" not in names or not set(names) <= SDS_NAMES:
        fail(f"{CP}resources.yaml: cluster {name} must take its certificate from SDS \"default\" "
             f"(and its CA from \"ROOTCA\"): {names}")
for name, listener in found["listeners"].items():
    address = listener.get("address", {}).get("socket_address", {}).get("address")
    if address not in ("127.0.0.1", "::1"):
        fail(f"{CP}resources.yaml: listener {name} binds {address}, not loopback "
             "(anything reaching the pod could use the workload's identity)")
    for chain in listener.get("filter_chains", []):
        for f in chain.get("filters", []):
            target = f.get("typed_config", {}).get("cluster")
            if target not in found["clusters"]:
                fail(f"{CP}resources.yaml: listener {name} routes to unknown cluster {target}")


def flags(container):
    args, out = container.get("args", []), {}
    for i in range(0, len(args) - 1, 2):
        out[args[i]] = args[i + 1]
    return out


server_doc = only(files[CP + "deployment.yaml"], "Deployment", "xds-server")
server_pod = pod_spec(server_doc)
servers = [c for c in server_pod.get("containers", []) if c["name"] == "xds-server"]
if len(servers) != 1:
    raise SystemExit(f"{CP}deployment.yaml: expected one container xds-server, found {len(servers)}")
server = servers[0]
check_locked_down("xds-server", server)
if server.get("command") != ["/usr/local/bin/xds-server"]:
    fail(f"xds-server: command is not the image's /usr/local/bin/xds-server: {server.get('command')}")
opts = flags(server)
for flag in ("--listen", "--tls-cert", "--tls-key", "--ca-cert", "--ca-key", "--config-dir"):
    if flag not in opts:
        fail(f"xds-server: no {flag}")
listen_host, _, listen_port = opts.get("--listen", ":").rpartition(":")
if listen_host not in ("0.0.0.0", "[::]"):
    fail(f"xds-server: --listen {opts.get('--listen')} is not reachable on the pod IP")
status = opts.get("--status-address", "127.0.0.1:18001")
if status != "off" and not status.startswith("127.0.0.1:"):
    fail(f"xds-server: --status-address {status} is not on loopback (it lists every node)")
ports = {p["name"]: p["containerPort"] for p in server.get("ports", [])}
if str(ports.get("grpc-ads")) != listen_port:
    fail(f"xds-server: port grpc-ads {ports.get('grpc-ads')} is not the --listen port {listen_port}")
# Probes: httpGet on the health address, which serves /healthz and /readyz
# only (constant size; /status stays on loopback); no exec, so no shell in
# the image.
health = opts.get("--health-address")
health_host, _, health_port = (health or ":").rpartition(":")
if health is None:
    fail("xds-server: no --health-address (kubelet's httpGet probes reach the pod IP only)")
elif health_host not in ("0.0.0.0", "[::]"):
    fail(f"xds-server: --health-address {health} is not reachable on the pod IP")
elif str(ports.get("health")) != health_port:
    fail(f"xds-server: port health {ports.get('health')} is not the --health-address port {health_port}")
PROBE_PATHS = {"startupProbe": "/healthz", "readinessProbe": "/readyz", "livenessProbe": "/healthz"}
for probe, path in PROBE_PATHS.items():
    spec = server.get(probe)
    if spec is None:
        fail(f"xds-server: no {probe}")
    elif "httpGet" not in spec:
        fail(f"xds-server: {probe} is not httpGet (an exec probe needs a shell in the image)")
    elif spec["httpGet"].get("port") not in ("health", int(health_port or 0)):
        fail(f"xds-server: {probe} does not probe the --health-address port")
    elif spec["httpGet"].get("path") != path:
        fail(f"xds-server: {probe} asks {spec['httpGet'].get('path')}, not {path}")


def seconds(duration):
    units = {"s": 1, "m": 60, "h": 3600}
    text = str(duration)
    return int(text[:-1]) * units[text[-1]] if text[-1:] in units else int(text)


# After SIGTERM, xds-server stays up for --drain-delay while the endpoint
# removal reaches every node; the grace period must cover it.
drain = seconds(opts.get("--drain-delay", "0"))
if drain <= 0:
    fail("xds-server: no --drain-delay (sidecars would reconnect into the endpoint removal)")
if server_pod.get("terminationGracePeriodSeconds", 30) <= drain:
    fail(f"xds-server: terminationGracePeriodSeconds is not above --drain-delay {drain}s")
if "lifecycle" in server and "exec" in str(server["lifecycle"]):
    fail("xds-server: an exec lifecycle hook needs a shell or sleep in the image")

# Spread over zones and nodes.
spread = {c.get("topologyKey"): c for c in server_pod.get("topologySpreadConstraints", [])}
for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
    selector = spread.get(key, {}).get("labelSelector", {}).get("matchLabels", {})
    if key not in spread:
        fail(f"xds-server: no topologySpreadConstraint on {key}")
    elif not selector or any(server_doc["spec"]["template"]["metadata"]["labels"].get(k) != v
                             for k, v in selector.items()):
        fail(f"xds-server: the {key} spread does not select the xds-server pods")

# The NetworkPolicy: ingress on the ADS port (and the webhook's) only;
# egress only when xds-server fetches the API server's key set.
if CP + "networkpolicy.yaml" in files:
    policy = only(files[CP + "networkpolicy.yaml"], "NetworkPolicy", "xds-server")["spec"]
else:
    fail(f"{CP}networkpolicy.yaml: missing (the pod holds the CA's key)")
    policy = {}
pod_labels = server_doc["spec"]["template"]["metadata"]["labels"]
if any(pod_labels.get(k) != v for k, v in policy.get("podSelector", {}).get("matchLabels", {}).items()) \
        or not policy.get("podSelector", {}).get("matchLabels"):
    fail(f"{CP}networkpolicy.yaml: podSelector does not select the xds-server pods")
if sorted(policy.get("policyTypes", [])) != ["Egress", "Ingress"]:
    fail(f"{CP}networkpolicy.yaml: policyTypes must be Ingress and Egress")
ingress_ports = {(p.get("protocol", "TCP"), p.get("port")) for rule in policy.get("ingress", [])
                 for p in rule.get("ports", [])}
if any("ports" not in rule for rule in policy.get("ingress", [])):
    fail(f"{CP}networkpolicy.yaml: an ingress rule without ports opens every port")
allowed = {("TCP", int(listen_port or 0)), ("TCP", "grpc-ads"), ("TCP", "webhook")}
if not ingress_ports & {("TCP", int(listen_port or 0)), ("TCP", "grpc-ads")}:
    fail(f"{CP}networkpolicy.yaml: no ingress on the ADS port {listen_port}")
if ingress_ports - allowed:
    fail(f"{CP}networkpolicy.yaml: ingress on ports other than ADS and the webhook: "
         f"{sorted(map(str, ingress_ports - allowed))}")
if "--jwks-url" in opts and not policy.get("egress"):
    fail(f"{CP}networkpolicy.yaml: --jwks-url needs egress to the API server")
if "--jwks-url" not in opts and policy.get("egress"):
    fail(f"{CP}networkpolicy.yaml: egress allowed, but xds-server makes no connection")

# Every file flag points into a mounted folder; watched folders are whole.
volumes = {v["name"]: v for v in server_pod.get("volumes", [])}
mounts = {m["mountPath"]: m for m in server.get("volumeMounts", [])}
for m in mounts.values():
    if "subPath" in m:
        fail(f"xds-server: {m['name']} is mounted with subPath (updates would never arrive)")
for flag in ("--tls-cert", "--tls-key", "--client-ca", "--ca-cert", "--ca-key", "--config-dir"):
    path = opts.get(flag)
    if path is None:
        continue
    mount = [m for p, m in mounts.items() if path == p or path.startswith(p.rstrip("/") + "/")]
    if not mount:
        fail(f"xds-server: {flag} {path} is not in a mounted volume")
        continue
    source = volumes.get(mount[0]["name"], {})
    if flag == "--config-dir":
        if source.get("configMap", {}).get("name") != resources_map["metadata"]["name"]:
            fail(f"xds-server: --config-dir is not the ConfigMap {resources_map['metadata']['name']}")
    elif "secret" not in source:
        fail(f"xds-server: {flag} is not read from a Secret")
serving = only(files[CP + "certificate.yaml"], "Certificate", "xds-server")["spec"]
tls_mount = [m for p, m in mounts.items() if opts.get("--tls-cert", "").startswith(p)]
if tls_mount and volumes[tls_mount[0]["name"]].get("secret", {}).get("secretName") != serving["secretName"]:
    fail("xds-server: --tls-cert is not from the serving Certificate's Secret")
if "server auth" not in serving.get("usages", []):
    fail(f"{CP}certificate.yaml: usages lack server auth")
pod_sc = server_pod.get("securityContext", {})
for v in volumes.values():
    mode = v.get("secret", {}).get("defaultMode")
    if "secret" in v and (mode is None or mode & 0o007):
        fail(f"xds-server: Secret volume {v['name']} is readable by others (defaultMode {oct(mode) if mode is not None else None})")
    if "secret" in v and mode is not None and mode & 0o040 and pod_sc.get("fsGroup") != server["securityContext"].get("runAsGroup"):
        fail(f"xds-server: Secret volume {v['name']} is group-readable but fsGroup is not the container's group")
if server_pod.get("automountServiceAccountToken") is not False:
    fail("xds-server: automountServiceAccountToken is not false (it never calls the API)")

# The Service, the serving certificate and the sidecars agree on one name.
service = only(files[CP + "service.yaml"], "Service", "xds-server")
labels = server_doc["spec"]["template"]["metadata"]["labels"]
if any(labels.get(k) != v for k, v in service["spec"]["selector"].items()):
    fail(f"{CP}service.yaml: selector does not match the xds-server pods")
svc_port = [p for p in service["spec"]["ports"] if p.get("targetPort") in ("grpc-ads", int(listen_port or 0))]
if not svc_port:
    fail(f"{CP}service.yaml: no port targets the ADS port")
namespace = only(files[CP + "kustomization.yaml"], "Kustomization").get("namespace")
host = f"{service['metadata']['name']}.{namespace}.svc"
if host not in serving.get("dnsNames", []):
    fail(f"{CP}certificate.yaml: dnsNames lack {host}")
try:
    with open(os.path.join(k8s, CP + "workload/sidecar.json")) as f:
        workload_config = json.load(f)
    xds = workload_config.get("xds")
except ValueError as e:
    fail(f"{CP}workload/sidecar.json is not JSON: {e}")
    xds, workload_config = {}, {}
# Keys are born in the sidecar: it asks for its certificate by CSR, and the
# control plane does not make keys.
if "identity" not in workload_config:
    fail(f"{CP}workload/sidecar.json: no identity section (the sidecar must make its own key)")
if "--serve-workload-keys" in str(files[CP + "deployment.yaml"]):
    fail(f"{CP}deployment.yaml: xds-server must not make workload keys (--serve-workload-keys)")
if not xds:
    fail(f"{CP}workload/sidecar.json: no xds section")
else:
    address_host, _, address_port = xds.get("address", "").rpartition(":")
    if address_host not in serving.get("dnsNames", []) or not svc_port or address_port != str(svc_port[0]["port"]):
        fail(f"{CP}workload/sidecar.json: xds.address {xds.get('address')} is not the Service "
             f"{host}:{svc_port[0]['port'] if svc_port else '?'}")
    if xds.get("tls", {}).get("server_name", address_host) not in serving.get("dnsNames", []):
        fail(f"{CP}workload/sidecar.json: xds.tls.server_name is not in the serving certificate")
    for key in ("certificate", "private_key", "trusted_ca"):
        path = xds.get("tls", {}).get(key, "")
        if not path.startswith("/etc/mtls-sidecar/certs/"):
            fail(f"{CP}workload/sidecar.json: xds.tls.{key} is not under the Secret mount: {path}")
    node = xds.get("node", {})
    if not node.get("id"):
        fail(f"{CP}workload/sidecar.json: no xds.node.id")
    bootstrap = only(files[CP + "workload/bootstrap-certificate.yaml"], "Certificate")["spec"]
    if bootstrap.get("issuerRef") != serving.get("issuerRef"):
        fail(f"{CP}workload: the bootstrap certificate's issuer is not the one xds-server trusts "
             "(--client-ca is the serving certificate's ca.crt)")
    backup = xds.get("backup_path")
    patch_spec = pod_spec(only(files[CP + "workload/backup-volume.yaml"], "Deployment"))
    backup_mounts = [m["mountPath"] for c in sidecar(patch_spec) for m in c.get("volumeMounts", [])]
    if backup and not any(backup.startswith(p.rstrip("/") + "/") for p in backup_mounts):
        fail(f"{CP}workload: backup_path {backup} is not in a writable volume (the root is read-only)")

# 6. What kubectl kustomize rendered, when it ran.
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

control_plane_render = os.path.join(rendered_dir, "control-plane.yaml")
if os.path.exists(control_plane_render):
    docs = load_all(control_plane_render)
    kinds = sorted(d["kind"] for d in docs)
    if kinds != ["Certificate", "ConfigMap", "Deployment", "Namespace", "NetworkPolicy",
                 "PodDisruptionBudget", "Service", "ServiceAccount"]:
        fail(f"control-plane renders an unexpected set of objects: {kinds}")
    for d in docs:
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != namespace:
            fail(f"control-plane: {d['kind']} {d['metadata']['name']} is not in {namespace}")
    docs = load_all(os.path.join(rendered_dir, "workload.yaml"))
    injected = pod_spec(only(docs, "Deployment", "checkout"))
    containers = sidecar(injected)
    if len(containers) != 1 or containers[0].get("restartPolicy") != "Always":
        fail("control-plane/workload: the annotated Deployment did not get the native sidecar")
    else:
        mounts = {m["name"]: m["mountPath"] for m in containers[0].get("volumeMounts", [])}
        if mounts.get("mtls-sidecar-state") != "/var/lib/mtls-sidecar":
            fail("control-plane/workload: the backup folder was not added to the injected sidecar")
    volumes = {v["name"] for v in injected.get("volumes", [])}
    if volumes != {"mtls-sidecar-config", "mtls-sidecar-certs", "mtls-sidecar-state"}:
        fail(f"control-plane/workload: unexpected volumes {sorted(volumes)}")

if failures:
    print("\n".join(f"deploy/check.sh: FAIL {m}" for m in failures), file=sys.stderr)
    sys.exit(1)
print(f"deploy/check.sh: ok ({len(files)} YAML files)")
PY
