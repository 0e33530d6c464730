//! A client of the Argo Server REST API: the calls `push`, `trigger`, `status`, `terminate`
//! and `schedule`/`schedules` need on the Argo Workflows engine, as Argo Server's own
//! OpenAPI 2 file (`api/openapi-spec/swagger.json` in argo-workflows) defines them; the tests
//! serve that file with Prism. Everything lives in one namespace. Errors carry the HTTP
//! method, the path, the status, an excerpt of the body and what to check; the bearer token
//! is never printed, neither in an error nor in `Debug` output.
//!
//! Argo Server answers errors the grpc-gateway way: an HTTP status with a body
//! `{"code": <gRPC code>, "message": "…"}` (`ALREADY_EXISTS` is HTTP 409 / code 6, a stale
//! `resourceVersion` on update HTTP 409 / code 10 `ABORTED`).

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An Argo Server call that failed (or was not sent).
#[derive(Debug, thiserror::Error)]
pub enum ArgoError {
    /// The Argo Server answered with an error status.
    #[error("Argo Server {method} {path} answered {status}: {body}{hint}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The API path (without the query).
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The gRPC code of Argo's error body (`{"code": 6, …}`), when it had one.
        grpc_code: Option<i64>,
        /// The start of the response body.
        body: String,
        /// What to check.
        hint: &'static str,
    },
    /// The Argo Server could not be reached, or answered something that is not the API's JSON.
    #[error(
        "Argo Server {method} {path}: {reason} (is the Argo Server URL right, with https:// for a \
         server started with --secure, and the server reachable?)"
    )]
    Transport {
        /// The HTTP method.
        method: &'static str,
        /// The API path (without the query).
        path: String,
        /// What happened.
        reason: String,
    },
    /// The request was not sent: what the caller gave cannot be expressed in the API.
    #[error("Argo Server request not sent: {reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
}

impl ArgoError {
    /// The HTTP status the Argo Server answered, if it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this says the object exists already: HTTP 409, or a body with gRPC code 6
    /// (`ALREADY_EXISTS`) whatever the status (a proxy may rewrite the status).
    fn already_exists(&self) -> bool {
        matches!(
            self,
            Self::Status { status: 409, .. }
                | Self::Status {
                    grpc_code: Some(6),
                    ..
                }
        )
    }

    /// Whether an update lost a race: the `resourceVersion` it sent is no longer current
    /// (HTTP 409, gRPC code 10 `ABORTED`).
    fn conflict(&self) -> bool {
        matches!(
            self,
            Self::Status { status: 409, .. }
                | Self::Status {
                    grpc_code: Some(10),
                    ..
                }
        )
    }
}

/// What [`ArgoClient::apply_template`] or [`ArgoClient::apply_cron`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// There was no object of that name: it was created.
    Created,
    /// There was one: it was replaced by the manifest.
    Updated,
}

impl Applied {
    /// `created` or `updated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
        }
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Workflow (one run), as far as flowpack reads it.
///
/// It deserializes from an Argo `Workflow` object as the API returns it
/// (`metadata.name`, `metadata.uid`, `status.phase`, `status.message`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(from = "WorkflowObject")]
pub struct Workflow {
    /// Its name (`metadata.name`), unique in the namespace while it exists.
    pub name: String,
    /// Its `metadata.uid`: the run id part (flowpack names Argo runs `argo-<uid>`).
    pub uid: String,
    /// Pending, Running, Succeeded, Failed or Error; absent right after submission, before
    /// the controller has seen it.
    pub phase: Option<String>,
    /// Why it failed, or what it waits for.
    pub message: Option<String>,
}

/// A CronWorkflow, as far as flowpack reads it (the CLI prints it as JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Cron {
    /// Its name.
    pub name: String,
    /// Its cron schedules: the deprecated `spec.schedule` (if set) then `spec.schedules`.
    pub schedules: Vec<String>,
    /// The IANA time zone of its schedules (`spec.timezone`); the controller's local time when
    /// absent.
    pub timezone: Option<String>,
    /// Whether it is suspended (`spec.suspend`): it starts no runs.
    pub suspended: bool,
    /// The WorkflowTemplate it runs (`spec.workflowSpec.workflowTemplateRef.name`).
    pub template: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

// The API's shapes, reduced to the fields read. Everything is optional: Argo omits empty
// fields, and a `fields=` request leaves out the rest.

#[derive(Default, Deserialize)]
#[serde(default)]
struct ObjectMeta {
    name: Option<String>,
    uid: Option<String>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WorkflowStatus {
    phase: Option<String>,
    message: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WorkflowObject {
    metadata: ObjectMeta,
    status: WorkflowStatus,
}

/// An empty string is no value (Argo may answer `"phase": ""` before the controller ran).
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl From<WorkflowObject> for Workflow {
    fn from(w: WorkflowObject) -> Self {
        Self {
            name: w.metadata.name.unwrap_or_default(),
            uid: w.metadata.uid.unwrap_or_default(),
            phase: non_empty(w.status.phase),
            message: non_empty(w.status.message),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct TemplateRef {
    name: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CronWorkflowSpec {
    workflow_template_ref: Option<TemplateRef>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CronSpec {
    schedule: Option<String>,
    schedules: Option<Vec<String>>,
    timezone: Option<String>,
    suspend: Option<bool>,
    workflow_spec: Option<CronWorkflowSpec>,
}

/// Any object, for its metadata.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Object {
    metadata: ObjectMeta,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct CronObject {
    metadata: ObjectMeta,
    spec: CronSpec,
}

impl From<CronObject> for Cron {
    fn from(c: CronObject) -> Self {
        let mut schedules: Vec<String> = non_empty(c.spec.schedule).into_iter().collect();
        schedules.extend(
            c.spec
                .schedules
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !s.is_empty()),
        );
        Self {
            name: c.metadata.name.unwrap_or_default(),
            schedules,
            timezone: non_empty(c.spec.timezone),
            suspended: c.spec.suspend.unwrap_or(false),
            template: c
                .spec
                .workflow_spec
                .and_then(|w| w.workflow_template_ref)
                .and_then(|r| non_empty(r.name)),
            labels: c.metadata.labels.unwrap_or_default(),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ListMeta {
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

/// A page of a list (`WorkflowList`, `CronWorkflowList`); `items` is null when empty.
#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct Page<T> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Option<Vec<T>>,
}

/// Items per list page.
const PAGE_SIZE: &str = "200";
/// A bound on pages, so that a server repeating its continue token cannot loop us forever.
const MAX_PAGES: usize = 1000;
/// Attempts of the GET + PUT of an update that loses races to other writers.
const UPDATE_ATTEMPTS: usize = 3;
/// The fields `workflow_by_uid` asks for: Argo's `fields` is a comma-separated list of
/// dotted paths kept in the answer (array items share their list's path); `metadata.continue`
/// keeps the list's paging token.
const LIST_FIELDS: &str = "metadata.continue,items.metadata.name,items.metadata.uid,items.status.phase,items.status.message";
/// The fields `workflow` asks for (this leaves out `status.nodes`, which can be megabytes).
const GET_FIELDS: &str = "metadata.name,metadata.uid,status.phase,status.message";

/// The `Authorization` header a token makes.
#[derive(Clone)]
enum Auth {
    None,
    Bearer(HeaderValue),
    /// The token cannot be sent in a header (a control character, say).
    Invalid,
}

/// The two kinds of object [`ArgoClient::apply`] handles.
#[derive(Clone, Copy)]
enum Kind {
    Template,
    Cron,
}

impl Kind {
    /// Its collection's path segment, the request's field holding the object, its kind.
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Template => ("workflow-templates", "template", "WorkflowTemplate"),
            Self::Cron => ("cron-workflows", "cronWorkflow", "CronWorkflow"),
        }
    }
}

/// A client of one Argo Server, for one namespace. Cloning is cheap (one connection pool).
#[derive(Clone)]
pub struct ArgoClient {
    base: String,
    namespace: String,
    auth: Auth,
    /// The token's text, only to cut it out of what the server answers.
    secret: Option<String>,
    http: reqwest::Client,
}

impl fmt::Debug for ArgoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgoClient")
            .field("base", &self.base)
            .field("namespace", &self.namespace)
            .field(
                "token",
                &match self.auth {
                    Auth::None => "none",
                    Auth::Bearer(_) | Auth::Invalid => "[redacted]",
                },
            )
            .finish_non_exhaustive()
    }
}

/// Percent-encodes one path segment (names are DNS-1123, so this is the identity in practice).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An error and its causes, one after the other (reqwest's own message names no cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl ArgoClient {
    /// A client of the Argo Server at `url` (`https://argo.example:2746`, the API under
    /// `/api/v1`; a server behind a `--base-href` takes that path in `url`).
    ///
    /// `token` is sent as `Authorization: Bearer <token>`; the output of `argo auth token`,
    /// which starts with `Bearer ` already, is sent as it is. `namespace` is where the
    /// templates, crons and workflows live.
    pub fn new(url: &str, token: Option<String>, namespace: String) -> Self {
        let token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        // `argo auth token` prints `Bearer <token>`: the bare token is what follows.
        let bare = token.as_deref().map(|t| match t.get(..7) {
            Some(p) if p.eq_ignore_ascii_case("bearer ") => t[7..].trim_start(),
            _ => t,
        });
        let (auth, secret) = match bare.filter(|b| !b.is_empty()) {
            None => (Auth::None, None),
            Some(bare) => {
                let auth = match HeaderValue::from_str(&format!("Bearer {bare}")) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        Auth::Bearer(v)
                    }
                    Err(_) => Auth::Invalid,
                };
                (auth, Some(bare.to_string()))
            }
        };
        Self {
            base: url.trim_end_matches('/').to_string(),
            namespace,
            auth,
            secret,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }

    /// The namespace everything lives in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `/api/v1/<collection>/<namespace>` and then `rest`, each segment encoded.
    fn path(&self, collection: &str, rest: &[&str]) -> String {
        let mut p = format!("/api/v1/{collection}/{}", segment(&self.namespace));
        for r in rest {
            p.push('/');
            p.push_str(&segment(r));
        }
        p
    }

    /// Cuts the token out of text the server sent (a proxy may echo request headers).
    fn redact(&self, text: String) -> String {
        match &self.secret {
            Some(s) if s.len() >= 4 && text.contains(s.as_str()) => text.replace(s, "[token]"),
            _ => text,
        }
    }

    /// Sends `body` (as JSON, when given) with `query` to `path` and reads the answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, ArgoError> {
        let m = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut req = self.http.request(m, format!("{}{path}", self.base));
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(v) => req = req.header(AUTHORIZATION, v.clone()),
            Auth::Invalid => {
                return Err(ArgoError::Invalid {
                    reason: "the token (FLOWPACK_ARGO_TOKEN) is not a valid HTTP header value"
                        .to_string(),
                });
            }
        }
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let transport = |reason: String| ArgoError::Transport {
            method,
            path: path.to_string(),
            reason: self.redact(reason),
        };
        let resp = req.send().await.map_err(|e| transport(chain(&e)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| transport(chain(&e)))?;
        if !status.is_success() {
            let grpc_code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("code")?.as_i64());
            let hint = match status.as_u16() {
                401 | 403 => {
                    " — check FLOWPACK_ARGO_TOKEN (an `argo auth token`) and the namespace"
                }
                404 => " — check the Argo Server URL and the namespace, and that the object exists",
                409 => " — it exists already, or was changed meanwhile",
                400 | 422 => {
                    " — the Argo Server refused the request as invalid (does `argo lint` accept the manifest?)"
                }
                500..=599 => " — the Argo Server failed; see its log",
                _ => "",
            };
            return Err(ArgoError::Status {
                method,
                path: path.to_string(),
                status: status.as_u16(),
                grpc_code,
                body: self.redact(text.chars().take(400).collect()),
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

    /// Creates the object `manifest` of `kind`, or, when one of its name exists, replaces it:
    /// GET for its `metadata.resourceVersion`, PUT the manifest with it (again, a few times,
    /// when another writer changed it in between).
    async fn apply(&self, kind: Kind, manifest: &Value) -> Result<Applied, ArgoError> {
        let (collection, field, kind_name) = kind.parts();
        let name = manifest
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ArgoError::Invalid {
                reason: format!("the {kind_name} manifest has no metadata.name"),
            })?;
        let path = self.path(collection, &[]);
        let mut body = json!({"namespace": self.namespace});
        body[field] = manifest.clone();
        match self.call::<Value>("POST", &path, &[], Some(&body)).await {
            Ok(_) => return Ok(Applied::Created),
            Err(e) if e.already_exists() => {}
            Err(e) => return Err(e),
        }
        let path = self.path(collection, &[name]);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current: Object = self.call("GET", &path, &[], None).await?;
            let version = current.metadata.resource_version.unwrap_or_default();
            let mut object = manifest.clone();
            object["metadata"]["resourceVersion"] = json!(version);
            let mut body = json!({"namespace": self.namespace});
            body[field] = object;
            match self.call::<Value>("PUT", &path, &[], Some(&body)).await {
                Ok(_) => return Ok(Applied::Updated),
                Err(e) if e.conflict() && attempt < UPDATE_ATTEMPTS => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates the WorkflowTemplate `template` (the whole manifest: `apiVersion`, `kind`,
    /// `metadata.name`, `spec`) with `POST /api/v1/workflow-templates/{ns}`, or, when one of
    /// that name exists (409 `ALREADY_EXISTS`), GETs it for its `metadata.resourceVersion` and
    /// PUTs the manifest with that version over it.
    pub async fn apply_template(&self, template: &Value) -> Result<Applied, ArgoError> {
        self.apply(Kind::Template, template).await
    }

    /// The same as [`apply_template`](Self::apply_template) for a CronWorkflow
    /// (`/api/v1/cron-workflows/{ns}`). An update takes the manifest's `spec.suspend` too:
    /// a cron suspended by hand is resumed unless the manifest says `suspend: true`.
    pub async fn apply_cron(&self, cron: &Value) -> Result<Applied, ArgoError> {
        self.apply(Kind::Cron, cron).await
    }

    /// Submits a Workflow from the WorkflowTemplate `template`
    /// (`POST /api/v1/workflows/{ns}/submit`) with `parameters` (the template's arguments, by
    /// name), `labels` on the Workflow and, when given, the service account its pods run as.
    /// Returns the created Workflow (its phase is usually not set yet).
    pub async fn submit(
        &self,
        template: &str,
        parameters: &[(String, String)],
        labels: &[(String, String)],
        service_account: Option<&str>,
    ) -> Result<Workflow, ArgoError> {
        if let Some((k, _)) = parameters
            .iter()
            .find(|(k, _)| k.is_empty() || k.contains('='))
        {
            return Err(ArgoError::Invalid {
                reason: format!("the parameter name {k:?} is empty or holds a '='"),
            });
        }
        // SubmitOpts.labels is one `k=v,k=v` string: neither may hold ',' or '=' (no valid
        // Kubernetes label does).
        if let Some((k, v)) = labels
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains([',', '=']) || v.contains([',', '=']))
        {
            return Err(ArgoError::Invalid {
                reason: format!("the label {k:?}={v:?} is not a valid Kubernetes label"),
            });
        }
        let mut options = serde_json::Map::new();
        if !parameters.is_empty() {
            let p: Vec<String> = parameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
            options.insert("parameters".into(), json!(p));
        }
        if !labels.is_empty() {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            options.insert("labels".into(), json!(l.join(",")));
        }
        if let Some(sa) = service_account {
            options.insert("serviceAccount".into(), json!(sa));
        }
        let body = json!({
            "namespace": self.namespace,
            "resourceKind": "WorkflowTemplate",
            "resourceName": template,
            "submitOptions": options,
        });
        let path = self.path("workflows", &["submit"]);
        self.call("POST", &path, &[], Some(&body)).await
    }

    /// The Workflow whose `metadata.uid` is `uid`, among those carrying the label key `label`
    /// (an existence selector), or None. Lists `GET /api/v1/workflows/{ns}` page by page with
    /// only the fields it reads, and matches the uid here: Kubernetes has no field selector
    /// on the uid of a custom resource.
    pub async fn workflow_by_uid(
        &self,
        uid: &str,
        label: &str,
    ) -> Result<Option<Workflow>, ArgoError> {
        let path = self.path("workflows", &[]);
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("listOptions.labelSelector", label),
                ("listOptions.limit", PAGE_SIZE),
                ("fields", LIST_FIELDS),
            ];
            if !token.is_empty() {
                query.push(("listOptions.continue", &token));
            }
            let page: Page<Workflow> = self.call("GET", &path, &query, None).await?;
            if let Some(w) = page
                .items
                .unwrap_or_default()
                .into_iter()
                .find(|w| w.uid == uid)
            {
                return Ok(Some(w));
            }
            match page.metadata.continue_ {
                Some(next) if !next.is_empty() && next != token => token = next,
                _ => break,
            }
        }
        Ok(None)
    }

    /// The Workflow named `name` (`GET /api/v1/workflows/{ns}/{name}`, without its nodes).
    pub async fn workflow(&self, name: &str) -> Result<Workflow, ArgoError> {
        let path = self.path("workflows", &[name]);
        self.call("GET", &path, &[("fields", GET_FIELDS)], None)
            .await
    }

    /// Stops the Workflow `name` now, running no exit handler
    /// (`PUT /api/v1/workflows/{ns}/{name}/terminate`).
    pub async fn terminate(&self, name: &str) -> Result<(), ArgoError> {
        let path = self.path("workflows", &[name, "terminate"]);
        let body = json!({"name": name, "namespace": self.namespace});
        self.call::<Value>("PUT", &path, &[], Some(&body))
            .await
            .map(|_| ())
    }

    /// The CronWorkflows matching the label selector `selector` (`flowpack.dev/flow=hello`;
    /// every one when empty), page by page (`GET /api/v1/cron-workflows/{ns}`).
    pub async fn crons(&self, selector: &str) -> Result<Vec<Cron>, ArgoError> {
        let path = self.path("cron-workflows", &[]);
        let mut all = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![("listOptions.limit", PAGE_SIZE)];
            if !selector.is_empty() {
                query.push(("listOptions.labelSelector", selector));
            }
            if !token.is_empty() {
                query.push(("listOptions.continue", &token));
            }
            let page: Page<CronObject> = self.call("GET", &path, &query, None).await?;
            all.extend(page.items.unwrap_or_default().into_iter().map(Cron::from));
            match page.metadata.continue_ {
                Some(next) if !next.is_empty() && next != token => token = next,
                _ => break,
            }
        }
        Ok(all)
    }

    /// Deletes the CronWorkflow `name` (`DELETE /api/v1/cron-workflows/{ns}/{name}`); the
    /// Workflows it started stay.
    pub async fn delete_cron(&self, name: &str) -> Result<(), ArgoError> {
        let path = self.path("cron-workflows", &[name]);
        self.call::<Value>("DELETE", &path, &[], None)
            .await
            .map(|_| ())
    }

    /// Resumes (`enable`) or suspends the CronWorkflow `name`
    /// (`PUT /api/v1/cron-workflows/{ns}/{name}/resume` or `…/suspend`).
    pub async fn set_cron_enabled(&self, name: &str, enable: bool) -> Result<(), ArgoError> {
        let verb = if enable { "resume" } else { "suspend" };
        let path = self.path("cron-workflows", &[name, verb]);
        let body = json!({"name": name, "namespace": self.namespace});
        self.call::<Value>("PUT", &path, &[], Some(&body))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// One request the test server saw.
    #[derive(Debug)]
    struct Seen {
        method: String,
        path: String,
        query: Vec<(String, String)>,
        auth: Option<String>,
        body: Value,
    }

    impl Seen {
        fn line(&self) -> (&str, &str) {
            (&self.method, &self.path)
        }
    }

    /// A server on 127.0.0.1 that answers `answers` (status, JSON body) in order, one request
    /// per connection. Returns its URL and the task that ends with what it saw.
    async fn serve(answers: Vec<(u16, Value)>) -> (String, tokio::task::JoinHandle<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, answer) in answers {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    let n = sock.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the client hung up mid-request");
                    buf.extend_from_slice(&chunk[..n]);
                };
                let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                let header = |name: &str| {
                    head.lines().skip(1).find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                let len: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the client hung up mid-body");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = &buf[head_end..head_end + len];
                let mut first = head.split(' ');
                let method = first.next().unwrap().to_string();
                let target =
                    reqwest::Url::parse(&format!("http://x{}", first.next().unwrap())).unwrap();
                seen.push(Seen {
                    method,
                    path: target.path().to_string(),
                    query: target
                        .query_pairs()
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect(),
                    auth: header("authorization"),
                    body: if body.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(body).unwrap()
                    },
                });
                let text = answer.to_string();
                let reply = format!(
                    "HTTP/1.1 {status} Answer\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                sock.write_all(reply.as_bytes()).await.unwrap();
                sock.shutdown().await.ok();
            }
            seen
        });
        (url, task)
    }

    /// What the server saw, once it has answered everything it was given.
    async fn seen(task: tokio::task::JoinHandle<Vec<Seen>>) -> Vec<Seen> {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the client sent fewer requests than the server had answers")
            .unwrap()
    }

    fn template() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "hello", "labels": {"flowpack.dev/flow": "hello"}},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]},
        })
    }

    #[tokio::test]
    async fn a_new_template_is_created_with_one_post() {
        let (url, task) = serve(vec![(200, json!({"metadata": {"name": "hello"}}))]).await;
        let client = ArgoClient::new(&url, Some("t0ken-bare".into()), "ml".into());
        let applied = client.apply_template(&template()).await.unwrap();
        assert_eq!((applied, applied.as_str()), (Applied::Created, "created"));
        let seen = seen(task).await;
        assert_eq!(seen[0].line(), ("POST", "/api/v1/workflow-templates/ml"));
        assert_eq!(
            seen[0].body,
            json!({"namespace": "ml", "template": template()})
        );
        assert_eq!(seen[0].auth.as_deref(), Some("Bearer t0ken-bare"));
    }

    /// POST answers 409 ALREADY_EXISTS: GET for the resourceVersion, PUT the manifest with it.
    #[tokio::test]
    async fn an_existing_template_is_read_for_its_resource_version_and_replaced() {
        let (url, task) = serve(vec![
            (
                409,
                json!({"code": 6, "message": "workflowtemplates.argoproj.io \"hello\" already exists"}),
            ),
            (
                200,
                json!({"metadata": {"name": "hello", "resourceVersion": "4711"}, "spec": {}}),
            ),
            (
                200,
                json!({"metadata": {"name": "hello", "resourceVersion": "4712"}, "spec": {}}),
            ),
        ])
        .await;
        // `argo auth token` prints the scheme already: it is not doubled.
        let client = ArgoClient::new(&url, Some("Bearer s3cret-t0ken\n".into()), "ml".into());
        let applied = client.apply_template(&template()).await.unwrap();
        assert_eq!((applied, applied.as_str()), (Applied::Updated, "updated"));
        let seen = seen(task).await;
        let lines: Vec<_> = seen.iter().map(Seen::line).collect();
        assert_eq!(
            lines,
            [
                ("POST", "/api/v1/workflow-templates/ml"),
                ("GET", "/api/v1/workflow-templates/ml/hello"),
                ("PUT", "/api/v1/workflow-templates/ml/hello"),
            ]
        );
        assert_eq!(
            seen[0].body,
            json!({"namespace": "ml", "template": template()})
        );
        assert_eq!((&seen[1].body, seen[1].query.len()), (&Value::Null, 0));
        let mut updated = template();
        updated["metadata"]["resourceVersion"] = json!("4711");
        assert_eq!(
            seen[2].body,
            json!({"namespace": "ml", "template": updated})
        );
        for s in &seen {
            assert_eq!(s.auth.as_deref(), Some("Bearer s3cret-t0ken"), "{s:?}");
        }
    }

    /// A gRPC code 6 body counts whatever its status; a PUT that loses a race (409 ABORTED)
    /// reads the new resourceVersion and puts again.
    #[tokio::test]
    async fn a_cron_update_that_loses_a_race_reads_again() {
        let cron = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {"name": "nightly"},
            "spec": {"schedules": ["0 3 * * *"], "workflowSpec": {"workflowTemplateRef": {"name": "hello"}}},
        });
        let (url, task) = serve(vec![
            (500, json!({"code": 6, "message": "already exists"})),
            (200, json!({"metadata": {"resourceVersion": "1"}})),
            (
                409,
                json!({"code": 10, "message": "the object has been modified"}),
            ),
            (200, json!({"metadata": {"resourceVersion": "2"}})),
            (200, json!({"metadata": {"resourceVersion": "3"}})),
        ])
        .await;
        let client = ArgoClient::new(&url, None, "ml".into());
        assert_eq!(client.apply_cron(&cron).await.unwrap(), Applied::Updated);
        let seen = seen(task).await;
        let lines: Vec<_> = seen.iter().map(Seen::line).collect();
        let one = "/api/v1/cron-workflows/ml/nightly";
        assert_eq!(
            lines,
            [
                ("POST", "/api/v1/cron-workflows/ml"),
                ("GET", one),
                ("PUT", one),
                ("GET", one),
                ("PUT", one),
            ]
        );
        assert_eq!(
            seen[0].body,
            json!({"namespace": "ml", "cronWorkflow": cron})
        );
        for (i, version) in [(2, "1"), (4, "2")] {
            let mut expected = cron.clone();
            expected["metadata"]["resourceVersion"] = json!(version);
            assert_eq!(
                seen[i].body,
                json!({"namespace": "ml", "cronWorkflow": expected})
            );
        }
        assert!(seen.iter().all(|s| s.auth.is_none()));
    }

    #[tokio::test]
    async fn a_refused_create_is_an_error_with_what_to_check() {
        let (url, task) = serve(vec![(403, json!({"code": 7, "message": "denied"}))]).await;
        let client = ArgoClient::new(&url, Some("s3cret-t0ken".into()), "ml".into());
        let e = client.apply_template(&template()).await.unwrap_err();
        assert_eq!(e.status(), Some(403));
        let text = e.to_string();
        assert!(
            text.contains("Argo Server POST /api/v1/workflow-templates/ml answered 403")
                && text.contains("FLOWPACK_ARGO_TOKEN"),
            "{text}"
        );
        assert_eq!(seen(task).await.len(), 1, "no GET after a refusal");
        let e = client
            .apply_template(&json!({"metadata": {}}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no metadata.name"), "{e}");
    }

    #[tokio::test]
    async fn the_token_is_never_printed() {
        let token = "s3cret-t0ken-4242";
        // A server (or a proxy) that echoes the token in its error.
        let (url, task) = serve(vec![(
            401,
            json!({"code": 16, "message": format!("token Bearer {token} expired")}),
        )])
        .await;
        let client = ArgoClient::new(&url, Some(token.into()), "ml".into());
        let e = client.workflow("w").await.unwrap_err();
        seen(task).await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let unreachable = ArgoClient::new(&closed, Some(token.into()), "ml".into());
        let t = unreachable.terminate("w").await.unwrap_err();
        assert!(matches!(t, ArgoError::Transport { .. }), "{t:?}");
        let bad = ArgoClient::new(&url, Some(format!("{token}\u{7}")), "ml".into());
        let b = bad.workflow("w").await.unwrap_err();
        for text in [
            e.to_string(),
            format!("{e:?}"),
            t.to_string(),
            format!("{t:?}"),
            b.to_string(),
            format!("{b:?}"),
            format!("{client:?}"),
            format!("{bad:?}"),
        ] {
            assert!(!text.contains(token), "the token was printed: {text}");
        }
        assert!(
            e.to_string().contains("answered 401") && e.to_string().contains("[token]"),
            "{e}"
        );
        assert!(b.to_string().contains("FLOWPACK_ARGO_TOKEN"), "{b}");
    }

    #[tokio::test]
    async fn workflow_by_uid_pages_through_the_labelled_workflows() {
        let (url, task) = serve(vec![
            (
                200,
                json!({"metadata": {"continue": "c1"}, "items": [{"metadata": {"name": "a", "uid": "u1"}, "status": {"phase": "Succeeded"}}]}),
            ),
            (
                200,
                json!({"metadata": {}, "items": [{"metadata": {"name": "b", "uid": "u2"}, "status": {"phase": ""}}]}),
            ),
            // A server that repeats its token, and one with no items (null).
            (
                200,
                json!({"metadata": {"continue": "c1"}, "items": [{"metadata": {"name": "a", "uid": "u1"}}]}),
            ),
            (
                200,
                json!({"metadata": {"continue": "c1"}, "items": [{"metadata": {"name": "a", "uid": "u1"}}]}),
            ),
            (200, json!({"metadata": {}, "items": null})),
        ])
        .await;
        let client = ArgoClient::new(&url, Some("t".into()), "ml".into());
        let found = client.workflow_by_uid("u2", "flowpack.dev/run").await;
        let expected = Workflow {
            name: "b".into(),
            uid: "u2".into(),
            phase: None,
            message: None,
        };
        assert_eq!(found.unwrap(), Some(expected));
        assert_eq!(client.workflow_by_uid("u9", "l").await.unwrap(), None);
        assert_eq!(client.workflow_by_uid("u1", "l").await.unwrap(), None);
        let seen = seen(task).await;
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let first = [
            ("listOptions.labelSelector", "flowpack.dev/run"),
            ("listOptions.limit", "200"),
            ("fields", LIST_FIELDS),
        ];
        assert_eq!(seen[0].line(), ("GET", "/api/v1/workflows/ml"));
        assert_eq!(seen[0].query, q(&first));
        let mut next = first.to_vec();
        next.push(("listOptions.continue", "c1"));
        assert_eq!(seen[1].query, q(&next));
        assert_eq!(seen[3].query.last().unwrap().1, "c1");
        assert_eq!(
            LIST_FIELDS,
            "metadata.continue,items.metadata.name,items.metadata.uid,items.status.phase,items.status.message"
        );
    }

    #[tokio::test]
    async fn submit_status_terminate_and_crons_send_what_the_spec_defines() {
        let wf = json!({"metadata": {"name": "hello-x7k2p", "uid": "u9"}, "spec": {}});
        let (url, task) = serve(vec![
            (200, wf.clone()),
            (
                200,
                json!({"metadata": {"name": "hello-x7k2p", "uid": "u9"}, "status": {"phase": "Failed", "message": "boom"}}),
            ),
            (200, wf),
            (
                200,
                json!({"metadata": {}, "items": [
                    {"metadata": {"name": "old", "labels": {"flowpack.dev/flow": "hello"}},
                     "spec": {"schedule": "0 3 * * *", "timezone": "", "workflowSpec": {"workflowTemplateRef": {"name": "hello"}}}},
                    {"metadata": {"name": "new"},
                     "spec": {"schedules": ["0 1 * * *", "30 2 * * 1"], "timezone": "Europe/Paris", "suspend": true, "workflowSpec": {}}},
                ]}),
            ),
            (200, json!({})),
            (200, json!({"metadata": {"name": "old"}})),
            (200, json!({"metadata": {"name": "old"}})),
        ])
        .await;
        let client = ArgoClient::new(&url, Some("t".into()), "ml".into());
        assert_eq!(client.namespace(), "ml");
        let bad = client
            .submit("hello", &[], &[("a".into(), "b,c=d".into())], None)
            .await;
        assert!(matches!(bad, Err(ArgoError::Invalid { .. })), "{bad:?}");
        let params = [
            ("times".to_string(), "4".to_string()),
            ("msg".into(), "a=b c".into()),
        ];
        let labels = [
            ("flowpack.dev/flow".to_string(), "hello".to_string()),
            ("flowpack.dev/run".into(), "".into()),
        ];
        let w = client
            .submit("hello", &params, &labels, Some("runner"))
            .await
            .unwrap();
        assert_eq!(
            (w.name.as_str(), w.uid.as_str(), w.phase),
            ("hello-x7k2p", "u9", None)
        );
        let w = client.workflow("hello-x7k2p").await.unwrap();
        assert_eq!(
            (w.phase.as_deref(), w.message.as_deref()),
            (Some("Failed"), Some("boom"))
        );
        client.terminate("hello-x7k2p").await.unwrap();
        let crons = client.crons("flowpack.dev/flow=hello").await.unwrap();
        assert_eq!(
            crons,
            [
                Cron {
                    name: "old".into(),
                    schedules: vec!["0 3 * * *".into()],
                    timezone: None,
                    suspended: false,
                    template: Some("hello".into()),
                    labels: [("flowpack.dev/flow".to_string(), "hello".to_string())].into(),
                },
                Cron {
                    name: "new".into(),
                    schedules: vec!["0 1 * * *".into(), "30 2 * * 1".into()],
                    timezone: Some("Europe/Paris".into()),
                    suspended: true,
                    template: None,
                    labels: BTreeMap::new(),
                },
            ]
        );
        client.delete_cron("old").await.unwrap();
        client.set_cron_enabled("old", false).await.unwrap();
        client.set_cron_enabled("old", true).await.unwrap();

        let seen = seen(task).await;
        let lines: Vec<_> = seen.iter().map(Seen::line).collect();
        assert_eq!(
            lines,
            [
                ("POST", "/api/v1/workflows/ml/submit"),
                ("GET", "/api/v1/workflows/ml/hello-x7k2p"),
                ("PUT", "/api/v1/workflows/ml/hello-x7k2p/terminate"),
                ("GET", "/api/v1/cron-workflows/ml"),
                ("DELETE", "/api/v1/cron-workflows/ml/old"),
                ("PUT", "/api/v1/cron-workflows/ml/old/suspend"),
                ("PUT", "/api/v1/cron-workflows/ml/old/resume"),
            ]
        );
        assert_eq!(
            seen[0].body,
            json!({
                "namespace": "ml",
                "resourceKind": "WorkflowTemplate",
                "resourceName": "hello",
                "submitOptions": {
                    "parameters": ["times=4", "msg=a=b c"],
                    "labels": "flowpack.dev/flow=hello,flowpack.dev/run=",
                    "serviceAccount": "runner",
                },
            })
        );
        fn pairs(s: &Seen) -> Vec<(&str, &str)> {
            s.query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        }
        assert_eq!(pairs(&seen[1]), [("fields", GET_FIELDS)]);
        let name_ns = json!({"name": "hello-x7k2p", "namespace": "ml"});
        assert_eq!(seen[2].body, name_ns);
        assert_eq!(
            pairs(&seen[3]),
            [
                ("listOptions.limit", "200"),
                ("listOptions.labelSelector", "flowpack.dev/flow=hello"),
            ]
        );
        assert_eq!((&seen[4].body, seen[4].query.len()), (&Value::Null, 0));
        for s in &seen[5..] {
            assert_eq!(s.body, json!({"name": "old", "namespace": "ml"}));
        }
    }
}
