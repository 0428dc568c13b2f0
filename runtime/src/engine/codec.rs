//! Values as stored JSON, without loss: a run resumed from the store must
//! see exactly the values an uninterrupted run saw, so a timestamp must not
//! come back as a string nor a double `2.0` as the int `2`.
//!
//! Plain JSON where JSON can say it (null, bool, int, finite double — always
//! written with a fraction or exponent, so it reads back as a double —,
//! string, list, map with string keys). Everything else is a one-key object
//! whose key starts with `$`: `{"$timestamp": "…"}`, `{"$duration": "1.5s"}`,
//! `{"$double": "NaN"}`, and `{"$map": [[key, value], …]}` for maps with
//! non-string keys or with a key starting with `$`. A plain map never has a
//! `$` key, so the tagged forms cannot be confused with data.

use donmai_stdlib::value::{MapEntries, MapKey, Value, format_duration, format_timestamp};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

const TIMESTAMP: &str = "$timestamp";
const DURATION: &str = "$duration";
const DOUBLE: &str = "$double";
const MAP: &str = "$map";

/// Serializes a value in the lossless form without building a JSON tree.
pub struct Lossless<'a>(pub &'a Value);

impl Serialize for Lossless<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Double(d) if d.is_finite() => serializer.serialize_f64(*d),
            Value::Double(d) => {
                let name = if d.is_nan() {
                    "NaN"
                } else if *d > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                };
                tagged(serializer, DOUBLE, &name)
            }
            Value::String(s) => serializer.serialize_str(s),
            Value::Timestamp(t) => tagged(serializer, TIMESTAMP, &format_timestamp(*t)),
            Value::Duration(d) => tagged(serializer, DURATION, &format_duration(*d)),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(&Lossless(item))?;
                }
                seq.end()
            }
            Value::Map(entries) if plain_keys(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries.iter() {
                    if let MapKey::String(key) = key {
                        map.serialize_entry(key.as_ref(), &Lossless(value))?;
                    }
                }
                map.end()
            }
            Value::Map(entries) => tagged(serializer, MAP, &TaggedEntries(entries)),
        }
    }
}

fn plain_keys(entries: &MapEntries) -> bool {
    entries
        .keys()
        .all(|key| matches!(key, MapKey::String(s) if !s.starts_with('$')))
}

fn tagged<S: Serializer, T: Serialize + ?Sized>(
    serializer: S,
    tag: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(tag, value)?;
    map.end()
}

struct TaggedEntries<'a>(&'a MapEntries);

impl Serialize for TaggedEntries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (key, value) in self.0.iter() {
            seq.serialize_element(&(Lossless(&key.to_value()), Lossless(value)))?;
        }
        seq.end()
    }
}

/// The JSON tree of a value in the lossless form.
#[cfg(test)]
pub fn encode(value: &Value) -> serde_json::Value {
    serde_json::to_value(Lossless(value)).unwrap_or(serde_json::Value::Null)
}

/// Reads the lossless form back. A malformed tagged object is an error
/// (the store was written by something else, or damaged).
pub fn decode(json: &serde_json::Value) -> Result<Value, String> {
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if n.is_f64() {
                Value::Double(n.as_f64().unwrap_or(f64::NAN))
            } else if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else {
                return Err(format!("integer {n} is outside the int range"));
            }
        }
        serde_json::Value::String(s) => Value::string(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::list(items.iter().map(decode).collect::<Result<Vec<_>, _>>()?)
        }
        serde_json::Value::Object(entries) => {
            if let (1, Some((tag, inner))) = (entries.len(), entries.iter().next())
                && tag.starts_with('$')
            {
                return decode_tagged(tag, inner);
            }
            let mut map = MapEntries::new();
            for (key, value) in entries {
                if key.starts_with('$') {
                    return Err(format!("unexpected tagged key `{key}` in a map"));
                }
                map.insert(MapKey::String(key.as_str().into()), decode(value)?);
            }
            Value::map(map)
        }
    })
}

fn decode_tagged(tag: &str, inner: &serde_json::Value) -> Result<Value, String> {
    let text = || {
        inner
            .as_str()
            .ok_or_else(|| format!("`{tag}` must hold a string"))
    };
    match tag {
        TIMESTAMP => Value::parse_timestamp(text()?).map_err(|e| e.message),
        DURATION => Value::parse_duration(text()?).map_err(|e| e.message),
        DOUBLE => match text()? {
            "NaN" => Ok(Value::Double(f64::NAN)),
            "Infinity" => Ok(Value::Double(f64::INFINITY)),
            "-Infinity" => Ok(Value::Double(f64::NEG_INFINITY)),
            other => Err(format!("`{other}` is not a special double")),
        },
        MAP => {
            let pairs = inner.as_array().ok_or("`$map` must hold a list")?;
            let mut map = MapEntries::new();
            for pair in pairs {
                let [key, value] = pair.as_array().map(Vec::as_slice).unwrap_or_default() else {
                    return Err("a `$map` entry must be a [key, value] pair".into());
                };
                let key = MapKey::from_value(&decode(key)?)
                    .ok_or("a `$map` key must be a string, int or bool")?;
                map.insert(key, decode(value)?);
            }
            Ok(Value::map(map))
        }
        other => Err(format!("unknown tag `{other}`")),
    }
}

/// serde helpers for record fields holding values.
pub mod field {
    use super::*;
    use serde::{Deserialize, Deserializer};

    pub fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
        Lossless(value).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        decode(&json).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            value: &Option<Value>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => serializer.serialize_some(&Lossless(value)),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Value>, D::Error> {
            let json = Option::<serde_json::Value>::deserialize(deserializer)?;
            json.map(|json| decode(&json).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> Value {
        let text = serde_json::to_string(&Lossless(value)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(encode(value), json);
        decode(&json).unwrap()
    }

    fn same(a: &Value, b: &Value) -> bool {
        // Structural identity: the type must survive, not just CEL equality.
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn every_kind_survives() {
        let mut odd_keys = MapEntries::new();
        odd_keys.insert(MapKey::Int(3), Value::Bool(true));
        odd_keys.insert(MapKey::Bool(false), Value::Null);
        odd_keys.insert(MapKey::String("$ref".into()), Value::Int(1));
        let mut plain = MapEntries::new();
        plain.insert(MapKey::String("a".into()), Value::Double(2.0));
        plain.insert(
            MapKey::String("b".into()),
            Value::Map(odd_keys.clone().into()),
        );
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Double(2.0),
            Value::Double(-0.5e300),
            Value::Double(f64::INFINITY),
            Value::string("$timestamp"),
            Value::parse_timestamp("2026-03-04T05:06:07.123456789Z").unwrap(),
            Value::parse_duration("-1.5s").unwrap(),
            Value::list(vec![Value::Int(1), Value::Double(1.0)]),
            Value::map(odd_keys),
            Value::map(plain),
        ];
        for value in &values {
            let back = round_trip(value);
            assert!(same(value, &back), "{value:?} came back as {back:?}");
        }
        let nan = round_trip(&Value::Double(f64::NAN));
        assert!(matches!(nan, Value::Double(d) if d.is_nan()));
    }

    #[test]
    fn malformed_tags_are_errors() {
        for text in [
            r#"{"$timestamp": 3}"#,
            r#"{"$map": [[1]]}"#,
            r#"{"$map": [[[1], 2]]}"#,
            r#"{"$double": "half"}"#,
            r#"{"$what": 1}"#,
            r#"{"a": 1, "$b": 2}"#,
            "18446744073709551615",
        ] {
            let json: serde_json::Value = serde_json::from_str(text).unwrap();
            assert!(decode(&json).is_err(), "{text} decoded");
        }
    }
}
