//! YAML text → a tree of nodes with exact byte spans.
//!
//! Built on saphyr-parser's event stream (not its loader) so that we keep
//! spans on every key, value and item, see scalar styles, report duplicate
//! keys with both positions, and bound alias expansion and nesting depth.
//!
//! The tree borrows from the text: a scalar that reads exactly as written
//! (most of them) is a slice of the source, and only scalars changed by
//! decoding (escapes, folding, block scalars) own their value.

use std::borrow::Cow;

use crate::diagnostic::Diagnostic;
use crate::span::Span;

mod build;
mod scalar;

/// Nesting deeper than this is reported, never recursed into.
pub const MAX_DEPTH: usize = 128;
/// Total nodes an alias may expand to across one document.
pub const MAX_ALIAS_EXPANSION: usize = 100_000;

/// The documents of one YAML stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed<'src> {
    /// One node per document; documents completed before a syntax error are
    /// kept, the one the error is in is not.
    pub documents: Vec<Node<'src>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses a YAML stream. Never panics; every problem is a diagnostic:
/// syntax errors (`YAML_SYNTAX`, parsing stops there), duplicate keys
/// (`DUPLICATE_KEY`, the later entry is dropped) and inputs beyond the
/// nesting or alias-expansion limits (`DOCUMENT_TOO_COMPLEX`, parsing stops).
pub fn parse(text: &str) -> Parsed<'_> {
    build::parse(text, None)
}

/// [`parse`], handing each mapping that is an item of the sequence at `path`
/// (mapping keys from the root of the first document, e.g. `spec.steps`) to
/// `visit` as soon as it is complete. In the returned tree such an item is an
/// empty mapping with the item's span. A consumer can then process a large
/// sequence item by item while each item is fresh in the cache, instead of
/// holding the whole tree.
///
/// Items under a duplicate key (which the tree drops) or in a document that
/// ends in a syntax error are visited too: the visitor cannot know yet
/// whether the tree will keep them.
pub fn parse_visiting<'src>(
    text: &'src str,
    path: &[&str],
    visit: &mut dyn FnMut(Node<'src>),
) -> Parsed<'src> {
    build::parse(text, Some(build::Visitor { path, visit }))
}

/// A slice of a text parsed on its own; see [`parse_slice`].
#[derive(Debug)]
pub struct SliceParsed<'src> {
    /// Spans, scalar maps and diagnostics are positions in the whole text.
    pub parsed: Parsed<'src>,
    /// Whether any node of the slice has an anchor.
    pub defines_anchors: bool,
    /// Whether a position in the tree was settled by the end of the slice:
    /// an empty value is placed after the `:`, `-` or `?` that introduces
    /// it, which is looked for past it, across blank lines and comments.
    /// In the whole text the lines after the slice would have settled it.
    pub depends_on_what_follows: bool,
}

/// Parses `text[range]` as a YAML stream of its own, with every span, scalar
/// map and diagnostic position reported as an offset into `text`. The slice
/// should start at the beginning of a line, so that saphyr counts the same
/// columns (indentation) as in the whole text; what the parse of a slice
/// says about the whole text is the caller's to prove (see
/// `crate::incremental`). The range must lie on character boundaries.
pub fn parse_slice(text: &str, range: std::ops::Range<usize>) -> SliceParsed<'_> {
    build::parse_slice(text, range.start, range.end)
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node<'src> {
    /// Exact extent in the file: a flow collection includes its closing
    /// bracket, a quoted scalar its quotes, a block scalar its `|`/`>` header.
    pub span: Span,
    pub kind: NodeKind<'src>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind<'src> {
    Scalar(Scalar<'src>),
    Seq(Vec<Node<'src>>),
    Map(Vec<Entry<'src>>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry<'src> {
    pub key: Node<'src>,
    pub value: Node<'src>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Scalar<'src> {
    /// The decoded value (escapes resolved, lines folded): borrowed from the
    /// text when it reads exactly as written.
    pub value: Cow<'src, str>,
    pub style: ScalarStyle,
    /// Where each byte of `value` came from in the file.
    pub map: ScalarMap,
}

/// Maps byte offsets in a decoded scalar back to byte offsets in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum ScalarMap {
    /// `value` is a verbatim copy of the file from `start`.
    Verbatim { start: usize },
    /// `offsets[i]` is the file offset of byte `i` of `value`;
    /// `offsets[value.len()]` is the offset just past the last source byte.
    Table { offsets: Vec<usize> },
}

/// The YAML 1.2 core-schema reading of a plain scalar.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl<'src> Node<'src> {
    pub fn as_scalar(&self) -> Option<&Scalar<'src>> {
        match &self.kind {
            NodeKind::Scalar(scalar) => Some(scalar),
            _ => None,
        }
    }

    /// The decoded value of a scalar.
    pub fn as_str(&self) -> Option<&str> {
        self.as_scalar().map(|scalar| &*scalar.value)
    }

    pub fn as_map(&self) -> Option<&[Entry<'src>]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node<'src>]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The entry of a mapping whose scalar key decodes to `key`.
    pub fn entry(&self, key: &str) -> Option<&Entry<'src>> {
        self.as_map()?
            .iter()
            .find(|entry| entry.key.as_str() == Some(key))
    }

    /// The value of a mapping's entry whose scalar key decodes to `key`.
    pub fn get(&self, key: &str) -> Option<&Node<'src>> {
        self.entry(key).map(|entry| &entry.value)
    }

    /// How the node's kind is named in messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Scalar(_) => "scalar",
            NodeKind::Seq(_) => "sequence",
            NodeKind::Map(_) => "mapping",
        }
    }
}

impl ScalarMap {
    /// The file offset of decoded byte `decoded_offset`; offsets past the
    /// value clamp to the end of its source. A `Verbatim` map does not know
    /// the value's length, so it cannot clamp: prefer `Scalar::to_file`.
    pub fn to_file(&self, decoded_offset: usize) -> usize {
        match self {
            ScalarMap::Verbatim { start } => start.saturating_add(decoded_offset),
            ScalarMap::Table { offsets } => offsets
                .get(decoded_offset)
                .or(offsets.last())
                .copied()
                .unwrap_or(0),
        }
    }
}

impl Scalar<'_> {
    /// The file offset of decoded byte `decoded_offset`, clamped to the value.
    pub fn to_file(&self, decoded_offset: usize) -> usize {
        self.map.to_file(decoded_offset.min(self.value.len()))
    }

    /// The file span a span of the decoded value was read from. A span over
    /// an escape or a folded line break covers the escape or the break.
    pub fn file_span(&self, decoded: Span) -> Span {
        let start = self.to_file(decoded.start);
        if decoded.end <= decoded.start {
            return Span::at(start);
        }
        Span::new(start, self.to_file(decoded.end).max(start))
    }

    /// The YAML 1.2 core-schema reading of the scalar. Only plain scalars
    /// are typed: quoted and block scalars are always strings. `yes`, `no`,
    /// `on` and `off` are strings (they were booleans only in YAML 1.1).
    /// Integers outside the `i64` range read as the nearest `Float`.
    pub fn resolve(&self) -> Resolved<'_> {
        if self.style != ScalarStyle::Plain {
            return Resolved::Str(&self.value);
        }
        resolve_plain(&self.value)
    }
}

/// YAML text that reads back as the string `value` wherever a scalar may
/// stand (block or flow, key or value): `value` itself when it is a safe
/// plain scalar, else a double-quoted scalar. Fixes write names with it,
/// because a name may hold `, # [ ]` or read as a number once unquoted.
pub fn scalar_source(value: &str) -> String {
    let safe_char = |c: char| c.is_ascii_alphanumeric() || "_-./@:".contains(c);
    let plain = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || "_./".contains(c))
        && value.chars().all(safe_char)
        && !value.ends_with(':')
        && resolve_plain(value) == Resolved::Str(value);
    if plain {
        return value.to_string();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            // Outside YAML's printable set, or read as a byte order mark or
            // a line break.
            c if !matches!(c, ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
                || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}') =>
            {
                quoted.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

fn resolve_plain(value: &str) -> Resolved<'_> {
    // Most plain scalars are names: a first letter that starts none of the
    // special words (`null`, `true`, `false` and their capitalisations) can
    // only read as a string. Numbers start with a digit, a sign or a dot.
    if let Some(&first) = value.as_bytes().first()
        && first.is_ascii_alphabetic()
        && !matches!(first, b'n' | b'N' | b't' | b'T' | b'f' | b'F')
    {
        return Resolved::Str(value);
    }
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        _ => {}
    }
    if let Some(resolved) = resolve_int(value) {
        return resolved;
    }
    if let Some(float) = resolve_float(value) {
        return Resolved::Float(float);
    }
    Resolved::Str(value)
}

fn resolve_int(value: &str) -> Option<Resolved<'_>> {
    let (digits, radix) = if let Some(hex) = value.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(octal) = value.strip_prefix("0o") {
        (octal, 8)
    } else {
        let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some(match value.parse::<i64>() {
            Ok(int) => Resolved::Int(int),
            Err(_) => Resolved::Float(value.parse::<f64>().ok()?),
        });
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(match i64::from_str_radix(digits, radix) {
        Ok(int) => Resolved::Int(int),
        Err(_) => Resolved::Float(
            digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(d)),
        ),
    })
}

/// `[-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`,
/// `[-+]? \.inf` and `\.nan` in their three spellings.
fn resolve_float(value: &str) -> Option<f64> {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let negative = value.starts_with('-');
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if matches!(value, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        None => !whole.is_empty() && all_digits(whole),
        Some(fraction) if whole.is_empty() => !fraction.is_empty() && all_digits(fraction),
        Some(fraction) => all_digits(whole) && all_digits(fraction),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && all_digits(digits)
    });
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    value.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::Code;

    fn parse_one(text: &str) -> Node<'_> {
        let parsed = parse(text);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        assert_eq!(parsed.documents.len(), 1, "{text:?}");
        parsed.documents.into_iter().next().unwrap()
    }

    fn source<'t>(text: &'t str, node: &Node) -> &'t str {
        &text[node.span.start..node.span.end]
    }

    fn scalar<'n>(node: &'n Node) -> &'n Scalar<'n> {
        node.as_scalar().expect("a scalar")
    }

    /// Every node of a tree, without recursion.
    fn all_nodes<'n, 's>(root: &'n Node<'s>) -> Vec<&'n Node<'s>> {
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            out.push(node);
            match &node.kind {
                NodeKind::Scalar(_) => {}
                NodeKind::Seq(items) => stack.extend(items),
                NodeKind::Map(entries) => {
                    for entry in entries {
                        stack.push(&entry.key);
                        stack.push(&entry.value);
                    }
                }
            }
        }
        out
    }

    /// Each decoded character maps to a file offset holding that character,
    /// unless it was produced by folding (the offset holds a line break) or
    /// by an escape (the offset holds a backslash).
    fn assert_map_faithful(text: &str, node: &Node) {
        let scalar = scalar(node);
        // An alias node's map reads from the anchored node, elsewhere.
        let span = if source(text, node).starts_with('*') {
            Span::new(0, text.len())
        } else {
            node.span
        };
        let mut previous = 0;
        for (i, c) in scalar.value.char_indices() {
            let at = scalar.to_file(i);
            assert!(at >= previous, "offsets go backwards in {:?}", scalar);
            previous = at;
            assert!(
                span.start <= at && at <= span.end,
                "decoded byte {i} maps outside its node {span:?}: {at}"
            );
            let here = &text[at..];
            let folded = matches!(c, ' ' | '\n') && here.starts_with(['\n', '\r']);
            let escaped = scalar.style == ScalarStyle::DoubleQuoted && here.starts_with('\\');
            let quote = scalar.style == ScalarStyle::SingleQuoted && c == '\'';
            // A block scalar's final line breaks map to the end of its span.
            let chomped = c == '\n' && at == span.end;
            assert!(
                here.starts_with(c) || folded || escaped || quote || chomped,
                "decoded {c:?} at {i} maps to {at} holding {:?} in {text:?}",
                here.chars().next()
            );
        }
        let end = scalar.to_file(scalar.value.len());
        assert!(end >= previous && end <= span.end);
    }

    fn fallbacks() -> usize {
        build::FALLBACKS.with(|count| count.get())
    }

    // ---- spans -------------------------------------------------------

    #[test]
    fn mapping_keys_and_values_have_their_own_spans() {
        let text = "name: build\nimage: 'rust:1.88'\ncount: 3\n";
        let root = parse_one(text);
        assert_eq!(
            source(text, &root),
            "name: build\nimage: 'rust:1.88'\ncount: 3"
        );
        let entries = root.as_map().unwrap();
        assert_eq!(source(text, &entries[0].key), "name");
        assert_eq!(source(text, &entries[0].value), "build");
        assert_eq!(source(text, &entries[1].value), "'rust:1.88'");
        assert_eq!(root.get("count").map(|n| source(text, n)), Some("3"));
    }

    #[test]
    fn sequence_items_exclude_the_dash() {
        let text = "steps:\n  - run: a\n    with: b\n  - plain\n  # trailing comment\n";
        let root = parse_one(text);
        let steps = root.get("steps").unwrap();
        assert_eq!(source(text, steps), "- run: a\n    with: b\n  - plain");
        let items = steps.as_seq().unwrap();
        assert_eq!(source(text, &items[0]), "run: a\n    with: b");
        assert_eq!(source(text, &items[1]), "plain");
    }

    #[test]
    fn indentless_sequence_starts_at_its_first_dash() {
        let text = "k:\n- a\n- b # c\nnext: 1\n";
        let root = parse_one(text);
        assert_eq!(source(text, root.get("k").unwrap()), "- a\n- b");
    }

    #[test]
    fn nested_block_collections_end_at_their_last_value() {
        let text = "a:\n  b:\n    - c: 1\n      d: [x]\n\n# done\n";
        let root = parse_one(text);
        let a = root.get("a").unwrap();
        assert_eq!(source(text, a), "b:\n    - c: 1\n      d: [x]");
        let b = a.get("b").unwrap();
        assert_eq!(source(text, &b.as_seq().unwrap()[0]), "c: 1\n      d: [x]");
    }

    #[test]
    fn flow_collections_include_their_brackets() {
        let text = "a: [1, [2, 3] , {k: v}]  # c\nb: {x: [ ], y: { }}\n";
        let root = parse_one(text);
        let a = root.get("a").unwrap();
        assert_eq!(source(text, a), "[1, [2, 3] , {k: v}]");
        let items = a.as_seq().unwrap();
        assert_eq!(source(text, &items[1]), "[2, 3]");
        assert_eq!(source(text, &items[2]), "{k: v}");
        let b = root.get("b").unwrap();
        assert_eq!(source(text, b), "{x: [ ], y: { }}");
        assert_eq!(source(text, b.get("x").unwrap()), "[ ]");
        assert_eq!(source(text, b.get("y").unwrap()), "{ }");
    }

    #[test]
    fn implicit_pairs_in_flow_sequences_span_key_to_value() {
        let text = "[a: b, {c: d}: e, f]";
        let root = parse_one(text);
        let items = root.as_seq().unwrap();
        assert_eq!(source(text, &items[0]), "a: b");
        assert_eq!(source(text, &items[1]), "{c: d}: e");
        assert_eq!(source(text, &items[1].as_map().unwrap()[0].key), "{c: d}");
        assert_eq!(source(text, &items[2]), "f");
    }

    #[test]
    fn quoted_scalars_include_quotes_but_not_trailing_comments() {
        let text = "a: \"x y\"   # note\nb: 'z'\t\nc: [\"p\" , 'q']\n";
        let root = parse_one(text);
        assert_eq!(source(text, root.get("a").unwrap()), "\"x y\"");
        assert_eq!(source(text, root.get("b").unwrap()), "'z'");
        let c = root.get("c").unwrap().as_seq().unwrap();
        assert_eq!(source(text, &c[0]), "\"p\"");
        assert_eq!(source(text, &c[1]), "'q'");
    }

    #[test]
    fn quoted_keys_are_spanned_with_quotes() {
        let text = "\"a b\": 1\n'c': 2\n";
        let root = parse_one(text);
        let entries = root.as_map().unwrap();
        assert_eq!(source(text, &entries[0].key), "\"a b\"");
        assert_eq!(source(text, &entries[1].key), "'c'");
        assert_eq!(root.get("a b").map(|n| source(text, n)), Some("1"));
    }

    #[test]
    fn block_scalars_span_from_indicator_to_last_content_character() {
        let text = "run: |  # shell\n  echo a\n\n  echo b\n\nnext: >-\n  folded\n  text\n";
        let root = parse_one(text);
        let run = root.get("run").unwrap();
        assert_eq!(source(text, run), "|  # shell\n  echo a\n\n  echo b");
        assert_eq!(scalar(run).value, "echo a\n\necho b\n");
        let next = root.get("next").unwrap();
        assert_eq!(source(text, next), ">-\n  folded\n  text");
        assert_eq!(scalar(next).value, "folded text");
        assert_eq!(source(text, &root), text.trim_end());
    }

    #[test]
    fn block_scalar_in_a_sequence_and_with_properties() {
        let text = "- |\n  one\n- &anchor !tag >+\n  two\n\n- - |-\n    three\n";
        let root = parse_one(text);
        let items = root.as_seq().unwrap();
        assert_eq!(source(text, &items[0]), "|\n  one");
        assert_eq!(source(text, &items[1]), ">+\n  two");
        assert_eq!(scalar(&items[1]).value, "two\n\n");
        let inner = &items[2].as_seq().unwrap()[0];
        assert_eq!(source(text, inner), "|-\n    three");
        assert_eq!(scalar(inner).value, "three");
    }

    #[test]
    fn empty_block_scalar_spans_its_header() {
        let text = "a: |-\nb: 1\n";
        let root = parse_one(text);
        let a = root.get("a").unwrap();
        assert_eq!(scalar(a).value, "");
        assert_eq!(source(text, a), "|-");
    }

    #[test]
    fn plain_scalars_are_exact_even_across_lines() {
        let text = "a: one\n  two\n\n  three   # c\nb: x y  \n";
        let root = parse_one(text);
        let a = root.get("a").unwrap();
        assert_eq!(source(text, a), "one\n  two\n\n  three");
        assert_eq!(scalar(a).value, "one two\nthree");
        assert_eq!(source(text, root.get("b").unwrap()), "x y");
    }

    #[test]
    fn anchors_and_tags_are_not_part_of_the_node() {
        let text = "a: &x !!str value\nb: !t [1]\nc: &m\n  k: v\nd: *x\n";
        let root = parse_one(text);
        assert_eq!(source(text, root.get("a").unwrap()), "value");
        assert_eq!(source(text, root.get("b").unwrap()), "[1]");
        assert_eq!(source(text, root.get("c").unwrap()), "k: v");
        let d = root.get("d").unwrap();
        assert_eq!(source(text, d), "*x");
        assert_eq!(d.as_str(), Some("value"));
    }

    #[test]
    fn empty_values_sit_after_their_indicator() {
        let text = "a:\nb:   # none\nc:\n  -\n  - x\n";
        let root = parse_one(text);
        let a = root.get("a").unwrap();
        assert_eq!(a.span, Span::at(2));
        assert_eq!(scalar(a).resolve(), Resolved::Null);
        assert_eq!(
            root.get("b").unwrap().span,
            Span::at(text.find("b:").unwrap() + 2)
        );
        let c = root.get("c").unwrap().as_seq().unwrap();
        assert_eq!(c[0].span, Span::at(text.find("-\n").unwrap() + 1));
        assert_eq!(source(text, &c[1]), "x");
    }

    #[test]
    fn spans_are_bytes_in_non_ascii_text() {
        let text = "café: \"naïve\"\n# ünïcödé comment\nλ: [α, β]\nz: |\n  ж\n";
        let root = parse_one(text);
        let entries = root.as_map().unwrap();
        assert_eq!(source(text, &entries[0].key), "café");
        assert_eq!(source(text, &entries[0].value), "\"naïve\"");
        assert_eq!(source(text, &entries[1].value), "[α, β]");
        assert_eq!(source(text, &entries[1].value.as_seq().unwrap()[1]), "β");
        assert_eq!(source(text, &entries[2].value), "|\n  ж");
    }

    #[test]
    fn crlf_line_breaks() {
        let text = "a: x\r\n  y\r\nb: |\r\n  l1\r\n  l2\r\nc: \"p\r\n  q\"\r\n";
        let root = parse_one(text);
        let a = root.get("a").unwrap();
        assert_eq!(source(text, a), "x\r\n  y");
        assert_eq!(scalar(a).value, "x y");
        let b = root.get("b").unwrap();
        assert_eq!(source(text, b), "|\r\n  l1\r\n  l2");
        assert_eq!(scalar(b).value, "l1\nl2\n");
        for node in all_nodes(&root)
            .into_iter()
            .filter(|n| n.as_scalar().is_some())
        {
            assert_map_faithful(text, node);
        }
    }

    // ---- scalar decoding and maps -------------------------------------

    #[test]
    fn single_line_scalars_are_verbatim() {
        let text = "a: plain text\nb: 'quoted'\nc: \"double\"\n";
        let root = parse_one(text);
        assert_eq!(
            scalar(root.get("a").unwrap()).map,
            ScalarMap::Verbatim { start: 3 }
        );
        assert_eq!(
            scalar(root.get("b").unwrap()).map,
            ScalarMap::Verbatim { start: 18 }
        );
        assert_eq!(
            scalar(root.get("c").unwrap()).map,
            ScalarMap::Verbatim { start: 30 }
        );
    }

    #[test]
    fn double_quoted_escapes_map_to_the_escape() {
        let text = r#"k: "a\nb\u00e9\x41\U0001F600\t\"\\ z""#;
        let root = parse_one(text);
        let k = scalar(root.get("k").unwrap());
        assert_eq!(k.value, "a\nbéA😀\t\"\\ z");
        let escape = |needle: &str| text.find(needle).unwrap();
        assert_eq!(k.to_file(1), escape("\\n"));
        let e_acute = k.value.find('é').unwrap();
        assert_eq!(k.to_file(e_acute), escape("\\u00e9"));
        assert_eq!(k.to_file(e_acute + 1), escape("\\u00e9"));
        let emoji = k.value.find('😀').unwrap();
        for byte in emoji..emoji + 4 {
            assert_eq!(k.to_file(byte), escape("\\U0001F600"));
        }
        let z = k.value.find('z').unwrap();
        assert_eq!(&text[k.to_file(z)..k.to_file(z) + 1], "z");
        assert_eq!(
            k.file_span(Span::new(e_acute, e_acute + 2)),
            Span::new(escape("\\u00e9"), escape("\\x41"))
        );
        assert_map_faithful(text, root.get("k").unwrap());
    }

    #[test]
    fn double_quoted_folding_and_escaped_line_breaks() {
        let text = "k: \"one\n  two\n\n  three\\\n   four \\\n  five\"\n";
        let root = parse_one(text);
        let node = root.get("k").unwrap();
        assert_eq!(scalar(node).value, "one two\nthreefour five");
        assert_eq!(source(text, node), &text[3..text.len() - 1]);
        let k = scalar(node);
        // The folded space maps to the line break it replaces.
        assert_eq!(&text[k.to_file(3)..k.to_file(3) + 1], "\n");
        assert_map_faithful(text, node);
    }

    #[test]
    fn single_quoted_doubling_and_folding() {
        let text = "k: 'it''s\n  folded\n\n  twice'\n";
        let root = parse_one(text);
        let node = root.get("k").unwrap();
        let k = scalar(node);
        assert_eq!(k.value, "it's folded\ntwice");
        assert_eq!(k.to_file(2), text.find("''").unwrap());
        assert_map_faithful(text, node);
    }

    #[test]
    fn literal_block_maps_lines_and_breaks() {
        let text = "k: |2-\n    indented\n  base\n\n  end\n";
        let root = parse_one(text);
        let node = root.get("k").unwrap();
        let k = scalar(node);
        assert_eq!(k.value, "  indented\nbase\n\nend");
        assert_eq!(k.to_file(0), text.find("  indented").unwrap());
        let base = k.value.find("base").unwrap();
        assert_eq!(k.to_file(base), text.find("base").unwrap());
        assert_eq!(k.to_file(k.value.len()), text.find("end").unwrap() + 3);
        assert_map_faithful(text, node);
    }

    #[test]
    fn folded_block_keeps_more_indented_lines() {
        let text = "k: >+\n  a\n  b\n\n    c\n  d\n\n\n";
        let root = parse_one(text);
        let node = root.get("k").unwrap();
        assert_eq!(scalar(node).value, "a b\n\n  c\nd\n\n\n");
        assert_eq!(source(text, node), ">+\n  a\n  b\n\n    c\n  d");
        assert_map_faithful(text, node);
    }

    #[test]
    fn block_scalar_at_end_of_input_without_line_break() {
        for (text, value) in [
            ("k: |\n  last", "last\n"),
            ("k: |-\n  last", "last"),
            ("k: >\n  a\n  b", "a b\n"),
            ("--- |\nroot", "root\n"),
            ("k: |\n ", ""),
            ("k: |+\n  ", "\n"),
        ] {
            let root = parse_one(text);
            let node = root.get("k").unwrap_or(&root);
            assert_eq!(scalar(node).value, value, "{text:?}");
            assert_map_faithful(text, node);
        }
    }

    #[test]
    fn ordinary_inputs_never_fall_back() {
        let before = fallbacks();
        let corpus = [
            "a: b\nc: 'd''e'\nf: \"g\\th\"\n",
            "x: |\n  1\n   2\n\n  3\ny: >-\n  p\n  q\n\n  r\n",
            "- one\n  two\n- 'three\n\n  four'\n- \"five\\\n  six\"\n",
            "top: |+\n  keep\n\n\nnext: |1\n  one space\n",
            "? complex key\n: value\n? |\n  block key\n: v\n",
            "k: &a !t |\n  anchored\nl: *a\n",
            "--- >\n folded root\n more\n...\n--- 'second'\n",
            "deep:\n  - - - |\n        nested block\n      - >\n        fold\n",
            "emoji: 😀 text\n\"ключ\": \"значение\\u0021\"\n",
        ];
        for text in corpus {
            let parsed = parse(text);
            assert!(
                parsed.diagnostics.is_empty(),
                "{text:?}: {:?}",
                parsed.diagnostics
            );
            for document in &parsed.documents {
                for node in all_nodes(document) {
                    if node.as_scalar().is_some() {
                        assert_map_faithful(text, node);
                    }
                }
            }
        }
        assert_eq!(fallbacks(), before);
    }

    #[test]
    fn file_span_clamps() {
        let text = "k: \"a\\nb\"\nv: plain\n";
        let root = parse_one(text);
        let k = scalar(root.get("k").unwrap());
        assert_eq!(k.file_span(Span::new(1, 2)), Span::new(5, 7));
        assert_eq!(k.file_span(Span::new(0, 99)), Span::new(4, 8));
        assert_eq!(k.to_file(99), 8);
        let v = scalar(root.get("v").unwrap());
        assert_eq!(v.file_span(Span::new(2, 99)), Span::new(15, 18));
        assert_eq!(v.file_span(Span::at(1)), Span::at(14));
    }

    // ---- documents and diagnostics ------------------------------------

    #[test]
    fn empty_and_comment_only_inputs_have_no_documents() {
        for text in ["", "\n\n", "# just a comment\n", "  # indented\n# two\n"] {
            let parsed = parse(text);
            assert!(parsed.documents.is_empty(), "{text:?}");
            assert!(parsed.diagnostics.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn multi_document_streams() {
        let text = "a: 1\n---\nb: 2\n--- c\n...\n";
        let parsed = parse(text);
        assert!(parsed.diagnostics.is_empty());
        assert_eq!(parsed.documents.len(), 3);
        assert_eq!(source(text, &parsed.documents[1]), "b: 2");
        assert_eq!(source(text, &parsed.documents[2]), "c");
    }

    #[test]
    fn syntax_error_keeps_earlier_documents() {
        let text = "ok: 1\n---\nbad: [1, 2\n";
        let parsed = parse(text);
        assert_eq!(parsed.documents.len(), 1);
        assert_eq!(parsed.diagnostics.len(), 1);
        let diagnostic = &parsed.diagnostics[0];
        assert_eq!(diagnostic.code, Code::YAML_SYNTAX);
        assert!(
            !diagnostic.message.contains("line"),
            "{}",
            diagnostic.message
        );
        assert!(diagnostic.span.start >= text.find("bad").unwrap());
    }

    #[test]
    fn syntax_error_span_is_one_character() {
        let text = "a: b\n c: d\n";
        let parsed = parse(text);
        assert_eq!(parsed.diagnostics.len(), 1);
        let span = parsed.diagnostics[0].span;
        assert_eq!(span.len(), 1, "{span:?}");
        let text = "k: \"unterminated é";
        let parsed = parse(text);
        let span = parsed.diagnostics[0].span;
        assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
    }

    #[test]
    fn nul_characters_are_reported() {
        let text = "a: b\0c\n";
        let parsed = parse(text);
        assert_eq!(parsed.diagnostics.len(), 1);
        assert_eq!(parsed.diagnostics[0].code, Code::YAML_SYNTAX);
        assert_eq!(parsed.diagnostics[0].span, Span::new(4, 5));
    }

    #[test]
    fn duplicate_keys_keep_the_first_entry() {
        let text = "name: a\nother: 1\n'name': b\n";
        let parsed = parse(text);
        assert_eq!(parsed.diagnostics.len(), 1);
        let diagnostic = &parsed.diagnostics[0];
        assert_eq!(diagnostic.code, Code::DUPLICATE_KEY);
        assert_eq!(&text[diagnostic.span.start..diagnostic.span.end], "'name'");
        assert_eq!(diagnostic.labels.len(), 1);
        assert_eq!(diagnostic.labels[0].span, Span::new(0, 4));
        assert_eq!(diagnostic.labels[0].message, "first defined here");
        let root = &parsed.documents[0];
        assert_eq!(root.as_map().unwrap().len(), 2);
        assert_eq!(root.get("name").and_then(Node::as_str), Some("a"));
        // The mapping still covers the dropped entry.
        assert_eq!(source(text, root), text.trim_end());
    }

    #[test]
    fn duplicate_keys_in_large_mappings() {
        let mut text: String = (0..100).map(|i| format!("k{i}: {i}\n")).collect();
        text.push_str("k42: again\nk99: again\n");
        let parsed = parse(&text);
        assert_eq!(parsed.diagnostics.len(), 2);
        assert!(
            parsed
                .diagnostics
                .iter()
                .all(|d| d.code == Code::DUPLICATE_KEY)
        );
        assert_eq!(parsed.documents[0].as_map().unwrap().len(), 100);
        assert_eq!(
            parsed.documents[0].get("k42").and_then(Node::as_str),
            Some("42")
        );
    }

    #[test]
    fn unknown_and_recursive_aliases_are_errors() {
        let parsed = parse("a: *nowhere\n");
        assert_eq!(parsed.diagnostics.len(), 1);
        assert_eq!(parsed.diagnostics[0].code, Code::YAML_SYNTAX);
        let parsed = parse("a: &x [1, *x]\n");
        assert_eq!(parsed.diagnostics.len(), 1);
        assert_eq!(parsed.diagnostics[0].code, Code::YAML_SYNTAX);
        assert!(parsed.diagnostics[0].message.contains("contains it"));
        // Anchors do not reach into the next document.
        let parsed = parse("a: &x 1\n---\nb: *x\n");
        assert_eq!(parsed.documents.len(), 1);
        assert_eq!(parsed.diagnostics.len(), 1);
    }

    #[test]
    fn aliases_clone_the_anchored_node() {
        let text = "base: &base {image: rust, env: [A]}\nuse: *base\n";
        let root = parse_one(text);
        let used = root.get("use").unwrap();
        assert_eq!(source(text, used), "*base");
        assert_eq!(used.get("image").and_then(Node::as_str), Some("rust"));
        assert_eq!(used.get("env"), root.get("base").unwrap().get("env"));
    }

    fn too_complex(parsed: &Parsed) -> usize {
        parsed
            .diagnostics
            .iter()
            .filter(|d| d.code == Code::DOCUMENT_TOO_COMPLEX)
            .count()
    }

    #[test]
    fn deep_nesting_is_refused_once_without_overflow() {
        let depth = 10_000;
        let flow_seq = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let block_seq = format!("{}x\n", "- ".repeat(depth));
        let flow_map = format!("{}b{}", "{a: ".repeat(depth), "}".repeat(depth));
        let block_map: String = (0..300)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect();
        for text in [&flow_seq, &block_seq, &flow_map, &block_map] {
            let parsed = parse(text);
            assert_eq!(too_complex(&parsed), 1, "{:?}", parsed.diagnostics);
            assert_eq!(parsed.diagnostics.len(), 1);
            assert!(parsed.documents.is_empty());
        }
    }

    #[test]
    fn nesting_up_to_the_limit_is_accepted() {
        let text = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        let parsed = parse(&text);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let text = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(too_complex(&parse(&text)), 1);
    }

    #[test]
    fn aliases_cannot_deepen_past_the_limit() {
        let half = MAX_DEPTH / 2 + 1;
        let text = format!(
            "a: &a {}{}\nb: {}*a{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        assert_eq!(too_complex(&parse(&text)), 1);
    }

    #[test]
    fn billion_laughs_is_refused_quickly() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        for pair in names.windows(2) {
            let (previous, name) = (pair[0], pair[1]);
            let aliases = vec![format!("*{previous}"); 9].join(",");
            text.push_str(&format!("{name}: &{name} [{aliases}]\n"));
        }
        let started = std::time::Instant::now();
        let parsed = parse(&text);
        assert_eq!(too_complex(&parsed), 1, "{:?}", parsed.diagnostics);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let span = parsed.diagnostics[0].span;
        assert!(text[span.start..span.end].starts_with('*'));
    }

    // ---- resolution and helpers ---------------------------------------

    /// The scalar `text` reads as in a mapping value.
    fn value_of(text: &str) -> Scalar<'static> {
        let text = format!("k: {text}\n");
        let root = parse_one(&text);
        let scalar = root.get("k").unwrap().as_scalar().unwrap();
        Scalar {
            value: scalar.value.to_string().into(),
            style: scalar.style,
            map: scalar.map.clone(),
        }
    }

    #[test]
    fn core_schema_resolution() {
        assert_eq!(value_of("~").resolve(), Resolved::Null);
        assert_eq!(value_of("null").resolve(), Resolved::Null);
        assert_eq!(value_of("NULL").resolve(), Resolved::Null);
        assert_eq!(value_of("True").resolve(), Resolved::Bool(true));
        assert_eq!(value_of("FALSE").resolve(), Resolved::Bool(false));
        assert_eq!(value_of("yes").resolve(), Resolved::Str("yes"));
        assert_eq!(value_of("off").resolve(), Resolved::Str("off"));
        assert_eq!(value_of("42").resolve(), Resolved::Int(42));
        assert_eq!(value_of("-7").resolve(), Resolved::Int(-7));
        assert_eq!(value_of("+7").resolve(), Resolved::Int(7));
        assert_eq!(value_of("0x1F").resolve(), Resolved::Int(31));
        assert_eq!(value_of("0o17").resolve(), Resolved::Int(15));
        assert_eq!(value_of("0o18").resolve(), Resolved::Str("0o18"));
        assert_eq!(
            value_of("99999999999999999999").resolve(),
            Resolved::Float(1e20)
        );
        assert_eq!(value_of("1.5").resolve(), Resolved::Float(1.5));
        assert_eq!(value_of("-.5").resolve(), Resolved::Float(-0.5));
        assert_eq!(value_of("1.").resolve(), Resolved::Float(1.0));
        assert_eq!(value_of("2e3").resolve(), Resolved::Float(2000.0));
        assert_eq!(value_of("1.5E-1").resolve(), Resolved::Float(0.15));
        assert_eq!(value_of(".inf").resolve(), Resolved::Float(f64::INFINITY));
        assert_eq!(
            value_of("-.Inf").resolve(),
            Resolved::Float(f64::NEG_INFINITY)
        );
        assert!(matches!(value_of(".NaN").resolve(), Resolved::Float(f) if f.is_nan()));
        assert_eq!(value_of("1e").resolve(), Resolved::Str("1e"));
        assert_eq!(value_of(".").resolve(), Resolved::Str("."));
        assert_eq!(value_of("1_000").resolve(), Resolved::Str("1_000"));
        assert_eq!(value_of("'42'").resolve(), Resolved::Str("42"));
        assert_eq!(value_of("\"true\"").resolve(), Resolved::Str("true"));
    }

    #[test]
    fn node_helpers() {
        let text = "m: {a: 1}\ns: [x]\n";
        let root = parse_one(text);
        assert_eq!(root.kind_name(), "mapping");
        assert_eq!(root.get("s").unwrap().kind_name(), "sequence");
        assert_eq!(
            root.get("m").unwrap().get("a").unwrap().kind_name(),
            "scalar"
        );
        assert!(root.get("missing").is_none());
        assert!(root.get("s").unwrap().get("x").is_none());
        assert_eq!(source(text, &root.entry("m").unwrap().key), "m");
        assert_eq!(root.get("s").unwrap().as_seq().unwrap().len(), 1);
        assert!(root.as_scalar().is_none() && root.as_seq().is_none());
    }

    #[test]
    fn a_slice_parses_with_positions_in_the_whole_text() {
        let text = "a:\n  - x: 'q'\n    y: \"e\\u00e9\"\n  - &k z\n";
        let start = text.find("  - x").unwrap();
        let end = text.find("  - &k").unwrap();
        let slice = parse_slice(text, start..end);
        assert!(!slice.defines_anchors);
        assert!(slice.parsed.diagnostics.is_empty());
        let root = &slice.parsed.documents[0];
        assert_eq!(source(text, root), "- x: 'q'\n    y: \"e\\u00e9\"");
        let item = &root.as_seq().unwrap()[0];
        assert_eq!(source(text, item.get("x").unwrap()), "'q'");
        let y = item.get("y").unwrap();
        assert_eq!(source(text, y), "\"e\\u00e9\"");
        assert_map_faithful(text, y);
        // The same item parsed with the whole text.
        let whole = parse_one(text);
        let whole_item = &whole.get("a").unwrap().as_seq().unwrap()[0];
        assert_eq!(item, whole_item);

        let anchored = parse_slice(text, end..text.len());
        assert!(anchored.defines_anchors);
        let broken = parse_slice(text, start..start + 9);
        assert_eq!(broken.parsed.diagnostics[0].code, Code::YAML_SYNTAX);
        assert!(broken.parsed.diagnostics[0].span.start >= start);
    }

    // ---- throughput ----------------------------------------------------

    fn workflow_yaml(steps: usize) -> String {
        let mut text = String::from(
            "apiVersion: workflow/v1\nkind: Workflow\nmetadata:\n  name: big\n  labels: {team: infra, tier: \"gold\"}\nspec:\n  steps:\n",
        );
        for i in 0..steps {
            text.push_str(&format!(
                "    - name: step-{i}\n      uses: http.get@v1\n      with:\n        url: \"https://example.com/api/{i}?q=1\"\n        headers:\n          accept: application/json\n        retries: 3\n      when: ${{{{ steps.prev.ok && inputs.count > {i} }}}}\n      run: |\n        echo hello {i}\n        echo done\n"
            ));
        }
        text
    }

    /// `cargo test --release -p donmai-grammar -- --ignored yaml_throughput --nocapture`
    ///
    /// Best of several rounds, with saphyr's bare event stream as the
    /// baseline, since the machine may be shared.
    #[test]
    #[ignore = "measurement; run in release"]
    fn yaml_throughput() {
        let text = workflow_yaml(10_000);
        let lines = text.lines().count();
        let best = |run: &dyn Fn()| {
            (0..15)
                .map(|_| {
                    let started = std::time::Instant::now();
                    run();
                    started.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let events_only = best(&|| {
            let count = saphyr_parser::Parser::new_from_str(&text)
                .filter(Result::is_ok)
                .count();
            assert!(count > lines);
        });
        let full = best(&|| {
            let parsed = parse(&text);
            assert!(parsed.diagnostics.is_empty());
            assert_eq!(parsed.documents.len(), 1);
        });
        for (what, seconds) in [("saphyr events only", events_only), ("yaml::parse", full)] {
            println!(
                "{what}: {lines} lines in {:.1} ms = {:.0} lines/s",
                seconds * 1e3,
                lines as f64 / seconds
            );
        }
    }

    // ---- properties -----------------------------------------------------

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn valid_span(text: &str, span: Span) -> bool {
            span.start <= span.end
                && span.end <= text.len()
                && text.is_char_boundary(span.start)
                && text.is_char_boundary(span.end)
        }

        /// Parses without panicking and every position it hands out is a
        /// valid span of the text.
        fn check_positions(text: &str) -> Parsed<'_> {
            let parsed = parse(text);
            for document in &parsed.documents {
                for node in all_nodes(document) {
                    assert!(valid_span(text, node.span), "{:?} in {text:?}", node.span);
                    if let Some(scalar) = node.as_scalar() {
                        let boundaries = scalar
                            .value
                            .char_indices()
                            .map(|(i, _)| i)
                            .chain([scalar.value.len()]);
                        for i in boundaries {
                            let at = scalar.to_file(i);
                            assert!(
                                at <= text.len() && text.is_char_boundary(at),
                                "decoded {i} maps to {at} in {text:?}: {scalar:?}"
                            );
                        }
                    }
                }
            }
            for diagnostic in &parsed.diagnostics {
                assert!(
                    valid_span(text, diagnostic.span),
                    "{diagnostic:?} in {text:?}"
                );
                for label in &diagnostic.labels {
                    assert!(valid_span(text, label.span), "{diagnostic:?} in {text:?}");
                }
            }
            parsed
        }

        /// Lines assembled from YAML's significant pieces, so that most
        /// inputs get deep into the grammar instead of failing at once.
        fn yamlish() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "- ",
                "-",
                "key: ",
                "k2:",
                "? ",
                ": ",
                "|",
                "|-",
                ">+2",
                ">",
                "'q''s'",
                "'",
                "\"e\\n\\u00e9\"",
                "\"",
                "\\",
                "[a, b]",
                "[",
                "]",
                "{k: v}",
                "{",
                "}",
                ", ",
                "&a ",
                "*a",
                "!t ",
                "!!str ",
                "# c",
                "plain text",
                "é",
                "---",
                "...",
                "\t",
                "  ",
                "\r\n",
                "%YAML 1.2",
                "~",
                "@",
            ]);
            let line = (0usize..6, prop::collection::vec(piece, 0..4))
                .prop_map(|(indent, pieces)| format!("{}{}", " ".repeat(indent), pieces.concat()));
            prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn arbitrary_strings_are_handled(text in any::<String>()) {
                check_positions(&text);
            }

            #[test]
            fn scalar_source_reads_back_everywhere(value in any::<String>()) {
                let source = scalar_source(&value);
                for text in [
                    format!("k: {source}\n"),
                    format!("{source}: v\n"),
                    format!("- {source}\n"),
                    format!("[{source}, x]"),
                    format!("[{{{source}: v}}, {{k: {source}}}]"),
                ] {
                    let parsed = parse(&text);
                    prop_assert!(parsed.diagnostics.is_empty(), "{text:?}: {:?}", parsed.diagnostics);
                    let mut scalars = Vec::new();
                    let mut pending = parsed.documents.iter().collect::<Vec<_>>();
                    while let Some(node) = pending.pop() {
                        match &node.kind {
                            NodeKind::Scalar(scalar) => scalars.push(scalar),
                            NodeKind::Seq(items) => pending.extend(items),
                            NodeKind::Map(entries) => {
                                pending.extend(entries.iter().flat_map(|e| [&e.key, &e.value]));
                            }
                        }
                    }
                    prop_assert!(
                        scalars.iter().any(|s| s.resolve() == Resolved::Str(&value)),
                        "{text:?} does not read back {value:?}"
                    );
                }
            }

            #[test]
            fn arbitrary_bytes_are_handled(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
                check_positions(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn yaml_alphabet_strings_are_handled(
                text in "[-:?|>'\"\n #&*!{}\\[\\],ab\t\\\\é0-9.~%@\r]{0,80}"
            ) {
                check_positions(&text);
            }

            #[test]
            fn yamlish_documents_are_handled(text in yamlish()) {
                let before = fallbacks();
                let parsed = check_positions(&text);
                if parsed.diagnostics.is_empty() {
                    prop_assert_eq!(fallbacks(), before, "re-scan disagreed with saphyr on {:?}", text);
                }
            }
        }

        fn word() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9é中_.()/+=]{1,8}"
        }

        /// Lines of words with single or double spaces inside.
        fn lines(max_lines: usize) -> impl Strategy<Value = Vec<String>> {
            let line = prop::collection::vec((word(), prop::bool::ANY), 1..5).prop_map(|words| {
                let mut line = String::new();
                for (i, (word, wide)) in words.iter().enumerate() {
                    if i > 0 {
                        line.push_str(if *wide { "  " } else { " " });
                    }
                    line.push_str(word);
                }
                line
            });
            prop::collection::vec(line, 1..max_lines)
        }

        /// Joins continuation lines of a flow scalar, sometimes with empty
        /// lines between them.
        fn join(lines: &[String], gaps: &[usize]) -> String {
            let mut out = String::new();
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                    out.push_str(&"\n".repeat(gaps.get(i).copied().unwrap_or(0)));
                    out.push_str("  ");
                }
                out.push_str(line);
            }
            out
        }

        fn check_scalar(text: &str, style: ScalarStyle) -> Result<(), TestCaseError> {
            let before = fallbacks();
            let parsed = parse(text);
            prop_assert!(
                parsed.diagnostics.is_empty(),
                "{:?} in {:?}",
                parsed.diagnostics,
                text
            );
            let node = parsed.documents[0].get("k").expect("the k entry");
            prop_assert_eq!(node.as_scalar().map(|s| s.style), Some(style));
            assert_map_faithful(text, node);
            prop_assert_eq!(fallbacks(), before, "fallback on {:?}", text);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn plain_scalar_maps(lines in lines(5), gaps in prop::collection::vec(0usize..3, 5)) {
                let text = format!("k: {}\nnext: 1\n", join(&lines, &gaps));
                check_scalar(&text, ScalarStyle::Plain)?;
            }

            #[test]
            fn single_quoted_maps(
                lines in lines(4),
                gaps in prop::collection::vec(0usize..3, 4),
                quotes in prop::collection::vec(prop::bool::ANY, 4),
            ) {
                let lines: Vec<String> = lines
                    .iter()
                    .zip(&quotes)
                    .map(|(line, quote)| if *quote { format!("{line}''") } else { line.clone() })
                    .collect();
                let text = format!("k: '{}'\n", join(&lines, &gaps));
                check_scalar(&text, ScalarStyle::SingleQuoted)?;
            }

            #[test]
            fn double_quoted_maps(
                pieces in prop::collection::vec(
                    prop_oneof![
                        word(),
                        prop::sample::select(vec![
                            "\\n", "\\t", "\\\\", "\\\"", "\\x41", "\\u00e9", "\\U0001F600", "\\/",
                            "\\0", "\\ ", "\\_", "\\N", "\\L", "\\e", " ", "  ", "\n  ", "\n\n  ",
                            "\\\n  ", " \\\n   ",
                        ]).prop_map(str::to_string),
                    ],
                    1..12,
                ),
            ) {
                let text = format!("k: \"{}\"\n", pieces.concat());
                check_scalar(&text, ScalarStyle::DoubleQuoted)?;
            }

            #[test]
            fn block_scalar_maps(
                folded in prop::bool::ANY,
                chomping in prop::sample::select(vec!["", "-", "+"]),
                explicit_indent in prop::bool::ANY,
                body in prop::collection::vec(
                    prop_oneof![
                        3 => (0usize..3, lines(2)).prop_map(|(extra, words)| {
                            format!("{}{}", " ".repeat(extra), words[0])
                        }),
                        1 => Just(String::new()),
                        1 => Just(" ".to_string()),
                    ],
                    1..8,
                ),
                final_break in prop::bool::ANY,
                trailing_empty in 0usize..3,
            ) {
                // Auto-detection takes the first line's indentation, so a more
                // indented first line needs an explicit indicator.
                let first_content = body.iter().find(|line| !line.trim().is_empty());
                let explicit_indent =
                    explicit_indent || first_content.is_some_and(|line| line.starts_with(' '));
                let indicator = if folded { '>' } else { '|' };
                let digit = if explicit_indent { "2" } else { "" };
                let mut text = format!("k: {indicator}{chomping}{digit}\n");
                for line in &body {
                    if line.trim().is_empty() {
                        text.push_str(line);
                    } else {
                        text.push_str("  ");
                        text.push_str(line);
                    }
                    text.push('\n');
                }
                text.push_str(&"\n".repeat(trailing_empty));
                if !final_break {
                    while text.ends_with('\n') {
                        text.pop();
                    }
                }
                let style = if folded { ScalarStyle::Folded } else { ScalarStyle::Literal };
                // Inputs made only of empty lines are legal, so check them too.
                check_scalar(&text, style)?;
            }
        }
    }
}
