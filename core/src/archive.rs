//! The layer format: a deterministic tar stream (compressed with zstd when stored), and its
//! safe extraction.
//!
//! Writing ([`write_tar`]) normalizes everything a machine could vary: entries are sorted
//! by path bytes; every header is GNU format with uid/gid 0, empty owner names and mtime
//! [`MTIME`]; modes are 0755 for folders and executables, 0644 for other files and 0777
//! for symlinks. Only folders, regular files and symlinks exist in a layer. The stream ends
//! with two zero blocks.
//!
//! Extraction ([`extract`], [`extract_exactly`]) refuses what a hostile archive could use to
//! write outside the target: absolute paths, `..`, entries below a symlink, symlinks whose
//! target leaves the tree, hard links, device nodes and fifos. It also refuses whatever is
//! not the layer format, so that no two readers can see different trees in one digest:
//! names that are not UTF-8 or hold NUL, names longer than [`MAX_NAME`], PAX headers,
//! entries out of order or twice, folders or symlinks with data, anything but two zero
//! blocks after the last entry, more entries than [`MAX_ENTRIES`] or than the manifest
//! declares. Its memory does not grow with the number of entries (see `Order`); the total
//! size is bounded by the caller (the blob's declared size).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::store::StoreError;

/// The modification time written into every header (1970-01-01T00:00:01Z).
pub const MTIME: u64 = 1;
/// The most entries one layer may hold.
pub const MAX_ENTRIES: u64 = 2_000_000;
/// The longest entry name or symlink target a layer may hold, in bytes (Linux's PATH_MAX:
/// a longer one could not be created anyway).
pub const MAX_NAME: usize = 4096;
/// The size of a tar block.
const BLOCK: u64 = 512;

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
    /// The archive as a whole breaks the layer format (its end, its number of entries).
    #[error("refused archive: {reason}")]
    Malformed {
        /// What is wrong.
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
/// entries and anything else that is not the layer format (see the module docs). On error,
/// `dest` may hold a partial tree: extract into a temporary folder and rename it into place
/// only on success.
pub fn extract<R: Read>(reader: R, dest: &Path) -> Result<Extracted, ArchiveError> {
    extract_entries(reader, dest, None)
}

/// Like [`extract`], for a layer whose manifest says it holds `entries` entries: any other
/// count is refused (one entry too many as soon as it is read).
pub fn extract_exactly<R: Read>(
    reader: R,
    dest: &Path,
    entries: u64,
) -> Result<Extracted, ArchiveError> {
    extract_entries(reader, dest, Some(entries))
}

/// Whether a layer's tar stream of `size` bytes can hold `entries` entries, as a manifest
/// declares them: at most [`MAX_ENTRIES`], whole 512-byte blocks, and room for a header per
/// entry plus the two-block end-of-archive marker.
pub fn check_declared(size: u64, entries: u64) -> Result<(), String> {
    if entries > MAX_ENTRIES {
        return Err(format!(
            "{entries} entries, more than the {MAX_ENTRIES} a layer may hold"
        ));
    }
    if !size.is_multiple_of(BLOCK) {
        return Err(format!(
            "a size of {size} bytes, not a whole number of {BLOCK}-byte blocks"
        ));
    }
    if size < (entries + 2) * BLOCK {
        return Err(format!(
            "{entries} entries in {size} bytes: each takes a {BLOCK}-byte header at least, and the end of the archive two blocks"
        ));
    }
    Ok(())
}

fn extract_entries<R: Read>(
    reader: R,
    dest: &Path,
    declared: Option<u64>,
) -> Result<Extracted, ArchiveError> {
    let limit = declared.map_or(MAX_ENTRIES, |n| n.min(MAX_ENTRIES));
    let mut archive = tar::Archive::new(Ended {
        inner: reader,
        ended: false,
    });
    let mut stats = Extracted::default();
    let mut order = Order::default();
    let mut long = LongNames::default();
    // The last folder known to exist: most entries share their parent with the previous one.
    let mut made = PathBuf::new();
    // Raw: GNU long names are read here, bounded; PAX headers are seen, and refused.
    for entry in archive.entries().map_err(read_err)?.raw(true) {
        let mut entry = entry.map_err(read_err)?;
        if long.read(&mut entry)? {
            continue;
        }
        let name = long
            .name
            .take()
            .unwrap_or_else(|| entry.header().path_bytes().into_owned());
        let link = long
            .link
            .take()
            .or_else(|| entry.header().link_name_bytes().map(|b| b.into_owned()));
        let unsafe_entry = |reason: &str| ArchiveError::Unsafe {
            path: shown(&name),
            reason: reason.to_string(),
        };
        stats.entries += 1;
        if stats.entries > limit {
            return Err(match declared {
                Some(n) => malformed(format!(
                    "it holds more entries than the {n} its manifest declares"
                )),
                None => unsafe_entry("the archive has more entries than allowed"),
            });
        }
        let raw = text(&name).map_err(|r| unsafe_entry(&format!("its name {r}")))?;
        let rel = crate::name::relative_path(raw).map_err(|r| unsafe_entry(&r))?;
        if rel.as_os_str().is_empty() {
            continue; // "./" itself
        }
        let kind = entry.header().entry_type();
        order
            .next(rel.as_os_str().as_encoded_bytes(), kind.is_symlink())
            .map_err(unsafe_entry)?;
        let target = dest.join(&rel);
        let no_data = |what: &str| match entry.size() {
            0 => Ok(()),
            n => Err(unsafe_entry(&format!(
                "{what} entry holds {n} bytes of data"
            ))),
        };
        match kind {
            tar::EntryType::Directory => {
                no_data("a folder")?;
                fs::create_dir_all(&target).map_err(io_err(&target))?;
                made = target;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                make_parent(&target, &mut made)?;
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
                set_mode(&f, &target, if mode & 0o111 != 0 { 0o755 } else { 0o644 })?;
            }
            tar::EntryType::Symlink => {
                no_data("a symlink")?;
                let link = link.unwrap_or_default();
                let link =
                    text(&link).map_err(|r| unsafe_entry(&format!("its symlink target {r}")))?;
                check_link_target(&rel, link).map_err(|r| unsafe_entry(&r))?;
                make_parent(&target, &mut made)?;
                symlink(link, &target)?;
            }
            tar::EntryType::Link => {
                return Err(unsafe_entry("hard links are not part of the layer format"));
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_entry("device nodes are refused"));
            }
            tar::EntryType::Fifo => return Err(unsafe_entry("fifos are refused")),
            k if k.is_pax_local_extensions() || k.is_pax_global_extensions() => {
                return Err(unsafe_entry("PAX headers are not part of the layer format"));
            }
            other => {
                return Err(unsafe_entry(&format!("entry type {other:?} is refused")));
            }
        }
    }
    if long.name.is_some() || long.link.is_some() {
        return Err(malformed(
            "it ends with a GNU long name that names no entry".into(),
        ));
    }
    check_end(archive.into_inner())?;
    if let Some(n) = declared
        && stats.entries != n
    {
        return Err(malformed(format!(
            "it holds {} entries, not the {n} its manifest declares",
            stats.entries
        )));
    }
    Ok(stats)
}

fn read_err(e: io::Error) -> ArchiveError {
    ArchiveError::Store(StoreError::from_io(e, "<layer>"))
}

fn malformed(reason: String) -> ArchiveError {
    ArchiveError::Malformed { reason }
}

/// `bytes` as a name or symlink target: at most [`MAX_NAME`] bytes of UTF-8 without NUL,
/// or why not (as the end of a sentence starting with "its name").
fn text(bytes: &[u8]) -> Result<&str, String> {
    if bytes.len() > MAX_NAME {
        return Err(format!(
            "is {} bytes long, longer than the {MAX_NAME} allowed",
            bytes.len()
        ));
    }
    if bytes.contains(&0) {
        return Err("holds a NUL byte".into());
    }
    std::str::from_utf8(bytes).map_err(|_| "is not valid UTF-8".into())
}

/// A name as error messages show it: as is when it is printable UTF-8, otherwise with
/// every byte outside printable ASCII escaped (`\xff`, `\n`).
fn shown(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => bytes.escape_ascii().to_string(),
    }
}

/// Creates the folder holding `target` unless it is `made`, the last one created.
fn make_parent(target: &Path, made: &mut PathBuf) -> Result<(), ArchiveError> {
    let Some(parent) = target.parent() else {
        return Ok(());
    };
    if parent.as_os_str() != made.as_os_str() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        *made = parent.to_path_buf();
    }
    Ok(())
}

/// A reader that remembers whether it reached its end.
struct Ended<R> {
    inner: R,
    ended: bool,
}

impl<R: Read> Read for Ended<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended = true;
        }
        Ok(n)
    }
}

/// Checks what follows the last entry. The tar reader stops at the end of the stream or
/// after the first zero block; a layer ends with exactly two zero blocks (what
/// [`write_tar`] writes) and then the end of the stream. Anything else is refused: the
/// digest covers those bytes, and another reader (`tar --ignore-zeros`) would find entries
/// there.
fn check_end<R: Read>(mut r: Ended<R>) -> Result<(), ArchiveError> {
    if r.ended {
        return Err(malformed(
            "it ends without the end-of-archive marker (two zero blocks)".into(),
        ));
    }
    let mut rest = Vec::with_capacity(BLOCK as usize + 1);
    (&mut r)
        .take(BLOCK + 1)
        .read_to_end(&mut rest)
        .map_err(read_err)?;
    if rest.len() < BLOCK as usize || rest[..BLOCK as usize].iter().any(|b| *b != 0) {
        return Err(malformed(
            "its end-of-archive marker is not two zero blocks".into(),
        ));
    }
    if rest.len() > BLOCK as usize {
        return Err(malformed(
            "data follows its end-of-archive marker (two zero blocks)".into(),
        ));
    }
    Ok(())
}

/// GNU long-name (`L`) and long-link (`K`) entries: the name or symlink target of the entry
/// after them, when it does not fit in a header ([`write_tar`] writes them).
#[derive(Default)]
struct LongNames {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

impl LongNames {
    /// Reads `entry` if it is a long name or link (true), keeping it for the next entry.
    /// Its size is checked before anything is read.
    fn read<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<bool, ArchiveError> {
        let kind = entry.header().entry_type();
        if entry.header().as_gnu().is_none() {
            return Ok(false);
        }
        let slot = if kind.is_gnu_longname() {
            &mut self.name
        } else if kind.is_gnu_longlink() {
            &mut self.link
        } else {
            return Ok(false);
        };
        let refused = |reason: String| ArchiveError::Unsafe {
            path: shown(&entry.header().path_bytes()),
            reason,
        };
        if slot.is_some() {
            return Err(refused("two GNU long names for one entry".into()));
        }
        // The name and one NUL.
        let size = entry.size();
        if size > MAX_NAME as u64 + 1 {
            return Err(refused(format!(
                "a GNU long name of {size} bytes: names longer than {MAX_NAME} bytes are refused"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut bytes).map_err(read_err)?;
        if bytes.len() as u64 != size {
            return Err(read_err(io::ErrorKind::UnexpectedEof.into()));
        }
        if bytes.last() == Some(&0) {
            bytes.pop();
        }
        *slot = Some(bytes);
        Ok(true)
    }
}

/// The order of a layer's entries: strictly increasing path bytes (so no path twice), and
/// none below a symlink of the same archive. Only the previous path and the symlinks among
/// its prefixes are kept, so memory is bounded by one path whatever the number of entries.
///
/// Why that suffices: an entry below the symlink `L` starts with `L/`, so it sorts after `L`
/// and before `L0` (`0` follows `/`), and so does every entry between them; those are the
/// paths that start with `L` followed by a byte up to `/`. While entries stay in that range
/// `L` is a prefix of each, the previous included; once one leaves it, no later one returns.
#[derive(Default)]
struct Order {
    /// The previous entry's path, normalized.
    prev: Vec<u8>,
    /// The lengths of the prefixes of `prev` that are symlinks later entries could lie
    /// below, shortest first (each is a prefix of the next).
    links: Vec<usize>,
}

impl Order {
    /// Takes the next entry's normalized `path`, or says why it breaks the order.
    fn next(&mut self, path: &[u8], is_link: bool) -> Result<(), &'static str> {
        match path.cmp(&self.prev) {
            std::cmp::Ordering::Less => {
                return Err("entries are not in layer order (sorted by path bytes)");
            }
            std::cmp::Ordering::Equal => return Err("the archive holds this path twice"),
            std::cmp::Ordering::Greater => {}
        }
        let common = common_prefix(path, &self.prev);
        // `path` is longer than `common`: it is greater than `prev`, so not its prefix.
        // A symlink prefix shorter than `common` is followed by the same byte in `path` as
        // in `prev`, which was not `/`; only one of exactly `common` bytes can be a parent.
        while let Some(&k) = self.links.last() {
            if k < common {
                break;
            }
            if k == common {
                match path[k] {
                    b'/' => return Err("it lies below a symlink of the same archive"),
                    b if b < b'/' => break,
                    _ => {}
                }
            }
            self.links.pop();
        }
        self.prev.clear();
        self.prev.extend_from_slice(path);
        if is_link {
            self.links.push(path.len());
        }
        Ok(())
    }
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

/// The length of the longest common prefix of `a` and `b`. By slices of 64 bytes first:
/// this runs once per entry on paths of up to 4 KB, in debug builds too.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const STEP: usize = 64;
    let same = a
        .chunks(STEP)
        .zip(b.chunks(STEP))
        .take_while(|(x, y)| x == y)
        .count();
    let start = (same * STEP).min(a.len()).min(b.len());
    start
        + a[start..]
            .iter()
            .zip(&b[start..])
            .take_while(|(x, y)| x == y)
            .count()
}

#[cfg(unix)]
fn set_mode(file: &fs::File, path: &Path, mode: u32) -> Result<(), ArchiveError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(path))
}

#[cfg(unix)]
fn symlink(target: &str, at: &Path) -> Result<(), ArchiveError> {
    std::os::unix::fs::symlink(target, at).map_err(io_err(at))
}

#[cfg(test)]
mod tests;
