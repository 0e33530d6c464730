//! Restoring a task's inputs from its parents' committed namespaces, and uploading its
//! outputs into its own.
//!
//! Every name in a parent's `artifacts.json` was checked when it was read
//! ([`flowpack_core::name`]), and each artifact lands in a new file of the task's own
//! inputs folder ([`InputLayout`] says where): a copy of the cache's, never the cache's own.
//!
//! A task's namespace (`artifacts.json`) is what it inherited plus what it wrote: inherited
//! artifacts are references to blobs already stored, so they cost no upload. At a join,
//! each parent's namespace is restored under `INPUT_DIR/<parent step>/` (static split) or
//! `INPUT_DIR/<split index>/` (foreach), and artifacts equal in every parent also at the
//! top; only those equal ones are inherited past the join.

use std::path::Path;

use flowpack_core::Digest;
use flowpack_core::archive;
use flowpack_core::run::{ArtifactKind, ArtifactRef, Artifacts, InputLayout, TaskRef};
use flowpack_core::store::{Put, Store, frames, layout};
use flowpack_packager::tree::{self, Rules};

use crate::RuntimeError;
use crate::cache::{Cache, copy_tree};
use crate::step::on_demand::OnDemand;

/// The zstd level of artifacts: fast, since artifacts are often large and already dense.
pub const LEVEL: i32 = 1;

/// The newest committed attempt of a task and its namespace.
pub async fn committed(
    store: &Store,
    flow: &str,
    run: &str,
    task: &TaskRef,
) -> Result<Option<(u32, Artifacts)>, RuntimeError> {
    let prefix = layout::task(flow, run, &task.step, &task.task);
    let mut attempts: Vec<u32> = store
        .list_dirs(&prefix)
        .await?
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    attempts.sort_unstable_by(|a, b| b.cmp(a));
    for a in attempts {
        let key = format!(
            "{}artifacts.json",
            layout::attempt(flow, run, &task.step, &task.task, a)
        );
        match store.get_json::<Artifacts>(&key).await {
            Ok(arts) => return Ok(Some((a, arts))),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// What restoring inputs gave.
pub struct Restored {
    /// The namespace inherited (before this task's own outputs).
    pub inherited: Artifacts,
    /// The parents' namespaces, for the foreach item lookup.
    pub parents: Vec<(TaskRef, Artifacts)>,
    /// Compressed bytes downloaded.
    pub downloaded: u64,
    /// With `lazy_inputs`: what is left to place when the step asks.
    pub on_demand: Option<OnDemand>,
}

/// Restores the artifacts of `parents` into `input_dir` as the step's settings say: only
/// its `inputs` when given; with `lazy_inputs`, only their index, each placed when the
/// step asks ([`OnDemand`]).
pub async fn restore(
    store: &Store,
    cache: &Cache,
    flow: &str,
    run: &str,
    parents: &[TaskRef],
    settings: &flowpack_core::flow::Settings,
    input_dir: &Path,
) -> Result<Restored, RuntimeError> {
    let (only, lazy) = (settings.inputs.as_ref(), settings.lazy_inputs);
    let mut namespaces = Vec::new();
    for p in parents {
        match committed(store, flow, run, p).await? {
            Some((_, arts)) => namespaces.push((p.clone(), arts)),
            None => {
                return Err(RuntimeError::Invalid(format!(
                    "parent task {p} of run {run} has no committed attempt: it did not succeed"
                )));
            }
        }
    }
    let parents_text = parents
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if let Some(only) = only {
        for name in only {
            let anywhere = namespaces
                .iter()
                .any(|(_, n)| n.artifacts.contains_key(name));
            if !anywhere {
                return Err(RuntimeError::MissingInput {
                    artifact: name.clone(),
                    parents: parents_text,
                    hint: "check the step's `inputs:` and that a step before it writes the artifact to $FLOWPACK_OUTPUT_DIR".into(),
                });
            }
        }
    }
    let layout = InputLayout::of(&namespaces, only);
    std::fs::create_dir_all(input_dir).map_err(|e| RuntimeError::io(input_dir, e))?;
    let mut downloaded = 0;
    let on_demand = if lazy {
        Some(OnDemand::new(input_dir, layout.placements)?)
    } else {
        for (rel, a) in &layout.placements {
            downloaded += place(store, cache, a, &input_dir.join(rel)).await?;
        }
        None
    };
    Ok(Restored {
        inherited: layout.inherited,
        parents: namespaces,
        downloaded,
        on_demand,
    })
}

/// Puts a copy of artifact `a` at `dest` (which must not exist, in a folder made here) from
/// the cache, downloading it first when missing.
pub async fn place(
    store: &Store,
    cache: &Cache,
    a: &ArtifactRef,
    dest: &Path,
) -> Result<u64, RuntimeError> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
    }
    match a.kind {
        ArtifactKind::File => cache.place_file(store, &a.digest, a.size, dest).await,
        ArtifactKind::Dir => {
            let (src, downloaded) = cache.artifact(store, &a.digest, a.size, a.kind).await?;
            copy_tree(&src, dest)?;
            Ok(downloaded)
        }
    }
}

/// Reads a JSON artifact from a namespace (the foreach list of a parent).
pub async fn read_json(
    store: &Store,
    cache: &Cache,
    a: &ArtifactRef,
) -> Result<serde_json::Value, RuntimeError> {
    if a.kind != ArtifactKind::File {
        return Err(RuntimeError::Invalid(
            "a folder artifact is not JSON".into(),
        ));
    }
    let (path, _) = cache.artifact(store, &a.digest, a.size, a.kind).await?;
    let text = std::fs::read(&path).map_err(|e| RuntimeError::io(&path, e))?;
    serde_json::from_slice(&text).map_err(|e| RuntimeError::Invalid(format!("not JSON: {e}")))
}

/// What uploading outputs did.
pub struct Uploaded {
    /// The task's namespace: inherited, overridden by its outputs.
    pub namespace: Artifacts,
    /// Compressed bytes uploaded.
    pub uploaded: u64,
    /// Compressed bytes the store had already.
    pub reused: u64,
}

/// Uploads each top-level file or folder of `output_dir` as an artifact.
pub async fn upload(
    store: &Store,
    output_dir: &Path,
    inherited: Artifacts,
    origin: &str,
) -> Result<Uploaded, RuntimeError> {
    let mut namespace = inherited;
    let (mut uploaded, mut reused) = (0, 0);
    let mut names: Vec<_> = std::fs::read_dir(output_dir)
        .map_err(|e| RuntimeError::io(output_dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| RuntimeError::io(output_dir, e))?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !flowpack_core::flow::is_artifact_name(&name) {
            return Err(RuntimeError::Invalid(format!(
                "output '{name}' is not a valid artifact name: use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'"
            )));
        }
        let ft = entry.file_type().map_err(|e| RuntimeError::io(&path, e))?;
        let kind = if ft.is_file() {
            ArtifactKind::File
        } else if ft.is_dir() {
            ArtifactKind::Dir
        } else {
            return Err(RuntimeError::Invalid(format!(
                "output '{name}' is neither a file nor a folder (symlinks and special files cannot be artifacts)"
            )));
        };
        let (digest, size, sent) = send(store, path, kind).await?;
        match sent {
            Sent::Uploaded(n) => uploaded += n,
            Sent::Stored(n) => reused += n,
        }
        namespace.artifacts.insert(
            name,
            ArtifactRef {
                digest,
                size,
                kind,
                origin: origin.to_string(),
            },
        );
    }
    Ok(Uploaded {
        namespace,
        uploaded,
        reused,
    })
}

/// Stores the output at `path` as a blob, unless the store has it: one pass hashes it (its
/// name), a HEAD asks the store, and a second pass streams it, compressed where it pays,
/// straight into the upload, hashed again so that an output that changed in between is
/// refused ([`Store::put_blob_from`]). Both passes read the page cache, and SHA-256 runs
/// at GB/s with the CPU's SHA extensions, so this is cheaper than writing and reading a
/// compressed temporary copy.
async fn send(
    store: &Store,
    path: std::path::PathBuf,
    kind: ArtifactKind,
) -> Result<(Digest, u64, Sent), RuntimeError> {
    let p = path.clone();
    let (digest, size, entries) = tokio::task::spawn_blocking(move || hash(&p, kind))
        .await
        .expect("hashing does not panic")?;
    if let Some(stored) = store.stat_blob(&digest).await? {
        return Ok((digest, size, Sent::Stored(stored)));
    }
    let src = path.clone();
    let put = store
        .put_blob_from(&digest, size, LEVEL, &path, move |w| match entries {
            None => copy(&mut std::fs::File::open(&src)?, w),
            Some(mut entries) => archive::write_tar(&mut entries, w)
                .map(|_| ())
                .map_err(std::io::Error::other),
        })
        .await?;
    let sent = match put {
        Put::Uploaded(n) => Sent::Uploaded(n),
        // Another writer stored it meanwhile.
        Put::Existed => Sent::Stored(0),
    };
    Ok((digest, size, sent))
}

/// What [`send`] did: compressed bytes uploaded, or the stored size of a blob the store had.
enum Sent {
    Uploaded(u64),
    Stored(u64),
}

/// The digest and size of the output at `path` (a file's bytes, or a folder's tar stream),
/// and a folder's listing, for the second pass to write the same stream.
fn hash(
    path: &Path,
    kind: ArtifactKind,
) -> Result<(Digest, u64, Option<Vec<archive::Entry>>), RuntimeError> {
    let io = |e| RuntimeError::io(path, e);
    let mut w = flowpack_core::digest::HashingWriter::new(std::io::sink());
    let entries = match kind {
        ArtifactKind::File => {
            copy(&mut std::fs::File::open(path).map_err(io)?, &mut w).map_err(io)?;
            None
        }
        ArtifactKind::Dir => {
            let mut listing = tree::list(path, Rules::All, &[])?;
            w = archive::write_tar(&mut listing.entries, w)?;
            Some(listing.entries)
        }
    };
    let (_, digest, size) = w.finish();
    Ok((digest, size, entries))
}

/// Copies `r` to `w` in pieces of [`frames::CHUNK`] (fewer calls into hashing and framing
/// than `io::copy`'s 8 KiB).
fn copy(r: &mut impl std::io::Read, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; frames::CHUNK];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => w.write_all(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
