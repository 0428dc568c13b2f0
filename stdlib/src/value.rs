//! Run-time values of the expression language, evaluation errors and fuel.
//!
//! Values are immutable and cheap to clone: strings, lists and maps sit behind
//! `Arc`, so a macro that binds each element of a list to a variable never
//! copies the element. Objects of the type system are maps at run time.
//!
//! Timestamps are UTC instants with nanosecond precision in CEL's range
//! (years 0001 to 9999); durations are signed with nanosecond precision in
//! CEL's range (about ±10 000 years). Every constructor that can leave those
//! ranges checks them, so a `Value` built through this module is always valid.

use crate::types::Type;
use donmai_grammar::Span;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// The entries of a map value, ordered by key so iteration, printing and
/// canonical JSON are deterministic.
pub type MapEntries = BTreeMap<MapKey, Value>;

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(Arc<str>),
    /// Always in UTC and within [`MIN_TIMESTAMP_SECONDS`]..=[`MAX_TIMESTAMP_SECONDS`].
    Timestamp(OffsetDateTime),
    /// Always within ±[`MAX_DURATION_SECONDS`] (plus a fraction).
    Duration(Duration),
    List(Arc<[Value]>),
    Map(Arc<MapEntries>),
}

/// A map key. CEL allows string, int and bool keys; JSON objects only give
/// string keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapKey {
    Bool(bool),
    Int(i64),
    String(Arc<str>),
}

/// `0001-01-01T00:00:00Z`.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// `9999-12-31T23:59:59Z` (a timestamp may carry a fraction beyond it).
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;
/// CEL's (and protobuf's) duration bound: 10 000 years of 365.25 days.
pub const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Short, stable kinds of evaluation errors. The message is for humans; tools
/// and tests match on these.
pub mod error_code {
    pub const OVERFLOW: &str = "overflow";
    pub const DIVISION_BY_ZERO: &str = "division_by_zero";
    pub const NO_SUCH_KEY: &str = "no_such_key";
    pub const NO_SUCH_OVERLOAD: &str = "no_such_overload";
    pub const INDEX_OUT_OF_RANGE: &str = "index_out_of_range";
    pub const INVALID_ARGUMENT: &str = "invalid_argument";
    pub const FUEL_EXHAUSTED: &str = "fuel_exhausted";
    pub const UNKNOWN_VARIABLE: &str = "unknown_variable";
    pub const UNKNOWN_FUNCTION: &str = "unknown_function";
    pub const REGEX: &str = "regex";
    pub const TOO_DEEP: &str = "too_deep";
    /// The expression still holds a parse error node.
    pub const SYNTAX: &str = "syntax";
}

/// Why an evaluation failed, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalError {
    /// One of [`error_code`].
    pub code: &'static str,
    pub message: String,
    pub span: Span,
}

impl EvalError {
    /// An error without a location yet; the evaluator places it with [`EvalError::at`].
    pub fn new(code: &'static str, message: impl Into<String>) -> EvalError {
        EvalError {
            code,
            message: message.into(),
            span: Span::default(),
        }
    }

    pub fn at(mut self, span: Span) -> EvalError {
        self.span = span;
        self
    }

    pub fn overflow(what: &str) -> EvalError {
        EvalError::new(error_code::OVERFLOW, format!("{what} overflows"))
    }

    pub fn invalid_argument(message: impl Into<String>) -> EvalError {
        EvalError::new(error_code::INVALID_ARGUMENT, message)
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for EvalError {}

/// The budget that makes evaluation total: every step and every allocated
/// byte is paid for, and running out is an error rather than a hang or an
/// out-of-memory abort. `bytes` counts allocation, not live memory: a value
/// built and dropped again still spent its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fuel {
    pub steps: u64,
    pub bytes: u64,
}

impl Default for Fuel {
    fn default() -> Fuel {
        Fuel {
            steps: 1_000_000,
            bytes: 64 * 1024 * 1024,
        }
    }
}

impl Fuel {
    pub fn new(steps: u64, bytes: u64) -> Fuel {
        Fuel { steps, bytes }
    }

    /// A budget that will not run out in practice; for tests and for
    /// comparing values outside an evaluation.
    pub fn unlimited() -> Fuel {
        Fuel {
            steps: u64::MAX,
            bytes: u64::MAX,
        }
    }

    pub fn step(&mut self) -> Result<(), EvalError> {
        self.consume_steps(1)
    }

    pub fn consume_steps(&mut self, steps: u64) -> Result<(), EvalError> {
        match self.steps.checked_sub(steps) {
            Some(left) => {
                self.steps = left;
                Ok(())
            }
            None => {
                self.steps = 0;
                Err(EvalError::new(
                    error_code::FUEL_EXHAUSTED,
                    "the evaluation ran out of steps",
                ))
            }
        }
    }

    /// Pays for `bytes` before they are allocated.
    pub fn allocate(&mut self, bytes: usize) -> Result<(), EvalError> {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        match self.bytes.checked_sub(bytes) {
            Some(left) => {
                self.bytes = left;
                Ok(())
            }
            None => {
                self.bytes = 0;
                Err(EvalError::new(
                    error_code::FUEL_EXHAUSTED,
                    "the evaluation ran out of memory budget",
                ))
            }
        }
    }

    /// Pays for a list of `len` values.
    pub fn allocate_list(&mut self, len: usize) -> Result<(), EvalError> {
        self.allocate(len.saturating_mul(std::mem::size_of::<Value>()))
    }

    /// Pays for a map of `len` entries (key, value and tree overhead).
    pub fn allocate_map(&mut self, len: usize) -> Result<(), EvalError> {
        let entry = std::mem::size_of::<Value>() + std::mem::size_of::<MapKey>() + 16;
        self.allocate(len.saturating_mul(entry))
    }
}

impl Value {
    pub fn string(text: impl Into<Arc<str>>) -> Value {
        Value::String(text.into())
    }

    pub fn list(items: impl Into<Arc<[Value]>>) -> Value {
        Value::List(items.into())
    }

    pub fn map(entries: MapEntries) -> Value {
        Value::Map(Arc::new(entries))
    }

    /// A timestamp from nanoseconds since the Unix epoch, checked against CEL's range.
    pub fn timestamp_from_unix_nanos(nanos: i128) -> Result<Value, EvalError> {
        let seconds = nanos.div_euclid(NANOS_PER_SECOND);
        if seconds < i128::from(MIN_TIMESTAMP_SECONDS)
            || seconds > i128::from(MAX_TIMESTAMP_SECONDS)
        {
            return Err(EvalError::overflow("the timestamp"));
        }
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map(Value::Timestamp)
            .map_err(|_| EvalError::overflow("the timestamp"))
    }

    /// A duration from nanoseconds, checked against CEL's range.
    pub fn duration_from_nanos(nanos: i128) -> Result<Value, EvalError> {
        let seconds = nanos / NANOS_PER_SECOND;
        if seconds.abs() > i128::from(MAX_DURATION_SECONDS) {
            return Err(EvalError::overflow("the duration"));
        }
        // In range by the check above, so the i64 seconds cannot overflow.
        Ok(Value::Duration(Duration::new(
            seconds as i64,
            (nanos % NANOS_PER_SECOND) as i32,
        )))
    }

    /// Parses an RFC 3339 timestamp (any offset; stored in UTC).
    pub fn parse_timestamp(text: &str) -> Result<Value, EvalError> {
        let parsed = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| {
                EvalError::invalid_argument(format!(
                    "`{}` is not an RFC 3339 timestamp: {e}",
                    truncate_for_message(text)
                ))
            })?;
        Value::timestamp_from_unix_nanos(parsed.unix_timestamp_nanos())
    }

    /// Parses a duration written as a sequence of decimal numbers with units,
    /// like Go and CEL: `"1h30m"`, `"1.5s"`, `"-2ms"`, `"100ns"`, `"0"`.
    /// Units: `h m s ms us µs ns`.
    pub fn parse_duration(text: &str) -> Result<Value, EvalError> {
        let invalid = || {
            EvalError::invalid_argument(format!(
                "`{}` is not a duration (like \"1h30m\", \"1.5s\" or \"-2ms\")",
                truncate_for_message(text)
            ))
        };
        let (negative, mut rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if rest == "0" {
            return Ok(Value::Duration(Duration::ZERO));
        }
        if rest.is_empty() {
            return Err(invalid());
        }
        // Nanoseconds; the range check below keeps it far from i128's limits,
        // as each term is capped before it is added.
        let mut total: i128 = 0;
        let limit = i128::from(MAX_DURATION_SECONDS + 1) * NANOS_PER_SECOND;
        while !rest.is_empty() {
            let digits_end = rest
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(rest.len());
            let number = &rest[..digits_end];
            rest = &rest[digits_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let unit_nanos: i128 = match unit {
                "h" => 3_600 * NANOS_PER_SECOND,
                "m" => 60 * NANOS_PER_SECOND,
                "s" => NANOS_PER_SECOND,
                "ms" => 1_000_000,
                "us" | "µs" | "μs" => 1_000,
                "ns" => 1,
                _ => return Err(invalid()),
            };
            let (whole, fraction) = match number.split_once('.') {
                Some((whole, fraction)) => (whole, fraction),
                None => (number, ""),
            };
            if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
                return Err(invalid());
            }
            let mut term: i128 = 0;
            for digit in whole.bytes() {
                term = term * 10 + i128::from(digit - b'0');
                if term.saturating_mul(unit_nanos) > limit {
                    return Err(EvalError::overflow("the duration"));
                }
            }
            term *= unit_nanos;
            // Digits past nanosecond precision are dropped, as Go does.
            let mut scale = unit_nanos;
            for digit in fraction.bytes() {
                scale /= 10;
                if scale == 0 {
                    break;
                }
                term += i128::from(digit - b'0') * scale;
            }
            total += term;
            if total > limit {
                return Err(EvalError::overflow("the duration"));
            }
        }
        Value::duration_from_nanos(if negative { -total } else { total })
    }

    /// The CEL name of the value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether the value is of static type `ty`. Objects are maps whose
    /// required fields are present; closed objects have no other keys. A
    /// map type asks for string keys.
    pub fn conforms_to(&self, ty: &Type) -> bool {
        match (ty, self) {
            (Type::Dyn, _) => true,
            (Type::Null, Value::Null) => true,
            (Type::Optional(_), Value::Null) => true,
            (Type::Optional(inner), value) => value.conforms_to(inner),
            (Type::Bool, Value::Bool(_))
            | (Type::Int, Value::Int(_))
            | (Type::Double, Value::Double(_))
            | (Type::String, Value::String(_))
            | (Type::Timestamp, Value::Timestamp(_))
            | (Type::Duration, Value::Duration(_)) => true,
            (Type::Enum(values), Value::String(s)) => values.iter().any(|v| **v == **s),
            (Type::List(item), Value::List(items)) => items.iter().all(|v| v.conforms_to(item)),
            (Type::Map(value_type), Value::Map(entries)) => entries
                .iter()
                .all(|(k, v)| matches!(k, MapKey::String(_)) && v.conforms_to(value_type)),
            (Type::Object(object), Value::Map(entries)) => {
                let fields_ok = object.fields.iter().all(|(name, field)| {
                    match entries.get(&MapKey::String(name.as_str().into())) {
                        Some(Value::Null) if !field.required => true,
                        Some(value) => value.conforms_to(&field.ty),
                        None => !field.required,
                    }
                });
                let keys_ok = entries.keys().all(|k| match k {
                    MapKey::String(name) => !object.closed || object.fields.contains_key(&**name),
                    _ => false,
                });
                fields_ok && keys_ok
            }
            _ => false,
        }
    }

    /// CEL equality, charging one step per compared node. Numbers compare by
    /// value across int and double (`1 == 1.0`), NaN equals nothing, values
    /// of different types are unequal, lists and maps compare deeply.
    pub fn equals_metered(&self, other: &Value, fuel: &mut Fuel) -> Result<bool, EvalError> {
        fuel.step()?;
        Ok(match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Double(a), Value::Double(b)) => a == b,
            (Value::Int(i), Value::Double(d)) | (Value::Double(d), Value::Int(i)) => {
                compare_int_double(*i, *d) == Some(std::cmp::Ordering::Equal)
            }
            (Value::String(a), Value::String(b)) => {
                fuel.consume_steps((a.len() / 64) as u64)?;
                a == b
            }
            (Value::Timestamp(a), Value::Timestamp(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                if a.len() != b.len() {
                    return Ok(false);
                }
                for (x, y) in a.iter().zip(b.iter()) {
                    if !x.equals_metered(y, fuel)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Value::Map(a), Value::Map(b)) => {
                if a.len() != b.len() {
                    return Ok(false);
                }
                for (key, x) in a.iter() {
                    match b.get(key) {
                        Some(y) if x.equals_metered(y, fuel)? => {}
                        _ => return Ok(false),
                    }
                }
                true
            }
            _ => false,
        })
    }

    /// Builds a value from JSON: integers that fit `i64` are ints, every other
    /// number is a double, objects are maps with string keys.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::string(s.as_str()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(entries) => Value::map(
                entries
                    .iter()
                    .map(|(k, v)| (MapKey::String(k.as_str().into()), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The JSON form: NaN and infinities become the strings `"NaN"`,
    /// `"Infinity"` and `"-Infinity"`, timestamps RFC 3339 strings, durations
    /// `"1.5s"` strings, int and bool map keys their decimal/`true` text.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Double(d) => match serde_json::Number::from_f64(*d) {
                Some(n) => serde_json::Value::Number(n),
                None => serde_json::Value::String(non_finite_name(*d).to_owned()),
            },
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Timestamp(t) => serde_json::Value::String(format_timestamp(*t)),
            Value::Duration(d) => serde_json::Value::String(format_duration(*d)),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Canonical JSON text: no whitespace, object keys sorted by their UTF-8
    /// bytes, numbers as in [`Value::to_json`] (an int prints without a
    /// fraction, a double always with one or an exponent). Used by `toJson`,
    /// `hash` and idempotency keys, so it must never change.
    pub fn to_canonical_json(&self) -> String {
        let mut out = String::new();
        write_canonical(&self.to_json(), &mut out);
        out
    }
}

/// Writes canonical JSON (no white space, object keys sorted by their
/// UTF-8 bytes) without relying on the key order of `serde_json::Map`,
/// which a feature flag elsewhere in a build could change. The one
/// canonical form of donmai: values, idempotency keys, manifest hashes.
pub fn write_canonical(json: &serde_json::Value, out: &mut String) {
    match json {
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(entries) => {
            let mut sorted: Vec<(&String, &serde_json::Value)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, value)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn non_finite_name(d: f64) -> &'static str {
    if d.is_nan() {
        "NaN"
    } else if d > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// `"…"`-shortened text for error messages, so a megabyte argument does not
/// become a megabyte message.
pub fn truncate_for_message(text: &str) -> String {
    const LIMIT: usize = 64;
    if text.len() <= LIMIT {
        return text.to_owned();
    }
    let mut end = LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// RFC 3339 in UTC with a `Z`; the fraction appears only when nonzero and
/// without trailing zeros: `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.25Z`.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    push_fraction(&mut out, t.nanosecond());
    out.push('Z');
    out
}

/// Protobuf/CEL style seconds with a fraction only when nonzero:
/// `"0s"`, `"1.5s"`, `"-2s"`, `"5400s"`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.whole_nanoseconds();
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    let seconds = magnitude / NANOS_PER_SECOND as u128;
    let fraction = (magnitude % NANOS_PER_SECOND as u128) as u32;
    let mut out = format!("{sign}{seconds}");
    push_fraction(&mut out, fraction);
    out.push('s');
    out
}

fn push_fraction(out: &mut String, nanos: u32) {
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// Compares an int and a double by their exact values; `None` for NaN.
pub fn compare_int_double(i: i64, d: f64) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering;
    if d.is_nan() {
        return None;
    }
    // 2^63 is exactly representable; every double at or above it exceeds i64::MAX.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if d < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    let whole = d.trunc();
    // In range by the checks above, so the cast is exact.
    let whole_int = whole as i64;
    match i.cmp(&whole_int) {
        Ordering::Equal => {
            let fraction = d - whole;
            Some(if fraction > 0.0 {
                Ordering::Less
            } else if fraction < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            })
        }
        other => Some(other),
    }
}

impl PartialEq for Value {
    /// CEL equality (see [`Value::equals_metered`]); note `Int(1) == Double(1.0)`.
    fn eq(&self, other: &Value) -> bool {
        self.equals_metered(other, &mut Fuel::unlimited())
            .unwrap_or(false)
    }
}

impl MapKey {
    /// The key a value stands for in `m[k]`, `k in m` and map literals.
    /// Doubles with an integral value find int keys, as heterogeneous
    /// equality would make them equal.
    pub fn from_value(value: &Value) -> Option<MapKey> {
        match value {
            Value::String(s) => Some(MapKey::String(s.clone())),
            Value::Int(i) => Some(MapKey::Int(*i)),
            Value::Bool(b) => Some(MapKey::Bool(*b)),
            Value::Double(d) if d.fract() == 0.0 => {
                let i = *d as i64;
                (compare_int_double(i, *d) == Some(std::cmp::Ordering::Equal))
                    .then_some(MapKey::Int(i))
            }
            _ => None,
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            MapKey::Bool(b) => Value::Bool(*b),
            MapKey::Int(i) => Value::Int(*i),
            MapKey::String(s) => Value::String(s.clone()),
        }
    }
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Bool(b) => write!(f, "{b}"),
            MapKey::Int(i) => write!(f, "{i}"),
            MapKey::String(s) => f.write_str(s),
        }
    }
}

impl From<&str> for MapKey {
    fn from(s: &str) -> MapKey {
        MapKey::String(s.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(d: f64) -> Value {
        Value::Double(d)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::string(s)
    }
}

impl fmt::Display for Value {
    /// The value as JSON text (see [`Value::to_json`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Field, ObjectType};
    use serde_json::json;

    fn duration(text: &str) -> String {
        match Value::parse_duration(text) {
            Ok(Value::Duration(d)) => format_duration(d),
            Ok(other) => panic!("not a duration: {other:?}"),
            Err(e) => format!("error: {}", e.code),
        }
    }

    #[test]
    fn durations_parse_like_go_and_print_like_protobuf() {
        assert_eq!(duration("1h30m"), "5400s");
        assert_eq!(duration("1.5s"), "1.5s");
        assert_eq!(duration("-2ms"), "-0.002s");
        assert_eq!(duration("100ns"), "0.0000001s");
        assert_eq!(duration("0"), "0s");
        assert_eq!(duration("0s"), "0s");
        assert_eq!(duration("-2s"), "-2s");
        assert_eq!(duration("1h1m1s1ms1us1ns"), "3661.001001001s");
        assert_eq!(duration(".5m"), "30s");
        assert_eq!(duration("1.0000000001s"), "1s");
        assert_eq!(duration("2562047h"), "9223369200s");
        for bad in [
            "", "-", "1", "1x", "h", "1.2.3s", ".s", "1s2", "--1s", "1 s",
        ] {
            assert_eq!(duration(bad), "error: invalid_argument", "{bad:?}");
        }
        assert_eq!(duration("87660000h"), "315576000000s");
        assert_eq!(duration("87660001h"), "error: overflow");
        assert_eq!(
            duration("99999999999999999999999999999h"),
            "error: overflow"
        );
    }

    #[test]
    fn timestamps_parse_rfc3339_and_print_utc() {
        let ts = |text: &str| match Value::parse_timestamp(text) {
            Ok(v) => v.to_json().as_str().map(str::to_owned).unwrap_or_default(),
            Err(e) => format!("error: {}", e.code),
        };
        assert_eq!(ts("2024-05-01T12:00:00Z"), "2024-05-01T12:00:00Z");
        assert_eq!(ts("2024-05-01T12:00:00.250Z"), "2024-05-01T12:00:00.25Z");
        assert_eq!(ts("2024-05-01T14:00:00+02:00"), "2024-05-01T12:00:00Z");
        assert_eq!(ts("0001-01-01T00:00:00Z"), "0001-01-01T00:00:00Z");
        assert_eq!(
            ts("9999-12-31T23:59:59.999999999Z"),
            "9999-12-31T23:59:59.999999999Z"
        );
        // In range locally, past year 9999 in UTC.
        assert_eq!(ts("9999-12-31T23:00:00-10:00"), "error: overflow");
        assert_eq!(ts("0001-01-01T00:00:00+01:00"), "error: overflow");
        assert_eq!(ts("yesterday"), "error: invalid_argument");
    }

    #[test]
    fn json_round_trip_keeps_int_and_double_apart() {
        let json = json!({"a": 1, "b": 1.0, "c": [true, null, "x"], "d": 18446744073709551615u64});
        let value = Value::from_json(&json);
        assert!(
            matches!(&value, Value::Map(m) if matches!(m.get(&MapKey::from("a")), Some(Value::Int(1))))
        );
        assert!(
            matches!(&value, Value::Map(m) if matches!(m.get(&MapKey::from("b")), Some(Value::Double(_))))
        );
        assert!(
            matches!(&value, Value::Map(m) if matches!(m.get(&MapKey::from("d")), Some(Value::Double(_))))
        );
        assert_eq!(value.to_json()["a"], json!(1));
        assert_eq!(value.to_json()["b"], json!(1.0));
        assert_ne!(json!(1), json!(1.0));
        assert_eq!(Value::Double(f64::NAN).to_json(), json!("NaN"));
        assert_eq!(Value::Double(f64::INFINITY).to_json(), json!("Infinity"));
        assert_eq!(
            Value::Double(f64::NEG_INFINITY).to_json(),
            json!("-Infinity")
        );
    }

    #[test]
    fn canonical_json_sorts_keys_and_stringifies_keys() {
        let mut entries = MapEntries::new();
        entries.insert(MapKey::from("b"), Value::Int(2));
        entries.insert(
            MapKey::from("a"),
            Value::list(vec![Value::Double(1.5), Value::Null]),
        );
        entries.insert(MapKey::Int(10), Value::Bool(true));
        entries.insert(MapKey::from("é"), Value::string("\"q\"\n"));
        assert_eq!(
            Value::map(entries).to_canonical_json(),
            r#"{"10":true,"a":[1.5,null],"b":2,"é":"\"q\"\n"}"#
        );
    }

    #[test]
    fn heterogeneous_equality() {
        assert_eq!(Value::Int(1), Value::Double(1.0));
        assert_ne!(Value::Int(1), Value::Double(1.5));
        assert_ne!(Value::Double(f64::NAN), Value::Double(f64::NAN));
        assert_ne!(
            Value::Int(i64::MAX),
            Value::Double(9_223_372_036_854_775_808.0)
        );
        assert_eq!(
            Value::Int(i64::MIN),
            Value::Double(-9_223_372_036_854_775_808.0)
        );
        assert_ne!(Value::Int(1), Value::string("1"));
        assert_eq!(
            Value::list(vec![Value::Int(1), Value::Null]),
            Value::list(vec![Value::Double(1.0), Value::Null])
        );
        assert_eq!(
            MapKey::from_value(&Value::Double(3.0)),
            Some(MapKey::Int(3))
        );
        assert_eq!(MapKey::from_value(&Value::Double(3.5)), None);
        assert_eq!(MapKey::from_value(&Value::Double(1e300)), None);
    }

    #[test]
    fn conformance_to_types() {
        let object = Type::Object(Arc::new(ObjectType {
            fields: [
                (
                    "a".to_owned(),
                    Field {
                        ty: Type::Int,
                        required: true,
                    },
                ),
                (
                    "b".to_owned(),
                    Field {
                        ty: Type::String,
                        required: false,
                    },
                ),
            ]
            .into_iter()
            .collect(),
            closed: true,
        }));
        let value = |j| Value::from_json(&j);
        assert!(value(json!({"a": 1})).conforms_to(&object));
        assert!(value(json!({"a": 1, "b": null})).conforms_to(&object));
        assert!(!value(json!({"a": 1, "c": 1})).conforms_to(&object));
        assert!(!value(json!({"b": "x"})).conforms_to(&object));
        assert!(value(json!([1, 2])).conforms_to(&Type::list(Type::Int)));
        assert!(!value(json!([1, 2.5])).conforms_to(&Type::list(Type::Int)));
        assert!(value(json!(null)).conforms_to(&Type::Int.optional()));
        assert!(value(json!("x")).conforms_to(&Type::enumeration(["x", "y"])));
        assert!(!value(json!("z")).conforms_to(&Type::enumeration(["x", "y"])));
    }

    #[test]
    fn fuel_runs_out_without_wrapping() {
        let mut fuel = Fuel::new(2, 10);
        assert!(fuel.step().is_ok());
        assert!(fuel.consume_steps(5).is_err());
        assert_eq!(fuel.steps, 0);
        assert!(fuel.allocate(11).is_err());
        assert!(Fuel::new(0, 1 << 40).allocate_list(usize::MAX).is_err());
    }
}
