//! Listing a folder as layer entries: which files go in, and which are refused.
//!
//! The code tree honours `.gitignore` and `.flowpackignore` files inside it (not those of
//! parent folders or the user's global git config, so the same tree lists the same on
//! every machine) and always leaves out `.git/`, `.flowpack/`, `__pycache__/`, `*.pyc` and
//! `.DS_Store`. Python environments in the code tree — a folder holding `pyvenv.cfg` (a
//! virtual environment, whatever its name) and a `site-packages` folder — are left out by
//! default and reported in [`Listing::left_out`]; a negation (`!/.venv/`) in a
//! `.flowpackignore` packs one anyway. Both rules read only the tree, so a tree lists the
//! same everywhere. Env trees are listed whole but for the Python caches. Symlinks are kept
//! when they point inside the tree and left out, with a warning, when they leave it;
//! sockets, fifos and device files are refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use flowpack_core::Digest;
use flowpack_core::archive::{Entry, EntryKind, check_link_target};
use ignore::WalkBuilder;
use ignore::gitignore::GitignoreBuilder;
use serde::Serialize;

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

/// Why a folder of a code tree was left out by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeftOutReason {
    /// It holds `pyvenv.cfg`: a Python virtual environment.
    Venv,
    /// It is named `site-packages`: installed Python packages.
    SitePackages,
}

impl std::fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Venv => "a Python virtual environment: it holds pyvenv.cfg",
            Self::SitePackages => "installed Python packages",
        })
    }
}

/// A folder of a code tree left out by default (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// Its path in the tree, `/`-separated.
    pub path: String,
    /// Why.
    pub reason: LeftOutReason,
}

/// A listed tree: its entries (unsorted) and what was left out with a warning.
#[derive(Debug, Default)]
pub struct Listing {
    /// What goes into the layer.
    pub entries: Vec<Entry>,
    /// Messages about what was left out.
    pub warnings: Vec<String>,
    /// Folders of a code tree left out by default, by path.
    pub left_out: Vec<LeftOut>,
    /// A digest of every entry's path, kind and file metadata (size, mtime, ctime, inode,
    /// device, mode, link target): equal fingerprints mean the layer is unchanged, as
    /// git's index assumes. None when a file changed within [`RACY_WINDOW`] of the listing,
    /// so that a change in the same clock tick is never missed.
    pub fingerprint: Option<Digest>,
}

/// A path of a tree with what it holds: a file's size, or a folder's total and its count
/// of entries (files, folders and links below it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Largest {
    /// The path in the tree, `/`-separated.
    pub path: String,
    /// Bytes of file content at or below it.
    pub bytes: u64,
    /// Entries below it (0 for a file).
    pub entries: u64,
}

/// A folder is shown as its one child when that child holds this share of its bytes.
const DOMINANT_SHARE: f64 = 0.8;

/// The `n` paths of `entries` that hold the most bytes, folders aggregated: the top-level
/// paths, where a folder holding mostly ([`DOMINANT_SHARE`]) one child is shown as that
/// child, and a folder is split into its children while fewer than `n` paths are shown.
/// Largest first (ties by path).
pub fn largest(entries: &[Entry], n: usize) -> Vec<Largest> {
    use std::collections::BTreeMap;
    #[derive(Default)]
    struct Node {
        bytes: u64,
        entries: u64,
        dir: bool,
        children: Vec<String>,
    }
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    nodes.insert(String::new(), Node::default());
    for e in entries {
        let (size, dir) = match &e.kind {
            EntryKind::File { size, .. } => (*size, false),
            EntryKind::Dir => (0, true),
            EntryKind::Symlink { .. } => (0, false),
        };
        let node = nodes.entry(e.path.clone()).or_default();
        node.bytes += size;
        node.dir |= dir;
        let mut at = e.path.as_str();
        loop {
            let parent = at.rfind('/').map_or("", |i| &at[..i]);
            let p = nodes.entry(parent.to_string()).or_default();
            p.dir = true;
            p.bytes += size;
            p.entries += 1;
            if at == e.path {
                p.children.push(e.path.clone());
            }
            if parent.is_empty() {
                break;
            }
            at = parent;
        }
    }
    let by_size = |nodes: &BTreeMap<String, Node>, v: &mut Vec<String>| {
        v.sort_by(|a, b| nodes[b].bytes.cmp(&nodes[a].bytes).then(a.cmp(b)));
    };
    let mut shown = nodes[""].children.clone();
    loop {
        by_size(&nodes, &mut shown);
        let top = &shown[..shown.len().min(n)];
        // A folder that is mostly one child: show the child.
        let dominated = top.iter().enumerate().find_map(|(i, p)| {
            let node = &nodes[p];
            node.children
                .iter()
                .find(|c| {
                    node.bytes > 0 && nodes[*c].bytes as f64 >= DOMINANT_SHARE * node.bytes as f64
                })
                .map(|c| (i, c.clone()))
        });
        if let Some((i, child)) = dominated {
            shown[i] = child;
            continue;
        }
        // Room for more: split the largest folder that has children.
        if shown.len() < n
            && let Some(i) = shown.iter().position(|p| !nodes[p].children.is_empty())
        {
            let folder = shown.remove(i);
            shown.extend(nodes[&folder].children.iter().cloned());
            continue;
        }
        break;
    }
    shown.truncate(n);
    shown
        .into_iter()
        .map(|p| {
            let node = &nodes[&p];
            Largest {
                bytes: node.bytes,
                entries: node.entries,
                path: p,
            }
        })
        .collect()
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
    let left_out = Arc::new(Mutex::new(Vec::new()));
    let (seen, walk_root) = (Arc::clone(&left_out), root.to_path_buf());
    // Runs after the ignore rules: a folder they already leave out is not reported.
    wb.filter_entry(move |e| {
        if rules == Rules::All {
            return true;
        }
        let name = e.file_name().to_string_lossy();
        if ALWAYS_EXCLUDED.contains(&name.as_ref())
            || name.ends_with(".pyc")
            || exclude.iter().any(|x| x == e.path())
        {
            return false;
        }
        if rules == Rules::Code
            && e.depth() > 0
            && e.file_type().is_some_and(|t| t.is_dir())
            && let Some(reason) = python_env_reason(e.path(), &name)
            && !negated(&walk_root, e.path())
        {
            let rel = e.path().strip_prefix(&walk_root).unwrap_or(e.path());
            seen.lock().expect("left-out lock").push(LeftOut {
                path: rel
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/"),
                reason,
            });
            return false;
        }
        true
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
    out.left_out = std::mem::take(&mut *left_out.lock().expect("left-out lock"));
    out.left_out.sort_by(|a, b| a.path.cmp(&b.path));
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

/// Why the folder `dir` (named `name`) is a Python environment, if it is one.
fn python_env_reason(dir: &Path, name: &str) -> Option<LeftOutReason> {
    if name == "site-packages" {
        Some(LeftOutReason::SitePackages)
    } else if dir.join("pyvenv.cfg").is_file() {
        Some(LeftOutReason::Venv)
    } else {
        None
    }
}

/// Whether a `.flowpackignore` between `root` and the folder `dir` whitelists `dir` (a
/// `!` pattern); the nearest file with a matching pattern decides, as git's rules do.
/// Called only for the rare folders that are Python environments.
fn negated(root: &Path, dir: &Path) -> bool {
    let mut at = dir.parent();
    while let Some(d) = at.filter(|d| d.starts_with(root)) {
        let file = d.join(".flowpackignore");
        if file.is_file() {
            let mut b = GitignoreBuilder::new(d);
            // An unreadable pattern file was already reported by the walk's own reading.
            let _ = b.add(&file);
            if let Ok(gi) = b.build() {
                let m = gi.matched(dir, true);
                if !m.is_none() {
                    return m.is_whitelist();
                }
            }
        }
        at = d.parent();
    }
    false
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                source: PathBuf::new(),
                size,
                executable: false,
            },
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
        }
    }

    fn shown(entries: &[Entry], n: usize) -> Vec<(String, u64, u64)> {
        largest(entries, n)
            .into_iter()
            .map(|l| (l.path, l.bytes, l.entries))
            .collect()
    }

    #[test]
    fn folders_are_aggregated_and_a_dominant_child_is_shown_instead() {
        let entries = [
            dir("data"),
            dir("data/raw"),
            file("data/raw/big.bin", 900),
            file("data/raw/small.bin", 10),
            dir("src"),
            file("src/a.py", 60),
            file("src/b.py", 40),
            file("flow.yaml", 5),
        ];
        // data is mostly data/raw, which is mostly big.bin; src has no dominant child.
        assert_eq!(
            shown(&entries, 2),
            [("data/raw/big.bin".into(), 900, 0), ("src".into(), 100, 2)]
        );
    }

    #[test]
    fn a_single_top_level_folder_is_split_while_there_is_room() {
        let entries = [
            dir("pkg"),
            file("pkg/a.py", 50),
            file("pkg/b.py", 30),
            file("pkg/c.py", 20),
        ];
        assert_eq!(
            shown(&entries, 5),
            [
                ("pkg/a.py".into(), 50, 0),
                ("pkg/b.py".into(), 30, 0),
                ("pkg/c.py".into(), 20, 0)
            ]
        );
        assert!(largest(&[], 5).is_empty());
    }
}
