//! Exit hooks (docs/runtime.md, "Exit hooks"): when the step being run is the flow's
//! `on_failure` or `on_exit` step, the run's status and failed tasks, read from the store.
//!
//! The hook is started like any task (`flowpack step --step HOOK --task 0`, no parents), on
//! every engine, after every other task ended; what it needs to know it reads here, so the
//! engine passes nothing more. An `on_failure` hook of a run that succeeded is recorded as
//! skipped, without running its child.

use std::collections::BTreeMap;

use flowpack_core::flow::{Flow, HookKind};
use flowpack_core::run::RunRecord;
use flowpack_core::store::layout;

use super::StepArgs;
use crate::RuntimeError;

/// What an exit hook is told about the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RunState {
    /// Which hook this step is.
    pub kind: HookKind,
    /// Whether `end` committed and no other task's newest attempt failed.
    pub succeeded: bool,
    /// The tasks (`STEP/TASK`) whose newest attempt did not succeed, hooks left out.
    pub failed_tasks: Vec<String>,
}

impl RunState {
    /// The run's state, if the step being run is an exit hook of `flow`. A run without a
    /// record (its `start` never ran) failed, with no failed task to name.
    pub async fn read(args: &StepArgs, flow: &Flow) -> Result<Option<Self>, RuntimeError> {
        let Some(kind) = flow.hook_kind(&args.step) else {
            return Ok(None);
        };
        let record = match args
            .store
            .get_json::<RunRecord>(&layout::run_record(&flow.name, &args.run))
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => {
                return Ok(Some(Self {
                    kind,
                    succeeded: false,
                    failed_tasks: vec![],
                }));
            }
            Err(e) => return Err(e.into()),
        };
        let run = crate::inspect::load(&args.store, record).await?;
        let mut end_committed = false;
        let mut failed_tasks = Vec::new();
        for t in &run.tasks {
            if flow.hook_kind(&t.step).is_some() {
                continue;
            }
            end_committed |= t.step == "end" && t.attempts.iter().any(|a| a.committed);
            if !t.status().is_some_and(|s| s.is_success()) {
                failed_tasks.push(t.task.clone());
            }
        }
        failed_tasks.sort();
        Ok(Some(Self {
            kind,
            succeeded: end_committed && failed_tasks.is_empty(),
            failed_tasks,
        }))
    }

    /// Whether the hook is skipped: an `on_failure` hook of a run that succeeded.
    pub fn skips(&self) -> bool {
        self.kind == HookKind::OnFailure && self.succeeded
    }

    /// The status as the child sees it.
    pub fn status(&self) -> &'static str {
        if self.succeeded {
            "succeeded"
        } else {
            "failed"
        }
    }

    /// The failed tasks as a JSON list.
    pub fn failed_json(&self) -> serde_json::Value {
        serde_json::Value::from(self.failed_tasks.clone())
    }

    /// One line for the task's log.
    pub fn describe(&self) -> String {
        let mut line = format!("`{}` hook of a run that {}", self.kind.key(), self.status());
        if !self.failed_tasks.is_empty() {
            let shown: Vec<&str> = self
                .failed_tasks
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            line.push_str(&format!(
                " ({} failed: {}{})",
                self.failed_tasks.len(),
                shown.join(", "),
                if self.failed_tasks.len() > 5 {
                    ", …"
                } else {
                    ""
                }
            ));
        }
        if self.skips() {
            line.push_str(": skipped, the child does not run");
        }
        line
    }
}

/// The variables of [`RunState`] not subject to the environment budget.
pub(super) fn fixed_env(
    state: &RunState,
    failed_file: &std::path::Path,
) -> BTreeMap<String, String> {
    use flowpack_core::env_vars as v;
    BTreeMap::from([
        (
            v::FLOWPACK_RUN_STATUS.to_string(),
            state.status().to_string(),
        ),
        (
            v::FLOWPACK_FAILED_TASKS_FILE.to_string(),
            failed_file.display().to_string(),
        ),
    ])
}
