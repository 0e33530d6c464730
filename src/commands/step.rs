//! `flowpack step`: one task. Its exit code is the child's, or one of flowpack's own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
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

fn resolve(a: StepArgs) -> Result<Args> {
    let mut parents: Vec<TaskRef> = a
        .parents
        .iter()
        .map(|p| p.parse().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    for step in &a.same_task_parent {
        parents.push(TaskRef {
            step: step.clone(),
            task: a.task.clone(),
        });
    }
    if let Some(json) = &a.parents_json {
        let list: Vec<String> = serde_json::from_str(json)
            .context("--parents-json must be a JSON list of \"STEP/TASK\"")?;
        for p in list {
            parents.push(p.parse().map_err(anyhow::Error::msg)?);
        }
    }
    let mut outputs = super::key_values(&a.output_params, "--output-param")?;
    outputs.extend(pairs(&a.kfp_outputs));
    let output_params: BTreeMap<String, PathBuf> = outputs
        .into_iter()
        .map(|(k, v)| {
            if ["task", "foreach", "switch"].contains(&k.as_str()) {
                Ok((k, PathBuf::from(v)))
            } else {
                anyhow::bail!("unknown output parameter '{k}': use task, foreach or switch")
            }
        })
        .collect::<Result<_>>()?;
    Ok(Args {
        store: Store::open(&a.store)?,
        package: a.package.parse()?,
        run: match (a.run, a.kfp_run_uuid) {
            (Some(r), _) => r,
            (None, Some(uuid)) => format!("kfp-{uuid}"),
            (None, None) => anyhow::bail!("give --run or --kfp-run-uuid"),
        },
        step: a.step,
        task: a.task,
        parents,
        split_index: a.split_index,
        params: {
            let mut p = super::key_values(&a.params, "--param")?;
            p.extend(pairs(&a.kfp_params));
            p
        },
        output_params,
        cache_dir: settings::cache_dir()?,
        grace: Duration::from_secs(a.grace),
        image: a.image,
        resume: flowpack_runtime::step::reuse::ResumeSpec::parse(&a.resume)?,
    })
}

/// `[a, b, c, d]` as `[(a, b), (c, d)]` (clap gives two-value options flat).
fn pairs(flat: &[String]) -> Vec<(String, String)> {
    flat.chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect()
}
