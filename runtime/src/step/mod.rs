//! `flowpack step`: one attempt of one task, as a fixed sequence of [`Phase`]s —
//!
//! claim -> fetch -> inputs -> run -> outputs -> commit -> report
//!
//! [`run_step`] is that list: claim the attempt, run the phases on one [`Task`] (the context
//! they share), then report — always, whatever the phases did, as KFP's launcher publishes
//! its status on exit. The same code runs in a KFP pod and under `flowpack run`. Every phase
//! is timed. The lifecycle record (`task.json`) is claimed create-only as attempt N+1 of the
//! task, after the arguments are checked against the package's flow, kept fresh by
//! heartbeats, and finished on every path — success, failure, timeout, a stop signal in any
//! phase — with the exit code, phase timings and bytes moved. Outputs are committed by
//! writing `artifacts.json` last, and only when the child succeeded.
//!
//! A stop signal ([`StopSignals`]: TERM, INT, HUP) ends the phase under way: fetch, inputs
//! and outputs are dropped where they stand (what they leave is invisible: blobs are named
//! by their content, the cache renames into place), the child is stopped within its grace
//! period, and the record says `terminated`. Two writes are never cut off, as that would
//! leave the store undecided: the claim's create and the commit. A task whose commit
//! started before the signal is committed, and `succeeded` (docs/runtime.md).

mod artifacts;
mod child;
mod hook;
mod logs;
mod on_demand;
pub mod parents;
pub mod reuse;
mod stop;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowpack_core::Digest;
use flowpack_core::flow::{Flow, Run, Step, Transition};
use flowpack_core::manifest::Manifest;
use flowpack_core::run::{
    Artifacts, Bytes, ReuseReason, RunRecord, TaskRecord, TaskRef, TaskStatus,
};
use flowpack_core::store::{Store, layout};
use futures::FutureExt;
use tokio::sync::Notify;

pub use artifacts::{committed, read_json as read_json_artifact};
pub use child::{ENV_VALUE_MAX, ENV_VALUES_TOTAL};
pub use stop::StopSignals;

use crate::RuntimeError;
use crate::cache::{Cache, Package, copy_tree};
use child::{Ended, EnvBudget};
use logs::LogShipper;

/// Exit code when flowpack itself failed (package, inputs, outputs, store).
pub const EXIT_STEP_ERROR: i32 = 125;
/// Exit code when the child ran past the step's timeout.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code when the task was stopped by SIGTERM, SIGINT or SIGHUP.
pub const EXIT_TERMINATED: i32 = 143;
/// Exit code of `flowpack step` when the child itself exited 124 or 125: those two codes
/// are flowpack's own ([`EXIT_TIMEOUT`], [`EXIT_STEP_ERROR`]), so a child's are not passed
/// through (the record keeps the child's own code; docs/runtime.md, "Exit codes").
pub const EXIT_CHILD_RESERVED: i32 = 1;

/// The exit code of `flowpack step` for an attempt that ended `status` with the record's
/// exit code `code` and flowpack's own `error`, if any: the same code, except that a
/// child's own 124 or 125 becomes [`EXIT_CHILD_RESERVED`].
pub fn process_exit_code(status: TaskStatus, code: i32, error: Option<&str>) -> i32 {
    let childs_own = status == TaskStatus::Failed && error.is_none();
    if childs_own && (code == EXIT_TIMEOUT || code == EXIT_STEP_ERROR) {
        EXIT_CHILD_RESERVED
    } else {
        code
    }
}
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
    /// Find the parents in the store ([`parents`]) and add them to `parents`.
    pub parents_from_store: bool,
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
    /// `--resume SPEC`: adopt this task from the origin run unless its step is redone.
    pub resume: Option<reuse::ResumeSpec>,
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

/// The phases of an attempt, in order. Their names are the keys of the record's `phases`
/// (docs/format.md) and appear in the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Check the arguments against the package's flow; create the attempt's record.
    Claim,
    /// The package's layers, into the node cache; the work folder.
    Fetch,
    /// The parents' artifacts, into the inputs folder.
    Inputs,
    /// The step cache looked up, or the task adopted from a resumed run.
    Reuse,
    /// The child process.
    Run,
    /// The outputs, uploaded as blobs.
    Outputs,
    /// `artifacts.json`: the commit point.
    Commit,
    /// The logs and the final record.
    Report,
}

impl Phase {
    /// The phase's name in records and logs.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Claim => "claim",
            Phase::Fetch => "fetch",
            Phase::Inputs => "inputs",
            Phase::Reuse => "reuse",
            Phase::Run => "run",
            Phase::Outputs => "outputs",
            Phase::Commit => "commit",
            Phase::Report => "report",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The attempt's figures for its record: seconds spent in each phase, by name, and bytes
/// moved.
#[derive(Default)]
struct Tally {
    phases: BTreeMap<String, f64>,
    current: Option<(Phase, Instant)>,
    bytes: Bytes,
}

impl Tally {
    fn start(&mut self, phase: Phase) {
        self.stop();
        self.current = Some((phase, Instant::now()));
    }

    fn stop(&mut self) {
        if let Some((p, t)) = self.current.take() {
            let secs = t.elapsed().as_secs_f64();
            // Added up: the fetch phase of an exit hook runs in two parts.
            let total = self.phases.entry(p.name().to_string()).or_default();
            *total = ((*total + secs) * 1e4).round() / 1e4;
        }
    }

    /// The phase under way, or the last one.
    fn phase(&self) -> Phase {
        self.current.map_or(Phase::Claim, |(p, _)| p)
    }
}

/// Runs one attempt of a task: claim, phases, report. Never panics on bad input; once the
/// attempt is claimed, its final record is written whatever happens in the phases.
pub async fn run_step(mut args: StepArgs, stop: StopSignals) -> StepOutcome {
    let mut tally = Tally::default();
    tally.start(Phase::Claim);
    if args.parents_from_store {
        match unless_stopped(&stop, parents_from_store(&args)).await {
            Ok(Ok(found)) => args.parents.extend(found),
            Ok(Err(e)) => return Unclaimed::Error(e).outcome(),
            Err(signal) => return Unclaimed::Stopped(signal).outcome(),
        }
    }
    let claimed = match claim(&args, &stop).await {
        Ok(c) => c,
        Err(e) => return e.outcome(),
    };
    let task = Task::start(&args, claimed, stop);
    // A bug in a phase still ends in the report (status failed), as any error does.
    let ended = std::panic::AssertUnwindSafe(task.phases(&mut tally))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(Halt::Error(RuntimeError::Bug(panic_message(&*panic)))));
    task.report(tally, ended).await
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// `work`, unless a stop signal comes first: then `work` is dropped where it stands and the
/// signal's name returned.
async fn unless_stopped<T>(
    stop: &StopSignals,
    work: impl Future<Output = T>,
) -> Result<T, &'static str> {
    tokio::select! {
        biased;
        signal = stop.received() => Err(signal),
        done = work => Ok(done),
    }
}

/// A line on this process's stderr (the pod log); a closed terminal is no error.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "flowpack step: {text}");
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A claimed attempt: what the phases start from.
struct Claimed {
    manifest: Manifest,
    attempt: u32,
    record: TaskRecord,
}

/// Why no attempt was claimed. Nothing was written to the store.
enum Unclaimed {
    Error(RuntimeError),
    Stopped(&'static str),
}

impl From<RuntimeError> for Unclaimed {
    fn from(e: RuntimeError) -> Self {
        Unclaimed::Error(e)
    }
}

impl Unclaimed {
    fn outcome(self) -> StepOutcome {
        let (status, exit_code, error) = match self {
            Unclaimed::Error(e) => {
                say(&format!("error: {e}"));
                (TaskStatus::Failed, EXIT_STEP_ERROR, Some(e.to_string()))
            }
            Unclaimed::Stopped(signal) => {
                say(&format!(
                    "{signal} received before the attempt was claimed: stopped, nothing written"
                ));
                (TaskStatus::Terminated, EXIT_TERMINATED, None)
            }
        };
        StepOutcome {
            status,
            exit_code,
            attempt: None,
            error,
        }
    }
}

/// The claim phase: checks the arguments against the package's flow, then claims the next
/// attempt by creating its `task.json`. Nothing is written before the checks pass. A stop
/// signal before the create ends the step with nothing written; the create itself is not cut
/// off (a stop then is seen by the first phase, and recorded).
async fn claim(args: &StepArgs, stop: &StopSignals) -> Result<Claimed, Unclaimed> {
    check_ids(args)?;
    let looked_up = async {
        let manifest = Cache::new(&args.cache_dir)
            .manifest(&args.store, &args.package)
            .await?;
        check_steps(args, &manifest.flow)?;
        let next = next_attempt(args, &manifest.flow.name).await?;
        Ok::<_, RuntimeError>((manifest, next))
    };
    let (manifest, next) = unless_stopped(stop, looked_up)
        .await
        .map_err(Unclaimed::Stopped)??;
    let (attempt, record) = create_record(args, &manifest.flow.name, next).await?;
    Ok(Claimed {
        manifest,
        attempt,
        record,
    })
}

/// The parents the store says this task has (before the claim: nothing is written when
/// they cannot be found).
async fn parents_from_store(args: &StepArgs) -> Result<Vec<TaskRef>, RuntimeError> {
    check_ids(args)?;
    let cache = Cache::new(&args.cache_dir);
    let manifest = cache.manifest(&args.store, &args.package).await?;
    let lookup = parents::Lookup {
        store: &args.store,
        cache: &cache,
        flow: &manifest.flow,
        run: &args.run,
    };
    parents::find(&lookup, &args.step, &args.task).await
}

/// The run and task ids become store keys: they must be ids.
fn check_ids(args: &StepArgs) -> Result<(), RuntimeError> {
    use flowpack_core::name::{NameKind, check};
    check(NameKind::Run, &args.run)
        .and_then(|()| check(NameKind::Task, &args.task))
        .map_err(|e| RuntimeError::Invalid(e.to_string()))
}

/// The step and the parents' steps become store keys: they must be steps of the flow.
fn check_steps(args: &StepArgs, flow: &Flow) -> Result<(), RuntimeError> {
    let missing = |step: &str| {
        RuntimeError::Invalid(format!(
            "flow '{}' has no step '{step}' (it has: {})",
            flow.name,
            flow.steps.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    };
    if !flow.steps.contains_key(&args.step) {
        return Err(missing(&args.step));
    }
    match args
        .parents
        .iter()
        .find(|p| !flow.steps.contains_key(&p.step))
    {
        Some(p) => Err(missing(&p.step)),
        None => Ok(()),
    }
}

/// The number after the task's highest attempt so far.
async fn next_attempt(args: &StepArgs, flow: &str) -> Result<u32, RuntimeError> {
    let task_prefix = layout::task(flow, &args.run, &args.step, &args.task);
    Ok(args
        .store
        .list_dirs(&task_prefix)
        .await?
        .iter()
        .filter_map(|a| a.parse::<u32>().ok())
        .max()
        .map_or(0, |m| m + 1))
}

/// Creates the record of attempt `next`, or the first free one after it.
async fn create_record(
    args: &StepArgs,
    flow: &str,
    mut next: u32,
) -> Result<(u32, TaskRecord), RuntimeError> {
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
            reuse_reason: None,
            cache_key: None,
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

/// Refreshes a record every [`HEARTBEAT_EVERY`] until stopped.
struct Heartbeat {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    fn spawn(store: Store, key: String, mut record: TaskRecord) -> Self {
        let stop = Arc::new(Notify::new());
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(HEARTBEAT_EVERY) => {
                        record.heartbeat_at = now();
                        let _ = store.put_json(&key, &record).await;
                    }
                    _ = stopped.notified() => return,
                }
            }
        });
        Self { stop, task }
    }

    /// Stops it; a write under way completes first, so no heartbeat can land after the
    /// final record.
    async fn stop(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

/// One claimed attempt: what its phases share, and what its report finishes.
struct Task<'a> {
    args: &'a StepArgs,
    manifest: Manifest,
    attempt: u32,
    /// The attempt's folder in the store (`…/<step>/<task>/<attempt>/`).
    prefix: String,
    cache: Cache,
    stop: StopSignals,
    shipper: LogShipper,
    flusher: tokio::task::JoinHandle<()>,
    heartbeat: Heartbeat,
    record: TaskRecord,
    /// Set when the task's outputs were taken over: from where, why, by which key.
    reused: std::sync::OnceLock<(String, ReuseReason, Option<Digest>)>,
    /// The cache key computed before the run, and whether the index entry for it was
    /// stale: written to the index after the commit.
    cache_key: std::sync::OnceLock<(Digest, bool)>,
}

/// Why the phases ended before the child's own end.
enum Halt {
    /// flowpack's own error.
    Error(RuntimeError),
    /// The command could not be started (exit code 126 or 127, and why).
    NotStarted(i32, String),
    /// A stop signal, in this phase (before anything was committed).
    Stopped(&'static str, Phase),
}

impl From<RuntimeError> for Halt {
    fn from(e: RuntimeError) -> Self {
        Halt::Error(e)
    }
}

/// Parameter values by name; defaults borrowed from the flow.
pub type Params<'f> = BTreeMap<String, Cow<'f, serde_json::Value>>;

/// What placing inputs on demand did while the child ran.
#[derive(Default)]
struct OnDemandUse {
    downloaded: u64,
    failure: Option<RuntimeError>,
}

/// The task's private folder (removed when dropped): the code, inputs, outputs, params
/// file and `TMPDIR`.
struct Work<'m> {
    dir: tempfile::TempDir,
    package: Package,
    params: Params<'m>,
    /// The run this run resumes, from its record (`FLOWPACK_ORIGIN_RUN_ID`).
    origin_run: Option<String>,
    /// What an exit hook is told about the run.
    hook: Option<hook::RunState>,
    /// The run's record says `--no-cache`.
    no_cache: bool,
}

impl Work<'_> {
    fn code(&self) -> PathBuf {
        self.dir.path().join("code")
    }
    fn inputs(&self) -> PathBuf {
        self.dir.path().join("inputs")
    }
    fn outputs(&self) -> PathBuf {
        self.dir.path().join("outputs")
    }
}

impl<'a> Task<'a> {
    /// Starts shipping logs and heartbeats for a claimed attempt.
    fn start(args: &'a StepArgs, c: Claimed, stop: StopSignals) -> Self {
        let prefix = layout::attempt(
            &c.manifest.flow.name,
            &args.run,
            &args.step,
            &args.task,
            c.attempt,
        );
        let shipper = LogShipper::new(args.store.clone(), &prefix);
        let flusher = shipper.spawn_flusher();
        let heartbeat = Heartbeat::spawn(
            args.store.clone(),
            format!("{prefix}task.json"),
            c.record.clone(),
        );
        Self {
            args,
            manifest: c.manifest,
            attempt: c.attempt,
            prefix,
            cache: Cache::new(&args.cache_dir),
            stop,
            shipper,
            flusher,
            heartbeat,
            record: c.record,
            reused: Default::default(),
            cache_key: Default::default(),
        }
    }

    fn step(&self) -> &Step {
        self.manifest
            .flow
            .steps
            .get(&self.args.step)
            .expect("the claim checked the step")
    }

    /// The phases after the claim. Returns the status and exit code, or why they stopped.
    async fn phases(&self, t: &mut Tally) -> Result<(TaskStatus, i32), Halt> {
        let hook = hook::RunState::read(self.args, &self.manifest.flow);
        let hook = self.stoppable(t, Phase::Fetch, hook).await?;
        if let Some(h) = &hook {
            self.log(&h.describe()).await;
            if h.skips() {
                return Ok((TaskStatus::Skipped, 0));
            }
        }
        let mut work = self.stoppable(t, Phase::Fetch, self.fetch()).await?;
        work.hook = hook;
        t.bytes.downloaded += work.package.downloaded;

        if self.stoppable(t, Phase::Reuse, self.reuse(&work)).await? {
            return Ok((TaskStatus::Reused, 0));
        }

        let (restored, split_item) = self.stoppable(t, Phase::Inputs, self.inputs(&work)).await?;
        t.bytes.downloaded += restored.downloaded;

        // Not cut off: on a stop signal `run` stops the child within its grace period.
        self.not_stopped(t)?;
        t.start(Phase::Run);
        let (ended, on_demand) = self
            .run(&work, split_item, restored.on_demand.as_ref())
            .await?;
        t.bytes.downloaded += on_demand.downloaded;
        if let Some(e) = on_demand.failure
            && !matches!(ended, Ended::Exited(0))
        {
            // The child failed after an input could not be placed: that is flowpack's
            // failure, as it would have been in an eager restore.
            return Err(Halt::Error(e));
        }
        match ended {
            Ended::Exited(0) => {}
            Ended::Exited(c) => {
                let hint = match (&self.step().run, c) {
                    (Run::Shell(_), 127) => {
                        ": the shell found no such command (its message is above)"
                    }
                    (Run::Shell(_), 126) => {
                        ": the shell could not execute a command (its message is above)"
                    }
                    _ => "",
                };
                self.log(&format!("the step exited with code {c}{hint}"))
                    .await;
                return Ok((TaskStatus::Failed, c));
            }
            Ended::NotStarted(c, msg) => return Err(Halt::NotStarted(c, msg)),
            Ended::TimedOut => return Ok((TaskStatus::TimedOut, EXIT_TIMEOUT)),
            Ended::Terminated => return Ok((TaskStatus::Terminated, EXIT_TERMINATED)),
        }

        let outputs = self.outputs(&work, restored.inherited);
        let (uploaded, route) = self.stoppable(t, Phase::Outputs, outputs).await?;
        t.bytes.uploaded += uploaded.uploaded;
        t.bytes.reused += uploaded.reused;

        // Not cut off: a create cut off might still land. Once it starts, it finishes.
        self.not_stopped(t)?;
        t.start(Phase::Commit);
        self.commit(&uploaded.namespace, route).await?;
        Ok((TaskStatus::Succeeded, 0))
    }

    /// Before a phase starts: a stop signal received so far (in a phase that is not cut
    /// off, or as the last one ended) stops the task there.
    fn not_stopped(&self, t: &Tally) -> Result<(), Halt> {
        match self.stop.pending() {
            Some(signal) => Err(Halt::Stopped(signal, t.phase())),
            None => Ok(()),
        }
    }

    /// Phase `phase`, doing `work` unless a stop signal comes first.
    async fn stoppable<T>(
        &self,
        t: &mut Tally,
        phase: Phase,
        work: impl Future<Output = Result<T, RuntimeError>>,
    ) -> Result<T, Halt> {
        self.not_stopped(t)?;
        t.start(phase);
        match unless_stopped(&self.stop, work).await {
            Ok(done) => Ok(done?),
            Err(signal) => Err(Halt::Stopped(signal, phase)),
        }
    }

    async fn log(&self, text: &str) {
        self.shipper.line("flowpack", text).await;
    }

    /// The package's layers (the code and this step's env layer); the parameters; the run record (by `start`); the work folder
    /// with the code.
    async fn fetch(&self) -> Result<Work<'_>, RuntimeError> {
        let package = self
            .cache
            .layers(&self.args.store, &self.manifest, &self.args.step)
            .await?;
        let params = resolve_params(&self.manifest.flow, &self.args.params)?;
        if self.args.step == "start" {
            ensure_run_record(self.args, &self.manifest.flow.name, &params).await?;
        }
        let (origin_run, no_cache) = origin_run(self.args, &self.manifest.flow.name).await?;
        let dir = tempfile::Builder::new()
            .prefix("task-")
            .tempdir_in(self.cache.tmp()?)
            .map_err(|e| RuntimeError::io(&self.args.cache_dir, e))?;
        let code_dir = dir.path().join("code");
        copy_tree(&package.code, &code_dir)?;
        Ok(Work {
            dir,
            package,
            params,
            origin_run,
            hook: None,
            no_cache,
        })
    }

    /// The parents' artifacts into the inputs folder; the foreach item.
    async fn inputs(
        &self,
        work: &Work<'_>,
    ) -> Result<(artifacts::Restored, Option<String>), RuntimeError> {
        let output_dir = work.outputs();
        std::fs::create_dir_all(&output_dir).map_err(|e| RuntimeError::io(&output_dir, e))?;
        let restored = artifacts::restore(
            &self.args.store,
            &self.cache,
            &self.manifest.flow.name,
            &self.args.run,
            &self.args.parents,
            &self.step().settings,
            &work.inputs(),
        )
        .await?;
        let item = split_item(
            self.args,
            &self.manifest.flow,
            &restored.parents,
            &self.cache,
        )
        .await?;
        Ok((restored, item))
    }

    /// The child, to its end (it handles a stop signal itself: the child gets its grace),
    /// with its inputs placed on demand while it runs when the step has `lazy_inputs`.
    async fn run(
        &self,
        work: &Work<'_>,
        split_item: Option<String>,
        on_demand: Option<&on_demand::OnDemand>,
    ) -> Result<(Ended, OnDemandUse), RuntimeError> {
        let mut env = self.child_env(work, split_item).await?;
        let step = self.step();
        let server = on_demand.map(|_| on_demand::Server::bind()).transpose()?;
        if let Some(server) = &server {
            env.insert(
                flowpack_core::env_vars::FLOWPACK_INPUTS_SOCKET.into(),
                server.path().display().to_string(),
            );
        }
        let code = work.code();
        let child = child::run(
            &step.run,
            &code,
            &env,
            step.settings.timeout_seconds.map(Duration::from_secs),
            self.args.grace,
            &self.stop,
            &self.shipper,
        );
        let (Some(server), Some(od)) = (&server, on_demand) else {
            return Ok((child.await, OnDemandUse::default()));
        };
        let ended = tokio::select! {
            ended = child => ended,
            () = server.serve(od, &self.args.store, &self.cache) => unreachable!("serves until dropped"),
        };
        let used = OnDemandUse {
            downloaded: server.downloaded(),
            failure: server.failure(),
        };
        Ok((ended, used))
    }

    /// The switch or foreach value checked, then the outputs uploaded.
    async fn outputs(
        &self,
        work: &Work<'_>,
        inherited: Artifacts,
    ) -> Result<(artifacts::Uploaded, Route), RuntimeError> {
        let route = route(self.step(), &work.outputs())?;
        let origin = format!("{}/{}/{}", self.args.step, self.args.task, self.attempt);
        let uploaded =
            artifacts::upload(&self.args.store, &work.outputs(), inherited, &origin).await?;
        Ok((uploaded, route))
    }

    /// `artifacts.json`, created once: the commit point. Then the KFP output parameters.
    async fn commit(&self, namespace: &Artifacts, route: Route) -> Result<(), RuntimeError> {
        self.args
            .store
            .create_json(&format!("{}artifacts.json", self.prefix), namespace)
            .await?;
        write_output_params(self.args, route)?;
        self.index().await;
        Ok(())
    }

    /// The report phase, whatever the phases did: the heartbeat stopped, the logs shipped,
    /// the final record written. Nothing here is cut off by a signal.
    async fn report(self, mut t: Tally, ended: Result<(TaskStatus, i32), Halt>) -> StepOutcome {
        t.stop();
        let (status, exit_code, error) = match ended {
            Ok((status, code)) => (status, code, None),
            Err(Halt::Stopped(signal, phase)) => {
                let msg = format!("{signal} received during {phase}: stopped, nothing committed");
                self.log(&msg).await;
                say(&msg);
                (TaskStatus::Terminated, EXIT_TERMINATED, None)
            }
            Err(Halt::Error(e)) => {
                let msg = e.to_string();
                self.log(&format!("error: {msg}")).await;
                say(&format!("error: {msg}"));
                (TaskStatus::Failed, EXIT_STEP_ERROR, Some(msg))
            }
            Err(Halt::NotStarted(code, msg)) => {
                self.log(&msg).await;
                say(&msg);
                (TaskStatus::Failed, code, Some(msg))
            }
        };
        if status == TaskStatus::Succeeded
            && let Some(signal) = self.stop.pending()
        {
            self.log(&format!(
                "{signal} received once the commit had started: the outputs are committed, \
                 the task succeeded"
            ))
            .await;
        }
        t.start(Phase::Report);
        self.heartbeat.stop().await;
        let log_error = match self.shipper.finish(self.flusher).await {
            Ok(n) => {
                t.bytes.uploaded += n;
                None
            }
            Err(e) => Some(format!("logs could not be stored: {e}")),
        };
        t.stop();
        let mut record = self.record;
        record.status = status;
        record.exit_code = Some(exit_code);
        record.error = error.clone().or(log_error);
        record.finished_at = Some(now());
        record.heartbeat_at = now();
        record.phases = t.phases;
        record.bytes = t.bytes;
        if let Some((from, reason, key)) = self.reused.get() {
            record.reused_from = Some(from.clone());
            record.reuse_reason = Some(*reason);
            record.cache_key = key.map(|k| k.hex());
        }
        if let Err(e) = self
            .args
            .store
            .put_json(&format!("{}task.json", self.prefix), &record)
            .await
        {
            say(&format!(
                "error: the final task record could not be written: {e}"
            ));
        }
        StepOutcome {
            status,
            exit_code: process_exit_code(status, exit_code, error.as_deref()),
            attempt: Some(self.attempt),
            error,
        }
    }

    /// The child's environment (docs/runtime.md, "What the child sees"). Every parameter is
    /// in the `$FLOWPACK_PARAMS` file; as a `FLOWPACK_PARAM_<NAME>` variable too while it
    /// fits the [`EnvBudget`], so no flow can make the child's environment too large to start
    /// (E2BIG). What is left out is said in the log.
    async fn child_env(
        &self,
        work: &Work<'_>,
        split_item: Option<String>,
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        use flowpack_core::env_vars as v;
        let params_file = work.dir.path().join("params.json");
        write_json_file(&params_file, &work.params)?;
        let tmp = work.dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| RuntimeError::io(&tmp, e))?;
        let mut env = self.step().settings.env.clone();
        let mut set = |k: &str, v: String| env.insert(k.into(), v);
        set(v::FLOWPACK_FLOW, self.manifest.flow.name.clone());
        set(v::FLOWPACK_RUN_ID, self.args.run.clone());
        set(v::FLOWPACK_STEP, self.args.step.clone());
        set(v::FLOWPACK_TASK_ID, self.args.task.clone());
        set(v::FLOWPACK_ATTEMPT, self.attempt.to_string());
        set(v::FLOWPACK_INPUT_DIR, work.inputs().display().to_string());
        set(v::FLOWPACK_OUTPUT_DIR, work.outputs().display().to_string());
        set(v::FLOWPACK_PARAMS, params_file.display().to_string());
        set("TMPDIR", tmp.display().to_string());
        if let Some(i) = self.args.split_index {
            set(v::FLOWPACK_SPLIT_INDEX, i.to_string());
        }
        // flowpack's own Python package first (the step's own binary writes out its own
        // copy: under --containers the image's), then the step's env layer (its own
        // `python_env`, else the flow's), then what was there.
        let python = flowpack_core::python::materialize(&self.args.cache_dir)
            .map_err(|e| RuntimeError::io(&e.path, e.source))?;
        let mut path = python.display().to_string();
        if let Some(envdir) = &work.package.env {
            path = format!("{path}:{}", envdir.display());
        }
        if let Ok(old) = std::env::var("PYTHONPATH")
            && !old.is_empty()
        {
            path = format!("{path}:{old}");
        }
        set("PYTHONPATH", path);
        let exe = std::env::current_exe()
            .map_err(|e| RuntimeError::io(Path::new("/proc/self/exe"), e))?;
        set(v::FLOWPACK_BIN, exe.display().to_string());
        set(v::FLOWPACK_STORE, self.args.store.url().to_string());
        set(v::FLOWPACK_PARENTS, parents_json(&self.args.parents));
        if let Some(origin) = &work.origin_run {
            set(v::FLOWPACK_ORIGIN_RUN_ID, origin.clone());
        }
        let mut budget = EnvBudget::default();
        let mut left_out = Vec::new();
        if let Some(h) = &work.hook {
            let file = work.dir.path().join("failed_tasks.json");
            write_json_file(&file, &h.failed_tasks)?;
            env.extend(hook::fixed_env(h, &file));
            match budget.take(v::FLOWPACK_FAILED_TASKS, &h.failed_json()) {
                Ok(text) => {
                    env.insert(v::FLOWPACK_FAILED_TASKS.into(), text);
                }
                Err(why) => left_out.push(format!(
                    "the failed tasks are not in ${}: {why}; read them from ${}",
                    v::FLOWPACK_FAILED_TASKS,
                    v::FLOWPACK_FAILED_TASKS_FILE
                )),
            }
        }
        if let Some(item) = split_item {
            let value = serde_json::Value::String(item);
            match budget.take(v::FLOWPACK_SPLIT_ITEM, &value) {
                Ok(text) => {
                    env.insert(v::FLOWPACK_SPLIT_ITEM.into(), text);
                }
                Err(why) => left_out.push(format!(
                    "the foreach item is not in ${}: {why}; read item ${} of the foreach list \
                     in $FLOWPACK_INPUT_DIR",
                    v::FLOWPACK_SPLIT_ITEM,
                    v::FLOWPACK_SPLIT_INDEX
                )),
            }
        }
        for (name, value) in &work.params {
            let var = format!("{}{}", v::FLOWPACK_PARAM_PREFIX, name.to_uppercase());
            match budget.take(&var, value) {
                Ok(text) => {
                    env.insert(var, text);
                }
                Err(why) => left_out.push(format!(
                    "parameter '{name}' is not in ${var}: {why}; read it from ${}",
                    v::FLOWPACK_PARAMS
                )),
            }
        }
        for line in left_out {
            self.log(&line).await;
        }
        Ok(env)
    }
}

/// Writes `value` as pretty JSON to `path`, streaming (a large value is not copied first).
fn write_json_file(path: &Path, value: &impl serde::Serialize) -> Result<(), RuntimeError> {
    let file = std::fs::File::create(path).map_err(|e| RuntimeError::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| RuntimeError::io(path, e.into()))?;
    out.flush().map_err(|e| RuntimeError::io(path, e))
}

/// Parameter values: given ones parsed by type, defaults for the rest (borrowed from the
/// flow: a large default is not copied).
pub fn resolve_params<'f>(
    flow: &'f Flow,
    given: &[(String, String)],
) -> Result<Params<'f>, RuntimeError> {
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
        out.insert(name.clone(), Cow::Owned(v));
    }
    for (name, p) in &flow.parameters {
        if !out.contains_key(name) {
            match &p.default {
                Some(d) => {
                    out.insert(name.clone(), Cow::Borrowed(d));
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

/// The run record, if `flowpack run` did not write it (a KFP run): created by `start`.
async fn ensure_run_record(
    args: &StepArgs,
    flow: &str,
    params: &Params<'_>,
) -> Result<(), RuntimeError> {
    let record = RunRecord {
        flow: flow.to_string(),
        run: args.run.clone(),
        package: args.package,
        parameters: params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into_owned()))
            .collect(),
        origin: flowpack_core::run::origin_of(&args.run).to_string(),
        created_at: now(),
        created_by: format!("flowpack {}", env!("CARGO_PKG_VERSION")),
        resumed_from: args.resume.as_ref().map(|r| r.run.clone()),
        no_cache: false,
    };
    args.store
        .create_json(&layout::run_record(flow, &args.run), &record)
        .await?;
    Ok(())
}

/// The run this one resumes, as its run record says (None without a record — a task run
/// by hand — or when the run is no resume), and whether the record says `--no-cache`.
async fn origin_run(args: &StepArgs, flow: &str) -> Result<(Option<String>, bool), RuntimeError> {
    match args
        .store
        .get_json::<RunRecord>(&layout::run_record(flow, &args.run))
        .await
    {
        Ok(r) => Ok((r.resumed_from, r.no_cache)),
        Err(e) if e.is_not_found() => Ok((None, false)),
        Err(e) => Err(e.into()),
    }
}

/// `FLOWPACK_PARENTS`: the parents as a JSON list of `"STEP/TASK"`, in the order of the
/// inputs layout; the tasks of a foreach (one step, several tasks) by index, whatever order
/// they were given in.
fn parents_json(parents: &[TaskRef]) -> String {
    let mut list: Vec<&TaskRef> = parents.iter().collect();
    if list.len() > 1 && list.iter().all(|p| p.step == list[0].step) {
        let key = |t: &TaskRef| -> Vec<u64> {
            flowpack_core::name::split_visit(&t.task)
                .0
                .split('.')
                .map(|i| i.parse().unwrap_or(u64::MAX))
                .collect()
        };
        list.sort_by_key(|p| key(p));
    }
    let names: Vec<String> = list.iter().map(|p| p.to_string()).collect();
    serde_json::to_string(&names).expect("strings serialize")
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

/// What a successful step tells the orchestrator.
pub enum Route {
    /// On to the next step(s).
    Plain,
    /// A foreach over a list of this many items.
    Foreach(usize),
    /// The value, and the index of its target in `Transition::targets`.
    Switch(String, usize),
}

impl Route {
    /// The route of switch `step` on `value`: an error when no case has that value.
    fn switch(step: &Step, on: &str, value: String) -> Result<Route, RuntimeError> {
        let Transition::Switch { cases, .. } = &step.next else {
            unreachable!("only switch steps route by value")
        };
        let Some(chosen) = cases.get(&value) else {
            let known: Vec<&str> = cases.keys().map(String::as_str).collect();
            return Err(RuntimeError::Invalid(format!(
                "switch value '{value}' (artifact '{on}') is not one of the cases: {}",
                known.join(", ")
            )));
        };
        let target = step
            .next
            .targets()
            .iter()
            .position(|t| *t == chosen)
            .expect("a case's step is a target");
        Ok(Route::Switch(value, target))
    }
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
        Transition::Switch { on, .. } => {
            let path = output_dir.join(on);
            let text = std::fs::read_to_string(&path).map_err(|_| RuntimeError::MissingInput {
                artifact: on.clone(),
                parents: "this step's outputs".into(),
                hint: format!("a switch step writes its choice to $FLOWPACK_OUTPUT_DIR/{on}"),
            })?;
            Route::switch(step, on, text.trim().trim_matches('"').to_string())
        }
        _ => Ok(Route::Plain),
    }
}

/// Writes output parameter `name`, if the step was asked to.
fn write_output_param(args: &StepArgs, name: &str, value: &str) -> Result<(), RuntimeError> {
    if let Some(path) = args.output_params.get(name) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
        }
        std::fs::write(path, value).map_err(|e| RuntimeError::io(path, e))?;
    }
    Ok(())
}

fn write_output_params(args: &StepArgs, route: Route) -> Result<(), RuntimeError> {
    let write = |name: &str, value: String| write_output_param(args, name, &value);
    write("task", format!("{}/{}", args.step, args.task))?;
    match route {
        // Indices as strings: KFP's loop items feed STRING inputs (`--task`).
        Route::Foreach(n) => write(
            "foreach",
            serde_json::to_string(&(0..n).map(|i| i.to_string()).collect::<Vec<_>>())
                .expect("a list"),
        )?,
        Route::Switch(v, target) => {
            write("switch", v)?;
            write("branch", target.to_string())?;
        }
        Route::Plain => {}
    }
    Ok(())
}
