//! The KFP compiler: a normalized [`Flow`] and its package become a Kubeflow Pipelines v2
//! pipeline (IR YAML, `schemaVersion: 2.1.0`) plus the kubernetes platform spec.
//!
//! Every task runs `flowpack step` with the package digest and the store URL. The run id is
//! `kfp-<pipeline_job_uuid>`: KFP substitutes `{{$.pipeline_job_uuid}}` only as the whole
//! constant of a task input, so each component takes a `run_id` input and passes it to
//! `--kfp-run-uuid`. Step names map to KFP names with `_` -> `-`, shortened with a stable
//! hash past KFP's limits and kept distinct from generated names (`names.rs`); the step's
//! own name is the task's display name.
//!
//! [`compile`] plans the flow ([`flowpack_core::plan`]) and walks the plan with the emitter
//! (`emit.rs`) into the typed IR of [`ir`]; every shape `flowpack run` runs compiles (see
//! `docs/kubeflow.md`). Settings KFP cannot carry are refused with an error, never dropped;
//! [`check`] runs the same compile dry, so `flowpack check` reports what `compile` would refuse.
#![deny(missing_docs)]

pub mod client;
mod emit;
pub mod ir;
mod names;
pub mod schedule;

pub use emit::{param_type, runtime_value};
pub use flowpack_core::invocation::CompileOptions;

use std::collections::BTreeMap;

use flowpack_core::Digest;
use flowpack_core::flow::{Flow, PullPolicy, Step};
use flowpack_core::plan::Plan;
use serde_json::{Map, Value, json};

/// A flow KFP cannot carry as written.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile flow '{flow}' for Kubeflow Pipelines: {reason}")]
pub struct CompileError {
    /// The flow.
    pub flow: String,
    /// What cannot be expressed, and what to do.
    pub reason: String,
}

/// The compiled pipeline: the IR document and the kubernetes platform spec, if any.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The PipelineSpec.
    pub pipeline: Value,
    /// The PlatformSpec (`platforms.kubernetes`), when a step needs one.
    pub platform: Option<Value>,
}

impl Compiled {
    /// Both documents as one YAML stream, as KFP's upload takes it.
    pub fn to_yaml(&self) -> String {
        let mut out = String::from("# PIPELINE DEFINITION (compiled by flowpack)\n");
        out.push_str(&serde_norway::to_string(&self.pipeline).expect("JSON values serialize"));
        if let Some(p) = &self.platform {
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(p).expect("JSON values serialize"));
        }
        out
    }
}

/// The component inputs the compiler adds to every step's component, beside the flow's
/// parameters. A parameter name is an identifier (`[A-Za-z_][A-Za-z0-9_]*`), so a name with
/// `--` can never be one: a flow parameter called `run_id`, `split` or `parents` is bound as
/// a parameter, never in place of these.
pub(crate) const RUN_ID: &str = "flowpack--run-id";
/// The root input holding the resume spec (contract C1): empty for none.
pub(crate) const RESUME: &str = "flowpack--resume";

/// Compiles `flow` (already validated) for KFP: the plan, then the emitter's walk of it.
pub fn compile(flow: &Flow, opts: &CompileOptions) -> Result<Compiled, CompileError> {
    let (spec, platform_execs) = build(flow, opts)?;
    let pipeline = serde_json::to_value(&spec).expect("the IR serializes");
    let platform = (!platform_execs.is_empty()).then(
        || json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": platform_execs}}}}),
    );
    Ok(Compiled { pipeline, platform })
}

/// The typed pipeline and the platform settings by executor, checked against KFP's name
/// rules: everything [`compile`] does but writing the documents ([`check`] stops here).
fn build(
    flow: &Flow,
    opts: &CompileOptions,
) -> Result<(ir::PipelineSpec, Map<String, Value>), CompileError> {
    let refuse = |reason: String| CompileError {
        flow: flow.name.clone(),
        reason,
    };
    check_settings(flow).map_err(refuse)?;
    refuse_recursion(flow).map_err(refuse)?;
    let plan = Plan::of(flow).map_err(|e| refuse(e.reason))?;
    let mut em = emit::Emitter::new(flow, &plan, opts);
    let tree = plan.scope_tree();
    let dag = em.root_dag(&tree);
    let root = ir::Component {
        dag: Some(dag),
        input_definitions: Some(em.root_inputs()),
        ..ir::Component::default()
    };
    let name = pipeline_name(&flow.name);
    let spec = ir::PipelineSpec {
        components: std::mem::take(&mut em.components),
        deployment_spec: ir::DeploymentSpec {
            executors: std::mem::take(&mut em.executors),
        },
        pipeline_info: ir::PipelineInfo {
            display_name: (name != flow.name).then(|| flow.name.clone()),
            name,
            description: flow.description.clone(),
        },
        root,
        schema_version: "2.1.0".into(),
        sdk_version: format!("flowpack-{}", env!("CARGO_PKG_VERSION")),
    };
    names::verify(&spec).map_err(|e| {
        refuse(format!(
            "the compiler produced an invalid KFP name ({e}); this is a flowpack bug, please report it with the flow"
        ))
    })?;
    let mut platform_execs = Map::new();
    for (s, step) in &flow.steps {
        if let Some(p) = platform(step) {
            platform_execs.insert(format!("exec-{}", em.names.step(s)), p);
        }
    }
    Ok((spec, platform_execs))
}

/// Checks that `flow` (already validated) compiles for KFP, without a store or a package:
/// the plan and the emitter run dry. `Err` says what KFP cannot carry and what to do.
///
/// Parameters enter every step the same way and no KFP rule refuses one (validation holds
/// their names to identifiers, every type maps to a KFP type), so a flow with more than
/// [`CHECKED_PARAMETERS`] is checked with its first ones only: the dry compile costs
/// steps × parameters, and `check` stays within its memory bound (docs/reliability.md).
pub fn check(flow: &Flow) -> Result<(), CompileError> {
    let opts = CompileOptions {
        package: Digest::of(b"flowpack check"),
        store_url: "s3://flowpack-check/dry-run".into(),
        command: "flowpack".into(),
    };
    if flow.parameters.len() <= CHECKED_PARAMETERS {
        return build(flow, &opts).map(|_| ());
    }
    let mut fewer = flow.clone();
    fewer.parameters = std::mem::take(&mut fewer.parameters)
        .into_iter()
        .take(CHECKED_PARAMETERS)
        .collect();
    build(&fewer, &opts).map(|_| ())
}

/// How many parameters [`check`] compiles with.
pub const CHECKED_PARAMETERS: usize = 64;

/// A recursive switch is refused: KFP's IR has no loop back. Unrolling it into nested
/// condition sub-DAGs up to `max_visits` was measured with KFP's own compiler (a
/// two-step loop nested with `dsl.If`): 29 KB for 10 visits, 1.1 MB for 100 (the
/// default), growing faster than the visits since every level passes its channels down,
/// with one more sub-DAG (and driver pod) per visit on the backend. So no unrolling.
fn refuse_recursion(flow: &Flow) -> Result<(), String> {
    let Some((switch, case, back)) = flow.recursive_cases().into_iter().next() else {
        return Ok(());
    };
    Err(format!(
        "switch '{switch}' is recursive: its case '{case}' leads back to '{back}'. A KFP v2 pipeline \
         is a DAG with no recursion, and unrolling the loop max_visits {} times would nest as many \
         condition sub-DAGs (about 1 MB of pipeline for 100). Run this flow with `flowpack run`, \
         or for KFP loop inside one step, or make the rounds a foreach over a fixed list",
        flow.visit_limit()
    ))
}

/// Settings KFP cannot carry, and the service account rule.
fn check_settings(flow: &Flow) -> Result<(), String> {
    for (name, step) in &flow.steps {
        if step.settings.resources.gpu.is_some() && step.settings.resources.gpu_type.is_none() {
            return Err(format!(
                "step '{name}' asks for a GPU without `gpu_type`: KFP needs the accelerator type, e.g. gpu_type: nvidia.com/gpu"
            ));
        }
        if step.settings.resources.disk.is_some() {
            return Err(format!(
                "step '{name}' sets resources.disk: KFP's IR has no ephemeral-storage request yet; remove it for KFP"
            ));
        }
    }
    run_service_account(flow).map(|_| ())
}

/// The pipeline's KFP name: the flow's name as a DNS-1123 subdomain
/// ([`flowpack_core::name::dns_name`]); the flow's own name is kept as the display name.
pub fn pipeline_name(flow: &str) -> String {
    flowpack_core::name::dns_name(flow)
}

/// The service account of a run: KFP sets it per run, not per task, so every step must
/// name the same one (or none). `trigger` passes it when it creates the run.
pub fn run_service_account(flow: &Flow) -> Result<Option<String>, String> {
    let mut accounts: Vec<(&str, Option<&str>)> = flow
        .steps
        .iter()
        .map(|(n, s)| (n.as_str(), s.settings.service_account.as_deref()))
        .collect();
    accounts.dedup_by_key(|(_, a)| *a);
    let distinct: std::collections::BTreeSet<Option<&str>> =
        accounts.iter().map(|(_, a)| *a).collect();
    match distinct.len() {
        0 => Ok(None),
        1 => Ok(distinct.into_iter().next().flatten().map(String::from)),
        _ => Err(format!(
            "steps name different service accounts ({}): KFP sets the service account per run, so set one in `defaults`",
            accounts
                .iter()
                .map(|(n, a)| format!("{n}: {}", a.unwrap_or("none")))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn container(step: &Step, opts: &CompileOptions, args: Vec<String>) -> ir::Container {
    let s = &step.settings;
    let r = &s.resources;
    let mut res = BTreeMap::new();
    if let Some(cpu) = &r.cpu {
        res.insert("resourceCpuRequest".into(), json!(cpu));
        res.insert("resourceCpuLimit".into(), json!(cpu));
    }
    if let Some(mem) = &r.memory {
        res.insert("resourceMemoryRequest".into(), json!(mem));
        res.insert("resourceMemoryLimit".into(), json!(mem));
    }
    if let (Some(n), Some(t)) = (r.gpu, &r.gpu_type) {
        res.insert(
            "accelerator".into(),
            json!({"resourceType": t, "resourceCount": n.to_string()}),
        );
    }
    ir::Container {
        image: s.image.clone(),
        command: vec![opts.command.clone(), "step".into()],
        args,
        env: s
            .env
            .iter()
            .map(|(k, v)| ir::EnvVar {
                name: k.clone(),
                value: v.clone(),
            })
            .collect(),
        resources: (!res.is_empty()).then_some(res),
    }
}

/// The kubernetes platform settings of a step, if it has any.
fn platform(step: &Step) -> Option<Value> {
    let s = &step.settings;
    let mut e = Map::new();
    if let Some(t) = s.timeout_seconds {
        e.insert("activeDeadlineSeconds".into(), json!(t.to_string()));
    }
    if let Some(p) = s.image_pull_policy {
        let p = match p {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        };
        e.insert("imagePullPolicy".into(), json!(p));
    }
    if !s.node_selector.is_empty() {
        e.insert("nodeSelector".into(), json!({"labels": s.node_selector}));
    }
    if !s.tolerations.is_empty() {
        let t: Vec<Value> = s
            .tolerations
            .iter()
            .map(|t| {
                let mut v = json!({"operator": t.operator});
                if let Some(k) = &t.key {
                    v["key"] = json!(k);
                }
                if let Some(x) = &t.value {
                    v["value"] = json!(x);
                }
                if let Some(x) = &t.effect {
                    v["effect"] = json!(x);
                }
                if let Some(x) = t.toleration_seconds {
                    v["tolerationSeconds"] = json!(x.to_string());
                }
                v
            })
            .collect();
        e.insert("tolerations".into(), json!(t));
    }
    if !s.secrets.is_empty() {
        let mut by_secret: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (var, r) in &s.secrets {
            by_secret
                .entry(&r.secret)
                .or_default()
                .push(json!({"envVar": var, "secretKey": r.key}));
        }
        let list: Vec<Value> = by_secret
            .into_iter()
            .map(|(secret, keys)| {
                json!({
                    "keyToEnv": keys,
                    "optional": false,
                    "secretName": secret,
                    "secretNameParameter": {"runtimeValue": {"constant": secret}},
                })
            })
            .collect();
        e.insert("secretAsEnv".into(), json!(list));
    }
    (!e.is_empty()).then_some(Value::Object(e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pipeline_names_are_dns_1123_whatever_the_flow_is_called() {
        for (flow, want) in [
            ("train-flow", "train-flow"),
            ("TrainFlow", "train-flow"),
            ("HelloFlow2", "hello-flow2"),
            ("My_Flow.v2", "my-flow.v2"),
            ("ABCFlow", "abcflow"),
            ("a__b.-c-", "a-b.c"),
            ("x9Y", "x9-y"),
        ] {
            assert_eq!(super::pipeline_name(flow), want, "{flow}");
        }
    }
}
