//! The documentation's examples are run, so the docs cannot drift from the
//! behaviour:
//! - every `docs/diagnostics/DNxxxx.md`: its "Wrong" workflow produces the
//!   code, its "Right" workflow checks clean (extra files such as group files,
//!   `donmai.toml` or plugin manifests come in sections titled
//!   `## Wrong (path)` / `## Right (path)`);
//! - every complete workflow (a ```yaml block with `apiVersion`) in
//!   `docs/language.md` checks clean, and every ```expr block's
//!   `expression  ⇒  result` lines evaluate as shown.

use std::path::{Path, PathBuf};

use donmai_compiler::check::check_file;
use donmai_compiler::driver::{CheckOptions, FixMode, run_check};
use donmai_grammar::Code;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// `(heading, info string, body)` of every fenced block, with the `## `
/// heading it sits under.
fn blocks(markdown: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.trim().to_string();
        } else if let Some(info) = line.strip_prefix("```") {
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                body.push_str(inner);
                body.push('\n');
            }
            out.push((heading.clone(), info.trim().to_string(), body));
        }
    }
    out
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("donmai-docs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the blocks of one side (`Wrong` or `Right`) and checks the main
/// workflow; returns every code reported, with a readable listing.
fn run_side(
    name: &str,
    side: &str,
    all: &[(String, String, String)],
) -> Option<(Vec<Code>, String)> {
    let scratch = Scratch::new(&format!("{name}-{side}"));
    let mut main = None;
    for (heading, _, body) in all {
        if heading == side {
            let path = scratch.0.join("workflow.yaml");
            std::fs::write(&path, body).expect("write");
            main = Some(path);
        } else if let Some(rest) = heading.strip_prefix(side)
            && let Some(file) = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
        {
            let path = scratch.0.join(file);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, body).expect("write");
        }
    }
    let main = main?;
    let run = run_check(
        &CheckOptions {
            paths: vec![main],
            lint_levels: Vec::new(),
            fix: FixMode::Report,
            threads: None,
        },
        &check_file,
    );
    let mut codes = Vec::new();
    let mut listing = String::new();
    for report in &run.report.files {
        for d in &report.diagnostics {
            codes.push(d.code);
            let at = report.source.line_col(d.span.start);
            listing.push_str(&format!(
                "  {}:{}:{} {} {}\n",
                report
                    .source
                    .path()
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                at.line,
                at.column,
                d.code,
                d.message
            ));
        }
    }
    for failure in &run.report.failures {
        listing.push_str(&format!("  failure: {}\n", failure.message));
        codes.push(Code(0));
    }
    Some((codes, listing))
}

#[test]
fn diagnostic_docs_examples_behave_as_documented() {
    let mut problems = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(docs().join("diagnostics"))
        .expect("docs/diagnostics")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let Some(code) = Code::parse(stem) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read doc");
        let all = blocks(&text);
        match run_side(stem, "Wrong", &all) {
            Some((codes, listing)) if !codes.contains(&code) => {
                problems.push(format!("{stem}: Wrong does not report {code}:\n{listing}"))
            }
            None => problems.push(format!("{stem}: no `## Wrong` example")),
            _ => {}
        }
        match run_side(stem, "Right", &all) {
            Some((codes, listing)) if !codes.is_empty() => {
                problems.push(format!("{stem}: Right is not clean:\n{listing}"))
            }
            None => problems.push(format!("{stem}: no `## Right` example")),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every block of `docs/language.md`, in order, in one scratch folder: a
/// ```yaml file=PATH block is written to PATH; a ```yaml block with an
/// `apiVersion` is a workflow that must check clean; an ```expr block's lines
/// `EXPR  ⇒  JSON` (or `⇒  error: CODE`) must evaluate so, with the
/// variables of an optional leading `vars: {json}` line.
#[test]
fn language_guide_examples_run() {
    let text = std::fs::read_to_string(docs().join("language.md")).expect("language.md");
    let scratch = Scratch::new("language");
    let mut problems = Vec::new();
    let mut workflows = 0;
    let mut expressions = 0;
    for (index, (heading, info, body)) in blocks(&text).into_iter().enumerate() {
        if let Some(path) = info.strip_prefix("yaml file=") {
            let path = scratch.0.join(path.trim());
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &body).expect("write");
        } else if info == "yaml" && body.contains("apiVersion:") {
            workflows += 1;
            let path = scratch.0.join(format!("workflow-{index}.yaml"));
            std::fs::write(&path, &body).expect("write");
            let run = run_check(
                &CheckOptions {
                    paths: vec![path],
                    lint_levels: Vec::new(),
                    fix: FixMode::Report,
                    threads: None,
                },
                &check_file,
            );
            for report in &run.report.files {
                for d in &report.diagnostics {
                    let at = report.source.line_col(d.span.start);
                    problems.push(format!(
                        "workflow under `{heading}`, line {}: {} {}",
                        at.line, d.code, d.message
                    ));
                }
            }
        } else if info == "expr" {
            let mut vars = donmai_compiler::eval::Vars::new();
            for line in body.lines().filter(|l| !l.trim().is_empty()) {
                if let Some(json) = line.strip_prefix("vars:") {
                    vars = donmai_compiler::eval::vars_from_json(json.trim()).expect("vars JSON");
                    continue;
                }
                let Some((expr, expected)) = line.split_once('⇒') else {
                    problems.push(format!("expr line without ⇒: {line}"));
                    continue;
                };
                expressions += 1;
                let result = donmai_compiler::eval::eval_text(expr.trim(), &vars);
                let expected = expected.trim();
                let ok = match (expected.strip_prefix("error: "), &result) {
                    (Some(code), Err(error)) => error.code == code,
                    (None, Ok(value)) => serde_json::from_str::<serde_json::Value>(expected)
                        .is_ok_and(|json| json == value.to_json()),
                    _ => false,
                };
                if !ok {
                    let got = match &result {
                        Ok(value) => value.to_json().to_string(),
                        Err(error) => format!("error: {} ({})", error.code, error.message),
                    };
                    problems.push(format!(
                        "`{}` gave {got}, the guide says {expected}",
                        expr.trim()
                    ));
                }
            }
        }
    }
    assert!(
        workflows >= 8 && expressions >= 30,
        "the guide lost its examples"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
