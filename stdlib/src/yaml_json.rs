//! YAML nodes → `serde_json::Value`, keeping where every value came from.
//!
//! Manifests are validated as JSON (their schemas are JSON Schema), but their
//! errors must point into the YAML file. The conversion therefore records, for
//! each JSON pointer (RFC 6901), the span of the value and of its key.

use donmai_grammar::span::Span;
use std::collections::HashMap;

/// The span of a value and, for a mapping entry, of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeSpans {
    pub value: Span,
    pub key: Option<Span>,
}

/// JSON pointer → spans of one converted document.
#[derive(Clone, Debug, Default)]
pub struct SpanTable {
    entries: HashMap<String, NodeSpans>,
}

impl SpanTable {
    pub fn new() -> SpanTable {
        SpanTable::default()
    }

    pub fn insert(&mut self, pointer: String, spans: NodeSpans) {
        self.entries.insert(pointer, spans);
    }

    pub fn get(&self, pointer: &str) -> Option<NodeSpans> {
        self.entries.get(pointer).copied()
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
        self.entries
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .filter_map(|(_, s)| s.key)
            .min_by_key(|key| key.start)
            .unwrap_or(spans.value)
    }

    fn nearest(&self, pointer: &str) -> NodeSpans {
        let mut current = pointer;
        loop {
            if let Some(spans) = self.entries.get(current) {
                return *spans;
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
}
