//! The env layer's source folder: an existing folder (`env.path`), or one built from a
//! requirements file for the target platform and kept in the local cache. An inline
//! `env.packages` list is the requirements file with one entry a line: written to a
//! temporary file and built from the flow's folder, it shares that file's cache entry.
//!
//! Builds use `uv pip install --target DIR --python-platform P --python-version V -r FILE`
//! when uv is found (`FLOWPACK_UV` or `uv` on `PATH`), else
//! `python3 -m pip install --target DIR --platform TAG… --only-binary=:all:`. The cache key
//! is the SHA-256 of the requirements file's bytes, the Python version, the platform and
//! the installer: the same inputs reuse the folder built before (`--rebuild-env` forces a
//! new build, e.g. to pick up new releases of unpinned requirements). A build goes to a
//! temporary folder that is renamed into place, so an interrupted build leaves nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowpack_core::Digest;
use flowpack_core::env_vars::{FLOWPACK_PYTHON, FLOWPACK_UV};
use flowpack_core::flow::EnvSpec;

use crate::PushError;

/// The folder whose contents become the env layer, and whether it was built just now.
pub struct EnvSource {
    /// The folder.
    pub dir: PathBuf,
    /// Target Python version, for builds from requirements.
    pub python: Option<String>,
    /// Target platform, for builds from requirements.
    pub platform: Option<String>,
    /// Whether this push built it (false: an `env.path` folder or a cached build).
    pub built: bool,
}

/// Finds or builds the env folder of `spec`; relative paths are against `base`.
pub fn resolve(
    spec: &EnvSpec,
    base: &Path,
    cache_dir: &Path,
    rebuild: bool,
) -> Result<EnvSource, PushError> {
    match spec {
        EnvSpec::Path { path } => Ok(EnvSource {
            dir: base.join(path),
            python: None,
            platform: None,
            built: false,
        }),
        EnvSpec::Requirements {
            requirements,
            python,
            platform,
        } => {
            let req = base.join(requirements);
            let bytes = std::fs::read(&req).map_err(|e| PushError::Env {
                reason: format!("cannot read the requirements file {}: {e}", req.display()),
            })?;
            let dir = req.parent().unwrap_or(Path::new(".")).to_path_buf();
            let file = req.file_name().expect("a file path").into();
            let source = Requirements { bytes, dir, file };
            from_requirements(&source, python, platform, cache_dir, rebuild)
        }
        EnvSpec::Packages {
            packages,
            python,
            platform,
        } => {
            // The list becomes the requirements file it stands for, in a temporary folder,
            // run from the flow's folder (as a requirements file beside the flow would be):
            // same bytes, same cache key, same env.
            let bytes = packages_text(packages).into_bytes();
            let envs = cache_dir.join("envs");
            std::fs::create_dir_all(&envs).map_err(|e| PushError::Env {
                reason: format!("cannot create {}: {e}", envs.display()),
            })?;
            let tmp = tempfile::Builder::new()
                .prefix(".requirements-")
                .tempdir_in(&envs)
                .map_err(|e| PushError::Env {
                    reason: format!("cannot create a folder in {}: {e}", envs.display()),
                })?;
            let file = tmp.path().join("requirements.txt");
            std::fs::write(&file, &bytes).map_err(|e| PushError::Env {
                reason: format!("cannot write {}: {e}", file.display()),
            })?;
            let dir = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
            let source = Requirements { bytes, dir, file };
            from_requirements(&source, python, platform, cache_dir, rebuild)
        }
    }
}

/// The requirements file an inline `env.packages` list stands for: one entry a line.
pub fn packages_text(packages: &[String]) -> String {
    packages.iter().map(|p| format!("{p}\n")).collect()
}

/// A requirements file to install: its bytes (the cache key), the folder the installer
/// runs in, and the file as the installer is given it (relative to that folder or absolute).
struct Requirements {
    bytes: Vec<u8>,
    dir: PathBuf,
    file: PathBuf,
}

/// The env folder built from `req`, from the cache when it has it.
fn from_requirements(
    req: &Requirements,
    python: &str,
    platform: &str,
    cache_dir: &Path,
    rebuild: bool,
) -> Result<EnvSource, PushError> {
    let bytes = &req.bytes;
    let installer = Installer::find();
    let key = Digest::of(
        flowpack_core::canonical::to_string(&serde_json::json!({
            "format": "flowpack.env.v1",
            "requirements": Digest::of(bytes).to_string(),
            "python": python,
            "platform": platform,
            "installer": installer.name(),
        }))
        .as_bytes(),
    );
    let envs = cache_dir.join("envs");
    let dir = envs.join(key.hex());
    let site = dir.join("site");
    let mut built = false;
    if rebuild {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if !site.is_dir() {
        build(&installer, req, python, platform, &envs, &dir)?;
        built = true;
    }
    Ok(EnvSource {
        dir: site,
        python: Some(python.to_string()),
        platform: Some(platform.to_string()),
        built,
    })
}

enum Installer {
    Uv(PathBuf),
    Pip(PathBuf),
}

impl Installer {
    fn find() -> Self {
        if let Some(uv) = std::env::var_os(FLOWPACK_UV) {
            return Self::Uv(uv.into());
        }
        if let Some(uv) = find_on_path("uv") {
            return Self::Uv(uv);
        }
        let py = std::env::var_os(FLOWPACK_PYTHON)
            .map(PathBuf::from)
            .or_else(|| find_on_path("python3"))
            .unwrap_or_else(|| "python3".into());
        Self::Pip(py)
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Uv(_) => "uv",
            Self::Pip(_) => "pip",
        }
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn build(
    installer: &Installer,
    req: &Requirements,
    python: &str,
    platform: &str,
    envs: &Path,
    dir: &Path,
) -> Result<(), PushError> {
    let env_err = |reason: String| PushError::Env { reason };
    std::fs::create_dir_all(envs)
        .map_err(|e| env_err(format!("cannot create {}: {e}", envs.display())))?;
    let tmp = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(envs)
        .map_err(|e| env_err(format!("cannot create a folder in {}: {e}", envs.display())))?;
    let site = tmp.path().join("site");
    let req_name = &req.file;
    let mut cmd = match installer {
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            c.args([
                "pip",
                "install",
                "--quiet",
                "--link-mode",
                "copy",
                "--no-config",
            ])
            .arg("--target")
            .arg(&site)
            .args(["--python-platform", platform, "--python-version", python])
            .arg("-r")
            .arg(req_name);
            c
        }
        Installer::Pip(py) => {
            let mut c = Command::new(py);
            c.args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-compile",
                "--disable-pip-version-check",
                "--only-binary=:all:",
            ])
            .arg("--target")
            .arg(&site)
            .args(["--python-version", python]);
            for tag in pip_platform_tags(platform) {
                c.args(["--platform", &tag]);
            }
            c.arg("-r").arg(req_name);
            c
        }
    };
    // Relative paths inside the requirements file are relative to its folder.
    cmd.current_dir(&req.dir);
    let shown = req.dir.join(&req.file);
    tracing::info!(installer = installer.name(), requirements = %shown.display(), "building the env layer");
    let out = cmd.output().map_err(|e| {
        env_err(format!(
            "cannot run {}: {e}; install uv (pip install uv) or set {FLOWPACK_UV}",
            installer.name()
        ))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(env_err(format!(
            "{} could not install {} for Python {python} on {platform} ({}):\n{}",
            installer.name(),
            shown.display(),
            out.status,
            tail.join("\n")
        )));
    }
    std::fs::create_dir_all(&site).map_err(|e| env_err(e.to_string()))?;
    remove_installer_bookkeeping(&site);
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, dir) {
        let _ = std::fs::remove_dir_all(&kept);
        // Another push built the same env meanwhile: same inputs, so use that one.
        if !dir.join("site").is_dir() {
            return Err(env_err(format!(
                "cannot move the built env into {}: {e}",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Drops files an installer leaves that differ between builds of the same requirements
/// (uv's `.lock` and its `uv_cache.json` with install times), so they never reach a layer.
fn remove_installer_bookkeeping(site: &Path) {
    let _ = std::fs::remove_file(site.join(".lock"));
    if let Ok(dir) = std::fs::read_dir(site) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().ends_with(".dist-info") {
                let _ = std::fs::remove_file(e.path().join("uv_cache.json"));
            }
        }
    }
}

/// pip takes wheel platform tags: `x86_64-manylinux_2_28` accepts every manylinux tag up
/// to glibc 2.28.
fn pip_platform_tags(platform: &str) -> Vec<String> {
    match platform.split_once("-manylinux_") {
        Some((arch, glibc)) => {
            let max: u32 = glibc
                .split_once('_')
                .and_then(|(_, m)| m.parse().ok())
                .unwrap_or(17);
            let mut tags: Vec<String> = (5..=max)
                .rev()
                .map(|m| format!("manylinux_2_{m}_{arch}"))
                .collect();
            tags.push(format!("manylinux2014_{arch}"));
            tags
        }
        None => vec![platform.replace('-', "_")],
    }
}
