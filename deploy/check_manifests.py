#!/usr/bin/env python3
"""check_manifests.py: the part of deploy/check.sh that reads the manifests.

    check_manifests.py WORK RENDERED INJECT XDS_SERVER CERTS

WORK holds kubernetes/ (a copy of deploy/kubernetes) and workloads/ (a copy of
deploy/testdata/workloads, with expected.json); RENDERED holds the
`kubectl kustomize` renders (control-plane.yaml, workload.yaml). INJECT is
mtls-inject; XDS_SERVER the xds-server binary, started here with its
admission webhook on a loopback port (check_webhook.py), its serving
certificate made by CERTS (the certs tool).

Writes RENDERED/injected/*.yaml (the inject command's output for every
fixture it injects, and for the workload render) and RENDERED/webhook/*.yaml
(each fixture with the real webhook's JSON Patch applied by python's
jsonpatch), for check.sh to validate against the schema; checks that
everything agrees and exits 1 naming every disagreement. Prints the
webhook's latency per AdmissionReview. Offline: never contacts a cluster.
"""
import copy
import json
import os
import re
import subprocess
import sys

import jsonpatch
import yaml

import check_webhook

work, rendered, inject, xds_server, certs = sys.argv[1:6]
k8s = os.path.join(work, "kubernetes")
failures = []

# Go's strconv.ParseBool, which injection follows (inject.h).
TRUTHS = ["1", "t", "T", "TRUE", "true", "True"]
FALSEHOODS = ["0", "f", "F", "FALSE", "false", "False"]
INJECT_ANNOTATION = "mtls-sidecar/inject"
STATUS_ANNOTATION = "mtls-sidecar/status"
TRUST_LABEL = "mtls-sidecar/trust"
SIDECAR = "mtls-sidecar"


def fail(message):
    failures.append(message)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def only(docs, kind, name=None, where=""):
    found = [d for d in docs if d.get("kind") == kind
             and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise SystemExit(f"deploy/check.sh: FAIL {where}: expected one {kind} {name or ''}, "
                         f"found {len(found)}")
    return found[0]


def pod_template(obj):
    """The pod (metadata + spec) of a Pod or a workload, or None."""
    kind = obj.get("kind")
    if kind == "Pod":
        return obj
    if kind == "CronJob":
        return obj.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template")
    return obj.get("spec", {}).get("template")


def sidecars(spec):
    return [c for c in spec.get("initContainers", []) if c.get("name") == SIDECAR]


def run(args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, text=True)


# ---- 1. Every YAML file parses; every document names itself. -------------------------------
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
            if doc.get("kind") != "Kustomization" and not doc.get("metadata", {}).get("name"):
                fail(f"{rel}[{i}]: no metadata.name")
if failures:
    print("\n".join(f"deploy/check.sh: FAIL {m}" for m in failures), file=sys.stderr)
    sys.exit(1)

CP = "control-plane/"
WL = "workload/"
cp_docs = load_all(os.path.join(rendered, "control-plane.yaml"))
wl_docs = load_all(os.path.join(rendered, "workload.yaml"))

# ---- 2. No workload key in a Secret: token bootstrap only. ---------------------------------
for rel, docs in files.items():
    for d in docs:
        if d.get("kind") == "Secret":
            fail(f"{rel}: a Secret in the manifests (keys are the operator's or the sidecar's)")
        if d.get("kind") == "Certificate" and not rel.startswith(CP):
            fail(f"{rel}: Certificate {d['metadata']['name']}: workloads get no certificate "
                 "from cert-manager (the sidecar makes its key and asks xds-server)")
        if d.get("kind") == "Component":
            fail(f"{rel}: a kustomize Component: injection has two ways in, the webhook and "
                 "mtls-inject")

# ---- 3. The control plane. -----------------------------------------------------------------
TYPE = "type.googleapis.com/envoy.config."
SDS_NAMES = {"default", "ROOTCA"}


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
            fail(f"{where}: resources[{i}]: @type {kind!r} is not a Cluster, "
                 "ClusterLoadAssignment or Listener")


resources_map = only(files[CP + "resources.yaml"], "ConfigMap", where=CP + "resources.yaml")
found = {"clusters": {}, "endpoints": set(), "listeners": {}}
for key, text in resources_map.get("data", {}).items():
    check_resources(CP + "resources.yaml", key, text, found)
if not found["listeners"] or not found["clusters"]:
    fail(f"{CP}resources.yaml: no Listener or no Cluster")
for name, cluster in found["clusters"].items():
    if cluster.get("type") == "EDS" and name not in found["endpoints"]:
        fail(f"{CP}resources.yaml: EDS cluster {name} has no ClusterLoadAssignment")
    names = sds_names(cluster.get("transport_socket", {}).get("typed_config", {}))
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


def host_port(text):
    host, _, port = (text or ":").rpartition(":")
    return host, port


namespace_doc = only(files[CP + "namespace.yaml"], "Namespace", where=CP + "namespace.yaml")
namespace = namespace_doc["metadata"]["name"]
for rel, docs in files.items():
    if not rel.startswith(CP):
        continue
    for d in docs:
        cluster_scoped = d["kind"] in ("Namespace", "ClusterRoleBinding", "ClusterRole", "Bundle",
                                       "MutatingWebhookConfiguration",
                                       "ValidatingWebhookConfiguration", "Kustomization")
        ns = d.get("metadata", {}).get("namespace")
        if cluster_scoped and ns is not None:
            fail(f"{rel}: {d['kind']} {d['metadata']['name']} is cluster-scoped but names "
                 f"namespace {ns}")
        if not cluster_scoped and ns != namespace:
            fail(f"{rel}: {d['kind']} {d['metadata']['name']} is not in {namespace}")

server_doc = only(cp_docs, "Deployment", "xds-server", "control-plane render")
server_pod = server_doc["spec"]["template"]["spec"]
pod_labels = server_doc["spec"]["template"]["metadata"]["labels"]
servers = [c for c in server_pod.get("containers", []) if c["name"] == "xds-server"]
if len(servers) != 1:
    raise SystemExit(f"deploy/check.sh: FAIL {CP}deployment.yaml: expected one container "
                     f"xds-server, found {len(servers)}")
server = servers[0]
check_locked_down("xds-server", server)
if server.get("command") != ["/usr/local/bin/xds-server"]:
    fail(f"xds-server: command is not the image's /usr/local/bin/xds-server: "
         f"{server.get('command')}")
opts = flags(server)
for flag in ("--listen", "--tls-cert", "--tls-key", "--ca-cert", "--ca-key", "--config-dir",
             "--webhook-address", "--inject-image", "--inject-tag", "--inject-config-map",
             "--namespace", "--token-audience", "--token-issuer", "--jwks-url"):
    if flag not in opts:
        fail(f"xds-server: no {flag}")
for flag in ("--client-ca", "--accept-workload-certificates", "--serve-workload-keys"):
    if flag in server.get("args", []):
        fail(f"xds-server: {flag}: the recommended setup proves identities by token only "
             "(no bootstrap certificate, no key made or stored outside the sidecar)")
ports = {p["name"]: p["containerPort"] for p in server.get("ports", [])}
listen_host, listen_port = host_port(opts.get("--listen"))
if listen_host not in ("0.0.0.0", "[::]"):
    fail(f"xds-server: --listen {opts.get('--listen')} is not reachable on the pod IP")
if str(ports.get("grpc-ads")) != listen_port:
    fail(f"xds-server: port grpc-ads {ports.get('grpc-ads')} is not the --listen port {listen_port}")
webhook_host, webhook_port = host_port(opts.get("--webhook-address"))
if webhook_host not in ("0.0.0.0", "[::]"):
    fail(f"xds-server: --webhook-address {opts.get('--webhook-address')} is not reachable on "
         "the pod IP (the API server calls it)")
if str(ports.get("webhook")) != webhook_port:
    fail(f"xds-server: port webhook {ports.get('webhook')} is not the --webhook-address port "
         f"{webhook_port}")
status = opts.get("--status-address", "127.0.0.1:18001")
if status != "off" and not status.startswith("127.0.0.1:"):
    fail(f"xds-server: --status-address {status} is not on loopback (it lists every node)")

# --namespace from the downward API.
env = {e["name"]: e for e in server.get("env", [])}
ns_flag = opts.get("--namespace", "")
if not (ns_flag.startswith("$(") and ns_flag.endswith(")")):
    fail(f"xds-server: --namespace {ns_flag} is not taken from the downward API")
else:
    var = env.get(ns_flag[2:-1], {})
    if var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.namespace":
        fail(f"xds-server: --namespace {ns_flag}: {ns_flag[2:-1]} is not metadata.namespace")

# The image the webhook injects is the image the control plane runs.
injected_image = f"{opts.get('--inject-image')}:{opts.get('--inject-tag')}"
if server.get("image") != injected_image:
    fail(f"xds-server: runs {server.get('image')} but injects {injected_image} "
         "(--inject-image, --inject-tag): set both with the kustomization's images")

# Probes: httpGet on the health address (/healthz, /readyz); no exec, no shell.
health = opts.get("--health-address")
health_host, health_port = host_port(health)
if health is None:
    fail("xds-server: no --health-address (kubelet's httpGet probes reach the pod IP only)")
elif health_host not in ("0.0.0.0", "[::]"):
    fail(f"xds-server: --health-address {health} is not reachable on the pod IP")
elif str(ports.get("health")) != health_port:
    fail(f"xds-server: port health {ports.get('health')} is not the --health-address port "
         f"{health_port}")
for probe, path in {"startupProbe": "/healthz", "readinessProbe": "/readyz",
                    "livenessProbe": "/healthz"}.items():
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


drain = seconds(opts.get("--drain-delay", "0"))
if drain <= 0:
    fail("xds-server: no --drain-delay (sidecars would reconnect into the endpoint removal)")
if server_pod.get("terminationGracePeriodSeconds", 30) <= drain:
    fail(f"xds-server: terminationGracePeriodSeconds is not above --drain-delay {drain}s")
if "lifecycle" in server and "exec" in str(server["lifecycle"]):
    fail("xds-server: an exec lifecycle hook needs a shell or sleep in the image")

replicas = server_doc["spec"].get("replicas", 1)
if replicas < 2:
    fail(f"xds-server: {replicas} replica: the webhook (failurePolicy Fail) would block the "
         "pods that ask whenever it restarts")
spread = {c.get("topologyKey"): c for c in server_pod.get("topologySpreadConstraints", [])}
for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
    selector = spread.get(key, {}).get("labelSelector", {}).get("matchLabels", {})
    if key not in spread:
        fail(f"xds-server: no topologySpreadConstraint on {key}")
    elif not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        fail(f"xds-server: the {key} spread does not select the xds-server pods")

# The PodDisruptionBudget lets a drain go on with 2+ replicas.
pdb = only(cp_docs, "PodDisruptionBudget", where="control-plane render")["spec"]
if any(pod_labels.get(k) != v for k, v in pdb.get("selector", {}).get("matchLabels", {}).items()):
    fail(f"{CP}poddisruptionbudget.yaml: selector does not select the xds-server pods")
if "minAvailable" in pdb and int(pdb["minAvailable"]) >= replicas:
    fail(f"{CP}poddisruptionbudget.yaml: minAvailable {pdb['minAvailable']} of {replicas} "
         "replicas blocks every node drain")
if "maxUnavailable" in pdb and int(pdb["maxUnavailable"]) < 1:
    fail(f"{CP}poddisruptionbudget.yaml: maxUnavailable 0 blocks every node drain")

# The NetworkPolicy: ingress on the ADS and webhook ports only; egress only
# to the API server (the key set), no DNS: --jwks-url kubernetes is an IP.
policy = only(cp_docs, "NetworkPolicy", "xds-server", "control-plane render")["spec"]
if any(pod_labels.get(k) != v for k, v in policy.get("podSelector", {}).get("matchLabels", {}).items()) \
        or not policy.get("podSelector", {}).get("matchLabels"):
    fail(f"{CP}networkpolicy.yaml: podSelector does not select the xds-server pods")
if sorted(policy.get("policyTypes", [])) != ["Egress", "Ingress"]:
    fail(f"{CP}networkpolicy.yaml: policyTypes must be Ingress and Egress")
if any("ports" not in rule for rule in policy.get("ingress", [])):
    fail(f"{CP}networkpolicy.yaml: an ingress rule without ports opens every port")
ingress_ports = {(p.get("protocol", "TCP"), p.get("port")) for rule in policy.get("ingress", [])
                 for p in rule.get("ports", [])}
ads_ports = {("TCP", int(listen_port or 0)), ("TCP", "grpc-ads")}
webhook_ports = {("TCP", int(webhook_port or 0)), ("TCP", "webhook")}
if not ingress_ports & ads_ports:
    fail(f"{CP}networkpolicy.yaml: no ingress on the ADS port {listen_port}")
if not ingress_ports & webhook_ports:
    fail(f"{CP}networkpolicy.yaml: no ingress on the webhook port {webhook_port} (the API "
         "server could not call it)")
if ingress_ports - ads_ports - webhook_ports:
    fail(f"{CP}networkpolicy.yaml: ingress on ports other than ADS and the webhook: "
         f"{sorted(map(str, ingress_ports - ads_ports - webhook_ports))}")
egress = policy.get("egress", [])
egress_ports = {(p.get("protocol", "TCP"), p.get("port")) for rule in egress
                for p in rule.get("ports", [])}
if any("ports" not in rule for rule in egress):
    fail(f"{CP}networkpolicy.yaml: an egress rule without ports allows every port")
if opts.get("--jwks-url") == "kubernetes":
    if not egress_ports:
        fail(f"{CP}networkpolicy.yaml: --jwks-url kubernetes needs egress to the API server")
    if egress_ports - {("TCP", 443), ("TCP", 6443)}:
        fail(f"{CP}networkpolicy.yaml: egress beyond the API server's ports (443, 6443): "
             f"{sorted(map(str, egress_ports - {('TCP', 443), ('TCP', 6443)}))}")
elif "--jwks-url" not in opts and egress:
    fail(f"{CP}networkpolicy.yaml: egress allowed, but xds-server makes no connection")

# Every file flag points into a mounted folder; watched folders are whole.
volumes = {v["name"]: v for v in server_pod.get("volumes", [])}
mounts = {m["mountPath"]: m for m in server.get("volumeMounts", [])}
for m in mounts.values():
    if "subPath" in m:
        fail(f"xds-server: {m['name']} is mounted with subPath (updates would never arrive)")


def mounted_source(flag):
    path = opts.get(flag)
    if path is None:
        return None, None
    mount = [m for p, m in mounts.items() if path == p or path.startswith(p.rstrip("/") + "/")]
    if not mount:
        fail(f"xds-server: {flag} {path} is not in a mounted volume")
        return None, None
    return volumes.get(mount[0]["name"], {}), os.path.basename(path)


for flag in ("--tls-cert", "--tls-key", "--ca-cert", "--ca-key"):
    source, _ = mounted_source(flag)
    if source is not None and "secret" not in source:
        fail(f"xds-server: {flag} is not read from a Secret")
source, _ = mounted_source("--config-dir")
if opts.get("--config-dir") and source is not None and \
        source.get("configMap", {}).get("name") != resources_map["metadata"]["name"]:
    fail(f"xds-server: --config-dir is not the ConfigMap {resources_map['metadata']['name']}")
# The key set: this pod's own token and the cluster's CA, projected, with
# the default token mount off.
kube_api, token_key = mounted_source("--jwks-token")
_, ca_key = mounted_source("--jwks-ca")
if kube_api is not None:
    sources = kube_api.get("projected", {}).get("sources", [])
    tokens = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    if not tokens or tokens[0].get("path") != token_key or tokens[0].get("audience"):
        fail("xds-server: --jwks-token is not a projected token for the API server (no audience)")
    root_ca = [s["configMap"] for s in sources if "configMap" in s]
    if not root_ca or root_ca[0].get("name") != "kube-root-ca.crt" or \
            {"key": "ca.crt", "path": ca_key} not in root_ca[0].get("items", []):
        fail("xds-server: --jwks-ca is not the cluster's CA (ConfigMap kube-root-ca.crt)")
if server_pod.get("automountServiceAccountToken") is not False:
    fail("xds-server: automountServiceAccountToken is not false (the one token it needs is "
         "projected for --jwks-token)")
pod_sc = server_pod.get("securityContext", {})
for v in volumes.values():
    mode = v.get("secret", v.get("projected", {})).get("defaultMode")
    if ("secret" in v or "projected" in v) and (mode is None or mode & 0o007):
        fail(f"xds-server: volume {v['name']} is readable by others (defaultMode "
             f"{oct(mode) if mode is not None else None})")
    if mode is not None and mode & 0o040 and pod_sc.get("fsGroup") != server["securityContext"].get("runAsGroup"):
        fail(f"xds-server: volume {v['name']} is group-readable but fsGroup is not the "
             "container's group")

# RBAC: the key set, nothing more.
sa_name = server_pod.get("serviceAccountName")
rbac = [d for d in cp_docs if d["apiVersion"].startswith("rbac.authorization.k8s.io/")]
discovery = [d for d in rbac if d["kind"] == "ClusterRoleBinding"
             and d["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "system:service-account-issuer-discovery"}]
if len(discovery) != 1 or discovery[0].get("subjects") != [
        {"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]:
    fail(f"{CP}rbac.yaml: no ClusterRoleBinding of system:service-account-issuer-discovery to "
         f"exactly ServiceAccount {namespace}/{sa_name}")
if len(rbac) != 1:
    fail(f"{CP}rbac.yaml: RBAC beyond the issuer discovery binding: "
         f"{[d['kind'] + ' ' + d['metadata']['name'] for d in rbac]}")
if not any(d["kind"] == "ServiceAccount" and d["metadata"]["name"] == sa_name for d in cp_docs):
    fail(f"xds-server: its ServiceAccount {sa_name} is not in the manifests")

# The two CAs: the serving certificate comes from the control plane's own
# CA (selfSigned Issuer -> isCA Certificate -> CA Issuer), never from the
# workload CA.
serving = only(cp_docs, "Certificate", "xds-server", "control-plane render")
serving_spec = serving["spec"]
tls_source, _ = mounted_source("--tls-cert")
if tls_source is not None and tls_source.get("secret", {}).get("secretName") != serving_spec["secretName"]:
    fail("xds-server: --tls-cert is not from the serving Certificate's Secret")
workload_ca_source, workload_ca_key = mounted_source("--ca-cert")
workload_ca_secret = (workload_ca_source or {}).get("secret", {}).get("secretName")
if "server auth" not in serving_spec.get("usages", []):
    fail(f"{CP}certificate.yaml: usages lack server auth")
issuers = {d["metadata"]["name"]: d for d in cp_docs if d["kind"] == "Issuer"}
ca_issuer = issuers.get(serving_spec["issuerRef"]["name"]) \
    if serving_spec["issuerRef"].get("kind") == "Issuer" else None
ca_certificate = None
if ca_issuer is None or "ca" not in ca_issuer["spec"]:
    fail(f"{CP}certificate.yaml: the serving certificate's issuer is not a CA Issuer of the "
         "control plane's namespace")
else:
    ca_secret = ca_issuer["spec"]["ca"]["secretName"]
    if ca_secret == workload_ca_secret:
        fail(f"{CP}issuers.yaml: the control plane's CA is the workload CA ({ca_secret}): "
             "bootstrap trust and workload trust must be apart")
    makers = [d for d in cp_docs if d["kind"] == "Certificate"
              and d["spec"].get("secretName") == ca_secret]
    if len(makers) != 1 or not makers[0]["spec"].get("isCA"):
        fail(f"{CP}issuers.yaml: no isCA Certificate makes the CA Issuer's Secret {ca_secret}")
    else:
        ca_certificate = makers[0]
        root = issuers.get(ca_certificate["spec"]["issuerRef"]["name"], {})
        if "selfSigned" not in root.get("spec", {}):
            fail(f"{CP}issuers.yaml: the control plane's CA is not made by a selfSigned Issuer")
        if ca_certificate["spec"].get("privateKey", {}).get("rotationPolicy") != "Never":
            fail(f"{CP}issuers.yaml: the CA's key changes at every renewal (rotationPolicy "
                 "Always): certificates it signed before would stop verifying at once")

# The Service, the serving certificate, the webhooks and the sidecars agree.
service = only(cp_docs, "Service", "xds-server", "control-plane render")
if any(pod_labels.get(k) != v for k, v in service["spec"]["selector"].items()):
    fail(f"{CP}service.yaml: selector does not match the xds-server pods")
svc_ads = [p for p in service["spec"]["ports"] if p.get("targetPort") in ("grpc-ads", int(listen_port or 0))]
svc_webhook = [p for p in service["spec"]["ports"] if p.get("targetPort") in ("webhook", int(webhook_port or 0))]
if not svc_ads:
    fail(f"{CP}service.yaml: no port targets the ADS port")
if not svc_webhook:
    fail(f"{CP}service.yaml: no port targets the webhook port")
host = f"{service['metadata']['name']}.{namespace}.svc"
if host not in serving_spec.get("dnsNames", []):
    fail(f"{CP}certificate.yaml: dnsNames lack {host}")

# ---- 4. The admission webhooks. ------------------------------------------------------------
mutating = only(cp_docs, "MutatingWebhookConfiguration", where="control-plane render")
validating = only(cp_docs, "ValidatingWebhookConfiguration", where="control-plane render")
by_path = {}
for config in (mutating, validating):
    name = f"{config['kind']} {config['metadata']['name']}"
    inject_from = config["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from")
    if inject_from != f"{namespace}/{serving['metadata']['name']}":
        fail(f"{name}: cert-manager.io/inject-ca-from is {inject_from}, not the serving "
             f"Certificate {namespace}/{serving['metadata']['name']}")
    for hook in config.get("webhooks", []):
        where = f"{name}: {hook['name']}"
        target = hook.get("clientConfig", {}).get("service", {})
        by_path[target.get("path")] = (config["kind"], hook)
        if target.get("name") != service["metadata"]["name"] or target.get("namespace") != namespace:
            fail(f"{where}: calls {target.get('namespace')}/{target.get('name')}, not the "
                 f"Service {namespace}/{service['metadata']['name']}")
        if svc_webhook and target.get("port", 443) != svc_webhook[0]["port"]:
            fail(f"{where}: port {target.get('port', 443)} is not the Service's webhook port")
        if "caBundle" in hook.get("clientConfig", {}):
            fail(f"{where}: a caBundle in the manifest (cert-manager's CA injector fills it)")
        if hook.get("admissionReviewVersions") != ["v1"] or hook.get("sideEffects") != "None":
            fail(f"{where}: admissionReviewVersions must be [v1] and sideEffects None")
        if not 1 <= hook.get("timeoutSeconds", 10) <= 10:
            fail(f"{where}: timeoutSeconds {hook.get('timeoutSeconds')} is not small")
        if hook.get("rules") != [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                  "resources": ["pods"], "scope": "Namespaced"}]:
            fail(f"{where}: rules are not pods, CREATE")
        excluded = [e for e in hook.get("namespaceSelector", {}).get("matchExpressions", [])
                    if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn"]
        if not excluded or not {"kube-system", namespace} <= set(excluded[0].get("values", [])):
            fail(f"{where}: does not exclude kube-system and {namespace} (the control plane's "
                 "own pods must be creatable while it is down)")
        conditions = " ".join(c.get("expression", "") for c in hook.get("matchConditions", []))
        if "has(object.metadata.annotations)" not in conditions:
            fail(f"{where}: matchConditions read annotations without has() (an error on a pod "
                 "without annotations would apply the failurePolicy)")
if sorted(by_path) != ["/inject", "/inject-namespace", "/validate"]:
    fail(f"webhooks: paths {sorted(p or '' for p in by_path)}, not /inject, /inject-namespace, "
         "/validate")
else:
    kind, hook = by_path["/inject-namespace"]
    if kind != "MutatingWebhookConfiguration":
        fail("webhooks: /inject-namespace is not a mutating webhook")
    if hook.get("failurePolicy") != "Fail":
        fail("webhooks: /inject-namespace does not fail closed (pods of a namespace that asked "
             "for mTLS would start without it)")
    kind, hook = by_path["/inject"]
    if kind != "MutatingWebhookConfiguration":
        fail("webhooks: /inject is not a mutating webhook")
    if hook.get("failurePolicy") != "Fail":
        fail("webhooks: /inject does not fail closed for the pods that asked")
    for path in ("/inject", "/inject-namespace"):
        if by_path[path][1].get("reinvocationPolicy") not in ("Never", "IfNeeded"):
            fail(f"webhooks: {path} has no reinvocationPolicy")
    kind, hook = by_path["/validate"]
    if kind != "ValidatingWebhookConfiguration":
        fail("webhooks: /validate is not a validating webhook")

# Which webhooks the API server calls is decided from the render, as the API
# server decides it (deploy/schema/route.js: the selectors, the rules, the
# matchConditions evaluated by a CEL engine): for each fixture below, and
# here for an unannotated pod in a namespace labelled with each value, which
# only the namespace webhook takes, and only for Go's ParseBool's true ones.
try:
    router = check_webhook.Router(os.path.join(rendered, "control-plane.yaml"))
    for value in TRUTHS + FALSEHOODS + ["yes", "on", ""]:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
               "spec": {"containers": [{"name": "app", "image": "app"}]}}
        called = [w["name"] + (f" ({w['error']})" if w.get("error") else "")
                  for w in router.route(pod, "n", {INJECT_ANNOTATION: value})
                  if w["called"] or w.get("error")]
        want = [by_path.get("/inject-namespace", (None, {"name": "/inject-namespace"}))[1]["name"]] \
            if value in TRUTHS else []
        if called != want:
            fail(f"webhooks: an unannotated pod in a namespace labelled {INJECT_ANNOTATION}: "
                 f"{value!r} goes to {called or 'no webhook'}, not {want or 'none'} (Go's ParseBool)")
except check_webhook.WebhookError as e:
    raise SystemExit(f"deploy/check.sh: FAIL the webhooks' routing: {e}")

# ---- 5. The fixtures, injected both ways. --------------------------------------------------
# Both ways: the inject command, and the real webhook (xds-server over HTTPS,
# check_webhook.py) answering an AdmissionReview for each fixture's pod, its
# JSON Patch applied by python's jsonpatch.
fixtures = os.path.join(work, "workloads")
with open(os.path.join(fixtures, "expected.json")) as f:
    expected = json.load(f)
NAMESPACES = "namespaces.yaml"  # the fixtures' namespaces, not a fixture
listed = sorted(n for n in os.listdir(fixtures) if n.endswith(".yaml") and n != NAMESPACES)
if sorted(expected) != listed:
    fail(f"workloads: expected.json lists {sorted(expected)}, the folder has {listed}")
os.makedirs(os.path.join(rendered, "injected"), exist_ok=True)
os.makedirs(os.path.join(rendered, "webhook"), exist_ok=True)
inject_flags = {"--inject-image": opts.get("--inject-image", ""),
                "--inject-tag": opts.get("--inject-tag", ""),
                "--inject-config-map": opts.get("--inject-config-map", ""),
                "--token-audience": opts.get("--token-audience", "")}
inject_args = [inject, "--image", inject_flags["--inject-image"], "--tag",
               inject_flags["--inject-tag"], "--config-map", inject_flags["--inject-config-map"],
               "--token-audience", inject_flags["--token-audience"],
               "--control-plane-namespace", namespace]
injected_pods = []  # (where, pod) of every injection, for the checks below
# Every namespace's labels, as the routing reads them: the manifests' and
# the fixtures' (namespaces.yaml). A fixture in a namespace none defines fails.
namespaces = {}
for d in wl_docs + cp_docs + load_all(os.path.join(fixtures, NAMESPACES)):
    if d.get("kind") == "Namespace":
        if d["metadata"]["name"] in namespaces:
            fail(f"workloads/{NAMESPACES}: namespace {d['metadata']['name']} is defined twice")
        namespaces[d["metadata"]["name"]] = d["metadata"].get("labels") or {}
try:
    webhook = check_webhook.Webhook(
        xds_server, certs, os.path.join(rendered, "xds-server"),
        [a for flag, value in inject_flags.items() for a in (flag, value)] + ["--namespace", namespace])
except check_webhook.WebhookError as e:
    raise SystemExit(f"deploy/check.sh: FAIL the webhook: {e}")


def refusal(text):
    """The sentence after "refused: " (both ways name the object their own way)."""
    found = re.search(r": refused: (.*)", text)
    return found.group(1).strip() if found else None


def admit(where, owner, pod, pod_namespace):
    """The pod as the API server sends it to the webhooks: a workload's
    template gets the namespace and a generateName (the controller's). The
    webhooks the render's configurations select (route.js), each at its turn:
    the mutating ones in order, each on the object the previous ones' patches
    made, then the validating ones on the result (not after a refusal).
    Returns a dict: called (webhook names), paths (the mutating ones called),
    refusal (a mutating webhook's denial or None), sent, patched (or None),
    denied (a validating webhook's denial, "NAME (PATH): message", or None),
    whys (webhook name -> why it was not called); None after a failure."""
    sent = copy.deepcopy(pod)
    metadata = sent.setdefault("metadata", {})
    metadata.setdefault("namespace", pod_namespace)
    if "name" not in metadata:
        metadata.setdefault("generateName", owner["metadata"]["name"] + "-")
    if pod_namespace not in namespaces:
        fail(f"{where}: namespace {pod_namespace}: its labels are unknown (no Namespace in the "
             f"manifests or workloads/{NAMESPACES}), so is which webhooks the API server calls")
        return None
    labels = namespaces[pod_namespace]
    out = {"called": [], "paths": [], "refusal": None, "sent": sent, "patched": None,
           "denied": None, "whys": {}}
    current = sent
    try:
        hooks = router.route(current, pod_namespace, labels)
        for turn in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for name in [w["name"] for w in hooks if w["configuration"] == turn]:
                hook = next(w for w in router.route(current, pod_namespace, labels) if w["name"] == name)
                if hook.get("error"):
                    fail(f"{where}: {name}: {hook['error']} (failurePolicy {hook['failurePolicy']})")
                    return None
                if not hook["called"]:
                    out["whys"][name] = hook.get("why")
                    continue
                out["called"].append(name)
                response, patch = webhook.review(hook["path"], current, pod_namespace)
                if turn == "ValidatingWebhookConfiguration":
                    if response.get("allowed") is not True:
                        out["denied"] = (f"{name} ({hook['path']}): "
                                         f"{response.get('status', {}).get('message', response)}")
                    continue
                out["paths"].append(hook["path"])
                if response.get("allowed") is not True:
                    out["refusal"] = response
                    return out
                if patch is not None:
                    try:
                        current = jsonpatch.JsonPatch(patch).apply(copy.deepcopy(current))
                    except jsonpatch.JsonPatchException as e:
                        fail(f"{where}: the patch of {name} ({hook['path']}) does not apply: {e}")
                        return None
                    out["patched"] = current
    except check_webhook.WebhookError as e:
        fail(f"{where}: the webhook: {e}")
        return None
    return out


def check_route(where, want, admitted, source="expected.json"):
    """The webhooks called are the ones expected (source says where from),
    each missing or extra one named with why."""
    called = admitted["called"]
    if called == want:
        return True
    for name in want:
        if name not in called:
            fail(f"{where}: {name} is not called ({admitted['whys'].get(name) or 'after a refusal'}); "
                 f"{source}: {want}; the render's configurations call {called}")
    for name in called:
        if name not in want:
            fail(f"{where}: {name} is called; {source}: {want}; the render's "
                 f"configurations call {called}")
    if sorted(called) == sorted(want):
        fail(f"{where}: webhooks called in the order {called}, not {want}")
    return False


def unsent(patched, original):
    """`patched` without what admit() added to the pod it sent."""
    out = copy.deepcopy(patched)
    for key in ("namespace", "generateName"):
        if key not in original.get("metadata", {}):
            out["metadata"].pop(key, None)
    return out


def validate(where, pod, pod_namespace):
    """/validate (which allowed the injected pod when the routing called it)
    denies it with the sidecar's restartPolicy removed (a cluster without
    native sidecars)."""
    try:
        stripped = copy.deepcopy(pod)
        for side in sidecars(stripped["spec"]):
            side.pop("restartPolicy", None)
        response, patch = webhook.review("/validate", stripped, pod_namespace)
        if response.get("allowed") is not False or response.get("status", {}).get("code") != 403 \
                or "restartPolicy" not in response.get("status", {}).get("message", ""):
            fail(f"{where}: /validate allows the injected pod without the sidecar's restartPolicy: "
                 f"{response}")
    except check_webhook.WebhookError as e:
        fail(f"{where}: /validate: {e}")


for name in listed:
    want = expected.get(name, {})
    path = os.path.join(fixtures, name)
    original = load_all(path)
    if len(original) != 1:
        fail(f"workloads/{name}: one object per fixture")
        continue
    original = original[0]
    out = run(inject_args + [path])
    pod = pod_template(original)
    pod_namespace = original["metadata"].get("namespace", "default")
    admitted = admit(f"workloads/{name}", original, pod, pod_namespace)
    if admitted is None:
        continue
    if not isinstance(want.get("webhooks"), list):
        fail(f"workloads/{name}: expected.json lists no webhooks (the ones the API server calls)")
    else:
        check_route(f"workloads/{name}", want["webhooks"], admitted)  # the outcome is checked too
    response = admitted["refusal"] or {"allowed": True}
    sent, patched = admitted["sent"], admitted["patched"]
    hook_path = ", ".join(admitted["paths"]) or "no mutating webhook"
    result = want.get("result")
    if result == "refused":
        if out.returncode != 1 or out.stdout:
            fail(f"workloads/{name}: mtls-inject did not refuse it (exit {out.returncode})")
        message = response.get("status", {}).get("message", "")
        if response.get("allowed") is not False or response.get("status", {}).get("code") != 403:
            fail(f"workloads/{name}: the webhook ({hook_path}) did not refuse it: {response}")
        elif refusal(message) is None or refusal(message) != refusal(out.stderr):
            fail(f"workloads/{name}: the webhook's refusal {message!r} is not mtls-inject's "
                 f"{refusal(out.stderr)!r}")
        for words in want.get("reason", []):
            if words not in out.stderr:
                fail(f"workloads/{name}: mtls-inject's refusal lacks \"{words}\": {out.stderr}")
        for words in want.get("reason", [])[1:]:
            if words not in message:
                fail(f"workloads/{name}: the webhook's refusal lacks \"{words}\": {message}")
        continue
    if admitted["denied"]:
        fail(f"workloads/{name}: denied by {admitted['denied']}")
        continue
    if response.get("allowed") is not True:
        fail(f"workloads/{name}: refused by the webhook ({hook_path}): {response}")
        continue
    if result == "unchanged" and "decision" not in want:
        # The API server leaves it (a namespace labelled false, say) where
        # mtls-inject, which sees no namespace label, would not: not compared.
        if patched is not None:
            fail(f"workloads/{name}: changed ({hook_path}), but should be left as it is")
        continue
    if out.returncode != 0:
        fail(f"workloads/{name}: mtls-inject exited {out.returncode}: {out.stderr}")
        continue
    injected = next(d for d in yaml.safe_load_all(out.stdout) if d)
    if result == "injected by the namespace":
        # mtls-inject sees no namespace label: it leaves the object, and
        # injects it annotated "true" as the webhook does for the label.
        if injected != original or out.stderr:
            fail(f"workloads/{name}: mtls-inject did not leave it silently: {out.stderr.strip()!r}")
        if patched is None:
            fail(f"workloads/{name}: not injected by the namespace webhook ({hook_path})")
            continue
        annotated = copy.deepcopy(original)
        pod_template(annotated).setdefault("metadata", {}).setdefault(
            "annotations", {})[INJECT_ANNOTATION] = "true"
        out = run(inject_args + ["-"], yaml.safe_dump(annotated, sort_keys=False))
        if out.returncode != 0:
            fail(f"workloads/{name}: mtls-inject refused it annotated: {out.stderr}")
            continue
        injected = next(d for d in yaml.safe_load_all(out.stdout) if d)
        del pod_template(injected)["metadata"]["annotations"][INJECT_ANNOTATION]
        result = "injected"
    elif result == "unchanged":
        if injected != original or patched is not None:
            fail(f"workloads/{name}: changed, but should be left as it is")
        # "not requested": mtls-inject leaves such a pod without a word.
        if (out.stderr.strip() != "") if want["decision"] == "not requested" else \
                f": {want['decision']}" not in out.stderr:
            fail(f"workloads/{name}: mtls-inject reports {out.stderr.strip()!r}, not "
                 f"{want.get('decision')!r}")
        continue
    if result != "injected":
        fail(f"workloads/{name}: expected.json: unknown result {result!r}")
        continue
    if patched is None:
        fail(f"workloads/{name}: the webhook ({hook_path}) sent no patch")
        continue
    from_webhook = copy.deepcopy(original)
    template = pod_template(from_webhook)
    template.clear()
    template.update(unsent(patched, pod))
    # One code path: the command and the webhook's patch give the same object.
    if injected != from_webhook:
        first = jsonpatch.make_patch(injected, from_webhook).patch[:1]
        fail(f"workloads/{name}: mtls-inject and the webhook's patch ({hook_path}) differ: "
             f"{first}")
    validate(f"workloads/{name}", patched, pod_namespace)
    again = run(inject_args + ["-"], out.stdout)
    if again.returncode != 0 or again.stdout != out.stdout or "already injected" not in again.stderr:
        fail(f"workloads/{name}: injecting mtls-inject's output again changed it")
    with open(os.path.join(rendered, "injected", name), "w") as f:
        f.write(out.stdout)
    with open(os.path.join(rendered, "webhook", name), "w") as f:
        yaml.safe_dump(from_webhook, f, sort_keys=False)
    injected_pods.append((f"workloads/{name}", pod_template(injected)))
    kept = [c["name"] for c in pod.get("spec", {}).get("initContainers", [])]
    after = [c["name"] for c in pod_template(injected)["spec"].get("initContainers", [])]
    if after != [SIDECAR] + kept:
        fail(f"workloads/{name}: init containers {after}, not the sidecar first then {kept}")

# Opt-in values: what the namespace webhook's selector takes as true is what
# injection reads as true, and nothing else injects.
for value in TRUTHS + FALSEHOODS + ["yes", "on", ""]:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {INJECT_ANNOTATION: value}},
           "spec": {"containers": [{"name": "app", "image": "app"}]}}
    out = run(inject_args + ["-"], json.dumps(pod))
    asked = value in TRUTHS
    if (out.returncode == 0 and ": injected" in out.stderr) != asked:
        fail(f"mtls-inject: the annotation value {value!r} is {'not ' if asked else ''}read as "
             f"true, unlike Go's ParseBool and the webhook's selector")

# The example workload, rendered, injected by the command and by the webhook.
out = run(inject_args + [os.path.join(rendered, "workload.yaml")])
if out.returncode != 0:
    fail(f"{WL}: mtls-inject refused the example: {out.stderr}")
else:
    with open(os.path.join(rendered, "injected", "workload.yaml"), "w") as f:
        f.write(out.stdout)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    app = [d for d in docs if d["kind"] == "Deployment"]
    original = [d for d in wl_docs if d["kind"] == "Deployment"]
    if len(app) != 1 or len(original) != 1 or not sidecars(app[0]["spec"]["template"]["spec"]):
        fail(f"{WL}: the example Deployment was not injected")
    else:
        injected_pods.append((f"{WL}app.yaml", app[0]["spec"]["template"]))
        pod = original[0]["spec"]["template"]
        pod_namespace = original[0]["metadata"].get("namespace", "default")
        admitted = admit(f"{WL}app.yaml", original[0], pod, pod_namespace)
        # The namespace asks (shop, labelled true): the namespace webhook
        # injects, /validate checks.
        route_ok = admitted is not None and check_route(
            f"{WL}app.yaml", [by_path["/inject-namespace"][1]["name"],
                              by_path["/validate"][1]["name"]], admitted,
            f"{WL}namespace.yaml labels it for injection")
        if route_ok:
            hook_path, response = ", ".join(admitted["paths"]), admitted["refusal"]
            patched = admitted["patched"]
            if admitted["denied"]:
                fail(f"{WL}app.yaml: denied by {admitted['denied']}")
            elif patched is None or unsent(patched, pod) != app[0]["spec"]["template"]:
                fail(f"{WL}app.yaml: mtls-inject and the webhook's patch ({hook_path}) differ: "
                     f"{response if patched is None else 'the pods'}")
            else:
                validate(f"{WL}app.yaml", patched, pod_namespace)
print(f"deploy/check.sh: webhook: {webhook.figures()}")
router.stop()
rc = webhook.stop()
if rc != 0:
    fail(f"xds-server (the webhook) exited {rc} after SIGTERM: {webhook.log()[-2000:]}")
if not injected_pods:
    raise SystemExit("deploy/check.sh: FAIL nothing was injected: " + "; ".join(failures))

# ---- 6. What injection adds agrees with the manifests. -------------------------------------
for where, pod in injected_pods:
    spec = pod["spec"]
    side = sidecars(spec)
    if len(side) != 1:
        fail(f"{where}: {len(side)} sidecars")
        continue
    side = side[0]
    if side.get("restartPolicy") != "Always":
        fail(f"{where}: the sidecar is not a native sidecar (restartPolicy Always)")
    if side.get("image") != injected_image:
        fail(f"{where}: injected image {side.get('image')}, not {injected_image}")
    if pod["metadata"].get("annotations", {}).get(STATUS_ANNOTATION) != opts.get("--inject-tag"):
        fail(f"{where}: no status annotation {STATUS_ANNOTATION}: {opts.get('--inject-tag')}")
    check_locked_down(f"{where}: mtls-sidecar", side)
    # kubelet expands $(NAME) in args only for the container's env; an
    # unknown name stays as written, and the sidecar would get it literally.
    names = {e["name"] for e in side.get("env", [])}
    for arg in side.get("args", []):
        for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
            if ref not in names:
                fail(f"{where}: the sidecar's args name $({ref}), which its env does not set")
    side_ports = {p["name"]: p["containerPort"] for p in side.get("ports", [])}
    for probe in ("startupProbe", "readinessProbe"):
        get = side.get(probe, {}).get("httpGet")
        if not get or get.get("port") not in side_ports or get.get("path") != "/ready":
            fail(f"{where}: {probe} is not httpGet /ready on a named port of the sidecar")
    pod_volumes = {v["name"]: v for v in spec.get("volumes", [])}
    if any("secret" in v for n, v in pod_volumes.items() if n.startswith(SIDECAR)):
        fail(f"{where}: the sidecar mounts a Secret")
    side_mounts = {m["name"]: m for m in side.get("volumeMounts", [])}
    for m in side_mounts.values():
        if "subPath" in m:
            fail(f"{where}: {m['name']} is mounted with subPath (updates would never arrive)")
injected_pod = injected_pods[-1][1]  # the example workload's
side = sidecars(injected_pod["spec"])[0]
side_mounts = {m["name"]: m["mountPath"] for m in side.get("volumeMounts", [])}
pod_volumes = {v["name"]: v for v in injected_pod["spec"]["volumes"]}
# The configuration folder: ConfigMap name -> the keys it projects, and
# where each file lands.
config_dir, config_maps, config_files = None, {}, {}
token_file = audience = None
for name, volume in pod_volumes.items():
    sources = volume.get("projected", {}).get("sources", [])
    maps = [s["configMap"] for s in sources if "configMap" in s]
    if maps and name in side_mounts:
        config_dir = side_mounts[name]
        for m in maps:
            config_maps[m["name"]] = [i["key"] for i in m.get("items", [])]
            for i in m.get("items", []):
                config_files[m["name"], i["key"]] = f"{config_dir}/{i['path']}"
    for s in sources:
        if "serviceAccountToken" in s and name in side_mounts:
            token_file = f"{side_mounts[name]}/{s['serviceAccountToken']['path']}"
            audience = s["serviceAccountToken"].get("audience")
if config_dir is None or len(config_maps) != 3:
    fail(f"injection: the configuration folder is not one projected volume of three ConfigMaps: "
         f"{config_maps}")
if audience != opts.get("--token-audience"):
    fail(f"injection: the token's audience {audience} is not xds-server's --token-audience "
         f"{opts.get('--token-audience')}")
sidecar_map = opts.get("--inject-config-map")
if sidecar_map not in config_maps:
    fail(f"injection: the configuration folder does not project --inject-config-map {sidecar_map}")
# The trust ConfigMaps are the Bundles' targets, key for key; bootstrap
# trust is the control plane's CA, workload trust the workload CA.
bundles = {d["metadata"]["name"]: d["spec"] for d in cp_docs if d["kind"] == "Bundle"}
trust_maps = {n: keys for n, keys in config_maps.items() if n != sidecar_map}
if sorted(bundles) != sorted(trust_maps):
    fail(f"trust-bundles.yaml: Bundles {sorted(bundles)}, but injected pods mount "
         f"{sorted(trust_maps)}")
example_ns = only(files[WL + "namespace.yaml"], "Namespace", where=WL + "namespace.yaml")
for name, spec in bundles.items():
    target = spec.get("target", {})
    if [target.get("configMap", {}).get("key")] != trust_maps.get(name):
        fail(f"trust-bundles.yaml: Bundle {name} writes key {target.get('configMap', {}).get('key')}, "
             f"injected pods read {trust_maps.get(name)}")
    selector = target.get("namespaceSelector", {}).get("matchLabels", {})
    if not selector or any(example_ns["metadata"].get("labels", {}).get(k) != v
                           for k, v in selector.items()):
        fail(f"trust-bundles.yaml: Bundle {name} does not select the example namespace "
             f"({WL}namespace.yaml)")
    if selector != {TRUST_LABEL: "true"}:
        fail(f"trust-bundles.yaml: Bundle {name} selects {selector}, not {TRUST_LABEL}: \"true\" "
             "(deploy/README.md names that label)")
secrets_of = {n: [(s["secret"]["name"], s["secret"]["key"]) for s in spec.get("sources", [])
                  if "secret" in s] for n, spec in bundles.items()}
# sidecar.json says which file is which.
configmap = [d for d in wl_docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == sidecar_map]
config = {}
if len(configmap) != 1 or "sidecar.json" not in configmap[0].get("data", {}):
    fail(f"{WL}: no ConfigMap {sidecar_map} with sidecar.json (the webhook's --inject-config-map)")
else:
    try:
        config = json.loads(configmap[0]["data"]["sidecar.json"])
    except ValueError as e:
        fail(f"{WL}sidecar.json: not JSON: {e}")
xds = config.get("xds", {})
identity = config.get("identity")
if identity is None:
    fail(f"{WL}sidecar.json: no identity section (the sidecar must make its own key)")
    identity = {}
files_of = {path: key for key, path in config_files.items()}
bootstrap_ca = files_of.get(xds.get("tls", {}).get("trusted_ca"))
trust_file = files_of.get(identity.get("trust_bundle_file"))
if bootstrap_ca is None or bootstrap_ca[0] not in bundles:
    fail(f"{WL}sidecar.json: xds.tls.trusted_ca {xds.get('tls', {}).get('trusted_ca')} is not a "
         f"trust bundle file the injected volume holds ({sorted(files_of)})")
elif ca_certificate is not None and secrets_of[bootstrap_ca[0]] != [
        (ca_certificate["spec"]["secretName"], "ca.crt")]:
    fail(f"trust-bundles.yaml: {bootstrap_ca[0]} (xds.tls.trusted_ca) is not the control plane's "
         f"CA {ca_certificate['spec']['secretName']}: {secrets_of[bootstrap_ca[0]]}")
if trust_file is None or trust_file[0] not in bundles:
    fail(f"{WL}sidecar.json: identity.trust_bundle_file {identity.get('trust_bundle_file')} is "
         f"not a trust bundle file the injected volume holds ({sorted(files_of)})")
elif secrets_of[trust_file[0]] != [(workload_ca_secret, workload_ca_key)]:
    fail(f"trust-bundles.yaml: {trust_file[0]} (identity.trust_bundle_file) is not the workload "
         f"CA {workload_ca_secret} {workload_ca_key}: {secrets_of[trust_file[0]]}")
if bootstrap_ca is not None and trust_file is not None and bootstrap_ca[0] == trust_file[0]:
    fail(f"{WL}sidecar.json: bootstrap trust and workload trust are one file")
for key in ("certificate", "private_key"):
    if key in xds.get("tls", {}) or key in identity.get("tls", {}):
        fail(f"{WL}sidecar.json: a {key} for the control plane (a bootstrap key in a Secret); "
             "the token proves the identity")
if identity.get("token_file") != token_file:
    fail(f"{WL}sidecar.json: identity.token_file {identity.get('token_file')} is not the "
         f"injected token {token_file}")
if xds.get("node", {}).get("id"):
    fail(f"{WL}sidecar.json: xds.node.id: one node for every pod (injection passes --node-id "
         "per pod)")
address_host, _, address_port = xds.get("address", "").rpartition(":")
if address_host not in serving_spec.get("dnsNames", []) or not svc_ads or \
        address_port != str(svc_ads[0]["port"]):
    fail(f"{WL}sidecar.json: xds.address {xds.get('address')} is not the Service "
         f"{host}:{svc_ads[0]['port'] if svc_ads else '?'}")
if xds.get("tls", {}).get("server_name", address_host) not in serving_spec.get("dnsNames", []):
    fail(f"{WL}sidecar.json: xds.tls.server_name is not in the serving certificate")
backup = xds.get("backup_path")
writable = [p for n, p in side_mounts.items() if "emptyDir" in pod_volumes.get(n, {})]
if backup and not any(backup.startswith(p.rstrip("/") + "/") for p in writable):
    fail(f"{WL}sidecar.json: backup_path {backup} is not in a writable volume (the root is "
         "read-only)")
with open(os.path.join(rendered, "sidecar.json"), "w") as f:
    json.dump(config, f)

# The example namespace gets the trust ConfigMaps and is injected.
labels = example_ns["metadata"].get("labels", {})
if labels.get(INJECT_ANNOTATION) not in TRUTHS:
    fail(f"{WL}namespace.yaml: not labelled {INJECT_ANNOTATION} (the webhook would not inject)")

if failures:
    print("\n".join(f"deploy/check.sh: FAIL {m}" for m in failures), file=sys.stderr)
    sys.exit(1)
print(f"deploy/check.sh: manifests agree ({len(files)} YAML files, {len(listed)} workloads, "
      f"{len(injected_pods)} injected)")
