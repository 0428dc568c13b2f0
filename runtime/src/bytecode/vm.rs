//! The interpreter of verified expression code, and the straight-through
//! runs of whole expressions whose shape the loader recognised (`Shape`:
//! a root path alone, or compared with a constant).
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

    /// [`Env::root`] for a name as loaded code holds it. An environment
    /// that keeps its names as [`RootName`]s too compares a word and a
    /// length instead of text; the default asks [`Env::root`].
    fn root_named(&self, name: &RootName) -> Option<Cow<'_, Value>> {
        self.root(name.as_str())
    }
}

/// A root variable's name with its first eight bytes read as one word:
/// names of up to eight bytes (all the language's roots) are equal exactly
/// when their words and lengths are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootName {
    head: u64,
    text: Box<str>,
}

impl RootName {
    pub fn new(text: &str) -> RootName {
        let mut head = [0u8; 8];
        for (slot, byte) in head.iter_mut().zip(text.bytes()) {
            *slot = byte;
        }
        RootName {
            head: u64::from_le_bytes(head),
            text: text.into(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    #[inline(always)]
    fn same(&self, other: &RootName) -> bool {
        self.head == other.head
            && self.text.len() == other.text.len()
            && (self.text.len() <= 8
                || self.text.as_bytes().get(8..) == other.text.as_bytes().get(8..))
    }
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
    entries: Vec<(RootName, Value)>,
}

impl Roots {
    pub fn new() -> Roots {
        Roots::default()
    }

    /// Binds `name`, replacing an earlier binding.
    pub fn insert(&mut self, name: &str, value: Value) {
        match self.entries.iter_mut().find(|(n, _)| n.as_str() == name) {
            Some((_, slot)) => *slot = value,
            None => self.entries.push((RootName::new(name), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(n, _)| same_text(n.as_str(), name))
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

    #[inline]
    fn root_named(&self, name: &RootName) -> Option<Cow<'_, Value>> {
        self.entries
            .iter()
            .find(|(n, _)| n.same(name))
            .map(|(_, value)| Cow::Borrowed(value))
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

/// The value of a string key. The maps workflow data is made of are small:
/// their ends are read directly (wrappers like `{output: ...}` have one
/// entry), the keys between them by a scan that compares lengths first;
/// only large maps are searched by the tree's order.
#[inline(always)]
fn lookup<'v>(entries: &'v MapEntries, key: &MapKey, text: &str) -> Option<&'v Value> {
    let is_key = |k: &MapKey| matches!(k, MapKey::String(k) if same_text(k, text));
    let found = |(k, value): (&MapKey, &'v Value)| is_key(k).then_some(value);
    let len = entries.len();
    if len > SCAN_LIMIT {
        return entries.get(key);
    }
    if let Some(value) = entries.first_key_value().and_then(found) {
        return Some(value);
    }
    if len <= 1 {
        return None;
    }
    if let Some(value) = entries.last_key_value().and_then(found) {
        return Some(value);
    }
    // Both ends again: cheaper than an iterator that skips them.
    entries
        .iter()
        .find(|(k, _)| is_key(k))
        .map(|(_, value)| value)
}

/// [`lookup`] for the interpreter's `Has`, out of line.
#[inline(never)]
fn has_key(entries: &MapEntries, key: &MapKey, text: &str) -> bool {
    lookup(entries, key, text).is_some()
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

/// The constant side of a fused comparison: the `PushConst` and the
/// comparison (or string test) a superinstruction covers, with the fuel
/// each charges.
#[derive(Clone, Debug)]
pub(crate) struct ConstCompare {
    pub constant: Value,
    /// A string constant pays for its bytes, as `PushString` does.
    pub constant_bytes: Option<usize>,
    pub constant_steps: u8,
    pub test: ConstTest,
    pub compare_steps: u8,
}

/// What a fused comparison does with its operand and the constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConstTest {
    /// `operand <op> constant`.
    Compare(Compare),
    /// `operand.startsWith(constant)` and the like.
    String(StringTest),
}

/// A root variable and the fields selected from it (none for the root
/// itself).
#[derive(Clone, Debug)]
pub(crate) struct RootPath {
    pub root: RootName,
    pub path: Box<[PathField]>,
}

/// What a fused comparison reads: a root path or a macro variable.
#[derive(Clone, Debug)]
pub(crate) enum Operand {
    Root(RootPath),
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
    /// `LoadRoot`, or `LoadRootPath` (a root with a non-empty path).
    LoadRoot(RootPath),
    LoadLocal(usize),
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
    /// `PushConst` and a comparison or string test in a row
    /// (`nodes.x.output.status == "done"`, `x.startsWith("a")`): the same
    /// fuel, errors and result, without putting either operand on the
    /// stack. The two instructions it covers stay in place behind it; it
    /// continues after them.
    CompareConst {
        operand: Operand,
        with: ConstCompare,
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

    /// The test on `s` and `part`: in place on two strings, charging what
    /// the table's implementation charges; through the table otherwise.
    #[inline(always)]
    fn apply(
        self,
        s: &Value,
        part: &Value,
        fuel: &mut Fuel,
        arguments: &mut Vec<Value>,
    ) -> Result<Value, EvalError> {
        match (s, part) {
            (Value::String(s), Value::String(part)) => {
                let (steps, holds) = match self {
                    StringTest::StartsWith => (scan_steps(part.len()), s.starts_with(&**part)),
                    StringTest::EndsWith => (scan_steps(part.len()), s.ends_with(&**part)),
                    StringTest::Contains => (scan_steps(s.len() + part.len()), s.contains(&**part)),
                };
                charge(fuel, steps).map(|()| Value::Bool(holds))
            }
            (s, part) => call_with(arguments, self.builtin(), &[s, part], fuel),
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

/// Pops the top slot, or returns the underflow error from the enclosing
/// function. A macro rather than a function returning a `Result`: moving
/// that `Result` through memory in the interpreter's loop showed up as
/// stalls on partial stores.
macro_rules! pop {
    ($stack:expr) => {
        match $stack.pop() {
            Some(slot) => slot,
            None => return Err(underflow()),
        }
    };
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
        match &expr.shape {
            Shape::Interpreted => self.interpret(expr, env, fuel),
            Shape::Load { load, steps } => run_load(load, *steps, expr, env, fuel).map_err(|e| *e),
            Shape::Compare { load, with, steps } => {
                run_compare(load, with, *steps, expr, env, fuel, &mut self.arguments)
                    .map_err(|e| *e)
            }
        }
    }

    /// Runs `expr` on the interpreter loop, whatever its shape.
    #[inline(never)]
    fn interpret(
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

/// Whole expressions the loader recognises and the VM runs straight
/// through, without the interpreter's set-up, dispatch and operand stack.
/// Each does exactly what the interpreter does with the same ops: the same
/// fuel charged at the same points, the same result, the same errors at the
/// same spans (the differential and fast-path tests hold both to it).
#[derive(Debug)]
pub(crate) enum Shape {
    /// Anything else: the interpreter loop.
    Interpreted,
    /// `LoadRoot`/`LoadRootPath`, then `Return`: `{{ nodes.x.output.y }}`.
    Load { load: RootPath, steps: ShapeSteps },
    /// A `CompareConst` over a root path, the two ops it covers, then
    /// `Return`: `nodes.x.output.status == "done"`,
    /// `trigger.pr.title.startsWith("feat")`.
    Compare {
        load: RootPath,
        with: ConstCompare,
        steps: ShapeSteps,
    },
}

/// The steps of the first op of a [`Shape`] and of its `Return`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShapeSteps {
    first: u8,
    last: u8,
}

impl Shape {
    /// The shape of loaded, fused ops.
    pub(crate) fn of(ops: &[Op]) -> Shape {
        match ops {
            [first, last] if matches!(last.instr, Instr::Return) => match &first.instr {
                Instr::LoadRoot(load) => Shape::Load {
                    load: load.clone(),
                    steps: ShapeSteps {
                        first: first.steps,
                        last: last.steps,
                    },
                },
                _ => Shape::Interpreted,
            },
            // The fused op continues after the two it covers.
            [first, _, _, last] if matches!(last.instr, Instr::Return) => match &first.instr {
                Instr::CompareConst {
                    operand: Operand::Root(load),
                    with,
                } => Shape::Compare {
                    load: load.clone(),
                    with: with.clone(),
                    steps: ShapeSteps {
                        first: first.steps,
                        last: last.steps,
                    },
                },
                _ => Shape::Interpreted,
            },
            _ => Shape::Interpreted,
        }
    }
}

/// [`Shape::Load`]: the load (op 0), then `Return` (op 1).
#[inline(always)]
fn run_load(
    load: &RootPath,
    steps: ShapeSteps,
    expr: &VerifiedExpr,
    env: &dyn Env,
    fuel: &mut Fuel,
) -> Result<Value, Raised> {
    spend(fuel, steps.first, expr, 0)?;
    let value = load.with(env, expr, 0, |value| Ok(value.clone()))?;
    spend(fuel, steps.last, expr, 1)?;
    Ok(value)
}

/// [`Shape::Compare`]: the fused comparison (op 0) with the two ops it
/// covers, then `Return` (op 3). A call through the builtin table leaves
/// `arguments` empty.
#[inline(always)]
fn run_compare(
    load: &RootPath,
    with: &ConstCompare,
    steps: ShapeSteps,
    expr: &VerifiedExpr,
    env: &dyn Env,
    fuel: &mut Fuel,
    arguments: &mut Vec<Value>,
) -> Result<Value, Raised> {
    spend(fuel, steps.first, expr, 0)?;
    let result = load.with(env, expr, 0, |value| {
        with.test(value, expr, 0, fuel, arguments)
    })?;
    spend(fuel, steps.last, expr, 3)?;
    Ok(result)
}

/// An error on its way out of a straight-through run, boxed so that the
/// hot paths return a word or two in registers instead of moving an
/// [`EvalError`] around; errors are rare and allocate their message anyway.
type Raised = Box<EvalError>;

/// `error` raised by op `pc`.
#[cold]
#[inline(never)]
fn raised(error: EvalError, expr: &VerifiedExpr, pc: usize) -> Raised {
    Box::new(error.at(expr.op_span(pc)))
}

/// Charges `steps` for op `pc`, as the interpreter does.
#[inline(always)]
fn spend(
    fuel: &mut Fuel,
    steps: impl Into<u64>,
    expr: &VerifiedExpr,
    pc: usize,
) -> Result<(), Raised> {
    let steps = steps.into();
    match fuel.steps.checked_sub(steps) {
        Some(left) => {
            fuel.steps = left;
            Ok(())
        }
        None => Err(out_of_fuel(fuel.consume_steps(steps), expr, pc)),
    }
}

/// Pays `bytes` for op `pc`, as the interpreter does.
#[inline(always)]
fn spend_bytes(
    fuel: &mut Fuel,
    bytes: usize,
    expr: &VerifiedExpr,
    pc: usize,
) -> Result<(), Raised> {
    match fuel.bytes.checked_sub(bytes as u64) {
        Some(left) => {
            fuel.bytes = left;
            Ok(())
        }
        None => Err(out_of_fuel(fuel.allocate(bytes), expr, pc)),
    }
}

/// The meter's own error (and state) for a charge that did not fit.
#[cold]
#[inline(never)]
fn out_of_fuel(charged: Result<(), EvalError>, expr: &VerifiedExpr, pc: usize) -> Raised {
    let error = match charged {
        Err(error) => error,
        Ok(()) => broken("a charge that fits the meter refused"),
    };
    raised(error, expr, pc)
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
        self.expr.op_span(pc)
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
                    Instr::Return => return Ok(pop!(stack).into_value()),
                    Instr::Pop => {
                        pop!(stack);
                    }
                    Instr::Jump(target) => {
                        pc = *target as usize;
                        continue 'run;
                    }
                    Instr::JumpIfFalse(target) => match pop!(stack).get() {
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
                    Instr::LoadRoot(load) => match load.read(self.env, expr, pc) {
                        Ok(Cow::Borrowed(value)) => stack.push(Slot::Ref(value)),
                        Ok(Cow::Owned(value)) => stack.push(Slot::Own(value)),
                        Err(e) => break 'raise e,
                    },
                    Instr::LoadLocal(slot) => match self.locals.get(*slot) {
                        Some(Slot::Ref(value)) => stack.push(Slot::Ref(value)),
                        Some(Slot::Own(value)) => stack.push(Slot::Own(value.clone())),
                        None => return Err(broken("a local slot out of range")),
                    },
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
                            Value::Map(entries) => has_key(entries, key, text),
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
                    Instr::CompareConst { operand, with } => {
                        let root;
                        let value: &Value = match operand {
                            Operand::Root(load) => match load.read(self.env, expr, pc) {
                                Ok(found) => {
                                    root = found;
                                    &root
                                }
                                Err(e) => break 'raise e,
                            },
                            Operand::Local(slot) => match self.locals.get(*slot) {
                                Some(local) => local.get(),
                                None => return Err(broken("a local slot out of range")),
                            },
                        };
                        match with.test(value, expr, pc, fuel, self.arguments) {
                            Ok(result) => stack.push(Slot::Own(result)),
                            Err(e) => break 'raise *e,
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
                        match test.apply(a, b, fuel, self.arguments) {
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
                        let right = pop!(stack);
                        let left = pop!(stack);
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
                        let value = pop!(stack).into_value();
                        let key_slot = pop!(stack);
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
                        let target = pop!(stack);
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
                        let condition = pop!(stack);
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
                        let Value::Bool(b) = *pop!(stack).get() else {
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
                        let value = pop!(stack).into_value();
                        let Some(frame) = self.frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        frame.acc.push(value);
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::KeepStep(head) => {
                        let Value::Bool(keep) = *pop!(stack).get() else {
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
#[inline(always)]
fn walk<'v>(
    start: &'v Value,
    path: &[PathField],
    expr: &VerifiedExpr,
) -> Result<&'v Value, Raised> {
    let mut current = start;
    for field in path {
        match current {
            Value::Map(entries) => match lookup(entries, &field.key, &field.name) {
                Some(found) => current = found,
                None if field.optional => return Ok(&NULL),
                None => return Err(path_error(current, field, expr)),
            },
            Value::Null => return Ok(&NULL),
            _ => return Err(path_error(current, field, expr)),
        }
    }
    Ok(current)
}

/// [`walk`] for the interpreter, out of line: its loop is kept small.
#[inline(never)]
fn select_path<'v>(
    start: &'v Value,
    path: &[PathField],
    expr: &VerifiedExpr,
) -> Result<&'v Value, EvalError> {
    walk(start, path, expr).map_err(|e| *e)
}

/// Why `field` cannot be selected from `from`.
#[cold]
#[inline(never)]
fn path_error(from: &Value, field: &PathField, expr: &VerifiedExpr) -> Raised {
    let error = match from {
        Value::Map(_) => builtins::no_such_key(&Value::String(field.name.clone())),
        other => no_such_overload(format!(
            "cannot select field `{}` of a `{}`",
            field.name,
            other.type_name()
        )),
    };
    Box::new(error.at(to_span(expr.span_at(field.offset))))
}

impl RootPath {
    /// `f` of the value of the root followed by the path, for the load at
    /// op `pc`.
    #[inline(always)]
    fn with<R>(
        &self,
        env: &dyn Env,
        expr: &VerifiedExpr,
        pc: usize,
        f: impl FnOnce(&Value) -> Result<R, Raised>,
    ) -> Result<R, Raised> {
        let owned;
        let root = match env.root_named(&self.root) {
            Some(Cow::Borrowed(root)) => root,
            Some(Cow::Owned(root)) => {
                owned = root;
                &owned
            }
            None => return Err(raised(unknown_variable(self.root.as_str()), expr, pc)),
        };
        // One call site, so `f` is inlined.
        f(walk(root, &self.path, expr)?)
    }

    /// The value of the root followed by the path, for the load at op
    /// `pc`: borrowed when the environment lends the root, else a copy of
    /// what was selected.
    #[inline(always)]
    fn read<'e>(
        &self,
        env: &'e dyn Env,
        expr: &VerifiedExpr,
        pc: usize,
    ) -> Result<Cow<'e, Value>, EvalError> {
        match env.root_named(&self.root) {
            Some(Cow::Borrowed(value)) => select_path(value, &self.path, expr).map(Cow::Borrowed),
            Some(Cow::Owned(value)) if self.path.is_empty() => Ok(Cow::Owned(value)),
            Some(Cow::Owned(value)) => {
                select_path(&value, &self.path, expr).map(|v| Cow::Owned(v.clone()))
            }
            None => Err(unknown_variable(self.root.as_str()).at(expr.op_span(pc))),
        }
    }
}

impl ConstCompare {
    /// The rest of the fused comparison at op `pc` once its operand is read:
    /// the constant's and the comparison's fuel, charged where the covered
    /// ops `pc + 1` and `pc + 2` would charge it, then the comparison. Errors
    /// come placed at the op that raised them.
    #[inline(always)]
    fn test(
        &self,
        value: &Value,
        expr: &VerifiedExpr,
        pc: usize,
        fuel: &mut Fuel,
        arguments: &mut Vec<Value>,
    ) -> Result<Value, Raised> {
        spend(fuel, self.constant_steps, expr, pc + 1)?;
        if let Some(bytes) = self.constant_bytes {
            spend_bytes(fuel, bytes, expr, pc + 1)?;
        }
        spend(fuel, self.compare_steps, expr, pc + 2)?;
        let compare = match self.test {
            ConstTest::Compare(compare) => compare,
            ConstTest::String(test) => {
                return test
                    .apply(value, &self.constant, fuel, arguments)
                    .map_err(|e| raised(e, expr, pc + 2));
            }
        };
        let equal = compare == Compare::Eq;
        let result = match (compare, value, &self.constant) {
            // `equals` on two strings, inline: its two charges fail exactly
            // when their sum does, leaving the same (empty) meter.
            (Compare::Eq | Compare::Ne, Value::String(x), Value::String(y)) => {
                spend(fuel, 1 + scan_steps(x.len()), expr, pc + 2)?;
                same_text(x, y) == equal
            }
            (Compare::Eq | Compare::Ne, Value::Int(x), Value::Int(y)) => {
                spend(fuel, 1u64, expr, pc + 2)?;
                (x == y) == equal
            }
            (compare, a, b) => compare_values(compare, a, b, fuel, arguments)
                .map_err(|e| raised(e, expr, pc + 2))?,
        };
        Ok(Value::Bool(result))
    }
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

    #[test]
    fn root_names_are_equal_exactly_when_their_texts_are() {
        let names = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "run",
            "input",
            "nodes",
            "trigger",
            "triggers",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "abcdefghj",
            "aaaaaaaé",
            "aaaaaaaè",
            "aaaaaaa\u{e9}x",
            "aaaaaaa\u{e8}x",
            "a\0",
            "a\0\0",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    RootName::new(a).same(&RootName::new(b)),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
        let roots: Roots = names.iter().map(|n| (*n, Value::string(*n))).collect();
        for name in names {
            assert_eq!(
                roots.root_named(&RootName::new(name)).as_deref(),
                Some(&Value::string(name))
            );
            assert_eq!(roots.root(name).as_deref(), Some(&Value::string(name)));
        }
        assert_eq!(roots.root_named(&RootName::new("missing")), None);
    }

    use super::super::{FieldRef, Instruction};
    use crate::plan::{Constant, ExprCode, SourceRef};
    use serde_json::json;

    /// Constants of the hand-assembled programs: root and field names, then
    /// the constants compared with.
    fn constants() -> Vec<Constant> {
        vec![
            Constant::String("r".into()),
            Constant::String("a".into()),
            Constant::String("b".into()),
            Constant::String("done".into()),
            Constant::Int(5),
            Constant::Double(5f64.to_bits()),
            Constant::Null,
            Constant::Bool(true),
            Constant::String("x".repeat(70)),
            Constant::String("do".into()),
            Constant::String("startsWith".into()),
            Constant::String("endsWith".into()),
            Constant::String("contains".into()),
        ]
    }
    const ROOT: u32 = 0;
    const A: u32 = 1;
    const B: u32 = 2;
    /// Constant indices of the values compared with.
    const COMPARED: [u32; 7] = [3, 4, 5, 6, 7, 8, 9];
    /// Constant indices of the string tests' names.
    const STRING_TESTS: [u32; 3] = [10, 11, 12];

    /// Loads `program` with its own span for every instruction and every
    /// field of a path, so an error's span tells which op raised it.
    fn loaded(program: &[(u8, Instruction)], max_stack: u16) -> VerifiedExpr {
        let mut code = Vec::new();
        let mut spans = Vec::new();
        let span = |start: u32| SourceRef {
            file: 0,
            start,
            end: start + 1,
        };
        for (i, (steps, instruction)) in program.iter().enumerate() {
            let at = u32::try_from(code.len()).expect("short code");
            let base = 100 * u32::try_from(i).expect("short program");
            spans.push((at, span(base)));
            if let Instruction::LoadRootPath { fields, .. } = instruction {
                for k in 0..fields.len() {
                    let k32 = u32::try_from(k).expect("short path");
                    spans.push((instruction.field_offset(at, k), span(base + 10 + k32)));
                }
            }
            instruction.encode(*steps, &mut code);
        }
        let code = ExprCode {
            code,
            max_stack,
            locals: 0,
            result_type: "dyn".into(),
            source: span(9999),
            spans,
        };
        super::super::verify(&code, &constants()).expect("verifies")
    }

    fn path(optional: bool) -> Vec<FieldRef> {
        [A, B].map(|name| FieldRef { name, optional }).to_vec()
    }

    /// Hands out copies of its roots, so nothing can be borrowed from it.
    struct Copies(Roots);

    impl Env for Copies {
        fn root(&self, name: &str) -> Option<Cow<'_, Value>> {
            self.0.get(name).cloned().map(Cow::Owned)
        }
    }

    /// Values of the root `r` that take every branch of a path `r.a.b`:
    /// found (in maps of every size, first, last, between, past the scan
    /// limit), missing, null on the way, a non-map on the way.
    fn roots_to_try() -> Vec<Option<Value>> {
        let mut values = vec![
            json!({"a": {"b": "done"}}),
            json!({"a": {"b": "dont"}}),
            json!({"a": {"b": "undo"}}),
            json!({"a": {"b": "d"}}),
            json!({"a": {"b": ""}}),
            json!({"a": {"b": "x".repeat(70)}}),
            json!({"a": {"b": "x".repeat(69)}}),
            json!({"a": {"b": 5}}),
            json!({"a": {"b": 6}}),
            json!({"a": {"b": 5.0}}),
            json!({"a": {"b": 4.5}}),
            json!({"a": {"b": null}}),
            json!({"a": {"b": true}}),
            json!({"a": {"b": [1, 2]}}),
            json!({"a": {"b": {"c": 1}}}),
            json!({"a": {"a": 1, "b": "done"}}),
            json!({"a": {"b": "done", "c": 1}}),
            json!({"a": {"a": 1, "b": "done", "c": 2}}),
            json!({"a": {"a": 1, "aa": 2, "b": "done", "bb": 3, "c": 4}}),
            json!({"a": {"b0": 0, "b1": 1, "b2": 2, "b3": 3, "b4": 4, "b5": 5,
                         "b6": 6, "b7": 7, "b8": 8, "b": "done"}}),
            json!({"a": {"b0": 0, "b1": 1, "b2": 2, "b3": 3, "b4": 4, "b5": 5,
                         "b6": 6, "b7": 7, "b8": 8}}),
            json!({"a": {}}),
            json!({"a": {"bb": 1}}),
            json!({"a": null}),
            json!({"a": 3}),
            json!({"a": "text"}),
            json!({"a": [1]}),
            json!({}),
            json!({"z": 1}),
            json!(null),
            json!(7),
            json!("root"),
        ]
        .iter()
        .map(|j| Some(Value::from_json(j)))
        .collect::<Vec<_>>();
        values.push(None);
        values
    }

    /// The straight-through run of every shape against the interpreter on
    /// the same code: every root value, lent or copied, every step budget
    /// from nothing to enough, byte budgets around the constant's size.
    fn agrees(program: &[(u8, Instruction)], max_stack: u16) {
        let expr = loaded(program, max_stack);
        assert!(
            !matches!(expr.shape, Shape::Interpreted),
            "not run straight: {program:?}"
        );
        let mut machine = Machine::new();
        for root in roots_to_try() {
            let mut roots = Roots::new();
            roots.insert("other", Value::Int(1));
            if let Some(value) = &root {
                roots.insert("r", value.clone());
            }
            let copies = Copies(roots.clone());
            let tree: BTreeMap<String, Value> = root
                .iter()
                .map(|value| ("r".to_owned(), value.clone()))
                .collect();
            let envs: [&dyn Env; 3] = [&roots, &copies, &tree];
            for env in envs {
                for steps in 0..=12 {
                    for bytes in [0, 3, 4, 69, 70, 1 << 20] {
                        let start = Fuel::new(steps, bytes);
                        let (mut fast, mut slow) = (start, start);
                        let straight = machine.run(&expr, env, &mut fast);
                        let interpreted = machine.interpret(&expr, env, &mut slow);
                        assert_eq!(
                            format!("{straight:?} {fast:?}"),
                            format!("{interpreted:?} {slow:?}"),
                            "{program:?} on {root:?} with {start:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn loads_run_straight_exactly_as_interpreted() {
        agrees(
            &[
                (1, Instruction::LoadRoot { name: ROOT }),
                (0, Instruction::Return),
            ],
            1,
        );
        agrees(
            &[
                (2, Instruction::LoadRoot { name: ROOT }),
                (1, Instruction::Return),
            ],
            1,
        );
        for optional in [false, true] {
            let load = Instruction::LoadRootPath {
                root: ROOT,
                fields: path(optional),
            };
            agrees(&[(3, load.clone()), (0, Instruction::Return)], 1);
            agrees(&[(3, load), (2, Instruction::Return)], 1);
        }
    }

    #[test]
    fn comparisons_run_straight_exactly_as_interpreted() {
        let comparisons = [
            Instruction::Eq,
            Instruction::Ne,
            Instruction::Lt,
            Instruction::Le,
            Instruction::Gt,
            Instruction::Ge,
        ];
        for compare in comparisons {
            for index in COMPARED {
                let constant = Instruction::PushConst { index };
                for optional in [false, true] {
                    let load = Instruction::LoadRootPath {
                        root: ROOT,
                        fields: path(optional),
                    };
                    agrees(
                        &[
                            (5, load),
                            (1, constant.clone()),
                            (0, compare.clone()),
                            (0, Instruction::Return),
                        ],
                        2,
                    );
                }
                // A root alone, and steps on every op, the `Return` too.
                agrees(
                    &[
                        (2, Instruction::LoadRoot { name: ROOT }),
                        (1, constant.clone()),
                        (1, compare.clone()),
                        (1, Instruction::Return),
                    ],
                    2,
                );
            }
        }
    }

    #[test]
    fn string_tests_run_straight_exactly_as_interpreted() {
        for function in STRING_TESTS {
            let test = Instruction::Call { function, argc: 2 };
            for index in COMPARED {
                let constant = Instruction::PushConst { index };
                agrees(
                    &[
                        (
                            4,
                            Instruction::LoadRootPath {
                                root: ROOT,
                                fields: path(true),
                            },
                        ),
                        (1, constant.clone()),
                        (1, test.clone()),
                        (1, Instruction::Return),
                    ],
                    2,
                );
                agrees(
                    &[
                        (
                            4,
                            Instruction::LoadRootPath {
                                root: ROOT,
                                fields: path(false),
                            },
                        ),
                        (1, constant.clone()),
                        (0, test.clone()),
                        (0, Instruction::Return),
                    ],
                    2,
                );
            }
        }
    }

    #[test]
    fn other_programs_stay_interpreted() {
        let load = Instruction::LoadRootPath {
            root: ROOT,
            fields: path(false),
        };
        let cases: [(&[(u8, Instruction)], u16); 3] = [
            // The comparison's result used further.
            (
                &[
                    (4, load.clone()),
                    (1, Instruction::PushConst { index: 3 }),
                    (0, Instruction::Eq),
                    (1, Instruction::Not),
                    (0, Instruction::Return),
                ],
                2,
            ),
            // A comparison of two loads.
            (
                &[
                    (4, load.clone()),
                    (1, Instruction::LoadRoot { name: ROOT }),
                    (0, Instruction::Eq),
                    (0, Instruction::Return),
                ],
                2,
            ),
            // A constant.
            (
                &[
                    (1, Instruction::PushConst { index: 3 }),
                    (0, Instruction::Return),
                ],
                1,
            ),
        ];
        for (program, max_stack) in cases {
            let expr = loaded(program, max_stack);
            assert!(matches!(expr.shape, Shape::Interpreted), "{program:?}");
        }
    }
}
