//! The plan as data: what the compiler lowers a checked workflow to, what the
//! encoder writes as a `.dplan`, what the decoder and verifier hand to the
//! engine.
//!
//! Everything is addressed by index (`StepIx`, `ExprIx`, ...), never by
//! pointer, so the model encodes as flat sections and the verifier can check
//! every index against its table. Strings a user wrote (step ids, handles,
//! verb ids) stay strings: the engine reports them and matches signals on
//! them, and a plan stays readable in `donmaic disasm`.
//!
//! Nothing in a plan depends on where or when it was built: no absolute path,
//! no time stamp, no map with random iteration order.

/// The version of the plan format this crate reads and writes. A plan of
/// another version is refused by the decoder with a clear error.
pub const FORMAT_VERSION: u16 = 1;

/// Index into [`Plan::levels`]; level 0 is the workflow itself, the others are
/// group and loop bodies, each compiled once however often it is used.
pub type LevelIx = u32;
/// Index into [`Level::steps`] of the level it appears in.
pub type StepIx = u32;
/// Index into [`Level::triggers`] of the level it appears in.
pub type TriggerIx = u32;
/// Index into [`Plan::exprs`].
pub type ExprIx = u32;
/// Index into [`Plan::constants`].
pub type ConstIx = u32;
/// Index into [`Plan::verbs`].
pub type VerbIx = u32;
/// Index into [`Plan::sources`].
pub type SourceIx = u32;

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub header: Header,
    /// The constant pool shared by every expression (strings, numbers, ...),
    /// deduplicated by the compiler.
    pub constants: Vec<Constant>,
    /// Every verb the plan calls, with what the engine must know about it
    /// without the manifest (the manifest may have changed since the build).
    pub verbs: Vec<VerbRef>,
    /// Compiled expressions (templates' `{{ }}` parts, predicates' values,
    /// interface outputs). See [`crate::bytecode`] for the instruction set.
    pub exprs: Vec<ExprCode>,
    /// Level 0 is the workflow; the others are group/loop bodies.
    pub levels: Vec<Level>,
    /// The files the plan was built from, relative to the main workflow's
    /// folder, with the SHA-256 of their text. Spans in [`SourceRef`] point
    /// into these.
    pub sources: Vec<SourceFileRef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub format_version: u16,
    /// `workflow/v1` or `workflow/v2`.
    pub api_version: String,
    /// `metadata.name` (or the file stem when absent).
    pub name: String,
    /// `metadata.version`, if written.
    pub version: Option<String>,
    /// `metadata.project`, if written.
    pub project: Option<String>,
    /// The `requires` pins, e.g. `linear@1`, sorted.
    pub requires: Vec<String>,
}

/// A constant of the pool. Lists and maps are built by bytecode, not stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Constant {
    Null,
    Bool(bool),
    Int(i64),
    /// Stored by bits so the pool compares and hashes exactly (NaN, -0.0).
    Double(u64),
    String(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SideEffect {
    ReadOnly,
    ExternalWrite,
    InternalOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerbKind {
    Action,
    Condition,
    Gate,
    Trigger,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VerbRef {
    /// Plugin name and major, e.g. `linear` and 1.
    pub plugin: String,
    pub major: u32,
    /// The verb id within the plugin, e.g. `linear.issue.update`.
    pub verb: String,
    pub kind: VerbKind,
    pub side_effect: SideEffect,
    /// Input ports that are required and not nullable: a `null` fed to one of
    /// them skips the step (null propagation). Sorted.
    pub required_inputs: Vec<String>,
    /// The output field a condition routes by (bool: handles `yes`/`no`;
    /// enum: the case names), when the verb routes.
    pub route_by: Option<String>,
    /// The cases of a switch condition (the values of its `route_by` enum, in
    /// manifest order); empty for a boolean condition and for other verbs.
    /// The verifier checks `branches` and `defaultHandle` against them.
    pub route_cases: Vec<String>,
    /// A gate verb's named handles, in manifest order.
    pub handles: Vec<String>,
    /// Event types a gate or trigger verb waits for.
    pub events: Vec<String>,
    /// The manifest's `idempotencyKey` template, compiled, evaluated with
    /// `input`, `run` and `step` bound; `None` means the engine derives the
    /// key from (run, step id, input hash).
    pub idempotency_key: Option<ExprIx>,
}

impl VerbRef {
    /// `linear@1:linear.issue.update`.
    pub fn qualified(&self) -> String {
        format!("{}@{}:{}", self.plugin, self.major, self.verb)
    }
}

/// One compiled expression.
#[derive(Clone, Debug, PartialEq)]
pub struct ExprCode {
    /// Encoded instructions ([`crate::bytecode`]).
    pub code: Vec<u8>,
    /// The deepest the operand stack gets; the verifier recomputes it.
    pub max_stack: u16,
    /// Local slots (macro variables) the code uses.
    pub locals: u16,
    /// The static type the checker gave the expression, as its display text
    /// (`string`, `int?`, `map<string, dyn>`), for `disasm` and run-time
    /// error messages.
    pub result_type: String,
    /// Where the expression was written.
    pub source: SourceRef,
    /// Per-instruction positions: `(code offset, span)`, sorted by offset,
    /// so a run-time error names the exact sub-expression.
    pub spans: Vec<(u32, SourceRef)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SourceRef {
    pub file: SourceIx,
    /// Byte range in that file.
    pub start: u32,
    pub end: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceFileRef {
    /// Relative to the main workflow's folder, `/`-separated.
    pub path: String,
    /// SHA-256 of the file's bytes, so a tool can tell whether a source map
    /// still matches the file on disk.
    pub sha256: [u8; 32],
}

/// A value written in the workflow whose strings may be templates.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueTemplate {
    Const(ConstIx),
    /// A string that is exactly one `{{ e }}`: keeps `e`'s type.
    Expr(ExprIx),
    /// A string mixing text and `{{ }}` parts: the parts interpolate as strings.
    Interpolate(Vec<TemplatePart>),
    List(Vec<ValueTemplate>),
    /// Keys in the order written.
    Map(Vec<(String, ValueTemplate)>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum TemplatePart {
    Text(String),
    Expr(ExprIx),
}

/// One workflow level: the workflow itself, or a group/loop body.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// `main`, or the group file's path relative to the main workflow's
    /// folder with its pin (`groups/dev.yaml@1`).
    pub name: String,
    /// A group's interface inputs (empty at level 0): inside the level,
    /// `trigger.<name>` reads them.
    pub inputs: Vec<Port>,
    /// A group's interface outputs, evaluated when the level ends.
    pub outputs: Vec<(String, ValueTemplate)>,
    pub triggers: Vec<TriggerDef>,
    /// In the order written; edges are by index.
    pub steps: Vec<StepDef>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    /// The type as written (`string`, `int?`, `list<string>`).
    pub ty: String,
    pub optional: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerKind {
    Webhook,
    Cron,
    Signal,
    Manual,
    AgentRequest,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TriggerDef {
    /// The `triggers[].id`.
    pub id: String,
    pub kind: TriggerKind,
    /// `eventType` of a webhook, `signalEventType` of a signal trigger.
    pub event_type: Option<String>,
    /// `schedule` and `timezone` of a cron trigger.
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    /// Declared payload fields (manual inputs, agent.request fields).
    pub fields: Vec<Port>,
    pub source: SourceRef,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepDef {
    /// The step id as written.
    pub id: String,
    pub kind: StepKind,
    /// The step's inputs (the `config` keys besides the structural ones),
    /// a map template evaluated when the step becomes ready.
    pub inputs: Vec<(String, ValueTemplate)>,
    /// Successors when the step does not route (`next:`, parallel fan-out
    /// when several).
    pub next: Vec<StepIx>,
    /// `branches: {handle: step}` in the order written.
    pub branches: Vec<(String, StepIx)>,
    pub default: Option<DefaultRoute>,
    pub retry: Option<RetryPolicy>,
    pub timeout_ms: Option<u64>,
    /// Steps with an edge into this one, sorted: the join set.
    pub predecessors: Vec<StepIx>,
    pub source: SourceRef,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DefaultRoute {
    /// `defaultHandle: <case>`: an unknown handle routes as this case.
    Case(String),
    /// `defaultHandle: true`: an unknown handle routes to `branches.default`.
    Branch,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// Entry point: runs when its trigger fires; its output is the payload.
    Trigger {
        trigger: TriggerIx,
    },
    /// Routes by the verb's `route_by` output (`yes`/`no` or a switch case).
    Condition {
        verb: VerbIx,
    },
    Action {
        verb: VerbIx,
    },
    /// Waits for a signal, a timer or a webhook.
    Gate {
        verb: Option<VerbIx>,
        gate: GateDef,
    },
    /// Runs another level with the step's inputs as its interface inputs;
    /// the step's output is the level's interface outputs.
    Group {
        level: LevelIx,
    },
    /// Runs a level repeatedly, at most `max_iterations` times, until `until`
    /// holds over the last iteration's outputs (`output.<field>`).
    Loop {
        level: LevelIx,
        max_iterations: u32,
        until: Option<Predicate>,
    },
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
    Branch(StepIx),
}

#[derive(Clone, Debug, PartialEq)]
pub struct GateDef {
    pub gate_type: GateType,
    /// The event type matched (gateConfig's `signalEventType`, else the verb's
    /// subscription).
    pub event_types: Vec<String>,
    /// Evaluated (its value templates resolved) when the gate is entered.
    pub filter: Option<Predicate>,
    pub on_timeout: OnTimeout,
    pub timeout_ms: Option<u64>,
}

/// The bounded predicate language of gate filters and loop `until`.
#[derive(Clone, Debug, PartialEq)]
pub enum Predicate {
    All(Vec<Predicate>),
    Any(Vec<Predicate>),
    Not(Box<Predicate>),
    Leaf {
        /// A dotted path into the event payload (or `output.<field>`).
        field: String,
        op: PredicateOp,
        value: Option<ValueTemplate>,
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

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (≥ 1).
    pub max_attempts: u32,
    pub initial_ms: u64,
    /// Stored by bits, like [`Constant::Double`].
    pub factor: u64,
    pub max_ms: u64,
    /// Error kinds that are retried; empty means every error.
    pub retry_on: Vec<String>,
}

impl RetryPolicy {
    pub fn factor(&self) -> f64 {
        f64::from_bits(self.factor)
    }
}
