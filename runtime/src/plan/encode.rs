//! Writes a [`Plan`] as `.dplan` bytes (layout in [`super::wire`]).
//!
//! Encoding is total and deterministic: every field is written in
//! declaration order and lists in their stored order, so equal plans give
//! identical bytes, and the decoder reading them back gives an equal plan
//! (within the nesting limits of [`super::limits`]).

use super::id::plan_hash;
use super::model::*;
use super::wire::{MAGIC, PREAMBLE_LEN, Section, TABLE_ENTRY_LEN};

/// The unsigned `.dplan` bytes of `plan`: body then its SHA-256. The format
/// version written is `plan.header.format_version`, so a plan of another
/// version than [`FORMAT_VERSION`] encodes, but the decoder refuses it.
pub fn encode(plan: &Plan) -> Vec<u8> {
    let mut file = encode_body(plan);
    let id = plan_hash(&file);
    file.extend_from_slice(id.as_bytes());
    file
}

/// The body alone: what [`plan_hash`] hashes and a signature covers.
pub fn encode_body(plan: &Plan) -> Vec<u8> {
    fn section(write: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut out = Writer::default();
        write(&mut out);
        out.bytes
    }
    // In the order of `Section::BODY`, which the decoder expects.
    let sections = [
        (Section::Header, section(|w| w.header(&plan.header))),
        (
            Section::Constants,
            section(|w| w.list(&plan.constants, Writer::constant)),
        ),
        (
            Section::Verbs,
            section(|w| w.list(&plan.verbs, Writer::verb)),
        ),
        (
            Section::Exprs,
            section(|w| w.list(&plan.exprs, Writer::expr)),
        ),
        (
            Section::Levels,
            section(|w| w.list(&plan.levels, Writer::level)),
        ),
        (
            Section::Sources,
            section(|w| w.list(&plan.sources, Writer::source_file)),
        ),
    ];
    let total: usize = sections.iter().map(|(_, bytes)| bytes.len()).sum();
    let mut body = Vec::with_capacity(PREAMBLE_LEN + TABLE_ENTRY_LEN * sections.len() + total);
    body.extend_from_slice(&MAGIC);
    body.extend_from_slice(&plan.header.format_version.to_le_bytes());
    body.extend_from_slice(&(sections.len() as u16).to_le_bytes());
    for (section, bytes) in &sections {
        body.push(section.id().unwrap_or(0));
        body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    for (_, bytes) in &sections {
        body.extend_from_slice(bytes);
    }
    body
}

#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn fixed64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// Unsigned LEB128, shortest form.
    fn varint(&mut self, mut value: u64) {
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.bytes.push(low);
                return;
            }
            self.bytes.push(low | 0x80);
        }
    }

    fn index(&mut self, index: u32) {
        self.varint(u64::from(index));
    }

    fn len(&mut self, len: usize) {
        self.varint(len as u64);
    }

    fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.bytes.extend_from_slice(bytes);
    }

    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn option<T>(&mut self, value: &Option<T>, write: impl FnOnce(&mut Self, &T)) {
        match value {
            None => self.u8(0),
            Some(value) => {
                self.u8(1);
                write(self, value);
            }
        }
    }

    fn list<T>(&mut self, items: &[T], mut write: impl FnMut(&mut Self, &T)) {
        self.len(items.len());
        for item in items {
            write(self, item);
        }
    }

    fn strings(&mut self, items: &[String]) {
        self.list(items, |w, s| w.str(s));
    }

    fn header(&mut self, header: &Header) {
        // The format version lives in the preamble only.
        self.str(&header.api_version);
        self.str(&header.name);
        self.option(&header.version, |w, s| w.str(s));
        self.option(&header.project, |w, s| w.str(s));
        self.strings(&header.requires);
    }

    fn constant(&mut self, constant: &Constant) {
        match constant {
            Constant::Null => self.u8(0),
            Constant::Bool(false) => self.u8(1),
            Constant::Bool(true) => self.u8(2),
            Constant::Int(value) => {
                self.u8(3);
                self.fixed64(*value as u64);
            }
            Constant::Double(bits) => {
                self.u8(4);
                self.fixed64(*bits);
            }
            Constant::String(text) => {
                self.u8(5);
                self.str(text);
            }
        }
    }

    fn verb(&mut self, verb: &VerbRef) {
        self.str(&verb.plugin);
        self.varint(u64::from(verb.major));
        self.str(&verb.verb);
        self.u8(match verb.kind {
            VerbKind::Action => 0,
            VerbKind::Condition => 1,
            VerbKind::Gate => 2,
            VerbKind::Trigger => 3,
        });
        self.u8(match verb.side_effect {
            SideEffect::ReadOnly => 0,
            SideEffect::ExternalWrite => 1,
            SideEffect::InternalOnly => 2,
        });
        self.strings(&verb.required_inputs);
        self.option(&verb.route_by, |w, s| w.str(s));
        self.strings(&verb.route_cases);
        self.strings(&verb.handles);
        self.strings(&verb.events);
        self.option(&verb.idempotency_key, |w, ix| w.index(*ix));
    }

    fn source_ref(&mut self, source: &SourceRef) {
        self.index(source.file);
        self.index(source.start);
        self.index(source.end);
    }

    fn expr(&mut self, expr: &ExprCode) {
        self.bytes(&expr.code);
        self.u16(expr.max_stack);
        self.u16(expr.locals);
        self.str(&expr.result_type);
        self.source_ref(&expr.source);
        self.list(&expr.spans, |w, (offset, source)| {
            w.index(*offset);
            w.source_ref(source);
        });
    }

    fn source_file(&mut self, file: &SourceFileRef) {
        self.str(&file.path);
        self.bytes.extend_from_slice(&file.sha256);
    }

    fn port(&mut self, port: &Port) {
        self.str(&port.name);
        self.str(&port.ty);
        self.bool(port.optional);
    }

    fn named_templates(&mut self, entries: &[(String, ValueTemplate)]) {
        self.list(entries, |w, (name, template)| {
            w.str(name);
            w.template(template);
        });
    }

    fn template(&mut self, template: &ValueTemplate) {
        match template {
            ValueTemplate::Const(ix) => {
                self.u8(0);
                self.index(*ix);
            }
            ValueTemplate::Expr(ix) => {
                self.u8(1);
                self.index(*ix);
            }
            ValueTemplate::Interpolate(parts) => {
                self.u8(2);
                self.list(parts, |w, part| match part {
                    TemplatePart::Text(text) => {
                        w.u8(0);
                        w.str(text);
                    }
                    TemplatePart::Expr(ix) => {
                        w.u8(1);
                        w.index(*ix);
                    }
                });
            }
            ValueTemplate::List(items) => {
                self.u8(3);
                self.list(items, Writer::template);
            }
            ValueTemplate::Map(entries) => {
                self.u8(4);
                self.named_templates(entries);
            }
        }
    }

    fn level(&mut self, level: &Level) {
        self.str(&level.name);
        self.list(&level.inputs, Writer::port);
        self.named_templates(&level.outputs);
        self.list(&level.triggers, Writer::trigger);
        self.list(&level.steps, Writer::step);
    }

    fn trigger(&mut self, trigger: &TriggerDef) {
        self.str(&trigger.id);
        self.u8(match trigger.kind {
            TriggerKind::Webhook => 0,
            TriggerKind::Cron => 1,
            TriggerKind::Signal => 2,
            TriggerKind::Manual => 3,
            TriggerKind::AgentRequest => 4,
        });
        self.option(&trigger.event_type, |w, s| w.str(s));
        self.option(&trigger.schedule, |w, s| w.str(s));
        self.option(&trigger.timezone, |w, s| w.str(s));
        self.list(&trigger.fields, Writer::port);
        self.source_ref(&trigger.source);
    }

    fn step(&mut self, step: &StepDef) {
        self.str(&step.id);
        self.step_kind(&step.kind);
        self.named_templates(&step.inputs);
        self.list(&step.next, |w, ix| w.index(*ix));
        self.list(&step.branches, |w, (handle, ix)| {
            w.str(handle);
            w.index(*ix);
        });
        self.option(&step.default, |w, route| match route {
            DefaultRoute::Case(case) => {
                w.u8(0);
                w.str(case);
            }
            DefaultRoute::Branch => w.u8(1),
        });
        self.option(&step.retry, Writer::retry);
        self.option(&step.timeout_ms, |w, ms| w.varint(*ms));
        self.list(&step.predecessors, |w, ix| w.index(*ix));
        self.source_ref(&step.source);
    }

    fn step_kind(&mut self, kind: &StepKind) {
        match kind {
            StepKind::Trigger { trigger } => {
                self.u8(0);
                self.index(*trigger);
            }
            StepKind::Condition { verb } => {
                self.u8(1);
                self.index(*verb);
            }
            StepKind::Action { verb } => {
                self.u8(2);
                self.index(*verb);
            }
            StepKind::Gate { verb, gate } => {
                self.u8(3);
                self.option(verb, |w, ix| w.index(*ix));
                self.gate(gate);
            }
            StepKind::Group { level } => {
                self.u8(4);
                self.index(*level);
            }
            StepKind::Loop {
                level,
                max_iterations,
                until,
            } => {
                self.u8(5);
                self.index(*level);
                self.varint(u64::from(*max_iterations));
                self.option(until, Writer::predicate);
            }
        }
    }

    fn gate(&mut self, gate: &GateDef) {
        self.u8(match gate.gate_type {
            GateType::Signal => 0,
            GateType::Timer => 1,
            GateType::Webhook => 2,
        });
        self.strings(&gate.event_types);
        self.option(&gate.filter, Writer::predicate);
        match gate.on_timeout {
            OnTimeout::Skip => self.u8(0),
            OnTimeout::Error => self.u8(1),
            OnTimeout::Branch(ix) => {
                self.u8(2);
                self.index(ix);
            }
        }
        self.option(&gate.timeout_ms, |w, ms| w.varint(*ms));
    }

    fn retry(&mut self, retry: &RetryPolicy) {
        self.varint(u64::from(retry.max_attempts));
        self.varint(retry.initial_ms);
        self.fixed64(retry.factor);
        self.varint(retry.max_ms);
        self.strings(&retry.retry_on);
    }

    fn predicate(&mut self, predicate: &Predicate) {
        match predicate {
            Predicate::All(children) => {
                self.u8(0);
                self.list(children, Writer::predicate);
            }
            Predicate::Any(children) => {
                self.u8(1);
                self.list(children, Writer::predicate);
            }
            Predicate::Not(child) => {
                self.u8(2);
                self.predicate(child);
            }
            Predicate::Leaf { field, op, value } => {
                self.u8(3);
                self.str(field);
                self.u8(predicate_op_tag(*op));
                self.option(value, Writer::template);
            }
        }
    }
}

pub(super) fn predicate_op_tag(op: PredicateOp) -> u8 {
    match op {
        PredicateOp::Eq => 0,
        PredicateOp::Neq => 1,
        PredicateOp::In => 2,
        PredicateOp::Contains => 3,
        PredicateOp::Prefix => 4,
        PredicateOp::Suffix => 5,
        PredicateOp::Lt => 6,
        PredicateOp::Lte => 7,
        PredicateOp::Gt => 8,
        PredicateOp::Gte => 9,
        PredicateOp::Exists => 10,
    }
}
