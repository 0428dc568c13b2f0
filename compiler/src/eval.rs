//! The reference evaluator: a tree walker over the expression AST.
//!
//! It defines what an expression means; the VM of the runtime must agree with
//! it. Operators and functions come from the one builtin table
//! (`donmai_stdlib::builtins`); this module adds what is not a function of
//! evaluated operands: variables, field selection, `&& || ?? ?:`, `==`, and
//! the macros.
//!
//! Decisions beyond CEL, for the workflow language:
//! - Selecting a field of `null` (`a.f` with `a` null) or indexing `null`
//!   gives `null`, so the null of a skipped node's output propagates through
//!   a path (`nodes.x.output.summary`) and `??` can supply a default. The type
//!   checker mirrors this: selecting through `T?` gives `F?`.
//! - A map (or object) that lacks the selected key is an error
//!   (`no_such_key`); `a?.f` gives `null` instead.
//! - `a ?? b` gives `b` only when `a` is `null`; an error in `a` stays an
//!   error (a missing key is not silently defaulted: write `a?.f ?? b`).
//! - Fuel exhaustion is never absorbed by `&&`, `||`, `all` or `exists`.

use donmai_grammar::Span;
use donmai_grammar::expr::{BinaryOp, Expr, ExprKind, Name, UnaryOp};
use donmai_stdlib::builtins::{self, Builtin};
use donmai_stdlib::value::{EvalError, Fuel, MapEntries, MapKey, Value, error_code};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Values of the root identifiers (`nodes`, `trigger`, `input`, ...).
pub type Vars = BTreeMap<String, Value>;

/// Deepest AST nesting evaluated. The parser stops at 64; hand-built trees
/// are refused past this instead of risking the stack.
pub const MAX_DEPTH: usize = 128;

/// Evaluates `expr` with `vars` bound, spending `fuel`.
pub fn evaluate(expr: &Expr, vars: &Vars, fuel: &mut Fuel) -> Result<Value, EvalError> {
    Evaluator {
        vars,
        scope: Vec::new(),
        fuel,
    }
    .eval(expr, 0)
}

struct Evaluator<'a, 'f> {
    vars: &'a Vars,
    /// Macro variables, innermost last; they shadow roots.
    scope: Vec<(&'a str, Value)>,
    fuel: &'f mut Fuel,
}

fn no_such_overload(message: impl Into<String>, span: Span) -> EvalError {
    EvalError::new(error_code::NO_SUCH_OVERLOAD, message).at(span)
}

fn is_fuel_error(error: &EvalError) -> bool {
    error.code == error_code::FUEL_EXHAUSTED
}

/// Keys a map literal may use. Stricter than lookups: `{1.0: x}` is refused
/// rather than turned into an int key.
fn literal_key(value: &Value) -> Option<MapKey> {
    match value {
        Value::String(s) => Some(MapKey::String(s.clone())),
        Value::Int(i) => Some(MapKey::Int(*i)),
        Value::Bool(b) => Some(MapKey::Bool(*b)),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    All,
    Exists,
    ExistsOne,
}

impl<'a> Evaluator<'a, '_> {
    fn eval(&mut self, expr: &'a Expr, depth: usize) -> Result<Value, EvalError> {
        if depth > MAX_DEPTH {
            return Err(EvalError::new(
                error_code::TOO_DEEP,
                format!("the expression nests more than {MAX_DEPTH} levels deep"),
            )
            .at(expr.span));
        }
        self.fuel.step().map_err(|e| e.at(expr.span))?;
        let depth = depth + 1;
        match &expr.kind {
            ExprKind::Null => Ok(Value::Null),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Int(i) => Ok(Value::Int(*i)),
            ExprKind::Double(d) => Ok(Value::Double(*d)),
            ExprKind::String(s) => {
                self.fuel.allocate(s.len()).map_err(|e| e.at(expr.span))?;
                Ok(Value::string(s.as_str()))
            }
            ExprKind::List(items) => {
                self.fuel
                    .allocate_list(items.len())
                    .map_err(|e| e.at(expr.span))?;
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.eval(item, depth)?);
                }
                Ok(Value::list(values))
            }
            ExprKind::Map(entries) => self.eval_map(expr, entries, depth),
            ExprKind::Ident(name) => self.lookup(name),
            ExprKind::Select {
                operand,
                field,
                optional,
            } => {
                let value = self.eval(operand, depth)?;
                select(value, field, *optional)
            }
            ExprKind::Index { operand, index } => {
                let value = self.eval(operand, depth)?;
                let key = self.eval(index, depth)?;
                if value.is_null() {
                    return Ok(Value::Null);
                }
                self.call_builtin(builtins::index_operator(), &[value, key], expr.span)
            }
            ExprKind::Call {
                target,
                function,
                args,
            } => self.eval_call(expr, target.as_deref(), function, args, depth),
            ExprKind::Unary { op, operand } => {
                let value = self.eval(operand, depth)?;
                if *op == UnaryOp::Not && !matches!(value, Value::Bool(_)) {
                    return Err(no_such_overload(
                        format!("`!` needs a `bool`, not `{}`", value.type_name()),
                        expr.span,
                    ));
                }
                self.call_builtin(builtins::unary_operator(*op), &[value], expr.span)
            }
            ExprKind::Binary { op, lhs, rhs } => self.eval_binary(expr, *op, lhs, rhs, depth),
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => match self.eval(cond, depth)? {
                Value::Bool(true) => self.eval(then, depth),
                Value::Bool(false) => self.eval(otherwise, depth),
                other => Err(no_such_overload(
                    format!(
                        "the condition of `?:` must be a `bool`, not `{}`",
                        other.type_name()
                    ),
                    cond.span,
                )),
            },
            ExprKind::Error => Err(EvalError::new(
                error_code::SYNTAX,
                "the expression has a syntax error",
            )
            .at(expr.span)),
        }
    }

    fn call_builtin(
        &mut self,
        builtin: &Builtin,
        args: &[Value],
        span: Span,
    ) -> Result<Value, EvalError> {
        builtin.call(args, self.fuel).map_err(|e| e.at(span))
    }

    fn lookup(&self, name: &Name) -> Result<Value, EvalError> {
        if let Some((_, value)) = self.scope.iter().rev().find(|(n, _)| *n == name.text) {
            return Ok(value.clone());
        }
        self.vars.get(&name.text).cloned().ok_or_else(|| {
            EvalError::new(
                error_code::UNKNOWN_VARIABLE,
                format!("unknown variable `{}`", name.text),
            )
            .at(name.span)
        })
    }

    fn eval_map(
        &mut self,
        expr: &'a Expr,
        entries: &'a [(Expr, Expr)],
        depth: usize,
    ) -> Result<Value, EvalError> {
        self.fuel
            .allocate_map(entries.len())
            .map_err(|e| e.at(expr.span))?;
        let mut map = MapEntries::new();
        for (key_expr, value_expr) in entries {
            let key_value = self.eval(key_expr, depth)?;
            let key = literal_key(&key_value).ok_or_else(|| {
                EvalError::invalid_argument(format!(
                    "map keys must be `string`, `int` or `bool`, not `{}`",
                    key_value.type_name()
                ))
                .at(key_expr.span)
            })?;
            let value = self.eval(value_expr, depth)?;
            if map.contains_key(&key) {
                return Err(EvalError::invalid_argument(format!(
                    "the map has the key {} twice",
                    key_value
                ))
                .at(key_expr.span));
            }
            map.insert(key, value);
        }
        Ok(Value::map(map))
    }

    fn eval_binary(
        &mut self,
        expr: &'a Expr,
        op: BinaryOp,
        lhs: &'a Expr,
        rhs: &'a Expr,
        depth: usize,
    ) -> Result<Value, EvalError> {
        match op {
            BinaryOp::And | BinaryOp::Or => self.eval_logic(op, lhs, rhs, depth),
            BinaryOp::Coalesce => match self.eval(lhs, depth)? {
                Value::Null => self.eval(rhs, depth),
                value => Ok(value),
            },
            BinaryOp::Eq | BinaryOp::Ne => {
                let a = self.eval(lhs, depth)?;
                let b = self.eval(rhs, depth)?;
                let equal = a
                    .equals_metered(&b, self.fuel)
                    .map_err(|e| e.at(expr.span))?;
                Ok(Value::Bool(equal == (op == BinaryOp::Eq)))
            }
            _ => {
                let a = self.eval(lhs, depth)?;
                let b = self.eval(rhs, depth)?;
                match builtins::binary_operator(op) {
                    Some(builtin) => self.call_builtin(builtin, &[a, b], expr.span),
                    None => Err(no_such_overload(
                        format!("`{}` is not an operator on values", op.as_str()),
                        expr.span,
                    )),
                }
            }
        }
    }

    /// A logical operand: a bool, or the error it stands for (a non-bool is
    /// an error too, absorbed like any other).
    fn eval_condition(
        &mut self,
        expr: &'a Expr,
        depth: usize,
        what: &str,
    ) -> Result<bool, EvalError> {
        match self.eval(expr, depth)? {
            Value::Bool(b) => Ok(b),
            other => Err(no_such_overload(
                format!("{what} must be a `bool`, not `{}`", other.type_name()),
                expr.span,
            )),
        }
    }

    /// CEL's commutative `&&`/`||`: a deciding operand (`false` for `&&`,
    /// `true` for `||`) wins over an error on either side.
    fn eval_logic(
        &mut self,
        op: BinaryOp,
        lhs: &'a Expr,
        rhs: &'a Expr,
        depth: usize,
    ) -> Result<Value, EvalError> {
        let decisive = op == BinaryOp::Or;
        let what = format!("an operand of `{}`", op.as_str());
        let left = self.eval_condition(lhs, depth, &what);
        match &left {
            Ok(b) if *b == decisive => return Ok(Value::Bool(decisive)),
            Err(e) if is_fuel_error(e) => return Err(e.clone()),
            _ => {}
        }
        let right = self.eval_condition(rhs, depth, &what);
        match (left, right) {
            (_, Ok(b)) if b == decisive => Ok(Value::Bool(decisive)),
            (_, Err(e)) if is_fuel_error(&e) => Err(e),
            (Ok(_), Ok(_)) => Ok(Value::Bool(!decisive)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }

    fn eval_call(
        &mut self,
        expr: &'a Expr,
        target: Option<&'a Expr>,
        function: &'a Name,
        args: &'a [Expr],
        depth: usize,
    ) -> Result<Value, EvalError> {
        let name = function.text.as_str();
        match (target, name) {
            (None, "has") => return self.eval_has(expr, args, depth),
            (Some(target), _) if builtins::is_macro(name) => {
                return self.eval_macro(expr, target, function, args, depth);
            }
            _ => {}
        }
        let Some(builtin) = builtins::function(name) else {
            return Err(EvalError::new(
                error_code::UNKNOWN_FUNCTION,
                format!("unknown function `{name}`"),
            )
            .at(function.span));
        };
        if target.is_some() && !builtin.form.allows_method() {
            return Err(no_such_overload(
                format!("`{name}` is not a method: call it as `{name}(...)`"),
                function.span,
            ));
        }
        if target.is_none() && !builtin.form.allows_function() {
            return Err(no_such_overload(
                format!("`{name}` is a method: call it as `x.{name}(...)`"),
                function.span,
            ));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        if let Some(target) = target {
            values.push(self.eval(target, depth)?);
        }
        for arg in args {
            values.push(self.eval(arg, depth)?);
        }
        self.call_builtin(builtin, &values, expr.span)
    }

    fn eval_has(
        &mut self,
        expr: &'a Expr,
        args: &'a [Expr],
        depth: usize,
    ) -> Result<Value, EvalError> {
        let [arg] = args else {
            return Err(EvalError::invalid_argument(
                "`has` takes one field selection, like `has(a.b)`",
            )
            .at(expr.span));
        };
        let ExprKind::Select { operand, field, .. } = &arg.kind else {
            return Err(EvalError::invalid_argument(
                "`has` takes a field selection, like `has(a.b)`",
            )
            .at(arg.span));
        };
        match self.eval(operand, depth)? {
            Value::Map(entries) => Ok(Value::Bool(
                entries.contains_key(&MapKey::String(field.text.as_str().into())),
            )),
            Value::Null => Ok(Value::Bool(false)),
            other => Err(no_such_overload(
                format!("`has` needs a map or object, not `{}`", other.type_name()),
                operand.span,
            )),
        }
    }

    fn eval_macro(
        &mut self,
        expr: &'a Expr,
        target: &'a Expr,
        function: &'a Name,
        args: &'a [Expr],
        depth: usize,
    ) -> Result<Value, EvalError> {
        let name = function.text.as_str();
        let shape_error = || {
            let usage = match name {
                "map" => "`e.map(x, f)` or `e.map(x, p, f)`".to_owned(),
                "filter" => "`e.filter(x, p)`".to_owned(),
                other => format!("`e.{other}(x, p)`"),
            };
            EvalError::invalid_argument(format!(
                "`{name}` takes a variable name and expressions: {usage}"
            ))
            .at(expr.span)
        };
        let (variable, rest) = match args {
            [first, rest @ ..] => match &first.kind {
                ExprKind::Ident(variable) => (variable.text.as_str(), rest),
                _ => return Err(shape_error()),
            },
            [] => return Err(shape_error()),
        };
        // Sharing the list (not copying it) keeps a macro that stops early
        // from paying for the whole list.
        let items: Arc<[Value]> = match self.eval(target, depth)? {
            Value::List(items) => items,
            Value::Map(entries) => {
                self.fuel
                    .allocate_list(entries.len())
                    .map_err(|e| e.at(target.span))?;
                entries.keys().map(MapKey::to_value).collect()
            }
            other => {
                return Err(no_such_overload(
                    format!(
                        "`{name}` needs a list or a map, not `{}`",
                        other.type_name()
                    ),
                    target.span,
                ));
            }
        };
        match (name, rest) {
            ("all", [predicate]) => {
                self.quantify(Quantifier::All, variable, &items, predicate, depth)
            }
            ("exists", [predicate]) => {
                self.quantify(Quantifier::Exists, variable, &items, predicate, depth)
            }
            ("exists_one", [predicate]) => {
                self.quantify(Quantifier::ExistsOne, variable, &items, predicate, depth)
            }
            ("map", [transform]) => self.map_items(variable, &items, None, transform, depth),
            ("map", [predicate, transform]) => {
                self.map_items(variable, &items, Some(predicate), transform, depth)
            }
            ("filter", [predicate]) => {
                let mut kept = Vec::new();
                for item in items.iter() {
                    if self.with_variable(variable, item.clone(), |this| {
                        this.eval_condition(predicate, depth, "the predicate of `filter`")
                    })? {
                        kept.push(item.clone());
                    }
                }
                self.fuel
                    .allocate_list(kept.len())
                    .map_err(|e| e.at(expr.span))?;
                Ok(Value::list(kept))
            }
            _ => Err(shape_error()),
        }
    }

    /// Runs `body` with `variable` bound to `value`, unbinding it afterwards
    /// whatever the outcome.
    fn with_variable<R>(
        &mut self,
        variable: &'a str,
        value: Value,
        body: impl FnOnce(&mut Self) -> Result<R, EvalError>,
    ) -> Result<R, EvalError> {
        self.scope.push((variable, value));
        let result = body(self);
        self.scope.pop();
        result
    }

    fn quantify(
        &mut self,
        quantifier: Quantifier,
        variable: &'a str,
        items: &[Value],
        predicate: &'a Expr,
        depth: usize,
    ) -> Result<Value, EvalError> {
        let what = match quantifier {
            Quantifier::All => "the predicate of `all`",
            Quantifier::Exists => "the predicate of `exists`",
            Quantifier::ExistsOne => "the predicate of `exists_one`",
        };
        let mut first_error: Option<EvalError> = None;
        let mut count = 0usize;
        for item in items {
            let outcome = self.with_variable(variable, item.clone(), |this| {
                this.eval_condition(predicate, depth, what)
            });
            match (quantifier, outcome) {
                (_, Err(e)) if is_fuel_error(&e) => return Err(e),
                // exists_one has no deciding value, so errors are not absorbed.
                (Quantifier::ExistsOne, Err(e)) => return Err(e),
                (_, Err(e)) => {
                    first_error.get_or_insert(e);
                }
                (Quantifier::All, Ok(false)) => return Ok(Value::Bool(false)),
                (Quantifier::Exists, Ok(true)) => return Ok(Value::Bool(true)),
                (Quantifier::ExistsOne, Ok(true)) => count += 1,
                (_, Ok(_)) => {}
            }
        }
        match (first_error, quantifier) {
            (Some(error), _) => Err(error),
            (None, Quantifier::All) => Ok(Value::Bool(true)),
            (None, Quantifier::Exists) => Ok(Value::Bool(false)),
            (None, Quantifier::ExistsOne) => Ok(Value::Bool(count == 1)),
        }
    }

    fn map_items(
        &mut self,
        variable: &'a str,
        items: &[Value],
        predicate: Option<&'a Expr>,
        transform: &'a Expr,
        depth: usize,
    ) -> Result<Value, EvalError> {
        self.fuel
            .allocate_list(items.len())
            .map_err(|e| e.at(transform.span))?;
        let mut mapped = Vec::with_capacity(items.len());
        for item in items {
            let value = self.with_variable(variable, item.clone(), |this| {
                if let Some(predicate) = predicate
                    && !this.eval_condition(predicate, depth, "the predicate of `map`")?
                {
                    return Ok(None);
                }
                this.eval(transform, depth).map(Some)
            })?;
            mapped.extend(value);
        }
        Ok(Value::list(mapped))
    }
}

fn select(value: Value, field: &Name, optional: bool) -> Result<Value, EvalError> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::Map(entries) => match entries.get(&MapKey::String(field.text.as_str().into())) {
            Some(found) => Ok(found.clone()),
            None if optional => Ok(Value::Null),
            None => Err(builtins::no_such_key(&Value::string(field.text.as_str())).at(field.span)),
        },
        other => Err(no_such_overload(
            format!(
                "cannot select field `{}` of a `{}`",
                field.text,
                other.type_name()
            ),
            field.span,
        )),
    }
}

/// What `donmaic eval` prints: a value or an error, both as JSON. It runs
/// on the bytecode VM ([`crate::codegen::eval_text`]);
/// [`eval_text_reference`] is the same on this tree walker.
pub fn eval_text(text: &str, vars: &Vars) -> Result<Value, EvalError> {
    crate::codegen::eval_text(text, vars)
}

/// [`eval_text`] on the reference evaluator: the oracle the VM is tested
/// against.
pub fn eval_text_reference(text: &str, vars: &Vars) -> Result<Value, EvalError> {
    let (expr, diagnostics) = donmai_grammar::expr::parse_expr(text);
    if let Some(first) = diagnostics.first() {
        return Err(EvalError::new(error_code::SYNTAX, first.message.clone()).at(first.span));
    }
    let mut fuel = Fuel::default();
    evaluate(&expr, vars, &mut fuel)
}

/// Parses `--vars`: a JSON object of variables.
pub fn vars_from_json(text: &str) -> Result<Vars, String> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("--vars is not valid JSON: {e}"))?;
    let serde_json::Value::Object(object) = json else {
        return Err("--vars must be a JSON object, e.g. '{\"x\": 1}'".to_string());
    };
    Ok(object
        .iter()
        .map(|(name, value)| (name.clone(), Value::from_json(value)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: ExprKind) -> Expr {
        Expr::new(kind, Span::default())
    }

    fn name(text: &str) -> Name {
        Name {
            text: text.to_owned(),
            span: Span::default(),
        }
    }

    fn ident(text: &str) -> Expr {
        at(ExprKind::Ident(name(text)))
    }

    fn int(i: i64) -> Expr {
        at(ExprKind::Int(i))
    }

    fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
        at(ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    }

    fn method(target: Expr, function: &str, args: Vec<Expr>) -> Expr {
        at(ExprKind::Call {
            target: Some(Box::new(target)),
            function: name(function),
            args,
        })
    }

    fn run(expr: &Expr) -> Result<Value, EvalError> {
        evaluate(expr, &Vars::new(), &mut Fuel::default())
    }

    #[test]
    fn arithmetic_over_a_hand_built_tree() {
        let expr = binary(
            BinaryOp::Add,
            int(40),
            binary(BinaryOp::Mul, int(1), int(2)),
        );
        assert_eq!(run(&expr), Ok(Value::Int(42)));
        let overflow = binary(BinaryOp::Add, int(i64::MAX), int(1));
        assert_eq!(run(&overflow).unwrap_err().code, error_code::OVERFLOW);
    }

    #[test]
    fn macros_bind_their_variable() {
        let list = at(ExprKind::List(vec![int(1), int(2), int(3)]));
        let doubled = method(
            list,
            "map",
            vec![ident("x"), binary(BinaryOp::Mul, ident("x"), int(2))],
        );
        assert_eq!(
            run(&doubled).map(|v| v.to_json()),
            Ok(serde_json::json!([2, 4, 6]))
        );
        // The variable is unbound again afterwards.
        let leak = binary(BinaryOp::Add, doubled, at(ExprKind::List(vec![ident("x")])));
        assert_eq!(run(&leak).unwrap_err().code, error_code::UNKNOWN_VARIABLE);
    }

    /// The variables every conformance case sees.
    const FIXTURE: &str = r#"{
        "i": 7, "d": 2.5, "s": "hello", "l": [1, 2, 3], "m": {"a": 1, "b": 2},
        "n": null, "o": {"x": {"y": "z"}, "k": null}, "words": ["a", "b", "c"],
        "e": [], "big": 9223372036854775807, "neg": -9223372036854775808,
        "mixed": [1, "a", null]
    }"#;

    /// `(expression, expected)`: the expected value as JSON (compared
    /// exactly, so `1` and `1.0` differ), or `!code` for an error.
    const CASES: &[(&str, &str)] = &[
        // Integer arithmetic is checked.
        ("1 + 2", "3"),
        ("2 * 3 - 4", "2"),
        ("7 / 2", "3"),
        ("-7 / 2", "-3"),
        ("7 % 3", "1"),
        ("-7 % 3", "-1"),
        ("7 % -3", "1"),
        ("1 - 2", "-1"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("big + 1", "!overflow"),
        ("neg - 1", "!overflow"),
        ("big * 2", "!overflow"),
        ("-neg", "!overflow"),
        ("neg / -1", "!overflow"),
        ("neg % -1", "!overflow"),
        ("1 / 0", "!division_by_zero"),
        ("1 % 0", "!division_by_zero"),
        // Doubles are IEEE; no implicit mixing with ints.
        ("1.0 / 0.0", r#""Infinity""#),
        ("-1.0 / 0.0", r#""-Infinity""#),
        ("0.0 / 0.0", r#""NaN""#),
        ("2.5 * 2.0", "5.0"),
        ("d + 0.5", "3.0"),
        ("1 + 1.0", "!no_such_overload"),
        ("9.0 % 2.0", "!no_such_overload"),
        // Concatenation.
        ("'a' + 'b'", r#""ab""#),
        ("[1] + [2, 3]", "[1, 2, 3]"),
        ("e + e", "[]"),
        // Ordering, across int and double by value.
        ("1 < 2", "true"),
        ("2 <= 2", "true"),
        ("'abc' < 'abd'", "true"),
        ("'Z' < 'a'", "true"),
        ("false < true", "true"),
        ("1 < 1.5", "true"),
        ("2.0 > 1", "true"),
        ("1 <= 1.0", "true"),
        ("big < 9223372036854775807.0", "true"),
        ("0.0 / 0.0 < 1.0", "false"),
        ("0.0 / 0.0 >= 1.0", "false"),
        ("1 < 'a'", "!no_such_overload"),
        ("[1] < [2]", "!no_such_overload"),
        ("null < 1", "!no_such_overload"),
        // Heterogeneous, deep equality.
        ("1 == 1.0", "true"),
        ("1 != 1.0", "false"),
        ("1 == 1.5", "false"),
        ("1 == 'a'", "false"),
        ("null == null", "true"),
        ("n == null", "true"),
        ("l == null", "false"),
        ("[1, 2] == [1.0, 2.0]", "true"),
        ("[1] == [1, 2]", "false"),
        ("{'a': 1} == {'a': 1.0}", "true"),
        ("{'a': 1} == {'b': 1}", "false"),
        ("m == {'b': 2, 'a': 1}", "true"),
        ("0.0 / 0.0 == 0.0 / 0.0", "false"),
        // Membership.
        ("2 in l", "true"),
        ("5 in l", "false"),
        ("2.0 in l", "true"),
        ("'a' in m", "true"),
        ("'z' in m", "false"),
        ("1 in {1: 'x'}", "true"),
        ("'a' in words", "true"),
        ("'a' in 'abc'", "!no_such_overload"),
        // && and || absorb errors when the other side decides.
        ("true && false", "false"),
        ("true || false", "true"),
        ("!true", "false"),
        ("false && 1 / 0 == 1", "false"),
        ("1 / 0 == 1 && false", "false"),
        ("true || 1 / 0 == 1", "true"),
        ("1 / 0 == 1 || true", "true"),
        ("1 / 0 == 1 && true", "!division_by_zero"),
        ("true && 1 / 0 == 1", "!division_by_zero"),
        ("1 / 0 == 1 || false", "!division_by_zero"),
        ("false || 1 / 0 == 1", "!division_by_zero"),
        ("1 / 0 == 1 && m.zz == 1", "!division_by_zero"),
        ("1 && false", "false"),
        ("false && 1", "false"),
        ("true && 'x'", "!no_such_overload"),
        ("1 || false", "!no_such_overload"),
        ("!1", "!no_such_overload"),
        // The conditional needs a bool and evaluates one branch.
        ("true ? 1 : 2", "1"),
        ("i > 5 ? 'big' : 'small'", r#""big""#),
        ("false ? 1 / 0 : 2", "2"),
        ("1 ? 2 : 3", "!no_such_overload"),
        ("n ? 2 : 3", "!no_such_overload"),
        // Selection: a missing key is an error, `?.` and null propagate null.
        ("m.a", "1"),
        ("m.zz", "!no_such_key"),
        ("m?.zz", "null"),
        ("o.x.y", r#""z""#),
        ("o.k", "null"),
        ("o.k.y", "null"),
        ("n.f", "null"),
        ("n?.f", "null"),
        ("o?.q?.r", "null"),
        ("o?.q.r", "null"),
        ("i.f", "!no_such_overload"),
        ("i?.f", "!no_such_overload"),
        ("{'k': 1}.k", "1"),
        ("unknown", "!unknown_variable"),
        // Indexing.
        ("l[0]", "1"),
        ("l[2]", "3"),
        ("l[3]", "!index_out_of_range"),
        ("l[-1]", "!index_out_of_range"),
        ("l['a']", "!no_such_overload"),
        ("l[1.0]", "!no_such_overload"),
        ("m['b']", "2"),
        ("m['zz']", "!no_such_key"),
        ("n[0]", "null"),
        ("{1: 'one'}[1]", r#""one""#),
        ("{true: 'y'}[true]", r#""y""#),
        ("mixed[1]", r#""a""#),
        ("i[0]", "!no_such_overload"),
        // Map literals.
        ("{'a': 1, 'a': 2}", "!invalid_argument"),
        ("{1.5: 1}", "!invalid_argument"),
        ("{null: 1}", "!invalid_argument"),
        // Null-coalescing and default.
        ("n ?? 5", "5"),
        ("i ?? 5", "7"),
        ("o.k ?? 'd'", r#""d""#),
        ("n.a.b ?? 'x'", r#""x""#),
        ("m.zz ?? 1", "!no_such_key"),
        ("m?.zz ?? 1", "1"),
        ("null ?? null", "null"),
        ("false ?? true", "false"),
        ("n ?? 1 / 0", "!division_by_zero"),
        ("i ?? 1 / 0", "7"),
        ("default(n, 3)", "3"),
        ("default(i, 3)", "7"),
        // has().
        ("has(m.a)", "true"),
        ("has(m.zz)", "false"),
        ("has(o.k)", "true"),
        ("has(n.x)", "false"),
        ("has(o.x.y)", "true"),
        ("has(i.x)", "!no_such_overload"),
        ("has(1)", "!invalid_argument"),
        // Sizes.
        ("size('héllo')", "5"),
        ("'héllo'.size()", "5"),
        ("size(l)", "3"),
        ("l.size()", "3"),
        ("size(m)", "2"),
        ("size(e)", "0"),
        ("size(1)", "!no_such_overload"),
        ("size(n)", "!no_such_overload"),
        // String functions, as functions and as methods.
        ("s.contains('ell')", "true"),
        ("contains(s, 'z')", "false"),
        ("s.startsWith('he')", "true"),
        ("s.endsWith('lo')", "true"),
        ("s.endsWith('')", "true"),
        ("s.matches('^h.*o$')", "true"),
        ("'abc'.matches('b')", "true"),
        ("matches('x', 'X')", "false"),
        ("'abc'.matches('[')", "!regex"),
        ("upper('abc')", r#""ABC""#),
        ("'ÀB'.lower()", r#""àb""#),
        ("trim('  x y \\n')", r#""x y""#),
        ("'a-b-c'.split('-')", r#"["a", "b", "c"]"#),
        ("split('abc', '')", r#"["a", "b", "c"]"#),
        ("split('a,b,c', ',', 2)", r#"["a", "b,c"]"#),
        ("split('abc', '', 2)", r#"["a", "bc"]"#),
        ("split('a,b', ',', 0)", "[]"),
        ("split('a,b', ',', -1)", r#"["a", "b"]"#),
        ("split('', ',')", r#"[""]"#),
        ("words.join('+')", r#""a+b+c""#),
        ("join(words)", r#""abc""#),
        ("e.join(',')", r#""""#),
        ("mixed.join(',')", "!no_such_overload"),
        ("replace('aaa', 'a', 'bb')", r#""bbbbbb""#),
        ("'hello'.replace('l', '')", r#""heo""#),
        ("'ab'.replace('', '-')", r#""-a-b-""#),
        ("substring('hello', 1, 3)", r#""el""#),
        ("'héllo'.substring(1)", r#""éllo""#),
        ("substring('abc', 3)", r#""""#),
        ("substring('abc', 4)", "!index_out_of_range"),
        ("substring('abc', -1)", "!index_out_of_range"),
        ("substring('abc', 2, 1)", "!invalid_argument"),
        // Conversions.
        ("int(3.9)", "3"),
        ("int(-3.9)", "-3"),
        ("int('42')", "42"),
        ("int('-42')", "-42"),
        ("int('4.2')", "!invalid_argument"),
        ("int(1e19)", "!overflow"),
        ("int(0.0 / 0.0)", "!overflow"),
        ("int(-9223372036854775808.0)", "-9223372036854775808"),
        ("int(9223372036854775807.0)", "!overflow"),
        ("int(timestamp('1970-01-01T00:01:00Z'))", "60"),
        ("double(1)", "1.0"),
        ("double('2.5')", "2.5"),
        ("double('x')", "!invalid_argument"),
        ("string(1)", r#""1""#),
        ("string(-0.5)", r#""-0.5""#),
        ("string(1.0)", r#""1""#),
        ("string(1e6)", r#""1e+06""#),
        ("string(true)", r#""true""#),
        ("string('x')", r#""x""#),
        ("string(duration('90m'))", r#""5400s""#),
        (
            "string(timestamp('2024-05-01T12:00:00.500Z'))",
            r#""2024-05-01T12:00:00.5Z""#,
        ),
        ("string(null)", "!no_such_overload"),
        ("string([1])", "!no_such_overload"),
        ("bool('true')", "true"),
        ("bool('f')", "false"),
        ("bool('yes')", "!invalid_argument"),
        ("timestamp(0)", r#""1970-01-01T00:00:00Z""#),
        ("timestamp('bad')", "!invalid_argument"),
        ("duration('1x')", "!invalid_argument"),
        // Timestamps and durations.
        (
            "timestamp('2024-01-31T00:00:00Z') + duration('24h')",
            r#""2024-02-01T00:00:00Z""#,
        ),
        (
            "duration('1h') + timestamp('2024-01-01T00:00:00Z')",
            r#""2024-01-01T01:00:00Z""#,
        ),
        (
            "timestamp('2024-01-01T00:00:00Z') - duration('1.5s')",
            r#""2023-12-31T23:59:58.5Z""#,
        ),
        (
            "timestamp('2024-01-02T00:00:00Z') - timestamp('2024-01-01T00:00:00Z')",
            r#""86400s""#,
        ),
        (
            "timestamp('2024-01-01T00:00:00Z') - timestamp('2024-01-01T00:00:00.25Z')",
            r#""-0.25s""#,
        ),
        ("duration('1h30m') + duration('30m')", r#""7200s""#),
        ("duration('1s') - duration('1500ms')", r#""-0.5s""#),
        ("-duration('2s')", r#""-2s""#),
        ("duration('0')", r#""0s""#),
        (
            "timestamp('9999-12-31T23:59:59Z') + duration('1s')",
            "!overflow",
        ),
        (
            "timestamp('0001-01-01T00:00:00Z') - duration('1ns')",
            "!overflow",
        ),
        ("duration('87660000h') + duration('1h')", "!overflow"),
        ("timestamp('2024-01-01T00:00:00Z') + 1", "!no_such_overload"),
        (
            "timestamp('2024-01-01T00:00:00Z') == timestamp('2024-01-01T01:00:00+01:00')",
            "true",
        ),
        (
            "timestamp('2024-03-05T06:07:08.009Z').getFullYear()",
            "2024",
        ),
        ("timestamp('2024-03-05T06:07:08.009Z').getMonth()", "2"),
        ("timestamp('2024-03-05T06:07:08.009Z').getDayOfMonth()", "4"),
        ("timestamp('2024-03-05T06:07:08.009Z').getDate()", "5"),
        ("timestamp('2024-03-05T06:07:08.009Z').getDayOfWeek()", "2"),
        ("timestamp('2024-03-05T06:07:08.009Z').getDayOfYear()", "64"),
        ("timestamp('2024-03-05T06:07:08.009Z').getHours()", "6"),
        ("timestamp('2024-03-05T06:07:08.009Z').getMinutes()", "7"),
        ("timestamp('2024-03-05T06:07:08.009Z').getSeconds()", "8"),
        (
            "timestamp('2024-03-05T06:07:08.009Z').getMilliseconds()",
            "9",
        ),
        ("duration('1h30m').getHours()", "1"),
        ("duration('1h30m').getMinutes()", "90"),
        ("duration('1h30m').getSeconds()", "5400"),
        ("duration('1.5s').getMilliseconds()", "1500"),
        ("duration('-1.5s').getSeconds()", "-1"),
        ("getHours(duration('1h'))", "!no_such_overload"),
        ("s.int()", "!no_such_overload"),
        // Macros.
        ("l.all(x, x > 0)", "true"),
        ("l.all(x, x > 1)", "false"),
        ("l.exists(x, x == 2)", "true"),
        ("l.exists(x, x == 9)", "false"),
        ("l.exists_one(x, x > 1)", "false"),
        ("l.exists_one(x, x > 2)", "true"),
        ("l.map(x, x * 2)", "[2, 4, 6]"),
        ("l.map(x, x > 1, x * 10)", "[20, 30]"),
        ("l.filter(x, x % 2 == 1)", "[1, 3]"),
        ("m.map(k, k)", r#"["a", "b"]"#),
        ("m.filter(k, m[k] > 1)", r#"["b"]"#),
        ("m.all(k, k.size() == 1)", "true"),
        ("e.all(x, false)", "true"),
        ("e.exists(x, true)", "false"),
        ("[0, 1].all(x, 1 / x > 0)", "!division_by_zero"),
        ("[0, 1].exists(x, 1 / x > 0)", "true"),
        ("[0, 1].all(x, 1 / x < 0)", "false"),
        ("[0, 1].exists_one(x, 1 / x > 0)", "!division_by_zero"),
        ("[1, 2].map(x, 1 / (x - 1))", "!division_by_zero"),
        ("l.all(x, x)", "!no_such_overload"),
        ("i.all(x, true)", "!no_such_overload"),
        ("n.map(x, x)", "!no_such_overload"),
        (
            "l.map(x, l.map(y, x * y))",
            "[[1, 2, 3], [2, 4, 6], [3, 6, 9]]",
        ),
        ("l.map(l, l + 1)", "[2, 3, 4]"),
        ("l.map(1, 2)", "!invalid_argument"),
        ("l.map(x)", "!invalid_argument"),
        ("[[1, 2], [3]].map(x, x.size())", "[2, 1]"),
        // JSON and hashing.
        (
            "toJson({'b': 1, 'a': [true, null, 1.5]})",
            r#""{\"a\":[true,null,1.5],\"b\":1}""#,
        ),
        ("toJson(1.0)", r#""1.0""#),
        ("toJson(0.0 / 0.0)", r#""\"NaN\"""#),
        (
            "toJson(timestamp('2024-01-01T00:00:00Z'))",
            r#""\"2024-01-01T00:00:00Z\"""#,
        ),
        ("toJson({1: 'a'})", r#""{\"1\":\"a\"}""#),
        (r#"fromJson('{"a": [1, 2.5]}').a[1]"#, "2.5"),
        (r#"fromJson('{"a": [1, 2.5]}').a[0]"#, "1"),
        ("fromJson('[1')", "!invalid_argument"),
        (
            "sha256('abc')",
            r#""ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#,
        ),
        (
            "sha256('')",
            r#""e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855""#,
        ),
        ("hash('a', 1) == sha256(toJson(['a', 1]))", "true"),
        ("hash(m) == hash({'b': 2, 'a': 1})", "true"),
        ("hash(1) == hash(1.0)", "false"),
        // Unknown functions.
        ("nosuch(1)", "!unknown_function"),
    ];

    fn fixture() -> Vars {
        let json: serde_json::Value = match serde_json::from_str(FIXTURE) {
            Ok(json) => json,
            Err(e) => panic!("bad fixture: {e}"),
        };
        match Value::from_json(&json) {
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            other => panic!("fixture is not an object: {other:?}"),
        }
    }

    fn parse(text: &str) -> Expr {
        let (expr, diagnostics) = donmai_grammar::expr::parse_expr(text);
        assert!(diagnostics.is_empty(), "{text}: {diagnostics:?}");
        expr
    }

    #[test]
    fn conformance() {
        let vars = fixture();
        let mut failures = Vec::new();
        for (text, expected) in CASES {
            let expr = parse(text);
            let outcome = evaluate(&expr, &vars, &mut Fuel::default());
            let ok = match (expected.strip_prefix('!'), &outcome) {
                (Some(code), Err(error)) => error.code == code,
                (None, Ok(value)) => serde_json::from_str::<serde_json::Value>(expected)
                    .is_ok_and(|want| want == value.to_json()),
                _ => false,
            };
            if !ok {
                let got = match &outcome {
                    Ok(value) => value.to_json().to_string(),
                    Err(error) => format!("!{} ({})", error.code, error.message),
                };
                failures.push(format!("{text}\n    want {expected}\n    got  {got}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Every case again on the bytecode VM (what `donmaic eval` runs): the
    /// same value, or the same error with the same message and span, and
    /// the same fuel left over, whatever the budget.
    #[test]
    fn conformance_on_the_vm() {
        let vars = fixture();
        let mut failures = Vec::new();
        for (text, _) in CASES {
            let expr = parse(text);
            for fuel in [Fuel::default(), Fuel::new(3, 1 << 20), Fuel::new(100, 64)] {
                let (mut vm_fuel, mut reference_fuel) = (fuel, fuel);
                let vm = crate::codegen::run_on_vm(&expr, &vars, &mut vm_fuel);
                let reference = evaluate(&expr, &vars, &mut reference_fuel);
                let same = match (&vm, &reference) {
                    (Ok(a), Ok(b)) => format!("{a:?}") == format!("{b:?}"),
                    (Err(a), Err(b)) if a.code == error_code::FUEL_EXHAUSTED => a.code == b.code,
                    (Err(a), Err(b)) => a == b,
                    _ => false,
                };
                if !same || vm_fuel != reference_fuel {
                    failures.push(format!(
                        "{text} with {fuel:?}\n    vm        {vm:?} {vm_fuel:?}\n    reference {reference:?} {reference_fuel:?}"
                    ));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn every_builtin_has_a_conformance_case() {
        for builtin in donmai_stdlib::builtins::BUILTINS {
            if builtin.form == donmai_stdlib::builtins::Form::Operator {
                continue;
            }
            let call = format!("{}(", builtin.name);
            assert!(
                CASES.iter().any(|(text, _)| text.contains(&call)),
                "no conformance case calls `{}`",
                builtin.name
            );
        }
    }

    #[test]
    fn errors_point_at_the_failing_node() {
        let text = "l.map(x, 10 / (x - 2))";
        let error = evaluate(&parse(text), &fixture(), &mut Fuel::default()).unwrap_err();
        assert_eq!(error.code, error_code::DIVISION_BY_ZERO);
        assert_eq!(&text[error.span.start..error.span.end], "10 / (x - 2)");
        let text = "m.a + m.zz";
        let error = evaluate(&parse(text), &fixture(), &mut Fuel::default()).unwrap_err();
        assert_eq!(&text[error.span.start..error.span.end], "zz");
    }

    #[test]
    fn explosive_expressions_run_out_of_fuel() {
        let mut vars = fixture();
        vars.insert(
            "r".to_owned(),
            Value::list((0..1000).map(Value::Int).collect::<Vec<_>>()),
        );
        // Doubling a string 40 times would need a terabyte.
        let doubling = format!("['ab']{}", ".map(x, x + x)".repeat(40));
        // A billion iterations.
        let nested = "r.map(a, r.map(b, r.map(c, a + b + c)))";
        let cases = [
            doubling.as_str(),
            nested,
            "r.all(a, r.all(b, r.all(c, true)))",
            "r.exists(a, r.exists(b, r.exists(c, false)))",
            // Exhaustion is never absorbed by a deciding operand.
            "r.all(a, r.all(b, r.all(c, true))) && false",
            "true || r.exists(a, r.exists(b, r.exists(c, false)))",
            "r.exists(a, r.all(b, r.all(c, true)) && false)",
            "r.map(a, r.map(b, toJson(r))).size()",
        ];
        for text in cases {
            let started = std::time::Instant::now();
            let outcome = evaluate(&parse(text), &vars, &mut Fuel::default());
            if text.starts_with("true ||") {
                // `true || ...` never evaluates the right side.
                assert_eq!(outcome, Ok(Value::Bool(true)));
                continue;
            }
            assert_eq!(
                outcome.map_err(|e| e.code),
                Err(error_code::FUEL_EXHAUSTED),
                "{text}"
            );
            assert!(
                started.elapsed().as_secs() < 20,
                "{text} took {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn the_deepest_accepted_tree_fits_a_thread_stack() {
        // 120 nested macros, each binding a variable: the worst recursion
        // per level the evaluator has, just under MAX_DEPTH.
        let mut body = ident("x");
        for _ in 0..120 {
            body = method(
                at(ExprKind::List(vec![int(1)])),
                "map",
                vec![ident("x"), body],
            );
        }
        let outcome = std::thread::Builder::new()
            // The default stack of a spawned thread. A debug build needs
            // about 10 KiB per macro level; a release build far less.
            .stack_size(2 << 20)
            .spawn(move || {
                let value = run(&body);
                let (_, diagnostics) = crate::typeck::check_expr(&body, &BTreeMap::new());
                (
                    value.map(|v| v.to_canonical_json().len()),
                    diagnostics.len(),
                )
            })
            .map(|handle| handle.join());
        match outcome {
            Ok(Ok((value, diagnostics))) => {
                assert_eq!(value, Ok(2 * 120 + 1));
                assert_eq!(diagnostics, 0);
            }
            _ => panic!("the evaluation thread failed"),
        }
    }

    #[test]
    fn deep_hand_built_trees_are_refused() {
        let mut expr = int(0);
        for _ in 0..(MAX_DEPTH + 10) {
            expr = at(ExprKind::Unary {
                op: UnaryOp::Neg,
                operand: Box::new(expr),
            });
        }
        assert_eq!(run(&expr).unwrap_err().code, error_code::TOO_DEEP);
    }
}
