//! The DAG a run page draws: the flow's steps as the package has them, each with the run's
//! task counts by status, foreach fan-outs with their width and switches with the cases
//! the run took.

use std::collections::BTreeMap;

use flowpack_core::flow::{Flow, Transition};
use flowpack_runtime::inspect::RunInfo;
use serde::Serialize;

/// The graph of one run.
#[derive(Debug, Serialize)]
pub struct Graph {
    /// The first step.
    pub start: &'static str,
    /// Steps in flow order (breadth-first from `start`), hook steps last.
    pub steps: Vec<Node>,
}

/// One step of the graph.
#[derive(Debug, Serialize)]
pub struct Node {
    /// The step.
    pub name: String,
    /// `linear`, `split`, `foreach`, `switch` or `end`.
    pub transition: &'static str,
    /// The steps it leads to.
    pub next: Vec<String>,
    /// Whether it joins branches.
    pub join: bool,
    /// For a foreach step: the artifact it fans out over.
    pub foreach: Option<Foreach>,
    /// For a switch step: its cases and those this run took.
    pub switch: Option<Switch>,
    /// `on_failure` or `on_exit` for an exit hook.
    pub hook: Option<&'static str>,
    /// This run's tasks of the step.
    pub tasks: usize,
    /// Those tasks by status.
    pub counts: BTreeMap<&'static str, usize>,
}

/// A foreach step's fan-out.
#[derive(Debug, Serialize)]
pub struct Foreach {
    /// The list artifact.
    pub over: String,
}

/// A switch step's cases.
#[derive(Debug, Serialize)]
pub struct Switch {
    /// The artifact whose value chooses.
    pub on: String,
    /// Next step by value.
    pub cases: BTreeMap<String, String>,
    /// The values whose step ran in this run.
    pub chosen: Vec<String>,
}

/// The graph of `flow` with the tasks of `run`.
pub fn of(flow: &Flow, run: &RunInfo) -> Graph {
    let mut counts: BTreeMap<&str, (usize, BTreeMap<&'static str, usize>)> = BTreeMap::new();
    for t in &run.tasks {
        let slot = counts.entry(t.step.as_str()).or_default();
        slot.0 += 1;
        if let Some(s) = t.status() {
            *slot.1.entry(s.name()).or_insert(0) += 1;
        }
    }
    let ran = |step: &str| counts.get(step).is_some_and(|c| c.0 > 0);
    let steps = flow
        .order()
        .into_iter()
        .filter_map(|name| Some((name, flow.steps.get(name)?)))
        .map(|(name, step)| {
            let (transition, foreach, switch) = match &step.next {
                Transition::End => ("end", None, None),
                Transition::Linear(_) => ("linear", None, None),
                Transition::Split(_) => ("split", None, None),
                Transition::Foreach { over, .. } => {
                    ("foreach", Some(Foreach { over: over.clone() }), None)
                }
                Transition::Switch { on, cases } => (
                    "switch",
                    None,
                    Some(Switch {
                        on: on.clone(),
                        cases: cases.clone(),
                        chosen: cases
                            .iter()
                            .filter(|(_, to)| ran(to))
                            .map(|(value, _)| value.clone())
                            .collect(),
                    }),
                ),
            };
            let (tasks, by_status) = counts.get(name).cloned().unwrap_or_default();
            Node {
                name: name.to_string(),
                transition,
                next: step.next.targets().into_iter().map(String::from).collect(),
                join: step.join,
                foreach,
                switch,
                hook: flow.hook_kind(name).map(|k| k.key()),
                tasks,
                counts: by_status,
            }
        })
        .collect();
    Graph {
        start: "start",
        steps,
    }
}
