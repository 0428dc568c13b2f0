//! The interpreter of verified expression code.
//!
//! It mirrors the reference evaluator (`donmai_compiler::eval`) value for
//! value, error for error and fuel step for fuel step: operators and
//! functions go through the one builtin table, with inline fast paths only
//! where the result is the same by construction (int arithmetic and
//! comparisons). It trusts what the verifier proved, but never indexes
//! unchecked: a broken invariant becomes an error, not a panic.

use super::verify::VerifiedExpr;
use super::{CondContext, MacroKind};
use donmai_grammar::Span;
use donmai_stdlib::builtins::{self, Builtin};
use donmai_stdlib::value::{EvalError, Fuel, MapEntries, MapKey, Value, error_code};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The values of the root variables (`nodes`, `trigger`, `input`, `run`,
/// ...), asked for by name. A borrowed value is not copied unless the
/// expression keeps it: `nodes.x.output.status` clones only the status.
pub trait Env {
    fn root(&self, name: &str) -> Option<Cow<'_, Value>>;
}

impl Env for BTreeMap<String, Value> {
    fn root(&self, name: &str) -> Option<Cow<'_, Value>> {
        // An environment has a handful of roots: a scan that compares
        // lengths first beats the tree's ordered comparisons.
        let found = if self.len() <= SCAN_LIMIT {
            self.iter()
                .find(|(key, _)| same_text(key, name))
                .map(|(_, value)| value)
        } else {
            self.get(name)
        };
        found.map(Cow::Borrowed)
    }
}

impl Env for HashMap<String, Value> {
    fn root(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.get(name).map(Cow::Borrowed)
    }
}

/// Root variables in a small vector, found by a scan that compares lengths
/// first: the quickest [`Env`] for the handful of roots an expression sees.
#[derive(Clone, Debug, Default)]
pub struct Roots {
    entries: Vec<(Box<str>, Value)>,
}

impl Roots {
    pub fn new() -> Roots {
        Roots::default()
    }

    /// Binds `name`, replacing an earlier binding.
    pub fn insert(&mut self, name: &str, value: Value) {
        match self.entries.iter_mut().find(|(n, _)| **n == *name) {
            Some((_, slot)) => *slot = value,
            None => self.entries.push((name.into(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(n, _)| same_text(n, name))
            .map(|(_, value)| value)
    }
}

impl<S: AsRef<str>> FromIterator<(S, Value)> for Roots {
    fn from_iter<I: IntoIterator<Item = (S, Value)>>(items: I) -> Roots {
        let mut roots = Roots::new();
        for (name, value) in items {
            roots.insert(name.as_ref(), value);
        }
        roots
    }
}

impl Env for Roots {
    fn root(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.get(name).map(Cow::Borrowed)
    }
}

/// Maps up to this size are searched by a scan rather than by the tree.
const SCAN_LIMIT: usize = 8;

/// String equality that rejects on length before looking at the bytes,
/// and compares short strings with two overlapping word loads instead of a
/// library call.
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=8 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        9..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

#[inline(always)]
fn word4(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

#[inline(always)]
fn word8(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(&[a, b, c, d, e, f, g, h]) => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
        _ => 0,
    }
}

/// The value of a string key: a scan for the small maps workflow data is
/// made of, the tree for larger ones.
#[inline]
fn lookup<'v>(entries: &'v MapEntries, key: &MapKey, text: &str) -> Option<&'v Value> {
    let is_key = |k: &MapKey| matches!(k, MapKey::String(k) if same_text(k, text));
    if entries.len() <= 2 {
        // Wrappers like `{output: ...}`: the ends of the tree, no iterator.
        return [entries.first_key_value(), entries.last_key_value()]
            .into_iter()
            .flatten()
            .find(|(k, _)| is_key(k))
            .map(|(_, value)| value);
    }
    if entries.len() <= SCAN_LIMIT {
        entries
            .iter()
            .find(|(k, _)| is_key(k))
            .map(|(_, value)| value)
    } else {
        entries.get(key)
    }
}

/// A field of a fused selection path, resolved at load time.
#[derive(Clone, Debug)]
pub(crate) struct PathField {
    pub key: MapKey,
    pub name: Arc<str>,
    pub optional: bool,
    /// Code offset whose span names this field.
    pub offset: u32,
}

/// The comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// What a fused comparison reads: a root path or a macro variable.
#[derive(Clone, Debug)]
pub(crate) enum Operand {
    Root(Box<str>),
    RootPath {
        root: Box<str>,
        path: Box<[PathField]>,
    },
    Local(usize),
}

/// A loaded instruction: operands resolved, targets as instruction indices.
#[derive(Debug)]
pub(crate) enum Instr {
    Nop,
    Return,
    Pop,
    Jump(u32),
    JumpIfFalse(u32),
    JumpIfNotNull(u32),
    Raise {
        code: &'static str,
        message: Arc<str>,
    },
    NoOverload {
        builtin: &'static Builtin,
        argc: usize,
    },
    Push(Value),
    PushString {
        value: Value,
        len: usize,
    },
    LoadRoot(Box<str>),
    LoadLocal(usize),
    LoadRootPath {
        root: Box<str>,
        path: Box<[PathField]>,
    },
    SelectPath(Box<[PathField]>),
    Has(MapKey, Arc<str>),
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
    Index,
    Neg,
    Not,
    Call {
        builtin: &'static Builtin,
        argc: usize,
    },
    /// `size` with one argument, run in place (the table's implementation
    /// on other types, for its error).
    Size,
    /// `startsWith`, `endsWith` or `contains` with two arguments, likewise.
    StringTest(StringTest),
    /// A superinstruction the loader forms from `LoadRootPath`/`LoadLocal`,
    /// `PushConst` and a comparison in a row (`nodes.x.output.status ==
    /// "done"`): the same fuel, errors and result, without putting either
    /// operand on the stack. The two instructions it covers stay in place
    /// behind it; it continues after them.
    CompareConst {
        operand: Operand,
        constant: Value,
        /// A string constant pays for its bytes, as `PushString` does.
        constant_bytes: Option<usize>,
        constant_steps: u8,
        compare: Compare,
        compare_steps: u8,
    },
    /// `PushConst` then a comparison: compares the top with the constant
    /// in place.
    CompareTop {
        constant: Value,
        constant_bytes: Option<usize>,
        compare: Compare,
        compare_steps: u8,
    },
    Cond(CondContext),
    Try(u32),
    EndTry,
    JumpIfCond {
        decisive: bool,
        target: u32,
    },
    Logic {
        decisive: bool,
    },
    AllocList(usize),
    MakeList(usize),
    MapNew(usize),
    MapKey,
    MapInsert,
    IterBegin {
        kind: MacroKind,
        reserve: bool,
    },
    IterNext {
        slot: usize,
        exit: u32,
        steps: u8,
    },
    QuantStep {
        decisive: bool,
        head: u32,
    },
    CountStep(u32),
    CollectStep(u32),
    KeepStep(u32),
    IterEnd(MacroKind),
}

/// The string predicates the VM runs without copying their operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StringTest {
    StartsWith,
    EndsWith,
    Contains,
}

impl StringTest {
    pub(crate) fn of(builtin: &Builtin) -> Option<StringTest> {
        if std::ptr::eq(builtin, &builtins::STARTS_WITH) {
            Some(StringTest::StartsWith)
        } else if std::ptr::eq(builtin, &builtins::ENDS_WITH) {
            Some(StringTest::EndsWith)
        } else if std::ptr::eq(builtin, &builtins::CONTAINS) {
            Some(StringTest::Contains)
        } else {
            None
        }
    }

    fn builtin(self) -> &'static Builtin {
        match self {
            StringTest::StartsWith => &builtins::STARTS_WITH,
            StringTest::EndsWith => &builtins::ENDS_WITH,
            StringTest::Contains => &builtins::CONTAINS,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Op {
    pub instr: Instr,
    /// Fuel charged before the instruction runs.
    pub steps: u8,
}

/// A stack or local slot: a value borrowed from the environment or the
/// loaded constants for the whole run, or one the run computed. Borrowing
/// keeps loads, constants and selections free of reference counting.
enum Slot<'a> {
    Ref(&'a Value),
    Own(Value),
}

impl Slot<'_> {
    #[inline]
    fn get(&self) -> &Value {
        match self {
            Slot::Ref(value) => value,
            Slot::Own(value) => value,
        }
    }

    #[inline]
    fn into_value(self) -> Value {
        match self {
            Slot::Ref(value) => value.clone(),
            Slot::Own(value) => value,
        }
    }
}

/// What selecting through null gives, borrowed like any other value.
static NULL: Value = Value::Null;

/// The elements a macro iterates over.
enum Items<'a> {
    Ref(&'a [Value]),
    Own(Arc<[Value]>),
}

impl Items<'_> {
    fn as_slice(&self) -> &[Value] {
        match self {
            Items::Ref(items) => items,
            Items::Own(items) => items,
        }
    }
}

/// One running macro.
struct Frame<'a> {
    kind: MacroKind,
    items: Items<'a>,
    next: usize,
    /// `map`'s results, `filter`'s kept elements.
    acc: Vec<Value>,
    /// `exists_one`'s count of true predicates.
    count: usize,
    /// `all`/`exists`: the first error, raised unless a deciding value comes.
    first_error: Option<EvalError>,
    /// `all` saw `false`, `exists` saw `true`.
    decided: bool,
}

struct Handler {
    target: usize,
    stack: usize,
    errors: usize,
    frames: usize,
}

/// The VM's working memory that outlives a run. Keep one per thread and
/// reuse it; the operand stack, locals and iteration frames live in the
/// run itself (inline, without allocating, for the usual small programs).
#[derive(Default)]
pub struct Machine {
    handlers: Vec<Handler>,
    /// Errors caught by `Try`, one per pending-error marker on the stack.
    errors: Vec<EvalError>,
    /// Arguments of a builtin call, which takes them as one slice.
    arguments: Vec<Value>,
}

/// Operand stacks up to this depth need no allocation.
const INLINE_STACK: usize = 16;
type Stack<'a> = SmallVec<[Slot<'a>; INLINE_STACK]>;
type Locals<'a> = SmallVec<[Slot<'a>; 4]>;
type Frames<'a> = SmallVec<[Frame<'a>; 2]>;

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").finish_non_exhaustive()
    }
}

/// Evaluates `expr` once with a fresh [`Machine`].
pub fn run(expr: &VerifiedExpr, env: &dyn Env, fuel: &mut Fuel) -> Result<Value, EvalError> {
    Machine::new().run(expr, env, fuel)
}

impl VerifiedExpr {
    /// Evaluates the expression once with a fresh [`Machine`].
    pub fn run(&self, env: &dyn Env, fuel: &mut Fuel) -> Result<Value, EvalError> {
        run(self, env, fuel)
    }
}

/// An error the verifier rules out; reported instead of panicking.
fn broken(what: &str) -> EvalError {
    EvalError::new(
        error_code::INVALID_ARGUMENT,
        format!("internal error: the expression VM found {what}, which verified code never has"),
    )
}

fn no_such_overload(message: String) -> EvalError {
    EvalError::new(error_code::NO_SUCH_OVERLOAD, message)
}

fn underflow() -> EvalError {
    broken("a stack underflow")
}

/// The two values on top of the stack.
#[inline]
fn top_two<'s>(stack: &'s [Slot<'_>]) -> Result<(&'s Value, &'s Value), EvalError> {
    match stack
        .len()
        .checked_sub(2)
        .and_then(|start| stack.get(start..))
    {
        Some([a, b]) => Ok((a.get(), b.get())),
        _ => Err(underflow()),
    }
}

/// Replaces the top `argc` slots by `value`.
#[inline]
fn replace(stack: &mut Stack<'_>, argc: usize, value: Value) {
    stack.truncate(stack.len().saturating_sub(argc));
    stack.push(Slot::Own(value));
}

#[inline]
fn pop<'a>(stack: &mut Stack<'a>) -> Result<Slot<'a>, EvalError> {
    stack.pop().ok_or_else(underflow)
}

/// Calls `builtin` with copies of `values` (it takes one slice of values).
fn call_with(
    arguments: &mut Vec<Value>,
    builtin: &Builtin,
    values: &[&Value],
    fuel: &mut Fuel,
) -> Result<Value, EvalError> {
    arguments.clear();
    arguments.extend(values.iter().map(|v| (*v).clone()));
    let outcome = builtin.call(arguments, fuel);
    arguments.clear();
    outcome
}

/// `fuel.consume_steps(steps)`, with the common case inline.
#[inline(always)]
fn charge(fuel: &mut Fuel, steps: u64) -> Result<(), EvalError> {
    match fuel.steps.checked_sub(steps) {
        Some(left) => {
            fuel.steps = left;
            Ok(())
        }
        // The meter's own error and state.
        None => fuel.consume_steps(steps),
    }
}

/// `fuel.allocate(bytes)`, with the common case inline.
#[inline(always)]
fn pay(fuel: &mut Fuel, bytes: usize) -> Result<(), EvalError> {
    match fuel.bytes.checked_sub(bytes as u64) {
        Some(left) => {
            fuel.bytes = left;
            Ok(())
        }
        None => fuel.allocate(bytes),
    }
}

/// One step per 64 bytes scanned, as the builtin table charges.
fn scan_steps(bytes: usize) -> u64 {
    (bytes / 64) as u64
}

fn to_span(source: crate::plan::SourceRef) -> Span {
    Span::new(source.start as usize, source.end as usize)
}

impl Machine {
    pub fn new() -> Machine {
        Machine::default()
    }

    /// Evaluates `expr` with the roots of `env`, spending `fuel`.
    pub fn run(
        &mut self,
        expr: &VerifiedExpr,
        env: &dyn Env,
        fuel: &mut Fuel,
    ) -> Result<Value, EvalError> {
        let mut stack = Stack::new();
        if expr.max_stack > INLINE_STACK {
            stack.reserve(expr.max_stack);
        }
        let mut locals = Locals::new();
        if expr.locals > 0 {
            locals.resize_with(expr.locals, || Slot::Ref(&NULL));
        }
        let mut frames = Frames::new();
        if expr.max_frames > 2 {
            frames.reserve(expr.max_frames);
        }
        let result = Run {
            expr,
            env,
            stack: &mut stack,
            locals: &mut locals,
            frames: &mut frames,
            handlers: &mut self.handlers,
            errors: &mut self.errors,
            arguments: &mut self.arguments,
        }
        .execute(fuel);
        self.handlers.clear();
        self.errors.clear();
        self.arguments.clear();
        result
    }
}

/// One evaluation: the machine's memory typed for the lifetime of the
/// expression and the environment it borrows from.
struct Run<'a, 'm> {
    expr: &'a VerifiedExpr,
    env: &'a dyn Env,
    stack: &'m mut Stack<'a>,
    locals: &'m mut Locals<'a>,
    frames: &'m mut Frames<'a>,
    handlers: &'m mut Vec<Handler>,
    errors: &'m mut Vec<EvalError>,
    arguments: &'m mut Vec<Value>,
}

impl<'a> Run<'a, '_> {
    fn here(&self, pc: usize) -> Span {
        to_span(self.expr.span_at(self.expr.offset_of(pc)))
    }

    fn execute(&mut self, fuel: &mut Fuel) -> Result<Value, EvalError> {
        let expr = self.expr;
        let ops = &expr.ops[..];
        // Loop exits are not charged (the tree walker charges nothing for
        // them), so they are bounded by the steps spent instead: each frame
        // is opened by a macro whose node entry cost a step. Verified code
        // cannot cycle without either binding an element (charged) or
        // exiting a loop (counted here).
        let steps_at_start = fuel.steps;
        let mut exits: u64 = 0;
        let mut pc = 0usize;
        'run: loop {
            let Some(op) = ops.get(pc) else {
                return Err(broken("control leaving the code"));
            };
            if op.steps != 0
                && let Err(e) = charge(fuel, u64::from(op.steps))
            {
                return Err(e.at(self.here(pc)));
            }
            let stack = &mut *self.stack;
            let raised: EvalError = 'raise: {
                match &op.instr {
                    Instr::Nop => {}
                    Instr::Return => return pop(stack).map(Slot::into_value),
                    Instr::Pop => {
                        pop(stack)?;
                    }
                    Instr::Jump(target) => {
                        pc = *target as usize;
                        continue 'run;
                    }
                    Instr::JumpIfFalse(target) => match pop(stack)?.get() {
                        Value::Bool(false) => {
                            pc = *target as usize;
                            continue 'run;
                        }
                        Value::Bool(true) => {}
                        _ => return Err(broken("a jump on a non-bool")),
                    },
                    Instr::JumpIfNotNull(target) => match stack.last().map(Slot::get) {
                        Some(Value::Null) => {
                            stack.pop();
                        }
                        Some(_) => {
                            pc = *target as usize;
                            continue 'run;
                        }
                        None => return Err(underflow()),
                    },
                    Instr::Raise { code, message } => {
                        break 'raise EvalError::new(code, message.as_ref()).at(self.here(pc));
                    }
                    Instr::NoOverload { builtin, argc } => {
                        match self.call(builtin, *argc, fuel)? {
                            Err(e) => break 'raise e.at(self.here(pc)),
                            Ok(()) => return Err(broken("an overload for a NoOverload call")),
                        }
                    }
                    Instr::Push(value) => stack.push(Slot::Ref(value)),
                    Instr::PushString { value, len } => {
                        if let Err(e) = pay(fuel, *len) {
                            break 'raise e.at(self.here(pc));
                        }
                        stack.push(Slot::Ref(value));
                    }
                    Instr::LoadRoot(name) => match self.env.root(name) {
                        Some(Cow::Borrowed(value)) => stack.push(Slot::Ref(value)),
                        Some(Cow::Owned(value)) => stack.push(Slot::Own(value)),
                        None => break 'raise unknown_variable(name).at(self.here(pc)),
                    },
                    Instr::LoadLocal(slot) => match self.locals.get(*slot) {
                        Some(Slot::Ref(value)) => stack.push(Slot::Ref(value)),
                        Some(Slot::Own(value)) => stack.push(Slot::Own(value.clone())),
                        None => return Err(broken("a local slot out of range")),
                    },
                    Instr::LoadRootPath { root, path } => {
                        let slot = match self.env.root(root) {
                            Some(Cow::Borrowed(value)) => match select_path(value, path, expr) {
                                Ok(selected) => Slot::Ref(selected),
                                Err(e) => break 'raise e,
                            },
                            Some(Cow::Owned(value)) => match select_path(&value, path, expr) {
                                Ok(selected) => Slot::Own(selected.clone()),
                                Err(e) => break 'raise e,
                            },
                            None => break 'raise unknown_variable(root).at(self.here(pc)),
                        };
                        stack.push(slot);
                    }
                    Instr::SelectPath(path) => {
                        let Some(top) = stack.last_mut() else {
                            return Err(underflow());
                        };
                        let selected = match top {
                            Slot::Ref(value) => {
                                let value: &'a Value = value;
                                match select_path(value, path, expr) {
                                    Ok(selected) => Slot::Ref(selected),
                                    Err(e) => break 'raise e,
                                }
                            }
                            Slot::Own(value) => match select_path(value, path, expr) {
                                Ok(selected) => Slot::Own(selected.clone()),
                                Err(e) => break 'raise e,
                            },
                        };
                        *top = selected;
                    }
                    Instr::Has(key, text) => {
                        let Some(top) = stack.last_mut() else {
                            return Err(underflow());
                        };
                        let found = match top.get() {
                            Value::Map(entries) => lookup(entries, key, text).is_some(),
                            Value::Null => false,
                            other => {
                                break 'raise no_such_overload(format!(
                                    "`has` needs a map or object, not `{}`",
                                    other.type_name()
                                ))
                                .at(self.here(pc));
                            }
                        };
                        *top = Slot::Own(Value::Bool(found));
                    }
                    Instr::Add | Instr::Sub | Instr::Mul => {
                        let (a, b) = top_two(stack)?;
                        let outcome = match (&op.instr, a, b) {
                            (Instr::Add, Value::Int(a), Value::Int(b)) => a
                                .checked_add(*b)
                                .map(Value::Int)
                                .ok_or_else(|| EvalError::overflow("int addition")),
                            (Instr::Sub, Value::Int(a), Value::Int(b)) => a
                                .checked_sub(*b)
                                .map(Value::Int)
                                .ok_or_else(|| EvalError::overflow("int subtraction")),
                            (Instr::Mul, Value::Int(a), Value::Int(b)) => a
                                .checked_mul(*b)
                                .map(Value::Int)
                                .ok_or_else(|| EvalError::overflow("int multiplication")),
                            (Instr::Add, Value::String(a), Value::String(b)) => {
                                pay(fuel, a.len().saturating_add(b.len())).map(|()| {
                                    let mut joined = String::with_capacity(a.len() + b.len());
                                    joined.push_str(a);
                                    joined.push_str(b);
                                    Value::string(joined)
                                })
                            }
                            (instr, a, b) => {
                                let builtin = match instr {
                                    Instr::Add => &builtins::ADD,
                                    Instr::Sub => &builtins::SUBTRACT,
                                    _ => &builtins::MULTIPLY,
                                };
                                call_with(self.arguments, builtin, &[a, b], fuel)
                            }
                        };
                        match outcome {
                            Ok(value) => replace(stack, 2, value),
                            Err(e) => break 'raise e.at(self.here(pc)),
                        }
                    }
                    Instr::Div | Instr::Rem
                        if matches!(
                            top_two(stack)?,
                            (Value::Int(_), Value::Int(b)) if *b != 0 && *b != -1
                        ) =>
                    {
                        // No zero divisor, no overflow: the table's result
                        // without its dispatch. Other cases go through it.
                        if let (Value::Int(a), Value::Int(b)) = top_two(stack)? {
                            let result = if matches!(op.instr, Instr::Div) {
                                a / b
                            } else {
                                a % b
                            };
                            replace(stack, 2, Value::Int(result));
                        }
                    }
                    Instr::Div | Instr::Rem | Instr::In | Instr::Neg => {
                        let (builtin, argc): (&Builtin, usize) = match &op.instr {
                            Instr::Div => (&builtins::DIVIDE, 2),
                            Instr::Rem => (&builtins::REMAINDER, 2),
                            Instr::In => (&builtins::IN, 2),
                            _ => (&builtins::NEGATE, 1),
                        };
                        // `x in list` compares in place; maps and errors go
                        // through the table.
                        if argc == 2 {
                            let (needle, haystack) = top_two(stack)?;
                            if let (Instr::In, Value::List(items)) = (&op.instr, haystack) {
                                let mut found = false;
                                for item in items.iter() {
                                    match equals(needle, item, fuel) {
                                        Ok(true) => {
                                            found = true;
                                            break;
                                        }
                                        Ok(false) => {}
                                        Err(e) => break 'raise e.at(self.here(pc)),
                                    }
                                }
                                replace(stack, 2, Value::Bool(found));
                                pc += 1;
                                continue 'run;
                            }
                        }
                        match self.call(builtin, argc, fuel)? {
                            Ok(()) => {}
                            Err(e) => break 'raise e.at(self.here(pc)),
                        }
                    }
                    Instr::Lt | Instr::Le | Instr::Gt | Instr::Ge | Instr::Eq | Instr::Ne => {
                        let compare = match &op.instr {
                            Instr::Lt => Compare::Lt,
                            Instr::Le => Compare::Le,
                            Instr::Gt => Compare::Gt,
                            Instr::Ge => Compare::Ge,
                            Instr::Eq => Compare::Eq,
                            _ => Compare::Ne,
                        };
                        let (a, b) = top_two(stack)?;
                        match compare_values(compare, a, b, fuel, self.arguments) {
                            Ok(value) => replace(stack, 2, Value::Bool(value)),
                            Err(e) => break 'raise e.at(self.here(pc)),
                        }
                    }
                    Instr::CompareConst {
                        operand,
                        constant,
                        constant_bytes,
                        constant_steps,
                        compare,
                        compare_steps,
                    } => {
                        // The steps of the three instructions, in their order.
                        let root;
                        let value: &Value = match operand {
                            Operand::Root(name) => {
                                root = match self.env.root(name) {
                                    Some(value) => value,
                                    None => break 'raise unknown_variable(name).at(self.here(pc)),
                                };
                                &root
                            }
                            Operand::RootPath { root: name, path } => {
                                root = match self.env.root(name) {
                                    Some(value) => value,
                                    None => break 'raise unknown_variable(name).at(self.here(pc)),
                                };
                                match select_path(&root, path, expr) {
                                    Ok(selected) => selected,
                                    Err(e) => break 'raise e,
                                }
                            }
                            Operand::Local(slot) => match self.locals.get(*slot) {
                                Some(local) => local.get(),
                                None => return Err(broken("a local slot out of range")),
                            },
                        };
                        if let Err(e) = charge(fuel, u64::from(*constant_steps)) {
                            return Err(e.at(self.here(pc + 1)));
                        }
                        if let Some(bytes) = constant_bytes
                            && let Err(e) = pay(fuel, *bytes)
                        {
                            return Err(e.at(self.here(pc + 1)));
                        }
                        if let Err(e) = charge(fuel, u64::from(*compare_steps)) {
                            return Err(e.at(self.here(pc + 2)));
                        }
                        match compare_values(*compare, value, constant, fuel, self.arguments) {
                            Ok(result) => stack.push(Slot::Own(Value::Bool(result))),
                            Err(e) => break 'raise e.at(self.here(pc + 2)),
                        }
                        pc += 3;
                        continue 'run;
                    }
                    Instr::CompareTop {
                        constant,
                        constant_bytes,
                        compare,
                        compare_steps,
                    } => {
                        // This op's steps (the constant's) were charged above.
                        if let Some(bytes) = constant_bytes
                            && let Err(e) = pay(fuel, *bytes)
                        {
                            return Err(e.at(self.here(pc)));
                        }
                        if let Err(e) = charge(fuel, u64::from(*compare_steps)) {
                            return Err(e.at(self.here(pc + 1)));
                        }
                        let Some(top) = stack.last_mut() else {
                            return Err(underflow());
                        };
                        match compare_values(*compare, top.get(), constant, fuel, self.arguments) {
                            Ok(result) => *top = Slot::Own(Value::Bool(result)),
                            Err(e) => break 'raise e.at(self.here(pc + 1)),
                        }
                        pc += 2;
                        continue 'run;
                    }
                    Instr::Index => {
                        let n = stack.len();
                        let indexed = match stack.get(n.wrapping_sub(2)..) {
                            // Indexing null gives null, after both sides ran.
                            Some([container, _]) if container.get().is_null() => {
                                Some(Slot::Ref(&NULL))
                            }
                            Some([Slot::Ref(Value::List(items)), index]) => match index.get() {
                                Value::Int(i) => usize::try_from(*i)
                                    .ok()
                                    .and_then(|i| items.get(i))
                                    .map(Slot::Ref),
                                _ => None,
                            },
                            Some([_, _]) => None,
                            _ => return Err(underflow()),
                        };
                        match indexed {
                            Some(slot) => {
                                stack.truncate(n - 2);
                                stack.push(slot);
                            }
                            None => match self.call(builtins::index_operator(), 2, fuel)? {
                                Ok(()) => {}
                                Err(e) => break 'raise e.at(self.here(pc)),
                            },
                        }
                    }
                    Instr::Not => match stack.last_mut() {
                        Some(slot) => match slot.get() {
                            Value::Bool(b) => *slot = Slot::Own(Value::Bool(!b)),
                            other => {
                                break 'raise no_such_overload(format!(
                                    "`!` needs a `bool`, not `{}`",
                                    other.type_name()
                                ))
                                .at(self.here(pc));
                            }
                        },
                        None => return Err(underflow()),
                    },
                    Instr::Call { builtin, argc } => match self.call(builtin, *argc, fuel)? {
                        Ok(()) => {}
                        Err(e) => break 'raise e.at(self.here(pc)),
                    },
                    Instr::Size => {
                        let Some(top) = stack.last_mut() else {
                            return Err(underflow());
                        };
                        let count = match top.get() {
                            Value::String(s) => match charge(fuel, scan_steps(s.len())) {
                                Ok(()) => s.chars().count(),
                                Err(e) => break 'raise e.at(self.here(pc)),
                            },
                            Value::List(items) => items.len(),
                            Value::Map(entries) => entries.len(),
                            _ => match self.call(&builtins::SIZE, 1, fuel)? {
                                Ok(()) => {
                                    pc += 1;
                                    continue 'run;
                                }
                                Err(e) => break 'raise e.at(self.here(pc)),
                            },
                        };
                        *top = Slot::Own(Value::Int(i64::try_from(count).unwrap_or(i64::MAX)));
                    }
                    Instr::StringTest(test) => {
                        let (a, b) = top_two(stack)?;
                        let outcome = match (a, b) {
                            (Value::String(s), Value::String(part)) => {
                                let (steps, holds) = match test {
                                    StringTest::StartsWith => {
                                        (scan_steps(part.len()), s.starts_with(&**part))
                                    }
                                    StringTest::EndsWith => {
                                        (scan_steps(part.len()), s.ends_with(&**part))
                                    }
                                    StringTest::Contains => {
                                        (scan_steps(s.len() + part.len()), s.contains(&**part))
                                    }
                                };
                                charge(fuel, steps).map(|()| Value::Bool(holds))
                            }
                            (a, b) => call_with(self.arguments, test.builtin(), &[a, b], fuel),
                        };
                        match outcome {
                            Ok(value) => replace(stack, 2, value),
                            Err(e) => break 'raise e.at(self.here(pc)),
                        }
                    }
                    Instr::Cond(context) => match stack.last().map(Slot::get) {
                        Some(Value::Bool(_)) => {}
                        Some(other) => {
                            break 'raise no_such_overload(format!(
                                "{} must be a `bool`, not `{}`",
                                context.subject(),
                                other.type_name()
                            ))
                            .at(self.here(pc));
                        }
                        None => return Err(underflow()),
                    },
                    Instr::Try(target) => self.handlers.push(Handler {
                        target: *target as usize,
                        stack: stack.len(),
                        errors: self.errors.len(),
                        frames: self.frames.len(),
                    }),
                    Instr::EndTry => {
                        if self.handlers.pop().is_none() {
                            return Err(broken("an EndTry without a Try"));
                        }
                    }
                    Instr::JumpIfCond { decisive, target } => {
                        if let Some(Value::Bool(b)) = stack.last().map(Slot::get)
                            && b == decisive
                        {
                            pc = *target as usize;
                            continue 'run;
                        }
                    }
                    Instr::Logic { decisive } => {
                        let right = pop(stack)?;
                        let left = pop(stack)?;
                        // Errors were caught left first, so the right's is on top.
                        let right_error = pending_error(right.get(), self.errors)?;
                        let left_error = pending_error(left.get(), self.errors)?;
                        let decides =
                            |slot: &Slot| matches!(slot.get(), Value::Bool(b) if b == decisive);
                        if decides(&right) || decides(&left) {
                            stack.push(Slot::Own(Value::Bool(*decisive)));
                        } else if let Some(error) = left_error.or(right_error) {
                            break 'raise error;
                        } else {
                            stack.push(Slot::Own(Value::Bool(!*decisive)));
                        }
                    }
                    Instr::AllocList(len) => {
                        if let Err(e) = fuel.allocate_list(*len) {
                            break 'raise e.at(self.here(pc));
                        }
                    }
                    Instr::MakeList(len) => {
                        let Some(start) = stack.len().checked_sub(*len) else {
                            return Err(underflow());
                        };
                        let items: Arc<[Value]> =
                            stack.drain(start..).map(Slot::into_value).collect();
                        stack.push(Slot::Own(Value::List(items)));
                    }
                    Instr::MapNew(len) => {
                        if let Err(e) = fuel.allocate_map(*len) {
                            break 'raise e.at(self.here(pc));
                        }
                        stack.push(Slot::Own(Value::map(MapEntries::new())));
                    }
                    Instr::MapKey => match stack.last().map(Slot::get) {
                        Some(Value::String(_) | Value::Int(_) | Value::Bool(_)) => {}
                        Some(other) => {
                            break 'raise EvalError::invalid_argument(format!(
                                "map keys must be `string`, `int` or `bool`, not `{}`",
                                other.type_name()
                            ))
                            .at(self.here(pc));
                        }
                        None => return Err(underflow()),
                    },
                    Instr::MapInsert => {
                        let value = pop(stack)?.into_value();
                        let key_slot = pop(stack)?;
                        let key_value = key_slot.get();
                        let key = match key_value {
                            Value::String(s) => MapKey::String(s.clone()),
                            Value::Int(i) => MapKey::Int(*i),
                            Value::Bool(b) => MapKey::Bool(*b),
                            _ => return Err(broken("an unchecked map key")),
                        };
                        let Some(Slot::Own(Value::Map(entries))) = stack.last_mut() else {
                            return Err(broken("a map insertion without a map"));
                        };
                        if entries.contains_key(&key) {
                            break 'raise EvalError::invalid_argument(format!(
                                "the map has the key {key_value} twice"
                            ))
                            .at(self.here(pc));
                        }
                        Arc::make_mut(entries).insert(key, value);
                    }
                    Instr::IterBegin { kind, reserve } => {
                        let target = pop(stack)?;
                        let items = match target {
                            Slot::Ref(Value::List(items)) => Items::Ref(items),
                            Slot::Own(Value::List(items)) => Items::Own(items),
                            Slot::Ref(Value::Map(_)) | Slot::Own(Value::Map(_)) => {
                                let Value::Map(entries) = target.get() else {
                                    return Err(broken("a map that is not a map"));
                                };
                                if let Err(e) = fuel.allocate_list(entries.len()) {
                                    break 'raise e.at(self.here(pc));
                                }
                                Items::Own(entries.keys().map(MapKey::to_value).collect())
                            }
                            other => {
                                break 'raise no_such_overload(format!(
                                    "`{}` needs a list or a map, not `{}`",
                                    kind.name(),
                                    other.get().type_name()
                                ))
                                .at(self.here(pc));
                            }
                        };
                        if *reserve && let Err(e) = fuel.allocate_list(items.as_slice().len()) {
                            let at = super::Instruction::reserve_offset(expr.offset_of(pc));
                            break 'raise e.at(to_span(expr.span_at(at)));
                        }
                        self.frames.push(Frame {
                            kind: *kind,
                            items,
                            next: 0,
                            acc: Vec::new(),
                            count: 0,
                            first_error: None,
                            decided: false,
                        });
                    }
                    Instr::IterNext { slot, exit, steps } => {
                        let Some(frame) = self.frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        let element = match &frame.items {
                            Items::Ref(items) => items.get(frame.next).map(Slot::Ref),
                            Items::Own(items) => {
                                items.get(frame.next).map(|v| Slot::Own(v.clone()))
                            }
                        };
                        match element {
                            Some(element) => {
                                if let Err(e) = charge(fuel, u64::from(*steps)) {
                                    return Err(e.at(self.here(pc)));
                                }
                                let Some(local) = self.locals.get_mut(*slot) else {
                                    return Err(broken("a local slot out of range"));
                                };
                                *local = element;
                                frame.next += 1;
                            }
                            None => {
                                exits += 1;
                                if exits > steps_at_start.saturating_sub(fuel.steps) {
                                    fuel.steps = 0;
                                    return Err(EvalError::new(
                                        error_code::FUEL_EXHAUSTED,
                                        "the evaluation ran out of steps",
                                    )
                                    .at(self.here(pc)));
                                }
                                pc = *exit as usize;
                                continue 'run;
                            }
                        }
                    }
                    Instr::QuantStep { decisive, head } => {
                        let condition = pop(stack)?;
                        let Some(frame) = self.frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        match condition.get() {
                            Value::Bool(b) if b == decisive => {
                                frame.decided = true;
                                frame.next = frame.items.as_slice().len();
                            }
                            Value::Bool(_) => {}
                            _ => {
                                let error = self
                                    .errors
                                    .pop()
                                    .ok_or_else(|| broken("a pending error without an error"))?;
                                frame.first_error.get_or_insert(error);
                            }
                        }
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::CountStep(head) => {
                        let Value::Bool(b) = *pop(stack)?.get() else {
                            return Err(broken("a count of a non-bool"));
                        };
                        let Some(frame) = self.frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        frame.count += usize::from(b);
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::CollectStep(head) => {
                        let value = pop(stack)?.into_value();
                        let Some(frame) = self.frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        frame.acc.push(value);
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::KeepStep(head) => {
                        let Value::Bool(keep) = *pop(stack)?.get() else {
                            return Err(broken("a filter on a non-bool"));
                        };
                        let Some(frame) = self.frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        if keep {
                            let Some(item) = frame
                                .next
                                .checked_sub(1)
                                .and_then(|i| frame.items.as_slice().get(i))
                            else {
                                return Err(broken("a filter before the first element"));
                            };
                            let item = item.clone();
                            frame.acc.push(item);
                        }
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::IterEnd(kind) => {
                        let Some(frame) = self.frames.pop() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        if frame.kind != *kind {
                            return Err(broken("a frame of another macro"));
                        }
                        let result = match kind {
                            MacroKind::All | MacroKind::Exists => {
                                let decisive = *kind == MacroKind::Exists;
                                match (frame.decided, frame.first_error) {
                                    (true, _) => Value::Bool(decisive),
                                    (false, Some(error)) => break 'raise error,
                                    (false, None) => Value::Bool(!decisive),
                                }
                            }
                            MacroKind::ExistsOne => Value::Bool(frame.count == 1),
                            MacroKind::Map => Value::list(frame.acc),
                            MacroKind::Filter => {
                                if let Err(e) = fuel.allocate_list(frame.acc.len()) {
                                    break 'raise e.at(self.here(pc));
                                }
                                Value::list(frame.acc)
                            }
                            MacroKind::Has => return Err(broken("the end of a `has` frame")),
                        };
                        stack.push(Slot::Own(result));
                    }
                }
                pc += 1;
                continue 'run;
            };
            // Fuel exhaustion is final; anything else goes to the innermost
            // `Try`, which resumes with a pending-error marker.
            if raised.code == error_code::FUEL_EXHAUSTED {
                return Err(raised);
            }
            let Some(handler) = self.handlers.pop() else {
                return Err(raised);
            };
            self.stack.truncate(handler.stack);
            self.errors.truncate(handler.errors);
            self.frames.truncate(handler.frames);
            self.errors.push(raised);
            self.stack.push(Slot::Ref(&NULL));
            pc = handler.target;
        }
    }

    /// Calls `builtin` on the top `argc` values and replaces them by the
    /// result. The outer error is a broken invariant, the inner one the call's.
    fn call(
        &mut self,
        builtin: &Builtin,
        argc: usize,
        fuel: &mut Fuel,
    ) -> Result<Result<(), EvalError>, EvalError> {
        let Some(start) = self.stack.len().checked_sub(argc) else {
            return Err(underflow());
        };
        self.arguments.clear();
        self.arguments
            .extend(self.stack[start..].iter().map(|slot| slot.get().clone()));
        let outcome = builtin.call(self.arguments, fuel);
        self.arguments.clear();
        Ok(outcome.map(|value| replace(self.stack, argc, value)))
    }
}

/// `a <op> b`, as the operator's table entry (or CEL equality) computes it.
#[inline]
fn compare_values(
    compare: Compare,
    a: &Value,
    b: &Value,
    fuel: &mut Fuel,
    arguments: &mut Vec<Value>,
) -> Result<bool, EvalError> {
    let (builtin, test): (&Builtin, fn(std::cmp::Ordering) -> bool) = match compare {
        Compare::Eq => return equals(a, b, fuel),
        Compare::Ne => return equals(a, b, fuel).map(|equal| !equal),
        Compare::Lt => (&builtins::LESS, std::cmp::Ordering::is_lt),
        Compare::Le => (&builtins::LESS_EQUAL, std::cmp::Ordering::is_le),
        Compare::Gt => (&builtins::GREATER, std::cmp::Ordering::is_gt),
        Compare::Ge => (&builtins::GREATER_EQUAL, std::cmp::Ordering::is_ge),
    };
    if let (Value::Int(a), Value::Int(b)) = (a, b) {
        return Ok(test(a.cmp(b)));
    }
    if orderable(a, b) {
        // Exactly the pairs the table's overloads take.
        return builtins::compare(a, b, fuel).map(|order| order.is_some_and(test));
    }
    match call_with(arguments, builtin, &[a, b], fuel)? {
        Value::Bool(result) => Ok(result),
        _ => Err(broken("a comparison that is not a bool")),
    }
}

/// CEL equality ([`Value::equals_metered`]), with its scalar cases inline.
#[inline]
fn equals(a: &Value, b: &Value, fuel: &mut Fuel) -> Result<bool, EvalError> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            charge(fuel, 1)?;
            charge(fuel, scan_steps(x.len()))?;
            Ok(same_text(x, y))
        }
        (Value::Int(x), Value::Int(y)) => charge(fuel, 1).map(|()| x == y),
        (Value::Bool(x), Value::Bool(y)) => charge(fuel, 1).map(|()| x == y),
        _ => a.equals_metered(b, fuel),
    }
}

/// Whether an ordering operator's overloads take `a` and `b`.
fn orderable(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (
            Value::Int(_) | Value::Double(_),
            Value::Int(_) | Value::Double(_)
        ) | (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Timestamp(_), Value::Timestamp(_))
            | (Value::Duration(_), Value::Duration(_))
    )
}

/// The error a condition slot stands for, if it holds the marker.
fn pending_error(
    slot: &Value,
    errors: &mut Vec<EvalError>,
) -> Result<Option<EvalError>, EvalError> {
    match slot {
        Value::Bool(_) => Ok(None),
        Value::Null => errors
            .pop()
            .map(Some)
            .ok_or_else(|| broken("a pending error without an error")),
        _ => Err(broken("a condition that is neither a bool nor an error")),
    }
}

fn unknown_variable(name: &str) -> EvalError {
    EvalError::new(
        error_code::UNKNOWN_VARIABLE,
        format!("unknown variable `{name}`"),
    )
}

/// Follows `path` from `start` without copying anything. Null propagates;
/// a missing key is an error unless the field was written `?.`.
fn select_path<'v>(
    start: &'v Value,
    path: &[PathField],
    expr: &VerifiedExpr,
) -> Result<&'v Value, EvalError> {
    let mut current = start;
    for field in path {
        match current {
            Value::Null => return Ok(&NULL),
            Value::Map(entries) => match lookup(entries, &field.key, &field.name) {
                Some(found) => current = found,
                None if field.optional => return Ok(&NULL),
                None => {
                    return Err(builtins::no_such_key(&Value::String(field.name.clone()))
                        .at(to_span(expr.span_at(field.offset))));
                }
            },
            other => {
                return Err(no_such_overload(format!(
                    "cannot select field `{}` of a `{}`",
                    field.name,
                    other.type_name()
                ))
                .at(to_span(expr.span_at(field.offset))));
            }
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_is_string_equality() {
        for len in 0..=24usize {
            let base: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            assert!(same_text(&base, &base.clone()), "{base}");
            for at in 0..len {
                let mut bytes = base.clone().into_bytes();
                bytes[at] = b'Z';
                let other = String::from_utf8(bytes).expect("ascii");
                assert!(!same_text(&base, &other), "{base} vs {other}");
            }
            assert!(!same_text(&base, &format!("{base}a")));
        }
        assert!(same_text("héllo", "héllo"));
        assert!(!same_text("héllo", "hèllo"));
    }
}
