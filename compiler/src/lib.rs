pub mod eval;
pub mod typeck;
pub mod check;
pub mod plugins;
pub mod project;
