//! The expression bytecode: its instruction set and byte encoding, the
//! constant-pool interner the compiler fills, the verifier ([`verify`]) and
//! the interpreter ([`vm`]).
//!
//! # Encoding
//!
//! An expression's code ([`ExprCode::code`]) is a sequence of instructions.
//! Each is one opcode byte, one *steps* byte, then fixed-width little-endian
//! operands (`u8`, `u16` local slots, `u32` constant indices, counts and
//! code offsets). The steps byte is the fuel the instruction charges before
//! it runs: the reference evaluator charges one step on entering each node,
//! before evaluating the node's children, and the compiler folds the entries
//! of the nodes opened since the previous instruction into the next one, so
//! the VM spends fuel at exactly the points the tree walker does (and runs
//! out at the same point). [`Instruction::IterNext`] charges its steps only
//! when it binds a next element.
//!
//! Root variables (`nodes`, `trigger`, ...) are loaded by name (a string
//! constant), builtin functions are called by their table name (a string
//! constant), so a plan does not depend on the layout of the runtime.
//!
//! # Machine model
//!
//! An operand stack of values, local slots for macro variables, a stack of
//! iteration frames for the macros (`all`, `map`, ...), and a stack of
//! handlers (`Try`) that catch evaluation errors for CEL's commutative
//! `&&`/`||` and for `all`/`exists`. A caught error leaves a *pending error*
//! in a condition slot; only the ops that combine conditions may consume such
//! a slot, which the verifier enforces with its type lattice. Fuel exhaustion
//! is never caught.

use crate::plan::{ConstIx, Constant, ExprCode};
use donmai_stdlib::value::error_code;
use std::collections::HashMap;
use std::fmt;

pub mod verify;
pub mod vm;

pub use verify::{VerifiedExpr, verify};
pub use vm::{Env, Machine, Roots, run};

/// Opcodes. The values are part of the plan format: never renumber one.
pub mod opcode {
    pub const NOP: u8 = 0x00;
    pub const RETURN: u8 = 0x01;
    pub const POP: u8 = 0x02;
    pub const JUMP: u8 = 0x03;
    pub const JUMP_IF_FALSE: u8 = 0x04;
    pub const JUMP_IF_NOT_NULL: u8 = 0x05;
    pub const RAISE: u8 = 0x06;
    pub const NO_OVERLOAD: u8 = 0x07;

    pub const PUSH_NULL: u8 = 0x10;
    pub const PUSH_TRUE: u8 = 0x11;
    pub const PUSH_FALSE: u8 = 0x12;
    pub const PUSH_CONST: u8 = 0x13;
    pub const LOAD_ROOT: u8 = 0x14;
    pub const LOAD_LOCAL: u8 = 0x15;
    pub const LOAD_ROOT_PATH: u8 = 0x16;
    pub const SELECT_PATH: u8 = 0x17;
    pub const HAS: u8 = 0x18;

    pub const ADD: u8 = 0x20;
    pub const SUB: u8 = 0x21;
    pub const MUL: u8 = 0x22;
    pub const DIV: u8 = 0x23;
    pub const REM: u8 = 0x24;
    pub const LT: u8 = 0x25;
    pub const LE: u8 = 0x26;
    pub const GT: u8 = 0x27;
    pub const GE: u8 = 0x28;
    pub const EQ: u8 = 0x29;
    pub const NE: u8 = 0x2A;
    pub const IN: u8 = 0x2B;
    pub const INDEX: u8 = 0x2C;
    pub const NEG: u8 = 0x2D;
    pub const NOT: u8 = 0x2E;
    pub const CALL: u8 = 0x2F;

    pub const COND: u8 = 0x30;
    pub const TRY: u8 = 0x31;
    pub const END_TRY: u8 = 0x32;
    pub const JUMP_IF_COND: u8 = 0x33;
    pub const LOGIC: u8 = 0x34;

    pub const ALLOC_LIST: u8 = 0x40;
    pub const MAKE_LIST: u8 = 0x41;
    pub const MAP_NEW: u8 = 0x42;
    pub const MAP_KEY: u8 = 0x43;
    pub const MAP_INSERT: u8 = 0x44;

    pub const ITER_BEGIN: u8 = 0x50;
    pub const ITER_NEXT: u8 = 0x51;
    pub const QUANT_STEP: u8 = 0x52;
    pub const COUNT_STEP: u8 = 0x53;
    pub const COLLECT_STEP: u8 = 0x54;
    pub const KEEP_STEP: u8 = 0x55;
    pub const ITER_END: u8 = 0x56;
}

/// The error codes [`Instruction::Raise`] may raise, by their operand value.
/// Fuel exhaustion is not among them: only the fuel meter raises it.
pub const RAISE_CODES: &[&str] = &[
    error_code::OVERFLOW,
    error_code::DIVISION_BY_ZERO,
    error_code::NO_SUCH_KEY,
    error_code::NO_SUCH_OVERLOAD,
    error_code::INDEX_OUT_OF_RANGE,
    error_code::INVALID_ARGUMENT,
    error_code::UNKNOWN_VARIABLE,
    error_code::UNKNOWN_FUNCTION,
    error_code::REGEX,
    error_code::TOO_DEEP,
    error_code::SYNTAX,
];

/// The operand of [`Instruction::Raise`] for `code`, if it may be raised.
pub fn raise_code_index(code: &str) -> Option<u8> {
    RAISE_CODES
        .iter()
        .position(|c| *c == code)
        .and_then(|i| u8::try_from(i).ok())
}

/// What a [`Instruction::Cond`] checks, for its error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CondContext {
    And,
    Or,
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
    Conditional,
}

impl CondContext {
    const ALL: [CondContext; 8] = [
        CondContext::And,
        CondContext::Or,
        CondContext::All,
        CondContext::Exists,
        CondContext::ExistsOne,
        CondContext::Map,
        CondContext::Filter,
        CondContext::Conditional,
    ];

    pub fn to_byte(self) -> u8 {
        self as u8
    }

    pub fn from_byte(byte: u8) -> Option<CondContext> {
        CondContext::ALL.get(usize::from(byte)).copied()
    }

    /// The subject of the "must be a `bool`" message.
    pub fn subject(self) -> &'static str {
        match self {
            CondContext::And => "an operand of `&&`",
            CondContext::Or => "an operand of `||`",
            CondContext::All => "the predicate of `all`",
            CondContext::Exists => "the predicate of `exists`",
            CondContext::ExistsOne => "the predicate of `exists_one`",
            CondContext::Map => "the predicate of `map`",
            CondContext::Filter => "the predicate of `filter`",
            CondContext::Conditional => "the condition of `?:`",
        }
    }
}

/// The macro an iteration frame runs. `Has` exists for `x.has(...)`, which
/// evaluates its target like a macro before failing on its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacroKind {
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
    Has,
}

impl MacroKind {
    const ALL: [MacroKind; 6] = [
        MacroKind::All,
        MacroKind::Exists,
        MacroKind::ExistsOne,
        MacroKind::Map,
        MacroKind::Filter,
        MacroKind::Has,
    ];

    pub fn to_byte(self) -> u8 {
        self as u8
    }

    pub fn from_byte(byte: u8) -> Option<MacroKind> {
        MacroKind::ALL.get(usize::from(byte)).copied()
    }

    pub fn from_name(name: &str) -> Option<MacroKind> {
        MacroKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            MacroKind::All => "all",
            MacroKind::Exists => "exists",
            MacroKind::ExistsOne => "exists_one",
            MacroKind::Map => "map",
            MacroKind::Filter => "filter",
            MacroKind::Has => "has",
        }
    }
}

/// Bit of the [`Instruction::IterBegin`] operand asking to pay for the
/// result list up front (`map` does, `filter` pays at the end).
pub const ITER_RESERVE: u8 = 0x80;

/// One field of a selection chain: the field name (a string constant) and
/// whether it was written `?.`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldRef {
    pub name: ConstIx,
    pub optional: bool,
}

/// A decoded instruction. Code offsets (jump targets) are byte offsets into
/// the expression's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Does nothing; carries steps when no other instruction can.
    Nop,
    /// Ends the evaluation with the one value on the stack.
    Return,
    Pop,
    Jump {
        target: u32,
    },
    /// Pops a `bool`; jumps when it is false.
    JumpIfFalse {
        target: u32,
    },
    /// `??`: jumps keeping the top when it is not null, else pops it.
    JumpIfNotNull {
        target: u32,
    },
    /// Raises the error `RAISE_CODES[code]` with a string constant as message.
    Raise {
        code: u8,
        message: ConstIx,
    },
    /// Pops `argc` arguments and raises the builtin's "no overload" error;
    /// for calls whose argument count no overload takes.
    NoOverload {
        function: ConstIx,
        argc: u8,
    },
    PushNull,
    PushTrue,
    PushFalse,
    /// Pushes a constant; a string pays for its bytes like a literal.
    PushConst {
        index: ConstIx,
    },
    /// Pushes the root variable named by a string constant.
    LoadRoot {
        name: ConstIx,
    },
    LoadLocal {
        slot: u16,
    },
    /// `LoadRoot` then `SelectPath`, without copying the values in between.
    LoadRootPath {
        root: ConstIx,
        fields: Vec<FieldRef>,
    },
    /// Selects fields of the top value in turn (null propagates).
    SelectPath {
        fields: Vec<FieldRef>,
    },
    /// `has(x.f)` with `x` on the stack.
    Has {
        field: ConstIx,
    },
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
    /// Calls the builtin named by a string constant with the top `argc`
    /// values (a method's receiver first).
    Call {
        function: ConstIx,
        argc: u8,
    },
    /// Checks that the top is a `bool`.
    Cond {
        context: CondContext,
    },
    /// Catches errors raised until the matching `EndTry`: the stack is cut
    /// back, a pending error is pushed, and control goes to `handler`.
    Try {
        handler: u32,
    },
    EndTry,
    /// With a condition on top: jumps keeping it when it is `decisive`.
    JumpIfCond {
        decisive: bool,
        target: u32,
    },
    /// Combines the two conditions on top as `&&` (`decisive` false) or
    /// `||` (`decisive` true), raising an error neither side absorbs.
    Logic {
        decisive: bool,
    },
    /// Pays for a list literal of `len` elements before they are evaluated.
    AllocList {
        len: u32,
    },
    /// Pops `len` values into a list.
    MakeList {
        len: u32,
    },
    /// Pays for a map literal of `len` entries and pushes an empty map.
    MapNew {
        len: u32,
    },
    /// Checks that the top may be a map-literal key.
    MapKey,
    /// Pops a value and a key and adds them to the map below.
    MapInsert,
    /// Pops the macro's target and opens an iteration frame over its
    /// elements (a map's keys).
    IterBegin {
        kind: MacroKind,
        reserve: bool,
    },
    /// Binds the next element to `slot`, or jumps to `exit` when there is none.
    IterNext {
        slot: u16,
        exit: u32,
    },
    /// `all` (`decisive` false) / `exists` (true): pops a condition, records
    /// it, and jumps back to the loop head.
    QuantStep {
        decisive: bool,
        head: u32,
    },
    /// `exists_one`: pops a `bool`, counts it, jumps back.
    CountStep {
        head: u32,
    },
    /// `map`: pops a value into the result, jumps back.
    CollectStep {
        head: u32,
    },
    /// `filter`: pops a `bool`, keeps the element if true, jumps back.
    KeepStep {
        head: u32,
    },
    /// Closes the innermost frame and pushes the macro's result.
    IterEnd {
        kind: MacroKind,
    },
}

/// Why bytecode was refused. `offset` is the byte offset of the instruction
/// (or of the byte) at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BytecodeError {
    pub offset: u32,
    pub message: String,
}

impl BytecodeError {
    pub fn new(offset: u32, message: impl Into<String>) -> BytecodeError {
        BytecodeError {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for BytecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bytecode offset {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for BytecodeError {}

/// Width of the opcode and steps bytes.
pub const HEADER_LEN: u32 = 2;
/// Width of one [`FieldRef`] operand.
pub const FIELD_LEN: u32 = 5;

impl Instruction {
    pub fn opcode(&self) -> u8 {
        use opcode::*;
        match self {
            Instruction::Nop => NOP,
            Instruction::Return => RETURN,
            Instruction::Pop => POP,
            Instruction::Jump { .. } => JUMP,
            Instruction::JumpIfFalse { .. } => JUMP_IF_FALSE,
            Instruction::JumpIfNotNull { .. } => JUMP_IF_NOT_NULL,
            Instruction::Raise { .. } => RAISE,
            Instruction::NoOverload { .. } => NO_OVERLOAD,
            Instruction::PushNull => PUSH_NULL,
            Instruction::PushTrue => PUSH_TRUE,
            Instruction::PushFalse => PUSH_FALSE,
            Instruction::PushConst { .. } => PUSH_CONST,
            Instruction::LoadRoot { .. } => LOAD_ROOT,
            Instruction::LoadLocal { .. } => LOAD_LOCAL,
            Instruction::LoadRootPath { .. } => LOAD_ROOT_PATH,
            Instruction::SelectPath { .. } => SELECT_PATH,
            Instruction::Has { .. } => HAS,
            Instruction::Add => ADD,
            Instruction::Sub => SUB,
            Instruction::Mul => MUL,
            Instruction::Div => DIV,
            Instruction::Rem => REM,
            Instruction::Lt => LT,
            Instruction::Le => LE,
            Instruction::Gt => GT,
            Instruction::Ge => GE,
            Instruction::Eq => EQ,
            Instruction::Ne => NE,
            Instruction::In => IN,
            Instruction::Index => INDEX,
            Instruction::Neg => NEG,
            Instruction::Not => NOT,
            Instruction::Call { .. } => CALL,
            Instruction::Cond { .. } => COND,
            Instruction::Try { .. } => TRY,
            Instruction::EndTry => END_TRY,
            Instruction::JumpIfCond { .. } => JUMP_IF_COND,
            Instruction::Logic { .. } => LOGIC,
            Instruction::AllocList { .. } => ALLOC_LIST,
            Instruction::MakeList { .. } => MAKE_LIST,
            Instruction::MapNew { .. } => MAP_NEW,
            Instruction::MapKey => MAP_KEY,
            Instruction::MapInsert => MAP_INSERT,
            Instruction::IterBegin { .. } => ITER_BEGIN,
            Instruction::IterNext { .. } => ITER_NEXT,
            Instruction::QuantStep { .. } => QUANT_STEP,
            Instruction::CountStep { .. } => COUNT_STEP,
            Instruction::CollectStep { .. } => COLLECT_STEP,
            Instruction::KeepStep { .. } => KEEP_STEP,
            Instruction::IterEnd { .. } => ITER_END,
        }
    }

    /// Appends the encoding (opcode, `steps`, operands) to `out`.
    pub fn encode(&self, steps: u8, out: &mut Vec<u8>) {
        out.push(self.opcode());
        out.push(steps);
        let fields = |out: &mut Vec<u8>, fields: &[FieldRef]| {
            // The compiler never builds longer chains (nesting is capped far
            // below); a longer one would not decode, so cap rather than wrap.
            let count = u8::try_from(fields.len()).unwrap_or(u8::MAX);
            out.push(count);
            for field in fields.iter().take(usize::from(count)) {
                out.extend_from_slice(&field.name.to_le_bytes());
                out.push(u8::from(field.optional));
            }
        };
        match self {
            Instruction::Jump { target }
            | Instruction::JumpIfFalse { target }
            | Instruction::JumpIfNotNull { target } => out.extend_from_slice(&target.to_le_bytes()),
            Instruction::Raise { code, message } => {
                out.push(*code);
                out.extend_from_slice(&message.to_le_bytes());
            }
            Instruction::NoOverload { function, argc } | Instruction::Call { function, argc } => {
                out.extend_from_slice(&function.to_le_bytes());
                out.push(*argc);
            }
            Instruction::PushConst { index } => out.extend_from_slice(&index.to_le_bytes()),
            Instruction::LoadRoot { name } => out.extend_from_slice(&name.to_le_bytes()),
            Instruction::LoadLocal { slot } => out.extend_from_slice(&slot.to_le_bytes()),
            Instruction::LoadRootPath { root, fields: f } => {
                out.extend_from_slice(&root.to_le_bytes());
                fields(out, f);
            }
            Instruction::SelectPath { fields: f } => fields(out, f),
            Instruction::Has { field } => out.extend_from_slice(&field.to_le_bytes()),
            Instruction::Cond { context } => out.push(context.to_byte()),
            Instruction::Try { handler } => out.extend_from_slice(&handler.to_le_bytes()),
            Instruction::JumpIfCond { decisive, target } => {
                out.push(u8::from(*decisive));
                out.extend_from_slice(&target.to_le_bytes());
            }
            Instruction::Logic { decisive } => out.push(u8::from(*decisive)),
            Instruction::AllocList { len }
            | Instruction::MakeList { len }
            | Instruction::MapNew { len } => out.extend_from_slice(&len.to_le_bytes()),
            Instruction::IterBegin { kind, reserve } => {
                out.push(kind.to_byte() | if *reserve { ITER_RESERVE } else { 0 });
            }
            Instruction::IterNext { slot, exit } => {
                out.extend_from_slice(&slot.to_le_bytes());
                out.extend_from_slice(&exit.to_le_bytes());
            }
            Instruction::QuantStep { decisive, head } => {
                out.push(u8::from(*decisive));
                out.extend_from_slice(&head.to_le_bytes());
            }
            Instruction::CountStep { head }
            | Instruction::CollectStep { head }
            | Instruction::KeepStep { head } => out.extend_from_slice(&head.to_le_bytes()),
            Instruction::IterEnd { kind } => out.push(kind.to_byte()),
            Instruction::Nop
            | Instruction::Return
            | Instruction::Pop
            | Instruction::PushNull
            | Instruction::PushTrue
            | Instruction::PushFalse
            | Instruction::Add
            | Instruction::Sub
            | Instruction::Mul
            | Instruction::Div
            | Instruction::Rem
            | Instruction::Lt
            | Instruction::Le
            | Instruction::Gt
            | Instruction::Ge
            | Instruction::Eq
            | Instruction::Ne
            | Instruction::In
            | Instruction::Index
            | Instruction::Neg
            | Instruction::Not
            | Instruction::EndTry
            | Instruction::MapKey
            | Instruction::MapInsert => {}
        }
    }

    /// The code offset of the `index`-th field operand of a path instruction
    /// that starts at `at`. The compiler attaches each field's span there, so
    /// an error in the middle of a fused path names the right field.
    pub fn field_offset(&self, at: u32, index: usize) -> u32 {
        let fixed = match self {
            Instruction::LoadRootPath { .. } => 4 + 1,
            _ => 1,
        };
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        at.saturating_add(HEADER_LEN + fixed)
            .saturating_add(index.saturating_mul(FIELD_LEN))
    }

    /// The code offset of the operand of an [`Instruction::IterBegin`] at
    /// `at`: the span recorded there is the one of the result list paid for
    /// up front (`map`'s transform).
    pub fn reserve_offset(at: u32) -> u32 {
        at.saturating_add(HEADER_LEN)
    }

    /// Whether control never continues to the next instruction.
    pub fn ends_block(&self) -> bool {
        matches!(
            self,
            Instruction::Return
                | Instruction::Jump { .. }
                | Instruction::Raise { .. }
                | Instruction::NoOverload { .. }
                | Instruction::QuantStep { .. }
                | Instruction::CountStep { .. }
                | Instruction::CollectStep { .. }
                | Instruction::KeepStep { .. }
        )
    }

    /// Jump targets named by the instruction (not the fall-through).
    pub fn targets(&self) -> Vec<u32> {
        match self {
            Instruction::Jump { target }
            | Instruction::JumpIfFalse { target }
            | Instruction::JumpIfNotNull { target }
            | Instruction::JumpIfCond { target, .. } => vec![*target],
            Instruction::Try { handler } => vec![*handler],
            Instruction::IterNext { exit, .. } => vec![*exit],
            Instruction::QuantStep { head, .. }
            | Instruction::CountStep { head }
            | Instruction::CollectStep { head }
            | Instruction::KeepStep { head } => vec![*head],
            _ => Vec::new(),
        }
    }
}

/// One decoded instruction with its place in the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub offset: u32,
    /// Fuel steps charged before the instruction runs (for `IterNext`: when
    /// it binds an element).
    pub steps: u8,
    pub instruction: Instruction,
}

struct Reader<'a> {
    code: &'a [u8],
    at: usize,
    start: u32,
}

impl Reader<'_> {
    fn truncated(&self, what: &str) -> BytecodeError {
        BytecodeError::new(
            self.start,
            format!("the instruction is cut off: its {what} runs past the end of the code"),
        )
    }

    fn u8(&mut self, what: &str) -> Result<u8, BytecodeError> {
        let byte = *self.code.get(self.at).ok_or_else(|| self.truncated(what))?;
        self.at += 1;
        Ok(byte)
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BytecodeError> {
        let end = self.at.checked_add(N).ok_or_else(|| self.truncated(what))?;
        let slice = self
            .code
            .get(self.at..end)
            .ok_or_else(|| self.truncated(what))?;
        self.at = end;
        let mut array = [0; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    fn u16(&mut self, what: &str) -> Result<u16, BytecodeError> {
        self.bytes::<2>(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32, BytecodeError> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn flag(&mut self, what: &str) -> Result<bool, BytecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(BytecodeError::new(
                self.start,
                format!("the {what} must be 0 or 1, not {other}"),
            )),
        }
    }

    fn fields(&mut self) -> Result<Vec<FieldRef>, BytecodeError> {
        let count = self.u8("field count")?;
        if count == 0 {
            return Err(BytecodeError::new(
                self.start,
                "a selection path needs at least one field",
            ));
        }
        (0..count)
            .map(|_| {
                Ok(FieldRef {
                    name: self.u32("field name")?,
                    optional: self.flag("optional flag of a field")?,
                })
            })
            .collect()
    }
}

/// Decodes every instruction of `code`, in order. Refuses unknown opcodes,
/// malformed operand bytes and truncated instructions; operand *values*
/// (indices, targets) are checked by the verifier.
pub fn decode(code: &[u8]) -> Result<Vec<Decoded>, BytecodeError> {
    if u32::try_from(code.len()).is_err() {
        return Err(BytecodeError::new(
            u32::MAX,
            "the code is longer than 4 GiB",
        ));
    }
    // Most instructions are two to six bytes.
    let mut out = Vec::with_capacity(code.len() / 3);
    let mut at = 0usize;
    while at < code.len() {
        let (decoded, next) = decode_one(code, at)?;
        out.push(decoded);
        at = next;
    }
    Ok(out)
}

/// Decodes the instruction at byte `at`; returns it and the offset of the
/// next one.
pub fn decode_one(code: &[u8], at: usize) -> Result<(Decoded, usize), BytecodeError> {
    let start = u32::try_from(at)
        .map_err(|_| BytecodeError::new(u32::MAX, "the code is longer than 4 GiB"))?;
    {
        let mut reader = Reader { code, at, start };
        let op = reader.u8("opcode")?;
        let steps = reader.u8("steps byte")?;
        use opcode::*;
        let instruction = match op {
            NOP => Instruction::Nop,
            RETURN => Instruction::Return,
            POP => Instruction::Pop,
            JUMP => Instruction::Jump {
                target: reader.u32("jump target")?,
            },
            JUMP_IF_FALSE => Instruction::JumpIfFalse {
                target: reader.u32("jump target")?,
            },
            JUMP_IF_NOT_NULL => Instruction::JumpIfNotNull {
                target: reader.u32("jump target")?,
            },
            RAISE => Instruction::Raise {
                code: reader.u8("error code")?,
                message: reader.u32("message constant")?,
            },
            NO_OVERLOAD => Instruction::NoOverload {
                function: reader.u32("function name")?,
                argc: reader.u8("argument count")?,
            },
            PUSH_NULL => Instruction::PushNull,
            PUSH_TRUE => Instruction::PushTrue,
            PUSH_FALSE => Instruction::PushFalse,
            PUSH_CONST => Instruction::PushConst {
                index: reader.u32("constant index")?,
            },
            LOAD_ROOT => Instruction::LoadRoot {
                name: reader.u32("root name")?,
            },
            LOAD_LOCAL => Instruction::LoadLocal {
                slot: reader.u16("local slot")?,
            },
            LOAD_ROOT_PATH => Instruction::LoadRootPath {
                root: reader.u32("root name")?,
                fields: reader.fields()?,
            },
            SELECT_PATH => Instruction::SelectPath {
                fields: reader.fields()?,
            },
            HAS => Instruction::Has {
                field: reader.u32("field name")?,
            },
            ADD => Instruction::Add,
            SUB => Instruction::Sub,
            MUL => Instruction::Mul,
            DIV => Instruction::Div,
            REM => Instruction::Rem,
            LT => Instruction::Lt,
            LE => Instruction::Le,
            GT => Instruction::Gt,
            GE => Instruction::Ge,
            EQ => Instruction::Eq,
            NE => Instruction::Ne,
            IN => Instruction::In,
            INDEX => Instruction::Index,
            NEG => Instruction::Neg,
            NOT => Instruction::Not,
            CALL => Instruction::Call {
                function: reader.u32("function name")?,
                argc: reader.u8("argument count")?,
            },
            COND => {
                let byte = reader.u8("condition context")?;
                let context = CondContext::from_byte(byte).ok_or_else(|| {
                    BytecodeError::new(start, format!("unknown condition context {byte}"))
                })?;
                Instruction::Cond { context }
            }
            TRY => Instruction::Try {
                handler: reader.u32("handler offset")?,
            },
            END_TRY => Instruction::EndTry,
            JUMP_IF_COND => Instruction::JumpIfCond {
                decisive: reader.flag("decisive flag")?,
                target: reader.u32("jump target")?,
            },
            LOGIC => Instruction::Logic {
                decisive: reader.flag("decisive flag")?,
            },
            ALLOC_LIST => Instruction::AllocList {
                len: reader.u32("length")?,
            },
            MAKE_LIST => Instruction::MakeList {
                len: reader.u32("length")?,
            },
            MAP_NEW => Instruction::MapNew {
                len: reader.u32("length")?,
            },
            MAP_KEY => Instruction::MapKey,
            MAP_INSERT => Instruction::MapInsert,
            ITER_BEGIN => {
                let byte = reader.u8("macro kind")?;
                let kind = MacroKind::from_byte(byte & !ITER_RESERVE).ok_or_else(|| {
                    BytecodeError::new(start, format!("unknown macro kind {byte}"))
                })?;
                let reserve = byte & ITER_RESERVE != 0;
                if reserve && kind != MacroKind::Map {
                    return Err(BytecodeError::new(
                        start,
                        format!("only `map` reserves its result, not `{}`", kind.name()),
                    ));
                }
                Instruction::IterBegin { kind, reserve }
            }
            ITER_NEXT => Instruction::IterNext {
                slot: reader.u16("local slot")?,
                exit: reader.u32("exit offset")?,
            },
            QUANT_STEP => Instruction::QuantStep {
                decisive: reader.flag("decisive flag")?,
                head: reader.u32("loop head")?,
            },
            COUNT_STEP => Instruction::CountStep {
                head: reader.u32("loop head")?,
            },
            COLLECT_STEP => Instruction::CollectStep {
                head: reader.u32("loop head")?,
            },
            KEEP_STEP => Instruction::KeepStep {
                head: reader.u32("loop head")?,
            },
            ITER_END => {
                let byte = reader.u8("macro kind")?;
                let kind = MacroKind::from_byte(byte).ok_or_else(|| {
                    BytecodeError::new(start, format!("unknown macro kind {byte}"))
                })?;
                Instruction::IterEnd { kind }
            }
            other => {
                return Err(BytecodeError::new(
                    start,
                    format!("unknown opcode 0x{other:02x}"),
                ));
            }
        };
        Ok((
            Decoded {
                offset: start,
                steps,
                instruction,
            },
            reader.at,
        ))
    }
}

/// A readable listing of an expression's code, one instruction a line, for
/// `donmaic disasm` and tests. Constants are shown by value.
pub fn disassemble(code: &ExprCode, constants: &[Constant]) -> Result<String, BytecodeError> {
    use std::fmt::Write;
    let mut out = String::new();
    for decoded in decode(&code.code)? {
        let text = instruction_text(&decoded.instruction, constants);
        let _ = writeln!(out, "{:5}  [{}] {text}", decoded.offset, decoded.steps);
    }
    Ok(out)
}

/// One instruction as `disasm` shows it, with its constants resolved.
pub fn instruction_text(instruction: &Instruction, constants: &[Constant]) -> String {
    let show = |index: ConstIx| match constants.get(index as usize) {
        Some(Constant::String(s)) => format!("{s:?}"),
        Some(Constant::Int(i)) => i.to_string(),
        Some(Constant::Double(bits)) => format!("{:?}", f64::from_bits(*bits)),
        Some(Constant::Bool(b)) => b.to_string(),
        Some(Constant::Null) => "null".to_owned(),
        None => format!("#{index}?"),
    };
    let path = |fields: &[FieldRef]| {
        fields
            .iter()
            .map(|f| format!("{}{}", if f.optional { "?." } else { "." }, show(f.name)))
            .collect::<String>()
    };
    match instruction {
        Instruction::Raise { code, message } => format!(
            "Raise {} {}",
            RAISE_CODES.get(usize::from(*code)).unwrap_or(&"?"),
            show(*message)
        ),
        Instruction::NoOverload { function, argc } => {
            format!("NoOverload {} {argc}", show(*function))
        }
        Instruction::PushConst { index } => format!("PushConst {}", show(*index)),
        Instruction::LoadRoot { name } => format!("LoadRoot {}", show(*name)),
        Instruction::LoadRootPath { root, fields } => {
            format!("LoadRootPath {}{}", show(*root), path(fields))
        }
        Instruction::SelectPath { fields } => format!("SelectPath {}", path(fields)),
        Instruction::Has { field } => format!("Has {}", show(*field)),
        Instruction::Call { function, argc } => format!("Call {} {argc}", show(*function)),
        other => format!("{other:?}"),
    }
}

/// Builds a deduplicated constant pool while the compiler emits code, and
/// hands it over as the plan's `Vec<Constant>`.
#[derive(Clone, Debug, Default)]
pub struct ConstPool {
    constants: Vec<Constant>,
    strings: HashMap<String, ConstIx>,
    /// Non-string constants by (kind, bits).
    scalars: HashMap<(u8, u64), ConstIx>,
}

impl ConstPool {
    pub fn new() -> ConstPool {
        ConstPool::default()
    }

    /// Continues an existing pool (its constants keep their indices).
    pub fn from_constants(constants: Vec<Constant>) -> ConstPool {
        let mut pool = ConstPool::default();
        for (index, constant) in constants.iter().enumerate() {
            // A pool longer than u32 cannot be addressed; stop indexing there.
            let Ok(index) = ConstIx::try_from(index) else {
                break;
            };
            match constant {
                Constant::String(s) => {
                    pool.strings.entry(s.clone()).or_insert(index);
                }
                other => {
                    if let Some(key) = scalar_key(other) {
                        pool.scalars.entry(key).or_insert(index);
                    }
                }
            }
        }
        pool.constants = constants;
        pool
    }

    fn push(&mut self, constant: Constant) -> ConstIx {
        // A pool that overflows u32 cannot be encoded; the encoder and
        // verifier refuse its indices, so saturating cannot go unnoticed.
        let index = ConstIx::try_from(self.constants.len()).unwrap_or(ConstIx::MAX);
        self.constants.push(constant);
        index
    }

    pub fn intern(&mut self, constant: Constant) -> ConstIx {
        match constant {
            Constant::String(s) => self.string(&s),
            other => {
                let Some(key) = scalar_key(&other) else {
                    return self.push(other);
                };
                if let Some(index) = self.scalars.get(&key) {
                    return *index;
                }
                let index = self.push(other);
                self.scalars.insert(key, index);
                index
            }
        }
    }

    pub fn string(&mut self, text: &str) -> ConstIx {
        if let Some(index) = self.strings.get(text) {
            return *index;
        }
        let index = self.push(Constant::String(text.to_owned()));
        self.strings.insert(text.to_owned(), index);
        index
    }

    pub fn int(&mut self, value: i64) -> ConstIx {
        self.intern(Constant::Int(value))
    }

    /// Interned by bits: `0.0` and `-0.0` (and NaN payloads) stay apart.
    pub fn double(&mut self, value: f64) -> ConstIx {
        self.intern(Constant::Double(value.to_bits()))
    }

    pub fn get(&self, index: ConstIx) -> Option<&Constant> {
        self.constants.get(index as usize)
    }

    pub fn len(&self) -> usize {
        self.constants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.constants.is_empty()
    }

    pub fn constants(&self) -> &[Constant] {
        &self.constants
    }

    pub fn into_constants(self) -> Vec<Constant> {
        self.constants
    }
}

fn scalar_key(constant: &Constant) -> Option<(u8, u64)> {
    Some(match constant {
        Constant::Null => (0, 0),
        Constant::Bool(b) => (1, u64::from(*b)),
        Constant::Int(i) => (2, *i as u64),
        Constant::Double(bits) => (3, *bits),
        Constant::String(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instruction_round_trips_through_its_encoding() {
        let field = |name, optional| FieldRef { name, optional };
        let all = vec![
            Instruction::Nop,
            Instruction::Return,
            Instruction::Pop,
            Instruction::Jump {
                target: 0x0102_0304,
            },
            Instruction::JumpIfFalse { target: 7 },
            Instruction::JumpIfNotNull { target: 9 },
            Instruction::Raise {
                code: 3,
                message: 70000,
            },
            Instruction::NoOverload {
                function: 5,
                argc: 3,
            },
            Instruction::PushNull,
            Instruction::PushTrue,
            Instruction::PushFalse,
            Instruction::PushConst { index: u32::MAX },
            Instruction::LoadRoot { name: 1 },
            Instruction::LoadLocal { slot: 0x0203 },
            Instruction::LoadRootPath {
                root: 1,
                fields: vec![field(2, false), field(3, true)],
            },
            Instruction::SelectPath {
                fields: vec![field(4, true)],
            },
            Instruction::Has { field: 4 },
            Instruction::Add,
            Instruction::Sub,
            Instruction::Mul,
            Instruction::Div,
            Instruction::Rem,
            Instruction::Lt,
            Instruction::Le,
            Instruction::Gt,
            Instruction::Ge,
            Instruction::Eq,
            Instruction::Ne,
            Instruction::In,
            Instruction::Index,
            Instruction::Neg,
            Instruction::Not,
            Instruction::Call {
                function: 8,
                argc: 2,
            },
            Instruction::Cond {
                context: CondContext::Conditional,
            },
            Instruction::Try { handler: 40 },
            Instruction::EndTry,
            Instruction::JumpIfCond {
                decisive: true,
                target: 12,
            },
            Instruction::Logic { decisive: false },
            Instruction::AllocList { len: 3 },
            Instruction::MakeList { len: 3 },
            Instruction::MapNew { len: 2 },
            Instruction::MapKey,
            Instruction::MapInsert,
            Instruction::IterBegin {
                kind: MacroKind::Map,
                reserve: true,
            },
            Instruction::IterBegin {
                kind: MacroKind::Has,
                reserve: false,
            },
            Instruction::IterNext { slot: 1, exit: 99 },
            Instruction::QuantStep {
                decisive: true,
                head: 3,
            },
            Instruction::CountStep { head: 3 },
            Instruction::CollectStep { head: 3 },
            Instruction::KeepStep { head: 3 },
            Instruction::IterEnd {
                kind: MacroKind::ExistsOne,
            },
        ];
        let mut code = Vec::new();
        let mut offsets = Vec::new();
        for (i, instruction) in all.iter().enumerate() {
            offsets.push(code.len() as u32);
            instruction.encode(i as u8, &mut code);
        }
        let decoded = decode(&code).expect("decodes");
        assert_eq!(decoded.len(), all.len());
        for (i, (d, original)) in decoded.iter().zip(&all).enumerate() {
            assert_eq!(&d.instruction, original);
            assert_eq!(d.steps, i as u8);
            assert_eq!(d.offset, offsets[i]);
        }
        // Every opcode the decoder knows is produced by some instruction.
        let known: std::collections::BTreeSet<u8> = all.iter().map(Instruction::opcode).collect();
        for byte in 0..=u8::MAX {
            // Ones make valid flags, counts, contexts and kinds.
            let mut buffer = vec![1u8; 16];
            buffer[0] = byte;
            let decodes = decode_one(&buffer, 0).is_ok();
            assert_eq!(decodes, known.contains(&byte), "opcode 0x{byte:02x}");
        }
    }

    #[test]
    fn truncated_and_malformed_instructions_are_refused() {
        let mut code = Vec::new();
        Instruction::Jump { target: 5 }.encode(0, &mut code);
        for cut in 1..code.len() {
            let error = decode(&code[..cut]).unwrap_err();
            assert_eq!(error.offset, 0);
            assert!(error.message.contains("cut off"), "{error}");
        }
        assert!(decode(&[opcode::LOGIC, 0, 2]).is_err());
        assert!(decode(&[opcode::SELECT_PATH, 0, 0]).is_err());
        assert!(decode(&[opcode::ITER_BEGIN, 0, ITER_RESERVE]).is_err());
        assert!(decode(&[opcode::COND, 0, 8]).is_err());
        let error = decode(&[opcode::NOP, 0, 0xFF, 0]).unwrap_err();
        assert_eq!(error.offset, 2);
        assert!(error.message.contains("unknown opcode 0xff"));
    }

    #[test]
    fn the_pool_deduplicates_exactly() {
        let mut pool = ConstPool::new();
        let a = pool.string("a");
        assert_eq!(pool.string("a"), a);
        assert_eq!(pool.int(1), pool.int(1));
        assert_ne!(pool.int(1), pool.double(1.0));
        assert_ne!(pool.double(0.0), pool.double(-0.0));
        assert_eq!(pool.double(f64::NAN), pool.double(f64::NAN));
        assert_eq!(pool.intern(Constant::Null), pool.intern(Constant::Null));
        assert_ne!(
            pool.intern(Constant::Bool(true)),
            pool.intern(Constant::Bool(false))
        );
        let resumed = ConstPool::from_constants(pool.clone().into_constants());
        let mut resumed = resumed;
        assert_eq!(resumed.string("a"), a);
        assert_eq!(resumed.len(), pool.len());
    }
}
