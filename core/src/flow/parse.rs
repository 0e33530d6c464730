//! From YAML text to a normalized [`Flow`]: serde reads the document's shape, then each
//! field is checked and `defaults` are merged into every step. Graph checks are in
//! `validate`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_norway::Value;

use super::locate::{Locations, Seg, path};
use super::*;
use crate::name::{self, NameKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    name: Value,
    description: Option<String>,
    image: Option<String>,
    code: Option<String>,
    env: Option<RawEnv>,
    #[serde(default)]
    parameters: BTreeMap<String, Value>,
    defaults: Option<RawStep>,
    max_workers: Option<u32>,
    steps: BTreeMap<String, RawStep>,
    schedule: Option<RawSchedule>,
    on_failure: Option<String>,
    on_exit: Option<String>,
    max_visits: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    cron: Value,
    timezone: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    requirements: Option<String>,
    path: Option<String>,
    packages: Option<Vec<String>>,
    python: Option<Value>,
    platform: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    run: Option<Value>,
    next: Option<Value>,
    join: Option<bool>,
    foreach: Option<String>,
    switch: Option<RawSwitch>,
    outputs: Option<Vec<String>>,
    image: Option<String>,
    resources: Option<RawResources>,
    env: Option<BTreeMap<String, Value>>,
    secrets: Option<BTreeMap<String, String>>,
    retry: Option<Value>,
    timeout: Option<Value>,
    cache: Option<bool>,
    inputs: Option<Vec<String>>,
    lazy_inputs: Option<bool>,
    node_selector: Option<BTreeMap<String, String>>,
    tolerations: Option<Vec<Toleration>>,
    service_account: Option<String>,
    image_pull_policy: Option<PullPolicy>,
    python_env: Option<RawPythonEnv>,
}

/// A step's `python_env` as written: every field optional, resolved against the flow's
/// `env` and `defaults` ([`resolve_python_env`]).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPythonEnv {
    packages: Option<Vec<String>>,
    python: Option<Value>,
    platform: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    on: String,
    cases: BTreeMap<String, String>,
}

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    cpu: Option<Value>,
    memory: Option<String>,
    gpu: Option<u32>,
    gpu_type: Option<String>,
    disk: Option<String>,
}

/// Collects errors with positions while fields are converted.
struct Ctx<'a> {
    file: &'a Path,
    loc: Locations,
    errors: Vec<FlowError>,
}

impl Ctx<'_> {
    fn err_at_value(&mut self, p: &[Seg], msg: impl Into<String>) {
        let pos = self.loc.value(p);
        self.errors.push(FlowError::new(self.file, pos, msg));
    }

    fn err_at_key(&mut self, p: &[Seg], msg: impl Into<String>) {
        let pos = self.loc.key(p);
        self.errors.push(FlowError::new(self.file, pos, msg));
    }
}

/// Parses `text`: the normalized flow, and where each node of the text is (the
/// validator's errors point there too).
pub(super) fn parse(text: &str, file: &Path) -> Result<(Flow, Locations), FlowErrors> {
    // The scan vets the document (size, depth, aliases, duplicate keys) before serde
    // builds anything from it.
    let loc = Locations::scan(text, file)?;
    let raw: RawFlow = serde_norway::from_str(text).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                col: l.column(),
            })
            .unwrap_or(Pos { line: 1, col: 1 });
        FlowErrors::one(FlowError::new(file, pos, serde_message(&e)))
    })?;
    let mut cx = Ctx {
        file,
        loc,
        errors: Vec::new(),
    };
    let flow = convert(raw, &mut cx);
    if cx.errors.is_empty() {
        Ok((flow, cx.loc))
    } else {
        cx.errors.sort_by_key(|e| e.pos);
        Err(FlowErrors(cx.errors))
    }
}

/// serde's message without its trailing " at line L column C" (we print the position
/// first) and with a hint for the most common slip.
fn serde_message(e: &serde_norway::Error) -> String {
    let msg = strip_position(&e.to_string());
    if msg.contains("missing field `steps`") {
        return format!("{msg}: a flow needs a `steps:` mapping with at least `start` and `end`");
    }
    if msg.contains("missing field `name`") {
        return format!("{msg}: give the flow a `name:` (it becomes the KFP pipeline name)");
    }
    msg
}

/// Removes " at line L column C" from a message.
fn strip_position(msg: &str) -> String {
    let Some(i) = msg.find(" at line ") else {
        return msg.to_string();
    };
    let rest = &msg[i + " at line ".len()..];
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix(" column ").unwrap_or(rest);
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("{}{rest}", &msg[..i])
}

fn convert(raw: RawFlow, cx: &mut Ctx) -> Flow {
    let name = match &raw.name {
        Value::String(s) if is_flow_name(s) => s.clone(),
        other => {
            cx.err_at_value(
                &path!["name"],
                format!(
                    "flow name {} is not valid: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit",
                    show(other)
                ),
            );
            String::new()
        }
    };
    let code = raw.code.clone().unwrap_or_else(|| ".".into());
    if Path::new(&code).is_absolute() {
        cx.err_at_value(
            &path!["code"],
            "`code` must be relative to the flow file's folder",
        );
    }
    let env = raw.env.as_ref().and_then(|e| convert_env(e, cx));
    let mut parameters = BTreeMap::new();
    for (pname, value) in &raw.parameters {
        if let Some(p) = convert_param(pname, value, cx) {
            parameters.insert(pname.clone(), p);
        }
    }
    let max_workers = raw.max_workers.unwrap_or(DEFAULT_MAX_WORKERS);
    if max_workers == 0 {
        cx.err_at_value(&path!["max_workers"], "`max_workers` must be at least 1");
    }

    let defaults = raw.defaults.unwrap_or_default();
    for (field, set) in [
        ("run", defaults.run.is_some()),
        ("next", defaults.next.is_some()),
        ("join", defaults.join.is_some()),
        ("foreach", defaults.foreach.is_some()),
        ("switch", defaults.switch.is_some()),
        ("outputs", defaults.outputs.is_some()),
    ] {
        if set {
            cx.err_at_key(
                &path!["defaults", field],
                format!("`{field}` belongs to a step, not to `defaults`"),
            );
        }
    }
    let base = Settings {
        image: raw
            .image
            .clone()
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
        cache: true,
        ..Settings::default()
    };
    let base = merge_settings(base, &defaults, &path!["defaults"], cx);
    let defaults_env = defaults
        .python_env
        .as_ref()
        .map(|e| check_python_env(e, &path!["defaults", "python_env"], cx));

    let mut steps = BTreeMap::new();
    // Entries of the steps' merged settings so far: `defaults` are copied into every step,
    // so a flow file of bounded size could otherwise make a flow of any size.
    let mut entries = 0usize;
    for (sname, rs) in &raw.steps {
        let at = path!["steps", sname];
        if !is_step_name(sname) {
            cx.err_at_key(
                &at,
                format!(
                    "step name '{sname}' is not valid: use 1 to 100 letters, digits, '_' or '-', starting with a letter or digit (KFP task names allow no other characters)"
                ),
            );
        }
        let mut settings = merge_settings(base.clone(), rs, &at, cx);
        let step_env = rs.python_env.as_ref().map(|e| {
            let mut p = at.clone();
            p.push(Seg::Key("python_env".into()));
            (check_python_env(e, &p, cx), p)
        });
        let key_at = match &step_env {
            Some((_, p)) => p.clone(),
            None => path!["defaults", "python_env"],
        };
        let layers = [
            defaults_env.as_ref().map(Option::as_ref),
            step_env.as_ref().map(|(e, _)| e.as_ref()),
        ];
        if layers.iter().any(Option::is_some) {
            // An invalid layer was reported where it is written; the step gets none.
            if layers.iter().flatten().all(Option::is_some) {
                let given: Vec<&CheckedEnv> = layers.into_iter().flatten().flatten().collect();
                settings.python_env = resolve_python_env(sname, env.as_ref(), &given, &key_at, cx);
            }
        }
        entries += settings.entries();
        if entries > MAX_SETTINGS {
            cx.err_at_key(
                &at,
                format!(
                    "with `defaults` merged into every step, the steps up to '{sname}' hold more than {MAX_SETTINGS} settings (entries of env, secrets, node_selector, tolerations and inputs): give fewer defaults, or give them only to the steps that need them"
                ),
            );
            break;
        }
        if let Some(step) = convert_step(sname, rs, settings, cx) {
            steps.insert(sname.clone(), step);
        }
    }
    let schedule = raw.schedule.as_ref().and_then(|s| convert_schedule(s, cx));
    if raw.max_visits == Some(0) {
        cx.err_at_value(&path!["max_visits"], "`max_visits` must be at least 1");
    }
    Flow {
        name,
        description: raw.description,
        code,
        env,
        parameters,
        max_workers,
        steps,
        schedule,
        on_failure: raw.on_failure,
        on_exit: raw.on_exit,
        max_visits: raw.max_visits,
    }
}

fn convert_schedule(s: &RawSchedule, cx: &mut Ctx) -> Option<Schedule> {
    let cron = match scalar_text(&s.cron) {
        Some(c) => match super::schedule::check_cron(&c) {
            Ok(()) => Some(c.split_whitespace().collect::<Vec<_>>().join(" ")),
            Err(why) => {
                cx.err_at_value(&path!["schedule", "cron"], why);
                None
            }
        },
        None => {
            cx.err_at_value(
                &path!["schedule", "cron"],
                format!(
                    "`schedule.cron` must be a cron expression like \"0 0 * * *\", not {}",
                    show(&s.cron)
                ),
            );
            None
        }
    };
    let timezone = match &s.timezone {
        None => Some(Schedule::DEFAULT_TIMEZONE.to_string()),
        Some(v) => match scalar_text(v) {
            Some(t) if super::schedule::is_timezone(&t) => Some(t),
            _ => {
                cx.err_at_value(
                    &path!["schedule", "timezone"],
                    format!(
                        "`schedule.timezone` {} is not an IANA time zone name: use \"UTC\" or one like \"Europe/Berlin\"",
                        show(v)
                    ),
                );
                None
            }
        },
    };
    Some(Schedule {
        cron: cron?,
        timezone: timezone?,
    })
}

/// How many settings entries the steps of a flow may hold in all, `defaults` merged in.
pub const MAX_SETTINGS: usize = 100_000;

impl Settings {
    /// How many entries its maps and lists hold.
    fn entries(&self) -> usize {
        self.env.len()
            + self.secrets.len()
            + self.node_selector.len()
            + self.tolerations.len()
            + self.inputs.as_ref().map_or(0, BTreeSet::len)
            + self.python_env.as_ref().map_or(0, |e| e.packages.len())
    }
}

/// A `python_env` (of a step or of `defaults`) whose fields were checked.
struct CheckedEnv {
    packages: Vec<String>,
    python: Option<String>,
    platform: Option<String>,
}

/// Checks the fields of a `python_env` as written at `at`; None when one is invalid (and
/// reported).
fn check_python_env(e: &RawPythonEnv, at: &[Seg], cx: &mut Ctx) -> Option<CheckedEnv> {
    let sub = |k: &str| {
        let mut p = at.to_vec();
        p.push(Seg::Key(k.to_string()));
        p
    };
    let mut ok = true;
    let packages = e.packages.clone().unwrap_or_default();
    for (i, p) in packages.iter().enumerate() {
        if !is_requirement_line(p) {
            let mut at = sub("packages");
            at.push(Seg::Index(i));
            cx.err_at_value(
                &at,
                format!(
                    "package {p:?} must be one line of a requirements file, like \"numpy==2.1.0\""
                ),
            );
            ok = false;
        }
    }
    let python = match &e.python {
        None => None,
        Some(v) => match scalar_text(v) {
            Some(s) if is_python_version(&s) => Some(s),
            _ => {
                cx.err_at_value(
                    &sub("python"),
                    format!("`python` must be a version like \"3.11\", not {}", show(v)),
                );
                ok = false;
                None
            }
        },
    };
    if let Some(p) = &e.platform
        && p.trim().is_empty()
    {
        cx.err_at_value(&sub("platform"), "`platform` must not be empty");
        ok = false;
    }
    ok.then(|| CheckedEnv {
        packages,
        python,
        platform: e.platform.clone(),
    })
}

/// The environment of step `step`: the flow's `env` as the base, then each of `given`
/// (`defaults`, then the step's own) over it, as Metaflow merges `@pypi` over `@pypi_base`:
/// packages merged by name (a later one replaces an earlier one of the same name, new ones
/// are added at the end), a given `python` or `platform` wins. A base of the
/// `requirements` or `path` form cannot be merged by name: its `python` and `platform`
/// are kept, its packages are not (the step's list stands alone).
fn resolve_python_env(
    step: &str,
    base: Option<&EnvSpec>,
    given: &[&CheckedEnv],
    at: &[Seg],
    cx: &mut Ctx,
) -> Option<PythonEnv> {
    let (mut packages, mut python, mut platform) = match base {
        Some(EnvSpec::Packages {
            packages,
            python,
            platform,
        }) => (packages.clone(), python.clone(), platform.clone()),
        Some(EnvSpec::Requirements {
            python, platform, ..
        }) => (Vec::new(), python.clone(), platform.clone()),
        Some(EnvSpec::Path { .. }) | None => (
            Vec::new(),
            DEFAULT_PYTHON.to_string(),
            DEFAULT_PLATFORM.to_string(),
        ),
    };
    for g in given {
        packages = merge_requirements(packages, &g.packages);
        if let Some(p) = &g.python {
            python = p.clone();
        }
        if let Some(p) = &g.platform {
            platform = p.clone();
        }
    }
    if packages.is_empty() {
        cx.err_at_value(
            at,
            format!(
                "step '{step}': `python_env` installs no packages: list them in `python_env.packages` (or in the flow's `env.packages`), or leave `python_env` out"
            ),
        );
        return None;
    }
    Some(PythonEnv {
        packages,
        python,
        platform,
    })
}

/// `base` with `over` merged in by package name: an entry of `over` replaces the entry of
/// `base` for the same project (in its place), other entries of `over` are added at the
/// end. Lines that name no project (options, URLs, paths) are kept once each.
pub fn merge_requirements(base: Vec<String>, over: &[String]) -> Vec<String> {
    let mut out = base;
    for line in over {
        let key = requirement_key(line);
        match out.iter().position(|l| requirement_key(l) == key) {
            Some(i) => out[i] = line.clone(),
            None => out.push(line.clone()),
        }
    }
    out
}

/// The project a requirement line names, normalized as PyPI does (`Scikit_Learn` ->
/// `scikit-learn`); for a line that names none (`--index-url …`, `./pkg.whl`,
/// `git+https://…`), the trimmed line itself.
fn requirement_key(line: &str) -> String {
    let t = line.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(t.len());
    let (name, rest) = t.split_at(end);
    let names_a_project = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && rest
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || "<>=!~;[@(".contains(c));
    if !names_a_project {
        return t.to_string();
    }
    let mut key = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '.' | '_' | '-') {
            if !key.ends_with('-') {
                key.push('-');
            }
        } else {
            key.push(c.to_ascii_lowercase());
        }
    }
    key
}

/// Whether `p` can be one line of a requirements file.
pub(super) fn is_requirement_line(p: &str) -> bool {
    !p.trim().is_empty() && !p.chars().any(char::is_control)
}

fn convert_env(e: &RawEnv, cx: &mut Ctx) -> Option<EnvSpec> {
    let at = path!["env"];
    let sources = [
        e.requirements.is_some(),
        e.path.is_some(),
        e.packages.is_some(),
    ];
    match sources.iter().filter(|s| **s).count() {
        0 => {
            cx.err_at_value(
                &at,
                "`env` needs `requirements: requirements.txt`, `packages: [\"numpy==2.1.0\"]` or `path: some/site-packages`",
            );
            return None;
        }
        1 => {}
        _ => {
            cx.err_at_value(
                &at,
                "`env` takes one of `requirements` (a file to install), `packages` (a list to install) or `path` (an installed folder)",
            );
            return None;
        }
    }
    if let Some(p) = &e.path {
        if e.python.is_some() || e.platform.is_some() {
            cx.err_at_value(
                &at,
                "`python` and `platform` apply to `requirements` and `packages`; an `env.path` folder is used as it is",
            );
        }
        return Some(EnvSpec::Path { path: p.clone() });
    }
    let python = match &e.python {
        None => Some(DEFAULT_PYTHON.to_string()),
        Some(v) => match scalar_text(v) {
            Some(s) if is_python_version(&s) => Some(s),
            _ => {
                cx.err_at_value(
                    &path!["env", "python"],
                    format!("`python` must be a version like \"3.11\", not {}", show(v)),
                );
                None
            }
        },
    };
    let platform = e
        .platform
        .clone()
        .unwrap_or_else(|| DEFAULT_PLATFORM.to_string());
    if let Some(req) = &e.requirements {
        return Some(EnvSpec::Requirements {
            requirements: req.clone(),
            python: python?,
            platform,
        });
    }
    let packages = e.packages.clone().unwrap_or_default();
    if packages.is_empty() {
        cx.err_at_value(
            &path!["env", "packages"],
            "`env.packages` is empty: list the requirements to install, e.g. [\"numpy==2.1.0\"], or leave `env` out",
        );
        return None;
    }
    let mut ok = true;
    for (i, p) in packages.iter().enumerate() {
        if !is_requirement_line(p) {
            cx.err_at_value(
                &path!["env", "packages", i],
                format!(
                    "package {p:?} must be one line of a requirements file, like \"numpy==2.1.0\""
                ),
            );
            ok = false;
        }
    }
    Some(EnvSpec::Packages {
        packages,
        python: python.filter(|_| ok)?,
        platform,
    })
}

fn convert_param(pname: &str, value: &Value, cx: &mut Ctx) -> Option<Parameter> {
    let at = path!["parameters", pname];
    if !is_identifier(pname) {
        cx.err_at_key(
            &at,
            format!(
                "parameter name '{pname}' is not valid: use letters, digits and '_', starting with a letter or '_'"
            ),
        );
        return None;
    }
    let (ty, default, help) = match value {
        Value::Mapping(m) => {
            let mut ty = None;
            let mut default = None;
            let mut help = None;
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                let kat = path!["parameters", pname, key];
                match key {
                    "type" => match v.as_str() {
                        Some("string" | "str") => ty = Some(ParamType::String),
                        Some("int" | "integer") => ty = Some(ParamType::Int),
                        Some("float" | "number") => ty = Some(ParamType::Float),
                        Some("bool" | "boolean") => ty = Some(ParamType::Bool),
                        Some("json") => ty = Some(ParamType::Json),
                        _ => {
                            cx.err_at_value(
                                &kat,
                                format!(
                                    "parameter '{pname}' has unknown type {}: use string, int, float, bool or json",
                                    show(v)
                                ),
                            );
                            return None;
                        }
                    },
                    "default" => default = Some(v.clone()),
                    "help" => match v.as_str() {
                        Some(s) => help = Some(s.to_string()),
                        None => cx.err_at_value(&kat, "`help` must be text"),
                    },
                    other => {
                        cx.err_at_key(
                            &kat,
                            format!(
                                "parameter '{pname}' has unknown field `{other}`: expected `type`, `default` or `help`"
                            ),
                        );
                        return None;
                    }
                }
            }
            let ty = match (ty, &default) {
                (Some(t), _) => t,
                (None, Some(d)) => infer_type(d),
                (None, None) => {
                    cx.err_at_value(
                        &at,
                        format!(
                            "parameter '{pname}' needs a `type` or a `default` to infer it from"
                        ),
                    );
                    return None;
                }
            };
            (ty, default, help)
        }
        Value::Null => {
            cx.err_at_value(
                &at,
                format!("parameter '{pname}' needs a `type` or a `default`"),
            );
            return None;
        }
        v => (infer_type(v), Some(v.clone()), None),
    };
    let default = match default {
        None | Some(Value::Null) => None,
        Some(d) => {
            let json = yaml_to_json(&d);
            let json = match (ty, json) {
                // An int literal is a fine float default.
                (ParamType::Float, Some(serde_json::Value::Number(n))) => n
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(serde_json::Value::Number),
                (_, j) => j,
            };
            match json {
                Some(j) if ty.accepts(&j) => Some(j),
                _ => {
                    cx.err_at_value(
                        &path!["parameters", pname, "default"],
                        format!(
                            "the default of parameter '{pname}' is {}, which is not {} {}",
                            show(&d),
                            if ty == ParamType::Int { "an" } else { "a" },
                            ty.name()
                        ),
                    );
                    return None;
                }
            }
        }
    };
    Some(Parameter { ty, default, help })
}

fn infer_type(v: &Value) -> ParamType {
    match v {
        Value::Bool(_) => ParamType::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => ParamType::Int,
        Value::Number(_) => ParamType::Float,
        Value::String(_) => ParamType::String,
        _ => ParamType::Json,
    }
}

fn convert_step(name: &str, rs: &RawStep, settings: Settings, cx: &mut Ctx) -> Option<Step> {
    let at = path!["steps", name];
    let run = match &rs.run {
        None => {
            cx.err_at_key(
                &at,
                format!("step '{name}' has no `run`: give the command it runs, e.g. `run: python {name}.py`"),
            );
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(Run::Shell(s.clone())),
        Some(Value::Sequence(items)) if !items.is_empty() => {
            let args: Option<Vec<String>> = items.iter().map(scalar_text).collect();
            match args {
                Some(a) => Some(Run::Exec(a)),
                None => {
                    cx.err_at_value(
                        &path!["steps", name, "run"],
                        "`run` as a list must hold plain text arguments",
                    );
                    None
                }
            }
        }
        Some(v) => {
            cx.err_at_value(
                &path!["steps", name, "run"],
                format!(
                    "`run` must be a command line or a list of arguments, not {}",
                    show(v)
                ),
            );
            None
        }
    };
    let next_list: Option<Vec<String>> = match &rs.next {
        None => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Sequence(items)) => {
            let list: Option<Vec<String>> =
                items.iter().map(|v| v.as_str().map(String::from)).collect();
            match list {
                Some(l) if !l.is_empty() => Some(l),
                _ => {
                    cx.err_at_value(
                        &path!["steps", name, "next"],
                        "`next` must be a step name or a non-empty list of step names",
                    );
                    return None;
                }
            }
        }
        Some(v) => {
            cx.err_at_value(
                &path!["steps", name, "next"],
                format!(
                    "`next` must be a step name or a list of step names, not {}",
                    show(v)
                ),
            );
            return None;
        }
    };
    let next = match (next_list, &rs.foreach, &rs.switch) {
        (_, Some(_), Some(_)) => {
            cx.err_at_key(
                &path!["steps", name, "switch"],
                format!("step '{name}' has both `foreach` and `switch`: a step either fans out or chooses"),
            );
            return None;
        }
        (Some(_), _, Some(_)) => {
            cx.err_at_key(
                &path!["steps", name, "switch"],
                format!("step '{name}' has both `next` and `switch`: the switch's cases name the next steps"),
            );
            return None;
        }
        (None, None, None) => Transition::End,
        (Some(mut l), None, None) if l.len() == 1 => Transition::Linear(l.remove(0)),
        (Some(l), None, None) => {
            let mut seen = BTreeSet::new();
            for (i, s) in l.iter().enumerate() {
                if !seen.insert(s) {
                    cx.err_at_value(
                        &path!["steps", name, "next", i],
                        format!("step '{name}' lists '{s}' twice in `next`"),
                    );
                }
            }
            Transition::Split(l)
        }
        (Some(mut l), Some(over), None) if l.len() == 1 => Transition::Foreach {
            over: over.clone(),
            body: l.remove(0),
        },
        (Some(_), Some(_), None) => {
            cx.err_at_value(
                &path!["steps", name, "next"],
                format!(
                    "foreach step '{name}' must have exactly one `next`: the step each item runs"
                ),
            );
            return None;
        }
        (None, Some(_), None) => {
            cx.err_at_key(
                &path!["steps", name, "foreach"],
                format!("foreach step '{name}' needs a `next`: the step each item runs"),
            );
            return None;
        }
        (None, None, Some(sw)) => {
            if sw.cases.is_empty() {
                cx.err_at_value(
                    &path!["steps", name, "switch", "cases"],
                    "a switch needs at least one case",
                );
            }
            Transition::Switch {
                on: sw.on.clone(),
                cases: sw.cases.clone(),
            }
        }
    };
    let mut outputs: BTreeSet<String> = BTreeSet::new();
    for (i, o) in rs.outputs.iter().flatten().enumerate() {
        if !is_artifact_name(o) {
            cx.err_at_value(
                &path!["steps", name, "outputs", i],
                format!("artifact name '{o}' is not valid: {ARTIFACT_NAME_RULE}"),
            );
        }
        outputs.insert(o.clone());
    }
    match &next {
        Transition::Foreach { over: a, .. } | Transition::Switch { on: a, .. } => {
            let key = if matches!(next, Transition::Foreach { .. }) {
                path!["steps", name, "foreach"]
            } else {
                path!["steps", name, "switch", "on"]
            };
            if is_artifact_name(a) {
                outputs.insert(a.clone());
            } else {
                cx.err_at_value(
                    &key,
                    format!("artifact name '{a}' is not valid: {ARTIFACT_NAME_RULE}"),
                );
            }
        }
        _ => {}
    }
    Some(Step {
        run: run?,
        next,
        join: rs.join.unwrap_or(false),
        outputs,
        settings,
    })
}

/// `over` with the settings given in `rs` (a step or `defaults`) applied.
fn merge_settings(mut s: Settings, rs: &RawStep, at: &[Seg], cx: &mut Ctx) -> Settings {
    let sub = |k: &str| {
        let mut p = at.to_vec();
        p.push(Seg::Key(k.to_string()));
        p
    };
    if let Some(i) = &rs.image {
        if i.trim().is_empty() {
            cx.err_at_value(&sub("image"), "`image` must not be empty");
        }
        s.image = i.clone();
    }
    if let Some(r) = &rs.resources {
        let rp = sub("resources");
        if let Some(cpu) = &r.cpu {
            let mut p = rp.clone();
            p.push(Seg::Key("cpu".into()));
            match scalar_text(cpu) {
                Some(t) if is_cpu_quantity(&t) => s.resources.cpu = Some(t),
                _ => cx.err_at_value(
                    &p,
                    format!(
                        "cpu {} is not a Kubernetes CPU quantity: use \"1\", \"2.5\" or \"500m\"",
                        show(cpu)
                    ),
                ),
            }
        }
        for (field, value, slot) in [
            ("memory", &r.memory, &mut s.resources.memory),
            ("disk", &r.disk, &mut s.resources.disk),
        ] {
            if let Some(v) = value {
                if is_byte_quantity(v) {
                    *slot = Some(v.clone());
                } else {
                    let mut p = rp.clone();
                    p.push(Seg::Key(field.into()));
                    cx.err_at_value(
                        &p,
                        format!("{field} '{v}' is not a Kubernetes quantity: use \"512Mi\", \"2Gi\" or a number of bytes"),
                    );
                }
            }
        }
        if let Some(g) = r.gpu {
            s.resources.gpu = Some(g);
        }
        if let Some(t) = &r.gpu_type {
            s.resources.gpu_type = Some(t.clone());
        }
    }
    if let Some(env) = &rs.env {
        for (k, v) in env {
            let mut p = sub("env");
            p.push(Seg::Key(k.clone()));
            if !is_identifier(k) || k.starts_with("FLOWPACK_") {
                cx.err_at_key(
                    &p,
                    format!("environment variable name '{k}' is not valid: use letters, digits and '_' (names starting FLOWPACK_ are flowpack's own)"),
                );
                continue;
            }
            match scalar_text(v) {
                Some(t) => {
                    s.env.insert(k.clone(), t);
                }
                None => cx.err_at_value(
                    &p,
                    format!("the value of env '{k}' must be text, a number or a boolean"),
                ),
            }
        }
    }
    if let Some(secrets) = &rs.secrets {
        for (k, v) in secrets {
            let mut p = sub("secrets");
            p.push(Seg::Key(k.clone()));
            if !is_identifier(k) || k.starts_with("FLOWPACK_") {
                cx.err_at_key(&p, format!("environment variable name '{k}' is not valid"));
                continue;
            }
            match v.split_once('/') {
                Some((secret, key)) if !secret.is_empty() && !key.is_empty() && !key.contains('/') => {
                    s.secrets.insert(
                        k.clone(),
                        SecretRef {
                            secret: secret.to_string(),
                            key: key.to_string(),
                        },
                    );
                }
                _ => cx.err_at_value(
                    &p,
                    format!("secret '{v}' must be written SECRET_NAME/KEY, e.g. `{k}: db-credentials/password`"),
                ),
            }
        }
    }
    if let Some(r) = &rs.retry {
        let rp = sub("retry");
        match r {
            Value::Number(n) if n.as_u64().is_some() => {
                s.retry.times = n.as_u64().unwrap_or(0).min(u32::MAX as u64) as u32;
            }
            Value::Mapping(m) => {
                for (k, v) in m {
                    let key = k.as_str().unwrap_or_default();
                    let mut p = rp.clone();
                    p.push(Seg::Key(key.to_string()));
                    match key {
                        "times" => match v.as_u64() {
                            Some(t) => s.retry.times = t.min(u32::MAX as u64) as u32,
                            None => cx.err_at_value(&p, "`retry.times` must be a whole number"),
                        },
                        "delay" => match scalar_text(v).as_deref().map(parse_duration) {
                            Some(Ok(d)) => s.retry.delay_seconds = d,
                            _ => cx.err_at_value(
                                &p,
                                format!("`retry.delay` {} is not a duration: use \"30s\", \"5m\" or \"1h30m\"", show(v)),
                            ),
                        },
                        other => cx.err_at_key(
                            &p,
                            format!("`retry` has unknown field `{other}`: expected `times` or `delay`"),
                        ),
                    }
                }
            }
            v => cx.err_at_value(
                &rp,
                format!(
                    "`retry` must be a number of retries or {{times, delay}}, not {}",
                    show(v)
                ),
            ),
        }
    }
    if let Some(t) = &rs.timeout {
        match scalar_text(t).as_deref().map(parse_duration) {
            Some(Ok(0)) | None | Some(Err(_)) => cx.err_at_value(
                &sub("timeout"),
                format!(
                    "`timeout` {} is not a positive duration: use \"90s\", \"30m\" or \"2h\"",
                    show(t)
                ),
            ),
            Some(Ok(d)) => s.timeout_seconds = Some(d),
        }
    }
    if let Some(c) = rs.cache {
        s.cache = c;
    }
    if let Some(inputs) = &rs.inputs {
        s.inputs = Some(inputs.iter().cloned().collect());
    }
    if let Some(lazy) = rs.lazy_inputs {
        s.lazy_inputs = lazy;
    }
    if let Some(ns) = &rs.node_selector {
        s.node_selector.extend(ns.clone());
    }
    if let Some(t) = &rs.tolerations {
        for (i, tol) in t.iter().enumerate() {
            let mut p = sub("tolerations");
            p.push(Seg::Index(i));
            if !matches!(tol.operator.as_str(), "Equal" | "Exists") {
                cx.err_at_value(
                    &p,
                    format!(
                        "toleration operator '{}' must be Equal or Exists",
                        tol.operator
                    ),
                );
            }
            if let Some(e) = &tol.effect
                && !matches!(e.as_str(), "NoSchedule" | "PreferNoSchedule" | "NoExecute")
            {
                cx.err_at_value(
                    &p,
                    format!(
                        "toleration effect '{e}' must be NoSchedule, PreferNoSchedule or NoExecute"
                    ),
                );
            }
        }
        s.tolerations = t.clone();
    }
    if let Some(sa) = &rs.service_account {
        s.service_account = Some(sa.clone());
    }
    if let Some(p) = rs.image_pull_policy {
        s.image_pull_policy = Some(p);
    }
    s
}

pub(super) const ARTIFACT_NAME_RULE: &str =
    "use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'";

pub(super) fn is_artifact_name(s: &str) -> bool {
    name::check(NameKind::Artifact, s).is_ok()
}

fn is_flow_name(s: &str) -> bool {
    name::check(NameKind::Flow, s).is_ok()
}

fn is_step_name(s: &str) -> bool {
    name::check(NameKind::Step, s).is_ok()
}

fn is_identifier(s: &str) -> bool {
    name::check(NameKind::Parameter, s).is_ok()
}

pub(super) fn is_python_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_decimal(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    let int = parts.next().unwrap_or_default();
    let frac = parts.next();
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

fn is_cpu_quantity(s: &str) -> bool {
    cpu_cores(s).is_some_and(|c| c > 0.0)
}

fn is_byte_quantity(s: &str) -> bool {
    byte_quantity(s).is_some()
}

/// A Kubernetes CPU quantity (`"2"`, `"2.5"`, `"500m"`) in cores.
pub fn cpu_cores(s: &str) -> Option<f64> {
    let (num, scale) = match s.strip_suffix('m') {
        Some(n) => (n, 1e-3),
        None => (s, 1.0),
    };
    is_decimal(num).then(|| num.parse::<f64>().ok().map(|n| n * scale))?
}

/// A Kubernetes byte quantity (`"512Mi"`, `"2G"`, `"1000"`) in bytes.
pub fn byte_quantity(s: &str) -> Option<u64> {
    const SUFFIXES: [(&str, f64); 12] = [
        ("Ki", 1024f64),
        ("Mi", 1_048_576f64),
        ("Gi", 1_073_741_824f64),
        ("Ti", 1_099_511_627_776f64),
        ("Pi", 1_125_899_906_842_624f64),
        ("Ei", 1_152_921_504_606_846_976f64),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (num, scale) = SUFFIXES
        .iter()
        .find_map(|(suf, scale)| s.strip_suffix(suf).map(|n| (n, *scale)))
        .unwrap_or((s, 1.0));
    is_decimal(num).then(|| num.parse::<f64>().ok().map(|n| (n * scale) as u64))?
}

/// Parses `90`, `90s`, `30m`, `2h`, `1d`, `1h30m` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, ()> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| ());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(()),
        };
        let n: u64 = num.parse().map_err(|_| ())?;
        total = total
            .checked_add(n.checked_mul(unit).ok_or(())?)
            .ok_or(())?;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(());
    }
    Ok(total)
}

/// A scalar as text (`1` -> "1", `true` -> "true"); None for anything else.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn yaml_to_json(v: &Value) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// A YAML value as a person would write it, for messages.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::String(s) => format!("'{s}'"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        other => serde_norway::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172800));
        for bad in ["", "h", "1x", "1h30", "-1s"] {
            assert_eq!(parse_duration(bad), Err(()), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        assert!(is_cpu_quantity("500m") && is_cpu_quantity("2.5") && !is_cpu_quantity("2 cores"));
        assert_eq!(cpu_cores("500m"), Some(0.5));
        assert_eq!(byte_quantity("2Gi"), Some(2 << 30));
        assert_eq!(byte_quantity("1.5G"), Some(1_500_000_000));
        assert_eq!(byte_quantity("2 GB"), None);
        assert!(is_byte_quantity("2Gi") && is_byte_quantity("1000") && !is_byte_quantity("2GB"));
    }
}
