//! donmai's grammar: YAML with exact spans, the workflow AST of `workflow/v1`
//! and `workflow/v2`, template strings and the expression language.
//!
//! Nothing here knows what a verb is or what a type is: that is the compiler's.

pub mod ast;
pub mod codes;
pub mod diagnostic;
pub mod expr;
pub mod incremental;
pub mod lower;
pub mod span;
pub mod template;
pub mod yaml;

pub use codes::Code;
pub use diagnostic::{Diagnostic, Severity};
pub use span::{SourceFile, Span};
