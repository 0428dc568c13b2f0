//! `--format json`: one document,
//! `{"diagnostics":[…],"summary":{"files","errors","warnings"}}`.
//!
//! Lines and columns are 1-based, columns count characters, and the end is
//! exclusive (the column just after the last character). `code`, `severity`,
//! `file`, `line`, `column`, `endLine`, `endColumn`, `message` and `help`
//! are the stable contract; `name`, `labels` and `fix` follow them.

use crate::report::{CheckReport, Region};
use donmai_grammar::{Diagnostic, SourceFile, Span};
use serde::Serialize;

#[derive(Serialize)]
struct Document<'a> {
    diagnostics: Vec<JsonDiagnostic<'a>>,
    summary: JsonSummary,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonDiagnostic<'a> {
    code: String,
    severity: &'static str,
    file: String,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: &'a str,
    help: Option<&'a str>,
    name: &'static str,
    labels: Vec<JsonLabel<'a>>,
    fix: Option<JsonFix<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLabel<'a> {
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonFix<'a> {
    message: &'a str,
    edits: Vec<JsonEdit<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonEdit<'a> {
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    /// Byte offsets into the file, for tools that splice text directly.
    start_offset: usize,
    end_offset: usize,
    replacement: &'a str,
}

#[derive(Serialize)]
struct JsonSummary {
    files: usize,
    errors: usize,
    warnings: usize,
}

/// Positions of `span`: (line, column, endLine, endColumn).
fn position(source: &SourceFile, span: Span) -> (usize, usize, usize, usize) {
    let region = Region::of(source, span);
    (
        region.start.line,
        region.start.column,
        region.end.line,
        region.end.column,
    )
}

fn diagnostic<'a>(source: &SourceFile, d: &'a Diagnostic) -> JsonDiagnostic<'a> {
    let (line, column, end_line, end_column) = position(source, d.span);
    JsonDiagnostic {
        code: d.code.to_string(),
        severity: d.severity.as_str(),
        file: source.path().to_string_lossy().into_owned(),
        line,
        column,
        end_line,
        end_column,
        message: &d.message,
        help: d.help.as_deref(),
        name: d.code.name(),
        labels: d
            .labels
            .iter()
            .map(|label| {
                let (line, column, end_line, end_column) = position(source, label.span);
                JsonLabel {
                    line,
                    column,
                    end_line,
                    end_column,
                    message: &label.message,
                }
            })
            .collect(),
        fix: d.fix.as_ref().map(|fix| JsonFix {
            message: &fix.message,
            edits: fix
                .edits
                .iter()
                .map(|edit| {
                    let (line, column, end_line, end_column) = position(source, edit.span);
                    JsonEdit {
                        line,
                        column,
                        end_line,
                        end_column,
                        start_offset: edit.span.start,
                        end_offset: edit.span.end,
                        replacement: &edit.replacement,
                    }
                })
                .collect(),
        }),
    }
}

pub fn render(report: &CheckReport) -> String {
    let summary = report.summary();
    let document = Document {
        diagnostics: report
            .diagnostics()
            .map(|(source, d)| diagnostic(source, d))
            .collect(),
        summary: JsonSummary {
            files: summary.files,
            errors: summary.errors,
            warnings: summary.warnings,
        },
    };
    // Serializing plain structs of strings and numbers cannot fail.
    let mut out = serde_json::to_string(&document).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;

    #[test]
    fn snapshot() {
        let out = render(&fixtures::report());
        let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        insta::assert_json_snapshot!(value);
    }

    #[test]
    fn named_fields_come_first_and_exactly() {
        let out = render(&fixtures::report());
        let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        let first = &value["diagnostics"][0];
        assert_eq!(first["code"], "DN0002");
        assert_eq!(first["severity"], "error");
        assert_eq!(first["file"], "flows/a b.yaml");
        assert_eq!(
            (first["line"].as_u64(), first["column"].as_u64()),
            (Some(5), Some(3))
        );
        assert_eq!(
            (first["endLine"].as_u64(), first["endColumn"].as_u64()),
            (Some(5), Some(7))
        );
        assert_eq!(first["help"], "remove one of the two `name` keys");
        assert_eq!(
            value["diagnostics"][1]["fix"]["edits"][0]["replacement"],
            "workType"
        );
        assert_eq!(value["diagnostics"][2]["help"], serde_json::Value::Null);
        assert_eq!(
            value["summary"],
            serde_json::json!({"files": 3, "errors": 2, "warnings": 1})
        );
        assert!(out.starts_with(
            "{\"diagnostics\":[{\"code\":\"DN0002\",\"severity\":\"error\",\"file\":"
        ));
    }

    #[test]
    fn clean_run() {
        assert_eq!(
            render(&fixtures::clean()),
            "{\"diagnostics\":[],\"summary\":{\"files\":1,\"errors\":0,\"warnings\":0}}\n"
        );
    }
}
