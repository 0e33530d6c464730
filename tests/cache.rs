//! The step cache (docs/runtime.md, "Step caching"): real runs through `flowpack run`
//! reuse the tasks whose key (step, code it sees, env, parameters, parents' artifacts)
//! equals a committed task's, and run the rest.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::runs::{json, show};
use crate::util::{self, BIN, write_tree};

/// A flow with a foreach, its join and a switch: every kind of step is cacheable. Each
/// step appends its name to `marks` (outside the code tree) when it really runs.
fn flow(marks: &Path, work_cmd: &str) -> String {
    let m = marks.display();
    format!(
        "name: cached\n\
         parameters:\n  n: 3\n\
         steps:\n\
         \x20 start:\n\
         \x20   run: 'echo start >> {m}; echo \"[$(seq -s, 1 $FLOWPACK_PARAM_N)]\" > $FLOWPACK_OUTPUT_DIR/items'\n\
         \x20   foreach: items\n\
         \x20   next: work\n\
         \x20 work:\n\
         \x20   run: 'echo work >> {m}; {work_cmd}'\n\
         \x20   next: gather\n\
         \x20 gather:\n\
         \x20   join: true\n\
         \x20   run: 'echo gather >> {m}; cat $FLOWPACK_INPUT_DIR/*/sq | sort > $FLOWPACK_OUTPUT_DIR/all; echo big > $FLOWPACK_OUTPUT_DIR/size'\n\
         \x20   switch: {{on: size, cases: {{big: report, small: other}}}}\n\
         \x20 report:\n\
         \x20   run: 'echo report >> {m}; wc -l < $FLOWPACK_INPUT_DIR/all > $FLOWPACK_OUTPUT_DIR/lines'\n\
         \x20   next: end\n\
         \x20 other:\n\
         \x20   run: 'echo other >> {m}'\n\
         \x20   next: end\n\
         \x20 end:\n\
         \x20   run: 'echo end >> {m}'\n"
    )
}

const WORK: &str =
    "echo $(( $FLOWPACK_SPLIT_ITEM * $FLOWPACK_SPLIT_ITEM )) > $FLOWPACK_OUTPUT_DIR/sq";

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("run")
        .args(args)
        .arg("--json")
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .env_remove("FLOWPACK_STORE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    json(&String::from_utf8_lossy(&out.stdout))["run"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Each task's last record and its artifacts, by `step/task`.
fn tasks(
    dir: &Path,
    run: &str,
    store: &[&str],
) -> BTreeMap<String, (serde_json::Value, serde_json::Value)> {
    let info = show(dir, run, store);
    info["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let rec = t["attempts"].as_array().unwrap().last().unwrap()["record"].clone();
            (
                t["task"].as_str().unwrap().to_string(),
                (rec, t["artifacts"].clone()),
            )
        })
        .collect()
}

/// The steps that ran since the marks were last taken, sorted.
fn ran(marks: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(marks).unwrap_or_default();
    let _ = std::fs::remove_file(marks);
    let mut v: Vec<String> = text.lines().map(String::from).collect();
    v.sort();
    v
}

fn digests(arts: &serde_json::Value) -> BTreeMap<String, String> {
    arts.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["digest"].as_str().unwrap().to_string()))
        .collect()
}

fn second_identical_run_reuses_every_task_on(store: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let marks_dir = tempfile::tempdir().unwrap();
    let marks = marks_dir.path().join("marks");
    write_tree(tmp.path(), &[("flow.yaml", &flow(&marks, WORK))]);
    let mut args = vec!["flow.yaml"];
    args.extend_from_slice(store);
    let first = run(tmp.path(), &args);
    assert_eq!(ran(&marks).len(), 7, "start, 3 work, gather, report, end");
    let second = run(tmp.path(), &args);
    assert_eq!(ran(&marks), Vec::<String>::new(), "nothing runs again");
    let (a, b) = (
        tasks(tmp.path(), &first, store),
        tasks(tmp.path(), &second, store),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (task, (rec, arts)) in &b {
        assert_eq!(rec["status"], "reused", "{task}: {rec:#}");
        assert_eq!(rec["reuse_reason"], "cache", "{task}");
        let from = rec["reused_from"].as_str().unwrap();
        assert!(from.starts_with(&format!("{first}/{task}/")), "{from}");
        assert_eq!(digests(arts), digests(&a[task].1), "{task}");
    }
}

#[test]
fn a_second_identical_run_reuses_every_task() {
    second_identical_run_reuses_every_task_on(&[]);
}

#[test]
fn a_second_identical_run_reuses_every_task_on_s3() {
    let store = util::s3_store("cache-identical");
    second_identical_run_reuses_every_task_on(&["--store", &store]);
}

#[test]
fn changing_one_steps_command_reruns_it_and_what_follows_only() {
    let tmp = tempfile::tempdir().unwrap();
    let marks_dir = tempfile::tempdir().unwrap();
    let marks = marks_dir.path().join("marks");
    write_tree(tmp.path(), &[("flow.yaml", &flow(&marks, WORK))]);
    let first = run(tmp.path(), &["flow.yaml"]);
    ran(&marks);
    // A new command for `work`, with a different result.
    let changed = "echo $(( $FLOWPACK_SPLIT_ITEM + 100 )) > $FLOWPACK_OUTPUT_DIR/sq";
    write_tree(tmp.path(), &[("flow.yaml", &flow(&marks, changed))]);
    let second = run(tmp.path(), &["flow.yaml"]);
    assert_eq!(
        ran(&marks),
        ["end", "gather", "report", "work", "work", "work"],
        "start is reused; work and every step after it run"
    );
    let t = tasks(tmp.path(), &second, &[]);
    assert_eq!(t["start/0"].0["status"], "reused");
    assert!(
        t["start/0"].0["reused_from"]
            .as_str()
            .unwrap()
            .starts_with(&first)
    );
    for task in [
        "work/0", "work/1", "work/2", "gather/0", "report/0", "end/0",
    ] {
        assert_eq!(t[task].0["status"], "succeeded", "{task}");
    }
    // A comment elsewhere in the flow file changes no step: everything is reused.
    let mut text = std::fs::read_to_string(tmp.path().join("flow.yaml")).unwrap();
    text.push_str("# a comment\n");
    std::fs::write(tmp.path().join("flow.yaml"), text).unwrap();
    run(tmp.path(), &["flow.yaml"]);
    assert_eq!(ran(&marks), Vec::<String>::new());
}

#[test]
fn a_different_parameter_value_runs_every_task_again() {
    // Every task sees every parameter ($FLOWPACK_PARAMS): all of them are in every key.
    let tmp = tempfile::tempdir().unwrap();
    let marks_dir = tempfile::tempdir().unwrap();
    let marks = marks_dir.path().join("marks");
    write_tree(tmp.path(), &[("flow.yaml", &flow(&marks, WORK))]);
    run(tmp.path(), &["flow.yaml"]);
    ran(&marks);
    run(tmp.path(), &["flow.yaml", "--param", "n=2"]);
    assert_eq!(ran(&marks).len(), 6, "start, 2 work, gather, report, end");
    // The same value given explicitly is the default's key: reused.
    run(tmp.path(), &["flow.yaml", "--param", "n=3"]);
    assert_eq!(ran(&marks), Vec::<String>::new());
}

#[test]
fn cache_false_and_no_cache_always_run() {
    let tmp = tempfile::tempdir().unwrap();
    let marks_dir = tempfile::tempdir().unwrap();
    let marks = marks_dir.path().join("marks");
    let text = flow(&marks, WORK).replace(
        "    run: 'echo report",
        "    cache: false\n    run: 'echo report",
    );
    write_tree(tmp.path(), &[("flow.yaml", &text)]);
    run(tmp.path(), &["flow.yaml"]);
    ran(&marks);
    let second = run(tmp.path(), &["flow.yaml"]);
    assert_eq!(ran(&marks), ["report"], "only the cache: false step runs");
    let t = tasks(tmp.path(), &second, &[]);
    assert_eq!(t["report/0"].0["status"], "succeeded");
    // `end` follows a task that ran, with the same outputs: still reused.
    assert_eq!(t["end/0"].0["status"], "reused");
    run(tmp.path(), &["flow.yaml", "--no-cache"]);
    assert_eq!(ran(&marks).len(), 7, "--no-cache runs every task");
}

#[test]
fn an_index_entry_whose_blobs_are_gone_is_ignored_and_the_task_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let marks_dir = tempfile::tempdir().unwrap();
    let marks = marks_dir.path().join("marks");
    write_tree(tmp.path(), &[("flow.yaml", &flow(&marks, WORK))]);
    let first = run(tmp.path(), &["flow.yaml"]);
    ran(&marks);
    // Delete the blob of report's own artifact.
    let t = tasks(tmp.path(), &first, &[]);
    let digest = t["report/0"].1["lines"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = digest.trim_start_matches("sha256:");
    let blob = tmp
        .path()
        .join(".flowpack/v1/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    std::fs::remove_file(&blob).unwrap();
    let second = run(tmp.path(), &["flow.yaml"]);
    assert_eq!(ran(&marks), ["report"], "the dangling entry's task runs");
    let t = tasks(tmp.path(), &second, &[]);
    assert_eq!(t["report/0"].0["status"], "succeeded");
    assert!(blob.exists(), "the task's run stored the blob again");
    // The entry now points at the second run's task: a third run reuses it.
    let third = run(tmp.path(), &["flow.yaml"]);
    assert_eq!(ran(&marks), Vec::<String>::new());
    let t = tasks(tmp.path(), &third, &[]);
    let from = t["report/0"].0["reused_from"].as_str().unwrap();
    assert!(from.starts_with(&second), "{from}");
}

/// A Python flow: editing one step's body reruns that step and those after it; the steps
/// before it see the same code (the other steps' bodies are blanked in their key).
#[test]
fn a_python_step_body_edit_reruns_it_and_what_follows_only() {
    let tmp = tempfile::tempdir().unwrap();
    let marks_dir = tempfile::tempdir().unwrap();
    let marks = marks_dir.path().join("marks");
    let source = |middle: &str| {
        format!(
            "from flowpack import FlowSpec, step\n\
             \n\
             def mark(name):\n\
             \x20   with open({marks:?}, 'a') as f:\n\
             \x20       f.write(name + '\\n')\n\
             \n\
             class CachedFlow(FlowSpec):\n\
             \x20   @step\n\
             \x20   def start(self):\n\
             \x20       mark('start')\n\
             \x20       self.data = [1, 2, 3]\n\
             \x20       self.next(self.middle)\n\
             \n\
             \x20   @step\n\
             \x20   def middle(self):\n\
             \x20       mark('middle')\n\
             \x20       self.total = {middle}\n\
             \x20       self.next(self.end)\n\
             \n\
             \x20   @step\n\
             \x20   def end(self):\n\
             \x20       mark('end')\n\
             \x20       print('total', self.total)\n",
            marks = marks.display().to_string()
        )
    };
    write_tree(tmp.path(), &[("cached.py", &source("sum(self.data)"))]);
    let first = run(tmp.path(), &["cached.py"]);
    assert_eq!(ran(&marks), ["end", "middle", "start"]);
    run(tmp.path(), &["cached.py"]);
    assert_eq!(ran(&marks), Vec::<String>::new(), "all reused");
    write_tree(tmp.path(), &[("cached.py", &source("sum(self.data) * 2"))]);
    let third = run(tmp.path(), &["cached.py"]);
    assert_eq!(ran(&marks), ["end", "middle"], "start is reused");
    let t = tasks(tmp.path(), &third, &[]);
    assert_eq!(t["start/0"].0["status"], "reused");
    assert!(
        t["start/0"].0["reused_from"]
            .as_str()
            .unwrap()
            .starts_with(&first)
    );
    assert_eq!(t["middle/0"].0["status"], "succeeded");
}

/// A 10-step flow's second run against its first: every task is a cache hit.
#[test]
fn a_ten_step_flows_second_run_is_faster() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("name: ten\nsteps:\n");
    let names: Vec<String> = (0..10)
        .map(|i| match i {
            0 => "start".to_string(),
            9 => "end".to_string(),
            i => format!("s{i}"),
        })
        .collect();
    for (i, name) in names.iter().enumerate() {
        text.push_str(&format!(
            "  {name}:\n    run: 'sleep 0.2; echo {i} > $FLOWPACK_OUTPUT_DIR/out{i}'\n"
        ));
        if let Some(next) = names.get(i + 1) {
            text.push_str(&format!("    next: {next}\n"));
        }
    }
    write_tree(tmp.path(), &[("flow.yaml", &text)]);
    let t0 = std::time::Instant::now();
    run(tmp.path(), &["flow.yaml"]);
    let first = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let second = run(tmp.path(), &["flow.yaml"]);
    let again = t1.elapsed().as_secs_f64();
    eprintln!(
        "10-step flow: first run {first:.2}s, second (all cached) {again:.2}s, ratio {:.2}",
        again / first
    );
    let t = tasks(tmp.path(), &second, &[]);
    assert!(t.values().all(|(r, _)| r["status"] == "reused"));
    assert!(again < first, "{again} vs {first}");
}
