//! The edge between the compiler's byte offsets and LSP positions.
//!
//! Everything inside the server counts bytes; only this module knows that a
//! client counts columns in UTF-16 code units (the LSP default) or, when it
//! offers it and we accept, in UTF-8 bytes.

use donmai_grammar::diagnostic::{Edit, Severity};
use donmai_grammar::{Diagnostic, SourceFile, Span};
use tower_lsp_server::ls_types::{
    self as lsp, DiagnosticRelatedInformation, Location, NumberOrString, Position,
    PositionEncodingKind, Range, TextEdit, Uri,
};

/// How the client counts columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
}

impl Encoding {
    /// UTF-8 when the client lists it (no conversion at all), else the
    /// mandatory UTF-16.
    pub fn negotiate(offered: Option<&[PositionEncodingKind]>) -> Encoding {
        match offered {
            Some(kinds) if kinds.contains(&PositionEncodingKind::UTF8) => Encoding::Utf8,
            _ => Encoding::Utf16,
        }
    }

    pub fn kind(self) -> PositionEncodingKind {
        match self {
            Encoding::Utf8 => PositionEncodingKind::UTF8,
            Encoding::Utf16 => PositionEncodingKind::UTF16,
        }
    }

    pub fn position(self, file: &SourceFile, offset: usize) -> Position {
        match self {
            Encoding::Utf16 => {
                let (line, character) = file.utf16_position(offset);
                Position { line, character }
            }
            Encoding::Utf8 => {
                let offset = file.clamp(offset);
                let line = file.line_index(offset);
                Position {
                    line: line as u32,
                    character: (offset - file.line_start(line)) as u32,
                }
            }
        }
    }

    /// The byte offset of a client position. Columns past the end of a line
    /// clamp to its end and lines past the end of the text to the text's
    /// end, as the protocol asks; a UTF-8 column inside a character moves
    /// back to the character's start.
    pub fn offset(self, file: &SourceFile, position: Position) -> usize {
        match self {
            Encoding::Utf16 => file.offset_of_utf16(position.line, position.character),
            Encoding::Utf8 => {
                let line = position.line as usize;
                if line >= file.line_count() {
                    return file.text().len();
                }
                let start = file.line_start(line);
                let length = file.line_text(line).len();
                file.clamp(start + (position.character as usize).min(length))
            }
        }
    }

    /// Whether `position` lies inside the text (a request at a position past
    /// the end of the document gets an empty answer rather than a guess).
    pub fn is_inside(self, file: &SourceFile, position: Position) -> bool {
        let line = position.line as usize;
        if line >= file.line_count() {
            return false;
        }
        let text = file.line_text(line);
        let width = match self {
            Encoding::Utf8 => text.len(),
            Encoding::Utf16 => text.encode_utf16().count(),
        };
        position.character as usize <= width
    }

    pub fn range(self, file: &SourceFile, span: Span) -> Range {
        Range {
            start: self.position(file, span.start),
            end: self.position(file, span.end.max(span.start)),
        }
    }

    pub fn span(self, file: &SourceFile, range: Range) -> Span {
        let start = self.offset(file, range.start);
        let end = self.offset(file, range.end);
        Span::new(start.min(end), start.max(end))
    }

    pub fn text_edit(self, file: &SourceFile, edit: &Edit) -> TextEdit {
        TextEdit {
            range: self.range(file, edit.span),
            new_text: edit.replacement.clone(),
        }
    }

    /// The LSP form of a checker diagnostic: same code, span, message; the
    /// help goes after the message (clients show no separate help), labels
    /// become related information in the same file.
    pub fn diagnostic(
        self,
        file: &SourceFile,
        uri: &Uri,
        diagnostic: &Diagnostic,
    ) -> lsp::Diagnostic {
        let mut message = diagnostic.message.clone();
        if let Some(help) = &diagnostic.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        let related: Vec<DiagnosticRelatedInformation> = diagnostic
            .labels
            .iter()
            .map(|label| DiagnosticRelatedInformation {
                location: Location {
                    uri: uri.clone(),
                    range: self.range(file, label.span),
                },
                message: label.message.clone(),
            })
            .collect();
        lsp::Diagnostic {
            range: self.range(file, diagnostic.span),
            severity: Some(match diagnostic.severity {
                Severity::Error => lsp::DiagnosticSeverity::ERROR,
                Severity::Warning => lsp::DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(diagnostic.code.to_string())),
            code_description: None,
            source: Some("donmai".to_string()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            tags: None,
            data: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile::new("t.yaml", text)
    }

    #[test]
    fn utf16_columns_count_surrogate_pairs() {
        let f = file("a: \"😀x\"\nb: 1\n");
        let x = f.text().find('x').unwrap();
        let p = Encoding::Utf16.position(&f, x);
        assert_eq!((p.line, p.character), (0, 6));
        assert_eq!(Encoding::Utf16.offset(&f, p), x);
        let p8 = Encoding::Utf8.position(&f, x);
        assert_eq!((p8.line, p8.character), (0, 8));
        assert_eq!(Encoding::Utf8.offset(&f, p8), x);
    }

    #[test]
    fn positions_past_the_end_clamp() {
        let f = file("ab\ncd");
        for encoding in [Encoding::Utf8, Encoding::Utf16] {
            let end = encoding.offset(
                &f,
                Position {
                    line: 9,
                    character: 9,
                },
            );
            assert_eq!(end, 5);
            let eol = encoding.offset(
                &f,
                Position {
                    line: 0,
                    character: 99,
                },
            );
            assert_eq!(eol, 2);
            assert!(!encoding.is_inside(
                &f,
                Position {
                    line: 0,
                    character: 3
                }
            ));
            assert!(encoding.is_inside(
                &f,
                Position {
                    line: 1,
                    character: 2
                }
            ));
            assert!(!encoding.is_inside(
                &f,
                Position {
                    line: 2,
                    character: 0
                }
            ));
        }
    }

    #[test]
    fn utf8_column_inside_a_character_moves_to_its_start() {
        let f = file("é");
        assert_eq!(
            Encoding::Utf8.offset(
                &f,
                Position {
                    line: 0,
                    character: 1
                }
            ),
            0
        );
    }
}
