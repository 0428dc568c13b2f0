//! The plugin registry a project sees: the bundled plugins plus those in its
//! plugin folders, loaded once per distinct set of folders and shared by
//! every file of a run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use donmai_stdlib::manifest::PluginOrigin;
use donmai_stdlib::registry::{LoadReport, Registry};

use crate::plugin_tool::signature_diagnostic;

use crate::project::Project;

/// A loaded registry and what loading its manifests reported.
pub struct LoadedPlugins {
    pub registry: Registry,
    pub reports: Vec<LoadReport>,
}

/// What a project's registry depends on: the plugin folders and the
/// signature policy. Projects with equal keys share one registry.
pub type RegistryKey = (Vec<PathBuf>, bool, Vec<String>);
type Cache = Mutex<HashMap<RegistryKey, Arc<LoadedPlugins>>>;

pub fn registry_key(project: &Project) -> RegistryKey {
    (
        project.plugin_dirs().to_vec(),
        project.require_signatures(),
        project
            .trusted_keys()
            .ids()
            .map(|id| id.to_string())
            .collect(),
    )
}

/// Loads the registry `project` sees, uncached: the bundled plugins, those
/// of its plugin folders, less the manifests its signature policy refuses.
pub fn load_registry(project: &Project) -> LoadedPlugins {
    let (mut registry, mut reports) = Registry::with_plugin_dirs(project.plugin_dirs());
    apply_signature_policy(project, &mut registry, &mut reports);
    LoadedPlugins { registry, reports }
}

/// The registry for `project`, loaded at most once per process.
pub fn registry_for(project: &Project) -> Arc<LoadedPlugins> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key = registry_key(project);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return found;
    }
    let loaded = Arc::new(load_registry(project));
    if let Ok(mut cache) = cache.lock() {
        cache.entry(key).or_insert_with(|| loaded.clone());
    }
    loaded
}

/// Refuses the third-party manifests whose signature the project's policy
/// rejects (see [`signature_diagnostic`]), reporting each in its manifest.
/// A refused plugin is absent, so workflows naming it say so too.
fn apply_signature_policy(project: &Project, registry: &mut Registry, reports: &mut [LoadReport]) {
    let trusted = project.trusted_keys();
    let required = project.require_signatures();
    registry.refuse_loaded(|plugin| {
        let Some(problem) = signature_diagnostic(plugin, trusted, required) else {
            return false;
        };
        if let PluginOrigin::File(path) = &plugin.origin
            && let Some(report) = reports.iter_mut().find(|r| &r.path == path)
        {
            report.diagnostics.push(problem);
        }
        true
    });
}
