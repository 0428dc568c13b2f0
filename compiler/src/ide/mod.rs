//! What an editor asks of the compiler: the analysis of one file and the
//! answers computed from it. The language server owns no checking logic;
//! it calls these.

pub mod analysis;
pub mod complete;
pub mod hover;
