//! The expression syntax tree.
//!
//! Spans are byte offsets into the text the parser was given; the template
//! layer maps them onto the YAML file with [`Expr::map_spans`].

use crate::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// An identifier or field name with its own span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    List(Vec<Expr>),
    /// `{k: v, ...}`; keys are expressions, as in CEL.
    Map(Vec<(Expr, Expr)>),
    Ident(Name),
    /// `operand.field`, or `operand?.field` when `optional`.
    Select {
        operand: Box<Expr>,
        field: Name,
        optional: bool,
    },
    /// `operand[index]`.
    Index {
        operand: Box<Expr>,
        index: Box<Expr>,
    },
    /// `function(args)` or `target.function(args)`. Macros (`has`, `all`,
    /// `exists`, `exists_one`, `map`, `filter`) are calls too: the checker
    /// and evaluator give them their binding semantics.
    Call {
        target: Option<Box<Expr>>,
        function: Name,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `cond ? then : otherwise`.
    Conditional {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// Stands where the parser recovered from a syntax error (already reported).
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Coalesce,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Coalesce => "??",
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    /// The direct subexpressions, in source order.
    pub fn children(&self) -> Box<dyn Iterator<Item = &Expr> + '_> {
        match &self.kind {
            ExprKind::List(items) => Box::new(items.iter()),
            ExprKind::Map(entries) => Box::new(entries.iter().flat_map(|(k, v)| [k, v])),
            ExprKind::Select { operand, .. } | ExprKind::Unary { operand, .. } => {
                Box::new(std::iter::once(&**operand))
            }
            ExprKind::Index { operand, index } => Box::new([&**operand, &**index].into_iter()),
            ExprKind::Call { target, args, .. } => {
                Box::new(target.as_deref().into_iter().chain(args.iter()))
            }
            ExprKind::Binary { lhs, rhs, .. } => Box::new([&**lhs, &**rhs].into_iter()),
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => Box::new([&**cond, &**then, &**otherwise].into_iter()),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Rewrites every span (this node's and all descendants') through `f`,
    /// which maps an offset in the parsed text to an offset in the file.
    pub fn map_spans(&mut self, f: &impl Fn(usize) -> usize) {
        let map = |span: &mut Span| *span = Span::new(f(span.start), f(span.end));
        map(&mut self.span);
        match &mut self.kind {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Int(_)
            | ExprKind::Double(_)
            | ExprKind::String(_)
            | ExprKind::Error => {}
            ExprKind::Ident(name) => map(&mut name.span),
            ExprKind::List(items) => items.iter_mut().for_each(|e| e.map_spans(f)),
            ExprKind::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
                k.map_spans(f);
                v.map_spans(f);
            }),
            ExprKind::Select { operand, field, .. } => {
                operand.map_spans(f);
                map(&mut field.span);
            }
            ExprKind::Index { operand, index } => {
                operand.map_spans(f);
                index.map_spans(f);
            }
            ExprKind::Call {
                target,
                function,
                args,
            } => {
                if let Some(target) = target {
                    target.map_spans(f);
                }
                map(&mut function.span);
                args.iter_mut().for_each(|e| e.map_spans(f));
            }
            ExprKind::Unary { operand, .. } => operand.map_spans(f),
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.map_spans(f);
                rhs.map_spans(f);
            }
            ExprKind::Conditional {
                cond,
                then,
                otherwise,
            } => {
                cond.map_spans(f);
                then.map_spans(f);
                otherwise.map_spans(f);
            }
        }
    }

    /// The dotted path of a pure selection chain (`nodes.a.output.b` →
    /// `["nodes", "a", "output", "b"]`), or `None` if it is anything else.
    pub fn as_path(&self) -> Option<Vec<&Name>> {
        match &self.kind {
            ExprKind::Ident(name) => Some(vec![name]),
            ExprKind::Select {
                operand,
                field,
                optional: false,
            } => {
                let mut path = operand.as_path()?;
                path.push(field);
                Some(path)
            }
            _ => None,
        }
    }
}
