//! The JSON Schema 7 subset that verb ports and event payloads are written in,
//! and its reading as a [`Type`].
//!
//! Schemas are kept verbatim for run-time validation; this module derives the
//! static type the checker works with. Keywords fall in four groups (see
//! `stdlib/README.md` for the full table): keywords that shape the type,
//! annotations that are ignored, value constraints that only the run-time
//! validator enforces, and keywords we refuse (`$ref`, `oneOf`, ...) because a
//! type derived while silently ignoring them would be wrong.

use crate::types::{Field, ObjectType, Type};
use crate::yaml_json::pointer_push;
use donmai_grammar::diagnostic::did_you_mean;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Schemas nested deeper than this are reported, never recursed into.
pub const MAX_SCHEMA_DEPTH: usize = 64;

/// How the top of a schema is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaRole {
    /// A verb's `inputSchema`: must describe an object, closed unless it says
    /// `additionalProperties: true`.
    VerbInput,
    /// An `outputSchema` or `payloadSchema`: any schema, JSON Schema defaults.
    Value,
}

/// A problem in a schema, located by the JSON pointer of the offending node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    pub pointer: String,
    /// The problem is the key at `pointer` (e.g. an unsupported keyword)
    /// rather than its value.
    pub at_key: bool,
    pub message: String,
    pub help: Option<String>,
    /// A replacement for the key at `pointer`, when one is obvious.
    pub suggestion: Option<String>,
}

/// Keywords that decide the type.
const SHAPING: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "format",
];
/// Annotations: no effect on the type or on validation.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$comment",
    "$schema",
    "$id",
    "readOnly",
    "writeOnly",
    "deprecated",
];
/// Value constraints: enforced at run time, not reflected in the type.
const CONSTRAINTS: &[&str] = &[
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];
/// Valid JSON Schema 7 that this subset refuses.
const UNSUPPORTED: &[&str] = &[
    "$ref",
    "definitions",
    "$defs",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "propertyNames",
    "dependencies",
    "contains",
    "additionalItems",
    "contentMediaType",
    "contentEncoding",
];

const TYPE_NAMES: &[&str] = &[
    "string", "integer", "number", "boolean", "object", "array", "null",
];

/// Reads `schema` (located at `pointer` in its document) as a type. Always
/// returns a type, with `dyn` standing in for the parts that had errors.
pub fn schema_to_type(schema: &Value, pointer: &str, role: SchemaRole) -> (Type, Vec<SchemaError>) {
    let mut converter = Converter { errors: Vec::new() };
    let ty = converter.convert(schema, pointer, role, 0);
    (ty, converter.errors)
}

/// The JSON base types a schema admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Base {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    Null,
}

impl Base {
    fn parse(name: &str) -> Option<Base> {
        Some(match name {
            "string" => Base::String,
            "integer" => Base::Integer,
            "number" => Base::Number,
            "boolean" => Base::Boolean,
            "object" => Base::Object,
            "array" => Base::Array,
            "null" => Base::Null,
            _ => return None,
        })
    }

    fn of(value: &Value) -> Base {
        match value {
            Value::Null => Base::Null,
            Value::Bool(_) => Base::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Base::Integer,
            Value::Number(_) => Base::Number,
            Value::String(_) => Base::String,
            Value::Array(_) => Base::Array,
            Value::Object(_) => Base::Object,
        }
    }

    /// Whether a value of JSON type `self` satisfies a schema of type `declared`.
    fn fits(self, declared: Base) -> bool {
        self == declared || (self == Base::Integer && declared == Base::Number)
    }
}

struct Converter {
    errors: Vec<SchemaError>,
}

impl Converter {
    fn error(
        &mut self,
        pointer: &str,
        at_key: bool,
        message: impl Into<String>,
    ) -> &mut SchemaError {
        self.errors.push(SchemaError {
            pointer: pointer.to_string(),
            at_key,
            message: message.into(),
            help: None,
            suggestion: None,
        });
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    fn convert(&mut self, schema: &Value, pointer: &str, role: SchemaRole, depth: usize) -> Type {
        if depth > MAX_SCHEMA_DEPTH {
            self.error(
                pointer,
                false,
                format!("schema nests deeper than {MAX_SCHEMA_DEPTH} levels"),
            );
            return Type::Dyn;
        }
        let map = match schema {
            Value::Object(map) => map,
            // JSON Schema's boolean schemas: `true` admits anything.
            Value::Bool(true) if role == SchemaRole::Value => return Type::Dyn,
            Value::Bool(false) => {
                self.error(pointer, false, "the schema `false` admits no value")
                    .help = Some("remove the port, or give it a schema".into());
                return Type::Dyn;
            }
            _ => {
                self.error(pointer, false, "a schema must be a mapping");
                return Type::Dyn;
            }
        };
        self.check_keywords(map, pointer);

        let declared = self.declared_types(map, pointer);
        let listed = self.listed_values(map, pointer, declared.as_deref());

        let ty = if let Some(values) = listed {
            self.type_of_values(map, pointer, &values, declared.as_deref())
        } else if let Some(bases) = &declared {
            let nullable = bases.contains(&Base::Null);
            let non_null: Vec<Base> = bases.iter().copied().filter(|b| *b != Base::Null).collect();
            let ty = match non_null.as_slice() {
                [] => Type::Null,
                [single] => self.convert_base(*single, map, pointer, role, depth),
                // A union of base types has no type of its own; `integer` and
                // `number` together are just `number`.
                [Base::Integer, Base::Number] => Type::Double,
                _ => Type::Dyn,
            };
            if nullable { ty.optional() } else { ty }
        } else if ["properties", "additionalProperties", "required"]
            .iter()
            .any(|k| map.contains_key(*k))
            || role == SchemaRole::VerbInput
        {
            self.convert_base(Base::Object, map, pointer, role, depth)
        } else if map.contains_key("items") {
            self.convert_base(Base::Array, map, pointer, role, depth)
        } else {
            Type::Dyn
        };

        if role == SchemaRole::VerbInput && !matches!(ty, Type::Object(_)) {
            self.error(
                pointer,
                false,
                "an input schema must describe an object (`type: object`)",
            );
            return closed_object(BTreeMap::new());
        }
        ty
    }

    fn check_keywords(&mut self, map: &Map<String, Value>, pointer: &str) {
        for key in map.keys() {
            let known = SHAPING.contains(&key.as_str())
                || ANNOTATIONS.contains(&key.as_str())
                || CONSTRAINTS.contains(&key.as_str())
                || key.starts_with("x-");
            if known {
                continue;
            }
            let key_pointer = pointer_push(pointer, key);
            if UNSUPPORTED.contains(&key.as_str()) {
                self.error(
                    &key_pointer,
                    true,
                    format!("JSON Schema keyword `{key}` is not supported in plugin schemas"),
                )
                .help = Some(
                    "write the schema inline with `type`, `properties`, `items` and `enum`; \
                     use a list `type: [T, \"null\"]` for nullable values"
                        .into(),
                );
                continue;
            }
            let candidates = SHAPING
                .iter()
                .chain(ANNOTATIONS)
                .chain(CONSTRAINTS)
                .copied();
            let suggestion = did_you_mean(key, candidates).map(str::to_string);
            let error = self.error(
                &key_pointer,
                true,
                format!("unknown JSON Schema keyword `{key}`"),
            );
            match suggestion {
                Some(s) => {
                    error.help = Some(format!("did you mean `{s}`?"));
                    error.suggestion = Some(s);
                }
                None => {
                    error.help =
                        Some("extension keywords must start with `x-`; see stdlib/README.md".into())
                }
            }
        }
    }

    /// The bases named by `type`, or `None` when it is absent or invalid.
    fn declared_types(&mut self, map: &Map<String, Value>, pointer: &str) -> Option<Vec<Base>> {
        let value = map.get("type")?;
        let type_pointer = pointer_push(pointer, "type");
        let names: Vec<(String, &Value)> = match value {
            Value::String(_) => vec![(type_pointer.clone(), value)],
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .enumerate()
                .map(|(i, v)| (pointer_push(&type_pointer, &i.to_string()), v))
                .collect(),
            _ => {
                self.error(
                    &type_pointer,
                    false,
                    "`type` must be a type name or a non-empty list of them",
                );
                return None;
            }
        };
        let mut bases = Vec::new();
        for (at, name) in names {
            let Some(text) = name.as_str() else {
                self.error(&at, false, "a type name must be a string");
                return None;
            };
            match Base::parse(text) {
                Some(base) => {
                    if !bases.contains(&base) {
                        bases.push(base);
                    }
                }
                None => {
                    let error =
                        self.error(&at, false, format!("unknown JSON Schema type `{text}`"));
                    error.help = Some(match did_you_mean(text, TYPE_NAMES.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("the types are {}", TYPE_NAMES.join(", ")),
                    });
                    return None;
                }
            }
        }
        bases.sort();
        Some(bases)
    }

    /// The values of `enum` or `const`, checked against the declared types.
    fn listed_values<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        pointer: &str,
        declared: Option<&[Base]>,
    ) -> Option<Vec<&'v Value>> {
        let (keyword, values): (&str, Vec<&Value>) = match (map.get("enum"), map.get("const")) {
            (Some(_), Some(_)) => {
                self.error(
                    &pointer_push(pointer, "const"),
                    true,
                    "`enum` and `const` cannot be used together",
                );
                return None;
            }
            (Some(Value::Array(items)), None) if !items.is_empty() => {
                ("enum", items.iter().collect())
            }
            (Some(_), None) => {
                self.error(
                    &pointer_push(pointer, "enum"),
                    false,
                    "`enum` must be a non-empty list",
                );
                return None;
            }
            (None, Some(value)) => ("const", vec![value]),
            (None, None) => return None,
        };
        let keyword_pointer = pointer_push(pointer, keyword);
        let mut ok = true;
        for (i, value) in values.iter().enumerate() {
            let at = if keyword == "enum" {
                pointer_push(&keyword_pointer, &i.to_string())
            } else {
                keyword_pointer.clone()
            };
            if let Some(bases) = declared {
                let base = Base::of(value);
                if !bases.iter().any(|d| base.fits(*d)) {
                    self.error(&at, false, format!("{value} is not of the schema's `type`"));
                    ok = false;
                }
            }
            if matches!(value, Value::Array(_) | Value::Object(_)) {
                self.error(
                    &at,
                    false,
                    "only scalar values may be listed in `enum` or `const`",
                );
                ok = false;
            }
        }
        ok.then_some(values)
    }

    fn type_of_values(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        values: &[&Value],
        declared: Option<&[Base]>,
    ) -> Type {
        let nullable = values.iter().any(|v| v.is_null());
        let non_null: Vec<&Value> = values.iter().copied().filter(|v| !v.is_null()).collect();
        let ty = if non_null.is_empty() {
            Type::Null
        } else if non_null.iter().all(|v| v.is_string()) {
            if map.contains_key("format") {
                self.check_format(map, pointer);
            }
            let mut names: Vec<String> = Vec::new();
            for value in &non_null {
                if let Some(s) = value.as_str()
                    && !names.iter().any(|n| n == s)
                {
                    names.push(s.to_string());
                }
            }
            Type::Enum(names.into())
        } else if non_null.iter().all(|v| v.is_boolean()) {
            Type::Bool
        } else if non_null.iter().all(|v| v.is_number()) {
            let all_int = non_null.iter().all(|v| v.is_i64() || v.is_u64());
            let declared_number = declared.is_some_and(|b| b.contains(&Base::Number));
            if all_int && !declared_number {
                Type::Int
            } else {
                Type::Double
            }
        } else {
            Type::Dyn
        };
        if nullable { ty.optional() } else { ty }
    }

    /// `format` only changes the type of strings; other formats are run-time
    /// checks. Returns the type a `string` with this format reads as.
    fn check_format(&mut self, map: &Map<String, Value>, pointer: &str) -> Type {
        match map.get("format") {
            None => Type::String,
            Some(Value::String(format)) => match format.as_str() {
                "date-time" => Type::Timestamp,
                "duration" => Type::Duration,
                _ => Type::String,
            },
            Some(_) => {
                self.error(
                    &pointer_push(pointer, "format"),
                    false,
                    "`format` must be a string",
                );
                Type::String
            }
        }
    }

    fn convert_base(
        &mut self,
        base: Base,
        map: &Map<String, Value>,
        pointer: &str,
        role: SchemaRole,
        depth: usize,
    ) -> Type {
        match base {
            Base::String => self.check_format(map, pointer),
            Base::Integer => Type::Int,
            Base::Number => Type::Double,
            Base::Boolean => Type::Bool,
            Base::Null => Type::Null,
            Base::Array => match map.get("items") {
                None | Some(Value::Bool(true)) => Type::list(Type::Dyn),
                Some(Value::Array(_)) => {
                    self.error(
                        &pointer_push(pointer, "items"),
                        false,
                        "tuple schemas (`items` as a list) are not supported",
                    )
                    .help = Some("give `items` one schema that every element satisfies".into());
                    Type::list(Type::Dyn)
                }
                Some(items) => {
                    let item = self.convert(
                        items,
                        &pointer_push(pointer, "items"),
                        SchemaRole::Value,
                        depth + 1,
                    );
                    Type::list(item)
                }
            },
            Base::Object => self.convert_object(map, pointer, role, depth),
        }
    }

    fn convert_object(
        &mut self,
        map: &Map<String, Value>,
        pointer: &str,
        role: SchemaRole,
        depth: usize,
    ) -> Type {
        let mut fields = BTreeMap::new();
        let properties_pointer = pointer_push(pointer, "properties");
        match map.get("properties") {
            None => {}
            Some(Value::Object(properties)) => {
                for (name, schema) in properties {
                    let ty = self.convert(
                        schema,
                        &pointer_push(&properties_pointer, name),
                        SchemaRole::Value,
                        depth + 1,
                    );
                    fields.insert(
                        name.clone(),
                        Field {
                            ty,
                            required: false,
                        },
                    );
                }
            }
            Some(_) => {
                self.error(
                    &properties_pointer,
                    false,
                    "`properties` must be a mapping from names to schemas",
                );
            }
        }

        let required_pointer = pointer_push(pointer, "required");
        match map.get("required") {
            None => {}
            Some(Value::Array(names)) => {
                for (i, name) in names.iter().enumerate() {
                    let at = pointer_push(&required_pointer, &i.to_string());
                    let Some(name) = name.as_str() else {
                        self.error(&at, false, "`required` lists property names (strings)");
                        continue;
                    };
                    match fields.get_mut(name) {
                        Some(field) => field.required = true,
                        None => {
                            let declared: Vec<&str> = fields.keys().map(String::as_str).collect();
                            let suggestion =
                                did_you_mean(name, declared.iter().copied()).map(str::to_string);
                            let error = self.error(
                                &at,
                                false,
                                format!("`{name}` is required but not declared in `properties`"),
                            );
                            if let Some(s) = suggestion {
                                error.help = Some(format!("did you mean `{s}`?"));
                            }
                        }
                    }
                }
            }
            Some(_) => {
                self.error(
                    &required_pointer,
                    false,
                    "`required` must be a list of property names",
                );
            }
        }

        let additional_pointer = pointer_push(pointer, "additionalProperties");
        let additional = map.get("additionalProperties");
        match (role, additional) {
            (SchemaRole::VerbInput, None | Some(Value::Bool(false))) => closed_object(fields),
            (SchemaRole::VerbInput, Some(Value::Bool(true))) => open_object(fields),
            (SchemaRole::VerbInput, Some(_)) => {
                self.error(
                    &additional_pointer,
                    false,
                    "an input schema's `additionalProperties` must be `true` or `false`",
                )
                .help = Some("verb inputs are named ports; declare each in `properties`".into());
                closed_object(fields)
            }
            (SchemaRole::Value, Some(Value::Bool(false))) => closed_object(fields),
            // An object that names no properties is a map of whatever it admits.
            (SchemaRole::Value, None | Some(Value::Bool(true))) if fields.is_empty() => {
                Type::map(Type::Dyn)
            }
            (SchemaRole::Value, None | Some(Value::Bool(true))) => open_object(fields),
            (SchemaRole::Value, Some(schema @ Value::Object(_))) => {
                let value_type =
                    self.convert(schema, &additional_pointer, SchemaRole::Value, depth + 1);
                if fields.is_empty() {
                    Type::map(value_type)
                } else {
                    // Declared properties are typed; the others are only
                    // checked at run time, as in any open object.
                    open_object(fields)
                }
            }
            (SchemaRole::Value, Some(_)) => {
                self.error(
                    &additional_pointer,
                    false,
                    "`additionalProperties` must be a boolean or a schema",
                );
                open_object(fields)
            }
        }
    }
}

fn closed_object(fields: BTreeMap<String, Field>) -> Type {
    Type::Object(Arc::new(ObjectType {
        fields,
        closed: true,
    }))
}

fn open_object(fields: BTreeMap<String, Field>) -> Type {
    Type::Object(Arc::new(ObjectType {
        fields,
        closed: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value_type(schema: Value) -> Type {
        let (ty, errors) = schema_to_type(&schema, "", SchemaRole::Value);
        assert!(errors.is_empty(), "{errors:?}");
        ty
    }

    fn errors(schema: Value, role: SchemaRole) -> Vec<SchemaError> {
        schema_to_type(&schema, "/s", role).1
    }

    #[test]
    fn scalars_and_formats() {
        assert_eq!(value_type(json!({"type": "string"})), Type::String);
        assert_eq!(value_type(json!({"type": "integer"})), Type::Int);
        assert_eq!(value_type(json!({"type": "number"})), Type::Double);
        assert_eq!(value_type(json!({"type": "boolean"})), Type::Bool);
        assert_eq!(value_type(json!({"type": "null"})), Type::Null);
        assert_eq!(
            value_type(json!({"type": "string", "format": "date-time"})),
            Type::Timestamp
        );
        assert_eq!(
            value_type(json!({"type": "string", "format": "duration"})),
            Type::Duration
        );
        assert_eq!(
            value_type(json!({"type": "string", "format": "uri"})),
            Type::String
        );
    }

    #[test]
    fn nothing_said_is_dyn() {
        assert_eq!(value_type(json!({})), Type::Dyn);
        assert_eq!(value_type(json!(true)), Type::Dyn);
        assert_eq!(value_type(json!({"description": "anything"})), Type::Dyn);
        assert_eq!(
            value_type(json!({"type": ["string", "integer"]})),
            Type::Dyn
        );
    }

    #[test]
    fn nullable_lists() {
        assert_eq!(
            value_type(json!({"type": ["string", "null"]})),
            Type::String.optional()
        );
        assert_eq!(
            value_type(json!({"type": ["null", "integer"]})),
            Type::Int.optional()
        );
        assert_eq!(
            value_type(json!({"type": ["integer", "number"]})),
            Type::Double
        );
        assert_eq!(
            value_type(json!({"enum": ["a", null]})),
            Type::enumeration(["a"]).optional()
        );
    }

    #[test]
    fn enums_and_consts() {
        assert_eq!(
            value_type(json!({"type": "string", "enum": ["small", "medium", "large"]})),
            Type::enumeration(["small", "medium", "large"])
        );
        assert_eq!(
            value_type(json!({"enum": ["x", "x", "y"]})),
            Type::enumeration(["x", "y"])
        );
        assert_eq!(
            value_type(json!({"const": "closed"})),
            Type::enumeration(["closed"])
        );
        assert_eq!(value_type(json!({"enum": [1, 2]})), Type::Int);
        assert_eq!(
            value_type(json!({"type": "number", "enum": [1, 2]})),
            Type::Double
        );
        assert_eq!(value_type(json!({"enum": [1, 2.5]})), Type::Double);
        assert_eq!(value_type(json!({"enum": [true]})), Type::Bool);
        assert_eq!(value_type(json!({"enum": ["a", 1]})), Type::Dyn);
    }

    #[test]
    fn objects_maps_and_lists() {
        let ty = value_type(json!({
            "type": "object",
            "required": ["id", "note"],
            "properties": {
                "id": {"type": "string"},
                "note": {"type": ["string", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "inner": {"properties": {"n": {"type": "integer"}}, "required": ["n"]}
            }
        }));
        assert_eq!(
            ty.to_string(),
            "{id: string, inner?: {n: int}, note: string?, tags?: list<string>}"
        );
        let Type::Object(object) = &ty else {
            panic!("{ty}")
        };
        assert!(!object.closed);
        assert_eq!(ty.field("note"), Some(Type::String.optional()));
        assert_eq!(ty.field("tags"), Some(Type::list(Type::String).optional()));

        assert_eq!(value_type(json!({"type": "object"})), Type::map(Type::Dyn));
        assert_eq!(
            value_type(json!({"type": "object", "additionalProperties": {"type": "integer"}})),
            Type::map(Type::Int)
        );
        assert_eq!(value_type(json!({"type": "array"})), Type::list(Type::Dyn));
        assert_eq!(
            value_type(json!({"items": {"type": "boolean"}})),
            Type::list(Type::Bool)
        );
        let Type::Object(closed) =
            value_type(json!({"type": "object", "additionalProperties": false}))
        else {
            panic!()
        };
        assert!(closed.closed && closed.fields.is_empty());
    }

    #[test]
    fn inputs_are_closed_by_default() {
        let schema = json!({"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}});
        let (ty, errs) = schema_to_type(&schema, "", SchemaRole::VerbInput);
        assert!(errs.is_empty());
        let Type::Object(object) = &ty else { panic!() };
        assert!(object.closed);
        assert!(object.fields["a"].required && !object.fields["b"].required);

        let open = json!({"type": "object", "additionalProperties": true});
        let (Type::Object(object), _) = schema_to_type(&open, "", SchemaRole::VerbInput) else {
            panic!()
        };
        assert!(!object.closed);

        // No properties at all still reads as an empty closed object, not a map.
        let (Type::Object(object), errs) = schema_to_type(&json!({}), "", SchemaRole::VerbInput)
        else {
            panic!()
        };
        assert!(errs.is_empty() && object.closed && object.fields.is_empty());
    }

    #[test]
    fn unsupported_keywords_are_positioned_errors() {
        let errs = errors(
            json!({"properties": {"a": {"oneOf": [{"type": "string"}]}}}),
            SchemaRole::Value,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pointer, "/s/properties/a/oneOf");
        assert!(errs[0].at_key);
        assert!(errs[0].message.contains("oneOf"));

        let errs = errors(json!({"$ref": "#/definitions/x"}), SchemaRole::Value);
        assert_eq!(errs[0].pointer, "/s/$ref");
    }

    #[test]
    fn typos_get_suggestions() {
        let errs = errors(
            json!({"type": "object", "propertes": {}}),
            SchemaRole::Value,
        );
        assert_eq!(errs[0].suggestion.as_deref(), Some("properties"));
        let errs = errors(json!({"type": "int"}), SchemaRole::Value);
        assert_eq!(errs[0].pointer, "/s/type");
        assert!(
            errs[0].help.as_deref().unwrap_or("").contains("integer"),
            "{errs:?}"
        );
        let errs = errors(
            json!({"required": ["nme"], "properties": {"name": {}}}),
            SchemaRole::Value,
        );
        assert_eq!(errs[0].pointer, "/s/required/0");
        assert!(errs[0].help.as_deref().unwrap_or("").contains("name"));
        // Extension keywords and annotations pass.
        assert!(
            errors(
                json!({"x-ui": 1, "title": "t", "minimum": 0}),
                SchemaRole::Value
            )
            .is_empty()
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(
            errors(json!({"type": "string", "enum": [1]}), SchemaRole::Value)[0].pointer,
            "/s/enum/0"
        );
        assert_eq!(
            errors(json!({"enum": []}), SchemaRole::Value)[0].pointer,
            "/s/enum"
        );
        assert_eq!(
            errors(json!({"items": [{}]}), SchemaRole::Value)[0].pointer,
            "/s/items"
        );
        assert_eq!(
            errors(json!({"type": []}), SchemaRole::Value)[0].pointer,
            "/s/type"
        );
        assert_eq!(errors(json!("string"), SchemaRole::Value)[0].pointer, "/s");
        assert_eq!(
            errors(json!({"type": "string"}), SchemaRole::VerbInput)[0].pointer,
            "/s"
        );
        assert_eq!(
            errors(
                json!({"additionalProperties": {"type": "string"}}),
                SchemaRole::VerbInput
            )[0]
            .pointer,
            "/s/additionalProperties"
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut schema = json!({"type": "string"});
        for _ in 0..(MAX_SCHEMA_DEPTH + 10) {
            schema = json!({"type": "array", "items": schema});
        }
        let (_, errs) = schema_to_type(&schema, "", SchemaRole::Value);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.contains("deeper"));
    }
}
