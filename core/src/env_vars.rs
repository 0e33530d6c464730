//! Every environment variable flowpack reads, in one place (documented for users in
//! `docs/configuration.md`).

/// The store URL or folder, when `--store` is not given.
pub const FLOWPACK_STORE: &str = "FLOWPACK_STORE";
/// The local cache folder (built env layers, fetched packages); default
/// `$XDG_CACHE_HOME/flowpack` or `~/.cache/flowpack`.
pub const FLOWPACK_CACHE_DIR: &str = "FLOWPACK_CACHE_DIR";
/// The log filter for flowpack's own messages on stderr (`info`, `debug`, `flowpack=trace`).
pub const FLOWPACK_LOG: &str = "FLOWPACK_LOG";
/// The `uv` program used to build env layers; default `uv` on `PATH`.
pub const FLOWPACK_UV: &str = "FLOWPACK_UV";
/// The Python interpreter used to build env layers with pip when uv is absent; default
/// `python3` on `PATH`.
pub const FLOWPACK_PYTHON: &str = "FLOWPACK_PYTHON";
