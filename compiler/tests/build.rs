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

/// A scratch folder with a copy of the examples.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("donmaic-build-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&root().join("examples"), &dir.join("examples"));
        Scratch(dir)
    }

    fn path(&self, relative: &str) -> String {
        self.0
            .join(relative)
            .to_str()
            .expect("UTF-8 path")
            .to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn build(workflow: &str, output: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["build", workflow, "-o", output];
    args.extend_from_slice(extra);
    let run = donmaic(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(output).expect("plan written")
}

#[test]
fn plans_are_deterministic_and_independent_of_the_folder() {
    let one = Scratch::new("one");
    let two = Scratch::new("two");
    for example in ["pr-preview-qa", "linear-dev-loop", "inbound-router"] {
        let workflow = format!("examples/{example}.yaml");
        let first = build(&one.path(&workflow), &one.path("a.dplan"), &[]);
        let again = build(&one.path(&workflow), &one.path("b.dplan"), &[]);
        assert_eq!(first, again, "{example}: two builds differ");
        let elsewhere = build(&two.path(&workflow), &two.path("a.dplan"), &[]);
        assert_eq!(first, elsewhere, "{example}: the folder changed the plan");
        let text = String::from_utf8_lossy(&first);
        assert!(
            !text.contains(std::env::temp_dir().to_str().expect("UTF-8")),
            "{example}: an absolute path is in the plan"
        );
    }
}

#[test]
fn a_changed_workflow_changes_the_plan_id() {
    let scratch = Scratch::new("changed");
    let workflow = scratch.path("examples/linear-dev-loop.yaml");
    let before = build(&workflow, &scratch.path("a.dplan"), &[]);
    let text = std::fs::read_to_string(&workflow).expect("read");
    std::fs::write(&workflow, text.replace("Accepted", "Done")).expect("write");
    let after = build(&workflow, &scratch.path("b.dplan"), &[]);
    assert_ne!(before[before.len() - 32..], after[after.len() - 32..]);
}

#[test]
fn build_writes_beside_the_workflow_by_default_and_refuses_errors() {
    let scratch = Scratch::new("default");
    let run = donmaic(&["build", &scratch.path("examples/pr-preview-qa.yaml")]);
    assert!(run.status.success());
    assert!(Path::new(&scratch.path("examples/pr-preview-qa.dplan")).is_file());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("built "), "{stderr}");

    let broken = scratch.path("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: b}\nspec:\n  steps:\n    - {id: a, type: action, config: {action: \"core@1:core.nope\"}}\n",
    )
    .expect("write");
    let run = donmaic(&["build", &broken]);
    assert_eq!(run.status.code(), Some(1));
    assert!(!Path::new(&scratch.path("broken.dplan")).exists());
}

#[test]
fn disasm_lists_every_section_with_source_positions() {
    let scratch = Scratch::new("disasm");
    let plan = scratch.path("examples/linear-dev-loop.dplan");
    build(&scratch.path("examples/linear-dev-loop.yaml"), &plan, &[]);
    let run = donmaic(&["disasm", &plan]);
    assert!(run.status.success());
    insta::assert_snapshot!("disasm-linear-dev-loop", stdout(&run));
    let run = donmaic(&["disasm", &plan, "--format", "json"]);
    let document: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    assert_eq!(document["verified"], true);
    assert_eq!(document["levels"][0]["steps"][1]["id"], "allowed");
    assert_eq!(
        document["exprs"][0]["code"][0]["at"],
        "linear-dev-loop.yaml:15:78"
    );

    // A plan away from its sources shows byte ranges, never a wrong line.
    let moved = scratch.path("moved.dplan");
    std::fs::copy(&plan, &moved).expect("copy");
    let listing = stdout(&donmaic(&["disasm", &moved]));
    assert!(listing.contains("linear-dev-loop.yaml@"), "{listing}");
    assert!(listing.contains("(not found or changed)"));
}

#[test]
fn disasm_refuses_what_is_not_a_plan_and_flags_what_does_not_verify() {
    let scratch = Scratch::new("notplan");
    let run = donmaic(&["disasm", &scratch.path("examples/pr-preview-qa.yaml")]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("magic"));
    let plan = scratch.path("p.dplan");
    let mut bytes = build(&scratch.path("examples/pr-preview-qa.yaml"), &plan, &[]);
    let last = bytes.len() - 40;
    bytes[last] ^= 1;
    std::fs::write(&plan, &bytes).expect("write");
    let run = donmaic(&["disasm", &plan]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("hash"));
}

#[test]
fn signed_builds_name_their_key_and_refuse_exposed_keys() {
    let scratch = Scratch::new("signed");
    let key = scratch.path("key.pem");
    let generated = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", &key])
        .output();
    let Ok(generated) = generated else {
        eprintln!("openssl is not installed: skipping");
        return;
    };
    assert!(generated.status.success());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let plan = scratch.path("s.dplan");
    let run = donmaic(&[
        "build",
        &scratch.path("examples/linear-dev-loop.yaml"),
        "-o",
        &plan,
        "--sign-key",
        &key,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("signed by key "));
    assert!(stdout(&donmaic(&["disasm", &plan])).contains("signed by key "));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let run = donmaic(&[
        "build",
        &scratch.path("examples/linear-dev-loop.yaml"),
        "-o",
        &plan,
        "--sign-key",
        &key,
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("chmod 600"));
}
