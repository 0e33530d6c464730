//! Argo names: this module owns every name the emitter gives a template or a DAG task, and
//! the names of the documents themselves.
//!
//! Template and task names must match `^[a-zA-Z0-9][-a-zA-Z0-9]*$` within 128 characters
//! (`validate.go`, `isValidWorkflowFieldName`), and a task named in a `depends` expression
//! must not start with a digit (the expression parser reads it as a number). A step name
//! (1–100 of `A-Za-z0-9_-`) maps to `_` → `-` ([`flowpack_core::name::fit`]), with `s-` in
//! front when it starts with a digit. Steps claim their names first (in name order), then
//! the generated ones in the plan's order (`for-each-<step>`, `<step>-case-<i>`), then
//! the entry DAG `flow` and the exit handler `exit-hooks`; a name already taken gets `-2`,
//! `-3`, … One name serves a step's template and its task, so a task's template is always
//! the one of the same name. The step's own name stays in the pod's labels.

use std::collections::BTreeMap;

use flowpack_core::flow::{Flow, Transition};
use flowpack_core::name::{Claims, dns_name, fit, stable_hash};
use flowpack_core::plan::Plan;

/// Argo's limit on template and task names.
const MAX_NAME: usize = 128;
/// Kubernetes' limit on a WorkflowTemplate's name (a DNS-1123 label).
const MAX_TEMPLATE: usize = 63;
/// Argo's limit on a CronWorkflow's name: the controller adds 11 characters to it.
const MAX_CRON: usize = 52;
/// Kubernetes' limit on a label value.
pub const MAX_LABEL: usize = 63;

/// Template and task names for every step and generated DAG of one flow, valid and distinct.
pub(crate) struct Names {
    /// Step name → its template and task name.
    pub steps: BTreeMap<String, String>,
    /// Foreach step → the DAG template (and task) of its loop body.
    pub loops: BTreeMap<String, String>,
    /// (Switch step, target index) → the DAG template (and task) of that case.
    pub cases: BTreeMap<(String, usize), String>,
    /// The entry DAG.
    pub entry: String,
    /// The exit handler DAG, when the flow has exit hooks.
    pub exit: Option<String>,
}

impl Names {
    /// The names of `flow` planned as `plan`.
    pub(crate) fn of(flow: &Flow, plan: &Plan) -> Names {
        let mut claims = Claims::default();
        let steps: BTreeMap<String, String> = flow
            .steps
            .keys()
            .map(|s| {
                let base = if s.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("s-{s}")
                } else {
                    s.clone()
                };
                (s.clone(), claims.claim(&base, MAX_NAME))
            })
            .collect();
        let (mut loops, mut cases) = (BTreeMap::new(), BTreeMap::new());
        for s in &plan.order {
            let k = &steps[s];
            match &flow.steps[s].next {
                Transition::Foreach { .. } => {
                    loops.insert(s.clone(), claims.claim(&format!("for-each-{k}"), MAX_NAME));
                }
                Transition::Switch { .. } => {
                    for i in 0..flow.steps[s].next.targets().len() {
                        let case = claims.claim(&format!("{k}-case-{i}"), MAX_NAME);
                        cases.insert((s.clone(), i), case);
                    }
                }
                _ => {}
            }
        }
        let entry = claims.claim("flow", MAX_NAME);
        let exit = (!flow.hooks().is_empty()).then(|| claims.claim("exit-hooks", MAX_NAME));
        Names {
            steps,
            loops,
            cases,
            entry,
            exit,
        }
    }
}

/// The WorkflowTemplate's name: the flow's name as KFP's pipeline name
/// ([`flowpack_core::name::dns_name`]), at most 63 characters.
pub fn template_name(flow: &str) -> String {
    within(&dns_name(flow), MAX_TEMPLATE)
}

/// The CronWorkflow's name: the template's, at most 52 characters.
pub fn cron_name(flow: &str) -> String {
    within(&dns_name(flow), MAX_CRON)
}

/// A flow's or a step's name as a label value (`flowpack.dev/flow`, `flowpack.dev/step`):
/// the name itself when it is one (letters, digits, `.`, `_`, `-`, at most 63), else a
/// DNS-1123 form cut with a stable hash.
pub fn label_value(flow: &str) -> String {
    let ok = flow.len() <= MAX_LABEL
        && flow.ends_with(|c: char| c.is_ascii_alphanumeric())
        && flow
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        flow.to_string()
    } else {
        within(&dns_name(flow), MAX_LABEL)
    }
}

/// `name` (a DNS-1123 subdomain) if it fits `max`, else cut to a label with a stable hash.
fn within(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    dns_label(name, max)
}

/// `base` as a DNS-1123 label of at most `max`: `[a-z0-9-]`, starting and ending with a
/// letter or digit, a long name cut with a stable hash ([`fit`]).
fn dns_label(base: &str, max: usize) -> String {
    let lower = base.to_ascii_lowercase();
    let mut name = fit(&lower, max);
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        name = format!("h{:08x}", stable_hash(base) as u32);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_names_are_dns_labels_within_their_limits() {
        assert_eq!(template_name("TrainFlow"), "train-flow");
        assert_eq!(template_name("my_flow.v2"), "my-flow.v2");
        let long = "f".repeat(100);
        assert_eq!(template_name(&long).len(), 63);
        assert_eq!(cron_name(&long).len(), 52);
        assert_ne!(
            template_name(&format!("{long}a")),
            template_name(&format!("{long}b"))
        );
        assert_eq!(label_value("train-flow"), "train-flow");
        assert_eq!(label_value("Train_Flow.v2"), "Train_Flow.v2");
        assert!(label_value(&long).len() <= 63);
    }

    #[test]
    fn steps_starting_with_a_digit_get_a_prefix_and_generated_names_never_collide() {
        let flow = Flow::parse(
            "name: f\nsteps:\n  start: {run: 'true', foreach: xs, next: 1st}\n  1st: {run: 'true', next: for-each-start}\n  for-each-start: {run: 'true', join: true, next: flow}\n  flow: {run: 'true', next: end}\n  end: {run: 'true'}\n",
            std::path::Path::new("flow.yaml"),
        )
        .expect("valid flow");
        let plan = Plan::of(&flow).expect("plans");
        let n = Names::of(&flow, &plan);
        assert_eq!(n.steps["1st"], "s-1st");
        assert_eq!(n.steps["for-each-start"], "for-each-start");
        assert_eq!(n.loops["start"], "for-each-start-2");
        assert_eq!(n.entry, "flow-2");
    }
}
