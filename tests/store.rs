//! The store suite: every test runs on the local folder store, on S3 (moto) and on Azure
//! Blob Storage (Azurite); on GCS (fake-gcs-server) the tests that need no write through
//! object_store run, and [`gcs_reads_blobs_verified_and_lists_them`] reads objects the
//! emulator's own upload API stored (docs/configuration.md, "GCS emulator", says why). Then the errors a user sees
//! through real commands: AWS's standard variables, no credentials, refusals.

use std::sync::Arc;

use bytes::Bytes;
use flowpack_core::Digest;
use flowpack_core::store::{Created, Put, Store, StoreError, layout};

use crate::util::{Kind, noise, open_store as open, read_blob as read_all};

macro_rules! on_every_store {
    (reads: [$($read:ident),* $(,)?], writes: [$($write:ident),* $(,)?] $(,)?) => {
        on_every_store!(@all local Local, $($read,)* $($write,)*);
        on_every_store!(@all s3 S3, $($read,)* $($write,)*);
        on_every_store!(@all azure Azure, $($read,)* $($write,)*);
        /// GCS runs the tests that need no write through object_store; the write tests
        /// are ignored with the reason, never passed silently.
        mod gcs {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $read() { super::$read(crate::util::Kind::Gcs).await })*
            $(#[tokio::test(flavor = "multi_thread")]
            #[ignore = "fake-gcs-server answers object_store's XML PUT and multipart POST with 400 invalid uploadType (docs/configuration.md)"]
            async fn $write() { super::$write(crate::util::Kind::Gcs).await })*
        }
    };
    (@all $module:ident $kind:ident, $($name:ident,)*) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(crate::util::Kind::$kind).await })*
        }
    };
}

on_every_store!(
    reads: [missing_objects_name_their_key],
    writes: [
        small_blobs_are_stored_once,
        large_blobs_go_up_in_parts_and_read_back_verified,
        a_flipped_byte_is_detected_and_names_the_key,
        truncated_and_oversized_blobs_are_refused,
        json_documents_are_create_only,
        concurrent_writers_of_one_blob_all_succeed,
    ],
);

async fn small_blobs_are_stored_once(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    let content = b"{\"format\":\"x\"}".repeat(100);
    let d = Digest::of(&content);
    assert_eq!(store.stat_blob(&d).await.unwrap(), None);
    assert!(matches!(store.put_blob_bytes(&d, &content).await.unwrap(), Put::Uploaded(n) if n > 0));
    assert!(store.stat_blob(&d).await.unwrap().is_some());
    assert_eq!(
        store.put_blob_bytes(&d, &content).await.unwrap(),
        Put::Existed
    );
    assert_eq!(store.get_blob_bytes(&d, 1 << 20).await.unwrap(), content);
    let keys = store.list("v1/blobs").await.unwrap();
    assert_eq!(keys, vec![layout::blob(&d)]);
}

async fn large_blobs_go_up_in_parts_and_read_back_verified(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    // Incompressible, so the zstd file is larger than one part: a multipart upload.
    let content = noise(flowpack_core::store::PART_SIZE * 2 + 12345, 7);
    let d = Digest::of(&content);
    let file = dir.path().join("blob.zst");
    std::fs::write(&file, zstd::encode_all(content.as_slice(), 1).unwrap()).unwrap();
    let sent = std::sync::atomic::AtomicU64::new(0);
    let put = store
        .put_blob_file(&d, &file, &|n| {
            sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .await
        .unwrap();
    let file_len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(put, Put::Uploaded(file_len));
    assert_eq!(sent.into_inner(), file_len);
    assert_eq!(store.stat_blob(&d).await.unwrap(), Some(file_len));
    let back = read_all(&store, d, content.len() as u64).await.unwrap();
    assert!(back == content, "read back differs");
}

/// Rewrites the stored blob `d` with `f` applied to its compressed bytes.
async fn tamper(store: &Store, d: &Digest, f: impl FnOnce(&mut Vec<u8>)) {
    let key = layout::blob(d);
    let mut stored = store.get_bytes(&key).await.unwrap().to_vec();
    f(&mut stored);
    store.put_bytes(&key, Bytes::from(stored)).await.unwrap();
}

async fn a_flipped_byte_is_detected_and_names_the_key(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    let content = noise(300_000, 3);
    let d = Digest::of(&content);
    store.put_blob_bytes(&d, &content).await.unwrap();
    let key = store.full_key(&layout::blob(&d));

    // A flipped byte in the compressed stream: zstd's checksum or our digest catches it.
    tamper(&store, &d, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
    })
    .await;
    let err = read_all(&store, d, content.len() as u64)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&key) && err.contains("corrupt"), "{err}");
    let err = store
        .get_blob_bytes(&d, 1 << 20)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&key) && err.contains("corrupt"), "{err}");

    // Valid zstd of different content: only the digest can tell.
    let mut other = content.clone();
    other[1000] ^= 0x80;
    let forged = zstd::encode_all(other.as_slice(), 3).unwrap();
    tamper(&store, &d, |b| *b = forged).await;
    let err = read_all(&store, d, content.len() as u64).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&key), "{err}");
}

async fn truncated_and_oversized_blobs_are_refused(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    let content = noise(100_000, 5);
    let d = Digest::of(&content);
    store.put_blob_bytes(&d, &content).await.unwrap();
    // Declared smaller than it is: a decompression bomb stops at the declared size.
    let err = read_all(&store, d, 1000).await.unwrap_err().to_string();
    assert!(err.contains("more than the 1000 bytes declared"), "{err}");
    // A real bomb: 1 GiB of zeros in ~40 KB of zstd, declared as 1 MiB. Reading stops at
    // the declared size, long before the bomb is expanded.
    let mut enc = zstd::Encoder::new(Vec::new(), 19).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let bomb_digest = Digest::of(b"bomb");
    store
        .put_bytes(&layout::blob(&bomb_digest), Bytes::from(bomb))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = read_all(&store, bomb_digest, 1 << 20)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("more than the 1048576 bytes declared"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    tamper(&store, &d, |b| b.truncate(b.len() / 2)).await;
    let err = read_all(&store, d, content.len() as u64)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt"), "{err}");
}

async fn json_documents_are_create_only(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    let key = layout::version("f", "v1");
    let first = serde_json::json!({"n": 1});
    assert_eq!(
        store.create_json(&key, &first).await.unwrap(),
        Created::Written
    );
    match store
        .create_json(&key, &serde_json::json!({"n": 2}))
        .await
        .unwrap()
    {
        Created::Existed(b) => {
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&b).unwrap(),
                first
            )
        }
        Created::Written => panic!("overwrote a create-only document"),
    }
    let back: serde_json::Value = store.get_json(&key).await.unwrap();
    assert_eq!(back, first);
}

async fn concurrent_writers_of_one_blob_all_succeed(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(kind, &dir));
    let content = Arc::new(noise(50_000, 11));
    let d = Digest::of(&content);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, content) = (store.clone(), content.clone());
            tokio::spawn(async move { store.put_blob_bytes(&d, &content).await })
        })
        .collect();
    let mut uploads = 0;
    for t in tasks {
        if let Put::Uploaded(_) = t.await.unwrap().unwrap() {
            uploads += 1;
        }
    }
    assert!(uploads >= 1);
    assert_eq!(store.get_blob_bytes(&d, 1 << 20).await.unwrap(), *content);
    assert_eq!(store.list("v1/blobs").await.unwrap().len(), 1);
}

async fn missing_objects_name_their_key(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    let d = Digest::of(b"never stored");
    let err = store.get_blob_bytes(&d, 100).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(
        err.to_string().contains(&store.full_key(&layout::blob(&d))),
        "{err}"
    );
}

/// Stores `body` at `key` of the bucket of the gs:// URL `url` through the emulator's JSON
/// upload API (object_store's XML PUT is what it cannot take).
fn gcs_seed(url: &str, key: &str, body: &[u8]) {
    let bucket = url["gs://".len()..].split('/').next().unwrap();
    // Keys are letters, digits, '-', '_', '.' and '/'.
    let name = key.replace('/', "%2F");
    let resp = crate::util::gcs_request(
        "POST",
        &format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}"),
        "application/octet-stream",
        body,
    );
    assert!(resp.starts_with("HTTP/1.1 200"), "upload {key}: {resp}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gcs_reads_blobs_verified_and_lists_them() {
    let url = crate::util::gcs_store("root/prefix");
    let store = Store::open(&url).unwrap();
    let content = noise(300_000, 13);
    let d = Digest::of(&content);
    assert_eq!(store.stat_blob(&d).await.unwrap(), None);
    let compressed = flowpack_core::store::compress_bytes(&content);
    let key = store.full_key(&layout::blob(&d));
    gcs_seed(&url, &key, &compressed);
    assert_eq!(
        store.stat_blob(&d).await.unwrap(),
        Some(compressed.len() as u64)
    );
    assert_eq!(store.get_blob_bytes(&d, 1 << 20).await.unwrap(), content);
    assert!(read_all(&store, d, content.len() as u64).await.unwrap() == content);
    assert_eq!(
        store.list("v1/blobs").await.unwrap(),
        vec![layout::blob(&d)]
    );
    let shard = layout::blob(&d);
    let shard_dir = shard.rsplit_once('/').unwrap().0;
    let (parent, name) = shard_dir.rsplit_once('/').unwrap();
    assert_eq!(
        store.list_dirs(parent).await.unwrap(),
        vec![name.to_string()]
    );
    // A blob whose bytes are not its digest's: refused, naming the key.
    let other = Digest::of(b"other");
    let other_key = store.full_key(&layout::blob(&other));
    gcs_seed(&url, &other_key, &compressed);
    let err = read_all(&store, other, content.len() as u64)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&other_key), "{err}");
}

/// `flowpack ARGS` in `cwd` with only `env` (and PATH) set: no credentials or endpoint
/// from this process, HOME an empty folder. Returns the output and its stdout and stderr
/// joined.
fn flowpack_env(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let home = cwd.join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let out = std::process::Command::new(crate::util::BIN)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("FLOWPACK_CACHE_DIR", cwd.join(".test-cache"))
        .envs(env.iter().copied())
        .output()
        .expect("run flowpack");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A folder holding a flow to push.
fn flow_folder() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    crate::util::write_tree(
        tmp.path(),
        &[
            ("flow.yaml", crate::util::LINEAR_FLOW),
            ("main.py", "print('hi')\n"),
        ],
    );
    tmp
}

/// The test credentials .cargo/config.toml gives moto (which accepts any).
fn test_keys() -> [(&'static str, String); 2] {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .map(|k| (k, std::env::var(k).expect("set by .cargo/config.toml")))
}

#[test]
fn the_standard_aws_variables_reach_an_http_endpoint() {
    // Before: "builder error: URL scheme is not allowed" (AWS_ALLOW_HTTP was dropped).
    let m = crate::util::moto();
    let endpoint = format!("http://{}:{}", m.host, m.port);
    let url = crate::util::s3_store("p");
    let bucket = url["s3://".len()..].split('/').next().unwrap().to_string();
    let [(k, key), (s, secret)] = test_keys();
    let store = format!("s3://{bucket}/env-only");
    let tmp = flow_folder();
    for allow_http in [Some("true"), None] {
        let mut env = vec![
            (k, key.as_str()),
            (s, secret.as_str()),
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
        ];
        if let Some(a) = allow_http {
            env.push(("AWS_ALLOW_HTTP", a));
        }
        let (ok, text) = flowpack_env(
            tmp.path(),
            &["push", "flow.yaml", "--store", &store, "--json"],
            &env,
        );
        assert!(ok, "AWS_ALLOW_HTTP={allow_http:?}: {text}");
        let (ok, text) = flowpack_env(tmp.path(), &["runs", "--store", &store], &env);
        assert!(ok && text.contains("no runs in"), "{text}");
    }
    // The push went where AWS_ENDPOINT_URL points: the URL with the endpoint sees it.
    let seen = Store::open(&format!("s3://{bucket}/env-only?endpoint={endpoint}")).unwrap();
    let keys = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(seen.list("v1/blobs"))
        .unwrap();
    assert!(!keys.is_empty());
}

#[test]
fn no_credentials_says_where_flowpack_looked_and_how_to_fix_it() {
    // Before: "PUT http://169.254.169.254/latest/api/token … 403" or a connection error.
    let tmp = flow_folder();
    let store = crate::util::s3_store("p");
    // The metadata endpoint is a closed local port: a machine off EC2.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metadata = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    for args in [
        vec!["runs", "--store", &store],
        vec!["push", "flow.yaml", "--store", &store],
    ] {
        let started = std::time::Instant::now();
        let (ok, text) = flowpack_env(tmp.path(), &args, &[("AWS_METADATA_ENDPOINT", &metadata)]);
        assert!(!ok, "{text}");
        for part in [
            "no AWS credentials found for s3://",
            "AWS_ACCESS_KEY_ID with AWS_SECRET_ACCESS_KEY",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            &format!("instance metadata service at {metadata}"),
            "does not read ~/.aws/credentials or AWS_PROFILE",
            "aws configure export-credentials",
        ] {
            assert!(text.contains(part), "{args:?}: no {part:?} in {text}");
        }
        assert!(!text.contains("/latest/api/token"), "{text}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    }
    // The AWS SDKs' switch: no request at all.
    let started = std::time::Instant::now();
    let (ok, text) = flowpack_env(
        tmp.path(),
        &["runs", "--store", &store],
        &[("AWS_EC2_METADATA_DISABLED", "true")],
    );
    assert!(
        !ok && text.contains("AWS_EC2_METADATA_DISABLED is true"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn refusals_of_an_s3_store_say_what_to_check_and_never_show_a_secret() {
    // Before: "403 Forbidden:" with nothing after it, and the raw XML of moto's answer.
    let a = crate::util::moto_auth::auth_moto();
    let tmp = flow_folder();
    let wrong_secret = "wrongSECRET/of+the-test0000000000000000";
    let store = a.url(&a.bucket);
    let missing = a.url("no-such-bucket");
    let runs = |url: &str| {
        vec!["runs", "--store", url]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let push = |url: &str| {
        vec!["push", "flow.yaml", "--store", url]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // (key id, secret, command, what the message must hold)
    let cases: Vec<(&str, &str, Vec<String>, Vec<&str>)> = vec![
        (
            &a.key_id,
            wrong_secret,
            runs(&store),
            vec![
                "LIST p/v1/runs/ was refused by",
                "the secret does not match the key id: check AWS_SECRET_ACCESS_KEY (the secret of AWS_ACCESS_KEY_ID)",
                "SignatureDoesNotMatch, HTTP 403",
            ],
        ),
        (
            &a.key_id,
            wrong_secret,
            push(&store),
            vec![
                "HEAD p/v1/blobs/",
                "a HEAD answer has no body",
                "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                "HTTP 403",
            ],
        ),
        (
            "AKIANOSUCHKEY0000000",
            wrong_secret,
            runs(&store),
            vec![
                "the store does not know this key id: check AWS_ACCESS_KEY_ID",
                "InvalidAccessKeyId, HTTP 403",
            ],
        ),
        (
            &a.key_id,
            &a.secret,
            runs(&missing),
            vec![
                "the bucket or container 'no-such-bucket' named in s3://no-such-bucket/p",
                "create it or fix the URL",
                "LIST p/v1/runs/: NoSuchBucket, HTTP 404",
            ],
        ),
        (
            &a.key_id,
            &a.secret,
            push(&missing),
            vec![
                "the bucket or container 'no-such-bucket'",
                "NoSuchBucket, HTTP 404",
            ],
        ),
        (
            &a.denied_key_id,
            &a.denied_secret,
            runs(&store),
            vec![
                "the credentials lack permission for LIST on checked/p/v1/runs/: grant s3:ListBucket",
                "AccessDenied, HTTP 403",
            ],
        ),
    ];
    for (key_id, secret, args, parts) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, text) = flowpack_env(
            tmp.path(),
            &[&args[..], &["-vv"]].concat(),
            &[
                ("AWS_ACCESS_KEY_ID", key_id),
                ("AWS_SECRET_ACCESS_KEY", secret),
            ],
        );
        assert!(!ok, "{args:?}: {text}");
        for part in parts {
            assert!(text.contains(part), "{args:?}: no {part:?} in {text}");
        }
        assert!(
            !text.contains("<Error>") && !text.contains("<?xml"),
            "{text}"
        );
        for s in [secret, wrong_secret, &a.secret, &a.denied_secret] {
            assert!(!text.contains(s), "a secret is shown: {text}");
        }
    }
}
