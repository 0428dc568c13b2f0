//! Inline suppression: `# donmai-ignore: CODE[, CODE…] [-- reason]`.
//!
//! A suppression comment at the end of a line silences diagnostics with one
//! of its codes whose primary span starts on that line. A suppression comment
//! alone on its line silences them on the next line that is not itself a
//! comment-only line (so several suppression comments can be stacked). Codes
//! are written `DN0202`, `dn202`, `202` or by name (`unused-output`).
//!
//! Only codes that are warnings by default can be suppressed: an error means
//! the workflow cannot be built, so hiding it would only move the failure.
//! A suppression that silences nothing, names an unknown code or an error
//! code is itself reported as `unused-suppression`, with a fix that removes
//! it.
//!
//! Comments are found by a lexical scan, not by the YAML parser, so that a
//! file with YAML errors still has its comments. The scan knows that `#`
//! starts a comment only at a line start or after whitespace, tracks single-
//! and double-quoted scalars (also across lines) and skips the content lines
//! of block scalars (`|`, `>`). Its limits: a quote that opens a plain
//! scalar after whitespace (`text: a 'b`, which YAML reads as plain text) is
//! taken as the start of a quoted scalar, so a comment after it on the same
//! line is missed; and block scalars with an explicit indentation indicator
//! or a header on its own line are approximated by "more indented than the
//! key".

use crate::project::resolve_code;
use donmai_grammar::{Code, Diagnostic, Severity, SourceFile, Span};
use std::collections::HashMap;

const DIRECTIVE: &str = "donmai-ignore";

/// A YAML comment: from its `#` to the end of its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Comment {
    /// 0-based line.
    pub line: usize,
    pub span: Span,
    /// Nothing but whitespace before the `#`.
    pub alone: bool,
}

/// Every comment of the file, in order.
pub fn comments(file: &SourceFile) -> Vec<Comment> {
    let mut found = Vec::new();
    let mut quote: Option<char> = None;
    // Lines indented deeper than this belong to a block scalar.
    let mut block_indent: Option<usize> = None;
    for line in 0..file.line_count() {
        let text = file.line_text(line);
        let start = file.line_start(line);
        let indent = text.len() - text.trim_start_matches(' ').len();
        if let Some(threshold) = block_indent {
            if text.trim().is_empty() || indent > threshold {
                continue;
            }
            block_indent = None;
        }
        if quote.is_some() && (text == "---" || text == "..." || text.starts_with("--- ")) {
            // A document marker cannot sit inside a quoted scalar: the quote
            // was never one, so do not let it swallow the next document.
            quote = None;
        }
        let mut previous: Option<char> = None;
        let mut chars = text.char_indices().peekable();
        let mut comment_at = None;
        while let Some((at, c)) = chars.next() {
            match quote {
                Some('"') => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => quote = None,
                    _ => {}
                },
                Some(_) => {
                    if c == '\'' {
                        if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                            chars.next();
                        } else {
                            quote = None;
                        }
                    }
                }
                None => {
                    let after_space = previous.is_none_or(|p| p.is_whitespace() || p == '\u{feff}');
                    if c == '#' && after_space {
                        comment_at = Some(at);
                        break;
                    }
                    if (c == '"' || c == '\'')
                        && (after_space || previous.is_some_and(|p| "[{,".contains(p)))
                    {
                        quote = Some(c);
                    }
                }
            }
            previous = Some(c);
        }
        let code_part = &text[..comment_at.unwrap_or(text.len())];
        if let Some(at) = comment_at {
            found.push(Comment {
                line,
                span: Span::new(start + at, start + text.len()),
                alone: code_part.trim().is_empty(),
            });
        }
        if quote.is_none() {
            block_indent = block_scalar_threshold(code_part, indent);
        }
    }
    found
}

/// When `code` (a line without its comment) ends in a block scalar header,
/// the indentation its content lines must exceed.
fn block_scalar_threshold(code: &str, indent: usize) -> Option<usize> {
    let trimmed = code.trim_end();
    // The whitespace may be wider than a byte (a no-break space).
    let token_start = trimmed
        .char_indices()
        .rfind(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let token = &trimmed[token_start..];
    let mut token_chars = token.chars();
    if !matches!(token_chars.next(), Some('|' | '>'))
        || token.len() > 3
        || !token_chars.all(|c| matches!(c, '1'..='9' | '+' | '-'))
    {
        return None;
    }
    let before = trimmed[..token_start].trim_end();
    if !(before.is_empty() || before.ends_with(':') || before.ends_with('-')) {
        return None;
    }
    // The content must be indented deeper than the node that owns it: the
    // key of `key: |`, or the `-` of a sequence item `- |`.
    let mut column = indent;
    let mut last_dash = None;
    let mut rest = &code[indent.min(code.len())..];
    while let Some(after) = rest.strip_prefix('-') {
        if !(after.is_empty() || after.starts_with(' ')) {
            break;
        }
        last_dash = Some(column);
        let spaces = after.len() - after.trim_start_matches(' ').len();
        column += 1 + spaces;
        rest = &after[spaces..];
    }
    if rest.trim_end() == token {
        return Some(last_dash.unwrap_or(indent.saturating_sub(1)));
    }
    Some(column)
}

/// What one name in a suppression list refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A warning code: can be suppressed.
    Code(Code),
    /// An error code: cannot be suppressed.
    Error(Code),
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub text: String,
    pub span: Span,
    pub target: Target,
}

/// One `donmai-ignore` comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    pub comment: Comment,
    /// 0-based line whose diagnostics it silences.
    pub target_line: usize,
    pub entries: Vec<Entry>,
    /// The bytes holding the code list (after the colon, before `--`).
    pub list: Span,
    /// Set when the comment starts like a suppression but is malformed.
    pub malformed: Option<&'static str>,
}

/// Every `donmai-ignore` comment of the file.
pub fn suppressions(file: &SourceFile) -> Vec<Suppression> {
    // Nearly every file has no suppression at all: skip the comment scan.
    if !file.text().contains(DIRECTIVE) {
        return Vec::new();
    }
    let all = comments(file);
    let comment_only: std::collections::HashSet<usize> =
        all.iter().filter(|c| c.alone).map(|c| c.line).collect();
    let mut found = Vec::new();
    for comment in all {
        let text = file.slice(comment.span);
        let body = text[1..].trim_start();
        let Some(rest) = body.strip_prefix(DIRECTIVE) else {
            continue;
        };
        let rest_start = comment.span.end - rest.len();
        let target_line = if comment.alone {
            let mut line = comment.line + 1;
            while comment_only.contains(&line) {
                line += 1;
            }
            line
        } else {
            comment.line
        };
        let mut suppression = Suppression {
            comment,
            target_line,
            entries: Vec::new(),
            list: Span::at(comment.span.end),
            malformed: None,
        };
        let Some(list) = rest.strip_prefix(':') else {
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                suppression.malformed =
                    Some("`donmai-ignore` needs a colon and codes: `# donmai-ignore: DN0202`");
                found.push(suppression);
            } else if rest.starts_with('-') {
                suppression.malformed = Some(
                    "unknown directive: the only one is `donmai-ignore: CODE`, for its own line or the next",
                );
                found.push(suppression);
            }
            continue;
        };
        let list_start = rest_start + 1;
        let list = list.split_once("--").map_or(list, |(codes, _reason)| codes);
        suppression.list = Span::new(list_start, list_start + list.len());
        let mut offset = list_start;
        for piece in list.split(',') {
            let leading = piece.len() - piece.trim_start().len();
            let name = piece.trim();
            if !name.is_empty() {
                let span = Span::new(offset + leading, offset + leading + name.len());
                let target = match resolve_code(name) {
                    Some(code) if code.default_severity() == Severity::Warning => {
                        Target::Code(code)
                    }
                    Some(code) => Target::Error(code),
                    None => Target::Unknown,
                };
                suppression.entries.push(Entry {
                    text: name.to_string(),
                    span,
                    target,
                });
            }
            offset += piece.len() + 1;
        }
        if suppression.entries.is_empty() {
            suppression.malformed = Some("this `donmai-ignore` names no code");
        }
        found.push(suppression);
    }
    found
}

/// Diagnostics whose checking stops early: after them, a suppression that
/// silences nothing may just be one the checker never got to.
fn stops_checking(code: Code) -> bool {
    matches!(
        code,
        Code::YAML_SYNTAX
            | Code::DOCUMENT_TOO_COMPLEX
            | Code::NOT_A_WORKFLOW
            | Code::UNSUPPORTED_API_VERSION
    )
}

/// Drops the diagnostics that suppression comments silence and adds an
/// `unused-suppression` warning for each suppression that silenced nothing.
pub fn apply_suppressions(file: &SourceFile, diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let suppressions = suppressions(file);
    if suppressions.is_empty() {
        return diagnostics;
    }
    let mut by_line: HashMap<usize, Vec<usize>> = HashMap::new();
    for (index, suppression) in suppressions.iter().enumerate() {
        by_line
            .entry(suppression.target_line)
            .or_default()
            .push(index);
    }
    let mut used: Vec<Vec<bool>> = suppressions
        .iter()
        .map(|s| vec![false; s.entries.len()])
        .collect();
    let silence = |diagnostic: &Diagnostic, used: &mut Vec<Vec<bool>>| -> bool {
        let line = file.line_index(diagnostic.span.start);
        let mut silenced = false;
        for &index in by_line.get(&line).into_iter().flatten() {
            for (entry_index, entry) in suppressions[index].entries.iter().enumerate() {
                if entry.target == Target::Code(diagnostic.code) {
                    used[index][entry_index] = true;
                    silenced = true;
                }
            }
        }
        silenced
    };
    let complete = !diagnostics.iter().any(|d| stops_checking(d.code));
    let mut kept: Vec<Diagnostic> = diagnostics
        .into_iter()
        .filter(|d| !silence(d, &mut used))
        .collect();
    if !complete {
        return kept;
    }
    let mut unused = Vec::new();
    for (index, suppression) in suppressions.iter().enumerate() {
        if let Some(reason) = suppression.malformed {
            unused.push(
                Diagnostic::new(Code::UNUSED_SUPPRESSION, suppression.comment.span, reason)
                    .with_fix(
                        "remove the comment",
                        vec![remove_comment(file, suppression)],
                    ),
            );
            continue;
        }
        let all_unused = used[index].iter().all(|u| !u);
        for (entry_index, entry) in suppression.entries.iter().enumerate() {
            // A suppression of `unused-suppression` is judged after the others.
            if used[index][entry_index] || entry.target == Target::Code(Code::UNUSED_SUPPRESSION) {
                continue;
            }
            let message = match entry.target {
                Target::Code(code) => format!(
                    "`donmai-ignore: {}` silences nothing: no {code} ({}) here",
                    entry.text,
                    code.name()
                ),
                Target::Error(code) => format!(
                    "{code} ({}) is an error and cannot be suppressed",
                    code.name()
                ),
                Target::Unknown => format!("`{}` is not a known diagnostic code", entry.text),
            };
            let edit = if all_unused
                && !suppression
                    .entries
                    .iter()
                    .any(|e| e.target == Target::Code(Code::UNUSED_SUPPRESSION))
            {
                remove_comment(file, suppression)
            } else {
                remove_entry(suppression, entry_index)
            };
            let mut diagnostic = Diagnostic::new(Code::UNUSED_SUPPRESSION, entry.span, message)
                .with_fix("remove the unused suppression", vec![edit]);
            if suppression.comment.alone {
                diagnostic = diagnostic.with_label(
                    suppression.comment.span,
                    format!("applies to line {}", suppression.target_line + 1),
                );
            }
            unused.push(diagnostic);
        }
    }
    unused.retain(|d| !silence(d, &mut used));
    for (index, suppression) in suppressions.iter().enumerate() {
        for (entry_index, entry) in suppression.entries.iter().enumerate() {
            if entry.target == Target::Code(Code::UNUSED_SUPPRESSION) && !used[index][entry_index] {
                unused.push(
                    Diagnostic::new(
                        Code::UNUSED_SUPPRESSION,
                        entry.span,
                        format!("`donmai-ignore: {}` silences nothing", entry.text),
                    )
                    .with_fix(
                        "remove the unused suppression",
                        vec![remove_entry(suppression, entry_index)],
                    ),
                );
            }
        }
    }
    kept.extend(unused);
    kept
}

/// Removes the whole comment, and its line when the comment is alone on it.
fn remove_comment(
    file: &SourceFile,
    suppression: &Suppression,
) -> donmai_grammar::diagnostic::Edit {
    let comment = suppression.comment;
    let span = if comment.alone {
        Span::new(
            file.line_start(comment.line),
            file.line_start(comment.line + 1),
        )
    } else {
        let before = &file.text()[..comment.span.start];
        let code_end = before.trim_end_matches([' ', '\t']).len();
        Span::new(code_end, comment.span.end)
    };
    donmai_grammar::diagnostic::Edit {
        span,
        replacement: String::new(),
    }
}

/// Rewrites the code list without one entry.
fn remove_entry(suppression: &Suppression, entry_index: usize) -> donmai_grammar::diagnostic::Edit {
    let kept: Vec<&str> = suppression
        .entries
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != entry_index)
        .map(|(_, e)| e.text.as_str())
        .collect();
    let mut replacement = format!(" {}", kept.join(", "));
    if suppression.list.end < suppression.comment.span.end {
        // A `-- reason` follows the list.
        replacement.push(' ');
    }
    donmai_grammar::diagnostic::Edit {
        span: suppression.list,
        replacement,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SourceFile {
        SourceFile::new("a.yaml", text)
    }

    #[test]
    fn wide_whitespace_before_a_block_header_is_not_split() {
        // A no-break space before the last token made `donmaic check`
        // slice inside it and panic.
        assert!(comments(&file("\u{a0}\u{103c8}\n")).is_empty());
        let found = comments(&file("k:\u{a0}|\n  # not a comment\nj: 1 # c\n"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].line, 2);
    }

    fn comment_texts(text: &str) -> Vec<String> {
        let source = file(text);
        comments(&source)
            .iter()
            .map(|c| source.slice(c.span).to_string())
            .collect()
    }

    fn at(source: &SourceFile, needle: &str, code: Code) -> Diagnostic {
        let start = source.text().find(needle).expect("needle in text");
        Diagnostic::new(code, Span::new(start, start + needle.len()), "x")
    }

    proptest::proptest! {
        #[test]
        fn scanning_any_text_is_safe_and_fixes_apply(
            text in "(a|: |'|\"|#|\\\\| |\\n|\\r\\n|\\||>|- |é|donmai-ignore: |DN0202|,|--){0,60}",
        ) {
            let source = file(&text);
            for comment in comments(&source) {
                proptest::prop_assert!(comment.span.end <= text.len());
                proptest::prop_assert!(source.slice(comment.span).starts_with('#'));
            }
            let kept = apply_suppressions(&source, Vec::new());
            let fixes: Vec<_> = kept.iter().filter_map(|d| d.fix.as_ref()).collect();
            let (edits, _) = crate::fix::select_edits(&text, fixes);
            let _ = crate::fix::apply_edits(&text, &edits);
        }
    }

    #[test]
    fn finds_comments_outside_scalars_only() {
        let text =
            "a: 1 # one\nb: \"x # no\" # two\nc: 'it''s # no' # three\nd: a#b\n# four\ne: x#\n";
        assert_eq!(comment_texts(text), ["# one", "# two", "# three", "# four"]);
    }

    #[test]
    fn quoted_scalars_span_lines() {
        let text = "a: \"first\n  # inside\n  end\" # after\n";
        assert_eq!(comment_texts(text), ["# after"]);
    }

    #[test]
    fn block_scalar_content_is_not_a_comment() {
        let text =
            "body: |\n  # heading\n  text\n# real\nlist:\n  - >-\n    # folded\n  - x # item\n";
        assert_eq!(comment_texts(text), ["# real", "# item"]);
        let text = "- key: |\n    # content\n  other: 1 # sibling\n";
        assert_eq!(comment_texts(text), ["# sibling"]);
    }

    #[test]
    fn plain_apostrophes_do_not_open_quotes() {
        assert_eq!(comment_texts("text: don't # c\n"), ["# c"]);
    }

    #[test]
    fn suppresses_on_the_same_line_and_the_next() {
        let source = file(
            "a: 1 # donmai-ignore: DN0202\n# donmai-ignore: unused-output, maybe-null\nb: 2\nc: 3\n",
        );
        let diagnostics = vec![
            at(&source, "a: 1", Code::UNUSED_OUTPUT),
            at(&source, "b: 2", Code::UNUSED_OUTPUT),
            at(&source, "b: 2", Code::MAYBE_NULL),
            at(&source, "c: 3", Code::UNUSED_OUTPUT),
        ];
        let kept = apply_suppressions(&source, diagnostics);
        assert_eq!(kept.len(), 1);
        assert_eq!(source.slice(kept[0].span), "c: 3");
    }

    #[test]
    fn stacked_comments_reach_the_code_line() {
        let source = file("# donmai-ignore: DN0202\n# donmai-ignore: DN0128 -- known\nb: 2\n");
        let diagnostics = vec![
            at(&source, "b: 2", Code::UNUSED_OUTPUT),
            at(&source, "b: 2", Code::MAYBE_NULL),
        ];
        assert!(apply_suppressions(&source, diagnostics).is_empty());
    }

    #[test]
    fn unused_unknown_and_error_codes_are_reported_with_fixes() {
        let text = "a: 1 # donmai-ignore: DN0202, nope, DN0006\nb: 2\n";
        let source = file(text);
        let kept = apply_suppressions(&source, vec![]);
        assert_eq!(kept.len(), 3);
        assert!(kept.iter().all(|d| d.code == Code::UNUSED_SUPPRESSION));
        assert!(kept[0].message.contains("silences nothing"));
        assert!(kept[1].message.contains("`nope` is not a known"));
        assert!(kept[2].message.contains("cannot be suppressed"));
        let fix = kept[0].fix.as_ref().expect("fix");
        assert_eq!(
            source.slice(fix.edits[0].span),
            " # donmai-ignore: DN0202, nope, DN0006"
        );
    }

    #[test]
    fn partly_used_suppression_keeps_the_used_codes() {
        let source = file("a: 1 # donmai-ignore: DN0202, DN0128 -- why\n");
        let kept = apply_suppressions(&source, vec![at(&source, "a: 1", Code::UNUSED_OUTPUT)]);
        assert_eq!(kept.len(), 1);
        let edit = &kept[0].fix.as_ref().expect("fix").edits[0];
        assert_eq!(source.slice(edit.span), " DN0202, DN0128 ");
        assert_eq!(edit.replacement, " DN0202 ");
    }

    #[test]
    fn a_lone_unused_comment_is_removed_with_its_line() {
        let source = file("a: 1\n# donmai-ignore: DN0202\nb: 2\n");
        let kept = apply_suppressions(&source, vec![]);
        let edit = &kept[0].fix.as_ref().expect("fix").edits[0];
        assert_eq!(source.slice(edit.span), "# donmai-ignore: DN0202\n");
    }

    #[test]
    fn malformed_directives_are_reported() {
        let source =
            file("# donmai-ignore DN0202\na: 1 # donmai-ignore-next-line\nb: 1 # donmai-ignore:\n");
        let kept = apply_suppressions(&source, vec![]);
        assert_eq!(kept.len(), 3, "{kept:?}");
    }

    #[test]
    fn errors_are_not_silenced_and_stop_unused_reports() {
        let source = file("a: [ # donmai-ignore: DN0202\n");
        let diagnostic = at(&source, "[", Code::YAML_SYNTAX);
        let kept = apply_suppressions(&source, vec![diagnostic.clone()]);
        assert_eq!(kept, vec![diagnostic]);
    }

    #[test]
    fn unused_suppression_can_itself_be_suppressed() {
        let source = file("a: 1 # donmai-ignore: DN0202, DN0203\n");
        assert!(apply_suppressions(&source, vec![]).is_empty());
        let source = file("a: 1 # donmai-ignore: DN0203\n");
        assert_eq!(apply_suppressions(&source, vec![]).len(), 1);
    }
}
