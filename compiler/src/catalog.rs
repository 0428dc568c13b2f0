//! The verb catalog as people read it: what a plugin, verb or event type is
//! and which ports it has, in markdown (hover, `donmaic verbs show`, the
//! generated `docs/verbs.md`) and JSON (`--format json`), and the palette a
//! project sees (`donmaic verbs`). The checker's own rules decide what the
//! palette holds ([`crate::check::palette`]); this module only describes.

use std::fmt::Write as _;

use donmai_stdlib::manifest::{DeprecationStatus, EventType, Plugin, Verb};
use donmai_stdlib::registry::{Registry, VerbRef};
use donmai_stdlib::types::{ObjectType, Type};
use serde_json::{Value as Json, json};

use crate::check::palette::{PluginDenial, plugin_denial, verb_status};
use crate::project::Project;
use crate::report::plural;

/// A verb as markdown: pin, description, kind, side effects, routing, auth,
/// idempotency key, deprecation and the port tables. With `status` (hover,
/// the CLI) the deprecation says where the verb stands today; without it
/// (the generated reference) only the dates, so the text never ages.
pub fn verb_markdown(plugin: &Plugin, verb: &Verb, status: Option<DeprecationStatus>) -> String {
    let mut out = format!("**`{}@{}:{}`**", plugin.name, plugin.major(), verb.id);
    if let Some(description) = &verb.description {
        out.push_str(&format!("\n\n{description}"));
    }
    out.push_str(&format!(
        "\n\n{} · side effects: **{}**",
        verb.kind.as_str(),
        verb.side_effect_class.as_str()
    ));
    if let Some(port) = &verb.route_by {
        out.push_str(&format!(" · routes by `{port}`"));
    }
    let handles = verb.handles();
    if !handles.is_empty() {
        out.push_str(&format!(" · handles {}", code_list(&handles)));
    }
    if !verb.event_subscription.is_empty() {
        out.push_str(&format!(
            " · waits for {}",
            code_list(&verb.event_subscription)
        ));
    }
    if let Some(scopes) = verb.auth_scopes.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(&format!("\n\nauth scopes: {}", code_list(scopes)));
    }
    if let Some(key) = &verb.idempotency_key {
        out.push_str(&format!("\n\nidempotency key: `{key}`"));
    }
    if let Some(deprecation) = &verb.deprecation {
        let status = match status {
            Some(DeprecationStatus::Removed) => "⚠ removed",
            Some(DeprecationStatus::Deprecated) => "⚠ deprecated",
            Some(DeprecationStatus::Active) => "⚠ to be deprecated",
            None => "deprecated",
        };
        out.push_str(&format!("\n\n{status} (since {}", deprecation.since));
        if let Some(after) = deprecation.after {
            out.push_str(&format!(", stops compiling after {after}"));
        }
        out.push(')');
        if let Some(successor) = &deprecation.successor {
            out.push_str(&format!(": use `{successor}`"));
        }
    }
    if let Type::Object(inputs) = verb.input_type() {
        out.push_str("\n\n**Inputs**\n\n");
        out.push_str(&object_table(&inputs, Some(&verb.input_schema)));
    }
    match verb.output_type() {
        Type::Object(outputs) if !outputs.fields.is_empty() => {
            out.push_str("\n**Output**\n\n");
            out.push_str(&object_table(&outputs, verb.output_schema.as_ref()));
        }
        Type::Object(_) => {}
        other => out.push_str(&format!("\n**Output**: `{other}`\n")),
    }
    out
}

/// An event type: who declares it, what it carries.
pub fn event_markdown(plugin: &Plugin, event: &EventType) -> String {
    let mut out = format!("**event `{}`** of `{}`", event.name, plugin.pin());
    if let Some(description) = &event.description {
        out.push_str(&format!("\n\n{description}"));
    }
    if let Type::Object(payload) = event.payload_type() {
        out.push_str("\n\n**Payload**\n\n");
        out.push_str(&object_table(&payload, Some(&event.payload_schema)));
    }
    out
}

/// A plugin major in a few lines: version, description, auth, its verbs.
pub fn plugin_markdown(plugin: &Plugin) -> String {
    let mut out = format!(
        "**plugin `{}`** · version {}.{}.{}",
        plugin.pin(),
        plugin.version.major,
        plugin.version.minor,
        plugin.version.patch
    );
    if let Some(description) = &plugin.description {
        out.push_str(&format!("\n\n{description}"));
    }
    if let Some(auth) = &plugin.auth {
        out.push_str(&format!("\n\nauth: {}", auth.kind.as_str()));
        if !auth.scopes.is_empty() {
            out.push_str(&format!(" · scopes {}", code_list(&auth.scopes)));
        }
    }
    let verbs: Vec<&str> = plugin.verbs.iter().map(|v| v.id.as_str()).collect();
    if !verbs.is_empty() {
        out.push_str(&format!("\n\nverbs: {}", code_list(&verbs)));
    }
    out
}

/// The description a JSON Schema gives a property, if any.
pub(crate) fn schema_description<'s>(schema: Option<&'s Json>, name: &str) -> Option<&'s str> {
    schema?
        .get("properties")?
        .get(name)?
        .get("description")?
        .as_str()
}

/// A markdown table of an object type's fields. Pipes in types and
/// descriptions are escaped so a cell stays a cell.
pub(crate) fn object_table(object: &ObjectType, schema: Option<&Json>) -> String {
    if object.fields.is_empty() {
        return "none\n".to_string();
    }
    let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from("| name | type | required | description |\n|---|---|---|---|\n");
    for (name, field) in &object.fields {
        let description = schema_description(schema, name).unwrap_or("");
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            cell(name),
            cell(&field.ty.to_string()),
            if field.required { "yes" } else { "no" },
            cell(description)
        ));
    }
    out
}

fn code_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|item| format!("`{}`", item.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// The palette a project sees.

/// One plugin major of the palette with the verbs a project may use.
pub struct PaletteEntry<'r> {
    pub plugin: &'r Plugin,
    /// Verbs with where they stand today; removed verbs only with `all`.
    pub verbs: Vec<(&'r Verb, DeprecationStatus)>,
    /// Why the project does not let workflows use the plugin, when listed
    /// anyway (`all`), or the projects it is limited to.
    pub note: Option<String>,
}

/// What `donmaic verbs` lists: the installed plugin majors `project`
/// enables (every one with `all`), each with its verbs that still compile
/// (every one with `all`), optionally only the plugin `only` (`name` or
/// `name@major`).
pub fn palette<'r>(
    project: &Project,
    registry: &'r Registry,
    only: Option<&str>,
    all: bool,
) -> Vec<PaletteEntry<'r>> {
    let mut plugins: Vec<&Plugin> = registry.plugins().collect();
    plugins.sort_by(|a, b| (a.name.as_str(), a.major()).cmp(&(b.name.as_str(), b.major())));
    let mut entries = Vec::new();
    for plugin in plugins {
        if let Some(only) = only
            && only != plugin.name
            && only != plugin.pin()
        {
            continue;
        }
        let note = match plugin_denial(project, &plugin.name, None) {
            Some(PluginDenial::NotEnabled) => {
                if !all {
                    continue;
                }
                Some("not enabled in donmai.toml".to_string())
            }
            // Enabled for some projects only: listed, with the projects.
            _ => project.integration_projects(&plugin.name).map(|projects| {
                let names: Vec<&str> = projects.iter().map(String::as_str).collect();
                format!("only for projects {}", code_list(&names))
            }),
        };
        let verbs = plugin
            .verbs
            .iter()
            .map(|verb| (verb, verb_status(verb)))
            .filter(|(_, status)| all || *status != DeprecationStatus::Removed)
            .collect();
        entries.push(PaletteEntry {
            plugin,
            verbs,
            note,
        });
    }
    entries
}

/// The palette as aligned text, one verb per line under its plugin.
pub fn palette_text(entries: &[PaletteEntry<'_>]) -> String {
    let width = entries
        .iter()
        .flat_map(|e| e.verbs.iter().map(|(v, _)| v.id.len()))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for entry in entries {
        let _ = write!(out, "{}", entry.plugin.pin());
        if let Some(description) = &entry.plugin.description {
            let _ = write!(out, "  {description}");
        }
        if let Some(note) = &entry.note {
            let _ = write!(out, "  ({note})");
        }
        out.push('\n');
        for (verb, status) in &entry.verbs {
            let _ = write!(
                out,
                "  {:<width$}  {:<9}  {:<14}",
                verb.id,
                verb.kind.as_str(),
                verb.side_effect_class.as_str()
            );
            match status {
                DeprecationStatus::Removed => out.push_str("  [removed]"),
                DeprecationStatus::Deprecated => out.push_str("  [deprecated]"),
                DeprecationStatus::Active => {}
            }
            if let Some(description) = &verb.description {
                let _ = write!(out, "  {description}");
            }
            out.push('\n');
        }
    }
    out
}

/// The palette as one JSON document.
pub fn palette_json(entries: &[PaletteEntry<'_>]) -> Json {
    let plugins: Vec<Json> = entries
        .iter()
        .map(|entry| {
            let mut plugin = plugin_json(entry.plugin);
            plugin["verbs"] = entry
                .verbs
                .iter()
                .map(|(verb, status)| verb_summary_json(entry.plugin, verb, *status))
                .collect();
            if let Some(note) = &entry.note {
                plugin["note"] = json!(note);
            }
            plugin
        })
        .collect();
    json!({ "plugins": plugins })
}

fn plugin_json(plugin: &Plugin) -> Json {
    json!({
        "plugin": plugin.pin(),
        "name": plugin.name,
        "major": plugin.major(),
        "version": format!("{}.{}.{}", plugin.version.major, plugin.version.minor, plugin.version.patch),
        "description": plugin.description,
        "auth": plugin.auth.as_ref().map(|auth| json!({
            "type": auth.kind.as_str(),
            "scopes": auth.scopes,
        })),
    })
}

fn status_name(status: DeprecationStatus) -> &'static str {
    match status {
        DeprecationStatus::Active => "active",
        DeprecationStatus::Deprecated => "deprecated",
        DeprecationStatus::Removed => "removed",
    }
}

fn verb_summary_json(plugin: &Plugin, verb: &Verb, status: DeprecationStatus) -> Json {
    json!({
        "verb": format!("{}@{}:{}", plugin.name, plugin.major(), verb.id),
        "id": verb.id,
        "kind": verb.kind.as_str(),
        "sideEffectClass": verb.side_effect_class.as_str(),
        "description": verb.description,
        "status": status_name(status),
    })
}

/// Everything about one verb, schemas as the manifest writes them.
pub fn verb_json(plugin: &Plugin, verb: &Verb) -> Json {
    let mut out = verb_summary_json(plugin, verb, verb_status(verb));
    out["plugin"] = json!(plugin.pin());
    out["inputSchema"] = verb.input_schema.clone();
    out["outputSchema"] = verb.output_schema.clone().unwrap_or(Json::Null);
    out["inputType"] = json!(verb.input_type().to_string());
    out["outputType"] = json!(verb.output_type().to_string());
    out["routeBy"] = json!(verb.route_by);
    out["handles"] = json!(verb.handles());
    out["eventSubscription"] = json!(verb.event_subscription);
    out["authScopes"] = json!(verb.auth_scopes);
    out["idempotencyKey"] = json!(verb.idempotency_key);
    out["deprecation"] = match &verb.deprecation {
        None => Json::Null,
        Some(d) => json!({
            "since": d.since.to_string(),
            "after": d.after.map(|a| a.to_string()),
            "successor": d.successor,
        }),
    };
    out
}

/// An event type, its payload schema as the manifest writes it.
pub fn event_json(plugin: &Plugin, event: &EventType) -> Json {
    json!({
        "event": event.name,
        "plugin": plugin.pin(),
        "description": event.description,
        "payloadSchema": event.payload_schema,
        "payloadType": event.payload_type().to_string(),
    })
}

/// The verb `query` names: `plugin@major:verb`, or a bare verb id, which
/// means the highest installed major that has it.
pub fn find_verb<'r>(
    registry: &'r Registry,
    query: &str,
) -> Result<(&'r Plugin, &'r Verb), String> {
    if query.contains(':') {
        let reference = VerbRef::parse(query)?;
        return registry
            .resolve(&reference)
            .map_err(|error| error.to_string());
    }
    let mut found: Option<(&Plugin, &Verb)> = None;
    for plugin in registry.plugins() {
        if let Some(verb) = plugin.verb(query)
            && found.is_none_or(|(best, _)| {
                (best.name.as_str(), best.major()) < (plugin.name.as_str(), plugin.major())
            })
        {
            found = Some((plugin, verb));
        }
    }
    found.ok_or_else(|| {
        let ids = registry
            .plugins()
            .flat_map(|p| p.verbs.iter().map(|v| v.id.as_str()));
        match donmai_grammar::diagnostic::did_you_mean(query, ids) {
            Some(s) => format!("no installed plugin has a verb `{query}`; did you mean `{s}`?"),
            None => format!("no installed plugin has a verb `{query}`"),
        }
    })
}

// ---------------------------------------------------------------------------
// The generated reference.

/// `docs/verbs.md`: every plugin major of `registry` with every verb and
/// event type and their ports. Deterministic, and independent of the day
/// and of any project, so CI can check that the file is current.
pub fn reference_markdown(registry: &Registry) -> String {
    let mut plugins: Vec<&Plugin> = registry.plugins().collect();
    plugins.sort_by(|a, b| (a.name.as_str(), a.major()).cmp(&(b.name.as_str(), b.major())));
    let mut out = String::from(
        "# Verb reference\n\n\
         <!-- Generated by `donmaic verbs --all --format markdown > docs/verbs.md`; \
         a test fails when this file is not current. Do not edit by hand. -->\n\n\
         Every verb and event type of the plugins that ship with donmai, with \
         their ports. `donmaic verbs` lists what a project may use; \
         `donmaic verbs show VERB` prints one entry; hovering a verb in the \
         editor shows the same text.\n\n",
    );
    for plugin in &plugins {
        let anchor = anchor(&plugin.pin());
        let _ = writeln!(
            out,
            "- [`{}`](#{anchor}): {}, {}",
            plugin.pin(),
            plural(plugin.verbs.len(), "verb"),
            plural(plugin.event_types.len(), "event type")
        );
    }
    for plugin in plugins {
        let _ = write!(out, "\n## {}\n\n", plugin.pin());
        out.push_str(&plugin_markdown(plugin));
        out.push('\n');
        for verb in &plugin.verbs {
            let _ = write!(out, "\n### `{}`\n\n", verb.id);
            out.push_str(&verb_markdown(plugin, verb, None));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        for event in &plugin.event_types {
            let _ = write!(out, "\n### event `{}`\n\n", event.name);
            out.push_str(&event_markdown(plugin, event));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// The anchor GitHub gives a heading made of `text`.
fn anchor(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            ' ' => Some('-'),
            _ => None,
        })
        .collect()
}
