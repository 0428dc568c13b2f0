//! The one seam between the engine and expression evaluation.
//!
//! Everything the engine evaluates — step inputs, gate filter values, loop
//! `until` values, group interface outputs, idempotency keys — goes through
//! [`eval_template`], and every compiled expression through [`eval_expr`].
//! Constants, lists, maps and the text of interpolated strings are evaluated
//! here; compiled expressions are run by the bytecode VM, which is wired in
//! [`eval_expr`] and nowhere else.

use super::{EngineError, PlanSources};
use crate::bytecode::Env;
use crate::plan::model::{Constant, ExprIx, Plan, TemplatePart, ValueTemplate};
use crate::verify::VerifiedPlan;
use donmai_stdlib::value::{Fuel, MapEntries, MapKey, Value, format_duration, format_timestamp};
use std::borrow::Cow;

/// The roots an expression may read, for one evaluation.
pub(crate) struct Scope<'a> {
    pub plan: &'a VerifiedPlan,
    /// For error positions.
    pub sources: &'a PlanSources,
    /// `nodes`: the step ids of the level and their outputs, built only when
    /// an expression first asks for it (and then kept current by the frame).
    pub nodes: &'a dyn Fn() -> &'a Value,
    pub trigger: &'a Value,
    pub input: Option<&'a Value>,
    pub run: &'a Value,
    /// `step`: `{id}` of the step being evaluated, for idempotency keys.
    pub step: Option<&'a Value>,
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

/// Runs one compiled expression on the VM, with the default fuel budget.
pub(crate) fn eval_expr(scope: &Scope<'_>, expr: ExprIx) -> Result<Value, EngineError> {
    let Some(code) = scope.plan.expr(expr) else {
        return Err(EngineError::Plan(format!(
            "expression {expr} is out of range"
        )));
    };
    let mut fuel = Fuel::default();
    code.run(scope, &mut fuel).map_err(|error| {
        let at = code.error_source(&error);
        EngineError::Expression {
            expr,
            line_col: scope.sources.line_col(at.file, at.start),
            file: scope
                .plan
                .sources
                .get(at.file as usize)
                .map_or_else(String::new, |s| s.path.clone()),
            start: at.start,
            end: at.end,
            code: error.code,
            message: error.message,
        }
    })
}

impl Env for Scope<'_> {
    fn root(&self, name: &str) -> Option<Cow<'_, Value>> {
        Some(match name {
            "nodes" => Cow::Borrowed((self.nodes)()),
            "trigger" => Cow::Borrowed(self.trigger),
            "input" => Cow::Borrowed(self.input?),
            "run" => Cow::Borrowed(self.run),
            "step" => Cow::Borrowed(self.step?),
            _ => return None,
        })
    }
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

    /// A one-step plan whose expression 0 is `constants[0]`.
    fn plan(constants: Vec<Constant>) -> VerifiedPlan {
        let mut code = Vec::new();
        crate::bytecode::Instruction::PushConst { index: 0 }.encode(1, &mut code);
        crate::bytecode::Instruction::Return.encode(0, &mut code);
        let plan = Plan {
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
                code,
                max_stack: 1,
                locals: 0,
                result_type: "string".into(),
                source: SourceRef::default(),
                spans: vec![],
            }],
            levels: vec![Level {
                name: "main".into(),
                inputs: vec![],
                outputs: vec![],
                triggers: vec![TriggerDef {
                    id: "go".into(),
                    kind: TriggerKind::Manual,
                    event_type: None,
                    schedule: None,
                    timezone: None,
                    fields: vec![],
                    source: SourceRef::default(),
                }],
                steps: vec![StepDef {
                    id: "go".into(),
                    kind: StepKind::Trigger { trigger: 0 },
                    inputs: vec![],
                    next: vec![],
                    branches: vec![],
                    default: None,
                    retry: None,
                    timeout_ms: None,
                    predecessors: vec![],
                    source: SourceRef::default(),
                }],
            }],
            sources: vec![SourceFileRef {
                path: "w.yaml".into(),
                sha256: [0; 32],
            }],
        };
        crate::verify::verify(plan).expect("the test plan verifies")
    }

    #[test]
    fn constants_lists_maps_and_text_evaluate() {
        let plan = plan(vec![
            Constant::String("a".into()),
            Constant::Double(2.5f64.to_bits()),
            Constant::Null,
        ]);
        let null = Value::Null;
        let nodes = || &null;
        let scope = Scope {
            plan: &plan,
            sources: &PlanSources::default(),
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
        let root = |name| Env::root(&scope, name).map(Cow::into_owned);
        assert_eq!(root("trigger"), Some(Value::Null));
        assert_eq!(root("nodes"), Some(Value::Null));
        assert_eq!(root("input"), None);
        assert_eq!(root("steps"), None);
        assert_eq!(
            eval_template(&scope, &ValueTemplate::Expr(0)).unwrap(),
            Value::string("a")
        );
        let part =
            ValueTemplate::Interpolate(vec![TemplatePart::Expr(0), TemplatePart::Text("!".into())]);
        assert_eq!(eval_template(&scope, &part).unwrap(), Value::string("a!"));
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
