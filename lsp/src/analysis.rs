//! The analysis thread: runs the compiler on the open documents and keeps
//! the latest result of each.
//!
//! Edits arrive faster than a check may finish, so the thread drains its
//! queue before each round and analyses only the newest text of each
//! document; a result whose document moved on while it was computed is
//! kept for requests but never published (the newer version's result
//! follows). The compiler runs on a plain thread, not on the async
//! runtime, so protocol messages keep flowing during a check.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use donmai_compiler::check::GroupCache;
use donmai_compiler::driver::{finish_diagnostics, looks_like_workflow};
use donmai_compiler::ide::analysis::Analysis;
use donmai_compiler::ide::symbols::SymbolIndex;
use donmai_compiler::plugins::{LoadedPlugins, RegistryKey, load_registry, registry_key};
use donmai_compiler::project::{Project, ProjectCache};
use donmai_grammar::ast::Workflow;
use donmai_grammar::diagnostic::Edit;
use donmai_grammar::incremental::{ReplacedStep, edit_between, reparse_detailed, shift_offset};
use donmai_grammar::lower::{ParsedWorkflow, parse_workflow};
use donmai_grammar::{Diagnostic, SourceFile};
use donmai_stdlib::registry::Registry;
use tokio::sync::Notify;
use tower_lsp_server::ls_types::{self as lsp, Uri};

use crate::convert::Encoding;
use crate::documents::Documents;

/// One document's analysis at one version.
pub struct Snapshot {
    pub version: i32,
    pub source: Arc<SourceFile>,
    /// Exactly what `donmaic check` reports for this text.
    pub diagnostics: Vec<Diagnostic>,
    /// The checker's facts, for completion and hover; `None` when the text
    /// is not a workflow (an unrelated YAML file gets no diagnostics and no
    /// workflow features).
    pub analysis: Option<Arc<Analysis>>,
    pub project: Project,
    /// The symbol index, built on the first navigation request for this
    /// version (most versions never get one).
    syntax: OnceLock<Option<Arc<Syntax>>>,
}

/// A document's parsed workflow with its symbol index.
pub struct Syntax {
    pub analysis: Arc<Analysis>,
    pub index: SymbolIndex,
}

impl Syntax {
    pub fn workflow(&self) -> &Workflow {
        self.analysis
            .workflow()
            .expect("a Syntax is only built for a parsed workflow")
    }
}

impl Snapshot {
    pub fn is_workflow(&self) -> bool {
        self.analysis.is_some()
    }

    /// `None` when the text is not a workflow or its YAML does not parse:
    /// an index of an older text would give wrong positions.
    pub fn syntax(&self) -> Option<Arc<Syntax>> {
        self.syntax
            .get_or_init(|| {
                let analysis = self.analysis.clone()?;
                let index = SymbolIndex::new(&self.source, analysis.workflow()?);
                Some(Arc::new(Syntax { analysis, index }))
            })
            .clone()
    }
}

/// What the analysis thread is asked to do.
pub enum Job {
    /// A document was opened or edited.
    Changed(Uri),
    /// Something every document may depend on changed (`donmai.toml`, a
    /// plugin manifest, a group file on disk): forget the caches and
    /// re-analyse every open document.
    RecheckAll,
    Shutdown,
}

/// Diagnostics ready to be sent to the client, in the order computed.
pub struct Publish {
    pub uri: Uri,
    /// The document version the diagnostics are for; `None` for a file
    /// that is not a workflow being edited (`donmai.toml`, a manifest).
    pub version: Option<i32>,
    pub diagnostics: Vec<lsp::Diagnostic>,
}

/// State shared by the protocol handlers and the analysis thread.
pub struct Shared {
    pub documents: Mutex<Documents>,
    pub snapshots: Mutex<HashMap<Uri, Arc<Snapshot>>>,
    /// The newest analysis of each document whose YAML parsed: completion
    /// works from it while the text is momentarily broken mid-edit.
    pub last_parsed: Mutex<HashMap<Uri, Arc<Analysis>>>,
    /// Woken whenever a snapshot is stored.
    pub analysed: Notify,
    pub encoding: Mutex<Encoding>,
    /// Set by the `shutdown` request: an `exit` after it is a clean end.
    pub shutdown: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            documents: Mutex::new(Documents::default()),
            snapshots: Mutex::new(HashMap::new()),
            last_parsed: Mutex::new(HashMap::new()),
            analysed: Notify::new(),
            encoding: Mutex::new(Encoding::Utf16),
            shutdown: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn encoding(&self) -> Encoding {
        *lock(&self.encoding)
    }

    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn snapshot(&self, uri: &Uri) -> Option<Arc<Snapshot>> {
        lock(&self.snapshots).get(uri).cloned()
    }

    pub fn document_version(&self, uri: &Uri) -> Option<i32> {
        lock(&self.documents).get(uri).map(|d| d.version)
    }
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

/// A poisoned lock means a handler panicked; the data it guards is still
/// consistent (every mutation is a single assignment), so keep serving.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The path a document is checked as: its file path, or for an unsaved
/// buffer (`untitled:`) a path under the current directory, so relative
/// group references still resolve somewhere sensible.
pub fn document_path(uri: &Uri) -> PathBuf {
    match uri.to_file_path() {
        Some(path) => path.into_owned(),
        None => {
            let name: String = uri
                .as_str()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            std::env::current_dir().unwrap_or_default().join(name)
        }
    }
}

/// Caches that live across analyses until something they were read from
/// changes.
struct Caches {
    projects: ProjectCache,
    registries: HashMap<RegistryKey, Arc<LoadedPlugins>>,
    /// What `donmaic check` reports in the files around the workflows
    /// (`donmai.toml`, third-party plugin manifests), by path.
    project_files: BTreeMap<PathBuf, (Arc<SourceFile>, Vec<Diagnostic>)>,
    /// Group signatures, with the open documents standing in for their
    /// files: a workflow sees its groups as they are in the editor.
    groups: GroupCache,
    /// The newest text of each document whose YAML parsed, with that
    /// parse: the next edit re-parses only the step it touches.
    clean: HashMap<String, (String, ParsedWorkflow)>,
}

impl Caches {
    fn new(shared: &Shared) -> Caches {
        Caches {
            projects: ProjectCache::new(),
            registries: HashMap::new(),
            project_files: BTreeMap::new(),
            groups: GroupCache::with_overlays(open_texts(shared)),
            clean: HashMap::new(),
        }
    }

    fn project(&mut self, path: &Path) -> Project {
        let dir = path.parent().unwrap_or(Path::new("."));
        let project = self.projects.discover(dir).unwrap_or_default();
        if let Some(file) = project.manifest_file() {
            self.project_files.insert(
                file.path().to_path_buf(),
                (Arc::new(file.clone()), project.diagnostics().to_vec()),
            );
        }
        project
    }

    fn registry(&mut self, project: &Project) -> Arc<LoadedPlugins> {
        let loaded = self
            .registries
            .entry(registry_key(project))
            .or_insert_with(|| Arc::new(load_registry(project)))
            .clone();
        for report in &loaded.reports {
            if let Some(source) = &report.source {
                self.project_files.insert(
                    report.path.clone(),
                    (source.clone(), report.diagnostics.clone()),
                );
            }
        }
        loaded
    }
}

/// How a parse relates to the previous clean parse it was re-parsed from.
enum Derived {
    /// A full parse.
    Fresh,
    /// The edit from `old_text` moved only positions (a comment or white
    /// space).
    Moved { old_text: String, edit: Edit },
    /// The edit from `old_text` replaced one step; the rest only moved.
    StepReplaced {
        old_text: String,
        replaced: Box<ReplacedStep>,
    },
}

/// The parse of `text`: the previous clean parse of the document with only
/// the edited step re-parsed when the grammar can prove that equals a full
/// parse, else a full parse; and, when the edit moved only positions, what
/// it was re-parsed from, so an analysis of that text can be carried over.
/// The caller keeps a clean result as the next starting point with
/// [`remember_clean`], once its diagnostics are out.
fn parse_tracking_moves(
    clean: &mut HashMap<String, (String, ParsedWorkflow)>,
    uri: &Uri,
    text: &str,
) -> (ParsedWorkflow, Derived) {
    let key = uri.as_str().to_string();
    let parsed = match clean.remove(&key) {
        Some((old_text, old)) => {
            let edit = edit_between(&old_text, text);
            match reparse_detailed(&old_text, old, &edit, text) {
                Ok(reparsed) if reparsed.only_positions_moved => {
                    return (reparsed.parsed, Derived::Moved { old_text, edit });
                }
                Ok(reparsed) => match reparsed.replaced {
                    Some(replaced) => {
                        let derived = Derived::StepReplaced { old_text, replaced };
                        return (reparsed.parsed, derived);
                    }
                    None => reparsed.parsed,
                },
                Err(declined) => {
                    let parsed = parse_workflow(text);
                    if !is_clean(&parsed) {
                        // Mid-edit breakage: later edits start again from
                        // the last text that parsed.
                        clean.insert(key, (old_text, declined.parsed));
                        return (parsed, Derived::Fresh);
                    }
                    parsed
                }
            }
        }
        None => parse_workflow(text),
    };
    (parsed, Derived::Fresh)
}

/// Keeps `parsed`, the parse of `text`, as the document's starting point
/// for the next edit when its YAML parsed. Copying the tree takes about a
/// millisecond at 1,000 steps, so it happens after publishing.
fn remember_clean(
    clean: &mut HashMap<String, (String, ParsedWorkflow)>,
    uri: &Uri,
    text: &str,
    parsed: ParsedWorkflow,
) {
    if is_clean(&parsed) {
        clean.insert(uri.as_str().to_string(), (text.to_string(), parsed));
    }
}

fn is_clean(parsed: &ParsedWorkflow) -> bool {
    parsed.workflow.is_some()
        && !parsed
            .diagnostics
            .iter()
            .any(|d| d.code == donmai_grammar::Code::YAML_SYNTAX)
}

/// The open documents' texts by canonical path (documents that are not
/// files on disk cannot be groups).
fn open_texts(shared: &Shared) -> HashMap<PathBuf, String> {
    let documents = lock(&shared.documents);
    documents
        .uris()
        .into_iter()
        .filter_map(|uri| {
            let path = uri.to_file_path()?.canonicalize().ok()?;
            Some((path, documents.get(&uri)?.text.clone()))
        })
        .collect()
}

/// Analyses one text as `donmaic check` would, keeping the checker's facts.
/// `parsed`, when given, is the parse of `text`.
pub fn analyse(
    path: PathBuf,
    text: String,
    parsed: Option<ParsedWorkflow>,
    version: i32,
    project: Project,
    registry: &Registry,
    groups: &GroupCache,
) -> Snapshot {
    let source = SourceFile::new(path, text);
    if !looks_like_workflow(source.text().as_bytes()) {
        return Snapshot {
            version,
            source: Arc::new(source),
            diagnostics: Vec::new(),
            analysis: None,
            project,
            syntax: OnceLock::new(),
        };
    }
    let parsed = parsed.unwrap_or_else(|| parse_workflow(source.text()));
    let analysis = Analysis::from_parsed(&source, parsed, &project, registry, groups);
    snapshot_of(source, analysis, version, project)
}

/// What an analysis is made from, besides the parse.
enum From {
    Scratch,
    /// The previous analysis, to carry over past an edit that moved only
    /// positions.
    Carried(Arc<Analysis>, Edit),
    /// The previous analysis, to reuse past an edit that replaced a step.
    Edited(Arc<Analysis>, Box<ReplacedStep>),
}

/// The snapshot of a workflow's analysis: its diagnostics as published.
fn snapshot_of(source: SourceFile, analysis: Analysis, version: i32, project: Project) -> Snapshot {
    let raw = analysis.diagnostics().to_vec();
    let diagnostics = finish_diagnostics(&source, &project, raw);
    Snapshot {
        version,
        source: Arc::new(source),
        diagnostics,
        analysis: Some(Arc::new(analysis)),
        project,
        syntax: OnceLock::new(),
    }
}

/// A snapshot of `text` from the analysis of the text before `edit`, an
/// edit that moved only positions: no checking, the same conclusions.
fn carry_over(
    path: PathBuf,
    text: String,
    parsed: ParsedWorkflow,
    version: i32,
    project: Project,
    previous: &Analysis,
    edit: &Edit,
) -> Snapshot {
    let source = SourceFile::new(path, text);
    let analysis = previous.moved(&source, parsed.workflow, &|offset| {
        shift_offset(edit, offset)
    });
    let raw = analysis.diagnostics().to_vec();
    // Suppression comments are read from the new text: a comment edit may
    // add or remove one.
    let diagnostics = finish_diagnostics(&source, &project, raw);
    Snapshot {
        version,
        source: Arc::new(source),
        diagnostics,
        analysis: Some(Arc::new(analysis)),
        project,
        syntax: OnceLock::new(),
    }
}

/// The analysis thread's loop; returns on [`Job::Shutdown`] or when every
/// sender is gone.
pub fn run(
    shared: Arc<Shared>,
    jobs: Receiver<Job>,
    publish: tokio::sync::mpsc::UnboundedSender<Publish>,
) {
    let mut caches = Caches::new(&shared);
    // What was published for project files, kept across cache rebuilds so
    // that problems fixed since get cleared.
    let mut published: HashMap<PathBuf, Vec<lsp::Diagnostic>> = HashMap::new();
    loop {
        let Ok(first) = jobs.recv() else { return };
        let mut pending: BTreeSet<UriKey> = BTreeSet::new();
        let mut recheck_all = false;
        let mut next = Some(first);
        // Take everything queued so a burst of edits costs one analysis.
        while let Some(job) = next {
            match job {
                Job::Changed(uri) => {
                    pending.insert(UriKey(uri));
                }
                Job::RecheckAll => recheck_all = true,
                Job::Shutdown => return,
            }
            next = match jobs.recv_timeout(Duration::ZERO) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
        }
        if !recheck_all {
            // An edited document that a workflow uses as a group: every
            // signature computed from it is stale.
            for UriKey(uri) in &pending {
                let Some(path) = uri.to_file_path().and_then(|p| p.canonicalize().ok()) else {
                    continue;
                };
                if caches.groups.uses(&path) {
                    recheck_all = true;
                    break;
                }
                let text = lock(&shared.documents).get(uri).map(|d| d.text.clone());
                caches.groups.set_overlay(path, text);
            }
        }
        if recheck_all {
            caches = Caches::new(&shared);
            pending.extend(lock(&shared.documents).uris().into_iter().map(UriKey));
        }
        let analysed: Vec<Uri> = pending.into_iter().map(|UriKey(uri)| uri).collect();
        for uri in &analysed {
            analyse_one(&shared, &mut caches, uri, recheck_all, &publish);
        }
        publish_project_files(&shared, &caches, &analysed, &mut published, &publish);
    }
}

/// Publishes what `donmaic check` reports in `donmai.toml` and in
/// third-party plugin manifests, as diagnostics of those files: when they
/// changed since last published, or when the file was just analysed as a
/// document (which published none of them). A file whose problems are gone
/// gets an empty list.
fn publish_project_files(
    shared: &Shared,
    caches: &Caches,
    analysed: &[Uri],
    published: &mut HashMap<PathBuf, Vec<lsp::Diagnostic>>,
    publish: &tokio::sync::mpsc::UnboundedSender<Publish>,
) {
    let encoding = shared.encoding();
    let mut now: HashMap<PathBuf, (Uri, Vec<lsp::Diagnostic>)> = HashMap::new();
    for (path, (source, diagnostics)) in &caches.project_files {
        let Some(uri) = Uri::from_file_path(path) else {
            continue;
        };
        let converted = diagnostics
            .iter()
            .map(|d| encoding.diagnostic(source, &uri, d))
            .collect();
        now.insert(path.clone(), (uri, converted));
    }
    // Files reported before and clean now (or no longer read).
    for path in published.keys() {
        if !now.contains_key(path)
            && let Some(uri) = Uri::from_file_path(path)
        {
            now.insert(path.clone(), (uri, Vec::new()));
        }
    }
    for (path, (uri, diagnostics)) in now {
        let just_analysed = analysed.iter().any(|a| a == &uri);
        let changed = published.get(&path) != Some(&diagnostics);
        if !(changed || just_analysed) {
            continue;
        }
        if diagnostics.is_empty() {
            published.remove(&path);
        } else {
            published.insert(path, diagnostics.clone());
        }
        let _ = publish.send(Publish {
            uri,
            version: None,
            diagnostics,
        });
    }
}

fn analyse_one(
    shared: &Shared,
    caches: &mut Caches,
    uri: &Uri,
    force: bool,
    publish: &tokio::sync::mpsc::UnboundedSender<Publish>,
) {
    let Some(document) = lock(&shared.documents).get(uri).cloned() else {
        lock(&shared.snapshots).remove(uri);
        lock(&shared.last_parsed).remove(uri);
        caches.clean.remove(uri.as_str());
        return;
    };
    if !force
        && shared
            .snapshot(uri)
            .is_some_and(|s| s.version == document.version)
    {
        return;
    }
    let path = document_path(uri);
    let project = caches.project(&path);
    let loaded = caches.registry(&project);
    let registry = &loaded.registry;
    let (parsed, derived) = if looks_like_workflow(document.text.as_bytes()) {
        let (parsed, derived) = parse_tracking_moves(&mut caches.clean, uri, &document.text);
        (Some(parsed), derived)
    } else {
        (None, Derived::Fresh)
    };
    // The previous analysis, when it is of exactly the text the parse came
    // from. A forced re-check (the project, a plugin or a group changed)
    // starts from nothing.
    let previous = |old_text: &str| {
        let previous = shared.snapshot(uri).filter(|_| !force)?;
        let analysis = previous.analysis.clone()?;
        (previous.source.text() == old_text).then_some(analysis)
    };
    // An edit that moved only positions changes no conclusion of the
    // checker: the previous analysis is carried over with its offsets
    // moved. One that replaced a step re-checks what that step affects.
    let from = match derived {
        Derived::Fresh => From::Scratch,
        Derived::Moved { old_text, edit } => match previous(&old_text) {
            Some(analysis) => From::Carried(analysis, edit),
            None => From::Scratch,
        },
        Derived::StepReplaced { old_text, replaced } => match previous(&old_text) {
            Some(analysis) => From::Edited(analysis, replaced),
            None => From::Scratch,
        },
    };
    // What the next edit starts from: the parse's own diagnostics now, the
    // tree (which the analysis keeps) after publishing.
    let parse_diagnostics = parsed
        .as_ref()
        .filter(|p| is_clean(p))
        .map(|p| p.diagnostics.clone());
    let groups = &caches.groups;
    let snapshot = match (from, parsed) {
        (From::Carried(previous, edit), Some(parsed)) => carry_over(
            path,
            document.text,
            parsed,
            document.version,
            project,
            &previous,
            &edit,
        ),
        (From::Edited(previous, replaced), Some(parsed)) => {
            let source = SourceFile::new(path, document.text);
            let analysis = previous.edited(&source, parsed, &replaced, &project, registry, groups);
            snapshot_of(source, analysis, document.version, project)
        }
        (_, parsed) => analyse(
            path,
            document.text,
            parsed,
            document.version,
            project,
            registry,
            groups,
        ),
    };
    let encoding = shared.encoding();
    let diagnostics = snapshot
        .diagnostics
        .iter()
        .map(|d| encoding.diagnostic(&snapshot.source, uri, d))
        .collect();
    let version = snapshot.version;
    let snapshot = Arc::new(snapshot);
    // The results this one replaces are dropped after publishing: freeing
    // a large tree is not the editor's wait.
    let mut replaced = Vec::new();
    if let Some(analysis) = snapshot
        .analysis
        .as_ref()
        .filter(|a| a.workflow().is_some())
        && let Some(old) = lock(&shared.last_parsed).insert(uri.clone(), analysis.clone())
    {
        replaced.push(old);
    }
    let old_snapshot = lock(&shared.snapshots).insert(uri.clone(), snapshot.clone());
    shared.analysed.notify_waiters();
    // A newer text is queued: its own result will be published instead.
    if shared.document_version(uri) == Some(version) {
        let _ = publish.send(Publish {
            uri: uri.clone(),
            version: Some(version),
            diagnostics,
        });
    }
    drop(old_snapshot);
    drop(replaced);
    if let (Some(diagnostics), Some(workflow)) = (
        parse_diagnostics,
        snapshot.analysis.as_ref().and_then(|a| a.workflow()),
    ) {
        let parsed = ParsedWorkflow {
            workflow: Some(workflow.clone()),
            diagnostics,
        };
        remember_clean(&mut caches.clean, uri, snapshot.source.text(), parsed);
    }
}

/// `Uri` has no `Ord`; order pending documents by their text so a round
/// analyses them in a stable order.
#[derive(PartialEq, Eq)]
struct UriKey(Uri);

impl PartialOrd for UriKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UriKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_str().cmp(other.0.as_str())
    }
}

/// Starts the analysis thread.
pub fn spawn(
    shared: Arc<Shared>,
    publish: tokio::sync::mpsc::UnboundedSender<Publish>,
) -> std::io::Result<Sender<Job>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("donmai-analysis".into())
        .spawn(move || run(shared, receiver, publish))?;
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document as the server opens it: analysed, its parse kept as the
    /// next edit's starting point.
    fn opened(
        clean: &mut HashMap<String, (String, ParsedWorkflow)>,
        uri: &Uri,
        path: &Path,
        text: &str,
        project: &Project,
        groups: &GroupCache,
    ) -> Snapshot {
        let (parsed, _) = parse_tracking_moves(clean, uri, text);
        let snapshot = analysed_in_full(path, text, &parsed, project, groups);
        remember_clean(clean, uri, text, parsed);
        snapshot
    }

    /// What a check from scratch says of `text`, parsed as `parsed`.
    fn analysed_in_full(
        path: &Path,
        text: &str,
        parsed: &ParsedWorkflow,
        project: &Project,
        groups: &GroupCache,
    ) -> Snapshot {
        analyse(
            path.to_path_buf(),
            text.to_string(),
            Some(parsed.clone()),
            2,
            project.clone(),
            Registry::bundled(),
            groups,
        )
    }

    /// Comments and spaces typed into workflows with errors, warnings and
    /// suppressions: the carried-over snapshot says what a full analysis of
    /// the new text says.
    #[test]
    fn carried_over_analyses_equal_full_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files: Vec<PathBuf> = [
            "examples/linear-dev-loop.yaml",
            "examples/inbound-router.yaml",
        ]
        .iter()
        .map(|f| root.join(f))
        .collect();
        for dir in ["tests/corpus/err", "tests/corpus/ok"] {
            let mut names: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
                .expect("corpus")
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect();
            names.sort();
            files.extend(names);
        }
        let groups = GroupCache::default();
        let mut carried = 0;
        for path in files {
            let mut text = std::fs::read_to_string(&path).expect("read");
            let uri: Uri = format!("file://{}", path.display()).parse().expect("uri");
            let project = Project::default();
            let mut clean = HashMap::new();
            let mut snapshot = opened(&mut clean, &uri, &path, &text, &project, &groups);
            // Type a comment at the end of every third line, and a space.
            let ends: Vec<usize> = text
                .match_indices('\n')
                .map(|(i, _)| i)
                .step_by(3)
                .collect();
            for (n, end) in ends.into_iter().rev().enumerate() {
                let insert = if n % 2 == 0 { "  # typed" } else { " " };
                text.insert_str(end, insert);
                let (parsed, moved_from) = parse_tracking_moves(&mut clean, &uri, &text);
                let full = analysed_in_full(&path, &text, &parsed, &project, &groups);
                if let (Derived::Moved { old_text, edit }, Some(previous)) =
                    (moved_from, snapshot.analysis.clone())
                {
                    assert_eq!(old_text, snapshot.source.text());
                    let over = carry_over(
                        path.clone(),
                        text.clone(),
                        parsed.clone(),
                        2,
                        project.clone(),
                        &previous,
                        &edit,
                    );
                    assert_eq!(
                        over.diagnostics,
                        full.diagnostics,
                        "{} after {edit:?}",
                        path.display()
                    );
                    let (a, b) = (
                        over.analysis.as_ref().expect("a"),
                        full.analysis.as_ref().expect("b"),
                    );
                    assert_eq!(a.diagnostics(), b.diagnostics());
                    assert_eq!(format!("{:?}", a.workflow()), format!("{:?}", b.workflow()));
                    for offset in (0..text.len()).step_by(13) {
                        assert_eq!(
                            donmai_compiler::ide::hover::hover(a, offset),
                            donmai_compiler::ide::hover::hover(b, offset),
                            "hover at {offset} of {}",
                            path.display()
                        );
                    }
                    carried += 1;
                }
                remember_clean(&mut clean, &uri, &text, parsed);
                snapshot = full;
            }
        }
        assert!(carried > 50, "only {carried} edits were carried over");
    }

    /// Characters typed into every expression of the examples: the server
    /// re-checks only the edited step, and publishes what a full analysis
    /// of the new text says.
    #[test]
    fn edited_analyses_equal_full_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let registry = Registry::bundled();
        let groups = GroupCache::default();
        let mut reused = 0;
        for name in [
            "examples/linear-dev-loop.yaml",
            "examples/inbound-router.yaml",
        ] {
            let path = root.join(name);
            let mut text = std::fs::read_to_string(&path).expect("read");
            let uri: Uri = format!("file://{}", path.display()).parse().expect("uri");
            let project = Project::default();
            let mut clean = HashMap::new();
            let mut snapshot = opened(&mut clean, &uri, &path, &text, &project, &groups);
            let ats: Vec<usize> = text.match_indices("}}").map(|(i, _)| i).collect();
            for at in ats.into_iter().rev() {
                text.insert_str(at, "x ");
                let (parsed, derived) = parse_tracking_moves(&mut clean, &uri, &text);
                let full = analysed_in_full(&path, &text, &parsed, &project, &groups);
                let Derived::StepReplaced { old_text, replaced } = derived else {
                    // An expression outside the steps (an interface output).
                    remember_clean(&mut clean, &uri, &text, parsed);
                    snapshot = full;
                    continue;
                };
                assert_eq!(old_text, snapshot.source.text());
                let previous = snapshot.analysis.clone().expect("an analysis");
                let source = SourceFile::new(path.clone(), text.clone());
                let edit = replaced.edit.clone();
                let edited = previous.edited(
                    &source,
                    parsed.clone(),
                    &replaced,
                    &project,
                    registry,
                    &groups,
                );
                reused += usize::from(edited.reused_steps());
                let edited = snapshot_of(source, edited, 2, project.clone());
                assert_eq!(edited.diagnostics, full.diagnostics, "after {edit:?}");
                remember_clean(&mut clean, &uri, &text, parsed);
                snapshot = edited;
            }
        }
        assert!(reused > 10, "only {reused} edits reused the other steps");
    }

    /// Typing through a workflow, breaking and mending it, gives the parse
    /// a full parse gives after every keystroke.
    #[test]
    fn incremental_parses_equal_full_parses_while_typing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/linear-dev-loop.yaml");
        let mut text = std::fs::read_to_string(root).expect("example");
        let uri: Uri = "file:///w.yaml".parse().unwrap();
        let mut clean = HashMap::new();
        let anchor = text.find("{{").expect("an expression") + 2;
        let mut fast = 0;
        for (i, typed) in " nodes.x y z: - \" ' {{ }} # \n".chars().enumerate() {
            let at = anchor + i;
            text.insert(at, typed);
            let before = clean.contains_key(uri.as_str());
            let (incremental, _) = parse_tracking_moves(&mut clean, &uri, &text);
            remember_clean(&mut clean, &uri, &text, incremental.clone());
            let full = parse_workflow(&text);
            assert_eq!(
                format!("{incremental:?}"),
                format!("{full:?}"),
                "after typing {typed:?}"
            );
            fast += usize::from(before);
        }
        assert!(fast > 0);
    }
}
