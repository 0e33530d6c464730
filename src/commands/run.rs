//! `flowpack run FLOW`: push, then run every task locally through `flowpack step`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use flowpack_core::Flow;
use flowpack_core::run::{TaskRef, new_local_run_id};
use flowpack_core::store::Store;
use flowpack_packager::{PushOptions, push};
use flowpack_runtime::cache::Cache;
use flowpack_runtime::inspect;
use flowpack_runtime::local::{self, Launcher, RunOptions, RunReporter, TaskSummary};
use flowpack_runtime::podman::Podman;

use crate::cli::{ExecArgs, ResumeArgs, RunArgs};
use crate::progress::Progress;
use crate::settings;

struct Printer {
    run: String,
}

impl RunReporter for Printer {
    fn line(&self, task: &TaskRef, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "[{}/{task}] {text}", self.run);
    }

    fn finished(&self, t: &TaskSummary) {
        let attempts = if t.attempts > 1 {
            format!(" after {} attempts", t.attempts)
        } else {
            String::new()
        };
        let code = match (t.status.is_success(), t.exit_code) {
            (false, Some(c)) => format!(" (exit {c})"),
            _ => String::new(),
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "[{}/{}] {:?}{code}{attempts} in {:.2}s",
            self.run,
            t.task,
            t.status,
            t.seconds
        );
    }
}

pub async fn run(args: RunArgs) -> Result<()> {
    let flow = Flow::load(&args.flow)?;
    let params = super::key_values(&args.params, "--param")?;
    // Check parameters before anything is pushed.
    flowpack_runtime::step::resolve_params(&flow, &params)?;
    let store = settings::store(args.exec.store.store.as_deref(), settings::Access::Write)?;
    let cache_dir = settings::cache_dir()?;
    let launcher = launcher(&args.exec, &store, &cache_dir).await?;
    let package = push_current(&args.flow, &flow, &store, &cache_dir, args.exec.json).await?;
    let run_id = new_local_run_id();
    eprintln!(
        "run {run_id} of flow {} (package {}) in {}",
        flow.name,
        package.short(),
        store.url()
    );
    execute(
        RunOptions {
            store,
            package,
            flow,
            run: run_id,
            params,
            max_workers: args.exec.max_workers,
            cache_dir,
            launcher,
            done: Default::default(),
            resumed_from: None,
            no_cache: args.no_cache,
        },
        args.exec.json,
        args.exec.store.store.as_deref(),
    )
    .await
}

pub async fn resume(args: ResumeArgs) -> Result<()> {
    // The run to resume must be in the store: it is looked up, never created.
    let store = settings::store(args.exec.store.store.as_deref(), settings::Access::Read)?;
    let cache_dir = settings::cache_dir()?;
    let launcher = launcher(&args.exec, &store, &cache_dir).await?;
    let record = inspect::find_run(&store, &args.run).await?;
    let old = inspect::load(&store, record.clone()).await?;
    let cache = Cache::new(&cache_dir);
    // The current code when the flow file is given; else the origin run's package.
    let (flow, package) = match &args.flow {
        Some(file) => {
            let flow = Flow::load(file)?;
            if flow.name != record.flow {
                anyhow::bail!(
                    "{} is flow '{}', but run {} is of flow '{}': give that flow's file",
                    file.display(),
                    flow.name,
                    record.run,
                    record.flow
                );
            }
            let package = push_current(file, &flow, &store, &cache_dir, args.exec.json).await?;
            (flow, package)
        }
        None => {
            eprintln!(
                "note: no flow file given: the origin run's own package runs again \
                 (give the flow file to run the current code: flowpack resume {} FLOW)",
                record.run
            );
            (
                cache.manifest(&store, &record.package).await?.flow,
                record.package,
            )
        }
    };
    let run_id = new_local_run_id();
    let done =
        inspect::reuse_tasks(&store, &flow, &old, args.from.as_deref(), &run_id, &cache).await?;
    eprintln!(
        "run {run_id} resumes {} of flow {} (package {}): {} tasks reused",
        record.run,
        flow.name,
        package.short(),
        done.len()
    );
    // The origin's values of the parameters the flow still has, as the text each type
    // reads back to the stored value (a json parameter's string stays a JSON string).
    let params = record
        .parameters
        .iter()
        .filter_map(|(k, v)| {
            let p = flow.parameters.get(k)?;
            Some((k.clone(), p.ty.to_text(v)))
        })
        .collect();
    execute(
        RunOptions {
            store,
            package,
            flow,
            run: run_id,
            params,
            max_workers: args.exec.max_workers,
            cache_dir,
            launcher,
            done,
            resumed_from: Some(record.run.clone()),
            no_cache: false,
        },
        args.exec.json,
        args.exec.store.store.as_deref(),
    )
    .await
}

/// Pushes the flow file's current tree (no version recorded) and returns the package.
async fn push_current(
    file: &Path,
    flow: &Flow,
    store: &Store,
    cache_dir: &Path,
    json: bool,
) -> Result<flowpack_core::Digest> {
    let progress = Progress::new(json);
    let pushed = push(
        file,
        flow,
        &PushOptions {
            store: store.clone(),
            version: None,
            record_version: false,
            rebuild_env: false,
            cache_dir: cache_dir.to_path_buf(),
        },
        &progress,
    )
    .await;
    progress.clear();
    Ok(pushed?.package)
}

/// How tasks start: this binary as `flowpack step`, or the images' binary in podman.
async fn launcher(exec: &ExecArgs, store: &Store, cache_dir: &Path) -> Result<Launcher> {
    Ok(if exec.containers {
        let mounts = store
            .local_root()
            .map(Path::to_path_buf)
            .into_iter()
            .collect();
        Launcher::Containers(Podman::find(mounts, cache_dir).await?)
    } else {
        Launcher::Process(
            std::env::current_exe().context("cannot find the flowpack binary to run steps")?,
        )
    })
}

/// Runs the planned flow with this binary as `flowpack step` (or the images' binary, with
/// `--containers`), prints the summary, and fails when the run failed. The hints it prints
/// repeat `--store` when the user gave one, so that they work as printed.
async fn execute(opts: RunOptions, json: bool, store_flag: Option<&str>) -> Result<()> {
    let run_id = opts.run.clone();
    let summary = local::run(
        opts,
        Arc::new(Printer {
            run: run_id.clone(),
        }),
    )
    .await?;
    if json {
        super::print_json(&summary)?;
    } else {
        let failed: Vec<&TaskSummary> = summary
            .tasks
            .iter()
            .filter(|t| !t.status.is_success())
            .collect();
        outln!(
            "run {} {} in {:.2}s: {} tasks, {} failed",
            summary.run,
            if summary.succeeded {
                "succeeded"
            } else {
                "failed"
            },
            summary.seconds,
            summary.tasks.len(),
            failed.len()
        );
        for t in failed {
            outln!(
                "  {} {:?} exit {}",
                t.task,
                t.status,
                t.exit_code.map_or("-".into(), |c| c.to_string())
            );
        }
        if !summary.succeeded {
            let store = store_flag.map_or(String::new(), |s| format!(" --store {}", shell_word(s)));
            outln!(
                "inspect it with: flowpack show {run_id}{store}; run the rest with: flowpack resume {run_id}{store}"
            );
        }
    }
    if let Some(signal) = summary.stopped_by {
        return Err(Stopped {
            code: flowpack_runtime::step::StopSignals::exit_code(signal),
            message: format!("run {run_id} stopped by {signal}"),
        }
        .into());
    }
    if summary.succeeded {
        Ok(())
    } else {
        anyhow::bail!("run {run_id} failed")
    }
}

/// A run (or resume) a stop signal ended: `flowpack` exits 128 + the signal's number
/// (130 for SIGINT), as a shell reports a command the signal stopped.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Stopped {
    /// The process exit code.
    pub code: u8,
    message: String,
}

/// `s` as one shell word: as is when it holds only characters no shell treats specially,
/// else in single quotes.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._:-=@+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}
