//! One expression through the parser, the type checker and the evaluator.
//! None may panic or hang (evaluation runs on a fuel budget), spans stay in
//! the text, and the checker is sound: an expression it accepts without a
//! diagnostic evaluates, if at all, to a value of the type it computed.

#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use donmai_compiler::eval::{Vars, evaluate};
use donmai_compiler::typeck::check_expr;
use donmai_grammar::expr::parse_expr;
use donmai_stdlib::types::{Field, ObjectType, Type};
use donmai_stdlib::value::{Fuel, MapKey, Value};
use libfuzzer_sys::fuzz_target;

fn object(fields: &[(&str, Type, bool)]) -> Type {
    Type::Object(Arc::new(ObjectType {
        fields: fields
            .iter()
            .map(|(name, ty, required)| {
                (
                    name.to_string(),
                    Field {
                        ty: ty.clone(),
                        required: *required,
                    },
                )
            })
            .collect(),
        closed: true,
    }))
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::map(
        entries
            .iter()
            .map(|(k, v)| (MapKey::from(*k), v.clone()))
            .collect(),
    )
}

/// Root names with their types and values (each value conforms to its type).
fn environment() -> (BTreeMap<String, Type>, Vars) {
    let nested = object(&[("c", Type::String, true)]);
    let roots = [
        ("i", Type::Int, Value::Int(3)),
        ("big", Type::Int, Value::Int(i64::MAX)),
        ("d", Type::Double, Value::Double(2.5)),
        ("s", Type::String, Value::from("héllo wörld")),
        ("b", Type::Bool, Value::Bool(true)),
        (
            "l",
            Type::list(Type::Int),
            Value::list(vec![Value::Int(1), Value::Int(-2), Value::Int(3)]),
        ),
        (
            "words",
            Type::list(Type::String),
            Value::list(vec![Value::from("a"), Value::from("bc")]),
        ),
        (
            "m",
            Type::map(Type::Int),
            map(&[("a", Value::Int(1)), ("b", Value::Int(2))]),
        ),
        ("n", Type::Int.optional(), Value::Null),
        ("ns", Type::String.optional(), Value::from("x")),
        (
            "o",
            object(&[
                ("a", Type::Int, true),
                ("b", Type::String, false),
                ("nested", nested, true),
            ]),
            map(&[
                ("a", Value::Int(7)),
                ("nested", map(&[("c", Value::from("deep"))])),
            ]),
        ),
        (
            "x",
            Type::Dyn,
            map(&[("k", Value::list(vec![Value::Null, Value::Double(f64::NAN)]))]),
        ),
        (
            "t",
            Type::Timestamp,
            Value::parse_timestamp("2024-02-29T12:00:00Z").unwrap_or(Value::Null),
        ),
        (
            "u",
            Type::Duration,
            Value::parse_duration("90s").unwrap_or(Value::Null),
        ),
        (
            "color",
            Type::enumeration(["red", "green"]),
            Value::from("red"),
        ),
    ];
    let mut types = BTreeMap::new();
    let mut vars = Vars::new();
    for (name, ty, value) in roots {
        assert!(value.conforms_to(&ty), "{name}");
        types.insert(name.to_string(), ty);
        vars.insert(name.to_string(), value);
    }
    (types, vars)
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (expr, parse_diagnostics) = parse_expr(&text);
    for diagnostic in &parse_diagnostics {
        let span = diagnostic.span;
        assert!(
            span.start <= span.end
                && span.end <= text.len()
                && text.is_char_boundary(span.start)
                && text.is_char_boundary(span.end),
            "{} span {span} does not slice the text",
            diagnostic.code
        );
    }
    let (types, vars) = environment();
    let (ty, type_diagnostics) = check_expr(&expr, &types);
    let mut fuel = Fuel::new(20_000, 1 << 20);
    let outcome = evaluate(&expr, &vars, &mut fuel);
    if parse_diagnostics.is_empty()
        && type_diagnostics.is_empty()
        && let Ok(value) = &outcome
    {
        assert!(
            value.conforms_to(&ty),
            "`{text}` has type {ty:?} but evaluated to {value:?}"
        );
    }
});
