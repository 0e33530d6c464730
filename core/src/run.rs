//! Run and task records: what `flowpack step` writes and `flowpack run`, `show`, `logs`
//! and `resume` read. Keys are in [`crate::store::layout`]; `docs/format.md` specifies them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Digest;
use crate::name::{self, NameKind};

/// Where a run id says the run ran: `kfp` for `kfp-…`, `argo` for `argo-…`, else `local`.
pub fn origin_of(run: &str) -> &'static str {
    if run.starts_with("kfp-") {
        "kfp"
    } else if run.starts_with("argo-") {
        "argo"
    } else {
        "local"
    }
}

/// A run: one execution of a package with parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The flow.
    #[serde(deserialize_with = "name::de::flow")]
    pub flow: String,
    /// The run id: `local-…`, `kfp-<uuid>` or `argo-<workflow uid>`.
    #[serde(deserialize_with = "name::de::run")]
    pub run: String,
    /// The package it runs.
    pub package: Digest,
    /// Parameter values, defaults included.
    #[serde(deserialize_with = "name::de::parameter_map")]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// `local`, `kfp` or `argo` ([`origin_of`]).
    pub origin: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// The flowpack that created it.
    pub created_by: String,
    /// The run this one resumed, if any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "name::de::opt_run"
    )]
    pub resumed_from: Option<String>,
    /// `flowpack run --no-cache`: no task of this run is reused from the step cache.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Claimed and working.
    Running,
    /// The child exited 0 and the outputs are committed.
    Succeeded,
    /// The child exited non-zero, or flowpack failed around it.
    Failed,
    /// The child ran past the step's timeout and was stopped.
    TimedOut,
    /// The task was stopped by SIGTERM or SIGINT.
    Terminated,
    /// Taken over from a committed task by reference: by `resume`, or a step-cache hit.
    Reused,
    /// Not run, by design: an `on_failure` hook of a run that succeeded. Nothing committed.
    Skipped,
    /// Its runner stopped without a word (kill -9, out of memory, a lost node): the record
    /// still says running but a newer attempt exists or its heartbeats stopped. Derived by
    /// readers (`show`, `runs`), never written.
    Lost,
}

impl TaskStatus {
    /// Whether the task's outputs are committed and usable.
    pub fn is_success(self) -> bool {
        matches!(self, Self::Succeeded | Self::Reused)
    }

    /// The status as records write it (`succeeded`, `timed_out`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Terminated => "terminated",
            Self::Reused => "reused",
            Self::Skipped => "skipped",
            Self::Lost => "lost",
        }
    }
}

/// Bytes a task moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bytes {
    /// Downloaded from the store (package layers, inputs), compressed.
    pub downloaded: u64,
    /// Uploaded to the store (outputs, logs), compressed.
    pub uploaded: u64,
    /// Outputs the store already had, or inherited by reference.
    pub reused: u64,
}

/// The lifecycle record of one attempt of a task (`task.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The run.
    #[serde(deserialize_with = "name::de::run")]
    pub run: String,
    /// The step.
    #[serde(deserialize_with = "name::de::step")]
    pub step: String,
    /// The task id within the step.
    #[serde(deserialize_with = "name::de::task")]
    pub task: String,
    /// The attempt, from 0.
    pub attempt: u32,
    /// Status.
    pub status: TaskStatus,
    /// The host or pod.
    pub host: String,
    /// The step's image.
    pub image: String,
    /// The flowpack that ran it.
    pub flowpack_version: String,
    /// The parent tasks whose artifacts it restored (`step/task`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "name::de::task_refs"
    )]
    pub parents: Vec<String>,
    /// For a foreach child: its index in the parent's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_index: Option<u64>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The last sign of life (RFC 3339).
    pub heartbeat_at: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The child's exit code, or flowpack's own (see docs/runtime.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What went wrong, for flowpack's own failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds spent in each phase.
    #[serde(default)]
    pub phases: BTreeMap<String, f64>,
    /// Bytes moved.
    #[serde(default)]
    pub bytes: Bytes,
    /// For reused tasks: `run/step/task/attempt` the outputs come from.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "name::de::opt_run_attempt_ref"
    )]
    pub reused_from: Option<String>,
    /// For reused tasks: why (`cache` or `resume`). Absent in records written before it
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_reason: Option<ReuseReason>,
    /// For tasks reused from the step cache: the cache key (64 hex) they were found by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
}

/// Why a task's outputs were taken over from another task instead of computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReuseReason {
    /// The step cache: a committed task had the same cache key (docs/runtime.md).
    Cache,
    /// `flowpack resume` or a KFP resume: the origin run's task, before the redone steps.
    Resume,
}

/// An entry of the step cache's index (`v1/cache/<flow>/<2 hex>/<64 hex>.json`): the
/// committed task whose inputs gave the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The run.
    #[serde(deserialize_with = "name::de::run")]
    pub run: String,
    /// The step.
    #[serde(deserialize_with = "name::de::step")]
    pub step: String,
    /// The task id.
    #[serde(deserialize_with = "name::de::task")]
    pub task: String,
    /// The committed attempt.
    pub attempt: u32,
}

/// What an artifact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// A file; the blob is its content.
    File,
    /// A folder; the blob is a layer-format tar of it.
    Dir,
}

/// One artifact in a task's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The blob.
    pub digest: Digest,
    /// Uncompressed size of the blob.
    pub size: u64,
    /// File or folder.
    pub kind: ArtifactKind,
    /// The task that wrote it: `step/task/attempt` (inherited artifacts keep their origin).
    #[serde(deserialize_with = "name::de::attempt_ref")]
    pub origin: String,
}

/// A task's committed namespace (`artifacts.json`): what it inherited and what it wrote.
/// Its existence commits the attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    /// Every artifact visible after the task, by name.
    #[serde(deserialize_with = "name::de::artifact_map")]
    pub artifacts: BTreeMap<String, ArtifactRef>,
}

/// A task's address within a run: `step/task`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskRef {
    /// The step.
    pub step: String,
    /// The task id.
    pub task: String,
}

impl fmt::Display for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.step, self.task)
    }
}

impl FromStr for TaskRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        name::check(NameKind::TaskRef, s).map_err(|e| e.to_string())?;
        let (step, task) = s
            .split_once('/')
            .expect("a checked task reference has a '/'");
        Ok(Self {
            step: step.to_string(),
            task: task.to_string(),
        })
    }
}

/// Task ids: `0` outside any foreach, else the foreach indices from the outermost in,
/// joined by `.` (`3`, `3.1`).
pub fn is_task_id(s: &str) -> bool {
    name::check(NameKind::Task, s).is_ok()
}

/// Whether `s` can be a run id: 1 to 128 letters, digits, `_` or `-`.
pub fn is_run_id(s: &str) -> bool {
    name::check(NameKind::Run, s).is_ok()
}

/// A new local run id: `local-<UTC time>-<4 hex>`.
pub fn new_local_run_id() -> String {
    let now = jiff::Timestamp::now();
    let nanos = now.subsec_nanosecond() as u32 ^ std::process::id();
    format!(
        "local-{}-{:04x}",
        now.strftime("%Y%m%dT%H%M%SZ"),
        nanos & 0xffff
    )
}

/// Where a task's inputs go, below its inputs folder (docs/runtime.md): the artifacts of
/// the only parent, or those every parent agrees on (same digest), at the top; at a join,
/// each parent's whole namespace also below `<parent step>/` (after a static split) or
/// `<foreach index>/` (after a foreach).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputLayout {
    /// The namespace the task inherits: the artifacts at the top.
    pub inherited: Artifacts,
    /// Each artifact to restore and its path relative to the inputs folder: one or two
    /// normal components, each a checked name, so it stays inside the folder.
    pub placements: Vec<(std::path::PathBuf, ArtifactRef)>,
}

impl InputLayout {
    /// The layout for `parents` (their committed namespaces), restoring only the artifacts
    /// named in `only` when given.
    pub fn of(parents: &[(TaskRef, Artifacts)], only: Option<&BTreeSet<String>>) -> Self {
        let wanted = |name: &str| only.is_none_or(|o| o.contains(name));
        let inherited: BTreeMap<String, ArtifactRef> = match parents.split_first() {
            None => BTreeMap::new(),
            Some(((_, first), rest)) => first
                .artifacts
                .iter()
                .filter(|(name, a)| {
                    rest.iter()
                        .all(|(_, o)| o.artifacts.get(*name).is_some_and(|b| b.digest == a.digest))
                })
                .map(|(n, a)| (n.clone(), a.clone()))
                .collect(),
        };
        // A foreach join's parents have distinct task ids (one per item; their steps differ
        // when the body holds a switch); a split join's share one.
        let foreach = parents.iter().all(|(p, _)| p.step == parents[0].0.step)
            || parents.iter().any(|(p, _)| p.task != parents[0].0.task);
        let label = |p: &TaskRef| -> String {
            if foreach {
                let (indices, _) = crate::name::split_visit(&p.task);
                indices.rsplit('.').next().unwrap_or(indices).to_string()
            } else {
                p.step.clone()
            }
        };
        // At a join each parent has a folder; an inherited artifact named like one (a
        // branch step, a foreach index) stays under the parents' folders only: the path is
        // the folder's. It is still inherited past the join.
        let labels: BTreeSet<String> = match parents.len() {
            0 | 1 => BTreeSet::new(),
            _ => parents.iter().map(|(p, _)| label(p)).collect(),
        };
        let mut placements: Vec<_> = inherited
            .iter()
            .filter(|(name, _)| wanted(name) && !labels.contains(*name))
            .map(|(name, a)| (std::path::PathBuf::from(name), a.clone()))
            .collect();
        if parents.len() > 1 {
            for (p, arts) in parents {
                let label = label(p);
                for (name, a) in arts.artifacts.iter().filter(|(n, _)| wanted(n)) {
                    placements.push((std::path::Path::new(&label).join(name), a.clone()));
                }
            }
        }
        Self {
            inherited: Artifacts {
                artifacts: inherited,
            },
            placements,
        }
    }
}
