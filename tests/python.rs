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

/// `@pypi_base` with six 1.16.0; `newer` has `@pypi` six 1.17.0 (replacing the base's),
/// `other` adds idna (merged over the base). Each step checks, in Python, the six it
/// imports and that it comes from its own env layer, second on `PYTHONPATH`: `end`, with no
/// `@pypi`, has the flow's layer, the same as `start`'s, without idna.
const PYPI_FLOW: &str = r#"import os

from flowpack import FlowSpec, pypi, pypi_base, step


def layer():
    return os.environ["PYTHONPATH"].split(":")[1]


def check(version):
    import six

    assert six.__version__ == version, six.__version__
    assert six.__file__.startswith(layer() + "/"), (six.__file__, layer())
    print("six", six.__version__, "from", layer())


@pypi_base(packages={"six": "1.16.0"})
class PypiFlow(FlowSpec):
    @step
    def start(self):
        check("1.16.0")
        self.base_layer = layer()
        self.next(self.newer)

    @pypi(packages={"six": "1.17.0"})
    @step
    def newer(self):
        check("1.17.0")
        assert layer() != self.base_layer
        self.newer_layer = layer()
        self.next(self.other)

    @pypi(packages={"idna": "3.10"})
    @step
    def other(self):
        check("1.16.0")
        import idna

        assert idna.__file__.startswith(layer() + "/"), idna.__file__
        assert layer() not in (self.base_layer, self.newer_layer)
        self.next(self.end)

    @step
    def end(self):
        check("1.16.0")
        assert layer() == self.base_layer
        assert not os.path.exists(os.path.join(layer(), "idna"))
"#;

#[test]
fn each_pypi_step_runs_with_its_own_env_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.py", PYPI_FLOW)]);
    let cmd = |args: &[&str]| crate::util::flowpack_uv_json(dir, &dir.join(".test-cache"), args);

    // One layer per distinct environment: code, the flow's, and one for each @pypi step.
    let pushed = cmd(&["push", "flow.py", "--json"]);
    let layers = pushed["layers"].as_array().unwrap();
    let steps: Vec<&serde_json::Value> = layers.iter().map(|l| &l["steps"]).collect();
    assert_eq!(layers.len(), 4, "{pushed:#}");
    assert_eq!(layers[1]["kind"], "env");
    assert!(steps[1].is_null(), "the flow's env layer names no steps");
    let mut own: Vec<String> = steps[2..].iter().map(|s| s.to_string()).collect();
    own.sort();
    assert_eq!(own, [r#"["newer"]"#, r#"["other"]"#], "{pushed:#}");
    let digests: std::collections::BTreeSet<&str> = layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 4, "three different environments: {pushed:#}");

    // A second push builds nothing and uploads no layer: every env is cached and stored.
    let again = cmd(&["push", "flow.py", "--json"]);
    assert_eq!(again["package"], pushed["package"]);
    assert!(
        again["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["uploaded_bytes"] == 0),
        "{again:#}"
    );

    // Each step imports its own six (the steps assert it themselves).
    let run = cmd(&["run", "flow.py", "--json"]);
    let id = run["run"].as_str().unwrap();
    for (step, six) in [
        ("start", "1.16.0"),
        ("newer", "1.17.0"),
        ("other", "1.16.0"),
        ("end", "1.16.0"),
    ] {
        let logs = flowpack_ok(dir, &["logs", &format!("{id}/{step}")]);
        assert!(logs.contains(&format!("six {six} from")), "{step}: {logs}");
    }
}
