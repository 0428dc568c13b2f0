//! Ed25519 signing keys kept in files: generation from the operating
//! system's randomness, PKCS#8 PEM files that only their owner may read, and
//! the short key ids that name a public key inside signatures and exports.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError {
    /// The key file concerned, when there is one.
    pub path: Option<PathBuf>,
    pub message: String,
}

impl KeyError {
    fn at(path: &Path, message: impl Into<String>) -> KeyError {
        KeyError {
            path: Some(path.to_path_buf()),
            message: message.into(),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "key file {}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for KeyError {}

/// A fresh key from the operating system's random source.
pub fn generate_signing_key() -> Result<SigningKey, KeyError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|err| KeyError {
        path: None,
        message: format!("the operating system gave no randomness for a new key: {err}"),
    })?;
    let key = SigningKey::from_bytes(&secret);
    // The secret now lives (zeroized on drop) inside the key only.
    secret.fill(0);
    Ok(key)
}

/// Names a public key: `ed25519:` and the first 8 bytes of its SHA-256 in
/// hex. Short enough to repeat in every signature record, long enough that
/// two keys of one deployment never collide by accident (the verifier still
/// checks signatures with the full key, so a collision cannot forge anything).
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("ed25519:{}", hex(&digest[..8]))
}

/// Reads a PKCS#8 PEM private key. On Unix the file must not be readable or
/// writable by group or others: a key anyone can read signs for anyone.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let metadata = fs::metadata(path).map_err(|err| KeyError::at(path, io_cause(&err)))?;
    if !metadata.is_file() {
        return Err(KeyError::at(path, "is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::at(
                path,
                format!(
                    "is accessible to group or others (mode {mode:03o}); \
                     restrict it with `chmod 600`"
                ),
            ));
        }
    }
    let pem = fs::read_to_string(path).map_err(|err| KeyError::at(path, io_cause(&err)))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|err| {
        KeyError::at(
            path,
            format!("is not a PKCS#8 PEM Ed25519 private key ({err})"),
        )
    })
}

/// Loads the key at `path`, or creates it (mode 0600) when there is none.
///
/// Several processes may race to create the same key: each writes its
/// candidate to a private temporary file and hard-links it into place, which
/// fails when the name exists, so exactly one key wins and every process
/// ends up using it. A reader never sees a half-written key file.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    match fs::symlink_metadata(path) {
        Ok(_) => return load_signing_key(path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(KeyError::at(path, io_cause(&err))),
    }
    let key = generate_signing_key()?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|err| KeyError::at(path, format!("cannot encode the new key: {err}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|err| KeyError::at(path, err.to_string()))?;
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
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => load_signing_key(path),
        Err(err) => Err(KeyError::at(
            path,
            format!("cannot create: {}", io_cause(&err)),
        )),
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

pub(crate) fn io_cause(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "does not exist".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::NotADirectory => "a component of the path is not a directory".to_string(),
        _ => err.to_string(),
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
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
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
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

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex(&bytes), "00017f80ff");
        assert_eq!(unhex("00017F80ff").as_deref(), Some(&bytes[..]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn created_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        let created = load_or_create_signing_key(&path).unwrap();
        let loaded = load_or_create_signing_key(&path).unwrap();
        assert_eq!(created.to_bytes(), loaded.to_bytes());
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

    #[cfg(unix)]
    #[test]
    fn readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        load_or_create_signing_key(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_signing_key(&path).unwrap_err();
        assert!(err.to_string().contains("mode 644"), "{err}");
    }

    #[test]
    fn garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.pem");
        write_private_file(&path, b"not a key").unwrap();
        let err = load_signing_key(&path).unwrap_err();
        assert!(err.to_string().contains("not a PKCS#8 PEM"), "{err}");
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
    fn key_ids_name_distinct_keys() {
        let a = generate_signing_key().unwrap().verifying_key();
        let b = generate_signing_key().unwrap().verifying_key();
        assert!(key_id(&a).starts_with("ed25519:"));
        assert_eq!(key_id(&a).len(), "ed25519:".len() + 16);
        assert_ne!(key_id(&a), key_id(&b));
    }
}
