//! Running the user's command as a child process: its environment (and the budget that
//! keeps it startable), its output, its timeout, and a stop signal (TERM, INT, HUP) turned
//! into SIGTERM to its whole process group, then SIGKILL after a grace period.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use flowpack_core::flow::Run;
use tokio::process::Command;

use super::StopSignals;
use super::logs::{LogShipper, pump};

/// The longest parameter value (or foreach item) the child also gets as a variable;
/// longer ones are only in the `$FLOWPACK_PARAMS` file (or the foreach list).
pub const ENV_VALUE_MAX: usize = 32 * 1024;
/// The most all those variables hold together (names and values): far below the kernel's
/// limit on a new process's arguments and environment (2 MiB with the usual 8 MiB stack).
pub const ENV_VALUES_TOTAL: usize = 256 * 1024;

/// How much of the child's environment values from the flow's data may take: each at most
/// [`ENV_VALUE_MAX`] bytes, all together at most [`ENV_VALUES_TOTAL`] (first come, first
/// served: the foreach item, then parameters by name).
pub(super) struct EnvBudget {
    left: usize,
}

impl Default for EnvBudget {
    fn default() -> Self {
        Self {
            left: ENV_VALUES_TOTAL,
        }
    }
}

impl EnvBudget {
    /// `value` as the variable's text (strings as they are, others as JSON) if it fits, and
    /// taken from the budget; else why not.
    pub(super) fn take(&mut self, var: &str, value: &serde_json::Value) -> Result<String, String> {
        let text = match value {
            serde_json::Value::String(s) if s.len() <= ENV_VALUE_MAX => Some(s.clone()),
            serde_json::Value::String(_) => None,
            other => json_within(other, ENV_VALUE_MAX),
        }
        .ok_or_else(|| format!("it is longer than {ENV_VALUE_MAX} bytes"))?;
        // NAME=VALUE and its terminating NUL.
        let cost = var.len() + text.len() + 2;
        if cost > self.left {
            return Err(format!(
                "the parameter variables would pass {ENV_VALUES_TOTAL} bytes in all"
            ));
        }
        self.left -= cost;
        Ok(text)
    }
}

/// `value` as compact JSON, if that is at most `max` bytes (never more is written).
fn json_within(value: &serde_json::Value, max: usize) -> Option<String> {
    struct Capped(Vec<u8>, usize);
    impl std::io::Write for Capped {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0.len() + buf.len() > self.1 {
                return Err(std::io::ErrorKind::FileTooLarge.into());
            }
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Capped(Vec::new(), max);
    serde_json::to_writer(&mut out, value).ok()?;
    String::from_utf8(out.0).ok()
}

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
            let path = env
                .get("PATH")
                .cloned()
                .or_else(|| std::env::var("PATH").ok())
                .unwrap_or_default();
            return not_started(run, &e, &path);
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

/// Why `run` could not start, as a user can act on it: exit 127 when the program is not
/// there, 126 when it is but cannot be executed.
fn not_started(run: &Run, e: &std::io::Error, path: &str) -> Ended {
    let not_found = e.kind() == std::io::ErrorKind::NotFound;
    let code = if not_found { 127 } else { 126 };
    let msg = match run {
        Run::Exec(args) => {
            let program = &args[0];
            let looked = if program.starts_with('/') {
                "an absolute path".to_string()
            } else if program.contains('/') {
                "a path in the code folder".to_string()
            } else {
                format!("looked up on PATH={path}")
            };
            if not_found {
                format!("command not found: {program} (the step's `run`, exec form, {looked})")
            } else {
                format!("cannot execute {program}: {e} (the step's `run`, exec form, {looked})")
            }
        }
        Run::Shell(_) => format!("cannot start the step's shell /bin/sh: {e}"),
    };
    Ended::NotStarted(code, msg)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_budget_takes_values_that_fit_and_says_why_others_do_not() {
        let mut b = EnvBudget::default();
        assert_eq!(b.take("A", &json!("text")), Ok("text".to_string()));
        assert_eq!(b.take("B", &json!([1, 2])), Ok("[1,2]".to_string()));
        let long = "x".repeat(ENV_VALUE_MAX + 1);
        let too_long = Err(format!("it is longer than {ENV_VALUE_MAX} bytes"));
        assert_eq!(b.take("C", &json!(long)), too_long);
        assert_eq!(b.take("D", &json!([long])), too_long);
        // Values of exactly the maximum fill the rest of the total, then none fits.
        let max = "y".repeat(ENV_VALUE_MAX);
        let fit = (0..8)
            .take_while(|i| b.take(&format!("P{i}"), &json!(max)).is_ok())
            .count();
        assert_eq!(fit, 7, "7 × 32 KiB + the first two fit in 256 KiB");
        assert_eq!(
            b.take("E", &json!(max)),
            Err(format!(
                "the parameter variables would pass {ENV_VALUES_TOTAL} bytes in all"
            ))
        );
        assert_eq!(b.take("F", &json!(1)), Ok("1".to_string()));
    }
}
