//! The expression language: syntax tree, lexer, error-recovering parser and
//! canonical printer.

pub mod ast;
pub mod lexer;
pub mod parser;
mod print;

pub use ast::*;
pub use parser::{MAX_DEPTH, parse_expr};
