//! Each way a `.dplan` can be malformed gets its own error, naming the
//! section and the byte offset.

mod support;

use donmai_runtime::plan::wire::{HASH_LEN, PREAMBLE_LEN, TABLE_ENTRY_LEN};
use donmai_runtime::plan::*;
use support::{TABLE_END, file_with_sections, sample_plan, sections_of, signing_key};

/// The sample plan's sections with section `index` replaced.
fn with_section(index: usize, payload: Vec<u8>) -> Vec<u8> {
    let mut sections = sections_of(&encode_body(&sample_plan()));
    sections[index] = payload;
    file_with_sections(&sections)
}

/// The offset in `with_section(index, ..)`'s file where that section starts.
fn section_start(index: usize) -> u64 {
    let sections = sections_of(&encode_body(&sample_plan()));
    (TABLE_END + sections[..index].iter().map(Vec::len).sum::<usize>()) as u64
}

fn refused(bytes: &[u8]) -> PlanError {
    decode(bytes).expect_err("the plan must be refused")
}

#[test]
fn a_file_that_is_not_a_plan_has_bad_magic() {
    let error = refused(b"PK\x03\x04 this is a zip file");
    assert_eq!(
        error,
        PlanError::new(Section::Preamble, 0, PlanErrorKind::BadMagic)
    );
    assert_eq!(refused(b"{\"json\": true}").kind, PlanErrorKind::BadMagic);
    assert_eq!(
        error.to_string(),
        "invalid plan: preamble section, byte 0: not a donmai plan (the file does not start with the .dplan magic bytes)"
    );
}

#[test]
fn text_mode_transfers_break_the_magic() {
    let mut bytes = encode(&sample_plan());
    bytes.remove(6); // CR LF → LF
    assert_eq!(refused(&bytes).kind, PlanErrorKind::BadMagic);
    let mut bytes = encode(&sample_plan());
    bytes[0] &= 0x7f; // a 7-bit channel
    assert_eq!(refused(&bytes).kind, PlanErrorKind::BadMagic);
}

#[test]
fn an_empty_or_cut_preamble_is_truncated() {
    let error = refused(b"");
    assert_eq!(error.section, Section::Preamble);
    assert!(matches!(
        error.kind,
        PlanErrorKind::Truncated {
            what: "the magic bytes",
            ..
        }
    ));
    let bytes = encode(&sample_plan());
    let error = refused(&bytes[..9]);
    assert_eq!(error.offset, 8);
    assert!(matches!(
        error.kind,
        PlanErrorKind::Truncated {
            what: "the format version",
            needed: 2,
            available: 1
        }
    ));
}

#[test]
fn another_format_version_is_named() {
    let mut bytes = encode(&sample_plan());
    bytes[8] = 7;
    let error = refused(&bytes);
    assert_eq!(
        error,
        PlanError::new(
            Section::Preamble,
            8,
            PlanErrorKind::UnsupportedVersion {
                found: 7,
                supported: 1
            }
        )
    );
    assert!(
        error
            .to_string()
            .contains("plan format version 7 is not supported")
    );
}

#[test]
fn the_section_table_must_list_the_six_sections_in_order() {
    let mut bytes = encode(&sample_plan());
    bytes[10] = 5;
    assert_eq!(
        refused(&bytes),
        PlanError::new(
            Section::Preamble,
            10,
            PlanErrorKind::SectionCount {
                found: 5,
                expected: 6
            }
        )
    );

    let mut bytes = encode(&sample_plan());
    let verbs_entry = PREAMBLE_LEN + 2 * TABLE_ENTRY_LEN;
    bytes[verbs_entry] = 9;
    assert_eq!(
        refused(&bytes),
        PlanError::new(
            Section::SectionTable,
            verbs_entry as u64,
            PlanErrorKind::UnexpectedSection {
                found: 9,
                expected: Section::Verbs
            }
        )
    );

    // Swapping two entries (ids and lengths) is still out of order.
    let mut bytes = encode(&sample_plan());
    let (a, b) = (PREAMBLE_LEN, PREAMBLE_LEN + TABLE_ENTRY_LEN);
    let first: Vec<u8> = bytes[a..b].to_vec();
    bytes.copy_within(b..b + TABLE_ENTRY_LEN, a);
    bytes[b..b + TABLE_ENTRY_LEN].copy_from_slice(&first);
    let error = refused(&bytes);
    assert_eq!(
        error.kind,
        PlanErrorKind::UnexpectedSection {
            found: 2,
            expected: Section::Header
        }
    );
}

#[test]
fn a_section_length_past_the_end_of_the_file() {
    let mut bytes = encode(&sample_plan());
    let levels_entry = PREAMBLE_LEN + 4 * TABLE_ENTRY_LEN;
    bytes[levels_entry + 1..levels_entry + 9].copy_from_slice(&u64::MAX.to_le_bytes());
    let error = refused(&bytes);
    assert_eq!(error.section, Section::Levels);
    assert_eq!(error.offset, levels_entry as u64 + 1);
    assert!(matches!(
        error.kind,
        PlanErrorKind::LengthPastEnd {
            what: "the section length",
            length: u64::MAX,
            ..
        }
    ));
}

#[test]
fn a_cut_file_is_truncated_at_the_hash() {
    let bytes = encode(&sample_plan());
    let body_end = bytes.len() - HASH_LEN;
    let error = refused(&bytes[..body_end + 5]);
    assert_eq!(error.section, Section::Hash);
    assert_eq!(error.offset, body_end as u64);
    assert!(matches!(
        error.kind,
        PlanErrorKind::Truncated {
            what: "the plan hash",
            needed: 32,
            available: 5
        }
    ));
    // Cut inside a section, the section lengths point past the end.
    let error = refused(&bytes[..body_end - 10]);
    assert!(
        matches!(error.kind, PlanErrorKind::LengthPastEnd { .. }),
        "{error}"
    );
}

#[test]
fn a_changed_body_does_not_match_its_hash() {
    let mut bytes = encode(&sample_plan());
    let body_end = bytes.len() - HASH_LEN;
    bytes[body_end - 1] ^= 1;
    let error = refused(&bytes);
    assert_eq!(error.section, Section::Hash);
    assert_eq!(error.offset, body_end as u64);
    let PlanErrorKind::HashMismatch { stored, computed } = error.kind else {
        panic!("expected a hash mismatch, got {error}");
    };
    assert_eq!(stored, plan_id(&encode(&sample_plan())).expect("id"));
    assert_eq!(computed, plan_hash(&bytes[..body_end]));
    assert!(
        error
            .to_string()
            .contains("the file is damaged or was modified")
    );
}

#[test]
fn bytes_after_the_hash_must_be_a_signature_block() {
    let mut bytes = encode(&sample_plan());
    let end = bytes.len() as u64;
    bytes.extend_from_slice(b"xyz");
    assert_eq!(
        refused(&bytes),
        PlanError::new(
            Section::Signature,
            end,
            PlanErrorKind::TrailingBytes { count: 3 }
        )
    );

    let signed = sign(&encode(&sample_plan()), &signing_key(1)).expect("signs");
    let error = refused(&signed[..signed.len() - 1]);
    assert_eq!(error.section, Section::Signature);
    assert_eq!(error.offset, end);
    assert!(matches!(
        error.kind,
        PlanErrorKind::Truncated {
            what: "the signature block",
            ..
        }
    ));

    let mut longer = signed.clone();
    longer.push(0);
    assert_eq!(
        refused(&longer),
        PlanError::new(
            Section::Signature,
            signed.len() as u64,
            PlanErrorKind::TrailingBytes { count: 1 }
        )
    );
}

#[test]
fn invalid_utf8_is_reported_at_the_first_bad_byte() {
    // The header starts with the api version.
    let mut header = vec![4, b'w', b'f', 0xc3, b'('];
    header.extend_from_slice(&[0, 0, 0, 0]);
    let error = refused(&with_section(0, header));
    assert_eq!(
        error,
        PlanError::new(
            Section::Header,
            section_start(0) + 3,
            PlanErrorKind::InvalidUtf8 {
                what: "the api version"
            }
        )
    );
    assert_eq!(
        error.to_string(),
        format!(
            "invalid plan: header section, byte {}: the api version is not valid UTF-8",
            section_start(0) + 3
        )
    );
}

#[test]
fn a_string_longer_than_its_section_is_refused() {
    let error = refused(&with_section(0, vec![0x7f, b'a']));
    assert_eq!(error.section, Section::Header);
    assert_eq!(error.offset, section_start(0));
    assert_eq!(
        error.kind,
        PlanErrorKind::LengthPastEnd {
            what: "the api version",
            length: 127,
            available: 1
        }
    );
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    // 2^62 constants in a 10-byte section.
    let mut constants = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
    constants.push(0);
    let error = refused(&with_section(1, constants));
    assert_eq!(error.section, Section::Constants);
    assert_eq!(error.offset, section_start(1));
    assert_eq!(
        error.kind,
        PlanErrorKind::CountTooLarge {
            what: "constants",
            count: 1 << 62,
            min_item_bytes: 1,
            available: 1
        }
    );
    // A count that fits the bytes but not the items' minimum size.
    let levels = vec![3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let error = refused(&with_section(4, levels));
    assert_eq!(
        error.kind,
        PlanErrorKind::CountTooLarge {
            what: "levels",
            count: 3,
            min_item_bytes: 5,
            available: 10
        }
    );
}

#[test]
fn an_unknown_tag_is_named() {
    let error = refused(&with_section(1, vec![2, 0, 9]));
    assert_eq!(
        error,
        PlanError::new(
            Section::Constants,
            section_start(1) + 2,
            PlanErrorKind::BadTag {
                what: "a constant",
                tag: 9
            }
        )
    );
    // Options and bools are 0 or 1, nothing else.
    let error = refused(&with_section(0, vec![0, 0, 2, 0, 0]));
    assert_eq!(
        error.kind,
        PlanErrorKind::BadTag {
            what: "the plan version",
            tag: 2
        }
    );
}

#[test]
fn a_fixed_width_field_cut_short_is_truncated() {
    let error = refused(&with_section(1, vec![1, 3, 1, 2, 3]));
    assert_eq!(error.offset, section_start(1) + 2);
    assert_eq!(
        error.kind,
        PlanErrorKind::Truncated {
            what: "an int constant",
            needed: 8,
            available: 3
        }
    );
}

#[test]
fn bytes_a_section_does_not_use_are_refused() {
    let error = refused(&with_section(1, vec![1, 0, 0xaa, 0xbb]));
    assert_eq!(
        error,
        PlanError::new(
            Section::Constants,
            section_start(1) + 2,
            PlanErrorKind::UnreadBytes { count: 2 }
        )
    );
}

#[test]
fn numbers_have_one_encoding_only() {
    // One constant, counted with a two-byte varint.
    let error = refused(&with_section(1, vec![0x81, 0x00, 0]));
    assert_eq!(
        error,
        PlanError::new(
            Section::Constants,
            section_start(1),
            PlanErrorKind::OverlongVarint { what: "constants" }
        )
    );
    // A plugin major beyond u32.
    let mut verb = vec![1, 0];
    verb.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x10]);
    verb.extend_from_slice(&[0; 10]); // room for the rest of a verb
    let error = refused(&with_section(2, verb));
    assert_eq!(
        error.kind,
        PlanErrorKind::ValueTooLarge {
            what: "a plugin major version",
            value: 1 << 32,
            max: u32::MAX as u64
        }
    );
}

fn nested_list(depth: usize) -> ValueTemplate {
    let mut template = ValueTemplate::Const(0);
    for _ in 1..depth {
        template = ValueTemplate::List(vec![template]);
    }
    template
}

fn nested_not(depth: usize) -> Predicate {
    let mut predicate = Predicate::Leaf {
        field: "x".to_owned(),
        op: PredicateOp::Exists,
        value: None,
    };
    for _ in 1..depth {
        predicate = Predicate::Not(Box::new(predicate));
    }
    predicate
}

#[test]
fn templates_nest_at_most_128_deep() {
    let mut plan = sample_plan();
    plan.levels[1].outputs[0].1 = nested_list(128);
    assert_eq!(
        decode(&encode(&plan)).expect("128 is allowed").plan(),
        &plan
    );
    plan.levels[1].outputs[0].1 = nested_list(129);
    let error = refused(&encode(&plan));
    assert_eq!(error.section, Section::Levels);
    assert_eq!(
        error.kind,
        PlanErrorKind::TooDeep {
            what: "value templates",
            limit: 128
        }
    );
}

#[test]
fn predicates_nest_at_most_5_deep() {
    let mut plan = sample_plan();
    let StepKind::Loop { until, .. } =
        &mut plan.levels[0].steps[support::sample::ITERATE as usize].kind
    else {
        panic!("the sample's `iterate` step is a loop");
    };
    *until = Some(nested_not(5));
    assert_eq!(decode(&encode(&plan)).expect("5 is allowed").plan(), &plan);
    let StepKind::Loop { until, .. } =
        &mut plan.levels[0].steps[support::sample::ITERATE as usize].kind
    else {
        unreachable!()
    };
    *until = Some(nested_not(6));
    let error = refused(&encode(&plan));
    assert_eq!(error.section, Section::Levels);
    assert_eq!(
        error.kind,
        PlanErrorKind::TooDeep {
            what: "predicates",
            limit: 5
        }
    );
}

#[test]
fn plan_id_checks_the_hash_without_reading_sections() {
    // Garbage sections with a correct hash: the frame is fine.
    let file = with_section(1, vec![0xff]);
    assert_eq!(
        plan_id(&file),
        Ok(plan_hash(&file[..file.len() - HASH_LEN]))
    );
    assert!(decode(&file).is_err());
}
