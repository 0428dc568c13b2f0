//! A plan's content address: its id, the SHA-256 of its body. (Signing
//! keys are named by [`crate::keys::KeyId`].)

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The content address of a plan: SHA-256 over its body (everything before
/// the hash trailer). Signing a plan does not change it. Displays as 64
/// lowercase hex digits and parses back from them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanId(pub [u8; 32]);

/// The SHA-256 of a plan body, i.e. [`PlanId`] of the plan whose body it is.
pub fn plan_hash(body: &[u8]) -> PlanId {
    PlanId(Sha256::digest(body).into())
}

impl PlanId {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

/// Reads exactly `N` bytes written as `2 × N` hex digits (either case).
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *byte = (high * 16 + low) as u8;
    }
    Some(out)
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlanId({self})")
    }
}

/// Text that is not a [`PlanId`]: not the right number of hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseIdError {
    pub what: &'static str,
    pub digits: usize,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} is {} hex digits", self.what, self.digits)
    }
}

impl std::error::Error for ParseIdError {}

impl FromStr for PlanId {
    type Err = ParseIdError;

    fn from_str(text: &str) -> Result<PlanId, ParseIdError> {
        parse_hex(text).map(PlanId).ok_or(ParseIdError {
            what: "plan id",
            digits: 64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_as_hex() {
        let id = plan_hash(b"");
        let text = id.to_string();
        assert_eq!(
            text,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(text.parse::<PlanId>(), Ok(id));
        assert_eq!(text.to_uppercase().parse::<PlanId>(), Ok(id));
        assert!("e3b0".parse::<PlanId>().is_err());
        assert!(text.replace('e', "g").parse::<PlanId>().is_err());
        // A multi-byte character must not be split into bogus digit pairs.
        assert!("é".repeat(32).parse::<PlanId>().is_err());
    }
}
