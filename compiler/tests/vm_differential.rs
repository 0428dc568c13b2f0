//! The bytecode VM against the reference evaluator on generated
//! expressions and variables: the same value, or the same error (code,
//! message and span; fuel exhaustion by code), and the same fuel left over,
//! under generous and tiny budgets alike.
//!
//! `PROPTEST_CASES` raises the number of cases for a longer hunt.

mod common;

use common::{expression, value, vars};
use donmai_compiler::codegen::{compile_expr, run_on_vm};
use donmai_compiler::eval::{Vars, evaluate};
use donmai_grammar::expr::parse_expr;
use donmai_runtime::bytecode::{ConstPool, Env, verify};
use donmai_stdlib::value::{EvalError, Fuel, Value, error_code};
use proptest::prelude::*;
use std::borrow::Cow;

fn fuel() -> impl Strategy<Value = Fuel> {
    prop_oneof![
        2 => Just(Fuel::new(200_000, 1 << 24)),
        1 => (0u64..300, 0u64..4000).prop_map(|(steps, bytes)| Fuel::new(steps, bytes)),
        1 => (0u64..300).prop_map(|steps| Fuel::new(steps, 1 << 24)),
    ]
}

fn same_outcome(vm: &Result<Value, EvalError>, reference: &Result<Value, EvalError>) -> bool {
    match (vm, reference) {
        // Debug keeps int and double apart and shows NaN, unlike `==`.
        (Ok(a), Ok(b)) => format!("{a:?}") == format!("{b:?}"),
        // Where a budget runs out is the same, but the VM names the
        // instruction that charged the step, not the node being entered.
        (Err(a), Err(b)) if a.code == error_code::FUEL_EXHAUSTED => a.code == b.code,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// An environment that computes its roots (hands out copies), so the VM
/// cannot borrow them: the same results are due.
struct Computed<'a>(&'a Vars);

impl Env for Computed<'_> {
    fn root(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.0.get(name).cloned().map(Cow::Owned)
    }
}

fn check(text: &str, vars: &Vars, fuel: Fuel) -> Result<(), TestCaseError> {
    let (expr, diagnostics) = parse_expr(text);
    prop_assume!(diagnostics.is_empty());
    let (mut vm_fuel, mut reference_fuel) = (fuel, fuel);
    let vm = run_on_vm(&expr, vars, &mut vm_fuel);
    let reference = evaluate(&expr, vars, &mut reference_fuel);
    prop_assert!(
        same_outcome(&vm, &reference) && vm_fuel == reference_fuel,
        "{text}\n  vm        {vm:?} {vm_fuel:?}\n  reference {reference:?} {reference_fuel:?}"
    );
    let mut pool = ConstPool::new();
    if let Ok(code) = compile_expr(&expr, &mut pool, 0) {
        let loaded =
            verify(&code, pool.constants()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut computed_fuel = fuel;
        let computed = loaded.run(&Computed(vars), &mut computed_fuel);
        prop_assert!(
            same_outcome(&computed, &vm) && computed_fuel == vm_fuel,
            "{text}\n  computed roots {computed:?}\n  borrowed roots {vm:?}"
        );
    }
    Ok(())
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
    fn the_vm_agrees_with_the_reference_evaluator(
        expr in expression(),
        a in value(),
        b in value(),
        fuel in fuel(),
    ) {
        check(&expr.to_string(), &vars(a, b), fuel)?;
    }

    #[test]
    fn compiled_code_always_verifies(expr in expression()) {
        let (parsed, diagnostics) = parse_expr(&expr.to_string());
        prop_assume!(diagnostics.is_empty());
        let mut pool = ConstPool::new();
        let code = compile_expr(&parsed, &mut pool, 3).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let verified = verify(&code, pool.constants());
        prop_assert!(verified.is_ok(), "{expr}: {:?}", verified.err());
        prop_assert!(code.spans.iter().all(|(_, s)| s.file == 3));
    }
}

/// Shapes the generator reaches only rarely, pinned down.
#[test]
fn corner_cases_agree() {
    let vars = vars(Value::Null, Value::list(vec![Value::Int(0), Value::Int(1)]));
    let cases = [
        "o.output.status == 'done'",
        "o?.zz?.a ?? 'none'",
        "o.x.zz",
        "o.x.y.zz",
        "i.a.b",
        "n.a.b.c",
        "[1, 2].map(x, [3, 4].map(y, x * y))",
        "l.map(x, l.map(x, x + 1))",
        "l.filter(x, x > 1).map(y, y * 2)",
        "b.all(x, 1 / x > 0)",
        "b.exists(x, 1 / x > 0)",
        "b.all(x, 1 / x > 0) || true",
        "b.all(x, 1 / x > 0) && false",
        "(1 / 0 == 1 && m.zz == 1) || (true && 'x')",
        "(1 / 0 == 1 || i.zz) && false",
        "l.exists(x, l.all(y, y / (x - 2) > 0))",
        "m.map(k, m[k] * 10)",
        "{'a': 1, 'b': [1, 2].map(x, x)}",
        "{'a': 1 / 0, 'a': 2}",
        "{'a': 1, 'a': 1 / 0}",
        "{[1]: 1 / 0}",
        "nosuch(1 / 0)",
        "false && nosuch()",
        "s.upper()",
        "upper()",
        "size(1, 2)",
        "l.has(x)",
        "l.has(x, 1 / 0)",
        "l.map(1, 1 / 0)",
        "i.map(x, x)",
        "has(o.x)",
        "has(o.x, 1)",
        "has(1 / 0)",
        "l.exists_one(x, x == 2)",
        "l.exists_one(x, 'x')",
        "l.map(x, x > 1, x)",
        "l.map(x, 'p', x)",
        "l.filter(x, x)",
        "true ? 1 : 1 / 0",
        "n ?? l.map(x, x)",
        "[[1], [2, 3]].map(x, x.size()).all(x, x > 0)",
        "a == null && b.size() == 2",
        "t.getFullYear() + dur.getMinutes()",
        "x",
        "l.map(x, x).size() + x",
    ];
    for text in cases {
        for fuel in [
            Fuel::default(),
            Fuel::new(5, 1 << 20),
            Fuel::new(12, 1 << 20),
            Fuel::new(1000, 100),
        ] {
            check(text, &vars, fuel).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
