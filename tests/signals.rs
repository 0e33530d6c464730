//! Signals and the step's lifecycle: a stop signal (TERM, INT, HUP) in every phase of
//! `flowpack step` ends the task with its final record and its logs in the store; `flowpack
//! run` stops its steps and exits; no step's command outlives them. Also what the step
//! checks before it writes anything, and parameters too large for the child's environment.
//!
//! To pin a task in one phase, a [`Gate`] — a proxy in front of moto — holds one chosen
//! request (the manifest's GET, a layer's, the commit's PUT…): a store that stops answering
//! at that point. Real slowness, no test hook in the binary.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::runs::{json, push, show, step_cmd, task};
use crate::util::faults::read_request;
use crate::util::{self, BIN, flowpack_ok, measured, write_tree};

/// A proxy to moto that holds the `nth` request with `method` whose path contains
/// `pattern` until released (or dropped); every other request passes.
struct Gate {
    port: u16,
    inner: Arc<GateInner>,
}

struct GateInner {
    method: String,
    pattern: String,
    nth: usize,
    state: Mutex<(usize, bool, bool)>, // (matches seen, one is held, released)
    changed: Condvar,
}

impl Gate {
    fn start(method: &str, pattern: &str, nth: usize) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(GateInner {
            method: method.into(),
            pattern: pattern.into(),
            nth,
            state: Mutex::new((0, false, false)),
            changed: Condvar::new(),
        });
        let gate = inner.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let gate = gate.clone();
                std::thread::spawn(move || {
                    let _ = forward(conn, &gate);
                });
            }
        });
        Gate { port, inner }
    }

    /// `direct` (a store URL on moto) through the gate.
    fn url(&self, direct: &str) -> String {
        let m = util::moto().port;
        direct.replace(
            &format!("127.0.0.1:{m}"),
            &format!("127.0.0.1:{}", self.port),
        )
    }

    /// Waits until the request is held: the task is in the phase.
    fn wait_held(&self) {
        let state = self.inner.state.lock().unwrap();
        let (_state, waited) = self
            .inner
            .changed
            .wait_timeout_while(state, Duration::from_secs(60), |s| !s.1)
            .unwrap();
        assert!(
            !waited.timed_out(),
            "no {} request for '{}' came",
            self.inner.method,
            self.inner.pattern
        );
    }

    fn release(&self) {
        self.inner.state.lock().unwrap().2 = true;
        self.inner.changed.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.release();
    }
}

impl GateInner {
    /// Returns when the request may go on: at once, or when released.
    fn pass(&self, method: &str, path: &str) {
        let mut state = self.state.lock().unwrap();
        if method != self.method || !path.contains(&self.pattern) {
            return;
        }
        state.0 += 1;
        if state.0 != self.nth {
            return;
        }
        state.1 = true;
        self.changed.notify_all();
        let _released = self.changed.wait_while(state, |s| !s.2).unwrap();
    }
}

/// One request (the client gets `Connection: close`), through the gate to moto.
fn forward(client: TcpStream, gate: &GateInner) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(request) = read_request(&mut reader)? else {
        return Ok(());
    };
    let (method, path) = request.method_and_path();
    gate.pass(method, path);
    let mut up = TcpStream::connect(("127.0.0.1", util::moto().port))?;
    up.write_all(&request.head)?;
    up.write_all(&request.body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    (&client).write_all(&response)
}

/// The keys of the store `url` (a bucket on moto) under `under`, listed by an unsigned
/// request (moto lets anyone list; reading objects needs flowpack).
fn keys(url: &str, under: &str) -> Vec<String> {
    let rest = url.strip_prefix("s3://").unwrap();
    let (bucket, rest) = rest.split_once('/').unwrap();
    let prefix = rest.split('?').next().unwrap();
    let m = util::moto();
    let mut s = TcpStream::connect((m.host.as_str(), m.port)).unwrap();
    write!(
        s,
        "GET /{bucket}?list-type=2&prefix={prefix}/{under} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        m.host, m.port
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "list: {resp}");
    resp.split("<Key>")
        .skip(1)
        .map(|k| k.split("</Key>").next().unwrap().to_string())
        .collect()
}

/// The output of `child`, which must end within `limit` (else it is killed, and the test
/// fails).
fn wait_within(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this test started; no memory is involved.
    unsafe { libc::kill(pid as i32, signal) };
}

/// Whether process `pid` is gone (or a zombie nobody waits for).
fn gone(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
}

/// A start step that writes an artifact (new bytes in each attempt), and an end step that
/// reads it.
// `cache: false`: attempt 1 of a task runs again (the step cache would reuse attempt 0);
// the reuse phase has its own case with `CACHED_FLOW`.
const FLOW: &str = "name: sig\ndefaults: {cache: false}\nsteps:\n  start: {run: 'echo $FLOWPACK_ATTEMPT > $FLOWPACK_OUTPUT_DIR/art; echo wrote', next: end}\n  end: {run: 'cat $FLOWPACK_INPUT_DIR/art'}\n";
/// `FLOW` with the step cache on: its tasks look the cache up in the reuse phase.
const CACHED_FLOW: &str = "name: sig\nsteps:\n  start: {run: 'echo $FLOWPACK_ATTEMPT > $FLOWPACK_OUTPUT_DIR/art; echo wrote', next: end}\n  end: {run: 'cat $FLOWPACK_INPUT_DIR/art'}\n";

/// Which request the gate holds.
enum Held {
    /// The package's manifest.
    Manifest,
    /// The package's code layer.
    CodeLayer,
    /// The `nth` request with this method whose key contains this text.
    Key(&'static str, &'static str, usize),
}

struct Case {
    /// The phase the signal lands in.
    phase: &'static str,
    signal: i32,
    step: &'static str,
    held: Held,
    /// Whether the held request is let through after the signal: a write that must not
    /// be cut off.
    release: bool,
    /// The final record's status and the exit code (no status: no record at all).
    status: Option<&'static str>,
    code: i32,
    /// A line the task's logs must have.
    logged: &'static str,
}

#[test]
fn a_stop_signal_in_every_phase_ends_the_task_with_its_record_and_logs() {
    use libc::{SIGHUP, SIGINT, SIGTERM};
    let cases = [
        Case {
            phase: "claim (before the record is created)",
            signal: SIGTERM,
            step: "start",
            held: Held::Manifest,
            release: false,
            status: None,
            code: 143,
            logged: "",
        },
        Case {
            phase: "claim (the record's create under way)",
            signal: SIGHUP,
            step: "start",
            held: Held::Key("PUT", "/start/0/1/task.json", 1),
            release: true,
            status: Some("terminated"),
            code: 143,
            logged: "SIGHUP received during claim: stopped, nothing committed",
        },
        Case {
            phase: "fetch",
            signal: SIGTERM,
            step: "start",
            held: Held::CodeLayer,
            release: false,
            status: Some("terminated"),
            code: 143,
            logged: "SIGTERM received during fetch: stopped, nothing committed",
        },
        Case {
            phase: "inputs",
            signal: SIGHUP,
            step: "end",
            held: Held::Key("GET", "/start/0/0/artifacts.json", 1),
            release: false,
            status: Some("terminated"),
            code: 143,
            logged: "SIGHUP received during inputs: stopped, nothing committed",
        },
        Case {
            phase: "outputs",
            signal: SIGINT,
            step: "start",
            held: Held::Key("PUT", "/v1/blobs/", 1),
            release: false,
            status: Some("terminated"),
            code: 143,
            logged: "SIGINT received during outputs: stopped, nothing committed",
        },
        Case {
            phase: "commit",
            signal: SIGHUP,
            step: "start",
            held: Held::Key("PUT", "/start/0/1/artifacts.json", 1),
            release: true,
            status: Some("succeeded"),
            code: 0,
            logged: "SIGHUP received once the commit had started: the outputs are committed",
        },
        Case {
            phase: "report",
            signal: SIGTERM,
            step: "start",
            held: Held::Key("PUT", "/start/0/1/task.json", 2),
            release: true,
            status: Some("succeeded"),
            code: 0,
            logged: "stdout wrote",
        },
    ];
    for case in &cases {
        stop_in(case);
    }
}

fn stop_in(case: &Case) {
    stop_in_flow(case, FLOW);
}

#[test]
fn a_stop_signal_in_the_reuse_phase_ends_the_task_with_its_record_and_logs() {
    // `end`'s cache lookup held: the signal lands in the reuse phase.
    stop_in_flow(
        &Case {
            phase: "reuse",
            signal: libc::SIGHUP,
            step: "end",
            held: Held::Key("GET", "/v1/cache/", 1),
            release: false,
            status: Some("terminated"),
            code: 143,
            logged: "SIGHUP received during reuse: stopped, nothing committed",
        },
        CACHED_FLOW,
    );
}

fn stop_in_flow(case: &Case, flow: &str) {
    let what = case.phase;
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", flow)]);
    let direct = util::s3_store("sig");
    let pushed = json(&flowpack_ok(
        tmp.path(),
        &["push", "flow.yaml", "--store", &direct, "--json"],
    ));
    let package = pushed["package"].as_str().unwrap();
    // `start` once: the run exists (its record is written by `start`), and `end` has inputs.
    let out = step_cmd(tmp.path(), &direct, package, "local-sig", "start", &[])
        .output()
        .unwrap();
    assert!(out.status.success(), "{what}: the first start failed");
    let (parents, attempt) = match case.step {
        "end" => (vec!["--parent", "start/0"], 0),
        _ => (vec![], 1),
    };
    let hex = |d: &serde_json::Value| {
        d.as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string()
    };
    let gate = match &case.held {
        Held::Manifest => Gate::start("GET", &hex(&pushed["package"]), 1),
        Held::CodeLayer => Gate::start("GET", &hex(&pushed["layers"][0]["digest"]), 1),
        Held::Key(method, key, nth) => Gate::start(method, key, *nth),
    };
    // A fresh cache: the step fetches everything through the gate.
    let child = step_cmd(
        tmp.path(),
        &gate.url(&direct),
        package,
        "local-sig",
        case.step,
        &parents,
    )
    .env("FLOWPACK_CACHE_DIR", tmp.path().join("cold-cache"))
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    gate.wait_held();
    let signalled = Instant::now();
    kill(child.id(), case.signal);
    if case.release {
        std::thread::sleep(Duration::from_millis(300));
        gate.release();
    }
    let out = wait_within(child, Duration::from_secs(5), what);
    eprintln!("{what}: ended {:?} after the signal", signalled.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(case.code), "{what}: {stderr}");

    let store = ["--store", direct.as_str()];
    let info = show(tmp.path(), "sig/local-sig", &store);
    let attempts = task(&info, &format!("{}/0", case.step))["attempts"]
        .as_array()
        .unwrap()
        .clone();
    match case.status {
        None => {
            assert_eq!(attempts.len(), attempt, "{what}: an attempt was claimed");
            let written = keys(
                &direct,
                &format!("v1/runs/sig/local-sig/{}/0/{attempt}/", case.step),
            );
            assert!(written.is_empty(), "{what}: {written:?}");
            assert!(
                stderr
                    .contains("received before the attempt was claimed: stopped, nothing written"),
                "{what}: {stderr}"
            );
        }
        Some(status) => {
            let a = &attempts[attempt];
            let record = &a["record"];
            assert_eq!(record["status"], status, "{what}: {record:#}");
            assert_eq!(record["exit_code"], case.code, "{what}");
            assert!(record["finished_at"].is_string(), "{what}");
            assert_eq!(a["committed"], status == "succeeded", "{what}: {a:#}");
            let logs = flowpack_ok(
                tmp.path(),
                &[
                    "logs",
                    &format!("local-sig/{}", case.step),
                    "--attempt",
                    &attempt.to_string(),
                    "--store",
                    &direct,
                ],
            );
            assert!(logs.contains(case.logged), "{what}: {logs}");
        }
    }
}

/// A step whose command starts a `sleep` (its pid in `pidfile`) and traps TERM or not.
fn sleeper(pidfile: &Path, trap: &str) -> String {
    format!(
        "name: sig\nsteps:\n  start: {{run: 'echo started; {trap}; sleep 30 & echo $! > {}; wait; echo never', next: end}}\n  end: {{run: 'true'}}\n",
        pidfile.display()
    )
}

fn wait_for_pid(pidfile: &Path) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(pid) = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the step's command did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_signal_while_the_child_runs_stops_its_process_group_within_the_grace_period() {
    // TERM to a child that stops on it, HUP (a closed terminal) likewise, and TERM to one
    // that ignores it (killed after the grace period).
    for (signal, trap, grace, says) in [
        (
            libc::SIGTERM,
            "trap \"echo got TERM; kill $!; exit 7\" TERM",
            5,
            "got TERM",
        ),
        (
            libc::SIGHUP,
            "trap \"echo got TERM; kill $!; exit 7\" TERM",
            5,
            "SIGHUP received: stopping the step",
        ),
        (
            libc::SIGTERM,
            "trap \"\" TERM",
            2,
            "did not stop within 2s: killing it",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        write_tree(tmp.path(), &[("flow.yaml", &sleeper(&pidfile, trap))]);
        let package = push(tmp.path());
        let grace_s = grace.to_string();
        let mut child = step_cmd(
            tmp.path(),
            ".flowpack",
            &package,
            "local-sig",
            "start",
            &["--grace", &grace_s],
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
        let sleep_pid = wait_for_pid(&pidfile);
        let started = Instant::now();
        kill(child.id(), signal);
        let status = child.wait().unwrap();
        let took = started.elapsed();
        let what = format!("signal {signal}, trap {trap}");
        assert!(
            took < Duration::from_secs(grace + 2),
            "{what}: stopped within the grace period of {grace}s: took {took:?}"
        );
        assert_eq!(status.code(), Some(143), "{what}");
        assert!(gone(sleep_pid), "{what}: the step's command outlived it");
        let info = show(tmp.path(), "sig/local-sig", &[]);
        let rec = &task(&info, "start/0")["attempts"][0]["record"];
        assert_eq!(rec["status"], "terminated", "{what}");
        assert!(rec["finished_at"].is_string(), "{what}");
        let logs = flowpack_ok(tmp.path(), &["logs", "local-sig/start"]);
        assert!(
            logs.contains("stdout started") && logs.contains(says) && !logs.contains("never"),
            "{what}: {logs}"
        );
    }
}

#[test]
fn flowpack_run_stops_its_steps_on_term_int_and_a_closed_terminal() {
    // TERM and INT to `flowpack run` alone (kill PID: its steps do not get the signal), and
    // HUP to its whole process group (what a closed terminal sends). `run` exits 128 + the
    // signal, as a shell reports a command a signal stopped.
    for (signal, group) in [
        (libc::SIGTERM, false),
        (libc::SIGINT, false),
        (libc::SIGHUP, true),
    ] {
        let what = format!(
            "signal {signal} to the {}",
            if group { "group" } else { "run" }
        );
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("pid");
        write_tree(tmp.path(), &[("flow.yaml", &sleeper(&pidfile, "true"))]);
        let run = Command::new(BIN)
            .args(["run", "flow.yaml", "--json"])
            .current_dir(tmp.path())
            .env("FLOWPACK_CACHE_DIR", tmp.path().join(".test-cache"))
            .env_remove("FLOWPACK_STORE")
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let sleep_pid = wait_for_pid(&pidfile);
        let signalled = Instant::now();
        if group {
            // SAFETY: as in `kill`, to the process group this test created.
            unsafe { libc::kill(-(run.id() as i32), signal) };
        } else {
            kill(run.id(), signal);
        }
        let out = wait_within(run, Duration::from_secs(5), &what);
        eprintln!("{what}: ended {:?} after the signal", signalled.elapsed());
        assert!(
            gone(sleep_pid),
            "{what}: the step's command outlived the run"
        );
        assert_eq!(out.status.code(), Some(128 + signal), "{what}");
        let summary = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(
            summary["tasks"][0]["status"], "terminated",
            "{what}: {summary:#}"
        );
        let info = show(tmp.path(), summary["run"].as_str().unwrap(), &[]);
        let rec = &task(&info, "start/0")["attempts"][0]["record"];
        assert_eq!(rec["status"], "terminated", "{what}: {rec:#}");
        assert_eq!(rec["exit_code"], 143, "{what}");
        assert_eq!(
            summary["tasks"].as_array().unwrap().len(),
            1,
            "{what}: {summary:#}"
        );
    }
}

#[test]
fn a_step_or_parent_not_in_the_flow_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", FLOW)]);
    let package = push(tmp.path());
    let files = || {
        let mut all: Vec<_> = util::walk(&tmp.path().join(".flowpack"));
        all.sort();
        all
    };
    let before = files();
    for (step, extra, says) in [
        ("../../x", vec![], "flow 'sig' has no step '../../x'"),
        ("nope", vec![], "flow 'sig' has no step 'nope'"),
        (
            "end",
            vec!["--parent", "nope/0"],
            "flow 'sig' has no step 'nope'",
        ),
        // Refused as it parses (names in keys), or else by the claim.
        ("end", vec!["--parent", "../0"], "'.."),
    ] {
        let out = step_cmd(tmp.path(), ".flowpack", &package, "local-x", step, &extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{step}: {stderr}");
        assert!(stderr.contains(says), "{step}: {stderr}");
    }
    assert_eq!(files(), before, "the store changed");
}

#[test]
fn parameters_of_megabytes_reach_the_child_through_the_params_file() {
    // A 4 MiB default (over the 32 KiB a variable may hold) and twenty of 20 KB (over the
    // 256 KiB all variables may hold together): before, "Argument list too long".
    let big = 4 << 20;
    let mut flow = format!(
        "name: params\nparameters:\n  blob: {{type: string, default: '{}'}}\n",
        "x".repeat(big)
    );
    for i in 0..20 {
        flow.push_str(&format!(
            "  p{i:02}: {{type: string, default: '{}'}}\n",
            "y".repeat(20_000)
        ));
    }
    flow.push_str(
        // The test's Python directly (a version manager's shim costs half a second).
        &format!(
            "  small: 7\nsteps:\n  start: {{run: ['{}', main.py], next: end}}\n  end: {{run: 'true'}}\n",
            util::find_python().display()
        ),
    );
    let main = r#"import json, os
p = json.load(open(os.environ["FLOWPACK_PARAMS"]))
env = [k for k in os.environ if k.startswith("FLOWPACK_PARAM_")]
print("blob", len(p["blob"]), "in env:", "FLOWPACK_PARAM_BLOB" in os.environ)
print("params", len(p), "in env:", len(env), "small:", os.environ["FLOWPACK_PARAM_SMALL"])
"#;
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &[("flow.yaml", &flow), ("main.py", main)]);

    let run = json(&flowpack_ok(tmp.path(), &["run", "flow.yaml", "--json"]))["run"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = flowpack_ok(tmp.path(), &["logs", &format!("{run}/start")]);
    // 13 of the 20 KB values fit the 256 KiB (20,020 bytes each with their names).
    for line in [
        &format!("stdout blob {big} in env: False"),
        "stdout params 22 in env: 14 small: 7",
        "parameter 'blob' is not in $FLOWPACK_PARAM_BLOB: it is longer than 32768 bytes; read it from $FLOWPACK_PARAMS",
        "parameter 'p13' is not in $FLOWPACK_PARAM_P13: the parameter variables would pass 262144 bytes in all",
    ] {
        assert!(logs.contains(line), "{line}\n{logs}");
    }

    // The step alone, with a cold cache: bounded memory and time.
    let package = push(tmp.path());
    let m = measured(
        step_cmd(tmp.path(), ".flowpack", &package, "local-big", "start", &[])
            .env("FLOWPACK_CACHE_DIR", tmp.path().join("cold-cache")),
    );
    assert!(
        m.output.status.success(),
        "{}",
        String::from_utf8_lossy(&m.output.stderr)
    );
    let mb = m.peak_rss as f64 / 1e6;
    eprintln!(
        "step with a 4 MiB parameter: {mb:.1} MB peak RSS, {:?}",
        m.elapsed
    );
    assert!(mb < 100.0, "peak RSS {mb:.1} MB");
    assert!(m.elapsed < Duration::from_secs(5), "took {:?}", m.elapsed);
}
