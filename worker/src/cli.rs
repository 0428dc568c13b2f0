//! The `donmai` command line: subcommands and flags (clap derive). What each
//! does is in `docs/donmai-cli.md`; this module only parses.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "donmai",
    version,
    about = "Run donmai workflows on the durable engine, deliver signals, inspect runs and verify the audit chain",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a run of a workflow (or a built plan) and drive it until it ends;
    /// or, with --resume, continue every unfinished run in the store.
    Run(RunArgs),
    /// Deliver a signal (an event) to the gates waiting in a store, also while
    /// another process drives the run.
    Signal(SignalArgs),
    /// List the runs in a store, or show one run with its steps and outputs.
    Runs(RunsArgs),
    /// Cancel a run: its open steps stop, its gates and timers are removed,
    /// and it is never resumed.
    Cancel(CancelArgs),
    /// Verify or export the store's audit chain.
    Audit(AuditArgs),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line (NDJSON).
    Json,
}

#[derive(Debug, Args)]
pub struct StoreArg {
    /// The store directory [default: `.donmai/state` under the project root:
    /// the folder of the nearest `donmai.toml` above the workflow (or the
    /// current directory), else that folder itself]
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A workflow file (`.yaml`, compiled and checked first) or a built plan
    /// (`.dplan`, decoded and verified).
    #[arg(value_name = "WORKFLOW|PLAN", required_unless_present = "resume")]
    pub workflow: Option<PathBuf>,

    /// Continue every unfinished run in the store instead of starting one.
    #[arg(long, conflicts_with_all = ["workflow", "trigger", "payload", "trust_key"])]
    pub resume: bool,

    /// The trigger that starts the run [default: the workflow's only trigger].
    #[arg(long, value_name = "ID")]
    pub trigger: Option<String>,

    /// The trigger's payload: JSON text, or `@FILE` to read it from a file
    /// (`@-`: standard input) [default: `{}`].
    #[arg(long, value_name = "JSON|@FILE")]
    pub payload: Option<String>,

    #[command(flatten)]
    pub store: StoreArg,

    /// Recorded verb answers for a dry run; with fixtures, a verb with no
    /// matching fixture fails instead of reaching a real endpoint.
    #[arg(long, value_name = "FILE")]
    pub fixtures: Option<PathBuf>,

    /// Where a plugin's verbs are served over HTTP: `PLUGIN=URL` or
    /// `PLUGIN@MAJOR=URL`. Overrides the `endpoint` the plugin's manifest
    /// declares (manifests of the project around the workflow or plan; for
    /// --resume, around the current directory). Repeatable.
    #[arg(long = "plugin-endpoint", value_name = "PLUGIN=URL")]
    pub plugin_endpoints: Vec<String>,

    /// How events are printed on standard output.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,

    /// Return (status 0) as soon as the runs wait only on gates for
    /// signals; `donmai run --resume` continues them later.
    #[arg(long)]
    pub detach: bool,

    /// Dry-run time: whenever nothing else can advance, the clock jumps to
    /// the next due timer, so timeouts, backoffs and waits take no time.
    #[arg(long)]
    pub virtual_time: bool,

    /// A `.dplan` must be signed by one of these public keys (PEM or DER).
    /// Repeatable.
    #[arg(long = "trust-key", value_name = "KEY")]
    pub trust_key: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SignalArgs {
    /// The event type, e.g. `com.github.workflow_run.completed`.
    #[arg(value_name = "EVENT_TYPE")]
    pub event_type: String,

    /// The event's data: JSON text, or `@FILE` (`@-`: standard input).
    #[arg(long, value_name = "JSON|@FILE", default_value = "{}")]
    pub data: String,

    /// Only this run's gates may take the signal (sets the data's `runId`).
    #[arg(long = "run", value_name = "RUN_ID")]
    pub run: Option<String>,

    /// The handle a gate with named handles takes (sets the data's `handle`).
    #[arg(long, value_name = "HANDLE")]
    pub handle: Option<String>,

    #[command(flatten)]
    pub store: StoreArg,

    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Show this run with its steps; without it, list every run.
    #[arg(value_name = "RUN_ID")]
    pub run: Option<String>,

    #[command(flatten)]
    pub store: StoreArg,

    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[arg(value_name = "RUN_ID")]
    pub run: String,

    #[command(flatten)]
    pub store: StoreArg,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the chain of a store, or of an export file (offline).
    Verify(AuditVerifyArgs),
    /// Write the chain, its events and the store's public keys to a file
    /// (JSON Lines) for offline verification.
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Verify this export instead of a store.
    #[arg(long, value_name = "FILE", conflicts_with = "store")]
    pub file: Option<PathBuf>,

    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Trust only these public keys (PEM or DER) instead of the keys the
    /// store or the export lists. Repeatable.
    #[arg(long = "key", value_name = "PUBKEY")]
    pub keys: Vec<PathBuf>,

    /// The chain must extend this earlier report: `LENGTH:HEADHASH`, as a
    /// previous `audit verify` printed it. Detects entries cut off the end.
    #[arg(long, value_name = "LENGTH:HASH")]
    pub anchor: Option<String>,

    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    #[command(flatten)]
    pub store: StoreArg,

    /// The file to write (`-`: standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
}
