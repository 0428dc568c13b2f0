//! The expression VM against the `cel` crate (a tree-walking CEL
//! interpreter) on 20 typical workflow expressions, evaluated over the same
//! data; plus the cost of compiling one expression.
//!
//! Both sides compile once and evaluate many times, as the engine does. The
//! VM reuses one `Machine` and starts each evaluation with the default fuel;
//! `cel` executes its compiled program against one `Context`. Before
//! measuring, every expression is checked to give the same result on both.
//!
//! Time is the benchmark thread's CPU time, not wall time: the machine is
//! shared with other builds, and wall time there mostly measures how long
//! the thread waited for a core. `DONMAI_BENCH_WALL_TIME=1` switches back to
//! criterion's wall clock.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use donmai_compiler::codegen::{compile_expr, compile_untyped};
use donmai_grammar::expr::parse_expr;
use donmai_runtime::bytecode::{ConstPool, Machine, Roots, VerifiedExpr, verify};
use donmai_stdlib::value::{Fuel, Value};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// The allocator the binaries use, so the bench measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `(name, expression)`: written in the subset both languages share.
const EXPRESSIONS: [(&str, &str); 20] = [
    ("path_eq", r#"nodes.build.output.status == "done""#),
    (
        "path_and",
        "nodes.build.output.count > 3 && nodes.lint.output.ok",
    ),
    ("starts_with", r#"trigger.pr.title.startsWith("feat")"#),
    ("contains", r#"trigger.pr.title.contains("vm")"#),
    ("ends_with", r#"trigger.pr.branch.endsWith("/vm")"#),
    ("size_gt", "size(trigger.pr.labels) > 0"),
    ("in_list", r#""urgent" in trigger.pr.labels"#),
    ("exists", r#"trigger.pr.labels.exists(l, l == "bug")"#),
    ("all", "trigger.pr.labels.all(l, size(l) < 20)"),
    (
        "filter_size",
        "size(nodes.tests.output.results.filter(r, r.passed))",
    ),
    ("map", "nodes.tests.output.results.map(r, r.ms)"),
    ("arith", "nodes.build.output.count * 2 + 1"),
    (
        "arith_paths",
        "(nodes.build.output.count + nodes.lint.output.count) / 2",
    ),
    (
        "ternary",
        r#"nodes.build.output.count % 2 == 0 ? "even" : "odd""#,
    ),
    (
        "or_bool",
        r#"trigger.pr.author == "bot" || trigger.pr.draft"#,
    ),
    (
        "and_not",
        "nodes.review.output.approvals >= 2 && !trigger.pr.draft",
    ),
    ("ternary_arith", "input.retries < 3 ? input.retries + 1 : 0"),
    ("has", "has(trigger.pr.milestone)"),
    (
        "concat",
        r#"trigger.pr.title + " (#" + string(trigger.pr.number) + ")""#,
    ),
    (
        "exists_one",
        "nodes.tests.output.results.exists_one(r, !r.passed)",
    ),
];

fn data() -> BTreeMap<String, Value> {
    let json = serde_json::json!({
        "nodes": {
            "build": {"output": {"status": "done", "count": 5}},
            "lint": {"output": {"ok": true, "count": 2}},
            "review": {"output": {"approvals": 2}},
            "tests": {"output": {"results": [
                {"name": "unit", "passed": true, "ms": 120},
                {"name": "integration", "passed": true, "ms": 2300},
                {"name": "e2e", "passed": false, "ms": 9100},
                {"name": "lint", "passed": true, "ms": 40},
                {"name": "docs", "passed": true, "ms": 15}
            ]}}
        },
        "trigger": {"pr": {
            "title": "feat: expression vm",
            "branch": "feature/vm",
            "labels": ["enhancement", "vm", "urgent"],
            "author": "alice",
            "draft": false,
            "number": 42
        }},
        "input": {"retries": 1, "environments": ["staging", "prod"]},
        "run": {"id": "r-1", "attempt": 1}
    });
    let serde_json::Value::Object(roots) = json else {
        unreachable!("the data is an object")
    };
    roots
        .iter()
        .map(|(name, value)| (name.clone(), Value::from_json(value)))
        .collect()
}

/// The same data as `cel` values (ints stay signed ints).
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::Double(d) => cel::Value::Float(*d),
        Value::String(s) => cel::Value::String(Arc::new(s.to_string())),
        Value::List(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Map(entries) => {
            let map: HashMap<String, cel::Value> = entries
                .iter()
                .map(|(k, v)| (k.to_string(), to_cel(v)))
                .collect();
            cel::Value::from(map)
        }
        other => panic!("no cel counterpart for {other:?}"),
    }
}

/// The VM's result in `cel`'s terms, to check both sides agree.
fn same(ours: &Value, theirs: &cel::Value) -> bool {
    match (ours, theirs) {
        (Value::List(a), cel::Value::List(b)) => {
            a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| same(x, y))
        }
        (Value::Map(_), _) => false,
        (ours, theirs) => to_cel(ours) == *theirs,
    }
}

fn load(text: &str) -> VerifiedExpr {
    let (expr, diagnostics) = parse_expr(text);
    assert!(diagnostics.is_empty(), "{text}: {diagnostics:?}");
    let mut pool = ConstPool::new();
    let code = compile_expr(&expr, &mut pool, 0).expect("compiles");
    verify(&code, pool.constants()).expect("verifies")
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in ns.
struct ThreadCpuTime;

fn thread_cpu_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the pointer,
    // which points at a live, writable local of that type.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Formats nanoseconds like criterion's wall clock does.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            Throughput::ElementsAndBytes { elements, .. } => *elements as f64,
            Throughput::Bits(n) => *n as f64,
        };
        let _ = typical;
        values
            .iter_mut()
            .for_each(|v| *v = per_iteration * 1e9 / *v);
        "elem/s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn bench_evaluation<M: Measurement>(c: &mut Criterion<M>) {
    let data = data();
    // The environment the engine would give: its few roots in a `Roots`.
    let roots: Roots = data.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let env = Arc::new(cel::Env::stdlib());
    let mut context = cel::Context::with_env(env.clone());
    for (name, value) in &data {
        context.add_variable_from_value(name.clone(), to_cel(value));
    }
    let mut machine = Machine::new();

    let mut group = c.benchmark_group("eval");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for (index, (name, text)) in EXPRESSIONS.iter().enumerate() {
        let ours = load(text);
        let theirs = env.compile(text).expect("cel compiles");
        let our_value = machine
            .run(&ours, &roots, &mut Fuel::default())
            .expect("the VM evaluates");
        let their_value = theirs.execute(&context).expect("cel evaluates");
        assert!(
            same(&our_value, &their_value),
            "{text}: {our_value:?} vs {their_value:?}"
        );
        let id = format!("{:02}_{name}", index + 1);
        group.bench_function(BenchmarkId::new("donmai", &id), |b| {
            b.iter(|| {
                machine
                    .run(black_box(&ours), &roots, &mut Fuel::default())
                    .ok()
            })
        });
        group.bench_function(BenchmarkId::new("cel", &id), |b| {
            b.iter(|| black_box(&theirs).execute(&context).ok())
        });
    }
    group.finish();
}

/// `cel` alone on the smallest expressions, over a context of one string
/// and one int: where the published per-expression figures for `cel` start
/// (about 0.1 µs), so this harness's `cel` figures above can be told apart
/// from its setup. The 20 expressions read nested workflow data and run
/// macros, which costs `cel` more.
fn bench_cel_reference<M: Measurement>(c: &mut Criterion<M>) {
    let env = Arc::new(cel::Env::stdlib());
    let mut context = cel::Context::with_env(env.clone());
    context.add_variable_from_value("status", cel::Value::from("done"));
    context.add_variable_from_value("count", cel::Value::Int(5));
    let mut group = c.benchmark_group("cel_reference");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for (name, text) in [
        ("int_add", "1 + 2"),
        ("var_eq", "status == \"done\""),
        ("var_arith", "count * 2 + 1 > 10"),
    ] {
        let program = env.compile(text).expect("cel compiles");
        program.execute(&context).expect("cel evaluates");
        group.bench_function(name, |b| {
            b.iter(|| black_box(&program).execute(&context).ok())
        });
    }
    group.finish();
}

fn bench_compile<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("compile");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let parsed: Vec<_> = EXPRESSIONS
        .iter()
        .map(|(_, text)| parse_expr(text).0)
        .collect();
    // All 20 per iteration: the time per expression is a twentieth.
    group.bench_function("parse_20", |b| {
        b.iter(|| {
            for (_, text) in EXPRESSIONS {
                black_box(parse_expr(text));
            }
        })
    });
    group.bench_function("codegen_20", |b| {
        b.iter(|| {
            let mut pool = ConstPool::new();
            for expr in &parsed {
                black_box(compile_untyped(expr, &mut pool, 0).ok());
            }
        })
    });
    group.bench_function("codegen_typeck_20", |b| {
        b.iter(|| {
            let mut pool = ConstPool::new();
            for expr in &parsed {
                black_box(compile_expr(expr, &mut pool, 0).ok());
            }
        })
    });
    let mut pool = ConstPool::new();
    let codes: Vec<_> = parsed
        .iter()
        .map(|expr| compile_expr(expr, &mut pool, 0).expect("compiles"))
        .collect();
    group.bench_function("verify_20", |b| {
        b.iter(|| {
            for code in &codes {
                black_box(verify(code, pool.constants()).ok());
            }
        })
    });
    group.bench_function("parse_codegen_typeck_verify_20", |b| {
        b.iter(|| {
            let mut pool = ConstPool::new();
            for (_, text) in EXPRESSIONS {
                let (expr, _) = parse_expr(text);
                if let Ok(code) = compile_expr(&expr, &mut pool, 0) {
                    black_box(verify(&code, pool.constants()).ok());
                }
            }
        })
    });
    group.bench_function("cel_compile_20", |b| {
        let env = cel::Env::stdlib();
        b.iter(|| {
            for (_, text) in EXPRESSIONS {
                black_box(env.compile(text).ok());
            }
        })
    });
    group.finish();
}

fn benches() {
    if std::env::var_os("DONMAI_BENCH_WALL_TIME").is_some_and(|v| v == "1") {
        let mut c = Criterion::<WallTime>::default().configure_from_args();
        bench_evaluation(&mut c);
        bench_cel_reference(&mut c);
        bench_compile(&mut c);
    } else {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        bench_evaluation(&mut c);
        bench_cel_reference(&mut c);
        bench_compile(&mut c);
    }
}

criterion_main!(benches);
