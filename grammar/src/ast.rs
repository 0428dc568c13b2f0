//! The workflow document of `workflow/v1` and `workflow/v2` as a syntax tree.
//!
//! Produced by [`crate::lower`] from the YAML tree. Every name and value keeps
//! its span; values in step `config` keep their template structure. Nothing
//! here is resolved: verbs, types and references are the compiler's job.

use crate::span::Span;
use crate::template::Template;

#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

pub type Ident = Spanned<String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiVersion {
    V1,
    V2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Workflow {
    pub api_version: Spanned<ApiVersion>,
    pub metadata: Metadata,
    pub requires: Vec<Require>,
    pub triggers: Vec<TriggerDef>,
    pub interface: Option<Interface>,
    pub steps: Vec<Step>,
    /// Ids of steps left out because of an error already reported; references
    /// to them are not reported again.
    pub dropped_steps: Vec<Ident>,
    /// The span of `spec.steps` (or of the document when it is missing).
    pub steps_span: Span,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Metadata {
    pub name: Option<Ident>,
    pub description: Option<Ident>,
    pub version: Option<Ident>,
    pub authored_by: Option<Ident>,
    pub project: Option<Ident>,
    pub span: Span,
}

/// `requires: [{plugin: linear@1}]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Require {
    /// The text as written, e.g. `linear@1`.
    pub plugin: Ident,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerKind {
    Webhook,
    Cron,
    /// The deprecated spelling of `cron`.
    Schedule,
    Signal,
    Manual,
    AgentRequest,
}

impl TriggerKind {
    pub const ALL: &'static [(&'static str, TriggerKind)] = &[
        ("webhook", TriggerKind::Webhook),
        ("cron", TriggerKind::Cron),
        ("schedule", TriggerKind::Schedule),
        ("signal", TriggerKind::Signal),
        ("manual", TriggerKind::Manual),
        ("agent.request", TriggerKind::AgentRequest),
        // `requester` is the corpus's old alias of agent.request.
        ("requester", TriggerKind::AgentRequest),
    ];
}

#[derive(Clone, Debug, PartialEq)]
pub struct TriggerDef {
    pub id: Ident,
    pub kind: Spanned<TriggerKind>,
    /// `eventType` (webhook) or `signalEventType` (signal).
    pub event_type: Option<Ident>,
    /// `schedule` and `timezone` (cron).
    pub schedule: Option<Ident>,
    pub timezone: Option<Ident>,
    /// Declared payload fields: `request` fields of agent.request (besides
    /// `project`), `inputs` of manual triggers.
    pub fields: Vec<(Ident, TypeSyntax)>,
    pub project: Option<Ident>,
    pub span: Span,
}

/// A type written in the workflow: `string`, `int?`, `list<string>`, `map<string, int>`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeSyntax {
    pub kind: TypeSyntaxKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeSyntaxKind {
    Named(String),
    List(Box<TypeSyntax>),
    Map(Box<TypeSyntax>),
    Optional(Box<TypeSyntax>),
}

/// The typed ports of a group file.
#[derive(Clone, Debug, PartialEq)]
pub struct Interface {
    pub inputs: Vec<(Ident, TypeSyntax)>,
    pub outputs: Vec<(Ident, Value)>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepType {
    Trigger,
    Condition,
    Action,
    Gate,
    Group,
    Loop,
}

impl StepType {
    pub const ALL: &'static [(&'static str, StepType)] = &[
        ("trigger", StepType::Trigger),
        ("condition", StepType::Condition),
        ("action", StepType::Action),
        ("gate", StepType::Gate),
        ("group", StepType::Group),
        ("loop", StepType::Loop),
    ];

    pub fn as_str(self) -> &'static str {
        StepType::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(name, _)| name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub id: Ident,
    pub ty: Spanned<StepType>,
    /// `config.triggerId` of a trigger step.
    pub trigger_id: Option<Ident>,
    /// `config.action`: `<plugin>@<major>:<verb>`.
    pub action: Option<Ident>,
    pub provider: Option<Ident>,
    /// `config.mode` of a condition: only `switch` is meaningful.
    pub mode: Option<Ident>,
    pub cases: Option<Spanned<Vec<Ident>>>,
    /// `config.ref` of a group, `config.body` of a loop.
    pub group_ref: Option<Ident>,
    pub max_iterations: Option<Spanned<i64>>,
    /// Boxed, as `retry` and `gate`: most steps have none, and a step is
    /// moved and stored by value in large numbers.
    pub until: Option<Box<Predicate>>,
    /// The remaining `config` keys: the verb's (or group's) inputs.
    pub inputs: Vec<Input>,
    pub config_span: Option<Span>,
    /// False when `config` is there but is not a mapping (already reported).
    pub config_valid: bool,
    pub next: Vec<Ident>,
    /// `branches: {handle: step}`; handles are plain strings (YAML 1.2).
    pub branches: Vec<(Ident, Ident)>,
    pub default_handle: Option<Spanned<DefaultHandle>>,
    pub retry: Option<Box<Retry>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub gate: Option<Box<GateConfig>>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DefaultHandle {
    Case(String),
    /// `defaultHandle: true`: route to `branches.default`.
    Branch,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub name: Ident,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub max_attempts: Option<Spanned<i64>>,
    pub initial_ms: Option<Spanned<i64>>,
    pub factor: Option<Spanned<f64>>,
    pub max_ms: Option<Spanned<i64>>,
    pub retry_on: Vec<Ident>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateType {
    Signal,
    Timer,
    Webhook,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OnTimeout {
    Skip,
    Error,
    Branch(Ident),
}

#[derive(Clone, Debug, PartialEq)]
pub struct GateConfig {
    pub gate_type: Option<Spanned<GateType>>,
    pub signal_event_type: Option<Ident>,
    pub on_timeout: Option<Spanned<OnTimeout>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub match_: Option<Predicate>,
    pub span: Span,
}

/// The bounded predicate language of gate filters and loop `until`.
#[derive(Clone, Debug, PartialEq)]
pub struct Predicate {
    pub kind: PredicateKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PredicateKind {
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    Leaf {
        field: Ident,
        op: Spanned<PredicateOp>,
        value: Option<Value>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PredicateOp {
    Eq,
    Neq,
    In,
    Contains,
    Prefix,
    Suffix,
    Lt,
    Lte,
    Gt,
    Gte,
    Exists,
}

impl PredicateOp {
    pub const ALL: &'static [(&'static str, PredicateOp)] = &[
        ("eq", PredicateOp::Eq),
        ("neq", PredicateOp::Neq),
        ("in", PredicateOp::In),
        ("contains", PredicateOp::Contains),
        ("prefix", PredicateOp::Prefix),
        ("suffix", PredicateOp::Suffix),
        ("lt", PredicateOp::Lt),
        ("lte", PredicateOp::Lte),
        ("gt", PredicateOp::Gt),
        ("gte", PredicateOp::Gte),
        ("exists", PredicateOp::Exists),
    ];
}

/// A value in `config`, an interface output or a predicate: YAML data whose
/// strings are templates.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    /// A string scalar: its decoded text and its template, whose spans are
    /// file offsets.
    Str {
        text: String,
        template: Box<Template>,
    },
    List(Vec<Value>),
    Map(Vec<(Ident, Value)>),
}

impl Step {
    /// Every step id this step can continue to, with the span naming it.
    pub fn successors(&self) -> impl Iterator<Item = &Ident> {
        let timeout_branch = self.gate.as_ref().and_then(|g| match &g.on_timeout {
            Some(Spanned {
                value: OnTimeout::Branch(target),
                ..
            }) => Some(target),
            _ => None,
        });
        self.next
            .iter()
            .chain(self.branches.iter().map(|(_, target)| target))
            .chain(timeout_branch)
    }
}
