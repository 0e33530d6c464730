//! The layer format: a deterministic tar stream (compressed with zstd when stored), and its
//! safe extraction.
//!
//! Writing ([`write_tar`]) normalizes everything a machine could vary: entries are sorted
//! by path bytes; every header is GNU format with uid/gid 0, empty owner names and mtime
//! [`MTIME`]; modes are 0755 for folders and executables, 0644 for other files and 0777
//! for symlinks. Only folders, regular files and symlinks exist in a layer.
//!
//! Extraction ([`extract`]) refuses what a hostile archive could use to write outside the
//! target: absolute paths, `..`, entries below a symlink, symlinks whose target leaves the
//! tree, hard links, device nodes and fifos, duplicate entries, and more entries than
//! [`MAX_ENTRIES`]. The total size is bounded by the caller (the blob's declared size).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::store::StoreError;

/// The modification time written into every header (1970-01-01T00:00:01Z).
pub const MTIME: u64 = 1;
/// The most entries one layer may hold.
pub const MAX_ENTRIES: u64 = 2_000_000;

/// What one layer entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A folder.
    Dir,
    /// A regular file of `size` bytes, read from `source`.
    File {
        /// Where its bytes are read from.
        source: PathBuf,
        /// Its size when it was listed; a file that changes size while packing is an error.
        size: u64,
        /// Whether any execute bit is set.
        executable: bool,
    },
    /// A symlink to a relative target inside the tree.
    Symlink {
        /// The link target, as stored.
        target: String,
    },
}

/// One entry of a layer: a relative `/`-separated path and what is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the layer: relative, `/`-separated, no `.` or `..` parts.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
}

/// Errors of writing or extracting a layer.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive holds an entry flowpack refuses to extract.
    #[error("refused archive entry '{path}': {reason}")]
    Unsafe {
        /// The entry's path as stored.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A file changed while it was being packed.
    #[error("{} changed while it was being packed; pack again", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// Reading the blob failed (corrupt, truncated or unreachable).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    // Empty owner names; set_username("") cannot fail.
    let _ = h.set_username("");
    let _ = h.set_groupname("");
    h
}

/// Writes `entries` (sorted here by path bytes) as a deterministic tar stream to `out`.
pub fn write_tar<W: Write>(entries: &mut [Entry], out: W) -> Result<W, ArchiveError> {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    let sink_err = |source| ArchiveError::Io {
        path: PathBuf::from("<layer output>"),
        source,
    };
    for e in entries.iter() {
        match &e.kind {
            EntryKind::Dir => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                b.append_data(&mut h, format!("{}/", e.path), io::empty())
                    .map_err(sink_err)?;
            }
            EntryKind::File {
                source,
                size,
                executable,
            } => {
                let f = fs::File::open(source).map_err(io_err(source))?;
                let mode = if *executable { 0o755 } else { 0o644 };
                let mut h = header(tar::EntryType::Regular, mode, *size);
                let mut counted = CountingReader {
                    inner: f.take(*size),
                    n: 0,
                };
                b.append_data(&mut h, &e.path, &mut counted)
                    .map_err(|err| match err.kind() {
                        io::ErrorKind::UnexpectedEof => ArchiveError::Changed {
                            path: source.clone(),
                        },
                        _ => ArchiveError::Io {
                            path: source.clone(),
                            source: err,
                        },
                    })?;
                if counted.n != *size {
                    return Err(ArchiveError::Changed {
                        path: source.clone(),
                    });
                }
            }
            EntryKind::Symlink { target } => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                b.append_link(&mut h, &e.path, target).map_err(sink_err)?;
            }
        }
    }
    b.into_inner().map_err(sink_err)
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// What [`extract`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Entries written.
    pub entries: u64,
    /// File bytes written.
    pub bytes: u64,
}

/// Extracts the tar stream `reader` into the existing empty folder `dest`, refusing unsafe
/// entries (see the module docs). On error, `dest` may hold a partial tree: extract into a
/// temporary folder and rename it into place only on success.
pub fn extract<R: Read>(reader: R, dest: &Path) -> Result<Extracted, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut links: HashSet<PathBuf> = HashSet::new();
    let mut stats = Extracted::default();
    let read_err = |e: io::Error| ArchiveError::Store(StoreError::from_io(e, "<layer>"));
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let unsafe_entry = |reason: &str| ArchiveError::Unsafe {
            path: raw.clone(),
            reason: reason.to_string(),
        };
        stats.entries += 1;
        if stats.entries > MAX_ENTRIES {
            return Err(unsafe_entry("the archive has more entries than allowed"));
        }
        let rel = safe_relative(&raw).map_err(|r| unsafe_entry(&r))?;
        if rel.as_os_str().is_empty() {
            continue; // "./" itself
        }
        if !seen.insert(rel.clone()) {
            return Err(unsafe_entry("the archive holds this path twice"));
        }
        if rel.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(unsafe_entry("it lies below a symlink of the same archive"));
        }
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                fs::create_dir_all(&target).map_err(io_err(&target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                let mode = entry.header().mode().unwrap_or(0o644);
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                    .map_err(io_err(&target))?;
                let n = io::copy(&mut entry, &mut f).map_err(|e| {
                    if e.get_ref().is_some_and(|i| i.is::<StoreError>()) {
                        read_err(e)
                    } else {
                        ArchiveError::Io {
                            path: target.clone(),
                            source: e,
                        }
                    }
                })?;
                stats.bytes += n;
                set_mode(&target, if mode & 0o111 != 0 { 0o755 } else { 0o644 })?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                check_link_target(&rel, &link).map_err(|r| unsafe_entry(&r))?;
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_err(parent))?;
                }
                symlink(&link, &target)?;
                links.insert(rel);
            }
            tar::EntryType::Link => {
                return Err(unsafe_entry("hard links are not part of the layer format"));
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_entry("device nodes are refused"));
            }
            tar::EntryType::Fifo => return Err(unsafe_entry("fifos are refused")),
            other => {
                return Err(unsafe_entry(&format!("entry type {other:?} is refused")));
            }
        }
    }
    Ok(stats)
}

/// `raw` as a relative path with only normal components, or why not.
fn safe_relative(raw: &str) -> Result<PathBuf, String> {
    if raw.starts_with('/') {
        return Err("absolute paths are refused".into());
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("paths with '..' are refused".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute paths are refused".into());
            }
        }
    }
    Ok(out)
}

/// Whether a symlink at `rel` pointing to `target` may be part of a layer: a relative
/// target that stays inside the tree, with `..` only before the first name. Checked
/// lexically, which matches what the file system does only if no name the target walks
/// through is itself a symlink followed by `..` (`x/y -> ..` then `z -> x/y/..` resolves
/// to the parent of the tree): hence the leading-`..` rule. Names after the `..` may be
/// other symlinks of the tree; each of those was held to the same rule, so the walk stays
/// inside. The packer and the extractor both apply it.
pub fn check_link_target(rel: &Path, target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("a symlink needs a target".into());
    }
    if target.starts_with('/') {
        return Err(format!(
            "symlink to absolute path '{target}' leaves the tree"
        ));
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    let mut named = false;
    for c in Path::new(target).components() {
        match c {
            Component::ParentDir if named => {
                return Err(format!(
                    "symlink target '{target}' has '..' after a name: only leading '..' are allowed"
                ));
            }
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => {
                depth += 1;
                named = true;
            }
            Component::CurDir => {}
            _ => return Err(format!("symlink target '{target}' is not a relative path")),
        }
        if depth < 0 {
            return Err(format!("symlink to '{target}' leaves the tree"));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

#[cfg(unix)]
fn symlink(target: &str, at: &Path) -> Result<(), ArchiveError> {
    std::os::unix::fs::symlink(target, at).map_err(io_err(at))
}

#[cfg(test)]
mod tests;
