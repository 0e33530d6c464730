//! Crashes: `kill -9` of `flowpack step` and `flowpack push` at many points of their work,
//! against a real S3 server (moto). After every kill the store must be consistent — no
//! task committed without all its artifacts, no manifest without its layers, no version
//! pointer without its manifest — and the next try must succeed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowpack_core::Digest;
use flowpack_core::manifest::{Manifest, Version};
use flowpack_core::run::Artifacts;
use flowpack_core::store::{Store, layout};

use crate::util::{self, BIN, write_tree};

/// A small deterministic generator for kill times.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn fp(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .env_remove("FLOWPACK_STORE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs `cmd`, SIGKILLs it after `after` (unless it ended); true when it was killed.
fn kill_after(mut cmd: Command, after: Duration) -> bool {
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

/// Runs `cmd` to success; its output.
fn succeed(mut cmd: Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `push … --json` to success; the package it pushed.
fn package_of(push: Command) -> String {
    let report: serde_json::Value = serde_json::from_slice(&succeed(push).stdout).unwrap();
    report["package"].as_str().unwrap().to_string()
}

fn timed(cmd: Command) -> Duration {
    let started = Instant::now();
    succeed(cmd);
    started.elapsed()
}

/// Every committed attempt of the task (an `artifacts.json`) names only blobs the store has.
async fn check_task(store: &Store, flow: &str, run: &str, step: &str) -> (usize, usize) {
    let prefix = layout::task(flow, run, step, "0");
    let attempts = store.list_dirs(&prefix).await.unwrap();
    let mut committed = 0;
    for a in &attempts {
        let key = format!("{prefix}{a}/artifacts.json");
        if store.stat(&key).await.unwrap().is_none() {
            continue;
        }
        committed += 1;
        let ns: Artifacts = store.get_json(&key).await.unwrap();
        assert!(!ns.artifacts.is_empty(), "{key}");
        for (name, r) in &ns.artifacts {
            assert!(
                store.stat_blob(&r.digest).await.unwrap().is_some(),
                "{key} commits artifact {name} whose blob {} is missing",
                r.digest
            );
        }
    }
    (attempts.len(), committed)
}

// `cache: false`: each attempt of the same task really runs (the step cache would reuse
// the first committed one).
const STEP_FLOW: &str = "name: crash\ndefaults: {cache: false}\nsteps:\n  start: {run: python3 main.py, next: end}\n  end: {run: 'true'}\n";
/// Twelve artifacts, 3 MiB in all, incompressible: uploads that take a while.
const STEP_MAIN: &str = r#"import os
out = os.environ["FLOWPACK_OUTPUT_DIR"]
for i in range(12):
    open(os.path.join(out, f"a{i:02}"), "wb").write(os.urandom(256 * 1024))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_step_at_any_point_never_commits_a_task_without_its_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", STEP_FLOW), ("main.py", STEP_MAIN)]);
    let url = util::s3_store("crash");
    let store = Store::open(&url).unwrap();
    let package = package_of(fp(dir, &["push", "flow.yaml", "--store", &url, "--json"]));
    let step = |run: &str| {
        fp(
            dir,
            &[
                "step",
                "--store",
                &url,
                "--package",
                &package,
                "--run",
                run,
                "--step",
                "start",
            ],
        )
    };
    timed(step("r-cold")); // the first fetch fills the cache; time a warm attempt
    let full = timed(step("r-timing"));
    let mut rng = Lcg(42);
    let mut kills = 0;
    for _ in 0..20 {
        // Anywhere from the start to the end of a whole attempt.
        let after = Duration::from_millis(rng.below(full.as_millis() as u64));
        kills += kill_after(step("r-crash"), after) as u32;
        check_task(&store, "crash", "r-crash", "start").await;
        // show reads the run whatever state it was left in.
        succeed(fp(dir, &["show", "r-crash", "--store", &url, "--json"]));
    }
    assert!(
        kills >= 10,
        "only {kills} kills landed: the attempts are too fast to test"
    );
    // A new attempt after all that succeeds and commits everything.
    timed(step("r-crash"));
    let (attempts, committed) = check_task(&store, "crash", "r-crash", "start").await;
    // Kills before the claim leave no attempt; kills after the commit leave a committed one.
    assert!(
        committed >= 1 && attempts >= 2,
        "{attempts} attempts, {committed} committed"
    );
    let out = fp(dir, &["show", "r-crash", "--store", &url, "--json"])
        .output()
        .unwrap();
    let show: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let task = &show["tasks"][0];
    let attempts_shown = task["attempts"].as_array().unwrap();
    assert_eq!(
        attempts_shown.last().unwrap()["record"]["status"],
        "succeeded",
        "{task}"
    );
    // The killed attempts say so: lost (or succeeded, when the kill came after the commit).
    for a in &attempts_shown[..attempts_shown.len() - 1] {
        let status = a["record"]["status"].as_str().unwrap();
        assert!(status == "lost" || a["committed"] == true, "{a}");
    }
    eprintln!(
        "{kills} kills of 20 landed in {full:?}-long attempts: {attempts} attempts, {committed} committed"
    );
}

/// Every manifest in the store has its layers; every version pointer has its manifest.
async fn check_packages(store: &Store, flow: &str) -> (usize, usize) {
    let mut manifests = 0;
    for key in store.list("v1/blobs/").await.unwrap() {
        let Some(size) = store.stat(&key).await.unwrap() else {
            continue;
        };
        if size > 64 * 1024 {
            continue; // a layer, not a manifest
        }
        let d: Digest = format!("sha256:{}", key.rsplit('/').next().unwrap())
            .parse()
            .unwrap();
        let bytes = store.get_blob_bytes(&d, 1 << 20).await.unwrap();
        let Ok(m) = Manifest::parse(&bytes, d) else {
            continue;
        };
        manifests += 1;
        for layer in &m.layers {
            assert!(
                store.stat_blob(&layer.digest).await.unwrap().is_some(),
                "manifest {d} names layer {} which the store lacks",
                layer.digest
            );
        }
    }
    let mut versions = 0;
    for key in store.list(&layout::versions(flow)).await.unwrap() {
        let v: Version = store.get_json(&key).await.unwrap();
        assert!(
            store.stat_blob(&v.package).await.unwrap().is_some(),
            "version pointer {key} names manifest {} which the store lacks",
            v.package
        );
        versions += 1;
    }
    (manifests, versions)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_push_at_any_point_never_leaves_a_manifest_or_version_dangling() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // 12 MiB of incompressible code: a multipart layer upload.
    write_tree(dir, &[("flow.yaml", STEP_FLOW), ("main.py", STEP_MAIN)]);
    let mut rng = Lcg(7);
    let mut noise = vec![0u8; 64 * 1024];
    for f in 0..192 {
        for b in noise.iter_mut() {
            *b = rng.below(256) as u8;
        }
        std::fs::write(dir.join(format!("data{f:03}.bin")), &noise).unwrap();
    }
    let url = util::s3_store("crashpush");
    let store = Store::open(&url).unwrap();
    let push = |i: u32| {
        fp(
            dir,
            &[
                "push",
                "flow.yaml",
                "--store",
                &url,
                "--version-name",
                &format!("v{i}"),
                "--json",
            ],
        )
    };
    let full = timed(push(0));
    // Rounds until 8 kills landed mid-push (a kill drawn after a push ended lands nowhere:
    // how many do depends on this machine's timing, so the rounds are not fixed), at most 48.
    let mut kills = 0;
    for i in 1..=48u32 {
        if kills >= 8 {
            break;
        }
        // A new code layer each time (one file changes), so every push uploads again.
        std::fs::write(dir.join("data000.bin"), format!("round {i}")).unwrap();
        let after = Duration::from_millis(rng.below(full.as_millis() as u64 + 50));
        kills += kill_after(push(i), after) as u32;
        check_packages(&store, "crash").await;
    }
    assert!(
        kills >= 8,
        "only {kills} kills landed in 48 rounds: pushes are too fast to test"
    );
    // The next push completes, whatever the crashes left behind (blobs, parts, caches).
    let package = package_of(push(100));
    let (manifests, versions) = check_packages(&store, "crash").await;
    assert!(
        manifests >= 2 && versions >= 2,
        "{manifests} manifests, {versions} versions"
    );
    succeed(fp(dir, &["fetch", &package, "--store", &url, "-o", "out"]));
    eprintln!("{kills} kills of 16 landed in {full:?}-long pushes");
}

#[test]
fn a_killed_attempt_reads_as_running_while_its_heartbeat_is_fresh_then_as_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(
        dir,
        &[(
            "flow.yaml",
            "name: lost\nsteps:\n  start: {run: 'sleep 30', next: end}\n  end: {run: 'true'}\n",
        )],
    );
    let store = dir.join("store").display().to_string();
    let package = package_of(fp(dir, &["push", "flow.yaml", "--store", &store, "--json"]));
    let step = fp(
        dir,
        &[
            "step",
            "--store",
            &store,
            "--package",
            &package,
            "--run",
            "r1",
            "--step",
            "start",
        ],
    );
    assert!(kill_after(step, Duration::from_millis(1500)));
    let show = |dir: &Path| -> serde_json::Value {
        let out = fp(dir, &["show", "r1", "--store", &store, "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let fresh = show(dir);
    assert_eq!(fresh["status"], "running", "{fresh}");
    assert_eq!(
        fresh["tasks"][0]["attempts"][0]["record"]["status"],
        "running"
    );
    // An hour without a heartbeat: the runner is gone.
    let record = dir.join("store/v1/runs/lost/r1/start/0/0/task.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let hour_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    rec["heartbeat_at"] = hour_ago
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
        .into();
    std::fs::write(&record, serde_json::to_vec(&rec).unwrap()).unwrap();
    let stale = show(dir);
    assert_eq!(stale["status"], "failed", "{stale}");
    assert_eq!(stale["tasks"][0]["attempts"][0]["record"]["status"], "lost");
}
