//! End-to-end tests of the `donmaic` binary: exit codes, formats, discovery,
//! suppression accounting, fixes and `explain`.

mod tree;
use std::path::Path;
use tree::{Run, Tree, donmaic};

const WORKFLOW: &str = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata:\n  name: demo\n  version: \"1\"\nrequires: [{plugin: donmai@2}]\ntriggers: [{id: go, kind: manual}]\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: go}, next: [work]}\n    - {id: work, type: action, config: {action: \"donmai@2:agent.dispatch_to_queue\", workType: qa}}\n";

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout))
}

#[test]
fn clean_folder_exits_zero() {
    let tree = Tree::new("clean");
    tree.write("a.yaml", WORKFLOW);
    tree.write("flows/b.yml", WORKFLOW);
    tree.write("flows/other.yaml", "kind: Something\n");
    tree.write("target/c.yaml", WORKFLOW);
    let run = tree.run(&["check"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "checked 2 files: no problems\n");
    assert!(
        !run.stdout.contains('\x1b'),
        "no colour when not a terminal"
    );
}

#[test]
fn empty_folder_is_clean_with_a_note() {
    let tree = Tree::new("empty");
    let run = tree.run(&["check", "."]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout, "checked 0 files: no problems\n");
    assert!(run.stderr.contains("no workflow files found"));
}

#[test]
fn missing_path_exits_two() {
    let tree = Tree::new("missing");
    tree.write("a.yaml", WORKFLOW);
    let run = tree.run(&["check", "nope.yaml", "a.yaml"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("error: nope.yaml: no such file or directory"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("checked 1 file"),
        "the other paths are still checked"
    );
}

#[test]
fn non_utf8_file_exits_two() {
    let tree = Tree::new("utf8");
    tree.write("bad.yaml", b"apiVersion: workflow/v2\nname: \xfe\n");
    let run = tree.run(&["check", "--format", "json"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("bad.yaml: not valid UTF-8"),
        "{}",
        run.stderr
    );
    assert_eq!(json(&run)["summary"]["files"], 0);
}

#[test]
fn usage_errors_exit_two() {
    let tree = Tree::new("usage");
    for args in [
        &["check", "--format", "xml"][..],
        &["check", "--fix", "--diff"],
        &["check", "--allow", "cycle"],
        &["check", "--deny", "no-such-lint"],
        &["frobnicate"],
        &["explain"],
    ] {
        let run = tree.run(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.is_empty(), "{args:?} explains itself");
    }
    assert!(
        tree.run(&["check", "--allow", "cycle"])
            .stderr
            .contains("is an error")
    );
}

#[test]
fn json_sarif_and_github_formats_on_a_clean_run() {
    let tree = Tree::new("formats");
    tree.write("a.yaml", WORKFLOW);
    let run = tree.run(&["check", "--format", "json"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(
        json(&run),
        serde_json::json!({"diagnostics": [], "summary": {"files": 1, "errors": 0, "warnings": 0}})
    );
    let run = tree.run(&["check", "--format", "sarif"]);
    assert_eq!(run.code, Some(0));
    let log = json(&run);
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"][0]["tool"]["driver"]["name"], "donmaic");
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
    let run = tree.run(&["check", "--format", "github"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout, "");
}

#[test]
fn project_file_problems_are_positioned_and_fail() {
    let tree = Tree::new("toml");
    tree.write("donmai.toml", "[integrations]\nenabeld = [\"linear\"]\n");
    tree.write("flows/a.yaml", WORKFLOW);
    let run = tree.run(&["check", "flows", "--format", "json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let document = json(&run);
    let diagnostic = &document["diagnostics"][0];
    assert_eq!(diagnostic["code"], "DN0014");
    assert_eq!(diagnostic["file"], "donmai.toml");
    assert_eq!(
        (diagnostic["line"].as_u64(), diagnostic["column"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(diagnostic["help"], "did you mean `enabled`?");
    assert_eq!(document["summary"]["files"], 1);
}

#[test]
fn unused_suppression_warns_and_deny_warnings_fails() {
    let tree = Tree::new("suppress");
    tree.write(
        "a.yaml",
        WORKFLOW.replace("spec:\n", "# donmai-ignore: unused-output\nspec:\n"),
    );
    let run = tree.run(&["check"]);
    assert_eq!(run.code, Some(0), "warnings alone pass");
    assert!(
        run.stdout
            .starts_with("warning[DN0203]: `donmai-ignore: unused-output` silences nothing"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with("1 warning in 1 file\n"));
    let run = tree.run(&["check", "--deny", "warnings"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout
            .ends_with("1 warning in 1 file (warnings are denied)\n")
    );
    let run = tree.run(&["check", "--deny", "unused-suppression", "--format", "json"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(json(&run)["diagnostics"][0]["severity"], "error");
    let run = tree.run(&["check", "--allow", "DN0203"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(run.stdout, "checked 1 file: no problems\n");
}

#[test]
fn diff_shows_fixes_and_fix_applies_them() {
    let tree = Tree::new("fix");
    let original = WORKFLOW.replace("spec:\n", "spec: # donmai-ignore: DN0202\n");
    tree.write("a.yaml", &original);
    let run = tree.run(&["check", "--diff"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "--- a/a.yaml\n+++ b/a.yaml\n@@ -5,7 +5,7 @@\n   version: \"1\"\n requires: [{plugin: donmai@2}]\n triggers: [{id: go, kind: manual}]\n-spec: # donmai-ignore: DN0202\n+spec:\n   steps:\n     - {id: start, type: trigger, config: {triggerId: go}, next: [work]}\n     - {id: work, type: action, config: {action: \"donmai@2:agent.dispatch_to_queue\", workType: qa}}\n"
    );
    assert!(
        run.stderr.contains("1 fix in 1 file would be applied"),
        "{}",
        run.stderr
    );
    assert_eq!(tree.read("a.yaml"), original, "--diff changes nothing");

    let run = tree.run(&["check", "--fix"]);
    assert_eq!(run.code, Some(0));
    assert!(run.stderr.contains("applied 1 fix in 1 file"));
    assert_eq!(run.stdout, "checked 1 file: no problems\n");
    assert_eq!(tree.read("a.yaml"), WORKFLOW);
}

#[test]
fn color_is_opt_in_off_a_terminal() {
    let tree = Tree::new("color");
    tree.write(
        "a.yaml",
        WORKFLOW.replace("spec:\n", "# donmai-ignore: DN0202\nspec:\n"),
    );
    assert!(
        tree.run(&["check", "--color", "always"])
            .stdout
            .contains('\x1b')
    );
    assert!(
        !tree
            .run(&["check", "--color", "never"])
            .stdout
            .contains('\x1b')
    );
    assert!(!tree.run(&["check"]).stdout.contains('\x1b'));
}

#[test]
fn explain_accepts_codes_and_names() {
    let tree = Tree::new("explain");
    for query in ["DN0002", "dn2", "2", "duplicate-key"] {
        let run = tree.run(&["explain", query]);
        assert_eq!(run.code, Some(0), "{query}");
        assert!(
            run.stdout.starts_with("# DN0002: duplicate-key\n"),
            "{query}"
        );
    }
    let run = tree.run(&["explain", "duplicate-kye"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("did you mean `duplicate-key`?"));
    let run = tree.run(&["explain", "--list"]);
    assert_eq!(run.code, Some(0));
    assert_eq!(
        run.stdout.lines().count(),
        donmai_grammar::codes::CATALOG.len()
    );
}

#[test]
fn version_and_help() {
    let tree = Tree::new("help");
    let run = tree.run(&["--version"]);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.starts_with("donmaic "));
    let run = tree.run(&["check", "--help"]);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.contains("--deny <CODE>"));
}

#[test]
fn eval_prints_typed_json_and_errors() {
    let dir = std::env::temp_dir();
    let run = donmaic(&dir, &["eval", "1 + 2", "--format", "json"], None);
    assert_eq!(run.code, Some(0));
    assert_eq!(json(&run), serde_json::json!({"type": "int", "value": 3}));

    let run = donmaic(
        &dir,
        &[
            "eval",
            "trigger.n * 2.5",
            "--vars",
            r#"{"trigger": {"n": 2.0}}"#,
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(
        json(&run),
        serde_json::json!({"type": "double", "value": 5.0})
    );

    let run = donmaic(
        &dir,
        &["eval", "[1.0/0.0, -1.0/0.0]", "--format", "json"],
        None,
    );
    assert_eq!(
        json(&run)["value"],
        serde_json::json!(["Infinity", "-Infinity"])
    );

    let run = donmaic(&dir, &["eval", "duration('90m')", "--format", "json"], None);
    assert_eq!(
        json(&run),
        serde_json::json!({"type": "duration", "value": "5400s"})
    );

    let run = donmaic(&dir, &["eval", "1 / 0", "--format", "json"], None);
    assert_eq!(run.code, Some(1));
    assert_eq!(json(&run)["error"]["code"], "division_by_zero");

    let run = donmaic(&dir, &["eval", "1 +"], None);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.starts_with("error[syntax]:"), "{}", run.stderr);

    let run = donmaic(&dir, &["eval", "x", "--vars", "[1]"], None);
    assert_eq!(run.code, Some(2));
}

#[test]
fn examples_and_corpus_through_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run = donmaic(&root, &["check", "examples"], None);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "checked 7 files: no problems\n");

    let run = donmaic(
        &root,
        &["check", "tests/corpus/err", "--format", "json"],
        None,
    );
    assert_eq!(run.code, Some(1));
    let document = json(&run);
    let diagnostics = document["diagnostics"].as_array().expect("diagnostics");
    assert!(diagnostics.len() > 50);
    for d in diagnostics {
        for key in [
            "code",
            "severity",
            "file",
            "line",
            "column",
            "endLine",
            "endColumn",
            "message",
            "help",
        ] {
            assert!(d.get(key).is_some(), "missing {key} in {d}");
        }
    }
    assert!(document["summary"]["errors"].as_u64().unwrap_or(0) > 40);
}
