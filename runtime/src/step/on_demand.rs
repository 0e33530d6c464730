//! Inputs on demand (a step with `lazy_inputs`, as flowpack's Python steps are): the
//! inputs phase writes only an index of what the inputs folder would hold, and while the
//! child runs, `flowpack step` places each input when the child asks for it, through a
//! Unix socket — so an artifact the step never reads is never downloaded or copied.
//!
//! The index is `$FLOWPACK_INPUT_DIR/.flowpack-inputs.json` (a name no artifact can have):
//! `{"PATH": {"digest", "size", "kind"}}`, one entry per path the eager restore would
//! place (`x`, `train_a/x`, `3/x`, docs/runtime.md). The child connects to
//! `$FLOWPACK_INPUTS_SOCKET` and sends one path per line; the answer is one line, `ok` once
//! the file or folder is at `$FLOWPACK_INPUT_DIR/PATH` (placed exactly as the eager restore
//! places it: from the node cache, verified, a copy of its own), or `error: WHY`. A path
//! not in the index is refused; a path asked twice is placed once. The first failure to
//! place is kept: a child that then fails is reported as flowpack's failure (exit 125,
//! the error in the record), as an eager restore's failure would be.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flowpack_core::run::ArtifactRef;
use flowpack_core::store::Store;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Mutex;

use crate::RuntimeError;
use crate::cache::Cache;
use crate::step::artifacts::place;

/// The index's file name in the inputs folder.
pub const INDEX: &str = ".flowpack-inputs.json";

/// The inputs left to place, and where.
pub struct OnDemand {
    input_dir: PathBuf,
    placements: BTreeMap<String, ArtifactRef>,
}

impl OnDemand {
    /// Writes the index of `placements` into `input_dir`.
    pub fn new(
        input_dir: &Path,
        placements: Vec<(PathBuf, ArtifactRef)>,
    ) -> Result<Self, RuntimeError> {
        let placements: BTreeMap<String, ArtifactRef> = placements
            .into_iter()
            .map(|(rel, a)| (rel.to_string_lossy().into_owned(), a))
            .collect();
        let index: BTreeMap<&String, serde_json::Value> = placements
            .iter()
            .map(|(rel, a)| {
                let entry = serde_json::json!({"digest": a.digest, "size": a.size, "kind": a.kind});
                (rel, entry)
            })
            .collect();
        let file = input_dir.join(INDEX);
        let text = serde_json::to_vec(&index).expect("an index serializes");
        std::fs::write(&file, text).map_err(|e| RuntimeError::io(&file, e))?;
        Ok(Self {
            input_dir: input_dir.to_path_buf(),
            placements,
        })
    }
}

/// The socket a child asks through, listening for the run phase.
pub struct Server {
    listener: UnixListener,
    /// The socket's private folder (removed when dropped).
    _dir: tempfile::TempDir,
    path: PathBuf,
    state: Arc<State>,
}

struct State {
    placed: Mutex<BTreeSet<String>>,
    downloaded: AtomicU64,
    failure: std::sync::Mutex<Option<RuntimeError>>,
}

impl Server {
    /// A listening socket in a private folder of the temporary directory (socket paths are
    /// limited to ~100 bytes, which a cache folder deep in a tree can pass).
    pub fn bind() -> Result<Self, RuntimeError> {
        let dir = tempfile::Builder::new()
            .prefix("flowpack-")
            .tempdir()
            .map_err(|e| RuntimeError::io(&std::env::temp_dir(), e))?;
        let path = dir.path().join("inputs.sock");
        let listener = UnixListener::bind(&path).map_err(|e| RuntimeError::io(&path, e))?;
        Ok(Self {
            listener,
            _dir: dir,
            path,
            state: Arc::new(State {
                placed: Mutex::new(BTreeSet::new()),
                downloaded: AtomicU64::new(0),
                failure: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The socket's path, for `$FLOWPACK_INPUTS_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers every connection until dropped (it never returns on its own).
    pub async fn serve(&self, od: &OnDemand, store: &Store, cache: &Cache) {
        let mut conns = futures::stream::FuturesUnordered::new();
        loop {
            use futures::StreamExt;
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => conns.push(answer(stream, od, store, cache, &self.state)),
                    Err(e) => tracing::warn!("inputs socket: {e}"),
                },
                Some(()) = conns.next(), if !conns.is_empty() => {}
            }
        }
    }

    /// Compressed bytes downloaded for the child so far.
    pub fn downloaded(&self) -> u64 {
        self.state.downloaded.load(Ordering::Relaxed)
    }

    /// The first input that could not be placed, if any.
    pub fn failure(&self) -> Option<RuntimeError> {
        self.state.failure.lock().expect("not poisoned").take()
    }
}

/// The longest request line: a path of the index is at most two names of 128 bytes.
const MAX_LINE: u64 = 1024;

/// One connection: a path a line, an answer a line, until the child closes it (or sends
/// a line no path can be: the connection is closed, nothing of it is kept).
async fn answer(stream: UnixStream, od: &OnDemand, store: &Store, cache: &Cache, state: &State) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) if line.last() != Some(&b'\n') => {
                let _ = write.write_all(b"error: not a path of the index\n").await;
                return;
            }
            Ok(_) => {}
        }
        line.pop();
        let rel = String::from_utf8_lossy(&line);
        let reply = match place_one(&rel, od, store, cache, state).await {
            Ok(()) => "ok\n".to_string(),
            Err(e) => {
                let reply = format!("error: {e}\n");
                state.failure.lock().expect("not poisoned").get_or_insert(e);
                reply
            }
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn place_one(
    rel: &str,
    od: &OnDemand,
    store: &Store,
    cache: &Cache,
    state: &State,
) -> Result<(), RuntimeError> {
    let a = od.placements.get(rel).ok_or_else(|| {
        RuntimeError::Invalid(format!("input '{rel}' is not in this task's inputs"))
    })?;
    // One placement at a time: a path asked twice (two threads of the child) is placed once.
    let mut placed = state.placed.lock().await;
    if placed.contains(rel) {
        return Ok(());
    }
    let downloaded = place(store, cache, a, &od.input_dir.join(rel)).await?;
    state.downloaded.fetch_add(downloaded, Ordering::Relaxed);
    placed.insert(rel.to_string());
    Ok(())
}
