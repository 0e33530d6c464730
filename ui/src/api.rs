//! The routes: the page and its assets at `/`, the JSON API under `/api/` (docs/ui.md is its
//! reference). Every handler checks each path segment as the name it stands for before any
//! store key is made of it.

use std::io::Read;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use flowpack_core::Digest;
use flowpack_core::name::{self, NameKind};
use flowpack_core::run::{ArtifactKind, ArtifactRef, RunRecord, TaskRef, TaskStatus};
use flowpack_core::store::{BlobReader, StoreError};
use flowpack_runtime::inspect::{self, LogLine, RunInfo, TaskInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::preview::{self, Kind, PREVIEW_BYTES};
use crate::reader::{Reader, RunSummary, seconds_between};
use crate::{UiError, assets, graph};

type Shared = State<Arc<Reader>>;
type ApiResult = Result<Response, UiError>;

/// Artifacts up to this size are read to their end for a preview, so that what it shows
/// is verified against the digest; a larger one's preview is its unverified start.
const VERIFY_PREVIEW_UP_TO: u64 = 16 << 20;
/// How many log lines the failing task's panel shows.
const FAILING_LOG_LINES: usize = 40;
/// The largest page of runs or tasks one request may ask for.
const MAX_PAGE: usize = 1000;

/// The UI's routes over `reader`.
pub fn router(reader: Arc<Reader>) -> Router {
    const TASK: &str = "/api/runs/{flow}/{run}/tasks/{step}/{task}";
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::script))
        .route("/assets/app.css", get(assets::styles))
        .route("/api/info", get(info))
        .route("/api/runs", get(runs))
        .route("/api/runs/{flow}/{run}", get(run))
        .route("/api/runs/{flow}/{run}/timeline", get(timeline))
        .route("/api/runs/{flow}/{run}/tasks", get(tasks))
        .route(TASK, get(task))
        .route(&format!("{TASK}/logs"), get(logs))
        .route(&format!("{TASK}/artifacts/{{name}}/preview"), get(preview))
        .route(&format!("{TASK}/artifacts/{{name}}/raw"), get(raw))
        .route(
            &format!("{TASK}/artifacts/{{name}}/download"),
            get(download),
        )
        .route("/api/packages/{digest}", get(package))
        .fallback(not_found)
        .layer(axum::middleware::map_response(with_security_headers))
        .with_state(reader)
}

async fn with_security_headers(mut r: Response) -> Response {
    let headers = r.headers_mut();
    for (k, v) in assets::security_headers() {
        headers.entry(k).or_insert(v);
    }
    r
}

async fn not_found() -> UiError {
    UiError::NotFound("no such page: the API is under /api/ (docs/ui.md)".into())
}

fn ok<T: Serialize>(value: &T) -> ApiResult {
    Ok(Json(value).into_response())
}

/// `s` when it is a valid name of `kind`, else a 400 naming the rule.
fn checked(kind: NameKind, s: &str) -> Result<&str, UiError> {
    name::check(kind, s).map_err(|e| UiError::BadRequest(e.to_string()))?;
    Ok(s)
}

/// The record of run `flow/run`, both checked.
async fn record(reader: &Reader, flow: &str, run: &str) -> Result<Arc<RunRecord>, UiError> {
    let (flow, run) = (checked(NameKind::Flow, flow)?, checked(NameKind::Run, run)?);
    reader
        .record(flow, run)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("run {flow}/{run} is not in the store")))
}

/// The run and one of its tasks (with every attempt), all names checked.
async fn task_of(
    reader: &Reader,
    (flow, run, step, task): (&str, &str, &str, &str),
) -> Result<(Arc<RunRecord>, TaskInfo), UiError> {
    let record = record(reader, flow, run).await?;
    let r = TaskRef {
        step: checked(NameKind::Step, step)?.to_string(),
        task: checked(NameKind::Task, task)?.to_string(),
    };
    let info = inspect::load_task(reader.store(), &record, &r)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("task {r} is not in run {run}")))?;
    Ok((record, info))
}

async fn info(State(reader): Shared) -> ApiResult {
    ok(&json!({"store": reader.store().url(), "version": env!("CARGO_PKG_VERSION")}))
}

#[derive(Debug, Deserialize)]
struct RunsQuery {
    flow: Option<String>,
    status: Option<String>,
    origin: Option<String>,
    q: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// Runs, newest first, filtered and one page of them.
async fn runs(State(reader): Shared, Query(q): Query<RunsQuery>) -> ApiResult {
    let all = reader.records().await?;
    let mut flows: Vec<&str> = all.iter().map(|r| r.flow.as_str()).collect();
    flows.sort_unstable();
    flows.dedup();
    let mut origins: Vec<&str> = all.iter().map(|r| r.origin.as_str()).collect();
    origins.sort_unstable();
    origins.dedup();
    let text =
        q.q.as_deref()
            .map(str::to_lowercase)
            .filter(|t| !t.is_empty());
    let chosen: Vec<Arc<RunRecord>> = all
        .iter()
        .filter(|r| {
            q.flow
                .as_deref()
                .is_none_or(|f| f.is_empty() || r.flow == f)
        })
        .filter(|r| {
            q.origin
                .as_deref()
                .is_none_or(|o| o.is_empty() || r.origin == o)
        })
        .filter(|r| text.as_deref().is_none_or(|t| matches_text(r, t)))
        .cloned()
        .collect();
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let (total, page) = if let Some(status) = status {
        // Status comes from the tasks: every candidate's summary is read (cached once a
        // run is final, and read ahead in the background from the start).
        let kept: Vec<Arc<RunSummary>> = reader
            .summaries(&chosen)
            .await?
            .into_iter()
            .filter(|s| s.status.name() == status)
            .collect();
        let total = kept.len();
        (total, kept.into_iter().skip(q.offset).take(limit).collect())
    } else {
        let end = q.offset.saturating_add(limit).min(chosen.len());
        let start = q.offset.min(end);
        (chosen.len(), reader.summaries(&chosen[start..end]).await?)
    };
    ok(&json!({
        "runs": page.iter().map(AsRef::as_ref).collect::<Vec<&RunSummary>>(),
        "total": total,
        "flows": flows,
        "origins": origins,
    }))
}

/// Whether the run's id, flow or a parameter (name or value) contains `text` (lowercase).
fn matches_text(r: &RunRecord, text: &str) -> bool {
    r.run.to_lowercase().contains(text)
        || r.flow.to_lowercase().contains(text)
        || r.parameters.iter().any(|(k, v)| {
            k.to_lowercase().contains(text) || v.to_string().to_lowercase().contains(text)
        })
}

/// A run: its summary, its graph and the task that failed first with its last log lines.
async fn run(State(reader): Shared, Path((flow, run)): Path<(String, String)>) -> ApiResult {
    let record = record(&reader, &flow, &run).await?;
    let info = reader.run(&record).await?;
    let manifest = reader.manifest(&record.package).await?;
    let failing = match first_failed(&info) {
        Some(t) => Some(failing(&reader, &record, t).await?),
        None => None,
    };
    ok(&json!({
        "run": RunSummary::of(&info),
        "graph": graph::of(&manifest.flow, &info),
        "failing": failing,
    }))
}

/// The task whose newest attempt failed first.
fn first_failed(info: &RunInfo) -> Option<&TaskInfo> {
    info.tasks
        .iter()
        .filter(|t| {
            t.status().is_some_and(|s| {
                !s.is_success() && s != TaskStatus::Running && s != TaskStatus::Skipped
            })
        })
        .min_by_key(|t| {
            let a = &t
                .attempts
                .last()
                .expect("a task with a status has an attempt")
                .record;
            a.finished_at
                .clone()
                .unwrap_or_else(|| a.heartbeat_at.clone())
        })
}

async fn failing(reader: &Reader, record: &RunRecord, t: &TaskInfo) -> Result<Value, UiError> {
    let a = &t
        .attempts
        .last()
        .expect("a failed task has an attempt")
        .record;
    let r = TaskRef {
        step: a.step.clone(),
        task: a.task.clone(),
    };
    let tail = reader
        .log_tail(record, &r, a.attempt, FAILING_LOG_LINES)
        .await?;
    let lines: Vec<LogLine> = tail.iter().map(|l| LogLine::parse(l)).collect();
    Ok(json!({
        "task": t.task, "step": t.step, "attempt": a.attempt, "status": a.status,
        "exit_code": a.exit_code, "error": a.error, "log_tail": lines,
    }))
}

/// Every task's attempts as offsets from the run's first start, for the Gantt chart.
async fn timeline(State(reader): Shared, Path((flow, run)): Path<(String, String)>) -> ApiResult {
    let record = record(&reader, &flow, &run).await?;
    let info = reader.run(&record).await?;
    let t0 = info
        .tasks
        .iter()
        .filter_map(|t| t.attempts.first())
        .map(|a| a.record.started_at.as_str())
        .min()
        .unwrap_or(record.created_at.as_str());
    // t0 is parsed once: the timeline of a running run is asked for every 2 s.
    let start: Option<jiff::Timestamp> = t0.parse().ok();
    let since = |t: jiff::Timestamp| {
        start.map(|s| (t.duration_since(s).as_secs_f64() * 1000.0).round() / 1000.0)
    };
    let offset = |t: &str| since(t.parse().ok()?);
    let now = since(jiff::Timestamp::now());
    let mut span: f64 = 0.0;
    let rows: Vec<Value> = info
        .tasks
        .iter()
        .map(|t| {
            let attempts: Vec<Value> = t
                .attempts
                .iter()
                .map(|a| {
                    let r = &a.record;
                    let end = r.finished_at.as_deref().and_then(offset);
                    let reach = end.or(now).unwrap_or(0.0);
                    span = span.max(reach);
                    json!({
                        "attempt": r.attempt, "start": offset(&r.started_at), "end": end,
                        "status": r.status, "phases": r.phases,
                    })
                })
                .collect();
            json!({"task": t.task, "step": t.step, "status": t.status(), "attempts": attempts})
        })
        .collect();
    ok(&json!({"t0": t0, "span": span, "rows": rows}))
}

#[derive(Debug, Deserialize)]
struct TasksQuery {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
    step: Option<String>,
    status: Option<String>,
}

/// One page of a run's tasks, in the order they started.
async fn tasks(
    State(reader): Shared,
    Path((flow, run)): Path<(String, String)>,
    Query(q): Query<TasksQuery>,
) -> ApiResult {
    let record = record(&reader, &flow, &run).await?;
    let info = reader.run(&record).await?;
    let step = q.step.as_deref().filter(|s| !s.is_empty());
    let status = q.status.as_deref().filter(|s| !s.is_empty());
    let chosen: Vec<&TaskInfo> = info
        .tasks
        .iter()
        .filter(|t| step.is_none_or(|s| t.step == s))
        .filter(|t| status.is_none_or(|s| t.status().is_some_and(|x| x.name() == s)))
        .collect();
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let page: Vec<Value> = chosen
        .iter()
        .skip(q.offset)
        .take(limit)
        .map(|t| {
            let first = t.attempts.first().map(|a| &a.record);
            let last = t.attempts.last().map(|a| &a.record);
            json!({
                "task": t.task, "step": t.step, "status": t.status(),
                "attempts": t.attempts.len(),
                "started_at": first.map(|r| &r.started_at),
                "finished_at": last.and_then(|r| r.finished_at.as_ref()),
                "seconds": t.seconds(),
                "exit_code": last.and_then(|r| r.exit_code),
            })
        })
        .collect();
    ok(&json!({"tasks": page, "total": chosen.len()}))
}

type TaskPath = Path<(String, String, String, String)>;

/// One task: every attempt and the newest committed attempt's artifacts.
async fn task(State(reader): Shared, Path(p): TaskPath) -> ApiResult {
    let (_, t) = task_of(&reader, (&p.0, &p.1, &p.2, &p.3)).await?;
    let attempts: Vec<Value> = t
        .attempts
        .iter()
        .map(|a| {
            let r = &a.record;
            let mut v = serde_json::to_value(r).expect("a task record serializes");
            v["status"] = json!(r.status);
            v["committed"] = json!(a.committed);
            v["seconds"] = json!(
                r.finished_at
                    .as_deref()
                    .and_then(|end| seconds_between(&r.started_at, end))
            );
            v
        })
        .collect();
    let artifacts: Vec<Value> = t
        .artifacts
        .iter()
        .map(|(name, a)| {
            json!({"name": name, "digest": a.digest, "size": a.size, "kind": a.kind,
                   "origin": a.origin})
        })
        .collect();
    ok(&json!({
        "task": t.task, "step": t.step, "status": t.status(),
        "attempts": attempts, "artifacts": artifacts,
    }))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    attempt: Option<u32>,
    #[serde(default)]
    from: usize,
}

/// Log lines of one attempt from chunk `from`: poll with `from = next` until `final`.
async fn logs(State(reader): Shared, Path(p): TaskPath, Query(q): Query<LogsQuery>) -> ApiResult {
    let (record, t) = task_of(&reader, (&p.0, &p.1, &p.2, &p.3)).await?;
    let attempt = match q.attempt {
        Some(n) => t
            .attempts
            .iter()
            .find(|a| a.record.attempt == n)
            .ok_or_else(|| UiError::NotFound(format!("task {} has no attempt {n}", t.task)))?,
        None => t.attempts.last().expect("a stored task has an attempt"),
    };
    let r = &attempt.record;
    let task_ref = TaskRef {
        step: r.step.clone(),
        task: r.task.clone(),
    };
    let (text, next, chunks) = reader
        .log_page(&record, &task_ref, r.attempt, q.from)
        .await?;
    let lines: Vec<LogLine> = text.lines().map(LogLine::parse).collect();
    ok(&json!({
        "attempt": r.attempt, "lines": lines, "next": next,
        "final": r.status != TaskStatus::Running && next >= chunks,
    }))
}

/// The artifact `name` of the task's newest committed attempt.
async fn artifact(
    reader: &Reader,
    (flow, run, step, task, name): &(String, String, String, String, String),
) -> Result<(String, ArtifactRef), UiError> {
    let name = checked(NameKind::Artifact, name)?;
    let (_, t) = task_of(reader, (flow, run, step, task)).await?;
    let a =
        t.artifacts.get(name).cloned().ok_or_else(|| {
            UiError::NotFound(format!("task {} has no artifact '{name}'", t.task))
        })?;
    Ok((name.to_string(), a))
}

type ArtifactPath = Path<(String, String, String, String, String)>;

/// What an artifact holds: its start as text, or what kind of bytes it is.
async fn preview(State(reader): Shared, Path(p): ArtifactPath) -> ApiResult {
    let (name, a) = artifact(&reader, &p).await?;
    let mut out = json!({
        "name": name, "size": a.size, "digest": a.digest, "kind": Kind::Dir,
        "text": null, "truncated": false, "pickle": null, "image": null, "verified": true,
    });
    if a.kind == ArtifactKind::Dir {
        return ok(&out);
    }
    let verify = a.size <= VERIFY_PREVIEW_UP_TO;
    let reader_ = reader.store().open_blob(&a.digest, a.size).await?;
    let head = tokio::task::spawn_blocking(move || read_head(reader_, PREVIEW_BYTES, verify))
        .await
        .expect("reading a preview does not panic")?;
    let complete = head.len() as u64 == a.size;
    let kind = preview::sniff(&name, &head, complete);
    out["kind"] = json!(kind);
    out["truncated"] = json!(!complete);
    out["verified"] = json!(verify);
    match kind {
        Kind::Text | Kind::Json | Kind::Csv => {
            out["text"] = json!(preview::utf8_prefix(&head, complete));
        }
        Kind::Pickle => out["pickle"] = json!(preview::describe_pickle(&head)),
        Kind::Image => out["image"] = json!(preview::image_type(&head)),
        Kind::Binary | Kind::Dir => {}
    }
    ok(&out)
}

/// The first `n` bytes of a blob; with `verify`, the rest is read too (and dropped) so that
/// a blob that does not match its digest is an error rather than a preview.
fn read_head(mut r: BlobReader, n: usize, verify: bool) -> Result<Vec<u8>, UiError> {
    let mut head = Vec::with_capacity(n.min(1 << 16));
    (&mut r)
        .take(n as u64)
        .read_to_end(&mut head)
        .map_err(|e| StoreError::from_io(e, "the artifact"))?;
    if verify {
        r.finish()?;
    }
    Ok(head)
}

/// An image artifact's bytes, with its image type: the page's `<img>` source.
async fn raw(State(reader): Shared, Path(p): ArtifactPath) -> ApiResult {
    let (name, a) = artifact(&reader, &p).await?;
    let (head, body) = stream(&reader, &a).await?;
    let Some(ty) = (a.kind == ArtifactKind::File)
        .then(|| preview::image_type(&head))
        .flatten()
    else {
        return Err(UiError::BadRequest(format!(
            "artifact '{name}' is not a PNG, JPEG, GIF or WebP image: download it instead"
        )));
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ty)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response())
}

/// An artifact's bytes as a download (a folder artifact as the tar it is stored as).
async fn download(State(reader): Shared, Path(p): ArtifactPath) -> ApiResult {
    let (name, a) = artifact(&reader, &p).await?;
    let (_, body) = stream(&reader, &a).await?;
    let file = match a.kind {
        ArtifactKind::File => name,
        ArtifactKind::Dir => format!("{name}.tar"),
    };
    // A checked artifact name holds only letters, digits, '.', '_' and '-'.
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).expect("a checked name is a header value"),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(a.size)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox"),
            ),
        ],
        body,
    )
        .into_response())
}

/// How many bytes [`stream`] reads before it answers, to tell the content's type.
const HEAD_BYTES: usize = 16;

/// Streams an artifact's content: its first bytes, and a body that carries it a block at a
/// time. The last block is held back until the whole content is verified, so a blob that
/// does not match its digest ends the body short of its length (the client sees a broken
/// download, never a complete one). Memory stays at a few blocks, whatever the size.
async fn stream(reader: &Reader, a: &ArtifactRef) -> Result<(Vec<u8>, Body), UiError> {
    let mut blob = reader.store().open_blob(&a.digest, a.size).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let mut head = Vec::with_capacity(HEAD_BYTES);
        if let Err(e) = (&mut blob).take(HEAD_BYTES as u64).read_to_end(&mut head) {
            let _ = head_tx.send(Err(StoreError::from_io(e, "the artifact")));
            return;
        }
        let _ = head_tx.send(Ok(head.clone()));
        let mut out = HoldBack {
            tx: tx.clone(),
            held: head,
        };
        let sent = blob
            .copy_to(&mut [&mut out], "the download")
            .map_err(|e| e.to_string())
            .and_then(|()| out.release().map_err(|e| e.to_string()));
        if let Err(e) = sent {
            tracing::warn!("a download stopped: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let head = head_rx.await.expect("the reader answers")?;
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((head, Body::from_stream(body)))
}

/// Sends what is written to a response body one write late: the newest block stays held
/// until [`HoldBack::release`]. Fails once the client has gone, which stops the read.
struct HoldBack {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    held: Vec<u8>,
}

impl HoldBack {
    fn send(&self, block: Vec<u8>) -> std::io::Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        self.tx
            .blocking_send(Ok(Bytes::from(block)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    /// Sends the held block: the content is verified.
    fn release(mut self) -> std::io::Result<()> {
        let last = std::mem::take(&mut self.held);
        self.send(last)
    }
}

impl std::io::Write for HoldBack {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let earlier = std::mem::replace(&mut self.held, buf.to_vec());
        self.send(earlier)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A package: its layers and the flow as pushed.
async fn package(State(reader): Shared, Path(digest): Path<String>) -> ApiResult {
    let digest: Digest = digest
        .parse()
        .map_err(|e: flowpack_core::digest::DigestParseError| UiError::BadRequest(e.to_string()))?;
    let m = reader.manifest(&digest).await?;
    ok(&json!({
        "digest": digest, "format": m.format, "layers": m.layers, "flow": m.flow,
    }))
}
