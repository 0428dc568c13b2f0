//! Re-checking a level after an edit to one step, reusing what the previous
//! check found for every other step.
//!
//! A check of a level runs in phases: the file-wide parts (`requires`,
//! triggers, interface), the topology, each step's output (its verb or group
//! signature), each step's inputs and routing, then the level-wide rules
//! (signature, lints). While it runs, [`Recording`] notes what each step
//! contributed to each phase; [`Memo`] keeps that with the [`Facts`].
//!
//! When an edit changed one step and nothing else (the grammar's
//! `ReplacedStep`) and that step still has the same id, type, edges, gate,
//! trigger and group reference (its verb, inputs, policy and routing mode
//! may differ), the topology is the same and so is every other step's
//! output. [`Checker::replay`] then takes the
//! topology and the other steps' results from the memo, offsets moved past
//! the edit, and checks the edited step afresh, together with the steps
//! whose expressions read its output when its verb changed that output.
//! The file-wide phases and the level-wide rules always run; they are
//! cheap, and the level-wide rules read every step (unused outputs, flat
//! chains).
//!
//! Whatever the replay cannot vouch for (a trigger step's output changed,
//! which is every downstream step's `trigger`; a reused position falls
//! inside the edit; a `requires` fix moved to another step) falls back to a
//! full check, so the result is always the one a check from scratch gives
//! (`compiler/tests/reuse.rs` holds it to that).

use std::cell::Cell;

use donmai_grammar::Diagnostic;
use donmai_grammar::Span;
use donmai_grammar::ast::Step;
use donmai_grammar::diagnostic::Edit;
use donmai_grammar::incremental::{MapOffsets, shift_offset};
use donmai_stdlib::registry::Registry;
use donmai_stdlib::types::Type;

use super::{Checker, Facts};

/// A previous check of the same file to reuse.
pub struct Reuse<'p> {
    /// The previous check's facts (with its [`Memo`]), in the old text's
    /// offsets.
    pub facts: &'p Facts,
    /// The registry the previous check resolved verbs in.
    pub registry: &'p Registry,
    /// The edit from the old text to the new one.
    pub edit: &'p Edit,
    /// The index of the step the edit replaced, and its old parse (old
    /// offsets). Every other part of the workflow only moved.
    pub step: usize,
    pub previous: &'p Step,
    /// Whether the ends of the steps' list and of the workflow moved like
    /// every other offset (`ReplacedStep::ends_moved`).
    pub ends_moved: bool,
}

/// What each step contributed to a check, as it runs: positions in the
/// checker's diagnostics and logs where each step's part ends.
#[derive(Default)]
pub(super) struct Recording {
    /// Diagnostics before the topology's.
    pub global_end: usize,
    pub topology_end: usize,
    output_ends: Vec<usize>,
    /// Plugins whose `requires` fix each step offered, in order.
    offers: Vec<String>,
    offer_ends: Vec<usize>,
    /// The first step whose group reference closed a cycle of group files.
    cycle_first: Option<usize>,
    checks_begin: usize,
    check_ends: Vec<usize>,
    /// Every upstream step each step's expressions read (`used_outputs`).
    used: Vec<u32>,
    used_ends: Vec<usize>,
    exprs_begin: usize,
    expr_ends: Vec<usize>,
}

impl Recording {
    /// Notes that the step being resolved offered the fix requiring
    /// `plugin`; always true, for use in a condition.
    pub fn offered(&mut self, plugin: &str) -> bool {
        self.offers.push(plugin.to_string());
        true
    }

    pub fn used(&mut self, step: usize) {
        self.used.push(u32::try_from(step).unwrap_or(u32::MAX));
    }

    /// The next step's output is resolved; `in_cycle` is the checker's flag.
    pub fn output_done(&mut self, diagnostics: &[Diagnostic], in_cycle: bool) {
        if in_cycle && self.cycle_first.is_none() {
            self.cycle_first = Some(self.output_ends.len());
        }
        self.output_ends.push(diagnostics.len());
        self.offer_ends.push(self.offers.len());
    }

    pub fn checks_begin(&mut self, diagnostics: usize, exprs: usize) {
        self.checks_begin = diagnostics;
        self.exprs_begin = exprs;
    }

    /// The next step's inputs and routing are checked.
    pub fn check_done(&mut self, diagnostics: &[Diagnostic], exprs: usize) {
        self.check_ends.push(diagnostics.len());
        self.used_ends.push(self.used.len());
        self.expr_ends.push(exprs);
    }

    /// Where the steps' expression types are in the recorded list.
    pub fn expr_ranges(&self) -> (usize, &[usize]) {
        (self.exprs_begin, &self.expr_ends)
    }

    /// The memo of a finished check with `steps` steps, from the checker's
    /// diagnostics and verb slots; `None` if the recording is incomplete.
    pub fn memo(
        &self,
        diagnostics: &[Diagnostic],
        verb_slots: &[Option<(u32, u32)>],
        steps: usize,
    ) -> Option<Memo> {
        if self.output_ends.len() != steps || self.check_ends.len() != steps {
            return None;
        }
        let outputs_begin = self.topology_end;
        let outputs_end = self.output_ends.last().copied().unwrap_or(outputs_begin);
        let checks_end = self.check_ends.last().copied().unwrap_or(self.checks_begin);
        let relative =
            |ends: &[usize], begin: usize| ends.iter().map(|end| end - begin).collect::<Vec<_>>();
        Some(Memo {
            topology_diagnostics: diagnostics
                .get(self.global_end..self.topology_end)?
                .to_vec(),
            output_diagnostics: diagnostics.get(outputs_begin..outputs_end)?.to_vec(),
            output_ends: relative(&self.output_ends, outputs_begin),
            offers: self.offers.clone(),
            offer_ends: self.offer_ends.clone(),
            cycle_first: self.cycle_first,
            verb_slots: verb_slots.to_vec(),
            check_diagnostics: diagnostics.get(self.checks_begin..checks_end)?.to_vec(),
            check_ends: relative(&self.check_ends, self.checks_begin),
            used: self.used.clone(),
            used_ends: self.used_ends.clone(),
            expr_ends: relative(&self.expr_ends, self.exprs_begin),
        })
    }
}

/// What each step of a level contributed to its check; see the module doc.
/// Ends are cumulative: step `i`'s part of a list is `ends[i - 1]..ends[i]`.
#[derive(Clone, Debug)]
pub struct Memo {
    topology_diagnostics: Vec<Diagnostic>,
    output_diagnostics: Vec<Diagnostic>,
    output_ends: Vec<usize>,
    offers: Vec<String>,
    offer_ends: Vec<usize>,
    cycle_first: Option<usize>,
    /// Each step's verb as (plugin slot, verb index) in the registry.
    verb_slots: Vec<Option<(u32, u32)>>,
    check_diagnostics: Vec<Diagnostic>,
    check_ends: Vec<usize>,
    used: Vec<u32>,
    used_ends: Vec<usize>,
    /// Into the facts' step expression types.
    expr_ends: Vec<usize>,
}

/// Where step `i`'s part of a list whose parts end at `ends` is.
fn part_range(ends: &[usize], i: usize) -> std::ops::Range<usize> {
    let begin = if i == 0 { 0 } else { ends[i - 1] };
    begin..ends[i]
}

/// Step `i`'s part of a list whose parts end at `ends`.
fn part<'t, T>(items: &'t [T], ends: &[usize], i: usize) -> &'t [T] {
    &items[part_range(ends, i)]
}

/// The parts of the steps before step `i`.
fn before<'t, T>(items: &'t [T], ends: &[usize], i: usize) -> &'t [T] {
    &items[..part_range(ends, i).start]
}

impl Memo {
    /// This memo for a text in which an edit moved only positions.
    pub fn moved(&self, moved: &impl Fn(usize) -> usize) -> Memo {
        let mut memo = self.clone();
        memo.topology_diagnostics.map_offsets(moved);
        memo.output_diagnostics.map_offsets(moved);
        memo.check_diagnostics.map_offsets(moved);
        memo
    }
}

/// `previous`, its offsets moved by `moved`, is `step` but for what only
/// the step's own checks read: its verb, inputs, policy and routing mode
/// (and so the spans of `config` and of the whole step). The topology and
/// the other steps' checks read its id, type, edges, gate, trigger and
/// group reference, and its output, which the caller compares.
fn same_shape(previous: &Step, step: &Step, moved: &impl Fn(usize) -> usize) -> bool {
    let mut previous = own_parts_cleared(previous.clone());
    previous.map_offsets(moved);
    previous.config_span = None;
    previous.span = Span::at(0);
    let mut step = own_parts_cleared(step.clone());
    step.config_span = None;
    step.span = Span::at(0);
    previous == step
}

fn own_parts_cleared(step: Step) -> Step {
    Step {
        action: None,
        mode: None,
        cases: None,
        max_iterations: None,
        until: None,
        inputs: Vec::new(),
        default_handle: None,
        retry: None,
        timeout_ms: None,
        ..step
    }
}

/// `items`, each moved by `place`; `None` when an offset that is not
/// `movable` occurs outside the part of step `except` (`ends` as in
/// [`Memo`]).
fn moved_except<T: Clone>(
    items: &[T],
    ends: &[usize],
    except: Option<usize>,
    place: &impl Fn(usize) -> usize,
    movable: &impl Fn(usize) -> bool,
    move_item: impl Fn(&mut T, &dyn Fn(usize) -> usize),
) -> Option<Vec<T>> {
    let skipped = except.map_or(0..0, |k| part_range(ends, k));
    let fits = Cell::new(true);
    let mut moved = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut item = item.clone();
        if skipped.contains(&i) {
            move_item(&mut item, place);
        } else {
            move_item(&mut item, &|offset| {
                if !movable(offset) {
                    fits.set(false);
                }
                place(offset)
            });
            if !fits.get() {
                return None;
            }
        }
        moved.push(item);
    }
    Some(moved)
}

impl<'a> Checker<'a> {
    /// Runs the topology, output and step phases from `reuse`, checking
    /// only the edited step; returns false, having changed nothing, when
    /// the reuse would not give what a full check gives.
    pub(super) fn replay(
        &mut self,
        reuse: &Reuse<'_>,
        stack: &mut Vec<std::path::PathBuf>,
    ) -> bool {
        let facts = reuse.facts;
        let Some(memo) = facts.memo.as_deref() else {
            return false;
        };
        let steps = &self.workflow.steps;
        let (count, k) = (steps.len(), reuse.step);
        // Diagnostics about the whole list of steps span to its end.
        if k >= count
            || !reuse.ends_moved
            || memo.verb_slots.len() != count
            || facts.step_count() != count
            || self.expr_types.is_none()
            || !self.context.registry.is_same(reuse.registry)
        {
            return false;
        }
        let edit = reuse.edit;
        // An old offset strictly inside what the edit replaced has no place
        // in the new text.
        let unplaceable = |offset: usize| {
            if offset > edit.span.start && offset < edit.span.end {
                usize::MAX
            } else {
                shift_offset(edit, offset)
            }
        };
        if !same_shape(reuse.previous, &steps[k], &unplaceable) {
            return false;
        }
        let registry = self.context.registry;
        let mut verbs = Vec::with_capacity(count);
        for slot in &memo.verb_slots {
            verbs.push(match *slot {
                None => None,
                Some((plugin, verb)) => {
                    let found = registry
                        .plugin_at(plugin as usize)
                        .and_then(|p| p.verbs.get(verb as usize));
                    match found {
                        Some(verb) => Some(verb),
                        None => return false,
                    }
                }
            });
        }
        // Everything reused, moved past the edit; the edited step's part is
        // replaced below, so only the others' positions must fall outside
        // what the edit replaced.
        let place = |offset: usize| shift_offset(edit, offset);
        let movable = |offset: usize| offset <= edit.span.start || offset >= edit.span.end;
        let diagnostics = |items: &[Diagnostic], ends: &[usize], except: Option<usize>| {
            moved_except(items, ends, except, &place, &movable, |d, f| {
                d.map_offsets(&f)
            })
        };
        let (Some(topology_diagnostics), Some(output_diagnostics), Some(check_diagnostics)) = (
            diagnostics(&memo.topology_diagnostics, &[], None),
            diagnostics(&memo.output_diagnostics, &memo.output_ends, Some(k)),
            diagnostics(&memo.check_diagnostics, &memo.check_ends, Some(k)),
        ) else {
            return false;
        };
        let Some(expr_types) = moved_except(
            facts.step_expr_types(),
            &memo.expr_ends,
            Some(k),
            &place,
            &movable,
            |(span, _): &mut (Span, Type), f: &dyn Fn(usize) -> usize| span.map_offsets(&f),
        ) else {
            return false;
        };

        // The edited step's output, afresh, after the `requires` fixes the
        // steps before it offered.
        let mark = self.diagnostics.len();
        self.requires_offered = before(&memo.offers, &memo.offer_ends, k)
            .iter()
            .cloned()
            .collect();
        self.step_output(k, stack);
        let fresh_diagnostics: Vec<Diagnostic> = self.diagnostics.drain(mark..).collect();
        let fresh_offers = std::mem::take(&mut self.recording.offers);
        let fresh_cycle = std::mem::replace(&mut self.in_cycle, false);
        // A new output is read by the steps whose expressions name this one,
        // which are checked again; a trigger step's output is also every
        // downstream step's `trigger`, so that takes a full check. Whether a
        // `requires` fix goes with a later step depends on the offers before
        // it.
        let same_output = facts.output(k) == self.outputs[k].as_ref();
        let reusable = (same_output || !facts.topology().entries.contains(&k))
            && fresh_offers[..] == *part(&memo.offers, &memo.offer_ends, k)
            && (fresh_cycle || memo.cycle_first != Some(k));
        if !reusable {
            self.outputs[k] = None;
            self.verbs[k] = None;
            self.verb_slots[k] = None;
            self.signatures[k] = None;
            self.requires_offered.clear();
            return false;
        }

        self.topology = Some(facts.topology().clone());
        self.diagnostics.extend(topology_diagnostics);
        self.recording.topology_end = self.diagnostics.len();
        let mut fresh_diagnostics = Some(fresh_diagnostics);
        for (i, verb) in verbs.into_iter().enumerate() {
            if i == k {
                self.diagnostics
                    .extend(fresh_diagnostics.take().into_iter().flatten());
                self.recording.offers.extend(fresh_offers.iter().cloned());
                self.in_cycle |= fresh_cycle;
            } else {
                self.outputs[i] = facts.output(i).cloned();
                self.verbs[i] = verb;
                self.verb_slots[i] = memo.verb_slots[i];
                self.signatures[i] = facts.signature(i).cloned();
                self.diagnostics
                    .extend_from_slice(part(&output_diagnostics, &memo.output_ends, i));
                self.recording
                    .offers
                    .extend_from_slice(part(&memo.offers, &memo.offer_ends, i));
                self.in_cycle |= memo.cycle_first == Some(i);
            }
            self.recording.output_done(&self.diagnostics, self.in_cycle);
        }
        let readers: Vec<bool> = (0..count)
            .map(|i| {
                !same_output && i != k && part(&memo.used, &memo.used_ends, i).contains(&(k as u32))
            })
            .collect();
        let exprs = |checker: &Checker<'_>| checker.expr_types.as_ref().map_or(0, Vec::len);
        self.recording
            .checks_begin(self.diagnostics.len(), exprs(self));
        for (i, reads_k) in readers.into_iter().enumerate() {
            if i == k || reads_k {
                self.step(i);
            } else {
                self.diagnostics
                    .extend_from_slice(part(&check_diagnostics, &memo.check_ends, i));
                for &j in part(&memo.used, &memo.used_ends, i) {
                    self.used_outputs.insert(j as usize);
                    self.recording.used(j as usize);
                }
                if let Some(types) = self.expr_types.as_mut() {
                    types.extend_from_slice(part(&expr_types, &memo.expr_ends, i));
                }
            }
            self.recording.check_done(&self.diagnostics, exprs(self));
        }
        true
    }
}
