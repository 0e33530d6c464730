//! Building one layer: hash the deterministic tar stream first (cheap), and compress it to
//! a temporary file only when the store lacks the blob.

use std::io::{self, BufWriter};
use std::path::Path;

use flowpack_core::Digest;
use flowpack_core::archive::{self, Entry};
use flowpack_core::digest::HashingWriter;
use tempfile::NamedTempFile;

use crate::PushError;

/// The zstd level of layers.
pub const LEVEL: i32 = 3;

/// The identity of a layer's tar stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hashed {
    /// Digest of the uncompressed tar stream.
    pub digest: Digest,
    /// Its length.
    pub size: u64,
    /// How many entries it holds.
    pub entries: u64,
}

/// Hashes the tar stream of `entries` without storing it.
pub fn hash(entries: &mut [Entry]) -> Result<Hashed, PushError> {
    let w = archive::write_tar(entries, HashingWriter::new(io::sink()))?;
    let (_, digest, size) = w.finish();
    Ok(Hashed {
        digest,
        size,
        entries: entries.len() as u64,
    })
}

/// Writes the tar stream of `entries`, zstd-compressed, to a temporary file in `tmp_dir`,
/// and checks that it still hashes to `expected` (the tree did not change meanwhile).
pub fn compress(
    entries: &mut [Entry],
    expected: &Hashed,
    tmp_dir: &Path,
) -> Result<NamedTempFile, PushError> {
    let io_err = |source| PushError::Io {
        path: tmp_dir.to_path_buf(),
        source,
    };
    let file = NamedTempFile::new_in(tmp_dir).map_err(io_err)?;
    let mut enc =
        zstd::Encoder::new(BufWriter::with_capacity(1 << 20, file), LEVEL).map_err(io_err)?;
    enc.include_checksum(true).map_err(io_err)?;
    // Multi-threaded zstd (its output does not depend on the thread count).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    enc.multithread(threads.clamp(1, 8)).map_err(io_err)?;
    let w = archive::write_tar(entries, HashingWriter::new(enc))?;
    let (enc, digest, size) = w.finish();
    let file = enc
        .finish()
        .map_err(io_err)?
        .into_inner()
        .map_err(|e| io_err(e.into_error()))?;
    if digest != expected.digest || size != expected.size {
        return Err(PushError::TreeChanged);
    }
    Ok(file)
}
