//! `flowpack client`, the reader the Python Client API talks to: JSON requests on stdin,
//! answers on stdout (docs/python.md). The Python side is tested in python/tests.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::util::{BIN, flowpack_ok, write_tree};

#[test]
fn client_answers_runs_logs_blobs_and_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(
        dir,
        &[(
            "flow.yaml",
            "name: demo\nsteps:\n  start: {run: 'echo hi; printf abc > $FLOWPACK_OUTPUT_DIR/x', next: end}\n  end: {run: echo bye}\n",
        )],
    );
    let run: serde_json::Value =
        serde_json::from_str(&flowpack_ok(dir, &["run", "flow.yaml", "--json"])).unwrap();
    let id = run["run"].as_str().unwrap();
    let show: serde_json::Value =
        serde_json::from_str(&flowpack_ok(dir, &["show", id, "--json"])).unwrap();
    let x = &show["tasks"][0]["artifacts"]["x"];
    assert!(show["finished_at"].as_str().is_some(), "{show}");

    let requests = [
        serde_json::json!({"op": "flows"}),
        serde_json::json!({"op": "runs", "flow": "demo"}),
        serde_json::json!({"op": "logs", "run": format!("demo/{id}"), "task": "start/0", "attempt": 0}),
        serde_json::json!({"op": "blob", "digest": x["digest"], "size": x["size"]}),
        serde_json::json!({"op": "run", "run": "demo/local-nope"}),
        serde_json::json!({"op": "guess"}),
    ];
    let mut child = Command::new(BIN)
        .args(["client", "--store", ".flowpack"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for r in &requests {
        writeln!(stdin, "{r}").unwrap();
    }
    drop(stdin); // closing stdin ends the server
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = out.stdout;
    let mut lines = Vec::new();
    let mut rest = &text[..];
    while let Some(n) = rest.iter().position(|b| *b == b'\n') {
        let line: serde_json::Value = serde_json::from_slice(&rest[..n]).unwrap();
        rest = &rest[n + 1..];
        if let Some(size) = line["ok"]["size"].as_u64() {
            assert_eq!(&rest[..size as usize], b"abc");
            rest = &rest[size as usize..];
        }
        lines.push(line);
    }
    assert_eq!(lines.len(), requests.len(), "{lines:?}");
    assert_eq!(lines[0]["ok"], serde_json::json!(["demo"]));
    assert_eq!(lines[1]["ok"][0]["record"]["run"], id);
    assert_eq!(lines[1]["ok"][0]["status"], "succeeded");
    assert_eq!(lines[2]["ok"][0]["text"], "hi");
    assert_eq!(lines[2]["ok"][0]["stream"], "stdout");
    assert_eq!(lines[3]["ok"]["size"], 3);
    assert_eq!(lines[4]["not_found"], true, "{}", lines[4]);
    assert!(lines[4]["error"].as_str().unwrap().contains("local-nope"));
    assert_eq!(lines[5]["not_found"], false);
    assert!(
        lines[5]["error"]
            .as_str()
            .unwrap()
            .contains("bad client request")
    );
}
