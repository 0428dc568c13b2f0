//! Plans for tests: a hand-written one that uses every part of the model
//! ([`sample_plan`]), a proptest strategy for valid plans ([`valid_plan`]),
//! the predecessor sets a level's edges imply ([`link`]) and fixed signing
//! keys. Every plan made here passes the verifier; a test that needs a
//! broken plan breaks one of these in a single place.
//!
//! Use from an integration test with `mod support;`.

// Each test binary uses part of this module.
#![allow(dead_code)]

use donmai_runtime::plan::*;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

/// Where the sections start in every plan of this format version.
pub const TABLE_END: usize = wire::PREAMBLE_LEN + 6 * wire::TABLE_ENTRY_LEN;

/// The six section payloads of an encoded body (or file).
pub fn sections_of(body: &[u8]) -> Vec<Vec<u8>> {
    let mut start = TABLE_END;
    (0..6)
        .map(|i| {
            let entry = wire::PREAMBLE_LEN + wire::TABLE_ENTRY_LEN * i;
            let mut length = [0; 8];
            length.copy_from_slice(&body[entry + 1..entry + 9]);
            let end = start + u64::from_le_bytes(length) as usize;
            let section = body[start..end].to_vec();
            start = end;
            section
        })
        .collect()
}

/// A well-framed unsigned file with these section payloads (which need not
/// decode) and the correct hash: what reaches the section readers.
pub fn file_with_sections(sections: &[Vec<u8>]) -> Vec<u8> {
    let mut body = wire::MAGIC.to_vec();
    body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    body.extend_from_slice(&(sections.len() as u16).to_le_bytes());
    for (i, section) in sections.iter().enumerate() {
        body.push(i as u8 + 1);
        body.extend_from_slice(&(section.len() as u64).to_le_bytes());
    }
    for section in sections {
        body.extend_from_slice(section);
    }
    with_hash(body)
}

/// `body` followed by its hash.
pub fn with_hash(mut body: Vec<u8>) -> Vec<u8> {
    let id = plan_hash(&body);
    body.extend_from_slice(id.as_bytes());
    body
}

/// A signing key made from a fixed seed: tests are reproducible.
pub fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Sets every step's `predecessors` to the steps with an edge into it
/// (`next`, `branches`, a gate's `onTimeout` branch), sorted.
pub fn link(level: &mut Level) {
    let mut predecessors: Vec<Vec<StepIx>> = vec![Vec::new(); level.steps.len()];
    for (from, step) in level.steps.iter().enumerate() {
        for to in successors(step) {
            let list = &mut predecessors[to as usize];
            if list.last() != Some(&(from as StepIx)) {
                list.push(from as StepIx);
            }
        }
    }
    for (step, predecessors) in level.steps.iter_mut().zip(predecessors) {
        step.predecessors = predecessors;
    }
}

/// The distinct steps `step` has an edge to, ascending.
pub fn successors(step: &StepDef) -> Vec<StepIx> {
    let mut targets: Vec<StepIx> = step.next.clone();
    targets.extend(step.branches.iter().map(|(_, target)| *target));
    if let StepKind::Gate {
        gate: GateDef {
            on_timeout: OnTimeout::Branch(target),
            ..
        },
        ..
    } = &step.kind
    {
        targets.push(*target);
    }
    targets.sort_unstable();
    targets.dedup();
    targets
}

pub fn source(file: SourceIx, start: u32, end: u32) -> SourceRef {
    SourceRef { file, start, end }
}

/// A step with nothing but an id, a kind and a source; tests fill in the rest.
pub fn step(id: &str, kind: StepKind) -> StepDef {
    StepDef {
        id: id.to_owned(),
        kind,
        inputs: Vec::new(),
        next: Vec::new(),
        branches: Vec::new(),
        default: None,
        retry: None,
        timeout_ms: None,
        predecessors: Vec::new(),
        source: source(0, 0, 0),
    }
}

pub fn verb(plugin: &str, name: &str, kind: VerbKind) -> VerbRef {
    VerbRef {
        plugin: plugin.to_owned(),
        major: 1,
        verb: name.to_owned(),
        kind,
        side_effect: SideEffect::ReadOnly,
        required_inputs: Vec::new(),
        route_by: None,
        route_cases: Vec::new(),
        handles: Vec::new(),
        events: Vec::new(),
        idempotency_key: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn port(name: &str, ty: &str, optional: bool) -> Port {
    Port {
        name: name.to_owned(),
        ty: ty.to_owned(),
        optional,
    }
}

fn leaf(field: &str, op: PredicateOp, value: Option<ValueTemplate>) -> Predicate {
    Predicate::Leaf {
        field: field.to_owned(),
        op,
        value,
    }
}

/// Indices into `sample_plan()`'s tables, for tests that break one thing.
pub mod sample {
    use donmai_runtime::plan::{LevelIx, StepIx, VerbIx};

    pub const ACTION_VERB: VerbIx = 0;
    pub const BOOL_CONDITION_VERB: VerbIx = 1;
    pub const SWITCH_VERB: VerbIx = 2;
    pub const GATE_VERB: VerbIx = 3;
    pub const TRIGGER_VERB: VerbIx = 4;

    pub const MAIN: LevelIx = 0;
    pub const GROUP_LEVEL: LevelIx = 1;
    pub const LOOP_LEVEL: LevelIx = 2;

    // Steps of level 0.
    pub const START: StepIx = 0;
    pub const TICK: StepIx = 1;
    pub const CHECK: StepIx = 2;
    pub const TRIAGE: StepIx = 3;
    pub const NOTIFY: StepIx = 4;
    pub const APPROVAL: StepIx = 5;
    pub const DEV: StepIx = 6;
    pub const ITERATE: StepIx = 7;
    pub const WAIT: StepIx = 8;
    pub const DONE: StepIx = 9;
}

/// A valid plan using every variant of the model: each kind of constant,
/// verb, trigger, step, template, predicate, timeout route and default.
pub fn sample_plan() -> Plan {
    use sample::*;
    let constants = vec![
        Constant::Null,
        Constant::Bool(false),
        Constant::Bool(true),
        Constant::Int(-42),
        Constant::Double(1.5f64.to_bits()),
        Constant::Double(f64::NAN.to_bits()),
        Constant::String("héllo, wörld".to_owned()),
        Constant::String(String::new()),
    ];
    let expr = |code: &[u8], result_type: &str, file, start, end| ExprCode {
        code: code.to_vec(),
        max_stack: 2,
        locals: 0,
        result_type: result_type.to_owned(),
        source: source(file, start, end),
        spans: vec![
            (0, source(file, start, end)),
            (1, source(file, start + 1, end)),
        ],
    };
    let exprs = vec![
        expr(&[1, 0, 2, 7], "string", 0, 100, 120),
        expr(&[3, 1, 9], "int?", 0, 130, 140),
        expr(&[4, 4], "bool", 1, 10, 30),
        expr(&[5, 0, 0, 0, 6], "map<string, dyn>", 3, 0, 20),
    ];
    let verbs = vec![
        VerbRef {
            side_effect: SideEffect::ExternalWrite,
            required_inputs: strings(&["id", "title"]),
            idempotency_key: Some(3),
            ..verb("linear", "linear.issue.update", VerbKind::Action)
        },
        VerbRef {
            route_by: Some("ready".to_owned()),
            ..verb("donmai", "agent.is_ready", VerbKind::Condition)
        },
        VerbRef {
            major: 2,
            route_by: Some("kind".to_owned()),
            route_cases: strings(&["bug", "feature", "question"]),
            ..verb("donmai", "agent.classify", VerbKind::Condition)
        },
        VerbRef {
            side_effect: SideEffect::InternalOnly,
            handles: strings(&["passed", "failed", "timeout"]),
            events: strings(&["approval.decided"]),
            ..verb("donmai", "gate.approval", VerbKind::Gate)
        },
        VerbRef {
            events: strings(&["github.push"]),
            ..verb("github", "github.push", VerbKind::Trigger)
        },
    ];

    let interpolated = ValueTemplate::Interpolate(vec![
        TemplatePart::Text("Issue ".to_owned()),
        TemplatePart::Expr(0),
        TemplatePart::Text(" is ready".to_owned()),
    ]);
    let nested = ValueTemplate::Map(vec![
        (
            "labels".to_owned(),
            ValueTemplate::List(vec![ValueTemplate::Const(6), ValueTemplate::Expr(1)]),
        ),
        ("empty".to_owned(), ValueTemplate::List(Vec::new())),
        ("flag".to_owned(), ValueTemplate::Const(2)),
    ]);
    let filter = Predicate::All(vec![
        leaf("decision", PredicateOp::Eq, Some(ValueTemplate::Const(6))),
        Predicate::Any(vec![
            leaf(
                "reviewer",
                PredicateOp::In,
                Some(ValueTemplate::List(vec![ValueTemplate::Const(6)])),
            ),
            Predicate::Not(Box::new(leaf("override", PredicateOp::Exists, None))),
        ]),
        leaf("score", PredicateOp::Gte, Some(ValueTemplate::Expr(1))),
    ]);

    let mut main = Level {
        name: "main".to_owned(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        triggers: vec![
            TriggerDef {
                id: "issue".to_owned(),
                kind: TriggerKind::Webhook,
                event_type: Some("linear.issue.created".to_owned()),
                schedule: None,
                timezone: None,
                fields: Vec::new(),
                source: source(0, 10, 40),
            },
            TriggerDef {
                id: "nightly".to_owned(),
                kind: TriggerKind::Cron,
                event_type: None,
                schedule: Some("0 3 * * *".to_owned()),
                timezone: Some("Europe/Paris".to_owned()),
                fields: Vec::new(),
                source: source(0, 41, 80),
            },
            TriggerDef {
                id: "by-hand".to_owned(),
                kind: TriggerKind::Manual,
                event_type: None,
                schedule: None,
                timezone: None,
                fields: vec![port("reason", "string", false), port("count", "int?", true)],
                source: source(0, 81, 99),
            },
            TriggerDef {
                id: "signal".to_owned(),
                kind: TriggerKind::Signal,
                event_type: Some("deploy.done".to_owned()),
                schedule: None,
                timezone: None,
                fields: Vec::new(),
                source: source(0, 81, 99),
            },
            TriggerDef {
                id: "agent".to_owned(),
                kind: TriggerKind::AgentRequest,
                event_type: None,
                schedule: None,
                timezone: None,
                fields: vec![port("prompt", "string", false)],
                source: source(0, 81, 99),
            },
        ],
        steps: vec![
            StepDef {
                next: vec![CHECK],
                ..step("start", StepKind::Trigger { trigger: 0 })
            },
            StepDef {
                next: vec![CHECK],
                ..step("tick", StepKind::Trigger { trigger: 1 })
            },
            StepDef {
                branches: vec![("yes".to_owned(), TRIAGE), ("no".to_owned(), NOTIFY)],
                ..step(
                    "check",
                    StepKind::Condition {
                        verb: BOOL_CONDITION_VERB,
                    },
                )
            },
            StepDef {
                branches: vec![
                    ("bug".to_owned(), APPROVAL),
                    ("feature".to_owned(), DEV),
                    ("default".to_owned(), ITERATE),
                ],
                default: Some(DefaultRoute::Branch),
                ..step("triage", StepKind::Condition { verb: SWITCH_VERB })
            },
            StepDef {
                inputs: vec![
                    ("id".to_owned(), ValueTemplate::Expr(1)),
                    ("title".to_owned(), interpolated.clone()),
                    ("extra".to_owned(), nested.clone()),
                ],
                next: vec![WAIT],
                retry: Some(RetryPolicy {
                    max_attempts: 3,
                    initial_ms: 500,
                    factor: 2.0f64.to_bits(),
                    max_ms: 60_000,
                    retry_on: strings(&["timeout", "rate_limited"]),
                }),
                timeout_ms: Some(30_000),
                source: source(0, 200, 260),
                ..step("notify", StepKind::Action { verb: ACTION_VERB })
            },
            StepDef {
                branches: vec![("passed".to_owned(), WAIT), ("default".to_owned(), DONE)],
                timeout_ms: Some(86_400_000),
                ..step(
                    "approval",
                    StepKind::Gate {
                        verb: Some(GATE_VERB),
                        gate: GateDef {
                            gate_type: GateType::Signal,
                            event_types: strings(&["approval.decided"]),
                            filter: Some(filter),
                            on_timeout: OnTimeout::Branch(DONE),
                            timeout_ms: Some(3_600_000),
                        },
                    },
                )
            },
            StepDef {
                inputs: vec![("title".to_owned(), ValueTemplate::Const(6))],
                next: vec![WAIT],
                ..step("dev", StepKind::Group { level: GROUP_LEVEL })
            },
            StepDef {
                inputs: vec![("title".to_owned(), ValueTemplate::Expr(0))],
                next: vec![WAIT],
                ..step(
                    "iterate",
                    StepKind::Loop {
                        level: LOOP_LEVEL,
                        max_iterations: 5,
                        until: Some(leaf(
                            "output.done",
                            PredicateOp::Eq,
                            Some(ValueTemplate::Const(2)),
                        )),
                    },
                )
            },
            StepDef {
                next: vec![DONE],
                ..step(
                    "wait",
                    StepKind::Gate {
                        verb: None,
                        gate: GateDef {
                            gate_type: GateType::Timer,
                            event_types: Vec::new(),
                            filter: None,
                            on_timeout: OnTimeout::Skip,
                            timeout_ms: Some(1_000),
                        },
                    },
                )
            },
            StepDef {
                inputs: vec![("id".to_owned(), ValueTemplate::Const(3))],
                ..step("done", StepKind::Action { verb: ACTION_VERB })
            },
        ],
    };
    link(&mut main);

    let body_level = |name: &str, with_group: bool| {
        let mut steps = vec![
            StepDef {
                next: vec![1],
                ..step("entry", StepKind::Trigger { trigger: 0 })
            },
            StepDef {
                inputs: vec![("title".to_owned(), ValueTemplate::Expr(2))],
                ..step("work", StepKind::Action { verb: ACTION_VERB })
            },
        ];
        if with_group {
            steps[1].next = vec![2];
            steps.push(StepDef {
                next: Vec::new(),
                ..step(
                    "inner",
                    StepKind::Gate {
                        verb: None,
                        gate: GateDef {
                            gate_type: GateType::Webhook,
                            event_types: strings(&["hook.called"]),
                            filter: None,
                            on_timeout: OnTimeout::Error,
                            timeout_ms: None,
                        },
                    },
                )
            });
            steps[2].next = vec![3];
            steps.push(StepDef {
                inputs: vec![("title".to_owned(), ValueTemplate::Const(7))],
                ..step("nested", StepKind::Group { level: GROUP_LEVEL })
            });
        }
        let mut level = Level {
            name: name.to_owned(),
            inputs: vec![
                port("title", "string", false),
                port("note", "string?", true),
            ],
            outputs: vec![("result".to_owned(), ValueTemplate::Expr(2))],
            triggers: vec![TriggerDef {
                id: "input".to_owned(),
                kind: TriggerKind::Manual,
                event_type: None,
                schedule: None,
                timezone: None,
                fields: Vec::new(),
                source: source(1, 0, 5),
            }],
            steps,
        };
        link(&mut level);
        level
    };

    Plan {
        header: Header {
            format_version: FORMAT_VERSION,
            api_version: "workflow/v2".to_owned(),
            name: "triage".to_owned(),
            version: Some("1.2.0".to_owned()),
            project: Some("donmai".to_owned()),
            requires: strings(&["donmai@1", "github@1", "linear@1"]),
        },
        constants,
        verbs,
        exprs,
        levels: vec![
            main,
            body_level("groups/dev.yaml@1", false),
            body_level("groups/loop.yaml@1", true),
        ],
        sources: vec![
            SourceFileRef {
                path: "triage.yaml".to_owned(),
                sha256: [0x11; 32],
            },
            SourceFileRef {
                path: "groups/dev.yaml".to_owned(),
                sha256: [0x22; 32],
            },
            SourceFileRef {
                path: "groups/loop.yaml".to_owned(),
                sha256: [0x33; 32],
            },
            SourceFileRef {
                path: "plugin:linear@1#linear.issue.update.idempotencyKey".to_owned(),
                sha256: [0x44; 32],
            },
        ],
    }
}

/// Deterministic choices drawn from proptest's numbers, so that shrinking
/// the numbers shrinks the plan.
struct Dice {
    values: Vec<u32>,
    at: usize,
}

impl Dice {
    fn next(&mut self) -> u32 {
        let value = self.values[self.at % self.values.len()];
        self.at += 1;
        // Mixing in the position keeps a short or shrunk input from
        // repeating the same choice everywhere.
        value ^ (self.at as u32).wrapping_mul(0x9e37_79b9).rotate_left(7)
    }

    fn wide(&mut self) -> u64 {
        (u64::from(self.next()) << 32) | u64::from(self.next())
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.next() as usize % n }
    }

    fn range(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.next() % 100 < percent
    }
}

/// Builds one valid plan from the dice and a pool of (arbitrary Unicode)
/// names; names that must be unique get a distinct suffix.
struct Builder {
    dice: Dice,
    names: Vec<String>,
    serial: usize,
}

impl Builder {
    fn name(&mut self) -> String {
        let i = self.dice.below(self.names.len());
        self.names[i].clone()
    }

    fn unique_name(&mut self) -> String {
        self.serial += 1;
        format!("{}#{}", self.name(), self.serial)
    }

    fn unique_names(&mut self, low: usize, high: usize) -> Vec<String> {
        let n = self.dice.range(low, high);
        (0..n).map(|_| self.unique_name()).collect()
    }

    fn sorted_names(&mut self, high: usize) -> Vec<String> {
        let mut names = self.unique_names(0, high);
        names.sort();
        names
    }

    fn option<T>(&mut self, percent: u32, make: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.dice.chance(percent) {
            Some(make(self))
        } else {
            None
        }
    }

    fn source_ref(&mut self, files: usize) -> SourceRef {
        let a = self.dice.next();
        let b = self.dice.next();
        SourceRef {
            file: self.dice.below(files) as SourceIx,
            start: a.min(b),
            end: a.max(b),
        }
    }

    fn constant(&mut self) -> Constant {
        match self.dice.below(5) {
            0 => Constant::Null,
            1 => Constant::Bool(self.dice.chance(50)),
            2 => Constant::Int(self.dice.wide() as i64),
            3 => Constant::Double(self.dice.wide()),
            _ => Constant::String(self.name()),
        }
    }

    fn expr(&mut self, files: usize) -> ExprCode {
        let len = self.dice.below(24);
        let code: Vec<u8> = (0..len).map(|_| self.dice.next() as u8).collect();
        let mut spans = Vec::new();
        let mut offset = 0usize;
        while offset < code.len() && self.dice.chance(60) {
            spans.push((offset as u32, self.source_ref(files)));
            offset += 1 + self.dice.below(4);
        }
        ExprCode {
            code,
            max_stack: self.dice.next() as u16,
            locals: self.dice.next() as u16,
            result_type: self.name(),
            source: self.source_ref(files),
            spans,
        }
    }

    fn template(&mut self, exprs: usize, constants: usize, depth: usize) -> ValueTemplate {
        let kinds = if depth >= 4 { 3 } else { 5 };
        match self.dice.below(kinds) {
            0 if constants > 0 => ValueTemplate::Const(self.dice.below(constants) as ConstIx),
            0 | 1 => ValueTemplate::Expr(self.dice.below(exprs) as ExprIx),
            2 => {
                let n = self.dice.below(4);
                ValueTemplate::Interpolate(
                    (0..n)
                        .map(|_| {
                            if self.dice.chance(50) {
                                TemplatePart::Text(self.name())
                            } else {
                                TemplatePart::Expr(self.dice.below(exprs) as ExprIx)
                            }
                        })
                        .collect(),
                )
            }
            3 => {
                let n = self.dice.below(4);
                ValueTemplate::List(
                    (0..n)
                        .map(|_| self.template(exprs, constants, depth + 1))
                        .collect(),
                )
            }
            _ => ValueTemplate::Map(self.named_templates(exprs, constants, depth + 1)),
        }
    }

    fn named_templates(
        &mut self,
        exprs: usize,
        constants: usize,
        depth: usize,
    ) -> Vec<(String, ValueTemplate)> {
        let keys = self.unique_names(0, 3);
        keys.into_iter()
            .map(|key| (key, self.template(exprs, constants, depth)))
            .collect()
    }

    fn predicate(
        &mut self,
        exprs: usize,
        constants: usize,
        depth: usize,
        leaves: &mut usize,
    ) -> Predicate {
        let leaf_only = depth >= 5;
        let choice = if leaf_only { 3 } else { self.dice.below(4) };
        match choice {
            0 | 1 => {
                let n = self.dice.below(4);
                let children = (0..n)
                    .map(|_| self.predicate(exprs, constants, depth + 1, leaves))
                    .collect();
                if choice == 0 {
                    Predicate::All(children)
                } else {
                    Predicate::Any(children)
                }
            }
            2 => Predicate::Not(Box::new(self.predicate(
                exprs,
                constants,
                depth + 1,
                leaves,
            ))),
            _ if *leaves >= 32 => Predicate::All(Vec::new()),
            _ => {
                *leaves += 1;
                const OPS: [PredicateOp; 11] = [
                    PredicateOp::Eq,
                    PredicateOp::Neq,
                    PredicateOp::In,
                    PredicateOp::Contains,
                    PredicateOp::Prefix,
                    PredicateOp::Suffix,
                    PredicateOp::Lt,
                    PredicateOp::Lte,
                    PredicateOp::Gt,
                    PredicateOp::Gte,
                    PredicateOp::Exists,
                ];
                let op = OPS[self.dice.below(OPS.len())];
                let value = if op == PredicateOp::Exists {
                    None
                } else {
                    Some(self.template(exprs, constants, 1))
                };
                Predicate::Leaf {
                    field: self.name(),
                    op,
                    value,
                }
            }
        }
    }

    fn port(&mut self, name: String) -> Port {
        Port {
            name,
            ty: self.name(),
            optional: self.dice.chance(50),
        }
    }

    fn verb(&mut self, kind: VerbKind, exprs: usize) -> VerbRef {
        let route_by = (kind == VerbKind::Condition).then(|| self.name());
        let route_cases = if kind == VerbKind::Condition && self.dice.chance(50) {
            self.unique_names(1, 4)
        } else {
            Vec::new()
        };
        let handles = if kind == VerbKind::Gate && self.dice.chance(70) {
            self.unique_names(1, 3)
        } else {
            Vec::new()
        };
        VerbRef {
            plugin: self.name(),
            major: self.dice.next(),
            verb: self.name(),
            kind,
            side_effect: [
                SideEffect::ReadOnly,
                SideEffect::ExternalWrite,
                SideEffect::InternalOnly,
            ][self.dice.below(3)],
            required_inputs: self.sorted_names(3),
            route_by,
            route_cases,
            handles,
            events: self.unique_names(0, 2),
            idempotency_key: self.option(30, |b| b.dice.below(exprs) as ExprIx),
        }
    }

    fn plan(&mut self) -> Plan {
        let files = self.dice.range(1, 3);
        let sources = (0..files)
            .map(|_| {
                let mut sha256 = [0; 32];
                for byte in &mut sha256 {
                    *byte = self.dice.next() as u8;
                }
                SourceFileRef {
                    path: self.name(),
                    sha256,
                }
            })
            .collect();
        let constants: Vec<Constant> = (0..self.dice.below(8)).map(|_| self.constant()).collect();
        let exprs: Vec<ExprCode> = (0..self.dice.range(1, 6))
            .map(|_| self.expr(files))
            .collect();
        let mut verbs = Vec::new();
        for kind in [
            VerbKind::Action,
            VerbKind::Condition,
            VerbKind::Gate,
            VerbKind::Trigger,
        ] {
            for _ in 0..self.dice.range(1, 3) {
                verbs.push(self.verb(kind, exprs.len()));
            }
        }
        let level_count = self.dice.range(1, 4);
        let levels = (0..level_count)
            .map(|ix| self.level(ix, level_count, &verbs, exprs.len(), constants.len(), files))
            .collect();
        Plan {
            header: Header {
                format_version: FORMAT_VERSION,
                api_version: ["workflow/v1", "workflow/v2"][self.dice.below(2)].to_owned(),
                name: self.name(),
                version: self.option(50, Builder::name),
                project: self.option(50, Builder::name),
                requires: self.sorted_names(4),
            },
            constants,
            verbs,
            exprs,
            levels,
            sources,
        }
    }

    /// A level whose steps only have edges forward (so it is acyclic) and
    /// whose every step after the first trigger step is given an edge from
    /// an earlier step (so it is reachable). Groups and loops only run
    /// levels after their own, so levels never run each other in a cycle.
    fn level(
        &mut self,
        ix: usize,
        level_count: usize,
        verbs: &[VerbRef],
        exprs: usize,
        constants: usize,
        files: usize,
    ) -> Level {
        let triggers: Vec<TriggerDef> = self
            .unique_names(1, 3)
            .into_iter()
            .map(|id| TriggerDef {
                id,
                kind: [
                    TriggerKind::Webhook,
                    TriggerKind::Cron,
                    TriggerKind::Signal,
                    TriggerKind::Manual,
                    TriggerKind::AgentRequest,
                ][self.dice.below(5)],
                event_type: self.option(50, Builder::name),
                schedule: self.option(30, Builder::name),
                timezone: self.option(30, Builder::name),
                fields: self
                    .unique_names(0, 2)
                    .into_iter()
                    .map(|name| self.port(name))
                    .collect(),
                source: self.source_ref(files),
            })
            .collect();
        let of_kind = |kind: VerbKind| -> Vec<VerbIx> {
            (0..verbs.len() as VerbIx)
                .filter(|&v| verbs[v as usize].kind == kind)
                .collect()
        };
        let (actions, conditions, gates) = (
            of_kind(VerbKind::Action),
            of_kind(VerbKind::Condition),
            of_kind(VerbKind::Gate),
        );
        let step_count = self.dice.range(1, 9);
        let mut steps: Vec<StepDef> = Vec::with_capacity(step_count);
        for s in 0..step_count {
            let last = s + 1 == step_count;
            // Routing steps need a later step to route to, and no edge may
            // lead into a trigger step: the last step is neither.
            let choice = match s {
                0 => 0,
                _ if last => 1 + self.dice.below(3),
                _ => self.dice.below(6),
            };
            let kind = match choice {
                0 => StepKind::Trigger {
                    trigger: self.dice.below(triggers.len()) as TriggerIx,
                },
                1 => StepKind::Action {
                    verb: actions[self.dice.below(actions.len())],
                },
                2 if ix + 1 < level_count => {
                    let level = self.dice.range(ix + 1, level_count - 1) as LevelIx;
                    if self.dice.chance(50) {
                        StepKind::Group { level }
                    } else {
                        StepKind::Loop {
                            level,
                            max_iterations: self.dice.next().max(1),
                            until: self.option(50, |b| b.predicate(exprs, constants, 1, &mut 0)),
                        }
                    }
                }
                2 => StepKind::Action {
                    verb: actions[self.dice.below(actions.len())],
                },
                3 => StepKind::Gate {
                    verb: None,
                    gate: self.gate(exprs, constants, None),
                },
                4 => StepKind::Condition {
                    verb: conditions[self.dice.below(conditions.len())],
                },
                _ => {
                    let verb = gates[self.dice.below(gates.len())];
                    let on_timeout = Some(self.dice.range(s + 1, step_count - 1) as StepIx);
                    StepKind::Gate {
                        verb: Some(verb),
                        gate: self.gate(exprs, constants, on_timeout),
                    }
                }
            };
            let policy = matches!(kind, StepKind::Action { .. } | StepKind::Gate { .. });
            let mut step = StepDef {
                id: self.unique_name(),
                kind,
                inputs: self.named_templates(exprs, constants, 1),
                next: Vec::new(),
                branches: Vec::new(),
                default: None,
                retry: None,
                timeout_ms: None,
                predecessors: Vec::new(),
                source: self.source_ref(files),
            };
            if policy {
                step.retry = self.option(40, |b| RetryPolicy {
                    max_attempts: b.dice.next().max(1),
                    initial_ms: b.dice.wide(),
                    factor: (1.0 + f64::from(b.dice.next() % 1000) / 100.0).to_bits(),
                    max_ms: b.dice.wide(),
                    retry_on: b.unique_names(0, 2),
                });
                step.timeout_ms = self.option(40, |b| b.dice.wide().max(1));
            }
            steps.push(step);
        }

        // A gate's timeout route goes to a later step that is no trigger
        // (the last step never is).
        for s in 0..step_count {
            if let StepKind::Gate { gate, .. } = &steps[s].kind
                && let OnTimeout::Branch(_) = gate.on_timeout
            {
                let target = self.later_non_trigger(&steps, s);
                if let StepKind::Gate { gate, .. } = &mut steps[s].kind {
                    gate.on_timeout = OnTimeout::Branch(target as StepIx);
                }
            }
        }
        // Give each non-trigger step an edge from an earlier one, plus a
        // few extra forward edges.
        for target in 1..step_count {
            if !matches!(steps[target].kind, StepKind::Trigger { .. }) {
                let from = self.dice.below(target);
                self.add_edge(&mut steps, verbs, from, target, true);
            }
            if self.dice.chance(30) {
                let from = self.dice.below(target);
                if !matches!(steps[target].kind, StepKind::Trigger { .. }) {
                    self.add_edge(&mut steps, verbs, from, target, false);
                }
            }
        }
        // Close the routing steps: cover every handle, or name a default.
        for s in 0..step_count {
            self.cover(&mut steps, verbs, s);
        }
        let outputs = if ix == 0 {
            Vec::new()
        } else {
            self.named_templates(exprs, constants, 1)
        };
        let inputs = if ix == 0 {
            Vec::new()
        } else {
            self.unique_names(0, 3)
                .into_iter()
                .map(|name| self.port(name))
                .collect()
        };
        let mut level = Level {
            name: self.unique_name(),
            inputs,
            outputs,
            triggers,
            steps,
        };
        link(&mut level);
        level
    }

    fn gate(&mut self, exprs: usize, constants: usize, branch: Option<StepIx>) -> GateDef {
        let on_timeout = match (self.dice.below(3), branch) {
            (0, _) => OnTimeout::Skip,
            (1, _) | (_, None) => OnTimeout::Error,
            (_, Some(target)) => OnTimeout::Branch(target),
        };
        GateDef {
            gate_type: [GateType::Signal, GateType::Timer, GateType::Webhook][self.dice.below(3)],
            event_types: self.unique_names(0, 2),
            filter: self.option(50, |b| b.predicate(exprs, constants, 1, &mut 0)),
            on_timeout,
            timeout_ms: self.option(60, |b| b.dice.wide().max(1)),
        }
    }

    /// The handles a step routes by, if it routes, and whether a `default`
    /// branch is allowed.
    fn handles(step: &StepDef, verbs: &[VerbRef]) -> Option<(Vec<String>, bool)> {
        match step.kind {
            StepKind::Condition { verb } => {
                let cases = &verbs[verb as usize].route_cases;
                if cases.is_empty() {
                    Some((vec!["yes".to_owned(), "no".to_owned()], false))
                } else {
                    Some((cases.clone(), true))
                }
            }
            StepKind::Gate {
                verb: Some(verb), ..
            } if !verbs[verb as usize].handles.is_empty() => {
                Some((verbs[verb as usize].handles.clone(), true))
            }
            _ => None,
        }
    }

    /// Adds an edge `from → to`, through a free handle when `from` routes.
    /// With `must`, a routing step without a free handle passes the edge to
    /// an earlier step that can take it (step 0, a trigger, always can).
    fn add_edge(
        &mut self,
        steps: &mut [StepDef],
        verbs: &[VerbRef],
        from: usize,
        to: usize,
        must: bool,
    ) {
        let step = &steps[from];
        match Self::handles(step, verbs) {
            None => {
                if !steps[from].next.contains(&(to as StepIx)) {
                    steps[from].next.push(to as StepIx);
                }
            }
            Some((handles, allow_default)) => {
                let mut free: Vec<String> = handles
                    .into_iter()
                    .filter(|h| !step.branches.iter().any(|(b, _)| b == h))
                    .collect();
                if allow_default && !step.branches.iter().any(|(b, _)| b == "default") {
                    free.push("default".to_owned());
                }
                if free.is_empty() {
                    if must {
                        self.add_edge(steps, verbs, from / 2, to, from != 0);
                    }
                    return;
                }
                let handle = free[self.dice.below(free.len())].clone();
                steps[from].branches.push((handle, to as StepIx));
            }
        }
    }

    fn later_non_trigger(&mut self, steps: &[StepDef], s: usize) -> usize {
        let candidates: Vec<usize> = (s + 1..steps.len())
            .filter(|&t| !matches!(steps[t].kind, StepKind::Trigger { .. }))
            .collect();
        candidates[self.dice.below(candidates.len())]
    }

    fn cover(&mut self, steps: &mut [StepDef], verbs: &[VerbRef], s: usize) {
        let Some((handles, allow_default)) = Self::handles(&steps[s], verbs) else {
            return;
        };
        if !allow_default {
            return; // a yes/no condition may leave a handle unrouted
        }
        let switch = matches!(steps[s].kind, StepKind::Condition { .. });
        let step = &mut steps[s];
        let has_default = step.branches.iter().any(|(b, _)| b == "default");
        let uncovered: Vec<String> = handles
            .iter()
            .filter(|h| !step.branches.iter().any(|(b, _)| b == *h))
            .cloned()
            .collect();
        if switch {
            step.default = match (uncovered.is_empty(), has_default, self.dice.below(3)) {
                (true, _, 0) => None,
                (_, true, 1) => Some(DefaultRoute::Branch),
                _ => Some(DefaultRoute::Case(
                    handles[self.dice.below(handles.len())].clone(),
                )),
            };
        } else if !has_default && !uncovered.is_empty() {
            // A gate with handles is never the last step, so a later step
            // exists to catch the rest.
            let later = self.later_non_trigger(steps, s);
            steps[s]
                .branches
                .push(("default".to_owned(), later as StepIx));
        }
    }
}

/// Unicode names, empty ones included.
fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("\\PC{0,10}", 1..6)
}

/// Valid plans (they pass `verify`) of every shape the model allows, small
/// enough for hundreds of cases per second.
pub fn valid_plan() -> impl Strategy<Value = Plan> {
    (prop::collection::vec(any::<u32>(), 1..200), names()).prop_map(|(values, names)| {
        Builder {
            dice: Dice { values, at: 0 },
            names,
            serial: 0,
        }
        .plan()
    })
}
