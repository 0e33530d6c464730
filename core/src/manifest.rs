//! The package manifest and the version pointer, the two documents that name packages.
//!
//! A manifest is canonical JSON (see [`crate::canonical`]) holding the normalized flow and
//! the layers; the package id is the SHA-256 of those bytes, and the manifest is stored as
//! the blob of that digest. Nothing in it depends on the machine or the time of packing.

use serde::{Deserialize, Serialize};

use crate::{Digest, Flow};

/// The manifest format this flowpack writes and reads.
pub const FORMAT: &str = "flowpack.package.v1";
/// Manifests larger than this are refused on read.
pub const MAX_MANIFEST_SIZE: u64 = 16 * 1024 * 1024;

/// A package: the flow and its layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The normalized flow.
    pub flow: Flow,
    /// The layers, code first.
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
}

impl Manifest {
    /// A manifest of `flow` and `layers` (sorted by kind).
    pub fn new(flow: Flow, mut layers: Vec<Layer>) -> Self {
        layers.sort_by_key(|l| l.kind);
        Self {
            format: FORMAT.to_string(),
            flow,
            layers,
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
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.format != FORMAT {
            return Err(bad(format!(
                "format '{}' is not '{FORMAT}': it was written by another flowpack version",
                m.format
            )));
        }
        let mut kinds: Vec<LayerKind> = m.layers.iter().map(|l| l.kind).collect();
        kinds.dedup();
        if kinds.len() != m.layers.len() || !m.layers.is_sorted_by_key(|l| l.kind) {
            return Err(bad("layers must be one of each kind, code first".into()));
        }
        if !m.layers.iter().any(|l| l.kind == LayerKind::Code) {
            return Err(bad("it has no code layer".into()));
        }
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

    /// The layer of `kind`, if the package has one.
    pub fn layer(&self, kind: LayerKind) -> Option<&Layer> {
        self.layers.iter().find(|l| l.kind == kind)
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
        assert!(refusal(&v).contains("another flowpack version"));
        let mut v = valid();
        v["layers"] = serde_json::json!([]);
        assert!(refusal(&v).contains("no code layer"));
        let mut v = valid();
        let l = v["layers"][0].clone();
        v["layers"] = serde_json::json!([l.clone(), l]);
        assert!(refusal(&v).contains("one of each kind"));
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
