//! The node-local, digest-keyed cache of a task's inputs: package manifests, extracted
//! layers and restored artifacts, in `FLOWPACK_CACHE_DIR`. Everything in it was verified
//! against its digest before it was renamed into place, so a warm start reads it without
//! touching the network; several tasks on one node may share it (a race to fill one entry
//! keeps whichever finished first: both hold the same verified bytes).
//!
//! A task never works on the cache's own files: it gets copies ([`copy_tree`],
//! [`copy_file`]: reflinks where the file system can) of the code layer and of its inputs
//! (an input not yet cached is written to the cache and to the task's copy as it
//! downloads, [`Cache::place_file`]), so nothing a step writes reaches the next task.
//! Entries are read-only once in place ([`seal`]); the step's env layer, used in place on
//! `PYTHONPATH`, is the one entry a task sees directly.

use std::io::Write;
use std::path::{Path, PathBuf};

use flowpack_core::Digest;
use flowpack_core::archive;
use flowpack_core::manifest::{Layer, LayerKind, Manifest};
use flowpack_core::package;
use flowpack_core::run::ArtifactKind;
use flowpack_core::store::{BlobReader, Store};

use crate::RuntimeError;

/// The cache folder of one version of the cache format.
pub struct Cache {
    root: PathBuf,
}

/// Where a package's layers are, extracted.
pub struct Package {
    /// The extracted code layer.
    pub code: PathBuf,
    /// The extracted env layer of the step (its own, else the flow's), if any.
    pub env: Option<PathBuf>,
    /// Compressed bytes downloaded to get here (0 on a warm start).
    pub downloaded: u64,
}

impl Cache {
    /// The cache in `dir` (`FLOWPACK_CACHE_DIR`).
    pub fn new(dir: &Path) -> Self {
        Self {
            root: dir.join("runtime-v1"),
        }
    }

    /// A folder for temporary files next to the cache entries (same file system).
    pub fn tmp(&self) -> Result<PathBuf, RuntimeError> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io(&dir, e))?;
        Ok(dir)
    }

    /// The manifest of `digest`, from the cache or fetched and verified.
    pub async fn manifest(&self, store: &Store, digest: &Digest) -> Result<Manifest, RuntimeError> {
        let mpath = self
            .root
            .join("manifests")
            .join(format!("{}.json", digest.hex()));
        if let Ok(bytes) = std::fs::read(&mpath)
            && Digest::of(&bytes) == *digest
        {
            return Ok(Manifest::parse(&bytes, *digest)?);
        }
        // The bytes read are canonical (verified against the digest): kept as they are, as
        // re-serializing a large manifest costs two more copies of its flow.
        let (m, bytes) = package::read_manifest_bytes(store, digest).await?;
        self.write_file(&mpath, &bytes)?;
        Ok(m)
    }

    /// The extracted layers `step` of `manifest` runs with, fetched and verified when
    /// missing: the code layer and the step's env layer (its own, else the flow's); the
    /// env layers of other steps are not fetched.
    pub async fn layers(
        &self,
        store: &Store,
        manifest: &Manifest,
        step: &str,
    ) -> Result<Package, RuntimeError> {
        let code = manifest
            .layer(LayerKind::Code)
            .expect("a parsed manifest has a code layer");
        let (code, mut downloaded) = self.layer(store, code).await?;
        let env = match manifest.env_layer(step) {
            Some(layer) => {
                let (dir, n) = self.layer(store, layer).await?;
                downloaded += n;
                Some(dir)
            }
            None => None,
        };
        Ok(Package {
            env,
            code,
            downloaded,
        })
    }

    async fn layer(&self, store: &Store, layer: &Layer) -> Result<(PathBuf, u64), RuntimeError> {
        let dir = self.root.join("layers").join(layer.digest.hex());
        if dir.is_dir() {
            return Ok((dir, 0));
        }
        match package::extract_layer(store, layer, &dir).await {
            Ok(stats) => {
                seal(&dir)?;
                Ok((dir, stats.bytes))
            }
            // Another process (a task of another run sharing this cache) put the layer
            // there since the check above: it was verified before it was renamed in.
            Err(package::PackageError::Exists(_)) if dir.is_dir() => Ok((dir, 0)),
            Err(e) => Err(e.into()),
        }
    }

    /// The local path of an artifact blob (a file, or a folder for `Dir` artifacts),
    /// downloaded and verified when missing. Returns the path and the bytes downloaded.
    pub async fn artifact(
        &self,
        store: &Store,
        digest: &Digest,
        size: u64,
        kind: ArtifactKind,
    ) -> Result<(PathBuf, u64), RuntimeError> {
        let path = self.blob_path(digest, kind);
        if path.exists() {
            return Ok((path, 0));
        }
        match kind {
            ArtifactKind::File => self.fetch_file(store, digest, size, &path, None).await?,
            ArtifactKind::Dir => self.fetch_dir(store, digest, size, &path).await?,
        }
        Ok((path, size))
    }

    /// Puts a copy of the file artifact `digest` at `dest` (a new file, writable by the
    /// task): from the cache when it is there, else downloaded once and written to the
    /// cache and to `dest` as it streams, so a large input is not read back from the disk
    /// to be copied. Returns the bytes downloaded.
    pub async fn place_file(
        &self,
        store: &Store,
        digest: &Digest,
        size: u64,
        dest: &Path,
    ) -> Result<u64, RuntimeError> {
        let path = self.blob_path(digest, ArtifactKind::File);
        if path.exists() {
            copy_file(&path, dest)?;
            return Ok(0);
        }
        self.fetch_file(store, digest, size, &path, Some(dest))
            .await?;
        Ok(size)
    }

    fn blob_path(&self, digest: &Digest, kind: ArtifactKind) -> PathBuf {
        let blobs = self.root.join("blobs");
        match kind {
            ArtifactKind::File => blobs.join(digest.hex()),
            ArtifactKind::Dir => blobs.join(format!("{}.d", digest.hex())),
        }
    }

    /// The reader of blob `digest` bound for the cache entry `path` (its folder made), and
    /// the cache's folder for temporary files.
    async fn open_blob(
        &self,
        store: &Store,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<(BlobReader, PathBuf), RuntimeError> {
        let blobs = path.parent().expect("cache blobs have a folder");
        std::fs::create_dir_all(blobs).map_err(|e| RuntimeError::io(blobs, e))?;
        Ok((store.open_blob(digest, size).await?, self.tmp()?))
    }

    /// Downloads the file blob `digest` into the cache at `path`, and into the new file
    /// `also` when given (removed again if the blob turns out damaged).
    async fn fetch_file(
        &self,
        store: &Store,
        digest: &Digest,
        size: u64,
        path: &Path,
        also: Option<&Path>,
    ) -> Result<(), RuntimeError> {
        let (reader, tmp_dir) = self.open_blob(store, digest, size, path).await?;
        let (dest, also) = (path.to_path_buf(), also.map(Path::to_path_buf));
        tokio::task::spawn_blocking(move || -> Result<(), RuntimeError> {
            let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)
                .map_err(|e| RuntimeError::io(&tmp_dir, e))?;
            let mut copy = also
                .as_deref()
                .map(|p| new_task_file(p, 0o600))
                .transpose()?;
            let mut outs: Vec<&mut dyn Write> = vec![tmp.as_file_mut()];
            outs.extend(copy.as_mut().map(|f| f as &mut dyn Write));
            if let Err(e) = reader.copy_to(&mut outs, &dest.display().to_string()) {
                if let Some(p) = &also {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e.into());
            }
            seal(tmp.path())?;
            if let Err(e) = tmp.persist_noclobber(&dest)
                && !dest.exists()
            {
                return Err(RuntimeError::io(&dest, e.error));
            }
            Ok(())
        })
        .await
        .expect("restoring does not panic")
    }

    /// Downloads the folder blob `digest` (a tar) and extracts it into the cache at `path`.
    async fn fetch_dir(
        &self,
        store: &Store,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<(), RuntimeError> {
        let (reader, tmp_dir) = self.open_blob(store, digest, size, path).await?;
        let dest = path.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<(), RuntimeError> {
            let mut reader = reader;
            let tmp = tempfile::tempdir_in(&tmp_dir).map_err(|e| RuntimeError::io(&tmp_dir, e))?;
            archive::extract(&mut reader, tmp.path())?;
            reader.finish()?;
            seal(tmp.path())?;
            let kept = tmp.keep();
            if std::fs::rename(&kept, &dest).is_err() {
                let _ = std::fs::remove_dir_all(&kept);
                if !dest.is_dir() {
                    return Err(RuntimeError::io(
                        &dest,
                        std::io::Error::other("cannot move into the cache"),
                    ));
                }
            }
            Ok(())
        })
        .await
        .expect("restoring does not panic")
    }

    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
        let dir = path.parent().expect("cache files have a folder");
        std::fs::create_dir_all(dir).map_err(|e| RuntimeError::io(dir, e))?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| RuntimeError::io(dir, e))?;
        tmp.write_all(bytes)
            .map_err(|e| RuntimeError::io(path, e))?;
        tmp.persist(path)
            .map_err(|e| RuntimeError::io(path, e.error))?;
        Ok(())
    }
}

/// Makes `dest` a copy of the tree `src` (a cache entry) for one task: files are copied
/// with `copy_file_range`, which a copy-on-write file system (btrfs, XFS) turns into a
/// reflink, so the task owns its files and nothing it writes there — even in place, even as
/// root — reaches the cache. Folders and symlinks are recreated; nothing that exists is
/// overwritten.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir(dest).map_err(|e| RuntimeError::io(dest, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| RuntimeError::io(src, e))? {
        let entry = entry.map_err(|e| RuntimeError::io(src, e))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let ft = entry.file_type().map_err(|e| RuntimeError::io(&from, e))?;
        if ft.is_dir() {
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| RuntimeError::io(&from, e))?;
            std::os::unix::fs::symlink(target, &to).map_err(|e| RuntimeError::io(&to, e))?;
        } else {
            copy_file(&from, &to)?;
        }
    }
    Ok(())
}

/// Copies one file of a cache entry to a new file `to` (which must not exist: an existing
/// file, or a link to one, is never truncated), writable by the task, keeping the
/// executable bits.
pub fn copy_file(from: &Path, to: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    let mut src = std::fs::File::open(from).map_err(|e| RuntimeError::io(from, e))?;
    let mode = src
        .metadata()
        .map_err(|e| RuntimeError::io(from, e))?
        .permissions()
        .mode();
    let mut dst = new_task_file(to, (mode & 0o777) | 0o600)?;
    // std turns a file-to-file copy into copy_file_range (a reflink where the file system
    // can), without reading the bytes through this process.
    std::io::copy(&mut src, &mut dst).map_err(|e| RuntimeError::io(to, e))?;
    Ok(())
}

/// Creates the task's file `path` with `mode`; an existing file, or a link to one, is an
/// error, never truncated.
fn new_task_file(path: &Path, mode: u32) -> Result<std::fs::File, RuntimeError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| RuntimeError::io(path, e))
}

/// Takes the write bits off every file under `path` (or `path` itself, a file) as it
/// enters the cache: a second guard, after [`copy_tree`], for entries tasks use in place
/// (the env layer on `PYTHONPATH`). A task running as another user than the cache's owner,
/// or as its owner through an ordinary write, gets "permission denied"; folders stay
/// writable so that the cache can be deleted with `rm -rf`.
pub fn seal(path: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| RuntimeError::io(path, e))?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).map_err(|e| RuntimeError::io(path, e))? {
            seal(&entry.map_err(|e| RuntimeError::io(path, e))?.path())?;
        }
    } else if meta.is_file() {
        let mode = meta.permissions().mode();
        if mode & 0o222 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222))
                .map_err(|e| RuntimeError::io(path, e))?;
        }
    }
    Ok(())
}
