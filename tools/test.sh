#!/usr/bin/env bash
# Runs every test: the unit tests and the integration tests (real sidecar,
# real nginx upstreams, real certificates, all on loopback), first as built
# normally, then under AddressSanitizer + UndefinedBehaviorSanitizer.
# Ends with one line: "N passed, N failed".
#
#   tools/test.sh            both runs
#   tools/test.sh --fast     the normal build only
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
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
