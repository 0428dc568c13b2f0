//! `--format sarif`: a SARIF 2.1.0 log with one run of `donmaic`.
//!
//! Rules are the codes that occur, with their `donmaic explain` text as
//! help. Regions use 1-based lines and columns counted in Unicode code points
//! (declared with `columnKind`), the end column exclusive as SARIF defines.
//! Relative paths become relative URIs against `%SRCROOT%`. Labels become
//! related locations, machine-applicable fixes become `fixes`, and files that
//! could not be checked become tool execution notifications.

use crate::explain;
use crate::report::{CheckReport, Region};
use donmai_grammar::{Code, Diagnostic, Severity, SourceFile, Span};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

pub const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";
pub const SRCROOT: &str = "%SRCROOT%";

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `/`.
fn encode_uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An `artifactLocation`: a relative URI with forward slashes against
/// `%SRCROOT%`, or a `file://` URI for an absolute path.
fn artifact_location(path: &Path) -> Value {
    let text = path.to_string_lossy().replace('\\', "/");
    if path.is_absolute() {
        let text = if text.starts_with('/') {
            text
        } else {
            format!("/{text}")
        };
        json!({ "uri": format!("file://{}", encode_uri_path(&text)) })
    } else {
        json!({ "uri": encode_uri_path(&text), "uriBaseId": SRCROOT })
    }
}

fn region(source: &SourceFile, span: Span) -> Value {
    let region = Region::of(source, span);
    json!({
        "startLine": region.start.line,
        "startColumn": region.start.column,
        "endLine": region.end.line,
        "endColumn": region.end.column,
    })
}

fn rule(code: Code) -> Value {
    let info = code.info();
    let summary = info.map_or("", |info| info.summary);
    let mut rule = json!({
        "id": code.to_string(),
        "name": code.name(),
        "shortDescription": { "text": summary },
        "fullDescription": { "text": explain::explanation(code).unwrap_or_else(|| summary.to_string()) },
        "defaultConfiguration": { "level": level(code.default_severity()) },
    });
    if let Some(doc) = explain::doc(code) {
        rule["help"] = json!({ "text": doc, "markdown": doc });
    }
    rule
}

fn result(source: &SourceFile, d: &Diagnostic, rule_index: usize) -> Value {
    let artifact = artifact_location(source.path());
    let mut text = d.message.clone();
    if let Some(help) = &d.help {
        text.push_str("\nhelp: ");
        text.push_str(help);
    }
    let mut result = json!({
        "ruleId": d.code.to_string(),
        "ruleIndex": rule_index,
        "level": level(d.severity),
        "message": { "text": text },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": artifact,
                "region": region(source, d.span),
            }
        }],
    });
    if !d.labels.is_empty() {
        result["relatedLocations"] = d
            .labels
            .iter()
            .enumerate()
            .map(|(id, label)| {
                json!({
                    "id": id,
                    "message": { "text": label.message },
                    "physicalLocation": {
                        "artifactLocation": artifact,
                        "region": region(source, label.span),
                    },
                })
            })
            .collect();
    }
    if let Some(fix) = &d.fix {
        let replacements: Vec<Value> = fix
            .edits
            .iter()
            .map(|edit| {
                json!({
                    "deletedRegion": region(source, edit.span),
                    "insertedContent": { "text": edit.replacement },
                })
            })
            .collect();
        result["fixes"] = json!([{
            "description": { "text": fix.message },
            "artifactChanges": [{
                "artifactLocation": artifact,
                "replacements": replacements,
            }],
        }]);
    }
    result
}

pub fn log(report: &CheckReport) -> Value {
    let codes: BTreeMap<Code, usize> = {
        let mut used: Vec<Code> = report.diagnostics().map(|(_, d)| d.code).collect();
        used.sort();
        used.dedup();
        used.into_iter()
            .enumerate()
            .map(|(i, code)| (code, i))
            .collect()
    };
    let rules: Vec<Value> = codes.keys().map(|&code| rule(code)).collect();
    let results: Vec<Value> = report
        .diagnostics()
        .map(|(source, d)| result(source, d, codes.get(&d.code).copied().unwrap_or(0)))
        .collect();
    let notifications: Vec<Value> = report
        .failures
        .iter()
        .map(|failure| {
            json!({
                "level": "error",
                "message": { "text": format!("cannot check `{}`: {}", failure.path.display(), failure.message) },
                "locations": [{ "physicalLocation": { "artifactLocation": artifact_location(&failure.path) } }],
            })
        })
        .collect();
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "donmaic",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "invocations": [{
                "executionSuccessful": report.failures.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    })
}

pub fn render(report: &CheckReport) -> String {
    let mut out = serde_json::to_string_pretty(&log(report)).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;

    #[test]
    fn snapshot() {
        // The rules' help is the long explain text; the snapshot keeps the
        // structure readable by leaving it out (it is checked below).
        let mut value = log(&fixtures::report());
        for rule in value["runs"][0]["tool"]["driver"]["rules"]
            .as_array_mut()
            .expect("rules")
        {
            rule["help"] = json!("<explain text>");
            rule["fullDescription"] = json!("<explanation>");
        }
        value["runs"][0]["tool"]["driver"]["version"] = json!("<version>");
        insta::assert_json_snapshot!(value);
    }

    fn region_is_valid(region: &Value) -> bool {
        let number = |key: &str| region[key].as_u64().filter(|&n| n >= 1);
        match (
            number("startLine"),
            number("startColumn"),
            number("endLine"),
            number("endColumn"),
        ) {
            (Some(sl), Some(sc), Some(el), Some(ec)) => (sl, sc) <= (el, ec),
            _ => false,
        }
    }

    fn location_is_valid(location: &Value) -> bool {
        let physical = &location["physicalLocation"];
        let uri = physical["artifactLocation"]["uri"].as_str().unwrap_or("");
        !uri.is_empty()
            && !uri.contains('\\')
            && !uri.contains(' ')
            && region_is_valid(&physical["region"])
    }

    /// The requirements of SARIF 2.1.0 that consumers such as GitHub code
    /// scanning rely on.
    #[test]
    fn log_meets_the_sarif_requirements() {
        let value: Value = serde_json::from_str(&render(&fixtures::report())).expect("valid JSON");
        assert_eq!(value["version"], "2.1.0");
        assert_eq!(value["$schema"], SCHEMA);
        let runs = value["runs"].as_array().expect("runs is an array");
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        let driver = &run["tool"]["driver"];
        assert_eq!(driver["name"], "donmaic");
        assert!(driver["version"].is_string());
        let rules = driver["rules"].as_array().expect("rules");
        let ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids, ["DN0002", "DN0120", "DN0130"]);
        for rule in rules {
            assert!(rule["name"].is_string());
            assert!(rule["shortDescription"]["text"].is_string());
            assert!(rule["fullDescription"]["text"].is_string());
            assert!(
                rule["help"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("# DN"))
            );
            let level = rule["defaultConfiguration"]["level"]
                .as_str()
                .expect("level");
            assert!(["none", "note", "warning", "error"].contains(&level));
        }
        let results = run["results"].as_array().expect("results");
        assert_eq!(results.len(), 3);
        for result in results {
            let rule_id = result["ruleId"].as_str().expect("ruleId");
            let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
            assert_eq!(rules[index]["id"], rule_id, "ruleIndex points at its rule");
            assert!(["warning", "error"].contains(&result["level"].as_str().expect("level")));
            assert!(result["message"]["text"].is_string());
            let locations = result["locations"].as_array().expect("locations");
            assert!(locations.iter().all(location_is_valid));
            for related in result["relatedLocations"].as_array().into_iter().flatten() {
                assert!(related["id"].is_u64());
                assert!(location_is_valid(related));
            }
            for fix in result["fixes"].as_array().into_iter().flatten() {
                for change in fix["artifactChanges"].as_array().expect("changes") {
                    assert!(change["artifactLocation"]["uri"].is_string());
                    for replacement in change["replacements"].as_array().expect("replacements") {
                        assert!(region_is_valid(&replacement["deletedRegion"]));
                        assert!(replacement["insertedContent"]["text"].is_string());
                    }
                }
            }
        }
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "flows/a%20b.yaml"
        );
        assert_eq!(run["invocations"][0]["executionSuccessful"], false);
    }

    #[test]
    fn absolute_paths_become_file_uris() {
        assert_eq!(
            artifact_location(Path::new("/tmp/x y.yaml")),
            json!({ "uri": "file:///tmp/x%20y.yaml" })
        );
        assert_eq!(
            artifact_location(Path::new("a/é.yaml")),
            json!({ "uri": "a/%C3%A9.yaml", "uriBaseId": SRCROOT })
        );
    }
}
