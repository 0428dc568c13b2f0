//! The bundled integration catalogs: every manifest lints clean, follows the
//! catalog's conventions (descriptions on every port, auth scopes, keys on
//! writes), and every verb and event is exercised by a workflow that checks
//! clean and by one that misuses it and gets a diagnostic inside the step;
//! `docs/verbs.md` is the generated reference, current.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use donmai_compiler::catalog::reference_markdown;
use donmai_compiler::check::check_file;
use donmai_compiler::check::palette::verb_status;
use donmai_compiler::driver::{CheckOptions, FixMode, run_check};
use donmai_compiler::plugin_tool::lint_plugin;
use donmai_grammar::lower::parse_workflow;
use donmai_grammar::{Diagnostic, SourceFile};
use donmai_stdlib::manifest::{
    BUILTIN_PLUGINS, DeprecationStatus, Plugin, SideEffectClass, Verb, VerbKind,
};
use donmai_stdlib::registry::Registry;
use serde_json::Value;

use donmai_tests::workspace;

/// Workflow files under `dir`: not group files (they check through their
/// users), not `_` helpers, not snapshots or hidden folders.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    donmai_tests::yaml_files(dir, |folder| {
        folder == "snapshots" || folder == "groups" || folder.starts_with('.')
    })
    .into_iter()
    .filter(|path| {
        !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('_'))
    })
    .collect()
}

/// `(plugin@major:verb, plugin, verb)` for every bundled verb.
fn bundled_verbs(registry: &Registry) -> Vec<(String, &Plugin, &Verb)> {
    let mut verbs = Vec::new();
    for plugin in registry.plugins() {
        for verb in &plugin.verbs {
            verbs.push((
                format!("{}@{}:{}", plugin.name, plugin.major(), verb.id),
                plugin,
                verb,
            ));
        }
    }
    verbs
}

/// The diagnostics `donmaic check FILE` reports for the file itself.
fn diagnostics_of(path: &Path) -> (SourceFile, Vec<Diagnostic>) {
    let options = CheckOptions {
        paths: vec![path.to_path_buf()],
        lint_levels: Vec::new(),
        fix: FixMode::Report,
        threads: None,
    };
    let run = run_check(&options, &check_file);
    let text = std::fs::read_to_string(path).expect("read");
    let diagnostics = run
        .report
        .files
        .into_iter()
        .find(|report| report.source.path() == path)
        .map(|report| report.diagnostics)
        .unwrap_or_default();
    (SourceFile::new(path.to_path_buf(), text), diagnostics)
}

#[test]
fn the_verb_reference_is_current() {
    let path = workspace().join("docs/verbs.md");
    let expected = reference_markdown(Registry::bundled());
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == expected,
        "docs/verbs.md is not current: run\n  cargo run -p donmai-compiler --bin donmaic -- verbs --all --format markdown > docs/verbs.md"
    );
}

#[test]
fn bundled_manifests_lint_clean() {
    let (registry, reports) = Registry::load_bundled();
    for report in &reports {
        assert!(
            report.diagnostics.is_empty(),
            "{}: {:#?}",
            report.path.display(),
            report.diagnostics
        );
        let source = report.source.as_ref().expect("bundled source");
        for plugin in registry
            .plugins()
            .filter(|p| p.origin.path() == report.path)
        {
            let problems = lint_plugin(source, plugin);
            assert!(problems.is_empty(), "{}: {problems:#?}", plugin.pin());
        }
    }
}

/// Properties of `schema` (recursively) without a `description`, as
/// JSON pointers.
fn undescribed(schema: &Value, pointer: &str, out: &mut Vec<String>) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let at = format!("{pointer}/properties/{name}");
            if property
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(at.clone());
            }
            undescribed(property, &at, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undescribed(items, &format!("{pointer}/items"), out);
    }
}

#[test]
fn catalog_verbs_follow_the_conventions() {
    let registry = Registry::bundled();
    let mut problems = Vec::new();
    for plugin in registry.plugins() {
        if BUILTIN_PLUGINS.contains(&plugin.name.as_str()) {
            continue;
        }
        let pin = plugin.pin();
        if plugin.auth.is_none() {
            problems.push(format!("{pin}: no `auth`"));
        }
        for verb in &plugin.verbs {
            let at = format!("{pin}:{}", verb.id);
            if verb.description.is_none() {
                problems.push(format!("{at}: no description"));
            }
            if verb.side_effect_class == SideEffectClass::ExternalWrite
                && verb.idempotency_key.is_none()
            {
                problems.push(format!("{at}: external-write without idempotencyKey"));
            }
            if plugin.auth.is_some() && verb.auth_scopes.is_none() {
                problems.push(format!(
                    "{at}: no authScopes (`[]` when the credential alone is enough)"
                ));
            }
            let mut missing = Vec::new();
            undescribed(&verb.input_schema, "inputSchema", &mut missing);
            if let Some(output) = &verb.output_schema {
                undescribed(output, "outputSchema", &mut missing);
            }
            problems.extend(
                missing
                    .into_iter()
                    .map(|m| format!("{at}: {m} has no description")),
            );
        }
        for event in &plugin.event_types {
            let mut missing = Vec::new();
            undescribed(&event.payload_schema, "payloadSchema", &mut missing);
            problems.extend(
                missing
                    .into_iter()
                    .map(|m| format!("{pin} event {}: {m} has no description", event.name)),
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_verb_and_event_is_used_by_a_clean_workflow() {
    let registry = Registry::bundled();
    let root = workspace();
    let mut files = yaml_files(&root.join("tests/corpus/ok"));
    files.extend(yaml_files(&root.join("examples")));
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    let used = |needle: &str| texts.iter().any(|t| t.contains(needle));
    let mut missing = Vec::new();
    let mut subscribed: BTreeSet<&str> = BTreeSet::new();
    for (pin, _, verb) in bundled_verbs(registry) {
        // A verb past its date cannot be used cleanly; its misuse case is
        // the only use it gets.
        if verb_status(verb) == DeprecationStatus::Removed {
            continue;
        }
        // A trigger verb describes a subscription; workflows use it through
        // a `signal` trigger on one of its events.
        let as_trigger = verb.kind == VerbKind::Trigger
            && verb.event_subscription.iter().any(|event| used(event));
        if used(&pin) || as_trigger {
            subscribed.extend(verb.event_subscription.iter().map(String::as_str));
        } else {
            missing.push(format!("verb {pin}"));
        }
    }
    for plugin in registry.plugins() {
        for event in &plugin.event_types {
            if !subscribed.contains(event.name.as_str()) && !used(&event.name) {
                missing.push(format!("event {}", event.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not used by any clean workflow under tests/corpus/ok or examples ({}):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn every_verb_is_misused_by_an_err_case() {
    let registry = Registry::bundled();
    let mut misused: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in yaml_files(&workspace().join("tests/corpus/err")) {
        let (source, diagnostics) = diagnostics_of(&path);
        let parsed = parse_workflow(source.text());
        let Some(workflow) = parsed.workflow else {
            continue;
        };
        for step in &workflow.steps {
            let Some(action) = &step.action else {
                continue;
            };
            let inside = diagnostics
                .iter()
                .any(|d| d.span.start >= step.span.start && d.span.end <= step.span.end);
            if inside {
                misused
                    .entry(action.value.clone())
                    .or_insert_with(|| path.clone());
            }
        }
    }
    let missing: Vec<String> = bundled_verbs(registry)
        .into_iter()
        .map(|(pin, _, _)| pin)
        .filter(|pin| !misused.contains_key(pin))
        .collect();
    assert!(
        missing.is_empty(),
        "no err case under tests/corpus/err misuses ({}):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

/// A gate's output is the data of the signal that resumed it: the payload
/// of the event it waits for, with the fields the gate verb declares, which
/// its plugin adds when it resumes the gate. Where the two name the same
/// field they must agree on its type, or the checker would type it one way
/// and the signal carry it another.
#[test]
fn gate_outputs_agree_with_their_events_payloads() {
    let registry = Registry::bundled();
    let mut problems = Vec::new();
    for (pin, _, verb) in bundled_verbs(registry) {
        if verb.kind != VerbKind::Gate {
            continue;
        }
        let donmai_stdlib::types::Type::Object(output) = verb.output_type() else {
            continue;
        };
        for event in &verb.event_subscription {
            let Some((_, declared)) = registry.event(event) else {
                problems.push(format!(
                    "{pin}: waits for `{event}`, which no plugin declares"
                ));
                continue;
            };
            let donmai_stdlib::types::Type::Object(payload) = declared.payload_type() else {
                continue;
            };
            for (name, field) in &output.fields {
                if let Some(carried) = payload.fields.get(name)
                    && !carried.ty.is_assignable_to(&field.ty)
                {
                    problems.push(format!(
                        "{pin}: output `{name}` is `{}`, `{event}` carries `{}`",
                        field.ty, carried.ty
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
