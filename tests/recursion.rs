//! Recursive switches under `flowpack run`: a switch case that leads back to an earlier
//! step runs it again as a new task (`0`, `0-1`, `0-2`, …), whose parent is the visit
//! before; `max_visits` bounds the loop; a cycle that no switch case closes is refused.

use std::path::Path;

use crate::runs::{json, show, task};
use crate::util::{flowpack, flowpack_ok, write_tree};

/// `inc` adds one to `count`, `decide` goes back to `inc` until the count reaches `n`.
const FLOW: &str = r#"name: loop
max_visits: 5
parameters:
  n: 3
steps:
  start: {run: 'echo 0 > "$FLOWPACK_OUTPUT_DIR/count"', next: inc}
  inc: {run: 'echo $(( $(cat "$FLOWPACK_INPUT_DIR/count") + 1 )) > "$FLOWPACK_OUTPUT_DIR/count"', next: decide}
  decide:
    run: 'if [ $(cat "$FLOWPACK_INPUT_DIR/count") -lt $FLOWPACK_PARAM_N ]; then echo again; else echo done; fi > "$FLOWPACK_OUTPUT_DIR/next"'
    switch: {on: next, cases: {again: inc, done: end}}
  end: {run: 'cat "$FLOWPACK_INPUT_DIR/count"'}
"#;

/// The tasks of `step` in `show`'s order, with their parents.
fn visits(info: &serde_json::Value, step: &str) -> Vec<(String, Vec<String>)> {
    info["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["step"] == step)
        .map(|t| {
            let rec = &t["attempts"][0]["record"];
            let parents = rec["parents"].as_array().unwrap();
            (
                t["task"].as_str().unwrap().to_string(),
                parents
                    .iter()
                    .map(|p| p.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn loops(dir: &Path, flow: &str, n: u32) -> String {
    let summary = json(&flowpack_ok(
        dir,
        &["run", flow, "--json", "--param", &format!("n={n}")],
    ));
    assert_eq!(summary["succeeded"], true, "{summary:#}");
    let run = summary["run"].as_str().unwrap().to_string();
    let info = show(dir, &run, &[]);
    let inc = visits(&info, "inc");
    let mut expected = Vec::new();
    for i in 0..n {
        let id = if i == 0 {
            "inc/0".to_string()
        } else {
            format!("inc/0-{i}")
        };
        let parent = if i == 0 {
            "start/0".to_string()
        } else {
            format!("decide/0-{}", i - 1)
        };
        let parent = parent.replace("decide/0-0", "decide/0");
        expected.push((id, vec![parent]));
    }
    assert_eq!(inc, expected);
    assert_eq!(
        task(&info, "end/0")["attempts"][0]["record"]["status"],
        "succeeded"
    );
    run
}

#[test]
fn a_yaml_flow_loops_until_its_switch_says_done() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW)]);
    let run = loops(tmp.path(), "flow.yaml", 3);
    let count = flowpack_ok(
        tmp.path(),
        &["artifacts", "get", &format!("{run}/end/count"), "-o", "-"],
    );
    assert_eq!(count.trim(), "3");
    // One visit: the switch goes on at once.
    loops(tmp.path(), "flow.yaml", 1);
}

#[test]
fn a_loop_past_max_visits_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW)]);
    let out = flowpack(
        tmp.path(),
        &["run", "flow.yaml", "--json", "--param", "n=9"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "step 'inc' would run a 6th time (task inc/0-5): the flow's `max_visits` is 5"
        ),
        "{err}"
    );
    let summary = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(summary["succeeded"], false);
    let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
    assert_eq!(visits(&info, "inc").len(), 5);
    assert!(visits(&info, "end").is_empty());
}

#[test]
fn a_cycle_no_switch_case_closes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = FLOW.replace(
        "cases: {again: inc, done: end}",
        "cases: {again: back, done: end}}\n  back: {run: 'true', next: inc",
    );
    write_tree(tmp.path(), &[("flow.yaml", &bad)]);
    let out = flowpack(tmp.path(), &["check", "flow.yaml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "the steps form a cycle: inc -> decide -> back -> inc; only a switch case may lead back"
        ),
        "{err}"
    );
}

const PY_FLOW: &str = r#"from flowpack import FlowSpec, Parameter, step


class LoopFlow(FlowSpec):
    n = Parameter("n", default=3)

    @step
    def start(self):
        self.count = 0
        self.next(self.inc)

    @step
    def inc(self):
        self.count += 1
        self.next(self.decide)

    @step
    def decide(self):
        self.route = "again" if self.count < self.n else "done"
        self.next({"again": self.inc, "done": self.end}, condition="route")

    @step
    def end(self):
        print("count", self.count)
"#;

#[test]
fn a_python_flow_loops_until_its_switch_says_done() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.py", PY_FLOW)]);
    let run = loops(tmp.path(), "flow.py", 3);
    let read = crate::python_flows::client(
        tmp.path(),
        None,
        &format!("from flowpack import Run\nprint(Run('LoopFlow/{run}')['end'].task.data.count)"),
    );
    assert_eq!(read, "3\n");
}
