use clap::{CommandFactory, FromArgMatches};
use donmai_compiler::cli::{
    BuildArgs, CheckArgs, Cli, Command, DisasmArgs, EvalArgs, EvalFormat, ExplainArgs, GraphArgs,
    GraphFormatArg, RewriteArgs, USAGE_OR_IO, lint_flags, usage_error as fail,
};
use donmai_compiler::driver::{CheckOptions, FixMode, exit_code, run_check};
use donmai_compiler::render::{Format, RenderOptions, render};
use donmai_compiler::report::plural;
use donmai_compiler::{build, check, explain};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

// The checker allocates a tree per file; mimalloc makes that measurably
// cheaper than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Writes to stdout, ignoring a closed pipe (`donmaic check | head`).
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    match cli.command {
        Command::Check(args) => {
            let Some(check_matches) = matches.subcommand_matches("check") else {
                return fail("internal error: no matches for `check`");
            };
            match lint_flags(check_matches) {
                Ok(flags) => run(args, flags),
                Err(message) => fail(&message),
            }
        }
        Command::Explain(args) => explain_command(args),
        Command::Eval(args) => eval_command(args),
        Command::Graph(args) => graph_command(args),
        Command::Build(args) => build_command(args),
        Command::Disasm(args) => disasm_command(args),
        Command::Fmt(args) => rewrite_command(&args, Rewrite::Format),
        Command::Migrate(args) => rewrite_command(&args, Rewrite::Migrate),
        Command::Verbs(args) => verbs_command(args),
        Command::Plugin(args) => donmai_compiler::plugin_tool::run(args),
    }
}

/// The project at `path` (the current directory by default) and the
/// plugins it sees; manifest problems are mentioned, not fatal, since the
/// listing is still useful.
fn project_plugins(
    path: Option<&std::path::Path>,
) -> Result<
    (
        donmai_compiler::project::Project,
        std::sync::Arc<donmai_compiler::plugins::LoadedPlugins>,
    ),
    String,
> {
    let start = path.unwrap_or(std::path::Path::new("."));
    let project = donmai_compiler::project::Project::discover(start).map_err(|e| e.to_string())?;
    let loaded = donmai_compiler::plugins::registry_for(&project);
    let broken = loaded
        .reports
        .iter()
        .filter(|r| r.diagnostics.iter().any(|d| d.is_error()))
        .count();
    if broken > 0 {
        eprintln!(
            "warning: {} has problems; `donmaic check` or `donmaic plugin check` shows them",
            plural(broken, "plugin manifest")
        );
    }
    Ok((project, loaded))
}

fn verbs_command(args: donmai_compiler::cli::VerbsArgs) -> ExitCode {
    use donmai_compiler::catalog;
    use donmai_compiler::cli::{VerbsCommand, VerbsFormat};
    if let Some(VerbsCommand::Show {
        verb,
        format,
        project,
    }) = args.show
    {
        let (_, loaded) = match project_plugins(project.as_deref()) {
            Ok(found) => found,
            Err(message) => return fail(&message),
        };
        // An event type's name (`com.linear.Issue.created`) shows its
        // payload: what `trigger.*` and a gate waiting for it read.
        if !verb.contains(':')
            && let Some((plugin, event)) = loaded.registry.event(&verb)
        {
            match format {
                VerbsFormat::Json => emit(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&catalog::event_json(plugin, event))
                        .unwrap_or_default()
                )),
                VerbsFormat::Human | VerbsFormat::Markdown => emit(&format!(
                    "{}\n",
                    catalog::event_markdown(plugin, event).trim_end()
                )),
            }
            return ExitCode::SUCCESS;
        }
        return match catalog::find_verb(&loaded.registry, &verb) {
            Ok((plugin, verb)) => {
                match format {
                    VerbsFormat::Json => emit(&format!(
                        "{}\n",
                        serde_json::to_string_pretty(&catalog::verb_json(plugin, verb))
                            .unwrap_or_default()
                    )),
                    VerbsFormat::Human | VerbsFormat::Markdown => emit(&format!(
                        "{}\n",
                        catalog::verb_markdown(
                            plugin,
                            verb,
                            Some(donmai_compiler::check::palette::verb_status(verb))
                        )
                        .trim_end()
                    )),
                }
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }
    let (project, loaded) = match project_plugins(args.project.as_deref()) {
        Ok(found) => found,
        Err(message) => return fail(&message),
    };
    if args.format == VerbsFormat::Markdown {
        if args.plugin.is_some() || !args.all {
            return fail(
                "`--format markdown` writes the whole reference: use it with `--all` and without `--plugin`",
            );
        }
        emit(&catalog::reference_markdown(&loaded.registry));
        return ExitCode::SUCCESS;
    }
    let entries = catalog::palette(&project, &loaded.registry, args.plugin.as_deref(), args.all);
    if entries.is_empty()
        && let Some(only) = &args.plugin
    {
        let installed = loaded
            .registry
            .plugins()
            .any(|p| &p.name == only || &p.pin() == only);
        return fail(&if installed {
            format!("plugin `{only}` is not enabled in donmai.toml (`--all` lists it anyway)")
        } else {
            format!("no installed plugin `{only}`")
        });
    }
    match args.format {
        VerbsFormat::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&catalog::palette_json(&entries)).unwrap_or_default()
        )),
        _ => emit(&catalog::palette_text(&entries)),
    }
    ExitCode::SUCCESS
}

fn run(args: CheckArgs, flags: donmai_compiler::cli::LintFlags) -> ExitCode {
    let fix = if args.fix {
        FixMode::Apply
    } else if args.diff {
        FixMode::Diff
    } else {
        FixMode::Report
    };
    let options = CheckOptions {
        paths: args.paths,
        lint_levels: flags.levels,
        fix,
        threads: args.jobs,
    };
    let run = run_check(&options, &check::check_file);
    let report = &run.report;
    for failure in &report.failures {
        eprintln!("error: {}: {}", failure.path.display(), failure.message);
    }
    let summary = report.summary();
    match fix {
        FixMode::Diff => {
            emit(&run.diffs.concat());
            eprintln!(
                "{} in {} would be applied; then {}",
                plural(run.fixes_applied, "fix"),
                plural(run.files_fixed, "file"),
                donmai_compiler::render::human::summary_line(
                    report,
                    &RenderOptions {
                        color: false,
                        deny_warnings: flags.deny_warnings
                    }
                )
            );
        }
        FixMode::Apply | FixMode::Report => {
            if fix == FixMode::Apply && run.fixes_applied > 0 {
                eprintln!(
                    "applied {} in {}",
                    plural(run.fixes_applied, "fix"),
                    plural(run.files_fixed, "file")
                );
            }
            let color = args.format == Format::Human
                && args.color.enabled(
                    std::io::stdout().is_terminal(),
                    std::env::var_os("NO_COLOR").as_deref(),
                );
            let options = RenderOptions {
                color,
                deny_warnings: flags.deny_warnings,
            };
            emit(&render(report, args.format, &options));
            if summary.files == 0 && report.failures.is_empty() && args.format == Format::Human {
                eprintln!("note: no workflow files found");
            }
        }
    }
    ExitCode::from(exit_code(report, flags.deny_warnings))
}

fn explain_command(args: ExplainArgs) -> ExitCode {
    if args.list {
        emit(&explain::list());
        return ExitCode::SUCCESS;
    }
    let Some(query) = args.code else {
        return fail("name a code, or use `--list`");
    };
    match explain::lookup(&query) {
        Ok(code) => match explain::doc(code) {
            Some(doc) => {
                emit(doc);
                ExitCode::SUCCESS
            }
            None => fail(&format!("{code} has no documentation")),
        },
        Err(message) => fail(&message),
    }
}

fn eval_command(args: EvalArgs) -> ExitCode {
    let vars = match args
        .vars
        .as_deref()
        .map(donmai_compiler::eval::vars_from_json)
    {
        None => Default::default(),
        Some(Ok(vars)) => vars,
        Some(Err(message)) => return fail(&message),
    };
    let result = donmai_compiler::eval::eval_text(&args.expr, &vars);
    match (args.format, result) {
        (EvalFormat::Json, Ok(value)) => {
            let document = serde_json::json!({"type": value.type_name(), "value": value.to_json()});
            emit(&format!("{document}\n"));
            ExitCode::SUCCESS
        }
        (EvalFormat::Human, Ok(value)) => {
            emit(&format!("{} ({})\n", value.to_json(), value.type_name()));
            ExitCode::SUCCESS
        }
        (EvalFormat::Json, Err(error)) => {
            let document =
                serde_json::json!({"error": {"code": error.code, "message": error.message}});
            emit(&format!("{document}\n"));
            ExitCode::from(1)
        }
        (EvalFormat::Human, Err(error)) => {
            let start = error.span.start.min(args.expr.len());
            eprintln!("error[{}]: {}", error.code, error.message);
            eprintln!("  | {}", args.expr);
            eprintln!("  | {}^", " ".repeat(args.expr[..start].chars().count()));
            ExitCode::from(1)
        }
    }
}

/// Checks and lowers `path`; on failure prints why (diagnostics as `check`
/// renders them) and gives the exit code.
fn compile_or_report(path: &std::path::Path) -> Result<build::Compiled, ExitCode> {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let options = RenderOptions {
        color,
        deny_warnings: false,
    };
    match build::compile(path) {
        Ok(compiled) => {
            if compiled.report.summary().warnings > 0 {
                eprint!("{}", render(&compiled.report, Format::Human, &options));
            }
            Ok(compiled)
        }
        Err(build::CompileError::Check(report)) => {
            for failure in &report.failures {
                eprintln!("error: {}: {}", failure.path.display(), failure.message);
            }
            eprint!("{}", render(&report, Format::Human, &options));
            Err(ExitCode::from(exit_code(&report, false)))
        }
        Err(build::CompileError::Failure(failure)) => Err(fail(&format!(
            "{}: {}",
            failure.path.display(),
            failure.message
        ))),
        Err(build::CompileError::Lower(error)) => {
            eprintln!(
                "error: {}: cannot lower this workflow at bytes {}..{}: {}",
                error.file.display(),
                error.span.start,
                error.span.end,
                error.message
            );
            Err(ExitCode::from(1))
        }
    }
}

fn graph_command(args: GraphArgs) -> ExitCode {
    let compiled = match compile_or_report(&args.workflow) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let format = match args.format {
        GraphFormatArg::Mermaid => build::graph::GraphFormat::Mermaid,
        GraphFormatArg::Dot => build::graph::GraphFormat::Dot,
    };
    emit(&build::graph::render(&compiled.plan, format));
    ExitCode::SUCCESS
}

fn build_command(args: BuildArgs) -> ExitCode {
    let compiled = match compile_or_report(&args.workflow) {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let verified = match donmai_runtime::verify::verify(compiled.plan) {
        Ok(verified) => verified,
        Err(error) => {
            // The checker accepted what the verifier refuses: a compiler bug,
            // reported as such rather than written out.
            eprintln!("error: internal compiler error: the lowered plan does not verify: {error}");
            return ExitCode::from(1);
        }
    };
    let mut bytes = donmai_runtime::plan::encode(&verified);
    let mut signer = None;
    if let Some(key_path) = &args.sign_key {
        let key = match donmai_runtime::keys::load_signing_key(key_path) {
            Ok(key) => key,
            Err(error) => return fail(&error.to_string()),
        };
        bytes = match donmai_runtime::plan::sign(&bytes, &key) {
            Ok(signed) => signed,
            Err(error) => return fail(&format!("cannot sign the plan: {error}")),
        };
        signer = Some(donmai_runtime::keys::KeyId::of(&key.verifying_key()));
    }
    let output = args
        .output
        .unwrap_or_else(|| args.workflow.with_extension("dplan"));
    if let Err(error) = write_atomically(&output, &bytes) {
        return fail(&format!("cannot write {}: {error}", output.display()));
    }
    let steps: usize = verified.levels.iter().map(|l| l.steps.len()).sum();
    let mut line = format!(
        "built {}: plan {}, {} in {}, {}, {}",
        output.display(),
        verified.id(),
        plural(steps, "step"),
        plural(verified.levels.len(), "level"),
        plural(verified.exprs.len(), "expression"),
        plural(bytes.len(), "byte"),
    );
    if let Some(key_id) = signer {
        line.push_str(&format!(", signed by key {key_id}"));
    }
    eprintln!("{line}");
    ExitCode::SUCCESS
}

/// Writes `bytes` to a temporary file beside `path`, then renames it, so a
/// reader never sees half a plan.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the output path names no file"))?;
    let mut temporary = file_name.to_os_string();
    temporary.push(format!(".tmp-{}", std::process::id()));
    let temporary = path.with_file_name(temporary);
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

fn disasm_command(args: DisasmArgs) -> ExitCode {
    let bytes = match donmai_grammar::span::read_regular_file(&args.plan) {
        Ok(bytes) => bytes,
        Err(error) => return fail(&format!("{}: {error}", args.plan.display())),
    };
    let decoded = match donmai_runtime::plan::decode(&bytes) {
        Ok(decoded) => decoded,
        Err(error) => return fail(&format!("{}: {error}", args.plan.display())),
    };
    let listing = build::disasm::Listing::new(&decoded, &args.plan, bytes.len());
    let verdict = match donmai_runtime::verify::verify(decoded.plan().clone()) {
        Ok(_) => None,
        Err(error) => Some(error.to_string()),
    };
    match args.format {
        EvalFormat::Json => {
            let mut document = listing.json();
            document["verified"] = serde_json::Value::Bool(verdict.is_none());
            if let Some(error) = &verdict {
                document["verifyError"] = serde_json::Value::String(error.clone());
            }
            emit(&format!("{document:#}\n"));
        }
        EvalFormat::Human => {
            let mut text = listing.human();
            match &verdict {
                None => text.push_str("\nverified\n"),
                Some(error) => text.push_str(&format!("\nDOES NOT VERIFY: {error}\n")),
            }
            emit(&text);
        }
    }
    ExitCode::SUCCESS
}

/// What `fmt` and `migrate` do to a text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    Format,
    Migrate,
}

/// A rewritten text, what it says about the change, or where and why the
/// text was refused.
type Rewritten = Result<(String, String), (usize, usize, String)>;

impl Rewrite {
    fn apply(self, text: &str) -> Rewritten {
        match self {
            Rewrite::Format => donmai_compiler::fmt::format_workflow(text)
                .map(|formatted| (formatted, String::new()))
                .map_err(|e| (e.line, e.column, e.message)),
            Rewrite::Migrate => donmai_compiler::migrate::migrate_v1_to_v2(text)
                .map(|outcome| {
                    let changes: Vec<String> = outcome
                        .counts()
                        .iter()
                        .map(|(kind, count)| match count {
                            1 => kind.describe().to_string(),
                            n => format!("{n} × {kind}"),
                        })
                        .collect();
                    (outcome.text, changes.join(", "))
                })
                .map_err(|e| (e.line, e.column, e.message)),
        }
    }

    /// Past participle for the summary: "reformatted", "migrated".
    fn done(self) -> &'static str {
        match self {
            Rewrite::Format => "reformatted",
            Rewrite::Migrate => "migrated",
        }
    }
}

/// `donmaic fmt` and `donmaic migrate`: rewrite each file (atomically), or
/// with `--check`/`--diff` only say what would change.
fn rewrite_command(args: &RewriteArgs, rewrite: Rewrite) -> ExitCode {
    let stdin = std::path::Path::new("-");
    if args.paths.iter().any(|p| p == stdin) {
        if args.paths.len() > 1 {
            return fail("`-` (standard input) cannot be combined with other paths");
        }
        return rewrite_stdin(args, rewrite);
    }
    let (candidates, failures) = donmai_compiler::driver::discover(&args.paths);
    let mut failed = !failures.is_empty();
    for failure in &failures {
        eprintln!("error: {}: {}", failure.path.display(), failure.message);
    }
    let (mut seen, mut changed) = (0usize, 0usize);
    let mut listing = String::new();
    for candidate in candidates {
        let path = &candidate.path;
        let bytes = match donmai_grammar::span::read_regular_file(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                eprintln!("error: {}: {error}", path.display());
                failed = true;
                continue;
            }
        };
        if !candidate.explicit && !donmai_compiler::driver::looks_like_workflow(&bytes) {
            continue;
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                eprintln!(
                    "error: {}: not valid UTF-8 (invalid byte at offset {})",
                    path.display(),
                    error.utf8_error().valid_up_to()
                );
                failed = true;
                continue;
            }
        };
        seen += 1;
        let (new, note) = match rewrite.apply(&text) {
            Ok(rewritten) => rewritten,
            Err((line, column, message)) => {
                eprintln!("error: {}:{line}:{column}: {message}", path.display());
                failed = true;
                continue;
            }
        };
        if new == text {
            continue;
        }
        changed += 1;
        let shown = path.to_string_lossy().replace('\\', "/");
        if args.diff {
            listing.push_str(&donmai_compiler::fix::unified_diff(&shown, &text, &new));
        } else if args.check {
            listing.push_str(&format!("{shown}\n"));
        } else if let Err(error) = donmai_compiler::fix::write_atomically(
            // Through a symbolic link, the file it names is rewritten; the
            // link stays a link.
            &std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()),
            &new,
        ) {
            eprintln!("error: {}: cannot write: {error}", path.display());
            failed = true;
            changed -= 1;
        } else if note.is_empty() {
            eprintln!("{} {shown}", rewrite.done());
        } else {
            eprintln!("{} {shown}: {note}", rewrite.done());
        }
    }
    emit(&listing);
    let would = args.check || args.diff;
    let files = plural(seen, "file");
    match (rewrite, would) {
        (Rewrite::Format, true) => eprintln!("{changed} of {files} would be reformatted"),
        (Rewrite::Format, false) => eprintln!("reformatted {changed} of {files}"),
        (Rewrite::Migrate, true) => {
            eprintln!("{changed} of {files} would be migrated to workflow/v2")
        }
        (Rewrite::Migrate, false) => eprintln!("migrated {changed} of {files} to workflow/v2"),
    }
    if failed {
        ExitCode::from(USAGE_OR_IO)
    } else if would && changed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn rewrite_stdin(args: &RewriteArgs, rewrite: Rewrite) -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(error) = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes) {
        return fail(&format!("cannot read standard input: {error}"));
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return fail("standard input is not valid UTF-8");
    };
    let (new, note) = match rewrite.apply(&text) {
        Ok(rewritten) => rewritten,
        Err((line, column, message)) => {
            return fail(&format!("<stdin>:{line}:{column}: {message}"));
        }
    };
    if args.diff {
        emit(&donmai_compiler::fix::unified_diff("<stdin>", &text, &new));
    } else if args.check {
        if new != text {
            emit("<stdin>\n");
        }
    } else {
        emit(&new);
        if new != text && !note.is_empty() {
            eprintln!("{} <stdin>: {note}", rewrite.done());
        }
    }
    if (args.check || args.diff) && new != text {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
