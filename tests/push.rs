//! Packing and pushing: determinism, dedup, ignore rules, refusals, the env layer, and
//! concurrent pushes — through the library and through the `flowpack` binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use flowpack_core::Flow;
use flowpack_core::manifest::LayerKind;
use flowpack_core::store::{Store, layout};
use flowpack_packager::{PushOptions, PushReport, push};

use crate::util::{self, Kind, LINEAR_FLOW, flowpack, flowpack_ok, store_url, write_tree};

async fn push_dir(dir: &Path, store: &str, cache: &Path) -> PushReport {
    let flow_file = dir.join("flow.yaml");
    let flow = Flow::load(&flow_file).unwrap();
    let opts = PushOptions {
        store: Store::open(store).unwrap(),
        version: None,
        rebuild_env: false,
        record_version: true,
        cache_dir: cache.to_path_buf(),
    };
    push(&flow_file, &flow, &opts, &()).await.unwrap()
}

const FILES: [(&str, &str); 5] = [
    ("flow.yaml", LINEAR_FLOW),
    ("main.py", "print('hello')\n"),
    ("lib/util.py", "def f():\n    return 1\n"),
    ("lib/data/table.csv", "a,b\n1,2\n"),
    ("README.md", "# demo\n"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_same_tree_gives_the_same_digest_whatever_its_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_tree(&a, &FILES);
    // b: created in reverse order, other modes, owners and mtimes.
    let mut reversed = FILES;
    reversed.reverse();
    write_tree(&b, &reversed);
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for (p, _) in FILES {
        let path = b.join(p);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let _ = std::os::unix::fs::chown(&path, Some(1234), Some(4321));
    }
    let store = store_url(Kind::Local, tmp.path());
    let ra = push_dir(&a, &store, &tmp.path().join("cache")).await;
    let rb = push_dir(&b, &store, &tmp.path().join("cache")).await;
    assert_eq!(ra.layers[0].digest, rb.layers[0].digest);
    assert_eq!(ra.package, rb.package);
    assert_eq!(
        rb.uploaded_bytes, 0,
        "b's package was already complete in the store"
    );

    // The execute bit is content: changing it changes the digest.
    std::fs::set_permissions(b.join("main.py"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rc = push_dir(&b, &store, &tmp.path().join("cache")).await;
    assert_ne!(rc.package, ra.package);
}

async fn dedup_uploads_only_what_changed(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flow");
    write_tree(&dir, &FILES);
    std::fs::write(
        dir.join("flow.yaml"),
        format!("{LINEAR_FLOW}env:\n  path: ../site\n"),
    )
    .unwrap();
    write_tree(
        &tmp.path().join("site"),
        &[
            ("pkg/__init__.py", "X = 1\n"),
            ("pkg/big.py", &"# padding\n".repeat(5000)),
        ],
    );
    let store = store_url(kind, tmp.path());
    let cache = tmp.path().join("cache");

    let first = push_dir(&dir, &store, &cache).await;
    assert_eq!(first.layers.len(), 2);
    assert!(
        first
            .layers
            .iter()
            .all(|l| l.uploaded_bytes > 0 && l.reused_bytes == 0)
    );
    assert!(first.manifest_uploaded);

    let again = push_dir(&dir, &store, &cache).await;
    assert_eq!(again.package, first.package);
    assert!(
        again
            .layers
            .iter()
            .all(|l| l.uploaded_bytes == 0 && l.reused_bytes > 0)
    );
    assert_eq!(again.uploaded_bytes, 0);
    assert!(!again.manifest_uploaded);
    assert_ne!(
        again.version, first.version,
        "each push names a new version"
    );

    std::fs::write(dir.join("main.py"), "print('changed')\n").unwrap();
    let changed = push_dir(&dir, &store, &cache).await;
    assert_ne!(changed.package, first.package);
    let code = &changed.layers[0];
    let env = &changed.layers[1];
    assert_eq!((code.kind, env.kind), (LayerKind::Code, LayerKind::Env));
    assert!(code.uploaded_bytes > 0);
    assert_eq!(env.uploaded_bytes, 0);
    assert!(changed.manifest_uploaded);
    assert_eq!(
        changed.uploaded_bytes,
        code.uploaded_bytes + (changed.uploaded_bytes - code.uploaded_bytes),
    );

    // Everything is in the store: 3 layers (2 code, 1 env) and 2 manifests; 3 versions.
    let s = Store::open(&store).unwrap();
    assert_eq!(s.list("v1/blobs").await.unwrap().len(), 5);
    assert_eq!(s.list(&layout::versions("demo")).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn dedup_local() {
    dedup_uploads_only_what_changed(Kind::Local).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dedup_s3() {
    dedup_uploads_only_what_changed(Kind::S3).await;
}

#[test]
fn ignore_rules_and_symlinks_shape_the_code_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flow");
    write_tree(&dir, &FILES);
    write_tree(
        &dir,
        &[
            (".gitignore", "*.log\ndata-cache/\n"),
            (".flowpackignore", "secret.txt\n"),
            ("run.log", "x"),
            ("data-cache/blob", "x"),
            ("secret.txt", "x"),
            (".git/HEAD", "ref: x"),
            ("lib/__pycache__/util.cpython-311.pyc", "x"),
            ("kept/.hidden", "hidden files are code too"),
        ],
    );
    std::os::unix::fs::symlink("lib/util.py", dir.join("inner-link.py")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("outer-link")).unwrap();
    let store = tmp.path().join("store");
    let out = flowpack(
        &dir,
        &[
            "push",
            "flow.yaml",
            "--store",
            store.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("left out symlink outer-link -> /etc/hostname"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let package = report["package"].as_str().unwrap();

    let fetched = tmp.path().join("fetched");
    flowpack_ok(
        tmp.path(),
        &[
            "fetch",
            package,
            "--store",
            store.to_str().unwrap(),
            "-o",
            fetched.to_str().unwrap(),
        ],
    );
    let mut files: Vec<String> = util::walk(&fetched.join("code"));
    files.sort();
    assert_eq!(
        files,
        [
            ".flowpackignore",
            ".gitignore",
            "README.md",
            "flow.yaml",
            "inner-link.py",
            "kept/.hidden",
            "lib/data/table.csv",
            "lib/util.py",
            "main.py"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(fetched.join("code/inner-link.py")).unwrap(),
        "def f():\n    return 1\n"
    );
}

/// Pushes `dir`'s flow to `store` with `--json`, fetches the package and returns the code
/// layer's files (sorted), the JSON report and stderr.
fn push_and_list(dir: &Path, store: &Path) -> (Vec<String>, serde_json::Value, String) {
    let out = flowpack(
        dir,
        &[
            "push",
            "flow.yaml",
            "--store",
            store.to_str().unwrap(),
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fetched = dir.parent().unwrap().join("fetched");
    let _ = std::fs::remove_dir_all(&fetched);
    flowpack_ok(
        dir,
        &[
            "fetch",
            report["package"].as_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "-o",
            fetched.to_str().unwrap(),
        ],
    );
    let mut files = util::walk(&fetched.join("code"));
    files.sort();
    (files, report, stderr)
}

#[test]
fn python_environments_in_the_code_tree_are_left_out_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flow");
    write_tree(&dir, &FILES);
    write_tree(
        &dir,
        &[
            (".venv/pyvenv.cfg", "home = /usr/bin\n"),
            (".venv/lib/python3.11/site-packages/numpy/__init__.py", "x"),
            (".venv/bin/python", "x"),
            // A venv under any name: pyvenv.cfg is what makes one.
            ("tools/py311/pyvenv.cfg", "home = /usr/bin\n"),
            ("tools/py311/lib/x.py", "x"),
            ("tools/build.py", "print('kept')\n"),
            // A bare site-packages (pip install --target, a copied env).
            ("vendor/site-packages/requests/__init__.py", "x"),
            ("vendor/own.py", "kept"),
        ],
    );
    let store = tmp.path().join("store");
    let (files, report, stderr) = push_and_list(&dir, &store);
    assert_eq!(
        files,
        [
            "README.md",
            "flow.yaml",
            "lib/data/table.csv",
            "lib/util.py",
            "main.py",
            "tools/build.py",
            "vendor/own.py"
        ],
        "{stderr}"
    );
    // Said once, naming each folder, why, and how to pack one anyway.
    assert_eq!(stderr.matches("left out").count(), 1, "{stderr}");
    for said in [
        ".venv (a Python virtual environment: it holds pyvenv.cfg)",
        "tools/py311 (a Python virtual environment: it holds pyvenv.cfg)",
        "vendor/site-packages (installed Python packages)",
        "!/.venv/",
        ".flowpackignore",
    ] {
        assert!(stderr.contains(said), "{said:?} not in:\n{stderr}");
    }
    let left_out: Vec<&str> = report["left_out"]
        .as_array()
        .expect("left_out in --json")
        .iter()
        .map(|l| l["path"].as_str().unwrap())
        .collect();
    assert_eq!(left_out, [".venv", "tools/py311", "vendor/site-packages"]);

    // `run` packs the same tree and says it once too.
    let out = flowpack(
        &dir,
        &["run", "flow.yaml", "--store", store.to_str().unwrap()],
    );
    let run_err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{run_err}");
    assert_eq!(run_err.matches("left out").count(), 1, "{run_err}");

    // A negation in .flowpackignore packs a folder anyway; the others stay out.
    std::fs::write(dir.join(".flowpackignore"), "!/tools/py311/\n").unwrap();
    let (files, report, stderr) = push_and_list(&dir, &store);
    assert!(
        files.contains(&"tools/py311/pyvenv.cfg".to_string()),
        "{files:?}"
    );
    assert!(
        files.contains(&"tools/py311/lib/x.py".to_string()),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.starts_with(".venv")), "{files:?}");
    assert!(!stderr.contains("tools/py311"), "{stderr}");
    assert_eq!(report["left_out"].as_array().unwrap().len(), 2);

    // The flow's own env folder in the tree is the env layer: out of the code layer, unsaid.
    std::fs::write(
        dir.join("flow.yaml"),
        format!("{LINEAR_FLOW}env: {{path: vendor/site-packages}}\n"),
    )
    .unwrap();
    let (files, report, stderr) = push_and_list(&dir, &store);
    assert!(!files.iter().any(|f| f.contains("requests")), "{files:?}");
    assert!(!stderr.contains("vendor/site-packages"), "{stderr}");
    assert_eq!(report["left_out"][0]["path"], ".venv", "{report}");
    assert_eq!(report["layers"].as_array().unwrap().len(), 2, "{report}");
}

#[test]
fn an_unusually_large_code_layer_names_its_largest_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flow");
    write_tree(&dir, &FILES);
    // 12 MiB in one file, deep in a folder: past the 10 MiB threshold.
    std::fs::create_dir_all(dir.join("data/raw")).unwrap();
    std::fs::write(dir.join("data/raw/big.bin"), vec![7u8; 12 << 20]).unwrap();
    let store = tmp.path().join("store");
    let (files, report, stderr) = push_and_list(&dir, &store);
    assert!(
        files.contains(&"data/raw/big.bin".to_string()),
        "still packed"
    );
    // Said on stderr: the size, the largest paths (a folder holding mostly one file is
    // shown as that file) and what to do.
    for said in [
        "the code layer is unusually large",
        "data/raw/big.bin 12.0 MiB",
        "lib 30 B (3 entries)",
        ".flowpackignore",
    ] {
        assert!(stderr.contains(said), "{said:?} not in:\n{stderr}");
    }
    // And as data in --json.
    let large = &report["large_code_layer"];
    assert!(large["bytes"].as_u64().unwrap() > 12 << 20, "{large}");
    let largest = large["largest"].as_array().unwrap();
    assert_eq!(largest[0]["path"], "data/raw/big.bin", "{large}");
    assert_eq!(largest[0]["bytes"], 12 << 20);
    let lib = largest
        .iter()
        .find(|l| l["path"] == "lib")
        .expect("lib listed");
    assert_eq!(
        (lib["bytes"].as_u64(), lib["entries"].as_u64()),
        (Some(30), Some(3))
    );
    assert!(largest.len() <= 5);

    // A usual tree says nothing.
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    let (_, report, stderr) = push_and_list(&dir, &store);
    assert!(report["large_code_layer"].is_null(), "{report}");
    assert!(!stderr.contains("unusually large"), "{stderr}");
}

#[test]
fn special_files_are_refused_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &FILES);
    let status = std::process::Command::new("mkfifo")
        .arg(tmp.path().join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = flowpack(tmp.path(), &["push", "flow.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pipe") && stderr.contains("special files"),
        "{stderr}"
    );
    assert!(
        !tmp.path().join(".flowpack/v1/blobs").exists(),
        "nothing was uploaded"
    );
}

/// A flow in `dir` whose env layer installs the test wheel from tests/fixtures/wheels
/// (no index: nothing is downloaded), with `env_yaml` as its `env:` section.
fn write_env_flow(dir: &Path, env_yaml: &str) {
    write_tree(dir, &FILES);
    let wheels = util::workspace().join("tests/fixtures/wheels");
    let requirements = format!(
        "--no-index\n--find-links {}\nflowpack-testpkg==0.1\n",
        wheels.display()
    );
    std::fs::write(dir.join("requirements.txt"), requirements).unwrap();
    std::fs::write(dir.join("flow.yaml"), format!("{LINEAR_FLOW}{env_yaml}")).unwrap();
}

#[test]
fn the_env_layer_falls_back_to_pip_without_uv() {
    let tmp = tempfile::tempdir().unwrap();
    write_env_flow(tmp.path(), "env: {requirements: requirements.txt}\n");
    let python = util::find_python();
    let out = std::process::Command::new(util::BIN)
        .args(["push", "flow.yaml", "--json", "-v"])
        .current_dir(tmp.path())
        .env("FLOWPACK_CACHE_DIR", tmp.path().join("cache"))
        .env("FLOWPACK_PYTHON", &python)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("FLOWPACK_UV")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("installer=\"pip\""), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["layers"][1]["kind"], "env");
    let site = std::fs::read_dir(tmp.path().join("cache/envs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        site.path()
            .join("site/flowpack_testpkg/__init__.py")
            .is_file()
    );
}

#[test]
fn the_env_layer_is_built_from_requirements_with_uv_and_cached() {
    let tmp = tempfile::tempdir().unwrap();
    write_env_flow(
        tmp.path(),
        "env:\n  requirements: requirements.txt\n  python: '3.11'\n",
    );
    let run = |args: &[&str]| util::flowpack_uv_json(tmp.path(), &tmp.path().join("cache"), args);
    let first = run(&["push", "flow.yaml", "--json"]);
    let env = &first["layers"][1];
    assert_eq!(env["kind"], "env");
    assert!(env["uploaded_bytes"].as_u64().unwrap() > 0);
    let second = run(&["push", "flow.yaml", "--json"]);
    assert_eq!(
        second["package"], first["package"],
        "the cached env gives the same layer"
    );
    assert_eq!(second["layers"][1]["uploaded_bytes"], 0);

    let fetched = tmp.path().join("fetched");
    run(&[
        "fetch",
        first["package"].as_str().unwrap(),
        "--store",
        ".flowpack",
        "-o",
        "fetched",
        "--json",
    ]);
    let init = std::fs::read_to_string(fetched.join("env/flowpack_testpkg/__init__.py")).unwrap();
    assert!(init.contains("VALUE = 42"));
}

#[test]
fn sixteen_concurrent_pushes_of_one_package_agree() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &FILES);
    let store = util::s3_store("concurrent");
    let children: Vec<_> = (0..16)
        .map(|_| {
            std::process::Command::new(util::BIN)
                .args([
                    "push",
                    "flow.yaml",
                    "--store",
                    &store,
                    "--json",
                    "--version-name",
                    "v1",
                ])
                .current_dir(tmp.path())
                .env("FLOWPACK_CACHE_DIR", tmp.path().join("cache"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut packages = std::collections::BTreeSet::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        packages.insert(r["package"].as_str().unwrap().to_string());
    }
    assert_eq!(packages.len(), 1);
    let package = packages.pop_first().unwrap();
    flowpack_ok(
        tmp.path(),
        &["fetch", &package, "--store", &store, "-o", "out"],
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/code/main.py")).unwrap(),
        "print('hello')\n"
    );

    // The version is immutable: another package cannot take its name.
    std::fs::write(tmp.path().join("main.py"), "print('other')\n").unwrap();
    let out = flowpack(
        tmp.path(),
        &[
            "push",
            "flow.yaml",
            "--store",
            &store,
            "--version-name",
            "v1",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("version 'v1' of flow 'demo' already exists"),
        "{stderr}"
    );
}

#[test]
fn a_tampered_package_is_refused_on_fetch_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &FILES);
    let report: serde_json::Value =
        serde_json::from_str(&flowpack_ok(tmp.path(), &["push", "flow.yaml", "--json"])).unwrap();
    let layer = report["layers"][0]["digest"].as_str().unwrap();
    let hex = layer.strip_prefix("sha256:").unwrap();
    let blob = tmp
        .path()
        .join(format!(".flowpack/v1/blobs/sha256/{}/{hex}", &hex[..2]));
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&blob, bytes).unwrap();
    let out = flowpack(
        tmp.path(),
        &[
            "fetch",
            report["package"].as_str().unwrap(),
            "--store",
            ".flowpack",
            "-o",
            "out",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("v1/blobs/sha256/{}/{hex} is corrupt", &hex[..2])),
        "{stderr}"
    );
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn an_unreachable_store_fails_after_bounded_retries_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &FILES);
    // Nothing listens on port 9 of the loopback.
    let store = "s3://bucket/prefix?endpoint=http://127.0.0.1:9";
    let started = std::time::Instant::now();
    let out = flowpack(tmp.path(), &["push", "flow.yaml", "--store", store]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HEAD prefix/v1/blobs/sha256/"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("retr"),
        "the error says it retried: {stderr}"
    );
    assert!(
        took < Duration::from_secs(30),
        "retries are bounded: took {took:?}"
    );
    assert!(!stderr.contains("flowpack-test-secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tree_index_finds_unchanged_trees_and_never_hides_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flow");
    write_tree(&dir, &FILES);
    // Files changed more than the racy window ago: the index records the tree.
    let settle =
        || std::thread::sleep(flowpack_packager::tree::RACY_WINDOW + Duration::from_millis(100));
    let old = SystemTime::now() - Duration::from_secs(60);
    for (p, _) in FILES {
        std::fs::File::options()
            .write(true)
            .open(dir.join(p))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    settle();
    let store = store_url(Kind::Local, tmp.path());
    let cache = tmp.path().join("cache");
    let first = push_dir(&dir, &store, &cache).await;
    assert_eq!(
        std::fs::read_dir(cache.join("layers-v1")).unwrap().count(),
        1
    );
    let again = push_dir(&dir, &store, &cache).await;
    assert_eq!(again.package, first.package);

    // Same size, same mtime, new content: ctime still moves, so the change is seen.
    std::fs::write(dir.join("main.py"), "print('HELLO')\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.join("main.py"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    settle();
    let changed = push_dir(&dir, &store, &cache).await;
    assert_ne!(changed.package, first.package);
    assert!(changed.layers[0].uploaded_bytes > 0);
}

#[test]
fn an_inline_package_list_builds_the_env_its_requirements_file_would() {
    let tmp = tempfile::tempdir().unwrap();
    write_env_flow(tmp.path(), "env: {requirements: requirements.txt}\n");
    let wheels = util::workspace().join("tests/fixtures/wheels");
    // The same three lines as requirements.txt, inline.
    std::fs::write(
        tmp.path().join("inline.yaml"),
        format!(
            "{LINEAR_FLOW}env:\n  packages: ['--no-index', '--find-links {}', 'flowpack-testpkg==0.1']\n",
            wheels.display()
        ),
    )
    .unwrap();
    let push = |flow: &str| {
        util::flowpack_uv_json(
            tmp.path(),
            &tmp.path().join("cache"),
            &["push", flow, "--json"],
        )
    };
    let inline = push("inline.yaml");
    let env = &inline["layers"][1];
    assert_eq!(env["kind"], "env");
    assert!(env["uploaded_bytes"].as_u64().unwrap() > 0, "{inline:#}");
    // The requirements file with the same lines finds the same build in the cache.
    let file = push("flow.yaml");
    assert_eq!(file["layers"][1]["digest"], env["digest"], "{file:#}");
    assert_eq!(file["layers"][1]["uploaded_bytes"], 0);
    let builds: Vec<_> = std::fs::read_dir(tmp.path().join("cache/envs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        builds.len(),
        1,
        "one build, no temporary files left: {builds:?}"
    );
}
