//! The published JSON Schema (`grammar/schema/workflow.schema.json`) and the
//! lowerer agree on every key, so editors using the schema see the format
//! `donmaic` reads.

use std::collections::BTreeSet;

use donmai_grammar::ast::{PredicateOp, StepType, TriggerKind};
use donmai_grammar::lower::{
    BACKOFF_KEYS, GATE_KEYS, METADATA_KEYS, RETRY_KEYS, STEP_KEYS, TOP_KEYS,
};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grammar/schema/workflow.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("schema is JSON")
}

fn keys(object: &Value) -> BTreeSet<String> {
    object["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn schema_keys_match_the_lowerer() {
    let schema = schema();
    let defs = &schema["definitions"];
    assert_eq!(keys(&schema), set(TOP_KEYS));
    assert_eq!(keys(&defs["metadata"]), set(METADATA_KEYS));
    assert_eq!(keys(&defs["step"]), set(STEP_KEYS));
    assert_eq!(keys(&defs["gateConfig"]), set(GATE_KEYS));
    assert_eq!(keys(&defs["retry"]), set(RETRY_KEYS));
    assert_eq!(
        keys(&defs["retry"]["properties"]["backoff"]),
        set(BACKOFF_KEYS)
    );
}

#[test]
fn schema_enums_match_the_lowerer() {
    let schema = schema();
    let defs = &schema["definitions"];
    let step_types: Vec<&str> = StepType::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        strings(&defs["step"]["properties"]["type"]["enum"]),
        set(&step_types)
    );
    let kinds: Vec<&str> = TriggerKind::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        strings(&defs["trigger"]["properties"]["kind"]["enum"]),
        set(&kinds)
    );
    let ops: Vec<&str> = PredicateOp::ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        strings(&defs["predicate"]["oneOf"][3]["properties"]["op"]["enum"]),
        set(&ops)
    );
}
