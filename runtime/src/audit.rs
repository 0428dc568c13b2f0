//! The audit chain: every run event, signed and hash-linked to the one
//! before, in the same transaction as the state change it records.
//!
//! An entry is `{seq, prevHash, eventDigest, keyId, sig}` with
//! `sig = Ed25519(seq ‖ prevHash ‖ eventDigest)` (seq as 8 bytes big-endian,
//! the hashes as 32 raw bytes) and `eventDigest = SHA-256(event bytes)`.
//! `prevHash` is the SHA-256 of the previous entry's stored encoding (all 32
//! zero bytes for entry 1), so changing, dropping or reordering any entry
//! breaks every later link or signature.
//!
//! Layout in the store (keys in big-endian, so key order is seq order):
//!
//! | table | key | value |
//! |---|---|---|
//! | `Audit` | seq (8 bytes) | the entry, encoded as below |
//! | `AuditEvents` | seq (8 bytes) | the event bytes the entry signs (the engine keeps its own per-run index in `Events`) |
//! | `Meta` | `audit/head` | seq (8) ‖ hash of that entry (32) |
//! | `Meta` | `audit/key/<keyId>` | the 32-byte Ed25519 public key |
//!
//! `keyId` is the signing key's [`KeyId`]: 8 bytes in an entry, its 16
//! lowercase hex digits in the `Meta` key and in exports.
//!
//! Entry encoding, 145 bytes: version byte `2` ‖ seq (8) ‖ prevHash (32) ‖
//! eventDigest (32) ‖ keyId (8) ‖ signature (64). (Version 1, from before
//! key ids had one width, carried a length byte and a text id; it is not
//! read.)
//!
//! What verification can and cannot see: a changed event, a changed entry, a
//! dropped entry, two swapped entries and a forged signature are all found
//! and named by seq. Cutting entries off the tail (with their events and the
//! head record) leaves a shorter chain that is valid in itself; only an
//! anchor kept elsewhere — a [`ChainReport`] (length and head hash)
//! published earlier — reveals it, through [`verify_anchored`]. Likewise
//! whoever holds the signing key can rewrite history from scratch; anchors
//! and pinned public keys are the defence.

use crate::keys::{self, KeyError, KeyId, Rejection, TrustedKeys, hex, unhex};
use crate::store::{ReadTxn, StoreError, StoreResult, Table, WriteTxn};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

pub type Hash = [u8; 32];

/// The file in a store directory that holds the store's audit signing key.
pub const AUDIT_KEY_FILE: &str = "audit-key.pem";

const HEAD_KEY: &[u8] = b"audit/head";
const KEY_PREFIX: &[u8] = b"audit/key/";
const ENTRY_VERSION: u8 = 2;
const ENTRY_LEN: usize = 1 + 8 + 32 + 32 + KeyId::LEN + 64;
const EXPORT_FORMAT: &str = "donmai-audit-export";
/// Version 1 wrote key ids as `ed25519:` and hex; version 2 as a
/// [`KeyId`]'s 16 hex digits.
const EXPORT_VERSION: u32 = 2;

// ---------------------------------------------------------------------------
// Keys.

/// The private key that signs a store's audit entries.
pub struct AuditSigner {
    key: SigningKey,
    public: VerifyingKey,
    key_id: KeyId,
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("AuditSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AuditSigner {
    pub fn new(key: SigningKey) -> AuditSigner {
        let public = key.verifying_key();
        let key_id = KeyId::of(&public);
        AuditSigner {
            key,
            public,
            key_id,
        }
    }

    /// The signing key of the store in `store_dir`: the file
    /// [`AUDIT_KEY_FILE`] there (mode 0600), created on first use.
    ///
    /// The key lives in a file beside the data rather than in a table so
    /// that copies of the data (backups, `mdb_copy`, exports) never carry
    /// it, and an operator can keep it on different storage or replace it
    /// with a key provisioned elsewhere through [`AuditSigner::new`].
    pub fn for_store(store_dir: &Path) -> Result<AuditSigner, KeyError> {
        keys::load_or_create_signing_key(store_dir.join(AUDIT_KEY_FILE)).map(AuditSigner::new)
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.public
    }
}

/// The `Meta` key under which the public key with this id is stored.
fn key_record(id: KeyId) -> Vec<u8> {
    [KEY_PREFIX, id.to_string().as_bytes()].concat()
}

/// The public keys the store recorded for its own entries. Trusting them
/// proves only that the chain is consistent with keys kept in the same place
/// as the chain; compare the ids with keys pinned elsewhere when the store
/// itself is not trusted.
pub fn trusted_keys_from_store(txn: &dyn ReadTxn) -> Result<TrustedKeys, AuditError> {
    let malformed = |detail: String| AuditError::new(None, AuditErrorKind::Malformed(detail));
    let mut trusted = TrustedKeys::new();
    for (key, value) in crate::store::scan_all(txn, Table::Meta, KEY_PREFIX)? {
        let name = String::from_utf8_lossy(&key[KEY_PREFIX.len()..]).into_owned();
        let id: KeyId = name.parse().map_err(|err| {
            malformed(format!(
                "the stored public key record {name:?} is not named by a key id ({err})"
            ))
        })?;
        let public = decode_public_key(&value)
            .ok_or_else(|| malformed(format!("the stored public key {id} is invalid")))?;
        if KeyId::of(&public) != id {
            return Err(malformed(format!(
                "the public key stored as {id} has id {}",
                KeyId::of(&public)
            )));
        }
        trusted.insert(public);
    }
    Ok(trusted)
}

fn decode_public_key(bytes: &[u8]) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&<[u8; 32]>::try_from(bytes).ok()?).ok()
}

// ---------------------------------------------------------------------------
// Entries.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub prev_hash: Hash,
    pub event_digest: Hash,
    pub key_id: KeyId,
    pub signature: [u8; 64],
}

impl AuditEntry {
    /// The bytes the signature covers: seq ‖ prevHash ‖ eventDigest.
    pub fn signed_message(&self) -> [u8; 72] {
        signed_message(self.seq, &self.prev_hash, &self.event_digest)
    }

    /// The stored encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENTRY_LEN);
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.event_digest);
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<AuditEntry, String> {
        let mut rest = bytes;
        let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
            if rest.len() < n {
                return Err(format!(
                    "the entry ends inside its {what} ({} bytes in all)",
                    bytes.len()
                ));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let version = take(1, "version")?[0];
        if version != ENTRY_VERSION {
            return Err(format!(
                "unknown entry encoding version {version} (this donmai reads version {ENTRY_VERSION})"
            ));
        }
        let seq = u64::from_be_bytes(take(8, "seq")?.try_into().expect("8 bytes"));
        let prev_hash: Hash = take(32, "prevHash")?.try_into().expect("32 bytes");
        let event_digest: Hash = take(32, "eventDigest")?.try_into().expect("32 bytes");
        let key_id = KeyId(take(KeyId::LEN, "keyId")?.try_into().expect("8 bytes"));
        let signature: [u8; 64] = take(64, "signature")?.try_into().expect("64 bytes");
        if !rest.is_empty() {
            return Err(format!("{} stray bytes after the signature", rest.len()));
        }
        Ok(AuditEntry {
            seq,
            prev_hash,
            event_digest,
            key_id,
            signature,
        })
    }

    /// The link the next entry carries as its `prevHash`.
    pub fn hash(&self) -> Hash {
        Sha256::digest(self.encode()).into()
    }
}

fn signed_message(seq: u64, prev_hash: &Hash, event_digest: &Hash) -> [u8; 72] {
    let mut message = [0u8; 72];
    message[..8].copy_from_slice(&seq.to_be_bytes());
    message[8..40].copy_from_slice(prev_hash);
    message[40..].copy_from_slice(event_digest);
    message
}

/// The length of a chain and the hash of its last entry (all zeros when
/// empty). Published somewhere the store's writers cannot change, it is the
/// anchor that makes a cut-off tail detectable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainReport {
    pub length: u64,
    pub head_hash: Hash,
}

impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entries, head hash {}",
            self.length,
            hex(&self.head_hash)
        )
    }
}

// ---------------------------------------------------------------------------
// Errors.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditError {
    /// The first bad entry, when the problem belongs to one.
    pub seq: Option<u64>,
    /// The line of an export file, when verifying one.
    pub line: Option<usize>,
    pub kind: AuditErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditErrorKind {
    /// The next entry in order is not the one expected (an entry was
    /// dropped, or entries were reordered).
    Gap {
        expected: u64,
        found: u64,
    },
    /// An entry stored at one seq says it is another (entries were moved).
    OutOfPlace {
        claimed: u64,
    },
    /// A validly signed entry that does not link to its predecessor.
    WrongPrevHash {
        expected: Hash,
        found: Hash,
    },
    /// The signature does not match the entry: the entry was changed.
    BadSignature {
        key_id: KeyId,
    },
    /// Signed by a key the verifier does not trust.
    UnknownKey {
        key_id: KeyId,
    },
    /// The event the entry signs is not stored.
    EventMissing,
    /// The stored event is not the one the entry signed.
    DigestMismatch {
        signed: Hash,
        stored: Hash,
    },
    /// An event is stored with no entry signing it.
    UnsignedEvent,
    /// The head record disagrees with the chain (entries cut off the tail
    /// without updating it, or added behind its back).
    HeadMismatch {
        head: Option<ChainReport>,
        chain: ChainReport,
    },
    /// The chain is shorter than an anchor says it was.
    Truncated {
        anchor_length: u64,
        length: u64,
    },
    /// The entry at the anchor's length is not the one anchored: history
    /// was rewritten.
    AnchorMismatch {
        anchored: Hash,
        found: Hash,
    },
    /// Undecodable data.
    Malformed(String),
    Store(StoreError),
    Io {
        path: PathBuf,
        message: String,
    },
}

impl AuditError {
    fn new(seq: Option<u64>, kind: AuditErrorKind) -> AuditError {
        AuditError {
            seq,
            line: None,
            kind,
        }
    }

    fn at(seq: u64, kind: AuditErrorKind) -> AuditError {
        AuditError::new(Some(seq), kind)
    }
}

impl From<StoreError> for AuditError {
    fn from(err: StoreError) -> AuditError {
        AuditError::new(None, AuditErrorKind::Store(err))
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.seq, self.line) {
            (Some(seq), Some(line)) => write!(f, "audit entry {seq} (line {line}): ")?,
            (Some(seq), None) => write!(f, "audit entry {seq}: ")?,
            (None, Some(line)) => write!(f, "audit export line {line}: ")?,
            (None, None) => f.write_str("audit chain: ")?,
        }
        match &self.kind {
            AuditErrorKind::Gap { expected, found } => write!(
                f,
                "expected entry {expected} next but found entry {found}: \
                 entries are missing or out of order"
            ),
            AuditErrorKind::OutOfPlace { claimed } => write!(
                f,
                "the entry stored here says it is entry {claimed}: entries were moved or reordered"
            ),
            AuditErrorKind::WrongPrevHash { expected, found } => write!(
                f,
                "prevHash {} does not link to the previous entry (hash {})",
                hex(found),
                hex(expected)
            ),
            AuditErrorKind::BadSignature { key_id } => write!(
                f,
                "the signature by key {key_id} does not match the entry: the entry was altered"
            ),
            AuditErrorKind::UnknownKey { key_id } => {
                write!(f, "signed by key {key_id}, which is not a trusted key")
            }
            AuditErrorKind::EventMissing => f.write_str("the event it signs is missing"),
            AuditErrorKind::DigestMismatch { signed, stored } => write!(
                f,
                "the stored event (SHA-256 {}) is not the signed one ({}): the event was altered",
                hex(stored),
                hex(signed)
            ),
            AuditErrorKind::UnsignedEvent => {
                f.write_str("an event is stored here with no audit entry signing it")
            }
            AuditErrorKind::HeadMismatch { head, chain } => match head {
                Some(head) if head.length > chain.length => write!(
                    f,
                    "the head record says the chain has {} entries but only {} remain: \
                     entries were cut off the tail",
                    head.length, chain.length
                ),
                Some(head) => write!(
                    f,
                    "the head record ({head}) disagrees with the chain ({chain})"
                ),
                None => write!(f, "the chain ({chain}) has no head record: it was removed"),
            },
            AuditErrorKind::Truncated {
                anchor_length,
                length,
            } => write!(
                f,
                "the chain has {length} entries but the anchor records {anchor_length}: \
                 entries were cut off the tail"
            ),
            AuditErrorKind::AnchorMismatch { anchored, found } => write!(
                f,
                "the entry hashes to {} but the anchor recorded {}: history was rewritten",
                hex(found),
                hex(anchored)
            ),
            AuditErrorKind::Malformed(detail) => f.write_str(detail),
            AuditErrorKind::Store(err) => write!(f, "{err}"),
            AuditErrorKind::Io { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for AuditError {}

// ---------------------------------------------------------------------------
// Appending.

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn decode_head(bytes: &[u8]) -> Option<ChainReport> {
    if bytes.len() != 40 {
        return None;
    }
    Some(ChainReport {
        length: u64::from_be_bytes(bytes[..8].try_into().ok()?),
        head_hash: bytes[8..].try_into().ok()?,
    })
}

/// The head record: the chain's length and last hash as of this
/// transaction, read in O(1) — what the engine can publish as an anchor.
/// An empty chain has no head record (`None`).
pub fn head(txn: &dyn ReadTxn) -> StoreResult<Option<ChainReport>> {
    match txn.get(Table::Meta, HEAD_KEY)? {
        None => Ok(None),
        Some(bytes) => decode_head(&bytes).map(Some).ok_or_else(|| {
            StoreError::new(format!(
                "the audit head record is damaged ({} bytes instead of 40)",
                bytes.len()
            ))
        }),
    }
}

/// Stores `event_bytes` as the next event and appends its signed entry,
/// inside the caller's transaction: the event, its entry and the state
/// change they record commit together or not at all.
pub fn append(
    txn: &mut dyn WriteTxn,
    signer: &AuditSigner,
    event_bytes: &[u8],
) -> StoreResult<AuditEntry> {
    let (seq, prev_hash) = match head(txn)? {
        Some(head) => (
            head.length
                .checked_add(1)
                .ok_or_else(|| StoreError::new("the audit chain is full (2^64 entries)"))?,
            head.head_hash,
        ),
        None => {
            let mut has_entries = false;
            txn.scan(Table::Audit, b"", &mut |_, _| {
                has_entries = true;
                false
            })?;
            if has_entries {
                return Err(StoreError::new(
                    "the audit chain has entries but no head record; \
                     refusing to start a second chain (run `donmai audit verify`)",
                ));
            }
            (1, [0u8; 32])
        }
    };
    let key = seq_key(seq);
    if txn.get(Table::AuditEvents, &key)?.is_some() {
        return Err(StoreError::new(format!(
            "event {seq} is already stored though the audit head says it is next; \
             refusing to overwrite it (run `donmai audit verify`)"
        )));
    }
    let event_digest: Hash = Sha256::digest(event_bytes).into();
    let signature = signer
        .key
        .sign(&signed_message(seq, &prev_hash, &event_digest))
        .to_bytes();
    let entry = AuditEntry {
        seq,
        prev_hash,
        event_digest,
        key_id: signer.key_id,
        signature,
    };
    let key_record = key_record(signer.key_id);
    if txn.get(Table::Meta, &key_record)?.is_none() {
        txn.put(Table::Meta, &key_record, signer.public.as_bytes())?;
    }
    let encoded = entry.encode();
    let hash: Hash = Sha256::digest(&encoded).into();
    txn.put(Table::AuditEvents, &key, event_bytes)?;
    txn.put(Table::Audit, &key, &encoded)?;
    let mut head_record = [0u8; 40];
    head_record[..8].copy_from_slice(&key);
    head_record[8..].copy_from_slice(&hash);
    txn.put(Table::Meta, HEAD_KEY, &head_record)?;
    Ok(entry)
}

// ---------------------------------------------------------------------------
// Verifying.

/// Walks a chain entry by entry; shared by the store and export verifiers.
struct ChainChecker<'k> {
    keys: &'k TrustedKeys,
    anchor: Option<ChainReport>,
    next: u64,
    prev_hash: Hash,
}

impl<'k> ChainChecker<'k> {
    fn new(keys: &'k TrustedKeys, anchor: Option<&ChainReport>) -> ChainChecker<'k> {
        ChainChecker {
            keys,
            anchor: anchor.copied(),
            next: 1,
            prev_hash: [0; 32],
        }
    }

    /// Checks the entry found at `position` (its key in the store, its own
    /// seq in an export) and its event.
    fn check(
        &mut self,
        position: u64,
        entry: &AuditEntry,
        event: Option<&[u8]>,
    ) -> Result<(), AuditError> {
        if position != self.next {
            return Err(AuditError::at(
                self.next,
                AuditErrorKind::Gap {
                    expected: self.next,
                    found: position,
                },
            ));
        }
        if entry.seq != position {
            return Err(AuditError::at(
                position,
                AuditErrorKind::OutOfPlace { claimed: entry.seq },
            ));
        }
        let signature = Signature::from_bytes(&entry.signature);
        if let Err(rejection) = self
            .keys
            .check(entry.key_id, &entry.signed_message(), &signature)
        {
            let key_id = entry.key_id;
            let kind = match rejection {
                Rejection::UntrustedKey => AuditErrorKind::UnknownKey { key_id },
                Rejection::BadSignature => AuditErrorKind::BadSignature { key_id },
            };
            return Err(AuditError::at(position, kind));
        }
        if entry.prev_hash != self.prev_hash {
            return Err(AuditError::at(
                position,
                AuditErrorKind::WrongPrevHash {
                    expected: self.prev_hash,
                    found: entry.prev_hash,
                },
            ));
        }
        let Some(event) = event else {
            return Err(AuditError::at(position, AuditErrorKind::EventMissing));
        };
        let stored: Hash = Sha256::digest(event).into();
        if stored != entry.event_digest {
            return Err(AuditError::at(
                position,
                AuditErrorKind::DigestMismatch {
                    signed: entry.event_digest,
                    stored,
                },
            ));
        }
        let hash = entry.hash();
        if let Some(anchor) = self.anchor
            && anchor.length == position
            && anchor.head_hash != hash
        {
            return Err(AuditError::at(
                position,
                AuditErrorKind::AnchorMismatch {
                    anchored: anchor.head_hash,
                    found: hash,
                },
            ));
        }
        self.prev_hash = hash;
        self.next += 1;
        Ok(())
    }

    fn report(&self) -> ChainReport {
        ChainReport {
            length: self.next - 1,
            head_hash: self.prev_hash,
        }
    }

    fn finish(self) -> Result<ChainReport, AuditError> {
        let report = self.report();
        if let Some(anchor) = self.anchor
            && anchor.length > report.length
        {
            return Err(AuditError::at(
                report.length + 1,
                AuditErrorKind::Truncated {
                    anchor_length: anchor.length,
                    length: report.length,
                },
            ));
        }
        Ok(report)
    }
}

fn decode_seq_key(key: &[u8]) -> Result<u64, AuditError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| {
            AuditError::new(
                None,
                AuditErrorKind::Malformed(format!(
                    "a key of {} bytes where an 8-byte seq belongs: {}",
                    key.len(),
                    hex(key)
                )),
            )
        })
}

/// Verifies the whole chain in the store: every entry's position, signature
/// (by a trusted key), link and event, that no event is unsigned, and that
/// the head record matches. Names the first bad entry.
pub fn verify(txn: &dyn ReadTxn, keys: &TrustedKeys) -> Result<ChainReport, AuditError> {
    verify_chain(txn, keys, None)
}

/// Like [`verify`], and also checks that the chain extends `anchor`: it is
/// at least `anchor.length` long and its entry there hashes to
/// `anchor.head_hash`. This is what detects entries cut off the tail.
pub fn verify_anchored(
    txn: &dyn ReadTxn,
    keys: &TrustedKeys,
    anchor: &ChainReport,
) -> Result<ChainReport, AuditError> {
    verify_chain(txn, keys, Some(anchor))
}

fn verify_chain(
    txn: &dyn ReadTxn,
    keys: &TrustedKeys,
    anchor: Option<&ChainReport>,
) -> Result<ChainReport, AuditError> {
    let mut checker = ChainChecker::new(keys, anchor);
    let mut failure = None;
    txn.scan(Table::Audit, b"", &mut |key, value| {
        let step = (|| {
            let position = decode_seq_key(key)?;
            let entry = AuditEntry::decode(value)
                .map_err(|detail| AuditError::at(position, AuditErrorKind::Malformed(detail)))?;
            let event = txn.get(Table::AuditEvents, key)?;
            checker.check(position, &entry, event.as_deref())
        })();
        match step {
            Ok(()) => true,
            Err(err) => {
                failure = Some(err);
                false
            }
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    let chain = checker.report();
    txn.scan(Table::AuditEvents, b"", &mut |key, _| {
        let outcome = decode_seq_key(key).and_then(|seq| {
            if (1..=chain.length).contains(&seq) {
                Ok(())
            } else {
                Err(AuditError::at(seq, AuditErrorKind::UnsignedEvent))
            }
        });
        match outcome {
            Ok(()) => true,
            Err(err) => {
                failure = Some(err);
                false
            }
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    let recorded = head(txn)?;
    let consistent = match recorded {
        Some(head) => head == chain,
        None => chain.length == 0,
    };
    if !consistent {
        return Err(AuditError::new(
            None,
            AuditErrorKind::HeadMismatch {
                head: recorded,
                chain,
            },
        ));
    }
    checker.finish()
}

// ---------------------------------------------------------------------------
// Export: JSON Lines. A header with the public keys, one line per entry with
// its event, and a closing line with the length and head hash, so a file cut
// short is recognisable as such.

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportHeader {
    format: String,
    version: u32,
    keys: Vec<ExportKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportKey {
    key_id: String,
    public_key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportEntry {
    seq: u64,
    prev_hash: String,
    event_digest: String,
    key_id: String,
    sig: String,
    /// The event when it is UTF-8 text (run events are JSON)...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    /// ...otherwise its bytes in hex. Neither: the store had no event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_hex: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEnd {
    end: ExportSummary,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportSummary {
    length: u64,
    head_hash: String,
}

/// Writes the chain with its events and the store's public keys as JSON
/// Lines. The export copies what is stored, without judging it (a damaged
/// chain exports so it can be examined); [`verify_export`] judges.
pub fn export(txn: &dyn ReadTxn, out: &mut dyn Write) -> Result<ChainReport, AuditError> {
    let io_error = |err: io::Error| {
        AuditError::new(
            None,
            AuditErrorKind::Io {
                path: PathBuf::from("<export output>"),
                message: err.to_string(),
            },
        )
    };
    let trusted = trusted_keys_from_store(txn)?;
    let header = ExportHeader {
        format: EXPORT_FORMAT.to_string(),
        version: EXPORT_VERSION,
        keys: trusted
            .iter()
            .map(|(id, key)| ExportKey {
                key_id: id.to_string(),
                public_key: hex(key.as_bytes()),
            })
            .collect(),
    };
    write_json_line(out, &header).map_err(io_error)?;
    let mut last = ChainReport {
        length: 0,
        head_hash: [0; 32],
    };
    let mut failure = None;
    txn.scan(Table::Audit, b"", &mut |key, value| {
        let step = (|| {
            let position = decode_seq_key(key)?;
            let entry = AuditEntry::decode(value)
                .map_err(|detail| AuditError::at(position, AuditErrorKind::Malformed(detail)))?;
            let event = txn.get(Table::AuditEvents, key)?;
            let (text, bytes) = match event {
                None => (None, None),
                Some(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => (Some(text), None),
                    Err(err) => (None, Some(hex(err.as_bytes()))),
                },
            };
            let line = ExportEntry {
                seq: entry.seq,
                prev_hash: hex(&entry.prev_hash),
                event_digest: hex(&entry.event_digest),
                key_id: entry.key_id.to_string(),
                sig: hex(&entry.signature),
                event: text,
                event_hex: bytes,
            };
            write_json_line(out, &line).map_err(io_error)?;
            last = ChainReport {
                length: position,
                head_hash: entry.hash(),
            };
            Ok(())
        })();
        match step {
            Ok(()) => true,
            Err(err) => {
                failure = Some(err);
                false
            }
        }
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    let end = ExportEnd {
        end: ExportSummary {
            length: last.length,
            head_hash: hex(&last.head_hash),
        },
    };
    write_json_line(out, &end).map_err(io_error)?;
    out.flush().map_err(io_error)?;
    Ok(last)
}

fn write_json_line(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// An export file being read line by line, with positions for errors.
struct ExportReader {
    path: PathBuf,
    lines: io::Lines<io::BufReader<std::fs::File>>,
    line: usize,
}

impl ExportReader {
    fn open(path: &Path) -> Result<ExportReader, AuditError> {
        let file = std::fs::File::open(path).map_err(|err| {
            AuditError::new(
                None,
                AuditErrorKind::Io {
                    path: path.to_path_buf(),
                    message: keys::io_cause(&err),
                },
            )
        })?;
        Ok(ExportReader {
            path: path.to_path_buf(),
            lines: io::BufReader::new(file).lines(),
            line: 0,
        })
    }

    fn next_line(&mut self) -> Result<Option<String>, AuditError> {
        match self.lines.next() {
            None => Ok(None),
            Some(Ok(text)) => {
                self.line += 1;
                Ok(Some(text))
            }
            Some(Err(err)) => Err(AuditError {
                seq: None,
                line: Some(self.line + 1),
                kind: AuditErrorKind::Io {
                    path: self.path.clone(),
                    message: err.to_string(),
                },
            }),
        }
    }

    fn malformed(&self, seq: Option<u64>, detail: impl Into<String>) -> AuditError {
        AuditError {
            seq,
            line: Some(self.line),
            kind: AuditErrorKind::Malformed(detail.into()),
        }
    }

    fn header(&mut self) -> Result<ExportHeader, AuditError> {
        let Some(text) = self.next_line()? else {
            return Err(AuditError {
                seq: None,
                line: None,
                kind: AuditErrorKind::Malformed(format!(
                    "{} is empty, not an audit export",
                    self.path.display()
                )),
            });
        };
        let header: ExportHeader = serde_json::from_str(&text)
            .map_err(|err| self.malformed(None, format!("not an audit export header: {err}")))?;
        if header.format != EXPORT_FORMAT {
            return Err(self.malformed(
                None,
                format!("format {:?} is not {EXPORT_FORMAT:?}", header.format),
            ));
        }
        if header.version != EXPORT_VERSION {
            return Err(self.malformed(
                None,
                format!(
                    "export version {} is not supported (this donmai reads version {EXPORT_VERSION})",
                    header.version
                ),
            ));
        }
        Ok(header)
    }

    fn header_keys(&self, header: &ExportHeader) -> Result<TrustedKeys, AuditError> {
        let mut keys = TrustedKeys::new();
        for key in &header.keys {
            let public = unhex(&key.public_key)
                .as_deref()
                .and_then(decode_public_key)
                .ok_or_else(|| {
                    self.malformed(None, format!("the public key of {} is invalid", key.key_id))
                })?;
            let listed: KeyId = key.key_id.parse().map_err(|err| {
                self.malformed(
                    None,
                    format!("the keyId {:?} is invalid: {err}", key.key_id),
                )
            })?;
            let id = keys.insert(public);
            if listed != id {
                return Err(self.malformed(
                    None,
                    format!("the public key listed as {listed} has id {id}"),
                ));
            }
        }
        Ok(keys)
    }
}

/// The public keys an export carries. Verifying an export with its own keys
/// proves the file is consistent with itself; pin the key ids you expect to
/// know the file came from your store.
pub fn export_keys(path: &Path) -> Result<TrustedKeys, AuditError> {
    let mut reader = ExportReader::open(path)?;
    let header = reader.header()?;
    reader.header_keys(&header)
}

/// Verifies an export file offline, with the keys the caller trusts.
pub fn verify_export(path: &Path, keys: &TrustedKeys) -> Result<ChainReport, AuditError> {
    verify_export_file(path, keys, None)
}

/// Like [`verify_export`], and also checks that the exported chain extends
/// `anchor` (see [`verify_anchored`]).
pub fn verify_export_anchored(
    path: &Path,
    keys: &TrustedKeys,
    anchor: &ChainReport,
) -> Result<ChainReport, AuditError> {
    verify_export_file(path, keys, Some(anchor))
}

fn verify_export_file(
    path: &Path,
    keys: &TrustedKeys,
    anchor: Option<&ChainReport>,
) -> Result<ChainReport, AuditError> {
    let mut reader = ExportReader::open(path)?;
    let header = reader.header()?;
    // Malformed keys make a malformed file even when they are not the ones
    // trusted.
    reader.header_keys(&header)?;
    let mut checker = ChainChecker::new(keys, anchor);
    let with_line = |err: AuditError, line: usize| AuditError {
        line: Some(line),
        ..err
    };
    loop {
        let Some(text) = reader.next_line()? else {
            return Err(AuditError {
                seq: None,
                line: None,
                kind: AuditErrorKind::Malformed(format!(
                    "{} ends after {} lines without its closing line: the file is truncated",
                    reader.path.display(),
                    reader.line
                )),
            });
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|err| reader.malformed(None, format!("not JSON: {err}")))?;
        if value.get("end").is_some() {
            let end: ExportEnd = serde_json::from_value(value)
                .map_err(|err| reader.malformed(None, format!("bad closing line: {err}")))?;
            let report = checker.report();
            let head_hash = unhex(&end.end.head_hash)
                .and_then(|bytes| Hash::try_from(bytes).ok())
                .ok_or_else(|| {
                    reader.malformed(None, "the closing headHash is not 32 bytes of hex")
                })?;
            if end.end.length != report.length || head_hash != report.head_hash {
                return Err(reader.malformed(
                    None,
                    format!(
                        "the closing line records {} entries with head hash {} but the file \
                         holds {report}",
                        end.end.length, end.end.head_hash
                    ),
                ));
            }
            if reader.next_line()?.is_some() {
                return Err(reader.malformed(None, "lines after the closing line"));
            }
            return checker.finish();
        }
        let line: ExportEntry = serde_json::from_value(value)
            .map_err(|err| reader.malformed(None, format!("not an audit entry: {err}")))?;
        let seq = line.seq;
        let entry =
            decode_export_entry(&line).map_err(|detail| reader.malformed(Some(seq), detail))?;
        let event = match (line.event, line.event_hex) {
            (Some(text), None) => Some(text.into_bytes()),
            (None, Some(hex_text)) => Some(
                unhex(&hex_text)
                    .ok_or_else(|| reader.malformed(Some(seq), "eventHex is not hex"))?,
            ),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(reader.malformed(Some(seq), "both event and eventHex are present"));
            }
        };
        checker
            .check(seq, &entry, event.as_deref())
            .map_err(|err| with_line(err, reader.line))?;
    }
}

fn decode_export_entry(line: &ExportEntry) -> Result<AuditEntry, String> {
    fn fixed<const N: usize>(text: &str, field: &str) -> Result<[u8; N], String> {
        unhex(text)
            .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
            .ok_or_else(|| format!("{field} is not {N} bytes of hex"))
    }
    Ok(AuditEntry {
        seq: line.seq,
        prev_hash: fixed(&line.prev_hash, "prevHash")?,
        event_digest: fixed(&line.event_digest, "eventDigest")?,
        key_id: KeyId(fixed(&line.key_id, "keyId")?),
        signature: fixed(&line.sig, "sig")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_encoding_round_trips_and_rejects_damage() {
        let entry = AuditEntry {
            seq: 7,
            prev_hash: [1; 32],
            event_digest: [2; 32],
            key_id: KeyId([0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]),
            signature: [3; 64],
        };
        let bytes = entry.encode();
        assert_eq!(bytes.len(), ENTRY_LEN);
        assert_eq!(bytes.len(), 145);
        assert_eq!(bytes[0], 2);
        assert_eq!(&bytes[73..81], entry.key_id.as_bytes());
        assert_eq!(&bytes[81..], &[3; 64]);
        assert_eq!(AuditEntry::decode(&bytes), Ok(entry.clone()));
        let err = AuditEntry::decode(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.contains("inside its signature"), "{err}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(AuditEntry::decode(&longer).unwrap_err().contains("stray"));
        let mut other_version = bytes;
        other_version[0] = 9;
        assert!(
            AuditEntry::decode(&other_version)
                .unwrap_err()
                .contains("version 9")
        );
        assert!(AuditEntry::decode(&[]).unwrap_err().contains("version"));
        // The earlier encoding, with a length byte and a text key id.
        let mut version_1 = vec![1];
        version_1.extend_from_slice(&[0; 8 + 32 + 32]);
        version_1.push(24);
        version_1.extend_from_slice(b"ed25519:0011223344556677");
        version_1.extend_from_slice(&[3; 64]);
        let err = AuditEntry::decode(&version_1).unwrap_err();
        assert!(
            err.contains("version 1 (this donmai reads version 2)"),
            "{err}"
        );
    }

    #[test]
    fn signed_message_is_seq_prev_digest() {
        let entry = AuditEntry {
            seq: 0x0102,
            prev_hash: [0xaa; 32],
            event_digest: [0xbb; 32],
            key_id: KeyId([0; KeyId::LEN]),
            signature: [0; 64],
        };
        let message = entry.signed_message();
        assert_eq!(&message[..8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&message[8..40], &[0xaa; 32]);
        assert_eq!(&message[40..], &[0xbb; 32]);
    }
}
