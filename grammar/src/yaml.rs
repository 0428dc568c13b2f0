//! YAML text → a tree of nodes with exact byte spans.
//!
//! Built on saphyr-parser's event stream (not its loader) so that we keep
//! spans on every key, value and item, see scalar styles, report duplicate
//! keys with both positions, and bound alias expansion and nesting depth.

use crate::span::Span;

/// Nesting deeper than this is reported, never recursed into.
pub const MAX_DEPTH: usize = 128;
/// Total nodes an alias may expand to across one document.
pub const MAX_ALIAS_EXPANSION: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Exact extent in the file: a flow collection includes its closing
    /// bracket, a quoted scalar its quotes, a block scalar its `|`/`>` header.
    pub span: Span,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub key: Node,
    pub value: Node,
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
pub struct Scalar {
    /// The decoded value (escapes resolved, lines folded).
    pub value: String,
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
