//! Running the user's command as a child process: its environment, its output, its
//! timeout, and a stop signal (TERM, INT, HUP) turned into SIGTERM to its whole process
//! group, then SIGKILL after a grace period.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use flowpack_core::flow::Run;
use tokio::process::Command;

use super::StopSignals;
use super::logs::{LogShipper, pump};

/// How the child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It exited by itself with this code (128 + signal when a signal killed it).
    Exited(i32),
    /// It ran past the timeout and was stopped.
    TimedOut,
    /// flowpack was told to stop (SIGTERM, SIGINT or SIGHUP) and stopped it.
    Terminated,
    /// It could not be started (exit code 126 or 127).
    NotStarted(i32, String),
}

/// Runs `run` in `cwd` with `env` added, shipping its output, until it ends.
pub async fn run(
    run: &Run,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    timeout: Option<Duration>,
    grace: Duration,
    signals: &StopSignals,
    shipper: &LogShipper,
) -> Ended {
    let mut cmd = match run {
        Run::Shell(line) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
        Run::Exec(args) => {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        }
    };
    cmd.current_dir(cwd)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ended::NotStarted(code, format!("cannot start {run:?}: {e}"));
        }
    };
    let pgid = child.id().map(|p| p as i32);
    let out = tokio::spawn(pump(
        child.stdout.take().expect("piped"),
        "stdout",
        shipper.clone(),
    ));
    let err = tokio::spawn(pump(
        child.stderr.take().expect("piped"),
        "stderr",
        shipper.clone(),
    ));
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status.map_or(125, exit_code)),
        signal = signals.received() => {
            shipper.line("flowpack", &format!("{signal} received: stopping the step")).await;
            stop(&mut child, pgid, grace, shipper).await;
            Ended::Terminated
        }
        _ = deadline => {
            shipper.line("flowpack", &format!("timeout of {}s reached: stopping the step", timeout.unwrap_or_default().as_secs())).await;
            stop(&mut child, pgid, grace, shipper).await;
            Ended::TimedOut
        }
    };
    // A grandchild that kept the pipes open must not hold the task forever.
    for pump in [out, err] {
        if tokio::time::timeout(Duration::from_secs(5), &mut *Box::pin(pump))
            .await
            .is_err()
        {
            shipper
                .line(
                    "flowpack",
                    "output still open after the step ended: no longer read",
                )
                .await;
        }
    }
    ended
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(125)
}

/// SIGTERM to the child's process group; SIGKILL after `grace`.
async fn stop(
    child: &mut tokio::process::Child,
    pgid: Option<i32>,
    grace: Duration,
    shipper: &LogShipper,
) {
    if let Some(pg) = pgid {
        // SAFETY: kill(2) with a process group id we created; no memory is involved.
        unsafe { libc::kill(-pg, libc::SIGTERM) };
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        shipper
            .line(
                "flowpack",
                &format!(
                    "the step did not stop within {}s: killing it",
                    grace.as_secs()
                ),
            )
            .await;
        if let Some(pg) = pgid {
            // SAFETY: as above.
            unsafe { libc::kill(-pg, libc::SIGKILL) };
        }
        let _ = child.wait().await;
    }
}
