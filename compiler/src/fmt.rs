//! `donmaic fmt`: the one canonical layout of workflow YAML.
//!
//! The formatter owns layout only, never meaning: it re-emits the YAML tree
//! of `donmai_grammar::yaml` with canonical indentation, taking every scalar,
//! anchor, tag and comment from the source text as written. The style:
//!
//! - two spaces per level; a sequence under a key is indented below it
//!   (`key:` / `  - item`); a mapping or sequence that is an item of a
//!   sequence starts on the dash's line (`- id: a`, `- - x`);
//! - keys keep their order, scalars their quoting and spelling (`yes`,
//!   `0x1F`, `'single'` stay as written); a scalar value that was on the
//!   line after its key moves up to the key's line;
//! - a flow collection written on one line stays in flow style with
//!   canonical spacing (`[a, b]`, `{k: v, k2: v2}`); one that spans lines
//!   becomes block style, unless a plain scalar in it reads differently in
//!   block context (`[a,\n |b]`): it is then joined on one line, or kept as
//!   written. A `{{ … }}` written without quotes, which YAML reads as a
//!   mapping, is kept as written: `donmaic check --fix` quotes it;
//! - a comment stays on its line: after the same token, or alone on a line
//!   before the same token, indented like the level it was aligned with;
//!   runs of blank lines become one, blank lines at the start and end of the
//!   file go;
//! - block scalars (`|`, `>`) keep their header and their content, shifted
//!   as a whole to the new indentation; continuation lines of multi-line
//!   plain and quoted scalars are indented one level below their key;
//! - trailing white space goes (except inside block scalars, where it is
//!   content), the file ends with one line break, and keeps its line breaks
//!   (CRLF when its first line break is CRLF) and its byte order mark;
//! - documents, `---`, `...`, directives, anchors, aliases and tags stay;
//!   long lines are not wrapped.
//!
//! A file with YAML errors (syntax, duplicate keys, limits) is refused with
//! the position of the first one. Before the text is returned it is parsed
//! again and its tree compared with the input's (every scalar's value and
//! style, every collection's shape and order): a layout that would change
//! the data is refused, never written.

use donmai_grammar::diagnostic::Edit;
use donmai_grammar::yaml::{self, Entry, Node, NodeKind, Scalar, ScalarStyle};
use donmai_grammar::{SourceFile, Span};
use std::fmt;

/// Spaces per nesting level.
pub const INDENT: usize = 2;

/// YAML's limit on the length of an implicit key; longer keys are written
/// as explicit `? key` entries.
const MAX_IMPLICIT_KEY: usize = 1024;

/// Why a text could not be formatted. The text is then left as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    /// Byte range in the text given to the formatter.
    pub span: Span,
    /// 1-based line of `span.start`.
    pub line: usize,
    /// 1-based column (in characters) of `span.start`.
    pub column: usize,
    pub message: String,
}

impl FormatError {
    fn new(original: &str, span: Span, message: impl Into<String>) -> FormatError {
        let file = SourceFile::new("", original.to_string());
        let position = file.line_col(span.start);
        FormatError {
            span,
            line: position.line,
            column: position.column,
            message: message.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for FormatError {}

/// The canonical layout of `text` (a workflow, group, or any YAML file).
/// Idempotent: formatting the result again gives the same text.
pub fn format_workflow(text: &str) -> Result<String, FormatError> {
    let prepared = Prepared::new(text);
    let body = prepared.text.as_str();
    let parsed = yaml::parse(body);
    if let Some(first) = parsed.diagnostics.first() {
        let span = prepared.original_span(first.span);
        return Err(FormatError::new(text, span, yaml_refusal(&first.message)));
    }
    let mut emitter = Emitter::new(body);
    let formatted = match emitter.stream(&parsed.documents) {
        Ok(()) => emitter.out,
        Err(Misplaced(at)) => {
            return Err(FormatError::new(
                text,
                prepared.original_span(Span::at(at)),
                "the formatter cannot lay out this part of the file (please report it)",
            ));
        }
    };
    if let Err(at) = same_data(&parsed.documents, &formatted) {
        return Err(FormatError::new(
            text,
            prepared.original_span(at),
            "the formatter would change what this node means, so the file is left as it is \
             (please report it)",
        ));
    }
    Ok(prepared.restore(formatted))
}

/// The edits that turn `text` into its canonical layout, one per changed
/// run of lines, sorted and disjoint: what an editor applies without
/// replacing the whole document. Empty when `text` is already formatted.
pub fn format_edits(text: &str) -> Result<Vec<Edit>, FormatError> {
    let formatted = format_workflow(text)?;
    Ok(line_edits(text, &formatted))
}

/// Disjoint edits, by whole lines, from `old` to `new`.
pub fn line_edits(old: &str, new: &str) -> Vec<Edit> {
    if old == new {
        return Vec::new();
    }
    // Positions are counted along the changes, not taken from the diff's
    // operations, whose old index after an insertion is not always exact.
    let diff = similar::TextDiff::from_lines(old, new);
    let mut edits: Vec<Edit> = Vec::new();
    let mut pending: Option<Edit> = None;
    let mut offset = 0;
    for change in diff.iter_all_changes() {
        let line = change.value();
        match change.tag() {
            similar::ChangeTag::Equal => {
                edits.extend(pending.take());
                offset += line.len();
            }
            similar::ChangeTag::Delete => {
                let edit = pending.get_or_insert_with(|| Edit {
                    span: Span::at(offset),
                    replacement: String::new(),
                });
                offset += line.len();
                edit.span.end = offset;
            }
            similar::ChangeTag::Insert => {
                let edit = pending.get_or_insert_with(|| Edit {
                    span: Span::at(offset),
                    replacement: String::new(),
                });
                edit.replacement.push_str(line);
            }
        }
    }
    edits.extend(pending);
    edits
}

fn yaml_refusal(message: &str) -> String {
    format!("not formatted: the YAML has an error: {message}")
}

/// The text the formatter works on: without a byte order mark and with
/// every line break a `\n`, so that the layout never has to think about
/// them; both come back in [`Prepared::restore`].
struct Prepared {
    text: String,
    bom: bool,
    crlf: bool,
    /// Offsets in `text` of the `\n`s whose `\r` was dropped.
    dropped: Vec<usize>,
}

impl Prepared {
    fn new(original: &str) -> Prepared {
        let (bom, rest) = match original.strip_prefix('\u{feff}') {
            Some(rest) => (true, rest),
            None => (false, original),
        };
        let crlf = rest
            .find(['\n', '\r'])
            .is_some_and(|at| rest[at..].starts_with("\r\n"));
        let mut text = String::with_capacity(rest.len());
        let mut dropped = Vec::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\r' {
                if chars.peek() == Some(&'\n') {
                    dropped.push(text.len());
                    continue;
                }
                text.push('\n');
            } else {
                text.push(c);
            }
        }
        Prepared {
            text,
            bom,
            crlf,
            dropped,
        }
    }

    /// The span of the original text that `span` of the prepared text
    /// covers.
    fn original_span(&self, span: Span) -> Span {
        let map = |offset: usize| {
            let before = self.dropped.partition_point(|&at| at < offset);
            offset + before + if self.bom { 3 } else { 0 }
        };
        Span::new(map(span.start), map(span.end))
    }

    fn restore(&self, formatted: String) -> String {
        let mut out = String::with_capacity(formatted.len() + 3);
        if self.bom {
            out.push('\u{feff}');
        }
        if self.crlf {
            out.push_str(&formatted.replace('\n', "\r\n"));
        } else {
            out.push_str(&formatted);
        }
        out
    }
}

/// The layout went wrong at this offset of the prepared text: the source
/// held something the emitter did not expect there. Never expected on
/// text the parser accepted; reported as a refusal, not a panic.
struct Misplaced(usize);

type Emitted<T = ()> = Result<T, Misplaced>;

/// A block collection being laid out: where it was, where it goes.
#[derive(Clone, Copy, Debug)]
struct Level {
    /// Column of the collection in the source.
    old_column: usize,
    /// Its indentation in the output.
    indent: usize,
}

/// What the output line ends with, which decides what may follow on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// A finished token: the next one starts a new line.
    None,
    /// `key:` takes a scalar on its line, never a block collection.
    Key,
    /// `-`, `?` and an explicit `:` take anything, collections compactly.
    Dash,
    /// `---` takes a scalar on its line.
    DocumentStart,
    /// Properties of a collection (`- &anchor`): the collection starts on
    /// the next line, or they would move to its first key.
    Properties,
}

/// Where a node is laid out.
#[derive(Clone, Copy, Debug)]
struct Place {
    /// Indentation of the node's lines when it starts on a line of its own.
    indent: usize,
    /// The block collection holding the node (a block scalar's indentation
    /// indicator counts from it): source column and output indentation.
    parent: Option<Level>,
    /// The node follows `-`, `?` or an explicit `:`.
    item: bool,
}

impl Place {
    fn child_of(level: Level, item: bool) -> Place {
        Place {
            indent: level.indent + INDENT,
            parent: Some(level),
            item,
        }
    }
}

/// How a node is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Alias,
    /// A plain or quoted scalar.
    Scalar,
    BlockScalar,
    /// A flow collection on one line, or an empty one.
    InlineFlow,
    /// A flow collection over several lines that neither block style nor
    /// one line can hold: its lines are kept, re-indented.
    VerbatimFlow,
    /// A block mapping, or a flow mapping over several lines.
    Map {
        flow: bool,
    },
    Seq {
        flow: bool,
    },
}

impl Shape {
    fn is_collection(self) -> bool {
        matches!(self, Shape::Map { .. } | Shape::Seq { .. })
    }
}

/// Pieces of the text between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece {
    LineBreak(usize),
    /// `#` to the end of its line.
    Comment(usize, usize),
    /// An anchor or tag.
    Property(usize, usize),
    /// `-`, `?`, `:`, `,` or a bracket.
    Indicator(u8, usize),
    DocumentStart(usize),
    DocumentEnd(usize),
    Directive(usize, usize),
}

/// The pieces of `text[from..to]`, which holds no node. Anything else in
/// it is reported at its offset.
fn pieces(text: &str, from: usize, to: usize) -> Emitted<Vec<Piece>> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = from;
    while i < to {
        let at_line_start = i == 0 || bytes[i - 1] == b'\n';
        match bytes[i] {
            b' ' | b'\t' => i += 1,
            b'\n' => {
                found.push(Piece::LineBreak(i));
                i += 1;
            }
            b'#' => {
                let end = line_end(text, i).min(to);
                found.push(Piece::Comment(i, end));
                i = end;
            }
            b'-' | b'.' if at_line_start && is_document_marker(bytes, i) => {
                found.push(if bytes[i] == b'-' {
                    Piece::DocumentStart(i)
                } else {
                    Piece::DocumentEnd(i)
                });
                i += 3;
            }
            b'%' if at_line_start => {
                let end = line_end(text, i).min(to);
                found.push(Piece::Directive(i, end));
                i = end;
            }
            b'&' | b'!' => {
                let end = property_end(bytes, i).min(to);
                found.push(Piece::Property(i, end));
                i = end;
            }
            indicator @ (b'-' | b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}') => {
                found.push(Piece::Indicator(indicator, i));
                i += 1;
            }
            0xEF if text[i..].starts_with('\u{feff}') => i += 3,
            _ => return Err(Misplaced(i)),
        }
    }
    Ok(found)
}

fn line_end(text: &str, from: usize) -> usize {
    text[from..].find('\n').map_or(text.len(), |at| from + at)
}

fn is_document_marker(bytes: &[u8], at: usize) -> bool {
    let marker = bytes.get(at..at + 3);
    (marker == Some(b"---") || marker == Some(b"..."))
        && matches!(bytes.get(at + 3), None | Some(b' ' | b'\t' | b'\n'))
}

fn property_end(bytes: &[u8], start: usize) -> usize {
    if bytes.get(start) == Some(&b'!')
        && bytes.get(start + 1) == Some(&b'<')
        && let Some(close) = bytes[start..].iter().position(|&b| b == b'>')
    {
        return start + close + 1;
    }
    let mut i = start + 1;
    while i < bytes.len()
        && !matches!(
            bytes[i],
            b' ' | b'\t' | b'\n' | b',' | b'[' | b']' | b'{' | b'}'
        )
    {
        i += 1;
    }
    i
}

/// Trailing white space of one line of a flow scalar goes, since folding
/// drops it; except the character after an escaping backslash, which is
/// content (`"a\ "`).
fn trim_flow_end(line: &str, style: ScalarStyle) -> &str {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if style == ScalarStyle::DoubleQuoted && trimmed.len() < line.len() {
        let backslashes = trimmed.bytes().rev().take_while(|&b| b == b'\\').count();
        if backslashes % 2 == 1 {
            return &line[..trimmed.len() + 1];
        }
    }
    trimmed
}

struct Emitter<'t> {
    src: &'t str,
    out: String,
    /// The output line being built.
    line: String,
    /// The line holds a token (not only indentation).
    line_has_content: bool,
    /// The line ends with a comment: nothing more may follow on it.
    line_closed: bool,
    /// Length of `line` up to the end of its last token.
    written: usize,
    slot: Slot,
    /// A blank line was seen since the last output line.
    pending_blank: bool,
    /// Properties written just before the next token, on its line.
    pending_properties: Vec<&'t str>,
    /// Everything before this offset of `src` has been laid out.
    cursor: usize,
    /// End of the last token written, in `src`: a comment on its line
    /// stays on it.
    last_token_end: usize,
    /// Block collections being laid out, outermost first.
    levels: Vec<Level>,
    /// Collections closed since the last token, whose trailing comments
    /// are still to be placed.
    closed_levels: Vec<Level>,
    /// The last token was a block scalar with `+` chomping: the empty
    /// lines after it are content.
    keep_breaks: bool,
}

impl<'t> Emitter<'t> {
    fn new(src: &'t str) -> Emitter<'t> {
        Emitter {
            src,
            out: String::with_capacity(src.len() + src.len() / 8),
            line: String::new(),
            line_has_content: false,
            line_closed: false,
            written: 0,
            slot: Slot::None,
            pending_blank: false,
            pending_properties: Vec::new(),
            cursor: 0,
            last_token_end: 0,
            levels: Vec::new(),
            closed_levels: Vec::new(),
            keep_breaks: false,
        }
    }

    fn column(&self, offset: usize) -> usize {
        let start = self.src[..offset].rfind('\n').map_or(0, |at| at + 1);
        self.src[start..offset].chars().count()
    }

    // ---- output lines ----------------------------------------------------

    fn finish_line(&mut self) {
        if self.line_has_content {
            // Only padding goes: a token may end in white space (`"a\ `).
            let keep = self
                .line
                .trim_end()
                .len()
                .max(self.written.min(self.line.len()));
            self.out.push_str(&self.line[..keep]);
            self.out.push('\n');
        }
        self.written = 0;
        self.line.clear();
        self.line_has_content = false;
        self.line_closed = false;
        self.slot = Slot::None;
    }

    /// A line of scalar content, written exactly.
    fn content_line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn begin_line(&mut self, indent: usize) {
        self.finish_line();
        if self.pending_blank && !self.out.is_empty() {
            self.out.push('\n');
        }
        self.pending_blank = false;
        self.line.extend(std::iter::repeat_n(' ', indent));
    }

    fn write(&mut self, token: &str) {
        self.line.push_str(token);
        self.written = self.line.len();
        self.line_has_content = true;
        self.slot = Slot::None;
        self.closed_levels.clear();
    }

    /// Whether a node of `shape` may follow on the current line.
    fn fits_on_line(&self, shape: Shape) -> bool {
        if !self.line_has_content || self.line_closed {
            return false;
        }
        match self.slot {
            Slot::Dash => true,
            Slot::Key | Slot::DocumentStart | Slot::Properties => !shape.is_collection(),
            Slot::None => false,
        }
    }

    /// Makes room for a token: on the current line after a space when
    /// `inline`, else on a new line at `indent`.
    fn open_line(&mut self, indent: usize, inline: bool) {
        if inline {
            // A blank line between a key or dash and what moves up to its
            // line goes with the line break.
            self.pending_blank = false;
            self.line.push(' ');
        } else {
            self.begin_line(indent);
        }
    }

    /// Starts a token ([`Emitter::open_line`]), then writes its pending
    /// properties.
    fn open_token(&mut self, indent: usize, inline: bool) {
        self.open_line(indent, inline);
        for property in std::mem::take(&mut self.pending_properties) {
            self.write(property);
            self.line.push(' ');
        }
    }

    // ---- the text between nodes ------------------------------------------

    /// Lays out the comments, blank lines, properties and document markers
    /// up to `until`, stopping after the first `stop_at` indicator when one
    /// is given (and returning its offset). `next` is where the following
    /// node goes, for comments aligned with it. Between the entries of a
    /// flow collection (`in_flow`), properties belong to the next node
    /// wherever they are.
    fn gap(
        &mut self,
        until: usize,
        next: Option<Level>,
        stop_at: Option<u8>,
        in_flow: bool,
    ) -> Emitted<Option<usize>> {
        if until < self.cursor {
            return Err(Misplaced(until));
        }
        let src = self.src;
        let found = pieces(src, self.cursor, until)?;
        // At the start of a line only white space has been seen since.
        let mut fresh = self.cursor == 0 || src.as_bytes()[self.cursor - 1] == b'\n';
        let mut pieces = found.iter().copied().peekable();
        // After a `+` block scalar, the first break ends its last line (or
        // its header); each break after it that ends an empty line is part
        // of the scalar, up to the first other piece.
        let mut keep = std::mem::take(&mut self.keep_breaks).then_some(false);
        while let Some(piece) = pieces.next() {
            if !matches!(piece, Piece::LineBreak(_) | Piece::Comment(..)) || keep == Some(true) {
                keep = keep.filter(|_| matches!(piece, Piece::LineBreak(_)));
            }
            match piece {
                Piece::LineBreak(at) if keep.is_some() => {
                    if keep == Some(true) {
                        self.finish_line();
                        self.content_line("");
                    }
                    keep = Some(true);
                    fresh = true;
                    self.cursor = at + 1;
                }
                Piece::LineBreak(at) => {
                    if fresh {
                        self.pending_blank = true;
                    }
                    fresh = true;
                    self.cursor = at + 1;
                }
                Piece::Comment(start, end) => {
                    let comment = src[start..end].trim_end();
                    let same_line = !src[self.last_token_end.min(start)..start].contains('\n');
                    if same_line && self.line_has_content && !self.line_closed {
                        self.line.push(' ');
                        self.line.push_str(comment);
                    } else {
                        let indent = self.comment_indent(self.column(start), next);
                        self.begin_line(indent);
                        self.line.push_str(comment);
                        self.line_has_content = true;
                    }
                    self.line_closed = true;
                    self.last_token_end = end;
                    self.cursor = end;
                    fresh = false;
                }
                Piece::Property(start, end) => {
                    let property = &src[start..end];
                    // Followed by a line break: it belongs to a collection
                    // (or a scalar) on the next line, and stays on this one.
                    let ends_line = !pieces
                        .clone()
                        .any(|p| !matches!(p, Piece::LineBreak(_) | Piece::Comment(..)))
                        && pieces.peek().is_some();
                    let open_line = self.line_has_content && !self.line_closed;
                    let ends_line = ends_line && !in_flow;
                    if ends_line && open_line && self.slot != Slot::None {
                        self.line.push(' ');
                        self.write(property);
                        self.slot = Slot::Properties;
                    } else if ends_line && !open_line {
                        let indent = next.map_or(0, |level| level.indent);
                        self.begin_line(indent);
                        self.write(property);
                        self.slot = Slot::Properties;
                    } else {
                        // On the line of the node it belongs to, or, between
                        // the items of a flow collection, before the next one.
                        self.pending_properties.push(property);
                    }
                    self.last_token_end = end;
                    self.cursor = end;
                    fresh = false;
                }
                Piece::Indicator(indicator, at) => {
                    self.cursor = at + 1;
                    fresh = false;
                    if stop_at == Some(indicator) {
                        return Ok(Some(at));
                    }
                }
                Piece::DocumentStart(at) => {
                    self.begin_line(0);
                    self.write("---");
                    self.slot = Slot::DocumentStart;
                    self.last_token_end = at + 3;
                    self.cursor = at + 3;
                    fresh = false;
                }
                Piece::DocumentEnd(at) => {
                    self.begin_line(0);
                    self.write("...");
                    self.last_token_end = at + 3;
                    self.cursor = at + 3;
                    fresh = false;
                }
                Piece::Directive(start, end) => {
                    self.begin_line(0);
                    self.write(src[start..end].trim_end());
                    self.finish_line();
                    self.last_token_end = end;
                    self.cursor = end;
                    fresh = false;
                }
            }
        }
        self.cursor = until;
        Ok(None)
    }

    /// A comment alone on its line goes with the deepest level, open or just
    /// closed (or about to open), that it was not left of.
    fn comment_indent(&self, column: usize, next: Option<Level>) -> usize {
        let mut best: Option<Level> = None;
        for level in self.levels.iter().chain(&self.closed_levels).chain(&next) {
            if level.old_column <= column && best.is_none_or(|b| level.old_column >= b.old_column) {
                best = Some(*level);
            }
        }
        best.or(next)
            .or(self.levels.last().copied())
            .map_or(0, |level| level.indent)
    }

    // ---- nodes -----------------------------------------------------------

    fn stream(&mut self, documents: &[Node<'_>]) -> Emitted {
        for document in documents {
            let next = Level {
                old_column: self.column(document.span.start),
                indent: 0,
            };
            self.gap(document.span.start, Some(next), None, false)?;
            let place = Place {
                indent: 0,
                parent: None,
                item: false,
            };
            self.node(document, place)?;
        }
        self.gap(self.src.len(), None, None, false)?;
        self.finish_line();
        Ok(())
    }

    fn shape(&self, node: &Node<'_>) -> Shape {
        let source = &self.src[node.span.start..node.span.end];
        let first = source.as_bytes().first().copied();
        let one_line = !source.contains('\n');
        match &node.kind {
            NodeKind::Scalar(_) if first == Some(b'*') => Shape::Alias,
            NodeKind::Scalar(scalar) => match scalar.style {
                ScalarStyle::Literal | ScalarStyle::Folded => Shape::BlockScalar,
                _ => Shape::Scalar,
            },
            NodeKind::Seq(items) => match first {
                Some(b'[') if one_line || items.is_empty() => Shape::InlineFlow,
                Some(b'[') => self.flow_shape(node, Shape::Seq { flow: true }),
                Some(b'*') => Shape::Alias,
                _ => Shape::Seq { flow: false },
            },
            NodeKind::Map(entries) => {
                let starts_with_key = entries
                    .first()
                    .is_some_and(|entry| entry.key.span.start == node.span.start);
                match first {
                    Some(b'{') if !starts_with_key && (one_line || entries.is_empty()) => {
                        Shape::InlineFlow
                    }
                    // An unquoted `{{ … }}`: keep the user's text for the
                    // checker's fix to quote.
                    Some(b'{') if !starts_with_key && source.starts_with("{{") => {
                        Shape::VerbatimFlow
                    }
                    Some(b'{') if !starts_with_key => {
                        self.flow_shape(node, Shape::Map { flow: true })
                    }
                    Some(b'*') if !starts_with_key => Shape::Alias,
                    _ => Shape::Map { flow: false },
                }
            }
        }
    }

    /// Whether a flow collection over several lines is joined into one line
    /// instead of becoming block style: when some plain scalar in it would
    /// not read the same in block context (the parser accepts a few, such as
    /// `|x`, in flow context only), and nothing in it needs several lines.
    fn flow_shape(&self, node: &Node<'_>, block: Shape) -> Shape {
        if self.block_safe(node) {
            return block;
        }
        let mut cursor = node.span.start;
        if self.joinable(node, &mut cursor) {
            Shape::InlineFlow
        } else {
            Shape::VerbatimFlow
        }
    }

    /// An alias node is a copy of the anchored node with the alias's span.
    fn is_alias(&self, node: &Node<'_>) -> bool {
        let starts_with_child = match &node.kind {
            NodeKind::Scalar(_) => None,
            NodeKind::Seq(items) => items.first().map(|item| item.span.start),
            NodeKind::Map(entries) => entries.first().map(|entry| entry.key.span.start),
        }
        .is_some_and(|start| start == node.span.start);
        self.src[node.span.start..].starts_with('*') && !starts_with_child
    }

    fn block_safe(&self, node: &Node<'_>) -> bool {
        match &node.kind {
            NodeKind::Scalar(scalar) => {
                let source = &self.src[node.span.start..node.span.end];
                // No line may hold what block context reads as a value
                // indicator or a comment.
                let lines_ok = source.split('\n').all(|line| {
                    let line = line.trim_matches([' ', '\t']);
                    !line.starts_with('#')
                        && !line.ends_with(':')
                        && !line.contains(": ")
                        && !line.contains(":\t")
                        && !line.contains(" #")
                        && !line.contains("\t#")
                });
                scalar.style != ScalarStyle::Plain
                    || self.is_alias(node)
                    || (lines_ok
                        && !source.starts_with([
                            '|', '>', '!', '&', '*', '%', '@', '`', '#', '\'', '"', '[', ']', '{',
                            '}', ',',
                        ]))
            }
            NodeKind::Seq(items) => items.iter().all(|item| self.block_safe(item)),
            NodeKind::Map(entries) => entries
                .iter()
                .all(|entry| self.block_safe(&entry.key) && self.block_safe(&entry.value)),
        }
    }

    /// No comment and no multi-line scalar inside: the text between the
    /// nodes, from `cursor` on, holds only indicators, properties and breaks.
    fn joinable(&self, node: &Node<'_>, cursor: &mut usize) -> bool {
        let gap_ok = |from: usize, to: usize| {
            from <= to
                && pieces(self.src, from, to).is_ok_and(|found| {
                    found.iter().all(|piece| {
                        matches!(
                            piece,
                            Piece::Indicator(..) | Piece::LineBreak(_) | Piece::Property(..)
                        )
                    })
                })
        };
        if !gap_ok(*cursor, node.span.start) {
            return false;
        }
        *cursor = node.span.start;
        let children_ok = match (&node.kind, self.is_alias(node)) {
            (_, true) | (NodeKind::Scalar(_), _) => {
                *cursor = node.span.end;
                return !self.src[node.span.start..node.span.end].contains('\n');
            }
            (NodeKind::Seq(items), _) => items.iter().all(|item| self.joinable(item, cursor)),
            (NodeKind::Map(entries), _) => entries.iter().all(|entry| {
                self.joinable(&entry.key, cursor) && self.joinable(&entry.value, cursor)
            }),
        };
        let closing_ok = children_ok && gap_ok(*cursor, node.span.end);
        *cursor = node.span.end;
        closing_ok
    }

    /// Where a node goes if it starts a line, for comments just before it.
    fn level_of(&self, node: &Node<'_>, place: Place) -> Level {
        Level {
            old_column: self.column(node.span.start),
            indent: place.indent,
        }
    }

    /// Lays out `node`; the text before it is already laid out.
    fn node(&mut self, node: &Node<'_>, place: Place) -> Emitted {
        let shape = self.shape(node);
        if matches!(shape, Shape::Map { flow: true } | Shape::Seq { flow: true })
            && !self.pending_properties.is_empty()
        {
            // A flow collection's properties (`! {a: 1}`) stay with it: on
            // the line before its first entry.
            let inline = self.fits_on_line(Shape::Scalar);
            self.open_token(place.indent, inline);
            let kept = self.line.trim_end().len();
            self.line.truncate(kept);
            self.slot = Slot::Properties;
        }
        match (&node.kind, shape) {
            (NodeKind::Map(entries), Shape::Map { flow }) => {
                self.map(node, entries, flow, place)?
            }
            (NodeKind::Seq(items), Shape::Seq { flow }) => self.seq(node, items, flow, place)?,
            (NodeKind::Scalar(_), Shape::BlockScalar) => self.block_scalar(node, place)?,
            (NodeKind::Scalar(scalar), Shape::Scalar) => self.flow_scalar(node, scalar, place),
            (_, Shape::VerbatimFlow) => self.verbatim_flow(node, place),
            (_, Shape::InlineFlow) => {
                let mut text = String::new();
                self.inline_flow(node, &mut text)?;
                let inline = self.fits_on_line(shape);
                self.open_token(place.indent, inline);
                self.write(&text);
                self.end_token(node.span.end);
            }
            _ => {
                // An alias, written as it is.
                let inline = self.fits_on_line(Shape::Alias);
                self.open_token(place.indent, inline);
                self.write(&self.src[node.span.start..node.span.end]);
                self.end_token(node.span.end);
            }
        }
        Ok(())
    }

    fn end_token(&mut self, end: usize) {
        self.last_token_end = end;
        self.cursor = end;
    }

    fn map(&mut self, node: &Node<'_>, entries: &[Entry<'_>], flow: bool, place: Place) -> Emitted {
        let level = Level {
            old_column: self.column(node.span.start),
            indent: place.indent,
        };
        let compact = self.fits_on_line(Shape::Map { flow: false });
        self.levels.push(level);
        let value_place = Place::child_of(level, false);
        let item_place = Place::child_of(level, true);
        for (i, entry) in entries.iter().enumerate() {
            self.gap(entry.key.span.start, None, None, flow)?;
            let inline = i == 0 && compact;
            let explicit = self.needs_explicit_key(entry)?;
            let child = if explicit { item_place } else { value_place };
            if explicit {
                self.open_line(level.indent, inline);
                self.write("?");
                self.slot = Slot::Dash;
                let next = self.level_of(&entry.key, child);
                self.gap(entry.key.span.start, Some(next), None, false)?;
                self.node(&entry.key, child)?;
                let colon = self.gap(entry.value.span.start, None, Some(b':'), false)?;
                self.begin_line(level.indent);
                self.write(":");
                self.slot = Slot::Dash;
                if let Some(colon) = colon {
                    self.last_token_end = colon + 1;
                }
            } else {
                let key_shape = self.shape(&entry.key);
                if key_shape == Shape::InlineFlow {
                    let mut text = String::new();
                    self.inline_flow(&entry.key, &mut text)?;
                    self.open_token(level.indent, inline);
                    self.write(&text);
                } else {
                    self.open_token(level.indent, inline);
                    self.write(&self.src[entry.key.span.start..entry.key.span.end]);
                }
                // `*a:` would read as an alias named `a:`.
                self.write(if key_shape == Shape::Alias { " :" } else { ":" });
                self.slot = Slot::Key;
                self.end_token(entry.key.span.end);
            }
            let next = self.level_of(&entry.value, child);
            self.gap(entry.value.span.start, Some(next), None, false)?;
            self.node(&entry.value, child)?;
        }
        self.levels.pop();
        self.closed_levels.push(level);
        Ok(())
    }

    fn needs_explicit_key(&self, entry: &Entry<'_>) -> Emitted<bool> {
        let key = &entry.key;
        let source = &self.src[key.span.start..key.span.end];
        let simple = match self.shape(key) {
            Shape::Alias | Shape::InlineFlow => true,
            Shape::Scalar => !source.is_empty(),
            _ => false,
        };
        if !simple || source.contains('\n') || source.len() > MAX_IMPLICIT_KEY {
            return Ok(true);
        }
        // A comment between the key and its `:` needs the explicit form.
        for piece in pieces(self.src, key.span.end, entry.value.span.start)? {
            match piece {
                Piece::Indicator(b':', _) => return Ok(false),
                Piece::Comment(..) => return Ok(true),
                _ => {}
            }
        }
        Ok(false)
    }

    fn seq(&mut self, node: &Node<'_>, items: &[Node<'_>], flow: bool, place: Place) -> Emitted {
        let level = Level {
            old_column: self.sequence_column(node, place),
            indent: place.indent,
        };
        let compact = self.fits_on_line(Shape::Seq { flow: false });
        self.levels.push(level);
        let child = Place::child_of(level, true);
        for (i, item) in items.iter().enumerate() {
            let dash = if flow {
                self.gap(item.span.start, None, None, true)?;
                None
            } else {
                let dash = self.gap(item.span.start, None, Some(b'-'), false)?;
                // The first dash of an indentless sequence may come before
                // the node's span, with the text before it.
                if dash.is_none() && i > 0 {
                    return Err(Misplaced(item.span.start));
                }
                dash
            };
            self.open_line(level.indent, i == 0 && compact);
            self.write("-");
            self.slot = Slot::Dash;
            if let Some(dash) = dash {
                self.last_token_end = dash + 1;
            }
            let next = self.level_of(item, child);
            self.gap(item.span.start, Some(next), None, false)?;
            self.node(item, child)?;
        }
        self.levels.pop();
        self.closed_levels.push(level);
        Ok(())
    }

    /// A flow collection's lines as written, each continuation line moved
    /// with the block collection that holds it.
    fn verbatim_flow(&mut self, node: &Node<'_>, place: Place) {
        let source = &self.src[node.span.start..node.span.end];
        let inline = self.fits_on_line(Shape::VerbatimFlow);
        self.open_token(place.indent, inline);
        let (old_parent, new_parent) = place
            .parent
            .map_or((0, 0), |parent| (parent.old_column, parent.indent));
        // Trimmed as in a double-quoted scalar, the strictest case.
        let style = ScalarStyle::DoubleQuoted;
        let mut lines = source.split('\n');
        self.write(trim_flow_end(lines.next().unwrap_or_default(), style));
        for line in lines {
            let content = line.trim_start_matches([' ', '\t']);
            let indent = (line.len() - content.len() + new_parent)
                .saturating_sub(old_parent)
                .max(new_parent + 1);
            let content = trim_flow_end(content, style);
            self.finish_line();
            if content.is_empty() {
                self.content_line("");
            } else {
                self.line.extend(std::iter::repeat_n(' ', indent));
                self.write(content);
            }
        }
        self.end_token(node.span.end);
    }

    /// The source column of a block sequence's dashes. The span of an
    /// indentless sequence under a key (`key:` / `- - a`) may start at its
    /// first item; its dash is then the first thing on that line.
    fn sequence_column(&self, node: &Node<'_>, place: Place) -> usize {
        let column = self.column(node.span.start);
        if place.item {
            return column;
        }
        let line_start = self.src[..node.span.start]
            .rfind('\n')
            .map_or(0, |at| at + 1);
        let line = &self.src[line_start..node.span.start];
        let indent = line.len() - line.trim_start_matches(' ').len();
        if line[indent..].starts_with('-') {
            indent
        } else {
            column
        }
    }

    fn flow_scalar(&mut self, node: &Node<'_>, scalar: &Scalar<'_>, place: Place) {
        let source = &self.src[node.span.start..node.span.end];
        if source.is_empty() {
            // An empty value: only its properties, if any, are written.
            if !self.pending_properties.is_empty() {
                let inline = self.fits_on_line(Shape::Scalar);
                self.open_token(place.indent, inline);
                let kept = self.line.trim_end().len();
                self.line.truncate(kept);
                self.closed_levels.clear();
                self.slot = Slot::None;
            }
            self.end_token(node.span.end);
            return;
        }
        let inline = self.fits_on_line(Shape::Scalar);
        self.open_token(place.indent, inline);
        let mut lines = source.split('\n');
        let first = lines.next().unwrap_or_default();
        self.write(trim_flow_end(first, scalar.style));
        for line in lines {
            let line = trim_flow_end(line.trim_start_matches([' ', '\t']), scalar.style);
            self.finish_line();
            if line.is_empty() {
                self.content_line("");
            } else {
                self.line.extend(std::iter::repeat_n(' ', place.indent));
                self.write(line);
            }
        }
        self.end_token(node.span.end);
    }

    fn block_scalar(&mut self, node: &Node<'_>, place: Place) -> Emitted {
        let src = self.src;
        let span = node.span;
        let bytes = src.as_bytes();
        let mut header_end = span.start + 1;
        while header_end < span.end.max(span.start + 1)
            && header_end < bytes.len()
            && matches!(bytes[header_end], b'1'..=b'9' | b'+' | b'-')
        {
            header_end += 1;
        }
        let header = &src[span.start..header_end];
        let increment = header
            .bytes()
            .find(u8::is_ascii_digit)
            .map(|digit| usize::from(digit - b'0'));
        let keep = header.contains('+');
        let header_line_end = line_end(src, header_end);
        let inline = self.fits_on_line(Shape::BlockScalar);
        self.open_token(place.indent, inline);
        self.write(header);
        self.end_token(header_end);
        if span.end <= header_line_end {
            // No content: what follows the header is not part of the node.
            self.end_token(span.end);
            self.keep_breaks = keep;
            return Ok(());
        }
        let rest = src[header_end..header_line_end].trim();
        if rest.starts_with('#') {
            self.line.push(' ');
            self.line.push_str(rest);
        } else if !rest.is_empty() {
            return Err(Misplaced(header_end));
        }
        self.finish_line();
        let body = &src[header_line_end + 1..span.end];
        let old_indent = match increment {
            Some(increment) => place.parent.map_or(increment, |p| p.old_column + increment),
            None => body
                .split('\n')
                .find(|line| line.bytes().any(|b| b != b' '))
                .map_or(0, |line| line.len() - line.trim_start_matches(' ').len()),
        };
        let new_indent = match increment {
            Some(increment) => place.parent.map_or(increment, |p| p.indent + increment),
            None => place.parent.map_or(INDENT, |p| p.indent + INDENT),
        };
        let mut offset = header_line_end + 1;
        for line in body.split('\n') {
            let indented = line.len() >= old_indent
                && line.as_bytes()[..old_indent].iter().all(|&b| b == b' ');
            if indented && line.len() > old_indent {
                let shifted = format!("{}{}", " ".repeat(new_indent), &line[old_indent..]);
                self.content_line(&shifted);
            } else if line.bytes().all(|b| b == b' ') {
                self.content_line("");
            } else {
                return Err(Misplaced(offset));
            }
            offset += line.len() + 1;
        }
        self.end_token(span.end);
        self.keep_breaks = keep;
        Ok(())
    }

    /// A flow collection on one line, with canonical spacing.
    fn inline_flow(&self, node: &Node<'_>, out: &mut String) -> Emitted {
        let source = &self.src[node.span.start..node.span.end];
        match (&node.kind, self.shape(node)) {
            // An unquoted template: the user's text, for `check --fix`.
            (NodeKind::Map(_), Shape::InlineFlow) if source.starts_with("{{") => {
                out.push_str(source);
            }
            (NodeKind::Seq(items), _) if source.starts_with('[') => {
                out.push('[');
                let mut cursor = node.span.start + 1;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.inline_properties(cursor, item.span.start, out)?;
                    self.inline_flow(item, out)?;
                    cursor = item.span.end;
                }
                out.push(']');
            }
            (NodeKind::Map(entries), Shape::InlineFlow) => {
                out.push('{');
                self.inline_entries(node.span.start + 1, entries, false, out)?;
                out.push('}');
            }
            // The single pair of `[a: b]`.
            (NodeKind::Map(entries), Shape::Map { .. }) => {
                self.inline_entries(node.span.start, entries, true, out)?;
            }
            (NodeKind::Scalar(scalar), _)
                if !matches!(scalar.style, ScalarStyle::Literal | ScalarStyle::Folded) =>
            {
                out.push_str(source);
            }
            (_, Shape::Alias) => out.push_str(source),
            _ => return Err(Misplaced(node.span.start)),
        }
        Ok(())
    }

    /// The entries of a flow mapping; a `single_pair` (`[a: b]`) keeps its
    /// `:` when it has no value, or it would read as a scalar.
    fn inline_entries(
        &self,
        mut cursor: usize,
        entries: &[Entry<'_>],
        single_pair: bool,
        out: &mut String,
    ) -> Emitted {
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.inline_properties(cursor, entry.key.span.start, out)?;
            self.inline_flow(&entry.key, out)?;
            if self.shape(&entry.key) == Shape::Alias {
                out.push(' ');
            }
            let value_start = out.len();
            out.push_str(": ");
            self.inline_properties(entry.key.span.end, entry.value.span.start, out)?;
            self.inline_flow(&entry.value, out)?;
            if out.len() == value_start + 2 {
                // No value (`{a, b}`): the key alone says so, unless it
                // could read as an indicator without its `:`.
                let key = &self.src[entry.key.span.start..entry.key.span.end];
                let bare_key_ok = !key.is_empty()
                    && !key.contains(':')
                    && !key.starts_with(['?', '-'])
                    && !single_pair;
                out.truncate(if !bare_key_ok {
                    value_start + 1
                } else {
                    value_start
                });
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            cursor = entry.value.span.end;
        }
        Ok(())
    }

    fn inline_properties(&self, from: usize, to: usize, out: &mut String) -> Emitted {
        for piece in pieces(self.src, from, to)? {
            match piece {
                Piece::Property(start, end) => {
                    out.push_str(&self.src[start..end]);
                    out.push(' ');
                }
                Piece::Indicator(..) | Piece::LineBreak(_) => {}
                Piece::Comment(at, _)
                | Piece::DocumentStart(at)
                | Piece::DocumentEnd(at)
                | Piece::Directive(at, _) => return Err(Misplaced(at)),
            }
        }
        Ok(())
    }
}

/// Whether `formatted` parses to the same data as `documents`: the same
/// shapes, keys in the same order, the same scalar values and styles.
/// `Err` holds the span of the first input node that differs.
fn same_data(documents: &[Node<'_>], formatted: &str) -> Result<(), Span> {
    let parsed = yaml::parse(formatted);
    let whole = Span::new(0, 0);
    if !parsed.diagnostics.is_empty() {
        return Err(documents.first().map_or(whole, |d| d.span));
    }
    if parsed.documents.len() != documents.len() {
        return Err(documents.last().map_or(whole, |d| d.span));
    }
    let mut pending: Vec<(&Node<'_>, &Node<'_>)> =
        documents.iter().zip(&parsed.documents).collect();
    while let Some((before, after)) = pending.pop() {
        match (&before.kind, &after.kind) {
            (NodeKind::Scalar(a), NodeKind::Scalar(b))
                if a.value == b.value && a.style == b.style => {}
            (NodeKind::Seq(a), NodeKind::Seq(b)) if a.len() == b.len() => {
                pending.extend(a.iter().zip(b));
            }
            (NodeKind::Map(a), NodeKind::Map(b)) if a.len() == b.len() => {
                for (a, b) in a.iter().zip(b) {
                    pending.push((&a.key, &b.key));
                    pending.push((&a.value, &b.value));
                }
            }
            _ => return Err(before.span),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(text: &str) -> String {
        match format_workflow(text) {
            Ok(formatted) => formatted,
            Err(error) => panic!("{error} in {text:?}"),
        }
    }

    #[track_caller]
    fn formats_to(input: &str, expected: &str) {
        let formatted = format(input);
        assert_eq!(formatted, expected, "input:\n{input}");
        assert_eq!(format(&formatted), formatted, "not idempotent");
    }

    #[test]
    fn reindents_and_keeps_order() {
        formats_to(
            "b: 1\na:\n    x:    1\n    y:\n        - 1\n        -   2\n",
            "b: 1\na:\n  x: 1\n  y:\n    - 1\n    - 2\n",
        );
    }

    #[test]
    fn indentless_sequences_are_indented() {
        formats_to(
            "steps:\n- id: a\n  type: x\n- id: b\n",
            "steps:\n  - id: a\n    type: x\n  - id: b\n",
        );
    }

    #[test]
    fn comments_stay_on_their_lines() {
        formats_to(
            "# head\n\n\n\nkey:   value   # trailing\n# before b\nb:\n    # inside\n    c: 1 # c\n\n    # end of b\n# end\n",
            "# head\n\nkey: value # trailing\n# before b\nb:\n  # inside\n  c: 1 # c\n\n  # end of b\n# end\n",
        );
    }

    #[test]
    fn a_comment_between_key_and_value_keeps_the_value_below() {
        formats_to("key: # why\n  value\n", "key: # why\n  value\n");
        formats_to("key:\n  value\n", "key: value\n");
        formats_to("- # note\n  a: 1\n", "- # note\n  a: 1\n");
    }

    #[test]
    fn flow_collections() {
        formats_to(
            "a: [x,y ,  z]\nb: {k:   v, j: [1]}\nc: []\nd: { }\n",
            "a: [x, y, z]\nb: {k: v, j: [1]}\nc: []\nd: {}\n",
        );
        formats_to(
            "config: {mode: switch,\n         cases: [a, b]}  # c\n",
            "config:\n  mode: switch\n  cases: [a, b] # c\n",
        );
        formats_to("a: {x, y: }\n", "a: {x, y}\n");
        formats_to("a: [k: v, j: ]\n", "a: [k: v, j:]\n");
        formats_to("a: {{ trigger.x }}\n", "a: {{ trigger.x }}\n");
    }

    #[test]
    fn block_scalars_move_as_a_whole() {
        formats_to(
            "a:\n    b: |\n        line\n          more\n\n        end\n    c: >-\n       folded\n",
            "a:\n  b: |\n    line\n      more\n\n    end\n  c: >-\n    folded\n",
        );
        formats_to("a:\n    b: |2\n        x\n", "a:\n  b: |2\n      x\n");
        formats_to("k: |+\n  a\n\n\nnext: 1\n", "k: |+\n  a\n\n\nnext: 1\n");
        formats_to("k: | # note\n  a  \n", "k: | # note\n  a  \n");
    }

    #[test]
    fn multi_line_scalars_are_reindented() {
        formats_to(
            "k: this is\n        plain\n\n     text\nq: \"a\\ \n   b\"\n",
            "k: this is\n  plain\n\n  text\nq: \"a\\ \n  b\"\n",
        );
    }

    #[test]
    fn documents_anchors_and_tags() {
        formats_to(
            "%YAML 1.2\n---\nbase: &b\n    x: 1\nuse: *b\nt: !!str 1\n...\n---   # second\n- &s a\n- *s\n",
            "%YAML 1.2\n---\nbase: &b\n  x: 1\nuse: *b\nt: !!str 1\n...\n--- # second\n- &s a\n- *s\n",
        );
        formats_to("- &a\n    k: v\n- &b k: v\n", "- &a\n  k: v\n- &b k: v\n");
    }

    #[test]
    fn line_breaks_and_bom_are_kept() {
        assert_eq!(format("a:\r\n    b: 1\r\n"), "a:\r\n  b: 1\r\n");
        assert_eq!(format("\u{feff}a:   1"), "\u{feff}a: 1\n");
        assert_eq!(format(""), "");
        assert_eq!(format("\n\n"), "");
    }

    #[test]
    fn yaml_errors_are_refused_with_their_position() {
        let error = format_workflow("a: 1\nb: [\n").expect_err("refused");
        assert!(error.message.contains("not formatted"), "{error}");
        assert!(error.line >= 2, "{error:?}");
        let error = format_workflow("a: 1\na: 2\n").expect_err("duplicate keys refused");
        assert_eq!((error.line, error.column), (2, 1));
    }

    #[test]
    fn the_deepest_documents_the_parser_accepts_format() {
        let depth = yaml::MAX_DEPTH - 1;
        let flow = format!("{}x{}\n", "[".repeat(depth), "]".repeat(depth));
        formats_to(&flow, &flow);
        let multi_line_flow = format!("{}x{}\n", "[\n".repeat(depth), "]".repeat(depth));
        format(&multi_line_flow);
        let mut block = String::new();
        for level in 0..depth {
            block.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        block.push_str(&format!("{}v\n", " ".repeat(depth)));
        let formatted = format(&block);
        let last = format!("{}k{}: v\n", "  ".repeat(depth - 1), depth - 1);
        assert!(formatted.ends_with(&last), "{formatted}");
        let too_deep = format!("{}x{}\n", "[".repeat(depth + 2), "]".repeat(depth + 2));
        assert!(format_workflow(&too_deep).is_err());
    }

    #[test]
    fn edits_change_only_what_differs() {
        let text = "a: 1\nb:    2\nc: 3\n";
        let edits = format_edits(text).expect("formats");
        assert_eq!(edits.len(), 1);
        assert_eq!(&text[edits[0].span.start..edits[0].span.end], "b:    2\n");
        assert_eq!(edits[0].replacement, "b: 2\n");
        assert!(format_edits("a: 1\n").expect("formats").is_empty());
    }
}
