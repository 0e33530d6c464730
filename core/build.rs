//! Embeds the Python package (`python/flowpack/*.py` at the workspace root) into the crate:
//! every `.py` file of the folder, found by a glob at build time so that a new module can
//! never be left out. `flowpack_core::python` writes them out for `PYTHONPATH`.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = manifest.join("..").join("python").join("flowpack");
    // The folder's own entry changes when a file is added or removed; each file's when it
    // is edited.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the Python package {}: {e}", dir.display()))
        .map(|e| e.expect("a readable folder entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "py") && p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the Python package {} has no .py file",
        dir.display()
    );
    let mut out = String::from(
        "/// The embedded package's files: (file name, contents), by name.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = file_name(f);
        let abs = f.canonicalize().expect("an existing file");
        out.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("python_files.rs");
    std::fs::write(&dest, out).expect("OUT_DIR is writable");
}

fn file_name(p: &Path) -> String {
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 file name");
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
        "Python module file name {name:?}: use letters, digits and '_'"
    );
    name.to_string()
}
