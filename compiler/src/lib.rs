//! The donmai compiler: every compile rule (`check`), expression types
//! (`typeck`) and the reference evaluator (`eval`), diagnostics in every
//! output format, and the `donmaic` command line.

pub mod build;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod codegen;
pub mod driver;
pub mod eval;
pub mod explain;
pub mod fix;
pub mod fmt;
pub mod ide;
pub mod migrate;
pub mod plugin_tool;
pub mod plugins;
pub mod project;
pub mod render;
pub mod report;
pub mod suppress;
pub mod typeck;
