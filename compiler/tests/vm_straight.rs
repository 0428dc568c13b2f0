//! Expressions the VM runs straight through, without its interpreter loop
//! (a root or a root path alone, or compared with a constant), against the
//! reference evaluator: over data that takes every branch of the path
//! (found in maps of every size, missing, null on the way, not a map), with
//! every step budget from nothing to enough and byte budgets around the
//! constant's size. The same value or error, and the same fuel left.
//!
//! Also where each budget runs out: the VM names the instruction that
//! charged the step, which the reference evaluator cannot tell, so those
//! spans are pinned here by hand.

use donmai_compiler::codegen::{compile_expr, run_on_vm};
use donmai_compiler::eval::{Vars, evaluate};
use donmai_grammar::expr::parse_expr;
use donmai_runtime::bytecode::{ConstPool, Roots, verify};
use donmai_stdlib::value::{EvalError, Fuel, Value, error_code};
use serde_json::json;

/// Values for `nodes.build.output.status`, and `nodes` maps of every size
/// around `build`.
fn nodes_to_try() -> Vec<Option<Value>> {
    let status = [
        json!("done"),
        json!("dont"),
        json!("undo"),
        json!(""),
        json!("x".repeat(70)),
        json!(5),
        json!(6),
        json!(5.0),
        json!(4.5),
        json!(null),
        json!(true),
        json!([1]),
        json!({"a": 1}),
    ];
    let mut nodes = Vec::new();
    for value in status {
        nodes.push(json!({"build": {"output": {"status": value}}}));
        nodes.push(json!({"build": {"output": {"count": 1, "status": value}}}));
        nodes.push(json!({"build": {"output": {"status": value, "z": 1}}}));
    }
    let done = json!({"output": {"status": "done"}});
    nodes.extend([
        json!({"a": 1, "build": done}),
        json!({"build": done, "c": 1}),
        json!({"a": 1, "build": done, "c": 2}),
        json!({"a": 1, "b": 2, "build": done, "c": 3, "d": 4}),
        json!({"b0": 0, "b1": 1, "b2": 2, "b3": 3, "b4": 4, "b5": 5, "b6": 6,
               "b7": 7, "b8": 8, "build": done}),
        json!({"b0": 0, "b1": 1, "b2": 2, "b3": 3, "b4": 4, "b5": 5, "b6": 6,
               "b7": 7, "b8": 8}),
        json!({"build": {"output": {}}}),
        json!({"build": {"output": {"statu": 1}}}),
        json!({"build": {"output": null}}),
        json!({"build": {"output": 3}}),
        json!({"build": {"output": "text"}}),
        json!({"build": null}),
        json!({"build": [1]}),
        json!({}),
        json!(null),
        json!(7),
    ]);
    let mut values: Vec<Option<Value>> = nodes.iter().map(|j| Some(Value::from_json(j))).collect();
    values.push(None);
    values
}

fn same_outcome(vm: &Result<Value, EvalError>, reference: &Result<Value, EvalError>) -> bool {
    match (vm, reference) {
        (Ok(a), Ok(b)) => format!("{a:?}") == format!("{b:?}"),
        (Err(a), Err(b)) if a.code == error_code::FUEL_EXHAUSTED => a.code == b.code,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

fn agrees(text: &str) {
    let (expr, diagnostics) = parse_expr(text);
    assert!(diagnostics.is_empty(), "{text}: {diagnostics:?}");
    for nodes in nodes_to_try() {
        let mut vars = Vars::new();
        vars.insert("input".into(), Value::Int(5));
        if let Some(nodes) = &nodes {
            vars.insert("nodes".into(), nodes.clone());
        }
        for steps in 0..=9 {
            for bytes in [0, 3, 4, 69, 70, 1 << 20] {
                let fuel = Fuel::new(steps, bytes);
                let (mut vm_fuel, mut reference_fuel) = (fuel, fuel);
                let vm = run_on_vm(&expr, &vars, &mut vm_fuel);
                let reference = evaluate(&expr, &vars, &mut reference_fuel);
                assert!(
                    same_outcome(&vm, &reference) && vm_fuel == reference_fuel,
                    "{text} on {nodes:?} with {fuel:?}\n  vm        {vm:?} {vm_fuel:?}\n  \
                     reference {reference:?} {reference_fuel:?}"
                );
            }
        }
    }
}

#[test]
fn root_paths_agree_with_the_reference_evaluator() {
    for text in [
        "nodes",
        "missing",
        "nodes.build",
        "nodes.build.output.status",
        "nodes.build?.output?.status",
        "nodes?.zz?.status",
    ] {
        agrees(text);
    }
}

#[test]
fn comparisons_with_constants_agree_with_the_reference_evaluator() {
    let long = format!("'{}'", "x".repeat(70));
    let constants = ["'done'", "5", "5.0", "null", "true", long.as_str()];
    for operator in ["==", "!=", "<", "<=", ">", ">="] {
        for constant in constants {
            for operand in [
                "nodes.build.output.status",
                "nodes.build?.output?.status",
                "nodes",
                "input",
                "missing",
            ] {
                agrees(&format!("{operand} {operator} {constant}"));
            }
        }
    }
}

#[test]
fn string_tests_with_constants_agree_with_the_reference_evaluator() {
    let long = format!("'{}'", "x".repeat(70));
    let constants = ["'do'", "''", "5", "null", long.as_str()];
    for test in ["startsWith", "endsWith", "contains"] {
        for constant in constants {
            for operand in [
                "nodes.build.output.status",
                "nodes.build?.output?.status",
                "missing",
            ] {
                agrees(&format!("{operand}.{test}({constant})"));
            }
        }
    }
}

/// Runs `text` compiled with spans over `roots` with `fuel`, giving the
/// error's code and the text its span covers.
fn failure(text: &str, roots: &Roots, fuel: Fuel) -> (&'static str, String) {
    let (expr, _) = parse_expr(text);
    let mut pool = ConstPool::new();
    let code = compile_expr(&expr, &mut pool, 0).expect("compiles");
    let loaded = verify(&code, pool.constants()).expect("verifies");
    let mut left = fuel;
    match loaded.run(roots, &mut left) {
        Ok(value) => panic!("{text} with {fuel:?} gave {value:?}"),
        Err(error) => (
            error.code,
            text[error.span.start..error.span.end].to_owned(),
        ),
    }
}

#[test]
fn fuel_runs_out_at_the_instruction_that_charges_it() {
    let roots: Roots = [(
        "nodes",
        Value::from_json(&json!({"build": {"output": {"status": "x".repeat(70)}}})),
    )]
    .into_iter()
    .collect();
    let text = "nodes.build.output.status == 'done'";
    let exhausted = |steps, bytes| failure(text, &roots, Fuel::new(steps, bytes));
    // Five entries for the path and the `==`, charged by the load; one for
    // the literal, which also pays its four bytes; the comparison charges
    // one step, and one more per 64 bytes of the left string.
    let whole = (error_code::FUEL_EXHAUSTED, text.to_owned());
    assert_eq!(
        exhausted(4, 100),
        (error_code::FUEL_EXHAUSTED, "nodes".into())
    );
    assert_eq!(
        exhausted(5, 100),
        (error_code::FUEL_EXHAUSTED, "'done'".into())
    );
    assert_eq!(
        exhausted(6, 3),
        (error_code::FUEL_EXHAUSTED, "'done'".into())
    );
    assert_eq!(exhausted(6, 100), whole);
    assert_eq!(exhausted(7, 100), whole);
    let mut left = Fuel::new(8, 100);
    let (expr, _) = parse_expr(text);
    let mut pool = ConstPool::new();
    let code = compile_expr(&expr, &mut pool, 0).expect("compiles");
    let loaded = verify(&code, pool.constants()).expect("verifies");
    assert_eq!(loaded.run(&roots, &mut left), Ok(Value::Bool(false)));
    assert_eq!(left, Fuel::new(0, 96));

    // Errors of the path name the field.
    let missing: Roots = [("nodes", Value::from_json(&json!({"build": {}})))]
        .into_iter()
        .collect();
    assert_eq!(
        failure(text, &missing, Fuel::default()),
        (error_code::NO_SUCH_KEY, "output".into())
    );
    let wrong: Roots = [("nodes", Value::from_json(&json!({"build": 1})))]
        .into_iter()
        .collect();
    assert_eq!(
        failure(text, &wrong, Fuel::default()),
        (error_code::NO_SUCH_OVERLOAD, "output".into())
    );
    assert_eq!(
        failure(text, &Roots::new(), Fuel::default()),
        (error_code::UNKNOWN_VARIABLE, "nodes".into())
    );
}
