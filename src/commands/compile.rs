//! `flowpack compile FLOW`: push the package, then write the engine's documents that run
//! it (a KFP pipeline, or an Argo WorkflowTemplate and CronWorkflow).

use std::path::PathBuf;

use anyhow::{Context, Result};
use flowpack_core::Flow;
use flowpack_core::invocation::CompileOptions;
use flowpack_packager::{PushOptions, push};

use super::engine;
use crate::cli::{CompileArgs, Target};
use crate::progress::Progress;
use crate::settings;

pub async fn run(args: CompileArgs) -> Result<()> {
    let flow = Flow::load(&args.flow)?;
    let store = settings::store(args.store.store.as_deref(), settings::Access::Write)?;
    engine::check_for_cluster(args.target, &flow, &store, args.local.allow_local)?;
    let (package, yaml) =
        push_and_compile(args.target, &args.flow, &flow, &store, &args.command).await?;
    let output = args.output.unwrap_or_else(|| {
        PathBuf::from(match args.target {
            Target::Kfp => "pipeline.yaml",
            Target::Argo => "workflow-template.yaml",
        })
    });
    if output.as_os_str() == "-" {
        out!("{yaml}");
    } else {
        std::fs::write(&output, yaml)
            .with_context(|| format!("cannot write {}", output.display()))?;
        eprintln!(
            "wrote {} for package {} in {}",
            output.display(),
            package.short(),
            store.url()
        );
    }
    Ok(())
}

/// Pushes the flow's package (no version pointer) and compiles `target`'s documents that
/// run it.
async fn push_and_compile(
    target: Target,
    flow_file: &std::path::Path,
    flow: &Flow,
    store: &flowpack_core::store::Store,
    command: &str,
) -> Result<(flowpack_core::Digest, String)> {
    let args_flow = flow_file;
    let progress = Progress::new(false);
    let pushed = push(
        args_flow,
        flow,
        &PushOptions {
            store: store.clone(),
            version: None,
            record_version: false,
            rebuild_env: false,
            cache_dir: settings::cache_dir()?,
        },
        &progress,
    )
    .await;
    progress.clear();
    let pushed = pushed?;
    let yaml = engine::compile(
        target,
        flow,
        &CompileOptions {
            package: pushed.package,
            store_url: store.url().to_string(),
            command: command.to_string(),
        },
    )?;
    Ok((pushed.package, yaml))
}
