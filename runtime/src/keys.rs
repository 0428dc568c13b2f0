//! Ed25519 keys, for everything in donmai that signs or checks signatures
//! (plans, the audit chain): key ids, the set of keys a verifier trusts,
//! key files, and new keys from the operating system's randomness.
//!
//! Key files are PKCS#8, PEM or DER, as OpenSSL writes them:
//!
//! ```sh
//! openssl genpkey -algorithm ed25519 -out signing.pem               # private key
//! openssl pkey -in signing.pem -pubout -out signing.pub.pem         # public key
//! chmod 600 signing.pem
//! ```
//!
//! A private key file must be its owner's alone: on Unix one that group or
//! others may access is refused, since a key anyone can read signs for
//! anyone.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Key ids.

/// Names a public key without carrying it: the first 8 bytes of the SHA-256
/// of the 32-byte Ed25519 public key. Short enough to repeat in every
/// signature, long enough that two keys of one deployment do not collide by
/// accident; verifiers check signatures with the full key, so a collision
/// cannot forge anything. Displays as 16 lowercase hex digits and parses
/// back from them (either case).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub [u8; KeyId::LEN]);

impl KeyId {
    /// The width of a key id in bytes, wherever one is stored.
    pub const LEN: usize = 8;

    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut id = [0; KeyId::LEN];
        id.copy_from_slice(&digest[..KeyId::LEN]);
        KeyId(id)
    }

    pub fn as_bytes(&self) -> &[u8; KeyId::LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ParseKeyIdError;

    fn from_str(text: &str) -> Result<KeyId, ParseKeyIdError> {
        unhex(text)
            .and_then(|bytes| <[u8; KeyId::LEN]>::try_from(bytes).ok())
            .map(KeyId)
            .ok_or(ParseKeyIdError)
    }
}

/// Text that is not a [`KeyId`]: not exactly 16 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseKeyIdError;

impl fmt::Display for ParseKeyIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a key id is {} hex digits", 2 * KeyId::LEN)
    }
}

impl std::error::Error for ParseKeyIdError {}

// ---------------------------------------------------------------------------
// Trusted keys.

/// The public keys whose signatures a verifier accepts: a set, looked up by
/// key id. Two keys may share an id (the id is a prefix of a hash); both are
/// kept, and [`TrustedKeys::check`] accepts a signature by either.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    /// Sorted by id, then by key bytes: one order for one set, so equal sets
    /// compare equal and iterate alike.
    keys: Vec<(KeyId, VerifyingKey)>,
}

/// Why [`TrustedKeys::check`] refused a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No trusted key has the signature's key id.
    UntrustedKey,
    /// Trusted keys have the id, and none of them made the signature.
    BadSignature,
}

impl TrustedKeys {
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    /// Adds a key (once) and returns its id.
    pub fn insert(&mut self, key: VerifyingKey) -> KeyId {
        let id = KeyId::of(&key);
        if let Err(at) = self.keys.binary_search_by(|(known_id, known)| {
            (known_id, known.as_bytes()).cmp(&(&id, key.as_bytes()))
        }) {
            self.keys.insert(at, (id, key));
        }
        id
    }

    /// [`TrustedKeys::insert`], for building a set in one expression.
    pub fn with(mut self, key: VerifyingKey) -> TrustedKeys {
        self.insert(key);
        self
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

    /// The trusted keys with this id: almost always none or one.
    fn with_id(&self, id: KeyId) -> &[(KeyId, VerifyingKey)] {
        let start = self.keys.partition_point(|(known, _)| *known < id);
        let end = start + self.keys[start..].partition_point(|(known, _)| *known == id);
        &self.keys[start..end]
    }

    /// The trusted key with this id. Should two trusted keys share the id,
    /// this is one of them; [`TrustedKeys::check`] tries them all.
    pub fn get(&self, id: KeyId) -> Option<&VerifyingKey> {
        self.with_id(id).first().map(|(_, key)| key)
    }

    pub fn contains(&self, id: KeyId) -> bool {
        !self.with_id(id).is_empty()
    }

    /// Checks, with strict verification (no malleable or small-order
    /// signatures), that a trusted key with id `key_id` signed `message`.
    pub fn check(
        &self,
        key_id: KeyId,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), Rejection> {
        let candidates = self.with_id(key_id);
        if candidates.is_empty() {
            Err(Rejection::UntrustedKey)
        } else if candidates
            .iter()
            .any(|(_, key)| key.verify_strict(message, signature).is_ok())
        {
            Ok(())
        } else {
            Err(Rejection::BadSignature)
        }
    }

    /// The id of each key, in id order.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    /// Each key with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (KeyId, &VerifyingKey)> {
        self.keys.iter().map(|(id, key)| (*id, key))
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
        trusted.extend(keys);
        trusted
    }
}

impl Extend<VerifyingKey> for TrustedKeys {
    fn extend<I: IntoIterator<Item = VerifyingKey>>(&mut self, keys: I) {
        for key in keys {
            self.insert(key);
        }
    }
}

// ---------------------------------------------------------------------------
// Errors.

/// A key that could not be loaded, created or generated.
#[derive(Debug)]
pub struct KeyError {
    /// The key file concerned; `None` only for [`generate_signing_key`].
    pub path: Option<PathBuf>,
    pub kind: KeyErrorKind,
}

#[derive(Debug)]
pub enum KeyErrorKind {
    Read(io::Error),
    /// A directory, device, pipe, ...: reading one could block or never end.
    NotAFile,
    /// Far larger than any key file.
    TooLarge {
        size: u64,
    },
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
    /// A private key file that group or others may access (Unix `mode`
    /// bits, e.g. `0o644`).
    Exposed {
        mode: u32,
    },
    /// A new key file could not be written.
    Create(io::Error),
    /// The operating system gave no randomness for a new key.
    NoRandomness(getrandom::Error),
}

/// The largest file read as a key. PKCS#8 Ed25519 keys are under 200 bytes
/// even as PEM with comments; the bound keeps a wrong path to a big file
/// from being read whole.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

impl KeyError {
    fn at(path: &Path, kind: KeyErrorKind) -> KeyError {
        KeyError {
            path: Some(path.to_owned()),
            kind,
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self
            .path
            .as_deref()
            .unwrap_or(Path::new("<key file>"))
            .display();
        match &self.kind {
            KeyErrorKind::Read(error) => {
                write!(f, "cannot read key file {path}: {}", io_cause(error))
            }
            KeyErrorKind::NotAFile => {
                write!(f, "key file {path} is not a regular file")
            }
            KeyErrorKind::TooLarge { size } => write!(
                f,
                "key file {path} is {size} bytes, far too large for a key: is it the right file?"
            ),
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
            KeyErrorKind::Exposed { mode } => write!(
                f,
                "private key file {path} is accessible to group or others (mode {mode:03o}), \
                 so it cannot be trusted to sign: restrict it with `chmod 600 {path}`"
            ),
            KeyErrorKind::Create(error) => {
                write!(f, "cannot create key file {path}: {}", io_cause(error))
            }
            KeyErrorKind::NoRandomness(error) => {
                if self.path.is_some() {
                    write!(f, "cannot create key file {path}: ")?;
                }
                write!(
                    f,
                    "the operating system gave no randomness for a new key ({error})"
                )
            }
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            KeyErrorKind::Read(error) | KeyErrorKind::Create(error) => Some(error),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Key files.

/// The label of the first PEM block (`PRIVATE KEY` in
/// `-----BEGIN PRIVATE KEY-----`), if the text is PEM at all.
fn pem_label(bytes: &[u8]) -> Option<String> {
    let text = pem_text(bytes)?;
    let rest = text.strip_prefix("-----BEGIN ")?;
    let (label, _) = rest.split_once("-----")?;
    Some(label.to_owned())
}

/// The text of a PEM file from its first line on: editors add byte order
/// marks and blank lines that the PEM parser does not skip.
fn pem_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text.trim_start_matches('\u{feff}').trim_start())
}

/// Reads a key file's bytes after checking that it is a regular file of a
/// key's size. Returns the mode bits (Unix) for [`load_signing_key`].
fn read_key_file(path: &Path) -> Result<(Vec<u8>, u32), KeyError> {
    let fail = |kind| KeyError::at(path, kind);
    // Opening a pipe waits for a writer, so the kind of file is checked by
    // name first...
    let by_name = fs::metadata(path).map_err(|error| fail(KeyErrorKind::Read(error)))?;
    if !by_name.is_file() {
        return Err(fail(KeyErrorKind::NotAFile));
    }
    let mut file = fs::File::open(path).map_err(|error| fail(KeyErrorKind::Read(error)))?;
    // ...and again on the open file, which the mode check and the read then
    // use, so the file cannot be swapped between them.
    let metadata = file
        .metadata()
        .map_err(|error| fail(KeyErrorKind::Read(error)))?;
    if !metadata.is_file() {
        return Err(fail(KeyErrorKind::NotAFile));
    }
    if metadata.len() > MAX_KEY_FILE_LEN {
        return Err(fail(KeyErrorKind::TooLarge {
            size: metadata.len(),
        }));
    }
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        metadata.permissions().mode() & 0o777
    };
    #[cfg(not(unix))]
    let mode = 0o600;
    let mut bytes = Vec::new();
    // A file that grows after the size check is still read only so far.
    (&mut file)
        .take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| fail(KeyErrorKind::Read(error)))?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(fail(KeyErrorKind::TooLarge {
            size: bytes.len() as u64,
        }));
    }
    Ok((bytes, mode))
}

/// Reads a PKCS#8 Ed25519 private key, PEM (`-----BEGIN PRIVATE KEY-----`,
/// what `openssl genpkey -algorithm ed25519` writes) or DER.
///
/// On Unix the file must not be accessible to group or others. That is
/// checked once the file is known to hold a private key, so a public key
/// given by mistake is named as such rather than as too open.
pub fn load_signing_key(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let path = path.as_ref();
    let fail = |kind| KeyError::at(path, kind);
    let (bytes, mode) = read_key_file(path)?;
    let parsed = match pem_label(&bytes) {
        Some(label) if label == "PRIVATE KEY" => {
            SigningKey::from_pkcs8_pem(pem_text(&bytes).unwrap_or_default())
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
    let key = parsed.map_err(|error| fail(KeyErrorKind::Invalid(error.to_string())))?;
    if mode & 0o077 != 0 {
        return Err(fail(KeyErrorKind::Exposed { mode }));
    }
    Ok(key)
}

/// Reads an Ed25519 public key (SubjectPublicKeyInfo), PEM
/// (`-----BEGIN PUBLIC KEY-----`, what `openssl pkey -pubout` writes) or DER.
pub fn load_verifying_key(path: impl AsRef<Path>) -> Result<VerifyingKey, KeyError> {
    let path = path.as_ref();
    let fail = |kind| KeyError::at(path, kind);
    let (bytes, _) = read_key_file(path)?;
    let parsed = match pem_label(&bytes) {
        Some(label) if label == "PUBLIC KEY" => {
            VerifyingKey::from_public_key_pem(pem_text(&bytes).unwrap_or_default())
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

/// A fresh key from the operating system's random source.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| KeyError {
        path: None,
        kind: KeyErrorKind::NoRandomness(error),
    })?;
    let key = SigningKey::from_bytes(&secret);
    // The secret now lives (zeroized on drop) inside the key only.
    secret.fill(0);
    Ok(key)
}

/// Loads the private key at `path` with [`load_signing_key`], or, when there
/// is no file there, creates one (PKCS#8 PEM, mode 0600).
///
/// Several processes may race to create the same key: each writes its
/// candidate to a private temporary file and hard-links it into place, which
/// fails when the name exists, so exactly one key wins and every process
/// ends up using it. A reader never sees a half-written key file.
pub fn load_or_create_signing_key(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let path = path.as_ref();
    let fail = |kind| KeyError::at(path, kind);
    match fs::symlink_metadata(path) {
        Ok(_) => return load_signing_key(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(fail(KeyErrorKind::Read(error))),
    }
    let key = generate_signing_key().map_err(|error| fail(error.kind))?;
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|error| {
        fail(KeyErrorKind::Create(io::Error::other(format!(
            "cannot encode the new key: {error}"
        ))))
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|error| fail(KeyErrorKind::NoRandomness(error)))?;
    let temporary = dir.join(format!(".{file_name}.{}.tmp", hex(&suffix)));
    let written = write_private_file(&temporary, pem.as_bytes());
    let linked = written.and_then(|()| fs::hard_link(&temporary, path));
    // The temporary name is only a staging point; leaving it would litter
    // the directory with copies of the secret.
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(key)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => load_signing_key(path),
        Err(error) => Err(fail(KeyErrorKind::Create(error))),
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes a new directory entry durable. Best effort: not every platform or
/// file system lets a directory be opened and synced.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

// ---------------------------------------------------------------------------
// Helpers shared with the audit chain and the stores.

pub(crate) fn io_cause(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "does not exist".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::NotADirectory => "a component of the path is not a directory".to_string(),
        _ => err.to_string(),
    }
}

/// Lowercase hex, as key ids and signatures are written.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// Decodes lowercase or uppercase hex; `None` for odd lengths or other
/// characters.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex(&bytes), "00017f80ff");
        assert_eq!(unhex("00017F80ff").as_deref(), Some(&bytes[..]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn key_ids_print_and_parse_as_hex() {
        let id = KeyId([0, 1, 2, 0xab, 0xcd, 0xef, 0x10, 0xff]);
        assert_eq!(id.to_string(), "000102abcdef10ff");
        assert_eq!(format!("{id:?}"), "KeyId(000102abcdef10ff)");
        assert_eq!("000102ABCDEF10FF".parse::<KeyId>(), Ok(id));
        for bad in [
            "",
            "000102abcdef10f",
            "000102abcdef10ff00",
            "000102abcdef10fg",
        ] {
            assert_eq!(bad.parse::<KeyId>(), Err(ParseKeyIdError), "{bad:?}");
        }
        // A multi-byte character must not be split into bogus digit pairs.
        assert!("é".repeat(8).parse::<KeyId>().is_err());
        assert_eq!(ParseKeyIdError.to_string(), "a key id is 16 hex digits");
    }

    #[test]
    fn a_key_id_is_the_start_of_the_public_key_hash() {
        let public = key(1).verifying_key();
        let digest = Sha256::digest(public.as_bytes());
        assert_eq!(KeyId::of(&public).as_bytes()[..], digest[..8]);
        assert_ne!(KeyId::of(&public), KeyId::of(&key(2).verifying_key()));
    }

    #[test]
    fn trusted_keys_are_a_set_in_id_order() {
        let mut trusted = TrustedKeys::new();
        assert!(trusted.is_empty());
        let ids: Vec<KeyId> = (1..=5)
            .map(|seed| trusted.insert(key(seed).verifying_key()))
            .collect();
        assert_eq!(trusted.insert(key(3).verifying_key()), ids[2]);
        assert_eq!(trusted.len(), 5);
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(trusted.ids().collect::<Vec<_>>(), sorted);
        assert_eq!(trusted.get(ids[3]), Some(&key(4).verifying_key()));
        assert!(trusted.contains(ids[0]));
        let stranger = KeyId::of(&key(9).verifying_key());
        assert!(!trusted.contains(stranger));
        assert_eq!(trusted.get(stranger), None);
        // Insertion order does not matter to equality.
        let reversed: TrustedKeys = (1..=5)
            .rev()
            .map(|seed| key(seed).verifying_key())
            .collect();
        assert_eq!(reversed, trusted);
        assert_eq!(
            TrustedKeys::new().with(key(1).verifying_key()),
            [key(1).verifying_key()].into_iter().collect()
        );
    }

    #[test]
    fn a_signature_is_checked_against_every_key_sharing_its_id() {
        let message = b"message";
        let signer = key(1);
        let signature = signer.sign(message);
        let id = KeyId::of(&signer.verifying_key());
        // Two trusted keys filed under one id (as a collision would): the
        // signer's is found whichever comes first.
        let decoy = key(2).verifying_key();
        let mut trusted = TrustedKeys::new();
        trusted.keys = vec![(id, decoy), (id, signer.verifying_key())];
        assert_eq!(trusted.check(id, message, &signature), Ok(()));
        trusted.keys.reverse();
        assert_eq!(trusted.check(id, message, &signature), Ok(()));

        let only_decoy = TrustedKeys {
            keys: vec![(id, decoy)],
        };
        assert_eq!(
            only_decoy.check(id, message, &signature),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            TrustedKeys::new().check(id, message, &signature),
            Err(Rejection::UntrustedKey)
        );
        let trusted = TrustedKeys::new().with(signer.verifying_key());
        assert_eq!(
            trusted.check(id, b"another message", &signature),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn created_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        let created = load_or_create_signing_key(&path).unwrap();
        let loaded = load_or_create_signing_key(&path).unwrap();
        assert_eq!(created.to_bytes(), loaded.to_bytes());
        assert_eq!(
            load_signing_key(&path).unwrap().to_bytes(),
            created.to_bytes()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Only the key itself is left in the directory.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("signing.pem")]);
    }

    #[test]
    fn a_key_cannot_be_created_where_there_is_no_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("signing.pem");
        let err = load_or_create_signing_key(&path).unwrap_err();
        assert!(matches!(err.kind, KeyErrorKind::Create(_)), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot create key file {}:", path.display())),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn an_exposed_private_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        load_or_create_signing_key(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = load_signing_key(&path).unwrap_err();
            assert!(matches!(err.kind, KeyErrorKind::Exposed { mode: m } if m == mode));
            let text = err.to_string();
            assert!(text.contains(&format!("(mode {mode:03o})")), "{text}");
            assert!(
                text.contains(&format!("`chmod 600 {}`", path.display())),
                "{text}"
            );
            // Creating does not replace a key it may not use.
            assert!(matches!(
                load_or_create_signing_key(&path).unwrap_err().kind,
                KeyErrorKind::Exposed { .. }
            ));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        load_signing_key(&path).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_open_public_key_file_is_fine() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pub.der");
        let public = key(1).verifying_key();
        let der = ed25519_dalek::pkcs8::EncodePublicKey::to_public_key_der(&public).unwrap();
        fs::write(&path, der.as_bytes()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_verifying_key(&path).unwrap(), public);
        // Given where a private key belongs, it is named as a public key
        // (not as too open): DER carries no label, so the parse says it.
        let err = load_signing_key(&path).unwrap_err();
        assert!(matches!(err.kind, KeyErrorKind::Invalid(_)), "{err}");
    }

    #[test]
    fn garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        write_private_file(&path, b"not a key").unwrap();
        let err = load_signing_key(&path).unwrap_err();
        assert!(matches!(err.kind, KeyErrorKind::Invalid(_)));
        assert!(
            err.to_string().contains("is not a PKCS#8 Ed25519 key"),
            "{err}"
        );
    }

    #[test]
    fn directories_and_huge_files_are_not_read_as_keys() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_verifying_key(dir.path()).unwrap_err();
        assert!(matches!(err.kind, KeyErrorKind::NotAFile), "{err}");
        assert!(err.to_string().contains("is not a regular file"), "{err}");

        let big = dir.path().join("big.pem");
        let file = fs::File::create(&big).unwrap();
        file.set_len(MAX_KEY_FILE_LEN + 1).unwrap();
        let err = load_signing_key(&big).unwrap_err();
        assert!(
            matches!(err.kind, KeyErrorKind::TooLarge { size } if size == MAX_KEY_FILE_LEN + 1),
            "{err}"
        );
        assert!(err.to_string().contains("far too large"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("key.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .map(|status| status.success());
        if made.ok() != Some(true) {
            // No mkfifo on this machine: nothing to test with.
            return;
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                // The receiver is gone only when the test already failed.
                let _ = sender.send(load_signing_key(&fifo));
            }
        });
        let err = match receiver.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(result) => result.unwrap_err(),
            Err(_) => {
                // Release the blocked reader before failing.
                drop(fs::OpenOptions::new().write(true).open(&fifo));
                panic!("loading a key from a pipe blocked");
            }
        };
        assert!(matches!(err.kind, KeyErrorKind::NotAFile), "{err}");
    }

    #[test]
    fn racing_creators_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        let keys: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| load_or_create_signing_key(&path).unwrap().to_bytes()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|pair| pair[0] == pair[1]));
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate_signing_key().unwrap().verifying_key();
        let b = generate_signing_key().unwrap().verifying_key();
        assert_ne!(KeyId::of(&a), KeyId::of(&b));
    }
}
