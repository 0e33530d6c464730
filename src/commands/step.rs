//! `flowpack step`: one task. Its exit code is the child's, or one of flowpack's own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use flowpack_core::invocation::{RunId, StepInvocation};
use flowpack_core::run::TaskRef;
use flowpack_core::store::Store;
use flowpack_runtime::step::{EXIT_STEP_ERROR, StepArgs as Args, StopSignals, run_step};

use crate::cli::StepArgs;
use crate::settings;

/// Runs the task and returns the process exit code.
pub async fn run(a: StepArgs) -> i32 {
    // Signals first: a stop (TERM, INT, HUP) arriving in any phase is seen, and handled.
    let signals = match StopSignals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("flowpack step: error: cannot install signal handlers: {e}");
            return EXIT_STEP_ERROR;
        }
    };
    let args = match resolve(a) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("flowpack step: error: {e:#}");
            return EXIT_STEP_ERROR;
        }
    };
    run_step(args, signals).await.exit_code
}

/// The clap arguments as the one argument type the compiler and the launcher build.
fn invocation(a: StepArgs) -> StepInvocation {
    StepInvocation {
        store: a.store,
        package: a.package,
        run: match (a.run, a.kfp_run_uuid) {
            (Some(r), _) => RunId::Run(r),
            (None, u) => RunId::KfpUuid(u.unwrap_or_default()),
        },
        step: a.step,
        task: a.task,
        task_parts: a.task_parts,
        parents: a.parents,
        parents_json: a.parents_json,
        same_task_parents: a.same_task_parent,
        parents_from_store: a.parents_from_store,
        split_index: a.split_index.map(|i| i.to_string()),
        params: a.params,
        kfp_params: pairs(&a.kfp_params),
        output_params: a.output_params,
        kfp_outputs: pairs(&a.kfp_outputs),
        grace: Some(a.grace),
        image: a.image,
        resume: a.resume,
    }
}

fn resolve(a: StepArgs) -> Result<Args> {
    let inv = invocation(a);
    let task = inv.task_id();
    let split_index = match inv.split_index_text() {
        Some(t) => Some(
            t.parse::<u64>()
                .with_context(|| format!("the split index '{t}' is not a number"))?,
        ),
        None => None,
    };
    let mut parents: Vec<TaskRef> = inv
        .parents
        .iter()
        .map(|p| p.parse().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    for step in &inv.same_task_parents {
        parents.push(TaskRef {
            step: step.clone(),
            task: task.clone(),
        });
    }
    if let Some(json) = &inv.parents_json {
        let list: Vec<String> = serde_json::from_str(json)
            .context("--parents-json must be a JSON list of \"STEP/TASK\"")?;
        for p in list {
            parents.push(p.parse().map_err(anyhow::Error::msg)?);
        }
    }
    let mut outputs = super::key_values(&inv.output_params, "--output-param")?;
    outputs.extend(inv.kfp_outputs.iter().cloned());
    let output_params: BTreeMap<String, PathBuf> = outputs
        .into_iter()
        .map(|(k, v)| {
            if OUTPUTS.contains(&k.as_str()) {
                Ok((k, PathBuf::from(v)))
            } else {
                anyhow::bail!("unknown output parameter '{k}': use {}", OUTPUTS.join(", "))
            }
        })
        .collect::<Result<_>>()?;
    Ok(Args {
        store: Store::open(&inv.store)?,
        package: inv.package.parse()?,
        run: match inv.run {
            RunId::Run(r) => r,
            RunId::KfpUuid(uuid) if !uuid.is_empty() => format!("kfp-{uuid}"),
            RunId::KfpUuid(_) => anyhow::bail!("give --run or --kfp-run-uuid"),
        },
        step: inv.step,
        task,
        parents,
        parents_from_store: inv.parents_from_store,
        split_index,
        params: {
            let mut p = super::key_values(&inv.params, "--param")?;
            p.extend(inv.kfp_params);
            p
        },
        output_params,
        cache_dir: settings::cache_dir()?,
        grace: Duration::from_secs(inv.grace.unwrap_or(10)),
        image: inv.image,
        resume: flowpack_runtime::step::reuse::ResumeSpec::parse(
            inv.resume.as_deref().unwrap_or_default(),
        )?,
    })
}

/// The output parameters a step writes when asked: its task, its foreach list of indices,
/// its switch value and the index of the switch's chosen target (`branch`). A task's
/// status is in its record (`flowpack run` reads it there).
const OUTPUTS: [&str; 4] = ["task", "foreach", "switch", "branch"];

/// `[a, b, c, d]` as `[(a, b), (c, d)]` (clap gives two-value options flat).
fn pairs(flat: &[String]) -> Vec<(String, String)> {
    flat.chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect()
}
