//! Groups and loops: `config.ref` / `config.body` name another workflow file
//! with a typed interface. Each group file is checked once per run and used
//! through its signature; cycles between group files are reported at the
//! reference that closes them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use donmai_grammar::ast::{Ident, Spanned, Step, StepType};
use donmai_grammar::lower::parse_workflow;
use donmai_grammar::{Code, Diagnostic, Span};
use donmai_stdlib::types::{Field, ObjectType, Type};

use super::{Checker, Signature, check_workflow};

/// The largest loop bound: a loop re-runs its body at most this often.
pub const MAX_LOOP_ITERATIONS: i64 = 1000;

/// Group signatures by canonical path, shared by every file of one run.
#[derive(Default)]
pub struct GroupCache {
    results: Mutex<HashMap<PathBuf, GroupResult>>,
    /// Texts that stand in for files on disk, by canonical path: an
    /// editor's unsaved buffers.
    overlays: HashMap<PathBuf, String>,
}

impl GroupCache {
    /// A cache that reads these texts instead of the files at their
    /// (canonical) paths.
    pub fn with_overlays(overlays: HashMap<PathBuf, String>) -> GroupCache {
        GroupCache {
            results: Mutex::default(),
            overlays,
        }
    }

    /// Reads `text` instead of the file at `path` (canonical) from now on,
    /// or the file again with `None`. Only for a path no check has used
    /// yet (see [`GroupCache::uses`]): signatures already computed are kept.
    pub fn set_overlay(&mut self, path: PathBuf, text: Option<String>) {
        match text {
            Some(text) => self.overlays.insert(path, text),
            None => self.overlays.remove(&path),
        };
    }

    /// Whether the group file at `path` (canonical) was used by a check
    /// through this cache.
    pub fn uses(&self, path: &Path) -> bool {
        self.results
            .lock()
            .is_ok_and(|results| results.contains_key(path))
    }
}

#[derive(Clone)]
enum GroupResult {
    /// Checked: its signature, whether it reaches back into a group that
    /// was being checked (a cycle), and its errors as `line: message`.
    Checked(Option<Signature>, bool, Vec<String>),
    Unreadable(String),
}

/// Resolves a group or loop step's file and returns its signature.
pub(super) fn signature_of(
    checker: &mut Checker<'_>,
    step: &Step,
    stack: &mut Vec<PathBuf>,
) -> Option<Signature> {
    let what = if step.ty.value == StepType::Loop {
        "body"
    } else {
        "ref"
    };
    let Some(reference) = &step.group_ref else {
        checker.diagnostics.push(
            Diagnostic::new(
                Code::MISSING_FIELD,
                step.config_span.unwrap_or(step.id.span),
                format!(
                    "{} step `{}` needs `config.{what}`",
                    step.ty.value.as_str(),
                    step.id.value
                ),
            )
            .with_help(format!("e.g. `{what}: \"./groups/dev.yaml@1\"`")),
        );
        return None;
    };
    let (relative, pin) = split_pin(reference);
    let base = checker.path.parent().unwrap_or(Path::new("."));
    let target = base.join(relative);
    let canonical = match target.canonicalize() {
        Ok(path) => path,
        Err(error) => {
            checker.diagnostics.push(
                Diagnostic::new(
                    Code::GROUP_NOT_FOUND,
                    reference.span,
                    format!("cannot read group `{relative}`: {error}"),
                )
                .with_help("the path is relative to this file"),
            );
            return None;
        }
    };
    if let Some(position) = stack.iter().position(|p| *p == canonical) {
        let chain: Vec<String> = stack[position..]
            .iter()
            .chain([&canonical])
            .map(|p| display_name(p))
            .collect();
        checker.diagnostics.push(
            Diagnostic::new(
                Code::GROUP_CYCLE,
                reference.span,
                format!(
                    "group files reference each other in a cycle: {}",
                    chain.join(" → ")
                ),
            )
            .with_help("a group cannot contain itself; use `type: loop` for bounded repetition"),
        );
        checker.in_cycle = true;
        return None;
    }
    let cached = checker
        .context
        .cache
        .results
        .lock()
        .ok()
        .and_then(|results| results.get(&canonical).cloned());
    let result = match cached {
        Some(result) => result,
        None => {
            let result = check_group_file(checker, &canonical, stack);
            if let Ok(mut results) = checker.context.cache.results.lock() {
                results.insert(canonical.clone(), result.clone());
            }
            result
        }
    };
    match result {
        GroupResult::Unreadable(message) => {
            checker.diagnostics.push(Diagnostic::new(
                Code::GROUP_NOT_FOUND,
                reference.span,
                message,
            ));
            None
        }
        GroupResult::Checked(signature, cyclic, errors) => {
            if cyclic {
                checker.diagnostics.push(
                    Diagnostic::new(
                        Code::GROUP_CYCLE,
                        reference.span,
                        format!("group `{relative}` is part of a cycle of group files"),
                    )
                    .with_help(
                        "a group cannot contain itself; use `type: loop` for bounded repetition",
                    ),
                );
                checker.in_cycle = true;
                return None;
            }
            if let Some(first) = errors.first() {
                let count = errors.len();
                checker.diagnostics.push(
                    Diagnostic::new(
                        Code::BAD_INTERFACE,
                        reference.span,
                        format!(
                            "group `{relative}` has {count} error{}, so its interface cannot be trusted; the first, at line {first}",
                            if count == 1 { "" } else { "s" }
                        ),
                    )
                    .with_help(format!("check the group file itself: `donmaic check {relative}`")),
                );
            }
            let signature = signature?;
            if let Some((pin, pin_span)) = pin {
                let major = signature
                    .version
                    .as_deref()
                    .and_then(|v| v.split('.').next())
                    .and_then(|m| m.trim().parse::<u64>().ok());
                if major != Some(pin) {
                    let found = signature.version.as_deref().unwrap_or("no version");
                    checker.diagnostics.push(
                        Diagnostic::new(
                            Code::GROUP_VERSION_MISMATCH,
                            pin_span,
                            format!("`{relative}` is pinned to major {pin}, but the group is version {found}"),
                        )
                        .with_help("update the pin, or the group's `metadata.version`"),
                    );
                }
            }
            Some(signature)
        }
    }
}

fn check_group_file(checker: &Checker<'_>, path: &Path, stack: &mut Vec<PathBuf>) -> GroupResult {
    let overlay = checker.context.cache.overlays.get(path).cloned();
    let read = || match overlay {
        Some(text) => Ok(text.into_bytes()),
        None => donmai_grammar::span::read_regular_file(path),
    };
    let text = match read() {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                return GroupResult::Unreadable(format!(
                    "group `{}` is not UTF-8 text",
                    display_name(path)
                ));
            }
        },
        Err(error) => {
            return GroupResult::Unreadable(format!(
                "cannot read group `{}`: {error}",
                display_name(path)
            ));
        }
    };
    let parsed = parse_workflow(&text);
    let file = donmai_grammar::SourceFile::new(path, text.as_str());
    let line_of = |d: &Diagnostic| format!("{}: {}", file.line_col(d.span.start).line, d.message);
    let mut errors: Vec<String> = parsed
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(line_of)
        .collect();
    let Some(workflow) = parsed.workflow else {
        return GroupResult::Unreadable(format!("`{}` is not a workflow", display_name(path)));
    };
    if workflow.interface.is_none() {
        return GroupResult::Unreadable(format!(
            "`{}` is not a group: it declares no `interface`",
            display_name(path)
        ));
    }
    stack.push(path.to_path_buf());
    let (diagnostics, signature, cyclic) =
        check_workflow(checker.context, path, &text, &workflow, stack);
    stack.pop();
    // A cycle is reported at the reference; the group's own copy of it is not
    // counted again.
    errors.extend(
        diagnostics
            .iter()
            .filter(|d| d.is_error() && d.code != Code::GROUP_CYCLE)
            .map(line_of),
    );
    GroupResult::Checked(signature, cyclic, errors)
}

/// Checks a group or loop step against its signature.
pub(super) fn check_step(checker: &mut Checker<'_>, index: usize) {
    let workflow = checker.workflow;
    let step = &workflow.steps[index];
    if !step.branches.is_empty() {
        checker.no_handles(step, "a group or loop continues with `next`");
    }
    let signature = checker.signatures[index].clone();
    match &signature {
        Some(signature) => checker.inputs(index, &Type::Object(signature.inputs.clone()), "group"),
        None => checker.inputs_untyped(index),
    }
    if step.ty.value != StepType::Loop {
        return;
    }
    match &step.max_iterations {
        Some(Spanned { value, span }) if !(1..=MAX_LOOP_ITERATIONS).contains(value) => {
            checker.diagnostics.push(Diagnostic::new(
                Code::UNBOUNDED_LOOP,
                *span,
                format!("maxIterations must be between 1 and {MAX_LOOP_ITERATIONS}, not {value}"),
            ));
        }
        Some(_) => {}
        None => checker.diagnostics.push(
            Diagnostic::new(
                Code::UNBOUNDED_LOOP,
                step.config_span.unwrap_or(step.id.span),
                format!("loop `{}` needs `maxIterations`", step.id.value),
            )
            .with_help("bound the loop: `maxIterations: 3`"),
        ),
    }
    match &step.until {
        Some(until) => {
            let subject = signature.map(|s| {
                let mut fields = std::collections::BTreeMap::new();
                fields.insert(
                    "output".to_string(),
                    Field {
                        ty: Type::Object(s.outputs),
                        required: true,
                    },
                );
                Type::Object(Arc::new(ObjectType {
                    fields,
                    closed: true,
                }))
            });
            checker.predicate(index, until, subject.as_ref(), false);
        }
        None => checker.diagnostics.push(
            Diagnostic::new(
                Code::UNBOUNDED_LOOP,
                step.config_span.unwrap_or(step.id.span),
                format!("loop `{}` needs `until`", step.id.value),
            )
            .with_help("say when to stop: `until: {field: output.ci, op: eq, value: passed}`"),
        ),
    }
}

/// `./groups/dev.yaml@1` → (`./groups/dev.yaml`, Some((1, span of `1`))).
fn split_pin(reference: &Ident) -> (&str, Option<(u64, Span)>) {
    let text = reference.value.as_str();
    if let Some((path, major)) = text.rsplit_once('@')
        && !major.is_empty()
        && major.bytes().all(|b| b.is_ascii_digit())
        && let Ok(pin) = major.parse()
    {
        // The pin's span, when the reference is written verbatim (quoted).
        let span = if reference.span.len() == text.len() {
            Span::new(reference.span.end - major.len(), reference.span.end)
        } else if reference.span.len() == text.len() + 2 {
            let end = reference.span.end - 1;
            Span::new(end - major.len(), end)
        } else {
            reference.span
        };
        return (path, Some((pin, span)));
    }
    (text, None)
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
