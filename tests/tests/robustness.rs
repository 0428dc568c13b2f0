//! Robustness of the whole front end (`check_file`): it never panics, and
//! every span it reports can be rendered and every fix applied.
//!
//! Inputs are arbitrary text, arbitrary bytes, and — the interesting part —
//! valid workflows (`examples/`, `tests/corpus/`) broken by random edits,
//! which reach far deeper into the checker than random text does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use donmai_compiler::check::check_file;
use donmai_compiler::fix::{apply_edits, fix_in_rounds, select_edits};
use donmai_compiler::project::Project;
use donmai_compiler::suppress::apply_suppressions;
use donmai_grammar::{Code, Diagnostic, SourceFile, Span};
use proptest::prelude::*;
use proptest::sample::Index;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "snapshots") {
                yaml_files(&path, found);
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            found.push(path);
        }
    }
}

/// The seed workflows, with their real paths so that group references
/// resolve as they do for `donmaic check`.
fn seeds() -> &'static [(PathBuf, String)] {
    static SEEDS: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut paths = Vec::new();
        yaml_files(&workspace().join("examples"), &mut paths);
        yaml_files(&workspace().join("tests/corpus"), &mut paths);
        paths.sort();
        let seeds: Vec<(PathBuf, String)> = paths
            .into_iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                Some((path, text))
            })
            .collect();
        assert!(seeds.len() >= 10, "the seed workflows are missing");
        seeds
    })
}

/// What `donmaic check` reports for one file: the checker's diagnostics
/// after suppression comments.
fn check(path: &Path, text: &str) -> (SourceFile, Vec<Diagnostic>) {
    let source = SourceFile::new(path, text);
    let diagnostics = check_source(&source);
    (source, diagnostics)
}

fn check_source(source: &SourceFile) -> Vec<Diagnostic> {
    apply_suppressions(source, check_file(source, &Project::default_for_tests()))
}

/// Why `span` cannot be used to slice `text`, if it cannot.
fn span_problem(text: &str, span: Span) -> Option<String> {
    if span.start > span.end {
        Some(format!("{span} is reversed"))
    } else if span.end > text.len() {
        Some(format!("{span} ends past the end ({})", text.len()))
    } else if !text.is_char_boundary(span.start) || !text.is_char_boundary(span.end) {
        Some(format!("{span} splits a character"))
    } else {
        None
    }
}

/// Every span of every diagnostic (primary, labels, fix edits) is usable.
fn assert_spans_valid(text: &str, diagnostics: &[Diagnostic]) -> Result<(), TestCaseError> {
    let file = SourceFile::new("spans.yaml", text);
    for diagnostic in diagnostics {
        let spans = std::iter::once(("primary", diagnostic.span))
            .chain(diagnostic.labels.iter().map(|l| ("label", l.span)))
            .chain(
                diagnostic
                    .fix
                    .iter()
                    .flat_map(|f| &f.edits)
                    .map(|e| ("fix edit", e.span)),
            );
        for (what, span) in spans {
            if let Some(problem) = span_problem(text, span) {
                return Err(TestCaseError::fail(format!(
                    "{} {what} span {problem}: {}\n--- input ---\n{text:?}",
                    diagnostic.code, diagnostic.message
                )));
            }
        }
        // A fix edits the lines its diagnostic points at: an edit elsewhere
        // is a span left in some other coordinate system (e.g. of a scalar).
        // Whole lines, because removing an unused suppression removes its
        // whole comment.
        let covered = |span: Span| {
            std::iter::once(diagnostic.span)
                .chain(diagnostic.labels.iter().map(|l| l.span))
                .any(|area| {
                    let first = file.line_start(file.line_index(area.start));
                    let last = file.line_start(file.line_index(area.end) + 1);
                    first <= span.start && span.end <= last
                })
        };
        for edit in diagnostic.fix.iter().flat_map(|f| &f.edits) {
            if !covered(edit.span) {
                return Err(TestCaseError::fail(format!(
                    "{} fix edit {} lies off the lines of the diagnostic at {}: {}\n--- input ---\n{text:?}",
                    diagnostic.code, edit.span, diagnostic.span, diagnostic.message
                )));
            }
        }
    }
    Ok(())
}

/// One random edit of a workflow's bytes.
#[derive(Clone, Debug)]
enum Mutation {
    Delete { at: Index, len: usize },
    Insert { at: Index, text: &'static str },
    InsertBytes { at: Index, bytes: Vec<u8> },
    Duplicate { from: Index, len: usize, to: Index },
    Swap { a: Index, b: Index, len: usize },
    Indent { line: Index, by: i8 },
    Truncate { at: Index },
}

/// Text that changes how YAML or a template reads.
const SIGNIFICANT: &[&str] = &[
    ":",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "-",
    "- ",
    "|",
    ">",
    "&a ",
    "*a",
    "!",
    "!!str ",
    "'",
    "\"",
    "#",
    " #",
    "\n",
    "\r\n",
    "\t",
    "  ",
    "{{",
    "}}",
    "{{ ",
    " }}",
    "${{",
    "?",
    ",",
    "%",
    "@",
    "\\",
    "\\u",
    "---\n",
    "...\n",
    "<<: ",
    "~",
    "null",
    "é",
    "😀",
    "\u{feff}",
    "\0",
    ".",
    "??",
    "?.",
    "nodes.",
    "trigger.",
    "input.",
    "1e999",
    "-9223372036854775809",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<Index>(), proptest::sample::select(SIGNIFICANT))
            .prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::InsertBytes { at, bytes }),
        (any::<Index>(), 1usize..200, any::<Index>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        (any::<Index>(), any::<Index>(), 1usize..60).prop_map(|(a, b, len)| Mutation::Swap {
            a,
            b,
            len
        }),
        (any::<Index>(), -6i8..=6).prop_map(|(line, by)| Mutation::Indent { line, by }),
        any::<Index>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn position(at: &Index, bytes: &[u8]) -> usize {
    at.index(bytes.len() + 1)
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Delete { at, len } => {
            let start = position(at, bytes);
            let end = (start + len).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::Insert { at, text } => {
            let at = position(at, bytes);
            bytes.splice(at..at, text.bytes());
        }
        Mutation::InsertBytes { at, bytes: new } => {
            let at = position(at, bytes);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Duplicate { from, len, to } => {
            let start = position(from, bytes);
            let end = (start + len).min(bytes.len());
            let copy = bytes[start..end].to_vec();
            let to = position(to, bytes);
            bytes.splice(to..to, copy);
        }
        Mutation::Swap { a, b, len } => {
            let (a, b) = (position(a, bytes), position(b, bytes));
            let (first, second) = (a.min(b), a.max(b));
            let len = (*len).min(second - first).min(bytes.len() - second);
            let left = bytes[first..first + len].to_vec();
            let right = bytes[second..second + len].to_vec();
            bytes.splice(second..second + len, left);
            bytes.splice(first..first + len, right);
        }
        Mutation::Indent { line, by } => {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(
                    bytes
                        .iter()
                        .enumerate()
                        .filter(|&(_, &b)| b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .collect();
            let start = starts[line.index(starts.len())];
            if *by >= 0 {
                bytes.splice(start..start, std::iter::repeat_n(b' ', *by as usize));
            } else {
                let spaces = bytes[start..]
                    .iter()
                    .take(by.unsigned_abs() as usize)
                    .take_while(|&&b| b == b' ')
                    .count();
                bytes.drain(start..start + spaces);
            }
        }
        Mutation::Truncate { at } => {
            let at = position(at, bytes);
            bytes.truncate(at);
        }
    }
}

fn mutated_workflow() -> impl Strategy<Value = (PathBuf, String)> {
    (any::<Index>(), proptest::collection::vec(mutation(), 1..6)).prop_map(|(seed, mutations)| {
        let seeds = seeds();
        let (path, text) = &seeds[seed.index(seeds.len())];
        let mut bytes = text.clone().into_bytes();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        (path.clone(), String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// Where `offset` of the text before `edits` lands in the text after them.
/// An offset inside a replaced range lands at the start of its replacement.
fn shifted(offset: usize, edits: &[donmai_grammar::diagnostic::Edit]) -> usize {
    let mut delta: isize = 0;
    for edit in edits {
        if edit.span.end <= offset && !(edit.span.is_empty() && edit.span.start == offset) {
            delta += edit.replacement.len() as isize - edit.span.len() as isize;
        } else if edit.span.start < offset {
            return (edit.span.start as isize + delta) as usize;
        }
    }
    (offset as isize + delta) as usize
}

/// Applies every fix that can be applied together, then checks that the
/// result is still usable and that no applied fix is asked for again.
fn assert_fixes_hold(path: &Path, text: &str) -> Result<(), TestCaseError> {
    let (source, diagnostics) = check(path, text);
    let (edits, count) = select_edits(text, diagnostics.iter().filter_map(|d| d.fix.as_ref()));
    if count == 0 {
        return Ok(());
    }
    let fixed = apply_edits(text, &edits);
    let (_, after) = check(path, &fixed);
    assert_spans_valid(&fixed, &after)?;
    // A fix was applied when all of its edits were taken.
    for diagnostic in &diagnostics {
        let Some(fix) = &diagnostic.fix else {
            continue;
        };
        if fix.edits.is_empty() || !fix.edits.iter().all(|e| edits.contains(e)) {
            continue;
        }
        let moved = shifted(diagnostic.span.start, &edits);
        if let Some(again) = after
            .iter()
            .find(|d| d.code == diagnostic.code && d.span.start == moved && d.fix.is_some())
        {
            return Err(TestCaseError::fail(format!(
                "the fix `{}` of {} at {} ({}) is asked for again: {}\n\
                 --- before ---\n{text}\n--- after ---\n{fixed}",
                fix.message, diagnostic.code, diagnostic.span, diagnostic.message, again.message
            )));
        }
    }
    // The rounds of `--fix` terminate and keep spans valid too.
    let outcome = fix_in_rounds(source, diagnostics, check_source);
    assert_spans_valid(outcome.source.text(), &outcome.diagnostics)
}

/// 256 cases keep a debug run to a second or two; `PROPTEST_CASES` raises
/// it for a longer hunt.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_is_checked_without_panics(text in any::<String>()) {
        let (_, diagnostics) = check(Path::new("fuzz.yaml"), &text);
        assert_spans_valid(&text, &diagnostics)?;
    }

    #[test]
    fn arbitrary_bytes_are_checked_without_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let (_, diagnostics) = check(Path::new("fuzz.yaml"), &text);
        assert_spans_valid(&text, &diagnostics)?;
    }

    #[test]
    fn yaml_like_text_is_checked_without_panics(
        text in "(apiVersion: workflow/v2\nkind: WorkflowDefinition\n)?[a-z0-9 :{}\\[\\],\\-|>&*!'\"#\n\t.?$@%~\\\\é]{0,300}",
    ) {
        let (_, diagnostics) = check(Path::new("fuzz.yaml"), &text);
        assert_spans_valid(&text, &diagnostics)?;
    }

    #[test]
    fn mutated_workflows_are_checked_without_panics((path, text) in mutated_workflow()) {
        let (_, diagnostics) = check(&path, &text);
        assert_spans_valid(&text, &diagnostics)?;
    }

    #[test]
    fn fixes_of_mutated_workflows_apply_and_hold((path, text) in mutated_workflow()) {
        assert_fixes_hold(&path, &text)?;
    }
}

#[test]
fn seed_workflows_are_checked_with_valid_spans() {
    for (path, text) in seeds() {
        let (_, diagnostics) = check(path, text);
        assert_spans_valid(text, &diagnostics)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_fixes_hold(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn every_reported_code_is_in_the_catalog() {
    // Renderers and `explain` look codes up in the catalog.
    for (path, text) in seeds() {
        let (_, diagnostics) = check(path, text);
        for diagnostic in diagnostics {
            assert!(
                diagnostic.code.info().is_some(),
                "{}: code {:?} is not in the catalog",
                path.display(),
                diagnostic.code
            );
        }
    }
}

/// Inputs that once broke an invariant, checked the way their property does.
mod regressions {
    use super::*;

    fn corpus_path(name: &str) -> PathBuf {
        workspace().join("tests/corpus/err").join(name)
    }

    /// A branch on `small` next to a misspelt case `s-mall` was "fixed" to
    /// `s-mall` while the case was fixed to `small`: the two fixes swapped
    /// the names forever. A misspelt case is no longer suggested.
    #[test]
    fn branch_fix_does_not_suggest_a_misspelt_case() {
        let text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: case, version: \"1\", scope: {project: api}}\nrequires: [{plugin: donmai@2}, {plugin: linear@1}]\ntriggers:\n  - {id: created, kind: signal, config: {signalEventType: com.linear.AgentSessionEvent.created}}\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: created}, next: [size]}\n    - id: size\n      type: condition\n      config: {mode: switch, action: \"donmai@2:agent.size_estimate\", cases: [s-mall, huge]}\n      branches: {small: dispatch, huge: dispatch}\n      defaultHandle: small\n    - id: dispatch\n      type: action\n      config: {action: \"donmai@2:agent.dispatch_to_queue\", workType: development, issueId: \"{{ trigger.issueId }}\"}\n";
        let path = corpus_path("DN0141-switch-case-not-in-enum.yaml");
        assert_fixes_hold(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let (_, diagnostics) = check(&path, text);
        let fixes: Vec<&str> = diagnostics
            .iter()
            .filter_map(|d| d.fix.as_ref())
            .flat_map(|f| &f.edits)
            .map(|e| e.replacement.as_str())
            .collect();
        assert_eq!(fixes, ["small"], "{diagnostics:#?}");
    }

    /// A step named `dis:patch` was offered as the fix of `nodes.dispatch`,
    /// which made `nodes.dis:patch.output`: not a reference, and the fix was
    /// asked for again. Only names that lex as identifiers are spliced in.
    #[test]
    fn reference_fix_only_suggests_identifiers() {
        let text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: dev, version: \"1\"}\ninterface:\n  inputs: {goal: string}\n  outputs: {session: \"{{ nodes.dispatch.output.sessionId }}\"}\nrequires: [{plugin: donmai@2}]\nspec:\n  steps:\n    - {id: entry, type: trigger, next: [dispatch]}\n    - {id: dis:patch, type: action, config: {action: \"donmai@2:agent.dispatch_to_queue\", workType: development, scope: \"{{ trigger.goal }}\"}}\n";
        let path = corpus_path("DN0152-group-version-mismatch/groups/dev.yaml");
        assert_fixes_hold(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let (_, diagnostics) = check(&path, text);
        let reference = diagnostics
            .iter()
            .find(|d| d.message == "there is no step `dispatch`")
            .unwrap_or_else(|| panic!("{diagnostics:#?}"));
        assert!(reference.fix.is_none(), "{reference:#?}");
        assert_eq!(reference.help.as_deref(), Some("did you mean `dis:patch`?"));
    }

    /// The fix of an expression inside a template kept its offset into the
    /// scalar: `--fix` turned `apiVersion` into `ap&&Version` instead of
    /// fixing `{{& trigger.goal }}`. Fix edits are now mapped onto the file
    /// like the diagnostic, also through escapes of a double-quoted scalar.
    #[test]
    fn template_fix_edits_point_into_the_file() {
        let text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: x, version: \"1\"}\nrequires: [{plugin: donmai@2}]\ntriggers: [{id: go, kind: manual}]\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: go}, next: [work]}\n    - {id: work, type: action, config: {action: \"donmai@2:agent.dispatch_to_queue\", workType: \"\\u00e9{{ trigger.a & trigger.b }}\"}}\n";
        let path = Path::new("template-fix.yaml");
        let (_, diagnostics) = check(path, text);
        assert_spans_valid(text, &diagnostics).unwrap_or_else(|e| panic!("{e}"));
        let (edits, count) = select_edits(text, diagnostics.iter().filter_map(|d| d.fix.as_ref()));
        assert_eq!(count, 1, "{diagnostics:#?}");
        let fixed = apply_edits(text, &edits);
        assert!(
            fixed.contains("\"\\u00e9{{ trigger.a && trigger.b }}\""),
            "{fixed}"
        );
        assert_eq!(fixed.replace("&&", "&"), text);
    }

    /// A step named `(,dispatch` was offered as the fix of `next:
    /// [dispatch]`, which then read as two targets `(` and `dispatch`. A
    /// target may sit inside a scalar (`onTimeout: branch:<id>`), so only a
    /// name needing no quotes is offered there; whole scalars (here a
    /// trigger id) get the name quoted when it needs it.
    #[test]
    fn yaml_fixes_quote_names_or_are_not_offered() {
        let text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: case, version: \"1\"}\nrequires: [{plugin: donmai@2}]\ntriggers:\n  - {id: \"go, now\", kind: manual}\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: \"go, nox\"}, next: [dispatch]}\n    - id: (\u{e}\u{e},dispatch\n      type: action\n      config: {action: \"donmai@2:agent.dispatch_to_queue\", workType: development}\n";
        let path = Path::new("quoting.yaml");
        assert_fixes_hold(path, text).unwrap_or_else(|e| panic!("{e}"));
        let (_, diagnostics) = check(path, text);
        let step = diagnostics
            .iter()
            .find(|d| d.message == "there is no step `dispatch`")
            .unwrap_or_else(|| panic!("{diagnostics:#?}"));
        assert!(step.fix.is_none(), "{step:#?}");
        let (edits, _) = select_edits(text, diagnostics.iter().filter_map(|d| d.fix.as_ref()));
        let fixed = apply_edits(text, &edits);
        assert!(fixed.contains("{triggerId: \"go, now\"}"), "{fixed}");
        let (_, after) = check(path, &fixed);
        assert!(
            !after.iter().any(|d| d.message.contains("no trigger")),
            "{after:#?}"
        );
    }

    /// `\\requires` is an unknown key whose fix renames it to `requires`;
    /// DN0111's fix inserted a second `requires` beside it, so the result
    /// had the key twice and asked for the plugin again. DN0111 no longer
    /// inserts a `requires` next to a near miss of one.
    #[test]
    fn requires_fix_is_not_inserted_beside_a_misspelt_requires() {
        let text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: attempt, version: \"1\"}\ninterface:\n  inputs: {goal: string}\n  outputs: {session: \"{{ nodes.dispatch.output.sessionId }}\"}\n\\requires: [{plugin: donmai@2}]\nspec:\n  steps:\n    - {id: entry, type: trigger, next: [dispatch]}\n    - {id: dispatch, type: action, config: {action: \"donmai@2:agent.dispatch_to_queue\", workType: development, scope: \"{{ trigger.goal }}\"}}\n";
        let path = corpus_path("groups/attempt.yaml");
        assert_fixes_hold(&path, text).unwrap_or_else(|e| panic!("{e}"));
        let (_, diagnostics) = check(&path, text);
        let missing = diagnostics
            .iter()
            .find(|d| d.code == Code::PLUGIN_NOT_REQUIRED)
            .unwrap_or_else(|| panic!("{diagnostics:#?}"));
        assert!(missing.fix.is_none(), "{missing:#?}");
    }

    /// `list.??filter(…)` reads as a call of `filter` with no receiver;
    /// DN0126 offered to "replace `filter` with `filter`", a fix that fixed
    /// nothing and was asked for again. A macro called without its
    /// receiver now gets help and no fix.
    #[test]
    fn a_macro_without_receiver_is_not_replaced_by_itself() {
        let text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: m, version: \"1\"}\nrequires: [{plugin: core@1}]\ntriggers: [{id: go, kind: manual}]\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: go}, next: [log]}\n    - {id: log, type: action, config: {action: \"core@1:core.log\", message: \"{{ [1, 2].??filter(x, x > 1) }}\"}}\n";
        let path = Path::new("macro.yaml");
        assert_fixes_hold(path, text).unwrap_or_else(|e| panic!("{e}"));
        let (_, diagnostics) = check(path, text);
        let macro_call = diagnostics
            .iter()
            .find(|d| d.code == Code::UNKNOWN_FUNCTION)
            .unwrap_or_else(|| panic!("{diagnostics:#?}"));
        assert!(macro_call.fix.is_none(), "{macro_call:#?}");
        assert!(macro_call.message.contains("is a macro"), "{macro_call:#?}");
    }

    /// `donmaic check` panicked on this 9-byte file: the suppression
    /// scanner sliced inside the no-break space before the last token.
    #[test]
    fn no_break_space_before_the_last_token() {
        let (_, diagnostics) = check(Path::new("nbsp.yaml"), "\u{a0}\u{103c8}\n");
        assert_spans_valid("\u{a0}\u{103c8}\n", &diagnostics).unwrap_or_else(|e| panic!("{e}"));
    }
}
