//! `push`: pack, upload what the store lacks, write the manifest, then the version pointer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowpack_core::flow::{EnvSpec, PythonEnv};
use flowpack_core::manifest::{Deployments, Layer, LayerKind, Manifest, Version};
use flowpack_core::store::{Created, Put, Store, layout};
use flowpack_core::{Digest, Flow};
use serde::Serialize;

use crate::human_bytes;
use crate::layer;
use crate::tree::{self, Largest, LeftOut, Listing, Rules};
use crate::{PushError, env};

/// Receives progress; the CLI draws it, tests ignore it. Every method has a no-op default.
pub trait Reporter: Sync {
    /// A phase begins ("packing code", "building env").
    fn phase(&self, _what: &str) {}
    /// An upload of `bytes` (compressed) begins.
    fn upload_started(&self, _what: &str, _bytes: u64) {}
    /// `bytes` more were sent.
    fn uploaded(&self, _bytes: u64) {}
    /// The current upload ended.
    fn upload_finished(&self) {}
    /// Something was left out or is worth knowing.
    fn warn(&self, _message: &str) {}
}

impl Reporter for () {}

/// What to push where.
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// The store.
    pub store: Store,
    /// The version's name; None gives [`default_version_name`].
    pub version: Option<String>,
    /// Whether to write a version pointer (a local dry-run needs only the package).
    pub record_version: bool,
    /// Rebuild the env layer even when the cache has it.
    pub rebuild_env: bool,
    /// The local cache folder (built envs) and where temporary layer files go.
    pub cache_dir: PathBuf,
}

/// One layer of a push.
#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// Which layer.
    pub kind: LayerKind,
    /// Its blob.
    pub digest: Digest,
    /// Uncompressed size.
    pub size: u64,
    /// Entries in it.
    pub entries: u64,
    /// Compressed bytes uploaded (0 when reused).
    pub uploaded_bytes: u64,
    /// Compressed bytes the store already had (0 when uploaded).
    pub reused_bytes: u64,
    /// For an env layer of some steps only: those steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// A code layer past either threshold is unusually large: hand-written code rarely is, and
/// data, models, build output and environments (which belong in the store or the env layer)
/// usually are. Measured on the listed files, before compression.
pub const LARGE_CODE_BYTES: u64 = 10 << 20;
/// See [`LARGE_CODE_BYTES`]: entries are files, folders and links.
pub const LARGE_CODE_ENTRIES: u64 = 2_000;
/// How many of the largest paths an unusually large code layer names.
const LARGEST_SHOWN: usize = 5;

/// An unusually large code layer (see [`LARGE_CODE_BYTES`]) and what makes it so.
#[derive(Clone, Debug, Serialize)]
pub struct LargeLayer {
    /// Bytes of file content in it.
    pub bytes: u64,
    /// Entries in it.
    pub entries: u64,
    /// Its largest paths, folders aggregated (`tree::largest`), largest first.
    pub largest: Vec<Largest>,
}

impl LargeLayer {
    /// The layer's figures when `listing` is past a threshold.
    fn of(listing: &Listing) -> Option<Self> {
        let bytes = listing
            .entries
            .iter()
            .map(|e| match e.kind {
                flowpack_core::archive::EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum();
        let entries = listing.entries.len() as u64;
        (bytes > LARGE_CODE_BYTES || entries > LARGE_CODE_ENTRIES).then(|| Self {
            bytes,
            entries,
            largest: tree::largest(&listing.entries, LARGEST_SHOWN),
        })
    }

    /// What to tell the user.
    fn message(&self) -> String {
        let paths: Vec<String> = self
            .largest
            .iter()
            .map(|l| {
                let inside = if l.entries > 0 {
                    format!(" ({} entries)", l.entries)
                } else {
                    String::new()
                };
                format!("{} {}{inside}", l.path, human_bytes(l.bytes))
            })
            .collect();
        format!(
            "the code layer is unusually large: {} in {} entries (more than {} or {} entries). \
             Largest: {}. If these are data, models, build output or an environment, list them \
             in .flowpackignore (data belongs in the store, packages in the env layer)",
            human_bytes(self.bytes),
            self.entries,
            human_bytes(LARGE_CODE_BYTES),
            LARGE_CODE_ENTRIES,
            paths.join(", ")
        )
    }
}

/// What a push did.
#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    /// The flow.
    pub flow: String,
    /// The package id.
    pub package: Digest,
    /// The version pointer written (or found, when it already named this package); empty
    /// when none was written.
    pub version: String,
    /// The store, safe to print.
    pub store: String,
    /// Layers in manifest order.
    pub layers: Vec<LayerReport>,
    /// Compressed bytes uploaded, layers and manifest.
    pub uploaded_bytes: u64,
    /// Compressed bytes of layers and manifest the store already had.
    pub reused_bytes: u64,
    /// Whether the manifest was uploaded (false: the package was already complete there).
    pub manifest_uploaded: bool,
    /// Things left out.
    pub warnings: Vec<String>,
    /// Folders of the code tree left out by default (Python environments), by path.
    pub left_out: Vec<LeftOut>,
    /// The code layer's figures when it is unusually large, else None.
    pub large_code_layer: Option<LargeLayer>,
    /// Wall time of the push.
    #[serde(serialize_with = "secs")]
    pub seconds: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// A version name from the current UTC time, to the millisecond: `20261122T120000.123Z`.
pub fn default_version_name() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%S%.3fZ")
        .to_string()
}

/// Packs the flow loaded from `flow_file` and pushes it to `opts.store`.
pub async fn push(
    flow_file: &Path,
    flow: &Flow,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<PushReport, PushError> {
    let started = Instant::now();
    let version = opts.version.clone().unwrap_or_else(default_version_name);
    if !layout::is_version_name(&version) {
        return Err(PushError::BadVersion(version));
    }
    let base = flow_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(&opts.cache_dir).map_err(|source| PushError::Io {
        path: opts.cache_dir.clone(),
        source,
    })?;
    let mut warnings = Vec::new();
    let mut layers = Vec::new();
    let mut reports = Vec::new();

    reporter.phase("listing code");
    let code_root = base.join(&flow.code);
    let code_root = std::fs::canonicalize(&code_root).map_err(|e| PushError::Tree {
        path: code_root.clone(),
        reason: e.to_string(),
    })?;
    // A local store or the cache inside the code tree is never part of the code.
    let exclude: Vec<PathBuf> = opts
        .store
        .local_root()
        .into_iter()
        .chain([opts.cache_dir.as_path()])
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let mut listing = tree::list(&code_root, Rules::Code, &exclude)?;
    warnings.append(&mut listing.warnings);
    // The flow's env folder, when it sits in the code tree, is packed as the env layer:
    // left out of the code layer like any other environment, but not worth a word.
    let env_dir = match &flow.env {
        Some(EnvSpec::Path { path }) => std::fs::canonicalize(base.join(path)).ok(),
        _ => None,
    };
    let left_out: Vec<LeftOut> = std::mem::take(&mut listing.left_out)
        .into_iter()
        .filter(|l| env_dir.as_deref() != Some(code_root.join(&l.path).as_path()))
        .collect();
    if !left_out.is_empty() {
        warnings.push(left_out_message(&left_out));
    }
    let large_code_layer = LargeLayer::of(&listing);
    if let Some(l) = &large_code_layer {
        warnings.push(l.message());
    }
    let (layer, report) = push_layer(LayerKind::Code, listing, opts, reporter).await?;
    layers.push(layer);
    reports.push(report);

    // The flow's env layer, unless every step has its own environment.
    if let Some(spec) = &flow.env
        && flow.steps.values().any(|s| s.settings.python_env.is_none())
    {
        let (layer, report) = push_env(spec, vec![], base, opts, reporter, &mut warnings).await?;
        layers.push(layer);
        reports.push(report);
    }
    // Each distinct step environment once: built (or found in the cache) by its content.
    let mut by_env: std::collections::BTreeMap<&PythonEnv, Vec<String>> = Default::default();
    for (name, step) in &flow.steps {
        if let Some(e) = &step.settings.python_env {
            by_env.entry(e).or_default().push(name.clone());
        }
    }
    for (e, steps) in by_env {
        let (layer, report) =
            push_env(&e.spec(), steps, base, opts, reporter, &mut warnings).await?;
        layers.push(layer);
        reports.push(report);
    }
    for w in &warnings {
        reporter.warn(w);
    }

    // The manifest goes up only after every layer is in the store.
    let manifest = Manifest::new(flow.clone(), layers);
    let reports = in_manifest_order(&manifest, reports);
    let bytes = manifest.to_canonical();
    let package = Digest::of(&bytes);
    let manifest_put = opts.store.put_blob_bytes(&package, &bytes).await?;
    let (manifest_uploaded, manifest_bytes) = match manifest_put {
        Put::Uploaded(n) => (true, n),
        Put::Existed => (false, 0),
    };

    // The version pointer goes last: it names a complete package.
    if opts.record_version {
        record_version(
            &opts.store,
            &flow.name,
            &version,
            package,
            Deployments::default(),
        )
        .await?;
    }

    let uploaded_bytes = reports.iter().map(|r| r.uploaded_bytes).sum::<u64>() + manifest_bytes;
    let reused_bytes = reports.iter().map(|r| r.reused_bytes).sum::<u64>();
    Ok(PushReport {
        flow: flow.name.clone(),
        package,
        version: if opts.record_version {
            version
        } else {
            String::new()
        },
        store: opts.store.url().to_string(),
        layers: reports,
        uploaded_bytes,
        reused_bytes,
        manifest_uploaded,
        warnings,
        left_out,
        large_code_layer,
        seconds: started.elapsed(),
    })
}

/// One message for every folder left out of the code tree: which, why, and how to pack
/// one anyway.
fn left_out_message(left_out: &[LeftOut]) -> String {
    let list: Vec<String> = left_out
        .iter()
        .map(|l| format!("{} ({})", l.path, l.reason))
        .collect();
    format!(
        "left out of the code layer: {}. A Python environment belongs in the env layer \
         (`env:` in the flow, docs/flow.md); to pack a folder anyway, add a negation such as \
         `!/{}/` to .flowpackignore",
        list.join(", "),
        left_out[0].path
    )
}

/// Writes the version pointer `version` of `flow` -> `package` (create-only; accepted
/// again only for the same package), with what each engine answered, if deployed there.
pub async fn record_version(
    store: &Store,
    flow: &str,
    version: &str,
    package: Digest,
    deployed: Deployments,
) -> Result<(), PushError> {
    if !layout::is_version_name(version) {
        return Err(PushError::BadVersion(version.to_string()));
    }
    let record = Version {
        flow: flow.to_string(),
        version: version.to_string(),
        package,
        created_at: jiff::Timestamp::now().to_string(),
        created_by: format!("flowpack {}", env!("CARGO_PKG_VERSION")),
        kfp: deployed.kfp,
        argo: deployed.argo,
    };
    let key = layout::version(flow, version);
    if let Created::Existed(existing) = store.create_json(&key, &record).await? {
        let existing: Option<Version> = serde_json::from_slice(&existing).ok();
        match existing {
            Some(v) if v.package == package => {}
            other => {
                return Err(PushError::VersionTaken {
                    flow: flow.to_string(),
                    version: version.to_string(),
                    existing: other
                        .map_or_else(|| "(unreadable)".into(), |v| v.package.to_string()),
                });
            }
        }
    }
    Ok(())
}

/// Builds (or finds in the cache) the env folder of `spec` and pushes it as an env layer,
/// of the flow (`steps` empty) or of those steps.
async fn push_env(
    spec: &EnvSpec,
    steps: Vec<String>,
    base: &Path,
    opts: &PushOptions,
    reporter: &dyn Reporter,
    warnings: &mut Vec<String>,
) -> Result<(Layer, LayerReport), PushError> {
    if steps.is_empty() {
        reporter.phase("preparing env");
    } else {
        reporter.phase(&format!("preparing env of {}", steps.join(", ")));
    }
    let (spec, base, cache, rebuild) = (
        spec.clone(),
        base.to_path_buf(),
        opts.cache_dir.clone(),
        opts.rebuild_env,
    );
    let source = tokio::task::spawn_blocking(move || env::resolve(&spec, &base, &cache, rebuild))
        .await
        .expect("env build does not panic")?;
    reporter.phase("listing env");
    let mut listing = tree::list(&source.dir, Rules::Env, &[])?;
    warnings.append(&mut listing.warnings);
    let (mut layer, mut report) = push_layer(LayerKind::Env, listing, opts, reporter).await?;
    layer.python = source.python;
    layer.platform = source.platform;
    layer.steps.clone_from(&steps);
    report.steps = steps;
    Ok((layer, report))
}

/// One report per layer of `manifest`, in its order: steps' environments that gave the
/// same layer (and were merged into one) add up.
fn in_manifest_order(manifest: &Manifest, reports: Vec<LayerReport>) -> Vec<LayerReport> {
    manifest
        .layers
        .iter()
        .map(|l| {
            let same: Vec<&LayerReport> = reports
                .iter()
                .filter(|r| {
                    r.kind == l.kind
                        && r.digest == l.digest
                        && r.steps.is_empty() == l.steps.is_empty()
                })
                .collect();
            LayerReport {
                kind: l.kind,
                digest: l.digest,
                size: l.size,
                entries: l.entries,
                uploaded_bytes: same.iter().map(|r| r.uploaded_bytes).sum(),
                reused_bytes: same.iter().map(|r| r.reused_bytes).sum(),
                steps: l.steps.clone(),
            }
        })
        .collect()
}

/// Finds a layer in the store by its tree fingerprint, else packs it in one pass and
/// uploads it unless the store has it.
async fn push_layer(
    kind: LayerKind,
    listing: Listing,
    opts: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<(Layer, LayerReport), PushError> {
    let what = match kind {
        LayerKind::Code => "code layer",
        LayerKind::Env => "env layer",
    };
    let index = layer::Index::new(&opts.cache_dir);
    let known = listing.fingerprint.as_ref().and_then(|fp| index.get(fp));
    let mut reused = None;
    if let Some(h) = known
        && let Some(stored) = opts.store.stat_blob(&h.digest).await?
    {
        reused = Some((h, stored));
    }
    let (hashed, uploaded_bytes, reused_bytes) = match reused {
        Some((h, stored)) => (h, 0, stored),
        None => {
            reporter.phase(&format!("packing {what}"));
            let tmp_dir = opts.cache_dir.clone();
            let mut entries = listing.entries;
            let (hashed, file) =
                tokio::task::spawn_blocking(move || layer::pack(&mut entries, &tmp_dir))
                    .await
                    .expect("packing does not panic")?;
            if let Some(fp) = &listing.fingerprint {
                index.put(fp, &hashed);
            }
            // Known and missing was just checked; otherwise ask the store now.
            let stored = if known.is_some_and(|k| k.digest == hashed.digest) {
                None
            } else {
                opts.store.stat_blob(&hashed.digest).await?
            };
            match stored {
                Some(stored) => (hashed, 0, stored),
                None => {
                    let len = file.as_file().metadata().map(|m| m.len()).unwrap_or(0);
                    reporter.upload_started(what, len);
                    let put = opts
                        .store
                        .put_blob_file(&hashed.digest, file.path(), &|n| reporter.uploaded(n))
                        .await;
                    reporter.upload_finished();
                    match put? {
                        Put::Uploaded(n) => (hashed, n, 0),
                        Put::Existed => (hashed, 0, len),
                    }
                }
            }
        }
    };
    let layer = Layer {
        kind,
        digest: hashed.digest,
        size: hashed.size,
        entries: hashed.entries,
        python: None,
        platform: None,
        steps: vec![],
    };
    let report = LayerReport {
        kind,
        digest: hashed.digest,
        size: hashed.size,
        entries: hashed.entries,
        uploaded_bytes,
        reused_bytes,
        steps: vec![],
    };
    Ok((layer, report))
}
