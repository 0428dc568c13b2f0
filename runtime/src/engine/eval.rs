//! The one seam between the engine and expression evaluation.
//!
//! Everything the engine evaluates — step inputs, gate filter values, loop
//! `until` values, group interface outputs, idempotency keys — goes through
//! [`eval_template`], and every compiled expression through [`eval_expr`].
//! Constants, lists, maps and the text of interpolated strings are evaluated
//! here; compiled expressions are run by the bytecode VM, which is wired in
//! [`eval_expr`] and nowhere else.

use super::EngineError;
use crate::plan::model::{Constant, ExprIx, Plan, TemplatePart, ValueTemplate};
use donmai_stdlib::value::{MapEntries, MapKey, Value, format_duration, format_timestamp};

/// The roots an expression may read, for one evaluation. Until the VM is
/// wired into [`eval_expr`] nothing reads them outside tests.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Scope<'a> {
    pub plan: &'a Plan,
    /// `nodes`: the step ids of the level and their outputs, built only when
    /// an expression asks for it.
    pub nodes: &'a dyn Fn() -> Value,
    pub trigger: &'a Value,
    pub input: Option<&'a Value>,
    pub run: &'a Value,
    /// `step`: `{id}` of the step being evaluated, for idempotency keys.
    pub step: Option<&'a Value>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Scope<'_> {
    /// What the VM's environment answers for a root name.
    pub fn root(&self, name: &str) -> Option<Value> {
        match name {
            "nodes" => Some((self.nodes)()),
            "trigger" => Some(self.trigger.clone()),
            "input" => self.input.cloned(),
            "run" => Some(self.run.clone()),
            "step" => self.step.cloned(),
            _ => None,
        }
    }
}

pub(crate) fn constant(plan: &Plan, index: u32) -> Result<Value, EngineError> {
    let constant = plan
        .constants
        .get(index as usize)
        .ok_or_else(|| EngineError::Plan(format!("constant {index} is out of range")))?;
    Ok(match constant {
        Constant::Null => Value::Null,
        Constant::Bool(b) => Value::Bool(*b),
        Constant::Int(i) => Value::Int(*i),
        Constant::Double(bits) => Value::Double(f64::from_bits(*bits)),
        Constant::String(s) => Value::string(s.as_str()),
    })
}

pub(crate) fn eval_template(
    scope: &Scope<'_>,
    template: &ValueTemplate,
) -> Result<Value, EngineError> {
    match template {
        ValueTemplate::Const(index) => constant(scope.plan, *index),
        ValueTemplate::Expr(expr) => eval_expr(scope, *expr),
        ValueTemplate::Interpolate(parts) => {
            let mut text = String::new();
            for part in parts {
                match part {
                    TemplatePart::Text(literal) => text.push_str(literal),
                    TemplatePart::Expr(expr) => {
                        interpolate(&eval_expr(scope, *expr)?, &mut text);
                    }
                }
            }
            Ok(Value::string(text))
        }
        ValueTemplate::List(items) => Ok(Value::list(
            items
                .iter()
                .map(|item| eval_template(scope, item))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        ValueTemplate::Map(entries) => eval_map(scope, entries),
    }
}

/// A map template (step inputs, interface outputs): keys as written.
pub(crate) fn eval_map(
    scope: &Scope<'_>,
    entries: &[(String, ValueTemplate)],
) -> Result<Value, EngineError> {
    let mut map = MapEntries::new();
    for (key, value) in entries {
        map.insert(
            MapKey::String(key.as_str().into()),
            eval_template(scope, value)?,
        );
    }
    Ok(Value::map(map))
}

/// Runs one compiled expression. The VM is wired here at merge.
pub(crate) fn eval_expr(scope: &Scope<'_>, expr: ExprIx) -> Result<Value, EngineError> {
    if scope.plan.exprs.get(expr as usize).is_none() {
        return Err(EngineError::Plan(format!(
            "expression {expr} is out of range"
        )));
    }
    Err(EngineError::ExpressionNotWired { expr })
}

/// How a value reads inside a longer string: strings as their text, `null`
/// as nothing, timestamps in RFC 3339, durations as `1.5s`, everything else
/// as its canonical JSON.
pub(crate) fn interpolate(value: &Value, out: &mut String) {
    match value {
        Value::Null => {}
        Value::String(s) => out.push_str(s),
        Value::Timestamp(t) => out.push_str(&format_timestamp(*t)),
        Value::Duration(d) => out.push_str(&format_duration(*d)),
        other => out.push_str(&other.to_canonical_json()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::*;

    fn plan(constants: Vec<Constant>) -> Plan {
        Plan {
            header: Header {
                format_version: FORMAT_VERSION,
                api_version: "workflow/v2".into(),
                name: "t".into(),
                version: None,
                project: None,
                requires: vec![],
            },
            constants,
            verbs: vec![],
            exprs: vec![ExprCode {
                code: vec![],
                max_stack: 0,
                locals: 0,
                result_type: "int".into(),
                source: SourceRef::default(),
                spans: vec![],
            }],
            levels: vec![],
            sources: vec![],
        }
    }

    #[test]
    fn constants_lists_maps_and_text_evaluate() {
        let plan = plan(vec![
            Constant::String("a".into()),
            Constant::Double(2.5f64.to_bits()),
            Constant::Null,
        ]);
        let nodes = || Value::Null;
        let scope = Scope {
            plan: &plan,
            nodes: &nodes,
            trigger: &Value::Null,
            input: None,
            run: &Value::Null,
            step: None,
        };
        let template = ValueTemplate::Map(vec![
            ("k".into(), ValueTemplate::Const(0)),
            (
                "l".into(),
                ValueTemplate::List(vec![ValueTemplate::Const(1), ValueTemplate::Const(2)]),
            ),
            (
                "t".into(),
                ValueTemplate::Interpolate(vec![
                    TemplatePart::Text("x".into()),
                    TemplatePart::Text("y".into()),
                ]),
            ),
        ]);
        let value = eval_template(&scope, &template).unwrap();
        assert_eq!(
            value.to_json(),
            serde_json::json!({"k": "a", "l": [2.5, null], "t": "xy"})
        );
        assert_eq!(scope.root("trigger"), Some(Value::Null));
        assert_eq!(scope.root("nodes"), Some(Value::Null));
        assert_eq!(scope.root("input"), None);
        assert_eq!(scope.root("steps"), None);
        assert!(matches!(
            eval_template(&scope, &ValueTemplate::Expr(0)),
            Err(EngineError::ExpressionNotWired { expr: 0 })
        ));
        let part = ValueTemplate::Interpolate(vec![TemplatePart::Expr(0)]);
        assert!(eval_template(&scope, &part).is_err());
        assert!(matches!(
            eval_template(&scope, &ValueTemplate::Const(9)),
            Err(EngineError::Plan(_))
        ));
        assert!(matches!(
            eval_template(&scope, &ValueTemplate::Expr(9)),
            Err(EngineError::Plan(_))
        ));
    }

    #[test]
    fn interpolation_text() {
        let mut out = String::new();
        for value in [
            Value::Null,
            Value::string("s"),
            Value::Int(3),
            Value::Bool(true),
            Value::list(vec![Value::Int(1)]),
        ] {
            interpolate(&value, &mut out);
            out.push('|');
        }
        assert_eq!(out, "|s|3|true|[1]|");
    }
}
