#!/usr/bin/env bash
# Benchmark: restoring a task's inputs from the node cache — what copying instead of
# hard-linking (issue 10: a task must not be able to change the cache) costs.
#
# For each artifact size, a flow `start` (writes one artifact of random bytes) -> `end`
# (`true`) runs once on a local-folder store, which fills the node cache; then `flowpack
# step` of `end` runs RUNS more times on the warm cache, and its `inputs` phase (from the
# attempt's task.json) is what restoring the input from the cache costs. Side by side, in
# the same run and on the same file system: `cp --reflink=auto` of the cached blob (the
# anchor: what a copy costs) and `ln` (what the hard link it replaces cost).
#
# Usage: bench/inputs.sh          (needs target/release/flowpack, python3, GNU coreutils)
# Env:   RUNS=5  SIZES_MB="1 100 1024"  FLOWPACK=target/release/flowpack
# Output: a markdown table on stdout, also appended to bench/results/inputs-<date>.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK="$ROOT/bench/work/inputs"
RESULTS="$ROOT/bench/results"
RUNS=${RUNS:-5}
SIZES_MB=${SIZES_MB:-"1 100 1024"}
FLOWPACK=${FLOWPACK:-$ROOT/target/release/flowpack}
case "$FLOWPACK" in /*) ;; *) FLOWPACK="$PWD/$FLOWPACK" ;; esac
[[ -x "$FLOWPACK" ]] || { echo "inputs.sh: no flowpack at $FLOWPACK (cargo build --release)" >&2; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK" "$RESULTS"
trap 'rm -rf "$WORK"' EXIT

# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# seconds a command takes, to 0.1 ms
secs() { python3 -c 'import subprocess,sys,time; t=time.perf_counter(); subprocess.run(sys.argv[1:],check=True); print(f"{time.perf_counter()-t:.4f}")' "$@"; }

table="| artifact | flowpack inputs phase (copy) | cp --reflink=auto | ln (before) | flowpack / cp |
|---|---|---|---|---|"
for mb in $SIZES_MB; do
    dir="$WORK/$mb"
    mkdir -p "$dir"
    cat >"$dir/flow.yaml" <<YAML
name: inputs
steps:
  start: {run: "head -c ${mb}M /dev/urandom > \$FLOWPACK_OUTPUT_DIR/data", next: end}
  end: {run: "true"}
YAML
    export FLOWPACK_CACHE_DIR="$dir/cache"
    run=$(cd "$dir" && "$FLOWPACK" run flow.yaml --json)
    run_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["run"])' <<<"$run")
    package=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["package"])' <<<"$run")
    # The first end task filled the cache; later ones restore from it.
    blob=$(find "$dir/cache" -path '*/blobs/*' -type f -size +$((mb * 1024 - 1))k | head -1)
    [[ -n "$blob" ]] || { echo "inputs.sh: no cached blob of ${mb} MB" >&2; exit 1; }
    fp=() cp_t=() ln_t=()
    for i in $(seq 1 "$RUNS"); do
        (cd "$dir" && "$FLOWPACK" step --store .flowpack --package "$package" --run "$run_id" \
            --step end --parent start/0 >/dev/null 2>&1)
        fp+=("$(python3 - "$dir/.flowpack/v1/runs/inputs/$run_id/end/0" <<'PY'
import json, os, sys
d = sys.argv[1]
last = max(int(a) for a in os.listdir(d))
print(json.load(open(os.path.join(d, str(last), "task.json")))["phases"]["inputs"])
PY
)")
        rm -f "$dir/copy" "$dir/link"
        sync
        cp_t+=("$(secs cp --reflink=auto "$blob" "$dir/copy")")
        ln_t+=("$(secs ln "$blob" "$dir/link")")
    done
    f=$(printf '%s\n' "${fp[@]}" | median)
    c=$(printf '%s\n' "${cp_t[@]}" | median)
    l=$(printf '%s\n' "${ln_t[@]}" | median)
    ratio=$(python3 -c "print(f'{$f/$c:.2f}x')")
    table+="
| ${mb} MB | ${f} s | ${c} s | ${l} s | ${ratio} |"
    rm -rf "$dir"
done

out="## $(date -u +%Y-%m-%dT%H:%MZ), RUNS=$RUNS, $(uname -m), $(nproc) cores, $(df -T "$ROOT" | awk 'NR==2{print $2}')

Medians. flowpack's inputs phase includes reading the parent's artifacts.json from the
store; cp and ln are timed as whole processes (~1 ms of process start each).

$table
"
printf '%s\n' "$out"
printf '%s\n' "$out" >>"$RESULTS/inputs-$(date -u +%F).md"
