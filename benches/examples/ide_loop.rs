//! The editor analysis on generated workflows: what building an
//! [`Analysis`] costs over plain checking, and the latency of completion and
//! hover requests, as the language server will issue them.
//!
//! `ide_loop [STEPS...] [--runs N]` (defaults: 100 1000 5000 steps, 30
//! runs). For each size it prints the median and worst of `check_source`
//! and `Analysis::new`, then completion latency at every `nodes.`, every
//! `action:` value, every key position after a typed character, and hover
//! latency on every expression and step id: median, p99 and worst. Times
//! are the thread's CPU time.

use donmai_bench::donmai_workflow;
use donmai_compiler::check::{GroupCache, check_source};
use donmai_compiler::ide::analysis::Analysis;
use donmai_compiler::ide::complete::complete;
use donmai_compiler::ide::hover::hover;
use donmai_compiler::project::Project;
use donmai_grammar::SourceFile;
use donmai_stdlib::registry::Registry;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Stats {
    samples: Vec<f64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            samples: Vec::new(),
        }
    }

    /// Times `f` on the thread's CPU clock: on a shared machine, wall time
    /// mostly measures the other processes.
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let started = thread_cpu_ms();
        let out = f();
        self.samples.push(thread_cpu_ms() - started);
        out
    }

    fn line(&mut self, what: &str) -> String {
        self.samples.sort_by(f64::total_cmp);
        let n = self.samples.len();
        if n == 0 {
            return format!("{what}: no samples");
        }
        let at = |q: f64| self.samples[((n as f64 * q) as usize).min(n - 1)];
        format!(
            "{what}: n={n} median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            at(0.5),
            at(0.99),
            self.samples[n - 1]
        )
    }
}

/// CPU time this thread has used, in milliseconds.
fn thread_cpu_ms() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the call.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime");
    now.tv_sec as f64 * 1e3 + now.tv_nsec as f64 / 1e6
}

fn main() {
    let mut sizes = Vec::new();
    let mut runs = 30;
    // `--only check` or `--only analysis`: just that, `runs` times, for
    // counting instructions (`perf stat`, cachegrind) one at a time.
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(runs);
        } else if arg == "--only" {
            only = args.next();
        } else if let Ok(n) = arg.replace('_', "").parse() {
            sizes.push(n);
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1_000, 5_000];
    }
    let project = Project::default_for_tests();
    let registry = Registry::bundled();
    for steps in sizes {
        let text = donmai_workflow(steps);
        let path = std::env::temp_dir().join(format!("ide-loop-{steps}.yaml"));
        let file = SourceFile::new(&path, text.as_str());
        println!("{steps} steps, {} lines", text.lines().count());
        match only.as_deref() {
            Some("check") => {
                for _ in 0..runs {
                    std::hint::black_box(check_source(
                        &file,
                        &project,
                        registry,
                        &GroupCache::default(),
                    ));
                }
                continue;
            }
            Some("analysis") => {
                for _ in 0..runs {
                    std::hint::black_box(Analysis::new(
                        &file,
                        &project,
                        registry,
                        &GroupCache::default(),
                    ));
                }
                continue;
            }
            _ => {}
        }

        let mut check = Stats::new();
        let mut analyse = Stats::new();
        for _ in 0..runs {
            check.time(|| check_source(&file, &project, registry, &GroupCache::default()));
            analyse.time(|| Analysis::new(&file, &project, registry, &GroupCache::default()));
        }
        println!("  {}", check.line("check_source  "));
        println!("  {}", analyse.line("Analysis::new "));

        let analysis = Analysis::new(&file, &project, registry, &GroupCache::default());
        // Member completion right after every `nodes.`, on text with the
        // dot just typed (the analysis has not seen it).
        let mut members = Stats::new();
        let mut count = 0usize;
        for (at, _) in text.match_indices("nodes.") {
            let offset = at + "nodes.".len();
            members.time(|| {
                count += complete(&analysis, &text, offset).len();
            });
        }
        println!("  {} ({count} items)", members.line("complete nodes.<…>"));
        // Verb values.
        let mut verbs = Stats::new();
        for (at, _) in text.match_indices("action: ") {
            let offset = at + "action: ".len();
            verbs.time(|| complete(&analysis, &text, offset));
        }
        println!("  {}", verbs.line("complete action:  "));
        // A key being typed on a new line in a step's config, one
        // character ahead of the analysis.
        let mut keys = Stats::new();
        let sample: Vec<usize> = text
            .match_indices("\n      config:\n")
            .map(|(at, _)| at + "\n      config:\n".len())
            .step_by(4)
            .collect();
        for offset in sample {
            let edited = format!("{}        w\n{}", &text[..offset], &text[offset..]);
            let cursor = offset + "        w".len();
            keys.time(|| complete(&analysis, &edited, cursor));
        }
        println!("  {}", keys.line("complete config key"));
        // Hover on every expression's last name and every step id.
        let mut hovers = Stats::new();
        let targets: Vec<usize> = text
            .match_indices("output.")
            .map(|(at, _)| at + "output.".len() + 1)
            .chain(
                text.match_indices("- id: ")
                    .map(|(at, _)| at + "- id: ".len() + 1),
            )
            .collect();
        for offset in targets {
            hovers.time(|| hover(&analysis, offset));
        }
        println!("  {}", hovers.line("hover             "));
    }
}
