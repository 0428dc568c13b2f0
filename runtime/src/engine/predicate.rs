//! The bounded predicate language of gate filters and loop `until`:
//! resolving a plan [`Predicate`]'s value templates into a stored
//! [`Filter`], and matching a filter against a subject (a signal's data, or
//! `{output: <last outputs>}` for a loop).
//!
//! Semantics of a leaf `{field, op, value}`: `field` is a dotted path into
//! the subject (map keys; a number indexes a list); a missing field reads as
//! `null`. `eq`/`neq` use CEL equality (`1 == 1.0`); `in` is membership in a
//! list (or a key of a map); `contains` is a substring of a string, an
//! element of a list or a key of a map; `prefix`/`suffix` compare strings;
//! `lt lte gt gte` order numbers (int and double together), strings,
//! timestamps and durations, and are false for anything else; `exists` holds
//! when the field is present and not `null`.
//!
//! A resolved filter is *empty* when it constrains nothing: every leaf
//! compares against a value that resolved to `null` (`exists` always
//! constrains). A leaf whose value resolved to `null` is otherwise kept and
//! compares with `null`, so a partly resolved filter never matches more
//! signals than written.

use super::EngineError;
use super::codec;
use super::eval::{Scope, eval_template};
use crate::plan::model::{Predicate, PredicateOp};
use donmai_stdlib::value::{MapKey, Value, compare_int_double};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Leaf {
        field: String,
        op: Op,
        #[serde(
            default,
            with = "codec::field::option",
            skip_serializing_if = "Option::is_none"
        )]
        value: Option<Value>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    Eq,
    Neq,
    In,
    Contains,
    Prefix,
    Suffix,
    Lt,
    Lte,
    Gt,
    Gte,
    Exists,
}

impl From<PredicateOp> for Op {
    fn from(op: PredicateOp) -> Op {
        match op {
            PredicateOp::Eq => Op::Eq,
            PredicateOp::Neq => Op::Neq,
            PredicateOp::In => Op::In,
            PredicateOp::Contains => Op::Contains,
            PredicateOp::Prefix => Op::Prefix,
            PredicateOp::Suffix => Op::Suffix,
            PredicateOp::Lt => Op::Lt,
            PredicateOp::Lte => Op::Lte,
            PredicateOp::Gt => Op::Gt,
            PredicateOp::Gte => Op::Gte,
            PredicateOp::Exists => Op::Exists,
        }
    }
}

/// The depth the predicate language allows (`depth ≤ 5`), with room to
/// spare; deeper input is refused rather than recursed into.
const MAX_DEPTH: usize = 16;

/// Evaluates the value templates of `predicate` in `scope`.
pub(crate) fn resolve(scope: &Scope<'_>, predicate: &Predicate) -> Result<Filter, EngineError> {
    resolve_at(scope, predicate, 0)
}

fn resolve_at(
    scope: &Scope<'_>,
    predicate: &Predicate,
    depth: usize,
) -> Result<Filter, EngineError> {
    if depth > MAX_DEPTH {
        return Err(EngineError::Plan(format!(
            "a predicate nests deeper than {MAX_DEPTH} levels"
        )));
    }
    let list = |items: &[Predicate]| {
        items
            .iter()
            .map(|item| resolve_at(scope, item, depth + 1))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match predicate {
        Predicate::All(items) => Filter::All(list(items)?),
        Predicate::Any(items) => Filter::Any(list(items)?),
        Predicate::Not(inner) => Filter::Not(Box::new(resolve_at(scope, inner, depth + 1)?)),
        Predicate::Leaf { field, op, value } => Filter::Leaf {
            field: field.clone(),
            op: Op::from(*op),
            // `null` is stored as no value: the same comparison, one form.
            value: value
                .as_ref()
                .map(|template| eval_template(scope, template))
                .transpose()?
                .filter(|value| !value.is_null()),
        },
    })
}

impl Filter {
    /// Whether the filter constrains nothing (see the module doc).
    pub fn is_empty(&self) -> bool {
        match self {
            Filter::All(items) | Filter::Any(items) => items.iter().all(Filter::is_empty),
            Filter::Not(inner) => inner.is_empty(),
            Filter::Leaf { op, value, .. } => {
                *op != Op::Exists && value.as_ref().is_none_or(Value::is_null)
            }
        }
    }

    pub fn matches(&self, subject: &Value) -> bool {
        match self {
            Filter::All(items) => items.iter().all(|item| item.matches(subject)),
            Filter::Any(items) => items.iter().any(|item| item.matches(subject)),
            Filter::Not(inner) => !inner.matches(subject),
            Filter::Leaf { field, op, value } => {
                let actual = lookup(subject, field);
                leaf(&actual, *op, value.as_ref().unwrap_or(&Value::Null))
            }
        }
    }
}

/// `subject.<path>`; `Null` where the path leads nowhere.
pub fn lookup(subject: &Value, path: &str) -> Value {
    let mut current = subject.clone();
    if path.is_empty() {
        return current;
    }
    for segment in path.split('.') {
        current = match &current {
            Value::Map(entries) => entries
                .get(&MapKey::from(segment))
                .cloned()
                .unwrap_or(Value::Null),
            Value::List(items) => segment
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).cloned())
                .unwrap_or(Value::Null),
            _ => Value::Null,
        };
    }
    current
}

fn leaf(actual: &Value, op: Op, expected: &Value) -> bool {
    match op {
        Op::Exists => !actual.is_null(),
        Op::Eq => actual == expected,
        Op::Neq => actual != expected,
        Op::In => match expected {
            Value::List(items) => items.iter().any(|item| item == actual),
            Value::Map(entries) => {
                MapKey::from_value(actual).is_some_and(|k| entries.contains_key(&k))
            }
            _ => false,
        },
        Op::Contains => match (actual, expected) {
            (Value::String(haystack), Value::String(needle)) => haystack.contains(needle.as_ref()),
            (Value::List(items), needle) => items.iter().any(|item| item == needle),
            (Value::Map(entries), key) => {
                MapKey::from_value(key).is_some_and(|k| entries.contains_key(&k))
            }
            _ => false,
        },
        Op::Prefix => match (actual, expected) {
            (Value::String(s), Value::String(p)) => s.starts_with(p.as_ref()),
            _ => false,
        },
        Op::Suffix => match (actual, expected) {
            (Value::String(s), Value::String(p)) => s.ends_with(p.as_ref()),
            _ => false,
        },
        Op::Lt => order(actual, expected) == Some(Ordering::Less),
        Op::Lte => matches!(
            order(actual, expected),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Op::Gt => order(actual, expected) == Some(Ordering::Greater),
        Op::Gte => matches!(
            order(actual, expected),
            Some(Ordering::Greater | Ordering::Equal)
        ),
    }
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Int(i), Value::Double(d)) => compare_int_double(*i, *d),
        (Value::Double(d), Value::Int(i)) => compare_int_double(*i, *d).map(Ordering::reverse),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Duration(x), Value::Duration(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(json: serde_json::Value) -> Value {
        Value::from_json(&json)
    }

    fn leaf_filter(field: &str, op: Op, value: serde_json::Value) -> Filter {
        Filter::Leaf {
            field: field.into(),
            op,
            value: Some(v(value)),
        }
    }

    #[test]
    fn leaves_follow_the_documented_semantics() {
        let subject = v(serde_json::json!({
            "run": {"sha": "abc123", "n": 3, "tags": ["a", "b"], "list": [{"x": 1}]},
            "none": null
        }));
        let cases = [
            ("run.sha", Op::Eq, serde_json::json!("abc123"), true),
            ("run.n", Op::Eq, serde_json::json!(3.0), true),
            ("run.n", Op::Neq, serde_json::json!(3), false),
            ("run.sha", Op::In, serde_json::json!(["x", "abc123"]), true),
            ("run.sha", Op::In, serde_json::json!({"abc123": 1}), true),
            ("run.sha", Op::Contains, serde_json::json!("c12"), true),
            ("run.tags", Op::Contains, serde_json::json!("b"), true),
            ("run.sha", Op::Prefix, serde_json::json!("abc"), true),
            ("run.sha", Op::Suffix, serde_json::json!("abc"), false),
            ("run.n", Op::Lt, serde_json::json!(3.5), true),
            ("run.n", Op::Gte, serde_json::json!(3), true),
            ("run.n", Op::Gt, serde_json::json!("3"), false),
            ("run.sha", Op::Lte, serde_json::json!("abd"), true),
            ("run.list.0.x", Op::Eq, serde_json::json!(1), true),
            ("run.missing", Op::Eq, serde_json::json!(null), true),
            ("run.sha", Op::Exists, serde_json::json!(null), true),
            ("none", Op::Exists, serde_json::json!(null), false),
            ("run.list.9", Op::Exists, serde_json::json!(null), false),
        ];
        for (field, op, value, expected) in cases {
            let filter = leaf_filter(field, op, value.clone());
            assert_eq!(filter.matches(&subject), expected, "{field} {op:?} {value}");
        }
        let all = Filter::All(vec![
            leaf_filter("run.n", Op::Eq, serde_json::json!(3)),
            Filter::Not(Box::new(leaf_filter(
                "run.sha",
                Op::Eq,
                serde_json::json!("x"),
            ))),
        ]);
        assert!(all.matches(&subject));
        assert!(!Filter::Any(vec![]).matches(&subject));
        assert!(Filter::All(vec![]).matches(&subject));
    }

    #[test]
    fn emptiness() {
        let null_leaf = Filter::Leaf {
            field: "a".into(),
            op: Op::Eq,
            value: None,
        };
        let real_leaf = leaf_filter("a", Op::Eq, serde_json::json!(1));
        assert!(null_leaf.is_empty());
        assert!(Filter::All(vec![null_leaf.clone(), null_leaf.clone()]).is_empty());
        assert!(!Filter::All(vec![null_leaf.clone(), real_leaf]).is_empty());
        assert!(leaf_filter("a", Op::Eq, serde_json::json!(null)).is_empty());
        let exists = Filter::Leaf {
            field: "a".into(),
            op: Op::Exists,
            value: None,
        };
        assert!(!exists.is_empty());
        let stored =
            serde_json::to_string(&Filter::Any(vec![exists.clone(), null_leaf.clone()])).unwrap();
        let back: Filter = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, Filter::Any(vec![exists, null_leaf]));
    }
}
