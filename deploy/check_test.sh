#!/usr/bin/env bash
# check_test.sh: deploy/check.sh can fail. It passes on the manifests and
# fixtures as they are, and fails, naming the cause, on copies with one
# thing broken: a misspelled field in a workload fixture (as written, and
# as it comes out of injection), in a manifest, a trust ConfigMap key that
# no longer matches what the injected volume reads, a fixture that injection
# no longer refuses, the webhook calling a path xds-server does not serve, a
# webhook (the real xds-server) whose patch is not mtls-inject's, a
# namespace no longer labelled for injection, and two routing breakages
# (a matchCondition inverted, a namespaceSelector's In made NotIn) that only
# the routing (route.js, CEL evaluated) catches, naming fixture and webhook.
set -uo pipefail

runfiles="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}"
check="$runfiles/deploy/check.sh"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1" >&2; failed=$((failed + 1)); }

# fresh: copies of deploy/kubernetes and the fixtures to break.
fresh() {
  rm -rf "$tmp/k8s" "$tmp/workloads"
  cp -rL "$runfiles/deploy/kubernetes" "$tmp/k8s"
  cp -rL "$runfiles/deploy/testdata/workloads" "$tmp/workloads"
}

# breaks NAME FILE SED EXPECTED...: FILE (under $tmp) edited by SED must
# change it, and check.sh must then fail printing every EXPECTED line part.
breaks() {
  local name=$1 file=$2 script=$3
  shift 3
  fresh
  cp "$tmp/$file" "$tmp/before"
  sed -i "$script" "$tmp/$file"
  if cmp -s "$tmp/before" "$tmp/$file"; then
    fail "$name: the edit changed nothing in $file"
    return
  fi
  "$check" "$tmp/k8s" "$tmp/workloads" >"$tmp/out" 2>&1
  local status=$? text ok=1
  for text in "$@"; do
    grep -qF -- "$text" "$tmp/out" || ok=0
  done
  if [ "$status" -ne 0 ] && [ "$ok" -eq 1 ]; then
    pass "$name"
  else
    cat "$tmp/out" >&2
    fail "$name: expected a failure naming: $* (exit $status)"
  fi
}

fresh
if "$check" "$tmp/k8s" "$tmp/workloads" >"$tmp/out" 2>&1 && grep -q '^deploy/check.sh: ok$' "$tmp/out"; then
  pass "the manifests and fixtures as they are"
else
  cat "$tmp/out" >&2
  fail "check.sh fails on the manifests as they are"
fi

# A misspelled field in a fixture: caught as written, and in what both
# ways of injection made of it (the field is in the pod template).
breaks "a misspelled field in a fixture" workloads/statefulset.yaml \
  's/^          volumeMounts:/          volumeMount:/' \
  "workloads/statefulset.yaml[0] StatefulSet ledger: FAIL" \
  "injected/statefulset.yaml[0] StatefulSet ledger: FAIL" \
  "webhook/statefulset.yaml[0] StatefulSet ledger: FAIL" \
  "spec.template.spec.containers[0].volumeMount: unknown field"
breaks "a misspelled field outside the pod template" workloads/cronjob.yaml \
  's/concurrencyPolicy:/concurrencyPolicyy:/' \
  "spec.concurrencyPolicyy: unknown field"
# A misspelled field in a manifest.
breaks "a misspelled field in the webhooks" k8s/control-plane/webhooks.yaml \
  '0,/reinvocationPolicy:/s/reinvocationPolicy:/reinvocationPolicyy:/' \
  "webhooks[0].reinvocationPolicyy: unknown field"
breaks "a misspelled field in a Bundle" k8s/control-plane/trust-bundles.yaml \
  's/namespaceSelector:/namespaceSelecter:/' \
  "spec.target.namespaceSelecter: unknown field"
# The manifests no longer agree with injection.
breaks "a Bundle writes a key the injected volume does not read" k8s/control-plane/trust-bundles.yaml \
  's/key: trust.pem/key: ca-bundle.pem/' \
  "Bundle mtls-sidecar-trust writes key ca-bundle.pem, injected pods read ['trust.pem']"
breaks "bootstrap trust from the workload CA" k8s/control-plane/trust-bundles.yaml \
  's/name: xds-control-plane-ca/name: xds-workload-ca/' \
  "is not the control plane's CA"
breaks "sidecar.json's trust bundle is not mounted" k8s/workload/sidecar.json \
  's#/etc/mtls-sidecar/trust.pem#/etc/mtls-sidecar/certs/ca.crt#' \
  "identity.trust_bundle_file /etc/mtls-sidecar/certs/ca.crt is not a trust bundle file"
breaks "the webhook calls a path nobody serves" k8s/control-plane/webhooks.yaml \
  's#path: /inject-namespace#path: /mutate#' \
  "webhooks: paths"
breaks "the webhook fails open for a labelled namespace" k8s/control-plane/webhooks.yaml \
  '0,/failurePolicy: Fail/s/failurePolicy: Fail/failurePolicy: Ignore/' \
  "/inject-namespace does not fail closed"
breaks "egress beyond the API server" k8s/control-plane/networkpolicy.yaml \
  's/port: 6443}/port: 53}/' \
  "egress beyond the API server's ports"
breaks "a workload key back in a Secret" k8s/control-plane/deployment.yaml \
  's/            - --jwks-url$/            - --client-ca\n            - \/etc\/xds-server\/tls\/ca.crt\n            - --jwks-url/' \
  "xds-server: --client-ca: the recommended setup proves identities by token only"
# A fixture whose expectation no longer holds.
breaks "a refusal that no longer happens" workloads/hostnetwork.yaml \
  '/hostNetwork: true/d' \
  "workloads/hostnetwork.yaml: mtls-inject did not refuse it"

breaks "a labelled namespace no longer labelled" k8s/workload/namespace.yaml \
  '/^    mtls-sidecar\/inject: "true"/d' \
  "workloads/namespace-labelled.yaml: namespace.inject.mtls-sidecar.io is not called (namespaceSelector: mtls-sidecar/inject In"

# The routing, decided from the render as the API server decides it
# (deploy/schema/route.js, the matchConditions evaluated by a CEL engine):
# two breakages that the webhooks' text passes and only the routing sees.
# pod.inject's condition without its `!`: only pods NOT asking would go to
# /inject, an annotated pod of an unlabelled namespace to no mutating webhook.
breaks "pod.inject's matchCondition inverted" k8s/control-plane/webhooks.yaml \
  "s/^          !(object.metadata.annotations\['mtls-sidecar\/inject'\] in/          (object.metadata.annotations['mtls-sidecar\/inject'] in/" \
  "workloads/annotated-unlabelled.yaml: pod.inject.mtls-sidecar.io is not called (matchCondition asks-for-injection is false)" \
  "workloads/statefulset.yaml: pod.inject.mtls-sidecar.io is not called"
# The namespace webhook's selector In made NotIn: the labelled namespaces'
# pods would go nowhere, the unlabelled and false-labelled ones' to it.
breaks "the namespace webhook's selector NotIn" k8s/control-plane/webhooks.yaml \
  '0,/operator: In$/s/operator: In$/operator: NotIn/' \
  "workloads/namespace-labelled-capital.yaml: namespace.inject.mtls-sidecar.io is not called (namespaceSelector: mtls-sidecar/inject NotIn" \
  "workloads/namespace-false.yaml: namespace.inject.mtls-sidecar.io is called" \
  "workloads/unannotated-unlabelled.yaml: namespace.inject.mtls-sidecar.io is called"

# The webhook's patch is not mtls-inject's: the real xds-server, started
# with the render's flags and then another --inject-tag (the last one
# counts), injects another image and status annotation.
fresh
other="$tmp/xds-server-other-tag"
printf '#!/bin/sh\nexec "%s" "$@" --inject-tag 0.0.0-elsewhere\n' "$runfiles/xds-server/xds-server" >"$other"
chmod +x "$other"
XDS_SERVER="$other" "$check" "$tmp/k8s" "$tmp/workloads" >"$tmp/out" 2>&1
status=$?
if [ "$status" -ne 0 ] &&
  grep -qF "workloads/statefulset.yaml: mtls-inject and the webhook's patch (/inject) differ" "$tmp/out" &&
  grep -qF "workloads/deployment.yaml: mtls-inject and the webhook's patch (/inject-namespace) differ" "$tmp/out" &&
  grep -qF "workload/app.yaml: mtls-inject and the webhook's patch (/inject-namespace) differ" "$tmp/out" &&
  grep -qF "0.0.0-elsewhere" "$tmp/out"; then
  pass "a webhook whose patch is not mtls-inject's"
else
  cat "$tmp/out" >&2
  fail "a webhook injecting another tag: expected the fixtures named as differing (exit $status)"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
