//! Graph checks on a parsed flow: every named step exists, `start` and `end` exist, every
//! step is reachable, the only cycles are recursive switches (a switch case leading back to
//! a step on the way to it, within one branch), splits and foreaches close at exactly one
//! join, artifact names do not collide unresolved at a join, step names map to distinct KFP
//! task names, and the exit hooks are steps outside the graph.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;

use super::locate::{Locations, Seg, path};
use super::parse::{ARTIFACT_NAME_RULE, is_artifact_name};
use super::*;

struct Checker<'a> {
    flow: &'a Flow,
    file: &'a Path,
    loc: &'a Locations,
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

pub(super) fn validate(flow: &Flow, loc: &Locations, file: &Path) -> Result<(), FlowErrors> {
    let mut c = Checker {
        flow,
        file,
        loc,
        errors: Vec::new(),
    };
    check_names_and_targets(&mut c);
    check_hooks(&mut c);
    if !c.errors.is_empty() {
        return c.finish();
    }
    let reachable = check_reachable(&mut c);
    if !c.errors.is_empty() {
        return c.finish();
    }
    let loops: BTreeSet<(&str, &str)> = recursive_cases(flow)
        .into_iter()
        .map(|(s, _, t)| (s, t))
        .collect();
    let Some(order) = check_acyclic(&mut c, &reachable, &loops) else {
        return c.finish();
    };
    check_splits_and_joins(&mut c, &order, &loops);
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
    // "Did you mean" compares a name with every step: only for the first few unknown names.
    let mut hints = 0;
    for (name, step) in &flow.steps {
        for (target, at) in target_paths(name, step) {
            if !flow.steps.contains_key(&target) {
                hints += 1;
                let hint = (hints <= MAX_HINTS)
                    .then(|| closest(&target, flow.steps.keys()))
                    .flatten()
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
            (_, Transition::End) if flow.hook_kind(name).is_some() => {}
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

/// The exit hooks: steps of the flow, neither `start` nor `end`, one step per hook, outside
/// the graph (no step leads to them, they lead nowhere, they join nothing).
fn check_hooks(c: &mut Checker) {
    let flow = c.flow;
    let hooks = flow.hooks();
    for (i, (kind, hook)) in hooks.iter().enumerate() {
        let key = kind.key();
        let Some(step) = flow.steps.get(*hook) else {
            let hint = closest(hook, flow.steps.keys())
                .map(|s| format!(": did you mean '{s}'?"))
                .unwrap_or_else(|| ": add the step or fix the name".into());
            c.err(
                path![key],
                false,
                format!("`{key}` names unknown step '{hook}'{hint}"),
            );
            continue;
        };
        if matches!(*hook, "start" | "end") {
            c.err(
                path![key],
                false,
                format!("`{key}` names '{hook}', a step of the graph: name a step of its own that no step leads to"),
            );
            continue;
        }
        if let Some((other, _)) = hooks[..i].iter().find(|(_, h)| h == hook) {
            c.err(
                path![key],
                false,
                format!("`{key}` and `{}` both name '{hook}': a step is one hook (`on_exit` runs on failure too)", other.key()),
            );
            continue;
        }
        if step.next != Transition::End {
            c.err(
                path!["steps", *hook],
                true,
                format!("step '{hook}' is the `{key}` hook: it runs after the flow ended, so it has no `next`, `foreach` or `switch`"),
            );
        }
        if step.join {
            c.err(
                path!["steps", *hook, "join"],
                true,
                format!("step '{hook}' is the `{key}` hook: it joins nothing (it sees the run's status and failed tasks instead)"),
            );
        }
        for (from, s) in &flow.steps {
            for (target, at) in target_paths(from, s) {
                if target == *hook {
                    c.err(
                        at,
                        false,
                        format!("step '{from}' leads to '{hook}', the `{key}` hook: a hook runs after the flow, outside the graph; no step may lead to it"),
                    );
                }
            }
        }
    }
}

/// The switch cases that lead back to a step on the way to them from `start` (the back
/// edges of a depth-first walk in transition order, which are switch cases): the loops of
/// recursive switches, as (switch step, case, target). Targets must exist.
pub(super) fn recursive_cases(flow: &Flow) -> Vec<(&str, &str, &str)> {
    let mut out = Vec::new();
    // step -> true while on the walk's stack, false once done.
    let mut state: HashMap<&str, bool> = HashMap::from([("start", true)]);
    let targets = |s: &str| {
        flow.steps
            .get(s)
            .map(|s| s.next.targets())
            .unwrap_or_default()
    };
    let mut stack: Vec<(&str, Vec<&str>, usize)> = vec![("start", targets("start"), 0)];
    while let Some((from, next, i)) = stack.last_mut() {
        let Some(t) = next.get(*i).copied() else {
            state.insert(from, false);
            stack.pop();
            continue;
        };
        *i += 1;
        match state.get(t) {
            None => {
                state.insert(t, true);
                stack.push((t, targets(t), 0));
            }
            Some(true) => {
                if let Transition::Switch { cases, .. } = &flow.steps[*from].next {
                    out.extend(
                        cases
                            .iter()
                            .filter(|(_, to)| *to == t)
                            .map(|(case, _)| (*from, case.as_str(), t)),
                    );
                }
            }
            Some(false) => {}
        }
    }
    out
}

/// How many unknown step names get a "did you mean".
const MAX_HINTS: usize = 20;

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
    let len = target.chars().count();
    names
        .filter(|n| n.starts_with(target) || n.chars().count().abs_diff(len) <= 2)
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
        if !seen.contains(name) && c.flow.hook_kind(name).is_none() {
            c.err(
                path!["steps", name],
                true,
                format!("step '{name}' is unreachable: no step leads to it from 'start'"),
            );
        }
    }
    seen
}

/// The steps a step leads to, without the recursive switches' cases back (`loops`).
fn forward<'f>(flow: &'f Flow, s: &'f str, loops: &BTreeSet<(&str, &str)>) -> Vec<&'f str> {
    let mut ts = flow.steps[s].next.targets();
    ts.retain(|t| !loops.contains(&(s, *t)));
    ts
}

/// A topological order of the steps (without the recursive switches' cases back, `loops`),
/// or None after reporting a cycle.
fn check_acyclic(
    c: &mut Checker,
    steps: &BTreeSet<String>,
    loops: &BTreeSet<(&str, &str)>,
) -> Option<Vec<String>> {
    let flow = c.flow;
    let mut indegree: BTreeMap<&str, usize> = steps.iter().map(|s| (s.as_str(), 0)).collect();
    for s in steps {
        // Edges within `steps` (all of them: the steps are those reachable from 'start').
        for t in forward(flow, s, loops) {
            if let Some(d) = indegree.get_mut(t) {
                *d += 1;
            }
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
        for t in forward(flow, s, loops) {
            if let Some(d) = indegree.get_mut(t) {
                *d -= 1;
                if *d == 0 {
                    ready.push_back(t);
                }
            }
        }
    }
    if order.len() == steps.len() {
        return Some(order);
    }
    let left: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(s, _)| *s)
        .collect();
    match find_cycle(flow, &left, loops) {
        Some(cycle) => report_cycle(c, &cycle),
        // Not reached: a step left over always has a predecessor left over.
        None => c.err(
            path!["steps"],
            true,
            "the steps form a cycle: break the loop",
        ),
    }
    None
}

/// A cycle among `left`, the steps a topological sort could not order, as the steps in
/// the order they run, starting where the flow enters it.
///
/// Each of them still has a predecessor among them (that is why it was left), but not
/// necessarily a successor (a step after a cycle): so the walk goes backwards, from
/// predecessor to predecessor, until a step repeats.
fn find_cycle<'f>(
    flow: &'f Flow,
    left: &BTreeSet<&'f str>,
    loops: &BTreeSet<(&str, &str)>,
) -> Option<Vec<&'f str>> {
    let mut preds: HashMap<&str, &str> = HashMap::new();
    for s in left {
        for t in forward(flow, s, loops) {
            if left.contains(t) {
                preds.entry(t).or_insert(s);
            }
        }
    }
    let mut walk: Vec<&str> = vec![left.first()?];
    let mut at: HashMap<&str, usize> = HashMap::from([(walk[0], 0)]);
    loop {
        let pred = preds.get(walk.last()?)?;
        if let Some(i) = at.get(pred) {
            // walk[j + 1] leads to walk[j]: forward, the cycle is walk[i..] reversed.
            let mut cycle: Vec<&str> = walk[*i..].iter().rev().copied().collect();
            let rank: HashMap<&str, usize> = flow
                .order()
                .into_iter()
                .enumerate()
                .map(|(i, s)| (s, i))
                .collect();
            let first = (0..cycle.len()).min_by_key(|k| rank.get(cycle[*k]))?;
            cycle.rotate_left(first);
            return Some(cycle);
        }
        at.insert(pred, walk.len());
        walk.push(pred);
    }
}

/// Reports `cycle` at the edge that closes it. (A cycle closed by a switch case is a
/// recursive switch, which is no error: this one closes elsewhere.)
fn report_cycle(c: &mut Checker, cycle: &[&str]) {
    let flow = c.flow;
    let closed: Vec<&str> = cycle.iter().chain(cycle.first()).copied().collect();
    let mut edges = closed.windows(2).map(|w| (w[0], w[1]));
    let shown = if closed.len() > 12 {
        format!(
            "{} -> ({} more) -> {}",
            closed[..5].join(" -> "),
            closed.len() - 10,
            closed[closed.len() - 5..].join(" -> ")
        )
    } else {
        closed.join(" -> ")
    };
    let Some((back, next)) = edges.next_back() else {
        return;
    };
    let at = target_paths(back, &flow.steps[back])
        .into_iter()
        .find(|(t, _)| t == next)
        .map(|(_, p)| p)
        .unwrap_or_else(|| path!["steps", back]);
    c.err(
        at,
        false,
        format!(
            "the steps form a cycle: {shown}; only a switch case may lead back to an earlier step (a recursive switch, docs/flow.md): break the loop, or close it with a switch case",
        ),
    );
}

/// How deep splits and foreaches may nest: deeper nesting is no flow a person writes, and
/// the checks below walk the open splits around each step.
pub const MAX_NESTING: usize = 64;

/// An open split or foreach around a step, in an arena: the step that split, the branch
/// (`*` for a foreach), and the split open around it. One entry per (around, split,
/// branch), so that two steps are in the same splits exactly when their ids are equal.
struct Frame<'f> {
    split: &'f str,
    branch: &'f str,
    around: Option<usize>,
    depth: usize,
}

#[derive(Default)]
struct Frames<'f> {
    all: Vec<Frame<'f>>,
    ids: HashMap<(Option<usize>, &'f str, &'f str), usize>,
}

impl<'f> Frames<'f> {
    fn open(&mut self, around: Option<usize>, split: &'f str, branch: &'f str) -> usize {
        let depth = around.map_or(1, |a| self.all[a].depth + 1);
        *self.ids.entry((around, split, branch)).or_insert_with(|| {
            self.all.push(Frame {
                split,
                branch,
                around,
                depth,
            });
            self.all.len() - 1
        })
    }

    /// The frames from `id` outwards.
    fn chain(&self, mut id: Option<usize>) -> impl Iterator<Item = &Frame<'f>> {
        std::iter::from_fn(move || {
            let f = &self.all[id?];
            id = f.around;
            Some(f)
        })
    }
}

fn check_splits_and_joins(c: &mut Checker, order: &[String], loops: &BTreeSet<(&str, &str)>) {
    let flow = c.flow;
    let mut frames = Frames::default();
    // step -> (the innermost split open around it, the step it was first reached from)
    let mut ctx: HashMap<&str, (Option<usize>, &str)> = HashMap::new();
    ctx.insert("start", (None, ""));
    // split -> joins that close it; join -> splits it closes
    let mut closes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut received: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for s in order {
        let Some((s, (here, _))) = ctx.get_key_value(s.as_str()).map(|(k, v)| (*k, *v)) else {
            continue;
        };
        let step = &flow.steps[s];
        for t in forward(flow, s, loops) {
            // Every target exists (checked first); this borrows its name from the flow.
            let Some((t, _)) = flow.steps.get_key_value(t) else {
                continue;
            };
            let t = t.as_str();
            let mut inner = match &step.next {
                Transition::Split(_) => Some(frames.open(here, s, t)),
                Transition::Foreach { .. } => Some(frames.open(here, s, "*")),
                _ => here,
            };
            if let Some(f) = inner
                && frames.all[f].depth > MAX_NESTING
            {
                c.err(
                    path!["steps", s],
                    true,
                    format!("splits and foreaches nest more than {MAX_NESTING} deep at '{s}'"),
                );
                return;
            }
            if flow.steps[t].join {
                match inner {
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
                    Some(f) => {
                        let f = &frames.all[f];
                        closes.entry(f.split).or_default().insert(t);
                        received.entry(t).or_default().insert(f.split);
                        inner = f.around;
                    }
                }
            }
            match ctx.get(t) {
                None => {
                    ctx.insert(t, (inner, s));
                }
                Some((other, via)) if *other != inner && reported.insert(t) => {
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
    check_loops(c, loops, &ctx);
    if let Some((inner, _)) = ctx.get("end")
        && let Some(f) = frames.chain(*inner).next()
    {
        c.err(
            path!["steps", "end"],
            true,
            format!(
                "the flow reaches 'end' while the branches of '{}' are still open: add a step with `join: true` where they meet",
                f.split
            ),
        );
    }
    for (join, splits) in &received {
        if splits.len() > 1 {
            let list: Vec<&str> = splits.iter().copied().collect();
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
    // split -> artifact -> the branches that write it, from every step inside the split.
    let mut writers: HashMap<&str, BTreeMap<&str, BTreeSet<&str>>> = HashMap::new();
    for (step, (inner, _)) in &ctx {
        let outputs = &flow.steps[*step].outputs;
        if outputs.is_empty() {
            continue;
        }
        for f in frames.chain(*inner) {
            let by = writers.entry(f.split).or_default();
            for out in outputs {
                by.entry(out).or_default().insert(f.branch);
            }
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
        if let (Some(join), Transition::Split(_), Some(by)) =
            (joins.first(), &flow.steps[*split].next, writers.get(split))
        {
            check_collisions(c, split, join, by);
        }
    }
}

/// A recursive switch loops within one branch: the case back leads to a step inside the
/// same splits and foreaches as the switch, and not to a join (whose parents are a split's).
fn check_loops(
    c: &mut Checker,
    loops: &BTreeSet<(&str, &str)>,
    ctx: &HashMap<&str, (Option<usize>, &str)>,
) {
    let flow = c.flow;
    for (from, to) in loops {
        let Transition::Switch { cases, .. } = &flow.steps[*from].next else {
            continue;
        };
        let Some(case) = cases.iter().find(|(_, t)| t == to).map(|(k, _)| k.as_str()) else {
            continue;
        };
        let at = path!["steps", *from, "switch", "cases", case];
        if flow.steps[*to].join {
            c.err(
                at,
                false,
                format!("case '{case}' of the switch of '{from}' leads back to join '{to}': a recursive switch cannot lead back to a join; lead back to a step after it"),
            );
        } else if ctx.get(from).map(|x| x.0) != ctx.get(to).map(|x| x.0) {
            c.err(
                at,
                false,
                format!("case '{case}' of the switch of '{from}' leads back to '{to}', outside the split or foreach '{from}' is in: a recursive switch loops within one branch"),
            );
        }
    }
}

/// Artifacts declared by more than one branch of a static split must be resolved by the
/// join declaring the name itself: after a join only one value of a name can go on.
fn check_collisions(
    c: &mut Checker,
    split: &str,
    join: &str,
    writers: &BTreeMap<&str, BTreeSet<&str>>,
) {
    let flow = c.flow;
    for (artifact, by) in writers {
        if by.len() > 1 && !flow.steps[join].outputs.contains(*artifact) {
            let list: Vec<String> = by.iter().map(|b| format!("'{b}'")).collect();
            c.err(
                path!["steps", join],
                true,
                format!(
                    "artifact '{artifact}' is written in branches {} of '{split}' and join '{join}' does not resolve it: list it in {join}'s `outputs` (the join writes the value to keep) or give the branches distinct names",
                    list.join(" and ")
                ),
            );
        }
    }
}
