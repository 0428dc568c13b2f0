pub mod manifest;
pub mod registry;
pub mod schema;
pub mod types;
pub mod yaml_json;
