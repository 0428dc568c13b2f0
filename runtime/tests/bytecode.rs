//! Hand-assembled expression code: what the verifier refuses (with the
//! offset and the reason), and what the VM does with code no compiler would
//! emit but the verifier accepts.

use donmai_runtime::bytecode::{
    CondContext, Instruction, MacroKind, Roots, VerifiedExpr, decode, disassemble, verify,
};
use donmai_runtime::plan::{Constant, ExprCode, SourceRef};
use donmai_stdlib::value::{Fuel, Value, error_code};
use std::collections::{BTreeMap, HashMap};

/// Encodes `program`, whose jump operands are instruction indices (turned
/// into byte offsets here), each instruction with its steps byte.
fn assemble(program: &[(u8, Instruction)]) -> Vec<u8> {
    let mut offsets = Vec::new();
    let mut scratch = Vec::new();
    for (steps, instruction) in program {
        offsets.push(scratch.len() as u32);
        instruction.encode(*steps, &mut scratch);
    }
    offsets.push(scratch.len() as u32);
    let at = |index: u32| offsets[index as usize];
    let mut code = Vec::new();
    for (steps, instruction) in program {
        let resolved = match instruction.clone() {
            Instruction::Jump { target } => Instruction::Jump { target: at(target) },
            Instruction::JumpIfFalse { target } => Instruction::JumpIfFalse { target: at(target) },
            Instruction::JumpIfNotNull { target } => {
                Instruction::JumpIfNotNull { target: at(target) }
            }
            Instruction::JumpIfCond { decisive, target } => Instruction::JumpIfCond {
                decisive,
                target: at(target),
            },
            Instruction::Try { handler } => Instruction::Try {
                handler: at(handler),
            },
            Instruction::IterNext { slot, exit } => Instruction::IterNext {
                slot,
                exit: at(exit),
            },
            Instruction::QuantStep { decisive, head } => Instruction::QuantStep {
                decisive,
                head: at(head),
            },
            Instruction::CountStep { head } => Instruction::CountStep { head: at(head) },
            Instruction::CollectStep { head } => Instruction::CollectStep { head: at(head) },
            Instruction::KeepStep { head } => Instruction::KeepStep { head: at(head) },
            other => other,
        };
        resolved.encode(*steps, &mut code);
    }
    code
}

fn expr_code(program: &[(u8, Instruction)], max_stack: u16, locals: u16) -> ExprCode {
    ExprCode {
        code: assemble(program),
        max_stack,
        locals,
        result_type: "dyn".into(),
        source: SourceRef {
            file: 0,
            start: 0,
            end: 10,
        },
        spans: Vec::new(),
    }
}

fn constants() -> Vec<Constant> {
    vec![
        Constant::String("l".into()),
        Constant::String("size".into()),
        Constant::Int(7),
        Constant::String("boom".into()),
        Constant::Double(2.5f64.to_bits()),
    ]
}

fn refused(program: &[(u8, Instruction)], max_stack: u16, locals: u16) -> (u32, String) {
    match verify(&expr_code(program, max_stack, locals), &constants()) {
        Ok(_) => panic!("accepted: {program:?}"),
        Err(error) => (error.offset, error.message),
    }
}

fn accepted(program: &[(u8, Instruction)], max_stack: u16, locals: u16) -> VerifiedExpr {
    verify(&expr_code(program, max_stack, locals), &constants())
        .unwrap_or_else(|e| panic!("refused: {e}"))
}

fn roots() -> BTreeMap<String, Value> {
    BTreeMap::from([(
        "l".to_owned(),
        Value::list(vec![Value::Int(1), Value::Int(2)]),
    )])
}

use Instruction::*;

#[test]
fn a_minimal_program_runs() {
    let loaded = accepted(&[(1, PushConst { index: 2 }), (0, Return)], 1, 0);
    let mut fuel = Fuel::new(10, 10);
    assert_eq!(loaded.run(&roots(), &mut fuel), Ok(Value::Int(7)));
    assert_eq!(fuel.steps, 9);
    assert_eq!(loaded.result_type(), "dyn");
}

#[test]
fn structural_errors_name_the_offset_and_the_reason() {
    let (at, message) = refused(&[], 0, 0);
    assert_eq!((at, message.as_str()), (0, "the code is empty"));

    let (at, message) = refused(&[(0, PushTrue), (0, Pop)], 1, 0);
    assert_eq!(at, 2);
    assert!(message.contains("runs off the end"), "{message}");

    let (at, message) = refused(&[(0, Pop), (0, PushTrue), (0, Return)], 1, 0);
    assert_eq!(at, 0);
    assert!(message.contains("needs 1 stack values"), "{message}");

    let (at, message) = refused(&[(0, PushTrue), (0, PushTrue), (0, Return)], 2, 0);
    assert_eq!(at, 4);
    assert!(message.contains("leaves 1 more"), "{message}");

    let (_, message) = refused(&[(0, PushTrue), (0, Return)], 3, 0);
    assert!(message.contains("max_stack says 3"), "{message}");

    let mut code = expr_code(&[(0, PushTrue), (0, Return)], 1, 0);
    code.code.push(0xEE);
    code.code.push(0);
    let error = verify(&code, &constants()).unwrap_err();
    assert_eq!(error.offset, 4);
    assert!(error.message.contains("unknown opcode 0xee"));
}

#[test]
fn operands_are_checked_against_the_pool_and_the_table() {
    let (_, message) = refused(&[(0, PushConst { index: 99 }), (0, Return)], 1, 0);
    assert!(message.contains("names constant #99"), "{message}");

    let (_, message) = refused(&[(0, LoadRoot { name: 2 }), (0, Return)], 1, 0);
    assert!(message.contains("must be a string constant"), "{message}");

    let (_, message) = refused(
        &[
            (0, PushTrue),
            (
                0,
                Call {
                    function: 3,
                    argc: 1,
                },
            ),
            (0, Return),
        ],
        1,
        0,
    );
    assert!(message.contains("no builtin function `boom`"), "{message}");

    let (_, message) = refused(
        &[
            (0, PushTrue),
            (0, PushTrue),
            (0, PushTrue),
            (
                0,
                Call {
                    function: 1,
                    argc: 3,
                },
            ),
            (0, Return),
        ],
        3,
        0,
    );
    assert!(
        message.contains("no overload of `size` takes 3"),
        "{message}"
    );

    // NoOverload must not stand for a call that has an overload.
    let (_, message) = refused(
        &[
            (0, PushTrue),
            (
                0,
                NoOverload {
                    function: 1,
                    argc: 1,
                },
            ),
        ],
        1,
        0,
    );
    assert!(message.contains("which an overload takes"), "{message}");

    let (_, message) = refused(&[(0, LoadLocal { slot: 1 }), (0, Return)], 1, 1);
    assert!(
        message.contains("local slot 1 is out of range"),
        "{message}"
    );

    let (_, message) = refused(
        &[(
            0,
            Raise {
                code: 200,
                message: 3,
            },
        )],
        0,
        0,
    );
    assert!(message.contains("unknown error code"), "{message}");
}

#[test]
fn jumps_land_on_instructions_and_go_back_only_to_a_loop_head() {
    let mut code = expr_code(&[(0, PushTrue), (0, Jump { target: 0 }), (0, Return)], 1, 0);
    // Into the middle of the Jump.
    code.code[4..8].copy_from_slice(&3u32.to_le_bytes());
    let error = verify(&code, &constants()).unwrap_err();
    assert!(error.message.contains("not the start of an instruction"));

    let (at, message) = refused(&[(0, PushTrue), (0, Pop), (0, Jump { target: 0 })], 1, 0);
    assert_eq!(at, 4);
    assert!(
        message.contains("does not land on an IterNext"),
        "{message}"
    );

    let (_, message) = refused(
        &[
            (0, PushTrue),
            (0, Try { handler: 0 }),
            (0, EndTry),
            (0, Return),
        ],
        2,
        0,
    );
    assert!(message.contains("must come after it"), "{message}");
}

#[test]
fn paths_must_agree_where_they_meet() {
    // One path pushes a value more than the other.
    let (at, message) = refused(
        &[
            (0, PushTrue),
            (0, JumpIfFalse { target: 3 }),
            (0, PushTrue),
            (0, PushFalse),
            (0, Return),
        ],
        2,
        0,
    );
    assert_eq!(at, 10);
    assert!(message.contains("different stack depths"), "{message}");

    // A pending-error slot must not meet a plain value.
    let (_, message) = refused(
        &[
            (0, Try { handler: 3 }),
            (0, PushConst { index: 2 }),
            (0, EndTry),
            (0, Return),
        ],
        1,
        0,
    );
    assert!(
        message.contains("different kinds of stack slot 0"),
        "{message}"
    );
}

#[test]
fn a_pending_error_is_only_consumed_by_the_ops_that_combine_conditions() {
    let (_, message) = refused(
        &[
            (0, Try { handler: 4 }),
            (0, PushTrue),
            (
                0,
                Cond {
                    context: CondContext::And,
                },
            ),
            (0, EndTry),
            (0, Pop),
            (0, PushTrue),
            (0, Return),
        ],
        1,
        0,
    );
    assert!(
        message.contains("finds a condition that may hold a pending error"),
        "{message}"
    );
    // Nothing inside a Try may reach below what its handler restores.
    let (_, message) = refused(
        &[
            (0, PushTrue),
            (0, Try { handler: 3 }),
            (0, Pop),
            (0, PushTrue),
            (0, Return),
        ],
        2,
        0,
    );
    assert!(message.contains("reaches below"), "{message}");
}

#[test]
fn iteration_frames_are_checked() {
    let (_, message) = refused(
        &[
            (0, PushTrue),
            (
                0,
                IterEnd {
                    kind: MacroKind::All,
                },
            ),
            (0, Return),
        ],
        1,
        0,
    );
    assert!(message.contains("needs an iteration frame"), "{message}");

    // An element must cost fuel.
    let (_, message) = refused(
        &[
            (0, LoadRoot { name: 0 }),
            (
                0,
                IterBegin {
                    kind: MacroKind::Map,
                    reserve: true,
                },
            ),
            (0, IterNext { slot: 0, exit: 4 }),
            (0, LoadLocal { slot: 0 }),
            (0, CollectStep { head: 2 }),
            (
                0,
                IterEnd {
                    kind: MacroKind::Map,
                },
            ),
            (0, Return),
        ],
        1,
        1,
    );
    assert!(message.contains("at least one step"), "{message}");

    // A step op of another macro.
    let (_, message) = refused(
        &[
            (0, LoadRoot { name: 0 }),
            (
                0,
                IterBegin {
                    kind: MacroKind::Filter,
                    reserve: false,
                },
            ),
            (1, IterNext { slot: 0, exit: 5 }),
            (0, LoadLocal { slot: 0 }),
            (0, CollectStep { head: 2 }),
            (
                0,
                IterEnd {
                    kind: MacroKind::Filter,
                },
            ),
            (0, Return),
        ],
        1,
        1,
    );
    assert!(
        message.contains("does not apply to a `filter` frame"),
        "{message}"
    );

    // A correct `map`, for contrast.
    let loaded = accepted(
        &[
            (0, LoadRoot { name: 0 }),
            (
                0,
                IterBegin {
                    kind: MacroKind::Map,
                    reserve: true,
                },
            ),
            (1, IterNext { slot: 0, exit: 5 }),
            (0, LoadLocal { slot: 0 }),
            (0, CollectStep { head: 2 }),
            (
                0,
                IterEnd {
                    kind: MacroKind::Map,
                },
            ),
            (0, Return),
        ],
        1,
        1,
    );
    assert_eq!(
        loaded.run(&roots(), &mut Fuel::default()),
        Ok(Value::list(vec![Value::Int(1), Value::Int(2)]))
    );
}

#[test]
fn a_loop_that_never_binds_an_element_runs_out_of_fuel() {
    // An empty list iterated forever: each turn exits the loop and jumps
    // back to its head. No instruction charges a step, yet the VM stops:
    // loop exits are bounded by the steps spent.
    let loaded = accepted(
        &[
            (3, MakeList { len: 0 }),
            (
                0,
                IterBegin {
                    kind: MacroKind::All,
                    reserve: false,
                },
            ),
            (1, IterNext { slot: 0, exit: 5 }),
            (0, PushTrue),
            (
                0,
                QuantStep {
                    decisive: false,
                    head: 2,
                },
            ),
            (0, Jump { target: 2 }),
        ],
        1,
        1,
    );
    let error = loaded
        .run(&roots(), &mut Fuel::unlimited())
        .expect_err("the loop ends");
    assert_eq!(error.code, error_code::FUEL_EXHAUSTED);
}

#[test]
fn raise_and_try_follow_their_operands() {
    // `boom || true`: the raised error is absorbed by the deciding `true`.
    let program = [
        (1, Try { handler: 3 }),
        (
            1,
            Raise {
                code: 5,
                message: 3,
            },
        ),
        (0, EndTry),
        (
            0,
            JumpIfCond {
                decisive: true,
                target: 9,
            },
        ),
        (0, Try { handler: 8 }),
        (1, PushTrue),
        (
            0,
            Cond {
                context: CondContext::Or,
            },
        ),
        (0, EndTry),
        (0, Logic { decisive: true }),
        (0, Return),
    ];
    let loaded = accepted(&program, 2, 0);
    assert_eq!(
        loaded.run(&roots(), &mut Fuel::default()),
        Ok(Value::Bool(true))
    );
    // `boom || false`: the error stands, with its message.
    let mut program = program;
    program[5] = (1, PushFalse);
    let loaded = accepted(&program, 2, 0);
    let error = loaded.run(&roots(), &mut Fuel::default()).unwrap_err();
    assert_eq!(error.code, error_code::INVALID_ARGUMENT);
    assert_eq!(error.message, "boom");
}

#[test]
fn errors_carry_the_span_recorded_for_their_instruction() {
    let mut code = expr_code(
        &[
            (1, PushConst { index: 2 }),
            (1, PushConst { index: 4 }),
            (0, Add),
            (0, Return),
        ],
        2,
        0,
    );
    let span = |start, end| SourceRef {
        file: 4,
        start,
        end,
    };
    code.source = span(0, 9);
    code.spans = vec![(0, span(0, 1)), (6, span(4, 5)), (12, span(0, 9))];
    let loaded = verify(&code, &constants()).expect("verifies");
    let error = loaded.run(&roots(), &mut Fuel::default()).unwrap_err();
    assert_eq!(error.code, error_code::NO_SUCH_OVERLOAD);
    assert_eq!((error.span.start, error.span.end), (0, 9));
    assert_eq!(loaded.error_source(&error), span(0, 9));
    assert_eq!(loaded.span_at(7), span(4, 5));

    // The span table must be sorted and inside the code.
    code.spans = vec![(6, span(0, 1)), (0, span(0, 1))];
    assert!(verify(&code, &constants()).is_err());
    code.spans = vec![(99, span(0, 1))];
    assert!(verify(&code, &constants()).is_err());
}

#[test]
fn roots_come_from_any_env() {
    let loaded = accepted(&[(1, LoadRoot { name: 0 }), (0, Return)], 1, 0);
    let hashed: HashMap<String, Value> = roots().into_iter().collect();
    assert_eq!(
        loaded.run(&hashed, &mut Fuel::default()),
        loaded.run(&roots(), &mut Fuel::default())
    );
    let mut small: Roots = roots().into_iter().collect();
    assert_eq!(
        loaded.run(&small, &mut Fuel::default()),
        loaded.run(&roots(), &mut Fuel::default())
    );
    small.insert("l", Value::Int(1));
    assert_eq!(loaded.run(&small, &mut Fuel::default()), Ok(Value::Int(1)));
    let error = loaded
        .run(&BTreeMap::new(), &mut Fuel::default())
        .unwrap_err();
    assert_eq!(error.code, error_code::UNKNOWN_VARIABLE);
}

#[test]
fn the_listing_shows_constants_by_value() {
    let code = expr_code(
        &[
            (2, LoadRoot { name: 0 }),
            (
                0,
                Call {
                    function: 1,
                    argc: 1,
                },
            ),
            (0, Return),
        ],
        1,
        0,
    );
    let listing = disassemble(&code, &constants()).expect("decodes");
    assert_eq!(
        listing,
        "    0  [2] LoadRoot \"l\"\n    6  [0] Call \"size\" 1\n   13  [0] Return\n"
    );
    assert_eq!(decode(&code.code).expect("decodes").len(), 3);
}

#[test]
fn verification_stays_linear_on_long_code_and_bounded_on_hostile_code() {
    // A 20,000-element list literal: straight-line code, one state carried.
    let n = 20_000u32;
    let mut program: Vec<(u8, Instruction)> = vec![(1, AllocList { len: n })];
    program.extend((0..n).map(|_| (1, PushTrue)));
    program.push((0, MakeList { len: n }));
    program.push((0, Return));
    let started = std::time::Instant::now();
    let loaded = accepted(&program, 20_000, 0);
    assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());
    assert!(matches!(
        loaded.run(&roots(), &mut Fuel::default()),
        Ok(Value::List(items)) if items.len() == 20_000
    ));

    // A deep stack, then a join point after every instruction: each join
    // compares the whole stack. The budget refuses it instead of spending
    // quadratic time.
    let n = 12_000u32;
    let mut program: Vec<(u8, Instruction)> = (0..n).map(|_| (0, PushTrue)).collect();
    for i in 0..n {
        program.push((0, Jump { target: n + i + 1 }));
    }
    program.push((0, MakeList { len: n }));
    program.push((0, Return));
    let started = std::time::Instant::now();
    let (_, message) = refused(&program, 12_000, 0);
    assert!(message.contains("too complex to verify"), "{message}");
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}
