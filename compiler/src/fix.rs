//! Applying machine-applicable fixes: `donmaic check --fix` and `--diff`.
//!
//! One round applies every fix of a file whose edits overlap no edit already
//! taken (fixes are taken in position order, each whole or not at all). The
//! file is then checked again, since a fix may reveal or make new fixes, for
//! at most [`MAX_FIX_ROUNDS`] rounds.

use donmai_grammar::diagnostic::{Edit, Fix};
use donmai_grammar::{Diagnostic, SourceFile};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const MAX_FIX_ROUNDS: usize = 5;

/// Whether two edits cannot both be applied. An insertion (empty span)
/// conflicts with an edit that touches its position, because the order of
/// the two texts would be a guess.
fn conflicts(a: &Edit, b: &Edit) -> bool {
    let (a, b) = (a.span, b.span);
    if a.is_empty() || b.is_empty() {
        let (point, other) = if a.is_empty() {
            (a.start, b)
        } else {
            (b.start, a)
        };
        return other.start <= point && point <= other.end;
    }
    a.start < b.end && b.start < a.end
}

fn edit_fits(text: &str, edit: &Edit) -> bool {
    edit.span.start <= edit.span.end
        && edit.span.end <= text.len()
        && text.is_char_boundary(edit.span.start)
        && text.is_char_boundary(edit.span.end)
}

/// The edits of every fix that can be applied together, sorted by position,
/// and how many fixes they come from. A fix whose edits are invalid for
/// `text`, conflict with each other or with an earlier fix is left out.
pub fn select_edits<'a>(
    text: &str,
    fixes: impl IntoIterator<Item = &'a Fix>,
) -> (Vec<Edit>, usize) {
    let mut fixes: Vec<&Fix> = fixes
        .into_iter()
        .filter(|fix| !fix.edits.is_empty())
        .collect();
    fixes.sort_by_key(|fix| fix.edits.iter().map(|e| (e.span.start, e.span.end)).min());
    fixes.dedup_by(|a, b| a.edits == b.edits);
    let mut taken: Vec<Edit> = Vec::new();
    let mut count = 0;
    for fix in fixes {
        let valid = fix.edits.iter().all(|edit| edit_fits(text, edit))
            && fix
                .edits
                .iter()
                .enumerate()
                .all(|(i, a)| fix.edits[i + 1..].iter().all(|b| !conflicts(a, b)))
            && fix
                .edits
                .iter()
                .all(|edit| taken.iter().all(|t| !conflicts(edit, t)));
        if valid {
            taken.extend(fix.edits.iter().cloned());
            count += 1;
        }
    }
    taken.sort_by_key(|edit| (edit.span.start, edit.span.end));
    (taken, count)
}

/// `text` with non-overlapping, sorted `edits` applied.
pub fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut position = 0;
    for edit in edits {
        out.push_str(&text[position..edit.span.start]);
        out.push_str(&edit.replacement);
        position = edit.span.end;
    }
    out.push_str(&text[position..]);
    out
}

/// The result of fixing one file in memory.
#[derive(Clone, Debug)]
pub struct FixOutcome {
    /// The file after every round.
    pub source: SourceFile,
    /// The diagnostics of the final text.
    pub diagnostics: Vec<Diagnostic>,
    /// How many fixes were applied over all rounds.
    pub applied: usize,
}

impl FixOutcome {
    pub fn changed(&self) -> bool {
        self.applied > 0
    }
}

/// Applies fixes in rounds, re-checking with `check` after each, until no
/// fix applies or [`MAX_FIX_ROUNDS`] rounds have run.
pub fn fix_in_rounds(
    source: SourceFile,
    diagnostics: Vec<Diagnostic>,
    mut check: impl FnMut(&SourceFile) -> Vec<Diagnostic>,
) -> FixOutcome {
    let mut outcome = FixOutcome {
        source,
        diagnostics,
        applied: 0,
    };
    for _ in 0..MAX_FIX_ROUNDS {
        let text = outcome.source.text();
        let (edits, count) = select_edits(
            text,
            outcome.diagnostics.iter().filter_map(|d| d.fix.as_ref()),
        );
        if count == 0 {
            break;
        }
        let fixed = apply_edits(text, &edits);
        if fixed == text {
            break;
        }
        outcome.source = SourceFile::new(outcome.source.path().to_path_buf(), fixed);
        outcome.diagnostics = check(&outcome.source);
        outcome.applied += count;
    }
    outcome
}

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Replaces `path` with `text` so that a reader sees the old or the new
/// file, never a half-written one: write a temporary file beside it, flush
/// it to disk, then rename it over the original (keeping its permissions).
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(
        ".{name}.donmai-fix-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Ok(metadata) = std::fs::metadata(path) {
            std::fs::set_permissions(&temp, metadata.permissions())?;
        }
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// A unified diff (`diff -u` style, 3 lines of context) from `old` to
/// `new`, labelled `a/<path>` and `b/<path>`; empty when they are equal.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let diff = similar::TextDiff::from_lines(old, new);
    diff.unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use donmai_grammar::{Code, Span};

    fn edit(start: usize, end: usize, replacement: &str) -> Edit {
        Edit {
            span: Span::new(start, end),
            replacement: replacement.to_string(),
        }
    }

    fn fix(edits: Vec<Edit>) -> Fix {
        Fix {
            message: "fix".to_string(),
            edits,
        }
    }

    proptest::proptest! {
        #[test]
        fn selected_edits_never_overlap_and_always_apply(
            text in "[a-cé\\n]{0,20}",
            raw in proptest::collection::vec(
                proptest::collection::vec((0usize..30, 0usize..6, "[xy]{0,2}"), 1..3),
                0..6,
            ),
        ) {
            let fixes: Vec<Fix> = raw
                .into_iter()
                .map(|edits| fix(edits.into_iter().map(|(start, len, r)| edit(start, start + len, &r)).collect()))
                .collect();
            let (edits, count) = select_edits(&text, &fixes);
            proptest::prop_assert!(count <= fixes.len());
            for pair in edits.windows(2) {
                proptest::prop_assert!(!conflicts(&pair[0], &pair[1]));
            }
            for e in &edits {
                proptest::prop_assert!(edit_fits(&text, e));
            }
            let _ = apply_edits(&text, &edits);
        }
    }

    #[test]
    fn applies_disjoint_fixes_in_position_order() {
        let text = "abcdef";
        let fixes = [
            fix(vec![edit(4, 5, "E")]),
            fix(vec![edit(0, 1, "A"), edit(2, 2, "+")]),
        ];
        let (edits, count) = select_edits(text, &fixes);
        assert_eq!(count, 2);
        assert_eq!(apply_edits(text, &edits), "Ab+cdEf");
    }

    #[test]
    fn overlapping_fixes_are_skipped_whole() {
        let text = "abcdef";
        let fixes = [
            fix(vec![edit(0, 3, "X")]),
            // Overlaps the first in one of its two edits: neither edit applies.
            fix(vec![edit(2, 4, "Y"), edit(5, 6, "Z")]),
            fix(vec![edit(3, 4, "W")]),
        ];
        let (edits, count) = select_edits(text, &fixes);
        assert_eq!(count, 2);
        assert_eq!(apply_edits(text, &edits), "XWef");
    }

    #[test]
    fn insertions_touching_an_edit_conflict_but_adjacent_edits_do_not() {
        assert!(conflicts(&edit(2, 2, "a"), &edit(2, 2, "b")));
        assert!(conflicts(&edit(2, 2, "a"), &edit(0, 2, "b")));
        assert!(!conflicts(&edit(0, 2, "a"), &edit(2, 4, "b")));
        assert!(!conflicts(&edit(1, 1, "a"), &edit(2, 4, "b")));
    }

    #[test]
    fn identical_fixes_apply_once_and_invalid_ones_never() {
        let text = "héllo";
        let fixes = [
            fix(vec![edit(0, 1, "H")]),
            fix(vec![edit(0, 1, "H")]),
            fix(vec![edit(2, 3, "x")]), // inside 'é'
            fix(vec![edit(4, 99, "x")]),
        ];
        let (edits, count) = select_edits(text, &fixes);
        assert_eq!(count, 1);
        assert_eq!(apply_edits(text, &edits), "Héllo");
    }

    #[test]
    fn rounds_reapply_until_nothing_is_left() {
        // A fake checker: every `aa` wants to become `a`; overlapping matches
        // need several rounds.
        fn check(file: &SourceFile) -> Vec<Diagnostic> {
            let text = file.text();
            (0..text.len().saturating_sub(1))
                .filter(|&i| &text[i..i + 2] == "aa")
                .map(|i| {
                    Diagnostic::new(Code::UNUSED_OUTPUT, Span::new(i, i + 2), "aa")
                        .with_replacement("shorten", Span::new(i, i + 2), "a")
                })
                .collect()
        }
        let source = SourceFile::new("x.yaml", "aaaa b");
        let diagnostics = check(&source);
        let outcome = fix_in_rounds(source, diagnostics, check);
        assert_eq!(outcome.source.text(), "a b");
        assert!(outcome.diagnostics.is_empty());
        assert_eq!(outcome.applied, 3);
    }

    #[test]
    fn rounds_are_bounded() {
        // A fix that never converges stops after MAX_FIX_ROUNDS rounds.
        fn check(file: &SourceFile) -> Vec<Diagnostic> {
            vec![
                Diagnostic::new(Code::UNUSED_OUTPUT, Span::at(0), "grow").with_replacement(
                    "grow",
                    Span::at(file.text().len()),
                    "x",
                ),
            ]
        }
        let source = SourceFile::new("x.yaml", "");
        let diagnostics = check(&source);
        let outcome = fix_in_rounds(source, diagnostics, check);
        assert_eq!(outcome.source.text(), "x".repeat(MAX_FIX_ROUNDS));
    }

    #[test]
    fn unified_diff_has_headers_and_hunks() {
        let diff = unified_diff("w.yaml", "a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(
            diff,
            "--- a/w.yaml\n+++ b/w.yaml\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
        );
        assert_eq!(unified_diff("w.yaml", "same", "same"), "");
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("donmai-fix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("w.yaml");
        std::fs::write(&path, "old").expect("write");
        write_atomically(&path, "new").expect("atomic write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "new");
        let leftovers = std::fs::read_dir(&dir).expect("list").count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
