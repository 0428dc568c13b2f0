//! Which plugins and verbs a workflow may use: the rules the checker applies
//! to `requires` entries and `config.action` (DN0111, DN0112, DN0114,
//! DN0116, DN0117), in one place, so that the editor offers exactly the
//! verbs the checker accepts for the project.

use std::collections::HashSet;

use donmai_grammar::ast::{StepType, Workflow};
use donmai_stdlib::manifest::{BUILTIN_PLUGINS, DeprecationStatus, Plugin, Verb, VerbKind};
use donmai_stdlib::registry::Registry;

use super::{parse_pin, values};
use crate::project::Project;

/// Why a project does not let a workflow use an installed plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginDenial {
    /// An integration `donmai.toml` does not enable (DN0112).
    NotEnabled,
    /// An integration enabled for other projects only (DN0117).
    ScopeDenied,
}

/// Whether `project` denies a workflow whose `metadata.scope.project` is
/// `workflow_project` the plugin `name`. Plugins that ship with donmai are
/// never denied.
pub fn plugin_denial(
    project: &Project,
    name: &str,
    workflow_project: Option<&str>,
) -> Option<PluginDenial> {
    if BUILTIN_PLUGINS.contains(&name) {
        None
    } else if !project.integration_enabled(name) {
        Some(PluginDenial::NotEnabled)
    } else if !project.integration_admits(name, workflow_project) {
        Some(PluginDenial::ScopeDenied)
    } else {
        None
    }
}

/// Where a verb stands today in its deprecation schedule.
pub fn verb_status(verb: &Verb) -> DeprecationStatus {
    verb.deprecation_status(values::today())
}

/// The verb kind a step type runs, if it runs a verb.
pub fn verb_kind_for(step_type: StepType) -> Option<VerbKind> {
    match step_type {
        StepType::Condition => Some(VerbKind::Condition),
        StepType::Action => Some(VerbKind::Action),
        StepType::Gate => Some(VerbKind::Gate),
        StepType::Trigger | StepType::Group | StepType::Loop => None,
    }
}

/// A verb a step may name.
#[derive(Clone, Debug)]
pub struct VerbOffer<'r> {
    /// As `config.action` writes it: `plugin@major:verb`.
    pub pin: String,
    pub plugin: &'r Plugin,
    pub verb: &'r Verb,
    /// Deprecated but still compiling (a warning).
    pub deprecated: bool,
}

/// The plugins of `workflow`'s `requires` the checker lets its steps use:
/// the first entry of each plugin with a valid pin, installed at that
/// major, not denied by the project.
pub fn required_plugins<'r>(
    workflow: &Workflow,
    project: &Project,
    registry: &'r Registry,
) -> Vec<&'r Plugin> {
    let workflow_project = workflow.metadata.project.as_ref().map(|p| p.value.as_str());
    let mut seen = HashSet::new();
    let mut plugins = Vec::new();
    for require in &workflow.requires {
        let Some((name, major)) = parse_pin(&require.plugin.value) else {
            continue;
        };
        if !seen.insert(name) {
            continue;
        }
        if plugin_denial(project, name, workflow_project).is_some() {
            continue;
        }
        if let Some(plugin) = registry.plugin(name, major) {
            plugins.push(plugin);
        }
    }
    plugins
}

/// The verbs a step of `step_type` (any verb-running type when `None`) in
/// `workflow` may name without an error: of a plugin [`required_plugins`]
/// keeps, not removed, of the kind the step runs.
pub fn verbs<'r>(
    workflow: &Workflow,
    project: &Project,
    registry: &'r Registry,
    step_type: Option<StepType>,
) -> Vec<VerbOffer<'r>> {
    let kind = match step_type {
        Some(step_type) => match verb_kind_for(step_type) {
            Some(kind) => Some(kind),
            None => return Vec::new(),
        },
        None => None,
    };
    let mut offers = Vec::new();
    for plugin in required_plugins(workflow, project, registry) {
        for verb in &plugin.verbs {
            if kind.is_some_and(|kind| verb.kind != kind) {
                continue;
            }
            let status = verb_status(verb);
            if status == DeprecationStatus::Removed {
                continue;
            }
            offers.push(VerbOffer {
                pin: format!("{}@{}:{}", plugin.name, plugin.major(), verb.id),
                plugin,
                verb,
                deprecated: status == DeprecationStatus::Deprecated,
            });
        }
    }
    offers
}

/// The installed plugin majors a `requires` entry may name for a workflow
/// of `workflow_project`: not denied by the project.
pub fn installable_plugins<'r>(
    project: &Project,
    registry: &'r Registry,
    workflow_project: Option<&str>,
) -> Vec<&'r Plugin> {
    registry
        .plugins()
        .filter(|plugin| plugin_denial(project, &plugin.name, workflow_project).is_none())
        .collect()
}
