//! Template strings: literal text with embedded `{{ expr }}` or `${ expr }`.
//!
//! The end of an embedded expression is found with the expression lexer, so
//! braces of map literals and `}}` inside string literals do not end it.
//! Spans, including those of the embedded expressions, are byte offsets into
//! the template text; the caller maps them onto the file with
//! [`Expr::map_spans`].

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::expr::lexer::{Lexer, Token, TokenKind};
use crate::expr::parser::parse_tokens;
use crate::expr::{Expr, ExprKind};
use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub segments: Vec<Segment>,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    Literal {
        text: String,
        span: Span,
    },
    Expr {
        expr: Expr,
        /// The whole `{{ ... }}` or `${ ... }`, delimiters included.
        span: Span,
        delimiter: Delimiter,
    },
}

impl Segment {
    pub fn span(&self) -> Span {
        match self {
            Segment::Literal { span, .. } | Segment::Expr { span, .. } => *span,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delimiter {
    /// `{{ expr }}`
    Braces,
    /// `${ expr }`, the workflow/v1 spelling.
    Dollar,
}

impl Delimiter {
    pub fn open(self) -> &'static str {
        match self {
            Delimiter::Braces => "{{",
            Delimiter::Dollar => "${",
        }
    }

    pub fn close(self) -> &'static str {
        match self {
            Delimiter::Braces => "}}",
            Delimiter::Dollar => "}",
        }
    }
}

impl Template {
    /// The expression when the text is exactly one `{{ }}` or `${ }`,
    /// optionally surrounded by whitespace: such a scalar takes the
    /// expression's type instead of being a string.
    pub fn single_expr(&self) -> Option<&Expr> {
        let mut found = None;
        for segment in &self.segments {
            match segment {
                Segment::Literal { text, .. } if text.trim().is_empty() => {}
                Segment::Literal { .. } => return None,
                Segment::Expr { expr, .. } => {
                    if found.is_some() {
                        return None;
                    }
                    found = Some(expr);
                }
            }
        }
        found
    }

    /// Whether the text embeds no expression at all.
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Literal { .. }))
    }

    /// The embedded expressions, in order.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Expr { expr, .. } => Some(expr),
            Segment::Literal { .. } => None,
        })
    }
}

pub fn parse_template(text: &str) -> Template {
    // Nearly every template is one literal or one expression.
    let mut segments = Vec::with_capacity(1);
    let mut diagnostics = Vec::new();
    let bytes = text.as_bytes();
    let mut literal_start = 0;
    let mut pos = 0;
    while pos + 1 < bytes.len() {
        // Both delimiters end with `{`: jump from one to the next.
        let Some(brace) = memchr::memchr(b'{', &bytes[pos + 1..]) else {
            break;
        };
        pos += brace;
        let delimiter = match (bytes[pos], bytes[pos + 1]) {
            (b'{', b'{') => Delimiter::Braces,
            (b'$', b'{') => Delimiter::Dollar,
            _ => {
                pos += 1;
                continue;
            }
        };
        let segment_start = pos;
        let mut open = Span::new(pos, pos + 2);
        let mut delimiter = delimiter;
        if delimiter == Delimiter::Dollar && bytes.get(pos + 2) == Some(&b'{') {
            // GitHub Actions' `${{ }}`: read it as the `{{ }}` it resembles.
            diagnostics.push(
                Diagnostic::new(
                    Code::EXPRESSION_SYNTAX,
                    Span::new(pos, pos + 3),
                    "`${{` mixes the two delimiters: write `{{ ... }}` or `${ ... }`",
                )
                .with_replacement("remove the `$`", Span::new(pos, pos + 1), ""),
            );
            open = Span::new(pos + 1, pos + 3);
            delimiter = Delimiter::Braces;
        }
        let Some((close, tokens, lexer_diagnostics)) = find_close(text, open.end, delimiter) else {
            diagnostics.push(unclosed(text, open, delimiter));
            // The rest stays literal text: there is no telling where the
            // expression was meant to end.
            break;
        };
        push_literal(&mut segments, text, literal_start, segment_start);
        let span = Span::new(segment_start, close.end);
        let expr = if text[open.end..close.start].trim().is_empty() {
            diagnostics.push(
                Diagnostic::new(
                    Code::EXPRESSION_SYNTAX,
                    span,
                    format!(
                        "`{} {}` is empty: expected an expression",
                        delimiter.open(),
                        delimiter.close()
                    ),
                )
                .with_help(
                    "write a reference such as `{{ trigger.data.x }}`, or remove the braces",
                ),
            );
            Expr::new(ExprKind::Error, Span::new(open.end, close.start))
        } else {
            let range = Span::new(open.end, close.start);
            let (expr, expr_diagnostics) = parse_tokens(text, range, tokens, lexer_diagnostics);
            diagnostics.extend(expr_diagnostics);
            expr
        };
        segments.push(Segment::Expr {
            expr,
            span,
            delimiter,
        });
        pos = close.end;
        literal_start = pos;
    }
    push_literal(&mut segments, text, literal_start, text.len());
    Template {
        segments,
        diagnostics,
    }
}

fn push_literal(segments: &mut Vec<Segment>, text: &str, start: usize, end: usize) {
    if start < end {
        segments.push(Segment::Literal {
            text: text[start..end].to_string(),
            span: Span::new(start, end),
        });
    }
}

/// Finds the closing delimiter of an expression starting at `start`: a `}`
/// (followed by another `}` for `{{`) outside any string and any braces the
/// expression opens itself. Returns it with the expression's tokens (ending
/// with `Eof` at the delimiter) and the lexer's diagnostics, which are those
/// of lexing just the expression: every token before the delimiter ends
/// before it, and a token's kind never depends on what follows its end when
/// that is `}` or the end of the text. The parser then need not lex again.
fn find_close(
    text: &str,
    start: usize,
    delimiter: Delimiter,
) -> Option<(Span, Vec<Token>, Vec<Diagnostic>)> {
    let mut lexer = Lexer::with_range(text, start, text.len());
    let mut tokens = Vec::new();
    let mut depth = 0usize;
    loop {
        let token = lexer.next_token();
        let close = match token.kind {
            TokenKind::Eof => return None,
            TokenKind::LBrace => {
                depth += 1;
                None
            }
            TokenKind::RBrace if depth > 0 => {
                depth -= 1;
                None
            }
            TokenKind::RBrace => match delimiter {
                Delimiter::Dollar => Some(token.span),
                Delimiter::Braces if text.as_bytes().get(token.span.end) == Some(&b'}') => {
                    Some(Span::new(token.span.start, token.span.end + 1))
                }
                // A lone `}` inside `{{ }}`: the parser will report it.
                Delimiter::Braces => None,
            },
            _ => None,
        };
        if let Some(close) = close {
            tokens.push(Token {
                kind: TokenKind::Eof,
                span: Span::at(close.start),
            });
            return Some((close, tokens, lexer.into_diagnostics()));
        }
        tokens.push(token);
    }
}

fn unclosed(text: &str, open: Span, delimiter: Delimiter) -> Diagnostic {
    let mut diagnostic = Diagnostic::new(
        Code::TEMPLATE_SYNTAX,
        open,
        format!("`{}` is never closed", delimiter.open()),
    )
    .with_help(format!("close the expression with `{}`", delimiter.close()));
    // Re-lex to name the usual culprit: a string literal that swallowed
    // the closing braces.
    let mut lexer = Lexer::with_range(text, open.end, text.len());
    while lexer.next_token().kind != TokenKind::Eof {}
    if let Some(string) = lexer.unterminated_string() {
        diagnostic = diagnostic.with_label(
            string,
            format!(
                "this string literal is not closed, so the `{}` after it is part of the string",
                delimiter.close()
            ),
        );
    }
    diagnostic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(text: &str) -> Template {
        let template = parse_template(text);
        assert!(
            template.diagnostics.is_empty(),
            "{text}: {:#?}",
            template.diagnostics
        );
        template
    }

    fn printed(template: &Template) -> Vec<String> {
        template.exprs().map(|e| e.to_string()).collect()
    }

    #[test]
    fn literal_text() {
        let template = clean("hello $ { } world");
        assert!(template.is_literal());
        assert_eq!(template.single_expr(), None);
        assert_eq!(
            template.segments,
            [Segment::Literal {
                text: "hello $ { } world".into(),
                span: Span::new(0, 17)
            }]
        );
        let empty = clean("");
        assert!(empty.is_literal());
        assert!(empty.segments.is_empty());
    }

    #[test]
    fn single_expression_keeps_its_type() {
        let template = clean("  {{ nodes.a.output.n }} ");
        assert!(!template.is_literal());
        let expr = template.single_expr().expect("one expression");
        assert_eq!(expr.to_string(), "nodes.a.output.n");
        // Spans are offsets into the template text.
        assert_eq!(expr.span, Span::new(5, 21));
        let Segment::Expr {
            span, delimiter, ..
        } = &template.segments[1]
        else {
            panic!("{:?}", template.segments);
        };
        assert_eq!(*span, Span::new(2, 24));
        assert_eq!(*delimiter, Delimiter::Braces);
    }

    #[test]
    fn interpolation() {
        let template = clean("PR #{{ trigger.number }}: ${title}!");
        assert_eq!(template.single_expr(), None);
        assert_eq!(printed(&template), ["trigger.number", "title"]);
        let texts: Vec<_> = template
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Literal { text, .. } => Some(text.as_str()),
                Segment::Expr { .. } => None,
            })
            .collect();
        assert_eq!(texts, ["PR #", ": ", "!"]);
        assert_eq!(clean("{{a}}{{b}}").single_expr(), None);
    }

    #[test]
    fn braces_inside_expressions() {
        let template = clean("{{ {'a': {'b': 1}} }}");
        assert_eq!(printed(&template), [r#"{"a": {"b": 1}}"#]);
        let template = clean("${ {'x': 1}.x }");
        assert_eq!(printed(&template), [r#"{"x": 1}.x"#]);
        let template = clean("{{ 'a}}b' + \"}\" }} tail");
        assert_eq!(printed(&template), [r#""a}}b" + "}""#]);
        let template = clean("${ '}' }");
        assert_eq!(printed(&template), [r#""}""#]);
        let template = clean("{{{'a': 1}}}");
        assert_eq!(printed(&template), [r#"{"a": 1}"#]);
    }

    #[test]
    fn unclosed_opener() {
        let template = parse_template("a {{ b.c ");
        assert_eq!(template.diagnostics.len(), 1);
        let d = &template.diagnostics[0];
        assert_eq!(d.code, Code::TEMPLATE_SYNTAX);
        assert_eq!(d.message, "`{{` is never closed");
        assert_eq!(d.span, Span::new(2, 4));
        assert!(template.is_literal());

        let template = parse_template("${ x ");
        assert_eq!(template.diagnostics[0].message, "`${` is never closed");
        assert_eq!(template.diagnostics[0].span, Span::new(0, 2));

        let template = parse_template("{{ 'abc }}");
        let d = &template.diagnostics[0];
        assert_eq!(d.code, Code::TEMPLATE_SYNTAX);
        assert_eq!(d.labels[0].span, Span::new(3, 10));

        // An earlier expression is kept when a later one is unclosed.
        let template = parse_template("{{ a }} and {{ b");
        assert_eq!(printed(&template), ["a"]);
        assert_eq!(template.diagnostics[0].span, Span::new(12, 14));
    }

    #[test]
    fn empty_expression() {
        let template = parse_template("x {{ }} y");
        assert_eq!(template.diagnostics.len(), 1);
        let d = &template.diagnostics[0];
        assert_eq!(d.code, Code::EXPRESSION_SYNTAX);
        assert_eq!(d.span, Span::new(2, 7));
        assert_eq!(d.message, "`{{ }}` is empty: expected an expression");
        assert!(matches!(
            template.single_expr(),
            None | Some(Expr {
                kind: ExprKind::Error,
                ..
            })
        ));
        assert_eq!(parse_template("${}").diagnostics[0].span, Span::new(0, 3));
    }

    #[test]
    fn expression_errors_point_into_the_template() {
        let template = parse_template("id: {{ a + }}");
        assert_eq!(template.diagnostics.len(), 1);
        let d = &template.diagnostics[0];
        assert_eq!(d.code, Code::EXPRESSION_SYNTAX);
        assert_eq!(d.span, Span::at(11));
        assert_eq!(d.labels[0].span, Span::new(9, 10));
        // A stray `}` inside `{{ }}` is the expression's error.
        let template = parse_template("{{ a } }}");
        assert_eq!(template.diagnostics.len(), 1);
        assert_eq!(template.diagnostics[0].message, "unmatched `}`");
    }

    #[test]
    fn github_actions_delimiters_are_read_as_braces() {
        let template = parse_template("v: ${{ a.b }}");
        assert_eq!(template.diagnostics.len(), 1);
        let d = &template.diagnostics[0];
        assert_eq!(d.span, Span::new(3, 6));
        assert_eq!(d.fix.as_ref().unwrap().edits[0].span, Span::new(3, 4));
        assert_eq!(printed(&template), ["a.b"]);
        let Segment::Expr {
            span, delimiter, ..
        } = &template.segments[1]
        else {
            panic!("{:?}", template.segments);
        };
        assert_eq!(*span, Span::new(3, 13));
        assert_eq!(*delimiter, Delimiter::Braces);
    }

    #[test]
    fn errors_in_several_expressions_are_all_reported() {
        let template = parse_template("{{ a + }} {{ ) }} ${ b. }");
        assert_eq!(template.diagnostics.len(), 3, "{:#?}", template.diagnostics);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::expr::parser::span_checks::{check_diagnostics, check_expr};
    use proptest::prelude::*;

    fn template_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(
                prop_oneof![
                    Just("{{"),
                    Just("}}"),
                    Just("${"),
                    Just("}"),
                    Just("{"),
                    Just("$"),
                    Just("a.b"),
                    Just(" "),
                    Just("'"),
                    Just("\""),
                    Just("'}}'"),
                    Just("+"),
                    Just("text"),
                    Just("é"),
                    Just("\n"),
                    Just("("),
                    Just(":"),
                    Just("1"),
                ],
                0..24
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    /// Text after an opening delimiter: expression pieces, including those
    /// whose lexing looks past their end (numbers, exponents, strings).
    fn expression_like() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("}}"),
                Just("}"),
                Just("{"),
                Just(" "),
                Just("a.b"),
                Just("x"),
                Just("1"),
                Just("1."),
                Just(".5"),
                Just("1e"),
                Just("1e+"),
                Just("0x"),
                Just("'"),
                Just("\""),
                Just("\\"),
                Just("?"),
                Just("?."),
                Just("??"),
                Just("="),
                Just("!"),
                Just("&&"),
                Just("|"),
                Just("é"),
                Just("("),
                Just(")"),
                Just("["),
                Just(":"),
                Just(","),
            ],
            0..16,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The tokens found while looking for the closing delimiter parse
        /// exactly as lexing the expression afresh would.
        #[test]
        fn reused_tokens_parse_as_a_fresh_lex(text in expression_like()) {
            for delimiter in [Delimiter::Braces, Delimiter::Dollar] {
                if let Some((close, tokens, lexed)) = find_close(&text, 0, delimiter) {
                    let reused = parse_tokens(&text, Span::new(0, close.start), tokens, lexed);
                    let fresh = crate::expr::parser::parse_expr_in(&text, 0, close.start);
                    prop_assert_eq!(reused, fresh, "{:?}", text);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn parse_template_never_panics_and_spans_are_valid(text in template_like()) {
            let template = parse_template(&text);
            check_diagnostics(&text, &template.diagnostics).map_err(TestCaseError::fail)?;
            // Segments tile the text in order.
            let mut covered = 0;
            for segment in &template.segments {
                let span = segment.span();
                match segment {
                    Segment::Literal { text: literal, .. } => {
                        prop_assert_eq!(&text[span.start..span.end], literal.as_str());
                    }
                    Segment::Expr { expr, .. } => {
                        check_expr(&text, expr).map_err(TestCaseError::fail)?;
                        prop_assert!(span.start <= expr.span.start && expr.span.end <= span.end);
                    }
                }
                prop_assert_eq!(span.start, covered);
                covered = span.end;
            }
            prop_assert_eq!(covered, text.len());
            for d in &template.diagnostics {
                prop_assert!(d.code == Code::EXPRESSION_SYNTAX || d.code == Code::TEMPLATE_SYNTAX);
            }
        }
    }
}
