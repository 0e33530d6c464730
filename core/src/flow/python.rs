//! `.py` flow files: [`Flow::load`](super::Flow::load) hands them here. This module owns
//! running the describer (`python -m flowpack.describe FILE`, docs/python.md) and turning
//! its one JSON answer into a [`Flow`] through the ordinary parser and validator, with
//! every error's position mapped back to `FILE.py:LINE`.
//!
//! The describer runs with the embedded package ([`crate::python`]) and the flow file's
//! folder on `PYTHONPATH`, in that folder, bounded: at most [`MAX_OUTPUT`] bytes of output
//! and [`TIMEOUT`] of time, so a flow file whose top-level code hangs or floods cannot
//! hang `check` or `push`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Flow, FlowError, FlowErrors, Pos};
use crate::env_vars::FLOWPACK_PYTHON;

/// The most the describer may print on stdout (its flow document as JSON).
pub const MAX_OUTPUT: u64 = 8 << 20;
/// How long the describer may take (it imports the flow module: top-level code runs).
pub const TIMEOUT: Duration = Duration::from_secs(120);
/// How much of the describer's stderr an error shows.
const MAX_STDERR: usize = 16 << 10;

/// Whether `path` names a Python flow file.
pub fn is_python_flow(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "py")
}

/// Describes the Python flow file at `path`: the embedded package written out into the
/// cache folder, the describer run, its answer parsed and validated.
pub(super) fn load(path: &Path) -> Result<Flow, FlowErrors> {
    let fail = |msg: String| FlowErrors::one(FlowError::new(path, Pos::default(), msg));
    let cache = crate::env_vars::cache_dir().map_err(|e| {
        fail(format!(
            "cannot place the cache for flowpack's Python package: {e}; set {}",
            crate::env_vars::FLOWPACK_CACHE_DIR
        ))
    })?;
    let package = crate::python::materialize(&cache).map_err(|e| fail(e.to_string()))?;
    let describer = Describer {
        python: python_program(),
        timeout: TIMEOUT,
    };
    let stdout = describer.run(path, &package).map_err(fail)?;
    from_describer_output(&stdout, path)
}

/// The Python interpreter flowpack runs: `$FLOWPACK_PYTHON`, else `python3`.
pub fn python_program() -> PathBuf {
    std::env::var_os(FLOWPACK_PYTHON)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// The describer's answer (docs/python.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Described {
    text: Option<String>,
    lines: Option<Vec<usize>>,
    errors: Option<Vec<DescribedError>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DescribedError {
    line: usize,
    #[serde(default)]
    col: usize,
    message: String,
}

/// Turns the describer's stdout into a validated flow (a pure function, so every case is
/// testable without Python): its own errors as they are, at `file:line[:col]`; the flow
/// text parsed and validated, each error at `file:line` of the source line the describer
/// mapped that text line to (col unknown).
pub fn from_describer_output(stdout: &[u8], file: &Path) -> Result<Flow, FlowErrors> {
    let internal = |msg: String| {
        FlowErrors::one(FlowError::new(
            file,
            Pos::default(),
            format!("internal error of flowpack's describer: {msg}"),
        ))
    };
    let d: Described = serde_json::from_slice(stdout).map_err(|e| {
        let shown = String::from_utf8_lossy(&stdout[..stdout.len().min(200)]).into_owned();
        internal(format!(
            "its output is not the JSON answer expected ({e}); it began: {shown:?}"
        ))
    })?;
    match (d.text, d.lines, d.errors) {
        (None, None, Some(errors)) if !errors.is_empty() => {
            let mut out: Vec<FlowError> = errors
                .into_iter()
                .map(|e| {
                    let pos = if e.line == 0 {
                        Pos::default()
                    } else {
                        Pos {
                            line: e.line,
                            col: e.col,
                        }
                    };
                    FlowError::new(file, pos, e.message)
                })
                .collect();
            out.sort_by_key(|e| e.pos);
            Err(FlowErrors(out))
        }
        (Some(text), Some(lines), None) => Flow::parse(&text, file).map_err(|errs| {
            let mut out: Vec<FlowError> = errs
                .0
                .into_iter()
                .map(|mut e| {
                    e.pos = match e.pos.line.checked_sub(1).and_then(|i| lines.get(i)) {
                        Some(&line) if line > 0 => Pos { line, col: 0 },
                        _ => Pos::default(),
                    };
                    e
                })
                .collect();
            out.sort_by_key(|e| e.pos);
            FlowErrors(out)
        }),
        _ => Err(internal(
            "it must answer {\"text\", \"lines\"} or a non-empty {\"errors\"}".into(),
        )),
    }
}

/// How the describer is run.
struct Describer {
    python: PathBuf,
    timeout: Duration,
}

impl Describer {
    /// Runs `python -m flowpack.describe FILE` and returns its stdout, or what went wrong.
    fn run(&self, file: &Path, package: &Path) -> Result<Vec<u8>, String> {
        let file =
            std::path::absolute(file).map_err(|e| format!("cannot resolve the path: {e}"))?;
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut paths = vec![package.to_path_buf(), dir.clone()];
        if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            paths.extend(std::env::split_paths(&old));
        }
        let pythonpath = std::env::join_paths(paths)
            .map_err(|e| format!("cannot build PYTHONPATH for the describer: {e}"))?;
        let mut child = Command::new(&self.python)
            .args(["-m", "flowpack.describe"])
            .arg(&file)
            .current_dir(&dir)
            .env("PYTHONPATH", pythonpath)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "flowpack runs Python flows with python3; set {FLOWPACK_PYTHON} to a Python 3.9 or newer ('{}' was not found)",
                        self.python.display()
                    )
                } else {
                    format!("cannot start '{}': {e}", self.python.display())
                }
            })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut stdout = stdout;
            (&mut stdout).take(MAX_OUTPUT + 1).read_to_end(&mut buf)?;
            // Past the limit, drained: the describer ends instead of blocking on a full pipe.
            std::io::copy(&mut stdout, &mut std::io::sink())?;
            Ok::<_, std::io::Error>(buf)
        });
        let err = std::thread::spawn(move || read_capped(stderr, MAX_STDERR));
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("cannot wait for the describer: {e}")),
            }
        };
        let what = format!("{} -m flowpack.describe", self.python.display());
        let Some(status) = status else {
            // The readers are left to finish on their own: a process the describer started
            // may hold its pipes open after it was killed.
            return Err(format!(
                "{what} did not finish within {} s: the flow file's top-level code runs when it is described; move real work into steps",
                self.timeout.as_secs()
            ));
        };
        let stdout = out.join().expect("reader does not panic");
        let stderr = err.join().expect("reader does not panic");
        let stdout = stdout.map_err(|e| format!("cannot read the output of {what}: {e}"))?;
        if stdout.len() as u64 > MAX_OUTPUT {
            return Err(format!(
                "{what} printed more than {} MiB: print nothing at the flow file's top level",
                MAX_OUTPUT >> 20
            ));
        }
        if !status.success() {
            return Err(format!(
                "internal error of flowpack's describer: {what} failed ({status}):\n{}",
                stderr.trim_end()
            ));
        }
        Ok(stdout)
    }
}

/// Everything `r` gives, keeping the first `cap` bytes as text (the rest is read and
/// dropped, so the child never blocks on a full pipe).
fn read_capped(mut r: impl Read, cap: usize) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut dropped = false;
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        dropped |= n > room;
    }
    let mut s = String::from_utf8_lossy(&kept).into_owned();
    if dropped {
        s.push_str("\n[… cut]");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "flows/hello.py";

    fn describe(json: serde_json::Value) -> Result<Flow, FlowErrors> {
        from_describer_output(json.to_string().as_bytes(), Path::new(FILE))
    }

    /// A describer answer for a linear flow, one step per text line (lines 4–6 of the
    /// text), as the describer lays it out.
    fn answer(start_next: &str) -> serde_json::Value {
        let text = format!(
            "{{\"name\": \"HelloFlow\", \"code\": \".\",\n\
             \"parameters\": {{\n\
             \"alpha\": {{\"type\": \"float\", \"default\": 0.5}}}},\n\
             \"steps\": {{\n\
             \"start\": {{\"run\": \"python3 -m flowpack.task hello.py start\", \"next\": \"{start_next}\"}},\n\
             \"end\": {{\"run\": \"python3 -m flowpack.task hello.py end\"}}\n\
             }}}}"
        );
        serde_json::json!({"text": text, "lines": [7, 7, 12, 7, 15, 30, 7]})
    }

    #[test]
    fn a_flow_document_becomes_the_normalized_flow() {
        let flow = describe(answer("end")).unwrap();
        assert_eq!(flow.name, "HelloFlow");
        assert_eq!(flow.code, ".");
        assert_eq!(flow.parameters["alpha"].ty, super::super::ParamType::Float);
        assert_eq!(flow.order(), ["start", "end"]);
        // The same text as a YAML flow file gives the same flow.
        let text = answer("end")["text"].as_str().unwrap().to_string();
        assert_eq!(flow, Flow::parse(&text, Path::new("x.yaml")).unwrap());
    }

    #[test]
    fn errors_in_the_text_point_at_the_source_line_without_a_column() {
        let errs = describe(answer("trian")).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        let e = &errs.0[0];
        // Text line 5 (the start step) maps to source line 15.
        assert_eq!(e.pos, Pos { line: 15, col: 0 });
        let shown = e.to_string();
        assert!(shown.starts_with("flows/hello.py:15: "), "{shown}");
        assert!(shown.contains("trian"), "{shown}");
    }

    #[test]
    fn the_describers_own_errors_keep_line_and_column_in_order() {
        let errs = describe(serde_json::json!({"errors": [
            {"line": 20, "col": 0, "message": "step 'b' has no self.next(...)"},
            {"line": 12, "col": 9, "message": "unknown target"},
            {"line": 0, "col": 0, "message": "no FlowSpec subclass"},
        ]}))
        .unwrap_err();
        let shown: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "flows/hello.py: no FlowSpec subclass",
                "flows/hello.py:12:9: unknown target",
                "flows/hello.py:20: step 'b' has no self.next(...)",
            ]
        );
    }

    #[test]
    fn a_malformed_answer_is_an_internal_error() {
        for bad in [
            &b"not json"[..],
            br#"{"errors": []}"#,
            br#"{"text": "name: x"}"#,
            br#"{"text": "x", "lines": [], "errors": [{"line": 1, "message": "m"}]}"#,
            br#"{"text": "x", "lines": [], "extra": 1}"#,
        ] {
            let errs = from_describer_output(bad, Path::new(FILE)).unwrap_err();
            let shown = errs.to_string();
            assert!(
                shown.starts_with("flows/hello.py: internal error of flowpack's describer"),
                "{shown}"
            );
        }
    }

    #[test]
    fn an_error_on_a_line_the_describer_did_not_map_has_no_position() {
        let mut a = answer("trian");
        a["lines"] = serde_json::json!([1, 2]);
        let errs = describe(a).unwrap_err();
        assert_eq!(errs.0[0].pos, Pos::default());
    }

    /// A stand-in interpreter: a shell script (flowpack's describer is tested with real
    /// Python by the integration tests once the package has it).
    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("fake-python");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn the_describer_runs_in_the_flow_folder_with_the_package_first_on_pythonpath() {
        let tmp = tempfile::tempdir().unwrap();
        let flow = tmp.path().join("flow.py");
        std::fs::write(&flow, "").unwrap();
        let d = Describer {
            python: script(
                tmp.path(),
                r#"printf '%s|%s|%s|%s' "$*" "$PWD" "$PYTHONPATH" x"#,
            ),
            timeout: TIMEOUT,
        };
        let out = d.run(&flow, Path::new("/pkg")).unwrap();
        let out = String::from_utf8(out).unwrap();
        let dir = tmp.path().display().to_string();
        let parts: Vec<&str> = out.split('|').collect();
        assert_eq!(parts[0], format!("-m flowpack.describe {dir}/flow.py"));
        assert_eq!(parts[1], dir);
        assert!(parts[2].starts_with(&format!("/pkg:{dir}")), "{out}");
    }

    #[test]
    fn a_failing_hanging_or_missing_describer_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let flow = tmp.path().join("flow.py");
        let run = |body: &str, timeout: Duration| {
            Describer {
                python: script(tmp.path(), body),
                timeout,
            }
            .run(&flow, Path::new("/pkg"))
            .unwrap_err()
        };
        let e = run("echo boom >&2; exit 3", TIMEOUT);
        assert!(e.contains("failed") && e.contains("boom"), "{e}");
        let e = run("sleep 5", Duration::from_millis(200));
        assert!(e.contains("did not finish within"), "{e}");
        let e = run("head -c 9000000 /dev/zero", TIMEOUT);
        assert!(e.contains("more than 8 MiB"), "{e}");
        let e = Describer {
            python: tmp.path().join("no-such-python"),
            timeout: TIMEOUT,
        }
        .run(&flow, Path::new("/pkg"))
        .unwrap_err();
        assert!(
            e.starts_with("flowpack runs Python flows with python3; set FLOWPACK_PYTHON"),
            "{e}"
        );
    }
}
