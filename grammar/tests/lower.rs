//! Lowering of whole workflow files: the examples lower without a
//! diagnostic, and structural mistakes are reported with exact spans.

use donmai_grammar::ast::*;
use donmai_grammar::lower::parse_workflow;
use donmai_grammar::{Code, SourceFile};

fn examples() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("groups")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn examples_lower_cleanly() {
    for path in examples() {
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = parse_workflow(&text);
        assert!(
            parsed.diagnostics.is_empty(),
            "{}: {:#?}",
            path.display(),
            parsed.diagnostics
        );
        assert!(parsed.workflow.is_some());
    }
}

fn codes(text: &str) -> Vec<(Code, String)> {
    let file = SourceFile::new("t.yaml", text);
    parse_workflow(text)
        .diagnostics
        .into_iter()
        .map(|d| (d.code, file.slice(d.span).to_string()))
        .collect()
}

const HEAD: &str =
    "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: t, version: \"1\"}\n";

#[test]
fn unknown_keys_suggest_the_closest() {
    let text = format!("{HEAD}spec:\n  steps:\n    - {{id: a, type: trigger, nxt: [b]}}\n");
    let found = codes(&text);
    assert_eq!(found, vec![(Code::UNKNOWN_KEY, "nxt".to_string())]);
    let diagnostic = &parse_workflow(&text).diagnostics[0];
    assert_eq!(diagnostic.help.as_deref(), Some("did you mean `next`?"));
}

#[test]
fn unquoted_template_gets_a_quoting_fix() {
    let text = format!(
        "{HEAD}spec:\n  steps:\n    - id: a\n      type: action\n      config:\n        action: x@1:y\n        issueId: {{{{ trigger.issueId }}}}\n"
    );
    let parsed = parse_workflow(&text);
    assert_eq!(parsed.diagnostics.len(), 1, "{:#?}", parsed.diagnostics);
    let d = &parsed.diagnostics[0];
    assert_eq!(d.code, Code::UNQUOTED_TEMPLATE);
    let fix = d.fix.as_ref().unwrap();
    assert_eq!(fix.edits[0].replacement, "\"{{ trigger.issueId }}\"");
    assert_eq!(
        &text[fix.edits[0].span.start..fix.edits[0].span.end],
        "{{ trigger.issueId }}"
    );
}

#[test]
fn template_spans_point_into_the_file() {
    let text = format!(
        "{HEAD}spec:\n  steps:\n    - id: a\n      type: action\n      config:\n        action: x@1:y\n        body: \"say \\\"{{{{ nodes.b.output.x }}}}\\\"\"\n"
    );
    let parsed = parse_workflow(&text);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let workflow = parsed.workflow.unwrap();
    let ValueKind::Str { template, .. } = &workflow.steps[0].inputs[0].value.kind else {
        panic!()
    };
    let expr = template
        .segments
        .iter()
        .find_map(|s| match s {
            donmai_grammar::template::Segment::Expr { expr, .. } => Some(expr),
            _ => None,
        })
        .unwrap();
    assert_eq!(&text[expr.span.start..expr.span.end], "nodes.b.output.x");
}

#[test]
fn not_a_workflow_and_wrong_versions() {
    assert_eq!(codes("name: x\n")[0].0, Code::NOT_A_WORKFLOW);
    assert_eq!(codes("")[0].0, Code::NOT_A_WORKFLOW);
    assert_eq!(
        codes("apiVersion: workflow/v9\n")[0].0,
        Code::UNSUPPORTED_API_VERSION
    );
    assert_eq!(codes("- a\n")[0].0, Code::NOT_A_WORKFLOW);
}

#[test]
fn bad_values_are_reported_and_lowering_goes_on() {
    let text = format!(
        "{HEAD}spec:\n  steps:\n    - {{id: a, type: trigger}}\n    - {{id: b, type: acton}}\n    - {{id: c, type: gate, gateConfig: {{onTimeout: later, timeoutMs: soon}}}}\n"
    );
    let found = codes(&text);
    assert!(
        found.contains(&(Code::INVALID_VALUE, "acton".to_string())),
        "{found:?}"
    );
    assert!(
        found.contains(&(Code::INVALID_VALUE, "later".to_string())),
        "{found:?}"
    );
    assert!(
        found.contains(&(Code::WRONG_SHAPE, "soon".to_string())),
        "{found:?}"
    );
}

#[test]
fn types_parse_with_spans() {
    let ty = parse_type("map<string, list<int?>>?").unwrap();
    assert!(matches!(ty.kind, TypeSyntaxKind::Optional(_)));
    assert!(parse_type("map<int, string>").is_err());
    assert!(parse_type("list").is_err());
    assert!(parse_type("string extra").is_err());
}

use donmai_grammar::lower::parse_type;
