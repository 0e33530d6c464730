//! Argo Workflows as an [`Engine`]: `push --argo-server` creates or updates the flow's
//! WorkflowTemplate (and CronWorkflow), `trigger` submits a Workflow from it, `status`,
//! `terminate` and `schedules` find Workflows and CronWorkflows by flowpack's labels.

use anyhow::{Context, Result, bail};
use flowpack_argo::client::{ArgoClient, Workflow};
use flowpack_argo::{FLOW_LABEL, RESUME, label_value};
use flowpack_core::Flow;
use flowpack_core::env_vars::FLOWPACK_ARGO_TOKEN;
use flowpack_core::invocation::CompileOptions;
use serde_json::{Value, json};

use super::engine::{Engine, RunRequest, RunState, ScheduleChange, ScheduleRow, Started};
use crate::cli::ArgoArgs;

/// Argo Workflows, through its Argo Server.
pub struct Argo {
    client: ArgoClient,
}

impl Argo {
    /// The engine behind `--argo-server`, or an error saying how to name it.
    pub fn new(a: &ArgoArgs) -> Result<Self> {
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

    fn check(flow: &Flow) -> Result<(), String> {
        flowpack_argo::check(flow).map_err(|e| e.reason)
    }

    fn compile(flow: &Flow, opts: &CompileOptions) -> Result<String> {
        Ok(flowpack_argo::compile(flow, opts)?.to_yaml())
    }

    async fn deploy(&self, flow: &Flow, _version: &str, opts: &CompileOptions) -> Result<Value> {
        let compiled = flowpack_argo::compile(flow, opts)?;
        let outcome = self.client.apply_template(&compiled.template).await?;
        let mut ids = json!({
            "namespace": self.client.namespace(),
            "workflow_template": compiled.name(),
            "outcome": outcome.as_str(),
        });
        if let Some(cron) = &compiled.cron {
            let outcome = self.client.apply_cron(cron).await?;
            ids["cron_workflow"] = json!({
                "name": cron["metadata"]["name"],
                "cron": cron["spec"]["schedules"][0],
                "timezone": cron["spec"]["timezone"],
                "outcome": outcome.as_str(),
            });
        }
        Ok(ids)
    }

    fn deployed_lines(ids: &Value) -> Vec<String> {
        let mut lines = vec![format!(
            "deployed to Argo: WorkflowTemplate {}/{} {}",
            ids["namespace"].as_str().unwrap_or_default(),
            ids["workflow_template"].as_str().unwrap_or_default(),
            ids["outcome"].as_str().unwrap_or_default()
        )];
        if let Some(c) = ids.get("cron_workflow") {
            lines.push(format!(
                "schedule {} ({} {}): {}",
                c["name"].as_str().unwrap_or_default(),
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
        let mut params: Vec<(String, String)> = req
            .params
            .iter()
            .map(|(k, v)| {
                let text = flow
                    .parameters
                    .get(k)
                    .map_or_else(|| v.to_string(), |p| p.ty.to_text(v));
                (k.clone(), text)
            })
            .collect();
        if let Some(spec) = &req.resume {
            params.push((
                RESUME.into(),
                serde_json::to_string(spec).expect("a spec serializes"),
            ));
        }
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
