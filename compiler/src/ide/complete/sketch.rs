//! A forgiving reading of the YAML around the cursor, for completion.
//!
//! While the user types, the text is often not YAML at all (`acti` with no
//! colon yet, an unclosed `{`), and the last good parse is a character
//! behind. So this reads only the block the cursor is in: it walks back
//! from the cursor's line to its ancestors by indentation (the keys above
//! it), takes the enclosing list item (a step, a trigger) or top-level
//! block, marks the cursor in it with a sentinel character, and parses that
//! region with a tolerant block/flow reader that accepts half-written
//! entries. The node holding the sentinel is the completion context.
//!
//! Cost is proportional to the enclosing step, plus a backward walk over
//! line starts to find its ancestors; never to the whole file.

use donmai_grammar::Span;

/// Stands for the cursor inside the region: a private-use character no
/// workflow contains, which every scanner treats as a word character.
const SENTINEL: &str = "\u{E000}";
const SENTINEL_LEN: usize = SENTINEL.len();
/// The largest top-level block read whole, in bytes.
const MAX_BLOCK: usize = 64 * 1024;
/// Deepest nesting read; deeper content is left out.
const MAX_DEPTH: usize = 64;

#[derive(Debug)]
pub(super) struct Node {
    pub kind: Kind,
    /// In region coordinates.
    pub span: Span,
}

#[derive(Debug)]
pub(super) enum Kind {
    Map(Vec<Entry>),
    Seq(Vec<Node>),
    Scalar(Scalar),
    Empty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Block,
}

#[derive(Debug)]
pub(super) struct Scalar {
    /// The text between the quotes (the lines of a block scalar).
    pub content: Span,
    pub style: Style,
    pub place: Place,
}

/// Where a scalar stands, which tells a half-written key from a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// After `key:` on the same line, or a flow mapping's value.
    Value,
    /// A block sequence item after `- `.
    BlockItem,
    /// A flow sequence item.
    FlowItem,
    /// A block node on a line of its own, where a mapping may stand.
    OwnLine,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub key: Span,
    pub key_style: Style,
    /// False for a key being written, which has no `:` yet.
    pub colon: bool,
    pub value: Node,
}

/// One step from the region's root towards the cursor.
#[derive(Debug)]
pub(super) enum Seg<'a> {
    Key(String),
    /// An item of a sequence: the item node.
    Item(&'a Node),
}

/// What the cursor is in.
#[derive(Debug)]
pub(super) enum At<'a> {
    /// A key of this mapping, being written or rewritten.
    Key {
        entries: &'a [Entry],
        entry: &'a Entry,
    },
    /// A scalar.
    Scalar(&'a Node),
}

/// The region around the cursor, read.
pub(super) struct Sketch {
    src: String,
    /// File offset of `src`'s first byte.
    base: usize,
    /// Offset of the sentinel in `src`.
    cursor: usize,
    /// Keys of the ancestors above the region's root.
    pub prefix: Vec<String>,
    pub root: Node,
}

impl Sketch {
    /// Reads the region of `text` around byte `offset` (clamped to the text
    /// and to a character boundary).
    pub fn read(text: &str, offset: usize, known: &KnownItems<'_>) -> Sketch {
        let mut cursor = offset.min(text.len());
        while !text.is_char_boundary(cursor) {
            cursor -= 1;
        }
        let (start, prefix) = anchor(text, cursor, known);
        let end = region_end(text, start, cursor);
        let mut src = String::with_capacity(end - start + SENTINEL_LEN);
        src.push_str(&text[start..cursor]);
        src.push_str(SENTINEL);
        src.push_str(&text[cursor..end]);
        let root = {
            let mut parser = Parser::new(&src);
            parser.root()
        };
        Sketch {
            cursor: cursor - start,
            base: start,
            prefix,
            root,
            src,
        }
    }

    /// The file offset of a region offset.
    pub fn to_file(&self, offset: usize) -> usize {
        if offset <= self.cursor {
            self.base + offset
        } else if offset < self.cursor + SENTINEL_LEN {
            self.base + self.cursor
        } else {
            self.base + offset - SENTINEL_LEN
        }
    }

    pub fn file_span(&self, span: Span) -> Span {
        Span::new(self.to_file(span.start), self.to_file(span.end))
    }

    /// The file offset of the cursor.
    pub fn cursor(&self) -> usize {
        self.base + self.cursor
    }

    /// Region text of a span with the sentinel left out.
    pub fn text(&self, span: Span) -> String {
        let raw = self.src.get(span.start..span.end).unwrap_or("");
        raw.replace(SENTINEL, "")
    }

    /// Region text of a span up to the cursor, when the cursor is in it.
    pub fn text_before_cursor(&self, span: Span) -> Option<&str> {
        (span.start <= self.cursor && self.cursor <= span.end)
            .then(|| self.src.get(span.start..self.cursor))
            .flatten()
    }

    /// Region text of a span from the cursor on, when the cursor is in it.
    pub fn text_after_cursor(&self, span: Span) -> Option<&str> {
        (span.start <= self.cursor && self.cursor + SENTINEL_LEN <= span.end)
            .then(|| self.src.get(self.cursor + SENTINEL_LEN..span.end))
            .flatten()
    }

    /// A scalar's decoded text (escapes of quoted styles resolved).
    pub fn scalar_text(&self, node: &Node) -> Option<String> {
        match &node.kind {
            Kind::Scalar(scalar) => Some(decode(&self.text(scalar.content), scalar.style)),
            _ => None,
        }
    }

    pub fn key_text(&self, entry: &Entry) -> String {
        decode(&self.text(entry.key), entry.key_style)
    }

    fn contains_cursor(&self, span: Span) -> bool {
        span.start <= self.cursor && self.cursor + SENTINEL_LEN <= span.end
    }

    /// The path from the region's root to the node the cursor is in, and
    /// that node. `None` when the cursor is in a comment or between nodes.
    pub fn locate(&self) -> Option<(Vec<Seg<'_>>, At<'_>)> {
        let mut path = Vec::new();
        let at = self.locate_in(&self.root, &mut path, 0)?;
        Some((path, at))
    }

    fn locate_in<'a>(
        &'a self,
        node: &'a Node,
        path: &mut Vec<Seg<'a>>,
        depth: usize,
    ) -> Option<At<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        match &node.kind {
            Kind::Map(entries) => {
                for entry in entries {
                    if self.contains_cursor(entry.key) {
                        return Some(At::Key { entries, entry });
                    }
                    path.push(Seg::Key(self.key_text(entry)));
                    if let Some(at) = self.locate_in(&entry.value, path, depth + 1) {
                        return Some(at);
                    }
                    path.pop();
                }
                None
            }
            Kind::Seq(items) => {
                for item in items {
                    path.push(Seg::Item(item));
                    if let Some(at) = self.locate_in(item, path, depth + 1) {
                        return Some(at);
                    }
                    path.pop();
                }
                None
            }
            Kind::Scalar(scalar) => self
                .contains_cursor(scalar.content)
                .then_some(At::Scalar(node)),
            Kind::Empty => None,
        }
    }
}

impl Node {
    pub fn entries(&self) -> &[Entry] {
        match &self.kind {
            Kind::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(scalar) => Some(scalar),
            _ => None,
        }
    }
}

/// Resolves the escapes of a quoted scalar; plain text is trimmed.
fn decode(raw: &str, style: Style) -> String {
    match style {
        Style::Plain => raw.trim().to_string(),
        Style::SingleQuoted => raw.replace("''", "'"),
        Style::DoubleQuoted => {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(other) => out.push(other),
                        None => {}
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        Style::Block => raw.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Finding the region.

/// A line of the file, as the backward walk sees it.
struct LineInfo {
    start: usize,
    indent: usize,
    /// Blank, or a comment only.
    empty: bool,
    dash: bool,
}

fn line_info(text: &str, start: usize) -> LineInfo {
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    let first = bytes.get(i).copied();
    let empty = matches!(first, None | Some(b'\n' | b'\r' | b'#'))
        || (first == Some(b'\t')
            && text[i..]
                .lines()
                .next()
                .is_some_and(|l| l.trim().is_empty()));
    let dash = first == Some(b'-')
        && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t' | b'\n' | b'\r'));
    LineInfo {
        start,
        indent: i - start,
        empty,
        dash,
    }
}

/// The start of the line before the one starting at `start`.
fn previous_line(text: &str, start: usize) -> Option<usize> {
    if start == 0 {
        return None;
    }
    Some(text[..start - 1].rfind('\n').map_or(0, |i| i + 1))
}

/// Lines known to start an item of `spec.steps`, from the last analysis:
/// they let the backward walk stop at the cursor's step instead of
/// crossing every step above it to reach `steps:`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct KnownItems<'a> {
    /// Line starts, ascending.
    pub lines: &'a [usize],
    /// The text is the analysed one below this offset: a line start known
    /// there is one in the text too.
    pub valid_below: usize,
}

impl KnownItems<'_> {
    fn is_step_item(&self, line_start: usize) -> bool {
        line_start < self.valid_below && self.lines.binary_search(&line_start).is_ok()
    }
}

/// The keys above every step item.
fn steps_prefix() -> Vec<String> {
    vec!["spec".to_string(), "steps".to_string()]
}

/// The start of the region to read and the keys of its ancestors.
///
/// The ancestors of the cursor's line are the nearest lines above it with
/// less indentation (or, for a `- ` line, a key line at the same one: a
/// compact sequence). The region starts at the outermost list item among
/// them (a step, a trigger), else at the top-level entry, else at the
/// cursor's line.
fn anchor(text: &str, cursor: usize, known: &KnownItems<'_>) -> (usize, Vec<String>) {
    let line_start = text[..cursor].rfind('\n').map_or(0, |i| i + 1);
    let here = line_info(text, line_start);
    // Within the indentation, the cursor's column is its level.
    let mut threshold = if here.empty || cursor - line_start < here.indent {
        cursor - line_start
    } else {
        here.indent
    };
    let mut child_is_dash = here.dash && cursor - line_start > here.indent;
    let mut chain: Vec<LineInfo> = Vec::new();
    let mut at = line_start;
    while let Some(previous) = previous_line(text, at) {
        at = previous;
        let line = line_info(text, previous);
        if line.empty {
            continue;
        }
        let parent =
            line.indent < threshold || (child_is_dash && !line.dash && line.indent == threshold);
        if known.is_step_item(previous) && line.dash {
            if parent {
                // The cursor is inside this step.
                return (previous, steps_prefix());
            }
            if chain.is_empty() && child_is_dash && line.indent == threshold {
                // The cursor's line starts a new step after this one.
                return (line_start, steps_prefix());
            }
        }
        if !parent {
            continue;
        }
        threshold = line.indent;
        child_is_dash = line.dash;
        chain.push(line);
        if threshold == 0 && !child_is_dash {
            break;
        }
    }
    chain.reverse();
    let outermost_item = chain.iter().position(|line| line.dash);
    let (anchor_index, start) = match outermost_item {
        Some(k) => (k, chain[k].start),
        None if here.dash && !chain.is_empty() => (chain.len(), line_start),
        // A whole top-level block, unless it is a large one (`spec` with
        // every step): then the cursor's line with its keys above it.
        None if !chain.is_empty()
            && region_end(text, chain[0].start, cursor) - chain[0].start <= MAX_BLOCK =>
        {
            (0, chain[0].start)
        }
        None => (chain.len(), line_start),
    };
    let prefix = chain[..anchor_index.min(chain.len())]
        .iter()
        .filter_map(|line| line_key(text, line))
        .collect();
    (start, prefix)
}

/// The key a non-item ancestor line opens: `  steps:` → `steps`.
fn line_key(text: &str, line: &LineInfo) -> Option<String> {
    let content = text[line.start + line.indent..]
        .lines()
        .next()
        .unwrap_or("");
    let mut parser = Parser::new(content);
    match parser.root().kind {
        Kind::Map(entries) => entries
            .first()
            .filter(|entry| entry.colon)
            .map(|entry| decode(&content[entry.key.start..entry.key.end], entry.key_style)),
        _ => None,
    }
}

/// Where the region starting at `start` ends: at the first line after the
/// cursor's that is indented no deeper than the region's first line.
fn region_end(text: &str, start: usize, cursor: usize) -> usize {
    let level = line_info(text, start).indent;
    let mut at = match text[cursor..].find('\n') {
        Some(i) => cursor + i + 1,
        None => return text.len(),
    };
    while at < text.len() {
        let line = line_info(text, at);
        if !line.empty && line.indent <= level {
            return at;
        }
        at = match text[at..].find('\n') {
            Some(i) => at + i + 1,
            None => text.len(),
        };
    }
    text.len()
}

// ---------------------------------------------------------------------------
// The tolerant reader.

struct Parser<'s> {
    src: &'s str,
    bytes: &'s [u8],
    /// Start of each line.
    lines: Vec<usize>,
    depth: usize,
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

impl<'s> Parser<'s> {
    fn new(src: &'s str) -> Parser<'s> {
        let mut lines = vec![0];
        lines.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Parser {
            src,
            bytes: src.as_bytes(),
            lines,
            depth: 0,
        }
    }

    fn root(&mut self) -> Node {
        match self.next_content_line(0) {
            Some(line) => {
                let at = self.content_start(line);
                self.block_at(at, -1).0
            }
            None => Node {
                kind: Kind::Empty,
                span: Span::at(0),
            },
        }
    }

    fn line_of(&self, pos: usize) -> usize {
        self.lines.partition_point(|&start| start <= pos) - 1
    }

    /// End of a line's content, before `\r\n` or `\n`.
    fn line_end(&self, line: usize) -> usize {
        let end = self
            .lines
            .get(line + 1)
            .map_or(self.src.len(), |next| next - 1);
        if end > self.lines[line] && self.bytes.get(end - 1) == Some(&b'\r') {
            end - 1
        } else {
            end
        }
    }

    fn indent(&self, line: usize) -> usize {
        let start = self.lines[line];
        self.bytes[start..self.line_end(line)]
            .iter()
            .take_while(|&&b| b == b' ')
            .count()
    }

    fn content_start(&self, line: usize) -> usize {
        self.lines[line] + self.indent(line)
    }

    fn column(&self, pos: usize) -> usize {
        pos - self.lines[self.line_of(pos)]
    }

    /// Whether a line holds nothing but blanks or a comment.
    fn is_empty_line(&self, line: usize) -> bool {
        let start = self.lines[line];
        let rest = &self.src[start..self.line_end(line)];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        trimmed.is_empty() || trimmed.starts_with('#')
    }

    fn next_content_line(&self, from: usize) -> Option<usize> {
        (from..self.lines.len()).find(|&line| !self.is_empty_line(line))
    }

    fn is_dash_at(&self, pos: usize) -> bool {
        self.bytes.get(pos) == Some(&b'-')
            && self
                .bytes
                .get(pos + 1)
                .is_none_or(|&b| is_space(b) || b == b'\n' || b == b'\r')
    }

    fn skip_spaces(&self, mut pos: usize, end: usize) -> usize {
        while pos < end && is_space(self.bytes[pos]) {
            pos += 1;
        }
        pos
    }

    /// Whether `pos` on its line is past the content (end or a comment).
    fn at_line_end(&self, pos: usize, end: usize) -> bool {
        pos >= end || self.bytes[pos] == b'#'
    }

    /// A block node at `pos` (the first content of its line, or mid-line
    /// after `- ` or `key: `), belonging to a parent at `parent_col`.
    /// Returns the node and the first line it did not take.
    fn block_at(&mut self, pos: usize, parent_col: isize) -> (Node, usize) {
        let line = self.line_of(pos);
        if self.depth >= MAX_DEPTH {
            return (empty(pos), line + 1);
        }
        self.depth += 1;
        let result = self.block_at_inner(pos, parent_col, line);
        self.depth -= 1;
        result
    }

    fn block_at_inner(&mut self, pos: usize, parent_col: isize, line: usize) -> (Node, usize) {
        let end = self.line_end(line);
        let col = self.column(pos);
        let own_line = pos == self.content_start(line);
        match self.bytes.get(pos) {
            Some(b'-') if self.is_dash_at(pos) => self.seq_at(pos),
            Some(b'{' | b'[') => {
                let (node, after) = self.flow(pos);
                (node, self.line_of(after.saturating_sub(1).max(pos)) + 1)
            }
            Some(b'|' | b'>') => self.block_scalar(pos, parent_col),
            Some(b'&' | b'!') => {
                let token_end = (pos..end).find(|&i| is_space(self.bytes[i])).unwrap_or(end);
                let next = self.skip_spaces(token_end, end);
                if self.at_line_end(next, end) {
                    self.block_from_line(line + 1, parent_col, true)
                } else {
                    self.block_at(next, parent_col)
                }
            }
            _ => {
                if self.key_separator(pos, end).is_some() || self.partial_key_of_map(pos, line, col)
                {
                    self.map_at(pos)
                } else {
                    let place = if own_line {
                        Place::OwnLine
                    } else {
                        Place::BlockItem
                    };
                    self.inline_scalar(pos, parent_col, place)
                }
            }
        }
    }

    /// A line without `key:` that begins a mapping: the next content line
    /// at its column has one (a key being written above other keys).
    fn partial_key_of_map(&self, pos: usize, line: usize, col: usize) -> bool {
        if matches!(self.bytes.get(pos), Some(b'"' | b'\'')) {
            return false;
        }
        match self.next_content_line(line + 1) {
            Some(next) => {
                let start = self.content_start(next);
                self.indent(next) == col
                    && !self.is_dash_at(start)
                    && self.key_separator(start, self.line_end(next)).is_some()
            }
            None => false,
        }
    }

    /// The first line at or after `line` with content indented past
    /// `parent_col`, read as a block node; with `compact`, a `- ` line at
    /// the parent's own column too (a sequence as a mapping value).
    fn block_from_line(&mut self, line: usize, parent_col: isize, compact: bool) -> (Node, usize) {
        let Some(next) = self.next_content_line(line) else {
            return (empty(self.src.len()), self.lines.len());
        };
        let indent = self.indent(next) as isize;
        let start = self.content_start(next);
        if indent > parent_col || (compact && indent == parent_col && self.is_dash_at(start)) {
            self.block_at(start, parent_col)
        } else {
            (empty(self.lines[line.min(self.lines.len() - 1)]), line)
        }
    }

    /// Where `key:` ends on a line, if the text at `pos` is a key: a quoted
    /// or plain scalar followed by `:` and a blank, the line's end or the
    /// cursor.
    fn key_separator(&self, pos: usize, end: usize) -> Option<usize> {
        let mut i = pos;
        if let Some(&quote @ (b'"' | b'\'')) = self.bytes.get(pos) {
            i = self.quote_end_on_line(pos, quote, end)?;
            i = self.skip_spaces(i, end);
            return (self.bytes.get(i) == Some(&b':')).then_some(i);
        }
        while i < end {
            match self.bytes[i] {
                b':' if self.separates(i + 1, end) => return Some(i),
                b'#' if i > pos && is_space(self.bytes[i - 1]) => return None,
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// Whether a `:` followed by what is at `next` separates a key.
    fn separates(&self, next: usize, end: usize) -> bool {
        next >= end || is_space(self.bytes[next]) || self.src[next..].starts_with(SENTINEL)
    }

    /// Just past the closing quote of a quoted scalar on this line.
    fn quote_end_on_line(&self, pos: usize, quote: u8, end: usize) -> Option<usize> {
        let mut i = pos + 1;
        while i < end {
            match self.bytes[i] {
                b'\\' if quote == b'"' => i += 1,
                b'\'' if quote == b'\'' && self.bytes.get(i + 1) == Some(&b'\'') => i += 1,
                b if b == quote => return Some(i + 1),
                _ => {}
            }
            i += 1;
        }
        None
    }

    fn map_at(&mut self, pos: usize) -> (Node, usize) {
        let col = self.column(pos);
        let mut entries = Vec::new();
        let mut at = pos;
        let mut next_line;
        loop {
            let line = self.line_of(at);
            let end = self.line_end(line);
            let (entry, after) = self.block_entry(at, line, end, col);
            entries.push(entry);
            next_line = after;
            // The next entry: a line at this column that is not an item.
            let mut following = None;
            let mut search = next_line;
            while let Some(candidate) = self.next_content_line(search) {
                let indent = self.indent(candidate);
                if indent > col {
                    search = candidate + 1; // deeper than anything open: skip
                    continue;
                }
                if indent == col && !self.is_dash_at(self.content_start(candidate)) {
                    following = Some(candidate);
                }
                break;
            }
            match following {
                Some(candidate) => at = self.content_start(candidate),
                None => {
                    next_line = search.max(next_line);
                    break;
                }
            }
        }
        let span = Span::new(
            pos,
            self.line_end(self.line_of(entries_end(&entries).max(pos))),
        );
        (
            Node {
                kind: Kind::Map(entries),
                span,
            },
            next_line,
        )
    }

    /// One `key: value` of a block mapping, its key at `at` on `line`.
    fn block_entry(&mut self, at: usize, line: usize, end: usize, col: usize) -> (Entry, usize) {
        let quoted = matches!(self.bytes.get(at), Some(b'"' | b'\''));
        let Some(colon) = self.key_separator(at, end) else {
            // A key being written: everything up to a comment.
            let mut stop = end;
            if let Some(hash) = self.src[at..end].find(" #") {
                stop = at + hash;
            }
            let key_end = at + self.src[at..stop].trim_end().len();
            let entry = Entry {
                key: Span::new(at, key_end),
                key_style: Style::Plain,
                colon: false,
                value: empty(key_end),
            };
            return (entry, line + 1);
        };
        let (key, key_style) = if quoted {
            let close = self
                .quote_end_on_line(at, self.bytes[at], end)
                .unwrap_or(colon);
            let style = if self.bytes[at] == b'"' {
                Style::DoubleQuoted
            } else {
                Style::SingleQuoted
            };
            (
                Span::new(at + 1, close.saturating_sub(1).max(at + 1)),
                style,
            )
        } else {
            let text = &self.src[at..colon];
            (Span::new(at, at + text.trim_end().len()), Style::Plain)
        };
        let value_pos = self.skip_spaces(colon + 1, end);
        let (value, after) =
            if self.at_line_end(value_pos, end) && !self.src[value_pos..].starts_with(SENTINEL) {
                self.block_from_line(line + 1, col as isize, true)
            } else {
                self.inline_value(value_pos, col as isize)
            };
        (
            Entry {
                key,
                key_style,
                colon: true,
                value,
            },
            after,
        )
    }

    /// The value after `key: ` on the same line.
    fn inline_value(&mut self, pos: usize, parent_col: isize) -> (Node, usize) {
        let line = self.line_of(pos);
        match self.bytes.get(pos) {
            Some(b'{' | b'[') => {
                let (node, after) = self.flow(pos);
                (node, self.line_of(after.saturating_sub(1).max(pos)) + 1)
            }
            Some(b'|' | b'>') => self.block_scalar(pos, parent_col),
            Some(b'&' | b'!') => {
                let end = self.line_end(line);
                let token_end = (pos..end).find(|&i| is_space(self.bytes[i])).unwrap_or(end);
                let next = self.skip_spaces(token_end, end);
                if self.at_line_end(next, end) {
                    self.block_from_line(line + 1, parent_col, true)
                } else {
                    self.inline_value(next, parent_col)
                }
            }
            _ => self.inline_scalar(pos, parent_col, Place::Value),
        }
    }

    /// A plain or quoted scalar starting at `pos`.
    fn inline_scalar(&mut self, pos: usize, parent_col: isize, place: Place) -> (Node, usize) {
        let line = self.line_of(pos);
        let end = self.line_end(line);
        match self.bytes.get(pos) {
            Some(&quote @ (b'"' | b'\'')) => {
                let (content, close) = self.quoted(pos, quote, Some(parent_col));
                let style = if quote == b'"' {
                    Style::DoubleQuoted
                } else {
                    Style::SingleQuoted
                };
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        content,
                        style,
                        place,
                    }),
                    span: Span::new(pos, close),
                };
                (node, self.line_of(close.saturating_sub(1).max(pos)) + 1)
            }
            _ => {
                let mut stop = end;
                if let Some(hash) = self.src[pos..end].find(" #") {
                    stop = pos + hash;
                }
                let content_end = pos + self.src[pos..stop].trim_end().len();
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        content: Span::new(pos, content_end),
                        style: Style::Plain,
                        place,
                    }),
                    span: Span::new(pos, content_end),
                };
                (node, line + 1)
            }
        }
    }

    /// A quoted scalar: its content and the offset just past its closing
    /// quote. In block context (`parent_col` given) it continues onto a
    /// following line only if that line is indented past the parent; an
    /// unclosed scalar ends there.
    fn quoted(&self, pos: usize, quote: u8, parent_col: Option<isize>) -> (Span, usize) {
        let mut i = pos + 1;
        while i < self.bytes.len() {
            match self.bytes[i] {
                b'\\' if quote == b'"' => i += 1,
                b'\'' if quote == b'\'' && self.bytes.get(i + 1) == Some(&b'\'') => i += 1,
                b if b == quote => return (Span::new(pos + 1, i), i + 1),
                b'\n' => {
                    if let Some(parent_col) = parent_col {
                        let next = self.line_of(i + 1);
                        if !self.is_empty_line(next) && self.indent(next) as isize <= parent_col {
                            let end = if i > 0 && self.bytes[i - 1] == b'\r' {
                                i - 1
                            } else {
                                i
                            };
                            return (Span::new(pos + 1, end), end);
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let end = self.bytes.len();
        (Span::new(pos + 1, end.max(pos + 1)), end)
    }

    /// `|` or `>`: the following lines indented past the parent.
    fn block_scalar(&mut self, pos: usize, parent_col: isize) -> (Node, usize) {
        let header_line = self.line_of(pos);
        let mut last = header_line;
        let mut line = header_line + 1;
        while line < self.lines.len() {
            if self.is_empty_line(line) && self.indent(line) as isize <= parent_col {
                // A comment or blank at the parent's level may still be
                // inside; look past it.
                let following = self.next_content_line(line);
                if following.is_none_or(|f| self.indent(f) as isize <= parent_col) {
                    break;
                }
            } else if !self.is_empty_line(line) && self.indent(line) as isize <= parent_col {
                break;
            }
            last = line;
            line += 1;
        }
        let start = self
            .lines
            .get(header_line + 1)
            .copied()
            .unwrap_or(self.src.len());
        let end = if last == header_line {
            start
        } else {
            self.line_end(last)
        };
        let node = Node {
            kind: Kind::Scalar(Scalar {
                content: Span::new(start.min(end), end),
                style: Style::Block,
                place: Place::Value,
            }),
            span: Span::new(pos, end.max(pos)),
        };
        (node, last + 1)
    }

    // -- flow collections ---------------------------------------------------

    /// Skips blanks, line breaks and comments inside a flow collection.
    fn skip_flow_blanks(&self, mut i: usize) -> usize {
        while i < self.bytes.len() {
            match self.bytes[i] {
                b' ' | b'\t' | b'\n' | b'\r' => i += 1,
                b'#' if i == 0 || matches!(self.bytes[i - 1], b' ' | b'\t' | b'\n') => {
                    while i < self.bytes.len() && self.bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => break,
            }
        }
        i
    }

    /// A flow collection at `pos`; an unclosed one ends with the region.
    /// Returns the node and the offset past it.
    fn flow(&mut self, pos: usize) -> (Node, usize) {
        if self.depth >= MAX_DEPTH {
            return (empty(pos), self.bytes.len());
        }
        self.depth += 1;
        let result = self.flow_inner(pos);
        self.depth -= 1;
        result
    }

    fn flow_inner(&mut self, pos: usize) -> (Node, usize) {
        let is_map = self.bytes[pos] == b'{';
        let close = if is_map { b'}' } else { b']' };
        let mut entries = Vec::new();
        let mut items = Vec::new();
        let mut i = pos + 1;
        loop {
            i = self.skip_flow_blanks(i);
            let Some(&b) = self.bytes.get(i) else { break };
            if b == close {
                i += 1;
                break;
            }
            if b == b'}' || b == b']' {
                break; // mismatched: let the outer collection have it
            }
            if b == b',' {
                i += 1;
                continue;
            }
            let (first, after) = self.flow_node(i, is_map);
            let mut j = self.skip_flow_blanks(after);
            let has_colon = self.bytes.get(j) == Some(&b':');
            if has_colon || is_map {
                let mut value = empty(j);
                if has_colon {
                    j = self.skip_flow_blanks(j + 1);
                    if !matches!(self.bytes.get(j), None | Some(b',' | b'}' | b']')) {
                        let (node, after_value) = self.flow_node(j, false);
                        value = node;
                        j = after_value;
                    }
                }
                let (key, key_style) = match &first.kind {
                    Kind::Scalar(scalar) => (scalar.content, scalar.style),
                    _ => (Span::at(first.span.start), Style::Plain),
                };
                let entry = Entry {
                    key,
                    key_style,
                    colon: has_colon,
                    value,
                };
                if is_map {
                    entries.push(entry);
                } else {
                    // `[a: b]`: a one-entry mapping as an item.
                    let span = Span::new(first.span.start, j);
                    items.push(Node {
                        kind: Kind::Map(vec![entry]),
                        span,
                    });
                }
                i = j;
            } else {
                items.push(first);
                i = j;
            }
            // Anything but a separator or the end here is junk: skip it.
            let next = self.skip_flow_blanks(i);
            if !matches!(self.bytes.get(next), None | Some(b',' | b'}' | b']')) {
                i = next + self.src[next..].chars().next().map_or(1, char::len_utf8);
            }
        }
        let span = Span::new(pos, i);
        let kind = if is_map {
            Kind::Map(entries)
        } else {
            Kind::Seq(items)
        };
        (Node { kind, span }, i)
    }

    /// A node inside a flow collection: a nested collection, a quoted or a
    /// plain scalar. `key` says the node may be a key: then `:` right
    /// before the cursor ends it (`{action:‸}` is a key and its value).
    fn flow_node(&mut self, pos: usize, key: bool) -> (Node, usize) {
        match self.bytes[pos] {
            b'{' | b'[' => self.flow(pos),
            quote @ (b'"' | b'\'') => {
                let (content, end) = self.quoted(pos, quote, None);
                let style = if quote == b'"' {
                    Style::DoubleQuoted
                } else {
                    Style::SingleQuoted
                };
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        content,
                        style,
                        place: Place::FlowItem,
                    }),
                    span: Span::new(pos, end),
                };
                (node, end)
            }
            _ => {
                let mut i = pos;
                while i < self.bytes.len() {
                    match self.bytes[i] {
                        b',' | b'[' | b']' | b'{' | b'}' | b'\n' | b'\r' => break,
                        b':' if self.bytes.get(i + 1).is_none_or(|&n| {
                            matches!(n, b' ' | b'\t' | b',' | b']' | b'}' | b'\n' | b'\r')
                        }) || (key && self.src[i + 1..].starts_with(SENTINEL)) =>
                        {
                            break;
                        }
                        b'#' if i > pos && is_space(self.bytes[i - 1]) => break,
                        _ => {}
                    }
                    i += 1;
                }
                let end = pos + self.src[pos..i].trim_end().len();
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        content: Span::new(pos, end),
                        style: Style::Plain,
                        place: Place::FlowItem,
                    }),
                    span: Span::new(pos, end),
                };
                (node, i)
            }
        }
    }

    fn seq_at(&mut self, pos: usize) -> (Node, usize) {
        let col = self.column(pos);
        let mut items = Vec::new();
        let mut at = pos;
        let mut next_line;
        loop {
            let line = self.line_of(at);
            let end = self.line_end(line);
            let content = self.skip_spaces(at + 1, end);
            let (item, after) =
                if self.at_line_end(content, end) && !self.src[content..].starts_with(SENTINEL) {
                    self.block_from_line(line + 1, col as isize, false)
                } else {
                    self.block_at(content, col as isize)
                };
            items.push(item);
            next_line = after;
            let mut following = None;
            let mut search = next_line;
            while let Some(candidate) = self.next_content_line(search) {
                let indent = self.indent(candidate);
                if indent > col {
                    search = candidate + 1;
                    continue;
                }
                if indent == col && self.is_dash_at(self.content_start(candidate)) {
                    following = Some(candidate);
                }
                break;
            }
            match following {
                Some(candidate) => at = self.content_start(candidate),
                None => {
                    next_line = search.max(next_line);
                    break;
                }
            }
        }
        let end = items.last().map_or(pos, |item| item.span.end.max(pos));
        (
            Node {
                kind: Kind::Seq(items),
                span: Span::new(pos, end),
            },
            next_line,
        )
    }
}

fn empty(at: usize) -> Node {
    Node {
        kind: Kind::Empty,
        span: Span::at(at),
    }
}

fn entries_end(entries: &[Entry]) -> usize {
    entries
        .last()
        .map_or(0, |entry| entry.value.span.end.max(entry.key.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path and what is at the cursor (`‸` in `text`), as text.
    fn at(text: &str) -> String {
        let offset = text.find('‸').expect("a cursor");
        let text = text.replace('‸', "");
        let sketch = Sketch::read(&text, offset, &KnownItems::default());
        let Some((path, at)) = sketch.locate() else {
            return format!("{:?} nothing", sketch.prefix);
        };
        let mut parts: Vec<String> = sketch.prefix.clone();
        for seg in &path {
            parts.push(match seg {
                Seg::Key(key) => key.clone(),
                Seg::Item(_) => "-".to_string(),
            });
        }
        let what = match at {
            At::Key { entry, entries } => {
                let others: Vec<String> = entries
                    .iter()
                    .filter(|e| !std::ptr::eq(*e, entry))
                    .map(|e| sketch.key_text(e))
                    .collect();
                format!(
                    "key {:?} colon={} among {:?}",
                    &text[sketch.file_span(entry.key).start..sketch.file_span(entry.key).end],
                    entry.colon,
                    others
                )
            }
            At::Scalar(node) => {
                let scalar = node.scalar().expect("a scalar");
                let span = sketch.file_span(scalar.content);
                format!(
                    "scalar {:?} {:?}",
                    &text[span.start..span.end],
                    scalar.place
                )
            }
        };
        format!("{} {what}", parts.join("/"))
    }

    const STEPS: &str = "apiVersion: workflow/v2\nspec:\n  steps:\n    - id: a\n      type: action\n      config:\n        action: x\n";

    #[test]
    fn block_keys_and_values() {
        assert_eq!(
            at(&format!("{STEPS}      ne‸\n")),
            "spec/steps/- key \"ne\" colon=false among [\"id\", \"type\", \"config\"]"
        );
        assert_eq!(
            at(&format!("{STEPS}        iss‸\n")),
            "spec/steps/-/config key \"iss\" colon=false among [\"action\"]"
        );
        assert_eq!(
            at("spec:\n  steps:\n    - id: a\n      type: act‸ion\n"),
            "spec/steps/-/type scalar \"action\" Value"
        );
        assert_eq!(
            at("spec:\n  steps:\n    - id: a\n      config:\n        ‸\n      next: [b]\n"),
            "spec/steps/-/config scalar \"\" OwnLine"
        );
        assert_eq!(
            at("spec:\n  steps:\n    - id: a\n      config:\n        ‸\n        action: x\n"),
            "spec/steps/-/config key \"\" colon=false among [\"action\"]"
        );
        assert_eq!(at("ap‸\n"), " scalar \"ap\" OwnLine");
        assert_eq!(at("apiVersion: v\n‸\nspec: {}\n"), " scalar \"\" OwnLine");
    }

    #[test]
    fn flow_collections() {
        assert_eq!(
            at("spec:\n  steps:\n    - {id: go, type: trigger, config: {triggerId: ‸}}\n"),
            "spec/steps/-/config/triggerId scalar \"\" FlowItem"
        );
        assert_eq!(
            at("spec:\n  steps:\n    - {id: go, ‸}\n"),
            "spec/steps/- key \"\" colon=false among [\"id\"]"
        );
        assert_eq!(
            at("spec:\n  steps:\n    - id: a\n      next: [b, ‸\n"),
            "spec/steps/-/next/- scalar \"\" FlowItem"
        );
        assert_eq!(
            at(
                "triggers:\n  - {id: created, kind: signal,\n     config: {signalEventType: com.‸}}\n"
            ),
            "triggers/-/config/signalEventType scalar \"com.\" FlowItem"
        );
    }

    #[test]
    fn sequences_and_new_items() {
        assert_eq!(
            at("spec:\n  steps:\n    - id: a\n      next:\n        - ‸\n"),
            "spec/steps/-/next/- scalar \"\" BlockItem"
        );
        assert_eq!(
            at("spec:\n  steps:\n    - id: a\n    - ‸\n"),
            "spec/steps/- scalar \"\" BlockItem"
        );
        assert_eq!(
            at("spec:\n  steps:\n  - id: a\n    ty‸\n"),
            "spec/steps/- key \"ty\" colon=false among [\"id\"]"
        );
    }

    #[test]
    fn large_top_level_blocks_are_not_read_whole() {
        let mut text = String::from("spec:\n  steps:\n");
        while text.len() <= MAX_BLOCK {
            text.push_str("    - {id: a, type: action, config: {action: \"x@1:x.y\"}}\n");
        }
        for (cursor_line, expected) in [
            ("  ‸\n", "spec scalar \"\" OwnLine"),
            ("  st‸\n", "spec scalar \"st\" OwnLine"),
            ("    - ‸\n", "spec/steps/- scalar \"\" BlockItem"),
        ] {
            let with_cursor = format!("{text}{cursor_line}");
            assert_eq!(at(&with_cursor), expected);
        }
    }

    #[test]
    fn templates_and_quotes() {
        assert_eq!(
            at("spec:\n  steps:\n    - id: a\n      config: {x: \"{{ nodes.‸ }}\"}\n"),
            "spec/steps/-/config/x scalar \"{{ nodes. }}\" FlowItem"
        );
        assert_eq!(
            at(
                "spec:\n  steps:\n    - id: a\n      config:\n        body: |\n          hello {{ tr‸\n"
            ),
            "spec/steps/-/config/body scalar \"          hello {{ tr\" Value"
        );
    }
}
