//! The open documents: their text and version as the client last sent
//! them. Edits are applied here, synchronously, before any `.await`, so
//! changes keep the order the client sent them in even though the server
//! handles messages concurrently.

use std::collections::HashMap;
use std::path::PathBuf;

use donmai_grammar::SourceFile;
use tower_lsp_server::ls_types::{TextDocumentContentChangeEvent, Uri};

use crate::convert::Encoding;

#[derive(Clone, Debug)]
pub struct Document {
    pub text: String,
    pub version: i32,
}

#[derive(Default)]
pub struct Documents {
    open: HashMap<Uri, Document>,
}

impl Documents {
    pub fn open(&mut self, uri: Uri, text: String, version: i32) {
        self.open.insert(uri, Document { text, version });
    }

    pub fn close(&mut self, uri: &Uri) {
        self.open.remove(uri);
    }

    pub fn get(&self, uri: &Uri) -> Option<&Document> {
        self.open.get(uri)
    }

    pub fn uris(&self) -> Vec<Uri> {
        self.open.keys().cloned().collect()
    }

    /// Applies the client's changes in order. A change without a range
    /// replaces the whole text; a range is read against the text as the
    /// earlier changes of the same notification left it. Returns false for
    /// a document that is not open.
    pub fn change(
        &mut self,
        uri: &Uri,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
        encoding: Encoding,
    ) -> bool {
        let Some(document) = self.open.get_mut(uri) else {
            return false;
        };
        for change in changes {
            match change.range {
                None => document.text = change.text,
                Some(range) => {
                    // The line index is only needed to place this one edit;
                    // the analysis builds its own over the final text.
                    let file = SourceFile::new(PathBuf::new(), std::mem::take(&mut document.text));
                    let span = encoding.span(&file, range);
                    let mut text = String::from(file.text());
                    text.replace_range(span.start..span.end, &change.text);
                    document.text = text;
                }
            }
        }
        document.version = version;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_lsp_server::ls_types::{Position, Range};

    fn uri() -> Uri {
        "file:///w.yaml".parse().unwrap()
    }

    fn edit(l0: u32, c0: u32, l1: u32, c1: u32, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: Some(Range {
                start: Position {
                    line: l0,
                    character: c0,
                },
                end: Position {
                    line: l1,
                    character: c1,
                },
            }),
            range_length: None,
            text: text.to_string(),
        }
    }

    #[test]
    fn incremental_changes_apply_in_order() {
        let mut docs = Documents::default();
        docs.open(uri(), "a: 1\nb: 2\n".into(), 1);
        let changes = vec![
            edit(0, 3, 0, 4, "10"),
            edit(1, 0, 1, 1, "c"),
            edit(2, 0, 2, 0, "d: 😀\n"),
        ];
        assert!(docs.change(&uri(), 2, changes, Encoding::Utf16));
        let doc = docs.get(&uri()).unwrap();
        assert_eq!(doc.text, "a: 10\nc: 2\nd: 😀\n");
        assert_eq!(doc.version, 2);
        // After the emoji (two UTF-16 units) on line 2.
        assert!(docs.change(&uri(), 3, vec![edit(2, 5, 2, 5, "!")], Encoding::Utf16));
        assert_eq!(docs.get(&uri()).unwrap().text, "a: 10\nc: 2\nd: 😀!\n");
    }

    #[test]
    fn ranges_past_the_end_clamp_instead_of_panicking() {
        let mut docs = Documents::default();
        docs.open(uri(), "ab".into(), 1);
        assert!(docs.change(&uri(), 2, vec![edit(5, 0, 9, 9, "c")], Encoding::Utf8));
        assert_eq!(docs.get(&uri()).unwrap().text, "abc");
        // Reversed range.
        assert!(docs.change(&uri(), 3, vec![edit(0, 2, 0, 0, "")], Encoding::Utf8));
        assert_eq!(docs.get(&uri()).unwrap().text, "c");
    }

    #[test]
    fn changes_to_a_closed_document_are_refused() {
        let mut docs = Documents::default();
        assert!(!docs.change(&uri(), 1, vec![], Encoding::Utf8));
    }
}
