//! Re-scanning scalar source text: exact extents and the decoded→file byte map.
//!
//! saphyr decodes scalars but reports loose positions (a quoted scalar's end
//! runs over trailing comments, a block scalar starts at its first content
//! line) and no per-byte origin. Each re-scan below follows the same folding
//! rules as saphyr's scanner, but over our byte offsets, and checks every
//! produced piece against saphyr's decoded value: saphyr stays the authority
//! on `value`, and a re-scan that disagrees with it yields `None` so the
//! caller can fall back instead of publishing a wrong map.

use super::ScalarMap;
use crate::span::Span;

/// Collects the map of a decoded value while checking it against the value.
///
/// Stays allocation-free while every decoded byte is a contiguous copy of the
/// file, which is the common case; the table is only built on the first jump.
struct MapBuilder<'a> {
    text: &'a [u8],
    expected: &'a [u8],
    produced: usize,
    /// File offset of decoded byte 0, set by the first piece.
    first: Option<usize>,
    table: Option<Vec<usize>>,
    consistent: bool,
}

impl<'a> MapBuilder<'a> {
    fn new(text: &'a str, expected: &'a str) -> MapBuilder<'a> {
        MapBuilder {
            text: text.as_bytes(),
            expected: expected.as_bytes(),
            produced: 0,
            first: None,
            table: None,
            consistent: true,
        }
    }

    fn matches_next(&mut self, bytes: &[u8]) -> bool {
        let end = self.produced + bytes.len();
        if self.expected.get(self.produced..end) == Some(bytes) {
            true
        } else {
            self.consistent = false;
            false
        }
    }

    /// The table, built from the contiguous prefix on first use.
    fn table(&mut self) -> &mut Vec<usize> {
        let produced = self.produced;
        let first = self.first.unwrap_or(0);
        self.table.get_or_insert_with(|| {
            let mut table = Vec::with_capacity(produced + 16);
            table.extend(first..first + produced);
            table
        })
    }

    /// The file bytes `from..to` appear unchanged in the value.
    fn copy(&mut self, from: usize, to: usize) {
        if !self.consistent || from >= to {
            return;
        }
        let Some(bytes) = self.text.get(from..to) else {
            self.consistent = false;
            return;
        };
        if !self.matches_next(bytes) {
            return;
        }
        let contiguous = self.table.is_none()
            && match self.first {
                None => {
                    self.first = Some(from);
                    true
                }
                Some(first) => first + self.produced == from,
            };
        if !contiguous {
            self.table().extend(from..to);
        }
        self.produced += to - from;
    }

    /// `piece` is produced by an escape or by folding at file offset `origin`.
    fn produce(&mut self, piece: &str, origin: usize) {
        if !self.consistent || !self.matches_next(piece.as_bytes()) {
            return;
        }
        if self.produced == 0 && self.first.is_none() {
            self.first = Some(origin);
        }
        let table = self.table();
        table.extend(std::iter::repeat_n(origin, piece.len()));
        self.produced += piece.len();
    }

    fn produce_char(&mut self, c: char, origin: usize) {
        let mut buf = [0u8; 4];
        self.produce(c.encode_utf8(&mut buf), origin);
    }

    /// A line break in the file that reads as `\n` in the value.
    fn line_feed(&mut self, at: usize) {
        if self.text.get(at) == Some(&b'\n') {
            self.copy(at, at + 1);
        } else {
            self.produce("\n", at);
        }
    }

    fn finish(mut self, end: usize) -> Option<ScalarMap> {
        if !self.consistent || self.produced != self.expected.len() {
            return None;
        }
        match self.table.take() {
            None => Some(ScalarMap::Verbatim {
                start: self.first.unwrap_or(end),
            }),
            Some(mut offsets) => {
                offsets.push(end);
                Some(ScalarMap::Table { offsets })
            }
        }
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_break(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// Length of the line break at `at` (`\r\n` counts as one break).
fn break_len(bytes: &[u8], at: usize) -> usize {
    if bytes.get(at) == Some(&b'\r') && bytes.get(at + 1) == Some(&b'\n') {
        2
    } else {
        1
    }
}

/// A plain scalar spanning exactly `start..end`: lines are folded, each line
/// break between two content lines reading as a space, and each further empty
/// line as `\n`.
pub(super) fn plain_map(text: &str, start: usize, end: usize, value: &str) -> Option<ScalarMap> {
    let bytes = text.as_bytes();
    let end = end.min(bytes.len());
    let mut map = MapBuilder::new(text, value);
    let mut i = start;
    let mut inline_blanks: Option<usize> = None;
    let mut leading_break: Option<usize> = None;
    let mut trailing_breaks: Vec<usize> = Vec::new();
    while i < end {
        let b = bytes[i];
        if is_blank(b) {
            if leading_break.is_none() && inline_blanks.is_none() {
                inline_blanks = Some(i);
            }
            i += 1;
        } else if is_break(b) {
            inline_blanks = None;
            if leading_break.is_none() {
                leading_break = Some(i);
            } else {
                trailing_breaks.push(i);
            }
            i += break_len(bytes, i);
        } else {
            if let Some(at) = leading_break.take() {
                fold(&mut map, at, &mut trailing_breaks);
            } else if let Some(from) = inline_blanks.take() {
                map.copy(from, i);
            }
            let run = i;
            while i < end && !is_blank(bytes[i]) && !is_break(bytes[i]) {
                i += 1;
            }
            map.copy(run, i);
        }
    }
    map.finish(end)
}

/// Folds a line break at `leading` followed by empty lines at
/// `trailing_breaks`: a single break reads as a space, otherwise each empty
/// line reads as `\n`.
fn fold(map: &mut MapBuilder<'_>, leading: usize, trailing_breaks: &mut Vec<usize>) {
    if trailing_breaks.is_empty() {
        map.produce(" ", leading);
    } else {
        for &at in trailing_breaks.iter() {
            map.line_feed(at);
        }
        trailing_breaks.clear();
    }
}

/// A quoted scalar whose opening quote is at `start`; returns the offset just
/// past the closing quote and the map.
pub(super) fn quoted_map(
    text: &str,
    start: usize,
    value: &str,
    double: bool,
) -> Option<(usize, ScalarMap)> {
    let bytes = text.as_bytes();
    let quote = if double { b'"' } else { b'\'' };
    if bytes.get(start) != Some(&quote) {
        return None;
    }
    verbatim_quoted(bytes, start, value, quote).or_else(|| quoted_scan(text, start, value, double))
}

/// Without quotes, escapes or line breaks inside, the value is the text
/// between the quotes: the common case, decided without the full scan.
fn verbatim_quoted(
    bytes: &[u8],
    start: usize,
    value: &str,
    quote: u8,
) -> Option<(usize, ScalarMap)> {
    let content = start + 1..start + 1 + value.len();
    let plain_content = !value
        .bytes()
        .any(|b| b == quote || b == b'\\' || b == b'\n' || b == b'\r');
    (plain_content
        && bytes.get(content.end) == Some(&quote)
        && bytes.get(content.clone()) == Some(value.as_bytes()))
    .then_some((
        content.end + 1,
        ScalarMap::Verbatim {
            start: content.start,
        },
    ))
}

fn quoted_scan(text: &str, start: usize, value: &str, double: bool) -> Option<(usize, ScalarMap)> {
    let bytes = text.as_bytes();
    let quote = if double { b'"' } else { b'\'' };
    let mut map = MapBuilder::new(text, value);
    let mut i = start + 1;
    let mut leading_break: Option<usize> = None;
    let mut trailing_breaks: Vec<usize> = Vec::new();
    let mut inline_blanks: Option<usize> = None;
    loop {
        if i >= bytes.len() {
            return None;
        }
        // An escaped line break behaves like leading blanks without a break
        // of its own: the newline is dropped, further empty lines are kept.
        let mut leading_blanks = false;
        while i < bytes.len() && !is_blank(bytes[i]) && !is_break(bytes[i]) {
            let b = bytes[i];
            if !double && b == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                map.produce("'", i);
                i += 2;
            } else if b == quote {
                break;
            } else if double && b == b'\\' {
                match bytes.get(i + 1) {
                    Some(&next) if is_break(next) => {
                        i += 1 + break_len(bytes, i + 1);
                        leading_blanks = true;
                        break;
                    }
                    _ => {
                        let (c, len) = escape(text, i)?;
                        map.produce_char(c, i);
                        i += len;
                    }
                }
            } else {
                // At least one byte, so a lone backslash in a single-quoted
                // scalar is copied too.
                let run = i;
                i += 1;
                while i < bytes.len()
                    && !matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b'\\')
                    && bytes[i] != quote
                {
                    i += 1;
                }
                map.copy(run, i);
            }
        }
        if bytes.get(i) == Some(&quote) {
            break;
        }
        while i < bytes.len() && (is_blank(bytes[i]) || is_break(bytes[i])) {
            if is_blank(bytes[i]) {
                if !leading_blanks && inline_blanks.is_none() {
                    inline_blanks = Some(i);
                }
                i += 1;
            } else {
                if leading_blanks {
                    trailing_breaks.push(i);
                } else {
                    inline_blanks = None;
                    leading_break = Some(i);
                    leading_blanks = true;
                }
                i += break_len(bytes, i);
            }
        }
        if leading_blanks {
            match leading_break.take() {
                Some(at) => fold(&mut map, at, &mut trailing_breaks),
                None => {
                    for &at in &trailing_breaks {
                        map.line_feed(at);
                    }
                    trailing_breaks.clear();
                }
            }
        } else if let Some(from) = inline_blanks.take() {
            map.copy(from, i);
        }
    }
    // `i` is at the closing quote.
    let end = i + 1;
    Some((end, map.finish(i)?))
}

/// Decodes the double-quoted escape at `at` (which holds the backslash):
/// the character and the escape's length in bytes.
fn escape(text: &str, at: usize) -> Option<(char, usize)> {
    let bytes = text.as_bytes();
    let simple = match *bytes.get(at + 1)? {
        b'0' => '\0',
        b'a' => '\x07',
        b'b' => '\x08',
        b't' | b'\t' => '\t',
        b'n' => '\n',
        b'v' => '\x0b',
        b'f' => '\x0c',
        b'r' => '\r',
        b'e' => '\x1b',
        b' ' => ' ',
        b'"' => '"',
        b'/' => '/',
        b'\\' => '\\',
        b'N' => '\u{85}',
        b'_' => '\u{a0}',
        b'L' => '\u{2028}',
        b'P' => '\u{2029}',
        b'x' => return hex_escape(text, at, 2),
        b'u' => return hex_escape(text, at, 4),
        b'U' => return hex_escape(text, at, 8),
        _ => return None,
    };
    Some((simple, 2))
}

fn hex_escape(text: &str, at: usize, digits: usize) -> Option<(char, usize)> {
    let hex = text.get(at + 2..at + 2 + digits)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let code = u32::from_str_radix(hex, 16).ok()?;
    Some((char::from_u32(code)?, 2 + digits))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Chomping {
    Strip,
    Clip,
    Keep,
}

/// saphyr's end of input: the end of the text or a NUL character.
fn is_end(bytes: &[u8], at: usize) -> bool {
    bytes.get(at).is_none_or(|&b| b == 0)
}

fn is_byte_order_mark(bytes: &[u8], at: usize) -> bool {
    bytes.get(at..at + 3) == Some("\u{feff}".as_bytes())
}

fn is_document_marker(bytes: &[u8], at: usize) -> bool {
    let Some(marker) = bytes.get(at..at + 3) else {
        return false;
    };
    (marker == b"---" || marker == b"...")
        && (is_end(bytes, at + 3) || is_blank(bytes[at + 3]) || is_break(bytes[at + 3]))
}

/// A block scalar whose `|` or `>` indicator is at `header`, inside a block
/// collection indented `parent_indent` columns (-1 at the document level).
/// Returns the node span (indicator to last content character) and the map.
pub(super) fn block_map(
    text: &str,
    header: usize,
    parent_indent: isize,
    value: &str,
) -> Option<(Span, ScalarMap)> {
    let bytes = text.as_bytes();
    let literal = match bytes.get(header) {
        Some(b'|') => true,
        Some(b'>') => false,
        _ => return None,
    };
    let mut i = header + 1;
    let mut chomping = Chomping::Clip;
    let mut increment = 0usize;
    let chomping_at = |at: usize| match bytes.get(at) {
        Some(b'+') => Some(Chomping::Keep),
        Some(b'-') => Some(Chomping::Strip),
        _ => None,
    };
    let digit_at = |at: usize| match bytes.get(at) {
        Some(&d @ b'1'..=b'9') => Some(usize::from(d - b'0')),
        _ => None,
    };
    if let Some(c) = chomping_at(i) {
        chomping = c;
        i += 1;
        if let Some(d) = digit_at(i) {
            increment = d;
            i += 1;
        }
    } else if let Some(d) = digit_at(i) {
        increment = d;
        i += 1;
        if let Some(c) = chomping_at(i) {
            chomping = c;
            i += 1;
        }
    }
    let header_end = i;
    while i < bytes.len() && is_blank(bytes[i]) {
        i += 1;
    }
    if bytes.get(i) == Some(&b'#') {
        while !is_end(bytes, i) && !is_break(bytes[i]) {
            i += 1;
        }
    }
    if i < bytes.len() && is_break(bytes[i]) {
        i += break_len(bytes, i);
    }

    let mut map = MapBuilder::new(text, value);
    let mut line_start = i;
    let mut trailing_breaks: Vec<usize> = Vec::new();
    let indent = if increment > 0 {
        let indent = if parent_indent >= 0 {
            parent_indent.unsigned_abs() + increment
        } else {
            increment
        };
        skip_block_indent(bytes, &mut i, &mut line_start, indent, &mut trailing_breaks);
        indent
    } else {
        let mut widest = 0;
        loop {
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            widest = widest.max(i - line_start);
            if i < bytes.len() && is_break(bytes[i]) {
                trailing_breaks.push(i);
                i += break_len(bytes, i);
                line_start = i;
            } else {
                break;
            }
        }
        let minimum = usize::try_from(parent_indent + 1).unwrap_or(0);
        let indent = widest.max(minimum);
        if parent_indent > 0 {
            indent.max(1)
        } else {
            indent
        }
    };

    if is_end(bytes, i) {
        for &at in &trailing_breaks {
            if chomping == Chomping::Keep {
                map.line_feed(at);
            }
        }
        if chomping == Chomping::Keep && trailing_breaks.is_empty() && i > line_start {
            map.produce("\n", i);
        }
        let map = within(map.finish(i)?, value.len(), header_end);
        return Some((Span::new(header, header_end), map));
    }

    let mut content_end = header_end;
    let mut leading_break: Option<usize> = None;
    let mut leading_blank = false;
    while i - line_start == indent
        && !is_end(bytes, i)
        && !is_break(bytes[i])
        && !is_byte_order_mark(bytes, i)
    {
        if indent == 0 && is_document_marker(bytes, i) {
            break;
        }
        let trailing_blank = is_blank(bytes[i]);
        match leading_break.take() {
            Some(at) if !literal && !leading_blank && !trailing_blank => {
                fold(&mut map, at, &mut trailing_breaks);
            }
            leading => {
                if let Some(at) = leading {
                    map.line_feed(at);
                }
                for &at in &trailing_breaks {
                    map.line_feed(at);
                }
            }
        }
        trailing_breaks.clear();
        leading_blank = trailing_blank;

        let content = i;
        while !is_end(bytes, i) && !is_break(bytes[i]) && !is_byte_order_mark(bytes, i) {
            i += 1;
        }
        map.copy(content, i);
        content_end = i;
        if !(i < bytes.len() && is_break(bytes[i])) {
            break;
        }
        leading_break = Some(i);
        i += break_len(bytes, i);
        line_start = i;
        skip_block_indent(bytes, &mut i, &mut line_start, indent, &mut trailing_breaks);
    }

    if chomping != Chomping::Strip {
        if let Some(at) = leading_break {
            map.line_feed(at);
        }
        // The last line ends at the end of input without a line break.
        if is_end(bytes, i) && i - line_start >= indent.max(1) {
            map.produce("\n", i);
        }
    }
    if chomping == Chomping::Keep {
        for &at in &trailing_breaks {
            map.line_feed(at);
        }
    }
    let map = within(map.finish(content_end)?, value.len(), content_end);
    Some((Span::new(header, content_end), map))
}

/// The node span of a block scalar stops at its last content character, but
/// the value's final line breaks come from after it: they map to the end of
/// the span so that the map never points outside the node.
fn within(map: ScalarMap, len: usize, end: usize) -> ScalarMap {
    match map {
        ScalarMap::Verbatim { start } if start + len > end => {
            let mut offsets: Vec<usize> = (start..start + len).map(|at| at.min(end)).collect();
            offsets.push(end);
            ScalarMap::Table { offsets }
        }
        ScalarMap::Table { mut offsets } => {
            for offset in &mut offsets {
                *offset = (*offset).min(end);
            }
            ScalarMap::Table { offsets }
        }
        verbatim => verbatim,
    }
}

/// Skips up to `indent` spaces of indentation on each line, recording the
/// breaks of lines that hold nothing else.
fn skip_block_indent(
    bytes: &[u8],
    i: &mut usize,
    line_start: &mut usize,
    indent: usize,
    breaks: &mut Vec<usize>,
) {
    loop {
        while *i - *line_start < indent && bytes.get(*i) == Some(&b' ') {
            *i += 1;
        }
        if *i < bytes.len() && is_break(bytes[*i]) {
            breaks.push(*i);
            *i += break_len(bytes, *i);
            *line_start = *i;
        } else {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whenever the shortcut answers, the full scan gives the same.
        #[test]
        fn verbatim_shortcut_agrees_with_the_scan(
            content in "[a-z '\"\\\\é{}#:\t\n]{0,12}",
            double in any::<bool>(),
        ) {
            let quote = if double { '"' } else { '\'' };
            let text = format!("k: {quote}{content}{quote}\n");
            let parsed = crate::yaml::parse(&text);
            let value = parsed
                .documents
                .first()
                .and_then(|document| document.get("k"))
                .and_then(|node| node.as_str());
            if let Some(value) = value
                && let Some(shortcut) = verbatim_quoted(text.as_bytes(), 3, value, quote as u8)
            {
                prop_assert_eq!(Some(shortcut), quoted_scan(&text, 3, value, double));
            }
        }
    }
}
