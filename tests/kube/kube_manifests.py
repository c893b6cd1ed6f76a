#!/usr/bin/env python3
"""kube_manifests.py: turns rendered Kubernetes manifests into what
`podman kube play` can play here, translating only what podman cannot do
(tests/kube/kube_play_test.sh):

  python3 kube_manifests.py IN.yaml OUT.yaml PORTS.json \\
      --image OLD=NEW ... --volume NAME=HOSTDIR ... [--taken PORT ...]
      [--set-arg CONTAINER=FLAG=VALUE ...] [--drop-arg CONTAINER=FLAG ...]
      [--mount CONTAINER=NAME:HOSTDIR:MOUNTPATH ...]

- Pods and Deployments pass (a Deployment with replicas 1: one pod here);
  every other kind (Namespace, Service, NetworkPolicy, RBAC, ConfigMaps,
  cert-manager and trust-manager objects, ...) is dropped: podman has no API
  server, no Services, no controllers.
- Each pod volume whose source podman cannot provide (secret, configMap,
  projected, emptyDir) becomes a hostPath of the folder --volume names: the
  files the test made. A volume with no --volume is an error that names it,
  never a silent drop.
- Every listening address in a container's args (HOST:PORT with HOST
  0.0.0.0, 127.0.0.1, [::] or empty) is moved to 127.0.0.1 on a free port,
  and its containerPort with it: the test plays on the host network, beside
  other tests, and keeps all traffic on loopback. The containers' `ports`
  go (podman refuses port mappings on the host network; in a pod they only
  declare). PORTS.json: {"ports": {"CONTAINER/OLDPORT": NEWPORT},
  "probes": [{"container", "probe", "path", "port"}]}.
- Probes: podman turns an httpGet probe into a healthcheck that runs
  `curl` through a shell inside the container (the image has neither) from
  systemd timers (none here), so they are removed and listed in PORTS.json
  instead: the test sends each one's GET itself, kubelet's part.
- podman 4.3 has no native sidecars: it runs an init container with
  restartPolicy: Always to completion before the others, and a sidecar never
  completes, so `kube play` would wait forever. Such init containers become
  the first regular containers (what Kubernetes does with them, minus the
  ordering, which the test checks by retrying).
- podman expands neither $(VAR) in command and args nor the downward API's
  metadata.namespace and spec.serviceAccountName: they are resolved here from
  the container's env and the pod's metadata and spec (kubelet's rules: an unknown $(VAR) stays as is).
- Images are renamed by --image (the rendered name to the image built here).
- --set-arg CONTAINER=FLAG=VALUE sets "FLAG VALUE" in that container's args
  (replacing FLAG's value, or appending both); --drop-arg CONTAINER=FLAG
  removes FLAG and its value where present: what needs a cluster (e.g.
  xds-server's --jwks-url kubernetes: there is no API server here) gives way
  to the test's own files (--jwks-file). --mount adds a read-only hostPath
  volume to the pod holding CONTAINER, mounted there (the files those flags
  name). A --volume, --set-arg or --drop-arg naming nothing is not an error.
"""
import argparse
import json
import re
import socket
import sys

import yaml

ADDRESS = re.compile(r"^(0\.0\.0\.0|127\.0\.0\.1|\[::\]|)[:](\d+)$")
PLAYED = {"Pod", "Deployment"}
TRANSLATED_VOLUMES = ("secret", "configMap", "projected", "emptyDir")
_taken = set()


def free_port():
    """free_port is a loopback port nothing listens on now, not handed out
    before by this run."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _taken:
            _taken.add(port)
            return port


def pairs(values, what):
    out = {}
    for value in values:
        if "=" not in value:
            sys.exit(f"kube_manifests: --{what} {value}: expected NAME=VALUE")
        key, _, val = value.partition("=")
        out[key] = val
    return out


def pod_spec(doc):
    return doc["spec"]["template"]["spec"] if doc["kind"] == "Deployment" else doc["spec"]


# Downward API fields podman 4.3's kube play refuses ("fieldPath ... is
# either not valid or not supported"); metadata.name it has.
# status.podIP is 127.0.0.1: the test plays on the host network.
UNSUPPORTED_FIELDS = ("metadata.namespace", "spec.serviceAccountName", "status.podIP")
FIELD_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def field_values(doc, spec):
    meta = doc.get("metadata", {})
    if doc["kind"] == "Deployment":
        meta = dict(meta, **doc["spec"]["template"].get("metadata", {}))
    return {"metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace", "default"),
            "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": "127.0.0.1"}


def resolve_env(container, fields):
    """resolve_env turns UNSUPPORTED_FIELDS references into values and
    expands $(VAR) in command and args, as kubelet would."""
    values = {}
    for env in container.get("env", []):
        ref = env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if ref in UNSUPPORTED_FIELDS:
            del env["valueFrom"]
            env["value"] = fields[ref]
        if "value" in env:
            values[env["name"]] = env["value"]
        elif ref in fields:
            values[env["name"]] = fields[ref]
    for key in ("command", "args"):
        if key in container:
            container[key] = [FIELD_REF.sub(lambda m: values.get(m.group(1), m.group(0)), str(a))
                              for a in container[key]]


def translate_pod(spec, owner, images, volumes, extra_args, dropped_args, mounts, ports, probes,
                  fields):
    sidecars = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    if sidecars:
        spec["initContainers"] = [c for c in spec["initContainers"] if c not in sidecars]
        if not spec["initContainers"]:
            del spec["initContainers"]
        for c in sidecars:
            del c["restartPolicy"]
        spec["containers"] = sidecars + spec.get("containers", [])
    for volume in spec.get("volumes", []):
        name = volume["name"]
        source = next((k for k in TRANSLATED_VOLUMES if k in volume), None)
        if source is None:
            continue
        if name not in volumes:
            sys.exit(f"kube_manifests: {owner}: volume {name!r} ({source}) has no --volume "
                     f"{name}=HOSTDIR: the test must supply its files")
        del volume[source]
        volume["hostPath"] = {"path": volumes[name], "type": "Directory"}
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        cname = container["name"]
        resolve_env(container, fields)
        # A repository names the image whatever its tag (the control plane's
        # kustomization sets one): a rendered image never falls back to a stale
        # local one of the same name.
        image = container.get("image", "")
        repository = image.rsplit(":", 1)[0] if "/" not in image.rsplit(":", 1)[-1] else image
        if image in images:
            container["image"] = images[image]
        elif repository in images:
            container["image"] = images[repository]
        moved = {}
        args = container.get("args", [])
        for i, arg in enumerate(args):
            match = ADDRESS.match(str(arg))
            if match:
                old = int(match.group(2))
                moved.setdefault(old, free_port())
                args[i] = f"127.0.0.1:{moved[old]}"
        for flag in dropped_args.get(cname, []):
            while flag in args:
                i = args.index(flag)
                del args[i:i + 2]
        for flag, value in extra_args.get(cname, []):
            if flag in args and args.index(flag) + 1 < len(args):
                args[args.index(flag) + 1] = value
            else:
                args.extend([flag, value])
        for name, host, path in mounts.get(cname, []):
            spec.setdefault("volumes", []).append(
                {"name": name, "hostPath": {"path": host, "type": "Directory"}})
            container.setdefault("volumeMounts", []).append(
                {"name": name, "mountPath": path, "readOnly": True})
        if args:
            container["args"] = args
        for port in container.get("ports", []):
            old = port["containerPort"]
            if old not in moved:
                moved[old] = free_port()
            port["containerPort"] = moved[old]
            port.pop("hostPort", None)
        named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
        # host networking: podman refuses port mappings there, and ports are
        # only declarations in a pod (named probe ports resolved first).
        container.pop("ports", None)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe not in container:
                continue
            handler = container.pop(probe)
            target = handler.get("httpGet")
            if target is None:
                sys.exit(f"kube_manifests: {owner}: {cname}'s {probe} is not httpGet; "
                         "the test runs httpGet probes only")
            port = target["port"]
            port = named[port] if port in named else moved.get(port, port)
            probes.append({"container": cname, "probe": probe, "path": target.get("path", "/"),
                           "port": port})
        for old, new in moved.items():
            ports[f"{cname}/{old}"] = new


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("ports")
    parser.add_argument("--image", action="append", default=[])
    parser.add_argument("--volume", action="append", default=[])
    parser.add_argument("--set-arg", action="append", default=[])
    parser.add_argument("--drop-arg", action="append", default=[])
    parser.add_argument("--mount", action="append", default=[])
    parser.add_argument("--taken", action="append", default=[], type=int,
                        help="a port the test already uses (never handed out)")
    args = parser.parse_args()
    _taken.update(args.taken)
    images = pairs(args.image, "image")
    volumes = pairs(args.volume, "volume")
    extra_args, dropped_args = {}, {}
    for value in args.set_arg:
        container, _, setting = value.partition("=")
        flag, sep, arg = setting.partition("=")
        if not sep:
            sys.exit(f"kube_manifests: --set-arg {value}: expected CONTAINER=FLAG=VALUE")
        extra_args.setdefault(container, []).append((flag, arg))
    for value in args.drop_arg:
        container, _, flag = value.partition("=")
        dropped_args.setdefault(container, []).append(flag)
    mounts = {}
    for value in args.mount:
        container, _, spec = value.partition("=")
        parts = spec.split(":")
        if len(parts) != 3:
            sys.exit(f"kube_manifests: --mount {value}: expected CONTAINER=NAME:HOSTDIR:PATH")
        mounts.setdefault(container, []).append(parts)

    with open(args.input) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    played, ports, probes, dropped = [], {}, [], []
    for doc in docs:
        kind = doc.get("kind")
        name = doc.get("metadata", {}).get("name")
        if kind not in PLAYED:
            dropped.append(f"{kind}/{name}")
            continue
        if kind == "Deployment":
            doc["spec"]["replicas"] = 1
        spec = pod_spec(doc)
        translate_pod(spec, f"{kind}/{name}", images, volumes, extra_args, dropped_args, mounts,
                      ports, probes, field_values(doc, spec))
        played.append(doc)
    if not played:
        sys.exit(f"kube_manifests: {args.input} holds no Pod or Deployment")
    with open(args.output, "w") as f:
        yaml.safe_dump_all(played, f, sort_keys=False)
    with open(args.ports, "w") as f:
        json.dump({"ports": ports, "probes": probes}, f)
    print(f"kube_manifests: {args.input}: played "
          f"{', '.join(d['kind'] + '/' + d['metadata']['name'] for d in played)}; "
          f"not played here: {', '.join(dropped) or 'nothing'}", file=sys.stderr)


if __name__ == "__main__":
    main()
