//! Every environment variable flowpack reads, in one place (documented for users in
//! `docs/configuration.md`).

/// The store URL or folder, when `--store` is not given; set for a step: its store's URL
/// (never with credentials).
pub const FLOWPACK_STORE: &str = "FLOWPACK_STORE";
/// The local cache folder (built env layers, fetched packages); default
/// `$XDG_CACHE_HOME/flowpack` or `~/.cache/flowpack`.
pub const FLOWPACK_CACHE_DIR: &str = "FLOWPACK_CACHE_DIR";

/// The local cache folder: `FLOWPACK_CACHE_DIR` (made absolute, because task containers
/// mount it at the same path), else `$XDG_CACHE_HOME/flowpack`, else `~/.cache/flowpack`.
/// One rule for the CLI's node cache and the embedded Python package ([`crate::python`]).
pub fn cache_dir() -> std::io::Result<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(d) = std::env::var_os(FLOWPACK_CACHE_DIR).filter(|d| !d.is_empty()) {
        return std::path::absolute(&d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("flowpack"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| std::io::Error::other("neither FLOWPACK_CACHE_DIR nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".cache").join("flowpack"))
}
/// The log filter for flowpack's own messages on stderr (`info`, `debug`, `flowpack=trace`).
pub const FLOWPACK_LOG: &str = "FLOWPACK_LOG";
/// The `uv` program used to build env layers; default `uv` on `PATH`.
pub const FLOWPACK_UV: &str = "FLOWPACK_UV";
/// The Python interpreter used to build env layers with pip when uv is absent; default
/// `python3` on `PATH`.
pub const FLOWPACK_PYTHON: &str = "FLOWPACK_PYTHON";

/// Set for a step: the flow's name.
pub const FLOWPACK_FLOW: &str = "FLOWPACK_FLOW";
/// Set for a step: the run id.
pub const FLOWPACK_RUN_ID: &str = "FLOWPACK_RUN_ID";
/// Set for a step: the step's name.
pub const FLOWPACK_STEP: &str = "FLOWPACK_STEP";
/// Set for a step: the task id (`0`, or foreach indices `3`, `3.1`).
pub const FLOWPACK_TASK_ID: &str = "FLOWPACK_TASK_ID";
/// Set for a step: the attempt, from 0.
pub const FLOWPACK_ATTEMPT: &str = "FLOWPACK_ATTEMPT";
/// Set for a step: the folder of restored artifacts.
pub const FLOWPACK_INPUT_DIR: &str = "FLOWPACK_INPUT_DIR";
/// Set for a step: the folder to write artifacts to (each top-level entry is one).
pub const FLOWPACK_OUTPUT_DIR: &str = "FLOWPACK_OUTPUT_DIR";
/// Set for a step: a JSON file with every parameter's value.
pub const FLOWPACK_PARAMS: &str = "FLOWPACK_PARAMS";
/// Set for a step: `FLOWPACK_PARAM_<NAME>` holds each parameter's value as text, while it
/// fits the environment budget (docs/runtime.md); `FLOWPACK_PARAMS` has them all.
pub const FLOWPACK_PARAM_PREFIX: &str = "FLOWPACK_PARAM_";
/// Set for a task inside a foreach: its index in the list.
pub const FLOWPACK_SPLIT_INDEX: &str = "FLOWPACK_SPLIT_INDEX";
/// Set for a step: the absolute path of the running `flowpack` binary (inside a container,
/// the image's), for the Python package to call back.
pub const FLOWPACK_BIN: &str = "FLOWPACK_BIN";
/// Set for a step: a JSON list of its parent tasks, `"STEP/TASK"`, in the order of the
/// inputs layout (a foreach's tasks by index).
pub const FLOWPACK_PARENTS: &str = "FLOWPACK_PARENTS";
/// Set for a step with `lazy_inputs`: the Unix socket through which it asks for each input
/// (docs/runtime.md, "Inputs on demand").
pub const FLOWPACK_INPUTS_SOCKET: &str = "FLOWPACK_INPUTS_SOCKET";
/// Set for a step of a resumed run: the run it resumes.
pub const FLOWPACK_ORIGIN_RUN_ID: &str = "FLOWPACK_ORIGIN_RUN_ID";
/// Set for an exit hook (docs/runtime.md, "Exit hooks"): `succeeded` or `failed`, the
/// status of the run's other tasks.
pub const FLOWPACK_RUN_STATUS: &str = "FLOWPACK_RUN_STATUS";
/// Set for an exit hook: a JSON list of the run's failed tasks, `"STEP/TASK"` (left out
/// when too long for the environment: the file below always has it).
pub const FLOWPACK_FAILED_TASKS: &str = "FLOWPACK_FAILED_TASKS";
/// Set for an exit hook: a file holding the JSON list of `FLOWPACK_FAILED_TASKS`.
pub const FLOWPACK_FAILED_TASKS_FILE: &str = "FLOWPACK_FAILED_TASKS_FILE";
/// Set for the first task of a foreach body: its item (text as is, other JSON as JSON).
pub const FLOWPACK_SPLIT_ITEM: &str = "FLOWPACK_SPLIT_ITEM";

/// The Kubeflow Pipelines API URL, when `--kfp-url` is not given.
pub const FLOWPACK_KFP_URL: &str = "FLOWPACK_KFP_URL";
/// The bearer token for the KFP API (never printed, never stored).
pub const FLOWPACK_KFP_TOKEN: &str = "FLOWPACK_KFP_TOKEN";
/// The KFP namespace, when `--kfp-namespace` is not given.
pub const FLOWPACK_KFP_NAMESPACE: &str = "FLOWPACK_KFP_NAMESPACE";
/// The time zone the KFP cluster reads recurring runs' cron in (its scheduled-workflow
/// controller's `CRON_SCHEDULE_TIMEZONE`; default UTC): a schedule in another is refused.
pub const FLOWPACK_KFP_TIMEZONE: &str = "FLOWPACK_KFP_TIMEZONE";

/// The Argo Server URL, when `--argo-server` is not given.
pub const FLOWPACK_ARGO_SERVER: &str = "FLOWPACK_ARGO_SERVER";
/// The bearer token for the Argo Server (`argo auth token`; never printed, never stored).
pub const FLOWPACK_ARGO_TOKEN: &str = "FLOWPACK_ARGO_TOKEN";
/// The Kubernetes namespace of Argo's WorkflowTemplates and Workflows, when
/// `--argo-namespace` is not given (default `argo`).
pub const FLOWPACK_ARGO_NAMESPACE: &str = "FLOWPACK_ARGO_NAMESPACE";

/// The podman program for `flowpack run --containers` (default: `podman` on PATH).
pub const FLOWPACK_PODMAN: &str = "FLOWPACK_PODMAN";
