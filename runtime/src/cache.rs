//! The node-local, digest-keyed cache of a task's inputs: package manifests, extracted
//! layers and restored artifacts, in `FLOWPACK_CACHE_DIR`. Everything in it was verified
//! against its digest before it was renamed into place, so a warm start reads it without
//! touching the network; several tasks on one node may share it (a race to fill one entry
//! keeps whichever finished first: both hold the same verified bytes).

use std::io::Write;
use std::path::{Path, PathBuf};

use flowpack_core::Digest;
use flowpack_core::archive;
use flowpack_core::manifest::{Layer, Manifest};
use flowpack_core::package;
use flowpack_core::run::ArtifactKind;
use flowpack_core::store::{Store, StoreError};

use crate::RuntimeError;

/// The cache folder of one version of the cache format.
pub struct Cache {
    root: PathBuf,
}

/// Where a package's layers are, extracted.
pub struct Package {
    /// The extracted code layer.
    pub code: PathBuf,
    /// The extracted env layer, if the package has one.
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

    /// The extracted layers of `manifest`, fetched and verified when missing.
    pub async fn layers(
        &self,
        store: &Store,
        manifest: &Manifest,
    ) -> Result<Package, RuntimeError> {
        let mut downloaded = 0;
        let mut dirs = Vec::new();
        for layer in &manifest.layers {
            let (dir, n) = self.layer(store, layer).await?;
            downloaded += n;
            dirs.push(dir);
        }
        let mut dirs = dirs.into_iter();
        let code = dirs.next().expect("a manifest has a code layer");
        Ok(Package {
            env: dirs.next(),
            code,
            downloaded,
        })
    }

    async fn layer(&self, store: &Store, layer: &Layer) -> Result<(PathBuf, u64), RuntimeError> {
        let dir = self.root.join("layers").join(layer.digest.hex());
        if dir.is_dir() {
            return Ok((dir, 0));
        }
        let stats = package::extract_layer(store, layer, &dir).await?;
        Ok((dir, stats.bytes))
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
        let blobs = self.root.join("blobs");
        let path = match kind {
            ArtifactKind::File => blobs.join(digest.hex()),
            ArtifactKind::Dir => blobs.join(format!("{}.d", digest.hex())),
        };
        if path.exists() {
            return Ok((path, 0));
        }
        std::fs::create_dir_all(&blobs).map_err(|e| RuntimeError::io(&blobs, e))?;
        let reader = store.open_blob(digest, size).await?;
        let tmp_dir = self.tmp()?;
        let dest = path.clone();
        tokio::task::spawn_blocking(move || -> Result<(), RuntimeError> {
            let mut reader = reader;
            match kind {
                ArtifactKind::File => {
                    let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)
                        .map_err(|e| RuntimeError::io(&tmp_dir, e))?;
                    std::io::copy(&mut reader, tmp.as_file_mut())
                        .map_err(|e| StoreError::from_io(e, &dest.display().to_string()))?;
                    reader.finish()?;
                    if let Err(e) = tmp.persist_noclobber(&dest)
                        && !dest.exists()
                    {
                        return Err(RuntimeError::io(&dest, e.error));
                    }
                }
                ArtifactKind::Dir => {
                    let tmp = tempfile::tempdir_in(&tmp_dir)
                        .map_err(|e| RuntimeError::io(&tmp_dir, e))?;
                    archive::extract(&mut reader, tmp.path())?;
                    reader.finish()?;
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
                }
            }
            Ok(())
        })
        .await
        .expect("restoring does not panic")?;
        Ok((path, size))
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

/// Makes `dest` a tree of hard links to the files of `src` (folders and symlinks are
/// recreated). Falls back to copying across file systems. New files a task writes there
/// do not reach the cache; files must not be modified in place.
pub fn link_tree(src: &Path, dest: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dest).map_err(|e| RuntimeError::io(dest, e))?;
    for entry in std::fs::read_dir(src).map_err(|e| RuntimeError::io(src, e))? {
        let entry = entry.map_err(|e| RuntimeError::io(src, e))?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let ft = entry.file_type().map_err(|e| RuntimeError::io(&from, e))?;
        if ft.is_dir() {
            link_tree(&from, &to)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| RuntimeError::io(&from, e))?;
            std::os::unix::fs::symlink(target, &to).map_err(|e| RuntimeError::io(&to, e))?;
        } else {
            link_file(&from, &to)?;
        }
    }
    Ok(())
}

/// Hard-links (or copies) one file.
pub fn link_file(from: &Path, to: &Path) -> Result<(), RuntimeError> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| RuntimeError::io(to, e))?;
    }
    Ok(())
}
