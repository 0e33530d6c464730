//! Resolved settings: command-line flags, then environment variables, then defaults,
//! merged once here before any library call.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flowpack_core::env_vars::FLOWPACK_STORE;
use flowpack_core::store::Store;

/// The folder name of the embedded default store, beside the flow file.
pub const DEFAULT_STORE_DIR: &str = ".flowpack";

/// The store named by `--store`, else `FLOWPACK_STORE`, else `.flowpack/` in `beside`.
/// Errors show the URL only through `redact_url`, and say when it came from the
/// environment.
pub fn store(flag: Option<&str>, beside: &Path) -> Result<Store> {
    if let Some(url) = flag {
        return Ok(Store::open(url)?);
    }
    match std::env::var(FLOWPACK_STORE) {
        Ok(url) if !url.is_empty() => {
            Store::open(&url).with_context(|| format!("cannot open the store in {FLOWPACK_STORE}"))
        }
        _ => Ok(Store::open(
            &beside.join(DEFAULT_STORE_DIR).display().to_string(),
        )?),
    }
}

/// The folder of a flow file (`.` for a bare file name).
pub fn flow_dir(flow: &Path) -> PathBuf {
    match flow.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The cache folder (`flowpack_core::env_vars::cache_dir`: `FLOWPACK_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/flowpack`, else `~/.cache/flowpack`), absolute.
pub fn cache_dir() -> Result<PathBuf> {
    flowpack_core::env_vars::cache_dir()
        .context("cannot place the cache: set FLOWPACK_CACHE_DIR or HOME")
}
