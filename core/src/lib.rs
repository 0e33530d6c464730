//! flowpack's shared core: everything both the laptop side (`push`, `compile`) and the pod
//! side (`step`) must agree on.
//!
//! - [`flow`]: the flow file model, parser and validator.
//! - [`digest`]: SHA-256 digests, the names of everything stored.
//! - [`canonical`]: canonical JSON for hashed documents.
//! - [`archive`]: the deterministic layer format (tar + zstd) and its safe extraction.
//! - [`manifest`]: the package manifest and version pointer.
//! - [`package`]: reading packages back: manifest and verified, safe layer extraction.
//! - [`name`]: the rules for names, and the check of every name read from the store.
//! - [`run`]: run, task and artifact records.
//! - [`store`]: the content-addressed store over `object_store`, and the bucket layout.
//! - [`env_vars`]: every `FLOWPACK_*` environment variable flowpack reads or sets.
//! - [`plan`]: the flow lowered into scopes, the input of every compiler.
//! - [`invocation`]: the `flowpack step` argument list, built and parsed in one place.
//! - [`python`]: the embedded Python package and where it is written out for `PYTHONPATH`.
#![warn(missing_docs)]

pub mod archive;
pub mod canonical;
pub mod digest;
pub mod env_vars;
pub mod flow;
pub mod invocation;
pub mod manifest;
pub mod name;
pub mod package;
pub mod plan;
pub mod python;
pub mod reach;
pub mod run;
pub mod store;

pub use digest::Digest;
pub use flow::Flow;
