#!/usr/bin/env bash
# Runs the unit and integration suites built in $1, then the Python
# client's (tests/run-python.sh, only when no filter is given), and ends
# with one line "N passed, N failed" summed over all. Extra args filter the
# C tests by name.
set -u
bin=${1:?usage: run-tests.sh BIN_DIR [filter...]}
shift
export ME_BIN="$bin"
# LeakSanitizer cannot follow the shard's forks when ptrace is restricted;
# keep leak checks on but make ASan reports fail loudly.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0; failed=0; rc=0
suites="unit integration"
[ $# -eq 0 ] && [ -z "${ME_SKIP_PYTHON:-}" ] && suites="$suites python"
for suite in $suites; do
  echo "== $suite tests"
  log=$(mktemp)
  if [ "$suite" = python ]; then
    "$(dirname "$0")/run-python.sh" "$bin" 2>&1 | tee "$log"
  else
    "$bin/${suite}_tests" --suite "$suite" "$@" 2>&1 | tee "$log"
  fi
  code=${PIPESTATUS[0]}
  out=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  rm -f "$log"
  p=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$out")
  f=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$out")
  if [ -z "$p" ]; then
    echo "$suite suite crashed (exit $code) before its summary"
    p=0; f=$((f + 1)); rc=1
  fi
  [ "$code" -ne 0 ] && rc=1
  passed=$((passed + p)); failed=$((failed + ${f:-0}))
done
echo "$passed passed, $failed failed"
exit $rc
