//! Signing plans, checking signatures against trusted keys, key files.

mod support;

use std::path::PathBuf;

use donmai_runtime::keys::{
    KeyError, KeyErrorKind, KeyId, TrustedKeys, load_signing_key, load_verifying_key,
};
use donmai_runtime::plan::*;
use ed25519_dalek::SigningKey;
use support::{sample_plan, signing_key};

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// A copy of a fixture only its owner may read, in `dir`: a checkout gives
/// the fixtures whatever mode the umask says, and private keys are refused
/// when group or others may read them.
fn private_key_file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::copy(key_file(name), &path).expect("copy fixture");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod fixture");
    }
    path
}

fn trusting(keys: &[&SigningKey]) -> TrustedKeys {
    keys.iter().map(|key| key.verifying_key()).collect()
}

#[test]
fn a_signed_plan_names_its_key_and_keeps_its_id() {
    let unsigned = encode(&sample_plan());
    let key = signing_key(1);
    let signed = sign(&unsigned, &key).expect("signs");
    assert_eq!(
        &signed[..unsigned.len()],
        &unsigned[..],
        "signing only appends"
    );
    assert_eq!(signed.len(), unsigned.len() + wire::SIGNATURE_BLOCK_LEN);

    let decoded = decode(&signed).expect("decodes");
    assert!(decoded.is_signed());
    assert_eq!(decoded.signer(), Some(KeyId::of(&key.verifying_key())));
    assert_eq!(decoded.id(), plan_id(&unsigned).expect("id"));
    assert_eq!(decoded.plan(), &sample_plan());
    assert_eq!(
        decoded.check_signature(&trusting(&[&signing_key(9), &key])),
        Ok(KeyId::of(&key.verifying_key()))
    );
    assert!(decode_signed(&signed, &trusting(&[&key])).is_ok());
}

#[test]
fn signing_is_deterministic() {
    let unsigned = encode(&sample_plan());
    assert_eq!(
        sign(&unsigned, &signing_key(1)).expect("signs"),
        sign(&unsigned, &signing_key(1)).expect("signs")
    );
}

#[test]
fn an_unsigned_plan_fails_a_signature_check() {
    let unsigned = encode(&sample_plan());
    let error = decode(&unsigned)
        .expect("decodes")
        .check_signature(&trusting(&[&signing_key(1)]))
        .expect_err("unsigned");
    assert_eq!(
        error,
        PlanError::new(
            Section::Signature,
            unsigned.len() as u64,
            PlanErrorKind::Unsigned
        )
    );
}

#[test]
fn a_key_that_is_not_trusted_is_named() {
    let key = signing_key(1);
    let signed = sign(&encode(&sample_plan()), &key).expect("signs");
    let key_id = KeyId::of(&key.verifying_key());
    for trusted in [TrustedKeys::new(), trusting(&[&signing_key(2)])] {
        let error = decode_signed(&signed, &trusted).expect_err("untrusted");
        assert_eq!(error.kind, PlanErrorKind::UntrustedKey { key_id });
        assert!(
            error
                .to_string()
                .contains(&format!("signed by key {key_id}, which is not trusted"))
        );
    }
}

#[test]
fn a_changed_signature_does_not_verify() {
    let key = signing_key(1);
    let mut signed = sign(&encode(&sample_plan()), &key).expect("signs");
    let last = signed.len() - 1;
    signed[last] ^= 0x01;
    let error = decode_signed(&signed, &trusting(&[&key])).expect_err("forged");
    assert_eq!(
        error.kind,
        PlanErrorKind::BadSignature {
            key_id: KeyId::of(&key.verifying_key())
        }
    );
}

#[test]
fn a_signature_by_another_key_under_a_trusted_key_id_does_not_verify() {
    let trusted = signing_key(1);
    let forger = signing_key(2);
    let mut forged = sign(&encode(&sample_plan()), &forger).expect("signs");
    let key_id_at = forged.len() - 64 - 8;
    forged[key_id_at..key_id_at + 8]
        .copy_from_slice(KeyId::of(&trusted.verifying_key()).as_bytes());
    let error = decode_signed(&forged, &trusting(&[&trusted])).expect_err("forged");
    assert!(matches!(error.kind, PlanErrorKind::BadSignature { .. }));
}

#[test]
fn a_signature_moved_to_another_plan_does_not_verify() {
    let key = signing_key(1);
    let signed = sign(&encode(&sample_plan()), &key).expect("signs");
    let mut other = sample_plan();
    other.header.name.push('2');
    let mut moved = encode(&other);
    moved.extend_from_slice(&signed[signed.len() - wire::SIGNATURE_BLOCK_LEN..]);
    let error = decode_signed(&moved, &trusting(&[&key])).expect_err("moved");
    assert!(matches!(error.kind, PlanErrorKind::BadSignature { .. }));
}

#[test]
fn signing_again_replaces_the_signature() {
    let unsigned = encode(&sample_plan());
    let once = sign(&unsigned, &signing_key(1)).expect("signs");
    let twice = sign(&once, &signing_key(2)).expect("signs again");
    assert_eq!(twice.len(), once.len());
    assert_eq!(twice, sign(&unsigned, &signing_key(2)).expect("signs"));
    let decoded = decode(&twice).expect("decodes");
    assert_eq!(
        decoded.signer(),
        Some(KeyId::of(&signing_key(2).verifying_key()))
    );
}

#[test]
fn a_damaged_plan_is_not_signed() {
    let mut bytes = encode(&sample_plan());
    bytes[40] ^= 0x10;
    let error = sign(&bytes, &signing_key(1)).expect_err("damaged");
    assert!(matches!(error.kind, PlanErrorKind::HashMismatch { .. }));
    assert!(sign(b"not a plan", &signing_key(1)).is_err());
}

#[test]
fn trusted_keys_are_a_set() {
    let mut trusted = TrustedKeys::new();
    assert!(trusted.is_empty());
    let id = trusted.insert(signing_key(1).verifying_key());
    assert_eq!(trusted.insert(signing_key(1).verifying_key()), id);
    assert_eq!(trusted.len(), 1);
    assert!(trusted.contains(id));
    assert_eq!(trusted.ids().collect::<Vec<_>>(), vec![id]);
}

#[test]
fn openssl_key_files_load_in_pem_and_der() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let signing = load_signing_key(private_key_file(&dir, "signing.pem")).expect("private PEM");
    let verifying = load_verifying_key(key_file("signing.pub.pem")).expect("public PEM");
    assert_eq!(signing.verifying_key(), verifying);
    assert_eq!(
        load_signing_key(private_key_file(&dir, "signing.der")).expect("private DER"),
        signing
    );
    assert_eq!(
        load_verifying_key(key_file("signing.pub.der")).expect("public DER"),
        verifying
    );

    let signed = sign(&encode(&sample_plan()), &signing).expect("signs");
    let trusted =
        TrustedKeys::load([key_file("other.pub.pem"), key_file("signing.pub.pem")]).expect("loads");
    assert_eq!(trusted.len(), 2);
    assert_eq!(
        decode_signed(&signed, &trusted).expect("trusted").signer(),
        Some(KeyId::of(&verifying))
    );
}

#[test]
fn pem_with_a_byte_order_mark_or_leading_blank_lines_loads() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = private_key_file(&dir, "signing.pem");
    let plain = load_signing_key(&path).expect("loads");
    let text = std::fs::read_to_string(&path).expect("fixture");
    std::fs::write(&path, format!("\u{feff}\n\n{text}")).expect("write");
    assert_eq!(load_signing_key(&path).expect("loads"), plain);

    let public = dir.path().join("signing.pub.pem");
    let text = std::fs::read_to_string(key_file("signing.pub.pem")).expect("fixture");
    std::fs::write(&public, format!("\u{feff}\r\n{text}")).expect("write");
    assert_eq!(
        load_verifying_key(&public).expect("loads"),
        plain.verifying_key()
    );
}

#[cfg(unix)]
#[test]
fn a_private_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temporary directory");
    for name in ["signing.pem", "signing.der"] {
        let path = private_key_file(&dir, name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let error = key_error(load_signing_key(&path));
        assert!(
            matches!(error.kind, KeyErrorKind::Exposed { mode: 0o640 }),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "private key file {0} is accessible to group or others (mode 640), \
                 so it cannot be trusted to sign: restrict it with `chmod 600 {0}`",
                path.display()
            )
        );
    }
    // Public keys are public: any mode will do, and one given where the
    // private key belongs is named for what it is, not for its mode.
    let public = dir.path().join("signing.pub.pem");
    std::fs::copy(key_file("signing.pub.pem"), &public).expect("copy");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    load_verifying_key(&public).expect("loads");
    let error = key_error(load_signing_key(&public));
    assert!(
        matches!(error.kind, KeyErrorKind::WrongPem { .. }),
        "{error}"
    );
}

fn key_error(result: Result<impl std::fmt::Debug, KeyError>) -> KeyError {
    result.expect_err("the key file must be refused")
}

#[test]
fn a_missing_key_file_names_the_path() {
    let error = key_error(load_signing_key("/nonexistent/plan-key.pem"));
    assert!(matches!(error.kind, KeyErrorKind::Read(_)));
    assert!(
        error
            .to_string()
            .starts_with("cannot read key file /nonexistent/plan-key.pem:")
    );
}

#[test]
fn public_and_private_keys_are_not_mixed_up() {
    let error = key_error(load_signing_key(key_file("signing.pub.pem")));
    assert!(
        matches!(error.kind, KeyErrorKind::WrongPem { ref found, .. } if found == "PUBLIC KEY")
    );
    assert!(
        error.to_string().contains("signing needs the private key"),
        "{error}"
    );

    let error = key_error(load_verifying_key(key_file("signing.pem")));
    assert!(
        matches!(error.kind, KeyErrorKind::WrongPem { ref found, .. } if found == "PRIVATE KEY")
    );
    assert!(error.to_string().contains("-pubout"), "{error}");
}

#[test]
fn encrypted_and_openssh_keys_get_a_conversion_hint() {
    let error = key_error(load_signing_key(key_file("encrypted.pem")));
    assert!(matches!(error.kind, KeyErrorKind::Encrypted));
    assert!(error.to_string().contains("openssl pkey -in"), "{error}");

    let error = key_error(load_signing_key(key_file("openssh.key")));
    assert!(matches!(error.kind, KeyErrorKind::OpenSsh));
    assert!(
        error.to_string().contains("ssh-keygen -p -m PKCS8"),
        "{error}"
    );
}

#[test]
fn a_key_of_another_algorithm_is_refused() {
    let error = key_error(load_signing_key(key_file("p256.pem")));
    assert!(matches!(error.kind, KeyErrorKind::Invalid(_)));
    assert!(
        error.to_string().contains("is not a PKCS#8 Ed25519 key"),
        "{error}"
    );

    let error = key_error(load_verifying_key(
        key_file("signing.pem").with_extension("txt"),
    ));
    assert!(matches!(error.kind, KeyErrorKind::Read(_)));

    let dir = tempfile::tempdir().expect("temporary directory");
    let garbage = dir.path().join("garbage.der");
    std::fs::write(&garbage, [0x30, 0x03, 0x02, 0x01]).expect("write");
    let error = key_error(load_verifying_key(&garbage));
    assert!(matches!(error.kind, KeyErrorKind::Invalid(_)), "{error}");
}
