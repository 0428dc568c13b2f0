//! Writes the generated inputs of the benchmarks (see `benches/vs-actionlint.sh`).

use donmai_bench::{
    Corpus, donmai_steps_for_lines, donmai_workflow, github_jobs_for_lines, github_workflow,
    write_donmai_corpus, write_github_corpus,
};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage:
  gen donmai --steps N            one donmai workflow of N steps, on stdout
  gen donmai --lines N            one donmai workflow of about N lines, on stdout
  gen github --lines N            one GitHub Actions workflow of about N lines, on stdout
  gen donmai-corpus DIR --lines TOTAL --per-file N
  gen github-corpus DIR --lines TOTAL --per-file N
                                  files of about N lines each until DIR holds
                                  TOTAL lines; prints `<files> <lines>`";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The value of `--name`, as a positive number.
fn number(args: &[String], name: &str) -> Result<Option<usize>, String> {
    let Some(at) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let value = args
        .get(at + 1)
        .ok_or_else(|| format!("`{name}` needs a value"))?;
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!("`{name}` takes a positive number, not `{value}`")),
    }
}

fn required(args: &[String], name: &str) -> Result<usize, String> {
    number(args, name)?.ok_or_else(|| format!("`{name}` is required"))
}

fn run(args: &[String]) -> Result<String, String> {
    let Some(command) = args.first() else {
        return Err("no command".to_string());
    };
    let rest = &args[1..];
    match command.as_str() {
        "donmai" => {
            let steps = match (number(rest, "--steps")?, number(rest, "--lines")?) {
                (Some(steps), None) => steps,
                (None, Some(lines)) => donmai_steps_for_lines(lines),
                _ => return Err("give one of `--steps` and `--lines`".to_string()),
            };
            Ok(donmai_workflow(steps))
        }
        "github" => Ok(github_workflow(
            github_jobs_for_lines(required(rest, "--lines")?),
            0,
        )),
        "donmai-corpus" | "github-corpus" => {
            let dir = rest
                .first()
                .filter(|d| !d.starts_with("--"))
                .map(PathBuf::from)
                .ok_or("name the corpus folder")?;
            let total = required(rest, "--lines")?;
            let per_file = required(rest, "--per-file")?;
            let written = if command == "donmai-corpus" {
                write_donmai_corpus(&dir, total, per_file)
            } else {
                write_github_corpus(&dir, total, per_file)
            };
            let Corpus { files, lines } =
                written.map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
            Ok(format!("{} {lines}\n", files.len()))
        }
        other => Err(format!("unknown command `{other}`")),
    }
}
