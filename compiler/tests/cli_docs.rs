//! The examples of `docs/cli.md` are run: each `$ donmaic …` line in a
//! ```` ```sh ```` block runs from the repository root through `sh`, with
//! the `donmaic` under test first on `PATH`, and its standard output must
//! equal the lines that follow it (up to the next `$` line or the end of the
//! block). So the reference cannot drift from the behaviour.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `(command, expected stdout)` for every example of a markdown file.
fn examples(markdown: &str) -> Vec<(String, String)> {
    let mut examples: Vec<(String, String)> = Vec::new();
    let mut in_shell = false;
    for line in markdown.lines() {
        if !in_shell {
            in_shell = line.trim_end() == "```sh";
            continue;
        }
        if line.starts_with("```") {
            in_shell = false;
        } else if let Some(command) = line.strip_prefix("$ ") {
            examples.push((command.to_string(), String::new()));
        } else if let Some((_, expected)) = examples.last_mut() {
            expected.push_str(line);
            expected.push('\n');
        }
    }
    examples
}

#[test]
fn cli_reference_examples_print_what_they_show() {
    let text = std::fs::read_to_string(root().join("docs/cli.md")).expect("read docs/cli.md");
    let examples = examples(&text);
    assert!(
        examples.len() >= 4,
        "found only {} examples",
        examples.len()
    );
    let binary = Path::new(env!("CARGO_BIN_EXE_donmaic"));
    let path = format!(
        "{}:{}",
        binary.parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    for (command, expected) in &examples {
        assert!(
            command.starts_with("donmaic "),
            "not a donmaic example: {command}"
        );
        let output = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(root())
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .expect("run sh");
        let actual = String::from_utf8_lossy(&output.stdout);
        if actual != *expected {
            failures.push(format!(
                "$ {command}\n--- documented\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
