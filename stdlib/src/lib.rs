//! donmai's standard library: the type lattice, runtime values and the
//! builtin functions (one table: signatures and pure implementations), and
//! the plugin manifests with the registry that answers verb and event
//! lookups. See `README.md` beside this crate for the manifest format.

pub mod builtins;
pub mod manifest;
pub mod registry;
pub mod schema;
pub mod types;
pub mod value;
pub mod yaml_json;
