//! Whole runs through `flowpack run` (which spawns `flowpack step` per task), and single
//! tasks through `flowpack step`: examples, artifact inheritance, joins, foreach, switch,
//! parameters, failures, tampering, retries, timeouts and resume. Signals: `signals.rs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, BIN, flowpack, flowpack_ok, write_tree};

pub(crate) fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `flowpack run` in `dir` with extra environment; returns the output.
fn run_flow(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .args(args)
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("FLOWPACK_STORE").output().unwrap()
}

fn run_ok(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run_flow(dir, &all, &[]);
    assert!(
        out.status.success(),
        "run failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    json(&String::from_utf8_lossy(&out.stdout))
}

pub(crate) fn show(dir: &Path, run: &str, store: &[&str]) -> serde_json::Value {
    let mut args = vec!["show", run, "--json"];
    args.extend_from_slice(store);
    json(&flowpack_ok(dir, &args))
}

pub(crate) fn task<'a>(info: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    info["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {info:#}"))
}

fn copy_example(name: &str, to: &Path) {
    let src = util::workspace().join("examples").join(name);
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn hello_on(store: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    copy_example("hello", tmp.path());
    let mut args = vec!["flow.yaml", "--param", "times=3"];
    let store_args: Vec<String> = store
        .iter()
        .flat_map(|s| ["--store".to_string(), s.clone()])
        .collect();
    let store_refs: Vec<&str> = store_args.iter().map(String::as_str).collect();
    args.extend_from_slice(&store_refs);
    let summary = run_ok(tmp.path(), &args);
    assert_eq!(summary["succeeded"], true);
    let run = summary["run"].as_str().unwrap();
    assert!(run.starts_with("local-"), "{run}");
    let info = show(tmp.path(), run, &store_refs);
    assert_eq!(info["status"], "succeeded");
    assert_eq!(info["record"]["parameters"]["times"], 3);
    for t in ["start/0", "greet/0", "end/0"] {
        assert_eq!(
            task(&info, t)["attempts"][0]["record"]["status"],
            "succeeded",
            "{t}"
        );
    }
    let mut get = vec!["artifacts", "get"];
    let target = format!("{run}/greet/greetings.txt");
    get.push(&target);
    get.extend_from_slice(&["-o", "-"]);
    get.extend_from_slice(&store_refs);
    assert_eq!(
        flowpack_ok(tmp.path(), &get),
        "Hello, flowpack!\n".repeat(3)
    );
    let logs_target = format!("{run}/end");
    let mut logs = vec!["logs", logs_target.as_str()];
    logs.extend_from_slice(&store_refs);
    let text = flowpack_ok(tmp.path(), &logs);
    assert_eq!(
        text.matches(" stdout Hello, flowpack!").count(),
        3,
        "{text}"
    );
}

#[test]
fn hello_runs_on_the_local_store() {
    hello_on(None);
}

#[test]
fn hello_runs_on_s3() {
    hello_on(Some(util::s3_store("runs")));
}

#[test]
fn the_switch_example_routes_by_the_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    copy_example("switch", tmp.path());
    let pass = run_ok(tmp.path(), &["flow.yaml"]);
    let fail = run_ok(tmp.path(), &["flow.yaml", "--param", "score=0.5"]);
    let pass_info = show(tmp.path(), pass["run"].as_str().unwrap(), &[]);
    let fail_info = show(tmp.path(), fail["run"].as_str().unwrap(), &[]);
    let steps = |info: &serde_json::Value| -> Vec<String> {
        info["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["step"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        steps(&pass_info).contains(&"publish".into())
            && !steps(&pass_info).contains(&"alert".into())
    );
    assert!(
        steps(&fail_info).contains(&"alert".into())
            && !steps(&fail_info).contains(&"publish".into())
    );
    let run = fail["run"].as_str().unwrap();
    assert_eq!(
        flowpack_ok(
            tmp.path(),
            &[
                "artifacts",
                "get",
                &format!("{run}/end/published"),
                "-o",
                "-"
            ]
        ),
        "no"
    );
}

#[test]
fn the_train_example_trains_with_its_env_layer() {
    let tmp = tempfile::tempdir().unwrap();
    copy_example("train", tmp.path());
    let out = Command::new(BIN)
        .args(["run", "flow.yaml", "--json"])
        .current_dir(tmp.path())
        .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
        .env("FLOWPACK_UV", util::find_uv())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("wins with accuracy"), "{stderr}");
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    // start, baseline, grid, 4 forests, best_forest, pick, end
    assert_eq!(summary["tasks"].as_array().unwrap().len(), 10);
    let run = summary["run"].as_str().unwrap();
    let winner = flowpack_ok(
        tmp.path(),
        &["artifacts", "get", &format!("{run}/pick/winner"), "-o", "-"],
    );
    assert!(
        ["baseline", "best_forest"].contains(&winner.as_str()),
        "{winner}"
    );
}

/// A flow whose steps check, in Python, what flowpack gives them.
const SEMANTICS_FLOW: &str = r#"name: semantics
parameters:
  n: {type: int, default: 2}
  label: {type: string, default: "x y"}
steps:
  start: {run: python3 s.py start, next: [left, right]}
  left:  {run: python3 s.py left, next: meet}
  right: {run: python3 s.py right, next: meet}
  meet:  {run: python3 s.py meet, join: true, next: fan}
  fan:   {run: python3 s.py fan, foreach: items, next: each}
  each:  {run: python3 s.py each, next: after}
  after: {run: python3 s.py after, next: gather}
  gather: {run: python3 s.py gather, join: true, next: end}
  end:   {run: python3 s.py end}
"#;

const SEMANTICS_PY: &str = r#"
import json, os, pathlib, sys
I = pathlib.Path(os.environ["FLOWPACK_INPUT_DIR"])
O = pathlib.Path(os.environ["FLOWPACK_OUTPUT_DIR"])
P = json.loads(pathlib.Path(os.environ["FLOWPACK_PARAMS"]).read_text())
step = sys.argv[1]
def w(name, text): (O / name).write_text(text)
def r(*parts): return (I.joinpath(*parts)).read_text()
assert os.environ["FLOWPACK_STEP"] == step
assert os.environ["FLOWPACK_FLOW"] == "semantics"
if step == "start":
    assert P == {"n": 3, "label": "x y"}, P
    assert os.environ["FLOWPACK_PARAM_N"] == "3" and os.environ["FLOWPACK_PARAM_LABEL"] == "x y"
    w("common", "same"); w("shared", "from-start"); os.mkdir(O / "folder"); (O / "folder" / "f.txt").write_text("in a folder")
elif step == "left":
    assert r("shared") == "from-start" and r("folder", "f.txt") == "in a folder"
    w("shared", "from-left"); w("only_left", "L")
elif step == "right":
    w("only_right", "R")
elif step == "meet":
    assert r("left", "shared") == "from-left" and r("right", "shared") == "from-start"
    assert r("common") == "same" and not (I / "shared").exists(), "differing artifacts stay namespaced"
    assert r("left", "only_left") == "L" and not (I / "only_left").exists()
    w("met", "yes")
elif step == "fan":
    assert r("met") == "yes" and r("common") == "same"
    w("items", json.dumps(["a", {"k": 1}, 7]))
elif step == "each":
    i = int(os.environ["FLOWPACK_SPLIT_INDEX"]); item = os.environ["FLOWPACK_SPLIT_ITEM"]
    assert os.environ["FLOWPACK_TASK_ID"] == str(i)
    assert item == ["a", '{"k":1}', "7"][i], item
    w("value", item)
elif step == "after":
    assert "FLOWPACK_SPLIT_ITEM" not in os.environ and os.environ["FLOWPACK_SPLIT_INDEX"] == os.environ["FLOWPACK_TASK_ID"]
    w("seen", r("value"))
elif step == "gather":
    got = [r(str(i), "seen") for i in range(3)]
    assert got == ["a", '{"k":1}', "7"], got
    w("all", json.dumps(got))
elif step == "end":
    assert r("met") == "yes" and json.loads(r("all"))[0] == "a"
    print("all checks passed")
"#;

fn semantics_on(store: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[("flow.yaml", SEMANTICS_FLOW), ("s.py", SEMANTICS_PY)],
    );
    let store_args: Vec<String> = store
        .iter()
        .flat_map(|s| ["--store".to_string(), s.clone()])
        .collect();
    let store_refs: Vec<&str> = store_args.iter().map(String::as_str).collect();
    let mut args = vec!["flow.yaml", "--param", "n=3", "--max-workers", "2"];
    args.extend_from_slice(&store_refs);
    let summary = run_ok(tmp.path(), &args);
    assert_eq!(summary["succeeded"], true);
    let info = show(tmp.path(), summary["run"].as_str().unwrap(), &store_refs);
    for t in ["each/0", "each/1", "each/2", "after/2", "gather/0"] {
        assert_eq!(
            task(&info, t)["attempts"][0]["record"]["status"],
            "succeeded",
            "{t}"
        );
    }
    assert_eq!(
        task(&info, "gather/0")["attempts"][0]["record"]["parents"],
        serde_json::json!(["after/0", "after/1", "after/2"])
    );
    // Inherited artifacts are references: `common` keeps its origin.
    assert_eq!(
        task(&info, "end/0")["artifacts"]["common"]["origin"],
        "start/0/0"
    );
}

#[test]
fn inheritance_joins_foreach_and_parameters_behave_as_documented() {
    semantics_on(None);
}

#[test]
fn inheritance_joins_foreach_and_parameters_behave_the_same_on_s3() {
    semantics_on(Some(util::s3_store("semantics")));
}

#[test]
fn logs_of_a_running_task_show_up_within_seconds_and_follow_ends_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            "name: slow\nsteps:\n  start: {run: 'echo tick; sleep 4; echo tock', next: end}\n  end: {run: 'true'}\n",
        )],
    );
    let package = push(tmp.path());
    let mut step = step_cmd(
        tmp.path(),
        ".flowpack",
        &package,
        "local-slow",
        "start",
        &[],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    // Poll the store as a user would: the first line appears while the task runs.
    let started = Instant::now();
    loop {
        let out = flowpack(tmp.path(), &["logs", "local-slow/start"]);
        if String::from_utf8_lossy(&out.stdout).contains("stdout tick") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no log line within 3 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        step.try_wait().unwrap().is_none(),
        "the task is still running"
    );
    let followed = flowpack_ok(tmp.path(), &["logs", "local-slow/start", "--follow"]);
    assert!(
        followed.contains("stdout tick") && followed.contains("stdout tock"),
        "{followed}"
    );
    assert_eq!(followed.matches("stdout tick").count(), 1, "{followed}");
    assert!(step.wait().unwrap().success());
}

const FAILING_FLOW: &str = "name: failing\nsteps:\n  start: {run: 'echo before; echo to-stderr >&2; exit 3', next: end}\n  end: {run: 'true'}\n";

#[test]
fn a_failing_step_fails_the_run_and_keeps_its_logs() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FAILING_FLOW)]);
    let out = run_flow(tmp.path(), &["flow.yaml", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(summary["succeeded"], false);
    let run = summary["run"].as_str().unwrap();
    let info = show(tmp.path(), run, &[]);
    assert_eq!(info["status"], "failed");
    let start = &task(&info, "start/0")["attempts"][0]["record"];
    assert_eq!(
        (start["status"].as_str(), start["exit_code"].as_i64()),
        (Some("failed"), Some(3))
    );
    assert!(
        info["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["step"] != "end"),
        "end never ran"
    );
    let logs = flowpack_ok(tmp.path(), &["logs", &format!("{run}/start")]);
    assert!(
        logs.contains(" stdout before") && logs.contains(" stderr to-stderr"),
        "{logs}"
    );
    assert!(logs.contains("exited with code 3"), "{logs}");
    let text = flowpack_ok(tmp.path(), &["show", run]);
    assert!(
        text.contains("failed") && text.contains("exit code 3"),
        "{text}"
    );
}

#[test]
fn retries_make_new_attempts_and_timeouts_stop_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("marker");
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            &format!(
                "name: flaky\nsteps:\n  start: {{run: 'if [ -e {m} ]; then exit 0; fi; touch {m}; exit 1', next: slow, retry: {{times: 2, delay: 0s}}}}\n  slow: {{run: 'sleep 30', next: end, timeout: 1s}}\n  end: {{run: 'true'}}\n",
                m = marker.display()
            ),
        )],
    );
    let started = Instant::now();
    let out = run_flow(tmp.path(), &["flow.yaml", "--json"], &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout stopped the sleep"
    );
    assert_eq!(out.status.code(), Some(1));
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
    let start = task(&info, "start/0")["attempts"].as_array().unwrap();
    assert_eq!(start.len(), 2);
    assert_eq!(start[0]["record"]["status"], "failed");
    assert_eq!(start[1]["record"]["status"], "succeeded");
    assert_eq!(start[1]["record"]["attempt"], 1);
    let slow = &task(&info, "slow/0")["attempts"][0]["record"];
    assert_eq!(
        (slow["status"].as_str(), slow["exit_code"].as_i64()),
        (Some("timed_out"), Some(124))
    );
}

/// Pushes the flow in `dir` and returns the package digest.
pub(crate) fn push(dir: &Path) -> String {
    json(&flowpack_ok(dir, &["push", "flow.yaml", "--json"]))["package"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `flowpack step` of `step` in `dir` on `store` (`.flowpack`: `dir`'s local store).
pub(crate) fn step_cmd(
    dir: &Path,
    store: &str,
    package: &str,
    run: &str,
    step: &str,
    extra: &[&str],
) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "step",
        "--store",
        store,
        "--package",
        package,
        "--run",
        run,
        "--step",
        step,
    ])
    .args(extra)
    .current_dir(dir)
    .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"));
    cmd
}

#[test]
fn a_missing_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            "name: missing\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true', inputs: [model]}\n",
        )],
    );
    let out = run_flow(tmp.path(), &["flow.yaml", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
    let rec = &task(&info, "end/0")["attempts"][0]["record"];
    assert_eq!(rec["exit_code"], 125);
    let error = rec["error"].as_str().unwrap();
    assert!(
        error.contains("artifact 'model' is not among the artifacts of start/0"),
        "{error}"
    );
}

#[test]
fn a_tampered_package_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            &format!(
                "name: tamper\nsteps:\n  start: {{run: 'touch {}', next: end}}\n  end: {{run: 'true'}}\n",
                marker.display()
            ),
        )],
    );
    let report = json(&flowpack_ok(tmp.path(), &["push", "flow.yaml", "--json"]));
    let hex = report["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let blob = tmp
        .path()
        .join(format!(".flowpack/v1/blobs/sha256/{}/{hex}", &hex[..2]));
    let forged = zstd::encode_all(&b"not the code"[..], 3).unwrap();
    std::fs::write(&blob, forged).unwrap();
    let out = step_cmd(
        tmp.path(),
        ".flowpack",
        report["package"].as_str().unwrap(),
        "local-t",
        "start",
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&hex) && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert!(!marker.exists(), "nothing may run from a tampered package");
}

#[test]
fn resume_reuses_committed_tasks_without_uploading_them_again() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("broken");
    std::fs::write(&marker, "").unwrap();
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            &format!(
                "name: resumable\nsteps:\n  start: {{run: 'head -c 100000 /dev/urandom > $FLOWPACK_OUTPUT_DIR/big', next: middle}}\n  middle: {{run: 'test ! -e {}', next: end}}\n  end: {{run: 'test -s $FLOWPACK_INPUT_DIR/big'}}\n",
                marker.display()
            ),
        )],
    );
    let out = run_flow(tmp.path(), &["flow.yaml", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let failed = json(&String::from_utf8_lossy(&out.stdout))["run"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(&marker).unwrap();
    let out = flowpack(tmp.path(), &["resume", &failed, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = json(&String::from_utf8_lossy(&out.stdout));
    let info = show(tmp.path(), resumed["run"].as_str().unwrap(), &[]);
    assert_eq!(info["status"], "succeeded");
    assert_eq!(info["record"]["resumed_from"], failed.as_str());
    let start = &task(&info, "start/0")["attempts"][0]["record"];
    assert_eq!(start["status"], "reused");
    assert_eq!(
        task(&info, "middle/0")["attempts"][0]["record"]["status"],
        "succeeded"
    );
    // The reused artifact is the same blob: nothing was uploaded for it.
    let old = show(tmp.path(), &failed, &[]);
    assert_eq!(
        task(&info, "end/0")["artifacts"]["big"],
        task(&old, "start/0")["artifacts"]["big"]
    );
}

#[test]
fn two_runs_of_one_flow_at_once_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    copy_example("hello", tmp.path());
    let spawn = || {
        Command::new(BIN)
            .args(["run", "flow.yaml", "--json"])
            .current_dir(tmp.path())
            .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ra, rb) = (
        json(&String::from_utf8_lossy(&a.stdout)),
        json(&String::from_utf8_lossy(&b.stdout)),
    );
    assert_ne!(ra["run"], rb["run"]);
    let runs = json(&flowpack_ok(tmp.path(), &["runs", "hello", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------
// Where runs are (docs/configuration.md "The default store"), and the reading commands'
// edges: `logs --follow` across retries, `--attempt`, FLOW/RUN, short package digests.

/// Asserts that no folder from `dir` up holds a `.flowpack`: the tests below place stores
/// by the upward search, so a stray one above the temp folder would make them lie.
fn assert_no_store_above(dir: &Path) {
    for d in dir.ancestors() {
        assert!(
            !d.join(".flowpack").exists(),
            "{} exists: remove it, it hides the default-store tests' own stores",
            d.join(".flowpack").display()
        );
    }
}

/// The `flowpack …` commands in `text`: every hint, cut at `;`, `,`, `)` or the line's end.
fn hints(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("flowpack ") {
            let tail = &rest[at + "flowpack ".len()..];
            let end = tail.find([';', ',', ')', '`']).unwrap_or(tail.len());
            let words: Vec<String> = tail[..end].split_whitespace().map(String::from).collect();
            if words.first().is_some_and(|w| {
                ["show", "logs", "resume", "artifacts", "runs", "fetch"].contains(&w.as_str())
            }) {
                out.push(words);
            }
            rest = &tail[end..];
        }
    }
    out
}

#[test]
fn the_hints_run_prints_work_verbatim_from_where_run_was_typed_and_below() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().canonicalize().unwrap();
    assert_no_store_above(&top);
    let marker = top.join("broken");
    std::fs::write(&marker, "").unwrap();
    write_tree(
        &top,
        &[
            (
                "proj/flow.yaml",
                &format!(
                    "name: hinted\nsteps:\n  start: {{run: 'echo made > $FLOWPACK_OUTPUT_DIR/thing; echo started', next: middle}}\n  middle: {{run: 'test ! -e {}', next: end}}\n  end: {{run: 'true'}}\n",
                    marker.display()
                ),
            ),
            ("sub/deeper/.keep", ""),
        ],
    );
    // `run` from the folder above the flow's: the store is made here, not beside the flow.
    let out = run_flow(&top, &["proj/flow.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(top.join(".flowpack").is_dir(), "{printed}");
    assert!(!top.join("proj/.flowpack").exists(), "{printed}");
    let hinted = hints(&printed);
    let commands: Vec<&str> = hinted.iter().map(|h| h[0].as_str()).collect();
    assert!(
        commands.contains(&"show") && commands.contains(&"resume"),
        "run prints where to look: {printed}"
    );
    std::fs::remove_file(&marker).unwrap();
    for dir in [top.clone(), top.join("sub/deeper")] {
        for hint in &hinted {
            let args: Vec<&str> = hint.iter().map(String::as_str).collect();
            let out = flowpack(&dir, &args);
            assert!(
                out.status.success(),
                "`flowpack {}` in {}: {}",
                hint.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            !dir.join(".flowpack").exists() || dir == top,
            "a hint made a store"
        );
    }
    // The other reading commands find it from below too.
    let run = hinted.iter().find(|h| h[0] == "show").unwrap()[1].clone();
    let below = top.join("sub/deeper");
    let logs = flowpack_ok(&below, &["logs", &format!("{run}/start")]);
    assert!(logs.contains("stdout started"), "{logs}");
    assert_eq!(
        flowpack_ok(
            &below,
            &["artifacts", "get", &format!("{run}/start/thing"), "-o", "-"]
        ),
        "made\n"
    );
    let runs = json(&flowpack_ok(&below, &["runs", "--json"]));
    assert_eq!(
        runs.as_array().unwrap().len(),
        3,
        "the run and its two resumes"
    );
    assert!(!below.join(".flowpack").exists() && !top.join("sub/.flowpack").exists());
}

#[test]
fn reading_commands_without_a_store_say_so_and_create_none() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_no_store_above(dir);
    for args in [
        vec!["runs"],
        vec!["runs", "--json"],
        vec!["show", "local-x"],
        vec!["logs", "local-x/start"],
        vec!["artifacts", "get", "local-x/start/thing"],
        vec!["resume", "local-x"],
        vec!["fetch", "sha256:0123456789ab", "-o", "out"],
    ] {
        let out = flowpack(dir, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "no flowpack store found in {} or any parent folder",
                dir.display()
            )) && stderr.contains("--store")
                && stderr.contains("FLOWPACK_STORE"),
            "{args:?}: {stderr}"
        );
        assert!(!dir.join(".flowpack").exists(), "{args:?} made a store");
    }
    // A folder named by --store that does not exist is not made by a reading command.
    let out = flowpack(dir, &["runs", "--store", "nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nowhere"), "{stderr}");
    assert!(!dir.join("nowhere").exists());
    // A `.flowpack` that is not a folder is named, not searched past.
    std::fs::write(dir.join(".flowpack"), "").unwrap();
    write_tree(
        dir,
        &[(
            "flow.yaml",
            "name: nowhere\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true'}\n",
        )],
    );
    std::fs::create_dir(dir.join("below")).unwrap();
    for args in [vec!["runs"], vec!["push", "../flow.yaml"]] {
        let out = flowpack(&dir.join("below"), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&dir.join(".flowpack").display().to_string())
                && stderr.contains("not a folder"),
            "{stderr}"
        );
    }
}

#[test]
fn logs_follow_goes_on_across_a_retry_until_the_task_is_final() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("failed-once");
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            &format!(
                "name: retried\nsteps:\n  start: {{run: 'if [ -e {m} ]; then echo second-try; exit 0; fi; touch {m}; echo first-try; sleep 2; exit 1', next: end, retry: {{times: 2, delay: 2s}}}}\n  end: {{run: 'true'}}\n",
                m = marker.display()
            ),
        )],
    );
    let mut run = Command::new(BIN)
        .args(["run", "flow.yaml"])
        .current_dir(tmp.path())
        .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
        .env_remove("FLOWPACK_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `run RUN of flow …` comes on stderr before any task starts.
    let mut stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let id = loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "run ended before naming its run");
        if let Some(rest) = line.strip_prefix("run local-") {
            break format!("local-{}", rest.split_whitespace().next().unwrap());
        }
    };
    let drain = std::thread::spawn(move || std::io::Read::read_to_end(&mut stderr, &mut vec![]));
    let started = Instant::now();
    while !flowpack(tmp.path(), &["show", &id]).status.success() {
        assert!(started.elapsed() < Duration::from_secs(10), "no run record");
        std::thread::sleep(Duration::from_millis(50));
    }
    let followed = Command::new(BIN)
        .args(["logs", &format!("{id}/start"), "--follow"])
        .current_dir(tmp.path())
        .env_remove("FLOWPACK_STORE")
        .output()
        .unwrap();
    assert!(run.wait().unwrap().success());
    drain.join().unwrap().unwrap();
    let text = String::from_utf8_lossy(&followed.stdout);
    let notes = String::from_utf8_lossy(&followed.stderr);
    assert!(followed.status.success(), "{notes}");
    let (a, b) = (
        text.find("stdout first-try")
            .unwrap_or_else(|| panic!("{text}")),
        text.find("stdout second-try")
            .unwrap_or_else(|| panic!("follow stopped at the first attempt:\n{text}")),
    );
    assert!(a < b, "{text}");
    assert!(notes.contains("attempt 1"), "a separator names it: {notes}");
    assert!(
        !text.contains("attempt 1 "),
        "separators go to stderr: {text}"
    );
}

#[test]
fn logs_attempt_of_an_attempt_the_task_does_not_have_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_example("hello", tmp.path());
    let run = run_ok(tmp.path(), &["flow.yaml"]);
    let run = run["run"].as_str().unwrap();
    let out = flowpack(
        tmp.path(),
        &["logs", &format!("{run}/end"), "--attempt", "2"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no attempt 2") && stderr.contains("it has attempt 0"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // The attempt it has still prints.
    let text = flowpack_ok(
        tmp.path(),
        &["logs", &format!("{run}/end"), "--attempt", "0"],
    );
    assert!(text.contains("stdout Hello, flowpack!"), "{text}");
}

#[test]
fn flow_slash_run_names_a_run_everywhere_a_run_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_example("hello", tmp.path());
    let run = run_ok(tmp.path(), &["flow.yaml", "--param", "times=2"]);
    let run = run["run"].as_str().unwrap();
    let full = format!("hello/{run}");
    let bare = flowpack_ok(tmp.path(), &["logs", &format!("{run}/end")]);
    for target in [format!("{full}/end"), format!("{full}/end/0")] {
        assert_eq!(
            flowpack_ok(tmp.path(), &["logs", &target]),
            bare,
            "{target}"
        );
    }
    for target in [
        format!("{full}/greet/greetings.txt"),
        format!("{full}/greet/0/greetings.txt"),
    ] {
        assert_eq!(
            flowpack_ok(tmp.path(), &["artifacts", "get", &target, "-o", "-"]),
            "Hello, flowpack!\n".repeat(2),
            "{target}"
        );
    }
    assert_eq!(show(tmp.path(), &full, &[])["record"]["run"], run);
    // A flow that has no such run is named as such.
    let out = flowpack(tmp.path(), &["logs", &format!("other/{run}/end")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("other") && stderr.contains("flowpack runs"),
        "{stderr}"
    );
}

#[test]
fn fetch_takes_the_short_digest_run_prints() {
    let tmp = tempfile::tempdir().unwrap();
    copy_example("hello", tmp.path());
    let out = run_flow(tmp.path(), &["flow.yaml"], &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `run … (package 0123456789ab) in …`
    let short = stderr
        .split("(package ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_string();
    let full = json(&flowpack_ok(
        tmp.path(),
        &["fetch", &short, "-o", "a", "--json"],
    ))["package"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(full.starts_with(&format!("sha256:{short}")), "{full}");
    for (given, dir) in [
        (format!("sha256:{short}"), "b"),
        (full[..30].to_string(), "c"),
    ] {
        let got = json(&flowpack_ok(
            tmp.path(),
            &["fetch", &given, "-o", dir, "--json"],
        ));
        assert_eq!(got["package"], full.as_str(), "{given}");
    }
    let fail = |given: &str, want: &[&str]| {
        let out = flowpack(tmp.path(), &["fetch", given, "-o", "never"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{given}: {stderr}");
        for w in want {
            assert!(stderr.contains(w), "{given}: no '{w}' in {stderr}");
        }
        assert!(!tmp.path().join("never").exists());
    };
    fail(&short[..6], &["the first 12 hex digits"]);
    fail("ffffffffffff", &["no package", "ffffffffffff"]);
    // Another blob sharing the printed prefix makes it ambiguous: both are listed.
    let hex = &full["sha256:".len()..];
    let twin = format!("{}{}", &hex[..12], "0".repeat(52));
    let twin = if twin == hex {
        format!("{}{}", &hex[..12], "1".repeat(52))
    } else {
        twin
    };
    std::fs::write(
        tmp.path()
            .join(format!(".flowpack/v1/blobs/sha256/{}/{twin}", &hex[..2])),
        "",
    )
    .unwrap();
    fail(&short, &["ambiguous", hex, &twin]);
    // The full digest still works.
    flowpack_ok(tmp.path(), &["fetch", &full, "-o", "d"]);
}

#[test]
fn hints_repeat_the_store_run_was_given() {
    let tmp = tempfile::tempdir().unwrap();
    let top = tmp.path().canonicalize().unwrap();
    assert_no_store_above(&top);
    write_tree(
        &top,
        &[
            (
                "proj/flow.yaml",
                "name: elsewhere\nsteps:\n  start: {run: 'exit 3', next: end}\n  end: {run: 'true'}\n",
            ),
            ("other/.keep", ""),
        ],
    );
    let store = top.join("stores/one");
    let store_arg = store.display().to_string();
    let out = run_flow(&top, &["proj/flow.yaml", "--store", &store_arg], &[]);
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let hinted = hints(&printed);
    assert!(hinted.len() >= 2, "{printed}");
    // Printed with --store, each hint works verbatim from a folder with no store at all.
    for hint in hinted.iter().filter(|h| h[0] == "show") {
        assert!(
            hint.ends_with(&["--store".into(), store_arg.clone()]),
            "{printed}"
        );
        let args: Vec<&str> = hint.iter().map(String::as_str).collect();
        let out = flowpack(&top.join("other"), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!top.join("other/.flowpack").exists() && !top.join(".flowpack").exists());
}
