//! `flowpack compile FLOW`: push the package, then write the KFP pipeline that runs it.

use anyhow::{Context, Result};
use flowpack_core::Flow;
use flowpack_kfp::{CompileOptions, compile};
use flowpack_packager::{PushOptions, push};

use crate::cli::CompileArgs;
use crate::progress::Progress;
use crate::settings;

pub async fn run(args: CompileArgs) -> Result<()> {
    let flow = Flow::load(&args.flow)?;
    let store = settings::store(args.store.store.as_deref(), settings::Access::Write)?;
    check_for_cluster(&flow, &store, args.local.allow_local)?;
    let (package, yaml) = push_and_compile(&args.flow, &flow, &store, &args.command).await?;
    if args.output.as_os_str() == "-" {
        out!("{yaml}");
    } else {
        std::fs::write(&args.output, yaml)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        eprintln!(
            "wrote {} for package {} in {}",
            args.output.display(),
            package.short(),
            store.url()
        );
    }
    Ok(())
}

/// Before anything is pushed for KFP (`compile`, `push --kfp-url`): the flow compiles,
/// and, unless `allow_local`, its pods can reach its store and images (`flowpack_kfp::reach`).
pub fn check_for_cluster(
    flow: &Flow,
    store: &flowpack_core::store::Store,
    allow_local: bool,
) -> Result<()> {
    flowpack_kfp::check(flow)?;
    if !allow_local {
        flowpack_kfp::refuse_machine_only(flow, store)?;
    }
    Ok(())
}

/// Pushes the flow's package (no version pointer) and compiles the pipeline that runs it.
pub async fn push_and_compile(
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
    let compiled = compile(
        flow,
        &CompileOptions {
            package: pushed.package,
            store_url: store.url().to_string(),
            command: command.to_string(),
        },
    )?;
    Ok((pushed.package, compiled.to_yaml()))
}
