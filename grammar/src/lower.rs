//! YAML tree → workflow AST, reporting every shape error with its span.
//!
//! Lowering never stops at the first problem: an unknown key, a wrong shape or
//! a bad value is reported and lowering carries on with what it can use, so
//! one run shows every structural mistake of a file.

use crate::ast::*;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, backticked, did_you_mean};
use crate::span::Span;
use crate::template::{Segment, Template, parse_template};
use crate::yaml::{self, Entry, Node, NodeKind, Resolved, Scalar, ScalarStyle};

/// The result of reading one workflow file.
#[derive(Clone, Debug)]
pub struct ParsedWorkflow {
    /// `None` when the file is not a workflow or its YAML does not parse.
    pub workflow: Option<Workflow>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and lowers a workflow file.
pub fn parse_workflow(text: &str) -> ParsedWorkflow {
    parse_workflow_with(text, true)
}

/// With `streaming`, each step is lowered as soon as the YAML parser has
/// read it, and its YAML tree dropped at once: the tree of the whole file
/// never exists, which halves the memory a large file takes and keeps each
/// step in the cache while it is lowered. Without, the whole tree is built
/// first; the result is the same (a test compares both).
fn parse_workflow_with(text: &str, streaming: bool) -> ParsedWorkflow {
    let mut streamed = StreamedSteps::default();
    let parsed = if streaming {
        yaml::parse_visiting(text, &["spec", "steps"], &mut |node| {
            let mut lowerer = Lowerer::new(text, Vec::new());
            let step = lowerer.step(&node);
            streamed.push(node.span.start, lowerer, step);
        })
    } else {
        yaml::parse(text)
    };
    let mut lowerer = Lowerer::new(text, parsed.diagnostics);
    lowerer.streamed = streamed;
    // Any error from the YAML layer (syntax, limits) means a missing
    // document is its consequence, not an empty file.
    let syntax_failed = lowerer.diagnostics.iter().any(|d| d.is_error());
    if syntax_failed {
        lowerer.explain_syntax_errors();
    }
    let mut documents = parsed.documents.into_iter();
    let workflow = match documents.next() {
        Some(document) => {
            for extra in documents {
                lowerer.error(
                    Code::WRONG_SHAPE,
                    extra.span,
                    "a workflow file holds one YAML document",
                    Some("put each workflow (and each group) in its own file"),
                );
            }
            lowerer.document(&document)
        }
        None if syntax_failed => None,
        None => {
            lowerer.diagnostics.push(
                Diagnostic::new(Code::NOT_A_WORKFLOW, Span::at(0), "the file is empty")
                    .with_help("a workflow starts with `apiVersion: workflow/v2`"),
            );
            None
        }
    };
    ParsedWorkflow {
        workflow,
        diagnostics: lowerer.diagnostics,
    }
}

/// What lowering one item of `spec.steps` gives; see [`lower_step_item`].
#[derive(Debug)]
pub(crate) struct LoweredItem {
    pub step: Option<Step>,
    pub diagnostics: Vec<Diagnostic>,
    /// The item's id when the step was left out for an error already reported.
    pub dropped: Vec<Ident>,
}

/// Lowers one item of `spec.steps` exactly as [`parse_workflow`] does, for
/// re-parsing a single step (`crate::incremental`). Lowering a step reads
/// nothing outside its item; `text` is the whole file the item's spans point
/// into.
pub(crate) fn lower_step_item(text: &str, item: &Node) -> LoweredItem {
    let mut lowerer = Lowerer::new(text, Vec::new());
    let step = lowerer.step(item);
    LoweredItem {
        step,
        diagnostics: lowerer.diagnostics,
        dropped: lowerer.dropped_steps,
    }
}

/// Lowers one template string from a scalar, with spans mapped onto the file.
pub fn template_of(scalar: &Scalar) -> Template {
    let mut template = parse_template(&scalar.value);
    let map = |offset: usize| scalar.map.to_file(offset);
    for segment in &mut template.segments {
        match segment {
            Segment::Literal { span, .. } => *span = Span::new(map(span.start), map(span.end)),
            Segment::Expr { expr, span, .. } => {
                *span = Span::new(map(span.start), map(span.end));
                expr.map_spans(&map);
            }
        }
    }
    for diagnostic in &mut template.diagnostics {
        diagnostic.span = Span::new(map(diagnostic.span.start), map(diagnostic.span.end));
        for label in &mut diagnostic.labels {
            label.span = Span::new(map(label.span.start), map(label.span.end));
        }
        // Replacements are written verbatim: the template and expression
        // fixes only write operator characters, which need no escaping in
        // any scalar style.
        for edit in diagnostic.fix.iter_mut().flat_map(|fix| &mut fix.edits) {
            edit.span = Span::new(map(edit.span.start), map(edit.span.end));
        }
    }
    template
}

/// The keys of each part of the document; the JSON Schema in
/// `grammar/schema/` lists the same (a test keeps them in step).
pub const TOP_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "requires",
    "triggers",
    "interface",
    "spec",
];
pub const METADATA_KEYS: &[&str] = &["name", "description", "version", "authoredBy", "scope"];
pub const STEP_KEYS: &[&str] = &[
    "id",
    "type",
    "config",
    "next",
    "branches",
    "defaultHandle",
    "edgeLabels",
    "retry",
    "timeoutMs",
    "gateConfig",
];
pub const GATE_KEYS: &[&str] = &[
    "gateType",
    "signalEventType",
    "match",
    "onTimeout",
    "timeoutMs",
];
pub const RETRY_KEYS: &[&str] = &["maxAttempts", "backoff", "retryOn"];
pub const BACKOFF_KEYS: &[&str] = &["initialMs", "factor", "maxMs"];

struct Lowerer<'t> {
    text: &'t str,
    diagnostics: Vec<Diagnostic>,
    /// Ids of steps left out of the AST because of an error already reported.
    dropped_steps: Vec<Ident>,
    streamed: StreamedSteps,
}

/// Steps lowered while the YAML was read, in document order.
#[derive(Default)]
struct StreamedSteps {
    /// The steps lowered, without those dropped for an error: the common
    /// case hands this vector to the workflow as it is.
    steps: Vec<Step>,
    /// One per step mapping handed over, in document order.
    items: Vec<StreamedItem>,
}

/// What lowering one step mapping gave besides the step: merged in when
/// `spec.steps` is lowered, it is the same as lowering the step there.
struct StreamedItem {
    /// Start of the step's mapping, which identifies its (emptied) node.
    start: usize,
    /// Index of the step in [`StreamedSteps::steps`], if it was kept.
    step: Option<usize>,
    diagnostics: Vec<Diagnostic>,
    dropped: Vec<Ident>,
}

impl StreamedSteps {
    fn push(&mut self, start: usize, lowerer: Lowerer<'_>, step: Option<Step>) {
        let index = step.map(|step| {
            self.steps.push(step);
            self.steps.len() - 1
        });
        self.items.push(StreamedItem {
            start,
            step: index,
            diagnostics: lowerer.diagnostics,
            dropped: lowerer.dropped_steps,
        });
    }

    /// Whether `item` is the emptied node of the `k`-th step handed over.
    fn matches(&self, k: usize, item: &Node<'_>) -> bool {
        matches!(&item.kind, NodeKind::Map(entries) if entries.is_empty())
            && self
                .items
                .get(k)
                .is_some_and(|streamed| streamed.start == item.span.start)
    }
}

/// The entries of one mapping, consumed key by key; whatever is left over is
/// reported as unknown.
struct Fields<'n, 's> {
    entries: &'n [Entry<'s>],
    /// Which entries were taken: a bit per entry, without allocating for the
    /// mappings of up to 64 entries that make up nearly every file.
    taken: Taken,
}

enum Taken {
    Few(u64),
    Many(Vec<bool>),
}

impl<'n, 's> Fields<'n, 's> {
    fn new(entries: &'n [Entry<'s>]) -> Fields<'n, 's> {
        let taken = if entries.len() <= 64 {
            Taken::Few(0)
        } else {
            Taken::Many(vec![false; entries.len()])
        };
        Fields { entries, taken }
    }

    fn is_taken(&self, index: usize) -> bool {
        match &self.taken {
            Taken::Few(bits) => bits & (1 << index) != 0,
            Taken::Many(flags) => flags[index],
        }
    }

    fn take(&mut self, key: &str) -> Option<&'n Entry<'s>> {
        let index = (0..self.entries.len()).find(|&i| {
            !self.is_taken(i)
                && self.entries[i]
                    .key
                    .as_scalar()
                    .is_some_and(|s| s.value == key)
        })?;
        match &mut self.taken {
            Taken::Few(bits) => *bits |= 1 << index,
            Taken::Many(flags) => flags[index] = true,
        }
        Some(&self.entries[index])
    }

    fn take_value(&mut self, key: &str) -> Option<&'n Node<'s>> {
        self.take(key).map(|entry| &entry.value)
    }

    /// The entries not taken, in document order.
    fn remaining(&self) -> impl Iterator<Item = &'n Entry<'s>> + '_ {
        let entries = self.entries;
        (0..entries.len())
            .filter(|&i| !self.is_taken(i))
            .map(move |i| &entries[i])
    }
}

impl<'t> Lowerer<'t> {
    fn new(text: &'t str, diagnostics: Vec<Diagnostic>) -> Lowerer<'t> {
        Lowerer {
            text,
            diagnostics,
            dropped_steps: Vec::new(),
            streamed: StreamedSteps::default(),
        }
    }

    fn error(&mut self, code: Code, span: Span, message: impl Into<String>, help: Option<&str>) {
        let mut diagnostic = Diagnostic::new(code, span, message);
        if let Some(help) = help {
            diagnostic = diagnostic.with_help(help);
        }
        self.diagnostics.push(diagnostic);
    }

    /// YAML syntax errors caused by an unquoted `{{` get a hint.
    fn explain_syntax_errors(&mut self) {
        let text = self.text;
        for diagnostic in &mut self.diagnostics {
            if diagnostic.code != Code::YAML_SYNTAX || diagnostic.help.is_some() {
                continue;
            }
            let line_start = text[..diagnostic.span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let line_end = text[line_start..]
                .find('\n')
                .map_or(text.len(), |i| line_start + i);
            let line = &text[line_start..line_end];
            if line.contains(": {{") || line.contains("- {{") {
                diagnostic.help = Some(
                    "a value starting with `{{` must be quoted: `key: \"{{ ... }}\"`".to_string(),
                );
            }
        }
    }

    fn mapping<'n, 's>(&mut self, node: &'n Node<'s>, what: &str) -> Option<Fields<'n, 's>> {
        match &node.kind {
            NodeKind::Map(entries) => Some(Fields::new(entries)),
            NodeKind::Scalar(scalar)
                if scalar.style == ScalarStyle::Plain && scalar.resolve() == Resolved::Null =>
            {
                Some(Fields::new(&[]))
            }
            _ => {
                self.wrong_shape(node, &format!("{what} must be a mapping"));
                None
            }
        }
    }

    fn wrong_shape(&mut self, node: &Node, message: &str) {
        if self.unquoted_template(node) {
            return;
        }
        self.error(
            Code::WRONG_SHAPE,
            node.span,
            format!("{message}, found a {}", node.kind_name()),
            None,
        );
    }

    /// Reports an unquoted `{{ ... }}` that YAML read as a flow mapping, with
    /// a fix that quotes it. Returns whether it did.
    fn unquoted_template(&mut self, node: &Node) -> bool {
        let NodeKind::Map(_) = node.kind else {
            return false;
        };
        let source = &self.text[node.span.start..node.span.end];
        if !source.starts_with("{{") {
            return false;
        }
        let quoted = if source.contains('"') || source.contains('\\') {
            format!("'{}'", source.replace('\'', "''"))
        } else {
            format!("\"{source}\"")
        };
        self.diagnostics.push(
            Diagnostic::new(
                Code::UNQUOTED_TEMPLATE,
                node.span,
                "this template is not quoted, so YAML reads it as a nested mapping",
            )
            .with_help("quote a value that starts with `{{`")
            .with_replacement("quote the template", node.span, quoted),
        );
        true
    }

    fn finish(&mut self, fields: Fields<'_, '_>, known: &[&str], context: &str) {
        for entry in fields.remaining() {
            let Some(key) = entry.key.as_scalar() else {
                self.error(
                    Code::WRONG_SHAPE,
                    entry.key.span,
                    "keys must be plain strings",
                    None,
                );
                continue;
            };
            let mut diagnostic = Diagnostic::new(
                Code::UNKNOWN_KEY,
                entry.key.span,
                format!("unknown key `{}` in {context}", key.value),
            );
            if let Some(suggestion) = did_you_mean(&key.value, known.iter().copied()) {
                diagnostic = diagnostic
                    .with_help(format!("did you mean `{suggestion}`?"))
                    .with_replacement(
                        format!("rename to `{suggestion}`"),
                        entry.key.span,
                        suggestion,
                    );
            } else if key.value == "match" && context == "a step" {
                diagnostic = diagnostic.with_help("a gate's filter goes inside `gateConfig`");
            } else {
                diagnostic = diagnostic.with_help(format!("expected one of {}", backticked(known)));
            }
            self.diagnostics.push(diagnostic);
        }
    }

    fn missing(&mut self, span: Span, field: &str, context: &str) {
        self.error(
            Code::MISSING_FIELD,
            span,
            format!("{context} is missing `{field}`"),
            None,
        );
    }

    /// A scalar read as a name or text; other shapes are reported.
    fn ident(&mut self, node: &Node, what: &str) -> Option<Ident> {
        match &node.kind {
            NodeKind::Scalar(scalar) => {
                if scalar.style == ScalarStyle::Plain && scalar.resolve() == Resolved::Null {
                    self.error(
                        Code::WRONG_SHAPE,
                        node.span,
                        format!("{what} is empty"),
                        None,
                    );
                    return None;
                }
                Some(Spanned::new(scalar.value.to_string(), node.span))
            }
            _ => {
                self.wrong_shape(node, &format!("{what} must be a string"));
                None
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str) -> Option<Spanned<i64>> {
        if let NodeKind::Scalar(scalar) = &node.kind
            && let Resolved::Int(value) = scalar.resolve()
        {
            return Some(Spanned::new(value, node.span));
        }
        self.error(
            Code::WRONG_SHAPE,
            node.span,
            format!("{what} must be an integer"),
            None,
        );
        None
    }

    fn number(&mut self, node: &Node, what: &str) -> Option<Spanned<f64>> {
        if let NodeKind::Scalar(scalar) = &node.kind {
            match scalar.resolve() {
                Resolved::Int(value) => return Some(Spanned::new(value as f64, node.span)),
                Resolved::Float(value) => return Some(Spanned::new(value, node.span)),
                _ => {}
            }
        }
        self.error(
            Code::WRONG_SHAPE,
            node.span,
            format!("{what} must be a number"),
            None,
        );
        None
    }

    /// A list of names; a single scalar counts as a list of one.
    fn idents(&mut self, node: &Node, what: &str) -> Vec<Ident> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|item| self.ident(item, what))
                .collect(),
            NodeKind::Scalar(_) => self.ident(node, what).into_iter().collect(),
            NodeKind::Map(_) => {
                self.wrong_shape(node, &format!("{what} must be a list"));
                Vec::new()
            }
        }
    }

    fn enum_value<T: Copy>(
        &mut self,
        node: &Node,
        what: &str,
        table: &[(&'static str, T)],
    ) -> Option<Spanned<T>> {
        let name = self.ident(node, what)?;
        if let Some((_, value)) = table.iter().find(|(n, _)| *n == name.value) {
            return Some(Spanned::new(*value, name.span));
        }
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        let mut diagnostic = Diagnostic::new(
            Code::INVALID_VALUE,
            name.span,
            format!("`{}` is not a valid {what}", name.value),
        );
        match did_you_mean(&name.value, names.iter().copied()) {
            Some(suggestion) => {
                diagnostic = diagnostic
                    .with_help(format!("did you mean `{suggestion}`?"))
                    .with_replacement(format!("use `{suggestion}`"), name.span, suggestion);
            }
            None => {
                diagnostic = diagnostic.with_help(format!("expected one of {}", backticked(&names)))
            }
        }
        self.diagnostics.push(diagnostic);
        None
    }

    fn document(&mut self, document: &Node) -> Option<Workflow> {
        let NodeKind::Map(_) = document.kind else {
            self.error(
                Code::NOT_A_WORKFLOW,
                document.span,
                "this file is not a workflow: it has no `apiVersion`",
                Some("a workflow is a mapping that starts with `apiVersion: workflow/v2`"),
            );
            return None;
        };
        let mut fields = self.mapping(document, "a workflow")?;
        let Some(api_entry) = fields.take("apiVersion") else {
            self.error(
                Code::NOT_A_WORKFLOW,
                Span::new(document.span.start, document.span.start),
                "this file is not a workflow: it has no `apiVersion`",
                Some("a workflow starts with `apiVersion: workflow/v2`"),
            );
            return None;
        };
        let api = self.ident(&api_entry.value, "apiVersion")?;
        let api_version = match api.value.as_str() {
            "workflow/v1" => ApiVersion::V1,
            "workflow/v2" => ApiVersion::V2,
            other => {
                let message = if other.starts_with("workflow/") {
                    format!("`{other}` is not a workflow version this compiler knows")
                } else {
                    format!("this file is not a workflow: apiVersion is `{other}`")
                };
                let code = if other.starts_with("workflow/") {
                    Code::UNSUPPORTED_API_VERSION
                } else {
                    Code::NOT_A_WORKFLOW
                };
                self.error(
                    code,
                    api.span,
                    message,
                    Some("supported versions are `workflow/v1` and `workflow/v2`"),
                );
                return None;
            }
        };
        match fields.take_value("kind") {
            Some(node) => {
                if let Some(kind) = self.ident(node, "kind")
                    && kind.value != "WorkflowDefinition"
                {
                    self.error(
                        Code::UNSUPPORTED_API_VERSION,
                        kind.span,
                        format!("kind `{}` is not `WorkflowDefinition`", kind.value),
                        None,
                    );
                }
            }
            None => self.missing(api_entry.key.span, "kind", "the workflow"),
        }
        let metadata = match fields.take_value("metadata") {
            Some(node) => self.metadata(node),
            None => {
                self.missing(api_entry.key.span, "metadata", "the workflow");
                Metadata::default()
            }
        };
        let requires = match fields.take_value("requires") {
            Some(node) => self.requires(node),
            None => Vec::new(),
        };
        let triggers = match fields.take_value("triggers") {
            Some(node) => self.triggers(node),
            None => Vec::new(),
        };
        let interface = fields
            .take_value("interface")
            .and_then(|node| self.interface(node));
        let (steps, steps_span) = match fields.take_value("spec") {
            Some(node) => self.spec(node),
            None => {
                self.missing(api_entry.key.span, "spec", "the workflow");
                (Vec::new(), document.span)
            }
        };
        self.finish(fields, TOP_KEYS, "a workflow");
        Some(Workflow {
            dropped_steps: std::mem::take(&mut self.dropped_steps),
            api_version: Spanned::new(api_version, api.span),
            metadata,
            requires,
            triggers,
            interface,
            steps,
            steps_span,
            span: document.span,
        })
    }

    fn metadata(&mut self, node: &Node) -> Metadata {
        let mut metadata = Metadata {
            span: node.span,
            ..Metadata::default()
        };
        let Some(mut fields) = self.mapping(node, "metadata") else {
            return metadata;
        };
        metadata.name = fields
            .take_value("name")
            .and_then(|n| self.ident(n, "metadata.name"));
        metadata.description = fields
            .take_value("description")
            .and_then(|n| self.ident(n, "metadata.description"));
        metadata.version = fields
            .take_value("version")
            .and_then(|n| self.ident(n, "metadata.version"));
        metadata.authored_by = fields
            .take_value("authoredBy")
            .and_then(|n| self.ident(n, "metadata.authoredBy"));
        if let Some(scope) = fields.take_value("scope")
            && let Some(mut scope_fields) = self.mapping(scope, "metadata.scope")
        {
            metadata.project = scope_fields
                .take_value("project")
                .and_then(|n| self.ident(n, "metadata.scope.project"));
            self.finish(scope_fields, &["project"], "metadata.scope");
        }
        if metadata.name.is_none() {
            self.missing(node.span, "name", "metadata");
        }
        if metadata.version.is_none() {
            self.missing(node.span, "version", "metadata");
        }
        self.finish(fields, METADATA_KEYS, "metadata");
        metadata
    }

    fn requires(&mut self, node: &Node) -> Vec<Require> {
        let NodeKind::Seq(items) = &node.kind else {
            self.wrong_shape(node, "requires must be a list");
            return Vec::new();
        };
        let mut requires = Vec::new();
        for item in items {
            let Some(mut fields) = self.mapping(item, "a requires entry") else {
                continue;
            };
            match fields.take_value("plugin") {
                Some(plugin) => {
                    if let Some(plugin) = self.ident(plugin, "plugin") {
                        requires.push(Require {
                            plugin,
                            span: item.span,
                        });
                    }
                }
                None => self.missing(item.span, "plugin", "the requires entry"),
            }
            self.finish(fields, &["plugin"], "a requires entry");
        }
        requires
    }

    fn triggers(&mut self, node: &Node) -> Vec<TriggerDef> {
        let NodeKind::Seq(items) = &node.kind else {
            self.wrong_shape(node, "triggers must be a list");
            return Vec::new();
        };
        items.iter().filter_map(|item| self.trigger(item)).collect()
    }

    fn trigger(&mut self, node: &Node) -> Option<TriggerDef> {
        let mut fields = self.mapping(node, "a trigger")?;
        let id = fields.take_value("id").and_then(|n| self.ident(n, "id"));
        let kind_node = fields.take_value("kind");
        let kind = kind_node.and_then(|n| self.enum_value(n, "trigger kind", TriggerKind::ALL));
        if kind_node.is_none() {
            self.missing(node.span, "kind", "the trigger");
        }
        let config = fields.take_value("config");
        self.finish(fields, &["id", "kind", "config"], "a trigger");
        let Some(id) = id else {
            self.missing(node.span, "id", "the trigger");
            return None;
        };
        let kind = kind?;
        let kind_value = kind.value;
        let mut trigger = TriggerDef {
            id,
            kind,
            event_type: None,
            schedule: None,
            timezone: None,
            fields: Vec::new(),
            project: None,
            span: node.span,
        };
        let config_span = config.map_or(node.span, |c| c.span);
        let mut config = match config {
            Some(config) => self.mapping(config, "trigger config")?,
            None => Fields::new(&[]),
        };
        let context = "the trigger's config";
        match kind_value {
            TriggerKind::Webhook => {
                trigger.event_type = config
                    .take_value("eventType")
                    .and_then(|n| self.ident(n, "eventType"));
                if trigger.event_type.is_none() {
                    self.missing(config_span, "eventType", context);
                }
                self.finish(config, &["eventType"], context);
            }
            TriggerKind::Signal => {
                trigger.event_type = config
                    .take_value("signalEventType")
                    .and_then(|n| self.ident(n, "signalEventType"));
                if trigger.event_type.is_none() {
                    self.missing(config_span, "signalEventType", context);
                }
                self.finish(config, &["signalEventType"], context);
            }
            TriggerKind::Cron | TriggerKind::Schedule => {
                trigger.schedule = config
                    .take_value("schedule")
                    .and_then(|n| self.ident(n, "schedule"));
                trigger.timezone = config
                    .take_value("timezone")
                    .and_then(|n| self.ident(n, "timezone"));
                if trigger.schedule.is_none() {
                    self.missing(config_span, "schedule", context);
                }
                self.finish(config, &["schedule", "timezone"], context);
            }
            TriggerKind::Manual => {
                if let Some(inputs) = config.take_value("inputs") {
                    trigger.fields = self.typed_fields(inputs, "inputs");
                }
                self.finish(config, &["inputs"], context);
            }
            TriggerKind::AgentRequest => {
                if let Some(request) = config.take_value("request")
                    && let Some(mut request_fields) = self.mapping(request, "request")
                {
                    trigger.project = request_fields
                        .take_value("project")
                        .and_then(|n| self.ident(n, "project"));
                    let rest = Node {
                        span: request.span,
                        kind: NodeKind::Map(request_fields.remaining().cloned().collect()),
                    };
                    trigger.fields = self.typed_fields(&rest, "request");
                } else {
                    self.missing(config_span, "request", context);
                }
                self.finish(config, &["request"], context);
            }
        }
        Some(trigger)
    }

    /// `{name: type}` mappings: trigger payload declarations and group inputs.
    fn typed_fields(&mut self, node: &Node, what: &str) -> Vec<(Ident, TypeSyntax)> {
        let Some(fields) = self.mapping(node, what) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in fields.remaining() {
            let Some(name) = self.ident(&entry.key, "a field name") else {
                continue;
            };
            let Some(text) = self.ident(&entry.value, "a type") else {
                continue;
            };
            let NodeKind::Scalar(scalar) = &entry.value.kind else {
                continue;
            };
            match parse_type(&text.value) {
                Ok(ty) => {
                    let mut ty = ty;
                    remap_type(&mut ty, &|o| scalar.map.to_file(o));
                    out.push((name, ty));
                }
                Err((message, span)) => {
                    let span =
                        Span::new(scalar.map.to_file(span.start), scalar.map.to_file(span.end));
                    self.error(
                        Code::INVALID_VALUE,
                        span,
                        message,
                        Some("types are `string int double bool list<T> map<string, T>`, with `?` for optional"),
                    );
                }
            }
        }
        out
    }

    fn interface(&mut self, node: &Node) -> Option<Interface> {
        let mut fields = self.mapping(node, "interface")?;
        let inputs = fields
            .take_value("inputs")
            .map(|n| self.typed_fields(n, "interface.inputs"))
            .unwrap_or_default();
        let mut outputs = Vec::new();
        if let Some(outputs_node) = fields.take_value("outputs")
            && let Some(output_fields) = self.mapping(outputs_node, "interface.outputs")
        {
            for entry in output_fields.remaining() {
                if let Some(name) = self.ident(&entry.key, "an output name") {
                    let value = self.value(&entry.value);
                    outputs.push((name, value));
                }
            }
        }
        self.finish(fields, &["inputs", "outputs"], "interface");
        Some(Interface {
            inputs,
            outputs,
            span: node.span,
        })
    }

    fn spec(&mut self, node: &Node) -> (Vec<Step>, Span) {
        let Some(mut fields) = self.mapping(node, "spec") else {
            return (Vec::new(), node.span);
        };
        let steps_node = fields.take_value("steps");
        self.finish(fields, &["steps"], "spec");
        let Some(steps_node) = steps_node else {
            self.missing(node.span, "steps", "spec");
            return (Vec::new(), node.span);
        };
        let NodeKind::Seq(items) = &steps_node.kind else {
            self.wrong_shape(steps_node, "spec.steps must be a list");
            return (Vec::new(), steps_node.span);
        };
        let streamed = std::mem::take(&mut self.streamed);
        // Usually every item was handed over, in order, and nothing else was.
        let all_streamed = streamed.items.len() == items.len()
            && items
                .iter()
                .enumerate()
                .all(|(k, item)| streamed.matches(k, item));
        if all_streamed {
            for item in streamed.items {
                self.diagnostics.extend(item.diagnostics);
                self.dropped_steps.extend(item.dropped);
            }
            return (streamed.steps, steps_node.span);
        }
        // Items under a dropped duplicate key, aliases that were never
        // handed over: match items to what was streamed by position.
        let mut slots: Vec<Option<Step>> = streamed.steps.into_iter().map(Some).collect();
        let mut streamed_items = streamed.items.into_iter().peekable();
        let mut steps = Vec::with_capacity(items.len());
        for item in items {
            while streamed_items
                .peek()
                .is_some_and(|streamed| streamed.start < item.span.start)
            {
                streamed_items.next();
            }
            let is_emptied = matches!(&item.kind, NodeKind::Map(entries) if entries.is_empty());
            let step = match streamed_items
                .next_if(|streamed| is_emptied && streamed.start == item.span.start)
            {
                Some(streamed) => {
                    self.diagnostics.extend(streamed.diagnostics);
                    self.dropped_steps.extend(streamed.dropped);
                    streamed.step.and_then(|index| slots[index].take())
                }
                None => self.step(item),
            };
            steps.extend(step);
        }
        (steps, steps_node.span)
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
        let mut fields = self.mapping(node, "a step")?;
        let id = fields.take_value("id").and_then(|n| self.ident(n, "id"));
        let ty_node = fields.take_value("type");
        let ty = ty_node.and_then(|n| self.enum_value(n, "step type", StepType::ALL));
        let config = fields.take_value("config");
        let next = fields
            .take_value("next")
            .map(|n| self.idents(n, "next"))
            .unwrap_or_default();
        let branches = fields
            .take_value("branches")
            .map(|n| self.branches(n))
            .unwrap_or_default();
        let default_handle = fields
            .take_value("defaultHandle")
            .and_then(|n| self.default_handle(n));
        if let Some(labels) = fields.take_value("edgeLabels") {
            // Display only: any mapping of edge → label is fine.
            self.mapping(labels, "edgeLabels");
        }
        let retry = fields
            .take_value("retry")
            .and_then(|n| self.retry(n))
            .map(Box::new);
        let timeout_ms = fields
            .take_value("timeoutMs")
            .and_then(|n| self.int(n, "timeoutMs"));
        let gate = fields
            .take_value("gateConfig")
            .and_then(|n| self.gate_config(n))
            .map(Box::new);
        self.finish(fields, STEP_KEYS, "a step");
        let Some(id) = id else {
            self.missing(node.span, "id", "the step");
            return None;
        };
        if ty_node.is_none() {
            self.missing(id.span, "type", &format!("step `{}`", id.value));
        }
        let Some(ty) = ty else {
            self.dropped_steps.push(id);
            return None;
        };
        let mut step = Step {
            id,
            ty,
            trigger_id: None,
            action: None,
            provider: None,
            mode: None,
            cases: None,
            group_ref: None,
            max_iterations: None,
            until: None,
            inputs: Vec::new(),
            config_span: config.map(|c| c.span),
            config_valid: true,
            next,
            branches,
            default_handle,
            retry,
            timeout_ms,
            gate,
            span: node.span,
        };
        if let Some(config) = config {
            self.step_config(&mut step, config);
        }
        Some(step)
    }

    fn step_config(&mut self, step: &mut Step, node: &Node) {
        let Some(mut fields) = self.mapping(node, "config") else {
            step.config_valid = false;
            return;
        };
        match step.ty.value {
            StepType::Trigger => {
                step.trigger_id = fields
                    .take_value("triggerId")
                    .and_then(|n| self.ident(n, "triggerId"));
                let context = format!("the config of step `{}`", step.id.value);
                self.finish(fields, &["triggerId"], &context);
                return;
            }
            StepType::Condition | StepType::Action | StepType::Gate => {
                step.action = fields
                    .take_value("action")
                    .and_then(|n| self.ident(n, "action"));
                step.provider = fields
                    .take_value("provider")
                    .and_then(|n| self.ident(n, "provider"));
                if step.ty.value == StepType::Condition {
                    step.mode = fields
                        .take_value("mode")
                        .and_then(|n| self.ident(n, "mode"));
                    if let Some(cases) = fields.take_value("cases") {
                        let idents = self.idents(cases, "cases");
                        step.cases = Some(Spanned::new(idents, cases.span));
                    }
                }
            }
            StepType::Group => {
                step.group_ref = fields.take_value("ref").and_then(|n| self.ident(n, "ref"));
            }
            StepType::Loop => {
                step.group_ref = fields
                    .take_value("body")
                    .and_then(|n| self.ident(n, "body"));
                step.max_iterations = fields
                    .take_value("maxIterations")
                    .and_then(|n| self.int(n, "maxIterations"));
                step.until = fields
                    .take_value("until")
                    .and_then(|n| self.predicate(n))
                    .map(Box::new);
            }
        }
        step.inputs.reserve_exact(fields.remaining().count());
        for entry in fields.remaining() {
            let Some(name) = self.ident(&entry.key, "an input name") else {
                continue;
            };
            let value = self.value(&entry.value);
            step.inputs.push(Input { name, value });
        }
    }

    fn branches(&mut self, node: &Node) -> Vec<(Ident, Ident)> {
        let Some(fields) = self.mapping(node, "branches") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in fields.remaining() {
            if let (Some(handle), Some(target)) = (
                self.ident(&entry.key, "a handle"),
                self.ident(&entry.value, "a branch target"),
            ) {
                out.push((handle, target));
            }
        }
        out
    }

    fn default_handle(&mut self, node: &Node) -> Option<Spanned<DefaultHandle>> {
        let NodeKind::Scalar(scalar) = &node.kind else {
            self.wrong_shape(node, "defaultHandle must be a case name or `true`");
            return None;
        };
        let value = match scalar.resolve() {
            Resolved::Bool(true) if scalar.style == ScalarStyle::Plain => DefaultHandle::Branch,
            _ => DefaultHandle::Case(scalar.value.to_string()),
        };
        Some(Spanned::new(value, node.span))
    }

    fn retry(&mut self, node: &Node) -> Option<Retry> {
        let mut fields = self.mapping(node, "retry")?;
        let mut retry = Retry {
            max_attempts: fields
                .take_value("maxAttempts")
                .and_then(|n| self.int(n, "maxAttempts")),
            initial_ms: None,
            factor: None,
            max_ms: None,
            retry_on: fields
                .take_value("retryOn")
                .map(|n| self.idents(n, "retryOn"))
                .unwrap_or_default(),
            span: node.span,
        };
        if let Some(backoff) = fields.take_value("backoff")
            && let Some(mut backoff_fields) = self.mapping(backoff, "backoff")
        {
            retry.initial_ms = backoff_fields
                .take_value("initialMs")
                .and_then(|n| self.int(n, "initialMs"));
            retry.factor = backoff_fields
                .take_value("factor")
                .and_then(|n| self.number(n, "factor"));
            retry.max_ms = backoff_fields
                .take_value("maxMs")
                .and_then(|n| self.int(n, "maxMs"));
            self.finish(backoff_fields, BACKOFF_KEYS, "backoff");
        }
        if retry.max_attempts.is_none() {
            self.missing(node.span, "maxAttempts", "retry");
        }
        self.finish(fields, RETRY_KEYS, "retry");
        Some(retry)
    }

    fn gate_config(&mut self, node: &Node) -> Option<GateConfig> {
        let mut fields = self.mapping(node, "gateConfig")?;
        let gate_type = fields.take_value("gateType").and_then(|n| {
            self.enum_value(
                n,
                "gate type",
                &[
                    ("signal", GateType::Signal),
                    ("timer", GateType::Timer),
                    ("webhook", GateType::Webhook),
                ],
            )
        });
        let signal_event_type = fields
            .take_value("signalEventType")
            .and_then(|n| self.ident(n, "signalEventType"));
        let on_timeout = fields
            .take_value("onTimeout")
            .and_then(|n| self.on_timeout(n));
        let timeout_ms = fields
            .take_value("timeoutMs")
            .and_then(|n| self.int(n, "timeoutMs"));
        let match_ = fields.take_value("match").and_then(|n| self.predicate(n));
        self.finish(fields, GATE_KEYS, "gateConfig");
        Some(GateConfig {
            gate_type,
            signal_event_type,
            on_timeout,
            timeout_ms,
            match_,
            span: node.span,
        })
    }

    fn on_timeout(&mut self, node: &Node) -> Option<Spanned<OnTimeout>> {
        let text = self.ident(node, "onTimeout")?;
        let value = match text.value.as_str() {
            "skip" => OnTimeout::Skip,
            "error" => OnTimeout::Error,
            other => match other.strip_prefix("branch:") {
                Some(target) if !target.trim().is_empty() => {
                    let NodeKind::Scalar(scalar) = &node.kind else {
                        return None;
                    };
                    let leading = other.len() - other.trim_start().len();
                    let start = "branch:".len() + (target.len() - target.trim_start().len());
                    let name = target.trim();
                    let span = Span::new(
                        scalar.map.to_file(leading + start),
                        scalar.map.to_file(leading + start + name.len()),
                    );
                    OnTimeout::Branch(Spanned::new(name.to_string(), span))
                }
                _ => {
                    self.error(
                        Code::INVALID_VALUE,
                        text.span,
                        format!("`{other}` is not a valid onTimeout"),
                        Some("expected `skip`, `error` or `branch:<step id>`"),
                    );
                    return None;
                }
            },
        };
        Some(Spanned::new(value, text.span))
    }

    /// The bounded predicate language; depth is checked by the compiler,
    /// recursion here is bounded by the YAML layer's nesting limit.
    fn predicate(&mut self, node: &Node) -> Option<Predicate> {
        let mut fields = self.mapping(node, "a predicate")?;
        let combinator = ["all", "any", "not"]
            .into_iter()
            .find_map(|key| fields.take(key).map(|entry| (key, entry)));
        if let Some((key, entry)) = combinator {
            self.finish(fields, &[], &format!("an `{key}` predicate"));
            let kind = match key {
                "not" => PredicateKind::Not(Box::new(self.predicate(&entry.value)?)),
                _ => {
                    let NodeKind::Seq(items) = &entry.value.kind else {
                        self.wrong_shape(&entry.value, &format!("`{key}` must be a list"));
                        return None;
                    };
                    let children = items
                        .iter()
                        .filter_map(|item| self.predicate(item))
                        .collect();
                    if key == "all" {
                        PredicateKind::All(children)
                    } else {
                        PredicateKind::Any(children)
                    }
                }
            };
            return Some(Predicate {
                kind,
                span: node.span,
            });
        }
        let field = fields
            .take_value("field")
            .and_then(|n| self.ident(n, "field"));
        let op_node = fields.take_value("op");
        let op = op_node.and_then(|n| self.enum_value(n, "predicate operator", PredicateOp::ALL));
        let value = fields.take_value("value").map(|n| self.value(n));
        self.finish(
            fields,
            &["field", "op", "value", "all", "any", "not"],
            "a predicate",
        );
        let Some(field) = field else {
            self.missing(node.span, "field", "the predicate");
            return None;
        };
        if op_node.is_none() {
            self.missing(node.span, "op", "the predicate");
        }
        let op = op?;
        if value.is_none() && op.value != PredicateOp::Exists {
            self.missing(node.span, "value", "the predicate");
        }
        Some(Predicate {
            kind: PredicateKind::Leaf { field, op, value },
            span: node.span,
        })
    }

    fn value(&mut self, node: &Node) -> Value {
        let kind = match &node.kind {
            NodeKind::Scalar(scalar) => match (scalar.style, scalar.resolve()) {
                (ScalarStyle::Plain, Resolved::Null) => ValueKind::Null,
                (ScalarStyle::Plain, Resolved::Bool(b)) => ValueKind::Bool(b),
                (ScalarStyle::Plain, Resolved::Int(i)) => ValueKind::Int(i),
                (ScalarStyle::Plain, Resolved::Float(f)) => ValueKind::Double(f),
                _ => {
                    let mut template = template_of(scalar);
                    self.diagnostics.append(&mut template.diagnostics);
                    ValueKind::Str {
                        text: scalar.value.to_string(),
                        template: Box::new(template),
                    }
                }
            },
            NodeKind::Seq(items) => ValueKind::List(items.iter().map(|i| self.value(i)).collect()),
            NodeKind::Map(entries) => {
                if self.unquoted_template(node) {
                    ValueKind::Null
                } else {
                    ValueKind::Map(
                        entries
                            .iter()
                            .filter_map(|e| {
                                let key = self.ident(&e.key, "a key")?;
                                Some((key, self.value(&e.value)))
                            })
                            .collect(),
                    )
                }
            }
        };
        Value {
            kind,
            span: node.span,
        }
    }
}

/// Parses `string`, `int?`, `list<string>`, `map<string, list<int>>`; spans
/// are offsets into `text`.
pub fn parse_type(text: &str) -> Result<TypeSyntax, (String, Span)> {
    let mut parser = TypeParser { text, pos: 0 };
    parser.skip_ws();
    let ty = parser.ty(0)?;
    parser.skip_ws();
    if parser.pos < text.len() {
        return Err((
            format!("unexpected `{}` in type", &text[parser.pos..]),
            Span::new(parser.pos, text.len()),
        ));
    }
    Ok(ty)
}

fn remap_type(ty: &mut TypeSyntax, f: &impl Fn(usize) -> usize) {
    ty.span = Span::new(f(ty.span.start), f(ty.span.end));
    match &mut ty.kind {
        TypeSyntaxKind::Named(_) => {}
        TypeSyntaxKind::List(inner)
        | TypeSyntaxKind::Map(inner)
        | TypeSyntaxKind::Optional(inner) => remap_type(inner, f),
    }
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
}

impl TypeParser<'_> {
    fn skip_ws(&mut self) {
        while self.text[self.pos..].starts_with(' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn ty(&mut self, depth: usize) -> Result<TypeSyntax, (String, Span)> {
        if depth > 16 {
            return Err(("type nests too deeply".into(), Span::at(self.pos)));
        }
        self.skip_ws();
        let start = self.pos;
        let len = self.text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.text.len() - start);
        if len == 0 {
            return Err(("expected a type name".into(), Span::new(start, start)));
        }
        self.pos += len;
        let name = &self.text[start..self.pos];
        let mut ty = match name {
            "list" | "map" => {
                if !self.eat('<') {
                    return Err((
                        format!("`{name}` needs a type argument, as in `{name}<string>`"),
                        Span::new(start, self.pos),
                    ));
                }
                if name == "map" {
                    let key = self.ty(depth + 1)?;
                    if key.kind != TypeSyntaxKind::Named("string".into()) {
                        return Err(("map keys must be `string`".into(), key.span));
                    }
                    if !self.eat(',') {
                        return Err((
                            "expected `,` after the map key type".into(),
                            Span::at(self.pos),
                        ));
                    }
                }
                let inner = self.ty(depth + 1)?;
                if !self.eat('>') {
                    return Err(("expected `>`".into(), Span::at(self.pos)));
                }
                let kind = if name == "list" {
                    TypeSyntaxKind::List(Box::new(inner))
                } else {
                    TypeSyntaxKind::Map(Box::new(inner))
                };
                TypeSyntax {
                    kind,
                    span: Span::new(start, self.pos),
                }
            }
            _ => TypeSyntax {
                kind: TypeSyntaxKind::Named(name.to_string()),
                span: Span::new(start, self.pos),
            },
        };
        if self.eat('?') {
            ty = TypeSyntax {
                kind: TypeSyntaxKind::Optional(Box::new(ty)),
                span: Span::new(start, self.pos),
            };
        }
        Ok(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Streaming and whole-tree lowering give the same workflow and the
    /// same diagnostics, in the same order.
    fn assert_same_either_way(text: &str) {
        let streamed = parse_workflow_with(text, true);
        let whole = parse_workflow_with(text, false);
        assert_eq!(streamed.workflow, whole.workflow, "{text}");
        assert_eq!(streamed.diagnostics, whole.diagnostics, "{text}");
    }

    /// Every YAML file of the repository: examples, the corpus, the docs'
    /// cases, the bundled plugin manifests (not workflows, which matters
    /// too).
    #[test]
    fn streaming_lowering_agrees_on_the_repository_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut pending = vec![root.clone()];
        let mut checked = 0;
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir)
                .expect("a readable folder")
                .flatten()
            {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().to_string();
                if path.is_dir() {
                    if !name.starts_with('.') && name != "target" {
                        pending.push(path);
                    }
                } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                    let text = std::fs::read_to_string(&path).expect("UTF-8 YAML");
                    assert_same_either_way(&text);
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "only {checked} files found under {root:?}");
    }

    #[test]
    fn streaming_lowering_agrees_on_awkward_shapes() {
        for text in [
            // A duplicate `spec` and a duplicate `steps`: the first ones count.
            "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: a, version: '1'}\nspec:\n  steps:\n    - {id: a, type: trigger, config: {triggerId: t}}\nspec:\n  steps:\n    - {id: b, type: action}\n",
            "apiVersion: workflow/v2\nspec: {steps: [{id: a, type: action}], steps: [{id: b}]}\n",
            // Anchored steps, aliases as items, an alias as the sequence.
            "apiVersion: workflow/v2\nspec:\n  steps:\n    - &s {id: a, type: action, config: {action: 'x@1:x.y'}}\n    - *s\n    - id: c\n      type: gate\n",
            "apiVersion: workflow/v2\nx: &all [{id: a, type: action}, {}]\nspec: {steps: *all}\n",
            "apiVersion: workflow/v2\nspec: &sp\n  steps: &st\n    - {id: a, type: trigger}\n    - [not, a, mapping]\n    - plain\n    -\n    - {}\n",
            // Not a workflow, a syntax error after the steps, several documents.
            "spec:\n  steps:\n    - {id: a, type: action}\n",
            "apiVersion: workflow/v2\nspec:\n  steps:\n    - {id: a, type: action}\n    - {id: b, type: action\n",
            "---\n---\napiVersion: workflow/v2\nspec:\n  steps:\n    - {id: a, type: action}\n---\nspec:\n  steps:\n    - {id: z}\n",
            "--- x\n---\napiVersion: workflow/v2\nspec:\n  steps:\n    - {id: a, type: action}\n",
            // Quoted keys on the path, a complex key, steps under another key.
            "apiVersion: workflow/v2\n'spec':\n  \"steps\":\n    - {id: a, type: trigger, bogus: 1}\n",
            "apiVersion: workflow/v2\n? spec\n: steps:\n    - {id: a, type: action}\nother:\n  steps:\n    - {id: q}\n",
            "apiVersion: workflow/v2\nspec:\n  steps:\n    - id: a\n      type: action\n      config: {{ x }}\n    - {id: a, type: nope}\n    - {type: action}\n",
        ] {
            assert_same_either_way(text);
        }
    }

    /// Workflow-like documents built from pieces that stress the path
    /// matching: keys of the path in other places, flow and block styles,
    /// anchors, aliases, duplicates, broken lines.
    fn workflowish() -> impl Strategy<Value = String> {
        let line = prop::sample::select(vec![
            "apiVersion: workflow/v2",
            "kind: WorkflowDefinition",
            "metadata: {name: n, version: '1'}",
            "spec:",
            "  steps:",
            "steps:",
            "  spec:",
            "    - id: a",
            "    - {id: b, type: action}",
            "    - &x {id: c, type: trigger, config: {triggerId: t}}",
            "    - *x",
            "    - [x]",
            "    -",
            "      type: action",
            "      config: {action: 'a@1:a.b', k: '{{ trigger.x }}'}",
            "      next: [b]",
            "spec: {steps: [{id: d, type: gate}]}",
            "spec: &sp {steps: [{id: e}]}",
            "other: *sp",
            "  steps: *x",
            "---",
            "  - {",
            "# comment",
            "",
        ]);
        prop::collection::vec(line, 0..16).prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn streaming_lowering_agrees_on_generated_documents(text in workflowish()) {
            assert_same_either_way(&text);
        }
    }
}
