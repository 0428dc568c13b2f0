//! The type lattice of the expression language and of verb ports.
//!
//! `null bool int double string timestamp duration list<T> map<string,T>`,
//! object types from JSON Schemas, enums (string subtypes), `T?` and `dyn`.
//! Subtyping is structural: `T <: T?`, `null <: T?`, an enum is a `string`,
//! an object with more fields is a subtype of one with fewer, `dyn` goes both ways.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    Null,
    Bool,
    Int,
    Double,
    String,
    Timestamp,
    Duration,
    List(Box<Type>),
    /// `map<string, T>`.
    Map(Box<Type>),
    Object(Arc<ObjectType>),
    /// A string restricted to these values.
    Enum(Arc<[String]>),
    /// `T?`: `T` or null. Never nested, never `Null?`.
    Optional(Box<Type>),
    /// Unknown statically: accepted everywhere, checked at run time.
    Dyn,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObjectType {
    pub fields: BTreeMap<String, Field>,
    /// Closed objects reject fields they do not declare (verb inputs are closed).
    pub closed: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub ty: Type,
    pub required: bool,
}

impl Type {
    /// `T?`, normalised: `dyn?` is `dyn`, `null?` is `null`, `T??` is `T?`.
    pub fn optional(self) -> Type {
        match self {
            Type::Optional(_) | Type::Null | Type::Dyn => self,
            other => Type::Optional(Box::new(other)),
        }
    }

    /// The type without its `?`.
    pub fn non_null(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    pub fn is_optional(&self) -> bool {
        matches!(self, Type::Optional(_) | Type::Null)
    }

    pub fn list(item: Type) -> Type {
        Type::List(Box::new(item))
    }

    pub fn map(value: Type) -> Type {
        Type::Map(Box::new(value))
    }

    pub fn enumeration<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Type {
        Type::Enum(values.into_iter().map(Into::into).collect())
    }

    /// Whether a value of type `self` may be used where `target` is expected.
    pub fn is_assignable_to(&self, target: &Type) -> bool {
        use Type::*;
        match (self, target) {
            (Dyn, _) | (_, Dyn) => true,
            (Null, Null | Optional(_)) => true,
            (Optional(a), Optional(b)) => a.is_assignable_to(b),
            (Optional(_), _) => false,
            (a, Optional(b)) => a.is_assignable_to(b),
            (Enum(a), Enum(b)) => a.iter().all(|v| b.contains(v)),
            (Enum(_), String) => true,
            (List(a), List(b)) => a.is_assignable_to(b),
            (Map(a), Map(b)) => a.is_assignable_to(b),
            (Object(a), Map(b)) => a.fields.values().all(|f| f.ty.is_assignable_to(b)),
            (Object(a), Object(b)) => {
                b.fields
                    .iter()
                    .all(|(name, want)| match a.fields.get(name) {
                        Some(have) => {
                            have.ty.is_assignable_to(&want.ty) && (have.required || !want.required)
                        }
                        None => !want.required && !b.closed,
                    })
            }
            (a, b) => a == b,
        }
    }

    /// The least type both fit into, used where branches meet (`?:`, `??`,
    /// list literals). Falls back to `dyn` when they share nothing.
    pub fn join(&self, other: &Type) -> Type {
        use Type::*;
        if self.is_assignable_to(other) && !matches!(self, Dyn) {
            return other.clone();
        }
        if other.is_assignable_to(self) && !matches!(other, Dyn) {
            return self.clone();
        }
        match (self, other) {
            (Null, t) | (t, Null) => t.clone().optional(),
            (Optional(a), b) | (b, Optional(a)) => a.join(b.non_null()).optional(),
            (Enum(a), Enum(b)) => {
                let mut values: Vec<std::string::String> = a.to_vec();
                values.extend(b.iter().filter(|v| !a.contains(v)).cloned());
                Enum(values.into())
            }
            (Enum(_), String) | (String, Enum(_)) => String,
            (List(a), List(b)) => Type::list(a.join(b)),
            (Map(a), Map(b)) => Type::map(a.join(b)),
            _ => Dyn,
        }
    }

    /// The field `name` of an object (or map/dyn) type, if it may exist.
    pub fn field(&self, name: &str) -> Option<Type> {
        match self {
            Type::Object(object) => object.fields.get(name).map(|f| {
                if f.required {
                    f.ty.clone()
                } else {
                    f.ty.clone().optional()
                }
            }),
            Type::Map(value) => Some((**value).clone()),
            Type::Dyn => Some(Type::Dyn),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Null => f.write_str("null"),
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::Duration => f.write_str("duration"),
            Type::List(item) => write!(f, "list<{item}>"),
            Type::Map(value) => write!(f, "map<string, {value}>"),
            Type::Object(object) => {
                f.write_str("{")?;
                for (i, (name, field)) in object.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    let mark = if field.required { "" } else { "?" };
                    write!(f, "{name}{mark}: {}", field.ty)?;
                }
                f.write_str("}")
            }
            Type::Enum(values) => {
                f.write_str("enum(")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    f.write_str(value)?;
                }
                f.write_str(")")
            }
            Type::Optional(inner) => write!(f, "{inner}?"),
            Type::Dyn => f.write_str("dyn"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(fields: &[(&str, Type, bool)], closed: bool) -> Type {
        Type::Object(Arc::new(ObjectType {
            fields: fields
                .iter()
                .map(|(n, t, r)| {
                    (
                        n.to_string(),
                        Field {
                            ty: t.clone(),
                            required: *r,
                        },
                    )
                })
                .collect(),
            closed,
        }))
    }

    #[test]
    fn optional_and_enum_subtyping() {
        let size = Type::enumeration(["small", "large"]);
        assert!(size.is_assignable_to(&Type::String));
        assert!(!Type::String.is_assignable_to(&size));
        assert!(Type::Int.is_assignable_to(&Type::Int.optional()));
        assert!(!Type::Int.optional().is_assignable_to(&Type::Int));
        assert!(Type::Null.is_assignable_to(&Type::String.optional()));
        assert!(!Type::Null.is_assignable_to(&Type::String));
        assert!(!Type::Int.is_assignable_to(&Type::Double));
        assert_eq!(Type::Int.optional().optional(), Type::Int.optional());
    }

    #[test]
    fn structural_objects() {
        let wide = object(&[("a", Type::Int, true), ("b", Type::String, true)], false);
        let narrow = object(&[("a", Type::Int, true)], false);
        assert!(wide.is_assignable_to(&narrow));
        assert!(!narrow.is_assignable_to(&wide));
        assert_eq!(narrow.field("a"), Some(Type::Int));
        assert_eq!(narrow.field("z"), None);
        assert_eq!(wide.to_string(), "{a: int, b: string}");
    }

    #[test]
    fn join_finds_least_common_type() {
        assert_eq!(Type::Null.join(&Type::Int), Type::Int.optional());
        assert_eq!(Type::Int.join(&Type::Int.optional()), Type::Int.optional());
        assert_eq!(Type::Int.join(&Type::String), Type::Dyn);
        assert_eq!(
            Type::enumeration(["a"]).join(&Type::enumeration(["b"])),
            Type::enumeration(["a", "b"])
        );
    }
}
