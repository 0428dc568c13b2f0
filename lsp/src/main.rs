//! The `donmai-lsp` binary: the language server over stdio.

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
donmai-lsp: the donmai language server (LSP 3.17 over stdio)

Usage: donmai-lsp [--stdio]

Editors start it and talk to it on standard input and output; see
docs/editors.md for VS Code, Neovim, Helix and Zed.

Options:
  --stdio      accepted for clients that always pass it (stdio is the only transport)
  -h, --help   print this help
  -V, --version
";

fn main() -> ExitCode {
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--stdio" => {}
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("donmai-lsp {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("donmai-lsp: unknown argument `{other}`\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("donmai-lsp: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(donmai_lsp::serve(tokio::io::stdin(), tokio::io::stdout()));
    match served {
        Ok(true) => ExitCode::SUCCESS,
        // `exit` without `shutdown`, or the client went away: the protocol
        // asks for status 1.
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("donmai-lsp: {error}");
            ExitCode::FAILURE
        }
    }
}
