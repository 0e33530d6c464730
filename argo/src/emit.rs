//! The Argo emitter: a walk of the [`Plan`]'s scope tree that writes the WorkflowTemplate's
//! templates.
//!
//! - A step is a container template and a task (of the same name) in the DAG template of
//!   its innermost scope; the root scope is the entry DAG.
//! - A foreach loop is a task running the body's DAG template `withParam` over the foreach
//!   step's `foreach` output (a JSON list of indices, never the items), each item the
//!   body's last `task-<d>` input.
//! - A switch case is a task running the case's DAG template `when` the switch step's
//!   `branch` output (the index of the chosen target, so case values never enter the
//!   expression) is its index. A task after the cases depends on every case task: Argo
//!   counts a skipped dependency as done (`depends: a` is `a.Succeeded || a.Skipped ||
//!   a.Daemoned`).
//! - Each task's foreach indices reach it as one input per loop level (`--task-part`).
//! - A task whose parents are not known when compiling finds them in the store
//!   (`--parents-from-store`): nothing proportional to a foreach's width passes through
//!   Argo beyond the list of indices.

use std::collections::{BTreeMap, BTreeSet};

use flowpack_core::flow::{Flow, HookKind, Transition};
use flowpack_core::invocation::{CompileOptions, RunId, StepInvocation};
use flowpack_core::plan::{Frame, Plan, Scope};
use serde_json::{Value, json};

use crate::names::Names;
use crate::{RESUME, RUN_ID, labels, pod};

/// Where a step writes an output parameter inside its container.
fn output_path(name: &str) -> String {
    format!("/tmp/flowpack-outputs/{name}")
}

/// The input holding the index of loop level `d`.
fn task_part(d: usize) -> String {
    format!("task-{d}")
}

/// A node of the DAG nesting: a step's task, a loop task or a case task.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Step(String),
    Loop(String),
    Case(String, usize),
}

fn path_of(plan: &Plan, step: &str) -> Vec<Node> {
    let mut p: Vec<Node> = plan.steps[step]
        .scopes()
        .into_iter()
        .filter_map(|f| match f {
            Frame::Loop { step } => Some(Node::Loop(step.clone())),
            Frame::Case { step, target } => Some(Node::Case(step.clone(), *target)),
            Frame::Split { .. } => None,
        })
        .collect();
    p.push(Node::Step(step.into()));
    p
}

/// Emits the templates of `flow` along `plan`.
pub(crate) struct Emitter<'a> {
    flow: &'a Flow,
    plan: &'a Plan,
    pub names: Names,
    opts: &'a CompileOptions,
    /// Every template, in the order written: DAGs before the steps they hold.
    pub templates: Vec<Value>,
    /// Dependencies by task name.
    deps: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Emitter<'a> {
    pub(crate) fn new(flow: &'a Flow, plan: &'a Plan, opts: &'a CompileOptions) -> Self {
        let names = Names::of(flow, plan);
        let deps = plan.node_dependencies(|s| path_of(plan, s), |n| names.node(n).to_string());
        Emitter {
            flow,
            plan,
            names,
            opts,
            templates: Vec::new(),
            deps,
        }
    }

    /// Writes every template: the entry DAG (and what it holds), then the exit handler.
    pub(crate) fn emit(&mut self, tree: &Scope) {
        let entry = self.names.entry.clone();
        self.dag(tree, 0, &entry);
        let Some(exit) = self.names.exit.clone() else {
            return;
        };
        let mut tasks = Vec::new();
        let hooks: Vec<(HookKind, String)> = self
            .flow
            .hooks()
            .into_iter()
            .map(|(k, s)| (k, s.to_string()))
            .collect();
        for (kind, hook) in hooks {
            let mut task = self.step(&hook, 0);
            if kind == HookKind::OnFailure {
                task["when"] = json!("{{workflow.status}} != Succeeded");
            }
            tasks.push(task);
        }
        self.templates
            .push(json!({"name": exit, "dag": {"tasks": tasks}}));
    }

    /// The DAG template `name` of `scope`, inside `depth` loops; registers every template
    /// inside it.
    fn dag(&mut self, scope: &Scope, depth: usize, name: &str) {
        let at = self.templates.len();
        self.templates.push(Value::Null); // the DAG comes before what it holds
        let mut tasks = Vec::new();
        for s in &scope.steps {
            tasks.push(self.step(s, depth));
        }
        for child in &scope.children {
            match &child.frame {
                Some(Frame::Loop { step }) => {
                    let body = self.names.loops[step].clone();
                    self.dag(child, depth + 1, &body);
                    let mut args = parts(depth);
                    args.push(json!({"name": task_part(depth), "value": "{{item}}"}));
                    tasks.push(json!({
                        "name": body,
                        "template": body,
                        "withParam": format!("{{{{tasks.{}.outputs.parameters.foreach}}}}", self.names.steps[step]),
                        "arguments": {"parameters": args},
                    }));
                }
                Some(Frame::Case { step, target }) => {
                    let case = self.names.cases[&(step.clone(), *target)].clone();
                    self.dag(child, depth, &case);
                    let mut task = json!({
                        "name": case,
                        "template": case,
                        "when": format!("{{{{tasks.{}.outputs.parameters.branch}}}} == {target}", self.names.steps[step]),
                    });
                    if depth > 0 {
                        task["arguments"] = json!({"parameters": parts(depth)});
                    }
                    tasks.push(task);
                }
                _ => {}
            }
        }
        for task in &mut tasks {
            let own = task["name"].as_str().unwrap_or_default();
            if let Some(d) = self.deps.get(own) {
                task["depends"] = json!(d.iter().cloned().collect::<Vec<_>>().join(" && "));
            }
        }
        let mut template = json!({"name": name, "dag": {"tasks": tasks}});
        if depth > 0 {
            let inputs: Vec<Value> = (0..depth).map(|d| json!({"name": task_part(d)})).collect();
            template["inputs"] = json!({"parameters": inputs});
        }
        self.templates[at] = template;
    }

    /// The container template of step `s` inside `depth` loops, and its task.
    fn step(&mut self, s: &str, depth: usize) -> Value {
        let step = &self.flow.steps[s];
        let key = self.names.steps[s].clone();
        let mut outputs = Vec::new();
        let mut inv = self.invocation(s, depth);
        let output = match step.next {
            Transition::Foreach { .. } => Some("foreach"),
            Transition::Switch { .. } => Some("branch"),
            _ => None,
        };
        if let Some(o) = output {
            inv.output_params.push(format!("{o}={}", output_path(o)));
            outputs.push(json!({"name": o, "valueFrom": {"path": output_path(o)}}));
        }
        let mut template = pod::template(step, &self.opts.command, inv.to_args());
        template["name"] = json!(key);
        template["metadata"] = json!({"labels": labels(&self.flow.name, Some(s))});
        if depth > 0 {
            let inputs: Vec<Value> = (0..depth).map(|d| json!({"name": task_part(d)})).collect();
            template["inputs"] = json!({"parameters": inputs});
        }
        if !outputs.is_empty() {
            template["outputs"] = json!({"parameters": outputs});
        }
        self.templates.push(template);
        let mut task = json!({"name": key, "template": key});
        if depth > 0 {
            task["arguments"] = json!({"parameters": parts(depth)});
        }
        task
    }

    /// The `flowpack step` arguments of `s` at loop depth `depth`.
    fn invocation(&self, s: &str, depth: usize) -> StepInvocation {
        let step = &self.flow.steps[s];
        let mut inv = StepInvocation::new(
            &flowpack_core::store::redact_url(&self.opts.store_url),
            &self.opts.package.to_string(),
            RunId::Run(RUN_ID.into()),
            s,
        );
        inv.image = Some(step.settings.image.clone());
        inv.task_parts = (0..depth)
            .map(|d| format!("{{{{inputs.parameters.{}}}}}", task_part(d)))
            .collect();
        inv.plan_parents(self.plan);
        for p in self.flow.parameters.keys() {
            inv.params
                .push(format!("{p}={{{{workflow.parameters.{p}}}}}"));
        }
        inv.resume = Some(format!("{{{{workflow.parameters.{RESUME}}}}}"));
        inv
    }
}

/// The enclosing loops' indices passed on to a task: `task-<d>` from the DAG's own input.
fn parts(depth: usize) -> Vec<Value> {
    (0..depth)
        .map(|d| {
            json!({
                "name": task_part(d),
                "value": format!("{{{{inputs.parameters.{}}}}}", task_part(d)),
            })
        })
        .collect()
}

impl Names {
    /// The task name of a node in the DAG that holds it.
    fn node(&self, n: &Node) -> &str {
        match n {
            Node::Step(s) => &self.steps[s],
            Node::Loop(s) => &self.loops[s],
            Node::Case(s, i) => &self.cases[&(s.clone(), *i)],
        }
    }
}
