//! The KFP compiler, proven by KFP's own tools: every compiled pipeline passes
//! `validate_ir.py --strict` (KFP's protobuf schema and the 2.17 backend's rules, with the
//! kfp SDK, kfp-kubernetes and cel-python installed), and KFP's local orchestrator runs it,
//! calling the real `flowpack step` for every task.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, BIN, flowpack, flowpack_ok, write_tree};

/// The Python of the venv with kfp (made by tests/run.sh).
pub fn kfp_python() -> PathBuf {
    if let Some(p) = std::env::var_os("FLOWPACK_TEST_KFP_PYTHON") {
        return p.into();
    }
    let p = util::workspace().join(".venv-kfp/bin/python");
    assert!(
        p.is_file(),
        "no kfp venv: run tests/run.sh (creates .venv-kfp with kfp 2.17.3) or set FLOWPACK_TEST_KFP_PYTHON"
    );
    p
}

/// The team's KFP development resources beside the repository (`validate_ir.py`, the
/// kfp.local driver `local/run_local.py`, KFP's swagger): a dev-only folder, not part of the
/// repository; docs/kubeflow.md says what each is and what a user has instead.
pub fn shared() -> PathBuf {
    util::workspace().join("../shared/kfp")
}

pub(crate) fn validate(file: &Path) {
    if let Err(text) = validate_files(&[file]) {
        panic!("validate_ir rejected {}:\n{text}", file.display());
    }
}

/// `validate_ir.py --strict` over `files` in one call: Err with its output when it rejects
/// any, or when it skipped a check (a NOTE).
pub(crate) fn validate_files(files: &[&Path]) -> Result<(), String> {
    let (ok, text) = util::run_text(
        Command::new(kfp_python())
            .arg(shared().join("validate_ir.py"))
            .args(files)
            .arg("--strict"),
    );
    if ok && !text.contains("NOTE") {
        Ok(())
    } else {
        Err(text)
    }
}

/// `flowpack ARGS` in `dir` against `store` (the default local store when None).
fn fp(dir: &Path, store: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"));
    match store {
        Some(s) => cmd.env("FLOWPACK_STORE", s),
        None => cmd.env_remove("FLOWPACK_STORE"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "flowpack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn compile(dir: &Path, store: Option<&str>) -> PathBuf {
    fp(
        dir,
        store,
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    dir.join("pipeline.yaml")
}

/// The compiled YAML with temp paths, digests and the store URL masked.
fn masked(yaml: &str, dir: &Path, store: Option<&str>) -> String {
    let yaml = match store {
        Some(s) => yaml.replace(s, "[STORE]"),
        None => yaml.to_string(),
    };
    util::redact(&yaml, dir)
}

/// Runs the pipeline with KFP's local orchestrator (host runner: each task's resolved
/// command runs here, so `flowpack` must be on PATH).
pub(crate) fn run_local(dir: &Path, pipeline: &Path, args: &[&str]) -> String {
    let (ok, text) = run_local_status(dir, pipeline, args);
    assert!(
        ok && text.contains("finished with status"),
        "kfp.local failed:\n{text}"
    );
    assert!(!text.contains("FAILURE"), "{text}");
    text
}

/// Runs the pipeline like [`run_local`], which may fail: whether kfp.local said the
/// pipeline succeeded, and its output.
pub(crate) fn run_local_status(dir: &Path, pipeline: &Path, args: &[&str]) -> (bool, String) {
    let script = shared().join("local/run_local.py");
    let root = dir.join("kfp-local");
    let mut argv: Vec<&OsStr> = vec![
        script.as_os_str(),
        pipeline.as_os_str(),
        "--runner".as_ref(),
        "host".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
    ];
    argv.extend(args.iter().map(|a| OsStr::new(*a)));
    let (ok, text) = util::run_orchestrator(&kfp_python(), dir, &argv);
    assert!(
        text.contains("finished with status"),
        "kfp.local did not run:\n{text}"
    );
    (ok && !text.contains("FAILURE"), text)
}

fn only_run(dir: &Path, store: Option<&str>) -> serde_json::Value {
    let runs: serde_json::Value =
        serde_json::from_str(&fp(dir, store, &["runs", "--json"])).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn hello_compiles_validates_and_runs_under_kfps_orchestrator() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["flow.yaml", "hello.py"] {
        std::fs::copy(
            util::workspace().join("examples/hello").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    let pipeline = compile(tmp.path(), None);
    validate(&pipeline);
    let text = run_local(tmp.path(), &pipeline, &["times=3"]);
    assert_eq!(text.matches("Hello, flowpack!").count(), 3, "{text}");
    let run = only_run(tmp.path(), None);
    let id = run["run"].as_str().unwrap();
    assert!(id.starts_with("kfp-"), "{id}");
    assert_eq!(
        (run["status"].as_str(), run["origin"].as_str()),
        (Some("succeeded"), Some("kfp"))
    );
    let got = flowpack_ok(
        tmp.path(),
        &[
            "artifacts",
            "get",
            &format!("{id}/greet/greetings.txt"),
            "-o",
            "-",
        ],
    );
    assert_eq!(got, "Hello, flowpack!\n".repeat(3));
    let yaml = std::fs::read_to_string(&pipeline).unwrap();
    let yaml = util::redact(&yaml, tmp.path());
    insta::assert_snapshot!(yaml);
}

const SETTINGS_FLOW: &str = r#"name: settings-demo
description: A split and join with every step setting KFP can carry
parameters:
  alpha: {type: float, default: 0.5, help: Learning rate}
  note: {type: string, default: hi}
defaults:
  resources: {cpu: "500m", memory: 1Gi}
  env: {LOG_LEVEL: info}
steps:
  start: {run: "echo $FLOWPACK_PARAM_ALPHA > $FLOWPACK_OUTPUT_DIR/alpha", next: [fast_path, gpu_path]}
  fast_path: {run: "echo fast > $FLOWPACK_OUTPUT_DIR/fast", next: merge, cache: false, retry: {times: 2, delay: 5s}}
  gpu_path:
    run: "echo gpu > $FLOWPACK_OUTPUT_DIR/gpu"
    next: merge
    resources: {gpu: 1, gpu_type: nvidia.com/gpu, memory: 2Gi}
    secrets: {API_TOKEN: api-creds/token, API_USER: api-creds/user}
    node_selector: {pool: gpu}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    image_pull_policy: IfNotPresent
    timeout: 1h
  merge: {run: "test -s $FLOWPACK_INPUT_DIR/fast_path/fast && test -s $FLOWPACK_INPUT_DIR/gpu_path/gpu && test -s $FLOWPACK_INPUT_DIR/alpha", join: true, next: end}
  end: {run: "cat $FLOWPACK_INPUT_DIR/alpha"}
"#;

#[test]
fn splits_joins_and_settings_compile_validate_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let store = util::s3_store("kfp");
    let st = Some(store.as_str());
    write_tree(tmp.path(), &[("flow.yaml", SETTINGS_FLOW)]);
    let pipeline = compile(tmp.path(), st);
    validate(&pipeline);
    let yaml = std::fs::read_to_string(&pipeline).unwrap();
    for needle in [
        "resourceType: nvidia.com/gpu",
        "secretAsEnv",
        "nodeSelector",
        "tolerations",
        "imagePullPolicy: IfNotPresent",
        "activeDeadlineSeconds: '3600'",
        "maxRetryCount: 2",
        "defaultValue: 0.5",
        "description: Learning rate",
    ] {
        assert!(
            yaml.contains(needle),
            "{needle} missing from the compiled pipeline"
        );
    }
    insta::assert_snapshot!("settings_pipeline", masked(&yaml, tmp.path(), st));
    run_local(tmp.path(), &pipeline, &["alpha=0.25"]);
    let run = only_run(tmp.path(), st);
    assert_eq!(run["status"], "succeeded");
    let id = run["run"].as_str().unwrap();
    assert_eq!(
        fp(
            tmp.path(),
            st,
            &["artifacts", "get", &format!("{id}/end/alpha"), "-o", "-"]
        ),
        "0.25\n"
    );
    let logs = fp(tmp.path(), st, &["logs", &format!("{id}/end")]);
    assert!(logs.contains("stdout 0.25"), "{logs}");
}

#[test]
fn what_kfp_cannot_carry_is_an_error_never_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    for (flow, expected) in [
        (
            "name: g\nsteps:\n  start: {run: a, next: end, resources: {gpu: 1}}\n  end: {run: d}\n",
            "without `gpu_type`",
        ),
        (
            "name: a\nsteps:\n  start: {run: a, next: end, service_account: x}\n  end: {run: d}\n",
            "steps name different service accounts (end: none, start: x)",
        ),
        (
            "name: d\nsteps:\n  start: {run: a, next: end, resources: {disk: 10Gi}}\n  end: {run: d}\n",
            "resources.disk",
        ),
    ] {
        write_tree(tmp.path(), &[("flow.yaml", flow)]);
        let out = flowpack(tmp.path(), &["compile", "flow.yaml", "-o", "p.yaml"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("cannot compile") && stderr.contains(expected),
            "{stderr}"
        );
        assert!(!tmp.path().join("p.yaml").exists());
    }
}

/// A pipeline whose pods could not reach its store or images is refused by `compile` and
/// `push --kfp-url`, naming each and what to do, unless `--allow-local` says it is meant
/// for this machine; a store and images pods can reach need no flag.
#[test]
fn compile_refuses_a_store_or_image_only_this_machine_has_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", util::LINEAR_FLOW)]);
    let refused = |args: &[&str], wants: &[&str]| {
        let out = flowpack(dir, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for want in wants {
            assert!(
                stderr.contains(want),
                "{args:?}: {want:?} not in:\n{stderr}"
            );
        }
        assert!(!dir.join("p.yaml").exists());
    };
    let folder = dir.join(".flowpack").display().to_string();
    let wants = [
        "pods could not reach",
        &format!("the store {folder} is a folder on this machine"),
        "--store s3://",
        "the image localhost/flowpack-python:3.11 (steps end, start)",
        "registry",
        "--allow-local",
    ];
    refused(&["compile", "flow.yaml", "-o", "p.yaml"], &wants);
    // push --kfp-url deploys: refused before anything is pushed or sent.
    refused(
        &["push", "flow.yaml", "--kfp-url", "http://127.0.0.1:9"],
        &wants,
    );
    assert!(
        !dir.join(".flowpack/v1/blobs").exists(),
        "nothing was pushed"
    );
    // An endpoint on the loopback is this machine too.
    write_tree(
        dir,
        &[(
            "flow.yaml",
            &util::LINEAR_FLOW.replace(
                "name: demo",
                "name: demo\nimage: registry.example.com/flowpack-python:3.11",
            ),
        )],
    );
    let loopback = "s3://bucket/p?endpoint=http://127.0.0.1:9000";
    refused(
        &["compile", "flow.yaml", "-o", "p.yaml", "--store", loopback],
        &[
            "endpoint http://127.0.0.1:9000 is this machine",
            "--allow-local",
        ],
    );

    // The opt-in compiles the same flow.
    write_tree(dir, &[("flow.yaml", util::LINEAR_FLOW)]);
    flowpack_ok(
        dir,
        &["compile", "flow.yaml", "-o", "p.yaml", "--allow-local"],
    );
    validate(&dir.join("p.yaml"));
    std::fs::remove_file(dir.join("p.yaml")).unwrap();

    // A registry image and a store on this machine's routable address: no flag needed.
    write_tree(
        dir,
        &[(
            "flow.yaml",
            &util::LINEAR_FLOW.replace(
                "name: demo",
                "name: demo\nimage: registry.example.com/flowpack-python:3.11",
            ),
        )],
    );
    let store = util::s3_store_on(util::moto_routable(), "p");
    flowpack_ok(
        dir,
        &["compile", "flow.yaml", "-o", "p.yaml", "--store", &store],
    );
    assert!(dir.join("p.yaml").exists());
}

/// The shape of examples/train without its scikit-learn: a split whose one branch fans out
/// over a list and joins, then a join of both branches.
const LOOP_FLOW: &str = r#"name: loop-demo
max_workers: 2
parameters:
  base: {type: int, default: 10}
steps:
  start:    {run: "echo start > $FLOWPACK_OUTPUT_DIR/origin", next: [baseline, grid]}
  baseline: {run: "echo 1 > $FLOWPACK_OUTPUT_DIR/score", next: pick, outputs: [score]}
  grid:     {run: "echo '[\"a\",\"b\",\"c\"]' > $FLOWPACK_OUTPUT_DIR/items", foreach: items, next: train}
  train:    {run: "echo $FLOWPACK_SPLIT_ITEM-$FLOWPACK_PARAM_BASE > $FLOWPACK_OUTPUT_DIR/model", next: evaluate}
  evaluate: {run: "cp $FLOWPACK_INPUT_DIR/model $FLOWPACK_OUTPUT_DIR/checked", next: best}
  best:     {run: "cat $FLOWPACK_INPUT_DIR/0/checked $FLOWPACK_INPUT_DIR/1/checked $FLOWPACK_INPUT_DIR/2/checked > $FLOWPACK_OUTPUT_DIR/score", join: true, next: pick, outputs: [score]}
  pick:     {run: "cat $FLOWPACK_INPUT_DIR/best/score $FLOWPACK_INPUT_DIR/baseline/score > $FLOWPACK_OUTPUT_DIR/score", join: true, next: end, outputs: [score]}
  end:      {run: "cat $FLOWPACK_INPUT_DIR/score $FLOWPACK_INPUT_DIR/origin"}
"#;

#[test]
fn foreach_compiles_to_a_parallel_for_and_runs_every_item() {
    let tmp = tempfile::tempdir().unwrap();
    let store = util::s3_store("kfp");
    let st = Some(store.as_str());
    write_tree(tmp.path(), &[("flow.yaml", LOOP_FLOW)]);
    let pipeline = compile(tmp.path(), st);
    validate(&pipeline);
    let yaml = std::fs::read_to_string(&pipeline).unwrap();
    assert!(
        yaml.contains("parameterIterator") && yaml.contains("parallelismLimit: 2"),
        "{yaml}"
    );
    insta::assert_snapshot!("foreach_pipeline", masked(&yaml, tmp.path(), st));
    run_local(tmp.path(), &pipeline, &["base=7"]);
    let run = only_run(tmp.path(), st);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(
        run["tasks"], 12,
        "start, baseline, grid, 3 train, 3 evaluate, best, pick, end"
    );
    let id = run["run"].as_str().unwrap();
    let score = fp(
        tmp.path(),
        st,
        &["artifacts", "get", &format!("{id}/pick/score"), "-o", "-"],
    );
    assert_eq!(score, "a-7\nb-7\nc-7\n1\n");
    let logs = fp(tmp.path(), st, &["logs", &format!("{id}/end")]);
    assert!(logs.contains("stdout start"), "{logs}");
    // The same flow runs the same way locally.
    let out = flowpack(
        tmp.path(),
        &[
            "run",
            "flow.yaml",
            "--param",
            "base=7",
            "--json",
            "--store",
            &store,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_switch_example_compiles_to_conditions_and_runs_only_the_chosen_case() {
    let tmp = tempfile::tempdir().unwrap();
    let store = util::s3_store("kfp");
    let st = Some(store.as_str());
    for f in ["flow.yaml", "gate.py"] {
        std::fs::copy(
            util::workspace().join("examples/switch").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    let pipeline = compile(tmp.path(), st);
    validate(&pipeline);
    let yaml = std::fs::read_to_string(&pipeline).unwrap();
    assert!(
        // The condition compares the index of the chosen target (the switch's `Output`),
        // so no case value is ever quoted into CEL.
        yaml.contains("triggerPolicy") && yaml.contains("== '0'") && yaml.contains("== '1'"),
        "{yaml}"
    );
    insta::assert_snapshot!("switch_pipeline", masked(&yaml, tmp.path(), st));
    for (score, ran, skipped, published) in [
        ("0.9", "publish", "alert", "yes"),
        ("0.5", "alert", "publish", "no"),
    ] {
        let root = format!("kfp-local-{score}");
        let bin_dir = Path::new(BIN).parent().unwrap();
        let out = Command::new(kfp_python())
            .arg(shared().join("local/run_local.py"))
            .arg(&pipeline)
            .args([
                "--runner",
                "host",
                "--root",
                &root,
                &format!("score={score}"),
            ])
            .current_dir(tmp.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin_dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains(&format!("published: {published}")), "{text}");
        let runs: serde_json::Value =
            serde_json::from_str(&fp(tmp.path(), st, &["runs", "--json"])).unwrap();
        let newest = &runs[0];
        assert_eq!(newest["status"], "succeeded");
        let id = newest["run"].as_str().unwrap();
        let info: serde_json::Value =
            serde_json::from_str(&fp(tmp.path(), st, &["show", id, "--json"])).unwrap();
        let steps: Vec<&str> = info["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["step"].as_str().unwrap())
            .collect();
        assert!(
            steps.contains(&ran) && !steps.contains(&skipped),
            "{steps:?}"
        );
    }
}

/// The REST client against Prism serving KFP's official swagger: every request flowpack
/// sends must be one the API allows (Prism answers 4xx otherwise, and logs the violation).
#[test]
fn push_trigger_status_and_terminate_speak_the_kfp_api() {
    let (url, log) = util::prism();
    let tmp = tempfile::tempdir().unwrap();
    for f in ["flow.yaml", "hello.py"] {
        std::fs::copy(
            util::workspace().join("examples/hello").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    let token = "flowpack-test-t0ken";
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(tmp.path())
            .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
            .env("FLOWPACK_KFP_URL", &url)
            .env("FLOWPACK_KFP_TOKEN", token)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stdout.contains(token) && !stderr.contains(token),
            "the token was printed"
        );
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = run(&[
        "push",
        "flow.yaml",
        "--version-name",
        "v1",
        "--json",
        "--allow-local",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let pushed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(pushed["kfp"]["pipeline_version_id"].is_string(), "{pushed}");
    // The version pointer records what KFP answered.
    let pointer =
        std::fs::read_to_string(tmp.path().join(".flowpack/v1/flows/hello/versions/v1.json"))
            .unwrap();
    assert!(pointer.contains("pipeline_version_id"), "{pointer}");

    let (code, stdout, stderr) = run(&[
        "trigger",
        "flow.yaml",
        "--param",
        "times=4",
        "--experiment",
        "nightly",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let id = stdout.trim().to_string();
    assert!(id.starts_with("kfp-"), "{stdout}");
    let (code, stdout, stderr) = run(&["status", &id, "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(status["state"].is_string(), "{status}");
    let (code, _, stderr) = run(&["terminate", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(&["trigger", "flow.yaml", "--param", "times=many"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("'many' is not a valid int"), "{stderr}");

    // Without a token the API refuses, and the error says what to check.
    let out = Command::new(BIN)
        .args(["status", &id])
        .env("FLOWPACK_KFP_URL", &url)
        .env_remove("FLOWPACK_KFP_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("answered 401") && stderr.contains("FLOWPACK_KFP_TOKEN"),
        "{stderr}"
    );

    let violations = util::prism_violations(&log);
    assert!(
        violations.is_empty(),
        "requests the KFP API does not allow:\n{}",
        violations.join("\n")
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("post /apis/v2beta1/pipelines/upload_version"),
        "{log}"
    );
    assert!(
        log.contains("post /apis/v2beta1/runs "),
        "no run was created:\n{log}"
    );
}

#[test]
fn the_train_example_compiles_validates_and_runs_under_kfps_orchestrator() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["flow.yaml", "train.py", "requirements.txt"] {
        std::fs::copy(
            util::workspace().join("examples/train").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    util::flowpack_uv_ok(
        tmp.path(),
        &tmp.path().join(".test-cache"),
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    let pipeline = tmp.path().join("pipeline.yaml");
    validate(&pipeline);
    let text = run_local(tmp.path(), &pipeline, &["seed=7"]);
    assert!(text.contains("wins with accuracy"), "{text}");
    let run = only_run(tmp.path(), None);
    assert_eq!(
        (run["status"].as_str(), run["tasks"].as_u64()),
        (Some("succeeded"), Some(10))
    );
    let id = run["run"].as_str().unwrap();
    let winner = flowpack_ok(
        tmp.path(),
        &["artifacts", "get", &format!("{id}/pick/winner"), "-o", "-"],
    );
    assert!(
        ["baseline", "best_forest"].contains(&winner.as_str()),
        "{winner}"
    );
}

/// A flow whose parameters are named like the compiler's own component inputs, with a
/// foreach (the loop index input) and a join after it (the parents input).
const RESERVED_FLOW: &str = "name: reserved
parameters:
  run_id: {type: string, default: mine}
  split: {type: string, default: user-split}
  parents: {type: int, default: 7}
steps:
  start: {run: python3 s.py start, foreach: items, next: body}
  body:  {run: python3 s.py body, next: join}
  join:  {run: python3 s.py join, join: true, next: end}
  end:   {run: python3 s.py end}
";

const RESERVED_PY: &str = r#"import json, os, sys
p = json.load(open(os.environ["FLOWPACK_PARAMS"]))
assert p == {"run_id": "mine", "split": "user-split", "parents": 7}, p
assert os.environ["FLOWPACK_PARAM_SPLIT"] == "user-split", os.environ["FLOWPACK_PARAM_SPLIT"]
out, inp = os.environ["FLOWPACK_OUTPUT_DIR"], os.environ["FLOWPACK_INPUT_DIR"]
step = sys.argv[1]
if step == "start":
    open(os.path.join(out, "items"), "w").write(json.dumps([10, 20, 30]))
elif step == "body":
    open(os.path.join(out, "v"), "w").write(os.environ["FLOWPACK_SPLIT_INDEX"])
elif step == "join":
    subs = [d for d in os.listdir(inp) if os.path.isdir(os.path.join(inp, d))]
    vals = sorted(int(open(os.path.join(inp, d, "v")).read()) for d in subs)
    assert vals == [0, 1, 2], vals
"#;

/// Issue 12's first silent wrong run: a parameter named `run_id`, `split` or `parents` was
/// bound in place of the compiler's input of that name — two KFP runs merged into one store
/// run, a foreach body's `split` was the loop index, a join's `parents` the task list.
#[test]
fn parameters_named_like_the_compilers_inputs_are_only_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[("flow.yaml", RESERVED_FLOW), ("s.py", RESERVED_PY)],
    );
    let pipeline = compile(tmp.path(), None);
    validate(&pipeline);
    run_local(tmp.path(), &pipeline, &[]);
    run_local(tmp.path(), &pipeline, &[]);
    let runs: serde_json::Value =
        serde_json::from_str(&fp(tmp.path(), None, &["runs", "--json"])).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "two KFP runs, two store runs: {runs:?}");
    for run in runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["tasks"], 6, "start, 3 body, join, end: {run}");
    }
}
