//! The images and real in-container runs: `images/build.sh` builds the runtime and python
//! images into a podman storage private to the tests, KFP's local orchestrator runs a
//! compiled flow with every task in a podman container (through podman's Docker API), and
//! `flowpack run --containers` runs flows in containers through the podman CLI.
//!
//! Podman here needs the settings of `../shared/containers/containers.conf` (runc, low
//! ulimits; a dev-only resource of the team beside the repository); the tests write their
//! own copies and never touch podman's global config.
//! tests/run.sh installs podman, runc and debootstrap.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::util::{self, BIN, write_tree};

const PYTHON_IMAGE: &str = "localhost/flowpack-python:3.11";
const RUNTIME_IMAGE: &str = "localhost/flowpack-runtime:latest";

/// podman settings for this machine: runc (crun refuses its hybrid cgroups), ulimits that
/// need no CAP_SYS_RESOURCE, the host network for `podman run`.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"#;

/// podman with the tests' own storage and config, the images built, and a Docker-API
/// service for KFP's local orchestrator.
struct Podman {
    /// CONTAINERS_CONF for the CLI.
    cli_conf: PathBuf,
    /// CONTAINERS_STORAGE_CONF.
    storage_conf: PathBuf,
    /// The Docker-API socket.
    socket: PathBuf,
    /// What images/build.sh printed (sizes).
    built: String,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.cli_conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf);
        c
    }

    fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run podman")
    }

    fn label(&self, image: &str, label: &str) -> String {
        let out = self.output(&[
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{label}\"}}}}"),
            image,
        ]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

fn podman() -> &'static Podman {
    static PODMAN: OnceLock<Podman> = OnceLock::new();
    PODMAN.get_or_init(|| {
        let ws = util::workspace();
        // Image storage survives test runs (layers are reused); run state does not.
        let dir = ws.join("target/podman-test");
        let run = std::env::temp_dir().join(format!("flowpack-podman-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let storage_conf = dir.join("storage.conf");
        std::fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                dir.join("storage").display(),
                run.display()
            ),
        )
        .unwrap();
        let cli_conf = dir.join("containers.conf");
        std::fs::write(&cli_conf, CONTAINERS_CONF).unwrap();
        // The Docker-API service gives its containers the S3 test credentials, as a cluster
        // would through a secret or workload identity.
        let api_conf = dir.join("containers-api.conf");
        std::fs::write(
            &api_conf,
            CONTAINERS_CONF.replace(
                "[engine]",
                &format!(
                    "env = [\"AWS_ACCESS_KEY_ID={}\", \"AWS_SECRET_ACCESS_KEY={}\"]\n[engine]",
                    std::env::var("AWS_ACCESS_KEY_ID").unwrap(),
                    std::env::var("AWS_SECRET_ACCESS_KEY").unwrap()
                ),
            ),
        )
        .unwrap();

        // The static binary gets its own target folder: `cargo test` holds the lock of ours.
        let out = Command::new("bash")
            .arg(ws.join("images/build.sh"))
            .env("CONTAINERS_CONF", &cli_conf)
            .env("CONTAINERS_STORAGE_CONF", &storage_conf)
            .env("CARGO_TARGET_DIR", ws.join("target/images"))
            .output()
            .expect("run images/build.sh");
        let built = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "images/build.sh failed (tests/run.sh installs podman, runc and debootstrap):\n{built}{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let socket = std::env::temp_dir().join(format!("flowpack-podman-{}.sock", std::process::id()));
        let url = format!("unix://{}", socket.display());
        let ready = socket.clone();
        util::start_server_with_env(
            "podman-api",
            &["podman".as_ref(), "system".as_ref(), "service".as_ref(), "--time=0".as_ref(), url.as_ref()],
            &[
                ("CONTAINERS_CONF", api_conf.as_os_str()),
                ("CONTAINERS_STORAGE_CONF", storage_conf.as_os_str()),
            ],
            move || ready.exists(),
        );
        Podman {
            cli_conf,
            storage_conf,
            socket,
            built,
        }
    })
}

/// `flowpack ARGS` in `dir` with the tests' podman settings; returns the whole output.
fn fp(dir: &Path, store: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let p = podman();
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .env("FLOWPACK_STORE", store)
        .env("CONTAINERS_CONF", &p.cli_conf)
        .env("CONTAINERS_STORAGE_CONF", &p.storage_conf)
        .env("FLOWPACK_UV", util::find_uv())
        .envs(envs.iter().copied())
        .output()
        .expect("run flowpack")
}

fn fp_ok(dir: &Path, store: &str, args: &[&str]) -> String {
    let out = fp(dir, store, args, &[]);
    assert!(
        out.status.success(),
        "flowpack {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn the_images_are_built_labelled_and_non_root() {
    let p = podman();
    eprintln!("{}", p.built);
    for image in [RUNTIME_IMAGE, PYTHON_IMAGE] {
        assert_eq!(
            p.label(image, "org.opencontainers.image.version"),
            env!("CARGO_PKG_VERSION")
        );
        assert!(!p.label(image, "org.opencontainers.image.source").is_empty());
        let digest = p.label(image, "dev.flowpack.binary.sha256");
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{image}: {digest}"
        );
    }
    // Both images carry the very same binary.
    assert_eq!(
        p.label(RUNTIME_IMAGE, "dev.flowpack.binary.sha256"),
        p.label(PYTHON_IMAGE, "dev.flowpack.binary.sha256")
    );
    let out = p.output(&["run", "--rm", RUNTIME_IMAGE, "flowpack", "--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("flowpack {}", env!("CARGO_PKG_VERSION"))
    );
    // FROM scratch: nothing but flowpack (no shell to run).
    assert!(
        !p.output(&["run", "--rm", RUNTIME_IMAGE, "sh", "-c", "true"])
            .status
            .success()
    );
    let user = p.output(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}}",
        RUNTIME_IMAGE,
    ]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "65532:65532");
    let out = p.output(&[
        "run",
        "--rm",
        PYTHON_IMAGE,
        "python3",
        "-c",
        "import os, sys, ssl; print(os.getuid(), sys.version_info[:2], os.path.exists(ssl.get_default_verify_paths().cafile or ''))",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "65532 (3, 11) True",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kfps_orchestrator_runs_the_train_example_with_every_task_in_a_container() {
    let p = podman();
    let tmp = tempfile::tempdir().unwrap();
    for f in ["flow.yaml", "train.py", "requirements.txt"] {
        std::fs::copy(
            util::workspace().join("examples/train").join(f),
            tmp.path().join(f),
        )
        .unwrap();
    }
    // One forest at a time: two containers starting at once on podman's bridge (CNI, runc)
    // lost their connection to the host for ~37 s now and then (seen in CI).
    let mut flow = std::fs::read_to_string(tmp.path().join("flow.yaml")).unwrap();
    flow.push_str("max_workers: 1\n");
    std::fs::write(tmp.path().join("flow.yaml"), flow).unwrap();
    // Containers on podman's bridge reach the store by this machine's address.
    let store = util::s3_store_on(util::moto_routable(), "kfp");
    fp_ok(
        tmp.path(),
        &store,
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    let yaml = std::fs::read_to_string(tmp.path().join("pipeline.yaml")).unwrap();
    assert!(yaml.contains(&format!("image: {PYTHON_IMAGE}")), "{yaml}");

    // kfp.local mounts this folder into each container, whose user (65532) writes there.
    let root = tmp.path().join("kfp-local");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = Command::new(crate::kfp::kfp_python())
        .arg(crate::kfp::shared().join("local/run_local.py"))
        .arg("pipeline.yaml")
        .args(["--runner", "podman", "--root"])
        .arg(&root)
        .arg("seed=7")
        .current_dir(tmp.path())
        .env("DOCKER_HOST", format!("unix://{}", p.socket.display()))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("wins with accuracy") && !text.contains("FAILURE"),
        "kfp.local with podman failed:\n{text}"
    );

    // Everything is in the store: the run, every task's record, artifacts and logs.
    let runs: serde_json::Value =
        serde_json::from_str(&fp_ok(tmp.path(), &store, &["runs", "--json"])).unwrap();
    let run = &runs[0];
    assert_eq!(
        (run["status"].as_str(), run["tasks"].as_u64()),
        (Some("succeeded"), Some(10)),
        "{runs}"
    );
    let id = run["run"].as_str().unwrap();
    assert!(id.starts_with("kfp-"), "{id}");
    let show: serde_json::Value =
        serde_json::from_str(&fp_ok(tmp.path(), &store, &["show", id, "--json"])).unwrap();
    let me = hostname();
    for task in show["tasks"].as_array().unwrap() {
        let record = &task["attempts"].as_array().unwrap().last().unwrap()["record"];
        assert_eq!(record["status"], "succeeded", "{task}");
        assert_eq!(record["image"], PYTHON_IMAGE, "{task}");
        // A container on the bridge has its own host name (its id), not this machine's.
        assert_ne!(record["host"].as_str(), Some(me.as_str()), "{task}");
    }
    let winner = fp_ok(
        tmp.path(),
        &store,
        &["artifacts", "get", &format!("{id}/pick/winner"), "-o", "-"],
    );
    assert!(
        ["baseline", "best_forest"].contains(&winner.as_str()),
        "{winner}"
    );
    let logs = fp_ok(tmp.path(), &store, &["logs", &format!("{id}/end/0")]);
    assert!(logs.contains("wins with accuracy"), "{logs}");
}

/// A flow that proves where it runs: each task prints whether it is in a container, its
/// uid, a step variable and a secret passed by name; a foreach exercises the output files.
const WHERE_FLOW: &str = r#"name: where
parameters:
  n: {type: int, default: 3}
steps:
  start:
    run: python3 where.py start
    foreach: items
    next: body
    env: {GREETING: hi}
    secrets: {API_TOKEN: api/token}
  body: {run: python3 where.py body, next: join}
  join: {run: python3 where.py join, join: true, next: end}
  end: {run: python3 where.py end}
"#;

const WHERE_PY: &str = r#"import json, os, sys
step = sys.argv[1]
out = os.environ["FLOWPACK_OUTPUT_DIR"]
print(f"{step}: container={os.path.exists('/run/.containerenv')} uid={os.getuid()} "
      f"greeting={os.environ.get('GREETING')} token={os.environ.get('API_TOKEN')}")
if step == "start":
    n = json.load(open(os.environ["FLOWPACK_PARAMS"]))["n"]
    json.dump(list(range(n)), open(os.path.join(out, "items"), "w"))
if step == "body":
    open(os.path.join(out, "square"), "w").write(str(int(os.environ["FLOWPACK_SPLIT_ITEM"]) ** 2))
if step == "join":
    inp = os.environ["FLOWPACK_INPUT_DIR"]
    total = sum(int(open(os.path.join(inp, d, "square")).read()) for d in os.listdir(inp) if d.isdigit())
    open(os.path.join(out, "total"), "w").write(str(total))
"#;

/// Runs WHERE_FLOW with `--containers` on `store` ("": the default store, `./.flowpack` of the
/// flow's folder where it runs),
/// with a relative cache folder: paths reach the containers made absolute.
fn run_where(store: &str) -> (String, String, PathBuf) {
    let tmp = tempfile::tempdir().unwrap().keep();
    write_tree(&tmp, &[("flow.yaml", WHERE_FLOW), ("where.py", WHERE_PY)]);
    let out = fp(
        &tmp,
        store,
        &[
            "run",
            "flow.yaml",
            "--containers",
            "--param",
            "n=4",
            "--json",
        ],
        &[
            ("API_TOKEN", "token-from-here"),
            ("FLOWPACK_CACHE_DIR", ".test-cache"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "run --containers failed:\n{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["tasks"].as_array().unwrap().len(), 7, "{summary}");
    (summary["run"].as_str().unwrap().to_string(), stderr, tmp)
}

#[test]
fn run_containers_runs_every_task_in_its_image_on_a_local_folder_store() {
    // The embedded default: ./.flowpack of the folder `run` is typed in (the flow's here).
    let store = "";
    let (run, stderr, dir) = run_where(store);
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    // Every task, in a container, as the invoking user (files in the store stay theirs).
    assert_eq!(stderr.matches("container=True").count(), 7, "{stderr}");
    assert_eq!(
        stderr.matches(&format!("uid={uid} ")).count(),
        7,
        "{stderr}"
    );
    // The step's env and its secret (by name, from this environment) reached the start task.
    assert!(
        stderr.contains(&format!(
            "start: container=True uid={uid} greeting=hi token=token-from-here"
        )),
        "{stderr}"
    );
    assert!(dir.join(".flowpack/v1/runs/where").is_dir());
    let total = fp_ok(
        &dir,
        store,
        &["artifacts", "get", &format!("{run}/join/total"), "-o", "-"],
    );
    assert_eq!(total, "14"); // 0 + 1 + 4 + 9
    let logs = fp_ok(&dir, store, &["logs", &format!("{run}/body/2")]);
    assert!(logs.contains("body: container=True"), "{logs}");
    let show: serde_json::Value =
        serde_json::from_str(&fp_ok(&dir, store, &["show", &run, "--json"])).unwrap();
    for task in show["tasks"].as_array().unwrap() {
        assert_eq!(
            task["attempts"][0]["record"]["image"], PYTHON_IMAGE,
            "{task}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_containers_reaches_an_s3_store_with_the_credentials_of_this_environment() {
    let store = util::s3_store("containers");
    let (run, stderr, dir) = run_where(&store);
    assert_eq!(stderr.matches("container=True").count(), 7, "{stderr}");
    // The credentials went in by name: no value is on any podman command line or output.
    let key = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    assert!(!stderr.contains(&key), "{stderr}");
    let total = fp_ok(
        &dir,
        &store,
        &["artifacts", "get", &format!("{run}/join/total"), "-o", "-"],
    );
    assert_eq!(total, "14");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn run_containers_kills_a_step_over_its_memory_limit_as_kubernetes_would() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            (
                "flow.yaml",
                "name: hungry\nsteps:\n  start: {run: python3 hungry.py, next: end, resources: {memory: 64Mi}}\n  end: {run: 'true'}\n",
            ),
            (
                "hungry.py",
                "print('eating', flush=True)\nx = bytearray(300 << 20)\nprint('full')\n",
            ),
        ],
    );
    let store = tmp.path().join("store").display().to_string();
    let out = fp(
        tmp.path(),
        &store,
        &["run", "flow.yaml", "--containers"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("eating") && !stderr.contains("full"),
        "{stderr}"
    );
    // The kernel's OOM killer stopped it inside its limit, as on Kubernetes: 128 + SIGKILL.
    assert!(stderr.contains("start/0] Failed (exit 137)"), "{stderr}");
}

#[test]
fn run_containers_without_podman_or_image_fails_clearly_before_running_anything() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(
        tmp.path(),
        &[
            ("flow.yaml", util::LINEAR_FLOW),
            ("main.py", "print('ran')"),
        ],
    );
    let store = tmp.path().join("store").display().to_string();
    let out = fp(
        tmp.path(),
        &store,
        &["run", "flow.yaml", "--containers"],
        &[("FLOWPACK_PODMAN", "/nonexistent/podman")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--containers runs every task through podman, but '/nonexistent/podman' cannot be started")
            && stderr.contains("apt-get install podman"),
        "{stderr}"
    );
    assert!(!stderr.contains("ran"), "{stderr}");

    let flow =
        util::LINEAR_FLOW.replace("name: demo", "name: demo\nimage: localhost/no-such-image:1");
    write_tree(tmp.path(), &[("flow.yaml", &flow)]);
    let out = fp(
        tmp.path(),
        &store,
        &["run", "flow.yaml", "--containers"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "image localhost/no-such-image:1 is not in podman's storage and cannot be pulled"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("ran"), "{stderr}");
}

#[test]
fn run_containers_runs_a_python_flow_with_the_package_the_images_binary_carries() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        util::workspace().join("examples/python/gate.py"),
        tmp.path().join("gate.py"),
    )
    .unwrap();
    // Nothing of this machine's Python reaches the container: its python3 and the package
    // its own flowpack binary writes into the mounted cache.
    let out = fp(
        tmp.path(),
        "",
        &[
            "run",
            "gate.py",
            "--containers",
            "--param",
            "score=-1",
            "--json",
        ],
        &[("FLOWPACK_CACHE_DIR", ".test-cache")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "run --containers failed:\n{stderr}");
    assert!(stderr.contains("verdict fail: published=False"), "{stderr}");
    assert!(
        stderr.contains("ValueError: a negative score means the evaluation itself failed"),
        "@catch prints the exception it stored:\n{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = summary["run"].as_str().unwrap();
    let show: serde_json::Value =
        serde_json::from_str(&fp_ok(tmp.path(), "", &["show", run, "--json"])).unwrap();
    for task in show["tasks"].as_array().unwrap() {
        assert_eq!(
            task["attempts"][0]["record"]["image"], PYTHON_IMAGE,
            "{task}"
        );
    }
}
