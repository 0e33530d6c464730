//! The runtime's side of Python flows, seen from steps: every task finds flowpack's own
//! Python package first on `PYTHONPATH` (written out of the binary into the cache) and the
//! variables the package's task runner and Client API read (`FLOWPACK_BIN`,
//! `FLOWPACK_STORE`, `FLOWPACK_PARENTS`, `FLOWPACK_ORIGIN_RUN_ID`). YAML flows stand in for
//! Python ones: the steps are shell scripts that record what they see.

use std::path::{Path, PathBuf};

use crate::util::{BIN, flowpack, flowpack_ok, write_tree};

/// A foreach over 12 items (so index order differs from text order: 10 < 2), a join, and
/// an `end` that fails while `broken` exists in the flow's folder (to be resumed).
const FLOW: &str = "name: pyenv
steps:
  start: {run: sh probe.sh, foreach: items, next: body}
  body: {run: sh probe.sh, next: join}
  join: {run: sh probe.sh, join: true, next: end}
  end: {run: sh probe.sh}
";

const PROBE: &str = r#"set -e
out=$FLOWPACK_OUTPUT_DIR
case $FLOWPACK_STEP in
start)
  python3 -c 'import json; print(json.dumps(list(range(12))))' > "$out/items"
  python3 -c 'import flowpack._version as v, sys; sys.stdout.write(v.__version__)' > "$out/version"
  python3 -c 'import flowpack, sys; sys.stdout.write(flowpack.__path__[0])' > "$out/package"
  printf '%s' "$FLOWPACK_BIN" > "$out/bin"
  printf '%s' "$FLOWPACK_STORE" > "$out/store"
  printf '%s' "$PYTHONPATH" > "$out/pythonpath"
  printf '%s' "$FLOWPACK_PARENTS" > "$out/start_parents"
  ;;
join) printf '%s' "$FLOWPACK_PARENTS" > "$out/join_parents" ;;
end)
  test ! -e "$FLOWPACK_FLOW_DIR/broken"
  printf '%s' "$FLOWPACK_PARENTS" > "$out/end_parents"
  printf '%s' "${FLOWPACK_ORIGIN_RUN_ID-none}" > "$out/origin"
  ;;
esac
"#;

fn artifact(dir: &Path, run: &str, name: &str) -> String {
    flowpack_ok(
        dir,
        &["artifacts", "get", &format!("{run}/end/{name}"), "-o", "-"],
    )
}

fn run_id(out: &std::process::Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["run"].as_str().unwrap().to_string()
}

fn canonical(p: impl AsRef<Path>) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

#[test]
fn steps_see_the_embedded_package_first_and_the_python_task_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let probe = PROBE.replace("$FLOWPACK_FLOW_DIR", &dir.display().to_string());
    write_tree(
        dir,
        &[("flow.yaml", FLOW), ("probe.sh", &probe), ("broken", "")],
    );

    let failed = flowpack(dir, &["run", "flow.yaml", "--json"]);
    assert_eq!(
        failed.status.code(),
        Some(1),
        "end fails while 'broken' exists: {}",
        String::from_utf8_lossy(&failed.stderr)
    );
    let failed = run_id(&failed);
    std::fs::remove_file(dir.join("broken")).unwrap();
    let resumed = flowpack(dir, &["resume", &failed, "--json"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let resumed = run_id(&resumed);

    // The package the binary carries, at the version of the binary, first on PYTHONPATH.
    assert_eq!(
        artifact(dir, &resumed, "version"),
        env!("CARGO_PKG_VERSION")
    );
    let pythonpath = artifact(dir, &resumed, "pythonpath");
    let first = PathBuf::from(pythonpath.split(':').next().unwrap());
    let cache_python = dir.join(".test-cache").join("python");
    assert_eq!(first.parent().unwrap(), cache_python, "{pythonpath}");
    let hash = first.file_name().unwrap().to_str().unwrap();
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{hash}"
    );
    assert_eq!(
        PathBuf::from(artifact(dir, &resumed, "package")),
        first.join("flowpack")
    );
    assert!(first.join("flowpack/_version.py").is_file());

    assert_eq!(canonical(artifact(dir, &resumed, "bin")), canonical(BIN));
    assert_eq!(
        PathBuf::from(artifact(dir, &resumed, "store")),
        canonical(dir.join(".flowpack"))
    );

    // Parents: none for start, the foreach's tasks by index at the join, the join at end.
    assert_eq!(artifact(dir, &resumed, "start_parents"), "[]");
    let by_index: Vec<String> = (0..12).map(|i| format!("body/{i}")).collect();
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&artifact(dir, &resumed, "join_parents")).unwrap(),
        by_index
    );
    assert_eq!(artifact(dir, &resumed, "end_parents"), r#"["join/0"]"#);

    // The resumed run's tasks know the run it resumes.
    assert_eq!(artifact(dir, &resumed, "origin"), failed);
}

#[test]
fn a_python_flow_without_python_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[("flow.py", "from flowpack import FlowSpec\n")],
    );
    for cmd in ["check", "push", "run", "compile"] {
        let out = std::process::Command::new(BIN)
            .args([cmd, "flow.py"])
            .current_dir(tmp.path())
            .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
            .env("FLOWPACK_PYTHON", tmp.path().join("no-python-here"))
            .env_remove("FLOWPACK_STORE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}");
        assert!(
            stderr
                .contains("flow.py: flowpack runs Python flows with python3; set FLOWPACK_PYTHON"),
            "{cmd}: {stderr}"
        );
    }
}
