//! `flowpack run`: the local dry-run. It pushes the flow (reusing `push`), plans the graph,
//! and runs every task by spawning `flowpack step` with the same arguments a KFP pod gets —
//! branches and foreach children in parallel up to `max_workers`, switches routed by the
//! step's own output parameter, retries as the flow says. The dry-run is the production
//! path with a local folder as the store and local processes — or, with `--containers`,
//! podman containers of each step's image ([`crate::podman`]) — as pods.
//!
//! A stop signal (TERM, INT or HUP: `kill`, Ctrl-C, a closed terminal) ends the run
//! cleanly: nothing new starts, every running step gets SIGTERM (it stops its child and
//! writes its final record), and `run` returns once they have all ended.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowpack_core::Digest;
use flowpack_core::flow::{Flow, Transition};
use flowpack_core::invocation::{RunId, StepInvocation};
use flowpack_core::run::{RunRecord, TaskRef, TaskStatus};
use flowpack_core::store::{Created, Store, layout};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::task::JoinSet;

use crate::RuntimeError;
use crate::podman::Podman;
use crate::step::StopSignals;

/// How each task's `flowpack step` is started.
pub enum Launcher {
    /// As a child process of this binary.
    Process(PathBuf),
    /// In its step's image, through podman.
    Containers(Podman),
}

/// What to run and how.
pub struct RunOptions {
    /// The store.
    pub store: Store,
    /// The package (already pushed).
    pub package: Digest,
    /// The flow of the package.
    pub flow: Flow,
    /// The run id (`local-…`).
    pub run: String,
    /// Parameter values as given (`name=text`).
    pub params: Vec<(String, String)>,
    /// Tasks at once; None: the flow's `max_workers`.
    pub max_workers: Option<usize>,
    /// The cache folder the tasks share.
    pub cache_dir: PathBuf,
    /// How tasks are started.
    pub launcher: Launcher,
    /// Tasks already done (a resumed run's reused tasks): their routes.
    pub done: BTreeMap<TaskRef, Option<String>>,
    /// The run this one resumes.
    pub resumed_from: Option<String>,
    /// `--no-cache`: the run record says so, and no task reuses a cached one.
    pub no_cache: bool,
}

/// Receives the live output of a run.
pub trait RunReporter: Send + Sync {
    /// A line printed by a task.
    fn line(&self, task: &TaskRef, text: &str);
    /// A task ended (after its retries).
    fn finished(&self, task: &TaskSummary);
}

/// One task of a finished run.
#[derive(Clone, Debug, Serialize)]
pub struct TaskSummary {
    /// The task.
    pub task: String,
    /// Its final status.
    pub status: TaskStatus,
    /// Attempts made by this run (0 for reused tasks).
    pub attempts: u32,
    /// The last attempt's exit code.
    pub exit_code: Option<i32>,
    /// Wall seconds, retries included.
    pub seconds: f64,
}

/// A finished run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run: String,
    /// The flow.
    pub flow: String,
    /// The package.
    pub package: Digest,
    /// Whether every task that ran succeeded and `end` was reached.
    pub succeeded: bool,
    /// Tasks in the order they ended.
    pub tasks: Vec<TaskSummary>,
    /// Wall seconds.
    pub seconds: f64,
    /// The stop signal that ended the run early (`SIGINT`, `SIGTERM`, `SIGHUP`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Frame {
    Split { branch: usize, count: usize },
    Foreach { index: usize, count: usize },
}

#[derive(Clone, Debug)]
struct Planned {
    task: TaskRef,
    parents: Vec<TaskRef>,
    frames: Vec<Frame>,
}

impl Planned {
    fn split_index(&self) -> Option<u64> {
        self.frames.iter().rev().find_map(|f| match f {
            Frame::Foreach { index, .. } => Some(*index as u64),
            Frame::Split { .. } => None,
        })
    }
}

fn task_id(frames: &[Frame]) -> String {
    let idx: Vec<String> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Foreach { index, .. } => Some(index.to_string()),
            Frame::Split { .. } => None,
        })
        .collect();
    if idx.is_empty() {
        "0".into()
    } else {
        idx.join(".")
    }
}

struct Planner<'a> {
    flow: &'a Flow,
    ready: VecDeque<Planned>,
    /// (join step, frames outside) -> arrived parents by position.
    joins: HashMap<(String, String), (usize, BTreeMap<usize, TaskRef>)>,
    /// (step, foreach indices) -> visits planned so far: a recursive switch runs a step
    /// again, as a new task (`3-1`, `3-2`: [`flowpack_core::name::task_visit`]).
    visits: HashMap<(String, String), u32>,
}

impl Planner<'_> {
    /// Plans what follows `done`, whose step routed as `route` (foreach count or switch case).
    fn after(&mut self, done: &Planned, route: Option<&str>) -> Result<(), RuntimeError> {
        let step = &self.flow.steps[&done.task.step];
        match &step.next {
            Transition::End => {}
            Transition::Linear(t) => self.to(t, done, done.frames.clone())?,
            Transition::Split(ts) => {
                for (i, t) in ts.iter().enumerate() {
                    let mut f = done.frames.clone();
                    f.push(Frame::Split {
                        branch: i,
                        count: ts.len(),
                    });
                    self.to(t, done, f)?;
                }
            }
            Transition::Foreach { body, .. } => {
                let n: usize = route.and_then(|r| r.parse().ok()).ok_or_else(|| {
                    RuntimeError::Invalid(format!("task {} gave no foreach count", done.task))
                })?;
                for i in 0..n {
                    let mut f = done.frames.clone();
                    f.push(Frame::Foreach { index: i, count: n });
                    self.to(body, done, f)?;
                }
            }
            Transition::Switch { cases, .. } => {
                let case = route.unwrap_or_default();
                let t = cases.get(case).ok_or_else(|| {
                    RuntimeError::Invalid(format!("task {} chose unknown case '{case}'", done.task))
                })?;
                self.to(t, done, done.frames.clone())?;
            }
        }
        Ok(())
    }

    /// The task of the next visit of `step` at `frames`; an error past the flow's
    /// `max_visits`.
    fn visit(&mut self, step: &str, frames: &[Frame]) -> Result<TaskRef, RuntimeError> {
        let base = task_id(frames);
        let n = self.visits.entry((step.into(), base.clone())).or_default();
        if *n >= self.flow.visit_limit() {
            return Err(RuntimeError::Invalid(format!(
                "step '{step}' would run a {}th time (task {step}/{}): the flow's `max_visits` is {}; \
                 a recursive switch that loops this often is stuck, or give the flow a larger `max_visits`",
                *n + 1,
                flowpack_core::name::task_visit(&base, *n),
                self.flow.visit_limit()
            )));
        }
        *n += 1;
        Ok(TaskRef {
            step: step.into(),
            task: flowpack_core::name::task_visit(&base, *n - 1),
        })
    }

    fn to(
        &mut self,
        step: &str,
        parent: &Planned,
        mut frames: Vec<Frame>,
    ) -> Result<(), RuntimeError> {
        if !self.flow.steps[step].join {
            let task = self.visit(step, &frames)?;
            self.ready.push_back(Planned {
                task,
                parents: vec![parent.task.clone()],
                frames,
            });
            return Ok(());
        }
        let closed = frames
            .pop()
            .expect("validation: a join closes an open split");
        let (count, position) = match closed {
            Frame::Split { branch, count } => (count, branch),
            Frame::Foreach { index, count } => (count, index),
        };
        let key = (step.to_string(), task_id(&frames));
        let entry = self
            .joins
            .entry(key.clone())
            .or_insert_with(|| (count, BTreeMap::new()));
        entry.1.insert(position, parent.task.clone());
        if entry.1.len() == entry.0 {
            let (_, arrived) = self.joins.remove(&key).expect("just seen");
            let task = self.visit(step, &frames)?;
            self.ready.push_back(Planned {
                task,
                parents: arrived.into_values().collect(),
                frames,
            });
        }
        Ok(())
    }
}

/// Runs the whole flow. Returns when every started task has ended.
pub async fn run(
    opts: RunOptions,
    reporter: Arc<dyn RunReporter>,
) -> Result<RunSummary, RuntimeError> {
    let started = Instant::now();
    let stop = StopSignals::install()
        .map_err(|e| RuntimeError::Invalid(format!("cannot install the signal handlers: {e}")))?;
    let flow = &opts.flow;
    let params = crate::step::resolve_params(flow, &opts.params)?;
    let record = RunRecord {
        flow: flow.name.clone(),
        run: opts.run.clone(),
        package: opts.package,
        parameters: params
            .into_iter()
            .map(|(k, v)| (k, v.into_owned()))
            .collect(),
        origin: "local".into(),
        created_at: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        created_by: format!("flowpack {}", env!("CARGO_PKG_VERSION")),
        resumed_from: opts.resumed_from.clone(),
        no_cache: opts.no_cache,
    };
    // Create-only: a run id that is taken (two runs in one second whose random parts
    // agree) must not add tasks to the other run.
    if let Created::Existed(_) = opts
        .store
        .create_json(&layout::run_record(&flow.name, &opts.run), &record)
        .await?
    {
        return Err(RuntimeError::Invalid(format!(
            "run {} of flow {} exists already in the store; start the run again",
            opts.run, flow.name
        )));
    }

    let workers = opts.max_workers.unwrap_or(flow.max_workers as usize).max(1);
    let mut planner = Planner {
        flow,
        ready: VecDeque::new(),
        joins: HashMap::new(),
        visits: HashMap::new(),
    };
    let start = planner.visit("start", &[])?;
    planner.ready.push_back(Planned {
        task: start,
        parents: vec![],
        frames: vec![],
    });
    let scratch = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(crate::cache::Cache::new(&opts.cache_dir).tmp()?)
        .map_err(|e| RuntimeError::io(&opts.cache_dir, e))?;
    if let Launcher::Containers(podman) = &opts.launcher {
        podman.prepare_images(flow).await?;
    }
    let shared = Arc::new(Shared {
        store: opts.store.clone(),
        record,
        flow: flow.clone(),
        store_url: opts.store.url().to_string(),
        package: opts.package,
        run: opts.run.clone(),
        params: opts.params.clone(),
        cache_dir: opts.cache_dir.clone(),
        python: match opts.launcher {
            Launcher::Process(_) => resolved_python(flow),
            Launcher::Containers(_) => None,
        },
        launcher: opts.launcher,
        scratch: scratch.path().to_path_buf(),
    });
    let mut running: JoinSet<(Planned, TaskSummary, Option<String>)> = JoinSet::new();
    let mut summaries = Vec::new();
    let mut failed = false;
    let mut reached_end = false;
    let mut interrupted = false;
    loop {
        while !failed && running.len() < workers {
            let Some(p) = planner.ready.pop_front() else {
                break;
            };
            if let Some(route) = opts.done.get(&p.task) {
                // Reused from an earlier run: committed already.
                let s = TaskSummary {
                    task: p.task.to_string(),
                    status: TaskStatus::Reused,
                    attempts: 0,
                    exit_code: Some(0),
                    seconds: 0.0,
                };
                reporter.finished(&s);
                summaries.push(s);
                reached_end |= p.task.step == "end";
                let route = route.clone();
                planner.after(&p, route.as_deref())?;
                continue;
            }
            let retry = flow.steps[&p.task.step].settings.retry.clone();
            let (shared, reporter, stop) = (shared.clone(), reporter.clone(), stop.clone());
            running.spawn(async move {
                run_task(
                    p,
                    retry.times,
                    retry.delay_seconds,
                    &shared,
                    reporter.as_ref(),
                    &stop,
                )
                .await
            });
        }
        let joined = tokio::select! {
            j = running.join_next() => j,
            signal = stop.received(), if !interrupted => {
                // Each running task sends its step SIGTERM (see `run_task`): the steps stop
                // their children and write their records. Start nothing new; wait for them.
                interrupted = true;
                failed = true;
                tracing::warn!("{signal} received: stopping the running tasks");
                continue;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (p, summary, route) = joined.expect("a task runner does not panic");
        reporter.finished(&summary);
        if summary.status.is_success() {
            reached_end |= p.task.step == "end";
            if let Err(e) = planner.after(&p, route.as_deref()) {
                tracing::error!("{e}");
                failed = true;
            }
        } else {
            failed = true;
        }
        summaries.push(summary);
    }
    if !interrupted {
        let ended = run_hooks(&shared, reporter.as_ref(), &stop).await;
        summaries.extend(ended);
    }
    Ok(RunSummary {
        run: opts.run.clone(),
        flow: flow.name.clone(),
        package: opts.package,
        succeeded: !failed && reached_end,
        tasks: summaries,
        seconds: started.elapsed().as_secs_f64(),
        stopped_by: if interrupted { stop.pending() } else { None },
    })
}

/// The exit hooks, one after the other (`on_failure`, then `on_exit`), once every other
/// task ended; not after a stop signal (the user asked the run to stop). Each is a plain
/// task with no parents: the step reads the run's status itself, and skips an `on_failure`
/// hook of a run that succeeded (its summary says `skipped` as its record does). A hook
/// that fails is reported; the run's status stays the flow's.
async fn run_hooks(
    shared: &Shared,
    reporter: &dyn RunReporter,
    stop: &StopSignals,
) -> Vec<TaskSummary> {
    let mut summaries = Vec::new();
    for (kind, hook) in shared.flow.hooks() {
        let p = Planned {
            task: TaskRef {
                step: hook.into(),
                task: "0".into(),
            },
            parents: vec![],
            frames: vec![],
        };
        let retry = &shared.flow.steps[hook].settings.retry;
        let (_, summary, _) =
            run_task(p, retry.times, retry.delay_seconds, shared, reporter, stop).await;
        reporter.finished(&summary);
        if !summary.status.is_success() {
            tracing::warn!(
                "the `{}` hook {} ended {:?}: the run's status is the flow's",
                kind.key(),
                summary.task,
                summary.status
            );
        }
        summaries.push(summary);
    }
    summaries
}

struct Shared {
    store: Store,
    /// The run's record: where its tasks' records are.
    record: RunRecord,
    flow: Flow,
    store_url: String,
    package: Digest,
    run: String,
    params: Vec<(String, String)>,
    cache_dir: PathBuf,
    /// `$FLOWPACK_PYTHON` for the tasks, when [`resolved_python`] found one.
    python: Option<std::ffi::OsString>,
    launcher: Launcher,
    scratch: PathBuf,
}

/// The interpreter behind `python3`, resolved once per run for flows whose steps run
/// `$FLOWPACK_PYTHON` (Python flows) when it is not set: `python3` on `PATH` is often a
/// launcher script — pyenv's shim costs ~75 ms a start on the machine of bench/python.sh,
/// the interpreter behind it ~10 ms — and every task would pay it. None when it is set, the
/// flow does not use it, or Python cannot say (the tasks then fall back to `python3`).
fn resolved_python(flow: &Flow) -> Option<std::ffi::OsString> {
    use flowpack_core::env_vars::FLOWPACK_PYTHON;
    let uses_it = flow.steps.values().any(|s| match &s.run {
        flowpack_core::flow::Run::Shell(text) => text.contains(FLOWPACK_PYTHON),
        flowpack_core::flow::Run::Exec(args) => args.iter().any(|a| a.contains(FLOWPACK_PYTHON)),
    });
    if !uses_it || std::env::var_os(FLOWPACK_PYTHON).is_some() {
        return None;
    }
    let out = std::process::Command::new(flowpack_core::flow::python::python_program())
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = path.trim();
    (out.status.success() && std::path::Path::new(path).is_absolute()).then(|| path.into())
}

/// The status of an attempt that wrote no record (the step stopped, or failed, before it
/// claimed one): stopped when a stop signal came, else failed.
fn unrecorded(stop: &StopSignals) -> TaskStatus {
    if stop.pending().is_some() {
        TaskStatus::Terminated
    } else {
        TaskStatus::Failed
    }
}

impl Shared {
    /// The final status and exit code of the attempt a `flowpack step` process just ended,
    /// as its record in the store says: the one source for every outcome (succeeded,
    /// failed, timed out, stopped, reused, skipped). None when it wrote no new record
    /// (`recorded`: the task's records seen so far, updated). A record still `running`
    /// once its step has exited is `lost`.
    async fn newest_record(
        &self,
        task: &TaskRef,
        recorded: &mut usize,
    ) -> Result<Option<(TaskStatus, Option<i32>)>, RuntimeError> {
        let Some(info) = crate::inspect::load_task(&self.store, &self.record, task).await? else {
            return Ok(None);
        };
        if info.attempts.len() <= *recorded {
            return Ok(None);
        }
        *recorded = info.attempts.len();
        let status = match info.status() {
            Some(TaskStatus::Running) | None => TaskStatus::Lost,
            Some(s) => s,
        };
        let code = info.attempts.last().and_then(|a| a.record.exit_code);
        Ok(Some((status, code)))
    }

    /// The command of one attempt of `p`: `flowpack step` with the arguments a pod gets.
    fn step_command(&self, p: &Planned, attempt: u32, out_dir: &std::path::Path) -> Command {
        let mut inv = StepInvocation::new(
            &self.store_url,
            &self.package.to_string(),
            RunId::Run(self.run.clone()),
            &p.task.step,
        );
        inv.task = Some(p.task.task.clone());
        inv.parents = p.parents.iter().map(|t| t.to_string()).collect();
        inv.split_index = p.split_index().map(|i| i.to_string());
        inv.params = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        inv.output_params = ["foreach", "switch"]
            .iter()
            .map(|out| format!("{out}={}", out_dir.join(out).display()))
            .collect();
        let mut args: Vec<OsString> = inv.to_args().into_iter().map(OsString::from).collect();
        match &self.launcher {
            Launcher::Process(exe) => {
                let mut cmd = Command::new(exe);
                cmd.arg("step")
                    .args(args)
                    .env(flowpack_core::env_vars::FLOWPACK_CACHE_DIR, &self.cache_dir);
                if let Some(python) = &self.python {
                    cmd.env(flowpack_core::env_vars::FLOWPACK_PYTHON, python);
                }
                cmd
            }
            Launcher::Containers(podman) => {
                let image = &self.flow.steps[&p.task.step].settings.image;
                args.extend(["--image".into(), image.into()]);
                let name = format!(
                    "flowpack-{}-{}-{}-{attempt}",
                    self.run, p.task.step, p.task.task
                );
                podman.step_command(&self.flow, &p.task.step, &name, args)
            }
        }
    }
}

/// Runs one task, with retries, as `flowpack step` child processes. On a stop signal the
/// step gets SIGTERM (it may have had the signal already, from the terminal: one more
/// changes nothing) and no retry starts.
async fn run_task(
    p: Planned,
    retries: u32,
    delay: u64,
    shared: &Shared,
    reporter: &dyn RunReporter,
    stop: &StopSignals,
) -> (Planned, TaskSummary, Option<String>) {
    let started = Instant::now();
    let out_dir = shared
        .scratch
        .join(format!("{}-{}", p.task.step, p.task.task));
    let mut attempts = 0;
    // Attempts with a record so far: a step that ended without claiming one adds none.
    let mut recorded = 0;
    let mut last = (TaskStatus::Failed, None);
    let mut route = None;
    while attempts <= retries && stop.pending().is_none() {
        if attempts > 0 {
            reporter.line(
                &p.task,
                &format!(
                    "flowpack: retrying in {delay}s (attempt {} of {})",
                    attempts + 1,
                    retries + 1
                ),
            );
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(delay)) => {}
                _ = stop.received() => break,
            }
        }
        attempts += 1;
        let foreach_file = out_dir.join("foreach");
        let switch_file = out_dir.join("switch");
        let _ = std::fs::remove_file(&foreach_file);
        let _ = std::fs::remove_file(&switch_file);
        let mut cmd = shared.step_command(&p, attempts, &out_dir);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                reporter.line(
                    &p.task,
                    &format!("flowpack: cannot start flowpack step: {e}"),
                );
                break;
            }
        };
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let lines = async {
            let mut out = BufReader::new(out).lines();
            let mut err = BufReader::new(err).lines();
            let (mut out_done, mut err_done) = (false, false);
            while !(out_done && err_done) {
                tokio::select! {
                    l = out.next_line(), if !out_done => match l {
                        Ok(Some(l)) => reporter.line(&p.task, &l),
                        _ => out_done = true,
                    },
                    l = err.next_line(), if !err_done => match l {
                        Ok(Some(l)) => reporter.line(&p.task, &l),
                        _ => err_done = true,
                    },
                }
            }
        };
        let pid = child.id();
        let ended = async {
            tokio::select! {
                status = child.wait() => status,
                _ = stop.received() => {
                    if let Some(pid) = pid {
                        // SAFETY: kill(2) on our own child, not yet reaped (we still wait
                        // for it below); no memory is involved.
                        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                    }
                    child.wait().await
                }
            }
        };
        let (_, status) = tokio::join!(lines, ended);
        let code = status.ok().and_then(|s| s.code());
        last = match shared.newest_record(&p.task, &mut recorded).await {
            Ok(Some(said)) => said,
            Ok(None) => (unrecorded(stop), code),
            Err(e) => {
                reporter.line(
                    &p.task,
                    &format!("flowpack: cannot read the task's record: {e}"),
                );
                (unrecorded(stop), code)
            }
        };
        if last.0.is_success() {
            route = std::fs::read_to_string(&foreach_file)
                .ok()
                .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
                .map(|l| l.len().to_string())
                .or_else(|| std::fs::read_to_string(&switch_file).ok());
        }
        // Retried: a failure or a timeout; done: a success, a skipped hook, a stop.
        if !matches!(
            last.0,
            TaskStatus::Failed | TaskStatus::TimedOut | TaskStatus::Lost
        ) {
            break;
        }
    }
    if attempts == 0 && stop.pending().is_some() {
        // Stopped before its first attempt started.
        last.0 = TaskStatus::Terminated;
    }
    let summary = TaskSummary {
        task: p.task.to_string(),
        status: last.0,
        attempts,
        exit_code: last.1,
        seconds: started.elapsed().as_secs_f64(),
    };
    (p, summary, route)
}
