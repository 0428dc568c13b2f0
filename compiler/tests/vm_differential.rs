//! The bytecode VM against the reference evaluator on generated
//! expressions and variables: the same value, or the same error (code,
//! message and span; fuel exhaustion by code), and the same fuel left over,
//! under generous and tiny budgets alike.
//!
//! `PROPTEST_CASES` raises the number of cases for a longer hunt.

use donmai_compiler::codegen::{compile_expr, run_on_vm};
use donmai_compiler::eval::{Vars, evaluate};
use donmai_grammar::Span;
use donmai_grammar::expr::{BinaryOp, Expr, ExprKind, Name, UnaryOp, parse_expr};
use donmai_runtime::bytecode::{ConstPool, verify};
use donmai_stdlib::builtins::{BUILTINS, Form};
use donmai_stdlib::value::{EvalError, Fuel, MapEntries, MapKey, Value, error_code};
use proptest::prelude::*;

fn at(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::default())
}

fn name(text: &str) -> Name {
    Name {
        text: text.to_owned(),
        span: Span::default(),
    }
}

const ROOTS: &[&str] = &[
    "i", "d", "s", "l", "m", "n", "o", "words", "e", "big", "neg", "mixed", "t", "dur", "a", "b",
    "x", "y", "unknown",
];
const FIELDS: &[&str] = &["a", "b", "k", "x", "y", "output", "status", "zz"];
const STRINGS: &[&str] = &[
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

fn function_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = BUILTINS
        .iter()
        .filter(|b| b.form != Form::Operator)
        .map(|b| b.name)
        .collect();
    names.extend(["has", "all", "exists", "exists_one", "map", "filter", "nosuch"]);
    names
}

fn leaf() -> impl Strategy<Value = Expr> {
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

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    prop::sample::select(vec![
        Coalesce, Or, And, Eq, Ne, Lt, Le, Gt, Ge, In, Add, Sub, Mul, Div, Rem,
    ])
}

fn tree() -> impl Strategy<Value = Expr> {
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

fn parsed(text: String) -> Expr {
    // Typed fragments are written as text; a fragment that does not parse
    // would be a bug of this generator, and shows up as a skipped case.
    parse_expr(&text).0
}

/// Mostly well-typed expressions of a kind, so that evaluation gets past
/// the first operator and exercises values, macros and short-circuits.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Bool,
    Str,
    List,
}

fn typed(kind: Kind, depth: u32) -> BoxedStrategy<String> {
    let leaves: Vec<&'static str> = match kind {
        Kind::Int => vec!["i", "0", "1", "2", "-3", "l[0]", "m.a", "x", "size(s)", "big", "neg"],
        Kind::Bool => vec!["true", "false", "n == null", "has(o.x)", "a == null"],
        Kind::Str => vec!["s", "'a'", "''", "o.x.y", "o.output.status", "words[1]", "'héllo'"],
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
    let any_kind = || {
        prop_oneof![int(), boolean(), string(), list()]
    };
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

fn typed_tree() -> impl Strategy<Value = Expr> {
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
fn expression() -> impl Strategy<Value = Expr> {
    prop_oneof![typed_tree(), tree()]
}

fn value() -> impl Strategy<Value = Value> {
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
fn vars(a: Value, b: Value) -> Vars {
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

fn fuel() -> impl Strategy<Value = Fuel> {
    prop_oneof![
        2 => Just(Fuel::new(200_000, 1 << 24)),
        1 => (0u64..300, 0u64..4000).prop_map(|(steps, bytes)| Fuel::new(steps, bytes)),
        1 => (0u64..300).prop_map(|steps| Fuel::new(steps, 1 << 24)),
    ]
}

fn same_outcome(vm: &Result<Value, EvalError>, reference: &Result<Value, EvalError>) -> bool {
    match (vm, reference) {
        // Debug keeps int and double apart and shows NaN, unlike `==`.
        (Ok(a), Ok(b)) => format!("{a:?}") == format!("{b:?}"),
        // Where a budget runs out is the same, but the VM names the
        // instruction that charged the step, not the node being entered.
        (Err(a), Err(b)) if a.code == error_code::FUEL_EXHAUSTED => a.code == b.code,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

fn check(text: &str, vars: &Vars, fuel: Fuel) -> Result<(), TestCaseError> {
    let (expr, diagnostics) = parse_expr(text);
    prop_assume!(diagnostics.is_empty());
    let (mut vm_fuel, mut reference_fuel) = (fuel, fuel);
    let vm = run_on_vm(&expr, vars, &mut vm_fuel);
    let reference = evaluate(&expr, vars, &mut reference_fuel);
    prop_assert!(
        same_outcome(&vm, &reference) && vm_fuel == reference_fuel,
        "{text}\n  vm        {vm:?} {vm_fuel:?}\n  reference {reference:?} {reference_fuel:?}"
    );
    Ok(())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_vm_agrees_with_the_reference_evaluator(
        expr in expression(),
        a in value(),
        b in value(),
        fuel in fuel(),
    ) {
        check(&expr.to_string(), &vars(a, b), fuel)?;
    }

    #[test]
    fn compiled_code_always_verifies(expr in expression()) {
        let (parsed, diagnostics) = parse_expr(&expr.to_string());
        prop_assume!(diagnostics.is_empty());
        let mut pool = ConstPool::new();
        let code = compile_expr(&parsed, &mut pool, 3).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let verified = verify(&code, pool.constants());
        prop_assert!(verified.is_ok(), "{expr}: {:?}", verified.err());
        prop_assert!(code.spans.iter().all(|(_, s)| s.file == 3));
    }
}

/// Shapes the generator reaches only rarely, pinned down.
#[test]
fn corner_cases_agree() {
    let vars = vars(Value::Null, Value::list(vec![Value::Int(0), Value::Int(1)]));
    let cases = [
        "o.output.status == 'done'",
        "o?.zz?.a ?? 'none'",
        "o.x.zz",
        "o.x.y.zz",
        "i.a.b",
        "n.a.b.c",
        "[1, 2].map(x, [3, 4].map(y, x * y))",
        "l.map(x, l.map(x, x + 1))",
        "l.filter(x, x > 1).map(y, y * 2)",
        "b.all(x, 1 / x > 0)",
        "b.exists(x, 1 / x > 0)",
        "b.all(x, 1 / x > 0) || true",
        "b.all(x, 1 / x > 0) && false",
        "(1 / 0 == 1 && m.zz == 1) || (true && 'x')",
        "(1 / 0 == 1 || i.zz) && false",
        "l.exists(x, l.all(y, y / (x - 2) > 0))",
        "m.map(k, m[k] * 10)",
        "{'a': 1, 'b': [1, 2].map(x, x)}",
        "{'a': 1 / 0, 'a': 2}",
        "{'a': 1, 'a': 1 / 0}",
        "{[1]: 1 / 0}",
        "nosuch(1 / 0)",
        "false && nosuch()",
        "s.upper()",
        "upper()",
        "size(1, 2)",
        "l.has(x)",
        "l.has(x, 1 / 0)",
        "l.map(1, 1 / 0)",
        "i.map(x, x)",
        "has(o.x)",
        "has(o.x, 1)",
        "has(1 / 0)",
        "l.exists_one(x, x == 2)",
        "l.exists_one(x, 'x')",
        "l.map(x, x > 1, x)",
        "l.map(x, 'p', x)",
        "l.filter(x, x)",
        "true ? 1 : 1 / 0",
        "n ?? l.map(x, x)",
        "[[1], [2, 3]].map(x, x.size()).all(x, x > 0)",
        "a == null && b.size() == 2",
        "t.getFullYear() + dur.getMinutes()",
        "x",
        "l.map(x, x).size() + x",
    ];
    for text in cases {
        for fuel in [
            Fuel::default(),
            Fuel::new(5, 1 << 20),
            Fuel::new(12, 1 << 20),
            Fuel::new(1000, 100),
        ] {
            check(text, &vars, fuel).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}


