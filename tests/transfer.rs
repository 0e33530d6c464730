//! Large transfers (core/src/store/transfer.rs, frames.rs): blobs streamed up in parts while
//! they are compressed — raw zstd blocks where compression does not pay — and read back as
//! concurrent ranged GETs, on the local folder store, S3 (moto) and Azure (Azurite); an
//! upload whose content is not what its digest says stores nothing; a damaged blob read in
//! parallel ranges is refused; parts go through a flaky store.

use std::io::Write;

use flowpack_core::Digest;
use flowpack_core::store::transfer::{RANGE_SIZE, SINGLE_PUT_MAX};
use flowpack_core::store::{PART_SIZE, Put, Store, StoreError, layout};

use crate::util::faults::{Fault, Proxy};
use crate::util::{self, Kind, noise, open_store as open, read_blob as read_all};

/// Uploads `content` as the blob named `d` through [`Store::put_blob_from`], written in
/// pieces as a task's output would be.
async fn put(store: &Store, d: Digest, content: Vec<u8>) -> Result<Put, StoreError> {
    let size = content.len() as u64;
    store
        .put_blob_from(&d, size, 1, std::path::Path::new("output"), move |w| {
            for piece in content.chunks(300_007) {
                w.write_all(piece)?;
            }
            Ok(())
        })
        .await
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
    incompressible_content_goes_up_in_parts_as_raw_frames_and_reads_back,
    compressible_content_is_compressed,
    content_that_is_not_what_its_digest_says_is_not_stored,
    a_damaged_blob_read_in_parallel_ranges_is_refused,
);

async fn incompressible_content_goes_up_in_parts_as_raw_frames_and_reads_back(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    // Parts over the part size, and a last part that is not full.
    let content = noise(PART_SIZE * 2 + 12345, 101);
    let d = Digest::of(&content);
    let Put::Uploaded(n) = put(&store, d, content.clone()).await.unwrap() else {
        panic!("the blob was new")
    };
    // Raw blocks: the content plus 3 bytes per 128 KiB block and a few per frame.
    let len = content.len() as u64;
    assert!(
        n > SINGLE_PUT_MAX && n > len && n < len + len / 256,
        "{n} for {len}"
    );
    assert_eq!(store.stat_blob(&d).await.unwrap(), Some(n));
    assert!(n > 2 * RANGE_SIZE, "read back in several ranges");
    let back = read_all(&store, d, len).await.unwrap();
    assert!(back == content, "read back differs");
    if let Kind::Local = kind {
        // What is stored is plain zstd, as any reader (flowpack's before raw frames
        // included) decodes it.
        let stored = std::fs::read(dir.path().join("store").join(layout::blob(&d))).unwrap();
        assert_eq!(stored.len() as u64, n);
        assert!(zstd::decode_all(stored.as_slice()).unwrap() == content);
    }
}

async fn compressible_content_is_compressed(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    let mut content = Vec::new();
    for i in 0..400_000u32 {
        writeln!(content, "row {i},{},{}", i % 7, i * 31 % 1000).unwrap();
    }
    let d = Digest::of(&content);
    let Put::Uploaded(n) = put(&store, d, content.clone()).await.unwrap() else {
        panic!("the blob was new")
    };
    assert!(n * 4 < content.len() as u64, "{n} for {}", content.len());
    let back = read_all(&store, d, content.len() as u64).await.unwrap();
    assert!(back == content, "read back differs");
}

async fn content_that_is_not_what_its_digest_says_is_not_stored(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    // A small blob (one PUT) and a large one (multipart): both are refused at the end and
    // leave nothing behind.
    for (len, seed) in [(1000, 201), (PART_SIZE * 2 + 7, 202)] {
        let hashed = noise(len, seed);
        let mut changed = hashed.clone();
        changed[len / 2] ^= 1;
        let d = Digest::of(&hashed);
        let err = put(&store, d, changed).await.unwrap_err().to_string();
        assert!(
            err.contains("output") && err.contains("changed while it was uploaded"),
            "{err}"
        );
        assert_eq!(store.stat_blob(&d).await.unwrap(), None, "{len} bytes");
        // A shorter content is refused as well.
        let err = put(&store, d, hashed[..len - 1].to_vec())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        assert_eq!(store.stat_blob(&d).await.unwrap(), None);
    }
    if let Kind::Local = kind {
        // An aborted multipart upload leaves no staging file.
        let left: Vec<String> = util::walk(&dir.path().join("store"))
            .into_iter()
            .filter(|p| !p.ends_with('/'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

async fn a_damaged_blob_read_in_parallel_ranges_is_refused(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(kind, &dir);
    let content = noise(4 * RANGE_SIZE as usize + 999, 301);
    let d = Digest::of(&content);
    put(&store, d, content.clone()).await.unwrap();
    let key = store.full_key(&layout::blob(&d));
    let good = zstd::encode_all(content.as_slice(), 1).unwrap();
    // Stores `bytes` as the blob d, replacing it.
    let replace = |bytes: Vec<u8>| {
        let file = dir.path().join("damaged.zst");
        std::fs::write(&file, bytes).unwrap();
        let store = store.clone();
        async move { store.put_blob_file(&d, &file, &|_| {}).await.unwrap() }
    };
    // A flipped byte in the third range; the last range cut off; a range's worth missing
    // in the middle.
    let mut flipped = good.clone();
    flipped[2 * RANGE_SIZE as usize + 77] ^= 0x10;
    let truncated = good[..good.len() - RANGE_SIZE as usize / 2].to_vec();
    let mut holed = good[..RANGE_SIZE as usize].to_vec();
    holed.extend_from_slice(&good[2 * RANGE_SIZE as usize..]);
    for damaged in [flipped, truncated, holed] {
        replace(damaged).await;
        let err = read_all(&store, d, content.len() as u64)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&key) && err.contains("corrupt"), "{err}");
    }
    // The intact blob reads back through the same path.
    replace(good).await;
    assert!(read_all(&store, d, content.len() as u64).await.unwrap() == content);
}

/// Parts and ranges through a store that fails one request in four (500s, throttling,
/// connections reset before and after the request, stalls): each failed part or range is
/// retried, and the blob arrives whole.
#[tokio::test(flavor = "multi_thread")]
async fn parts_and_ranges_are_retried_through_a_flaky_store() {
    let m = util::moto();
    let direct = util::s3_store("flaky-parts");
    let faults = [
        Fault::Error500,
        Fault::SlowDown,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Stall,
    ];
    let proxy = Proxy::start(("127.0.0.1".into(), m.port), 0.25, &faults, 11);
    let url = direct.replace(
        &format!("http://127.0.0.1:{}", m.port),
        &format!("http://127.0.0.1:{}", proxy.port),
    );
    let store = Store::open(&url).unwrap();
    let content = noise(PART_SIZE * 3 + 5, 401);
    let d = Digest::of(&content);
    assert!(matches!(
        put(&store, d, content.clone()).await.unwrap(),
        Put::Uploaded(_)
    ));
    let back = read_all(&store, d, content.len() as u64).await.unwrap();
    assert!(back == content, "read back differs");
    assert!(proxy.injected() >= 2, "{} faults", proxy.injected());
}

/// A store that fails every part: the upload fails with the store's error after the
/// bounded retries, and is aborted — the server holds no unfinished upload and no blob.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_whose_parts_keep_failing_is_aborted() {
    let m = util::moto();
    let direct = util::s3_store("failing-parts");
    let proxy = Proxy::start(("127.0.0.1".into(), m.port), 1.0, &[Fault::Error500], 12);
    proxy.set_only(Some("partNumber="));
    let url = direct.replace(
        &format!("http://127.0.0.1:{}", m.port),
        &format!("http://127.0.0.1:{}", proxy.port),
    );
    let store = Store::open(&url).unwrap();
    let content = noise(PART_SIZE * 2 + 5, 501);
    let d = Digest::of(&content);
    let err = put(&store, d, content).await.unwrap_err().to_string();
    assert!(err.contains("PUT") && err.contains("500"), "{err}");
    assert_eq!(store.stat_blob(&d).await.unwrap(), None);
    // moto answers unsigned requests: list the bucket's multipart uploads.
    let bucket = direct["s3://".len()..].split('/').next().unwrap();
    let listing = unsigned_get(m, &format!("/{bucket}?uploads"));
    assert!(listing.contains("<ListMultipartUploadsResult"), "{listing}");
    assert!(
        !listing.contains("<Upload>"),
        "an upload was left: {listing}"
    );
}

fn unsigned_get(m: &util::Moto, path: &str) -> String {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect((m.host.as_str(), m.port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        m.host, m.port
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}
