//! The plan format: the model ([`model`]) and, beside it, its binary encoding
//! ([`encode()`], [`decode()`]; layout in [`wire`]), content hash ([`PlanId`])
//! and Ed25519 signature ([`sign()`]).

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
pub use id::{KeyId, ParseIdError, PlanId, plan_hash};
pub use model::*;
pub use sign::{
    KeyError, KeyErrorKind, TrustedKeys, decode_signed, load_signing_key, load_verifying_key, sign,
};
