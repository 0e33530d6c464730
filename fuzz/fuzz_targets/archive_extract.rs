//! Layer extraction on arbitrary bytes read as a raw tar stream (what `archive::extract`
//! gets once the store has decompressed and is verifying a blob).
//!
//! Each input is extracted twice when that differs: as given, and with every header's
//! checksum recomputed, so that mutations reach the entry handling instead of stopping at
//! "archive header checksum mismatch". After every call, Ok or Err, nothing may exist
//! outside the destination, no symlink may lead out of it, no hard link, device or fifo
//! may exist inside it, and every name in it is UTF-8. An input that extracts must also
//! keep the rules of the layer format's end and count: it ends with two zero blocks, it is
//! refused with one of them dropped or a third added, and `extract_exactly` accepts it
//! with its own entry count only.
#![no_main]

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use flowpack_core::archive::{self, ArchiveError, Extracted};
use libfuzzer_sys::fuzz_target;

const BLOCK: usize = 512;

fuzz_target!(|data: &[u8]| {
    extract_and_check(data);
    let fixed = fix_checksums(data);
    if fixed != data {
        extract_and_check(&fixed);
    }
});

fn extract_and_check(tar_bytes: &[u8]) {
    let Ok(stats) = extract_into_temp(tar_bytes, None) else {
        return;
    };
    assert!(
        tar_bytes.ends_with(&[0; 2 * BLOCK]),
        "extracted without ending in two zero blocks ({stats:?})"
    );
    let one_block = &tar_bytes[..tar_bytes.len() - BLOCK];
    assert!(
        extract_into_temp(one_block, None).is_err(),
        "extracted with one zero block at its end"
    );
    let three_blocks = [tar_bytes, &[0; BLOCK]].concat();
    assert!(
        extract_into_temp(&three_blocks, None).is_err(),
        "extracted with a third zero block at its end"
    );
    let exactly = |n| extract_into_temp(tar_bytes, Some(n));
    assert_eq!(exactly(stats.entries).ok(), Some(stats), "declared its own count");
    assert!(exactly(stats.entries + 1).is_err(), "declared one entry more");
    if stats.entries > 0 {
        assert!(exactly(stats.entries - 1).is_err(), "declared one entry fewer");
    }
}

/// Extracts `tar_bytes` into a fresh temporary folder (with `extract_exactly` when a count
/// is `declared`) and checks what is there, whatever the result.
fn extract_into_temp(
    tar_bytes: &[u8],
    declared: Option<u64>,
) -> Result<Extracted, ArchiveError> {
    let root = tempfile::tempdir().expect("temp dir");
    let dest = root.path().join("dest");
    fs::create_dir(&dest).expect("dest");
    let result = match declared {
        None => archive::extract(tar_bytes, &dest),
        Some(n) => archive::extract_exactly(tar_bytes, &dest, n),
    };
    if let Err(e) = &result {
        let _ = e.to_string();
    }
    let outside: Vec<OsString> = fs::read_dir(root.path())
        .expect("read root")
        .map(|e| e.expect("root entry").file_name())
        .collect();
    assert_eq!(
        outside,
        [OsString::from("dest")],
        "extraction wrote outside the destination ({result:?})"
    );
    check_tree(&dest, &dest, &result);
    result
}

/// Walks `dir` (inside `dest`) without following symlinks.
fn check_tree<T: std::fmt::Debug>(dest: &Path, dir: &Path, result: &T) {
    for entry in fs::read_dir(dir).expect("read extracted folder") {
        let entry = entry.expect("extracted entry");
        assert!(
            entry.file_name().to_str().is_some(),
            "{:?} is not UTF-8 ({result:?})",
            entry.file_name()
        );
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).expect("stat extracted entry");
        let ft = meta.file_type();
        if ft.is_dir() {
            check_tree(dest, &path, result);
        } else if ft.is_file() {
            assert_eq!(
                meta.nlink(),
                1,
                "{} is a hard link ({result:?})",
                path.display()
            );
        } else if ft.is_symlink() {
            if let Some(why) = symlink_escape(dest, &path) {
                panic!(
                    "symlink {} -> {:?} leads out of the destination: {why} ({result:?})",
                    path.display(),
                    fs::read_link(&path).unwrap_or_default()
                );
            }
        } else {
            panic!(
                "{} is neither a folder, a file nor a symlink: {ft:?} ({result:?})",
                path.display()
            );
        }
    }
}

/// Why following the symlink `link` (inside `dest`) leaves `dest`, or None if it stays
/// inside. Symlinks met on the way are followed (as the kernel would); components that do
/// not exist yet are taken lexically, as something may create them later.
fn symlink_escape(dest: &Path, link: &Path) -> Option<String> {
    let rel = link.strip_prefix(dest).expect("link inside dest");
    // The folder holding the link, as components relative to `dest`.
    let mut at: Vec<OsString> = rel
        .parent()
        .map(|p| p.iter().map(OsString::from).collect())
        .unwrap_or_default();
    let mut todo: Vec<OsString> = Vec::new(); // Components still to walk, last first.
    let first = fs::read_link(link).expect("read extracted symlink");
    if let Some(why) = push_target(&mut todo, &first) {
        return Some(why);
    }
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            if at.pop().is_none() {
                return Some("it climbs above the destination".into());
            }
            continue;
        }
        at.push(c);
        let here = at.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        if fs::symlink_metadata(&here).is_ok_and(|m| m.file_type().is_symlink()) {
            hops += 1;
            if hops > 40 {
                return None; // A loop: the kernel gives ELOOP, nothing is reached.
            }
            at.pop();
            let target = fs::read_link(&here).expect("read extracted symlink");
            if let Some(why) = push_target(&mut todo, &target) {
                return Some(format!("via {}: {why}", here.display()));
            }
        }
    }
    None
}

/// Queues the components of a symlink `target` on `todo` (last first), or says why the
/// target is absolute.
fn push_target(todo: &mut Vec<OsString>, target: &Path) -> Option<String> {
    let mut comps = Vec::new();
    for c in target.components() {
        match c {
            Component::Normal(n) => comps.push(n.to_os_string()),
            Component::ParentDir => comps.push(OsString::from("..")),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Some(format!("absolute target {}", target.display()));
            }
        }
    }
    todo.extend(comps.into_iter().rev());
    None
}

/// `data` with the checksum of every header block recomputed, walking the blocks the way
/// the tar reader does (a header, then its data rounded up to whole blocks).
fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while out.len().saturating_sub(pos) >= BLOCK {
        let block = &mut out[pos..pos + BLOCK];
        if block.iter().all(|b| *b == 0) {
            break;
        }
        let mut header = tar::Header::new_old();
        header.as_mut_bytes().copy_from_slice(block);
        header.set_cksum();
        block.copy_from_slice(header.as_bytes());
        let Ok(size) = header.entry_size() else {
            break;
        };
        let Some(data_blocks) = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(BLOCK - 1))
            .map(|s| s / BLOCK * BLOCK)
        else {
            break;
        };
        pos = pos.saturating_add(BLOCK).saturating_add(data_blocks);
    }
    out
}
