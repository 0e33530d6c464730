//! flowpack's runtime: what runs a flow.
//!
//! - [`step`]: `flowpack step`, the entrypoint of every task, in a KFP pod or on this
//!   machine: a fixed sequence of phases from claiming an attempt to reporting.
//! - [`local`]: `flowpack run`, the local dry-run: it plans the graph and runs every task
//!   by spawning `flowpack step` with the arguments a pod gets; [`podman`] runs those
//!   steps in their images instead (`--containers`).
//! - [`inspect`]: reading runs back: `runs`, `show`, `logs`, `artifacts get`; and `resume`.
//! - [`cache`]: the node-local cache of packages and artifacts.
#![deny(missing_docs)]

pub mod cache;
pub mod inspect;
pub mod local;
pub mod podman;
pub mod step;

use std::path::{Path, PathBuf};

use flowpack_core::archive::ArchiveError;
use flowpack_core::manifest::ManifestError;
use flowpack_core::package::PackageError;
use flowpack_core::store::StoreError;

/// Why running (part of) a flow failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The arguments or the flow do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// A run, task or package the store does not have (the text says which, and where).
    #[error("{0}")]
    NotFound(String),
    /// flowpack itself went wrong (a panic, caught so the task still reports).
    #[error("flowpack failed unexpectedly (a bug): {0}")]
    Bug(String),
    /// An input artifact a task needs is not there.
    #[error("artifact '{artifact}' is not among the artifacts of {parents}: {hint}")]
    MissingInput {
        /// The artifact.
        artifact: String,
        /// The parent tasks.
        parents: String,
        /// What to check.
        hint: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(Box<StoreError>),
    /// The package could not be read.
    #[error(transparent)]
    Package(Box<PackageError>),
    /// The manifest is not usable.
    #[error(transparent)]
    Manifest(Box<ManifestError>),
    /// An archive could not be written or extracted.
    #[error(transparent)]
    Archive(Box<ArchiveError>),
    /// Packing the flow failed.
    #[error(transparent)]
    Push(Box<flowpack_packager::PushError>),
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

/// The library errors inside are large; boxing keeps `Result<_, RuntimeError>` small.
macro_rules! boxed_from {
    ($($variant:ident: $ty:ty),*) => {$(
        impl From<$ty> for RuntimeError {
            fn from(e: $ty) -> Self {
                Self::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Store: StoreError,
    Package: PackageError,
    Manifest: ManifestError,
    Archive: ArchiveError,
    Push: flowpack_packager::PushError
);

impl RuntimeError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
