//! The package manifest and the version pointer, the two documents that name packages.
//!
//! A manifest is canonical JSON (see [`crate::canonical`]) holding the normalized flow and
//! the layers; the package id is the SHA-256 of those bytes, and the manifest is stored as
//! the blob of that digest. Nothing in it depends on the machine or the time of packing.
//!
//! Formats: v1 holds at most one layer of each kind; v2 adds env layers of some steps only
//! (their `steps`), for steps with their own `python_env`. A package is written in the
//! oldest format that can hold it, so a package without per-step environments keeps the
//! v1 bytes (and package id) it always had, and older flowpacks still run it. This
//! flowpack reads both and refuses a newer format with "upgrade" (docs/format.md).

use serde::{Deserialize, Serialize};

use crate::{Digest, Flow};

/// The newest manifest format this flowpack writes and reads: per-step env layers.
pub const FORMAT: &str = "flowpack.package.v2";
/// The format of packages with at most one layer of each kind, written whenever a package
/// needs nothing newer.
pub const FORMAT_V1: &str = "flowpack.package.v1";
/// What every format name starts with; the version number follows.
const FORMAT_PREFIX: &str = "flowpack.package.v";
/// Manifests larger than this are refused on read.
pub const MAX_MANIFEST_SIZE: u64 = 16 * 1024 * 1024;

/// A package: the flow and its layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_V1`], or [`FORMAT`] when a layer names `steps`.
    pub format: String,
    /// The normalized flow.
    pub flow: Flow,
    /// The layers: code, then the flow's env layer, then the steps' env layers by digest.
    pub layers: Vec<Layer>,
}

/// Which tree a layer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// The flow's `code:` tree; extracted as the task's working folder.
    Code,
    /// An installed Python environment; put on `PYTHONPATH`.
    Env,
}

/// One layer of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Which tree it holds.
    pub kind: LayerKind,
    /// The digest of its uncompressed tar stream; the blob's name.
    pub digest: Digest,
    /// The size of its uncompressed tar stream.
    pub size: u64,
    /// How many entries the tar stream holds (GNU long-name headers belong to the entry
    /// they name); extraction refuses a layer holding any other number.
    pub entries: u64,
    /// For env layers built from requirements: the target Python version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// For env layers built from requirements: the target platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// For an env layer of some steps only (format v2): those steps, sorted; they use it
    /// instead of the flow's env layer. Empty for the code layer and the flow's env layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not the JSON of a manifest.
    #[error("package {digest} has a malformed manifest: {reason}")]
    Malformed {
        /// The package.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// Written in a format newer than this flowpack reads.
    #[error(
        "package {digest} was made by a newer flowpack (manifest format '{format}'; flowpack {ours} reads up to '{FORMAT}'): upgrade flowpack to run it"
    )]
    Newer {
        /// The package.
        digest: Digest,
        /// Its format.
        format: String,
        /// This flowpack's version.
        ours: &'static str,
    },
}

/// The first thing read of a manifest: its format, whatever else it holds.
#[derive(Deserialize)]
struct Head {
    format: String,
}

impl Manifest {
    /// A manifest of `flow` and `layers`, in canonical order: code, the flow's env layer,
    /// then the steps' env layers by digest (those of one digest made one, their steps
    /// sorted). Format v1 unless a layer names steps.
    pub fn new(flow: Flow, layers: Vec<Layer>) -> Self {
        let mut merged: Vec<Layer> = Vec::with_capacity(layers.len());
        for mut l in layers {
            l.steps.sort();
            l.steps.dedup();
            let same = merged
                .iter_mut()
                .find(|m| !l.steps.is_empty() && !m.steps.is_empty() && m.digest == l.digest);
            match same {
                Some(m) => {
                    m.steps.append(&mut l.steps);
                    m.steps.sort();
                    m.steps.dedup();
                }
                None => merged.push(l),
            }
        }
        merged.sort_by_key(Layer::order_key);
        let format = if merged.iter().any(|l| !l.steps.is_empty()) {
            FORMAT
        } else {
            FORMAT_V1
        };
        Self {
            format: format.to_string(),
            flow,
            layers: merged,
        }
    }

    /// The canonical bytes; their digest is the package id.
    pub fn to_canonical(&self) -> Vec<u8> {
        crate::canonical::to_string(self).into_bytes()
    }

    /// The package id.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_canonical())
    }

    /// Parses manifest bytes read from the blob `digest` (already verified against it).
    pub fn parse(bytes: &[u8], digest: Digest) -> Result<Self, ManifestError> {
        let bad = |reason: String| ManifestError::Malformed { digest, reason };
        // The format first: a newer one may hold fields this flowpack does not know.
        let head: Head = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let v2 = match head.format.as_str() {
            FORMAT_V1 => false,
            FORMAT => true,
            other => {
                let newer = other
                    .strip_prefix(FORMAT_PREFIX)
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n > 2);
                return Err(if newer {
                    ManifestError::Newer {
                        digest,
                        format: other.to_string(),
                        ours: env!("CARGO_PKG_VERSION"),
                    }
                } else {
                    bad(format!(
                        "format '{other}' is not a flowpack package format ('{FORMAT_V1}' or '{FORMAT}')"
                    ))
                });
            }
        };
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.layers.first().map(|l| l.kind) != Some(LayerKind::Code) {
            return Err(bad("it has no code layer first".into()));
        }
        if !m.layers.is_sorted_by(|a, b| a.order_key() < b.order_key()) {
            return Err(bad(
                "layers must be code, the flow's env, then the steps' env layers by digest, each once".into(),
            ));
        }
        let flow_wide = |k: LayerKind| {
            m.layers
                .iter()
                .filter(|l| l.kind == k && l.steps.is_empty())
                .count()
        };
        if flow_wide(LayerKind::Code) != 1 || flow_wide(LayerKind::Env) > 1 {
            return Err(bad(
                "layers must be one code layer and at most one env layer of the flow".into(),
            ));
        }
        if !v2 && m.layers.len() > 2 {
            return Err(bad(format!(
                "layers must be one of each kind in format '{FORMAT_V1}'"
            )));
        }
        m.check_step_layers(v2).map_err(bad)?;
        // Extraction checks the count itself; what cannot hold is refused before any read.
        for l in &m.layers {
            crate::archive::check_declared(l.size, l.entries)
                .map_err(|r| bad(format!("layer {} declares {r}", l.digest)))?;
        }
        // Runtimes index steps by name: a graph that would not pass `check` is refused here.
        m.flow
            .check()
            .map_err(|e| bad(format!("its flow is invalid: {e}")))?;
        Ok(m)
    }

    /// The layer of `kind` that is the flow's (not of some steps only), if any.
    pub fn layer(&self, kind: LayerKind) -> Option<&Layer> {
        self.layers
            .iter()
            .find(|l| l.kind == kind && l.steps.is_empty())
    }

    /// The env layer `step` runs with: its own, else the flow's, if the package has one.
    pub fn env_layer(&self, step: &str) -> Option<&Layer> {
        self.layers
            .iter()
            .find(|l| l.kind == LayerKind::Env && l.steps.iter().any(|s| s == step))
            .or_else(|| self.layer(LayerKind::Env))
    }

    /// Layers naming steps: only env layers in format v2, each step at most once, every step
    /// with a `python_env` named by exactly one, and no other step.
    fn check_step_layers(&self, v2: bool) -> Result<(), String> {
        let mut named = std::collections::BTreeSet::new();
        for l in self.layers.iter().filter(|l| !l.steps.is_empty()) {
            if !v2 {
                return Err(format!(
                    "layer {} names steps, which format '{FORMAT_V1}' does not have",
                    l.digest
                ));
            }
            if l.kind != LayerKind::Env {
                return Err(format!(
                    "layer {} names steps but is not an env layer",
                    l.digest
                ));
            }
            if !l.steps.is_sorted_by(|a, b| a < b) {
                return Err(format!(
                    "layer {} must name its steps sorted, each once",
                    l.digest
                ));
            }
            for s in &l.steps {
                let Some(step) = self.flow.steps.get(s) else {
                    return Err(format!(
                        "layer {} names step '{s}', which the flow has not",
                        l.digest
                    ));
                };
                if step.settings.python_env.is_none() {
                    return Err(format!(
                        "layer {} names step '{s}', which has no `python_env`",
                        l.digest
                    ));
                }
                if !named.insert(s.as_str()) {
                    return Err(format!("step '{s}' is named by two env layers"));
                }
            }
        }
        for (name, step) in &self.flow.steps {
            if step.settings.python_env.is_some() && !named.contains(name.as_str()) {
                return Err(format!(
                    "step '{name}' has a `python_env` but no env layer names it"
                ));
            }
        }
        Ok(())
    }
}

impl Layer {
    /// Where the layer goes in a manifest: code, the flow's env, the steps' env by digest.
    fn order_key(&self) -> (LayerKind, bool, Digest) {
        (self.kind, !self.steps.is_empty(), self.digest)
    }
}

/// A version pointer: a named version of a flow and the package it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The flow.
    #[serde(deserialize_with = "crate::name::de::flow")]
    pub flow: String,
    /// The version's name.
    #[serde(deserialize_with = "crate::name::de::version")]
    pub version: String,
    /// The package.
    pub package: Digest,
    /// When it was pushed (RFC 3339, UTC).
    pub created_at: String,
    /// The flowpack that pushed it.
    pub created_by: String,
    /// Ids given by Kubeflow Pipelines when the version was deployed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kfp: Option<serde_json::Value>,
    /// What Argo Workflows answered when the version was deployed there (namespace,
    /// WorkflowTemplate, CronWorkflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argo: Option<serde_json::Value>,
}

/// Where a version was deployed: each engine's answer, recorded in its [`Version`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployments {
    /// Kubeflow Pipelines' ids.
    pub kfp: Option<serde_json::Value>,
    /// Argo Workflows' names.
    pub argo: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn valid() -> serde_json::Value {
        let flow = Flow::parse(
            "name: m\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true'}\n",
            Path::new("flow.yaml"),
        )
        .unwrap();
        let layer = Layer {
            kind: LayerKind::Code,
            digest: Digest::of(b"tar"),
            size: 2048,
            entries: 1,
            python: None,
            platform: None,
            steps: vec![],
        };
        serde_json::from_slice(&Manifest::new(flow, vec![layer]).to_canonical()).unwrap()
    }

    fn refusal(v: &serde_json::Value) -> String {
        let bytes = serde_json::to_vec(v).unwrap();
        Manifest::parse(&bytes, Digest::of(&bytes))
            .expect_err("a malformed manifest was accepted")
            .to_string()
    }

    #[test]
    fn malformed_manifests_are_refused_with_the_reason() {
        let ok = serde_json::to_vec(&valid()).unwrap();
        Manifest::parse(&ok, Digest::of(&ok)).unwrap();
        let err = Manifest::parse(b"\x00not json", Digest::of(b"x")).unwrap_err();
        assert!(err.to_string().contains("malformed manifest"), "{err}");

        let mut v = valid();
        v["format"] = "flowpack-manifest-v9".into();
        assert!(refusal(&v).contains("is not a flowpack package format"));
        let mut v = valid();
        v["layers"] = serde_json::json!([]);
        assert!(refusal(&v).contains("no code layer"));
        let mut v = valid();
        let l = v["layers"][0].clone();
        v["layers"] = serde_json::json!([l.clone(), l]);
        assert!(refusal(&v).contains("each once"), "{}", refusal(&v));
        let mut v = valid();
        v["layers"][0]["size"] = serde_json::json!(-1);
        assert!(refusal(&v).contains("malformed"));
        let mut v = valid();
        v["layers"][0]["digest"] = "sha256:zz".into();
        assert!(refusal(&v).contains("malformed"));
        // Entry counts no tar stream of that size can hold (extraction checks the rest).
        let mut v = valid();
        v["layers"][0]["entries"] = 3.into();
        assert!(
            refusal(&v).contains("declares 3 entries in 2048 bytes"),
            "{}",
            refusal(&v)
        );
        let mut v = valid();
        v["layers"][0]["size"] = 2049.into();
        assert!(refusal(&v).contains("not a whole number of 512-byte blocks"));
        let mut v = valid();
        v["layers"][0]["size"] = serde_json::json!(1u64 << 40);
        v["layers"][0]["entries"] = 2_000_001.into();
        assert!(refusal(&v).contains("more than the 2000000 a layer may hold"));
        // Graphs a runtime would trip on: a missing step, a cycle, no end.
        let mut v = valid();
        v["flow"]["steps"]["start"]["next"] = serde_json::json!({"linear": "nowhere"});
        assert!(
            refusal(&v).contains("its flow is invalid"),
            "{}",
            refusal(&v)
        );
        let mut v = valid();
        v["flow"]["steps"]["end"]["next"] = serde_json::json!({"linear": "start"});
        assert!(
            refusal(&v).contains("its flow is invalid"),
            "{}",
            refusal(&v)
        );
        let mut v = valid();
        v["flow"]["steps"].as_object_mut().unwrap().remove("end");
        assert!(
            refusal(&v).contains("its flow is invalid"),
            "{}",
            refusal(&v)
        );
    }

    /// A v2 manifest: `train` and `score` have their own environments, `end` uses the
    /// flow's.
    fn per_step() -> (Manifest, Digest, Digest, Digest) {
        let flow = Flow::parse(
            "name: m\nenv: {packages: [six==1.16.0]}\nsteps:\n  start: {run: 'true', next: train}\n  train: {run: 'true', next: score, python_env: {packages: [six==1.17.0]}}\n  score: {run: 'true', next: end, python_env: {packages: [six==1.17.0]}}\n  end: {run: 'true'}\n",
            Path::new("flow.yaml"),
        )
        .unwrap();
        let layer = |kind, seed: &str, steps: &[&str]| Layer {
            kind,
            digest: Digest::of(seed.as_bytes()),
            size: 2048,
            entries: 1,
            python: None,
            platform: None,
            steps: steps.iter().map(|s| s.to_string()).collect(),
        };
        let (code, base, own) = (Digest::of(b"code"), Digest::of(b"base"), Digest::of(b"own"));
        // Given in any order, one layer per step: merged by digest, put in canonical order.
        let m = Manifest::new(
            flow,
            vec![
                layer(LayerKind::Env, "own", &["train"]),
                layer(LayerKind::Env, "base", &[]),
                layer(LayerKind::Env, "own", &["score"]),
                layer(LayerKind::Code, "code", &[]),
            ],
        );
        (m, code, base, own)
    }

    #[test]
    fn per_step_env_layers_need_format_v2_and_each_step_finds_its_own() {
        let (m, code, base, own) = per_step();
        assert_eq!(m.format, FORMAT);
        let digests: Vec<Digest> = m.layers.iter().map(|l| l.digest).collect();
        assert_eq!(digests, [code, base, own]);
        assert_eq!(m.layers[2].steps, ["score", "train"]);
        let bytes = m.to_canonical();
        let back = Manifest::parse(&bytes, Digest::of(&bytes)).unwrap();
        assert_eq!(back, m);
        let env = |s: &str| back.env_layer(s).map(|l| l.digest);
        assert_eq!(
            (env("start"), env("train"), env("score"), env("end")),
            (Some(base), Some(own), Some(own), Some(base))
        );
        assert_eq!(back.layer(LayerKind::Env).unwrap().digest, base);

        // What a v2 manifest must hold together.
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        type Mutation<'a> = &'a dyn Fn(&mut serde_json::Value);
        let cases: [(Mutation, &str); 7] = [
            (
                &|v| v["format"] = FORMAT_V1.into(),
                "one of each kind in format",
            ),
            (
                &|v| v["layers"][2]["steps"] = serde_json::json!(["train"]),
                "no env layer names it",
            ),
            (
                &|v| v["layers"][2]["steps"] = serde_json::json!(["score", "start", "train"]),
                "'start', which has no `python_env`",
            ),
            (
                &|v| v["layers"][2]["steps"] = serde_json::json!(["score", "nope", "train"]),
                "sorted",
            ),
            (
                &|v| v["layers"][2]["steps"] = serde_json::json!(["score", "train", "zz"]),
                "'zz', which the flow has not",
            ),
            (
                &|v| v["layers"][0]["steps"] = serde_json::json!(["train"]),
                "one code layer",
            ),
            (
                &|v| {
                    v["format"] = FORMAT_V1.into();
                    v["layers"].as_array_mut().unwrap().remove(1);
                },
                "which format 'flowpack.package.v1' does not have",
            ),
        ];
        for (mutate, expected) in cases {
            let mut v = v.clone();
            mutate(&mut v);
            let r = refusal(&v);
            assert!(r.contains(expected), "{expected}: {r}");
        }
    }

    #[test]
    fn an_older_format_manifest_reads_and_keeps_its_bytes_a_newer_one_asks_to_upgrade() {
        // Written by flowpack before format v2 (the fuzz corpus's seed of the train example).
        let old = include_bytes!("../../fuzz/corpus/manifest_parse/train.json");
        let m = Manifest::parse(old, Digest::of(old)).unwrap();
        assert_eq!(m.format, FORMAT_V1);
        assert!(m.env_layer("train").is_some());
        // Written again from its flow and layers: the same bytes, the same package id.
        let again = Manifest::new(m.flow.clone(), m.layers.clone());
        assert_eq!(again.to_canonical(), old.to_vec());
        assert_eq!(again.digest(), Digest::of(old));

        // A newer format is refused before anything else is read (it may hold new fields).
        let mut v: serde_json::Value = serde_json::from_slice(old).unwrap();
        v["format"] = "flowpack.package.v3".into();
        v["layers"][0]["compression"] = "something-new".into();
        let bytes = serde_json::to_vec(&v).unwrap();
        let err = Manifest::parse(&bytes, Digest::of(&bytes)).unwrap_err();
        assert!(matches!(err, ManifestError::Newer { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("made by a newer flowpack") && msg.contains("upgrade flowpack"),
            "{msg}"
        );
    }

    #[test]
    fn a_manifest_parses_back_to_the_same_bytes() {
        // Found by fuzzing: without serde_json's float_roundtrip, this default came back
        // one bit off, so a parsed manifest no longer hashed to its own digest.
        let mut v = valid();
        v["flow"]["parameters"] =
            serde_json::json!({"p": {"type": "float", "default": 9.707160826191302e-8}});
        let bytes = crate::canonical::to_string(&v).into_bytes();
        let m = Manifest::parse(&bytes, Digest::of(&bytes)).unwrap();
        assert_eq!(m.to_canonical(), bytes);
        assert_eq!(m.digest(), Digest::of(&bytes));
    }
}
