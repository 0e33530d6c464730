//! The one deployment seam. An [`Engine`] is what flowpack asks of a workflow engine:
//! check and compile a flow, deploy it (with its own schedule), start a run, read a run's
//! state, stop it, list and change schedules. Kubeflow Pipelines (`kfp.rs`) and Argo
//! Workflows (`argo.rs`) implement it; `compile`, `push`, `trigger`, `status`, `terminate`
//! and `schedules` are written once over it here, so both engines get the same checks,
//! resume, messages and JSON, and the version pointer records each engine's deployment.

use std::path::Path;

use anyhow::{Context, Result, bail};
use flowpack_core::Flow;
use flowpack_core::invocation::CompileOptions;
use flowpack_core::store::Store;
use flowpack_runtime::inspect;
use flowpack_runtime::step::reuse::ResumeSpec;
use serde_json::{Map, Value, json};

use super::argo::Argo;
use super::kfp::Kfp;
use crate::cli::{
    EngineArgs, EngineRunArgs, ScheduleArgs, ScheduleIdArgs, SchedulesArgs, SchedulesCommand,
    Target, TargetArg, TriggerArgs,
};

/// A run to start.
pub struct RunRequest<'a> {
    /// The flow (its name names the deployment; its parameters type the values).
    pub flow: &'a Flow,
    /// The flow file, for hints.
    pub flow_file: &'a Path,
    /// The run's parameters as the engine carries them ([`Engine::parameters`]); the
    /// others take the deployed defaults.
    pub params: Map<String, Value>,
    /// The deployed version to run (default: the newest).
    pub version_name: Option<&'a str>,
    /// KFP's experiment.
    pub experiment: &'a str,
}

/// A started run.
pub struct Started {
    /// The flowpack run id (`kfp-…`, `argo-…`).
    pub run: String,
    /// The engine's own ids, for `--json`.
    pub details: Value,
}

/// A run's state as its engine reports it.
pub struct RunState {
    /// The flowpack run id.
    pub run: String,
    /// The engine's word for it (KFP: `RUNNING`, …; Argo: `Running`, …).
    pub state: String,
    /// The engine's error or message, if any.
    pub error: Option<Value>,
}

/// One schedule as `schedules` lists it.
pub struct ScheduleRow {
    /// What `schedules delete|enable|disable` take.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The cron as the user wrote it.
    pub cron: String,
    /// Whether it starts runs.
    pub enabled: bool,
    /// What it runs.
    pub version: String,
    /// Everything, for `--json`.
    pub json: Value,
}

/// A change to one schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleChange {
    /// Delete it (the runs it started stay).
    Delete,
    /// Let it start runs.
    Enable,
    /// Stop it starting runs.
    Disable,
}

impl ScheduleChange {
    /// The past tense printed after it.
    fn done(self) -> &'static str {
        match self {
            Self::Delete => "deleted",
            Self::Enable => "enabled",
            Self::Disable => "disabled",
        }
    }
}

/// A workflow engine flowpack compiles for and deploys to.
pub trait Engine {
    /// Its name in messages.
    const NAME: &'static str;
    /// Its run ids start with this and `-`; its field in the version pointer and `--json`.
    const KEY: &'static str;
    /// The engine the command line names, or an error saying how to name it.
    fn new(e: &EngineArgs) -> Result<Self>
    where
        Self: Sized;
    /// Whether `flow` compiles for the engine (no store, no package): `Err` says why not.
    fn check(flow: &Flow) -> Result<(), String>;
    /// The engine's documents that run `flow` from `opts.package`, as YAML.
    fn compile(flow: &Flow, opts: &CompileOptions) -> Result<String>;
    /// Deploys `flow` as version `version`. What it returns goes into the version pointer.
    async fn deploy(&self, flow: &Flow, version: &str, opts: &CompileOptions) -> Result<Value>;
    /// Makes the flow's own `schedule`, if any, run what [`Engine::deploy`] deployed (`ids`,
    /// its answer): after the version pointer is written, so a failed schedule leaves the
    /// deployment recorded. Returns what was done.
    async fn deploy_schedule(&self, flow: &Flow, ids: &Value) -> Result<Option<Value>>;
    /// One line per thing deployed, from what [`Engine::deploy`] returned (with the
    /// schedule's answer under `schedule`).
    fn deployed_lines(ids: &Value) -> Vec<String>;
    /// A run's parameters as the engine's run request carries them: the values given
    /// (typed by the flow) and the resume spec, if the run resumes another.
    fn parameters(
        flow: &Flow,
        typed: &Map<String, Value>,
        resume: Option<&ResumeSpec>,
    ) -> Map<String, Value>;
    /// Starts a run.
    async fn trigger(&self, req: &RunRequest<'_>) -> Result<Started>;
    /// The state of run `run` (an id of this engine).
    async fn status(&self, run: &str) -> Result<RunState>;
    /// Stops run `run`.
    async fn terminate(&self, run: &str) -> Result<()>;
    /// Makes (or replaces) the schedule `schedule` asks for; returns what `--json` prints,
    /// its id under `id`.
    async fn schedule(&self, flow: &Flow, a: &ScheduleArgs) -> Result<Value>;
    /// The schedules, of the flow named `flow` or all flowpack's.
    async fn schedules(&self, flow: Option<&str>) -> Result<Vec<ScheduleRow>>;
    /// Deletes, enables or disables schedule `id`.
    async fn change_schedule(&self, id: &str, change: ScheduleChange) -> Result<()>;
}

/// `$body` with `$E` the engine type `$target` names (static dispatch: the trait's async
/// functions are not object safe).
macro_rules! on_engine {
    ($target:expr, $E:ident => $body:expr) => {
        match $target {
            Target::Kfp => {
                type $E = Kfp;
                $body
            }
            Target::Argo => {
                type $E = Argo;
                $body
            }
        }
    };
}

/// The engine's key: its run ids' prefix, its field in the version pointer and `--json`.
pub fn key(target: Target) -> &'static str {
    on_engine!(target, E => E::KEY)
}

/// The engine's name in messages.
pub fn name(target: Target) -> &'static str {
    on_engine!(target, E => E::NAME)
}

/// `check`: whether `flow` compiles for `target`.
pub fn check(target: Target, flow: &Flow) -> Result<(), String> {
    on_engine!(target, E => E::check(flow))
}

/// `compile`: the documents of `target` for `flow` running `opts.package`.
pub fn compile(target: Target, flow: &Flow, opts: &CompileOptions) -> Result<String> {
    on_engine!(target, E => E::compile(flow, opts))
}

/// The engines `push` deploys to: each one given (both may be).
pub fn deploy_targets(e: &EngineArgs) -> Vec<Target> {
    let mut t = Vec::new();
    if e.kfp.kfp_url.is_some() {
        t.push(Target::Kfp);
    }
    if e.argo.argo_server.is_some() {
        t.push(Target::Argo);
    }
    t
}

/// `push`: deploys to `target`; returns what goes into the version pointer.
pub async fn deploy(
    target: Target,
    e: &EngineArgs,
    flow: &Flow,
    version: &str,
    opts: &CompileOptions,
) -> Result<Value> {
    on_engine!(target, E => E::new(e)?.deploy(flow, version, opts).await)
}

/// `push`, after the version pointer: the flow's own schedule on `target`.
pub async fn deploy_schedule(
    target: Target,
    e: &EngineArgs,
    flow: &Flow,
    ids: &Value,
) -> Result<Option<Value>> {
    on_engine!(target, E => E::new(e)?.deploy_schedule(flow, ids).await)
}

/// The lines `push` prints for a deployment to `target`.
pub fn deployed_lines(target: Target, ids: &Value) -> Vec<String> {
    on_engine!(target, E => E::deployed_lines(ids))
}

/// The engine a command that starts or lists things talks to: `--target`, else the one
/// given (`--kfp-url`, `--argo-server`, or their variables); both given need `--target`.
fn chosen(e: &EngineArgs, target: &TargetArg) -> Result<Target> {
    if let Some(t) = target.target {
        return Ok(t);
    }
    match (e.kfp.kfp_url.is_some(), e.argo.argo_server.is_some()) {
        (true, true) => bail!(
            "both KFP (--kfp-url / FLOWPACK_KFP_URL) and Argo (--argo-server / FLOWPACK_ARGO_SERVER) are given: pass --target kfp or --target argo"
        ),
        (false, true) => Ok(Target::Argo),
        _ => Ok(Target::Kfp),
    }
}

/// `trigger`: starts a run of the deployed flow and prints its id.
pub async fn trigger(a: TriggerArgs) -> Result<()> {
    let flow = Flow::load(&a.flow)?;
    let target = chosen(&a.engine, &a.target)?;
    let mut params = Map::new();
    let resume = match &a.resume {
        Some(run) => Some(resume_spec(&a, &flow, run, &mut params).await?),
        None => None,
    };
    params.extend(typed_params(&flow, &a.params)?);
    let params = on_engine!(target, E => E::parameters(&flow, &params, resume.as_ref()));
    if a.dry_run {
        return super::print_json(&json!({
            "flow": flow.name, "parameters": params, "resume": resume,
        }));
    }
    let req = RunRequest {
        flow: &flow,
        flow_file: &a.flow,
        params,
        version_name: a.version_name.as_deref(),
        experiment: &a.experiment,
    };
    let started = on_engine!(target, E => E::new(&a.engine)?.trigger(&req).await?);
    if a.json {
        let mut v = started.details;
        v["run"] = json!(started.run);
        super::print_json(&v)
    } else {
        outln!("{}", started.run);
        Ok(())
    }
}

/// `NAME=VALUE` arguments typed by the flow's parameters (an unknown name is an error).
pub fn typed_params(flow: &Flow, args: &[String]) -> Result<Map<String, Value>> {
    let mut params = Map::new();
    for (name, text) in super::key_values(args, "--param")? {
        let p = flow
            .parameters
            .get(&name)
            .with_context(|| format!("flow '{}' has no parameter '{name}'", flow.name))?;
        let v =
            p.ty.parse_text(&text)
                .map_err(|e| anyhow::anyhow!("parameter '{name}': {e}"))?;
        params.insert(name, v);
    }
    Ok(params)
}

/// The cron and time zone a schedule of `flow` runs on: `--cron` (in `--timezone`, or in
/// the engine's default zone: None), else the flow's own `schedule` (in `--timezone` or
/// its own zone).
pub fn schedule_cron(
    flow: &Flow,
    cron: Option<&str>,
    timezone: Option<&str>,
) -> Result<(String, Option<String>)> {
    Ok(match (cron, &flow.schedule) {
        (Some(c), _) => (c.trim().to_string(), timezone.map(str::to_string)),
        (None, Some(s)) => (
            s.cron.clone(),
            Some(timezone.unwrap_or(&s.timezone).to_string()),
        ),
        (None, None) => bail!(
            "flow '{}' has no `schedule`: pass --cron '0 2 * * *' (minute hour day-of-month month day-of-week)",
            flow.name
        ),
    })
}

/// Refuses a schedule of `flow` that leaves a parameter without a default unset: a
/// scheduled run has no one to give it.
pub fn require_parameters(flow: &Flow, given: &Map<String, Value>) -> Result<()> {
    let missing: Vec<&str> = flow
        .parameters
        .iter()
        .filter(|(n, p)| p.default.is_none() && !given.contains_key(*n))
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        bail!(
            "flow '{}' has parameters without a default that a scheduled run needs: {} (pass --param NAME=VALUE for each)",
            flow.name,
            missing.join(", ")
        );
    }
    Ok(())
}

/// The resume of `run` (read from the store): the steps to redo, checked against the
/// current flow; the origin's parameter values go into `params` (given ones win).
async fn resume_spec(
    a: &TriggerArgs,
    flow: &Flow,
    run: &str,
    params: &mut Map<String, Value>,
) -> Result<ResumeSpec> {
    let store = crate::settings::store(a.store.store.as_deref(), crate::settings::Access::Read)?;
    let record = inspect::find_run(&store, run).await?;
    if record.flow != flow.name {
        bail!(
            "run {} is of flow '{}', not '{}'",
            record.run,
            record.flow,
            flow.name
        );
    }
    let old = inspect::load(&store, record.clone()).await?;
    let redo = inspect::resume_plan(flow, &old, a.from.as_deref())?;
    for (k, v) in &record.parameters {
        if flow.parameters.contains_key(k) {
            params.insert(k.clone(), v.clone());
        }
    }
    eprintln!(
        "resuming {}: steps run again: {}",
        record.run,
        redo.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(ResumeSpec {
        run: record.run,
        redo: redo.into_iter().collect(),
    })
}

/// The engine a run id belongs to: `kfp-…` or `argo-…` (a bare id is KFP's, as before).
fn engine_of(run: &str) -> Target {
    if run.starts_with("argo-") {
        Target::Argo
    } else {
        Target::Kfp
    }
}

/// `status`: the run's state as its engine reports it.
pub async fn status(a: EngineRunArgs) -> Result<()> {
    let s = on_engine!(engine_of(&a.run), E => E::new(&a.engine)?.status(&a.run).await?);
    if a.json {
        super::print_json(&json!({"run": s.run, "state": s.state, "error": s.error}))
    } else {
        outln!("{} {}", s.run, s.state);
        Ok(())
    }
}

/// `terminate`: stops the run.
pub async fn terminate(a: EngineRunArgs) -> Result<()> {
    on_engine!(engine_of(&a.run), E => E::new(&a.engine)?.terminate(&a.run).await?);
    if a.json {
        super::print_json(&json!({"run": a.run, "terminated": true}))
    } else {
        outln!("{} terminating", a.run);
        Ok(())
    }
}

/// `schedule`: makes (or replaces) a schedule of the deployed flow; prints its id.
pub async fn schedule(a: ScheduleArgs) -> Result<()> {
    let flow = Flow::load(&a.flow)?;
    let made = on_engine!(chosen(&a.engine, &a.target)?, E => E::new(&a.engine)?.schedule(&flow, &a).await?);
    if a.json {
        return super::print_json(&made);
    }
    outln!("{}", made["id"].as_str().unwrap_or_default());
    Ok(())
}

/// `schedules`: lists them, or deletes, enables or disables one.
pub async fn schedules(a: SchedulesArgs) -> Result<()> {
    let (x, change) = match a.command {
        Some(SchedulesCommand::Delete(x)) => (x, ScheduleChange::Delete),
        Some(SchedulesCommand::Enable(x)) => (x, ScheduleChange::Enable),
        Some(SchedulesCommand::Disable(x)) => (x, ScheduleChange::Disable),
        None => return list(a.flow.as_deref(), &a.engine, &a.target, a.json).await,
    };
    change_schedule(x, change).await
}

async fn change_schedule(x: ScheduleIdArgs, change: ScheduleChange) -> Result<()> {
    if x.id.is_empty() || !x.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!(
            "'{}' is not a schedule id: `flowpack schedules` lists them",
            x.id
        );
    }
    on_engine!(chosen(&x.engine, &x.target)?, E => E::new(&x.engine)?.change_schedule(&x.id, change).await?);
    let done = change.done();
    if x.json {
        super::print_json(&json!({"id": x.id, done: true}))
    } else {
        outln!("{} {done}", x.id);
        Ok(())
    }
}

async fn list(flow: Option<&str>, e: &EngineArgs, target: &TargetArg, as_json: bool) -> Result<()> {
    let flow = flow.map(flow_name).transpose()?;
    let rows = on_engine!(chosen(e, target)?, E => E::new(e)?.schedules(flow.as_deref()).await?);
    if as_json {
        let list: Vec<&Value> = rows.iter().map(|r| &r.json).collect();
        return super::print_json(&list);
    }
    if rows.is_empty() {
        outln!("no schedules");
        return Ok(());
    }
    outln!(
        "{:<36} {:<24} {:<20} {:<7} VERSION",
        "ID",
        "NAME",
        "CRON",
        "ENABLED"
    );
    for r in &rows {
        outln!(
            "{:<36} {:<24} {:<20} {:<7} {}",
            r.id,
            r.name,
            r.cron,
            if r.enabled { "yes" } else { "no" },
            r.version
        );
    }
    Ok(())
}

/// The flow name `FLOW` stands for: a flow file's name, or the text itself.
fn flow_name(flow: &str) -> Result<String> {
    let path = Path::new(flow);
    if path.is_file() {
        return Ok(Flow::load(path)?.name);
    }
    Ok(flow.to_string())
}

/// Before anything is pushed for a cluster (`compile`, `push` to an engine): the flow
/// compiles for `target`, and, unless `allow_local`, its pods can reach its store and
/// images (`flowpack_core::reach`, the same for every engine).
pub fn check_for_cluster(
    target: Target,
    flow: &Flow,
    store: &Store,
    allow_local: bool,
) -> Result<()> {
    let refused = |reason: String| {
        anyhow::anyhow!(
            "cannot compile flow '{}' for {}: {reason}",
            flow.name,
            name(target)
        )
    };
    check(target, flow).map_err(refused)?;
    if !allow_local {
        flowpack_core::reach::refuse_machine_only(flow, store).map_err(refused)?;
    }
    Ok(())
}
