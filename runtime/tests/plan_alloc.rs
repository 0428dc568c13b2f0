//! Decoding allocates at most a small multiple of the input size, whatever
//! the input claims: each list's count is checked against the bytes left
//! before its vector is allocated. Measured with a counting allocator, per
//! thread so that tests running in parallel do not disturb each other.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use donmai_runtime::plan::*;
use support::{file_with_sections, sample_plan, sections_of};

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grow(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes live at once while decoding `bytes`, beyond what was live
/// before.
fn peak_decoding(bytes: &[u8]) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let decoded = decode(bytes);
    let peak = PEAK.with(Cell::get) - base;
    drop(decoded);
    peak
}

/// The bound asserted: a small multiple of the input, plus a constant for
/// the fixed-size parts. The worst case measured is 32× (a predicate
/// `all: []` is 2 bytes on disk and 64 in memory).
const RATIO: usize = 40;
const SLACK: usize = 4096;

fn assert_bounded(name: &str, bytes: &[u8]) {
    if let Err(error) = decode(bytes) {
        assert!(name == "huge count", "{name} does not decode: {error}");
    }
    let peak = peak_decoding(bytes);
    assert!(
        peak <= RATIO * bytes.len() + SLACK,
        "{name}: decoding {} bytes allocated {peak} bytes ({:.1}× the input)",
        bytes.len(),
        peak as f64 / bytes.len() as f64
    );
}

/// A file whose only non-empty section is `payload` at `index`.
fn only(index: usize, payload: Vec<u8>) -> Vec<u8> {
    let mut sections = sections_of(&encode_body(&sample_plan()));
    for section in &mut sections {
        // The emptiest valid content of each section.
        *section = vec![0];
    }
    sections[0] = vec![0, 0, 0, 0, 0];
    sections[index] = payload;
    file_with_sections(&sections)
}

/// `count` as a varint, then `item` `count` times.
fn repeated(count: usize, item: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut value = count as u64;
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            break;
        }
        out.push(low | 0x80);
    }
    for _ in 0..count {
        out.extend_from_slice(item);
    }
    out
}

const N: usize = 20_000;

#[test]
fn the_smallest_encodings_of_each_item_stay_within_the_bound() {
    assert_bounded("sample plan", &encode(&sample_plan()));
    assert_bounded("null constants", &only(1, repeated(N, &[0])));
    assert_bounded("empty verbs", &only(2, repeated(N, &[0; 11])));
    assert_bounded("empty expressions", &only(3, repeated(N, &[0; 10])));
    assert_bounded("empty levels", &only(4, repeated(N, &[0; 5])));
    assert_bounded("empty sources", &only(5, repeated(N, &[0; 33])));

    // One level holding many of the smallest steps, templates, predicates.
    let level = |steps: Vec<u8>| {
        let mut bytes = vec![1, 0, 0, 0, 0];
        bytes.extend_from_slice(&steps);
        bytes
    };
    let trigger_step = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_bounded("trigger steps", &only(4, level(repeated(N, &trigger_step))));

    let mut map_step = vec![0, 0, 0];
    map_step.extend_from_slice(&repeated(N, &[0, 0, 0])); // `"" : Const(0)` entries
    map_step.extend_from_slice(&[0; 9]);
    assert_bounded("input entries", &only(4, level(repeated(1, &map_step))));

    let mut list_step = vec![0, 0, 0, 1, 0, 3];
    list_step.extend_from_slice(&repeated(N, &[3, 0])); // empty lists
    list_step.extend_from_slice(&[0; 9]);
    assert_bounded("empty list items", &only(4, level(repeated(1, &list_step))));

    // A loop whose `until` is `all` of many empty `all`s.
    let mut loop_step = vec![0, 5, 1, 1, 1, 0];
    loop_step.extend_from_slice(&repeated(N, &[0, 0]));
    loop_step.extend_from_slice(&[0; 10]);
    assert_bounded("empty predicates", &only(4, level(repeated(1, &loop_step))));

    let strings = [0u8];
    let mut header = vec![0, 0, 0, 0];
    header.extend_from_slice(&repeated(N, &strings));
    assert_bounded("empty strings", &only(0, header));
}

#[test]
fn counts_claiming_more_than_the_input_allocate_nothing_for_them() {
    // Every list count as large as its varint can say, in a small file.
    for index in 1..6 {
        let bytes = only(
            index,
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        );
        assert!(matches!(
            decode(&bytes).map_err(|e| e.kind),
            Err(PlanErrorKind::CountTooLarge { .. })
        ));
        assert_bounded("huge count", &bytes);
    }
}
