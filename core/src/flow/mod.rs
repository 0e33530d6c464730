//! The flow file: its model, parsing and validation.
//!
//! A flow is a graph of steps. [`Flow::load`] reads a YAML flow file (or describes a
//! Python one, [`python`]), merges `defaults`
//! into every step and checks the graph; every error carries `file:line:col` and says
//! what to do. The resulting [`Flow`] is the *normalized* flow: fully resolved, in
//! canonical order, the form that goes into a package manifest and that both the laptop
//! side and the pod side read. The schema is documented in `docs/flow.md`.

mod error;
pub(crate) mod locate;
mod parse;
pub mod python;
pub mod schedule;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use error::{FlowError, FlowErrors};
pub use locate::Pos;
pub use parse::{byte_quantity, cpu_cores, merge_requirements};

/// The image a step runs in when the flow names none (built by `images/build.sh`).
pub const DEFAULT_IMAGE: &str = "localhost/flowpack-python:3.11";
/// The Python version the env layer targets when the flow names none.
pub const DEFAULT_PYTHON: &str = "3.11";
/// The platform the env layer targets when the flow names none.
pub const DEFAULT_PLATFORM: &str = "x86_64-manylinux_2_28";
/// How many tasks run at once (local workers, KFP `ParallelFor` parallelism) by default.
pub const DEFAULT_MAX_WORKERS: u32 = 16;
/// How many times one step may run in a run (per foreach index) when the flow names no
/// `max_visits`: the bound on a recursive switch (docs/flow.md, "Recursive switches").
pub const DEFAULT_MAX_VISITS: u32 = 100;
/// The largest flow file [`Flow::load`] reads. (Its nodes are limited too, and so is
/// their nesting: `locate::MAX_NODES`, `locate::MAX_DEPTH`.)
pub const MAX_FILE_SIZE: u64 = 8 << 20;

/// A validated, normalized flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// The flow's name: the KFP pipeline name and the store's folder for it.
    pub name: String,
    /// Free text shown with the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The code layer's root, relative to the flow file's folder.
    pub code: String,
    /// How the Python environment layer is made, if the flow has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvSpec>,
    /// Run parameters by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, Parameter>,
    /// How many tasks may run at once.
    pub max_workers: u32,
    /// The steps by name; defaults are already merged into each.
    pub steps: BTreeMap<String, Step>,
    /// When the flow should run by itself (carried for schedulers; `compile` ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// The step run after every other task ended, when the run failed (an exit hook:
    /// docs/flow.md, "Exit hooks").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    /// The step run after every other task ended, whatever the run's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// How many times one step may run in a run (per foreach index): the bound on
    /// recursive switches. None: [`DEFAULT_MAX_VISITS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<u32>,
}

/// Which exit hook a step is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookKind {
    /// `on_failure`: runs only when the run failed.
    OnFailure,
    /// `on_exit`: runs whatever the run's status.
    OnExit,
}

impl HookKind {
    /// The flow file's key for it.
    pub fn key(self) -> &'static str {
        match self {
            Self::OnFailure => "on_failure",
            Self::OnExit => "on_exit",
        }
    }
}

/// A recurring schedule: a 5-field cron expression in a time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `minute hour day-of-month month day-of-week`, e.g. `0 0 * * *`.
    pub cron: String,
    /// An IANA time zone name, `UTC` or `Europe/Berlin`.
    pub timezone: String,
}

impl Schedule {
    /// The time zone when the flow names none.
    pub const DEFAULT_TIMEZONE: &str = "UTC";
}

/// Where the Python environment layer comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EnvSpec {
    /// Installed from an inline list of requirements for a target platform: built exactly
    /// as a requirements file with one entry per line would be (and cached alike).
    Packages {
        /// The requirements, `scikit-learn==1.5.2`, one line of a requirements file each.
        packages: Vec<String>,
        /// Target Python version, `3.11`.
        python: String,
        /// Target platform, `x86_64-manylinux_2_28`.
        platform: String,
    },
    /// Installed from a requirements file for a target platform.
    Requirements {
        /// The requirements file, relative to the flow file's folder.
        requirements: String,
        /// Target Python version, `3.11`.
        python: String,
        /// Target platform, `x86_64-manylinux_2_28`.
        platform: String,
    },
    /// An existing folder of installed packages (a `site-packages` or `--target` folder).
    Path {
        /// The folder, relative to the flow file's folder.
        path: String,
    },
}

/// A run parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// Its default; a parameter without one must be given at each run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// One line of help, shown in the KFP run form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// The type of a run parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Text.
    String,
    /// A 64-bit integer.
    Int,
    /// A 64-bit float.
    Float,
    /// `true` or `false`.
    Bool,
    /// Any JSON value.
    Json,
}

impl ParamType {
    /// The type's name as written in flow files.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::Json => "json",
        }
    }

    /// Parses a value given on a command line (`--param alpha=0.5`).
    pub fn parse_text(self, text: &str) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        let bad = || format!("'{text}' is not a valid {}", self.name());
        Ok(match self {
            Self::String => Value::String(text.to_string()),
            Self::Int => Value::from(text.trim().parse::<i64>().map_err(|_| bad())?),
            Self::Float => {
                let f = text.trim().parse::<f64>().map_err(|_| bad())?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(bad)?
            }
            Self::Bool => match text.trim() {
                "true" | "True" | "1" => Value::Bool(true),
                "false" | "False" | "0" => Value::Bool(false),
                _ => return Err(bad()),
            },
            Self::Json => serde_json::from_str(text).map_err(|e| format!("{}: {e}", bad()))?,
        })
    }

    /// `value` as command-line text that [`ParamType::parse_text`] reads back to the same
    /// value: a json parameter's value as JSON (a string quoted: `"abc"`), any other
    /// string as it is, numbers and booleans as JSON. `resume` passes stored values on
    /// through it.
    pub fn to_text(self, value: &serde_json::Value) -> String {
        match (self, value) {
            (Self::Json, v) => v.to_string(),
            (_, serde_json::Value::String(s)) => s.clone(),
            (_, v) => v.to_string(),
        }
    }

    /// Whether `value` is of this type.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Int => value.is_i64(),
            Self::Float => value.is_number(),
            Self::Bool => value.is_boolean(),
            Self::Json => true,
        }
    }
}

/// One step of the flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What the step runs.
    pub run: Run,
    /// Where the flow goes after this step.
    pub next: Transition,
    /// Whether this step joins the branches of a split or foreach.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join: bool,
    /// Artifacts this step declares it writes (checked at joins; optional).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub outputs: BTreeSet<String>,
    /// Settings, with the flow's defaults merged in.
    pub settings: Settings,
}

/// The command of a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Run {
    /// A command line run by `/bin/sh -c`.
    Shell(String),
    /// An argument vector run directly.
    Exec(Vec<String>),
}

/// Where the flow goes after a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The flow ends here (only `end`).
    End,
    /// One next step.
    Linear(String),
    /// Several next steps that run in parallel and meet at a join.
    Split(Vec<String>),
    /// One task of `body` per item of the JSON list artifact `over`.
    Foreach {
        /// The artifact (a JSON list) this step writes and fans out over.
        over: String,
        /// The step each item runs.
        body: String,
    },
    /// One next step chosen by the value of an artifact this step writes.
    Switch {
        /// The artifact (a short text) this step writes.
        on: String,
        /// Next step by value.
        cases: BTreeMap<String, String>,
    },
}

impl Transition {
    /// The steps this one may lead to, in a stable order.
    pub fn targets(&self) -> Vec<&str> {
        match self {
            Self::End => vec![],
            Self::Linear(s) => vec![s],
            Self::Split(v) => v.iter().map(String::as_str).collect(),
            Self::Foreach { body, .. } => vec![body],
            Self::Switch { cases, .. } => {
                let mut seen = BTreeSet::new();
                cases
                    .values()
                    .filter(|s| seen.insert(s.as_str()))
                    .map(String::as_str)
                    .collect()
            }
        }
    }
}

/// Per-step settings (each may come from `defaults`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The container image.
    pub image: String,
    /// Requests and limits.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment variables from Kubernetes secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretRef>,
    /// Retries after a failed attempt.
    #[serde(default, skip_serializing_if = "Retry::is_none")]
    pub retry: Retry,
    /// Wall-clock limit of one attempt, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Whether the step cache may reuse a committed task of this step (docs/runtime.md).
    pub cache: bool,
    /// If set, only these artifacts are restored for the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<BTreeSet<String>>,
    /// Restore each input only when the step asks for it (docs/runtime.md, "Inputs on
    /// demand"): what flowpack's Python steps do, so an unread artifact costs nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lazy_inputs: bool,
    /// Kubernetes node selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Kubernetes service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Kubernetes image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// The step's own Python environment (`@pypi`), resolved: the flow's `env.packages`
    /// with the step's packages merged over them by name. None: the step uses the flow's
    /// env layer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_env: Option<PythonEnv>,
}

/// A step's own Python environment (`python_env`, what `@pypi` becomes), resolved against
/// the flow's `env`: built as an env layer of its own, exactly as an `env` of the
/// `packages` form with these fields would be (same cache entry, same layer).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonEnv {
    /// The requirements, one line of a requirements file each, base packages first.
    pub packages: Vec<String>,
    /// Target Python version, `3.11`.
    pub python: String,
    /// Target platform, `x86_64-manylinux_2_28`.
    pub platform: String,
}

impl PythonEnv {
    /// The flow-level `env` this environment is built as.
    pub fn spec(&self) -> EnvSpec {
        EnvSpec::Packages {
            packages: self.packages.clone(),
            python: self.python.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// CPU, memory, GPU and disk of a step. Quantities use Kubernetes notation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores, `"1"`, `"500m"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, `"2Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Number of GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// The GPU resource or accelerator type, `nvidia.com/gpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// Ephemeral disk, `"10Gi"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
}

impl Resources {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A Kubernetes secret key exposed as an environment variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The secret's name.
    pub secret: String,
    /// The key within it.
    pub key: String,
}

/// Retries after a failed attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// How many more attempts after the first.
    pub times: u32,
    /// Seconds to wait before a retry.
    pub delay_seconds: u64,
}

impl Retry {
    fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// A Kubernetes toleration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    /// Taint key (empty with `Exists` tolerates everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` or `Exists`.
    pub operator: String,
    /// Taint value, with `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; none means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// With `NoExecute`: how long the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// When Kubernetes pulls a step's image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Every time.
    Always,
    /// When the node lacks it.
    IfNotPresent,
    /// Never.
    Never,
}

impl Flow {
    /// Reads and validates the flow file at `path` (at most [`MAX_FILE_SIZE`] bytes: a
    /// larger one is refused before it is read whole). A `.py` file is described by
    /// Python first ([`python`]); its errors point into the `.py` file.
    pub fn load(path: &Path) -> Result<Flow, FlowErrors> {
        use std::io::Read;
        if python::is_python_flow(path) {
            return python::load(path);
        }
        let fail = |msg: String| FlowErrors::one(FlowError::new(path, Pos::default(), msg));
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes))
            .map_err(|e| fail(format!("cannot read the flow file: {e}")))?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(fail(format!(
                "the flow file is larger than {} MiB: a flow file describes a flow; keep data in files the steps read",
                MAX_FILE_SIZE >> 20
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let pos = Pos {
                line: good.iter().filter(|b| **b == b'\n').count() + 1,
                col: good.len() - line_start + 1,
            };
            FlowErrors::one(FlowError::new(path, pos, "the flow file is not UTF-8 here"))
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates flow text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Flow, FlowErrors> {
        let (flow, loc) = parse::parse(text, path)?;
        validate::validate(&flow, &loc, path)?;
        Ok(flow)
    }

    /// Validates a flow that did not come from a file (a package's manifest): the graph
    /// rules of [`Flow::parse`], with no positions to report.
    pub fn check(&self) -> Result<(), FlowErrors> {
        self.check_names()?;
        // A step's environment becomes a requirements file: one line per entry.
        for (name, step) in &self.steps {
            if let Some(e) = &step.settings.python_env {
                let bad = if e.packages.is_empty() {
                    Some("it installs no packages".to_string())
                } else if let Some(p) = e.packages.iter().find(|p| !parse::is_requirement_line(p)) {
                    Some(format!(
                        "package {p:?} is not one line of a requirements file"
                    ))
                } else if !parse::is_python_version(&e.python) {
                    Some(format!(
                        "python {:?} is not a version like \"3.11\"",
                        e.python
                    ))
                } else {
                    None
                };
                if let Some(why) = bad {
                    return Err(FlowErrors::one(FlowError::new(
                        Path::new("manifest"),
                        Pos::default(),
                        format!("step '{name}': `python_env`: {why}"),
                    )));
                }
            }
        }
        if let Some(s) = &self.schedule {
            let bad = schedule::check_cron(&s.cron).err().or_else(|| {
                (!schedule::is_timezone(&s.timezone))
                    .then(|| format!("time zone {:?} is not an IANA time zone name", s.timezone))
            });
            if let Some(msg) = bad {
                return Err(FlowErrors::one(FlowError::new(
                    Path::new("manifest"),
                    Pos::default(),
                    msg,
                )));
            }
        }
        validate::validate(self, &locate::Locations::default(), Path::new("manifest"))
    }

    /// Every name of a flow that did not come from a file, by the rules the parser applies
    /// to flow files ([`crate::name`]): a manifest's names become keys, file names and
    /// environment variable names.
    fn check_names(&self) -> Result<(), FlowErrors> {
        use crate::name::{NameKind as K, check};
        let mut names: Vec<(K, &str)> = vec![(K::Flow, &self.name)];
        names.extend(self.hooks().into_iter().map(|(_, s)| (K::Step, s)));
        names.extend(self.parameters.keys().map(|p| (K::Parameter, p.as_str())));
        for (name, step) in &self.steps {
            names.push((K::Step, name));
            names.extend(step.next.targets().into_iter().map(|t| (K::Step, t)));
            match &step.next {
                Transition::Foreach { over: a, .. } | Transition::Switch { on: a, .. } => {
                    names.push((K::Artifact, a));
                }
                _ => {}
            }
            names.extend(step.outputs.iter().map(|a| (K::Artifact, a.as_str())));
            let s = &step.settings;
            names.extend(s.inputs.iter().flatten().map(|a| (K::Artifact, a.as_str())));
            names.extend(
                s.env
                    .keys()
                    .chain(s.secrets.keys())
                    .map(|v| (K::EnvVar, v.as_str())),
            );
        }
        let errors: Vec<FlowError> = names
            .into_iter()
            .filter_map(|(kind, n)| check(kind, n).err())
            .map(|e| FlowError::new(Path::new("manifest"), Pos::default(), e.to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FlowErrors(errors))
        }
    }

    /// The exit hooks in the order they run: `on_failure`, then `on_exit`.
    pub fn hooks(&self) -> Vec<(HookKind, &str)> {
        [
            (HookKind::OnFailure, &self.on_failure),
            (HookKind::OnExit, &self.on_exit),
        ]
        .into_iter()
        .filter_map(|(k, s)| s.as_deref().map(|s| (k, s)))
        .collect()
    }

    /// Which exit hook `step` is, if any.
    pub fn hook_kind(&self, step: &str) -> Option<HookKind> {
        self.hooks()
            .into_iter()
            .find(|(_, s)| *s == step)
            .map(|(k, _)| k)
    }

    /// The recursive switches' cases, as (switch step, case, the earlier step it leads back
    /// to): each visit of such a loop is a new task (docs/format.md, "Task ids"). Empty for
    /// an acyclic flow. Meaningful for a validated flow.
    pub fn recursive_cases(&self) -> Vec<(&str, &str, &str)> {
        validate::recursive_cases(self)
    }

    /// How many times one step may run in a run (per foreach index).
    pub fn visit_limit(&self) -> u32 {
        self.max_visits.unwrap_or(DEFAULT_MAX_VISITS)
    }

    /// The steps in a stable order: breadth-first from `start`, by transition order.
    pub fn order(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        let mut queue = std::collections::VecDeque::from(["start"]);
        let mut out = Vec::new();
        while let Some(name) = queue.pop_front() {
            if !seen.insert(name) {
                continue;
            }
            out.push(name);
            if let Some(step) = self.steps.get(name) {
                queue.extend(step.next.targets());
            }
        }
        out.extend(
            self.steps
                .keys()
                .map(String::as_str)
                .filter(|s| !seen.contains(s)),
        );
        out
    }

    /// The canonical JSON of the normalized flow (sorted keys, no spaces).
    pub fn canonical_json(&self) -> String {
        crate::canonical::to_string(self)
    }
}

/// Whether `s` can name an artifact: 1 to 128 letters, digits, `.`, `_` or `-`, not
/// starting with `.`.
pub fn is_artifact_name(s: &str) -> bool {
    parse::is_artifact_name(s)
}

#[cfg(test)]
mod tests;
