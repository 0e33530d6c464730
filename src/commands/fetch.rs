//! `flowpack fetch PACKAGE -o DIR`: what a task does before it runs, by hand.

use anyhow::{Context, Result};
use flowpack_core::Digest;
use flowpack_core::manifest::LayerKind;
use flowpack_core::package::{extract_layer, read_manifest};
use serde::Serialize;

use super::bytes;
use crate::cli::FetchArgs;
use crate::settings;

#[derive(Serialize)]
struct Fetched {
    package: Digest,
    flow: String,
    output: String,
    layers: Vec<FetchedLayer>,
}

#[derive(Serialize)]
struct FetchedLayer {
    kind: LayerKind,
    digest: Digest,
    path: String,
    entries: u64,
    bytes: u64,
}

pub async fn run(args: FetchArgs) -> Result<()> {
    let store = settings::store(args.store.store.as_deref(), settings::Access::Read)?;
    if args.output.exists() {
        anyhow::bail!(
            "{} exists already: choose a new folder",
            args.output.display()
        );
    }
    let digest = flowpack_runtime::inspect::find_package(&store, &args.package).await?;
    let manifest = read_manifest(&store, &digest).await?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let layers = match extract_all(&store, &manifest, &args.output).await {
        Ok(l) => l,
        Err(e) => {
            // Leave nothing half-fetched behind.
            let _ = std::fs::remove_dir_all(&args.output);
            return Err(e);
        }
    };
    let out = Fetched {
        package: digest,
        flow: manifest.flow.name.clone(),
        output: args.output.display().to_string(),
        layers,
    };
    if args.json {
        return super::print_json(&out);
    }
    outln!("package {} of flow {}, verified", out.package, out.flow);
    for l in &out.layers {
        outln!("  {}  {} entries, {}", l.path, l.entries, bytes(l.bytes));
    }
    Ok(())
}

async fn extract_all(
    store: &flowpack_core::store::Store,
    manifest: &flowpack_core::manifest::Manifest,
    output: &std::path::Path,
) -> Result<Vec<FetchedLayer>> {
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        // A step's own env layer goes beside the flow's, named by its digest.
        let name = match layer.kind {
            LayerKind::Code => "code".to_string(),
            LayerKind::Env if layer.steps.is_empty() => "env".to_string(),
            LayerKind::Env => format!("env-{}", &layer.digest.hex()[..12]),
        };
        let dest = output.join(name);
        let stats = extract_layer(store, layer, &dest).await?;
        layers.push(FetchedLayer {
            kind: layer.kind,
            digest: layer.digest,
            path: dest.display().to_string(),
            entries: stats.entries,
            bytes: stats.bytes,
        });
    }
    Ok(layers)
}
