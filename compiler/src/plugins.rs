//! The plugin registry a project sees: the bundled plugins plus those in its
//! plugin folders, loaded once per distinct set of folders and shared by
//! every file of a run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use donmai_stdlib::registry::{LoadReport, Registry};

use crate::project::Project;

/// A loaded registry and what loading its manifests reported.
pub struct LoadedPlugins {
    pub registry: Registry,
    pub reports: Vec<LoadReport>,
}

type Cache = Mutex<HashMap<Vec<PathBuf>, Arc<LoadedPlugins>>>;

/// The registry for `project`, loaded at most once per process.
pub fn registry_for(project: &Project) -> Arc<LoadedPlugins> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let dirs = project.plugin_dirs().to_vec();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&dirs).cloned()) {
        return found;
    }
    let (registry, reports) = Registry::with_plugin_dirs(&dirs);
    let loaded = Arc::new(LoadedPlugins { registry, reports });
    if let Ok(mut cache) = cache.lock() {
        cache.entry(dirs).or_insert_with(|| loaded.clone());
    }
    loaded
}
