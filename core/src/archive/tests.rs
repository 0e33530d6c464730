//! Layer round trips and the hostile archives extraction must refuse.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn hostile(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"x"
        } else {
            b""
        };
        raw_entry(&mut b, name, *kind, link, data);
    }
    b.into_inner().unwrap()
}

fn refusal(tar_bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out");
    fs::create_dir(&dest).unwrap();
    let err = extract(tar_bytes, &dest).expect_err("hostile archive was extracted");
    // Nothing may appear outside the destination.
    let outside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec![std::ffi::OsString::from("out")]);
    err.to_string()
}

use tar::EntryType::{Block, Char, Directory, Fifo, Link, Regular, Symlink};

#[test]
fn refuses_parent_and_absolute_paths() {
    assert!(refusal(&hostile(&[("../evil", Regular, "")])).contains("'..' are refused"));
    assert!(refusal(&hostile(&[("a/../../evil", Regular, "")])).contains("'..' are refused"));
    assert!(refusal(&hostile(&[("/etc/evil", Regular, "")])).contains("absolute paths"));
}

#[test]
fn refuses_links_out_of_the_tree() {
    assert!(refusal(&hostile(&[("l", Symlink, "/etc")])).contains("leaves the tree"));
    assert!(refusal(&hostile(&[("a/l", Symlink, "../../etc")])).contains("leaves the tree"));
    let below = hostile(&[
        ("l", Symlink, "d"),
        ("d", Directory, ""),
        ("l/x", Regular, ""),
    ]);
    assert!(refusal(&below).contains("below a symlink"));
    // Found by fuzzing: lexically inside, physically the parent of the tree (x/y is a
    // symlink, so x/y/.. is not x). Refused whichever link comes first.
    let chain = hostile(&[("x/y", Symlink, ".."), ("z", Symlink, "x/y/..")]);
    assert!(refusal(&chain).contains("only leading '..'"));
    let chain = hostile(&[("z", Symlink, "x/y/.."), ("x/y", Symlink, "..")]);
    assert!(refusal(&chain).contains("only leading '..'"));
    assert!(refusal(&hostile(&[("h", Link, "/etc/passwd")])).contains("hard links"));
}

#[test]
fn refuses_an_entry_that_declares_more_than_the_stream_holds() {
    // A header claiming 1 TiB followed by one block: the stream ends first.
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..4].copy_from_slice(b"huge");
    h.set_entry_type(Regular);
    h.set_mode(0o644);
    h.set_size(1 << 40);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[b'x'; 512]);
    let err = refusal(&bytes);
    assert!(!err.is_empty(), "{err}");
}

#[test]
fn refuses_devices_fifos_and_duplicates() {
    assert!(refusal(&hostile(&[("dev", Char, "")])).contains("device nodes"));
    assert!(refusal(&hostile(&[("dev", Block, "")])).contains("device nodes"));
    assert!(refusal(&hostile(&[("p", Fifo, "")])).contains("fifos"));
    assert!(refusal(&hostile(&[("f", Regular, ""), ("./f", Regular, "")])).contains("twice"));
}

#[test]
fn round_trip_keeps_files_modes_and_inner_symlinks() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("pkg")).unwrap();
    fs::write(src.path().join("pkg/run.sh"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(
        src.path().join("pkg/run.sh"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::write(src.path().join("a.py"), "print(1)\n").unwrap();
    let long = "d".repeat(120);
    fs::write(src.path().join(&long), "long name").unwrap();
    let file = |p: &str, exec: bool| Entry {
        path: p.into(),
        kind: EntryKind::File {
            source: src.path().join(p),
            size: fs::metadata(src.path().join(p)).unwrap().len(),
            executable: exec,
        },
    };
    let mut entries = vec![
        file("pkg/run.sh", true),
        file("a.py", false),
        file(&long, false),
        Entry {
            path: "pkg".into(),
            kind: EntryKind::Dir,
        },
        Entry {
            path: "pkg/link.py".into(),
            kind: EntryKind::Symlink {
                target: "../a.py".into(),
            },
        },
    ];
    let tar_bytes = write_tar(&mut entries, Vec::new()).unwrap();
    assert_eq!(entries[0].path, "a.py", "entries are sorted");
    let out = tempfile::tempdir().unwrap();
    let stats = extract(tar_bytes.as_slice(), out.path()).unwrap();
    assert_eq!(stats.entries, 5);
    let mode = fs::metadata(out.path().join("pkg/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let mode = fs::metadata(out.path().join("a.py"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let mut s = String::new();
    fs::File::open(out.path().join("pkg/link.py"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "print(1)\n");
    assert_eq!(
        fs::read_to_string(out.path().join(&long)).unwrap(),
        "long name"
    );
    // Same entries, same bytes.
    assert_eq!(write_tar(&mut entries, Vec::new()).unwrap(), tar_bytes);
}

#[test]
fn a_file_that_grows_while_packing_is_an_error() {
    let src = tempfile::tempdir().unwrap();
    let p = src.path().join("grows");
    fs::write(&p, "12345").unwrap();
    let mut entries = vec![Entry {
        path: "grows".into(),
        kind: EntryKind::File {
            source: p.clone(),
            size: 10,
            executable: false,
        },
    }];
    let err = write_tar(&mut entries, Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("changed while it was being packed"),
        "{err}"
    );
}
