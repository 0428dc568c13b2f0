//! The loop shared by the `check_loop` examples: `donmaic check` end to end
//! (read, find the project, parse, check, lint levels, render), as the
//! criterion bench runs it, on one file, many times in one process.

use donmai_compiler::check::check_file;
use donmai_compiler::driver::{CheckOptions, run_check};
use donmai_compiler::project::LintLevel;
use donmai_compiler::render::{Format, RenderOptions, render};
use donmai_grammar::Code;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: check_loop FILE [RUNS]   (RUNS defaults to 20)";

pub fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runs = match args.next().map(|n| n.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let lines = match std::fs::read_to_string(&path) {
        Ok(text) => text.lines().count(),
        Err(error) => {
            eprintln!("cannot read {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let options = CheckOptions {
        paths: vec![path],
        lint_levels: vec![(Code::TOO_MANY_ROOTS, LintLevel::Allow)],
        threads: NonZeroUsize::new(1),
        ..CheckOptions::default()
    };
    let mut seconds = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let run = run_check(&options, &check_file);
        let report = render(&run.report, Format::Human, &RenderOptions::default());
        seconds.push(started.elapsed().as_secs_f64());
        if run.report.files_checked != 1 {
            eprintln!("the file was not checked: {:?}", run.report.failures);
            return ExitCode::FAILURE;
        }
        std::hint::black_box(report);
    }
    seconds.sort_by(f64::total_cmp);
    let fastest = seconds[0];
    let median = seconds[seconds.len() / 2];
    println!(
        "{lines} lines, {runs} runs: fastest {:.3} ms ({:.0} ns/line, {:.0}k lines/s), median {:.3} ms ({:.0}k lines/s)",
        fastest * 1e3,
        fastest * 1e9 / lines as f64,
        lines as f64 / fastest / 1e3,
        median * 1e3,
        lines as f64 / median / 1e3,
    );
    ExitCode::SUCCESS
}
