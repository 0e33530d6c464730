//! `runs`, `show`, `logs` and `artifacts get`: reading runs back from the store; and the
//! hidden `client`, which answers the same reads for the Python Client API over stdin/stdout.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flowpack_core::digest::Digest;
use flowpack_core::run::{ArtifactKind, RunRecord, TaskRef, TaskStatus, is_task_id};
use flowpack_core::store::StoreError;
use flowpack_runtime::RuntimeError;
use flowpack_runtime::inspect::{self, Attempt, RunInfo, TaskInfo};
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;

use crate::cli::{ArtifactGetArgs, ClientArgs, LogsArgs, RunsArgs, ShowArgs};
use crate::settings;

/// Every command here only reads: none creates a store.
fn store(flag: Option<&str>) -> Result<flowpack_core::store::Store> {
    settings::store(flag, settings::Access::Read)
}

/// Free text from a store document as a terminal may show it: control characters (a
/// forged record's escape sequences) escaped.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

pub async fn runs(a: RunsArgs) -> Result<()> {
    let store = store(a.store.store.as_deref())?;
    let runs = inspect::list_runs(&store, a.flow.as_deref()).await?;
    if a.json {
        let list: Vec<_> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "run": r.record.run, "flow": r.record.flow, "status": r.status,
                    "created_at": r.record.created_at, "finished_at": r.finished_at,
                    "origin": r.record.origin,
                    "package": r.record.package, "tasks": r.tasks.len(),
                })
            })
            .collect();
        return super::print_json(&list);
    }
    if runs.is_empty() {
        outln!("no runs in {}", store.url());
        return Ok(());
    }
    outln!(
        "{:<36} {:<20} {:<10} {:<6} {:>5}  CREATED",
        "RUN",
        "FLOW",
        "STATUS",
        "ORIGIN",
        "TASKS"
    );
    for r in &runs {
        outln!(
            "{:<36} {:<20} {:<10} {:<6} {:>5}  {}",
            r.record.run,
            r.record.flow,
            r.status.name(),
            shown(&r.record.origin),
            r.tasks.len(),
            shown(&r.record.created_at)
        );
    }
    Ok(())
}

pub async fn show(a: ShowArgs) -> Result<()> {
    let store = store(a.store.store.as_deref())?;
    let record = inspect::find_run(&store, &a.run).await?;
    let info = inspect::load(&store, record).await?;
    if a.json {
        return super::print_json(&info);
    }
    print_run(&info)
}

fn print_run(info: &RunInfo) -> Result<()> {
    let r = &info.record;
    outln!("run {} of flow {}: {}", r.run, r.flow, info.status.name());
    outln!(
        "package {}  origin {}  created {}",
        r.package,
        shown(&r.origin),
        shown(&r.created_at)
    );
    if let Some(from) = &r.resumed_from {
        outln!("resumed from {from}");
    }
    if !r.parameters.is_empty() {
        let params: Vec<String> = r
            .parameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        outln!("parameters {}", params.join(" "));
    }
    outln!(
        "{:<24} {:<11} {:>8} {:>8}  ARTIFACTS",
        "TASK",
        "STATUS",
        "ATTEMPTS",
        "SECONDS"
    );
    for t in &info.tasks {
        let status = t.status().map_or("", TaskStatus::name);
        let secs = t.seconds().map_or("-".into(), |s| format!("{s:.2}"));
        let arts: Vec<&str> = t.artifacts.keys().map(String::as_str).collect();
        outln!(
            "{:<24} {:<11} {:>8} {:>8}  {}",
            t.task,
            status,
            t.attempts.len(),
            secs,
            arts.join(", ")
        );
        if let Some(last) = t.attempts.last() {
            if let Some(e) = &last.record.error {
                outln!("{:<24} error: {}", "", shown(e));
            } else if !last.record.status.is_success() && last.record.exit_code.is_some() {
                outln!(
                    "{:<24} exit code {}",
                    "",
                    last.record.exit_code.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// The form of a task target, as errors show it.
const TASK_TARGET: &str = "RUN/STEP[/TASK] or FLOW/RUN/STEP[/TASK]";

/// A task id given on the command line, checked.
fn task_ref(step: &str, task: &str) -> Result<TaskRef> {
    if !is_task_id(task) {
        bail!("'{task}' is not a task id: use 0, or foreach indices like 3 or 3.1");
    }
    Ok(TaskRef {
        step: step.into(),
        task: task.into(),
    })
}

/// `[FLOW/]RUN/STEP[/TASK]`: the run's record and the task (task 0 when not given).
async fn find_task(
    store: &flowpack_core::store::Store,
    target: &str,
) -> Result<(RunRecord, TaskRef)> {
    let (record, rest) = inspect::find_run_path(store, target, 1..=2, TASK_TARGET).await?;
    let task = match rest.as_slice() {
        [step] => task_ref(step, "0")?,
        [step, task] => task_ref(step, task)?,
        _ => unreachable!("find_run_path leaves 1 or 2 parts"),
    };
    Ok((record, task))
}

/// "it has attempts 0, 1" (or "attempt 0", or "no attempt yet").
fn attempts_text(info: &TaskInfo) -> String {
    let n: Vec<String> = info
        .attempts
        .iter()
        .map(|a| a.record.attempt.to_string())
        .collect();
    match n.len() {
        0 => "it has no attempt yet".into(),
        1 => format!("it has attempt {}", n[0]),
        _ => format!("it has attempts {}", n.join(", ")),
    }
}

/// Whether nothing more will happen to a task after `last`, its newest attempt, which has
/// ended: it succeeded (or was reused or skipped), was stopped, or had no retry left.
fn final_after(last: &Attempt, retries: u32) -> bool {
    let status = last.record.status;
    last.committed
        || status.is_success()
        || matches!(status, TaskStatus::Skipped | TaskStatus::Terminated)
        || last.record.attempt >= retries
}

/// Whether an attempt has ended: it finished, or its runner is gone (`lost`).
fn ended(a: &Attempt) -> bool {
    a.record.finished_at.is_some() || a.record.status == TaskStatus::Lost
}

/// Prints the log chunks of `attempt` from `from`; returns the number of chunks there.
async fn print_chunks(
    store: &flowpack_core::store::Store,
    record: &RunRecord,
    task: &TaskRef,
    attempt: u32,
    from: usize,
    json: bool,
) -> Result<usize> {
    let (text, n) = inspect::read_logs(store, record, task, attempt, from).await?;
    let mut out = crate::output::stdout();
    for line in text.lines() {
        if json {
            let mut v = log_line(line);
            v["attempt"] = attempt.into();
            writeln!(out, "{v}")?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(n)
}

pub async fn logs(a: LogsArgs) -> Result<()> {
    let store = store(a.store.store.as_deref())?;
    let (record, task) = find_task(&store, &a.target).await?;
    let run = &record.run;
    if !a.follow {
        let info = inspect::load_task(&store, &record, &task)
            .await?
            .with_context(|| format!("run {run} has no task {task} (yet)"))?;
        let attempt = match a.attempt {
            Some(n) if info.attempts.iter().any(|x| x.record.attempt == n) => n,
            Some(n) => bail!(
                "task {task} of run {run} has no attempt {n}: {}",
                attempts_text(&info)
            ),
            None => match info.attempts.last() {
                Some(last) => last.record.attempt,
                None => bail!("run {run} has no task {task} (yet)"),
            },
        };
        print_chunks(&store, &record, &task, attempt, 0, a.json).await?;
        return Ok(());
    }
    follow(&store, &record, &task, a.attempt, a.json).await
}

/// `logs --follow`: prints the attempts of a task in order — only `only` when given, else
/// every attempt from the first — as their chunks arrive, until the task is final. Between
/// a failed attempt and its retry it waits the step's retry delay and three heartbeat
/// periods for the next attempt; a runner that stopped in between starts none.
async fn follow(
    store: &flowpack_core::store::Store,
    record: &RunRecord,
    task: &TaskRef,
    only: Option<u32>,
    json: bool,
) -> Result<()> {
    let (retries, delay) = inspect::retries(store, record, &task.step).await?;
    let patience = Duration::from_secs(delay) + 3 * flowpack_runtime::step::HEARTBEAT_EVERY;
    let run = &record.run;
    let mut attempt = only.unwrap_or(0);
    let mut chunk = 0;
    let mut previous: Option<Attempt> = None;
    let mut waiting = None;
    loop {
        let info = inspect::load_task(store, record, task).await?;
        let this = info
            .as_ref()
            .and_then(|i| i.attempts.iter().find(|x| x.record.attempt == attempt));
        match (this, info.as_ref()) {
            (Some(x), _) => {
                let over = ended(x);
                if chunk == 0
                    && let Some(p) = previous.take()
                {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "--- attempt {attempt} (attempt {} {}) ---",
                        p.record.attempt,
                        p.record.status.name()
                    );
                }
                // Read after the record said the attempt ended: nothing is written after.
                chunk = print_chunks(store, record, task, attempt, chunk, json).await?;
                if over {
                    if only.is_some() || final_after(x, retries) {
                        return Ok(());
                    }
                    previous = Some(x.clone());
                    attempt += 1;
                    chunk = 0;
                    waiting = Some(std::time::Instant::now());
                    continue;
                }
            }
            (None, Some(i)) if only.is_some() => {
                if i.attempts
                    .last()
                    .is_some_and(|l| ended(l) && final_after(l, retries))
                {
                    bail!(
                        "task {task} of run {run} has no attempt {attempt}: {}",
                        attempts_text(i)
                    );
                }
            }
            (None, _) => {
                if waiting.is_some_and(|w: std::time::Instant| w.elapsed() > patience) {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "attempt {attempt} of task {task} did not start within {}s of the \
                         last one's end: the run stopped",
                        patience.as_secs()
                    );
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn artifact_get(a: ArtifactGetArgs) -> Result<()> {
    let store = store(a.store.store.as_deref())?;
    let (record, rest) = inspect::find_run_path(
        &store,
        &a.target,
        2..=3,
        "RUN/STEP[/TASK]/NAME or FLOW/RUN/STEP[/TASK]/NAME",
    )
    .await?;
    let run = &record.run;
    let (task, name) = match rest.as_slice() {
        [step, name] => (task_ref(step, "0")?, name.as_str()),
        [step, task, name] => (task_ref(step, task)?, name.as_str()),
        _ => unreachable!("find_run_path leaves 2 or 3 parts"),
    };
    let (attempt, arts) =
        flowpack_runtime::step::committed(&store, &record.flow, &record.run, &task)
            .await?
            .with_context(|| format!("task {task} of run {run} has no committed attempt"))?;
    let art = arts.artifacts.get(name).cloned().with_context(|| {
        let names: Vec<&str> = arts.artifacts.keys().map(String::as_str).collect();
        format!(
            "task {task} of run {run} has no artifact '{name}' (it has: {})",
            names.join(", ")
        )
    })?;
    let out = a.output.clone().unwrap_or_else(|| PathBuf::from(name));
    let to_stdout = out.as_os_str() == "-";
    if to_stdout && art.kind == ArtifactKind::Dir {
        bail!("'{name}' is a folder: give -o FOLDER");
    }
    if !to_stdout && out.exists() {
        bail!("{} exists already: give another -o", out.display());
    }
    inspect::save_artifact(&store, &art, (!to_stdout).then_some(out.as_path())).await?;
    if a.json {
        super::print_json(&serde_json::json!({
            "run": record.run, "task": task.to_string(), "attempt": attempt, "name": name,
            "digest": art.digest, "size": art.size, "kind": art.kind, "path": out.display().to_string(),
        }))?;
    } else if !to_stdout {
        eprintln!(
            "wrote {} ({} bytes) from {task} attempt {attempt}",
            out.display(),
            art.size
        );
    }
    Ok(())
}

/// A stored log line as JSON: `{"time", "stream", "text"}`.
fn log_line(line: &str) -> serde_json::Value {
    serde_json::to_value(inspect::LogLine::parse(line)).expect("a log line serializes")
}

/// One request of the Python Client API to `flowpack client`: a JSON object on one line.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum ClientRequest {
    /// The flows with runs: a list of names.
    Flows,
    /// Every run (of `flow`, when given), newest first, as `show --json` gives each.
    Runs { flow: Option<String> },
    /// One run (`FLOW/RUN`), as `show --json` gives it.
    Run { run: String },
    /// The log lines of one attempt of `step/task`, as `logs --json` gives them.
    Logs {
        run: String,
        task: String,
        attempt: u32,
    },
    /// A file artifact's bytes, verified against its digest.
    Blob { digest: Digest, size: u64 },
    /// An artifact written to `dest` (a new path): the form for folder artifacts.
    Save {
        digest: Digest,
        size: u64,
        kind: ArtifactKind,
        dest: PathBuf,
    },
}

/// What a request gives back.
enum ClientAnswer {
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

async fn client_answer(
    store: &flowpack_core::store::Store,
    req: ClientRequest,
) -> Result<ClientAnswer> {
    use flowpack_core::run::ArtifactRef;
    let json = |v| Ok(ClientAnswer::Json(v));
    match req {
        ClientRequest::Flows => {
            let flows = store
                .list_dirs(&flowpack_core::store::layout::runs())
                .await?;
            json(serde_json::to_value(flows)?)
        }
        ClientRequest::Runs { flow } => json(serde_json::to_value(
            inspect::list_runs(store, flow.as_deref()).await?,
        )?),
        ClientRequest::Run { run } => {
            let record = inspect::find_run(store, &run).await?;
            json(serde_json::to_value(inspect::load(store, record).await?)?)
        }
        ClientRequest::Logs { run, task, attempt } => {
            let record = inspect::find_run(store, &run).await?;
            let task: TaskRef = task.parse().map_err(anyhow::Error::msg)?;
            let (text, _) = inspect::read_logs(store, &record, &task, attempt, 0).await?;
            json(text.lines().map(log_line).collect())
        }
        ClientRequest::Blob { digest, size } => Ok(ClientAnswer::Bytes(
            store.get_blob_bytes(&digest, size).await?,
        )),
        ClientRequest::Save {
            digest,
            size,
            kind,
            dest,
        } => {
            let art = ArtifactRef {
                digest,
                size,
                kind,
                origin: String::new(),
            };
            inspect::save_artifact(store, &art, Some(&dest)).await?;
            json(serde_json::Value::Null)
        }
    }
}

/// Whether `e` says a store object does not exist (a run or flow the client named wrongly).
fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_not_found)
            || matches!(c.downcast_ref::<RuntimeError>(), Some(RuntimeError::Store(s)) if s.is_not_found())
            || matches!(c.downcast_ref::<RuntimeError>(), Some(RuntimeError::NotFound(_)))
    })
}

/// `flowpack client`: answers the Client API's requests, one per line, until stdin closes.
/// Each answer is one line, `{"ok": VALUE}` or `{"error": TEXT, "not_found": BOOL}`; a
/// `blob` answer `{"ok": {"size": N}}` is followed by the N bytes. One process serves a
/// notebook's whole session, so reading 1,000 artifacts costs 1,000 pipe round trips, not
/// 1,000 process starts and store connections.
pub async fn client(a: ClientArgs) -> Result<()> {
    let store = store(a.store.store.as_deref())?;
    if a.print_store {
        outln!("{}", store.url());
        return Ok(());
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<ClientRequest>(&line) {
            Ok(req) => client_answer(&store, req).await,
            Err(e) => Err(anyhow::anyhow!("bad client request: {e}")),
        };
        let mut out = crate::output::stdout();
        match answer {
            Ok(ClientAnswer::Json(v)) => writeln!(out, "{}", serde_json::json!({ "ok": v }))?,
            Ok(ClientAnswer::Bytes(b)) => {
                writeln!(out, "{}", serde_json::json!({"ok": {"size": b.len()}}))?;
                out.write_all(&b)?;
            }
            Err(e) => writeln!(
                out,
                "{}",
                serde_json::json!({"error": format!("{e:#}"), "not_found": is_not_found(&e)})
            )?,
        }
        out.flush()?;
    }
    Ok(())
}
