//! Damaged plans: bit flips, truncation, inserted and deleted bytes and
//! swapped sections never make the decoder panic, and a plan whose bytes
//! changed is never accepted: its hash or its signature no longer matches.
//! With the hash recomputed (what a deliberate forger would do), the
//! changed bytes reach the section readers: they must then be refused or
//! decode to a plan that encodes back to exactly those bytes.

mod support;

use donmai_runtime::keys::TrustedKeys;
use donmai_runtime::plan::*;
use proptest::prelude::*;
use proptest::sample::Index;
use support::{TABLE_END, file_with_sections, sections_of, signing_key, valid_plan, with_hash};

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    Overwrite(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        1 => any::<Index>().prop_map(Mutation::Delete),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::FlipBit(at, bit) => bytes[at.index(len)] ^= 1 << bit,
        Mutation::Overwrite(at, byte) => bytes[at.index(len)] = *byte,
        Mutation::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
        Mutation::Delete(at) => {
            bytes.remove(at.index(bytes.len()));
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
    }
}

/// The body with the contents of sections `a` and `b` exchanged, the table
/// still listing ids in order but with the lengths of the moved contents.
fn swap_sections(body: &[u8], a: usize, b: usize) -> Vec<u8> {
    let mut sections = sections_of(body);
    sections.swap(a, b);
    let mut out = body[..wire::PREAMBLE_LEN].to_vec();
    for (i, section) in sections.iter().enumerate() {
        out.push(i as u8 + 1);
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
    }
    assert_eq!(out.len(), TABLE_END);
    for section in &sections {
        out.extend_from_slice(section);
    }
    out
}

fn check_mutated(
    original: &[u8],
    mutated: &[u8],
    trusted: Option<&TrustedKeys>,
) -> Result<(), TestCaseError> {
    let accepted = match trusted {
        Some(trusted) => decode_signed(mutated, trusted).is_ok(),
        None => decode(mutated).is_ok(),
    };
    if accepted {
        prop_assert_eq!(mutated, original, "a changed plan was accepted");
    }
    Ok(())
}

/// A body whose hash was recomputed after the change.
fn check_rehashed(body: Vec<u8>) -> Result<(), TestCaseError> {
    let file = with_hash(body);
    if let Ok(decoded) = decode(&file) {
        prop_assert_eq!(
            &encode(decoded.plan()),
            &file,
            "an accepted plan has exactly one encoding"
        );
        // Whatever the verifier says, it says it without panicking.
        let _ = decoded.verify();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn changed_bytes_are_never_accepted(
        plan in valid_plan(),
        mutations in prop::collection::vec(mutation(), 1..5),
        swap in prop::option::of((0..6usize, 0..6usize)),
    ) {
        let key = signing_key(7);
        let trusted: TrustedKeys = [key.verifying_key()].into_iter().collect();
        let unsigned = encode(&plan);
        let signed = sign(&unsigned, &key).expect("a valid plan signs");
        prop_assert!(decode_signed(&signed, &trusted).is_ok());
        let body = unsigned[..unsigned.len() - wire::HASH_LEN].to_vec();

        let mut bodies = vec![body.clone()];
        if let Some((a, b)) = swap.filter(|(a, b)| a != b) {
            bodies.push(swap_sections(&body, a, b));
        }
        for start in bodies {
            // The stored hash and signature stay those of the original.
            let mut changed_unsigned = start.clone();
            changed_unsigned.extend_from_slice(&unsigned[body.len()..]);
            let mut changed_signed = start.clone();
            changed_signed.extend_from_slice(&signed[body.len()..]);
            let mut changed_body = start;
            for mutation in &mutations {
                apply(&mut changed_unsigned, mutation);
                apply(&mut changed_signed, mutation);
                apply(&mut changed_body, mutation);
            }
            check_mutated(&unsigned, &changed_unsigned, None)?;
            check_mutated(&signed, &changed_signed, Some(&trusted))?;
            check_rehashed(changed_body)?;
        }
    }

    #[test]
    fn every_prefix_of_a_plan_is_refused(plan in valid_plan(), cut in any::<Index>()) {
        let bytes = encode(&plan);
        let len = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..len]).is_err());
        let signed = sign(&bytes, &signing_key(3)).expect("signs");
        let trusted: TrustedKeys = [signing_key(3).verifying_key()].into_iter().collect();
        let len = cut.index(signed.len());
        prop_assert!(decode_signed(&signed[..len], &trusted).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One change inside one section, lengths and hash recomputed: more of
    /// these get through the readers than with several changes, and each
    /// one that does must round-trip to the same bytes.
    #[test]
    fn one_change_inside_a_section_decodes_canonically_or_not_at_all(
        plan in valid_plan(),
        section in 0..6usize,
        mutation in mutation(),
    ) {
        let mut sections = sections_of(&encode(&plan));
        apply(&mut sections[section], &mutation);
        let file = file_with_sections(&sections);
        check_rehashed(file[..file.len() - wire::HASH_LEN].to_vec())?;
    }
}
