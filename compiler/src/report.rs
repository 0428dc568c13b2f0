//! The outcome of a `check` run: diagnostics tied to their files, plus the
//! files that could not be checked at all. Every output format renders this.

use donmai_grammar::span::LineCol;
use donmai_grammar::{Diagnostic, Severity, SourceFile, Span};
use std::path::{Path, PathBuf};

/// The diagnostics of one file, sorted by position.
#[derive(Clone, Debug)]
pub struct FileReport {
    /// The file's text; its path is the one shown to the user (relative paths
    /// stay relative).
    pub source: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    pub fn new(source: SourceFile, mut diagnostics: Vec<Diagnostic>) -> FileReport {
        sort_diagnostics(&mut diagnostics);
        FileReport {
            source,
            diagnostics,
        }
    }

    pub fn path(&self) -> &Path {
        self.source.path()
    }
}

/// Position order, then code, so output never depends on checker order.
pub fn sort_diagnostics(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.span.start, a.span.end, a.code, &a.message).cmp(&(
            b.span.start,
            b.span.end,
            b.code,
            &b.message,
        ))
    });
}

/// A path that could not be checked: missing, unreadable, not UTF-8, or the
/// checker failed on it. Any of these makes the exit code 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub path: PathBuf,
    pub message: String,
}

#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Every file with diagnostics or checked, sorted by path; project files
    /// (`donmai.toml`) with problems appear here too.
    pub files: Vec<FileReport>,
    pub failures: Vec<Failure>,
    /// How many workflow files were checked (project files not counted).
    pub files_checked: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
}

impl CheckReport {
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            files: self.files_checked,
            ..Summary::default()
        };
        for diagnostic in self.diagnostics().map(|(_, d)| d) {
            match diagnostic.severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
            }
        }
        summary
    }

    /// Every diagnostic with its file, in output order.
    pub fn diagnostics(&self) -> impl Iterator<Item = (&SourceFile, &Diagnostic)> {
        self.files
            .iter()
            .flat_map(|file| file.diagnostics.iter().map(move |d| (&file.source, d)))
    }
}

/// A span as 1-based lines and character columns; the end is exclusive (the
/// column just past the last character), as JSON, SARIF and GitHub expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: LineCol,
    pub end: LineCol,
}

impl Region {
    pub fn of(source: &SourceFile, span: Span) -> Region {
        let start = source.line_col(span.start);
        let end = source.line_col(span.end.max(span.start));
        Region { start, end }
    }
}

/// `1 error`, `2 errors`.
pub fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else if word.ends_with(['s', 'x']) {
        format!("{count} {word}es")
    } else {
        format!("{count} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use donmai_grammar::Code;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "fix"), "1 fix");
        assert_eq!(plural(2, "fix"), "2 fixes");
        assert_eq!(plural(0, "file"), "0 files");
    }

    #[test]
    fn summary_counts_by_severity() {
        let source = SourceFile::new("a.yaml", "a: 1\n");
        let mut warning = Diagnostic::new(Code::UNUSED_OUTPUT, Span::new(0, 1), "w");
        warning.severity = Severity::Warning;
        let report = CheckReport {
            files: vec![FileReport::new(
                source,
                vec![
                    Diagnostic::new(Code::DUPLICATE_KEY, Span::new(0, 1), "e"),
                    warning,
                ],
            )],
            failures: Vec::new(),
            files_checked: 3,
        };
        assert_eq!(
            report.summary(),
            Summary {
                files: 3,
                errors: 1,
                warnings: 1
            }
        );
    }

    #[test]
    fn region_is_one_based_and_end_exclusive() {
        let source = SourceFile::new("a.yaml", "ab\ncdé\n");
        let region = Region::of(&source, Span::new(3, 7));
        assert_eq!((region.start.line, region.start.column), (2, 1));
        assert_eq!((region.end.line, region.end.column), (2, 4));
    }

    #[test]
    fn sorting_is_by_position_then_code() {
        let mut diagnostics = vec![
            Diagnostic::new(Code::CYCLE, Span::new(5, 6), "b"),
            Diagnostic::new(Code::UNKNOWN_KEY, Span::new(0, 2), "a"),
            Diagnostic::new(Code::DUPLICATE_KEY, Span::new(5, 6), "c"),
        ];
        sort_diagnostics(&mut diagnostics);
        let codes: Vec<Code> = diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, [Code::UNKNOWN_KEY, Code::DUPLICATE_KEY, Code::CYCLE]);
    }
}
