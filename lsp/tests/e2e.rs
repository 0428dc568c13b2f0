//! Runs the end-to-end tests in `tests/e2e/` against the real `donmai-lsp`
//! binary with an independent client: pygls through pytest-lsp, installed
//! from PyPI into a private virtualenv under the target directory (pinned
//! in `tests/e2e/requirements.txt`; created once, rebuilt when the pins
//! change).

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> String {
    std::env::var("DONMAI_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn run(command: &mut Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("{what}: cannot start {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A virtualenv with the pinned client; the pins file is copied into it
/// last, so a half-made environment is never taken for a finished one.
fn virtualenv(e2e: &Path) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lsp-e2e-venv");
    let pins = std::fs::read_to_string(e2e.join("requirements.txt")).expect("requirements.txt");
    let stamp = venv.join("requirements.installed");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(pins.as_str()) {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new(python()).args(["-m", "venv"]).arg(&venv),
        "creating the test virtualenv",
    );
    run(
        Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(e2e.join("requirements.txt")),
        "installing the LSP test client from PyPI",
    );
    std::fs::write(&stamp, pins).expect("write the virtualenv stamp");
    venv
}

/// `donmaic`, beside `donmai-lsp` in the target directory: the tests
/// compare the editor's diagnostics with the command line's.
fn donmaic(lsp: &Path) -> PathBuf {
    let path = lsp.with_file_name(format!("donmaic{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        run(
            Command::new(cargo).args([
                "build",
                "--quiet",
                "-p",
                "donmai-compiler",
                "--bin",
                "donmaic",
            ]),
            "building donmaic",
        );
    }
    path
}

#[test]
fn language_server_end_to_end() {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    let venv = virtualenv(&e2e);
    let lsp = PathBuf::from(env!("CARGO_BIN_EXE_donmai-lsp"));
    let mut pytest = Command::new(venv.join("bin/python"));
    pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--color=no"])
        .arg(&e2e)
        .current_dir(&e2e)
        .env("DONMAI_LSP", &lsp)
        .env("DONMAIC", donmaic(&lsp));
    if let Ok(filter) = std::env::var("DONMAI_LSP_E2E") {
        pytest.args(["-k", &filter]);
    }
    run(&mut pytest, "the end-to-end tests (tests/e2e)");
}
