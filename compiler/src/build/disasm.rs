//! `donmaic disasm`: a readable listing of a `.dplan`, every section and
//! every expression's bytecode, with source positions.
//!
//! Positions come from the plan's source map. When a source file sits where
//! the map says (relative to the plan's folder) with the same SHA-256, byte
//! offsets are shown as `file:line:column`; otherwise as `file@start..end`,
//! so the listing never claims a position in a file that has changed.

use std::path::Path;

use donmai_grammar::SourceFile;
use donmai_runtime::bytecode::{decode, instruction_text};
use donmai_runtime::plan::{
    Constant, DecodedPlan, DefaultRoute, ExprCode, GateType, Level, OnTimeout, Plan, Predicate,
    SideEffect, SourceRef, StepDef, StepKind, TemplatePart, TriggerKind, ValueTemplate, VerbKind,
};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// The plan with the source files that could be matched to its map.
pub struct Listing<'a> {
    plan: &'a DecodedPlan,
    sources: Vec<Option<SourceFile>>,
    size: usize,
}

impl<'a> Listing<'a> {
    /// `plan_path` locates the sources: their paths are relative to the
    /// folder of the plan's main workflow, which `donmaic build` writes the
    /// plan beside by default.
    pub fn new(plan: &'a DecodedPlan, plan_path: &Path, size: usize) -> Listing<'a> {
        let base = plan_path.parent().unwrap_or(Path::new("."));
        let sources = plan
            .plan()
            .sources
            .iter()
            .map(|source| {
                if source.path.starts_with("plugin:") {
                    return None;
                }
                let path = base.join(&source.path);
                let bytes = donmai_grammar::span::read_regular_file(&path).ok()?;
                if <[u8; 32]>::from(Sha256::digest(&bytes)) != source.sha256 {
                    return None;
                }
                let text = String::from_utf8(bytes).ok()?;
                Some(SourceFile::new(path, text))
            })
            .collect();
        Listing {
            plan,
            sources,
            size,
        }
    }

    fn model(&self) -> &Plan {
        self.plan.plan()
    }

    /// `file:line:column`, or `file@start..end` when the file is not at hand.
    fn position(&self, at: SourceRef) -> String {
        let Some(source) = self.model().sources.get(at.file as usize) else {
            return format!("file#{}@{}..{}", at.file, at.start, at.end);
        };
        match self.sources.get(at.file as usize).and_then(Option::as_ref) {
            Some(file) => {
                let position = file.line_col(at.start as usize);
                format!("{}:{}:{}", source.path, position.line, position.column)
            }
            None => format!("{}@{}..{}", source.path, at.start, at.end),
        }
    }

    fn constant(&self, index: u32) -> String {
        match self.model().constants.get(index as usize) {
            Some(constant) => constant_text(constant),
            None => format!("#{index}?"),
        }
    }

    fn template(&self, template: &ValueTemplate) -> String {
        match template {
            ValueTemplate::Const(index) => self.constant(*index),
            ValueTemplate::Expr(expr) => format!("expr#{expr}"),
            ValueTemplate::Interpolate(parts) => {
                let mut text = String::from("\"");
                for part in parts {
                    match part {
                        TemplatePart::Text(literal) => {
                            let quoted = format!("{literal:?}");
                            text.push_str(&quoted[1..quoted.len() - 1]);
                        }
                        TemplatePart::Expr(expr) => text.push_str(&format!("{{{{expr#{expr}}}}}")),
                    }
                }
                text.push('"');
                text
            }
            ValueTemplate::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(|item| self.template(item))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ValueTemplate::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(key, value)| format!("{key}: {}", self.template(value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn predicate(&self, predicate: &Predicate) -> String {
        match predicate {
            Predicate::All(items) => format!(
                "all({})",
                items
                    .iter()
                    .map(|p| self.predicate(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Predicate::Any(items) => format!(
                "any({})",
                items
                    .iter()
                    .map(|p| self.predicate(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Predicate::Not(inner) => format!("not({})", self.predicate(inner)),
            Predicate::Leaf { field, op, value } => match value {
                Some(value) => format!(
                    "{field} {} {}",
                    format!("{op:?}").to_lowercase(),
                    self.template(value)
                ),
                None => format!("{field} {}", format!("{op:?}").to_lowercase()),
            },
        }
    }

    fn step_kind(&self, level: &Level, step: &StepDef) -> (String, Vec<(String, String)>) {
        let verb = |ix: u32| {
            self.model()
                .verbs
                .get(ix as usize)
                .map_or_else(|| format!("verb#{ix}?"), |v| v.qualified())
        };
        let level_name = |ix: u32| {
            self.model().levels.get(ix as usize).map_or_else(
                || format!("level#{ix}?"),
                |l| format!("level {ix} `{}`", l.name),
            )
        };
        let mut details = Vec::new();
        let kind = match &step.kind {
            StepKind::Trigger { trigger } => format!(
                "trigger `{}`",
                level
                    .triggers
                    .get(*trigger as usize)
                    .map_or("?", |t| t.id.as_str())
            ),
            StepKind::Condition { verb: v } => format!("condition {}", verb(*v)),
            StepKind::Action { verb: v } => format!("action {}", verb(*v)),
            StepKind::Gate { verb: v, gate } => {
                details.push((
                    "gate".into(),
                    format!(
                        "{} on [{}], timeout {}, onTimeout {}",
                        match gate.gate_type {
                            GateType::Signal => "signal",
                            GateType::Timer => "timer",
                            GateType::Webhook => "webhook",
                        },
                        gate.event_types.join(", "),
                        gate.timeout_ms
                            .map_or_else(|| "none".to_string(), |t| format!("{t} ms")),
                        match &gate.on_timeout {
                            OnTimeout::Skip => "skip".to_string(),
                            OnTimeout::Error => "error".to_string(),
                            OnTimeout::Branch(target) =>
                                format!("branch:{}", step_id(level, *target)),
                        }
                    ),
                ));
                if let Some(filter) = &gate.filter {
                    details.push(("match".into(), self.predicate(filter)));
                }
                match v {
                    Some(v) => format!("gate {}", verb(*v)),
                    None => "gate".into(),
                }
            }
            StepKind::Group { level } => format!("group {}", level_name(*level)),
            StepKind::Loop {
                level,
                max_iterations,
                until,
            } => {
                if let Some(until) = until {
                    details.push(("until".into(), self.predicate(until)));
                }
                format!("loop {} at most {max_iterations}×", level_name(*level))
            }
        };
        (kind, details)
    }

    pub fn human(&self) -> String {
        use std::fmt::Write;
        let plan = self.model();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "plan {}  format {}  {} bytes  {}",
            self.plan.id(),
            plan.header.format_version,
            self.size,
            match self.plan.signer() {
                Some(key) => format!("signed by key {key}"),
                None => "unsigned".into(),
            }
        );
        let header = &plan.header;
        let _ = writeln!(out, "\nheader");
        let _ = writeln!(out, "  apiVersion  {}", header.api_version);
        let _ = writeln!(out, "  name        {}", header.name);
        if let Some(version) = &header.version {
            let _ = writeln!(out, "  version     {version}");
        }
        if let Some(project) = &header.project {
            let _ = writeln!(out, "  project     {project}");
        }
        let _ = writeln!(out, "  requires    [{}]", header.requires.join(", "));

        let _ = writeln!(out, "\nsources ({})", plan.sources.len());
        for (i, source) in plan.sources.iter().enumerate() {
            let state = if source.path.starts_with("plugin:") {
                "manifest"
            } else if self.sources[i].is_some() {
                "found"
            } else {
                "not found or changed"
            };
            let _ = writeln!(
                out,
                "  [{i}] {}  sha256 {}  ({state})",
                source.path,
                hex(&source.sha256)
            );
        }

        let _ = writeln!(out, "\nconstants ({})", plan.constants.len());
        for (i, constant) in plan.constants.iter().enumerate() {
            let _ = writeln!(out, "  [{i}] {}", constant_text(constant));
        }

        let _ = writeln!(out, "\nverbs ({})", plan.verbs.len());
        for (i, verb) in plan.verbs.iter().enumerate() {
            let _ = writeln!(
                out,
                "  [{i}] {}  {} {}",
                verb.qualified(),
                verb_kind(verb.kind),
                side_effect(verb.side_effect)
            );
            if !verb.required_inputs.is_empty() {
                let _ = writeln!(out, "      required  {}", verb.required_inputs.join(", "));
            }
            if let Some(route) = &verb.route_by {
                let cases = if verb.route_cases.is_empty() {
                    "yes|no".to_string()
                } else {
                    verb.route_cases.join("|")
                };
                let _ = writeln!(out, "      routeBy   {route} ({cases})");
            }
            if !verb.handles.is_empty() {
                let _ = writeln!(out, "      handles   {}", verb.handles.join("|"));
            }
            if !verb.events.is_empty() {
                let _ = writeln!(out, "      events    {}", verb.events.join(", "));
            }
            if let Some(key) = verb.idempotency_key {
                let _ = writeln!(out, "      idempotencyKey  expr#{key}");
            }
        }

        for (l, level) in plan.levels.iter().enumerate() {
            let _ = writeln!(out, "\nlevel {l} `{}`", level.name);
            for port in &level.inputs {
                let _ = writeln!(out, "  input   {}: {}", port.name, port.ty);
            }
            for (name, value) in &level.outputs {
                let _ = writeln!(out, "  output  {name} = {}", self.template(value));
            }
            for (t, trigger) in level.triggers.iter().enumerate() {
                let mut text = format!(
                    "  trigger [{t}] {} {}",
                    trigger.id,
                    trigger_kind(trigger.kind)
                );
                if let Some(event) = &trigger.event_type {
                    text.push_str(&format!(" {event}"));
                }
                if let Some(schedule) = &trigger.schedule {
                    text.push_str(&format!(" \"{schedule}\""));
                    if let Some(zone) = &trigger.timezone {
                        text.push_str(&format!(" {zone}"));
                    }
                }
                let _ = writeln!(out, "{text}  ; {}", self.position(trigger.source));
            }
            for (s, step) in level.steps.iter().enumerate() {
                let (kind, details) = self.step_kind(level, step);
                let _ = writeln!(
                    out,
                    "  step [{s}] {}  {kind}  ; {}",
                    step.id,
                    self.position(step.source)
                );
                for (name, value) in &step.inputs {
                    let _ = writeln!(out, "      in    {name} = {}", self.template(value));
                }
                for (name, value) in details {
                    let _ = writeln!(out, "      {name:<5} {value}");
                }
                if !step.next.is_empty() {
                    let targets: Vec<&str> = step.next.iter().map(|&t| step_id(level, t)).collect();
                    let _ = writeln!(out, "      next  {}", targets.join(", "));
                }
                for (handle, target) in &step.branches {
                    let _ = writeln!(out, "      on    {handle} → {}", step_id(level, *target));
                }
                match &step.default {
                    Some(DefaultRoute::Case(case)) => {
                        let _ = writeln!(out, "      defaultHandle  {case}");
                    }
                    Some(DefaultRoute::Branch) => {
                        let _ = writeln!(out, "      defaultHandle  → branches.default");
                    }
                    None => {}
                }
                if let Some(retry) = &step.retry {
                    let _ = writeln!(
                        out,
                        "      retry {} attempts, {} ms × {} up to {} ms{}",
                        retry.max_attempts,
                        retry.initial_ms,
                        retry.factor(),
                        retry.max_ms,
                        if retry.retry_on.is_empty() {
                            String::new()
                        } else {
                            format!(", on {}", retry.retry_on.join(", "))
                        }
                    );
                }
                if let Some(timeout) = step.timeout_ms {
                    let _ = writeln!(out, "      timeoutMs {timeout}");
                }
            }
        }

        let _ = writeln!(out, "\nexpressions ({})", plan.exprs.len());
        for (e, expr) in plan.exprs.iter().enumerate() {
            let _ = writeln!(
                out,
                "  expr#{e}: {}  stack {}  locals {}  ; {}",
                expr.result_type,
                expr.max_stack,
                expr.locals,
                self.position(expr.source)
            );
            for line in self.instructions(expr) {
                let _ = writeln!(
                    out,
                    "    {:5}  [{}] {}{}",
                    line.offset,
                    line.steps,
                    line.text,
                    line.position
                        .map(|p| format!("  ; {p}"))
                        .unwrap_or_default()
                );
            }
        }
        out
    }

    fn instructions(&self, expr: &ExprCode) -> Vec<Line> {
        let constants = &self.model().constants;
        let Ok(decoded) = decode(&expr.code) else {
            return vec![Line {
                offset: 0,
                steps: 0,
                text: "<code that does not decode>".into(),
                position: None,
            }];
        };
        decoded
            .iter()
            .map(|d| Line {
                offset: d.offset,
                steps: d.steps,
                text: instruction_text(&d.instruction, constants),
                position: expr
                    .spans
                    .iter()
                    .find(|(at, _)| *at == d.offset)
                    .map(|(_, span)| self.position(*span)),
            })
            .collect()
    }

    pub fn json(&self) -> Json {
        let plan = self.model();
        let header = &plan.header;
        let levels: Vec<Json> = plan
            .levels
            .iter()
            .map(|level| {
                json!({
                    "name": level.name,
                    "inputs": level.inputs.iter().map(|p| json!({"name": p.name, "type": p.ty})).collect::<Vec<_>>(),
                    "outputs": level.outputs.iter().map(|(n, v)| json!({"name": n, "value": self.template(v)})).collect::<Vec<_>>(),
                    "triggers": level.triggers.iter().map(|t| json!({
                        "id": t.id,
                        "kind": trigger_kind(t.kind),
                        "eventType": t.event_type,
                        "schedule": t.schedule,
                        "timezone": t.timezone,
                        "at": self.position(t.source),
                    })).collect::<Vec<_>>(),
                    "steps": level.steps.iter().map(|step| {
                        let (kind, details) = self.step_kind(level, step);
                        json!({
                            "id": step.id,
                            "kind": kind,
                            "details": details.into_iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                            "inputs": step.inputs.iter().map(|(n, v)| json!({"name": n, "value": self.template(v)})).collect::<Vec<_>>(),
                            "next": step.next.iter().map(|&t| step_id(level, t)).collect::<Vec<_>>(),
                            "branches": step.branches.iter().map(|(h, t)| json!({"handle": h, "to": step_id(level, *t)})).collect::<Vec<_>>(),
                            "at": self.position(step.source),
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "id": self.plan.id().to_string(),
            "formatVersion": header.format_version,
            "bytes": self.size,
            "signedBy": self.plan.signer().map(|k| k.to_string()),
            "header": {
                "apiVersion": header.api_version,
                "name": header.name,
                "version": header.version,
                "project": header.project,
                "requires": header.requires,
            },
            "sources": plan.sources.iter().enumerate().map(|(i, s)| json!({
                "path": s.path,
                "sha256": hex(&s.sha256),
                "found": self.sources[i].is_some(),
            })).collect::<Vec<_>>(),
            "constants": plan.constants.iter().map(constant_text).collect::<Vec<_>>(),
            "verbs": plan.verbs.iter().map(|v| json!({
                "verb": v.qualified(),
                "kind": verb_kind(v.kind),
                "sideEffect": side_effect(v.side_effect),
                "requiredInputs": v.required_inputs,
                "routeBy": v.route_by,
                "routeCases": v.route_cases,
                "handles": v.handles,
                "events": v.events,
                "idempotencyKey": v.idempotency_key,
            })).collect::<Vec<_>>(),
            "levels": levels,
            "exprs": plan.exprs.iter().map(|e| json!({
                "type": e.result_type,
                "maxStack": e.max_stack,
                "locals": e.locals,
                "at": self.position(e.source),
                "code": self.instructions(e).into_iter().map(|l| json!({
                    "offset": l.offset,
                    "steps": l.steps,
                    "op": l.text,
                    "at": l.position,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

struct Line {
    offset: u32,
    steps: u8,
    text: String,
    position: Option<String>,
}

fn step_id(level: &Level, step: u32) -> &str {
    level
        .steps
        .get(step as usize)
        .map_or("?", |s| s.id.as_str())
}

fn constant_text(constant: &Constant) -> String {
    match constant {
        Constant::Null => "null".into(),
        Constant::Bool(b) => b.to_string(),
        Constant::Int(i) => i.to_string(),
        Constant::Double(bits) => format!("{:?}", f64::from_bits(*bits)),
        Constant::String(s) => format!("{s:?}"),
    }
}

fn verb_kind(kind: VerbKind) -> &'static str {
    match kind {
        VerbKind::Action => "action",
        VerbKind::Condition => "condition",
        VerbKind::Gate => "gate",
        VerbKind::Trigger => "trigger",
    }
}

fn side_effect(class: SideEffect) -> &'static str {
    match class {
        SideEffect::ReadOnly => "read-only",
        SideEffect::ExternalWrite => "external-write",
        SideEffect::InternalOnly => "internal-only",
    }
}

fn trigger_kind(kind: TriggerKind) -> &'static str {
    match kind {
        TriggerKind::Webhook => "webhook",
        TriggerKind::Cron => "cron",
        TriggerKind::Signal => "signal",
        TriggerKind::Manual => "manual",
        TriggerKind::AgentRequest => "agent.request",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
