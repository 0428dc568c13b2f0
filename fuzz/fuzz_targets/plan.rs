//! Arbitrary bytes as a `.dplan`, through the decoder and the verifier.
//! Neither may panic; an error's offset lies inside the file; an accepted
//! plan re-encodes to exactly the bytes read (a plan has one encoding).
//! Each input is tried twice: as a whole file, and as a body followed by
//! its correct hash, so that the fuzzer reaches the section readers
//! instead of stopping at the hash check.

#![no_main]

use donmai_runtime::plan::{decode, encode, plan_hash};
use libfuzzer_sys::fuzz_target;

fn check(file: &[u8]) {
    match decode(file) {
        Ok(decoded) => {
            let encoded = encode(decoded.plan());
            // A signed file is the unsigned encoding plus its signature block.
            assert_eq!(&file[..encoded.len().min(file.len())], &encoded[..]);
            let id = decoded.id();
            if let Ok(verified) = decoded.verify() {
                assert_eq!(verified.id(), id);
            }
        }
        Err(error) => {
            assert!(error.offset <= file.len() as u64, "{error}");
            let _ = error.to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut file = data.to_vec();
    file.extend_from_slice(plan_hash(data).as_bytes());
    check(&file);
});
