//! Building one layer in a single pass over the files: the deterministic tar stream goes
//! through a [`BlobWriter`] (hashed and zstd-compressed to a temporary file at once).
//!
//! [`Index`] remembers, per tree fingerprint (see `tree::Listing::fingerprint`), the digest
//! the tree packed to: an unchanged tree is then found in the store without reading a
//! single file.

use std::path::{Path, PathBuf};

use flowpack_core::Digest;
use flowpack_core::archive::{self, Entry};
use flowpack_core::store::BlobWriter;
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;

use crate::PushError;

/// The zstd level of layers.
pub const LEVEL: i32 = 3;

/// The identity of a layer's tar stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashed {
    /// Digest of the uncompressed tar stream.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
    /// How many entries it holds.
    pub entries: u64,
}

/// Writes the tar stream of `entries`, zstd-compressed, to a temporary file in `tmp_dir`,
/// and returns the stream's identity with the file. One pass: this thread reads and hashes
/// while zstd's workers compress.
pub fn pack(entries: &mut [Entry], tmp_dir: &Path) -> Result<(Hashed, NamedTempFile), PushError> {
    let io_err = |source| PushError::Io {
        path: tmp_dir.to_path_buf(),
        source,
    };
    let w = archive::write_tar(entries, BlobWriter::new(tmp_dir, LEVEL).map_err(io_err)?)?;
    let (digest, size, file) = w.finish().map_err(io_err)?;
    let hashed = Hashed {
        digest,
        size,
        entries: entries.len() as u64,
    };
    Ok((hashed, file))
}

/// Tree fingerprint -> layer identity, one small file per tree in the local cache.
pub struct Index {
    dir: PathBuf,
}

impl Index {
    /// The index in `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("layers-v1"),
        }
    }

    fn path(&self, fingerprint: &Digest) -> PathBuf {
        self.dir.join(fingerprint.hex())
    }

    /// What the tree of `fingerprint` packed to, if known.
    pub fn get(&self, fingerprint: &Digest) -> Option<Hashed> {
        let bytes = std::fs::read(self.path(fingerprint)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Remembers what the tree of `fingerprint` packed to. Failing to write only costs a
    /// later push a re-read, so errors are ignored.
    pub fn put(&self, fingerprint: &Digest, hashed: &Hashed) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = NamedTempFile::new_in(&self.dir)?;
            serde_json::to_writer(tmp.as_file(), hashed)?;
            tmp.persist(self.path(fingerprint))?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::debug!("cannot record the layer index entry: {e}");
        }
    }
}
