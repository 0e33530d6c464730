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
//! receiving the collected task ids), switches whose cases are chains of steps to the end
//! (one condition sub-DAG per case; steps after the switch are placed in every case that
//! reaches them, and only the chosen case runs), parameters and every step setting. Other
//! shapes are refused with an error (never dropped): see `docs/kubeflow.md`.
#![deny(missing_docs)]

pub mod client;

use std::collections::BTreeMap;

use flowpack_core::Digest;
use flowpack_core::flow::{Flow, ParamType, PullPolicy, Step, Transition, kfp_name};
use serde_json::{Map, Value, json};

/// What to compile against.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The package every task runs.
    pub package: Digest,
    /// The store URL (`Store::url`); written through `redact_url` all the same.
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

/// The component inputs the compiler adds to every step's component, beside the flow's
/// parameters. A parameter name is an identifier (`[A-Za-z_][A-Za-z0-9_]*`), so a name with
/// `--` can never be one: a flow parameter called `run_id`, `split` or `parents` is bound as
/// a parameter, never in place of these.
const RUN_ID: &str = "flowpack--run-id";
/// The task's foreach index (inside a loop).
const SPLIT: &str = "flowpack--split";
/// The parent tasks of a join after a foreach, or of a step after a switch.
const PARENTS: &str = "flowpack--parents";
/// The root input `flowpack trigger --resume` sets (`flowpack step --resume`), passed to
/// every task like a parameter.
const RESUME: &str = "flowpack--resume";

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

/// Where a step's task lives: the root DAG, the loop of a foreach step, or one case of a
/// switch step (a step after a switch is placed in every case that leads to it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope<'a> {
    Root,
    Loop(&'a str),
    Case(&'a str, usize),
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
    // Each case of a switch is a chain of steps to the end; it becomes a condition sub-DAG.
    let mut switches: Vec<&str> = Vec::new();
    let mut placed: BTreeMap<&str, Vec<Scope>> = BTreeMap::new();
    for (name, step) in &flow.steps {
        if let Transition::Switch { cases: c, .. } = &step.next {
            if scope.contains_key(name.as_str()) {
                return Err(refuse(format!(
                    "step '{name}' is a switch inside a foreach: that does not compile for KFP yet"
                )));
            }
            for (i, (value, target)) in c.iter().enumerate() {
                if !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                {
                    return Err(refuse(format!(
                        "case '{value}' of switch '{name}': KFP conditions here take letters, digits, '.', '_' and '-' only"
                    )));
                }
                let mut chain = vec![target.as_str()];
                loop {
                    let last = chain[chain.len() - 1];
                    match &flow.steps[last].next {
                        Transition::End => break,
                        Transition::Linear(t) => chain.push(t.as_str()),
                        _ => {
                            return Err(refuse(format!(
                                "case '{value}' of switch '{name}' is not a straight chain of steps to the end (at '{last}'): this flowpack compiles only that shape for KFP yet"
                            )));
                        }
                    }
                }
                for s in &chain {
                    placed.entry(s).or_default().push(Scope::Case(name, i));
                }
            }
            switches.push(name);
        }
    }
    for (s, scopes) in &placed {
        let Scope::Case(sw, _) = scopes[0] else {
            unreachable!("only cases are placed here")
        };
        let inside = |p: &str| {
            p == sw
                || placed
                    .get(p)
                    .is_some_and(|v| v.iter().any(|x| matches!(x, Scope::Case(w, _) if *w == sw)))
        };
        let outside: Vec<&str> = flow
            .steps
            .iter()
            .filter(|(_, st)| st.next.targets().contains(s))
            .map(|(n, _)| n.as_str())
            .filter(|p| !inside(p))
            .collect();
        if !outside.is_empty()
            || scopes
                .iter()
                .any(|x| matches!(x, Scope::Case(w, _) if *w != sw))
            || scope.contains_key(s)
        {
            return Err(refuse(format!(
                "step '{s}' follows switch '{sw}' and is also reached another way ({}): this does not compile for KFP yet",
                outside.join(", ")
            )));
        }
    }
    for (name, step) in &flow.steps {
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
    }
    run_service_account(flow).map_err(refuse)?;
    let scope_of = |s: &str| scope.get(s).copied().unwrap_or(Scope::Root);
    let placements =
        |s: &str| -> Vec<Scope> { placed.get(s).cloned().unwrap_or_else(|| vec![scope_of(s)]) };

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
    let mut case_tasks: BTreeMap<(&str, usize), Map<String, Value>> = BTreeMap::new();
    let mut platform_execs = Map::new();
    for name in flow.order() {
        let step = &flow.steps[name];
        let here = scope_of(name);
        let k = kfp_name(name);
        let comp = format!("comp-{k}");
        let exec = format!("exec-{k}");
        let closing = loops.iter().find(|(_, _, j)| *j == name);
        let is_foreach = matches!(step.next, Transition::Foreach { .. });
        let is_switch = matches!(step.next, Transition::Switch { .. });

        let mut in_params = Map::new();
        in_params.insert(RUN_ID.into(), json!({"parameterType": "STRING"}));
        in_params.insert(RESUME.into(), json!({"parameterType": "STRING"}));
        for (p, spec) in &flow.parameters {
            in_params.insert(p.clone(), json!({"parameterType": param_type(spec.ty)}));
        }
        if here != Scope::Root {
            in_params.insert(SPLIT.into(), json!({"parameterType": "STRING"}));
        }
        // After a switch, parents differ by case: each task passes its own as a constant.
        let by_input = closing.is_some() || placed.contains_key(name);
        if by_input {
            in_params.insert(PARENTS.into(), json!({"parameterType": "LIST"}));
        }
        let mut out_params = Map::new();
        out_params.insert("task".into(), json!({"parameterType": "STRING"}));
        if is_foreach {
            // kfp.local loops only over an output named `Output`; the backend accepts any.
            out_params.insert("Output".into(), json!({"parameterType": "LIST"}));
        }
        if is_switch {
            out_params.insert("Output".into(), json!({"parameterType": "STRING"}));
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
            flowpack_core::store::redact_url(&opts.store_url),
            "--package".into(),
            opts.package.to_string(),
            "--kfp-run-uuid".into(),
            input(RUN_ID),
            "--step".into(),
            name.to_string(),
            "--image".into(),
            step.settings.image.clone(),
        ];
        if here != Scope::Root {
            args.extend([
                "--task".into(),
                input(SPLIT),
                "--split-index".into(),
                input(SPLIT),
            ]);
        }
        let my_parents = parents.get(name).cloned().unwrap_or_default();
        if by_input {
            args.extend(["--parents-json".into(), input(PARENTS)]);
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
        args.extend(["--resume".into(), input(RESUME)]);
        args.extend(["--kfp-output".into(), "task".into(), output_file("task")]);
        if is_foreach {
            args.extend([
                "--kfp-output".into(),
                "foreach".into(),
                output_file("Output"),
            ]);
        }
        if is_switch {
            args.extend([
                "--kfp-output".into(),
                "switch".into(),
                output_file("Output"),
            ]);
        }
        executors.insert(
            exec.clone(),
            json!({"container": container(step, opts, args)}),
        );

        for here in placements(name) {
            let mut task_inputs = Map::new();
            task_inputs.insert(
                RUN_ID.into(),
                json!({"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}),
            );
            for p in flow.parameters.keys().map(String::as_str).chain([RESUME]) {
                let from = match here {
                    Scope::Root => p.to_string(),
                    _ => format!("pipelinechannel--{p}"),
                };
                task_inputs.insert(p.into(), json!({"componentInputParameter": from}));
            }
            if let Scope::Loop(f) = here {
                task_inputs.insert(
                    SPLIT.into(),
                    json!({"componentInputParameter": format!("pipelinechannel--{}-Output-loop-item", kfp_name(f))}),
                );
            }
            let mut depends: Vec<String> = Vec::new();
            if let Some((f, chain, _)) = closing {
                let last = kfp_name(chain[chain.len() - 1]);
                let loop_task = format!("for-each-{}", kfp_name(f));
                task_inputs.insert(
                    PARENTS.into(),
                    json!({"taskOutputParameter": {
                        "producerTask": loop_task,
                        "outputParameterKey": format!("pipelinechannel--{last}-task"),
                    }}),
                );
                depends.push(loop_task);
            } else {
                for p in &my_parents {
                    if placements(p).contains(&here) {
                        depends.push(kfp_name(p));
                    }
                }
                if by_input {
                    // In a case: the switch step or the step before in the same case.
                    let mine: Vec<String> = my_parents
                        .iter()
                        .filter(|p| {
                            placements(p).contains(&here)
                                || matches!(here, Scope::Case(sw, _) if sw == **p)
                        })
                        .map(|p| format!("{p}/0"))
                        .collect();
                    task_inputs.insert(PARENTS.into(), json!({"runtimeValue": {"constant": mine}}));
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
                Scope::Case(sw, i) => case_tasks
                    .entry((sw, i))
                    .or_default()
                    .insert(k.clone(), task),
            };
        }
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
        let (mut inputs, loop_inputs) = sub_dag_inputs(flow, &items, "LIST", &fk);
        inputs.insert(item.clone(), json!({"parameterType": "STRING"}));
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

    // One condition sub-DAG component and one root task per case of a switch.
    for sw in &switches {
        let sk = kfp_name(sw);
        let Transition::Switch { cases: values, .. } = &flow.steps[*sw].next else {
            unreachable!("only switch steps have cases")
        };
        let channel = format!("pipelinechannel--{sk}-Output");
        for (i, (value, _)) in values.iter().enumerate() {
            let (inputs, task_inputs) = sub_dag_inputs(flow, &channel, "STRING", &sk);
            let name = format!("{sk}-case-{i}");
            components.insert(
                format!("comp-{name}"),
                json!({
                    "dag": {"tasks": case_tasks.remove(&(*sw, i)).unwrap_or_default()},
                    "inputDefinitions": {"parameters": inputs},
                }),
            );
            root_tasks.insert(
                name.clone(),
                json!({
                    "componentRef": {"name": format!("comp-{name}")},
                    "dependentTasks": [sk],
                    "inputs": {"parameters": task_inputs},
                    "taskInfo": {"name": name},
                    "triggerPolicy": {"condition": format!("inputs.parameter_values['{channel}'] == '{value}'")},
                }),
            );
        }
    }

    let mut root_params = Map::new();
    root_params.insert(
        RESUME.into(),
        json!({"parameterType": "STRING", "defaultValue": "", "isOptional": true,
               "description": "set by flowpack trigger --resume"}),
    );
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
    let mut info = json!({"name": pipeline_name(&flow.name)});
    if info["name"] != flow.name.as_str() {
        info["displayName"] = json!(flow.name);
    }
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

/// The inputs of a sub-DAG (a foreach loop or a switch case) and of the task that runs
/// it: `channel`, the `Output` of the step `producer`, and every pipeline parameter as
/// `pipelinechannel--<name>`.
/// The pipeline's KFP name: DNS-1123 style, as the KFP SDK always writes it (lower case,
/// `-` between words, labels separated by `.`). A flow named like a Python class
/// (`TrainFlow`, `My_Flow.v2`) becomes `train-flow`, `my-flow.v2`; the flow's own name is
/// kept as the display name.
pub fn pipeline_name(flow: &str) -> String {
    let mut out = String::with_capacity(flow.len() + 4);
    let mut prev: Option<char> = None;
    for c in flow.chars() {
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
        if boundary {
            out.push('-');
        }
        out.push(match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        });
        prev = Some(c);
    }
    // Each `.` label starts and ends with a letter or digit, with no `-` runs inside.
    out.split('.')
        .map(|label| {
            label
                .split('-')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join("-")
        })
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

fn sub_dag_inputs(
    flow: &Flow,
    channel: &str,
    channel_type: &str,
    producer: &str,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut declared = Map::new();
    let mut given = Map::new();
    declared.insert(channel.into(), json!({"parameterType": channel_type}));
    given.insert(
        channel.into(),
        json!({"taskOutputParameter": {"producerTask": producer, "outputParameterKey": "Output"}}),
    );
    for (p, spec) in &flow.parameters {
        declared.insert(
            format!("pipelinechannel--{p}"),
            json!({"parameterType": param_type(spec.ty)}),
        );
        given.insert(
            format!("pipelinechannel--{p}"),
            json!({"componentInputParameter": p}),
        );
    }
    declared.insert(
        format!("pipelinechannel--{RESUME}"),
        json!({"parameterType": "STRING"}),
    );
    given.insert(
        format!("pipelinechannel--{RESUME}"),
        json!({"componentInputParameter": RESUME}),
    );
    (declared, given)
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
