//! Definition, references, highlights, rename, outline and semantic tokens:
//! the compiler's `ide` answers, put into LSP form.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use donmai_compiler::ide::navigate::{self, DocumentSymbol as Outline};
use donmai_compiler::ide::tokens::{self, TOKEN_MODIFIERS, TOKEN_TYPES};
use donmai_grammar::{SourceFile, Span};
use tower_lsp_server::ls_types::*;

use crate::analysis::{Snapshot, Syntax};
use crate::convert::Encoding;

/// The other open documents, to follow group references into them.
pub struct OpenFiles {
    pub by_path: HashMap<std::path::PathBuf, (Uri, Arc<Snapshot>, Arc<Syntax>)>,
}

impl OpenFiles {
    /// A compiler location as an LSP one: through the open document's text
    /// when the file is open, else read from disk (a group file's start
    /// needs no text at all).
    pub fn location(&self, encoding: Encoding, location: &navigate::Location) -> Option<Location> {
        if let Some((uri, snapshot, _)) = self.by_path.get(&location.path) {
            return Some(Location {
                uri: uri.clone(),
                range: encoding.range(&snapshot.source, location.span),
            });
        }
        let uri = Uri::from_file_path(&location.path)?;
        let range = if location.span == Span::new(0, 0) {
            Range::default()
        } else {
            let text = std::fs::read_to_string(&location.path).ok()?;
            encoding.range(&SourceFile::new(location.path.clone(), text), location.span)
        };
        Some(Location { uri, range })
    }

    pub fn indexes(&self) -> Vec<&donmai_compiler::ide::symbols::SymbolIndex> {
        self.by_path
            .values()
            .map(|(_, _, syntax)| &syntax.index)
            .collect()
    }
}

pub fn definition(
    encoding: Encoding,
    syntax: &Syntax,
    offset: usize,
    open: &OpenFiles,
) -> Option<GotoDefinitionResponse> {
    let indexes = open.indexes();
    let found = navigate::definition(&syntax.index, offset, &indexes)?;
    Some(GotoDefinitionResponse::Scalar(
        open.location(encoding, &found)?,
    ))
}

pub fn references(
    encoding: Encoding,
    syntax: &Syntax,
    offset: usize,
    include_declaration: bool,
    open: &OpenFiles,
) -> Vec<Location> {
    let indexes = open.indexes();
    navigate::references(&syntax.index, offset, include_declaration, &indexes)
        .iter()
        .filter_map(|l| open.location(encoding, l))
        .collect()
}

pub fn highlights(
    encoding: Encoding,
    file: &SourceFile,
    syntax: &Syntax,
    offset: usize,
) -> Vec<DocumentHighlight> {
    navigate::highlights(&syntax.index, offset)
        .into_iter()
        .map(|h| DocumentHighlight {
            range: encoding.range(file, h.span),
            kind: Some(if h.definition {
                DocumentHighlightKind::WRITE
            } else {
                DocumentHighlightKind::READ
            }),
        })
        .collect()
}

pub fn prepare_rename(
    encoding: Encoding,
    file: &SourceFile,
    syntax: &Syntax,
    offset: usize,
) -> Option<PrepareRenameResponse> {
    let (span, name) = navigate::prepare_rename(&syntax.index, offset)?;
    Some(PrepareRenameResponse::RangeWithPlaceholder {
        range: encoding.range(file, span),
        placeholder: name,
    })
}

pub fn rename(
    encoding: Encoding,
    uri: &Uri,
    file: &SourceFile,
    syntax: &Syntax,
    offset: usize,
    new_name: &str,
) -> Result<WorkspaceEdit, String> {
    let edits = navigate::rename(&syntax.index, offset, new_name).map_err(|e| e.to_string())?;
    let edits = edits.iter().map(|e| encoding.text_edit(file, e)).collect();
    Ok(WorkspaceEdit {
        changes: Some(HashMap::from([(uri.clone(), edits)])),
        ..WorkspaceEdit::default()
    })
}

pub fn document_symbols(
    encoding: Encoding,
    file: &SourceFile,
    syntax: &Syntax,
) -> Vec<DocumentSymbol> {
    fn convert(encoding: Encoding, file: &SourceFile, outline: &Outline) -> DocumentSymbol {
        #[allow(deprecated)] // `deprecated` is a required field of the type
        DocumentSymbol {
            name: if outline.name.is_empty() {
                "(unnamed)".to_string()
            } else {
                outline.name.clone()
            },
            detail: outline.detail.clone(),
            kind: symbol_kind(outline.kind.lsp_symbol_kind()),
            tags: None,
            deprecated: None,
            range: encoding.range(file, outline.range),
            selection_range: encoding.range(file, outline.selection),
            children: (!outline.children.is_empty()).then(|| {
                outline
                    .children
                    .iter()
                    .map(|c| convert(encoding, file, c))
                    .collect()
            }),
        }
    }
    navigate::document_symbols(file, syntax.workflow())
        .iter()
        .map(|o| convert(encoding, file, o))
        .collect()
}

fn symbol_kind(number: u32) -> SymbolKind {
    // The compiler speaks LSP's numbering; a number the type does not
    // name would be a compiler bug, shown as a plain object.
    serde_json::from_value(serde_json::Value::from(number)).unwrap_or(SymbolKind::OBJECT)
}

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TOKEN_TYPES
            .iter()
            .map(|t| SemanticTokenType::new(t))
            .collect(),
        token_modifiers: TOKEN_MODIFIERS
            .iter()
            .map(|m| SemanticTokenModifier::new(m))
            .collect(),
    }
}

/// Tokens of the whole document or of `range`, in LSP's relative encoding
/// (each token's line and start relative to the previous token's).
pub fn semantic_tokens(
    encoding: Encoding,
    file: &SourceFile,
    syntax: &Syntax,
    range: Option<Span>,
) -> Vec<SemanticToken> {
    let found = match range {
        Some(range) => tokens::semantic_tokens_in(file, syntax.workflow(), range),
        None => tokens::semantic_tokens(file, syntax.workflow()),
    };
    let mut out = Vec::with_capacity(found.len());
    let (mut line, mut column) = (0u32, 0u32);
    for token in found {
        let start = encoding.position(file, token.span.start);
        let end = encoding.position(file, token.span.end);
        if end.line != start.line || end.character <= start.character {
            continue;
        }
        let delta_line = start.line - line;
        let delta_start = if delta_line == 0 {
            start.character - column
        } else {
            start.character
        };
        out.push(SemanticToken {
            delta_line,
            delta_start,
            length: end.character - start.character,
            token_type: token.ty.legend_index(),
            token_modifiers_bitset: token.modifiers,
        });
        line = start.line;
        column = start.character;
    }
    out
}

/// The path the open-files map is keyed by: the one the symbol index uses.
pub fn key(path: &Path) -> std::path::PathBuf {
    donmai_compiler::ide::symbols::normalize(path)
}
