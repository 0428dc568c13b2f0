//! `donmaic fmt` and `donmaic migrate` over the repository's workflows.
//!
//! - `tests/fmt/NAME.yaml` formats to `tests/fmt/NAME.formatted.yaml`
//!   (golden cases; `DONMAI_BLESS=1` rewrites the expected files after a
//!   deliberate change of style), and each expected file is a fixed point.
//! - Formatting every workflow of the corpus and the examples is idempotent
//!   and changes nothing the checker sees: the same diagnostics (code,
//!   severity, message, help) and the same lowered workflow, spans aside.
//! - Every workflow/v1 file migrates to a workflow/v2 file that checks with
//!   no version-related diagnostic and no new one.

use donmai_compiler::check::check_file;
use donmai_compiler::fmt::format_workflow;
use donmai_compiler::migrate::migrate_v1_to_v2;
use donmai_compiler::project::Project;
use donmai_compiler::suppress::apply_suppressions;
use donmai_grammar::lower::parse_workflow;
use donmai_grammar::{Code, SourceFile};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    donmai_tests::workspace()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    donmai_tests::yaml_files(dir, |_| false)
}

/// Every workflow file of the corpus, the runtime cases and the examples.
fn workflows() -> Vec<PathBuf> {
    let files: Vec<PathBuf> = ["tests/corpus", "tests/runtime", "examples"]
        .iter()
        .flat_map(|dir| yaml_files(&root().join(dir)))
        .filter(|path| {
            std::fs::read(path)
                .is_ok_and(|bytes| donmai_compiler::driver::looks_like_workflow(&bytes))
        })
        .collect();
    assert!(files.len() > 60, "found only {} workflows", files.len());
    files
}

/// What the checker says about `text` as the file `path`, positions
/// aside, in a stable order.
fn diagnostics(path: &Path, text: &str) -> Vec<String> {
    let project = Project::discover(path.parent().expect("a folder")).expect("project");
    let file = SourceFile::new(path.to_path_buf(), text.to_string());
    let mut found: Vec<String> = apply_suppressions(&file, check_file(&file, &project))
        .into_iter()
        .map(|d| format!("{} {:?} {} / {:?}", d.code, d.severity, d.message, d.help))
        .collect();
    found.sort();
    found
}

/// The lowered workflow with every span and file offset blanked out.
fn lowered(text: &str) -> String {
    let debug = format!("{:#?}", parse_workflow(text).workflow);
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug.as_str();
    // `Span { start: N, end: N }` and `ScalarMap` offsets print as numbers
    // after `start:`/`end:`; blank every number that follows those keys.
    while let Some(at) = rest.find(['s', 'e']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let key = ["start: ", "end: "].iter().find(|k| rest.starts_with(*k));
        match key {
            Some(key) => {
                out.push_str(key);
                rest = rest[key.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
                out.push('#');
            }
            None => {
                out.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn golden_cases_format_as_expected() {
    let dir = root().join("tests/fmt");
    let bless = std::env::var_os("DONMAI_BLESS").is_some();
    let mut failures = Vec::new();
    let mut cases = 0;
    for input in yaml_files(&dir) {
        let name = input.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".formatted.yaml") {
            continue;
        }
        cases += 1;
        let expected_path = input.with_file_name(name.replace(".yaml", ".formatted.yaml"));
        let text = std::fs::read_to_string(&input).expect("read case");
        let formatted = match format_workflow(&text) {
            Ok(formatted) => formatted,
            Err(error) => {
                failures.push(format!("{name}: refused: {error}"));
                continue;
            }
        };
        if bless {
            std::fs::write(&expected_path, &formatted).expect("write expected");
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        if formatted != expected {
            failures.push(format!(
                "{name}:\n{}",
                donmai_compiler::fix::unified_diff(name, &expected, &formatted)
            ));
        }
        match format_workflow(&expected) {
            Ok(again) if again == expected => {}
            Ok(again) => failures.push(format!(
                "{name}: the expected file is not a fixed point:\n{}",
                donmai_compiler::fix::unified_diff(name, &expected, &again)
            )),
            Err(error) => failures.push(format!("{name}: expected file refused: {error}")),
        }
    }
    assert!(cases >= 10, "found only {cases} golden cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn formatting_the_corpus_changes_nothing_the_checker_sees() {
    let mut formatted_files = 0;
    for path in workflows() {
        let text = std::fs::read_to_string(&path).expect("read");
        let formatted = match format_workflow(&text) {
            Ok(formatted) => formatted,
            Err(error) => {
                // Only files with YAML errors are refused.
                let codes: Vec<Code> = diagnostics_codes(&path, &text);
                assert!(
                    codes.iter().any(|c| [
                        Code::YAML_SYNTAX,
                        Code::DUPLICATE_KEY,
                        Code::DOCUMENT_TOO_COMPLEX
                    ]
                    .contains(c)),
                    "{}: refused a file without YAML errors: {error}",
                    path.display()
                );
                continue;
            }
        };
        formatted_files += 1;
        let again = format_workflow(&formatted).expect("formats again");
        assert_eq!(again, formatted, "{}: not idempotent", path.display());
        assert_eq!(
            diagnostics(&path, &formatted),
            diagnostics(&path, &text),
            "{}: the diagnostics changed; formatted:\n{formatted}",
            path.display()
        );
        assert_eq!(
            lowered(&formatted),
            lowered(&text),
            "{}: the lowered workflow changed",
            path.display()
        );
    }
    assert!(formatted_files > 50);
}

fn diagnostics_codes(path: &Path, text: &str) -> Vec<Code> {
    let project = Project::discover(path.parent().expect("a folder")).expect("project");
    let file = SourceFile::new(path.to_path_buf(), text.to_string());
    check_file(&file, &project)
        .into_iter()
        .map(|d| d.code)
        .collect()
}

#[test]
fn every_v1_workflow_migrates_to_a_clean_v2() {
    let version_codes = [
        Code::UNSUPPORTED_API_VERSION,
        Code::TRIGGER_DATA_DEPRECATED,
        Code::STEPS_REFERENCE,
    ];
    let mut migrated = 0;
    for path in workflows() {
        let text = std::fs::read_to_string(&path).expect("read");
        let parsed = parse_workflow(&text);
        let is_v1 = parsed
            .workflow
            .as_ref()
            .is_some_and(|w| w.api_version.value == donmai_grammar::ast::ApiVersion::V1);
        if !is_v1 {
            continue;
        }
        let outcome = migrate_v1_to_v2(&text)
            .unwrap_or_else(|e| panic!("{}: not migrated: {e}", path.display()));
        migrated += 1;
        assert!(outcome.changed());
        let before = diagnostics(&path, &text);
        let after = diagnostics(&path, &outcome.text);
        for diagnostic in &after {
            assert!(
                !version_codes
                    .iter()
                    .any(|c| diagnostic.starts_with(&c.to_string())),
                "{}: version diagnostic after migration: {diagnostic}\n{}",
                path.display(),
                outcome.text
            );
            assert!(
                before.contains(diagnostic),
                "{}: new diagnostic after migration: {diagnostic}\n{}",
                path.display(),
                outcome.text
            );
        }
        // Nothing left to migrate, and formatting still works on the result.
        assert!(!migrate_v1_to_v2(&outcome.text).expect("v2").changed());
        format_workflow(&outcome.text).expect("the migrated file formats");
    }
    assert!(migrated >= 3, "found only {migrated} v1 workflows");
}

/// A v2 workflow made v1 by hand (`trigger.x` → `trigger.data.x`,
/// `nodes.` → `steps.`) migrates back to the v2 text.
#[test]
fn migration_inverts_a_hand_made_v1() {
    let mut inverted = 0;
    for path in workflows() {
        let text = std::fs::read_to_string(&path).expect("read");
        let parsed = parse_workflow(&text);
        // An unclosed template holds no expression to rewrite.
        let broken_template = parsed
            .diagnostics
            .iter()
            .any(|d| [Code::EXPRESSION_SYNTAX, Code::TEMPLATE_SYNTAX].contains(&d.code));
        let Some(workflow) = parsed.workflow.filter(|_| !broken_template) else {
            continue;
        };
        if workflow.api_version.value != donmai_grammar::ast::ApiVersion::V2
            || !donmai_grammar::yaml::parse(&text).diagnostics.is_empty()
            || text.contains("trigger.data")
            || text.contains("steps.")
            || text.contains("${")
            || !text.contains("{{ trigger.")
        {
            continue;
        }
        let v1 = text
            .replacen("apiVersion: workflow/v2", "apiVersion: workflow/v1", 1)
            .replace("{{ trigger.", "{{ trigger.data.");
        let outcome = migrate_v1_to_v2(&v1).expect("migrates");
        assert_eq!(outcome.text, text, "{}", path.display());
        inverted += 1;
    }
    assert!(inverted > 20, "only {inverted} files");
}
