//! Completion at a byte offset of the text being edited.
//!
//! The context (which key or value, which step, inside `{{ }}` or not) is
//! read from the current text, which may be a character ahead of the last
//! analysis and need not parse ([`sketch`]). What may go there comes from
//! the analysis and the checker's own rules: step ids and upstream nodes
//! from its topology, verbs from its palette rule, inputs from the ports it
//! checks against, expression members from its expression types. A step is
//! matched to the analysis by its id; a step the analysis does not know yet
//! still gets its verb's inputs, from the registry.

mod expression;
mod sketch;

use donmai_grammar::Span;
use donmai_grammar::ast::{PredicateOp, StepType, TriggerKind};
use donmai_grammar::incremental::common_prefix;
use donmai_grammar::lower::{BACKOFF_KEYS, GATE_KEYS, METADATA_KEYS, RETRY_KEYS, TOP_KEYS};
use donmai_grammar::yaml::scalar_source;
use donmai_stdlib::manifest::{Verb, VerbKind};
use donmai_stdlib::registry::VerbRef;
use donmai_stdlib::types::{ObjectType, Type};

use crate::check::Site;
use crate::check::palette;
use crate::ide::analysis::{Analysis, ResolvedVerb, runs_verb};
use crate::ide::hover::{port_description, step_summary, verb_markdown};
use expression::ExprPrefix;
use sketch::{At, KnownItems, Node, Place, Seg, Sketch, Style};

/// One thing that may be inserted at the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    /// One line: a type, a signature.
    pub detail: Option<String>,
    pub documentation: Option<Documentation>,
    /// What replaces `range`; an LSP snippet (`$1`, `${1:x}`) when
    /// `snippet` is set.
    pub insert_text: String,
    pub snippet: bool,
    /// The byte range of the text given to [`complete`] that is replaced:
    /// the word, key or scalar content around the cursor.
    pub range: Span,
    /// Order among the results; ties are broken by label.
    pub sort_key: String,
    /// What an editor filters on when it is not the label.
    pub filter_text: Option<String>,
    /// Still accepted, with a deprecation warning.
    pub deprecated: bool,
}

/// The markdown shown with a completion, or what to build it from when the
/// editor asks (`completionItem/resolve`): a verb's or a step's full text is
/// built only for the item the author looks at, not for every item listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Documentation {
    Text(String),
    /// The summary of the step with this id.
    Step(String),
    /// The description of the verb `plugin@major:verb`.
    Verb(String),
    /// An upstream step as an expression reads it (`nodes.<id>`), and
    /// whether it has succeeded on every path to the expression.
    Node {
        id: String,
        always_runs: bool,
    },
}

impl Documentation {
    /// The markdown, against `analysis` (the latest one when deferred: a
    /// step or verb gone since the list was made has none).
    pub fn render(&self, analysis: &Analysis) -> Option<String> {
        match self {
            Documentation::Text(text) => Some(text.clone()),
            Documentation::Step(id) => {
                let index = analysis.step_index(id)?;
                Some(step_summary(analysis, index))
            }
            Documentation::Verb(pin) => {
                let reference = VerbRef::parse(pin).ok()?;
                let (plugin, verb) = analysis.registry().resolve(&reference).ok()?;
                Some(verb_markdown(plugin, verb))
            }
            Documentation::Node { id, always_runs } => {
                let step = &analysis.steps()[analysis.step_index(id)?];
                let mut doc = format!("**step `{}`** · {}", step.id.value, step.ty.value.as_str());
                if let Some(action) = &step.action {
                    doc.push_str(&format!(" · `{}`", action.value));
                }
                if !always_runs {
                    doc.push_str(
                        "\n\nIt does not run on every path to here: its output may be null.",
                    );
                }
                Some(doc)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompletionKind {
    /// A workflow-format key (`next`, `gateConfig`).
    Key,
    /// An input port of a step's verb or group.
    Input,
    /// A field of a typed value (`output.sessionId`, `trigger.issueId`).
    Field,
    /// A step id.
    Step,
    /// A trigger id.
    Trigger,
    /// A verb for `config.action`.
    Verb,
    /// A plugin pin for `requires`.
    Plugin,
    /// An event type name.
    Event,
    /// A branch handle of a condition or gate.
    Handle,
    /// One of a closed set of values (an enum, a step type).
    EnumMember,
    /// An expression variable: `nodes`, `trigger`, a macro variable.
    Variable,
    Function,
    Method,
    Keyword,
}

impl Completion {
    fn new(label: &str, kind: CompletionKind, range: Span) -> Completion {
        Completion {
            label: label.to_string(),
            kind,
            detail: None,
            documentation: None,
            insert_text: label.to_string(),
            snippet: false,
            range,
            sort_key: label.to_string(),
            filter_text: None,
            deprecated: false,
        }
    }

    fn sort(mut self, key: &str) -> Completion {
        self.sort_key = key.to_string();
        self
    }

    fn detail(mut self, detail: impl Into<String>) -> Completion {
        self.detail = Some(detail.into());
        self
    }

    fn docs(mut self, documentation: impl Into<String>) -> Completion {
        self.documentation = Some(Documentation::Text(documentation.into()));
        self
    }

    fn deferred_docs(mut self, documentation: Documentation) -> Completion {
        self.documentation = Some(documentation);
        self
    }
}

/// Completions at byte `offset` of `text`, the document as it is now;
/// `analysis` may be of an older version of it. Offsets past the end or
/// inside a character are clamped. Sorted by sort key, then label.
pub fn complete(analysis: &Analysis, text: &str, offset: usize) -> Vec<Completion> {
    let known = KnownItems {
        lines: analysis.step_item_lines(),
        // Only lines above the cursor are walked.
        valid_below: common_prefix(
            analysis.text().as_bytes(),
            text.get(..offset.min(text.len()))
                .unwrap_or(text)
                .as_bytes(),
        ),
    };
    let sketch = Sketch::read(text, offset, &known);
    let Some((path, at)) = sketch.locate() else {
        return Vec::new();
    };
    let context = Context::new(analysis, text, &sketch, &path);
    let mut out = match at {
        At::Key { entries, entry } => {
            let present: Vec<String> = entries
                .iter()
                .filter(|e| !std::ptr::eq(*e, entry))
                .map(|e| sketch.key_text(e))
                .collect();
            context.keys(&present, sketch.file_span(entry.key), entry.colon)
        }
        At::Scalar(node) => context.scalar(node),
    };
    out.sort_by(|a, b| (&a.sort_key, &a.label).cmp(&(&b.sort_key, &b.label)));
    out.dedup_by(|a, b| a.label == b.label && a.kind == b.kind);
    out
}

/// A type as one line of detail: long object types are cut. Formatting
/// stops at the cut, so a huge object type costs no more than a small one.
pub(crate) fn short_type(ty: &Type) -> String {
    use std::fmt::Write;
    const MAX: usize = 80;
    struct Bounded(String);
    impl Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = MAX + 1 - self.0.len().min(MAX + 1);
            let mut end = s.len().min(room);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.0.push_str(&s[..end]);
            if end < s.len() {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut out = Bounded(String::new());
    if write!(out, "{ty}").is_ok() && out.0.len() <= MAX {
        return out.0;
    }
    let mut cut = MAX;
    while !out.0.is_char_boundary(cut) {
        cut -= 1;
    }
    out.0.truncate(cut);
    out.0.push('…');
    out.0
}

/// What the cursor is in, resolved against the analysis.
struct Context<'a> {
    analysis: &'a Analysis,
    /// The document as it is now.
    text: &'a str,
    sketch: &'a Sketch,
    /// Keys from the document root, `-` for a list item.
    path: Vec<String>,
    /// The node each segment of `path` leads to, where the region has it.
    nodes: Vec<Option<&'a Node>>,
    step: Option<StepText>,
}

/// What the text says about the step the cursor is in.
#[derive(Default)]
struct StepText {
    id: Option<String>,
    ty: Option<StepType>,
    action: Option<String>,
    /// The step's entry in the analysis, by id.
    index: Option<usize>,
}

fn entry_value<'n>(node: &'n Node, key: &str, sketch: &Sketch) -> Option<&'n Node> {
    node.entries()
        .iter()
        .find(|entry| entry.colon && sketch.key_text(entry) == key)
        .map(|entry| &entry.value)
}

fn scalar_at(node: &Node, key: &str, sketch: &Sketch) -> Option<String> {
    sketch
        .scalar_text(entry_value(node, key, sketch)?)
        .filter(|text| !text.is_empty())
}

impl<'a> Context<'a> {
    fn new(
        analysis: &'a Analysis,
        text: &'a str,
        sketch: &'a Sketch,
        segs: &'a [Seg<'a>],
    ) -> Context<'a> {
        let mut path: Vec<String> = sketch.prefix.clone();
        let mut nodes: Vec<Option<&Node>> = vec![None; path.len()];
        // The node a key leads to is found by looking it up in the
        // previous node; the root is the region's.
        let mut current: Option<&Node> = Some(&sketch.root);
        for seg in segs {
            match seg {
                Seg::Key(key) => {
                    current = current.and_then(|node| entry_value(node, key, sketch));
                    path.push(key.clone());
                }
                Seg::Item(item) => {
                    current = Some(item);
                    path.push("-".to_string());
                }
            }
            nodes.push(current);
        }
        let mut context = Context {
            analysis,
            text,
            sketch,
            path,
            nodes,
            step: None,
        };
        if context.starts_with(&["spec", "steps", "-"]) {
            context.step = Some(context.step_text());
        }
        context
    }

    fn starts_with(&self, pattern: &[&str]) -> bool {
        self.path.len() >= pattern.len() && pattern.iter().zip(&self.path).all(|(p, s)| p == s)
    }

    /// The path after `spec/steps/-`.
    fn in_step(&self) -> Option<Vec<&str>> {
        self.starts_with(&["spec", "steps", "-"])
            .then(|| self.path[3..].iter().map(String::as_str).collect())
    }

    fn step_text(&self) -> StepText {
        let Some(item) = self.nodes.get(2).copied().flatten() else {
            return StepText::default();
        };
        let sketch = self.sketch;
        let id = scalar_at(item, "id", sketch);
        let ty = scalar_at(item, "type", sketch).and_then(|t| {
            StepType::ALL
                .iter()
                .find(|(name, _)| *name == t)
                .map(|(_, ty)| *ty)
        });
        let action =
            entry_value(item, "config", sketch).and_then(|c| scalar_at(c, "action", sketch));
        let index = id.as_deref().and_then(|id| self.analysis.step_index(id));
        StepText {
            id,
            ty,
            action,
            index,
        }
    }

    /// The step's verb: the analysis's when it agrees with the text, else
    /// the registry's for the text.
    fn verb(&self) -> Option<ResolvedVerb<'a>> {
        let step = self.step.as_ref()?;
        let action = step.action.as_deref()?;
        if let Some(index) = step.index
            && let Some(resolved) = self.analysis.verb(index)
            && self
                .analysis
                .step(index)
                .and_then(|s| s.action.as_ref())
                .is_some_and(|a| a.value == action)
        {
            return Some(resolved);
        }
        let verb_ref = VerbRef::parse(action).ok()?;
        let (plugin, verb) = self.analysis.registry().resolve(&verb_ref).ok()?;
        Some(ResolvedVerb { plugin, verb })
    }

    /// The input ports the step's `config` is checked against.
    fn ports(&self) -> Option<ObjectType> {
        let step = self.step.as_ref()?;
        match step.ty {
            Some(StepType::Group | StepType::Loop) => {
                let index = step.index?;
                Some((*self.analysis.signature(index)?.inputs).clone())
            }
            _ => match self.verb()?.verb.input_type() {
                Type::Object(object) => Some((*object).clone()),
                _ => None,
            },
        }
    }

    /// The site an expression at the cursor is checked at.
    fn site(&self) -> Option<Site> {
        if self.starts_with(&["interface", "outputs"]) {
            return Some(Site::End);
        }
        self.step.as_ref()?.index.map(Site::Step)
    }

    // -- keys --------------------------------------------------------------

    /// Keys of the mapping at the path, but those `present`; the result
    /// replaces `range`, which already has its `:` when `with_colon`.
    fn keys(&self, present: &[String], range: Span, with_colon: bool) -> Vec<Completion> {
        let top_level;
        let present = if self.path.is_empty() {
            top_level = top_level_keys(self.text, self.sketch.cursor());
            &top_level
        } else {
            present
        };
        let mut out = Vec::new();
        let mut add = |completion: Completion| {
            if !present.contains(&completion.label) {
                out.push(completion);
            }
        };
        let key = |name: &str, sort: &str| {
            let mut completion =
                Completion::new(name, CompletionKind::Key, range).sort(&format!("{sort} {name}"));
            if !with_colon {
                completion.insert_text = format!("{}: ", scalar_source(name));
            }
            completion
        };
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match path.as_slice() {
            [] => TOP_KEYS
                .iter()
                .for_each(|k| add(key(k, "1").docs(format_doc(k)))),
            ["metadata"] => METADATA_KEYS.iter().for_each(|k| add(key(k, "1"))),
            ["metadata", "scope"] => add(key("project", "1")),
            ["requires", "-"] => add(key("plugin", "1")),
            ["triggers", "-"] => ["id", "kind", "config"]
                .iter()
                .for_each(|k| add(key(k, "1"))),
            ["triggers", "-", "config"] => {
                for k in self.trigger_config_keys() {
                    add(key(k, "1"));
                }
            }
            ["interface"] => ["inputs", "outputs"].iter().for_each(|k| add(key(k, "1"))),
            ["spec"] => add(key("steps", "1")),
            _ => {
                if let Some(rest) = self.in_step() {
                    for completion in self.step_keys(&rest, range, with_colon) {
                        add(completion);
                    }
                }
            }
        }
        out
    }

    fn trigger_config_keys(&self) -> &'static [&'static str] {
        let kind = self
            .nodes
            .get(1)
            .copied()
            .flatten()
            .and_then(|item| scalar_at(item, "kind", self.sketch));
        let kind = kind.and_then(|k| {
            TriggerKind::ALL
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, kind)| *kind)
        });
        match kind {
            Some(TriggerKind::Webhook) => &["eventType"],
            Some(TriggerKind::Signal) => &["signalEventType"],
            Some(TriggerKind::Cron | TriggerKind::Schedule) => &["schedule", "timezone"],
            Some(TriggerKind::Manual) => &["inputs"],
            Some(TriggerKind::AgentRequest) => &["request"],
            None => &[
                "eventType",
                "signalEventType",
                "schedule",
                "timezone",
                "inputs",
                "request",
            ],
        }
    }

    /// Keys inside a step; `rest` is the path below the step item.
    fn step_keys(&self, rest: &[&str], range: Span, with_colon: bool) -> Vec<Completion> {
        let key = |name: &str, sort: &str| {
            let mut completion =
                Completion::new(name, CompletionKind::Key, range).sort(&format!("{sort} {name}"));
            if !with_colon {
                completion.insert_text = format!("{}: ", scalar_source(name));
            }
            completion
        };
        let step_type = self.step.as_ref().and_then(|s| s.ty);
        match rest {
            [] => step_keys_for(step_type)
                .iter()
                .map(|k| key(k, "1").docs(format_doc(k)))
                .collect(),
            ["config"] => self.config_keys(step_type, range, with_colon),
            ["gateConfig"] => GATE_KEYS.iter().map(|k| key(k, "1")).collect(),
            ["retry"] => RETRY_KEYS.iter().map(|k| key(k, "1")).collect(),
            ["retry", "backoff"] => BACKOFF_KEYS.iter().map(|k| key(k, "1")).collect(),
            ["branches"] => self.handle_keys(range, with_colon),
            [.., "match"] | [.., "until"] | [.., "all" | "any", "-"] | [.., "not"]
                if rest.first() == Some(&"gateConfig") || rest.first() == Some(&"config") =>
            {
                ["field", "op", "value", "all", "any", "not"]
                    .iter()
                    .map(|k| key(k, "1"))
                    .collect()
            }
            ["config", input, nested @ ..] => {
                // Keys of an object-typed input's value.
                let Some(ports) = self.ports() else {
                    return Vec::new();
                };
                let Some(mut ty) = ports.fields.get(*input).map(|f| f.ty.clone()) else {
                    return Vec::new();
                };
                for part in nested {
                    if *part == "-" {
                        ty = match ty.non_null() {
                            Type::List(item) => (**item).clone(),
                            _ => return Vec::new(),
                        };
                    } else {
                        match ty.non_null().field(part) {
                            Some(next) => ty = next,
                            None => return Vec::new(),
                        }
                    }
                }
                match ty.non_null() {
                    Type::Object(object) => object
                        .fields
                        .iter()
                        .map(|(name, field)| {
                            let sort = if field.required { "0" } else { "1" };
                            let mut completion = key(name, sort).detail(field_detail(field));
                            completion.kind = CompletionKind::Field;
                            completion
                        })
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn config_keys(
        &self,
        step_type: Option<StepType>,
        range: Span,
        with_colon: bool,
    ) -> Vec<Completion> {
        let key = |name: &str, sort: &str| {
            let mut completion =
                Completion::new(name, CompletionKind::Key, range).sort(&format!("{sort} {name}"));
            if !with_colon {
                completion.insert_text = format!("{}: ", scalar_source(name));
            }
            completion
        };
        let mut out = Vec::new();
        let switch = match self.verb().map(|v| v.verb.routing()) {
            Some(donmai_stdlib::manifest::Routing::Switch { .. }) | None => true,
            Some(_) => false,
        };
        let reserved: &[&str] = match step_type {
            Some(StepType::Trigger) => &["triggerId"],
            // `mode` and `cases` are for switches only.
            Some(StepType::Condition) if switch => &["action", "mode", "cases"],
            Some(StepType::Condition) => &["action"],
            Some(StepType::Action | StepType::Gate) => &["action"],
            Some(StepType::Group) => &["ref"],
            Some(StepType::Loop) => &["body", "maxIterations", "until"],
            None => &["action"],
        };
        out.extend(reserved.iter().map(|k| key(k, "0")));
        if let Some(ports) = self.ports() {
            let verb = self.verb();
            for (name, field) in &ports.fields {
                let sort = if field.required { "1" } else { "2" };
                let mut completion = key(name, sort).detail(field_detail(field));
                completion.kind = CompletionKind::Input;
                completion.documentation = Some(Documentation::Text(port_description(
                    name,
                    field,
                    verb.map(|v| v.verb),
                )));
                out.push(completion);
            }
        }
        out
    }

    /// `branches` keys: the handles the step routes by.
    fn handle_keys(&self, range: Span, with_colon: bool) -> Vec<Completion> {
        let step_type = self.step.as_ref().and_then(|s| s.ty);
        let Some(verb) = self.verb() else {
            return Vec::new();
        };
        let mut handles: Vec<String> = match (step_type, verb.verb.kind) {
            (Some(StepType::Condition) | None, VerbKind::Condition) => {
                let cases = self.listed_cases();
                let all = verb.verb.handles();
                match cases {
                    Some(cases) => all.into_iter().filter(|h| cases.contains(h)).collect(),
                    None => all,
                }
            }
            _ => verb.verb.handles(),
        };
        let default_allowed = matches!(
            verb.verb.routing(),
            donmai_stdlib::manifest::Routing::Switch { .. }
                | donmai_stdlib::manifest::Routing::Handles(_)
        );
        if default_allowed {
            handles.push("default".to_string());
        }
        handles
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                let mut completion = Completion::new(handle, CompletionKind::Handle, range)
                    .sort(&format!("{i:03}"))
                    .detail(format!("handle of {}", verb.verb.id));
                if !with_colon {
                    completion.insert_text = format!("{}: ", scalar_source(handle));
                }
                completion
            })
            .collect()
    }

    /// The `cases` a switch condition lists, if it lists them.
    fn listed_cases(&self) -> Option<Vec<String>> {
        let item = self.nodes.get(2).copied().flatten()?;
        let config = entry_value(item, "config", self.sketch)?;
        let cases = entry_value(config, "cases", self.sketch)?;
        Some(
            cases
                .items()
                .iter()
                .filter_map(|c| self.sketch.scalar_text(c))
                .collect(),
        )
    }

    // -- scalars -----------------------------------------------------------

    fn scalar(&self, node: &Node) -> Vec<Completion> {
        let Some(scalar) = node.scalar() else {
            return Vec::new();
        };
        // Inside `{{ }}` first: a template may stand in any value.
        if let Some(before) = self.sketch.text_before_cursor(scalar.content)
            && let Some(open) = expression::open_expression(before)
        {
            let after = self.sketch.text_after_cursor(scalar.content).unwrap_or("");
            let after_end = after.find("}}").unwrap_or(after.len());
            let start = self.sketch.to_file(scalar.content.start + open);
            let prefix = ExprPrefix {
                before: &before[open..],
                after: &after[..after_end],
                start,
            };
            return expression::complete(self.analysis, self.site(), &prefix);
        }
        let range = self.sketch.file_span(scalar.content);
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        // A plain word on a line of its own, or a bare item of a list of
        // mappings, is a key being written where a mapping belongs.
        let key_position = scalar.style == Style::Plain
            && match scalar.place {
                Place::OwnLine => true,
                Place::BlockItem => {
                    matches!(
                        path.as_slice(),
                        ["spec", "steps", "-"] | ["triggers", "-"] | ["requires", "-"]
                    ) || matches!(path.as_slice(), [.., "all" | "any", "-"])
                }
                Place::Value | Place::FlowItem => false,
            };
        if key_position {
            let keys = self.keys(&[], range, false);
            if !keys.is_empty() {
                return keys;
            }
        }
        self.values(&path, range, scalar.style)
    }

    /// Values of the scalar at `path`.
    fn values(&self, path: &[&str], range: Span, style: Style) -> Vec<Completion> {
        let quoted = style != Style::Plain;
        let value = |label: &str, kind: CompletionKind| {
            let mut completion = Completion::new(label, kind, range);
            if !quoted {
                completion.insert_text = scalar_source(label);
            }
            completion
        };
        match path {
            ["apiVersion"] => ["workflow/v2", "workflow/v1"]
                .iter()
                .enumerate()
                .map(|(i, v)| value(v, CompletionKind::EnumMember).sort(&i.to_string()))
                .collect(),
            ["kind"] => vec![value("WorkflowDefinition", CompletionKind::EnumMember)],
            ["requires", "-", "plugin"] => self.plugin_values(range, quoted),
            ["triggers", "-", "kind"] => ["manual", "webhook", "signal", "cron", "agent.request"]
                .iter()
                .map(|k| value(k, CompletionKind::EnumMember))
                .collect(),
            ["triggers", "-", "config", "eventType" | "signalEventType"] => {
                self.event_values(range, quoted, &[])
            }
            // Declared types: group inputs, manual inputs, request fields.
            ["interface", "inputs", _] | ["triggers", "-", "config", "inputs" | "request", _] => [
                "string",
                "int",
                "double",
                "bool",
                "timestamp",
                "duration",
                "list<string>",
                "map<string, string>",
            ]
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut completion =
                    Completion::new(t, CompletionKind::EnumMember, range).sort(&format!("{i}"));
                if !quoted {
                    completion.insert_text = scalar_source(t);
                }
                completion
            })
            .collect(),
            _ => match self.in_step() {
                Some(rest) => self.step_values(&rest, range, quoted),
                None => Vec::new(),
            },
        }
    }

    fn step_values(&self, rest: &[&str], range: Span, quoted: bool) -> Vec<Completion> {
        let value = |label: &str, kind: CompletionKind| {
            let mut completion = Completion::new(label, kind, range);
            if !quoted {
                completion.insert_text = scalar_source(label);
            }
            completion
        };
        let step_type = self.step.as_ref().and_then(|s| s.ty);
        match rest {
            ["type"] => StepType::ALL
                .iter()
                .map(|(name, _)| value(name, CompletionKind::EnumMember))
                .collect(),
            ["next"] | ["next", "-"] | ["branches", _] | ["gateConfig", "onTimeout", ..] => {
                let listed = self.listed_next();
                let prefix = if rest.first() == Some(&"gateConfig") {
                    "branch:"
                } else {
                    ""
                };
                let mut out = self.step_id_values(range, quoted, prefix, &listed);
                if prefix == "branch:" {
                    out.extend(
                        ["skip", "error"]
                            .iter()
                            .map(|v| value(v, CompletionKind::EnumMember).sort(&format!("0 {v}"))),
                    );
                }
                out
            }
            ["defaultHandle"] => {
                let mut out: Vec<Completion> = match self.verb() {
                    Some(verb) => verb
                        .verb
                        .handles()
                        .iter()
                        .map(|h| value(h, CompletionKind::Handle))
                        .collect(),
                    None => Vec::new(),
                };
                out.push(
                    value("true", CompletionKind::Keyword).detail("route to `branches.default`"),
                );
                out
            }
            ["config", "triggerId"] => self.trigger_values(range, quoted),
            ["config", "action"] => self.verb_values(step_type, range, quoted),
            ["config", "mode"] if step_type == Some(StepType::Condition) => {
                vec![value("switch", CompletionKind::EnumMember)]
            }
            ["config", "cases"] | ["config", "cases", "-"] => match self.verb() {
                Some(verb) => verb
                    .verb
                    .handles()
                    .iter()
                    .map(|h| value(h, CompletionKind::EnumMember))
                    .collect(),
                None => Vec::new(),
            },
            ["gateConfig", "gateType"] => ["signal", "timer", "webhook"]
                .iter()
                .map(|v| value(v, CompletionKind::EnumMember))
                .collect(),
            ["gateConfig", "signalEventType"] => {
                let preferred: Vec<String> = self
                    .verb()
                    .map(|v| v.verb.event_subscription.clone())
                    .unwrap_or_default();
                self.event_values(range, quoted, &preferred)
            }
            [.., "op"]
                if rest.first() == Some(&"gateConfig") || rest.first() == Some(&"config") =>
            {
                PredicateOp::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _))| {
                        value(name, CompletionKind::EnumMember).sort(&format!("{i:02}"))
                    })
                    .collect()
            }
            [.., "field"] if rest.first() == Some(&"gateConfig") => {
                self.payload_fields(range, quoted)
            }
            ["config", input, nested @ ..] => {
                let Some(ports) = self.ports() else {
                    return Vec::new();
                };
                let Some(mut ty) = ports.fields.get(*input).map(|f| f.ty.clone()) else {
                    return Vec::new();
                };
                for part in nested {
                    ty = if *part == "-" {
                        match ty.non_null() {
                            Type::List(item) => (**item).clone(),
                            _ => return Vec::new(),
                        }
                    } else {
                        match ty.non_null().field(part) {
                            Some(next) => next,
                            None => return Vec::new(),
                        }
                    };
                }
                match ty.non_null() {
                    Type::Enum(values) => values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| value(v, CompletionKind::EnumMember).sort(&format!("{i:03}")))
                        .collect(),
                    Type::Bool if !quoted => ["true", "false"]
                        .iter()
                        .map(|v| value(v, CompletionKind::Keyword))
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// Step ids already listed in the step's `next`.
    fn listed_next(&self) -> Vec<String> {
        let Some(item) = self.nodes.get(2).copied().flatten() else {
            return Vec::new();
        };
        match entry_value(item, "next", self.sketch) {
            Some(next) => next
                .items()
                .iter()
                .filter_map(|n| self.sketch.scalar_text(n))
                .filter(|t| !t.is_empty())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Steps a step may continue to: every other non-trigger step.
    fn step_id_values(
        &self,
        range: Span,
        quoted: bool,
        prefix: &str,
        listed: &[String],
    ) -> Vec<Completion> {
        let own = self.step.as_ref().and_then(|s| s.id.clone());
        self.analysis
            .steps()
            .iter()
            .enumerate()
            .filter(|(index, step)| {
                step.ty.value != StepType::Trigger
                    && Some(&step.id.value) != own.as_ref()
                    && !listed.contains(&step.id.value)
                    && self.analysis.step_index(&step.id.value) == Some(*index)
            })
            .map(|(index, step)| {
                let text = format!("{prefix}{}", step.id.value);
                let mut completion = Completion::new(&text, CompletionKind::Step, range)
                    .sort(&format!("1 {index:08}"))
                    .detail(step.ty.value.as_str())
                    .deferred_docs(Documentation::Step(step.id.value.clone()));
                if !quoted {
                    completion.insert_text = scalar_source(&text);
                }
                completion
            })
            .collect()
    }

    fn trigger_values(&self, range: Span, quoted: bool) -> Vec<Completion> {
        let Some(workflow) = self.analysis.workflow() else {
            return Vec::new();
        };
        workflow
            .triggers
            .iter()
            .map(|trigger| {
                let kind = TriggerKind::ALL
                    .iter()
                    .find(|(_, k)| *k == trigger.kind.value)
                    .map_or("trigger", |(name, _)| name);
                let mut completion =
                    Completion::new(&trigger.id.value, CompletionKind::Trigger, range).detail(kind);
                if let Some(payload) = self
                    .analysis
                    .facts()
                    .and_then(|f| f.trigger_payload(&trigger.id.value))
                {
                    completion.documentation = Some(Documentation::Text(format!(
                        "payload: `{}`",
                        short_type(payload)
                    )));
                }
                if !quoted {
                    completion.insert_text = scalar_source(&trigger.id.value);
                }
                completion
            })
            .collect()
    }

    /// The palette: verbs the checker accepts for this step and project.
    fn verb_values(
        &self,
        step_type: Option<StepType>,
        range: Span,
        quoted: bool,
    ) -> Vec<Completion> {
        let Some(workflow) = self.analysis.workflow() else {
            return Vec::new();
        };
        if step_type.is_some_and(|t| !runs_verb(t)) {
            return Vec::new();
        }
        palette::verbs(
            workflow,
            self.analysis.project(),
            self.analysis.registry(),
            step_type,
        )
        .into_iter()
        .map(|offer| {
            let mut completion = Completion::new(&offer.pin, CompletionKind::Verb, range)
                .sort(&format!("{} {}", u8::from(offer.deprecated), offer.pin))
                .detail(verb_detail(offer.verb))
                .deferred_docs(Documentation::Verb(offer.pin.clone()));
            completion.deprecated = offer.deprecated;
            if !quoted {
                completion.insert_text = scalar_source(&offer.pin);
            }
            completion
        })
        .collect()
    }

    fn plugin_values(&self, range: Span, quoted: bool) -> Vec<Completion> {
        let required: Vec<String> = self
            .analysis
            .workflow()
            .map(|w| {
                w.requires
                    .iter()
                    .filter_map(|r| r.plugin.value.split('@').next().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let workflow_project = self
            .analysis
            .workflow()
            .and_then(|w| w.metadata.project.as_ref())
            .map(|p| p.value.as_str());
        palette::installable_plugins(
            self.analysis.project(),
            self.analysis.registry(),
            workflow_project,
        )
        .into_iter()
        .filter(|plugin| !required.contains(&plugin.name))
        .map(|plugin| {
            let pin = plugin.pin();
            let mut completion = Completion::new(&pin, CompletionKind::Plugin, range)
                .detail(format!("{} verbs", plugin.verbs.len()));
            completion.documentation = plugin.description.clone().map(Documentation::Text);
            if !quoted {
                completion.insert_text = scalar_source(&pin);
            }
            completion
        })
        .collect()
    }

    fn event_values(&self, range: Span, quoted: bool, preferred: &[String]) -> Vec<Completion> {
        self.analysis
            .registry()
            .event_names()
            .into_iter()
            .map(|name| {
                let sort = if preferred.iter().any(|p| p == name) {
                    "0"
                } else {
                    "1"
                };
                let mut completion = Completion::new(name, CompletionKind::Event, range)
                    .sort(&format!("{sort} {name}"));
                if let Some((plugin, event)) = self.analysis.registry().event(name) {
                    completion.detail = Some(format!("event of {}", plugin.name));
                    completion.documentation = event.description.clone().map(Documentation::Text);
                }
                if !quoted {
                    completion.insert_text = scalar_source(name);
                }
                completion
            })
            .collect()
    }

    /// Dotted paths into the gate's event payload, for `match` fields.
    fn payload_fields(&self, range: Span, quoted: bool) -> Vec<Completion> {
        let Some(item) = self.nodes.get(2).copied().flatten() else {
            return Vec::new();
        };
        let Some(event) = entry_value(item, "gateConfig", self.sketch)
            .and_then(|g| scalar_at(g, "signalEventType", self.sketch))
        else {
            return Vec::new();
        };
        let Some((_, event)) = self.analysis.registry().event(&event) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), event.payload_type(), 0)];
        while let Some((path, ty, depth)) = stack.pop() {
            let Type::Object(object) = ty.non_null() else {
                continue;
            };
            for (name, field) in &object.fields {
                let full = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                let mut completion = Completion::new(&full, CompletionKind::Field, range)
                    .detail(field_detail(field));
                if !quoted {
                    completion.insert_text = scalar_source(&full);
                }
                out.push(completion);
                if depth < 3 {
                    stack.push((full, field.ty.clone(), depth + 1));
                }
            }
        }
        out
    }
}

/// The top-level keys of the document but the one on the cursor's line:
/// the keys of lines that start at column 0.
fn top_level_keys(text: &str, cursor: usize) -> Vec<String> {
    let cursor_line = text[..cursor.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let mut keys = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let here = start;
        start += line.len();
        if here == cursor_line || line.starts_with([' ', '\t', '#', '-', '\n', '\r']) {
            continue;
        }
        let Some(colon) = line.find(':') else {
            continue;
        };
        let after = &line[colon + 1..];
        if after.is_empty() || after.starts_with([' ', '\t', '\n', '\r']) {
            keys.push(line[..colon].trim().trim_matches(['"', '\'']).to_string());
        }
    }
    keys
}

fn field_detail(field: &donmai_stdlib::types::Field) -> String {
    if field.required {
        format!("{} (required)", short_type(&field.ty))
    } else {
        short_type(&field.ty.clone().optional())
    }
}

fn verb_detail(verb: &Verb) -> String {
    format!(
        "{} · {}",
        verb.kind.as_str(),
        verb.side_effect_class.as_str()
    )
}

/// The keys a step of this type takes (all of them when the type is not
/// known yet): what the checker does not reject for the type.
fn step_keys_for(step_type: Option<StepType>) -> &'static [&'static str] {
    match step_type {
        Some(StepType::Trigger) => &["id", "type", "config", "next", "edgeLabels"],
        Some(StepType::Condition) => &[
            "id",
            "type",
            "config",
            "branches",
            "defaultHandle",
            "edgeLabels",
        ],
        Some(StepType::Action) => &[
            "id",
            "type",
            "config",
            "next",
            "retry",
            "timeoutMs",
            "edgeLabels",
        ],
        Some(StepType::Gate) => &[
            "id",
            "type",
            "config",
            "gateConfig",
            "branches",
            "next",
            "retry",
            "timeoutMs",
            "edgeLabels",
        ],
        Some(StepType::Group | StepType::Loop) => &["id", "type", "config", "next", "edgeLabels"],
        None => donmai_grammar::lower::STEP_KEYS,
    }
}

/// One line on what a format key is for.
fn format_doc(key: &str) -> &'static str {
    match key {
        "apiVersion" => "`workflow/v2` (piping with `nodes.*`) or `workflow/v1`.",
        "kind" => "Always `WorkflowDefinition`.",
        "metadata" => "`name`, `version`, `description`, `authoredBy`, `scope.project`.",
        "requires" => {
            "The plugins the workflow's verbs come from, pinned to a major: `[{plugin: linear@1}]`."
        }
        "triggers" => {
            "What starts a run: webhooks, signals, cron schedules, manual or agent requests."
        }
        "interface" => "Makes this file a group: typed `inputs` and `outputs` templates.",
        "spec" => "The steps, under `spec.steps`.",
        "id" => "The step's id, unique in the file.",
        "type" => "`trigger`, `condition`, `action`, `gate`, `group` or `loop`.",
        "config" => "The verb (`action`) and its inputs, or a group's `ref` and inputs.",
        "next" => "The steps to continue to; several run in parallel.",
        "branches" => "Handle → step: where a condition or gate routes.",
        "defaultHandle" => {
            "The case a switch takes when no branch matches, or `true` for `branches.default`."
        }
        "edgeLabels" => "Labels drawn on the graph's edges; no effect on the run.",
        "retry" => "`{maxAttempts, backoff: {initialMs, factor, maxMs}, retryOn}`.",
        "timeoutMs" => "How long an action or gate may take, in milliseconds.",
        "gateConfig" => "`{gateType, signalEventType, match, onTimeout, timeoutMs}`.",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::GroupCache;
    use crate::project::Project;
    use donmai_grammar::SourceFile;
    use donmai_stdlib::registry::Registry;

    /// The path and node at the cursor, as text.
    fn located(sketch: &Sketch) -> String {
        let Some((path, at)) = sketch.locate() else {
            return "nothing".to_string();
        };
        let mut parts = sketch.prefix.clone();
        parts.extend(path.iter().map(|seg| match seg {
            Seg::Key(key) => key.clone(),
            Seg::Item(item) => format!("-@{}", sketch.to_file(item.span.start)),
        }));
        let what = match at {
            At::Key { entry, .. } => format!("key {:?}", sketch.file_span(entry.key)),
            At::Scalar(node) => format!("scalar {:?}", sketch.file_span(node.span)),
        };
        format!("{} {what}", parts.join("/"))
    }

    /// Stopping the backward walk at a step the analysis knows finds the
    /// same context as walking back to the top, at every offset of the
    /// examples, before and after an edit the analysis has not seen.
    #[test]
    fn known_step_lines_change_nothing() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for name in [
            "linear-dev-loop.yaml",
            "pr-preview-qa.yaml",
            "inbound-router.yaml",
        ] {
            let path = root.join(name);
            let text = std::fs::read_to_string(&path).expect("an example");
            let file = SourceFile::new(&path, text.as_str());
            let analysis = Analysis::new(
                &file,
                &Project::default_for_tests(),
                Registry::bundled(),
                &GroupCache::default(),
            );
            assert!(!analysis.step_item_lines().is_empty());
            let middle = text.len() / 2;
            let edited = format!(
                "{}\n      x: {{{{ nodes.{}",
                &text[..middle],
                &text[middle..]
            );
            for current in [&text, &edited] {
                let known = KnownItems {
                    lines: analysis.step_item_lines(),
                    valid_below: common_prefix(analysis.text().as_bytes(), current.as_bytes()),
                };
                for offset in 0..=current.len() {
                    if !current.is_char_boundary(offset) {
                        continue;
                    }
                    let fast = located(&Sketch::read(current, offset, &known));
                    let slow = located(&Sketch::read(current, offset, &KnownItems::default()));
                    assert_eq!(fast, slow, "{name} at {offset}");
                }
            }
        }
    }
}
