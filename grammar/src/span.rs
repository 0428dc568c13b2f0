//! Byte spans and the line index that turns them into line/column positions.
//!
//! Every position inside the toolchain is a byte offset into one file's text.
//! Lines and columns are derived only at the edges (diagnostic output, LSP),
//! because they come in three flavours: 1-based character columns for humans
//! and JSON, and 0-based UTF-16 columns for LSP.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A half-open byte range `start..end` into one source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub const fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// An empty span at `offset`.
    pub const fn at(offset: usize) -> Span {
        Span {
            start: offset,
            end: offset,
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The smallest span covering both.
    pub fn cover(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn contains(&self, offset: usize) -> bool {
        self.start <= offset && offset < self.end
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Reads a file the toolchain was pointed at, if it is a regular file (or a
/// link to one). A FIFO would block forever and a device such as
/// `/dev/zero` never ends, and a workflow can name either: through a group
/// `ref`, or a symbolic link committed to a repository.
pub fn read_regular_file(path: &Path) -> std::io::Result<Vec<u8>> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    std::fs::read(path)
}

/// A 1-based line and 1-based column counted in Unicode scalar values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// A file's text with its line index.
#[derive(Clone, Debug)]
pub struct SourceFile {
    path: PathBuf,
    text: String,
    /// Built on first use: a file that checks clean is never asked for a
    /// position, and a large one spent time and memory on it for nothing.
    index: OnceLock<LineIndex>,
}

#[derive(Clone, Debug)]
struct LineIndex {
    /// Byte offset of the first byte of each line.
    line_starts: Vec<usize>,
    /// Characters and UTF-16 units before each multiple of
    /// [`COUNT_STRIDE`] bytes, so that a column costs at most one stride
    /// of counting however long the line (a minified one-line workflow with
    /// many diagnostics made column counting quadratic). Empty for ASCII
    /// text, where both counts equal the byte offset.
    counts: Vec<(usize, usize)>,
    ascii: bool,
}

const COUNT_STRIDE: usize = 1024;

fn is_char_start(byte: u8) -> bool {
    // Not a continuation byte: one per character.
    (byte as i8) >= -0x40
}

/// Characters and UTF-16 units encoded by `bytes` (whole characters).
fn count_units(bytes: &[u8]) -> (usize, usize) {
    let chars = bytes.iter().filter(|&&b| is_char_start(b)).count();
    // A four-byte character is two UTF-16 units.
    let astral = bytes.iter().filter(|&&b| b >= 0xf0).count();
    (chars, chars + astral)
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        let ascii = text.is_ascii();
        let mut counts = Vec::new();
        if !ascii {
            counts.reserve(text.len() / COUNT_STRIDE + 1);
            let mut total = (0, 0);
            counts.push(total);
            for chunk in text.as_bytes().chunks_exact(COUNT_STRIDE) {
                let (chars, units) = count_units(chunk);
                total = (total.0 + chars, total.1 + units);
                counts.push(total);
            }
        }
        LineIndex {
            line_starts,
            counts,
            ascii,
        }
    }
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
            index: OnceLock::new(),
        }
    }

    fn index(&self) -> &LineIndex {
        self.index.get_or_init(|| LineIndex::new(&self.text))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn line_count(&self) -> usize {
        self.index().line_starts.len()
    }

    /// Clamps `offset` into the text and onto a character boundary, so a
    /// position is always printable even when a span came from bad input.
    pub fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// 0-based line index of the line holding `offset`.
    pub fn line_index(&self, offset: usize) -> usize {
        let offset = self.clamp(offset);
        match self.index().line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        }
    }

    /// Byte offset at which 0-based `line` starts.
    pub fn line_start(&self, line: usize) -> usize {
        self.index()
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The text of 0-based `line` without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_start(line);
        let end = self
            .index()
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// Characters and UTF-16 units before `offset`, a character boundary.
    fn units_before(&self, offset: usize) -> (usize, usize) {
        let index = self.index();
        if index.ascii {
            return (offset, offset);
        }
        let stride = offset / COUNT_STRIDE;
        let (chars, units) = index.counts[stride];
        let (more_chars, more_units) =
            count_units(&self.text.as_bytes()[stride * COUNT_STRIDE..offset]);
        (chars + more_chars, units + more_units)
    }

    /// 1-based line and character column of a byte offset.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = self.clamp(offset);
        let line = self.line_index(offset);
        let start = self.index().line_starts[line];
        LineCol {
            line: line + 1,
            column: self.units_before(offset).0 - self.units_before(start).0 + 1,
        }
    }

    /// 0-based line and UTF-16 column, as the Language Server Protocol counts.
    pub fn utf16_position(&self, offset: usize) -> (u32, u32) {
        let offset = self.clamp(offset);
        let line = self.line_index(offset);
        let start = self.index().line_starts[line];
        let column = self.units_before(offset).1 - self.units_before(start).1;
        (line as u32, column as u32)
    }

    /// Byte offset of a 0-based line and UTF-16 column; positions past the end
    /// of a line clamp to its end, as LSP requires.
    pub fn offset_of_utf16(&self, line: u32, column: u32) -> usize {
        let line = line as usize;
        if line >= self.index().line_starts.len() {
            return self.text.len();
        }
        let start = self.index().line_starts[line];
        let text = self.line_text(line);
        let mut units = 0u32;
        for (i, c) in text.char_indices() {
            if units >= column {
                return start + i;
            }
            units += c.len_utf16() as u32;
        }
        start + text.len()
    }

    /// The text a span covers, clamped to the file.
    pub fn slice(&self, span: Span) -> &str {
        let start = self.clamp(span.start);
        let end = self.clamp(span.end).max(start);
        &self.text[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        let file = SourceFile::new("a.yaml", "ab\nçd\n\nx");
        assert_eq!(file.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(file.line_col(3), LineCol { line: 2, column: 1 });
        // 'ç' is two bytes: 'd' is the second character of line 2.
        assert_eq!(file.line_col(5), LineCol { line: 2, column: 2 });
        assert_eq!(file.line_col(7), LineCol { line: 3, column: 1 });
        assert_eq!(file.line_col(8), LineCol { line: 4, column: 1 });
        assert_eq!(file.line_col(999), LineCol { line: 4, column: 2 });
    }

    #[test]
    fn utf16_round_trips() {
        let file = SourceFile::new("a.yaml", "k: \"😀x\"\nnext");
        let x = file.text().find('x').unwrap();
        assert_eq!(file.utf16_position(x), (0, 6));
        assert_eq!(file.offset_of_utf16(0, 6), x);
        assert_eq!(file.offset_of_utf16(1, 99), file.text().len());
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        #[test]
        fn columns_match_counting_from_the_line_start(
            text in proptest::collection::vec(
                proptest::sample::select(&["a", "é", "😀", "\n", "\r\n", "ab"][..]),
                0..1500,
            )
            .prop_map(|pieces: Vec<&str>| pieces.concat()),
            offsets in proptest::collection::vec(0usize..6000, 1..8),
        ) {
            let file = SourceFile::new("p.yaml", text.as_str());
            for offset in offsets {
                let offset = file.clamp(offset);
                let start = file.line_start(file.line_index(offset));
                let prefix = &text[start..offset];
                proptest::prop_assert_eq!(file.line_col(offset).column, prefix.chars().count() + 1);
                proptest::prop_assert_eq!(
                    file.utf16_position(offset).1 as usize,
                    prefix.chars().map(char::len_utf16).sum::<usize>()
                );
            }
        }
    }

    #[test]
    fn only_regular_files_are_read() {
        let error = read_regular_file(Path::new("/dev/zero")).expect_err("a device");
        assert_eq!(error.to_string(), "not a regular file");
        let dir = std::env::temp_dir();
        assert!(read_regular_file(&dir).is_err());
        let file = dir.join(format!("donmai-span-{}.yaml", std::process::id()));
        std::fs::write(&file, "k: v").expect("write");
        assert_eq!(read_regular_file(&file).expect("read"), b"k: v");
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn clamp_lands_on_char_boundary() {
        let file = SourceFile::new("a.yaml", "é");
        assert_eq!(file.clamp(1), 0);
        assert_eq!(file.slice(Span::new(1, 9)), "é");
    }
}
