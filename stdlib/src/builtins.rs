//! Builtin functions and operators: each signature next to its pure
//! implementation, in one table ([`BUILTINS`]).
//!
//! The type checker resolves calls against the signatures; the evaluator (and
//! later the VM) dispatches on the run-time values against the same
//! signatures and runs the implementation of the first overload that accepts
//! them. Operators (`+`, `<`, `in`, `[]`, unary `-` and `!`) are entries too,
//! so their typing and behaviour also live here. Not in the table because
//! they are control flow, not functions: `&& || ?? ?:`, field selection,
//! `==`/`!=` ([`Value::equals_metered`]) and the macros ([`MACROS`]).
//!
//! Implementations charge [`Fuel`] for work proportional to their input and
//! pay for what they allocate before allocating it.

use crate::types::Type;
use crate::value::{
    EvalError, Fuel, MapEntries, MapKey, Value, compare_int_double, error_code, format_duration,
    format_timestamp, truncate_for_message,
};
use donmai_grammar::expr::{BinaryOp, UnaryOp};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

/// An implementation receives the arguments (for a method the receiver
/// first) already matched against the overload's parameters.
pub type Implementation = fn(&[Value], &mut Fuel) -> Result<Value, EvalError>;

/// How a builtin is written at a call site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `f(x, y)` only.
    Function,
    /// `x.f(y)` only.
    Method,
    /// Either `f(x, y)` or `x.f(y)`.
    Both,
    /// An operator; its name is CEL's (`_+_`, `-_`, `_[_]`).
    Operator,
}

impl Form {
    pub fn allows_function(self) -> bool {
        matches!(self, Form::Function | Form::Both)
    }

    pub fn allows_method(self) -> bool {
        matches!(self, Form::Method | Form::Both)
    }
}

/// A parameter or result type in a signature. `Param` is the overload's one
/// type variable (written `T`), bound by the arguments at each call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sig {
    Null,
    Bool,
    Int,
    Double,
    String,
    Timestamp,
    Duration,
    Dyn,
    Param,
    List(&'static Sig),
    Map(&'static Sig),
    Optional(&'static Sig),
}

impl Sig {
    /// Whether a run-time value fits. Element types of lists and maps are
    /// not checked here (that would cost a walk per call); implementations
    /// check elements they rely on.
    pub fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (Sig::Dyn | Sig::Param, _) => true,
            (Sig::Optional(_), Value::Null) => true,
            (Sig::Optional(inner), value) => inner.accepts(value),
            (Sig::Null, Value::Null)
            | (Sig::Bool, Value::Bool(_))
            | (Sig::Int, Value::Int(_))
            | (Sig::Double, Value::Double(_))
            | (Sig::String, Value::String(_))
            | (Sig::Timestamp, Value::Timestamp(_))
            | (Sig::Duration, Value::Duration(_))
            | (Sig::List(_), Value::List(_))
            | (Sig::Map(_), Value::Map(_)) => true,
            _ => false,
        }
    }

    /// The type this signature denotes with `T` bound to `param`.
    pub fn to_type(&self, param: &Type) -> Type {
        match self {
            Sig::Null => Type::Null,
            Sig::Bool => Type::Bool,
            Sig::Int => Type::Int,
            Sig::Double => Type::Double,
            Sig::String => Type::String,
            Sig::Timestamp => Type::Timestamp,
            Sig::Duration => Type::Duration,
            Sig::Dyn => Type::Dyn,
            Sig::Param => param.clone(),
            Sig::List(item) => Type::list(item.to_type(param)),
            Sig::Map(value) => Type::map(value.to_type(param)),
            Sig::Optional(inner) => inner.to_type(param).optional(),
        }
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sig::Null => f.write_str("null"),
            Sig::Bool => f.write_str("bool"),
            Sig::Int => f.write_str("int"),
            Sig::Double => f.write_str("double"),
            Sig::String => f.write_str("string"),
            Sig::Timestamp => f.write_str("timestamp"),
            Sig::Duration => f.write_str("duration"),
            Sig::Dyn => f.write_str("dyn"),
            Sig::Param => f.write_str("T"),
            Sig::List(item) => write!(f, "list<{item}>"),
            Sig::Map(value) => write!(f, "map<string, {value}>"),
            Sig::Optional(inner) => write!(f, "{inner}?"),
        }
    }
}

#[derive(Debug)]
pub struct Overload {
    /// For a method, the receiver is the first parameter.
    pub params: &'static [Sig],
    /// Any number of further arguments of this type (`hash(a, b, ...)`).
    pub variadic: Option<Sig>,
    pub result: Sig,
    pub implementation: Implementation,
}

impl Overload {
    pub fn accepts_arity(&self, count: usize) -> bool {
        count == self.params.len() || (self.variadic.is_some() && count > self.params.len())
    }

    /// The parameter for argument `index`.
    pub fn param(&self, index: usize) -> Option<Sig> {
        self.params.get(index).copied().or(self.variadic)
    }

    pub fn accepts(&self, args: &[Value]) -> bool {
        self.accepts_arity(args.len())
            && args
                .iter()
                .enumerate()
                .all(|(i, arg)| self.param(i).is_some_and(|p| p.accepts(arg)))
    }
}

#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    pub form: Form,
    /// One line for hover and `donmaic explain`.
    pub summary: &'static str,
    pub overloads: &'static [Overload],
}

impl Builtin {
    /// The name as written in source: `+` for `_+_`, `-` for `-_`.
    pub fn symbol(&self) -> &'static str {
        if self.form == Form::Operator {
            match self.name {
                "_[_]" => "[]",
                name => name.trim_matches('_'),
            }
        } else {
            self.name
        }
    }

    /// Runs the first overload that accepts `args`.
    pub fn call(&self, args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
        match self.overloads.iter().find(|o| o.accepts(args)) {
            Some(overload) => (overload.implementation)(args, fuel),
            None => Err(self.no_overload(args)),
        }
    }

    fn no_overload(&self, args: &[Value]) -> EvalError {
        let types: Vec<&str> = args.iter().map(Value::type_name).collect();
        let message = match (self.form, types.as_slice()) {
            (Form::Operator, [a, b]) if self.name == "_[_]" => {
                format!("cannot index `{a}` with `{b}`")
            }
            (Form::Operator, [a, b]) => format!("no operator `{a} {} {b}`", self.symbol()),
            (Form::Operator, [a]) => format!("no operator `{}{a}`", self.symbol()),
            _ => format!(
                "no overload of `{}` takes ({})",
                self.name,
                types.join(", ")
            ),
        };
        EvalError::new(error_code::NO_SUCH_OVERLOAD, message)
    }

    /// Every overload as written by a user, e.g. `size(string) -> int`,
    /// `string.startsWith(string) -> bool`, `int + int -> int`.
    pub fn signatures(&self) -> Vec<String> {
        self.overloads
            .iter()
            .map(|o| {
                let mut params: Vec<String> = o.params.iter().map(Sig::to_string).collect();
                if let Some(rest) = o.variadic {
                    params.push(format!("{rest}..."));
                }
                let result = o.result;
                match self.form {
                    Form::Operator => match (self.name, params.as_slice()) {
                        ("_[_]", [a, b]) => format!("{a}[{b}] -> {result}"),
                        (_, [a, b]) => format!("{a} {} {b} -> {result}", self.symbol()),
                        (_, [a]) => format!("{}{a} -> {result}", self.symbol()),
                        _ => format!("{}({}) -> {result}", self.name, params.join(", ")),
                    },
                    Form::Method => {
                        let receiver = params.first().cloned().unwrap_or_default();
                        let rest = params.get(1..).unwrap_or_default().join(", ");
                        format!("{receiver}.{}({rest}) -> {result}", self.name)
                    }
                    Form::Function | Form::Both => {
                        format!("{}({}) -> {result}", self.name, params.join(", "))
                    }
                }
            })
            .collect()
    }
}

/// The macros: calls whose first argument is a variable name (or, for `has`,
/// a field selection) rather than a value. The checker and the evaluator give
/// them their binding semantics; they are listed here for completion,
/// suggestions and documentation.
pub static MACROS: &[(&str, &str)] = &[
    (
        "has",
        "has(a.f) -> bool: whether the map `a` has the key `f`",
    ),
    (
        "all",
        "e.all(x, p) -> bool: `p` holds for every element (map: key)",
    ),
    (
        "exists",
        "e.exists(x, p) -> bool: `p` holds for some element",
    ),
    (
        "exists_one",
        "e.exists_one(x, p) -> bool: `p` holds for exactly one element",
    ),
    (
        "map",
        "e.map(x, f) -> list, e.map(x, p, f) -> list: `f` of each (filtered) element",
    ),
    (
        "filter",
        "e.filter(x, p) -> list: the elements for which `p` holds",
    ),
];

pub fn is_macro(name: &str) -> bool {
    MACROS.iter().any(|(m, _)| *m == name)
}

// Shorthands that keep the table readable.
const BOOL: Sig = Sig::Bool;
const INT: Sig = Sig::Int;
const DOUBLE: Sig = Sig::Double;
const STRING: Sig = Sig::String;
const TIMESTAMP: Sig = Sig::Timestamp;
const DURATION: Sig = Sig::Duration;
const DYN: Sig = Sig::Dyn;
const T: Sig = Sig::Param;
const LIST_T: Sig = Sig::List(&Sig::Param);
const LIST_STRING: Sig = Sig::List(&Sig::String);
const MAP_T: Sig = Sig::Map(&Sig::Param);
const OPTIONAL_T: Sig = Sig::Optional(&Sig::Param);

const fn overload(params: &'static [Sig], result: Sig, implementation: Implementation) -> Overload {
    Overload {
        params,
        variadic: None,
        result,
        implementation,
    }
}

const fn builtin(
    name: &'static str,
    form: Form,
    summary: &'static str,
    overloads: &'static [Overload],
) -> Builtin {
    Builtin {
        name,
        form,
        summary,
        overloads,
    }
}

macro_rules! ordering_overloads {
    ($implementation:expr) => {
        &[
            overload(&[INT, INT], BOOL, $implementation),
            overload(&[DOUBLE, DOUBLE], BOOL, $implementation),
            overload(&[INT, DOUBLE], BOOL, $implementation),
            overload(&[DOUBLE, INT], BOOL, $implementation),
            overload(&[STRING, STRING], BOOL, $implementation),
            overload(&[BOOL, BOOL], BOOL, $implementation),
            overload(&[TIMESTAMP, TIMESTAMP], BOOL, $implementation),
            overload(&[DURATION, DURATION], BOOL, $implementation),
        ]
    };
}

pub static ADD: Builtin = builtin(
    "_+_",
    Form::Operator,
    "addition; concatenation of strings and lists; timestamp and duration arithmetic",
    &[
        overload(&[INT, INT], INT, add),
        overload(&[DOUBLE, DOUBLE], DOUBLE, add),
        overload(&[STRING, STRING], STRING, add),
        overload(&[LIST_T, LIST_T], LIST_T, add),
        overload(&[TIMESTAMP, DURATION], TIMESTAMP, add),
        overload(&[DURATION, TIMESTAMP], TIMESTAMP, add),
        overload(&[DURATION, DURATION], DURATION, add),
    ],
);
pub static SUBTRACT: Builtin = builtin(
    "_-_",
    Form::Operator,
    "subtraction; timestamp and duration arithmetic",
    &[
        overload(&[INT, INT], INT, subtract),
        overload(&[DOUBLE, DOUBLE], DOUBLE, subtract),
        overload(&[TIMESTAMP, DURATION], TIMESTAMP, subtract),
        overload(&[TIMESTAMP, TIMESTAMP], DURATION, subtract),
        overload(&[DURATION, DURATION], DURATION, subtract),
    ],
);
pub static MULTIPLY: Builtin = builtin(
    "_*_",
    Form::Operator,
    "multiplication",
    &[
        overload(&[INT, INT], INT, multiply),
        overload(&[DOUBLE, DOUBLE], DOUBLE, multiply),
    ],
);
pub static DIVIDE: Builtin = builtin(
    "_/_",
    Form::Operator,
    "division (int division truncates toward zero)",
    &[
        overload(&[INT, INT], INT, divide),
        overload(&[DOUBLE, DOUBLE], DOUBLE, divide),
    ],
);
pub static REMAINDER: Builtin = builtin(
    "_%_",
    Form::Operator,
    "remainder of int division (sign of the dividend)",
    &[overload(&[INT, INT], INT, remainder)],
);
pub static LESS: Builtin = builtin(
    "_<_",
    Form::Operator,
    "less than",
    ordering_overloads!(less),
);
pub static LESS_EQUAL: Builtin = builtin(
    "_<=_",
    Form::Operator,
    "less than or equal",
    ordering_overloads!(less_equal),
);
pub static GREATER: Builtin = builtin(
    "_>_",
    Form::Operator,
    "greater than",
    ordering_overloads!(greater),
);
pub static GREATER_EQUAL: Builtin = builtin(
    "_>=_",
    Form::Operator,
    "greater than or equal",
    ordering_overloads!(greater_equal),
);
pub static IN: Builtin = builtin(
    "_in_",
    Form::Operator,
    "membership in a list, or key of a map",
    &[
        overload(&[T, LIST_T], BOOL, membership),
        overload(&[STRING, MAP_T], BOOL, membership),
        overload(&[INT, MAP_T], BOOL, membership),
        overload(&[BOOL, MAP_T], BOOL, membership),
    ],
);
pub static INDEX: Builtin = builtin(
    "_[_]",
    Form::Operator,
    "list element by position, map value by key",
    &[
        overload(&[LIST_T, INT], T, index),
        overload(&[MAP_T, STRING], T, index),
        overload(&[MAP_T, INT], T, index),
        overload(&[MAP_T, BOOL], T, index),
    ],
);
pub static NEGATE: Builtin = builtin(
    "-_",
    Form::Operator,
    "negation",
    &[
        overload(&[INT], INT, negate),
        overload(&[DOUBLE], DOUBLE, negate),
        overload(&[DURATION], DURATION, negate),
    ],
);
pub static NOT: Builtin = builtin(
    "!_",
    Form::Operator,
    "logical not",
    &[overload(&[BOOL], BOOL, not)],
);

pub static SIZE: Builtin = builtin(
    "size",
    Form::Both,
    "characters of a string, elements of a list, entries of a map",
    &[
        overload(&[STRING], INT, size),
        overload(&[LIST_T], INT, size),
        overload(&[MAP_T], INT, size),
    ],
);
pub static CONTAINS: Builtin = builtin(
    "contains",
    Form::Both,
    "whether the string contains the substring",
    &[overload(&[STRING, STRING], BOOL, contains)],
);
pub static STARTS_WITH: Builtin = builtin(
    "startsWith",
    Form::Both,
    "whether the string starts with the prefix",
    &[overload(&[STRING, STRING], BOOL, starts_with)],
);
pub static ENDS_WITH: Builtin = builtin(
    "endsWith",
    Form::Both,
    "whether the string ends with the suffix",
    &[overload(&[STRING, STRING], BOOL, ends_with)],
);
pub static MATCHES: Builtin = builtin(
    "matches",
    Form::Both,
    "whether the RE2 regular expression matches part of the string",
    &[overload(&[STRING, STRING], BOOL, matches)],
);
pub static LOWER: Builtin = builtin(
    "lower",
    Form::Both,
    "the string in lower case",
    &[overload(&[STRING], STRING, lower)],
);
pub static UPPER: Builtin = builtin(
    "upper",
    Form::Both,
    "the string in upper case",
    &[overload(&[STRING], STRING, upper)],
);
pub static TRIM: Builtin = builtin(
    "trim",
    Form::Both,
    "the string without leading and trailing white space",
    &[overload(&[STRING], STRING, trim)],
);
pub static JOIN: Builtin = builtin(
    "join",
    Form::Both,
    "the strings of a list joined by a separator (default empty)",
    &[
        overload(&[LIST_STRING], STRING, join),
        overload(&[LIST_STRING, STRING], STRING, join),
    ],
);
pub static SPLIT: Builtin = builtin(
    "split",
    Form::Both,
    "the parts of a string between separators; an optional limit caps the count (negative: no limit)",
    &[
        overload(&[STRING, STRING], LIST_STRING, split),
        overload(&[STRING, STRING, INT], LIST_STRING, split),
    ],
);
pub static REPLACE: Builtin = builtin(
    "replace",
    Form::Both,
    "the string with every occurrence of `old` replaced by `new`",
    &[overload(&[STRING, STRING, STRING], STRING, replace)],
);
pub static SUBSTRING: Builtin = builtin(
    "substring",
    Form::Both,
    "the characters from `start` (inclusive) to `end` (exclusive, default the end)",
    &[
        overload(&[STRING, INT], STRING, substring),
        overload(&[STRING, INT, INT], STRING, substring),
    ],
);
pub static INT_CONVERSION: Builtin = builtin(
    "int",
    Form::Function,
    "an int from a double (truncated), a decimal string, or a timestamp (Unix seconds)",
    &[
        overload(&[INT], INT, to_int),
        overload(&[DOUBLE], INT, to_int),
        overload(&[STRING], INT, to_int),
        overload(&[TIMESTAMP], INT, to_int),
    ],
);
pub static DOUBLE_CONVERSION: Builtin = builtin(
    "double",
    Form::Function,
    "a double from an int or a string",
    &[
        overload(&[DOUBLE], DOUBLE, to_double),
        overload(&[INT], DOUBLE, to_double),
        overload(&[STRING], DOUBLE, to_double),
    ],
);
pub static STRING_CONVERSION: Builtin = builtin(
    "string",
    Form::Function,
    "the text of a scalar (use toJson for lists and maps)",
    &[
        overload(&[STRING], STRING, to_string),
        overload(&[INT], STRING, to_string),
        overload(&[DOUBLE], STRING, to_string),
        overload(&[BOOL], STRING, to_string),
        overload(&[TIMESTAMP], STRING, to_string),
        overload(&[DURATION], STRING, to_string),
    ],
);
pub static BOOL_CONVERSION: Builtin = builtin(
    "bool",
    Form::Function,
    "a bool from \"true\"/\"false\" (also \"t\", \"f\", \"1\", \"0\", \"TRUE\", \"True\"...)",
    &[
        overload(&[BOOL], BOOL, to_bool),
        overload(&[STRING], BOOL, to_bool),
    ],
);
pub static TIMESTAMP_CONVERSION: Builtin = builtin(
    "timestamp",
    Form::Function,
    "a timestamp from an RFC 3339 string or Unix seconds",
    &[
        overload(&[TIMESTAMP], TIMESTAMP, to_timestamp),
        overload(&[STRING], TIMESTAMP, to_timestamp),
        overload(&[INT], TIMESTAMP, to_timestamp),
    ],
);
pub static DURATION_CONVERSION: Builtin = builtin(
    "duration",
    Form::Function,
    "a duration from a string like \"1h30m\", \"1.5s\", \"-2ms\" or \"100ns\"",
    &[
        overload(&[DURATION], DURATION, to_duration),
        overload(&[STRING], DURATION, to_duration),
    ],
);
pub static GET_FULL_YEAR: Builtin = builtin(
    "getFullYear",
    Form::Method,
    "the year (UTC)",
    &[overload(&[TIMESTAMP], INT, get_full_year)],
);
pub static GET_MONTH: Builtin = builtin(
    "getMonth",
    Form::Method,
    "the month, 0 for January (UTC)",
    &[overload(&[TIMESTAMP], INT, get_month)],
);
pub static GET_DAY_OF_MONTH: Builtin = builtin(
    "getDayOfMonth",
    Form::Method,
    "the day of the month counted from 0 (UTC)",
    &[overload(&[TIMESTAMP], INT, get_day_of_month)],
);
pub static GET_DATE: Builtin = builtin(
    "getDate",
    Form::Method,
    "the day of the month counted from 1 (UTC)",
    &[overload(&[TIMESTAMP], INT, get_date)],
);
pub static GET_DAY_OF_WEEK: Builtin = builtin(
    "getDayOfWeek",
    Form::Method,
    "the day of the week, 0 for Sunday (UTC)",
    &[overload(&[TIMESTAMP], INT, get_day_of_week)],
);
pub static GET_DAY_OF_YEAR: Builtin = builtin(
    "getDayOfYear",
    Form::Method,
    "the day of the year counted from 0 (UTC)",
    &[overload(&[TIMESTAMP], INT, get_day_of_year)],
);
pub static GET_HOURS: Builtin = builtin(
    "getHours",
    Form::Method,
    "the hour of a timestamp (UTC), or the whole hours of a duration",
    &[
        overload(&[TIMESTAMP], INT, get_hours),
        overload(&[DURATION], INT, get_hours),
    ],
);
pub static GET_MINUTES: Builtin = builtin(
    "getMinutes",
    Form::Method,
    "the minute of a timestamp (UTC), or the whole minutes of a duration",
    &[
        overload(&[TIMESTAMP], INT, get_minutes),
        overload(&[DURATION], INT, get_minutes),
    ],
);
pub static GET_SECONDS: Builtin = builtin(
    "getSeconds",
    Form::Method,
    "the second of a timestamp (UTC), or the whole seconds of a duration",
    &[
        overload(&[TIMESTAMP], INT, get_seconds),
        overload(&[DURATION], INT, get_seconds),
    ],
);
pub static GET_MILLISECONDS: Builtin = builtin(
    "getMilliseconds",
    Form::Method,
    "the millisecond within the second of a timestamp, or the whole milliseconds of a duration",
    &[
        overload(&[TIMESTAMP], INT, get_milliseconds),
        overload(&[DURATION], INT, get_milliseconds),
    ],
);
pub static DEFAULT: Builtin = builtin(
    "default",
    Form::Function,
    "the first argument unless it is null, else the second (like `??`)",
    &[overload(&[OPTIONAL_T, T], T, default)],
);
pub static TO_JSON: Builtin = builtin(
    "toJson",
    Form::Function,
    "canonical JSON text of a value (sorted keys, no white space)",
    &[overload(&[DYN], STRING, to_json)],
);
pub static FROM_JSON: Builtin = builtin(
    "fromJson",
    Form::Function,
    "the value of a JSON text",
    &[overload(&[STRING], DYN, from_json)],
);
pub static SHA256: Builtin = builtin(
    "sha256",
    Form::Function,
    "the SHA-256 of a string's UTF-8 bytes, in lower-case hex",
    &[overload(&[STRING], STRING, sha256)],
);
pub static HASH: Builtin = builtin(
    "hash",
    Form::Function,
    "the SHA-256 (hex) of the canonical JSON of the list of its arguments",
    &[Overload {
        params: &[DYN],
        variadic: Some(DYN),
        result: STRING,
        implementation: hash,
    }],
);

/// Every builtin, operators first. Nothing else defines a builtin.
pub static BUILTINS: &[&Builtin] = &[
    &ADD,
    &SUBTRACT,
    &MULTIPLY,
    &DIVIDE,
    &REMAINDER,
    &LESS,
    &LESS_EQUAL,
    &GREATER,
    &GREATER_EQUAL,
    &IN,
    &INDEX,
    &NEGATE,
    &NOT,
    &SIZE,
    &CONTAINS,
    &STARTS_WITH,
    &ENDS_WITH,
    &MATCHES,
    &LOWER,
    &UPPER,
    &TRIM,
    &JOIN,
    &SPLIT,
    &REPLACE,
    &SUBSTRING,
    &INT_CONVERSION,
    &DOUBLE_CONVERSION,
    &STRING_CONVERSION,
    &BOOL_CONVERSION,
    &TIMESTAMP_CONVERSION,
    &DURATION_CONVERSION,
    &GET_FULL_YEAR,
    &GET_MONTH,
    &GET_DAY_OF_MONTH,
    &GET_DATE,
    &GET_DAY_OF_WEEK,
    &GET_DAY_OF_YEAR,
    &GET_HOURS,
    &GET_MINUTES,
    &GET_SECONDS,
    &GET_MILLISECONDS,
    &DEFAULT,
    &TO_JSON,
    &FROM_JSON,
    &SHA256,
    &HASH,
];

/// The named (non-operator) builtin called `name`.
pub fn function(name: &str) -> Option<&'static Builtin> {
    BUILTINS
        .iter()
        .copied()
        .find(|b| b.form != Form::Operator && b.name == name)
}

/// Names of every function and macro, for suggestions.
pub fn function_names() -> impl Iterator<Item = &'static str> {
    BUILTINS
        .iter()
        .filter(|b| b.form != Form::Operator)
        .map(|b| b.name)
        .chain(MACROS.iter().map(|(name, _)| *name))
}

/// The table entry of a binary operator; `None` for `== != && || ??`, which
/// are not functions of evaluated operands (see the module comment).
pub fn binary_operator(op: BinaryOp) -> Option<&'static Builtin> {
    Some(match op {
        BinaryOp::Add => &ADD,
        BinaryOp::Sub => &SUBTRACT,
        BinaryOp::Mul => &MULTIPLY,
        BinaryOp::Div => &DIVIDE,
        BinaryOp::Rem => &REMAINDER,
        BinaryOp::Lt => &LESS,
        BinaryOp::Le => &LESS_EQUAL,
        BinaryOp::Gt => &GREATER,
        BinaryOp::Ge => &GREATER_EQUAL,
        BinaryOp::In => &IN,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::And | BinaryOp::Or | BinaryOp::Coalesce => {
            return None;
        }
    })
}

pub fn unary_operator(op: UnaryOp) -> &'static Builtin {
    match op {
        UnaryOp::Neg => &NEGATE,
        UnaryOp::Not => &NOT,
    }
}

pub fn index_operator() -> &'static Builtin {
    &INDEX
}

// ---------------------------------------------------------------------------
// Implementations.

/// Reached only when an implementation and its signatures disagree; an error
/// rather than a panic keeps evaluation total even then.
fn unexpected(args: &[Value]) -> EvalError {
    let types: Vec<&str> = args.iter().map(Value::type_name).collect();
    EvalError::new(
        error_code::NO_SUCH_OVERLOAD,
        format!("no overload takes ({})", types.join(", ")),
    )
}

fn nanos_of(d: &time::Duration) -> i128 {
    d.whole_nanoseconds()
}

/// Steps for scanning `bytes` bytes: one per 64, so long strings pay for
/// their length and short ones cost nothing extra.
fn scan_steps(bytes: usize) -> u64 {
    (bytes / 64) as u64
}

fn add(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Int(a), Value::Int(b)] => a
            .checked_add(*b)
            .map(Value::Int)
            .ok_or_else(|| EvalError::overflow("int addition")),
        [Value::Double(a), Value::Double(b)] => Ok(Value::Double(a + b)),
        [Value::String(a), Value::String(b)] => {
            fuel.allocate(a.len().saturating_add(b.len()))?;
            let mut joined = String::with_capacity(a.len() + b.len());
            joined.push_str(a);
            joined.push_str(b);
            Ok(Value::string(joined))
        }
        [Value::List(a), Value::List(b)] => {
            fuel.allocate_list(a.len().saturating_add(b.len()))?;
            Ok(Value::List(a.iter().chain(b.iter()).cloned().collect()))
        }
        [Value::Timestamp(t), Value::Duration(d)] | [Value::Duration(d), Value::Timestamp(t)] => {
            Value::timestamp_from_unix_nanos(t.unix_timestamp_nanos() + nanos_of(d))
        }
        [Value::Duration(a), Value::Duration(b)] => {
            Value::duration_from_nanos(nanos_of(a) + nanos_of(b))
        }
        _ => Err(unexpected(args)),
    }
}

fn subtract(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Int(a), Value::Int(b)] => a
            .checked_sub(*b)
            .map(Value::Int)
            .ok_or_else(|| EvalError::overflow("int subtraction")),
        [Value::Double(a), Value::Double(b)] => Ok(Value::Double(a - b)),
        [Value::Timestamp(t), Value::Duration(d)] => {
            Value::timestamp_from_unix_nanos(t.unix_timestamp_nanos() - nanos_of(d))
        }
        [Value::Timestamp(a), Value::Timestamp(b)] => {
            Value::duration_from_nanos(a.unix_timestamp_nanos() - b.unix_timestamp_nanos())
        }
        [Value::Duration(a), Value::Duration(b)] => {
            Value::duration_from_nanos(nanos_of(a) - nanos_of(b))
        }
        _ => Err(unexpected(args)),
    }
}

fn multiply(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Int(a), Value::Int(b)] => a
            .checked_mul(*b)
            .map(Value::Int)
            .ok_or_else(|| EvalError::overflow("int multiplication")),
        [Value::Double(a), Value::Double(b)] => Ok(Value::Double(a * b)),
        _ => Err(unexpected(args)),
    }
}

fn division_by_zero() -> EvalError {
    EvalError::new(error_code::DIVISION_BY_ZERO, "division by zero")
}

fn divide(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Int(_), Value::Int(0)] => Err(division_by_zero()),
        [Value::Int(a), Value::Int(b)] => a
            .checked_div(*b)
            .map(Value::Int)
            .ok_or_else(|| EvalError::overflow("int division")),
        [Value::Double(a), Value::Double(b)] => Ok(Value::Double(a / b)),
        _ => Err(unexpected(args)),
    }
}

fn remainder(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Int(_), Value::Int(0)] => Err(division_by_zero()),
        [Value::Int(a), Value::Int(b)] => a
            .checked_rem(*b)
            .map(Value::Int)
            .ok_or_else(|| EvalError::overflow("int remainder")),
        _ => Err(unexpected(args)),
    }
}

/// The order of two values of the ordered types; `None` when NaN is involved.
pub fn compare(a: &Value, b: &Value, fuel: &mut Fuel) -> Result<Option<Ordering>, EvalError> {
    Ok(match (a, b) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::Int(i), Value::Double(d)) => compare_int_double(*i, *d),
        (Value::Double(d), Value::Int(i)) => compare_int_double(*i, *d).map(Ordering::reverse),
        (Value::String(a), Value::String(b)) => {
            fuel.consume_steps(scan_steps(a.len().min(b.len())))?;
            // Byte order of UTF-8 is code point order.
            Some(a.as_bytes().cmp(b.as_bytes()))
        }
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Timestamp(a), Value::Timestamp(b)) => Some(a.cmp(b)),
        (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
        _ => return Err(unexpected(&[a.clone(), b.clone()])),
    })
}

fn ordering_test(
    args: &[Value],
    fuel: &mut Fuel,
    test: fn(Ordering) -> bool,
) -> Result<Value, EvalError> {
    match args {
        [a, b] => Ok(Value::Bool(compare(a, b, fuel)?.is_some_and(test))),
        _ => Err(unexpected(args)),
    }
}

fn less(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    ordering_test(args, fuel, Ordering::is_lt)
}

fn less_equal(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    ordering_test(args, fuel, Ordering::is_le)
}

fn greater(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    ordering_test(args, fuel, Ordering::is_gt)
}

fn greater_equal(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    ordering_test(args, fuel, Ordering::is_ge)
}

fn membership(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [needle, Value::List(items)] => {
            for item in items.iter() {
                if needle.equals_metered(item, fuel)? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        [key, Value::Map(entries)] => Ok(Value::Bool(
            MapKey::from_value(key).is_some_and(|k| entries.contains_key(&k)),
        )),
        _ => Err(unexpected(args)),
    }
}

fn index(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::List(items), Value::Int(i)] => usize::try_from(*i)
            .ok()
            .and_then(|i| items.get(i))
            .cloned()
            .ok_or_else(|| {
                EvalError::new(
                    error_code::INDEX_OUT_OF_RANGE,
                    format!("index {i} is out of range for a list of {}", items.len()),
                )
            }),
        [Value::Map(entries), key] => MapKey::from_value(key)
            .and_then(|k| entries.get(&k))
            .cloned()
            .ok_or_else(|| no_such_key(key)),
        _ => Err(unexpected(args)),
    }
}

pub fn no_such_key(key: &Value) -> EvalError {
    let shown = match key {
        Value::String(s) => format!("'{}'", truncate_for_message(s)),
        other => truncate_for_message(&other.to_string()),
    };
    EvalError::new(error_code::NO_SUCH_KEY, format!("no such key: {shown}"))
}

fn negate(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Int(i)] => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| EvalError::overflow("int negation")),
        [Value::Double(d)] => Ok(Value::Double(-d)),
        [Value::Duration(d)] => Value::duration_from_nanos(-nanos_of(d)),
        _ => Err(unexpected(args)),
    }
}

fn not(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Bool(b)] => Ok(Value::Bool(!b)),
        _ => Err(unexpected(args)),
    }
}

fn size(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let count = match args {
        [Value::String(s)] => {
            fuel.consume_steps(scan_steps(s.len()))?;
            s.chars().count()
        }
        [Value::List(items)] => items.len(),
        [Value::Map(entries)] => entries.len(),
        _ => return Err(unexpected(args)),
    };
    Ok(Value::Int(i64::try_from(count).unwrap_or(i64::MAX)))
}

fn string_pair(args: &[Value]) -> Result<(&str, &str), EvalError> {
    match args {
        [Value::String(a), Value::String(b)] => Ok((a, b)),
        _ => Err(unexpected(args)),
    }
}

fn contains(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (s, part) = string_pair(args)?;
    fuel.consume_steps(scan_steps(s.len() + part.len()))?;
    Ok(Value::Bool(s.contains(part)))
}

fn starts_with(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (s, prefix) = string_pair(args)?;
    fuel.consume_steps(scan_steps(prefix.len()))?;
    Ok(Value::Bool(s.starts_with(prefix)))
}

fn ends_with(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (s, suffix) = string_pair(args)?;
    fuel.consume_steps(scan_steps(suffix.len()))?;
    Ok(Value::Bool(s.ends_with(suffix)))
}

/// Longest pattern `matches` compiles: patterns come from workflow text, and
/// compiling is the expensive part.
pub const MAX_REGEX_PATTERN_BYTES: usize = 4096;
/// Compiled regexes kept for reuse; the cache is emptied when it fills.
const REGEX_CACHE_CAPACITY: usize = 256;

fn compiled_regex(pattern: &str) -> Result<Arc<regex::Regex>, EvalError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<regex::Regex>>>> = OnceLock::new();
    if pattern.len() > MAX_REGEX_PATTERN_BYTES {
        return Err(EvalError::new(
            error_code::REGEX,
            format!(
                "the regular expression is {} bytes long; the limit is {MAX_REGEX_PATTERN_BYTES}",
                pattern.len()
            ),
        ));
    }
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock only means another thread panicked mid-insert; the map
    // itself is still a valid cache.
    let lookup = |cache: &Mutex<HashMap<String, Arc<regex::Regex>>>| {
        cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(pattern)
            .cloned()
    };
    if let Some(regex) = lookup(cache) {
        return Ok(regex);
    }
    let regex = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(2 << 20)
        .nest_limit(64)
        .build()
        .map(Arc::new)
        .map_err(|e| {
            EvalError::new(
                error_code::REGEX,
                format!("invalid regular expression: {e}"),
            )
        })?;
    let mut guard = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.len() >= REGEX_CACHE_CAPACITY {
        guard.clear();
    }
    guard.insert(pattern.to_owned(), regex.clone());
    Ok(regex)
}

fn matches(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (s, pattern) = string_pair(args)?;
    // Matching is linear in the text times a factor bounded by the pattern.
    fuel.consume_steps(1 + scan_steps(pattern.len()) + scan_steps(s.len()) * 4)?;
    Ok(Value::Bool(compiled_regex(pattern)?.is_match(s)))
}

fn single_string(args: &[Value]) -> Result<&str, EvalError> {
    match args {
        [Value::String(s)] => Ok(s),
        _ => Err(unexpected(args)),
    }
}

fn lower(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let s = single_string(args)?;
    // Case mapping can grow a string, by at most three times in UTF-8.
    fuel.allocate(s.len().saturating_mul(3))?;
    Ok(Value::string(s.to_lowercase()))
}

fn upper(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let s = single_string(args)?;
    fuel.allocate(s.len().saturating_mul(3))?;
    Ok(Value::string(s.to_uppercase()))
}

fn trim(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let s = single_string(args)?.trim();
    fuel.allocate(s.len())?;
    Ok(Value::string(s))
}

fn join(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (items, separator) = match args {
        [Value::List(items)] => (items, ""),
        [Value::List(items), Value::String(separator)] => (items, &**separator),
        _ => return Err(unexpected(args)),
    };
    let mut total = separator
        .len()
        .saturating_mul(items.len().saturating_sub(1));
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => total = total.saturating_add(s.len()),
            other => {
                return Err(EvalError::new(
                    error_code::NO_SUCH_OVERLOAD,
                    format!(
                        "`join` needs a list of strings; element {i} is a `{}`",
                        other.type_name()
                    ),
                ));
            }
        }
    }
    fuel.consume_steps(items.len() as u64)?;
    fuel.allocate(total)?;
    let mut joined = String::with_capacity(total);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            joined.push_str(separator);
        }
        if let Value::String(s) = item {
            joined.push_str(s);
        }
    }
    Ok(Value::string(joined))
}

fn split(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (s, separator, limit) = match args {
        [Value::String(s), Value::String(sep)] => (&**s, &**sep, None),
        [Value::String(s), Value::String(sep), Value::Int(limit)] => (&**s, &**sep, Some(*limit)),
        _ => return Err(unexpected(args)),
    };
    let limit = match limit {
        Some(0) => return Ok(Value::list(Vec::new())),
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    fuel.consume_steps(scan_steps(s.len()))?;
    let natural = if separator.is_empty() {
        s.chars().count()
    } else {
        s.matches(separator).count() + 1
    };
    let parts = natural.min(limit);
    fuel.allocate_list(parts)?;
    fuel.allocate(s.len())?;
    let items: Vec<Value> = if separator.is_empty() {
        // Each character is a part; the last part takes what the limit leaves.
        let mut items = Vec::with_capacity(parts);
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if items.len() + 1 == limit {
                break;
            }
            items.push(Value::string(&rest[..c.len_utf8()]));
            rest = &rest[c.len_utf8()..];
        }
        if !rest.is_empty() {
            items.push(Value::string(rest));
        }
        items
    } else {
        s.splitn(limit, separator).map(Value::string).collect()
    };
    Ok(Value::list(items))
}

fn replace(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (s, old, new) = match args {
        [Value::String(s), Value::String(old), Value::String(new)] => (&**s, &**old, &**new),
        _ => return Err(unexpected(args)),
    };
    fuel.consume_steps(scan_steps(s.len()))?;
    let count = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(old).count()
    };
    let grown = count.saturating_mul(new.len());
    fuel.allocate(s.len().saturating_add(grown))?;
    Ok(Value::string(s.replace(old, new)))
}

fn substring(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let (s, start, end) = match args {
        [Value::String(s), Value::Int(start)] => (&**s, *start, None),
        [Value::String(s), Value::Int(start), Value::Int(end)] => (&**s, *start, Some(*end)),
        _ => return Err(unexpected(args)),
    };
    fuel.consume_steps(scan_steps(s.len()))?;
    let length = s.chars().count();
    let position = |i: i64| -> Result<usize, EvalError> {
        usize::try_from(i)
            .ok()
            .filter(|&i| i <= length)
            .ok_or_else(|| {
                EvalError::new(
                    error_code::INDEX_OUT_OF_RANGE,
                    format!("index {i} is out of range for a string of {length} characters"),
                )
            })
    };
    let start = position(start)?;
    let end = match end {
        Some(end) => position(end)?,
        None => length,
    };
    if end < start {
        return Err(EvalError::invalid_argument(format!(
            "substring end {end} is before its start {start}"
        )));
    }
    let byte_at = |chars: usize| s.char_indices().nth(chars).map_or(s.len(), |(b, _)| b);
    let part = &s[byte_at(start)..byte_at(end)];
    fuel.allocate(part.len())?;
    Ok(Value::string(part))
}

fn to_int(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Int(i)] => Ok(Value::Int(*i)),
        [Value::Double(d)] => {
            // 2^63 is exact as a double; anything at or past it does not fit.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            let whole = d.trunc();
            if whole.is_nan() || !(-LIMIT..LIMIT).contains(&whole) {
                Err(EvalError::overflow(&format!("int({})", format_double(*d))))
            } else {
                Ok(Value::Int(whole as i64))
            }
        }
        [Value::String(s)] => s.parse::<i64>().map(Value::Int).map_err(|_| {
            EvalError::invalid_argument(format!("`{}` is not an int", truncate_for_message(s)))
        }),
        [Value::Timestamp(t)] => Ok(Value::Int(t.unix_timestamp())),
        _ => Err(unexpected(args)),
    }
}

fn to_double(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Double(d)] => Ok(Value::Double(*d)),
        [Value::Int(i)] => Ok(Value::Double(*i as f64)),
        [Value::String(s)] => s.parse::<f64>().map(Value::Double).map_err(|_| {
            EvalError::invalid_argument(format!("`{}` is not a double", truncate_for_message(s)))
        }),
        _ => Err(unexpected(args)),
    }
}

/// A double as CEL (cel-go's `%g`) prints it: the shortest digits that
/// read back the same value, in exponent form when the exponent is below
/// -4 or at least 6: `1`, `0.5`, `123456`, `1.234567e+06`, `1e-05`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e6".
    let scientific = format!("{d:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if d < 0.0 { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..6).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{point}{rest}e{exponent_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    if exponent < 0 {
        let zeros = "0".repeat(exponent.unsigned_abs() as usize - 1);
        return format!("{sign}0.{zeros}{digits}");
    }
    let integer_digits = exponent as usize + 1;
    if digits.len() <= integer_digits {
        let zeros = "0".repeat(integer_digits - digits.len());
        format!("{sign}{digits}{zeros}")
    } else {
        let (integer, fraction) = digits.split_at(integer_digits);
        format!("{sign}{integer}.{fraction}")
    }
}

fn to_string(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let text = match args {
        [Value::String(s)] => return Ok(Value::String(s.clone())),
        [Value::Int(i)] => i.to_string(),
        [Value::Double(d)] => format_double(*d),
        [Value::Bool(b)] => b.to_string(),
        [Value::Timestamp(t)] => format_timestamp(*t),
        [Value::Duration(d)] => format_duration(*d),
        _ => return Err(unexpected(args)),
    };
    fuel.allocate(text.len())?;
    Ok(Value::string(text))
}

fn to_bool(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Bool(b)] => Ok(Value::Bool(*b)),
        [Value::String(s)] => match &**s {
            "1" | "t" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            other => Err(EvalError::invalid_argument(format!(
                "`{}` is not a bool",
                truncate_for_message(other)
            ))),
        },
        _ => Err(unexpected(args)),
    }
}

fn to_timestamp(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Timestamp(t)] => Ok(Value::Timestamp(*t)),
        [Value::String(s)] => Value::parse_timestamp(s),
        [Value::Int(seconds)] => {
            Value::timestamp_from_unix_nanos(i128::from(*seconds) * 1_000_000_000)
        }
        _ => Err(unexpected(args)),
    }
}

fn to_duration(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Duration(d)] => Ok(Value::Duration(*d)),
        [Value::String(s)] => Value::parse_duration(s),
        _ => Err(unexpected(args)),
    }
}

fn timestamp_part(
    args: &[Value],
    part: fn(&time::OffsetDateTime) -> i64,
) -> Result<Value, EvalError> {
    match args {
        [Value::Timestamp(t)] => Ok(Value::Int(part(t))),
        _ => Err(unexpected(args)),
    }
}

fn get_full_year(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    timestamp_part(args, |t| i64::from(t.year()))
}

fn get_month(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    timestamp_part(args, |t| i64::from(u8::from(t.month())) - 1)
}

fn get_day_of_month(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    timestamp_part(args, |t| i64::from(t.day()) - 1)
}

fn get_date(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    timestamp_part(args, |t| i64::from(t.day()))
}

fn get_day_of_week(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    timestamp_part(args, |t| i64::from(t.weekday().number_days_from_sunday()))
}

fn get_day_of_year(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    timestamp_part(args, |t| i64::from(t.ordinal()) - 1)
}

fn time_part(
    args: &[Value],
    of_timestamp: fn(&time::OffsetDateTime) -> i64,
    of_duration: fn(&time::Duration) -> i64,
) -> Result<Value, EvalError> {
    match args {
        [Value::Timestamp(t)] => Ok(Value::Int(of_timestamp(t))),
        [Value::Duration(d)] => Ok(Value::Int(of_duration(d))),
        _ => Err(unexpected(args)),
    }
}

fn get_hours(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    time_part(args, |t| i64::from(t.hour()), |d| d.whole_hours())
}

fn get_minutes(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    time_part(args, |t| i64::from(t.minute()), |d| d.whole_minutes())
}

fn get_seconds(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    time_part(args, |t| i64::from(t.second()), |d| d.whole_seconds())
}

fn get_milliseconds(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    time_part(
        args,
        |t| i64::from(t.millisecond()),
        // Durations are bounded by about 3.2e20 ms, which fits i64 only up to
        // 9.2e18: clamp rather than wrap for the few that do not.
        |d| {
            i64::try_from(d.whole_milliseconds()).unwrap_or(if d.is_negative() {
                i64::MIN
            } else {
                i64::MAX
            })
        },
    )
}

fn default(args: &[Value], _: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [Value::Null, fallback] => Ok(fallback.clone()),
        [value, _] => Ok(value.clone()),
        _ => Err(unexpected(args)),
    }
}

fn canonical_json_metered(value: &Value, fuel: &mut Fuel) -> Result<String, EvalError> {
    // Walking the value costs about one step per node; the text is paid for
    // once it is known, and it is at most a small multiple of the value.
    fuel.consume_steps(count_nodes(value, u64::MAX))?;
    let text = value.to_canonical_json();
    fuel.allocate(text.len())?;
    Ok(text)
}

/// Nodes in a value, stopping once past `limit`.
fn count_nodes(value: &Value, limit: u64) -> u64 {
    let mut count = 1u64;
    match value {
        Value::List(items) => {
            for item in items.iter() {
                if count > limit {
                    break;
                }
                count = count.saturating_add(count_nodes(item, limit));
            }
        }
        Value::Map(entries) => {
            for item in entries.values() {
                if count > limit {
                    break;
                }
                count = count.saturating_add(count_nodes(item, limit));
            }
        }
        _ => {}
    }
    count
}

fn to_json(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    match args {
        [value] => Ok(Value::string(canonical_json_metered(value, fuel)?)),
        _ => Err(unexpected(args)),
    }
}

fn from_json(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let text = single_string(args)?;
    fuel.consume_steps(scan_steps(text.len()))?;
    fuel.allocate(text.len())?;
    // serde_json bounds nesting (128 levels), so parsing cannot overflow the stack.
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        EvalError::invalid_argument(format!("`fromJson` got text that is not JSON: {e}"))
    })?;
    let value = Value::from_json(&json);
    fuel.allocate_list(usize::try_from(count_nodes(&value, u64::MAX)).unwrap_or(usize::MAX))?;
    Ok(value)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}

fn sha256(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let s = single_string(args)?;
    fuel.consume_steps(scan_steps(s.len()))?;
    Ok(Value::string(sha256_hex(s.as_bytes())))
}

fn hash(args: &[Value], fuel: &mut Fuel) -> Result<Value, EvalError> {
    let all = Value::list(args.to_vec());
    let text = canonical_json_metered(&all, fuel)?;
    fuel.consume_steps(scan_steps(text.len()))?;
    Ok(Value::string(sha256_hex(text.as_bytes())))
}

/// A map value from string keys, for callers building values by hand.
pub fn string_map<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::map(
        entries
            .into_iter()
            .map(|(k, v)| (MapKey::from(k), v))
            .collect::<MapEntries>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(builtin: &Builtin, args: Vec<Value>) -> Result<Value, EvalError> {
        builtin.call(&args, &mut Fuel::default())
    }

    #[test]
    fn every_builtin_is_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for builtin in BUILTINS {
            assert!(seen.insert((builtin.name, builtin.form == Form::Operator)));
            assert!(!builtin.overloads.is_empty(), "{}", builtin.name);
            assert!(!builtin.summary.is_empty());
            if builtin.form == Form::Method {
                assert!(builtin.overloads.iter().all(|o| !o.params.is_empty()));
            }
            // A result may mention `T` only if some parameter binds it.
            for o in builtin.overloads {
                let mentions = |s: &Sig| s.to_string().contains('T');
                if mentions(&o.result) {
                    assert!(o.params.iter().any(mentions), "{}", builtin.name);
                }
            }
        }
        for (name, _) in MACROS {
            assert!(
                function(name).is_none(),
                "{name} is both a macro and a function"
            );
        }
        assert!(function("_+_").is_none());
        assert!(function("size").is_some());
    }

    #[test]
    fn signatures_read_like_source() {
        assert_eq!(SIZE.signatures()[0], "size(string) -> int");
        assert_eq!(GET_HOURS.signatures()[1], "duration.getHours() -> int");
        assert_eq!(ADD.signatures()[3], "list<T> + list<T> -> list<T>");
        assert_eq!(INDEX.signatures()[0], "list<T>[int] -> T");
        assert_eq!(NEGATE.signatures()[0], "-int -> int");
        assert_eq!(HASH.signatures()[0], "hash(dyn, dyn...) -> string");
        assert_eq!(DEFAULT.signatures()[0], "default(T?, T) -> T");
    }

    #[test]
    fn dispatch_reports_missing_overloads() {
        let error = call(&ADD, vec![Value::Int(1), Value::Double(1.0)]).unwrap_err();
        assert_eq!(error.code, error_code::NO_SUCH_OVERLOAD);
        assert_eq!(error.message, "no operator `int + double`");
        let error = call(&SIZE, vec![Value::Int(1)]).unwrap_err();
        assert_eq!(error.message, "no overload of `size` takes (int)");
    }

    #[test]
    fn doubles_print_like_cel() {
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (-0.0, "-0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (100.25, "100.25"),
        ];
        for (value, text) in cases {
            assert_eq!(format_double(value), text, "{value}");
        }
    }

    #[test]
    fn regex_limits_and_cache() {
        let long = "a".repeat(MAX_REGEX_PATTERN_BYTES + 1);
        let error = call(&MATCHES, vec![Value::from("a"), Value::string(long)]).unwrap_err();
        assert_eq!(error.code, error_code::REGEX);
        let error = call(&MATCHES, vec![Value::from("a"), Value::from("(")]).unwrap_err();
        assert_eq!(error.code, error_code::REGEX);
        // Repetition that would compile to a huge automaton is refused.
        let error = call(
            &MATCHES,
            vec![Value::from("a"), Value::from("(a{1000}){1000}")],
        )
        .unwrap_err();
        assert_eq!(error.code, error_code::REGEX);
        for _ in 0..2 {
            assert_eq!(
                call(&MATCHES, vec![Value::from("abc"), Value::from("^a.c$")]),
                Ok(Value::Bool(true))
            );
        }
    }

    #[test]
    fn allocation_is_paid_before_it_happens() {
        let big = Value::string("x".repeat(1000));
        let mut fuel = Fuel::new(1_000, 1_500);
        assert!(ADD.call(&[big.clone(), big.clone()], &mut fuel).is_err());
        let mut fuel = Fuel::new(1_000, 100);
        let error = REPLACE
            .call(&[big, Value::from("x"), Value::from("yy")], &mut fuel)
            .unwrap_err();
        assert_eq!(error.code, error_code::FUEL_EXHAUSTED);
    }
}
