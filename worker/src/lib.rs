//! The `donmai` command: runs workflows on the durable engine in a local
//! store (`run`), delivers signals (`signal`), shows and cancels runs
//! (`runs`, `cancel`) and verifies the audit chain (`audit`). The user guide
//! is `docs/donmai-cli.md`; the run semantics are in `docs/runtime.md`.

pub mod audit;
pub mod cli;
pub mod commands;
pub mod endpoints;
pub mod executor;
pub mod location;
pub mod payload;
pub mod plans;
pub mod printer;
pub mod run;
