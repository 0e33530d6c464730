//! `flowpack step`: one attempt of one task, as a fixed sequence of phases —
//!
//! claim attempt -> fetch package -> restore inputs -> run child -> upload outputs ->
//! commit -> report
//!
//! The same code runs in a KFP pod and under `flowpack run`. Every phase is timed. The
//! lifecycle record (`task.json`) is claimed create-only as attempt N+1 of the task, kept
//! fresh by heartbeats, and finished on every path — success, failure, timeout, SIGTERM —
//! with the exit code, phase timings and bytes moved. Outputs are committed by writing
//! `artifacts.json` last, and only when the child succeeded.

mod artifacts;
mod child;
mod logs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use flowpack_core::Digest;
use flowpack_core::flow::{Flow, Step, Transition};
use flowpack_core::manifest::Manifest;
use flowpack_core::run::{Artifacts, Bytes, RunRecord, TaskRecord, TaskRef, TaskStatus};
use flowpack_core::store::{Store, layout};

pub use artifacts::{committed, read_json as read_json_artifact};
pub use child::StopSignals;

use crate::RuntimeError;
use crate::cache::{Cache, copy_tree};
use child::Ended;
use logs::LogShipper;

/// Exit code when flowpack itself failed (package, inputs, outputs, store).
pub const EXIT_STEP_ERROR: i32 = 125;
/// Exit code when the child ran past the step's timeout.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code when the task was stopped by SIGTERM or SIGINT.
pub const EXIT_TERMINATED: i32 = 143;
/// How often a running task's record is refreshed.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// Everything one task needs; built by the CLI from `flowpack step`'s arguments.
#[derive(Clone, Debug)]
pub struct StepArgs {
    /// The store.
    pub store: Store,
    /// The package to run.
    pub package: Digest,
    /// The run id.
    pub run: String,
    /// The step.
    pub step: String,
    /// The task id (`0`, or foreach indices `3`, `3.1`).
    pub task: String,
    /// The tasks whose artifacts this one restores.
    pub parents: Vec<TaskRef>,
    /// The index in the foreach list, for tasks inside a foreach.
    pub split_index: Option<u64>,
    /// Parameter values as `name=text`; missing ones take their defaults.
    pub params: Vec<(String, String)>,
    /// Files to write KFP output parameters to: `task`, `foreach`, `switch`.
    pub output_params: BTreeMap<String, PathBuf>,
    /// The node-local cache folder.
    pub cache_dir: PathBuf,
    /// How long the child gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// The image the task runs in, for the record.
    pub image: Option<String>,
}

/// How a task ended.
#[derive(Clone, Debug)]
pub struct StepOutcome {
    /// The attempt's final status.
    pub status: TaskStatus,
    /// The exit code for this process: the child's, or one of flowpack's (`EXIT_*`).
    pub exit_code: i32,
    /// The attempt number (None when it could not even be claimed).
    pub attempt: Option<u32>,
    /// flowpack's own error, if any.
    pub error: Option<String>,
}

struct Timings {
    phases: BTreeMap<String, f64>,
    current: Option<(&'static str, Instant)>,
}

impl Timings {
    fn new() -> Self {
        Self {
            phases: BTreeMap::new(),
            current: None,
        }
    }

    fn start(&mut self, phase: &'static str) {
        self.stop();
        self.current = Some((phase, Instant::now()));
    }

    fn stop(&mut self) {
        if let Some((p, t)) = self.current.take() {
            let secs = (t.elapsed().as_secs_f64() * 1e4).round() / 1e4;
            self.phases.insert(p.to_string(), secs);
        }
    }
}

/// Runs one attempt of a task. Never panics on bad input; every failure after the claim is
/// recorded in the attempt's `task.json`.
pub async fn run_step(args: StepArgs, mut signals: StopSignals) -> StepOutcome {
    let mut t = Timings::new();
    t.start("claim");
    let manifest = match manifest(&args).await {
        Ok(m) => m,
        Err(e) => return unclaimed(e),
    };
    let flow_name = manifest.flow.name.clone();
    let (attempt, mut record) = match claim(&args, &flow_name).await {
        Ok(c) => c,
        Err(e) => return unclaimed(e),
    };
    let prefix = layout::attempt(&flow_name, &args.run, &args.step, &args.task, attempt);
    let shipper = LogShipper::new(args.store.clone(), &prefix);
    let flusher = shipper.spawn_flusher();
    let stop_heartbeat = std::sync::Arc::new(tokio::sync::Notify::new());
    let heartbeat = spawn_heartbeat(
        args.store.clone(),
        format!("{prefix}task.json"),
        record.clone(),
        stop_heartbeat.clone(),
    );

    let mut bytes = Bytes::default();
    let result = phases(
        &args,
        &manifest,
        attempt,
        &prefix,
        &shipper,
        &mut signals,
        &mut t,
        &mut bytes,
    )
    .await;
    t.stop();

    stop_heartbeat.notify_one();
    let _ = heartbeat.await;
    let (status, exit_code, error) = match result {
        Ok((status, code)) => (status, code, None),
        Err(e) => {
            let msg = e.to_string();
            shipper.line("flowpack", &format!("error: {msg}")).await;
            eprintln!("flowpack step: error: {msg}");
            (TaskStatus::Failed, EXIT_STEP_ERROR, Some(msg))
        }
    };
    t.start("report");
    let log_error = match shipper.finish(flusher).await {
        Ok(n) => {
            bytes.uploaded += n;
            None
        }
        Err(e) => Some(format!("logs could not be stored: {e}")),
    };
    t.stop();
    record.status = status;
    record.exit_code = Some(exit_code);
    record.error = error.clone().or(log_error);
    record.finished_at = Some(now());
    record.heartbeat_at = now();
    record.phases = t.phases;
    record.bytes = bytes;
    if let Err(e) = args
        .store
        .put_json(&format!("{prefix}task.json"), &record)
        .await
    {
        eprintln!("flowpack step: error: the final task record could not be written: {e}");
    }
    StepOutcome {
        status,
        exit_code,
        attempt: Some(attempt),
        error,
    }
}

fn unclaimed(e: RuntimeError) -> StepOutcome {
    eprintln!("flowpack step: error: {e}");
    StepOutcome {
        status: TaskStatus::Failed,
        exit_code: EXIT_STEP_ERROR,
        attempt: None,
        error: Some(e.to_string()),
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The package's manifest, from the node cache or the store: its flow names every key.
async fn manifest(args: &StepArgs) -> Result<Manifest, RuntimeError> {
    if !flowpack_core::run::is_run_id(&args.run) {
        return Err(RuntimeError::Invalid(format!(
            "run id '{}' is not valid: use letters, digits, '_' and '-'",
            args.run
        )));
    }
    if !flowpack_core::run::is_task_id(&args.task) {
        return Err(RuntimeError::Invalid(format!(
            "task id '{}' is not valid: use 0, or foreach indices like 3 or 3.1",
            args.task
        )));
    }
    let cache = Cache::new(&args.cache_dir);
    cache.manifest(&args.store, &args.package).await
}

/// Claims the next attempt of the task by creating its `task.json`.
async fn claim(args: &StepArgs, flow: &str) -> Result<(u32, TaskRecord), RuntimeError> {
    let task_prefix = layout::task(flow, &args.run, &args.step, &args.task);
    let mut next = args
        .store
        .list_dirs(&task_prefix)
        .await?
        .iter()
        .filter_map(|a| a.parse::<u32>().ok())
        .max()
        .map_or(0, |m| m + 1);
    loop {
        let record = TaskRecord {
            run: args.run.clone(),
            step: args.step.clone(),
            task: args.task.clone(),
            attempt: next,
            status: TaskStatus::Running,
            host: hostname(),
            image: args.image.clone().unwrap_or_default(),
            flowpack_version: env!("CARGO_PKG_VERSION").to_string(),
            parents: args.parents.iter().map(|p| p.to_string()).collect(),
            split_index: args.split_index,
            started_at: now(),
            heartbeat_at: now(),
            finished_at: None,
            exit_code: None,
            error: None,
            phases: BTreeMap::new(),
            bytes: Bytes::default(),
            reused_from: None,
        };
        let key = format!(
            "{}task.json",
            layout::attempt(flow, &args.run, &args.step, &args.task, next)
        );
        let body = serde_json::to_vec_pretty(&record).expect("records serialize");
        if args.store.create_bytes(&key, body.into()).await? {
            return Ok((next, record));
        }
        next += 1;
        if next > 10_000 {
            return Err(RuntimeError::Invalid(
                "more than 10,000 attempts of one task".into(),
            ));
        }
    }
}

/// Refreshes the record every [`HEARTBEAT_EVERY`] until `stop` is notified; a write under
/// way completes first, so no heartbeat can land after the final record.
fn spawn_heartbeat(
    store: Store,
    key: String,
    mut record: TaskRecord,
    stop: std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT_EVERY) => {
                    record.heartbeat_at = now();
                    let _ = store.put_json(&key, &record).await;
                }
                _ = stop.notified() => return,
            }
        }
    })
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The phases after the claim. Returns the status and exit code, or flowpack's error.
#[allow(clippy::too_many_arguments)]
async fn phases(
    args: &StepArgs,
    manifest: &Manifest,
    attempt: u32,
    prefix: &str,
    shipper: &LogShipper,
    signals: &mut StopSignals,
    t: &mut Timings,
    bytes: &mut Bytes,
) -> Result<(TaskStatus, i32), RuntimeError> {
    let cache = Cache::new(&args.cache_dir);

    t.start("fetch");
    let pkg = cache.layers(&args.store, manifest).await?;
    bytes.downloaded += pkg.downloaded;
    let flow = &manifest.flow;
    let flow_name = flow.name.as_str();
    let step = flow.steps.get(&args.step).ok_or_else(|| {
        RuntimeError::Invalid(format!("flow '{flow_name}' has no step '{}'", args.step))
    })?;
    let params = resolve_params(flow, &args.params)?;
    if args.step == "start" {
        ensure_run_record(args, flow_name, &params).await?;
    }
    let work = tempfile::Builder::new()
        .prefix("task-")
        .tempdir_in(cache.tmp()?)
        .map_err(|e| RuntimeError::io(&args.cache_dir, e))?;
    let code_dir = work.path().join("code");
    copy_tree(&pkg.code, &code_dir)?;

    t.start("inputs");
    let input_dir = work.path().join("inputs");
    let output_dir = work.path().join("outputs");
    std::fs::create_dir_all(&output_dir).map_err(|e| RuntimeError::io(&output_dir, e))?;
    let restored = artifacts::restore(
        &args.store,
        &cache,
        flow_name,
        &args.run,
        &args.parents,
        step.settings.inputs.as_ref(),
        &input_dir,
    )
    .await?;
    bytes.downloaded += restored.downloaded;
    let split_item = split_item(args, flow, &restored.parents, &cache).await?;

    t.start("run");
    let env = child_env(
        args,
        flow_name,
        attempt,
        step,
        &params,
        &pkg,
        &input_dir,
        &output_dir,
        work.path(),
        split_item,
    )?;
    let ended = child::run(
        &step.run,
        &code_dir,
        &env,
        step.settings.timeout_seconds.map(Duration::from_secs),
        args.grace,
        signals,
        shipper,
    )
    .await;
    let code = match ended {
        Ended::Exited(0) => 0,
        Ended::Exited(c) => {
            shipper
                .line("flowpack", &format!("the step exited with code {c}"))
                .await;
            return Ok((TaskStatus::Failed, c));
        }
        Ended::NotStarted(c, msg) => {
            shipper.line("flowpack", &msg).await;
            eprintln!("flowpack step: {msg}");
            return Ok((TaskStatus::Failed, c));
        }
        Ended::TimedOut => return Ok((TaskStatus::TimedOut, EXIT_TIMEOUT)),
        Ended::Terminated => return Ok((TaskStatus::Terminated, EXIT_TERMINATED)),
    };

    t.start("outputs");
    // The switch and foreach values are checked before anything is committed.
    let route = route(step, &output_dir)?;
    let origin = format!("{}/{}/{attempt}", args.step, args.task);
    let up = artifacts::upload(
        &args.store,
        &cache,
        &output_dir,
        restored.inherited,
        &origin,
    )
    .await?;
    bytes.uploaded += up.uploaded;
    bytes.reused += up.reused;

    t.start("commit");
    commit(&args.store, prefix, &up.namespace).await?;
    write_output_params(args, route)?;
    Ok((TaskStatus::Succeeded, code))
}

/// Parameter values: given ones parsed by type, defaults for the rest.
pub fn resolve_params(
    flow: &Flow,
    given: &[(String, String)],
) -> Result<BTreeMap<String, serde_json::Value>, RuntimeError> {
    let mut out = BTreeMap::new();
    for (name, text) in given {
        let p = flow.parameters.get(name).ok_or_else(|| {
            let known: Vec<&str> = flow.parameters.keys().map(String::as_str).collect();
            RuntimeError::Invalid(format!(
                "flow '{}' has no parameter '{name}' (it has: {})",
                flow.name,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })?;
        let v =
            p.ty.parse_text(text)
                .map_err(|e| RuntimeError::Invalid(format!("parameter '{name}': {e}")))?;
        out.insert(name.clone(), v);
    }
    for (name, p) in &flow.parameters {
        if !out.contains_key(name) {
            match &p.default {
                Some(d) => {
                    out.insert(name.clone(), d.clone());
                }
                None => {
                    return Err(RuntimeError::Invalid(format!(
                        "parameter '{name}' has no default: give it with --param {name}=VALUE"
                    )));
                }
            }
        }
    }
    Ok(out)
}

async fn ensure_run_record(
    args: &StepArgs,
    flow: &str,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<(), RuntimeError> {
    let record = RunRecord {
        flow: flow.to_string(),
        run: args.run.clone(),
        package: args.package,
        parameters: params.clone(),
        origin: if args.run.starts_with("kfp-") {
            "kfp"
        } else {
            "local"
        }
        .to_string(),
        created_at: now(),
        created_by: format!("flowpack {}", env!("CARGO_PKG_VERSION")),
        resumed_from: None,
    };
    args.store
        .create_json(&layout::run_record(flow, &args.run), &record)
        .await?;
    Ok(())
}

/// For the first task of a foreach body: the item at its index in the parent's list.
async fn split_item(
    args: &StepArgs,
    flow: &Flow,
    parents: &[(TaskRef, Artifacts)],
    cache: &Cache,
) -> Result<Option<String>, RuntimeError> {
    let Some(index) = args.split_index else {
        return Ok(None);
    };
    for (p, arts) in parents {
        if let Some(Transition::Foreach { over, body }) = flow.steps.get(&p.step).map(|s| &s.next) {
            if body != &args.step {
                continue;
            }
            let a = arts
                .artifacts
                .get(over)
                .ok_or_else(|| RuntimeError::MissingInput {
                    artifact: over.clone(),
                    parents: p.to_string(),
                    hint: "the foreach step must write it".into(),
                })?;
            let list = artifacts::read_json(&args.store, cache, a).await?;
            let item = list
                .as_array()
                .and_then(|l| l.get(index as usize))
                .ok_or_else(|| {
                    RuntimeError::Invalid(format!("foreach list '{over}' has no item {index}"))
                })?;
            return Ok(Some(match item {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }));
        }
    }
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn child_env(
    args: &StepArgs,
    flow: &str,
    attempt: u32,
    step: &Step,
    params: &BTreeMap<String, serde_json::Value>,
    pkg: &crate::cache::Package,
    input_dir: &std::path::Path,
    output_dir: &std::path::Path,
    work: &std::path::Path,
    split_item: Option<String>,
) -> Result<BTreeMap<String, String>, RuntimeError> {
    use flowpack_core::env_vars as v;
    let params_file = work.join("params.json");
    std::fs::write(
        &params_file,
        serde_json::to_vec_pretty(params).expect("JSON values serialize"),
    )
    .map_err(|e| RuntimeError::io(&params_file, e))?;
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| RuntimeError::io(&tmp, e))?;
    let mut env = step.settings.env.clone();
    env.insert(v::FLOWPACK_FLOW.into(), flow.into());
    env.insert(v::FLOWPACK_RUN_ID.into(), args.run.clone());
    env.insert(v::FLOWPACK_STEP.into(), args.step.clone());
    env.insert(v::FLOWPACK_TASK_ID.into(), args.task.clone());
    env.insert(v::FLOWPACK_ATTEMPT.into(), attempt.to_string());
    env.insert(
        v::FLOWPACK_INPUT_DIR.into(),
        input_dir.display().to_string(),
    );
    env.insert(
        v::FLOWPACK_OUTPUT_DIR.into(),
        output_dir.display().to_string(),
    );
    env.insert(v::FLOWPACK_PARAMS.into(), params_file.display().to_string());
    env.insert("TMPDIR".into(), tmp.display().to_string());
    for (name, value) in params {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        env.insert(
            format!("{}{}", v::FLOWPACK_PARAM_PREFIX, name.to_uppercase()),
            text,
        );
    }
    if let Some(i) = args.split_index {
        env.insert(v::FLOWPACK_SPLIT_INDEX.into(), i.to_string());
    }
    if let Some(item) = split_item {
        env.insert(v::FLOWPACK_SPLIT_ITEM.into(), item);
    }
    if let Some(envdir) = &pkg.env {
        let mut path = envdir.display().to_string();
        if let Ok(old) = std::env::var("PYTHONPATH")
            && !old.is_empty()
        {
            path = format!("{path}:{old}");
        }
        env.insert("PYTHONPATH".into(), path);
    }
    Ok(env)
}

/// What a successful step tells the orchestrator.
enum Route {
    Plain,
    Foreach(usize),
    Switch(String),
}

fn route(step: &Step, output_dir: &std::path::Path) -> Result<Route, RuntimeError> {
    match &step.next {
        Transition::Foreach { over, .. } => {
            let path = output_dir.join(over);
            let text = std::fs::read(&path).map_err(|_| RuntimeError::MissingInput {
                artifact: over.clone(),
                parents: "this step's outputs".into(),
                hint: format!("a foreach step writes a JSON list to $FLOWPACK_OUTPUT_DIR/{over}"),
            })?;
            let list: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
                RuntimeError::Invalid(format!("foreach artifact '{over}' is not JSON: {e}"))
            })?;
            match list.as_array() {
                Some(l) if !l.is_empty() => Ok(Route::Foreach(l.len())),
                Some(_) => Err(RuntimeError::Invalid(format!(
                    "foreach artifact '{over}' is an empty list: nothing to fan out over"
                ))),
                None => Err(RuntimeError::Invalid(format!(
                    "foreach artifact '{over}' is not a JSON list"
                ))),
            }
        }
        Transition::Switch { on, cases } => {
            let path = output_dir.join(on);
            let text = std::fs::read_to_string(&path).map_err(|_| RuntimeError::MissingInput {
                artifact: on.clone(),
                parents: "this step's outputs".into(),
                hint: format!("a switch step writes its choice to $FLOWPACK_OUTPUT_DIR/{on}"),
            })?;
            let value = text.trim().trim_matches('"').to_string();
            if !cases.contains_key(&value) {
                let known: Vec<&str> = cases.keys().map(String::as_str).collect();
                return Err(RuntimeError::Invalid(format!(
                    "switch value '{value}' (artifact '{on}') is not one of the cases: {}",
                    known.join(", ")
                )));
            }
            Ok(Route::Switch(value))
        }
        _ => Ok(Route::Plain),
    }
}

async fn commit(store: &Store, prefix: &str, namespace: &Artifacts) -> Result<(), RuntimeError> {
    store
        .create_json(&format!("{prefix}artifacts.json"), namespace)
        .await?;
    Ok(())
}

fn write_output_params(args: &StepArgs, route: Route) -> Result<(), RuntimeError> {
    let write = |name: &str, value: String| -> Result<(), RuntimeError> {
        if let Some(path) = args.output_params.get(name) {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
            }
            std::fs::write(path, value).map_err(|e| RuntimeError::io(path, e))?;
        }
        Ok(())
    };
    write("task", format!("{}/{}", args.step, args.task))?;
    match route {
        // Indices as strings: KFP's loop items feed STRING inputs (`--task`).
        Route::Foreach(n) => write(
            "foreach",
            serde_json::to_string(&(0..n).map(|i| i.to_string()).collect::<Vec<_>>())
                .expect("a list"),
        )?,
        Route::Switch(v) => write("switch", v)?,
        Route::Plain => {}
    }
    Ok(())
}
