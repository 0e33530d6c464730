//! A client of the KFP v2beta1 REST API: the calls `push --kfp-url`, `trigger`, `status`,
//! `terminate` and `schedule`/`schedules` (recurring runs) need, as KFP's swagger
//! (`backend/api/v2beta1/swagger/kfp_api_single_file.swagger.json` in KFP's repository)
//! defines them; the tests serve that swagger with Prism. Errors carry the HTTP status,
//! an excerpt of the body and what to check; the bearer token is never printed.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A KFP API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum KfpError {
    /// The server answered with an error status.
    #[error("KFP {method} {path} answered {status}: {body}{hint}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The API path.
        path: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
        /// What to check.
        hint: &'static str,
    },
    /// The server could not be reached, or answered something that is not the API's JSON.
    #[error("KFP {method} {path}: {reason} (is the KFP URL right and the API reachable?)")]
    Transport {
        /// The HTTP method.
        method: &'static str,
        /// The API path.
        path: String,
        /// What happened.
        reason: String,
    },
}

/// A pipeline.
#[derive(Clone, Debug, Deserialize)]
pub struct Pipeline {
    /// Its id.
    pub pipeline_id: String,
}

/// A pipeline version.
#[derive(Clone, Debug, Deserialize)]
pub struct PipelineVersion {
    /// The pipeline's id.
    #[serde(default)]
    pub pipeline_id: String,
    /// The version's id.
    pub pipeline_version_id: String,
    /// Its name.
    #[serde(default)]
    pub display_name: String,
}

/// A run.
#[derive(Clone, Debug, Deserialize)]
pub struct Run {
    /// Its id: the `pipeline_job_uuid` tasks see, so the flowpack run id is `kfp-<run_id>`.
    pub run_id: String,
    /// PENDING, RUNNING, SUCCEEDED, SKIPPED, FAILED, CANCELING, CANCELED, PAUSED.
    #[serde(default)]
    pub state: Option<String>,
    /// The run's error, if any.
    #[serde(default)]
    pub error: Option<Value>,
}

/// A recurring run as the API returns it (fields flowpack reads).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct RecurringRun {
    /// Its id.
    pub recurring_run_id: String,
    /// Its name (not unique in KFP; flowpack keeps one per pipeline and name).
    #[serde(default)]
    pub display_name: String,
    /// Its description (flowpack writes the cron as the user wrote it there).
    #[serde(default)]
    pub description: String,
    /// The pipeline and version it runs.
    #[serde(default)]
    pub pipeline_version_reference: Option<VersionReference>,
    /// The parameters of each run.
    #[serde(default)]
    pub runtime_config: Option<RuntimeConfig>,
    /// How it is triggered.
    #[serde(default)]
    pub trigger: Option<Value>,
    /// Runs at once, 1-10 (int64, a JSON string).
    #[serde(default)]
    pub max_concurrency: Option<Value>,
    /// Whether it skips the intervals it missed.
    #[serde(default)]
    pub no_catchup: Option<bool>,
    /// ENABLED or DISABLED.
    #[serde(default)]
    pub status: Option<String>,
    /// Its experiment.
    #[serde(default)]
    pub experiment_id: Option<String>,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<String>,
}

impl RecurringRun {
    /// The cron KFP runs it by, if it has a cron trigger.
    pub fn cron(&self) -> Option<&str> {
        self.trigger
            .as_ref()?
            .get("cron_schedule")?
            .get("cron")?
            .as_str()
    }

    /// Its pipeline's id.
    pub fn pipeline_id(&self) -> Option<&str> {
        self.pipeline_version_reference
            .as_ref()
            .map(|r| r.pipeline_id.as_str())
    }

    /// Its pipeline version's id.
    pub fn pipeline_version_id(&self) -> Option<&str> {
        self.pipeline_version_reference
            .as_ref()
            .and_then(|r| r.pipeline_version_id.as_deref())
    }
}

/// A pipeline version reference.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct VersionReference {
    /// The pipeline.
    #[serde(default)]
    pub pipeline_id: String,
    /// The version; KFP runs the newest when unset.
    #[serde(default)]
    pub pipeline_version_id: Option<String>,
}

/// A run's parameters.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct RuntimeConfig {
    /// By name.
    #[serde(default)]
    pub parameters: serde_json::Map<String, Value>,
}

/// What a new recurring run is.
#[derive(Clone, Debug)]
pub struct NewRecurringRun<'a> {
    /// Its name.
    pub display_name: &'a str,
    /// Its description.
    pub description: &'a str,
    /// Its experiment.
    pub experiment_id: &'a str,
    /// The pipeline.
    pub pipeline_id: &'a str,
    /// The version.
    pub version_id: &'a str,
    /// The cron in KFP's 6-field form (`flowpack_kfp::schedule::kfp_cron`).
    pub cron: &'a str,
    /// Runs at once, 1-10.
    pub max_concurrency: u32,
    /// Whether to run the intervals missed (while disabled or behind).
    pub catchup: bool,
    /// The run parameters.
    pub parameters: &'a serde_json::Map<String, Value>,
    /// The service account of its runs.
    pub service_account: Option<&'a str>,
}

/// A KFP API endpoint.
pub struct KfpClient {
    base: String,
    token: Option<String>,
    namespace: Option<String>,
    http: reqwest::Client,
}

impl KfpClient {
    /// A client of the KFP at `url` (`http://host:port`, the API under `/apis/v2beta1`).
    pub fn new(url: &str, token: Option<String>, namespace: Option<String>) -> Self {
        Self {
            base: format!("{}/apis/v2beta1", url.trim_end_matches('/')),
            token,
            namespace,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, KfpError> {
        let transport = |reason: String| KfpError::Transport {
            method,
            path: path.to_string(),
            reason,
        };
        let resp = req.send().await.map_err(|e| transport(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(e.to_string()))?;
        if !status.is_success() {
            let body: String = text.chars().take(400).collect();
            let hint = match status.as_u16() {
                401 | 403 => " — check the token (FLOWPACK_KFP_TOKEN) and the namespace",
                404 => " — check the KFP URL and that the pipeline or run exists",
                400 | 422 => " — the request was refused as invalid",
                _ => "",
            };
            return Err(KfpError::Status {
                method,
                path: path.to_string(),
                status: status.as_u16(),
                body,
                hint,
            });
        }
        let text = if text.trim().is_empty() {
            "{}".to_string()
        } else {
            text
        };
        serde_json::from_str(&text).map_err(|e| transport(format!("unexpected answer ({e})")))
    }

    /// The pipeline named `name`, if there is one.
    pub async fn find_pipeline(&self, name: &str) -> Result<Option<Pipeline>, KfpError> {
        let path = format!("/pipelines/names/{name}");
        let mut req = self.request(reqwest::Method::GET, &path);
        if let Some(ns) = &self.namespace {
            req = req.query(&[("namespace", ns)]);
        }
        match self.send("GET", &path, req).await {
            Ok(p) => Ok(Some(p)),
            Err(KfpError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn upload_form(yaml: &str) -> reqwest::multipart::Form {
        let part = reqwest::multipart::Part::text(yaml.to_string())
            .file_name("pipeline.yaml")
            .mime_str("application/x-yaml")
            .expect("a valid mime type");
        reqwest::multipart::Form::new().part("uploadfile", part)
    }

    /// Uploads a new pipeline (KFP also makes its first version).
    pub async fn upload_pipeline(
        &self,
        name: &str,
        description: Option<&str>,
        yaml: &str,
    ) -> Result<Pipeline, KfpError> {
        let path = "/pipelines/upload";
        let mut query = vec![
            ("name", name.to_string()),
            ("display_name", name.to_string()),
        ];
        if let Some(d) = description {
            query.push(("description", d.to_string()));
        }
        if let Some(ns) = &self.namespace {
            query.push(("namespace", ns.clone()));
        }
        let req = self
            .request(reqwest::Method::POST, path)
            .query(&query)
            .multipart(Self::upload_form(yaml));
        self.send("POST", path, req).await
    }

    /// Uploads a new version of a pipeline.
    pub async fn upload_version(
        &self,
        pipeline_id: &str,
        version: &str,
        yaml: &str,
    ) -> Result<PipelineVersion, KfpError> {
        let path = "/pipelines/upload_version";
        let req = self
            .request(reqwest::Method::POST, path)
            .query(&[
                ("pipelineid", pipeline_id),
                ("name", version),
                ("display_name", version),
            ])
            .multipart(Self::upload_form(yaml));
        self.send("POST", path, req).await
    }

    /// A pipeline's versions, newest first.
    pub async fn versions(&self, pipeline_id: &str) -> Result<Vec<PipelineVersion>, KfpError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            pipeline_versions: Vec<PipelineVersion>,
        }
        let path = format!("/pipelines/{pipeline_id}/versions");
        let req = self
            .request(reqwest::Method::GET, &path)
            .query(&[("sort_by", "created_at desc"), ("page_size", "100")]);
        Ok(self
            .send::<List>("GET", &path, req)
            .await?
            .pipeline_versions)
    }

    /// The id of the experiment named `name`, created when missing.
    pub async fn experiment(&self, name: &str) -> Result<String, KfpError> {
        #[derive(Deserialize)]
        struct Exp {
            experiment_id: String,
            #[serde(default)]
            display_name: String,
        }
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            experiments: Vec<Exp>,
        }
        let path = "/experiments";
        let filter = json!({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]});
        let mut query = vec![("filter", filter.to_string())];
        if let Some(ns) = &self.namespace {
            query.push(("namespace", ns.clone()));
        }
        let req = self.request(reqwest::Method::GET, path).query(&query);
        let found: List = self.send("GET", path, req).await?;
        if let Some(e) = found
            .experiments
            .into_iter()
            .find(|e| e.display_name == name || e.display_name.is_empty())
        {
            return Ok(e.experiment_id);
        }
        let mut body = json!({"display_name": name});
        if let Some(ns) = &self.namespace {
            body["namespace"] = json!(ns);
        }
        let req = self.request(reqwest::Method::POST, path).json(&body);
        Ok(self.send::<Exp>("POST", path, req).await?.experiment_id)
    }

    /// Starts a run of a pipeline version.
    pub async fn create_run(
        &self,
        display_name: &str,
        experiment_id: &str,
        pipeline_id: &str,
        version_id: &str,
        parameters: &serde_json::Map<String, Value>,
        service_account: Option<&str>,
    ) -> Result<Run, KfpError> {
        let path = "/runs";
        let mut body = json!({
            "display_name": display_name,
            "experiment_id": experiment_id,
            "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": version_id},
            "runtime_config": {"parameters": parameters},
        });
        if let Some(sa) = service_account {
            body["service_account"] = json!(sa);
        }
        let req = self.request(reqwest::Method::POST, path).json(&body);
        self.send("POST", path, req).await
    }

    /// A run's state.
    pub async fn run(&self, run_id: &str) -> Result<Run, KfpError> {
        let path = format!("/runs/{run_id}");
        let req = self.request(reqwest::Method::GET, &path);
        self.send("GET", &path, req).await
    }

    /// Asks KFP to stop a run.
    pub async fn terminate(&self, run_id: &str) -> Result<(), KfpError> {
        let path = format!("/runs/{run_id}:terminate");
        let req = self.request(reqwest::Method::POST, &path);
        self.send::<Value>("POST", &path, req).await.map(|_| ())
    }

    /// Creates a recurring run, enabled.
    pub async fn create_recurring_run(
        &self,
        new: &NewRecurringRun<'_>,
    ) -> Result<RecurringRun, KfpError> {
        let path = "/recurringruns";
        let mut body = json!({
            "display_name": new.display_name,
            "description": new.description,
            "experiment_id": new.experiment_id,
            "pipeline_version_reference": {"pipeline_id": new.pipeline_id, "pipeline_version_id": new.version_id},
            "runtime_config": {"parameters": new.parameters},
            "trigger": {"cron_schedule": {"cron": new.cron}},
            "max_concurrency": new.max_concurrency.to_string(),
            "no_catchup": !new.catchup,
            "mode": "ENABLE",
        });
        if let Some(sa) = new.service_account {
            body["service_account"] = json!(sa);
        }
        let req = self.request(reqwest::Method::POST, path).json(&body);
        self.send("POST", path, req).await
    }

    /// Every recurring run (of the namespace, when one is set), page by page.
    pub async fn recurring_runs(&self) -> Result<Vec<RecurringRun>, KfpError> {
        #[derive(Deserialize)]
        struct Page {
            // The v2beta1 API names this one field in camelCase.
            #[serde(default, rename = "recurringRuns", alias = "recurring_runs")]
            recurring_runs: Vec<RecurringRun>,
            #[serde(default)]
            next_page_token: String,
        }
        let path = "/recurringruns";
        let mut all = Vec::new();
        let mut token = String::new();
        // A bound on pages, so that a server repeating its token cannot loop us forever.
        for _ in 0..1000 {
            let mut query = vec![
                ("page_size", "100".to_string()),
                ("sort_by", "created_at desc".to_string()),
            ];
            if !token.is_empty() {
                query.push(("page_token", token.clone()));
            }
            if let Some(ns) = &self.namespace {
                query.push(("namespace", ns.clone()));
            }
            let req = self.request(reqwest::Method::GET, path).query(&query);
            let page: Page = self.send("GET", path, req).await?;
            all.extend(page.recurring_runs);
            if page.next_page_token.is_empty() || page.next_page_token == token {
                break;
            }
            token = page.next_page_token;
        }
        Ok(all)
    }

    /// Deletes a recurring run (its past runs stay).
    pub async fn delete_recurring_run(&self, id: &str) -> Result<(), KfpError> {
        let path = format!("/recurringruns/{id}");
        let req = self.request(reqwest::Method::DELETE, &path);
        self.send::<Value>("DELETE", &path, req).await.map(|_| ())
    }

    /// Enables (`true`) or disables a recurring run.
    pub async fn set_recurring_run_enabled(&self, id: &str, enable: bool) -> Result<(), KfpError> {
        let path = format!(
            "/recurringruns/{id}:{}",
            if enable { "enable" } else { "disable" }
        );
        let req = self.request(reqwest::Method::POST, &path);
        self.send::<Value>("POST", &path, req).await.map(|_| ())
    }
}
