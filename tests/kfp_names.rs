//! KFP names and `check`'s KFP rules, end to end: step names at the length limit and named
//! like the compiler's generated names compile to a pipeline KFP accepts, always to the same
//! one, and run the same under kfp.local as locally; `check` warns about what KFP cannot
//! run and fails on it with `--target kfp`.

use crate::kfp::validate;
use crate::kfp_shapes::{W, same_on_every_engine};
use crate::util::{flowpack, flowpack_ok, write_tree};

/// A foreach step and its body named with 100 characters (the most a step name may have),
/// `train_a` beside `train-a`, a step named `for-each-x` beside the loop of a step `x`, a
/// switch over a step named like its first case.
fn colliding_flow() -> String {
    let f = format!("F{}", "f".repeat(99));
    let b = format!("B{}", "b".repeat(99));
    let w = format!("W{}", "w".repeat(91));
    format!(
        "name: Long_Names.v2
steps:
  start: {{run: sh w.sh, next: train_a}}
  train_a: {{run: sh w.sh, next: train-a}}
  train-a: {{run: sh w.sh items 2, foreach: items, next: {f}}}
  {f}: {{run: sh w.sh items 2, next: for-each-x}}
  for-each-x: {{run: sh w.sh, next: {b}}}
  {b}: {{run: sh w.sh, join: true, next: x}}
  x: {{run: sh w.sh items 2, foreach: items, next: x-case-0}}
  x-case-0: {{run: sh w.sh, next: xj}}
  xj: {{run: sh w.sh, join: true, next: {w}}}
  {w}: {{run: sh w.sh choose go, switch: {{on: pick, cases: {{go: {w}-case-0, stop: end}}}}}}
  {w}-case-0: {{run: sh w.sh, next: end}}
  end: {{run: sh w.sh}}
"
    )
}

#[test]
fn long_and_colliding_step_names_compile_to_one_valid_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", &colliding_flow()), ("w.sh", W)]);
    flowpack_ok(dir, &["check", "flow.yaml", "--target", "kfp"]);
    // To stdout: a file written into the flow's folder would change the package.
    let a = flowpack_ok(dir, &["compile", "flow.yaml", "-o", "-", "--allow-local"]);
    let b = flowpack_ok(dir, &["compile", "flow.yaml", "-o", "-", "--allow-local"]);
    assert!(a == b, "the same flow compiles to the same names");
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("p.yaml"), &a).unwrap();
    validate(&out.path().join("p.yaml"));
    // The user's names stay the display names.
    for step in [
        "train_a",
        "train-a",
        "for-each-x",
        &format!("F{}", "f".repeat(99)),
    ] {
        assert!(
            a.contains(&format!("name: {step}\n")),
            "no display name {step}"
        );
    }
    assert!(a.contains("displayName: Long_Names.v2") && a.contains("name: long-names.v2"));
}

#[test]
fn long_and_colliding_step_names_run_the_same_on_kfp() {
    let f = format!("F{}", "f".repeat(99));
    let w = format!("W{}", "w".repeat(91));
    same_on_every_engine(
        &colliding_flow(),
        &[
            "train_a/0",
            "train-a/0",
            &format!("{f}/1"),
            "for-each-x/1",
            "x-case-0/1",
            &format!("{w}-case-0/0"),
            "end/0",
        ],
    );
}

/// A recursive switch: `flowpack run` runs it, KFP cannot (a pipeline is a DAG).
const RECURSIVE: &str = "name: again
max_visits: 3
steps:
  start: {run: \"true\", next: train}
  train: {run: \"echo done > $FLOWPACK_OUTPUT_DIR/verdict\", next: decide}
  decide: {run: \"true\", switch: {on: verdict, cases: {again: train, done: end}}}
  end: {run: \"true\"}
";

#[test]
fn check_warns_about_kfp_rules_and_fails_on_them_with_target_kfp() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", RECURSIVE)]);
    let plain = flowpack(dir, &["check", "flow.yaml"]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(plain.status.success(), "{stderr}");
    assert!(stderr.starts_with("warning: for KFP: "), "{stderr}");
    assert!(String::from_utf8_lossy(&plain.stdout).contains("valid"));
    let kfp = flowpack(dir, &["check", "flow.yaml", "--target", "kfp"]);
    let stderr = String::from_utf8_lossy(&kfp.stderr);
    assert_eq!(kfp.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: for KFP: "), "{stderr}");
    assert!(stderr.contains("flowpack run"), "says what to do: {stderr}");
    // compile refuses it the same way: what check refuses never reaches KFP.
    let compile = flowpack(
        dir,
        &["compile", "flow.yaml", "-o", "p.yaml", "--store", "store"],
    );
    assert!(!compile.status.success());
    // A flow KFP can run gets no warning.
    write_tree(
        dir,
        &[(
            "flow.yaml",
            "name: fine\nsteps:\n  start: {run: \"true\", next: end}\n  end: {run: \"true\"}\n",
        )],
    );
    let fine = flowpack(dir, &["check", "flow.yaml", "--target", "kfp"]);
    assert!(fine.status.success() && fine.stderr.is_empty(), "{fine:?}");
}
