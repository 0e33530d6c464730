//! One module per command; each turns resolved settings into library calls and prints.

mod argo;
mod check;
mod compile;
mod engine;
mod fetch;
mod inspect;
mod kfp;
mod push;
pub mod run;
mod schedule;
pub mod step;
mod ui;

use anyhow::Result;
pub(crate) use flowpack_packager::human_bytes as bytes;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Check(a) => check::run(a),
        Command::Push(a) => push::run(a).await,
        Command::Fetch(a) => fetch::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Compile(a) => compile::run(a).await,
        Command::Trigger(a) => engine::trigger(a).await,
        Command::Schedule(a) => engine::schedule(a).await,
        Command::Schedules(a) => engine::schedules(a).await,
        Command::Status(a) => engine::status(a).await,
        Command::Terminate(a) => engine::terminate(a).await,
        Command::Runs(a) => inspect::runs(a).await,
        Command::Show(a) => inspect::show(a).await,
        Command::Logs(a) => inspect::logs(a).await,
        Command::Artifacts(crate::cli::ArtifactsCommand::Get(a)) => inspect::artifact_get(a).await,
        Command::Resume(a) => run::resume(a).await,
        Command::Client(a) => inspect::client(a).await,
        Command::Ui(a) => ui::run(a).await,
        Command::Step(_) => unreachable!("main runs `step` itself: it owns the exit code"),
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Splits `NAME=VALUE` arguments.
fn key_values(args: &[String], what: &str) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("{what} '{a}' must be written NAME=VALUE"),
        })
        .collect()
}
