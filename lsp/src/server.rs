//! The protocol handlers: what the server advertises and how each request
//! is answered from the latest analysis.

use std::collections::HashMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use crate::analysis::{Job, Shared, Snapshot, Syntax, document_path, lock};
use crate::convert::Encoding;
use crate::editing;
use crate::navigation::{self, OpenFiles};

/// How long a request waits for the analysis of the text it was sent
/// against before answering from the previous one.
const ANALYSIS_WAIT: Duration = Duration::from_secs(2);

pub struct Backend {
    client: Client,
    shared: Arc<Shared>,
    jobs: Mutex<Sender<Job>>,
    /// Whether the client lets us register file watchers.
    watches_files: std::sync::atomic::AtomicBool,
    /// Whether completion items may be snippets (`${1:value}`).
    snippets: std::sync::atomic::AtomicBool,
}

impl Backend {
    pub fn new(client: Client, shared: Arc<Shared>, jobs: Sender<Job>) -> Backend {
        Backend {
            client,
            shared,
            jobs: Mutex::new(jobs),
            watches_files: std::sync::atomic::AtomicBool::new(false),
            snippets: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn submit(&self, job: Job) {
        // The thread only stops at shutdown; later jobs have nobody to do them.
        let _ = lock(&self.jobs).send(job);
    }

    fn encoding(&self) -> Encoding {
        self.shared.encoding()
    }

    /// The analysis of the document's current text, waiting for it if an
    /// edit is still being analysed; `None` for a document that is not open.
    async fn current(&self, uri: &Uri) -> Option<Arc<Snapshot>> {
        let deadline = tokio::time::Instant::now() + ANALYSIS_WAIT;
        loop {
            let notified = self.shared.analysed.notified();
            let version = self.shared.document_version(uri)?;
            let snapshot = self.shared.snapshot(uri);
            if snapshot.as_ref().is_some_and(|s| s.version == version) {
                return snapshot;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return snapshot;
            }
        }
    }

    /// The current analysis of `uri` with its syntax and the byte offset of
    /// `position`; `None` (an empty answer) when the document is not open,
    /// is not a workflow, does not parse, the analysis is behind the text,
    /// or the position lies past the end of the document.
    async fn at(
        &self,
        uri: &Uri,
        position: Position,
    ) -> Option<(Arc<Snapshot>, Arc<Syntax>, usize)> {
        let snapshot = self.current(uri).await?;
        if Some(snapshot.version) != self.shared.document_version(uri) {
            return None;
        }
        let encoding = self.encoding();
        if !encoding.is_inside(&snapshot.source, position) {
            return None;
        }
        let offset = encoding.offset(&snapshot.source, position);
        let syntax = syntax_of(snapshot.clone()).await?;
        Some((snapshot, syntax, offset))
    }

    /// The current analysis of a whole document with its syntax.
    async fn whole(&self, uri: &Uri) -> Option<(Arc<Snapshot>, Arc<Syntax>)> {
        let snapshot = self.current(uri).await?;
        if Some(snapshot.version) != self.shared.document_version(uri) {
            return None;
        }
        let syntax = syntax_of(snapshot.clone()).await?;
        Some((snapshot, syntax))
    }

    /// The other open workflows, parsed, for references across files.
    async fn open_files(&self, except: &Uri) -> OpenFiles {
        let snapshots: Vec<(Uri, Arc<Snapshot>)> = lock(&self.shared.snapshots)
            .iter()
            .filter(|(uri, _)| *uri != except)
            .map(|(uri, s)| (uri.clone(), s.clone()))
            .collect();
        let mut by_path = std::collections::HashMap::new();
        for (uri, snapshot) in snapshots {
            if let Some(syntax) = syntax_of(snapshot.clone()).await {
                by_path.insert(
                    navigation::key(&document_path(&uri)),
                    (uri, snapshot, syntax),
                );
            }
        }
        OpenFiles { by_path }
    }

    /// Every machine-applicable fix at once, as `donmaic check --fix`
    /// applies them in one round.
    fn fix_all(&self, uri: &Uri, snapshot: &Snapshot) -> Option<CodeAction> {
        let file = &snapshot.source;
        let (edits, count) = donmai_compiler::fix::select_edits(
            file.text(),
            snapshot.diagnostics.iter().filter_map(|d| d.fix.as_ref()),
        );
        if count == 0 {
            return None;
        }
        let encoding = self.encoding();
        let edits = edits.iter().map(|e| encoding.text_edit(file, e)).collect();
        Some(CodeAction {
            title: format!("Apply every donmai fix ({count})"),
            kind: Some(CodeActionKind::SOURCE_FIX_ALL),
            edit: Some(WorkspaceEdit {
                changes: Some(HashMap::from([(uri.clone(), edits)])),
                ..WorkspaceEdit::default()
            }),
            ..CodeAction::default()
        })
    }

    fn quick_fixes(
        &self,
        uri: &Uri,
        snapshot: &Snapshot,
        range: Range,
    ) -> Vec<CodeActionOrCommand> {
        let encoding = self.encoding();
        let file = &snapshot.source;
        let wanted = encoding.span(file, range);
        let action = |d: &donmai_grammar::Diagnostic,
                      fix: &donmai_grammar::diagnostic::Fix,
                      preferred: bool| {
            let edits = fix
                .edits
                .iter()
                .map(|e| encoding.text_edit(file, e))
                .collect();
            CodeActionOrCommand::CodeAction(CodeAction {
                title: fix.message.clone(),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![encoding.diagnostic(file, uri, d)]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), edits)])),
                    ..WorkspaceEdit::default()
                }),
                is_preferred: Some(preferred),
                ..CodeAction::default()
            })
        };
        let mut actions = Vec::new();
        for d in snapshot
            .diagnostics
            .iter()
            .filter(|d| d.span.start <= wanted.end && wanted.start <= d.span.end)
        {
            // The machine-applicable fix is the preferred one; suggestions
            // leave placeholders for the author.
            actions.extend(d.fix.iter().map(|fix| action(d, fix, true)));
            actions.extend(d.suggestions.iter().map(|fix| action(d, fix, false)));
        }
        actions
    }
}

/// Parses off the protocol thread: a large file takes milliseconds.
async fn syntax_of(snapshot: Arc<Snapshot>) -> Option<Arc<Syntax>> {
    tokio::task::spawn_blocking(move || snapshot.syntax())
        .await
        .ok()
        .flatten()
}

fn watched_files() -> Registration {
    let watchers = ["**/donmai.toml", "**/plugin.yaml", "**/*.yaml", "**/*.yml"]
        .into_iter()
        .map(|glob| FileSystemWatcher {
            glob_pattern: GlobPattern::String(glob.to_string()),
            kind: None,
        })
        .collect();
    Registration {
        id: "donmai-watched-files".to_string(),
        method: "workspace/didChangeWatchedFiles".to_string(),
        register_options: serde_json::to_value(DidChangeWatchedFilesRegistrationOptions {
            watchers,
        })
        .ok(),
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let encoding = Encoding::negotiate(
            params
                .capabilities
                .general
                .as_ref()
                .and_then(|g| g.position_encodings.as_deref()),
        );
        *lock(&self.shared.encoding) = encoding;
        let watches = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|w| w.did_change_watched_files.as_ref())
            .and_then(|w| w.dynamic_registration)
            .unwrap_or(false);
        self.watches_files
            .store(watches, std::sync::atomic::Ordering::Relaxed);
        let snippets = params
            .capabilities
            .text_document
            .as_ref()
            .and_then(|t| t.completion.as_ref())
            .and_then(|c| c.completion_item.as_ref())
            .and_then(|i| i.snippet_support)
            .unwrap_or(false);
        self.snippets
            .store(snippets, std::sync::atomic::Ordering::Relaxed);
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(encoding.kind()),
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::INCREMENTAL),
                        save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                        ..TextDocumentSyncOptions::default()
                    },
                )),
                code_action_provider: Some(CodeActionProviderCapability::Options(
                    CodeActionOptions {
                        code_action_kinds: Some(vec![
                            CodeActionKind::QUICKFIX,
                            CodeActionKind::SOURCE_FIX_ALL,
                            CodeActionKind::new("refactor.rewrite.migrate"),
                        ]),
                        ..CodeActionOptions::default()
                    },
                )),
                completion_provider: Some(CompletionOptions {
                    // `.` opens fields, `{` a template, `:` a value, `-` an item.
                    trigger_characters: Some([".", "{", ":", " ", "-"].map(String::from).to_vec()),
                    // A verb's or step's full text is sent for the item shown.
                    resolve_provider: Some(true),
                    ..CompletionOptions::default()
                }),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                document_formatting_provider: Some(OneOf::Left(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                document_highlight_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Right(RenameOptions {
                    prepare_provider: Some(true),
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                })),
                document_symbol_provider: Some(OneOf::Left(true)),
                semantic_tokens_provider: Some(
                    SemanticTokensServerCapabilities::SemanticTokensOptions(
                        SemanticTokensOptions {
                            legend: navigation::legend(),
                            range: Some(true),
                            full: Some(SemanticTokensFullOptions::Bool(true)),
                            work_done_progress_options: WorkDoneProgressOptions::default(),
                        },
                    ),
                ),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "donmai-lsp".to_string(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        // Clients without dynamic registration get re-checks on save only.
        if self
            .watches_files
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let _ = self.client.register_capability(vec![watched_files()]).await;
        }
    }

    async fn shutdown(&self) -> Result<()> {
        self.shared
            .shutdown
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.submit(Job::Shutdown);
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let document = params.text_document;
        lock(&self.shared.documents).open(document.uri.clone(), document.text, document.version);
        self.submit(Job::Changed(document.uri));
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        let changed = lock(&self.shared.documents).change(
            &uri,
            params.text_document.version,
            params.content_changes,
            self.encoding(),
        );
        if changed {
            self.submit(Job::Changed(uri));
        }
    }

    async fn did_save(&self, _: DidSaveTextDocumentParams) {
        // The saved file may be a group another open workflow uses.
        self.submit(Job::RecheckAll);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        lock(&self.shared.documents).close(&uri);
        lock(&self.shared.snapshots).remove(&uri);
        lock(&self.shared.last_parsed).remove(&uri);
        // Workflows using it as a group now read the file on disk.
        self.submit(Job::Changed(uri.clone()));
        // Diagnostics of a closed file would linger in the problems view.
        self.client.publish_diagnostics(uri, Vec::new(), None).await;
    }

    async fn did_change_watched_files(&self, _: DidChangeWatchedFilesParams) {
        self.submit(Job::RecheckAll);
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        let Some(snapshot) = self.current(&uri).await else {
            return Ok(None);
        };
        if snapshot.version
            != self
                .shared
                .document_version(&uri)
                .unwrap_or(snapshot.version)
        {
            // Edits computed on an older text would land in the wrong place.
            return Ok(None);
        }
        let mut actions = self.quick_fixes(&uri, &snapshot, params.range);
        let wanted = |kind: &CodeActionKind| {
            params.context.only.as_ref().is_none_or(|only| {
                only.iter().any(|o| {
                    kind.as_str() == o.as_str()
                        || kind.as_str().starts_with(&format!("{}.", o.as_str()))
                })
            })
        };
        if let Some(fix_all) = self
            .fix_all(&uri, &snapshot)
            .filter(|a| a.kind.as_ref().is_some_and(wanted))
        {
            actions.push(CodeActionOrCommand::CodeAction(fix_all));
        }
        if snapshot.is_workflow() {
            let migrate_kind = CodeActionKind::new("refactor.rewrite.migrate");
            if wanted(&migrate_kind) {
                let source = snapshot.source.clone();
                let encoding = self.encoding();
                let uri2 = uri.clone();
                let migrate = tokio::task::spawn_blocking(move || {
                    editing::migrate_action(encoding, &uri2, &source)
                })
                .await
                .ok()
                .flatten();
                actions.extend(migrate.map(CodeActionOrCommand::CodeAction));
            }
        }
        if params.context.only.is_some() {
            actions.retain(|a| match a {
                CodeActionOrCommand::CodeAction(a) => a.kind.as_ref().is_some_and(wanted),
                CodeActionOrCommand::Command(_) => false,
            });
        }
        Ok(Some(actions))
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let at = params.text_document_position;
        let uri = at.text_document.uri;
        let Some(version) = self.shared.document_version(&uri) else {
            return Ok(None);
        };
        let Some(analysis) = lock(&self.shared.last_parsed).get(&uri).cloned() else {
            return Ok(None);
        };
        // The analysed text when it is current (its line index is built
        // already); else a copy of the live text, which completion reads.
        let current = match self.shared.snapshot(&uri) {
            Some(snapshot) if snapshot.version == version => snapshot.source.clone(),
            _ => {
                let Some(document) = lock(&self.shared.documents).get(&uri).cloned() else {
                    return Ok(None);
                };
                Arc::new(donmai_grammar::SourceFile::new(
                    document_path(&uri),
                    document.text,
                ))
            }
        };
        let encoding = self.encoding();
        let snippets = self.snippets.load(std::sync::atomic::Ordering::Relaxed);
        let answer = tokio::task::spawn_blocking(move || {
            if !encoding.is_inside(&current, at.position) {
                return None;
            }
            let offset = encoding.offset(&current, at.position);
            Some(editing::completion(
                encoding, &uri, &analysis, &current, offset, snippets,
            ))
        })
        .await
        .ok()
        .flatten();
        Ok(answer)
    }

    async fn completion_resolve(&self, item: CompletionItem) -> Result<CompletionItem> {
        let uri = item
            .data
            .as_ref()
            .and_then(editing::deferred_request)
            .and_then(|(uri, _)| uri.parse::<Uri>().ok());
        let analysis = uri.and_then(|uri| {
            self.shared
                .snapshot(&uri)
                .and_then(|s| s.analysis.clone())
                .or_else(|| lock(&self.shared.last_parsed).get(&uri).cloned())
        });
        Ok(editing::resolve_completion(item, analysis.as_deref()))
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let at = params.text_document_position_params;
        let Some((snapshot, _, offset)) = self.at(&at.text_document.uri, at.position).await else {
            return Ok(None);
        };
        let Some(analysis) = snapshot.analysis.clone() else {
            return Ok(None);
        };
        Ok(editing::hover(self.encoding(), &analysis, offset))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let uri = params.text_document.uri;
        let Some(document) = lock(&self.shared.documents).get(&uri).cloned() else {
            return Ok(None);
        };
        let encoding = self.encoding();
        let formatted = tokio::task::spawn_blocking(move || {
            let file = donmai_grammar::SourceFile::new(document_path(&uri), document.text);
            if !donmai_compiler::driver::looks_like_workflow(file.text().as_bytes()) {
                return Ok(None);
            }
            editing::formatting(encoding, &file).map(Some)
        })
        .await
        .unwrap_or(Ok(None));
        formatted.map_err(|message| tower_lsp_server::jsonrpc::Error {
            code: tower_lsp_server::jsonrpc::ErrorCode::InvalidRequest,
            message: format!("cannot format: {message}").into(),
            data: None,
        })
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let at = params.text_document_position_params;
        let Some((_, syntax, offset)) = self.at(&at.text_document.uri, at.position).await else {
            return Ok(None);
        };
        let open = self.open_files(&at.text_document.uri).await;
        Ok(navigation::definition(
            self.encoding(),
            &syntax,
            offset,
            &open,
        ))
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let at = params.text_document_position;
        let Some((snapshot, syntax, offset)) = self.at(&at.text_document.uri, at.position).await
        else {
            return Ok(None);
        };
        let mut open = self.open_files(&at.text_document.uri).await;
        // This document too, so its own references map through its text.
        open.by_path.insert(
            navigation::key(&document_path(&at.text_document.uri)),
            (at.text_document.uri.clone(), snapshot, syntax.clone()),
        );
        Ok(Some(navigation::references(
            self.encoding(),
            &syntax,
            offset,
            params.context.include_declaration,
            &open,
        )))
    }

    async fn document_highlight(
        &self,
        params: DocumentHighlightParams,
    ) -> Result<Option<Vec<DocumentHighlight>>> {
        let at = params.text_document_position_params;
        let Some((snapshot, syntax, offset)) = self.at(&at.text_document.uri, at.position).await
        else {
            return Ok(None);
        };
        Ok(Some(navigation::highlights(
            self.encoding(),
            &snapshot.source,
            &syntax,
            offset,
        )))
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        let Some((snapshot, syntax, offset)) =
            self.at(&params.text_document.uri, params.position).await
        else {
            return Ok(None);
        };
        Ok(navigation::prepare_rename(
            self.encoding(),
            &snapshot.source,
            &syntax,
            offset,
        ))
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let at = params.text_document_position;
        let Some((snapshot, syntax, offset)) = self.at(&at.text_document.uri, at.position).await
        else {
            return Ok(None);
        };
        navigation::rename(
            self.encoding(),
            &at.text_document.uri,
            &snapshot.source,
            &syntax,
            offset,
            &params.new_name,
        )
        .map(Some)
        .map_err(|message| tower_lsp_server::jsonrpc::Error {
            code: tower_lsp_server::jsonrpc::ErrorCode::InvalidParams,
            message: message.into(),
            data: None,
        })
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let Some((snapshot, syntax)) = self.whole(&params.text_document.uri).await else {
            return Ok(None);
        };
        Ok(Some(DocumentSymbolResponse::Nested(
            navigation::document_symbols(self.encoding(), &snapshot.source, &syntax),
        )))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        let Some((snapshot, syntax)) = self.whole(&params.text_document.uri).await else {
            return Ok(None);
        };
        let data = navigation::semantic_tokens(self.encoding(), &snapshot.source, &syntax, None);
        Ok(Some(SemanticTokensResult::Tokens(SemanticTokens {
            result_id: None,
            data,
        })))
    }

    async fn semantic_tokens_range(
        &self,
        params: SemanticTokensRangeParams,
    ) -> Result<Option<SemanticTokensRangeResult>> {
        let Some((snapshot, syntax)) = self.whole(&params.text_document.uri).await else {
            return Ok(None);
        };
        let range = self.encoding().span(&snapshot.source, params.range);
        let data =
            navigation::semantic_tokens(self.encoding(), &snapshot.source, &syntax, Some(range));
        Ok(Some(SemanticTokensRangeResult::Tokens(SemanticTokens {
            result_id: None,
            data,
        })))
    }
}
