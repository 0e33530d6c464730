//! The content-addressed store: one type, [`Store`], over `object_store` (local folder,
//! S3 and S3-compatible servers, GCS, Azure).
//!
//! - Blobs are immutable and named by the SHA-256 of their *uncompressed* content; they
//!   are stored zstd-compressed. A blob already present is never uploaded again (a HEAD
//!   first, then a conditional create for single-part uploads; racing writers of one blob
//!   write identical content, so the race is harmless).
//! - Every read is verified while it streams: [`Store::open_blob`] gives a reader that
//!   fails with [`StoreError::DigestMismatch`] (naming the key) at the end of a blob whose
//!   content does not match, and refuses to produce more bytes than declared.
//! - Small JSON documents (version pointers, run records) go through [`Store::create_json`]
//!   (create-only) and [`Store::get_json`]. Documents are read whole, so each kind has a
//!   size bound ([`layout::document_bound`]) that reads stop at and writes are held to.
//! - Requests are retried by object_store with bounded exponential backoff and jitter
//!   ([`open::retry_config`]), and the transport failures it does not repeat (a reset
//!   connection on a create-only PUT) are retried by [`retry`]; after that the error names
//!   the key and the cause.
//! - Large blobs move through [`transfer`]: uploads in parts of [`PART_SIZE`] with at most
//!   [`UPLOAD_CONCURRENCY`] in flight, started while the content is still being read and
//!   compressed ([`Store::put_blob_from`]); downloads as concurrent ranged GETs. Nothing
//!   is held whole in memory.

mod blob;
mod error;
pub mod frames;
pub mod layout;
pub mod open;
pub mod retry;
pub mod transfer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

pub use blob::{BlobReader, BlobWriter, compress_bytes};
pub use error::StoreError;
pub use open::redact_url;
pub use transfer::{PART_SIZE, SINGLE_PUT_MAX, UPLOAD_CONCURRENCY};

use crate::Digest;

/// What [`Store::put_blob_file`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// The blob was uploaded; this many (compressed) bytes went over the wire.
    Uploaded(u64),
    /// The store already had it; nothing was uploaded.
    Existed,
}

/// What [`Store::create_json`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The document was written.
    Written,
    /// A document was already there; these are its bytes.
    Existed(Bytes),
}

/// A content-addressed store.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    display: String,
    local_root: Option<PathBuf>,
    errors: Arc<error::ErrorContext>,
}

impl Store {
    /// Opens the store at `url` (see [`open`] for the forms). A local folder is created.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let o = open::open(url)?;
        Ok(Self {
            inner: o.store,
            prefix: o.prefix,
            display: o.display,
            local_root: o.local_root,
            errors: Arc::new(o.errors),
        })
    }

    /// The store as a URL or path that is safe to print and to pass to tasks: a store URL
    /// with anything [`redact_url`] would hide is refused by [`Store::open`], so this is
    /// the URL as given (a local store's absolute folder).
    pub fn url(&self) -> &str {
        &self.display
    }

    /// The folder of a local store.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// The full key (with the store's prefix) of a layout key, as errors show it.
    pub fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn key(&self, key: &str) -> Key {
        Key::from(self.full_key(key))
    }

    fn request_error(
        &self,
        op: &'static str,
        key: &str,
        source: object_store::Error,
    ) -> StoreError {
        self.errors.request_error(op, self.full_key(key), source)
    }

    /// The stored size of the object at `key`, or None when there is none.
    pub async fn stat(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let k = self.key(key);
        match retry::retrying(key, true, || self.inner.head(&k)).await.0 {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.request_error("HEAD", key, e)),
        }
    }

    /// The stored (compressed) size of the blob named `d`, or None when the store lacks it.
    pub async fn stat_blob(&self, d: &Digest) -> Result<Option<u64>, StoreError> {
        self.stat(&layout::blob(d)).await
    }

    /// Uploads the zstd-compressed file `file` as the blob named `d`. Call
    /// [`Store::stat_blob`] first to skip blobs the store has; a single-part upload is
    /// create-only anyway, and a multipart one rewrites identical content. `progress` is
    /// told the compressed bytes sent as they go.
    pub async fn put_blob_file(
        &self,
        d: &Digest,
        file: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Put, StoreError> {
        let io = |source| StoreError::Io {
            path: file.to_path_buf(),
            source,
        };
        let mut f = std::fs::File::open(file).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let (tx, rx) = mpsc::channel(2);
        let path = file.to_path_buf();
        let producer = tokio::task::spawn_blocking(move || {
            let io = |source| StoreError::Io {
                path: path.clone(),
                source,
            };
            loop {
                let mut chunk = bytes::BytesMut::zeroed(frames::CHUNK);
                let mut filled = 0;
                while filled < chunk.len() {
                    match std::io::Read::read(&mut f, &mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io(e)),
                    }
                }
                chunk.truncate(filled);
                if filled > 0 && tx.blocking_send(chunk.freeze()).is_err() {
                    return Ok(()); // the upload stopped; its error is the one to report
                }
                if filled < frames::CHUNK {
                    return Ok(());
                }
            }
        });
        transfer::put_chunks(self, &layout::blob(d), len, rx, producer, progress).await
    }

    /// Uploads the content that `write` produces as the blob named `d` (`size` bytes),
    /// compressed on the way at zstd `level` where it pays ([`frames`]), in parts that go
    /// up while `write` still runs ([`transfer`]): no temporary file, one pass. `write`
    /// runs on a blocking thread. The content is hashed again as it passes: when it is not
    /// what `d` and `size` say (`source`, named in the error, changed since it was
    /// hashed), the upload is aborted and nothing is stored. Call [`Store::stat_blob`]
    /// first to skip blobs the store has.
    pub async fn put_blob_from<F>(
        &self,
        d: &Digest,
        size: u64,
        level: i32,
        source: &Path,
        write: F,
    ) -> Result<Put, StoreError>
    where
        F: FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(2);
        let (expected, path) = (*d, source.to_path_buf());
        let producer = tokio::task::spawn_blocking(move || {
            let io = |source| StoreError::Io {
                path: path.clone(),
                source,
            };
            let frames = frames::FrameWriter::new(level, |chunk| {
                tx.blocking_send(chunk)
                    .map_err(|_| std::io::Error::other("the upload stopped"))
            });
            let mut w = crate::digest::HashingWriter::new(frames);
            write(&mut w).map_err(io)?;
            let (frames, actual, len) = w.finish();
            frames.finish().map_err(io)?;
            if actual != expected || len != size {
                return Err(io(std::io::Error::other(format!(
                    "it changed while it was uploaded (it was {size} bytes with digest {expected}, then {len} bytes with digest {actual}); nothing was stored"
                ))));
            }
            Ok(())
        });
        let max_len = blob::max_compressed(size);
        transfer::put_chunks(self, &layout::blob(d), max_len, rx, producer, &|_| {}).await
    }

    /// Stores a small blob (a manifest) from memory, unless the store has it.
    pub async fn put_blob_bytes(&self, d: &Digest, content: &[u8]) -> Result<Put, StoreError> {
        debug_assert_eq!(Digest::of(content), *d);
        let key = layout::blob(d);
        if self.stat(&key).await?.is_some() {
            return Ok(Put::Existed);
        }
        let compressed = Bytes::from(compress_bytes(content));
        let len = compressed.len() as u64;
        Ok(if self.put_create(&key, compressed).await? {
            Put::Uploaded(len)
        } else {
            Put::Existed
        })
    }

    /// Opens the blob named `d` for reading, verified while it streams. `size` is its
    /// declared uncompressed size: the reader fails on a blob of any other size. Read it
    /// from a blocking context (`spawn_blocking`), to the end.
    pub async fn open_blob(&self, d: &Digest, size: u64) -> Result<BlobReader, StoreError> {
        let key = layout::blob(d);
        let chunks = transfer::fetch_ranges(self, &key).await?;
        Ok(BlobReader::new(chunks, *d, size, self.full_key(&key)))
    }

    /// Reads a whole small blob (a manifest), verified. `max_size` bounds its content: the
    /// compressed read stops at what that much content can compress to, the decompressor
    /// at `max_size + 1` bytes ([`StoreError::TooLarge`]).
    pub async fn get_blob_bytes(&self, d: &Digest, max_size: u64) -> Result<Vec<u8>, StoreError> {
        let key = layout::blob(d);
        let bound = layout::Bound {
            max: max_size,
            what: blob::SMALL_BLOB,
        };
        let compressed = self
            .get_bounded(&key, blob::max_compressed(max_size))
            .await?
            .ok_or_else(|| self.too_large(&key, bound))?;
        blob::decompress_verified(&compressed, d, max_size, &self.full_key(&key))
    }

    /// Writes `value` as JSON at `key` unless something is there already.
    pub async fn create_json<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<Created, StoreError> {
        let body = serde_json::to_vec_pretty(value).expect("flowpack records serialize");
        if self.create_bytes(key, Bytes::from(body)).await? {
            Ok(Created::Written)
        } else {
            Ok(Created::Existed(self.get_bytes(key).await?))
        }
    }

    /// Reads the JSON document at `key` (bounded as [`Store::get_bytes`]).
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<T, StoreError> {
        let bytes = self.get_bytes(key).await?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            key: self.full_key(key),
            reason: format!("not the JSON expected: {e}"),
        })
    }

    /// Reads the whole document at `key`, at most its kind's bound
    /// ([`layout::document_bound`]); a larger one is refused ([`StoreError::TooLarge`])
    /// after reading no more than the bound.
    pub async fn get_bytes(&self, key: &str) -> Result<Bytes, StoreError> {
        let bound = layout::document_bound(key);
        self.get_bounded(key, bound.max)
            .await?
            .ok_or_else(|| self.too_large(key, bound))
    }

    /// Reads the whole object at `key` if it holds at most `max` bytes, else None: the size
    /// the store reports is checked first, and the stream is read no further than `max + 1`
    /// bytes whatever that size said.
    async fn get_bounded(&self, key: &str, max: u64) -> Result<Option<Bytes>, StoreError> {
        let k = self.key(key);
        retry::retrying(key, true, || async {
            let got = self.inner.get(&k).await?;
            if got.meta.size > max {
                return Ok(None);
            }
            // The size is within the bound: room for it up front.
            let capacity = usize::try_from(got.meta.size).unwrap_or(0);
            read_bounded(got.into_stream(), max, capacity).await
        })
        .await
        .0
        .map_err(|e| self.request_error("GET", key, e))
    }

    fn too_large(&self, key: &str, bound: layout::Bound) -> StoreError {
        StoreError::TooLarge {
            key: self.full_key(key),
            max: bound.max,
            what: bound.what,
        }
    }

    /// Refuses to write a document larger than its kind's bound, which no reader would
    /// accept.
    fn check_document(&self, key: &str, body: &Bytes) -> Result<(), StoreError> {
        let bound = layout::document_bound(key);
        if body.len() as u64 > bound.max {
            return Err(self.too_large(key, bound));
        }
        Ok(())
    }

    /// The keys (relative to the store's root) under the folder `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = self.key(prefix.trim_end_matches('/'));
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let metas: Vec<_> =
            retry::retrying(prefix, true, || self.inner.list(Some(&full)).try_collect())
                .await
                .0
                .map_err(|e| self.request_error("LIST", prefix, e))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| {
                let k = m.location.to_string();
                k.strip_prefix(&strip).map(String::from).unwrap_or(k)
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Writes `body` at `key`, replacing what is there. For mutable documents only (a
    /// task's lifecycle record), held to their bound; blobs are immutable and go through
    /// the blob methods.
    pub async fn put_bytes(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.check_document(key, &body)?;
        let k = self.key(key);
        retry::retrying(key, true, || {
            self.inner.put(&k, PutPayload::from(body.clone()))
        })
        .await
        .0
        .map(|_| ())
        .map_err(|e| self.request_error("PUT", key, e))
    }

    /// Writes `value` as JSON at `key`, replacing what is there.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(value).expect("flowpack records serialize");
        self.put_bytes(key, Bytes::from(body)).await
    }

    /// Writes `body` at `key` unless something is there: true when written.
    pub async fn create_bytes(&self, key: &str, body: Bytes) -> Result<bool, StoreError> {
        self.check_document(key, &body)?;
        self.put_create(key, body).await
    }

    /// The names of the sub-folders of the folder `prefix` (one level, sorted).
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = self.key(prefix.trim_end_matches('/'));
        let listed = retry::retrying(prefix, true, || self.inner.list_with_delimiter(Some(&full)))
            .await
            .0
            .map_err(|e| self.request_error("LIST", prefix, e))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(String::from))
            .collect();
        names.sort();
        Ok(names)
    }

    /// A create-only PUT: true when written, false when something was there. When a try
    /// failed after sending and a retry then finds the object, it is ours exactly when its
    /// bytes are ours (create-only documents carry their writer's attempt and times).
    async fn put_create(&self, key: &str, body: Bytes) -> Result<bool, StoreError> {
        let k = self.key(key);
        let put = || {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            self.inner
                .put_opts(&k, PutPayload::from(body.clone()), opts)
        };
        match retry::retrying(key, false, put).await {
            (Ok(_), _) => Ok(true),
            (
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }),
                ambiguous,
            ) => Ok(ambiguous
                && self
                    .get_bounded(key, body.len() as u64)
                    .await?
                    .is_some_and(|stored| stored == body)),
            (Err(e), _) => Err(self.request_error("PUT", key, e)),
        }
    }
}

/// The chunks of `stream` joined, or None as soon as they pass `max` bytes: at most one
/// chunk beyond `max` is ever held.
async fn read_bounded(
    mut stream: futures::stream::BoxStream<'static, Result<Bytes, object_store::Error>>,
    max: u64,
    capacity: usize,
) -> Result<Option<Bytes>, object_store::Error> {
    let mut buf = bytes::BytesMut::with_capacity(capacity);
    while let Some(chunk) = stream.try_next().await? {
        if (buf.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn reading_stops_past_the_bound_whatever_the_size_said() {
        // A stream that would go on for 1 TiB: reading must stop after the bound.
        let pulled = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let p = pulled.clone();
        let endless = futures::stream::repeat_with(move || {
            p.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Bytes::from_static(&[7u8; 4096]))
        })
        .take(1 << 28)
        .boxed();
        assert_eq!(read_bounded(endless, 100_000, 0).await.unwrap(), None);
        assert_eq!(pulled.load(std::sync::atomic::Ordering::Relaxed), 25);

        let small =
            futures::stream::iter([Ok(Bytes::from_static(b"ab")), Ok(Bytes::from_static(b"c"))])
                .boxed();
        assert_eq!(
            read_bounded(small, 3, 3).await.unwrap().as_deref(),
            Some(&b"abc"[..])
        );
    }
}
