#!/usr/bin/env bash
# Benchmark: Python flows — flowpack against Metaflow, the same flow files side by side.
#
# The flows in bench/flows/ are written once for Metaflow (`from metaflow import ...`); the
# flowpack copy of each is made by changing only that import line (sed), the issue's bar.
# Both sides run `python FLOW.py run` from a fresh folder with the same interpreter (a venv
# with Metaflow and numpy; flowpack's steps run with it through FLOWPACK_PYTHON):
#   1. linear    10 trivial steps (`self.x = 1`): wall and CPU per task
#   2. foreach   start -> 20 trivial foreach tasks -> join -> end: wall per task
#   3. import    the task helper's import time (`import flowpack.task`) against `import metaflow`
#   4. handoff   a 100 MB numpy array from `start` to `consume` (`self.a.sum()`): the step pair
# Metaflow runs with its local datastore and local metadata (METAFLOW_DEFAULT_DATASTORE=local,
# METAFLOW_DEFAULT_METADATA=local, USERNAME set, an empty METAFLOW_HOME); flowpack with a
# local-folder store in its folder.
#
# Usage: bench/python.sh           (from anywhere; needs target/release/flowpack)
# Env:   RUNS=5                    measured rounds of items 1 and 2 (after one warm-up)
#        BIG_RUNS=3                measured rounds of item 4 (after one warm-up)
#        IMPORT_RUNS=20            measured rounds of item 3
#        SIDES="metaflow flowpack" which sides to run (SIDES=metaflow before the flowpack
#                                  Python package exists)
#        FLOWPACK=target/release/flowpack
#        METAFLOW_VERSION=2.19.39  installed once into BENCH_VENV with numpy
#        BENCH_VENV=bench/work/python-venv
# Output: markdown tables on stdout, also appended to bench/results/python-<date>.md.
# Files:  everything it makes lives in bench/work/ (the venv, the flow copies, both stores,
#         logs) and bench/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK="$BENCH/work/python"
RESULTS="$BENCH/results"

RUNS=${RUNS:-5}
BIG_RUNS=${BIG_RUNS:-3}
IMPORT_RUNS=${IMPORT_RUNS:-20}
SIDES=${SIDES:-"metaflow flowpack"}
FLOWPACK=${FLOWPACK:-$ROOT/target/release/flowpack}
METAFLOW_VERSION=${METAFLOW_VERSION:-2.19.39}
VENV=${BENCH_VENV:-$BENCH/work/python-venv}
FLOWS=(linear foreach handoff)
declare -A TASKS=([linear]=10 [foreach]=23 [handoff]=3)

say() { printf '[python.sh] %s\n' "$*" >&2; }
die() { printf '[python.sh] error: %s\n' "$*" >&2; exit 1; }

for n in RUNS BIG_RUNS IMPORT_RUNS; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer (got '${!n}')"
done
for s in $SIDES; do
    [[ "$s" == metaflow || "$s" == flowpack ]] || die "SIDES lists 'metaflow' and/or 'flowpack' (got '$s')"
done
has_side() { [[ " $SIDES " == *" $1 "* ]]; }
command -v python3 >/dev/null || die "python3 not found on PATH (Debian: apt-get install python3 python3-venv)"

# ---------------------------------------------------------------- the venv (once)
PY="$VENV/bin/python"
venv_ok() {
    [[ -x "$PY" ]] && "$PY" -c "import sys, metaflow, numpy; sys.exit(metaflow.__version__ != sys.argv[1])" \
        "$METAFLOW_VERSION" 2>/dev/null
}
if venv_ok; then
    say "reusing $VENV"
else
    say "installing metaflow==$METAFLOW_VERSION and numpy into $VENV (once)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$PY" -m pip install -q "metaflow==$METAFLOW_VERSION" numpy \
        || die "pip install metaflow==$METAFLOW_VERSION numpy into $VENV failed"
    venv_ok || die "$VENV has no metaflow $METAFLOW_VERSION and numpy after installing them"
fi

# ---------------------------------------------------------------- the flowpack side
rm -rf "$WORK"
mkdir -p "$WORK"/{mf,fp,tmp,logs,pkg} "$RESULTS"
TMP="$WORK/tmp"
LOGS="$WORK/logs"
if has_side flowpack; then
    case "$FLOWPACK" in /*) ;; */*) FLOWPACK="$PWD/$FLOWPACK" ;; esac
    [[ -x "$FLOWPACK" ]] || die "flowpack binary not found at $FLOWPACK
  build it with:  (cd $ROOT && cargo build --release)
  or point FLOWPACK at one."
    # `python flow.py run` imports flowpack before it hands over to the binary: the flow's
    # interpreter needs the package. A copy, so that its __pycache__ stays out of the tree.
    [[ -f "$ROOT/python/flowpack/flowspec.py" ]] || die "no Python package in $ROOT/python/flowpack (flowspec.py):
  the flowpack side needs issue 11's Python package; run SIDES=metaflow $0 for the Metaflow side alone."
    cp -r "$ROOT/python/flowpack" "$WORK/pkg/"
    find "$WORK/pkg" -name __pycache__ -prune -exec rm -rf {} +
    PYTHONPATH="$WORK/pkg" "$PY" -c "from flowpack import FlowSpec, step" 2>"$TMP/import.err" \
        || die "'from flowpack import FlowSpec, step' fails with $PY:
$(cat "$TMP/import.err")"
fi

# ---------------------------------------------------------------- the flows
# Each flow alone in its folder (its folder is flowpack's code layer); the flowpack copy
# differs from Metaflow's by the import line only, which is checked.
for f in "${FLOWS[@]}"; do
    src="$BENCH/flows/$f.py"
    mkdir -p "$WORK/mf/$f" "$WORK/fp/$f"
    cp "$src" "$WORK/mf/$f/$f.py"
    sed 's/^from metaflow import /from flowpack import /' "$src" >"$WORK/fp/$f/$f.py"
    changed=$(diff "$src" "$WORK/fp/$f/$f.py" | grep -c '^>' || true)
    [[ "$changed" == 1 ]] || die "$src: the flowpack copy must differ in exactly one line (the import), not $changed"
    ! grep -qE '^(from|import) metaflow' "$WORK/fp/$f/$f.py" || die "$src imports metaflow twice"
done
# Metaflow looks for .metaflow upward from the current folder and makes it there when none
# is found: made here so that it can never find one further up.
mkdir -p "$WORK/mf/.metaflow" "$WORK/mf-home"

# ---------------------------------------------------------------- measuring
# Times come from wait4()'s rusage (what GNU time reads) with microsecond resolution; the
# rusage of a reaped child includes every descendant it reaped (Metaflow's and flowpack's
# runtimes wait for their tasks), so CPU is that of the whole process tree.
cat >"$TMP/measure.py" <<'PY'
"""measure.py RESULTS NAME STDOUT STDERR -- CMD...: runs CMD, appends one JSON line to RESULTS
(wall seconds from a monotonic clock around spawn..reap; user, sys CPU seconds and peak RSS
in KiB of the largest process from wait4(), descendants included; the exit code)."""
import json, os, subprocess, sys, time
res, name, out, err, sep, *cmd = sys.argv[1:]
assert sep == "--", sep
with open(out, "wb") as fo, open(err, "wb") as fe:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    p.returncode = rc = os.waitstatus_to_exitcode(status)
with open(res, "a") as f:
    f.write(json.dumps({"name": name, "wall": t1 - t0, "user": ru.ru_utime, "sys": ru.ru_stime,
                        "maxrss_kib": ru.ru_maxrss, "rc": rc}) + "\n")
sys.exit(0 if rc == 0 else 1)
PY

# timed KIND NAME CMD...: measures CMD into $TMP/m-KIND.jsonl (kind "warmup" is kept apart);
# stdout and stderr go to $TMP/NAME.out and .err; dies with the stderr on a failure.
timed() {
    local kind=$1 name=$2; shift 2
    if ! python3 "$TMP/measure.py" "$TMP/m-$kind.jsonl" "$name" "$TMP/$name.out" "$TMP/$name.err" -- "$@"; then
        cp "$TMP/$name.out" "$TMP/$name.err" "$LOGS/" 2>/dev/null || true
        die "FAILED ($kind/$name): $*
stderr (last 40 lines; all in $LOGS/$name.err):
$(tail -40 "$TMP/$name.err")"
    fi
}

# The environment of each side; nothing else of the caller's Metaflow/flowpack settings.
for v in $(compgen -e); do
    case "$v" in METAFLOW_* | FLOWPACK_*) unset "$v" ;; esac
done
unset PYTHONPATH
# Python writes its bytecode cache unless told not to, as on a user's machine: a caller's
# PYTHONDONTWRITEBYTECODE would make every flowpack task compile the package again (the
# venv's Metaflow has its .pyc from pip). Item 3 measures the no-cache case on its own.
unset PYTHONDONTWRITEBYTECODE
mf() {
    (cd "$WORK/mf" && env METAFLOW_DEFAULT_DATASTORE=local METAFLOW_DEFAULT_METADATA=local \
        METAFLOW_HOME="$WORK/mf-home" USERNAME=bench "$@")
}
fp() {
    (cd "$WORK/fp" && env FLOWPACK_BIN="$FLOWPACK" FLOWPACK_PYTHON="$PY" PYTHONPATH="$WORK/pkg" \
        FLOWPACK_STORE="$WORK/fp/.flowpack" FLOWPACK_CACHE_DIR="$WORK/fp/cache" USERNAME=bench "$@")
}
# run_side SIDE KIND NAME FLOW [ENV=VALUE...]: `python FLOW/FLOW.py run` on one side.
run_side() {
    local side=$1 kind=$2 name=$3 flow=$4; shift 4
    case "$side" in
        metaflow) mf env "$@" python3 "$TMP/measure.py" "$TMP/m-$kind.jsonl" "$name" "$TMP/$name.out" \
            "$TMP/$name.err" -- "$PY" "$flow/$flow.py" run ;;
        flowpack) fp env "$@" python3 "$TMP/measure.py" "$TMP/m-$kind.jsonl" "$name" "$TMP/$name.out" \
            "$TMP/$name.err" -- "$PY" "$flow/$flow.py" run ;;
        flowpack-bin) fp env "$@" python3 "$TMP/measure.py" "$TMP/m-$kind.jsonl" "$name" "$TMP/$name.out" \
            "$TMP/$name.err" -- "$FLOWPACK" run "$flow/$flow.py" ;;
    esac || {
        cp "$TMP/$name.out" "$TMP/$name.err" "$LOGS/" 2>/dev/null || true
        die "FAILED ($side $kind/$name): python $flow/$flow.py run
stderr (last 40 lines; all in $LOGS/$name.err):
$(tail -40 "$TMP/$name.err")"
    }
}
RUN_SIDES=()
if has_side metaflow; then RUN_SIDES+=(metaflow); fi
if has_side flowpack; then RUN_SIDES+=(flowpack flowpack-bin); fi

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- 1. and 2. linear, foreach
for flow in linear foreach; do
    for side in "${RUN_SIDES[@]}"; do
        say "$flow: $side, one warm-up"
        run_side "$side" warmup "$flow-$side-0" "$flow"
    done
    for i in $(seq 1 "$RUNS"); do
        for side in "${RUN_SIDES[@]}"; do
            say "$flow: $side, round $i/$RUNS"
            run_side "$side" "$flow-$side" "$flow-$side-$i" "$flow"
        done
    done
done

# ---------------------------------------------------------------- 4. handoff (100 MB)
# Rounds with the 100 MB array and with one value (BENCH_ARRAY_MB=0): the difference is
# what handing the array over costs. The store's growth over one 100 MB run is recorded too.
HANDOFF_SIDES=()
if has_side metaflow; then HANDOFF_SIDES+=(metaflow); fi
if has_side flowpack; then HANDOFF_SIDES+=(flowpack); fi
store_of() { [[ $1 == metaflow ]] && echo "$WORK/mf/.metaflow" || echo "$WORK/fp/.flowpack"; }
for side in "${HANDOFF_SIDES[@]}"; do
    say "handoff: $side, one warm-up"
    run_side "$side" warmup "handoff-$side-0" handoff BENCH_ARRAY_MB=100
done
for i in $(seq 1 "$BIG_RUNS"); do
    for side in "${HANDOFF_SIDES[@]}"; do
        say "handoff: $side, round $i/$BIG_RUNS"
        before=$(du -sb "$(store_of "$side")" | cut -f1)
        run_side "$side" "handoff-$side" "handoff-$side-$i" handoff BENCH_ARRAY_MB=100
        echo "$(( $(du -sb "$(store_of "$side")" | cut -f1) - before ))" >>"$TMP/store-growth-$side"
        run_side "$side" "handoff0-$side" "handoff0-$side-$i" handoff BENCH_ARRAY_MB=0
    done
done
# flowpack's own view of the last 100 MB run: phases of its tasks.
if has_side flowpack; then
    last=$(sed -n 's/^run \([^ ]*\) of flow.*/\1/p' "$TMP/handoff-flowpack-$BIG_RUNS.err" "$TMP/handoff-flowpack-$BIG_RUNS.out" | head -1)
    if [[ -n "$last" ]]; then
        "$FLOWPACK" show "$last" --store "$WORK/fp/.flowpack" --json >"$TMP/handoff-show.json" 2>"$TMP/handoff-show.err" \
            || say "flowpack show $last failed (phases left out): $(cat "$TMP/handoff-show.err")"
    fi
fi

# ---------------------------------------------------------------- 3. import time
# `python -c pass`, `import flowpack.task` and `import metaflow`, interleaved; each process
# timed from spawn to reap. flowpack.task is imported from the copy the binary wrote into its
# cache for the tasks above (what a task imports) when there is one, else from the tree.
TASK_PKG=""
if has_side flowpack; then
    TASK_PKG=$(find "$WORK/fp/cache" -path '*/python/*/flowpack/task.py' 2>/dev/null | head -1)
    TASK_PKG=${TASK_PKG%/flowpack/task.py}
    [[ -n "$TASK_PKG" ]] || TASK_PKG="$WORK/pkg"
    echo "$TASK_PKG" >"$TMP/task-pkg"
    # Whether the binary's copy holds compiled bytecode after the tasks (read-only files in a folder).
    find "$TASK_PKG" -name '*.pyc' | wc -l >"$TMP/task-pkg-pyc"
    # The same files without a bytecode cache: what the first task in a fresh pod imports.
    mkdir -p "$TMP/cold"
    cp -r "$TASK_PKG/flowpack" "$TMP/cold/"
    chmod -R u+w "$TMP/cold"
    find "$TMP/cold" -name __pycache__ -prune -exec rm -rf {} +
fi
say "import time: $IMPORT_RUNS rounds"
for i in $(seq 0 "$IMPORT_RUNS"); do
    kind=imp; [[ $i == 0 ]] && kind=warmup
    timed "$kind-pass" "imp-pass-$i" "$PY" -c pass
    if has_side flowpack; then
        timed "$kind-flowpack" "imp-flowpack-$i" env PYTHONPATH="$TASK_PKG" "$PY" -c "import flowpack.task"
        timed "$kind-flowpack-cold" "imp-flowpack-cold-$i" env PYTHONPATH="$TMP/cold" PYTHONDONTWRITEBYTECODE=1 \
            "$PY" -c "import flowpack.task"
    fi
    if has_side metaflow; then timed "$kind-metaflow" "imp-metaflow-$i" "$PY" -c "import metaflow"; fi
done
# Python's own account (-X importtime, cumulative microseconds of the top module), 5 times.
for i in 1 2 3 4 5; do
    if has_side flowpack; then
        PYTHONPATH="$TASK_PKG" "$PY" -X importtime -c "import flowpack.task" 2>>"$TMP/importtime-flowpack.txt"
    fi
    if has_side metaflow; then "$PY" -X importtime -c "import metaflow" 2>>"$TMP/importtime-metaflow.txt"; fi
done

LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
DATE=$(date +%Y-%m-%d)
STAMP_TIME=$(date -u +%H:%M)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)
MACHINE="$(nproc) cores, ${CPU_MODEL:-unknown}, $(uname -sr)"
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then REV="$REV+dirty"; fi
FP_VER=$(has_side flowpack && "$FLOWPACK" --version 2>/dev/null || echo "flowpack (not run)")
VERSIONS=$("$PY" -c 'import sys, metaflow, numpy; print(f"Python {sys.version.split()[0]}, Metaflow {metaflow.__version__}, numpy {numpy.__version__}")')
REPORT="$RESULTS/python-$DATE.md"

python3 - "$TMP" "$RUNS" "$BIG_RUNS" "$IMPORT_RUNS" "$SIDES" "$DATE $STAMP_TIME UTC" \
    "$MACHINE, load average before $LOAD_BEFORE, after $LOAD_AFTER" "$REV" "$FP_VER" "$VERSIONS" \
    "$VENV" >"$TMP/report.md" <<'PY'
import json, os, re, statistics, sys
from datetime import datetime
tmp, runs, big_runs, import_runs, sides, date, machine, rev, fp_ver, versions, venv = sys.argv[1:]
runs, big_runs, import_runs = int(runs), int(big_runs), int(import_runs)
sides = sides.split()
med = statistics.median
TASKS = {"linear": 10, "foreach": 23, "handoff": 3}

def load(kind):
    p = f"{tmp}/m-{kind}.jsonl"
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []

def cpu(r):
    return r["user"] + r["sys"]

def text(name):
    out = ""
    for ext in ("out", "err"):
        p = f"{tmp}/{name}.{ext}"
        if os.path.exists(p):
            out += open(p, errors="replace").read()
    return out

MF_LINE = re.compile(r"^(\S+ \S+) \[(\S+) \(pid \d+\)\] Task (is starting|finished successfully)", re.M)
FP_LINE = re.compile(r"^\[(\S+)\] Succeeded in ([0-9.]+)s", re.M)

def task_seconds(side, name):
    """{pathspec or run/step/task: seconds from its start to its end, as the runtime logged it}."""
    t = text(name)
    if side == "metaflow":
        start, out = {}, {}
        for ts, path, what in MF_LINE.findall(t):
            at = datetime.strptime(ts, "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if what == "is starting":
                start[path] = at
            elif path in start:
                out[path] = at - start[path]
        return out
    return {path: float(s) for path, s in FP_LINE.findall(t)}

def step_of(path):
    return path.split("/")[-2]

def ratio(a, b):
    return f"**{a / b:.1f}x**" if a and b else "-"

LABEL = {"metaflow": "Metaflow `python flow.py run`", "flowpack": "flowpack `python flow.py run`",
         "flowpack-bin": "flowpack `flowpack run flow.py`"}
SIDE_ORDER = [s for s in ("metaflow", "flowpack", "flowpack-bin") if s in sides or (s == "flowpack-bin" and "flowpack" in sides)]

out = []
W = out.append
W(f"## python benchmark, {date}")
W("")
W(f"- machine: {machine}")
W(f"- {versions} (venv {venv}); {fp_ver} (git {rev})")
W(f"- runs: items 1-2 {runs} measured rounds, item 4 {big_runs}, item 3 {import_runs} (each after one warm-up); "
  "wall = monotonic clock around spawn..reap of the whole command; CPU = user+sys from wait4() of it, "
  "every process it reaped included (the runtimes reap their tasks); medians over the rounds")
W("- Metaflow: `METAFLOW_DEFAULT_DATASTORE=local METAFLOW_DEFAULT_METADATA=local USERNAME=bench`, an empty "
  "`METAFLOW_HOME`, its `.metaflow` in a fresh folder; pylint is not installed (Metaflow skips that check). "
  "flowpack: `FLOWPACK_PYTHON` = the same venv's python, a local-folder store and node cache in a fresh folder. "
  "The flowpack flow files are Metaflow's with only the import line changed (sed). Both run up to 16 tasks at once (their default).")

summary = []
for flow, title in (("linear", "1. linear flow of 10 trivial steps (`self.x = 1`)"),
                    ("foreach", "2. foreach of 20 trivial tasks (start, 20 x work, join, end: 23 tasks)")):
    n = TASKS[flow]
    W("")
    W(f"### {title}")
    W("")
    W("| side | median wall s | min wall s | wall / task ms | median CPU s | CPU / task ms | task seconds as logged, median ms | Metaflow / this (wall) | Metaflow / this (CPU) |")
    W("|---|---|---|---|---|---|---|---|---|")
    base = None
    for side in SIDE_ORDER:
        rows = load(f"{flow}-{side}")
        if not rows:
            continue
        wall = med([r["wall"] for r in rows]); c = med([cpu(r) for r in rows])
        ts = [s for i in range(1, runs + 1) for s in task_seconds(side, f"{flow}-{side}-{i}").values()]
        if side == "metaflow":
            base = (wall, c)
        rw = ratio(base[0], wall) if base and side != "metaflow" else "1.0x" if side == "metaflow" else "-"
        rc = ratio(base[1], c) if base and side != "metaflow" else "1.0x" if side == "metaflow" else "-"
        W(f"| {LABEL[side]} | {wall:.3f} | {min(r['wall'] for r in rows):.3f} | {wall / n * 1e3:.1f} | {c:.3f} | "
          f"{c / n * 1e3:.1f} | {med(ts) * 1e3 if ts else float('nan'):.0f} | {rw} | {rc} |")
        summary.append((flow, side, wall / n, c / n))
    W("")
    W("Raw wall seconds: " + "; ".join(f"{s} " + ", ".join(f"{r['wall']:.3f}" for r in load(f"{flow}-{s}"))
                                       for s in SIDE_ORDER))

# ---- 3. import time
W("")
W("### 3. import time of the task helper")
W("")
W(f"Each a fresh `python -c ...` of the venv's interpreter, median of {import_runs}; the cost of the import is the "
  "median wall minus that of `python -c pass`. `-X importtime`: Python's own cumulative figure for the top module, median of 5.")
W("")
def importtime(side, mod):
    p = f"{tmp}/importtime-{side}.txt"
    if not os.path.exists(p):
        return None
    vals = []
    for l in open(p):
        parts = [x.strip() for x in l.split("|")]
        if len(parts) == 3 and parts[2] == mod:
            vals.append(int(parts[1]))
    return med(vals) / 1e6 if vals else None
passw = load("imp-pass")
p_w = med([r["wall"] for r in passw]) if passw else 0.0
W("| command | median wall ms | minus `python -c pass` ms | median CPU ms | `-X importtime` cumulative ms | target |")
W("|---|---|---|---|---|---|")
W(f"| `python -c pass` | {p_w * 1e3:.1f} | 0 | {med([cpu(r) for r in passw]) * 1e3:.1f} | | |")
imp = {}
pkg = open(f"{tmp}/task-pkg").read().strip() if os.path.exists(f"{tmp}/task-pkg") else ""
for side, cmd, mod in (("flowpack", "import flowpack.task", "flowpack.task"),
                       ("flowpack-cold", "import flowpack.task", None),
                       ("metaflow", "import metaflow", "metaflow")):
    rows = load(f"imp-{side}")
    if not rows:
        continue
    w = med([r["wall"] for r in rows]); it = importtime(side, mod) if mod else None
    imp[side] = w - p_w
    tgt = f"< 30 ms: {'**met**' if w - p_w < 0.030 else '**NOT met**'}" if side == "flowpack" else ""
    note = ", no bytecode cache (a fresh pod's first task)" if side == "flowpack-cold" else ""
    W(f"| `python -c \"{cmd}\"`{note} | {w * 1e3:.1f} | **{(w - p_w) * 1e3:.1f}** | {med([cpu(r) for r in rows]) * 1e3:.1f} | "
      f"{f'{it * 1e3:.1f}' if it is not None else '-'} | {tgt} |")
if "flowpack" in imp and "metaflow" in imp and imp["flowpack"] > 0:
    W("")
    W(f"`import metaflow` / `import flowpack.task` (minus `pass`): **{imp['metaflow'] / imp['flowpack']:.1f}x**.")
def heaviest(side, n=8):
    p = f"{tmp}/importtime-{side}.txt"
    if not os.path.exists(p):
        return []
    by = {}
    for l in open(p):
        parts = [x.strip() for x in l.split("|")]
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].isdigit():
            by.setdefault(parts[2].strip(), []).append(int(parts[0].split(":")[1]))
    return sorted(((med(v) / 1e3, m) for m, v in by.items()), reverse=True)[:n]
h = heaviest("flowpack")
if h:
    W("")
    W("Largest self times under `import flowpack.task` (`-X importtime`, median ms): "
      + ", ".join(f"`{m}` {t:.1f}" for t, m in h) + ".")
if pkg:
    pyc = open(f"{tmp}/task-pkg-pyc").read().strip() if os.path.exists(f"{tmp}/task-pkg-pyc") else "?"
    W(f"flowpack.task imported from `{pkg.replace(os.path.dirname(os.path.dirname(tmp)), 'bench/work')}` "
      f"(the copy the binary writes for its tasks when one was found; {pyc} `.pyc` files in it after the runs).")

# ---- 4. handoff
W("")
W("### 4. handing a 100 MB numpy array from one step to the next")
W("")
W("`start`: `self.a = np.random.rand(13_107_200)` (100 MiB of float64); `consume`: `self.a.sum()`; `end` does not read it. "
  "The same flow with `BENCH_ARRAY_MB=0` (a one-value array) is the baseline: the difference is what the hand-over costs "
  "(making and summing the array, ~0.1 s of numpy, is in both). Step pair = the `start` and `consume` tasks' seconds "
  "as each runtime logged them (Metaflow: its `Task is starting` / `finished` timestamps; flowpack: `Succeeded in`).")
W("")
W("| side | run wall s (100 MB) | run wall s (baseline) | difference s | step pair s (100 MB) | start s | consume s | CPU s (100 MB run) | peak RSS MB (largest process) | store growth per run MB |")
W("|---|---|---|---|---|---|---|---|---|---|")
pair = {}
for side in ("metaflow", "flowpack"):
    rows = load(f"handoff-{side}"); base = load(f"handoff0-{side}")
    if not rows:
        continue
    st, co = [], []
    for i in range(1, big_runs + 1):
        ts = task_seconds(side, f"handoff-{side}-{i}")
        st += [s for p, s in ts.items() if step_of(p) == "start"]
        co += [s for p, s in ts.items() if step_of(p) == "consume"]
    w = med([r["wall"] for r in rows]); b = med([r["wall"] for r in base]) if base else float("nan")
    pair[side] = (med(st) + med(co)) if st and co else None
    growth = [int(l) for l in open(f"{tmp}/store-growth-{side}")] if os.path.exists(f"{tmp}/store-growth-{side}") else []
    W(f"| {LABEL[side]} | {w:.2f} | {b:.2f} | {w - b:.2f} | **{pair[side] if pair[side] is not None else float('nan'):.2f}** | "
      f"{med(st) if st else float('nan'):.2f} | {med(co) if co else float('nan'):.2f} | {med([cpu(r) for r in rows]):.2f} | "
      f"{med([r['maxrss_kib'] for r in rows]) / 1024:.0f} | {med(growth) / 2**20 if growth else float('nan'):.1f} |")
    summary.append(("handoff", side, w, pair[side]))
if pair.get("metaflow") and pair.get("flowpack"):
    W("")
    W(f"Step pair, Metaflow / flowpack: **{pair['metaflow'] / pair['flowpack']:.1f}x**.")
shp = f"{tmp}/handoff-show.json"
if os.path.exists(shp):
    try:
        show = json.load(open(shp))
        W("")
        W("flowpack's phases of the last 100 MB run (`flowpack show RUN --json`), seconds "
          "(`run` = the Python child, pickling and unpickling included; `outputs` = hashing, compressing and storing the artifacts; `inputs` = restoring them):")
        W("")
        ph = ("claim", "fetch", "inputs", "run", "outputs", "commit", "report")
        W("| task | " + " | ".join(ph) + " |")
        W("|---|" + "---|" * len(ph))
        for t in show["tasks"]:
            rec = t["attempts"][-1]["record"]
            W(f"| {t['task']} | " + " | ".join(f"{rec.get('phases', {}).get(p, 0.0):.3f}" for p in ph) + " |")
    except (ValueError, KeyError, IndexError) as e:
        W(f"(flowpack show output not readable: {e})")
W("")
W("Raw wall seconds: " + "; ".join(f"{k} " + ", ".join(f"{r['wall']:.2f}" for r in load(k))
                                   for k in ("handoff-metaflow", "handoff0-metaflow", "handoff-flowpack", "handoff0-flowpack")))

# ---- targets
W("")
W("### Targets")
W("")
W("| target | figure | |")
W("|---|---|---|")
lin = {s: (w, c) for f, s, w, c in summary if f == "linear"}
if "metaflow" in lin and "flowpack" in lin:
    r = lin["metaflow"][0] / lin["flowpack"][0]
    W(f"| trivial Python task: flowpack >= 10x less wall per task than Metaflow | {lin['flowpack'][0] * 1e3:.1f} ms vs "
      f"{lin['metaflow'][0] * 1e3:.1f} ms: {r:.1f}x | {'**met**' if r >= 10 else '**NOT met**'} |")
elif "metaflow" in lin:
    W(f"| trivial Python task: flowpack >= 10x less wall per task than Metaflow | Metaflow {lin['metaflow'][0] * 1e3:.1f} ms a task; flowpack not run | - |")
if "flowpack" in imp:
    W(f"| `import flowpack.task` < 30 ms | {imp['flowpack'] * 1e3:.1f} ms | {'**met**' if imp['flowpack'] < 0.030 else '**NOT met**'} |")
print("\n".join(out))
PY
cat "$TMP/report.md"
# Several runs on one day accumulate in that day's file.
{ [[ -s "$REPORT" ]] && echo; cat "$TMP/report.md"; } >>"$REPORT"
cp "$TMP"/*.out "$TMP"/*.err "$TMP"/*.jsonl "$LOGS/" 2>/dev/null || true
say "appended to $REPORT (commands' output kept in $LOGS)"
