//! Secrets: every command runs with known fake credentials — AWS keys for a real S3 server
//! (moto), a KFP token, a secret value handed to a step — on success and failure paths, at
//! the most verbose log level, and then every output, every stored object (blobs
//! decompressed) and every file flowpack wrote is scanned for them.

use std::path::Path;
use std::process::Command;

use flowpack_core::store::Store;

use crate::util::{self, BIN, write_tree};

const AWS_KEY: &str = "AKIAFLOWPACKFAKE7Q2Z";
const AWS_SECRET: &str = "fLoWpAcK/fAkE/sEcReT/9f8e7d6c5b4a3210zyxw";
const KFP_TOKEN: &str = "kfp-bearer-fake-5c1d9e0b7a";
const SECRET_VALUE: &str = "step-secret-fake-8e2f41";
const ALL: [&str; 4] = [AWS_KEY, AWS_SECRET, KFP_TOKEN, SECRET_VALUE];

const FLOW: &str = r#"name: secretive
parameters:
  fail: {type: bool, default: false}
steps:
  start:
    run: python3 main.py
    next: end
    secrets: {API_TOKEN: api-credentials/token}
    env: {MODE: test}
  end: {run: python3 -c "print('done')"}
"#;

/// Uses the secret (its length and a hash of it) without printing it, as a careful step does.
const MAIN: &str = r#"import hashlib, json, os, sys
token = os.environ["API_TOKEN"]
print("token length", len(token), hashlib.sha256(token.encode()).hexdigest()[:12])
open(os.path.join(os.environ["FLOWPACK_OUTPUT_DIR"], "report"), "w").write("ok")
if json.load(open(os.environ["FLOWPACK_PARAMS"]))["fail"]:
    sys.exit(3)
"#;

struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn run(&mut self, dir: &Path, store: &str, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
            .env("FLOWPACK_STORE", store)
            .env("FLOWPACK_LOG", "trace")
            .env("AWS_ACCESS_KEY_ID", AWS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("FLOWPACK_KFP_TOKEN", KFP_TOKEN)
            .env("API_TOKEN", SECRET_VALUE)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        self.0.push((
            format!("flowpack {args:?} ({})", out.status),
            format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        ));
        stdout
    }
}

fn assert_clean(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for s in ALL {
        assert!(!text.contains(s), "{what} contains the secret {s}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credential_or_secret_value_appears_in_any_output_record_or_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let store = util::s3_store("secrets");
    let mut outs = Outputs(Vec::new());

    outs.run(dir, &store, &["check", "flow.yaml", "--json"]);
    outs.run(dir, &store, &["push", "flow.yaml", "--json", "-vv"]);
    let ok = outs.run(dir, &store, &["run", "flow.yaml", "--json", "-vv"]);
    let ok: serde_json::Value = serde_json::from_str(&ok).unwrap();
    assert_eq!(ok["succeeded"], true, "{:?}", outs.0.last());
    let ok_run = ok["run"].as_str().unwrap().to_string();
    let failed = outs.run(
        dir,
        &store,
        &["run", "flow.yaml", "--param", "fail=true", "--json"],
    );
    let failed: serde_json::Value = serde_json::from_str(&failed).unwrap();
    assert_eq!(failed["succeeded"], false);
    let failed_run = failed["run"].as_str().unwrap().to_string();
    for run in [&ok_run, &failed_run] {
        outs.run(dir, &store, &["show", run, "--json"]);
        outs.run(dir, &store, &["logs", &format!("{run}/start")]);
    }
    outs.run(dir, &store, &["runs", "--json"]);
    outs.run(
        dir,
        &store,
        &[
            "artifacts",
            "get",
            &format!("{ok_run}/start/report"),
            "-o",
            "-",
        ],
    );
    outs.run(dir, &store, &["resume", &failed_run, "--json"]);
    outs.run(
        dir,
        &store,
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
    );
    // Failure paths: a missing bucket, an unreachable KFP, a bad token's target.
    let missing = store.replace("s3://t", "s3://missing-t");
    outs.run(dir, &missing, &["push", "flow.yaml", "-vv"]);
    outs.run(
        dir,
        &store,
        &[
            "push",
            "flow.yaml",
            "--kfp-url",
            "http://127.0.0.1:9",
            "--allow-local",
            "-vv",
        ],
    );
    outs.run(
        dir,
        &store,
        &["trigger", "flow.yaml", "--kfp-url", "http://127.0.0.1:9"],
    );
    outs.run(
        dir,
        &store,
        &[
            "status",
            "kfp-00000000-0000-0000-0000-000000000000",
            "--kfp-url",
            "http://127.0.0.1:9",
        ],
    );

    // The secret did reach the step (its hash is in the log), and the runs did run.
    let logs = &outs.0.iter().find(|(w, _)| w.contains("logs")).unwrap().1;
    assert!(logs.contains("token length 23"), "{logs}");
    assert!(outs.0.len() >= 16);
    for (what, text) in &outs.0 {
        assert_clean(what, text.as_bytes());
    }

    // Every object in the store, blobs decompressed.
    let s = Store::open(&store).unwrap();
    let keys = s.list("v1/").await.unwrap();
    assert!(keys.len() > 10, "{keys:?}");
    for key in keys {
        let bytes = s.get_bytes(&key).await.unwrap();
        let plain = if key.contains("/blobs/") {
            zstd::decode_all(&bytes[..]).unwrap()
        } else {
            bytes.to_vec()
        };
        assert_clean(&key, &plain);
    }
    // Every file flowpack wrote here: the cache, the compiled pipeline, the downloads.
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files += 1;
                assert_clean(
                    &e.path().display().to_string(),
                    &std::fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    assert!(files > 5);
}

/// `AWS_SECRET` as it appears percent-encoded in a URL.
fn encoded(s: &str) -> String {
    s.replace('/', "%2F")
        .replace(':', "%3A")
        .replace('@', "%40")
}

/// Every piece of the fake AWS credentials a URL printer could leak: the whole values, their
/// percent-encoded forms, and the pieces between the secret's `/` (a parser that stops at a
/// `/` shows the rest).
fn credential_forms() -> Vec<String> {
    let mut forms = vec![
        AWS_KEY.to_string(),
        AWS_SECRET.to_string(),
        encoded(AWS_SECRET),
    ];
    forms.extend(AWS_SECRET.split('/').map(String::from));
    forms
}

/// Fails with the first credential form found in `text`.
fn assert_no_credential(what: &str, text: &str) {
    for s in credential_forms() {
        assert!(!text.contains(&s), "{what} contains '{s}':\n{text}");
    }
}

/// Store URLs with the fake credentials in every part a URL has: userinfo (a secret with
/// `/`, percent-encoded, one that parses as a port), query options, the endpoint's userinfo
/// (plain and percent-encoded), a fragment, and URLs that do not parse at all.
fn urls_with_credentials(bucket: &str, port: u16) -> Vec<String> {
    let ep = format!("http://127.0.0.1:{port}");
    let q = format!("endpoint={ep}&region=us-east-1");
    let (k, s, se) = (AWS_KEY, AWS_SECRET, encoded(AWS_SECRET));
    vec![
        format!("s3://{k}:{s}@{bucket}/p?{q}"),
        format!("s3://{k}:{se}@{bucket}/p?{q}"),
        format!("s3://{k}:1234/{s}@{bucket}/p?{q}"),
        format!("s3://{k}%3A{se}%40{bucket}/p?{q}"),
        format!("s3://{bucket}/p?{q}&secret_access_key={s}"),
        format!("s3://{bucket}/p?{q}&aws_secret_access_key={se}&access_key_id={k}"),
        format!("s3://{bucket}/p?{q}&{k}={s}"),
        format!("s3://{bucket}/p?endpoint=http://{k}:{se}@127.0.0.1:{port}&region=us-east-1"),
        format!(
            "s3://{bucket}/p?endpoint=http%3A%2F%2F{k}%3A{se}%40127.0.0.1%3A{port}&region=us-east-1"
        ),
        format!("s3://{bucket}/p?{q}#{s}"),
        format!("s3://{k}:{s} x@[{bucket}/p"),
        format!("s3:/{k}:{s}@{bucket}/p"),
        format!("gs://{k}:{s}@{bucket}/p"),
        format!("az://{bucket}/p?account=devstoreaccount1&sas_token={s}"),
        format!("az://{k}:{se}@{bucket}/p?account=devstoreaccount1"),
        format!("file://{k}:{se}@localhost/tmp/flowpack-secret-store"),
    ]
}

/// Every file and folder name below `dir`, and every file's content, is free of `forms`.
fn assert_tree_clean(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let path = e.path().display().to_string();
            assert_no_credential("a file name", &path);
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                assert_no_credential(
                    &path,
                    &String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()),
                );
            }
        }
    }
}

#[test]
fn store_urls_with_credentials_are_refused_and_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let good = util::s3_store("secrets");
    let bucket = good["s3://".len()..].split('/').next().unwrap().to_string();
    let port = util::moto().port;
    let zero = format!("sha256:{}", "0".repeat(64));
    // Each command reads the URL from --store or from FLOWPACK_STORE (`step` has only the
    // flag), at the most verbose log level.
    let commands: [&[&str]; 6] = [
        &["push", "flow.yaml", "-vv"],
        &["run", "flow.yaml", "--json", "-vv"],
        &[
            "compile",
            "flow.yaml",
            "-o",
            "pipeline.yaml",
            "--allow-local",
        ],
        &["runs", "-vv"],
        &["fetch", &zero, "-o", "out"],
        &["step", "--package", &zero, "--run", "r1", "--step", "start"],
    ];
    let mut checked = 0;
    for url in urls_with_credentials(&bucket, port) {
        for (i, args) in commands.iter().enumerate() {
            for by_flag in [true, false] {
                if !by_flag && i == commands.len() - 1 {
                    continue;
                }
                let mut cmd = Command::new(BIN);
                cmd.args(*args)
                    .current_dir(dir)
                    .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
                    .env("FLOWPACK_LOG", "trace")
                    .env("AWS_ACCESS_KEY_ID", "flowpack-test-key")
                    .env("AWS_SECRET_ACCESS_KEY", "flowpack-test-secret");
                if by_flag {
                    cmd.args(["--store", &url]).env_remove("FLOWPACK_STORE");
                } else {
                    cmd.env("FLOWPACK_STORE", &url);
                }
                let out = cmd.output().unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                let what = format!(
                    "flowpack {args:?} with {} ({})",
                    if by_flag { "--store" } else { "FLOWPACK_STORE" },
                    out.status
                );
                assert!(
                    !out.status.success(),
                    "{what} accepted a URL with credentials:\n{text}"
                );
                assert!(
                    text.contains("store URL"),
                    "{what} does not say the store URL is refused:\n{text}"
                );
                assert_no_credential(&what, &text);
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "{checked}");
    assert_tree_clean(dir);
    assert!(!Path::new("/tmp/flowpack-secret-store").exists());
}

/// An endpoint with credentials set in the environment (`AWS_ENDPOINT_URL`) is refused as
/// well: object_store would otherwise print it in its errors and logs.
#[test]
fn an_endpoint_with_credentials_from_the_environment_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", FLOW), ("main.py", MAIN)]);
    let good = util::s3_store("secrets");
    let bucket = good["s3://".len()..].split('/').next().unwrap().to_string();
    let port = util::moto().port;
    let endpoint = format!("http://{AWS_KEY}:{}@127.0.0.1:{port}", encoded(AWS_SECRET));
    for var in ["AWS_ENDPOINT", "AWS_ENDPOINT_URL"] {
        let out = Command::new(BIN)
            .args(["push", "flow.yaml", "-vv", "--store"])
            .arg(format!("s3://{bucket}/p?region=us-east-1"))
            .current_dir(dir)
            .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
            .env("FLOWPACK_LOG", "trace")
            .env(var, &endpoint)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{var}: accepted\n{text}");
        assert!(
            text.contains(var),
            "{var}: the error does not name it:\n{text}"
        );
        assert_no_credential(var, &text);
    }
    assert_tree_clean(dir);
}
