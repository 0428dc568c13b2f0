//! `donmaic check` end to end on one file, many times in one process, with
//! the allocator `donmaic` uses: `check_loop FILE [RUNS]` prints the fastest
//! and the median run. For quick A/B comparisons on a shared machine, where
//! the fastest of many short runs is steadier than a mean.

#[path = "check_loop/run.rs"]
mod run;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    run::main()
}
