//! The donmai compiler: checking workflows, diagnostics and the `donmaic`
//! command.

pub mod check;
pub mod cli;
pub mod driver;
pub mod explain;
pub mod fix;
pub mod project;
pub mod render;
pub mod report;
pub mod suppress;
