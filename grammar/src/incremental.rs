//! Re-parsing a workflow after an edit inside one step.
//!
//! An editor sends small edits, nearly always inside one item of
//! `spec.steps`. [`reparse`] re-reads only that item's lines, lowers it with
//! the lowerer's own step code, and splices the result into the previous
//! parse. It answers only when it can show that the result is exactly what
//! [`parse_workflow`](crate::lower::parse_workflow) gives for the new text
//! (the same tree, spans and diagnostics, in the same order); otherwise it
//! declines and hands the previous parse back, and the caller parses the
//! whole file.
//!
//! # Why one item's lines can be parsed on their own
//!
//! Call the item's *region* the lines from its `-` line up to (not
//! including) the next line whose first character is at or left of the
//! dash's column (or the end of the text). Blank lines and comment lines do
//! not end a region, whatever their column: they hold no token.
//!
//! - Before the region, the old and new texts are the same, and the YAML
//!   scanner's decisions there depend on nothing past the `- ` of the item
//!   (the edit starts after it): in block context a token's fate is settled
//!   by the end of its line.
//! - Inside the region every line is indented past the dash, so no token of
//!   the item reaches down to the levels that hold the sequence; the item
//!   scans the same as in a stream holding only its region. That stream must
//!   parse without error to exactly one sequence of one item, which proves
//!   that every quoted scalar and flow collection closes inside the region;
//!   plain and block scalars end at a line this far left, as they end at the
//!   end of a stream.
//! - After the region, the text is again the same (the region must end at
//!   the same place, shifted by the edit's length change), and the scanner
//!   arrives there in the same state: at a line start, outside any flow
//!   collection, about to close the item's levels.
//!
//! What the YAML layer keeps across items is handled too: an anchor in the
//! old or the new item, or on a collection that holds the steps (an alias to
//! it would copy the item and count its size), declines; the nesting limit is
//! checked with the depth of the enclosing collections added. The tree
//! builder places an empty value after the indicator it looks for past the
//! value (`? key` with no `:`); when that search runs to the end of the
//! region, the lines after it would have decided, and the item declines.
//!
//! The previous parse is checked against its own text at the item: the old
//! region, parsed and lowered on its own, must give the step (or dropped id)
//! and diagnostics that the previous parse holds for it. That also catches
//! a region that is not what the full parse made of those lines.
//!
//! Lowering one step reads only its item. No diagnostic of the grammar
//! depends on other steps (duplicate ids, unknown targets are the checker's),
//! so nothing outside the item changes but positions.

use std::cell::Cell;

use crate::ast::*;
use crate::codes::Code;
use crate::diagnostic::{Diagnostic, Edit, Fix, Label};
use crate::expr::Expr;
use crate::lower::{LoweredItem, ParsedWorkflow, lower_step_item};
use crate::span::Span;
use crate::template::{Segment, Template};
use crate::yaml::{self, MAX_DEPTH, Node, NodeKind, SliceParsed};

/// Why [`reparse`] left the work to a full parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclineReason {
    /// The previous parse has no workflow.
    NoWorkflow,
    /// The previous parse has a YAML syntax error or hit a YAML limit: the
    /// text after the error was never read.
    YamlError,
    /// The edit does not fit the old text, or the new text is not the old
    /// one with the edit applied.
    InvalidEdit,
    /// `spec.steps` is not a block sequence (`steps: [...]`, an alias).
    StepsNotBlockSequence,
    /// A collection holding the steps may carry an anchor.
    AnchoredAncestor,
    /// The edit is not inside one step item: it touches a `- ` line's
    /// indentation or dash, lies outside `spec.steps`, or spans items.
    OutsideStepItem,
    /// The edit moves where the item ends (a line at or left of the dash
    /// appears or disappears).
    ItemExtentChanged,
    /// Tabs before a line's first character, or a lone carriage return,
    /// where the line structure must be known exactly.
    UnsupportedWhitespace,
    /// The old or new item does not parse on its own to exactly one item
    /// without a YAML error, or it uses anchors or aliases, nests too
    /// deeply, or ends with an empty value placed by what follows it.
    ItemNotSelfContained,
    /// The previous parse does not hold what its text says at the item.
    PreviousParseMismatch,
    /// The item gains diagnostics and nothing tells where
    /// [`parse_workflow`](crate::lower::parse_workflow) would list them.
    DiagnosticPositionUnknown,
}

/// The previous parse, handed back unchanged, and why.
#[derive(Debug)]
pub struct Declined {
    pub parsed: ParsedWorkflow,
    pub reason: DeclineReason,
}

/// Re-parses the step that `edit` changed.
///
/// `old` must be what [`parse_workflow`](crate::lower::parse_workflow)
/// gives for `old_text` (or what an earlier `reparse` gave, which is the
/// same), and `new_text` the old text with `edit` applied (`edit.span` in
/// old-text offsets; [`edit_between`] computes it from the two texts).
/// Returns the parse of `new_text`, equal to `parse_workflow(new_text)`, or
/// declines and returns `old` untouched. Only the lengths and the inserted
/// text are checked against `new_text` (all of it in debug builds): the
/// rest is trusted to be the old text's.
///
/// The work is proportional to the edited step plus a walk over the steps
/// after it to move their positions.
pub fn reparse(
    old_text: &str,
    old: ParsedWorkflow,
    edit: &Edit,
    new_text: &str,
) -> Result<ParsedWorkflow, Box<Declined>> {
    reparse_detailed(old_text, old, edit, new_text).map(|reparsed| reparsed.parsed)
}

/// What [`reparse_detailed`] found.
#[derive(Debug)]
pub struct Reparsed {
    pub parsed: ParsedWorkflow,
    /// The edit changed nothing but positions: the new parse is the old one
    /// with every offset past the edit moved by its length (a comment or
    /// white space edited). Whatever was derived from the old parse holds
    /// for the new one once its offsets are moved by [`shift_offset`].
    pub only_positions_moved: bool,
    /// When the edit replaced one step by one step and changed nothing else
    /// (the steps dropped for lack of an id are the same), which step, with
    /// its old parse: a checker can then redo only what depends on it.
    /// Besides that step, only offsets moved ([`shift_offset`]), and, unless
    /// [`ReplacedStep::ends_moved`], the ends of `steps_span` and the
    /// workflow's span, which may end where the step ends.
    /// Boxed: a step is large, and most edits replace none.
    pub replaced: Option<Box<ReplacedStep>>,
}

/// A step an edit changed, everything else in the parse only moved.
#[derive(Clone, Debug)]
pub struct ReplacedStep {
    /// Its index in `steps`, the same in both parses.
    pub index: usize,
    /// The step as the old text parsed, with the old text's offsets.
    pub previous: Step,
    /// The edit, in the old text's offsets.
    pub edit: Edit,
    /// Whether the ends of `steps_span` and of the workflow's span moved
    /// like every other offset; false when they end where the step ends
    /// and the edit moved that end differently (a trailing comment typed
    /// at the end of the last step).
    pub ends_moved: bool,
}

/// Where an offset of the old text is in the new one, for an edit that
/// changed nothing but positions: before the edit it stays, after it it
/// moves by the length change.
/// An offset inside what the edit replaced (there is none, when only
/// positions moved) goes to the edit's start.
pub fn shift_offset(edit: &Edit, offset: usize) -> usize {
    let delta = edit.replacement.len() as isize - edit.span.len() as isize;
    if offset <= edit.span.start {
        offset
    } else if offset >= edit.span.end {
        offset.wrapping_add_signed(delta)
    } else {
        edit.span.start
    }
}

/// [`reparse`], also telling whether the edit changed anything but
/// positions.
pub fn reparse_detailed(
    old_text: &str,
    mut old: ParsedWorkflow,
    edit: &Edit,
    new_text: &str,
) -> Result<Reparsed, Box<Declined>> {
    match plan(old_text, &mut old, edit, new_text) {
        Ok(plan) => Ok(apply(old, plan, edit)),
        // Boxed: a parse is large to move around, and a decline is followed
        // by a full parse, next to which one allocation is nothing.
        Err(reason) => Err(Box::new(Declined {
            parsed: old,
            reason,
        })),
    }
}

/// The one edit that turns `old` into `new`: what lies between their common
/// prefix and their common suffix.
///
/// A server can keep the last parse that had a workflow and no YAML error,
/// with its text, and hand `reparse` the difference from that text: a step
/// typed through a state that does not parse (a key half written) then
/// comes back to the fast path as soon as it parses again, although the
/// parses in between had no workflow to start from. Costs a comparison of
/// the two texts, which is far cheaper than parsing either.
pub fn edit_between(old: &str, new: &str) -> Edit {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let mut prefix = common_prefix(a, b);
    while !old.is_char_boundary(prefix) || !new.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let longest_suffix = a.len().min(b.len()) - prefix;
    let mut suffix = common_suffix(
        &a[a.len() - longest_suffix..],
        &b[b.len() - longest_suffix..],
    );
    while !old.is_char_boundary(a.len() - suffix) || !new.is_char_boundary(b.len() - suffix) {
        suffix -= 1;
    }
    Edit {
        span: Span::new(prefix, a.len() - suffix),
        replacement: new[prefix..b.len() - suffix].to_string(),
    }
}

/// Compared a block at a time with `==` (a `memcmp`), then byte by byte in
/// the first block that differs.
const BLOCK: usize = 256;

/// How many leading bytes `a` and `b` share.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let len = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= len && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..len]
        .iter()
        .zip(&b[at..len])
        .take_while(|(x, y)| x == y)
        .count()
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let len = a.len().min(b.len());
    let (a, b) = (&a[a.len() - len..], &b[b.len() - len..]);
    let mut matched = 0;
    while matched + BLOCK <= len
        && a[len - matched - BLOCK..len - matched] == b[len - matched - BLOCK..len - matched]
    {
        matched += BLOCK;
    }
    matched
        + a[..len - matched]
            .iter()
            .rev()
            .zip(b[..len - matched].iter().rev())
            .take_while(|(x, y)| x == y)
            .count()
}

/// Everything [`apply`] needs, settled before anything is changed.
struct Plan {
    /// The item's dash: offsets up to it are the same in both texts.
    dash: usize,
    /// How much longer the new text is; offsets past the item move by it.
    delta: isize,
    new_item: LoweredItem,
    new_yaml_diagnostics: Vec<Diagnostic>,
    /// Index in `steps` of the old item's step, or where the new one goes.
    step_at: usize,
    old_steps: usize,
    dropped_at: usize,
    old_dropped: usize,
    yaml_at: usize,
    old_yaml: usize,
    lowering_at: usize,
    old_lowering: usize,
    workflow_end: usize,
    steps_end: usize,
}

/// Reads without changing anything observable: `old` is borrowed mutably
/// only to reuse the offset walk for checks, which writes back what it read.
fn plan(
    old_text: &str,
    old: &mut ParsedWorkflow,
    edit: &Edit,
    new_text: &str,
) -> Result<Plan, DeclineReason> {
    let Some(workflow) = &old.workflow else {
        return Err(DeclineReason::NoWorkflow);
    };
    if old
        .diagnostics
        .iter()
        .any(|d| matches!(d.code, Code::YAML_SYNTAX | Code::DOCUMENT_TOO_COMPLEX))
    {
        return Err(DeclineReason::YamlError);
    }
    let delta = edit_delta(old_text, edit, new_text)?;
    let old_bytes = old_text.as_bytes();
    let new_bytes = new_text.as_bytes();

    // The steps: a block sequence whose dashes sit at column `column`.
    let steps_span = workflow.steps_span;
    let first_dash = steps_span.start;
    let steps_line = line_start(old_bytes, first_dash);
    if old_bytes.get(first_dash) != Some(&b'-')
        || !old_bytes[steps_line..first_dash].iter().all(|&b| b == b' ')
    {
        return Err(DeclineReason::StepsNotBlockSequence);
    }
    // A collection that fails to lower as `spec.steps` reports its span:
    // then `steps_span` is not the span of a list of steps.
    if old.diagnostics.iter().any(|d| d.span == steps_span) {
        return Err(DeclineReason::StepsNotBlockSequence);
    }
    let column = first_dash - steps_line;
    if may_define_anchor(&old_bytes[..first_dash]) {
        return Err(DeclineReason::AnchoredAncestor);
    }

    // The item: the nearest line at or left of the column, going up from the
    // edit, must be one of its `- ` lines.
    let (start, end) = (edit.span.start, edit.span.end);
    let region_start = item_line_above(old_bytes, start, column)?;
    let dash = region_start + column;
    let dash_ok = old_bytes.get(dash) == Some(&b'-')
        && matches!(old_bytes.get(dash + 1), None | Some(b' ' | b'\n' | b'\r'));
    if !dash_ok || dash < steps_span.start || dash >= steps_span.end || start <= dash {
        return Err(DeclineReason::OutsideStepItem);
    }
    let old_end = region_end(old_bytes, dash, column)?;
    if end > old_end {
        return Err(DeclineReason::OutsideStepItem);
    }
    let new_end = region_end(new_bytes, dash, column)?;
    if Some(new_end) != old_end.checked_add_signed(delta) {
        return Err(DeclineReason::ItemExtentChanged);
    }
    for (bytes, end) in [(old_bytes, old_end), (new_bytes, new_end)] {
        if has_lone_carriage_return(&bytes[region_start..end]) {
            return Err(DeclineReason::UnsupportedWhitespace);
        }
    }

    // Both items, each parsed and lowered on its own.
    let old_parsed = yaml::parse_slice(old_text, region_start..old_end);
    let (old_node, old_yaml_diagnostics) = standalone_item(old_parsed, dash)?;
    let old_node_end = old_node.span.end;
    let old_item = lower_step_item(old_text, &old_node);
    drop(old_node);
    let new_parsed = yaml::parse_slice(new_text, region_start..new_end);
    let (new_node, new_yaml_diagnostics) = standalone_item(new_parsed, dash)?;
    let new_node_end = new_node.span.end;
    let new_item = lower_step_item(new_text, &new_node);
    drop(new_node);

    // Where the old item's results sit in the previous parse.
    let in_item = |offset: usize| dash < offset && offset < old_end;
    let step_at = workflow.steps.partition_point(|s| s.span.start < dash);
    let old_steps = match &old_item.step {
        Some(step) if workflow.steps.get(step_at) == Some(step) => 1,
        None if workflow
            .steps
            .get(step_at)
            .is_none_or(|s| !in_item(s.span.start)) =>
        {
            0
        }
        _ => return Err(DeclineReason::PreviousParseMismatch),
    };
    let dropped_at = workflow
        .dropped_steps
        .partition_point(|id| id.span.start < dash);
    let old_dropped = old_item.dropped.len();
    let dropped_here = workflow
        .dropped_steps
        .get(dropped_at..dropped_at + old_dropped);
    let dropped_next = workflow.dropped_steps.get(dropped_at + old_dropped);
    if dropped_here != Some(&old_item.dropped[..])
        || dropped_next.is_some_and(|id| in_item(id.span.start))
    {
        return Err(DeclineReason::PreviousParseMismatch);
    }

    let diagnostics = &old.diagnostics;
    // The YAML layer's diagnostics come first, in the order of the events
    // they were found at: those before the item, the item's, those after.
    let yaml_count = diagnostics
        .iter()
        .take_while(|d| d.code == Code::DUPLICATE_KEY)
        .count();
    let yaml_at = diagnostics[..yaml_count]
        .iter()
        .position(|d| d.span.start > dash)
        .unwrap_or(yaml_count);
    let old_yaml = old_yaml_diagnostics.len();
    if diagnostics.get(yaml_at..yaml_at + old_yaml) != Some(&old_yaml_diagnostics[..])
        || diagnostics[yaml_at + old_yaml..yaml_count]
            .iter()
            .any(|d| d.span.start < old_end)
    {
        return Err(DeclineReason::PreviousParseMismatch);
    }
    let old_lowering = old_item.diagnostics.len();
    let lowering_at = if old_lowering > 0 {
        (yaml_count..diagnostics.len())
            .find(|&i| {
                diagnostics.get(i..i + old_lowering) == Some(&old_item.diagnostics[..])
                    && in_item_or_end(diagnostics[i].span.start, dash, old_end)
            })
            .ok_or(DeclineReason::PreviousParseMismatch)?
    } else {
        let at = lowering_insertion(&diagnostics[yaml_count..], steps_span, dash, old_end)?;
        match at {
            Some(at) => yaml_count + at,
            None if new_item.diagnostics.is_empty() => diagnostics.len(),
            None => return Err(DeclineReason::DiagnosticPositionUnknown),
        }
    };

    // Nothing but the item may point inside it; the enclosing collections
    // may end where it ends.
    let workflow_end = container_end(
        workflow.span.end,
        old_node_end,
        new_node_end,
        old_end,
        delta,
    )?;
    let steps_end = container_end(steps_span.end, old_node_end, new_node_end, old_end, delta)?;
    let inside = Cell::new(false);
    let check = |offset: usize| {
        if in_item(offset) {
            inside.set(true);
        }
        offset
    };
    for (i, diagnostic) in old.diagnostics.iter_mut().enumerate() {
        let in_runs = (yaml_at..yaml_at + old_yaml).contains(&i)
            || (lowering_at..lowering_at + old_lowering).contains(&i);
        if !in_runs {
            diagnostic.map_offsets(&check);
        }
    }
    let Some(workflow) = &mut old.workflow else {
        return Err(DeclineReason::NoWorkflow);
    };
    for_each_outside_steps(workflow, &check);
    if inside.get() {
        return Err(DeclineReason::PreviousParseMismatch);
    }

    Ok(Plan {
        dash,
        delta,
        new_item,
        new_yaml_diagnostics,
        step_at,
        old_steps,
        dropped_at,
        old_dropped,
        yaml_at,
        old_yaml,
        lowering_at,
        old_lowering,
        workflow_end,
        steps_end,
    })
}

fn apply(old: ParsedWorkflow, plan: Plan, edit: &Edit) -> Reparsed {
    let Plan {
        dash,
        delta,
        new_item,
        new_yaml_diagnostics,
        step_at,
        old_steps,
        dropped_at,
        old_dropped,
        yaml_at,
        old_yaml,
        lowering_at,
        old_lowering,
        workflow_end,
        steps_end,
    } = plan;
    let ParsedWorkflow {
        workflow,
        diagnostics,
    } = old;
    let mut workflow = workflow.expect("plan checked the workflow");
    // Offsets past the region move by `delta`; `plan` checked that no
    // offset outside the item falls inside the region.
    let after = |offset: usize| offset.wrapping_add_signed(delta);
    let anywhere = |offset: usize| if offset > dash { after(offset) } else { offset };

    // Whether the item's step, dropped ids and diagnostics are the old
    // ones with their offsets moved: offsets inside what the edit replaced
    // have no place in the new text and never compare equal.
    let moved = |offset: usize| {
        if offset > edit.span.start && offset < edit.span.end {
            usize::MAX
        } else {
            shift_offset(edit, offset)
        }
    };
    let previous_step: Option<Step> = workflow
        .steps
        .get(step_at..step_at + old_steps)
        .and_then(|s| s.first())
        .cloned();
    let mut old_ids: Vec<Ident> =
        workflow.dropped_steps[dropped_at..dropped_at + old_dropped].to_vec();
    old_ids.map_offsets(&moved);
    let same_dropped = old_ids == new_item.dropped;
    let only_positions_moved = {
        let mut old_step = previous_step.clone();
        old_step.map_offsets(&moved);
        let mut old_item_diagnostics: Vec<Diagnostic> = diagnostics[yaml_at..yaml_at + old_yaml]
            .iter()
            .chain(&diagnostics[lowering_at..lowering_at + old_lowering])
            .cloned()
            .collect();
        old_item_diagnostics.map_offsets(&moved);
        let new_item_diagnostics: Vec<&Diagnostic> = new_yaml_diagnostics
            .iter()
            .chain(&new_item.diagnostics)
            .collect();
        old_step == new_item.step
            && same_dropped
            && old_item_diagnostics.iter().collect::<Vec<_>>() == new_item_diagnostics
    };
    let ends_moved = shift_offset(edit, workflow.span.end) == workflow_end
        && shift_offset(edit, workflow.steps_span.end) == steps_end;
    let replaced = match (previous_step, &new_item.step) {
        (Some(previous), Some(_)) if same_dropped && !only_positions_moved => {
            Some(Box::new(ReplacedStep {
                index: step_at,
                previous,
                edit: edit.clone(),
                ends_moved,
            }))
        }
        _ => None,
    };
    let LoweredItem {
        step,
        diagnostics: new_lowering,
        dropped,
    } = new_item;
    let new_steps = usize::from(step.is_some());
    workflow.steps.splice(step_at..step_at + old_steps, step);
    let new_dropped = dropped.len();
    workflow
        .dropped_steps
        .splice(dropped_at..dropped_at + old_dropped, dropped);
    if delta != 0 {
        for step in &mut workflow.steps[step_at + new_steps..] {
            step.map_offsets(&after);
        }
        for id in &mut workflow.dropped_steps[dropped_at + new_dropped..] {
            id.map_offsets(&after);
        }
        for_each_outside_steps(&mut workflow, &anywhere);
    }
    workflow.span.end = workflow_end;
    workflow.steps_span.end = steps_end;

    let mut spliced = Vec::with_capacity(
        diagnostics.len() - old_yaml - old_lowering
            + new_yaml_diagnostics.len()
            + new_lowering.len(),
    );
    let mut new_yaml = Some(new_yaml_diagnostics);
    let mut new_lowering = Some(new_lowering);
    for (i, mut diagnostic) in diagnostics.into_iter().enumerate() {
        if i == yaml_at {
            spliced.extend(new_yaml.take().into_iter().flatten());
        }
        if i == lowering_at {
            spliced.extend(new_lowering.take().into_iter().flatten());
        }
        let replaced = (yaml_at..yaml_at + old_yaml).contains(&i)
            || (lowering_at..lowering_at + old_lowering).contains(&i);
        if !replaced {
            if delta != 0 {
                diagnostic.map_offsets(&anywhere);
            }
            spliced.push(diagnostic);
        }
    }
    spliced.extend(new_yaml.into_iter().flatten());
    spliced.extend(new_lowering.into_iter().flatten());
    Reparsed {
        parsed: ParsedWorkflow {
            workflow: Some(workflow),
            diagnostics: spliced,
        },
        only_positions_moved,
        replaced,
    }
}

/// The parts of the workflow outside `steps` and `dropped_steps`, and not
/// the two collections that enclose the item (their ends are settled apart).
fn for_each_outside_steps(workflow: &mut Workflow, f: &impl Fn(usize) -> usize) {
    let Workflow {
        api_version,
        metadata,
        requires,
        triggers,
        interface,
        steps: _,
        dropped_steps: _,
        steps_span: _,
        span: _,
    } = workflow;
    api_version.map_offsets(f);
    metadata.map_offsets(f);
    requires.map_offsets(f);
    triggers.map_offsets(f);
    interface.map_offsets(f);
}

impl MapOffsets for Workflow {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        self.steps.map_offsets(f);
        self.dropped_steps.map_offsets(f);
        self.steps_span.map_offsets(f);
        self.span.map_offsets(f);
        for_each_outside_steps(self, f);
    }
}

impl MapOffsets for ParsedWorkflow {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        self.workflow.map_offsets(f);
        self.diagnostics.map_offsets(f);
    }
}

/// The length change of a valid edit whose result is `new_text`.
fn edit_delta(old_text: &str, edit: &Edit, new_text: &str) -> Result<isize, DeclineReason> {
    let Span { start, end } = edit.span;
    let valid = start <= end
        && end <= old_text.len()
        && old_text.is_char_boundary(start)
        && old_text.is_char_boundary(end)
        && new_text.len() == old_text.len() - (end - start) + edit.replacement.len()
        && new_text
            .as_bytes()
            .get(start..start + edit.replacement.len())
            == Some(edit.replacement.as_bytes());
    if !valid {
        return Err(DeclineReason::InvalidEdit);
    }
    // Comparing the untouched text would cost a pass over the whole file on
    // every keystroke; the lengths and the inserted text are checked above.
    debug_assert!(
        new_text[..start] == old_text[..start]
            && new_text[start + edit.replacement.len()..] == old_text[end..],
        "the new text is not the old one with the edit applied"
    );
    let grown = edit.replacement.len() as isize;
    Ok(grown - (end - start) as isize)
}

fn line_start(bytes: &[u8], at: usize) -> usize {
    memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1)
}

fn next_line(bytes: &[u8], at: usize) -> usize {
    memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i + 1)
}

/// How a line starts, as far as the region rule cares.
enum LineStart {
    /// Only spaces, then a comment, the end of the line or of the text:
    /// nothing YAML's indentation rules see, whatever its column.
    Blank,
    /// The first other character, after `indent` spaces.
    Content { indent: usize },
    /// A tab or a lone carriage return before the first character: YAML's
    /// reading of the indentation is not worth modelling.
    Unclear,
}

fn classify(bytes: &[u8], start: usize) -> LineStart {
    let indent = bytes[start..].iter().take_while(|&&b| b == b' ').count();
    match bytes.get(start + indent) {
        None | Some(b'\n' | b'#') => LineStart::Blank,
        Some(b'\r') if bytes.get(start + indent + 1) == Some(&b'\n') => LineStart::Blank,
        Some(b'\t' | b'\r') => LineStart::Unclear,
        Some(_) => LineStart::Content { indent },
    }
}

/// The start of the nearest line at or above `offset`'s that has a
/// character at or left of `column`.
fn item_line_above(bytes: &[u8], offset: usize, column: usize) -> Result<usize, DeclineReason> {
    let mut at = line_start(bytes, offset);
    loop {
        match classify(bytes, at) {
            LineStart::Content { indent } if indent <= column => return Ok(at),
            LineStart::Unclear => return Err(DeclineReason::UnsupportedWhitespace),
            LineStart::Blank | LineStart::Content { .. } => {}
        }
        if at == 0 {
            return Err(DeclineReason::OutsideStepItem);
        }
        at = line_start(bytes, at - 1);
    }
}

/// The start of the first line after the dash's that has a character at or
/// left of `column`, or the end of the text.
fn region_end(bytes: &[u8], dash: usize, column: usize) -> Result<usize, DeclineReason> {
    let mut at = next_line(bytes, dash);
    while at < bytes.len() {
        match classify(bytes, at) {
            LineStart::Content { indent } if indent <= column => return Ok(at),
            LineStart::Unclear => return Err(DeclineReason::UnsupportedWhitespace),
            LineStart::Blank | LineStart::Content { .. } => at = next_line(bytes, at),
        }
    }
    Ok(bytes.len())
}

/// YAML reads a `\r` not followed by `\n` as a line break; the line rule
/// here does not.
fn has_lone_carriage_return(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n'))
}

/// Whether `bytes` may hold an anchor (`&name`). Over-approximates: `a&b`
/// in a plain scalar counts, `&&` (an expression's "and") does not.
fn may_define_anchor(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'&', bytes).any(|i| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + 1);
        before != Some(b'&')
            && !matches!(
                after,
                None | Some(b' ' | b'\t' | b'\n' | b'\r' | b'&' | b',' | b'[' | b']' | b'{' | b'}')
            )
    })
}

/// The one item of a region parsed on its own, with the YAML layer's
/// diagnostics about it, if the region is exactly one clean sequence item.
fn standalone_item(
    slice: SliceParsed<'_>,
    dash: usize,
) -> Result<(Node<'_>, Vec<Diagnostic>), DeclineReason> {
    let SliceParsed {
        parsed,
        defines_anchors,
        depends_on_what_follows,
    } = slice;
    let clean = !defines_anchors
        && !depends_on_what_follows
        && parsed.documents.len() == 1
        && parsed
            .diagnostics
            .iter()
            .all(|d| d.code == Code::DUPLICATE_KEY);
    if !clean {
        return Err(DeclineReason::ItemNotSelfContained);
    }
    let root = parsed.documents.into_iter().next().expect("one document");
    let NodeKind::Seq(items) = root.kind else {
        return Err(DeclineReason::ItemNotSelfContained);
    };
    if root.span.start != dash || items.len() != 1 {
        return Err(DeclineReason::ItemNotSelfContained);
    }
    let item = items.into_iter().next().expect("one item");
    // In the file the item sits under the root mapping, `spec` and the
    // sequence; here under the sequence only.
    if height(&item) + 3 >= MAX_DEPTH {
        return Err(DeclineReason::ItemNotSelfContained);
    }
    Ok((item, parsed.diagnostics))
}

/// Levels of collections in a tree (a scalar is 0).
fn height(node: &Node) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(node, 0)];
    while let Some((node, depth)) = pending.pop() {
        match &node.kind {
            NodeKind::Scalar(_) => deepest = deepest.max(depth),
            NodeKind::Seq(items) => pending.extend(items.iter().map(|i| (i, depth + 1))),
            NodeKind::Map(entries) => {
                deepest = deepest.max(depth + 1);
                for entry in entries {
                    pending.push((&entry.key, depth + 1));
                    pending.push((&entry.value, depth + 1));
                }
            }
        }
        if let NodeKind::Seq(_) = node.kind {
            deepest = deepest.max(depth + 1);
        }
    }
    deepest
}

/// A diagnostic of the item starts inside its node, or at its end (an empty
/// span there).
fn in_item_or_end(offset: usize, dash: usize, old_end: usize) -> bool {
    dash < offset && offset <= old_end
}

/// Where the item's first lowering diagnostic goes when it had none: among
/// the diagnostics of the other steps, which `parse_workflow` lists together
/// in step order, between the document's before and after them.
/// `None` when no step has any, so that the place is unknown (unless there
/// are no lowering diagnostics at all).
fn lowering_insertion(
    lowering: &[Diagnostic],
    steps: Span,
    dash: usize,
    old_end: usize,
) -> Result<Option<usize>, DeclineReason> {
    if lowering.is_empty() {
        return Ok(Some(0));
    }
    // Only the steps' diagnostics start inside the sequence: the others are
    // about keys and values of other entries of the document.
    let of_a_step = |d: &Diagnostic| {
        (steps.start <= d.span.start && d.span.start < steps.end)
            || (d.span.is_empty() && d.span.start == steps.end)
    };
    let Some(first) = lowering.iter().position(of_a_step) else {
        return Ok(None);
    };
    let count = lowering[first..]
        .iter()
        .take_while(|d| of_a_step(d))
        .count();
    let run = &lowering[first..first + count];
    if lowering[first + count..].iter().any(of_a_step) {
        return Err(DeclineReason::PreviousParseMismatch);
    }
    let before = run.iter().take_while(|d| d.span.start < dash).count();
    if run[before..].iter().any(|d| d.span.start <= old_end) {
        return Err(DeclineReason::PreviousParseMismatch);
    }
    Ok(Some(first + before))
}

/// The new end of a collection that encloses the item: the new item's end
/// when the old item ended it, else its end moved like any other offset.
fn container_end(
    end: usize,
    old_node_end: usize,
    new_node_end: usize,
    old_end: usize,
    delta: isize,
) -> Result<usize, DeclineReason> {
    if end == old_node_end {
        Ok(new_node_end)
    } else if end >= old_end {
        Ok(end.wrapping_add_signed(delta))
    } else {
        // It encloses the item, so it cannot end before it, nor inside it
        // anywhere but where the item ends.
        Err(DeclineReason::PreviousParseMismatch)
    }
}

/// Rewrites every byte offset a value holds through `f`. Each impl names
/// every field, so that a field added to the syntax tree cannot be missed.
/// Moves every byte offset a value holds through a function: how a parse,
/// its diagnostics and what was derived from them follow an edit.
pub trait MapOffsets {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize);
}

impl MapOffsets for Span {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        *self = Span::new(f(self.start), f(self.end));
    }
}

impl<T: MapOffsets> MapOffsets for Spanned<T> {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Spanned { value, span } = self;
        value.map_offsets(f);
        span.map_offsets(f);
    }
}

impl<T: MapOffsets> MapOffsets for Option<T> {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        if let Some(value) = self {
            value.map_offsets(f);
        }
    }
}

impl<T: MapOffsets> MapOffsets for Vec<T> {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        for value in self {
            value.map_offsets(f);
        }
    }
}

impl<T: MapOffsets> MapOffsets for Box<T> {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        (**self).map_offsets(f);
    }
}

impl<A: MapOffsets, B: MapOffsets> MapOffsets for (A, B) {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        self.0.map_offsets(f);
        self.1.map_offsets(f);
    }
}

/// Values that hold no position.
macro_rules! no_offsets {
    ($($ty:ty),*) => {
        $(impl MapOffsets for $ty {
            fn map_offsets(&mut self, _: &impl Fn(usize) -> usize) {}
        })*
    };
}

no_offsets!(
    String,
    i64,
    f64,
    ApiVersion,
    TriggerKind,
    StepType,
    GateType,
    PredicateOp
);

impl MapOffsets for Metadata {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Metadata {
            name,
            description,
            version,
            authored_by,
            project,
            span,
        } = self;
        name.map_offsets(f);
        description.map_offsets(f);
        version.map_offsets(f);
        authored_by.map_offsets(f);
        project.map_offsets(f);
        span.map_offsets(f);
    }
}

impl MapOffsets for Require {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Require { plugin, span } = self;
        plugin.map_offsets(f);
        span.map_offsets(f);
    }
}

impl MapOffsets for TriggerDef {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let TriggerDef {
            id,
            kind,
            event_type,
            schedule,
            timezone,
            fields,
            project,
            span,
        } = self;
        id.map_offsets(f);
        kind.map_offsets(f);
        event_type.map_offsets(f);
        schedule.map_offsets(f);
        timezone.map_offsets(f);
        fields.map_offsets(f);
        project.map_offsets(f);
        span.map_offsets(f);
    }
}

impl MapOffsets for TypeSyntax {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let TypeSyntax { kind, span } = self;
        match kind {
            TypeSyntaxKind::Named(_) => {}
            TypeSyntaxKind::List(inner)
            | TypeSyntaxKind::Map(inner)
            | TypeSyntaxKind::Optional(inner) => inner.map_offsets(f),
        }
        span.map_offsets(f);
    }
}

impl MapOffsets for Interface {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Interface {
            inputs,
            outputs,
            span,
        } = self;
        inputs.map_offsets(f);
        outputs.map_offsets(f);
        span.map_offsets(f);
    }
}

impl MapOffsets for Step {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Step {
            id,
            ty,
            trigger_id,
            action,
            provider,
            mode,
            cases,
            group_ref,
            max_iterations,
            until,
            inputs,
            config_span,
            config_valid: _,
            next,
            branches,
            default_handle,
            retry,
            timeout_ms,
            gate,
            span,
        } = self;
        id.map_offsets(f);
        ty.map_offsets(f);
        trigger_id.map_offsets(f);
        action.map_offsets(f);
        provider.map_offsets(f);
        mode.map_offsets(f);
        cases.map_offsets(f);
        group_ref.map_offsets(f);
        max_iterations.map_offsets(f);
        until.map_offsets(f);
        inputs.map_offsets(f);
        config_span.map_offsets(f);
        next.map_offsets(f);
        branches.map_offsets(f);
        default_handle.map_offsets(f);
        retry.map_offsets(f);
        timeout_ms.map_offsets(f);
        gate.map_offsets(f);
        span.map_offsets(f);
    }
}

impl MapOffsets for DefaultHandle {
    fn map_offsets(&mut self, _: &impl Fn(usize) -> usize) {
        match self {
            DefaultHandle::Case(_) | DefaultHandle::Branch => {}
        }
    }
}

impl MapOffsets for Input {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Input { name, value } = self;
        name.map_offsets(f);
        value.map_offsets(f);
    }
}

impl MapOffsets for Retry {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Retry {
            max_attempts,
            initial_ms,
            factor,
            max_ms,
            retry_on,
            span,
        } = self;
        max_attempts.map_offsets(f);
        initial_ms.map_offsets(f);
        factor.map_offsets(f);
        max_ms.map_offsets(f);
        retry_on.map_offsets(f);
        span.map_offsets(f);
    }
}

impl MapOffsets for OnTimeout {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        match self {
            OnTimeout::Skip | OnTimeout::Error => {}
            OnTimeout::Branch(target) => target.map_offsets(f),
        }
    }
}

impl MapOffsets for GateConfig {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let GateConfig {
            gate_type,
            signal_event_type,
            on_timeout,
            timeout_ms,
            match_,
            span,
        } = self;
        gate_type.map_offsets(f);
        signal_event_type.map_offsets(f);
        on_timeout.map_offsets(f);
        timeout_ms.map_offsets(f);
        match_.map_offsets(f);
        span.map_offsets(f);
    }
}

impl MapOffsets for Predicate {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        // Nesting is bounded by the YAML layer's depth limit.
        let Predicate { kind, span } = self;
        match kind {
            PredicateKind::All(children) | PredicateKind::Any(children) => children.map_offsets(f),
            PredicateKind::Not(child) => child.map_offsets(f),
            PredicateKind::Leaf { field, op, value } => {
                field.map_offsets(f);
                op.map_offsets(f);
                value.map_offsets(f);
            }
        }
        span.map_offsets(f);
    }
}

impl MapOffsets for Value {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Value { kind, span } = self;
        match kind {
            ValueKind::Null | ValueKind::Bool(_) | ValueKind::Int(_) | ValueKind::Double(_) => {}
            ValueKind::Str { text: _, template } => template.map_offsets(f),
            ValueKind::List(items) => items.map_offsets(f),
            ValueKind::Map(entries) => entries.map_offsets(f),
        }
        span.map_offsets(f);
    }
}

impl MapOffsets for Template {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Template {
            segments,
            diagnostics,
        } = self;
        for segment in segments {
            match segment {
                Segment::Literal { text: _, span } => span.map_offsets(f),
                Segment::Expr {
                    expr,
                    span,
                    delimiter: _,
                } => {
                    expr.map_offsets(f);
                    span.map_offsets(f);
                }
            }
        }
        diagnostics.map_offsets(f);
    }
}

impl MapOffsets for Expr {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        self.map_spans(f);
    }
}

impl MapOffsets for Diagnostic {
    fn map_offsets(&mut self, f: &impl Fn(usize) -> usize) {
        let Diagnostic {
            code: _,
            severity: _,
            span,
            message: _,
            labels,
            help: _,
            fix,
            suggestions,
        } = self;
        span.map_offsets(f);
        for Label { span, message: _ } in labels {
            span.map_offsets(f);
        }
        for Fix { message: _, edits } in fix.iter_mut().chain(suggestions) {
            for Edit {
                span,
                replacement: _,
            } in edits
            {
                span.map_offsets(f);
            }
        }
    }
}
