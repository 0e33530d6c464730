//! The KFP compiler's property: every valid flow passes `check`; a flow that
//! `check --target kfp` accepts compiles, and what it compiles to passes KFP's own
//! validation (`validate_ir.py --strict`). Random flows — every graph shape nested in every
//! other, recursive switches, exit hooks, names made to collide with the compiler's
//! generated ones or to reach KFP's length limits, parameters of every type and default,
//! switch values with spaces and quotes, flow names that are not DNS-1123 — are checked,
//! compiled and then validated in one batch. What `check --target kfp` refuses must be a
//! shape KFP is refused on purpose (a recursive switch: KFP's IR is a DAG),
//! with a message starting "for KFP:".
//!
//! The cases come from a deterministic generator (the same on every run, so CI is stable);
//! `FLOWPACK_PROPERTY_SEED=N` explores others, `FLOWPACK_PROPERTY_CASES=N` more of them. A
//! failing case leaves its flow file in the printed folder.

use std::fmt::Write as _;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::util;

/// A graph shape: one entry step and one exit step, whatever is between.
#[derive(Clone, Debug)]
enum Shape {
    Step,
    Chain(Vec<Shape>),
    Split(Vec<Shape>),
    Foreach(Box<Shape>),
    /// Case values and the case bodies; the cases meet again at one step after them.
    Switch(Vec<(String, Shape)>),
    /// The body, then a switch whose `again` case leads back to the body's entry.
    Recurse(Box<Shape>),
}

impl Shape {
    fn recursive(&self) -> bool {
        match self {
            Shape::Step => false,
            Shape::Recurse(_) => true,
            Shape::Chain(v) | Shape::Split(v) => v.iter().any(Shape::recursive),
            Shape::Foreach(b) => b.recursive(),
            Shape::Switch(cases) => cases.iter().any(|(_, b)| b.recursive()),
        }
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = Just(Shape::Step);
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            4 => prop::collection::vec(inner.clone(), 2..4).prop_map(Shape::Chain),
            4 => prop::collection::vec(inner.clone(), 2..4).prop_map(Shape::Split),
            4 => inner.clone().prop_map(|s| Shape::Foreach(Box::new(s))),
            4 => prop::collection::vec((case_value(), inner.clone()), 1..4).prop_map(Shape::Switch),
            1 => inner.prop_map(|s| Shape::Recurse(Box::new(s))),
        ]
    })
}

/// Switch values: plain words, and the characters that break quoting.
fn case_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9]{0,6}",
        Just("it's".to_string()),
        Just("two words".to_string()),
        Just("say \"hi\"".to_string()),
        Just("back\\slash".to_string()),
        Just("1.5".to_string()),
        Just("true".to_string()),
    ]
}

/// Step names: short ones, ones shaped like the names a KFP compiler generates, and long ones.
fn step_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_]{0,8}",
        1 => "[A-Z][A-Za-z0-9]{0,8}",
        1 => "[a-z]{1,6}".prop_map(|s| format!("for-each-{s}")),
        1 => ("[a-z]{1,6}", 0..4u8).prop_map(|(s, i)| format!("{s}-case-{i}")),
        1 => (1..4u8).prop_map(|i| format!("exit-handler-{i}")),
        1 => (1..4u8).prop_map(|i| format!("condition-{i}")),
        1 => prop_oneof![Just("root".to_string()), Just("comp-x".to_string()), Just("exec-x".to_string())],
        1 => (40..=100usize).prop_map(|n| "s".repeat(n)),
        1 => prop_oneof![Just("train_a".to_string()), Just("train-a".to_string())],
    ]
}

fn flow_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}",
        Just("ParameterFlow".to_string()),
        Just("My_Flow.v2".to_string()),
        Just("ABCFlow".to_string()),
        Just("aB.c_D".to_string()),
        Just("9lives".to_string()),
        Just("x.-y__Z".to_string()),
        Just("ETL".to_string()),
        (40..=64usize).prop_map(|n| "Ab".repeat(n)),
        (100..=128usize).prop_map(|n| format!("F{}", "x".repeat(n - 1))),
    ]
}

/// A parameter: its name and its YAML value (`{type: …, default: …}`).
fn parameter() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        "[a-z][a-z0-9_]{0,8}",
        Just("run_id".to_string()),
        Just("split".to_string()),
        Just("parents".to_string()),
        Just("task".to_string()),
        Just("Output".to_string()),
        Just("root".to_string()),
        Just("flowpack".to_string()),
        Just("pipelinechannel".to_string()),
        Just("for_each_x".to_string()),
        Just("exit_handler_1".to_string()),
        Just("condition_1".to_string()),
    ];
    let spec = prop_oneof![
        Just("{type: string, default: hello}"),
        Just("{type: string}"),
        Just("{type: int, default: 3}"),
        Just("{type: float, default: 0.5}"),
        Just("{type: bool, default: true}"),
        Just("{type: json, default: [1, 2]}"),
        Just("{type: json, default: {a: 1}}"),
        Just("{type: json, default: 7}"),
        Just("{type: json, default: text}"),
        Just("{type: json, default: false}"),
        Just("{type: json}"),
        Just("{type: json, default: null}"),
        Just("{type: json, default: \"[1, 2]\"}"),
        Just("{type: json, default: 'say \"hi\"'}"),
    ];
    (name, spec).prop_map(|(n, s)| (n, s.to_string()))
}

#[derive(Debug)]
struct Case {
    flow: String,
    shape: Shape,
    names: Vec<String>,
    params: Vec<(String, String)>,
    /// Exit hooks: `on_failure`, `on_exit` (each a step named by the name generator).
    hooks: (bool, bool),
}

fn case() -> impl Strategy<Value = Case> {
    (
        flow_name(),
        shape(),
        prop::collection::vec(step_name(), 64),
        prop::collection::vec(parameter(), 0..4),
        (prop::bool::weighted(0.08), prop::bool::weighted(0.08)),
    )
        .prop_map(|(flow, shape, names, params, hooks)| Case {
            flow,
            shape,
            names,
            params,
            hooks,
        })
}

/// Writes a case as a flow file: `start`, the shape, `end`.
struct Writer<'a> {
    names: &'a [String],
    used: Vec<String>,
    steps: String,
}

impl Writer<'_> {
    /// A fresh step name: the case's next name, made unique (`a_b` and `a-b` may both
    /// occur: the compiler must keep their KFP names apart).
    fn name(&mut self) -> String {
        let base = self.names[self.used.len() % self.names.len()].clone();
        let mut name = base.clone();
        let mut n = 1;
        while ["start", "end"].contains(&name.as_str()) || self.used.contains(&name) {
            name = format!("{}{n}", &base[..base.len().min(95)]);
            n += 1;
        }
        self.used.push(name.clone());
        name
    }

    fn step(&mut self, name: &str, body: &str) {
        writeln!(self.steps, "  {name}: {{run: \"true\", {body}}}").unwrap();
    }

    /// Writes `shape` leading to `next`; returns its entry step.
    fn shape(&mut self, shape: &Shape, next: &str) -> String {
        match shape {
            Shape::Step => {
                let s = self.name();
                self.step(&s, &format!("next: {next}"));
                s
            }
            Shape::Chain(parts) => {
                let mut next = next.to_string();
                for p in parts.iter().rev() {
                    next = self.shape(p, &next);
                }
                next
            }
            Shape::Split(branches) => {
                let j = self.name();
                self.step(&j, &format!("join: true, next: {next}"));
                let heads: Vec<String> = branches.iter().map(|b| self.shape(b, &j)).collect();
                let s = self.name();
                self.step(&s, &format!("next: [{}]", heads.join(", ")));
                s
            }
            Shape::Foreach(body) => {
                let j = self.name();
                self.step(&j, &format!("join: true, next: {next}"));
                let head = self.shape(body, &j);
                let f = self.name();
                self.step(&f, &format!("foreach: list.{f}, next: {head}"));
                f
            }
            Shape::Switch(cases) => {
                let m = self.name();
                self.step(&m, &format!("next: {next}"));
                let mut seen = Vec::new();
                let mut arms = Vec::new();
                for (value, body) in cases {
                    if seen.contains(value) {
                        continue;
                    }
                    seen.push(value.clone());
                    let head = self.shape(body, &m);
                    arms.push(format!("{}: {head}", yaml_string(value)));
                }
                let w = self.name();
                self.step(
                    &w,
                    &format!("switch: {{on: choice.{w}, cases: {{{}}}}}", arms.join(", ")),
                );
                w
            }
            Shape::Recurse(body) => {
                let d = self.name();
                let head = self.shape(body, &d);
                self.step(
                    &d,
                    &format!("switch: {{on: again.{d}, cases: {{again: {head}, done: {next}}}}}"),
                );
                head
            }
        }
    }
}

/// `s` as a double-quoted YAML scalar.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn flow_file(c: &Case) -> String {
    let mut w = Writer {
        names: &c.names,
        used: Vec::new(),
        steps: String::new(),
    };
    let first = w.shape(&c.shape, "end");
    let mut out = format!("name: {}\n", yaml_string(&c.flow));
    for (key, on) in [("on_failure", c.hooks.0), ("on_exit", c.hooks.1)] {
        if on {
            let hook = w.name();
            w.step(&hook, "retry: 1");
            writeln!(out, "{key}: {hook}").unwrap();
        }
    }
    if c.shape.recursive() {
        out.push_str("max_visits: 3\n");
    }
    let mut seen = Vec::new();
    if !c.params.is_empty() {
        out.push_str("parameters:\n");
        for (name, spec) in &c.params {
            if !seen.contains(name) {
                writeln!(out, "  {name}: {spec}").unwrap();
                seen.push(name.clone());
            }
        }
    }
    out.push_str("steps:\n");
    writeln!(out, "  start: {{run: \"true\", next: {first}}}").unwrap();
    out.push_str(&w.steps);
    out.push_str("  end: {run: \"true\"}\n");
    out
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every random valid flow passes `check`; every one `check --target kfp` accepts compiles,
/// and KFP's validator accepts the pipeline; every one also compiles for Argo, and Argo's
/// validator accepts the WorkflowTemplate.
#[test]
fn every_flow_check_accepts_compiles_to_a_pipeline_kfp_accepts() {
    let seed = env_number("FLOWPACK_PROPERTY_SEED", 12);
    let cases = env_number("FLOWPACK_PROPERTY_CASES", 60);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let dir = tempfile::Builder::new()
        .prefix("kfp-property-")
        .tempdir()
        .unwrap()
        .keep();
    let store = dir.join("store");
    let store = store.to_str().unwrap();
    let strategy = case();
    let mut compiled: Vec<PathBuf> = Vec::new();
    let mut templates: Vec<PathBuf> = Vec::new();
    let mut failures = Vec::new();
    let mut refused = 0;
    for i in 0..cases {
        let c = strategy.new_tree(&mut runner).unwrap().current();
        let case_dir = dir.join(format!("case-{i}"));
        std::fs::create_dir_all(&case_dir).unwrap();
        std::fs::write(case_dir.join("flow.yaml"), flow_file(&c)).unwrap();
        let check = util::flowpack(&case_dir, &["check", "flow.yaml"]);
        if !check.status.success() {
            failures.push(format!(
                "case-{i}: check refused a valid flow ({:?}):\n{}",
                c.shape,
                String::from_utf8_lossy(&check.stderr)
            ));
            continue;
        }
        let kfp = util::flowpack(&case_dir, &["check", "flow.yaml", "--target", "kfp"]);
        if !kfp.status.success() {
            let why = String::from_utf8_lossy(&kfp.stderr);
            let expected = c.shape.recursive();
            if !expected || !why.starts_with("error: for KFP: ") {
                failures.push(format!(
                    "case-{i}: check --target kfp refused a flow KFP can run ({:?}):\n{why}",
                    c.shape
                ));
            }
            refused += 1;
            continue;
        }
        // Compiles for `target` into `file`; what check accepted, compile must too.
        let mut compile = |target: &str, file: &str, into: &mut Vec<PathBuf>| {
            let out = util::flowpack(
                &case_dir,
                &[
                    "compile",
                    "--allow-local",
                    "flow.yaml",
                    "--target",
                    target,
                    "-o",
                    file,
                    "--store",
                    store,
                ],
            );
            if out.status.success() {
                into.push(case_dir.join(file));
            } else {
                failures.push(format!(
                    "case-{i}: check --target {target} accepted it, compile refused it:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        };
        compile("kfp", "pipeline.yaml", &mut compiled);
        // Argo: the same flow, the second emitter of the same plan.
        let argo = util::flowpack(&case_dir, &["check", "flow.yaml", "--target", "argo"]);
        if !argo.status.success() {
            failures.push(format!(
                "case-{i}: check --target argo refused a flow KFP compiles ({:?}):\n{}",
                c.shape,
                String::from_utf8_lossy(&argo.stderr)
            ));
            continue;
        }
        compile("argo", "workflow-template.yaml", &mut templates);
    }
    if !templates.is_empty() {
        let files: Vec<&std::path::Path> = templates.iter().map(PathBuf::as_path).collect();
        if let Err(text) = crate::argo::validate_files(&files) {
            failures.push(format!("validate_argo.py --strict:\n{text}"));
        }
    }
    if !compiled.is_empty() {
        let files: Vec<&std::path::Path> = compiled.iter().map(PathBuf::as_path).collect();
        if let Err(text) = crate::kfp::validate_files(&files) {
            failures.push(format!("validate_ir.py --strict:\n{text}"));
        }
    }
    println!(
        "seed {seed}: {} of {cases} compiled, {refused} refused for KFP",
        compiled.len()
    );
    // The property must not hold only because most flows were refused.
    if compiled.len() * 2 < cases as usize {
        failures.push(format!(
            "only {} of {cases} flows compiled ({refused} refused for KFP): the generator is too narrow",
            compiled.len()
        ));
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} random flows failed (seed {seed}; flows in {}):\n{}",
        failures.len(),
        dir.display(),
        failures.join("\n")
    );
    std::fs::remove_dir_all(&dir).ok();
}
