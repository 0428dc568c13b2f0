//! Building the node tree from saphyr's event stream.
//!
//! saphyr's pull parser is a state machine with explicit stacks (it does not
//! recurse on nesting), and this builder keeps open collections on its own
//! stack, so no input depth reaches the call stack. Trees handed out are at
//! most `MAX_DEPTH` deep, which keeps the derived (recursive) `Clone`, `Drop`
//! and `PartialEq` of `Node` safe.
//!
//! Tags are ignored: the workflow format gives them no meaning, and the core
//! schema reading of plain scalars is done on demand by `Scalar::resolve`.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle as EventStyle, ScanError, Span as EventSpan};

use super::{
    Entry, MAX_ALIAS_EXPANSION, MAX_DEPTH, Node, NodeKind, Parsed, Scalar, ScalarMap, ScalarStyle,
    scalar,
};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::span::Span;

/// Hands the items of one sequence to a visitor as they complete; see
/// [`super::parse_visiting`].
pub(super) struct Visitor<'v, 'src> {
    pub path: &'v [&'v str],
    pub visit: &'v mut dyn FnMut(Node<'src>),
}

pub(super) fn parse<'src>(text: &'src str, visitor: Option<Visitor<'_, 'src>>) -> Parsed<'src> {
    run(text, visitor).0
}

/// `text[start..end]` parsed as a stream of its own, every position
/// reported in `text`; see [`super::parse_slice`].
pub(super) fn parse_slice(text: &str, start: usize, end: usize) -> super::SliceParsed<'_> {
    let (mut parsed, builder) = run(&text[start..end], None);
    if start > 0 {
        shift_positions(&mut parsed, start);
    }
    super::SliceParsed {
        parsed,
        defines_anchors: builder.defines_anchors,
        depends_on_what_follows: builder.ran_out,
    }
}

/// Moves every position of a tree built from a slice onto the whole text.
/// The tree is at most `MAX_DEPTH` deep, but the walk keeps its own stack
/// all the same.
fn shift_positions(parsed: &mut Parsed<'_>, by: usize) {
    let shift = |span: &mut Span| *span = Span::new(span.start + by, span.end + by);
    let mut pending: Vec<&mut Node<'_>> = parsed.documents.iter_mut().collect();
    while let Some(node) = pending.pop() {
        shift(&mut node.span);
        match &mut node.kind {
            NodeKind::Scalar(scalar) => match &mut scalar.map {
                ScalarMap::Verbatim { start } => *start += by,
                ScalarMap::Table { offsets } => offsets.iter_mut().for_each(|o| *o += by),
            },
            NodeKind::Seq(items) => pending.extend(items.iter_mut()),
            NodeKind::Map(entries) => {
                for entry in entries {
                    pending.push(&mut entry.key);
                    pending.push(&mut entry.value);
                }
            }
        }
    }
    for diagnostic in &mut parsed.diagnostics {
        shift(&mut diagnostic.span);
        diagnostic
            .labels
            .iter_mut()
            .for_each(|l| shift(&mut l.span));
        for edit in diagnostic.fix.iter_mut().flat_map(|fix| &mut fix.edits) {
            shift(&mut edit.span);
        }
    }
}

/// What a parse noticed besides the tree.
struct Noticed {
    /// Any anchor was defined (an alias without one is an error, so this
    /// also tells whether the text used any).
    defines_anchors: bool,
    ran_out: bool,
}

fn run<'src>(text: &'src str, visitor: Option<Visitor<'_, 'src>>) -> (Parsed<'src>, Noticed) {
    // saphyr reads a NUL character as the end of input and would silently
    // drop everything after it; YAML does not allow NUL anywhere.
    let (text, nul) = match text.find('\0') {
        Some(at) => (&text[..at], Some(at)),
        None => (text, None),
    };
    let mut builder = Builder::new(text);
    builder.visitor = visitor;
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let flow = match next {
            Ok((event, span)) => builder.event(event, span),
            Err(error) => {
                builder.syntax_error(&error);
                Flow::Stop
            }
        };
        if flow == Flow::Stop {
            break;
        }
    }
    let mut diagnostics = builder.diagnostics;
    if let Some(at) = nul {
        diagnostics.push(Diagnostic::new(
            Code::YAML_SYNTAX,
            Span::new(at, at + 1),
            "NUL characters are not allowed in YAML",
        ));
    }
    let parsed = Parsed {
        documents: builder.documents,
        diagnostics,
    };
    let noticed = Noticed {
        defines_anchors: builder.defines_anchors,
        ran_out: builder.ran_out,
    };
    (parsed, noticed)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Converts saphyr's character indices to byte offsets in O(1) per lookup
/// after one O(n) pass (none at all for ASCII text).
struct Positions {
    ascii: bool,
    /// Byte offset of every `STRIDE`-th character.
    checkpoints: Vec<usize>,
}

const STRIDE: usize = 64;

impl Positions {
    fn new(text: &str) -> Positions {
        if text.is_ascii() {
            return Positions {
                ascii: true,
                checkpoints: Vec::new(),
            };
        }
        let checkpoints = text
            .char_indices()
            .step_by(STRIDE)
            .map(|(offset, _)| offset)
            .collect();
        Positions {
            ascii: false,
            checkpoints,
        }
    }

    fn byte(&self, text: &str, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(text.len());
        }
        let Some(&base) = self.checkpoints.get(char_index / STRIDE) else {
            return text.len();
        };
        text[base..]
            .char_indices()
            .nth(char_index % STRIDE)
            .map_or(text.len(), |(offset, _)| base + offset)
    }
}

struct Anchored<'t> {
    node: Node<'t>,
    /// Nodes in the subtree, aliases already expanded.
    size: usize,
    height: usize,
}

/// Children of open collections live on two stacks shared by all frames
/// (a frame owns the tail above its base) and move into the node with one
/// exact-size allocation when it closes, instead of growing a `Vec` per
/// collection.
enum Children<'t> {
    Seq { base: usize },
    Map(MapChildren<'t>),
}

struct MapChildren<'t> {
    base: usize,
    key: Option<Node<'t>>,
    /// Key value → entry position, built once the mapping is large enough
    /// that a linear duplicate check would be quadratic.
    index: Option<HashMap<Cow<'t, str>, usize>>,
}

const INDEX_THRESHOLD: usize = 16;

struct Frame<'t> {
    children: Children<'t>,
    /// The sequence whose mapping items go to the visitor.
    visited: bool,
    start: usize,
    /// Opened with a `[` or `{` (not a block collection, nor the implicit
    /// single-pair mapping of `[a: b]`).
    bracketed: bool,
    /// Column of a block collection, as saphyr's scanner counts indentation.
    indent: usize,
    anchor: usize,
    size: usize,
    height: usize,
    /// End of the furthest child, dropped duplicates included.
    children_end: usize,
}

struct Builder<'t, 'v> {
    text: &'t str,
    visitor: Option<Visitor<'v, 't>>,
    positions: Positions,
    documents: Vec<Node<'t>>,
    diagnostics: Vec<Diagnostic>,
    frames: Vec<Frame<'t>>,
    items: Vec<Node<'t>>,
    entries: Vec<Entry<'t>>,
    root: Option<Node<'t>>,
    anchors: HashMap<usize, Anchored<'t>>,
    expanded: usize,
    /// Whether any node had an anchor: a caller parsing part of a file
    /// cannot know what aliases elsewhere would make of it.
    defines_anchors: bool,
    /// Whether an empty value was placed after looking for its indicator
    /// all the way to the end of the text: in a slice, the text after it
    /// would have had a say.
    ran_out: bool,
    /// End of the last token we placed exactly; the next node's indicators
    /// and properties lie between it and the node.
    cursor: usize,
}

impl<'t, 'v> Builder<'t, 'v> {
    fn new(text: &'t str) -> Builder<'t, 'v> {
        Builder {
            text,
            visitor: None,
            positions: Positions::new(text),
            documents: Vec::new(),
            diagnostics: Vec::new(),
            frames: Vec::new(),
            items: Vec::new(),
            entries: Vec::new(),
            root: None,
            anchors: HashMap::new(),
            expanded: 0,
            defines_anchors: false,
            ran_out: false,
            cursor: 0,
        }
    }

    fn byte(&self, marker: saphyr_parser::Marker) -> usize {
        self.positions.byte(self.text, marker.index())
    }

    /// The character at `at` (empty at the end of the text).
    fn char_span(&self, at: usize) -> Span {
        let at = floor_char_boundary(self.text, at);
        let len = self.text[at..].chars().next().map_or(0, char::len_utf8);
        Span::new(at, at + len)
    }

    fn syntax_error(&mut self, error: &ScanError) {
        let at = self.char_span(self.byte(*error.marker()));
        // saphyr's scanner reads ahead through nested flow collections (any
        // `[` may start a key) and stops at 255 levels before our own depth
        // check sees the events: it is the same limit, reported as such.
        let diagnostic = if error.info() == "recursion limit exceeded" {
            too_deep(at)
        } else {
            Diagnostic::new(Code::YAML_SYNTAX, at, error.info().to_string())
        };
        self.diagnostics.push(diagnostic);
    }

    fn event(&mut self, event: Event<'_>, span: EventSpan) -> Flow {
        match event {
            Event::DocumentStart(explicit) => {
                self.anchors.clear();
                self.expanded = 0;
                self.root = None;
                if explicit {
                    self.cursor = self.byte(span.end);
                }
            }
            Event::DocumentEnd => {
                if let Some(root) = self.root.take() {
                    self.documents.push(root);
                }
                self.cursor = self.cursor.max(self.byte(span.end));
            }
            Event::Scalar(value, style, anchor, tag) => {
                let node =
                    self.scalar(value.into_owned(), style, anchor > 0 || tag.is_some(), span);
                self.cursor = self.cursor.max(node.span.end);
                self.attach(node, 1, 0, anchor);
            }
            Event::Alias(id) => return self.alias(id, span),
            Event::SequenceStart(anchor, tag) => {
                return self.open(false, anchor, tag.is_some(), span);
            }
            Event::MappingStart(anchor, tag) => {
                return self.open(true, anchor, tag.is_some(), span);
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(span),
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Flow::Continue
    }

    fn open(&mut self, mapping: bool, anchor: usize, tagged: bool, span: EventSpan) -> Flow {
        let bytes = self.text.as_bytes();
        let event_start = self.byte(span.start);
        let has_properties = anchor > 0 || tagged;
        let start = if has_properties {
            skip_properties(bytes, event_start)
        } else if !mapping && !matches!(bytes.get(event_start), Some(b'-' | b'[')) {
            // An indentless sequence (`key:\n- a`) is reported at its first
            // item's content, past the dash.
            find_dash(bytes, self.cursor)
                .filter(|&dash| dash <= event_start)
                .unwrap_or(event_start)
        } else {
            event_start
        };
        if self.frames.len() >= MAX_DEPTH {
            self.diagnostics.push(too_deep(self.char_span(start)));
            return Flow::Stop;
        }
        let opener = if mapping { b'{' } else { b'[' };
        let bracketed = bytes.get(start) == Some(&opener) && self.byte(span.end) > start;
        let indent = if start == event_start {
            span.start.col()
        } else {
            column_at(self.text, start)
        };
        self.cursor = self.cursor.max(if bracketed { start + 1 } else { start });
        let visited = !mapping && self.at_visited_path();
        let children = if mapping {
            Children::Map(MapChildren {
                base: self.entries.len(),
                key: None,
                index: None,
            })
        } else {
            Children::Seq {
                base: self.items.len(),
            }
        };
        self.frames.push(Frame {
            children,
            visited,
            start,
            bracketed,
            indent,
            anchor,
            size: 1,
            height: 1,
            children_end: start,
        });
        Flow::Continue
    }

    /// Whether a sequence opened now sits at the visitor's path: in the
    /// first document, under the mapping keys of the path from the root.
    fn at_visited_path(&self) -> bool {
        let Some(visitor) = &self.visitor else {
            return false;
        };
        self.documents.is_empty()
            && self.frames.len() == visitor.path.len()
            && self.frames.iter().zip(visitor.path).all(|(frame, key)| {
                matches!(
                    &frame.children,
                    Children::Map(MapChildren { key: Some(pending), .. })
                        if pending.as_str() == Some(key)
                )
            })
    }

    fn close(&mut self, span: EventSpan) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        let closer_at = self.byte(span.start);
        let closer = match frame.children {
            Children::Seq { .. } => b']',
            Children::Map(_) => b'}',
        };
        let end = if frame.bracketed && self.text.as_bytes().get(closer_at) == Some(&closer) {
            closer_at + 1
        } else {
            frame.children_end
        };
        let kind = match frame.children {
            Children::Seq { base } => NodeKind::Seq(self.items.drain(base..).collect()),
            Children::Map(map) => NodeKind::Map(self.entries.drain(map.base..).collect()),
        };
        let node = Node {
            span: Span::new(frame.start, end.max(frame.start)),
            kind,
        };
        self.cursor = self.cursor.max(node.span.end);
        self.attach(node, frame.size, frame.height, frame.anchor);
    }

    fn alias(&mut self, id: usize, span: EventSpan) -> Flow {
        let alias_span = Span::new(self.byte(span.start), self.byte(span.end));
        let name = self
            .text
            .get(alias_span.start..alias_span.end)
            .unwrap_or("")
            .trim_start_matches('*');
        let Some(anchored) = self.anchors.get(&id) else {
            let message = if self.frames.iter().any(|frame| frame.anchor == id) {
                format!("alias `*{name}` refers to a node that contains it")
            } else {
                format!("unknown anchor `{name}` (anchors are local to their document)")
            };
            self.diagnostics
                .push(Diagnostic::new(Code::YAML_SYNTAX, alias_span, message));
            return Flow::Stop;
        };
        if self.frames.len() + anchored.height > MAX_DEPTH {
            self.diagnostics.push(Diagnostic::new(
                Code::DOCUMENT_TOO_COMPLEX,
                alias_span,
                format!("alias `*{name}` nests the document more than {MAX_DEPTH} levels deep"),
            ));
            return Flow::Stop;
        }
        self.expanded = self.expanded.saturating_add(anchored.size);
        if self.expanded > MAX_ALIAS_EXPANSION {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::DOCUMENT_TOO_COMPLEX,
                    alias_span,
                    format!(
                        "aliases in this document expand to more than {MAX_ALIAS_EXPANSION} nodes"
                    ),
                )
                .with_help("alias expansion is bounded to refuse \"billion laughs\" documents"),
            );
            return Flow::Stop;
        }
        let (size, height) = (anchored.size, anchored.height);
        let mut node = anchored.node.clone();
        // The value reads from the anchored node, but it is used here.
        node.span = alias_span;
        self.cursor = self.cursor.max(alias_span.end);
        self.attach(node, size, height, 0);
        Flow::Continue
    }

    fn attach(&mut self, node: Node<'t>, size: usize, height: usize, anchor: usize) {
        if anchor > 0 {
            self.defines_anchors = true;
            self.anchors.insert(
                anchor,
                Anchored {
                    node: node.clone(),
                    size,
                    height,
                },
            );
        }
        let Some(frame) = self.frames.last_mut() else {
            self.root = Some(node);
            return;
        };
        frame.size = frame.size.saturating_add(size);
        frame.height = frame.height.max(height + 1);
        frame.children_end = frame.children_end.max(node.span.end);
        match &mut frame.children {
            Children::Seq { .. } if frame.visited && matches!(node.kind, NodeKind::Map(_)) => {
                let span = node.span;
                if let Some(visitor) = &mut self.visitor {
                    (visitor.visit)(node);
                }
                self.items.push(Node {
                    span,
                    kind: NodeKind::Map(Vec::new()),
                });
            }
            Children::Seq { .. } => self.items.push(node),
            Children::Map(map) => match map.key.take() {
                None => map.key = Some(node),
                Some(key) => insert_entry(
                    map,
                    &mut self.entries,
                    Entry { key, value: node },
                    &mut self.diagnostics,
                ),
            },
        }
    }

    fn scalar(
        &mut self,
        value: String,
        style: EventStyle,
        has_properties: bool,
        span: EventSpan,
    ) -> Node<'t> {
        let text = self.text;
        let bytes = text.as_bytes();
        let event_start = self.byte(span.start);
        let event_end = self.byte(span.end);
        let content_start = if has_properties {
            skip_properties(bytes, event_start)
        } else {
            event_start
        };
        let style = match style {
            EventStyle::Plain => ScalarStyle::Plain,
            EventStyle::SingleQuoted => ScalarStyle::SingleQuoted,
            EventStyle::DoubleQuoted => ScalarStyle::DoubleQuoted,
            EventStyle::Literal => ScalarStyle::Literal,
            EventStyle::Folded => ScalarStyle::Folded,
        };
        let placed = match style {
            ScalarStyle::Plain if value.is_empty() => {
                let at = if has_properties {
                    event_end
                } else {
                    let (at, ran_out) = empty_value_position(bytes, self.cursor);
                    self.ran_out |= ran_out;
                    at
                };
                Some((Span::at(at), ScalarMap::Verbatim { start: at }))
            }
            ScalarStyle::Plain => {
                let span = Span::new(content_start, event_end);
                if text.get(span.start..span.end) == Some(value.as_str()) {
                    Some((span, ScalarMap::Verbatim { start: span.start }))
                } else if span.start <= span.end {
                    scalar::plain_map(text, span.start, span.end, &value).map(|map| (span, map))
                } else {
                    None
                }
            }
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                let double = style == ScalarStyle::DoubleQuoted;
                scalar::quoted_map(text, content_start, &value, double)
                    .map(|(end, map)| (Span::new(content_start, end), map))
            }
            ScalarStyle::Literal | ScalarStyle::Folded => {
                let header = if has_properties {
                    Some(content_start)
                } else {
                    find_block_header(bytes, self.cursor)
                };
                let parent_indent = self.frames.last().map_or(-1, |frame| {
                    isize::try_from(frame.indent).unwrap_or(isize::MAX)
                });
                header.and_then(|header| scalar::block_map(text, header, parent_indent, &value))
            }
        };
        let (span, map) = placed.unwrap_or_else(|| {
            note_fallback();
            let start = floor_char_boundary(text, content_start.min(event_end));
            let end = floor_char_boundary(text, event_end).max(start);
            let mut offsets = vec![start; value.len()];
            offsets.push(end);
            (Span::new(start, end), ScalarMap::Table { offsets })
        });
        // A value that reads exactly as written is kept as a slice of the
        // text: the tree then holds no copy of most scalars.
        let value = match map {
            ScalarMap::Verbatim { start } => match text.get(start..start + value.len()) {
                Some(source) if source == value => Cow::Borrowed(source),
                _ => Cow::Owned(value),
            },
            ScalarMap::Table { .. } => Cow::Owned(value),
        };
        Node {
            span,
            kind: NodeKind::Scalar(Scalar { value, style, map }),
        }
    }
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::DOCUMENT_TOO_COMPLEX,
        span,
        format!("collections are nested more than {MAX_DEPTH} levels deep"),
    )
    .with_help("flatten the structure; deeper nesting is refused to bound the work")
}

fn insert_entry<'t>(
    map: &mut MapChildren<'t>,
    stack: &mut Vec<Entry<'t>>,
    entry: Entry<'t>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let NodeKind::Scalar(key) = &entry.key.kind else {
        stack.push(entry);
        return;
    };
    let entries = &stack[map.base..];
    let existing = match &map.index {
        Some(index) => index.get(&*key.value).copied(),
        None => entries
            .iter()
            .position(|e| matches!(&e.key.kind, NodeKind::Scalar(k) if k.value == key.value)),
    };
    if let Some(first) = existing {
        let shown: String = key.value.chars().take(60).collect();
        diagnostics.push(
            Diagnostic::new(
                Code::DUPLICATE_KEY,
                entry.key.span,
                format!("duplicate key `{}`", shown.escape_debug()),
            )
            .with_label(entries[first].key.span, "first defined here")
            .with_help("a key may appear once per mapping; this entry is ignored"),
        );
        return;
    }
    let position = entries.len();
    match &mut map.index {
        Some(index) => {
            index.insert(key.value.clone(), position);
        }
        None if position >= INDEX_THRESHOLD => {
            let mut index: HashMap<Cow<'t, str>, usize> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| match &e.key.kind {
                    NodeKind::Scalar(k) => Some((k.value.clone(), i)),
                    _ => None,
                })
                .collect();
            index.insert(key.value.clone(), position);
            map.index = Some(index);
        }
        None => {}
    }
    stack.push(entry);
}

#[cfg(test)]
thread_local! {
    pub(super) static FALLBACKS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts scalars whose re-scan disagreed with saphyr, so tests can assert
/// that ordinary inputs never take the fallback.
fn note_fallback() {
    #[cfg(test)]
    FALLBACKS.with(|count| count.set(count.get() + 1));
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Column (in characters) of `offset` within its line.
fn column_at(text: &str, offset: usize) -> usize {
    let offset = floor_char_boundary(text, offset);
    let line_start = text[..offset].rfind(['\n', '\r']).map_or(0, |i| i + 1);
    text[line_start..offset].chars().count()
}

fn is_separator(bytes: &[u8], at: usize) -> bool {
    matches!(bytes.get(at), None | Some(b' ' | b'\t' | b'\n' | b'\r'))
}

/// Skips white space, line breaks, comments and byte order marks.
fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    loop {
        match bytes.get(i) {
            Some(b' ' | b'\t' | b'\n' | b'\r') => i += 1,
            Some(b'#') => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            Some(0xEF) if bytes.get(i..i + 3) == Some("\u{feff}".as_bytes()) => i += 3,
            _ => return i,
        }
    }
}

/// Skips one anchor or tag starting at `i`, if there is one.
fn skip_property(bytes: &[u8], i: usize) -> Option<usize> {
    let mut i = match bytes.get(i) {
        Some(b'!') if bytes.get(i + 1) == Some(&b'<') => {
            // A verbatim tag `!<...>` may hold flow indicators.
            let close = bytes[i..].iter().position(|&b| b == b'>')?;
            return Some(i + close + 1);
        }
        Some(b'&' | b'!') => i + 1,
        _ => return None,
    };
    while i < bytes.len()
        && !matches!(
            bytes[i],
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b'[' | b']' | b'{' | b'}'
        )
    {
        i += 1;
    }
    Some(i)
}

/// From the start of a node's properties to the start of its content.
fn skip_properties(bytes: &[u8], mut i: usize) -> usize {
    loop {
        i = skip_space(bytes, i);
        match skip_property(bytes, i) {
            Some(next) => i = next,
            None => return i,
        }
    }
}

fn is_document_marker(bytes: &[u8], at: usize) -> bool {
    let marker = bytes.get(at..at + 3);
    (marker == Some(b"---") || marker == Some(b"...")) && is_separator(bytes, at + 3)
}

/// The `|` or `>` of a block scalar that follows `from`, across indicators,
/// properties and comments.
fn find_block_header(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = skip_space(bytes, i);
        match bytes.get(i)? {
            b'|' | b'>' => return Some(i),
            _ if is_document_marker(bytes, i) => i += 3,
            b'-' | b'?' | b':' if is_separator(bytes, i + 1) => i += 1,
            _ => i = skip_property(bytes, i)?,
        }
    }
}

/// The first dash of an indentless sequence that follows `from`.
fn find_dash(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = skip_space(bytes, i);
        match bytes.get(i)? {
            b'-' => return Some(i),
            b'?' | b':' if is_separator(bytes, i + 1) => i += 1,
            _ => return None,
        }
    }
}

/// Where an empty value sits: just past the `:`, `-` or `?` that introduces
/// it, or at `from` when there is no indicator (`{a, b}`). Also whether the
/// search ran out of text, so that more text could have moved the value.
fn empty_value_position(bytes: &[u8], from: usize) -> (usize, bool) {
    let i = skip_space(bytes, from);
    let at = match bytes.get(i) {
        Some(b':' | b'-' | b'?')
            if is_separator(bytes, i + 1)
                || matches!(bytes.get(i + 1), Some(b',' | b']' | b'}')) =>
        {
            i + 1
        }
        _ => from.min(bytes.len()),
    };
    (at, i >= bytes.len())
}
