//! Command-line definitions of `donmaic` (clap derive).

use crate::project::{LintLevel, level_refusal, resolve_code};
use crate::render::Format;
use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};
use donmai_grammar::Code;
use std::ffi::OsStr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

/// The exit status of a usage error, or of a path that cannot be read.
pub const USAGE_OR_IO: u8 = 2;

/// Reports a usage or I/O error on standard error; its exit status.
pub fn usage_error(message: &str) -> std::process::ExitCode {
    eprintln!("error: {message}");
    std::process::ExitCode::from(USAGE_OR_IO)
}

#[derive(Debug, Parser)]
#[command(
    name = "donmaic",
    version,
    about = "The donmai workflow compiler",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check workflow files and report diagnostics.
    ///
    /// Exit status: 0 no errors, 1 errors found (or warnings with
    /// `--deny warnings`), 2 usage error or a path that could not be read.
    Check(CheckArgs),
    /// Show the long explanation of a diagnostic code.
    Explain(ExplainArgs),
    /// Evaluate one expression.
    ///
    /// Exit status: 0 with a value, 1 when evaluation fails (syntax, type or
    /// run-time error), 2 for bad `--vars`.
    Eval(EvalArgs),
    /// Draw the step graph of a workflow (groups and loops included) with
    /// its branch labels, for docs and reviews.
    ///
    /// Exit status: 0 drawn, 1 the workflow has errors, 2 usage or I/O error.
    Graph(GraphArgs),
    /// Compile a workflow to a verified bytecode plan (`.dplan`).
    ///
    /// The workflow is checked first; a plan is written only when it has no
    /// errors. Exit status: 0 written, 1 the workflow has errors, 2 usage or
    /// I/O error.
    Build(BuildArgs),
    /// List a plan: every section, and every expression's bytecode with its
    /// source position.
    ///
    /// Exit status: 0 listed (the last line says whether the plan verifies),
    /// 2 the file is not a readable plan.
    Disasm(DisasmArgs),
    /// Rewrite workflow files in the canonical layout: two-space indentation,
    /// comments kept on their lines, quoting and key order as written (see
    /// docs/cli.md for the whole style).
    ///
    /// Files are replaced atomically. Exit status: 0 done, 1 with `--check`
    /// or `--diff` when some file is not formatted, 2 usage or I/O error or a
    /// file that is not valid YAML (left as it is).
    Fmt(RewriteArgs),
    /// Rewrite workflow/v1 files as workflow/v2 with minimal edits:
    /// `apiVersion`, `trigger.data.x` → `trigger.x`, `steps.x` → `nodes.x`,
    /// `${ e }` → `{{ e }}`. Files already at v2 are left as they are.
    ///
    /// Exit status: 0 done, 1 with `--check` or `--diff` when some file
    /// would change, 2 usage or I/O error, or a file that cannot be migrated
    /// (invalid YAML, no `apiVersion`, another version).
    Migrate(RewriteArgs),
    /// List the verbs a project may use: the installed plugins `donmai.toml`
    /// enables, with their verbs that still compile. `verbs show VERB`
    /// prints one verb's ports and docs.
    ///
    /// Exit status: 0 listed, 2 usage error or an unknown plugin or verb.
    Verbs(VerbsArgs),
    /// Work on a plugin before shipping it: `plugin check DIR` validates its
    /// manifest as `donmaic check` will read it; `plugin sign DIR --key KEY`
    /// signs it.
    Plugin(PluginArgs),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum VerbsFormat {
    /// Aligned text, one verb per line.
    #[default]
    Human,
    /// One JSON document.
    Json,
    /// The reference document `docs/verbs.md` is generated with (use with `--all`).
    Markdown,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct VerbsArgs {
    #[command(subcommand)]
    pub show: Option<VerbsCommand>,

    /// Only this plugin: `name` (every major) or `name@major`.
    #[arg(long, value_name = "PLUGIN")]
    pub plugin: Option<String>,

    /// Also plugins the project does not enable and verbs past their
    /// `deprecatedAfter` date.
    #[arg(long)]
    pub all: bool,

    #[arg(long, value_enum, default_value_t)]
    pub format: VerbsFormat,

    /// The project to list for: a folder or a workflow file inside it
    /// [default: the current directory].
    #[arg(long, value_name = "PATH")]
    pub project: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum VerbsCommand {
    /// One verb: description, side effects, auth scopes, routing, and every
    /// input and output with its type and description. Given an event
    /// type's name, its payload.
    Show {
        /// `plugin@major:verb`, a verb id (the highest installed major that
        /// has it), or an event type (`com.linear.Issue.created`).
        #[arg(value_name = "VERB")]
        verb: String,

        /// `human` prints markdown; `json` adds the schemas as written.
        #[arg(long, value_enum, default_value_t)]
        format: VerbsFormat,

        /// The project whose plugin folders to search [default: the
        /// current directory].
        #[arg(long, value_name = "PATH")]
        project: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Validate a plugin's manifest: every rule `donmaic check` applies
    /// when loading it (against the bundled plugins, so a name clash shows),
    /// its `idempotencyKey` templates type-checked against the inputs, and
    /// its signature, when it has one.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 errors found, 2 usage or
    /// I/O error.
    Check {
        /// The plugin folder (holding `plugin.yaml`) or the manifest file.
        #[arg(value_name = "PATH")]
        path: PathBuf,

        /// A public key (PKCS#8 PEM or DER) the signature must verify
        /// with; repeatable. Without one, a signature's hash is still
        /// checked against the content.
        #[arg(long, value_name = "FILE")]
        key: Vec<PathBuf>,

        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Sign every document of a plugin's manifest with an Ed25519 key,
    /// writing (or replacing) its `signature` block in place.
    ///
    /// The manifest must load without errors first. Exit status: 0 signed,
    /// 1 the manifest has errors, 2 usage or I/O error.
    Sign {
        /// The plugin folder (holding `plugin.yaml`) or the manifest file.
        #[arg(value_name = "PATH")]
        path: PathBuf,

        /// The private key (PKCS#8 PEM or DER, readable by its owner only).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

/// The arguments of the commands that rewrite files: `fmt` and `migrate`.
#[derive(Debug, Args)]
pub struct RewriteArgs {
    /// Workflow files, or folders searched recursively for workflow files
    /// as `check` does; `-` reads standard input and writes the result to
    /// standard output [default: .]
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Write nothing; list the files that would change, one per line
    /// (exit status 1 if there is any).
    #[arg(long, conflicts_with = "diff")]
    pub check: bool,

    /// Write nothing; print a unified diff of each file that would change
    /// (exit status 1 if there is any).
    #[arg(long)]
    pub diff: bool,
}

#[derive(Debug, Args)]
pub struct DisasmArgs {
    /// The `.dplan` file.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,

    /// `human` or `json` (one document).
    #[arg(long, value_enum, default_value_t = EvalFormat::Human)]
    pub format: EvalFormat,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: PathBuf,

    /// Where to write the plan [default: the workflow's path with the
    /// extension `.dplan`].
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Sign the plan with this Ed25519 private key (PKCS#8 PEM or DER, as
    /// `openssl genpkey -algorithm ed25519` writes it).
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: PathBuf,

    /// `mermaid` (renders on GitHub and in most Markdown tools) or `dot`
    /// (Graphviz).
    #[arg(long, value_enum, default_value_t = GraphFormatArg::Mermaid)]
    pub format: GraphFormatArg,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum GraphFormatArg {
    #[default]
    Mermaid,
    Dot,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The expression, e.g. `size(trigger.items) > 2 ? 'many' : 'few'`.
    #[arg(value_name = "EXPR")]
    pub expr: String,

    /// A JSON object whose keys become variables; JSON integers bind as
    /// `int`, other numbers as `double`.
    #[arg(long, value_name = "JSON")]
    pub vars: Option<String>,

    /// `human` prints the value and its type; `json` prints
    /// `{"type": ..., "value": ...}` or `{"error": {"code", "message"}}`.
    #[arg(long, value_enum, default_value_t = EvalFormat::Human)]
    pub format: EvalFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EvalFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Workflow files, or folders searched recursively for `*.yaml`/`*.yml`
    /// files whose `apiVersion` is `workflow/…` [default: .]
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Drop the diagnostics of a warning code (DN0202, 202 or
    /// unused-output). Repeatable; a later flag for the same code wins.
    #[arg(long, value_name = "CODE")]
    pub allow: Vec<String>,

    /// Report a code as a warning (undoes `deny` from donmai.toml).
    #[arg(long, value_name = "CODE")]
    pub warn: Vec<String>,

    /// Report a code as an error; `--deny warnings` makes any warning fail
    /// the run (exit status 1).
    #[arg(long, value_name = "CODE")]
    pub deny: Vec<String>,

    /// Apply every machine-applicable fix in place, then report what remains.
    #[arg(long, conflicts_with = "diff")]
    pub fix: bool,

    /// Print the fixes as a unified diff instead of applying them.
    #[arg(long, conflicts_with = "format")]
    pub diff: bool,

    /// When to colour the human format.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Files checked at once [default: the number of CPUs].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A code (`DN0012`, `dn12`, `12`) or its name (`invalid-value`).
    #[arg(value_name = "CODE", required_unless_present = "list")]
    pub code: Option<String>,

    /// List every code with its severity, name and summary.
    #[arg(long, conflicts_with = "code")]
    pub list: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// `NO_COLOR` (set and not empty) turns `auto` off; an explicit
    /// `--color always` still wins.
    pub fn enabled(self, stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stdout_is_terminal && no_color.is_none_or(OsStr::is_empty),
        }
    }
}

/// The lint flags of `check`, in command-line order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LintFlags {
    pub levels: Vec<(Code, LintLevel)>,
    pub deny_warnings: bool,
}

/// Reads `--allow`, `--warn` and `--deny` from the `check` subcommand's
/// matches, keeping their order so that a later flag wins.
pub fn lint_flags(matches: &ArgMatches) -> Result<LintFlags, String> {
    let mut ordered: Vec<(usize, LintLevel, String)> = Vec::new();
    for (id, level) in [
        ("allow", LintLevel::Allow),
        ("warn", LintLevel::Warn),
        ("deny", LintLevel::Deny),
    ] {
        let values = matches.get_many::<String>(id).into_iter().flatten();
        let indices = matches.indices_of(id).into_iter().flatten();
        for (index, value) in indices.zip(values) {
            ordered.push((index, level, value.clone()));
        }
    }
    ordered.sort_by_key(|(index, _, _)| *index);
    let mut flags = LintFlags::default();
    for (_, level, value) in ordered {
        if value == "warnings" {
            if level != LintLevel::Deny {
                return Err(format!(
                    "`--{level} warnings` is not supported: only `--deny warnings`"
                ));
            }
            flags.deny_warnings = true;
            continue;
        }
        let code = resolve_code(&value).ok_or_else(|| {
            format!("`{value}` is not a diagnostic code or name (see `donmaic explain --list`)")
        })?;
        if let Some(refusal) = level_refusal(code, level) {
            return Err(refusal);
        }
        flags.levels.push((code, level));
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn check_matches(args: &[&str]) -> Result<ArgMatches, clap::Error> {
        let mut argv = vec!["donmaic", "check"];
        argv.extend_from_slice(args);
        let matches = Cli::command().try_get_matches_from(argv)?;
        Cli::from_arg_matches(&matches)?;
        Ok(matches
            .subcommand_matches("check")
            .cloned()
            .expect("check subcommand"))
    }

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn later_lint_flags_win_and_names_resolve() {
        let matches = check_matches(&[
            "--deny",
            "unused-output",
            "--allow",
            "DN0202",
            "--deny",
            "warnings",
            "--warn",
            "128",
        ])
        .expect("parse");
        let flags = lint_flags(&matches).expect("valid flags");
        assert_eq!(
            flags.levels,
            [
                (Code::UNUSED_OUTPUT, LintLevel::Deny),
                (Code::UNUSED_OUTPUT, LintLevel::Allow),
                (Code::MAYBE_NULL, LintLevel::Warn),
            ]
        );
        assert!(flags.deny_warnings);
    }

    #[test]
    fn errors_cannot_be_allowed_and_unknown_codes_are_refused() {
        let matches = check_matches(&["--allow", "cycle"]).expect("parse");
        assert!(
            lint_flags(&matches)
                .expect_err("refused")
                .contains("is an error")
        );
        let matches = check_matches(&["--deny", "nope"]).expect("parse");
        assert!(
            lint_flags(&matches)
                .expect_err("refused")
                .contains("not a diagnostic code")
        );
        let matches = check_matches(&["--allow", "warnings"]).expect("parse");
        assert!(lint_flags(&matches).is_err());
        let matches = check_matches(&["--deny", "cycle"]).expect("parse");
        assert!(lint_flags(&matches).is_ok());
    }

    #[test]
    fn fix_and_diff_exclude_each_other_and_diff_excludes_format() {
        assert!(check_matches(&["--fix", "--diff"]).is_err());
        assert!(check_matches(&["--diff", "--format", "json"]).is_err());
        assert!(check_matches(&["--diff"]).is_ok());
    }

    #[test]
    fn rewrite_commands_take_paths_and_exclusive_modes() {
        for command in ["fmt", "migrate"] {
            let parse = |args: &[&str]| {
                let mut argv = vec!["donmaic", command];
                argv.extend_from_slice(args);
                Cli::try_parse_from(argv)
            };
            assert!(parse(&["a.yaml", "-", "--check"]).is_ok());
            assert!(parse(&["--diff"]).is_ok());
            assert!(parse(&["--check", "--diff"]).is_err());
        }
    }

    #[test]
    fn color_choice() {
        let set = Some(OsStr::new("1"));
        assert!(ColorChoice::Auto.enabled(true, None));
        assert!(ColorChoice::Auto.enabled(true, Some(OsStr::new(""))));
        assert!(!ColorChoice::Auto.enabled(true, set));
        assert!(!ColorChoice::Auto.enabled(false, None));
        assert!(ColorChoice::Always.enabled(false, set));
        assert!(!ColorChoice::Never.enabled(true, None));
    }
}
