//! The plan verifier: the one gate between plan bytes (or a plan built in
//! memory) and everything that runs plans.
//!
//! It checks every property the engine and the VM assume instead of
//! re-checking at run time: every index against its table, source ranges,
//! unique names, each level's graph (acyclic, exact predecessor sets, every
//! step reachable from a trigger), step kinds against their verbs, routing
//! handles against the verbs' handles and cases, group and loop levels
//! (acyclic between levels), the bounded predicate language, retry and
//! timeout policies, and, through the bytecode verifier, each expression.
//! A [`VerifiedPlan`] exists only if all of that held, so holding one is
//! the proof.
//!
//! The verifier stops at the first problem: a plan that fails here was not
//! produced by a correct compiler (or was altered), so one precise error is
//! what a maintainer needs. Recursion over predicates and templates stops at
//! the format's limits, so even a plan built in memory with absurd nesting
//! gets an error rather than a stack overflow.

// A refused plan builds one error, once; passing it unboxed keeps the
// public error type plain to match on.
#![allow(clippy::result_large_err)]

use crate::bytecode::VerifiedExpr;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;

use crate::plan::limits::{MAX_PREDICATE_DEPTH, MAX_PREDICATE_LEAVES, MAX_TEMPLATE_DEPTH};
use crate::plan::{
    DecodedPlan, DefaultRoute, ExprCode, ExprIx, FORMAT_VERSION, Level, LevelIx, OnTimeout, Plan,
    PlanId, Port, Predicate, PredicateOp, SourceRef, StepDef, StepIx, StepKind, TemplatePart,
    TriggerIx, ValueTemplate, VerbIx, VerbKind, VerbRef, encode_body, plan_hash,
};

/// The `apiVersion`s a plan may have been compiled from.
const API_VERSIONS: [&str; 2] = ["workflow/v1", "workflow/v2"];

/// A plan that passed [`verify`]: only the verifier constructs one, and it
/// gives read-only access to the plan (through `Deref` as well).
#[derive(Debug)]
pub struct VerifiedPlan {
    plan: Plan,
    id: PlanId,
    /// Every expression of the plan, verified and loaded for the VM, in the
    /// order of [`Plan::exprs`].
    exprs: Vec<VerifiedExpr>,
}

impl VerifiedPlan {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The expression at `ix`, ready to run; `None` only for an index
    /// outside the plan (which the plan's own references never are).
    pub fn expr(&self, ix: ExprIx) -> Option<&VerifiedExpr> {
        self.exprs.get(ix as usize)
    }

    /// The plan's content address (the SHA-256 of its encoded body).
    pub fn id(&self) -> PlanId {
        self.id
    }

    pub fn into_plan(self) -> Plan {
        self.plan
    }
}

impl Deref for VerifiedPlan {
    type Target = Plan;

    fn deref(&self) -> &Plan {
        &self.plan
    }
}

/// Verifies a plan built in memory (by the compiler, before it encodes it).
/// Its id is computed by encoding it.
pub fn verify(plan: Plan) -> Result<VerifiedPlan, VerifyError> {
    let exprs = Verifier::new(&plan).run()?;
    // Only now: encoding recurses, and the checks have bounded the nesting.
    let id = plan_hash(&encode_body(&plan));
    Ok(VerifiedPlan { plan, id, exprs })
}

impl DecodedPlan {
    /// Verifies a decoded plan, keeping the id the decoder checked.
    pub fn verify(self) -> Result<VerifiedPlan, VerifyError> {
        let id = self.id();
        let plan = self.into_plan();
        let exprs = Verifier::new(&plan).run()?;
        Ok(VerifiedPlan { plan, id, exprs })
    }
}

/// The first property of a plan that does not hold, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyError {
    pub location: Location,
    /// The part of the location concerned, e.g. "input `body`", "next".
    pub part: Option<String>,
    pub kind: VerifyErrorKind,
}

/// The item of the plan an error is about. Names are included so a message
/// reads without the plan at hand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Header,
    Verb {
        verb: VerbIx,
        name: String,
    },
    Expr {
        expr: ExprIx,
    },
    /// The plan as a whole (e.g. it has no level at all).
    Plan,
    Level {
        level: LevelIx,
        name: String,
    },
    Trigger {
        level: LevelIx,
        level_name: String,
        trigger: TriggerIx,
        id: String,
    },
    Step {
        level: LevelIx,
        level_name: String,
        step: StepIx,
        id: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum VerifyErrorKind {
    FormatVersion {
        found: u16,
        expected: u16,
    },
    UnknownApiVersion {
        found: String,
    },
    /// A list the format keeps sorted without duplicates is not.
    NotSorted {
        what: &'static str,
    },
    IndexOutOfRange {
        what: &'static str,
        index: u32,
        len: usize,
    },
    InvertedSourceRange {
        start: u32,
        end: u32,
    },
    Duplicate {
        what: &'static str,
        name: String,
    },
    NoLevels,
    /// Level 0 is the workflow: it has no interface inputs.
    MainLevelInputs,
    /// The level's steps form a cycle (ids in edge order).
    Cycle {
        steps: Vec<String>,
    },
    /// `predecessors` is not the set of steps with an edge into the step.
    Predecessors {
        declared: Vec<StepIx>,
        actual: Vec<StepIx>,
    },
    TriggerHasPredecessor {
        from: String,
    },
    Unreachable,
    VerbKind {
        verb: String,
        found: VerbKind,
        expected: VerbKind,
    },
    ConditionWithoutRoute {
        verb: String,
    },
    /// `branches` on a step that has no handles to route by.
    NoHandles,
    /// `next` on a step that routes by handles.
    NextOnRoutingStep,
    UnknownHandle {
        handle: String,
        allowed: Vec<String>,
    },
    HandlesNotCovered {
        handles: Vec<String>,
    },
    /// `defaultHandle` on a step that is not a switch condition.
    DefaultNotAllowed,
    DefaultCaseUnknown {
        case: String,
    },
    /// `defaultHandle: true` without a `default` branch.
    DefaultBranchMissing,
    /// A group or loop runs level 0, the workflow itself.
    RunsMainLevel,
    /// Groups and loops whose levels run each other (names in call order).
    LevelCycle {
        levels: Vec<String>,
    },
    ZeroIterations,
    TooDeep {
        what: &'static str,
        limit: usize,
    },
    TooManyLeaves {
        limit: usize,
    },
    ExistsWithValue,
    MissingPredicateValue {
        op: PredicateOp,
    },
    /// `retry` or `timeoutMs` on a step other than an action or a gate.
    PolicyNotAllowed {
        policy: &'static str,
    },
    ZeroAttempts,
    /// Stored by bits; not finite or below 1.
    BadBackoffFactor {
        bits: u64,
    },
    ZeroTimeout,
    SpanOutsideCode {
        offset: u32,
        code_len: usize,
    },
    SpansNotSorted {
        offset: u32,
    },
    /// The expression bytecode verifier refused the code.
    Bytecode {
        message: String,
    },
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plan verification failed: {}", self.location)?;
        if let Some(part) = &self.part {
            write!(f, ", {part}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for VerifyError {}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header => f.write_str("header"),
            Location::Verb { verb, name } => write!(f, "verb {verb} (`{name}`)"),
            Location::Expr { expr } => write!(f, "expression {expr}"),
            Location::Plan => f.write_str("plan"),
            Location::Level { level, name } => write!(f, "level {level} (`{name}`)"),
            Location::Trigger {
                level,
                level_name,
                trigger,
                id,
            } => write!(
                f,
                "level {level} (`{level_name}`), trigger {trigger} (`{id}`)"
            ),
            Location::Step {
                level,
                level_name,
                step,
                id,
            } => write!(f, "level {level} (`{level_name}`), step {step} (`{id}`)"),
        }
    }
}

fn backticked(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

impl fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use VerifyErrorKind as K;
        match self {
            K::FormatVersion { found, expected } => write!(
                f,
                "the header says format version {found}, this verifier checks version {expected}"
            ),
            K::UnknownApiVersion { found } => write!(
                f,
                "`{found}` is not a workflow api version (expected {})",
                API_VERSIONS.join(" or ")
            ),
            K::NotSorted { what } => write!(f, "{what} must be sorted without duplicates"),
            K::IndexOutOfRange { what, index, len } => {
                write!(f, "{what} index {index} is out of range (there are {len})")
            }
            K::InvertedSourceRange { start, end } => {
                write!(f, "source range {start}..{end} ends before it starts")
            }
            K::Duplicate { what, name } => write!(f, "{what} `{name}` appears twice"),
            K::NoLevels => f.write_str("the plan has no level; level 0 is the workflow itself"),
            K::MainLevelInputs => {
                f.write_str("level 0 is the workflow and cannot have interface inputs")
            }
            K::Cycle { steps } => write!(f, "the steps form a cycle: {}", steps.join(" → ")),
            K::Predecessors { declared, actual } => write!(
                f,
                "predecessors are {declared:?}, but the steps with an edge into it are {actual:?}"
            ),
            K::TriggerHasPredecessor { from } => {
                write!(f, "a trigger step has an edge into it, from `{from}`")
            }
            K::Unreachable => f.write_str("no trigger step reaches this step"),
            K::VerbKind {
                verb,
                found,
                expected,
            } => write!(
                f,
                "verb `{verb}` is a {} verb, the step needs a {} verb",
                verb_kind_name(*found),
                verb_kind_name(*expected)
            ),
            K::ConditionWithoutRoute { verb } => {
                write!(f, "condition verb `{verb}` names no output to route by")
            }
            K::NoHandles => f.write_str("the step has no handles, so it cannot have branches"),
            K::NextOnRoutingStep => {
                f.write_str("the step routes by its handles, so it cannot have `next`")
            }
            K::UnknownHandle { handle, allowed } => {
                write!(f, "`{handle}` is not a handle of the step")?;
                if allowed.is_empty() {
                    Ok(())
                } else {
                    write!(f, " (its handles are {})", backticked(allowed))
                }
            }
            K::HandlesNotCovered { handles } => {
                write!(f, "no branch for {} and no default", backticked(handles))
            }
            K::DefaultNotAllowed => {
                f.write_str(
                    "only a switch condition (or a gate with handles, to `branches.default`) can have a default route",
                )
            }
            K::DefaultCaseUnknown { case } => {
                write!(f, "the default handle `{case}` is not one of the cases")
            }
            K::DefaultBranchMissing => {
                f.write_str("the default routes to `branches.default`, which is missing")
            }
            K::RunsMainLevel => {
                f.write_str("a group or loop cannot run level 0, the workflow itself")
            }
            K::LevelCycle { levels } => {
                write!(
                    f,
                    "levels run each other in a cycle: {}",
                    levels.join(" → ")
                )
            }
            K::ZeroIterations => f.write_str("a loop must allow at least one iteration"),
            K::TooDeep { what, limit } => write!(f, "{what} nest deeper than {limit} levels"),
            K::TooManyLeaves { limit } => {
                write!(f, "the predicate has more than {limit} leaves")
            }
            K::ExistsWithValue => f.write_str("an `exists` predicate takes no value"),
            K::MissingPredicateValue { op } => {
                write!(f, "a `{}` predicate needs a value", predicate_op_name(*op))
            }
            K::PolicyNotAllowed { policy } => {
                write!(f, "`{policy}` applies to actions and gates only")
            }
            K::ZeroAttempts => f.write_str("a retry policy must allow at least one attempt"),
            K::BadBackoffFactor { bits } => write!(
                f,
                "the backoff factor {} must be a finite number ≥ 1",
                f64::from_bits(*bits)
            ),
            K::ZeroTimeout => f.write_str("a timeout must be positive"),
            K::SpanOutsideCode { offset, code_len } => write!(
                f,
                "an instruction span at offset {offset} lies outside the {code_len} bytes of code"
            ),
            K::SpansNotSorted { offset } => write!(
                f,
                "instruction spans must be in increasing offset order, one per offset (offset {offset})"
            ),
            K::Bytecode { message } => write!(f, "invalid bytecode: {message}"),
        }
    }
}

fn verb_kind_name(kind: VerbKind) -> &'static str {
    match kind {
        VerbKind::Action => "action",
        VerbKind::Condition => "condition",
        VerbKind::Gate => "gate",
        VerbKind::Trigger => "trigger",
    }
}

fn predicate_op_name(op: PredicateOp) -> &'static str {
    match op {
        PredicateOp::Eq => "eq",
        PredicateOp::Neq => "neq",
        PredicateOp::In => "in",
        PredicateOp::Contains => "contains",
        PredicateOp::Prefix => "prefix",
        PredicateOp::Suffix => "suffix",
        PredicateOp::Lt => "lt",
        PredicateOp::Lte => "lte",
        PredicateOp::Gt => "gt",
        PredicateOp::Gte => "gte",
        PredicateOp::Exists => "exists",
    }
}

type Check = Result<(), VerifyErrorKind>;

/// Where the walkers of one item report to.
struct At<'p> {
    location: &'p dyn Fn() -> Location,
}

impl At<'_> {
    fn fail(&self, part: Option<String>, kind: VerifyErrorKind) -> VerifyError {
        VerifyError {
            location: (self.location)(),
            part,
            kind,
        }
    }

    /// Attaches this location and `part` to a failed check.
    fn check(
        &self,
        part: impl FnOnce() -> Option<String>,
        result: Check,
    ) -> Result<(), VerifyError> {
        result.map_err(|kind| self.fail(part(), kind))
    }
}

fn in_range(what: &'static str, index: u32, len: usize) -> Check {
    if (index as usize) < len {
        Ok(())
    } else {
        Err(VerifyErrorKind::IndexOutOfRange { what, index, len })
    }
}

fn strictly_sorted<T: Ord>(what: &'static str, items: &[T]) -> Check {
    if items.windows(2).all(|pair| pair[0] < pair[1]) {
        Ok(())
    } else {
        Err(VerifyErrorKind::NotSorted { what })
    }
}

fn unique<'a>(what: &'static str, names: impl IntoIterator<Item = &'a str>) -> Check {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(VerifyErrorKind::Duplicate {
                what,
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

struct Verifier<'p> {
    plan: &'p Plan,
    /// The expressions verified so far, in plan order.
    verified: RefCell<Vec<VerifiedExpr>>,
}

impl<'p> Verifier<'p> {
    fn new(plan: &'p Plan) -> Verifier<'p> {
        Verifier {
            plan,
            verified: RefCell::new(Vec::with_capacity(plan.exprs.len())),
        }
    }

    fn run(self) -> Result<Vec<VerifiedExpr>, VerifyError> {
        self.plan()?;
        Ok(self.verified.into_inner())
    }

    fn plan(&self) -> Result<(), VerifyError> {
        self.header()?;
        for (ix, verb) in self.plan.verbs.iter().enumerate() {
            self.verb(ix as u32, verb)?;
        }
        for (ix, expr) in self.plan.exprs.iter().enumerate() {
            self.expr(ix as ExprIx, expr)?;
        }
        if self.plan.levels.is_empty() {
            let at = At {
                location: &|| Location::Plan,
            };
            return Err(at.fail(None, VerifyErrorKind::NoLevels));
        }
        for (ix, level) in self.plan.levels.iter().enumerate() {
            self.level(ix as LevelIx, level)?;
        }
        self.level_calls()
    }

    fn header(&self) -> Result<(), VerifyError> {
        let header = &self.plan.header;
        let at = At {
            location: &|| Location::Header,
        };
        if header.format_version != FORMAT_VERSION {
            return Err(at.fail(
                None,
                VerifyErrorKind::FormatVersion {
                    found: header.format_version,
                    expected: FORMAT_VERSION,
                },
            ));
        }
        if !API_VERSIONS.contains(&header.api_version.as_str()) {
            return Err(at.fail(
                None,
                VerifyErrorKind::UnknownApiVersion {
                    found: header.api_version.clone(),
                },
            ));
        }
        at.check(
            || Some("requires".into()),
            strictly_sorted("required plugins", &header.requires),
        )
    }

    fn verb(&self, ix: u32, verb: &VerbRef) -> Result<(), VerifyError> {
        let location = || Location::Verb {
            verb: ix,
            name: verb.qualified(),
        };
        let at = At {
            location: &location,
        };
        at.check(
            || Some("required inputs".into()),
            strictly_sorted("required inputs", &verb.required_inputs),
        )?;
        at.check(
            || Some("route cases".into()),
            unique("case", verb.route_cases.iter().map(String::as_str)),
        )?;
        at.check(
            || Some("handles".into()),
            unique("handle", verb.handles.iter().map(String::as_str)),
        )?;
        if verb.kind == VerbKind::Condition && verb.route_by.is_none() {
            return Err(at.fail(
                None,
                VerifyErrorKind::ConditionWithoutRoute {
                    verb: verb.qualified(),
                },
            ));
        }
        if let Some(key) = verb.idempotency_key {
            at.check(|| Some("idempotency key".into()), self.expr_index(key))?;
        }
        Ok(())
    }

    fn expr_index(&self, ix: ExprIx) -> Check {
        in_range("expression", ix, self.plan.exprs.len())
    }

    fn source(&self, source: &SourceRef) -> Check {
        in_range("source file", source.file, self.plan.sources.len())?;
        if source.start > source.end {
            return Err(VerifyErrorKind::InvertedSourceRange {
                start: source.start,
                end: source.end,
            });
        }
        Ok(())
    }

    fn expr(&self, ix: ExprIx, expr: &ExprCode) -> Result<(), VerifyError> {
        let at = At {
            location: &|| Location::Expr { expr: ix },
        };
        at.check(|| Some("source".into()), self.source(&expr.source))?;
        let mut previous: Option<u32> = None;
        for (offset, span) in &expr.spans {
            let part = || Some(format!("span at offset {offset}"));
            if previous.is_some_and(|previous| previous >= *offset) {
                return Err(at.fail(part(), VerifyErrorKind::SpansNotSorted { offset: *offset }));
            }
            previous = Some(*offset);
            if *offset as usize >= expr.code.len() {
                return Err(at.fail(
                    part(),
                    VerifyErrorKind::SpanOutsideCode {
                        offset: *offset,
                        code_len: expr.code.len(),
                    },
                ));
            }
            at.check(part, self.source(span))?;
        }
        let verified = crate::bytecode::verify(expr, &self.plan.constants).map_err(|error| {
            at.fail(
                None,
                VerifyErrorKind::Bytecode {
                    message: error.to_string(),
                },
            )
        })?;
        self.verified.borrow_mut().push(verified);
        Ok(())
    }

    fn template(&self, template: &ValueTemplate, depth: usize) -> Check {
        if depth > MAX_TEMPLATE_DEPTH {
            return Err(VerifyErrorKind::TooDeep {
                what: "value templates",
                limit: MAX_TEMPLATE_DEPTH,
            });
        }
        match template {
            ValueTemplate::Const(ix) => in_range("constant", *ix, self.plan.constants.len()),
            ValueTemplate::Expr(ix) => self.expr_index(*ix),
            ValueTemplate::Interpolate(parts) => parts.iter().try_for_each(|part| match part {
                TemplatePart::Text(_) => Ok(()),
                TemplatePart::Expr(ix) => self.expr_index(*ix),
            }),
            ValueTemplate::List(items) => items
                .iter()
                .try_for_each(|item| self.template(item, depth + 1)),
            ValueTemplate::Map(entries) => {
                unique("map key", entries.iter().map(|(key, _)| key.as_str()))?;
                entries
                    .iter()
                    .try_for_each(|(_, value)| self.template(value, depth + 1))
            }
        }
    }

    fn predicate(&self, predicate: &Predicate) -> Check {
        let mut leaves = 0;
        self.predicate_node(predicate, 1, &mut leaves)
    }

    fn predicate_node(&self, predicate: &Predicate, depth: usize, leaves: &mut usize) -> Check {
        if depth > MAX_PREDICATE_DEPTH {
            return Err(VerifyErrorKind::TooDeep {
                what: "predicates",
                limit: MAX_PREDICATE_DEPTH,
            });
        }
        match predicate {
            Predicate::All(children) | Predicate::Any(children) => children
                .iter()
                .try_for_each(|child| self.predicate_node(child, depth + 1, leaves)),
            Predicate::Not(child) => self.predicate_node(child, depth + 1, leaves),
            Predicate::Leaf { op, value, .. } => {
                *leaves += 1;
                if *leaves > MAX_PREDICATE_LEAVES {
                    return Err(VerifyErrorKind::TooManyLeaves {
                        limit: MAX_PREDICATE_LEAVES,
                    });
                }
                match (op, value) {
                    (PredicateOp::Exists, Some(_)) => Err(VerifyErrorKind::ExistsWithValue),
                    (PredicateOp::Exists, None) => Ok(()),
                    (op, None) => Err(VerifyErrorKind::MissingPredicateValue { op: *op }),
                    (_, Some(value)) => self.template(value, 1),
                }
            }
        }
    }

    fn named_templates(
        &self,
        at: &At<'_>,
        what: &'static str,
        entries: &[(String, ValueTemplate)],
    ) -> Result<(), VerifyError> {
        at.check(
            || None,
            unique(what, entries.iter().map(|(name, _)| name.as_str())),
        )?;
        for (name, template) in entries {
            at.check(
                || Some(format!("{what} `{name}`")),
                self.template(template, 1),
            )?;
        }
        Ok(())
    }

    fn ports(&self, at: &At<'_>, what: &'static str, ports: &[Port]) -> Result<(), VerifyError> {
        at.check(
            || None,
            unique(what, ports.iter().map(|port| port.name.as_str())),
        )
    }

    fn level(&self, ix: LevelIx, level: &Level) -> Result<(), VerifyError> {
        let location = || Location::Level {
            level: ix,
            name: level.name.clone(),
        };
        let at = At {
            location: &location,
        };
        if ix == 0 && !level.inputs.is_empty() {
            return Err(at.fail(None, VerifyErrorKind::MainLevelInputs));
        }
        self.ports(&at, "interface input", &level.inputs)?;
        self.named_templates(&at, "output", &level.outputs)?;
        at.check(
            || None,
            unique("trigger id", level.triggers.iter().map(|t| t.id.as_str())),
        )?;
        for (trigger_ix, trigger) in level.triggers.iter().enumerate() {
            let location = || Location::Trigger {
                level: ix,
                level_name: level.name.clone(),
                trigger: trigger_ix as u32,
                id: trigger.id.clone(),
            };
            let at = At {
                location: &location,
            };
            self.ports(&at, "field", &trigger.fields)?;
            at.check(|| Some("source".into()), self.source(&trigger.source))?;
        }
        at.check(
            || None,
            unique("step id", level.steps.iter().map(|s| s.id.as_str())),
        )?;
        for (step_ix, step) in level.steps.iter().enumerate() {
            self.step(ix, level, step_ix as StepIx, step)?;
        }
        self.graph(ix, level)
    }

    fn step_location(level_ix: LevelIx, level: &Level, step_ix: StepIx) -> Location {
        Location::Step {
            level: level_ix,
            level_name: level.name.clone(),
            step: step_ix,
            id: level.steps[step_ix as usize].id.clone(),
        }
    }

    fn step(
        &self,
        level_ix: LevelIx,
        level: &Level,
        step_ix: StepIx,
        step: &StepDef,
    ) -> Result<(), VerifyError> {
        let location = || Self::step_location(level_ix, level, step_ix);
        let at = At {
            location: &location,
        };
        let steps = level.steps.len();
        at.check(|| Some("source".into()), self.source(&step.source))?;
        self.named_templates(&at, "input", &step.inputs)?;
        for (i, target) in step.next.iter().enumerate() {
            at.check(
                || Some(format!("next[{i}]")),
                in_range("step", *target, steps),
            )?;
        }
        at.check(
            || Some("next".into()),
            unique(
                "next step",
                step.next
                    .iter()
                    .map(|target| level.steps[*target as usize].id.as_str()),
            ),
        )?;
        for (handle, target) in &step.branches {
            at.check(
                || Some(format!("branch `{handle}`")),
                in_range("step", *target, steps),
            )?;
        }
        at.check(
            || Some("branches".into()),
            unique("handle", step.branches.iter().map(|(h, _)| h.as_str())),
        )?;
        at.check(
            || Some("predecessors".into()),
            strictly_sorted("predecessors", &step.predecessors),
        )?;
        self.policy(&at, step)?;
        at.check(|| None, self.routing(level, step))
    }

    fn verb_of(&self, ix: u32, expected: VerbKind) -> Result<&'p VerbRef, VerifyErrorKind> {
        in_range("verb", ix, self.plan.verbs.len())?;
        let verb = &self.plan.verbs[ix as usize];
        if verb.kind != expected {
            return Err(VerifyErrorKind::VerbKind {
                verb: verb.qualified(),
                found: verb.kind,
                expected,
            });
        }
        Ok(verb)
    }

    fn policy(&self, at: &At<'_>, step: &StepDef) -> Result<(), VerifyError> {
        let applies = matches!(step.kind, StepKind::Action { .. } | StepKind::Gate { .. });
        if let Some(retry) = &step.retry {
            let part = || Some("retry".into());
            if !applies {
                return Err(at.fail(
                    part(),
                    VerifyErrorKind::PolicyNotAllowed { policy: "retry" },
                ));
            }
            if retry.max_attempts == 0 {
                return Err(at.fail(part(), VerifyErrorKind::ZeroAttempts));
            }
            let factor = retry.factor();
            if !(factor.is_finite() && factor >= 1.0) {
                return Err(at.fail(
                    part(),
                    VerifyErrorKind::BadBackoffFactor { bits: retry.factor },
                ));
            }
        }
        if let Some(timeout) = step.timeout_ms {
            let part = || Some("timeoutMs".into());
            if !applies {
                return Err(at.fail(
                    part(),
                    VerifyErrorKind::PolicyNotAllowed {
                        policy: "timeoutMs",
                    },
                ));
            }
            if timeout == 0 {
                return Err(at.fail(part(), VerifyErrorKind::ZeroTimeout));
            }
        }
        Ok(())
    }

    /// The step's kind against its verb, and its routing against the verb's
    /// handles.
    fn routing(&self, level: &Level, step: &StepDef) -> Check {
        let no_handles = || {
            if !step.branches.is_empty() {
                return Err(VerifyErrorKind::NoHandles);
            }
            Ok(())
        };
        // A switch may name a default case or route to `branches.default`;
        // a gate with named handles may route to `branches.default`.
        let default_allowed = match (&step.default, &step.kind) {
            (None, _) | (Some(_), StepKind::Condition { .. }) => true,
            (Some(DefaultRoute::Branch), StepKind::Gate { verb: Some(_), .. }) => {
                if !step.branches.iter().any(|(handle, _)| handle == "default") {
                    return Err(VerifyErrorKind::DefaultBranchMissing);
                }
                true
            }
            _ => false,
        };
        if !default_allowed {
            return Err(VerifyErrorKind::DefaultNotAllowed);
        }
        match &step.kind {
            StepKind::Trigger { trigger } => {
                in_range("trigger", *trigger, level.triggers.len())?;
                no_handles()
            }
            StepKind::Action { verb } => {
                self.verb_of(*verb, VerbKind::Action)?;
                no_handles()
            }
            StepKind::Condition { verb } => {
                let verb = self.verb_of(*verb, VerbKind::Condition)?;
                if !step.next.is_empty() {
                    return Err(VerifyErrorKind::NextOnRoutingStep);
                }
                if verb.route_by.is_none() {
                    return Err(VerifyErrorKind::ConditionWithoutRoute {
                        verb: verb.qualified(),
                    });
                }
                if verb.route_cases.is_empty() {
                    self.bool_routing(step)
                } else {
                    self.switch_routing(step, &verb.route_cases)
                }
            }
            StepKind::Gate { verb, gate } => {
                let handles = match verb {
                    Some(verb) => &self.verb_of(*verb, VerbKind::Gate)?.handles[..],
                    None => &[],
                };
                if handles.is_empty() {
                    no_handles()?;
                } else {
                    if !step.next.is_empty() {
                        return Err(VerifyErrorKind::NextOnRoutingStep);
                    }
                    self.handles_known(step, handles, true)?;
                    self.handles_covered(step, handles, true)?;
                }
                if let OnTimeout::Branch(target) = gate.on_timeout {
                    in_range("step", target, level.steps.len())?;
                }
                if gate.timeout_ms == Some(0) {
                    return Err(VerifyErrorKind::ZeroTimeout);
                }
                match &gate.filter {
                    Some(filter) => self.predicate(filter),
                    None => Ok(()),
                }
            }
            StepKind::Group { level } => {
                self.callee(*level)?;
                no_handles()
            }
            StepKind::Loop {
                level,
                max_iterations,
                until,
            } => {
                self.callee(*level)?;
                no_handles()?;
                if *max_iterations == 0 {
                    return Err(VerifyErrorKind::ZeroIterations);
                }
                match until {
                    Some(until) => self.predicate(until),
                    None => Ok(()),
                }
            }
        }
    }

    fn callee(&self, level: LevelIx) -> Check {
        in_range("level", level, self.plan.levels.len())?;
        if level == 0 {
            return Err(VerifyErrorKind::RunsMainLevel);
        }
        Ok(())
    }

    fn bool_routing(&self, step: &StepDef) -> Check {
        if step.default.is_some() {
            return Err(VerifyErrorKind::DefaultNotAllowed);
        }
        self.handles_known(step, &["yes".to_owned(), "no".to_owned()], false)
    }

    fn switch_routing(&self, step: &StepDef, cases: &[String]) -> Check {
        self.handles_known(step, cases, true)?;
        match &step.default {
            Some(DefaultRoute::Case(case)) => {
                if !cases.iter().any(|known| known == case) {
                    return Err(VerifyErrorKind::DefaultCaseUnknown { case: case.clone() });
                }
                Ok(())
            }
            Some(DefaultRoute::Branch) => {
                if !step.branches.iter().any(|(handle, _)| handle == "default") {
                    return Err(VerifyErrorKind::DefaultBranchMissing);
                }
                Ok(())
            }
            // Without a default handle, a `default` branch is never taken.
            None => self.handles_covered(step, cases, false),
        }
    }

    fn handles_known(&self, step: &StepDef, handles: &[String], allow_default: bool) -> Check {
        // Sets, not scans: branch and handle lists come from untrusted plans.
        let known: HashSet<&str> = handles.iter().map(String::as_str).collect();
        for (handle, _) in &step.branches {
            if known.contains(handle.as_str()) || (allow_default && handle == "default") {
                continue;
            }
            let mut allowed = handles.to_vec();
            if allow_default {
                allowed.push("default".to_owned());
            }
            return Err(VerifyErrorKind::UnknownHandle {
                handle: handle.clone(),
                allowed,
            });
        }
        Ok(())
    }

    /// Every handle has a branch, or (`default_catches`) a `default` branch
    /// catches the rest.
    fn handles_covered(&self, step: &StepDef, handles: &[String], default_catches: bool) -> Check {
        let branched: HashSet<&str> = step.branches.iter().map(|(h, _)| h.as_str()).collect();
        if default_catches && branched.contains("default") {
            return Ok(());
        }
        let uncovered: Vec<String> = handles
            .iter()
            .filter(|handle| !branched.contains(handle.as_str()))
            .cloned()
            .collect();
        if uncovered.is_empty() {
            Ok(())
        } else {
            Err(VerifyErrorKind::HandlesNotCovered { handles: uncovered })
        }
    }

    /// Predecessor sets, acyclicity and reachability of one level. Every
    /// edge target was checked to be in range before.
    fn graph(&self, level_ix: LevelIx, level: &Level) -> Result<(), VerifyError> {
        let steps = &level.steps;
        let fail = |step: usize, part: Option<String>, kind| VerifyError {
            location: Self::step_location(level_ix, level, step as StepIx),
            part,
            kind,
        };
        let successors: Vec<Vec<usize>> = steps.iter().map(edges).collect();
        let mut predecessors: Vec<Vec<StepIx>> = vec![Vec::new(); steps.len()];
        for (from, targets) in successors.iter().enumerate() {
            for &to in targets {
                predecessors[to].push(from as StepIx);
            }
        }
        for (ix, (step, actual)) in steps.iter().zip(&predecessors).enumerate() {
            if let (StepKind::Trigger { .. }, Some(&from)) = (&step.kind, actual.first()) {
                let from = steps[from as usize].id.clone();
                return Err(fail(
                    ix,
                    None,
                    VerifyErrorKind::TriggerHasPredecessor { from },
                ));
            }
            if step.predecessors != *actual {
                return Err(fail(
                    ix,
                    Some("predecessors".into()),
                    VerifyErrorKind::Predecessors {
                        declared: step.predecessors.clone(),
                        actual: actual.clone(),
                    },
                ));
            }
        }

        // Kahn's algorithm: whatever is never freed lies on or behind a cycle.
        let mut waiting: Vec<usize> = predecessors.iter().map(Vec::len).collect();
        let mut ready: Vec<usize> = (0..steps.len()).filter(|&s| waiting[s] == 0).collect();
        let mut done = vec![false; steps.len()];
        while let Some(step) = ready.pop() {
            done[step] = true;
            for &next in &successors[step] {
                waiting[next] -= 1;
                if waiting[next] == 0 {
                    ready.push(next);
                }
            }
        }
        if let Some(start) = done.iter().position(|done| !done) {
            // Every step left has a predecessor left: walking back through
            // them must come round to a step already seen.
            let mut path = vec![start];
            let mut seen_at = vec![usize::MAX; steps.len()];
            seen_at[start] = 0;
            let cycle_start = loop {
                let current = *path.last().unwrap_or(&start);
                let Some(&back) = predecessors[current].iter().find(|&&p| !done[p as usize]) else {
                    break 0; // unreachable by the invariant; report what we have
                };
                let back = back as usize;
                if seen_at[back] != usize::MAX {
                    break seen_at[back];
                }
                seen_at[back] = path.len();
                path.push(back);
            };
            let mut cycle: Vec<usize> = path[cycle_start..].to_vec();
            cycle.reverse();
            let first = cycle[0];
            cycle.push(first);
            let ids = cycle.iter().map(|&s| steps[s].id.clone()).collect();
            return Err(fail(first, None, VerifyErrorKind::Cycle { steps: ids }));
        }

        let mut reached = vec![false; steps.len()];
        let mut stack: Vec<usize> = (0..steps.len())
            .filter(|&s| matches!(steps[s].kind, StepKind::Trigger { .. }))
            .collect();
        for &s in &stack {
            reached[s] = true;
        }
        while let Some(step) = stack.pop() {
            for &next in &successors[step] {
                if !reached[next] {
                    reached[next] = true;
                    stack.push(next);
                }
            }
        }
        if let Some(unreached) = reached.iter().position(|reached| !reached) {
            return Err(fail(unreached, None, VerifyErrorKind::Unreachable));
        }
        Ok(())
    }

    /// No level runs itself through groups and loops, directly or not.
    fn level_calls(&self) -> Result<(), VerifyError> {
        let levels = &self.plan.levels;
        let callees: Vec<Vec<(usize, usize)>> = levels
            .iter()
            .map(|level| {
                level
                    .steps
                    .iter()
                    .enumerate()
                    .filter_map(|(step, def)| match def.kind {
                        StepKind::Group { level } | StepKind::Loop { level, .. } => {
                            Some((step, level as usize))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Closed,
        }
        let mut marks = vec![Mark::New; levels.len()];
        for root in 0..levels.len() {
            if marks[root] != Mark::New {
                continue;
            }
            // An explicit stack: level graphs come from untrusted plans.
            // Each frame is a level and how many of its callees were visited.
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            marks[root] = Mark::Open;
            while let Some((level, next)) = stack.last_mut() {
                let level = *level;
                let Some(&(step, callee)) = callees[level].get(*next) else {
                    marks[level] = Mark::Closed;
                    stack.pop();
                    continue;
                };
                *next += 1;
                match marks[callee] {
                    Mark::Closed => {}
                    Mark::New => {
                        marks[callee] = Mark::Open;
                        stack.push((callee, 0));
                    }
                    Mark::Open => {
                        let from = stack
                            .iter()
                            .position(|(open, _)| *open == callee)
                            .unwrap_or(0);
                        let mut names: Vec<String> = stack[from..]
                            .iter()
                            .map(|(open, _)| levels[*open].name.clone())
                            .collect();
                        names.push(levels[callee].name.clone());
                        return Err(VerifyError {
                            location: Self::step_location(
                                level as LevelIx,
                                &levels[level],
                                step as StepIx,
                            ),
                            part: None,
                            kind: VerifyErrorKind::LevelCycle { levels: names },
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// The distinct steps a step has an edge to, ascending.
fn edges(step: &StepDef) -> Vec<usize> {
    let timeout = match &step.kind {
        StepKind::Gate { gate, .. } => match gate.on_timeout {
            OnTimeout::Branch(target) => Some(target),
            OnTimeout::Skip | OnTimeout::Error => None,
        },
        _ => None,
    };
    let mut targets: Vec<usize> = step
        .next
        .iter()
        .copied()
        .chain(step.branches.iter().map(|(_, target)| *target))
        .chain(timeout)
        .map(|target| target as usize)
        .collect();
    targets.sort_unstable();
    targets.dedup();
    targets
}
