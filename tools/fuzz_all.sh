#!/usr/bin/env bash
# Runs fuzz targets one after another, each until RUNS executions or SECONDS
# seconds, whichever comes first (the issue's budget: 10 million or 30
# minutes), merges what adds coverage into fuzz/corpus/TARGET, and appends a
# line per target to a Markdown table:
#
#   tools/fuzz_all.sh [--seconds=1800] [--runs=10000000] [--table=FILE] [TARGET...]
#
# Without targets, every target of tools/fuzz.sh --list. The table's columns
# are those of fuzz/README.md's "Runs" table: seconds, executions, exec/s,
# cov and ft as libFuzzer printed them last, and the result ("clean", or the
# artifacts a finding left). A finding does not stop the others; the script
# exits non-zero if any target found something.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=1800
runs=10000000
table=fuzz/runs.md
targets=()
for arg in "$@"; do
  case "$arg" in
    --seconds=*) seconds=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --table=*) table=${arg#*=} ;;
    -*) echo "fuzz_all.sh: unknown option $arg" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(tools/fuzz.sh --list)
fi
if [ ! -f "$table" ]; then
  printf '| target | seconds | executions | exec/s | cov | ft | result |\n|---|---|---|---|---|---|---|\n' >"$table"
fi

failed=0
for target in "${targets[@]}"; do
  log=$(mktemp "/tmp/fuzz-all-${target}.XXXXXX.log")
  start=$(date +%s)
  status=0
  tools/fuzz.sh "$target" "$seconds" --merge -runs="$runs" >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  if [ "$status" -eq 0 ]; then
    result=clean
  else
    failed=1
    result="finding: $(grep -oE '(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+' "$log" | sort -u | tr '\n' ' ')(log $log)"
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$target" "$elapsed" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result" >>"$table"
  echo "fuzz_all.sh: $target: $result after ${elapsed}s, ${execs:-?} executions (log $log)" >&2
done
exit "$failed"
