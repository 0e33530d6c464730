//! Python flows end to end: the examples in `examples/python` run locally and on the S3
//! test server through the real `flowpack step`, compile to pipelines KFP's validator
//! accepts, run under KFP's local orchestrator, and are read back with the Client API —
//! the Python package of this checkout against the binary of this build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::kfp::{run_local, validate};
use crate::runs::task;
use crate::util::{self, BIN, flowpack, flowpack_ok};

/// Copies example files of `examples/python` into `dir`.
fn examples(dir: &Path, files: &[&str]) {
    for f in files {
        std::fs::copy(
            util::workspace().join("examples/python").join(f),
            dir.join(f),
        )
        .unwrap();
    }
}

/// Python (the test venv's) with this checkout's package and this build's binary: what
/// `pip install .` gives, without installing.
fn python(dir: &Path) -> Command {
    let mut cmd = Command::new(util::find_python());
    cmd.current_dir(dir)
        .env("PYTHONPATH", util::workspace().join("python"))
        .env("FLOWPACK_BIN", BIN)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .env_remove("FLOWPACK_STORE")
        .env_remove("FLOWPACK_LOG");
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a Client API script in `dir` and returns what it printed.
pub(crate) fn client(dir: &Path, store: Option<&str>, script: &str) -> String {
    let mut cmd = python(dir);
    cmd.args(["-c", script]);
    if let Some(s) = store {
        cmd.env("FLOWPACK_STORE", s);
    }
    ok(cmd.output().unwrap(), "the client script")
}

#[test]
fn the_python_hello_runs_locally_and_the_client_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    examples(tmp.path(), &["hello.py"]);
    let out = flowpack_ok(
        tmp.path(),
        &["run", "hello.py", "--param", "times=3", "--json"],
    );
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["succeeded"], true, "{summary}");
    let read = client(
        tmp.path(),
        None,
        "from flowpack import Flow\n\
         run = Flow('HelloFlow').latest_run\n\
         print(run.successful, run['greet'].task.data.lines)\n\
         print(run['start'].task.data.who, run.data.lines == run['greet'].task.data.lines)",
    );
    assert_eq!(
        read,
        "True ['Hello, flowpack!', 'Hello, flowpack!', 'Hello, flowpack!']\nflowpack True\n"
    );
}

#[test]
fn python_flow_py_run_is_the_metaflow_way_and_shares_the_folder_store() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("01-hello")).unwrap();
    examples(&tmp.path().join("01-hello"), &["hello.py"]);
    // Run from the parent folder, as Metaflow's tutorials are: the store is the parent's.
    let out = python(tmp.path())
        .args([
            "01-hello/hello.py",
            "run",
            "--times",
            "2",
            "--greeting",
            "Hi",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out, "python hello.py run");
    assert!(stderr.contains("Hi, flowpack!"), "{stderr}");
    assert!(tmp.path().join(".flowpack").is_dir());
    let read = client(
        tmp.path(),
        None,
        "from flowpack import Flow\nprint(Flow('HelloFlow').latest_run.data.lines)",
    );
    assert_eq!(read, "['Hi, flowpack!', 'Hi, flowpack!']\n");
    // A second flow, run from the same folder, reads the first one's latest run inside its
    // step: the Client API there uses the task's own store and binary.
    std::fs::create_dir(tmp.path().join("02-report")).unwrap();
    util::write_tree(
        &tmp.path().join("02-report"),
        &[(
            "report.py",
            "from flowpack import Flow, FlowSpec, step\n\n\
             class ReportFlow(FlowSpec):\n\
             \x20   @step\n\
             \x20   def start(self):\n\
             \x20       self.greeted = len(Flow('HelloFlow').latest_run.data.lines)\n\
             \x20       self.next(self.end)\n\n\
             \x20   @step\n\
             \x20   def end(self):\n\
             \x20       print('greeted', self.greeted)\n\n\
             if __name__ == '__main__':\n\
             \x20   ReportFlow()\n",
        )],
    );
    let out = python(tmp.path())
        .args(["02-report/report.py", "run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out, "python report.py run");
    assert!(stderr.contains("greeted 2"), "{stderr}");
}

#[test]
fn the_gate_example_on_s3_takes_the_chosen_case_and_catch_keeps_the_flow_going() {
    let tmp = tempfile::tempdir().unwrap();
    examples(tmp.path(), &["gate.py"]);
    let store = util::s3_store("python-gate");
    let run = |score: &str| -> serde_json::Value {
        let out = flowpack_ok(
            tmp.path(),
            &[
                "run",
                "gate.py",
                "--store",
                &store,
                "--param",
                &format!("score={score}"),
                "--json",
            ],
        );
        serde_json::from_str(&out).unwrap()
    };
    assert_eq!(run("0.95")["succeeded"], true);
    // A negative score makes `alert` raise; @catch stores the exception and the flow goes on.
    assert_eq!(run("-1")["succeeded"], true);
    let read = client(
        tmp.path(),
        Some(&store),
        "from flowpack import Flow\n\
         runs = list(Flow('GateFlow').runs())\n\
         caught, passed = runs[0], runs[1]\n\
         print(passed.data.verdict, passed.data.published)\n\
         print(caught.data.verdict, caught.data.published)\n\
         e = caught['alert'].task.data.alert_error\n\
         print(e.type, 'evaluation itself failed' in e.message)",
    );
    assert_eq!(read, "pass True\nfail False\nbuiltins.ValueError True\n");
}

#[test]
fn a_failing_python_step_shows_its_traceback_and_resume_finishes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    util::write_tree(
        tmp.path(),
        &[(
            "flaky.py",
            "import os\n\
             from flowpack import FlowSpec, step\n\
             \n\
             class FlakyFlow(FlowSpec):\n\
             \x20   @step\n\
             \x20   def start(self):\n\
             \x20       self.data = list(range(5))\n\
             \x20       self.next(self.middle)\n\
             \n\
             \x20   @step\n\
             \x20   def middle(self):\n\
             \x20       if os.environ.get('FLAKY_FAIL'):\n\
             \x20           raise RuntimeError('the middle step broke')\n\
             \x20       self.total = sum(self.data)\n\
             \x20       self.next(self.end)\n\
             \n\
             \x20   @step\n\
             \x20   def end(self):\n\
             \x20       print('total', self.total)\n",
        )],
    );
    let out = Command::new(BIN)
        .args(["run", "flaky.py", "--json"])
        .current_dir(tmp.path())
        .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
        .env("FLAKY_FAIL", "1")
        .env_remove("FLOWPACK_STORE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Traceback (most recent call last)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RuntimeError: the middle step broke"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed = summary["run"].as_str().unwrap().to_string();
    let log = flowpack_ok(tmp.path(), &["logs", &format!("{failed}/middle")]);
    assert!(log.contains("RuntimeError: the middle step broke"), "{log}");
    let show: serde_json::Value =
        serde_json::from_str(&flowpack_ok(tmp.path(), &["show", &failed, "--json"])).unwrap();
    let middle = task(&show, "middle/0");
    assert_eq!(middle["attempts"][0]["record"]["exit_code"], 1, "{middle}");
    let resumed: serde_json::Value =
        serde_json::from_str(&flowpack_ok(tmp.path(), &["resume", &failed, "--json"])).unwrap();
    assert_eq!(resumed["succeeded"], true, "{resumed}");
    let read = client(
        tmp.path(),
        None,
        "from flowpack import Flow\n\
         run = Flow('FlakyFlow').latest_successful_run\n\
         print(run.data.total, run['start'].task.data.data)",
    );
    assert_eq!(read, "10 [0, 1, 2, 3, 4]\n");
}

#[test]
fn python_flow_errors_name_the_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let header = "from flowpack import FlowSpec, step\n\nclass BadFlow(FlowSpec):\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "no_next.py",
            "    @step\n    def start(self):\n        self.x = 1\n\n    @step\n    def end(self):\n        pass\n",
            "no_next.py:5:",
        ),
        (
            "unknown.py",
            "    @step\n    def start(self):\n        self.next(self.ned)\n\n    @step\n    def end(self):\n        pass\n",
            "unknown.py:6:",
        ),
        (
            // A split that never joins: found by the flow validator, reported at the step.
            "unjoined.py",
            "    @step\n    def start(self):\n        self.next(self.a, self.b)\n\n    @step\n    def a(self):\n        self.next(self.end)\n\n    @step\n    def b(self):\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n",
            "unjoined.py:",
        ),
    ];
    for (file, body, want) in cases {
        std::fs::write(tmp.path().join(file), format!("{header}{body}")).unwrap();
        let out = flowpack(tmp.path(), &["check", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} passed check");
        assert!(stderr.contains(want), "{file}: {stderr}");
    }
}

/// The train example (scikit-learn through `@pypi_base`, a split, a foreach over a grid,
/// joins with `merge_artifacts`) compiles, validates, runs under kfp.local with the real
/// `flowpack step`, and `results.py` reads the kfp- run back.
#[test]
fn the_python_train_example_compiles_validates_runs_under_kfp_local_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    examples(tmp.path(), &["train.py", "results.py"]);
    util::flowpack_uv_ok(
        tmp.path(),
        &tmp.path().join(".test-cache"),
        &[
            "compile",
            "train.py",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    let pipeline: PathBuf = tmp.path().join("pipeline.yaml");
    validate(&pipeline);
    let text = run_local(tmp.path(), &pipeline, &["seed=7"]);
    assert!(text.contains("wins with accuracy"), "{text}");
    let out = python(tmp.path()).arg("results.py").output().unwrap();
    let read = ok(out, "results.py");
    assert!(read.starts_with("run kfp-"), "{read}");
    assert!(read.contains("forest {'n_estimators': 60"), "{read}");
}

/// Python steps get their inputs on demand: a step that never reads an 8 MiB artifact does
/// not download it; the step that reads it does, and sees the same bytes.
#[test]
fn an_artifact_no_step_reads_is_never_downloaded() {
    let tmp = tempfile::tempdir().unwrap();
    util::write_tree(
        tmp.path(),
        &[(
            "lazy.py",
            "import hashlib, os\n\
             from flowpack import FlowSpec, step\n\
             \n\
             class LazyFlow(FlowSpec):\n\
             \x20   @step\n\
             \x20   def start(self):\n\
             \x20       self.big = os.urandom(8 << 20)\n\
             \x20       self.digest = hashlib.sha256(self.big).hexdigest()\n\
             \x20       self.small = 1\n\
             \x20       self.next(self.middle)\n\
             \n\
             \x20   @step\n\
             \x20   def middle(self):\n\
             \x20       self.small += 1\n\
             \x20       self.next(self.end)\n\
             \n\
             \x20   @step\n\
             \x20   def end(self):\n\
             \x20       assert hashlib.sha256(self.big).hexdigest() == self.digest\n\
             \x20       print('small', self.small, 'big', len(self.big))\n",
        )],
    );
    let out = flowpack_ok(tmp.path(), &["run", "lazy.py", "--json"]);
    let run = serde_json::from_str::<serde_json::Value>(&out).unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    let show: serde_json::Value =
        serde_json::from_str(&flowpack_ok(tmp.path(), &["show", &run, "--json"])).unwrap();
    let downloaded = |step: &str| {
        task(&show, &format!("{step}/0"))["attempts"][0]["record"]["bytes"]["downloaded"]
            .as_u64()
            .unwrap()
    };
    assert!(
        downloaded("middle") < 64 << 10,
        "middle: {}",
        downloaded("middle")
    );
    assert!(downloaded("end") > 8 << 20, "end: {}", downloaded("end"));
    let log = flowpack_ok(tmp.path(), &["logs", &format!("{run}/end")]);
    assert!(log.contains(&format!("small 2 big {}", 8 << 20)), "{log}");
}
