//! Shipping a task's output: each line is timestamped, echoed to this process's stdout (the
//! pod log KFP shows) and appended to the store as numbered chunk objects
//! (`logs/00000000.log`, …), at most every [`FLUSH_EVERY`] — never a rewrite of one object.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flowpack_core::store::Store;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, Notify};

/// How often buffered lines go to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// A buffer this large is flushed at once.
const FLUSH_BYTES: usize = 1 << 20;
/// Longer lines are cut (the rest follows as further lines).
const MAX_LINE: usize = 64 * 1024;

struct Inner {
    buf: String,
    seq: u32,
    uploaded: u64,
    failed: Option<String>,
}

/// Buffers log lines and appends them to the store in chunks.
#[derive(Clone)]
pub struct LogShipper {
    store: Store,
    prefix: String,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<Notify>,
}

impl LogShipper {
    /// Ships to `<attempt folder>logs/`.
    pub fn new(store: Store, attempt_prefix: &str) -> Self {
        Self {
            store,
            prefix: format!("{attempt_prefix}logs/"),
            inner: Arc::new(Mutex::new(Inner {
                buf: String::new(),
                seq: 0,
                uploaded: 0,
                failed: None,
            })),
            stop: Arc::new(Notify::new()),
        }
    }

    /// Records one line from `stream` (`stdout`, `stderr` or `flowpack`).
    pub async fn line(&self, stream: &str, text: &str) {
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        let full = {
            let mut inner = self.inner.lock().await;
            inner.buf.push_str(&format!("{ts} {stream} {text}\n"));
            inner.buf.len() >= FLUSH_BYTES
        };
        if full {
            self.flush().await;
        }
    }

    /// Sends what is buffered as the next chunk. A failed upload is kept for the next try
    /// and reported by [`LogShipper::finish`].
    pub async fn flush(&self) {
        let mut inner = self.inner.lock().await;
        if inner.buf.is_empty() {
            return;
        }
        let key = format!("{}{:08}.log", self.prefix, inner.seq);
        let body = Bytes::from(inner.buf.clone());
        let len = body.len() as u64;
        match self.store.create_bytes(&key, body).await {
            Ok(_) => {
                inner.buf.clear();
                inner.seq += 1;
                inner.uploaded += len;
                inner.failed = None;
            }
            Err(e) => inner.failed = Some(e.to_string()),
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until [`LogShipper::finish`].
    pub fn spawn_flusher(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(FLUSH_EVERY) => me.flush().await,
                    _ = me.stop.notified() => return,
                }
            }
        })
    }

    /// Stops the flusher (letting a flush under way complete: a chunk is never cut off),
    /// flushes the rest, and returns the bytes shipped, or why the last chunk could not be.
    pub async fn finish(&self, flusher: tokio::task::JoinHandle<()>) -> Result<u64, String> {
        self.stop.notify_one();
        let _ = flusher.await;
        self.flush().await;
        let inner = self.inner.lock().await;
        match &inner.failed {
            Some(e) => Err(e.clone()),
            None => Ok(inner.uploaded),
        }
    }
}

/// Reads `reader` line by line into `shipper` as `stream`, echoing each line to this
/// process's stdout (stderr lines too: the pod log is one stream).
pub async fn pump<R: AsyncRead + Unpin>(reader: R, stream: &'static str, shipper: LogShipper) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let mut out = tokio::io::stdout();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        let _ = out.write_all(&line).await;
        if !line.ends_with(b"\n") {
            let _ = out.write_all(b"\n").await;
        }
        let _ = out.flush().await;
        let text = String::from_utf8_lossy(&line);
        shipper
            .line(stream, text.trim_end_matches(['\n', '\r']))
            .await;
    }
}
