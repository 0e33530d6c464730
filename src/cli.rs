//! The command line, as clap sees it. Nothing here does work: `settings` resolves these
//! raw values, `commands` acts on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// flowpack: take a multi-step ML flow from a laptop to Kubeflow Pipelines without
/// rebuilding a container image for every change.
#[derive(Debug, Parser)]
#[command(name = "flowpack", version, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug); FLOWPACK_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a flow file and print its graph.
    Check(CheckArgs),
    /// Pack the flow's code and Python env and push them to the store.
    Push(PushArgs),
    /// Fetch a package from the store, verify it, and extract its layers.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
pub struct StoreArg {
    /// The store: a folder, file://, s3://BUCKET/PREFIX[?endpoint=URL&region=R&path_style=true],
    /// gs://BUCKET/PREFIX or az://CONTAINER/PREFIX[?account=A]. Default: FLOWPACK_STORE, else
    /// the folder .flowpack/ beside the flow file (the current folder for commands without one).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The flow file.
    pub flow: PathBuf,
    /// Print the normalized flow as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The flow file.
    pub flow: PathBuf,
    #[command(flatten)]
    pub store: StoreArg,
    /// Name of the version to create. Default: the UTC time, 20261122T120000.123Z.
    #[arg(long, value_name = "V")]
    pub version_name: Option<String>,
    /// Rebuild the env layer from its requirements even when the local cache has it.
    #[arg(long)]
    pub rebuild_env: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The package: sha256:<64 hex>.
    pub package: String,
    #[command(flatten)]
    pub store: StoreArg,
    /// Folder to create; the code layer goes to DIR/code, the env layer to DIR/env.
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}
