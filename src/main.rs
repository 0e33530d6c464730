//! The `flowpack` command: a thin CLI over `flowpack-core` and `flowpack-packager`.
//!
//! Data goes to stdout (`--json` for scripts); logs, warnings and progress to stderr.

#[macro_use]
mod output;

mod cli;
mod commands;
mod progress;
mod settings;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Exit code of a failed command (bad flow file, store failure, ...).
const EXIT_FAILURE: u8 = 1;
/// Exit code of a command line clap refuses.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if !e.use_stderr() {
                0
            } else if is_step() {
                // `flowpack step`'s own failures are 125, bad arguments too: its other
                // codes are the child's (docs/runtime.md, "Exit codes").
                flowpack_runtime::step::EXIT_STEP_ERROR as u8
            } else {
                EXIT_USAGE
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(args.verbose);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let cli::Command::Step(step) = args.command {
        let code = runtime.block_on(commands::step::run(*step));
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    match runtime.block_on(commands::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Library errors name their cause in their own message; print a cause only when
            // it adds something.
            let mut shown = e.to_string();
            // Never eprintln!: a closed terminal (SIGHUP) makes it panic.
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {shown}");
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !shown.contains(&text) {
                    let _ = writeln!(stderr, "  caused by: {text}");
                    shown = text;
                }
            }
            let code = e
                .downcast_ref::<commands::run::Stopped>()
                .map_or(EXIT_FAILURE, |s| s.code);
            ExitCode::from(code)
        }
    }
}

/// Whether the command line is `flowpack [-v…] step …` (read before clap accepted it).
fn is_step() -> bool {
    std::env::args_os()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_some_and(|a| a == "step")
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env(flowpack_core::env_vars::FLOWPACK_LOG)
        .unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
