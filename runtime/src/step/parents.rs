//! Parents found in the store (`flowpack step --parents-from-store`): how a task whose
//! parents are not known when compiling finds them at run time, from the flow's plan
//! ([`flowpack_core::plan`]) and the committed tasks of its run.
//!
//! - The join of a foreach: for each item `k` of the foreach step's list (task `T`), the
//!   one predecessor whose task `T.k` committed and whose edge here fired. Exactly as many
//!   as the list has items, or an error: no task-id list ever passes through KFP, so the
//!   compiled pipeline does not grow with the width.
//! - The join of a split whose branches hold switches: the fired predecessors at `T`, one
//!   per branch.
//! - A step after the merge of switch cases (or reached from a case and another way): the
//!   one predecessor whose edge fired.
//!
//! An edge from `P` fires when `P`'s task committed and, if `P` is a switch, its chosen
//! value (its `on` artifact) leads here.

use flowpack_core::flow::{Flow, Transition};
use flowpack_core::plan::{Frame, Plan};
use flowpack_core::run::{ArtifactKind, TaskRef};
use flowpack_core::store::Store;

use crate::RuntimeError;
use crate::cache::Cache;
use crate::step::artifacts;

/// Where to look.
pub struct Lookup<'a> {
    /// The store.
    pub store: &'a Store,
    /// The node cache (for switch values and foreach lists).
    pub cache: &'a Cache,
    /// The flow of the package.
    pub flow: &'a Flow,
    /// The run.
    pub run: &'a str,
}

/// The parents of task `task` of `step`, found in the store.
pub async fn find(
    lookup: &Lookup<'_>,
    step: &str,
    task: &str,
) -> Result<Vec<TaskRef>, RuntimeError> {
    let flow = lookup.flow;
    let plan = Plan::of(flow).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
    let here = plan.steps.get(step).ok_or_else(|| {
        RuntimeError::Invalid(format!("flow '{}' has no step '{step}'", flow.name))
    })?;
    let preds = &here.preds;
    match here.closes.as_deref().map(|c| (c, &flow.steps[c].next)) {
        Some((opener, Transition::Foreach { over, .. })) => {
            let n = foreach_len(lookup, opener, task, over).await?;
            let mut found = Vec::with_capacity(n);
            // A join outside every loop is task `0` and its body tasks are `k`; inside a
            // loop, task `0` is item 0 of the enclosing loop and its body tasks are `0.k`.
            let top = here.depth() == 0;
            for k in 0..n {
                let child = if top {
                    k.to_string()
                } else {
                    format!("{task}.{k}")
                };
                let fired = fired_among(lookup, preds, step, &child).await?;
                match fired.as_slice() {
                    [one] => found.push(one.clone()),
                    [] => {
                        return Err(RuntimeError::Invalid(format!(
                            "join '{step}' (task {task}) found no committed task {child} of {} in run {}: the foreach '{opener}' has {n} items and every body task must commit before its join",
                            preds.join(" or "),
                            lookup.run
                        )));
                    }
                    many => return Err(ambiguous(step, many)),
                }
            }
            Ok(found)
        }
        Some((opener, Transition::Split(branches))) => {
            let mut fired = fired_among(lookup, preds, step, task).await?;
            // In branch order, as a static join lists them.
            fired.sort_by_key(|p| branch_of(&plan, opener, &p.step, step, branches));
            if fired.len() != branches.len() {
                return Err(RuntimeError::Invalid(format!(
                    "join '{step}' (task {task}) found {} of the {} branches of '{opener}' committed in run {}: {}",
                    fired.len(),
                    branches.len(),
                    lookup.run,
                    fired
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Ok(fired)
        }
        _ => {
            let fired = fired_among(lookup, preds, step, task).await?;
            match fired.as_slice() {
                [_] => Ok(fired),
                [] => Err(RuntimeError::Invalid(format!(
                    "step '{step}' (task {task}) found no committed parent among {} in run {}",
                    preds.join(", "),
                    lookup.run
                ))),
                many => Err(ambiguous(step, many)),
            }
        }
    }
}

fn ambiguous(step: &str, many: &[TaskRef]) -> RuntimeError {
    RuntimeError::Invalid(format!(
        "step '{step}' has more than one parent whose edge fired ({}): the flow's switches are inconsistent",
        many.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The position of the branch of `opener` that `pred` sits in.
fn branch_of(plan: &Plan, opener: &str, pred: &str, join: &str, branches: &[String]) -> usize {
    if pred == opener {
        return branches
            .iter()
            .position(|b| b == join)
            .unwrap_or(usize::MAX);
    }
    plan.steps[pred]
        .frames
        .iter()
        .find_map(|f| match f {
            Frame::Split { step, branch } if step == opener => Some(*branch),
            _ => None,
        })
        .unwrap_or(usize::MAX)
}

/// The tasks among `preds` whose edge to `step` fired, for the child task `task`.
async fn fired_among(
    lookup: &Lookup<'_>,
    preds: &[String],
    step: &str,
    task: &str,
) -> Result<Vec<TaskRef>, RuntimeError> {
    let mut out = Vec::new();
    for p in preds {
        let next = &lookup.flow.steps[p].next;
        let parent_task = match next {
            Transition::Foreach { .. } => match task.rsplit_once('.') {
                Some((outer, _)) => outer.to_string(),
                None => "0".into(),
            },
            _ => task.to_string(),
        };
        let parent = TaskRef {
            step: p.clone(),
            task: parent_task,
        };
        let Some((_, arts)) =
            artifacts::committed(lookup.store, &lookup.flow.name, lookup.run, &parent).await?
        else {
            continue;
        };
        if let Transition::Switch { on, cases } = next {
            let Some(a) = arts
                .artifacts
                .get(on)
                .filter(|a| a.kind == ArtifactKind::File)
            else {
                continue;
            };
            let (path, _) = lookup
                .cache
                .artifact(lookup.store, &a.digest, a.size, a.kind)
                .await?;
            let text = std::fs::read_to_string(&path).map_err(|e| RuntimeError::io(&path, e))?;
            let value = text.trim().trim_matches('"');
            if cases.get(value).map(String::as_str) != Some(step) {
                continue;
            }
        }
        out.push(parent);
    }
    Ok(out)
}

/// The number of items of the foreach list of task `task` of `opener`.
async fn foreach_len(
    lookup: &Lookup<'_>,
    opener: &str,
    task: &str,
    over: &str,
) -> Result<usize, RuntimeError> {
    let t = TaskRef {
        step: opener.into(),
        task: task.into(),
    };
    let (_, arts) = artifacts::committed(lookup.store, &lookup.flow.name, lookup.run, &t)
        .await?
        .ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "the foreach step {t} has not committed in run {}",
                lookup.run
            ))
        })?;
    let a = arts
        .artifacts
        .get(over)
        .ok_or_else(|| RuntimeError::MissingInput {
            artifact: over.into(),
            parents: t.to_string(),
            hint: "the foreach step must write it".into(),
        })?;
    let list = artifacts::read_json(lookup.store, lookup.cache, a).await?;
    list.as_array().map(Vec::len).ok_or_else(|| {
        RuntimeError::Invalid(format!(
            "foreach artifact '{over}' of {t} is not a JSON list"
        ))
    })
}
