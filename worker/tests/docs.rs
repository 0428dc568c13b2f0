//! The examples of `docs/runtime.md` and `docs/donmai-cli.md` are run, so
//! the guides cannot drift from what `donmai` does.
//!
//! In each section (text under one heading), every ```yaml block is a file
//! of the example's folder: `yaml file=PATH` names it, otherwise it is
//! `workflow.yaml`. Every ```console block is a session in that folder
//! (which also holds the `core@1` manifest of `tests/runtime/`): each
//! `$ donmai …` line runs, and the lines after it, up to the next `$`, are
//! its standard output; a last line `(exit status N)` gives a status other
//! than 0. Times, dates and run ids are compared as placeholders, and a run
//! id in a command stands for the run the session started last.
//!
//! `DONMAI_DOCS_SHOW=1` prints every session's actual output.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Debug)]
struct Block {
    info: String,
    body: String,
}

/// The fenced blocks of each section, in order.
fn sections(markdown: &str) -> Vec<(String, Vec<Block>)> {
    let mut out: Vec<(String, Vec<Block>)> = vec![(String::new(), Vec::new())];
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.starts_with('#') {
            out.push((line.trim_start_matches('#').trim().to_string(), Vec::new()));
        } else if let Some(info) = line.strip_prefix("```") {
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                body.push_str(inner);
                body.push('\n');
            }
            out.last_mut().unwrap().1.push(Block {
                info: info.trim().to_string(),
                body,
            });
        }
    }
    out
}

/// Splits a command line as a POSIX shell would for the quoting used in
/// the docs: single quotes, double quotes, backslash escapes.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn is_run_id(word: &str) -> bool {
    word.len() == 26
        && word
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

/// Replaces what changes from run to run: run ids, dates, clock times and
/// the scratch folder.
fn normalise(text: &str, scratch: &Path) -> String {
    let text = text.replace(scratch.to_str().unwrap(), "<dir>");
    let mut out = String::new();
    for line in text.lines() {
        let mut words = Vec::new();
        let mut rest = line;
        // Keep spacing meaningful only as "some space": tables pad columns
        // to the width of the run ids and times they hold.
        while !rest.is_empty() {
            let start = rest
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(rest.len());
            rest = &rest[start..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if end > 0 {
                words.push(mask(&rest[..end]));
            }
            rest = &rest[end..];
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out.trim_end().to_string()
}

fn mask(word: &str) -> String {
    let mut out = String::new();
    let bytes: Vec<char> = word.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..].iter().collect();
        let take = |n: usize| rest.chars().take(n).collect::<String>();
        if rest.len() >= 26 && is_run_id(&take(26)) {
            out.push_str("<run>");
            i += 26;
        } else if rest.len() >= 24 && looks_like(&take(24), "dddd-dd-ddTdd:dd:dd.dddZ") {
            out.push_str("<timestamp>");
            i += 24;
        } else if rest.len() >= 12 && looks_like(&take(12), "dd:dd:dd.ddd") {
            out.push_str("<time>");
            i += 12;
        } else if rest.len() >= 64
            && take(64)
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            out.push_str("<hash>");
            i += 64;
        } else if rest.len() >= 16
            && take(16)
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && take(16).bytes().any(|b| b.is_ascii_alphabetic())
        {
            out.push_str("<id>");
            i += 16;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn looks_like(text: &str, pattern: &str) -> bool {
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(t, p)| match p {
            b'd' => t.is_ascii_digit(),
            _ => t == p,
        })
}

struct Expected {
    command: String,
    stdout: String,
    status: i32,
}

fn session(body: &str) -> Vec<Expected> {
    let mut out: Vec<Expected> = Vec::new();
    for line in body.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            out.push(Expected {
                command: command.to_string(),
                stdout: String::new(),
                status: 0,
            });
        } else if let Some(last) = out.last_mut() {
            if let Some(status) = line
                .strip_prefix("(exit status ")
                .and_then(|s| s.strip_suffix(')'))
            {
                last.status = status.parse().expect("exit status");
            } else {
                last.stdout.push_str(line);
                last.stdout.push('\n');
            }
        }
    }
    out
}

fn check_doc(name: &str) -> (usize, Vec<String>) {
    let markdown = std::fs::read_to_string(root().join("docs").join(name)).unwrap();
    let show = std::env::var_os("DONMAI_DOCS_SHOW").is_some();
    let mut failures = Vec::new();
    let mut sessions = 0;
    for (heading, blocks) in sections(&markdown) {
        let consoles: Vec<&Block> = blocks.iter().filter(|b| b.info == "console").collect();
        if consoles.is_empty() {
            continue;
        }
        for console in consoles {
            sessions += 1;
            let scratch = tempfile::tempdir().unwrap();
            let dir = scratch.path().canonicalize().unwrap();
            for block in blocks.iter().filter(|b| b.info.starts_with("yaml")) {
                let file = block
                    .info
                    .strip_prefix("yaml file=")
                    .unwrap_or("workflow.yaml");
                let path = dir.join(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, &block.body).unwrap();
            }
            for block in blocks.iter().filter(|b| b.info.starts_with("json file=")) {
                let file = block.info.strip_prefix("json file=").unwrap();
                std::fs::write(dir.join(file), &block.body).unwrap();
            }
            let mut last_run: Option<String> = None;
            for expected in session(&console.body) {
                let mut words = split_words(&expected.command);
                assert_eq!(
                    words.remove(0),
                    "donmai",
                    "{name} § {heading}: {}",
                    expected.command
                );
                for word in &mut words {
                    if let Some(run) = &last_run
                        && is_run_id(word)
                    {
                        *word = run.clone();
                    }
                }
                let output = Command::new(env!("CARGO_BIN_EXE_donmai"))
                    .args(&words)
                    .current_dir(&dir)
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
                if let Some(run) = stdout
                    .split(|c: char| !c.is_ascii_alphanumeric())
                    .rfind(|w| is_run_id(w))
                    .filter(|_| words.first().is_some_and(|w| w == "run"))
                {
                    last_run = Some(run.to_string());
                }
                if show {
                    println!(
                        "== {name} § {heading}\n$ {}\n{stdout}--- stderr\n{stderr}",
                        expected.command
                    );
                }
                let status = output.status.code().unwrap_or(-1);
                if status != expected.status
                    || normalise(&stdout, &dir) != normalise(&expected.stdout, &dir)
                {
                    failures.push(format!(
                        "{name} § {heading}: `{}` exited {status} (expected {})\n--- expected\n{}--- actual\n{stdout}--- stderr\n{stderr}",
                        expected.command, expected.status, expected.stdout
                    ));
                }
            }
        }
    }
    (sessions, failures)
}

#[test]
fn runtime_guide_sessions_run_as_shown() {
    let (sessions, failures) = check_doc("runtime.md");
    assert!(sessions >= 8, "only {sessions} sessions in runtime.md");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn cli_reference_sessions_run_as_shown() {
    let (sessions, failures) = check_doc("donmai-cli.md");
    assert!(sessions >= 4, "only {sessions} sessions in donmai-cli.md");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn masks_and_words() {
    assert_eq!(
        split_words(r#"run wf.yaml --payload '{"a": 1}' --data "x \"y\"" a\ b"#),
        [
            "run",
            "wf.yaml",
            "--payload",
            r#"{"a": 1}"#,
            "--data",
            r#"x "y""#,
            "a b"
        ]
    );
    let dir = Path::new("/tmp/x");
    assert_eq!(
        normalise(
            "21:38:58.753  run.started    01M87QYV21ATVK8FZ0A48X0ZVZ (trigger go)",
            dir
        ),
        "<time> run.started <run> (trigger go)"
    );
    assert_eq!(
        normalise("started 2026-11-24T21:38:58.753Z, ended", dir),
        "started <timestamp>, ended"
    );
}
