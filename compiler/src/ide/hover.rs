//! Hover: what the analysis knows about the thing under a byte offset, as
//! markdown. A verb's description, side effects and schemas on
//! `config.action`; a port's type and description on an input key; the
//! checked type of the innermost expression under the cursor (with the
//! step's summary for `nodes.<id>`, a builtin's signatures on a call); a
//! step's summary on its id and wherever it is named.

use donmai_grammar::Span;
use donmai_grammar::ast::{OnTimeout, Spanned, Step, TriggerKind};
use donmai_grammar::expr::{Expr, ExprKind};
use donmai_stdlib::builtins::{self, MACROS};
use donmai_stdlib::manifest::{Plugin, Routing, Verb};
use donmai_stdlib::types::Field;

use crate::catalog::{self, object_table, schema_description};
use crate::check::Site;
use crate::check::palette::verb_status;
use crate::ide::analysis::{Analysis, ExprAt};

/// Markdown about the thing at `range`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hover {
    pub markdown: String,
    /// The byte range of the analysed text the hover is about.
    pub range: Span,
}

/// The hover at byte `offset` of the analysed text, if there is anything
/// to say. Offsets past the end or inside a character never fail.
pub fn hover(analysis: &Analysis, offset: usize) -> Option<Hover> {
    let offset = analysis.file().clamp(offset);
    let workflow = analysis.workflow()?;
    if let Some(index) = analysis.step_at(offset)
        && let Some(found) = step_hover(analysis, index, offset)
    {
        return Some(found);
    }
    if let Some(at) = analysis.expr_at(offset) {
        return expression_hover(analysis, at, offset);
    }
    for trigger in &workflow.triggers {
        if let Some(event) = &trigger.event_type
            && event.span.contains(offset)
        {
            return Some(Hover {
                markdown: event_markdown(analysis, &event.value)?,
                range: event.span,
            });
        }
        if trigger.id.span.contains(offset) {
            return Some(Hover {
                markdown: trigger_summary(analysis, &trigger.id.value),
                range: trigger.id.span,
            });
        }
    }
    for require in &workflow.requires {
        if require.plugin.span.contains(offset) {
            let (name, major) = require.plugin.value.split_once('@')?;
            let plugin = analysis.registry().plugin(name, major.parse().ok()?)?;
            return Some(Hover {
                markdown: catalog::plugin_markdown(plugin),
                range: require.plugin.span,
            });
        }
    }
    None
}

fn step_hover(analysis: &Analysis, index: usize, offset: usize) -> Option<Hover> {
    let step = analysis.step(index)?;
    let summary_of = |id: &Spanned<String>| -> Option<Hover> {
        let target = analysis.step_index(&id.value)?;
        Some(Hover {
            markdown: step_summary(analysis, target),
            range: id.span,
        })
    };
    if step.id.span.contains(offset) {
        return Some(Hover {
            markdown: step_summary(analysis, index),
            range: step.id.span,
        });
    }
    if let Some(action) = &step.action
        && action.span.contains(offset)
    {
        let verb = analysis.verb(index).or_else(|| {
            let verb_ref = donmai_stdlib::registry::VerbRef::parse(&action.value).ok()?;
            let (plugin, verb) = analysis.registry().resolve(&verb_ref).ok()?;
            Some(crate::ide::analysis::ResolvedVerb { plugin, verb })
        })?;
        return Some(Hover {
            markdown: verb_markdown(verb.plugin, verb.verb),
            range: action.span,
        });
    }
    if let Some(trigger) = &step.trigger_id
        && trigger.span.contains(offset)
    {
        return Some(Hover {
            markdown: trigger_summary(analysis, &trigger.value),
            range: trigger.span,
        });
    }
    for input in &step.inputs {
        if input.name.span.contains(offset) {
            let ports = analysis.ports(index)?;
            let field = ports.fields.get(&input.name.value)?;
            let verb = analysis.verb(index).map(|v| v.verb);
            let owner = match verb {
                Some(verb) => format!("`{}`", verb.id),
                None => format!("the group of `{}`", step.id.value),
            };
            return Some(Hover {
                markdown: format!(
                    "**input `{}`** of {owner}\n\n{}",
                    input.name.value,
                    port_description(&input.name.value, field, verb)
                ),
                range: input.name.span,
            });
        }
    }
    for target in &step.next {
        if target.span.contains(offset) {
            return summary_of(target);
        }
    }
    for (handle, target) in &step.branches {
        if target.span.contains(offset) {
            return summary_of(target);
        }
        if handle.span.contains(offset) {
            return Some(Hover {
                markdown: handle_markdown(analysis, index, &handle.value)?,
                range: handle.span,
            });
        }
    }
    if let Some(gate) = &step.gate {
        if let Some(Spanned {
            value: OnTimeout::Branch(target),
            ..
        }) = &gate.on_timeout
            && target.span.contains(offset)
        {
            return summary_of(target);
        }
        if let Some(event) = &gate.signal_event_type
            && event.span.contains(offset)
        {
            return Some(Hover {
                markdown: event_markdown(analysis, &event.value)?,
                range: event.span,
            });
        }
    }
    if let Some(reference) = &step.group_ref
        && reference.span.contains(offset)
    {
        let signature = analysis.signature(index)?;
        let mut markdown = format!("**group `{}`**", reference.value);
        if let Some(version) = &signature.version {
            markdown.push_str(&format!(" · version {version}"));
        }
        markdown.push_str("\n\n**Inputs**\n\n");
        markdown.push_str(&object_table(&signature.inputs, None));
        markdown.push_str("\n**Outputs**\n\n");
        markdown.push_str(&object_table(&signature.outputs, None));
        return Some(Hover {
            markdown,
            range: reference.span,
        });
    }
    None
}

fn expression_hover(analysis: &Analysis, at: ExprAt<'_>, offset: usize) -> Option<Hover> {
    // A builtin's name in a call: its signatures.
    if let Some(function) = call_name_at(at.expr, offset, 0) {
        return Some(Hover {
            markdown: builtin_markdown(&function.text)?,
            range: function.span,
        });
    }
    // On a name, the selection it ends; elsewhere the innermost
    // subexpression around the cursor.
    let named = name_at(at.expr, offset, 0);
    let facts = analysis.facts()?;
    let (span, ty) = match named.and_then(|e| Some((e.span, facts.expr_type_of(e.span)?))) {
        Some(found) => found,
        None => analysis.expr_type_at(offset)?,
    };
    let text = analysis.file().slice(span);
    let mut markdown = format!("```\n{text}: {ty}\n```");
    // `nodes.<id>`: which step that is, and whether it may be skipped.
    if let Some(expr) = find_span(at.expr, span, 0)
        && let Some(path) = expr.as_path()
        && path.len() == 2
        && path[0].text == "nodes"
        && let Some(index) = analysis.step_index(&path[1].text)
    {
        markdown.push_str("\n\n");
        if ty.is_optional() {
            let here = match at.site {
                Site::Step(i) => analysis
                    .step(i)
                    .map_or("here".to_string(), |s| format!("`{}`", s.id.value)),
                Site::End => "the end of the run".to_string(),
            };
            markdown.push_str(&format!(
                "`{}` does not run on every path to {here}: its output may be null.\n\n",
                path[1].text
            ));
        }
        markdown.push_str(&step_summary(analysis, index));
    }
    Some(Hover {
        markdown,
        range: span,
    })
}

/// The selection (or root name) whose last name contains `offset`.
fn name_at(expr: &Expr, offset: usize, depth: usize) -> Option<&Expr> {
    if depth > donmai_grammar::expr::MAX_DEPTH
        || !(expr.span.start <= offset && offset <= expr.span.end)
    {
        return None;
    }
    let own = match &expr.kind {
        ExprKind::Select { field, .. } => field.span.start <= offset && offset < field.span.end,
        ExprKind::Ident(name) => name.span.start <= offset && offset < name.span.end,
        _ => false,
    };
    if own {
        return Some(expr);
    }
    expr.children()
        .find_map(|child| name_at(child, offset, depth + 1))
}

/// The function name of a call whose name contains `offset`.
fn call_name_at(expr: &Expr, offset: usize, depth: usize) -> Option<&donmai_grammar::expr::Name> {
    if depth > donmai_grammar::expr::MAX_DEPTH
        || !(expr.span.start <= offset && offset <= expr.span.end)
    {
        return None;
    }
    if let ExprKind::Call { function, .. } = &expr.kind
        && function.span.start <= offset
        && offset < function.span.end
    {
        return Some(function);
    }
    expr.children()
        .find_map(|child| call_name_at(child, offset, depth + 1))
}

/// The subexpression with exactly this span.
fn find_span(expr: &Expr, span: Span, depth: usize) -> Option<&Expr> {
    if depth > donmai_grammar::expr::MAX_DEPTH
        || !(expr.span.start <= span.start && span.end <= expr.span.end)
    {
        return None;
    }
    if expr.span == span {
        return Some(expr);
    }
    expr.children()
        .find_map(|child| find_span(child, span, depth + 1))
}

fn builtin_markdown(name: &str) -> Option<String> {
    if let Some(builtin) = builtins::function(name) {
        let signatures = builtin.signatures().join("\n");
        return Some(format!("```\n{signatures}\n```\n\n{}", builtin.summary));
    }
    let (_, summary) = MACROS.iter().find(|(macro_name, _)| *macro_name == name)?;
    Some(format!("macro `{name}`\n\n{summary}"))
}

/// A step in a few lines: type, verb, where it goes, its output type.
pub(crate) fn step_summary(analysis: &Analysis, index: usize) -> String {
    let Some(step) = analysis.step(index) else {
        return String::new();
    };
    let mut out = format!("**step `{}`** · {}", step.id.value, step.ty.value.as_str());
    if let Some(verb) = analysis.verb(index) {
        out.push_str(&format!("\n\nverb `{}`", verb.pin()));
        if let Some(description) = &verb.verb.description {
            out.push_str(&format!(": {description}"));
        }
    } else if let Some(action) = &step.action {
        out.push_str(&format!("\n\nverb `{}` (unresolved)", action.value));
    }
    if let Some(trigger) = &step.trigger_id {
        out.push_str(&format!("\n\ntrigger `{}`", trigger.value));
    }
    if let Some(reference) = &step.group_ref {
        out.push_str(&format!("\n\nfile `{}`", reference.value));
    }
    let targets = routes(step);
    if !targets.is_empty() {
        out.push_str(&format!("\n\nnext: {}", targets.join(", ")));
    }
    if let Some(output) = analysis.output(index) {
        out.push_str(&format!("\n\noutput: `{output}`"));
    }
    out
}

fn routes(step: &Step) -> Vec<String> {
    let mut targets: Vec<String> = step.next.iter().map(|t| format!("`{}`", t.value)).collect();
    targets.extend(
        step.branches
            .iter()
            .map(|(handle, target)| format!("{} → `{}`", handle.value, target.value)),
    );
    if let Some(gate) = &step.gate
        && let Some(Spanned {
            value: OnTimeout::Branch(target),
            ..
        }) = &gate.on_timeout
    {
        targets.push(format!("timeout → `{}`", target.value));
    }
    targets
}

fn trigger_summary(analysis: &Analysis, id: &str) -> String {
    let Some(trigger) = analysis
        .workflow()
        .and_then(|w| w.triggers.iter().find(|t| t.id.value == id))
    else {
        return format!("trigger `{id}` (not declared)");
    };
    let kind = TriggerKind::ALL
        .iter()
        .find(|(_, k)| *k == trigger.kind.value)
        .map_or("trigger", |(name, _)| name);
    let mut out = format!("**trigger `{id}`** · {kind}");
    if let Some(event) = &trigger.event_type {
        out.push_str(&format!("\n\nevent `{}`", event.value));
    }
    if let Some(schedule) = &trigger.schedule {
        out.push_str(&format!("\n\nschedule `{}`", schedule.value));
    }
    if let Some(payload) = analysis.facts().and_then(|f| f.trigger_payload(id)) {
        out.push_str(&format!("\n\npayload: `{payload}`"));
    }
    out
}

fn handle_markdown(analysis: &Analysis, index: usize, handle: &str) -> Option<String> {
    let verb = analysis.verb(index)?;
    let text = match verb.verb.routing() {
        Routing::Bool { port } => match handle {
            "yes" => format!("taken when `{port}` is true"),
            "no" => format!("taken when `{port}` is false"),
            _ => return None,
        },
        Routing::Switch { port, .. } if handle == "default" => {
            format!("taken when `{port}` matches no other branch")
        }
        Routing::Switch { port, .. } => format!("taken when `{port}` is `{handle}`"),
        Routing::Handles(_) if handle == "default" => {
            "taken for every handle without a branch".to_string()
        }
        Routing::Handles(_) => format!("a handle of the gate verb `{}`", verb.verb.id),
        Routing::Next => return None,
    };
    Some(format!("**handle `{handle}`** of `{}`: {text}", verb.pin()))
}

/// A verb's reference card: what it does, its side effects, its schemas.
fn event_markdown(analysis: &Analysis, name: &str) -> Option<String> {
    let (plugin, event) = analysis.registry().event(name)?;
    Some(catalog::event_markdown(plugin, event))
}

/// An input port in a few lines: type, required or not, description.
pub(crate) fn verb_markdown(plugin: &Plugin, verb: &Verb) -> String {
    catalog::verb_markdown(plugin, verb, Some(verb_status(verb)))
}

pub(crate) fn port_description(name: &str, field: &Field, verb: Option<&Verb>) -> String {
    let required = if field.required {
        "required"
    } else {
        "optional"
    };
    let mut out = format!("`{}` ({required})", field.ty);
    if let Some(description) = schema_description(verb.map(|v| &v.input_schema), name) {
        out.push_str(&format!("\n\n{description}"));
    }
    out
}
