//! Load: a local dry-run with 200 concurrent tasks (64 at once) against the S3 test server.
//! Every task commits, the join sees all 200 outputs, and the memory of `flowpack run`
//! (sampled from /proc while it works) stays bounded.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, BIN, write_tree};

const WIDTH: usize = 200;

const FLOW: &str = r#"name: load
max_workers: 64
steps:
  start: {run: python3 main.py start, foreach: items, next: body}
  body: {run: [sh, -c, 'echo "$FLOWPACK_SPLIT_ITEM" > "$FLOWPACK_OUTPUT_DIR/n"; echo "body $FLOWPACK_SPLIT_ITEM"'], next: join}
  join: {run: python3 main.py join, join: true, next: end}
  end: {run: 'true'}
"#;

const MAIN: &str = r#"import json, os, sys
out, inp = os.environ["FLOWPACK_OUTPUT_DIR"], os.environ["FLOWPACK_INPUT_DIR"]
if sys.argv[1] == "start":
    json.dump(list(range(200)), open(os.path.join(out, "items"), "w"))
else:
    got = sorted(int(open(os.path.join(inp, d, "n")).read()) for d in os.listdir(inp) if d.isdigit())
    assert got == list(range(200)), got
    open(os.path.join(out, "sum"), "w").write(str(sum(got)))
"#;

/// The peak resident set of a live process, in KiB (VmHWM).
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn two_hundred_tasks_64_at_once_on_s3_all_commit_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let store = util::s3_store("load");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["run", "flow.yaml", "--json", "--store", &store])
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    // The peak of the run itself, read until it exits (VmHWM only grows).
    let sampler = std::thread::spawn(move || {
        while let Some(kib) = peak_kib(pid) {
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let stderr = {
        let mut s = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut s).unwrap();
        s
    };
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let peak = sampler.join().unwrap();
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tasks = summary["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), WIDTH + 3);
    assert!(
        tasks.iter().all(|t| t["status"] == "succeeded"),
        "{summary}"
    );
    // Every task's output came back through the store: the join checked all 200.
    let id = summary["run"].as_str().unwrap();
    let out = Command::new(BIN)
        .args([
            "artifacts",
            "get",
            &format!("{id}/join/sum"),
            "-o",
            "-",
            "--store",
            &store,
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        (0..WIDTH).sum::<usize>().to_string()
    );
    // And the store agrees: every task of the run has a committed attempt.
    let show = Command::new(BIN)
        .args(["show", id, "--json", "--store", &store])
        .current_dir(dir)
        .output()
        .unwrap();
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let shown = show["tasks"].as_array().unwrap();
    assert_eq!(shown.len(), WIDTH + 3);
    for t in shown {
        assert!(
            t["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["committed"] == true),
            "{t}"
        );
    }
    assert!(peak > 0, "no memory sample");
    assert!(peak < 100 * 1024, "flowpack run peaked at {peak} KiB");
    eprintln!(
        "{} tasks in {took:?}; flowpack run peak RSS {:.1} MB",
        WIDTH + 3,
        peak as f64 / 1024.0
    );
}
