//! JSON arguments (`--payload`, `--data`): text or `@FILE`, and the check of
//! a trigger's payload against the fields its trigger declares.
//!
//! The checker types `trigger.<field>` from those declarations, so a payload
//! that lacks a required field or gives it another type would only fail
//! later, at some step, as a skip or an expression error. It is refused up
//! front instead, naming the field. Declared `timestamp` and `duration`
//! fields are read from their JSON text into the typed values expressions
//! expect.

use donmai_grammar::ast::TypeSyntaxKind;
use donmai_grammar::lower::parse_type;
use donmai_runtime::plan::model::{Port, TriggerDef};
use donmai_stdlib::value::{MapKey, Value};
use std::io::Read;

/// Reads `JSON` or `@FILE` (`@-` for standard input) as JSON.
pub fn read_json(arg: &str, what: &str) -> Result<serde_json::Value, String> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read {what} from standard input: {e}"))?;
            (text, "standard input".to_string())
        }
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {what} from {path}: {e}"))?,
            path.to_string(),
        ),
        None => (arg.to_string(), format!("the {what}")),
    };
    serde_json::from_str(&text).map_err(|e| format!("{origin} is not valid JSON: {e}"))
}

/// The trigger step's output for `payload`, checked against the fields
/// `trigger` declares (manual inputs, agent.request fields). Triggers that
/// declare none (events, cron) take any JSON object.
pub fn trigger_payload(trigger: &TriggerDef, payload: &serde_json::Value) -> Result<Value, String> {
    let serde_json::Value::Object(fields) = payload else {
        return Err(format!(
            "the payload of trigger `{}` must be a JSON object, not {}",
            trigger.id,
            json_kind(payload)
        ));
    };
    let mut value = Value::from_json(payload);
    for port in &trigger.fields {
        let given = fields.get(&port.name).unwrap_or(&serde_json::Value::Null);
        // An optional field left out reads as null, as its type `T?` says;
        // absent, `trigger.<field>` would be an error instead.
        let typed = check_field(trigger, port, given)?
            .or_else(|| (!fields.contains_key(&port.name)).then_some(Value::Null));
        if let (Some(typed), Value::Map(entries)) = (typed, &mut value) {
            let mut updated = (**entries).clone();
            updated.insert(MapKey::from(port.name.as_str()), typed);
            value = Value::map(updated);
        }
    }
    Ok(value)
}

/// Checks one declared field; returns a replacement value when the JSON
/// text must become a typed value (timestamps, durations).
fn check_field(
    trigger: &TriggerDef,
    port: &Port,
    given: &serde_json::Value,
) -> Result<Option<Value>, String> {
    let Ok(ty) = parse_type(&port.ty) else {
        // The compiler accepted the declaration; a type it knows and this
        // check does not is left to the engine.
        return Ok(None);
    };
    let wrong = |expected: &str| {
        format!(
            "the payload field `{}` of trigger `{}` must be {expected} (declared `{}`), not {}",
            port.name,
            trigger.id,
            port.ty,
            json_kind(given)
        )
    };
    let (kind, optional) = match &ty.kind {
        TypeSyntaxKind::Optional(inner) => (&inner.kind, true),
        kind => (kind, port.optional),
    };
    if given.is_null() {
        return if optional {
            Ok(None)
        } else {
            Err(format!(
                "the payload lacks `{}` ({}), which trigger `{}` requires; pass it in --payload",
                port.name, port.ty, trigger.id
            ))
        };
    }
    match kind {
        TypeSyntaxKind::Named(name) => match name.as_str() {
            "string" if !given.is_string() => Err(wrong("a string")),
            "int" if !(given.is_i64() || given.is_u64() && given.as_i64().is_some()) => {
                Err(wrong("an integer"))
            }
            "double" if !given.is_number() => Err(wrong("a number")),
            "bool" if !given.is_boolean() => Err(wrong("true or false")),
            "timestamp" => match given.as_str().map(Value::parse_timestamp) {
                Some(Ok(value)) => Ok(Some(value)),
                _ => Err(wrong("an RFC 3339 timestamp string")),
            },
            "duration" => match given.as_str().map(Value::parse_duration) {
                Some(Ok(value)) => Ok(Some(value)),
                _ => Err(wrong("a duration string such as \"90s\" or \"1h30m\"")),
            },
            _ => Ok(None),
        },
        TypeSyntaxKind::List(_) if !given.is_array() => Err(wrong("a list")),
        TypeSyntaxKind::Map(_) if !given.is_object() => Err(wrong("an object")),
        _ => Ok(None),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_f64() => "a number",
        serde_json::Value::Number(_) => "an integer",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
