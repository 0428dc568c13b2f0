//! The expression language: syntax tree, lexer and error-recovering parser.

pub mod ast;

pub use ast::*;
