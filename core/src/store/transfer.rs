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
//! - **Download** ([`fetch_ranges`]): the object is read as ranges of [`RANGE_SIZE`], at
//!   most [`DOWNLOAD_CONCURRENCY`] requests in flight, handed on in order to the reader that
//!   decompresses and verifies ([`super::BlobReader`]). The first range's answer gives the
//!   object's size, so a small blob costs one GET as before.

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
/// Larger blobs go up in parts of this size.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// At most this many parts of one blob are in memory at once: in flight, or filling.
pub const UPLOAD_CONCURRENCY: usize = 2;
/// Downloads read ranges of this size.
pub const RANGE_SIZE: u64 = 2 * 1024 * 1024;
/// At most this many ranges of one blob are requested at once.
pub const DOWNLOAD_CONCURRENCY: usize = 4;

fn tuned(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Uploads the chunks `rx` yields as the blob at `key`. `producer` ends after the last
/// chunk with the producer's verdict: an error aborts the upload. `progress` is told the
/// bytes handed to the store as they go.
pub(super) async fn put_chunks(
    store: &Store,
    key: &str,
    mut rx: mpsc::Receiver<Bytes>,
    producer: tokio::task::JoinHandle<Result<(), StoreError>>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Put, StoreError> {
    let part_size = tuned("FLOWPACK_TUNE_PART_MIB", PART_SIZE >> 20) << 20;
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

/// The object at `key` as ranged GETs: the first range is read here (so a missing object
/// fails here, as [`StoreError::NotFound`]); the rest are fetched by a task,
/// [`DOWNLOAD_CONCURRENCY`] at a time, and arrive in order on the channel, which holds at
/// most one range besides those in flight. An error ends the stream.
pub(super) async fn fetch_ranges(
    store: &Store,
    key: &str,
) -> Result<mpsc::Receiver<Result<Bytes, object_store::Error>>, StoreError> {
    let range_size =
        tuned("FLOWPACK_TUNE_RANGE_MIB", (RANGE_SIZE >> 20) as usize) as u64 * 1024 * 1024;
    let concurrency = tuned("FLOWPACK_TUNE_DOWNLOAD_CONCURRENCY", DOWNLOAD_CONCURRENCY);
    let k = store.key(key);
    let inner = store.inner.clone();
    let first = retry::retrying(key, true, || async {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(0..range_size)),
            ..Default::default()
        };
        let got = inner.get_opts(&k, opts).await?;
        let (size, end) = (got.meta.size, got.range.end);
        Ok((size, end, got.bytes().await?))
    })
    .await
    .0;
    let (size, next, first) = match first {
        Ok(got) => got,
        Err(e @ object_store::Error::NotFound { .. }) => {
            return Err(store.request_error("GET", key, e));
        }
        // A store that cannot answer the range (an empty object has none): read the
        // object whole, as one stream; the reader judges what it holds.
        Err(_) => {
            let got = retry::retrying(key, true, || inner.get(&k))
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
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(Ok(first)).expect("a new channel has room");
    let what = key.to_string();
    tokio::spawn(async move {
        let ranges = ranges(next, size, range_size);
        let mut fetched = futures::stream::iter(ranges)
            .map(|r| {
                let (inner, k, what) = (inner.clone(), k.clone(), what.clone());
                async move {
                    retry::retrying(&what, true, || inner.get_range(&k, r.clone()))
                        .await
                        .0
                }
            })
            .buffered(concurrency);
        while let Some(item) = fetched.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    Ok(rx)
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
