//! `flowpack ui`'s JSON API over real runs, on the local store and on S3 (moto): what each
//! route answers, that a log can be followed while a step prints, that no URL reaches
//! outside the store, that nothing but GET is answered, that no credential appears in any
//! answer, and that a tampered artifact is never served as if it were good. The page itself
//! is tested in a real browser by `tests/browser/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{self, BIN, UiServer, flowpack_ok, write_tree};

const FLOW: &str = r#"name: ui-flow
parameters:
  fail: {type: bool, default: false}
  note: {type: str, default: "<img src=x onerror=alert(1)>"}
steps:
  start: {run: python3 main.py start, foreach: items, next: work}
  work:  {run: python3 main.py work, next: join}
  join:  {run: python3 main.py join, join: true, next: end}
  end:   {run: python3 main.py end}
"#;

/// Writes artifacts of every kind the preview tells apart; `work/1` fails when asked to.
const MAIN: &str = r#"import base64, json, os, pickle, sys, time
step = sys.argv[1]
out = os.environ["FLOWPACK_OUTPUT_DIR"]
params = json.load(open(os.environ["FLOWPACK_PARAMS"]))
def put(name, data):
    open(os.path.join(out, name), "wb" if isinstance(data, bytes) else "w").write(data)
if step == "start":
    put("items", json.dumps([0, 1, 2]))
    put("table.csv", "a,b\n1,2\n3,4\n")
    put("notes", "plain text <script>alert(1)</script>\n")
    put("config", json.dumps({"lr": 0.1}))
    put("pic", base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="))
    put("blob", bytes(range(256)))
    put("score", pickle.dumps(0.97, protocol=4))
    os.makedirs(os.path.join(out, "folder"))
    put("folder/a.txt", "a")
    print("starting <img src=x onerror=alert(1)>")
elif step == "work":
    i = int(os.environ["FLOWPACK_SPLIT_INDEX"])
    print(f"work {i}")
    if params["fail"] and i == 1:
        print("about to fail", file=sys.stderr)
        sys.exit(3)
elif step == "end":
    print("done")
"#;

/// A store with one run that succeeded and one that failed at `work/1`; returns the run ids.
fn two_runs(dir: &Path, store: &str) -> (String, String) {
    write_tree(dir, &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "flow.yaml", "--store", store, "--json"];
        all.extend_from_slice(args);
        let out = util::flowpack(dir, &all);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v["run"].as_str().unwrap().to_string()
    };
    let ok = run(&[]);
    let failed = run(&["--param", "fail=true"]);
    (ok, failed)
}

/// The text field `field` of every object in the list `list`.
fn field<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list:#}"))
        .iter()
        .map(|v| {
            v[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {v:#}"))
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn api_answers_what_the_runs_hold(store: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, failed) = two_runs(tmp.path(), store);
    let ui = UiServer::start(store, &[]);

    // The runs list: newest first, with counts, and each filter.
    let runs = ui.json("/api/runs");
    assert_eq!(runs["total"], 2, "{runs:#}");
    assert_eq!(runs["flows"], serde_json::json!(["ui-flow"]));
    assert_eq!(runs["runs"][0]["run"], failed.as_str());
    assert_eq!(runs["runs"][0]["status"], "failed");
    assert_eq!(runs["runs"][0]["counts"]["failed"], 1);
    assert_eq!(runs["runs"][0]["counts"]["succeeded"], 3, "{runs:#}");
    assert_eq!(runs["runs"][1]["status"], "succeeded");
    assert_eq!(runs["runs"][1]["tasks"], 6);
    assert_eq!(runs["runs"][1]["parameters"]["fail"], false);
    let only = |q: &str| -> Vec<String> {
        let list = ui.json(&format!("/api/runs?{q}"));
        field(&list["runs"], "run")
            .into_iter()
            .map(String::from)
            .collect()
    };
    assert_eq!(only("status=failed"), [failed.as_str()]);
    assert_eq!(only("status=succeeded"), [ok.as_str()]);
    assert_eq!(only("origin=kfp"), Vec::<String>::new());
    assert_eq!(only("flow=ui-flow&limit=1&offset=1"), [ok.as_str()]);
    assert_eq!(only(&format!("q={}", &ok[ok.len() - 4..])), [ok.as_str()]);
    assert_eq!(
        only("q=TRUE"),
        [failed.as_str()],
        "parameter values are searched"
    );

    // A run: the graph with the fan-out's width, the failing task and its last lines.
    let run = ui.json(&format!("/api/runs/ui-flow/{failed}"));
    let steps = run["graph"]["steps"].as_array().unwrap();
    assert_eq!(
        field(&run["graph"]["steps"], "name"),
        ["start", "work", "join", "end"]
    );
    assert_eq!(steps[0]["transition"], "foreach");
    assert_eq!(steps[0]["foreach"]["over"], "items");
    assert_eq!(steps[1]["tasks"], 3);
    assert_eq!(steps[1]["counts"]["failed"], 1);
    assert_eq!(steps[2]["join"], true);
    assert_eq!(steps[3]["tasks"], 0, "end never ran");
    let failing = &run["failing"];
    assert_eq!(failing["task"], "work/1", "{run:#}");
    assert_eq!(failing["exit_code"], 3);
    assert!(
        field(&failing["log_tail"], "text").contains(&"about to fail"),
        "{failing:#}"
    );
    assert!(field(&failing["log_tail"], "stream").contains(&"stderr"));
    assert_eq!(
        ui.json(&format!("/api/runs/ui-flow/{ok}"))["failing"],
        Value::Null
    );

    // The timeline: every task, every attempt, its phases, within the span.
    let tl = ui.json(&format!("/api/runs/ui-flow/{ok}/timeline"));
    let rows = tl["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    let span = tl["span"].as_f64().unwrap();
    for r in rows {
        let a = &r["attempts"][0];
        assert!(a["start"].as_f64().unwrap() <= a["end"].as_f64().unwrap());
        assert!(a["end"].as_f64().unwrap() <= span + 0.001, "{tl:#}");
        assert!(a["phases"]["run"].as_f64().unwrap() > 0.0, "{a:#}");
    }

    // The tasks, a page at a time and filtered.
    let page = ui.json(&format!(
        "/api/runs/ui-flow/{ok}/tasks?offset=1&limit=2&step=work"
    ));
    assert_eq!(page["total"], 3);
    let tasks = field(&page["tasks"], "task");
    assert_eq!(tasks.len(), 2, "{page:#}");
    assert!(tasks.iter().all(|t| t.starts_with("work/")));
    let failed_only = ui.json(&format!("/api/runs/ui-flow/{failed}/tasks?status=failed"));
    assert_eq!(failed_only["tasks"][0]["exit_code"], 3);

    // A task: attempts and artifacts.
    let base = format!("/api/runs/ui-flow/{ok}/tasks/start/0");
    let task = ui.json(&base);
    assert_eq!(task["attempts"][0]["status"], "succeeded");
    assert_eq!(task["attempts"][0]["committed"], true);
    assert_eq!(
        field(&task["artifacts"], "name"),
        [
            "blob",
            "config",
            "folder",
            "items",
            "notes",
            "pic",
            "score",
            "table.csv"
        ]
    );

    // Previews tell every kind apart.
    let kind = |name: &str| ui.json(&format!("{base}/artifacts/{name}/preview"));
    assert_eq!(kind("config")["kind"], "json");
    assert_eq!(kind("config")["text"], r#"{"lr": 0.1}"#);
    assert_eq!(kind("table.csv")["kind"], "csv");
    assert_eq!(kind("notes")["kind"], "text");
    assert_eq!(kind("pic")["kind"], "image");
    assert_eq!(kind("pic")["image"], "image/png");
    assert_eq!(kind("blob")["kind"], "binary");
    assert_eq!(kind("blob")["text"], Value::Null);
    assert_eq!(kind("folder")["kind"], "dir");
    let score = kind("score");
    assert_eq!(score["kind"], "pickle");
    assert_eq!(score["pickle"]["type"], "float");
    assert_eq!(score["pickle"]["value"], "0.97");

    // Images come as images, never as something a page could run; downloads as attachments.
    let (status, headers, body) = ui.get(&format!("{base}/artifacts/pic/raw"));
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("image/png"));
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert!(body.starts_with(b"\x89PNG"));
    let (status, _, body) = ui.get(&format!("{base}/artifacts/notes/raw"));
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, headers, body) = ui.get(&format!("{base}/artifacts/notes/download"));
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("attachment; filename=\"notes\"")
    );
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(body, b"plain text <script>alert(1)</script>\n");
    let (_, headers, body) = ui.get(&format!("{base}/artifacts/blob/download"));
    assert_eq!(body, (0..=255u8).collect::<Vec<_>>());
    assert_eq!(header(&headers, "content-length"), Some("256"));
    let (_, headers, body) = ui.get(&format!("{base}/artifacts/folder/download"));
    assert_eq!(
        header(&headers, "content-disposition"),
        Some("attachment; filename=\"folder.tar\"")
    );
    let mut tar = tar::Archive::new(&body[..]);
    let names: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("a.txt")), "{names:?}");

    // Logs, as stored, and an attempt that ended is final.
    let logs = ui.json(&format!("{base}/logs"));
    assert_eq!(logs["final"], true);
    assert_eq!(logs["lines"][0]["stream"], "stdout");
    assert_eq!(
        logs["lines"][0]["text"],
        "starting <img src=x onerror=alert(1)>"
    );
    let rest = ui.json(&format!("{base}/logs?from={}", logs["next"]));
    assert_eq!(rest["lines"], serde_json::json!([]));

    // The package: its layers and the flow as pushed.
    let digest = runs["runs"][0]["package"].as_str().unwrap();
    let pkg = ui.json(&format!("/api/packages/{digest}"));
    assert_eq!(pkg["flow"]["name"], "ui-flow");
    assert_eq!(pkg["layers"][0]["kind"], "code");

    // Not found is 404 with a message, never a panic or a 500.
    for path in [
        "/api/runs/ui-flow/local-nope".to_string(),
        format!("{base}/artifacts/nope/preview"),
        format!("/api/runs/ui-flow/{ok}/tasks/start/7"),
        format!("{base}/logs?attempt=9"),
        format!("/api/packages/sha256:{}", "0".repeat(64)),
        "/api/nothing".to_string(),
    ] {
        let (status, _, body) = ui.get(&path);
        assert_eq!(status, 404, "{path}: {}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
}

#[test]
fn the_api_answers_what_local_runs_hold() {
    let tmp = tempfile::tempdir().unwrap();
    api_answers_what_the_runs_hold(&tmp.path().join("store").display().to_string());
}

#[test]
fn the_api_answers_what_runs_on_s3_hold() {
    api_answers_what_the_runs_hold(&util::s3_store("ui"));
}

#[test]
fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let ui = UiServer::start(&store.display().to_string(), &[]);
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = ui.get(path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), Some(ty), "{path}");
        assert!(!body.is_empty(), "{path} is empty");
        let csp = header(&headers, "content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    let (_, _, page) = ui.get("/");
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("/assets/app.js") && page.contains("/assets/app.css"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from outside: {page}"
    );
    assert_eq!(ui.json("/api/runs")["total"], 0);
}

#[test]
fn no_url_reaches_outside_the_store_and_only_get_is_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let (ok, _) = two_runs(tmp.path(), &store.display().to_string());
    // What a traversal would find: a file beside the store, and the store's own records
    // by paths other than the API's.
    std::fs::write(tmp.path().join("secret.txt"), "TOP-SECRET-MARKER").unwrap();
    let ui = UiServer::start(&store.display().to_string(), &[]);
    let run = format!("/api/runs/ui-flow/{ok}");
    let task = format!("{run}/tasks/start/0");
    let attacks = [
        "/../secret.txt".to_string(),
        "/assets/../../secret.txt".to_string(),
        "/assets/..%2f..%2fsecret.txt".to_string(),
        "/api/runs/..%2f..%2f..%2fsecret.txt/x".to_string(),
        "/api/runs/ui-flow/..%2F..%2F..%2Fsecret.txt".to_string(),
        "/api/runs/..%2F/..%2F".to_string(),
        "/api/runs/%2e%2e/%2e%2e".to_string(),
        format!("{run}/tasks/..%2F..%2F..%2F..%2F/0"),
        format!("{run}/tasks/start/..%2F..%2Frun.json"),
        format!("{task}/artifacts/..%2F..%2F..%2Fsecret.txt/download"),
        format!("{task}/artifacts/%2e%2e/download"),
        format!("{task}/artifacts/.hidden/download"),
        format!("{task}/logs?attempt=-1"),
        "/api/packages/..%2F..%2Fsecret.txt".to_string(),
        "/api/packages/sha256:..%2F..%2F..%2Fsecret".to_string(),
        format!("/api/runs/ui-flow/{ok}%00/timeline"),
        "/api/runs/ui-flow/%2Ftmp".to_string(),
        "//etc/passwd".to_string(),
    ];
    for path in &attacks {
        let (status, _, body) = ui.get(path);
        let text = String::from_utf8_lossy(&body);
        assert!(
            (400..500).contains(&status),
            "{path} answered {status}: {text}"
        );
        assert!(!text.contains("TOP-SECRET-MARKER"), "{path}: {text}");
        assert!(
            !text.contains("\"package\""),
            "{path} read a record: {text}"
        );
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in [
            "/api/runs",
            &run,
            &format!("{task}/artifacts/notes/download"),
        ] {
            let (status, _, _) = util::http(ui.port, method, path);
            assert_eq!(status, 405, "{method} {path}");
        }
    }
    // The store is as it was: the UI wrote nothing.
    let before = util::walk(&store);
    drop(ui);
    assert_eq!(util::walk(&store), before);
}

#[test]
fn a_tampered_artifact_is_refused_in_preview_and_cut_short_in_download() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let (ok, _) = two_runs(tmp.path(), &store.display().to_string());
    let ui = UiServer::start(&store.display().to_string(), &[]);
    let base = format!("/api/runs/ui-flow/{ok}/tasks/start/0");
    let task = ui.json(&base);
    let blob = task["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "blob")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    // Replace the blob with another valid zstd stream of the same size.
    let path = store.join(format!("v1/blobs/sha256/{}/{blob}", &blob[..2]));
    let forged: Vec<u8> = (0..=255u8).rev().collect();
    std::fs::write(&path, zstd::encode_all(&forged[..], 3).unwrap()).unwrap();
    let (status, _, body) = ui.get(&format!("{base}/artifacts/blob/preview"));
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("corrupt"), "{text}");
    // The answer may have started (200, with the length) before the end was verified, or
    // not: either way it is never the whole length.
    let (status, headers, body) = ui.get(&format!("{base}/artifacts/blob/download"));
    if status != 0 {
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-length"), Some("256"));
    }
    assert!(
        body.len() < 256,
        "a download that fails verification must end short of its length, got {} bytes",
        body.len()
    );
}

#[test]
fn no_credential_appears_in_any_answer() {
    const KEY: &str = "AKIAFLOWPACKUIFAKE7Q2";
    const SECRET: &str = "fLoWpAcK/uI/sEcReT/0a9b8c7d6e5f4321";
    let tmp = tempfile::tempdir().unwrap();
    let store = util::s3_store("ui-secrets");
    let (ok, failed) = two_runs(tmp.path(), &store);
    let ui = UiServer::start(
        &store,
        &[
            ("AWS_ACCESS_KEY_ID", KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    );
    let base = format!("/api/runs/ui-flow/{failed}/tasks/work/1");
    let mut answers = String::new();
    for path in [
        "/api/info".to_string(),
        "/api/runs".to_string(),
        format!("/api/runs/ui-flow/{ok}"),
        format!("/api/runs/ui-flow/{failed}"),
        format!("/api/runs/ui-flow/{failed}/timeline"),
        base.clone(),
        format!("{base}/logs"),
        format!("{base}/artifacts/nope/preview"),
        "/api/runs/ui-flow/local-missing".to_string(),
        format!("/api/packages/sha256:{}", "1".repeat(64)),
        "/".to_string(),
        "/assets/app.js".to_string(),
    ] {
        let (_, headers, body) = ui.get(&path);
        answers.push_str(&format!(
            "{path} {headers:?} {}\n",
            String::from_utf8_lossy(&body)
        ));
    }
    assert!(answers.contains("s3://"), "{answers}");
    for s in [KEY, SECRET, "sEcReT"] {
        assert!(!answers.contains(s), "an answer holds '{s}':\n{answers}");
    }
}

/// A step that prints a line every 0.3 s: the log route gives the lines while it runs, then
/// says the attempt is final.
#[test]
fn a_log_can_be_followed_while_the_step_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(
        dir,
        &[
            (
                "flow.yaml",
                "name: ticker\nsteps:\n  start: {run: python3 -u tick.py, next: end}\n  end: {run: 'true'}\n",
            ),
            (
                "tick.py",
                "import time\nfor i in range(12):\n    print('tick', i, flush=True)\n    time.sleep(0.3)\n",
            ),
        ],
    );
    let store = dir.join("store").display().to_string();
    flowpack_ok(dir, &["push", "flow.yaml", "--store", &store]);
    let mut run = Command::new(BIN)
        .args(["run", "flow.yaml", "--store", &store])
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ui = UiServer::start(&store, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        assert!(Instant::now() < deadline, "the run never appeared");
        if let Some(r) = ui.json("/api/runs")["runs"][0]["run"].as_str() {
            break r.to_string();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let logs = format!("/api/runs/ticker/{run_id}/tasks/start/0/logs");
    let (mut next, mut lines, mut seen_while_running) = (0u64, Vec::new(), 0);
    loop {
        assert!(Instant::now() < deadline, "the log never ended: {lines:?}");
        let (status, _, body) = ui.get(&format!("{logs}?from={next}"));
        if status == 404 {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let page: Value = serde_json::from_slice(&body).unwrap();
        next = page["next"].as_u64().unwrap();
        lines.extend(field(&page["lines"], "text").into_iter().map(String::from));
        if page["final"] == true {
            break;
        }
        // The first page of a running attempt that brought lines: the step was still
        // printing (a last page before `final` may hold every line, legitimately).
        if seen_while_running == 0 {
            seen_while_running = lines.len();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(run.wait().unwrap().success());
    let expected: Vec<String> = (0..12).map(|i| format!("tick {i}")).collect();
    assert_eq!(lines, expected, "every line once, in order");
    assert!(
        (1..12).contains(&seen_while_running),
        "lines arrived while the step ran: {seen_while_running} before the end"
    );
    // A run that may still change is read again once its copy is 2 s old (docs/ui.md).
    let fresh = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let status = ui.json(&format!("/api/runs/ticker/{run_id}"))["run"]["status"].clone();
        if status == "succeeded" || Instant::now() > fresh {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, "succeeded");
}

/// The graph marks the switch case a run took, and draws exit hooks as hooks.
#[test]
fn the_graph_marks_the_case_taken_and_the_hooks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for f in ["flow.yaml", "gate.py"] {
        std::fs::copy(
            util::workspace().join("examples/switch").join(f),
            dir.join(f),
        )
        .unwrap();
    }
    let mut flow = std::fs::read_to_string(dir.join("flow.yaml")).unwrap();
    flow.push_str("  notify: {run: echo the gate failed}\non_failure: notify\n");
    std::fs::write(dir.join("flow.yaml"), flow).unwrap();
    let store = dir.join("store").display().to_string();
    let run = |score: &str| {
        let out = flowpack_ok(
            dir,
            &[
                "run",
                "flow.yaml",
                "--store",
                &store,
                "--json",
                "--param",
                score,
            ],
        );
        serde_json::from_str::<Value>(&out).unwrap()["run"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (pass, fail) = (run("score=0.9"), run("score=0.5"));
    let ui = UiServer::start(&store, &[]);
    for (id, chosen, ran, not_ran) in [
        (pass, "pass", "publish", "alert"),
        (fail, "fail", "alert", "publish"),
    ] {
        let graph = &ui.json(&format!("/api/runs/quality-gate/{id}"))["graph"];
        let step = |name: &str| {
            graph["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .unwrap_or_else(|| panic!("no step {name} in {graph:#}"))
                .clone()
        };
        let check = step("check");
        assert_eq!(check["transition"], "switch");
        assert_eq!(check["switch"]["on"], "verdict");
        assert_eq!(check["switch"]["cases"][chosen], ran);
        assert_eq!(check["switch"]["chosen"], serde_json::json!([chosen]));
        assert_eq!(step(ran)["tasks"], 1);
        assert_eq!(step(not_ran)["tasks"], 0);
        let notify = step("notify");
        assert_eq!(notify["hook"], "on_failure");
        assert_eq!(notify["counts"]["skipped"], 1, "{notify:#}");
        assert_eq!(
            graph["steps"].as_array().unwrap().last().unwrap()["name"],
            "notify"
        );
    }
}

/// One flow run locally, under kfp.local and under the Argo executor contract: the UI shows
/// the three runs alike, each with its origin, graph and timeline.
#[test]
fn local_kfp_and_argo_runs_are_shown_alike() {
    const SHAPE: &str = r#"name: engines
steps:
  start: {run: sh w.sh items 3, foreach: items, next: body}
  body:  {run: sh w.sh, next: join}
  join:  {run: sh w.sh, join: true, next: end}
  end:   {run: sh w.sh}
"#;
    let tmp = crate::kfp_shapes::run_on_every_engine(SHAPE);
    let dir = tmp.path();
    let ui = UiServer::start(&dir.join(".flowpack").display().to_string(), &[]);
    let runs = ui.json("/api/runs");
    assert_eq!(runs["total"], 3, "{runs:#}");
    assert_eq!(runs["origins"], serde_json::json!(["argo", "kfp", "local"]));
    for origin in ["local", "kfp", "argo"] {
        let list = ui.json(&format!("/api/runs?origin={origin}"));
        assert_eq!(list["total"], 1, "{origin}: {list:#}");
        let r = &list["runs"][0];
        assert_eq!(r["status"], "succeeded", "{r:#}");
        assert_eq!(r["tasks"], 6);
        assert!(
            r["run"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{origin}-"))
        );
        let id = r["run"].as_str().unwrap();
        let run = ui.json(&format!("/api/runs/engines/{id}"));
        assert_eq!(run["graph"]["steps"][1]["tasks"], 3, "{origin}");
        let rows = ui.json(&format!("/api/runs/engines/{id}/timeline"))["rows"].clone();
        assert_eq!(rows.as_array().unwrap().len(), 6, "{origin}");
    }
}
