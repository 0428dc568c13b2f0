//! Shared by the property tests: the number of cases, and the VM's
//! generators: expressions (free-form trees and mostly well-typed
//! fragments), values, and the variables every case sees.

#![allow(dead_code)]

use donmai_compiler::eval::Vars;
use donmai_grammar::Span;
use donmai_grammar::expr::{BinaryOp, Expr, ExprKind, Name, UnaryOp, parse_expr};
use donmai_stdlib::builtins::{BUILTINS, Form};
use donmai_stdlib::value::{MapEntries, MapKey, Value};
use proptest::prelude::*;

/// `PROPTEST_CASES` overrides the number of cases, for longer runs.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

pub fn at(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::default())
}

pub fn name(text: &str) -> Name {
    Name {
        text: text.to_owned(),
        span: Span::default(),
    }
}

pub const ROOTS: &[&str] = &[
    "i", "d", "s", "l", "m", "n", "o", "words", "e", "big", "neg", "mixed", "t", "dur", "a", "b",
    "x", "y", "unknown",
];
pub const FIELDS: &[&str] = &["a", "b", "k", "x", "y", "output", "status", "zz"];
pub const STRINGS: &[&str] = &[
    "",
    "a",
    "abc",
    "héllo",
    "1",
    "42",
    "-7",
    "2.5",
    "true",
    "f",
    "1h30m",
    "1.5s",
    "2024-01-01T00:00:00Z",
    "[1, 2]",
    "{\"a\": 1}",
    "^a.*",
    "[",
    ",",
    "-",
];

pub fn function_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = BUILTINS
        .iter()
        .filter(|b| b.form != Form::Operator)
        .map(|b| b.name)
        .collect();
    names.extend([
        "has",
        "all",
        "exists",
        "exists_one",
        "map",
        "filter",
        "nosuch",
    ]);
    names
}

pub fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(at(ExprKind::Null)),
        any::<bool>().prop_map(|b| at(ExprKind::Bool(b))),
        (-3i64..4).prop_map(|i| at(ExprKind::Int(i))),
        prop::sample::select(vec![i64::MAX, i64::MIN, 1 << 40, 100])
            .prop_map(|i| at(ExprKind::Int(i))),
        prop::sample::select(vec![0.0, -0.0, 0.5, 1.0, 2.5, -1.5, 1e300, 1e19])
            .prop_map(|d| at(ExprKind::Double(d))),
        prop::sample::select(STRINGS).prop_map(|s| at(ExprKind::String(s.to_owned()))),
        prop::sample::select(ROOTS).prop_map(|r| at(ExprKind::Ident(name(r)))),
        prop::sample::select(ROOTS).prop_map(|r| at(ExprKind::Ident(name(r)))),
    ]
}

pub fn binary_op() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    prop::sample::select(vec![
        Coalesce, Or, And, Eq, Ne, Lt, Le, Gt, Ge, In, Add, Sub, Mul, Div, Rem,
    ])
}

pub fn tree() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        let variable = prop_oneof![
            3 => prop::sample::select(vec!["x", "y", "l", "s"])
                .prop_map(|v| at(ExprKind::Ident(name(v)))),
            1 => inner.clone(),
        ];
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(|v| at(ExprKind::List(v))),
            1 => prop::collection::vec((inner.clone(), inner.clone()), 0..3)
                .prop_map(|v| at(ExprKind::Map(v))),
            3 => (inner.clone(), prop::sample::select(FIELDS), any::<bool>()).prop_map(
                |(operand, field, optional)| at(ExprKind::Select {
                    operand: Box::new(operand),
                    field: name(field),
                    optional,
                })
            ),
            1 => (inner.clone(), inner.clone()).prop_map(|(operand, index)| at(ExprKind::Index {
                operand: Box::new(operand),
                index: Box::new(index),
            })),
            2 => (
                prop::sample::select(function_names()),
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(function, args)| at(ExprKind::Call {
                    target: None,
                    function: name(function),
                    args,
                })),
            2 => (
                inner.clone(),
                prop::sample::select(function_names()),
                prop::collection::vec(inner.clone(), 0..3)
            )
                .prop_map(|(target, function, args)| at(ExprKind::Call {
                    target: Some(Box::new(target)),
                    function: name(function),
                    args,
                })),
            3 => (
                inner.clone(),
                prop::sample::select(vec!["all", "exists", "exists_one", "map", "filter", "has"]),
                variable,
                prop::collection::vec(inner.clone(), 0..3)
            )
                .prop_map(|(target, function, variable, rest)| {
                    let mut args = vec![variable];
                    args.extend(rest);
                    at(ExprKind::Call {
                        target: Some(Box::new(target)),
                        function: name(function),
                        args,
                    })
                }),
            1 => (any::<bool>(), inner.clone()).prop_map(|(not, operand)| at(ExprKind::Unary {
                op: if not { UnaryOp::Not } else { UnaryOp::Neg },
                operand: Box::new(operand),
            })),
            4 => (binary_op(), inner.clone(), inner.clone()).prop_map(|(op, lhs, rhs)| {
                at(ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                })
            }),
            1 => (inner.clone(), inner.clone(), inner).prop_map(|(cond, then, otherwise)| {
                at(ExprKind::Conditional {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    otherwise: Box::new(otherwise),
                })
            }),
        ]
    })
}

pub fn parsed(text: String) -> Expr {
    // Typed fragments are written as text; a fragment that does not parse
    // would be a bug of this generator, and shows up as a skipped case.
    parse_expr(&text).0
}

/// Mostly well-typed expressions of a kind, so that evaluation gets past
/// the first operator and exercises values, macros and short-circuits.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Int,
    Bool,
    Str,
    List,
}

pub fn typed(kind: Kind, depth: u32) -> BoxedStrategy<String> {
    let leaves: Vec<&'static str> = match kind {
        Kind::Int => vec![
            "i", "0", "1", "2", "-3", "l[0]", "m.a", "x", "size(s)", "big", "neg",
        ],
        Kind::Bool => vec!["true", "false", "n == null", "has(o.x)", "a == null"],
        Kind::Str => vec![
            "s",
            "'a'",
            "''",
            "o.x.y",
            "o.output.status",
            "words[1]",
            "'héllo'",
        ],
        Kind::List => vec!["l", "words", "e", "[1, 2, 3]", "[0, 1]", "mixed", "b"],
    };
    let leaf = prop::sample::select(leaves).prop_map(str::to_owned);
    if depth == 0 {
        return leaf.boxed();
    }
    let d = depth - 1;
    let int = || typed(Kind::Int, d);
    let boolean = || typed(Kind::Bool, d);
    let string = || typed(Kind::Str, d);
    let list = || typed(Kind::List, d);
    let any_kind = || prop_oneof![int(), boolean(), string(), list()];
    match kind {
        Kind::Int => prop_oneof![
            2 => leaf,
            3 => (int(), prop::sample::select(vec!["+", "-", "*", "/", "%"]), int())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => int().prop_map(|a| format!("-({a})")),
            1 => (boolean(), int(), int()).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            1 => list().prop_map(|l| format!("size({l})")),
            1 => (list(), int()).prop_map(|(l, i)| format!("{l}[{i}]")),
            1 => string().prop_map(|s| format!("int({s})")),
            1 => (int(), int()).prop_map(|(a, b)| format!("({a} ?? {b})")),
        ]
        .boxed(),
        Kind::Bool => prop_oneof![
            2 => leaf,
            2 => (int(), prop::sample::select(vec!["<", "<=", ">", ">=", "==", "!="]), int())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            3 => (boolean(), prop::sample::select(vec!["&&", "||"]), boolean())
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            1 => boolean().prop_map(|a| format!("!({a})")),
            1 => (string(), prop::sample::select(vec!["contains", "startsWith", "endsWith", "matches"]), string())
                .prop_map(|(a, f, b)| format!("{a}.{f}({b})")),
            1 => (int(), list()).prop_map(|(a, l)| format!("({a} in {l})")),
            2 => (list(), prop::sample::select(vec!["all", "exists", "exists_one"]), boolean())
                .prop_map(|(l, f, p)| format!("{l}.{f}(x, {p})")),
            1 => (any_kind(), any_kind()).prop_map(|(a, b)| format!("({a} == {b})")),
        ]
        .boxed(),
        Kind::Str => prop_oneof![
            2 => leaf,
            2 => (string(), string()).prop_map(|(a, b)| format!("({a} + {b})")),
            1 => (string(), prop::sample::select(vec!["upper", "lower", "trim"]))
                .prop_map(|(a, f)| format!("{f}({a})")),
            1 => int().prop_map(|a| format!("string({a})")),
            1 => (list(), string()).prop_map(|(l, sep)| format!("{l}.join({sep})")),
            1 => (boolean(), string(), string()).prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            1 => any_kind().prop_map(|a| format!("toJson({a})")),
            1 => (string(), string()).prop_map(|(a, b)| format!("(o?.zz ?? {a}) + {b}")),
        ]
        .boxed(),
        Kind::List => prop_oneof![
            2 => leaf,
            2 => (list(), int()).prop_map(|(l, f)| format!("{l}.map(x, {f})")),
            1 => (list(), boolean(), int()).prop_map(|(l, p, f)| format!("{l}.map(x, {p}, {f})")),
            2 => (list(), boolean()).prop_map(|(l, p)| format!("{l}.filter(x, {p})")),
            1 => (list(), list()).prop_map(|(a, b)| format!("({a} + {b})")),
            1 => prop::collection::vec(int(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            1 => (string(), string()).prop_map(|(a, b)| format!("split({a}, {b})")),
            1 => (list(), list()).prop_map(|(a, b)| format!("{a}.map(x, {b}.map(y, x))")),
        ]
        .boxed(),
    }
}

pub fn typed_tree() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Kind::Int),
        Just(Kind::Bool),
        Just(Kind::Str),
        Just(Kind::List)
    ]
    .prop_flat_map(|kind| typed(kind, 3))
    .prop_map(parsed)
}

/// Typed fragments and free-form trees, half and half.
pub fn expression() -> impl Strategy<Value = Expr> {
    prop_oneof![typed_tree(), tree()]
}

pub fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::Int),
        prop::sample::select(vec![i64::MAX, i64::MIN]).prop_map(Value::Int),
        prop::sample::select(vec![0.5, 1.0, -2.0, f64::NAN, f64::INFINITY]).prop_map(Value::Double),
        prop::sample::select(STRINGS).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::list),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..4).prop_map(
                |entries| {
                    Value::map(
                        entries
                            .into_iter()
                            .map(|(k, v)| (MapKey::from(k), v))
                            .collect::<MapEntries>(),
                    )
                }
            ),
        ]
    })
}

/// The fixture of the evaluator's conformance cases, plus a timestamp, a
/// duration and two generated roots.
pub fn vars(a: Value, b: Value) -> Vars {
    let json = serde_json::json!({
        "i": 7, "d": 2.5, "s": "hello", "l": [1, 2, 3], "m": {"a": 1, "b": 2},
        "n": null, "o": {"x": {"y": "z"}, "k": null, "output": {"status": "done"}},
        "words": ["a", "b", "c"], "e": [], "big": i64::MAX, "neg": i64::MIN,
        "mixed": [1, "a", null]
    });
    let Value::Map(entries) = Value::from_json(&json) else {
        unreachable!("the fixture is an object")
    };
    let mut vars: Vars = entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    vars.insert(
        "t".into(),
        Value::parse_timestamp("2024-03-05T06:07:08.009Z").unwrap_or(Value::Null),
    );
    vars.insert(
        "dur".into(),
        Value::parse_duration("90m").unwrap_or(Value::Null),
    );
    vars.insert("a".into(), a);
    vars.insert("b".into(), b);
    vars
}
