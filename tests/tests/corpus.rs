//! The golden corpus.
//!
//! - `tests/corpus/ok/**.yaml` must check clean (no error, no warning).
//! - `tests/corpus/err/**.yaml` are checked and their diagnostics compared
//!   with insta snapshots in `tests/corpus/err/snapshots/`; review changes with
//!   `cargo insta review` (or `INSTA_UPDATE=always cargo test -p donmai-tests`).
//! - Every code of the catalog has at least one err case.
//!
//! Files under a `groups/` folder are group files used by the cases; files
//! whose name starts with `_` are helpers, not cases. A case folder may hold
//! a `donmai.toml` for project-level rules.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use donmai_compiler::check::check_file;
use donmai_compiler::driver::{CheckOptions, FixMode, run_check};
use donmai_grammar::codes::CATALOG;
use donmai_grammar::{Diagnostic, SourceFile};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("corpus folder is readable") {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "snapshots" && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(".yaml") && !name.starts_with('_') {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn is_group_file(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "groups")
}

/// Checks one case the way `donmaic check CASE` does: suppressions, lint
/// levels, donmai.toml and plugin manifest problems included. Returns each
/// reported file with its diagnostics.
fn check(path: &Path) -> Vec<(SourceFile, Vec<Diagnostic>)> {
    let options = CheckOptions {
        paths: vec![path.to_path_buf()],
        lint_levels: Vec::new(),
        fix: FixMode::Report,
        threads: None,
    };
    let run = run_check(&options, &check_file);
    assert!(
        run.report.failures.is_empty(),
        "{}: {:?}",
        path.display(),
        run.report
            .failures
            .iter()
            .map(|f| &f.message)
            .collect::<Vec<_>>()
    );
    run.report
        .files
        .into_iter()
        .filter(|report| !report.diagnostics.is_empty())
        .map(|report| (report.source, report.diagnostics))
        .collect()
}

fn render_all(reports: &[(SourceFile, Vec<Diagnostic>)], case: &Path) -> String {
    let dir = case.parent().expect("case has a folder");
    let mut out = String::new();
    for (file, diagnostics) in reports {
        if file.path() != case {
            let name = file.path().strip_prefix(dir).unwrap_or(file.path());
            out.push_str(&format!("in {}:\n", name.display()));
        }
        out.push_str(&render(file, diagnostics));
    }
    out
}

/// One line per diagnostic, then its labels, help and fix, indented.
fn render(file: &SourceFile, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let start = file.line_col(d.span.start);
        let end = file.line_col(d.span.end);
        out.push_str(&format!(
            "{}:{}-{}:{} {}[{}] {}\n",
            start.line,
            start.column,
            end.line,
            end.column,
            d.severity.as_str(),
            d.code,
            d.message
        ));
        out.push_str(&format!(
            "    | {}\n",
            file.slice(d.span).lines().next().unwrap_or("")
        ));
        for label in &d.labels {
            let at = file.line_col(label.span.start);
            out.push_str(&format!(
                "    label {}:{}: {}\n",
                at.line, at.column, label.message
            ));
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("    help: {help}\n"));
        }
        if let Some(fix) = &d.fix {
            out.push_str(&format!("    fix: {}", fix.message));
            for edit in &fix.edits {
                let at = file.line_col(edit.span.start);
                out.push_str(&format!(
                    " [{}:{} {:?}]",
                    at.line, at.column, edit.replacement
                ));
            }
            out.push('\n');
        }
    }
    out
}

/// Every file checks with no diagnostic at all; the failure lists them.
fn assert_clean(paths: Vec<PathBuf>, what: &str) {
    let mut failures = Vec::new();
    for path in paths {
        let reports = check(&path);
        if !reports.is_empty() {
            failures.push(format!(
                "{}:\n{}",
                path.display(),
                render_all(&reports, &path)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{what} with diagnostics:\n{}",
        failures.join("\n")
    );
}

#[test]
fn ok_cases_check_clean() {
    assert_clean(cases(&corpus().join("ok")), "ok cases");
}

#[test]
fn err_cases_match_their_snapshots() {
    let root = corpus().join("err");
    let mut seen_codes = BTreeSet::new();
    for path in cases(&root) {
        if is_group_file(&path) {
            continue;
        }
        let reports = check(&path);
        assert!(
            !reports.is_empty(),
            "{} is an err case but checks clean",
            path.display()
        );
        seen_codes.extend(reports.iter().flat_map(|(_, ds)| ds.iter().map(|d| d.code)));
        let name = path
            .strip_prefix(&root)
            .expect("case under root")
            .with_extension("")
            .to_string_lossy()
            .replace(['/', '\\'], "__");
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(root.join("snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_input_file(&path);
        settings.bind(|| insta::assert_snapshot!(name, render_all(&reports, &path)));
    }
    let missing: Vec<String> = CATALOG
        .iter()
        .filter(|info| !seen_codes.contains(&info.code))
        .map(|info| format!("{} {}", info.code, info.name))
        .collect();
    assert!(missing.is_empty(), "codes without an err case: {missing:?}");
}

#[test]
fn bundled_examples_check_clean() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let all = cases(&examples);
    assert!(all.len() >= 3, "the examples are missing");
    assert_clean(all, "examples");
}
