//! The expression code generator: a parsed (and checked) [`Expr`] to the
//! bytecode of `donmai_runtime::bytecode`, with its constants interned in a
//! shared [`ConstPool`].
//!
//! The code does what the reference evaluator ([`crate::eval`]) does, in
//! the same order: operands left to right, the same builtin for each
//! operator, errors raised at the same sub-expression, and fuel charged at
//! the same points. The evaluator charges a step when it *enters* a node,
//! before the node's children; the generator counts the entries since the
//! last instruction and has the next instruction charge them (the steps
//! byte), so a budget runs out at the same place in both.
//!
//! What the evaluator only discovers by running (an unknown function, a
//! macro of the wrong shape) compiles to a `Raise` at that point, so
//! `false && nosuch()` is still `false`. A syntax-error node or a tree
//! nested past [`crate::eval::MAX_DEPTH`] is refused at compile time.

use crate::eval::{MAX_DEPTH, Vars};
use crate::typeck::{TypeEnv, check_expr};
use donmai_grammar::Span;
use donmai_grammar::expr::{BinaryOp, Expr, ExprKind, Name, UnaryOp};
use donmai_runtime::bytecode::{
    CondContext, ConstPool, FieldRef, Instruction, MacroKind, raise_code_index, verify,
};
use donmai_runtime::plan::{ExprCode, SourceIx, SourceRef};
use donmai_stdlib::builtins;
use donmai_stdlib::types::Type;
use donmai_stdlib::value::{EvalError, Fuel, Value, error_code};
use std::fmt;

/// Why an expression could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodegenError {
    pub kind: CodegenErrorKind,
    /// Where, in the coordinates of the expression's spans.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodegenErrorKind {
    /// The tree still holds a parse-error node.
    Syntax,
    /// The tree nests deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A limit of the encoding: a span past 4 GiB, more than 65535 stack
    /// slots or locals, more than 255 arguments or path fields.
    TooLarge(String),
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CodegenErrorKind::Syntax => f.write_str("the expression has a syntax error"),
            CodegenErrorKind::TooDeep => {
                write!(f, "the expression nests more than {MAX_DEPTH} levels deep")
            }
            CodegenErrorKind::TooLarge(what) => write!(f, "the expression is too large: {what}"),
        }
    }
}

impl std::error::Error for CodegenError {}

impl CodegenError {
    /// The evaluation error the reference evaluator gives for the same tree.
    pub fn to_eval_error(&self) -> EvalError {
        let code = match self.kind {
            CodegenErrorKind::Syntax => error_code::SYNTAX,
            CodegenErrorKind::TooDeep => error_code::TOO_DEEP,
            CodegenErrorKind::TooLarge(_) => error_code::INVALID_ARGUMENT,
        };
        EvalError::new(code, self.to_string()).at(self.span)
    }
}

/// Every root is `dyn`: the type of what the expression computes from
/// literals and builtins alone.
struct DynRoots;

impl TypeEnv for DynRoots {
    fn root(&self, _: &str) -> Option<Type> {
        Some(Type::Dyn)
    }

    fn roots(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Compiles `expr`, whose spans are offsets into source file `file`.
/// `result_type` is what the checker infers with every root `dyn`.
pub fn compile_expr(
    expr: &Expr,
    pool: &mut ConstPool,
    file: SourceIx,
) -> Result<ExprCode, CodegenError> {
    compile_expr_in(expr, &DynRoots, pool, file)
}

/// Compiles `expr` with `result_type` from the checker in `env` (`dyn` if
/// the checker reports a problem).
pub fn compile_expr_in(
    expr: &Expr,
    env: &dyn TypeEnv,
    pool: &mut ConstPool,
    file: SourceIx,
) -> Result<ExprCode, CodegenError> {
    let mut code = compile_untyped(expr, pool, file)?;
    let (ty, diagnostics) = check_expr(expr, env);
    if diagnostics.is_empty() {
        code.result_type = ty.to_string();
    }
    Ok(code)
}

/// Compiles `expr` without asking the checker; `result_type` is `dyn`.
pub fn compile_untyped(
    expr: &Expr,
    pool: &mut ConstPool,
    file: SourceIx,
) -> Result<ExprCode, CodegenError> {
    compile_with(expr, pool, file, None)
}

/// Whether the checker typed the value at a span (a selection's operand) as
/// an object that declares the named field optional.
pub type DeclaresOptional<'a> = &'a dyn Fn(Span, &str) -> bool;

/// [`compile_untyped`] for an expression the checker typed: a `.f` whose
/// operand's type declares `f` optional compiles as `?.f`, so a value that
/// leaves the field out reads as `null`, as the checker typed it (`T?`),
/// instead of failing on a missing key. Everything else is the same.
pub fn compile_typed(
    expr: &Expr,
    pool: &mut ConstPool,
    file: SourceIx,
    declares_optional: DeclaresOptional<'_>,
) -> Result<ExprCode, CodegenError> {
    compile_with(expr, pool, file, Some(declares_optional))
}

fn compile_with(
    expr: &Expr,
    pool: &mut ConstPool,
    file: SourceIx,
    declares_optional: Option<DeclaresOptional<'_>>,
) -> Result<ExprCode, CodegenError> {
    let mut generator = Generator {
        declares_optional,
        pool,
        file,
        code: Vec::with_capacity(64),
        spans: Vec::with_capacity(16),
        pending: 0,
        depth: 0,
        max_depth: 0,
        scopes: Vec::new(),
        max_locals: 0,
        reachable: true,
    };
    generator.gen_expr(expr, 0)?;
    generator.emit(Instruction::Return, expr.span, 1, 0)?;
    let too_large = |what: &str| CodegenError {
        kind: CodegenErrorKind::TooLarge(what.to_owned()),
        span: expr.span,
    };
    Ok(ExprCode {
        max_stack: u16::try_from(generator.max_depth)
            .map_err(|_| too_large("more than 65535 stack slots"))?,
        locals: u16::try_from(generator.max_locals)
            .map_err(|_| too_large("more than 65535 nested macros"))?,
        result_type: "dyn".to_owned(),
        source: generator.source_ref(expr.span)?,
        spans: generator.spans,
        code: generator.code,
    })
}

/// A forward jump target: where it was bound, and the operands to patch.
#[derive(Default)]
struct Label {
    at: Option<u32>,
    patches: Vec<usize>,
}

struct Generator<'p, 'e> {
    /// For a typed compile ([`compile_typed`]).
    declares_optional: Option<DeclaresOptional<'p>>,
    pool: &'p mut ConstPool,
    file: SourceIx,
    code: Vec<u8>,
    spans: Vec<(u32, SourceRef)>,
    /// Node entries not yet charged by an instruction.
    pending: u32,
    /// Operand-stack depth at this point of the code.
    depth: usize,
    max_depth: usize,
    /// Macro variables in scope, innermost last; the index is the slot.
    scopes: Vec<&'e str>,
    max_locals: usize,
    /// False after an instruction that never falls through, until a label
    /// some emitted jump targets: nothing is emitted meanwhile, but the tree
    /// is still walked so that syntax errors and depth are still found.
    reachable: bool,
}

impl<'e> Generator<'_, 'e> {
    fn source_ref(&self, span: Span) -> Result<SourceRef, CodegenError> {
        match (u32::try_from(span.start), u32::try_from(span.end)) {
            (Ok(start), Ok(end)) => Ok(SourceRef {
                file: self.file,
                start,
                end,
            }),
            _ => Err(CodegenError {
                kind: CodegenErrorKind::TooLarge("a span past 4 GiB".to_owned()),
                span,
            }),
        }
    }

    fn here(&self) -> u32 {
        // Spans are checked to fit u32, and code grows by at most a few
        // bytes per node of a tree far smaller than that.
        u32::try_from(self.code.len()).unwrap_or(u32::MAX)
    }

    fn attach(&mut self, at: u32, span: Span) -> Result<(), CodegenError> {
        let source = self.source_ref(span)?;
        if self.spans.last().map(|(_, s)| *s) != Some(source) {
            self.spans.push((at, source));
        }
        Ok(())
    }

    /// Emits `instruction` (charging the pending node entries) with the
    /// span its errors carry; `pops`/`pushes` keep the depth. Returns its
    /// offset, or `None` in unreachable code.
    fn emit(
        &mut self,
        instruction: Instruction,
        span: Span,
        pops: usize,
        pushes: usize,
    ) -> Result<Option<u32>, CodegenError> {
        let terminal = instruction.ends_block();
        if !self.reachable {
            self.pending = 0;
            self.depth = self.depth.saturating_sub(pops) + pushes;
            return Ok(None);
        }
        while self.pending > u32::from(u8::MAX) {
            let at = self.here();
            self.attach(at, span)?;
            Instruction::Nop.encode(u8::MAX, &mut self.code);
            self.pending -= u32::from(u8::MAX);
        }
        let at = self.here();
        self.attach(at, span)?;
        // Fits by the loop above.
        instruction.encode(self.pending as u8, &mut self.code);
        self.pending = 0;
        self.max_depth = self.max_depth.max(self.depth);
        self.depth = self.depth.saturating_sub(pops) + pushes;
        if terminal {
            self.reachable = false;
        } else {
            self.max_depth = self.max_depth.max(self.depth);
        }
        Ok(Some(at))
    }

    /// Emits a jump-like instruction whose target operand, at
    /// `operand_offset` bytes into the instruction, is `label`.
    fn emit_to(
        &mut self,
        instruction: Instruction,
        operand_offset: usize,
        label: &mut Label,
        span: Span,
        pops: usize,
        pushes: usize,
    ) -> Result<(), CodegenError> {
        if let Some(at) = self.emit(instruction, span, pops, pushes)? {
            label.patches.push(at as usize + operand_offset);
        }
        Ok(())
    }

    /// Binds `label` here. Pending entries belong to the path falling in,
    /// not to the jumps, so they are charged first.
    fn bind(&mut self, label: &mut Label, span: Span) -> Result<(), CodegenError> {
        if self.reachable && self.pending > 0 {
            self.emit(Instruction::Nop, span, 0, 0)?;
        }
        let at = self.here();
        label.at = Some(at);
        for patch in &label.patches {
            if let Some(slot) = self.code.get_mut(*patch..*patch + 4) {
                slot.copy_from_slice(&at.to_le_bytes());
            }
        }
        if !label.patches.is_empty() {
            self.reachable = true;
        }
        Ok(())
    }

    fn raise(&mut self, code: &str, message: String, span: Span) -> Result<(), CodegenError> {
        if self.reachable {
            let message = self.pool.string(&message);
            // Every code the generator raises is in the table.
            let code = raise_code_index(code).unwrap_or(0);
            self.emit(Instruction::Raise { code, message }, span, 0, 1)?;
        } else {
            self.depth += 1;
        }
        Ok(())
    }

    fn gen_expr(&mut self, expr: &'e Expr, depth: usize) -> Result<(), CodegenError> {
        self.pending += 1;
        self.gen_entered(expr, depth)
    }

    /// Generates `expr` whose entry step is already accounted for.
    fn gen_entered(&mut self, expr: &'e Expr, depth: usize) -> Result<(), CodegenError> {
        self.check_depth(expr, depth)?;
        let depth = depth + 1;
        let span = expr.span;
        match &expr.kind {
            ExprKind::Null => {
                self.emit(Instruction::PushNull, span, 0, 1)?;
            }
            ExprKind::Bool(true) => {
                self.emit(Instruction::PushTrue, span, 0, 1)?;
            }
            ExprKind::Bool(false) => {
                self.emit(Instruction::PushFalse, span, 0, 1)?;
            }
            ExprKind::Int(i) => {
                let index = if self.reachable { self.pool.int(*i) } else { 0 };
                self.emit(Instruction::PushConst { index }, span, 0, 1)?;
            }
            ExprKind::Double(d) => {
                let index = if self.reachable {
                    self.pool.double(*d)
                } else {
                    0
                };
                self.emit(Instruction::PushConst { index }, span, 0, 1)?;
            }
            ExprKind::String(s) => {
                let index = self.string(s);
                self.emit(Instruction::PushConst { index }, span, 0, 1)?;
            }
            ExprKind::List(items) => {
                let len = self.count(items.len(), span)?;
                if len > 0 {
                    self.emit(Instruction::AllocList { len }, span, 0, 0)?;
                }
                for item in items {
                    self.gen_expr(item, depth)?;
                }
                self.emit(Instruction::MakeList { len }, span, items.len(), 1)?;
            }
            ExprKind::Map(entries) => {
                let len = self.count(entries.len(), span)?;
                self.emit(Instruction::MapNew { len }, span, 0, 1)?;
                for (key, value) in entries {
                    self.gen_expr(key, depth)?;
                    self.emit(Instruction::MapKey, key.span, 1, 1)?;
                    self.gen_expr(value, depth)?;
                    self.emit(Instruction::MapInsert, key.span, 3, 1)?;
                }
            }
            ExprKind::Ident(name) => self.gen_ident(name)?,
            ExprKind::Select { .. } => self.gen_select(expr, depth)?,
            ExprKind::Index { operand, index } => {
                self.gen_expr(operand, depth)?;
                self.gen_expr(index, depth)?;
                self.emit(Instruction::Index, span, 2, 1)?;
            }
            ExprKind::Call {
                target,
                function,
                args,
            } => self.gen_call(expr, target.as_deref(), function, args, depth)?,
            ExprKind::Unary { op, operand } => {
                self.gen_expr(operand, depth)?;
                let instruction = match op {
                    UnaryOp::Neg => Instruction::Neg,
                    UnaryOp::Not => Instruction::Not,
                };
                self.emit(instruction, span, 1, 1)?;
            }
            ExprKind::Binary { op, lhs, rhs } => self.gen_binary(expr, *op, lhs, rhs, depth)?,
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => {
                self.gen_expr(cond, depth)?;
                self.emit(
                    Instruction::Cond {
                        context: CondContext::Conditional,
                    },
                    cond.span,
                    1,
                    1,
                )?;
                let mut other = Label::default();
                let mut end = Label::default();
                self.emit_to(
                    Instruction::JumpIfFalse { target: 0 },
                    2,
                    &mut other,
                    span,
                    1,
                    0,
                )?;
                let before = self.depth;
                self.gen_expr(then, depth)?;
                self.emit_to(Instruction::Jump { target: 0 }, 2, &mut end, span, 0, 0)?;
                self.bind(&mut other, span)?;
                self.depth = before;
                self.gen_expr(otherwise, depth)?;
                self.bind(&mut end, span)?;
                self.depth = before + 1;
            }
            ExprKind::Error => {
                return Err(CodegenError {
                    kind: CodegenErrorKind::Syntax,
                    span,
                });
            }
        }
        Ok(())
    }

    fn count(&self, len: usize, span: Span) -> Result<u32, CodegenError> {
        u32::try_from(len).map_err(|_| CodegenError {
            kind: CodegenErrorKind::TooLarge("a literal with more than 4 billion entries".into()),
            span,
        })
    }

    fn local(&self, name: &str) -> Option<u16> {
        self.scopes
            .iter()
            .rposition(|variable| *variable == name)
            .and_then(|slot| u16::try_from(slot).ok())
    }

    fn gen_ident(&mut self, name: &Name) -> Result<(), CodegenError> {
        match self.local(&name.text) {
            Some(slot) => self.emit(Instruction::LoadLocal { slot }, name.span, 0, 1)?,
            None => {
                let name_index = self.string(&name.text);
                self.emit(Instruction::LoadRoot { name: name_index }, name.span, 0, 1)?
            }
        };
        Ok(())
    }

    /// A chain of selections becomes one path instruction over its base:
    /// `nodes.x.output.status` is a single `LoadRootPath`. `depth` is the
    /// depth of `expr`'s operand.
    fn gen_select(&mut self, expr: &'e Expr, depth: usize) -> Result<(), CodegenError> {
        let mut fields: Vec<(&'e Name, bool)> = Vec::new();
        let mut base = expr;
        let mut depth = depth;
        while let ExprKind::Select {
            operand,
            field,
            optional,
        } = &base.kind
        {
            let absent_is_null = self
                .declares_optional
                .is_some_and(|declares| declares(operand.span, &field.text));
            fields.push((field, *optional || absent_is_null));
            base = operand;
            if !matches!(base.kind, ExprKind::Select { .. }) || fields.len() == usize::from(u8::MAX)
            {
                break;
            }
            // The inner selection is a node the evaluator enters.
            self.check_depth(base, depth)?;
            self.pending += 1;
            depth += 1;
        }
        fields.reverse();
        let refs: Vec<FieldRef> = fields
            .iter()
            .map(|(field, optional)| FieldRef {
                name: self.string(&field.text),
                optional: *optional,
            })
            .collect();
        let (at, instruction) = match &base.kind {
            ExprKind::Ident(root) if self.local(&root.text).is_none() => {
                self.check_depth(base, depth)?;
                self.pending += 1;
                let instruction = Instruction::LoadRootPath {
                    root: self.string(&root.text),
                    fields: refs,
                };
                (
                    self.emit(instruction.clone(), root.span, 0, 1)?,
                    instruction,
                )
            }
            _ => {
                self.gen_expr(base, depth)?;
                let instruction = Instruction::SelectPath { fields: refs };
                (
                    self.emit(instruction.clone(), expr.span, 1, 1)?,
                    instruction,
                )
            }
        };
        if let Some(at) = at {
            for (index, (field, _)) in fields.iter().enumerate() {
                self.attach(instruction.field_offset(at, index), field.span)?;
            }
        }
        Ok(())
    }

    fn check_depth(&self, expr: &Expr, depth: usize) -> Result<(), CodegenError> {
        if depth > MAX_DEPTH {
            return Err(CodegenError {
                kind: CodegenErrorKind::TooDeep,
                span: expr.span,
            });
        }
        Ok(())
    }

    /// Constants of unreachable code are not interned (index 0 is never
    /// emitted there).
    fn string(&mut self, text: &str) -> u32 {
        if self.reachable {
            self.pool.string(text)
        } else {
            0
        }
    }

    fn gen_binary(
        &mut self,
        expr: &'e Expr,
        op: BinaryOp,
        lhs: &'e Expr,
        rhs: &'e Expr,
        depth: usize,
    ) -> Result<(), CodegenError> {
        let span = expr.span;
        let instruction = match op {
            BinaryOp::And | BinaryOp::Or => return self.gen_logic(expr, op, lhs, rhs, depth),
            BinaryOp::Coalesce => {
                self.gen_expr(lhs, depth)?;
                let mut end = Label::default();
                let before = self.depth;
                self.emit_to(
                    Instruction::JumpIfNotNull { target: 0 },
                    2,
                    &mut end,
                    span,
                    1,
                    0,
                )?;
                self.gen_expr(rhs, depth)?;
                self.bind(&mut end, span)?;
                self.depth = before;
                return Ok(());
            }
            BinaryOp::Eq => Instruction::Eq,
            BinaryOp::Ne => Instruction::Ne,
            BinaryOp::Add => Instruction::Add,
            BinaryOp::Sub => Instruction::Sub,
            BinaryOp::Mul => Instruction::Mul,
            BinaryOp::Div => Instruction::Div,
            BinaryOp::Rem => Instruction::Rem,
            BinaryOp::Lt => Instruction::Lt,
            BinaryOp::Le => Instruction::Le,
            BinaryOp::Gt => Instruction::Gt,
            BinaryOp::Ge => Instruction::Ge,
            BinaryOp::In => Instruction::In,
        };
        self.gen_expr(lhs, depth)?;
        self.gen_expr(rhs, depth)?;
        self.emit(instruction, span, 2, 1)?;
        Ok(())
    }

    /// One side of `&&`/`||`: the operand as a condition, under a `Try`
    /// whose handler (just after it) leaves a caught error as the side's
    /// pending value.
    fn gen_caught_condition(
        &mut self,
        operand: &'e Expr,
        context: CondContext,
        span: Span,
        depth: usize,
    ) -> Result<(), CodegenError> {
        let mut done = Label::default();
        self.emit_to(Instruction::Try { handler: 0 }, 2, &mut done, span, 0, 0)?;
        self.gen_expr(operand, depth)?;
        self.emit(Instruction::Cond { context }, operand.span, 1, 1)?;
        self.emit(Instruction::EndTry, span, 0, 0)?;
        self.bind(&mut done, span)
    }

    /// `a && b`, `a || b`: each side runs under a `Try`, so an error on one
    /// side becomes a pending error that a deciding value on the other
    /// side absorbs.
    fn gen_logic(
        &mut self,
        expr: &'e Expr,
        op: BinaryOp,
        lhs: &'e Expr,
        rhs: &'e Expr,
        depth: usize,
    ) -> Result<(), CodegenError> {
        let span = expr.span;
        let decisive = op == BinaryOp::Or;
        let context = if decisive {
            CondContext::Or
        } else {
            CondContext::And
        };
        let before = self.depth;
        let mut end = Label::default();
        self.gen_caught_condition(lhs, context, span, depth)?;
        self.depth = before + 1;
        self.emit_to(
            Instruction::JumpIfCond {
                decisive,
                target: 0,
            },
            3,
            &mut end,
            span,
            0,
            0,
        )?;
        self.gen_caught_condition(rhs, context, span, depth)?;
        self.depth = before + 2;
        self.emit(Instruction::Logic { decisive }, span, 2, 1)?;
        self.bind(&mut end, span)?;
        self.depth = before + 1;
        Ok(())
    }

    fn gen_call(
        &mut self,
        expr: &'e Expr,
        target: Option<&'e Expr>,
        function: &'e Name,
        args: &'e [Expr],
        depth: usize,
    ) -> Result<(), CodegenError> {
        let name = function.text.as_str();
        match (target, name) {
            (None, "has") => return self.gen_has(expr, args, depth),
            (Some(target), _) if builtins::is_macro(name) => {
                return self.gen_macro(expr, target, function, args, depth);
            }
            _ => {}
        }
        let Some(builtin) = builtins::function(name) else {
            self.raise(
                error_code::UNKNOWN_FUNCTION,
                format!("unknown function `{name}`"),
                function.span,
            )?;
            return self.walk_unreachable(target, args, depth);
        };
        if target.is_some() && !builtin.form.allows_method() {
            self.raise(
                error_code::NO_SUCH_OVERLOAD,
                format!("`{name}` is not a method: call it as `{name}(...)`"),
                function.span,
            )?;
            return self.walk_unreachable(target, args, depth);
        }
        if target.is_none() && !builtin.form.allows_function() {
            self.raise(
                error_code::NO_SUCH_OVERLOAD,
                format!("`{name}` is a method: call it as `x.{name}(...)`"),
                function.span,
            )?;
            return self.walk_unreachable(target, args, depth);
        }
        let argc = args.len() + usize::from(target.is_some());
        let argc_byte = u8::try_from(argc).map_err(|_| CodegenError {
            kind: CodegenErrorKind::TooLarge("a call with more than 255 arguments".into()),
            span: expr.span,
        })?;
        if let Some(target) = target {
            self.gen_expr(target, depth)?;
        }
        for arg in args {
            self.gen_expr(arg, depth)?;
        }
        let function_index = self.string(name);
        let instruction = if builtin.overloads.iter().any(|o| o.accepts_arity(argc)) {
            Instruction::Call {
                function: function_index,
                argc: argc_byte,
            }
        } else {
            Instruction::NoOverload {
                function: function_index,
                argc: argc_byte,
            }
        };
        self.emit(instruction, expr.span, argc, 1)?;
        Ok(())
    }

    /// Walks operands that a `Raise` made unreachable, only to find syntax
    /// errors and excess depth in them; restores the depth after.
    fn walk_unreachable(
        &mut self,
        target: Option<&'e Expr>,
        args: &'e [Expr],
        depth: usize,
    ) -> Result<(), CodegenError> {
        let before = self.depth;
        for operand in target.into_iter().chain(args) {
            self.gen_expr(operand, depth)?;
        }
        self.depth = before;
        Ok(())
    }

    fn gen_has(
        &mut self,
        expr: &'e Expr,
        args: &'e [Expr],
        depth: usize,
    ) -> Result<(), CodegenError> {
        let [arg] = args else {
            self.raise(
                error_code::INVALID_ARGUMENT,
                "`has` takes one field selection, like `has(a.b)`".to_owned(),
                expr.span,
            )?;
            return self.walk_unreachable(None, args, depth);
        };
        let ExprKind::Select { operand, field, .. } = &arg.kind else {
            self.raise(
                error_code::INVALID_ARGUMENT,
                "`has` takes a field selection, like `has(a.b)`".to_owned(),
                arg.span,
            )?;
            return self.walk_unreachable(None, args, depth);
        };
        self.gen_expr(operand, depth)?;
        let field = self.string(&field.text);
        self.emit(Instruction::Has { field }, operand.span, 1, 1)?;
        Ok(())
    }

    fn gen_macro(
        &mut self,
        expr: &'e Expr,
        target: &'e Expr,
        function: &'e Name,
        args: &'e [Expr],
        depth: usize,
    ) -> Result<(), CodegenError> {
        let name = function.text.as_str();
        let span = expr.span;
        let usage = match name {
            "map" => "`e.map(x, f)` or `e.map(x, p, f)`".to_owned(),
            "filter" => "`e.filter(x, p)`".to_owned(),
            other => format!("`e.{other}(x, p)`"),
        };
        let shape_error = format!("`{name}` takes a variable name and expressions: {usage}");
        let Some(kind) = MacroKind::from_name(name) else {
            // `is_macro` and `MacroKind` list the same names; a name in one
            // only would be a bug, reported like a bad shape.
            self.raise(error_code::INVALID_ARGUMENT, shape_error, span)?;
            return self.walk_unreachable(Some(target), args, depth);
        };
        let (variable, rest) = match args {
            [first, rest @ ..] => match &first.kind {
                ExprKind::Ident(variable) => (variable.text.as_str(), rest),
                _ => {
                    self.raise(error_code::INVALID_ARGUMENT, shape_error, span)?;
                    return self.walk_unreachable(Some(target), args, depth);
                }
            },
            [] => {
                self.raise(error_code::INVALID_ARGUMENT, shape_error, span)?;
                return self.walk_unreachable(Some(target), args, depth);
            }
        };
        self.gen_expr(target, depth)?;
        let shape_ok = matches!(
            (kind, rest.len()),
            (MacroKind::All | MacroKind::Exists | MacroKind::ExistsOne, 1)
                | (MacroKind::Map, 1 | 2)
                | (MacroKind::Filter, 1)
        );
        if !shape_ok {
            self.emit(
                Instruction::IterBegin {
                    kind,
                    reserve: false,
                },
                target.span,
                1,
                0,
            )?;
            self.raise(error_code::INVALID_ARGUMENT, shape_error, span)?;
            let before = self.depth;
            for operand in rest {
                self.gen_expr(operand, depth)?;
            }
            self.depth = before;
            return Ok(());
        }
        let reserve = kind == MacroKind::Map;
        let begin = Instruction::IterBegin { kind, reserve };
        if let Some(at) = self.emit(begin, target.span, 1, 0)?
            && let Some(transform) = rest.last()
            && reserve
        {
            self.attach(Instruction::reserve_offset(at), transform.span)?;
        }
        let slot = u16::try_from(self.scopes.len()).map_err(|_| CodegenError {
            kind: CodegenErrorKind::TooLarge("more than 65535 nested macros".into()),
            span,
        })?;
        self.scopes.push(variable);
        self.max_locals = self.max_locals.max(self.scopes.len());

        let mut head = Label::default();
        let mut exit = Label::default();
        self.bind(&mut head, span)?;
        let head_at = head.at.unwrap_or(0);
        let level = self.depth;
        let body = rest.first().unwrap_or(target);
        // The element's body is entered once per element: IterNext charges
        // that entry when it binds the element.
        self.pending = 1;
        self.emit_to(
            Instruction::IterNext { slot, exit: 0 },
            4,
            &mut exit,
            body.span,
            0,
            0,
        )?;
        match (kind, rest) {
            (MacroKind::All | MacroKind::Exists, [predicate]) => {
                let decisive = kind == MacroKind::Exists;
                let context = if decisive {
                    CondContext::Exists
                } else {
                    CondContext::All
                };
                let mut caught = Label::default();
                self.emit_to(Instruction::Try { handler: 0 }, 2, &mut caught, span, 0, 0)?;
                self.gen_entered(predicate, depth)?;
                self.emit(Instruction::Cond { context }, predicate.span, 1, 1)?;
                self.emit(Instruction::EndTry, span, 0, 0)?;
                self.bind(&mut caught, span)?;
                self.depth = level + 1;
                self.emit(
                    Instruction::QuantStep {
                        decisive,
                        head: head_at,
                    },
                    span,
                    1,
                    0,
                )?;
            }
            (MacroKind::ExistsOne, [predicate]) => {
                self.gen_entered(predicate, depth)?;
                self.emit(
                    Instruction::Cond {
                        context: CondContext::ExistsOne,
                    },
                    predicate.span,
                    1,
                    1,
                )?;
                self.emit(Instruction::CountStep { head: head_at }, span, 1, 0)?;
            }
            (MacroKind::Map, [transform]) => {
                self.gen_entered(transform, depth)?;
                self.emit(Instruction::CollectStep { head: head_at }, span, 1, 0)?;
            }
            (MacroKind::Map, [predicate, transform]) => {
                self.gen_entered(predicate, depth)?;
                self.emit(
                    Instruction::Cond {
                        context: CondContext::Map,
                    },
                    predicate.span,
                    1,
                    1,
                )?;
                self.emit(Instruction::JumpIfFalse { target: head_at }, span, 1, 0)?;
                self.gen_expr(transform, depth)?;
                self.emit(Instruction::CollectStep { head: head_at }, span, 1, 0)?;
            }
            (MacroKind::Filter, [predicate]) => {
                self.gen_entered(predicate, depth)?;
                self.emit(
                    Instruction::Cond {
                        context: CondContext::Filter,
                    },
                    predicate.span,
                    1,
                    1,
                )?;
                self.emit(Instruction::KeepStep { head: head_at }, span, 1, 0)?;
            }
            // Excluded by `shape_ok`.
            _ => {}
        }
        self.bind(&mut exit, span)?;
        self.depth = level;
        self.emit(Instruction::IterEnd { kind }, span, 0, 1)?;
        self.scopes.pop();
        Ok(())
    }
}

/// What `donmaic eval` does with one expression: parse, compile, verify and
/// run it on the VM with `vars` as roots and the default fuel.
pub fn eval_text(text: &str, vars: &Vars) -> Result<Value, EvalError> {
    let (expr, diagnostics) = donmai_grammar::expr::parse_expr(text);
    if let Some(first) = diagnostics.first() {
        return Err(EvalError::new(error_code::SYNTAX, first.message.clone()).at(first.span));
    }
    run_on_vm(&expr, vars, &mut Fuel::default())
}

/// Compiles, verifies and runs an already parsed `expr` with `vars`; the
/// VM counterpart of [`crate::eval::evaluate`], for tests and tools.
pub fn run_on_vm(expr: &Expr, vars: &Vars, fuel: &mut Fuel) -> Result<Value, EvalError> {
    let mut pool = ConstPool::new();
    let code = compile_untyped(expr, &mut pool, 0).map_err(|e| e.to_eval_error())?;
    let loaded = verify(&code, pool.constants()).map_err(|e| {
        EvalError::new(
            error_code::INVALID_ARGUMENT,
            format!("internal error: the compiled expression failed verification: {e}"),
        )
        .at(expr.span)
    })?;
    loaded.run(vars, fuel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use donmai_runtime::bytecode::disassemble;

    fn listing(text: &str) -> String {
        let (expr, diagnostics) = donmai_grammar::expr::parse_expr(text);
        assert!(diagnostics.is_empty(), "{text}: {diagnostics:?}");
        let mut pool = ConstPool::new();
        let code = compile_expr(&expr, &mut pool, 0).expect("compiles");
        disassemble(&code, pool.constants()).expect("decodes")
    }

    /// The listing shows the steps byte of each instruction: the node
    /// entries it charges (five for the path and the `==` around it).
    #[test]
    fn paths_fuse_and_entries_are_charged_by_the_next_instruction() {
        assert_eq!(
            listing("nodes.x.output.status == 'done'"),
            "    0  [5] LoadRootPath \"nodes\".\"x\".\"output\".\"status\"\n   \
             22  [1] PushConst \"done\"\n   28  [0] Eq\n   30  [0] Return\n"
        );
        assert_eq!(
            listing("a && b"),
            "    0  [1] Try { handler: 17 }\n    6  [1] LoadRoot \"a\"\n   \
             12  [0] Cond { context: And }\n   15  [0] EndTry\n   \
             17  [0] JumpIfCond { decisive: false, target: 44 }\n   \
             24  [0] Try { handler: 41 }\n   30  [1] LoadRoot \"b\"\n   \
             36  [0] Cond { context: And }\n   39  [0] EndTry\n   \
             41  [0] Logic { decisive: false }\n   44  [0] Return\n"
        );
    }

    #[test]
    fn a_macro_loops_back_to_its_head_which_charges_each_element() {
        let text = listing("l.map(x, x > 1, x * 2)");
        assert!(
            text.contains("    9  [1] IterNext { slot: 0, exit: 56 }"),
            "{text}"
        );
        assert!(text.contains("JumpIfFalse { target: 9 }"), "{text}");
        assert!(text.contains("CollectStep { head: 9 }"), "{text}");
    }

    #[test]
    fn fields_and_failing_operations_carry_their_own_spans() {
        let text = "m.a.zz + 1";
        let (expr, _) = donmai_grammar::expr::parse_expr(text);
        let mut pool = ConstPool::new();
        let code = compile_expr(&expr, &mut pool, 7).expect("compiles");
        let loaded = verify(&code, pool.constants()).expect("verifies");
        let spans: Vec<&str> = code
            .spans
            .iter()
            .map(|(_, s)| &text[s.start as usize..s.end as usize])
            .collect();
        assert_eq!(spans, ["m", "a", "zz", "1", "m.a.zz + 1"]);
        assert!(code.spans.iter().all(|(_, s)| s.file == 7));
        let vars = Vars::from([(
            "m".to_owned(),
            Value::from_json(&serde_json::json!({"a": {"b": 1}})),
        )]);
        let error = loaded.run(&vars, &mut Fuel::default()).unwrap_err();
        assert_eq!(error.code, error_code::NO_SUCH_KEY);
        assert_eq!(&text[error.span.start..error.span.end], "zz");
        assert_eq!(loaded.error_source(&error).file, 7);
    }

    #[test]
    fn syntax_errors_and_excess_depth_are_refused() {
        let (expr, _) = donmai_grammar::expr::parse_expr("1 + ");
        let error = compile_expr(&expr, &mut ConstPool::new(), 0).unwrap_err();
        assert_eq!(error.kind, CodegenErrorKind::Syntax);
        assert_eq!(error.to_eval_error().code, error_code::SYNTAX);

        let leaf = || Expr::new(ExprKind::Int(1), Span::default());
        let mut negations = leaf();
        let mut selections = Expr::new(
            ExprKind::Ident(Name {
                text: "x".into(),
                span: Span::default(),
            }),
            Span::default(),
        );
        for _ in 0..MAX_DEPTH + 5 {
            negations = Expr::new(
                ExprKind::Unary {
                    op: UnaryOp::Neg,
                    operand: Box::new(negations),
                },
                Span::default(),
            );
            selections = Expr::new(
                ExprKind::Select {
                    operand: Box::new(selections),
                    field: Name {
                        text: "f".into(),
                        span: Span::default(),
                    },
                    optional: false,
                },
                Span::default(),
            );
        }
        for deep in [negations, selections] {
            let error = compile_expr(&deep, &mut ConstPool::new(), 0).unwrap_err();
            assert_eq!(error.kind, CodegenErrorKind::TooDeep);
            assert_eq!(
                crate::eval::evaluate(&deep, &Vars::new(), &mut Fuel::default())
                    .unwrap_err()
                    .code,
                error_code::TOO_DEEP
            );
        }
    }

    #[test]
    fn the_result_type_comes_from_the_checker() {
        let typed = |text: &str| {
            let (expr, _) = donmai_grammar::expr::parse_expr(text);
            compile_expr(&expr, &mut ConstPool::new(), 0)
                .expect("compiles")
                .result_type
        };
        assert_eq!(typed("1 + 2"), "int");
        assert_eq!(typed("size(x) > 2 ? 'a' : 'b'"), "string");
        assert_eq!(typed("x.y"), "dyn");
        // A problem the checker reports leaves `dyn`.
        assert_eq!(typed("1 + 'a'"), "dyn");
    }

    #[test]
    fn constants_are_shared_across_expressions() {
        let mut pool = ConstPool::new();
        for text in ["a.status == 'done'", "b.status == 'done'"] {
            let (expr, _) = donmai_grammar::expr::parse_expr(text);
            compile_expr(&expr, &mut pool, 0).expect("compiles");
        }
        // a, b, status, done.
        assert_eq!(pool.len(), 4);
    }

    #[test]
    fn unreachable_code_is_not_emitted() {
        assert_eq!(
            listing("nosuch(1, [2, 3])"),
            "    0  [1] Raise unknown_function \"unknown function `nosuch`\"\n"
        );
        // A raise in one branch does not stop the other.
        let text = listing("true ? nosuch() : 2");
        assert!(text.contains("PushConst 2"), "{text}");
        assert!(text.contains("Return"), "{text}");
    }
}
