//! Canonical printing: the fewest parentheses that make the text parse back
//! to the same tree. Diagnostics and hover text quote expressions this way.

use super::ast::{BinaryOp, Expr, ExprKind, UnaryOp};
use std::fmt::{self, Write};

/// Binding strength of each form, loosest first.
const CONDITIONAL: u8 = 0;
const UNARY: u8 = 7;
const POSTFIX: u8 = 8;

fn binary_precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Coalesce => 1,
        BinaryOp::Or => 2,
        BinaryOp::And => 3,
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::In => 4,
        BinaryOp::Add | BinaryOp::Sub => 5,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 6,
    }
}

fn precedence(expr: &Expr) -> u8 {
    match &expr.kind {
        ExprKind::Conditional { .. } => CONDITIONAL,
        ExprKind::Binary { op, .. } => binary_precedence(*op),
        ExprKind::Unary { .. } => UNARY,
        // `-5` reads back as a literal only where a unary operator could
        // stand: `(-5).x` needs its parentheses.
        ExprKind::Int(value) if *value < 0 => UNARY,
        ExprKind::Double(value) if value.is_sign_negative() && value.is_finite() => UNARY,
        _ => POSTFIX,
    }
}

/// Whether `-` followed by this operand would fold into a negative literal.
fn is_unsigned_number(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Int(value) => *value >= 0,
        ExprKind::Double(value) => !value.is_sign_negative() && value.is_finite(),
        _ => false,
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(f, self, CONDITIONAL)
    }
}

fn write_expr(f: &mut fmt::Formatter<'_>, expr: &Expr, min_precedence: u8) -> fmt::Result {
    if precedence(expr) < min_precedence {
        f.write_char('(')?;
        write_bare(f, expr)?;
        return f.write_char(')');
    }
    write_bare(f, expr)
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_expr(f, item, CONDITIONAL)?;
    }
    Ok(())
}

fn write_bare(f: &mut fmt::Formatter<'_>, expr: &Expr) -> fmt::Result {
    match &expr.kind {
        ExprKind::Null => f.write_str("null"),
        ExprKind::Bool(value) => write!(f, "{value}"),
        ExprKind::Int(value) => write!(f, "{value}"),
        ExprKind::Double(value) => write_double(f, *value),
        ExprKind::String(value) => write_string(f, value),
        ExprKind::List(items) => {
            f.write_char('[')?;
            write_list(f, items)?;
            f.write_char(']')
        }
        ExprKind::Map(entries) => {
            f.write_char('{')?;
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_expr(f, key, CONDITIONAL)?;
                f.write_str(": ")?;
                write_expr(f, value, CONDITIONAL)?;
            }
            f.write_char('}')
        }
        ExprKind::Ident(name) => f.write_str(&name.text),
        ExprKind::Select {
            operand,
            field,
            optional,
        } => {
            write_expr(f, operand, POSTFIX)?;
            f.write_str(if *optional { "?." } else { "." })?;
            f.write_str(&field.text)
        }
        ExprKind::Index { operand, index } => {
            write_expr(f, operand, POSTFIX)?;
            f.write_char('[')?;
            write_expr(f, index, CONDITIONAL)?;
            f.write_char(']')
        }
        ExprKind::Call {
            target,
            function,
            args,
        } => {
            if let Some(target) = target {
                write_expr(f, target, POSTFIX)?;
                f.write_char('.')?;
            }
            f.write_str(&function.text)?;
            f.write_char('(')?;
            write_list(f, args)?;
            f.write_char(')')
        }
        ExprKind::Unary { op, operand } => {
            f.write_str(match op {
                UnaryOp::Not => "!",
                UnaryOp::Neg => "-",
            })?;
            if *op == UnaryOp::Neg && is_unsigned_number(operand) {
                // `-(5)`: written `-5` it would read back as a literal.
                f.write_char('(')?;
                write_bare(f, operand)?;
                return f.write_char(')');
            }
            write_expr(f, operand, UNARY)
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let precedence = binary_precedence(*op);
            // Left-associative: a right operand of equal strength needs parentheses.
            write_expr(f, lhs, precedence)?;
            write!(f, " {} ", op.as_str())?;
            write_expr(f, rhs, precedence + 1)
        }
        ExprKind::Conditional {
            cond,
            then,
            otherwise,
        } => {
            write_expr(f, cond, CONDITIONAL + 1)?;
            f.write_str(" ? ")?;
            write_expr(f, then, CONDITIONAL)?;
            f.write_str(" : ")?;
            write_expr(f, otherwise, CONDITIONAL)
        }
        // Not valid syntax on purpose: it stands for text that did not parse.
        ExprKind::Error => f.write_str("<error>"),
    }
}

/// Shortest text that reads back as the same double. Rust's `{:?}` already
/// gives that in a form the lexer accepts (`1.0`, `1e300`, `1.5e-7`); the
/// non-finite values have no literal and are spelled as CEL conversions.
fn write_double(f: &mut fmt::Formatter<'_>, value: f64) -> fmt::Result {
    if value.is_nan() {
        f.write_str("double(\"NaN\")")
    } else if value.is_infinite() {
        let sign = if value < 0.0 { "-" } else { "" };
        write!(f, "double(\"{sign}Infinity\")")
    } else {
        write!(f, "{value:?}")
    }
}

fn write_string(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => {
                let code = c as u32;
                if code <= 0xFFFF {
                    write!(f, "\\u{code:04x}")?;
                } else {
                    write!(f, "\\U{code:08x}")?;
                }
            }
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use crate::expr::parse_expr;

    fn canonical(text: &str) -> String {
        let (expr, diagnostics) = parse_expr(text);
        assert!(diagnostics.is_empty(), "{text}: {diagnostics:#?}");
        expr.to_string()
    }

    #[test]
    fn minimal_parentheses() {
        assert_eq!(canonical("(a + (b * c))"), "a + b * c");
        assert_eq!(canonical("(a + b) * c"), "(a + b) * c");
        assert_eq!(canonical("a - (b - c)"), "a - (b - c)");
        assert_eq!(canonical("(a - b) - c"), "a - b - c");
        assert_eq!(canonical("(a ? b : c) ? d : e"), "(a ? b : c) ? d : e");
        assert_eq!(canonical("a ? b : (c ? d : e)"), "a ? b : c ? d : e");
        assert_eq!(canonical("a ? (b ? c : d) : e"), "a ? b ? c : d : e");
        assert_eq!(canonical("(a ?? b) || c"), "(a ?? b) || c");
        assert_eq!(canonical("!(a && b)"), "!(a && b)");
        assert_eq!(canonical("(!a).b"), "(!a).b");
        assert_eq!(canonical("(a + b).c(d)[e]"), "(a + b).c(d)[e]");
        assert_eq!(canonical("(a.b).c"), "a.b.c");
        assert_eq!(
            canonical("{'k': [1, 2.5, null, true]}"),
            "{\"k\": [1, 2.5, null, true]}"
        );
        assert_eq!(canonical("f(a, b?.c)"), "f(a, b?.c)");
        assert_eq!(canonical("x in [1]"), "x in [1]");
    }

    #[test]
    fn negative_numbers() {
        assert_eq!(canonical("-5"), "-5");
        assert_eq!(canonical("-(5)"), "-(5)");
        assert_eq!(canonical("(-5).x"), "(-5).x");
        assert_eq!(canonical("--5"), "--5");
        assert_eq!(canonical("-(-5)"), "--5");
        assert_eq!(canonical("a - -5"), "a - -5");
        assert_eq!(canonical("-9223372036854775808"), "-9223372036854775808");
        assert_eq!(canonical("-(1.5)"), "-(1.5)");
        assert_eq!(canonical("-1.5"), "-1.5");
    }

    #[test]
    fn doubles() {
        assert_eq!(canonical("1e3"), "1000.0");
        assert_eq!(canonical("1e300"), "1e300");
        assert_eq!(canonical(".5"), "0.5");
        assert_eq!(canonical("1.5e-7"), "1.5e-7");
    }

    #[test]
    fn strings_use_double_quotes_and_escapes() {
        assert_eq!(canonical(r#"'a"b'"#), r#""a\"b""#);
        assert_eq!(canonical(r"'\\ \n \t \r'"), r#""\\ \n \t \r""#);
        assert_eq!(canonical(r"'\x07 é'"), r#""\u0007 é""#);
        assert_eq!(canonical("r'C:\\dir'"), r#""C:\\dir""#);
    }
}

#[cfg(test)]
mod round_trip {
    use crate::expr::lexer::is_reserved_word;
    use crate::expr::{BinaryOp, Expr, ExprKind, Name, UnaryOp, parse_expr};
    use crate::span::Span;
    use proptest::prelude::*;

    fn expr(kind: ExprKind) -> Expr {
        Expr::new(kind, Span::default())
    }

    fn name(text: String) -> Name {
        Name {
            text,
            span: Span::default(),
        }
    }

    fn word() -> impl Strategy<Value = String> {
        "[_a-zA-Z][_a-zA-Z0-9]{0,6}".prop_filter("keyword", |w| {
            !matches!(w.as_str(), "true" | "false" | "null" | "in")
        })
    }

    /// Names usable as identifiers and global functions.
    fn identifier() -> impl Strategy<Value = String> {
        word().prop_filter("reserved", |w| !is_reserved_word(w))
    }

    fn leaf() -> impl Strategy<Value = Expr> {
        prop_oneof![
            Just(expr(ExprKind::Null)),
            any::<bool>().prop_map(|b| expr(ExprKind::Bool(b))),
            any::<i64>().prop_map(|i| expr(ExprKind::Int(i))),
            (-3i64..3).prop_map(|i| expr(ExprKind::Int(i))),
            any::<f64>()
                .prop_filter("finite", |d| d.is_finite())
                .prop_map(|d| expr(ExprKind::Double(d))),
            any::<String>().prop_map(|s| expr(ExprKind::String(s))),
            identifier().prop_map(|n| expr(ExprKind::Ident(name(n)))),
        ]
    }

    fn binary_op() -> impl Strategy<Value = BinaryOp> {
        use BinaryOp::*;
        prop::sample::select(vec![
            Coalesce, Or, And, Eq, Ne, Lt, Le, Gt, Ge, In, Add, Sub, Mul, Div, Rem,
        ])
    }

    fn tree() -> impl Strategy<Value = Expr> {
        leaf().prop_recursive(6, 48, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| expr(ExprKind::List(v))),
                prop::collection::vec((inner.clone(), inner.clone()), 0..3)
                    .prop_map(|v| expr(ExprKind::Map(v))),
                (inner.clone(), word(), any::<bool>()).prop_map(|(operand, field, optional)| {
                    expr(ExprKind::Select {
                        operand: Box::new(operand),
                        field: name(field),
                        optional,
                    })
                }),
                (inner.clone(), inner.clone()).prop_map(|(operand, index)| {
                    expr(ExprKind::Index {
                        operand: Box::new(operand),
                        index: Box::new(index),
                    })
                }),
                (identifier(), prop::collection::vec(inner.clone(), 0..3)).prop_map(
                    |(function, args)| expr(ExprKind::Call {
                        target: None,
                        function: name(function),
                        args,
                    })
                ),
                (
                    inner.clone(),
                    word(),
                    prop::collection::vec(inner.clone(), 0..3)
                )
                    .prop_map(|(target, function, args)| expr(ExprKind::Call {
                        target: Some(Box::new(target)),
                        function: name(function),
                        args,
                    })),
                (any::<bool>(), inner.clone()).prop_map(|(not, operand)| expr(ExprKind::Unary {
                    op: if not { UnaryOp::Not } else { UnaryOp::Neg },
                    operand: Box::new(operand),
                })),
                (binary_op(), inner.clone(), inner.clone()).prop_map(|(op, lhs, rhs)| {
                    expr(ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    })
                }),
                (inner.clone(), inner.clone(), inner).prop_map(|(cond, then, otherwise)| {
                    expr(ExprKind::Conditional {
                        cond: Box::new(cond),
                        then: Box::new(then),
                        otherwise: Box::new(otherwise),
                    })
                }),
            ]
        })
    }

    fn without_spans(mut expr: Expr) -> Expr {
        expr.map_spans(&|_| 0);
        expr
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn printing_then_parsing_gives_the_same_tree(original in tree()) {
            let text = original.to_string();
            let (parsed, diagnostics) = parse_expr(&text);
            prop_assert!(diagnostics.is_empty(), "{text}: {diagnostics:#?}");
            prop_assert_eq!(without_spans(parsed), original, "{}", text);
        }
    }
}
