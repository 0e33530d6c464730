//! Hostile objects where flowpack expects a small document: a 1 GiB object at the key of a
//! manifest, a task record, a run record or an artifact list, on a local folder store and on
//! a real S3 server (moto). Every command that reads one (`fetch`, `step`, `show`, `runs`)
//! must refuse it while reading — naming the key and the limit — in under 100 MB of RSS and
//! 5 s. The junk is never held in memory, by flowpack or by this test: a sparse file, written
//! in place into a local store and uploaded in a stream to S3 (then copied server-side), on
//! a moto server of these tests' own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flowpack_core::Digest;
use flowpack_core::store::layout;

use crate::util::{self, BIN, Kind, LINEAR_FLOW, Measured, write_tree};

/// The size of the junk object.
const JUNK: u64 = 1 << 30;
/// The targets for every hostile case.
const MAX_RSS: u64 = 100 * 1000 * 1000;
const MAX_TIME: Duration = Duration::from_secs(5);

/// A store under attack, and a test folder with a flow.
struct Hostile {
    kind: Kind,
    tmp: tempfile::TempDir,
    url: String,
    /// Where the junk was first uploaded (S3): later junk is a server-side copy of it.
    s3_junk: Option<String>,
}

impl Hostile {
    fn new(kind: Kind) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        write_tree(
            tmp.path(),
            &[("flow.yaml", LINEAR_FLOW), ("main.py", "print('hi')\n")],
        );
        let url = match kind {
            Kind::Local => tmp.path().join("store").display().to_string(),
            Kind::S3 => util::s3_store_on(own_moto(), "root/prefix"),
            Kind::Azure | Kind::Gcs => unreachable!("the hostile store tests run on local and S3"),
        };
        Self {
            kind,
            tmp,
            url,
            s3_junk: None,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The key as errors show it (with the store's prefix).
    fn full_key(&self, key: &str) -> String {
        match self.kind {
            Kind::Local => key.to_string(),
            _ => format!("root/prefix/{key}"),
        }
    }

    /// Puts 1 GiB of junk at `key`, replacing what is there.
    fn put_junk(&mut self, key: &str) {
        match self.kind {
            Kind::Local => {
                let path = Path::new(&self.url).join(key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let _ = std::fs::remove_file(&path);
                sparse_junk(&path);
            }
            _ => {
                let bucket = self.url["s3://".len()..].split('/').next().unwrap();
                let target = self.full_key(key);
                let script = match &self.s3_junk {
                    None => {
                        let file = self.dir().join("junk");
                        sparse_junk(&file);
                        format!(
                            "c.upload_file({:?}, {bucket:?}, {target:?}, \
                             Config=TransferConfig(multipart_chunksize=64 << 20))",
                            file.display().to_string()
                        )
                    }
                    Some(from) => format!(
                        "c.copy_object(Bucket={bucket:?}, Key={target:?}, \
                         CopySource={{'Bucket': {bucket:?}, 'Key': {from:?}}})"
                    ),
                };
                let m = own_moto();
                let out = Command::new(util::find_python())
                    .arg("-c")
                    .arg(format!(
                        "import boto3\nfrom boto3.s3.transfer import TransferConfig\n\
                         c = boto3.client('s3', endpoint_url='http://{}:{}', region_name='us-east-1')\n\
                         {script}\n",
                        m.host, m.port
                    ))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "upload junk (needs boto3, which moto brings): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                self.s3_junk = Some(target);
            }
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--store", &self.url])
            .current_dir(self.dir())
            .env("FLOWPACK_CACHE_DIR", self.dir().join(".test-cache"))
            .env_remove("FLOWPACK_STORE")
            .env_remove("FLOWPACK_LOG");
        c
    }

    /// Runs `flowpack ARGS --store URL` to success; its stdout as JSON.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "flowpack {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs `flowpack ARGS --store URL`, which must fail within the targets with an error
    /// naming `key` and `limit`.
    fn refused(&self, args: &[&str], key: &str, limit: &str) -> Measured {
        let m = util::measured(&mut self.command(args));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&m.output.stdout),
            String::from_utf8_lossy(&m.output.stderr)
        );
        eprintln!(
            "{:?}: flowpack {args:?} on 1 GiB at {key}: {:.1} MB, {:.2} s",
            self.kind,
            m.peak_rss as f64 / 1e6,
            m.elapsed.as_secs_f64()
        );
        assert!(!m.output.status.success(), "flowpack {args:?} accepted it");
        let full = self.full_key(key);
        assert!(
            text.contains(&full) && text.contains(limit),
            "flowpack {args:?}: the error does not name {full} and {limit}:\n{text}"
        );
        assert!(
            m.peak_rss < MAX_RSS,
            "flowpack {args:?} peaked at {} bytes",
            m.peak_rss
        );
        assert!(
            m.elapsed < MAX_TIME,
            "flowpack {args:?} took {:?}",
            m.elapsed
        );
        m
    }
}

/// A moto server for these tests alone: taking in 1 GiB keeps a moto busy for seconds,
/// which would stall every other S3 test on the shared one.
fn own_moto() -> &'static util::Moto {
    static MOTO: std::sync::OnceLock<util::Moto> = std::sync::OnceLock::new();
    MOTO.get_or_init(|| util::start_moto("127.0.0.1"))
}

/// A sparse file of `JUNK` bytes: a line of text, then zeros the file system does not store.
fn sparse_junk(path: &PathBuf) {
    let f = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut &f, b"this is no flowpack document\n").unwrap();
    f.set_len(JUNK).unwrap();
}

#[test]
fn huge_documents_in_a_local_store_are_refused_while_reading() {
    huge_documents_are_refused_while_reading(Kind::Local);
}

/// On S3 the manifest and the artifact list only: the other documents take the same read
/// path, and every 1 GiB object costs moto ~10 s to take in.
#[test]
fn huge_documents_on_s3_are_refused_while_reading() {
    huge_documents_are_refused_while_reading(Kind::S3);
}

fn huge_documents_are_refused_while_reading(kind: Kind) {
    let mut h = Hostile::new(kind);
    let package = h.json(&["push", "flow.yaml", "--json"])["package"]
        .as_str()
        .unwrap()
        .to_string();
    let run = h.json(&["run", "flow.yaml", "--json"])["run"]
        .as_str()
        .unwrap()
        .to_string();

    // At a manifest's key: `fetch` and a task's fetch phase.
    let d = Digest::of(b"a package the attacker replaced");
    let manifest = layout::blob(&d);
    h.put_junk(&manifest);
    let fake = d.to_string();
    h.refused(&["fetch", &fake, "-o", "out"], &manifest, "16 MiB");
    assert!(!h.dir().join("out").exists());
    h.refused(
        &["step", "--package", &fake, "--run", "r1", "--step", "start"],
        &manifest,
        "16 MiB",
    );

    // The artifact list of a committed task: read by `show` and by a child restoring it.
    let attempt = layout::attempt("demo", &run, "start", "0", 0);
    let artifacts = format!("{attempt}artifacts.json");
    h.put_junk(&artifacts);
    h.refused(&["show", &run], &artifacts, "32 MiB");
    h.refused(
        &[
            "step",
            "--package",
            &package,
            "--run",
            &run,
            "--step",
            "end",
            "--parent",
            "start/0",
        ],
        &artifacts,
        "32 MiB",
    );
    if let Kind::S3 = kind {
        return;
    }

    // A zstd bomb at a manifest's key: 1 GiB of zeros in a small frame. The decompressor
    // stops past 16 MiB.
    let d = Digest::of(b"a bomb");
    let bomb = layout::blob(&d);
    let path = Path::new(&h.url).join(&bomb);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut enc = zstd::Encoder::new(std::fs::File::create(&path).unwrap(), 3).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        std::io::Write::write_all(&mut enc, &zeros).unwrap();
    }
    enc.finish().unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
    h.refused(&["fetch", &d.to_string(), "-o", "out"], &bomb, "16 MiB");

    // The task record, and the run record.
    let task = format!("{attempt}task.json");
    h.put_junk(&task);
    h.refused(&["show", &run], &task, "4 MiB");
    let record = layout::run_record("demo", &run);
    h.put_junk(&record);
    h.refused(&["runs"], &record, "17 MiB");
}
