# shellcheck shell=bash
# sh_test_lib.sh: what the shell tests of the programs share, sourced after
# they set NAME (the name of their folder):
#   NAME=cli
#   source "${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}/tests/sh_test_lib.sh"
# Sets RUNFILES (where the programs are: $RUNFILES/certs/certs), DIR (an
# empty folder for the test's files), failures=0 and pids=() (the processes
# the test started, killed on exit), and gives fail, expect_exit, expect_in
# and finish (and find_python). The test lists //tests:sh_test_lib.sh in its
# data.
: "${NAME:?set NAME before sourcing sh_test_lib.sh}"
RUNFILES="${TEST_SRCDIR:-$0.runfiles}/${TEST_WORKSPACE:-mtls_sidecar}"
DIR="${TEST_TMPDIR:-$(mktemp -d)}/$NAME"
rm -rf "$DIR"
mkdir -p "$DIR"
failures=0
pids=()

# stop_processes kills what is in pids and waits for it.
stop_processes() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  pids=()
}
trap stop_processes EXIT

# fail MESSAGE: counts a failure and says what it was.
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_exit CODE PROGRAM ARGS...: runs PROGRAM (which must end within
# 10 s), checks its exit code, keeps its output in $DIR/out and $DIR/err.
expect_exit() {
  local want=$1
  shift
  timeout 10 "$@" >"$DIR/out" 2>"$DIR/err"
  local got=$?
  [ "$got" -eq "$want" ] || fail "exit $got, want $want: $* ($(cat "$DIR/err"))"
}

# expect_in FILE TEXT WHAT: FILE holds TEXT (a fixed string); WHAT names
# the check in the failure.
expect_in() {
  grep -qF -- "$2" "$1" || fail "$3: no \"$2\" in: $(cat "$1")"
}

# find_python MODULE...: sets `python` to a python3 that imports every
# MODULE: the one on PATH (pyenv, say), else Debian's. Returns 1, with
# `python` empty, when neither does.
find_python() {
  local candidate imports
  imports="import $(IFS=,; echo "$*")"
  python=""
  for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "$imports" 2>/dev/null; then
      python=$candidate
      return 0
    fi
  done
  return 1
}

# project_version prints the version every program prints (MS_VERSION of
# common/version.h: the test lists //common:version.h in its data).
project_version() {
  sed -n 's/^#define MS_VERSION "\(.*\)"$/\1/p' "$RUNFILES/common/version.h"
}

# finish: the test's last line, and its exit status.
finish() {
  if [ "$failures" -gt 0 ]; then
    echo "$NAME: $failures failure(s)"
    exit 1
  fi
  echo "$NAME: all checks passed"
  exit 0
}
