//! `flowpack push FLOW`: pack and upload; print the package and what moved; with
//! `--kfp-url` or `--argo-server` (or both), deploy it there and record the answer.

use anyhow::Result;
use flowpack_core::Flow;
use flowpack_core::invocation::CompileOptions;
use flowpack_core::manifest::Deployments;
use flowpack_packager::{PushOptions, default_version_name, push, record_version};

use super::bytes;
use super::engine::{self, key};
use crate::cli::{PushArgs, Target};
use crate::progress::Progress;
use crate::settings;

pub async fn run(args: PushArgs) -> Result<()> {
    let flow = Flow::load(&args.flow)?;
    let targets = engine::deploy_targets(&args.engine);
    if targets.contains(&Target::Kfp) {
        super::schedule::check_flow_schedule(&flow)?;
    }
    let store = settings::store(args.store.store.as_deref(), settings::Access::Write)?;
    for t in &targets {
        engine::check_for_cluster(*t, &flow, &store, args.local.allow_local)?;
    }
    let version = args
        .version_name
        .clone()
        .unwrap_or_else(default_version_name);
    let opts = PushOptions {
        store: store.clone(),
        version: Some(version.clone()),
        rebuild_env: args.rebuild_env,
        // With an engine, the pointer is written after the deploy, with its answer in it.
        record_version: targets.is_empty(),
        cache_dir: settings::cache_dir()?,
    };
    let progress = Progress::new(args.json);
    let report = push(&args.flow, &flow, &opts, &progress).await;
    progress.clear();
    let mut report = report?;
    let mut deployed = Deployments::default();
    if !targets.is_empty() {
        let compile = CompileOptions {
            package: report.package,
            store_url: store.url().to_string(),
            command: "flowpack".into(),
        };
        for t in &targets {
            let ids = engine::deploy(*t, &args.engine, &flow, &version, &compile).await?;
            match t {
                Target::Kfp => deployed.kfp = Some(ids),
                Target::Argo => deployed.argo = Some(ids),
            }
        }
        record_version(
            &store,
            &flow.name,
            &version,
            report.package,
            deployed.clone(),
        )
        .await?;
        // The flow's own schedule runs what was just deployed (after the pointer: the
        // pointer records the deployment only).
        for (t, ids) in [
            (Target::Kfp, &mut deployed.kfp),
            (Target::Argo, &mut deployed.argo),
        ] {
            if let Some(ids) = ids
                && let Some(s) = engine::deploy_schedule(t, &args.engine, &flow, ids).await?
            {
                ids["schedule"] = s;
            }
        }
        report.version = version;
    }
    let engines = [(Target::Kfp, &deployed.kfp), (Target::Argo, &deployed.argo)];
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        for (t, ids) in engines {
            if let Some(ids) = ids {
                v[key(t)] = ids.clone();
            }
        }
        return super::print_json(&v);
    }
    for (t, ids) in engines {
        if let Some(ids) = ids {
            for line in engine::deployed_lines(t, ids) {
                outln!("{line}");
            }
        }
    }
    outln!("package {}", report.package);
    outln!(
        "version {} of flow {} in {}",
        report.version,
        report.flow,
        report.store
    );
    for l in &report.layers {
        let moved = if l.uploaded_bytes > 0 {
            format!("uploaded {}", bytes(l.uploaded_bytes))
        } else {
            "reused".to_string()
        };
        let steps = if l.steps.is_empty() {
            String::new()
        } else {
            format!("  (steps {})", l.steps.join(", "))
        };
        outln!(
            "  {:<4} {}  {} entries, {}  {moved}{steps}",
            format!("{:?}", l.kind).to_lowercase(),
            l.digest.short(),
            l.entries,
            bytes(l.size),
        );
    }
    outln!(
        "uploaded {}, reused {} in {:.2} s",
        bytes(report.uploaded_bytes),
        bytes(report.reused_bytes),
        report.seconds.as_secs_f64()
    );
    Ok(())
}
