//! KFP names: this module owns every name the emitter gives a component, a task, an
//! executor or a generated group, and the check that the written pipeline keeps KFP's rules.
//!
//! KFP's backend turns them into Argo template and task names, which must match
//! `^[a-zA-Z0-9][-a-zA-Z0-9]*$` and stay within 128 characters *including* what the backend
//! derives from them (KFP 2.17, `backend/src/v2/compiler/argocompiler` in KFP's repository;
//! the tests' IR validator, a development resource outside this repository, encodes it too):
//! - a task key `T` gets a `T-driver` task: `T` ≤ 121;
//! - a component `C` gets `C-driver` plus a 40-character hash in its templates: `C` ≤ 81,
//!   so a name `K` with component `comp-K` has `K` ≤ [`MAX_KEY`] (76);
//! - a loop task `L` (component `comp-L`) gets the iterator template
//!   `comp-L-L-iterator`: `L` ≤ [`MAX_LOOP`] (56).
//!
//! A step name (1–100 of `A-Za-z0-9_-`) maps to `_` → `-`; a name longer than its limit
//! keeps a readable prefix and ends in `-` plus 8 hex digits of a stable hash of the whole
//! name ([`flowpack_core::name::fit`]). Steps claim their names first (in name order), then the generated ones in
//! the plan's order (`for-each-<step>`, `<step>-switch`, `<step>-case-<i>`,
//! `exit-handler-1`); a name already taken gets `-2`, `-3`, … So no two names collide, the
//! same flow always compiles to the same names, and the user's step name stays the task's
//! display name (`taskInfo.name`).

use std::collections::BTreeMap;

use flowpack_core::flow::{Flow, Transition};
use flowpack_core::name::Claims;
use flowpack_core::plan::Plan;

use crate::ir::{Dag, PipelineSpec};

/// Argo's limit on template and task names.
const ARGO_MAX: usize = 128;
/// The longest component name: `-driver` and a 40-character hash are added to it.
const MAX_COMPONENT: usize = ARGO_MAX - "-driver".len() - 40;
/// The longest step, switch group or case name: its component is `comp-<name>`.
pub const MAX_KEY: usize = MAX_COMPONENT - "comp-".len();
/// The longest loop task name `L`: its iterator template is `comp-L-L-iterator`.
pub const MAX_LOOP: usize = (ARGO_MAX - "comp-".len() - "-".len() - "-iterator".len()) / 2;
/// The longest task key: the backend adds `-driver`.
const MAX_TASK: usize = ARGO_MAX - "-driver".len();
/// The name of the exit handler group (KFP's SDK names its first one so).
const EXIT_HANDLER: &str = "exit-handler-1";

/// KFP names for every step and generated task of one flow, valid and distinct.
pub(crate) struct Names {
    /// Step name → task key; `comp-<key>` and `exec-<key>` are its component and executor.
    pub steps: BTreeMap<String, String>,
    /// Foreach step → its `for-each-…` loop task.
    pub loops: BTreeMap<String, String>,
    /// Switch step → its `…-switch` group task.
    pub groups: BTreeMap<String, String>,
    /// (Switch step, target index) → its `…-case-<i>` task.
    pub cases: BTreeMap<(String, usize), String>,
    /// Foreach step nested directly in a loop body → the group task around its loop.
    pub loop_groups: BTreeMap<String, String>,
    /// The exit handler group, when the flow has exit hooks.
    pub exit_handler: Option<String>,
}

impl Names {
    /// The names of `flow` planned as `plan`.
    pub(crate) fn of(flow: &Flow, plan: &Plan) -> Names {
        let mut claims = Claims::default();
        let steps: BTreeMap<String, String> = flow
            .steps
            .keys()
            .map(|s| (s.clone(), claims.claim(s, MAX_KEY)))
            .collect();
        let (mut loops, mut groups, mut cases) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut loop_groups = BTreeMap::new();
        for s in &plan.order {
            let k = &steps[s];
            match &flow.steps[s].next {
                Transition::Foreach { .. } => {
                    loops.insert(s.clone(), claims.claim(&format!("for-each-{k}"), MAX_LOOP));
                    if crate::emit::in_loop_body(plan, s) {
                        let group = claims.claim(&format!("for-each-{k}-group"), MAX_KEY);
                        loop_groups.insert(s.clone(), group);
                    }
                }
                Transition::Switch { .. } => {
                    groups.insert(s.clone(), claims.claim(&format!("{k}-switch"), MAX_KEY));
                    for i in 0..flow.steps[s].next.targets().len() {
                        let case = claims.claim(&format!("{k}-case-{i}"), MAX_KEY);
                        cases.insert((s.clone(), i), case);
                    }
                }
                _ => {}
            }
        }
        let exit_handler = (!flow.hooks().is_empty()).then(|| claims.claim(EXIT_HANDLER, MAX_KEY));
        Names {
            steps,
            loops,
            groups,
            cases,
            loop_groups,
            exit_handler,
        }
    }

    /// The task key of step `s`.
    pub(crate) fn step(&self, s: &str) -> &str {
        &self.steps[s]
    }
}

/// Checks the names of a written pipeline against KFP's rules (module doc): every component
/// and task name valid and within its limit, loops within the iterator limit, every
/// `dependentTasks` entry a task of the same DAG. A failure is a bug in the emitter; the
/// compiler refuses to write the pipeline rather than hand KFP one it rejects.
pub(crate) fn verify(spec: &PipelineSpec) -> Result<(), String> {
    for (c, comp) in &spec.components {
        valid(c, MAX_COMPONENT, "component")?;
        if let Some(dag) = &comp.dag {
            verify_dag(c, dag)?;
        }
    }
    if let Some(dag) = &spec.root.dag {
        verify_dag("root", dag)?;
    }
    Ok(())
}

fn verify_dag(component: &str, dag: &Dag) -> Result<(), String> {
    for (t, task) in &dag.tasks {
        valid(t, MAX_TASK, "task")?;
        if task.parameter_iterator.is_some() {
            let template = format!("{}-{t}-iterator", task.component_ref.name);
            if template.len() > ARGO_MAX {
                return Err(format!(
                    "loop task '{t}' gives the iterator template '{template}', over {ARGO_MAX} characters"
                ));
            }
        }
        if let Some(d) = task
            .dependent_tasks
            .iter()
            .find(|d| !dag.tasks.contains_key(*d))
        {
            return Err(format!(
                "task '{t}' of '{component}' depends on '{d}', no task of the same DAG"
            ));
        }
    }
    Ok(())
}

fn valid(name: &str, max: usize, what: &str) -> Result<(), String> {
    let ok_chars = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok_chars {
        return Err(format!(
            "{what} name '{name}' is not a KFP name (letters, digits and '-', starting with a letter or digit)"
        ));
    }
    if name.len() > max {
        return Err(format!(
            "{what} name '{name}' has {} characters, over KFP's {max}",
            name.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowpack_core::name::{fit, stable_hash};
    use std::collections::BTreeSet;

    #[test]
    fn limits_follow_from_argos_128() {
        assert_eq!(MAX_COMPONENT, 81);
        assert_eq!(MAX_KEY, 76);
        assert_eq!(MAX_LOOP, 56);
        assert_eq!(MAX_TASK, 121);
        // The longest loop name's iterator template is exactly at the limit or under.
        let l = "l".repeat(MAX_LOOP);
        assert!(format!("comp-{l}-{l}-iterator").len() <= ARGO_MAX);
    }

    #[test]
    fn short_names_only_swap_underscores() {
        assert_eq!(fit("train_model", MAX_KEY), "train-model");
        assert_eq!(fit("Train2", MAX_KEY), "Train2");
        assert_eq!(fit(&"s".repeat(MAX_KEY), MAX_KEY), "s".repeat(MAX_KEY));
    }

    #[test]
    fn long_names_keep_a_prefix_and_a_stable_hash() {
        let long = "s".repeat(100);
        let a = fit(&long, MAX_KEY);
        assert_eq!(a.len(), MAX_KEY);
        assert!(a.starts_with("sssss"), "{a}");
        assert_eq!(a, fit(&long, MAX_KEY), "the same name maps the same way");
        // Known value: the hash must not change between builds or machines.
        assert_eq!(
            &a[a.len() - 9..],
            &format!("-{:08x}", stable_hash(&long) as u32)
        );
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        let b = fit(&format!("{}t", "s".repeat(99)), MAX_KEY);
        assert_ne!(a, b, "names that share the prefix differ by hash");
        // A prefix ending in `-` loses the dash (no `--` before the hash, no trailing `-`).
        let dashed = fit(&format!("{}_{}", "a".repeat(66), "b".repeat(40)), MAX_KEY);
        assert!(!dashed.contains("--"), "{dashed}");
        assert!(dashed.len() <= MAX_KEY);
    }

    #[test]
    fn claims_never_collide() {
        let mut c = Claims::default();
        let mut seen = BTreeSet::new();
        for base in ["for-each-x", "for-each-x", "for-each-x", "a_b", "a-b"] {
            assert!(seen.insert(c.claim(base, MAX_LOOP)), "{base}");
        }
        assert!(seen.contains("for-each-x-2") && seen.contains("for-each-x-3"));
        let long = "s".repeat(100);
        let (x, y) = (c.claim(&long, MAX_LOOP), c.claim(&long, MAX_LOOP));
        assert_ne!(x, y);
        assert!(x.len() <= MAX_LOOP && y.len() <= MAX_LOOP);
    }

    fn flow(yaml: &str) -> Flow {
        Flow::parse(yaml, std::path::Path::new("flow.yaml")).expect("a valid flow")
    }

    fn names_of(f: &Flow) -> Names {
        Names::of(f, &Plan::of(f).expect("plans"))
    }

    fn all(n: &Names) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = Vec::new();
        v.extend(n.steps.values().map(|s| (s.clone(), MAX_KEY)));
        v.extend(n.loops.values().map(|s| (s.clone(), MAX_LOOP)));
        v.extend(n.groups.values().map(|s| (s.clone(), MAX_KEY)));
        v.extend(n.cases.values().map(|s| (s.clone(), MAX_KEY)));
        v.extend(n.exit_handler.iter().map(|s| (s.clone(), MAX_KEY)));
        v
    }

    /// Steps named like generated names, long names, a foreach and a switch over them.
    fn colliding() -> String {
        let (s, t) = ("S".repeat(100), format!("{}T", "S".repeat(99)));
        COLLIDING.replace("LONG_S", &s).replace("LONG_T", &t)
    }

    const COLLIDING: &str = r#"
name: names
on_exit: exit-handler-1
steps:
  start: {run: "true", next: for-each-x}
  for-each-x: {run: "true", next: x}
  x: {run: "true", foreach: list.x, next: x-switch}
  x-switch: {run: "true", next: j}
  j: {run: "true", join: true, next: x-case-0}
  x-case-0: {run: "true", next: LONG_S}
  LONG_S: {run: "true", foreach: list.l, next: LONG_T}
  LONG_T: {run: "true", next: k}
  k: {run: "true", join: true, next: x_case_0_}
  x_case_0_: {run: "true", switch: {on: c, cases: {a: end, b: x-case-0-2}}}
  x-case-0-2: {run: "true", next: end}
  exit-handler-1: {run: "true"}
  end: {run: "true"}
"#;

    #[test]
    fn every_name_is_valid_distinct_and_stable() {
        let f = flow(&colliding());
        let n = names_of(&f);
        let names = all(&n);
        let distinct: BTreeSet<&String> = names.iter().map(|(s, _)| s).collect();
        assert_eq!(distinct.len(), names.len(), "collision in {names:?}");
        for (name, max) in &names {
            valid(name, *max, "generated").unwrap();
        }
        // Steps keep their names; the generated ones step aside.
        assert_eq!(n.step("for-each-x"), "for-each-x");
        assert_eq!(n.loops["x"], "for-each-x-2");
        assert_eq!(n.step("exit-handler-1"), "exit-handler-1");
        assert_eq!(n.exit_handler.as_deref(), Some("exit-handler-1-2"));
        // The same flow, parsed again, gets the same names.
        assert_eq!(all(&names_of(&flow(&colliding()))), names);
    }
}
