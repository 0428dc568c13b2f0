//! The error-recovering parser of the expression language.
//!
//! Binary operators use precedence climbing; unary operators and postfix
//! chains are loops. Recursion happens only where the text nests (brackets,
//! calls, conditionals), and is cut off at [`MAX_DEPTH`], as is the height of
//! every tree the parser builds, because everything downstream walks trees
//! recursively.
//!
//! Recovery: a missing operand becomes an [`ExprKind::Error`] node without
//! consuming anything; a mismatched or missing closer is reported once at the
//! closer with a label on the opener; text the parser cannot place is skipped
//! up to the next closer or separator. Errors about nodes that are already
//! `Error` are never reported, so one mistake gives one diagnostic.

use super::ast::{BinaryOp, Expr, ExprKind, Name, UnaryOp};
use super::lexer::{Lexer, Token, TokenKind, is_reserved_word};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::span::Span;
use std::collections::HashSet;

/// The deepest nesting accepted, both of brackets in the text and of nodes
/// in the tree (`a.b.c` is two levels deep, `!!x` two, `((x))` none).
pub const MAX_DEPTH: usize = 64;

/// Parses one expression. Spans are byte offsets into `text`.
pub fn parse_expr(text: &str) -> (Expr, Vec<Diagnostic>) {
    parse_expr_in(text, 0, text.len())
}

/// Parses `text[start..end]` with spans that are offsets into all of
/// `text`. Both bounds must be character boundaries.
pub(crate) fn parse_expr_in(text: &str, start: usize, end: usize) -> (Expr, Vec<Diagnostic>) {
    let mut lexer = Lexer::with_range(text, start, end);
    let mut tokens = Vec::with_capacity((end.saturating_sub(start)) / 4 + 2);
    loop {
        let token = lexer.next_token();
        let done = token.kind == TokenKind::Eof;
        tokens.push(token);
        if done {
            break;
        }
    }
    parse_tokens(
        text,
        Span::new(start, end),
        tokens,
        lexer.into_diagnostics(),
    )
}

/// Parses tokens already lexed from `text[range]`, ending with `Eof`, with
/// the lexer's diagnostics.
pub(crate) fn parse_tokens(
    text: &str,
    range: Span,
    tokens: Vec<Token>,
    diagnostics: Vec<Diagnostic>,
) -> (Expr, Vec<Diagnostic>) {
    let reported_starts = diagnostics.iter().map(|d| d.span.start).collect();
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
        diagnostics,
        reported_starts,
        nesting: 0,
        too_deep_reported: false,
        open: [0; 3],
        operand_context: None,
        range,
    };
    let expr = parser.parse_top();
    let mut diagnostics = parser.diagnostics;
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    (expr, diagnostics)
}

/// A parsed node with what the parser needs to know about it but the tree
/// does not keep.
struct Node {
    expr: Expr,
    /// Levels of nodes below this one (a leaf is 0).
    height: usize,
    /// The node's text including any parentheses around it, so that a
    /// parent's span covers them too.
    outer: Span,
}

impl Node {
    fn is_error(&self) -> bool {
        matches!(self.expr.kind, ExprKind::Error)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Paren,
    Bracket,
    Brace,
}

impl Group {
    fn closer(self) -> TokenKind {
        match self {
            Group::Paren => TokenKind::RParen,
            Group::Bracket => TokenKind::RBracket,
            Group::Brace => TokenKind::RBrace,
        }
    }

    fn closer_text(self) -> &'static str {
        match self {
            Group::Paren => ")",
            Group::Bracket => "]",
            Group::Brace => "}",
        }
    }

    fn of_closer(kind: &TokenKind) -> Option<Group> {
        match kind {
            TokenKind::RParen => Some(Group::Paren),
            TokenKind::RBracket => Some(Group::Bracket),
            TokenKind::RBrace => Some(Group::Brace),
            _ => None,
        }
    }
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    diagnostics: Vec<Diagnostic>,
    /// How many `parse_expr` calls are active.
    nesting: usize,
    too_deep_reported: bool,
    /// How many groups of each kind are open around the current position.
    open: [usize; 3],
    /// The operator waiting for the operand about to be parsed, to label a
    /// "missing operand" error with it.
    operand_context: Option<(Span, &'static str)>,
    range: Span,
    reported_starts: HashSet<usize>,
}

fn binary_operator(kind: &TokenKind) -> Option<(BinaryOp, u8)> {
    Some(match kind {
        TokenKind::QuestionQuestion => (BinaryOp::Coalesce, 1),
        TokenKind::OrOr => (BinaryOp::Or, 2),
        TokenKind::AndAnd => (BinaryOp::And, 3),
        TokenKind::EqEq => (BinaryOp::Eq, 4),
        TokenKind::NotEq => (BinaryOp::Ne, 4),
        TokenKind::Lt => (BinaryOp::Lt, 4),
        TokenKind::Le => (BinaryOp::Le, 4),
        TokenKind::Gt => (BinaryOp::Gt, 4),
        TokenKind::Ge => (BinaryOp::Ge, 4),
        TokenKind::In => (BinaryOp::In, 4),
        TokenKind::Plus => (BinaryOp::Add, 5),
        TokenKind::Minus => (BinaryOp::Sub, 5),
        TokenKind::Star => (BinaryOp::Mul, 6),
        TokenKind::Slash => (BinaryOp::Div, 6),
        TokenKind::Percent => (BinaryOp::Rem, 6),
        _ => return None,
    })
}

/// Tokens that `parse_primary` (or the unary loop) consumes: anything else
/// is left for an enclosing rule.
fn starts_expression(kind: &TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::Int(_)
            | TokenKind::Double(_)
            | TokenKind::String(_)
            | TokenKind::Ident
            | TokenKind::True
            | TokenKind::False
            | TokenKind::Null
            | TokenKind::LParen
            | TokenKind::LBracket
            | TokenKind::LBrace
            | TokenKind::Bang
            | TokenKind::Minus
            | TokenKind::Invalid
    )
}

impl<'t> Parser<'t> {
    // ----- token access -------------------------------------------------

    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn peek_kind(&self) -> &TokenKind {
        &self.tokens[self.pos].kind
    }

    fn peek_nth_kind(&self, ahead: usize) -> &TokenKind {
        let last = self.tokens.len() - 1;
        &self.tokens[(self.pos + ahead).min(last)].kind
    }

    /// Consumes the current token (never past the end) and returns it; a
    /// string's value is moved out rather than cloned.
    fn advance(&mut self) -> Token {
        let index = self.pos;
        if self.tokens[index].kind == TokenKind::Eof {
            return self.tokens[index].clone();
        }
        self.pos += 1;
        let span = self.tokens[index].span;
        std::mem::replace(
            &mut self.tokens[index],
            Token {
                kind: TokenKind::Eof,
                span,
            },
        )
    }

    fn describe(&self, token: &Token) -> String {
        let text = &self.text[token.span.start..token.span.end];
        match &token.kind {
            TokenKind::Eof => "the end of the expression".to_string(),
            TokenKind::Ident => format!("`{text}`"),
            TokenKind::Int(_) | TokenKind::Double(_) => format!("number `{text}`"),
            TokenKind::String(_) => "a string".to_string(),
            _ => format!("`{text}`"),
        }
    }

    // ----- diagnostics --------------------------------------------------

    fn report(&mut self, diagnostic: Diagnostic) {
        // Two errors starting at one place are one mistake seen twice.
        if self.reported_starts.insert(diagnostic.span.start) {
            self.diagnostics.push(diagnostic);
        }
    }

    fn error(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Code::EXPRESSION_SYNTAX, span, message)
    }

    fn report_too_deep(&mut self, span: Span) {
        if !self.too_deep_reported {
            self.too_deep_reported = true;
            let diagnostic = self
                .error(
                    span,
                    format!("this expression nests more than {MAX_DEPTH} levels deep"),
                )
                .with_help("split it up, or bind parts of it to step outputs");
            self.diagnostics.push(diagnostic);
        }
    }

    // ----- node construction ---------------------------------------------

    fn error_node(span: Span) -> Node {
        Node {
            expr: Expr::new(ExprKind::Error, span),
            height: 0,
            outer: span,
        }
    }

    /// Builds a node, replacing it by an error if it makes the tree too deep.
    fn node(&mut self, kind: ExprKind, span: Span, height: usize) -> Node {
        if height > MAX_DEPTH {
            self.report_too_deep(span);
            return Parser::error_node(span);
        }
        Node {
            expr: Expr::new(kind, span),
            height,
            outer: span,
        }
    }

    fn name(&self, token: &Token) -> Name {
        Name {
            text: self.text[token.span.start..token.span.end].to_string(),
            span: token.span,
        }
    }

    // ----- grammar ---------------------------------------------------------

    fn parse_top(&mut self) -> Expr {
        if *self.peek_kind() == TokenKind::Eof {
            if self.diagnostics.is_empty() {
                let diagnostic = self.error(self.range, "expected an expression");
                self.diagnostics.push(diagnostic);
            }
            return Expr::new(ExprKind::Error, self.range);
        }
        let node = self.parse_expr();
        loop {
            let token = self.peek().clone();
            if token.kind == TokenKind::Eof {
                break;
            }
            if let Some(group) = Group::of_closer(&token.kind) {
                let diagnostic =
                    self.error(token.span, format!("unmatched `{}`", group.closer_text()));
                self.report(diagnostic);
                self.advance();
            } else if starts_expression(&token.kind) {
                let message = format!(
                    "expected an operator or the end of the expression, found {}",
                    self.describe(&token)
                );
                let diagnostic = self.error(token.span, message);
                self.report(diagnostic);
                self.parse_expr();
            } else {
                let message = format!(
                    "unexpected {} after a complete expression",
                    self.describe(&token)
                );
                let diagnostic = self.error(token.span, message);
                self.report(diagnostic);
                self.advance();
                if starts_expression(self.peek_kind()) {
                    self.parse_expr();
                }
            }
        }
        node.expr
    }

    fn parse_expr(&mut self) -> Node {
        if self.nesting > MAX_DEPTH {
            return self.skip_too_deep();
        }
        self.nesting += 1;
        let node = self.parse_conditional();
        self.nesting -= 1;
        node
    }

    /// Skips the text of an expression nested too deeply to parse, up to the
    /// closer or `,` that ends it. Not up to a `:`: in a conditional chain
    /// that would leave the rest of the chain to be reported piece by piece.
    fn skip_too_deep(&mut self) -> Node {
        self.operand_context = None;
        let start = self.peek().span;
        self.report_too_deep(start);
        let mut balance = 0usize;
        let mut end = start.start;
        loop {
            match self.peek_kind() {
                TokenKind::Eof => break,
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => balance += 1,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                    if balance == 0 {
                        break;
                    }
                    balance -= 1;
                }
                TokenKind::Comma if balance == 0 => break,
                _ => {}
            }
            end = self.advance().span.end;
        }
        Parser::error_node(Span::new(start.start, end))
    }

    fn parse_conditional(&mut self) -> Node {
        let cond = self.parse_binary(1);
        if *self.peek_kind() != TokenKind::Question {
            return cond;
        }
        let question = self.advance().span;
        self.operand_context = Some((question, "this conditional needs a value after `?`"));
        let then = self.parse_expr();
        let otherwise = match self.peek_kind() {
            TokenKind::Colon => {
                let colon = self.advance().span;
                self.operand_context = Some((colon, "this conditional needs a value after `:`"));
                self.parse_expr()
            }
            kind => {
                let found = self.peek().clone();
                let continues = starts_expression(kind);
                let message = format!(
                    "expected `:` in this conditional, found {}",
                    self.describe(&found)
                );
                let diagnostic = self
                    .error(found.span, message)
                    .with_label(question, "the `?` of the conditional");
                if !then.is_error() {
                    self.report(diagnostic);
                }
                if continues {
                    self.parse_expr()
                } else {
                    Parser::error_node(Span::at(found.span.start))
                }
            }
        };
        let span = cond.outer.cover(otherwise.outer);
        let height = 1 + cond.height.max(then.height).max(otherwise.height);
        let kind = ExprKind::Conditional {
            cond: Box::new(cond.expr),
            then: Box::new(then.expr),
            otherwise: Box::new(otherwise.expr),
        };
        self.node(kind, span, height)
    }

    fn parse_binary(&mut self, min_precedence: u8) -> Node {
        let mut lhs = self.parse_unary();
        loop {
            let kind = self.peek_kind();
            if *kind == TokenKind::Invalid {
                // Already reported by the lexer: treat it as an unknown
                // operator so that its right side does not look stray.
                self.advance();
                if starts_expression(self.peek_kind()) {
                    let rhs = self.parse_unary();
                    lhs = Parser::error_node(lhs.outer.cover(rhs.outer));
                }
                continue;
            }
            let Some((op, precedence)) = binary_operator(kind) else {
                break;
            };
            if precedence < min_precedence {
                break;
            }
            let op_span = self.advance().span;
            self.operand_context = Some((op_span, "this operator needs a right operand"));
            let rhs = self.parse_binary(precedence + 1);
            let span = lhs.outer.cover(rhs.outer);
            let height = 1 + lhs.height.max(rhs.height);
            let kind = ExprKind::Binary {
                op,
                lhs: Box::new(lhs.expr),
                rhs: Box::new(rhs.expr),
            };
            lhs = self.node(kind, span, height);
        }
        lhs
    }

    fn parse_unary(&mut self) -> Node {
        let mut ops: Vec<(UnaryOp, Span)> = Vec::new();
        loop {
            let op = match self.peek_kind() {
                TokenKind::Bang => UnaryOp::Not,
                TokenKind::Minus => UnaryOp::Neg,
                _ => break,
            };
            let span = self.advance().span;
            ops.push((op, span));
        }
        let Some(&(last_op, last_span)) = ops.last() else {
            return self.parse_postfix();
        };
        self.operand_context = Some((last_span, "this operator needs an operand"));

        let mut operand = if last_op == UnaryOp::Neg && self.is_bare_number() {
            // `-5` is the literal -5 (and `-9223372036854775808` exists at all).
            ops.pop();
            self.operand_context = None;
            self.negative_number(last_span)
        } else {
            self.parse_postfix()
        };
        for (op, op_span) in ops.into_iter().rev() {
            let span = op_span.cover(operand.outer);
            let height = operand.height + 1;
            let kind = ExprKind::Unary {
                op,
                operand: Box::new(operand.expr),
            };
            operand = self.node(kind, span, height);
        }
        operand
    }

    /// Whether a number literal comes next with no postfix operator after it
    /// (`-5.foo` negates `5.foo`).
    fn is_bare_number(&self) -> bool {
        matches!(self.peek_kind(), TokenKind::Int(_) | TokenKind::Double(_))
            && !matches!(
                self.peek_nth_kind(1),
                TokenKind::Dot | TokenKind::QuestionDot | TokenKind::LBracket | TokenKind::LParen
            )
    }

    fn negative_number(&mut self, minus: Span) -> Node {
        let token = self.advance();
        let span = minus.cover(token.span);
        let kind = match token.kind {
            TokenKind::Double(value) => ExprKind::Double(-value),
            TokenKind::Int(magnitude) => match 0i64.checked_sub_unsigned(magnitude) {
                Some(value) => ExprKind::Int(value),
                None => {
                    self.int_out_of_range(span);
                    ExprKind::Error
                }
            },
            _ => ExprKind::Error,
        };
        self.node(kind, span, 0)
    }

    fn int_out_of_range(&mut self, span: Span) {
        let literal = &self.text[span.start..span.end];
        let diagnostic = self.error(
            span,
            format!(
                "integer literal `{literal}` is out of range for an int ({} to {})",
                i64::MIN,
                i64::MAX
            ),
        );
        self.report(diagnostic);
    }

    fn parse_postfix(&mut self) -> Node {
        let mut node = self.parse_primary();
        loop {
            match self.peek_kind() {
                TokenKind::Dot | TokenKind::QuestionDot => node = self.parse_selection(node),
                TokenKind::LBracket => {
                    let open = self.advance().span;
                    self.open[Group::Bracket as usize] += 1;
                    let index = self.parse_expr();
                    let end = self.close_group(Group::Bracket, open, "index");
                    self.open[Group::Bracket as usize] -= 1;
                    let span = Span::new(node.outer.start, end);
                    let height = 1 + node.height.max(index.height);
                    let kind = ExprKind::Index {
                        operand: Box::new(node.expr),
                        index: Box::new(index.expr),
                    };
                    node = self.node(kind, span, height);
                }
                TokenKind::LParen => {
                    // `f(x)` and `a.f(x)` are handled where the name is read;
                    // here something that is not a name is being called.
                    if !node.is_error() {
                        let diagnostic = self
                            .error(node.outer, "only a function or method name can be called")
                            .with_help("write `f(x)` or `target.f(x)`");
                        self.report(diagnostic);
                    }
                    let open = self.advance().span;
                    let (_, _, end) = self.parse_arguments(open);
                    node = Parser::error_node(Span::new(node.outer.start, end));
                }
                _ => break,
            }
        }
        node
    }

    /// `operand.field`, `operand?.field` or `operand.method(args)`.
    fn parse_selection(&mut self, operand: Node) -> Node {
        let dot = self.advance();
        let optional = dot.kind == TokenKind::QuestionDot;
        let dot_text = if optional { "?." } else { "." };
        let field = self.peek().clone();
        match field.kind {
            TokenKind::Ident => {}
            TokenKind::True | TokenKind::False | TokenKind::Null | TokenKind::In => {
                let message = format!(
                    "`{}` is a keyword and cannot be a field name",
                    &self.text[field.span.start..field.span.end]
                );
                let diagnostic = self.error(field.span, message).with_help(
                    "read such a field with an index instead: `operand[\"name\"]`".to_string(),
                );
                self.report(diagnostic);
                self.advance();
                return Parser::error_node(Span::new(operand.outer.start, field.span.end));
            }
            _ => {
                if !operand.is_error() {
                    let message = format!(
                        "expected a field name after `{dot_text}`, found {}",
                        self.describe(&field)
                    );
                    let diagnostic = self.error(field.span, message);
                    self.report(diagnostic);
                }
                return Parser::error_node(Span::new(operand.outer.start, dot.span.end));
            }
        }
        self.advance();
        let name = self.name(&field);
        if *self.peek_kind() != TokenKind::LParen {
            let span = Span::new(operand.outer.start, field.span.end);
            let height = operand.height + 1;
            let kind = ExprKind::Select {
                operand: Box::new(operand.expr),
                field: name,
                optional,
            };
            return self.node(kind, span, height);
        }
        let open = self.advance().span;
        let (args, args_height, end) = self.parse_arguments(open);
        let span = Span::new(operand.outer.start, end);
        if optional {
            let diagnostic = self
                .error(dot.span, "a method cannot be called through `?.`")
                .with_help("use `.` to call the method, with `??` for a null target");
            self.report(diagnostic);
            return Parser::error_node(span);
        }
        let height = 1 + operand.height.max(args_height);
        let kind = ExprKind::Call {
            target: Some(Box::new(operand.expr)),
            function: name,
            args,
        };
        self.node(kind, span, height)
    }

    fn parse_primary(&mut self) -> Node {
        let context = self.operand_context.take();
        let span = self.peek().span;
        let literal = match self.peek_kind() {
            TokenKind::Int(magnitude) => Some(match i64::try_from(*magnitude) {
                Ok(value) => ExprKind::Int(value),
                Err(_) => {
                    self.int_out_of_range(span);
                    ExprKind::Error
                }
            }),
            TokenKind::Double(value) => Some(ExprKind::Double(*value)),
            TokenKind::True => Some(ExprKind::Bool(true)),
            TokenKind::False => Some(ExprKind::Bool(false)),
            TokenKind::Null => Some(ExprKind::Null),
            TokenKind::Invalid => Some(ExprKind::Error),
            TokenKind::String(_) => match self.advance().kind {
                TokenKind::String(value) => return self.node(ExprKind::String(value), span, 0),
                _ => return Parser::error_node(span),
            },
            TokenKind::Ident => return self.parse_name(),
            TokenKind::LParen => {
                let open = self.advance().span;
                self.open[Group::Paren as usize] += 1;
                let mut inner = self.parse_expr();
                let end = self.close_group(Group::Paren, open, "parenthesis");
                self.open[Group::Paren as usize] -= 1;
                inner.outer = Span::new(open.start, end);
                return inner;
            }
            TokenKind::LBracket => return self.parse_list(),
            TokenKind::LBrace => return self.parse_map(),
            _ => None,
        };
        if let Some(kind) = literal {
            self.advance();
            return self.node(kind, span, 0);
        }
        let token = self.peek().clone();
        let message = format!("expected an expression, found {}", self.describe(&token));
        let mut diagnostic = self.error(token.span, message);
        if let Some((span, label)) = context {
            diagnostic = diagnostic.with_label(span, label);
        }
        if token.kind == TokenKind::Dot {
            diagnostic = diagnostic.with_help("names cannot start with `.`");
        }
        self.report(diagnostic);
        Parser::error_node(Span::at(token.span.start))
    }

    /// An identifier, or a global function call.
    fn parse_name(&mut self) -> Node {
        let token = self.advance();
        let name = self.name(&token);
        let reserved = is_reserved_word(&name.text);
        if reserved {
            let message = format!(
                "`{}` is a reserved word and cannot be used as a name",
                name.text
            );
            let diagnostic = self.error(token.span, message);
            self.report(diagnostic);
        }
        if *self.peek_kind() != TokenKind::LParen {
            if reserved {
                return Parser::error_node(token.span);
            }
            return self.node(ExprKind::Ident(name), token.span, 0);
        }
        let open = self.advance().span;
        let (args, args_height, end) = self.parse_arguments(open);
        let span = Span::new(token.span.start, end);
        if reserved {
            return Parser::error_node(span);
        }
        let kind = ExprKind::Call {
            target: None,
            function: name,
            args,
        };
        self.node(kind, span, args_height + 1)
    }

    /// The arguments after an already consumed `(`: the expressions, the
    /// greatest height among them, and the end of the `)`.
    fn parse_arguments(&mut self, open: Span) -> (Vec<Expr>, usize, usize) {
        let (items, end) = self.parse_sequence(Group::Paren, open, "call", false);
        let height = items.iter().map(|(node, _)| node.height).max().unwrap_or(0);
        (
            items.into_iter().map(|(node, _)| node.expr).collect(),
            height,
            end,
        )
    }

    fn parse_list(&mut self) -> Node {
        let open = self.advance().span;
        let (items, end) = self.parse_sequence(Group::Bracket, open, "list", false);
        let height = 1 + items.iter().map(|(node, _)| node.height).max().unwrap_or(0);
        let kind = ExprKind::List(items.into_iter().map(|(node, _)| node.expr).collect());
        self.node(kind, Span::new(open.start, end), height)
    }

    fn parse_map(&mut self) -> Node {
        let open = self.advance().span;
        let (entries, end) = self.parse_sequence(Group::Brace, open, "map", true);
        let mut height = 0;
        let mut pairs = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let value = value.unwrap_or_else(|| Parser::error_node(Span::at(key.outer.end)));
            height = height.max(key.height).max(value.height);
            pairs.push((key.expr, value.expr));
        }
        self.node(ExprKind::Map(pairs), Span::new(open.start, end), height + 1)
    }

    /// A comma-separated sequence up to the closer of `group`, whose opener
    /// was already consumed. With `entries`, each item is `key: value`.
    /// Returns the items and the end offset of the closer.
    fn parse_sequence(
        &mut self,
        group: Group,
        open: Span,
        what: &'static str,
        entries: bool,
    ) -> (Vec<(Node, Option<Node>)>, usize) {
        self.open[group as usize] += 1;
        let mut items = Vec::new();
        let closer = group.closer();
        let end = loop {
            if *self.peek_kind() == closer {
                break self.advance().span.end;
            }
            if self.peek_ends_group() {
                break self.close_group(group, open, what);
            }
            let item = self.parse_expr();
            let value = if entries {
                Some(self.parse_entry_value(&item))
            } else {
                None
            };
            items.push((item, value));
            let kind = self.peek_kind();
            if *kind == TokenKind::Comma {
                self.advance();
            } else if *kind == closer {
                break self.advance().span.end;
            } else if starts_expression(kind) {
                // A forgotten comma: report it and read on.
                let found = self.peek().clone();
                let message = format!(
                    "expected `,` or `{}` in this {what}, found {}",
                    group.closer_text(),
                    self.describe(&found)
                );
                let diagnostic = self
                    .error(found.span, message)
                    .with_label(open, format!("the {what} starts here"));
                self.report(diagnostic);
            } else {
                break self.close_group(group, open, what);
            }
        };
        self.open[group as usize] -= 1;
        (items, end)
    }

    fn parse_entry_value(&mut self, key: &Node) -> Node {
        let kind = self.peek_kind();
        if *kind == TokenKind::Colon {
            let colon = self.advance().span;
            self.operand_context = Some((colon, "this map entry needs a value"));
            return self.parse_expr();
        }
        let found = self.peek().clone();
        let continues = starts_expression(kind);
        if !key.is_error() {
            let message = format!(
                "expected `:` after this map key, found {}",
                self.describe(&found)
            );
            let diagnostic = self
                .error(found.span, message)
                .with_label(key.outer, "the key");
            self.report(diagnostic);
        }
        if continues {
            self.parse_expr()
        } else {
            Parser::error_node(Span::at(found.span.start))
        }
    }

    /// Whether the next token ends the current group without being an item:
    /// the end of the text or a closer of some other group.
    fn peek_ends_group(&self) -> bool {
        let kind = self.peek_kind();
        *kind == TokenKind::Eof || Group::of_closer(kind).is_some()
    }

    /// Consumes the closer of `group` if it comes next; otherwise reports
    /// that it is missing and recovers. Returns the end offset of the group.
    fn close_group(&mut self, group: Group, open: Span, what: &'static str) -> usize {
        if *self.peek_kind() == group.closer() {
            return self.advance().span.end;
        }
        let found = self.peek().clone();
        let message = format!(
            "expected `{}` to close this {what}, found {}",
            group.closer_text(),
            self.describe(&found)
        );
        let diagnostic = self.error(found.span, message).with_label(
            open,
            format!("this `{}` is not closed", &self.text[open.start..open.end]),
        );
        self.report(diagnostic);

        // Skip what cannot be placed, up to a closer at this level.
        let mut balance = 0usize;
        let mut end = found.span.start;
        loop {
            let kind = self.peek_kind();
            if *kind == TokenKind::Eof {
                return end;
            }
            if let Some(closer) = Group::of_closer(kind) {
                if balance > 0 {
                    balance -= 1;
                } else if closer == group || self.open[closer as usize] == 0 {
                    // Our closer, or a stray one nobody else wants: take it
                    // as ours (`[a)` means `[a]`).
                    return self.advance().span.end;
                } else {
                    // It closes an enclosing group: leave it for that one.
                    return end;
                }
            } else if matches!(
                kind,
                TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace
            ) {
                balance += 1;
            }
            end = self.advance().span.end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact rendering of the tree for assertions: every operator node is
    /// parenthesized, so precedence and associativity are visible.
    fn sexp(expr: &Expr) -> String {
        match &expr.kind {
            ExprKind::Null => "null".into(),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Int(i) => i.to_string(),
            ExprKind::Double(d) => format!("{d:?}"),
            ExprKind::String(s) => format!("{s:?}"),
            ExprKind::List(items) => {
                format!("[{}]", items.iter().map(sexp).collect::<Vec<_>>().join(" "))
            }
            ExprKind::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", sexp(k), sexp(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            ExprKind::Ident(name) => name.text.clone(),
            ExprKind::Select {
                operand,
                field,
                optional,
            } => format!(
                "(.{} {} {})",
                if *optional { "?" } else { "" },
                sexp(operand),
                field.text
            ),
            ExprKind::Index { operand, index } => {
                format!("([] {} {})", sexp(operand), sexp(index))
            }
            ExprKind::Call {
                target,
                function,
                args,
            } => {
                let mut parts = Vec::new();
                if let Some(target) = target {
                    parts.push(sexp(target));
                }
                parts.extend(args.iter().map(sexp));
                format!(
                    "(call{} {} {})",
                    if target.is_some() { "." } else { "" },
                    function.text,
                    parts.join(" ")
                )
            }
            ExprKind::Unary { op, operand } => {
                let op = match op {
                    UnaryOp::Not => "!",
                    UnaryOp::Neg => "-",
                };
                format!("({op} {})", sexp(operand))
            }
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {} {})", op.as_str(), sexp(lhs), sexp(rhs))
            }
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => format!("(? {} {} {})", sexp(cond), sexp(then), sexp(otherwise)),
            ExprKind::Error => "ERR".into(),
        }
    }

    fn ok(text: &str) -> String {
        let (expr, diagnostics) = parse_expr(text);
        assert!(diagnostics.is_empty(), "{text}: {diagnostics:#?}");
        sexp(&expr)
    }

    fn errors(text: &str) -> Vec<String> {
        let (_, diagnostics) = parse_expr(text);
        for d in &diagnostics {
            assert_eq!(d.code, Code::EXPRESSION_SYNTAX);
        }
        diagnostics.into_iter().map(|d| d.message).collect()
    }

    fn single_error(text: &str) -> Diagnostic {
        let (_, diagnostics) = parse_expr(text);
        assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:#?}");
        diagnostics.into_iter().next().unwrap()
    }

    #[test]
    fn literals() {
        assert_eq!(ok("null"), "null");
        assert_eq!(ok("true"), "true");
        assert_eq!(ok("false"), "false");
        assert_eq!(ok("42"), "42");
        assert_eq!(ok("0x2A"), "42");
        assert_eq!(ok("1.5"), "1.5");
        assert_eq!(ok("1e3"), "1000.0");
        assert_eq!(ok(".5"), "0.5");
        assert_eq!(ok("'a'"), "\"a\"");
        assert_eq!(ok("r'\\d'"), "\"\\\\d\"");
        assert_eq!(ok("[1, 'a', [],]"), "[1 \"a\" []]");
        assert_eq!(ok("{'a': 1, 2: [3],}"), "{\"a\":1 2:[3]}");
        assert_eq!(ok("{}"), "{}");
    }

    #[test]
    fn negative_literals_fold() {
        assert_eq!(ok("-5"), "-5");
        assert_eq!(ok("-9223372036854775808"), i64::MIN.to_string());
        assert_eq!(ok("-0x8000000000000000"), i64::MIN.to_string());
        assert_eq!(ok("- 1.5"), "-1.5");
        assert_eq!(ok("--5"), "(- -5)");
        assert_eq!(ok("!-5"), "(! -5)");
        assert_eq!(ok("-(5)"), "(- 5)");
        assert_eq!(ok("-5.x"), "(- (. 5 x))");
        assert_eq!(ok("a - -1"), "(- a -1)");
        let (expr, _) = parse_expr("-5");
        assert_eq!(expr.span, Span::new(0, 2));
    }

    #[test]
    fn integer_range() {
        assert_eq!(ok("9223372036854775807"), i64::MAX.to_string());
        let d = single_error("9223372036854775808");
        assert_eq!(
            d.message,
            "integer literal `9223372036854775808` is out of range for an int (-9223372036854775808 to 9223372036854775807)"
        );
        assert_eq!(d.span, Span::new(0, 19));
        let d = single_error("-9223372036854775809");
        assert_eq!(d.span, Span::new(0, 20));
        assert_eq!(errors("-(9223372036854775808)").len(), 1);
    }

    #[test]
    fn precedence() {
        assert_eq!(ok("a + b * c"), "(+ a (* b c))");
        assert_eq!(ok("a * b + c"), "(+ (* a b) c)");
        assert_eq!(ok("a + b < c - d"), "(< (+ a b) (- c d))");
        assert_eq!(ok("a < b == c"), "(== (< a b) c)");
        assert_eq!(ok("a in b && c"), "(&& (in a b) c)");
        assert_eq!(ok("a || b && c"), "(|| a (&& b c))");
        assert_eq!(ok("a ?? b || c"), "(?? a (|| b c))");
        assert_eq!(ok("a || b ?? c"), "(?? (|| a b) c)");
        assert_eq!(ok("a ?? b ? c : d"), "(? (?? a b) c d)");
        assert_eq!(ok("!a && -b < c"), "(&& (! a) (< (- b) c))");
        assert_eq!(ok("-a.b[c]"), "(- ([] (. a b) c))");
        assert_eq!(ok("!a.f(x)"), "(! (call. f a x))");
        assert_eq!(ok("a % b / c * d"), "(* (/ (% a b) c) d)");
        assert_eq!(ok("(a + b) * c"), "(* (+ a b) c)");
    }

    #[test]
    fn associativity() {
        assert_eq!(ok("a - b - c"), "(- (- a b) c)");
        assert_eq!(ok("a ?? b ?? c"), "(?? (?? a b) c)");
        assert_eq!(ok("a || b || c"), "(|| (|| a b) c)");
        assert_eq!(ok("a ? b : c ? d : e"), "(? a b (? c d e))");
        assert_eq!(ok("a ? b ? c : d : e"), "(? a (? b c d) e)");
        assert_eq!(ok("!!a"), "(! (! a))");
        assert_eq!(ok("!-a"), "(! (- a))");
    }

    #[test]
    fn postfix_forms() {
        assert_eq!(
            ok("nodes.dispatch.output.sessionId"),
            "(. (. (. nodes dispatch) output) sessionId)"
        );
        assert_eq!(ok("a?.b.c"), "(. (.? a b) c)");
        assert_eq!(ok("a[0][1]"), "([] ([] a 0) 1)");
        assert_eq!(ok("f()"), "(call f )");
        assert_eq!(ok("f(a, b,)"), "(call f a b)");
        assert_eq!(ok("a.b.f(1)"), "(call. f (. a b) 1)");
        assert_eq!(ok("xs.all(x, x > 0)"), "(call. all xs x (> x 0))");
        assert_eq!(ok("'abc'.size()"), "(call. size \"abc\")");
        assert_eq!(ok("(a).b"), "(. a b)");
        assert_eq!(ok("[1][0]"), "([] [1] 0)");
        assert_eq!(ok("1.e3"), "(. 1 e3)");
    }

    #[test]
    fn reserved_words_are_fields_but_not_names() {
        assert_eq!(ok("trigger.data.package"), "(. (. trigger data) package)");
        assert_eq!(ok("a.if()"), "(call. if a)");
        let d = single_error("package.name");
        assert_eq!(
            d.message,
            "`package` is a reserved word and cannot be used as a name"
        );
        assert_eq!(d.span, Span::new(0, 7));
        assert_eq!(errors("if(a)").len(), 1);
        let d = single_error("a.in");
        assert_eq!(d.message, "`in` is a keyword and cannot be a field name");
    }

    #[test]
    fn spans() {
        let (expr, _) = parse_expr(" (a + b).c ");
        assert_eq!(expr.span, Span::new(1, 10));
        let ExprKind::Select { operand, field, .. } = &expr.kind else {
            panic!()
        };
        assert_eq!(operand.span, Span::new(2, 7));
        assert_eq!(field.span, Span::new(9, 10));
        let (expr, _) = parse_expr("f(x) ?? [1]");
        assert_eq!(expr.span, Span::new(0, 11));
        let (expr, _) = parse_expr("a ? b : c");
        assert_eq!(expr.span, Span::new(0, 9));
    }

    #[test]
    fn empty_input() {
        let d = single_error("");
        assert_eq!(d.message, "expected an expression");
        assert_eq!(d.span, Span::new(0, 0));
        let d = single_error("   ");
        assert_eq!(d.span, Span::new(0, 3));
    }

    #[test]
    fn missing_operand() {
        let d = single_error("a +");
        assert_eq!(
            d.message,
            "expected an expression, found the end of the expression"
        );
        assert_eq!(d.span, Span::at(3));
        assert_eq!(d.labels[0].span, Span::new(2, 3));
        let d = single_error("a + * b");
        assert_eq!(d.message, "expected an expression, found `*`");
        assert_eq!(d.span, Span::new(4, 5));
        let d = single_error("!");
        assert_eq!(d.labels[0].message, "this operator needs an operand");
        let d = single_error("a ? : b");
        assert_eq!(d.message, "expected an expression, found `:`");
        assert_eq!(d.labels[0].span, Span::new(2, 3));
    }

    #[test]
    fn unclosed_groups() {
        let d = single_error("f(a, b");
        assert_eq!(
            d.message,
            "expected `)` to close this call, found the end of the expression"
        );
        assert_eq!(d.labels[0].span, Span::new(1, 2));
        let d = single_error("f(a b)");
        assert_eq!(d.message, "expected `,` or `)` in this call, found `b`");
        let d = single_error("(a, b)");
        assert_eq!(
            d.message,
            "expected `)` to close this parenthesis, found `,`"
        );
        assert_eq!(d.labels[0].span, Span::new(0, 1));
        let d = single_error("[a)");
        assert_eq!(d.message, "expected `]` to close this list, found `)`");
        let d = single_error("a[1");
        assert_eq!(
            d.message,
            "expected `]` to close this index, found the end of the expression"
        );
        // The `)` closes the call; the list is what is left open.
        let d = single_error("f([1, 2)");
        assert_eq!(d.message, "expected `]` to close this list, found `)`");
        assert_eq!(d.labels[0].span, Span::new(2, 3));
    }

    #[test]
    fn map_errors() {
        let d = single_error("{'a' 1}");
        assert_eq!(
            d.message,
            "expected `:` after this map key, found number `1`"
        );
        let d = single_error("{'a'}");
        assert_eq!(d.message, "expected `:` after this map key, found `}`");
        let d = single_error("{'a': }");
        assert_eq!(d.message, "expected an expression, found `}`");
    }

    #[test]
    fn selection_errors() {
        let d = single_error("a.");
        assert_eq!(
            d.message,
            "expected a field name after `.`, found the end of the expression"
        );
        let d = single_error("a?.[0]");
        assert_eq!(d.message, "expected a field name after `?.`, found `[`");
        let d = single_error("a?.f(x)");
        assert_eq!(d.message, "a method cannot be called through `?.`");
        let d = single_error("a[0](x)");
        assert_eq!(d.message, "only a function or method name can be called");
        assert_eq!(d.span, Span::new(0, 4));
        let d = single_error(".a");
        assert_eq!(d.message, "expected an expression, found `.`");
    }

    #[test]
    fn trailing_text() {
        let d = single_error("a b");
        assert_eq!(
            d.message,
            "expected an operator or the end of the expression, found `b`"
        );
        let d = single_error("a)");
        assert_eq!(d.message, "unmatched `)`");
        let d = single_error("a ,");
        assert_eq!(d.message, "unexpected `,` after a complete expression");
    }

    #[test]
    fn one_mistake_gives_one_error() {
        for text in [
            "f(a,, b)",
            "{'a': 1,, 'b': 2}",
            "a ?? ?? b",
            "(a",
            "((a)",
            "[1, 2",
            "{'a': 1",
            "a.b.",
            "'abc",
            "a + 'abc",
            "x[1]]",
            "1 +* 2",
            "a === b",
            "a !== b",
            "f(1)(2)",
            "a ? b",
            "a ? b c",
            "(a b)",
            "[a : b]",
            "{1: 2: 3}",
            "a.true",
            "-9223372036854775809 + 1",
            "a.b?.c(d)",
            "a @",
            "0x + 1",
            "b'' + 1",
            "1u + 1",
        ] {
            let (_, diagnostics) = parse_expr(text);
            assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:#?}");
        }
    }

    #[test]
    fn conditional_errors() {
        let d = single_error("a ? b");
        assert_eq!(
            d.message,
            "expected `:` in this conditional, found the end of the expression"
        );
        assert_eq!(d.labels[0].span, Span::new(2, 3));
        let d = single_error("a ? b :");
        assert_eq!(
            d.labels[0].message,
            "this conditional needs a value after `:`"
        );
        assert_eq!(ok_with_errors("a ? b c"), "(? a b c)");
    }

    #[test]
    fn several_independent_errors_are_all_reported() {
        assert_eq!(
            errors("a + * b, c)"),
            [
                "expected an expression, found `*`",
                "unexpected `,` after a complete expression",
                "unmatched `)`",
            ]
        );
        assert_eq!(
            errors("f(1 +, [2 3], 'x\\q')"),
            [
                "expected an expression, found `,`",
                "expected `,` or `]` in this list, found number `3`",
                "invalid escape sequence `\\q`",
            ]
        );
        assert_eq!(errors("{'a': 1 'b': 2, 'c' 3}").len(), 2);
    }

    #[test]
    fn lexer_errors_do_not_cascade() {
        assert_eq!(errors("a @ b"), ["unexpected character `@`"]);
        assert_eq!(errors("a;"), ["unexpected character `;`"]);
        assert_eq!(
            errors("a = 1"),
            ["`=` is not an operator; did you mean `==`?"]
        );
        assert_eq!(ok_with_errors("a = 1"), "(== a 1)");
        assert_eq!(errors("'abc + 1").len(), 1);
        assert_eq!(errors("1u + 2").len(), 1);
        assert_eq!(errors("b'x' + 'y'").len(), 1);
    }

    fn ok_with_errors(text: &str) -> String {
        sexp(&parse_expr(text).0)
    }

    #[test]
    fn depth_limit_on_brackets() {
        let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        assert!(errors(&nested(MAX_DEPTH)).is_empty());
        let messages = errors(&nested(MAX_DEPTH + 1));
        assert_eq!(messages, ["this expression nests more than 64 levels deep"]);
        let lists = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(errors(&lists(MAX_DEPTH)).is_empty());
        assert_eq!(errors(&lists(MAX_DEPTH + 1)).len(), 1);
    }

    #[test]
    fn depth_limit_on_chains() {
        let nots = |n: usize| format!("{}a", "!".repeat(n));
        assert!(errors(&nots(MAX_DEPTH)).is_empty());
        assert_eq!(errors(&nots(MAX_DEPTH + 1)).len(), 1);
        let selects = |n: usize| format!("a{}", ".b".repeat(n));
        assert!(errors(&selects(MAX_DEPTH)).is_empty());
        assert_eq!(errors(&selects(MAX_DEPTH + 1)).len(), 1);
        let sums = |n: usize| format!("a{}", " + a".repeat(n));
        assert!(errors(&sums(MAX_DEPTH)).is_empty());
        assert_eq!(errors(&sums(MAX_DEPTH + 1)).len(), 1);
        let conditionals = |n: usize| format!("{}a", "a ? a : ".repeat(n));
        assert!(errors(&conditionals(MAX_DEPTH)).is_empty());
        assert_eq!(errors(&conditionals(MAX_DEPTH + 1)).len(), 1);
    }

    /// Run with `cargo test -p donmai-grammar --release --lib -- --ignored
    /// --nocapture parse_speed`; the budget is 5 µs per expression.
    #[test]
    #[ignore = "a measurement: run it in release mode"]
    fn parse_speed() {
        let expressions = [
            "nodes.dispatch.output.sessionId",
            "a.b ?? c.d + 'x'",
            "trigger.data.pull_request.number > 10 && size(nodes.ls.output.files) != 0",
            "nodes.dev.output.summary ?? nodes.research.output.summary",
            "xs.filter(x, x.state == 'open').map(x, x.id)",
        ];
        for text in expressions {
            // The machine is shared: the fastest of several batches is the
            // cost of parsing, the rest is other processes' noise.
            let rounds = 20_000u32;
            let nanos = (0..20)
                .map(|_| {
                    let started = std::time::Instant::now();
                    for _ in 0..rounds {
                        let (expr, diagnostics) = parse_expr(std::hint::black_box(text));
                        std::hint::black_box((expr, diagnostics));
                    }
                    started.elapsed().as_nanos() / u128::from(rounds)
                })
                .min()
                .unwrap_or(u128::MAX);
            println!("{nanos:>6} ns  {text}");
            assert!(nanos < 5_000, "{text} took {nanos} ns");
        }
    }

    #[test]
    fn deepest_accepted_nesting_fits_a_small_stack() {
        // The deepest recursion: each level goes through every precedence
        // level (the `(` is a right operand of `*`) and a conditional.
        let level = "a ? a : a ?? a || a && a == a + a * -f(";
        let text = format!("{}a{}", level.repeat(200), ")".repeat(200));
        let worker = std::thread::Builder::new()
            .stack_size(STACK_BUDGET)
            .spawn(move || parse_expr(&text).1.len())
            .expect("spawn a thread");
        assert_eq!(worker.join().expect("no stack overflow"), 1);
    }

    /// Debug builds use far more stack per frame than release builds.
    const STACK_BUDGET: usize = if cfg!(debug_assertions) {
        1 << 20
    } else {
        512 << 10
    };

    #[test]
    fn huge_inputs_neither_overflow_nor_cascade() {
        let n = 100_000;
        for text in [
            "(".repeat(n),
            format!("{}a{}", "(".repeat(n), ")".repeat(n)),
            "[".repeat(n),
            "{".repeat(n),
            "f(".repeat(n),
            "!".repeat(n) + "a",
            "-".repeat(n) + "1",
            format!("a{}", ".b".repeat(n)),
            format!("a{}", "[0]".repeat(n)),
            format!("a{}", " + a".repeat(n)),
            "a ? ".repeat(n),
            "a ? b : ".repeat(n) + "c",
        ] {
            let (_, diagnostics) = parse_expr(&text);
            assert!(!diagnostics.is_empty());
            assert!(
                diagnostics.len() <= 2,
                "{}...: {diagnostics:#?}",
                &text[..20]
            );
        }
    }
}

/// Checks shared by the property tests of the parser and of templates.
#[cfg(test)]
pub(crate) mod span_checks {
    use super::*;

    fn check(text: &str, span: Span, what: &str) -> Result<(), String> {
        if span.start > span.end
            || span.end > text.len()
            || !text.is_char_boundary(span.start)
            || !text.is_char_boundary(span.end)
        {
            return Err(format!("bad {what} span {span} in {text:?}"));
        }
        Ok(())
    }

    pub(crate) fn check_expr(text: &str, expr: &Expr) -> Result<(), String> {
        check(text, expr.span, "node")?;
        match &expr.kind {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Int(_)
            | ExprKind::Double(_)
            | ExprKind::String(_)
            | ExprKind::Error => Ok(()),
            ExprKind::Ident(name) => check(text, name.span, "name"),
            ExprKind::List(items) => items.iter().try_for_each(|e| check_expr(text, e)),
            ExprKind::Map(entries) => entries.iter().try_for_each(|(k, v)| {
                check_expr(text, k)?;
                check_expr(text, v)
            }),
            ExprKind::Select { operand, field, .. } => {
                check(text, field.span, "field")?;
                check_expr(text, operand)
            }
            ExprKind::Index { operand, index } => {
                check_expr(text, operand)?;
                check_expr(text, index)
            }
            ExprKind::Call {
                target,
                function,
                args,
            } => {
                check(text, function.span, "function")?;
                if let Some(target) = target {
                    check_expr(text, target)?;
                }
                args.iter().try_for_each(|e| check_expr(text, e))
            }
            ExprKind::Unary { operand, .. } => check_expr(text, operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                check_expr(text, lhs)?;
                check_expr(text, rhs)
            }
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => {
                check_expr(text, cond)?;
                check_expr(text, then)?;
                check_expr(text, otherwise)
            }
        }
    }

    pub(crate) fn has_error_node(expr: &Expr) -> bool {
        match &expr.kind {
            ExprKind::Error => true,
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Int(_)
            | ExprKind::Double(_)
            | ExprKind::String(_)
            | ExprKind::Ident(_) => false,
            ExprKind::List(items) => items.iter().any(has_error_node),
            ExprKind::Map(entries) => entries
                .iter()
                .any(|(k, v)| has_error_node(k) || has_error_node(v)),
            ExprKind::Select { operand, .. } => has_error_node(operand),
            ExprKind::Index { operand, index } => has_error_node(operand) || has_error_node(index),
            ExprKind::Call { target, args, .. } => {
                target.as_deref().is_some_and(has_error_node) || args.iter().any(has_error_node)
            }
            ExprKind::Unary { operand, .. } => has_error_node(operand),
            ExprKind::Binary { lhs, rhs, .. } => has_error_node(lhs) || has_error_node(rhs),
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => has_error_node(cond) || has_error_node(then) || has_error_node(otherwise),
        }
    }

    pub(crate) fn check_diagnostics(text: &str, diagnostics: &[Diagnostic]) -> Result<(), String> {
        for d in diagnostics {
            check(text, d.span, "diagnostic")?;
            for label in &d.labels {
                check(text, label.span, "label")?;
            }
            for edit in d.fix.iter().flat_map(|fix| &fix.edits) {
                check(text, edit.span, "edit")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod properties {
    use super::span_checks::{check_diagnostics, check_expr, has_error_node};
    use super::*;
    use proptest::prelude::*;

    /// Text built mostly from the language's own characters, so that the
    /// parser gets deep into its rules rather than failing at the first byte.
    fn expression_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-+*/%!?.:,()\\[\\]{}'\"\\\\=<>&|$ \n\tabxruU019_é😀]{0,48}",
            proptest::collection::vec(
                prop_oneof![
                    Just("a"),
                    Just("b.c"),
                    Just("f("),
                    Just(")"),
                    Just("["),
                    Just("]"),
                    Just("{"),
                    Just("}"),
                    Just(","),
                    Just(":"),
                    Just("?"),
                    Just("??"),
                    Just("?."),
                    Just("+"),
                    Just("-"),
                    Just("!"),
                    Just("&&"),
                    Just("'s'"),
                    Just("'''"),
                    Just("\\"),
                    Just("1"),
                    Just("1.5"),
                    Just("0x"),
                    Just("in"),
                    Just("if"),
                    Just(" "),
                    Just("9223372036854775808"),
                    Just("1u"),
                    Just("b'"),
                ],
                0..24
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        #[test]
        fn parse_expr_never_panics_and_spans_are_valid(text in expression_like()) {
            let (expr, diagnostics) = parse_expr(&text);
            check_expr(&text, &expr).map_err(TestCaseError::fail)?;
            check_diagnostics(&text, &diagnostics).map_err(TestCaseError::fail)?;
            if has_error_node(&expr) {
                prop_assert!(!diagnostics.is_empty(), "an error node without a diagnostic");
            }
            for d in &diagnostics {
                prop_assert_eq!(d.code, Code::EXPRESSION_SYNTAX);
            }
            if diagnostics.is_empty() {
                let printed = expr.to_string();
                let (reparsed, diagnostics) = parse_expr(&printed);
                prop_assert!(diagnostics.is_empty(), "{printed}: {diagnostics:#?}");
                let mut original = expr;
                let mut reparsed = reparsed;
                original.map_spans(&|_| 0);
                reparsed.map_spans(&|_| 0);
                prop_assert_eq!(reparsed, original);
            }
        }
    }
}
