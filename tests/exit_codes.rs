//! The exit-code contract of `flowpack step` and what `flowpack run` reports
//! (docs/runtime.md, "Exit codes"): a child's own 124 or 125 is a failure, never a timeout
//! or flowpack's own error; `run` reads each task's status from its record; a command
//! that cannot be found is named; bad arguments to `step` are flowpack's own failure (125);
//! the `step` synopsis in the docs is the CLI's own help.

use std::path::Path;
use std::process::Command;

use flowpack_core::invocation::{RunId, StepInvocation};

use crate::runs::{json, push, show, step_cmd, task};
use crate::util::{BIN, flowpack, flowpack_ok, workspace, write_tree};

/// `flowpack run flow.yaml --json` in `dir`: its exit code and summary.
fn run_json(dir: &Path) -> (Option<i32>, serde_json::Value) {
    let out = flowpack(dir, &["run", "flow.yaml", "--json"]);
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    (out.status.code(), summary)
}

/// The summary's entry of `name`.
fn summary_task<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {summary:#}"))
}

#[test]
fn a_childs_own_124_or_125_is_a_failure_with_its_code_not_a_timeout() {
    for code in [124, 125] {
        let tmp = tempfile::tempdir().unwrap();
        let flow = format!(
            "name: codes\ndefaults: {{cache: false}}\nsteps:\n  start: {{run: 'exit {code}', next: end}}\n  end: {{run: 'true'}}\n"
        );
        write_tree(tmp.path(), &[("flow.yaml", &flow)]);
        let (exit, summary) = run_json(tmp.path());
        assert_eq!(exit, Some(1), "the run failed: {summary:#}");
        let s = summary_task(&summary, "start/0");
        assert_eq!(s["status"], "failed", "child exit {code}: {summary:#}");
        assert_eq!(s["exit_code"], code, "child exit {code}: {summary:#}");
        let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
        let rec = &task(&info, "start/0")["attempts"][0]["record"];
        assert_eq!(rec["status"], "failed", "child exit {code}: {rec:#}");
        assert_eq!(
            rec["exit_code"], code,
            "the record keeps the child's own code"
        );
        assert!(
            rec["error"].is_null(),
            "not flowpack's own failure: {rec:#}"
        );

        // `flowpack step` alone: its process exit code is never 124 or 125 for a child's.
        let package = push(tmp.path());
        let out = step_cmd(tmp.path(), ".flowpack", &package, "local-own", "start", &[])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "child exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info = show(tmp.path(), "codes/local-own", &[]);
        let rec = &task(&info, "start/0")["attempts"][0]["record"];
        assert_eq!(rec["exit_code"], code, "{rec:#}");
    }
}

#[test]
fn a_step_past_its_timeout_is_reported_timed_out_with_124() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            "name: slow\nsteps:\n  start: {run: 'sleep 30', timeout: 1, next: end}\n  end: {run: 'true'}\n",
        )],
    );
    let (exit, summary) = run_json(tmp.path());
    assert_eq!(exit, Some(1));
    let s = summary_task(&summary, "start/0");
    assert_eq!(s["status"], "timed_out", "{summary:#}");
    assert_eq!(s["exit_code"], 124, "{summary:#}");
    let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
    let rec = &task(&info, "start/0")["attempts"][0]["record"];
    assert_eq!(rec["status"], "timed_out", "{rec:#}");
    assert_eq!(rec["exit_code"], 124, "{rec:#}");
}

#[test]
fn a_command_not_found_is_named_with_where_it_was_looked_up() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            "name: missing\nsteps:\n  start: {run: [no-such-binary, x], next: end}\n  end: {run: 'true'}\n",
        )],
    );
    let (exit, summary) = run_json(tmp.path());
    assert_eq!(exit, Some(1));
    let s = summary_task(&summary, "start/0");
    assert_eq!(s["status"], "failed", "{summary:#}");
    assert_eq!(s["exit_code"], 127, "{summary:#}");
    let run = summary["run"].as_str().unwrap();
    let logs = flowpack_ok(tmp.path(), &["logs", &format!("{run}/start")]);
    let said = "command not found: no-such-binary (the step's `run`, exec form, looked up on PATH=";
    assert!(logs.contains(said), "{logs}");
    assert!(!logs.contains("Exec("), "no Rust debug text: {logs}");
    let info = show(tmp.path(), run, &[]);
    let rec = &task(&info, "start/0")["attempts"][0]["record"];
    assert!(
        rec["error"].as_str().is_some_and(|e| e.contains(said)),
        "the record says why: {rec:#}"
    );

    // The shell form: the shell's own message, and flowpack says what 127 means.
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            "name: missing\nsteps:\n  start: {run: 'no-such-binary x', next: end}\n  end: {run: 'true'}\n",
        )],
    );
    let (_, summary) = run_json(tmp.path());
    let s = summary_task(&summary, "start/0");
    assert_eq!(s["status"], "failed", "{summary:#}");
    assert_eq!(s["exit_code"], 127, "{summary:#}");
    let run = summary["run"].as_str().unwrap();
    let logs = flowpack_ok(tmp.path(), &["logs", &format!("{run}/start")]);
    assert!(
        logs.contains("no-such-binary: not found")
            && logs.contains(
                "the step exited with code 127: the shell found no such command (its message is above)"
            ),
        "{logs}"
    );
}

#[test]
fn step_usage_errors_exit_125_like_flowpacks_own_failures() {
    let dir = workspace();
    for args in [
        vec!["step", "--bogus"],
        vec!["-v", "step", "--store", "x"],
        vec![
            "step",
            "--store",
            "x",
            "--package",
            "y",
            "--run",
            "r",
            "--step",
            "s",
            "--split-index",
            "not-a-number",
        ],
    ] {
        let out = flowpack(&dir, &args);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(flowpack(&dir, &["step", "--help"]).status.code(), Some(0));
    // Other commands keep clap's usage code.
    assert_eq!(flowpack(&dir, &["run", "--bogus"]).status.code(), Some(2));
}

#[test]
fn every_flag_the_compiler_writes_is_accepted_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    // Every field, by name: a new one fails to compile here until it is covered.
    let all = |task: Option<String>, task_parts: Vec<String>, run: RunId| StepInvocation {
        store: tmp.path().join("store").display().to_string(),
        package: format!("sha256:{}", "0".repeat(64)),
        run,
        step: "start".into(),
        task,
        task_parts,
        parents: vec!["a/0".into()],
        parents_json: Some(r#"["b/0"]"#.into()),
        same_task_parents: vec!["c".into()],
        parents_from_store: true,
        split_index: Some("2".into()),
        params: vec!["p=1".into()],
        kfp_params: vec![("q".into(), "2".into())],
        output_params: vec![format!("task={}", tmp.path().join("task").display())],
        kfp_outputs: vec![(
            "foreach".into(),
            tmp.path().join("fe").display().to_string(),
        )],
        grace: Some(3),
        image: Some("img".into()),
        resume: Some(r#"{"run": "local-x", "redo": ["start"]}"#.into()),
    };
    for inv in [
        all(Some("0".into()), vec![], RunId::Run("local-x".into())),
        all(
            None,
            vec!["1".into(), "2".into()],
            RunId::KfpUuid("abc-1".into()),
        ),
    ] {
        let out = Command::new(BIN)
            .arg("step")
            .args(inv.to_args())
            .env("FLOWPACK_CACHE_DIR", tmp.path().join("cache"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Accepted by the CLI: the step itself fails further on (no such package).
        assert!(
            !err.contains("Usage:") && err.contains("flowpack step: error:"),
            "{:?}: {err}",
            inv.to_args()
        );
        assert_eq!(out.status.code(), Some(125), "{err}");
    }
}

const SYNOPSIS_START: &str = "<!-- step-synopsis:start -->\n```\n";
const SYNOPSIS_END: &str = "```\n<!-- step-synopsis:end -->";

#[test]
fn the_step_synopsis_in_docs_runtime_md_is_the_cli_s_own_help() {
    let out = Command::new(BIN)
        .args(["step", "--help"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let path = workspace().join("docs/runtime.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(SYNOPSIS_START).expect("the start marker") + SYNOPSIS_START.len();
    let end = start + doc[start..].find(SYNOPSIS_END).expect("the end marker");
    if doc[start..end] == help {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{help}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    panic!(
        "docs/runtime.md's `flowpack step` synopsis differs from `flowpack step --help`; \
         update it with `UPDATE_DOCS=1 cargo test --test tests -- exit_codes::the_step_synopsis` \
         (or paste this between the markers):\n{help}"
    );
}
