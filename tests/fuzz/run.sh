#!/usr/bin/env bash
# Runs every libFuzzer target in $1 for $2 seconds each from its seeds
# (tests/fuzz/seeds/NAME), replays the kept crash inputs
# (tests/fuzz/regressions/NAME), and prints executions and coverage per
# target. A crash leaves its input in build/fuzz/crashes/NAME and fails.
set -u
bin=${1:?usage: run.sh BIN_DIR SECONDS}
secs=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$bin")
rc=0
printf '%-22s %10s %8s %8s %s\n' target executions cov features result
for t in "$bin"/fuzz_*; do
  name=$(basename "$t"); short=${name#fuzz_}
  corpus="$out/corpus/$short"; crashes="$out/crashes/$short"
  mkdir -p "$corpus" "$crashes"
  [ -d "$here/seeds/$short" ] && cp -n "$here/seeds/$short"/* "$corpus"/ 2>/dev/null
  if [ -d "$here/regressions/$short" ] && ls "$here/regressions/$short"/* >/dev/null 2>&1; then
    if ! "$t" "$here/regressions/$short"/* > "$out/$short.replay.log" 2>&1; then
      echo "$name: a kept regression input fails again (see $out/$short.replay.log)"; rc=1
    fi
  fi
  log="$out/$short.log"
  if "$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" > "$log" 2>&1; then
    result=clean
  else
    result="CRASH (input in $crashes)"; rc=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  printf '%-22s %10s %8s %8s %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $rc
