//! Hostile inputs through the real `donmaic` binary: huge files, deep
//! nesting, alias bombs, garbage bytes, and file-system oddities. Each run
//! must end by itself within [`TIME_LIMIT`] (the test kills it and fails
//! otherwise) with exit code 1 or 2 (0 where the input is a valid
//! workflow), a message saying what is wrong, and no panic.
//!
//! The big files are 5 MB by default so that a debug build on two cores
//! stays quick; `DONMAI_HOSTILE_MB=50 cargo test --release -p
//! donmai-compiler --test hostile` runs them at 50 MB.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIME_LIMIT: Duration = Duration::from_secs(60);

const HEADER: &str = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: hostile, version: \"1\"}\nrequires: [{plugin: donmai@2}]\ntriggers: [{id: go, kind: manual}]\n";

fn megabytes() -> usize {
    std::env::var("DONMAI_HOSTILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// A scratch folder, removed when the test ends.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let root =
            std::env::temp_dir().join(format!("donmaic-hostile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("mkdir");
        Scratch { root }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn write(&self, relative: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Outcome {
    fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `donmaic args` in `dir`, output going to files (it can be large),
/// and kills it once [`TIME_LIMIT`] has passed.
fn donmaic(scratch: &Scratch, args: &[&str]) -> Outcome {
    let stdout_path = scratch.path(".stdout");
    let stderr_path = scratch.path(".stderr");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_donmaic"))
        .args(args)
        .current_dir(&scratch.root)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start donmaic");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("donmaic {args:?} ran longer than {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let read = |path: &Path| {
        let bytes = std::fs::read(path).expect("read output");
        // Only the ends matter: the middle may be megabytes of diagnostics.
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if text.len() > 20_000 {
            let head = text
                .char_indices()
                .nth(10_000)
                .map_or(text.len(), |(i, _)| i);
            let tail = text
                .char_indices()
                .rev()
                .nth(10_000)
                .map_or(0, |(i, _)| i)
                .max(head);
            format!("{}\n[…]\n{}", &text[..head], &text[tail..])
        } else {
            text
        }
    };
    let outcome = Outcome {
        code: status.code(),
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
        elapsed,
    };
    eprintln!(
        "donmaic {args:?}: exit {:?} in {:?}",
        outcome.code, outcome.elapsed
    );
    outcome
}

/// The run failed with `code`, said `expected`, and did not panic.
fn assert_fails(outcome: &Outcome, code: i32, expected: &str) {
    assert!(
        !outcome.stderr.contains("panicked"),
        "donmaic panicked:\n{}",
        outcome.stderr
    );
    assert_eq!(outcome.code, Some(code), "{}", outcome.output());
    assert!(
        outcome.output().contains(expected),
        "expected {expected:?} in:\n{}",
        outcome.output()
    );
}

/// A deterministic stream of bytes (xorshift64).
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn huge_steps_list_is_refused_past_the_step_limit() {
    let scratch = Scratch::new("steps");
    let target = megabytes() * 1_000_000;
    let mut text = String::with_capacity(target + 200);
    text.push_str(HEADER);
    text.push_str(
        "spec:\n  steps:\n    - {id: start, type: trigger, config: {triggerId: go}, next: [s0]}\n",
    );
    let mut i = 0;
    while text.len() < target {
        text.push_str(&format!(
            "    - {{id: s{i}, type: action, config: {{action: \"donmai@2:agent.dispatch_to_queue\", workType: qa}}, next: [s{}]}}\n",
            i + 1
        ));
        i += 1;
    }
    scratch.write("steps.yaml", &text);
    let outcome = donmaic(&scratch, &["check", "steps.yaml"]);
    assert_fails(&outcome, 1, "steps in one level: the limit is 20000");
}

#[test]
fn huge_scalar_is_read_whole() {
    let scratch = Scratch::new("scalar");
    let blob = "x".repeat(megabytes() * 1_000_000);
    let valid = format!(
        "{}spec:\n  steps:\n    - {{id: start, type: trigger, config: {{triggerId: go}}}}\n",
        HEADER.replace(
            "version: \"1\"}",
            &format!("version: \"1\", description: \"{blob}\"}}")
        )
    );
    scratch.write("valid.yaml", &valid);
    let outcome = donmaic(&scratch, &["check", "valid.yaml"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.output());
    assert!(outcome.stdout.contains("checked 1 file: no problems"));

    // The same scalar never closed.
    scratch.write("open.yaml", format!("{HEADER}spec: \"{blob}\n"));
    let outcome = donmaic(&scratch, &["check", "open.yaml"]);
    assert_fails(&outcome, 1, "error[DN0001]");
}

#[test]
fn a_mapping_with_a_huge_number_of_keys_is_reported_in_linear_time() {
    let scratch = Scratch::new("keys");
    let keys = megabytes() * 20_000;
    let mut text = String::from(HEADER);
    text.push_str("spec:\n  steps:\n    - id: start\n      type: trigger\n      config:\n");
    for k in 0..keys {
        text.push_str(&format!("        k{k}: v\n"));
    }
    text.push_str("        triggerId: go\n");
    scratch.write("keys.yaml", &text);
    for format in ["human", "json"] {
        let outcome = donmaic(&scratch, &["check", "--format", format, "keys.yaml"]);
        assert_fails(&outcome, 1, "k0");
    }
}

#[test]
fn a_minified_one_line_workflow_with_many_errors_gives_bounded_output() {
    let scratch = Scratch::new("oneline");
    let steps: Vec<String> = (0..19_000)
        .map(|i| format!("{{id: s{i}, type: bogus}}"))
        .collect();
    let text = format!(
        "{HEADER}spec: {{steps: [{{id: start, type: trigger, config: {{triggerId: go}}}}, {}]}}\n",
        steps.join(", ")
    );
    scratch.write("oneline.yaml", &text);
    let outcome = donmaic(&scratch, &["check", "oneline.yaml"]);
    assert_fails(&outcome, 1, "19000 errors in 1 file");
    let written = std::fs::metadata(scratch.path(".stdout"))
        .expect("stdout")
        .len();
    // About 300 bytes a diagnostic; drawing the 700 KB line under each one
    // made it 13 GB.
    assert!(written < 20_000_000, "{written} bytes of output");
}

#[test]
fn deep_nesting_stops_at_the_depth_limit() {
    let scratch = Scratch::new("deep");
    let depth = 10_000;
    let mut indented = String::from(HEADER);
    indented.push_str("spec:\n");
    for level in 0..depth {
        indented.push_str(&" ".repeat(level + 1));
        indented.push_str("a:\n");
    }
    let cases = [
        (
            "brackets.yaml",
            format!("{HEADER}spec: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
        ),
        (
            "braces.yaml",
            format!(
                "{HEADER}spec: {}{}\n",
                "{a: ".repeat(depth),
                "}".repeat(depth)
            ),
        ),
        (
            "dashes.yaml",
            format!("{HEADER}spec: \n  {}x\n", "- ".repeat(depth)),
        ),
        (
            "unclosed.yaml",
            format!("{HEADER}spec: {}\n", "[{".repeat(depth)),
        ),
        ("indented.yaml", indented),
    ];
    for (name, text) in cases {
        scratch.write(name, &text);
        let outcome = donmaic(&scratch, &["check", name]);
        assert_fails(&outcome, 1, "error[DN000");
        assert!(
            outcome.stdout.contains("nested more than 128 levels")
                || outcome.stdout.contains("error[DN0001]"),
            "{name}: {}",
            outcome.stdout
        );
    }
}

#[test]
fn alias_bombs_are_refused() {
    let scratch = Scratch::new("laughs");
    let mut text = String::from(HEADER);
    text.push_str("x0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let refs = vec![format!("*x{}", level - 1); 10].join(", ");
        text.push_str(&format!("x{level}: &x{level} [{refs}]\n"));
    }
    text.push_str("spec: {steps: *x9}\n");
    scratch.write("laughs.yaml", &text);
    let outcome = donmaic(&scratch, &["check", "laughs.yaml"]);
    assert_fails(&outcome, 1, "expand to more than 100000 nodes");
}

#[test]
fn binary_garbage_is_refused_or_reported() {
    let scratch = Scratch::new("garbage");
    scratch.write("random.yaml", noise(1 << 20, 0x9e37_79b9_7f4a_7c15));
    let outcome = donmaic(&scratch, &["check", "random.yaml"]);
    assert_fails(&outcome, 2, "not valid UTF-8 (invalid byte at offset");

    // Valid UTF-8, NULs and control characters included.
    let ascii: Vec<u8> = noise(1 << 20, 7).into_iter().map(|b| b & 0x7f).collect();
    scratch.write("ascii.yaml", ascii);
    let outcome = donmaic(&scratch, &["check", "ascii.yaml"]);
    assert_fails(&outcome, 1, "error[DN");

    let mut nul_workflow = HEADER.as_bytes().to_vec();
    nul_workflow.extend_from_slice(b"spec:\n  steps: [\0]\n");
    scratch.write("nul.yaml", nul_workflow);
    let outcome = donmaic(&scratch, &["check", "nul.yaml"]);
    assert_fails(&outcome, 1, "error[DN0001]");
}

#[test]
fn a_no_break_space_before_the_last_token_is_reported_not_a_crash() {
    let scratch = Scratch::new("nbsp");
    scratch.write("nbsp.yaml", "\u{a0}\u{103c8}\n");
    let outcome = donmaic(&scratch, &["check", "nbsp.yaml"]);
    assert_fails(&outcome, 1, "error[DN0004]");
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    let scratch = Scratch::new("utf8");
    let mut bytes = HEADER.as_bytes().to_vec();
    let offset = bytes.len();
    bytes.extend_from_slice(b"spec: \xff\xfe\n");
    scratch.write("latin.yaml", bytes);
    let outcome = donmaic(&scratch, &["check", "latin.yaml"]);
    assert_fails(
        &outcome,
        2,
        &format!(
            "latin.yaml: not valid UTF-8 (invalid byte at offset {})",
            offset + 6
        ),
    );
}

#[test]
fn an_empty_file_is_not_a_workflow() {
    let scratch = Scratch::new("empty");
    scratch.write("empty.yaml", "");
    let outcome = donmaic(&scratch, &["check", "empty.yaml"]);
    assert_fails(&outcome, 1, "the file is empty");
}

#[test]
fn a_directory_named_like_a_workflow_is_a_folder() {
    let scratch = Scratch::new("dir");
    scratch.write(
        "x.yaml/inner.yaml",
        format!("{HEADER}spec: {{steps: oops}}\n"),
    );
    for args in [&["check"][..], &["check", "x.yaml"]] {
        let outcome = donmaic(&scratch, args);
        assert_fails(&outcome, 1, "inner.yaml");
        assert!(!outcome.output().contains("Is a directory"));
    }
}

#[cfg(unix)]
#[test]
fn symbolic_link_loops_end() {
    use std::os::unix::fs::symlink;
    let scratch = Scratch::new("loop");
    symlink("b.yaml", scratch.path("a.yaml")).expect("symlink");
    symlink("a.yaml", scratch.path("b.yaml")).expect("symlink");
    symlink(".", scratch.path("again")).expect("symlink");
    std::fs::create_dir(scratch.path("sub")).expect("mkdir");
    symlink("..", scratch.path("sub/up")).expect("symlink");
    scratch.write(
        "sub/broken.yaml",
        format!("{HEADER}spec: {{steps: oops}}\n"),
    );

    let outcome = donmaic(&scratch, &["check", "a.yaml"]);
    assert_fails(&outcome, 2, "a.yaml: Too many levels of symbolic links");

    // Walking: the loops are neither followed nor taken for files.
    let outcome = donmaic(&scratch, &["check"]);
    assert_fails(&outcome, 1, "broken.yaml");
    assert!(!outcome.output().contains("a.yaml"), "{}", outcome.output());
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_not_read() {
    let scratch = Scratch::new("special");
    let fifo = scratch.path("pipe.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());

    // Named on the command line.
    let outcome = donmaic(&scratch, &["check", "pipe.yaml", "/dev/zero"]);
    assert_fails(&outcome, 2, "pipe.yaml: not a regular file");
    assert!(outcome.stderr.contains("/dev/zero: not a regular file"));

    // Named by a workflow as its group: reading blocked forever, or ran
    // until memory was gone.
    for reference in ["./pipe.yaml@1", "/dev/zero@1"] {
        scratch.write(
            "w.yaml",
            format!(
                "{HEADER}spec:\n  steps:\n    - {{id: start, type: trigger, config: {{triggerId: go}}, next: [g]}}\n    - {{id: g, type: group, config: {{ref: \"{reference}\"}}}}\n"
            ),
        );
        let outcome = donmaic(&scratch, &["check", "w.yaml"]);
        assert_fails(&outcome, 1, "not a regular file");
    }

    // A donmai.toml that is a link to a device is passed over like a
    // missing one (project discovery takes only files).
    std::os::unix::fs::symlink("/dev/zero", scratch.path("donmai.toml")).expect("symlink");
    let outcome = donmaic(&scratch, &["check", "w.yaml"]);
    assert_fails(&outcome, 1, "cannot read group `zero`: not a regular file");
}
