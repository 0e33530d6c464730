//! Every graph shape that runs locally compiles for KFP and Argo and runs the same under
//! KFP's own local orchestrator (host runner) and the Argo executor contract
//! (`tests/argo_local.py`): the same tasks, the same artifact digests. Each step
//! writes an artifact derived from its inputs, its task id and its foreach item
//! (`w.sh`), so a wrong parent, a wrong task id or a missing task changes a digest.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::kfp::{run_local, validate};
use crate::util::{flowpack_ok, write_tree};

/// The one step script: an artifact `out_<step>` from the inputs; `items N` also writes a
/// foreach list of N items, `choose V` a switch choice, `parity` even/odd by split index.
pub(crate) const W: &str = r#"set -e
s=$(cd "$FLOWPACK_INPUT_DIR" && find . -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done | sha256sum | cut -c1-16)
echo "$FLOWPACK_STEP $FLOWPACK_TASK_ID ${FLOWPACK_SPLIT_ITEM:-} $s" > "$FLOWPACK_OUTPUT_DIR/out_$FLOWPACK_STEP"
case "${1:-}" in
  items) python3 -c 'import json,sys; print(json.dumps(["i%d" % i for i in range(int(sys.argv[1]))]))' "$2" > "$FLOWPACK_OUTPUT_DIR/items" ;;
  choose) printf '%s' "$2" > "$FLOWPACK_OUTPUT_DIR/pick" ;;
  parity) if [ $((FLOWPACK_SPLIT_INDEX % 2)) = 0 ]; then echo even; else echo odd; fi > "$FLOWPACK_OUTPUT_DIR/pick" ;;
esac
"#;

/// `step -> artifact -> digest` of the one run whose id starts with `prefix`.
fn digests(dir: &Path, prefix: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let runs: serde_json::Value =
        serde_json::from_str(&flowpack_ok(dir, &["runs", "--json"])).unwrap();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run"].as_str())
        .filter(|r| r.starts_with(prefix))
        .collect();
    assert_eq!(ids.len(), 1, "{runs}");
    let run = &runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run"] == ids[0])
        .unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let info: serde_json::Value =
        serde_json::from_str(&flowpack_ok(dir, &["show", ids[0], "--json"])).unwrap();
    info["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let arts = t["artifacts"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v["digest"].as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            (t["task"].as_str().unwrap().to_string(), arts)
        })
        .collect()
}

/// Runs `flow` locally, under kfp.local and under the Argo executor contract, in a new
/// folder whose default store (`.flowpack/`) then holds the three runs.
pub(crate) fn run_on_every_engine(flow: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", flow), ("w.sh", W)]);
    flowpack_ok(dir, &["run", "flow.yaml"]);
    flowpack_ok(
        dir,
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    let pipeline = dir.join("pipeline.yaml");
    validate(&pipeline);
    run_local(dir, &pipeline, &[]);
    let template = crate::argo::compile(dir, "flow.yaml");
    let (ok, text) = crate::argo::run_argo_local(dir, &template, &[]);
    assert!(ok, "argo_local failed:\n{text}");
    tmp
}

/// Runs `flow` on every engine ([`run_on_every_engine`]): all three runs have the same
/// tasks and digests.
pub(crate) fn same_on_every_engine(flow: &str, expect_tasks: &[&str]) {
    let tmp = run_on_every_engine(flow);
    let dir = tmp.path();
    let local = digests(dir, "local-");
    let kfp = digests(dir, "kfp-");
    let argo = digests(dir, "argo-");
    for t in expect_tasks {
        assert!(local.contains_key(*t), "local run lacks {t}: {local:?}");
    }
    assert_eq!(local, kfp, "the local and the KFP run differ");
    assert_eq!(local, argo, "the local and the Argo run differ");
}

#[test]
fn nested_foreach_runs_the_same_on_kfp() {
    same_on_every_engine(
        "name: nested\nsteps:\n  start: {run: sh w.sh items 2, foreach: items, next: a}\n  a: {run: sh w.sh items 3, foreach: items, next: b}\n  b: {run: sh w.sh, next: j1}\n  j1: {run: sh w.sh, join: true, next: j2}\n  j2: {run: sh w.sh, join: true, next: end}\n  end: {run: sh w.sh}\n",
        &["b/1.2", "j1/1", "j2/0"],
    );
}

#[test]
fn a_split_inside_a_foreach_body_runs_the_same_on_kfp() {
    same_on_every_engine(
        "name: split-in-loop\nsteps:\n  start: {run: sh w.sh items 3, foreach: items, next: w}\n  w: {run: sh w.sh, next: [x, y]}\n  x: {run: sh w.sh, next: m}\n  y: {run: sh w.sh, next: m}\n  m: {run: sh w.sh, join: true, next: j}\n  j: {run: sh w.sh, join: true, next: end}\n  end: {run: sh w.sh}\n",
        &["m/2", "j/0"],
    );
}

#[test]
fn a_switch_inside_a_foreach_body_runs_the_same_on_kfp() {
    same_on_every_engine(
        "name: switch-in-loop\nsteps:\n  start: {run: sh w.sh items 3, foreach: items, next: w}\n  w: {run: sh w.sh parity, switch: {on: pick, cases: {even: x, odd: y}}}\n  x: {run: sh w.sh, next: j}\n  y: {run: sh w.sh, next: j}\n  j: {run: sh w.sh, join: true, next: end}\n  end: {run: sh w.sh}\n",
        &["x/0", "y/1", "x/2", "j/0"],
    );
}

#[test]
fn a_foreach_inside_a_switch_case_runs_the_same_on_kfp() {
    same_on_every_engine(
        "name: loop-in-case\nsteps:\n  start: {run: sh w.sh choose go, switch: {on: pick, cases: {go: f, stop: end}}}\n  f: {run: sh w.sh items 2, foreach: items, next: b}\n  b: {run: sh w.sh, next: j}\n  j: {run: sh w.sh, join: true, next: end}\n  end: {run: sh w.sh}\n",
        &["b/1", "j/0", "end/0"],
    );
}

#[test]
fn a_split_in_a_case_and_a_split_after_the_switch_run_the_same_on_kfp() {
    same_on_every_engine(
        "name: splits-and-switch\nsteps:\n  start: {run: sh w.sh choose a, switch: {on: pick, cases: {a: s1, b: z}}}\n  s1: {run: sh w.sh, next: [p, q]}\n  p: {run: sh w.sh, next: j}\n  q: {run: sh w.sh, next: j}\n  j: {run: sh w.sh, join: true, next: m}\n  z: {run: sh w.sh, next: m}\n  m: {run: sh w.sh, next: [u, v]}\n  u: {run: sh w.sh, next: k}\n  v: {run: sh w.sh, next: k}\n  k: {run: sh w.sh, join: true, next: end}\n  end: {run: sh w.sh}\n",
        &["j/0", "m/0", "k/0"],
    );
}

#[test]
fn a_step_reached_from_a_case_and_another_way_runs_the_same_on_kfp() {
    for pick in ["a", "b"] {
        same_on_every_engine(
            &format!(
                "name: two-ways\nsteps:\n  start: {{run: sh w.sh choose {pick}, switch: {{on: pick, cases: {{a: x, b: y}}}}}}\n  y: {{run: sh w.sh, next: x}}\n  x: {{run: sh w.sh, next: end}}\n  end: {{run: sh w.sh}}\n"
            ),
            &["x/0"],
        );
    }
}

#[test]
fn nested_switches_run_the_same_on_kfp() {
    same_on_every_engine(
        "name: nested-switch\nsteps:\n  start: {run: sh w.sh choose a, switch: {on: pick, cases: {a: s2, b: end}}}\n  s2: {run: sh w.sh choose d, switch: {on: pick, cases: {c: p, d: q}}}\n  p: {run: sh w.sh, next: end}\n  q: {run: sh w.sh, next: end}\n  end: {run: sh w.sh}\n",
        &["q/0", "end/0"],
    );
}

#[test]
fn case_values_with_spaces_and_quotes_choose_the_right_case_on_kfp() {
    same_on_every_engine(
        "name: quoted\nsteps:\n  start:\n    run: |\n      sh w.sh choose \"it's \\\"q\\\" v\"\n    switch: {on: pick, cases: {\"it's \\\"q\\\" v\": a, \"b c\": b}}\n  a: {run: sh w.sh, next: end}\n  b: {run: sh w.sh, next: end}\n  end: {run: sh w.sh}\n",
        &["a/0"],
    );
}

fn wide(n: usize) -> String {
    format!(
        "name: wide\nsteps:\n  start: {{run: sh w.sh items {n}, foreach: items, next: b}}\n  b: {{run: sh w.sh, next: j}}\n  j: {{run: sh w.sh, join: true, next: end}}\n  end: {{run: sh w.sh}}\n"
    )
}

/// The width of a foreach is data: the compiled pipeline of a 10,000-way foreach is the
/// 3-way one's, and no task list passes through KFP (the join finds its parents in the
/// store).
#[test]
fn a_wide_foreach_compiles_to_the_same_size_as_a_narrow_one() {
    let size = |n: usize| {
        let tmp = tempfile::tempdir().unwrap();
        write_tree(tmp.path(), &[("flow.yaml", &wide(n)), ("w.sh", W)]);
        flowpack_ok(
            tmp.path(),
            &[
                "compile",
                "--allow-local",
                "flow.yaml",
                "-o",
                "p.yaml",
                "--store",
                "/tmp/fixed-store",
            ],
        );
        validate(&tmp.path().join("p.yaml"));
        let text = std::fs::read_to_string(tmp.path().join("p.yaml")).unwrap();
        assert!(!text.contains("parents-json"), "{text}");
        text.len()
    };
    let narrow = size(3);
    let wide = size(10_000);
    eprintln!("compiled size: 3-way {narrow} bytes, 10,000-way {wide} bytes");
    assert_eq!(narrow, wide);
}

#[test]
fn a_200_way_foreach_runs_under_kfp_local() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", &wide(200)), ("w.sh", W)]);
    flowpack_ok(
        dir,
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    let started = Instant::now();
    run_local(dir, &dir.join("pipeline.yaml"), &[]);
    eprintln!(
        "kfp.local 200-way foreach: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let kfp = digests(dir, "kfp-");
    assert_eq!(kfp.keys().filter(|t| t.starts_with("b/")).count(), 200);
    assert!(
        kfp.contains_key("j/0") && kfp.contains_key("end/0"),
        "{kfp:?}"
    );
}

/// A recursive switch runs locally but is refused by `compile` with an error that names
/// the switch, the case and the step it leads back to, says why (KFP's IR is a DAG) and
/// what to do.
#[test]
fn a_recursive_switch_is_refused_for_kfp_naming_the_switch_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let flow = "name: rounds\nmax_visits: 4\nsteps:\n  start: {run: sh w.sh, next: train}\n  train: {run: sh w.sh, next: decide}\n  decide: {run: sh w.sh choose done, switch: {on: pick, cases: {again: train, done: end}}}\n  end: {run: sh w.sh}\n";
    write_tree(dir, &[("flow.yaml", flow), ("w.sh", W)]);
    flowpack_ok(dir, &["run", "flow.yaml"]);
    let out = crate::util::flowpack(
        dir,
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "switch 'decide'",
        "case 'again' leads back to 'train'",
        "no recursion",
        "max_visits 4",
        "flowpack run",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!dir.join("pipeline.yaml").exists());
}
