#!/usr/bin/env bash
# Runs every libFuzzer target in BIN_DIR for SECONDS each from its seeds
# (tests/fuzz/seeds/NAME), JOBS targets at a time (default 1), replays the
# kept crash inputs (tests/fuzz/regressions/NAME), and prints executions and
# coverage per target. A crash leaves its input in build/fuzz/crashes/NAME
# and fails.
#   tests/fuzz/run.sh BIN_DIR SECONDS [JOBS]
set -u
bin=${1:?usage: run.sh BIN_DIR SECONDS [JOBS]}
secs=${2:-60}
jobs=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$bin")

# One target: replay its regressions, fuzz, write one result line to $out/NAME.result.
run_one() {
  local t=$1 name short corpus crashes log result execs cov ft
  name=$(basename "$t"); short=${name#fuzz_}
  corpus="$out/corpus/$short"; crashes="$out/crashes/$short"; log="$out/$short.log"
  mkdir -p "$corpus" "$crashes"
  [ -d "$here/seeds/$short" ] && cp -n "$here/seeds/$short"/* "$corpus"/ 2>/dev/null
  result=clean
  if [ -d "$here/regressions/$short" ] && ls "$here/regressions/$short"/* >/dev/null 2>&1; then
    if ! "$t" "$here/regressions/$short"/* > "$out/$short.replay.log" 2>&1; then
      result="REGRESSION (see $out/$short.replay.log)"
    fi
  fi
  if ! "$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" > "$log" 2>&1; then
    result="CRASH (input in $crashes)"
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-26s %10s %6s %8s %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result" > "$out/$short.result"
}

targets=("$bin"/fuzz_*)
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
printf '%-26s %10s %6s %8s %s\n' target executions cov features result
rc=0
for t in "${targets[@]}"; do
  short=$(basename "$t"); short=${short#fuzz_}
  cat "$out/$short.result"
  grep -q ' clean$' "$out/$short.result" || rc=1
done
echo "($secs s per target, $jobs at a time on $(nproc) cores)"
exit $rc
