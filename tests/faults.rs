//! Faulty storage: push, run and fetch through a proxy that injects the faults real object
//! stores produce (util::faults). They finish correctly after bounded retries, or fail with
//! a clear error after the bound; a corrupt or truncated body is never accepted.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::util::faults::{Fault, Proxy};
use crate::util::{self, flowpack, write_tree};

/// A flow that moves real bytes: a 3 MiB artifact (parts), small ones, a foreach and a join.
const FLOW: &str = r#"name: flaky
steps:
  start: {run: python3 main.py start, foreach: items, next: body}
  body: {run: python3 main.py body, next: join}
  join: {run: python3 main.py join, join: true, next: end}
  end: {run: python3 main.py end}
"#;

const MAIN: &str = r#"import hashlib, json, os, sys
step, out = sys.argv[1], os.environ["FLOWPACK_OUTPUT_DIR"]
inp = os.environ["FLOWPACK_INPUT_DIR"]
def put(name, data):
    open(os.path.join(out, name), "wb").write(data)
if step == "start":
    put("items", json.dumps([0, 1, 2]).encode())
    put("big", bytes(range(256)) * (3 * 4096))
if step == "body":
    i = int(os.environ["FLOWPACK_SPLIT_ITEM"])
    big = open(os.path.join(inp, "big"), "rb").read()
    put("part", hashlib.sha256(big + bytes([i])).hexdigest().encode())
if step == "join":
    parts = [open(os.path.join(inp, d, "part")).read() for d in sorted(os.listdir(inp)) if d.isdigit()]
    put("result", hashlib.sha256("".join(parts).encode()).hexdigest().encode())
if step == "end":
    print("result", open(os.path.join(inp, "result")).read())
"#;

/// The same bucket through the proxy and directly.
fn urls(proxy: &Proxy, direct: &str) -> String {
    let m = util::moto();
    direct.replace(
        &format!("http://127.0.0.1:{}", m.port),
        &format!("http://127.0.0.1:{}", proxy.port),
    )
}

fn moto() -> (String, u16) {
    ("127.0.0.1".into(), util::moto().port)
}

fn run(dir: &Path, store: &str) -> Output {
    flowpack(dir, &["run", "flow.yaml", "--store", store, "--json"])
}

/// The result the flow computes on a healthy store.
fn expected_result(dir: &Path) -> String {
    let store = util::s3_store("healthy");
    let out = run(dir, &store);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    artifact(dir, &store, summary["run"].as_str().unwrap())
}

fn artifact(dir: &Path, store: &str, run: &str) -> String {
    let out = flowpack(
        dir,
        &[
            "artifacts",
            "get",
            &format!("{run}/join/result"),
            "-o",
            "-",
            "--store",
            store,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn push_and_run_finish_correctly_through_a_store_that_fails_one_request_in_five() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let expected = expected_result(tmp.path());
    let direct = util::s3_store("flaky");
    let faults = [
        Fault::Error500,
        Fault::SlowDown,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Stall,
        Fault::Truncate,
    ];
    for seed in [1, 2] {
        let proxy = Proxy::start(moto(), 0.2, &faults, seed);
        let store = urls(&proxy, &direct);
        let out = run(tmp.path(), &store);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "seed {seed}: {} of {} requests faulted and the run failed:\n{stderr}",
            proxy.injected(),
            proxy.requests()
        );
        assert!(
            proxy.injected() >= 5,
            "seed {seed}: too few faults to mean anything"
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = summary["run"].as_str().unwrap();
        // Read back directly: every task committed once, the result is the healthy one.
        assert_eq!(artifact(tmp.path(), &direct, id), expected);
        let show = flowpack(tmp.path(), &["show", id, "--json", "--store", &direct]);
        let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(show["status"], "succeeded", "{show}");
        for t in show["tasks"].as_array().unwrap() {
            let committed = t["attempts"]
                .as_array()
                .unwrap()
                .iter()
                // Seed 2's run reuses seed 1's tasks from the step cache.
                .filter(|a| {
                    ["succeeded", "reused"].contains(&a["record"]["status"].as_str().unwrap())
                })
                .count();
            assert_eq!(committed, 1, "{t}");
        }
        eprintln!(
            "seed {seed}: {} faults in {} requests",
            proxy.injected(),
            proxy.requests()
        );
    }
}

#[test]
fn a_store_that_always_fails_gives_a_clear_error_after_a_bounded_number_of_tries() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let direct = util::s3_store("down");
    for (fault, cause) in [
        (Fault::SlowDown, "503"),
        (Fault::ResetBefore, "error sending request"),
    ] {
        let proxy = Proxy::start(moto(), 1.0, &[fault], 7);
        let store = urls(&proxy, &direct);
        let started = Instant::now();
        let out = flowpack(tmp.path(), &["push", "flow.yaml", "--store", &store]);
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        // The key, the cause, and that it retried.
        assert!(stderr.contains("down/v1/blobs/sha256/"), "{stderr}");
        assert!(stderr.contains(cause), "{fault:?}: {stderr}");
        assert!(stderr.contains("after 6 retries"), "{stderr}");
        // Bounded: backoff 0.1 s doubling (with jitter) for 6 retries, a few keys at once.
        assert!(took < Duration::from_secs(30), "{fault:?} took {took:?}");
        let per_key = 7;
        assert!(
            proxy.requests() <= per_key * 4,
            "{fault:?}: a retry storm: {} requests",
            proxy.requests()
        );
        assert!(!stderr.contains("flowpack-test-secret"), "{stderr}");
        eprintln!(
            "{fault:?}: failed after {took:?} and {} requests",
            proxy.requests()
        );
    }
}

#[test]
fn a_flipped_or_truncated_body_is_never_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let direct = util::s3_store("corrupt");
    let out = flowpack(
        tmp.path(),
        &["push", "flow.yaml", "--store", &direct, "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = report["package"].as_str().unwrap();
    for fault in [Fault::Flip, Fault::Truncate] {
        let proxy = Proxy::start(moto(), 1.0, &[fault], 3);
        let store = urls(&proxy, &direct);
        let dest = tmp.path().join(format!("out-{fault:?}"));
        let out = flowpack(
            tmp.path(),
            &[
                "fetch",
                package,
                "--store",
                &store,
                "-o",
                dest.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{fault:?} was accepted: {stderr}"
        );
        assert!(stderr.contains("v1/blobs/sha256/"), "{fault:?}: {stderr}");
        assert!(!dest.exists(), "{fault:?}: something was extracted");
        eprintln!("{fault:?}: {stderr}");
    }
}
