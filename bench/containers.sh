#!/usr/bin/env bash
# Benchmark: tasks in containers (podman + runc) against the same tasks as host processes.
#
#   1. image sizes     localhost/flowpack-runtime and localhost/flowpack-python (images/build.sh)
#   2. first line      from `podman run … flowpack step` being started to the first line of the
#                      user's code (it prints its own clock), against `flowpack step` started
#                      as a host process, and `podman run IMAGE true` to the container's exit
#   3. whole flows     `flowpack run` of examples/hello and examples/train with and without
#                      --containers (package pushed and env built beforehand)
#
# Usage: bench/containers.sh     (needs target/release/flowpack and the images built)
# Env:   RUNS=10 (item 2), FLOW_RUNS=3 (item 3), FLOWPACK=target/release/flowpack,
#        CONTAINERS_CONF / CONTAINERS_STORAGE_CONF as for podman itself
# Output: markdown tables on stdout, also appended to bench/results/containers-<date>.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK="$ROOT/bench/work/containers"
RESULTS="$ROOT/bench/results"
RUNS=${RUNS:-10}
FLOW_RUNS=${FLOW_RUNS:-3}
FLOWPACK=${FLOWPACK:-$ROOT/target/release/flowpack}
PYTHON_IMAGE=localhost/flowpack-python:3.11
RUNTIME_IMAGE=localhost/flowpack-runtime:latest

say() { printf '[containers.sh] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
[ -x "$FLOWPACK" ] || die "no flowpack at $FLOWPACK: (cd $ROOT && cargo build --release)"
command -v podman >/dev/null || die "podman is not installed"
for i in "$PYTHON_IMAGE" "$RUNTIME_IMAGE"; do
  podman image exists "$i" || die "image $i is missing: run images/build.sh"
done

rm -rf "$WORK" && mkdir -p "$WORK" "$RESULTS"
export FLOWPACK_CACHE_DIR="$WORK/cache"
median() { sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
now() { date +%s.%N; }

out=$(mktemp)
{
  echo "## Containers — $(date -u +%Y-%m-%dT%H:%MZ) — $(podman --version), runc, $(nproc) cores"
  echo
  echo "### 1. Image sizes"
  echo
  echo "| image | size |"
  echo "|---|---|"
  for i in "$RUNTIME_IMAGE" "$PYTHON_IMAGE"; do
    podman image inspect --format '{{.Size}}' "$i" | awk -v i="$i" '{printf "| %s | %.1f MB |\n", i, $1 / 1e6}'
  done
} >>"$out"

# 2. First line of user code. A one-task flow whose code prints the wall clock first thing.
say "first line: $RUNS runs each"
mkdir -p "$WORK/first"
cat >"$WORK/first/flow.yaml" <<'EOF'
name: first
steps:
  start: {run: python3 first.py, next: end}
  end: {run: "true"}
EOF
echo "import time; print('T', time.time(), flush=True)" >"$WORK/first/first.py"
STORE="$WORK/first/store"
pkg=$("$FLOWPACK" push "$WORK/first/flow.yaml" --store "$STORE" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["package"])')
step_args() { echo --store "$STORE" --package "$pkg" --run "bench-$1" --step start --task 0; }
first_line() { # command...: seconds from start to the 'T <clock>' line
  local t0 line
  t0=$(now)
  line=$("$@" 2>&1 | grep -m1 '^T ' || true)
  [ -n "$line" ] || die "no first line from: $*"
  awk -v a="$t0" -v b="${line#T }" 'BEGIN{printf "%.4f\n", b - a}'
}
host=() ctr=() noop=()
for i in $(seq 0 "$RUNS"); do  # run 0 warms the cache and podman
  h=$(first_line "$FLOWPACK" step $(step_args "h$i"))
  c=$(first_line podman run --rm --network host --user 0:0 -v "$WORK:$WORK" \
        -e FLOWPACK_CACHE_DIR="$FLOWPACK_CACHE_DIR" --entrypoint flowpack "$PYTHON_IMAGE" \
        step $(step_args "c$i") --image "$PYTHON_IMAGE")
  t0=$(now); podman run --rm "$PYTHON_IMAGE" true; t1=$(now)
  [ "$i" = 0 ] && continue
  host+=("$h") ctr+=("$c") noop+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}')")
done
{
  echo
  echo "### 2. Start to the first line of user code (median of $RUNS, package cached)"
  echo
  echo "| how | seconds |"
  echo "|---|---|"
  echo "| \`flowpack step\` as a host process | $(printf '%s\n' "${host[@]}" | median) |"
  echo "| \`podman run … $PYTHON_IMAGE flowpack step\` | $(printf '%s\n' "${ctr[@]}" | median) |"
  echo "| \`podman run --rm $PYTHON_IMAGE true\` (start to exit, no flowpack) | $(printf '%s\n' "${noop[@]}" | median) |"
} >>"$out"

# 3. Whole flows with and without --containers.
say "flows: $FLOW_RUNS runs each"
{
  echo
  echo "### 3. Whole flows, \`flowpack run\` wall seconds (median of $FLOW_RUNS; pushed beforehand)"
  echo
  echo "| flow | tasks | processes | --containers | ratio |"
  echo "|---|---|---|---|---|"
} >>"$out"
for ex in hello train; do
  cp -r "$ROOT/examples/$ex" "$WORK/$ex" && rm -rf "$WORK/$ex/.flowpack"
  "$FLOWPACK" push "$WORK/$ex/flow.yaml" >/dev/null 2>&1
  tasks=0
  for mode in plain containers; do
    times=()
    for _ in $(seq "$FLOW_RUNS"); do
      flag=(); [ $mode = containers ] && flag=(--containers)
      t0=$(now)
      json=$("$FLOWPACK" run "$WORK/$ex/flow.yaml" "${flag[@]}" --json 2>/dev/null)
      t1=$(now)
      tasks=$(python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["succeeded"]; print(len(s["tasks"]))' <<<"$json")
      times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')")
    done
    eval "t_$mode=$(printf '%s\n' "${times[@]}" | median)"
  done
  awk -v f="$ex" -v n="$tasks" -v p="$t_plain" -v c="$t_containers" \
    'BEGIN{printf "| %s | %d | %.2f | %.2f | %.2fx |\n", f, n, p, c, c / p}' >>"$out"
done

cat "$out"
cat "$out" >>"$RESULTS/containers-$(date -u +%Y%m%d).md"
rm -f "$out"
