//! `flowpack push FLOW`: pack and upload; print the package and what moved.

use anyhow::Result;
use flowpack_core::Flow;
use flowpack_packager::{PushOptions, push};

use super::bytes;
use crate::cli::PushArgs;
use crate::progress::Progress;
use crate::settings;

pub async fn run(args: PushArgs) -> Result<()> {
    let flow = Flow::load(&args.flow)?;
    let store = settings::store(args.store.store.as_deref(), &settings::flow_dir(&args.flow))?;
    let opts = PushOptions {
        store,
        version: args.version_name,
        rebuild_env: args.rebuild_env,
        record_version: true,
        cache_dir: settings::cache_dir()?,
    };
    let progress = Progress::new(args.json);
    let report = push(&args.flow, &flow, &opts, &progress).await;
    progress.clear();
    let report = report?;
    if args.json {
        return super::print_json(&report);
    }
    println!("package {}", report.package);
    println!(
        "version {} of flow {} in {}",
        report.version, report.flow, report.store
    );
    for l in &report.layers {
        let moved = if l.uploaded_bytes > 0 {
            format!("uploaded {}", bytes(l.uploaded_bytes))
        } else {
            "reused".to_string()
        };
        println!(
            "  {:<4} {}  {} entries, {}  {moved}",
            format!("{:?}", l.kind).to_lowercase(),
            l.digest.short(),
            l.entries,
            bytes(l.size),
        );
    }
    println!(
        "uploaded {}, reused {} in {:.2} s",
        bytes(report.uploaded_bytes),
        bytes(report.reused_bytes),
        report.seconds.as_secs_f64()
    );
    Ok(())
}
