//! Output formats of `donmaic check`. Every format is a pure function of a
//! [`CheckReport`], so each is snapshot-tested from fixed diagnostics.

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

use crate::report::CheckReport;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Source snippets with labels, for people.
    #[default]
    Human,
    /// One JSON document with every diagnostic and a summary.
    Json,
    /// A SARIF 2.1.0 log, for code-scanning tools.
    Sarif,
    /// GitHub Actions workflow commands (`::error file=…::…`).
    Github,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// ANSI colours (human format only).
    pub color: bool,
    /// Warnings fail the run; the human summary says so.
    pub deny_warnings: bool,
}

/// The whole output of a run in `format`, ending with a newline unless empty.
pub fn render(report: &CheckReport, format: Format, options: &RenderOptions) -> String {
    match format {
        Format::Human => human::render(report, options),
        Format::Json => json::render(report),
        Format::Sarif => sarif::render(report),
        Format::Github => github::render(report),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Fixed reports shared by the renderers' snapshot tests.

    use crate::report::{CheckReport, Failure, FileReport};
    use donmai_grammar::{Code, Diagnostic, Severity, SourceFile, Span};
    use std::path::PathBuf;

    pub const WORKFLOW: &str = "\
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata:
  name: triage
  name: again
  version: \"1\"
spec:
  steps:
    - id: dispatch
      type: action
      config:
        action: donmai@2:agent.dispatch_to_queue
        workTpe: development
";

    fn span_of(text: &str, needle: &str, nth: usize) -> Span {
        let start = text
            .match_indices(needle)
            .nth(nth)
            .map(|(at, _)| at)
            .expect("needle in fixture");
        Span::new(start, start + needle.len())
    }

    /// Two files, an error with a label and a fix, a warning, one failure.
    pub fn report() -> CheckReport {
        let duplicate = Diagnostic::new(
            Code::DUPLICATE_KEY,
            span_of(WORKFLOW, "name", 1),
            "duplicate key `name` in `metadata`",
        )
        .with_label(span_of(WORKFLOW, "name", 0), "first defined here")
        .with_help("remove one of the two `name` keys");
        let unknown = Diagnostic::new(
            Code::UNKNOWN_INPUT,
            span_of(WORKFLOW, "workTpe", 0),
            "`agent.dispatch_to_queue` has no input `workTpe`",
        )
        .with_help("did you mean `workType`?")
        .with_replacement(
            "rename to `workType`",
            span_of(WORKFLOW, "workTpe", 0),
            "workType",
        );
        let second = "apiVersion: workflow/v2\nkind: WorkflowDefinition # \"quoted\", 100%\n";
        let mut warning = Diagnostic::new(
            Code::TRIGGER_DATA_DEPRECATED,
            span_of(second, "WorkflowDefinition", 0),
            "a message with: colons, commas, 100%\nand a second line",
        );
        warning.severity = Severity::Warning;
        CheckReport {
            files: vec![
                FileReport::new(
                    SourceFile::new("flows/a b.yaml", WORKFLOW),
                    vec![unknown, duplicate],
                ),
                FileReport::new(
                    SourceFile::new("flows/clean.yaml", "apiVersion: workflow/v2\n"),
                    vec![],
                ),
                FileReport::new(SourceFile::new("z.yml", second), vec![warning]),
            ],
            failures: vec![Failure {
                path: PathBuf::from("broken.yaml"),
                message: "not valid UTF-8 (invalid byte at offset 3)".to_string(),
            }],
            files_checked: 3,
        }
    }

    pub fn clean() -> CheckReport {
        CheckReport {
            files: vec![FileReport::new(
                SourceFile::new("a.yaml", "apiVersion: workflow/v2\n"),
                vec![],
            )],
            failures: vec![],
            files_checked: 1,
        }
    }
}
