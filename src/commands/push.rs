//! `flowpack push FLOW`: pack and upload; print the package and what moved.

use anyhow::Result;
use flowpack_core::Flow;
use flowpack_kfp::{CompileOptions, compile};
use flowpack_packager::{PushOptions, default_version_name, push, record_version};

use super::bytes;
use crate::cli::PushArgs;
use crate::progress::Progress;
use crate::settings;

pub async fn run(args: PushArgs) -> Result<()> {
    let flow = Flow::load(&args.flow)?;
    if args.kfp.kfp_url.is_some() {
        super::schedule::check_flow_schedule(&flow)?;
    }
    let store = settings::store(args.store.store.as_deref(), settings::Access::Write)?;
    if args.kfp.kfp_url.is_some() {
        super::compile::check_for_cluster(&flow, &store, args.local.allow_local)?;
    }
    let version = args
        .version_name
        .clone()
        .unwrap_or_else(default_version_name);
    let to_kfp = args.kfp.kfp_url.is_some();
    let opts = PushOptions {
        store: store.clone(),
        version: Some(version.clone()),
        rebuild_env: args.rebuild_env,
        // With KFP, the pointer is written after the deploy, with KFP's ids in it.
        record_version: !to_kfp,
        cache_dir: settings::cache_dir()?,
    };
    let progress = Progress::new(args.json);
    let report = push(&args.flow, &flow, &opts, &progress).await;
    progress.clear();
    let mut report = report?;
    let mut kfp_ids = None;
    if to_kfp {
        let yaml = compile(
            &flow,
            &CompileOptions {
                package: report.package,
                store_url: store.url().to_string(),
                command: "flowpack".into(),
            },
        )?
        .to_yaml();
        let mut ids = super::kfp::deploy(&args.kfp, &flow, &version, &yaml).await?;
        record_version(
            &store,
            &flow.name,
            &version,
            report.package,
            Some(ids.clone()),
        )
        .await?;
        // The flow's own schedule runs the version just deployed (after the pointer: the
        // pointer records the pipeline's ids only).
        if let Some(s) = super::schedule::deploy_flow_schedule(
            &args.kfp,
            &flow,
            ids["pipeline_id"].as_str().unwrap_or_default(),
            ids["pipeline_version_id"].as_str().unwrap_or_default(),
        )
        .await?
        {
            ids["schedule"] = s;
        }
        report.version = version;
        kfp_ids = Some(ids);
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(ids) = &kfp_ids {
            v["kfp"] = ids.clone();
        }
        return super::print_json(&v);
    }
    if let Some(ids) = &kfp_ids {
        outln!(
            "deployed to KFP: pipeline {} version {}",
            ids["pipeline_id"].as_str().unwrap_or_default(),
            ids["pipeline_version_id"].as_str().unwrap_or_default()
        );
        if let Some(s) = ids.get("schedule") {
            outln!(
                "schedule {} ({}): {}",
                s["id"].as_str().unwrap_or_default(),
                s["cron"].as_str().unwrap_or_default(),
                s["outcome"].as_str().unwrap_or_default()
            );
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
