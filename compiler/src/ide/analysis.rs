//! One file analysed for the editor: the checker run once, keeping its
//! diagnostics (exactly those of `donmaic check`) and the semantic facts
//! completion and hover answer from.
//!
//! Everything here is owned: an [`Analysis`] outlives the text it was made
//! from, so an editor can keep answering from the last one while the user
//! types the next character.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use donmai_grammar::ast::{
    ApiVersion, Predicate, PredicateKind, Step, StepType, Value, ValueKind, Workflow,
};
use donmai_grammar::expr::Expr;
use donmai_grammar::incremental::{MapOffsets, ReplacedStep};
use donmai_grammar::template::Segment;
use donmai_grammar::{Diagnostic, SourceFile, Span};
use donmai_stdlib::manifest::{Plugin, Verb};
use donmai_stdlib::registry::{Registry, VerbRef};
use donmai_stdlib::types::{Field, ObjectType, Type};

use crate::check::{
    Checked, Facts, GroupCache, Reuse, Signature, Site, Upstream, check_parsed_reusing,
    check_parsed_with,
};
use crate::project::Project;
use crate::typeck::TypeEnv;
use donmai_grammar::lower::{ParsedWorkflow, parse_workflow};

/// A checked file with what the checker learnt about it.
pub struct Analysis {
    file: SourceFile,
    project: Project,
    /// A registry is a list of shared plugin handles: cloning it is cheap,
    /// and keeping it lets verbs be looked up without a borrow.
    registry: Registry,
    diagnostics: Vec<Diagnostic>,
    workflow: Option<Workflow>,
    facts: Option<Facts>,
    /// Start of the line of each step's list item, built on first use.
    step_lines: OnceLock<Vec<usize>>,
    /// Whether the checker reused a previous analysis's step results.
    reused: bool,
}

/// A step's verb as the checker resolved it.
#[derive(Clone, Copy, Debug)]
pub struct ResolvedVerb<'a> {
    pub plugin: &'a Plugin,
    pub verb: &'a Verb,
}

impl ResolvedVerb<'_> {
    /// `plugin@major:verb`, as `config.action` names it.
    pub fn pin(&self) -> String {
        format!(
            "{}@{}:{}",
            self.plugin.name,
            self.plugin.major(),
            self.verb.id
        )
    }
}

/// An expression of the workflow with the site it is checked at.
#[derive(Clone, Copy, Debug)]
pub struct ExprAt<'a> {
    pub expr: &'a Expr,
    /// The whole `{{ … }}` (or `${ … }`), delimiters included.
    pub segment: Span,
    pub site: Site,
}

impl Analysis {
    /// Checks `file` once, collecting the facts as it goes.
    pub fn new(
        file: &SourceFile,
        project: &Project,
        registry: &Registry,
        cache: &GroupCache,
    ) -> Analysis {
        Analysis::from_parsed(file, parse_workflow(file.text()), project, registry, cache)
    }

    /// [`Analysis::new`] on a parse of `file` the caller already has.
    pub fn from_parsed(
        file: &SourceFile,
        parsed: ParsedWorkflow,
        project: &Project,
        registry: &Registry,
        cache: &GroupCache,
    ) -> Analysis {
        let checked = check_parsed_with(file, parsed, project, registry, cache, true);
        Analysis::of_checked(file, project, registry, checked)
    }

    fn of_checked(
        file: &SourceFile,
        project: &Project,
        registry: &Registry,
        checked: Checked,
    ) -> Analysis {
        Analysis {
            file: file.clone(),
            project: project.clone(),
            registry: registry.clone(),
            diagnostics: checked.diagnostics,
            workflow: checked.workflow,
            facts: checked.facts,
            step_lines: OnceLock::new(),
            reused: checked.reused,
        }
    }

    /// The analysis of `file`, whose text differs from this analysis's by
    /// an edit that replaced one step and only moved the rest (`replaced`
    /// and `parsed`, from the grammar's incremental re-parse). Equal to
    /// [`Analysis::from_parsed`], but the checker reuses what it found for
    /// the other steps when that is sound, so an edit inside one step costs
    /// about that step. `cache` must hold the group files this analysis
    /// was made with.
    pub fn edited(
        &self,
        file: &SourceFile,
        parsed: ParsedWorkflow,
        replaced: &ReplacedStep,
        project: &Project,
        registry: &Registry,
        cache: &GroupCache,
    ) -> Analysis {
        let reuse = self
            .facts
            .as_ref()
            .filter(|_| self.project.is_same(project))
            .map(|facts| Reuse {
                facts,
                registry: &self.registry,
                edit: &replaced.edit,
                step: replaced.index,
                previous: &replaced.previous,
                ends_moved: replaced.ends_moved,
            });
        let checked =
            check_parsed_reusing(file, parsed, project, registry, cache, true, reuse.as_ref());
        Analysis::of_checked(file, project, registry, checked)
    }

    /// Whether [`Analysis::edited`] re-checked only the edited step (else
    /// it checked the whole file), for tests and measurements.
    pub fn reused_steps(&self) -> bool {
        self.reused
    }

    /// This analysis carried over to a text that differs from the analysed
    /// one by an edit that moved only positions (a comment or white space;
    /// `grammar::incremental::Reparsed::only_positions_moved`): `file` is
    /// the new text and `workflow` its parse, and the checker's diagnostics
    /// and facts are these with every offset moved by `moved`. The checker
    /// would find exactly that, so it does not run.
    pub fn moved(
        &self,
        file: &SourceFile,
        workflow: Option<Workflow>,
        moved: &impl Fn(usize) -> usize,
    ) -> Analysis {
        let mut diagnostics = self.diagnostics.clone();
        diagnostics.map_offsets(moved);
        Analysis {
            file: file.clone(),
            project: self.project.clone(),
            registry: self.registry.clone(),
            diagnostics,
            workflow,
            facts: self.facts.as_ref().map(|facts| facts.moved(moved)),
            step_lines: OnceLock::new(),
            reused: false,
        }
    }

    /// The start of the line each step's `- ` item is on, ascending: where
    /// completion may stop looking for the step the cursor is in.
    pub fn step_item_lines(&self) -> &[usize] {
        self.step_lines.get_or_init(|| {
            let text = self.text();
            let mut lines: Vec<usize> = self
                .steps()
                .iter()
                .filter_map(|step| {
                    let start = text[..step.span.start.min(text.len())]
                        .rfind('\n')
                        .map_or(0, |i| i + 1);
                    // Only a step written as `- ` at the start of its line.
                    let lead = text.get(start..step.span.start)?;
                    let lead = lead.trim_start_matches(' ');
                    (lead.starts_with('-') && lead[1..].trim().is_empty()).then_some(start)
                })
                .collect();
            lines.sort_unstable();
            lines.dedup();
            lines
        })
    }

    pub fn file(&self) -> &SourceFile {
        &self.file
    }

    pub fn text(&self) -> &str {
        self.file.text()
    }

    /// What `check::check_source` reports for the same file, in its order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// `None` when the text is not a workflow or its YAML does not parse.
    pub fn workflow(&self) -> Option<&Workflow> {
        self.workflow.as_ref()
    }

    /// `None` without a workflow, or when the workflow is too large to
    /// analyse (`check::MAX_STEPS`).
    pub fn facts(&self) -> Option<&Facts> {
        self.facts.as_ref()
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn is_v2(&self) -> bool {
        self.workflow
            .as_ref()
            .is_some_and(|w| w.api_version.value == ApiVersion::V2)
    }

    pub fn steps(&self) -> &[Step] {
        self.workflow.as_ref().map_or(&[], |w| w.steps.as_slice())
    }

    pub fn step(&self, index: usize) -> Option<&Step> {
        self.steps().get(index)
    }

    /// The step an id names: its first definition.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        match &self.facts {
            Some(facts) => facts.step_index(id),
            None => self.steps().iter().position(|s| s.id.value == id),
        }
    }

    /// The step whose YAML mapping contains `offset`.
    pub fn step_at(&self, offset: usize) -> Option<usize> {
        let steps = self.steps();
        // Steps are in document order and do not overlap.
        let after = steps.partition_point(|s| s.span.start <= offset);
        let index = after.checked_sub(1)?;
        (offset <= steps[index].span.end).then_some(index)
    }

    /// The verb a step runs, when the checker resolved it.
    pub fn verb(&self, index: usize) -> Option<ResolvedVerb<'_>> {
        if !self.facts.as_ref()?.verb_resolved(index) {
            return None;
        }
        let action = self.step(index)?.action.as_ref()?;
        let verb_ref = VerbRef::parse(&action.value).ok()?;
        let (plugin, verb) = self.registry.resolve(&verb_ref).ok()?;
        Some(ResolvedVerb { plugin, verb })
    }

    /// The input ports a step's `config` is checked against.
    pub fn ports(&self, index: usize) -> Option<&ObjectType> {
        match self.facts.as_ref()?.ports(index)? {
            Type::Object(object) => Some(object),
            _ => None,
        }
    }

    /// The output type of a step (`nodes.<id>.output` where it always ran).
    pub fn output(&self, index: usize) -> Option<&Type> {
        self.facts.as_ref()?.output(index)
    }

    /// The interface of a group or loop step's file.
    pub fn signature(&self, index: usize) -> Option<&Signature> {
        self.facts.as_ref()?.signature(index)
    }

    /// The type `trigger` has at a site.
    pub fn trigger_type(&self, site: Site) -> Option<&Type> {
        self.facts.as_ref()?.trigger_type(site)
    }

    /// The steps an expression at `site` may read, with their outputs as
    /// seen from there. A duplicate id's later definitions are left out: an
    /// id names its first definition.
    pub fn upstream(&self, site: Site) -> Vec<Upstream> {
        let Some(facts) = &self.facts else {
            return Vec::new();
        };
        let steps = self.steps();
        facts
            .upstream(site)
            .into_iter()
            .filter(|u| facts.step_index(&steps[u.index].id.value) == Some(u.index))
            .collect()
    }

    /// The roots an expression at `site` sees, typed as the checker types
    /// them: `nodes` (workflow/v2) with every upstream step, and `trigger`.
    pub fn expr_env(&self, site: Site) -> ExprEnv {
        let upstream = self.upstream(site);
        self.env_of(site, upstream)
    }

    /// [`Analysis::expr_env`] with `nodes` holding only the steps named in
    /// `ids` that the site may read, as the checker restricts it to the
    /// ids an expression names: cheap however many steps are upstream.
    pub fn expr_env_naming(&self, site: Site, ids: &[&str]) -> ExprEnv {
        let upstream = match &self.facts {
            Some(facts) => ids
                .iter()
                .filter_map(|id| facts.upstream_step(site, facts.step_index(id)?))
                .collect(),
            None => Vec::new(),
        };
        self.env_of(site, upstream)
    }

    fn env_of(&self, site: Site, upstream: Vec<Upstream>) -> ExprEnv {
        let nodes = self.is_v2().then(|| {
            let steps = self.steps();
            let fields = upstream
                .into_iter()
                .map(|u| {
                    let output = self.output(u.index).cloned().unwrap_or(Type::Dyn);
                    let node = ObjectType {
                        fields: BTreeMap::from([(
                            "output".to_string(),
                            Field {
                                ty: output,
                                required: true,
                            },
                        )]),
                        closed: true,
                    };
                    (
                        steps[u.index].id.value.clone(),
                        Field {
                            ty: Type::Object(Arc::new(node)),
                            required: u.always_runs,
                        },
                    )
                })
                .collect();
            Type::Object(Arc::new(ObjectType {
                fields,
                closed: true,
            }))
        });
        ExprEnv {
            nodes,
            trigger: self.trigger_type(site).cloned().unwrap_or(Type::Dyn),
        }
    }

    /// The embedded expression whose `{{ … }}` contains `offset`.
    pub fn expr_at(&self, offset: usize) -> Option<ExprAt<'_>> {
        let workflow = self.workflow.as_ref()?;
        if let Some(index) = self.step_at(offset) {
            let step = &workflow.steps[index];
            let site = Site::Step(index);
            let in_inputs = step
                .inputs
                .iter()
                .find_map(|input| expr_in_value(&input.value, offset, site));
            let in_gate = || {
                let predicate = step.gate.as_ref()?.match_.as_ref()?;
                expr_in_predicate(predicate, offset, site)
            };
            let in_until = || expr_in_predicate(step.until.as_deref()?, offset, site);
            return in_inputs.or_else(in_gate).or_else(in_until);
        }
        let interface = workflow.interface.as_ref()?;
        interface
            .outputs
            .iter()
            .find_map(|(_, value)| expr_in_value(value, offset, Site::End))
    }

    /// The innermost subexpression under `offset` and the type the checker
    /// gave it.
    pub fn expr_type_at(&self, offset: usize) -> Option<(Span, &Type)> {
        let at = self.expr_at(offset)?;
        self.facts.as_ref()?.expr_type_at(at.expr.span, offset)
    }
}

fn expr_in_value(value: &Value, offset: usize, site: Site) -> Option<ExprAt<'_>> {
    if !(value.span.start <= offset && offset <= value.span.end) {
        return None;
    }
    match &value.kind {
        ValueKind::Str { template, .. } => {
            template.segments.iter().find_map(|segment| match segment {
                Segment::Expr { expr, span, .. } if span.start <= offset && offset <= span.end => {
                    Some(ExprAt {
                        expr,
                        segment: *span,
                        site,
                    })
                }
                _ => None,
            })
        }
        ValueKind::List(items) => items
            .iter()
            .find_map(|item| expr_in_value(item, offset, site)),
        ValueKind::Map(entries) => entries
            .iter()
            .find_map(|(_, item)| expr_in_value(item, offset, site)),
        _ => None,
    }
}

/// Recursion is bounded by the YAML nesting limit.
fn expr_in_predicate(predicate: &Predicate, offset: usize, site: Site) -> Option<ExprAt<'_>> {
    if !predicate.span.contains(offset) && predicate.span.end != offset {
        return None;
    }
    match &predicate.kind {
        PredicateKind::All(children) | PredicateKind::Any(children) => children
            .iter()
            .find_map(|child| expr_in_predicate(child, offset, site)),
        PredicateKind::Not(child) => expr_in_predicate(child, offset, site),
        PredicateKind::Leaf { value, .. } => expr_in_value(value.as_ref()?, offset, site),
    }
}

/// The roots of an expression at one site, for typing text the user is
/// writing the way the checker types what is written.
#[derive(Clone, Debug)]
pub struct ExprEnv {
    /// `None` in workflow/v1, which has no `nodes`.
    pub nodes: Option<Type>,
    pub trigger: Type,
}

impl TypeEnv for ExprEnv {
    fn root(&self, name: &str) -> Option<Type> {
        match name {
            "nodes" => self.nodes.clone(),
            "trigger" => Some(self.trigger.clone()),
            _ => None,
        }
    }

    fn roots(&self) -> Vec<String> {
        let mut roots = vec!["trigger".to_string()];
        if self.nodes.is_some() {
            roots.insert(0, "nodes".to_string());
        }
        roots
    }
}

/// Whether a step type runs a verb named by `config.action`.
pub(crate) fn runs_verb(step_type: StepType) -> bool {
    matches!(
        step_type,
        StepType::Action | StepType::Condition | StepType::Gate
    )
}
