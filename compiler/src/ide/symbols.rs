//! The symbol index of one workflow file: every place that defines or names a
//! step id, a trigger id or a group file, with the exact file span of the
//! name as written.
//!
//! Built once per document version from the lowered workflow (no second
//! parse): navigation, rename and highlighting are then lookups. Spans of
//! names inside quoted, escaped or block scalars come from the lowerer's
//! scalar mapping, so they point at the name's own bytes in the file. What
//! counts as a reference follows the checker: `nodes.<id>` (and the legacy
//! `steps.<id>`) as a plain selection anywhere in an expression.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use donmai_grammar::ast::{
    ApiVersion, Ident, OnTimeout, Predicate, PredicateKind, Spanned, StepType, Value, ValueKind,
    Workflow,
};
use donmai_grammar::expr::{Expr, ExprKind};
use donmai_grammar::template::Segment;
use donmai_grammar::yaml::ScalarStyle;
use donmai_grammar::{SourceFile, Span};

/// What a name names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SymbolKind {
    Step,
    Trigger,
    /// A group or loop body file; the symbol's name is its resolved path.
    Group,
}

/// Where in the document an occurrence stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// A step's `id` (also of a step lowering dropped for an error).
    StepId,
    /// An `id` under `triggers:`.
    TriggerId,
    /// An item of a step's `next`.
    Next,
    /// A target (value) of a step's `branches`.
    Branch,
    /// The `<id>` of `gateConfig.onTimeout: branch:<id>`.
    TimeoutBranch,
    /// `nodes.<id>` inside an expression; `legacy` for `steps.<id>`, which
    /// the checker reports but still resolves.
    Expression { legacy: bool },
    /// `config.triggerId` of a trigger step.
    TriggerRef,
    /// `config.ref` of a group or `config.body` of a loop.
    GroupRef,
}

impl Site {
    pub fn is_definition(self) -> bool {
        matches!(self, Site::StepId | Site::TriggerId)
    }
}

/// How the name sits in its YAML scalar, which decides how a rename may
/// rewrite it without changing what the YAML means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameForm {
    /// The name's bytes are exactly the name, in a scalar of this style.
    Exact(ScalarStyle),
    /// The name is written with escapes, line folding or a block header:
    /// `span` covers the whole scalar.
    Whole(ScalarStyle),
    /// The scalar is an alias (`*anchor`): `span` covers the alias.
    /// `follows_anchor` when the anchored scalar is itself an occurrence of
    /// the same symbol, so that renaming it renames the alias too.
    Alias { follows_anchor: bool },
    /// Inside an expression: `span` covers the name as the expression
    /// parser read it (escapes included, if any).
    InExpression,
}

/// Index of a symbol in [`SymbolIndex::symbols`].
pub type SymbolId = u32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub symbol: SymbolId,
    pub site: Site,
    /// The name as written in the file (see [`NameForm`]).
    pub span: Span,
    /// The YAML scalar that holds the name.
    pub scalar: Span,
    pub form: NameForm,
    /// The step (index into `Workflow::steps`) the occurrence belongs to.
    pub step: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub kind: SymbolKind,
    /// The id, or for a group the resolved path as text.
    pub name: String,
    /// Occurrences (indices into [`SymbolIndex::occurrences`]) that define
    /// the symbol, in document order: more than one is a duplicate id, and
    /// the first is the one the checker uses.
    pub definitions: Vec<u32>,
    /// The other occurrences, in document order.
    pub references: Vec<u32>,
}

/// The symbols of one file, for one version of its text.
#[derive(Clone, Debug)]
pub struct SymbolIndex {
    path: PathBuf,
    api_version: ApiVersion,
    /// Sorted by span start; spans do not overlap.
    occurrences: Vec<Occurrence>,
    symbols: Vec<Symbol>,
    lookup: [HashMap<Box<str>, SymbolId>; 3],
    interface: Option<Span>,
}

fn kind_slot(kind: SymbolKind) -> usize {
    match kind {
        SymbolKind::Step => 0,
        SymbolKind::Trigger => 1,
        SymbolKind::Group => 2,
    }
}

impl SymbolIndex {
    /// Indexes `workflow`, lowered from `file`'s text.
    pub fn new(file: &SourceFile, workflow: &Workflow) -> SymbolIndex {
        let mut builder = Builder {
            text: file.text(),
            file_path: file.path(),
            index: SymbolIndex {
                path: normalize(file.path()),
                api_version: workflow.api_version.value,
                occurrences: Vec::with_capacity(workflow.steps.len() * 3),
                symbols: Vec::with_capacity(workflow.steps.len() + workflow.triggers.len()),
                lookup: Default::default(),
                interface: workflow.interface.as_ref().map(|i| i.span),
            },
        };
        builder.workflow(workflow);
        builder.finish()
    }

    /// The file's path, lexically normalized (no `.` or `..` components).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn api_version(&self) -> ApiVersion {
        self.api_version
    }

    /// The span of the file's `interface` (a group file's signature).
    pub fn interface_span(&self) -> Option<Span> {
        self.interface
    }

    /// Every occurrence, sorted by position.
    pub fn occurrences(&self) -> &[Occurrence] {
        &self.occurrences
    }

    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    pub fn symbol(&self, id: SymbolId) -> &Symbol {
        &self.symbols[id as usize]
    }

    pub fn lookup(&self, kind: SymbolKind, name: &str) -> Option<SymbolId> {
        self.lookup[kind_slot(kind)].get(name).copied()
    }

    /// The occurrence under a cursor at byte `offset`: one whose name
    /// contains it or ends right at it (a cursor just after a name is on it,
    /// as editors expect). A name starting at `offset` wins over one ending
    /// there.
    pub fn occurrence_at(&self, offset: usize) -> Option<&Occurrence> {
        let after = self.occurrences.partition_point(|o| o.span.start <= offset);
        let candidate = after.checked_sub(1).map(|i| &self.occurrences[i])?;
        (candidate.span.start <= offset && offset <= candidate.span.end).then_some(candidate)
    }

    /// The occurrences of a symbol: definitions first, then references,
    /// each in document order.
    pub fn occurrences_of(&self, id: SymbolId) -> impl Iterator<Item = &Occurrence> {
        let symbol = self.symbol(id);
        symbol
            .definitions
            .iter()
            .chain(&symbol.references)
            .map(|&i| &self.occurrences[i as usize])
    }

    /// The first definition of a symbol, the one the checker resolves to.
    pub fn definition_of(&self, id: SymbolId) -> Option<&Occurrence> {
        let first = *self.symbol(id).definitions.first()?;
        Some(&self.occurrences[first as usize])
    }

    /// The ids of the defined steps, in document order of their first
    /// definition.
    pub fn step_ids(&self) -> impl Iterator<Item = &str> {
        self.defined(SymbolKind::Step)
    }

    /// The ids of the triggers under `triggers:`.
    pub fn trigger_ids(&self) -> impl Iterator<Item = &str> {
        self.defined(SymbolKind::Trigger)
    }

    fn defined(&self, kind: SymbolKind) -> impl Iterator<Item = &str> {
        let mut firsts: Vec<(u32, &str)> = self
            .symbols
            .iter()
            .filter(|s| s.kind == kind)
            .filter_map(|s| Some((*s.definitions.first()?, s.name.as_str())))
            .collect();
        firsts.sort_unstable();
        firsts.into_iter().map(|(_, name)| name)
    }
}

/// A group reference's file path, relative to the referencing file's folder,
/// with its pin (`@1`) taken off as the checker does.
pub fn group_path(referencing_file: &Path, reference: &str) -> Option<PathBuf> {
    let relative = strip_pin(reference);
    if relative.trim().is_empty() {
        return None;
    }
    let base = referencing_file.parent().unwrap_or(Path::new(""));
    Some(normalize(&base.join(relative)))
}

/// `./groups/dev.yaml@2` → `./groups/dev.yaml`.
pub fn strip_pin(reference: &str) -> &str {
    match reference.rsplit_once('@') {
        Some((path, major))
            if !major.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && major.parse::<u64>().is_ok() =>
        {
            path
        }
        _ => reference,
    }
}

/// Removes `.` and resolves `..` without touching the file system: the
/// editor's documents may not exist on disk, and two spellings of one path
/// must compare equal.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let popped =
                    matches!(out.components().next_back(), Some(Component::Normal(_))) && out.pop();
                if !popped && !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Where a scalar's name sits: its exact bytes when the scalar is written
/// as the name itself (plain, or quoted without escapes), else the scalar.
pub(crate) fn name_form(text: &str, scalar: Span, value: &str) -> (Span, NameForm) {
    let Some(source) = text.get(scalar.start..scalar.end) else {
        return (scalar, NameForm::Whole(ScalarStyle::Plain));
    };
    if source.starts_with('*') {
        return (
            scalar,
            NameForm::Alias {
                follows_anchor: false,
            },
        );
    }
    if source == value {
        return (scalar, NameForm::Exact(ScalarStyle::Plain));
    }
    let style = style_of(source);
    if matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted)
        && source.len() >= 2
        && source.ends_with(&source[..1])
        && &source[1..source.len() - 1] == value
    {
        return (
            Span::new(scalar.start + 1, scalar.end - 1),
            NameForm::Exact(style),
        );
    }
    (scalar, NameForm::Whole(style))
}

/// The style of a scalar from its first byte.
pub(crate) fn style_of(source: &str) -> ScalarStyle {
    match source.as_bytes().first() {
        Some(b'\'') => ScalarStyle::SingleQuoted,
        Some(b'"') => ScalarStyle::DoubleQuoted,
        Some(b'|') => ScalarStyle::Literal,
        Some(b'>') => ScalarStyle::Folded,
        _ => ScalarStyle::Plain,
    }
}

struct Builder<'a> {
    text: &'a str,
    file_path: &'a Path,
    index: SymbolIndex,
}

impl Builder<'_> {
    fn workflow(&mut self, workflow: &Workflow) {
        for trigger in &workflow.triggers {
            self.ident(SymbolKind::Trigger, Site::TriggerId, &trigger.id, None);
        }
        if let Some(interface) = &workflow.interface {
            for (_, value) in &interface.outputs {
                self.value(value, None);
            }
        }
        for (i, step) in workflow.steps.iter().enumerate() {
            let at = Some(i as u32);
            self.ident(SymbolKind::Step, Site::StepId, &step.id, at);
            for target in &step.next {
                self.ident(SymbolKind::Step, Site::Next, target, at);
            }
            for (_, target) in &step.branches {
                self.ident(SymbolKind::Step, Site::Branch, target, at);
            }
            if let Some(trigger) = &step.trigger_id {
                self.ident(SymbolKind::Trigger, Site::TriggerRef, trigger, at);
            }
            if let Some(reference) = &step.group_ref
                && matches!(step.ty.value, StepType::Group | StepType::Loop)
            {
                self.group_ref(reference, at);
            }
            if let Some(gate) = &step.gate {
                if let Some(Spanned {
                    value: OnTimeout::Branch(target),
                    span,
                }) = &gate.on_timeout
                {
                    self.timeout_branch(target, *span, at);
                }
                if let Some(predicate) = &gate.match_ {
                    self.predicate(predicate, at);
                }
            }
            if let Some(until) = &step.until {
                self.predicate(until, at);
            }
            for input in &step.inputs {
                self.value(&input.value, at);
            }
        }
        for dropped in &workflow.dropped_steps {
            self.ident(SymbolKind::Step, Site::StepId, dropped, None);
        }
    }

    fn symbol(&mut self, kind: SymbolKind, name: &str) -> SymbolId {
        let lookup = &mut self.index.lookup[kind_slot(kind)];
        if let Some(&id) = lookup.get(name) {
            return id;
        }
        let id = self.index.symbols.len() as SymbolId;
        self.index.symbols.push(Symbol {
            kind,
            name: name.to_string(),
            definitions: Vec::new(),
            references: Vec::new(),
        });
        lookup.insert(name.into(), id);
        id
    }

    fn push(&mut self, kind: SymbolKind, name: &str, occurrence: Occurrence) {
        let symbol = self.symbol(kind, name);
        self.index.occurrences.push(Occurrence {
            symbol,
            ..occurrence
        });
    }

    fn ident(&mut self, kind: SymbolKind, site: Site, ident: &Ident, step: Option<u32>) {
        let (span, form) = name_form(self.text, ident.span, &ident.value);
        self.push(
            kind,
            &ident.value,
            Occurrence {
                symbol: 0,
                site,
                span,
                scalar: ident.span,
                form,
                step,
            },
        );
    }

    fn timeout_branch(&mut self, target: &Ident, scalar: Span, step: Option<u32>) {
        let source = self.text.get(scalar.start..scalar.end).unwrap_or("");
        let form = if source.starts_with('*') {
            NameForm::Alias {
                follows_anchor: false,
            }
        } else if self.text.get(target.span.start..target.span.end) == Some(target.value.as_str()) {
            NameForm::Exact(style_of(source))
        } else {
            NameForm::Whole(style_of(source))
        };
        let span = match form {
            NameForm::Exact(_) => target.span,
            _ => scalar,
        };
        self.push(
            SymbolKind::Step,
            &target.value,
            Occurrence {
                symbol: 0,
                site: Site::TimeoutBranch,
                span,
                scalar,
                form,
                step,
            },
        );
    }

    fn group_ref(&mut self, reference: &Ident, step: Option<u32>) {
        let Some(path) = group_path(self.file_path, &reference.value) else {
            return;
        };
        let (span, form) = name_form(self.text, reference.span, &reference.value);
        self.push(
            SymbolKind::Group,
            &path.to_string_lossy(),
            Occurrence {
                symbol: 0,
                site: Site::GroupRef,
                span,
                scalar: reference.span,
                form,
                step,
            },
        );
    }

    fn predicate(&mut self, predicate: &Predicate, step: Option<u32>) {
        match &predicate.kind {
            PredicateKind::All(items) | PredicateKind::Any(items) => {
                for item in items {
                    self.predicate(item, step);
                }
            }
            PredicateKind::Not(inner) => self.predicate(inner, step),
            PredicateKind::Leaf { value, .. } => {
                if let Some(value) = value {
                    self.value(value, step);
                }
            }
        }
    }

    fn value(&mut self, value: &Value, step: Option<u32>) {
        match &value.kind {
            ValueKind::Str { template, .. } => {
                for segment in &template.segments {
                    if let Segment::Expr { expr, .. } = segment {
                        self.expr(expr, value.span, step);
                    }
                }
            }
            ValueKind::List(items) => {
                for item in items {
                    self.value(item, step);
                }
            }
            ValueKind::Map(entries) => {
                for (_, item) in entries {
                    self.value(item, step);
                }
            }
            ValueKind::Null | ValueKind::Bool(_) | ValueKind::Int(_) | ValueKind::Double(_) => {}
        }
    }

    /// Every `nodes.<id>` / `steps.<id>` selection in `expr`. The parser
    /// caps expression depth, so recursion is bounded.
    fn expr(&mut self, expr: &Expr, scalar: Span, step: Option<u32>) {
        match &expr.kind {
            ExprKind::Select {
                operand,
                field,
                optional,
            } => {
                if let ExprKind::Ident(root) = &operand.kind
                    && !optional
                    && matches!(root.text.as_str(), "nodes" | "steps")
                {
                    self.push(
                        SymbolKind::Step,
                        &field.text,
                        Occurrence {
                            symbol: 0,
                            site: Site::Expression {
                                legacy: root.text == "steps",
                            },
                            span: field.span,
                            scalar,
                            form: NameForm::InExpression,
                            step,
                        },
                    );
                }
                self.expr(operand, scalar, step);
            }
            ExprKind::Index { operand, index } => {
                self.expr(operand, scalar, step);
                self.expr(index, scalar, step);
            }
            ExprKind::List(items) => {
                for item in items {
                    self.expr(item, scalar, step);
                }
            }
            ExprKind::Map(entries) => {
                for (key, item) in entries {
                    self.expr(key, scalar, step);
                    self.expr(item, scalar, step);
                }
            }
            ExprKind::Call { target, args, .. } => {
                if let Some(target) = target {
                    self.expr(target, scalar, step);
                }
                for arg in args {
                    self.expr(arg, scalar, step);
                }
            }
            ExprKind::Unary { operand, .. } => self.expr(operand, scalar, step),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs, scalar, step);
                self.expr(rhs, scalar, step);
            }
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond, scalar, step);
                self.expr(then, scalar, step);
                self.expr(otherwise, scalar, step);
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

    fn finish(mut self) -> SymbolIndex {
        let index = &mut self.index;
        // Steps are mostly in document order already, and a stable sort of a
        // nearly sorted vector is linear.
        index
            .occurrences
            .sort_by_key(|o| (o.span.start, o.span.end, !o.site.is_definition()));
        // An alias repeats its anchor's scalar, and with it the spans of the
        // expressions inside; one occurrence per span is enough. Empty and
        // overlapping spans (only possible from broken input) are dropped so
        // that a position names one thing.
        let mut last_end = 0;
        index.occurrences.retain(|o| {
            let keep = !o.span.is_empty() && o.span.start >= last_end;
            if keep {
                last_end = o.span.end;
            }
            keep
        });
        let anchored: Vec<(usize, bool)> = self
            .index
            .occurrences
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.form, NameForm::Alias { .. }))
            .map(|(i, o)| (i, self.anchored_occurrence(o)))
            .collect();
        for (i, follows_anchor) in anchored {
            self.index.occurrences[i].form = NameForm::Alias { follows_anchor };
        }
        let index = &mut self.index;
        for (i, occurrence) in index.occurrences.iter().enumerate() {
            let symbol = &mut index.symbols[occurrence.symbol as usize];
            if occurrence.site.is_definition() {
                symbol.definitions.push(i as u32);
            } else {
                symbol.references.push(i as u32);
            }
        }
        self.index
    }

    /// Whether the scalar an alias repeats is an occurrence of the same
    /// symbol. The YAML tree does not keep anchors, so this finds the last
    /// `&anchor` before the alias in the text; when in doubt the answer is
    /// no, and the alias is rewritten, which is always faithful.
    fn anchored_occurrence(&self, alias: &Occurrence) -> bool {
        let text = self.text;
        let Some(name) = text
            .get(alias.scalar.start..alias.scalar.end)
            .and_then(|s| s.strip_prefix('*'))
            .filter(|name| !name.is_empty())
        else {
            return false;
        };
        let before = &text[..alias.scalar.start];
        let mut search_end = before.len();
        let scalar_start = loop {
            let Some(at) = before[..search_end].rfind(&format!("&{name}")) else {
                return false;
            };
            let after = at + 1 + name.len();
            // `&ab` is not the anchor `&a`.
            if text[after..].starts_with([' ', '\t', '\n', '\r']) {
                break after + (text[after..].len() - text[after..].trim_start().len());
            }
            search_end = at;
        };
        let occurrences = &self.index.occurrences;
        let i = occurrences.partition_point(|o| o.scalar.start < scalar_start);
        occurrences.get(i).is_some_and(|o| {
            o.scalar.start == scalar_start
                && o.symbol == alias.symbol
                && !matches!(o.form, NameForm::Alias { .. })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_come_off_and_paths_normalize() {
        assert_eq!(strip_pin("./g/dev.yaml@12"), "./g/dev.yaml");
        assert_eq!(strip_pin("./g/dev.yaml@"), "./g/dev.yaml@");
        assert_eq!(strip_pin("./g/a@b.yaml"), "./g/a@b.yaml");
        assert_eq!(
            group_path(Path::new("/w/flows/main.yaml"), "../groups/./dev.yaml@1"),
            Some(PathBuf::from("/w/groups/dev.yaml"))
        );
        assert_eq!(group_path(Path::new("/w/main.yaml"), "@1"), None);
        assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(normalize(Path::new("/../b")), PathBuf::from("/b"));
    }

    #[test]
    fn name_forms_follow_the_scalar() {
        let text = "a: foo\nb: 'foo'\nc: \"f\\x6fo\"\nd: *x\ne: \"foo\"\n";
        let at = |needle: &str| {
            let start = text.find(needle).unwrap();
            Span::new(start, start + needle.len())
        };
        assert_eq!(
            name_form(text, at("foo"), "foo"),
            (at("foo"), NameForm::Exact(ScalarStyle::Plain))
        );
        let quoted = at("'foo'");
        assert_eq!(
            name_form(text, quoted, "foo"),
            (
                Span::new(quoted.start + 1, quoted.end - 1),
                NameForm::Exact(ScalarStyle::SingleQuoted)
            )
        );
        let escaped = at("\"f\\x6fo\"");
        assert_eq!(
            name_form(text, escaped, "foo"),
            (escaped, NameForm::Whole(ScalarStyle::DoubleQuoted))
        );
        assert_eq!(
            name_form(text, at("*x"), "foo"),
            (
                at("*x"),
                NameForm::Alias {
                    follows_anchor: false
                }
            )
        );
    }
}
