//! Kubeflow Pipelines as an [`Engine`]: deploy on `push --kfp-url`, `trigger`, `status`,
//! `terminate`, `schedules`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use flowpack_core::Flow;
use flowpack_core::env_vars::FLOWPACK_KFP_TOKEN;
use flowpack_core::invocation::CompileOptions;
use flowpack_kfp::client::{KfpClient, Pipeline, PipelineVersion};
use flowpack_runtime::step::reuse::ResumeSpec;
use serde_json::{Map, Value, json};

use super::engine::{Engine, RunRequest, RunState, ScheduleChange, ScheduleRow, Started};
use crate::cli::{EngineArgs, KfpArgs, ScheduleArgs};

/// The client, or an error saying how to name the KFP.
fn client(k: &KfpArgs) -> Result<KfpClient> {
    let url = k
        .kfp_url
        .as_deref()
        .context("no KFP given: pass --kfp-url URL or set FLOWPACK_KFP_URL")?;
    let token = std::env::var(FLOWPACK_KFP_TOKEN)
        .ok()
        .filter(|t| !t.is_empty());
    Ok(KfpClient::new(url, token, k.kfp_namespace.clone()))
}

/// The flow's typed parameter values as a KFP run request carries them
/// (`flowpack_kfp::runtime_value`).
pub fn kfp_values(flow: &Flow, typed: &Map<String, Value>) -> Map<String, Value> {
    typed
        .iter()
        .map(|(k, v)| {
            let v = match flow.parameters.get(k) {
                Some(p) => flowpack_kfp::runtime_value(p.ty, p.default.as_ref(), v),
                None => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// The flow's pipeline (found by the flow's name) and its version named `version_name`, or
/// the newest.
pub async fn pipeline_version(
    kfp: &KfpClient,
    flow: &Flow,
    flow_file: &Path,
    version_name: Option<&str>,
) -> Result<(Pipeline, PipelineVersion)> {
    let pipeline = kfp.find_pipeline(&flow.name).await?.with_context(|| {
        format!(
            "KFP has no pipeline '{}': deploy it with `flowpack push {} --kfp-url …`",
            flow.name,
            flow_file.display()
        )
    })?;
    let versions = kfp.versions(&pipeline.pipeline_id).await?;
    let version = match version_name {
        Some(v) => versions
            .into_iter()
            .find(|x| x.display_name == v)
            .with_context(|| format!("pipeline '{}' has no version '{v}'", flow.name))?,
        None => versions
            .into_iter()
            .next()
            .context("the pipeline has no version")?,
    };
    Ok((pipeline, version))
}

/// The root pipeline input that carries `flowpack step --resume` (docs/kubeflow.md).
const RESUME_INPUT: &str = "flowpack--resume";

fn run_uuid(run: &str) -> Result<&str> {
    let uuid = run.strip_prefix("kfp-").unwrap_or(run);
    if uuid.is_empty() || !uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("'{run}' is not a KFP run: write kfp-<uuid>");
    }
    Ok(uuid)
}

/// Kubeflow Pipelines as an [`Engine`].
pub struct Kfp {
    client: KfpClient,
}

impl Engine for Kfp {
    const NAME: &'static str = "Kubeflow Pipelines";
    const KEY: &'static str = "kfp";

    fn new(e: &EngineArgs) -> Result<Self> {
        Ok(Kfp {
            client: client(&e.kfp)?,
        })
    }

    fn check(flow: &Flow) -> Result<(), String> {
        flowpack_kfp::check(flow).map_err(|e| e.reason)
    }

    fn compile(flow: &Flow, opts: &CompileOptions) -> Result<String> {
        Ok(flowpack_kfp::compile(flow, opts)?.to_yaml())
    }

    async fn deploy(&self, flow: &Flow, version: &str, opts: &CompileOptions) -> Result<Value> {
        let yaml = Self::compile(flow, opts)?;
        let kfp = &self.client;
        let (pipeline_id, version_id) = match kfp.find_pipeline(&flow.name).await? {
            Some(p) => {
                let v = kfp.upload_version(&p.pipeline_id, version, &yaml).await?;
                (p.pipeline_id, v.pipeline_version_id)
            }
            None => {
                let p = kfp
                    .upload_pipeline(&flow.name, flow.description.as_deref(), &yaml)
                    .await?;
                let newest = kfp.versions(&p.pipeline_id).await?;
                let v = newest
                    .first()
                    .context("KFP made the pipeline without a version")?;
                (p.pipeline_id.clone(), v.pipeline_version_id.clone())
            }
        };
        Ok(json!({"pipeline_id": pipeline_id, "pipeline_version_id": version_id}))
    }

    async fn deploy_schedule(&self, flow: &Flow, ids: &Value) -> Result<Option<Value>> {
        super::schedule::deploy_flow_schedule(
            &self.client,
            flow,
            ids["pipeline_id"].as_str().unwrap_or_default(),
            ids["pipeline_version_id"].as_str().unwrap_or_default(),
        )
        .await
    }

    fn parameters(
        flow: &Flow,
        typed: &Map<String, Value>,
        resume: Option<&ResumeSpec>,
    ) -> Map<String, Value> {
        let mut params = kfp_values(flow, typed);
        if let Some(spec) = resume {
            let text = serde_json::to_string(spec).expect("a spec serializes");
            params.insert(RESUME_INPUT.into(), text.into());
        }
        params
    }

    fn deployed_lines(ids: &Value) -> Vec<String> {
        let mut lines = vec![format!(
            "deployed to KFP: pipeline {} version {}",
            ids["pipeline_id"].as_str().unwrap_or_default(),
            ids["pipeline_version_id"].as_str().unwrap_or_default()
        )];
        if let Some(s) = ids.get("schedule") {
            lines.push(format!(
                "schedule {} ({}): {}",
                s["id"].as_str().unwrap_or_default(),
                s["cron"].as_str().unwrap_or_default(),
                s["outcome"].as_str().unwrap_or_default()
            ));
        }
        lines
    }

    async fn trigger(&self, req: &RunRequest<'_>) -> Result<Started> {
        let kfp = &self.client;
        let flow = req.flow;
        let (pipeline, version) =
            pipeline_version(kfp, flow, req.flow_file, req.version_name).await?;
        let experiment = kfp.experiment(req.experiment).await?;
        let name = format!(
            "{} {}",
            flow.name,
            flowpack_packager::default_version_name()
        );
        let account = flowpack_kfp::run_service_account(flow).map_err(anyhow::Error::msg)?;
        let run = kfp
            .create_run(
                &name,
                &experiment,
                &pipeline.pipeline_id,
                &version.pipeline_version_id,
                &req.params,
                account.as_deref(),
            )
            .await?;
        Ok(Started {
            run: format!("kfp-{}", run.run_id),
            details: json!({
                "kfp_run_id": run.run_id, "pipeline_id": pipeline.pipeline_id,
                "pipeline_version_id": version.pipeline_version_id, "experiment_id": experiment,
            }),
        })
    }

    async fn status(&self, run: &str) -> Result<RunState> {
        let run = self.client.run(run_uuid(run)?).await?;
        Ok(RunState {
            run: format!("kfp-{}", run.run_id),
            state: run.state.clone().unwrap_or_else(|| "UNKNOWN".into()),
            error: run.error,
        })
    }

    async fn terminate(&self, run: &str) -> Result<()> {
        Ok(self.client.terminate(run_uuid(run)?).await?)
    }

    async fn schedule(&self, flow: &Flow, a: &ScheduleArgs) -> Result<Value> {
        super::schedule::schedule(&self.client, flow, a).await
    }

    async fn schedules(&self, flow: Option<&str>) -> Result<Vec<ScheduleRow>> {
        super::schedule::rows(&self.client, flow).await
    }

    async fn change_schedule(&self, id: &str, change: ScheduleChange) -> Result<()> {
        match change {
            ScheduleChange::Delete => self.client.delete_recurring_run(id).await?,
            ScheduleChange::Enable => self.client.set_recurring_run_enabled(id, true).await?,
            ScheduleChange::Disable => self.client.set_recurring_run_enabled(id, false).await?,
        }
        Ok(())
    }
}
