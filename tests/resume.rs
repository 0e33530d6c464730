//! `flowpack resume RUN FLOW` runs the current code: the origin run's committed tasks
//! before the failed step are reused (records say from where), the rest runs with the
//! package pushed from the flow file as it is now.

use std::path::Path;
use std::process::{Command, Output};

use crate::runs::{json, show, task};
use crate::util::{BIN, write_tree};

const FLOW: &str = "name: fixable\n\
steps:\n\
\x20 start: {run: 'echo 5 > $FLOWPACK_OUTPUT_DIR/x', next: double}\n\
\x20 double: {run: 'echo $(( $(cat $FLOWPACK_INPUT_DIR/x) * 2 )) > $FLOWPACK_OUTPUT_DIR/y', next: check}\n\
\x20 check: {run: 'sh check.sh', next: end}\n\
\x20 end: {run: 'cat $FLOWPACK_INPUT_DIR/z'}\n";

const BROKEN: &str = "exit 3\n";
const FIXED: &str = "echo $(( $(cat $FLOWPACK_INPUT_DIR/y) + 1 )) > $FLOWPACK_OUTPUT_DIR/z\n";

fn flowpack(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .env_remove("FLOWPACK_STORE")
        .output()
        .unwrap()
}

fn run_id(out: &Output) -> String {
    json(&String::from_utf8_lossy(&out.stdout))["run"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)))
        .to_string()
}

/// A failed run: `check` (step 3) breaks.
fn failed_run(dir: &Path) -> String {
    write_tree(dir, &[("flow.yaml", FLOW), ("check.sh", BROKEN)]);
    let out = flowpack(dir, &["run", "flow.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    run_id(&out)
}

#[test]
fn resume_with_the_flow_file_runs_the_fixed_code_from_the_failed_step() {
    let tmp = tempfile::tempdir().unwrap();
    let failed = failed_run(tmp.path());
    std::fs::write(tmp.path().join("check.sh"), FIXED).unwrap();
    let out = flowpack(tmp.path(), &["resume", &failed, "flow.yaml", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = run_id(&out);
    let info = show(tmp.path(), &resumed, &[]);
    assert_eq!(info["status"], "succeeded");
    assert_eq!(info["record"]["resumed_from"], failed.as_str());
    for t in ["start/0", "double/0"] {
        let rec = &task(&info, t)["attempts"][0]["record"];
        assert_eq!(rec["status"], "reused", "{t}");
        assert_eq!(rec["reuse_reason"], "resume", "{t}");
        assert!(
            rec["reused_from"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{failed}/{t}/")),
            "{rec}"
        );
    }
    for t in ["check/0", "end/0"] {
        let rec = &task(&info, t)["attempts"][0]["record"];
        assert_eq!(rec["status"], "succeeded", "{t}");
    }
    // The resumed run runs a new package: the one of the fixed tree.
    assert_ne!(
        info["record"]["package"],
        show(tmp.path(), &failed, &[])["record"]["package"]
    );
    // Its final artifacts equal those of a clean run of the fixed code.
    let clean = run_id(&flowpack(
        tmp.path(),
        &["run", "flow.yaml", "--no-cache", "--json"],
    ));
    let clean = show(tmp.path(), &clean, &[]);
    assert_eq!(
        task(&clean, "end/0")["attempts"][0]["record"]["status"],
        "succeeded"
    );
    let digests = |info: &serde_json::Value| -> Vec<(String, String)> {
        task(info, "end/0")["artifacts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["digest"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(digests(&info), digests(&clean));
    assert_eq!(digests(&info).len(), 3, "x, y and z");
}

#[test]
fn resume_without_the_flow_file_runs_the_old_package_and_fails_again() {
    // The behavior the flow file fixes: the origin package still has the bug.
    let tmp = tempfile::tempdir().unwrap();
    let failed = failed_run(tmp.path());
    std::fs::write(tmp.path().join("check.sh"), FIXED).unwrap();
    let out = flowpack(tmp.path(), &["resume", &failed, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flowpack resume"), "{stderr}");
}

#[test]
fn resume_refuses_a_flow_whose_graph_no_longer_fits_the_reused_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let failed = failed_run(tmp.path());
    // `double` now follows a new step, not `start`: the reused `double` no longer fits.
    let changed = FLOW.replace(
        "next: double}",
        "next: extra}\n  extra: {run: 'true', next: double}",
    );
    write_tree(tmp.path(), &[("flow.yaml", &changed), ("check.sh", FIXED)]);
    let out = flowpack(tmp.path(), &["resume", &failed, "flow.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("task double/0 of run")
            && stderr.contains("no longer follows step 'start'")
            && stderr.contains("--from"),
        "{stderr}"
    );
    // A flow without the failed step cannot say where to restart.
    let renamed = FLOW
        .replace("next: check}", "next: verify}")
        .replace("  check:", "  verify:");
    write_tree(tmp.path(), &[("flow.yaml", &renamed)]);
    let out = flowpack(tmp.path(), &["resume", &failed, "flow.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("has no step 'check' to resume from"),
        "{stderr}"
    );
    // With --from, it resumes there.
    let out = flowpack(
        tmp.path(),
        &["resume", &failed, "flow.yaml", "--from", "verify", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ok_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = flowpack(dir, args);
    assert!(
        out.status.success(),
        "flowpack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&String::from_utf8_lossy(&out.stdout))
}

fn compile(dir: &Path) -> std::path::PathBuf {
    let out = flowpack(
        dir,
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pipeline = dir.join("pipeline.yaml");
    crate::kfp::validate(&pipeline);
    pipeline
}

#[test]
fn a_kfp_run_resumed_under_kfp_local_runs_only_the_failed_step_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW), ("check.sh", BROKEN)]);
    let pipeline = compile(tmp.path());
    let (ok, text) = crate::kfp::run_local_status(tmp.path(), &pipeline, &[]);
    assert!(!ok, "the broken check must fail the run:\n{text}");
    let runs = ok_json(tmp.path(), &["runs", "--json"]);
    let failed = runs[0]["run"].as_str().unwrap().to_string();
    assert!(failed.starts_with("kfp-"), "{runs}");

    // The fix, compiled again: a new package.
    std::fs::write(tmp.path().join("check.sh"), FIXED).unwrap();
    let pipeline = compile(tmp.path());
    // The run request `trigger --resume` would send, without a KFP server.
    let request = ok_json(
        tmp.path(),
        &["trigger", "flow.yaml", "--resume", &failed, "--dry-run"],
    );
    assert_eq!(request["resume"]["run"], failed.as_str());
    assert_eq!(
        request["resume"]["redo"],
        serde_json::json!(["check", "end"]),
        "{request}"
    );
    // run_local.py reads values as JSON: the spec goes as a JSON string.
    let args: Vec<String> = request["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let (ok, text) = crate::kfp::run_local_status(
        tmp.path(),
        &pipeline,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(ok, "the resumed run failed:\n{text}");
    let runs = ok_json(tmp.path(), &["runs", "--json"]);
    let resumed = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_str().unwrap().to_string())
        .find(|r| *r != failed)
        .unwrap();
    let info = show(tmp.path(), &resumed, &[]);
    assert_eq!(info["status"], "succeeded", "{info:#}");
    assert_eq!(info["record"]["resumed_from"], failed.as_str());
    for t in ["start/0", "double/0"] {
        let rec = &task(&info, t)["attempts"][0]["record"];
        assert_eq!(rec["status"], "reused", "{t}: {rec:#}");
        assert_eq!(rec["reuse_reason"], "resume", "{t}");
        assert!(
            rec["phases"].get("run").is_none(),
            "{t} did not run: {rec:#}"
        );
        assert!(
            rec["reused_from"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{failed}/{t}/")),
            "{rec}"
        );
    }
    for t in ["check/0", "end/0"] {
        let rec = &task(&info, t)["attempts"][0]["record"];
        assert_eq!(rec["status"], "succeeded", "{t}");
        assert!(rec["phases"].get("run").is_some(), "{t} ran");
    }
    // Its final artifacts equal those of a clean run of the fixed code.
    let out = flowpack(tmp.path(), &["run", "flow.yaml", "--no-cache", "--json"]);
    let clean = show(tmp.path(), &run_id(&out), &[]);
    let digests = |info: &serde_json::Value| -> Vec<(String, String)> {
        task(info, "end/0")["artifacts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["digest"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(digests(&info), digests(&clean));
    assert_eq!(digests(&info).len(), 3);
}

/// `trigger --resume` against Prism serving KFP's API: the run request carries the resume
/// spec as the root input `flowpack--resume`, and is one the API allows.
#[test]
fn trigger_resume_creates_a_kfp_run_the_api_allows() {
    let (url, log) = crate::util::prism();
    let tmp = tempfile::tempdir().unwrap();
    let failed = failed_run(tmp.path());
    std::fs::write(tmp.path().join("check.sh"), FIXED).unwrap();
    let with_kfp = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(tmp.path())
            .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
            .env("FLOWPACK_KFP_URL", &url)
            .env("FLOWPACK_KFP_TOKEN", "t0ken")
            .env_remove("FLOWPACK_STORE")
            .output()
            .unwrap()
    };
    let out = with_kfp(&["push", "flow.yaml", "--json", "--allow-local"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with_kfp(&["trigger", "flow.yaml", "--resume", &failed, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("steps run again: check, end"), "{stderr}");
    let created = json(&String::from_utf8_lossy(&out.stdout));
    assert!(
        created["run"].as_str().unwrap().starts_with("kfp-"),
        "{created}"
    );
    let violations = crate::util::prism_violations(&log);
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("post /apis/v2beta1/runs "),
        "no run was created:\n{log}"
    );
    // A run of another flow cannot be resumed with this one.
    let out = with_kfp(&[
        "trigger",
        "flow.yaml",
        "--resume",
        "nosuch-run",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not in the store"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A flow with a parameter of every type; `end` fails until `check.sh` is fixed.
const TYPED: &str = "name: typed\n\
parameters:\n\
\x20 j_str: {type: json}\n\
\x20 j_num_text: {type: json}\n\
\x20 j_obj: {type: json}\n\
\x20 j_null: {type: json}\n\
\x20 s_num: {type: string}\n\
\x20 s_empty: {type: string}\n\
\x20 s_quoted: {type: string}\n\
\x20 i: {type: int}\n\
\x20 f: {type: float}\n\
\x20 b: {type: bool}\n\
steps:\n\
\x20 start: {run: 'cp $FLOWPACK_PARAMS $FLOWPACK_OUTPUT_DIR/seen.json', next: end}\n\
\x20 end: {run: 'cp $FLOWPACK_PARAMS $FLOWPACK_OUTPUT_DIR/seen_end.json; sh check.sh'}\n";

/// `--param` values of every type, and the typed values the run must hold.
fn typed_params() -> (Vec<String>, serde_json::Value) {
    let given = [
        ("j_str", r#""abc""#),
        ("j_num_text", r#""42""#),
        ("j_obj", r#"{"a": [1, "x y"], "q": "say \"hi\""}"#),
        ("j_null", "null"),
        ("s_num", "007"),
        ("s_empty", ""),
        ("s_quoted", r#"it's "quoted", with  spaces "#),
        ("i", "-3"),
        ("f", "2.5"),
        ("b", "true"),
    ];
    let args = given
        .iter()
        .flat_map(|(k, v)| ["--param".to_string(), format!("{k}={v}")])
        .collect();
    let typed = serde_json::json!({
        "j_str": "abc", "j_num_text": "42", "j_obj": {"a": [1, "x y"], "q": "say \"hi\""},
        "j_null": null, "s_num": "007", "s_empty": "",
        "s_quoted": "it's \"quoted\", with  spaces ", "i": -3, "f": 2.5, "b": true,
    });
    (args, typed)
}

#[test]
fn resume_carries_every_parameter_type_as_stored() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", TYPED), ("check.sh", BROKEN)]);
    let (params, typed) = typed_params();
    let mut args = vec!["run", "flow.yaml", "--json"];
    args.extend(params.iter().map(String::as_str));
    let out = flowpack(tmp.path(), &args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = run_id(&out);
    assert_eq!(
        show(tmp.path(), &failed, &[])["record"]["parameters"],
        typed
    );

    std::fs::write(tmp.path().join("check.sh"), "true\n").unwrap();
    let out = flowpack(tmp.path(), &["resume", &failed, "flow.yaml", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = run_id(&out);
    let info = show(tmp.path(), &resumed, &[]);
    assert_eq!(info["record"]["parameters"], typed, "{info:#}");
    assert_eq!(
        task(&info, "start/0")["attempts"][0]["record"]["status"],
        "reused"
    );
    // The task that ran again saw the same values.
    let seen = crate::util::flowpack_ok(
        tmp.path(),
        &[
            "artifacts",
            "get",
            &format!("{resumed}/end/0/seen_end.json"),
            "-o",
            "-",
        ],
    );
    assert_eq!(json(&seen), typed);

    // `trigger --resume` sends the stored values as KFP's run request carries them: a json
    // parameter without a default is a STRING input holding JSON text, which the pod's step
    // parses back; the others as themselves.
    let request = ok_json(
        tmp.path(),
        &["trigger", "flow.yaml", "--resume", &failed, "--dry-run"],
    );
    let mut expected = typed.as_object().unwrap().clone();
    for k in ["j_str", "j_num_text", "j_obj", "j_null"] {
        expected[k] = serde_json::Value::String(typed[k].to_string());
    }
    let sent = request["parameters"].as_object().unwrap();
    for (k, v) in &expected {
        assert_eq!(&sent[k], v, "{k}: {request:#}");
    }
    // A fresh trigger sends given values the same way.
    let mut args = vec!["trigger", "flow.yaml", "--dry-run"];
    args.extend(params.iter().map(String::as_str));
    let request = ok_json(tmp.path(), &args);
    for (k, v) in &expected {
        assert_eq!(&request["parameters"][k], v, "{k}: {request:#}");
    }
}
