//! Recorded verb answers for dry runs and tests (`--fixtures FILE`):
//!
//! ```yaml
//! fixtures:
//!   - verb: linear@1:linear.issue.update
//!     when: {issueId: LIN-1}      # optional: a subset of the inputs
//!     attempt: 1                  # optional: only this attempt
//!     output: {success: true}     # or `error: {kind, message}`
//!     handle: success             # optional: the branch a condition or gate takes
//! ```
//!
//! The first fixture whose `verb`, `when` and `attempt` match answers. `when`
//! matches when every key it names matches the input's value: maps match as
//! subsets again, other values by equality (`1` equals `1.0`). A call with no
//! fixture fails with kind `no_fixture`, naming the verb and the inputs; a
//! gate with no fixture waits for a signal as usual.

use super::{ExecError, VerbCall, VerbExecutor, VerbOutcome, error_kind};
use crate::plan::model::VerbRef;
use donmai_grammar::Code;
use donmai_grammar::span::{SourceFile, Span};
use donmai_grammar::yaml::{self, Node};
use donmai_stdlib::value::{Value, truncate_for_message};
use donmai_stdlib::yaml_json::document_to_json;
use std::fmt;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Fixture {
    /// `plugin@major:verb`.
    pub verb: String,
    pub when: Option<Value>,
    pub attempt: Option<u32>,
    pub answer: Result<Value, ExecError>,
    pub handle: Option<String>,
}

/// A problem in a fixtures file, with its position (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixtureError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for FixtureError {}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fixtures {
    fixtures: Vec<Fixture>,
}

const FIXTURE_KEYS: &[&str] = &["verb", "when", "attempt", "output", "error", "handle"];

impl Fixtures {
    pub fn new(fixtures: Vec<Fixture>) -> Fixtures {
        Fixtures { fixtures }
    }

    pub fn fixtures(&self) -> &[Fixture] {
        &self.fixtures
    }

    /// Reads a fixtures file; every problem is reported, each with its
    /// position.
    pub fn load(path: &Path) -> Result<Fixtures, Vec<FixtureError>> {
        let name = path.display().to_string();
        let bytes = donmai_grammar::span::read_regular_file(path).map_err(|e| {
            vec![FixtureError {
                file: name.clone(),
                line: 1,
                column: 1,
                message: format!("cannot read the fixtures file: {e}"),
            }]
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            vec![FixtureError {
                file: name.clone(),
                line: 1,
                column: 1,
                message: format!("the fixtures file is not UTF-8: {e}"),
            }]
        })?;
        Fixtures::parse(&name, &text)
    }

    /// Parses fixtures from `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Fixtures, Vec<FixtureError>> {
        let source = SourceFile::new(file, text);
        let mut parser = Parser {
            source: &source,
            errors: Vec::new(),
        };
        let fixtures = parser.document(text);
        if parser.errors.is_empty() {
            Ok(Fixtures { fixtures })
        } else {
            Err(parser.errors)
        }
    }

    /// The first fixture answering `call`.
    pub fn find(&self, call: &VerbCall<'_>) -> Option<&Fixture> {
        self.fixtures.iter().find(|fixture| {
            fixture.verb == call.qualified
                && fixture.attempt.is_none_or(|a| a == call.attempt)
                && fixture
                    .when
                    .as_ref()
                    .is_none_or(|when| matches_subset(call.input, when))
        })
    }

    fn answer(fixture: &Fixture) -> Result<VerbOutcome, ExecError> {
        match &fixture.answer {
            Ok(output) => Ok(VerbOutcome {
                output: output.clone(),
                handle: fixture.handle.clone(),
            }),
            Err(error) => Err(error.clone()),
        }
    }
}

impl VerbExecutor for Fixtures {
    fn execute(&self, call: &VerbCall<'_>) -> Result<VerbOutcome, ExecError> {
        match self.find(call) {
            Some(fixture) => Fixtures::answer(fixture),
            None => Err(ExecError::new(
                error_kind::NO_FIXTURE,
                format!(
                    "no fixture for `{}` (attempt {}) with input {}",
                    call.qualified,
                    call.attempt,
                    truncate_for_message(&call.input.to_canonical_json())
                ),
            )),
        }
    }

    fn is_inline(&self, _verb: &VerbRef) -> bool {
        true
    }

    fn resolve_gate(&self, call: &VerbCall<'_>) -> Option<Result<VerbOutcome, ExecError>> {
        self.find(call).map(Fixtures::answer)
    }
}

/// Whether `input` has every entry of `when` (recursively for maps).
pub fn matches_subset(input: &Value, when: &Value) -> bool {
    match (input, when) {
        (Value::Map(input), Value::Map(when)) => when.iter().all(|(key, expected)| {
            matches_subset(input.get(key).unwrap_or(&Value::Null), expected)
        }),
        (input, when) => input == when,
    }
}

struct Parser<'a> {
    source: &'a SourceFile,
    errors: Vec<FixtureError>,
}

impl Parser<'_> {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        let at = self.source.line_col(span.start);
        self.errors.push(FixtureError {
            file: self.source.path().display().to_string(),
            line: at.line,
            column: at.column,
            message: message.into(),
        });
    }

    fn document(&mut self, text: &str) -> Vec<Fixture> {
        let parsed = yaml::parse(text);
        for diagnostic in &parsed.diagnostics {
            self.error(diagnostic.span, diagnostic.message.clone());
        }
        if !parsed.diagnostics.is_empty() {
            return Vec::new();
        }
        let Some(root) = parsed.documents.first() else {
            self.error(
                Span::at(0),
                "the fixtures file is empty; expected `fixtures:`",
            );
            return Vec::new();
        };
        if parsed.documents.len() > 1 {
            self.error(
                parsed.documents[1].span,
                "a fixtures file holds one YAML document",
            );
        }
        let Some(entries) = root.as_map() else {
            self.error(root.span, "expected a mapping with a `fixtures` list");
            return Vec::new();
        };
        for entry in entries {
            if entry.key.as_str() != Some("fixtures") {
                self.error(entry.key.span, "unknown key; the file has only `fixtures`");
            }
        }
        let Some(list) = root.get("fixtures") else {
            self.error(root.span, "missing `fixtures`");
            return Vec::new();
        };
        let Some(items) = list.as_seq() else {
            self.error(
                list.span,
                format!("`fixtures` must be a list, not a {}", list.kind_name()),
            );
            return Vec::new();
        };
        items.iter().filter_map(|item| self.fixture(item)).collect()
    }

    fn fixture(&mut self, item: &Node) -> Option<Fixture> {
        let Some(entries) = item.as_map() else {
            self.error(
                item.span,
                format!("a fixture must be a mapping, not a {}", item.kind_name()),
            );
            return None;
        };
        let errors_before = self.errors.len();
        for entry in entries {
            match entry.key.as_str() {
                Some(key) if FIXTURE_KEYS.contains(&key) => {}
                _ => self.error(
                    entry.key.span,
                    format!(
                        "unknown fixture key; expected one of {}",
                        FIXTURE_KEYS.join(", ")
                    ),
                ),
            }
        }
        let verb = match item.get("verb") {
            None => {
                self.error(
                    item.span,
                    "missing `verb` (e.g. `linear@1:linear.issue.update`)",
                );
                None
            }
            Some(node) => match node.as_str() {
                Some(text) if valid_verb(text) => Some(text.to_string()),
                _ => {
                    self.error(
                        node.span,
                        "`verb` must be `plugin@major:verb`, e.g. `linear@1:linear.issue.update`",
                    );
                    None
                }
            },
        };
        let when = item.get("when").and_then(|node| {
            if node.as_map().is_none() {
                self.error(
                    node.span,
                    "`when` must be a mapping of input names to values",
                );
                return None;
            }
            self.value(node)
        });
        let attempt = item.get("attempt").and_then(|node| match self.value(node) {
            Some(Value::Int(n)) if n >= 1 && n <= i64::from(u32::MAX) => Some(n as u32),
            Some(_) => {
                self.error(node.span, "`attempt` must be a positive integer");
                None
            }
            None => None,
        });
        let handle = item.get("handle").and_then(|node| match node.as_str() {
            Some(text) if node.as_scalar().is_some() && !text.is_empty() => Some(text.to_string()),
            _ => {
                self.error(node.span, "`handle` must be a handle name");
                None
            }
        });
        let answer = match (item.get("output"), item.get("error")) {
            (Some(output), None) => self.value(output).map(Ok),
            (None, Some(error)) => self.error_answer(error).map(Err),
            (Some(_), Some(error)) => {
                self.error(error.span, "a fixture has `output` or `error`, not both");
                None
            }
            (None, None) => {
                self.error(item.span, "missing `output` (or `error`)");
                None
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Fixture {
            verb: verb?,
            when,
            attempt,
            answer: answer?,
            handle,
        })
    }

    fn error_answer(&mut self, node: &Node) -> Option<ExecError> {
        let message = node.as_str().map(str::to_string).or_else(|| {
            node.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
        let kind = node
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or(error_kind::FAILED)
            .to_string();
        let known = node.as_map().is_none_or(|entries| {
            entries
                .iter()
                .all(|e| matches!(e.key.as_str(), Some("kind" | "message")))
        });
        match message {
            Some(message) if known => Some(ExecError::new(kind, message)),
            _ => {
                self.error(
                    node.span,
                    "`error` must be a message or a mapping `{kind, message}`",
                );
                None
            }
        }
    }

    fn value(&mut self, node: &Node) -> Option<Value> {
        let (json, _, diagnostics) = document_to_json(node, Code::INVALID_VALUE);
        if diagnostics.is_empty() {
            Some(Value::from_json(&json))
        } else {
            for diagnostic in diagnostics {
                self.error(diagnostic.span, diagnostic.message);
            }
            None
        }
    }
}

fn valid_verb(text: &str) -> bool {
    let Some((pin, verb)) = text.split_once(':') else {
        return false;
    };
    let Some((plugin, major)) = pin.split_once('@') else {
        return false;
    };
    !plugin.is_empty()
        && !verb.is_empty()
        && !major.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{SideEffect, VerbKind};

    fn verb(plugin: &str, name: &str) -> VerbRef {
        VerbRef {
            plugin: plugin.into(),
            major: 1,
            verb: name.into(),
            kind: VerbKind::Action,
            side_effect: SideEffect::ExternalWrite,
            required_inputs: vec![],
            route_by: None,
            route_cases: Vec::new(),
            handles: vec![],
            events: vec![],
            idempotency_key: None,
        }
    }

    fn call<'a>(
        verb: &'a VerbRef,
        qualified: &'a str,
        input: &'a Value,
        attempt: u32,
    ) -> VerbCall<'a> {
        VerbCall {
            verb,
            qualified,
            input,
            idempotency_key: "k",
            attempt,
            timeout_ms: None,
            run_id: "r",
            step_id: "s",
        }
    }

    fn input(json: serde_json::Value) -> Value {
        Value::from_json(&json)
    }

    const FILE: &str = "\
fixtures:
  - verb: linear@1:linear.issue.update
    when: {issueId: LIN-1, meta: {n: 1}}
    output: {success: true}
    handle: success
  - verb: linear@1:linear.issue.update
    attempt: 1
    error: {kind: network, message: flaky}
  - verb: linear@1:linear.issue.update
    output: {success: false}
";

    #[test]
    fn first_matching_fixture_answers() {
        let fixtures = Fixtures::parse("f.yaml", FILE).unwrap();
        let v = verb("linear", "linear.issue.update");
        let q = v.qualified();
        let matching =
            input(serde_json::json!({"issueId": "LIN-1", "meta": {"n": 1.0, "x": 2}, "x": 1}));
        let out = fixtures.execute(&call(&v, &q, &matching, 1)).unwrap();
        assert_eq!(out.handle.as_deref(), Some("success"));
        assert_eq!(out.output.to_json(), serde_json::json!({"success": true}));

        let other = input(serde_json::json!({"issueId": "LIN-2"}));
        let err = fixtures.execute(&call(&v, &q, &other, 1)).unwrap_err();
        assert_eq!(
            (err.kind.as_str(), err.message.as_str()),
            ("network", "flaky")
        );
        let out = fixtures.execute(&call(&v, &q, &other, 2)).unwrap();
        assert_eq!(out.output.to_json(), serde_json::json!({"success": false}));

        let unknown = verb("linear", "linear.comment.create");
        let uq = unknown.qualified();
        let err = fixtures
            .execute(&call(&unknown, &uq, &other, 1))
            .unwrap_err();
        assert_eq!(err.kind, error_kind::NO_FIXTURE);
        assert!(
            err.message.contains("linear@1:linear.comment.create"),
            "{err}"
        );
        assert!(err.message.contains("LIN-2"), "{err}");
        assert!(
            fixtures
                .resolve_gate(&call(&unknown, &uq, &other, 1))
                .is_none()
        );
    }

    #[test]
    fn invalid_files_get_positioned_errors() {
        let text = "\
fixtures:
  - verb: nope
    output: 1
  - verb: a@1:b
    when: [1]
    output: 1
    error: x
    colour: red
  - 3
";
        let errors = Fixtures::parse("bad.yaml", text).unwrap_err();
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "bad.yaml:2:11: `verb` must be `plugin@major:verb`, e.g. `linear@1:linear.issue.update`",
                "bad.yaml:8:5: unknown fixture key; expected one of verb, when, attempt, output, error, handle",
                "bad.yaml:5:11: `when` must be a mapping of input names to values",
                "bad.yaml:7:12: a fixture has `output` or `error`, not both",
                "bad.yaml:9:5: a fixture must be a mapping, not a scalar",
            ]
        );
        let syntax = Fixtures::parse("s.yaml", "fixtures: [\n").unwrap_err();
        assert_eq!(syntax[0].file, "s.yaml");
        assert!(Fixtures::parse("e.yaml", "").is_err());
        assert!(Fixtures::parse("m.yaml", "fixtures: {}").is_err());
    }
}
