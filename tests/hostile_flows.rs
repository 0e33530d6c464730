//! Hostile flow files: `flowpack check` on files made to cost memory or time (huge,
//! deep, alias bombs, graphs that made the validator quadratic or panic) stays under
//! 100 MB and 5 s, and either accepts the file or refuses it at `flow.yaml:LINE:COL`.
//!
//! The limits they meet are documented in core/src/flow/locate.rs (nodes, depth),
//! parse.rs (settings merged into steps) and validate.rs (split nesting); docs/flow.md
//! lists them. Figures before and after: docs/reliability.md, "Hostile flow files".

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::process::Command;
use std::time::Duration;

use crate::util::{BIN, measured};

const MAX_RSS: u64 = 100 << 20;
const MAX_TIME: Duration = Duration::from_secs(5);

/// The start of every generated flow.
const HEAD: &str = "name: x\nsteps:\n  start: {run: a, next: end}\n  end: {run: b}\n";

/// What `flowpack check [--json] flow.yaml` did with `text`.
struct Checked {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `flowpack check` on `text`, asserting the bounds, and that a refusal is an error
/// with a position (never a panic or a crash).
fn check(what: &str, text: &str, json: bool) -> Checked {
    check_written(what, |f| f.write_all(text.as_bytes()), json)
}

/// [`check`] on a file that `write` writes. The largest files are written in pieces: a
/// child's peak RSS as `measured` sees it starts at this test process's own peak (Linux
/// carries the peak over `exec`), so the tests keep theirs small.
fn check_written(
    what: &str,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
    json: bool,
) -> Checked {
    let tmp = tempfile::tempdir().unwrap();
    let mut file = BufWriter::new(File::create(tmp.path().join("flow.yaml")).unwrap());
    write(&mut file).unwrap();
    file.flush().unwrap();
    let size = file.get_ref().metadata().unwrap().len();
    drop(file);
    // Through a shell that caps the address space: a regression fails on its first big
    // allocation instead of taking the machine's memory (before the fixes, two of these
    // cases grew past 10 GB). (Not with `pre_exec`: a forked child's peak RSS would
    // start at this test process's.)
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -v 4194304 && exec \"$0\" \"$@\"",
        BIN,
        "check",
        "flow.yaml",
    ])
    .args(json.then_some("--json"))
    .current_dir(tmp.path())
    .env("FLOWPACK_CACHE_DIR", tmp.path().join(".cache"))
    .env_remove("FLOWPACK_LOG");
    let before = own_peak();
    let m = measured(&mut cmd);
    let stderr = String::from_utf8_lossy(&m.output.stderr).into_owned();
    eprintln!(
        "{what} ({} KB): {:.1} MB, {:.2} s, {} (this test process's peak: {:.1} MB)",
        size / 1000,
        m.peak_rss as f64 / 1e6,
        m.elapsed.as_secs_f64(),
        m.output.status,
        before as f64 / 1e6
    );
    assert!(
        m.peak_rss < MAX_RSS,
        "{what}: peak RSS {} MB",
        m.peak_rss >> 20
    );
    assert!(m.elapsed < MAX_TIME, "{what}: took {:?}", m.elapsed);
    let ok = m.output.status.success();
    if !ok {
        assert_eq!(m.output.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.starts_with("error: flow.yaml:"),
            "{what}: an error without a position: {stderr}"
        );
    }
    Checked {
        ok,
        stdout: String::from_utf8_lossy(&m.output.stdout).into_owned(),
        stderr,
    }
}

/// This process's peak RSS (VmHWM), in bytes.
fn own_peak() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Asserts a refusal whose (first) error is at `line` and says `says`.
fn refused_at(c: &Checked, line: usize, says: &str) {
    assert!(!c.ok, "accepted");
    let first = c.stderr.lines().next().unwrap_or_default();
    let at: usize = first
        .strip_prefix("error: flow.yaml:")
        .and_then(|r| r.split(':').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert_eq!(at, line, "{first}");
    assert!(c.stderr.contains(says), "{}", c.stderr);
}

fn nested_lists(chunks: usize) -> String {
    let chunk = format!("{}1{}", "[".repeat(90), "]".repeat(90));
    let list = vec![chunk; chunks].join(",");
    format!("{HEAD}parameters:\n  grid: {{type: json, default: [{list}]}}\n")
}

/// Writes a flow with `n` parameters.
fn parameters(n: usize) -> impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()> {
    move |f| {
        writeln!(f, "{HEAD}parameters:")?;
        for i in 0..n {
            writeln!(f, "  p{i}: {i}")?;
        }
        Ok(())
    }
}

/// A chain start -> s0 -> … -> s{n} -> `last`.
fn chain(n: usize, last: &str) -> String {
    let mut text = String::from("name: x\nsteps:\n  start: {run: a, next: s0}\n");
    for i in 0..n {
        writeln!(text, "  s{i}: {{run: a, next: s{}}}", i + 1).unwrap();
    }
    writeln!(text, "  s{n}: {{run: a, next: {last}}}\n  end: {{run: b}}").unwrap();
    text
}

/// Splits nested `depth` deep, each closed by its own join, every step declaring `o`.
fn nested_splits(depth: usize) -> String {
    let mut text = String::from("name: x\nsteps:\n  start: {run: a, next: l0}\n");
    for i in 0..depth {
        let inner = if i + 1 < depth {
            format!("l{}", i + 1)
        } else {
            "y".into()
        };
        let after = if i > 0 {
            format!("j{}", i - 1)
        } else {
            "end".into()
        };
        writeln!(
            text,
            "  l{i}: {{run: a, next: [x{i}, {inner}], outputs: [o]}}\n  x{i}: {{run: a, next: j{i}, outputs: [o]}}\n  j{i}: {{run: a, join: true, next: {after}, outputs: [o]}}"
        )
        .unwrap();
    }
    writeln!(
        text,
        "  y: {{run: a, next: j{}, outputs: [o]}}\n  end: {{run: b}}",
        depth - 1
    )
    .unwrap();
    text
}

#[test]
fn large_flow_files_are_refused_at_the_node_past_the_limit_and_accepted_below_it() {
    // 1 MB of lists nested 90 deep (before: accepted, 905 MB and 25 s).
    let c = check("1 MB of nested lists", &nested_lists(5500), false);
    refused_at(&c, 6, "past 100000 nodes");
    // Just below the node limit: accepted, normalized and printed.
    let c = check("99,000 nodes of nested lists", &nested_lists(1090), false);
    assert!(c.ok, "{}", c.stderr);

    // 4 MB of parameters (before: accepted, 230 MB and 5.9 s; 1.4 M shorter ones took
    // 3.6 GB and 65 s).
    let c = check_written("4 MB of parameters", parameters(240_000), false);
    // The node past the limit: the value of parameter 49,991 (from 0), two nodes each
    // after the 17 nodes before them.
    refused_at(&c, 6 + 49_991, "past 100000 nodes");
    let c = check_written("49,000 parameters", parameters(49_000), true);
    assert!(c.ok, "{}", c.stderr);
    assert!(c.stdout.contains("\"p48999\""), "{}", &c.stdout[..200]);

    // Bytes the node limit does not see: a file over 8 MiB is refused before it is read
    // whole (here a comment: 1 GB of it cost 1 GB before); a 4 MiB command is fine.
    let mib = vec![b'x'; 1 << 20];
    let c = check_written(
        "a 9 MiB comment",
        |f| {
            write!(f, "{HEAD}#")?;
            (0..9).try_for_each(|_| f.write_all(&mib))
        },
        false,
    );
    assert_eq!(
        c.stderr.trim_end(),
        "error: flow.yaml: the flow file is larger than 8 MiB: a flow file describes a flow; keep data in files the steps read"
    );
    let c = check_written(
        "a 4 MiB command",
        |f| {
            write!(
                f,
                "name: x\nsteps:\n  start: {{run: a, next: end}}\n  end: {{run: "
            )?;
            (0..4).try_for_each(|_| f.write_all(&mib))?;
            writeln!(f, "}}")
        },
        false,
    );
    assert!(c.ok, "{}", c.stderr);

    // A byte that is not UTF-8: refused where it is (before: without a position).
    let c = check_written(
        "a byte not UTF-8",
        |f| f.write_all(b"name: x\nsteps: \xff\n"),
        false,
    );
    refused_at(&c, 2, "the flow file is not UTF-8 here");

    // 8,000 steps in a chain: accepted.
    let c = check("8,000 steps", &chain(8_000, "end"), false);
    assert!(c.ok, "{}", c.stderr);
    assert!(c.stdout.starts_with("flow x: 8003 steps"), "{}", c.stdout);
}

#[test]
fn deep_nesting_is_refused_at_the_level_past_the_limit() {
    // Block lists on one line: 2 bytes a level, 500,000 levels (before: refused by serde
    // after loading every event, 162 MB).
    let text = format!(
        "{HEAD}parameters:\n  e:\n    default:\n      {}x\n",
        "- ".repeat(500_000)
    );
    let c = check("500,000 nested block lists", &text, false);
    refused_at(&c, 8, "nests deeper than 100 levels");
    // Flow lists (the YAML scanner's own limit is 255).
    let text = format!(
        "{HEAD}parameters:\n  e: {}{}\n",
        "[".repeat(250),
        "]".repeat(250)
    );
    refused_at(
        &check("250 nested flow lists", &text, false),
        6,
        "nests deeper than 100 levels",
    );
    // Block mappings, one more space each: 1 MB for 1,400 levels.
    let mut text = format!("{HEAD}parameters:\n  e:\n    default:\n");
    for i in 0..1400 {
        writeln!(text, "{}k:", " ".repeat(6 + i)).unwrap();
    }
    writeln!(text, "{}k: 1", " ".repeat(1406)).unwrap();
    refused_at(
        &check("1,400 nested block mappings", &text, false),
        104,
        "nests deeper than 100 levels",
    );
}

#[test]
fn alias_bombs_are_refused_at_the_alias() {
    // A billion laughs (before: "flow.yaml:1:1: repetition limit exceeded").
    let mut text = String::from("name: x\nparameters:\n  p:\n    default:\n      a0: &a0 [lol]\n");
    for k in 1..10 {
        let refs = vec![format!("*a{}", k - 1); 10].join(", ");
        writeln!(text, "      a{k}: &a{k} [{refs}]").unwrap();
    }
    text.push_str("steps:\n  start: {run: a, next: end}\n  end: {run: b}\n");
    let c = check("a billion laughs", &text, false);
    refused_at(&c, 10, "this alias stands for 21111 nodes");
    assert!(
        c.stderr.starts_with("error: flow.yaml:10:31:"),
        "{}",
        c.stderr
    );

    // An anchor of 40,000 items aliased 40,000 times: 1.6 billion nodes from 300 KB
    // (before: past 10 GB and 150 s, stopped there).
    let items = vec!["1"; 40_000].join(",");
    let refs = vec!["*a"; 40_000].join(",");
    let text = format!(
        "{HEAD}parameters:\n  a: {{type: json, default: &a [{items}]}}\n  b: {{type: json, default: [{refs}]}}\n"
    );
    let c = check("an anchor aliased 40,000 times", &text, false);
    refused_at(&c, 7, "this alias stands for 40001 nodes");
    // The second alias is the one past the limit.
    assert!(
        c.stderr.starts_with("error: flow.yaml:7:32:"),
        "{}",
        c.stderr
    );
}

#[test]
fn graphs_that_cost_quadratic_time_or_panicked_are_bounded() {
    // defaults.env of 20,000 entries merged into 9,000 steps (before: past 23 GB and
    // 150 s, stopped there).
    let env: Vec<String> = (0..20_000).map(|i| format!("E{i}: v")).collect();
    let text = chain(9_000, "end").replacen(
        "steps:\n",
        &format!("defaults:\n  env: {{{}}}\nsteps:\n", env.join(", ")),
        1,
    );
    let c = check("defaults merged into 9,000 steps", &text, false);
    assert!(
        c.stderr
            .contains("hold more than 100000 settings (entries of env"),
        "{}",
        c.stderr
    );

    // A cycle through 8,000 steps (before: a panic, "a step in a cycle leads on inside
    // it": the cycle was searched from 'end', which sorts first and leads nowhere).
    let text = chain(8_000, "[s0, end]");
    let c = check("a cycle of 8,000 steps", &text, false);
    refused_at(&c, 8_004, "the steps form a cycle: s0 -> s1 -> s2");
    assert!(c.stderr.contains("(7992 more)"), "{}", c.stderr);

    // 8,000 unknown step names (before: over 100 s, stopped there: "did you mean"
    // compared each with every step).
    let mut text = String::from("name: x\nsteps:\n  start: {run: a, next: end}\n");
    for i in 0..8_000 {
        writeln!(text, "  s{i}: {{run: a, next: t{i}}}").unwrap();
    }
    text.push_str("  end: {run: b}\n");
    let c = check("8,000 unknown step names", &text, false);
    assert_eq!(
        c.stderr.matches("lists unknown next step").count(),
        8_000,
        "{}",
        &c.stderr[..2000.min(c.stderr.len())]
    );

    // Splits nested 2,000 deep (before: accepted, 713 MB and 11.7 s); 60 deep is fine.
    let c = check("splits nested 2,000 deep", &nested_splits(2_000), false);
    refused_at(
        &c,
        196,
        "splits and foreaches nest more than 64 deep at 'l64'",
    );
    let c = check("splits nested 60 deep", &nested_splits(60), false);
    assert!(c.ok, "{}", c.stderr);

    // A recursive switch (before: a panic; now a valid flow), and one that loops back
    // through 8,000 steps: the walk that finds the case back is not recursive.
    let text = "name: x\nsteps:\n  start: {run: a, next: s}\n  s: {run: b, switch: {on: v, cases: {again: s, done: end}}}\n  end: {run: c}\n";
    let c = check("a recursive switch", text, false);
    assert!(c.ok, "{}", c.stderr);
    let text = chain(8_000, "end").replace(
        "  s8000: {run: a, next: end}",
        "  s8000: {run: a, switch: {on: v, cases: {again: s0, done: end}}}",
    );
    let c = check("a recursive switch through 8,000 steps", &text, false);
    assert!(c.ok, "{}", c.stderr);

    // A step defined twice (before: accepted, the second one winning).
    let text = "name: x\nsteps:\n  train: {run: a, next: end}\n  start: {run: a, next: train}\n  train: {run: b, next: end}\n  end: {run: c}\n";
    let c = check("a step defined twice", text, false);
    assert_eq!(
        c.stderr.trim_end(),
        "error: flow.yaml:5:3: step 'train' is defined twice (first at line 3): YAML would keep only the last one; remove or rename one"
    );
}
