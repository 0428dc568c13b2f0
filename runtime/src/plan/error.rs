//! Why a `.dplan` could not be read or trusted, and where in the file.

use std::fmt;

use super::id::PlanId;
pub use super::wire::Section;
use crate::keys::KeyId;

/// A plan that was refused by the decoder or the signature check. `offset`
/// is the absolute byte offset in the file where the problem starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    pub section: Section,
    pub offset: u64,
    pub kind: PlanErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanErrorKind {
    /// The file does not start with the `.dplan` magic bytes.
    BadMagic,
    /// A plan of a format version this build does not read.
    UnsupportedVersion {
        found: u16,
        supported: u16,
    },
    /// The file ends inside a fixed-width field.
    Truncated {
        what: &'static str,
        needed: u64,
        available: u64,
    },
    /// A length prefix claims more bytes than its section has left.
    LengthPastEnd {
        what: &'static str,
        length: u64,
        available: u64,
    },
    /// A count of items that the bytes left could not possibly hold (each
    /// item takes at least `min_item_bytes`): refused before allocating.
    CountTooLarge {
        what: &'static str,
        count: u64,
        min_item_bytes: u64,
        available: u64,
    },
    /// The section table does not list exactly the sections of this version.
    SectionCount {
        found: u16,
        expected: u16,
    },
    /// The section table lists an unknown id, or a known one out of order.
    UnexpectedSection {
        found: u8,
        expected: Section,
    },
    /// A section is longer than what its contents use.
    UnreadBytes {
        count: u64,
    },
    InvalidUtf8 {
        what: &'static str,
    },
    /// A varint with more bytes than its value needs: every plan has exactly
    /// one encoding, so that its hash identifies it.
    OverlongVarint {
        what: &'static str,
    },
    /// A varint beyond 64 bits.
    VarintOverflow {
        what: &'static str,
    },
    /// A number that does not fit the field it is read into.
    ValueTooLarge {
        what: &'static str,
        value: u64,
        max: u64,
    },
    /// A tag byte (enum variant, option, bool) that names nothing.
    BadTag {
        what: &'static str,
        tag: u8,
    },
    /// Predicates or value templates nested deeper than the format allows.
    TooDeep {
        what: &'static str,
        limit: usize,
    },
    /// The body does not hash to the hash stored after it: the file is
    /// damaged or was modified.
    HashMismatch {
        stored: PlanId,
        computed: PlanId,
    },
    /// Bytes after the hash that are not a signature block.
    TrailingBytes {
        count: u64,
    },
    /// The plan carries no signature, and a signed one was required.
    Unsigned,
    /// The plan is signed by a key that is not among the trusted ones.
    UntrustedKey {
        key_id: KeyId,
    },
    /// The signature does not verify with the trusted key of its key id.
    BadSignature {
        key_id: KeyId,
    },
}

impl PlanError {
    pub fn new(section: Section, offset: u64, kind: PlanErrorKind) -> PlanError {
        PlanError {
            section,
            offset,
            kind,
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid plan: {} section, byte {}: {}",
            self.section, self.offset, self.kind
        )
    }
}

impl fmt::Display for PlanErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanErrorKind::BadMagic => f.write_str(
                "not a donmai plan (the file does not start with the .dplan magic bytes)",
            ),
            PlanErrorKind::UnsupportedVersion { found, supported } => write!(
                f,
                "plan format version {found} is not supported (this build reads version {supported}); rebuild the plan with a matching donmaic"
            ),
            PlanErrorKind::Truncated {
                what,
                needed,
                available,
            } => write!(
                f,
                "the file ends inside {what}: {needed} bytes needed, {available} left"
            ),
            PlanErrorKind::LengthPastEnd {
                what,
                length,
                available,
            } => write!(
                f,
                "{what} claims {length} bytes, but only {available} are left"
            ),
            PlanErrorKind::CountTooLarge {
                what,
                count,
                min_item_bytes,
                available,
            } => write!(
                f,
                "{count} {what} cannot fit in the {available} bytes left (each takes at least {min_item_bytes})"
            ),
            PlanErrorKind::SectionCount { found, expected } => {
                write!(f, "the plan lists {found} sections, expected {expected}")
            }
            PlanErrorKind::UnexpectedSection { found, expected } => write!(
                f,
                "section id {found} where the {expected} section (id {}) belongs",
                expected.id().unwrap_or(0)
            ),
            PlanErrorKind::UnreadBytes { count } => write!(
                f,
                "{count} bytes at the end of the section belong to nothing"
            ),
            PlanErrorKind::InvalidUtf8 { what } => write!(f, "{what} is not valid UTF-8"),
            PlanErrorKind::OverlongVarint { what } => {
                write!(f, "{what} is not in its shortest encoding")
            }
            PlanErrorKind::VarintOverflow { what } => write!(f, "{what} overflows 64 bits"),
            PlanErrorKind::ValueTooLarge { what, value, max } => {
                write!(f, "{what} is {value}, more than the largest allowed, {max}")
            }
            PlanErrorKind::BadTag { what, tag } => write!(f, "{tag} is not a valid tag for {what}"),
            PlanErrorKind::TooDeep { what, limit } => {
                write!(f, "{what} nest deeper than {limit} levels")
            }
            PlanErrorKind::HashMismatch { stored, computed } => write!(
                f,
                "the plan's contents hash to {computed}, not to the stored {stored}: the file is damaged or was modified"
            ),
            PlanErrorKind::TrailingBytes { count } => write!(
                f,
                "{count} bytes after the plan's hash are not a signature block"
            ),
            PlanErrorKind::Unsigned => f.write_str("the plan is not signed"),
            PlanErrorKind::UntrustedKey { key_id } => {
                write!(
                    f,
                    "the plan is signed by key {key_id}, which is not trusted"
                )
            }
            PlanErrorKind::BadSignature { key_id } => write!(
                f,
                "the signature by key {key_id} does not match the plan: it was modified after signing or the signature is forged"
            ),
        }
    }
}

impl std::error::Error for PlanError {}
