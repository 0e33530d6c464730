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
        &["compile", "flow.yaml", "-o", "pipeline.yaml"],
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
