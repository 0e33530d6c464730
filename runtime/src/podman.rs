//! `flowpack run --containers`: each task's `flowpack step` runs in its step's image through
//! podman, as a KFP pod would run it. This module owns the `podman run` command line a task
//! becomes and the checks made before a run starts (podman present, every image present).
//!
//! What a task's container gets, and why:
//! - the same `step` arguments as the process runner, plus `--image`, with `flowpack` (the
//!   compiler's default command) as the entrypoint, so the image's own binary runs the step;
//! - the step's cpu and memory as limits (`--cpus`, `--memory`), so a step that outgrows its
//!   memory is killed here as on Kubernetes;
//! - the host network, so stores on 127.0.0.1 (MinIO, a test server) are reachable;
//! - the step's `env` and, by name only, its secrets' variables and the storage credentials
//!   from this environment (`-e NAME`: podman copies the value, which never appears on a
//!   command line);
//! - the local-folder store and the cache folder mounted at the same paths, so store URLs and
//!   output files mean the same inside and out (sharing the cache is the one difference from a
//!   pod, which starts cold: packages are fetched once per run, not once per task);
//! - the invoking user's uid/gid, so files written into the store and cache stay the user's
//!   (`--userns=keep-id` when podman is rootless).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use flowpack_core::env_vars;
use flowpack_core::flow::{Flow, byte_quantity, cpu_cores};
use tokio::process::Command;

use crate::RuntimeError;

/// The environment variables passed into task containers by name, when set here: storage
/// credentials and settings object_store reads, and flowpack's log filter.
const PASSED_PREFIXES: &[&str] = &["AWS_", "AZURE_", "GOOGLE_"];
const PASSED_NAMES: &[&str] = &[env_vars::FLOWPACK_LOG, "SSL_CERT_FILE"];

/// How task containers are started.
#[derive(Clone, Debug)]
pub struct Podman {
    program: PathBuf,
    mounts: Vec<PathBuf>,
    cache_dir: PathBuf,
    /// The variables of this environment that every container gets by name.
    passed: BTreeSet<String>,
}

impl Podman {
    /// Finds podman (`FLOWPACK_PODMAN`, else `podman` on PATH) and checks that it answers.
    /// `mounts` are the host folders tasks need at the same path (the local-folder store).
    pub async fn find(mounts: Vec<PathBuf>, cache_dir: &Path) -> Result<Self, RuntimeError> {
        let program: PathBuf = std::env::var_os(env_vars::FLOWPACK_PODMAN)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "podman".into())
            .into();
        let out = Command::new(&program)
            .arg("--version")
            .output()
            .await
            .map_err(|e| {
                RuntimeError::Invalid(format!(
                    "--containers runs every task through podman, but '{}' cannot be started: {e}. \
                     Install podman (Debian/Ubuntu: apt-get install podman) or set {} to its path",
                    program.display(),
                    env_vars::FLOWPACK_PODMAN
                ))
            })?;
        if !out.status.success() {
            return Err(RuntimeError::Invalid(format!(
                "'{} --version' failed ({}): {}",
                program.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let passed = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| {
                PASSED_NAMES.contains(&k.as_str())
                    || PASSED_PREFIXES.iter().any(|p| k.starts_with(p))
            })
            .collect();
        Ok(Self {
            program,
            mounts,
            cache_dir: cache_dir.to_path_buf(),
            passed,
        })
    }

    /// Makes sure every step's image is in podman's storage, pulling the missing ones once
    /// (not once per task, and before anything runs, so a bad image name fails the run early).
    pub async fn prepare_images(&self, flow: &Flow) -> Result<(), RuntimeError> {
        let images: BTreeSet<&str> = flow
            .steps
            .values()
            .map(|s| s.settings.image.as_str())
            .collect();
        for image in images {
            let exists = Command::new(&self.program)
                .args(["image", "exists", image])
                .status()
                .await
                .map_err(|e| RuntimeError::Invalid(format!("podman image exists {image}: {e}")))?;
            if exists.success() {
                continue;
            }
            tracing::info!("pulling {image}");
            let out = Command::new(&self.program)
                .args(["pull", "--quiet", image])
                .output()
                .await
                .map_err(|e| RuntimeError::Invalid(format!("podman pull {image}: {e}")))?;
            if !out.status.success() {
                let hint = if image.starts_with("localhost/flowpack-") {
                    " (images/build.sh in flowpack's source builds the flowpack images)"
                } else {
                    ""
                };
                return Err(RuntimeError::Invalid(format!(
                    "image {image} is not in podman's storage and cannot be pulled{hint}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(())
    }

    /// The command that runs `flowpack step ARGS` in `image` for the task named by `name`.
    pub fn step_command(
        &self,
        flow: &Flow,
        step: &str,
        name: &str,
        step_args: Vec<OsString>,
    ) -> Command {
        let settings = &flow.steps[step].settings;
        let mut cmd = Command::new(&self.program);
        cmd.args(["run", "--rm", "--network", "host", "--name", name])
            .args(["--entrypoint", "flowpack"])
            .args(["--label", &format!("dev.flowpack.flow={}", flow.name)]);
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        if uid != 0 {
            cmd.arg("--userns=keep-id");
        }
        cmd.arg("--user").arg(format!("{uid}:{gid}"));
        let r = &settings.resources;
        if let Some(cores) = r.cpu.as_deref().and_then(cpu_cores) {
            // podman refuses more CPUs than this machine has; Kubernetes would schedule them.
            let here = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            cmd.arg("--cpus").arg(cores.min(here).to_string());
        }
        if let Some(bytes) = r.memory.as_deref().and_then(byte_quantity) {
            cmd.arg("--memory").arg(bytes.to_string());
        }
        for dir in self.mounts.iter().chain([&self.cache_dir]) {
            let mut v = dir.clone().into_os_string();
            v.push(":");
            v.push(dir);
            cmd.arg("--volume").arg(v);
        }
        let mut env = OsString::from(env_vars::FLOWPACK_CACHE_DIR);
        env.push("=");
        env.push(&self.cache_dir);
        cmd.arg("--env").arg(env);
        for (k, v) in &settings.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        // Storage credentials, and the step's secrets where this environment has them.
        let secrets = settings
            .secrets
            .keys()
            .filter(|k| !self.passed.contains(*k) && std::env::var_os(k).is_some());
        for k in self.passed.iter().chain(secrets) {
            cmd.args(["--env", k]);
        }
        cmd.arg(&settings.image).arg("step").args(step_args);
        cmd
    }
}
