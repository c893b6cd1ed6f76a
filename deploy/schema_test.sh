#!/usr/bin/env bash
# schema_test.sh: deploy/schema/validate.js, the strict schema check that
# deploy/check.sh runs on every manifest, can fail. testdata/good.yaml (a
# realistic workload: native sidecar, Certificate, Service, PDB) passes; each
# testdata/bad-*.yaml is good.yaml with exactly one line changed, and fails
# naming the field. Needs node and deploy/schema/node_modules (`npm ci
# --prefix deploy/schema`); fails saying so without them.
set -uo pipefail

runfiles="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}"
check="$runfiles/deploy/schema/check_schema.sh"
data="$runfiles/deploy/schema/testdata"
out="${TEST_TMPDIR:-$(mktemp -d)}/schema_test.out"
passed=0 failed=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1" >&2; failed=$((failed + 1)); }

# Without node or node_modules the check cannot run: fail at once.
"$check" "$data/good.yaml" >"$out" 2>&1
status=$?
if grep -q '^FAIL: ' "$out"; then
  cat "$out" >&2
  exit 1
fi
if [ "$status" -eq 0 ] && ! grep -q ': FAIL$' "$out" && grep -q '5 of 5 documents valid' "$out"; then
  pass "good.yaml: all 5 documents valid"
else
  cat "$out" >&2
  fail "good.yaml did not pass (exit $status)"
fi

# bad fixture | the error line it must print
expectations=(
  "bad-init-restartpolicyy.yaml|  spec.template.spec.initContainers[0].restartPolicyy: unknown field"
  "bad-container-securitycontex.yaml|  spec.template.spec.containers[0].securityContex: unknown field"
  "bad-certificate-renewbfore.yaml|  spec.renewBfore: unknown field"
  "bad-metadata-lables.yaml|  metadata.lables: unknown field"
  "bad-secret-defaultmod.yaml|  spec.template.spec.volumes[1].secret.defaultMod: unknown field"
  "bad-replicas-string.yaml|  spec.replicas: must be integer"
  "bad-pullpolicy-enum.yaml|  spec.template.spec.initContainers[0].imagePullPolicy: must be one of \"Always\", \"IfNotPresent\", \"Never\""
  "bad-unknown-kind.yaml|  (document): no schema for PodDisruptionBuget (policy/v1)"
)
listed=()
for entry in "${expectations[@]}"; do
  file="${entry%%|*}" expected="${entry#*|}"
  listed+=("$file")
  changed=$(diff "$data/good.yaml" "$data/$file" | grep -c '^[<>]')
  if [ "$changed" -ne 2 ]; then
    fail "$file: not good.yaml with exactly one line changed ($changed lines differ)"
    continue
  fi
  "$check" "$data/$file" >"$out" 2>&1
  status=$?
  fails=$(grep -c ': FAIL$' "$out")
  if [ "$status" -eq 1 ] && grep -qxF -- "$expected" "$out" && [ "$fails" -eq 1 ] &&
     [ "$(grep -c '^  ' "$out")" -eq 1 ]; then
    pass "$file fails with:$expected"
  else
    cat "$out" >&2
    fail "$file: expected exit 1 and the one error \"$expected\" (exit $status)"
  fi
done

# Every bad fixture has its expectation.
for path in "$data"/bad-*.yaml; do
  name="$(basename "$path")"
  printf '%s\n' "${listed[@]}" | grep -qxF "$name" || fail "$name has no expected error in schema_test.sh"
done

# A folder: kustomize's own files are skipped, saying so; the files a
# kustomization names as patches are checked without required fields; the
# exit status is that of its worst document.
folder="${TEST_TMPDIR:-$(mktemp -d)}/folder"
rm -rf "$folder" && mkdir -p "$folder"
cp "$data/good.yaml" "$folder/app.yaml"
cat >"$folder/kustomization.yaml" <<'YAML'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [app.yaml]
patches:
  - path: patch.yaml
YAML
cat >"$folder/patch.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  template:
    spec:
      initContainers:
        - name: mtls-sidecar
          restartPolicy: Always
YAML
"$check" "$folder" >"$out" 2>&1
status=$?
if [ "$status" -eq 0 ] && grep -q 'kustomization.yaml\[0\] Kustomization (no name): skipped' "$out" &&
   grep -q 'patch.yaml\[0\] Deployment orders (patch): ok' "$out"; then
  pass "a folder: kustomization skipped, patch checked as a patch"
else
  cat "$out" >&2
  fail "a folder: expected the kustomization skipped and the patch ok (exit $status)"
fi
sed -i 's/restartPolicy: Always/restartPolicyy: Always/' "$folder/patch.yaml"
"$check" "$folder" >"$out" 2>&1
status=$?
if [ "$status" -eq 1 ] &&
   grep -qxF '  spec.template.spec.initContainers[0].restartPolicyy: unknown field' "$out"; then
  pass "a folder: a misspelled field in a patch fails"
else
  cat "$out" >&2
  fail "a folder: a misspelled field in the patch did not fail (exit $status)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
