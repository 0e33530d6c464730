//! The Argo Server client against Prism serving Argo Server's official OpenAPI 2 file
//! (`/work/shared/argo/swagger.json`): every request the client sends must be one the spec
//! allows (Prism answers 4xx otherwise and logs the violation).
//!
//! Two changes make the spec servable and the check strict, leaving every operation and
//! parameter as it is:
//! - Prism cannot make up Argo's objects (a Workflow nests templates in templates: static
//!   mode answers 500 "Schema too complex", dynamic mode fails too), so the 200 answers of
//!   the operations used get examples: realistic objects the assertions recognise;
//! - the request bodies the client sends, and the objects in them, get
//!   `additionalProperties: false`: Prism would accept any unknown field otherwise (a
//!   misspelt `submitOption` would pass). A canary request checks that this took.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowpack_argo::client::{Applied, ArgoClient, ArgoError, Cron, Workflow};
use serde_json::{Value, json};

use crate::util;

const NS: &str = "flowpack-test";
const UID: &str = "0b7e4f5c-3a1d-4a8e-9c59-3f1f0c2d9a77";
const RUN: &str = "hello-x7k2p";
const TOKEN: &str = "flowpack-argo-t0ken";
const V1: &str = "io.argoproj.workflow.v1alpha1.";

fn template_manifest() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "hello", "labels": {"flowpack.dev/flow": "hello"}},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "times", "value": "1"}]},
            "templates": [{"name": "main", "container": {"image": "alpine:3", "command": ["true"]}}],
        },
    })
}

fn cron_manifest() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "hello-nightly", "labels": {"flowpack.dev/flow": "hello"}},
        "spec": {
            "schedules": ["0 3 * * *"],
            "timezone": "Europe/Paris",
            "suspend": true,
            "workflowSpec": {"workflowTemplateRef": {"name": "hello"}},
        },
    })
}

/// The answers Prism gives, by the definition an operation answers with.
fn examples() -> Vec<(&'static str, Value)> {
    let mut template = template_manifest();
    template["metadata"]["namespace"] = json!(NS);
    template["metadata"]["resourceVersion"] = json!("4711");
    let mut cron = cron_manifest();
    cron["metadata"]["namespace"] = json!(NS);
    let workflow = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": RUN, "namespace": NS, "uid": UID, "labels": {"flowpack.dev/run": ""}},
        "spec": {"workflowTemplateRef": {"name": "hello"}},
        "status": {"phase": "Running", "message": "waiting for main"},
    });
    vec![
        ("WorkflowTemplate", template),
        ("CronWorkflow", cron.clone()),
        ("CronWorkflowList", json!({"metadata": {}, "items": [cron]})),
        ("Workflow", workflow.clone()),
        // A continue token that never ends: the client must stop when it repeats.
        (
            "WorkflowList",
            json!({"metadata": {"continue": "page-2"}, "items": [workflow]}),
        ),
        ("CronWorkflowDeletedResponse", json!({})),
    ]
}

/// The request definitions the client fills (and the objects in them) made strict.
const STRICT: &[&str] = &[
    "io.argoproj.workflow.v1alpha1.WorkflowTemplateCreateRequest",
    "io.argoproj.workflow.v1alpha1.WorkflowTemplateUpdateRequest",
    "io.argoproj.workflow.v1alpha1.CreateCronWorkflowRequest",
    "io.argoproj.workflow.v1alpha1.UpdateCronWorkflowRequest",
    "io.argoproj.workflow.v1alpha1.WorkflowSubmitRequest",
    "io.argoproj.workflow.v1alpha1.SubmitOpts",
    "io.argoproj.workflow.v1alpha1.WorkflowTerminateRequest",
    "io.argoproj.workflow.v1alpha1.CronWorkflowSuspendRequest",
    "io.argoproj.workflow.v1alpha1.CronWorkflowResumeRequest",
    "io.argoproj.workflow.v1alpha1.WorkflowTemplate",
    "io.argoproj.workflow.v1alpha1.CronWorkflow",
    "io.argoproj.workflow.v1alpha1.CronWorkflowSpec",
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
];

/// Argo's swagger.json with the examples and the strictness above, written into `dir`.
fn servable_spec(dir: &Path) -> PathBuf {
    let official = util::workspace().join("../shared/argo/swagger.json");
    let text = std::fs::read_to_string(&official)
        .unwrap_or_else(|e| panic!("Argo's swagger is missing: {}: {e}", official.display()));
    let mut spec: Value = serde_json::from_str(&text).unwrap();
    let examples = examples();
    let mut answered = 0;
    for (_, item) in spec["paths"].as_object_mut().unwrap() {
        for (_, op) in item.as_object_mut().unwrap() {
            let Some(ok) = op.pointer_mut("/responses/200") else {
                continue;
            };
            let Some(schema) = ok.pointer("/schema/$ref").and_then(Value::as_str) else {
                continue;
            };
            let def = schema.trim_start_matches("#/definitions/");
            if let Some((_, ex)) = examples.iter().find(|(n, _)| def == format!("{V1}{n}")) {
                ok["examples"] = json!({"application/json": ex});
                answered += 1;
            }
        }
    }
    assert!(answered >= 20, "only {answered} operations got an example");
    for def in STRICT {
        let d = &mut spec["definitions"][*def];
        assert!(d["properties"].is_object(), "{def} is not in the spec");
        d["additionalProperties"] = json!(false);
    }
    let path = dir.join("argo-swagger.json");
    std::fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
    path
}

/// Sends one raw HTTP request and returns the status line.
fn raw(url: &str, method: &str, path: &str, body: &Value) -> String {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.to_string();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

/// Every client call against Prism serving Argo Server's spec: each request is one the spec
/// allows, and each answer is read into what the example object holds.
#[test]
fn every_argo_client_call_speaks_the_argo_server_api() {
    let tmp = tempfile::tempdir().unwrap();
    let (url, log) = util::prism_for(&servable_spec(tmp.path()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = ArgoClient::new(&url, Some(TOKEN.into()), NS.into());
    assert_eq!(client.namespace(), NS);
    let running = Workflow {
        name: RUN.into(),
        uid: UID.into(),
        phase: Some("Running".into()),
        message: Some("waiting for main".into()),
    };
    rt.block_on(async {
        let applied = client.apply_template(&template_manifest()).await.unwrap();
        assert_eq!(applied, Applied::Created);
        let applied = client.apply_cron(&cron_manifest()).await.unwrap();
        assert_eq!(applied, Applied::Created);

        let params = [
            ("times".to_string(), "4".to_string()),
            ("greeting".into(), "a=b, c".into()),
        ];
        let labels = [
            ("flowpack.dev/flow".to_string(), "hello".to_string()),
            ("flowpack.dev/run".into(), String::new()),
        ];
        let submitted = client
            .submit("hello", &params, &labels, Some("flowpack-runner"))
            .await
            .unwrap();
        assert_eq!(
            submitted, running,
            "the answer is read from metadata/status"
        );

        // Found on the first page; a uid Prism does not echo pages on (page-2) and stops
        // when the token repeats.
        let found = client.workflow_by_uid(UID, "flowpack.dev/run").await;
        assert_eq!(found.unwrap(), Some(running.clone()));
        let missing = client
            .workflow_by_uid("another-uid", "flowpack.dev/run")
            .await;
        assert_eq!(missing.unwrap(), None);

        assert_eq!(client.workflow(RUN).await.unwrap(), running);
        client.terminate(RUN).await.unwrap();

        let crons = client.crons("flowpack.dev/flow=hello").await.unwrap();
        let expected = Cron {
            name: "hello-nightly".into(),
            schedules: vec!["0 3 * * *".into()],
            timezone: Some("Europe/Paris".into()),
            suspended: true,
            template: Some("hello".into()),
            labels: [("flowpack.dev/flow".to_string(), "hello".to_string())].into(),
        };
        assert_eq!(crons, [expected]);
        assert_eq!(
            serde_json::to_value(&crons[0]).unwrap(),
            json!({
                "name": "hello-nightly", "schedules": ["0 3 * * *"], "timezone": "Europe/Paris",
                "suspended": true, "template": "hello", "labels": {"flowpack.dev/flow": "hello"},
            })
        );
        client
            .set_cron_enabled("hello-nightly", false)
            .await
            .unwrap();
        client
            .set_cron_enabled("hello-nightly", true)
            .await
            .unwrap();
        client.delete_cron("hello-nightly").await.unwrap();
    });

    let found = util::prism_violations(&log);
    assert!(
        found.is_empty(),
        "requests the Argo Server API does not allow:\n{}",
        found.join("\n")
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for call in [
        format!("post /api/v1/workflow-templates/{NS} "),
        format!("post /api/v1/cron-workflows/{NS} "),
        format!("post /api/v1/workflows/{NS}/submit "),
        format!("get /api/v1/workflows/{NS}/{RUN} "),
        format!("put /api/v1/workflows/{NS}/{RUN}/terminate "),
        format!("get /api/v1/cron-workflows/{NS} "),
        format!("put /api/v1/cron-workflows/{NS}/hello-nightly/suspend "),
        format!("put /api/v1/cron-workflows/{NS}/hello-nightly/resume "),
        format!("delete /api/v1/cron-workflows/{NS}/hello-nightly "),
    ] {
        assert_eq!(text.matches(&call).count(), 1, "{call}:\n{text}");
    }
    let lists = text
        .matches(&format!("get /api/v1/workflows/{NS} "))
        .count();
    assert_eq!(
        lists, 3,
        "one page for the uid found, two for the one not found"
    );

    // Without a token the Argo Server refuses, and the error says what to check.
    let anonymous = ArgoClient::new(&url, None, NS.into());
    let refused = rt.block_on(anonymous.workflow(RUN)).unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains(&format!("GET /api/v1/workflows/{NS}/{RUN} answered 401"))
            && text.contains("FLOWPACK_ARGO_TOKEN"),
        "{text}"
    );

    // Errors with a token never show it: a wrong URL (Prism knows no such path), a server
    // that is not there.
    let wrong = ArgoClient::new(&format!("{url}/not-argo"), Some(TOKEN.into()), NS.into());
    let not_found = rt
        .block_on(wrong.apply_template(&template_manifest()))
        .unwrap_err();
    assert_eq!(not_found.status(), Some(404), "{not_found}");
    assert!(not_found.to_string().contains("check the Argo Server URL"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gone = ArgoClient::new(&format!("http://{closed}"), Some(TOKEN.into()), NS.into());
    let unreachable = rt.block_on(gone.terminate(RUN)).unwrap_err();
    assert!(
        matches!(unreachable, ArgoError::Transport { .. }),
        "{unreachable:?}"
    );
    for text in [
        not_found.to_string(),
        format!("{not_found:?}"),
        unreachable.to_string(),
        format!("{unreachable:?}"),
        format!("{client:?}"),
    ] {
        assert!(!text.contains(TOKEN), "the token was printed: {text}");
    }

    // The canary: a body with a field the spec does not define is refused and logged, so the
    // clean log above means something.
    let status = raw(
        &url,
        "PUT",
        &format!("/api/v1/workflows/{NS}/{RUN}/terminate"),
        &json!({"name": RUN, "namespace": NS, "force": true}),
    );
    assert!(status.contains(" 422 "), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while util::prism_violations(&log).is_empty() {
        assert!(Instant::now() < deadline, "Prism logged no violation");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The commands against Prism serving Argo Server's spec: `push --argo-server` creates the
/// WorkflowTemplate and the flow's CronWorkflow and records the answer in the version
/// pointer; `trigger` submits and prints `argo-<uid>`; `status` and `terminate` find the
/// Workflow by its uid; `schedule` makes another CronWorkflow in its own time zone;
/// `schedules` lists, disables, enables and deletes. The token is never
/// printed, and every request is one the spec allows.
#[test]
fn push_trigger_status_terminate_and_schedules_speak_the_argo_server_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let spec = servable_spec(dir);
    let (url, log) = util::prism_for(&spec);
    util::write_tree(
        dir,
        &[(
            "flow.yaml",
            "name: hello\nschedule: {cron: '0 3 * * *', timezone: Europe/Paris}\nparameters:\n  times: {type: int, default: 1}\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true'}\n",
        )],
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new(util::BIN)
            .args(args)
            .current_dir(dir)
            .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
            .env("FLOWPACK_ARGO_SERVER", &url)
            .env("FLOWPACK_ARGO_NAMESPACE", NS)
            .env("FLOWPACK_ARGO_TOKEN", TOKEN)
            .env_remove("FLOWPACK_KFP_URL")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "the token was printed"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        stdout
    };
    let pushed: Value = serde_json::from_str(&run(&[
        "push",
        "flow.yaml",
        "--version-name",
        "v1",
        "--json",
        "--allow-local",
    ]))
    .unwrap();
    assert_eq!(pushed["argo"]["workflow_template"], "hello", "{pushed}");
    assert_eq!(pushed["argo"]["outcome"], "created", "{pushed}");
    assert_eq!(pushed["argo"]["schedule"]["id"], "hello", "{pushed}");
    assert_eq!(pushed["argo"]["schedule"]["timezone"], "Europe/Paris");
    let pointer: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".flowpack/v1/flows/hello/versions/v1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pointer["argo"]["namespace"], NS, "{pointer}");
    assert!(pointer.get("kfp").is_none(), "{pointer}");

    let id = run(&["trigger", "flow.yaml", "--param", "times=4"]);
    assert_eq!(id.trim(), format!("argo-{UID}"));
    let status: Value = serde_json::from_str(&run(&["status", id.trim(), "--json"])).unwrap();
    assert_eq!(status["state"], "Running", "{status}");
    assert_eq!(
        run(&["terminate", id.trim()]).trim(),
        format!("argo-{UID} terminating")
    );
    let made: Value = serde_json::from_str(&run(&[
        "schedule",
        "flow.yaml",
        "--cron",
        "0 6 * * 1",
        "--timezone",
        "Asia/Tokyo",
        "--name",
        "Monday_Morning",
        "--param",
        "times=2",
        "--json",
    ]))
    .unwrap();
    assert_eq!(made["id"], "monday-morning", "{made}");
    assert_eq!(made["timezone"], "Asia/Tokyo", "{made}");
    let list: Value = serde_json::from_str(&run(&["schedules", "hello", "--json"])).unwrap();
    assert_eq!(list[0]["id"], "hello-nightly", "{list}");
    assert_eq!(list[0]["enabled"], false, "{list}");
    for change in ["disable", "enable", "delete"] {
        run(&["schedules", change, "hello-nightly"]);
    }

    let bad = util::prism_violations(&log);
    assert!(
        bad.is_empty(),
        "requests the Argo API does not allow:\n{}",
        bad.join("\n")
    );
    let log = std::fs::read_to_string(&log).unwrap();
    for call in [
        "post /api/v1/workflow-templates/flowpack-test",
        "post /api/v1/cron-workflows/flowpack-test",
        "post /api/v1/workflows/flowpack-test/submit",
        "put /api/v1/workflows/flowpack-test/hello-x7k2p/terminate",
        "put /api/v1/cron-workflows/flowpack-test/hello-nightly/suspend",
        "put /api/v1/cron-workflows/flowpack-test/hello-nightly/resume",
        "delete /api/v1/cron-workflows/flowpack-test/hello-nightly",
    ] {
        assert!(log.contains(call), "no {call}:\n{log}");
    }
}
