//! [`check_loop`](check_loop.rs) with the system allocator, whose heap a
//! profiler such as valgrind's massif sees (mimalloc maps its own memory):
//! `valgrind --tool=massif target/release/examples/check_loop_system FILE 1`.

#[path = "check_loop/run.rs"]
mod run;

fn main() -> std::process::ExitCode {
    run::main()
}
