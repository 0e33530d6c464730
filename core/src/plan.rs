//! The plan: a validated flow lowered into nested scopes, the one input (beside the flow's
//! settings) of every compiler (`flowpack check`, the KFP emitter, the Argo emitter).
//!
//! Each step sits inside a stack of [`Frame`]s, outermost first: the branch of a static
//! split, the body of a foreach loop, or one case of a switch. A join pops everything up to
//! and including the split or loop it closes; a step reached from several cases of a switch
//! (or from a case and another way) sits where those paths meet, i.e. in the longest common
//! prefix of their frames. The [`Scope`] tree is the same information grouped for emitters:
//! loops and cases are scopes (KFP: sub-DAGs), splits are not (KFP: plain dependencies).
//!
//! The plan also says how each task finds its parents ([`Parents`]): statically (the
//! parents are known when compiling) or in the store at run time (the join of a foreach,
//! whose parents are as many as its list has items; a step after the merge of switch
//! cases, whose parent is the case that ran). `runtime/src/step/parents.rs` does the latter.

use std::collections::{BTreeMap, BTreeSet};

use crate::flow::{Flow, Transition};

/// An open split, loop or case around a step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Frame {
    /// Branch `branch` of the static split of `step`.
    Split {
        /// The splitting step.
        step: String,
        /// The branch's position in the step's `next`.
        branch: usize,
    },
    /// The body of the foreach of `step` (adds one part to the task id).
    Loop {
        /// The foreach step.
        step: String,
    },
    /// One target of the switch of `step`: the cases that lead to `targets()[target]`.
    Case {
        /// The switch step.
        step: String,
        /// The index of the case's target in `Transition::targets`.
        target: usize,
    },
}

impl Frame {
    /// Whether the frame is a scope of its own (a loop or a case; not a split).
    pub fn is_scope(&self) -> bool {
        !matches!(self, Frame::Split { .. })
    }
}

/// How a task finds its parents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parents {
    /// `start`: none.
    None,
    /// Known when compiling: these steps, in order (their edges to this step always fire).
    Static(Vec<String>),
    /// Found in the store at run time: the join of a foreach, or a step after the merge of
    /// switch cases (only the edges that fired count).
    FromStore,
}

/// One step in the plan.
#[derive(Clone, Debug)]
pub struct StepPlan {
    /// The frames around the step, outermost first.
    pub frames: Vec<Frame>,
    /// The steps that lead here, in topological order.
    pub preds: Vec<String>,
    /// For a join: the split or foreach step it closes.
    pub closes: Option<String>,
    /// How the task finds its parents.
    pub parents: Parents,
}

impl StepPlan {
    /// The scope frames (loops and cases) around the step, outermost first.
    pub fn scopes(&self) -> Vec<&Frame> {
        self.frames.iter().filter(|f| f.is_scope()).collect()
    }

    /// How many foreach loops are around the step: the number of parts of its task id.
    pub fn depth(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| matches!(f, Frame::Loop { .. }))
            .count()
    }
}

/// A scope: the root, a loop body or a switch case, with the steps placed directly in it
/// and its child scopes.
#[derive(Clone, Debug)]
pub struct Scope {
    /// What the scope is (None: the root).
    pub frame: Option<Frame>,
    /// The steps placed directly in this scope, in topological order.
    pub steps: Vec<String>,
    /// Loops and cases inside, in the order their opening steps come.
    pub children: Vec<Scope>,
}

/// A flow that no compiler can lower.
#[derive(Debug, thiserror::Error)]
#[error("cannot plan flow '{flow}': {reason}")]
pub struct PlanError {
    /// The flow.
    pub flow: String,
    /// Why.
    pub reason: String,
}

/// The validated flow, lowered.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Steps in a topological order (`start` first).
    pub order: Vec<String>,
    /// Every step's place and parents.
    pub steps: BTreeMap<String, StepPlan>,
}

impl Plan {
    /// Lowers `flow` (already validated: acyclic, splits closed by joins).
    pub fn of(flow: &Flow) -> Result<Plan, PlanError> {
        let err = |reason: String| PlanError {
            flow: flow.name.clone(),
            reason,
        };
        let order = topological(flow).ok_or_else(|| {
            err("the flow has a cycle (a switch case that leads back): a recursive switch is no DAG".into())
        })?;
        let mut frames: BTreeMap<&str, Vec<Frame>> = BTreeMap::new();
        let mut preds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut closes: BTreeMap<&str, String> = BTreeMap::new();
        frames.insert("start", vec![]);
        for s in &order {
            let Some(here) = frames.get(s.as_str()).cloned() else {
                continue; // unreachable: validation reports it
            };
            let step = &flow.steps[s];
            for (i, t) in step.next.targets().into_iter().enumerate() {
                let mut f = here.clone();
                match &step.next {
                    Transition::Split(_) => f.push(Frame::Split {
                        step: s.clone(),
                        branch: i,
                    }),
                    Transition::Foreach { .. } => f.push(Frame::Loop { step: s.clone() }),
                    Transition::Switch { .. } => f.push(Frame::Case {
                        step: s.clone(),
                        target: i,
                    }),
                    _ => {}
                }
                let (t, _) = flow.steps.get_key_value(t).expect("validated targets");
                if flow.steps[t].join {
                    let at = f
                        .iter()
                        .rposition(|x| !matches!(x, Frame::Case { .. }))
                        .ok_or_else(|| err(format!("join '{t}' closes no split or foreach")))?;
                    let opener = match &f[at] {
                        Frame::Split { step, .. } | Frame::Loop { step } => step.clone(),
                        Frame::Case { .. } => unreachable!("found a split or loop"),
                    };
                    f.truncate(at);
                    closes.insert(t, opener);
                }
                preds.entry(t).or_default().push(s.clone());
                frames
                    .entry(t)
                    .and_modify(|old| {
                        let common = old.iter().zip(&f).take_while(|(a, b)| a == b).count();
                        old.truncate(common);
                    })
                    .or_insert(f);
            }
        }
        let mut steps = BTreeMap::new();
        for s in &order {
            let Some(f) = frames.get(s.as_str()) else {
                continue;
            };
            let p = preds.get(s.as_str()).cloned().unwrap_or_default();
            let c = closes.get(s.as_str()).cloned();
            let parents = parents_of(flow, s, &p, c.as_deref());
            steps.insert(
                s.clone(),
                StepPlan {
                    frames: f.clone(),
                    preds: p,
                    closes: c,
                    parents,
                },
            );
        }
        let order = order
            .into_iter()
            .filter(|s| steps.contains_key(s))
            .collect();
        Ok(Plan { order, steps })
    }

    /// The scope tree: the root with every loop and case inside.
    pub fn scope_tree(&self) -> Scope {
        let mut root = Scope {
            frame: None,
            steps: vec![],
            children: vec![],
        };
        for s in &self.order {
            let mut at = &mut root;
            for f in self.steps[s].scopes() {
                let i = match at.children.iter().position(|c| c.frame.as_ref() == Some(f)) {
                    Some(i) => i,
                    None => {
                        at.children.push(Scope {
                            frame: Some(f.clone()),
                            steps: vec![],
                            children: vec![],
                        });
                        at.children.len() - 1
                    }
                };
                at = &mut at.children[i];
            }
            at.steps.push(s.clone());
        }
        root
    }

    /// The plan of `step`.
    pub fn step(&self, step: &str) -> &StepPlan {
        &self.steps[step]
    }

    /// The dependencies between an emitter's DAG nodes, by the dependent's name: for each
    /// edge `p -> s`, the nodes where the paths of `p` and `s` part (`path` gives a step's
    /// nodes outermost first: the loops and cases around it as the emitter nests them, then
    /// the step; `name` names a node in its DAG). Both sit in one DAG, so a step in a loop
    /// body whose predecessor is outside the loop depends on it through the loop's node.
    pub fn node_dependencies<N: PartialEq>(
        &self,
        path: impl Fn(&str) -> Vec<N>,
        name: impl Fn(&N) -> String,
    ) -> BTreeMap<String, BTreeSet<String>> {
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (s, sp) in &self.steps {
            let to = path(s);
            for p in &sp.preds {
                let from = path(p);
                let c = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if c < from.len() && c < to.len() {
                    deps.entry(name(&to[c])).or_default().insert(name(&from[c]));
                }
            }
        }
        deps
    }
}

/// Static parents when every edge into `step` always fires: one predecessor, or a split
/// join with one predecessor per branch; otherwise the store says.
fn parents_of(flow: &Flow, step: &str, preds: &[String], closes: Option<&str>) -> Parents {
    if step == "start" {
        return Parents::None;
    }
    match closes.map(|c| &flow.steps[c].next) {
        Some(Transition::Foreach { .. }) => Parents::FromStore,
        Some(Transition::Split(branches)) if preds.len() == branches.len() => {
            Parents::Static(preds.to_vec())
        }
        Some(_) => Parents::FromStore,
        None if preds.len() == 1 => Parents::Static(preds.to_vec()),
        None => Parents::FromStore,
    }
}

/// The steps reachable from `start` in a topological order (Kahn's, ties by name), or None
/// on a cycle.
fn topological(flow: &Flow) -> Option<Vec<String>> {
    let mut indegree: BTreeMap<&str, usize> = flow.steps.keys().map(|k| (k.as_str(), 0)).collect();
    for step in flow.steps.values() {
        for t in step.next.targets() {
            if let Some(d) = indegree.get_mut(t) {
                *d += 1;
            }
        }
    }
    let mut ready: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut out = Vec::new();
    while let Some(s) = ready.pop_first() {
        out.push(s.to_string());
        for t in flow.steps[s].next.targets() {
            if let Some(d) = indegree.get_mut(t) {
                *d -= 1;
                if *d == 0 {
                    ready.insert(t);
                }
            }
        }
    }
    (out.len() == flow.steps.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(yaml: &str) -> Plan {
        let flow = Flow::parse(yaml, std::path::Path::new("flow.yaml")).expect("valid flow");
        Plan::of(&flow).expect("plans")
    }

    #[test]
    fn a_step_after_switch_cases_sits_outside_and_finds_its_parent_in_the_store() {
        let p = plan(
            "name: f\nsteps:\n  start: {run: 'true', next: sw}\n  sw: {run: 'true', switch: {on: v, cases: {a: x, b: y}}}\n  x: {run: 'true', next: m}\n  y: {run: 'true', next: m}\n  m: {run: 'true', next: end}\n  end: {run: 'true'}\n",
        );
        assert_eq!(p.step("m").frames, vec![]);
        assert_eq!(p.step("m").parents, Parents::FromStore);
        assert_eq!(
            p.step("y").frames,
            vec![Frame::Case {
                step: "sw".into(),
                target: 1
            }]
        );
        let tree = p.scope_tree();
        assert_eq!(tree.steps, ["start", "sw", "m", "end"]);
        assert_eq!(tree.children.len(), 2);
    }

    #[test]
    fn nested_foreach_joins_pop_one_loop_each() {
        let p = plan(
            "name: f\nsteps:\n  start: {run: 'true', foreach: xs, next: a}\n  a: {run: 'true', foreach: ys, next: b}\n  b: {run: 'true', next: j1}\n  j1: {run: 'true', join: true, next: j2}\n  j2: {run: 'true', join: true, next: end}\n  end: {run: 'true'}\n",
        );
        assert_eq!(p.step("b").depth(), 2);
        assert_eq!(p.step("j1").depth(), 1);
        assert_eq!(p.step("j1").closes.as_deref(), Some("a"));
        assert_eq!(p.step("j2").depth(), 0);
        assert_eq!(p.step("j2").parents, Parents::FromStore);
        assert_eq!(p.step("b").parents, Parents::Static(vec!["a".into()]));
    }
}
