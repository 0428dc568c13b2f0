//! Completion, hover, formatting and the v1 → v2 migration action: the
//! compiler's answers (`ide::complete`, `ide::hover`, `fmt`, `migrate`) in
//! LSP form.

use std::collections::HashMap;

use donmai_compiler::ide::analysis::Analysis;
use donmai_compiler::ide::complete::{self, CompletionKind as Kind};
use donmai_compiler::ide::hover;
use donmai_compiler::{fmt, migrate};
use donmai_grammar::SourceFile;
use tower_lsp_server::ls_types::*;

use crate::convert::Encoding;

fn item_kind(kind: Kind) -> CompletionItemKind {
    match kind {
        Kind::Key | Kind::Input => CompletionItemKind::PROPERTY,
        Kind::Field => CompletionItemKind::FIELD,
        Kind::Step => CompletionItemKind::REFERENCE,
        Kind::Trigger | Kind::Event => CompletionItemKind::EVENT,
        Kind::Verb | Kind::Function => CompletionItemKind::FUNCTION,
        Kind::Plugin => CompletionItemKind::MODULE,
        Kind::Handle | Kind::EnumMember => CompletionItemKind::ENUM_MEMBER,
        Kind::Variable => CompletionItemKind::VARIABLE,
        Kind::Method => CompletionItemKind::METHOD,
        Kind::Keyword => CompletionItemKind::KEYWORD,
    }
}

/// Completions at `offset` of `current` (the document as it is now) from
/// `analysis`, which may be of a slightly older text.
pub fn completion(
    encoding: Encoding,
    uri: &Uri,
    analysis: &Analysis,
    current: &SourceFile,
    offset: usize,
    snippets: bool,
) -> CompletionResponse {
    let mut all: Vec<complete::Completion> = complete::complete(analysis, current.text(), offset)
        .into_iter()
        .filter(|c| snippets || !c.snippet)
        .collect();
    // A long list (every step upstream of a step deep in a large workflow)
    // is cut to the best matches of what is typed, nearest first, and
    // marked incomplete, so the editor asks again as the word grows.
    let is_incomplete = all.len() > COMPLETION_LIMIT;
    if is_incomplete {
        let typed = all
            .first()
            .and_then(|c| current.text().get(c.range.start..offset.min(c.range.end)))
            .unwrap_or("")
            .to_lowercase();
        all.retain(|c| matches_typed(c.filter_text.as_deref().unwrap_or(&c.label), &typed));
        all.truncate(COMPLETION_LIMIT);
    }
    let items = all
        .into_iter()
        .map(|c| {
            let range = encoding.range(current, c.range);
            // Long texts wait for `completionItem/resolve`; `data` says
            // what to build them from.
            let (documentation, data) = match c.documentation {
                Some(complete::Documentation::Text(value)) => (Some(markdown(value)), None),
                Some(deferred) => (None, Some(deferred_data(uri, &deferred))),
                None => (None, None),
            };
            CompletionItem {
                label: c.label,
                kind: Some(item_kind(c.kind)),
                detail: c.detail,
                documentation,
                data,
                tags: c.deprecated.then(|| vec![CompletionItemTag::DEPRECATED]),
                sort_text: Some(c.sort_key),
                filter_text: c.filter_text,
                insert_text_format: Some(if c.snippet {
                    InsertTextFormat::SNIPPET
                } else {
                    InsertTextFormat::PLAIN_TEXT
                }),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                    range,
                    new_text: c.insert_text,
                })),
                ..CompletionItem::default()
            }
        })
        .collect();
    // The list depends on every character typed: ask again as the word grows.
    CompletionResponse::List(CompletionList {
        is_incomplete,
        items,
    })
}

/// The most items one completion answer carries; see [`completion`].
pub const COMPLETION_LIMIT: usize = 100;

/// Whether `candidate` holds the characters of `typed` in order, ignoring
/// case: the loose match editors filter completion lists with.
fn matches_typed(candidate: &str, typed: &str) -> bool {
    let mut wanted = typed.chars().peekable();
    for c in candidate.chars().flat_map(char::to_lowercase) {
        if wanted.peek() == Some(&c) {
            wanted.next();
        }
    }
    wanted.peek().is_none()
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

fn deferred_data(uri: &Uri, documentation: &complete::Documentation) -> serde_json::Value {
    match documentation {
        complete::Documentation::Step(id) => serde_json::json!({ "uri": uri.as_str(), "step": id }),
        complete::Documentation::Verb(pin) => {
            serde_json::json!({ "uri": uri.as_str(), "verb": pin })
        }
        complete::Documentation::Text(text) => {
            serde_json::json!({ "uri": uri.as_str(), "text": text })
        }
        complete::Documentation::Node { id, always_runs } => {
            serde_json::json!({ "uri": uri.as_str(), "node": id, "always": always_runs })
        }
    }
}

/// The document a resolve request is about and what to render, from the
/// `data` [`completion`] attached; `None` for anything else a client sends.
pub fn deferred_request(data: &serde_json::Value) -> Option<(String, complete::Documentation)> {
    let uri = data.get("uri")?.as_str()?.to_string();
    let text = |key: &str| data.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let documentation = if let Some(id) = text("step") {
        complete::Documentation::Step(id)
    } else if let Some(id) = text("node") {
        complete::Documentation::Node {
            id,
            always_runs: data.get("always").and_then(|v| v.as_bool()).unwrap_or(true),
        }
    } else if let Some(pin) = text("verb") {
        complete::Documentation::Verb(pin)
    } else {
        complete::Documentation::Text(text("text")?)
    };
    Some((uri, documentation))
}

/// Fills in the documentation of `item` from `analysis`, the latest of its
/// document; an item whose step or verb is gone stays as it is.
pub fn resolve_completion(mut item: CompletionItem, analysis: Option<&Analysis>) -> CompletionItem {
    if item.documentation.is_none()
        && let Some((_, documentation)) = item.data.as_ref().and_then(deferred_request)
        && let Some(analysis) = analysis
        && let Some(value) = documentation.render(analysis)
    {
        item.documentation = Some(markdown(value));
    }
    item
}

pub fn hover(encoding: Encoding, analysis: &Analysis, offset: usize) -> Option<Hover> {
    let found = hover::hover(analysis, offset)?;
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: found.markdown,
        }),
        range: Some(encoding.range(analysis.file(), found.range)),
    })
}

/// `donmaic fmt` as edits of the changed lines; an error (a file whose
/// YAML does not parse is never reformatted) carries its position.
pub fn formatting(encoding: Encoding, file: &SourceFile) -> Result<Vec<TextEdit>, String> {
    let edits = fmt::format_edits(file.text()).map_err(|e| e.to_string())?;
    Ok(edits.iter().map(|e| encoding.text_edit(file, e)).collect())
}

/// "Migrate this workflow to v2" for a `workflow/v1` file: the same edits
/// as `donmaic migrate`.
pub fn migrate_action(encoding: Encoding, uri: &Uri, file: &SourceFile) -> Option<CodeAction> {
    let outcome = migrate::migrate_v1_to_v2(file.text()).ok()?;
    if !outcome.changed() {
        return None;
    }
    let summary: Vec<String> = outcome
        .counts()
        .into_iter()
        .map(|(kind, count)| format!("{kind} ×{count}"))
        .collect();
    let edits = outcome
        .edits
        .iter()
        .map(|e| encoding.text_edit(file, e))
        .collect();
    Some(CodeAction {
        title: format!("Migrate to workflow/v2 ({})", summary.join(", ")),
        kind: Some(CodeActionKind::new("refactor.rewrite.migrate")),
        edit: Some(WorkspaceEdit {
            changes: Some(HashMap::from([(uri.clone(), edits)])),
            ..WorkspaceEdit::default()
        }),
        ..CodeAction::default()
    })
}
