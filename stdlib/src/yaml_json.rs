//! YAML nodes → `serde_json::Value`, keeping where every value came from.
//!
//! Manifests are validated as JSON (their schemas are JSON Schema), but their
//! errors must point into the YAML file. The conversion therefore records, for
//! each JSON pointer (RFC 6901), the span of the value and of its key.

use donmai_grammar::codes::Code;
use donmai_grammar::diagnostic::Diagnostic;
use donmai_grammar::span::Span;
use donmai_grammar::yaml::{Node, NodeKind, Resolved};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// Nesting deeper than this is reported, never recursed into. The YAML layer
/// bounds depth already; this keeps the conversion safe on any tree.
pub const MAX_JSON_DEPTH: usize = 256;

/// The span of a value and, for a mapping entry, of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSpans {
    pub value: Span,
    pub key: Option<Span>,
}

/// One entry of a span table compiled into the binary: the pointer, the
/// value's start and end, the key's start and end (`u32::MAX` when the
/// value is not a mapping entry).
pub type StaticSpan = (&'static str, u32, u32, u32, u32);

/// JSON pointer → spans of one converted document.
#[derive(Clone, Debug, Default)]
pub struct SpanTable {
    entries: HashMap<String, NodeSpans>,
    /// Entries made at build time (the bundled manifests), sorted by
    /// pointer: looked up in place, never copied into `entries`.
    fixed: &'static [StaticSpan],
}

impl SpanTable {
    pub fn new() -> SpanTable {
        SpanTable::default()
    }

    /// A table of build-time entries, sorted by pointer.
    pub fn from_static(fixed: &'static [StaticSpan]) -> SpanTable {
        SpanTable {
            entries: HashMap::new(),
            fixed,
        }
    }

    pub fn insert(&mut self, pointer: String, spans: NodeSpans) {
        self.entries.insert(pointer, spans);
    }

    pub fn get(&self, pointer: &str) -> Option<NodeSpans> {
        if let Some(spans) = self.entries.get(pointer) {
            return Some(*spans);
        }
        let at = self
            .fixed
            .binary_search_by(|entry| entry.0.cmp(pointer))
            .ok()?;
        let (_, start, end, key_start, key_end) = self.fixed[at];
        Some(NodeSpans {
            value: Span::new(start as usize, end as usize),
            key: (key_start != u32::MAX).then(|| Span::new(key_start as usize, key_end as usize)),
        })
    }

    /// Every entry, sorted by pointer: what a build script compiles in.
    pub fn sorted(&self) -> Vec<(&str, NodeSpans)> {
        let mut all: Vec<(&str, NodeSpans)> =
            self.entries.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        all.extend(
            self.fixed
                .iter()
                .filter_map(|entry| Some((entry.0, self.get(entry.0)?))),
        );
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// The span of the value at `pointer`, or of its nearest recorded
    /// ancestor: a diagnostic always lands somewhere sensible, even for a
    /// pointer into a value that does not exist.
    pub fn value_span(&self, pointer: &str) -> Span {
        self.nearest(pointer).value
    }

    /// The span of the key at `pointer` if it is a mapping entry, else the
    /// value's span.
    pub fn key_span(&self, pointer: &str) -> Span {
        let spans = self.nearest(pointer);
        spans.key.unwrap_or(spans.value)
    }

    /// A short span to report "something is missing in this mapping" at: the
    /// mapping's own key, or its first key when it is a list item, rather than
    /// the whole (possibly long) mapping.
    pub fn anchor_span(&self, pointer: &str) -> Span {
        let spans = self.nearest(pointer);
        if let Some(key) = spans.key {
            return key;
        }
        let prefix = format!("{pointer}/");
        self.sorted()
            .into_iter()
            .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .filter_map(|(_, s)| s.key)
            .min_by_key(|key| key.start)
            .unwrap_or(spans.value)
    }

    fn nearest(&self, pointer: &str) -> NodeSpans {
        let mut current = pointer;
        loop {
            if let Some(spans) = self.get(current) {
                return spans;
            }
            match current.rfind('/') {
                Some(cut) => current = &current[..cut],
                None => {
                    return NodeSpans {
                        value: Span::default(),
                        key: None,
                    };
                }
            }
        }
    }
}

/// Converts one YAML document to JSON. Problems (keys that are not strings,
/// floats JSON cannot hold) are diagnostics with `code`; the offending part
/// becomes `null` so the rest still converts.
pub fn document_to_json(document: &Node, code: Code) -> (Value, SpanTable, Vec<Diagnostic>) {
    let mut converter = Converter {
        code,
        spans: SpanTable::new(),
        diagnostics: Vec::new(),
    };
    let mut pointer = String::new();
    let value = converter.convert(document, &mut pointer, None, 0);
    (value, converter.spans, converter.diagnostics)
}

struct Converter {
    code: Code,
    spans: SpanTable,
    diagnostics: Vec<Diagnostic>,
}

impl Converter {
    /// `pointer` is a buffer extended and truncated in place, so the whole
    /// conversion allocates one string per recorded node only.
    fn convert(
        &mut self,
        node: &Node,
        pointer: &mut String,
        key: Option<Span>,
        depth: usize,
    ) -> Value {
        self.spans.insert(
            pointer.clone(),
            NodeSpans {
                value: node.span,
                key,
            },
        );
        if depth > MAX_JSON_DEPTH {
            self.diagnostics.push(Diagnostic::new(
                self.code,
                node.span,
                format!("the document nests deeper than {MAX_JSON_DEPTH} levels"),
            ));
            return Value::Null;
        }
        match &node.kind {
            // `resolve` reads only plain scalars by the core schema; quoted
            // and block scalars are strings.
            NodeKind::Scalar(scalar) => match scalar.resolve() {
                Resolved::Null => Value::Null,
                Resolved::Bool(b) => Value::Bool(b),
                Resolved::Int(i) => Value::Number(i.into()),
                Resolved::Float(f) => match Number::from_f64(f) {
                    Some(n) => Value::Number(n),
                    None => {
                        self.diagnostics.push(
                            Diagnostic::new(
                                self.code,
                                node.span,
                                format!("`{}` cannot be represented in JSON", scalar.value),
                            )
                            .with_help("quote it to make it a string"),
                        );
                        Value::Null
                    }
                },
                Resolved::Str(s) => Value::String(s.to_string()),
            },
            NodeKind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    out.push(self.convert(item, pointer, None, depth + 1));
                    pointer.truncate(len);
                }
                Value::Array(out)
            }
            NodeKind::Map(entries) => {
                let mut out = Map::new();
                for entry in entries {
                    let name = match &entry.key.kind {
                        NodeKind::Scalar(scalar) => scalar.value.to_string(),
                        _ => {
                            self.diagnostics.push(Diagnostic::new(
                                self.code,
                                entry.key.span,
                                "a mapping key must be a plain string, not a list or a mapping",
                            ));
                            continue;
                        }
                    };
                    // The YAML layer reports duplicate keys; keep the first.
                    if out.contains_key(&name) {
                        continue;
                    }
                    let len = pointer.len();
                    let extended = pointer_push(pointer, &name);
                    pointer.clear();
                    pointer.push_str(&extended);
                    let value =
                        self.convert(&entry.value, pointer, Some(entry.key.span), depth + 1);
                    pointer.truncate(len);
                    out.insert(name, value);
                }
                Value::Object(out)
            }
        }
    }
}

/// `pointer` extended by one reference token, escaped per RFC 6901.
pub fn pointer_push(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_tokens() {
        assert_eq!(pointer_push("", "a"), "/a");
        assert_eq!(pointer_push("/a", "b/c~d"), "/a/b~1c~0d");
        assert_eq!(pointer_push("/a", ""), "/a/");
    }

    #[test]
    fn lookups_fall_back_to_ancestors() {
        let mut table = SpanTable::new();
        table.insert(
            String::new(),
            NodeSpans {
                value: Span::new(0, 50),
                key: None,
            },
        );
        table.insert(
            "/verbs".into(),
            NodeSpans {
                value: Span::new(7, 50),
                key: Some(Span::new(0, 5)),
            },
        );
        table.insert(
            "/verbs/0".into(),
            NodeSpans {
                value: Span::new(9, 50),
                key: None,
            },
        );
        table.insert(
            "/verbs/0/id".into(),
            NodeSpans {
                value: Span::new(13, 16),
                key: Some(Span::new(9, 11)),
            },
        );
        table.insert(
            "/verbs/0/kind".into(),
            NodeSpans {
                value: Span::new(24, 30),
                key: Some(Span::new(18, 22)),
            },
        );
        assert_eq!(table.value_span("/verbs/0/id"), Span::new(13, 16));
        assert_eq!(table.key_span("/verbs/0/id"), Span::new(9, 11));
        assert_eq!(
            table.value_span("/verbs/0/missing/deeper"),
            Span::new(9, 50)
        );
        assert_eq!(table.key_span("/verbs/0"), Span::new(9, 50));
        assert_eq!(table.anchor_span("/verbs/0"), Span::new(9, 11));
        assert_eq!(table.anchor_span("/verbs"), Span::new(0, 5));
        assert_eq!(table.value_span("/nothing"), Span::new(0, 50));
        assert_eq!(SpanTable::new().value_span("/x"), Span::default());
    }

    fn convert(text: &str) -> (Value, SpanTable, Vec<Diagnostic>) {
        let parsed = donmai_grammar::yaml::parse(text);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        document_to_json(&parsed.documents[0], Code::BAD_MANIFEST)
    }

    #[test]
    fn converts_with_core_schema_typing() {
        let text = "a: 1\nb: [true, null, 1.5, '2', x]\nc: {d/e: \"q\"}\nyes: no\nf: |\n  block\n";
        let (value, _, diagnostics) = convert(text);
        assert!(diagnostics.is_empty());
        assert_eq!(
            value,
            serde_json::json!({"a": 1, "b": [true, null, 1.5, "2", "x"], "c": {"d/e": "q"}, "yes": "no", "f": "block\n"})
        );
    }

    #[test]
    fn records_value_and_key_spans() {
        let text = "verbs:\n  - id: acme.x\n    kind: gate\nc: {d/e: \"q\"}\n";
        let (_, spans, _) = convert(text);
        let slice = |span: Span| &text[span.start..span.end];
        assert_eq!(slice(spans.value_span("/verbs/0/id")), "acme.x");
        assert_eq!(slice(spans.key_span("/verbs/0/kind")), "kind");
        assert_eq!(slice(spans.key_span("/verbs")), "verbs");
        assert_eq!(slice(spans.anchor_span("/verbs/0")), "id");
        assert_eq!(slice(spans.value_span("/c/d~1e")), "\"q\"");
        assert_eq!(slice(spans.value_span("/verbs/0/kind/deeper")), "gate");
    }

    #[test]
    fn unrepresentable_parts_become_null_with_a_diagnostic() {
        let (value, spans, diagnostics) = convert("a: .inf\n? [x]\n: 1\nb: 2\n");
        assert_eq!(value, serde_json::json!({"a": null, "b": 2}));
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        assert!(diagnostics.iter().all(|d| d.code == Code::BAD_MANIFEST));
        assert_eq!(diagnostics[0].span, spans.value_span("/a"));
        assert_eq!(diagnostics[1].span, Span::new(10, 13));
    }
}
