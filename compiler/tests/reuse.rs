//! An edit inside one step re-checks only that step
//! (`Analysis::edited`, `check::reuse`): the result must be exactly what a
//! check from scratch gives, edit after edit, and the reuse must actually
//! happen for edits to inputs.

use std::path::{Path, PathBuf};

use donmai_compiler::check::{GroupCache, Site};
use donmai_compiler::ide::analysis::Analysis;
use donmai_compiler::ide::hover::hover;
use donmai_compiler::project::Project;
use donmai_grammar::diagnostic::Edit;
use donmai_grammar::incremental::{edit_between, reparse_detailed, shift_offset};
use donmai_grammar::lower::{ParsedWorkflow, parse_workflow};
use donmai_grammar::{Code, SourceFile};
use donmai_stdlib::registry::Registry;
use proptest::prelude::*;

mod common;
use common::cases;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The examples and the corpus: workflows with and without errors.
fn files() -> Vec<(PathBuf, String)> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in ["examples", "tests/corpus/ok", "tests/corpus/err"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .expect("a corpus folder")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        found.sort();
        paths.extend(found);
    }
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p, text)
        })
        .collect()
}

/// Everything an editor reads from an analysis, in comparable form.
fn observed(analysis: &Analysis) -> String {
    let mut out = format!("{:#?}\n", analysis.diagnostics());
    if let Some(facts) = analysis.facts() {
        for index in 0..facts.step_count() {
            out.push_str(&format!(
                "step {index}: output {:?} ports {:?} verb {} trigger {:?} signature {:?} next {:?} prev {:?} upstream {:?}\n",
                facts.output(index),
                facts.ports(index),
                facts.verb_resolved(index),
                facts.trigger_type(Site::Step(index)),
                facts.signature(index),
                facts.successors(index),
                facts.predecessors(index),
                facts.upstream(Site::Step(index)),
            ));
        }
        out.push_str(&format!("end: {:?}\n", facts.trigger_type(Site::End)));
        for (span, ty) in facts.expr_types() {
            out.push_str(&format!("{span:?}: {ty}\n"));
        }
    }
    out
}

struct Session {
    path: PathBuf,
    text: String,
    parsed: ParsedWorkflow,
    analysis: Analysis,
    project: Project,
    registry: Registry,
    cache: GroupCache,
}

/// What one edit did.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The grammar re-parsed the whole file, or the edited text did not
    /// parse cleanly: not a case for reuse.
    NotOneStep,
    /// One step replaced; the checker reused the rest.
    Reused,
    /// One step replaced; the checker checked everything.
    Full,
    /// Only positions moved: the analysis was carried over, as the
    /// language server does, and the next edit reuses that one.
    Carried,
}

impl Session {
    fn new(path: &Path, text: &str) -> Session {
        let project = Project::default();
        let registry = Registry::bundled().clone();
        let cache = GroupCache::default();
        let parsed = parse_workflow(text);
        let file = SourceFile::new(path.to_path_buf(), text.to_string());
        let analysis = Analysis::from_parsed(&file, copy(&parsed), &project, &registry, &cache);
        Session {
            path: path.to_path_buf(),
            text: text.to_string(),
            parsed,
            analysis,
            project,
            registry,
            cache,
        }
    }

    /// Applies `edit` (in the current text's offsets) and checks the
    /// analysis against a full one.
    fn apply(&mut self, edit: &Edit) -> Outcome {
        let mut new_text = self.text.clone();
        new_text.replace_range(edit.span.start..edit.span.end, &edit.replacement);
        let edit = edit_between(&self.text, &new_text);
        let file = SourceFile::new(self.path.clone(), new_text.clone());
        let full = Analysis::new(&file, &self.project, &self.registry, &self.cache);
        let reparsed = reparse_detailed(&self.text, copy(&self.parsed), &edit, &new_text);
        let (outcome, analysis, parsed) = match reparsed {
            Ok(reparsed) if reparsed.only_positions_moved => {
                let moved = |offset| shift_offset(&edit, offset);
                let analysis = self
                    .analysis
                    .moved(&file, reparsed.parsed.workflow.clone(), &moved);
                (Outcome::Carried, analysis, reparsed.parsed)
            }
            Ok(reparsed) => match reparsed.replaced {
                Some(replaced) => {
                    let analysis = self.analysis.edited(
                        &file,
                        copy(&reparsed.parsed),
                        &replaced,
                        &self.project,
                        &self.registry,
                        &self.cache,
                    );
                    let outcome = if analysis.reused_steps() {
                        Outcome::Reused
                    } else {
                        Outcome::Full
                    };
                    (outcome, analysis, reparsed.parsed)
                }
                None => (Outcome::NotOneStep, full_of(&file, self), reparsed.parsed),
            },
            Err(_) => {
                let parsed = parse_workflow(&new_text);
                (Outcome::NotOneStep, full_of(&file, self), parsed)
            }
        };
        assert_eq!(
            observed(&analysis),
            observed(&full),
            "{} after {edit:?} ({outcome:?})\n--- new text\n{new_text}",
            self.path.display()
        );
        if matches!(outcome, Outcome::Reused | Outcome::Carried) {
            for offset in (0..new_text.len()).step_by(7) {
                assert_eq!(
                    hover(&analysis, offset),
                    hover(&full, offset),
                    "hover at {offset} of {} after {edit:?}",
                    self.path.display()
                );
            }
        }
        self.text = new_text;
        self.parsed = parsed;
        self.analysis = analysis;
        outcome
    }
}

fn full_of(file: &SourceFile, session: &Session) -> Analysis {
    Analysis::new(file, &session.project, &session.registry, &session.cache)
}

fn copy(parsed: &ParsedWorkflow) -> ParsedWorkflow {
    ParsedWorkflow {
        workflow: parsed.workflow.clone(),
        diagnostics: parsed.diagnostics.clone(),
    }
}

/// Edits an author makes inside an input's value: a character typed at
/// either end, one deleted, and whole values swapped for ones that change
/// the step's diagnostics (a bad reference, null, a wrong type).
fn value_edits(text: &str, start: usize, end: usize) -> Vec<Edit> {
    let mut edits = Vec::new();
    let inner_start = if text[start..].starts_with(['"', '\'']) {
        start + 1
    } else {
        start
    };
    let inner_end = if end > inner_start && text[..end].ends_with(['"', '\'']) {
        end - 1
    } else {
        end
    };
    for at in [inner_start, inner_end] {
        edits.push(Edit {
            span: donmai_grammar::Span::at(at),
            replacement: "x".into(),
        });
    }
    if let Some(c) = text[inner_start..inner_end].chars().next() {
        edits.push(Edit {
            span: donmai_grammar::Span::new(inner_start, inner_start + c.len_utf8()),
            replacement: String::new(),
        });
    }
    for replacement in [
        "\"{{ nodes.nope.output.x }}\"",
        "\"{{ trigger.nothing ?? 1 }}\"",
        "null",
        "42",
        "\"plain\"",
    ] {
        edits.push(Edit {
            span: donmai_grammar::Span::new(start, end),
            replacement: replacement.into(),
        });
    }
    edits
}

/// Every input of every step of every file, edited in turn, each edit on
/// top of the last (so each analysis is reused from a reused one), then
/// undone.
#[test]
fn edited_analyses_equal_full_ones() {
    let mut reused = 0;
    let mut full = 0;
    for (path, text) in files() {
        let mut session = Session::new(&path, &text);
        let Some(workflow) = session.parsed.workflow.clone() else {
            continue;
        };
        let values: Vec<(usize, usize)> = workflow
            .steps
            .iter()
            .flat_map(|s| {
                s.inputs
                    .iter()
                    .map(|i| (i.value.span.start, i.value.span.end))
            })
            .collect();
        // Later values first, so earlier offsets stay valid.
        for (start, end) in values.into_iter().rev() {
            let original = session.text[start..end].to_string();
            for edit in value_edits(&session.text, start, end) {
                let before = session.text.clone();
                match session.apply(&edit) {
                    Outcome::Reused => reused += 1,
                    Outcome::Full => full += 1,
                    Outcome::NotOneStep | Outcome::Carried => {}
                }
                // Undo.
                let undo = edit_between(&session.text, &before);
                session.apply(&undo);
                assert_eq!(session.text[start..end], original);
            }
        }
    }
    eprintln!("reused {reused}, full {full}");
    assert!(
        reused > 20 * full.max(1) && reused > 1000,
        "reused {reused} times, checked fully {full} times"
    );
}

/// An edit that changes the graph (an id, an edge) is checked in full, and
/// still gives what a full check gives.
#[test]
fn edits_to_a_steps_edges_check_everything() {
    let path = root().join("examples/linear-dev-loop.yaml");
    let text = std::fs::read_to_string(&path).expect("example");
    let mut session = Session::new(&path, &text);
    let workflow = session.parsed.workflow.clone().expect("a workflow");
    let step = workflow
        .steps
        .iter()
        .find(|s| s.action.is_some() && !s.next.is_empty())
        .expect("an action with a successor");
    let next = step.next[0].span;
    let id = step.id.span;
    // From the end, so the spans stay valid.
    for span in [next, id] {
        let edit = Edit {
            span: donmai_grammar::Span::at(span.end),
            replacement: "x".into(),
        };
        let outcome = session.apply(&edit);
        assert_ne!(outcome, Outcome::Reused, "{edit:?}");
    }
}

/// A keystroke inside one step: in its `config`, or anywhere in the step
/// (its id, edges, policy and gate too).
#[derive(Clone, Debug)]
struct Typed {
    in_config: bool,
    /// Where in the config or the step, as a fraction of its length.
    at: f64,
    insert: String,
    delete: usize,
}

fn typed() -> impl Strategy<Value = Typed> {
    (
        any::<bool>(),
        0.0..1.0f64,
        prop::sample::select(vec![
            "a", "1", ".", " ", "{", "}", "\"", "?", "x.y", "{{ ", " }}", "nodes.", "\n", "#",
        ]),
        0usize..3,
    )
        .prop_map(|(in_config, at, insert, delete)| Typed {
            in_config,
            at,
            insert: insert.to_string(),
            delete,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(300)))]

    /// Typing anywhere in a step: after every keystroke the analysis
    /// equals a full one, whatever path it took.
    #[test]
    fn typing_in_a_config_gives_full_analyses(
        pick in any::<prop::sample::Index>(),
        step in any::<prop::sample::Index>(),
        keys in prop::collection::vec(typed(), 1..12),
    ) {
        thread_local! {
            static FILES: Vec<(PathBuf, String)> = files();
        }
        let (path, text) = FILES.with(|files| pick.get(files).clone());
        let mut session = Session::new(&path, &text);
        for key in keys {
            let Some(workflow) = session.parsed.workflow.clone() else { break };
            if workflow.steps.is_empty() {
                break;
            }
            let picked = step.get(&workflow.steps);
            let Some(config) = (if key.in_config { picked.config_span } else { Some(picked.span) })
            else {
                break;
            };
            let mut at = config.start + ((config.len() as f64) * key.at) as usize;
            while !session.text.is_char_boundary(at) {
                at -= 1;
            }
            let end = session.text[at..]
                .char_indices()
                .nth(key.delete)
                .map_or(session.text.len(), |(i, _)| at + i)
                .min(config.end.max(at));
            session.apply(&Edit {
                span: donmai_grammar::Span::new(at, end),
                replacement: key.insert.clone(),
            });
        }
    }
}

/// The `requires` fix goes with the first step that uses the missing
/// plugin: an edit to a later one reuses the earlier steps' results,
/// fix included, and offers none itself.
#[test]
fn the_requires_fix_stays_with_the_first_step() {
    let text = r##"apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: case, version: "1"}
requires: [{plugin: donmai@2}, {plugin: linear@1}]
triggers:
  - {id: created, kind: signal, config: {signalEventType: com.linear.AgentSessionEvent.created}}
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: created}, next: [first]}
    - id: first
      type: action
      config: {action: "slack@1:slack.send_message", channel: "#dev", text: one}
      next: [second]
    - id: second
      type: action
      config: {action: "slack@1:slack.send_message", channel: "#dev", text: two}
"##;
    let path = root().join("requires-fix.yaml");
    let mut session = Session::new(&path, text);
    let fixes = |session: &Session| {
        session
            .analysis
            .diagnostics()
            .iter()
            .filter(|d| d.fix.is_some() && d.code == Code::PLUGIN_NOT_REQUIRED)
            .count()
    };
    assert_eq!(fixes(&session), 1);
    let at = text.rfind("two").expect("the second text") + 3;
    let outcome = session.apply(&Edit {
        span: donmai_grammar::Span::at(at),
        replacement: "!".into(),
    });
    assert_eq!(outcome, Outcome::Reused);
    assert_eq!(fixes(&session), 1);
    let at = text.find("one").expect("the first text") + 3;
    let outcome = session.apply(&Edit {
        span: donmai_grammar::Span::at(at),
        replacement: "!".into(),
    });
    assert_eq!(outcome, Outcome::Reused);
    assert_eq!(fixes(&session), 1);
}

/// Every step's verb swapped for another (one with other outputs, a
/// misspelt one, one of a plugin not required): the step and the steps
/// reading its output are checked again, the rest reused, and the result
/// is a full check's.
#[test]
fn changing_a_verb_rechecks_its_readers() {
    let mut reused = 0;
    let mut full = 0;
    for (path, text) in files() {
        let mut session = Session::new(&path, &text);
        let Some(workflow) = session.parsed.workflow.clone() else {
            continue;
        };
        let actions: Vec<donmai_grammar::Span> = workflow
            .steps
            .iter()
            .filter_map(|s| s.action.as_ref().map(|a| a.span))
            .collect();
        for span in actions.into_iter().rev() {
            let original = session.text[span.start..span.end].to_string();
            for replacement in [
                "\"donmai@2:agent.dispatch_to_queue\"",
                "\"linear@1:linear.issue.get\"",
                "\"linear@1:linear.isue.get\"",
                "\"jira@1:jira.issue.get\"",
                "\"core@1:core.set\"",
            ] {
                let before = session.text.clone();
                let outcome = session.apply(&Edit {
                    span,
                    replacement: replacement.into(),
                });
                reused += usize::from(outcome == Outcome::Reused);
                full += usize::from(outcome == Outcome::Full);
                let undo = edit_between(&session.text, &before);
                session.apply(&undo);
                assert_eq!(session.text[span.start..span.end], original);
            }
        }
    }
    // A verb of a plugin missing from `requires` may move that fix from a
    // later step to this one, which takes a full check.
    assert!(
        reused > 150 && reused * 3 > reused + full,
        "verb changes: {reused} reused the other steps, {full} checked everything"
    );
}

/// A step's policy and routing settings (`retry`, `timeoutMs`, `mode`,
/// `defaultHandle`, `maxIterations`) are read by its own checks only:
/// editing them re-checks just that step.
#[test]
fn policy_and_routing_edits_recheck_one_step() {
    let mut reused = 0;
    let mut edits = 0;
    for (path, text) in files() {
        let mut session = Session::new(&path, &text);
        let Some(workflow) = session.parsed.workflow.clone() else {
            continue;
        };
        let mut spans: Vec<(donmai_grammar::Span, &[&str])> = Vec::new();
        for step in &workflow.steps {
            if let Some(retry) = &step.retry {
                if let Some(max) = &retry.max_attempts {
                    spans.push((max.span, &["0", "7", "x"]));
                }
                if let Some(initial) = &retry.initial_ms {
                    spans.push((initial.span, &["-5", "250"]));
                }
            }
            if let Some(timeout) = &step.timeout_ms {
                spans.push((timeout.span, &["0", "90000"]));
            }
            if let Some(mode) = &step.mode {
                spans.push((mode.span, &["switch", "bool", "swich"]));
            }
            if let Some(handle) = &step.default_handle {
                spans.push((handle.span, &["true", "nope"]));
            }
            if let Some(max) = &step.max_iterations {
                spans.push((max.span, &["0", "3"]));
            }
        }
        spans.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
        for (span, replacements) in spans {
            for replacement in replacements {
                if session.text[span.start..span.end] == **replacement {
                    continue;
                }
                let before = session.text.clone();
                let outcome = session.apply(&Edit {
                    span,
                    replacement: (*replacement).into(),
                });
                edits += 1;
                reused += usize::from(outcome == Outcome::Reused);
                let undo = edit_between(&session.text, &before);
                session.apply(&undo);
            }
        }
    }
    assert!(
        edits > 30 && reused == edits,
        "{reused} of {edits} policy and routing edits reused the other steps"
    );
}
