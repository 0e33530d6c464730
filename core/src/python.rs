//! The Python package the binary carries (`python/flowpack/*.py`, embedded by
//! `core/build.rs`), and where it is written out for `PYTHONPATH`: the describer of `.py`
//! flow files and every step's child import it from there, so the package's version is
//! always the binary's and a pod needs nothing but Python.
//!
//! The files go once into `<cache dir>/python/<16 hex of their SHA-256>/flowpack/`: built
//! in a temporary folder beside it and renamed into place, so a reader never sees half a
//! package, and two processes that race both end with the same files (the loser's copy is
//! dropped). Before the rename the package is compiled to bytecode with the interpreter
//! steps use (`$FLOWPACK_PYTHON`, else `python3`), so no task compiles it again, and then
//! sealed: files and folders read-only. A task must not be able to add a `.pyc` that every
//! later task on the node would load; an interpreter of another version finds no bytecode
//! of its own and compiles in memory, as it would with none.

use std::path::{Path, PathBuf};

use crate::Digest;

include!(concat!(env!("OUT_DIR"), "/python_files.rs"));

/// The package's folder name (the import name).
pub const PACKAGE: &str = "flowpack";

/// Writing the embedded package out failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write flowpack's Python package into {}: {source}", path.display())]
pub struct MaterializeError {
    /// The file or folder that could not be written.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The embedded files: (file name, contents), sorted by name.
pub fn files() -> &'static [(&'static str, &'static [u8])] {
    FILES
}

/// 16 hex digits of the SHA-256 over every file's name and contents (each length-prefixed,
/// so no two packages collide by moving bytes between files).
pub fn package_hash() -> String {
    let mut all = Vec::new();
    for (name, bytes) in FILES {
        for part in [name.as_bytes(), bytes] {
            all.extend_from_slice(&(part.len() as u64).to_le_bytes());
            all.extend_from_slice(part);
        }
    }
    Digest::of(&all).hex()[..16].to_string()
}

/// Writes the embedded package into `cache_dir` unless it is there already, and returns
/// the folder to put on `PYTHONPATH` (it holds `flowpack/`).
pub fn materialize(cache_dir: &Path) -> Result<PathBuf, MaterializeError> {
    let root = cache_dir.join("python");
    let dir = root.join(package_hash());
    if dir.join(PACKAGE).is_dir() {
        return Ok(dir);
    }
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MaterializeError { path, source }
    };
    std::fs::create_dir_all(&root).map_err(err(&root))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(&root)
        .map_err(err(&root))?;
    let pkg = tmp.path().join(PACKAGE);
    std::fs::create_dir(&pkg).map_err(err(&pkg))?;
    for (name, bytes) in FILES {
        let file = pkg.join(name);
        std::fs::write(&file, bytes).map_err(err(&file))?;
    }
    precompile(&pkg);
    seal(&pkg, true).map_err(err(&pkg))?;
    match std::fs::rename(tmp.path(), &dir) {
        Ok(()) => {
            // Renamed away: nothing is left for the guard to remove.
            let _ = tmp.keep();
            Ok(dir)
        }
        Err(e) => {
            // Unsealed, so the guard can remove the loser's copy.
            let _ = seal(&pkg, false);
            if dir.join(PACKAGE).is_dir() {
                // Another process put the same files in place first.
                Ok(dir)
            } else {
                Err(err(&dir)(e))
            }
        }
    }
}

/// Compiles the package to bytecode (`__pycache__`). Without a working interpreter this
/// does nothing: the describer or the step will say what is missing when they run it.
fn precompile(pkg: &Path) {
    let status = std::process::Command::new(crate::flow::python::python_program())
        .args(["-m", "compileall", "-q"])
        .arg(pkg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        tracing::debug!(
            "python -m compileall {} did not succeed: {status:?}",
            pkg.display()
        );
    }
}

/// Makes `dir`, its files and its subfolders read-only (`sealed`) or writable again.
fn seal(dir: &Path, sealed: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            seal(&path, sealed)?;
        } else {
            let mode = if sealed { 0o444 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    let mode = if sealed { 0o555 } else { 0o755 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/flowpack")
    }

    #[test]
    fn the_package_version_is_the_workspace_version() {
        let text = std::fs::read_to_string(source_dir().join("_version.py")).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("__version__"))
            .expect("_version.py sets __version__");
        let version = line.split('"').nth(1).expect("a quoted version");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        let embedded = FILES.iter().find(|(n, _)| *n == "_version.py").unwrap().1;
        assert_eq!(embedded, text.as_bytes());
    }

    #[test]
    fn materialized_files_equal_the_source_folder_and_are_read_only() {
        let cache = tempfile::tempdir().unwrap();
        let dir = materialize(cache.path()).unwrap();
        assert_eq!(dir, cache.path().join("python").join(package_hash()));
        // Twice: the second finds it in place.
        assert_eq!(materialize(cache.path()).unwrap(), dir);
        let listing = |d: &Path| {
            let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "py"))
                .map(|p| {
                    let name = p.file_name().unwrap().to_str().unwrap().to_string();
                    (name, std::fs::read(&p).unwrap())
                })
                .collect();
            v.sort();
            v
        };
        let got = listing(&dir.join(PACKAGE));
        assert_eq!(got, listing(&source_dir()));
        assert!(got.iter().any(|(n, _)| n == "_version.py"));
        for (name, _) in &got {
            let meta = std::fs::metadata(dir.join(PACKAGE).join(name)).unwrap();
            assert!(meta.permissions().readonly(), "{name} is writable");
        }
        // Compiled, and sealed: no task can add bytecode every later task would load.
        let cached = dir.join(PACKAGE).join("__pycache__");
        let pycs = std::fs::read_dir(&cached).unwrap().count();
        assert!(
            pycs >= got.len(),
            "{pycs} .pyc files for {} modules",
            got.len()
        );
        for d in [dir.join(PACKAGE), cached] {
            let meta = std::fs::metadata(&d).unwrap();
            assert!(meta.permissions().readonly(), "{} is writable", d.display());
        }
        // Nothing temporary is left beside it.
        let left: Vec<_> = std::fs::read_dir(cache.path().join("python"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(package_hash())]);
    }

    #[test]
    fn racing_writers_all_get_the_same_folder() {
        let cache = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| materialize(cache.path()).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(dirs.iter().all(|d| *d == dirs[0]));
        let entries = std::fs::read_dir(cache.path().join("python"))
            .unwrap()
            .count();
        assert_eq!(entries, 1, "the losers' temporary folders are removed");
    }
}
