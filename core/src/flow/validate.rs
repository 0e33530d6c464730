//! Graph checks on a parsed flow: every named step exists, `start` and `end` exist, every
//! step is reachable, there are no cycles, splits and foreaches close at exactly one join,
//! artifact names do not collide unresolved at a join, and step names map to distinct KFP
//! task names.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use super::locate::{Locations, Seg, path};
use super::parse::{ARTIFACT_NAME_RULE, is_artifact_name};
use super::*;

struct Checker<'a> {
    flow: &'a Flow,
    file: &'a Path,
    loc: Locations,
    errors: Vec<FlowError>,
}

impl Checker<'_> {
    fn err(&mut self, p: Vec<Seg>, key: bool, msg: impl Into<String>) {
        let pos = if key {
            self.loc.key(&p)
        } else {
            self.loc.value(&p)
        };
        self.errors.push(FlowError::new(self.file, pos, msg));
    }

    fn finish(mut self) -> Result<(), FlowErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors.sort_by_key(|e| e.pos);
        self.errors.dedup();
        Err(FlowErrors(self.errors))
    }
}

pub(super) fn validate(flow: &Flow, text: &str, file: &Path) -> Result<(), FlowErrors> {
    let mut c = Checker {
        flow,
        file,
        loc: Locations::index(text),
        errors: Vec::new(),
    };
    check_names_and_targets(&mut c);
    if !c.errors.is_empty() {
        return c.finish();
    }
    let reachable = check_reachable(&mut c);
    if !c.errors.is_empty() {
        return c.finish();
    }
    let Some(order) = check_acyclic(&mut c, &reachable) else {
        return c.finish();
    };
    check_splits_and_joins(&mut c, &order);
    c.finish()
}

/// Where a step's transition to `target` is written, for messages.
fn target_paths(name: &str, step: &Step) -> Vec<(String, Vec<Seg>)> {
    match &step.next {
        Transition::End => vec![],
        Transition::Linear(t) | Transition::Foreach { body: t, .. } => {
            vec![(t.clone(), path!["steps", name, "next"])]
        }
        Transition::Split(ts) => ts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), path!["steps", name, "next", i]))
            .collect(),
        Transition::Switch { cases, .. } => cases
            .iter()
            .map(|(case, t)| {
                (
                    t.clone(),
                    path!["steps", name, "switch", "cases", case.as_str()],
                )
            })
            .collect(),
    }
}

fn check_names_and_targets(c: &mut Checker) {
    let flow = c.flow;
    for required in ["start", "end"] {
        if !flow.steps.contains_key(required) {
            c.err(
                path!["steps"],
                true,
                format!(
                    "the flow has no '{required}' step: every flow starts at 'start' and finishes at 'end'"
                ),
            );
        }
    }
    let mut kfp: BTreeMap<String, &str> = BTreeMap::new();
    for (name, step) in &flow.steps {
        if let Some(other) = kfp.insert(kfp_name(name), name) {
            c.err(
                path!["steps", name],
                true,
                format!(
                    "steps '{other}' and '{name}' both become KFP task '{}' ('_' maps to '-'): rename one",
                    kfp_name(name)
                ),
            );
        }
        for (target, at) in target_paths(name, step) {
            if !flow.steps.contains_key(&target) {
                let hint = closest(&target, flow.steps.keys())
                    .map(|s| format!(": did you mean '{s}'?"))
                    .unwrap_or_else(|| ": add the step or fix the name".into());
                c.err(
                    at,
                    false,
                    format!("step '{name}' lists unknown next step '{target}'{hint}"),
                );
            } else if target == "start" {
                c.err(
                    at,
                    false,
                    format!("step '{name}' leads back to 'start': 'start' runs only first"),
                );
            }
        }
        match (name.as_str(), &step.next) {
            ("end", Transition::End) => {}
            ("end", _) => c.err(
                path!["steps", name, "next"],
                true,
                "'end' is the last step: it cannot have `next`, `foreach` or `switch`",
            ),
            (_, Transition::End) => c.err(
                path!["steps", name],
                true,
                format!(
                    "step '{name}' has no `next`: every step but 'end' says where the flow goes"
                ),
            ),
            _ => {}
        }
        if name == "start" && step.join {
            c.err(
                path!["steps", name, "join"],
                true,
                "'start' cannot be a join",
            );
        }
        for (i, a) in step.settings.inputs.iter().flatten().enumerate() {
            if !is_artifact_name(a) {
                c.err(
                    path!["steps", name, "inputs", i],
                    false,
                    format!("artifact name '{a}' is not valid: {ARTIFACT_NAME_RULE}"),
                );
            }
        }
    }
}

/// Edit distance <= 2 (or a prefix match) to one of `names`.
fn closest<'a>(target: &str, names: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push(
                    (prev[j] + usize::from(ca != *cb))
                        .min(prev[j + 1] + 1)
                        .min(cur[j] + 1),
                );
            }
            prev = cur;
        }
        prev[b.len()]
    }
    names
        .map(|n| (dist(target, n), n))
        .filter(|(d, n)| *d <= 2 || n.starts_with(target))
        .min()
        .map(|(_, n)| n.as_str())
}

fn check_reachable(c: &mut Checker) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([String::from("start")]);
    while let Some(s) = queue.pop_front() {
        if seen.insert(s.clone()) {
            queue.extend(
                c.flow.steps[&s]
                    .next
                    .targets()
                    .into_iter()
                    .map(String::from),
            );
        }
    }
    for name in c.flow.steps.keys() {
        if !seen.contains(name) {
            c.err(
                path!["steps", name],
                true,
                format!("step '{name}' is unreachable: no step leads to it from 'start'"),
            );
        }
    }
    seen
}

/// A topological order of the steps, or None after reporting a cycle.
fn check_acyclic(c: &mut Checker, steps: &BTreeSet<String>) -> Option<Vec<String>> {
    let flow = c.flow;
    let mut indegree: BTreeMap<&str, usize> = steps.iter().map(|s| (s.as_str(), 0)).collect();
    for s in steps {
        for t in flow.steps[s].next.targets() {
            *indegree.get_mut(t).expect("targets were checked") += 1;
        }
    }
    let mut ready: VecDeque<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(s, _)| *s)
        .collect();
    let mut order = Vec::new();
    while let Some(s) = ready.pop_front() {
        order.push(s.to_string());
        for t in flow.steps[s].next.targets() {
            let d = indegree.get_mut(t).expect("targets were checked");
            *d -= 1;
            if *d == 0 {
                ready.push_back(t);
            }
        }
    }
    if order.len() == steps.len() {
        return Some(order);
    }
    // Walk forward inside the leftover steps until one repeats: that is a cycle.
    let left: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(s, _)| *s)
        .collect();
    let mut walk: Vec<&str> = vec![left.iter().next().copied().expect("a step is left")];
    loop {
        let last = *walk.last().expect("walk is not empty");
        let next = flow.steps[last]
            .next
            .targets()
            .into_iter()
            .find(|t| left.contains(t))
            .expect("a step in a cycle leads on inside it");
        if let Some(i) = walk.iter().position(|s| *s == next) {
            let cycle = &walk[i..];
            let shown: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&next))
                .copied()
                .collect();
            let back = cycle.last().expect("cycle is not empty");
            let at = target_paths(back, &flow.steps[*back])
                .into_iter()
                .find(|(t, _)| t == next)
                .map(|(_, p)| p)
                .unwrap_or_else(|| path!["steps", *back]);
            c.err(
                at,
                false,
                format!(
                    "the steps form a cycle: {}; flows are acyclic (KFP runs a DAG): break the loop",
                    shown.join(" -> ")
                ),
            );
            return None;
        }
        walk.push(next);
    }
}

/// An open split: the step that split, and which branch we are on (`*` for a foreach).
type Frame = (String, String);

fn check_splits_and_joins(c: &mut Checker, order: &[String]) {
    let flow = c.flow;
    let mut ctx: HashMap<&str, (Vec<Frame>, String)> = HashMap::new();
    ctx.insert("start", (Vec::new(), String::new()));
    // split -> joins that close it; join -> (splits it closes, branches it receives)
    let mut closes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut received: BTreeMap<&str, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for s in order {
        let Some((here, _)) = ctx.get(s.as_str()).cloned() else {
            continue;
        };
        let step = &flow.steps[s];
        for t in step.next.targets() {
            let mut frames = here.clone();
            match &step.next {
                Transition::Split(_) => frames.push((s.clone(), t.to_string())),
                Transition::Foreach { .. } => frames.push((s.clone(), "*".to_string())),
                _ => {}
            }
            if flow.steps[t].join {
                match frames.pop() {
                    None => {
                        c.err(
                            path!["steps", t, "join"],
                            true,
                            format!(
                                "step '{t}' is a join but joins nothing: no split or foreach is open when '{s}' leads to it"
                            ),
                        );
                        continue;
                    }
                    Some((split, branch)) => {
                        closes
                            .entry(flow.steps.get_key_value(&split).unwrap().0)
                            .or_default()
                            .insert(t);
                        let r = received.entry(t).or_default();
                        r.0.insert(split);
                        r.1.insert(branch);
                    }
                }
            }
            match ctx.get(t) {
                None => {
                    ctx.insert(t, (frames, s.clone()));
                }
                Some((other, via)) if *other != frames && reported.insert(t) => {
                    let msg = if flow.steps[t].join {
                        format!(
                            "join '{t}' is reached from '{via}' and '{s}', which sit in different splits: each join closes one split or foreach"
                        )
                    } else {
                        format!(
                            "step '{t}' is reached from '{via}' and from '{s}', which run in parallel: mark '{t}' `join: true` to join them"
                        )
                    };
                    c.err(path!["steps", t], true, msg);
                }
                Some(_) => {}
            }
        }
    }
    if let Some((frames, _)) = ctx.get("end")
        && let Some((split, _)) = frames.last()
    {
        c.err(
                path!["steps", "end"],
                true,
                format!(
                    "the flow reaches 'end' while the branches of '{split}' are still open: add a step with `join: true` where they meet"
                ),
            );
    }
    for (join, (splits, _)) in &received {
        if splits.len() > 1 {
            let list: Vec<&str> = splits.iter().map(String::as_str).collect();
            c.err(
                path!["steps", *join],
                true,
                format!(
                    "join '{join}' closes more than one split ({}): give each its own join",
                    list.join(", ")
                ),
            );
        }
    }
    for (split, joins) in &closes {
        if joins.len() > 1 {
            let list: Vec<&str> = joins.iter().copied().collect();
            c.err(
                path!["steps", *split],
                true,
                format!(
                    "the branches of '{split}' end at different joins ({}): they must meet at one",
                    list.join(", ")
                ),
            );
            continue;
        }
        let join = *joins
            .iter()
            .next()
            .expect("a split with an entry has a join");
        if let Transition::Split(branches) = &flow.steps[*split].next {
            check_collisions(c, split, branches, join, &ctx);
        }
    }
}

/// Artifacts declared by more than one branch of a static split must be resolved by the
/// join declaring the name itself: after a join only one value of a name can go on.
fn check_collisions(
    c: &mut Checker,
    split: &str,
    branches: &[String],
    join: &str,
    ctx: &HashMap<&str, (Vec<Frame>, String)>,
) {
    let flow = c.flow;
    let depth = ctx[split].0.len();
    let mut writers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (step, (frames, _)) in ctx {
        let Some((s, branch)) = frames.get(depth) else {
            continue;
        };
        if s == split && branches.contains(branch) {
            for out in &flow.steps[*step].outputs {
                writers.entry(out).or_default().insert(branch);
            }
        }
    }
    for (artifact, by) in writers {
        if by.len() > 1 && !flow.steps[join].outputs.contains(artifact) {
            let list: Vec<&str> = by.into_iter().collect();
            c.err(
                path!["steps", join],
                true,
                format!(
                    "artifact '{artifact}' is written in branches {} of '{split}' and join '{join}' does not resolve it: list it in {join}'s `outputs` (the join writes the value to keep) or give the branches distinct names",
                    list.iter().map(|b| format!("'{b}'")).collect::<Vec<_>>().join(" and ")
                ),
            );
        }
    }
}
