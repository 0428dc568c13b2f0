//! The default format: each diagnostic as
//!
//! ```text
//! error[DN0002]: duplicate key `name` in `metadata`
//!    ╭─[ flows/a.yaml:5:3 ]
//!    │
//!  4 │   name: triage
//!    │   ──┬─
//!    │     ╰─── first defined here
//!  5 │   name: again
//!    │   ──┬─
//! ───╯
//! help: remove one of the two `name` keys
//! ```
//!
//! then one summary line. Snippets are drawn by ariadne; the header, help
//! and fix lines are ours, so their wording does not depend on its version.

use super::RenderOptions;
use crate::report::{CheckReport, plural};
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};
use donmai_grammar::{Diagnostic, Severity, SourceFile, Span};
use std::fmt::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};

const ESC_RESET: &str = "\x1b[0m";

fn paint(text: &str, color: Color, on: bool) -> String {
    if on {
        let code = match color {
            Color::Red => "\x1b[1;31m",
            Color::Yellow => "\x1b[1;33m",
            Color::Cyan => "\x1b[1;36m",
            _ => "\x1b[1m",
        };
        format!("{code}{text}{ESC_RESET}")
    } else {
        text.to_string()
    }
}

fn severity_color(severity: Severity) -> Color {
    match severity {
        Severity::Error => Color::Red,
        Severity::Warning => Color::Yellow,
    }
}

/// A span ariadne can draw: on character boundaries, inside the text, and
/// one character wide when empty (an insertion point still gets a caret).
fn drawable(source: &SourceFile, span: Span) -> std::ops::Range<usize> {
    let text = source.text();
    let start = source.clamp(span.start);
    let end = source.clamp(span.end).max(start);
    if end > start {
        return start..end;
    }
    match text[start..].chars().next() {
        Some(c) if c != '\n' && c != '\r' => start..start + c.len_utf8(),
        _ => start..start,
    }
}

/// Lines longer than this (in bytes) are not drawn whole: each diagnostic on
/// a minified one-line workflow repeated the whole line, so the output grew
/// with the square of the file (8,000 errors on a 200 KB line: 3.3 GB).
const MAX_DRAWN_LINE: usize = 400;
/// Characters shown on each side of the primary span of a long line.
const EXCERPT_CONTEXT: usize = 40;

/// Whether any line a span of the diagnostic covers (not only the lines its
/// ends are on) is too long to draw.
fn touches_long_line(source: &SourceFile, diagnostic: &Diagnostic) -> bool {
    // ariadne draws a position in the trailing line breaks on the last line
    // with text, so such positions count as that line.
    let content_end = source.text().trim_end_matches(['\n', '\r']).len();
    let line_of = |offset: usize| source.line_index(offset.min(content_end));
    std::iter::once(diagnostic.span)
        .chain(diagnostic.labels.iter().map(|l| l.span))
        .any(|span| {
            let first = line_of(span.start.min(span.end));
            let last = line_of(span.start.max(span.end));
            (first..=last).any(|line| source.line_text(line).len() > MAX_DRAWN_LINE)
        })
}

/// The location and a window of the primary span's line, with carets under
/// the span (cut at the window), for a diagnostic on a very long line.
fn excerpt(source: &SourceFile, diagnostic: &Diagnostic) -> String {
    let name = source.path().to_string_lossy();
    let start = source.clamp(diagnostic.span.start);
    let line = source.line_index(start);
    let line_start = source.line_start(line);
    let text = source.line_text(line);
    // An offset on the `\n` of a `\r\n` lies past the line's text.
    let column = (start - line_start).min(text.len());
    let end = (source.clamp(diagnostic.span.end).max(start) - line_start).min(text.len());
    let before: Vec<(usize, char)> = text[..column]
        .char_indices()
        .rev()
        .take(EXCERPT_CONTEXT)
        .collect();
    let window_start = before.last().map_or(column, |&(i, _)| i);
    let shown_span: String = text[column..end].chars().take(EXCERPT_CONTEXT).collect();
    let after: String = text[column + shown_span.len()..]
        .chars()
        .take(EXCERPT_CONTEXT)
        .collect();
    let window_end = column + shown_span.len() + after.len();
    let lead = if window_start > 0 { "…" } else { "" };
    let tail = if window_end < text.len() { "…" } else { "" };
    let at = source.line_col(start);
    let pad = lead.chars().count() + before.len();
    let carets = shown_span.chars().count().max(1);
    format!(
        "  --> {name}:{}:{}\n   | {lead}{}{tail}\n   | {}{}\n",
        at.line,
        at.column,
        &text[window_start..window_end],
        " ".repeat(pad),
        "^".repeat(carets)
    )
}

fn snippet(
    source: &SourceFile,
    lines: &ariadne::Source<&str>,
    diagnostic: &Diagnostic,
    color: bool,
) -> String {
    if touches_long_line(source, diagnostic) {
        return excerpt(source, diagnostic);
    }
    let name = source.path().to_string_lossy().into_owned();
    let primary = drawable(source, diagnostic.span);
    let kind_color = severity_color(diagnostic.severity);
    let config = Config::default()
        .with_color(color)
        .with_index_type(IndexType::Byte);
    // ariadne starts a new snippet section whenever a label's line is above
    // the previous label's, so labels go in in line order.
    let first_line = diagnostic.message.lines().next().unwrap_or("");
    let mut labels = vec![(primary.clone(), first_line, kind_color)];
    labels.extend(diagnostic.labels.iter().map(|label| {
        (
            drawable(source, label.span),
            label.message.as_str(),
            Color::Cyan,
        )
    }));
    labels.sort_by_key(|(span, _, _)| (span.start, span.end));
    let builder = Report::build(ReportKind::Custom("", kind_color), (name.clone(), primary))
        .with_config(config)
        .with_labels(labels.into_iter().map(|(span, message, label_color)| {
            Label::new((name.clone(), span))
                .with_message(message)
                .with_color(label_color)
        }));
    let mut out = Vec::new();
    // ariadne indexes into the text with the spans it is given; a bug there
    // must cost the snippet, not the whole run.
    let written = catch_unwind(AssertUnwindSafe(|| {
        builder
            .finish()
            .write_for_stdout((name.clone(), lines), &mut out)
    }));
    if !matches!(written, Ok(Ok(()))) {
        let at = source.line_col(diagnostic.span.start);
        return format!("  --> {name}:{}:{}\n", at.line, at.column);
    }
    let text = String::from_utf8_lossy(&out);
    // Drop ariadne's own header line: ours comes first, in our wording.
    text.split_once('\n')
        .map_or(String::new(), |(_, rest)| rest.to_string())
}

/// `lines` is ariadne's line index of `source`, built once per file: built
/// per diagnostic it made rendering quadratic (1M diagnostics in a 19 MB
/// file ran for hours).
fn diagnostic(
    out: &mut String,
    source: &SourceFile,
    lines: &ariadne::Source<&str>,
    d: &Diagnostic,
    color: bool,
) {
    let header = format!("{}[{}]", d.severity.as_str(), d.code);
    let _ = writeln!(
        out,
        "{}: {}",
        paint(&header, severity_color(d.severity), color),
        d.message
    );
    out.push_str(&snippet(source, lines, d, color));
    if let Some(help) = &d.help {
        let _ = writeln!(out, "{}: {help}", paint("help", Color::Cyan, color));
    }
    if let Some(fix) = &d.fix {
        let _ = writeln!(
            out,
            "{}: {} (`donmaic check --fix` applies it)",
            paint("fix", Color::Cyan, color),
            fix.message
        );
    }
}

pub fn summary_line(report: &CheckReport, options: &RenderOptions) -> String {
    let summary = report.summary();
    let files = plural(summary.files, "file");
    let mut line = if summary.errors == 0 && summary.warnings == 0 {
        format!("checked {files}: no problems")
    } else {
        let mut counts = Vec::new();
        if summary.errors > 0 {
            counts.push(plural(summary.errors, "error"));
        }
        if summary.warnings > 0 {
            counts.push(plural(summary.warnings, "warning"));
        }
        format!("{} in {files}", counts.join(", "))
    };
    if options.deny_warnings && summary.warnings > 0 {
        line.push_str(" (warnings are denied)");
    }
    if !report.failures.is_empty() {
        let _ = write!(
            line,
            "; {} could not be checked",
            plural(report.failures.len(), "path")
        );
    }
    line
}

pub fn render(report: &CheckReport, options: &RenderOptions) -> String {
    let mut out = String::new();
    let mut indexed: Option<(&SourceFile, ariadne::Source<&str>)> = None;
    for (source, d) in report.diagnostics() {
        let lines = match &indexed {
            Some((file, lines)) if std::ptr::eq(*file, source) => lines,
            _ => {
                &indexed
                    .insert((source, ariadne::Source::from(source.text())))
                    .1
            }
        };
        diagnostic(&mut out, source, lines, d, options.color);
        out.push('\n');
    }
    out.push_str(&summary_line(report, options));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;
    use donmai_grammar::Code;

    #[test]
    fn snapshot_without_color() {
        insta::assert_snapshot!(render(&fixtures::report(), &RenderOptions::default()));
    }

    #[test]
    fn clean_summary() {
        assert_eq!(
            render(&fixtures::clean(), &RenderOptions::default()),
            "checked 1 file: no problems\n"
        );
    }

    #[test]
    fn color_only_when_asked() {
        let plain = render(&fixtures::report(), &RenderOptions::default());
        assert!(!plain.contains('\x1b'));
        let colored = render(
            &fixtures::report(),
            &RenderOptions {
                color: true,
                deny_warnings: true,
            },
        );
        assert!(colored.contains("\x1b[1;31merror[DN0002]\x1b[0m"));
        assert!(colored.ends_with("(warnings are denied); 1 path could not be checked\n"));
    }

    proptest::proptest! {
        #[test]
        fn any_span_on_any_text_renders(
            text in "(a|é|\\n|\\r\\n|\\t| |😀|#){0,40}",
            spans in proptest::collection::vec((0usize..60, 0usize..60), 1..4),
        ) {
            let source = SourceFile::new("p.yaml", text);
            let (start, end) = spans[0];
            let mut d = Diagnostic::new(Code::MISSING_FIELD, Span::new(start, end), "m");
            for &(start, end) in &spans[1..] {
                d = d.with_label(Span::new(start, end), "l");
            }
            let mut out = String::new();
            diagnostic(&mut out, &source, &ariadne::Source::from(source.text()), &d, false);
            proptest::prop_assert!(out.starts_with("error[DN0007]: m\n"));
            proptest::prop_assert!(!out.contains("  --> "), "ariadne failed: {out}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_span_on_long_lines_renders(
            head in "(a|é|\\n|\\r\\n|\\t| |😀){0,20}",
            tail in "(a|é|\\n|\\r\\n|\\t| |😀){0,20}",
            spans in proptest::collection::vec((0usize..1000, 0usize..1000), 1..4),
        ) {
            let source = SourceFile::new("p.yaml", format!("{head}{}{tail}", "é".repeat(300)));
            let (start, end) = spans[0];
            let mut d = Diagnostic::new(Code::MISSING_FIELD, Span::new(start, end), "m");
            for &(start, end) in &spans[1..] {
                d = d.with_label(Span::new(start, end), "l");
            }
            let mut out = String::new();
            diagnostic(&mut out, &source, &ariadne::Source::from(source.text()), &d, false);
            proptest::prop_assert!(out.starts_with("error[DN0007]: m\n"));
            proptest::prop_assert!(out.len() < 2000, "{out}");
        }
    }

    #[test]
    fn long_lines_are_cut_around_the_span() {
        let text = format!("k: [{}bad, {}]\n", "é, ".repeat(300), "x, ".repeat(300));
        let source = SourceFile::new("long.yaml", text.as_str());
        let at = text.find("bad").expect("bad");
        let d = Diagnostic::new(Code::MISSING_FIELD, Span::new(at, at + 3), "m")
            .with_label(Span::at(0), "l");
        let mut out = String::new();
        diagnostic(
            &mut out,
            &source,
            &ariadne::Source::from(source.text()),
            &d,
            false,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "  --> long.yaml:1:905");
        // 40 characters either side of the span, cut with an ellipsis.
        let window = format!(" {}bad, {}x,", "é, ".repeat(13), "x, ".repeat(12));
        assert_eq!(lines[2], format!("   | …{window}…"));
        assert_eq!(lines[3], format!("   | {}^^^", " ".repeat(41)));
        assert!(out.len() < 400, "{out}");
    }

    #[test]
    fn empty_and_out_of_range_spans_are_drawn() {
        let source = SourceFile::new("e.yaml", "a: 1\n");
        for span in [Span::at(0), Span::at(4), Span::at(5), Span::new(3, 999)] {
            let d = Diagnostic::new(Code::MISSING_FIELD, span, "missing");
            let mut out = String::new();
            diagnostic(
                &mut out,
                &source,
                &ariadne::Source::from(source.text()),
                &d,
                false,
            );
            assert!(out.starts_with("error[DN0007]: missing\n"), "{out}");
        }
        let empty = SourceFile::new("empty.yaml", "");
        let mut out = String::new();
        diagnostic(
            &mut out,
            &empty,
            &ariadne::Source::from(empty.text()),
            &Diagnostic::new(Code::NOT_A_WORKFLOW, Span::at(0), "empty"),
            false,
        );
        assert!(out.starts_with("error[DN0004]: empty\n"));
    }
}
