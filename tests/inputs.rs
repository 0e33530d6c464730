//! Restoring inputs is safe against the store and against the task: names in a parent's
//! `artifacts.json` that would leave the inputs folder are refused with the key before
//! anything is written, and nothing a step writes to its restored inputs or code reaches
//! the node cache, so the next task sees what the package and the parents committed.

use std::path::Path;

use crate::util::{self, BIN, flowpack_ok, write_tree};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

const RESTORE_FLOW: &str = r#"name: restore
steps:
  start: {run: python3 start.py, next: end}
  end: {run: python3 end.py}
"#;
const START: &str =
    "import os\nopen(os.path.join(os.environ['FLOWPACK_OUTPUT_DIR'], 'a'), 'w').write('fine')\n";
const END: &str = "print('the real end step')\n";

/// Runs the `restore` flow in `dir` on its default store; its `run --json` summary.
fn restore_run(dir: &Path) -> serde_json::Value {
    write_tree(
        dir,
        &[
            ("flow.yaml", RESTORE_FLOW),
            ("start.py", START),
            ("end.py", END),
        ],
    );
    json(&flowpack_ok(dir, &["run", "flow.yaml", "--json"]))
}

/// A run of the `restore` flow in `dir`: its id, its package, and the path of `start`'s
/// committed `artifacts.json` in the default store.
struct Restored {
    run_id: String,
    package: String,
    committed: std::path::PathBuf,
}

fn restored(dir: &Path) -> Restored {
    let run = restore_run(dir);
    let run_id = run["run"].as_str().unwrap().to_string();
    let committed = dir.join(format!(
        ".flowpack/v1/runs/restore/{run_id}/start/0/0/artifacts.json"
    ));
    Restored {
        package: run["package"].as_str().unwrap().to_string(),
        run_id,
        committed,
    }
}

/// `flowpack step` of `end` after `start/0` of run `r`, on the cache `cache`.
fn step_end(dir: &Path, r: &Restored, cache: &Path) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["step", "--store", ".flowpack", "--package", &r.package])
        .args(["--run", &r.run_id, "--step", "end", "--parent", "start/0"])
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", cache)
        .output()
        .unwrap()
}

/// Every file under `dir` with its content, sorted.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = util::walk(dir)
        .into_iter()
        .map(|p| {
            let content = std::fs::read(dir.join(&p)).unwrap();
            (p, content)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn artifact_names_that_leave_the_inputs_folder_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let r = restored(dir);
    let committed = &r.committed;
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(committed).unwrap()).unwrap();
    let art = original["artifacts"]["a"].clone();
    let cache = dir.join(".test-cache");
    let cache_before = snapshot(&cache);

    let escaped_abs = dir.join("escaped-abs");
    let escaped_rel = dir.join("escaped-rel");
    let climb = format!(
        "{}{}",
        "../".repeat(40),
        escaped_rel.display().to_string().trim_start_matches('/')
    );
    for name in [
        "../code/end.py".to_string(),
        "../../../code/end.py".to_string(),
        escaped_abs.display().to_string(),
        climb,
        "a/../../b".to_string(),
        ".".to_string(),
        String::new(),
    ] {
        let forged = serde_json::json!({ "artifacts": { name.clone(): art } });
        std::fs::write(committed, serde_json::to_vec(&forged).unwrap()).unwrap();
        let out = step_end(dir, &r, &cache);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{name:?}: {stderr}");
        assert!(
            stderr.contains("start/0/0/artifacts.json") && stderr.contains("is refused"),
            "{name:?}: the error must name the key and the refusal: {stderr}"
        );
        assert!(!escaped_abs.exists() && !escaped_rel.exists(), "{name:?}");
    }
    // Nothing in the node cache changed (no code file was overwritten, nothing was added
    // but the failed attempts' temporary folders, which are gone).
    let after: Vec<_> = snapshot(&cache)
        .into_iter()
        .filter(|(p, _)| !p.contains("/tmp/"))
        .collect();
    let before: Vec<_> = cache_before
        .into_iter()
        .filter(|(p, _)| !p.contains("/tmp/"))
        .collect();
    assert_eq!(after, before, "the node cache changed");
}

const INPLACE_FLOW: &str = r#"name: inplace
steps:
  start: {run: python3 start.py, next: mutate}
  mutate: {run: python3 mutate.py, next: end}
  end: {run: python3 end.py}
"#;
const INPLACE_START: &str = "import os\nopen(os.path.join(os.environ['FLOWPACK_OUTPUT_DIR'], 'data'), 'w').write('original')\n";
/// Writes into its restored input and into its code files in place (as a buggy step
/// might), then succeeds.
const MUTATE: &str = r#"import os
with open(os.path.join(os.environ['FLOWPACK_INPUT_DIR'], 'data'), 'r+') as f:
    f.write('EVIL')
for code in ('end.py', 'mutate.py'):
    with open(code, 'r+') as f:
        f.write('raise SystemExit(7)\n')
"#;
const INPLACE_END: &str = r#"import os
data = open(os.path.join(os.environ['FLOWPACK_INPUT_DIR'], 'data')).read()
open(os.path.join(os.environ['FLOWPACK_OUTPUT_DIR'], 'final'), 'w').write(data)
"#;

#[test]
fn a_step_writing_into_its_inputs_and_code_does_not_change_what_the_next_task_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(
        dir,
        &[
            ("flow.yaml", INPLACE_FLOW),
            ("start.py", INPLACE_START),
            ("mutate.py", MUTATE),
            ("end.py", INPLACE_END),
        ],
    );
    // Twice on one cache: the second run starts from what the first left there.
    for _ in 0..2 {
        let run = json(&flowpack_ok(dir, &["run", "flow.yaml", "--json"]));
        let target = format!("{}/end/final", run["run"].as_str().unwrap());
        let final_ = flowpack_ok(dir, &["artifacts", "get", &target, "-o", "-"]);
        assert_eq!(final_, "original");
    }
}

/// A forged record's free text (an error message, a timestamp) cannot drive the terminal
/// of whoever runs `show` or `runs`: control characters are shown escaped.
#[test]
fn free_text_from_records_is_shown_with_control_characters_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = restore_run(dir);
    let run_id = run["run"].as_str().unwrap();
    let runs = dir.join(format!(".flowpack/v1/runs/restore/{run_id}"));
    let escape = "\u{1b}]0;owned\u{7}\u{1b}[2J";
    let edit = |path: &Path, field: &str| {
        let mut doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        doc[field] = escape.into();
        std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
    };
    edit(&runs.join("run.json"), "created_at");
    edit(&runs.join("run.json"), "origin");
    edit(&runs.join("end/0/0/task.json"), "error");
    for args in [&["show", run_id][..], &["runs"]] {
        let out = flowpack_ok(dir, args);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?}: {out:?}"
        );
        assert!(out.contains("\\u{1b}]0;owned"), "{args:?}: {out}");
    }
}

/// An artifact named like a branch step (`a`) or a foreach index (`0`), equal in every
/// parent of a join: the folder of the parent of that name and the inherited artifact
/// wanted one path (`inputs/a: File exists`, exit 125, issue 12). The parent's folder is
/// the join's; the artifact is under every parent's folder and still inherited past it.
const COLLIDE_FLOW: &str = r#"name: collide
steps:
  start:  {run: python3 s.py start, next: [a, b]}
  a:      {run: python3 s.py branch, next: join}
  b:      {run: python3 s.py branch, next: join}
  join:   {run: python3 s.py join, join: true, next: fan}
  fan:    {run: python3 s.py fan, foreach: items, next: body}
  body:   {run: python3 s.py branch, next: gather}
  gather: {run: python3 s.py gather, join: true, next: end}
  end:    {run: python3 s.py end}
"#;
const COLLIDE_PY: &str = r#"import json, os, sys
inp, out = os.environ["FLOWPACK_INPUT_DIR"], os.environ["FLOWPACK_OUTPUT_DIR"]
def put(name, text):
    open(os.path.join(out, name), "w").write(text)
def get(*path):
    return open(os.path.join(inp, *path)).read()
step = sys.argv[1]
if step == "start":
    put("a", "inherited a")
elif step == "branch":
    put("mine", os.environ["FLOWPACK_STEP"])
elif step == "join":
    assert os.path.isdir(os.path.join(inp, "a")), "the branch's folder"
    assert get("a", "a") == get("b", "a") == "inherited a"
    assert get("a", "mine") == "a" and get("b", "mine") == "b"
elif step == "fan":
    put("items", json.dumps([1, 2]))
    put("0", "inherited 0")
elif step == "gather":
    assert get("0", "0") == get("1", "0") == "inherited 0"
elif step == "end":
    print(get("a"), "and", get("0"))
"#;

#[test]
fn an_artifact_named_like_a_joined_parent_does_not_break_the_join() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[("flow.yaml", COLLIDE_FLOW), ("s.py", COLLIDE_PY)],
    );
    let run = json(&flowpack_ok(tmp.path(), &["run", "flow.yaml", "--json"]));
    assert_eq!(run["succeeded"], true, "{run}");
    let id = run["run"].as_str().unwrap();
    let log = flowpack_ok(tmp.path(), &["logs", &format!("{id}/end")]);
    assert!(log.contains("inherited a and inherited 0"), "{log}");
}

/// An input whose blob was replaced in the store is refused while it streams into the
/// node cache and the task's inputs folder at once: the step fails naming the blob, and
/// neither the cache nor the inputs folder keeps any of it.
#[test]
fn a_damaged_input_is_refused_and_nothing_of_it_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let r = restored(dir);
    let arts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&r.committed).unwrap()).unwrap();
    let digest: flowpack_core::Digest = arts["artifacts"]["a"]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // Same size ("fine"), other content: only the digest can tell.
    let blob = dir
        .join(".flowpack")
        .join(flowpack_core::store::layout::blob(&digest));
    std::fs::write(&blob, zstd::encode_all(&b"evil"[..], 1).unwrap()).unwrap();
    // The end task again, as new: its committed attempt and the step cache's entry gone.
    let store = dir.join(".flowpack/v1");
    std::fs::remove_dir_all(store.join(format!("runs/restore/{}/end", r.run_id))).unwrap();
    std::fs::remove_dir_all(store.join("cache")).unwrap();
    let cache = dir.join("fresh-cache");
    let out = step_end(dir, &r, &cache);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains(&digest.hex()) && stderr.contains("is corrupt"),
        "the error must name the blob: {stderr}"
    );
    let kept: Vec<_> = util::walk(&cache)
        .into_iter()
        .filter(|p| p.contains("/blobs/") || p.contains("/inputs/"))
        .filter(|p| !p.ends_with('/'))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
}
