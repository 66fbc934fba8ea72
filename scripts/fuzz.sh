#!/usr/bin/env bash
# Runs the cargo-fuzz targets under fuzz/ one after another, each for SECONDS (default 60), and
# prints per target: executions, final coverage (libFuzzer `cov`/`ft`) and crash inputs found.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # all targets when none is named
#   scripts/fuzz.sh 5                          # smoke run: a few seconds each
#
# Needs the nightly toolchain (rustup) and cargo-fuzz (installed with `cargo install` if missing).
# The growing corpus is kept in fuzz/corpus/<target> (not committed), crash inputs in
# fuzz/artifacts/<target>; copy a fixed crash input to fuzz/regressions/<target>/ so the ordinary
# test run replays it (tests/integration/fuzz_inputs.rs). Exits 1 if any target found a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

rustup toolchain list | grep -q '^nightly' || { echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 2; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

max_len() {
  case "$1" in
    peek_file) echo 80000 ;;
    wasm_module) echo 120000 ;;
    history_json | golden_json | certificate_json) echo 65536 ;;
    # Every kvstore entry costs LtHash work; short payloads keep executions fast.
    payload_*) echo 512 ;;
    *) echo 4096 ;;
  esac
}

mkdir -p fuzz/logs
status=0
printf '%-20s %12s %10s %10s %8s\n' target executions cov ft crashes
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/logs/$t.log"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=4096 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/") >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  crashes=$(( $(find "fuzz/artifacts/$t" -type f | wc -l) - before ))
  [ "$crashes" -gt 0 ] && status=1
  [ -z "$execs" ] && { echo "$t: no final stats; see $log" >&2; status=1; }
  printf '%-20s %12s %10s %10s %8s\n' "$t" "${execs:--}" "${cov:--}" "${ft:--}" "$crashes"
done
exit $status
