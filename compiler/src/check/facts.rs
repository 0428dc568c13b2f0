//! What the checker learnt about the top level of a file, kept for the
//! editor (`crate::ide`): each step's verb resolution, ports, output and
//! the type `trigger` has there, the topology that says which nodes a step
//! can read, and the type of every expression it checked.
//!
//! Collected only when asked for (`check_source_with`), from state the
//! checker builds anyway; `donmaic check` pays nothing for it.

use std::collections::HashMap;
use std::sync::Arc;

use donmai_grammar::Span;
use donmai_grammar::ast::StepType;
use donmai_stdlib::types::Type;

use super::graph::Topology;
use super::reuse::Memo;
use super::{Checker, Signature};

/// A place expressions are checked at: a step, or the end of the run
/// (a group's interface outputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    Step(usize),
    End,
}

/// A step whose output an expression at some site may read.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Index of the step in the workflow.
    pub index: usize,
    /// `nodes.<id>.output` as the site sees it: optional when the step
    /// may be skipped on a path to the site.
    pub output: Type,
    /// Whether the step has succeeded on every path to the site.
    pub always_runs: bool,
}

#[derive(Clone)]
pub struct Facts {
    topology: Topology,
    /// The output type of each step, when known.
    outputs: Vec<Option<Type>>,
    /// Whether each step's `config.action` resolved to a verb the checker
    /// accepted as the step's verb (it may still carry warnings or errors
    /// such as a kind mismatch).
    verb_resolved: Vec<bool>,
    /// The input ports each step is checked against: the verb's input
    /// type, or a group's interface inputs.
    ports: Vec<Option<Type>>,
    /// The type of `trigger` at each step.
    triggers: Vec<Type>,
    trigger_at_end: Type,
    signatures: Vec<Option<Signature>>,
    /// Payload type of each declared trigger, by trigger id.
    trigger_payloads: HashMap<String, Type>,
    /// Every subexpression the steps' checks typed, with its span, sorted
    /// by start (each step's lie within it, and steps are in text order).
    expr_types: Vec<(Span, Type)>,
    /// The other typed subexpressions (a group's interface outputs),
    /// sorted by start.
    other_expr_types: Vec<(Span, Type)>,
    /// What each step contributed to the check, for re-checking one step
    /// after an edit (`super::reuse`).
    pub(super) memo: Option<Arc<Memo>>,
}

impl Facts {
    /// These facts for a text in which an edit moved only positions: the
    /// expression spans follow `moved`; nothing else holds an offset.
    pub fn moved(&self, moved: &impl Fn(usize) -> usize) -> Facts {
        let mut facts = self.clone();
        for (span, _) in facts
            .expr_types
            .iter_mut()
            .chain(&mut facts.other_expr_types)
        {
            *span = Span::new(moved(span.start), moved(span.end));
        }
        facts.memo = self.memo.as_ref().map(|memo| Arc::new(memo.moved(moved)));
        facts
    }

    pub(super) fn topology(&self) -> &Topology {
        &self.topology
    }

    pub(super) fn step_expr_types(&self) -> &[(Span, Type)] {
        &self.expr_types
    }

    pub fn step_count(&self) -> usize {
        self.outputs.len()
    }

    /// The index of the step an id names (the first one, for a duplicate).
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.topology.step(id)
    }

    pub fn output(&self, index: usize) -> Option<&Type> {
        self.outputs.get(index)?.as_ref()
    }

    pub fn verb_resolved(&self, index: usize) -> bool {
        self.verb_resolved.get(index).copied().unwrap_or(false)
    }

    pub fn ports(&self, index: usize) -> Option<&Type> {
        self.ports.get(index)?.as_ref()
    }

    /// The type of `trigger` at a site: the payloads of every trigger that
    /// reaches it, merged.
    pub fn trigger_type(&self, site: Site) -> Option<&Type> {
        match site {
            Site::Step(index) => self.triggers.get(index),
            Site::End => Some(&self.trigger_at_end),
        }
    }

    pub fn signature(&self, index: usize) -> Option<&Signature> {
        self.signatures.get(index)?.as_ref()
    }

    pub fn trigger_payload(&self, id: &str) -> Option<&Type> {
        self.trigger_payloads.get(id)
    }

    /// Successor and predecessor indices of a step.
    pub fn successors(&self, index: usize) -> &[usize] {
        self.topology
            .successors
            .get(index)
            .map_or(&[], Vec::as_slice)
    }

    pub fn predecessors(&self, index: usize) -> &[usize] {
        self.topology
            .predecessors
            .get(index)
            .map_or(&[], Vec::as_slice)
    }

    /// The steps an expression at `site` may read, in workflow order, with
    /// their outputs as seen from there: the rule `nodes.<id>` is checked by.
    pub fn upstream(&self, site: Site) -> Vec<Upstream> {
        let steps = self.outputs.len();
        let (position, ancestors) = match site {
            Site::Step(index) if index < steps => (index, Some(self.topology.ancestors(index))),
            Site::Step(_) => return Vec::new(),
            Site::End => (steps, None),
        };
        (0..steps)
            .filter(|&j| j != position && ancestors.as_ref().is_none_or(|a| a.contains(j)))
            .map(|j| {
                let always_runs = self.topology.always_ran(j, position);
                let output = self.outputs[j].clone().unwrap_or(Type::Dyn);
                Upstream {
                    index: j,
                    output: if always_runs {
                        output
                    } else {
                        output.optional()
                    },
                    always_runs,
                }
            })
            .collect()
    }

    /// Step `j` as an expression at `site` sees it, if it may read it.
    pub fn upstream_step(&self, site: Site, j: usize) -> Option<Upstream> {
        let steps = self.outputs.len();
        let position = match site {
            Site::Step(index) if index < steps && j < steps && j != index => {
                self.topology.is_ancestor(j, index).then_some(index)?
            }
            Site::End if j < steps => steps,
            _ => return None,
        };
        let always_runs = self.topology.always_ran(j, position);
        let output = self.outputs[j].clone().unwrap_or(Type::Dyn);
        Some(Upstream {
            index: j,
            output: if always_runs {
                output
            } else {
                output.optional()
            },
            always_runs,
        })
    }

    /// The innermost checked subexpression within `within` that contains
    /// `offset`, with its type.
    pub fn expr_type_at(&self, within: Span, offset: usize) -> Option<(Span, &Type)> {
        [&self.expr_types, &self.other_expr_types]
            .into_iter()
            .flat_map(|types| {
                let first = types.partition_point(|(span, _)| span.start < within.start);
                types[first..]
                    .iter()
                    .take_while(|(span, _)| span.start <= within.end)
            })
            .filter(|(span, _)| span.end <= within.end && span.start <= offset && offset < span.end)
            .min_by_key(|(span, _)| span.len())
            .map(|(span, ty)| (*span, ty))
    }

    /// Every checked subexpression's span and type, by start and end.
    pub fn expr_types(&self) -> Vec<(Span, &Type)> {
        let mut all: Vec<(Span, &Type)> = self
            .expr_types
            .iter()
            .chain(&self.other_expr_types)
            .map(|(span, ty)| (*span, ty))
            .collect();
        all.sort_by_key(|(span, _)| (span.start, span.end));
        all
    }

    /// The type of the checked subexpression spanning exactly `span`.
    pub fn expr_type_of(&self, span: Span) -> Option<&Type> {
        [&self.expr_types, &self.other_expr_types]
            .into_iter()
            .flat_map(|types| {
                let first = types.partition_point(|(s, _)| s.start < span.start);
                types[first..]
                    .iter()
                    .take_while(|(s, _)| s.start == span.start)
            })
            .find(|(s, _)| *s == span)
            .map(|(_, ty)| ty)
    }
}

impl Checker<'_> {
    /// Moves what the checker learnt into [`Facts`]; called once, after
    /// every rule ran.
    pub(super) fn facts(&mut self) -> Facts {
        let steps = self.workflow.steps.len();
        let triggers: Vec<Type> = (0..steps).map(|index| self.trigger_type(index)).collect();
        let trigger_at_end = self.trigger_type(steps);
        let ports = (0..steps)
            .map(|index| match self.workflow.steps[index].ty.value {
                StepType::Group | StepType::Loop => self.signatures[index]
                    .as_ref()
                    .map(|s| Type::Object(s.inputs.clone())),
                _ => self.verbs[index].map(|verb| verb.input_type()),
            })
            .collect();
        // Each step's expression types sorted in place keeps them apart
        // from the others, for the memo; the steps' lie in text order unless
        // an alias reads a value from another step, which the memo does
        // not cover.
        let mut expr_types = self.expr_types.take().unwrap_or_default();
        let (begin, ends) = self.recording.expr_ranges();
        let steps_end = ends.last().copied().unwrap_or(begin);
        let mut other_expr_types = expr_types.split_off(steps_end);
        other_expr_types.extend(expr_types.drain(..begin));
        other_expr_types.sort_by_key(|(span, _)| span.start);
        let mut at = 0;
        for &end in ends {
            expr_types[at..end - begin].sort_by_key(|(span, _)| span.start);
            at = end - begin;
        }
        let in_text_order = expr_types.is_sorted_by_key(|(span, _)| span.start);
        if !in_text_order {
            expr_types.sort_by_key(|(span, _)| span.start);
        }
        let memo = in_text_order
            .then(|| {
                self.recording
                    .memo(&self.diagnostics, &self.verb_slots, steps)
            })
            .flatten()
            .map(Arc::new);
        Facts {
            topology: self
                .topology
                .take()
                .expect("facts are taken after the topology is built"),
            outputs: std::mem::take(&mut self.outputs),
            verb_resolved: self.verbs.iter().map(Option::is_some).collect(),
            ports,
            triggers,
            trigger_at_end,
            signatures: std::mem::take(&mut self.signatures),
            trigger_payloads: std::mem::take(&mut self.trigger_payloads),
            expr_types,
            other_expr_types,
            memo,
        }
    }
}
