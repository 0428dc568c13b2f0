//! Every compile rule of a workflow file.
//!
//! [`check_file`] parses and lowers one file, then checks it level by level:
//! plugins and verbs (rules 1, 2, 8), topology (rule 5), inputs against the
//! verbs' schemas with the expression types and null analysis (rules 3, 6,
//! W1, W4), routing handles (rule 4, gates), gate filters, groups and loops
//! across files, and the design lints.

mod facts;
mod graph;
mod groups;
pub mod palette;
mod reuse;
mod values;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use donmai_grammar::ast::*;
use donmai_grammar::diagnostic::Edit;
use donmai_grammar::diagnostic::{backticked, did_you_mean};
use donmai_grammar::lower::{ParsedWorkflow, parse_workflow};
use donmai_grammar::yaml::scalar_source;
use donmai_grammar::{Code, Diagnostic, SourceFile, Span};
use donmai_stdlib::manifest::{DeprecationStatus, SideEffectClass, Verb, VerbKind};
use donmai_stdlib::registry::{Registry, VerbRef};
use donmai_stdlib::types::{Field, ObjectType, Type};

use crate::project::Project;
pub use facts::{Facts, Site, Upstream};
use graph::{BitSet, Topology};
pub use groups::GroupCache;
use reuse::Recording;
pub use reuse::Reuse;

/// Steps in one level beyond which the checker reports instead of analysing:
/// the graph analyses are quadratic in the worst case.
pub const MAX_STEPS: usize = 20_000;

/// Checks one file and returns its diagnostics.
pub fn check_file(file: &SourceFile, project: &Project) -> Vec<Diagnostic> {
    let registry = crate::plugins::registry_for(project);
    let cache = GroupCache::default();
    check_source(file, project, &registry.registry, &cache)
}

/// [`check_file`] with an explicit registry and group cache.
pub fn check_source(
    file: &SourceFile,
    project: &Project,
    registry: &Registry,
    cache: &GroupCache,
) -> Vec<Diagnostic> {
    check_source_with(file, project, registry, cache, false).diagnostics
}

/// One file checked: its diagnostics, and for the editor the workflow and
/// what the checker learnt about it.
pub struct Checked {
    /// Sorted by span, without duplicates: what [`check_source`] returns.
    pub diagnostics: Vec<Diagnostic>,
    /// `None` when the file is not a workflow or its YAML does not parse.
    pub workflow: Option<Workflow>,
    /// Collected only when asked for, and only for a workflow whose steps
    /// were analysed (not one over [`MAX_STEPS`]).
    pub facts: Option<Facts>,
    /// Whether the check reused a previous one's results for the steps an
    /// edit did not touch ([`check_parsed_reusing`]).
    pub reused: bool,
}

/// [`check_source`], also keeping the workflow and, with `collect_facts`,
/// the [`Facts`] of its top level. One checking pass serves both: the
/// diagnostics are the same either way.
pub fn check_source_with(
    file: &SourceFile,
    project: &Project,
    registry: &Registry,
    cache: &GroupCache,
    collect_facts: bool,
) -> Checked {
    check_parsed_with(
        file,
        parse_workflow(file.text()),
        project,
        registry,
        cache,
        collect_facts,
    )
}

/// [`check_source_with`] on a parse of `file` the caller already has (the
/// language server re-parses only the step an edit touched).
pub fn check_parsed_with(
    file: &SourceFile,
    parsed: ParsedWorkflow,
    project: &Project,
    registry: &Registry,
    cache: &GroupCache,
    collect_facts: bool,
) -> Checked {
    check_parsed_reusing(file, parsed, project, registry, cache, collect_facts, None)
}

/// [`check_parsed_with`], reusing what a previous check found for every
/// step but the one an edit replaced, where that is sound ([`Reuse`]). The
/// result is what a check from scratch gives.
pub fn check_parsed_reusing(
    file: &SourceFile,
    parsed: ParsedWorkflow,
    project: &Project,
    registry: &Registry,
    cache: &GroupCache,
    collect_facts: bool,
    reuse: Option<&Reuse<'_>>,
) -> Checked {
    let mut diagnostics = parsed.diagnostics;
    let mut facts = None;
    let mut reused = false;
    if let Some(workflow) = &parsed.workflow {
        let context = Context {
            registry,
            project,
            cache,
        };
        let mut stack: Vec<std::path::PathBuf> = file.path().canonicalize().into_iter().collect();
        let mut level = check_level(
            &context,
            file.path(),
            file.text(),
            workflow,
            &mut stack,
            collect_facts,
            reuse,
        );
        diagnostics.append(&mut level.diagnostics);
        facts = level.facts;
        reused = level.reused;
    }
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end, d.code));
    diagnostics.dedup();
    Checked {
        diagnostics,
        workflow: parsed.workflow,
        facts,
        reused,
    }
}

pub(crate) struct Context<'a> {
    pub registry: &'a Registry,
    pub project: &'a Project,
    pub cache: &'a GroupCache,
}

/// A value of type `ty` for an author to replace: the smallest literal that
/// reads as the type, the first member of an enum.
fn placeholder(ty: &Type) -> String {
    match ty.non_null() {
        Type::Bool => "false".into(),
        Type::Int | Type::Double => "0".into(),
        Type::List(_) => "[]".into(),
        Type::Map(_) | Type::Object(_) => "{}".into(),
        Type::Enum(members) => members
            .first()
            .map_or_else(|| "\"\"".into(), |m| scalar_source(m)),
        _ => "\"\"".into(),
    }
}

/// What a group (or loop body) looks like from outside.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub inputs: Arc<ObjectType>,
    pub outputs: Arc<ObjectType>,
    pub version: Option<String>,
}

/// Checks one workflow level. `stack` holds the canonical paths of the
/// groups being checked, to find cycles between group files.
pub(crate) fn check_workflow(
    context: &Context<'_>,
    path: &Path,
    text: &str,
    workflow: &Workflow,
    stack: &mut Vec<std::path::PathBuf>,
) -> (Vec<Diagnostic>, Option<Signature>, bool) {
    let level = check_level(context, path, text, workflow, stack, false, None);
    (level.diagnostics, level.signature, level.in_cycle)
}

/// The result of checking one workflow level.
struct Level {
    diagnostics: Vec<Diagnostic>,
    signature: Option<Signature>,
    /// Whether a group reference here closes a cycle of group files.
    in_cycle: bool,
    facts: Option<Facts>,
    /// Whether a previous check's step results were reused.
    reused: bool,
}

fn check_level(
    context: &Context<'_>,
    path: &Path,
    text: &str,
    workflow: &Workflow,
    stack: &mut Vec<std::path::PathBuf>,
    collect_facts: bool,
    reuse: Option<&Reuse<'_>>,
) -> Level {
    let mut checker = Checker {
        context,
        path,
        text,
        workflow,
        diagnostics: Vec::new(),
        requires_offered: HashSet::new(),
        required: HashMap::new(),
        trigger_payloads: HashMap::new(),
        interface_inputs: None,
        topology: None,
        outputs: vec![None; workflow.steps.len()],
        used_outputs: HashSet::new(),
        trigger_types: HashMap::new(),
        trigger_types_at_end: None,
        signatures: vec![None; workflow.steps.len()],
        verbs: vec![None; workflow.steps.len()],
        verb_slots: vec![None; workflow.steps.len()],
        in_cycle: false,
        expr_types: collect_facts.then(Vec::new),
        recording: Recording::default(),
    };
    checker.requires();
    checker.triggers();
    checker.interface_inputs();
    if workflow.steps.len() > MAX_STEPS {
        checker.diagnostics.push(
            Diagnostic::new(
                Code::DOCUMENT_TOO_COMPLEX,
                workflow.steps_span,
                format!(
                    "{} steps in one level: the limit is {MAX_STEPS}",
                    workflow.steps.len()
                ),
            )
            .with_help("split the workflow into groups"),
        );
        return Level {
            diagnostics: checker.diagnostics,
            signature: None,
            in_cycle: false,
            facts: None,
            reused: false,
        };
    }
    checker.recording.global_end = checker.diagnostics.len();
    let replayed = reuse.is_some_and(|reuse| checker.replay(reuse, stack));
    if !replayed {
        checker.topology = Some(Topology::build(workflow, &mut checker.diagnostics));
        checker.recording.topology_end = checker.diagnostics.len();
        for index in 0..workflow.steps.len() {
            checker.step_output(index, stack);
            checker
                .recording
                .output_done(&checker.diagnostics, checker.in_cycle);
        }
        let exprs = checker.expr_types.as_ref().map_or(0, Vec::len);
        checker
            .recording
            .checks_begin(checker.diagnostics.len(), exprs);
        for index in 0..workflow.steps.len() {
            checker.step(index);
            checker.recording.check_done(
                &checker.diagnostics,
                checker.expr_types.as_ref().map_or(0, Vec::len),
            );
        }
    }
    let signature = checker.signature();
    checker.lints();
    let facts = collect_facts.then(|| checker.facts());
    Level {
        diagnostics: checker.diagnostics,
        signature,
        in_cycle: checker.in_cycle,
        facts,
        reused: replayed,
    }
}

struct Checker<'a> {
    context: &'a Context<'a>,
    path: &'a Path,
    /// The file's text, for fixes that insert new YAML.
    text: &'a str,
    /// Plugins whose missing `requires` entry already carries a fix.
    requires_offered: HashSet<String>,
    workflow: &'a Workflow,
    diagnostics: Vec<Diagnostic>,
    /// Plugin name → (major, span of its `requires` entry).
    required: HashMap<String, (u32, Span)>,
    /// Trigger id → payload type.
    trigger_payloads: HashMap<String, Type>,
    interface_inputs: Option<Arc<ObjectType>>,
    topology: Option<Topology>,
    /// Output type of each step, once known.
    outputs: Vec<Option<Type>>,
    /// Steps whose `output` some expression reads.
    used_outputs: HashSet<usize>,
    /// The type of `trigger`, by the set of triggers reaching a step.
    /// Keyed by the reaching entries (`Topology::reached_by`).
    trigger_types: HashMap<Vec<u64>, Type>,
    /// The type of `trigger` at the end of the run (all triggers).
    trigger_types_at_end: Option<Type>,
    /// Signature of each group and loop step.
    signatures: Vec<Option<Signature>>,
    /// The verb of each step, resolved once.
    verbs: Vec<Option<&'a Verb>>,
    /// Where each step's verb is in the registry: (plugin slot, verb index).
    verb_slots: Vec<Option<(u32, u32)>>,
    /// Whether a group reference here closes a cycle of group files.
    in_cycle: bool,
    /// The type of every checked subexpression, when facts are collected.
    expr_types: Option<Vec<(Span, Type)>>,
    /// What each step contributed, for reuse after an edit.
    recording: Recording,
}

impl<'a> Checker<'a> {
    fn topology(&self) -> &Topology {
        self.topology
            .as_ref()
            .expect("topology is built before steps are checked")
    }

    fn is_v2(&self) -> bool {
        self.workflow.api_version.value == ApiVersion::V2
    }

    fn requires(&mut self) {
        for require in &self.workflow.requires {
            let text = &require.plugin.value;
            let Some((name, major)) = parse_pin(text) else {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::INVALID_VALUE,
                        require.plugin.span,
                        format!("`{text}` is not a plugin pin"),
                    )
                    .with_help("write `<plugin>@<major>`, e.g. `linear@1`"),
                );
                continue;
            };
            if let Some((_, first)) = self.required.get(name) {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::DUPLICATE_ID,
                        require.plugin.span,
                        format!("plugin `{name}` is required twice"),
                    )
                    .with_label(*first, "first required here"),
                );
                continue;
            }
            self.required
                .insert(name.to_string(), (major, require.plugin.span));
            let registry = self.context.registry;
            if registry.plugin(name, major).is_none() {
                let majors = registry.majors(name);
                let mut diagnostic = Diagnostic::new(
                    Code::PLUGIN_NOT_INSTALLED,
                    require.plugin.span,
                    if majors.is_empty() {
                        format!("plugin `{name}` is not installed")
                    } else {
                        format!("plugin `{name}` has no major version {major}")
                    },
                );
                if majors.is_empty() {
                    if let Some(s) = registry.suggest_plugin(name) {
                        diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
                    } else {
                        diagnostic = diagnostic.with_help(
                            "bundled plugins are listed by `donmaic explain DN0110`; third-party plugins go in `.donmai/plugins/<name>/plugin.yaml`",
                        );
                    }
                } else {
                    let list: Vec<String> =
                        majors.iter().map(|m| format!("`{name}@{m}`")).collect();
                    diagnostic = diagnostic.with_help(format!("installed: {}", list.join(", ")));
                }
                self.diagnostics.push(diagnostic);
            } else {
                let workflow_project = self.workflow.metadata.project.as_ref();
                let denial = palette::plugin_denial(
                    self.context.project,
                    name,
                    workflow_project.map(|p| p.value.as_str()),
                );
                match denial {
                    None => {}
                    Some(palette::PluginDenial::ScopeDenied) => {
                        let allowed = self
                            .context
                            .project
                            .integration_projects(name)
                            .map(backticked)
                            .unwrap_or_default();
                        let mut diagnostic = Diagnostic::new(
                            Code::SCOPE_DENIED,
                            require.plugin.span,
                            match workflow_project {
                                Some(project) => format!(
                                    "integration `{name}` is not enabled for project `{}`",
                                    project.value
                                ),
                                None => format!(
                                    "integration `{name}` is enabled for some projects only, and this workflow names none"
                                ),
                            },
                        )
                        .with_help(format!(
                            "donmai.toml enables it for {}; set `metadata.scope.project` to one of them",
                            allowed
                        ));
                        if let Some(project) = workflow_project {
                            diagnostic =
                                diagnostic.with_label(project.span, "this workflow's project");
                        }
                        self.diagnostics.push(diagnostic);
                    }
                    Some(palette::PluginDenial::NotEnabled) => {
                        self.diagnostics.push(
                            Diagnostic::new(
                                Code::PROVIDER_DISABLED,
                                require.plugin.span,
                                format!("integration `{name}` is not enabled for this project"),
                            )
                            .with_help(format!(
                                "add \"{name}\" to `[integrations] enabled` in donmai.toml"
                            )),
                        );
                    }
                }
            }
        }
    }

    fn triggers(&mut self) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for trigger in &self.workflow.triggers {
            if let Some(first) = seen.insert(&trigger.id.value, trigger.id.span) {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::DUPLICATE_ID,
                        trigger.id.span,
                        format!("trigger id `{}` is used twice", trigger.id.value),
                    )
                    .with_label(first, "first defined here"),
                );
                continue;
            }
            let payload = match trigger.kind.value {
                TriggerKind::Webhook | TriggerKind::Signal => match &trigger.event_type {
                    Some(event) => self.event_payload(event),
                    None => Type::Dyn,
                },
                TriggerKind::Schedule | TriggerKind::Cron => {
                    if trigger.kind.value == TriggerKind::Schedule {
                        self.diagnostics.push(
                            Diagnostic::new(
                                Code::SCHEDULE_KIND_DEPRECATED,
                                trigger.kind.span,
                                "trigger kind `schedule` is deprecated",
                            )
                            .with_replacement(
                                "use `cron`",
                                trigger.kind.span,
                                "cron",
                            ),
                        );
                    }
                    if let Some(schedule) = &trigger.schedule {
                        self.cron_expression(schedule);
                    }
                    object([("firedAt", Type::Timestamp, true)], true)
                }
                TriggerKind::Manual | TriggerKind::AgentRequest => {
                    let mut fields = BTreeMap::new();
                    if trigger.kind.value == TriggerKind::AgentRequest {
                        fields.insert(
                            "project".to_string(),
                            Field {
                                ty: Type::String,
                                required: true,
                            },
                        );
                        fields.insert(
                            "requester".to_string(),
                            Field {
                                ty: Type::String,
                                required: true,
                            },
                        );
                    }
                    for (name, syntax) in &trigger.fields {
                        if let Some(ty) = self.type_of_syntax(syntax) {
                            let required = !ty.is_optional();
                            fields.insert(
                                name.value.clone(),
                                Field {
                                    ty: ty.non_null().clone(),
                                    required,
                                },
                            );
                        }
                    }
                    Type::Object(Arc::new(ObjectType {
                        fields,
                        closed: true,
                    }))
                }
            };
            self.trigger_payloads
                .insert(trigger.id.value.clone(), payload);
        }
    }

    /// Five or six space-separated fields of `0-9 * , - /` and names.
    fn cron_expression(&mut self, schedule: &Ident) {
        let fields: Vec<&str> = schedule.value.split_whitespace().collect();
        let valid_chars = schedule
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " *,-/?".contains(c));
        if !(5..=6).contains(&fields.len()) || !valid_chars {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::INVALID_VALUE,
                    schedule.span,
                    format!("`{}` is not a cron schedule", schedule.value),
                )
                .with_help("a schedule has five fields: minute hour day-of-month month day-of-week, e.g. `0 3 * * *`"),
            );
        }
    }

    fn event_payload(&mut self, event: &Ident) -> Type {
        match self.context.registry.event(&event.value) {
            Some((_, event)) => event.payload_type(),
            None => {
                let names = self.context.registry.event_names();
                let mut diagnostic = Diagnostic::new(
                    Code::INVALID_VALUE,
                    event.span,
                    format!("no installed plugin defines event type `{}`", event.value),
                );
                if let Some(s) = did_you_mean(&event.value, names.iter().copied()) {
                    diagnostic = diagnostic.with_suggestion(s, event.span);
                }
                self.diagnostics.push(diagnostic);
                Type::Dyn
            }
        }
    }

    fn interface_inputs(&mut self) {
        let Some(interface) = &self.workflow.interface else {
            return;
        };
        if let Some(first) = self.workflow.triggers.first() {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::BAD_INTERFACE,
                    first.span,
                    "a group file has no `triggers`: it starts from its interface inputs",
                )
                .with_label(interface.span, "this file is a group because of its interface")
                .with_help("remove `triggers` and start with `{id: entry, type: trigger}`, reading inputs as `trigger.<input>`"),
            );
        }
        let mut fields = BTreeMap::new();
        for (name, syntax) in &interface.inputs {
            if let Some(ty) = self.type_of_syntax(syntax) {
                let required = !ty.is_optional();
                fields.insert(
                    name.value.clone(),
                    Field {
                        ty: ty.non_null().clone(),
                        required,
                    },
                );
            }
        }
        self.interface_inputs = Some(Arc::new(ObjectType {
            fields,
            closed: true,
        }));
    }

    fn type_of_syntax(&mut self, syntax: &TypeSyntax) -> Option<Type> {
        Some(match &syntax.kind {
            TypeSyntaxKind::Named(name) => match name.as_str() {
                "string" => Type::String,
                "int" => Type::Int,
                "double" => Type::Double,
                "bool" => Type::Bool,
                "timestamp" => Type::Timestamp,
                "duration" => Type::Duration,
                "dyn" => Type::Dyn,
                other => {
                    let known = [
                        "string",
                        "int",
                        "double",
                        "bool",
                        "timestamp",
                        "duration",
                        "dyn",
                    ];
                    let mut diagnostic = Diagnostic::new(
                        Code::INVALID_VALUE,
                        syntax.span,
                        format!("`{other}` is not a type"),
                    );
                    if let Some(s) = did_you_mean(other, known) {
                        diagnostic = diagnostic
                            .with_help(format!("did you mean `{s}`?"))
                            .with_replacement(format!("use `{s}`"), syntax.span, s);
                    } else {
                        diagnostic = diagnostic.with_help(
                            "types are `string int double bool timestamp duration list<T> map<string, T>`, with `?` for optional",
                        );
                    }
                    self.diagnostics.push(diagnostic);
                    return None;
                }
            },
            TypeSyntaxKind::List(item) => Type::list(self.type_of_syntax(item)?),
            TypeSyntaxKind::Map(value) => Type::map(self.type_of_syntax(value)?),
            TypeSyntaxKind::Optional(inner) => self.type_of_syntax(inner)?.optional(),
        })
    }

    /// Resolves `config.action` of a step to its verb, reporting every way
    /// that can fail (rules 1, 2 and 8).
    fn verb(&mut self, step: &Step) -> Option<(&'a Verb, (u32, u32))> {
        let action = step.action.as_ref()?;
        let verb_ref = match VerbRef::parse(&action.value) {
            Ok(verb_ref) => verb_ref,
            Err(message) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::INVALID_VALUE, action.span, message)
                        .with_help("a verb reference reads `<plugin>@<major>:<verb>`, e.g. `linear@1:linear.issue.update`"),
                );
                return None;
            }
        };
        let registry: &'a Registry = self.context.registry;
        match self.required.get(&verb_ref.plugin) {
            Some(&(major, span)) if major != verb_ref.major => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::PLUGIN_NOT_REQUIRED,
                        action.span,
                        format!(
                            "`{}` pins major {} but `requires` pins `{}@{major}`",
                            action.value, verb_ref.major, verb_ref.plugin
                        ),
                    )
                    .with_label(span, "required here"),
                );
            }
            Some(_) => {}
            None => {
                let pin = format!("{}@{}", verb_ref.plugin, verb_ref.major);
                let mut diagnostic = Diagnostic::new(
                    Code::PLUGIN_NOT_REQUIRED,
                    action.span,
                    format!(
                        "plugin `{}` is used here but missing from `requires`",
                        verb_ref.plugin
                    ),
                )
                .with_help(format!("add `- {{plugin: {pin}}}` to `requires`"));
                if self.requires_offered.insert(verb_ref.plugin.clone())
                    && self.recording.offered(&verb_ref.plugin)
                    && let Some(edit) = self.requires_insertion(&pin)
                {
                    diagnostic = diagnostic
                        .with_label(edit.span, "the fix adds it here")
                        .with_fix(format!("require `{pin}`"), vec![edit]);
                }
                self.diagnostics.push(diagnostic);
            }
        }
        let slot = registry.plugin_slot(&verb_ref.plugin, verb_ref.major);
        let Some(plugin) = slot.and_then(|slot| registry.plugin_at(slot)) else {
            if !self.required.contains_key(&verb_ref.plugin) {
                self.diagnostics.push(Diagnostic::new(
                    Code::PLUGIN_NOT_INSTALLED,
                    action.span,
                    format!(
                        "plugin `{}@{}` is not installed",
                        verb_ref.plugin, verb_ref.major
                    ),
                ));
            }
            return None;
        };
        let verb_index = plugin.verbs.iter().position(|v| v.id == verb_ref.verb);
        let Some(verb) = verb_index.map(|i| &plugin.verbs[i]) else {
            let mut diagnostic = Diagnostic::new(
                Code::UNKNOWN_VERB,
                action.span,
                format!(
                    "plugin `{}@{}` has no verb `{}`",
                    verb_ref.plugin, verb_ref.major, verb_ref.verb
                ),
            );
            if let Some(s) = plugin.suggest_verb(&verb_ref.verb) {
                let fixed = format!("{}@{}:{s}", verb_ref.plugin, verb_ref.major);
                diagnostic = diagnostic
                    .with_help(format!("did you mean `{s}`?"))
                    .with_replacement(format!("use `{fixed}`"), action.span, scalar_source(&fixed));
            }
            self.diagnostics.push(diagnostic);
            return None;
        };
        if let Some(deprecation) = &verb.deprecation {
            let successor = deprecation
                .successor
                .as_ref()
                .map(|s| format!("use `{s}` instead"));
            match palette::verb_status(verb) {
                DeprecationStatus::Removed => {
                    let after = deprecation.after.map(|d| d.to_string()).unwrap_or_default();
                    let mut diagnostic = Diagnostic::new(
                        Code::VERB_REMOVED,
                        action.span,
                        format!("verb `{}` was removed after {after}", verb_ref.verb),
                    );
                    if let Some(help) = successor {
                        diagnostic = diagnostic.with_help(help);
                    }
                    self.diagnostics.push(diagnostic);
                }
                DeprecationStatus::Deprecated => {
                    let mut message = format!(
                        "verb `{}` is deprecated since {}",
                        verb_ref.verb, deprecation.since
                    );
                    if let Some(after) = deprecation.after {
                        message.push_str(&format!(" and stops compiling after {after}"));
                    }
                    let mut diagnostic =
                        Diagnostic::new(Code::VERB_DEPRECATED, action.span, message);
                    if let Some(help) = successor {
                        diagnostic = diagnostic.with_help(help);
                    }
                    self.diagnostics.push(diagnostic);
                }
                DeprecationStatus::Active => {}
            }
        }
        if let Some(expected) = palette::verb_kind_for(step.ty.value)
            && verb.kind != expected
        {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::VERB_KIND_MISMATCH,
                    action.span,
                    format!(
                        "`{}` is {} verb, but step `{}` is {}",
                        verb_ref.verb,
                        with_article(verb.kind.as_str()),
                        step.id.value,
                        with_article(step.ty.value.as_str())
                    ),
                )
                .with_label(step.ty.span, "step type declared here"),
            );
        }
        let slot = (
            slot.and_then(|s| u32::try_from(s).ok())?,
            verb_index.and_then(|i| u32::try_from(i).ok())?,
        );
        Some((verb, slot))
    }

    /// An edit adding `{plugin: <pin>}` to `requires`, in the style the
    /// file already uses; `None` when the shape is too unusual to edit safely.
    fn requires_insertion(&self, pin: &str) -> Option<Edit> {
        let text = self.text;
        if let (Some(first), Some(last)) = (
            self.workflow.requires.first(),
            self.workflow.requires.last(),
        ) {
            let before = text.get(..first.span.start)?.trim_end_matches([' ', '\t']);
            if before.ends_with('[') || before.ends_with(',') {
                return Some(Edit {
                    span: Span::at(last.span.end),
                    replacement: format!(", {{plugin: {pin}}}"),
                });
            }
            let line_start = text
                .get(..last.span.start)?
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let prefix = text.get(line_start..last.span.start)?;
            let dash = prefix.find('-')?;
            if !prefix[..dash].chars().all(|c| c == ' ') {
                return None;
            }
            return Some(Edit {
                span: Span::at(last.span.end),
                replacement: format!("\n{}- {{plugin: {pin}}}", &prefix[..dash]),
            });
        }
        // A top-level key that is `requires` or a near miss of it (which its
        // own did-you-mean fix renames) would make the insertion a duplicate key.
        let names_requires = |line: &str| {
            let key = line.split(':').next().unwrap_or_default().trim();
            !line.starts_with([' ', '\t', '#', '-'])
                && !key.is_empty()
                && did_you_mean(key, ["requires"]).is_some()
        };
        if text.lines().any(names_requires) {
            return None;
        }
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if line.starts_with("triggers:") || line.starts_with("spec:") {
                return Some(Edit {
                    span: Span::at(offset),
                    replacement: format!("requires: [{{plugin: {pin}}}]\n"),
                });
            }
            offset += line.len();
        }
        None
    }

    /// The output type of every step, before expressions are checked.
    /// Resolves step `index`'s verb or group signature, and so its output.
    fn step_output(&mut self, index: usize, stack: &mut Vec<std::path::PathBuf>) {
        let workflow = self.workflow;
        let step = &workflow.steps[index];
        let output = match step.ty.value {
            StepType::Trigger => self.trigger_step_output(step),
            StepType::Condition | StepType::Action | StepType::Gate => {
                if step.action.is_none() && step.ty.value != StepType::Gate && step.config_valid {
                    self.diagnostics.push(Diagnostic::new(
                        Code::MISSING_FIELD,
                        step.config_span.unwrap_or(step.id.span),
                        format!(
                            "{} step `{}` needs `config.action`",
                            step.ty.value.as_str(),
                            step.id.value
                        ),
                    ).with_help("name the verb it runs, e.g. `action: donmai@2:agent.dispatch_to_queue`"));
                }
                let verb = self.verb(step);
                self.verbs[index] = verb.map(|(verb, _)| verb);
                self.verb_slots[index] = verb.map(|(_, slot)| slot);
                let verb = self.verbs[index];
                if step.ty.value == StepType::Gate {
                    self.gate_output(step, verb)
                } else {
                    verb.map(|verb| verb.output_type())
                }
            }
            StepType::Group | StepType::Loop => {
                let signature = groups::signature_of(self, step, stack);
                self.signatures[index] = signature.clone();
                signature.map(|s| Type::Object(s.outputs))
            }
        };
        self.outputs[index] = output;
    }

    /// What a gate step outputs: the data of the signal that resumed it,
    /// which is the payload of the event it waits for
    /// (`gateConfig.signalEventType`, else its verb's subscription, merged
    /// as for several triggers) together with the fields the verb declares
    /// in its `outputSchema`, which its plugin adds when it resumes the gate
    /// (a field in both is typed as the verb declares it). A gate that waits
    /// for no known event (a timer) outputs what its verb declares.
    fn gate_output(&mut self, step: &Step, verb: Option<&'a Verb>) -> Option<Type> {
        let declared = verb.map(|verb| verb.output_type());
        let registry: &'a Registry = self.context.registry;
        let events: Vec<&str> = match step
            .gate
            .as_ref()
            .and_then(|g| g.signal_event_type.as_ref())
        {
            Some(event) => vec![event.value.as_str()],
            None => verb.map_or_else(Vec::new, |v| {
                v.event_subscription.iter().map(String::as_str).collect()
            }),
        };
        let payloads: Vec<Type> = events
            .iter()
            .filter_map(|name| registry.event(name).map(|(_, event)| event.payload_type()))
            .collect();
        if payloads.is_empty() || payloads.len() != events.len() {
            return declared;
        }
        let Type::Object(payload) = values::merge_payloads(&payloads) else {
            return declared;
        };
        let mut fields = payload.fields.clone();
        let mut closed = payload.closed;
        match &declared {
            Some(Type::Object(own)) => {
                fields.extend(own.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                closed &= own.closed;
            }
            Some(_) => return declared,
            None => {}
        }
        Some(Type::Object(Arc::new(ObjectType { fields, closed })))
    }

    fn trigger_step_output(&mut self, step: &Step) -> Option<Type> {
        match &step.trigger_id {
            Some(id) => match self.trigger_payloads.get(&id.value) {
                Some(payload) => Some(payload.clone()),
                None => {
                    let ids: Vec<&str> = self
                        .workflow
                        .triggers
                        .iter()
                        .map(|t| t.id.value.as_str())
                        .collect();
                    let mut diagnostic = Diagnostic::new(
                        Code::UNKNOWN_TRIGGER,
                        id.span,
                        format!("there is no trigger `{}`", id.value),
                    );
                    if let Some(s) = did_you_mean(&id.value, ids.iter().copied()) {
                        diagnostic = diagnostic.with_suggestion(s, id.span);
                    } else if ids.is_empty() {
                        diagnostic = diagnostic.with_help("declare it under `triggers:`");
                    }
                    self.diagnostics.push(diagnostic);
                    None
                }
            },
            None => match &self.interface_inputs {
                Some(inputs) => Some(Type::Object(inputs.clone())),
                None => {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::MISSING_FIELD,
                            step.config_span.unwrap_or(step.id.span),
                            format!("trigger step `{}` needs `config.triggerId`", step.id.value),
                        )
                        .with_help("only the entry step of a group file, which has an `interface`, goes without one"),
                    );
                    None
                }
            },
        }
    }

    fn step(&mut self, index: usize) {
        let workflow = self.workflow;
        let step = &workflow.steps[index];
        if self.topology().step(&step.id.value) != Some(index) {
            return; // a duplicate id: its first definition is the one checked
        }
        self.policy(step);
        match step.ty.value {
            StepType::Trigger => {
                if !step.branches.is_empty() {
                    self.no_handles(step, "a trigger step continues with `next`");
                }
            }
            StepType::Condition | StepType::Action | StepType::Gate => {
                let verb = self.verbs[index];
                if let Some(verb) = verb {
                    let input = verb.input_type();
                    self.inputs(index, &input, "verb");
                } else {
                    self.inputs_untyped(index);
                }
                match step.ty.value {
                    StepType::Condition => self.condition_routing(step, verb),
                    StepType::Gate => self.gate(index, verb),
                    _ => {
                        if !step.branches.is_empty() {
                            self.no_handles(step, "an action continues with `next`");
                        }
                    }
                }
            }
            StepType::Group | StepType::Loop => {
                groups::check_step(self, index);
            }
        }
    }

    /// `retry` and `timeoutMs` apply to actions and gates only, with sane bounds.
    fn policy(&mut self, step: &Step) {
        let applies = matches!(step.ty.value, StepType::Action | StepType::Gate);
        if let Some(retry) = &step.retry {
            if !applies {
                self.diagnostics.push(Diagnostic::new(
                    Code::INVALID_VALUE,
                    retry.span,
                    format!(
                        "a {} step cannot retry: `retry` applies to actions and gates",
                        step.ty.value.as_str()
                    ),
                ));
            }
            if let Some(max) = &retry.max_attempts
                && !(1..=100).contains(&max.value)
            {
                self.diagnostics.push(Diagnostic::new(
                    Code::INVALID_VALUE,
                    max.span,
                    format!("maxAttempts must be between 1 and 100, not {}", max.value),
                ));
            }
            if let Some(initial) = &retry.initial_ms
                && initial.value < 0
            {
                self.diagnostics.push(Diagnostic::new(
                    Code::INVALID_VALUE,
                    initial.span,
                    "initialMs cannot be negative",
                ));
            }
            if let Some(factor) = &retry.factor
                && !(factor.value >= 1.0 && factor.value <= 10.0)
            {
                self.diagnostics.push(Diagnostic::new(
                    Code::INVALID_VALUE,
                    factor.span,
                    format!(
                        "backoff factor must be between 1 and 10, not {}",
                        factor.value
                    ),
                ));
            }
            if let (Some(initial), Some(max)) = (&retry.initial_ms, &retry.max_ms)
                && max.value < initial.value
            {
                self.diagnostics.push(
                    Diagnostic::new(Code::INVALID_VALUE, max.span, "maxMs is below initialMs")
                        .with_label(initial.span, "initialMs"),
                );
            }
        }
        if let Some(timeout) = &step.timeout_ms {
            if !applies {
                self.diagnostics.push(Diagnostic::new(
                    Code::INVALID_VALUE,
                    timeout.span,
                    format!(
                        "a {} step cannot time out: `timeoutMs` applies to actions and gates",
                        step.ty.value.as_str()
                    ),
                ));
            } else if timeout.value <= 0 {
                self.diagnostics.push(Diagnostic::new(
                    Code::INVALID_VALUE,
                    timeout.span,
                    "timeoutMs must be positive",
                ));
            }
        }
    }

    fn no_handles(&mut self, step: &Step, help: &str) {
        let (handle, _) = &step.branches[0];
        self.diagnostics.push(
            Diagnostic::new(
                Code::UNKNOWN_HANDLE,
                handle.span,
                format!("step `{}` has no handles to branch on", step.id.value),
            )
            .with_help(help.to_string()),
        );
    }

    /// Checks a step's inputs against a closed object type of ports.
    fn inputs(&mut self, index: usize, ports: &Type, owner: &str) {
        let step = &self.workflow.steps[index];
        let Type::Object(ports) = ports else {
            self.inputs_untyped(index);
            return;
        };
        // A handful of inputs per step: a vector beats a hash set.
        let mut given: Vec<&str> = Vec::with_capacity(step.inputs.len());
        for input in &step.inputs {
            given.push(&input.name.value);
            match ports.fields.get(&input.name.value) {
                Some(field) => {
                    let value_type = self.value_type(index, &input.value);
                    self.assign(index, &input.value, &value_type, field, &input.name);
                }
                None => {
                    self.value_type(index, &input.value);
                    let mut diagnostic = Diagnostic::new(
                        Code::UNKNOWN_INPUT,
                        input.name.span,
                        format!(
                            "the {owner} of step `{}` has no input `{}`",
                            step.id.value, input.name.value
                        ),
                    );
                    let names = ports
                        .fields
                        .keys()
                        .map(String::as_str)
                        .filter(|n| !given.contains(n));
                    if let Some(s) = did_you_mean(&input.name.value, names) {
                        diagnostic = diagnostic
                            .with_help(format!("did you mean `{s}`?"))
                            .with_replacement(
                                format!("rename to `{s}`"),
                                input.name.span,
                                scalar_source(s),
                            );
                    } else {
                        diagnostic = diagnostic.with_help(if ports.fields.is_empty() {
                            "it takes no inputs".to_string()
                        } else {
                            format!("its inputs are {}", backticked(ports.fields.keys()))
                        });
                    }
                    self.diagnostics.push(diagnostic);
                }
            }
        }
        let missing: Vec<&String> = ports
            .fields
            .iter()
            .filter(|(name, field)| field.required && !given.contains(&name.as_str()))
            .map(|(name, _)| name)
            .collect();
        for name in missing {
            let ty = &ports.fields[name].ty;
            self.diagnostics.push(
                Diagnostic::new(
                    Code::MISSING_INPUT,
                    step.config_span.unwrap_or(step.id.span),
                    format!(
                        "step `{}` is missing required input `{name}` ({ty})",
                        step.id.value
                    ),
                )
                .with_label(step.id.span, "in this step")
                .with_suggested_edits(
                    format!("add input `{name}`"),
                    self.input_insertion(step, name, ty),
                ),
            );
        }
    }

    /// An edit adding `name: <placeholder>` to a step's `config`, in the
    /// style the mapping is written in; `None` when its shape is unusual.
    fn input_insertion(&self, step: &Step, name: &str, ty: &Type) -> Option<Edit> {
        let text = self.text;
        let config = step.config_span?;
        let entry = format!("{}: {}", scalar_source(name), placeholder(ty));
        let written = text.get(config.start..config.end)?;
        if written.starts_with('{') {
            let inner = written.strip_suffix('}')?.trim_end();
            let separator = if inner.trim_start_matches('{').trim().is_empty() {
                ""
            } else {
                ", "
            };
            return Some(Edit {
                span: Span::at(config.start + inner.len()),
                replacement: format!("{separator}{entry}"),
            });
        }
        // A block mapping: a new line at the indentation of its first key,
        // after its last entry.
        let first_key = step
            .action
            .iter()
            .map(|a| a.span.start)
            .chain(step.inputs.iter().map(|i| i.name.span.start))
            .min()?;
        let last_end = step
            .action
            .iter()
            .map(|a| a.span.end)
            .chain(step.inputs.iter().map(|i| i.value.span.end))
            .max()?;
        let line_start = text.get(..first_key)?.rfind('\n').map_or(0, |i| i + 1);
        let indent = text.get(line_start..first_key)?;
        // `action:` may be the key or its value's start; the key is what
        // sets the indentation.
        let key_start = indent.trim_start_matches(' ').len();
        let indent = &indent[..indent.len() - key_start];
        if !indent.chars().all(|c| c == ' ') || indent.is_empty() {
            return None;
        }
        let line_end = text
            .get(last_end..)?
            .find('\n')
            .map_or(text.len(), |i| last_end + i);
        Some(Edit {
            span: Span::at(line_end),
            replacement: format!("\n{indent}{entry}"),
        })
    }

    /// Expressions are checked even when the ports are unknown.
    fn inputs_untyped(&mut self, index: usize) {
        for input in &self.workflow.steps[index].inputs {
            self.value_type(index, &input.value);
        }
    }

    /// Reports a value that does not fit its port: wrong type, always null,
    /// or null on some path (W4).
    fn assign(
        &mut self,
        index: usize,
        value: &Value,
        value_type: &Type,
        port: &Field,
        name: &Ident,
    ) {
        if !port.required || port.ty.is_optional() {
            if !port_accepts(value_type.non_null(), port.ty.non_null()) && *value_type != Type::Null
            {
                self.type_mismatch(value, value_type, &port.ty.clone().optional(), name);
            }
            return;
        }
        match value_type {
            Type::Null => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::ALWAYS_NULL,
                        value.span,
                        format!("required input `{}` is always null here", name.value),
                    )
                    .with_help("a required input fed null skips its step on every run"),
                );
            }
            Type::Optional(inner) => {
                if !port_accepts(inner, &port.ty) {
                    self.type_mismatch(value, value_type, &port.ty, name);
                    return;
                }
                let step = &self.workflow.steps[index];
                let mut diagnostic = Diagnostic::new(
                    Code::MAYBE_NULL,
                    value.span,
                    format!(
                        "required input `{}` may be null, which skips step `{}`",
                        name.value, step.id.value
                    ),
                );
                match self.null_cause(index, value) {
                    Some((span, why)) => diagnostic = diagnostic.with_label(span, why),
                    None => {
                        diagnostic = diagnostic
                            .with_help("the value's type allows null: give a fallback with `??`");
                    }
                }
                if diagnostic.help.is_none() {
                    diagnostic =
                        diagnostic.with_help("give a fallback with `??`, e.g. `{{ x ?? 'none' }}`");
                }
                self.diagnostics.push(diagnostic);
            }
            other => {
                if !port_accepts(other, &port.ty) {
                    self.type_mismatch(value, value_type, &port.ty, name);
                }
            }
        }
    }

    fn type_mismatch(&mut self, value: &Value, found: &Type, expected: &Type, name: &Ident) {
        let mut diagnostic = Diagnostic::new(
            Code::TYPE_MISMATCH,
            value.span,
            format!(
                "input `{}` expects `{expected}`, found `{found}`",
                name.value
            ),
        );
        if let Type::Enum(allowed) = expected.non_null()
            && let ValueKind::Str { text, .. } = &value.kind
        {
            let names: Vec<&str> = allowed.iter().map(String::as_str).collect();
            if let Some(s) = did_you_mean(text, names.iter().copied()) {
                diagnostic = diagnostic.with_help(format!("did you mean `{s}`?"));
            } else {
                diagnostic =
                    diagnostic.with_help(format!("expected one of {}", backticked(&names)));
            }
        }
        self.diagnostics.push(diagnostic);
    }

    fn condition_routing(&mut self, step: &Step, verb: Option<&Verb>) {
        if let Some(first) = step.next.first() {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::INVALID_VALUE,
                    first.span,
                    format!(
                        "condition `{}` routes with `branches`, not `next`",
                        step.id.value
                    ),
                )
                .with_help("write `branches: {yes: <step>, no: <step>}` or one branch per case"),
            );
        }
        if let Some(mode) = &step.mode
            && mode.value != "switch"
        {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::INVALID_VALUE,
                    mode.span,
                    format!("`{}` is not a condition mode", mode.value),
                )
                .with_help("the only mode is `switch`; boolean conditions leave `mode` out"),
            );
        }
        let Some(verb) = verb else { return };
        match verb.route_type() {
            Some(Type::Bool) => {
                if let Some(mode) = &step.mode {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::INVALID_VALUE,
                            mode.span,
                            "this condition's verb answers yes or no, so it cannot switch",
                        )
                        .with_help("remove `mode: switch` and branch on `yes` and `no`"),
                    );
                }
                self.branch_keys(step, &["yes", "no"], &[], false);
            }
            Some(Type::Enum(values)) => {
                let all: Vec<&str> = values.iter().map(String::as_str).collect();
                let mut cases: Vec<&str> = Vec::new();
                let mut invalid: Vec<&str> = Vec::new();
                match &step.cases {
                    Some(listed) => {
                        for case in &listed.value {
                            if all.contains(&case.value.as_str()) {
                                cases.push(&case.value);
                            } else {
                                let mut diagnostic = Diagnostic::new(
                                    Code::SWITCH_CASE_NOT_IN_ENUM,
                                    case.span,
                                    format!("`{}` is not a value of `{}`", case.value, verb.id),
                                )
                                .with_help(format!("its values are {}", backticked(&all)));
                                if let Some(s) = did_you_mean(&case.value, all.iter().copied()) {
                                    diagnostic = diagnostic.with_replacement(
                                        format!("use `{s}`"),
                                        case.span,
                                        s,
                                    );
                                }
                                self.diagnostics.push(diagnostic);
                                invalid.push(&case.value);
                            }
                        }
                    }
                    None => cases = all.clone(),
                }
                // Branches on a case already reported are not reported again,
                // and never suggested: its own fix may rename it.
                self.branch_keys(step, &cases, &invalid, true);
                let mut covered = false;
                match &step.default_handle {
                    Some(Spanned {
                        value: DefaultHandle::Case(case),
                        span,
                    }) => {
                        if cases.contains(&case.as_str()) {
                            covered = true;
                        } else {
                            self.diagnostics.push(
                                Diagnostic::new(
                                    Code::BAD_DEFAULT_HANDLE,
                                    *span,
                                    format!("defaultHandle `{case}` is not one of the cases"),
                                )
                                .with_help(format!("the cases are {}", backticked(&cases))),
                            );
                        }
                    }
                    Some(Spanned {
                        value: DefaultHandle::Branch,
                        span,
                    }) => {
                        if step.branches.iter().any(|(h, _)| h.value == "default") {
                            covered = true;
                        } else {
                            self.diagnostics.push(Diagnostic::new(
                                Code::BAD_DEFAULT_HANDLE,
                                *span,
                                "`defaultHandle: true` needs a `branches.default`",
                            ));
                        }
                    }
                    None => {}
                }
                if !covered {
                    let uncovered: Vec<&str> = all
                        .iter()
                        .copied()
                        .filter(|v| !step.branches.iter().any(|(h, _)| h.value == *v))
                        .collect();
                    if !uncovered.is_empty() {
                        self.diagnostics.push(
                            Diagnostic::new(
                                Code::HANDLE_NOT_COVERED,
                                step.id.span,
                                format!(
                                    "switch `{}` has no branch for {} and no `defaultHandle`",
                                    step.id.value,
                                    backticked(&uncovered)
                                ),
                            )
                            .with_help("add the branches, or a `defaultHandle` naming a case"),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Every `branches` key must be a handle (or `default` where allowed).
    /// Keys in `reported` (invalid cases, already reported) are let pass.
    fn branch_keys(
        &mut self,
        step: &Step,
        handles: &[&str],
        reported: &[&str],
        allow_default: bool,
    ) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for (handle, _) in &step.branches {
            if let Some(first) = seen.insert(&handle.value, handle.span) {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::DUPLICATE_ID,
                        handle.span,
                        format!("handle `{}` is branched twice", handle.value),
                    )
                    .with_label(first, "first here"),
                );
                continue;
            }
            if handles.contains(&handle.value.as_str())
                || reported.contains(&handle.value.as_str())
                || (allow_default && handle.value == "default")
            {
                continue;
            }
            let mut diagnostic = Diagnostic::new(
                Code::UNKNOWN_HANDLE,
                handle.span,
                format!(
                    "`{}` is not a handle of step `{}`",
                    handle.value, step.id.value
                ),
            );
            match did_you_mean(&handle.value, handles.iter().copied()) {
                Some(s) => {
                    diagnostic = diagnostic.with_suggestion(s, handle.span);
                }
                None => {
                    let default = allow_default.then_some("default");
                    let list = backticked(handles.iter().copied().chain(default));
                    diagnostic = diagnostic.with_help(format!("its handles are {list}"));
                }
            }
            self.diagnostics.push(diagnostic);
        }
    }

    fn gate(&mut self, index: usize, verb: Option<&Verb>) {
        let workflow = self.workflow;
        let step = &workflow.steps[index];
        if let Some(verb) = verb {
            let handles = verb.handles();
            if handles.is_empty() {
                if !step.branches.is_empty() {
                    self.no_handles(step, "this gate continues with `next`");
                }
            } else {
                let names: Vec<&str> = handles.iter().map(String::as_str).collect();
                self.branch_keys(step, &names, &[], true);
                let has_default = step.branches.iter().any(|(h, _)| h.value == "default");
                let uncovered: Vec<&str> = names
                    .iter()
                    .copied()
                    .filter(|h| !step.branches.iter().any(|(b, _)| b.value == *h))
                    .collect();
                if !has_default && !uncovered.is_empty() {
                    self.diagnostics.push(
                        Diagnostic::new(
                            Code::HANDLE_NOT_COVERED,
                            step.id.span,
                            format!(
                                "gate `{}` has no branch for {}",
                                step.id.value,
                                backticked(&uncovered)
                            ),
                        )
                        .with_help("cover every handle in `branches`, or add `default: <step>`"),
                    );
                }
                if let Some(first) = step.next.first() {
                    self.diagnostics.push(Diagnostic::new(
                        Code::INVALID_VALUE,
                        first.span,
                        format!(
                            "gate `{}` routes by its handles: use `branches`, not `next`",
                            step.id.value
                        ),
                    ));
                }
            }
        } else if !step.branches.is_empty() && step.action.is_none() {
            self.no_handles(step, "a gate without a verb continues with `next`");
        }
        let Some(gate) = &step.gate else {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::MISSING_FIELD,
                    step.id.span,
                    format!("gate `{}` needs `gateConfig`", step.id.value),
                )
                .with_help("e.g. `gateConfig: {gateType: signal, signalEventType: <event>, onTimeout: error, timeoutMs: 3600000}`"),
            );
            return;
        };
        let mut payload = None;
        match gate.gate_type.as_ref().map(|t| t.value) {
            None => self.diagnostics.push(Diagnostic::new(
                Code::MISSING_FIELD,
                gate.span,
                "gateConfig is missing `gateType` (`signal`, `timer` or `webhook`)",
            )),
            Some(GateType::Signal | GateType::Webhook) => match &gate.signal_event_type {
                Some(event) => payload = Some(self.event_payload(event)),
                None => self.diagnostics.push(Diagnostic::new(
                    Code::MISSING_FIELD,
                    gate.span,
                    "a signal gate needs `signalEventType`",
                )),
            },
            Some(GateType::Timer) => {
                if gate.timeout_ms.is_none() {
                    self.diagnostics.push(Diagnostic::new(
                        Code::MISSING_FIELD,
                        gate.span,
                        "a timer gate needs `timeoutMs`",
                    ));
                }
            }
        }
        if let Some(timeout) = &gate.timeout_ms
            && timeout.value <= 0
        {
            self.diagnostics.push(Diagnostic::new(
                Code::INVALID_VALUE,
                timeout.span,
                "timeoutMs must be positive",
            ));
        }
        if let Some(predicate) = &gate.match_ {
            self.predicate(index, predicate, payload.as_ref(), true);
        }
    }

    fn signature(&mut self) -> Option<Signature> {
        let interface = self.workflow.interface.as_ref()?;
        let inputs = self.interface_inputs.clone()?;
        let mut fields = BTreeMap::new();
        // Outputs are read at the end of the run.
        for (name, value) in &interface.outputs {
            let ty = self.output_value_type(value);
            let required = !ty.is_optional();
            fields.insert(
                name.value.clone(),
                Field {
                    ty: ty.non_null().clone(),
                    required,
                },
            );
        }
        Some(Signature {
            inputs,
            outputs: Arc::new(ObjectType {
                fields,
                closed: true,
            }),
            version: self
                .workflow
                .metadata
                .version
                .as_ref()
                .map(|v| v.value.clone()),
        })
    }

    fn lints(&mut self) {
        let workflow = self.workflow;
        let roots = workflow
            .steps
            .iter()
            .filter(|s| s.ty.value != StepType::Trigger)
            .count();
        if roots > 7 && workflow.interface.is_none() {
            self.diagnostics.push(
                Diagnostic::new(
                    Code::TOO_MANY_ROOTS,
                    workflow.steps_span,
                    format!("{roots} steps at the root: a reader sees about 7 at once"),
                )
                .with_help("move related steps into a group (`type: group`)"),
            );
        }
        let topology = self.topology.take();
        if let Some(topology) = &topology {
            self.flat_chains(topology);
        }
        self.topology = topology;
        for (index, step) in workflow.steps.iter().enumerate() {
            if step.ty.value != StepType::Action || self.used_outputs.contains(&index) {
                continue;
            }
            let Some(verb) = self.verbs[index] else {
                continue;
            };
            let has_outputs = matches!(verb.output_type(), Type::Object(o) if !o.fields.is_empty());
            if verb.kind == VerbKind::Action
                && verb.side_effect_class == SideEffectClass::ReadOnly
                && has_outputs
            {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::UNUSED_OUTPUT,
                        step.id.span,
                        format!(
                            "step `{}` only reads, and nothing uses its output",
                            step.id.value
                        ),
                    )
                    .with_help(format!(
                        "use it as `{{{{ nodes.{}.output.<field> }}}}`, or remove the step",
                        step.id.value
                    )),
                );
            }
        }
    }

    /// Four or more actions in a row, each the only successor of the last,
    /// read as one flat list of acknowledge/dispatch calls.
    fn flat_chains(&mut self, topology: &Topology) {
        let steps = &self.workflow.steps;
        let is_link = |i: usize| steps[i].ty.value == StepType::Action;
        let single_in = |i: usize| topology.predecessors[i].len() == 1;
        let single_out = |i: usize| topology.successors[i].len() == 1;
        let mut visited = BitSet::with_len(steps.len());
        for start in 0..steps.len() {
            if visited.contains(start) || !is_link(start) {
                continue;
            }
            // Only start at the head of a chain.
            if single_in(start)
                && is_link(topology.predecessors[start][0])
                && single_out(topology.predecessors[start][0])
            {
                continue;
            }
            let mut chain = vec![start];
            visited.insert(start);
            let mut current = start;
            while single_out(current) {
                let next = topology.successors[current][0];
                if !is_link(next) || !single_in(next) || visited.contains(next) {
                    break;
                }
                visited.insert(next);
                chain.push(next);
                current = next;
            }
            if chain.len() >= 4 {
                let last = *chain.last().unwrap_or(&start);
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::FLAT_DISPATCH_CHAIN,
                        steps[start].id.span,
                        format!(
                            "{} actions in a flat chain, from `{}` to `{}`",
                            chain.len(),
                            steps[start].id.value,
                            steps[last].id.value
                        ),
                    )
                    .with_label(steps[last].id.span, "the chain ends here")
                    .with_help("wrap the chain in a group with a typed interface"),
                );
            }
        }
    }
}

fn with_article(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}

/// Port assignment widens `int` to `double` (a JSON Schema `number`).
fn port_accepts(value: &Type, port: &Type) -> bool {
    value.is_assignable_to(port) || (*value == Type::Int && *port.non_null() == Type::Double)
}

/// `name@major`.
fn parse_pin(text: &str) -> Option<(&str, u32)> {
    let (name, major) = text.split_once('@')?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some((name, major.parse().ok()?))
}

fn object<const N: usize>(fields: [(&str, Type, bool); N], closed: bool) -> Type {
    Type::Object(Arc::new(ObjectType {
        fields: fields
            .into_iter()
            .map(|(name, ty, required)| (name.to_string(), Field { ty, required }))
            .collect(),
        closed,
    }))
}
