//! Writes the seed corpora under fuzz/corpus/: `cargo run --example make_seeds` in fuzz/.
//!
//! flow_parse: the example flows. manifest_parse: manifests of the example flows (as
//! `flowpack push` writes them). archive_extract: a layer written by `write_tar`, and
//! hostile archives extraction must refuse. Every reproducer in fuzz/artifacts-found/<target>/
//! (inputs that broke a target once, fixed since) is copied in as well. Archives keep their
//! two end-of-archive blocks: extraction refuses a layer without them.

use std::fs;
use std::path::{Path, PathBuf};

use flowpack_core::Digest;
use flowpack_core::archive::{Entry, EntryKind, write_tar};
use flowpack_core::flow::Flow;
use flowpack_core::manifest::{Layer, LayerKind, Manifest};

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let examples = fuzz.join("../examples");
    let corpus = fuzz.join("corpus");
    for target in ["flow_parse", "manifest_parse", "archive_extract"] {
        let dir = corpus.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
    }

    for name in ["hello", "switch", "train"] {
        let file = examples.join(name).join("flow.yaml");
        let text = fs::read_to_string(&file).unwrap();
        fs::write(
            corpus.join("flow_parse").join(format!("{name}.yaml")),
            &text,
        )
        .unwrap();

        let flow = Flow::parse(&text, &file).unwrap();
        let mut layers = vec![layer(LayerKind::Code, name)];
        if flow.env.is_some() {
            let mut env = layer(LayerKind::Env, &format!("{name}-env"));
            env.python = Some("3.11".into());
            env.platform = Some("x86_64-manylinux_2_28".into());
            layers.push(env);
        }
        let m = Manifest::new(flow, layers);
        fs::write(
            corpus.join("manifest_parse").join(format!("{name}.json")),
            m.to_canonical(),
        )
        .unwrap();
    }

    // Flow files the scan refuses at a node: a step defined twice, an alias bomb, a
    // recursive alias, a second document; and anchors and aliases a valid flow may use.
    let hostile_flows = [
        (
            "duplicate-step.yaml",
            "name: x\nsteps:\n  start: {run: a, next: end}\n  start: {run: b, next: end}\n  end: {run: c}\n",
        ),
        (
            "alias-bomb.yaml",
            "name: x\nparameters:\n  p:\n    default:\n      a: &a [x, x, x, x, x, x, x, x, x, x]\n      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n      e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n",
        ),
        (
            "recursive-alias.yaml",
            "name: x\nparameters:\n  p: &p {default: [*p]}\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n",
        ),
        (
            "two-documents.yaml",
            "name: x\nsteps:\n  start: {run: a, next: end}\n  end: {run: c}\n---\nname: y\n",
        ),
        (
            "aliases.yaml",
            "name: x\nsteps:\n  start: {run: a, next: end, resources: &r {cpu: \"1\"}, env: &e {A: b}}\n  end: {run: c, resources: *r, env: *e}\n",
        ),
    ];
    for (name, text) in hostile_flows {
        fs::write(corpus.join("flow_parse").join(name), text).unwrap();
    }

    let tars = corpus.join("archive_extract");
    let layer = layer_tar();
    fs::write(tars.join("layer.tar"), &layer).unwrap();
    fs::write(
        tars.join("data-after-end.tar"),
        [&layer[..], b"x.py\0"].concat(),
    )
    .unwrap();
    fs::write(tars.join("pax-path.tar"), pax_tar()).unwrap();
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let hostile: [(&str, RawEntries); 8] = [
        ("parent-path.tar", &[(b"../x", Regular, "")]),
        ("absolute-path.tar", &[(b"/etc/x", Regular, "")]),
        ("symlink-etc.tar", &[(b"etc", Symlink, "/etc")]),
        ("symlink-up.tar", &[(b"a/up", Symlink, "../../x")]),
        ("hardlink-out.tar", &[(b"h", Link, "../../etc/passwd")]),
        (
            "below-symlink.tar",
            &[
                (b"d", Directory, ""),
                (b"l", Symlink, "d"),
                (b"l-x", Regular, ""),
                (b"l/x", Regular, ""),
            ],
        ),
        ("name-not-utf8.tar", &[(b"a\xff", Regular, "")]),
        ("out-of-order.tar", &[(b"b", Regular, ""), (b"a", Regular, "")]),
    ];
    for (name, entries) in hostile {
        fs::write(tars.join(name), raw_tar(entries)).unwrap();
    }

    for target in ["flow_parse", "manifest_parse", "archive_extract"] {
        let Ok(found) = fs::read_dir(fuzz.join("artifacts-found").join(target)) else {
            continue;
        };
        for f in found {
            let f = f.unwrap();
            fs::copy(f.path(), corpus.join(target).join(f.file_name())).unwrap();
        }
    }
}

/// Entries of a hostile archive: path, type, link target.
type RawEntries<'a> = &'a [(&'a [u8], tar::EntryType, &'a str)];

fn layer(kind: LayerKind, seed: &str) -> Layer {
    Layer {
        kind,
        digest: Digest::of(seed.as_bytes()),
        size: 3584,
        entries: 2,
        python: None,
        platform: None,
        steps: vec![],
    }
}

/// A small layer as `flowpack push` writes it: a folder, plain and executable files, and
/// symlinks inside the tree.
fn layer_tar() -> Vec<u8> {
    let src = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| -> PathBuf {
        let p = src.path().join(name);
        fs::write(&p, text).unwrap();
        p
    };
    let entry = |path: &str, kind: EntryKind| Entry {
        path: path.into(),
        kind,
    };
    let py = file("mod.py", "print('hi')\n");
    let sh = file("run.sh", "#!/bin/sh\n");
    // Over 100 bytes: a GNU long-name entry.
    let long = format!("pkg/{}.py", "long_module_name_".repeat(7));
    let mut entries = vec![
        entry(&long, source(&py, false)),
        entry("pkg", EntryKind::Dir),
        entry("pkg/mod.py", source(&py, false)),
        entry("run.sh", source(&sh, true)),
        entry(
            "pkg/alias.py",
            EntryKind::Symlink {
                target: "mod.py".into(),
            },
        ),
        entry(
            "latest",
            EntryKind::Symlink {
                target: "pkg".into(),
            },
        ),
    ];
    write_tar(&mut entries, Vec::new()).unwrap()
}

fn source(path: &Path, executable: bool) -> EntryKind {
    EntryKind::File {
        source: path.to_path_buf(),
        size: fs::metadata(path).unwrap().len(),
        executable,
    }
}

/// A tar of old-style headers taken as given (as core's archive tests build them).
fn raw_tar(entries: RawEntries) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"x"
        } else {
            b""
        };
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A PAX header giving the path `evil.py` to the entry `f` after it: PAX-aware readers
/// and others would see different names.
fn pax_tar() -> Vec<u8> {
    let record = b"16 path=evil.py\n";
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("PaxHeader").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(record.len() as u64);
    h.set_cksum();
    b.append(&h, &record[..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("f").unwrap();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(1);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.into_inner().unwrap()
}
