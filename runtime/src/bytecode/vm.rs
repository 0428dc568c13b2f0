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
        self.get(name).map(Cow::Borrowed)
    }
}

impl Env for HashMap<String, Value> {
    fn root(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.get(name).map(Cow::Borrowed)
    }
}

/// A field of a fused selection path, resolved at load time.
#[derive(Debug)]
pub(crate) struct PathField {
    pub key: MapKey,
    pub name: Arc<str>,
    pub optional: bool,
    /// Code offset whose span names this field.
    pub offset: u32,
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
    Has(MapKey),
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

#[derive(Debug)]
pub(crate) struct Op {
    pub instr: Instr,
    /// Fuel charged before the instruction runs.
    pub steps: u8,
}

/// One running macro.
struct Frame {
    kind: MacroKind,
    items: Arc<[Value]>,
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

/// The VM's working memory. Keep one per thread and reuse it: after the
/// first runs it no longer allocates for its stacks.
#[derive(Default)]
pub struct Machine {
    stack: Vec<Value>,
    locals: Vec<Value>,
    frames: Vec<Frame>,
    handlers: Vec<Handler>,
    /// Errors caught by `Try`, one per pending-error marker on the stack.
    errors: Vec<EvalError>,
}

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

/// The last `argc` values of the stack.
#[inline]
fn args(stack: &[Value], argc: usize) -> Result<&[Value], EvalError> {
    match stack.len().checked_sub(argc) {
        Some(start) => Ok(&stack[start..]),
        None => Err(broken("a stack underflow")),
    }
}

/// Replaces the top `argc` values by `value`.
#[inline]
fn replace(stack: &mut Vec<Value>, argc: usize, value: Value) {
    stack.truncate(stack.len().saturating_sub(argc));
    stack.push(value);
}

#[inline]
fn pop(stack: &mut Vec<Value>) -> Result<Value, EvalError> {
    stack.pop().ok_or_else(|| broken("a stack underflow"))
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
        self.stack.reserve(expr.max_stack);
        self.locals.resize(expr.locals, Value::Null);
        self.frames.reserve(expr.max_frames);
        let result = self.execute(expr, env, fuel);
        // Release what the run referenced; keep the capacity.
        self.stack.clear();
        self.locals.clear();
        self.frames.clear();
        self.handlers.clear();
        self.errors.clear();
        result
    }

    fn execute(
        &mut self,
        expr: &VerifiedExpr,
        env: &dyn Env,
        fuel: &mut Fuel,
    ) -> Result<Value, EvalError> {
        let Machine {
            stack,
            locals,
            frames,
            handlers,
            errors,
        } = self;
        let ops = &expr.ops[..];
        let here = |pc: usize| to_span(expr.span_at(expr.offset_of(pc)));
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
                && let Err(e) = fuel.consume_steps(u64::from(op.steps))
            {
                return Err(e.at(here(pc)));
            }
            let raised: EvalError = 'raise: {
                match &op.instr {
                    Instr::Nop => {}
                    Instr::Return => return pop(stack),
                    Instr::Pop => {
                        pop(stack)?;
                    }
                    Instr::Jump(target) => {
                        pc = *target as usize;
                        continue 'run;
                    }
                    Instr::JumpIfFalse(target) => match pop(stack)? {
                        Value::Bool(false) => {
                            pc = *target as usize;
                            continue 'run;
                        }
                        Value::Bool(true) => {}
                        _ => return Err(broken("a jump on a non-bool")),
                    },
                    Instr::JumpIfNotNull(target) => match stack.last() {
                        Some(Value::Null) => {
                            stack.pop();
                        }
                        Some(_) => {
                            pc = *target as usize;
                            continue 'run;
                        }
                        None => return Err(broken("a stack underflow")),
                    },
                    Instr::Raise { code, message } => {
                        break 'raise EvalError::new(*code, message.as_ref()).at(here(pc));
                    }
                    Instr::NoOverload { builtin, argc } => {
                        match builtin.call(args(stack, *argc)?, fuel) {
                            Err(e) => break 'raise e.at(here(pc)),
                            Ok(_) => return Err(broken("an overload for a NoOverload call")),
                        }
                    }
                    Instr::Push(value) => stack.push(value.clone()),
                    Instr::PushString { value, len } => {
                        if let Err(e) = fuel.allocate(*len) {
                            break 'raise e.at(here(pc));
                        }
                        stack.push(value.clone());
                    }
                    Instr::LoadRoot(name) => match env.root(name) {
                        Some(value) => stack.push(value.into_owned()),
                        None => break 'raise unknown_variable(name).at(here(pc)),
                    },
                    Instr::LoadLocal(slot) => match locals.get(*slot) {
                        Some(value) => stack.push(value.clone()),
                        None => return Err(broken("a local slot out of range")),
                    },
                    Instr::LoadRootPath { root, path } => {
                        let Some(value) = env.root(root) else {
                            break 'raise unknown_variable(root).at(here(pc));
                        };
                        match select_path(&value, path, expr) {
                            Ok(selected) => stack.push(selected),
                            Err(e) => break 'raise e,
                        }
                    }
                    Instr::SelectPath(path) => {
                        let Some(top) = stack.last_mut() else {
                            return Err(broken("a stack underflow"));
                        };
                        match select_path(top, path, expr) {
                            Ok(selected) => *top = selected,
                            Err(e) => break 'raise e,
                        }
                    }
                    Instr::Has(key) => {
                        let Some(top) = stack.last_mut() else {
                            return Err(broken("a stack underflow"));
                        };
                        let found = match &*top {
                            Value::Map(entries) => entries.contains_key(key),
                            Value::Null => false,
                            other => {
                                break 'raise no_such_overload(format!(
                                    "`has` needs a map or object, not `{}`",
                                    other.type_name()
                                ))
                                .at(here(pc));
                            }
                        };
                        *top = Value::Bool(found);
                    }
                    Instr::Add => {
                        let outcome = match args(stack, 2)? {
                            [Value::Int(a), Value::Int(b)] => a
                                .checked_add(*b)
                                .map(Value::Int)
                                .ok_or_else(|| EvalError::overflow("int addition")),
                            pair => builtins::ADD.call(pair, fuel),
                        };
                        match outcome {
                            Ok(value) => replace(stack, 2, value),
                            Err(e) => break 'raise e.at(here(pc)),
                        }
                    }
                    Instr::Sub => {
                        let outcome = match args(stack, 2)? {
                            [Value::Int(a), Value::Int(b)] => a
                                .checked_sub(*b)
                                .map(Value::Int)
                                .ok_or_else(|| EvalError::overflow("int subtraction")),
                            pair => builtins::SUBTRACT.call(pair, fuel),
                        };
                        match outcome {
                            Ok(value) => replace(stack, 2, value),
                            Err(e) => break 'raise e.at(here(pc)),
                        }
                    }
                    Instr::Mul => {
                        let outcome = match args(stack, 2)? {
                            [Value::Int(a), Value::Int(b)] => a
                                .checked_mul(*b)
                                .map(Value::Int)
                                .ok_or_else(|| EvalError::overflow("int multiplication")),
                            pair => builtins::MULTIPLY.call(pair, fuel),
                        };
                        match outcome {
                            Ok(value) => replace(stack, 2, value),
                            Err(e) => break 'raise e.at(here(pc)),
                        }
                    }
                    Instr::Div => match call(stack, &builtins::DIVIDE, 2, fuel)? {
                        Ok(()) => {}
                        Err(e) => break 'raise e.at(here(pc)),
                    },
                    Instr::Rem => match call(stack, &builtins::REMAINDER, 2, fuel)? {
                        Ok(()) => {}
                        Err(e) => break 'raise e.at(here(pc)),
                    },
                    Instr::Lt | Instr::Le | Instr::Gt | Instr::Ge => {
                        let (builtin, test): (&Builtin, fn(std::cmp::Ordering) -> bool) =
                            match &op.instr {
                                Instr::Lt => (&builtins::LESS, std::cmp::Ordering::is_lt),
                                Instr::Le => (&builtins::LESS_EQUAL, std::cmp::Ordering::is_le),
                                Instr::Gt => (&builtins::GREATER, std::cmp::Ordering::is_gt),
                                _ => (&builtins::GREATER_EQUAL, std::cmp::Ordering::is_ge),
                            };
                        let outcome = match args(stack, 2)? {
                            [Value::Int(a), Value::Int(b)] => Ok(Value::Bool(test(a.cmp(b)))),
                            pair => builtin.call(pair, fuel),
                        };
                        match outcome {
                            Ok(value) => replace(stack, 2, value),
                            Err(e) => break 'raise e.at(here(pc)),
                        }
                    }
                    Instr::Eq | Instr::Ne => {
                        let outcome = match args(stack, 2)? {
                            [a, b] => a.equals_metered(b, fuel),
                            _ => return Err(broken("a stack underflow")),
                        };
                        match outcome {
                            Ok(equal) => {
                                let want = matches!(op.instr, Instr::Eq);
                                replace(stack, 2, Value::Bool(equal == want));
                            }
                            Err(e) => break 'raise e.at(here(pc)),
                        }
                    }
                    Instr::In => match call(stack, &builtins::IN, 2, fuel)? {
                        Ok(()) => {}
                        Err(e) => break 'raise e.at(here(pc)),
                    },
                    Instr::Index => {
                        // Indexing null gives null, after both sides ran.
                        if let [Value::Null, _] = args(stack, 2)? {
                            replace(stack, 2, Value::Null);
                        } else {
                            match call(stack, builtins::index_operator(), 2, fuel)? {
                                Ok(()) => {}
                                Err(e) => break 'raise e.at(here(pc)),
                            }
                        }
                    }
                    Instr::Neg => match call(stack, &builtins::NEGATE, 1, fuel)? {
                        Ok(()) => {}
                        Err(e) => break 'raise e.at(here(pc)),
                    },
                    Instr::Not => match stack.last_mut() {
                        Some(Value::Bool(b)) => *b = !*b,
                        Some(other) => {
                            break 'raise no_such_overload(format!(
                                "`!` needs a `bool`, not `{}`",
                                other.type_name()
                            ))
                            .at(here(pc));
                        }
                        None => return Err(broken("a stack underflow")),
                    },
                    Instr::Call { builtin, argc } => match call(stack, builtin, *argc, fuel)? {
                        Ok(()) => {}
                        Err(e) => break 'raise e.at(here(pc)),
                    },
                    Instr::Cond(context) => match stack.last() {
                        Some(Value::Bool(_)) => {}
                        Some(other) => {
                            break 'raise no_such_overload(format!(
                                "{} must be a `bool`, not `{}`",
                                context.subject(),
                                other.type_name()
                            ))
                            .at(here(pc));
                        }
                        None => return Err(broken("a stack underflow")),
                    },
                    Instr::Try(target) => handlers.push(Handler {
                        target: *target as usize,
                        stack: stack.len(),
                        errors: errors.len(),
                        frames: frames.len(),
                    }),
                    Instr::EndTry => {
                        if handlers.pop().is_none() {
                            return Err(broken("an EndTry without a Try"));
                        }
                    }
                    Instr::JumpIfCond { decisive, target } => {
                        if let Some(Value::Bool(b)) = stack.last()
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
                        let right_error = pending_error(&right, errors)?;
                        let left_error = pending_error(&left, errors)?;
                        let decides = |v: &Value| matches!(v, Value::Bool(b) if b == decisive);
                        if decides(&right) || decides(&left) {
                            stack.push(Value::Bool(*decisive));
                        } else if let Some(error) = left_error.or(right_error) {
                            break 'raise error;
                        } else {
                            stack.push(Value::Bool(!*decisive));
                        }
                    }
                    Instr::AllocList(len) => {
                        if let Err(e) = fuel.allocate_list(*len) {
                            break 'raise e.at(here(pc));
                        }
                    }
                    Instr::MakeList(len) => {
                        let Some(start) = stack.len().checked_sub(*len) else {
                            return Err(broken("a stack underflow"));
                        };
                        let items: Arc<[Value]> = stack.drain(start..).collect();
                        stack.push(Value::List(items));
                    }
                    Instr::MapNew(len) => {
                        if let Err(e) = fuel.allocate_map(*len) {
                            break 'raise e.at(here(pc));
                        }
                        stack.push(Value::map(MapEntries::new()));
                    }
                    Instr::MapKey => match stack.last() {
                        Some(Value::String(_) | Value::Int(_) | Value::Bool(_)) => {}
                        Some(other) => {
                            break 'raise EvalError::invalid_argument(format!(
                                "map keys must be `string`, `int` or `bool`, not `{}`",
                                other.type_name()
                            ))
                            .at(here(pc));
                        }
                        None => return Err(broken("a stack underflow")),
                    },
                    Instr::MapInsert => {
                        let value = pop(stack)?;
                        let key_value = pop(stack)?;
                        let key = match &key_value {
                            Value::String(s) => MapKey::String(s.clone()),
                            Value::Int(i) => MapKey::Int(*i),
                            Value::Bool(b) => MapKey::Bool(*b),
                            _ => return Err(broken("an unchecked map key")),
                        };
                        let Some(Value::Map(entries)) = stack.last_mut() else {
                            return Err(broken("a map insertion without a map"));
                        };
                        if entries.contains_key(&key) {
                            break 'raise EvalError::invalid_argument(format!(
                                "the map has the key {key_value} twice"
                            ))
                            .at(here(pc));
                        }
                        Arc::make_mut(entries).insert(key, value);
                    }
                    Instr::IterBegin { kind, reserve } => {
                        let target = pop(stack)?;
                        let items: Arc<[Value]> = match target {
                            Value::List(items) => items,
                            Value::Map(entries) => {
                                if let Err(e) = fuel.allocate_list(entries.len()) {
                                    break 'raise e.at(here(pc));
                                }
                                entries.keys().map(MapKey::to_value).collect()
                            }
                            other => {
                                break 'raise no_such_overload(format!(
                                    "`{}` needs a list or a map, not `{}`",
                                    kind.name(),
                                    other.type_name()
                                ))
                                .at(here(pc));
                            }
                        };
                        if *reserve && let Err(e) = fuel.allocate_list(items.len()) {
                            let at = super::Instruction::reserve_offset(expr.offset_of(pc));
                            break 'raise e.at(to_span(expr.span_at(at)));
                        }
                        frames.push(Frame {
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
                        let Some(frame) = frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        match frame.items.get(frame.next) {
                            Some(item) => {
                                if let Err(e) = fuel.consume_steps(u64::from(*steps)) {
                                    return Err(e.at(here(pc)));
                                }
                                let Some(local) = locals.get_mut(*slot) else {
                                    return Err(broken("a local slot out of range"));
                                };
                                *local = item.clone();
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
                                    .at(here(pc)));
                                }
                                pc = *exit as usize;
                                continue 'run;
                            }
                        }
                    }
                    Instr::QuantStep { decisive, head } => {
                        let condition = pop(stack)?;
                        let Some(frame) = frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        match condition {
                            Value::Bool(b) if b == *decisive => {
                                frame.decided = true;
                                frame.next = frame.items.len();
                            }
                            Value::Bool(_) => {}
                            _ => {
                                let error = errors
                                    .pop()
                                    .ok_or_else(|| broken("a pending error without an error"))?;
                                frame.first_error.get_or_insert(error);
                            }
                        }
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::CountStep(head) => {
                        let Value::Bool(b) = pop(stack)? else {
                            return Err(broken("a count of a non-bool"));
                        };
                        let Some(frame) = frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        frame.count += usize::from(b);
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::CollectStep(head) => {
                        let value = pop(stack)?;
                        let Some(frame) = frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        frame.acc.push(value);
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::KeepStep(head) => {
                        let Value::Bool(keep) = pop(stack)? else {
                            return Err(broken("a filter on a non-bool"));
                        };
                        let Some(frame) = frames.last_mut() else {
                            return Err(broken("an iteration without a frame"));
                        };
                        if keep {
                            let Some(item) = frame.next.checked_sub(1).and_then(|i| frame.items.get(i))
                            else {
                                return Err(broken("a filter before the first element"));
                            };
                            frame.acc.push(item.clone());
                        }
                        pc = *head as usize;
                        continue 'run;
                    }
                    Instr::IterEnd(kind) => {
                        let Some(frame) = frames.pop() else {
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
                                    break 'raise e.at(here(pc));
                                }
                                Value::list(frame.acc)
                            }
                            MacroKind::Has => return Err(broken("the end of a `has` frame")),
                        };
                        stack.push(result);
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
            let Some(handler) = handlers.pop() else {
                return Err(raised);
            };
            stack.truncate(handler.stack);
            errors.truncate(handler.errors);
            frames.truncate(handler.frames);
            errors.push(raised);
            stack.push(Value::Null);
            pc = handler.target;
        }
    }
}

/// Calls `builtin` on the top `argc` values and replaces them by the
/// result. The outer error is a broken invariant, the inner one the call's.
#[inline]
fn call(
    stack: &mut Vec<Value>,
    builtin: &Builtin,
    argc: usize,
    fuel: &mut Fuel,
) -> Result<Result<(), EvalError>, EvalError> {
    let outcome = builtin.call(args(stack, argc)?, fuel);
    Ok(outcome.map(|value| replace(stack, argc, value)))
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

/// Follows `path` from `start`, cloning only the value it ends on. Null
/// propagates; a missing key is an error unless the field was written `?.`.
fn select_path(start: &Value, path: &[PathField], expr: &VerifiedExpr) -> Result<Value, EvalError> {
    let mut current = start;
    for field in path {
        match current {
            Value::Null => return Ok(Value::Null),
            Value::Map(entries) => match entries.get(&field.key) {
                Some(found) => current = found,
                None if field.optional => return Ok(Value::Null),
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
    Ok(current.clone())
}
