//! `donmaic check` end to end on generated workflows of 100, 1,000 and
//! 10,000 steps: read the file, find its project, parse, check, apply lint
//! levels and render the human report, on one thread. Throughput is in YAML
//! lines (criterion prints them as `elem/s`); time per line must stay flat
//! as the file grows.
//!
//! `DONMAI_BENCH_STEPS=1000,20000,40000` measures other sizes. Beyond
//! `check::MAX_STEPS` (20,000) steps in one level the checker reports the
//! limit instead of analysing the graph, so such a size measures reading,
//! parsing, lowering and that one diagnostic.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use donmai_bench::{donmai_workflow, line_count};
use donmai_compiler::check::{MAX_STEPS, check_file};
use donmai_compiler::driver::{CheckOptions, run_check};
use donmai_compiler::project::LintLevel;
use donmai_compiler::render::{Format, RenderOptions, render};
use donmai_grammar::Code;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SIZES: [usize; 3] = [100, 1_000, 10_000];

/// The sizes to measure: [`SIZES`], or those listed in `DONMAI_BENCH_STEPS`.
fn sizes() -> Vec<usize> {
    match std::env::var("DONMAI_BENCH_STEPS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("DONMAI_BENCH_STEPS: `{n}` is not a step count"))
            })
            .collect(),
        Err(_) => SIZES.to_vec(),
    }
}

/// The allocator the `donmaic` binary uses, so the bench measures the same.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A scratch folder removed when the bench ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What `donmaic check --allow too-many-roots -j 1 FILE` does, minus printing.
fn check_end_to_end(path: &Path) -> String {
    let options = CheckOptions {
        paths: vec![path.to_path_buf()],
        lint_levels: vec![(Code::TOO_MANY_ROOTS, LintLevel::Allow)],
        threads: NonZeroUsize::new(1),
        ..CheckOptions::default()
    };
    let run = run_check(&options, &check_file);
    assert_eq!(run.report.files_checked, 1, "{:?}", run.report.failures);
    render(&run.report, Format::Human, &RenderOptions::default())
}

fn bench_check(c: &mut Criterion) {
    let scratch =
        Scratch(std::env::temp_dir().join(format!("donmai-bench-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).expect("create the scratch folder");

    let mut group = c.benchmark_group("check");
    // One run of the largest file takes a noticeable fraction of a second:
    // flat sampling keeps the bench to a few seconds per size.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(6));
    for steps in sizes() {
        let text = donmai_workflow(steps);
        let path = scratch.0.join(format!("steps-{steps}.yaml"));
        std::fs::write(&path, &text).expect("write the workflow");
        let output = check_end_to_end(&path);
        if steps <= MAX_STEPS {
            assert!(
                output.contains("no problems"),
                "the generated workflow must check clean:\n{output}"
            );
        } else {
            assert!(
                output.contains(&format!("the limit is {MAX_STEPS}")),
                "a level beyond the limit is reported:\n{output}"
            );
        }
        group.throughput(Throughput::Elements(line_count(&text) as u64));
        group.bench_with_input(BenchmarkId::new("steps", steps), &path, |b, path| {
            b.iter(|| check_end_to_end(black_box(path)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
