#!/usr/bin/env bash
# inject_cli_test.sh: mtls-inject as a user runs it. Files and standard
# input, YAML and JSON, every workload kind, refusals that write nothing,
# idempotence, 10,000 documents. (The JSON Patch the webhook answers with,
# applied by python's jsonpatch and compared with what this command writes,
# is deploy/check.sh's: it asks the real webhook, xds-server, over HTTPS.)
NAME=inject_cli
# shellcheck source=../tests/sh_test_lib.sh
source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
inject="$RUNFILES/inject/mtls-inject"
data="$RUNFILES/inject/testdata"
version="$(project_version)"

# A python3 with PyYAML.
find_python yaml || fail "no python3 with PyYAML (apt-get install python3-yaml)"

# --- the command line
expect_exit 0 "$inject" --version
expect_in "$DIR/out" "mtls-inject $version" "--version"
expect_exit 0 "$inject" --help
expect_in "$DIR/out" "--no-native-sidecars" "--help"
expect_in "$DIR/out" "mtls-sidecar-bootstrap-trust (bootstrap-ca.pem)" "--help names the trust ConfigMaps"
expect_exit 2 "$inject" --bogus
expect_exit 2 "$inject" a.yaml b.yaml
expect_exit 1 "$inject" "$DIR/does-not-exist.yaml"
expect_in "$DIR/err" "cannot open" "a missing file"

# --- a Deployment among other objects, from a file: YAML in, YAML out
expect_exit 0 "$inject" "$data/deployment.yaml"
cp "$DIR/out" "$DIR/deployment.out.yaml"
expect_in "$DIR/err" "Deployment checkout: injected" "the report"
[ "$(grep -c '^---$' "$DIR/deployment.out.yaml")" -eq 2 ] || fail "three documents, two separators: $(cat "$DIR/deployment.out.yaml")"
expect_in "$DIR/deployment.out.yaml" "image: mtls-sidecar:$version" "the image"
expect_in "$DIR/deployment.out.yaml" "mtls-sidecar/status: $version" "the status annotation"
expect_in "$DIR/deployment.out.yaml" 'mode: "0444"' "a string that looks like a number stays quoted"
expect_in "$DIR/deployment.out.yaml" 'enabled: "true"' "a string that looks like a boolean stays quoted"
expect_in "$DIR/deployment.out.yaml" 'defaultMode: 288' "YAML 1.1 octal 0440, as kubectl reads it"

# Injected again: byte for byte the same, reported as such.
expect_exit 0 "$inject" "$DIR/deployment.out.yaml"
cmp -s "$DIR/out" "$DIR/deployment.out.yaml" || fail "injecting the injected output changed it: $(diff "$DIR/deployment.out.yaml" "$DIR/out")"
expect_in "$DIR/err" "Deployment checkout: already injected" "the second report"

# From standard input, as "-" and as nothing.
timeout 10 "$inject" - <"$data/deployment.yaml" >"$DIR/stdin.yaml" 2>/dev/null || fail "stdin (-)"
cmp -s "$DIR/stdin.yaml" "$DIR/deployment.out.yaml" || fail "stdin differs from the file"
timeout 10 "$inject" <"$data/deployment.yaml" >"$DIR/stdin2.yaml" 2>/dev/null || fail "stdin"
cmp -s "$DIR/stdin2.yaml" "$DIR/deployment.out.yaml" || fail "stdin (no argument) differs"

# --- every kind
for kind in pod statefulset daemonset job cronjob init-containers; do
  expect_exit 0 "$inject" "$data/$kind.yaml"
  expect_in "$DIR/err" ": injected" "$kind"
  expect_in "$DIR/out" "restartPolicy: Always" "$kind: the native sidecar"
done
expect_exit 0 "$inject" "$data/opt-out.yaml"
expect_in "$DIR/err" "Deployment batch: opted out" "opt-out"
cmp -s "$DIR/out" <("$inject" "$DIR/out" 2>/dev/null) || fail "opt-out: not stable"
grep -q "mtls-sidecar/status" "$DIR/out" && fail "opt-out: injected"
expect_exit 0 "$inject" "$data/kube-system.yaml"
expect_in "$DIR/err" "namespace skipped" "kube-system"

# A List (what kubectl get -o yaml writes): its items, one by one.
printf 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: listed\n    annotations: {mtls-sidecar/inject: "true"}\n  spec:\n    containers: [{name: app, image: app}]\n- apiVersion: v1\n  kind: Service\n  metadata: {name: svc}\n' >"$DIR/list.yaml"
expect_exit 0 "$inject" "$DIR/list.yaml"
expect_in "$DIR/err" "Pod listed: injected" "a List's item"
expect_in "$DIR/out" "name: mtls-sidecar" "a List's item injected"

# --- refusals: a sentence naming the object, exit 1, nothing written
refused() { # FILE TEXT...
  local file=$1
  shift
  expect_exit 1 "$inject" "$data/$file"
  [ -s "$DIR/out" ] && fail "$file: something was written to standard output"
  local text
  for text in "$@"; do expect_in "$DIR/err" "$text" "$file"; done
}
refused init-collision.yaml "Pod migrate" "volume named mtls-sidecar-config" "nothing written"
refused hostnetwork.yaml "DaemonSet node-exporter" "hostNetwork"
refused yes.yaml "Pod hopeful" '"yes"'
refused configmap-annotated.yaml "ConfigMap settings" "cannot be injected"
refused malformed.yaml "line 10"
expect_exit 1 "$inject" --no-native-sidecars "$data/pod.yaml"
expect_in "$DIR/err" "no native sidecars" "--no-native-sidecars"
# One refused object among good ones: still nothing written.
cat "$data/deployment.yaml" "$data/hostnetwork.yaml" >"$DIR/mixed.yaml"
expect_exit 1 "$inject" "$DIR/mixed.yaml"
[ -s "$DIR/out" ] && fail "mixed: half a stream was written"

# --- JSON in, JSON out
expect_exit 0 "$inject" "$data/deployment.json"
cp "$DIR/out" "$DIR/deployment.out.json"
if [ -n "$python" ]; then
  "$python" - "$DIR/deployment.out.json" <<'PY' || fail "JSON output"
import json, sys
text = open(sys.argv[1]).read()
decoder, docs, at = json.JSONDecoder(), [], 0
while at < len(text):
    while at < len(text) and text[at].isspace():
        at += 1
    if at == len(text):
        break
    doc, at = decoder.raw_decode(text, at)
    docs.append(doc)
assert [d["kind"] for d in docs] == ["Deployment", "ConfigMap"], docs
init = docs[0]["spec"]["template"]["spec"]["initContainers"]
assert init[0]["name"] == "mtls-sidecar" and init[0]["restartPolicy"] == "Always", init
PY
fi

# --- 10,000 documents (bounded at 120 s for the sanitizers' build, which
# is about five times slower; inject_test checks that the time grows
# linearly)
for i in $(seq 10000); do
  printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%d\n  annotations:\n    mtls-sidecar/inject: "true"\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: app:1\n' "$i"
done >"$DIR/many.yaml"
start=$(date +%s%N)
timeout 120 "$inject" "$DIR/many.yaml" >"$DIR/out" 2>"$DIR/err" || fail "10,000 documents: exit $?"
end=$(date +%s%N)
echo "10,000 documents: $(((end - start) / 1000000)) ms"
[ "$(grep -c '^---$' "$DIR/out")" -eq 9999 ] || fail "10,000 documents: not 10,000 out"
[ "$(grep -c ': injected$' "$DIR/err")" -eq 10000 ] || fail "10,000 documents: not 10,000 injected"

finish
