//! Semantic tokens for the expressions inside a workflow's strings: the
//! `{{ }}` / `${ }` delimiters, roots, step ids, fields, functions and
//! methods, macro variables, operators and literals.
//!
//! Tokens come from the lowered workflow's expression trees, whose spans
//! are already file offsets; operators, which the tree does not span, are
//! found in the file text between their operands. Each token lies on one
//! line (LSP forbids multi-line tokens, and a block scalar's expression can
//! span lines), and the list is sorted and non-overlapping.

use donmai_grammar::ast::{ApiVersion, Predicate, PredicateKind, Value, ValueKind, Workflow};
use donmai_grammar::expr::{BinaryOp, Expr, ExprKind, Name, UnaryOp};
use donmai_grammar::template::Segment;
use donmai_grammar::{SourceFile, Span};
use donmai_stdlib::builtins::BUILTINS;

/// The kinds of token, in legend order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenType {
    /// `{{`, `}}`, `${`, `}`.
    Delimiter,
    /// `nodes`, `trigger`, `steps`, `input`.
    Root,
    /// The `<id>` of `nodes.<id>`.
    StepId,
    /// A macro's variable (`x` in `list.all(x, x > 0)`), where it is bound
    /// and where it is read.
    MacroVariable,
    /// Any other name at the root of a path.
    Variable,
    Field,
    Function,
    Method,
    /// `true`, `false`, `null`, `in`.
    Keyword,
    Operator,
    String,
    Number,
}

impl TokenType {
    pub const ALL: [TokenType; 12] = [
        TokenType::Delimiter,
        TokenType::Root,
        TokenType::StepId,
        TokenType::MacroVariable,
        TokenType::Variable,
        TokenType::Field,
        TokenType::Function,
        TokenType::Method,
        TokenType::Keyword,
        TokenType::Operator,
        TokenType::String,
        TokenType::Number,
    ];

    /// The standard LSP token type this kind is sent as.
    pub fn lsp_name(self) -> &'static str {
        TOKEN_TYPES[self.legend_index() as usize]
    }

    /// The index into [`TOKEN_TYPES`] to send. A step id is sent as a
    /// `variable` with the `readonly` modifier.
    pub fn legend_index(self) -> u32 {
        match self {
            TokenType::Delimiter => 0,
            TokenType::Root => 1,
            TokenType::StepId | TokenType::Variable => 2,
            TokenType::MacroVariable => 3,
            TokenType::Field => 4,
            TokenType::Function => 5,
            TokenType::Method => 6,
            TokenType::Keyword => 7,
            TokenType::Operator => 8,
            TokenType::String => 9,
            TokenType::Number => 10,
        }
    }
}

/// The token type legend for LSP's `SemanticTokensLegend.tokenTypes`. Only
/// standard names, so that every editor theme colours them.
pub const TOKEN_TYPES: &[&str] = &[
    "macro",
    "namespace",
    "variable",
    "parameter",
    "property",
    "function",
    "method",
    "keyword",
    "operator",
    "string",
    "number",
];

/// The modifier legend for `SemanticTokensLegend.tokenModifiers`; bit `i`
/// of [`SemanticToken::modifiers`] is `TOKEN_MODIFIERS[i]`.
pub const TOKEN_MODIFIERS: &[&str] = &["readonly", "defaultLibrary", "deprecated"];

pub const MODIFIER_READONLY: u32 = 1;
/// A builtin function, method or macro, or a root the language provides.
pub const MODIFIER_DEFAULT_LIBRARY: u32 = 1 << 1;
/// `steps.` and `trigger.data` in workflow/v2.
pub const MODIFIER_DEPRECATED: u32 = 1 << 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemanticToken {
    /// Byte span in the file, within one line.
    pub span: Span,
    pub ty: TokenType,
    pub modifiers: u32,
}

/// The tokens of every expression in the file, sorted and non-overlapping.
pub fn semantic_tokens(file: &SourceFile, workflow: &Workflow) -> Vec<SemanticToken> {
    semantic_tokens_in(file, workflow, Span::new(0, file.text().len()))
}

/// The tokens that start inside `range` (LSP's `semanticTokens/range`);
/// steps outside it are not visited.
pub fn semantic_tokens_in(
    file: &SourceFile,
    workflow: &Workflow,
    range: Span,
) -> Vec<SemanticToken> {
    let mut collector = Collector {
        text: file.text(),
        v2: workflow.api_version.value == ApiVersion::V2,
        tokens: Vec::new(),
        scope: Vec::new(),
    };
    let touches = |span: Span| span.start <= range.end && range.start <= span.end;
    if let Some(interface) = &workflow.interface
        && touches(interface.span)
    {
        for (_, value) in &interface.outputs {
            collector.value(value);
        }
    }
    for step in workflow.steps.iter().filter(|s| touches(s.span)) {
        for input in &step.inputs {
            collector.value(&input.value);
        }
        if let Some(predicate) = step.gate.as_ref().and_then(|g| g.match_.as_ref()) {
            collector.predicate(predicate);
        }
        if let Some(until) = &step.until {
            collector.predicate(until);
        }
    }
    let mut tokens = collector.tokens;
    tokens.retain(|t| range.start <= t.span.start && t.span.start < range.end);
    tokens.sort_by_key(|t| (t.span.start, t.span.end));
    let mut end = 0;
    tokens.retain(|t| {
        let keep = t.span.start >= end;
        if keep {
            end = t.span.end;
        }
        keep
    });
    tokens
}

/// Macros whose first argument names a variable bound in the others.
const BINDING_MACROS: &[&str] = &["all", "exists", "exists_one", "map", "filter"];

fn is_builtin(name: &str) -> bool {
    name == "has" || BINDING_MACROS.contains(&name) || BUILTINS.iter().any(|b| b.name == name)
}

struct Collector<'a> {
    text: &'a str,
    v2: bool,
    tokens: Vec<SemanticToken>,
    /// Macro variables in scope, innermost last.
    scope: Vec<&'a str>,
}

impl<'a> Collector<'a> {
    fn predicate(&mut self, predicate: &'a Predicate) {
        match &predicate.kind {
            PredicateKind::All(items) | PredicateKind::Any(items) => {
                items.iter().for_each(|p| self.predicate(p))
            }
            PredicateKind::Not(inner) => self.predicate(inner),
            PredicateKind::Leaf { value, .. } => {
                if let Some(value) = value {
                    self.value(value);
                }
            }
        }
    }

    fn value(&mut self, value: &'a Value) {
        match &value.kind {
            ValueKind::Str { template, .. } => {
                for segment in &template.segments {
                    if let Segment::Expr {
                        expr,
                        span,
                        delimiter,
                    } = segment
                    {
                        let open = if self.source(*span).starts_with("${{") {
                            "${{"
                        } else {
                            delimiter.open()
                        };
                        self.literal_at(span.start, open, TokenType::Delimiter);
                        let close = delimiter.close();
                        self.literal_at(
                            span.end.saturating_sub(close.len()),
                            close,
                            TokenType::Delimiter,
                        );
                        self.expr(expr);
                    }
                }
            }
            ValueKind::List(items) => items.iter().for_each(|v| self.value(v)),
            ValueKind::Map(entries) => entries.iter().for_each(|(_, v)| self.value(v)),
            ValueKind::Null | ValueKind::Bool(_) | ValueKind::Int(_) | ValueKind::Double(_) => {}
        }
    }

    fn source(&self, span: Span) -> &'a str {
        self.text.get(span.start..span.end).unwrap_or("")
    }

    /// A token for `literal` at `start`, if the file holds it there (an
    /// escape in a quoted scalar may stand for it instead).
    fn literal_at(&mut self, start: usize, literal: &str, ty: TokenType) {
        if self.text.get(start..start + literal.len()) == Some(literal) {
            self.push(Span::new(start, start + literal.len()), ty, 0);
        }
    }

    /// An operator token: the first `operator` in the file between two
    /// operands (only parentheses and spaces can be there besides it).
    fn operator_between(&mut self, from: usize, to: usize, operator: &str, ty: TokenType) {
        let Some(between) = self.text.get(from..to) else {
            return;
        };
        let found = if operator == "?" {
            // The conditional's `?`, not a `??` or `?.`: none can stand
            // between a condition and its branch, but be exact anyway.
            between.match_indices('?').map(|(i, _)| i).find(|&i| {
                !between[i + 1..].starts_with(['?', '.']) && !between[..i].ends_with('?')
            })
        } else {
            between.find(operator)
        };
        if let Some(at) = found {
            let start = from + at;
            self.push(Span::new(start, start + operator.len()), ty, 0);
        }
    }

    fn name(&mut self, name: &Name, ty: TokenType, modifiers: u32) {
        // A name whose bytes are not the name was written with escapes:
        // colour what is there all the same, it is still the name.
        self.push(name.span, ty, modifiers);
    }

    fn expr(&mut self, expr: &'a Expr) {
        match &expr.kind {
            ExprKind::Null | ExprKind::Bool(_) => self.push(expr.span, TokenType::Keyword, 0),
            ExprKind::Int(_) | ExprKind::Double(_) => self.push(expr.span, TokenType::Number, 0),
            ExprKind::String(_) => self.push(expr.span, TokenType::String, 0),
            ExprKind::List(items) => items.iter().for_each(|e| self.expr(e)),
            ExprKind::Map(entries) => entries.iter().for_each(|(k, v)| {
                self.expr(k);
                self.expr(v);
            }),
            ExprKind::Ident(name) => {
                let (ty, modifiers) = self.classify_root(&name.text);
                self.name(name, ty, modifiers);
            }
            ExprKind::Select {
                operand,
                field,
                optional,
            } => {
                self.expr(operand);
                if *optional {
                    self.operator_between(
                        operand.span.end,
                        field.span.start,
                        "?.",
                        TokenType::Operator,
                    );
                }
                let (ty, modifiers) = self.classify_field(operand, field, *optional);
                self.name(field, ty, modifiers);
            }
            ExprKind::Index { operand, index } => {
                self.expr(operand);
                self.expr(index);
            }
            ExprKind::Call {
                target,
                function,
                args,
            } => {
                if let Some(target) = target {
                    self.expr(target);
                }
                let ty = if target.is_some() {
                    TokenType::Method
                } else {
                    TokenType::Function
                };
                let modifiers = if is_builtin(&function.text) {
                    MODIFIER_DEFAULT_LIBRARY
                } else {
                    0
                };
                self.name(function, ty, modifiers);
                let binding = match (target, args.first().map(|a| &a.kind)) {
                    (Some(_), Some(ExprKind::Ident(variable)))
                        if BINDING_MACROS.contains(&function.text.as_str()) && args.len() >= 2 =>
                    {
                        Some(variable)
                    }
                    _ => None,
                };
                match binding {
                    Some(variable) => {
                        self.name(variable, TokenType::MacroVariable, 0);
                        self.scope.push(&variable.text);
                        args[1..].iter().for_each(|e| self.expr(e));
                        self.scope.pop();
                    }
                    None => args.iter().for_each(|e| self.expr(e)),
                }
            }
            ExprKind::Unary { op, operand } => {
                let symbol = match op {
                    UnaryOp::Not => "!",
                    UnaryOp::Neg => "-",
                };
                self.operator_between(
                    expr.span.start,
                    operand.span.start,
                    symbol,
                    TokenType::Operator,
                );
                self.expr(operand);
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.expr(lhs);
                let ty = if *op == BinaryOp::In {
                    TokenType::Keyword
                } else {
                    TokenType::Operator
                };
                self.operator_between(lhs.span.end, rhs.span.start, op.as_str(), ty);
                self.expr(rhs);
            }
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond);
                self.operator_between(cond.span.end, then.span.start, "?", TokenType::Operator);
                self.expr(then);
                self.operator_between(
                    then.span.end,
                    otherwise.span.start,
                    ":",
                    TokenType::Operator,
                );
                self.expr(otherwise);
            }
            ExprKind::Error => {}
        }
    }

    fn classify_root(&self, name: &str) -> (TokenType, u32) {
        if self.scope.contains(&name) {
            return (TokenType::MacroVariable, 0);
        }
        match name {
            "steps" if self.v2 => (
                TokenType::Root,
                MODIFIER_DEFAULT_LIBRARY | MODIFIER_DEPRECATED,
            ),
            "nodes" | "trigger" | "steps" | "input" => (TokenType::Root, MODIFIER_DEFAULT_LIBRARY),
            _ => (TokenType::Variable, 0),
        }
    }

    fn classify_field(&self, operand: &Expr, field: &Name, optional: bool) -> (TokenType, u32) {
        if let ExprKind::Ident(root) = &operand.kind
            && !self.scope.contains(&root.text.as_str())
        {
            match root.text.as_str() {
                "nodes" | "steps" if !optional => {
                    return (TokenType::StepId, MODIFIER_READONLY);
                }
                "trigger" if self.v2 && field.text == "data" => {
                    return (TokenType::Field, MODIFIER_DEPRECATED);
                }
                _ => {}
            }
        }
        (TokenType::Field, 0)
    }

    /// Adds a token, split at line breaks: the parts after the first start
    /// at the line's first non-blank character.
    fn push(&mut self, span: Span, ty: TokenType, modifiers: u32) {
        let text = self.text;
        if span.start >= span.end
            || span.end > text.len()
            || !text.is_char_boundary(span.start)
            || !text.is_char_boundary(span.end)
        {
            return;
        }
        let mut start = span.start;
        loop {
            let rest = &text[start..span.end];
            let line_end = rest
                .bytes()
                .position(|b| b == b'\n')
                .map_or(span.end, |i| start + i);
            let mut end = line_end;
            if text[start..end].ends_with('\r') {
                end -= 1;
            }
            if start < end {
                self.tokens.push(SemanticToken {
                    span: Span::new(start, end),
                    ty,
                    modifiers,
                });
            }
            if line_end >= span.end {
                break;
            }
            let next = &text[line_end + 1..span.end];
            start = line_end + 1 + (next.len() - next.trim_start_matches([' ', '\t']).len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legend_matches_the_types() {
        let used: std::collections::BTreeSet<u32> =
            TokenType::ALL.iter().map(|t| t.legend_index()).collect();
        assert_eq!(used.len(), TOKEN_TYPES.len(), "every legend entry is used");
        assert!(used.iter().all(|&i| (i as usize) < TOKEN_TYPES.len()));
        assert_eq!(TokenType::StepId.lsp_name(), "variable");
        assert_eq!(TokenType::MacroVariable.lsp_name(), "parameter");
    }
}
