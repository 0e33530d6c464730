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
    /// Run the whole flow on this machine (a local dry-run through `flowpack step`).
    Run(RunArgs),
    /// Run one task: the entrypoint of every KFP pod (written by the compiler, not by hand).
    Step(Box<StepArgs>),
    /// Push the flow and compile it for an engine: a Kubeflow Pipelines pipeline (IR YAML),
    /// or an Argo WorkflowTemplate with `--target argo`.
    Compile(CompileArgs),
    /// Start a run of the deployed flow on KFP or Argo; prints its run id (kfp-…, argo-…).
    Trigger(TriggerArgs),
    /// Run the deployed flow on a cron schedule (a KFP recurring run, an Argo
    /// CronWorkflow); prints its id.
    Schedule(ScheduleArgs),
    /// List the schedules (KFP recurring runs, Argo CronWorkflows) of one flow or all, or
    /// delete, enable or disable one.
    Schedules(SchedulesArgs),
    /// The state of a KFP or Argo run.
    Status(EngineRunArgs),
    /// Stop a KFP or Argo run.
    Terminate(EngineRunArgs),
    /// List runs, newest first.
    Runs(RunsArgs),
    /// Show a run: its tasks, attempts, status, durations and artifacts.
    Show(ShowArgs),
    /// Print the logs of a task.
    Logs(LogsArgs),
    /// Work with artifacts.
    #[command(subcommand)]
    Artifacts(ArtifactsCommand),
    /// Start a new run that reuses the committed tasks of a failed one.
    Resume(ResumeArgs),
    /// Serve a read-only web UI of the store's runs: graphs, timelines, logs, artifacts.
    Ui(UiArgs),
    /// Answer the Python Client API's reads of one store: a JSON request per line on stdin,
    /// an answer each on stdout (docs/python.md). Not for people.
    #[command(hide = true)]
    Client(ClientArgs),
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The flow file.
    pub flow: PathBuf,
    /// The file to write; `-` for stdout. Default: pipeline.yaml (KFP) or
    /// workflow-template.yaml (Argo).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
    /// The flowpack command inside the step images.
    #[arg(long, value_name = "CMD", default_value = "flowpack")]
    pub command: String,
    /// The engine to compile for: a KFP pipeline (IR YAML), or an Argo WorkflowTemplate
    /// (and a CronWorkflow for a scheduled flow).
    #[arg(long, value_enum, default_value_t = Target::Kfp)]
    pub target: Target,
    #[command(flatten)]
    pub local: AllowLocal,
}

/// The opt-in to a pipeline only this machine can run.
#[derive(Debug, Args)]
pub struct AllowLocal {
    /// Compile even when the store (a folder, a loopback endpoint) or a step's image
    /// (localhost/…) is on this machine only, which a cluster's pods cannot reach: for KFP's
    /// local orchestrator, or a cluster that mounts the folder or has the image preloaded.
    #[arg(long)]
    pub allow_local: bool,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// The flow file (its name names the pipeline; its parameters type the values).
    pub flow: PathBuf,
    /// A parameter value, NAME=VALUE (repeatable); others take their defaults.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// The experiment (created when missing).
    #[arg(long, value_name = "NAME", default_value = "Default")]
    pub experiment: String,
    /// The pipeline version to run (default: the newest).
    #[arg(long, value_name = "V")]
    pub version_name: Option<String>,
    /// Resume this run (read from the store): its committed tasks before the failed steps
    /// (or --from) are adopted instead of run; its parameter values are the defaults.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// With --resume: run again from this step (default: the steps that failed).
    #[arg(long, value_name = "STEP", requires = "resume")]
    pub from: Option<String>,
    /// Print the run request (parameters, the resume plan) as JSON; create no run.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub store: StoreArg,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub target: TargetArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The flow file (its name names the pipeline; its parameters type the values).
    pub flow: PathBuf,
    /// Standard 5-field cron, `minute hour day-of-month month day-of-week`, or a macro like
    /// `@daily`. Default: the flow's own `schedule`.
    #[arg(long, value_name = "CRON")]
    pub cron: Option<String>,
    /// The time zone the cron is meant in. KFP reads every cron in its cluster's one zone
    /// (FLOWPACK_KFP_TIMEZONE says which, default UTC): another zone is refused. Argo reads
    /// each schedule in its own zone.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// A parameter value, NAME=VALUE (repeatable); others take their defaults, and a
    /// parameter without one must be given.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Runs of this schedule at once (KFP allows 1-10; Argo: 1 starts no run while one is
    /// running, more allows any number).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_concurrency: u32,
    /// Also start the runs missed while the schedule was disabled or behind (KFP only).
    #[arg(long)]
    pub catchup: bool,
    /// The pipeline version to run (default: the newest when the schedule is made; KFP
    /// only: Argo runs the flow's one WorkflowTemplate).
    #[arg(long, value_name = "V")]
    pub version_name: Option<String>,
    /// The schedule's name: one recurring run per flow and name (default: the flow's name);
    /// scheduling again replaces it.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The KFP experiment (created when missing).
    #[arg(long, value_name = "NAME", default_value = "Default")]
    pub experiment: String,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub target: TargetArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub command: Option<SchedulesCommand>,
    /// Only the schedules of this flow (a flow file, or a flow name).
    pub flow: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub target: TargetArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Delete a schedule (the runs it started stay).
    Delete(ScheduleIdArgs),
    /// Enable a schedule.
    Enable(ScheduleIdArgs),
    /// Disable a schedule: it starts no runs until enabled.
    Disable(ScheduleIdArgs),
}

#[derive(Debug, Args)]
pub struct ScheduleIdArgs {
    /// The schedule's id (as `schedule` and `schedules` print it).
    pub id: String,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub target: TargetArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EngineRunArgs {
    /// The run: kfp-<uuid> (or the bare uuid) on KFP, argo-<workflow uid> on Argo.
    pub run: String,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this flow.
    pub flow: Option<String>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Print the URL of the store (as resolved: a local store as its absolute folder) and
    /// exit: how the Python package learns the default store without a rule of its own.
    #[arg(long)]
    pub print_store: bool,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// The port to listen on (0: any free port; the address is printed).
    #[arg(long, value_name = "N", default_value_t = 8421)]
    pub port: u16,
    /// The address to listen on. The UI has no login: anyone who can reach it reads every
    /// run, log and artifact of the store, so it listens on this machine only by default.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Open the UI in the default browser once it listens.
    #[arg(long)]
    pub open: bool,
    /// Memory for caching what the store cannot change (runs that ended, logs, packages),
    /// in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub cache_mib: u64,
    /// Print the address as JSON (`{"url": …}`) once listening.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The run id (or FLOW/RUN).
    pub run: String,
    #[command(flatten)]
    pub store: StoreArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// RUN/STEP or RUN/STEP/TASK (task 0 by default); RUN may be written FLOW/RUN.
    pub target: String,
    /// The attempt (default: the newest; with --follow, every attempt from the first).
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
    /// Keep printing new lines until the task is final, across its retries.
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub store: StoreArg,
    /// Print JSON: one object per line with time, stream and text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Download an artifact of a task's newest committed attempt.
    Get(ArtifactGetArgs),
}

#[derive(Debug, Args)]
pub struct ArtifactGetArgs {
    /// RUN/STEP/NAME (task 0) or RUN/STEP/TASK/NAME; RUN may be written FLOW/RUN.
    pub target: String,
    /// Where to write it (a file, or a folder for folder artifacts). Default: ./NAME;
    /// `-` writes a file artifact to stdout.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArg,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run to resume (RUN or FLOW/RUN).
    pub run: String,
    /// Run again from this step (default: the steps that failed); tasks before it are reused.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// The flow file whose current code runs the rest (pushed as `run` pushes it). Without
    /// it, the origin run's own package runs again.
    pub flow: Option<PathBuf>,
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// How a run executes (shared by `run` and `resume`).
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Tasks at once. Default: the flow's max_workers (16).
    #[arg(long, value_name = "N")]
    pub max_workers: Option<usize>,
    /// Run every task in its step's image through podman, with the arguments and
    /// environment a KFP pod gets (FLOWPACK_PODMAN names podman when not on PATH).
    #[arg(long)]
    pub containers: bool,
    /// Print the run summary as JSON on stdout (task output still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow file.
    pub flow: PathBuf,
    /// A parameter value, NAME=VALUE (repeatable); others take their defaults.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Run every task: reuse nothing from the step cache (tasks still enter it).
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
}

#[derive(Debug, Args)]
pub struct StepArgs {
    /// The store (as a URL; no default: the compiler always writes it).
    #[arg(long, value_name = "URL")]
    pub store: String,
    /// The package to run, sha256:<64 hex>.
    #[arg(long, value_name = "DIGEST")]
    pub package: String,
    /// The run id.
    #[arg(
        long,
        value_name = "RUN",
        required_unless_present = "kfp_run_uuid",
        conflicts_with = "kfp_run_uuid"
    )]
    pub run: Option<String>,
    /// On KFP: the pipeline job's uuid; the run id is kfp-<uuid>.
    #[arg(long, value_name = "UUID")]
    pub kfp_run_uuid: Option<String>,
    /// The step.
    #[arg(long, value_name = "STEP")]
    pub step: String,
    /// The task id: 0, or the foreach indices (3, 3.1). Default: the --task-part values
    /// joined by '.', else 0.
    #[arg(long, value_name = "TASK", conflicts_with = "task_parts")]
    pub task: Option<String>,
    /// One foreach level's index (repeatable, outermost first): the task id is their join
    /// with '.', the split index the last one (KFP passes each loop's item on its own).
    #[arg(long = "task-part", value_name = "N")]
    pub task_parts: Vec<String>,
    /// Find the parent tasks in the store (the join of a foreach: every committed task of
    /// the body's last step; a step after switch cases: the case that ran).
    #[arg(long)]
    pub parents_from_store: bool,
    /// A parent task whose artifacts are restored, STEP/TASK (repeatable).
    #[arg(long = "parent", value_name = "STEP/TASK")]
    pub parents: Vec<String>,
    /// Parent tasks as a JSON list of "STEP/TASK" (KFP's collected outputs of a foreach).
    #[arg(long, value_name = "JSON")]
    pub parents_json: Option<String>,
    /// A parent step whose task has this task's id (the step before, inside a foreach).
    #[arg(long, value_name = "STEP")]
    pub same_task_parent: Vec<String>,
    /// This task's index in its foreach list.
    #[arg(long, value_name = "N")]
    pub split_index: Option<u64>,
    /// A parameter value, NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Where to write a KFP output parameter, NAME=PATH: task, foreach, switch or branch.
    #[arg(long = "output-param", value_name = "NAME=PATH")]
    pub output_params: Vec<String>,
    /// A parameter as two arguments, NAME VALUE (KFP placeholders fill whole arguments).
    #[arg(long = "kfp-param", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub kfp_params: Vec<String>,
    /// An output parameter file as two arguments, NAME PATH.
    #[arg(long = "kfp-output", num_args = 2, value_names = ["NAME", "PATH"], action = clap::ArgAction::Append)]
    pub kfp_outputs: Vec<String>,
    /// Seconds the child gets between SIGTERM and SIGKILL.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub grace: u64,
    /// The image this task runs in (recorded).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Resume: "" (none) or {"run": ORIGIN, "redo": [STEP, …]}; a task of a step not in
    /// redo with a committed attempt in ORIGIN is adopted from it instead of run.
    #[arg(long, value_name = "SPEC")]
    pub resume: Option<String>,
}

#[derive(Debug, Args)]
pub struct StoreArg {
    /// The store: a folder, file://, s3://BUCKET/PREFIX[?endpoint=URL&region=R&path_style=true],
    /// gs://BUCKET/PREFIX or az://CONTAINER/PREFIX[?account=A]. Default: FLOWPACK_STORE, else
    /// the nearest .flowpack/ folder from the current folder upward (run, push and compile
    /// make ./.flowpack when there is none; reading commands never make one).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

/// Where the engines are: Kubeflow Pipelines, Argo Workflows, or both.
#[derive(Debug, Args)]
pub struct EngineArgs {
    #[command(flatten)]
    pub kfp: KfpArgs,
    #[command(flatten)]
    pub argo: ArgoArgs,
}

/// Which engine, when both are given.
#[derive(Debug, Args)]
pub struct TargetArg {
    /// The engine to talk to when both KFP and Argo are given (default: the one given).
    #[arg(long, value_enum)]
    pub target: Option<Target>,
}

/// Where Argo Workflows is. The bearer token comes from FLOWPACK_ARGO_TOKEN only.
#[derive(Debug, Args)]
pub struct ArgoArgs {
    /// The Argo Server, e.g. https://argo-server.argo:2746; with `push`, also deploy there.
    #[arg(long, env = "FLOWPACK_ARGO_SERVER", value_name = "URL")]
    pub argo_server: Option<String>,
    /// The namespace of the WorkflowTemplates and Workflows.
    #[arg(
        long,
        env = "FLOWPACK_ARGO_NAMESPACE",
        value_name = "NS",
        default_value = "argo"
    )]
    pub argo_namespace: String,
}

/// Where Kubeflow Pipelines is. The bearer token comes from FLOWPACK_KFP_TOKEN only.
#[derive(Debug, Args)]
pub struct KfpArgs {
    /// The KFP API, e.g. http://ml-pipeline.kubeflow:8888; with `push`, also deploy there.
    #[arg(long, env = "FLOWPACK_KFP_URL", value_name = "URL")]
    pub kfp_url: Option<String>,
    /// The KFP namespace (multi-user installs).
    #[arg(long, env = "FLOWPACK_KFP_NAMESPACE", value_name = "NS")]
    pub kfp_namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The flow file.
    pub flow: PathBuf,
    /// Print the normalized flow as JSON.
    #[arg(long)]
    pub json: bool,
    /// Fail when the flow cannot compile for this target (without it, KFP's and Argo's
    /// rules are warnings: a flow that only `flowpack run` runs is still valid).
    #[arg(long, value_enum)]
    pub target: Option<Target>,
}

/// A workflow engine flowpack compiles for and deploys to (`compile --target`), and holds a
/// flow to (`check --target`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Kubeflow Pipelines.
    Kfp,
    /// Argo Workflows.
    Argo,
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
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub local: AllowLocal,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The package: sha256:<64 hex>, or its first 12 or more hex digits (as `run` and `push`
    /// print them).
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
