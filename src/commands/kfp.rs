//! Kubeflow Pipelines: deploy on `push --kfp-url`, `trigger`, `status`, `terminate`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use flowpack_core::Flow;
use flowpack_core::env_vars::FLOWPACK_KFP_TOKEN;
use flowpack_kfp::client::{KfpClient, Pipeline, PipelineVersion};
use flowpack_runtime::inspect;
use flowpack_runtime::step::reuse::ResumeSpec;

use crate::cli::{KfpArgs, KfpRunArgs, TriggerArgs};

/// The client, or an error saying how to name the KFP.
pub fn client(k: &KfpArgs) -> Result<KfpClient> {
    let url = k
        .kfp_url
        .as_deref()
        .context("no KFP given: pass --kfp-url URL or set FLOWPACK_KFP_URL")?;
    let token = std::env::var(FLOWPACK_KFP_TOKEN)
        .ok()
        .filter(|t| !t.is_empty());
    Ok(KfpClient::new(url, token, k.kfp_namespace.clone()))
}

/// Uploads `yaml` as the pipeline of `flow` (first deploy) or as its new version `version`.
/// Returns the KFP ids to record in the version pointer.
pub async fn deploy(
    k: &KfpArgs,
    flow: &Flow,
    version: &str,
    yaml: &str,
) -> Result<serde_json::Value> {
    let kfp = client(k)?;
    let (pipeline_id, version_id) = match kfp.find_pipeline(&flow.name).await? {
        Some(p) => {
            let v = kfp.upload_version(&p.pipeline_id, version, yaml).await?;
            (p.pipeline_id, v.pipeline_version_id)
        }
        None => {
            let p = kfp
                .upload_pipeline(&flow.name, flow.description.as_deref(), yaml)
                .await?;
            let newest = kfp.versions(&p.pipeline_id).await?;
            let v = newest
                .first()
                .context("KFP made the pipeline without a version")?;
            (p.pipeline_id.clone(), v.pipeline_version_id.clone())
        }
    };
    Ok(serde_json::json!({"pipeline_id": pipeline_id, "pipeline_version_id": version_id}))
}

pub async fn trigger(a: TriggerArgs) -> Result<()> {
    let flow = Flow::load(&a.flow)?;
    let mut params = serde_json::Map::new();
    let resume = match &a.resume {
        Some(run) => Some(resume_spec(&a, &flow, run, &mut params).await?),
        None => None,
    };
    params.extend(typed_params(&flow, &a.params)?);
    if let Some(spec) = &resume {
        let text = serde_json::to_string(spec).expect("a spec serializes");
        params.insert(RESUME_INPUT.into(), text.into());
    }
    if a.dry_run {
        return super::print_json(&serde_json::json!({
            "flow": flow.name, "parameters": params, "resume": resume,
        }));
    }
    let kfp = client(&a.kfp)?;
    let (pipeline, version) =
        pipeline_version(&kfp, &flow, &a.flow, a.version_name.as_deref()).await?;
    let experiment = kfp.experiment(&a.experiment).await?;
    let name = format!(
        "{} {}",
        flow.name,
        flowpack_packager::default_version_name()
    );
    let account = flowpack_kfp::run_service_account(&flow).map_err(anyhow::Error::msg)?;
    let run = kfp
        .create_run(
            &name,
            &experiment,
            &pipeline.pipeline_id,
            &version.pipeline_version_id,
            &params,
            account.as_deref(),
        )
        .await?;
    let id = format!("kfp-{}", run.run_id);
    if a.json {
        super::print_json(&serde_json::json!({
            "run": id, "kfp_run_id": run.run_id, "pipeline_id": pipeline.pipeline_id,
            "pipeline_version_id": version.pipeline_version_id, "experiment_id": experiment,
        }))
    } else {
        outln!("{id}");
        Ok(())
    }
}

/// `NAME=VALUE` arguments typed by the flow's parameters (an unknown name is an error).
pub fn typed_params(
    flow: &Flow,
    args: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut params = serde_json::Map::new();
    for (name, text) in super::key_values(args, "--param")? {
        let p = flow
            .parameters
            .get(&name)
            .with_context(|| format!("flow '{}' has no parameter '{name}'", flow.name))?;
        let v =
            p.ty.parse_text(&text)
                .map_err(|e| anyhow::anyhow!("parameter '{name}': {e}"))?;
        params.insert(
            name,
            flowpack_kfp::runtime_value(p.ty, p.default.as_ref(), &v),
        );
    }
    Ok(params)
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

/// The resume of `run` (read from the store): the steps to redo, checked against the
/// current flow; the origin's parameter values go into `params` (given ones win).
async fn resume_spec(
    a: &TriggerArgs,
    flow: &Flow,
    run: &str,
    params: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<ResumeSpec> {
    let store = crate::settings::store(a.store.store.as_deref(), crate::settings::Access::Read)?;
    let record = inspect::find_run(&store, run).await?;
    if record.flow != flow.name {
        bail!(
            "run {} is of flow '{}', not '{}'",
            record.run,
            record.flow,
            flow.name
        );
    }
    let old = inspect::load(&store, record.clone()).await?;
    let redo = inspect::resume_plan(flow, &old, a.from.as_deref())?;
    // The origin's stored (typed) values, as the run request carries them.
    for (k, v) in &record.parameters {
        if let Some(p) = flow.parameters.get(k) {
            params.insert(
                k.clone(),
                flowpack_kfp::runtime_value(p.ty, p.default.as_ref(), v),
            );
        }
    }
    eprintln!(
        "resuming {}: steps run again: {}",
        record.run,
        redo.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(ResumeSpec {
        run: record.run,
        redo: redo.into_iter().collect(),
    })
}

fn run_uuid(run: &str) -> Result<&str> {
    let uuid = run.strip_prefix("kfp-").unwrap_or(run);
    if uuid.is_empty() || !uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("'{run}' is not a KFP run: write kfp-<uuid>");
    }
    Ok(uuid)
}

pub async fn status(a: KfpRunArgs) -> Result<()> {
    let run = client(&a.kfp)?.run(run_uuid(&a.run)?).await?;
    let state = run.state.clone().unwrap_or_else(|| "UNKNOWN".into());
    if a.json {
        super::print_json(
            &serde_json::json!({"run": format!("kfp-{}", run.run_id), "state": state, "error": run.error}),
        )
    } else {
        outln!("kfp-{} {state}", run.run_id);
        Ok(())
    }
}

pub async fn terminate(a: KfpRunArgs) -> Result<()> {
    let uuid = run_uuid(&a.run)?;
    client(&a.kfp)?.terminate(uuid).await?;
    if a.json {
        super::print_json(&serde_json::json!({"run": format!("kfp-{uuid}"), "terminated": true}))
    } else {
        outln!("kfp-{uuid} terminating");
        Ok(())
    }
}
