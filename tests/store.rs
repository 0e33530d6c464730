//! The store suite: every test runs on the local folder store, on S3 (moto) and on Azure
//! Blob Storage (Azurite).

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use flowpack_core::Digest;
use flowpack_core::store::{Created, Put, Store, StoreError, layout};

use crate::util::{Kind, store_url};

fn open(kind: Kind, dir: &tempfile::TempDir) -> Store {
    Store::open(&store_url(kind, dir.path())).unwrap()
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_all(store: &Store, d: Digest, size: u64) -> Result<Vec<u8>, StoreError> {
    let reader = store.open_blob(&d, size).await?;
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut out = Vec::new();
        reader
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| StoreError::from_io(e, "blob"))
    })
    .await
    .unwrap()
}

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(crate::util::Kind::Local).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(crate::util::Kind::S3).await })*
        }
        mod azure {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() { super::$name(crate::util::Kind::Azure).await })*
        }
    };
}

on_every_store!(
    small_blobs_are_stored_once,
    large_blobs_go_up_in_parts_and_read_back_verified,
    a_flipped_byte_is_detected_and_names_the_key,
    truncated_and_oversized_blobs_are_refused,
    json_documents_are_create_only,
    concurrent_writers_of_one_blob_all_succeed,
    missing_objects_name_their_key,
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
