//! The Argo Workflows compiler: a normalized [`Flow`] and its package become a
//! `WorkflowTemplate` (the flow) and, for a scheduled flow, a `CronWorkflow` that runs it.
//!
//! It is the second emitter of the one [`Plan`] (the KFP compiler is the first): every
//! task runs `flowpack step` with the arguments a KFP pod gets, except that the run id is
//! `argo-{{workflow.uid}}` (Argo substitutes variables anywhere in an argument, so no
//! extra input carries it), parameters arrive as `--param NAME={{workflow.parameters.NAME}}`
//! (Argo's parameters are text; the step types them as the flow says) and output
//! parameters are files Argo reads after the container ends. [`compile`] plans the flow
//! and walks the plan with the emitter (`emit.rs`); settings Argo cannot carry are refused
//! with an error, never dropped; [`check`] runs the same compile dry. The REST client of
//! the Argo Server is [`client`]. `docs/argo.md` says what maps to what.
#![deny(missing_docs)]

pub mod client;
mod emit;
mod names;
mod pod;

pub use names::{cron_name, label_value, template_name};
pub use pod::DEFAULT_GPU;

use flowpack_core::flow::{Flow, ParamType};
use flowpack_core::invocation::CompileOptions;
use flowpack_core::plan::Plan;
use serde_json::{Map, Value, json};

/// The label on the WorkflowTemplate, CronWorkflow, every Workflow and pod of a flow: the
/// flow's name ([`label_value`]).
pub const FLOW_LABEL: &str = "flowpack.dev/flow";
/// The label on every pod: the step's name ([`label_value`]: a name over 63 characters is
/// cut with a stable hash).
pub const STEP_LABEL: &str = "flowpack.dev/step";
/// The label on every pod: the flowpack run id.
pub const RUN_LABEL: &str = "flowpack.dev/run";
/// The annotation on the WorkflowTemplate: the package its tasks run.
pub const PACKAGE_ANNOTATION: &str = "flowpack.dev/package";
/// The run id every task of a Workflow gets: `argo-` and the Workflow's uid.
pub const RUN_ID: &str = "argo-{{workflow.uid}}";
/// The workflow parameter holding the resume spec (contract C1): empty for none. A flow
/// parameter is an identifier, so it can never be named with a `-`.
pub const RESUME: &str = "flowpack-resume";

/// A flow Argo cannot carry as written.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile flow '{flow}' for Argo Workflows: {reason}")]
pub struct CompileError {
    /// The flow.
    pub flow: String,
    /// What cannot be expressed, and what to do.
    pub reason: String,
}

/// The compiled flow: the WorkflowTemplate and, for a scheduled flow, its CronWorkflow.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The WorkflowTemplate.
    pub template: Value,
    /// The CronWorkflow, when the flow has a `schedule`.
    pub cron: Option<Value>,
}

impl Compiled {
    /// The documents as one YAML stream (`kubectl apply -f` and `argo lint` take it).
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("# Argo Workflows manifests (compiled by flowpack)\n");
        out.push_str(&serde_norway::to_string(&self.template).expect("JSON values serialize"));
        if let Some(c) = &self.cron {
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(c).expect("JSON values serialize"));
        }
        out
    }

    /// The WorkflowTemplate's name.
    pub fn name(&self) -> &str {
        self.template["metadata"]["name"]
            .as_str()
            .expect("compile names the template")
    }
}

/// Compiles `flow` (already validated) for Argo Workflows: the plan, then the emitter's
/// walk of it.
pub fn compile(flow: &Flow, opts: &CompileOptions) -> Result<Compiled, CompileError> {
    let plan = plan(flow)?;
    let mut em = emit::Emitter::new(flow, &plan, opts);
    em.emit(&plan.scope_tree());
    let name = template_name(&flow.name);
    let flow_label = json!({FLOW_LABEL: label_value(&flow.name)});
    let mut spec = json!({
        "entrypoint": em.names.entry,
        "arguments": {"parameters": arguments(flow)},
        "parallelism": flow.max_workers,
        "workflowMetadata": {"labels": flow_label},
        "templates": std::mem::take(&mut em.templates),
    });
    if let Some(exit) = &em.names.exit {
        spec["onExit"] = json!(exit);
    }
    let mut annotations = Map::new();
    annotations.insert(PACKAGE_ANNOTATION.into(), json!(opts.package.to_string()));
    if let Some(d) = &flow.description {
        annotations.insert("workflows.argoproj.io/description".into(), json!(d));
    }
    let template = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {
            "name": name,
            "labels": flow_label,
            "annotations": annotations,
        },
        "spec": spec,
    });
    let cron = CronSpec::of_flow(flow).map(|c| cron_workflow(flow, &c));
    Ok(Compiled { template, cron })
}

/// A schedule of a flow on Argo: one CronWorkflow running the flow's WorkflowTemplate.
#[derive(Clone, Debug)]
pub struct CronSpec {
    /// The schedule's name (the CronWorkflow's, fitted by [`cron_name`]).
    pub name: String,
    /// A 5-field cron or a macro (`@daily`).
    pub cron: String,
    /// The IANA time zone the cron is meant in (Argo reads each CronWorkflow's own).
    pub timezone: String,
    /// Parameter values as text, over the template's defaults.
    pub parameters: Vec<(String, String)>,
    /// Start no run while the last one still runs (`concurrencyPolicy: Forbid`).
    pub forbid_overlap: bool,
}

impl CronSpec {
    /// The flow's own `schedule`, with the template's defaults, one run at a time.
    pub fn of_flow(flow: &Flow) -> Option<CronSpec> {
        let s = flow.schedule.as_ref()?;
        Some(CronSpec {
            name: flow.name.clone(),
            cron: s.cron.clone(),
            timezone: s.timezone.clone(),
            parameters: vec![],
            forbid_overlap: true,
        })
    }
}

/// The CronWorkflow of `spec` for `flow`, labelled with the flow.
pub fn cron_workflow(flow: &Flow, spec: &CronSpec) -> Value {
    let labels = json!({FLOW_LABEL: label_value(&flow.name)});
    let mut workflow = json!({"workflowTemplateRef": {"name": template_name(&flow.name)}});
    if !spec.parameters.is_empty() {
        let params: Vec<Value> = spec
            .parameters
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        workflow["arguments"] = json!({"parameters": params});
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": cron_name(&spec.name), "labels": labels},
        "spec": {
            "schedules": [spec.cron],
            "timezone": spec.timezone,
            "concurrencyPolicy": if spec.forbid_overlap { "Forbid" } else { "Allow" },
            "workflowMetadata": {"labels": labels},
            "workflowSpec": workflow,
        },
    })
}

/// Checks that `flow` (already validated) compiles for Argo, without a store or a package:
/// everything [`compile`] can refuse (the settings, the plan), without writing the
/// templates — the emitter itself refuses nothing, and writing 8,000 steps' templates as
/// JSON would double what `check` holds (docs/reliability.md: its memory bound).
pub fn check(flow: &Flow) -> Result<(), CompileError> {
    plan(flow).map(|_| ())
}

/// The plan of `flow`, or what Argo cannot carry in it: all [`compile`] can refuse.
fn plan(flow: &Flow) -> Result<Plan, CompileError> {
    let refuse = |reason: String| CompileError {
        flow: flow.name.clone(),
        reason,
    };
    check_settings(flow).map_err(refuse)?;
    Plan::of(flow).map_err(|e| refuse(e.reason))
}

/// The pod labels of a step (`step`) or of the Workflow (`None`).
pub(crate) fn labels(flow: &str, step: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert(FLOW_LABEL.into(), json!(label_value(flow)));
    if let Some(s) = step {
        m.insert(STEP_LABEL.into(), json!(label_value(s)));
    }
    m.insert(RUN_LABEL.into(), json!(RUN_ID));
    Value::Object(m)
}

/// The Workflow's parameters: the flow's, each with its default as the text the step reads
/// back (`ParamType::to_text`), or `supplied` (given at each submission) without one; a
/// bool as an enum of `true`/`false`; the resume spec, empty by default.
fn arguments(flow: &Flow) -> Vec<Value> {
    let mut out: Vec<Value> = flow
        .parameters
        .iter()
        .map(|(name, p)| {
            let mut v = json!({"name": name});
            match &p.default {
                Some(d) => v["value"] = json!(p.ty.to_text(d)),
                None => v["valueFrom"] = json!({"supplied": {}}),
            }
            if p.ty == ParamType::Bool {
                v["enum"] = json!(["true", "false"]);
            }
            if let Some(h) = &p.help {
                v["description"] = json!(h);
            }
            v
        })
        .collect();
    out.push(json!({
        "name": RESUME,
        "value": "",
        "description": "set by flowpack trigger --resume",
    }));
    out
}

/// What Argo cannot carry: a GPU type that is no resource name, a recursive switch, a
/// schedule for a flow whose parameters have no default.
fn check_settings(flow: &Flow) -> Result<(), String> {
    for (name, step) in &flow.steps {
        if let Some(t) = &step.settings.resources.gpu_type
            && !t.contains('/')
        {
            return Err(format!(
                "step '{name}' names gpu_type '{t}': on Argo it is the GPU's Kubernetes resource \
                 name, e.g. nvidia.com/gpu or amd.com/gpu (the default is {DEFAULT_GPU})"
            ));
        }
    }
    if let Some((switch, case, back)) = flow.recursive_cases().into_iter().next() {
        return Err(format!(
            "switch '{switch}' is recursive: its case '{case}' leads back to '{back}'. flowpack \
             compiles a flow into one DAG per scope, with no template that calls itself, so \
             recursion is not emitted for Argo yet (docs/argo.md). Run this flow with \
             `flowpack run`, or loop inside one step, or make the rounds a foreach over a fixed list"
        ));
    }
    if flow.schedule.is_some()
        && let Some((p, _)) = flow.parameters.iter().find(|(_, p)| p.default.is_none())
    {
        return Err(format!(
            "the flow has a schedule but parameter '{p}' has no default: a scheduled run has \
             no one to give it; give it a default"
        ));
    }
    Ok(())
}
