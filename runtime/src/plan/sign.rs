//! Ed25519 signatures on plans, the set of keys a runtime trusts, and key
//! files.
//!
//! A signature covers [`SIGNATURE_DOMAIN`] followed by the plan's id (the
//! SHA-256 of its body), and sits in a block after the hash, so signing
//! never changes a plan's id. Checking uses strict verification (no
//! malleable or small-order signatures).
//!
//! Key files are PKCS#8, PEM or DER, as OpenSSL writes them:
//!
//! ```sh
//! openssl genpkey -algorithm ed25519 -out plan-signing.pem       # private key
//! openssl pkey -in plan-signing.pem -pubout -out plan-signing.pub.pem  # public key
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::decode::{DecodedPlan, decode, read_frame, read_sections};
use super::error::{PlanError, PlanErrorKind, Section};
use super::id::{KeyId, PlanId};
use super::wire::{HASH_LEN, SIGNATURE_BLOCK_LEN, SIGNATURE_DOMAIN, SIGNATURE_MARKER};

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
        let message = signed_message(&self.id());
        // Two keys may share an id prefix; any of them may have signed.
        let mut candidates = trusted
            .keys
            .iter()
            .filter(|(id, _)| *id == key_id)
            .peekable();
        if candidates.peek().is_none() {
            return fail(PlanErrorKind::UntrustedKey { key_id });
        }
        if candidates.any(|(_, key)| key.verify_strict(&message, &signature.signature).is_ok()) {
            Ok(key_id)
        } else {
            fail(PlanErrorKind::BadSignature { key_id })
        }
    }
}

/// The public keys whose plan signatures a runtime accepts.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl TrustedKeys {
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a key (once) and returns its id.
    pub fn insert(&mut self, key: VerifyingKey) -> KeyId {
        let id = KeyId::of(&key);
        if !self.keys.iter().any(|(_, known)| *known == key) {
            self.keys.push((id, key));
        }
        id
    }

    /// Reads each public key file with [`load_verifying_key`].
    pub fn load<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<TrustedKeys, KeyError> {
        let mut trusted = TrustedKeys::new();
        for path in paths {
            trusted.insert(load_verifying_key(path)?);
        }
        Ok(trusted)
    }

    pub fn contains(&self, id: KeyId) -> bool {
        self.keys.iter().any(|(known, _)| *known == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl FromIterator<VerifyingKey> for TrustedKeys {
    fn from_iter<I: IntoIterator<Item = VerifyingKey>>(keys: I) -> TrustedKeys {
        let mut trusted = TrustedKeys::new();
        for key in keys {
            trusted.insert(key);
        }
        trusted
    }
}

/// A key file that could not be used.
#[derive(Debug)]
pub struct KeyError {
    pub path: PathBuf,
    pub kind: KeyErrorKind,
}

#[derive(Debug)]
pub enum KeyErrorKind {
    Read(io::Error),
    /// A PEM file holding something else than the key asked for (a public
    /// key where a private one is needed, a certificate, ...).
    WrongPem {
        found: String,
        expected: &'static str,
    },
    /// A password-protected private key.
    Encrypted,
    /// An OpenSSH private key (`ssh-keygen`'s own format).
    OpenSsh,
    /// Not a PKCS#8 Ed25519 key: another algorithm, or malformed.
    Invalid(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            KeyErrorKind::Read(error) => write!(f, "cannot read key file {path}: {error}"),
            KeyErrorKind::WrongPem { found, expected } => {
                write!(f, "{path} holds a PEM `{found}`, not a `{expected}`")?;
                match (found.as_str(), *expected) {
                    ("PUBLIC KEY", "PRIVATE KEY") => {
                        f.write_str(": signing needs the private key")
                    }
                    ("PRIVATE KEY", "PUBLIC KEY") => f.write_str(
                        ": trust the public key instead (`openssl pkey -in <key> -pubout`), and keep the private key with whoever signs",
                    ),
                    _ => Ok(()),
                }
            }
            KeyErrorKind::Encrypted => write!(
                f,
                "{path} is an encrypted private key: decrypt it first (`openssl pkey -in {path} -out <plain.pem>`)"
            ),
            KeyErrorKind::OpenSsh => write!(
                f,
                "{path} is an OpenSSH private key: convert it to PKCS#8 (`ssh-keygen -p -m PKCS8 -f {path}`) or make one with `openssl genpkey -algorithm ed25519`"
            ),
            KeyErrorKind::Invalid(reason) => write!(
                f,
                "{path} is not a PKCS#8 Ed25519 key ({reason}); make one with `openssl genpkey -algorithm ed25519`"
            ),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            KeyErrorKind::Read(error) => Some(error),
            _ => None,
        }
    }
}

/// The label of the first PEM block (`PRIVATE KEY` in
/// `-----BEGIN PRIVATE KEY-----`), if the text is PEM at all.
fn pem_label(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text.trim_start_matches('\u{feff}').trim_start();
    let rest = rest.strip_prefix("-----BEGIN ")?;
    let (label, _) = rest.split_once("-----")?;
    Some(label.to_owned())
}

/// Reads a PKCS#8 Ed25519 private key, PEM (`-----BEGIN PRIVATE KEY-----`,
/// what `openssl genpkey -algorithm ed25519` writes) or DER.
pub fn load_signing_key(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let path = path.as_ref();
    let fail = |kind| KeyError {
        path: path.to_owned(),
        kind,
    };
    let bytes = std::fs::read(path).map_err(|error| fail(KeyErrorKind::Read(error)))?;
    let parsed = match pem_label(&bytes) {
        Some(label) if label == "PRIVATE KEY" => {
            let text = std::str::from_utf8(&bytes).unwrap_or_default();
            SigningKey::from_pkcs8_pem(text.trim_start_matches('\u{feff}').trim_start())
        }
        Some(label) if label == "ENCRYPTED PRIVATE KEY" => {
            return Err(fail(KeyErrorKind::Encrypted));
        }
        Some(label) if label == "OPENSSH PRIVATE KEY" => return Err(fail(KeyErrorKind::OpenSsh)),
        Some(found) => {
            return Err(fail(KeyErrorKind::WrongPem {
                found,
                expected: "PRIVATE KEY",
            }));
        }
        None => SigningKey::from_pkcs8_der(&bytes),
    };
    parsed.map_err(|error| fail(KeyErrorKind::Invalid(error.to_string())))
}

/// Reads an Ed25519 public key (SubjectPublicKeyInfo), PEM
/// (`-----BEGIN PUBLIC KEY-----`, what `openssl pkey -pubout` writes) or DER.
pub fn load_verifying_key(path: impl AsRef<Path>) -> Result<VerifyingKey, KeyError> {
    let path = path.as_ref();
    let fail = |kind| KeyError {
        path: path.to_owned(),
        kind,
    };
    let bytes = std::fs::read(path).map_err(|error| fail(KeyErrorKind::Read(error)))?;
    let parsed = match pem_label(&bytes) {
        Some(label) if label == "PUBLIC KEY" => {
            let text = std::str::from_utf8(&bytes).unwrap_or_default();
            VerifyingKey::from_public_key_pem(text.trim_start_matches('\u{feff}').trim_start())
        }
        Some(found) => {
            return Err(fail(KeyErrorKind::WrongPem {
                found,
                expected: "PUBLIC KEY",
            }));
        }
        None => VerifyingKey::from_public_key_der(&bytes),
    };
    parsed.map_err(|error| fail(KeyErrorKind::Invalid(error.to_string())))
}
