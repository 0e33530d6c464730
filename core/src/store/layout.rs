//! The bucket layout, version 1 (`docs/format.md` is its specification). Every key the
//! store reads or writes is made here, relative to the store's root prefix.
//!
//! ```text
//! v1/blobs/sha256/<first 2 hex>/<64 hex>       immutable, zstd; named by the content's digest
//! v1/flows/<flow>/versions/<version>.json      version pointer -> package digest
//! v1/runs/<flow>/<run>/run.json                   run record (create-only)
//! v1/runs/<flow>/<run>/<step>/<task>/<attempt>/task.json        lifecycle (claimed create-only)
//! v1/runs/<flow>/<run>/<step>/<task>/<attempt>/logs/<seq>.log   log chunks, appended as new objects
//! v1/runs/<flow>/<run>/<step>/<task>/<attempt>/artifacts.json   commit point, written last
//! v1/cache/<flow>/<first 2 hex>/<64 hex>.json  step cache index: key -> committed task
//! ```
//! No key is also a prefix of another key (some S3 servers store keys as file paths).
//!
//! Documents (records, pointers, artifact lists, log chunks) are read whole into memory,
//! so each kind has a size bound, [`document_bound`]: reads stop at it and writes are held
//! to it. Blobs stream, except manifests ([`MAX_MANIFEST_SIZE`]).

use crate::Digest;
use crate::manifest::MAX_MANIFEST_SIZE;

/// The most an artifact list (`artifacts.json`) may hold: 32 MiB, over 100,000 artifacts
/// (an entry takes about 200 bytes plus its name). Parsed, one this large takes about as
/// much memory again.
pub const MAX_ARTIFACTS_SIZE: u64 = 32 << 20;
/// The most a task record or a version pointer may hold: 4 MiB. Task records grow at a
/// join with the list of parents (~20 bytes each).
pub const MAX_RECORD_SIZE: u64 = 4 << 20;
/// The most a run record may hold: a manifest's size and 1 MiB. It holds every parameter's
/// value, and defaults may be as large as the manifest that carries them.
pub const MAX_RUN_RECORD_SIZE: u64 = MAX_MANIFEST_SIZE + (1 << 20);
/// The most a log chunk may hold: 4 MiB (the step's log shipper writes about 1 MiB).
pub const MAX_LOG_CHUNK_SIZE: u64 = 4 << 20;

/// How much of a document flowpack reads into memory, and what the document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The most bytes it may hold.
    pub max: u64,
    /// What it is, as errors say it ("an artifact list").
    pub what: &'static str,
}

/// The bound of the document at `key`: the one table of document limits.
pub fn document_bound(key: &str) -> Bound {
    let name = key.rsplit('/').next().unwrap_or(key);
    if key.starts_with(&format!("{FORMAT_VERSION}/blobs/")) {
        // Blobs stream; one read whole is a manifest (or a test looking at one).
        Bound {
            max: MAX_MANIFEST_SIZE,
            what: "a blob read whole",
        }
    } else if name == "artifacts.json" {
        Bound {
            max: MAX_ARTIFACTS_SIZE,
            what: "an artifact list",
        }
    } else if name == "run.json" {
        Bound {
            max: MAX_RUN_RECORD_SIZE,
            what: "a run record",
        }
    } else if name.ends_with(".log") && key.contains("/logs/") {
        Bound {
            max: MAX_LOG_CHUNK_SIZE,
            what: "a log chunk",
        }
    } else {
        Bound {
            max: MAX_RECORD_SIZE,
            what: "a record",
        }
    }
}

/// The layout version; it is the first segment of every key.
pub const FORMAT_VERSION: &str = "v1";

/// The key of the blob named `d`.
pub fn blob(d: &Digest) -> String {
    let hex = d.hex();
    format!("{}{hex}", blob_folder(&hex))
}

/// The folder of the blobs whose hex digest starts with the first two digits of `hex`
/// (at least two lowercase hex digits).
pub fn blob_folder(hex: &str) -> String {
    format!("{FORMAT_VERSION}/blobs/sha256/{}/", &hex[..2])
}

/// The folder of a flow's version pointers.
pub fn versions(flow: &str) -> String {
    format!("{FORMAT_VERSION}/flows/{flow}/versions/")
}

/// The key of one version pointer of a flow.
pub fn version(flow: &str, version: &str) -> String {
    format!("{}{version}.json", versions(flow))
}

/// The folder of all runs.
pub fn runs() -> String {
    format!("{FORMAT_VERSION}/runs/")
}

/// The folder of a flow's runs.
pub fn flow_runs(flow: &str) -> String {
    format!("{FORMAT_VERSION}/runs/{flow}/")
}

/// The folder of one run.
pub fn run(flow: &str, run: &str) -> String {
    format!("{FORMAT_VERSION}/runs/{flow}/{run}/")
}

/// The run record.
pub fn run_record(flow: &str, run_id: &str) -> String {
    format!("{}run.json", run(flow, run_id))
}

/// The folder of a task's attempts.
pub fn task(flow: &str, run_id: &str, step: &str, task: &str) -> String {
    format!("{}{step}/{task}/", run(flow, run_id))
}

/// The folder of one attempt of a task.
pub fn attempt(flow: &str, run_id: &str, step: &str, task_id: &str, attempt: u32) -> String {
    format!("{}{attempt}/", task(flow, run_id, step, task_id))
}

/// The step cache's index entry for cache key `key` (64 hex) of flow `flow`.
pub fn cache_entry(flow: &str, key: &Digest) -> String {
    let hex = key.hex();
    format!("{FORMAT_VERSION}/cache/{flow}/{}/{hex}.json", &hex[..2])
}

/// Whether `v` may name a version: 1 to 128 letters, digits, `.`, `_` or `-`, not
/// starting with `.`.
pub fn is_version_name(v: &str) -> bool {
    crate::name::check(crate::name::NameKind::Version, v).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let d = Digest::of(b"abc");
        assert_eq!(
            blob(&d),
            "v1/blobs/sha256/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(version("f", "2026"), "v1/flows/f/versions/2026.json");
        assert!(is_version_name("20261122T120000Z") && !is_version_name("../x"));
    }

    #[test]
    fn document_bounds_by_kind() {
        let a = attempt("f", "r", "s", "0", 1);
        assert_eq!(
            document_bound(&format!("{a}artifacts.json")).max,
            MAX_ARTIFACTS_SIZE
        );
        assert_eq!(
            document_bound(&format!("{a}logs/00000001.log")).max,
            MAX_LOG_CHUNK_SIZE
        );
        assert_eq!(
            document_bound(&blob(&Digest::of(b"m"))).max,
            MAX_MANIFEST_SIZE
        );
        assert_eq!(
            document_bound(&run_record("f", "r")).max,
            MAX_RUN_RECORD_SIZE
        );
        for key in [format!("{a}task.json"), version("f", "v1")] {
            assert_eq!(document_bound(&key).max, MAX_RECORD_SIZE, "{key}");
        }
    }
}
