//! Layer round trips and the hostile archives extraction must refuse.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: impl AsRef<[u8]>,
    kind: tar::EntryType,
    link: impl AsRef<[u8]>,
    data: &[u8],
) {
    let (name, link) = (name.as_ref(), link.as_ref());
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
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
        ("d", Directory, ""),
        ("l", Symlink, "d"),
        ("l/x", Regular, ""),
    ]);
    assert!(refusal(&below).contains("below a symlink"));
    // Names between a symlink and what lies below it, in byte order ('-' and '.' sort
    // before '/'), themselves symlinks or not.
    let between = hostile(&[
        ("d", Directory, ""),
        ("l", Symlink, "d"),
        ("l-x", Symlink, "d"),
        ("l-x-y", Regular, ""),
        ("l.y", Regular, ""),
        ("l/x", Regular, ""),
    ]);
    assert!(refusal(&between).contains("'l/x': it lies below a symlink"));
    let inner = hostile(&[
        ("d", Directory, ""),
        ("l", Symlink, "d"),
        ("l-x", Symlink, "d"),
        ("l-x/y", Regular, ""),
    ]);
    assert!(refusal(&inner).contains("'l-x/y': it lies below a symlink"));
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
fn refuses_names_that_are_not_utf8_or_hold_nul() {
    // Once renamed to U+FFFD each, so the second collided with the first.
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, b"a\xfe", Regular, "", b"x");
    raw_entry(&mut b, b"a\xff", Regular, "", b"x");
    let err = refusal(&b.into_inner().unwrap());
    assert!(
        err.contains(r"'a\xfe': its name is not valid UTF-8"),
        "{err}"
    );
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "l", Symlink, b"t\xff", b"");
    let err = refusal(&b.into_inner().unwrap());
    assert!(
        err.contains("'l': its symlink target is not valid UTF-8"),
        "{err}"
    );
    // A GNU long name is a C string for GNU tar: it ends at its first NUL.
    let err = refusal(&long_named(b"a\0b\0", Regular));
    assert!(
        err.contains(r"'a\x00b': its name holds a NUL byte"),
        "{err}"
    );
}

#[test]
fn refuses_overlong_names_before_reading_them() {
    let name = vec![b'n'; MAX_NAME + 1];
    let err = refusal(&long_named(&[name.as_slice(), b"\0"].concat(), Regular));
    assert!(
        err.contains("a GNU long name of 4098 bytes: names longer than 4096 bytes are refused"),
        "{err}"
    );
    let name = vec![b'n'; MAX_NAME];
    assert!(
        extract(
            long_named(&name, Regular).as_slice(),
            tempfile::tempdir().unwrap().path()
        )
        .is_err_and(|e| !matches!(e, ArchiveError::Unsafe { .. })),
        "4096 bytes pass the format check (then the file system refuses a path that long)"
    );
}

/// An archive of one entry of type `kind` whose GNU long name holds `name` (as given: a
/// NUL-terminated name ends in NUL).
fn long_named(name: &[u8], kind: tar::EntryType) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_mode(0o644);
    h.set_size(name.len() as u64);
    h.set_cksum();
    b.append(&h, name).unwrap();
    raw_entry(&mut b, "short", kind, "", b"x");
    b.into_inner().unwrap()
}

#[test]
fn refuses_pax_headers() {
    // A PAX path overrides the header's name for readers that know PAX, not for others.
    let record = b"16 path=evil.py\n";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeader").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(record.len() as u64);
    h.set_cksum();
    b.append(&h, &record[..]).unwrap();
    raw_entry(&mut b, "f", Regular, "", b"x");
    let err = refusal(&b.into_inner().unwrap());
    assert!(
        err.contains("PAX headers are not part of the layer format"),
        "{err}"
    );
}

#[test]
fn refuses_entries_out_of_order() {
    let err = refusal(&hostile(&[("b", Regular, ""), ("a", Regular, "")]));
    assert!(err.contains("'a': entries are not in layer order"), "{err}");
    // A folder's entry comes before what it holds.
    let err = refusal(&hostile(&[("d/x", Regular, ""), ("d", Directory, "")]));
    assert!(err.contains("not in layer order"), "{err}");
}

#[test]
fn refuses_folders_and_symlinks_with_data() {
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "d", Directory, "", b"hidden");
    let err = refusal(&b.into_inner().unwrap());
    assert!(
        err.contains("'d': a folder entry holds 6 bytes of data"),
        "{err}"
    );
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "l", Symlink, "x", b"hidden");
    let err = refusal(&b.into_inner().unwrap());
    assert!(
        err.contains("'l': a symlink entry holds 6 bytes of data"),
        "{err}"
    );
}

#[test]
fn accepts_exactly_two_zero_blocks_after_the_last_entry() {
    let layer = hostile(&[("f", Regular, "")]);
    assert!(layer.ends_with(&[0; 1024]));
    let dir = tempfile::tempdir().unwrap();
    extract(layer.as_slice(), dir.path()).unwrap();
    let body = &layer[..layer.len() - 1024];
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "junk after",
            [&layer[..], b"junk"].concat(),
            "data follows its end-of-archive marker",
        ),
        (
            "a third zero block",
            [&layer[..], &[0; 512]].concat(),
            "data follows",
        ),
        (
            "one zero block",
            [body, &[0; 512]].concat(),
            "marker is not two zero blocks",
        ),
        (
            "no marker",
            body.to_vec(),
            "ends without the end-of-archive marker",
        ),
        (
            "a second block not zero",
            [body, &[0; 512], &[7; 512]].concat(),
            "marker is not two zero blocks",
        ),
    ];
    for (what, bytes, says) in cases {
        let err = refusal(&bytes);
        assert!(err.contains(says), "{what}: {err}");
    }
    // An empty layer (an empty code folder) is the marker alone.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        extract(
            write_tar(&mut [], Vec::new()).unwrap().as_slice(),
            dir.path()
        )
        .unwrap(),
        Extracted::default()
    );
}

#[test]
fn refuses_another_number_of_entries_than_declared() {
    let layer = hostile(&[("a", Regular, ""), ("b", Regular, "")]);
    let exactly = |n| {
        let dir = tempfile::tempdir().unwrap();
        extract_exactly(layer.as_slice(), dir.path(), n).map_err(|e| e.to_string())
    };
    assert_eq!(exactly(2).unwrap().entries, 2);
    let err = exactly(1).unwrap_err();
    assert!(
        err.contains("more entries than the 1 its manifest declares"),
        "{err}"
    );
    let err = exactly(3).unwrap_err();
    assert!(
        err.contains("it holds 2 entries, not the 3 its manifest declares"),
        "{err}"
    );
    assert!(check_declared(3072, 2).is_ok());
    assert!(check_declared(3072, 4).is_ok());
    assert!(
        check_declared(3072, 5)
            .unwrap_err()
            .contains("5 entries in 3072 bytes")
    );
    assert!(
        check_declared(3073, 2)
            .unwrap_err()
            .contains("whole number of 512-byte blocks")
    );
    assert!(
        check_declared(u64::MAX / 2 * 2, MAX_ENTRIES + 1)
            .unwrap_err()
            .contains("more than the 2000000")
    );
}

/// The order check against its definition, on random sorted archives of short names over
/// the bytes that matter (`-` and `.` sort before `/`, `0` just after): an entry is below a
/// symlink iff some earlier symlink followed by `/` is a prefix of it.
#[test]
fn the_order_check_finds_exactly_the_entries_below_a_symlink() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..3000 {
        let mut paths: Vec<Vec<u8>> = Vec::new();
        for _ in 0..next(12) + 1 {
            let len = next(6) + 1;
            paths.push((0..len).map(|_| b"a-./0"[next(5) as usize]).collect());
        }
        paths.sort();
        paths.dedup();
        let links: Vec<bool> = paths.iter().map(|_| next(3) == 0).collect();
        let mut order = Order::default();
        for (i, p) in paths.iter().enumerate() {
            let below = (0..i).any(|j| links[j] && p.starts_with(&[&paths[j][..], b"/"].concat()));
            let got = order.next(p, links[i]);
            assert_eq!(
                got.is_err(),
                below,
                "{paths:?} {links:?}: entry {i} {got:?}"
            );
            if below {
                break;
            }
        }
    }
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
