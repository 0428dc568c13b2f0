//! Where a run's plugin verbs are served over HTTP, decided before the run
//! starts.
//!
//! For each plugin major whose verbs a plan calls (not the builtin `core`,
//! not gates, which wait for signals), the first that applies:
//! 1. `--plugin-endpoint NAME@MAJOR=URL`;
//! 2. `--plugin-endpoint NAME=URL`;
//! 3. the `endpoint` of that major's manifest in the project's plugin
//!    registry, when the project enables the plugin (`[integrations]` of
//!    `donmai.toml`; a project without the list enables every plugin).
//!
//! The manifest's `endpointTimeoutMs` bounds the calls whichever URL serves
//! them. Every URL is checked here, so a malformed URL, or an `https://` one
//! in a build without HTTPS, stops `run` before it starts instead of failing
//! the first call; a plan whose plugin manifests have errors is refused the
//! same way (`donmaic check` would refuse the workflow for them).
//!
//! The project is the one around the file `run` was given (a workflow or a
//! `.dplan`: the same rule as the default store), and around the current
//! directory for `run --resume`. Endpoints never enter a plan: the same plan,
//! with the same content hash, runs against whatever a deployment serves.

use donmai_compiler::plugins::{LoadedPlugins, registry_for};
use donmai_compiler::project::Project;
use donmai_compiler::render::{Format, RenderOptions, render};
use donmai_compiler::report::{CheckReport, FileReport};
use donmai_runtime::exec::core::is_core;
use donmai_runtime::exec::http::{HTTPS_SUPPORTED, PluginEndpoint, check_endpoint_url, is_https};
use donmai_runtime::plan::model::{Plan, VerbKind};
use donmai_stdlib::manifest::{PluginOrigin, endpoint_url_problem, plugin_name_error};
use donmai_stdlib::registry::LoadReport;
use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One `--plugin-endpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Override {
    name: String,
    major: Option<u32>,
    url: String,
}

/// The `--plugin-endpoint` flags of a command, checked.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    list: Vec<Override>,
}

impl Overrides {
    /// Each spec is `PLUGIN=URL` or `PLUGIN@MAJOR=URL`; the URL must be a
    /// valid endpoint (the rule plugin manifests follow).
    pub fn parse(specs: &[String]) -> Result<Overrides, String> {
        let mut list: Vec<Override> = Vec::new();
        for spec in specs {
            let parsed = parse_override(spec)?;
            if let Some(earlier) = list
                .iter()
                .find(|o| o.name == parsed.name && o.major == parsed.major)
            {
                return Err(format!(
                    "--plugin-endpoint is given twice for `{}` ({} and {}); give it once",
                    pin_text(&parsed.name, parsed.major),
                    earlier.url,
                    parsed.url
                ));
            }
            list.push(parsed);
        }
        Ok(Overrides { list })
    }

    /// The override for `name@major`: the one naming the major, else the
    /// one naming the plugin; with its index.
    fn find(&self, name: &str, major: u32) -> Option<(usize, &Override)> {
        let exact = self
            .list
            .iter()
            .position(|o| o.name == name && o.major == Some(major));
        let any = || {
            self.list
                .iter()
                .position(|o| o.name == name && o.major.is_none())
        };
        exact.or_else(any).map(|i| (i, &self.list[i]))
    }

    /// `--plugin-endpoint` flags that name no plugin major any of these
    /// resolutions used, as the user wrote their plugin part.
    pub fn unused<'r>(&self, resolutions: impl IntoIterator<Item = &'r Resolution>) -> Vec<String> {
        let mut used = BTreeSet::new();
        for resolution in resolutions {
            used.extend(resolution.used_overrides.iter().copied());
        }
        self.list
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(i))
            .map(|(_, o)| pin_text(&o.name, o.major))
            .collect()
    }
}

fn pin_text(name: &str, major: Option<u32>) -> String {
    match major {
        Some(major) => format!("{name}@{major}"),
        None => name.to_string(),
    }
}

/// `linear=http://…` or `linear@1=http://…`. Messages never repeat the URL:
/// it may carry a password.
fn parse_override(spec: &str) -> Result<Override, String> {
    let shown = spec
        .split_once('=')
        .or_else(|| spec.split_once("://"))
        .map_or(spec, |(before, _)| before);
    let bad = || {
        format!(
            "--plugin-endpoint `{shown}…`: expected PLUGIN=URL or PLUGIN@MAJOR=URL, e.g. linear=http://127.0.0.1:8080/verbs"
        )
    };
    let (plugin, url) = spec.split_once('=').ok_or_else(bad)?;
    let (name, major) = match plugin.split_once('@') {
        Some((name, major)) => (name, Some(major)),
        None => (plugin, None),
    };
    let name_ok = plugin_name_error(name).is_none();
    let major = match major {
        None => None,
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            Some(text.parse::<u32>().map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
    };
    if !name_ok {
        return Err(bad());
    }
    if let Some(problem) = endpoint_url_problem(url) {
        return Err(format!(
            "--plugin-endpoint for `{plugin}`: {}",
            problem.message
        ));
    }
    Ok(Override {
        name: name.to_string(),
        major,
        url: url.to_string(),
    })
}

/// The project a run belongs to, and its plugin registry.
pub struct ProjectPlugins {
    project: Project,
    plugins: Arc<LoadedPlugins>,
}

impl ProjectPlugins {
    /// The project around `near` (a file's folder, or a directory).
    pub fn discover(near: &Path) -> Result<ProjectPlugins, String> {
        let project = Project::discover(near).map_err(|e| e.to_string())?;
        let plugins = registry_for(&project);
        Ok(ProjectPlugins { project, plugins })
    }

    /// The load report of a third-party manifest file.
    fn report_of(&self, path: &Path) -> Option<&LoadReport> {
        self.plugins.reports.iter().find(|r| r.path == path)
    }

    fn broken_reports(&self) -> impl Iterator<Item = &LoadReport> {
        self.plugins
            .reports
            .iter()
            .filter(|r| r.diagnostics.iter().any(|d| d.is_error()))
    }
}

/// Why a plan cannot run here: the message, and the manifest diagnostics
/// behind it, rendered as `donmaic check` renders them (may be empty).
#[derive(Debug)]
pub struct Refused {
    pub diagnostics: String,
    pub message: String,
}

impl Refused {
    fn new(message: String) -> Refused {
        Refused {
            diagnostics: String::new(),
            message,
        }
    }
}

/// Where one plugin major's URL came from, for messages.
enum Source {
    CommandLine,
    Manifest(PathBuf),
}

/// The endpoints of one plan.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    /// `name@major` → endpoint, for every plugin major that has one.
    pub endpoints: Vec<(String, PluginEndpoint)>,
    /// Things the user should know before the run starts.
    pub warnings: Vec<String>,
    used_overrides: BTreeSet<usize>,
}

/// Resolves the endpoints of the plugin majors `plan` calls (module doc).
pub fn resolve(
    plan: &Plan,
    project: &ProjectPlugins,
    overrides: &Overrides,
) -> Result<Resolution, Refused> {
    let pins: BTreeSet<(&str, u32)> = plan
        .verbs
        .iter()
        .filter(|verb| !is_core(verb) && verb.kind != VerbKind::Gate)
        .map(|verb| (verb.plugin.as_str(), verb.major))
        .collect();
    let registry = &project.plugins.registry;
    let mut resolution = Resolution::default();
    let mut broken: Vec<&LoadReport> = Vec::new();
    for (name, major) in pins {
        let pin = format!("{name}@{major}");
        let manifest = registry.plugin(name, major);
        match manifest.map(|plugin| &plugin.origin) {
            Some(PluginOrigin::File(path)) => {
                if let Some(report) = project.report_of(path)
                    && report.diagnostics.iter().any(|d| d.is_error())
                    && !broken.iter().any(|b| b.path == report.path)
                {
                    broken.push(report);
                }
            }
            Some(PluginOrigin::Bundled(_)) => {}
            // Its manifest may be one that failed to load.
            None => {
                for report in project.broken_reports() {
                    if !broken.iter().any(|b| b.path == report.path) {
                        broken.push(report);
                    }
                }
            }
        }
        let timeout = manifest
            .and_then(|plugin| plugin.endpoint_timeout_ms)
            .map(Duration::from_millis);
        let declared = manifest.and_then(|plugin| {
            let url = plugin.endpoint.as_deref()?;
            Some((url, plugin.origin.path().to_path_buf()))
        });
        let (url, source) = match overrides.find(name, major) {
            Some((index, chosen)) => {
                resolution.used_overrides.insert(index);
                (chosen.url.clone(), Source::CommandLine)
            }
            None => match declared {
                Some((url, path)) if project.project.integration_enabled(name) => {
                    (url.to_string(), Source::Manifest(path))
                }
                Some((_, path)) => {
                    resolution.warnings.push(format!(
                        "plugin `{pin}` declares an endpoint in {}, but the project does not enable `{name}` ([integrations] enabled in {}); its verbs are not served here",
                        path.display(),
                        project
                            .project
                            .manifest_file()
                            .map_or_else(|| "donmai.toml".into(), |f| f.path().display().to_string())
                    ));
                    continue;
                }
                None => continue,
            },
        };
        let origin = || match &source {
            Source::CommandLine => "--plugin-endpoint".to_string(),
            Source::Manifest(path) => format!("`endpoint` in {}", path.display()),
        };
        if is_https(&url) && !HTTPS_SUPPORTED {
            return Err(Refused::new(format!(
                "plugin `{pin}` cannot be served: {}: `{url}` needs HTTPS, which this donmai was built without: rebuild it with `cargo build -p donmai-worker --features https`, or serve the plugin over http:// on a trusted network",
                origin()
            )));
        }
        if let Err(problem) = check_endpoint_url(&url) {
            return Err(Refused::new(format!(
                "plugin `{pin}` cannot be served: {}: {problem}",
                origin()
            )));
        }
        resolution
            .endpoints
            .push((pin, PluginEndpoint::new(url).with_default_timeout(timeout)));
    }
    if !broken.is_empty() {
        return Err(manifests_refused(&broken));
    }
    Ok(resolution)
}

fn manifests_refused(broken: &[&LoadReport]) -> Refused {
    let mut report = CheckReport::default();
    let mut unreadable = String::new();
    for load in broken {
        match &load.source {
            Some(source) => report.files.push(FileReport::new(
                (**source).clone(),
                load.diagnostics.clone(),
            )),
            None => {
                for diagnostic in &load.diagnostics {
                    unreadable.push_str(&format!(
                        "error: {}: {}\n",
                        load.path.display(),
                        diagnostic.message
                    ));
                }
            }
        }
    }
    // The summary line counts the files shown: these manifests.
    report.files_checked = report.files.len();
    let options = RenderOptions {
        color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        deny_warnings: false,
    };
    let names: Vec<String> = broken
        .iter()
        .map(|load| load.path.display().to_string())
        .collect();
    Refused {
        diagnostics: format!("{unreadable}{}", render(&report, Format::Human, &options)),
        message: format!(
            "the plan's plugins are described by manifests with errors ({}); fix them first (`donmaic check` shows the same)",
            names.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_refuse() {
        let parsed = Overrides::parse(&[
            "linear=http://127.0.0.1:9/v".into(),
            "linear@2=https://x.example".into(),
        ])
        .unwrap();
        assert_eq!(
            parsed.list[0],
            Override {
                name: "linear".into(),
                major: None,
                url: "http://127.0.0.1:9/v".into()
            }
        );
        assert_eq!(parsed.list[1].major, Some(2));
        assert_eq!(parsed.find("linear", 2).unwrap().0, 1);
        assert_eq!(parsed.find("linear", 1).unwrap().0, 0);
        assert!(parsed.find("slack", 1).is_none());
        for (bad, needle) in [
            ("linear", "expected PLUGIN=URL"),
            ("=http://x", "expected PLUGIN=URL"),
            ("Linear=http://x", "expected PLUGIN=URL"),
            ("linear@=http://x", "expected PLUGIN=URL"),
            ("linear@99999999999=http://x", "expected PLUGIN=URL"),
            ("linear=ftp://x", "`ftp` endpoints are not supported"),
            ("linear=/verbs", "not an absolute URL"),
            ("linear=http://u:pw@x/", "must not carry credentials"),
        ] {
            let message = Overrides::parse(&[bad.into()]).unwrap_err();
            assert!(message.contains(needle), "{bad}: {message}");
            assert!(!message.contains("pw@"), "{message}");
        }
        let twice =
            Overrides::parse(&["acme=http://a/".into(), "acme=http://b/".into()]).unwrap_err();
        assert!(twice.contains("given twice for `acme`"), "{twice}");
    }
}
