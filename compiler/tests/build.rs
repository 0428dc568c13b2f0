//! End-to-end tests of the plan commands of `donmaic`: `graph` (and, as they
//! land, `build` and `disasm`), driven through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn donmaic(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_donmaic"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run donmaic")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

#[test]
fn graph_of_each_example_in_both_formats() {
    for example in ["pr-preview-qa", "linear-dev-loop", "inbound-router"] {
        for format in ["mermaid", "dot"] {
            let path = format!("examples/{example}.yaml");
            let output = donmaic(&["graph", &path, "--format", format]);
            assert!(
                output.status.success(),
                "{path} {format}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            insta::assert_snapshot!(format!("graph-{example}-{format}"), stdout(&output));
        }
    }
}

#[test]
fn graph_refuses_a_workflow_with_errors() {
    let dir = std::env::temp_dir().join(format!("donmaic-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: bad}\nspec:\n  steps:\n    - {id: a, type: action, config: {action: \"core@1:core.nope\"}}\n",
    )
    .expect("write");
    let output = donmaic(&["graph", file.to_str().expect("path")]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("error"));
}

#[test]
fn graph_of_a_missing_file_is_a_usage_error() {
    let output = donmaic(&["graph", "no/such/file.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such file"));
}
