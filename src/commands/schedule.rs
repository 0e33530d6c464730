//! KFP recurring runs: what `flowpack schedule FLOW` does on KFP (create or replace one), the
//! rows `flowpack schedules [FLOW]` lists (both commands are `engine.rs`'s, for every
//! engine), and the flow's own `schedule` deployed by `push --kfp-url`. A schedule is one recurring run per pipeline and
//! name: scheduling again with the same settings leaves it, with others replaces it (the v2beta1
//! API has no update call). Everything a schedule needs is checked before the first call.

use anyhow::{Context, Result, bail};
use flowpack_core::Flow;
use flowpack_core::env_vars::FLOWPACK_KFP_TIMEZONE;
use flowpack_kfp::client::{KfpClient, NewRecurringRun, RecurringRun};
use flowpack_kfp::schedule::{KFP_DEFAULT_TIMEZONE, kfp_cron};
use serde_json::{Map, Value, json};

use super::engine::{ScheduleRow, typed_params};
use super::kfp::{kfp_values, pipeline_version};
use crate::cli::ScheduleArgs;

/// A schedule, checked and converted, before any KFP call.
#[derive(Debug)]
struct Plan {
    /// The recurring run's name.
    name: String,
    /// The cron as the user wrote it.
    cron: String,
    /// The time zone it is meant in.
    timezone: String,
    /// KFP's 6-field cron.
    kfp_cron: String,
    parameters: Map<String, Value>,
    max_concurrency: u32,
    catchup: bool,
    service_account: Option<String>,
}

impl Plan {
    /// The description flowpack writes: the cron as the user wrote it, read back by
    /// [`user_cron`].
    fn description(&self) -> String {
        format!(
            "flowpack: cron {} in {}",
            Value::from(self.cron.as_str()),
            self.timezone
        )
    }
}

/// The cron a recurring run was made from, as its user wrote it (from the description
/// flowpack writes), else KFP's cron.
fn user_cron(r: &RecurringRun) -> String {
    r.description
        .strip_prefix("flowpack: cron ")
        .and_then(|rest| {
            serde_json::Deserializer::from_str(rest)
                .into_iter::<String>()
                .next()?
                .ok()
        })
        .or_else(|| r.cron().map(str::to_string))
        .unwrap_or_default()
}

/// The zone the cluster reads cron in.
fn cluster_timezone() -> String {
    std::env::var(FLOWPACK_KFP_TIMEZONE)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| KFP_DEFAULT_TIMEZONE.to_string())
}

/// Checks and converts a schedule of `flow`: the cron, the time zone against the cluster's,
/// and that every parameter without a default has a value.
fn plan(
    flow: &Flow,
    name: Option<&str>,
    cron: Option<&str>,
    timezone: Option<&str>,
    parameters: Map<String, Value>,
) -> Result<Plan> {
    let (cron, timezone) = super::engine::schedule_cron(flow, cron, timezone)?;
    let kfp_cron = kfp_cron(&cron)?;
    let cluster = cluster_timezone();
    let timezone = timezone.unwrap_or_else(|| cluster.clone());
    if timezone != cluster {
        bail!(
            "the schedule is meant in {timezone}, but KFP reads every recurring run's cron in its cluster's one time zone ({cluster}; set {FLOWPACK_KFP_TIMEZONE} to the zone of the cluster's CRON_SCHEDULE_TIMEZONE if it is not UTC): write the cron in {cluster} and pass --timezone {cluster}"
        );
    }
    super::engine::require_parameters(flow, &parameters)?;
    Ok(Plan {
        name: name.unwrap_or(&flow.name).to_string(),
        cron,
        timezone,
        kfp_cron,
        parameters,
        max_concurrency: 1,
        catchup: false,
        service_account: flowpack_kfp::run_service_account(flow).map_err(anyhow::Error::msg)?,
    })
}

/// What [`apply`] did.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Created,
    Unchanged,
    Replaced,
}

/// Whether `r` already is what `p` asks for.
fn same(r: &RecurringRun, p: &Plan, version_id: &str, experiment_id: &str) -> bool {
    let concurrency = r.max_concurrency.as_ref().and_then(|v| match v {
        Value::String(s) => s.parse::<u32>().ok(),
        v => v.as_u64().and_then(|n| u32::try_from(n).ok()),
    });
    r.cron() == Some(p.kfp_cron.as_str())
        && r.description == p.description()
        && r.pipeline_version_id() == Some(version_id)
        && r.experiment_id.as_deref() == Some(experiment_id)
        && r.runtime_config.as_ref().map(|c| &c.parameters) == Some(&p.parameters)
        && concurrency == Some(p.max_concurrency)
        && r.no_catchup.unwrap_or(false) != p.catchup
}

/// Makes the pipeline's recurring run named `p.name` be `p`: leaves an equal one (enabling
/// it if disabled), else creates the new one and then deletes the old ones.
async fn apply(
    kfp: &KfpClient,
    p: &Plan,
    pipeline_id: &str,
    version_id: &str,
    experiment_id: &str,
) -> Result<(RecurringRun, Outcome, Vec<String>)> {
    let existing: Vec<RecurringRun> = kfp
        .recurring_runs()
        .await?
        .into_iter()
        .filter(|r| r.display_name == p.name && r.pipeline_id() == Some(pipeline_id))
        .collect();
    if let [only] = existing.as_slice()
        && same(only, p, version_id, experiment_id)
    {
        if only.status.as_deref() == Some("DISABLED") {
            kfp.set_recurring_run_enabled(&only.recurring_run_id, true)
                .await?;
        }
        return Ok((only.clone(), Outcome::Unchanged, vec![]));
    }
    let description = p.description();
    let created = kfp
        .create_recurring_run(&NewRecurringRun {
            display_name: &p.name,
            description: &description,
            experiment_id,
            pipeline_id,
            version_id,
            cron: &p.kfp_cron,
            max_concurrency: p.max_concurrency,
            catchup: p.catchup,
            parameters: &p.parameters,
            service_account: p.service_account.as_deref(),
        })
        .await?;
    let mut replaced = Vec::new();
    for old in &existing {
        kfp.delete_recurring_run(&old.recurring_run_id)
            .await
            .with_context(|| {
                format!(
                    "the new schedule {} was made, but the old one {} is left: delete it with `flowpack schedules delete {}`",
                    created.recurring_run_id, old.recurring_run_id, old.recurring_run_id
                )
            })?;
        replaced.push(old.recurring_run_id.clone());
    }
    let outcome = if existing.is_empty() {
        Outcome::Created
    } else {
        Outcome::Replaced
    };
    Ok((created, outcome, replaced))
}

/// `schedule` on KFP: makes the recurring run; returns what `schedule --json` prints
/// (with the id under `id`).
pub async fn schedule(kfp: &KfpClient, flow: &Flow, a: &ScheduleArgs) -> Result<Value> {
    let mut p = plan(
        flow,
        a.name.as_deref(),
        a.cron.as_deref(),
        a.timezone.as_deref(),
        kfp_values(flow, &typed_params(flow, &a.params)?),
    )?;
    p.max_concurrency = a.max_concurrency;
    p.catchup = a.catchup;
    let (pipeline, version) =
        pipeline_version(kfp, flow, &a.flow, a.version_name.as_deref()).await?;
    let experiment = kfp.experiment(&a.experiment).await?;
    let (run, outcome, replaced) = apply(
        kfp,
        &p,
        &pipeline.pipeline_id,
        &version.pipeline_version_id,
        &experiment,
    )
    .await?;
    Ok(json!({
        "id": run.recurring_run_id, "name": p.name, "outcome": outcome, "replaced": replaced,
        "cron": p.cron, "timezone": p.timezone, "kfp_cron": p.kfp_cron,
        "pipeline_id": pipeline.pipeline_id, "pipeline_version_id": version.pipeline_version_id,
        "experiment_id": experiment,
    }))
}

/// For `push --kfp-url`: checks the flow's own `schedule`, if any, before anything is pushed.
pub fn check_flow_schedule(flow: &Flow) -> Result<()> {
    if flow.schedule.is_some() {
        plan(flow, None, None, None, Map::new())
            .context("the flow's `schedule` cannot be deployed to KFP (nothing was pushed)")?;
    }
    Ok(())
}

/// For `push --kfp-url`: makes the flow's own `schedule` (named after the flow, in the
/// `Default` experiment) run the version just deployed. Returns its id and what was done.
pub async fn deploy_flow_schedule(
    kfp: &KfpClient,
    flow: &Flow,
    pipeline_id: &str,
    version_id: &str,
) -> Result<Option<Value>> {
    if flow.schedule.is_none() {
        return Ok(None);
    }
    let p = plan(flow, None, None, None, Map::new())?;
    let experiment = kfp.experiment("Default").await?;
    let (run, outcome, replaced) = apply(kfp, &p, pipeline_id, version_id, &experiment).await?;
    Ok(Some(json!({
        "id": run.recurring_run_id, "outcome": outcome, "replaced": replaced, "cron": p.cron,
    })))
}

/// The recurring runs (of the pipeline of the flow named `flow`) as `schedules` lists them.
pub async fn rows(kfp: &KfpClient, flow: Option<&str>) -> Result<Vec<ScheduleRow>> {
    let mut runs = kfp.recurring_runs().await?;
    if let Some(name) = flow {
        let Some(pipeline) = kfp.find_pipeline(name).await? else {
            bail!("KFP has no pipeline '{name}', so no schedules of it");
        };
        runs.retain(|r| r.pipeline_id() == Some(pipeline.pipeline_id.as_str()));
    }
    // Version names, one call per pipeline.
    let mut names = std::collections::BTreeMap::new();
    let pipelines: std::collections::BTreeSet<&str> =
        runs.iter().filter_map(RecurringRun::pipeline_id).collect();
    for p in pipelines {
        for v in kfp.versions(p).await? {
            names.insert(v.pipeline_version_id, v.display_name);
        }
    }
    let version = |r: &RecurringRun| {
        r.pipeline_version_id()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
            .unwrap_or_else(|| "newest".into())
    };
    Ok(runs
        .iter()
        .map(|r| {
            let enabled = r.status.as_deref() != Some("DISABLED");
            ScheduleRow {
                id: r.recurring_run_id.clone(),
                name: r.display_name.clone(),
                cron: user_cron(r),
                enabled,
                version: version(r),
                json: json!({
                    "id": r.recurring_run_id, "name": r.display_name, "cron": user_cron(r),
                    "kfp_cron": r.cron(), "enabled": enabled, "status": r.status,
                    "pipeline_id": r.pipeline_id(), "pipeline_version_id": r.pipeline_version_id(),
                    "version": version(r), "parameters": r.runtime_config.as_ref().map(|c| &c.parameters),
                    "max_concurrency": r.max_concurrency, "catchup": !r.no_catchup.unwrap_or(false),
                    "experiment_id": r.experiment_id, "created_at": r.created_at,
                }),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_cron_is_read_back_from_the_description() {
        let p = Plan {
            name: "x".into(),
            cron: "0 2 * * \"7\"".into(),
            timezone: "UTC".into(),
            kfp_cron: String::new(),
            parameters: Map::new(),
            max_concurrency: 1,
            catchup: false,
            service_account: None,
        };
        let r = RecurringRun {
            description: p.description(),
            ..Default::default()
        };
        assert_eq!(user_cron(&r), p.cron);
        let foreign = RecurringRun {
            description: "made by hand".into(),
            trigger: Some(json!({"cron_schedule": {"cron": "0 0 2 * * *"}})),
            ..Default::default()
        };
        assert_eq!(user_cron(&foreign), "0 0 2 * * *");
    }
}
