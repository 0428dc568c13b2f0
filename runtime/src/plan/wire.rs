//! The byte layout of a `.dplan`, shared by the encoder and the decoder.
//!
//! ```text
//! file      = body hash [signature]
//! body      = magic version:u16 count:u16 table sections
//! magic     = 89 'D' 'P' 'L' 'A' 'N' 0D 0A          (8 bytes)
//! table     = count × (section-id:u8 length:u64)       (count = 6, ids 1..=6 in order)
//! sections  = header constants verbs exprs levels sources   (each exactly `length` bytes)
//! hash      = SHA-256(body)                            (32 bytes: the plan's id)
//! signature = "DSIG" key-id:8 ed25519:64               (over SIGNATURE_DOMAIN ‖ hash)
//! ```
//!
//! Fixed-width integers are little-endian. Inside sections, counts, lengths
//! and indices are unsigned LEB128 varints in their shortest form (the
//! decoder refuses longer ones, so a plan has exactly one encoding); `i64`
//! and the bits of doubles are 8 bytes; a string is its UTF-8 byte length
//! then the bytes; an `Option` is a byte 0 (none) or 1 followed by the value;
//! a list is its count then the items; an enum is a one-byte tag then the
//! variant's fields in declaration order.
//!
//! The magic's first byte has the high bit set and it ends in CR LF, so a
//! transfer that strips the eighth bit or rewrites line ends breaks the
//! magic rather than the contents. The hash sits outside the body so that
//! signing a plan does not change its id.

/// The first eight bytes of every plan.
pub const MAGIC: [u8; 8] = *b"\x89DPLAN\r\n";

/// Magic, format version, section count.
pub const PREAMBLE_LEN: usize = MAGIC.len() + 2 + 2;

/// Section id and its byte length.
pub const TABLE_ENTRY_LEN: usize = 1 + 8;

/// Length of the SHA-256 that follows the body.
pub const HASH_LEN: usize = 32;

/// Marks the optional signature block after the hash.
pub const SIGNATURE_MARKER: [u8; 4] = *b"DSIG";

/// Length of a key id: the first bytes of the SHA-256 of the public key.
pub const KEY_ID_LEN: usize = 8;

/// Marker, key id, Ed25519 signature.
pub const SIGNATURE_BLOCK_LEN: usize = SIGNATURE_MARKER.len() + KEY_ID_LEN + 64;

/// Prefixed to the plan hash before signing, so that a signature made for a
/// plan can never be passed off as one over some other 32 bytes the same
/// key signs (audit-chain entries, session specs).
pub const SIGNATURE_DOMAIN: &[u8] = b"donmai plan signature v1\0";

/// The sections of a plan in their order, with the places outside sections
/// that an error can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// Magic, version and section count.
    Preamble,
    SectionTable,
    Header,
    Constants,
    Verbs,
    Exprs,
    Levels,
    Sources,
    /// The SHA-256 after the body.
    Hash,
    /// The optional signature block after the hash.
    Signature,
}

impl Section {
    /// The body's sections in the order they are written.
    pub const BODY: [Section; 6] = [
        Section::Header,
        Section::Constants,
        Section::Verbs,
        Section::Exprs,
        Section::Levels,
        Section::Sources,
    ];

    /// The id written in the section table.
    pub fn id(self) -> Option<u8> {
        Some(match self {
            Section::Header => 1,
            Section::Constants => 2,
            Section::Verbs => 3,
            Section::Exprs => 4,
            Section::Levels => 5,
            Section::Sources => 6,
            Section::Preamble | Section::SectionTable | Section::Hash | Section::Signature => {
                return None;
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Section::Preamble => "preamble",
            Section::SectionTable => "section table",
            Section::Header => "header",
            Section::Constants => "constants",
            Section::Verbs => "verbs",
            Section::Exprs => "exprs",
            Section::Levels => "levels",
            Section::Sources => "sources",
            Section::Hash => "hash",
            Section::Signature => "signature",
        }
    }
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
