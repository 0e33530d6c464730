//! Reading runs back: naming a run (`find_run_path`) or a package (`find_package`), run
//! lists and status, a run's tasks, logs (also while they are written), artifacts; and `resume`, which starts a new run reusing the committed tasks
//! of an old one by reference.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use flowpack_core::Digest;
use flowpack_core::flow::Flow;
use flowpack_core::run::{
    ArtifactRef, Artifacts, RunRecord, TaskRecord, TaskRef, TaskStatus, is_run_id,
};
use flowpack_core::store::{Store, layout};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::RuntimeError;
use crate::step::HEARTBEAT_EVERY;

/// How many store reads run at once when a run's records are read.
const CONCURRENT_READS: usize = 32;

/// A run's overall state, derived from its task records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// `end` committed.
    Succeeded,
    /// A task failed and none is running.
    Failed,
    /// Tasks are running (or their runner died: see the heartbeats).
    Running,
}

impl RunStatus {
    /// The status as the JSON of `runs`, `show` and the UI writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Running => "running",
        }
    }
}

/// One attempt of one task, as stored.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// The lifecycle record.
    pub record: TaskRecord,
    /// Whether its outputs are committed.
    pub committed: bool,
}

/// One task of a run with all its attempts.
#[derive(Clone, Debug, Serialize)]
pub struct TaskInfo {
    /// `step/task`.
    pub task: String,
    /// The step.
    pub step: String,
    /// Attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// The artifacts of the newest committed attempt, by name.
    pub artifacts: BTreeMap<String, ArtifactRef>,
}

impl TaskInfo {
    /// Wall seconds from the first attempt's start to the last one's end.
    pub fn seconds(&self) -> Option<f64> {
        let start: jiff::Timestamp = self.attempts.first()?.record.started_at.parse().ok()?;
        let end: jiff::Timestamp = self
            .attempts
            .last()?
            .record
            .finished_at
            .as_deref()?
            .parse()
            .ok()?;
        Some(end.duration_since(start).as_secs_f64())
    }

    /// The status of the newest attempt.
    pub fn status(&self) -> Option<TaskStatus> {
        self.attempts.last().map(|a| {
            if a.committed && !a.record.status.is_success() {
                TaskStatus::Succeeded
            } else {
                a.record.status
            }
        })
    }
}

/// A run with its tasks.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// The run record.
    pub record: RunRecord,
    /// Derived status.
    pub status: RunStatus,
    /// When it ended: `end`'s commit for a run that succeeded, the last task's end for one
    /// that failed; None while it runs.
    pub finished_at: Option<String>,
    /// Tasks in the order their steps appear in the flow, then by task id.
    pub tasks: Vec<TaskInfo>,
}

/// The flow a run belongs to and its record; `run` may be `FLOW/RUN` or just `RUN`.
pub async fn find_run(store: &Store, run: &str) -> Result<RunRecord, RuntimeError> {
    Ok(find_run_path(store, run, 0..=0, "RUN or FLOW/RUN").await?.0)
}

/// The run named at the start of `target` — `RUN/…` or `FLOW/RUN/…` — and the parts after
/// it, of which there may be as many as `rest` says: the one parser of every command that
/// names a run (`show`, `logs`, `artifacts get`, `resume`, `trigger --resume`, the client).
/// `FLOW/RUN` is taken when that run record exists (one read), else the first part is
/// looked up as a run id in every flow. `usage` is the form the error shows for a target
/// of no fitting shape.
pub async fn find_run_path(
    store: &Store,
    target: &str,
    rest: std::ops::RangeInclusive<usize>,
    usage: &str,
) -> Result<(RunRecord, Vec<String>), RuntimeError> {
    use flowpack_core::name::{self, NameKind};
    let parts: Vec<&str> = target.split('/').collect();
    let after = |n: usize| parts[n..].iter().map(|p| p.to_string()).collect::<Vec<_>>();
    let with_flow = parts.len() >= 2
        && rest.contains(&(parts.len() - 2))
        && name::check(NameKind::Flow, parts[0]).is_ok()
        && is_run_id(parts[1]);
    let bare = rest.contains(&(parts.len() - 1)) && is_run_id(parts[0]);
    if with_flow {
        match store
            .get_json::<RunRecord>(&layout::run_record(parts[0], parts[1]))
            .await
        {
            Ok(r) => return Ok((r, after(2))),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if bare {
        for flow in store.list_dirs(&layout::runs()).await? {
            match store
                .get_json::<RunRecord>(&layout::run_record(&flow, parts[0]))
                .await
            {
                Ok(r) => return Ok((r, after(1))),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    let named = match (with_flow, bare) {
        (true, true) => format!(
            "neither run '{}/{}' nor run '{}' is",
            parts[0], parts[1], parts[0]
        ),
        (true, false) => format!("run '{}/{}' is not", parts[0], parts[1]),
        (false, true) => format!("run '{}' is not", parts[0]),
        (false, false) => {
            return Err(RuntimeError::Invalid(format!("'{target}' must be {usage}")));
        }
    };
    Err(RuntimeError::NotFound(format!(
        "{named} in the store {}: `flowpack runs` lists the runs there",
        store.url()
    )))
}

/// The package that `text` names: `sha256:<64 hex>`, or a prefix of its hex digits (with
/// or without `sha256:`) at least as long as [`Digest::short`] prints, matched against the
/// blobs of the store. A prefix that several blobs start with is an error naming them.
pub async fn find_package(store: &Store, text: &str) -> Result<Digest, RuntimeError> {
    use flowpack_core::digest::SHORT_HEX;
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() == 64 {
        return format!("sha256:{hex}").parse().map_err(
            |e: flowpack_core::digest::DigestParseError| RuntimeError::Invalid(e.to_string()),
        );
    }
    if hex.len() < SHORT_HEX
        || hex.len() > 64
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(RuntimeError::Invalid(format!(
            "'{text}' is not a package: give sha256:<64 hex digits>, or at least the first \
             {SHORT_HEX} hex digits (as `run` and `push` print them)"
        )));
    }
    let found: Vec<Digest> = store
        .list(&layout::blob_folder(hex))
        .await?
        .iter()
        .filter_map(|k| k.rsplit('/').next())
        .filter(|name| name.starts_with(hex))
        .filter_map(|name| format!("sha256:{name}").parse().ok())
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(RuntimeError::NotFound(format!(
            "no package in the store {} starts with {hex}: `flowpack runs --json` and \
             `flowpack push` show the packages",
            store.url()
        ))),
        many => Err(RuntimeError::Invalid(format!(
            "'{text}' is ambiguous: {} blobs of the store start with it ({}); give more digits",
            many.len(),
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A step's retries in the run's package: how many attempts may follow the first, and
/// the seconds between them (none for a step the package does not have).
pub async fn retries(
    store: &Store,
    record: &RunRecord,
    step: &str,
) -> Result<(u32, u64), RuntimeError> {
    let manifest = flowpack_core::package::read_manifest(store, &record.package).await?;
    Ok(manifest.flow.steps.get(step).map_or((0, 0), |s| {
        (s.settings.retry.times, s.settings.retry.delay_seconds)
    }))
}

/// Every run in the store (of `flow`, when given), newest first.
pub async fn list_runs(store: &Store, flow: Option<&str>) -> Result<Vec<RunInfo>, RuntimeError> {
    let flows = match flow {
        Some(f) => vec![f.to_string()],
        None => store.list_dirs(&layout::runs()).await?,
    };
    let mut out = Vec::new();
    for f in flows {
        for id in store.list_dirs(&layout::flow_runs(&f)).await? {
            match store
                .get_json::<RunRecord>(&layout::run_record(&f, &id))
                .await
            {
                Ok(record) => out.push(load(store, record).await?),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
    out.sort_by(|a, b| b.record.created_at.cmp(&a.record.created_at));
    Ok(out)
}

/// One task of a run with its attempts (one listing of the task's folder), if it exists.
pub async fn load_task(
    store: &Store,
    record: &RunRecord,
    task: &TaskRef,
) -> Result<Option<TaskInfo>, RuntimeError> {
    let prefix = layout::task(&record.flow, &record.run, &task.step, &task.task);
    Ok(load_tasks(store, record, &prefix).await?.pop())
}

/// The tasks below `prefix` (the run's folder or one task's), from one listing: it gives
/// every task, attempt and commit; then each attempt's records are read.
async fn load_tasks(
    store: &Store,
    record: &RunRecord,
    prefix: &str,
) -> Result<Vec<TaskInfo>, RuntimeError> {
    let keys = store.list(prefix).await?;
    // Keys are read relative to the run: <step>/<task>/<attempt>/<file>.
    let run_prefix = layout::run(&record.flow, &record.run);
    let mut seen: BTreeMap<(String, String), BTreeMap<u32, bool>> = BTreeMap::new();
    for k in &keys {
        let rest = &k[run_prefix.len()..];
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() < 4 {
            continue;
        }
        let Ok(attempt) = parts[2].parse::<u32>() else {
            continue;
        };
        let slot = seen
            .entry((parts[0].to_string(), parts[1].to_string()))
            .or_default()
            .entry(attempt)
            .or_insert(false);
        if parts[3] == "artifacts.json" {
            *slot = true;
        }
    }
    // Each attempt's records are read [`CONCURRENT_READS`] at a time, in key order.
    let wanted: Vec<(String, String, u32, bool, bool)> = seen
        .into_iter()
        .flat_map(|((step, task), attempts)| {
            let newest = attempts.keys().next_back().copied();
            attempts.into_iter().map(move |(a, committed)| {
                (step.clone(), task.clone(), a, committed, Some(a) == newest)
            })
        })
        .collect();
    let read: Vec<Option<(TaskRecord, Option<Artifacts>)>> = futures::stream::iter(wanted.clone())
        .map(|(step, task, attempt, committed, _)| async move {
            let base = layout::attempt(&record.flow, &record.run, &step, &task, attempt);
            let rec: TaskRecord = match store.get_json(&format!("{base}task.json")).await {
                Ok(r) => r,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(RuntimeError::from(e)),
            };
            let arts = match committed {
                true => Some(store.get_json(&format!("{base}artifacts.json")).await?),
                false => None,
            };
            Ok(Some((rec, arts)))
        })
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await?;
    let now = jiff::Timestamp::now();
    let mut tasks: Vec<TaskInfo> = Vec::new();
    for ((step, task, _, committed, newest), got) in wanted.into_iter().zip(read) {
        let name = format!("{step}/{task}");
        if tasks.last().is_none_or(|t| t.task != name) {
            tasks.push(TaskInfo {
                task: name,
                step,
                attempts: Vec::new(),
                artifacts: BTreeMap::new(),
            });
        }
        let info = tasks.last_mut().expect("pushed above");
        let Some((mut rec, arts)) = got else {
            continue;
        };
        if let Some(arts) = arts {
            info.artifacts = arts.artifacts;
        } else if rec.status == TaskStatus::Running && (!newest || !heartbeat_fresh(&rec, now)) {
            rec.status = TaskStatus::Lost;
        }
        info.attempts.push(Attempt {
            record: rec,
            committed,
        });
    }
    Ok(tasks)
}

/// Whether a running attempt's last heartbeat is recent: within three heartbeat periods.
fn heartbeat_fresh(rec: &TaskRecord, now: jiff::Timestamp) -> bool {
    rec.heartbeat_at
        .parse::<jiff::Timestamp>()
        .is_ok_and(|t| now.duration_since(t).as_secs_f64() < 3.0 * HEARTBEAT_EVERY.as_secs_f64())
}

/// A run with every task and attempt.
pub async fn load(store: &Store, record: RunRecord) -> Result<RunInfo, RuntimeError> {
    let mut tasks = load_tasks(store, &record, &layout::run(&record.flow, &record.run)).await?;
    let status = if tasks
        .iter()
        .any(|t| t.step == "end" && t.attempts.iter().any(|a| a.committed))
    {
        RunStatus::Succeeded
    } else if tasks
        .iter()
        .any(|t| t.status() == Some(TaskStatus::Running))
    {
        RunStatus::Running
    } else if tasks
        .iter()
        .any(|t| t.status().is_some_and(|s| !s.is_success()))
    {
        RunStatus::Failed
    } else {
        RunStatus::Running
    };
    tasks.sort_by(|a, b| {
        (
            a.attempts.first().map(|x| x.record.started_at.clone()),
            &a.task,
        )
            .cmp(&(
                b.attempts.first().map(|x| x.record.started_at.clone()),
                &b.task,
            ))
    });
    let finished_at = match status {
        RunStatus::Running => None,
        RunStatus::Succeeded => tasks
            .iter()
            .filter(|t| t.step == "end")
            .flat_map(|t| t.attempts.iter().filter(|a| a.committed))
            .filter_map(|a| a.record.finished_at.clone())
            .max(),
        RunStatus::Failed => tasks
            .iter()
            .filter_map(|t| t.attempts.last()?.record.finished_at.clone())
            .max(),
    };
    Ok(RunInfo {
        record,
        status,
        finished_at,
        tasks,
    })
}

/// The log text of one attempt, chunk by chunk from `from_chunk`.
/// Returns the text and the number of chunks read.
pub async fn read_logs(
    store: &Store,
    record: &RunRecord,
    task: &TaskRef,
    attempt: u32,
    from_chunk: usize,
) -> Result<(String, usize), RuntimeError> {
    let chunks = log_chunks(store, record, task, attempt).await?;
    let mut text = String::new();
    for key in chunks.iter().skip(from_chunk) {
        text.push_str(&String::from_utf8_lossy(&store.get_bytes(key).await?));
    }
    Ok((text, chunks.len()))
}

/// The keys of one attempt's log chunks, in order.
pub async fn log_chunks(
    store: &Store,
    record: &RunRecord,
    task: &TaskRef,
    attempt: u32,
) -> Result<Vec<String>, RuntimeError> {
    let base = format!(
        "{}logs/",
        layout::attempt(&record.flow, &record.run, &task.step, &task.task, attempt)
    );
    Ok(store.list(&base).await?)
}

/// One stored log line, `TIME STREAM TEXT`, as `logs --json`, the Client API and the UI
/// give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogLine<'a> {
    /// When the line was read (RFC 3339).
    pub time: &'a str,
    /// `stdout` or `stderr` (flowpack's own lines say `flowpack`).
    pub stream: &'a str,
    /// The line.
    pub text: &'a str,
}

impl<'a> LogLine<'a> {
    /// Splits a stored line; missing parts are empty.
    pub fn parse(line: &'a str) -> Self {
        let mut it = line.splitn(3, ' ');
        Self {
            time: it.next().unwrap_or(""),
            stream: it.next().unwrap_or(""),
            text: it.next().unwrap_or(""),
        }
    }
}

/// Steps at and after `from` in the graph.
fn downstream(flow: &Flow, from: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut queue: VecDeque<String> = from.iter().cloned().collect();
    while let Some(s) = queue.pop_front() {
        if out.insert(s.clone()) {
            queue.extend(flow.steps[&s].next.targets().into_iter().map(String::from));
        }
    }
    out
}

/// Prepares a resumed run: copies, by reference, every committed task of `old` that is
/// not at or after the failed steps (or `from`) into the new run `new_run`, and returns
/// them with their routes (foreach count, switch case) for the planner. `flow` is the flow
/// the new run runs (the current code): a task that no longer fits it is an error, before
/// anything is written.
pub async fn reuse_tasks(
    store: &Store,
    flow: &Flow,
    old: &RunInfo,
    from: Option<&str>,
    new_run: &str,
    cache: &crate::cache::Cache,
) -> Result<BTreeMap<TaskRef, Option<String>>, RuntimeError> {
    let redo = resume_plan(flow, old, from)?;
    let mut taken = Vec::new();
    for t in &old.tasks {
        if redo.contains(&t.step) {
            continue;
        }
        let Some(a) = t.attempts.iter().rev().find(|a| a.committed) else {
            continue;
        };
        let arts = Artifacts {
            artifacts: t.artifacts.clone(),
        };
        let route =
            crate::step::reuse::route_of(store, cache, &flow.steps[&t.step], &arts, &t.task)
                .await?
                .planner_text();
        taken.push((t, a, arts, route));
    }
    let mut done = BTreeMap::new();
    let fname = &old.record.flow;
    for (t, a, arts, route) in taken {
        let tref: TaskRef = t.task.parse().map_err(RuntimeError::Invalid)?;
        let base = layout::attempt(fname, new_run, &tref.step, &tref.task, 0);
        let mut rec = a.record.clone();
        rec.run = new_run.to_string();
        rec.attempt = 0;
        rec.status = TaskStatus::Reused;
        rec.reused_from = Some(format!(
            "{}/{}/{}",
            old.record.run, t.task, a.record.attempt
        ));
        rec.reuse_reason = Some(flowpack_core::run::ReuseReason::Resume);
        store.create_json(&format!("{base}task.json"), &rec).await?;
        store
            .create_json(&format!("{base}artifacts.json"), &arts)
            .await?;
        done.insert(tref, route);
    }
    Ok(done)
}

/// The steps a resume of `old` runs again with `flow` (the current code): the failed
/// steps (or `from`) and every step after them. Checks, before anything is written, that
/// every committed task of the other steps fits `flow`: its step is still a step and its
/// parents' steps still lead to it.
pub fn resume_plan(
    flow: &Flow,
    old: &RunInfo,
    from: Option<&str>,
) -> Result<BTreeSet<String>, RuntimeError> {
    let restart: BTreeSet<String> = match from {
        Some(f) => [f.to_string()].into(),
        None => old
            .tasks
            .iter()
            .filter(|t| t.status().is_some_and(|s| !s.is_success()))
            .map(|t| t.step.clone())
            .collect(),
    };
    if let Some(missing) = restart.iter().find(|s| !flow.steps.contains_key(*s)) {
        return Err(RuntimeError::Invalid(format!(
            "flow '{}' has no step '{missing}' to resume from (run {} {}): \
             give --from one of its steps",
            flow.name,
            old.record.run,
            if from.is_some() {
                "was asked"
            } else {
                "failed there"
            },
        )));
    }
    let mut redo = downstream(flow, &restart);
    // Exit hooks see the outcome of the run they end: every run runs them again.
    redo.extend(flow.hooks().into_iter().map(|(_, s)| s.to_string()));
    for t in &old.tasks {
        if redo.contains(&t.step) {
            continue;
        }
        let Some(a) = t.attempts.iter().rev().find(|a| a.committed) else {
            continue;
        };
        fits(flow, t, &a.record).map_err(|why| {
            RuntimeError::Invalid(format!(
                "task {} of run {} does not fit the current flow: {why}; resume with --from \
                 an earlier step, or start a new run",
                t.task, old.record.run
            ))
        })?;
    }
    Ok(redo)
}

/// Whether `flow` can take over task `t` (whose committed record is `rec`): its step is
/// still a step, and each parent's step still leads to it.
fn fits(flow: &Flow, t: &TaskInfo, rec: &flowpack_core::run::TaskRecord) -> Result<(), String> {
    if !flow.steps.contains_key(&t.step) {
        return Err(format!("the flow has no step '{}' any more", t.step));
    }
    for p in &rec.parents {
        let parent = p.split('/').next().unwrap_or(p);
        let leads = flow
            .steps
            .get(parent)
            .is_some_and(|s| s.next.targets().contains(&t.step.as_str()));
        if !leads {
            return Err(format!(
                "step '{}' no longer follows step '{parent}'",
                t.step
            ));
        }
    }
    Ok(())
}

/// Writes artifact `art` to `dest` (a new file or folder; written beside it and renamed in
/// when verified), or a file artifact to stdout when `dest` is None.
pub async fn save_artifact(
    store: &Store,
    art: &ArtifactRef,
    dest: Option<&std::path::Path>,
) -> Result<(), RuntimeError> {
    use flowpack_core::run::ArtifactKind;
    let reader = store.open_blob(&art.digest, art.size).await?;
    let dest = dest.map(std::path::Path::to_path_buf);
    let kind = art.kind;
    tokio::task::spawn_blocking(move || -> Result<(), RuntimeError> {
        let mut reader = reader;
        let Some(dest) = dest else {
            reader.copy_to(&mut [&mut std::io::stdout().lock()], "stdout")?;
            return Ok(());
        };
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        match kind {
            ArtifactKind::File => {
                let mut tmp = tempfile::NamedTempFile::new_in(&parent)
                    .map_err(|e| RuntimeError::io(&parent, e))?;
                reader.copy_to(&mut [tmp.as_file_mut()], &dest.display().to_string())?;
                tmp.persist_noclobber(&dest)
                    .map_err(|e| RuntimeError::io(&dest, e.error))?;
            }
            ArtifactKind::Dir => {
                let tmp =
                    tempfile::tempdir_in(&parent).map_err(|e| RuntimeError::io(&parent, e))?;
                flowpack_core::archive::extract(&mut reader, tmp.path())?;
                reader.finish()?;
                std::fs::rename(tmp.keep(), &dest).map_err(|e| RuntimeError::io(&dest, e))?;
            }
        }
        Ok(())
    })
    .await
    .expect("writing an artifact does not panic")
}
