//! The plan format: the model ([`model`]) and, beside it, its binary encoding
//! ([`encode()`], [`decode()`]; layout in [`wire`]), content hash ([`PlanId`])
//! and Ed25519 signature ([`sign()`], with keys from [`crate::keys`]).

mod decode;
mod encode;
mod error;
mod id;
pub mod limits;
pub mod model;
mod sign;
pub mod wire;

pub use decode::{DecodedPlan, PlanSignature, decode, plan_id};
pub use encode::{encode, encode_body};
pub use error::{PlanError, PlanErrorKind, Section};
pub use id::{ParseIdError, PlanId, plan_hash};
pub use model::*;
pub use sign::{decode_signed, sign};
