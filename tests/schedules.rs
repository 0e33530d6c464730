//! KFP recurring runs (`schedule`, `schedules`) against Prism serving KFP's official v2beta1
//! swagger: every request must be one the API allows (the test fails on any violation in
//! Prism's log), the cron KFP receives is the converted 6-field one, what cannot be scheduled
//! is refused before any call, and the token is never printed.

use std::path::Path;
use std::process::Command;

use crate::util::{self, BIN, write_tree};

const TOKEN: &str = "flowpack-schedule-t0ken";

/// `flowpack ARGS` in `dir` against the KFP at `url`: (exit code, stdout, stderr); fails
/// when the token shows in either.
fn fp(dir: &Path, url: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("FLOWPACK_CACHE_DIR", dir.join(".test-cache"))
        .env("FLOWPACK_KFP_URL", url)
        .env("FLOWPACK_KFP_TOKEN", TOKEN)
        .env_remove("FLOWPACK_KFP_TIMEZONE")
        .env_remove("FLOWPACK_STORE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token was printed: {stdout}{stderr}"
    );
    (out.status.code(), stdout, stderr)
}

/// How many requests Prism saw.
fn requests(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("Request received"))
        .count()
}

const FLOW: &str = "name: nightly\nparameters:\n  alpha: {type: float, default: 0.5}\n  tag: {type: string}\nschedule: {cron: '30 2 * * 7'}\nsteps:\n  start: {run: 'true', next: end}\n  end: {run: 'true'}\n";

#[test]
fn schedules_are_created_listed_enabled_disabled_and_deleted_over_the_kfp_api() {
    let (url, log) = util::prism();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", FLOW)]);

    // Create: the flow's own schedule, the required parameter given, typed by the flow.
    let (code, stdout, stderr) = fp(
        dir,
        &url,
        &[
            "schedule",
            "flow.yaml",
            "--param",
            "tag=prod",
            "--param",
            "alpha=0.25",
            "--max-concurrency",
            "3",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let made: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(made["id"].is_string(), "{made}");
    assert_eq!(made["cron"], "30 2 * * 7", "{made}");
    assert_eq!(made["kfp_cron"], "0 30 2 * * 0", "{made}");
    assert_eq!(made["timezone"], "UTC", "{made}");
    assert_eq!(made["outcome"], "created", "{made}");

    // --cron overrides the flow's; without --json the id alone is printed.
    let (code, stdout, stderr) = fp(
        dir,
        &url,
        &[
            "schedule",
            "flow.yaml",
            "--cron",
            "@hourly",
            "--param",
            "tag=x",
            "--name",
            "hourly",
            "--catchup",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    // List: a table, and JSON for scripts.
    let (code, stdout, stderr) = fp(dir, &url, &["schedules"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let header = stdout.lines().next().unwrap();
    for col in ["ID", "NAME", "CRON", "ENABLED", "VERSION"] {
        assert!(header.contains(col), "{stdout}");
    }
    let (code, stdout, stderr) = fp(dir, &url, &["schedules", "flow.yaml", "--json"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let first = &listed.as_array().unwrap()[0];
    for key in [
        "id",
        "name",
        "cron",
        "enabled",
        "version",
        "pipeline_version_id",
    ] {
        assert!(first.get(key).is_some(), "{key} missing: {first}");
    }

    // Enable, disable, delete.
    for (verb, said) in [
        ("disable", "disabled"),
        ("enable", "enabled"),
        ("delete", "deleted"),
    ] {
        let (code, stdout, stderr) = fp(
            dir,
            &url,
            &["schedules", verb, "5c4a4c1e-0000-4000-8000-000000000001"],
            &[],
        );
        assert_eq!(code, Some(0), "{verb}: {stderr}");
        assert_eq!(
            stdout.trim(),
            format!("5c4a4c1e-0000-4000-8000-000000000001 {said}")
        );
    }
    let (code, _, stderr) = fp(dir, &url, &["schedules", "delete", "../runs"], &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not a schedule id"), "{stderr}");

    let text = std::fs::read_to_string(&log).unwrap();
    for call in [
        "post /apis/v2beta1/recurringruns ",
        "get /apis/v2beta1/recurringruns",
        "post /apis/v2beta1/recurringruns/5c4a4c1e-0000-4000-8000-000000000001:disable",
        "post /apis/v2beta1/recurringruns/5c4a4c1e-0000-4000-8000-000000000001:enable",
        "delete /apis/v2beta1/recurringruns/5c4a4c1e-0000-4000-8000-000000000001",
    ] {
        assert!(text.contains(call), "no {call}:\n{text}");
    }
    let v = util::prism_violations(&log);
    assert!(
        v.is_empty(),
        "requests the KFP API does not allow:\n{}",
        v.join("\n")
    );
}

#[test]
fn what_cannot_be_scheduled_is_refused_before_any_call() {
    let (url, log) = util::prism();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_tree(dir, &[("flow.yaml", FLOW)]);
    let before = requests(&log);
    for (args, env, says) in [
        // A parameter without a default and no --param for it.
        (
            vec!["schedule", "flow.yaml"],
            vec![],
            "parameters without a default that a scheduled run needs: tag",
        ),
        // Cron KFP would read wrongly, or that is not cron.
        (
            vec![
                "schedule",
                "flow.yaml",
                "--param",
                "tag=a",
                "--cron",
                "0 0 */2 * 1",
            ],
            vec![],
            "matching both in standard cron",
        ),
        (
            vec![
                "schedule",
                "flow.yaml",
                "--param",
                "tag=a",
                "--cron",
                "0 0 * *",
            ],
            vec![],
            "has 4 fields",
        ),
        (
            vec![
                "schedule",
                "flow.yaml",
                "--param",
                "tag=a",
                "--cron",
                "0 25 * * *",
            ],
            vec![],
            "the hour field \"25\" has 25, outside 0-23",
        ),
        // A time zone the cluster does not read cron in.
        (
            vec![
                "schedule",
                "flow.yaml",
                "--param",
                "tag=a",
                "--timezone",
                "Europe/Berlin",
            ],
            vec![],
            "its cluster's one time zone (UTC",
        ),
        (
            vec!["schedule", "flow.yaml", "--param", "tag=a"],
            vec![("FLOWPACK_KFP_TIMEZONE", "Europe/Berlin")],
            "meant in UTC",
        ),
        (
            vec![
                "schedule",
                "flow.yaml",
                "--param",
                "tag=a",
                "--max-concurrency",
                "11",
            ],
            vec![],
            "11 is not in 1..=10",
        ),
        (
            vec!["schedule", "flow.yaml", "--param", "alpha=high"],
            vec![],
            "parameter 'alpha'",
        ),
    ] {
        let (code, _, stderr) = fp(dir, &url, &args, &env);
        assert_ne!(code, Some(0), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(requests(&log), before, "a refused schedule called KFP");
    // The cluster's zone given: a schedule meant in it is accepted.
    let (code, _, stderr) = fp(
        dir,
        &url,
        &[
            "schedule",
            "flow.yaml",
            "--param",
            "tag=a",
            "--timezone",
            "Europe/Berlin",
        ],
        &[("FLOWPACK_KFP_TIMEZONE", "Europe/Berlin")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        requests(&log) > before,
        "the accepted schedule made no call"
    );
}

#[test]
fn push_deploys_the_flows_own_schedule_and_refuses_one_it_cannot() {
    let (url, log) = util::prism();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let defaulted = FLOW.replace(
        "tag: {type: string}",
        "tag: {type: string, default: nightly}",
    );
    write_tree(dir, &[("flow.yaml", &defaulted)]);
    let (code, stdout, stderr) = fp(
        dir,
        &url,
        &[
            "push",
            "flow.yaml",
            "--version-name",
            "v1",
            "--json",
            "--allow-local",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let pushed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(pushed["kfp"]["schedule"]["cron"], "30 2 * * 7", "{pushed}");
    assert!(pushed["kfp"]["schedule"]["id"].is_string(), "{pushed}");
    // The version pointer keeps the pipeline's ids only.
    let pointer =
        std::fs::read_to_string(dir.join(".flowpack/v1/flows/nightly/versions/v1.json")).unwrap();
    assert!(!pointer.contains("schedule"), "{pointer}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("post /apis/v2beta1/recurringruns ")
    );

    // A required parameter: push refuses before pushing anything.
    let other = tempfile::tempdir().unwrap();
    write_tree(other.path(), &[("flow.yaml", FLOW)]);
    let (code, _, stderr) = fp(other.path(), &url, &["push", "flow.yaml"], &[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("nothing was pushed") && stderr.contains("tag"),
        "{stderr}"
    );
    assert!(
        !other.path().join(".flowpack").exists(),
        "something was pushed"
    );
    let v = util::prism_violations(&log);
    assert!(
        v.is_empty(),
        "requests the KFP API does not allow:\n{}",
        v.join("\n")
    );
}
