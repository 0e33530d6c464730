//! Reading and writing blob bytes: zstd frames whose *uncompressed* content hashes to the
//! blob's digest.

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::StoreError;
use crate::Digest;
use crate::digest::Hasher;

/// The zstd level of small blobs compressed in memory (manifests).
const SMALL_LEVEL: i32 = 3;

/// `content` as one zstd frame with a content checksum.
pub fn compress_bytes(content: &[u8]) -> Vec<u8> {
    let mut enc = zstd::Encoder::new(Vec::new(), SMALL_LEVEL).expect("zstd encoder");
    enc.include_checksum(true).expect("zstd checksum flag");
    io::Write::write_all(&mut enc, content).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// A blob being written to a temporary file: what is written is hashed (the blob's name)
/// and zstd-compressed (what is stored) in one pass, compression running on zstd's worker
/// threads. Its output does not depend on the number of workers.
pub struct BlobWriter {
    inner: crate::digest::HashingWriter<zstd::Encoder<'static, BufWriter<tempfile::NamedTempFile>>>,
}

impl BlobWriter {
    /// A new blob in a temporary file in `dir`, compressed at zstd `level`.
    pub fn new(dir: &Path, level: i32) -> io::Result<Self> {
        let file = tempfile::NamedTempFile::new_in(dir)?;
        let mut enc = zstd::Encoder::new(BufWriter::with_capacity(1 << 20, file), level)?;
        enc.include_checksum(true)?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        enc.multithread(threads.clamp(1, 8))?;
        Ok(Self {
            inner: crate::digest::HashingWriter::new(enc),
        })
    }

    /// The digest and uncompressed size of what was written, and the compressed file.
    pub fn finish(self) -> io::Result<(Digest, u64, tempfile::NamedTempFile)> {
        let (enc, digest, size) = self.inner.finish();
        let file = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        Ok((digest, size, file))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The most a zstd frame of `size` bytes of content takes: above zstd's worst case
/// (`ZSTD_compressBound`: `size + size/256` plus at most 64 bytes), with room for the
/// frame header, checksum and the block headers of multithreaded jobs.
pub(super) fn max_compressed(size: u64) -> u64 {
    size.saturating_add(size / 128).saturating_add(64 << 10)
}

/// Decompresses a small blob read whole and checks it against `d`. The decompressor stops
/// after `max_size + 1` bytes of output, so a zstd bomb costs no more than that.
pub(super) fn decompress_verified(
    compressed: &[u8],
    d: &Digest,
    max_size: u64,
    key: &str,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let dec = zstd::Decoder::new(compressed).map_err(|e| corrupt(format!("not zstd: {e}")))?;
    let mut out = Vec::new();
    dec.take(max_size + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("zstd data is damaged: {e}")))?;
    if out.len() as u64 > max_size {
        return Err(StoreError::TooLarge {
            key: key.to_string(),
            max: max_size,
            what: SMALL_BLOB,
        });
    }
    let actual = Digest::of(&out);
    if actual != *d {
        return Err(StoreError::DigestMismatch {
            key: key.to_string(),
            expected: *d,
            actual,
        });
    }
    Ok(out)
}

/// What a blob read whole is, as errors say it.
pub(super) const SMALL_BLOB: &str = "a blob read whole";

/// The buffer of [`BlobReader::copy_to`]: larger than a zstd block (128 KiB), which is
/// the most one read of the decoder returns.
const COPY_BUFFER: usize = 256 << 10;

/// Compressed chunks from the download task, as a blocking reader.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, object_store::Error>>,
    cur: Bytes,
    key: String,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(source)) => {
                    return Err(io::Error::other(StoreError::Request {
                        op: "GET",
                        key: self.key.clone(),
                        source,
                    }));
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// A blob's uncompressed content, verified while it is read.
///
/// Reading returns an error instead of end-of-file when the content does not hash to the
/// blob's digest, is not exactly the declared size, or is not valid zstd; the error wraps a
/// [`StoreError`] naming the key (see [`StoreError::from_io`]). A caller must read to
/// the end (or call [`BlobReader::finish`]) before trusting anything it read.
pub struct BlobReader {
    decoder: zstd::Decoder<'static, io::BufReader<ChannelReader>>,
    hasher: Hasher,
    expected: Digest,
    size: u64,
    key: String,
    verified: bool,
}

impl BlobReader {
    /// A reader of the compressed chunks `rx` brings ([`super::transfer::fetch_ranges`]).
    pub(super) fn new(
        rx: mpsc::Receiver<Result<Bytes, object_store::Error>>,
        expected: Digest,
        size: u64,
        key: String,
    ) -> Self {
        let chan = ChannelReader {
            rx,
            cur: Bytes::new(),
            key: key.clone(),
        };
        Self {
            decoder: zstd::Decoder::new(chan).expect("zstd decoder"),
            hasher: Hasher::new(),
            expected,
            size,
            key,
            verified: false,
        }
    }

    fn corrupt(&self, reason: String) -> io::Error {
        io::Error::other(StoreError::Corrupt {
            key: self.key.clone(),
            reason,
        })
    }

    /// Writes the whole content to each of `outs` (a cache entry and a task's copy are
    /// written from one read), in writes of up to a decoded block rather than `io::copy`'s
    /// 8 KiB, and checks the digest: Ok only when every byte was verified. `what` names the
    /// destination in errors.
    pub fn copy_to(mut self, outs: &mut [&mut dyn Write], what: &str) -> Result<(), StoreError> {
        let mut buf = vec![0u8; COPY_BUFFER];
        loop {
            let got = match self.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::from_io(e, what)),
            };
            for out in outs.iter_mut() {
                out.write_all(&buf[..got])
                    .map_err(|e| StoreError::from_io(e, what))?;
            }
        }
    }

    /// Reads whatever is left and checks the digest.
    pub fn finish(self) -> Result<(), StoreError> {
        let key = self.key.clone();
        self.copy_to(&mut [], &key)
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = match self.decoder.read(buf) {
            Ok(n) => n,
            Err(e) if e.get_ref().is_some_and(|i| i.is::<StoreError>()) => return Err(e),
            Err(e) => return Err(self.corrupt(format!("zstd data is damaged: {e}"))),
        };
        if n == 0 {
            let actual = std::mem::take(&mut self.hasher);
            if actual.len() != self.size {
                return Err(self.corrupt(format!(
                    "it holds {} bytes, not the {} declared",
                    actual.len(),
                    self.size
                )));
            }
            let actual = actual.finish();
            if actual != self.expected {
                return Err(io::Error::other(StoreError::DigestMismatch {
                    key: self.key.clone(),
                    expected: self.expected,
                    actual,
                }));
            }
            self.verified = true;
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        if self.hasher.len() > self.size {
            return Err(self.corrupt(format!(
                "it holds more than the {} bytes declared",
                self.size
            )));
        }
        Ok(n)
    }
}

impl StoreError {
    /// The store error inside an I/O error from a [`BlobReader`], or an I/O error about
    /// `context` (a path or key).
    pub fn from_io(e: io::Error, context: &str) -> Self {
        if e.get_ref().is_some_and(|i| i.is::<StoreError>()) {
            let inner = e.into_inner().expect("checked above");
            return *inner.downcast::<StoreError>().expect("checked above");
        }
        StoreError::Io {
            path: context.into(),
            source: e,
        }
    }
}
