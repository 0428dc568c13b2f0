//! The donmai runtime.
//!
//! It owns the plan format — the contract between the compiler and everything
//! that runs workflows, in the manner of a class-file specification — the
//! verifier that every plan passes before anything executes it, and the
//! expression VM. Behind the default `engine` feature: the durable engine
//! (runs as state machines over a verified plan), the stores, the governor,
//! the audit chain and the verb executors. The compiler depends on this crate
//! without that feature.

#[cfg(feature = "engine")]
pub mod audit;
pub mod keys;
pub mod plan;
#[cfg(feature = "engine")]
pub mod store;
pub mod verify;
