//! The KFP compiler: a normalized [`Flow`] and its package become a Kubeflow Pipelines v2
//! pipeline (IR YAML, `schemaVersion: 2.1.0`) plus the kubernetes platform spec.
//!
//! Every task runs `flowpack step` with the package digest and the store URL. The run id is
//! `kfp-<pipeline_job_uuid>`: KFP substitutes `{{$.pipeline_job_uuid}}` only as the whole
//! constant of a task input, so each component takes a `run_id` input and passes it to
//! `--kfp-run-uuid`. Step names map to KFP names with `_` -> `-` ([`kfp_name`]).
//!
//! This version compiles linear chains, static splits and their joins, foreach loops whose
//! body is a chain of steps (`ParallelFor` over the foreach step's list of indices, the join
//! receiving the collected task ids), parameters and every step setting. Switch and other
//! shapes are refused with an error (never dropped): see `docs/kubeflow.md`.
#![deny(missing_docs)]

use std::collections::BTreeMap;

use flowpack_core::Digest;
use flowpack_core::flow::{Flow, ParamType, PullPolicy, Step, Transition, kfp_name};
use serde_json::{Map, Value, json};

/// What to compile against.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The package every task runs.
    pub package: Digest,
    /// The store URL (it holds no credentials).
    pub store_url: String,
    /// The `flowpack` command inside the images.
    pub command: String,
}

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

fn param_type(t: ParamType) -> &'static str {
    match t {
        ParamType::String => "STRING",
        ParamType::Int => "NUMBER_INTEGER",
        ParamType::Float => "NUMBER_DOUBLE",
        ParamType::Bool => "BOOLEAN",
        ParamType::Json => "STRUCT",
    }
}

fn input(name: &str) -> String {
    format!("{{{{$.inputs.parameters['{name}']}}}}")
}

fn output_file(name: &str) -> String {
    format!("{{{{$.outputs.parameters['{name}'].output_file}}}}")
}

/// Where a step's task lives: the root DAG, or the loop of a foreach step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope<'a> {
    Root,
    Loop(&'a str),
}

/// Compiles `flow` (already validated) for KFP.
pub fn compile(flow: &Flow, opts: &CompileOptions) -> Result<Compiled, CompileError> {
    let refuse = |reason: String| CompileError {
        flow: flow.name.clone(),
        reason,
    };
    // Each foreach body is a chain of steps up to its join; it becomes a ParallelFor.
    let mut scope: BTreeMap<&str, Scope> = BTreeMap::new();
    let mut loops: Vec<(&str, Vec<&str>, &str)> = Vec::new(); // (foreach step, body chain, join)
    for (name, step) in &flow.steps {
        if let Transition::Foreach { body, .. } = &step.next {
            let mut chain = vec![body.as_str()];
            loop {
                let last = chain[chain.len() - 1];
                match &flow.steps[last].next {
                    Transition::Linear(t) if flow.steps[t].join => {
                        loops.push((name, chain, t.as_str()));
                        break;
                    }
                    Transition::Linear(t) => chain.push(t.as_str()),
                    _ => {
                        return Err(refuse(format!(
                            "the body of foreach '{name}' is not a straight chain of steps up to its join (at '{last}'): this flowpack compiles only that shape for KFP yet"
                        )));
                    }
                }
            }
        }
    }
    for (f, chain, _) in &loops {
        for s in chain {
            if scope.insert(s, Scope::Loop(f)).is_some() {
                return Err(refuse(format!("step '{s}' is in two foreach bodies")));
            }
            if matches!(flow.steps[*s].next, Transition::Foreach { .. }) {
                return Err(refuse(format!(
                    "step '{s}' is a foreach inside the foreach '{f}': nested foreach does not compile for KFP yet"
                )));
            }
        }
    }
    for (name, step) in &flow.steps {
        if let Transition::Switch { .. } = &step.next {
            return Err(refuse(format!(
                "step '{name}' is a switch: this flowpack cannot compile switch for KFP yet (run it locally with `flowpack run`)"
            )));
        }
        if step.settings.resources.gpu.is_some() && step.settings.resources.gpu_type.is_none() {
            return Err(refuse(format!(
                "step '{name}' asks for a GPU without `gpu_type`: KFP needs the accelerator type, e.g. gpu_type: nvidia.com/gpu"
            )));
        }
        if step.settings.resources.disk.is_some() {
            return Err(refuse(format!(
                "step '{name}' sets resources.disk: KFP's IR has no ephemeral-storage request yet; remove it for KFP"
            )));
        }
        if step.settings.service_account.is_some() {
            return Err(refuse(format!(
                "step '{name}' sets service_account: KFP sets the service account per run, not per task; remove it and give it when the run is created"
            )));
        }
    }
    let scope_of = |s: &str| scope.get(s).copied().unwrap_or(Scope::Root);

    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in flow.order() {
        for t in flow.steps[name].next.targets() {
            parents.entry(t).or_default().push(name);
        }
    }

    let mut components = Map::new();
    let mut executors = Map::new();
    let mut root_tasks = Map::new();
    let mut loop_tasks: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut platform_execs = Map::new();
    for name in flow.order() {
        let step = &flow.steps[name];
        let here = scope_of(name);
        let k = kfp_name(name);
        let comp = format!("comp-{k}");
        let exec = format!("exec-{k}");
        let closing = loops.iter().find(|(_, _, j)| *j == name);
        let is_foreach = matches!(step.next, Transition::Foreach { .. });

        let mut in_params = Map::new();
        in_params.insert("run_id".into(), json!({"parameterType": "STRING"}));
        for (p, spec) in &flow.parameters {
            in_params.insert(p.clone(), json!({"parameterType": param_type(spec.ty)}));
        }
        if here != Scope::Root {
            in_params.insert("split".into(), json!({"parameterType": "STRING"}));
        }
        if closing.is_some() {
            in_params.insert("parents".into(), json!({"parameterType": "LIST"}));
        }
        let mut out_params = Map::new();
        out_params.insert("task".into(), json!({"parameterType": "STRING"}));
        if is_foreach {
            // kfp.local loops only over an output named `Output`; the backend accepts any.
            out_params.insert("Output".into(), json!({"parameterType": "LIST"}));
        }
        components.insert(
            comp.clone(),
            json!({
                "executorLabel": exec,
                "inputDefinitions": {"parameters": in_params},
                "outputDefinitions": {"parameters": out_params},
            }),
        );

        let mut args: Vec<String> = vec![
            "--store".into(),
            opts.store_url.clone(),
            "--package".into(),
            opts.package.to_string(),
            "--kfp-run-uuid".into(),
            input("run_id"),
            "--step".into(),
            name.to_string(),
            "--image".into(),
            step.settings.image.clone(),
        ];
        if here != Scope::Root {
            args.extend([
                "--task".into(),
                input("split"),
                "--split-index".into(),
                input("split"),
            ]);
        }
        let my_parents = parents.get(name).cloned().unwrap_or_default();
        if closing.is_some() {
            args.extend(["--parents-json".into(), input("parents")]);
        } else {
            for p in &my_parents {
                match (scope_of(p), here) {
                    (Scope::Loop(_), Scope::Loop(_)) => {
                        args.extend(["--same-task-parent".into(), p.to_string()]);
                    }
                    _ => args.extend(["--parent".into(), format!("{p}/0")]),
                }
            }
        }
        for p in flow.parameters.keys() {
            args.extend(["--kfp-param".into(), p.clone(), input(p)]);
        }
        args.extend(["--kfp-output".into(), "task".into(), output_file("task")]);
        if is_foreach {
            args.extend([
                "--kfp-output".into(),
                "foreach".into(),
                output_file("Output"),
            ]);
        }
        executors.insert(
            exec.clone(),
            json!({"container": container(step, opts, args)}),
        );

        let mut task_inputs = Map::new();
        task_inputs.insert(
            "run_id".into(),
            json!({"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}),
        );
        for p in flow.parameters.keys() {
            let from = match here {
                Scope::Root => p.clone(),
                Scope::Loop(_) => format!("pipelinechannel--{p}"),
            };
            task_inputs.insert(p.clone(), json!({"componentInputParameter": from}));
        }
        if let Scope::Loop(f) = here {
            task_inputs.insert(
                "split".into(),
                json!({"componentInputParameter": format!("pipelinechannel--{}-Output-loop-item", kfp_name(f))}),
            );
        }
        let mut depends: Vec<String> = Vec::new();
        if let Some((f, chain, _)) = closing {
            let last = kfp_name(chain[chain.len() - 1]);
            let loop_task = format!("for-each-{}", kfp_name(f));
            task_inputs.insert(
                "parents".into(),
                json!({"taskOutputParameter": {
                    "producerTask": loop_task,
                    "outputParameterKey": format!("pipelinechannel--{last}-task"),
                }}),
            );
            depends.push(loop_task);
        } else {
            for p in &my_parents {
                if scope_of(p) == here {
                    depends.push(kfp_name(p));
                }
            }
        }
        let mut task = json!({
            "cachingOptions": if step.settings.cache { json!({"enableCache": true}) } else { json!({}) },
            "componentRef": {"name": comp},
            "inputs": {"parameters": task_inputs},
            "taskInfo": {"name": k},
        });
        if !depends.is_empty() {
            task["dependentTasks"] = json!(depends);
        }
        if step.settings.retry.times > 0 {
            task["retryPolicy"] = json!({
                "maxRetryCount": step.settings.retry.times,
                "backoffDuration": format!("{}s", step.settings.retry.delay_seconds),
                "backoffFactor": 2.0,
                "backoffMaxDuration": "3600s",
            });
        }
        match here {
            Scope::Root => root_tasks.insert(k.clone(), task),
            Scope::Loop(f) => loop_tasks.entry(f).or_default().insert(k.clone(), task),
        };
        if let Some(p) = platform(step) {
            platform_execs.insert(exec, p);
        }
    }

    // One sub-DAG component and one root task per foreach loop.
    for (f, chain, _) in &loops {
        let fk = kfp_name(f);
        let last = kfp_name(chain[chain.len() - 1]);
        let items = format!("pipelinechannel--{fk}-Output");
        let item = format!("{items}-loop-item");
        let collected = format!("pipelinechannel--{last}-task");
        let mut inputs = Map::new();
        inputs.insert(items.clone(), json!({"parameterType": "LIST"}));
        inputs.insert(item.clone(), json!({"parameterType": "STRING"}));
        let mut loop_inputs = Map::new();
        loop_inputs.insert(
            items.clone(),
            json!({"taskOutputParameter": {"producerTask": fk, "outputParameterKey": "Output"}}),
        );
        for (p, spec) in &flow.parameters {
            inputs.insert(
                format!("pipelinechannel--{p}"),
                json!({"parameterType": param_type(spec.ty)}),
            );
            loop_inputs.insert(
                format!("pipelinechannel--{p}"),
                json!({"componentInputParameter": p}),
            );
        }
        let comp = format!("comp-for-each-{fk}");
        components.insert(
            comp.clone(),
            json!({
                "dag": {
                    "outputs": {"parameters": {collected.clone(): {
                        "valueFromParameter": {"producerSubtask": last, "outputParameterKey": "task"}
                    }}},
                    "tasks": loop_tasks.remove(f).unwrap_or_default(),
                },
                "inputDefinitions": {"parameters": inputs},
                "outputDefinitions": {"parameters": {collected: {"parameterType": "LIST"}}},
            }),
        );
        root_tasks.insert(
            format!("for-each-{fk}"),
            json!({
                "componentRef": {"name": comp},
                "dependentTasks": [fk],
                "inputs": {"parameters": loop_inputs},
                "iteratorPolicy": {"parallelismLimit": flow.max_workers},
                "parameterIterator": {"itemInput": item, "items": {"inputParameter": items}},
                "taskInfo": {"name": format!("for-each-{fk}")},
            }),
        );
    }

    let mut root_params = Map::new();
    for (p, spec) in &flow.parameters {
        let mut def = json!({"parameterType": param_type(spec.ty)});
        if let Some(d) = &spec.default {
            def["defaultValue"] = d.clone();
            def["isOptional"] = json!(true);
        }
        if let Some(h) = &spec.help {
            def["description"] = json!(h);
        }
        root_params.insert(p.clone(), def);
    }
    let mut root = json!({"dag": {"tasks": root_tasks}});
    if !root_params.is_empty() {
        root["inputDefinitions"] = json!({"parameters": root_params});
    }
    let mut info = json!({"name": flow.name});
    if let Some(d) = &flow.description {
        info["description"] = json!(d);
    }
    let pipeline = json!({
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": info,
        "root": root,
        "schemaVersion": "2.1.0",
        "sdkVersion": format!("flowpack-{}", env!("CARGO_PKG_VERSION")),
    });
    let platform = (!platform_execs.is_empty()).then(
        || json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": platform_execs}}}}),
    );
    Ok(Compiled { pipeline, platform })
}

fn container(step: &Step, opts: &CompileOptions, args: Vec<String>) -> Value {
    let s = &step.settings;
    let mut c = json!({
        "image": s.image,
        "command": [opts.command, "step"],
        "args": args,
    });
    if !s.env.is_empty() {
        c["env"] = json!(
            s.env
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect::<Vec<_>>()
        );
    }
    let r = &s.resources;
    let mut res = Map::new();
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
    if !res.is_empty() {
        c["resources"] = Value::Object(res);
    }
    c
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
