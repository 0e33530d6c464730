//! Exit hooks (`on_failure`, `on_exit`): run by `flowpack run` after every other task
//! ended, as plain `flowpack step` tasks that read the run's status and failed tasks from
//! the store; an `on_failure` hook of a run that succeeded is recorded as skipped. YAML
//! and Python flows; validation errors with file:line.

use std::path::Path;

use crate::runs::{json, show, task};
use crate::util::{BIN, flowpack, write_tree};

const FLOW: &str = r#"name: hooks
parameters:
  fail: false
  hook_fails: false
on_failure: alert
on_exit: cleanup
steps:
  start: {run: 'true', next: [a, b]}
  a: {run: 'true', next: j}
  b: {run: 'test "$FLOWPACK_PARAM_FAIL" = false', next: j}
  j: {run: 'true', join: true, next: end}
  end: {run: 'true'}
  alert: {run: 'printf %s "$FLOWPACK_RUN_STATUS" > "$FLOWPACK_OUTPUT_DIR/status"; printf %s "$FLOWPACK_FAILED_TASKS" > "$FLOWPACK_OUTPUT_DIR/failed"'}
  cleanup:
    run: 'printf %s "$FLOWPACK_RUN_STATUS" > "$FLOWPACK_OUTPUT_DIR/status"; cp "$FLOWPACK_FAILED_TASKS_FILE" "$FLOWPACK_OUTPUT_DIR/failed"; test "$FLOWPACK_PARAM_HOOK_FAILS" = false'
"#;

/// `flowpack run FLOW --json ARGS` in `dir`: whether it exited 0, and its summary.
fn run(dir: &Path, flow: &str, args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["run", flow, "--json"];
    all.extend_from_slice(args);
    let out = flowpack(dir, &all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.trim().is_empty(),
        "no summary:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), json(&stdout))
}

/// The newest attempt's status of `name` in `show --json`.
fn status(info: &serde_json::Value, name: &str) -> String {
    let t = task(info, name);
    let a = t["attempts"].as_array().unwrap().last().unwrap();
    a["record"]["status"].as_str().unwrap().to_string()
}

/// An artifact of task 0 of `step` as text.
fn artifact(dir: &Path, run: &str, step: &str, name: &str) -> String {
    let out = flowpack(
        dir,
        &[
            "artifacts",
            "get",
            &format!("{run}/{step}/{name}"),
            "-o",
            "-",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hooks_of(dir: &Path, flow: &str, fail_param: &str) {
    // A failed run: both hooks run, see `failed` and the failed task.
    let (ok, summary) = run(dir, flow, &["--param", &format!("{fail_param}=true")]);
    assert!(!ok, "{summary:#}");
    assert_eq!(summary["succeeded"], false);
    let run_id = summary["run"].as_str().unwrap();
    let info = show(dir, run_id, &[]);
    assert_eq!(status(&info, "alert/0"), "succeeded");
    assert_eq!(status(&info, "cleanup/0"), "succeeded");
    for hook in ["alert", "cleanup"] {
        assert_eq!(artifact(dir, run_id, hook, "status"), "failed");
        let failed: Vec<String> =
            serde_json::from_str(&artifact(dir, run_id, hook, "failed")).unwrap();
        assert_eq!(failed, ["b/0"], "{hook}");
    }
    // on_failure runs first, then on_exit.
    let tasks: Vec<&str> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap())
        .collect();
    assert_eq!(
        tasks[tasks.len() - 2..],
        ["alert/0", "cleanup/0"],
        "{tasks:?}"
    );

    // A run that succeeds: on_exit runs and sees `succeeded`; on_failure is skipped.
    let (ok, summary) = run(dir, flow, &[]);
    assert!(ok, "{summary:#}");
    let run_id = summary["run"].as_str().unwrap();
    let info = show(dir, run_id, &[]);
    assert_eq!(info["status"], "succeeded");
    assert_eq!(status(&info, "alert/0"), "skipped");
    let summarized = summary["tasks"].as_array().unwrap().iter();
    let alert = summarized.clone().find(|t| t["task"] == "alert/0").unwrap();
    assert_eq!(
        alert["status"], "skipped",
        "the summary says what the record says"
    );
    assert!(
        task(&info, "alert/0")["artifacts"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    assert_eq!(status(&info, "cleanup/0"), "succeeded");
    assert_eq!(artifact(dir, run_id, "cleanup", "status"), "succeeded");
    assert_eq!(artifact(dir, run_id, "cleanup", "failed").trim(), "[]");
}

#[test]
fn a_yaml_flow_runs_its_hooks_with_the_runs_status() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW)]);
    hooks_of(tmp.path(), "flow.yaml", "fail");
}

#[test]
fn a_failing_hook_does_not_change_the_runs_status() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW)]);
    let (ok, summary) = run(tmp.path(), "flow.yaml", &["--param", "hook_fails=true"]);
    assert!(
        ok,
        "the flow succeeded: exit 0 whatever its hook did: {summary:#}"
    );
    assert_eq!(summary["succeeded"], true);
    let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
    assert_eq!(info["status"], "succeeded");
    assert_eq!(status(&info, "cleanup/0"), "failed");
}

#[test]
fn hooks_are_validated_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = FLOW
        .replace("on_failure: alert", "on_failure: alrt")
        .replace(
            "  a: {run: 'true', next: j}",
            "  a: {run: 'true', next: cleanup}",
        );
    write_tree(tmp.path(), &[("flow.yaml", &bad)]);
    let out = std::process::Command::new(BIN)
        .args(["check", "flow.yaml"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "flow.yaml:5:13: `on_failure` names unknown step 'alrt': did you mean 'alert'?"
        ),
        "{err}"
    );
    assert!(
        err.contains("flow.yaml:9:26: step 'a' leads to 'cleanup', the `on_exit` hook"),
        "{err}"
    );
}

const PY_FLOW: &str = r#"from flowpack import FlowSpec, Parameter, current, exit_hook, step


@exit_hook(on_failure="alert", on_exit="cleanup")
class HookFlow(FlowSpec):
    broken = Parameter("broken", default=False)

    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.j)

    @step
    def b(self):
        if self.broken:
            raise RuntimeError("b fails")
        self.next(self.j)

    @step
    def j(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

    @step
    def alert(self):
        self.status = current.run_status
        self.failed = current.failed_tasks

    @step
    def cleanup(self):
        self.status = current.run_status
        self.failed = current.failed_tasks
"#;

#[test]
fn a_python_flow_runs_its_hooks_with_the_runs_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.py", PY_FLOW)]);
    let (ok, failed) = run(dir, "flow.py", &["--param", "broken=true"]);
    assert!(!ok, "{failed:#}");
    let (ok, passed) = run(dir, "flow.py", &[]);
    assert!(ok, "{passed:#}");
    let info = show(dir, passed["run"].as_str().unwrap(), &[]);
    assert_eq!(status(&info, "alert/0"), "skipped");
    let read = crate::python_flows::client(
        dir,
        None,
        &format!(
            "from flowpack import Run\n\
             f = Run('HookFlow/{}')\n\
             print(f['alert'].task.data.status, f['alert'].task.data.failed)\n\
             print(f['cleanup'].task.data.status, f['cleanup'].task.data.failed)\n\
             p = Run('HookFlow/{}')\n\
             print(p['cleanup'].task.data.status, p['cleanup'].task.data.failed)",
            failed["run"].as_str().unwrap(),
            passed["run"].as_str().unwrap()
        ),
    );
    assert_eq!(
        read, "failed ['b/0']\nfailed ['b/0']\nsucceeded []\n",
        "the hooks see the run's status and failed tasks"
    );
}

#[test]
fn python_exit_hooks_are_checked_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = PY_FLOW.replace(
        "        self.status = current.run_status\n        self.failed = current.failed_tasks\n\n    @step\n    def cleanup",
        "        self.next(self.end)\n\n    @step\n    def cleanup",
    );
    write_tree(tmp.path(), &[("flow.py", &bad)]);
    let out = flowpack(tmp.path(), &["check", "flow.py"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("flow.py:32:9: step 'alert' is an exit hook (it runs after the flow), and must not call self.next(...)"),
        "{err}"
    );
}

/// A hook's input is the run's outcome, which no cache key holds: a second identical run
/// reuses the flow's tasks from the step cache but runs its hooks again.
#[test]
fn hooks_run_in_every_run_even_when_every_other_task_is_reused() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW)]);
    let (ok, _) = run(tmp.path(), "flow.yaml", &[]);
    assert!(ok);
    let (ok, summary) = run(tmp.path(), "flow.yaml", &[]);
    assert!(ok, "{summary:#}");
    let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
    assert_eq!(status(&info, "a/0"), "reused", "the cache is on");
    let summarized = summary["tasks"].as_array().unwrap();
    let a = summarized.iter().find(|t| t["task"] == "a/0").unwrap();
    assert_eq!(
        a["status"], "reused",
        "the summary says what the record says"
    );
    assert_eq!(status(&info, "cleanup/0"), "succeeded");
    assert_eq!(status(&info, "alert/0"), "skipped");
}

/// A resumed run runs its hooks again (they report the new run's outcome), never adopts
/// the origin's.
#[test]
fn a_resumed_run_runs_its_hooks_again() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW)]);
    let (ok, summary) = run(tmp.path(), "flow.yaml", &["--param", "fail=true"]);
    assert!(!ok);
    let origin = summary["run"].as_str().unwrap().to_string();
    // The fix: b no longer fails.
    let fixed = FLOW.replace(r#"test "$FLOWPACK_PARAM_FAIL" = false"#, "true");
    write_tree(tmp.path(), &[("flow.yaml", &fixed)]);
    let out = flowpack(tmp.path(), &["resume", &origin, "flow.yaml", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = json(&String::from_utf8_lossy(&out.stdout));
    let info = show(tmp.path(), resumed["run"].as_str().unwrap(), &[]);
    assert_eq!(status(&info, "a/0"), "reused");
    assert_eq!(status(&info, "b/0"), "succeeded");
    assert_eq!(status(&info, "alert/0"), "skipped");
    assert_eq!(status(&info, "cleanup/0"), "succeeded");
    for hook in ["alert/0", "cleanup/0"] {
        let attempts = task(&info, hook)["attempts"].as_array().unwrap().len();
        assert_eq!(attempts, 1, "{hook}: run once, nothing adopted before it");
    }
    let run_id = resumed["run"].as_str().unwrap();
    assert_eq!(
        artifact(tmp.path(), run_id, "cleanup", "status"),
        "succeeded"
    );
}

/// What a run's exit hooks saw: per hook task, its status and its artifacts as text; and
/// the run's own status.
fn hook_outcome(dir: &Path, run_id: &str) -> (String, Vec<(String, String, Vec<String>)>) {
    let info = show(dir, run_id, &[]);
    let hooks = ["alert/0", "cleanup/0"]
        .into_iter()
        .map(|t| {
            let arts: Vec<String> = task(&info, t)["artifacts"]
                .as_object()
                .unwrap()
                .keys()
                .map(|name| {
                    let step = t.split('/').next().unwrap();
                    format!("{name}={}", artifact(dir, run_id, step, name).trim())
                })
                .collect();
            (t.to_string(), status(&info, t), arts)
        })
        .collect();
    (info["status"].as_str().unwrap().to_string(), hooks)
}

/// The one run in `dir` whose id starts with `prefix`.
fn run_with_prefix(dir: &Path, prefix: &str) -> String {
    let runs = json(&crate::util::flowpack_ok(dir, &["runs", "--json"]));
    let ids: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run"].as_str())
        .filter(|r| r.starts_with(prefix))
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), 1, "{runs:#}");
    ids[0].clone()
}

/// On KFP the hooks run after the flow's tasks (an `ExitHandler` over the flow), see the
/// same status and failed tasks as in a local run, and an `on_failure` hook of a run that
/// succeeded is skipped, as locally.
#[test]
fn hooks_run_on_kfp_after_the_flow_as_they_do_locally() {
    for fail in ["true", "false"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_tree(dir, &[("flow.yaml", FLOW)]);
        let param = format!("fail={fail}");
        let (ok, summary) = run(dir, "flow.yaml", &["--param", &param]);
        assert_eq!(ok, fail == "false", "{summary:#}");
        crate::util::flowpack_ok(
            dir,
            &[
                "compile",
                "flow.yaml",
                "-o",
                "pipeline.yaml",
                "--allow-local",
            ],
        );
        let pipeline = dir.join("pipeline.yaml");
        crate::kfp::validate(&pipeline);
        let (kfp_ok, text) = crate::kfp::run_local_status(dir, &pipeline, &[&param]);
        assert_eq!(kfp_ok, fail == "false", "{text}");
        let local = hook_outcome(dir, &run_with_prefix(dir, "local-"));
        let kfp = hook_outcome(dir, &run_with_prefix(dir, "kfp-"));
        assert_eq!(
            local, kfp,
            "fail={fail}: the local and the KFP run's hooks differ"
        );
        if fail == "true" {
            assert_eq!(local.0, "failed");
            assert!(
                kfp.1[0].2.contains(&r#"failed=["b/0"]"#.to_string()),
                "{kfp:?}"
            );
        } else {
            assert_eq!(kfp.1[0].1, "skipped", "{kfp:?}");
        }
    }
}
