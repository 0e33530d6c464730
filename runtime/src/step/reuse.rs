//! Reusing a committed task instead of running it: the step cache and resume adoption.
//!
//! This module owns the step cache's key (what a task's result may depend on, hashed), its
//! index in the store (`v1/cache/<flow>/<2 hex>/<64 hex>.json` -> the committed task), the
//! check that an index entry still points at usable outputs, and the routes (foreach count,
//! switch case) of a reused task, which a run needs as if the task had run.
//! docs/runtime.md ("Step caching") specifies the key; docs/format.md the index.

use std::collections::BTreeMap;
use std::path::Path;

use flowpack_core::Digest;
use flowpack_core::digest::Hasher;
use flowpack_core::flow::{Flow, Run, Step, Transition};
use flowpack_core::manifest::Manifest;
use flowpack_core::run::{Artifacts, CacheEntry, ReuseReason, TaskRecord, TaskRef};
use flowpack_core::store::{Store, layout};
use serde::{Deserialize, Serialize};

use super::{Params, Route, StepArgs, artifacts};
use crate::RuntimeError;
use crate::cache::Cache;

/// The version of the key's material: bumped whenever what enters the key changes, so
/// that no entry written under an older rule is ever found under a newer one.
pub const KEY_FORMAT: u32 = 1;

/// `--resume SPEC` of `flowpack step`: the run being resumed and the steps to run again.
/// Tasks of other steps with a committed attempt in `run` are adopted from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeSpec {
    /// The origin run.
    pub run: String,
    /// The steps run again (the failed ones, or `--from`, and everything after them).
    pub redo: Vec<String>,
}

impl ResumeSpec {
    /// Parses SPEC: the empty string (no resume) or `{"run": …, "redo": […]}`.
    pub fn parse(text: &str) -> Result<Option<Self>, RuntimeError> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let spec: Self = serde_json::from_str(text).map_err(|e| {
            RuntimeError::Invalid(format!(
                "--resume must be empty or {{\"run\": RUN, \"redo\": [STEP, …]}}: {e}"
            ))
        })?;
        flowpack_core::name::check(flowpack_core::name::NameKind::Run, &spec.run)
            .map_err(|e| RuntimeError::Invalid(format!("--resume: {e}")))?;
        Ok(Some(spec))
    }
}

/// A committed task whose outputs this task takes over.
pub struct Found {
    /// The task it comes from.
    pub from: CacheEntry,
    /// Its committed namespace.
    pub artifacts: Artifacts,
}

impl Found {
    /// `run/step/task/attempt`, as records say it.
    pub fn reference(&self) -> String {
        let f = &self.from;
        format!("{}/{}/{}/{}", f.run, f.step, f.task, f.attempt)
    }
}

/// What the cache index said for a key.
pub enum Lookup {
    /// A committed task with usable outputs.
    Hit(Found),
    /// No entry.
    Miss,
    /// An entry whose task is gone, not committed or missing blobs: ignored (and
    /// replaced after this task commits).
    Stale(String),
}

/// The task's cache key: sha256 of a canonical JSON of everything its result may depend
/// on (docs/runtime.md, "Step caching").
pub fn key(
    args: &StepArgs,
    manifest: &Manifest,
    code_dir: &Path,
    params: &Params<'_>,
    parents: &[(TaskRef, Artifacts)],
) -> Result<Digest, RuntimeError> {
    let flow = &manifest.flow;
    let step = &flow.steps[&args.step];
    let mut definition = serde_json::to_value(step).expect("steps serialize");
    if let Some(settings) = definition
        .get_mut("settings")
        .and_then(|s| s.as_object_mut())
    {
        settings.remove("cache");
    }
    let parents: Vec<serde_json::Value> = parents
        .iter()
        .map(|(p, arts)| {
            let by_name: BTreeMap<&str, String> = arts
                .artifacts
                .iter()
                .map(|(n, a)| (n.as_str(), a.digest.to_string()))
                .collect();
            serde_json::json!({"task": p.to_string(), "artifacts": by_name})
        })
        .collect();
    let material = serde_json::json!({
        "key_format": KEY_FORMAT,
        "flowpack": env!("CARGO_PKG_VERSION"),
        "flow": flow.name,
        "step": args.step,
        "definition": definition,
        "code": code_digest(code_dir, flow, &args.step)?.to_string(),
        "env": manifest.env_layer(&args.step).map(|l| l.digest.to_string()),
        "parameters": params,
        "parents": parents,
        "task": args.task,
        "split_index": args.split_index,
    });
    Ok(Digest::of(
        flowpack_core::canonical::to_string(&material).as_bytes(),
    ))
}

/// The code the step sees, hashed: every file of the code layer (path, executable bit,
/// content; symlinks by target), except the flow's own file — a YAML flow file (its steps
/// enter the key through the normalized step) is left out, and a Python flow file enters
/// with the bodies of the *other* steps' methods blanked.
pub fn code_digest(code_dir: &Path, flow: &Flow, step: &str) -> Result<Digest, RuntimeError> {
    let python_file = python_flow_file(&flow.steps[step]);
    let mut files = Vec::new();
    walk(code_dir, Path::new(""), &mut files)?;
    files.sort();
    let mut h = Hasher::new();
    for rel in files {
        let path = code_dir.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| RuntimeError::io(&path, e))?;
        let name = rel.to_string_lossy();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| RuntimeError::io(&path, e))?;
            h.update(format!("L {name}\0{}\n", target.display()).as_bytes());
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| RuntimeError::io(&path, e))?;
        let content = if python_file.as_deref() == Some(name.as_ref()) {
            let text = String::from_utf8_lossy(&bytes);
            blank_other_steps(&text, step, flow).into_bytes()
        } else if is_yaml_flow_file(&rel, &bytes, flow) {
            continue;
        } else {
            bytes
        };
        use std::os::unix::fs::PermissionsExt;
        let exec = meta.permissions().mode() & 0o111 != 0;
        h.update(format!("F {name}\0{exec}\0{}\n", Digest::of(&content)).as_bytes());
    }
    Ok(h.finish())
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), RuntimeError> {
    let dir = root.join(rel);
    for entry in std::fs::read_dir(&dir).map_err(|e| RuntimeError::io(&dir, e))? {
        let entry = entry.map_err(|e| RuntimeError::io(&dir, e))?;
        let r = rel.join(entry.file_name());
        let ft = entry
            .file_type()
            .map_err(|e| RuntimeError::io(&entry.path(), e))?;
        if ft.is_dir() {
            walk(root, &r, out)?;
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// A YAML file that parses as this very flow (same name): the flow file.
fn is_yaml_flow_file(rel: &Path, bytes: &[u8], flow: &Flow) -> bool {
    let yaml = rel
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
    yaml && std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| Flow::parse(text, rel).ok())
        .is_some_and(|f| f.name == flow.name)
}

/// The flow file of a Python flow's step: the file its command runs
/// (`… -m flowpack.task FILE STEP`, as the describer writes it), relative to the code.
fn python_flow_file(step: &Step) -> Option<String> {
    let Run::Shell(cmd) = &step.run else {
        return None;
    };
    let rest = cmd.split_once("-m flowpack.task ")?.1;
    let file = rest.split_whitespace().next()?;
    Some(file.trim_matches('\'').to_string())
}

/// `text` (a Python flow file) with the body of every other step's method blanked: a
/// `def NAME(` of another step, directly under decorators that include `@step`, and every
/// line after it that is blank or indented deeper. What the rule cannot place (a body that
/// dedents inside a string) stays in: the key only gets finer, never wrong.
pub fn blank_other_steps(text: &str, keep: &str, flow: &Flow) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut blank = vec![false; lines.len()];
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let Some(name) = t
            .strip_prefix("def ")
            .and_then(|r| r.split('(').next())
            .map(str::trim)
        else {
            continue;
        };
        if name == keep || !flow.steps.contains_key(name) {
            continue;
        }
        let decorated = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('@'))
            .any(|l| {
                let d = l.trim_start();
                d == "@step" || d.starts_with("@step(") || d.starts_with("@step ")
            });
        if !decorated {
            continue;
        }
        let level = indent(line);
        for (j, l) in lines.iter().enumerate().skip(i + 1) {
            if !l.trim().is_empty() && indent(l) <= level {
                break;
            }
            blank[j] = true;
        }
    }
    lines
        .iter()
        .zip(blank)
        .map(|(l, b)| if b { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Looks `key` up in the index and checks what it points at.
pub async fn lookup(store: &Store, flow: &str, key: &Digest) -> Result<Lookup, RuntimeError> {
    let entry: CacheEntry = match store.get_json(&layout::cache_entry(flow, key)).await {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(Lookup::Miss),
        Err(e) => return Err(e.into()),
    };
    let what = format!(
        "{}/{}/{}/{}",
        entry.run, entry.step, entry.task, entry.attempt
    );
    match usable(store, flow, &entry).await? {
        Some(artifacts) => Ok(Lookup::Hit(Found {
            from: entry,
            artifacts,
        })),
        None => Ok(Lookup::Stale(what)),
    }
}

/// The namespace of `entry`'s attempt, when it is committed, its record says it
/// succeeded, and every blob it names is in the store.
async fn usable(
    store: &Store,
    flow: &str,
    entry: &CacheEntry,
) -> Result<Option<Artifacts>, RuntimeError> {
    let base = layout::attempt(flow, &entry.run, &entry.step, &entry.task, entry.attempt);
    let artifacts: Artifacts = match store.get_json(&format!("{base}artifacts.json")).await {
        Ok(a) => a,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match store
        .get_json::<TaskRecord>(&format!("{base}task.json"))
        .await
    {
        Ok(r) if r.status.is_success() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let digests: std::collections::BTreeSet<&Digest> =
        artifacts.artifacts.values().map(|a| &a.digest).collect();
    for d in digests {
        if store.stat_blob(d).await?.is_none() {
            return Ok(None);
        }
    }
    Ok(Some(artifacts))
}

/// Records `entry` as the task for `key`: created when absent, replaced when the entry
/// there was stale.
pub async fn record(
    store: &Store,
    flow: &str,
    key: &Digest,
    entry: &CacheEntry,
    replace: bool,
) -> Result<(), RuntimeError> {
    let k = layout::cache_entry(flow, key);
    if replace {
        store.put_json(&k, entry).await?;
    } else {
        store.create_json(&k, entry).await?;
    }
    Ok(())
}

/// The committed attempt of this task in the origin run of `spec`, when its step is not
/// redone.
pub async fn adoptable(
    args: &StepArgs,
    flow: &str,
    spec: &ResumeSpec,
) -> Result<Option<Found>, RuntimeError> {
    if spec.redo.contains(&args.step) {
        return Ok(None);
    }
    let me = TaskRef {
        step: args.step.clone(),
        task: args.task.clone(),
    };
    Ok(artifacts::committed(&args.store, flow, &spec.run, &me)
        .await?
        .map(|(attempt, artifacts)| Found {
            from: CacheEntry {
                run: spec.run.clone(),
                step: me.step,
                task: me.task,
                attempt,
            },
            artifacts,
        }))
}

/// The route of a committed task of `step` from its namespace: the foreach list's length
/// or the switch case, as if it had just run.
pub async fn route_of(
    store: &Store,
    cache: &Cache,
    step: &Step,
    arts: &Artifacts,
    task: &str,
) -> Result<Route, RuntimeError> {
    let artifact = |name: &str, hint: &str| {
        arts.artifacts
            .get(name)
            .ok_or_else(|| RuntimeError::MissingInput {
                artifact: name.to_string(),
                parents: task.to_string(),
                hint: hint.into(),
            })
    };
    Ok(match &step.next {
        Transition::Foreach { over, .. } => {
            let a = artifact(over, "the reused foreach task lacks its list")?;
            let list = artifacts::read_json(store, cache, a).await?;
            Route::Foreach(list.as_array().map_or(0, Vec::len))
        }
        Transition::Switch { on, .. } => {
            let a = artifact(on, "the reused switch task lacks its choice")?;
            let bytes = store.get_blob_bytes(&a.digest, a.size).await?;
            let value = String::from_utf8_lossy(&bytes)
                .trim()
                .trim_matches('"')
                .to_string();
            Route::switch(step, on, value)?
        }
        _ => Route::Plain,
    })
}

impl Route {
    /// The route as the local planner takes it: the foreach count or the switch case.
    pub fn planner_text(&self) -> Option<String> {
        match self {
            Route::Plain => None,
            Route::Foreach(n) => Some(n.to_string()),
            Route::Switch(c, _) => Some(c.clone()),
        }
    }
}

impl super::Task<'_> {
    /// The reuse phase: adopts the task from the resumed run (`--resume`), or takes a
    /// cache hit; either way commits the same namespace and writes the output parameters
    /// as a run would. Returns whether the task was reused. On a miss, keeps the key for
    /// [`Self::index`].
    pub(super) async fn reuse(&self, work: &super::Work<'_>) -> Result<bool, RuntimeError> {
        let flow = &self.manifest.flow.name;
        // A hook's input is the run's outcome, which no key holds: it always runs.
        if work.hook.is_some() {
            return Ok(false);
        }
        if let Some(spec) = &self.args.resume
            && let Some(found) = adoptable(self.args, flow, spec).await?
        {
            self.log(&format!(
                "adopted from {} (the resumed run): not run again",
                found.reference()
            ))
            .await;
            let route = self.route(&found).await?;
            return self
                .take_over(found, route, ReuseReason::Resume, None)
                .await;
        }
        if !self.step().settings.cache {
            return Ok(false);
        }
        if work.no_cache {
            self.log("the step cache is off for this run (--no-cache)")
                .await;
            return Ok(false);
        }
        // The cache saves work; it never fails a task: a lookup that fails is a miss.
        match self.look_up(work).await {
            Ok(Some((found, route, key))) => {
                self.log(&format!(
                    "step cache hit (key {}): the outputs of {} are reused, not run again",
                    key.short(),
                    found.reference()
                ))
                .await;
                self.take_over(found, route, ReuseReason::Cache, Some(key))
                    .await
            }
            Ok(None) => Ok(false),
            Err(e) => {
                self.log(&format!(
                    "the step cache could not be read ({e}): the task runs"
                ))
                .await;
                Ok(false)
            }
        }
    }

    /// The task's key and what the index has for it: a usable committed task, or None
    /// (the key is kept for [`Self::index`]).
    async fn look_up(
        &self,
        work: &super::Work<'_>,
    ) -> Result<Option<(Found, Route, Digest)>, RuntimeError> {
        let flow = &self.manifest.flow.name;
        let mut parents = Vec::new();
        for p in &self.args.parents {
            // A parent without a commit fails in the inputs phase, with its own message.
            let Some((_, arts)) =
                artifacts::committed(&self.args.store, flow, &self.args.run, p).await?
            else {
                return Ok(None);
            };
            parents.push((p.clone(), arts));
        }
        let key = key(
            self.args,
            &self.manifest,
            &work.package.code,
            &work.params,
            &parents,
        )?;
        let stale = match lookup(&self.args.store, flow, &key).await? {
            Lookup::Hit(found) => {
                // Its route is read before anything is committed: a failure here is a miss.
                let route = self.route(&found).await?;
                return Ok(Some((found, route, key)));
            }
            Lookup::Miss => false,
            Lookup::Stale(what) => {
                self.log(&format!(
                    "step cache entry {} points at {what}, which is gone or incomplete: ignored",
                    key.short()
                ))
                .await;
                true
            }
        };
        let _ = self.cache_key.set((key, stale));
        Ok(None)
    }

    /// Where `found` went (its foreach count, its switch case), read from its artifacts.
    async fn route(&self, found: &Found) -> Result<Route, RuntimeError> {
        route_of(
            &self.args.store,
            &self.cache,
            self.step(),
            &found.artifacts,
            &found.reference(),
        )
        .await
    }

    /// Commits `found`'s namespace as this attempt's and writes the output parameters
    /// (`route`, read from `found`).
    async fn take_over(
        &self,
        found: Found,
        route: Route,
        reason: ReuseReason,
        key: Option<Digest>,
    ) -> Result<bool, RuntimeError> {
        self.args
            .store
            .create_json(&format!("{}artifacts.json", self.prefix), &found.artifacts)
            .await?;
        super::write_output_params(self.args, route)?;
        let _ = self.reused.set((found.reference(), reason, key));
        Ok(true)
    }

    /// After a commit: the cache index entry for this task's key. A failure is logged, not
    /// the task's: its outputs are committed.
    pub(super) async fn index(&self) {
        let Some((key, stale)) = self.cache_key.get() else {
            return;
        };
        let entry = CacheEntry {
            run: self.args.run.clone(),
            step: self.args.step.clone(),
            task: self.args.task.clone(),
            attempt: self.attempt,
        };
        let flow = &self.manifest.flow.name;
        if let Err(e) = record(&self.args.store, flow, key, &entry, *stale).await {
            self.log(&format!("the step cache entry could not be written: {e}"))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        let text = "name: f\nsteps:\n  start: {run: 'true', next: a}\n  a: {run: 'true', next: end}\n  end: {run: 'true'}\n";
        Flow::parse(text, Path::new("flow.yaml")).expect("a flow")
    }

    #[test]
    fn other_steps_bodies_are_blanked_and_helpers_kept() {
        let src = "class F(FlowSpec):\n    @step\n    def start(self):\n        x = 1\n\n        self.next(self.a)\n\n    def helper(self):\n        return 2\n\n    @retry(times=2)\n    @step\n    def a(self):\n        y = 3\n        self.next(self.end)\n";
        let for_start = blank_other_steps(src, "start", &flow());
        assert!(for_start.contains("x = 1") && for_start.contains("return 2"));
        assert!(!for_start.contains("y = 3"), "{for_start}");
        assert!(for_start.contains("@retry(times=2)"));
        let for_a = blank_other_steps(src, "a", &flow());
        assert!(for_a.contains("y = 3") && !for_a.contains("x = 1"));
        // A body edit of `a` leaves `start`'s view unchanged.
        let edited = src.replace("y = 3", "y = 4");
        assert_eq!(blank_other_steps(&edited, "start", &flow()), for_start);
        assert_ne!(blank_other_steps(&edited, "a", &flow()), for_a);
    }

    #[test]
    fn an_undecorated_def_named_like_a_step_is_kept() {
        let src = "def a(x):\n    return x\n";
        assert_eq!(blank_other_steps(src, "start", &flow()), src.trim_end());
    }

    #[test]
    fn resume_specs() {
        assert_eq!(ResumeSpec::parse("").unwrap(), None);
        let s = ResumeSpec::parse(r#"{"run": "kfp-1", "redo": ["b", "end"]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(s.redo, ["b", "end"]);
        assert!(ResumeSpec::parse(r#"{"run": "../x", "redo": []}"#).is_err());
        assert!(ResumeSpec::parse(r#"{"run": "r"}"#).is_err());
    }
}
