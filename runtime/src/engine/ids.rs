//! Run ids and lease owner ids.
//!
//! A run id is 26 characters of Crockford base32 (the ULID layout): 48 bits
//! of the clock's milliseconds, then 80 random bits from the operating
//! system. Ids sort by creation time, so the store lists runs in the order
//! they started, and two processes never mint the same id.

use std::fmt;
use std::sync::Arc;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(Arc<str>);

impl RunId {
    /// A fresh id at `now_ms`.
    pub fn generate(now_ms: u64) -> Result<RunId, getrandom::Error> {
        let mut random = [0u8; 10];
        getrandom::fill(&mut random)?;
        let mut bits: u128 = u128::from(now_ms & 0xFFFF_FFFF_FFFF) << 80;
        for (i, byte) in random.iter().enumerate() {
            bits |= u128::from(*byte) << (8 * (9 - i));
        }
        let mut text = [0u8; 26];
        for (i, slot) in text.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *slot = CROCKFORD[((bits >> shift) & 31) as usize];
        }
        Ok(RunId(String::from_utf8_lossy(&text).into()))
    }

    /// An id read back from the store or given by a user. Ids are opaque
    /// to the engine; this only refuses what cannot be a key.
    pub fn parse(text: &str) -> Option<RunId> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        valid.then(|| RunId(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({})", self.0)
    }
}

/// A random id for one engine instance, the owner of its leases.
pub fn owner_id() -> Result<String, getrandom::Error> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random)?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_differ() {
        let a = RunId::generate(1_000).unwrap();
        let b = RunId::generate(1_000).unwrap();
        let later = RunId::generate(2_000).unwrap();
        assert_eq!(a.as_str().len(), 26);
        assert_ne!(a, b);
        assert!(a < later && b < later);
        assert!(a.as_str().starts_with("00000000Z8"));
        assert_eq!(RunId::parse(a.as_str()), Some(a));
        assert_eq!(RunId::parse("a/b"), None);
        assert_eq!(RunId::parse(""), None);
    }
}
