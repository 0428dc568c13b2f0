//! Ed25519 signatures on plans.
//!
//! A signature covers [`SIGNATURE_DOMAIN`] followed by the plan's id (the
//! SHA-256 of its body), and sits in a block after the hash, so signing
//! never changes a plan's id. Checking uses strict verification (no
//! malleable or small-order signatures). Keys, key files and the set of
//! trusted keys are [`crate::keys`]'s.

use ed25519_dalek::{Signer, SigningKey};

use super::decode::{DecodedPlan, decode, read_frame, read_sections};
use super::error::{PlanError, PlanErrorKind, Section};
use super::id::PlanId;
use super::wire::{HASH_LEN, SIGNATURE_BLOCK_LEN, SIGNATURE_DOMAIN, SIGNATURE_MARKER};
use crate::keys::{KeyId, Rejection, TrustedKeys};

/// Signs a `.dplan` with `key`: returns the same body and hash followed by
/// a signature block. A signature already present is replaced. The plan
/// must decode (a damaged or unreadable plan is not signed).
pub fn sign(plan: &[u8], key: &SigningKey) -> Result<Vec<u8>, PlanError> {
    let frame = read_frame(plan)?;
    read_sections(plan, &frame)?;
    let signature = key.sign(&signed_message(&frame.id));
    let key_id = KeyId::of(&key.verifying_key());
    let mut signed = Vec::with_capacity(frame.body.len() + HASH_LEN + SIGNATURE_BLOCK_LEN);
    signed.extend_from_slice(frame.body);
    signed.extend_from_slice(frame.id.as_bytes());
    signed.extend_from_slice(&SIGNATURE_MARKER);
    signed.extend_from_slice(key_id.as_bytes());
    signed.extend_from_slice(&signature.to_bytes());
    Ok(signed)
}

fn signed_message(id: &PlanId) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 32);
    message.extend_from_slice(SIGNATURE_DOMAIN);
    message.extend_from_slice(id.as_bytes());
    message
}

/// Decodes a plan and requires a valid signature by one of `trusted`.
pub fn decode_signed(bytes: &[u8], trusted: &TrustedKeys) -> Result<DecodedPlan, PlanError> {
    let plan = decode(bytes)?;
    plan.check_signature(trusted)?;
    Ok(plan)
}

impl DecodedPlan {
    /// Checks the plan's signature against the trusted keys and returns the
    /// id of the key that signed it.
    pub fn check_signature(&self, trusted: &TrustedKeys) -> Result<KeyId, PlanError> {
        let fail = |kind| {
            Err(PlanError::new(
                Section::Signature,
                self.signature_offset(),
                kind,
            ))
        };
        let Some(signature) = self.signature() else {
            return fail(PlanErrorKind::Unsigned);
        };
        let key_id = signature.key_id;
        match trusted.check(key_id, &signed_message(&self.id()), &signature.signature) {
            Ok(()) => Ok(key_id),
            Err(Rejection::UntrustedKey) => fail(PlanErrorKind::UntrustedKey { key_id }),
            Err(Rejection::BadSignature) => fail(PlanErrorKind::BadSignature { key_id }),
        }
    }
}
