//! Encoding is deterministic and decoding gives back the plan encoded.

mod support;

use donmai_runtime::plan::*;
use donmai_runtime::verify::verify;
use proptest::prelude::*;
use support::{sample_plan, valid_plan};

fn body(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len() - wire::HASH_LEN]
}

#[test]
fn the_sample_plan_round_trips() {
    let plan = sample_plan();
    let bytes = encode(&plan);
    let decoded = decode(&bytes).expect("decodes");
    assert_eq!(decoded.plan(), &plan);
    assert_eq!(decoded.id(), plan_hash(body(&bytes)));
    assert_eq!(plan_id(&bytes), Ok(decoded.id()));
    assert!(!decoded.is_signed());
    assert_eq!(decoded.signer(), None);
    assert_eq!(&bytes[bytes.len() - 32..], decoded.id().as_bytes());
}

#[test]
fn equal_plans_encode_to_identical_bytes() {
    let plan = sample_plan();
    let first = encode(&plan);
    assert_eq!(encode(&plan.clone()), first);
    assert_eq!(encode(&sample_plan()), first);
    assert_eq!(encode_body(&plan), body(&first));
}

#[test]
fn any_change_to_the_plan_changes_its_id() {
    let plan = sample_plan();
    let mut renamed = plan.clone();
    renamed.levels[0].steps[4].id.push('!');
    let mut reordered = plan.clone();
    reordered.constants.swap(0, 1);
    let id = plan_hash(&encode_body(&plan));
    assert_ne!(plan_hash(&encode_body(&renamed)), id);
    assert_ne!(plan_hash(&encode_body(&reordered)), id);
}

/// Pins the encoding of the sample plan. If this fails, the byte layout
/// changed: that is a new format version (`FORMAT_VERSION`), and the
/// expected id here is updated with it.
#[test]
fn the_layout_of_format_version_1_is_stable() {
    assert_eq!(FORMAT_VERSION, 1);
    let bytes = encode(&sample_plan());
    assert_eq!(&bytes[..8], b"\x89DPLAN\r\n");
    assert_eq!(&bytes[8..12], &[1, 0, 6, 0]);
    assert_eq!(
        plan_id(&bytes).expect("id").to_string(),
        "bbdb65670c6cb3161314c44435787eb3b84eff012912b5c0de001095077b2f80"
    );
}

#[test]
fn a_plan_of_another_format_version_encodes_but_does_not_decode() {
    let mut plan = sample_plan();
    plan.header.format_version = 2;
    let error = decode(&encode(&plan)).expect_err("refused");
    assert_eq!(
        error.kind,
        PlanErrorKind::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn valid_plans_verify_and_round_trip(plan in valid_plan()) {
        let verified = verify(plan.clone());
        prop_assert!(verified.is_ok(), "generated plan refused: {}", verified.unwrap_err());
        let verified = verified.unwrap();

        let bytes = encode(&plan);
        prop_assert_eq!(&encode(&plan.clone()), &bytes, "encoding is not deterministic");
        let decoded = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.plan(), &plan);
        prop_assert_eq!(decoded.id(), verified.id());
        prop_assert_eq!(&encode(decoded.plan()), &bytes);
        let reverified = decoded.verify().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(reverified.id(), verified.id());
    }
}

/// Seeds for the `plan` fuzz target (fuzz/README.md): the bodies of the
/// sample plan and of generated plans (the target appends the hash), plus
/// a signed file. Run by hand:
/// `DONMAI_PLAN_SEEDS=<folder> cargo test -p donmai-runtime --test plan_roundtrip -- --ignored write_fuzz_seeds`
#[test]
#[ignore = "writes files; run by hand to seed the fuzzer"]
fn write_fuzz_seeds() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let dir = std::env::var_os("DONMAI_PLAN_SEEDS").expect("set DONMAI_PLAN_SEEDS to a folder");
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the seed folder");
    let write = |name: String, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    let sample = sample_plan();
    write("sample-body".into(), &encode_body(&sample));
    let signed = sign(&encode(&sample), &support::signing_key(1)).expect("signs");
    write("sample-signed".into(), &signed);
    let mut runner = TestRunner::deterministic();
    for i in 0..64 {
        let plan = valid_plan()
            .new_tree(&mut runner)
            .expect("a plan")
            .current();
        write(format!("generated-{i:02}"), &encode_body(&plan));
    }
}
