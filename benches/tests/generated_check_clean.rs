//! The generated workflows must check clean, or the benchmarks would time
//! the rendering of diagnostics instead of the checker.

use donmai_bench::{MIN_STEPS, donmai_workflow, write_donmai_corpus};
use donmai_compiler::check::check_file;
use donmai_compiler::driver::{CheckOptions, CheckRun, run_check};
use donmai_compiler::project::LintLevel;
use donmai_grammar::Code;
use std::path::{Path, PathBuf};

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("donmai-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(paths: Vec<PathBuf>, lint_levels: Vec<(Code, LintLevel)>) -> CheckRun {
    run_check(
        &CheckOptions {
            paths,
            lint_levels,
            ..CheckOptions::default()
        },
        &check_file,
    )
}

fn codes(run: &CheckRun) -> Vec<Code> {
    run.report.diagnostics().map(|(_, d)| d.code).collect()
}

fn write(dir: &Path, steps: usize) -> PathBuf {
    let path = dir.join(format!("steps-{steps}.yaml"));
    std::fs::write(&path, donmai_workflow(steps)).expect("write");
    path
}

#[test]
fn generated_workflows_have_only_the_allowed_lint() {
    let scratch = Scratch::new("clean");
    for steps in [MIN_STEPS, 8, 11, 12, 13, 14, 19, 20, 100, 1_000] {
        let path = write(&scratch.0, steps);
        let run = check(vec![path.clone()], vec![]);
        assert!(run.report.failures.is_empty(), "{:?}", run.report.failures);
        assert_eq!(run.report.files_checked, 1);
        let expected: &[Code] = if steps > 8 {
            &[Code::TOO_MANY_ROOTS]
        } else {
            &[]
        };
        assert_eq!(codes(&run), expected, "{steps} steps");

        let run = check(vec![path], vec![(Code::TOO_MANY_ROOTS, LintLevel::Allow)]);
        assert_eq!(codes(&run), [], "{steps} steps, too-many-roots allowed");
    }
}

#[test]
fn a_generated_corpus_checks_clean_with_its_project_file() {
    let scratch = Scratch::new("corpus");
    let corpus = write_donmai_corpus(&scratch.0, 2_000, 300).expect("write corpus");
    assert!(corpus.lines >= 2_000);
    assert!(corpus.files.len() >= 6);
    let run = check(vec![scratch.0.clone()], vec![]);
    assert_eq!(run.report.files_checked, corpus.files.len());
    assert_eq!(codes(&run), []);
}

#[test]
fn a_broken_workflow_is_reported() {
    // The same shapes with one verb misspelt: the checker is not a no-op.
    let scratch = Scratch::new("broken");
    let path = scratch.0.join("broken.yaml");
    let text = donmai_workflow(30).replacen("linear.comment.create", "linear.coment.create", 1);
    std::fs::write(&path, text).expect("write");
    let run = check(vec![path], vec![(Code::TOO_MANY_ROOTS, LintLevel::Allow)]);
    assert_eq!(run.report.summary().errors, 1, "{:?}", codes(&run));
}
