//! Building flowpack packages and pushing them to a store.
//!
//! [`push`] packs the flow's code tree ([`tree`] lists it, [`layer`] makes the
//! deterministic layer) and its Python environments ([`env`]: the flow's and each distinct
//! step environment, once), uploads only the blobs the
//! store lacks, then writes the manifest and last the version pointer — so a manifest that
//! exists means its package is complete, and a version pointer that exists means its
//! manifest does. Progress goes to a [`Reporter`]; this crate never prints.
#![deny(missing_docs)]

pub mod env;
pub mod layer;
mod push;
pub mod tree;

use std::path::PathBuf;

pub use push::{
    LARGE_CODE_BYTES, LARGE_CODE_ENTRIES, LargeLayer, LayerReport, PushOptions, PushReport,
    Reporter, default_version_name, push, record_version,
};

/// A byte count for people: `0 B`, `4.2 KiB`, `20.1 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

use flowpack_core::archive::ArchiveError;
use flowpack_core::store::StoreError;

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A tree could not be listed.
    #[error("cannot pack {}: {reason}", path.display())]
    Tree {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Files changed between hashing and compressing.
    #[error("files changed while they were being packed; push again")]
    TreeChanged,
    /// The env layer could not be made.
    #[error("env layer: {reason}")]
    Env {
        /// Why.
        reason: String,
    },
    /// A version name is taken by another package.
    #[error(
        "version '{version}' of flow '{flow}' already exists for package {existing}; versions are immutable: pick another --version-name"
    )]
    VersionTaken {
        /// The flow.
        flow: String,
        /// The version.
        version: String,
        /// The package it names.
        existing: String,
    },
    /// A version name that cannot be a key.
    #[error("version name '{0}' is not valid: use 1 to 128 letters, digits, '.', '_' or '-'")]
    BadVersion(String),
    /// Packing failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
