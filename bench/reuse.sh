#!/usr/bin/env bash
# Benchmark: reusing work — `resume` against Metaflow's, and flowpack's step cache.
#
# One flow file, bench/flows/resume.py (10 steps in a line: start, s1..s8, end), written for
# Metaflow; the flowpack copy differs by the import line only (sed), as in python.sh. Step 8
# (s7) raises while the file $BENCH_FAIL_MARKER exists (a path outside the flow's folder, so
# the marker is not part of flowpack's code). Each round, on both sides, in a fresh store:
#   1. resume   `python resume.py run` with the marker (fails at s7; 7 tasks committed), the
#               marker removed (the "fix"), then `python resume.py resume --origin-run-id RUN`:
#               wall time, and how many tasks each re-ran and how many it cloned/reused
#               (Metaflow: its "Task is starting" / "Cloning previously run task" lines;
#               flowpack: the task records of `flowpack show RUN --json`).
#   2. cache    the fixed flow run twice more in another fresh store: the first run, then a
#               second identical run. flowpack reuses every task from its step cache;
#               Metaflow has no content cache (its second run runs all 10 tasks: shown for
#               scale). flowpack's `flowpack run --no-cache` (the Python face has no
#               --no-cache) against `flowpack run` of the same store gives the cache's effect
#               with the same interface on both sides of the ratio.
# Metaflow runs with its local datastore and metadata, flowpack with a local-folder store;
# the same venv Python runs both (bench/work/python-venv, shared with python.sh).
#
# Usage: bench/reuse.sh            (from anywhere; needs target/release/flowpack)
# Env:   RUNS=3                    measured rounds (after one warm-up round)
#        STEP_SECONDS=0            each step sleeps this long (its stand-in work)
#        FLOWPACK=target/release/flowpack
#        METAFLOW_VERSION=2.19.39  installed once into BENCH_VENV with numpy
#        BENCH_VENV=bench/work/python-venv
# Output: markdown tables on stdout, also appended to bench/results/reuse-<date>.md.
# Files:  everything it makes lives in bench/work/reuse/ (flow copies, stores, logs), the
#         venv in BENCH_VENV, and bench/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK="$BENCH/work/reuse"
RESULTS="$BENCH/results"

RUNS=${RUNS:-3}
STEP_SECONDS=${STEP_SECONDS:-0}
FLOWPACK=${FLOWPACK:-$ROOT/target/release/flowpack}
METAFLOW_VERSION=${METAFLOW_VERSION:-2.19.39}
VENV=${BENCH_VENV:-$BENCH/work/python-venv}

say() { printf '[reuse.sh] %s\n' "$*" >&2; }
die() { printf '[reuse.sh] error: %s\n' "$*" >&2; exit 1; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ "$STEP_SECONDS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "STEP_SECONDS must be a number of seconds (got '$STEP_SECONDS')"
command -v python3 >/dev/null || die "python3 not found on PATH (Debian: apt-get install python3 python3-venv)"
case "$FLOWPACK" in /*) ;; */*) FLOWPACK="$PWD/$FLOWPACK" ;; esac
[[ -x "$FLOWPACK" ]] || die "flowpack binary not found at $FLOWPACK
  build it with:  (cd $ROOT && cargo build --release)
  or point FLOWPACK at one."
[[ -f "$ROOT/python/flowpack/flowspec.py" ]] || die "no Python package in $ROOT/python/flowpack (flowspec.py)"

# ---------------------------------------------------------------- the venv (once; as python.sh)
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

# ---------------------------------------------------------------- the work folder
rm -rf "$WORK"
mkdir -p "$WORK"/{tmp,logs,pkg,flows/mf,flows/fp} "$RESULTS"
TMP="$WORK/tmp"
LOGS="$WORK/logs"
MARKER="$WORK/FAIL"
# The flow's interpreter imports flowpack before it hands over to the binary: a copy of the
# package, so that its __pycache__ stays out of the tree.
cp -r "$ROOT/python/flowpack" "$WORK/pkg/"
find "$WORK/pkg" -name __pycache__ -prune -exec rm -rf {} +
SRC="$BENCH/flows/resume.py"
cp "$SRC" "$WORK/flows/mf/resume.py"
sed 's/^from metaflow import /from flowpack import /' "$SRC" >"$WORK/flows/fp/resume.py"
changed=$(diff "$SRC" "$WORK/flows/fp/resume.py" | grep -c '^>' || true)
[[ "$changed" == 1 ]] || die "$SRC: the flowpack copy must differ in exactly one line (the import), not $changed"

# ---------------------------------------------------------------- measuring
# As python.sh: wall from a monotonic clock around spawn..reap, CPU from wait4() (every
# process the command reaped included). EXPECT is ok or fail: a run that ends otherwise is
# an error of the benchmark.
cat >"$TMP/measure.py" <<'PY'
"""measure.py RESULTS NAME EXPECT STDOUT STDERR -- CMD...: runs CMD, appends one JSON line to
RESULTS (wall seconds, user and sys CPU seconds of the process tree, the exit code); exits 0
when CMD's exit code is as EXPECTed (ok: 0, fail: not 0)."""
import json, os, subprocess, sys, time
res, name, expect, out, err, sep, *cmd = sys.argv[1:]
assert sep == "--" and expect in ("ok", "fail"), (sep, expect)
with open(out, "wb") as fo, open(err, "wb") as fe:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    rc = os.waitstatus_to_exitcode(status)
with open(res, "a") as f:
    f.write(json.dumps({"name": name, "wall": t1 - t0, "user": ru.ru_utime, "sys": ru.ru_stime,
                        "rc": rc}) + "\n")
sys.exit(0 if (rc == 0) == (expect == "ok") else 1)
PY

# Nothing of the caller's Metaflow/flowpack settings; bytecode written as on a user's machine.
for v in $(compgen -e); do
    case "$v" in METAFLOW_* | FLOWPACK_*) unset "$v" ;; esac
done
unset PYTHONPATH PYTHONDONTWRITEBYTECODE
export BENCH_FAIL_MARKER="$MARKER" BENCH_STEP_SECONDS="$STEP_SECONDS"

# mf DIR CMD...: CMD in DIR with Metaflow's local datastore in DIR/.metaflow (made here, so
# that Metaflow can never find one further up).
mf() {
    local dir=$1; shift
    mkdir -p "$dir/.metaflow" "$dir/home"
    (cd "$dir" && env METAFLOW_DEFAULT_DATASTORE=local METAFLOW_DEFAULT_METADATA=local \
        METAFLOW_HOME="$dir/home" USERNAME=bench "$@")
}
# fp DIR CMD...: CMD in DIR with flowpack's store in DIR/.flowpack; one node cache for all.
fp() {
    local dir=$1; shift
    (cd "$dir" && env FLOWPACK_BIN="$FLOWPACK" FLOWPACK_PYTHON="$PY" PYTHONPATH="$WORK/pkg" \
        FLOWPACK_STORE="$dir/.flowpack" FLOWPACK_CACHE_DIR="$WORK/node-cache" USERNAME=bench "$@")
}
# timed SIDE DIR KIND NAME EXPECT CMD...: measures CMD (run by mf or fp in DIR) into
# $TMP/m-KIND.jsonl; its output goes to $TMP/NAME.out and .err; dies when it ends unexpectedly.
timed() {
    local side=$1 dir=$2 kind=$3 name=$4 expect=$5; shift 5
    "$side" "$dir" python3 "$TMP/measure.py" "$TMP/m-$kind.jsonl" "$name" "$expect" "$TMP/$name.out" \
        "$TMP/$name.err" -- "$@" || {
        cp "$TMP/$name.out" "$TMP/$name.err" "$LOGS/" 2>/dev/null || true
        die "($side $kind/$name) expected to end $expect: $*
stderr (last 40 lines; all in $LOGS/$name.err):
$(tail -40 "$TMP/$name.err")"
    }
}
# copy_flow SIDE DIR: the side's copy of the flow in DIR/resume.py.
copy_flow() { mkdir -p "$2" && cp "$WORK/flows/$1/resume.py" "$2/resume.py"; }
# fp_show DIR NAME: `flowpack show` of the run whose `--json` summary is $TMP/NAME.out.
fp_show() {
    local run
    run=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["run"])' "$TMP/$2.out") \
        || die "no run summary in $TMP/$2.out"
    "$FLOWPACK" show "$run" --store "$1/.flowpack" --json >"$TMP/$2.show.json" \
        || die "flowpack show $run --store $1/.flowpack failed"
}

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)

for i in $(seq 0 "$RUNS"); do
    pre=""; [[ $i == 0 ]] && pre="warmup-"
    R="$WORK/round-$i"
    # ---- 1. resume, Metaflow
    say "round $i/$RUNS: Metaflow: failing run, resume"
    copy_flow mf "$R/mf-resume"
    touch "$MARKER"
    timed mf "$R/mf-resume" "${pre}fail-metaflow" "fail-metaflow-$i" fail "$PY" resume.py run
    rm -f "$MARKER"
    rid=$(grep -oE 'run-id [0-9]+' "$TMP/fail-metaflow-$i.out" | head -1 | cut -d" " -f2)
    [[ -n "$rid" ]] || die "no 'run-id' in Metaflow's output ($TMP/fail-metaflow-$i.out)"
    timed mf "$R/mf-resume" "${pre}resume-metaflow" "resume-metaflow-$i" ok "$PY" resume.py resume --origin-run-id "$rid"
    # ---- 1. resume, flowpack
    say "round $i/$RUNS: flowpack: failing run, resume"
    copy_flow fp "$R/fp-resume"
    touch "$MARKER"
    timed fp "$R/fp-resume" "${pre}fail-flowpack" "fail-flowpack-$i" fail "$PY" resume.py run --json
    rm -f "$MARKER"
    rid=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["run"])' "$TMP/fail-flowpack-$i.out") \
        || die "no run summary in $TMP/fail-flowpack-$i.out"
    timed fp "$R/fp-resume" "${pre}resume-flowpack" "resume-flowpack-$i" ok "$PY" resume.py resume --origin-run-id "$rid" --json
    fp_show "$R/fp-resume" "resume-flowpack-$i"
    # ---- 2. the fixed flow twice (and flowpack without the cache), each side a fresh store
    say "round $i/$RUNS: Metaflow: two runs of the fixed flow"
    copy_flow mf "$R/mf-cache"
    timed mf "$R/mf-cache" "${pre}first-metaflow" "first-metaflow-$i" ok "$PY" resume.py run
    timed mf "$R/mf-cache" "${pre}again-metaflow" "again-metaflow-$i" ok "$PY" resume.py run
    say "round $i/$RUNS: flowpack: two runs of the fixed flow, then flowpack run with and without --no-cache"
    copy_flow fp "$R/fp-cache"
    timed fp "$R/fp-cache" "${pre}first-flowpack" "first-flowpack-$i" ok "$PY" resume.py run --json
    fp_show "$R/fp-cache" "first-flowpack-$i"
    timed fp "$R/fp-cache" "${pre}again-flowpack" "again-flowpack-$i" ok "$PY" resume.py run --json
    fp_show "$R/fp-cache" "again-flowpack-$i"
    timed fp "$R/fp-cache" "${pre}nocache-flowpack-bin" "nocache-flowpack-bin-$i" ok "$FLOWPACK" run resume.py --no-cache --json
    fp_show "$R/fp-cache" "nocache-flowpack-bin-$i"
    timed fp "$R/fp-cache" "${pre}again-flowpack-bin" "again-flowpack-bin-$i" ok "$FLOWPACK" run resume.py --json
    fp_show "$R/fp-cache" "again-flowpack-bin-$i"
done

LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
DATE=$(date +%Y-%m-%d)
STAMP_TIME=$(date -u +%H:%M)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)
MACHINE="$(nproc) cores, ${CPU_MODEL:-unknown}, $(uname -sr)"
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then REV="$REV+dirty"; fi
FP_VER=$("$FLOWPACK" --version 2>/dev/null || echo "flowpack (version unknown)")
VERSIONS=$("$PY" -c 'import sys, metaflow; print(f"Python {sys.version.split()[0]}, Metaflow {metaflow.__version__}")')
REPORT="$RESULTS/reuse-$DATE.md"

python3 - "$TMP" "$RUNS" "$STEP_SECONDS" "$DATE $STAMP_TIME UTC" \
    "$MACHINE, load average before $LOAD_BEFORE, after $LOAD_AFTER" "$REV" "$FP_VER" "$VERSIONS" \
    >"$TMP/report.md" <<'PY'
import json, os, re, statistics, sys
tmp, runs, step_seconds, date, machine, rev, fp_ver, versions = sys.argv[1:]
runs = int(runs)
med = statistics.median
rounds = range(1, runs + 1)

def load(kind):
    p = f"{tmp}/m-{kind}.jsonl"
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []

def wall(kind):
    return med([r["wall"] for r in load(kind)])

def cpu(kind):
    return med([r["user"] + r["sys"] for r in load(kind)])

def raw(kind):
    return ", ".join(f"{r['wall']:.3f}" for r in load(kind))

def mf_counts(name):
    """(ran, cloned) from Metaflow's own log lines of one command."""
    t = open(f"{tmp}/{name}.out", errors="replace").read()
    return (len(re.findall(r"\] Task is starting", t)), len(re.findall(r"Cloning previously run task", t)))

def fp_counts(name):
    """(ran, reused by reason) from the task records of `flowpack show RUN --json`."""
    show = json.load(open(f"{tmp}/{name}.show.json"))
    ran, reused = 0, {}
    for t in show["tasks"]:
        rec = t["attempts"][-1]["record"]
        if rec["status"] == "reused":
            reason = rec.get("reuse_reason", "?")
            reused[reason] = reused.get(reason, 0) + 1
        else:
            ran += 1
    return ran, reused

def same(values, what):
    """The one value every round gave (rounds that differ are shown all)."""
    vals = sorted(set(values), key=str)
    return str(vals[0]) if len(vals) == 1 else f"{' / '.join(map(str, vals))} (rounds differ: {what})"

out = []
W = out.append
W(f"## reuse benchmark, {date}")
W("")
W(f"- machine: {machine}")
W(f"- {versions}; {fp_ver} (git {rev})")
W(f"- {runs} measured rounds after one warm-up round; each round in fresh stores (local datastore and metadata "
  "for Metaflow, a local-folder store for flowpack; one warm flowpack node cache). Wall = monotonic clock "
  "around spawn..reap of the whole command; CPU = user+sys from wait4(), every process it reaped included; medians.")
W(f"- the flow: bench/flows/resume.py, 10 steps in a line (start, s1..s8, end), each sleeping {step_seconds} s and "
  "setting one small artifact; step 8 (s7) raises while a marker file exists. The flowpack copy differs by the "
  "import line only. Both sides run it as `python resume.py ...` with the same venv Python.")

# ---- 1. resume
W("")
W("### 1. resume after a failure at step 8 of 10")
W("")
W("`python resume.py run` with the marker (fails at s7 after 7 tasks), the marker removed, then "
  "`python resume.py resume --origin-run-id RUN`. Re-ran / reused: Metaflow's `Task is starting` and "
  "`Cloning previously run task` lines; flowpack's task records (`flowpack show RUN --json`: status `reused`, "
  "`reuse_reason: resume`). flowpack's `resume` also pushes the current flow folder first (the code runs as it is now).")
W("")
W("| side | failing run, median wall s | resume, median wall s | min s | resume, median CPU s | tasks re-ran | tasks cloned / reused | resume / full run of the fixed flow (wall) | Metaflow / flowpack (resume wall) |")
W("|---|---|---|---|---|---|---|---|---|")
res = {}
for side, label in (("metaflow", "Metaflow `python flow.py resume`"), ("flowpack", "flowpack `python flow.py resume`")):
    if not load(f"resume-{side}"):
        continue
    if side == "metaflow":
        counts = [mf_counts(f"resume-metaflow-{i}") for i in rounds]
        ran = same([c[0] for c in counts], "ran")
        reused = same([c[1] for c in counts], "cloned")
    else:
        counts = [fp_counts(f"resume-flowpack-{i}") for i in rounds]
        ran = same([c[0] for c in counts], "ran")
        reused = same([", ".join(f"{n} ({k})" for k, n in sorted(c[1].items())) for c in counts], "reused")
    res[side] = wall(f"resume-{side}")
    full = wall(f"first-{side}")
    ratio = f"**{res['metaflow'] / res[side]:.1f}x**" if side == "flowpack" and "metaflow" in res else "1.0x" if side == "metaflow" else "-"
    W(f"| {label} | {wall(f'fail-{side}'):.3f} | **{res[side]:.3f}** | {min(r['wall'] for r in load(f'resume-{side}')):.3f} | "
      f"{cpu(f'resume-{side}'):.3f} | {ran} | {reused} | {res[side] / full:.2f} ({full:.3f} s) | {ratio} |")
if load("resume-flowpack"):
    inner = med([json.load(open(f"{tmp}/resume-flowpack-{i}.out"))["seconds"] for i in rounds])
    W("")
    W(f"flowpack's resume: the run itself (its summary's `seconds`: planning the reuse, adopting 7 tasks, running 3) "
      f"took a median {inner:.3f} s of the {res['flowpack']:.3f} s wall; the rest is the Python face's start "
      "(importing the flow), the push of the current code and the binary's start.")
W("")
W("Raw wall seconds: " + "; ".join(f"{k} {raw(k)}" for k in ("fail-metaflow", "resume-metaflow", "fail-flowpack", "resume-flowpack")))

# ---- 2. cache
W("")
W("### 2. a second identical run: flowpack's step cache")
W("")
W("The fixed flow, run twice in a fresh store (the first run's tasks enter the cache; the second reuses them: records "
  "`reused`, `reuse_reason: cache`). Metaflow has no content-based cache: its second run runs every task again (shown for "
  "scale, not as an equivalent). `--no-cache` exists on `flowpack run` only (the Python face does not pass it), so the "
  "last two rows compare `flowpack run resume.py` with and without it, after the runs above in the same store.")
W("")
W("| side | command | median wall s | min s | median CPU s | tasks ran | tasks reused | this / first run (wall) |")
W("|---|---|---|---|---|---|---|---|")
rows = (("metaflow", "first-metaflow", "Metaflow", "`python resume.py run`, first", None),
        ("metaflow", "again-metaflow", "Metaflow", "`python resume.py run`, second (no cache exists)", None),
        ("flowpack", "first-flowpack", "flowpack", "`python resume.py run`, first", "first-flowpack"),
        ("flowpack", "again-flowpack", "flowpack", "`python resume.py run`, second (step cache)", "again-flowpack"),
        ("flowpack", "nocache-flowpack-bin", "flowpack", "`flowpack run resume.py --no-cache`", "nocache-flowpack-bin"),
        ("flowpack", "again-flowpack-bin", "flowpack", "`flowpack run resume.py` (step cache)", "again-flowpack-bin"))
for side, kind, label, cmd, show in rows:
    if not load(kind):
        continue
    if show:
        counts = [fp_counts(f"{show}-{i}") for i in rounds]
        ran = same([c[0] for c in counts], "ran")
        reused = same([sum(c[1].values()) for c in counts], "reused")
    else:
        counts = [mf_counts(f"{kind}-{i}") for i in rounds]
        ran = same([c[0] for c in counts], "ran")
        reused = "0 (no cache)"
    first = wall(f"first-{side}")
    W(f"| {label} | {cmd} | **{wall(kind):.3f}** | {min(r['wall'] for r in load(kind)):.3f} | {cpu(kind):.3f} | "
      f"{ran} | {reused} | {wall(kind) / first:.2f} |")
if load("again-flowpack-bin") and load("nocache-flowpack-bin"):
    W("")
    W(f"flowpack, cached second run / first run (`python resume.py run`): **{wall('again-flowpack') / wall('first-flowpack'):.2f}**; "
      f"`flowpack run` / `flowpack run --no-cache` on the same store: **{wall('again-flowpack-bin') / wall('nocache-flowpack-bin'):.2f}**; "
      f"Metaflow's second run / flowpack's cached second run: **{wall('again-metaflow') / wall('again-flowpack'):.1f}x**.")
W("")
W("Raw wall seconds: " + "; ".join(f"{k} {raw(k)}" for _, k, *_ in rows))
print("\n".join(out))
PY
cat "$TMP/report.md"
# Several runs on one day accumulate in that day's file.
{ [[ -s "$REPORT" ]] && echo; cat "$TMP/report.md"; } >>"$REPORT"
cp "$TMP"/*.out "$TMP"/*.err "$TMP"/*.json "$TMP"/*.jsonl "$LOGS/" 2>/dev/null || true
say "appended to $REPORT (commands' output kept in $LOGS)"
