//! Resolved settings: command-line flags, then environment variables, then defaults,
//! merged once here before any library call. [`store`] is the one place that decides which
//! store a command uses (docs/configuration.md, "The default store").

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use flowpack_core::env_vars::FLOWPACK_STORE;
use flowpack_core::store::Store;

/// The folder name of the default store, found from the current folder upward.
pub const DEFAULT_STORE_DIR: &str = ".flowpack";

/// What a command does with its store: only a writing command may create the default one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `runs`, `show`, `logs`, `artifacts`, `fetch`, `resume`'s lookup, `client`: the store
    /// must exist.
    Read,
    /// `run`, `push`, `compile`: a missing default store is made in the current folder.
    Write,
}

/// The store named by `--store`, else `FLOWPACK_STORE`, else the default store: the nearest
/// `.flowpack` folder from the current folder upward (as git finds `.git` and Metaflow its
/// `.metaflow`), or, for a writing command when there is none, a new `./.flowpack`. A
/// reading command never creates a store: without one it fails, saying where it looked;
/// a folder named by `--store` or `FLOWPACK_STORE` that does not exist fails too. Errors
/// show a URL only through `redact_url`, and say when it came from the environment.
pub fn store(flag: Option<&str>, access: Access) -> Result<Store> {
    if let Some(url) = flag {
        return open_named(url, access);
    }
    match std::env::var(FLOWPACK_STORE) {
        Ok(url) if !url.is_empty() => open_named(&url, access)
            .with_context(|| format!("cannot open the store in {FLOWPACK_STORE}")),
        _ => {
            let cwd = std::env::current_dir()
                .context("cannot read the current folder to look for a .flowpack store")?;
            let folder = match find_default(&cwd)? {
                Some(found) => found,
                None if access == Access::Write => cwd.join(DEFAULT_STORE_DIR),
                None => bail!(
                    "no flowpack store found in {} or any parent folder: run a flow here \
                     first, or pass --store / set {FLOWPACK_STORE}",
                    cwd.display()
                ),
            };
            Ok(Store::open(&folder.display().to_string())?)
        }
    }
}

/// Opens a store the user named; a reading command refuses a folder that does not exist
/// (opening would create it). Text that `redact_url` would change (credentials in it) goes
/// to `Store::open` unprinted, which refuses it without creating anything.
fn open_named(url: &str, access: Access) -> Result<Store> {
    if access == Access::Read
        && !url.contains("://")
        && flowpack_core::store::redact_url(url) == url
        && !Path::new(url).exists()
    {
        bail!("no flowpack store at {url}: the folder does not exist");
    }
    Ok(Store::open(url)?)
}

/// The nearest `.flowpack` folder from `start` upward to the filesystem root. A
/// `.flowpack` that is not a folder is an error naming it, not something to search past.
fn find_default(start: &Path) -> Result<Option<PathBuf>> {
    for dir in start.ancestors() {
        let candidate = dir.join(DEFAULT_STORE_DIR);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_dir() => return Ok(Some(candidate)),
            Ok(_) => bail!(
                "{} is not a folder: flowpack's default store is a folder of that name; \
                 move the file away, or pass --store / set {FLOWPACK_STORE}",
                candidate.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot look for a store at {}", candidate.display())
                });
            }
        }
    }
    Ok(None)
}

/// The cache folder (`flowpack_core::env_vars::cache_dir`: `FLOWPACK_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/flowpack`, else `~/.cache/flowpack`), absolute.
pub fn cache_dir() -> Result<PathBuf> {
    flowpack_core::env_vars::cache_dir()
        .context("cannot place the cache: set FLOWPACK_CACHE_DIR or HOME")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_store_folder_wins_and_a_file_stops_the_search() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::create_dir(tmp.path().join(DEFAULT_STORE_DIR)).unwrap();
        std::fs::create_dir(tmp.path().join("a/b").join(DEFAULT_STORE_DIR)).unwrap();
        assert_eq!(
            find_default(&deep).unwrap(),
            Some(tmp.path().join("a/b").join(DEFAULT_STORE_DIR))
        );
        std::fs::write(tmp.path().join("a/b/c").join(DEFAULT_STORE_DIR), "").unwrap();
        let e = find_default(&deep).unwrap_err().to_string();
        assert!(e.contains("c/.flowpack is not a folder"), "{e}");
    }
}
