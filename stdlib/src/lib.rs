pub mod builtins;
pub mod types;
pub mod value;
