//! The documentation's flows: every ```yaml block in README.md and docs/*.md is a flow
//! file that `flowpack check --target kfp` and `--target argo` accept, so a sample cannot
//! drift from what the parser, the validator and the compilers take. A block that is a
//! fragment of a flow (an `env:` section, `...`) is preceded by the line
//! `<!-- not-a-flow -->`; a whole flow that runs locally but that the engines cannot carry
//! (a recursive switch) by `<!-- local-only-flow -->`: `check` accepts it and both
//! `check --target` refuse it.

use std::path::{Path, PathBuf};

use crate::util::{self, flowpack};

const NOT_A_FLOW: &str = "<!-- not-a-flow -->";
const LOCAL_ONLY: &str = "<!-- local-only-flow -->";

/// A ```yaml block: where it starts, the marker line before it (if any), its text.
struct Block {
    file: PathBuf,
    line: usize,
    marker: Option<String>,
    text: String,
}

fn yaml_blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut before: Option<&str> = None;
    while let Some((i, line)) = lines.next() {
        if line.trim_start() == "```yaml" {
            let mut body = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            let marker = before
                .map(str::trim)
                .filter(|b| b.starts_with("<!--"))
                .map(str::to_string);
            blocks.push(Block {
                file: file.to_path_buf(),
                line: i + 1,
                marker,
                text: body,
            });
        }
        before = Some(line);
    }
    blocks
}

#[test]
fn every_flow_in_the_readme_and_docs_passes_check_for_kfp_and_argo() {
    let root = util::workspace();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let tmp = tempfile::tempdir().unwrap();
    let (mut checked, mut failures) = (0, Vec::new());
    for block in files.iter().flat_map(|f| yaml_blocks(f)) {
        let at = format!(
            "{}:{}",
            block.file.strip_prefix(&root).unwrap().display(),
            block.line
        );
        let expect_engines = match block.marker.as_deref() {
            Some(NOT_A_FLOW) => continue,
            Some(LOCAL_ONLY) => false,
            Some(other) => {
                failures.push(format!("{at}: unknown marker {other}"));
                continue;
            }
            None => true,
        };
        std::fs::write(tmp.path().join("flow.yaml"), &block.text).unwrap();
        let plain = flowpack(tmp.path(), &["check", "flow.yaml"]);
        let said = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
        if !plain.status.success() {
            failures.push(format!("{at}: `check` refuses it:\n{}", said(&plain)));
        }
        for target in ["kfp", "argo"] {
            let out = flowpack(tmp.path(), &["check", "flow.yaml", "--target", target]);
            if plain.status.success() && out.status.success() != expect_engines {
                failures.push(format!(
                    "{at}: `check --target {target}` {} it (mark it {LOCAL_ONLY} if the engines cannot carry it):\n{}",
                    if expect_engines { "refuses" } else { "accepts" },
                    said(&out)
                ));
            }
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "flows in the docs that do not check:\n\n{}",
        failures.join("\n\n")
    );
    assert!(checked >= 3, "only {checked} flows were checked");
}
