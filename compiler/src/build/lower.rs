//! Lowering: a workflow that checked clean → the plan model.
//!
//! The checker has already proved everything a plan needs (verbs resolve,
//! references exist, graphs are acyclic, groups are not cyclic), so lowering
//! reports only what it cannot represent. Each group or loop file becomes one
//! level however often it is used; expressions compile to bytecode into one
//! constant pool, typed by what the checker found (a `.f` the schema
//! declares optional reads an absent field as `null`, as the checker types
//! it: `codegen::compile_typed`). Paths in the plan are relative to the main workflow's
//! folder and nothing depends on the build's time or place, so the same
//! sources always give the same plan.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use donmai_grammar::ast::{self, Ident, StepType, ValueKind, Workflow};
use donmai_grammar::expr::Expr;
use donmai_grammar::lower::parse_workflow;
use donmai_grammar::template::{Segment, Template, parse_template};
use donmai_grammar::{SourceFile, Span};
use donmai_runtime::bytecode::ConstPool;
use donmai_runtime::plan::{self as model, Constant, ExprIx, LevelIx, Plan, SourceIx, SourceRef};
use donmai_stdlib::manifest::{SideEffectClass, Verb, VerbKind};
use donmai_stdlib::registry::{Registry, VerbRef};
use donmai_stdlib::types::Type;
use sha2::{Digest, Sha256};

use crate::check::{Facts, GroupCache, check_source_with};
use crate::codegen::{compile_expr, compile_typed};
use crate::project::Project;

/// Why a checked workflow could not be lowered. Positions are in `file`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowerError {
    pub file: PathBuf,
    pub span: Span,
    pub message: String,
}

/// Lowers the workflow in `main` (which must have checked without errors).
pub fn lower(
    main: &SourceFile,
    project: &Project,
    registry: &Registry,
) -> Result<Plan, LowerError> {
    let base = main
        .path()
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| main.path().parent().unwrap_or(Path::new(".")).to_path_buf());
    let mut lowerer = Lowerer {
        registry,
        project,
        groups: GroupCache::default(),
        base,
        pool: ConstPool::default(),
        verbs: Vec::new(),
        verb_index: HashMap::new(),
        exprs: Vec::new(),
        levels: Vec::new(),
        level_index: HashMap::new(),
        sources: Vec::new(),
        stack: Vec::new(),
    };
    let parsed = parse_workflow(main.text());
    let Some(workflow) = parsed.workflow else {
        return Err(LowerError {
            file: main.path().to_path_buf(),
            span: Span::new(0, 0),
            message: "the file is not a workflow".into(),
        });
    };
    let name = main.path().file_name().map_or_else(
        || "workflow.yaml".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let source = lowerer.add_source(name, main.text());
    let header = header(&workflow, main.path());
    lowerer.levels.push(placeholder_level("main"));
    let canonical = main
        .path()
        .canonicalize()
        .unwrap_or_else(|_| main.path().into());
    lowerer.stack.push(canonical);
    let facts = lowerer.facts(main);
    let file = FileContext {
        path: main.path(),
        source,
        api: workflow.api_version.value,
        facts,
    };
    let level = lowerer.level(&file, &workflow, "main".into())?;
    lowerer.levels[0] = level;
    Ok(Plan {
        header,
        constants: lowerer.pool.into_constants(),
        verbs: lowerer.verbs,
        exprs: lowerer.exprs,
        levels: lowerer.levels,
        sources: lowerer.sources,
    })
}

fn header(workflow: &Workflow, path: &Path) -> model::Header {
    let mut requires: Vec<String> = workflow
        .requires
        .iter()
        .map(|r| r.plugin.value.clone())
        .collect();
    requires.sort();
    requires.dedup();
    let text = |ident: &Option<Ident>| ident.as_ref().map(|i| i.value.clone());
    model::Header {
        format_version: model::FORMAT_VERSION,
        api_version: match workflow.api_version.value {
            ast::ApiVersion::V1 => "workflow/v1".into(),
            ast::ApiVersion::V2 => "workflow/v2".into(),
        },
        name: text(&workflow.metadata.name).unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "workflow".into(), |s| s.to_string_lossy().into_owned())
        }),
        version: text(&workflow.metadata.version),
        project: text(&workflow.metadata.project),
        requires,
    }
}

fn placeholder_level(name: &str) -> model::Level {
    model::Level {
        name: name.into(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        triggers: Vec::new(),
        steps: Vec::new(),
    }
}

struct Lowerer<'r> {
    registry: &'r Registry,
    project: &'r Project,
    groups: GroupCache,
    /// The main workflow's folder: plan paths are relative to it.
    base: PathBuf,
    pool: ConstPool,
    verbs: Vec<model::VerbRef>,
    verb_index: HashMap<String, model::VerbIx>,
    exprs: Vec<model::ExprCode>,
    levels: Vec<model::Level>,
    level_index: HashMap<PathBuf, LevelIx>,
    sources: Vec<model::SourceFileRef>,
    /// Canonical paths of the files being lowered, to refuse a cycle the
    /// checker would have reported.
    stack: Vec<PathBuf>,
}

/// The file a level comes from.
struct FileContext<'a> {
    path: &'a Path,
    source: SourceIx,
    api: ast::ApiVersion,
    /// What the checker learnt about the file's level: the expressions'
    /// types.
    facts: Option<Facts>,
}

impl FileContext<'_> {
    fn error(&self, span: Span, message: impl Into<String>) -> LowerError {
        LowerError {
            file: self.path.to_path_buf(),
            span,
            message: message.into(),
        }
    }

    fn at(&self, span: Span) -> SourceRef {
        SourceRef {
            file: self.source,
            start: offset(span.start),
            end: offset(span.end),
        }
    }
}

fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

fn index(len: usize) -> u32 {
    u32::try_from(len).expect("plan tables stay far below 2^32 entries")
}

impl Lowerer<'_> {
    /// The checker's facts about one file's level (it checked clean).
    fn facts(&self, file: &SourceFile) -> Option<Facts> {
        check_source_with(file, self.project, self.registry, &self.groups, true).facts
    }

    fn add_source(&mut self, path: String, text: &str) -> SourceIx {
        self.sources.push(model::SourceFileRef {
            path,
            sha256: Sha256::digest(text.as_bytes()).into(),
        });
        index(self.sources.len() - 1)
    }

    fn level(
        &mut self,
        file: &FileContext<'_>,
        workflow: &Workflow,
        name: String,
    ) -> Result<model::Level, LowerError> {
        let step_index: HashMap<&str, model::StepIx> = workflow
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.value.as_str(), index(i)))
            .collect();
        let mut trigger_index: HashMap<&str, model::TriggerIx> = workflow
            .triggers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.value.as_str(), index(i)))
            .collect();
        let resolve = |ident: &Ident| -> Result<model::StepIx, LowerError> {
            step_index
                .get(ident.value.as_str())
                .copied()
                .ok_or_else(|| file.error(ident.span, format!("no step `{}`", ident.value)))
        };

        let mut triggers = workflow
            .triggers
            .iter()
            .map(|t| trigger(file, t))
            .collect::<Result<Vec<_>, _>>()?;
        // A group's entry is a trigger step without `triggerId`: it fires
        // with the interface inputs as its payload, so it becomes a manual
        // trigger of the level whose fields are those inputs.
        if let Some(interface) = &workflow.interface {
            for step in &workflow.steps {
                if step.ty.value == StepType::Trigger && step.trigger_id.is_none() {
                    trigger_index.insert(step.id.value.as_str(), index(triggers.len()));
                    triggers.push(model::TriggerDef {
                        id: step.id.value.clone(),
                        kind: model::TriggerKind::Manual,
                        event_type: None,
                        schedule: None,
                        timezone: None,
                        fields: interface
                            .inputs
                            .iter()
                            .map(|(name, ty)| port(name, ty))
                            .collect(),
                        source: file.at(step.span),
                    });
                }
            }
        }
        let mut steps = Vec::with_capacity(workflow.steps.len());
        for step in &workflow.steps {
            let kind = self.step_kind(file, step, &trigger_index, &resolve)?;
            let inputs = step
                .inputs
                .iter()
                .map(|input| Ok((input.name.value.clone(), self.value(file, &input.value)?)))
                .collect::<Result<Vec<_>, LowerError>>()?;
            let next = step.next.iter().map(&resolve).collect::<Result<_, _>>()?;
            let branches = step
                .branches
                .iter()
                .map(|(handle, target)| Ok((handle.value.clone(), resolve(target)?)))
                .collect::<Result<_, LowerError>>()?;
            steps.push(model::StepDef {
                id: step.id.value.clone(),
                kind,
                inputs,
                next,
                branches,
                default: match &step.default_handle {
                    Some(handle) => Some(match &handle.value {
                        ast::DefaultHandle::Case(case) => model::DefaultRoute::Case(case.clone()),
                        ast::DefaultHandle::Branch => model::DefaultRoute::Branch,
                    }),
                    // A gate's `branches.default` takes every handle that
                    // has no branch of its own.
                    None if step.ty.value == StepType::Gate
                        && step.branches.iter().any(|(h, _)| h.value == "default") =>
                    {
                        Some(model::DefaultRoute::Branch)
                    }
                    None => None,
                },
                retry: step.retry.as_deref().map(retry_policy),
                timeout_ms: step.timeout_ms.as_ref().map(|t| non_negative(t.value)),
                predecessors: Vec::new(),
                source: file.at(step.span),
            });
        }
        let mut predecessors: Vec<Vec<model::StepIx>> = vec![Vec::new(); steps.len()];
        for (from, step) in steps.iter().enumerate() {
            for to in successors(step) {
                predecessors[to as usize].push(index(from));
            }
        }
        for (step, mut preds) in steps.iter_mut().zip(predecessors) {
            preds.sort_unstable();
            preds.dedup();
            step.predecessors = preds;
        }

        let (inputs, outputs) = match &workflow.interface {
            Some(interface) => {
                let inputs = interface
                    .inputs
                    .iter()
                    .map(|(name, ty)| port(name, ty))
                    .collect();
                let outputs = interface
                    .outputs
                    .iter()
                    .map(|(name, value)| Ok((name.value.clone(), self.value(file, value)?)))
                    .collect::<Result<_, LowerError>>()?;
                (inputs, outputs)
            }
            None => (Vec::new(), Vec::new()),
        };
        Ok(model::Level {
            name,
            inputs,
            outputs,
            triggers,
            steps,
        })
    }

    fn step_kind(
        &mut self,
        file: &FileContext<'_>,
        step: &ast::Step,
        triggers: &HashMap<&str, model::TriggerIx>,
        resolve: &dyn Fn(&Ident) -> Result<model::StepIx, LowerError>,
    ) -> Result<model::StepKind, LowerError> {
        Ok(match step.ty.value {
            StepType::Trigger => {
                let id = step.trigger_id.as_ref().map_or(&step.id, |t| t);
                match triggers.get(id.value.as_str()) {
                    Some(&trigger) => model::StepKind::Trigger { trigger },
                    None => {
                        return Err(file.error(id.span, format!("no trigger `{}`", id.value)));
                    }
                }
            }
            StepType::Condition => model::StepKind::Condition {
                verb: self.verb(file, step)?,
            },
            StepType::Action => model::StepKind::Action {
                verb: self.verb(file, step)?,
            },
            StepType::Gate => {
                let verb = match &step.action {
                    Some(_) => Some(self.verb(file, step)?),
                    None => None,
                };
                let gate = self.gate(file, step, verb, resolve)?;
                model::StepKind::Gate { verb, gate }
            }
            StepType::Group | StepType::Loop => {
                let level = self.group_level(file, step)?;
                if step.ty.value == StepType::Group {
                    model::StepKind::Group { level }
                } else {
                    model::StepKind::Loop {
                        level,
                        max_iterations: step
                            .max_iterations
                            .as_ref()
                            .map_or(1, |m| u32::try_from(m.value).unwrap_or(1)),
                        until: step
                            .until
                            .as_ref()
                            .map(|p| self.predicate(file, p))
                            .transpose()?,
                    }
                }
            }
        })
    }

    fn verb(
        &mut self,
        file: &FileContext<'_>,
        step: &ast::Step,
    ) -> Result<model::VerbIx, LowerError> {
        let Some(action) = &step.action else {
            return Err(file.error(
                step.id.span,
                format!("step `{}` names no verb", step.id.value),
            ));
        };
        let reference =
            VerbRef::parse(&action.value).map_err(|message| file.error(action.span, message))?;
        let qualified = format!(
            "{}@{}:{}",
            reference.plugin, reference.major, reference.verb
        );
        if let Some(&ix) = self.verb_index.get(&qualified) {
            return Ok(ix);
        }
        let registry = self.registry;
        let (_, verb) = registry
            .resolve(&reference)
            .map_err(|_| file.error(action.span, format!("unknown verb `{qualified}`")))?;
        let idempotency_key = match &verb.idempotency_key {
            Some(template) => Some(self.manifest_template(&reference, verb, template)?),
            None => None,
        };
        let ix = index(self.verbs.len());
        self.verbs.push(model::VerbRef {
            plugin: reference.plugin.clone(),
            major: reference.major,
            verb: reference.verb.clone(),
            kind: match verb.kind {
                VerbKind::Action => model::VerbKind::Action,
                VerbKind::Condition => model::VerbKind::Condition,
                VerbKind::Gate => model::VerbKind::Gate,
                VerbKind::Trigger => model::VerbKind::Trigger,
            },
            side_effect: match verb.side_effect_class {
                SideEffectClass::ReadOnly => model::SideEffect::ReadOnly,
                SideEffectClass::ExternalWrite => model::SideEffect::ExternalWrite,
                SideEffectClass::InternalOnly => model::SideEffect::InternalOnly,
            },
            required_inputs: required_inputs(&verb.input_type()),
            route_by: verb.route_by.clone(),
            route_cases: match verb.routing() {
                donmai_stdlib::manifest::Routing::Switch { cases, .. } => cases.to_vec(),
                _ => Vec::new(),
            },
            handles: match verb.routing() {
                donmai_stdlib::manifest::Routing::Handles(handles) => handles.to_vec(),
                _ => Vec::new(),
            },
            events: verb.event_subscription.clone(),
            idempotency_key,
        });
        self.verb_index.insert(qualified, ix);
        Ok(ix)
    }

    /// A manifest's `idempotencyKey` template, compiled as one string
    /// expression whose source is the manifest.
    fn manifest_template(
        &mut self,
        reference: &VerbRef,
        verb: &Verb,
        text: &str,
    ) -> Result<ExprIx, LowerError> {
        let source = self.add_source(
            format!(
                "plugin:{}@{}#{}.idempotencyKey",
                reference.plugin, reference.major, verb.id
            ),
            text,
        );
        let file_path = PathBuf::from(&self.sources[source as usize].path);
        let template = parse_template(text);
        let error = |message: String| LowerError {
            file: file_path.clone(),
            span: Span::new(0, text.len()),
            message,
        };
        if let Some(diagnostic) = template.diagnostics.first() {
            return Err(error(format!(
                "the manifest's idempotencyKey of `{}` is not a valid template: {}",
                verb.id, diagnostic.message
            )));
        }
        // `"a:${x}"` becomes the string expression `"a:" + string(x)`, built
        // as the interpolation the engine would do, but in one expression so
        // the key is a single value.
        let expr = interpolation_expr(&template).map_err(error)?;
        let code = compile_expr(&expr, &mut self.pool, source)
            .map_err(|e| error(format!("cannot compile the idempotencyKey: {e}")))?;
        self.exprs.push(code);
        Ok(index(self.exprs.len() - 1))
    }

    fn gate(
        &mut self,
        file: &FileContext<'_>,
        step: &ast::Step,
        verb: Option<model::VerbIx>,
        resolve: &dyn Fn(&Ident) -> Result<model::StepIx, LowerError>,
    ) -> Result<model::GateDef, LowerError> {
        let config = step.gate.as_ref();
        let gate_type = match config.and_then(|g| g.gate_type.as_ref()).map(|t| t.value) {
            Some(ast::GateType::Timer) => model::GateType::Timer,
            Some(ast::GateType::Webhook) => model::GateType::Webhook,
            Some(ast::GateType::Signal) | None => model::GateType::Signal,
        };
        let event_types = match config.and_then(|g| g.signal_event_type.as_ref()) {
            Some(event) => vec![event.value.clone()],
            None => verb.map_or_else(Vec::new, |v| self.verbs[v as usize].events.clone()),
        };
        let filter = config
            .and_then(|g| g.match_.as_ref())
            .map(|p| self.predicate(file, p))
            .transpose()?;
        let on_timeout = match config.and_then(|g| g.on_timeout.as_ref()).map(|o| &o.value) {
            Some(ast::OnTimeout::Skip) => model::OnTimeout::Skip,
            Some(ast::OnTimeout::Branch(target)) => model::OnTimeout::Branch(resolve(target)?),
            Some(ast::OnTimeout::Error) | None => model::OnTimeout::Error,
        };
        let timeout_ms = config
            .and_then(|g| g.timeout_ms.as_ref())
            .or(step.timeout_ms.as_ref())
            .map(|t| non_negative(t.value));
        Ok(model::GateDef {
            gate_type,
            event_types,
            filter,
            on_timeout,
            timeout_ms,
        })
    }

    fn predicate(
        &mut self,
        file: &FileContext<'_>,
        predicate: &ast::Predicate,
    ) -> Result<model::Predicate, LowerError> {
        Ok(match &predicate.kind {
            ast::PredicateKind::All(items) => model::Predicate::All(
                items
                    .iter()
                    .map(|p| self.predicate(file, p))
                    .collect::<Result<_, _>>()?,
            ),
            ast::PredicateKind::Any(items) => model::Predicate::Any(
                items
                    .iter()
                    .map(|p| self.predicate(file, p))
                    .collect::<Result<_, _>>()?,
            ),
            ast::PredicateKind::Not(inner) => {
                model::Predicate::Not(Box::new(self.predicate(file, inner)?))
            }
            ast::PredicateKind::Leaf { field, op, value } => model::Predicate::Leaf {
                field: field.value.clone(),
                op: predicate_op(op.value),
                value: value.as_ref().map(|v| self.value(file, v)).transpose()?,
            },
        })
    }

    /// The level of a group or loop step's file, lowered once.
    fn group_level(
        &mut self,
        file: &FileContext<'_>,
        step: &ast::Step,
    ) -> Result<LevelIx, LowerError> {
        let Some(reference) = &step.group_ref else {
            return Err(file.error(step.id.span, "the step names no group file"));
        };
        let relative = strip_pin(&reference.value);
        let target = file.path.parent().unwrap_or(Path::new(".")).join(relative);
        let canonical = target
            .canonicalize()
            .map_err(|e| file.error(reference.span, format!("cannot read `{relative}`: {e}")))?;
        if let Some(&level) = self.level_index.get(&canonical) {
            return Ok(level);
        }
        if self.stack.contains(&canonical) {
            return Err(file.error(
                reference.span,
                "group files reference each other in a cycle",
            ));
        }
        let bytes = donmai_grammar::span::read_regular_file(&canonical)
            .map_err(|e| file.error(reference.span, format!("cannot read `{relative}`: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| file.error(reference.span, format!("`{relative}` is not UTF-8")))?;
        let parsed = parse_workflow(&text);
        let Some(workflow) = parsed.workflow else {
            return Err(file.error(reference.span, format!("`{relative}` is not a workflow")));
        };
        let name = relative_to(&self.base, &canonical);
        let source = self.add_source(name.clone(), &text);
        let facts = self.facts(&SourceFile::new(canonical.clone(), text.clone()));
        let level = index(self.levels.len());
        self.levels.push(placeholder_level(&name));
        self.level_index.insert(canonical.clone(), level);
        self.stack.push(canonical);
        let group_file = FileContext {
            path: &target,
            source,
            api: workflow.api_version.value,
            facts,
        };
        let lowered = self.level(&group_file, &workflow, name);
        self.stack.pop();
        self.levels[level as usize] = lowered?;
        Ok(level)
    }

    fn value(
        &mut self,
        file: &FileContext<'_>,
        value: &ast::Value,
    ) -> Result<model::ValueTemplate, LowerError> {
        Ok(match &value.kind {
            ValueKind::Null => model::ValueTemplate::Const(self.pool.intern(Constant::Null)),
            ValueKind::Bool(b) => model::ValueTemplate::Const(self.pool.intern(Constant::Bool(*b))),
            ValueKind::Int(i) => model::ValueTemplate::Const(self.pool.intern(Constant::Int(*i))),
            ValueKind::Double(d) => {
                model::ValueTemplate::Const(self.pool.intern(Constant::Double(d.to_bits())))
            }
            ValueKind::Str { text, template } => self.string(file, text, template)?,
            ValueKind::List(items) => model::ValueTemplate::List(
                items
                    .iter()
                    .map(|item| self.value(file, item))
                    .collect::<Result<_, _>>()?,
            ),
            ValueKind::Map(entries) => model::ValueTemplate::Map(
                entries
                    .iter()
                    .map(|(key, value)| Ok((key.value.clone(), self.value(file, value)?)))
                    .collect::<Result<_, LowerError>>()?,
            ),
        })
    }

    fn string(
        &mut self,
        file: &FileContext<'_>,
        text: &str,
        template: &Template,
    ) -> Result<model::ValueTemplate, LowerError> {
        if let Some(expr) = template.single_expr() {
            return Ok(model::ValueTemplate::Expr(self.expr(file, expr)?));
        }
        if !template
            .segments
            .iter()
            .any(|s| matches!(s, Segment::Expr { .. }))
        {
            return Ok(model::ValueTemplate::Const(
                self.pool.intern(Constant::String(text.to_string())),
            ));
        }
        let mut parts = Vec::with_capacity(template.segments.len());
        for segment in &template.segments {
            parts.push(match segment {
                Segment::Literal { text, .. } => model::TemplatePart::Text(text.clone()),
                Segment::Expr { expr, .. } => model::TemplatePart::Expr(self.expr(file, expr)?),
            });
        }
        Ok(model::ValueTemplate::Interpolate(parts))
    }

    fn expr(&mut self, file: &FileContext<'_>, expr: &Expr) -> Result<ExprIx, LowerError> {
        let _ = file.api;
        let declares_optional = |span: Span, name: &str| {
            file.facts
                .as_ref()
                .and_then(|facts| facts.expr_type_of(span))
                .is_some_and(|ty| match ty.non_null() {
                    Type::Object(object) => object.fields.get(name).is_some_and(|f| !f.required),
                    _ => false,
                })
        };
        let code = compile_typed(expr, &mut self.pool, file.source, &declares_optional)
            .map_err(|e| file.error(expr.span, format!("cannot compile this expression: {e}")))?;
        self.exprs.push(code);
        Ok(index(self.exprs.len() - 1))
    }
}

fn successors(step: &model::StepDef) -> impl Iterator<Item = model::StepIx> + '_ {
    let timeout = match &step.kind {
        model::StepKind::Gate {
            gate:
                model::GateDef {
                    on_timeout: model::OnTimeout::Branch(target),
                    ..
                },
            ..
        } => Some(*target),
        _ => None,
    };
    step.next
        .iter()
        .copied()
        .chain(step.branches.iter().map(|(_, t)| *t))
        .chain(timeout)
}

fn trigger(file: &FileContext<'_>, t: &ast::TriggerDef) -> Result<model::TriggerDef, LowerError> {
    let text = |ident: &Option<Ident>| ident.as_ref().map(|i| i.value.clone());
    Ok(model::TriggerDef {
        id: t.id.value.clone(),
        kind: match t.kind.value {
            ast::TriggerKind::Webhook => model::TriggerKind::Webhook,
            ast::TriggerKind::Cron | ast::TriggerKind::Schedule => model::TriggerKind::Cron,
            ast::TriggerKind::Signal => model::TriggerKind::Signal,
            ast::TriggerKind::Manual => model::TriggerKind::Manual,
            ast::TriggerKind::AgentRequest => model::TriggerKind::AgentRequest,
        },
        event_type: text(&t.event_type),
        schedule: text(&t.schedule),
        timezone: text(&t.timezone),
        fields: t.fields.iter().map(|(name, ty)| port(name, ty)).collect(),
        source: file.at(t.span),
    })
}

fn port(name: &Ident, ty: &ast::TypeSyntax) -> model::Port {
    model::Port {
        name: name.value.clone(),
        ty: type_text(ty),
        optional: matches!(ty.kind, ast::TypeSyntaxKind::Optional(_)),
    }
}

fn type_text(ty: &ast::TypeSyntax) -> String {
    match &ty.kind {
        ast::TypeSyntaxKind::Named(name) => name.clone(),
        ast::TypeSyntaxKind::List(item) => format!("list<{}>", type_text(item)),
        ast::TypeSyntaxKind::Map(item) => format!("map<string, {}>", type_text(item)),
        ast::TypeSyntaxKind::Optional(inner) => format!("{}?", type_text(inner)),
    }
}

/// Input ports that are required and cannot hold `null`: a `null` fed to
/// one of them skips the step.
fn required_inputs(input: &Type) -> Vec<String> {
    let Type::Object(object) = input else {
        return Vec::new();
    };
    let mut names: Vec<String> = object
        .fields
        .iter()
        .filter(|(_, field)| field.required && !field.ty.is_optional())
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

fn retry_policy(retry: &ast::Retry) -> model::RetryPolicy {
    model::RetryPolicy {
        max_attempts: retry
            .max_attempts
            .as_ref()
            .map_or(1, |m| u32::try_from(m.value.max(1)).unwrap_or(u32::MAX)),
        initial_ms: retry
            .initial_ms
            .as_ref()
            .map_or(1000, |m| non_negative(m.value)),
        factor: retry.factor.as_ref().map_or(2.0f64, |f| f.value).to_bits(),
        max_ms: retry
            .max_ms
            .as_ref()
            .map_or(300_000, |m| non_negative(m.value)),
        retry_on: retry.retry_on.iter().map(|r| r.value.clone()).collect(),
    }
}

fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn predicate_op(op: ast::PredicateOp) -> model::PredicateOp {
    use ast::PredicateOp as A;
    use model::PredicateOp as M;
    match op {
        A::Eq => M::Eq,
        A::Neq => M::Neq,
        A::In => M::In,
        A::Contains => M::Contains,
        A::Prefix => M::Prefix,
        A::Suffix => M::Suffix,
        A::Lt => M::Lt,
        A::Lte => M::Lte,
        A::Gt => M::Gt,
        A::Gte => M::Gte,
        A::Exists => M::Exists,
    }
}

/// `./groups/dev.yaml@1` → `./groups/dev.yaml`.
fn strip_pin(reference: &str) -> &str {
    match reference.rsplit_once('@') {
        Some((path, major)) if !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()) => {
            path
        }
        _ => reference,
    }
}

/// `target` relative to `base`, `/`-separated, with `..` where it leaves it.
fn relative_to(base: &Path, target: &Path) -> String {
    let base: Vec<Component> = base.components().collect();
    let target: Vec<Component> = target.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); base.len() - common];
    parts.extend(
        target[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// One string expression equal to interpolating `template`.
fn interpolation_expr(template: &Template) -> Result<Expr, String> {
    use donmai_grammar::expr::{BinaryOp, ExprKind, Name};
    let mut result: Option<Expr> = None;
    for segment in &template.segments {
        let part = match segment {
            Segment::Literal { text, span } => Expr {
                kind: ExprKind::String(text.clone()),
                span: *span,
            },
            Segment::Expr { expr, span, .. } => Expr {
                kind: ExprKind::Call {
                    target: None,
                    function: Name {
                        text: "string".into(),
                        span: *span,
                    },
                    args: vec![expr.clone()],
                },
                span: *span,
            },
        };
        result = Some(match result {
            None => part,
            Some(left) => {
                let span = Span::new(left.span.start, part.span.end);
                Expr {
                    kind: ExprKind::Binary {
                        op: BinaryOp::Add,
                        lhs: Box::new(left),
                        rhs: Box::new(part),
                    },
                    span,
                }
            }
        });
    }
    result.ok_or_else(|| "the template is empty".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_leave_the_base_with_dot_dot() {
        assert_eq!(
            relative_to(Path::new("/a/b"), Path::new("/a/b/groups/dev.yaml")),
            "groups/dev.yaml"
        );
        assert_eq!(
            relative_to(Path::new("/a/b"), Path::new("/a/shared/g.yaml")),
            "../shared/g.yaml"
        );
    }

    #[test]
    fn pins_are_stripped_only_when_numeric() {
        assert_eq!(strip_pin("./g.yaml@1"), "./g.yaml");
        assert_eq!(strip_pin("./g@x.yaml"), "./g@x.yaml");
    }
}
