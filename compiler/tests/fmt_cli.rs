//! End-to-end tests of `donmaic fmt` and `donmaic migrate`: what is
//! written, what is only reported, exit statuses, standard input, and the
//! files that are refused and left alone.

mod tree;
use tree::Tree;

const MESSY: &str = "apiVersion: workflow/v2\nkind:   WorkflowDefinition\nmetadata:\n    name: demo   # the name\n    version: \"1\"\nrequires: [{plugin: donmai@2}]\ntriggers: [{id: go, kind: manual}]\nspec:\n    steps:\n    - {id: start, type: trigger, config: {triggerId: go}, next: [work]}\n    - id: work\n      type: action\n      config: {action: \"donmai@2:agent.dispatch_to_queue\",\n               workType: qa}\n";

const TIDY: &str = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata:\n  name: demo # the name\n  version: \"1\"\nrequires: [{plugin: donmai@2}]\ntriggers: [{id: go, kind: manual}]\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: go}, next: [work]}\n    - id: work\n      type: action\n      config:\n        action: \"donmai@2:agent.dispatch_to_queue\"\n        workType: qa\n";

const V1: &str = "# an old one\napiVersion: workflow/v1\nkind: WorkflowDefinition\nmetadata: {name: old, version: \"1\"}\nrequires: [{plugin: donmai@1}]\ntriggers: [{id: go, kind: manual, config: {inputs: {scope: string}}}]\nspec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: go}, next: [work]}\n    - id: work\n      type: action\n      config:\n        action: \"donmai@1:agent.dispatch_to_queue\"\n        workType: qa\n        scope: ${trigger.data.scope}   # from the trigger\n";

#[test]
fn fmt_rewrites_workflows_and_skips_other_yaml() {
    let tree = Tree::new("rewrite");
    tree.write("flows/a.yaml", MESSY);
    tree.write("flows/b.yaml", TIDY);
    tree.write("flows/other.yaml", "kind:    Something\n");
    let run = tree.run(&["fmt"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert_eq!(tree.read("flows/a.yaml"), TIDY);
    assert_eq!(tree.read("flows/b.yaml"), TIDY);
    assert_eq!(tree.read("flows/other.yaml"), "kind:    Something\n");
    assert!(
        run.stderr.contains("reformatted flows/a.yaml\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("reformatted 1 of 2 files"),
        "{}",
        run.stderr
    );
    // A file named on the command line is formatted whatever it holds.
    let run = tree.run(&["fmt", "flows/other.yaml"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(tree.read("flows/other.yaml"), "kind: Something\n");
    // Nothing left to do.
    let run = tree.run(&["fmt", "--check"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), ""),
        "{}",
        run.stderr
    );
}

#[test]
fn fmt_check_and_diff_write_nothing() {
    let tree = Tree::new("check");
    tree.write("a.yaml", MESSY);
    tree.write("b.yaml", TIDY);
    let run = tree.run(&["fmt", "--check", "."]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.stdout, "a.yaml\n");
    assert!(
        run.stderr.contains("1 of 2 files would be reformatted"),
        "{}",
        run.stderr
    );
    let run = tree.run(&["fmt", "--diff"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("--- a/a.yaml\n+++ b/a.yaml\n@@"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\n-kind:   WorkflowDefinition\n+kind: WorkflowDefinition\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        tree.read("a.yaml"),
        MESSY,
        "--check and --diff write nothing"
    );
    let run = tree.run(&["fmt", "--check", "--diff"]);
    assert_eq!(run.code, Some(2), "the two modes exclude each other");
}

#[test]
fn invalid_yaml_is_refused_with_its_position_and_left_alone() {
    let tree = Tree::new("invalid");
    let broken = "apiVersion: workflow/v2\nmetadata: {name: x\nspec:   1\n";
    tree.write("broken.yaml", broken);
    tree.write("dup.yaml", "apiVersion: workflow/v2\nkind: a\nkind: b\n");
    tree.write("ok.yaml", MESSY);
    let run = tree.run(&["fmt"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: broken.yaml:3:5: not formatted: the YAML has an error"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "error: dup.yaml:3:1: not formatted: the YAML has an error: duplicate key `kind`"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(tree.read("broken.yaml"), broken);
    assert_eq!(
        tree.read("ok.yaml"),
        TIDY,
        "the other files are still formatted"
    );
    let run = tree.run(&["fmt", "--check", "broken.yaml"]);
    assert_eq!(run.code, Some(2));
}

#[test]
fn io_and_usage_errors_exit_2() {
    let tree = Tree::new("io");
    tree.write("a.yaml", TIDY);
    tree.write("latin1.yaml", b"apiVersion: workflow/v2\nname: caf\xe9\n");
    let run = tree.run(&["fmt", "missing.yaml", "a.yaml"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("error: missing.yaml: no such file or directory"),
        "{}",
        run.stderr
    );
    let run = tree.run(&["fmt", "latin1.yaml"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .contains("not valid UTF-8 (invalid byte at offset 33)"),
        "{}",
        run.stderr
    );
    let run = tree.run(&["fmt", "-", "a.yaml"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("cannot be combined"), "{}", run.stderr);
}

#[test]
fn standard_input_goes_to_standard_output() {
    let tree = Tree::new("stdin");
    let run = tree.run_with_input(&["fmt", "-"], MESSY);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), TIDY),
        "{}",
        run.stderr
    );
    let run = tree.run_with_input(&["fmt", "--check", "-"], MESSY);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), "<stdin>\n"));
    let run = tree.run_with_input(&["fmt", "--check", "-"], TIDY);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), ""));
    let run = tree.run_with_input(&["fmt", "--diff", "-"], MESSY);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.starts_with("--- a/<stdin>\n"), "{}", run.stdout);
    let run = tree.run_with_input(&["fmt", "-"], "a: [1,\n");
    assert_eq!((run.code, run.stdout.as_str()), (Some(2), ""));
    assert!(
        run.stderr.starts_with("error: <stdin>:2:1: not formatted"),
        "{}",
        run.stderr
    );
    let run = tree.run_with_input(&["migrate", "-"], V1);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("apiVersion: workflow/v2\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn line_breaks_and_permissions_are_kept() {
    let tree = Tree::new("crlf");
    let path = tree.write("w.yaml", MESSY.replace('\n', "\r\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    }
    let run = tree.run(&["fmt", "w.yaml"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(tree.read("w.yaml"), TIDY.replace('\n', "\r\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
    let leftovers = std::fs::read_dir(&tree.root).expect("list").count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_stays_a_link() {
    let tree = Tree::new("symlink");
    tree.write("real/w.yaml", MESSY);
    std::os::unix::fs::symlink("real/w.yaml", tree.root.join("link.yaml")).expect("symlink");
    let run = tree.run(&["fmt", "link.yaml"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let link = std::fs::symlink_metadata(tree.root.join("link.yaml")).expect("lstat");
    assert!(link.file_type().is_symlink());
    assert_eq!(tree.read("real/w.yaml"), TIDY);
}

#[test]
fn migrate_rewrites_v1_files_only() {
    let tree = Tree::new("migrate");
    tree.write("old.yaml", V1);
    tree.write("new.yaml", TIDY);
    let run = tree.run(&["migrate", "--check"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(1), "old.yaml\n"),
        "{}",
        run.stderr
    );
    let run = tree.run(&["migrate", "--diff"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout
            .contains("-apiVersion: workflow/v1\n+apiVersion: workflow/v2\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("+        scope: \"{{trigger.scope}}\"   # from the trigger\n"),
        "{}",
        run.stdout
    );
    assert_eq!(tree.read("old.yaml"), V1);
    let run = tree.run(&["migrate"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("migrated old.yaml: apiVersion workflow/v1 → workflow/v2, `trigger.data.…` → `trigger.…`, `${ … }` → `{{ … }}`\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("migrated 1 of 2 files to workflow/v2"),
        "{}",
        run.stderr
    );
    assert_eq!(tree.read("new.yaml"), TIDY);
    let migrated = tree.read("old.yaml");
    assert!(
        migrated.starts_with("# an old one\napiVersion: workflow/v2\n"),
        "{migrated}"
    );
    // The result checks clean, and there is nothing left to migrate.
    let run = tree.run(&["check", "old.yaml"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let run = tree.run(&["migrate", "--check"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), ""));
}

#[test]
fn migrate_refuses_what_it_cannot_read() {
    let tree = Tree::new("migrate-refused");
    tree.write("v3.yaml", TIDY.replace("workflow/v2", "workflow/v3"));
    tree.write("plain.yaml", "name: not a workflow\n");
    let run = tree.run(&["migrate", "v3.yaml", "plain.yaml"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: v3.yaml:1:13: `apiVersion: workflow/v3` is not workflow/v1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("error: plain.yaml:1:1: not a workflow: there is no `apiVersion`"),
        "{}",
        run.stderr
    );
}
