//! Reading packages back: the manifest by its digest, and layers extracted safely into a
//! folder. This is what every task does before it runs (and `flowpack fetch`).

use std::path::Path;

use crate::Digest;
use crate::archive::{self, ArchiveError, Extracted};
use crate::manifest::{Layer, MAX_MANIFEST_SIZE, Manifest, ManifestError};
use crate::store::{Store, StoreError};

/// Why a package could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// No manifest of that digest in the store.
    #[error(
        "package {digest} is not in the store {store}: push it first (a manifest exists only once all its layers do)"
    )]
    Missing {
        /// The package.
        digest: Digest,
        /// The store.
        store: String,
    },
    /// The store failed or returned corrupt bytes.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest is not usable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A layer could not be extracted.
    #[error("layer {digest}: {source}")]
    Layer {
        /// The layer.
        digest: Digest,
        /// Why.
        #[source]
        source: ArchiveError,
    },
    /// The destination exists already.
    #[error("{} exists already: choose a new folder", .0.display())]
    Exists(std::path::PathBuf),
}

/// Reads and verifies the manifest of package `digest`, reading no more than a manifest
/// of [`MAX_MANIFEST_SIZE`] takes (compressed and decompressed).
pub async fn read_manifest(store: &Store, digest: &Digest) -> Result<Manifest, PackageError> {
    Ok(read_manifest_bytes(store, digest).await?.0)
}

/// Reads and verifies the manifest of package `digest`, with its bytes as stored (they are
/// its canonical form: their digest is the package id), to be kept without re-serializing.
pub async fn read_manifest_bytes(
    store: &Store,
    digest: &Digest,
) -> Result<(Manifest, Vec<u8>), PackageError> {
    let bytes = match store.get_blob_bytes(digest, MAX_MANIFEST_SIZE).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => {
            return Err(PackageError::Missing {
                digest: *digest,
                store: store.url().to_string(),
            });
        }
        Err(StoreError::TooLarge { key, max, .. }) => {
            return Err(StoreError::TooLarge {
                key,
                max,
                what: "a manifest",
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    Ok((Manifest::parse(&bytes, *digest)?, bytes))
}

/// Extracts `layer` into `dest`, which must not exist: it is written as a temporary sibling
/// folder and renamed into place only when every byte has been verified and the layer holds
/// exactly the entries its manifest declares. If another
/// process renames the same layer into `dest` first, that one is kept.
pub async fn extract_layer(
    store: &Store,
    layer: &Layer,
    dest: &Path,
) -> Result<Extracted, PackageError> {
    if dest.exists() {
        return Err(PackageError::Exists(dest.to_path_buf()));
    }
    let layer_err = |source| PackageError::Layer {
        digest: layer.digest,
        source,
    };
    let io_err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| layer_err(ArchiveError::Io { path: p, source })
    };
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".flowpack-extract-")
        .tempdir_in(parent)
        .map_err(io_err(parent))?;
    let reader = store.open_blob(&layer.digest, layer.size).await?;
    let tmp_path = tmp.path().to_path_buf();
    let layer_entries = layer.entries;
    let stats = tokio::task::spawn_blocking(move || -> Result<Extracted, ArchiveError> {
        let mut reader = reader;
        let stats = archive::extract_exactly(&mut reader, &tmp_path, layer_entries)?;
        // Read past the end of the tar stream: the digest is checked at the blob's end.
        reader.finish()?;
        Ok(stats)
    })
    .await
    .expect("extraction does not panic")
    .map_err(layer_err)?;
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, dest) {
        let _ = std::fs::remove_dir_all(&kept);
        // Another process extracted the same layer meanwhile: verified content, use it.
        if !dest.is_dir() {
            return Err(io_err(dest)(e));
        }
    }
    Ok(stats)
}
