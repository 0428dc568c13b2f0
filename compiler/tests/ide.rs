//! The editor analysis: completion and hover on fixture workflows, the
//! analysis's diagnostics against `donmaic check`'s, and robustness at any
//! offset of real and mangled files.
//!
//! A fixture in `tests/ide/complete/` or `tests/ide/hover/` marks the cursor
//! with `‸`. Text in `⟨…⟩` has been typed since the last analysis: the
//! analysis is made without it, the request sees it, as an editor does while
//! the user types. A `# enabled: a, b` line sets the project's enabled
//! integrations; `# docs` shows documentation in the snapshot.

use std::path::{Path, PathBuf};

use donmai_compiler::check::{GroupCache, check_source};
use donmai_compiler::ide::analysis::Analysis;
use donmai_compiler::ide::complete::{Completion, complete};
use donmai_compiler::ide::hover::hover;
use donmai_compiler::project::Project;
use donmai_grammar::SourceFile;
use donmai_stdlib::registry::Registry;
use proptest::prelude::*;

const CURSOR: char = '‸';
const TYPED_OPEN: char = '⟨';
const TYPED_CLOSE: char = '⟩';

struct Fixture {
    /// The text the analysis was made from.
    analysed: String,
    /// The text the request sees.
    current: String,
    /// The cursor in `current`.
    offset: usize,
    project: Project,
    docs: bool,
}

fn fixture(path: &Path) -> Fixture {
    let raw = std::fs::read_to_string(path).expect("read the fixture");
    let mut analysed = String::new();
    let mut current = String::new();
    let mut offset = None;
    let mut typed = false;
    for c in raw.chars() {
        match c {
            CURSOR => offset = Some(current.len()),
            TYPED_OPEN => typed = true,
            TYPED_CLOSE => typed = false,
            c => {
                current.push(c);
                if !typed {
                    analysed.push(c);
                }
            }
        }
    }
    let mut project = Project::default_for_tests();
    for line in raw.lines() {
        if let Some(list) = line.strip_prefix("# enabled:") {
            project = project.with_enabled_integrations(
                list.split(',').map(str::trim).filter(|s| !s.is_empty()),
            );
        }
    }
    Fixture {
        analysed,
        current,
        offset: offset.unwrap_or_else(|| panic!("{}: no cursor `‸`", path.display())),
        project,
        docs: raw.lines().any(|l| l.trim() == "# docs"),
    }
}

fn analyse(path: &Path, text: &str, project: &Project) -> Analysis {
    let file = SourceFile::new(path, text);
    Analysis::new(&file, project, Registry::bundled(), &GroupCache::default())
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ide")
        .join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the fixture folder")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths
}

fn render_completions(
    analysis: &Analysis,
    text: &str,
    completions: &[Completion],
    docs: bool,
) -> String {
    let mut out = String::new();
    let mut ranges: Vec<String> = completions
        .iter()
        .map(|c| format!("{:?}", &text[c.range.start..c.range.end]))
        .collect();
    ranges.dedup();
    if ranges.len() == 1 {
        out.push_str(&format!("replaces {}\n", ranges[0]));
    }
    for c in completions {
        out.push_str(&format!("{} [{:?}]", c.label, c.kind));
        if let Some(detail) = &c.detail {
            out.push_str(&format!(" {detail}"));
        }
        if c.insert_text != c.label {
            let marker = if c.snippet { "snippet" } else { "inserts" };
            out.push_str(&format!(" {marker} {:?}", c.insert_text));
        }
        if ranges.len() != 1 {
            out.push_str(&format!(
                " replacing {:?}",
                &text[c.range.start..c.range.end]
            ));
        }
        if c.deprecated {
            out.push_str(" (deprecated)");
        }
        out.push('\n');
        // Deferred documentation is rendered as the editor's resolve
        // request would, against the same analysis.
        if docs
            && let Some(documentation) = c.documentation.as_ref().and_then(|d| d.render(analysis))
        {
            for line in documentation.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

#[test]
fn completion_fixtures() {
    for path in fixtures("complete") {
        let fixture = fixture(&path);
        let analysis = analyse(&path, &fixture.analysed, &fixture.project);
        let completions = complete(&analysis, &fixture.current, fixture.offset);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let rendered = render_completions(&analysis, &fixture.current, &completions, fixture.docs);
        insta::assert_snapshot!(format!("complete-{name}"), rendered);
    }
}

#[test]
fn hover_fixtures() {
    for path in fixtures("hover") {
        let fixture = fixture(&path);
        let analysis = analyse(&path, &fixture.analysed, &fixture.project);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let rendered = match hover(&analysis, fixture.offset) {
            Some(found) => format!(
                "range {:?}\n\n{}\n",
                &fixture.analysed[found.range.start..found.range.end],
                found.markdown
            ),
            None => "no hover\n".to_string(),
        };
        insta::assert_snapshot!(format!("hover-{name}"), rendered);
    }
}

/// Every workflow of the repository: the corpus, both kinds, and examples.
fn workflow_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in [
        "tests/corpus/ok",
        "tests/corpus/ok/groups",
        "tests/corpus/err",
        "examples",
        "examples/groups",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 40, "the corpus is missing");
    files
}

/// One home for the rules: the analysis reports exactly what `check` does.
#[test]
fn analysis_diagnostics_are_check_diagnostics() {
    for path in workflow_files() {
        let text = std::fs::read_to_string(&path).expect("read");
        let file = SourceFile::new(&path, text.as_str());
        let project = Project::default_for_tests();
        let expected = check_source(&file, &project, Registry::bundled(), &GroupCache::default());
        let analysis = Analysis::new(&file, &project, Registry::bundled(), &GroupCache::default());
        assert_eq!(
            analysis.diagnostics(),
            expected.as_slice(),
            "{}",
            path.display()
        );
    }
}

/// Every offset of every corpus file, as analysed.
#[test]
fn every_offset_of_the_corpus_is_answered() {
    for path in workflow_files() {
        let text = std::fs::read_to_string(&path).expect("read");
        let analysis = analyse(&path, &text, &Project::default_for_tests());
        for offset in 0..=text.len() + 2 {
            for completion in complete(&analysis, &text, offset) {
                assert!(
                    completion.range.start <= completion.range.end
                        && completion.range.end <= text.len()
                        && text.is_char_boundary(completion.range.start)
                        && text.is_char_boundary(completion.range.end),
                    "{} at {offset}: {completion:?}",
                    path.display()
                );
            }
            if let Some(found) = hover(&analysis, offset) {
                assert!(
                    found.range.end <= text.len(),
                    "{} at {offset}",
                    path.display()
                );
            }
        }
    }
}

/// Pieces an editor's text is made of mid-keystroke.
const EDITS: &[&str] = &[
    "",
    "a",
    ":",
    ": ",
    "\n",
    "\n  ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "{{",
    "}}",
    "{{ nodes.",
    "{{ trigger.",
    ".",
    "é",
    "😀",
    "\t",
    "#",
    "|\n",
    "? ",
    "&a ",
    "*a",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Completion and hover never panic and stay inside the text, at any
    /// offset (past the end, inside a character) of a corpus file after an
    /// edit the analysis has not seen.
    #[test]
    fn any_offset_after_any_edit(
        file in 0usize..1000,
        at in 0usize..100_000,
        edit in proptest::sample::select(EDITS),
        remove in 0usize..4,
        offset in 0usize..100_000,
    ) {
        let files = workflow_files();
        let path = &files[file % files.len()];
        let text = std::fs::read_to_string(path).expect("read");
        let analysis = analyse(path, &text, &Project::default_for_tests());
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + remove).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let edited = format!("{}{edit}{}", &text[..at], &text[end..]);
        let offset = offset % (edited.len() + 8);
        for completion in complete(&analysis, &edited, offset) {
            prop_assert!(completion.range.start <= completion.range.end);
            prop_assert!(completion.range.end <= edited.len());
            prop_assert!(edited.is_char_boundary(completion.range.start));
            prop_assert!(edited.is_char_boundary(completion.range.end));
        }
        let _ = hover(&analysis, offset);
        // The edited text analysed too: hover on it as well.
        let fresh = analyse(path, &edited, &Project::default_for_tests());
        if let Some(found) = hover(&fresh, offset) {
            prop_assert!(found.range.end <= edited.len());
        }
        let _ = complete(&fresh, &edited, offset);
    }
}

/// Offsets inside a character or past the end are clamped, not refused.
#[test]
fn offsets_inside_characters_and_past_the_end() {
    let text = "apiVersion: workflow/v2\nmetadata: {name: \"é😀\"}\n";
    let path = Path::new("clamp.yaml");
    let analysis = analyse(path, text, &Project::default_for_tests());
    let emoji = text.find('😀').unwrap();
    for offset in [
        emoji + 1,
        emoji + 2,
        emoji + 3,
        text.len(),
        text.len() + 1,
        usize::MAX,
    ] {
        for completion in complete(&analysis, text, offset) {
            assert!(text.is_char_boundary(completion.range.start), "{offset}");
            assert!(text.is_char_boundary(completion.range.end), "{offset}");
        }
        assert!(hover(&analysis, offset).is_none_or(|h| h.range.end <= text.len()));
    }
    // Past the end of a document ending in a key being written.
    let text = "apiVersion: workflow/v2\nki";
    let analysis = analyse(path, text, &Project::default_for_tests());
    let labels: Vec<String> = complete(&analysis, text, text.len() + 10)
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert!(labels.contains(&"kind".to_string()), "{labels:?}");
    assert!(!labels.contains(&"apiVersion".to_string()), "{labels:?}");
}
