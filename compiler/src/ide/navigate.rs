//! Go to definition, find references, highlights, rename and the document
//! outline, answered from a [`SymbolIndex`] by byte offsets.
//!
//! Rename owns the rule for new names and the rewriting of each occurrence
//! so that the YAML keeps its meaning: a name goes in verbatim where the
//! scalar's style reads it back unchanged, and the whole scalar is rewritten
//! with [`scalar_source`] where it would not (quotes, escapes, a name YAML
//! would read as a boolean or a number).

use std::fmt;
use std::path::{Path, PathBuf};

use donmai_grammar::ast::{StepType, TriggerKind, Workflow};
use donmai_grammar::diagnostic::Edit;
use donmai_grammar::expr::lexer::{is_identifier, is_reserved_word};
use donmai_grammar::yaml::{ScalarStyle, scalar_source};
use donmai_grammar::{SourceFile, Span};

use super::symbols::{NameForm, Occurrence, Site, SymbolIndex, SymbolKind, name_form};

/// A span in a file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub path: PathBuf,
    pub span: Span,
}

/// Where the symbol under the cursor is defined: a step's or trigger's
/// first `id` (the one the checker uses when an id is duplicated), or for a
/// group reference the group file — its `interface` when that file is among
/// `open` (the indexes of the other open documents), else its start.
pub fn definition(index: &SymbolIndex, offset: usize, open: &[&SymbolIndex]) -> Option<Location> {
    let occurrence = index.occurrence_at(offset)?;
    let symbol = index.symbol(occurrence.symbol);
    if symbol.kind == SymbolKind::Group {
        return Some(group_location(Path::new(&symbol.name), open));
    }
    let definition = index.definition_of(occurrence.symbol)?;
    Some(Location {
        path: index.path().to_path_buf(),
        span: definition.span,
    })
}

fn group_location(path: &Path, open: &[&SymbolIndex]) -> Location {
    let span = open
        .iter()
        .find(|other| other.path() == path)
        .and_then(|other| other.interface_span())
        .unwrap_or(Span::at(0));
    Location {
        path: path.to_path_buf(),
        span,
    }
}

/// Every occurrence of the symbol under the cursor, sorted by file and
/// position. Step and trigger ids are local to their file; a group file is
/// looked for in this file and in `open`, and its declaration is the group
/// file itself.
pub fn references(
    index: &SymbolIndex,
    offset: usize,
    include_declaration: bool,
    open: &[&SymbolIndex],
) -> Vec<Location> {
    let Some(occurrence) = index.occurrence_at(offset) else {
        return Vec::new();
    };
    let symbol = index.symbol(occurrence.symbol);
    let mut locations = Vec::new();
    let mut collect = |file: &SymbolIndex, id| {
        locations.extend(
            file.occurrences_of(id)
                .filter(|o| include_declaration || !o.site.is_definition())
                .map(|o| Location {
                    path: file.path().to_path_buf(),
                    span: o.span,
                }),
        );
    };
    collect(index, occurrence.symbol);
    if symbol.kind == SymbolKind::Group {
        for other in open.iter().filter(|other| other.path() != index.path()) {
            if let Some(id) = other.lookup(SymbolKind::Group, &symbol.name) {
                collect(other, id);
            }
        }
        if include_declaration {
            locations.push(group_location(Path::new(&symbol.name), open));
        }
    }
    locations.sort();
    locations.dedup();
    locations
}

/// An occurrence to highlight in the document, as LSP's
/// `textDocument/documentHighlight` wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Highlight {
    pub span: Span,
    /// A definition (LSP's `Write`), else a reference (`Read`).
    pub definition: bool,
}

/// The occurrences in this file of the symbol under the cursor.
pub fn highlights(index: &SymbolIndex, offset: usize) -> Vec<Highlight> {
    let Some(occurrence) = index.occurrence_at(offset) else {
        return Vec::new();
    };
    let mut highlights: Vec<Highlight> = index
        .occurrences_of(occurrence.symbol)
        .map(|o| Highlight {
            span: o.span,
            definition: o.site.is_definition(),
        })
        .collect();
    highlights.sort_by_key(|h| h.span);
    highlights
}

/// Why a rename cannot be done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenameError {
    /// No step or trigger id at the position.
    NothingToRename,
    /// A group reference names a file: renaming means moving the file.
    GroupReference,
    /// The name is referenced but defined nowhere; there is nothing to
    /// rename it consistently with.
    Undefined {
        name: String,
    },
    InvalidName {
        name: String,
        reason: String,
    },
    /// The new name is already an id, or is written as a reference to a
    /// step or trigger that does not exist, which the rename would bind.
    NameTaken {
        name: String,
        at: Span,
    },
}

impl fmt::Display for RenameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenameError::NothingToRename => write!(f, "there is no step or trigger id here"),
            RenameError::GroupReference => write!(
                f,
                "a group reference names a file: rename or move the file instead"
            ),
            RenameError::Undefined { name } => {
                write!(f, "`{name}` is not defined in this file")
            }
            RenameError::InvalidName { name, reason } => {
                write!(f, "`{name}` cannot be used: {reason}")
            }
            RenameError::NameTaken { name, .. } => {
                write!(f, "`{name}` is already used in this file")
            }
        }
    }
}

impl std::error::Error for RenameError {}

/// The span to rename at the cursor and the current name, if a rename is
/// possible there.
pub fn prepare_rename(index: &SymbolIndex, offset: usize) -> Option<(Span, String)> {
    let (occurrence, name) = renamable(index, offset).ok()?;
    Some((occurrence.span, name.to_string()))
}

fn renamable(index: &SymbolIndex, offset: usize) -> Result<(&Occurrence, &str), RenameError> {
    let occurrence = index
        .occurrence_at(offset)
        .ok_or(RenameError::NothingToRename)?;
    let symbol = index.symbol(occurrence.symbol);
    if symbol.kind == SymbolKind::Group {
        return Err(RenameError::GroupReference);
    }
    if symbol.definitions.is_empty() {
        return Err(RenameError::Undefined {
            name: symbol.name.clone(),
        });
    }
    Ok((occurrence, &symbol.name))
}

/// The edits that rename the step or trigger id under the cursor to
/// `new_name` everywhere in the file: its definitions, `next`, `branches`,
/// `branch:` timeouts, `triggerId`, and `nodes.<id>` / `steps.<id>` in
/// expressions. Sorted by position, non-overlapping; empty when the name
/// does not change.
pub fn rename(
    index: &SymbolIndex,
    offset: usize,
    new_name: &str,
) -> Result<Vec<Edit>, RenameError> {
    let (occurrence, old_name) = renamable(index, offset)?;
    let kind = index.symbol(occurrence.symbol).kind;
    validate_name(kind, new_name)?;
    if new_name == old_name {
        return Ok(Vec::new());
    }
    if let Some(taken) = index.lookup(kind, new_name)
        && let Some(first) = index.occurrences_of(taken).next()
    {
        return Err(RenameError::NameTaken {
            name: new_name.to_string(),
            at: first.span,
        });
    }
    let mut edits: Vec<Edit> = index
        .occurrences_of(occurrence.symbol)
        .filter_map(|o| rewrite(o, new_name))
        .collect();
    edits.sort_by_key(|e| e.span);
    edits.dedup();
    Ok(edits)
}

/// The rule for new ids. A step is read in expressions as `nodes.<id>`, so
/// its id must be what the expression grammar accepts after a dot: ASCII
/// letters, digits and `_`, not starting with a digit, and not one of the
/// keywords `true`, `false`, `null`, `in` (the reserved words are fine
/// there). A trigger id is only ever written as a YAML value: any text
/// without control characters or surrounding spaces.
pub fn validate_name(kind: SymbolKind, name: &str) -> Result<(), RenameError> {
    let invalid = |reason: &str| {
        Err(RenameError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    match kind {
        SymbolKind::Step => {
            if is_identifier(name) || is_reserved_word(name) {
                Ok(())
            } else {
                invalid(
                    "a step id is read as `nodes.<id>`, so it must be ASCII letters, digits and `_`, \
                     not start with a digit, and not be `true`, `false`, `null` or `in`",
                )
            }
        }
        SymbolKind::Trigger => {
            if name.trim().is_empty() {
                invalid("a trigger id cannot be empty")
            } else if name.trim() != name {
                invalid("a trigger id cannot start or end with spaces")
            } else if name.chars().any(char::is_control) {
                invalid("a trigger id cannot hold control characters or line breaks")
            } else {
                Ok(())
            }
        }
        SymbolKind::Group => Err(RenameError::GroupReference),
    }
}

/// The edit that makes one occurrence read `new_name`.
fn rewrite(occurrence: &Occurrence, new_name: &str) -> Option<Edit> {
    let timeout = occurrence.site == Site::TimeoutBranch;
    // The whole scalar's new value, when the scalar must be rewritten.
    let whole = || Edit {
        span: occurrence.scalar,
        replacement: if timeout {
            scalar_source(&format!("branch:{new_name}"))
        } else {
            scalar_source(new_name)
        },
    };
    let inline = || Edit {
        span: occurrence.span,
        replacement: new_name.to_string(),
    };
    match occurrence.form {
        // The expression grammar only admits names that no scalar style
        // needs to escape (checked by `validate_name`).
        NameForm::InExpression => Some(inline()),
        NameForm::Alias {
            follows_anchor: true,
        } => None,
        NameForm::Alias { .. } | NameForm::Whole(_) => Some(whole()),
        NameForm::Exact(style) => {
            let fits = if timeout && style == ScalarStyle::Plain {
                let value = format!("branch:{new_name}");
                scalar_source(&value) == value
            } else {
                fits_inline(style, new_name)
            };
            Some(if fits { inline() } else { whole() })
        }
    }
}

/// Whether `name` can be written as it is inside a scalar of `style` and
/// read back as itself.
fn fits_inline(style: ScalarStyle, name: &str) -> bool {
    // What a quoted scalar can only hold escaped (or folds away): the
    // characters `scalar_source` escapes.
    let needs_escape = |c: char| {
        !matches!(c, ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
            || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
    };
    match style {
        ScalarStyle::Plain => scalar_source(name) == name,
        ScalarStyle::SingleQuoted => !name.chars().any(|c| c == '\'' || needs_escape(c)),
        ScalarStyle::DoubleQuoted => !name
            .chars()
            .any(|c| c == '"' || c == '\\' || needs_escape(c)),
        ScalarStyle::Literal | ScalarStyle::Folded => false,
    }
}

/// Applies sorted, non-overlapping edits to `text`.
pub fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for edit in edits {
        out.push_str(&text[at..edit.span.start]);
        out.push_str(&edit.replacement);
        at = edit.span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// What an outline entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutlineKind {
    /// The workflow itself, named by `metadata.name`.
    Workflow,
    /// An entry of `triggers:`.
    Trigger,
    Interface,
    InterfaceInput,
    InterfaceOutput,
    Step(StepType),
    /// A step lowering left out for an error (no or an unknown `type`),
    /// shown by its id: it is often a step being typed.
    IncompleteStep,
    /// A `branches` entry of a step: handle → target.
    Branch,
}

impl OutlineKind {
    /// LSP's `SymbolKind` number for the entry.
    pub fn lsp_symbol_kind(self) -> u32 {
        const MODULE: u32 = 2;
        const NAMESPACE: u32 = 3;
        const PROPERTY: u32 = 7;
        const FIELD: u32 = 8;
        const ENUM: u32 = 10;
        const INTERFACE: u32 = 11;
        const FUNCTION: u32 = 12;
        const ARRAY: u32 = 18;
        const OBJECT: u32 = 19;
        const KEY: u32 = 20;
        const EVENT: u32 = 24;
        match self {
            OutlineKind::Workflow => NAMESPACE,
            OutlineKind::Trigger => EVENT,
            OutlineKind::Interface => INTERFACE,
            OutlineKind::InterfaceInput => FIELD,
            OutlineKind::InterfaceOutput => PROPERTY,
            OutlineKind::Step(StepType::Trigger) => EVENT,
            OutlineKind::Step(StepType::Condition) => ENUM,
            OutlineKind::Step(StepType::Action) => FUNCTION,
            OutlineKind::Step(StepType::Gate) => INTERFACE,
            OutlineKind::Step(StepType::Group) => MODULE,
            OutlineKind::Step(StepType::Loop) => ARRAY,
            OutlineKind::IncompleteStep => OBJECT,
            OutlineKind::Branch => KEY,
        }
    }
}

/// One entry of the outline. `selection` (the name) lies inside `range`
/// (the whole entry), and children lie inside their parent's range.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentSymbol {
    pub name: String,
    pub detail: Option<String>,
    pub kind: OutlineKind,
    pub range: Span,
    pub selection: Span,
    pub children: Vec<DocumentSymbol>,
}

/// The outline of a workflow: its name, triggers, interface and steps (with
/// their type and verb, reference or trigger as detail, and their branches
/// as children), in document order.
pub fn document_symbols(file: &SourceFile, workflow: &Workflow) -> Vec<DocumentSymbol> {
    let text = file.text();
    let name_span = |span: Span, value: &str| name_form(text, span, value).0;
    let display = |name: &str| {
        if name.is_empty() {
            "\"\"".to_string()
        } else {
            name.to_string()
        }
    };
    let mut symbols = Vec::with_capacity(workflow.steps.len() + workflow.triggers.len() + 2);
    let metadata = &workflow.metadata;
    if metadata.span != Span::default() || metadata.name.is_some() {
        let version = match workflow.api_version.value {
            donmai_grammar::ast::ApiVersion::V1 => "workflow/v1",
            donmai_grammar::ast::ApiVersion::V2 => "workflow/v2",
        };
        let detail = match &metadata.version {
            Some(v) => format!("{version} · version {}", v.value),
            None => version.to_string(),
        };
        let (name, selection) = match &metadata.name {
            Some(name) => (display(&name.value), name_span(name.span, &name.value)),
            None => (file_stem(file.path()), metadata.span),
        };
        symbols.push(DocumentSymbol {
            name,
            detail: Some(detail),
            kind: OutlineKind::Workflow,
            range: metadata.span.cover(selection),
            selection,
            children: Vec::new(),
        });
    }
    for trigger in &workflow.triggers {
        let kind = TriggerKind::ALL
            .iter()
            .find(|(_, k)| *k == trigger.kind.value)
            .map_or("trigger", |(name, _)| name);
        let detail = match (&trigger.event_type, &trigger.schedule) {
            (Some(event), _) => format!("{kind} · {}", event.value),
            (None, Some(schedule)) => format!("{kind} · {}", schedule.value),
            (None, None) => kind.to_string(),
        };
        let selection = name_span(trigger.id.span, &trigger.id.value);
        symbols.push(DocumentSymbol {
            name: display(&trigger.id.value),
            detail: Some(detail),
            kind: OutlineKind::Trigger,
            range: trigger.span.cover(selection),
            selection,
            children: Vec::new(),
        });
    }
    if let Some(interface) = &workflow.interface {
        let mut children = Vec::new();
        for (name, ty) in &interface.inputs {
            let selection = name_span(name.span, &name.value);
            children.push(DocumentSymbol {
                name: display(&name.value),
                detail: Some(file.slice(ty.span).to_string()),
                kind: OutlineKind::InterfaceInput,
                range: selection.cover(ty.span),
                selection,
                children: Vec::new(),
            });
        }
        for (name, value) in &interface.outputs {
            let selection = name_span(name.span, &name.value);
            children.push(DocumentSymbol {
                name: display(&name.value),
                detail: None,
                kind: OutlineKind::InterfaceOutput,
                range: selection.cover(value.span),
                selection,
                children: Vec::new(),
            });
        }
        children.sort_by_key(|c| c.range.start);
        let range = children
            .iter()
            .fold(interface.span, |range, c| range.cover(c.range));
        symbols.push(DocumentSymbol {
            name: "interface".to_string(),
            detail: None,
            kind: OutlineKind::Interface,
            range,
            selection: interface.span,
            children,
        });
    }
    for step in &workflow.steps {
        let ty = step.ty.value.as_str();
        let what = step
            .action
            .as_ref()
            .or(step.group_ref.as_ref())
            .or(step.trigger_id.as_ref());
        let detail = match what {
            Some(what) => format!("{ty} · {}", what.value),
            None => ty.to_string(),
        };
        let children = step
            .branches
            .iter()
            .map(|(handle, target)| {
                let selection = name_span(handle.span, &handle.value);
                DocumentSymbol {
                    name: display(&handle.value),
                    detail: Some(format!("→ {}", target.value)),
                    kind: OutlineKind::Branch,
                    range: handle.span.cover(target.span),
                    selection,
                    children: Vec::new(),
                }
            })
            .collect();
        let selection = name_span(step.id.span, &step.id.value);
        symbols.push(DocumentSymbol {
            name: display(&step.id.value),
            detail: Some(detail),
            kind: OutlineKind::Step(step.ty.value),
            range: step.span.cover(selection),
            selection,
            children,
        });
    }
    for id in &workflow.dropped_steps {
        let selection = name_span(id.span, &id.value);
        symbols.push(DocumentSymbol {
            name: display(&id.value),
            detail: Some("incomplete step".to_string()),
            kind: OutlineKind::IncompleteStep,
            range: id.span.cover(selection),
            selection,
            children: Vec::new(),
        });
    }
    symbols.sort_by_key(|s| s.range.start);
    symbols
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "workflow".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_fits_follow_yaml_styles() {
        assert!(fits_inline(ScalarStyle::Plain, "deploy_2"));
        assert!(!fits_inline(ScalarStyle::Plain, "True"));
        assert!(!fits_inline(ScalarStyle::Plain, "a b #c"));
        assert!(fits_inline(ScalarStyle::DoubleQuoted, "a b #c"));
        assert!(fits_inline(ScalarStyle::SingleQuoted, "a \"b\""));
        assert!(!fits_inline(ScalarStyle::DoubleQuoted, "a \"b\""));
        assert!(!fits_inline(ScalarStyle::SingleQuoted, "it's"));
        assert!(fits_inline(ScalarStyle::DoubleQuoted, "it's"));
        assert!(!fits_inline(ScalarStyle::DoubleQuoted, "tab\there"));
        assert!(!fits_inline(ScalarStyle::Literal, "x"));
    }

    proptest::proptest! {
        /// A name that fits inline reads back as itself in that style, in
        /// block and flow context.
        #[test]
        fn inline_names_read_back(name in proptest::prelude::any::<String>()) {
            use donmai_grammar::yaml::{NodeKind, parse};
            for (style, quote) in [
                (ScalarStyle::Plain, ""),
                (ScalarStyle::SingleQuoted, "'"),
                (ScalarStyle::DoubleQuoted, "\""),
            ] {
                if name.is_empty() || !fits_inline(style, &name) {
                    continue;
                }
                for text in [format!("k: {quote}{name}{quote}\n"), format!("[{quote}{name}{quote}, x]")] {
                    let parsed = parse(&text);
                    proptest::prop_assert!(parsed.diagnostics.is_empty(), "{text:?}");
                    let document = &parsed.documents[0];
                    let node = match &document.kind {
                        NodeKind::Seq(items) => &items[0],
                        _ => document.get("k").expect("k"),
                    };
                    proptest::prop_assert_eq!(node.as_str(), Some(name.as_str()), "{:?}", text);
                }
            }
        }
    }

    #[test]
    fn step_ids_follow_the_selector_rule() {
        for ok in ["a", "_x", "dispatch_2", "for", "if", "True"] {
            assert_eq!(validate_name(SymbolKind::Step, ok), Ok(()), "{ok}");
        }
        for bad in ["", "2a", "a-b", "a.b", "true", "in", "é", " a"] {
            assert!(validate_name(SymbolKind::Step, bad).is_err(), "{bad}");
        }
        assert_eq!(validate_name(SymbolKind::Trigger, "pr opened: x"), Ok(()));
        for bad in ["", " ", " a", "a\nb", "a\u{7}"] {
            assert!(validate_name(SymbolKind::Trigger, bad).is_err(), "{bad:?}");
        }
    }
}
