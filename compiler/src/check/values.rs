//! Types of step values: literals, templates and the references inside
//! expressions (`nodes.<id>.output`, `trigger.<path>`, the v1 and `steps.*`
//! forms), plus the bounded predicates of gate filters and loop `until`.

use std::collections::BTreeMap;
use std::sync::Arc;

use donmai_grammar::ast::*;
use donmai_grammar::diagnostic::did_you_mean;
use donmai_grammar::expr::lexer::is_identifier;
use donmai_grammar::expr::{Expr, ExprKind};
use donmai_grammar::template::Segment;
use donmai_grammar::{Code, Diagnostic, Span};
use donmai_stdlib::types::{Field, ObjectType, Type};

use super::Checker;
use crate::typeck::{TypeEnv, check_expr, check_expr_recording};

/// Limits of the bounded predicate language.
const MAX_PREDICATE_DEPTH: usize = 5;
const MAX_LEAVES: usize = 32;
const MAX_IN_MEMBERS: usize = 32;
const MAX_STRING_BYTES: usize = 256;
const MAX_FILTER_BYTES: usize = 16 * 1024;

/// Today's date (UTC), for verb deprecation dates.
pub(super) fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

struct ExprEnv {
    nodes: Option<Type>,
    trigger: Type,
}

impl TypeEnv for ExprEnv {
    fn root(&self, name: &str) -> Option<Type> {
        match name {
            "nodes" => self.nodes.clone(),
            "trigger" => Some(self.trigger.clone()),
            // Already reported by the reference pass.
            "steps" => Some(Type::Dyn),
            _ => None,
        }
    }

    fn roots(&self) -> Vec<String> {
        let mut roots = vec!["trigger".to_string()];
        if self.nodes.is_some() {
            roots.insert(0, "nodes".to_string());
        }
        roots
    }
}

impl Checker<'_> {
    /// Whether step `j` has a path to position `index` (`index == steps.len()`
    /// stands for the end of the run).
    pub(super) fn runs_before(&self, j: usize, index: usize) -> bool {
        index == self.workflow.steps.len() || self.topology().is_ancestor(j, index)
    }

    /// Whether step `j` has succeeded whenever position `index` is reached.
    pub(super) fn always_ran(&self, j: usize, index: usize) -> bool {
        self.topology().always_ran(j, index)
    }

    fn reaching_entries(&self, index: usize) -> Vec<usize> {
        let topology = self.topology();
        if index == self.workflow.steps.len() {
            topology.entries.clone()
        } else {
            topology.reaching_entries(index).collect()
        }
    }

    /// The type a step value has at position `index`, reporting what is
    /// wrong inside it.
    pub(super) fn value_type(&mut self, index: usize, value: &Value) -> Type {
        match &value.kind {
            ValueKind::Null => Type::Null,
            ValueKind::Bool(_) => Type::Bool,
            ValueKind::Int(_) => Type::Int,
            ValueKind::Double(_) => Type::Double,
            ValueKind::Str { text, template } => {
                if let Some(expr) = template.single_expr() {
                    return self.expr_type(index, expr);
                }
                let mut literal = true;
                for segment in &template.segments {
                    if let Segment::Expr { expr, .. } = segment {
                        literal = false;
                        self.expr_type(index, expr);
                    }
                }
                if literal {
                    // A literal keeps its value, so it fits an enum port.
                    Type::enumeration([text.clone()])
                } else {
                    Type::String
                }
            }
            ValueKind::List(items) => {
                let mut item_type: Option<Type> = None;
                for item in items {
                    let ty = self.value_type(index, item);
                    item_type = Some(match item_type {
                        Some(joined) => joined.join(&ty),
                        None => ty,
                    });
                }
                Type::list(item_type.unwrap_or(Type::Dyn))
            }
            ValueKind::Map(entries) => {
                let mut fields = BTreeMap::new();
                for (key, item) in entries {
                    let ty = self.value_type(index, item);
                    fields.insert(key.value.clone(), Field { ty, required: true });
                }
                Type::Object(Arc::new(ObjectType {
                    fields,
                    closed: false,
                }))
            }
        }
    }

    pub(super) fn expr_type(&mut self, index: usize, expr: &Expr) -> Type {
        let mut referenced = Vec::new();
        self.references(index, expr, &mut referenced);
        let nodes = self.is_v2().then(|| self.nodes_type(index, &referenced));
        let env = ExprEnv {
            nodes,
            trigger: self.trigger_type(index),
        };
        let (ty, mut diagnostics) = match self.expr_types.as_mut() {
            Some(types) => check_expr_recording(expr, &env, types),
            None => check_expr(expr, &env),
        };
        self.diagnostics.append(&mut diagnostics);
        ty
    }

    /// `nodes`, restricted to the ids this expression names.
    fn nodes_type(&self, index: usize, referenced: &[(String, Option<usize>)]) -> Type {
        let mut fields = BTreeMap::new();
        for (id, step) in referenced {
            let field = match step {
                Some(j) => {
                    let output = self.outputs[*j].clone().unwrap_or(Type::Dyn);
                    let mut node = BTreeMap::new();
                    node.insert(
                        "output".to_string(),
                        Field {
                            ty: output,
                            required: true,
                        },
                    );
                    Field {
                        ty: Type::Object(Arc::new(ObjectType {
                            fields: node,
                            closed: true,
                        })),
                        required: self.always_ran(*j, index),
                    }
                }
                None => Field {
                    ty: Type::Dyn,
                    required: true,
                },
            };
            fields.insert(id.clone(), field);
        }
        Type::Object(Arc::new(ObjectType {
            fields,
            closed: false,
        }))
    }

    /// `trigger` at `index`: the payload of every trigger that reaches it;
    /// a field that only some of them have is optional.
    ///
    /// Cached by the set of reaching triggers, which most steps share:
    /// building the type clones whole payload objects, which took 7% of the
    /// instructions of checking a 10,000-step workflow. Trigger outputs are
    /// fixed before any expression is checked, so a cached type never goes
    /// stale.
    pub(super) fn trigger_type(&mut self, index: usize) -> Type {
        // Keyed by the set of reaching entries, which the topology already
        // holds: a hit allocates nothing.
        let topology = self.topology();
        let key = (index < self.workflow.steps.len()).then(|| topology.reached_by(index));
        let cached = match key {
            Some(key) => self.trigger_types.get(key),
            None => self.trigger_types_at_end.as_ref(),
        };
        if let Some(cached) = cached {
            return cached.clone();
        }
        let key = key.map(<[u64]>::to_vec);
        let ty = self.build_trigger_type(&self.reaching_entries(index));
        match key {
            Some(key) => {
                self.trigger_types.insert(key, ty.clone());
            }
            None => self.trigger_types_at_end = Some(ty.clone()),
        }
        ty
    }

    fn build_trigger_type(&self, entries: &[usize]) -> Type {
        // Trigger steps of one trigger share its payload (the same `Arc`),
        // and a workflow may have thousands of them. Merging a type into a
        // merge that just took it changes nothing (`join` gives the merge
        // back), so each run of the same payload is merged once; merging
        // thousands of copies per step was quadratic. A single payload
        // stands for several as two copies, as merging two differs from
        // taking one (a non-object payload merges to `dyn`).
        static DYN: Type = Type::Dyn;
        let same = |a: &Type, b: &Type| match (a, b) {
            (Type::Object(a), Type::Object(b)) => Arc::ptr_eq(a, b),
            _ => a == b,
        };
        let mut payloads: Vec<Type> = Vec::new();
        let mut last: Option<&Type> = None;
        for &entry in entries {
            let payload = self.outputs[entry].as_ref().unwrap_or(&DYN);
            if last.is_none_or(|last| !same(last, payload)) {
                payloads.push(payload.clone());
                last = Some(payload);
            }
        }
        if payloads.len() == 1 && entries.len() > 1 {
            payloads.push(payloads[0].clone());
        }
        let payload = merge_payloads(&payloads);
        if self.is_v2() {
            match payload {
                Type::Object(object) if !object.fields.contains_key("data") => {
                    let mut object = (*object).clone();
                    object.fields.insert(
                        "data".to_string(),
                        Field {
                            ty: Type::Object(Arc::new(object.clone())),
                            required: true,
                        },
                    );
                    Type::Object(Arc::new(object))
                }
                other => other,
            }
        } else {
            let mut fields = BTreeMap::new();
            fields.insert(
                "data".to_string(),
                Field {
                    ty: payload,
                    required: true,
                },
            );
            Type::Object(Arc::new(ObjectType {
                fields,
                closed: true,
            }))
        }
    }

    /// Reports references that cannot work and records which steps'
    /// outputs are read. Recursion is bounded by the parser's depth cap.
    fn references(
        &mut self,
        index: usize,
        expr: &Expr,
        referenced: &mut Vec<(String, Option<usize>)>,
    ) {
        if let Some(path) = expr.as_path() {
            self.reference_path(index, &path, referenced);
            return;
        }
        match &expr.kind {
            ExprKind::Select { operand, .. } => self.references(index, operand, referenced),
            ExprKind::Index { operand, index: i } => {
                self.references(index, operand, referenced);
                self.references(index, i, referenced);
            }
            ExprKind::List(items) => items
                .iter()
                .for_each(|e| self.references(index, e, referenced)),
            ExprKind::Map(entries) => entries.iter().for_each(|(k, v)| {
                self.references(index, k, referenced);
                self.references(index, v, referenced);
            }),
            ExprKind::Call { target, args, .. } => {
                if let Some(target) = target {
                    self.references(index, target, referenced);
                }
                args.iter()
                    .for_each(|e| self.references(index, e, referenced));
            }
            ExprKind::Unary { operand, .. } => self.references(index, operand, referenced),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.references(index, lhs, referenced);
                self.references(index, rhs, referenced);
            }
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => {
                self.references(index, cond, referenced);
                self.references(index, then, referenced);
                self.references(index, otherwise, referenced);
            }
            _ => {}
        }
    }

    fn reference_path(
        &mut self,
        index: usize,
        path: &[&donmai_grammar::expr::Name],
        referenced: &mut Vec<(String, Option<usize>)>,
    ) {
        let root = path[0];
        match root.text.as_str() {
            "steps" => {
                let mut diagnostic = Diagnostic::new(
                    Code::STEPS_REFERENCE,
                    root.span,
                    "`steps.*` is not a reference: node outputs are read with `nodes.*`",
                );
                if self.is_v2() {
                    diagnostic = diagnostic.with_replacement("use `nodes`", root.span, "nodes");
                } else {
                    diagnostic = diagnostic
                        .with_help("reading node outputs needs workflow/v2: run `donmaic migrate`");
                }
                self.diagnostics.push(diagnostic);
                if self.is_v2() {
                    self.node_reference(index, path, referenced);
                }
            }
            "nodes" => {
                if !self.is_v2() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::UNKNOWN_REFERENCE,
                            root.span,
                            "`nodes.*` piping needs `apiVersion: workflow/v2`",
                        )
                        .with_help("workflow/v1 reads only the trigger, as `trigger.data.<path>`; run `donmaic migrate` to move to v2"),
                    );
                    return;
                }
                self.node_reference(index, path, referenced);
            }
            "trigger" if self.is_v2() && path.len() >= 2 && path[1].text == "data" => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::TRIGGER_DATA_DEPRECATED,
                        Span::new(root.span.start, path[1].span.end),
                        "`trigger.data.*` is deprecated in workflow/v2",
                    )
                    .with_replacement(
                        "read the payload as `trigger.*`",
                        Span::new(root.span.end, path[1].span.end),
                        "",
                    ),
                );
            }
            _ => {}
        }
    }

    fn node_reference(
        &mut self,
        index: usize,
        path: &[&donmai_grammar::expr::Name],
        referenced: &mut Vec<(String, Option<usize>)>,
    ) {
        let Some(id) = path.get(1) else { return };
        let workflow = self.workflow;
        let step = match self.topology().step(&id.text) {
            Some(j) if j == index => {
                self.diagnostics.push(Diagnostic::new(
                    Code::NOT_UPSTREAM,
                    id.span,
                    format!("step `{}` cannot read its own output", id.text),
                ));
                None
            }
            Some(j) if !self.runs_before(j, index) => {
                let here = &workflow.steps[index].id.value;
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::NOT_UPSTREAM,
                        id.span,
                        format!("step `{}` does not run before `{here}`", id.text),
                    )
                    .with_label(workflow.steps[j].id.span, "defined here")
                    .with_help(format!("only steps on a path to `{here}` can be read")),
                );
                None
            }
            Some(j) => {
                self.used_outputs.insert(j);
                self.recording.used(j);
                Some(j)
            }
            None => {
                let ids = workflow.steps.iter().map(|s| s.id.value.as_str());
                let mut diagnostic = Diagnostic::new(
                    Code::UNKNOWN_REFERENCE,
                    id.span,
                    format!("there is no step `{}`", id.text),
                );
                if let Some(s) = did_you_mean(&id.text, ids) {
                    diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
                    // An id that is not a name cannot be written after `nodes.`.
                    if is_identifier(s) {
                        diagnostic = diagnostic.with_replacement(format!("use `{s}`"), id.span, s);
                    }
                }
                self.diagnostics.push(diagnostic);
                None
            }
        };
        if step.is_some()
            && let Some(field) = path.get(2)
            && field.text != "output"
        {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::UNKNOWN_FIELD,
                    field.span,
                    format!("a node has no field `{}`", field.text),
                )
                .with_help(
                    "a node's results are read through `output`, e.g. `nodes.x.output.sessionId`",
                ),
            );
        }
        if !referenced.iter().any(|(r, _)| *r == id.text) {
            referenced.push((id.text.clone(), step));
        }
    }

    /// Type of an interface output, read at the end of the run.
    pub(super) fn output_value_type(&mut self, value: &Value) -> Type {
        let end = self.workflow.steps.len();
        self.value_type(end, value)
    }

    /// Why a value may be null at `index`: the first step it reads that
    /// does not run on every path here.
    pub(super) fn null_cause(&self, index: usize, value: &Value) -> Option<(Span, String)> {
        let ValueKind::Str { template, .. } = &value.kind else {
            return None;
        };
        let expr = template.single_expr()?;
        let mut found = None;
        self.first_skippable(index, expr, &mut found);
        found
    }

    fn first_skippable(&self, index: usize, expr: &Expr, found: &mut Option<(Span, String)>) {
        if found.is_some() {
            return;
        }
        if let Some(path) = expr.as_path() {
            if path.len() >= 2
                && matches!(path[0].text.as_str(), "nodes" | "steps")
                && let Some(j) = self.topology().step(&path[1].text)
                && j != index
                && self.runs_before(j, index)
                && !self.always_ran(j, index)
            {
                let step = &self.workflow.steps[j];
                let here = self
                    .workflow
                    .steps
                    .get(index)
                    .map_or("the end of the run".to_string(), |s| {
                        format!("`{}`", s.id.value)
                    });
                *found = Some((
                    step.id.span,
                    format!(
                        "`{}` does not run on every path to {here}, so its output may be null",
                        step.id.value
                    ),
                ));
            }
            return;
        }
        match &expr.kind {
            ExprKind::Select { operand, .. } => self.first_skippable(index, operand, found),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.first_skippable(index, lhs, found);
                self.first_skippable(index, rhs, found);
            }
            ExprKind::Conditional {
                then, otherwise, ..
            } => {
                self.first_skippable(index, then, found);
                self.first_skippable(index, otherwise, found);
            }
            _ => {}
        }
    }

    /// Checks a bounded predicate. `subject` is the type its `field` paths
    /// are read from (an event payload, or `{output: ...}` for a loop).
    pub(super) fn predicate(
        &mut self,
        index: usize,
        predicate: &Predicate,
        subject: Option<&Type>,
        is_gate: bool,
    ) {
        if predicate.span.len() > MAX_FILTER_BYTES {
            self.diagnostics.push(Diagnostic::new(
                Code::MATCH_LIMIT,
                predicate.span,
                format!(
                    "the predicate is {} bytes long: the limit is {MAX_FILTER_BYTES}",
                    predicate.span.len()
                ),
            ));
        }
        let mut stats = PredicateStats::default();
        self.predicate_node(index, predicate, subject, is_gate, 1, &mut stats);
        if stats.leaves > MAX_LEAVES {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::MATCH_LIMIT,
                    predicate.span,
                    format!(
                        "the predicate has {} leaves: the limit is {MAX_LEAVES}",
                        stats.leaves
                    ),
                )
                .with_help("split the condition, or match on fewer fields"),
            );
        }
    }

    fn predicate_node(
        &mut self,
        index: usize,
        predicate: &Predicate,
        subject: Option<&Type>,
        is_gate: bool,
        depth: usize,
        stats: &mut PredicateStats,
    ) {
        if depth > MAX_PREDICATE_DEPTH {
            if !stats.depth_reported {
                stats.depth_reported = true;
                self.diagnostics.push(Diagnostic::new(
                    Code::MATCH_LIMIT,
                    predicate.span,
                    format!("the predicate nests deeper than {MAX_PREDICATE_DEPTH} levels"),
                ));
            }
            return;
        }
        match &predicate.kind {
            PredicateKind::All(children) | PredicateKind::Any(children) => {
                if children.is_empty() && is_gate {
                    self.diagnostics.push(Diagnostic::new(
                        Code::EMPTY_GATE_FILTER,
                        predicate.span,
                        "this filter has no conditions, so the gate takes its timeout path at once",
                    ));
                }
                for child in children {
                    self.predicate_node(index, child, subject, is_gate, depth + 1, stats);
                }
            }
            PredicateKind::Not(child) => {
                self.predicate_node(index, child, subject, is_gate, depth + 1, stats)
            }
            PredicateKind::Leaf { field, op, value } => {
                stats.leaves += 1;
                let field_type = subject.and_then(|subject| self.field_path(field, subject));
                let Some(value) = value else {
                    return;
                };
                if op.value == PredicateOp::Exists {
                    self.diagnostics.push(Diagnostic::new(
                        Code::INVALID_VALUE,
                        value.span,
                        "`exists` takes no value",
                    ));
                    return;
                }
                self.predicate_strings(value);
                let value_type = self.value_type(index, value);
                if value_type == Type::Null && is_gate {
                    self.diagnostics.push(Diagnostic::new(
                        Code::EMPTY_GATE_FILTER,
                        value.span,
                        "this value is always null, so the filter is empty and the gate takes its timeout path at once",
                    ));
                    return;
                }
                match op.value {
                    PredicateOp::In => match &value.kind {
                        ValueKind::List(items) if items.len() > MAX_IN_MEMBERS => {
                            self.diagnostics.push(Diagnostic::new(
                                Code::MATCH_LIMIT,
                                value.span,
                                format!(
                                    "`in` lists {} values: the limit is {MAX_IN_MEMBERS}",
                                    items.len()
                                ),
                            ));
                        }
                        _ if !matches!(value_type.non_null(), Type::List(_) | Type::Dyn) => {
                            self.diagnostics.push(Diagnostic::new(
                                Code::TYPE_MISMATCH,
                                value.span,
                                format!("`in` needs a list, found `{value_type}`"),
                            ));
                        }
                        _ => {}
                    },
                    PredicateOp::Lt | PredicateOp::Lte | PredicateOp::Gt | PredicateOp::Gte
                        if !matches!(
                            value_type.non_null(),
                            Type::Int
                                | Type::Double
                                | Type::String
                                | Type::Timestamp
                                | Type::Duration
                                | Type::Dyn
                                | Type::Enum(_)
                        ) =>
                    {
                        self.diagnostics.push(Diagnostic::new(
                            Code::TYPE_MISMATCH,
                            value.span,
                            format!(
                                "`{}` compares numbers, strings or times, not `{value_type}`",
                                op_name(op.value)
                            ),
                        ));
                    }
                    PredicateOp::Eq | PredicateOp::Neq => {
                        if let Some(field_type) = &field_type
                            && !comparable(field_type, &value_type)
                        {
                            self.diagnostics.push(
                                Diagnostic::new(
                                    Code::TYPE_MISMATCH,
                                    value.span,
                                    format!(
                                        "`{}` is `{field_type}`, but this value is `{value_type}`",
                                        field.value
                                    ),
                                )
                                .with_label(field.span, "the field"),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn predicate_strings(&mut self, value: &Value) {
        match &value.kind {
            ValueKind::Str { text, .. } if text.len() > MAX_STRING_BYTES => {
                self.diagnostics.push(Diagnostic::new(
                    Code::MATCH_LIMIT,
                    value.span,
                    format!(
                        "a predicate string is {} bytes: the limit is {MAX_STRING_BYTES}",
                        text.len()
                    ),
                ));
            }
            ValueKind::List(items) => items.iter().for_each(|item| self.predicate_strings(item)),
            _ => {}
        }
    }

    /// Follows a dotted `field` path through `subject`.
    fn field_path(&mut self, field: &Ident, subject: &Type) -> Option<Type> {
        let mut current = subject.clone();
        let mut offset = 0;
        for part in field.value.split('.') {
            let part_span = Span::new(
                field.span.start + offset,
                field.span.start + offset + part.len(),
            );
            offset += part.len() + 1;
            let inner = current.non_null().clone();
            match inner.field(part) {
                Some(next) => current = next,
                None => {
                    let mut diagnostic = Diagnostic::new(
                        Code::UNKNOWN_FIELD,
                        clamp_to(part_span, field.span),
                        format!("`{inner}` has no field `{part}`"),
                    );
                    if let Type::Object(object) = &inner
                        && let Some(s) =
                            did_you_mean(part, object.fields.keys().map(String::as_str))
                    {
                        diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
                    }
                    self.diagnostics.push(diagnostic);
                    return None;
                }
            }
        }
        Some(current)
    }
}

#[derive(Default)]
struct PredicateStats {
    leaves: usize,
    depth_reported: bool,
}

/// Field-path spans assume the field is written verbatim; a quoted or
/// escaped field falls back to the whole field's span.
fn clamp_to(span: Span, within: Span) -> Span {
    if span.end <= within.end && span.start >= within.start {
        span
    } else {
        within
    }
}

fn op_name(op: PredicateOp) -> &'static str {
    PredicateOp::ALL
        .iter()
        .find(|(_, o)| *o == op)
        .map_or("?", |(name, _)| name)
}

fn comparable(a: &Type, b: &Type) -> bool {
    let (a, b) = (a.non_null(), b.non_null());
    let numeric = |t: &Type| matches!(t, Type::Int | Type::Double);
    a.is_assignable_to(b)
        || b.is_assignable_to(a)
        || (numeric(a) && numeric(b))
        || matches!((a, b), (Type::Enum(_), Type::Enum(_)))
}

/// Merges the payload types of several triggers: fields all of them have
/// keep their joined type; fields some lack become optional.
pub(super) fn merge_payloads(payloads: &[Type]) -> Type {
    match payloads {
        [] => Type::Dyn,
        [single] => single.clone(),
        _ => {
            let mut objects = Vec::new();
            for payload in payloads {
                match payload {
                    Type::Object(object) => objects.push(object.clone()),
                    _ => return Type::Dyn,
                }
            }
            let mut fields: BTreeMap<String, Field> = BTreeMap::new();
            let names: std::collections::BTreeSet<&String> =
                objects.iter().flat_map(|o| o.fields.keys()).collect();
            for name in names {
                let mut ty: Option<Type> = None;
                let mut required = true;
                for object in &objects {
                    match object.fields.get(name) {
                        Some(field) => {
                            required &= field.required;
                            ty = Some(match ty {
                                Some(t) => t.join(&field.ty),
                                None => field.ty.clone(),
                            });
                        }
                        None => required = false,
                    }
                }
                fields.insert(
                    name.clone(),
                    Field {
                        ty: ty.unwrap_or(Type::Dyn),
                        required,
                    },
                );
            }
            Type::Object(Arc::new(ObjectType {
                fields,
                closed: objects.iter().all(|o| o.closed),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_merge_with_optional_fields() {
        let a = Type::Object(Arc::new(ObjectType {
            fields: [
                (
                    "x".to_string(),
                    Field {
                        ty: Type::Int,
                        required: true,
                    },
                ),
                (
                    "y".to_string(),
                    Field {
                        ty: Type::String,
                        required: true,
                    },
                ),
            ]
            .into(),
            closed: true,
        }));
        let b = Type::Object(Arc::new(ObjectType {
            fields: [(
                "x".to_string(),
                Field {
                    ty: Type::Int,
                    required: true,
                },
            )]
            .into(),
            closed: true,
        }));
        let merged = merge_payloads(&[a, b]);
        assert_eq!(merged.field("x"), Some(Type::Int));
        assert_eq!(merged.field("y"), Some(Type::String.optional()));
    }
}
