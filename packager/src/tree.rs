//! Listing a folder as layer entries: which files go in, and which are refused.
//!
//! The code tree honours `.gitignore` and `.flowpackignore` files inside it (not those of
//! parent folders or the user's global git config, so the same tree lists the same on
//! every machine) and always leaves out `.git/`, `.flowpack/`, `__pycache__/`, `*.pyc` and
//! `.DS_Store`. Env trees are listed whole but for the Python caches. Symlinks are kept
//! when they point inside the tree and left out, with a warning, when they leave it;
//! sockets, fifos and device files are refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flowpack_core::Digest;
use flowpack_core::archive::{Entry, EntryKind, check_link_target};
use ignore::WalkBuilder;

use crate::PushError;

/// Names never packed, at any depth.
const ALWAYS_EXCLUDED: [&str; 4] = [".git", ".flowpack", "__pycache__", ".DS_Store"];

/// Which ignore rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// `.gitignore` and `.flowpackignore` inside the tree, plus the fixed exclusions.
    Code,
    /// Only the fixed exclusions.
    Env,
    /// Everything (artifact folders).
    All,
}

/// A listed tree: its entries (unsorted) and what was left out with a warning.
#[derive(Debug, Default)]
pub struct Listing {
    /// What goes into the layer.
    pub entries: Vec<Entry>,
    /// Messages about what was left out.
    pub warnings: Vec<String>,
    /// A digest of every entry's path, kind and file metadata (size, mtime, ctime, inode,
    /// device, mode, link target): equal fingerprints mean the layer is unchanged, as
    /// git's index assumes. None when a file changed within [`RACY_WINDOW`] of the listing,
    /// so that a change in the same clock tick is never missed.
    pub fingerprint: Option<Digest>,
}

/// Files modified this recently are not trusted to show a later change in their metadata.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Lists `root` for a layer. Folders in `exclude` (absolute) are left out.
pub fn list(root: &Path, rules: Rules, exclude: &[PathBuf]) -> Result<Listing, PushError> {
    let meta = std::fs::metadata(root).map_err(|e| PushError::Tree {
        path: root.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(PushError::Tree {
            path: root.to_path_buf(),
            reason: "not a folder".into(),
        });
    }
    let mut wb = WalkBuilder::new(root);
    wb.standard_filters(false)
        .follow_links(false)
        .hidden(false)
        .parents(false);
    if rules == Rules::Code {
        wb.git_ignore(true)
            .require_git(false)
            .add_custom_ignore_filename(".flowpackignore");
    }
    let exclude: Vec<PathBuf> = exclude.to_vec();
    wb.filter_entry(move |e| {
        if rules == Rules::All {
            return true;
        }
        let name = e.file_name().to_string_lossy();
        !(ALWAYS_EXCLUDED.contains(&name.as_ref())
            || name.ends_with(".pyc")
            || exclude.iter().any(|x| x == e.path()))
    });
    let mut out = Listing::default();
    let started = SystemTime::now();
    let racy_after = started
        .checked_sub(RACY_WINDOW)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or(Duration::MAX);
    let since_epoch = |secs: i64, nsecs: i64| {
        Duration::new(secs.max(0) as u64, nsecs.clamp(0, 999_999_999) as u32)
    };
    let mut racy = false;
    let mut records: Vec<(String, String)> = Vec::new();
    for item in wb.build() {
        let item = item.map_err(|e| PushError::Tree {
            path: root.to_path_buf(),
            reason: e.to_string(),
        })?;
        if item.depth() == 0 {
            continue;
        }
        let path = item.path();
        let rel = path.strip_prefix(root).expect("walk stays below its root");
        let rel = rel
            .to_str()
            .ok_or_else(|| PushError::Tree {
                path: path.to_path_buf(),
                reason: "the name is not valid UTF-8; rename it".into(),
            })?
            .replace(std::path::MAIN_SEPARATOR, "/");
        let ft = item.file_type().expect("only stdin has no file type");
        let meta = std::fs::symlink_metadata(path).map_err(|e| PushError::Tree {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File {
                source: path.to_path_buf(),
                size: meta.len(),
                executable: is_executable(&meta),
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| PushError::Tree {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            let checked = match target.to_str() {
                Some(t) => check_link_target(Path::new(&rel), t).map(|()| t),
                None => Err("its target is not UTF-8".into()),
            };
            match checked {
                Ok(t) => EntryKind::Symlink {
                    target: t.to_string(),
                },
                Err(why) => {
                    out.warnings.push(format!(
                        "left out symlink {rel} -> {} in {}: {why}",
                        target.display(),
                        root.display()
                    ));
                    continue;
                }
            }
        } else {
            return Err(PushError::Tree {
                path: path.to_path_buf(),
                reason: "special files (sockets, fifos, devices) cannot be packed; delete it or list it in .flowpackignore".into(),
            });
        };
        let target = match &kind {
            EntryKind::Symlink { target } => target.as_str(),
            // A folder's own times change with ignored files; its entries are listed anyway.
            EntryKind::Dir => {
                records.push((rel.clone(), "dir\n".to_string()));
                out.entries.push(Entry { path: rel, kind });
                continue;
            }
            EntryKind::File { .. } => "",
        };
        racy |= since_epoch(meta.mtime(), meta.mtime_nsec()) >= racy_after
            || since_epoch(meta.ctime(), meta.ctime_nsec()) >= racy_after;
        records.push((
            rel.clone(),
            format!(
                "{}\0{}.{}\0{}.{}\0{}\0{}\0{:o}\0{target}\n",
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                meta.ino(),
                meta.dev(),
                meta.mode(),
            ),
        ));
        out.entries.push(Entry { path: rel, kind });
    }
    if !racy {
        records.sort();
        let mut h = flowpack_core::digest::Hasher::new();
        h.update(format!("flowpack.tree-index.v1\0{}\0{rules:?}\n", root.display()).as_bytes());
        for (path, rec) in &records {
            h.update(path.as_bytes());
            h.update(b"\0");
            h.update(rec.as_bytes());
        }
        out.fingerprint = Some(h.finish());
    }
    Ok(out)
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}
