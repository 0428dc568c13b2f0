//! Nesting and size limits of a plan, shared by the decoder (which stops
//! reading past them, so no input can drive it into deep recursion) and the
//! verifier (which applies them to plans built in memory).

/// Predicates nest at most this deep, the root counting as 1 (DESIGN:
/// "depth ≤ 5"); the compiler's checker counts the same way.
pub const MAX_PREDICATE_DEPTH: usize = 5;

/// A predicate has at most this many leaves.
pub const MAX_PREDICATE_LEAVES: usize = 32;

/// Value templates nest at most this deep, a scalar counting as 1. The YAML
/// reader already refuses documents nested deeper, so no real workflow
/// comes near it.
pub const MAX_TEMPLATE_DEPTH: usize = 128;
