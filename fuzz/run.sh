#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (docs/fuzzing.md):
#   fuzz/run.sh [SECONDS [TARGET...]]     (default: 20 seconds, every target)
# Installs cargo-fuzz if missing and builds on stable Rust with RUSTC_BOOTSTRAP=1 (cargo-fuzz
# passes -Z sanitizer flags). Each target starts from its committed seeds, fuzz/corpus/<target>,
# which stay read-only: new inputs go to fuzz/corpus-work/<target> and the libFuzzer log to
# fuzz/corpus-work/<target>.log (git-ignored, replaced at each run). Prints per target the
# executions, exec/s, coverage (cov, ft) and corpus size; exits non-zero if any target
# crashed, leaked, hung or stopped without its final stats (the crashing input is saved in
# fuzz/artifacts/<target>/). Extraction temp folders go to /dev/shm when it is writable (twice
# the executions per second of a disk-backed /tmp), or to FUZZ_TMPDIR if set.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET=${1:-20}
TARGETS=(flow_parse manifest_parse archive_extract store_documents)
if [[ $# -gt 1 ]]; then
  TARGETS=("${@:2}")
fi
fuzz_tmp=${FUZZ_TMPDIR:-/dev/shm}
if [[ ! -d $fuzz_tmp || ! -w $fuzz_tmp ]]; then
  fuzz_tmp=${TMPDIR:-/tmp}
fi
CARGO_FUZZ_VERSION=0.13.2
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cargo fuzz build

failed=()
summary=()
for t in "${TARGETS[@]}"; do
  work=corpus-work/$t
  log=corpus-work/$t.log
  rm -rf "$work" "$log"
  mkdir -p "$work"
  echo "fuzz/run.sh: $t for ${SECONDS_PER_TARGET}s" >&2
  # -timeout: one input running this long is a hang, reported as a failure.
  rc=0
  TMPDIR=$fuzz_tmp cargo fuzz run "$t" "$work" "corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$log")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$done_line")
  if [[ $rc -ne 0 || -z $done_line ]]; then
    failed+=("$t")
    echo "fuzz/run.sh: $t FAILED (exit $rc); the end of its log:" >&2
    tail -n 60 "$log" >&2
    summary+=("$(printf '%-16s FAILED (exit %s) after %s executions; input in fuzz/artifacts/%s/, log in fuzz/%s' \
      "$t" "$rc" "${execs:-?}" "$t" "$log")")
  else
    summary+=("$(printf '%-16s executions %-9s exec/s %-6s cov %-6s ft %-6s corpus %s (entries/bytes)' \
      "$t" "$execs" "$rate" "$cov" "$ft" "$corp")")
  fi
done

echo "fuzz/run.sh: ${SECONDS_PER_TARGET}s per target"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz/run.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
