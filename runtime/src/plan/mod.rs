//! The plan format: the model ([`model`]) and, beside it, its binary encoding,
//! content hash and signature.

pub mod model;

pub use model::*;
