#!/usr/bin/env bash
# Builds one fuzz target of fuzz/ with clang-14 and libFuzzer, ASan and UBSan
# (-fsanitize=fuzzer,address,undefined) and runs it on its seed corpus.
#
#   tools/fuzz.sh TARGET SECONDS [--merge] [libFuzzer flags...]
#   tools/fuzz.sh --list
#
# The build is Bazel's, in an output base of its own (~/.cache/mtls-sidecar-fuzz)
# with CC=clang-14, so that the normal gcc build is left alone: every source,
# BoringSSL included, is compiled with the fuzzer's coverage instrumentation
# and the sanitizers; the target //fuzz:TARGET_fuzzer (no main of its own) is
# linked with libFuzzer's.
#
# New inputs go to a temporary folder (printed); with --merge, those that add
# coverage are merged into fuzz/corpus/TARGET (libFuzzer -merge=1). A crash,
# leak or timeout leaves its input in that folder (crash-*, leak-*, timeout-*)
# and the script fails. One process at a time (-jobs/-workers are not used).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--list" ]; then
  ls fuzz/*_fuzz.c | sed 's|fuzz/||; s|_fuzz.c$||'
  exit 0
fi
if [ $# -lt 2 ]; then
  echo "usage: tools/fuzz.sh TARGET SECONDS [--merge] [libFuzzer flags...]  (targets: tools/fuzz.sh --list)" >&2
  exit 2
fi
target=$1
seconds=$2
shift 2
merge=0
if [ "${1:-}" = "--merge" ]; then
  merge=1
  shift
fi
if [ ! -f "fuzz/${target}_fuzz.c" ]; then
  echo "fuzz.sh: no target $target (fuzz/${target}_fuzz.c); targets: $(tools/fuzz.sh --list | tr '\n' ' ')" >&2
  exit 2
fi
for tool in clang-14 bazel; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool missing (tools/install-deps.sh --fuzz)" >&2; exit 1; }
done
if ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz.sh: libFuzzer's runtime missing (apt-get install libclang-rt-14-dev)" >&2
  exit 1
fi

# One output base per worktree: Bazel ties an output base to one workspace.
output_base="$HOME/.cache/mtls-sidecar-fuzz/$(pwd | md5sum | cut -c1-12)"
# -fno-sanitize=function: its C++ runtime is not linked by the C driver, and
# libssl is C++.
sanitizers="address,undefined"
bazel --output_base="$output_base" --max_idle_secs=1800 build \
  --repo_env=CC=clang-14 --action_env=CC=clang-14 \
  --copt="-fsanitize=fuzzer-no-link,$sanitizers" --copt=-fno-sanitize-recover=undefined \
  --copt=-fno-omit-frame-pointer --copt=-gline-tables-only \
  --copt=-fno-sanitize=function \
  --linkopt="-fsanitize=fuzzer,$sanitizers" \
  "//fuzz:${target}_fuzzer" >&2
binary="$output_base/execroot/mtls_sidecar/bazel-out/k8-fastbuild/bin/fuzz/${target}_fuzzer"

work=$(mktemp -d "/tmp/fuzz-${target}.XXXXXX")
cp "$binary" "$work/${target}_fuzzer"
mkdir -p "$work/new" "fuzz/corpus/$target"
dict=()
if [ -f "fuzz/dict/${target}.dict" ]; then dict=("-dict=fuzz/dict/${target}.dict"); fi
echo "fuzz.sh: $target for ${seconds}s; new inputs and artifacts in $work" >&2
status=0
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$work/${target}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" "${dict[@]}" "$@" \
  "$work/new" "fuzz/corpus/$target" || status=$?
if [ "$merge" -eq 1 ]; then
  before=$(ls "fuzz/corpus/$target" | wc -l)
  "$work/${target}_fuzzer" -merge=1 -max_len=65536 -artifact_prefix="$work/merge-" "fuzz/corpus/$target" "$work/new" >&2 2>"$work/merge.log" || true
  echo "fuzz.sh: corpus $target: $before -> $(ls "fuzz/corpus/$target" | wc -l) inputs" >&2
fi
if [ "$status" -ne 0 ]; then
  echo "fuzz.sh: $target failed (status $status); artifacts: $(ls "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | tr '\n' ' ')" >&2
fi
exit "$status"
