//! The Argo compiler, proven by Argo's own rules and by the executor contract: every
//! compiled WorkflowTemplate passes `validate_argo.py --strict` (Argo's JSON schema with
//! unknown fields rejected, and the controller's validation ported from `validate.go`), and
//! `tests/argo_local.py` runs it — each pod's command as Argo substitutes it, in an order
//! Argo's DAG semantics allow — through the real `flowpack step`. No Argo controller runs
//! here (docs/argo.md says what that leaves unproven).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, flowpack, flowpack_ok, write_tree};

/// The Argo development resources beside the repository (validator, schema, swagger).
pub fn shared() -> PathBuf {
    util::workspace().join("../shared/argo")
}

/// The Python with jsonschema and PyYAML (tests/run.sh installs them into .venv).
fn python() -> PathBuf {
    util::find_python()
}

/// `validate_argo.py --strict` over `files` in one call: Err with its output unless every
/// document is VALID with no warning.
pub(crate) fn validate_files(files: &[&Path]) -> Result<(), String> {
    let (ok, text) = util::run_text(
        Command::new(python())
            .arg(shared().join("validate_argo.py"))
            .args(files)
            .arg("--strict"),
    );
    if ok && text.lines().last() == Some("VALID") && !text.contains("WARN") {
        Ok(())
    } else {
        Err(text)
    }
}

pub(crate) fn validate(file: &Path) {
    if let Err(text) = validate_files(&[file]) {
        panic!("validate_argo rejected {}:\n{text}", file.display());
    }
}

/// `flowpack compile --target argo` in `dir` (the local store; `--allow-local`), validated.
pub(crate) fn compile(dir: &Path, flow: &str) -> PathBuf {
    let out = dir.join("workflow-template.yaml");
    flowpack_ok(
        dir,
        &[
            "compile",
            flow,
            "--target",
            "argo",
            "--allow-local",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    validate(&out);
    out
}

/// Runs the WorkflowTemplate with `tests/argo_local.py` (each task's command runs here, so
/// `flowpack` must be on PATH): whether it succeeded, and its output.
pub(crate) fn run_argo_local(dir: &Path, file: &Path, params: &[&str]) -> (bool, String) {
    let script = util::workspace().join("tests/argo_local.py");
    let mut argv: Vec<&OsStr> = vec![script.as_os_str(), file.as_os_str()];
    for p in params {
        argv.extend([OsStr::new("-p"), OsStr::new(*p)]);
    }
    let (ok, text) = util::run_orchestrator(&python(), dir, &argv);
    assert!(
        text.contains("argo-local: workflow "),
        "argo_local did not run:\n{text}"
    );
    (ok, text)
}

/// The run id argo_local printed.
pub(crate) fn run_id(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("argo-local: run "))
        .expect("argo_local prints its run id")
        .to_string()
}

fn copy_example(name: &str, dir: &Path) {
    let src = util::workspace().join("examples").join(name);
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
}

/// Every example compiles to a WorkflowTemplate Argo's rules accept.
#[test]
fn every_example_compiles_to_a_valid_workflow_template() {
    let mut files = Vec::new();
    let tmp = tempfile::tempdir().unwrap();
    for (example, flows) in [
        ("hello", &["flow.yaml"][..]),
        ("switch", &["flow.yaml"]),
        ("train", &["flow.yaml"]),
        ("python", &["hello.py", "train.py", "gate.py"]),
    ] {
        let dir = tmp.path().join(example);
        std::fs::create_dir_all(&dir).unwrap();
        copy_example(example, &dir);
        for flow in flows {
            let out = dir.join(format!("{flow}.argo.yaml"));
            flowpack_ok(
                &dir,
                &[
                    "compile",
                    flow,
                    "--target",
                    "argo",
                    "--allow-local",
                    "-o",
                    out.to_str().unwrap(),
                ],
            );
            files.push(out);
        }
    }
    for f in &files {
        validate(f);
    }
}

/// The hello example runs under argo_local the way `flowpack run` runs it: the same tasks,
/// the parameter given at submission, the run recorded as an Argo run.
#[test]
fn hello_runs_through_the_executor_contract_as_an_argo_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_example("hello", dir);
    let file = compile(dir, "flow.yaml");
    let (ok, text) = run_argo_local(dir, &file, &["times=3"]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("Hello, flowpack!").count(), 3, "{text}");
    let id = run_id(&text);
    let runs: serde_json::Value =
        serde_json::from_str(&flowpack_ok(dir, &["runs", "--json"])).unwrap();
    let run = &runs[0];
    assert_eq!(run["run"], id.as_str());
    assert_eq!(run["origin"], "argo", "{run}");
    assert_eq!(run["status"], "succeeded", "{run}");
    let show: serde_json::Value =
        serde_json::from_str(&flowpack_ok(dir, &["show", &id, "--json"])).unwrap();
    assert_eq!(show["record"]["parameters"]["times"], 3, "{show}");
}

/// A flow whose step fails on Argo is resumed on Argo: `trigger --resume --dry-run` gives
/// the spec, the submission carries it as `flowpack-resume`, and only the failed step and
/// what follows run again.
#[test]
fn an_argo_run_resumed_runs_only_the_failed_step_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ok_file = dir.join("ok");
    let flow = format!(
        "name: again\nparameters:\n  n: {{type: int, default: 1}}\nsteps:\n  start: {{run: 'echo ran-start; echo s > $FLOWPACK_OUTPUT_DIR/a', next: mid}}\n  mid: {{run: 'echo ran-mid; test -f {}', next: end}}\n  end: {{run: 'echo ran-end'}}\n",
        ok_file.display()
    );
    write_tree(dir, &[("flow.yaml", &flow)]);
    let file = compile(dir, "flow.yaml");
    let (ok, text) = run_argo_local(dir, &file, &["n=5"]);
    assert!(!ok, "{text}");
    let failed = run_id(&text);
    std::fs::write(&ok_file, "").unwrap();
    let spec: serde_json::Value = serde_json::from_str(&flowpack_ok(
        dir,
        &[
            "trigger",
            "flow.yaml",
            "--resume",
            &failed,
            "--dry-run",
            "--target",
            "argo",
        ],
    ))
    .unwrap();
    // Argo's parameters are text: the stored value, and the spec as JSON text.
    assert_eq!(spec["parameters"]["n"], "5", "{spec}");
    let params: Vec<String> = spec["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    assert!(params[0].starts_with("flowpack-resume={"), "{params:?}");
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let (ok, text) = run_argo_local(dir, &file, &params);
    assert!(ok, "{text}");
    assert!(!text.contains("ran-start"), "start was run again:\n{text}");
    assert!(
        text.contains("ran-mid") && text.contains("ran-end"),
        "{text}"
    );
    let show: serde_json::Value =
        serde_json::from_str(&flowpack_ok(dir, &["show", &run_id(&text), "--json"])).unwrap();
    assert_eq!(show["record"]["resumed_from"], failed.as_str(), "{show}");
}

/// Exit hooks are the Workflow's `onExit`: `on_failure` only when the run failed, `on_exit`
/// always.
#[test]
fn exit_hooks_run_on_exit_with_the_runs_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fail = dir.join("fail");
    let flow = format!(
        "name: hooked\non_failure: alarm\non_exit: tidy\ndefaults: {{cache: false}}\nsteps:\n  start: {{run: 'test ! -f {}', next: end}}\n  end: {{run: 'true'}}\n  alarm: {{run: 'echo ALARM'}}\n  tidy: {{run: 'echo TIDY'}}\n",
        fail.display()
    );
    write_tree(dir, &[("flow.yaml", &flow)]);
    let file = compile(dir, "flow.yaml");
    let (ok, text) = run_argo_local(dir, &file, &[]);
    assert!(ok, "{text}");
    assert!(text.contains("TIDY") && !text.contains("ALARM"), "{text}");
    std::fs::write(&fail, "").unwrap();
    let (ok, text) = run_argo_local(dir, &file, &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("TIDY") && text.contains("ALARM"), "{text}");
}

/// `flow` compiled for Argo (the local store, `--allow-local`), validated, with the
/// store's folder and the package digest redacted: what the snapshots hold.
fn compiled_text(flow: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", flow)]);
    let out = flowpack_ok(
        dir,
        &[
            "compile",
            "flow.yaml",
            "--target",
            "argo",
            "-o",
            "-",
            "--allow-local",
        ],
    );
    let file = dir.join("wt.yaml");
    std::fs::write(&file, &out).unwrap();
    validate(&file);
    util::redact(&out, dir)
}

/// One flow with every setting a pod can carry: the snapshot is the contract (docs/argo.md,
/// "What maps to what").
#[test]
fn every_setting_maps_to_the_workflow_template() {
    insta::assert_snapshot!(
        "argo_settings",
        compiled_text(
            r#"name: Settings_Flow
description: Every pod setting.
max_workers: 4
schedule: {cron: "30 2 * * 1-5", timezone: Europe/Berlin}
parameters:
  alpha: {type: float, default: 0.5, help: Learning rate}
  fast: {type: bool, default: false}
  tags: {type: json, default: [a, b]}
  label: {type: string, default: "x y"}
defaults:
  image: registry.example/flows:1
  image_pull_policy: IfNotPresent
  service_account: runner
steps:
  start:
    run: "true"
    next: train
    env: {MODE: fast}
    secrets: {TOKEN: api/token}
    node_selector: {pool: cpu}
    tolerations: [{key: dedicated, operator: Equal, value: ml, effect: NoSchedule}]
  train:
    run: "true"
    next: end
    resources: {cpu: "2", memory: 4Gi, gpu: 1, gpu_type: amd.com/gpu, disk: 20Gi}
    retry: {times: 3, delay: 10s}
    timeout: 2h
  end:
    run: "true"
    resources: {gpu: 2}
"#
        )
    );
}

/// A required parameter is `supplied` at each submission.
#[test]
fn a_parameter_without_a_default_is_supplied_at_submission() {
    let text = compiled_text(
        "name: req\nparameters:\n  day: {type: string}\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true'}\n",
    );
    assert!(
        text.contains("name: day\n      valueFrom:\n        supplied: {}"),
        "{text}"
    );
}

/// Nested foreach loops with a split inside: a DAG template per loop body, each task's
/// indices passed down level by level.
#[test]
fn nested_loops_are_dags_inside_dags() {
    insta::assert_snapshot!(
        "argo_nested_foreach",
        compiled_text(
            "name: nested\nsteps:\n  start: {run: 'true', foreach: xs, next: a}\n  a: {run: 'true', foreach: ys, next: b}\n  b: {run: 'true', next: [c, d]}\n  c: {run: 'true', next: j0}\n  d: {run: 'true', next: j0}\n  j0: {run: 'true', join: true, next: j1}\n  j1: {run: 'true', join: true, next: j2}\n  j2: {run: 'true', join: true, next: end}\n  end: {run: 'true'}\n"
        )
    );
}

/// A switch: one case DAG per target with steps of its own, `when` its index is the switch
/// step's `branch`; the step after the cases depends on all of them (a skipped one counts
/// as done) and finds its parent in the store.
#[test]
fn a_switch_is_when_conditions_on_the_branch_index() {
    insta::assert_snapshot!(
        "argo_switch",
        compiled_text(
            "name: sw\nsteps:\n  start: {run: 'true', next: pick}\n  pick: {run: 'true', switch: {on: v, cases: {\"a b\": x, \"it's\": y, skip: m}}}\n  x: {run: 'true', next: m}\n  y: {run: 'true', next: m}\n  m: {run: 'true', next: end}\n  end: {run: 'true'}\n"
        )
    );
}

/// Exit hooks: the exit handler DAG, `on_failure` when the Workflow did not succeed.
#[test]
fn exit_hooks_are_the_exit_handler() {
    insta::assert_snapshot!(
        "argo_hooks",
        compiled_text(
            "name: hooked\non_failure: alarm\non_exit: tidy\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true'}\n  alarm: {run: 'true'}\n  tidy: {run: 'true'}\n"
        )
    );
}

/// What Argo cannot carry is refused with what to do, never dropped.
#[test]
fn what_argo_cannot_carry_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (flow, says) in [
        (
            "name: g\nsteps:\n  start: {run: 'true', next: end, resources: {gpu: 1, gpu_type: NVIDIA_TESLA_T4}}\n  end: {run: 'true'}\n",
            "the GPU's Kubernetes resource name",
        ),
        (
            "name: r\nsteps:\n  start: {run: 'true', next: body}\n  body: {run: 'true', next: sw}\n  sw: {run: 'true', switch: {on: v, cases: {again: body, done: end}}}\n  end: {run: 'true'}\n",
            "is recursive",
        ),
        (
            "name: s\nschedule: {cron: '0 0 * * *'}\nparameters:\n  p: {type: int}\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true'}\n",
            "parameter 'p' has no default",
        ),
    ] {
        std::fs::write(dir.join("flow.yaml"), flow).unwrap();
        let out = flowpack(dir, &["check", "flow.yaml", "--target", "argo"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{stderr}");
        let out = flowpack(
            dir,
            &["compile", "flow.yaml", "--target", "argo", "--allow-local"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("for Argo Workflows") && stderr.contains(says),
            "{stderr}"
        );
    }
}

/// A 10,000-way foreach compiles to the same WorkflowTemplate as a 2-way one: the width is
/// the foreach step's output at run time (a JSON list of indices), never the manifest's.
#[test]
fn a_wide_foreach_compiles_to_the_same_size_as_a_narrow_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let flow = |n: usize| {
        format!(
            "name: wide\nsteps:\n  start: {{run: sh w.sh items {n}, foreach: items, next: body}}\n  body: {{run: 'true', next: join}}\n  join: {{run: 'true', join: true, next: end}}\n  end: {{run: 'true'}}\n"
        )
    };
    let size = |n: usize| {
        std::fs::write(dir.join("flow.yaml"), flow(n)).unwrap();
        let out = flowpack_ok(
            dir,
            &[
                "compile",
                "flow.yaml",
                "--target",
                "argo",
                "-o",
                "-",
                "--allow-local",
            ],
        );
        out.len()
    };
    let narrow = size(2);
    let wide = size(10_000);
    println!("compiled WorkflowTemplate: {narrow} bytes for 2 items, {wide} for 10,000");
    assert_eq!(
        wide, narrow,
        "the width leaked into the manifest (the run command is in the package, and a digest has one length)"
    );
    // At run time the list of indices is the only thing proportional to the width.
    let list: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    let bytes = serde_json::to_string(&list).unwrap().len();
    println!("the foreach output parameter for 10,000 items: {bytes} bytes");
    assert!(bytes < 100_000, "{bytes}");
}
