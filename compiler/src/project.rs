//! The project file `donmai.toml`: which integrations are enabled, where
//! third-party plugins live, and project-wide lint levels.
//!
//! A workflow belongs to the project of the nearest `donmai.toml` found by
//! walking up from its directory. Without one, every bundled integration is
//! enabled and no lint level is changed, so a lone workflow file checks the
//! same way everywhere.
//!
//! ```toml
//! [integrations]
//! enabled = ["linear", "github"]
//! projects = { linear = ["api"] }   # linear only for `metadata.scope.project: api`
//!
//! [plugins]
//! dirs = ["vendor/plugins"]
//!
//! [lints]
//! too-many-roots = "allow"
//! DN0202 = "deny"
//! ```
//!
//! Problems in the file are positioned `bad-project-file` diagnostics, kept
//! on the `Project` (with the file's text, for rendering) rather than
//! returned as an error, so checking goes on with the parts that are valid.

use donmai_grammar::codes::CATALOG;
use donmai_grammar::diagnostic::did_you_mean;
use donmai_grammar::{Code, Diagnostic, Severity, SourceFile, Span};
use donmai_runtime::keys::{TrustedKeys, load_verifying_key};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub const PROJECT_FILE_NAME: &str = "donmai.toml";

/// Searched for third-party plugins whenever it exists, relative to the
/// project root and to the repository root.
pub const DEFAULT_PLUGIN_DIR: &str = ".donmai/plugins";

/// How a lint is treated, from `[lints]` in `donmai.toml` or the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LintLevel {
    /// The diagnostic is dropped.
    Allow,
    /// The diagnostic is a warning.
    Warn,
    /// The diagnostic is an error.
    Deny,
}

impl LintLevel {
    pub fn parse(text: &str) -> Option<LintLevel> {
        match text {
            "allow" => Some(LintLevel::Allow),
            "warn" => Some(LintLevel::Warn),
            "deny" => Some(LintLevel::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LintLevel::Allow => "allow",
            LintLevel::Warn => "warn",
            LintLevel::Deny => "deny",
        }
    }

    /// Applies the level to one diagnostic: `None` when it is allowed away.
    pub fn apply(self, mut diagnostic: Diagnostic) -> Option<Diagnostic> {
        match self {
            LintLevel::Allow => return None,
            LintLevel::Warn => diagnostic.severity = Severity::Warning,
            LintLevel::Deny => diagnostic.severity = Severity::Error,
        }
        Some(diagnostic)
    }
}

impl fmt::Display for LintLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resolves `DN0200`, `dn200`, `200` or the kebab name `too-many-roots`.
pub fn resolve_code(text: &str) -> Option<Code> {
    let text = text.trim();
    Code::parse(text).or_else(|| {
        CATALOG
            .iter()
            .find(|info| info.name.eq_ignore_ascii_case(text))
            .map(|info| info.code)
    })
}

/// Why `level` cannot be set for `code`, if it cannot. Errors stay errors:
/// only codes that are warnings by default may be allowed or kept as warnings,
/// because an error means the workflow cannot be built at all.
pub fn level_refusal(code: Code, level: LintLevel) -> Option<String> {
    if level != LintLevel::Deny && code.default_severity() == Severity::Error {
        Some(format!(
            "{code} ({}) is an error and cannot be set to `{level}`: only warnings can be allowed",
            code.name()
        ))
    } else {
        None
    }
}

/// The project file could not be read at all (its problems as TOML are
/// diagnostics on the `Project`, not this).
#[derive(Debug)]
pub enum ProjectError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    NotUtf8 {
        path: PathBuf,
    },
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectError::Io { path, error } => {
                write!(f, "cannot read `{}`: {error}", path.display())
            }
            ProjectError::NotUtf8 { path } => {
                write!(f, "cannot read `{}`: it is not valid UTF-8", path.display())
            }
        }
    }
}

impl std::error::Error for ProjectError {}

/// The parsed contents of one `donmai.toml`, independent of who asks.
#[derive(Clone, Debug, Default)]
struct Manifest {
    /// The file as read, with the path it is shown under.
    file: Option<SourceFile>,
    /// Absolute directory holding the file.
    dir: Option<PathBuf>,
    enabled_integrations: Option<BTreeSet<String>>,
    /// Integrations restricted to workflows of some projects.
    integration_projects: BTreeMap<String, BTreeSet<String>>,
    plugin_dirs: Vec<PathBuf>,
    /// `[plugins] requireSignatures`: third-party manifests must be signed
    /// by one of `trusted_keys`.
    require_signatures: bool,
    /// `[plugins] trustedKeys`, loaded.
    trusted_keys: TrustedKeys,
    lints: BTreeMap<Code, LintLevel>,
    diagnostics: Vec<Diagnostic>,
}

/// The settings that apply to one workflow file.
#[derive(Clone, Debug, Default)]
pub struct Project {
    manifest: Arc<Manifest>,
    /// Existing plugin directories, absolute, in search order.
    plugin_dirs: Vec<PathBuf>,
}

impl Project {
    /// Whether both are the same reading of the same `donmai.toml` (clones
    /// of one `Project`), so every setting is the same.
    pub fn is_same(&self, other: &Project) -> bool {
        Arc::ptr_eq(&self.manifest, &other.manifest) && self.plugin_dirs == other.plugin_dirs
    }

    /// No `donmai.toml`: every bundled integration enabled, no lint changed,
    /// no plugin directory.
    pub fn default_for_tests() -> Project {
        Project::default()
    }

    /// A project with exactly these integrations enabled.
    pub fn with_enabled_integrations<I, S>(mut self, plugins: I) -> Project
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.manifest).enabled_integrations =
            Some(plugins.into_iter().map(Into::into).collect());
        self
    }

    /// A project with this lint level set, as `[lints]` would.
    pub fn with_lint_level(mut self, code: Code, level: LintLevel) -> Project {
        Arc::make_mut(&mut self.manifest).lints.insert(code, level);
        self
    }

    /// A project whose plugins are searched for in these directories.
    pub fn with_plugin_dirs(mut self, dirs: Vec<PathBuf>) -> Project {
        self.plugin_dirs = dirs;
        self
    }

    /// Parses `text` as the `donmai.toml` at `path` (shown as `display_path`).
    /// Plugin directories are resolved against `path`'s directory.
    pub fn from_manifest_text(path: &Path, display_path: &Path, text: &str) -> Project {
        let manifest = parse_manifest(path, display_path, text);
        let plugin_dirs = existing_plugin_dirs(&manifest, None);
        Project {
            manifest: Arc::new(manifest),
            plugin_dirs,
        }
    }

    /// The project of a workflow in `start` (a directory, or a file whose
    /// directory is used): the nearest `donmai.toml` above it, if any.
    pub fn discover(start: &Path) -> Result<Project, ProjectError> {
        ProjectCache::new().discover(start)
    }

    /// Whether workflows of this project may use the integration `plugin`.
    pub fn integration_enabled(&self, plugin: &str) -> bool {
        self.manifest
            .enabled_integrations
            .as_ref()
            .is_none_or(|enabled| enabled.contains(plugin))
    }

    /// Whether the integration `plugin` admits a workflow whose
    /// `metadata.scope.project` is `workflow_project`. An integration listed
    /// under `[integrations.projects]` admits only those projects, and never
    /// a workflow without a project (fail closed); any other enabled
    /// integration admits every workflow.
    pub fn integration_admits(&self, plugin: &str, workflow_project: Option<&str>) -> bool {
        match self.manifest.integration_projects.get(plugin) {
            None => true,
            Some(projects) => workflow_project.is_some_and(|p| projects.contains(p)),
        }
    }

    /// The projects `plugin` is restricted to, if it is.
    pub fn integration_projects(&self, plugin: &str) -> Option<&BTreeSet<String>> {
        self.manifest.integration_projects.get(plugin)
    }

    /// `None` when every bundled integration is enabled.
    pub fn enabled_integrations(&self) -> Option<&BTreeSet<String>> {
        self.manifest.enabled_integrations.as_ref()
    }

    /// Whether third-party plugin manifests must be signed by a trusted key
    /// (`[plugins] requireSignatures`).
    pub fn require_signatures(&self) -> bool {
        self.manifest.require_signatures
    }

    /// The publishers' keys third-party manifests may be signed with
    /// (`[plugins] trustedKeys`).
    pub fn trusted_keys(&self) -> &TrustedKeys {
        &self.manifest.trusted_keys
    }

    /// Directories to load third-party plugins from, in search order; every
    /// one exists (as of discovery).
    pub fn plugin_dirs(&self) -> &[PathBuf] {
        &self.plugin_dirs
    }

    /// The level `[lints]` sets for `code`, if any.
    pub fn lint_level(&self, code: Code) -> Option<LintLevel> {
        self.manifest.lints.get(&code).copied()
    }

    /// The directory holding `donmai.toml`, absolute.
    pub fn root(&self) -> Option<&Path> {
        self.manifest.dir.as_deref()
    }

    /// The `donmai.toml` as read, when there is one.
    pub fn manifest_file(&self) -> Option<&SourceFile> {
        self.manifest.file.as_ref()
    }

    /// Problems in `donmai.toml`, with spans into `manifest_file()`.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.manifest.diagnostics
    }
}

/// Discovers projects for many files while reading each `donmai.toml` once.
#[derive(Debug, Default)]
pub struct ProjectCache {
    /// Paths under this directory are shown relative to it.
    display_base: Option<PathBuf>,
    by_dir: HashMap<PathBuf, Project>,
    manifests: HashMap<PathBuf, Arc<Manifest>>,
}

impl ProjectCache {
    /// Shows `donmai.toml` paths relative to the current directory.
    pub fn new() -> ProjectCache {
        ProjectCache {
            display_base: std::env::current_dir().ok(),
            ..ProjectCache::default()
        }
    }

    pub fn discover(&mut self, start: &Path) -> Result<Project, ProjectError> {
        let absolute = std::path::absolute(start).map_err(|error| ProjectError::Io {
            path: start.to_path_buf(),
            error,
        })?;
        let dir = if absolute.is_file() {
            absolute
                .parent()
                .map_or(absolute.clone(), Path::to_path_buf)
        } else {
            absolute
        };
        if let Some(project) = self.by_dir.get(&dir) {
            return Ok(project.clone());
        }
        let mut manifest_path = None;
        let mut repo_root = None;
        // The nearest `.donmai/plugins` above the file counts even without a
        // donmai.toml or a git repository around it.
        let nearest_plugins = dir
            .ancestors()
            .map(|a| a.join(DEFAULT_PLUGIN_DIR))
            .find(|candidate| candidate.is_dir());
        for ancestor in dir.ancestors() {
            if manifest_path.is_none() {
                let candidate = ancestor.join(PROJECT_FILE_NAME);
                if candidate.is_file() {
                    manifest_path = Some(candidate);
                }
            }
            if repo_root.is_none() && ancestor.join(".git").exists() {
                repo_root = Some(ancestor.to_path_buf());
            }
            if manifest_path.is_some() && repo_root.is_some() {
                break;
            }
        }
        let manifest = match manifest_path {
            Some(path) => self.manifest(&path)?,
            None => Arc::new(Manifest::default()),
        };
        let mut plugin_dirs = existing_plugin_dirs(&manifest, repo_root.as_deref());
        if let Some(nearest) = nearest_plugins
            && !plugin_dirs.contains(&nearest)
        {
            plugin_dirs.push(nearest);
        }
        let project = Project {
            manifest,
            plugin_dirs,
        };
        self.by_dir.insert(dir, project.clone());
        Ok(project)
    }

    fn manifest(&mut self, path: &Path) -> Result<Arc<Manifest>, ProjectError> {
        if let Some(manifest) = self.manifests.get(path) {
            return Ok(manifest.clone());
        }
        let bytes =
            donmai_grammar::span::read_regular_file(path).map_err(|error| ProjectError::Io {
                path: path.to_path_buf(),
                error,
            })?;
        let text = String::from_utf8(bytes).map_err(|_| ProjectError::NotUtf8 {
            path: path.to_path_buf(),
        })?;
        let display_path = self
            .display_base
            .as_deref()
            .and_then(|base| path.strip_prefix(base).ok())
            .unwrap_or(path);
        let manifest = Arc::new(parse_manifest(path, display_path, &text));
        self.manifests.insert(path.to_path_buf(), manifest.clone());
        Ok(manifest)
    }
}

fn existing_plugin_dirs(manifest: &Manifest, repo_root: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = manifest.plugin_dirs.clone();
    dirs.extend(manifest.dir.iter().map(|dir| dir.join(DEFAULT_PLUGIN_DIR)));
    dirs.extend(repo_root.map(|root| root.join(DEFAULT_PLUGIN_DIR)));
    let mut seen = BTreeSet::new();
    dirs.retain(|dir| dir.is_dir() && seen.insert(dir.clone()));
    dirs
}

const TOP_LEVEL_KEYS: &[&str] = &["integrations", "plugins", "lints"];

fn parse_manifest(path: &Path, display_path: &Path, text: &str) -> Manifest {
    let dir = path.parent().map(Path::to_path_buf);
    let mut manifest = Manifest {
        file: Some(SourceFile::new(display_path, text)),
        dir: dir.clone(),
        ..Manifest::default()
    };
    let (document, errors) = DeTable::parse_recoverable(text);
    for error in &errors {
        let span = error
            .span()
            .map_or(Span::at(0), |range| Span::new(range.start, range.end));
        manifest.diagnostics.push(Diagnostic::new(
            Code::BAD_PROJECT_FILE,
            span,
            format!(
                "{} is not valid TOML: {}",
                PROJECT_FILE_NAME,
                error.message()
            ),
        ));
    }
    let mut reader = ManifestReader {
        manifest: &mut manifest,
        base: dir.unwrap_or_default(),
    };
    for (key, value) in document.get_ref() {
        match key.get_ref().as_ref() {
            "integrations" => reader.integrations(value),
            "plugins" => reader.plugins(value),
            "lints" => reader.lints(value),
            _ => reader.unknown_key(key, "", TOP_LEVEL_KEYS),
        }
    }
    manifest
        .diagnostics
        .sort_by_key(|diagnostic| diagnostic.span);
    manifest
}

struct ManifestReader<'m> {
    manifest: &'m mut Manifest,
    base: PathBuf,
}

fn span_of<T>(spanned: &Spanned<T>) -> Span {
    let range = spanned.span();
    Span::new(range.start, range.end)
}

impl ManifestReader<'_> {
    fn report(&mut self, span: Span, message: String) -> &mut Diagnostic {
        self.manifest
            .diagnostics
            .push(Diagnostic::new(Code::BAD_PROJECT_FILE, span, message));
        let last = self.manifest.diagnostics.len() - 1;
        &mut self.manifest.diagnostics[last]
    }

    fn unknown_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        table: &str,
        known: &[&str],
    ) {
        let name = key.get_ref().as_ref();
        let suggestion = did_you_mean(name, known.iter().copied());
        let place = if table.is_empty() {
            String::new()
        } else {
            format!(" in [{table}]")
        };
        let diagnostic = self.report(
            span_of(key),
            format!("unknown key `{name}`{place} of {PROJECT_FILE_NAME}"),
        );
        diagnostic.help = Some(match suggestion {
            Some(known) => format!("did you mean `{known}`?"),
            None => format!("the known keys here are: {}", known.join(", ")),
        });
    }

    fn table<'v, 'i>(
        &mut self,
        value: &'v Spanned<DeValue<'i>>,
        name: &str,
    ) -> Option<&'v DeTable<'i>> {
        let table = value.get_ref().as_table();
        if table.is_none() {
            self.report(
                span_of(value),
                format!(
                    "`{name}` must be a table, not a {}",
                    value.get_ref().type_str()
                ),
            );
        }
        table
    }

    fn string_list(&mut self, value: &Spanned<DeValue<'_>>, name: &str) -> Vec<(String, Span)> {
        let Some(items) = value.get_ref().as_array() else {
            self.report(
                span_of(value),
                format!(
                    "`{name}` must be a list of strings, not a {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut strings = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(text) => strings.push((text.to_string(), span_of(item))),
                None => {
                    self.report(
                        span_of(item),
                        format!(
                            "`{name}` must hold strings, not a {}",
                            item.get_ref().type_str()
                        ),
                    );
                }
            }
        }
        strings
    }

    fn integrations(&mut self, value: &Spanned<DeValue<'_>>) {
        let Some(table) = self.table(value, "integrations") else {
            return;
        };
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "enabled" => {
                    let names = self.string_list(value, "integrations.enabled");
                    let enabled = self
                        .manifest
                        .enabled_integrations
                        .get_or_insert_with(BTreeSet::new);
                    enabled.extend(names.into_iter().map(|(name, _)| name));
                }
                "projects" => {
                    let Some(projects) = self.table(value, "integrations.projects") else {
                        continue;
                    };
                    for (plugin, list) in projects {
                        let name = format!("integrations.projects.{}", plugin.get_ref());
                        let names = self.string_list(list, &name);
                        self.manifest
                            .integration_projects
                            .entry(plugin.get_ref().to_string())
                            .or_default()
                            .extend(names.into_iter().map(|(name, _)| name));
                    }
                }
                _ => self.unknown_key(key, "integrations", &["enabled", "projects"]),
            }
        }
    }

    fn plugins(&mut self, value: &Spanned<DeValue<'_>>) {
        let Some(table) = self.table(value, "plugins") else {
            return;
        };
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "dirs" => {
                    for (dir, span) in self.string_list(value, "plugins.dirs") {
                        let resolved = self.base.join(&dir);
                        if resolved.is_dir() {
                            self.manifest.plugin_dirs.push(resolved);
                        } else {
                            self.report(span, format!("plugin directory `{dir}` does not exist"))
                                .help = Some(format!(
                                "paths in [plugins] dirs are relative to the directory of {PROJECT_FILE_NAME}"
                            ));
                        }
                    }
                }
                "requireSignatures" => match value.get_ref().as_bool() {
                    Some(required) => self.manifest.require_signatures = required,
                    None => {
                        self.report(
                            span_of(value),
                            "`requireSignatures` must be true or false".to_string(),
                        );
                    }
                },
                "trustedKeys" => {
                    for (file, span) in self.string_list(value, "plugins.trustedKeys") {
                        match load_verifying_key(self.base.join(&file)) {
                            Ok(key) => {
                                self.manifest.trusted_keys.insert(key);
                            }
                            Err(error) => {
                                self.report(
                                    span,
                                    format!("trusted key `{file}` cannot be used: {error}"),
                                )
                                .help = Some(format!(
                                    "an Ed25519 public key (PEM or DER), relative to the directory of {PROJECT_FILE_NAME}"
                                ));
                            }
                        }
                    }
                }
                _ => self.unknown_key(
                    key,
                    "plugins",
                    &["dirs", "requireSignatures", "trustedKeys"],
                ),
            }
        }
    }

    fn lints(&mut self, value: &Spanned<DeValue<'_>>) {
        let Some(table) = self.table(value, "lints") else {
            return;
        };
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            let Some(code) = resolve_code(name) else {
                let names = CATALOG.iter().map(|info| info.name);
                let help = match did_you_mean(name, names) {
                    Some(known) => format!("did you mean `{known}`?"),
                    None => "run `donmaic explain --list` for every code".to_string(),
                };
                self.report(span_of(key), format!("unknown lint `{name}`"))
                    .help = Some(help);
                continue;
            };
            let Some(level) = value.get_ref().as_str().and_then(LintLevel::parse) else {
                self.report(
                    span_of(value),
                    format!("the level of `{name}` must be \"allow\", \"warn\" or \"deny\""),
                );
                continue;
            };
            if let Some(refusal) = level_refusal(code, level) {
                self.report(span_of(value), refusal);
                continue;
            }
            self.manifest.lints.insert(code, level);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("donmai-project-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn parse(text: &str) -> Project {
        Project::from_manifest_text(
            Path::new("/nonexistent/donmai.toml"),
            Path::new("donmai.toml"),
            text,
        )
    }

    #[test]
    fn without_a_manifest_everything_is_enabled() {
        let project = Project::default_for_tests();
        assert!(project.integration_enabled("linear"));
        assert!(project.enabled_integrations().is_none());
        assert_eq!(project.lint_level(Code::TOO_MANY_ROOTS), None);
        assert!(project.diagnostics().is_empty());
    }

    #[test]
    fn reads_integrations_and_lints_by_name_or_code() {
        let project = parse(
            "[integrations]\nenabled = [\"linear\"]\n\n[lints]\ntoo-many-roots = \"allow\"\nDN0202 = \"deny\"\n",
        );
        assert!(
            project.diagnostics().is_empty(),
            "{:?}",
            project.diagnostics()
        );
        assert!(project.integration_enabled("linear"));
        assert!(!project.integration_enabled("slack"));
        assert_eq!(
            project.lint_level(Code::TOO_MANY_ROOTS),
            Some(LintLevel::Allow)
        );
        assert_eq!(
            project.lint_level(Code::UNUSED_OUTPUT),
            Some(LintLevel::Deny)
        );
    }

    #[test]
    fn integration_projects_restrict_and_fail_closed() {
        let project = parse("[integrations.projects]\nlinear = [\"api\", \"web\"]\n");
        assert!(
            project.diagnostics().is_empty(),
            "{:?}",
            project.diagnostics()
        );
        assert!(project.integration_enabled("linear"));
        assert!(project.integration_admits("linear", Some("api")));
        assert!(!project.integration_admits("linear", Some("billing")));
        assert!(!project.integration_admits("linear", None));
        assert!(project.integration_admits("slack", None));
        assert_eq!(
            project.integration_projects("linear").map(|p| p.len()),
            Some(2)
        );
    }

    #[test]
    fn empty_enabled_list_disables_everything() {
        let project = parse("[integrations]\nenabled = []\n");
        assert!(!project.integration_enabled("linear"));
    }

    #[test]
    fn unknown_keys_are_positioned_with_a_suggestion() {
        let text = "[integration]\nenabled = []\n[lints]\ntoo-many-rots = \"allow\"\n";
        let project = parse(text);
        let diagnostics = project.diagnostics();
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
        assert!(diagnostics.iter().all(|d| d.code == Code::BAD_PROJECT_FILE));
        let file = project.manifest_file().expect("manifest kept");
        assert_eq!(file.slice(diagnostics[0].span), "integration");
        assert_eq!(
            diagnostics[0].help.as_deref(),
            Some("did you mean `integrations`?")
        );
        assert_eq!(file.slice(diagnostics[1].span), "too-many-rots");
        assert_eq!(
            diagnostics[1].help.as_deref(),
            Some("did you mean `too-many-roots`?")
        );
    }

    #[test]
    fn errors_cannot_be_allowed_and_levels_must_be_known() {
        let project =
            parse("[lints]\nunknown-key = \"allow\"\ncycle = \"deny\"\nunused-output = \"off\"\n");
        let messages: Vec<&str> = project
            .diagnostics()
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("cannot be set to `allow`"));
        assert!(messages[1].contains("must be \"allow\", \"warn\" or \"deny\""));
        assert_eq!(project.lint_level(Code::CYCLE), Some(LintLevel::Deny));
    }

    #[test]
    fn wrong_types_and_bad_syntax_are_diagnostics() {
        let project = parse("integrations = 3\n[plugins]\ndirs = [1]\n");
        assert_eq!(project.diagnostics().len(), 2);
        let project = parse("[lints\n");
        assert_eq!(project.diagnostics().len(), 1);
        assert!(project.diagnostics()[0].message.contains("not valid TOML"));
    }

    #[test]
    fn discovery_walks_up_and_resolves_plugin_dirs() {
        let root = temp_dir("walk");
        std::fs::create_dir_all(root.join("flows/deep")).expect("mkdir");
        std::fs::create_dir_all(root.join("vendor/plugins")).expect("mkdir");
        std::fs::create_dir_all(root.join(".donmai/plugins")).expect("mkdir");
        std::fs::write(
            root.join(PROJECT_FILE_NAME),
            "[plugins]\ndirs = [\"vendor/plugins\", \"missing\"]\n[integrations]\nenabled = [\"github\"]\n",
        )
        .expect("write toml");
        let project = Project::discover(&root.join("flows/deep")).expect("discover");
        assert_eq!(project.root(), Some(root.as_path()));
        assert!(project.integration_enabled("github"));
        assert!(!project.integration_enabled("linear"));
        assert_eq!(
            project.plugin_dirs(),
            &[root.join("vendor/plugins"), root.join(DEFAULT_PLUGIN_DIR)]
        );
        assert_eq!(
            project.diagnostics().len(),
            1,
            "the missing dir is reported"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn discovery_without_manifest_uses_the_repository_plugin_dir() {
        let root = temp_dir("repo");
        std::fs::create_dir_all(root.join(".git")).expect("mkdir");
        std::fs::create_dir_all(root.join(".donmai/plugins")).expect("mkdir");
        std::fs::create_dir_all(root.join("a")).expect("mkdir");
        let project = Project::discover(&root.join("a")).expect("discover");
        assert!(project.manifest_file().is_none());
        assert_eq!(project.plugin_dirs(), &[root.join(DEFAULT_PLUGIN_DIR)]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cache_reads_each_manifest_once() {
        let root = temp_dir("cache");
        std::fs::create_dir_all(root.join("a")).expect("mkdir");
        std::fs::create_dir_all(root.join("b")).expect("mkdir");
        std::fs::write(
            root.join(PROJECT_FILE_NAME),
            "[lints]\nunused-output = \"allow\"\n",
        )
        .expect("write toml");
        let mut cache = ProjectCache::new();
        let a = cache.discover(&root.join("a")).expect("a");
        // A manifest changed after the first read is not read again.
        std::fs::write(root.join(PROJECT_FILE_NAME), "garbage = [").expect("rewrite");
        let b = cache.discover(&root.join("b")).expect("b");
        assert!(Arc::ptr_eq(&a.manifest, &b.manifest));
        assert_eq!(b.lint_level(Code::UNUSED_OUTPUT), Some(LintLevel::Allow));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn non_utf8_manifest_is_an_error() {
        let root = temp_dir("utf8");
        std::fs::write(root.join(PROJECT_FILE_NAME), [0xff, 0xfe]).expect("write");
        let error = Project::discover(&root).expect_err("not UTF-8");
        assert!(error.to_string().contains("not valid UTF-8"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn resolves_codes_by_any_spelling() {
        assert_eq!(resolve_code("DN0200"), Some(Code::TOO_MANY_ROOTS));
        assert_eq!(resolve_code("dn200"), Some(Code::TOO_MANY_ROOTS));
        assert_eq!(resolve_code("too-many-roots"), Some(Code::TOO_MANY_ROOTS));
        assert_eq!(resolve_code("nope"), None);
    }
}
