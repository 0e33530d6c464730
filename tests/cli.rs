//! The CLI as a user sees it: snapshots of output and errors, defaults and exit codes.

use crate::util::{LINEAR_FLOW, flowpack, flowpack_ok, redact, workspace, write_tree};

#[test]
fn check_prints_the_graph() {
    let out = flowpack_ok(&workspace(), &["check", "examples/hello/flow.yaml"]);
    insta::assert_snapshot!(out);
}

#[test]
fn check_reports_every_error_with_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[(
            "flow.yaml",
            "name: broken\nsteps:\n  start: {run: a, next: [train, evl]}\n  train: {run: t, next: eval}\n  eval: {run: e, join: true, next: end}\n  end: {run: r}\n",
        )],
    );
    let out = flowpack(tmp.path(), &["check", "flow.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_json_is_the_normalized_flow() {
    let out = flowpack_ok(
        &workspace(),
        &["check", "examples/hello/flow.yaml", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "hello");
    assert_eq!(v["parameters"]["times"]["default"], 2);
}

#[test]
fn push_defaults_to_the_store_of_the_current_folder_and_honours_flowpack_store() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            ("proj/flow.yaml", LINEAR_FLOW),
            ("proj/main.py", "print(1)\n"),
        ],
    );
    let out = flowpack_ok(
        tmp.path(),
        &["push", "proj/flow.yaml", "--version-name", "v1"],
    );
    // No store above: `./.flowpack` of the folder push ran in, not beside the flow file.
    assert!(
        tmp.path()
            .join(".flowpack/v1/flows/demo/versions/v1.json")
            .is_file()
    );
    assert!(!tmp.path().join("proj/.flowpack").exists());
    insta::assert_snapshot!(redact(&out, tmp.path()).replace(|c: char| c.is_ascii_digit(), "N"));

    let other = tmp.path().join("elsewhere");
    let out = std::process::Command::new(crate::util::BIN)
        .args(["push", "proj/flow.yaml", "--json"])
        .current_dir(tmp.path())
        .env("FLOWPACK_STORE", &other)
        .env("FLOWPACK_CACHE_DIR", tmp.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "package",
        "version",
        "uploaded_bytes",
        "reused_bytes",
        "layers",
    ] {
        assert!(v.get(key).is_some(), "--json lacks {key}: {v}");
    }
    assert!(other.join("v1/blobs").is_dir());
}

#[test]
fn bad_store_urls_and_versions_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", LINEAR_FLOW)]);
    let cases = [
        vec![
            "push",
            "flow.yaml",
            "--store",
            "s3://KEY:s3cr3tvalue@bucket/x",
        ],
        vec!["push", "flow.yaml", "--store", "ftp://host/x"],
        vec!["push", "flow.yaml", "--version-name", "../up"],
        vec!["fetch", "sha256:1234", "-o", "out"],
        vec!["fetch", "sha256:", "-o", "out"],
    ];
    let mut all = String::new();
    for args in cases {
        let out = flowpack(tmp.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("s3cr3tvalue"),
            "a credential was printed: {stderr}"
        );
        all.push_str(&format!("$ flowpack {}\n{stderr}", args.join(" ")));
    }
    let missing = "sha256:".to_string() + &"ab".repeat(32);
    let out = flowpack(tmp.path(), &["fetch", &missing, "-o", "out"]);
    all.push_str(&format!(
        "$ flowpack fetch sha256:abab… -o out\n{}",
        String::from_utf8_lossy(&out.stderr)
    ));
    insta::assert_snapshot!(redact(&all, tmp.path()));
}

#[test]
fn usage_errors_exit_2() {
    let out = flowpack(&workspace(), &["push"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_missing_bucket_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", LINEAR_FLOW)]);
    let url = crate::util::s3_store("x").replacen("s3://t", "s3://missing-t", 1);
    let out = flowpack(tmp.path(), &["push", "flow.yaml", "--store", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bucket or container") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

/// `flowpack runs | head -1`: a reader that goes away ends the command quietly with exit
/// code 0 (ripgrep's behaviour), never with a panic. The read end is closed before the
/// command writes anything, so every write fails.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", LINEAR_FLOW), ("main.py", "")]);
    flowpack_ok(tmp.path(), &["run", "flow.yaml"]);
    for args in [
        &["check", "flow.yaml"][..],
        &["check", "flow.yaml", "--json"],
        &["runs"],
        &["runs", "--json"],
    ] {
        let mut child = std::process::Command::new(crate::util::BIN)
            .args(args)
            .current_dir(tmp.path())
            .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
            .env_remove("FLOWPACK_STORE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {}: {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
