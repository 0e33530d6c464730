//! The signals that stop a task — SIGTERM (Kubernetes deleting a pod, `kill`), SIGINT
//! (Ctrl-C) and SIGHUP (a closed terminal, a dropped SSH session) — seen as one "stop"
//! that every phase can wait for. `flowpack step` and `flowpack run` both use it.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A stop signal received, or not yet. Installed when a command starts, so that a signal
/// arriving in any phase is seen by the next one; clones share one state.
#[derive(Clone)]
pub struct StopSignals {
    received: watch::Receiver<Option<&'static str>>,
}

impl StopSignals {
    /// Installs the handlers for SIGTERM, SIGINT and SIGHUP (inside a tokio runtime). From
    /// then on none of them ends the process by itself: they are handled, once, here.
    pub fn install() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (tx, received) = watch::channel(None);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => "SIGHUP",
            };
            let _ = tx.send(Some(name));
            // Later signals change nothing; the sender stays alive so `received` never
            // mistakes a closed channel for a signal.
            std::future::pending::<()>().await;
        });
        Ok(Self { received })
    }

    /// The exit code of a command that `signal` (as [`StopSignals::received`] names it)
    /// stopped: 128 + its number, as a shell reports it (130 for SIGINT).
    pub fn exit_code(signal: &str) -> u8 {
        let number = match signal {
            "SIGHUP" => libc::SIGHUP,
            "SIGINT" => libc::SIGINT,
            _ => libc::SIGTERM,
        };
        128 + number as u8
    }

    /// The signal received so far, if any.
    pub fn pending(&self) -> Option<&'static str> {
        *self.received.borrow()
    }

    /// Waits for a stop signal (at once when one was received already); returns its name.
    pub async fn received(&self) -> &'static str {
        let mut rx = self.received.clone();
        let name = rx.wait_for(Option::is_some).await.ok().and_then(|n| *n);
        match name {
            Some(name) => name,
            None => std::future::pending().await,
        }
    }
}
