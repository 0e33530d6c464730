//! Store errors: each names the key (or URL) involved and the cause.

use std::path::PathBuf;

use crate::Digest;

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL cannot be used.
    #[error("store URL '{url}' is not usable: {reason}")]
    BadUrl {
        /// The URL through [`super::redact_url`]: nothing secret in it is shown.
        url: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// The backend could not be configured.
    #[error("cannot open the store {url}: {source}")]
    Open {
        /// The store, through [`super::redact_url`].
        url: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// A request failed after the bounded retries.
    #[error("{op} {key} failed: {source}")]
    Request {
        /// What was being done: GET, PUT, HEAD, LIST.
        op: &'static str,
        /// The full key.
        key: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
    /// An object that should exist does not.
    #[error("{key} is not in the store")]
    NotFound {
        /// The full key.
        key: String,
    },
    /// The bucket or container does not exist.
    #[error(
        "the bucket or container of {url} does not exist, or these credentials cannot see it: create it first"
    )]
    NoBucket {
        /// The store.
        url: String,
    },
    /// Stored bytes do not hash to the digest that names them.
    #[error("{key} is corrupt: its content hashes to {actual}, not {expected}; it was not used")]
    DigestMismatch {
        /// The full key.
        key: String,
        /// The digest that names it.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// Stored bytes cannot be decoded or are larger than declared.
    #[error("{key} is corrupt: {reason}; it was not used")]
    Corrupt {
        /// The full key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A document or small blob is larger than flowpack reads into memory (or writes) for
    /// its kind; reading stopped there.
    #[error("{key}: {what} may hold at most {}, and this one is larger; refused", human(*.max))]
    TooLarge {
        /// The full key.
        key: String,
        /// The limit, in bytes (of the content, for a blob).
        max: u64,
        /// What the object is.
        what: &'static str,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `n` bytes for people: `16 MiB`, `64 KiB`, `1000 bytes`.
fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

impl StoreError {
    /// Whether this is [`StoreError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}
