//! The set of loaded plugins, and the lookups the compiler and the LSP make.
//!
//! The bundled plugins are embedded at build time (the [`BUNDLED`] table is
//! the one place that lists them). Each plugin major, one YAML document of
//! its manifest, is parsed the first time a lookup needs it: parsing every
//! bundled manifest took most of a single-file check. Third-party plugins
//! come from `<dir>/<plugin>/plugin.yaml` under the plugin directories a
//! project names (by default `.donmai/plugins/`), and are parsed at once.

use crate::manifest::{
    EventType, FIRST_PARTY_PLUGIN, Plugin, PluginOrigin, Verb, parse_plugin, plugin_name_error,
    verb_id_error, verb_owner,
};
use crate::yaml_json::{SpanTable, StaticSpan, document_to_json};
use donmai_grammar::codes::Code;
use donmai_grammar::diagnostic::{Diagnostic, did_you_mean};
use donmai_grammar::span::{SourceFile, Span};
use donmai_grammar::yaml::{Node, NodeKind};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The bundled manifests: (plugin directory, manifest text).
pub const BUNDLED: &[(&str, &str)] = &[
    ("core", include_str!("../plugins/core/plugin.yaml")),
    ("donmai", include_str!("../plugins/donmai/plugin.yaml")),
    ("linear", include_str!("../plugins/linear/plugin.yaml")),
    ("github", include_str!("../plugins/github/plugin.yaml")),
    ("vercel", include_str!("../plugins/vercel/plugin.yaml")),
    ("slack", include_str!("../plugins/slack/plugin.yaml")),
    (
        "github_issues",
        include_str!("../plugins/github_issues/plugin.yaml"),
    ),
    ("jira", include_str!("../plugins/jira/plugin.yaml")),
    ("asana", include_str!("../plugins/asana/plugin.yaml")),
    (
        "incident_io",
        include_str!("../plugins/incident_io/plugin.yaml"),
    ),
];

/// The majors each bundled manifest defines, one per YAML document in
/// order, so that a lookup parses only the document it needs. A test keeps
/// this in step with the manifests; a manifest that disagrees with it at run
/// time is parsed whole instead.
const BUNDLED_MAJORS: &[(&str, &[u32])] = &[
    ("core", &[1]),
    ("donmai", &[1, 2]),
    ("linear", &[1, 2]),
    ("github", &[1]),
    ("vercel", &[1]),
    ("slack", &[1]),
    ("github_issues", &[1]),
    ("jira", &[1]),
    ("asana", &[1]),
    ("incident_io", &[1]),
];

/// The file name a plugin directory holds its manifest in.
pub const MANIFEST_FILE: &str = "plugin.yaml";

/// `plugin@major:verb`, the way a workflow's `config.action` names a verb.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VerbRef {
    pub plugin: String,
    pub major: u32,
    pub verb: String,
}

impl VerbRef {
    /// Parses and checks a reference, including that the pinned plugin owns
    /// the verb's namespace. The error is a complete sentence for the user.
    pub fn parse(text: &str) -> Result<VerbRef, String> {
        if text.is_empty() {
            return Err("the verb reference is empty: write `<plugin>@<major>:<verb>`".into());
        }
        let Some((pin, verb)) = text.split_once(':') else {
            return Err(match text.split_once('@') {
                Some((plugin, _)) => format!(
                    "`{text}` has no `:` between the pin and the verb id: write `{plugin}@<major>:<verb>`"
                ),
                None if verb_id_error(text).is_none() => format!(
                    "`{text}` does not pin its plugin: write `{}@<major>:{text}`",
                    verb_owner(text)
                ),
                None => {
                    format!("`{text}` is not a verb reference: write `<plugin>@<major>:<verb>`")
                }
            });
        };
        let Some((plugin, major)) = pin.split_once('@') else {
            return Err(format!(
                "`{text}` does not pin a major: write `{pin}@<major>:{verb}`"
            ));
        };
        if plugin.is_empty() {
            return Err(format!("`{text}` names no plugin before `@`"));
        }
        if let Some(problem) = plugin_name_error(plugin) {
            return Err(problem);
        }
        let major = parse_major(major).ok_or_else(|| {
            format!("`{major}` in `{text}` is not a major version: write a whole number such as `{plugin}@1`")
        })?;
        if verb.is_empty() {
            return Err(format!("`{text}` names no verb after `:`"));
        }
        if let Some(problem) = verb_id_error(verb) {
            return Err(problem);
        }
        let owner = verb_owner(verb);
        if owner != plugin {
            let note = if owner == FIRST_PARTY_PLUGIN && !verb.starts_with("donmai.") {
                format!(
                    " (the `{}` namespace is donmai's)",
                    verb.split('.').next().unwrap_or(verb)
                )
            } else {
                String::new()
            };
            return Err(format!(
                "verb `{verb}` belongs to plugin `{owner}`{note}, not `{plugin}`: write `{owner}@<major>:{verb}`"
            ));
        }
        Ok(VerbRef {
            plugin: plugin.to_string(),
            major,
            verb: verb.to_string(),
        })
    }
}

fn parse_major(text: &str) -> Option<u32> {
    let canonical = text == "0" || !text.starts_with('0');
    if text.is_empty() || !canonical || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for VerbRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.plugin, self.major, self.verb)
    }
}

/// Why a [`VerbRef`] did not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// No plugin of that name at that major; `majors` lists the ones loaded.
    PluginNotInstalled {
        plugin: String,
        major: u32,
        majors: Vec<u32>,
    },
    /// The plugin is loaded but has no such verb.
    UnknownVerb {
        pin: String,
        verb: String,
        suggestion: Option<String>,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::PluginNotInstalled {
                plugin,
                major,
                majors,
            } if majors.is_empty() => {
                write!(
                    f,
                    "plugin `{plugin}` is not installed (wanted `{plugin}@{major}`)"
                )
            }
            ResolveError::PluginNotInstalled {
                plugin,
                major,
                majors,
            } => {
                let list: Vec<String> = majors.iter().map(|m| format!("`{plugin}@{m}`")).collect();
                write!(
                    f,
                    "`{plugin}@{major}` is not installed; installed: {}",
                    list.join(", ")
                )
            }
            ResolveError::UnknownVerb {
                pin,
                verb,
                suggestion: Some(s),
            } => {
                write!(f, "`{pin}` has no verb `{verb}`; did you mean `{s}`?")
            }
            ResolveError::UnknownVerb {
                pin,
                verb,
                suggestion: None,
            } => {
                write!(f, "`{pin}` has no verb `{verb}`")
            }
        }
    }
}

/// The diagnostics of one manifest file.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub path: PathBuf,
    /// `None` when the file could not be read.
    pub source: Option<Arc<SourceFile>>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The loaded plugins, one entry per `name@major`.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// Sorted by (name, major).
    plugins: Vec<Slot>,
}

/// One plugin major of a registry.
#[derive(Clone, Debug)]
enum Slot {
    Loaded(Arc<Plugin>),
    /// A bundled plugin major, parsed on first use.
    Bundled(&'static BundledDocument),
}

impl Slot {
    fn name(&self) -> &str {
        match self {
            Slot::Loaded(plugin) => &plugin.name,
            Slot::Bundled(document) => document.name,
        }
    }

    fn major(&self) -> u32 {
        match self {
            Slot::Loaded(plugin) => plugin.major(),
            Slot::Bundled(document) => document.major,
        }
    }

    /// The plugin, parsing it if needed; `None` only if a bundled document
    /// does not hold the plugin major [`BUNDLED_MAJORS`] says it does.
    fn get(&self) -> Option<&Plugin> {
        match self {
            Slot::Loaded(plugin) => Some(plugin),
            Slot::Bundled(document) => document.plugin(),
        }
    }
}

/// One document of a bundled manifest: one plugin major.
#[derive(Debug)]
struct BundledDocument {
    /// The manifest's directory, which is its plugin's name.
    name: &'static str,
    major: u32,
    /// The whole manifest, so that spans point into the file.
    text: &'static str,
    range: Range<usize>,
    /// The document converted to JSON at build time with its span table,
    /// when it converted.
    json: Option<(&'static str, &'static [StaticSpan])>,
    plugin: OnceLock<Option<Arc<Plugin>>>,
}

mod precompiled {
    include!(concat!(env!("OUT_DIR"), "/bundled_json.rs"));
}

/// The build-time JSON and spans of document `index` of the manifest `name`.
fn precompiled_json(name: &str, index: usize) -> Option<(&'static str, &'static [StaticSpan])> {
    precompiled::BUNDLED_JSON
        .iter()
        .find(|(directory, at, _, _)| *directory == name && *at == index)
        .map(|(_, _, json, spans)| (*json, *spans))
}

impl BundledDocument {
    fn plugin(&self) -> Option<&Plugin> {
        self.plugin
            .get_or_init(|| self.parse().map(Arc::new))
            .as_deref()
    }

    /// What [`Registry::add_manifest`] makes of this document. Bundled
    /// manifests load without diagnostics (a test keeps them so), so none
    /// are kept here.
    fn parse(&self) -> Option<Plugin> {
        let origin = PluginOrigin::Bundled(bundled_path(self.name));
        if let Some((json, spans)) = self.json
            && let Ok(value) = serde_json::from_str(json)
        {
            let plugin = parse_plugin(&value, &SpanTable::from_static(spans), origin).0?;
            return (plugin.name == self.name && plugin.major() == self.major).then_some(plugin);
        }
        self.parse_yaml()
    }

    /// The YAML path: what [`Registry::add_manifest`] makes of the text.
    fn parse_yaml(&self) -> Option<Plugin> {
        let parsed = donmai_grammar::yaml::parse(&self.text[self.range.clone()]);
        let mut document = parsed.documents.into_iter().next()?;
        shift_spans(&mut document, self.range.start);
        let (value, spans, conversion) = document_to_json(&document, Code::BAD_MANIFEST);
        if conversion.iter().any(Diagnostic::is_error) {
            return None;
        }
        let origin = PluginOrigin::Bundled(bundled_path(self.name));
        let plugin = parse_plugin(&value, &spans, origin).0?;
        let expected = plugin.name == self.name && plugin.major() == self.major;
        debug_assert!(expected, "BUNDLED_MAJORS disagrees with {}", plugin.pin());
        expected.then_some(plugin)
    }
}

/// The documents of the bundled manifests, and the manifests whose
/// documents [`BUNDLED_MAJORS`] does not describe (none, unless the table
/// is stale), built once per process.
type BundledDocuments = (Vec<BundledDocument>, Vec<(&'static str, &'static str)>);

fn bundled_documents() -> &'static BundledDocuments {
    static DOCUMENTS: OnceLock<BundledDocuments> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        let mut documents = Vec::new();
        let mut whole = Vec::new();
        for &(name, text) in BUNDLED {
            let majors = BUNDLED_MAJORS
                .iter()
                .find(|(directory, _)| *directory == name)
                .map_or(&[][..], |(_, majors)| *majors);
            let ranges = document_ranges(text);
            if ranges.len() != majors.len() {
                debug_assert!(false, "BUNDLED_MAJORS disagrees with {name}'s documents");
                whole.push((name, text));
                continue;
            }
            documents.extend(majors.iter().zip(ranges).enumerate().map(
                |(index, (&major, range))| BundledDocument {
                    name,
                    major,
                    text,
                    range,
                    json: precompiled_json(name, index),
                    plugin: OnceLock::new(),
                },
            ));
        }
        (documents, whole)
    })
}

fn bundled_path(directory: &str) -> PathBuf {
    PathBuf::from(format!("<bundled>/{directory}/{MANIFEST_FILE}"))
}

/// Moves every span of a tree parsed from a slice of a file by the slice's
/// offset. Recursion is bounded by the YAML layer's nesting limit.
fn shift_spans(node: &mut Node<'_>, offset: usize) {
    let shift = |span: &mut Span| *span = Span::new(span.start + offset, span.end + offset);
    shift(&mut node.span);
    match &mut node.kind {
        NodeKind::Scalar(_) => {}
        NodeKind::Seq(items) => items.iter_mut().for_each(|item| shift_spans(item, offset)),
        NodeKind::Map(entries) => {
            for entry in entries {
                shift_spans(&mut entry.key, offset);
                shift_spans(&mut entry.value, offset);
            }
        }
    }
}

/// The byte ranges of the YAML documents of a manifest, split at `---`
/// lines; comments and blank lines before the first `---` are no document.
fn document_ranges(text: &str) -> Vec<Range<usize>> {
    let mut markers = Vec::new();
    let mut content_before_markers = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if content == "---" || content.starts_with("--- ") || content.starts_with("---\t") {
            markers.push(offset);
        } else if markers.is_empty() {
            let trimmed = content.trim();
            content_before_markers |= !trimmed.is_empty() && !trimmed.starts_with('#');
        }
        offset += line.len();
    }
    let mut bounds = Vec::with_capacity(markers.len() + 2);
    if content_before_markers || markers.is_empty() {
        bounds.push(0);
    }
    bounds.extend(markers);
    bounds.push(text.len());
    bounds.windows(2).map(|pair| pair[0]..pair[1]).collect()
}

impl Registry {
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// The bundled plugins, each major parsed on first use.
    pub fn bundled() -> &'static Registry {
        static BUNDLED_REGISTRY: OnceLock<Registry> = OnceLock::new();
        BUNDLED_REGISTRY.get_or_init(Registry::lazy_bundled)
    }

    fn lazy_bundled() -> Registry {
        let (documents, whole) = bundled_documents();
        let mut registry = Registry::empty();
        registry.plugins.extend(documents.iter().map(Slot::Bundled));
        registry
            .plugins
            .sort_by(|a, b| (a.name(), a.major()).cmp(&(b.name(), b.major())));
        // A manifest the table does not describe is parsed whole, now.
        for &(name, text) in whole {
            let path = bundled_path(name);
            let file = SourceFile::new(path.clone(), text);
            registry.add_manifest(&file, PluginOrigin::Bundled(path));
        }
        registry
    }

    /// Parses the bundled manifests afresh, with their diagnostics (a test
    /// keeps them empty).
    pub fn load_bundled() -> (Registry, Vec<LoadReport>) {
        let mut registry = Registry::empty();
        let mut reports = Vec::new();
        for (directory, text) in BUNDLED {
            let path = bundled_path(directory);
            let file = Arc::new(SourceFile::new(path.clone(), *text));
            let diagnostics = registry.add_manifest(&file, PluginOrigin::Bundled(path.clone()));
            reports.push(LoadReport {
                path,
                source: Some(file),
                diagnostics,
            });
        }
        (registry, reports)
    }

    /// The bundled plugins plus the third-party ones found as
    /// `<dir>/*/plugin.yaml` in each of `dirs`, in order. A directory that does
    /// not exist is skipped: projects without plugins have none. Reports are
    /// returned for every third-party manifest, clean or not.
    pub fn with_plugin_dirs(dirs: &[PathBuf]) -> (Registry, Vec<LoadReport>) {
        let mut registry = Registry::bundled().clone();
        let mut reports = Vec::new();
        for dir in dirs {
            for path in manifest_paths(dir, &mut reports) {
                let read = donmai_grammar::span::read_regular_file(&path).and_then(|bytes| {
                    String::from_utf8(bytes).map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "stream did not contain valid UTF-8",
                        )
                    })
                });
                match read {
                    Ok(text) => {
                        let file = Arc::new(SourceFile::new(path.clone(), text));
                        let diagnostics =
                            registry.add_manifest(&file, PluginOrigin::File(path.clone()));
                        reports.push(LoadReport {
                            path,
                            source: Some(file),
                            diagnostics,
                        });
                    }
                    Err(error) => reports.push(unreadable(path, &error)),
                }
            }
        }
        (registry, reports)
    }

    /// Loads every document of one manifest file. Returns its diagnostics,
    /// whose spans point into `file`.
    pub fn add_manifest(&mut self, file: &SourceFile, origin: PluginOrigin) -> Vec<Diagnostic> {
        let parsed = donmai_grammar::yaml::parse(file.text());
        let mut diagnostics = parsed.diagnostics;
        if parsed.documents.is_empty() && diagnostics.is_empty() {
            diagnostics.push(Diagnostic::new(
                Code::BAD_MANIFEST,
                Default::default(),
                "the manifest is empty: it must hold at least one `kind: Plugin` document",
            ));
        }
        for document in &parsed.documents {
            let (value, spans, conversion) = document_to_json(document, Code::BAD_MANIFEST);
            let conversion_failed = conversion.iter().any(Diagnostic::is_error);
            diagnostics.extend(conversion);
            if conversion_failed {
                continue;
            }
            let (plugin, problems) = parse_plugin(&value, &spans, origin.clone());
            diagnostics.extend(problems);
            if let Some(plugin) = plugin {
                diagnostics.extend(self.add_plugin(plugin));
            }
        }
        diagnostics
    }

    /// Adds a parsed plugin after the checks that involve other plugins: its
    /// `name@major` must be new, and its event types must not be another
    /// plugin's. Returns the diagnostics (spans into the plugin's manifest).
    pub fn add_plugin(&mut self, mut plugin: Plugin) -> Vec<Diagnostic> {
        let mut diagnostics = Vec::new();
        if let Some(existing) = self.plugin(&plugin.name, plugin.major()) {
            let pin = plugin.pin();
            let message = if existing.origin.is_bundled() {
                format!("plugin `{pin}` is bundled with donmai and cannot be redefined")
            } else {
                format!(
                    "plugin `{pin}` is already defined in {}",
                    existing.origin.path().display()
                )
            };
            let mut diagnostic = Diagnostic::new(Code::BAD_MANIFEST, plugin.span, message);
            if existing.origin == plugin.origin {
                diagnostic = diagnostic.with_label(existing.span, "first defined here");
            }
            if existing.origin.is_bundled() {
                diagnostic =
                    diagnostic.with_help("publish it under another name, or as a new major");
            }
            diagnostics.push(diagnostic);
            return diagnostics;
        }
        plugin.event_types.retain(|event| {
            let owner = self
                .plugins()
                .find(|other| other.name != plugin.name && other.event_type(&event.name).is_some());
            match owner {
                Some(other) => {
                    diagnostics.push(Diagnostic::new(
                        Code::BAD_MANIFEST,
                        event.span,
                        format!(
                            "event type `{}` is already declared by plugin `{}`",
                            event.name,
                            other.pin()
                        ),
                    ));
                    false
                }
                None => true,
            }
        });
        let key = (plugin.name.clone(), plugin.major());
        let at = self
            .plugins
            .partition_point(|p| (p.name(), p.major()) < (key.0.as_str(), key.1));
        self.plugins.insert(at, Slot::Loaded(Arc::new(plugin)));
        diagnostics
    }

    pub fn plugin(&self, name: &str, major: u32) -> Option<&Plugin> {
        self.plugin_at(self.plugin_slot(name, major)?)
    }

    /// Where a plugin major sits in this registry: [`Registry::plugin_at`]
    /// finds it again without a search.
    pub fn plugin_slot(&self, name: &str, major: u32) -> Option<usize> {
        self.plugins
            .iter()
            .position(|p| p.name() == name && p.major() == major)
    }

    pub fn plugin_at(&self, slot: usize) -> Option<&Plugin> {
        self.plugins.get(slot)?.get()
    }

    /// Whether both registries hold the very same plugin loads (not equal
    /// copies): what one resolved, the other resolves to the same `Verb`.
    pub fn is_same(&self, other: &Registry) -> bool {
        self.plugins.len() == other.plugins.len()
            && self
                .plugins
                .iter()
                .zip(&other.plugins)
                .all(|pair| match pair {
                    (Slot::Loaded(a), Slot::Loaded(b)) => Arc::ptr_eq(a, b),
                    (Slot::Bundled(a), Slot::Bundled(b)) => std::ptr::eq(*a, *b),
                    _ => false,
                })
    }

    /// The loaded majors of a plugin, ascending.
    pub fn majors(&self, name: &str) -> Vec<u32> {
        self.plugins
            .iter()
            .filter(|p| p.name() == name && p.get().is_some())
            .map(Slot::major)
            .collect()
    }

    /// Every loaded plugin major, sorted by name then major.
    pub fn plugins(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.iter().filter_map(Slot::get)
    }

    /// Drops the third-party plugin majors `refuse` says no to, e.g. those
    /// a project's signature policy does not trust. Bundled plugins stay.
    pub fn refuse_loaded(&mut self, mut refuse: impl FnMut(&Plugin) -> bool) {
        self.plugins.retain(|slot| match slot {
            Slot::Loaded(plugin) => !refuse(plugin),
            Slot::Bundled(_) => true,
        });
    }

    /// The closest loaded plugin name to a misspelt one.
    pub fn suggest_plugin(&self, name: &str) -> Option<&str> {
        did_you_mean(name, self.plugins().map(|p| p.name.as_str()))
    }

    pub fn resolve(&self, reference: &VerbRef) -> Result<(&Plugin, &Verb), ResolveError> {
        let Some(plugin) = self.plugin(&reference.plugin, reference.major) else {
            return Err(ResolveError::PluginNotInstalled {
                plugin: reference.plugin.clone(),
                major: reference.major,
                majors: self.majors(&reference.plugin),
            });
        };
        match plugin.verb(&reference.verb) {
            Some(verb) => Ok((plugin, verb)),
            None => Err(ResolveError::UnknownVerb {
                pin: plugin.pin(),
                verb: reference.verb.clone(),
                suggestion: plugin.suggest_verb(&reference.verb).map(str::to_string),
            }),
        }
    }

    /// The plugin and declaration of an event type. Several majors of one
    /// plugin may declare the same type; the highest major's declaration wins.
    pub fn event(&self, name: &str) -> Option<(&Plugin, &EventType)> {
        // An event type belongs to one plugin (adding a plugin drops the
        // event types another one declares), so any plugin declaring it
        // names the owner; then the owner's highest major declaring it
        // wins. Plugins named by a segment of the type (`com.linear.…`) are
        // tried first, so that usually only their manifest is parsed.
        let named = |slot: &&Slot| name.split('.').any(|segment| segment == slot.name());
        let declares = |slot: &&Slot| slot.get().is_some_and(|p| p.event_type(name).is_some());
        let owner = self
            .plugins
            .iter()
            .filter(named)
            .chain(self.plugins.iter().filter(|slot| !named(slot)))
            .find(declares)?
            .name();
        self.plugins
            .iter()
            .rev()
            .filter(|slot| slot.name() == owner)
            .find_map(|slot| {
                let plugin = slot.get()?;
                plugin.event_type(name).map(|event| (plugin, event))
            })
    }

    /// Every declared event type name, sorted, without duplicates.
    pub fn event_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .plugins()
            .flat_map(|p| p.event_types.iter().map(|e| e.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// `<dir>/*/plugin.yaml`, sorted so that loading order (and so which of two
/// clashing manifests is reported) does not depend on the file system.
fn manifest_paths(dir: &Path, reports: &mut Vec<LoadReport>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => {
            reports.push(unreadable(dir.to_path_buf(), &error));
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(MANIFEST_FILE))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    paths
}

fn unreadable(path: PathBuf, error: &std::io::Error) -> LoadReport {
    let message = format!("cannot read {}: {error}", path.display());
    LoadReport {
        path,
        source: None,
        diagnostics: vec![Diagnostic::new(
            Code::BAD_MANIFEST,
            Default::default(),
            message,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{API_VERSION, Routing, VerbKind};
    use crate::types::Type;
    use crate::yaml_json::SpanTable;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn plugin_from(document: Value, origin: PluginOrigin) -> Plugin {
        let (plugin, diagnostics) = parse_plugin(&document, &SpanTable::new(), origin);
        assert!(diagnostics.is_empty(), "{diagnostics:#?}");
        plugin.expect("plugin")
    }

    fn acme(major: u32, events: &[&str]) -> Value {
        let types: Vec<Value> = events
            .iter()
            .map(|name| json!({"type": name, "payloadSchema": {}}))
            .collect();
        json!({
            "apiVersion": API_VERSION, "kind": "Plugin",
            "metadata": {"name": "acme", "version": format!("{major}.0.0")},
            "verbs": [{"id": "acme.ping", "sideEffectClass": "read-only"}],
            "events": {"types": types},
        })
    }

    #[test]
    fn verb_refs_parse() {
        let reference = VerbRef::parse("donmai@2:agent.dispatch_to_queue").expect("ok");
        assert_eq!(
            reference,
            VerbRef {
                plugin: "donmai".into(),
                major: 2,
                verb: "agent.dispatch_to_queue".into()
            }
        );
        assert_eq!(reference.to_string(), "donmai@2:agent.dispatch_to_queue");
        assert!(VerbRef::parse("linear@1:linear.issue.update").is_ok());
        assert!(VerbRef::parse("donmai@1:donmai.internal").is_ok());
    }

    #[test]
    fn verb_ref_errors_say_what_to_write() {
        let cases = [
            ("", "is empty"),
            (
                "linear.issue.update",
                "write `linear@<major>:linear.issue.update`",
            ),
            (
                "agent.size_estimate",
                "write `donmai@<major>:agent.size_estimate`",
            ),
            ("donmai@1agent.x", "no `:`"),
            ("donmai:agent.x", "does not pin a major"),
            ("@1:agent.x", "names no plugin"),
            ("Donmai@1:agent.x", "not a plugin name"),
            (
                "donmai@v1:agent.x",
                "`v1` in `donmai@v1:agent.x` is not a major version",
            ),
            ("donmai@01:agent.x", "not a major version"),
            ("donmai@99999999999:agent.x", "not a major version"),
            ("donmai@1:", "names no verb"),
            ("donmai@1:agent", "not a verb id"),
            ("donmai@1:agent.Size", "segment `Size`"),
            (
                "linear@1:github.pr.create",
                "belongs to plugin `github`, not `linear`",
            ),
            ("linear@1:gate.ci_check", "the `gate` namespace is donmai's"),
            ("not a ref", "not a verb reference"),
        ];
        for (text, needle) in cases {
            let error = VerbRef::parse(text).expect_err(text);
            assert!(
                error.contains(needle),
                "{text:?}: {error:?} lacks {needle:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn verb_ref_parse_never_panics_and_round_trips(text in "\\PC{0,40}") {
            if let Ok(reference) = VerbRef::parse(&text) {
                prop_assert_eq!(reference.to_string(), text);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any prefix of a real manifest, with any one byte replaced, loads
        /// without panicking and reports only spans inside the file.
        #[test]
        fn damaged_manifests_load_without_panics(cut in 0usize..6000, at in 0usize..6000, byte in 0u8..128) {
            let full = BUNDLED[0].1;
            let mut bytes: Vec<u8> = full.as_bytes()[..cut.min(full.len())].to_vec();
            if !bytes.is_empty() {
                let index = at % bytes.len();
                bytes[index] = byte;
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let file = SourceFile::new("fuzz.yaml", text);
            let mut registry = Registry::empty();
            for diagnostic in registry.add_manifest(&file, PluginOrigin::File("fuzz.yaml".into())) {
                prop_assert!(diagnostic.span.end <= file.text().len());
                prop_assert!(diagnostic.span.start <= diagnostic.span.end);
            }
        }
    }

    #[test]
    fn plugins_are_keyed_by_name_and_major() {
        let mut registry = Registry::empty();
        let file = PluginOrigin::File("a/plugin.yaml".into());
        assert!(
            registry
                .add_plugin(plugin_from(acme(2, &["acme.done"]), file.clone()))
                .is_empty()
        );
        assert!(
            registry
                .add_plugin(plugin_from(
                    acme(1, &["acme.done", "acme.old"]),
                    file.clone()
                ))
                .is_empty()
        );
        assert_eq!(registry.majors("acme"), [1, 2]);
        assert_eq!(registry.majors("nope"), Vec::<u32>::new());
        assert!(registry.plugin("acme", 1).is_some() && registry.plugin("acme", 3).is_none());
        // The highest major declaring an event wins.
        assert_eq!(registry.event("acme.done").map(|(p, _)| p.major()), Some(2));
        assert_eq!(registry.event("acme.old").map(|(p, _)| p.major()), Some(1));
        assert_eq!(registry.event_names(), ["acme.done", "acme.old"]);

        let again = registry.add_plugin(plugin_from(
            acme(1, &[]),
            PluginOrigin::File("b/plugin.yaml".into()),
        ));
        assert_eq!(again.len(), 1);
        assert!(
            again[0]
                .message
                .contains("already defined in a/plugin.yaml"),
            "{again:?}"
        );
    }

    #[test]
    fn resolve_explains_failures() {
        let registry = Registry::bundled();
        let found = registry.resolve(&VerbRef::parse("donmai@2:agent.size_estimate").expect("ref"));
        assert_eq!(
            found.map(|(p, v)| (p.pin(), v.id.clone())).ok(),
            Some(("donmai@2".into(), "agent.size_estimate".into()))
        );
        let missing_major =
            registry.resolve(&VerbRef::parse("donmai@7:agent.size_estimate").expect("ref"));
        assert_eq!(
            missing_major.map(|_| ()).unwrap_err().to_string(),
            "`donmai@7` is not installed; installed: `donmai@1`, `donmai@2`"
        );
        let typo = registry.resolve(&VerbRef::parse("linear@1:linear.issue.updat").expect("ref"));
        assert_eq!(
            typo.map(|_| ()).unwrap_err(),
            ResolveError::UnknownVerb {
                pin: "linear@1".into(),
                verb: "linear.issue.updat".into(),
                suggestion: Some("linear.issue.update".into())
            }
        );
        let absent = registry.resolve(&VerbRef::parse("notion@1:notion.page.get").expect("ref"));
        assert_eq!(
            absent.map(|_| ()).unwrap_err().to_string(),
            "plugin `notion` is not installed (wanted `notion@1`)"
        );
    }

    #[test]
    fn events_belong_to_one_plugin() {
        let mut registry = Registry::empty();
        let origin = PluginOrigin::File("x".into());
        registry.add_plugin(plugin_from(acme(1, &["com.acme.done"]), origin.clone()));
        let thief = json!({
            "apiVersion": API_VERSION, "kind": "Plugin",
            "metadata": {"name": "acme2", "version": "1.0.0"},
            "events": {"types": [{"type": "com.acme.done", "payloadSchema": {}}]},
        });
        // `com.acme.done` is not in acme2's namespace either; build the clash by hand.
        let (plugin, diagnostics) = parse_plugin(&thief, &SpanTable::new(), origin.clone());
        assert_eq!(diagnostics.len(), 1);
        let mut plugin = plugin.expect("plugin");
        plugin.event_types = registry
            .plugin("acme", 1)
            .expect("acme")
            .event_types
            .clone();
        let clash = registry.add_plugin(plugin);
        assert_eq!(clash.len(), 1);
        assert!(
            clash[0]
                .message
                .contains("already declared by plugin `acme@1`")
        );
        assert!(
            registry
                .plugin("acme2", 1)
                .expect("added")
                .event_types
                .is_empty()
        );
    }

    #[test]
    fn bundled_verbs_have_the_advertised_shapes() {
        let registry = Registry::bundled();
        for major in [1, 2] {
            let donmai = registry.plugin("donmai", major).expect("donmai");
            let size = donmai.verb("agent.size_estimate").expect("size");
            assert_eq!(size.handles(), ["small", "medium", "large"]);
            let classify = donmai.verb("agent.classify_request").expect("classify");
            assert_eq!(
                classify.handles(),
                [
                    "research",
                    "refinement",
                    "development",
                    "qa",
                    "acceptance",
                    "ad-hoc"
                ]
            );
            let dispatch = donmai.verb("agent.dispatch_to_queue").expect("dispatch");
            assert_eq!(dispatch.kind, VerbKind::Action);
            assert_eq!(dispatch.input_type().field("workType"), Some(Type::String));
            assert_eq!(
                dispatch.input_type().field("issueId"),
                Some(Type::String.optional())
            );
            assert_eq!(
                dispatch.output_type().field("sessionId"),
                Some(Type::String)
            );
            let Type::Object(inputs) = dispatch.input_type() else {
                panic!()
            };
            assert!(inputs.closed);
            let await_complete = donmai.verb("agent.session.await_complete").expect("await");
            assert_eq!(await_complete.handles(), ["success", "fail"]);
            assert_eq!(
                await_complete.output_type().field("blockedReason"),
                Some(Type::String.optional())
            );
            let ci = donmai.verb("gate.ci_check").expect("ci");
            assert_eq!(
                ci.routing(),
                Routing::Handles(&["passed".into(), "failed".into(), "timeout".into()])
            );
            assert_eq!(ci.event_subscription, ["com.github.workflow_run.completed"]);
            assert!(donmai.verb("requester.respond").is_some());
        }
        let linear = registry.plugin("linear", 1).expect("linear");
        assert_eq!(
            linear
                .verb("linear.issue.project_allowed")
                .expect("allowed")
                .handles(),
            ["yes", "no"]
        );
        assert!(
            linear
                .verb("linear.issue.update")
                .expect("update")
                .idempotency_key
                .is_some()
        );
        let (owner, event) = registry
            .event("com.linear.AgentSessionEvent.created")
            .expect("event");
        assert_eq!(owner.pin(), "linear@1");
        assert_eq!(
            event.payload_type().field("agentSessionId"),
            Some(Type::String)
        );
        let (_, run) = registry
            .event("com.github.workflow_run.completed")
            .expect("event");
        let run_type = run
            .payload_type()
            .field("workflow_run")
            .expect("workflow_run");
        assert_eq!(run_type.field("head_sha"), Some(Type::String));
        assert_eq!(run_type.field("run_attempt"), Some(Type::Int));
        let (_, opened) = registry.event("github.pr.opened").expect("event");
        assert_eq!(opened.payload_type().field("number"), Some(Type::Int));
        for name in ["created", "succeeded", "failed", "canceled"] {
            assert!(
                registry
                    .event(&format!("vercel.deployment.{name}"))
                    .is_some(),
                "{name}"
            );
        }
        let deploy = registry
            .plugin("vercel", 1)
            .and_then(|p| p.verb("vercel.deploy"))
            .expect("deploy");
        assert_eq!(deploy.output_type().field("url"), Some(Type::String));
        let send = registry
            .plugin("slack", 1)
            .and_then(|p| p.verb("slack.send_message"))
            .expect("send");
        assert_eq!(send.output_type().field("ts"), Some(Type::String));
    }

    /// The build script's JSON is what the YAML path converts, document
    /// for document, and every bundled document has it.
    #[test]
    fn precompiled_manifests_equal_their_yaml() {
        let (documents, whole) = bundled_documents();
        assert!(whole.is_empty());
        for document in documents {
            let (json, _) = document.json.unwrap_or_else(|| {
                panic!(
                    "{}@{} was not converted at build time",
                    document.name, document.major
                )
            });
            let precompiled: serde_json::Value = serde_json::from_str(json).expect("json");
            let parsed = donmai_grammar::yaml::parse(&document.text[document.range.clone()]);
            let node = parsed.documents.into_iter().next().expect("a document");
            let (value, _, _) = document_to_json(&node, Code::BAD_MANIFEST);
            assert_eq!(precompiled, value, "{}@{}", document.name, document.major);
            let fast = document.parse().expect("parses");
            let slow = document.parse_yaml().expect("parses");
            assert_eq!(
                (
                    fast.pin(),
                    fast.verbs.len(),
                    fast.event_types.len(),
                    fast.manifest_hash
                ),
                (
                    slow.pin(),
                    slow.verbs.len(),
                    slow.event_types.len(),
                    slow.manifest_hash
                )
            );
        }
    }

    #[test]
    fn bundled_cross_references_resolve() {
        let registry = Registry::bundled();
        for plugin in registry.plugins() {
            for verb in &plugin.verbs {
                for event in &verb.event_subscription {
                    assert!(
                        registry.event(event).is_some(),
                        "{}: unknown event {event}",
                        verb.id
                    );
                }
                if let Some(successor) = verb
                    .deprecation
                    .as_ref()
                    .and_then(|d| d.successor.as_deref())
                {
                    let reference = VerbRef::parse(successor).expect("successor ref");
                    assert!(registry.resolve(&reference).is_ok(), "{successor}");
                }
            }
        }
    }

    /// A scratch directory removed on drop; unique per test and process.
    struct ScratchDir(PathBuf);

    impl ScratchDir {
        fn new(name: &str) -> ScratchDir {
            let path =
                std::env::temp_dir().join(format!("donmai-stdlib-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create scratch dir");
            ScratchDir(path)
        }

        fn write(&self, relative: &str, text: &str) {
            let path = self.0.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create dir");
            }
            std::fs::write(path, text).expect("write");
        }
    }

    impl Drop for ScratchDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// (line, column, message) of each diagnostic of a report.
    fn positions(report: &LoadReport) -> Vec<(usize, usize, String)> {
        let file = report.source.as_ref().expect("source");
        report
            .diagnostics
            .iter()
            .map(|d| {
                let at = file.line_col(d.span.start);
                (at.line, at.column, d.message.clone())
            })
            .collect()
    }

    #[test]
    fn bundled_majors_describe_the_manifests() {
        let (registry, _) = Registry::load_bundled();
        for (directory, text) in BUNDLED {
            let majors: Vec<u32> = registry
                .plugins()
                .filter(|p| p.origin.path() == bundled_path(directory))
                .map(|p| {
                    assert_eq!(
                        p.name, *directory,
                        "a bundled plugin lives in its own folder"
                    );
                    p.major()
                })
                .collect();
            let table = BUNDLED_MAJORS
                .iter()
                .find(|(name, _)| name == directory)
                .map(|(_, majors)| majors.to_vec());
            assert_eq!(
                table.as_deref(),
                Some(&majors[..]),
                "BUNDLED_MAJORS must list {directory}'s majors in document order"
            );
            assert_eq!(document_ranges(text).len(), majors.len(), "{directory}");
        }
        assert_eq!(bundled_documents().1, Vec::new(), "every manifest is split");
    }

    /// The lazily parsed bundled registry answers every lookup exactly as
    /// the eagerly parsed one, spans included.
    #[test]
    fn lazy_bundled_registry_equals_the_eager_one() {
        let (eager, _) = Registry::load_bundled();
        let lazy = Registry::lazy_bundled();
        let event_names = eager.event_names();
        assert!(!event_names.is_empty());
        // Events first, on an untouched registry: the order of parsing must
        // not change the answers.
        for name in event_names
            .iter()
            .copied()
            .chain(["no.such.event", "linear"])
        {
            let describe = |found: Option<(&Plugin, &EventType)>| {
                found.map(|(plugin, event)| (plugin.pin(), format!("{event:?}")))
            };
            assert_eq!(
                describe(lazy.event(name)),
                describe(eager.event(name)),
                "{name}"
            );
        }
        let pins = |registry: &Registry| registry.plugins().map(Plugin::pin).collect::<Vec<_>>();
        assert_eq!(pins(&lazy), pins(&eager));
        for plugin in eager.plugins() {
            let twin = lazy
                .plugin(&plugin.name, plugin.major())
                .expect("same plugins");
            assert_eq!(format!("{twin:?}"), format!("{plugin:?}"));
        }
        for name in ["donmai", "linear", "slack", "nope"] {
            assert_eq!(lazy.majors(name), eager.majors(name));
        }
        assert_eq!(lazy.event_names(), event_names);
        assert_eq!(
            lazy.suggest_plugin("linaer"),
            eager.suggest_plugin("linaer")
        );
    }

    #[test]
    fn manifests_split_into_documents_at_marker_lines() {
        let ranges = |text: &str| {
            document_ranges(text)
                .into_iter()
                .map(|range| text[range].to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ranges("a: 1\n"), ["a: 1\n"]);
        assert_eq!(
            ranges("# c\n\n---\na: 1\n---\nb: 2"),
            ["---\na: 1\n", "---\nb: 2"]
        );
        assert_eq!(
            ranges("a: 1\n--- # two\nb: 2\n"),
            ["a: 1\n", "--- # two\nb: 2\n"]
        );
        assert_eq!(ranges("a: '---'\n ---\n"), ["a: '---'\n ---\n"]);
    }

    #[test]
    fn bundled_manifests_load_clean() {
        let (registry, reports) = Registry::load_bundled();
        for report in &reports {
            assert!(
                report.diagnostics.is_empty(),
                "{}: {:#?}",
                report.path.display(),
                report.diagnostics
            );
        }
        // Where a plugin is served is the deployment's business: nothing
        // shipped with donmai names an endpoint (`core` runs in the runtime).
        for plugin in registry.plugins() {
            assert_eq!(plugin.endpoint, None, "{}", plugin.pin());
            assert_eq!(plugin.endpoint_timeout_ms, None, "{}", plugin.pin());
        }
        let pins: Vec<String> = registry.plugins().map(Plugin::pin).collect();
        assert_eq!(
            pins,
            [
                "asana@1",
                "core@1",
                "donmai@1",
                "donmai@2",
                "github@1",
                "github_issues@1",
                "incident_io@1",
                "jira@1",
                "linear@1",
                "linear@2",
                "slack@1",
                "vercel@1"
            ]
        );
    }

    #[test]
    fn broken_third_party_manifest_is_positioned() {
        let dir = ScratchDir::new("broken");
        dir.write(
            "acme/plugin.yaml",
            "\
apiVersion: donmai.dev/v1
kind: Plugin
metadata:
  name: acme
  version: \"1.0.0\"
verbs:
  - id: acme.check
    kind: condition
    sideEffectClass: read-only
    routeBy: verdict
    outputSchema:
      type: object
      properties:
        verdict: {type: strng}
  - id: acme.send
    sideEfectClass: external-write
    inputSchema:
      type: object
      properties:
        to: {oneOf: [{type: string}]}
  - id: other.thing
    sideEffectClass: read-only
    deprecatedSince: 2026-13-01
",
        );
        // A manifest that tries to replace a bundled major, and one that is fine.
        dir.write(
            "linear/plugin.yaml",
            "apiVersion: donmai.dev/v1\nkind: Plugin\nmetadata: {name: linear, version: \"1.9.0\"}\n",
        );
        dir.write(
            "zeta/plugin.yaml",
            "apiVersion: donmai.dev/v1\nkind: Plugin\nmetadata: {name: zeta, version: \"3.1.0\"}\n\
             verbs:\n  - {id: zeta.ping, sideEffectClass: read-only}\n",
        );
        dir.write("not-a-plugin/README.md", "no manifest here");

        let missing = dir.0.join("does-not-exist");
        let (registry, reports) = Registry::with_plugin_dirs(&[missing, dir.0.clone()]);
        assert_eq!(reports.len(), 3, "{reports:#?}");

        let acme = positions(&reports[0]);
        let expected = [
            (14, 25, "unknown JSON Schema type `strng`"),
            (16, 5, "unknown key `sideEfectClass`"),
            (15, 5, "the verb is missing `sideEffectClass`"),
            (20, 14, "JSON Schema keyword `oneOf` is not supported"),
            (21, 9, "namespace `other`"),
            (23, 22, "`2026-13-01` is not a date"),
        ];
        for (line, column, needle) in expected {
            assert!(
                acme.iter()
                    .any(|(l, c, m)| (*l, *c) == (line, column) && m.contains(needle)),
                "no {needle:?} at {line}:{column} in {acme:#?}"
            );
        }
        assert_eq!(acme.len(), expected.len(), "{acme:#?}");
        let fix = reports[0]
            .diagnostics
            .iter()
            .find_map(|d| d.fix.as_ref())
            .expect("a rename fix");
        assert_eq!(fix.edits[0].replacement, "sideEffectClass");
        // The broken verbs are dropped, the plugin itself is kept.
        assert_eq!(registry.plugin("acme", 1).map(|p| p.verbs.len()), Some(0));

        let linear = positions(&reports[1]);
        assert_eq!(linear.len(), 1);
        assert_eq!((linear[0].0, linear[0].1), (3, 1));
        assert!(linear[0].2.contains("bundled"));
        assert_eq!(
            registry.plugin("linear", 1).map(|p| p.version.minor),
            Some(3)
        );

        assert!(reports[2].diagnostics.is_empty());
        assert!(
            registry
                .resolve(&VerbRef::parse("zeta@3:zeta.ping").expect("ref"))
                .is_ok()
        );
        assert_eq!(registry.majors("donmai"), [1, 2]);
    }

    #[test]
    fn endpoints_are_per_major_and_positioned() {
        let text = "\
apiVersion: donmai.dev/v1
kind: Plugin
metadata: {name: acme, version: \"1.0.0\"}
endpoint: http://127.0.0.1:8080/v1
endpointTimeoutMs: 5000
verbs: [{id: acme.ping, sideEffectClass: read-only}]
---
apiVersion: donmai.dev/v1
kind: Plugin
metadata: {name: acme, version: \"2.0.0\"}
endpoint: \"https://admin:s3cret@acme.example.com/v2\"
verbs: [{id: acme.ping, sideEffectClass: read-only}]
";
        let mut registry = Registry::empty();
        let file = SourceFile::new("acme.yaml", text);
        let diagnostics = registry.add_manifest(&file, PluginOrigin::File("acme.yaml".into()));
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert!(
            diagnostics[0]
                .message
                .contains("must not carry credentials")
        );
        assert_eq!(
            file.slice(diagnostics[0].span),
            "\"https://admin:s3cret@acme.example.com/v2\""
        );
        let at = file.line_col(diagnostics[0].span.start);
        assert_eq!((at.line, at.column), (11, 11));
        let one = registry.plugin("acme", 1).expect("acme@1");
        assert_eq!(one.endpoint.as_deref(), Some("http://127.0.0.1:8080/v1"));
        assert_eq!(one.endpoint_timeout_ms, Some(5000));
        let two = registry.plugin("acme", 2).expect("acme@2 is kept");
        assert_eq!(two.endpoint, None);
        assert_eq!(two.verbs.len(), 1);
    }

    #[test]
    fn yaml_problems_are_reported_and_skipped() {
        let mut registry = Registry::empty();
        let text =
            "apiVersion: donmai.dev/v1\nkind: Plugin\nmetadata: {name: acme, version: \"1.0.0\"\n";
        let file = SourceFile::new("p.yaml", text);
        let diagnostics = registry.add_manifest(&file, PluginOrigin::File("p.yaml".into()));
        assert!(diagnostics.iter().any(Diagnostic::is_error));
        let text = "apiVersion: donmai.dev/v1\nkind: Plugin\nmetadata: {name: acme, version: \"1.0.0\"}\n\
                    verbs: [{id: acme.x, sideEffectClass: read-only, outputSchema: {type: number, const: .nan}}]\n";
        let file = SourceFile::new("q.yaml", text);
        let diagnostics = registry.add_manifest(&file, PluginOrigin::File("q.yaml".into()));
        assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
        assert!(
            diagnostics[0]
                .message
                .contains("cannot be represented in JSON")
        );
        assert_eq!(file.slice(diagnostics[0].span), ".nan");
    }
}
