#!/usr/bin/env bash
# Runs every test: the unit tests and the integration tests (real sidecar,
# real nginx upstreams, real certificates, all on loopback), first as built
# normally, then under AddressSanitizer + UndefinedBehaviorSanitizer.
# Then tests/kube/kube_play_test.sh, outside Bazel (podman needs root and real
# namespaces): the image built with podman, the manifests played by `podman
# kube play` (one test: passed, failed, or skipped when podman cannot run).
# Ends with one line: "N passed, N failed".
#
#   tools/test.sh            both runs, and the kube play test
#   tools/test.sh --fast     the normal build only, and the kube play test
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

configs=("")
if [ "${1:-}" != "--fast" ]; then configs+=("asan"); fi

passed=0
failed=0
skipped=0
for config in "${configs[@]}"; do
  label=${config:-default}
  flags=()
  if [ -n "$config" ]; then flags=(--config="$config"); fi
  echo "=== bazel test ${flags[*]} //... ($label)"
  bazel test "${flags[@]}" //... 2>&1 | tee "/tmp/mtls-sidecar-test-$label.log"
  status=${PIPESTATUS[0]}
  read -r p f s < <(python3 tools/count_tests.py "bazel-testlogs" "/tmp/mtls-sidecar-test-$label.log" "$status")
  echo "=== $label: $p passed, $f failed, $s skipped (bazel test exited $status)"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
done

echo "=== tests/kube/kube_play_test.sh (podman kube play, outside Bazel)"
kube_start=$SECONDS
tests/kube/kube_play_test.sh 2>&1 | tee /tmp/mtls-sidecar-test-kube.log
status=${PIPESTATUS[0]}
case "$status" in
  0) passed=$((passed + 1)); kube=passed ;;
  77) skipped=$((skipped + 1)); kube=skipped ;;
  *) failed=$((failed + 1)); kube=failed ;;
esac
echo "=== kube: $kube in $((SECONDS - kube_start)) s (exit $status)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
