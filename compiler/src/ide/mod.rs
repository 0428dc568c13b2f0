//! What an editor asks of the compiler about one document, answered from
//! the same parse the checker uses: navigation, rename, outline and
//! semantic tokens (and, from other modules, completion and hover).

pub mod navigate;
pub mod symbols;
pub mod tokens;
