//! Names: the one rule behind every name flowpack puts in keys, paths and KFP documents,
//! and the one check every name read back from a store object goes through.
//!
//! Store objects are input like any other: a parent's `artifacts.json`, a task or run
//! record, a version pointer, a manifest's flow may have been written by anyone who can
//! write to the bucket. Their names become file names (restored inputs), keys and
//! child-process environment variables, so each is checked against its [`NameKind`] by
//! [`check`] while the document is deserialized (the `de` functions; a manifest's flow by
//! `Flow::check`): a document with a name that is not a name of its kind does not parse,
//! and the store reports it with its key before anything is written. Paths inside layers
//! and folder artifacts go through [`relative_path`] as `archive::extract` reads them.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// What a name names; each kind has its own rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// A flow: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
    Flow,
    /// A step: letters, digits, `_`, `-`, starting with a letter or digit, at most 100.
    Step,
    /// An artifact: letters, digits, `.`, `_`, `-`, not starting with `.`.
    Artifact,
    /// A parameter: a Python-style identifier.
    Parameter,
    /// A step's environment variable: an identifier not starting with `FLOWPACK_`.
    EnvVar,
    /// A run id: letters, digits, `_`, `-`, starting with a letter or digit.
    Run,
    /// A version of a flow: letters, digits, `.`, `_`, `-`, not starting with `.`.
    Version,
    /// A task id: `0`, or foreach indices joined by `.` (`3.1`); a repeated visit of a
    /// step (a recursive switch) adds `-N`, its visit number from 1 (`0-2`, `3.1-4`).
    Task,
    /// A task within a run: `step/task`.
    TaskRef,
    /// One attempt of a task: `step/task/attempt`.
    AttemptRef,
    /// One attempt of a task of some run: `run/step/task/attempt`.
    RunAttemptRef,
}

impl NameKind {
    fn what(self) -> &'static str {
        match self {
            Self::Flow => "flow name",
            Self::Step => "step name",
            Self::Artifact => "artifact name",
            Self::Parameter => "parameter name",
            Self::EnvVar => "environment variable name",
            Self::Run => "run id",
            Self::Version => "version name",
            Self::Task => "task id",
            Self::TaskRef => "task reference",
            Self::AttemptRef => "attempt reference",
            Self::RunAttemptRef => "attempt reference",
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Self::Flow => {
                "use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
            }
            Self::Step => {
                "use 1 to 100 letters, digits, '_' or '-', starting with a letter or digit"
            }
            Self::Artifact => {
                "use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'"
            }
            Self::Parameter => "use letters, digits and '_', not starting with a digit",
            Self::EnvVar => {
                "use letters, digits and '_', not starting with a digit (names starting FLOWPACK_ are flowpack's own)"
            }
            Self::Run => {
                "use 1 to 128 letters, digits, '_' or '-', starting with a letter or digit"
            }
            Self::Version => "use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'",
            Self::Task => {
                "use 0, or foreach indices like 3 or 3.1, with -N for a repeated visit (3.1-2)"
            }
            Self::TaskRef => "write STEP/TASK, e.g. train/0",
            Self::AttemptRef => "write STEP/TASK/ATTEMPT, e.g. train/0/1",
            Self::RunAttemptRef => "write RUN/STEP/TASK/ATTEMPT",
        }
    }

    fn accepts(self, s: &str) -> bool {
        let parts = |n: usize| -> Option<Vec<&str>> {
            let p: Vec<&str> = s.splitn(n + 1, '/').collect();
            (p.len() == n).then_some(p)
        };
        let attempt =
            |a: &str| !a.is_empty() && a.len() <= 9 && a.bytes().all(|b| b.is_ascii_digit());
        match self {
            Self::Flow => is_name(s, 128, b"._-", true),
            Self::Step => is_name(s, 100, b"_-", true),
            Self::Artifact => is_name(s, 128, b"._-", false),
            Self::Parameter => is_identifier(s),
            Self::EnvVar => is_identifier(s) && !s.starts_with("FLOWPACK_"),
            Self::Run => is_name(s, 128, b"_-", true),
            Self::Version => is_name(s, 128, b"._-", false),
            Self::Task => {
                let number = |p: &str| {
                    !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit())
                };
                let (base, visit) = split_visit(s);
                s.len() <= 99
                    && base.split('.').all(number)
                    && visit.is_none_or(|v| number(v) && !v.starts_with('0'))
            }
            Self::TaskRef => {
                parts(2).is_some_and(|p| Self::Step.accepts(p[0]) && Self::Task.accepts(p[1]))
            }
            Self::AttemptRef => parts(3).is_some_and(|p| {
                Self::Step.accepts(p[0]) && Self::Task.accepts(p[1]) && attempt(p[2])
            }),
            Self::RunAttemptRef => parts(4).is_some_and(|p| {
                Self::Run.accepts(p[0])
                    && Self::Step.accepts(p[1])
                    && Self::Task.accepts(p[2])
                    && attempt(p[3])
            }),
        }
    }
}

/// A task id's foreach indices and its visit number, if it is a repeated visit:
/// `3.1-2` is (`3.1`, `2`), `3.1` is (`3.1`, none).
pub fn split_visit(task: &str) -> (&str, Option<&str>) {
    match task.split_once('-') {
        Some((base, visit)) => (base, Some(visit)),
        None => (task, None),
    }
}

/// The task id of visit `visit` (0: the first) of a task whose foreach indices are `base`.
pub fn task_visit(base: &str, visit: u32) -> String {
    if visit == 0 {
        base.to_string()
    } else {
        format!("{base}-{visit}")
    }
}

/// `base` as an engine name (a KFP or Argo template or task name) of at most `max`
/// characters: characters outside `A-Za-z0-9-` become `-`; a longer name keeps its first characters and ends in `-` and
/// 8 hex digits of [`stable_hash`] of `base`, so two long names that share a prefix differ.
pub fn fit(base: &str, max: usize) -> String {
    let clean: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let clean = clean.trim_start_matches('-');
    let clean = if clean.is_empty() { "x" } else { clean };
    if clean.len() <= max {
        return clean.to_string();
    }
    let hash = format!("{:08x}", stable_hash(base) as u32);
    let mut prefix: String = clean.chars().take(max - hash.len() - 1).collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    if prefix.is_empty() {
        return format!("h{hash}");
    }
    format!("{prefix}-{hash}")
}

/// FNV-1a (64 bits): the same on every machine and every build, unlike `std`'s hasher.
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Hands out distinct names: each one [`fit`] to its limit, `-2`, `-3`, … when taken.
#[derive(Default)]
pub struct Claims {
    used: std::collections::BTreeSet<String>,
}

impl Claims {
    /// `base` [`fit`] to `max`, with `-2`, `-3`, … until no earlier claim has it.
    pub fn claim(&mut self, base: &str, max: usize) -> String {
        let mut name = fit(base, max);
        let mut n = 2;
        while !self.used.insert(name.clone()) {
            name = fit(&format!("{base}-{n}"), max);
            n += 1;
        }
        name
    }
}

/// A flow's name as a DNS-1123 subdomain, as the KFP SDK writes pipeline names (lower case,
/// `-` between words, labels separated by `.`): KFP pipelines and Argo documents. A flow named like a Python class
/// (`TrainFlow`, `My_Flow.v2`) becomes `train-flow`, `my-flow.v2`.
pub fn dns_name(flow: &str) -> String {
    let mut out = String::with_capacity(flow.len() + 4);
    let mut prev: Option<char> = None;
    for c in flow.chars() {
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit());
        if boundary {
            out.push('-');
        }
        out.push(match c {
            '_' => '-',
            c => c.to_ascii_lowercase(),
        });
        prev = Some(c);
    }
    // Each `.` label starts and ends with a letter or digit, with no `-` runs inside.
    out.split('.')
        .map(|label| {
            label
                .split('-')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join("-")
        })
        .filter(|label| !label.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// A name that is not a name of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} '{}' is refused: {}", kind.what(), shown(value), kind.rule())]
pub struct InvalidName {
    /// What it should have named.
    pub kind: NameKind,
    /// The name as found.
    pub value: String,
}

/// The name as an error shows it: escaped, and cut at 80 characters (a hostile name may be
/// megabytes long or hold terminal escapes).
fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(80)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Checks that `s` is a valid name of `kind`: the check for every name read from a store
/// object, and for names a user gives where they become keys or paths.
pub fn check(kind: NameKind, s: &str) -> Result<(), InvalidName> {
    if kind.accepts(s) {
        Ok(())
    } else {
        Err(InvalidName {
            kind,
            value: s.to_string(),
        })
    }
}

/// `raw` — a path inside a layer or a folder artifact — as a relative path with only
/// normal components, or why not: the path rule, as [`check`] is the name rule.
pub fn relative_path(raw: &str) -> Result<PathBuf, String> {
    if raw.starts_with('/') {
        return Err("absolute paths are refused".into());
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err("paths with '..' are refused".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute paths are refused".into());
            }
        }
    }
    Ok(out)
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what())
    }
}

/// Whether `s` is 1 to `max_len` ASCII letters, digits and bytes of `punct`, starting with a
/// letter or digit when `alnum_first`, and never with `.` (no hidden or relative names).
fn is_name(s: &str, max_len: usize, punct: &[u8], alnum_first: bool) -> bool {
    let Some(&first) = s.as_bytes().first() else {
        return false;
    };
    s.len() <= max_len
        && first != b'.'
        && (!alnum_first || first.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || punct.contains(&b))
}

fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    s.len() <= 128
        && matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// serde `deserialize_with` functions that run [`check`] on names in store documents.
pub(crate) mod de {
    use std::collections::BTreeMap;

    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    use super::{NameKind, check};

    fn one<'de, D: Deserializer<'de>>(d: D, kind: NameKind) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        check(kind, &s).map_err(D::Error::custom)?;
        Ok(s)
    }

    macro_rules! kinds {
        ($($f:ident: $kind:ident),* $(,)?) => {$(
            pub(crate) fn $f<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
                one(d, NameKind::$kind)
            }
        )*};
    }
    kinds!(flow: Flow, step: Step, run: Run, task: Task, attempt_ref: AttemptRef, version: Version);

    /// An optional run id.
    pub(crate) fn opt_run<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        opt(d, NameKind::Run)
    }

    /// An optional `run/step/task/attempt`.
    pub(crate) fn opt_run_attempt_ref<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        opt(d, NameKind::RunAttemptRef)
    }

    fn opt<'de, D: Deserializer<'de>>(d: D, kind: NameKind) -> Result<Option<String>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        if let Some(s) = &s {
            check(kind, s).map_err(D::Error::custom)?;
        }
        Ok(s)
    }

    /// A list of `step/task`.
    pub(crate) fn task_refs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        for s in &v {
            check(NameKind::TaskRef, s).map_err(D::Error::custom)?;
        }
        Ok(v)
    }

    /// A map whose keys are names of `kind`.
    fn keys<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
        kind: NameKind,
    ) -> Result<BTreeMap<String, V>, D::Error> {
        let m = BTreeMap::<String, V>::deserialize(d)?;
        for k in m.keys() {
            check(kind, k).map_err(D::Error::custom)?;
        }
        Ok(m)
    }

    /// A map by artifact name.
    pub(crate) fn artifact_map<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, V>, D::Error> {
        keys(d, NameKind::Artifact)
    }

    /// A map by parameter name.
    pub(crate) fn parameter_map<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, V>, D::Error> {
        keys(d, NameKind::Parameter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_could_escape_a_folder_or_a_key() {
        for bad in [
            "",
            ".",
            "..",
            "../code/hello.py",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "a\0b",
            "a\nb",
            "é",
        ] {
            assert!(check(NameKind::Artifact, bad).is_err(), "{bad:?}");
            assert!(check(NameKind::Step, bad).is_err(), "{bad:?}");
            assert!(check(NameKind::Run, bad).is_err(), "{bad:?}");
        }
        check(NameKind::Artifact, "model.pkl").unwrap();
        check(NameKind::Step, "train_a").unwrap();
        check(NameKind::Run, "local-20261201T000000Z-ab12").unwrap();
        check(NameKind::Task, "3.1").unwrap();
        check(NameKind::Task, "0-2").unwrap();
        check(NameKind::Task, "3.1-12").unwrap();
        for bad in ["0-", "0-0", "0-01", "-1", "0-1-2", "0-1.2", "a", "1..2"] {
            assert!(check(NameKind::Task, bad).is_err(), "{bad:?}");
        }
        assert_eq!(split_visit("3.1-2"), ("3.1", Some("2")));
        assert_eq!(task_visit("3.1", 0), "3.1");
        assert_eq!(task_visit("3.1", 2), "3.1-2");
        check(NameKind::TaskRef, "train/3.1").unwrap();
        check(NameKind::AttemptRef, "train/3.1/2").unwrap();
        check(NameKind::RunAttemptRef, "kfp-1/train/0/0").unwrap();
        assert!(check(NameKind::TaskRef, "../x/0").is_err());
        assert!(check(NameKind::AttemptRef, "train/0/0/0").is_err());
        assert!(check(NameKind::Parameter, "a=b").is_err());
    }

    #[test]
    fn store_documents_with_bad_names_do_not_parse() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let version = |flow: &str, v: &str| {
            serde_json::from_value::<crate::manifest::Version>(serde_json::json!({
                "flow": flow, "version": v, "package": d, "created_at": "t", "created_by": "x"
            }))
        };
        version("hello", "2026.1").unwrap();
        let e = version("hello", "../../x").unwrap_err().to_string();
        assert!(e.contains("version name '../../x' is refused"), "{e}");
        assert!(version("../hello", "1").is_err());
        let art =
            serde_json::json!({"digest": d, "size": 1, "kind": "file", "origin": "start/0/0"});
        let arts = |name: &str| {
            serde_json::from_value::<crate::run::Artifacts>(
                serde_json::json!({"artifacts": {name: art}}),
            )
        };
        arts("model.pkl").unwrap();
        let e = arts("../code/x.py").unwrap_err().to_string();
        assert!(e.contains("artifact name '../code/x.py' is refused"), "{e}");
    }

    #[test]
    fn errors_show_an_escaped_and_bounded_name() {
        let long = format!("\u{1b}[31m{}", "x".repeat(10_000));
        let msg = check(NameKind::Artifact, &long).unwrap_err().to_string();
        assert!(msg.starts_with("artifact name '\\u{1b}[31mxxx"), "{msg}");
        assert!(msg.len() < 400, "{msg}");
    }
}
