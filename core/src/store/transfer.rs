//! Moving large blobs: uploads as a pipeline of parts, downloads as concurrent ranged GETs,
//! both with a fixed bound on the bytes held in memory.
//!
//! - **Upload** ([`put_chunks`]): a producer (a blocking thread reading a file, or writing
//!   zstd frames as content streams past, [`super::frames`]) hands compressed chunks over a
//!   small channel. A blob whose chunks end within [`SINGLE_PUT_MAX`] goes up in one
//!   create-only PUT; a larger one as a multipart upload of equal parts of [`PART_SIZE`]
//!   (the last one shorter); at most [`UPLOAD_CONCURRENCY`] parts are held at once, in flight
//!   or filling, so memory stays at about that many parts. The upload starts
//!   with the first part, so reading, compressing and sending overlap. object_store retries
//!   a failed part; an upload that fails anyway, or whose producer fails (a source that
//!   changed while it was read), is aborted, so the store keeps no parts.
//! - **Download** ([`fetch_ranges`]): the object is read as ranged GETs, at most
//!   [`DOWNLOAD_CONCURRENCY`] in flight, whose bodies stream in order to the reader that
//!   decompresses and verifies ([`super::BlobReader`]); each range is read only a few
//!   chunks ahead, so memory stays bounded. The first range ([`RANGE_SIZE`]) gives the
//!   object's size, so a small blob costs one GET.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Put, Store, StoreError, retry};

/// Blobs at most this large (compressed) are uploaded in one conditional PUT.
pub const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
/// Larger blobs go up in parts of this size (S3's smallest part but the last), or larger
/// where a blob would otherwise need more than [`MAX_PARTS`] (`part_size`). Small parts
/// keep memory low and, measured on s3s-fs, 5 MiB parts beat 8 MiB ones (bench/README.md).
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's limit on the parts of one upload.
pub const MAX_PARTS: u64 = 10_000;
/// At most this many parts of one blob are in memory at once: in flight, or filling.
pub const UPLOAD_CONCURRENCY: usize = 2;
/// A download's first range: a small blob costs one GET. Later ranges are at least this.
pub const RANGE_SIZE: u64 = 2 * 1024 * 1024;
/// Later ranges of a large blob are at most this.
pub const MAX_RANGE_SIZE: u64 = 8 * 1024 * 1024;
/// At most this many ranges of one blob are requested at once.
pub const DOWNLOAD_CONCURRENCY: usize = 8;
/// Body chunks of a range read ahead of the reader (each is what the connection had ready,
/// measured at about 100 KiB): more would hold the range in memory instead of in the
/// socket (16 chunks: 39 MB of peak RSS for a 1 GiB download, 64: 64–75 MB; bench/README.md).
const RANGE_CHUNKS_AHEAD: usize = 4;

fn tuned(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Uploads the chunks `rx` yields as the blob at `key`, at most `max_len` bytes (which
/// sizes the parts). `producer` ends after the last chunk with the producer's verdict: an
/// error aborts the upload. `progress` is told the bytes handed to the store as they go.
pub(super) async fn put_chunks(
    store: &Store,
    key: &str,
    max_len: u64,
    mut rx: mpsc::Receiver<Bytes>,
    producer: tokio::task::JoinHandle<Result<(), StoreError>>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Put, StoreError> {
    let part_size = part_size(
        tuned("FLOWPACK_TUNE_PART_MIB", PART_SIZE >> 20) << 20,
        max_len,
    );
    let concurrency = tuned("FLOWPACK_TUNE_UPLOAD_CONCURRENCY", UPLOAD_CONCURRENCY);
    let single_max = SINGLE_PUT_MAX.max(part_size as u64);
    let mut queue = Queue::default();
    while queue.len as u64 <= single_max {
        match rx.recv().await {
            Some(chunk) => queue.push(chunk),
            None => {
                verdict(producer).await?;
                let body = queue.take_all();
                let len = body.len() as u64;
                return Ok(if store.put_create(key, body).await? {
                    progress(len);
                    Put::Uploaded(len)
                } else {
                    Put::Existed
                });
            }
        }
    }
    let k = store.key(key);
    let mut upload = store
        .inner
        .put_multipart(&k)
        .await
        .map_err(|e| store.request_error("PUT", key, e))?;
    let mut parts = JoinSet::new();
    let mut sent = 0u64;
    let outcome = async {
        // Every chunk, in parts; the last part is what is left when the producer ends.
        loop {
            // At most `concurrency` parts in memory: those in flight and the one filling.
            while parts.len() >= concurrency {
                joined(&mut parts, store, key).await?;
            }
            let closed = match rx.recv().await {
                Some(chunk) => {
                    queue.push(chunk);
                    false
                }
                None => true,
            };
            while queue.len >= part_size || (closed && queue.len > 0) {
                let part = queue.take(part_size);
                let len = part.content_length() as u64;
                parts.spawn(upload.put_part(part));
                sent += len;
                progress(len);
            }
            if closed {
                break;
            }
        }
        // The producer's verdict (the content was what its name says) before anything
        // becomes visible.
        verdict(producer).await?;
        while !parts.is_empty() {
            joined(&mut parts, store, key).await?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    let outcome = match outcome {
        Ok(()) => upload
            .complete()
            .await
            .map(|_| ())
            .map_err(|e| store.request_error("PUT", key, e)),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => Ok(Put::Uploaded(sent)),
        Err(e) => {
            // Stop the producer (its sends fail) and the parts, then drop the upload's
            // parts from the store.
            drop(rx);
            parts.shutdown().await;
            if let Err(abort) = upload.abort().await {
                tracing::warn!("could not abort the multipart upload of {key}: {abort}");
            }
            Err(e)
        }
    }
}

/// The part size for a blob of at most `max_len` bytes: `wanted`, or the next MiB up that
/// keeps the blob within [`MAX_PARTS`] parts.
fn part_size(wanted: usize, max_len: u64) -> usize {
    let needed = max_len.div_ceil(MAX_PARTS).next_multiple_of(1 << 20);
    wanted.max(needed as usize)
}

/// Waits for one part: its error (after object_store's retries) fails the upload.
async fn joined(
    parts: &mut JoinSet<Result<(), object_store::Error>>,
    store: &Store,
    key: &str,
) -> Result<(), StoreError> {
    match parts.join_next().await {
        Some(r) => r
            .expect("uploading a part does not panic")
            .map_err(|e| store.request_error("PUT", key, e)),
        None => Ok(()),
    }
}

async fn verdict(
    producer: tokio::task::JoinHandle<Result<(), StoreError>>,
) -> Result<(), StoreError> {
    producer.await.expect("producing a blob does not panic")
}

/// A FIFO of chunks that hands out exact-size parts without copying.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Queue {
    fn push(&mut self, b: Bytes) {
        self.len += b.len();
        self.chunks.push_back(b);
    }

    /// The first `n` bytes (or all when fewer), as a payload of the chunks.
    fn take(&mut self, n: usize) -> PutPayload {
        let mut want = n.min(self.len);
        self.len -= want;
        let mut out = Vec::new();
        while want > 0 {
            let mut c = self
                .chunks
                .pop_front()
                .expect("the length counts the chunks");
            if c.len() > want {
                self.chunks.push_front(c.split_off(want));
            }
            want -= c.len();
            out.push(c);
        }
        out.into_iter().collect()
    }

    fn take_all(&mut self) -> Bytes {
        if self.chunks.len() == 1 {
            self.len = 0;
            return self.chunks.pop_front().expect("one chunk");
        }
        let mut b = BytesMut::with_capacity(self.len);
        for c in self.chunks.drain(..) {
            b.extend_from_slice(&c);
        }
        self.len = 0;
        b.freeze()
    }
}

/// The object at `key` as ranged GETs whose bodies stream: the first range
/// ([`RANGE_SIZE`]) is requested here (so a missing object fails here, as
/// [`StoreError::NotFound`]) and its answer gives the object's size; the rest is cut into
/// ranges of a size tuned to the object ([`range_size`]), up to [`DOWNLOAD_CONCURRENCY`]
/// of them requested at once. Chunks arrive in order on the channel. A range's body is read
/// only a few chunks ahead of the reader: the rest waits in the connection (TCP's flow
/// control), so memory stays bounded whatever the range size. A body cut off is asked again
/// from where it stopped. An error ends the stream.
pub(super) async fn fetch_ranges(
    store: &Store,
    key: &str,
) -> Result<mpsc::Receiver<Result<Bytes, object_store::Error>>, StoreError> {
    let max_range =
        tuned("FLOWPACK_TUNE_RANGE_MIB", (MAX_RANGE_SIZE >> 20) as usize) as u64 * 1024 * 1024;
    let concurrency = tuned("FLOWPACK_TUNE_DOWNLOAD_CONCURRENCY", DOWNLOAD_CONCURRENCY).max(1);
    let source = Source {
        inner: store.inner.clone(),
        k: store.key(key),
        what: key.to_string(),
        chunks_ahead: tuned("FLOWPACK_TUNE_RANGE_CHUNKS", RANGE_CHUNKS_AHEAD).max(1),
    };
    let first = retry::retrying(key, true, || source.request(0..RANGE_SIZE))
        .await
        .0;
    let first = match first {
        Ok(got) => got,
        Err(e @ object_store::Error::NotFound { .. }) => {
            return Err(store.request_error("GET", key, e));
        }
        // A store that cannot answer the range (an empty object has none): read the
        // object whole, as one stream; the reader judges what it holds.
        Err(_) => {
            let got = retry::retrying(key, true, || source.inner.get(&source.k))
                .await
                .0
                .map_err(|e| store.request_error("GET", key, e))?;
            let (tx, rx) = mpsc::channel(1);
            let mut stream = got.into_stream();
            tokio::spawn(async move {
                while let Some(item) = stream.next().await {
                    if tx.send(item).await.is_err() {
                        break;
                    }
                }
            });
            return Ok(rx);
        }
    };
    let (size, first_end) = (first.meta.size, first.range.end);
    let mut pending = ranges(first_end, size, range_size(size, concurrency, max_range)).into_iter();
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut open = VecDeque::from([source.spawn(0..first_end, Some(first))]);
        loop {
            while open.len() < concurrency {
                match pending.next() {
                    Some(r) => open.push_back(source.spawn(r, None)),
                    None => break,
                }
            }
            // In order: the head range to its end, while the others fill.
            let Some(mut head) = open.pop_front() else {
                break;
            };
            while let Some(item) = head.recv().await {
                let failed = item.is_err();
                // Dropping `open` ends the other ranges' tasks.
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// The size of the ranges after the first: the object in about two rounds of `concurrency`
/// ranges, so that a middling blob is still read in parallel, within [`RANGE_SIZE`] and
/// `max` (fewer, larger requests for a large one: each request costs a round trip).
fn range_size(size: u64, concurrency: usize, max: u64) -> u64 {
    (size / (2 * concurrency as u64)).clamp(RANGE_SIZE, max.max(RANGE_SIZE))
}

/// Where ranges of one object come from, and how far each is read ahead.
#[derive(Clone)]
struct Source {
    inner: std::sync::Arc<dyn ObjectStore>,
    k: object_store::path::Path,
    what: String,
    chunks_ahead: usize,
}

impl Source {
    async fn request(&self, r: Range<u64>) -> Result<object_store::GetResult, object_store::Error> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(r)),
            ..Default::default()
        };
        self.inner.get_opts(&self.k, opts).await
    }

    /// Streams `range` (its request already answered with `started`, or not yet made)
    /// into a channel `chunks_ahead` deep ([`RANGE_CHUNKS_AHEAD`]), ending with an error if
    /// it fails.
    fn spawn(
        &self,
        range: Range<u64>,
        started: Option<object_store::GetResult>,
    ) -> mpsc::Receiver<Result<Bytes, object_store::Error>> {
        let (tx, rx) = mpsc::channel(self.chunks_ahead);
        let source = self.clone();
        tokio::spawn(async move {
            if let Err(e) = source.stream(range, started, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn stream(
        &self,
        range: Range<u64>,
        mut started: Option<object_store::GetResult>,
        tx: &mpsc::Sender<Result<Bytes, object_store::Error>>,
    ) -> Result<(), object_store::Error> {
        let mut at = range.start;
        let mut tries = 0;
        while at < range.end {
            let got = match started.take() {
                Some(got) => got,
                None => {
                    retry::retrying(&self.what, true, || self.request(at..range.end))
                        .await
                        .0?
                }
            };
            let mut body = got.into_stream();
            loop {
                match body.next().await {
                    Some(Ok(chunk)) => {
                        if chunk.len() as u64 > range.end - at {
                            return Err(self.broken(&range, "more bytes than asked for"));
                        }
                        at += chunk.len() as u64;
                        if tx.send(Ok(chunk)).await.is_err() {
                            return Ok(()); // the reader stopped
                        }
                    }
                    // A body cut off: ask again for what is missing.
                    Some(Err(e))
                        if tries < retry::TRANSPORT_RETRIES
                            && retry::is_unretried_transport(&e, true) =>
                    {
                        let sleep = retry::backoff(tries);
                        tries += 1;
                        tracing::info!(
                            "{}: body cut off at byte {at}, retry {tries} of {} in {:.2}s: {e}",
                            self.what,
                            retry::TRANSPORT_RETRIES,
                            sleep.as_secs_f64()
                        );
                        tokio::time::sleep(sleep).await;
                        break;
                    }
                    Some(Err(e)) => return Err(e),
                    None if at < range.end => {
                        return Err(self.broken(&range, &format!("it ended at byte {at}")));
                    }
                    None => break,
                }
            }
        }
        Ok(())
    }

    fn broken(&self, range: &Range<u64>, what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "flowpack",
            source: format!(
                "the answer for bytes {}..{} of {} is broken: {what}",
                range.start, range.end, self.what
            )
            .into(),
        }
    }
}

/// `from..size` in consecutive ranges of `step`.
fn ranges(from: u64, size: u64, step: u64) -> Vec<Range<u64>> {
    (from..size)
        .step_by(step as usize)
        .map(|s| s..(s + step).min(size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_that_a_huge_blob_stays_within_the_part_limit() {
        assert_eq!(part_size(PART_SIZE, 1 << 30), PART_SIZE);
        // 5 MiB parts carry up to ~48.8 GiB; a 100 GiB blob needs 11 MiB parts.
        let huge = 100u64 << 30;
        let p = part_size(PART_SIZE, huge);
        assert_eq!(p, 11 << 20);
        assert!(huge.div_ceil(p as u64) <= MAX_PARTS);
        assert!(huge.div_ceil((p - (1 << 20)) as u64) > MAX_PARTS);
    }

    #[test]
    fn ranges_grow_with_the_object_within_their_bounds() {
        assert_eq!(range_size(1 << 20, 8, MAX_RANGE_SIZE), RANGE_SIZE);
        assert_eq!(range_size(64 << 20, 8, MAX_RANGE_SIZE), 4 << 20);
        assert_eq!(range_size(1 << 30, 8, MAX_RANGE_SIZE), MAX_RANGE_SIZE);
    }

    #[test]
    fn ranges_cover_the_rest_in_order() {
        assert_eq!(ranges(4, 11, 4), vec![4..8, 8..11]);
        assert_eq!(ranges(4, 4, 4), Vec::<Range<u64>>::new());
        assert_eq!(ranges(0, 8, 4), vec![0..4, 4..8]);
    }

    #[test]
    fn parts_are_exact_slices_of_the_chunks() {
        let mut q = Queue::default();
        for i in 0..5u8 {
            q.push(Bytes::from(vec![i; 3]));
        }
        let a: Vec<u8> = q.take(4).into_iter().flatten().collect();
        assert_eq!(a, [0, 0, 0, 1]);
        assert_eq!(q.len, 11);
        let b: Vec<u8> = q.take(7).into_iter().flatten().collect();
        assert_eq!(b, [1, 1, 2, 2, 2, 3, 3]);
        assert_eq!(&q.take_all()[..], [3, 4, 4, 4]);
        assert_eq!(q.len, 0);
    }
}
