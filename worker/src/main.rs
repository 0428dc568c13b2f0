use clap::Parser;
use donmai_worker::cli::{AuditCommand, Cli, Command};
use donmai_worker::{audit, commands, run};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

// Plans, values and events are many small allocations; mimalloc is what the
// compiler uses too (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The first SIGINT or SIGTERM sets the flag `run` polls between
/// transitions; a second one ends the process at once (status 130), for a
/// user who does not want to wait for a slow verb call to return.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for signals that cannot be caught; these
        // two can, so a failure leaves the default (immediate exit), which
        // is safe: every committed transition is durable.
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, flag.clone());
        let _ = signal_hook::flag::register(signal, flag.clone());
    }
    flag
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Run(args) => run::run_command(args, interrupt_flag()),
        Command::Signal(args) => commands::signal_command(args),
        Command::Runs(args) => commands::runs_command(args),
        Command::Cancel(args) => commands::cancel_command(args),
        Command::Audit(args) => match &args.command {
            AuditCommand::Verify(args) => audit::verify_command(args),
            AuditCommand::Export(args) => audit::export_command(args),
        },
    }
}
