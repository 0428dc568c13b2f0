//! What an editor asks of the compiler about one document. The language
//! server owns no checking logic; it calls these.
//!
//! - `analysis`: one checker run that keeps, beside the diagnostics, the
//!   facts the checker computed (verbs, ports, types, upstream nodes);
//!   `complete` and `hover` answer from it.
//! - `symbols`, `navigate`, `tokens`: the ids of a parsed workflow and
//!   where each is defined and used; definition, references, rename,
//!   outline and semantic tokens answer from that index.

pub mod analysis;
pub mod complete;
pub mod hover;
pub mod navigate;
pub mod symbols;
pub mod tokens;
