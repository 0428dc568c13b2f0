//! `donmaic check --fix` on the golden corpus: every machine-applicable fix
//! removes the diagnostic it came with, and the fixed file parses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use donmai_compiler::check::check_file;
use donmai_compiler::driver::{CheckOptions, FixMode, run_check};
use donmai_grammar::Code;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "snapshots") {
                copy_dir(&path, &target);
            }
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn fixable(paths: &[PathBuf], mode: FixMode) -> (BTreeSet<(PathBuf, Code, usize)>, usize) {
    let run = run_check(
        &CheckOptions {
            paths: paths.to_vec(),
            lint_levels: Vec::new(),
            fix: mode,
            threads: None,
        },
        &check_file,
    );
    let mut found = BTreeSet::new();
    for report in &run.report.files {
        for d in report.diagnostics.iter().filter(|d| d.fix.is_some()) {
            let line = report.source.line_col(d.span.start).line;
            found.insert((report.source.path().to_path_buf(), d.code, line));
        }
    }
    (found, run.fixes_applied)
}

#[test]
fn fixes_remove_their_diagnostics() {
    let scratch = std::env::temp_dir().join(format!("donmai-fixes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/err"),
        &scratch,
    );
    let (before, _) = fixable(std::slice::from_ref(&scratch), FixMode::Report);
    assert!(
        before.len() >= 10,
        "the corpus lost its fixable cases: {before:?}"
    );
    let (_, applied) = fixable(std::slice::from_ref(&scratch), FixMode::Apply);
    assert!(
        applied >= before.len(),
        "applied {applied} of {} fixes",
        before.len()
    );
    let run = run_check(
        &CheckOptions {
            paths: vec![scratch.clone()],
            lint_levels: Vec::new(),
            fix: FixMode::Report,
            threads: None,
        },
        &check_file,
    );
    let mut remaining = Vec::new();
    for report in &run.report.files {
        for d in &report.diagnostics {
            let line = report.source.line_col(d.span.start).line;
            if before.contains(&(report.source.path().to_path_buf(), d.code, line)) {
                remaining.push(format!(
                    "{}:{line} {} {}",
                    report.source.path().display(),
                    d.code,
                    d.message
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        remaining.is_empty(),
        "fixed diagnostics came back:\n{}",
        remaining.join("\n")
    );
}

/// Suggested edits (placeholders an author fills in, never applied by
/// `--fix`) each remove their diagnostic, in flow and block mappings alike.
#[test]
fn missing_input_suggestions_add_the_input() {
    use donmai_compiler::fix::apply_edits;
    use donmai_compiler::project::Project;
    use donmai_grammar::SourceFile;

    let flow = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/err/DN0121-missing-input.yaml"),
    )
    .expect("corpus case");
    let block = flow.replace(
        "      config: {action: \"donmai@2:agent.dispatch_to_queue\", issueId: \"{{ trigger.issueId }}\"}\n",
        "      config:\n        action: \"donmai@2:agent.dispatch_to_queue\"\n        issueId: \"{{ trigger.issueId }}\"  # why\n",
    );
    assert_ne!(flow, block);
    for text in [flow, block] {
        let file = SourceFile::new("case.yaml", text.clone());
        let diagnostics = check_file(&file, &Project::default_for_tests());
        let missing: Vec<_> = diagnostics
            .iter()
            .filter(|d| d.code == Code::MISSING_INPUT)
            .collect();
        assert!(!missing.is_empty());
        for diagnostic in missing {
            assert!(diagnostic.fix.is_none(), "a placeholder is never a --fix");
            let [suggestion] = diagnostic.suggestions.as_slice() else {
                panic!("one suggestion expected: {diagnostic:?}");
            };
            let fixed = apply_edits(&text, &suggestion.edits);
            let after = check_file(
                &SourceFile::new("case.yaml", fixed.clone()),
                &Project::default_for_tests(),
            );
            assert!(
                !after
                    .iter()
                    .any(|d| d.code == Code::MISSING_INPUT && d.message == diagnostic.message),
                "{fixed}\n{after:#?}"
            );
            assert!(after.iter().all(|d| d.code != Code::YAML_SYNTAX), "{fixed}");
        }
    }
}
