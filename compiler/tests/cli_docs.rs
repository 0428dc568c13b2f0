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
    run_examples("docs/cli.md", 4);
}

#[test]
fn plugin_guide_examples_print_what_they_show() {
    run_examples("docs/plugins.md", 3);
}

/// The ```` ```yaml ```` blocks a `<!-- file: PATH -->` line introduces
/// are that file of the repository, byte for byte.
#[test]
fn plugin_guide_shows_the_example_files_as_they_are() {
    let text = std::fs::read_to_string(root().join("docs/plugins.md")).expect("read");
    let mut lines = text.lines();
    let mut shown = 0;
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- file: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```yaml"),
            "{path}: a yaml block follows"
        );
        let mut block = String::new();
        for line in lines.by_ref() {
            if line == "```" {
                break;
            }
            block.push_str(line);
            block.push('\n');
        }
        let file = std::fs::read_to_string(root().join(path)).expect(path);
        assert_eq!(block, file, "docs/plugins.md shows {path} as it is");
        shown += 1;
    }
    assert!(shown >= 1);
}

fn run_examples(doc: &str, at_least: usize) {
    let text = std::fs::read_to_string(root().join(doc)).expect("read the doc");
    let examples = examples(&text);
    assert!(
        examples.len() >= at_least,
        "found only {} examples in {doc}",
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
