//! Damaged bytecode: bit flips, overwritten and inserted bytes, truncation,
//! wrong `max_stack`/`locals`, broken span tables, and plain random bytes.
//! The verifier must never panic, and whatever it accepts must run on the
//! VM without panicking and end within its fuel.
//!
//! `PROPTEST_CASES` raises the number of cases for a longer hunt.

mod common;

use common::{expression, vars};
use donmai_compiler::codegen::compile_expr;
use donmai_grammar::expr::parse_expr;
use donmai_runtime::bytecode::{ConstPool, verify};
use donmai_runtime::plan::{Constant, ExprCode, SourceRef};
use donmai_stdlib::value::{Fuel, Value};
use proptest::prelude::*;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    SetByte { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Truncate { at: usize },
    MaxStack(u16),
    Locals(u16),
    SpanOffset { entry: usize, offset: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..6).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (0u16..12).prop_map(Mutation::MaxStack),
        1 => (0u16..4).prop_map(Mutation::Locals),
        1 => (any::<usize>(), 0u32..200).prop_map(|(entry, offset)| Mutation::SpanOffset { entry, offset }),
    ]
}

fn apply(code: &mut ExprCode, mutation: &Mutation) {
    let len = code.code.len().max(1);
    match mutation {
        Mutation::FlipBit { at, bit } => {
            if let Some(byte) = code.code.get_mut(at % len) {
                *byte ^= 1 << bit;
            }
        }
        Mutation::SetByte { at, byte } => {
            if let Some(slot) = code.code.get_mut(at % len) {
                *slot = *byte;
            }
        }
        Mutation::Insert { at, bytes } => {
            let at = at % (code.code.len() + 1);
            code.code.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove { at, len: count } => {
            let at = at % len;
            let end = (at + count).min(code.code.len());
            if at < end {
                code.code.drain(at..end);
            }
        }
        Mutation::Truncate { at } => code.code.truncate(at % len),
        Mutation::MaxStack(max) => code.max_stack = *max,
        Mutation::Locals(locals) => code.locals = *locals,
        Mutation::SpanOffset { entry, offset } => {
            let count = code.spans.len();
            if let Some((at, _)) = code.spans.get_mut(entry % count.max(1)) {
                *at = *offset;
            }
        }
    }
}

/// Runs accepted code under a small budget; it must end, without a panic.
fn run_accepted(code: &ExprCode, constants: &[Constant]) -> Result<bool, TestCaseError> {
    let Ok(loaded) = verify(code, constants) else {
        return Ok(false);
    };
    let started = Instant::now();
    let vars = vars(Value::Null, Value::list(vec![Value::Int(0), Value::Int(1)]));
    let _ = loaded.run(&vars, &mut Fuel::new(20_000, 1 << 20));
    prop_assert!(
        started.elapsed() < Duration::from_secs(2),
        "accepted code ran for {:?}",
        started.elapsed()
    );
    Ok(true)
}

fn compiled(text: &str) -> Option<(ExprCode, Vec<Constant>)> {
    let (expr, diagnostics) = parse_expr(text);
    if !diagnostics.is_empty() {
        return None;
    }
    let mut pool = ConstPool::new();
    let code = compile_expr(&expr, &mut pool, 0).ok()?;
    Some((code, pool.into_constants()))
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_code_is_refused_or_runs_safely(
        expr in expression(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let Some((mut code, constants)) = compiled(&expr.to_string()) else {
            return Ok(());
        };
        for mutation in &mutations {
            apply(&mut code, mutation);
        }
        run_accepted(&code, &constants)?;
    }

    #[test]
    fn random_bytes_are_refused_or_run_safely(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        max_stack in 0u16..6,
        locals in 0u16..3,
    ) {
        let constants = vec![
            Constant::String("l".into()),
            Constant::String("size".into()),
            Constant::Int(1),
            Constant::String("a".into()),
        ];
        let code = ExprCode {
            code: bytes,
            max_stack,
            locals,
            result_type: "dyn".into(),
            source: SourceRef::default(),
            spans: Vec::new(),
        };
        run_accepted(&code, &constants)?;
    }
}

/// Every single-byte change and every truncation of a few programs that use
/// every kind of instruction: none panics, and accepted ones run safely.
#[test]
fn every_single_byte_change_of_seed_programs() {
    let seeds = [
        "l.map(x, x > 1, x * 2).filter(y, y != 4).all(z, z > 0 && (1 / 0 == 1 || true))",
        "{'a': o?.x.y ?? 'd', 'b': [1, 2].exists_one(x, x == 2)} == m ? has(o.x) : !false",
        "l.exists(x, size(s) == 5 || x in words) && nosuch(1) == 2 || l.has(x)",
        "-i + int('4') % 3 - d.size() - l[0] * upper(s).size() / 2",
    ];
    let mut accepted = 0usize;
    let mut tried = 0usize;
    for text in seeds {
        let (original, constants) = compiled(text).expect("seed compiles");
        assert!(verify(&original, &constants).is_ok(), "{text}");
        for at in 0..original.code.len() {
            for byte in [0x00, 0x01, 0x02, 0x10, 0x2F, 0x31, 0x51, 0x7F, 0x80, 0xFF] {
                let mut code = original.clone();
                code.code[at] = byte;
                tried += 1;
                if run_accepted(&code, &constants).unwrap_or_else(|e| panic!("{text}: {e}")) {
                    accepted += 1;
                }
            }
            let mut code = original.clone();
            code.code.truncate(at);
            assert!(
                verify(&code, &constants).is_err(),
                "{text}: truncated at {at} but accepted"
            );
        }
    }
    // Most damage is caught; some survives as different but valid code.
    assert!(
        accepted < tried / 2,
        "{accepted} of {tried} changes accepted"
    );
}
