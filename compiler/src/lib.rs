pub mod eval;
pub mod typeck;
