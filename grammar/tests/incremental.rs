//! Incremental re-parsing: whenever `reparse` answers, its answer is exactly
//! what `parse_workflow` gives for the new text; the typical editing
//! keystrokes take the fast path; every reason to decline is exercised.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use donmai_grammar::Code;
use donmai_grammar::diagnostic::Edit;
use donmai_grammar::incremental::{
    DeclineReason, MapOffsets, Reparsed, edit_between, reparse, reparse_detailed, shift_offset,
};
use donmai_grammar::lower::{ParsedWorkflow, parse_workflow};
use donmai_grammar::span::Span;
use proptest::prelude::*;

// ---- inputs ---------------------------------------------------------------

/// The YAML files of the corpus and the examples.
fn repository_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pending = vec![root.join("tests/corpus"), root.join("examples")];
    let mut files = Vec::new();
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("a readable folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).expect("UTF-8 YAML");
                files.push((path, text));
            }
        }
    }
    files.sort();
    assert!(files.len() > 50, "only {} files", files.len());
    files
}

/// A workflow of `steps` steps shaped like the benchmark's generated ones
/// (issue loops and fan-outs, about 10.7 lines a step). With `varied`, some
/// steps are written in the other styles a file may hold: one-line and
/// multi-line flow mappings, block scalars, comments at every indentation,
/// multi-line quoted strings, predicates and a key after `spec`.
fn generated_workflow(steps: usize, varied: bool) -> String {
    let mut out = String::from(
        "# Generated for the incremental parsing tests.
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata:
  name: Generated
  version: \"1\"
requires:
  - plugin: linear@1
  - plugin: donmai@2
triggers:
  - id: created
    kind: signal
    config:
      signalEventType: com.linear.AgentSessionEvent.created
spec:
  steps:
    - id: created
      type: trigger
      config:
        triggerId: created
      next:
        - s1
",
    );
    for i in 1..steps {
        let next = format!("s{}", i + 1);
        let shape = if varied { i % 9 } else { i % 3 };
        match shape {
            0 => write!(
                out,
                "    - id: s{i}
      type: condition
      config:
        action: linear@1:linear.issue.project_allowed
        issueId: \"{{{{ trigger.issueId }}}}\"
      branches:
        yes: {next}
        no: {next}
"
            ),
            1 => write!(
                out,
                "    - id: s{i}
      type: action
      config:
        action: donmai@2:agent.dispatch_to_queue
        workType: development
        issueId: \"{{{{ trigger.issueId }}}}\"
        agentSessionId: \"{{{{ nodes.created.output.agentSessionId }}}}\"
      retry:
        maxAttempts: 3
        backoff:
          initialMs: 5000
          factor: 2
      next:
        - {next}
"
            ),
            2 => write!(
                out,
                "    - id: s{i}
      type: gate
      config:
        action: donmai@2:gate.ci_check
        headSha: \"{{{{ nodes.s{prev}.output.headSha }}}}\"
      gateConfig:
        gateType: signal
        signalEventType: com.github.workflow_run.completed
        onTimeout: skip
        timeoutMs: 2700000
        match:
          field: workflow_run.head_sha
          op: eq
          value: \"{{{{ nodes.s{prev}.output.headSha }}}}\"
      branches:
        passed: {next}
        failed: {next}
",
                prev = i - 1
            ),
            3 => writeln!(
                out,
                "    - {{id: s{i}, type: action, config: {{action: \"linear@1:linear.issue.update\", issueId: \"{{{{ trigger.issueId }}}}\", status: Done}}, next: [{next}]}}"
            ),
            4 => write!(
                out,
                "
# Stage {i}, written at the left margin.
    - id: s{i}
      type: action
      next: [{next}]
      config:
        action: linear@1:linear.comment.create
        body: |
          Line one of {i}
            indented {{{{ trigger.issueId }}}}

          after a blank line
"
            ),
            5 => write!(
                out,
                "    # A comment at the items' column.
    - id: s{i}
      type: condition
      config: {{mode: switch, action: \"donmai@2:agent.size_estimate\",
               issueId: \"{{{{ trigger.issueId }}}}\", cases: [small, large]}}
      branches: {{small: {next}, large: {next}}}
      defaultHandle: large
"
            ),
            6 => write!(
                out,
                "    - id: s{i}
      type: action
# A comment at the margin, inside the step.
      config:
        action: slack@1:slack.send_message
        text: \"QA queued as
          {{{{ nodes.s{prev}.output.sessionId }}}} ok\"
        note: >-
          folded
          text
      next:
        - {next}   # trailing comment
",
                prev = i - 1
            ),
            7 => write!(
                out,
                "    -
      id: s{i}
      type: loop
      config:
        body: ./groups/body.yaml@1
        maxIterations: 3
        until: {{all: [{{field: done, op: eq, value: true}}, {{not: {{field: x, op: exists}}}}]}}
      next: [{next}]
"
            ),
            _ => write!(
                out,
                "    - id: s{i}
      type: action
      config:
        action: donmai@2:agent.dispatch_to_queue
        body: \"{{{{ nodes.s{prev}.output.blockedReason ?? 'could not finish' }}}}\"
      next:
        - {next}
      keep: |+
        kept


",
                prev = i - 1
            ),
        }
        .expect("writing to a string");
    }
    write!(
        out,
        "    - id: s{steps}
      type: action
      config:
        action: linear@1:linear.issue.update
        status: Done
"
    )
    .expect("writing to a string");
    if varied {
        out.push_str("interface:\n  inputs: {goal: string}\n");
    }
    out
}

// ---- the property ---------------------------------------------------------

fn same(a: &ParsedWorkflow, b: &ParsedWorkflow) -> bool {
    // `PartialEq` says NaN differs from itself; the Debug text does not.
    (a.workflow == b.workflow && a.diagnostics == b.diagnostics)
        || format!("{a:?}") == format!("{b:?}")
}

fn copy(parsed: &ParsedWorkflow) -> ParsedWorkflow {
    ParsedWorkflow {
        workflow: parsed.workflow.clone(),
        diagnostics: parsed.diagnostics.clone(),
    }
}

/// One random edit: where (a fraction of the text), how many characters to
/// delete, what to insert.
#[derive(Clone, Debug)]
struct RandomEdit {
    at: f64,
    delete: usize,
    insert: String,
}

fn random_edit() -> impl Strategy<Value = RandomEdit> {
    let piece = prop::sample::select(vec![
        "a", "z", "_", "1", " ", "\n", "\"", "'", "-", ":", "{", "}", "[", "]", ",", "#", "é",
        "😀", "\t", "&", "*", "|", ">", "!", "?", "$", "\\", "\r", "\u{feff}", "\0",
    ]);
    // Whole tokens too, so that edits often keep the file a workflow.
    let token = prop::sample::select(vec![
        "\n      ",
        "\n      k: v",
        "{{ ",
        " }}",
        "- ",
        ": ",
        "\n    - ",
        "\r\n",
    ]);
    let insert = prop_oneof![
        4 => prop::collection::vec(piece, 0..=3).prop_map(|p| p.concat()),
        1 => token.prop_map(str::to_string),
    ];
    (0.0..1.0f64, 0usize..=3, insert).prop_map(|(at, delete, insert)| RandomEdit {
        at,
        delete,
        insert,
    })
}

/// Applies `edit` to `text`: returns the edit in old-text offsets and the
/// new text.
fn apply(text: &str, edit: &RandomEdit) -> (Edit, String) {
    let mut start = ((text.len() as f64) * edit.at) as usize;
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let end = text[start..]
        .char_indices()
        .nth(edit.delete)
        .map_or(text.len(), |(i, _)| start + i);
    let mut new_text = String::with_capacity(text.len() + edit.insert.len());
    new_text.push_str(&text[..start]);
    new_text.push_str(&edit.insert);
    new_text.push_str(&text[end..]);
    let edit = Edit {
        span: Span::new(start, end),
        replacement: edit.insert.clone(),
    };
    (edit, new_text)
}

/// Whether a parse can seed the fast path: it has a workflow and the YAML
/// was read to the end.
fn clean(parsed: &ParsedWorkflow) -> bool {
    parsed.workflow.is_some()
        && !parsed
            .diagnostics
            .iter()
            .any(|d| matches!(d.code, Code::YAML_SYNTAX | Code::DOCUMENT_TOO_COMPLEX))
}

/// How a sequence of edits goes on after one that breaks the YAML.
#[derive(Clone, Copy, Debug)]
enum AfterBreakage {
    /// Keep editing the broken text.
    Continue,
    /// Undo the edit (it was still checked).
    Undo,
    /// Keep editing, but re-parse from the last clean parse with the
    /// difference of the texts, as a server would.
    FromLastClean,
}

/// Applies the edits in turn; after each, `reparse` must either decline and
/// hand back the previous parse untouched, or equal a full parse. Returns
/// how many edits took the fast path.
fn check_edits(
    text: &str,
    edits: &[RandomEdit],
    after_breakage: AfterBreakage,
) -> Result<usize, TestCaseError> {
    let mut text = text.to_string();
    let mut parsed = parse_workflow(&text);
    let mut last_clean = clean(&parsed).then(|| (text.clone(), copy(&parsed)));
    let mut fast = 0;
    for random in edits {
        let (mut edit, new_text) = apply(&text, random);
        let expected = parse_workflow(&new_text);
        let (base_text, base) = match (after_breakage, &last_clean) {
            (AfterBreakage::FromLastClean, Some((clean_text, clean_parse))) => {
                edit = edit_between(clean_text, &new_text);
                (clean_text.clone(), copy(clean_parse))
            }
            _ => (text.clone(), copy(&parsed)),
        };
        let before = copy(&base);
        match reparse_detailed(&base_text, base, &edit, &new_text) {
            Ok(Reparsed {
                parsed: got,
                only_positions_moved,
                replaced,
            }) => {
                prop_assert!(
                    same(&got, &expected),
                    "reparse differs from a full parse after {edit:?}\n--- old text\n{base_text}\n--- new text\n{new_text}\n--- reparse\n{got:#?}\n--- full parse\n{expected:#?}"
                );
                if only_positions_moved {
                    // The claim a server relies on to keep its analysis:
                    // the old parse, every offset moved, is the new one.
                    let mut moved = copy(&before);
                    moved.map_offsets(&|offset| shift_offset(&edit, offset));
                    prop_assert!(
                        same(&moved, &expected),
                        "only positions moved, says reparse, after {edit:?}\n--- old text\n{base_text}\n--- new text\n{new_text}"
                    );
                }
                if let Some(replaced) = replaced {
                    // The claim a checker relies on to redo one step: the
                    // old workflow, offsets moved and that one step swapped
                    // for its new parse, is the new workflow.
                    let old_workflow = before.workflow.as_ref().expect("a reparse had a workflow");
                    let kept = format!("{:?}", old_workflow.steps[replaced.index]);
                    prop_assert!(
                        kept == format!("{:?}", replaced.previous),
                        "the replaced step is not the old parse's"
                    );
                    let mut moved = copy(&before);
                    moved.map_offsets(&|offset| shift_offset(&edit, offset));
                    let (Some(moved), Some(expected)) = (&mut moved.workflow, &expected.workflow)
                    else {
                        panic!("a replaced step without a workflow");
                    };
                    moved.steps[replaced.index] = expected.steps[replaced.index].clone();
                    // The enclosing collections may end where the item ends.
                    if !replaced.ends_moved {
                        moved.steps_span = expected.steps_span;
                        moved.span = expected.span;
                    }
                    prop_assert!(
                        moved == expected || format!("{moved:?}") == format!("{expected:?}"),
                        "only step {} changed, says reparse, after {edit:?}\n--- old text\n{base_text}\n--- new text\n{new_text}",
                        replaced.index
                    );
                }
                fast += 1;
            }
            Err(declined) => {
                prop_assert!(
                    same(&declined.parsed, &before),
                    "a declined reparse changed the previous parse ({:?})",
                    declined.reason
                );
            }
        }
        let broken = !clean(&expected);
        if broken && matches!(after_breakage, AfterBreakage::Undo) {
            continue;
        }
        if !broken {
            last_clean = Some((new_text.clone(), copy(&expected)));
        }
        parsed = expected;
        text = new_text;
    }
    Ok(fast)
}

/// Texts for the property: the repository's files and generated workflows
/// in both styles, with LF and CRLF line ends, indented and indentless
/// step sequences.
fn texts() -> Vec<String> {
    let mut texts: Vec<String> = repository_files().into_iter().map(|(_, t)| t).collect();
    for steps in [2, 9, 30] {
        for varied in [false, true] {
            let text = generated_workflow(steps, varied);
            texts.push(text.replace('\n', "\r\n"));
            // `steps:` with its dashes at the key's column.
            texts.push(text.replace("\n    ", "\n  ").replace("\n      ", "\n    "));
            texts.push(text);
        }
    }
    texts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn reparse_equals_a_full_parse(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(random_edit(), 1..24),
        after_breakage in prop::sample::select(vec![
            AfterBreakage::Continue,
            AfterBreakage::Undo,
            AfterBreakage::FromLastClean,
        ]),
    ) {
        thread_local! {
            static TEXTS: Vec<String> = texts();
        }
        let text = TEXTS.with(|texts| pick.get(texts).clone());
        check_edits(&text, &edits, after_breakage)?;
    }
}

proptest! {
    #[test]
    fn edit_between_is_the_smallest_edit(
        old in "[ab\né😀]{0,40}",
        new in "[ab\né😀]{0,40}",
    ) {
        let edit = edit_between(&old, &new);
        let applied = format!(
            "{}{}{}",
            &old[..edit.span.start],
            edit.replacement,
            &old[edit.span.end..]
        );
        prop_assert_eq!(&applied, &new);
        // Nothing at either end of the edit could be left out.
        let kept = old.len() - edit.span.len();
        let common_prefix = old.chars().zip(new.chars()).take_while(|(a, b)| a == b).count();
        let prefix_bytes: usize = old.chars().take(common_prefix).map(char::len_utf8).sum();
        prop_assert!(edit.span.start <= prefix_bytes);
        prop_assert!(kept <= old.len().min(new.len()));
        if old == new {
            prop_assert!(edit.span.is_empty() && edit.replacement.is_empty());
        }
    }
}

#[test]
fn edit_between_finds_one_changed_character_in_a_long_text() {
    let old = generated_workflow(200, false);
    let at = old.len() / 2;
    let at = (at..)
        .find(|&i| old.is_char_boundary(i) && old.as_bytes()[i] != b'x')
        .unwrap();
    let new = format!("{}x{}", &old[..at], &old[at..]);
    let edit = edit_between(&old, &new);
    assert_eq!(edit.replacement.len(), 1);
    assert!(edit.span.is_empty());
    assert_eq!(edit_between(&old, &old).span, Span::at(old.len()));
}

/// A long sequence on a larger file, where most edits land in steps and
/// positions must move through many steps after them.
#[test]
fn long_edit_sequences_stay_exact() {
    let text = generated_workflow(120, true);
    // A fixed seed: how many random edits keep the YAML whole varies from
    // seed to seed (one early structural break can make the rest decline),
    // and the share below is a property of these sequences, not of every
    // sequence. Exactness is checked on random seeds by the test above.
    let mut runner = proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig {
            cases: 6,
            ..ProptestConfig::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = (
        prop::collection::vec(random_edit(), 150..200),
        prop::bool::ANY,
    );
    let total = std::cell::Cell::new((0, 0));
    runner
        .run(&strategy, |(edits, undo)| {
            let after_breakage = if undo {
                AfterBreakage::Undo
            } else {
                AfterBreakage::FromLastClean
            };
            let fast = check_edits(&text, &edits, after_breakage)?;
            let (f, n) = total.get();
            total.set((f + fast, n + edits.len()));
            Ok(())
        })
        .expect("reparse agrees with full parses");
    let (fast, all) = total.get();
    // Random edits break the YAML often, but many must still be fast.
    assert!(
        fast * 10 > all,
        "only {fast} of {all} random edits took the fast path"
    );
}

// ---- typical edits take the fast path ---------------------------------------

/// Applies an edit at the first occurrence of `anchor` (offset `skip` into
/// it), deleting `delete` bytes and inserting `insert`, and checks that the
/// fast path answers with a full parse's result.
fn fast(text: &str, anchor: &str, skip: usize, delete: usize, insert: &str) -> String {
    let start = text
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor:?} not found"))
        + skip;
    let edit = Edit {
        span: Span::new(start, start + delete),
        replacement: insert.to_string(),
    };
    let new_text = format!("{}{insert}{}", &text[..start], &text[start + delete..]);
    let got = reparse(text, parse_workflow(text), &edit, &new_text)
        .unwrap_or_else(|declined| panic!("declined: {:?}", declined.reason));
    let expected = parse_workflow(&new_text);
    assert!(same(&got, &expected), "{got:#?}\n{expected:#?}");
    new_text
}

fn declined(text: &str, anchor: &str, skip: usize, delete: usize, insert: &str) -> DeclineReason {
    let start = text
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor:?} not found"))
        + skip;
    let edit = Edit {
        span: Span::new(start, start + delete),
        replacement: insert.to_string(),
    };
    let new_text = format!("{}{insert}{}", &text[..start], &text[start + delete..]);
    let old = parse_workflow(text);
    let before = copy(&old);
    match reparse(text, old, &edit, &new_text) {
        Ok(_) => panic!("took the fast path for {edit:?}"),
        Err(declined) => {
            assert!(same(&declined.parsed, &before));
            declined.reason
        }
    }
}

#[test]
fn typing_inside_an_expression_is_fast() {
    let text = generated_workflow(12, false);
    let typed = fast(&text, "nodes.created.output.agentSessionId", 17, 0, "x");
    // Breaking the expression adds a diagnostic where the steps' go.
    let broken = fast(&typed, "nodes.created.outxput", 5, 1, "..");
    let parsed = parse_workflow(&broken);
    assert_eq!(parsed.diagnostics.len(), 1, "{:#?}", parsed.diagnostics);
    // And mending it removes it.
    let mended = fast(&broken, "nodes..created", 5, 2, ".");
    assert_eq!(mended, typed);
}

#[test]
fn typing_in_a_steps_text_is_fast() {
    let text = generated_workflow(12, true);
    fast(&text, "could not finish", 5, 0, "really ");
    fast(&text, "Line one of", 4, 0, "\u{e9}");
    fast(&text, "QA queued as", 2, 0, "Q");
}

#[test]
fn adding_a_config_key_line_is_fast() {
    let text = generated_workflow(12, false);
    let anchor = "        workType: development\n";
    let with_key = fast(&text, anchor, anchor.len(), 0, "        priority: high\n");
    assert!(with_key.contains("priority: high"));
    // Typed a character at a time. `        p` alone does not parse (a
    // plain scalar where keys are), so a server re-parses from the last
    // clean parse with the difference of the texts.
    let mut good = (text.clone(), parse_workflow(&text));
    let mut typed = text;
    let at = typed.find(anchor).unwrap() + anchor.len();
    for (i, c) in "        p: 1\n".char_indices() {
        typed.insert(at + i, c);
        let edit = edit_between(&good.0, &typed);
        match reparse(&good.0, copy(&good.1), &edit, &typed) {
            Ok(got) => {
                assert!(same(&got, &parse_workflow(&typed)));
                good = (typed.clone(), got);
            }
            Err(declined) => {
                assert!(
                    !clean(&parse_workflow(&typed)),
                    "{c:?}: {:?}",
                    declined.reason
                );
            }
        }
    }
    assert_eq!(good.0, typed, "the finished line takes the fast path");
}

#[test]
fn deleting_a_character_in_a_step_id_is_fast() {
    let text = generated_workflow(12, false);
    let new_text = fast(&text, "id: s5\n", 5, 1, "");
    assert!(new_text.contains("id: s\n"));
    fast(&text, "id: s5\n", 4, 1, "");
    // The last step, whose end is the end of the sequence and the document.
    fast(&text, "id: s12\n", 5, 1, "");
    fast(&text, "status: Done\n", 12, 0, "!");
}

#[test]
fn the_last_step_and_the_end_of_the_file() {
    let text = generated_workflow(5, false);
    assert!(text.ends_with("status: Done\n"));
    // Typing at the very end of the text (after the last newline) lands on
    // a blank line of the last item.
    let end = text.len();
    let edit = Edit {
        span: Span::at(end),
        replacement: "      next: [s1]".to_string(),
    };
    let new_text = format!("{text}      next: [s1]");
    let got = reparse(&text, parse_workflow(&text), &edit, &new_text).expect("fast");
    assert!(same(&got, &parse_workflow(&new_text)));
    let trimmed = text.trim_end();
    let edit = Edit {
        span: Span::at(trimmed.len()),
        replacement: "e".to_string(),
    };
    let new_text = format!("{trimmed}e");
    let got = reparse(trimmed, parse_workflow(trimmed), &edit, &new_text).expect("fast");
    assert!(same(&got, &parse_workflow(&new_text)));
}

#[test]
fn steps_turning_invalid_and_back_are_fast() {
    let text = generated_workflow(12, false);
    // The type goes missing: the step is dropped, its id kept aside.
    let dropped = fast(&text, "type: gate", 0, 10, "tpe: gate");
    let parsed = parse_workflow(&dropped);
    assert!(!parsed.workflow.as_ref().unwrap().dropped_steps.is_empty());
    let back = fast(&dropped, "tpe: gate", 0, 9, "type: gate");
    assert_eq!(back, text);
    // The id goes missing: nothing of the step is kept.
    fast(&text, "- id: s4", 2, 2, "xx");
    // A duplicate key inside a step is the YAML layer's diagnostic.
    let anchor = "        workType: development\n";
    let duplicated = fast(&text, anchor, anchor.len(), 0, "        workType: qa\n");
    assert!(
        parse_workflow(&duplicated).diagnostics[0]
            .message
            .contains("duplicate key")
    );
}

#[test]
fn comment_lines_at_the_margin_do_not_end_a_step() {
    // The step's `config` comes after a comment at column 0: the step is
    // dropped (no `type`) until the type is fixed, and then its config must
    // be there.
    let text = "apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: t, version: \"1\"}
spec:
  steps:
    - id: a
      type: trigger
      config: {triggerId: t}
    - id: b
      tpe: action
# a comment at the margin
      config:
        action: x@1:y.z
    # and one at the dashes' column
    - id: c
      type: action
";
    let fixed = fast(text, "tpe", 1, 0, "y");
    let parsed = parse_workflow(&fixed);
    let step = &parsed.workflow.as_ref().unwrap().steps[1];
    assert_eq!(step.action.as_ref().unwrap().value, "x@1:y.z");
    // Inside the lines after the comment, too.
    fast(&fixed, "x@1", 1, 0, "z");
    fast(&fixed, "# a comment", 3, 0, "z");
}

#[test]
fn an_empty_value_at_the_end_of_a_step_is_placed_by_what_follows() {
    // `? key` without a value: the YAML layer places the empty value after
    // the next indicator it finds, here the next item's dash, which a parse
    // of the step alone cannot see.
    let text = SMALL.replace("      next: [b]\n", "      next: [b]\n      ? k\n");
    assert_eq!(
        declined(&text, "? k", 2, 0, "x"),
        DeclineReason::ItemNotSelfContained
    );
}

#[test]
fn block_scalars_at_the_end_of_a_step() {
    let text = generated_workflow(12, true);
    // The step ends with a block scalar kept with its trailing blank lines.
    fast(&text, "        kept\n", 10, 0, "x");
    fast(&text, "        kept\n", 12, 0, "\n");
    fast(&text, "        kept\n", 13, 0, "        more\n");
    fast(&text, "        kept\n", 13, 1, "");
    fast(&text, "after a blank line", 0, 0, "  ");
}

// ---- every reason to decline ----------------------------------------------

const SMALL: &str = "apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: t, version: \"1\"}
spec:
  steps:
    - id: a
      type: trigger
      config: {triggerId: t}
      next: [b]
    - id: b
      type: action
      config:
        action: x@1:y.z
        text: \"{{ nodes.a.output.x }}\"
";

#[test]
fn declines_without_a_workflow() {
    let text = "kind: x\n";
    assert_eq!(declined(text, "x", 0, 1, "y"), DeclineReason::NoWorkflow);
}

#[test]
fn declines_after_a_yaml_error() {
    // The first document holds the workflow; a second one breaks off.
    let text = format!("{SMALL}---\n[\n");
    assert_eq!(
        declined(&text, "id: b", 4, 0, "x"),
        DeclineReason::YamlError
    );
}

#[test]
fn declines_an_edit_that_does_not_fit() {
    let old = parse_workflow(SMALL);
    let edit = Edit {
        span: Span::new(SMALL.len(), SMALL.len() + 1),
        replacement: String::new(),
    };
    let reason = reparse(SMALL, old, &edit, SMALL).unwrap_err().reason;
    assert_eq!(reason, DeclineReason::InvalidEdit);
    // The new text is not the old one with the edit applied.
    let at = SMALL.find("id: b").unwrap();
    let edit = Edit {
        span: Span::at(at),
        replacement: "x".to_string(),
    };
    let reason = reparse(SMALL, parse_workflow(SMALL), &edit, &format!("{SMALL}y"))
        .unwrap_err()
        .reason;
    assert_eq!(reason, DeclineReason::InvalidEdit);
}

#[test]
fn declines_flow_sequences_of_steps() {
    let text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: t, version: \"1\"}\nspec:\n  steps: [{id: a, type: action}]\n";
    assert_eq!(
        declined(text, "id: a", 4, 0, "x"),
        DeclineReason::StepsNotBlockSequence
    );
}

#[test]
fn declines_when_an_enclosing_collection_has_an_anchor() {
    let text = SMALL.replace("spec:\n", "spec: &s\n") + "x: *s\n";
    assert_eq!(
        declined(&text, "id: b", 4, 0, "x"),
        DeclineReason::AnchoredAncestor
    );
}

#[test]
fn declines_edits_outside_one_item() {
    let outside = DeclineReason::OutsideStepItem;
    assert_eq!(declined(SMALL, "name: t", 6, 1, "u"), outside);
    // The dash and its indentation.
    assert_eq!(declined(SMALL, "    - id: b", 4, 1, "+"), outside);
    assert_eq!(declined(SMALL, "    - id: b", 0, 0, " "), outside);
    // Across two items.
    assert_eq!(declined(SMALL, "next: [b]", 5, 20, ""), outside);
}

#[test]
fn declines_when_the_item_would_end_elsewhere() {
    let extent = DeclineReason::ItemExtentChanged;
    // A line at the dashes' column appears inside the item…
    assert_eq!(declined(SMALL, "      next: [b]", 0, 2, ""), extent);
    // …or a new item starts.
    assert_eq!(
        declined(SMALL, "\n      next: [b]", 1, 0, "    - id: c\n"),
        extent
    );
    // The line that ended the item is indented into it.
    assert_eq!(
        declined(SMALL, "    - id: b", 0, 0, "  "),
        DeclineReason::OutsideStepItem
    );
    let text = format!("{SMALL}top: 1\n");
    assert_eq!(
        declined(&text, "top: 1", 0, 0, "  "),
        DeclineReason::OutsideStepItem
    );
    assert_eq!(
        declined(&text, "\ntop: 1", 0, 0, "\nx"),
        DeclineReason::ItemExtentChanged
    );
    // A blank line or a comment line does not end an item.
    fast(&text, "\ntop: 1", 0, 0, "\n");
    fast(&text, "\ntop: 1", 0, 0, "\n# c");
}

#[test]
fn declines_tabs_and_lone_carriage_returns_in_the_lines_it_reads() {
    let whitespace = DeclineReason::UnsupportedWhitespace;
    assert_eq!(declined(SMALL, "      next: [b]", 0, 1, "\t"), whitespace);
    assert_eq!(declined(SMALL, "id: a", 4, 0, "\r"), whitespace);
}

#[test]
fn declines_items_that_do_not_stand_alone() {
    let alone = DeclineReason::ItemNotSelfContained;
    // A syntax error in the new item.
    assert_eq!(declined(SMALL, "[b]", 2, 1, ""), alone);
    // An anchor, an alias.
    assert_eq!(declined(SMALL, "next: [b]", 6, 0, "&n "), alone);
    assert_eq!(declined(SMALL, "[b]", 1, 1, "*n"), alone);
    // Two items where there was one.
    assert_eq!(declined(SMALL, "- id: b", 1, 1, "-"), alone);
}

#[test]
fn declines_a_previous_parse_that_does_not_match_its_text() {
    let stale = parse_workflow(&SMALL.replace("id: b", "id: q"));
    let at = SMALL.find("x@1").unwrap();
    let edit = Edit {
        span: Span::at(at),
        replacement: "w".to_string(),
    };
    let new_text = format!("{}w{}", &SMALL[..at], &SMALL[at..]);
    let reason = reparse(SMALL, stale, &edit, &new_text).unwrap_err().reason;
    assert_eq!(reason, DeclineReason::PreviousParseMismatch);
}

#[test]
fn declines_when_new_diagnostics_have_no_known_place() {
    // A diagnostic before the steps (metadata lacks `version`) and one
    // after them (an unknown top-level key), none from a step: where the
    // step's first goes depends on which is which.
    let text = SMALL.replace("version: \"1\"", "v: \"1\"") + "extra: 1\n";
    assert_eq!(
        declined(&text, "type: action", 11, 1, ""),
        DeclineReason::DiagnosticPositionUnknown
    );
    // With no diagnostic at all, or one from another step, the place is known.
    fast(SMALL, "type: action", 11, 1, "");
    let text = SMALL.replace("next: [b]", "next: [b]\n      bogus: 1");
    fast(&text, "{{ nodes", 3, 0, "+");
}

// ---- measurement --------------------------------------------------------------

/// `cargo test --release -p donmai-grammar --test incremental -- --ignored --nocapture`
#[test]
#[ignore = "measurement; run in release"]
fn reparse_timings() {
    for steps in [100, 1_000, 5_000] {
        let text = generated_workflow(steps, false);
        let lines = text.lines().count();
        let anchor = format!("    - id: s{}\n", steps / 2);
        let middle = text.find(&anchor).expect("the middle step") + anchor.len();
        let expr = middle + text[middle..].find("{{ ").expect("an expression") + 3;
        let best = |run: &mut dyn FnMut()| {
            let mut times: Vec<f64> = (0..25)
                .map(|_| {
                    let started = std::time::Instant::now();
                    run();
                    started.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            times.sort_by(f64::total_cmp);
            (times[0], times[times.len() / 2])
        };
        let edit = Edit {
            span: Span::at(expr),
            replacement: "x".to_string(),
        };
        let new_text = format!("{}x{}", &text[..expr], &text[expr..]);
        let (full_best, full_median) = best(&mut || {
            std::hint::black_box(parse_workflow(&new_text));
        });
        let mut parsed = Some(parse_workflow(&text));
        let (incr_best, incr_median) = {
            let mut times = Vec::new();
            for _ in 0..25 {
                let old = parsed.take().expect("a parse");
                let started = std::time::Instant::now();
                let new = reparse(&text, old, &edit, &new_text).expect("fast path");
                times.push(started.elapsed().as_secs_f64() * 1e6);
                // Back to the old text for the next round, also incrementally.
                let undo = Edit {
                    span: Span::new(expr, expr + 1),
                    replacement: String::new(),
                };
                parsed = Some(reparse(&new_text, new, &undo, &text).expect("fast path"));
            }
            times.sort_by(f64::total_cmp);
            (times[0], times[times.len() / 2])
        };
        let (diff_best, diff_median) = best(&mut || {
            std::hint::black_box(edit_between(&text, &new_text));
        });
        println!(
            "{steps:>5} steps, {lines:>6} lines: full parse {full_median:>9.1} µs (best {full_best:.1}), reparse {incr_median:>7.1} µs (best {incr_best:.1}), {:.0}x; edit_between {diff_median:.1} µs (best {diff_best:.1})",
            full_median / incr_median
        );
    }
    // How often typical keystrokes take the fast path, over every step.
    let text = generated_workflow(1_000, false);
    let parsed_once = parse_workflow(&text);
    let mut counts = Vec::new();
    for (what, needle, offset, delete, insert) in [
        ("type in an expression", "{{ ", 3, 0, "x"),
        ("type in an id", "- id: s", 7, 0, "x"),
        ("delete in an id", "- id: s", 7, 1, ""),
        (
            "add a config key line",
            "      config:\n",
            14,
            0,
            "        priority: high\n",
        ),
        ("type a space in a value", "action: ", 8, 0, " "),
    ] {
        let (mut taken, mut total) = (0, 0);
        for (at, _) in text.match_indices(needle) {
            let start = at + offset;
            let edit = Edit {
                span: Span::new(start, start + delete),
                replacement: insert.to_string(),
            };
            let new_text = format!("{}{insert}{}", &text[..start], &text[start + delete..]);
            total += 1;
            if reparse(&text, copy(&parsed_once), &edit, &new_text).is_ok() {
                taken += 1;
            }
        }
        counts.push(format!("{what}: {taken}/{total}"));
    }
    println!("fast path over a 1,000-step file: {}", counts.join(", "));
}

/// A comment or blank space typed inside a step changes nothing but
/// positions; a character typed into an expression does.
#[test]
fn only_positions_moved_tells_trivia_from_tokens() {
    let text = generated_workflow(9, true);
    let old = parse_workflow(&text);
    let comment = text.find("\n    - id:").expect("a step") + 1;
    let comment_end = text[comment..].find('\n').expect("a line") + comment;
    let cases = [
        (comment_end, "  # a note", true),
        (text.find("{{ ").expect("an expression") + 3, "x", false),
    ];
    for (at, insert, trivia) in cases {
        let edit = Edit {
            span: Span::at(at),
            replacement: insert.to_string(),
        };
        let mut new_text = text.clone();
        new_text.insert_str(at, insert);
        let reparsed = reparse_detailed(&text, copy(&old), &edit, &new_text)
            .unwrap_or_else(|declined| panic!("declined: {:?}", declined.reason));
        assert_eq!(reparsed.only_positions_moved, trivia, "{insert:?} at {at}");
        assert!(same(&reparsed.parsed, &parse_workflow(&new_text)));
    }
}
