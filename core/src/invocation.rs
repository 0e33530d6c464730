//! The `flowpack step` argument list: one type that builds it (the KFP emitter, the local
//! launcher) and reads it back (the CLI, after clap), so the three never drift apart.
//!
//! Values are text: in a compiled pipeline many are engine placeholders (KFP's
//! `{{$.inputs.parameters['…']}}`, which fill whole arguments only; Argo's
//! `{{inputs.parameters.…}}`, substituted anywhere in an argument).

use crate::Digest;
use crate::plan::{Parents, Plan};

/// What a compiler writes into every task's `flowpack step` command line, beside the flow.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// The package every task runs.
    pub package: Digest,
    /// The store URL (`Store::url`); written through `redact_url` all the same.
    pub store_url: String,
    /// The `flowpack` command inside the images.
    pub command: String,
}

/// How the run is named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunId {
    /// `--run RUN`: the run id itself.
    Run(String),
    /// `--kfp-run-uuid UUID`: the run id is `kfp-<UUID>`.
    KfpUuid(String),
}

/// One `flowpack step` command line (without the `flowpack step` itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepInvocation {
    /// `--store URL`.
    pub store: String,
    /// `--package DIGEST`.
    pub package: String,
    /// `--run` or `--kfp-run-uuid`.
    pub run: RunId,
    /// `--step STEP`.
    pub step: String,
    /// `--task TASK` (default `0`).
    pub task: Option<String>,
    /// `--task-part N` (repeatable): one foreach level's index each, outermost first; the
    /// task id is their join with `.`, the split index the last one.
    pub task_parts: Vec<String>,
    /// `--parent STEP/TASK` (repeatable).
    pub parents: Vec<String>,
    /// `--parents-json LIST`.
    pub parents_json: Option<String>,
    /// `--same-task-parent STEP` (repeatable).
    pub same_task_parents: Vec<String>,
    /// `--parents-from-store`: the step finds its parents in the store (the join of a
    /// foreach; a step after the merge of switch cases).
    pub parents_from_store: bool,
    /// `--split-index N`.
    pub split_index: Option<String>,
    /// `--param NAME=VALUE` (repeatable).
    pub params: Vec<String>,
    /// `--kfp-param NAME VALUE` (repeatable).
    pub kfp_params: Vec<(String, String)>,
    /// `--output-param NAME=PATH` (repeatable).
    pub output_params: Vec<String>,
    /// `--kfp-output NAME PATH` (repeatable).
    pub kfp_outputs: Vec<(String, String)>,
    /// `--grace SECS`.
    pub grace: Option<u64>,
    /// `--image IMAGE`.
    pub image: Option<String>,
    /// `--resume SPEC`: empty for none, else `{"run": …, "redo": […]}` (issue 12, C1).
    pub resume: Option<String>,
}

/// An argument list that is not a `flowpack step` invocation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvocationError {
    /// A flag this type does not know.
    #[error("unknown flowpack step argument '{0}'")]
    Unknown(String),
    /// A flag without its value(s).
    #[error("flowpack step argument '{0}' needs a value")]
    MissingValue(String),
    /// A required flag is absent.
    #[error("flowpack step needs {0}")]
    Missing(&'static str),
    /// A value that does not parse.
    #[error("flowpack step argument {flag}: '{value}' is not valid")]
    Invalid {
        /// The flag.
        flag: String,
        /// Its value.
        value: String,
    },
}

impl StepInvocation {
    /// An invocation of `step` with nothing else set.
    pub fn new(store: &str, package: &str, run: RunId, step: &str) -> Self {
        StepInvocation {
            store: store.into(),
            package: package.into(),
            run,
            step: step.into(),
            task: None,
            task_parts: vec![],
            parents: vec![],
            parents_json: None,
            same_task_parents: vec![],
            parents_from_store: false,
            split_index: None,
            params: vec![],
            kfp_params: vec![],
            output_params: vec![],
            kfp_outputs: vec![],
            grace: None,
            image: None,
            resume: None,
        }
    }

    /// The argument list, in a fixed order.
    pub fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut one = |k: &str, v: &str| a.extend([k.to_string(), v.to_string()]);
        one("--store", &self.store);
        one("--package", &self.package);
        match &self.run {
            RunId::Run(r) => one("--run", r),
            RunId::KfpUuid(u) => one("--kfp-run-uuid", u),
        }
        one("--step", &self.step);
        if let Some(i) = &self.image {
            one("--image", i);
        }
        if let Some(t) = &self.task {
            one("--task", t);
        }
        for p in &self.task_parts {
            one("--task-part", p);
        }
        for p in &self.parents {
            one("--parent", p);
        }
        if let Some(j) = &self.parents_json {
            one("--parents-json", j);
        }
        for p in &self.same_task_parents {
            one("--same-task-parent", p);
        }
        if let Some(i) = &self.split_index {
            one("--split-index", i);
        }
        for p in &self.params {
            one("--param", p);
        }
        for p in &self.output_params {
            one("--output-param", p);
        }
        if let Some(g) = self.grace {
            one("--grace", &g.to_string());
        }
        if let Some(r) = &self.resume {
            one("--resume", r);
        }
        if self.parents_from_store {
            a.push("--parents-from-store".into());
        }
        for (k, v) in &self.kfp_params {
            a.extend(["--kfp-param".into(), k.clone(), v.clone()]);
        }
        for (k, v) in &self.kfp_outputs {
            a.extend(["--kfp-output".into(), k.clone(), v.clone()]);
        }
        a
    }

    /// Reads an argument list back (the inverse of [`StepInvocation::to_args`]; flags in
    /// any order, `--flag=value` accepted).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, InvocationError> {
        let mut it = args.iter().map(|s| s.as_ref().to_string()).peekable();
        let mut inv = StepInvocation::new("", "", RunId::Run(String::new()), "");
        let (mut store, mut package, mut run, mut step) = (None, None, None, None);
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") && f != "--kfp-param" => {
                    (f.to_string(), Some(v.to_string()))
                }
                _ => (arg.clone(), None),
            };
            let value = |it: &mut std::iter::Peekable<_>| -> Result<String, InvocationError> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => Iterator::next(it)
                        .ok_or_else(|| InvocationError::MissingValue(flag.clone())),
                }
            };
            match flag.as_str() {
                "--store" => store = Some(value(&mut it)?),
                "--package" => package = Some(value(&mut it)?),
                "--run" => run = Some(RunId::Run(value(&mut it)?)),
                "--kfp-run-uuid" => run = Some(RunId::KfpUuid(value(&mut it)?)),
                "--step" => step = Some(value(&mut it)?),
                "--image" => inv.image = Some(value(&mut it)?),
                "--task" => inv.task = Some(value(&mut it)?),
                "--task-part" => inv.task_parts.push(value(&mut it)?),
                "--parent" => inv.parents.push(value(&mut it)?),
                "--parents-json" => inv.parents_json = Some(value(&mut it)?),
                "--same-task-parent" => inv.same_task_parents.push(value(&mut it)?),
                "--split-index" => inv.split_index = Some(value(&mut it)?),
                "--param" => inv.params.push(value(&mut it)?),
                "--output-param" => inv.output_params.push(value(&mut it)?),
                "--resume" => inv.resume = Some(value(&mut it)?),
                "--grace" => {
                    let v = value(&mut it)?;
                    inv.grace = Some(v.parse().map_err(|_| InvocationError::Invalid {
                        flag: flag.clone(),
                        value: v,
                    })?);
                }
                "--parents-from-store" => inv.parents_from_store = true,
                "--kfp-param" | "--kfp-output" => {
                    let k = it
                        .next()
                        .ok_or_else(|| InvocationError::MissingValue(flag.clone()))?;
                    let v = it
                        .next()
                        .ok_or_else(|| InvocationError::MissingValue(flag.clone()))?;
                    if flag == "--kfp-param" {
                        inv.kfp_params.push((k, v));
                    } else {
                        inv.kfp_outputs.push((k, v));
                    }
                }
                _ => return Err(InvocationError::Unknown(arg)),
            }
        }
        inv.store = store.ok_or(InvocationError::Missing("--store"))?;
        inv.package = package.ok_or(InvocationError::Missing("--package"))?;
        inv.run = run.ok_or(InvocationError::Missing("--run or --kfp-run-uuid"))?;
        inv.step = step.ok_or(InvocationError::Missing("--step"))?;
        Ok(inv)
    }

    /// Sets how the task of `self.step` finds its parents, as the plan says (every engine
    /// emitter does the same): `--parent STEP/0` for a parent outside any loop,
    /// `--same-task-parent STEP` for one in the same loop body, `--parents-from-store`
    /// where the parents are known only at run time (a join of a foreach, a step after the
    /// merge of switch cases) or have a task id with fewer parts (the first step of a
    /// nested loop's body: its parent's id is this one's without the last part). An exit
    /// hook is in no scope of the plan and has no parents (contract C3).
    pub fn plan_parents(&mut self, plan: &Plan) {
        let Some(sp) = plan.steps.get(&self.step) else {
            return;
        };
        let depth = sp.depth();
        match &sp.parents {
            Parents::None => {}
            Parents::FromStore => self.parents_from_store = true,
            Parents::Static(ps) => {
                let expressible = ps.iter().all(|p| {
                    let pd = plan.steps[p].depth();
                    pd == 0 || pd == depth
                });
                if !expressible {
                    self.parents_from_store = true;
                    return;
                }
                for p in ps {
                    if plan.steps[p].depth() == 0 {
                        self.parents.push(format!("{p}/0"));
                    } else {
                        self.same_task_parents.push(p.clone());
                    }
                }
            }
        }
    }

    /// The task id: `--task`, else the `--task-part`s joined by `.`, else `0`.
    pub fn task_id(&self) -> String {
        match (&self.task, self.task_parts.is_empty()) {
            (Some(t), _) => t.clone(),
            (None, false) => self.task_parts.join("."),
            (None, true) => "0".into(),
        }
    }

    /// The split index: `--split-index`, else the last `--task-part`.
    pub fn split_index_text(&self) -> Option<&str> {
        self.split_index
            .as_deref()
            .or(self.task_parts.last().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips_through_the_argument_list() {
        let mut inv = StepInvocation::new(
            "s3://b/p",
            "sha256:00",
            RunId::KfpUuid("{{$.inputs.parameters['flowpack--run-id']}}".into()),
            "train_x",
        );
        inv.image = Some("img:1".into());
        inv.task_parts = vec!["1".into(), "{{x}}".into()];
        inv.parents = vec!["a/0".into()];
        inv.parents_json = Some(r#"["b/1"]"#.into());
        inv.same_task_parents = vec!["c".into()];
        inv.parents_from_store = true;
        inv.split_index = Some("2".into());
        inv.params = vec!["a=b=c".into()];
        inv.kfp_params = vec![("alpha".into(), "--weird value".into())];
        inv.output_params = vec!["switch=/tmp/x".into()];
        inv.kfp_outputs = vec![("task".into(), "/tmp/t".into())];
        inv.grace = Some(3);
        inv.resume = Some(String::new());
        let args = inv.to_args();
        assert_eq!(StepInvocation::parse(&args).unwrap(), inv);
        let mut plain = StepInvocation::new("/s", "sha256:01", RunId::Run("local-1".into()), "end");
        plain.task = Some("3.1".into());
        assert_eq!(StepInvocation::parse(&plain.to_args()).unwrap(), plain);
        assert_eq!(plain.task_id(), "3.1");
        assert_eq!(inv.task_id(), "1.{{x}}");
    }

    #[test]
    fn unknown_flags_and_missing_values_are_errors() {
        assert_eq!(
            StepInvocation::parse(&["--bogus"]),
            Err(InvocationError::Unknown("--bogus".into()))
        );
        assert_eq!(
            StepInvocation::parse(&["--store"]),
            Err(InvocationError::MissingValue("--store".into()))
        );
        assert_eq!(
            StepInvocation::parse(&["--store", "x"]),
            Err(InvocationError::Missing("--package"))
        );
    }
}
