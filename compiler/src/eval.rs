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
        let items: Vec<Value> = match self.eval(target, depth)? {
            Value::List(items) => items.to_vec(),
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
                for item in items {
                    if self.with_variable(variable, item.clone(), |this| {
                        this.eval_condition(predicate, depth, "the predicate of `filter`")
                    })? {
                        kept.push(item);
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
