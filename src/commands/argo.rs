//! Argo Workflows as an [`Engine`]: `push --argo-server` creates or updates the flow's
//! WorkflowTemplate (and CronWorkflow), `trigger` submits a Workflow from it, `status`,
//! `terminate` and `schedules` find Workflows and CronWorkflows by flowpack's labels.

use anyhow::{Context, Result, bail};
use flowpack_argo::client::{ArgoClient, Workflow};
use flowpack_argo::{CronSpec, FLOW_LABEL, RESUME, cron_workflow, label_value};
use flowpack_core::Flow;
use flowpack_core::env_vars::FLOWPACK_ARGO_TOKEN;
use flowpack_core::flow::Schedule;
use flowpack_core::flow::schedule::{check_cron, is_timezone};
use flowpack_core::invocation::CompileOptions;
use flowpack_runtime::step::reuse::ResumeSpec;
use serde_json::{Map, Value, json};

use super::engine::{Engine, RunRequest, RunState, ScheduleChange, ScheduleRow, Started};
use crate::cli::{EngineArgs, ScheduleArgs};

/// Argo Workflows, through its Argo Server.
pub struct Argo {
    client: ArgoClient,
}

impl Argo {
    /// Creates or updates the CronWorkflow of `spec`; returns what was done.
    async fn apply_cron(&self, flow: &Flow, spec: &CronSpec) -> Result<Value> {
        let cron = cron_workflow(flow, spec);
        let outcome = self.client.apply_cron(&cron).await?;
        Ok(json!({
            "id": cron["metadata"]["name"],
            "cron": spec.cron,
            "timezone": spec.timezone,
            "outcome": outcome.as_str(),
        }))
    }

    /// The Workflow of run `argo-<uid>`.
    async fn workflow(&self, run: &str) -> Result<Workflow> {
        let uid = run_uid(run)?;
        self.client
            .workflow_by_uid(uid, FLOW_LABEL)
            .await?
            .with_context(|| {
                format!(
                    "Argo has no flowpack Workflow with uid {uid} in namespace {} (deleted, or \
                     another namespace: --argo-namespace)",
                    self.client.namespace()
                )
            })
    }
}

/// The Workflow uid of a run id `argo-<uid>`, checked before it goes into a request.
fn run_uid(run: &str) -> Result<&str> {
    let uid = run.strip_prefix("argo-").unwrap_or(run);
    if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("'{run}' is not an Argo run: write argo-<workflow uid>");
    }
    Ok(uid)
}

impl Engine for Argo {
    const NAME: &'static str = "Argo Workflows";
    const KEY: &'static str = "argo";

    fn new(e: &EngineArgs) -> Result<Self> {
        let a = &e.argo;
        let url = a
            .argo_server
            .as_deref()
            .context("no Argo Server given: pass --argo-server URL or set FLOWPACK_ARGO_SERVER")?;
        let token = std::env::var(FLOWPACK_ARGO_TOKEN)
            .ok()
            .filter(|t| !t.is_empty());
        Ok(Argo {
            client: ArgoClient::new(url, token, a.argo_namespace.clone()),
        })
    }

    fn check(flow: &Flow) -> Result<(), String> {
        flowpack_argo::check(flow).map_err(|e| e.reason)
    }

    fn compile(flow: &Flow, opts: &CompileOptions) -> Result<String> {
        Ok(flowpack_argo::compile(flow, opts)?.to_yaml())
    }

    async fn deploy(&self, flow: &Flow, _version: &str, opts: &CompileOptions) -> Result<Value> {
        let compiled = flowpack_argo::compile(flow, opts)?;
        let outcome = self.client.apply_template(&compiled.template).await?;
        Ok(json!({
            "namespace": self.client.namespace(),
            "workflow_template": compiled.name(),
            "outcome": outcome.as_str(),
        }))
    }

    async fn deploy_schedule(&self, flow: &Flow, _ids: &Value) -> Result<Option<Value>> {
        match CronSpec::of_flow(flow) {
            Some(spec) => self.apply_cron(flow, &spec).await.map(Some),
            None => Ok(None),
        }
    }

    async fn schedule(&self, flow: &Flow, a: &ScheduleArgs) -> Result<Value> {
        if a.version_name.is_some() {
            bail!(
                "Argo runs the flow's one WorkflowTemplate (the version last pushed): --version-name is for KFP"
            );
        }
        if a.catchup {
            bail!("Argo starts no missed runs of a CronWorkflow: --catchup is for KFP");
        }
        let (cron, timezone) =
            super::engine::schedule_cron(flow, a.cron.as_deref(), a.timezone.as_deref())?;
        let timezone = timezone.unwrap_or_else(|| Schedule::DEFAULT_TIMEZONE.into());
        check_cron(&cron).map_err(|e| anyhow::anyhow!("--cron '{cron}': {e}"))?;
        if !is_timezone(&timezone) {
            bail!("'{timezone}' is not an IANA time zone (e.g. UTC, Europe/Berlin)");
        }
        let typed = super::engine::typed_params(flow, &a.params)?;
        super::engine::require_parameters(flow, &typed)?;
        let spec = CronSpec {
            name: a.name.clone().unwrap_or_else(|| flow.name.clone()),
            cron,
            timezone,
            parameters: Self::parameters(flow, &typed, None)
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                .collect(),
            forbid_overlap: a.max_concurrency == 1,
        };
        self.apply_cron(flow, &spec).await
    }

    fn parameters(
        flow: &Flow,
        typed: &Map<String, Value>,
        resume: Option<&ResumeSpec>,
    ) -> Map<String, Value> {
        let mut params: Map<String, Value> = typed
            .iter()
            .map(|(k, v)| {
                let text = match flow.parameters.get(k) {
                    Some(p) => p.ty.to_text(v),
                    None => v.to_string(),
                };
                (k.clone(), Value::String(text))
            })
            .collect();
        if let Some(spec) = resume {
            let text = serde_json::to_string(spec).expect("a spec serializes");
            params.insert(RESUME.into(), text.into());
        }
        params
    }

    fn deployed_lines(ids: &Value) -> Vec<String> {
        let mut lines = vec![format!(
            "deployed to Argo: WorkflowTemplate {}/{} {}",
            ids["namespace"].as_str().unwrap_or_default(),
            ids["workflow_template"].as_str().unwrap_or_default(),
            ids["outcome"].as_str().unwrap_or_default()
        )];
        if let Some(c) = ids.get("schedule") {
            lines.push(format!(
                "schedule {} ({} {}): {}",
                c["id"].as_str().unwrap_or_default(),
                c["cron"].as_str().unwrap_or_default(),
                c["timezone"].as_str().unwrap_or_default(),
                c["outcome"].as_str().unwrap_or_default()
            ));
        }
        lines
    }

    async fn trigger(&self, req: &RunRequest<'_>) -> Result<Started> {
        if let Some(v) = req.version_name {
            bail!(
                "Argo runs the version last pushed with --argo-server (one WorkflowTemplate per \
                 flow), so it cannot start version '{v}': push that version again to run it"
            );
        }
        let flow = req.flow;
        let params: Vec<(String, String)> = req
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let labels = [(FLOW_LABEL.to_string(), label_value(&flow.name))];
        let template = flowpack_argo::template_name(&flow.name);
        let wf = self
            .client
            .submit(&template, &params, &labels, None)
            .await
            .with_context(|| {
                format!(
                    "cannot submit a Workflow from WorkflowTemplate {template} (deployed with \
                     `flowpack push {} --argo-server …`?)",
                    req.flow_file.display()
                )
            })?;
        Ok(Started {
            run: format!("argo-{}", wf.uid),
            details: json!({
                "workflow": wf.name, "uid": wf.uid, "namespace": self.client.namespace(),
                "workflow_template": template,
            }),
        })
    }

    async fn status(&self, run: &str) -> Result<RunState> {
        let wf = self.workflow(run).await?;
        Ok(RunState {
            run: format!("argo-{}", wf.uid),
            state: wf.phase.unwrap_or_else(|| "Pending".into()),
            error: wf.message.map(Value::from),
        })
    }

    async fn terminate(&self, run: &str) -> Result<()> {
        let wf = self.workflow(run).await?;
        Ok(self.client.terminate(&wf.name).await?)
    }

    async fn schedules(&self, flow: Option<&str>) -> Result<Vec<ScheduleRow>> {
        let selector = match flow {
            Some(f) => format!("{FLOW_LABEL}={}", label_value(f)),
            None => FLOW_LABEL.to_string(),
        };
        let crons = self.client.crons(&selector).await?;
        Ok(crons
            .into_iter()
            .map(|c| {
                let cron = c.schedules.join(", ");
                let version = c.template.clone().unwrap_or_default();
                ScheduleRow {
                    id: c.name.clone(),
                    name: c.name.clone(),
                    cron: match &c.timezone {
                        Some(tz) => format!("{cron} {tz}"),
                        None => cron,
                    },
                    enabled: !c.suspended,
                    version,
                    json: json!({
                        "id": c.name, "name": c.name, "cron": c.schedules, "timezone": c.timezone,
                        "enabled": !c.suspended, "workflow_template": c.template,
                        "flow": c.labels.get(FLOW_LABEL),
                    }),
                }
            })
            .collect())
    }

    async fn change_schedule(&self, id: &str, change: ScheduleChange) -> Result<()> {
        match change {
            ScheduleChange::Delete => self.client.delete_cron(id).await?,
            ScheduleChange::Enable => self.client.set_cron_enabled(id, true).await?,
            ScheduleChange::Disable => self.client.set_cron_enabled(id, false).await?,
        }
        Ok(())
    }
}
