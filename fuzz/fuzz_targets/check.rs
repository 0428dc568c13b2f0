//! The whole front end on arbitrary bytes, as `donmaic check` runs it:
//! `check_file`, suppression comments, every output format, and applying
//! the fixes. Nothing may panic, and every span reported (primary, labels,
//! fix edits) must slice the file.

#![no_main]

use donmai_compiler::check::check_file;
use donmai_compiler::fix::{apply_edits, select_edits};
use donmai_compiler::project::Project;
use donmai_compiler::render::{Format, RenderOptions, render};
use donmai_compiler::report::{CheckReport, FileReport};
use donmai_compiler::suppress::apply_suppressions;
use donmai_grammar::{SourceFile, Span};
use libfuzzer_sys::fuzz_target;

fn assert_slices(text: &str, span: Span, what: &str) {
    assert!(
        span.start <= span.end
            && span.end <= text.len()
            && text.is_char_boundary(span.start)
            && text.is_char_boundary(span.end),
        "{what} span {span} does not slice a text of {} bytes",
        text.len()
    );
}

/// Whether `inner` lies within the whole lines that `area` touches, line
/// breaks included.
fn on_lines_of(source: &SourceFile, area: Span, inner: Span) -> bool {
    let first = source.line_start(source.line_index(area.start));
    let last = source.line_start(source.line_index(area.end) + 1);
    first <= inner.start && inner.end <= last
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A path that does not exist: group references resolve to nothing
    // instead of reading whatever the fuzzer names.
    let source = SourceFile::new("/nonexistent/donmai-fuzz/workflow.yaml", text.as_ref());
    let diagnostics =
        apply_suppressions(&source, check_file(&source, &Project::default_for_tests()));
    for diagnostic in &diagnostics {
        assert_slices(&text, diagnostic.span, "primary");
        for label in &diagnostic.labels {
            assert_slices(&text, label.span, "label");
        }
        for edit in diagnostic.fix.iter().flat_map(|f| &f.edits) {
            assert_slices(&text, edit.span, "fix edit");
            // On the lines of what the diagnostic points at (removing an
            // unused suppression removes its whole comment).
            assert!(
                std::iter::once(diagnostic.span)
                    .chain(diagnostic.labels.iter().map(|l| l.span))
                    .any(|area| on_lines_of(&source, area, edit.span)),
                "{} fix edit {} lies off the lines of its diagnostic {}",
                diagnostic.code,
                edit.span,
                diagnostic.span
            );
        }
    }
    let report = CheckReport {
        files: vec![FileReport::new(source.clone(), diagnostics.clone())],
        failures: Vec::new(),
        files_checked: 1,
    };
    for format in [Format::Human, Format::Json, Format::Sarif, Format::Github] {
        let _ = render(&report, format, &RenderOptions::default());
    }
    // Applying every compatible fix gives a file the checker still handles.
    let (edits, count) = select_edits(&text, diagnostics.iter().filter_map(|d| d.fix.as_ref()));
    if count > 0 {
        let fixed = apply_edits(&text, &edits);
        let source = SourceFile::new(source.path(), fixed);
        for diagnostic in check_file(&source, &Project::default_for_tests()) {
            assert_slices(source.text(), diagnostic.span, "primary after fixing");
        }
    }
});
