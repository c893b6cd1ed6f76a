"""check_webhook.py: the real admission webhook, for check_manifests.py.

Webhook(...) starts the real xds-server binary with --webhook-address on a
loopback port it picks (port 0; the port is read from its log line), its
serving certificate issued at check time by the `certs` tool from a CA made
at check time (offline, nothing kept). review() sends one AdmissionReview v1
over HTTPS on one keep-alive connection, verifying the serving certificate
against that CA and the name 127.0.0.1, as the API server would; it returns
the response and the decoded JSON Patch, and times the round trip (request
written to response read). stop() ends the server with SIGTERM and returns
its exit status and log.

Router(config) keeps deploy/schema/route.js open on the rendered webhook
configurations: route() asks it which webhooks the API server would call for
a pod in a namespace (selectors, rules, and the matchConditions evaluated by
a CEL engine), one JSON line each way.
"""
import atexit
import base64
import http.client
import json
import os
import re
import ssl
import subprocess
import time

PORT_LINE = re.compile(r"admission webhook \(HTTPS\) on .* \(port ([0-9]+)\)")


class WebhookError(Exception):
    pass


class Webhook:
    def __init__(self, server, certs, folder, inject_args):
        """inject_args: xds-server's injection flags (--inject-image, ...)."""
        os.makedirs(folder, exist_ok=True)
        ca, workload_ca, serving = (os.path.join(folder, n) for n in ("ca", "workload-ca", "serving"))
        for args in ([certs, "ca", "--out", ca, "--cn", "check control plane CA"],
                     [certs, "ca", "--out", workload_ca],
                     [certs, "issue", "--ca", ca, "--out", serving, "--ip", "127.0.0.1",
                      "--dns", "localhost", "--server"]):
            done = subprocess.run(args, capture_output=True, text=True)
            if done.returncode != 0:
                raise WebhookError(f"{' '.join(args[1:3])}: {done.stderr.strip()}")
        self.log_path = os.path.join(folder, "xds-server.log")
        self.reviews = 0
        self.latencies = []
        self.paths = {}  # path -> reviews sent there
        # The workload CA signs what sidecars ask for; bootstrap certificates
        # (--client-ca) are the one way to prove an identity that needs no
        # API server. Neither is used here: only the webhook is.
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [server, "--listen", "127.0.0.1:0", "--status-address", "off",
                 "--tls-cert", serving + ".crt", "--tls-key", serving + ".key",
                 "--ca-cert", os.path.join(workload_ca, "ca.crt"),
                 "--ca-key", os.path.join(workload_ca, "ca.key"),
                 "--client-ca", os.path.join(ca, "ca.crt"),
                 "--webhook-address", "127.0.0.1:0"] + inject_args,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        atexit.register(self.stop)  # never left running, whatever ends the check
        port = None
        deadline = time.monotonic() + 20
        while port is None and time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with open(self.log_path) as f:
                found = PORT_LINE.search(f.read())
            if found:
                port = int(found.group(1))
            else:
                time.sleep(0.05)
        if port is None:
            self.stop()
            raise WebhookError(f"xds-server did not serve the webhook: {self.log()}")
        self.port = port
        context = ssl.create_default_context(cafile=os.path.join(ca, "ca.crt"))
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        started = time.perf_counter()
        self.conn.connect()  # the handshake, timed apart from the reviews
        self.handshake = time.perf_counter() - started
        self.socket = self.conn.sock

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def review(self, path, pod, namespace):
        """Returns (response, patch or None). Raises WebhookError on anything
        that is not a v1 AdmissionReview answering this one."""
        self.reviews += 1
        self.paths[path] = self.paths.get(path, 0) + 1
        uid = f"c4e5a1d2-0000-4000-8000-{self.reviews:012d}"
        body = json.dumps({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": pod.get("metadata", {}).get("name", ""),
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "oldObject": None,
                "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }).encode()
        started = time.perf_counter()
        try:
            self.conn.request("POST", path + "?timeout=10s", body=body,
                              headers={"Content-Type": "application/json"})
            answer = self.conn.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException) as e:
            raise WebhookError(f"{path}: {e!r}; xds-server's log ends: {self.log()[-1000:]}")
        self.latencies.append(time.perf_counter() - started)
        if answer.status != 200:
            raise WebhookError(f"{path}: HTTP {answer.status}: {data[:300]!r}")
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise WebhookError(f"{path}: the answer is not JSON: {e}: {data[:300]!r}")
        response = doc.get("response", {})
        if doc.get("apiVersion") != "admission.k8s.io/v1" or doc.get("kind") != "AdmissionReview" \
                or response.get("uid") != uid:
            raise WebhookError(f"{path}: not the v1 AdmissionReview answering uid {uid}: {doc}")
        patch = None
        if "patch" in response:
            if response.get("patchType") != "JSONPatch":
                raise WebhookError(f"{path}: patchType {response.get('patchType')!r}")
            try:
                patch = json.loads(base64.b64decode(response["patch"], validate=True))
            except ValueError as e:
                raise WebhookError(f"{path}: the patch is not base64 JSON: {e}")
        return response, patch

    def figures(self):
        """The latency line for the report."""
        ms = [t * 1000 for t in self.latencies]
        kept = getattr(self, "conn", None) is not None and self.conn.sock is self.socket
        return (f"{len(ms)} AdmissionReviews on {'one keep-alive connection' if kept else 'reconnections'}: "
                f"mean {sum(ms) / max(len(ms), 1):.2f} ms, max {max(ms, default=0):.2f} ms "
                f"(TLS handshake {self.handshake * 1000:.2f} ms; "
                f"{', '.join(f'{p} {n}' for p, n in sorted(self.paths.items()))})")

    def stop(self):
        """SIGTERM; returns xds-server's exit status."""
        if getattr(self, "conn", None) is not None:
            self.conn.close()
        if self.process.poll() is None:
            self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class Router:
    ROUTE_JS = os.path.join(os.path.dirname(os.path.realpath(__file__)), "schema", "route.js")

    def __init__(self, config):
        self.process = subprocess.Popen(["node", self.ROUTE_JS, config], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        atexit.register(self.stop)

    def route(self, pod, namespace, labels):
        """The webhooks, each {configuration, name, path, failurePolicy,
        called, why or error}, in the API server's order."""
        line = None
        try:
            self.process.stdin.write(json.dumps({"object": pod, "oldObject": None, "operation": "CREATE",
                                                 "namespace": {"name": namespace, "labels": labels}}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except OSError:
            pass
        if not line:
            self.stop()
            raise WebhookError(self.process.stderr.read().strip() or "route.js: no answer")
        answer = json.loads(line)
        if "error" in answer:
            raise WebhookError(f"route.js: {answer['error']}")
        return answer["webhooks"]

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
