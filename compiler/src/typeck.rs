//! The static type checker of expressions.
//!
//! It computes the type of an expression from the types of its root
//! identifiers and reports what cannot work: unknown names and fields,
//! operators and functions without an overload for the operand types,
//! non-bool conditions, use of a possibly-null value where a value is needed.
//! Operator and function signatures come from the builtin table
//! (`donmai_stdlib::builtins`), the same one the evaluator dispatches on.
//!
//! It is sound with respect to [`crate::eval`]: when it reports no
//! diagnostic and the variables conform to their types, a value the
//! evaluator produces conforms to the type it computed (a property test
//! checks this). `dyn` is the top type: whatever touches it is `dyn` or
//! checked at run time.

use donmai_grammar::diagnostic::did_you_mean;
use donmai_grammar::expr::lexer::is_identifier;
use donmai_grammar::expr::{BinaryOp, Expr, ExprKind, Name, UnaryOp};
use donmai_grammar::{Code, Diagnostic, Span};
use donmai_stdlib::builtins::{self, Builtin, Form, Sig};
use donmai_stdlib::types::{ObjectType, Type};
use std::collections::{BTreeMap, HashMap};

/// The root identifiers an expression may use, with their types.
pub trait TypeEnv {
    fn root(&self, name: &str) -> Option<Type>;
    /// Every root name, for "did you mean" suggestions.
    fn roots(&self) -> Vec<String>;
}

impl TypeEnv for BTreeMap<String, Type> {
    fn root(&self, name: &str) -> Option<Type> {
        self.get(name).cloned()
    }

    fn roots(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

impl TypeEnv for HashMap<String, Type> {
    fn root(&self, name: &str) -> Option<Type> {
        self.get(name).cloned()
    }

    fn roots(&self) -> Vec<String> {
        let mut names: Vec<String> = self.keys().cloned().collect();
        names.sort();
        names
    }
}

/// Deepest nesting checked, matching the evaluator's bound.
pub const MAX_DEPTH: usize = crate::eval::MAX_DEPTH;

/// The type of `expr` and the problems found. Where a subexpression is
/// wrong its type is `dyn`, so one mistake is reported once.
pub fn check_expr(expr: &Expr, env: &dyn TypeEnv) -> (Type, Vec<Diagnostic>) {
    let mut checker = Checker {
        env,
        scope: Vec::new(),
        diagnostics: Vec::new(),
        too_deep_reported: false,
        recorded: None,
    };
    let ty = checker.check(expr, 0);
    (ty, checker.diagnostics)
}

/// [`check_expr`], also appending the span and type of every subexpression
/// it checked to `types` (innermost first), for the editor's hover.
pub fn check_expr_recording(
    expr: &Expr,
    env: &dyn TypeEnv,
    types: &mut Vec<(Span, Type)>,
) -> (Type, Vec<Diagnostic>) {
    let mut checker = Checker {
        env,
        scope: Vec::new(),
        diagnostics: Vec::new(),
        too_deep_reported: false,
        recorded: Some(types),
    };
    let ty = checker.check(expr, 0);
    (ty, checker.diagnostics)
}

/// Whether `builtin` can be called as a method on a receiver of type
/// `receiver`: the rule call checking applies, for completion.
pub fn method_accepts(builtin: &Builtin, receiver: &Type) -> bool {
    builtin.form.allows_method()
        && builtin.overloads.iter().any(|overload| {
            overload
                .param(0)
                .is_some_and(|sig| matches_sig(&sig, receiver, &mut None))
        })
}

/// The type a macro's variable takes over a receiver of type `target`
/// (list elements, map keys), or `None` when the receiver is neither.
pub fn macro_element(target: &Type) -> Option<Type> {
    match target.non_null() {
        Type::List(item) => Some((**item).clone()),
        Type::Map(_) | Type::Object(_) => Some(Type::String),
        Type::Dyn => Some(Type::Dyn),
        _ => None,
    }
}

struct Checker<'a> {
    env: &'a dyn TypeEnv,
    /// Macro variables, innermost last.
    scope: Vec<(String, Type)>,
    diagnostics: Vec<Diagnostic>,
    too_deep_reported: bool,
    /// Where subexpression types go when someone asked for them.
    recorded: Option<&'a mut Vec<(Span, Type)>>,
}

// ---------------------------------------------------------------------------
// Type algebra local to checking.

fn contains_dyn(ty: &Type) -> bool {
    match ty {
        Type::Dyn => true,
        Type::List(inner) | Type::Map(inner) | Type::Optional(inner) => contains_dyn(inner),
        Type::Object(object) => object.fields.values().any(|f| contains_dyn(&f.ty)),
        _ => false,
    }
}

/// The least common type of `a` and `b` if they are compatible, `None` if
/// they share nothing but `dyn` (`int` and `string`; also `int` and
/// `double`, which never mix implicitly). Unlike `Type::join`, `dyn` here is
/// strictly the top: `list<dyn>` with `list<int>` is `list<dyn>`, because a
/// `list<dyn>` may hold strings.
fn unify(a: &Type, b: &Type) -> Option<Type> {
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (Type::Dyn, _) | (_, Type::Dyn) => Some(Type::Dyn),
        (Type::Null, t) | (t, Type::Null) => Some(t.clone().optional()),
        (Type::Optional(x), t) | (t, Type::Optional(x)) => {
            unify(x, t.non_null()).map(Type::optional)
        }
        (Type::Enum(_), Type::Enum(_)) => Some(a.join(b)),
        (Type::Enum(_), Type::String) | (Type::String, Type::Enum(_)) => Some(Type::String),
        (Type::List(x), Type::List(y)) => unify(x, y).map(Type::list),
        (Type::Map(x), Type::Map(y)) => unify(x, y).map(Type::map),
        (Type::Object(_) | Type::Map(_), Type::Object(_) | Type::Map(_)) => {
            // Assignability treats a `dyn` field as fitting anything, so it
            // only proves a common type when the narrower side has none.
            if a.is_assignable_to(b) && !contains_dyn(a) {
                Some(b.clone())
            } else if b.is_assignable_to(a) && !contains_dyn(b) {
                Some(a.clone())
            } else {
                Some(Type::Dyn)
            }
        }
        _ => None,
    }
}

/// Where branches meet: the common type, or `dyn`.
fn lub(a: &Type, b: &Type) -> Type {
    unify(a, b).unwrap_or(Type::Dyn)
}

/// The type of any value of an object seen as a map.
fn object_value_type(object: &ObjectType) -> Type {
    let mut types = object.fields.values().map(|f| {
        if f.required {
            f.ty.clone()
        } else {
            f.ty.clone().optional()
        }
    });
    match types.next() {
        Some(first) => types.fold(first, |acc, t| lub(&acc, &t)),
        None => Type::Dyn,
    }
}

/// Whether values of `a` and `b` can ever be equal: same kind, numbers
/// across int and double, null with anything that may be null.
fn comparable(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Dyn, _) | (_, Type::Dyn) => true,
        (Type::Null, _) | (_, Type::Null) => true,
        (Type::Optional(x), y) | (y, Type::Optional(x)) => comparable(x, y.non_null()),
        (Type::Int | Type::Double, Type::Int | Type::Double) => true,
        (Type::List(x), Type::List(y)) => comparable(x, y),
        (Type::Map(x), Type::Map(y)) => comparable(x, y),
        _ => unify(a, b).is_some(),
    }
}

fn bind(binding: &mut Option<Type>, ty: &Type) -> bool {
    match binding {
        None => {
            *binding = Some(ty.clone());
            true
        }
        Some(bound) => match unify(bound, ty) {
            Some(unified) => {
                *binding = Some(unified);
                true
            }
            None => false,
        },
    }
}

/// Whether an argument of type `ty` fits parameter `sig`, binding `T`.
fn matches_sig(sig: &Sig, ty: &Type, binding: &mut Option<Type>) -> bool {
    match (sig, ty) {
        (Sig::Dyn, _) => true,
        (Sig::Param, t) => bind(binding, t),
        (Sig::Optional(_), Type::Null) => true,
        (Sig::Optional(inner), Type::Optional(t)) => matches_sig(inner, t, binding),
        (Sig::Optional(inner), t) => matches_sig(inner, t, binding),
        (Sig::List(inner), Type::List(t)) | (Sig::Map(inner), Type::Map(t)) => {
            matches_sig(inner, t, binding)
        }
        (Sig::Map(inner), Type::Object(object)) => {
            matches_sig(inner, &object_value_type(object), binding)
        }
        (Sig::List(inner) | Sig::Map(inner), Type::Dyn) => matches_sig(inner, &Type::Dyn, binding),
        (_, Type::Dyn) => true,
        (Sig::List(_) | Sig::Map(_), _) => false,
        (scalar, t) => t.is_assignable_to(&scalar.to_type(&Type::Dyn)),
    }
}

/// The result type of calling `builtin` with arguments of `types`, or `None`
/// when no overload fits. When several fit (through `dyn`) and disagree,
/// the result is `dyn`.
fn resolve(builtin: &Builtin, types: &[Type]) -> Option<Type> {
    let mut result: Option<Type> = None;
    for overload in builtin.overloads {
        if !overload.accepts_arity(types.len()) {
            continue;
        }
        let mut binding = None;
        let fits = types.iter().enumerate().all(|(i, ty)| {
            overload
                .param(i)
                .is_some_and(|sig| matches_sig(&sig, ty, &mut binding))
        });
        if fits {
            let ty = overload.result.to_type(&binding.unwrap_or(Type::Dyn));
            result = Some(match result {
                None => ty,
                Some(previous) if previous == ty => previous,
                Some(_) => Type::Dyn,
            });
        }
    }
    result
}

fn strip_optional(types: &[Type]) -> Vec<Type> {
    types
        .iter()
        .map(|t| match t {
            Type::Null => Type::Dyn,
            other => other.non_null().clone(),
        })
        .collect()
}

fn is_nullable(ty: &Type) -> bool {
    matches!(ty, Type::Optional(_) | Type::Null)
}

fn operator_message(op: BinaryOp, a: &Type, b: &Type) -> String {
    let symbol = op.as_str();
    match op {
        BinaryOp::Add => format!("`{symbol}` cannot add `{a}` and `{b}`"),
        BinaryOp::Sub => format!("`{symbol}` cannot subtract `{b}` from `{a}`"),
        BinaryOp::Mul => format!("`{symbol}` cannot multiply `{a}` by `{b}`"),
        BinaryOp::Div => format!("`{symbol}` cannot divide `{a}` by `{b}`"),
        BinaryOp::Rem => format!("`{symbol}` cannot take the remainder of `{a}` by `{b}`"),
        BinaryOp::In => format!("`{symbol}` cannot look for `{a}` in `{b}`"),
        _ => format!("`{symbol}` cannot compare `{a}` with `{b}`"),
    }
}

fn null_help() -> &'static str {
    "the value may be null: give a default with `??` (e.g. `x ?? 0`), or test it first"
}

impl Checker<'_> {
    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn mismatch(&mut self, span: Span, message: String, help: Option<String>) {
        let mut diagnostic = Diagnostic::new(Code::TYPE_MISMATCH, span, message);
        if let Some(help) = help {
            diagnostic = diagnostic.with_help(help);
        }
        self.report(diagnostic);
    }

    fn check(&mut self, expr: &Expr, depth: usize) -> Type {
        let ty = self.check_kind(expr, depth);
        if let Some(types) = self.recorded.as_deref_mut() {
            types.push((expr.span, ty.clone()));
        }
        ty
    }

    fn check_kind(&mut self, expr: &Expr, depth: usize) -> Type {
        if depth > MAX_DEPTH {
            if !self.too_deep_reported {
                self.too_deep_reported = true;
                self.report(Diagnostic::new(
                    Code::DOCUMENT_TOO_COMPLEX,
                    expr.span,
                    format!("the expression nests more than {MAX_DEPTH} levels deep"),
                ));
            }
            return Type::Dyn;
        }
        let depth = depth + 1;
        match &expr.kind {
            ExprKind::Null => Type::Null,
            ExprKind::Bool(_) => Type::Bool,
            ExprKind::Int(_) => Type::Int,
            ExprKind::Double(_) => Type::Double,
            ExprKind::String(_) => Type::String,
            ExprKind::Error => Type::Dyn,
            ExprKind::List(items) => {
                let mut item_type: Option<Type> = None;
                for item in items {
                    let ty = self.check(item, depth);
                    item_type = Some(match item_type {
                        None => ty,
                        Some(previous) => lub(&previous, &ty),
                    });
                }
                Type::list(item_type.unwrap_or(Type::Dyn))
            }
            ExprKind::Map(entries) => self.check_map(entries, depth),
            ExprKind::Ident(name) => self.check_ident(name),
            ExprKind::Select {
                operand,
                field,
                optional,
            } => {
                let operand_type = self.check(operand, depth);
                self.select(&operand_type, field, *optional)
            }
            ExprKind::Index { operand, index } => {
                let operand_type = self.check(operand, depth);
                let index_type = self.check(index, depth);
                self.check_index(expr, &operand_type, index, &index_type)
            }
            ExprKind::Call {
                target,
                function,
                args,
            } => self.check_call(expr, target.as_deref(), function, args, depth),
            ExprKind::Unary { op, operand } => {
                let ty = self.check(operand, depth);
                self.check_unary(expr, *op, &ty)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let left = self.check(lhs, depth);
                let right = self.check(rhs, depth);
                self.check_binary(expr, *op, lhs, &left, rhs, &right)
            }
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => {
                let cond_type = self.check(cond, depth);
                self.require_bool(cond.span, &cond_type, "the condition of `?:`");
                let then_type = self.check(then, depth);
                let otherwise_type = self.check(otherwise, depth);
                lub(&then_type, &otherwise_type)
            }
        }
    }

    fn check_map(&mut self, entries: &[(Expr, Expr)], depth: usize) -> Type {
        let mut all_string_keys = true;
        let mut value_type: Option<Type> = None;
        for (key, value) in entries {
            let key_type = self.check(key, depth);
            match key_type {
                Type::String | Type::Enum(_) => {}
                // A `dyn` key may turn out to be an int or a bool.
                Type::Int | Type::Bool | Type::Dyn => all_string_keys = false,
                other => {
                    all_string_keys = false;
                    self.mismatch(
                        key.span,
                        format!("map keys must be `string`, `int` or `bool`, not `{other}`"),
                        is_nullable(&other).then(|| null_help().to_owned()),
                    );
                }
            }
            let ty = self.check(value, depth);
            value_type = Some(match value_type {
                None => ty,
                Some(previous) => lub(&previous, &ty),
            });
        }
        if all_string_keys {
            Type::map(value_type.unwrap_or(Type::Dyn))
        } else {
            // The type lattice only has string-keyed maps.
            Type::Dyn
        }
    }

    fn check_ident(&mut self, name: &Name) -> Type {
        if let Some((_, ty)) = self.scope.iter().rev().find(|(n, _)| *n == name.text) {
            return ty.clone();
        }
        if let Some(ty) = self.env.root(&name.text) {
            return ty;
        }
        let mut candidates = self.env.roots();
        candidates.extend(self.scope.iter().map(|(n, _)| n.clone()));
        let mut diagnostic = Diagnostic::new(
            Code::UNKNOWN_REFERENCE,
            name.span,
            format!("unknown name `{}`", name.text),
        );
        if let Some(suggestion) = did_you_mean(&name.text, candidates.iter().map(String::as_str)) {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
            // A name that does not lex as one (a field `a-b`) cannot be
            // spliced into the expression.
            if is_identifier(suggestion) {
                diagnostic = diagnostic.with_replacement(
                    format!("replace with `{suggestion}`"),
                    name.span,
                    suggestion,
                );
            }
        } else if !candidates.is_empty() {
            candidates.sort();
            candidates.dedup();
            diagnostic = diagnostic.with_help(format!("names in scope: {}", candidates.join(", ")));
        }
        self.report(diagnostic);
        Type::Dyn
    }

    fn unknown_field(&mut self, object: &ObjectType, field: &Name) {
        let mut diagnostic = Diagnostic::new(
            Code::UNKNOWN_FIELD,
            field.span,
            format!("no field `{}` in this object", field.text),
        );
        let names = object.fields.keys().map(String::as_str);
        if let Some(suggestion) = did_you_mean(&field.text, names.clone()) {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
            // A name that does not lex as one (a field `a-b`) cannot be
            // spliced into the expression.
            if is_identifier(suggestion) {
                diagnostic = diagnostic.with_replacement(
                    format!("replace with `{suggestion}`"),
                    field.span,
                    suggestion,
                );
            }
        } else if object.fields.is_empty() {
            diagnostic = diagnostic.with_help("the object declares no fields");
        } else {
            let all: Vec<&str> = names.collect();
            diagnostic = diagnostic.with_help(format!("its fields are: {}", all.join(", ")));
        }
        self.report(diagnostic);
    }

    /// `operand.field` (or `operand?.field`): selecting through null gives
    /// null, through `T?` an optional.
    fn select(&mut self, operand: &Type, field: &Name, optional: bool) -> Type {
        let ty = match operand {
            Type::Dyn => return Type::Dyn,
            Type::Null => return Type::Null,
            Type::Optional(inner) => return self.select(inner, field, optional).optional(),
            Type::Object(object) => match object.fields.get(&field.text) {
                Some(f) if f.required => f.ty.clone(),
                Some(f) => f.ty.clone().optional(),
                // An open object may carry fields it does not declare.
                None if optional && !object.closed => Type::Dyn,
                None => {
                    self.unknown_field(object, field);
                    return Type::Dyn;
                }
            },
            Type::Map(value) => (**value).clone(),
            other => {
                self.mismatch(
                    field.span,
                    format!("a `{other}` has no fields (selecting `{}`)", field.text),
                    None,
                );
                return Type::Dyn;
            }
        };
        if optional { ty.optional() } else { ty }
    }

    fn check_index(
        &mut self,
        expr: &Expr,
        operand: &Type,
        index: &Expr,
        index_type: &Type,
    ) -> Type {
        match operand {
            Type::Null => return Type::Null,
            Type::Optional(inner) => {
                return self.check_index(expr, inner, index, index_type).optional();
            }
            Type::Object(_) => {
                if let ExprKind::String(key) = &index.kind {
                    let field = Name {
                        text: key.clone(),
                        span: index.span,
                    };
                    return self.select(operand, &field, false);
                }
            }
            _ => {}
        }
        let types = [operand.clone(), index_type.clone()];
        match resolve(builtins::index_operator(), &types) {
            Some(ty) => ty,
            None => {
                self.mismatch(
                    expr.span,
                    format!("cannot index `{operand}` with `{index_type}`"),
                    is_nullable(index_type)
                        .then(|| null_help().to_owned())
                        .or_else(|| {
                            Some(format!(
                                "indexing is defined for: {}",
                                builtins::index_operator().signatures().join(", ")
                            ))
                        }),
                );
                Type::Dyn
            }
        }
    }

    fn require_bool(&mut self, span: Span, ty: &Type, what: &str) {
        match ty {
            Type::Bool | Type::Dyn => {}
            other => self.mismatch(
                span,
                format!("{what} must be a `bool`, not `{other}`"),
                is_nullable(other).then(|| null_help().to_owned()),
            ),
        }
    }

    fn check_unary(&mut self, expr: &Expr, op: UnaryOp, ty: &Type) -> Type {
        let builtin = builtins::unary_operator(op);
        if let Some(result) = resolve(builtin, std::slice::from_ref(ty)) {
            return result;
        }
        let message = match op {
            UnaryOp::Not => format!("`!` needs a `bool`, not `{ty}`"),
            UnaryOp::Neg => format!("`-` cannot negate `{ty}`"),
        };
        let stripped = strip_optional(std::slice::from_ref(ty));
        let fallback = resolve(builtin, &stripped);
        let help = if fallback.is_some() {
            null_help().to_owned()
        } else {
            format!(
                "`{}` is defined for: {}",
                builtin.symbol(),
                builtin.signatures().join(", ")
            )
        };
        self.mismatch(expr.span, message, Some(help));
        fallback.unwrap_or(Type::Dyn)
    }

    fn check_binary(
        &mut self,
        expr: &Expr,
        op: BinaryOp,
        lhs: &Expr,
        left: &Type,
        rhs: &Expr,
        right: &Type,
    ) -> Type {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let what = format!("an operand of `{}`", op.as_str());
                self.require_bool(lhs.span, left, &what);
                self.require_bool(rhs.span, right, &what);
                Type::Bool
            }
            BinaryOp::Coalesce => match left {
                Type::Null => right.clone(),
                other => lub(other.non_null(), right),
            },
            BinaryOp::Eq | BinaryOp::Ne => {
                if !comparable(left, right) {
                    self.mismatch(
                        expr.span,
                        format!(
                            "`{}` compares `{left}` with `{right}`, which are never equal",
                            op.as_str()
                        ),
                        None,
                    );
                }
                Type::Bool
            }
            _ => {
                let Some(builtin) = builtins::binary_operator(op) else {
                    return Type::Dyn;
                };
                let types = [left.clone(), right.clone()];
                if let Some(result) = resolve(builtin, &types) {
                    return result;
                }
                let stripped = strip_optional(&types);
                let fallback = resolve(builtin, &stripped);
                let help = if fallback.is_some() {
                    null_help().to_owned()
                } else if matches!(
                    (left.non_null(), right.non_null()),
                    (Type::Int, Type::Double) | (Type::Double, Type::Int)
                ) {
                    "`int` and `double` do not mix implicitly: convert one side with `double(...)` or `int(...)`".to_owned()
                } else {
                    format!(
                        "`{}` is defined for: {}",
                        op.as_str(),
                        builtin.signatures().join(", ")
                    )
                };
                self.mismatch(expr.span, operator_message(op, left, right), Some(help));
                fallback.unwrap_or(Type::Dyn)
            }
        }
    }

    fn check_call(
        &mut self,
        expr: &Expr,
        target: Option<&Expr>,
        function: &Name,
        args: &[Expr],
        depth: usize,
    ) -> Type {
        let name = function.text.as_str();
        match (target, name) {
            (None, "has") => return self.check_has(expr, args, depth),
            (Some(target), _) if builtins::is_macro(name) => {
                return self.check_macro(expr, target, function, args, depth);
            }
            _ => {}
        }
        let mut types = Vec::with_capacity(args.len() + 1);
        if let Some(target) = target {
            types.push(self.check(target, depth));
        }
        for arg in args {
            types.push(self.check(arg, depth));
        }
        let Some(builtin) = builtins::function(name) else {
            let mut diagnostic = Diagnostic::new(
                Code::UNKNOWN_FUNCTION,
                function.span,
                format!("unknown function `{name}`"),
            );
            if builtins::is_macro(name) {
                // `filter(…)` with no receiver: the name is right, the form
                // is not, so there is nothing to replace.
                diagnostic.message = format!("`{name}` is a macro, called on its receiver");
                diagnostic = diagnostic.with_help(format!("write `list.{name}(x, …)`"));
            } else if let Some(suggestion) = did_you_mean(name, builtins::function_names())
                .filter(|suggestion| *suggestion != name)
            {
                diagnostic = diagnostic
                    .with_help(format!("did you mean `{suggestion}`?"))
                    .with_replacement(
                        format!("replace with `{suggestion}`"),
                        function.span,
                        suggestion,
                    );
            }
            self.report(diagnostic);
            return Type::Dyn;
        };
        if target.is_some() && !builtin.form.allows_method() {
            self.report(
                Diagnostic::new(
                    Code::UNKNOWN_FUNCTION,
                    function.span,
                    format!("`{name}` is not a method"),
                )
                .with_help(format!("call it as a function: `{name}(x)`")),
            );
        } else if target.is_none() && builtin.form == Form::Method {
            self.report(
                Diagnostic::new(
                    Code::UNKNOWN_FUNCTION,
                    function.span,
                    format!("`{name}` is a method"),
                )
                .with_help(format!("call it on its receiver: `x.{name}()`")),
            );
        }
        if let Some(result) = resolve(builtin, &types) {
            return result;
        }
        let shown: Vec<String> = types.iter().map(Type::to_string).collect();
        let stripped = strip_optional(&types);
        if let Some(fallback) = resolve(builtin, &stripped) {
            self.mismatch(
                expr.span,
                format!(
                    "`{name}` cannot take a value that may be null ({})",
                    shown.join(", ")
                ),
                Some(null_help().to_owned()),
            );
            return fallback;
        }
        let what = if target.is_some() {
            format!(
                "no overload of `{name}` for a receiver and arguments of types ({})",
                shown.join(", ")
            )
        } else {
            format!("no overload of `{name}` takes ({})", shown.join(", "))
        };
        self.report(
            Diagnostic::new(Code::UNKNOWN_FUNCTION, function.span, what).with_help(format!(
                "`{name}` is defined as: {}",
                builtin.signatures().join("; ")
            )),
        );
        Type::Dyn
    }

    fn check_has(&mut self, expr: &Expr, args: &[Expr], depth: usize) -> Type {
        let selection = match args {
            [arg] => match &arg.kind {
                ExprKind::Select { operand, field, .. } => Some((operand, field)),
                _ => None,
            },
            _ => None,
        };
        let Some((operand, field)) = selection else {
            for arg in args {
                self.check(arg, depth);
            }
            self.report(
                Diagnostic::new(
                    Code::UNKNOWN_FUNCTION,
                    expr.span,
                    "`has` takes one field selection",
                )
                .with_help("write `has(a.b)` to test whether `a` has the field `b`"),
            );
            return Type::Bool;
        };
        let operand_type = self.check(operand, depth);
        match operand_type.non_null() {
            Type::Object(object) if object.closed && !object.fields.contains_key(&field.text) => {
                let object = object.clone();
                self.unknown_field(&object, field);
            }
            Type::Object(_) | Type::Map(_) | Type::Dyn | Type::Null => {}
            other => self.mismatch(
                operand.span,
                format!("`has` needs a map or an object, not `{other}`"),
                None,
            ),
        }
        Type::Bool
    }

    fn check_macro(
        &mut self,
        expr: &Expr,
        target: &Expr,
        function: &Name,
        args: &[Expr],
        depth: usize,
    ) -> Type {
        let name = function.text.as_str();
        let target_type = self.check(target, depth);
        let variable = match args.first().map(|a| &a.kind) {
            Some(ExprKind::Ident(variable)) => Some(variable.text.clone()),
            _ => None,
        };
        let arity_ok = match name {
            "map" => args.len() == 2 || args.len() == 3,
            _ => args.len() == 2,
        };
        let Some(variable) = variable.filter(|_| arity_ok) else {
            let usage = match name {
                "map" => "`e.map(x, f)` or `e.map(x, p, f)`".to_owned(),
                "filter" => "`e.filter(x, p)`".to_owned(),
                other => format!("`e.{other}(x, p)`"),
            };
            self.report(
                Diagnostic::new(
                    Code::UNKNOWN_FUNCTION,
                    expr.span,
                    format!("`{name}` takes a variable name and expressions"),
                )
                .with_help(format!("write {usage}")),
            );
            return Type::Dyn;
        };
        let element = match macro_element(&target_type) {
            Some(element) if !is_nullable(&target_type) => element,
            found => {
                self.mismatch(
                    target.span,
                    format!("`{name}` needs a list or a map, not `{target_type}`"),
                    is_nullable(&target_type).then(|| null_help().to_owned()),
                );
                found.unwrap_or(Type::Dyn)
            }
        };
        self.scope.push((variable, element.clone()));
        let body = &args[1..];
        let result = match (name, body) {
            ("map", [transform]) => Type::list(self.check(transform, depth)),
            ("map", [predicate, transform]) => {
                let ty = self.check(predicate, depth);
                self.require_bool(predicate.span, &ty, "the predicate of `map`");
                Type::list(self.check(transform, depth))
            }
            ("filter", [predicate]) => {
                let ty = self.check(predicate, depth);
                self.require_bool(predicate.span, &ty, "the predicate of `filter`");
                Type::list(element)
            }
            (_, [predicate]) => {
                let ty = self.check(predicate, depth);
                self.require_bool(predicate.span, &ty, &format!("the predicate of `{name}`"));
                Type::Bool
            }
            _ => Type::Dyn,
        };
        self.scope.pop();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use donmai_stdlib::types::Field;
    use std::sync::Arc;

    fn object(fields: &[(&str, Type, bool)], closed: bool) -> Type {
        Type::Object(Arc::new(ObjectType {
            fields: fields
                .iter()
                .map(|(name, ty, required)| {
                    (
                        (*name).to_owned(),
                        Field {
                            ty: ty.clone(),
                            required: *required,
                        },
                    )
                })
                .collect(),
            closed,
        }))
    }

    pub(super) fn environment() -> BTreeMap<String, Type> {
        let nested = object(&[("c", Type::String, true)], true);
        let o = object(
            &[
                ("a", Type::Int, true),
                ("b", Type::String, false),
                ("nested", nested, true),
            ],
            true,
        );
        let open = object(&[("x", Type::Int, true)], false);
        [
            ("i", Type::Int),
            ("d", Type::Double),
            ("s", Type::String),
            ("b", Type::Bool),
            ("l", Type::list(Type::Int)),
            ("m", Type::map(Type::Int)),
            ("n", Type::Int.optional()),
            ("o", o),
            ("open", open),
            ("x", Type::Dyn),
            ("t", Type::Timestamp),
            ("u", Type::Duration),
            ("words", Type::list(Type::String)),
            ("color", Type::enumeration(["red", "green"])),
            ("ns", Type::String.optional()),
        ]
        .into_iter()
        .map(|(name, ty)| (name.to_owned(), ty))
        .collect()
    }

    /// `(expression, expected)`: the type as displayed, or `!DNxxxx` for
    /// exactly one diagnostic with that code.
    const CASES: &[(&str, &str)] = &[
        ("1 + 2", "int"),
        ("i + 1", "int"),
        ("d * 2.0", "double"),
        ("s + 'x'", "string"),
        ("l + [4]", "list<int>"),
        ("[1, 'a']", "list<dyn>"),
        ("[1, null]", "list<int?>"),
        ("[]", "list<dyn>"),
        ("{'a': 1}", "map<string, int>"),
        ("{'a': 1, 'b': 2.5}", "map<string, dyn>"),
        ("{1: 'a'}", "dyn"),
        ("{x: 1}", "dyn"),
        ("o.a", "int"),
        ("o.b", "string?"),
        ("o.nested.c", "string"),
        ("o.nested?.c", "string?"),
        ("o?.a", "int?"),
        ("open?.y", "dyn"),
        ("open.x", "int"),
        ("m.k", "int"),
        ("m?.k", "int?"),
        ("x.anything.at.all", "dyn"),
        ("null.f", "null"),
        ("n ?? 0", "int"),
        ("ns ?? 'x'", "string"),
        ("o.b ?? 'x'", "string"),
        ("n ?? null", "int?"),
        ("null ?? 1", "int"),
        ("n == null", "bool"),
        ("i == 1.0", "bool"),
        ("l == [1.0]", "bool"),
        ("o == {'a': 1}", "bool"),
        ("t - t", "duration"),
        ("t + u", "timestamp"),
        ("u - u", "duration"),
        ("-u", "duration"),
        ("i < d", "bool"),
        ("color == 'red'", "bool"),
        ("color + 'x'", "string"),
        ("size(s)", "int"),
        ("s.size()", "int"),
        ("o.size()", "int"),
        ("l.map(v, v * 2)", "list<int>"),
        ("l.map(v, v > 1, string(v))", "list<string>"),
        ("l.filter(v, v > 1)", "list<int>"),
        ("m.map(k, k)", "list<string>"),
        ("o.filter(k, k != 'a')", "list<string>"),
        ("x.map(v, v)", "list<dyn>"),
        ("l.all(v, v > 0)", "bool"),
        ("l.map(v, l.map(w, v + w))", "list<list<int>>"),
        ("words.join(',')", "string"),
        ("split(s, ',')", "list<string>"),
        ("default(n, 1)", "int"),
        ("default(n, x)", "dyn"),
        ("default(ns, null)", "string?"),
        ("fromJson(s)", "dyn"),
        ("toJson(o)", "string"),
        ("hash(s, i, l)", "string"),
        ("l[0]", "int"),
        ("m['k']", "int"),
        ("o['a']", "int"),
        ("x[0]", "dyn"),
        ("b ? 1 : 2", "int"),
        ("b ? 1 : null", "int?"),
        ("b ? 1 : 'a'", "dyn"),
        ("x ? 1 : 2", "int"),
        ("x + 1", "int"),
        ("x + x", "dyn"),
        ("[1] + x", "list<dyn>"),
        ("x.size()", "int"),
        ("has(o.b)", "bool"),
        ("has(open.zz)", "bool"),
        ("has(m.k)", "bool"),
        ("timestamp(s).getHours()", "int"),
        ("int(d)", "int"),
        ("string(i)", "string"),
        ("i in l", "bool"),
        ("'a' in m", "bool"),
        ("'a' in o", "bool"),
        ("color in words", "bool"),
        ("!b", "bool"),
        ("b && x", "bool"),
        // Errors.
        ("zz + 1", "!DN0123"),
        ("wrods", "!DN0123"),
        ("o.zz", "!DN0124"),
        ("o.nestd", "!DN0124"),
        ("o?.zz", "!DN0124"),
        ("open.y", "!DN0124"),
        ("has(o.zz)", "!DN0124"),
        ("o['zz']", "!DN0124"),
        ("1 + 's'", "!DN0122"),
        ("i + d", "!DN0122"),
        ("n + 1", "!DN0122"),
        ("-ns", "!DN0122"),
        ("b && 1", "!DN0122"),
        ("n || b", "!DN0122"),
        ("i ? 1 : 2", "!DN0122"),
        ("!i", "!DN0122"),
        ("-s", "!DN0122"),
        ("i == 's'", "!DN0122"),
        ("l == ['a']", "!DN0122"),
        ("t < u", "!DN0122"),
        ("ns.size()", "!DN0122"),
        ("i.all(v, true)", "!DN0122"),
        ("l.all(v, v)", "!DN0122"),
        ("l.filter(v, 1)", "!DN0122"),
        ("i.foo", "!DN0122"),
        ("l['a']", "!DN0122"),
        ("[1] + ['a']", "!DN0122"),
        ("{1.5: 1}", "!DN0122"),
        ("1 in ['a']", "!DN0122"),
        ("has(i.f)", "!DN0122"),
        ("size(i)", "!DN0126"),
        ("nosuch(1)", "!DN0126"),
        ("sise(s)", "!DN0126"),
        ("s.int()", "!DN0126"),
        ("getHours(t)", "!DN0126"),
        ("l.map(1, 2)", "!DN0126"),
        ("l.map(v)", "!DN0126"),
        ("has(i)", "!DN0126"),
        ("default(i, 's')", "!DN0126"),
        ("words.join(1)", "!DN0126"),
        ("l.all(v, true) && v", "!DN0123"),
    ];

    fn parse(text: &str) -> Expr {
        let (expr, diagnostics) = donmai_grammar::expr::parse_expr(text);
        assert!(diagnostics.is_empty(), "{text}: {diagnostics:?}");
        expr
    }

    #[test]
    fn typing_cases() {
        let env = environment();
        let mut failures = Vec::new();
        for (text, expected) in CASES {
            let (ty, diagnostics) = check_expr(&parse(text), &env);
            let ok = match expected.strip_prefix('!') {
                Some(code) => diagnostics.len() == 1 && diagnostics[0].code.to_string() == code,
                None => diagnostics.is_empty() && ty.to_string() == *expected,
            };
            if !ok {
                let shown: Vec<String> = diagnostics
                    .iter()
                    .map(|d| format!("{} {}", d.code, d.message))
                    .collect();
                failures.push(format!(
                    "{text}\n    want {expected}\n    got  {ty} {shown:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    fn only_diagnostic(text: &str) -> Diagnostic {
        let (_, mut diagnostics) = check_expr(&parse(text), &environment());
        assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:?}");
        diagnostics.remove(0)
    }

    #[test]
    fn messages_name_the_types_and_help() {
        let d = only_diagnostic("1 + 's'");
        assert_eq!(d.message, "`+` cannot add `int` and `string`");
        let d = only_diagnostic("i + d");
        assert!(d.help.unwrap_or_default().contains("double(...)"));
        let d = only_diagnostic("n + 1");
        assert!(d.help.unwrap_or_default().contains("??"));
        let d = only_diagnostic("wrods");
        assert_eq!(d.help.as_deref(), Some("did you mean `words`?"));
        assert_eq!(
            d.fix.map(|f| f.edits[0].replacement.clone()),
            Some("words".to_owned())
        );
        let d = only_diagnostic("o.nestd");
        assert_eq!(d.help.as_deref(), Some("did you mean `nested`?"));
        let text = "o.nestd";
        assert_eq!(&text[d.span.start..d.span.end], "nestd");
        let d = only_diagnostic("o.qqq");
        assert_eq!(d.help.as_deref(), Some("its fields are: a, b, nested"));
        let d = only_diagnostic("sise(s)");
        assert_eq!(d.help.as_deref(), Some("did you mean `size`?"));
        let d = only_diagnostic("size(i)");
        assert_eq!(d.message, "no overload of `size` takes (int)");
        assert!(d.help.unwrap_or_default().contains("size(string) -> int"));
    }

    #[test]
    fn deep_trees_are_reported_once() {
        let mut expr = Expr::new(ExprKind::Int(1), Span::default());
        for _ in 0..(MAX_DEPTH + 20) {
            expr = Expr::new(
                ExprKind::Unary {
                    op: UnaryOp::Neg,
                    operand: Box::new(expr),
                },
                Span::default(),
            );
        }
        let (ty, diagnostics) = check_expr(&expr, &environment());
        assert_eq!(ty, Type::Dyn);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].code, Code::DOCUMENT_TOO_COMPLEX);
    }

    #[test]
    fn parse_errors_do_not_cascade() {
        let (expr, parse_diagnostics) = donmai_grammar::expr::parse_expr("1 + + o.a");
        assert!(!parse_diagnostics.is_empty());
        let (_, diagnostics) = check_expr(&expr, &environment());
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
    }
}

#[cfg(test)]
mod properties {
    use super::tests::environment;
    use super::*;
    use crate::eval::{Vars, evaluate};
    use donmai_stdlib::value::{Fuel, MapEntries, MapKey, Value};
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "i", "d", "s", "b", "l", "m", "n", "o", "open", "x", "t", "u", "words", "color", "ns", "v",
        "w", "zz",
    ];
    const FIELDS: &[&str] = &["a", "b", "c", "x", "y", "k", "nested", "zz"];
    const STRINGS: &[&str] = &[
        "",
        "a",
        "b",
        "k",
        "héllo",
        "42",
        "2.5",
        "true",
        "2024-01-01T00:00:00Z",
        "1h30m",
        ",",
        "[a-z]+",
        "(",
        r#"{"a": [1, 2.5]}"#,
        "red",
    ];
    const OPS: &[BinaryOp] = &[
        BinaryOp::Coalesce,
        BinaryOp::Or,
        BinaryOp::And,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::In,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
    ];

    fn node(kind: ExprKind) -> Expr {
        Expr::new(kind, Span::default())
    }

    fn name(text: &str) -> Name {
        Name {
            text: text.to_owned(),
            span: Span::default(),
        }
    }

    fn function_names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = builtins::function_names().collect();
        names.push("nosuch");
        names
    }

    fn leaf() -> impl Strategy<Value = Expr> {
        prop_oneof![
            Just(node(ExprKind::Null)),
            any::<bool>().prop_map(|b| node(ExprKind::Bool(b))),
            prop_oneof![-3i64..4, Just(i64::MAX), Just(i64::MIN), any::<i64>()]
                .prop_map(|i| node(ExprKind::Int(i))),
            prop_oneof![
                Just(0.0f64),
                Just(1.5),
                Just(-2.0),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(1e19),
                any::<f64>()
            ]
            .prop_map(|d| node(ExprKind::Double(d))),
            proptest::sample::select(STRINGS).prop_map(|s| node(ExprKind::String(s.to_owned()))),
            proptest::sample::select(NAMES).prop_map(|n| node(ExprKind::Ident(name(n)))),
            proptest::sample::select(NAMES).prop_map(|n| node(ExprKind::Ident(name(n)))),
            Just(node(ExprKind::Error)),
        ]
    }

    fn expression() -> impl Strategy<Value = Expr> {
        let functions = function_names();
        leaf().prop_recursive(6, 48, 4, move |inner| {
            let functions = functions.clone();
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(|items| node(ExprKind::List(items))),
                vec((inner.clone(), inner.clone()), 0..3)
                    .prop_map(|entries| node(ExprKind::Map(entries))),
                (
                    inner.clone(),
                    proptest::sample::select(FIELDS),
                    any::<bool>()
                )
                    .prop_map(|(operand, field, optional)| node(
                        ExprKind::Select {
                            operand: Box::new(operand),
                            field: name(field),
                            optional,
                        }
                    )),
                (inner.clone(), inner.clone()).prop_map(|(operand, index)| node(ExprKind::Index {
                    operand: Box::new(operand),
                    index: Box::new(index),
                })),
                (
                    proptest::option::of(inner.clone()),
                    proptest::sample::select(functions),
                    vec(inner.clone(), 0..3)
                )
                    .prop_map(|(target, function, args)| node(ExprKind::Call {
                        target: target.map(Box::new),
                        function: name(function),
                        args,
                    })),
                (
                    inner.clone(),
                    proptest::sample::select(&["all", "exists", "exists_one", "map", "filter"][..]),
                    proptest::sample::select(&["v", "w", "i"][..]),
                    vec(inner.clone(), 1..3)
                )
                    .prop_map(|(target, function, variable, mut body)| {
                        body.insert(0, node(ExprKind::Ident(name(variable))));
                        node(ExprKind::Call {
                            target: Some(Box::new(target)),
                            function: name(function),
                            args: body,
                        })
                    }),
                inner.clone().prop_map(|operand| node(ExprKind::Call {
                    target: None,
                    function: name("has"),
                    args: vec![operand],
                })),
                (any::<bool>(), inner.clone()).prop_map(|(not, operand)| node(ExprKind::Unary {
                    op: if not { UnaryOp::Not } else { UnaryOp::Neg },
                    operand: Box::new(operand),
                })),
                (proptest::sample::select(OPS), inner.clone(), inner.clone()).prop_map(
                    |(op, lhs, rhs)| node(ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    })
                ),
                (inner.clone(), inner.clone(), inner).prop_map(|(cond, then, otherwise)| {
                    node(ExprKind::Conditional {
                        cond: Box::new(cond),
                        then: Box::new(then),
                        otherwise: Box::new(otherwise),
                    })
                }),
            ]
        })
    }

    fn string_value() -> impl Strategy<Value = Value> {
        proptest::sample::select(STRINGS).prop_map(Value::from)
    }

    fn any_value() -> BoxedStrategy<Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..4).prop_map(Value::Int),
            Just(Value::Int(i64::MAX)),
            prop_oneof![Just(0.5f64), Just(f64::NAN), any::<f64>()].prop_map(Value::Double),
            string_value(),
        ];
        scalar
            .prop_recursive(3, 16, 3, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..3).prop_map(Value::list),
                    btree_map(proptest::sample::select(FIELDS), inner, 0..3).prop_map(|m| {
                        Value::map(m.into_iter().map(|(k, v)| (MapKey::from(k), v)).collect())
                    }),
                ]
            })
            .boxed()
    }

    /// Values that conform to `ty`.
    fn value_of(ty: &Type) -> BoxedStrategy<Value> {
        match ty {
            Type::Null => Just(Value::Null).boxed(),
            Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            Type::Int => prop_oneof![-3i64..4, Just(i64::MAX), Just(i64::MIN), any::<i64>()]
                .prop_map(Value::Int)
                .boxed(),
            Type::Double => prop_oneof![Just(0.0f64), Just(2.5), Just(f64::NAN), any::<f64>()]
                .prop_map(Value::Double)
                .boxed(),
            Type::String => string_value().boxed(),
            Type::Enum(values) => proptest::sample::select(values.to_vec())
                .prop_map(|v| Value::string(v.as_str()))
                .boxed(),
            Type::Timestamp => (-62_135_596_800i64..253_402_300_799)
                .prop_map(|s| {
                    Value::timestamp_from_unix_nanos(i128::from(s) * 1_000_000_000)
                        .unwrap_or(Value::Null)
                })
                .boxed(),
            Type::Duration => (-1_000_000_000_000i64..1_000_000_000_000)
                .prop_map(|n| Value::duration_from_nanos(i128::from(n)).unwrap_or(Value::Null))
                .boxed(),
            Type::List(item) => vec(value_of(item), 0..4).prop_map(Value::list).boxed(),
            Type::Map(value) => btree_map(proptest::sample::select(FIELDS), value_of(value), 0..3)
                .prop_map(|m| {
                    Value::map(m.into_iter().map(|(k, v)| (MapKey::from(k), v)).collect())
                })
                .boxed(),
            Type::Optional(inner) => proptest::option::of(value_of(inner))
                .prop_map(|v| v.unwrap_or(Value::Null))
                .boxed(),
            Type::Object(object) => {
                let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = object
                    .fields
                    .iter()
                    .map(|(field, spec)| {
                        let field = field.clone();
                        let present =
                            value_of(&spec.ty).prop_map(move |v| Some((field.clone(), v)));
                        if spec.required {
                            present.boxed()
                        } else {
                            prop_oneof![Just(None), present].boxed()
                        }
                    })
                    .collect();
                let extra = if object.closed {
                    Just(Vec::new()).boxed()
                } else {
                    vec((Just("extra".to_owned()), any_value()), 0..2).boxed()
                };
                (fields, extra)
                    .prop_map(|(fields, extra)| {
                        let entries: MapEntries = fields
                            .into_iter()
                            .flatten()
                            .chain(extra)
                            .map(|(k, v)| (MapKey::from(k.as_str()), v))
                            .collect();
                        Value::map(entries)
                    })
                    .boxed()
            }
            Type::Dyn => any_value(),
        }
    }

    fn variables() -> impl Strategy<Value = Vars> {
        let strategies: Vec<BoxedStrategy<(String, Value)>> = environment()
            .into_iter()
            .map(|(name, ty)| value_of(&ty).prop_map(move |v| (name.clone(), v)).boxed())
            .collect();
        strategies.prop_map(|pairs| pairs.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Evaluation and checking never panic and always end, and a
        /// well-typed expression's value has the type the checker gave it.
        #[test]
        fn evaluation_is_total_and_checking_is_sound(expr in expression(), vars in variables()) {
            let env = environment();
            for (name, value) in &vars {
                prop_assert!(value.conforms_to(&env[name]), "{name} = {value}");
            }
            let (ty, diagnostics) = check_expr(&expr, &env);
            let mut fuel = Fuel::new(20_000, 1 << 20);
            let outcome = evaluate(&expr, &vars, &mut fuel);
            if diagnostics.is_empty() && let Ok(value) = &outcome {
                prop_assert!(
                    value.conforms_to(&ty),
                    "checked as `{ty}` but evaluated to {value} ({})\n{expr:#?}",
                    value.type_name()
                );
            }
        }
    }
}
