//! Every store read the UI makes, and the bounded in-memory caches that keep a large store
//! fast to browse: run records (create-only), runs that can no longer change, package
//! manifests and log chunks (each written once). Nothing that may still change is cached
//! for longer than [`FRESH_FOR`], so a page that polls sees new runs and status changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flowpack_core::Digest;
use flowpack_core::manifest::Manifest;
use flowpack_core::run::{RunRecord, TaskRef};
use flowpack_core::store::{Store, layout};
use flowpack_runtime::inspect::{self, RunInfo, RunStatus};
use futures::{StreamExt, TryStreamExt};
use quick_cache::Weighter;
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use serde::Serialize;

use crate::UiError;

/// How long a listing, or a run that may still change, is reused before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(2);
/// A failed run is taken as final once its last task ended this long ago: longer than any
/// retry's wait (the engines cap backoff at one hour), so no retry can still come.
const FAILED_SETTLES_AFTER: Duration = Duration::from_secs(2 * 3600);
/// How many store reads run at once when many runs are read.
const CONCURRENT_READS: usize = 32;
/// A log page holds at most this many chunks (each at most 4 MiB, usually about 1 MiB).
pub const LOG_CHUNKS_PER_PAGE: usize = 4;

/// How much memory the caches may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes for all caches together (an estimate of the parsed size).
    pub cache_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cache_bytes: 256 << 20,
        }
    }
}

/// What the runs list shows of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The flow.
    pub flow: String,
    /// The run id.
    pub run: String,
    /// `local`, `kfp` or `argo`.
    pub origin: String,
    /// Derived from the tasks.
    pub status: RunStatus,
    /// When the run was created.
    pub created_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
    /// Wall seconds from creation to the end.
    pub seconds: Option<f64>,
    /// Parameter values.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The package.
    pub package: Digest,
    /// The run it resumed.
    pub resumed_from: Option<String>,
    /// How many tasks it has.
    pub tasks: usize,
    /// Tasks by the status of their newest attempt.
    pub counts: BTreeMap<&'static str, usize>,
}

impl RunSummary {
    /// The summary of a loaded run.
    pub fn of(info: &RunInfo) -> Self {
        let r = &info.record;
        let mut counts = BTreeMap::new();
        for t in &info.tasks {
            if let Some(s) = t.status() {
                *counts.entry(s.name()).or_insert(0) += 1;
            }
        }
        Self {
            flow: r.flow.clone(),
            run: r.run.clone(),
            origin: r.origin.clone(),
            status: info.status,
            created_at: r.created_at.clone(),
            finished_at: info.finished_at.clone(),
            seconds: info
                .finished_at
                .as_deref()
                .and_then(|end| seconds_between(&r.created_at, end)),
            parameters: r.parameters.clone(),
            package: r.package,
            resumed_from: r.resumed_from.clone(),
            tasks: info.tasks.len(),
            counts,
        }
    }
}

/// Seconds from `start` to `end` (RFC 3339), when both parse.
pub fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let start: jiff::Timestamp = start.parse().ok()?;
    let end: jiff::Timestamp = end.parse().ok()?;
    Some(end.duration_since(start).as_secs_f64())
}

/// A cached value and when it was read.
struct Dated<T> {
    value: Arc<T>,
    read_at: Instant,
    /// Whether it can no longer change.
    settled: bool,
}

impl<T> Clone for Dated<T> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            read_at: self.read_at,
            settled: self.settled,
        }
    }
}

impl<T> Dated<T> {
    /// `value`, read now.
    fn new(value: T, settled: bool) -> Self {
        Self {
            value: Arc::new(value),
            read_at: Instant::now(),
            settled,
        }
    }

    fn usable(&self) -> bool {
        self.settled || self.read_at.elapsed() < FRESH_FOR
    }
}

/// Weighs cache entries by an estimate of the memory they hold.
#[derive(Clone, Copy)]
struct ByWeight;

/// An estimate of the memory a cached value holds.
trait Weight {
    fn weight(&self) -> u64;
}

impl Weight for RunRecord {
    fn weight(&self) -> u64 {
        512 + self
            .parameters
            .iter()
            .map(|(k, v)| k.len() + v.to_string().len())
            .sum::<usize>() as u64
    }
}

impl Weight for RunInfo {
    fn weight(&self) -> u64 {
        self.tasks
            .iter()
            .map(|t| 256 + 768 * t.attempts.len() as u64 + 256 * t.artifacts.len() as u64)
            .sum::<u64>()
            + 1024
    }
}

impl Weight for RunSummary {
    fn weight(&self) -> u64 {
        512 + 64 * self.parameters.len() as u64
    }
}

impl Weight for Manifest {
    fn weight(&self) -> u64 {
        4096 + 1024 * self.flow.steps.len() as u64 + 256 * self.layers.len() as u64
    }
}

impl Weight for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64 + 64
    }
}

impl<K, T: Weight> Weighter<K, Dated<T>> for ByWeight {
    fn weight(&self, _key: &K, val: &Dated<T>) -> u64 {
        val.value.weight().max(1)
    }
}

type Keyed<T> = Cache<String, Dated<T>, ByWeight>;

fn cache<T: Weight>(bytes: u64) -> Keyed<T> {
    Cache::with_weighter((bytes / 4096).max(16) as usize, bytes.max(1), ByWeight)
}

/// Every run in the store as `(flow, run)`.
pub type RunIds = Vec<(String, String)>;

/// The store, read through the caches.
pub struct Reader {
    store: Store,
    records: Keyed<RunRecord>,
    runs: Keyed<RunInfo>,
    summaries: Keyed<RunSummary>,
    manifests: Keyed<Manifest>,
    chunks: Keyed<Bytes>,
    listing: Mutex<Option<Dated<RunIds>>>,
}

impl Reader {
    /// A reader of `store` whose caches together stay within `limits`.
    pub fn new(store: Store, limits: Limits) -> Self {
        let part = |share: u64| limits.cache_bytes / 16 * share;
        Self {
            store,
            records: cache(part(2)),
            runs: cache(part(7)),
            summaries: cache(part(2)),
            manifests: cache(part(1)),
            chunks: cache(part(4)),
            listing: Mutex::new(None),
        }
    }

    /// The store, for reads that need no cache (blobs stream).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every run in the store as `(flow, run)`, listed at most every [`FRESH_FOR`].
    pub async fn run_ids(&self) -> Result<Arc<RunIds>, UiError> {
        if let Some(d) = self.listing.lock().expect("listing lock").as_ref()
            && d.usable()
        {
            return Ok(d.value.clone());
        }
        let flows = self.store.list_dirs(&layout::runs()).await?;
        let per_flow: Vec<Vec<(String, String)>> = futures::stream::iter(flows)
            .map(|flow| async move {
                let runs = self.store.list_dirs(&layout::flow_runs(&flow)).await?;
                Ok::<_, UiError>(runs.into_iter().map(|r| (flow.clone(), r)).collect())
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let listed: Dated<RunIds> = Dated::new(per_flow.into_iter().flatten().collect(), false);
        let ids = listed.value.clone();
        *self.listing.lock().expect("listing lock") = Some(listed);
        Ok(ids)
    }

    /// A run's record (create-only, so cached for good); None when there is none.
    pub async fn record(&self, flow: &str, run: &str) -> Result<Option<Arc<RunRecord>>, UiError> {
        let key = layout::run_record(flow, run);
        once(&self.records, &key, || async {
            match self.store.get_json::<RunRecord>(&key).await {
                Ok(r) => Ok(Some(Dated::new(r, true))),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// The record of every run, newest first. A record that cannot be read (a run folder
    /// being created, or a damaged record) is left out with a warning: one bad run must not
    /// hide the others.
    pub async fn records(&self) -> Result<Vec<Arc<RunRecord>>, UiError> {
        let ids = self.run_ids().await?;
        let mut out: Vec<Arc<RunRecord>> = futures::stream::iter(ids.iter().cloned())
            .map(|(flow, run)| async move {
                match self.record(&flow, &run).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!("run {flow}/{run} is left out: {e}");
                        None
                    }
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        out.sort_by(|a, b| (&b.created_at, &b.flow, &b.run).cmp(&(&a.created_at, &a.flow, &a.run)));
        Ok(out)
    }

    /// A run with all its tasks; cached for good once it can no longer change.
    pub async fn run(&self, record: &RunRecord) -> Result<Arc<RunInfo>, UiError> {
        let key = layout::run(&record.flow, &record.run);
        let info = once(&self.runs, &key, || async {
            let info = inspect::load(&self.store, record.clone()).await?;
            let settled = is_settled(&info);
            Ok(Some(Dated::new(info, settled)))
        })
        .await?;
        Ok(info.expect("a loaded run is always kept"))
    }

    /// What the runs list shows of a run: kept apart from the whole run (and smaller), so
    /// a store's run list stays cached when its runs' tasks do not.
    pub async fn summary(&self, record: &RunRecord) -> Result<Arc<RunSummary>, UiError> {
        let key = layout::run(&record.flow, &record.run);
        let summary = once(&self.summaries, &key, || async {
            let info = self.run(record).await?;
            Ok(Some(Dated::new(RunSummary::of(&info), is_settled(&info))))
        })
        .await?;
        Ok(summary.expect("a summary is always kept"))
    }

    /// The summaries of `records`, in their order, read [`CONCURRENT_READS`] at a time.
    pub async fn summaries(
        &self,
        records: &[Arc<RunRecord>],
    ) -> Result<Vec<Arc<RunSummary>>, UiError> {
        futures::stream::iter(records.iter().cloned())
            .map(|r| async move { self.summary(&r).await })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await
    }

    /// A package's manifest (immutable: cached).
    pub async fn manifest(&self, package: &Digest) -> Result<Arc<Manifest>, UiError> {
        let key = layout::blob(package);
        let m = once(&self.manifests, &key, || async {
            let m = flowpack_core::package::read_manifest(&self.store, package).await?;
            Ok(Some(Dated::new(m, true)))
        })
        .await?;
        Ok(m.expect("a read manifest is always kept"))
    }

    /// One log chunk (written once, never changed: cached).
    pub async fn chunk(&self, key: &str) -> Result<Bytes, UiError> {
        let b = once(&self.chunks, key, || async {
            Ok(Some(Dated::new(self.store.get_bytes(key).await?, true)))
        })
        .await?;
        Ok((*b.expect("a read chunk is always kept")).clone())
    }

    /// Up to [`LOG_CHUNKS_PER_PAGE`] log chunks of one attempt from chunk `from`: their
    /// text, the number of the next chunk to read, and how many chunks there are now.
    pub async fn log_page(
        &self,
        record: &RunRecord,
        task: &TaskRef,
        attempt: u32,
        from: usize,
    ) -> Result<(String, usize, usize), UiError> {
        let keys = inspect::log_chunks(&self.store, record, task, attempt).await?;
        let mut text = String::new();
        let mut next = from.min(keys.len());
        for key in keys.iter().skip(from).take(LOG_CHUNKS_PER_PAGE) {
            text.push_str(&String::from_utf8_lossy(&self.chunk(key).await?));
            next += 1;
        }
        Ok((text, next, keys.len()))
    }

    /// The last `lines` lines of one attempt's log (from its last chunks only).
    pub async fn log_tail(
        &self,
        record: &RunRecord,
        task: &TaskRef,
        attempt: u32,
        lines: usize,
    ) -> Result<Vec<String>, UiError> {
        let keys = inspect::log_chunks(&self.store, record, task, attempt).await?;
        let mut tail: Vec<String> = Vec::new();
        for key in keys.iter().rev() {
            let text = self.chunk(key).await?;
            let mut these: Vec<String> = String::from_utf8_lossy(&text)
                .lines()
                .map(String::from)
                .collect();
            these.append(&mut tail);
            tail = these;
            if tail.len() >= lines {
                break;
            }
        }
        let cut = tail.len().saturating_sub(lines);
        Ok(tail.split_off(cut))
    }

    /// Reads every run's summary, newest first, a few at a time, so that filtering the runs
    /// list by status is fast from the first request on a large store. Stops at the first
    /// error (the requests that need a run will say it).
    pub fn warm_in_background(self: Arc<Self>) {
        tokio::spawn(async move {
            let started = Instant::now();
            let records = match self.records().await {
                Ok(r) => r,
                Err(e) => return tracing::warn!("reading the runs list failed: {e}"),
            };
            let n = records.len();
            let mut s = futures::stream::iter(records)
                .map(|r| {
                    let me = self.clone();
                    async move { me.summary(&r).await }
                })
                .buffer_unordered(4);
            while let Some(r) = s.next().await {
                if let Err(e) = r {
                    return tracing::warn!("reading the runs failed: {e}");
                }
            }
            tracing::info!("read {n} runs in {:.2?}", started.elapsed());
        });
    }
}

/// The value cached at `key` while it is usable, else what `load` reads (None: nothing to
/// keep). Callers asking for the same key at once share one load: the first loads, the
/// others wait for its value (or load themselves when it failed).
async fn once<T: Weight, F, Fut>(
    cache: &Keyed<T>,
    key: &str,
    load: F,
) -> Result<Option<Arc<T>>, UiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Dated<T>>, UiError>>,
{
    let guard = match cache
        .entry_async(key, |_, d| match d.usable() {
            true => EntryAction::Retain(d.value.clone()),
            false => EntryAction::ReplaceWithGuard,
        })
        .await
    {
        EntryResult::Retained(v) => return Ok(Some(v)),
        EntryResult::Vacant(g) | EntryResult::Replaced(g, _) => g,
        EntryResult::Removed(..) | EntryResult::Timeout => {
            unreachable!("the callback never removes and there is no timeout")
        }
    };
    let Some(dated) = load().await? else {
        return Ok(None);
    };
    let value = dated.value.clone();
    let _ = guard.insert(dated);
    Ok(Some(value))
}

/// Whether a run can no longer change: it succeeded, or it failed long enough ago that no
/// retry can still come.
fn is_settled(info: &RunInfo) -> bool {
    match info.status {
        RunStatus::Succeeded => true,
        RunStatus::Running => false,
        RunStatus::Failed => info
            .finished_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_some_and(|t| {
                jiff::Timestamp::now().duration_since(t).as_secs_f64()
                    > FAILED_SETTLES_AFTER.as_secs_f64()
            }),
    }
}
