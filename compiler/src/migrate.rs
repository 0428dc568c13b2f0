//! `donmaic migrate`: rewrites a `workflow/v1` file as `workflow/v2`.
//!
//! The rewrite is a handful of minimal text edits, so comments, quoting and
//! layout stay as they are:
//!
//! - `apiVersion: workflow/v1` becomes `workflow/v2`;
//! - `trigger.data.<path>` (v1's only way to read the trigger) becomes
//!   `trigger.<path>`, and `trigger.data` alone becomes `trigger`: in v2
//!   `trigger` is the payload itself (`trigger.data` would still work, with
//!   the deprecation warning DN0130);
//! - `steps.<id>` becomes `nodes.<id>` (never a reference in v1; v2 reads
//!   node outputs as `nodes.<id>.output`);
//! - `${ e }` becomes `{{ e }}`, v2's spelling; a plain scalar that then
//!   starts with `{{` is double-quoted, since YAML would read it as a
//!   mapping.
//!
//! Only template strings are touched: step inputs, interface outputs and the
//! values of gate and loop predicates, found through the lowered workflow.
//! A name bound by a macro (`items.map(trigger, …)`) shadows the root of the
//! same name and is left alone.

use crate::fix::apply_edits;
use donmai_grammar::ast::{ApiVersion, Predicate, PredicateKind, Value, ValueKind, Workflow};
use donmai_grammar::diagnostic::Edit;
use donmai_grammar::expr::{Expr, ExprKind};
use donmai_grammar::lower::parse_workflow;
use donmai_grammar::template::{Delimiter, Segment, parse_template};
use donmai_grammar::yaml::{self, Node, NodeKind, Scalar, ScalarStyle, scalar_source};
use donmai_grammar::{SourceFile, Span};
use std::collections::HashSet;
use std::fmt;

/// What one edit of a migration does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeKind {
    /// `workflow/v1` → `workflow/v2`.
    ApiVersion,
    /// `trigger.data.x` → `trigger.x`.
    TriggerData,
    /// `steps.x` → `nodes.x`.
    StepsToNodes,
    /// `${ e }` → `{{ e }}`.
    Delimiter,
}

impl ChangeKind {
    /// A short description, for reports and editor actions.
    pub fn describe(self) -> &'static str {
        match self {
            ChangeKind::ApiVersion => "apiVersion workflow/v1 → workflow/v2",
            ChangeKind::TriggerData => "`trigger.data.…` → `trigger.…`",
            ChangeKind::StepsToNodes => "`steps.…` → `nodes.…`",
            ChangeKind::Delimiter => "`${ … }` → `{{ … }}`",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// One rewrite, at its place in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// What the rewrite replaced, in the input text.
    pub span: Span,
}

/// The result of migrating one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateOutcome {
    /// Sorted, disjoint edits against the input; empty when the file is
    /// already `workflow/v2`.
    pub edits: Vec<Edit>,
    /// The input with `edits` applied.
    pub text: String,
    /// What the edits do, in file order (a scalar that had to be quoted is
    /// one edit holding several changes).
    pub changes: Vec<Change>,
}

impl MigrateOutcome {
    pub fn changed(&self) -> bool {
        !self.edits.is_empty()
    }

    /// How many changes of each kind, in [`ChangeKind`] order.
    pub fn counts(&self) -> Vec<(ChangeKind, usize)> {
        let mut counts: Vec<(ChangeKind, usize)> = Vec::new();
        let mut kinds: Vec<ChangeKind> = self.changes.iter().map(|c| c.kind).collect();
        kinds.sort();
        for kind in kinds {
            match counts.last_mut() {
                Some((last, count)) if *last == kind => *count += 1,
                _ => counts.push((kind, 1)),
            }
        }
        counts
    }
}

/// Why a file could not be migrated; it is then left as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateError {
    /// Byte range in the input.
    pub span: Span,
    /// 1-based line and column (characters) of `span.start`.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl MigrateError {
    fn new(text: &str, span: Span, message: impl Into<String>) -> MigrateError {
        let file = SourceFile::new("", text.to_string());
        let position = file.line_col(span.start.min(text.len()));
        MigrateError {
            span,
            line: position.line,
            column: position.column,
            message: message.into(),
        }
    }
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for MigrateError {}

/// Rewrites a `workflow/v1` file as `workflow/v2`. A `workflow/v2` file
/// comes back unchanged; YAML errors, a missing `apiVersion` or another
/// version are errors.
pub fn migrate_v1_to_v2(text: &str) -> Result<MigrateOutcome, MigrateError> {
    let parsed = yaml::parse(text);
    if let Some(first) = parsed.diagnostics.first() {
        return Err(MigrateError::new(
            text,
            first.span,
            format!("not migrated: the YAML has an error: {}", first.message),
        ));
    }
    let Some(document) = parsed.documents.first() else {
        return Err(MigrateError::new(
            text,
            Span::at(0),
            "not a workflow: the file is empty",
        ));
    };
    let Some(api_version) = document.entry("apiVersion") else {
        return Err(MigrateError::new(
            text,
            document.span,
            "not a workflow: there is no `apiVersion`",
        ));
    };
    let version = &api_version.value;
    let scalar = match (version.as_scalar(), version.as_str()) {
        (Some(scalar), Some("workflow/v1")) => scalar,
        (_, Some("workflow/v2")) => {
            return Ok(MigrateOutcome {
                edits: Vec::new(),
                text: text.to_string(),
                changes: Vec::new(),
            });
        }
        (_, Some(other)) => {
            return Err(MigrateError::new(
                text,
                version.span,
                format!(
                    "`apiVersion: {other}` is not workflow/v1, so there is nothing to migrate from"
                ),
            ));
        }
        _ => {
            return Err(MigrateError::new(
                text,
                version.span,
                "`apiVersion` is not a string",
            ));
        }
    };
    let mut plan = Plan::default();
    // "workflow/v1": the `1` is decoded byte 10.
    let digit = scalar.file_span(Span::new(10, 11));
    plan.edit(digit, "2", ChangeKind::ApiVersion);

    let lowered = parse_workflow(text);
    if let Some(workflow) = &lowered.workflow {
        let mut templates = HashSet::new();
        template_spans(workflow, &mut templates);
        let mut pending = vec![document];
        while let Some(node) = pending.pop() {
            if text[node.span.start..].starts_with('*') {
                continue; // An alias: its anchor is rewritten where it is.
            }
            match &node.kind {
                NodeKind::Scalar(scalar) if templates.contains(&node.span) => {
                    plan.scalar(node, scalar);
                }
                NodeKind::Scalar(_) => {}
                NodeKind::Map(_)
                    if templates.contains(&node.span)
                        && text[node.span.start..].starts_with("{{") =>
                {
                    plan.unquoted_template(text, node.span);
                }
                NodeKind::Seq(items) => pending.extend(items),
                NodeKind::Map(entries) => pending.extend(entries.iter().map(|e| &e.value)),
            }
        }
    }

    let Plan {
        mut edits,
        mut changes,
    } = plan;
    edits.sort_by_key(|edit| (edit.span.start, edit.span.end));
    changes.sort_by_key(|change| (change.span.start, change.kind));
    let migrated = apply_edits(text, &edits);
    let check = parse_workflow(&migrated);
    let is_v2 = check
        .workflow
        .as_ref()
        .is_some_and(|w| w.api_version.value == ApiVersion::V2);
    if !is_v2 || !yaml::parse(&migrated).diagnostics.is_empty() {
        return Err(MigrateError::new(
            text,
            version.span,
            "the migrated file would not read back as workflow/v2, so it is left as it is \
             (please report it)",
        ));
    }
    Ok(MigrateOutcome {
        edits,
        text: migrated,
        changes,
    })
}

/// The spans of every string value that is a template.
fn template_spans(workflow: &Workflow, spans: &mut HashSet<Span>) {
    for step in &workflow.steps {
        for input in &step.inputs {
            value_templates(&input.value, spans);
        }
        if let Some(until) = &step.until {
            predicate_templates(until, spans);
        }
        if let Some(filter) = step.gate.as_ref().and_then(|gate| gate.match_.as_ref()) {
            predicate_templates(filter, spans);
        }
    }
    if let Some(interface) = &workflow.interface {
        for (_, output) in &interface.outputs {
            value_templates(output, spans);
        }
    }
}

fn value_templates(value: &Value, spans: &mut HashSet<Span>) {
    match &value.kind {
        // An unquoted `{{ … }}` lowers to null (and an error with a fix).
        ValueKind::Str { .. } | ValueKind::Null => {
            spans.insert(value.span);
        }
        ValueKind::List(items) => items.iter().for_each(|item| value_templates(item, spans)),
        ValueKind::Map(entries) => entries.iter().for_each(|(_, v)| value_templates(v, spans)),
        _ => {}
    }
}

fn predicate_templates(predicate: &Predicate, spans: &mut HashSet<Span>) {
    match &predicate.kind {
        PredicateKind::All(items) | PredicateKind::Any(items) => {
            items.iter().for_each(|p| predicate_templates(p, spans));
        }
        PredicateKind::Not(inner) => predicate_templates(inner, spans),
        PredicateKind::Leaf { value: Some(v), .. } => value_templates(v, spans),
        PredicateKind::Leaf { value: None, .. } => {}
    }
}

#[derive(Default)]
struct Plan {
    edits: Vec<Edit>,
    changes: Vec<Change>,
}

/// An edit of a scalar's decoded value.
struct ValueEdit {
    span: Span,
    replacement: &'static str,
    kind: ChangeKind,
    /// The closing half of a delimiter change is not counted again.
    counted: bool,
}

impl Plan {
    fn edit(&mut self, span: Span, replacement: &str, kind: ChangeKind) {
        self.edits.push(Edit {
            span,
            replacement: replacement.to_string(),
        });
        self.changes.push(Change { kind, span });
    }

    /// Rewrites the references of a `{{ … }}` written without quotes, which
    /// YAML reads as a mapping: its text is the template, as written.
    fn unquoted_template(&mut self, text: &str, span: Span) {
        let template = parse_template(&text[span.start..span.end]);
        let mut edits = Vec::new();
        for expr in template.exprs() {
            references(expr, &mut Vec::new(), &mut edits);
        }
        for edit in edits {
            let at = Span::new(span.start + edit.span.start, span.start + edit.span.end);
            self.edit(at, edit.replacement, edit.kind);
        }
    }

    /// Rewrites the templates of one scalar.
    fn scalar(&mut self, node: &Node<'_>, scalar: &Scalar<'_>) {
        let value = &*scalar.value;
        let template = parse_template(value);
        let mut reference_edits = Vec::new();
        let mut delimiter_edits = Vec::new();
        for segment in &template.segments {
            let Segment::Expr {
                expr,
                span,
                delimiter,
            } = segment
            else {
                continue;
            };
            references(expr, &mut Vec::new(), &mut reference_edits);
            // `{${ e }` would become `{{{ e }}`, another template.
            let after_brace = value[..span.start].ends_with('{');
            if *delimiter == Delimiter::Dollar
                && !after_brace
                && value[span.start..].starts_with("${")
            {
                delimiter_edits.push(ValueEdit {
                    span: Span::new(span.start, span.start + 1),
                    replacement: "{",
                    kind: ChangeKind::Delimiter,
                    counted: true,
                });
                delimiter_edits.push(ValueEdit {
                    span: Span::at(span.end),
                    replacement: "}",
                    kind: ChangeKind::Delimiter,
                    counted: false,
                });
            }
        }
        if reference_edits.is_empty() && delimiter_edits.is_empty() {
            return;
        }
        // The delimiters are changed only when the new text reads as the
        // same templates; the references always are.
        let mut edits: Vec<ValueEdit> =
            reference_edits.into_iter().chain(delimiter_edits).collect();
        edits.sort_by_key(|edit| (edit.span.start, edit.span.end));
        let mut rewritten = rewrite(value, &edits);
        if !same_shape(&template, &parse_template(&rewritten)) {
            edits.retain(|edit| edit.kind != ChangeKind::Delimiter);
            rewritten = rewrite(value, &edits);
        }
        if edits.is_empty() {
            return;
        }
        let needs_quotes = scalar.style == ScalarStyle::Plain && rewritten.starts_with('{');
        if needs_quotes {
            self.edits.push(Edit {
                span: node.span,
                replacement: scalar_source(&rewritten),
            });
            for edit in edits.iter().filter(|edit| edit.counted) {
                self.changes.push(Change {
                    kind: edit.kind,
                    span: scalar.file_span(edit.span),
                });
            }
            return;
        }
        for edit in edits {
            let span = if edit.span.is_empty() {
                Span::at(scalar.to_file(edit.span.start))
            } else {
                scalar.file_span(edit.span)
            };
            self.edits.push(Edit {
                span,
                replacement: edit.replacement.to_string(),
            });
            if edit.counted {
                self.changes.push(Change {
                    kind: edit.kind,
                    span,
                });
            }
        }
    }
}

fn rewrite(value: &str, edits: &[ValueEdit]) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut position = 0;
    for edit in edits {
        out.push_str(&value[position..edit.span.start]);
        out.push_str(edit.replacement);
        position = edit.span.end;
    }
    out.push_str(&value[position..]);
    out
}

/// Whether two templates have the same literal text and the same number
/// of expressions, and the second no new syntax error.
fn same_shape(
    before: &donmai_grammar::template::Template,
    after: &donmai_grammar::template::Template,
) -> bool {
    let literal = |segment: &Segment| match segment {
        Segment::Literal { text, .. } => Some(text.clone()),
        Segment::Expr { .. } => None,
    };
    after.diagnostics.len() <= before.diagnostics.len()
        && before.segments.len() == after.segments.len()
        && before
            .segments
            .iter()
            .zip(&after.segments)
            .all(|(a, b)| literal(a) == literal(b))
}

/// Collects the reference rewrites of `expr`; `bound` holds the names
/// macros bind around it.
fn references(expr: &Expr, bound: &mut Vec<String>, edits: &mut Vec<ValueEdit>) {
    let is_root = |operand: &Expr, name: &str, bound: &Vec<String>| {
        matches!(&operand.kind, ExprKind::Ident(ident) if ident.text == name)
            && !bound.iter().any(|b| b == name)
    };
    match &expr.kind {
        ExprKind::Select { operand, field, .. } => {
            if is_root(operand, "trigger", bound) && field.text == "data" {
                edits.push(ValueEdit {
                    span: Span::new(operand.span.end, field.span.end),
                    replacement: "",
                    kind: ChangeKind::TriggerData,
                    counted: true,
                });
                return;
            }
            steps_root(operand, bound, edits);
            references(operand, bound, edits);
        }
        ExprKind::Index { operand, index } => {
            let data_index = matches!(&index.kind, ExprKind::String(s) if s == "data");
            if is_root(operand, "trigger", bound) && data_index {
                edits.push(ValueEdit {
                    span: Span::new(operand.span.end, expr.span.end),
                    replacement: "",
                    kind: ChangeKind::TriggerData,
                    counted: true,
                });
            } else {
                steps_root(operand, bound, edits);
                references(operand, bound, edits);
            }
            references(index, bound, edits);
        }
        ExprKind::Call {
            target,
            function,
            args,
        } => {
            if let Some(target) = target {
                references(target, bound, edits);
            }
            let binder = match args.first().map(|arg| &arg.kind) {
                Some(ExprKind::Ident(name))
                    if target.is_some() && donmai_stdlib::builtins::is_macro(&function.text) =>
                {
                    Some(name.text.clone())
                }
                _ => None,
            };
            let skip = usize::from(binder.is_some());
            if let Some(name) = &binder {
                bound.push(name.clone());
            }
            for arg in &args[skip..] {
                references(arg, bound, edits);
            }
            if binder.is_some() {
                bound.pop();
            }
        }
        ExprKind::List(items) => items.iter().for_each(|e| references(e, bound, edits)),
        ExprKind::Map(entries) => {
            for (key, value) in entries {
                references(key, bound, edits);
                references(value, bound, edits);
            }
        }
        ExprKind::Unary { operand, .. } => references(operand, bound, edits),
        ExprKind::Binary { lhs, rhs, .. } => {
            references(lhs, bound, edits);
            references(rhs, bound, edits);
        }
        ExprKind::Conditional {
            cond,
            then,
            otherwise,
        } => {
            references(cond, bound, edits);
            references(then, bound, edits);
            references(otherwise, bound, edits);
        }
        ExprKind::Null
        | ExprKind::Bool(_)
        | ExprKind::Int(_)
        | ExprKind::Double(_)
        | ExprKind::String(_)
        | ExprKind::Ident(_)
        | ExprKind::Error => {}
    }
}

/// `steps` as the root of a selection or index becomes `nodes`.
fn steps_root(operand: &Expr, bound: &[String], edits: &mut Vec<ValueEdit>) {
    if let ExprKind::Ident(name) = &operand.kind
        && name.text == "steps"
        && !bound.iter().any(|b| b == "steps")
    {
        edits.push(ValueEdit {
            span: name.span,
            replacement: "nodes",
            kind: ChangeKind::StepsToNodes,
            counted: true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrate(text: &str) -> MigrateOutcome {
        migrate_v1_to_v2(text).unwrap_or_else(|e| panic!("{e}"))
    }

    const HEAD: &str = "apiVersion: workflow/v1 # old\nkind: WorkflowDefinition\nmetadata: {name: m, version: \"1\"}\nrequires: [{plugin: donmai@1}]\ntriggers: [{id: t, kind: manual}]\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: t}, next: [a]}\n";

    fn step(config: &str) -> String {
        format!(
            "{HEAD}    - id: a\n      type: action\n      config:\n        action: \"donmai@1:agent.dispatch_to_queue\"\n{config}"
        )
    }

    #[test]
    fn rewrites_the_version_and_trigger_data() {
        let text = step(
            "        workType: \"{{ trigger.data.kind }}\" # keep\n        scope: 'PR ${trigger.data.number}: {{ trigger[\"data\"].title }}'\n",
        );
        let outcome = migrate(&text);
        assert!(outcome.text.starts_with("apiVersion: workflow/v2 # old\n"));
        assert!(
            outcome
                .text
                .contains("workType: \"{{ trigger.kind }}\" # keep\n"),
            "{}",
            outcome.text
        );
        assert!(
            outcome
                .text
                .contains("scope: 'PR {{trigger.number}}: {{ trigger.title }}'\n"),
            "{}",
            outcome.text
        );
        assert_eq!(
            outcome.counts(),
            [
                (ChangeKind::ApiVersion, 1),
                (ChangeKind::TriggerData, 3),
                (ChangeKind::Delimiter, 1)
            ]
        );
        // Idempotent: the result is v2, so nothing more to do.
        assert!(!migrate(&outcome.text).changed());
    }

    #[test]
    fn plain_scalars_that_would_start_with_braces_are_quoted() {
        let text =
            step("        workType: ${trigger.data.kind}\n        scope: PR ${ steps.x.output }\n");
        let outcome = migrate(&text);
        assert!(
            outcome.text.contains("workType: \"{{trigger.kind}}\"\n"),
            "{}",
            outcome.text
        );
        assert!(
            outcome.text.contains("scope: PR {{ nodes.x.output }}\n"),
            "{}",
            outcome.text
        );
    }

    #[test]
    fn escapes_and_block_scalars_map_back_to_the_file() {
        let text = step(
            "        workType: \"\\x7b{ trigger.data.kind }}\"\n        scope: |\n          Hello {{ trigger.data.name }}\n          ${trigger.data.x}\n",
        );
        let outcome = migrate(&text);
        assert!(
            outcome
                .text
                .contains("workType: \"\\x7b{ trigger.kind }}\"\n"),
            "{}",
            outcome.text
        );
        assert!(
            outcome
                .text
                .contains("          Hello {{ trigger.name }}\n          {{trigger.x}}\n"),
            "{}",
            outcome.text
        );
    }

    #[test]
    fn macro_variables_shadow_roots() {
        let text =
            step("        workType: \"{{ trigger.data.items.map(trigger, trigger.data) }}\"\n");
        let outcome = migrate(&text);
        assert!(
            outcome
                .text
                .contains("\"{{ trigger.items.map(trigger, trigger.data) }}\""),
            "{}",
            outcome.text
        );
    }

    #[test]
    fn non_templates_are_left_alone() {
        let text = format!("{HEAD}# trigger.data.x in a comment\n")
            .replace("name: m", "name: \"trigger.data.x ${x}\"");
        let outcome = migrate(&text);
        assert_eq!(outcome.edits.len(), 1, "{:?}", outcome.edits);
    }

    #[test]
    fn v2_is_unchanged_and_others_are_refused() {
        let v2 = HEAD.replace("workflow/v1", "workflow/v2");
        assert!(!migrate(&v2).changed());
        let error = migrate_v1_to_v2(&HEAD.replace("workflow/v1", "workflow/v3")).expect_err("v3");
        assert_eq!((error.line, error.column), (1, 13));
        assert!(migrate_v1_to_v2("a: [").is_err());
        assert!(migrate_v1_to_v2("").is_err());
        assert!(
            migrate_v1_to_v2("kind: x\n")
                .expect_err("no apiVersion")
                .message
                .contains("apiVersion")
        );
        let quoted = HEAD.replace("workflow/v1", "'workflow/v1'");
        assert!(
            migrate(&quoted)
                .text
                .starts_with("apiVersion: 'workflow/v2'")
        );
    }
}
