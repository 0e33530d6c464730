#!/usr/bin/env bash
# Benchmark: `flowpack ui` on a large local store — the runs list of 10,000 runs and the
# page of a 10,000-task run — against flowpack's own CLI reading the same store.
#
#   A. runs store   two real runs of a 3-step flow (one succeeds; one fails, exit 3 in its
#                   middle step), cloned by bench/ui_store.py into RUNS runs (every 10th
#                   a failed one) with created_at spread over 30 days
#      measured     a fresh server's first GET /api/runs (cold), then on a warm server:
#                   /api/runs, ?offset=5000 (page 101), ?status=failed, ?q=crash
#      anchor       `flowpack runs --json` (every run with its tasks)
#   B. wide store   one real run of a TASKS-way foreach (start =foreach=> work -> join -> end)
#      measured     /api/runs/FLOW/RUN cold (fresh server) and warm; /timeline (time, bytes);
#                   /tasks?limit=100; /tasks?offset=TASKS-100&limit=100; /tasks/work/N; its /logs
#      anchor       `flowpack show FLOW/RUN --json`
#   C. browser      bench/ui_page.py (Playwright, Debian's Chromium): runs page to its first
#                   row, run page to DAG + timeline canvas + task rows, the timeline scrolled
#                   top to bottom in 50 frames (median and worst frame), screenshots
#
# Usage: bench/ui.sh              (from anywhere; needs target/release/flowpack:
#                                  cargo build --release)
# Env:   ROUNDS=5                 measured rounds of everything (median reported)
#        RUNS=10000               runs in store A
#        TASKS=10000              foreach width of store B's run
#        WORKERS=16               --max-workers for store B's run
#        KEEP_STORES=0            1: reuse stores A and B from an earlier run with the same
#                                 RUNS and TASKS (generation times are then that run's)
#        BROWSER=1                0: leave out part C
#        FLOWPACK=target/release/flowpack
#        PYTHON=.venv/bin/python  the Python with Playwright (part C)
#        CHROMIUM=/usr/bin/chromium
# Output: markdown on stdout, also appended to bench/results/ui-<date>.md.
# Files:  everything it makes lives in bench/work/ui/ (flows, stores, server logs,
#         screenshots) and bench/results/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
WORK="$BENCH/work/ui"
RESULTS="$BENCH/results"

ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-10000}
TASKS=${TASKS:-10000}
WORKERS=${WORKERS:-16}
KEEP_STORES=${KEEP_STORES:-0}
BROWSER=${BROWSER:-1}
FLOWPACK=${FLOWPACK:-$ROOT/target/release/flowpack}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
WARMUP_TIMEOUT=${WARMUP_TIMEOUT:-900}   # seconds to wait for a server's background read
PAUSE=2.5           # seconds between warm runs-list requests: over the server's FRESH_FOR (2 s)

say() { printf '[ui.sh] %s\n' "$*" >&2; }
die() { printf '[ui.sh] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
case "$FLOWPACK" in /*) ;; */*) FLOWPACK="$PWD/$FLOWPACK" ;; esac
[[ -x "$FLOWPACK" ]] || die "flowpack binary not found at $FLOWPACK
  build it with:  (cd $ROOT && cargo build --release)
  or point FLOWPACK at one. The page's assets are compiled into the binary: rebuild after
  changing ui/assets/."
for v in ROUNDS RUNS TASKS WORKERS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
(( TASKS >= 200 )) || die "TASKS must be at least 200 (the last page is offset TASKS-100)"
for t in curl python3; do
    command -v "$t" >/dev/null || die "$t not found on PATH (Debian: apt-get install $t)"
done

mkdir -p "$WORK" "$RESULTS"
TMP="$WORK/tmp"
rm -rf "$TMP"
mkdir -p "$TMP"
unset FLOWPACK_STORE FLOWPACK_LOG
export FLOWPACK_CACHE_DIR="$WORK/cache"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"

SEED="$WORK/seed-store"       # the two real runs
STORE_A="$WORK/runs-store"    # RUNS runs cloned from them
STORE_B="$WORK/wide-store"    # one TASKS-way foreach run
FLOW_A=uibench
FLOW_B=uiwide
META="$WORK/stores.json"      # run ids and generation times, kept with the stores

# ---------------------------------------------------------------- servers
# Every server this script starts, so that exit (also on error or Ctrl-C) stops them.
UI_PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${UI_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_ui STORE NAME: starts `flowpack ui` on a free port (stdout, stderr in
# $TMP/NAME.out, .err; FLOWPACK_LOG=flowpack_ui=info, so the background read of every
# run logs its end); sets UI_PID, UI_URL (no trailing /) and UI_T0 (when it was started,
# $EPOCHREALTIME). It returns as soon as the URL is printed (polled every 2 ms), so a
# request made next is the server's first, a few ms after it listens: the server starts
# reading every run in the background at once, newest first, and a later first request
# would find the newest runs read already.
start_ui() {
    local store=$1 name=$2 line="" _
    UI_T0=$EPOCHREALTIME
    FLOWPACK_LOG=flowpack_ui=info "$FLOWPACK" ui --store "$store" --port 0 --json \
        >"$TMP/$name.out" 2>"$TMP/$name.err" &
    UI_PID=$!
    UI_PIDS+=("$UI_PID")
    UI_NAME=$name
    for _ in $(seq 1 5000); do
        if [[ -s "$TMP/$name.out" ]]; then
            IFS= read -r line <"$TMP/$name.out" || true
            [[ "$line" == *'}' ]] && break
        fi
        kill -0 "$UI_PID" 2>/dev/null || die "flowpack ui exited at start:
$(tail -20 "$TMP/$name.err")"
        sleep 0.002
    done
    [[ "$line" =~ \"url\":\ ?\"(http://[^\"]*)\" ]] \
        || die "flowpack ui printed no {\"url\": ...} line within 10 s: $(cat "$TMP/$name.out")"
    UI_URL=${BASH_REMATCH[1]%/}
}

# gap KIND T: appends to gap.tsv how long after the running server was started the
# time T ($EPOCHREALTIME) was.
gap() {
    printf '%s\t%s\n' "$1" "$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.6f}")' \
        "$UI_T0" "$2")" >>"$TMP/gap.tsv"
}

# stop_ui KIND: records the server's peak RSS (VmHWM, KiB) as KIND in rss.tsv, stops it.
stop_ui() {
    local hwm
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$UI_PID/status" 2>/dev/null || echo 0)
    printf '%s\t%s\n' "$1" "${hwm:-0}" >>"$TMP/rss.tsv"
    kill -INT "$UI_PID" 2>/dev/null || true
    wait "$UI_PID" 2>/dev/null || true
    cp "$TMP/$UI_NAME.err" "$WORK/logs/$UI_NAME.err" 2>/dev/null || true
}

# warmed_up: waits for the running server's background read of every run ("read N runs
# in T"); prints T in seconds, or "" after WARMUP_TIMEOUT.
warmed_up() {
    local i t
    for i in $(seq 1 $((WARMUP_TIMEOUT * 5))); do
        t=$(python3 - "$TMP/$UI_NAME.err" <<'PY'
import re, sys
m = re.search(r"read (\d+) runs in ([0-9.]+)(µs|us|ms|s)\b", open(sys.argv[1], errors="replace").read())
if m:
    v = float(m.group(2)); print(v * {"µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1}[m.group(3)])
PY
)
        [[ -n "$t" ]] && { echo "$t"; return; }
        grep -q 'reading the runs.*failed' "$TMP/$UI_NAME.err" && die "the server's background read failed:
$(tail -5 "$TMP/$UI_NAME.err")"
        sleep 0.2
    done
    echo ""
}

# req KIND PATH [BODY]: one GET with curl; appends "KIND seconds bytes" to curl.tsv; fails
# unless HTTP 200. With BODY, the response is kept there.
req() {
    local kind=$1 path=$2 body=${3:-/dev/null} out
    out=$(curl -s --noproxy '*' -o "$body" -w '%{http_code} %{time_total} %{size_download}' "$UI_URL$path") \
        || die "curl $UI_URL$path failed"
    [[ "${out%% *}" == 200 ]] || die "GET $path answered HTTP ${out%% *}"
    printf '%s\t%s\t%s\n' "$kind" "$(cut -d' ' -f2 <<<"$out")" "$(cut -d' ' -f3 <<<"$out")" >>"$TMP/curl.tsv"
}

# timed KIND CMD...: wall seconds (monotonic, around spawn..exit) and peak RSS (KiB, from
# wait4) of CMD, stdout to /dev/null; appended to cli.tsv. Fails if CMD fails.
timed() {
    local kind=$1; shift
    python3 - "$TMP/cli.tsv" "$kind" "$@" <<'PY' || die "$kind failed: ${*}"
import os, subprocess, sys, time
res, kind, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
p.returncode = os.waitstatus_to_exitcode(status)
with open(res, "a") as f:
    f.write(f"{kind}\t{wall:.6f}\t{ru.ru_maxrss}\n")
sys.exit(p.returncode)
PY
}

json_get() { python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }
now() { date +%s.%N; }

mkdir -p "$WORK/logs"
LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- stores
FLOWS="$WORK/flows"
mkdir -p "$FLOWS/runs" "$FLOWS/wide"
# A: three shell steps, one artifact each, a few log lines; mode=crash makes `middle`
# exit 3 (and `end` never runs).
cat >"$FLOWS/runs/flow.yaml" <<'EOF'
name: uibench
parameters:
  mode: {type: string, default: ok, help: "crash: the middle step exits 3"}
steps:
  start:
    run: 'echo "start: preparing 3 items"; printf "alpha\nbeta\ngamma\n" > "$FLOWPACK_OUTPUT_DIR/items.txt"; echo "start: wrote items.txt"; echo "start: done"'
    next: middle
  middle:
    run: 'echo "middle: mode=$FLOWPACK_PARAM_MODE"; echo "middle: counting"; if [ "$FLOWPACK_PARAM_MODE" = crash ]; then echo "middle: giving up with exit 3" >&2; exit 3; fi; echo 3 > "$FLOWPACK_OUTPUT_DIR/count"; echo "middle: done"'
    next: end
  end:
    run: 'echo "end: summarising"; echo "3 items" > "$FLOWPACK_OUTPUT_DIR/summary.txt"; echo "end: done"'
EOF
# B: a TASKS-way foreach. `work` and `join` restore no inputs (`inputs: []`): every work
# task inherits the TASKS-item list, and the join would copy it once per parent.
cat >"$FLOWS/wide/flow.yaml" <<EOF
name: uiwide
steps:
  start:
    run: python3 -c 'import json, os; open(os.environ["FLOWPACK_OUTPUT_DIR"] + "/items", "w").write(json.dumps(list(range($TASKS))))'
    foreach: items
    next: work
  work: {run: 'echo "work \$FLOWPACK_SPLIT_INDEX: hello"', inputs: [], next: join}
  join: {run: "true", join: true, inputs: [], next: end}
  end: {run: "true"}
EOF
for f in runs wide; do
    "$FLOWPACK" check "$FLOWS/$f/flow.yaml" >/dev/null 2>"$TMP/check.err" \
        || die "flowpack check $FLOWS/$f/flow.yaml failed:
$(cat "$TMP/check.err")"
done

STAMP="runs=$RUNS tasks=$TASKS"
if [[ "$KEEP_STORES" == 1 && -f "$META" && -d "$STORE_A" && -d "$STORE_B" \
      && "$(json_get "$META" 'j["stamp"]')" == "$STAMP" ]]; then
    say "reusing the stores of $(json_get "$META" 'j["made_at"]') ($STAMP)"
    STORES_REUSED=1
else
    STORES_REUSED=0
    rm -rf "$SEED" "$STORE_A" "$STORE_B" "$STORE_A.index.json" "$FLOWPACK_CACHE_DIR" "$META"
    say "A: two real runs of $FLOW_A (seed store $SEED)"
    t0=$(now)
    "$FLOWPACK" run "$FLOWS/runs/flow.yaml" --store "$SEED" --json >"$TMP/seed-ok.json" 2>"$TMP/seed-ok.err" \
        || die "the seed run that should succeed failed:
$(tail -20 "$TMP/seed-ok.err")"
    if "$FLOWPACK" run "$FLOWS/runs/flow.yaml" --store "$SEED" --param mode=crash --json \
        >"$TMP/seed-failed.json" 2>"$TMP/seed-failed.err"; then
        die "the seed run with mode=crash succeeded"
    fi
    t1=$(now)
    [[ "$(json_get "$TMP/seed-ok.json" 'j["succeeded"]')" == True ]] || die "seed run: $(cat "$TMP/seed-ok.json")"
    [[ "$(json_get "$TMP/seed-failed.json" 'j["succeeded"]')" == False ]] || die "seed run (crash): $(cat "$TMP/seed-failed.json")"
    RUN_OK=$(json_get "$TMP/seed-ok.json" 'j["run"]')
    RUN_FAILED=$(json_get "$TMP/seed-failed.json" 'j["run"]')
    "$FLOWPACK" show "$FLOW_A/$RUN_FAILED" --store "$SEED" --json >"$TMP/seed-failed-show.json"
    [[ "$(json_get "$TMP/seed-failed-show.json" '[a["record"].get("exit_code") for t in j["tasks"] for a in t["attempts"] if t.get("step", t["task"].split("/")[0]) == "middle"]')" == "[3]" ]] \
        || die "the failed seed run's middle step did not exit 3: $(cat "$TMP/seed-failed-show.json")"
    say "A: cloning into $RUNS runs ($STORE_A)"
    python3 "$BENCH/ui_store.py" clone "$SEED" "$STORE_A" --flow "$FLOW_A" --ok "$RUN_OK" \
        --failed "$RUN_FAILED" --runs "$RUNS" >"$TMP/clone.json"
    t2=$(now)
    say "B: one real run of a $TASKS-way foreach, --max-workers $WORKERS ($STORE_B)"
    t3=$(now)
    "$FLOWPACK" run "$FLOWS/wide/flow.yaml" --store "$STORE_B" --max-workers "$WORKERS" --json \
        >"$TMP/wide-run.json" 2>"$TMP/wide-run.err" || die "the $TASKS-way foreach failed:
$(tail -20 "$TMP/wide-run.err")"
    t4=$(now)
    [[ "$(json_get "$TMP/wide-run.json" 'j["succeeded"]')" == True ]] || die "the foreach run did not succeed"
    RUN_B=$(json_get "$TMP/wide-run.json" 'j["run"]')
    python3 - "$META" "$STAMP" "$RUN_OK" "$RUN_FAILED" "$RUN_B" "$t0" "$t1" "$t2" "$t3" "$t4" \
        "$TMP/clone.json" "$TMP/wide-run.json" "$TMP/seed-failed-show.json" <<'PY'
import datetime, json, sys
meta, stamp, ok, failed, run_b, t0, t1, t2, t3, t4, clone, wide, failed_show = sys.argv[1:]
t0, t1, t2, t3, t4 = map(float, (t0, t1, t2, t3, t4))
w = json.load(open(wide))
json.dump({"stamp": stamp, "failed_finished_at": json.load(open(failed_show)).get("finished_at"), "made_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "run_ok": ok, "run_failed": failed, "run_b": run_b,
           "seed_seconds": t1 - t0, "clone_seconds": t2 - t1, "clone": json.load(open(clone)),
           "wide_seconds": t4 - t3, "wide_tasks": len(w.get("tasks", [])), "wide_summary_seconds": w.get("seconds")},
          open(meta, "w"), indent=1)
PY
fi
RUN_OK=$(json_get "$META" 'j["run_ok"]')
RUN_FAILED=$(json_get "$META" 'j["run_failed"]')
RUN_B=$(json_get "$META" 'j["run_b"]')
MID=$((TASKS / 2))
LAST_PAGE=$((TASKS - 100))

# Once, outside the timing: the CLI sees every run (this also fills the page cache, so
# every measured read below finds the files in memory).
say "A: checking that flowpack runs --json lists $RUNS runs"
"$FLOWPACK" runs --store "$STORE_A" --json >"$TMP/runs-cli.json" 2>"$TMP/runs-cli.err" \
    || die "flowpack runs failed: $(tail -5 "$TMP/runs-cli.err")"
N_CLI=$(python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(len(j["runs"] if isinstance(j, dict) else j))' "$TMP/runs-cli.json")
[[ "$N_CLI" == "$RUNS" ]] || die "flowpack runs --json lists $N_CLI runs, not $RUNS"
"$FLOWPACK" show "$FLOW_B/$RUN_B" --store "$STORE_B" --json >"$TMP/show-b.json" 2>/dev/null \
    || die "flowpack show $FLOW_B/$RUN_B failed"
N_B=$(json_get "$TMP/show-b.json" 'len(j["tasks"])')
(( N_B == TASKS + 3 )) || die "the foreach run has $N_B tasks, not $((TASKS + 3))"

# ---------------------------------------------------------------- A. runs store
say "A: $ROUNDS rounds of a fresh server's first /api/runs, and of flowpack runs --json"
for i in $(seq 1 "$ROUNDS"); do
    start_ui "$STORE_A" "a-cold-$i"
    t_req=$EPOCHREALTIME
    req a-cold /api/runs
    gap a-cold "$t_req"
    stop_ui a-cold
    timed a-anchor "$FLOWPACK" runs --store "$STORE_A" --json
done

say "A: warm server (waiting for its background read of $RUNS runs)"
start_ui "$STORE_A" a-warm
A_WARMUP=$(warmed_up)
if [[ -z "$A_WARMUP" ]]; then
    say "no end of the background read logged within ${WARMUP_TIMEOUT}s; one status request first"
    req a-warmup-status '/api/runs?status=failed'
fi
# The answers, once, for the checks in the report (not timed).
req a-check-first /api/runs "$TMP/a-first.json"
req a-check-failed '/api/runs?status=failed&limit=1' "$TMP/a-failed.json"
req a-check-q '/api/runs?q=crash&limit=1' "$TMP/a-q.json"
# Each request twice: after a pause longer than the server's 2 s freshness (it lists the
# store's runs again, and reads again every run that may still change: running, or failed
# less than 2 h ago), then at once (everything cached).
for i in $(seq 1 "$ROUNDS"); do
    for q in 'a-warm /api/runs' 'a-page101 /api/runs?offset=5000' 'a-failed /api/runs?status=failed' \
             'a-q /api/runs?q=crash'; do
        sleep "$PAUSE"
        req "${q%% *}" "${q#* }"
        req "${q%% *}-hot" "${q#* }"
    done
done
stop_ui a-warm

# ---------------------------------------------------------------- B. wide store
RB="/api/runs/$FLOW_B/$RUN_B"
say "B: $ROUNDS rounds of a fresh server's first $RB, and of flowpack show --json"
for i in $(seq 1 "$ROUNDS"); do
    start_ui "$STORE_B" "b-cold-$i"
    t_req=$EPOCHREALTIME
    req b-cold "$RB"
    gap b-cold "$t_req"
    stop_ui b-cold
    timed b-anchor "$FLOWPACK" show "$FLOW_B/$RUN_B" --store "$STORE_B" --json
done

say "B: warm server"
start_ui "$STORE_B" b-warm
B_WARMUP=$(warmed_up)
req b-check-tasks "$RB/tasks?offset=$LAST_PAGE&limit=100" "$TMP/b-tasks-last.json"
req b-check-logs "$RB/tasks/work/$MID/logs" "$TMP/b-logs.json"
for i in $(seq 1 "$ROUNDS"); do
    req b-warm "$RB"
    req b-timeline "$RB/timeline"
    req b-tasks-first "$RB/tasks?limit=100"
    req b-tasks-last "$RB/tasks?offset=$LAST_PAGE&limit=100"
    req b-task "$RB/tasks/work/$MID"
    req b-logs "$RB/tasks/work/$MID/logs"
done
stop_ui b-warm

# ---------------------------------------------------------------- C. browser
PAGE_NOTE=""
if [[ "$BROWSER" != 1 ]]; then
    PAGE_NOTE="left out (BROWSER=$BROWSER)"
elif [[ ! -x "$CHROMIUM" ]]; then
    PAGE_NOTE="n/a: $CHROMIUM not found (Debian: apt-get install chromium)"
elif ! "$PYTHON" -c 'import playwright.sync_api' 2>/dev/null; then
    PAGE_NOTE="n/a: Playwright is not importable by $PYTHON ($PYTHON -m pip install playwright==1.64.1; no 'playwright install': Debian's Chromium is used)"
else
    export CHROMIUM
    say "C: browser, runs page (a fresh server: once cold, then $ROUNDS rounds warm)"
    start_ui "$STORE_A" c-runs
    "$PYTHON" "$BENCH/ui_page.py" runs "$UI_URL" --rounds 1 --tag cold >"$TMP/page-runs-cold.json" \
        2>"$TMP/page-runs-cold.err" || say "ui_page.py failed: $(tail -3 "$TMP/page-runs-cold.err")"
    C_WARMUP=$(warmed_up)
    "$PYTHON" "$BENCH/ui_page.py" runs "$UI_URL" --rounds "$ROUNDS" --tag warm \
        --screenshot "$WORK/runs-page.png" >"$TMP/page-runs-warm.json" 2>"$TMP/page-runs-warm.err" \
        || say "ui_page.py failed: $(tail -3 "$TMP/page-runs-warm.err")"
    stop_ui c-runs
    say "C: browser, the $TASKS-task run's page"
    start_ui "$STORE_B" c-run
    "$PYTHON" "$BENCH/ui_page.py" run "$UI_URL" --run "$FLOW_B/$RUN_B" --rounds 1 --tag cold \
        >"$TMP/page-run-cold.json" 2>"$TMP/page-run-cold.err" \
        || say "ui_page.py failed: $(tail -3 "$TMP/page-run-cold.err")"
    C_WARMUP=$(warmed_up)
    "$PYTHON" "$BENCH/ui_page.py" run "$UI_URL" --run "$FLOW_B/$RUN_B" --task "work/$MID" \
        --rounds "$ROUNDS" --tag warm --scroll --screenshot "$WORK/run-page.png" \
        >"$TMP/page-run-warm.json" 2>"$TMP/page-run-warm.err" \
        || say "ui_page.py failed: $(tail -3 "$TMP/page-run-warm.err")"
    stop_ui c-run
fi

LOAD_AFTER=$(cut -d" " -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
DATE=$(date -u +%Y-%m-%d)
STAMP_TIME=$(date -u +%H:%M)
CPU_MODEL=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || echo unknown)
RAM=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
MACHINE="$(nproc) cores (${CPU_MODEL:-unknown}), $RAM RAM, Linux $(uname -r)"
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then REV="$REV+dirty"; fi
REPORT="$RESULTS/ui-$DATE.md"
FS=$(df -T "$WORK" | awk 'NR==2 {print $2}')

python3 - "$TMP" "$META" "$ROUNDS" "$RUNS" "$TASKS" "$WORKERS" "$STORES_REUSED" \
    "$DATE $STAMP_TIME UTC" "$MACHINE" "$LOAD_BEFORE" "$LOAD_AFTER" "$REV" \
    "$("$FLOWPACK" --version 2>/dev/null || echo flowpack)" "$FLOW_B/$RUN_B" "$MID" "$LAST_PAGE" \
    "${A_WARMUP:-}" "${B_WARMUP:-}" "$PAGE_NOTE" "$FS" "$WORK" "$ROOT" "$SEED" "$FLOW_A" "$RUN_FAILED" \
    >"$TMP/report.md" <<'PY'
import datetime, glob, json, os, statistics, sys
(tmp, meta, rounds, runs, tasks, workers, reused, date, machine, load_before, load_after, rev,
 fp_ver, run_b, mid, last_page, a_warm, b_warm, page_note, fs, work, root, seed, flow_a, run_failed) = sys.argv[1:]
rounds, runs, tasks = int(rounds), int(runs), int(tasks)
med = statistics.median
m = json.load(open(meta))
rel = lambda p: os.path.relpath(p, root)

def rows(name, cols):
    p = f"{tmp}/{name}"
    out = {}
    if os.path.exists(p):
        for line in open(p):
            f = line.rstrip("\n").split("\t")
            out.setdefault(f[0], []).append([float(x) for x in f[1:cols + 1]])
    return out
curl, cli, rss = rows("curl.tsv", 2), rows("cli.tsv", 2), rows("rss.tsv", 1)
def t(kind):
    return [r[0] for r in curl.get(kind, [])] or [r[0] for r in cli.get(kind, [])]
def bytes_(kind):
    v = [r[1] for r in curl.get(kind, [])]
    return int(med(v)) if v else 0
def sec(x):
    return f"{x:.3f} s" if x >= 0.1 else f"{x * 1000:.1f} ms"
def ratio(r):
    return f"{r:.2f}x" if r >= 0.1 else f"{r:.4f}x (1/{1 / r:,.0f})"
def spread(v):
    return f"{sec(min(v))} – {sec(max(v))}" if v else ""
def mib(kib):
    return f"{kib / 1024:.0f} MiB"
def jl(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None

out = []
W = out.append
W(f"## ui.sh, {date}, {fp_ver}, git {rev}")
W("")
W(f"Machine: {machine}; store on {fs}. Load average (1/5/15 min) before {load_before}, after {load_after}. "
  f"ROUNDS={rounds} (medians), RUNS={runs:,}, TASKS={tasks:,}. Timed with `curl -w %{{time_total}}` "
  f"(HTTP on 127.0.0.1) and, for the CLI anchors, a monotonic clock around spawn..exit; every file was "
  f"already in the OS page cache (\"cold\" is the server's own caches: a new `flowpack ui` process).")
W("")
gen = "reused from " + m["made_at"] + " (KEEP_STORES=1); their generation took" if reused == "1" else "Store generation:"
c = m["clone"]
W(f"{gen} two real seed runs {m['seed_seconds']:.2f} s; cloning them into {c['runs']:,} runs "
  f"({c['failed']:,} failed, {c['files']:,} files, {c['bytes'] / 1e6:.1f} MB) {m['clone_seconds']:.1f} s "
  f"(`bench/ui_store.py`); the {tasks:,}-way foreach run (`flowpack run --max-workers {workers}`, "
  f"{m['wide_tasks']:,} tasks) **{m['wide_seconds']:.1f} s** wall ({m['wide_tasks'] / m['wide_seconds']:.0f} tasks/s).")
W("")

def table(title, anchor_kind, anchor_label, items):
    W(title)
    W("")
    W(f"| what | flowpack ui median | min – max | anchor: {anchor_label} median | ui / anchor | bytes |")
    W("|---|---|---|---|---|---|")
    a = t(anchor_kind)
    am = med(a) if a else float("nan")
    for label, kind in items:
        v = t(kind)
        if not v:
            W(f"| {label} | n/a | | | | |"); continue
        W(f"| {label} | **{sec(med(v))}** | {spread(v)} | {sec(am)} | {ratio(med(v) / am)} | {bytes_(kind):,} |")
    W(f"| anchor: {anchor_label} | {sec(am)} | {spread(a)} | | 1.000x | |")
    W("")

table(f"### A. {runs:,} runs, local store: the runs list", "a-anchor", "`flowpack runs --json`", [
    ("`/api/runs`, a fresh server's first request (cold)", "a-cold"),
    ("`/api/runs`, warm", "a-warm"),
    ("`/api/runs`, warm, again at once", "a-warm-hot"),
    ("`/api/runs?offset=5000` (page 101), warm", "a-page101"),
    ("`/api/runs?offset=5000`, again at once", "a-page101-hot"),
    ("`/api/runs?status=failed`, warm", "a-failed"),
    ("`/api/runs?status=failed`, again at once", "a-failed-hot"),
    ("`/api/runs?q=crash`, warm", "a-q"),
    ("`/api/runs?q=crash`, again at once", "a-q-hot"),
])
W("*Warm*: a server that has read every run once (its background read ended), asked "
  "2.5 s after its previous request, so it lists the store's runs again and re-reads the runs that may "
  "still change (its cache keeps those 2 s); *again at once*: the same request right after, all from memory.")
W("")
first = jl(f"{tmp}/a-first.json") or {}
idx = jl(os.path.join(os.path.dirname(meta), "runs-store.index.json")) or []
want = [r["run"] for r in sorted(idx, key=lambda r: r["created_at"], reverse=True)[:len(first.get("runs", []))]]
got = [r["run"] for r in first.get("runs", [])]
failed_total = (jl(f"{tmp}/a-failed.json") or {}).get("total")
q_total = (jl(f"{tmp}/a-q.json") or {}).get("total")
W(f"Checks: the first page holds {len(got)} runs of total {first.get('total')}, "
  f"{'the newest by created_at, in order' if got and got == want else '**not** the newest by created_at'}; "
  f"`status=failed` total {failed_total} (expected {sum(r['failed'] for r in idx)}), `q=crash` total {q_total} "
  f"(the `mode` parameter of the failed runs).")
rs = {k: [r[0] for r in v] for k, v in rss.items()}
if rs.get("a-cold") or rs.get("a-warm"):
    W(f"Server peak RSS (VmHWM): after its first `/api/runs` {mib(med(rs.get('a-cold', [0])))} (median); "
      f"the warm server at the end (every run's summary read) {mib(max(rs.get('a-warm', [0])))}. "
      f"`flowpack runs --json` peak RSS {mib(med([r[1] for r in cli.get('a-anchor', [[0, 0]])]))}.")
if a_warm:
    W(f"The warm server's background read of all {runs:,} runs' tasks (logged \"read N runs in T\") took {float(a_warm):.1f} s.")
# A failed run is final for the server only 2 h after its last task ended: until then it
# is read again whenever its summary is older than 2 s. The clones keep the seed's tasks.
ff = m.get("failed_finished_at")
if ff:
    age = (datetime.datetime.now(datetime.timezone.utc)
           - datetime.datetime.fromisoformat(ff.replace("Z", "+00:00"))).total_seconds() / 60
    W(f"The failed runs' tasks (copied from the seed run) ended {age:.0f} min before this report: "
      + ("under the server's 2 h after which a failed run is final, so each of the "
         f"{sum(r['failed'] for r in idx):,} failed runs is read again (all its tasks) by any request that "
         "needs its summary more than 2 s after the last read — `status=failed` does." if age < 120 else
         "past the server's 2 h, so every run is final and cached."))
gaps = rows("gap.tsv", 1)
if gaps.get("a-cold"):
    W(f"The cold request was sent {med([g[0] for g in gaps['a-cold']]) * 1000:.0f} ms (median) after the server "
      f"process was started; start to first page answered: {sec(med([g[0] for g in gaps['a-cold']]) + med(t('a-cold')))}.")
W("")
cold = t("a-cold")
if cold:
    ok = med(cold) < 1.0
    W(f"**Target \"a store with {runs:,} runs lists its first page in < 1 s on the local store\": "
      f"{'met' if ok else 'NOT met'}** — a fresh server's first `/api/runs` took {sec(med(cold))} (median; worst {sec(max(cold))}).")
W("")

table(f"### B. one run of {tasks + 3:,} tasks ({tasks:,}-way foreach), local store", "b-anchor",
      f"`flowpack show FLOW/RUN --json`", [
    ("`/api/runs/FLOW/RUN`, a fresh server's first request (cold)", "b-cold"),
    ("`/api/runs/FLOW/RUN`, warm", "b-warm"),
    ("`/api/runs/FLOW/RUN/timeline`, warm", "b-timeline"),
    ("`…/tasks?limit=100`, warm", "b-tasks-first"),
    (f"`…/tasks?offset={last_page}&limit=100`, warm", "b-tasks-last"),
    (f"`…/tasks/work/{mid}`, warm", "b-task"),
    (f"`…/tasks/work/{mid}/logs`, warm", "b-logs"),
])
W(f"`/timeline` is {bytes_('b-timeline'):,} bytes ({bytes_('b-timeline') / (tasks + 3):.0f} B a task).")
last = jl(f"{tmp}/b-tasks-last.json") or {}
logs = jl(f"{tmp}/b-logs.json") or {}
W(f"Checks: `tasks?offset={last_page}` gave {len(last.get('tasks', []))} tasks of total {last.get('total')}; "
  f"the log of work/{mid} has {len(logs.get('lines', []))} line(s), final {logs.get('final')}.")
if rs.get("b-cold") or rs.get("b-warm"):
    W(f"Server peak RSS: after its first run request {mib(med(rs.get('b-cold', [0])))} (median), warm server at the end "
      f"{mib(max(rs.get('b-warm', [0])))}; `flowpack show --json` peak RSS {mib(med([r[1] for r in cli.get('b-anchor', [[0, 0]])]))}.")
if b_warm:
    W(f"The server's background read of the run ({tasks + 3:,} tasks) took {float(b_warm):.1f} s.")
if gaps.get("b-cold"):
    W(f"The cold request was sent {med([g[0] for g in gaps['b-cold']]) * 1000:.0f} ms (median) after the server "
      f"process was started (its background read of the same run had begun too).")
W("")

W("### C. In a browser")
W("")
pages = {k: jl(f"{tmp}/page-{k}.json") for k in ("runs-cold", "runs-warm", "run-cold", "run-warm")}
if page_note:
    W(f"Not measured: {page_note}.")
else:
    br = next((p.get("browser") for p in pages.values() if p and p.get("browser")), "Chromium")
    W(f"{br}, viewport 1440x900, a new browser context (empty HTTP cache) per load; times from the "
      f"navigation's start (`performance.now()` in the page) to the first animation frame where the "
      f"condition holds. \"Fresh server\": the page is the server's first client; \"warm\": the same server "
      f"after its background read, median of {rounds}.")
    W("")
    W("| page | until | fresh server | warm (median) | warm min – max |")
    W("|---|---|---|---|---|")
    def fig(p, key):
        if not p: return None
        if p.get("error"): return p["error"]
        return (p.get(key) or {}).get("median", "n/a")
    def show(v):
        return "n/a" if v is None else (v if isinstance(v, str) else f"**{sec(v)}**")
    def mm(p, key):
        d = (p or {}).get(key) or {}
        return f"{sec(d['min'])} – {sec(d['max'])}" if "min" in d else ""
    W(f"| runs list `#/` ({runs:,} runs) | first `#runs-table tr[data-run]` visible | "
      f"{show(fig(pages['runs-cold'], 'first_row_visible'))} | {show(fig(pages['runs-warm'], 'first_row_visible'))} | "
      f"{mm(pages['runs-warm'], 'first_row_visible')} |")
    W(f"| run `#/runs/{run_b}` ({tasks + 3:,} tasks) | `svg#dag g.node`, `#timeline canvas`, `#tasks-table tr[data-task]` present | "
      f"{show(fig(pages['run-cold'], 'ready'))} | {show(fig(pages['run-warm'], 'ready'))} | {mm(pages['run-warm'], 'ready')} |")
    W(f"| same | its `/timeline` response received (resource timing) | {show(fig(pages['run-cold'], 'timeline_response'))} | "
      f"{show(fig(pages['run-warm'], 'timeline_response'))} | {mm(pages['run-warm'], 'timeline_response')} |")
    W(f"| task `#/runs/…/tasks/work/{mid}` | `#log` has text | | {show(fig(pages['run-warm'], 'task_log'))} | "
      f"{mm(pages['run-warm'], 'task_log')} |")
    W("")
    def api_end(p, pred):
        ends = [r["end"] for tm in (p or {}).get("timings", []) for r in tm.get("resources", [])[:50] if pred(r["name"])]
        return med(ends) if ends else None
    rr_end = api_end(pages["runs-warm"], lambda n: n.startswith("/api/runs?"))
    run_end = api_end(pages["run-warm"], lambda n: n == f"/api/runs/{run_b}")
    tasks_end = api_end(pages["run-warm"], lambda n: n.startswith(f"/api/runs/{run_b}/tasks?"))
    if rr_end or run_end:
        W("Where the warm loads' time goes (resource timing, medians from the navigation's start): "
          + "; ".join(x for x in (
              f"runs page: its `/api/runs` response ended at {sec(rr_end)}" if rr_end else "",
              f"run page: `/api/runs/FLOW/RUN` at {sec(run_end)}" if run_end else "",
              f"its first `/tasks` page at {sec(tasks_end)}" if tasks_end else "") if x)
          + "; the rest is loading the page's script and drawing.")
    rw = pages["run-warm"] or {}
    sc = rw.get("scroll")
    if sc and "frames_ms" in sc:
        W(f"Timeline scroll ({sc['element']}, {sc['scroll_height']:,} px of content in {sc['client_height']} px, "
          f"top to bottom in {sc['frames'] - 1} steps, one per frame): frame time median **{sc['median_ms']:.1f} ms**, "
          f"worst **{sc['worst_ms']:.1f} ms**, {sc['over_50ms']} frame(s) over 50 ms"
          f"{'' if sc.get('reached_bottom') else ' (did not reach the bottom)'}. "
          f"(Headless Chromium paces frames at 60 Hz: 16.7 ms is the floor.)")
    elif sc:
        W(f"Timeline scroll: {sc.get('error')}.")
    elif rw.get("error"):
        W(f"Run page: {rw['error']}.")
    rr = pages["runs-warm"] or {}
    if rr.get("rows") is not None or rw.get("task_rows") is not None:
        W(f"Rendered: {rr.get('rows', 'n/a')} runs-table rows; {rw.get('dag_nodes', 'n/a')} DAG nodes and "
          f"{rw.get('task_rows', 'n/a')} tasks-table rows on the run page"
          + (f"; the page's `/timeline` body {rw['timeline_body_bytes']:,} bytes" if rw.get("timeline_body_bytes") else "") + ".")
    shots = [x for p in pages.values() if p for x in (p.get("screenshot"), p.get("task_screenshot")) if x]
    if shots:
        W("Screenshots: " + ", ".join(f"`{rel(x)}`" for x in shots) + ".")
W("")
W("Raw seconds: " + "; ".join(f"{k} " + ", ".join(f"{x:.4f}" for x in t(k))
                              for k in ("a-cold", "a-anchor", "a-warm", "a-warm-hot", "a-page101", "a-page101-hot", "a-failed",
                                        "a-failed-hot", "a-q", "a-q-hot",
                                        "b-cold", "b-anchor", "b-warm", "b-timeline", "b-tasks-first",
                                        "b-tasks-last", "b-task", "b-logs") if t(k)) + ".")
print("\n".join(out))
PY
cat "$TMP/report.md"
# Several runs on one day accumulate in that day's file.
{ [[ -s "$REPORT" ]] && echo; cat "$TMP/report.md"; } >>"$REPORT"
cp "$TMP"/page-*.json "$TMP"/*.tsv "$WORK/logs/" 2>/dev/null || true
say "appended to $REPORT (server logs, raw timings and page JSON in $WORK/logs)"
