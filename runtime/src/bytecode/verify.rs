//! The per-expression verifier: everything the VM relies on, checked once
//! when the code is loaded, and the loading itself (constants turned into
//! values, builtin names into table entries, byte offsets into instruction
//! indices). Only [`verify`] makes a [`VerifiedExpr`], so the VM never sees
//! code that did not pass.
//!
//! Checked: every opcode and operand byte (by [`super::decode`]); constant
//! indices in bounds and of the kind the operand needs; builtin names that
//! exist with an overload for the argument count; local slots below
//! `locals`; jump targets on instruction boundaries; and, along every path,
//! the abstract machine state: operand-stack depth and a small type lattice
//! (`bool`, map-literal key, map under construction, a condition that may be
//! a pending error), the handler stack of `Try`, and the iteration frames of
//! the macros. Paths must agree where they meet, never underflow, end in a
//! `Return` of exactly one value (or a `Raise`), and reach exactly
//! `max_stack`.
//!
//! Termination: a jump backwards may only land on an `IterNext` that charges
//! at least one step, and the VM counts loop exits against the steps spent;
//! so every cycle costs fuel.

use super::vm::{
    Compare, ConstCompare, ConstTest, Instr, Op, Operand, PathField, RootName, RootPath, Shape,
    StringTest,
};
use super::{BytecodeError, Decoded, Instruction, MacroKind, RAISE_CODES, decode};
use crate::plan::{ConstIx, Constant, ExprCode, SourceRef};
use donmai_grammar::Span;
use donmai_stdlib::builtins::{self, Builtin};
use donmai_stdlib::value::{MapKey, Value};
use smallvec::SmallVec;
use std::sync::Arc;

/// Code that passed [`verify`], loaded for the VM: run it any number of
/// times with [`VerifiedExpr::run`] or a reused [`super::Machine`].
///
/// Nothing else can make one, so the VM only ever runs verified code:
///
/// ```compile_fail
/// let forged = donmai_runtime::bytecode::VerifiedExpr { ops: Box::new([]) };
/// ```
#[derive(Debug)]
pub struct VerifiedExpr {
    pub(crate) ops: Box<[Op]>,
    /// Byte offset of each op, for locating errors.
    offsets: Box<[u32]>,
    spans: Box<[(u32, SourceRef)]>,
    pub(crate) max_stack: usize,
    pub(crate) locals: usize,
    pub(crate) max_frames: usize,
    /// Whether the whole expression has a shape the VM runs straight through.
    pub(crate) shape: Shape,
    source: SourceRef,
    result_type: String,
}

impl VerifiedExpr {
    /// Where the expression was written.
    pub fn source(&self) -> SourceRef {
        self.source
    }

    /// The static type the compiler recorded.
    pub fn result_type(&self) -> &str {
        &self.result_type
    }

    /// The span recorded for the code at byte `offset`: the last entry at
    /// or before it, else the whole expression.
    pub fn span_at(&self, offset: u32) -> SourceRef {
        let after = self.spans.partition_point(|(at, _)| *at <= offset);
        match after.checked_sub(1).and_then(|i| self.spans.get(i)) {
            Some((_, span)) => *span,
            None => self.source,
        }
    }

    pub(crate) fn offset_of(&self, index: usize) -> u32 {
        self.offsets.get(index).copied().unwrap_or(0)
    }

    /// Where an error raised by op `index` points.
    #[cold]
    pub(crate) fn op_span(&self, index: usize) -> Span {
        let source = self.span_at(self.offset_of(index));
        Span::new(source.start as usize, source.end as usize)
    }

    /// The source position of an error this expression raised: its byte
    /// range in the file of [`VerifiedExpr::source`].
    pub fn error_source(&self, error: &donmai_stdlib::value::EvalError) -> SourceRef {
        SourceRef {
            file: self.source.file,
            start: u32::try_from(error.span.start).unwrap_or(u32::MAX),
            end: u32::try_from(error.span.end).unwrap_or(u32::MAX),
        }
    }
}

/// A slot of the abstract operand stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    /// Any value.
    Value,
    /// A `bool` value.
    Bool,
    /// A value that may be a map-literal key (string, int or bool).
    Key,
    /// A map literal being filled by `MapInsert`; a value too.
    MapBuilder,
    /// A `bool`, or the marker of a pending error caught by a `Try`: only
    /// `JumpIfCond`, `Logic` and `QuantStep` may consume it.
    Cond,
}

impl Ty {
    fn is_value(self) -> bool {
        self != Ty::Cond
    }

    fn join(self, other: Ty) -> Option<Ty> {
        if self == other {
            return Some(self);
        }
        match (self, other) {
            (Ty::Cond, Ty::Bool) | (Ty::Bool, Ty::Cond) => Some(Ty::Cond),
            (Ty::Cond, _) | (_, Ty::Cond) => None,
            _ => Some(Ty::Value),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Ty::Value => "a value",
            Ty::Bool => "a bool",
            Ty::Key => "a map key",
            Ty::MapBuilder => "a map under construction",
            Ty::Cond => "a condition that may hold a pending error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Handler {
    /// Instruction index of the handler.
    target: usize,
    stack_len: usize,
    frames_len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    stack: Vec<Ty>,
    handlers: Vec<Handler>,
    frames: Vec<MacroKind>,
}

/// Verifies `code` against the plan's constant pool and loads it for the VM.
pub fn verify(code: &ExprCode, constants: &[Constant]) -> Result<VerifiedExpr, BytecodeError> {
    let decoded = decode(&code.code)?;
    if decoded.is_empty() {
        return Err(BytecodeError::new(0, "the code is empty"));
    }
    check_spans(code)?;
    let loader = Loader {
        code,
        constants,
        decoded: &decoded,
    };
    let ops = decoded
        .iter()
        .map(|d| loader.load(d))
        .collect::<Result<Vec<Op>, BytecodeError>>()?;
    let (max_stack, max_frames) = Flow::new(&decoded, &ops).run()?;
    let mut ops = ops;
    fuse(&mut ops);
    if max_stack != usize::from(code.max_stack) {
        return Err(BytecodeError::new(
            0,
            format!(
                "max_stack says {} but the code reaches a depth of {max_stack}",
                code.max_stack
            ),
        ));
    }
    let shape = Shape::of(&ops);
    Ok(VerifiedExpr {
        ops: ops.into_boxed_slice(),
        offsets: decoded.iter().map(|d| d.offset).collect(),
        spans: code.spans.clone().into_boxed_slice(),
        max_stack,
        locals: usize::from(code.locals),
        max_frames,
        shape,
        source: code.source,
        result_type: code.result_type.clone(),
    })
}

fn check_spans(code: &ExprCode) -> Result<(), BytecodeError> {
    let len = code.code.len();
    let mut previous = 0u32;
    for (at, span) in &code.spans {
        if *at < previous {
            return Err(BytecodeError::new(
                *at,
                format!("the span table is not sorted: offset {at} follows {previous}"),
            ));
        }
        if *at as usize >= len {
            return Err(BytecodeError::new(
                *at,
                format!("a span is attached past the end of the code ({len} bytes)"),
            ));
        }
        if span.start > span.end {
            return Err(BytecodeError::new(
                *at,
                format!(
                    "the span {}..{} ends before it starts",
                    span.start, span.end
                ),
            ));
        }
        previous = *at;
    }
    Ok(())
}

struct Loader<'a> {
    code: &'a ExprCode,
    constants: &'a [Constant],
    decoded: &'a [Decoded],
}

impl Loader<'_> {
    fn constant(&self, at: u32, index: ConstIx, what: &str) -> Result<&Constant, BytecodeError> {
        self.constants.get(index as usize).ok_or_else(|| {
            BytecodeError::new(
                at,
                format!(
                    "the {what} names constant #{index}, but the pool has {} constants",
                    self.constants.len()
                ),
            )
        })
    }

    fn string(&self, at: u32, index: ConstIx, what: &str) -> Result<&str, BytecodeError> {
        match self.constant(at, index, what)? {
            Constant::String(s) => Ok(s),
            other => Err(BytecodeError::new(
                at,
                format!("the {what} must be a string constant, not {other:?}"),
            )),
        }
    }

    fn target(&self, d: &Decoded, target: u32) -> Result<u32, BytecodeError> {
        // Decoded instructions are in offset order.
        let found = self
            .decoded
            .binary_search_by_key(&target, |d| d.offset)
            .ok();
        let index = found.ok_or_else(|| {
            BytecodeError::new(
                d.offset,
                format!(
                    "the jump target {target} is not the start of an instruction (the code has {} bytes)",
                    self.code.code.len()
                ),
            )
        })?;
        if target <= d.offset {
            // The only way back is to a loop head that pays for each turn.
            match self.decoded.get(index) {
                Some(Decoded {
                    instruction: Instruction::IterNext { .. },
                    ..
                }) => {}
                _ => {
                    return Err(BytecodeError::new(
                        d.offset,
                        format!("the backward jump to {target} does not land on an IterNext"),
                    ));
                }
            }
        }
        // Instruction counts fit u32: every instruction is at least two bytes.
        Ok(index as u32)
    }

    fn slot(&self, d: &Decoded, slot: u16) -> Result<usize, BytecodeError> {
        if slot >= self.code.locals {
            return Err(BytecodeError::new(
                d.offset,
                format!(
                    "local slot {slot} is out of range (the code declares {} locals)",
                    self.code.locals
                ),
            ));
        }
        Ok(usize::from(slot))
    }

    fn function(&self, d: &Decoded, name: ConstIx) -> Result<&'static Builtin, BytecodeError> {
        let name = self.string(d.offset, name, "function name")?;
        builtins::function(name).ok_or_else(|| {
            BytecodeError::new(d.offset, format!("there is no builtin function `{name}`"))
        })
    }

    fn path(
        &self,
        d: &Decoded,
        fields: &[super::FieldRef],
    ) -> Result<Box<[PathField]>, BytecodeError> {
        fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let name: Arc<str> = self.string(d.offset, field.name, "field name")?.into();
                Ok(PathField {
                    key: MapKey::String(name.clone()),
                    name,
                    optional: field.optional,
                    offset: d.instruction.field_offset(d.offset, i),
                })
            })
            .collect()
    }

    fn load(&self, d: &Decoded) -> Result<Op, BytecodeError> {
        let at = d.offset;
        let instr = match &d.instruction {
            Instruction::Nop => Instr::Nop,
            Instruction::Return => Instr::Return,
            Instruction::Pop => Instr::Pop,
            Instruction::Jump { target } => Instr::Jump(self.target(d, *target)?),
            Instruction::JumpIfFalse { target } => Instr::JumpIfFalse(self.target(d, *target)?),
            Instruction::JumpIfNotNull { target } => Instr::JumpIfNotNull(self.target(d, *target)?),
            Instruction::Raise { code, message } => {
                let code = RAISE_CODES.get(usize::from(*code)).ok_or_else(|| {
                    BytecodeError::new(at, format!("unknown error code {code} to raise"))
                })?;
                Instr::Raise {
                    code,
                    message: self.string(at, *message, "error message")?.into(),
                }
            }
            Instruction::NoOverload { function, argc } => {
                let builtin = self.function(d, *function)?;
                if builtin
                    .overloads
                    .iter()
                    .any(|o| o.accepts_arity(usize::from(*argc)))
                {
                    return Err(BytecodeError::new(
                        at,
                        format!(
                            "NoOverload for `{}` with {argc} arguments, which an overload takes",
                            builtin.name
                        ),
                    ));
                }
                Instr::NoOverload {
                    builtin,
                    argc: usize::from(*argc),
                }
            }
            Instruction::PushNull => Instr::Push(Value::Null),
            Instruction::PushTrue => Instr::Push(Value::Bool(true)),
            Instruction::PushFalse => Instr::Push(Value::Bool(false)),
            Instruction::PushConst { index } => match self.constant(at, *index, "constant")? {
                Constant::Null => Instr::Push(Value::Null),
                Constant::Bool(b) => Instr::Push(Value::Bool(*b)),
                Constant::Int(i) => Instr::Push(Value::Int(*i)),
                Constant::Double(bits) => Instr::Push(Value::Double(f64::from_bits(*bits))),
                Constant::String(s) => Instr::PushString {
                    len: s.len(),
                    value: Value::string(s.as_str()),
                },
            },
            Instruction::LoadRoot { name } => Instr::LoadRoot(RootPath {
                root: RootName::new(self.string(at, *name, "root name")?),
                path: Box::new([]),
            }),
            Instruction::LoadLocal { slot } => Instr::LoadLocal(self.slot(d, *slot)?),
            Instruction::LoadRootPath { root, fields } => Instr::LoadRoot(RootPath {
                root: RootName::new(self.string(at, *root, "root name")?),
                path: self.path(d, fields)?,
            }),
            Instruction::SelectPath { fields } => Instr::SelectPath(self.path(d, fields)?),
            Instruction::Has { field } => {
                let text: Arc<str> = self.string(at, *field, "field name")?.into();
                Instr::Has(MapKey::String(text.clone()), text)
            }
            Instruction::Add => Instr::Add,
            Instruction::Sub => Instr::Sub,
            Instruction::Mul => Instr::Mul,
            Instruction::Div => Instr::Div,
            Instruction::Rem => Instr::Rem,
            Instruction::Lt => Instr::Lt,
            Instruction::Le => Instr::Le,
            Instruction::Gt => Instr::Gt,
            Instruction::Ge => Instr::Ge,
            Instruction::Eq => Instr::Eq,
            Instruction::Ne => Instr::Ne,
            Instruction::In => Instr::In,
            Instruction::Index => Instr::Index,
            Instruction::Neg => Instr::Neg,
            Instruction::Not => Instr::Not,
            Instruction::Call { function, argc } => {
                let builtin = self.function(d, *function)?;
                if !builtin
                    .overloads
                    .iter()
                    .any(|o| o.accepts_arity(usize::from(*argc)))
                {
                    return Err(BytecodeError::new(
                        at,
                        format!("no overload of `{}` takes {argc} arguments", builtin.name),
                    ));
                }
                match (StringTest::of(builtin), *argc) {
                    (Some(test), 2) => Instr::StringTest(test),
                    _ if std::ptr::eq(builtin, &builtins::SIZE) && *argc == 1 => Instr::Size,
                    _ => Instr::Call {
                        builtin,
                        argc: usize::from(*argc),
                    },
                }
            }
            Instruction::Cond { context } => Instr::Cond(*context),
            Instruction::Try { handler } => {
                if *handler <= at {
                    return Err(BytecodeError::new(
                        at,
                        format!("the handler {handler} of a Try must come after it"),
                    ));
                }
                Instr::Try(self.target(d, *handler)?)
            }
            Instruction::EndTry => Instr::EndTry,
            Instruction::JumpIfCond { decisive, target } => Instr::JumpIfCond {
                decisive: *decisive,
                target: self.target(d, *target)?,
            },
            Instruction::Logic { decisive } => Instr::Logic {
                decisive: *decisive,
            },
            Instruction::AllocList { len } => Instr::AllocList(*len as usize),
            Instruction::MakeList { len } => Instr::MakeList(*len as usize),
            Instruction::MapNew { len } => Instr::MapNew(*len as usize),
            Instruction::MapKey => Instr::MapKey,
            Instruction::MapInsert => Instr::MapInsert,
            Instruction::IterBegin { kind, reserve } => Instr::IterBegin {
                kind: *kind,
                reserve: *reserve,
            },
            Instruction::IterNext { slot, exit } => {
                if d.steps == 0 {
                    return Err(BytecodeError::new(
                        at,
                        "an IterNext must charge at least one step per element",
                    ));
                }
                Instr::IterNext {
                    slot: self.slot(d, *slot)?,
                    exit: self.target(d, *exit)?,
                    steps: d.steps,
                }
            }
            Instruction::QuantStep { decisive, head } => Instr::QuantStep {
                decisive: *decisive,
                head: self.loop_head(d, *head)?,
            },
            Instruction::CountStep { head } => Instr::CountStep(self.loop_head(d, *head)?),
            Instruction::CollectStep { head } => Instr::CollectStep(self.loop_head(d, *head)?),
            Instruction::KeepStep { head } => Instr::KeepStep(self.loop_head(d, *head)?),
            Instruction::IterEnd { kind } => {
                if *kind == MacroKind::Has {
                    return Err(BytecodeError::new(at, "`has` frames have no result"));
                }
                Instr::IterEnd(*kind)
            }
        };
        // IterNext charges its steps itself, only when it binds an element.
        let steps = if matches!(instr, Instr::IterNext { .. }) {
            0
        } else {
            d.steps
        };
        Ok(Op { instr, steps })
    }

    fn loop_head(&self, d: &Decoded, head: u32) -> Result<u32, BytecodeError> {
        let index = self.target(d, head)?;
        match self.decoded.get(index as usize) {
            Some(Decoded {
                instruction: Instruction::IterNext { .. },
                ..
            }) => Ok(index),
            _ => Err(BytecodeError::new(
                d.offset,
                format!("the loop head {head} is not an IterNext"),
            )),
        }
    }
}

/// Forms the superinstructions of the VM over verified ops. A fused op
/// does what the sequence it starts does; the covered ops stay in place, so
/// indices and jump targets are unchanged.
fn fuse(ops: &mut [Op]) {
    let constant = |op: &Op| match &op.instr {
        Instr::Push(value) => Some((value.clone(), None)),
        Instr::PushString { value, len } => Some((value.clone(), Some(*len))),
        _ => None,
    };
    let comparison = |op: &Op| match op.instr {
        Instr::Eq => Some(Compare::Eq),
        Instr::Ne => Some(Compare::Ne),
        Instr::Lt => Some(Compare::Lt),
        Instr::Le => Some(Compare::Le),
        Instr::Gt => Some(Compare::Gt),
        Instr::Ge => Some(Compare::Ge),
        _ => None,
    };
    for i in 0..ops.len() {
        // A load, a constant and a comparison or string test.
        if let (Some(load), Some(push), Some(cmp)) = (ops.get(i), ops.get(i + 1), ops.get(i + 2))
            && let (Some((constant, constant_bytes)), Some(test)) = (
                constant(push),
                match cmp.instr {
                    Instr::StringTest(test) => Some(ConstTest::String(test)),
                    _ => comparison(cmp).map(ConstTest::Compare),
                },
            )
        {
            let operand = match &load.instr {
                Instr::LoadRoot(load) => Some(Operand::Root(load.clone())),
                Instr::LoadLocal(slot) => Some(Operand::Local(*slot)),
                _ => None,
            };
            if let Some(operand) = operand {
                let (constant_steps, compare_steps) = (push.steps, cmp.steps);
                ops[i].instr = Instr::CompareConst {
                    operand,
                    with: ConstCompare {
                        constant,
                        constant_bytes,
                        constant_steps,
                        test,
                        compare_steps,
                    },
                };
                continue;
            }
        }
        // A constant and a comparison with whatever is on the stack.
        if let (Some(push), Some(cmp)) = (ops.get(i), ops.get(i + 1))
            && let (Some((constant, constant_bytes)), Some(compare)) =
                (constant(push), comparison(cmp))
        {
            let compare_steps = cmp.steps;
            ops[i].instr = Instr::CompareTop {
                constant,
                constant_bytes,
                compare,
                compare_steps,
            };
        }
    }
}

/// Units of analysis (stack slots copied or compared) one expression may
/// cost the verifier. Compiled expressions use a tiny fraction; the cap keeps
/// a hostile plan from making verification quadratic in time or memory.
const ANALYSIS_BUDGET: u64 = 1 << 26;

/// The abstract interpretation over every path. States are kept only where
/// paths meet (jump and handler targets); straight-line code carries one
/// state forward, so a long list literal costs linear time and memory.
struct Flow<'a> {
    decoded: &'a [Decoded],
    ops: &'a [Op],
    /// Whether paths may meet at the instruction: a state is stored there.
    joins: Vec<bool>,
    states: Vec<Option<State>>,
    work: Vec<usize>,
    max_stack: usize,
    max_frames: usize,
    spent: u64,
}

/// What the walk does after an instruction.
enum Next {
    /// Falls through to the next instruction.
    Continue,
    /// Control does not fall through.
    Stop,
}

impl<'a> Flow<'a> {
    fn new(decoded: &'a [Decoded], ops: &'a [Op]) -> Flow<'a> {
        let mut joins = vec![false; ops.len()];
        if let Some(first) = joins.first_mut() {
            *first = true;
        }
        for op in ops {
            if let Some(join) = target(&op.instr).and_then(|t| joins.get_mut(t)) {
                *join = true;
            }
        }
        Flow {
            decoded,
            ops,
            joins,
            states: vec![None; ops.len()],
            work: Vec::new(),
            max_stack: 0,
            max_frames: 0,
            spent: 0,
        }
    }

    fn offset(&self, index: usize) -> u32 {
        self.decoded.get(index).map_or(0, |d| d.offset)
    }

    fn spend(&mut self, units: usize, at: u32) -> Result<(), BytecodeError> {
        self.spent = self.spent.saturating_add(units as u64 + 1);
        if self.spent > ANALYSIS_BUDGET {
            return Err(BytecodeError::new(
                at,
                format!(
                    "the code is too complex to verify (over {ANALYSIS_BUDGET} units of analysis)"
                ),
            ));
        }
        Ok(())
    }

    /// Returns the deepest stack and the most iteration frames reached.
    fn run(mut self) -> Result<(usize, usize), BytecodeError> {
        self.merge(
            0,
            State {
                stack: Vec::new(),
                handlers: Vec::new(),
                frames: Vec::new(),
            },
            0,
        )?;
        while let Some(start) = self.work.pop() {
            let Some(mut state) = self.states[start].clone() else {
                continue;
            };
            self.spend(state.stack.len(), self.offset(start))?;
            let mut index = start;
            // The handler edge is the same for every instruction of a
            // straight run inside one Try: nothing below its depth changes.
            let mut caught_for: Option<Handler> = None;
            loop {
                self.max_stack = self.max_stack.max(state.stack.len());
                self.max_frames = self.max_frames.max(state.frames.len());
                match self.step(index, &mut state, &mut caught_for)? {
                    Next::Stop => break,
                    Next::Continue => {
                        index += 1;
                        if index >= self.ops.len() {
                            return Err(BytecodeError::new(
                                self.offset(index - 1),
                                "execution runs off the end of the code without a Return",
                            ));
                        }
                        if self.joins[index] {
                            let from = self.offset(index - 1);
                            self.merge(index, state, from)?;
                            break;
                        }
                    }
                }
            }
        }
        Ok((self.max_stack, self.max_frames))
    }

    fn merge(&mut self, target: usize, incoming: State, from: u32) -> Result<(), BytecodeError> {
        let at = self.offset(target);
        self.spend(incoming.stack.len(), at)?;
        match &mut self.states[target] {
            None => {
                self.states[target] = Some(incoming);
                self.work.push(target);
            }
            Some(existing) => {
                let disagree = |what: &str| {
                    BytecodeError::new(
                        at,
                        format!(
                            "paths meet here with different {what} (one comes from offset {from})"
                        ),
                    )
                };
                if existing.stack.len() != incoming.stack.len() {
                    return Err(disagree(&format!(
                        "stack depths ({} and {})",
                        existing.stack.len(),
                        incoming.stack.len()
                    )));
                }
                if existing.handlers != incoming.handlers {
                    return Err(disagree("Try handlers"));
                }
                if existing.frames != incoming.frames {
                    return Err(disagree("iteration frames"));
                }
                let mut changed = false;
                for (slot, (mine, theirs)) in
                    existing.stack.iter_mut().zip(&incoming.stack).enumerate()
                {
                    let joined = mine.join(*theirs).ok_or_else(|| {
                        disagree(&format!(
                            "kinds of stack slot {slot} ({} and {})",
                            mine.describe(),
                            theirs.describe()
                        ))
                    })?;
                    if joined != *mine {
                        *mine = joined;
                        changed = true;
                    }
                }
                if changed {
                    self.work.push(target);
                }
            }
        }
        Ok(())
    }

    fn step(
        &mut self,
        index: usize,
        state: &mut State,
        caught_for: &mut Option<Handler>,
    ) -> Result<Next, BytecodeError> {
        let at = self.offset(index);
        let fail = |message: String| Err(BytecodeError::new(at, message));
        let op = &self.ops[index];
        let (pops, frame_pops) = effects(&op.instr);
        if state.stack.len() < pops {
            return fail(format!(
                "the instruction needs {pops} stack values but the stack holds {}",
                state.stack.len()
            ));
        }
        if state.frames.len() < frame_pops {
            return fail("the instruction needs an iteration frame and none is open".into());
        }
        // Inside a Try, nothing below the handler's recorded depth may be
        // touched: an error cuts the stack back to that depth.
        if let Some(handler) = state.handlers.last() {
            if state.stack.len() - pops < handler.stack_len {
                return fail(format!(
                    "the instruction reaches below the stack depth {} its Try handler restores",
                    handler.stack_len
                ));
            }
            if state.frames.len() - frame_pops < handler.frames_len {
                return fail(
                    "the instruction closes an iteration frame its Try handler restores".into(),
                );
            }
            if caught_for.as_ref() != Some(handler) {
                let mut caught = State {
                    stack: state.stack[..handler.stack_len].to_vec(),
                    handlers: state.handlers[..state.handlers.len() - 1].to_vec(),
                    frames: state.frames[..handler.frames_len].to_vec(),
                };
                caught.stack.push(Ty::Cond);
                let handler = handler.clone();
                self.merge(handler.target, caught, at)?;
                *caught_for = Some(handler);
            }
        }

        let pop =
            |state: &mut State, want: fn(Ty) -> bool, what: &str| -> Result<Ty, BytecodeError> {
                // The length was checked against `pops` above.
                let ty = state.stack.pop().unwrap_or(Ty::Cond);
                if want(ty) {
                    Ok(ty)
                } else {
                    Err(BytecodeError::new(
                        at,
                        format!("the instruction needs {what} but finds {}", ty.describe()),
                    ))
                }
            };
        let any = |ty: Ty| ty.is_value();
        let boolean = |ty: Ty| ty == Ty::Bool;
        let condition = |ty: Ty| matches!(ty, Ty::Bool | Ty::Cond);
        let top_frame = |state: &State, want: &[MacroKind]| -> Result<(), BytecodeError> {
            match state.frames.last() {
                Some(kind) if want.contains(kind) => Ok(()),
                Some(kind) => Err(BytecodeError::new(
                    at,
                    format!(
                        "the instruction does not apply to a `{}` frame",
                        kind.name()
                    ),
                )),
                None => Err(BytecodeError::new(at, "no iteration frame is open")),
            }
        };

        let mut jumps: SmallVec<[(usize, State); 1]> = SmallVec::new();
        let mut falls = true;
        match &op.instr {
            Instr::Nop | Instr::AllocList(_) => {}
            Instr::Return => {
                pop(state, any, "a value")?;
                if !state.stack.is_empty() {
                    return fail(format!(
                        "Return leaves {} more values on the stack",
                        state.stack.len()
                    ));
                }
                if !state.handlers.is_empty() || !state.frames.is_empty() {
                    return fail("Return inside a Try or an open iteration".into());
                }
                falls = false;
            }
            Instr::Pop => {
                pop(state, any, "a value")?;
            }
            Instr::Jump(target) => {
                jumps.push((*target as usize, state.clone()));
                falls = false;
            }
            Instr::JumpIfFalse(target) => {
                pop(state, boolean, "a bool")?;
                jumps.push((*target as usize, state.clone()));
            }
            Instr::JumpIfNotNull(target) => {
                let ty = pop(state, any, "a value")?;
                let mut kept = state.clone();
                kept.stack.push(ty);
                jumps.push((*target as usize, kept));
            }
            Instr::Raise { .. } => falls = false,
            Instr::NoOverload { argc, .. } => {
                for _ in 0..*argc {
                    pop(state, any, "a value")?;
                }
                falls = false;
            }
            Instr::Push(value) => state.stack.push(match value {
                Value::Bool(_) => Ty::Bool,
                _ => Ty::Value,
            }),
            Instr::PushString { .. } | Instr::LoadRoot(_) | Instr::LoadLocal(_) => {
                state.stack.push(Ty::Value)
            }
            Instr::SelectPath(_) | Instr::Neg | Instr::Size => {
                pop(state, any, "a value")?;
                state.stack.push(Ty::Value);
            }
            Instr::Has(..) | Instr::Not => {
                pop(state, any, "a value")?;
                state.stack.push(Ty::Bool);
            }
            Instr::Cond(_) => {
                pop(state, any, "a value")?;
                state.stack.push(Ty::Bool);
            }
            Instr::Add | Instr::Sub | Instr::Mul | Instr::Div | Instr::Rem | Instr::Index => {
                pop(state, any, "a value")?;
                pop(state, any, "a value")?;
                state.stack.push(Ty::Value);
            }
            Instr::CompareConst { .. } | Instr::CompareTop { .. } => {
                // Formed only after the analysis.
                return fail("a fused instruction in code under verification".into());
            }
            Instr::StringTest(_) => {
                pop(state, any, "a value")?;
                pop(state, any, "a value")?;
                state.stack.push(Ty::Value);
            }
            Instr::Lt | Instr::Le | Instr::Gt | Instr::Ge | Instr::Eq | Instr::Ne | Instr::In => {
                pop(state, any, "a value")?;
                pop(state, any, "a value")?;
                state.stack.push(Ty::Bool);
            }
            Instr::Call { argc, .. } => {
                for _ in 0..*argc {
                    pop(state, any, "a value")?;
                }
                state.stack.push(Ty::Value);
            }
            Instr::Try(target) => {
                state.handlers.push(Handler {
                    target: *target as usize,
                    stack_len: state.stack.len(),
                    frames_len: state.frames.len(),
                });
            }
            Instr::EndTry => {
                if state.handlers.pop().is_none() {
                    return fail("EndTry without a Try".into());
                }
            }
            Instr::JumpIfCond { target, .. } => {
                let ty = pop(state, condition, "a condition")?;
                // Taken only on a bool, which stays on the stack.
                let mut taken = state.clone();
                taken.stack.push(Ty::Bool);
                jumps.push((*target as usize, taken));
                state.stack.push(ty);
            }
            Instr::Logic { .. } => {
                pop(state, condition, "a condition")?;
                pop(state, condition, "a condition")?;
                state.stack.push(Ty::Bool);
            }
            Instr::MakeList(len) => {
                for _ in 0..*len {
                    pop(state, any, "a value")?;
                }
                state.stack.push(Ty::Value);
            }
            Instr::MapNew(_) => state.stack.push(Ty::MapBuilder),
            Instr::MapKey => {
                pop(state, any, "a value")?;
                state.stack.push(Ty::Key);
            }
            Instr::MapInsert => {
                pop(state, any, "a value")?;
                pop(state, |t| t == Ty::Key, "a checked map key")?;
                pop(state, |t| t == Ty::MapBuilder, "a map under construction")?;
                state.stack.push(Ty::MapBuilder);
            }
            Instr::IterBegin { kind, .. } => {
                pop(state, any, "a value")?;
                state.frames.push(*kind);
            }
            Instr::IterNext { exit, .. } => {
                top_frame(
                    state,
                    &[
                        MacroKind::All,
                        MacroKind::Exists,
                        MacroKind::ExistsOne,
                        MacroKind::Map,
                        MacroKind::Filter,
                    ],
                )?;
                jumps.push((*exit as usize, state.clone()));
            }
            Instr::QuantStep { decisive, head } => {
                pop(state, condition, "a condition")?;
                top_frame(
                    state,
                    if *decisive {
                        &[MacroKind::Exists]
                    } else {
                        &[MacroKind::All]
                    },
                )?;
                jumps.push((*head as usize, state.clone()));
                falls = false;
            }
            Instr::CountStep(head) => {
                pop(state, boolean, "a bool")?;
                top_frame(state, &[MacroKind::ExistsOne])?;
                jumps.push((*head as usize, state.clone()));
                falls = false;
            }
            Instr::CollectStep(head) => {
                pop(state, any, "a value")?;
                top_frame(state, &[MacroKind::Map])?;
                jumps.push((*head as usize, state.clone()));
                falls = false;
            }
            Instr::KeepStep(head) => {
                pop(state, boolean, "a bool")?;
                top_frame(state, &[MacroKind::Filter])?;
                jumps.push((*head as usize, state.clone()));
                falls = false;
            }
            Instr::IterEnd(kind) => {
                top_frame(state, &[*kind])?;
                state.frames.pop();
                state.stack.push(match kind {
                    MacroKind::All | MacroKind::Exists | MacroKind::ExistsOne => Ty::Bool,
                    _ => Ty::Value,
                });
            }
        }
        if state.stack.len() > usize::from(u16::MAX) {
            return fail("the stack grows past 65535 values".into());
        }
        for (target, successor) in jumps {
            self.merge(target, successor, at)?;
        }
        Ok(if falls { Next::Continue } else { Next::Stop })
    }
}

/// The instruction index a loaded instruction may transfer control to,
/// besides the next one.
fn target(instr: &Instr) -> Option<usize> {
    match instr {
        Instr::Jump(t)
        | Instr::JumpIfFalse(t)
        | Instr::JumpIfNotNull(t)
        | Instr::Try(t)
        | Instr::JumpIfCond { target: t, .. }
        | Instr::IterNext { exit: t, .. }
        | Instr::QuantStep { head: t, .. }
        | Instr::CountStep(t)
        | Instr::CollectStep(t)
        | Instr::KeepStep(t) => Some(*t as usize),
        _ => None,
    }
}

/// Stack values and iteration frames an instruction consumes (or rewrites,
/// which counts as consuming) before it pushes anything.
fn effects(instr: &Instr) -> (usize, usize) {
    match instr {
        Instr::Nop
        | Instr::Jump(_)
        | Instr::Raise { .. }
        | Instr::Push(_)
        | Instr::PushString { .. }
        | Instr::LoadRoot(_)
        | Instr::LoadLocal(_)
        | Instr::Try(_)
        | Instr::EndTry
        | Instr::AllocList(_)
        | Instr::MapNew(_)
        | Instr::CompareConst { .. }
        | Instr::CompareTop { .. } => (0, 0),
        Instr::Return
        | Instr::Pop
        | Instr::JumpIfFalse(_)
        | Instr::JumpIfNotNull(_)
        | Instr::SelectPath(_)
        | Instr::Has(..)
        | Instr::Neg
        | Instr::Not
        | Instr::Size
        | Instr::Cond(_)
        | Instr::JumpIfCond { .. }
        | Instr::MapKey => (1, 0),
        Instr::IterBegin { .. } => (1, 0),
        Instr::Add
        | Instr::Sub
        | Instr::Mul
        | Instr::Div
        | Instr::Rem
        | Instr::Lt
        | Instr::Le
        | Instr::Gt
        | Instr::Ge
        | Instr::Eq
        | Instr::Ne
        | Instr::In
        | Instr::Index
        | Instr::StringTest(_)
        | Instr::Logic { .. } => (2, 0),
        Instr::NoOverload { argc, .. } | Instr::Call { argc, .. } => (*argc, 0),
        Instr::MakeList(len) => (*len, 0),
        Instr::MapInsert => (3, 0),
        Instr::IterNext { .. } | Instr::IterEnd(_) => (0, 1),
        Instr::QuantStep { .. }
        | Instr::CountStep(_)
        | Instr::CollectStep(_)
        | Instr::KeepStep(_) => (1, 1),
    }
}
