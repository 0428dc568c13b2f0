//! Completion inside `{{ … }}`: the text before the cursor is read back to
//! the operand of a trailing `.` (typed with the checker's own expression
//! types, in the step's environment), or to a bare name being written.
//! Macro variables of enclosing `e.map(x, …` calls are in scope, typed
//! from their receiver as the checker types them.

use donmai_grammar::Span;
use donmai_grammar::expr::lexer::is_identifier;
use donmai_grammar::expr::parse_expr;
use donmai_stdlib::builtins::{BUILTINS, Form, MACROS};
use donmai_stdlib::types::Type;

use super::{Completion, CompletionKind, Documentation, short_type};
use crate::check::Site;
use crate::ide::analysis::{Analysis, ExprEnv};
use crate::typeck::{TypeEnv, check_expr, macro_element, method_accepts};

/// Macros that bind a variable over a receiver's elements.
const BINDING_MACROS: &[&str] = &["all", "exists", "exists_one", "map", "filter"];

/// The expression being written, as the cursor sees it.
pub(super) struct ExprPrefix<'t> {
    /// From just after `{{` (or `${`) to the cursor.
    pub before: &'t str,
    /// From the cursor to the end of the scalar.
    pub after: &'t str,
    /// File offset of `before`'s first byte.
    pub start: usize,
}

/// Where an unclosed `{{` or `${` before the end of `text` opens its
/// expression: the offset just past the delimiter.
pub(super) fn open_expression(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut open: Option<(usize, bool)> = None;
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match open {
            None => {
                if (b == b'{' || b == b'$') && bytes.get(i + 1) == Some(&b'{') {
                    open = Some((i + 2, b == b'$'));
                    i += 2;
                    continue;
                }
            }
            Some((_, dollar)) => match quote {
                Some(q) => {
                    if b == b'\\' {
                        i += 1;
                    } else if b == q {
                        quote = None;
                    }
                }
                None => {
                    if b == b'\'' || b == b'"' {
                        quote = Some(b);
                    } else if b == b'}' && (dollar || bytes.get(i + 1) == Some(&b'}')) {
                        open = None;
                        i += if dollar { 1 } else { 2 };
                        continue;
                    }
                }
            },
        }
        i += 1;
    }
    open.map(|(start, _)| start)
}

fn is_word_byte(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// Whether `text` ends inside a string literal.
fn in_string(text: &str) -> bool {
    let mut quote: Option<u8> = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None => {}
        }
        i += 1;
    }
    quote.is_some()
}

/// The start of the postfix chain (`a.b[0].c(d)`) ending at `end`.
fn chain_start(text: &str, end: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = end;
    while let Some(&b) = i.checked_sub(1).and_then(|j| bytes.get(j)) {
        if is_word_byte(b) {
            while i > 0 && is_word_byte(bytes[i - 1]) {
                i -= 1;
            }
            if i > 0 && bytes[i - 1] == b'.' {
                i -= 1;
                if i > 0 && bytes[i - 1] == b'?' {
                    i -= 1;
                }
                continue;
            }
            break;
        } else if b == b')' || b == b']' {
            i = matching_open(text, i - 1)?;
        } else if b == b'\'' || b == b'"' {
            i = text[..i - 1].rfind(b as char)?;
            break;
        } else {
            break;
        }
    }
    Some(i)
}

/// The offset of the bracket opening the one closing at `close`.
fn matching_open(text: &str, close: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = close + 1;
    while i > 0 {
        i -= 1;
        match bytes[i] {
            b')' | b']' | b'}' => depth += 1,
            b'(' | b'[' | b'{' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            q @ (b'\'' | b'"') => i = text[..i].rfind(q as char)?,
            _ => {}
        }
    }
    None
}

/// The variables of the macro calls still open at the end of `text`, with
/// the text of their receivers, outermost first.
fn open_macro_variables(text: &str) -> Vec<(String, String)> {
    let bytes = text.as_bytes();
    // One entry per open parenthesis: the variable it binds, if any.
    let mut open: Vec<Option<(String, String)>> = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' {
                i += 1;
            } else if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' => open.push(macro_binding(text, i)),
            b')' => {
                open.pop();
            }
            _ => {}
        }
        i += 1;
    }
    open.into_iter().flatten().collect()
}

/// `recv.map(x, ` with `(` at `paren`: the variable and the receiver text.
fn macro_binding(text: &str, paren: usize) -> Option<(String, String)> {
    let before = &text[..paren];
    let name_start = before
        .bytes()
        .rposition(|b| !is_word_byte(b))
        .map_or(0, |i| i + 1);
    let name = &before[name_start..];
    if !BINDING_MACROS.contains(&name)
        || name_start == 0
        || before.as_bytes()[name_start - 1] != b'.'
    {
        return None;
    }
    let receiver_end = name_start - 1;
    let receiver_start = chain_start(before, receiver_end)?;
    let receiver = before[receiver_start..receiver_end].trim();
    let rest = &text[paren + 1..];
    let variable: String = rest
        .trim_start()
        .bytes()
        .take_while(|&b| is_word_byte(b))
        .map(char::from)
        .collect();
    let after_variable = rest.trim_start()[variable.len()..].trim_start();
    (is_identifier(&variable) && after_variable.starts_with(',') && !receiver.is_empty())
        .then(|| (variable, receiver.to_string()))
}

/// The step's roots plus macro variables.
struct ScopedEnv<'e> {
    env: &'e ExprEnv,
    variables: Vec<(String, Type)>,
}

impl TypeEnv for ScopedEnv<'_> {
    fn root(&self, name: &str) -> Option<Type> {
        match self.variables.iter().rev().find(|(v, _)| v == name) {
            Some((_, ty)) => Some(ty.clone()),
            None => self.env.root(name),
        }
    }

    fn roots(&self) -> Vec<String> {
        let mut roots = self.env.roots();
        roots.extend(self.variables.iter().map(|(v, _)| v.clone()));
        roots
    }
}

/// Whether an expression's text checks without a diagnostic.
fn typed_cleanly(text: &str, env: &dyn TypeEnv) -> bool {
    let (expr, diagnostics) = parse_expr(text);
    diagnostics.is_empty() && check_expr(&expr, env).1.is_empty()
}

/// The type of an expression's text in `env`, if it parses cleanly.
fn type_of(text: &str, env: &dyn TypeEnv) -> Option<Type> {
    let (expr, diagnostics) = parse_expr(text);
    if diagnostics.iter().any(|d| d.is_error()) {
        return None;
    }
    Some(check_expr(&expr, env).0)
}

/// The step ids `text` reads as `nodes.<id>`.
fn named_nodes(text: &str) -> Vec<&str> {
    let mut ids: Vec<&str> = text
        .match_indices("nodes.")
        .filter(|(at, _)| *at == 0 || !is_word_byte(text.as_bytes()[at - 1]))
        .map(|(at, _)| {
            let rest = &text[at + "nodes.".len()..];
            &rest[..rest.bytes().take_while(|&b| is_word_byte(b)).count()]
        })
        .filter(|id| !id.is_empty())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Completions in an expression checked at `site` (unknown for a step
/// the analysis has not seen).
pub(super) fn complete(
    analysis: &Analysis,
    site: Option<Site>,
    prefix: &ExprPrefix<'_>,
) -> Vec<Completion> {
    let before = prefix.before;
    if in_string(before) {
        return Vec::new();
    }
    // `nodes` holds only the steps the text names, as when the checker
    // types an expression: building it for every upstream step would cost
    // as much as the list of them.
    let env = match site {
        Some(site) => analysis.expr_env_naming(site, &named_nodes(before)),
        None => ExprEnv {
            nodes: analysis.is_v2().then(|| Type::Object(Default::default())),
            trigger: Type::Dyn,
        },
    };
    let env = &env;
    let word_start = before
        .bytes()
        .rposition(|b| !is_word_byte(b))
        .map_or(0, |i| i + 1);
    let word_tail = prefix
        .after
        .bytes()
        .take_while(|&b| is_word_byte(b))
        .count();
    let cursor = prefix.start + before.len();
    let range = Span::new(prefix.start + word_start, cursor + word_tail);
    let head = &before[..word_start];
    // A number being written (`1.5`) has nothing to complete.
    if before[word_start..].starts_with(|c: char| c.is_ascii_digit()) {
        return Vec::new();
    }
    let mut scope = ScopedEnv {
        env,
        variables: Vec::new(),
    };
    for (variable, receiver) in open_macro_variables(head) {
        let element = type_of(&receiver, &scope)
            .and_then(|t| macro_element(&t))
            .unwrap_or(Type::Dyn);
        scope.variables.push((variable, element));
    }
    if let Some(dot_head) = head.strip_suffix('.') {
        let optional = dot_head.ends_with('?');
        let operand_end = dot_head.len() - usize::from(optional);
        let Some(operand_start) = chain_start(head, operand_end) else {
            return Vec::new();
        };
        let operand = head[operand_start..operand_end].trim();
        if operand.is_empty() || operand.starts_with(|c: char| c.is_ascii_digit()) {
            return Vec::new();
        }
        if operand == "nodes"
            && env.nodes.is_some()
            && scope.variables.iter().all(|(v, _)| v != "nodes")
        {
            return match site {
                Some(site) => upstream_nodes(analysis, site, range),
                None => Vec::new(),
            };
        }
        let Some(ty) = type_of(operand, &scope) else {
            return Vec::new();
        };
        if ty == Type::Dyn && !typed_cleanly(operand, &scope) {
            // An unknown name or field: nothing is known about it.
            return Vec::new();
        }
        // `['name']` replaces from the dot for a field that is no name.
        let dot = prefix.start + operand_end;
        return members(analysis, operand, &ty, optional, range, dot);
    }
    names(&scope, range)
}

/// The steps an expression at `site` may read, nearest first.
fn upstream_nodes(analysis: &Analysis, site: Site, range: Span) -> Vec<Completion> {
    let steps = analysis.steps();
    analysis
        .upstream(site)
        .into_iter()
        .filter(|u| is_identifier(&steps[u.index].id.value))
        .map(|u| {
            let step = &steps[u.index];
            let mut completion = Completion::new(&step.id.value, CompletionKind::Step, range)
                .sort(&format!("0 {:08}", steps.len() - u.index));
            completion.detail = Some(format!("output: {}", short_type(&u.output)));
            completion.documentation = Some(Documentation::Node {
                id: step.id.value.clone(),
                always_runs: u.always_runs,
            });
            completion
        })
        .collect()
}

/// What may follow `operand.`: fields, then methods and macros that apply.
fn members(
    analysis: &Analysis,
    operand: &str,
    ty: &Type,
    optional: bool,
    range: Span,
    dot: usize,
) -> Vec<Completion> {
    let mut out = Vec::new();
    let is_nodes = operand == "nodes";
    if let Type::Object(object) = ty.non_null() {
        for (name, field) in &object.fields {
            // `trigger.data` is the v1 spelling, a warning in v2.
            if operand == "trigger" && analysis.is_v2() && name == "data" {
                continue;
            }
            let field_type = if field.required {
                field.ty.clone()
            } else {
                field.ty.clone().optional()
            };
            let identifier = is_identifier(name);
            if !identifier && (optional || is_nodes) {
                // `nodes.<id>` must be a name; `?.` takes no index.
                continue;
            }
            let mut completion =
                Completion::new(name, CompletionKind::Field, range).sort(&format!("0 {name}"));
            if is_nodes {
                let output = match field_type.non_null() {
                    Type::Object(node) => node.fields.get("output").map(|f| f.ty.clone()),
                    _ => None,
                };
                let output = output.unwrap_or(Type::Dyn);
                let output = if field.required {
                    output
                } else {
                    output.optional()
                };
                completion.kind = CompletionKind::Step;
                completion.detail = Some(format!("output: {}", short_type(&output)));
            } else {
                completion.detail = Some(short_type(&field_type));
            }
            if !identifier {
                completion.range = Span::new(dot, range.end);
                completion.insert_text =
                    format!("['{}']", name.replace('\\', "\\\\").replace('\'', "\\'"));
                completion.filter_text = Some(format!(".{name}"));
            }
            out.push(completion);
        }
    }
    // A record (a node, an output, a payload) is read by its fields; the
    // map functions the checker also allows on it would only be noise.
    if matches!(ty.non_null(), Type::Object(_)) {
        return out;
    }
    for builtin in BUILTINS {
        if builtin.form == Form::Operator || !method_accepts(builtin, ty) {
            continue;
        }
        let mut completion = Completion::new(builtin.name, CompletionKind::Method, range)
            .sort(&format!("1 {}", builtin.name));
        completion.detail = Some(
            builtin
                .signatures()
                .into_iter()
                .filter(|s| builtin.form != Form::Both || s.contains(builtin.name))
                .collect::<Vec<_>>()
                .join("; "),
        );
        completion.documentation = Some(Documentation::Text(builtin.summary.to_string()));
        completion.insert_text = format!("{}($1)", builtin.name);
        completion.snippet = true;
        out.push(completion);
    }
    if !ty.is_optional() && macro_element(ty).is_some() {
        for (name, summary) in MACROS {
            if !BINDING_MACROS.contains(name) {
                continue;
            }
            let mut completion =
                Completion::new(name, CompletionKind::Method, range).sort(&format!("2 {name}"));
            completion.detail = Some("macro".to_string());
            completion.documentation = Some(Documentation::Text(summary.to_string()));
            completion.insert_text = format!("{name}(${{1:x}}, $2)");
            completion.snippet = true;
            out.push(completion);
        }
    }
    out
}

/// A bare name: variables, roots, functions and literals.
fn names(scope: &ScopedEnv<'_>, range: Span) -> Vec<Completion> {
    let mut out = Vec::new();
    for (variable, ty) in scope.variables.iter().rev() {
        if out.iter().any(|c: &Completion| c.label == *variable) {
            continue;
        }
        let mut completion = Completion::new(variable, CompletionKind::Variable, range)
            .sort(&format!("0 {variable}"));
        completion.detail = Some(short_type(ty));
        out.push(completion);
    }
    if scope.env.nodes.is_some() {
        let mut completion =
            Completion::new("nodes", CompletionKind::Variable, range).sort("1 nodes");
        completion.detail = Some("the steps upstream of this one".to_string());
        completion.documentation = Some(Documentation::Text(
            "Read a step's results as `nodes.<id>.output.<field>`.".to_string(),
        ));
        out.push(completion);
    }
    let mut trigger = Completion::new("trigger", CompletionKind::Variable, range).sort("1 trigger");
    trigger.detail = Some(short_type(&scope.env.trigger));
    trigger.documentation = Some(Documentation::Text(
        "The payload of the trigger that started the run.".to_string(),
    ));
    out.push(trigger);
    for builtin in BUILTINS {
        if !builtin.form.allows_function() {
            continue;
        }
        let mut completion = Completion::new(builtin.name, CompletionKind::Function, range)
            .sort(&format!("2 {}", builtin.name));
        completion.detail = Some(
            builtin
                .signatures()
                .into_iter()
                .filter(|s| s.starts_with(builtin.name))
                .collect::<Vec<_>>()
                .join("; "),
        );
        completion.documentation = Some(Documentation::Text(builtin.summary.to_string()));
        completion.insert_text = format!("{}($1)", builtin.name);
        completion.snippet = true;
        out.push(completion);
    }
    if let Some((name, summary)) = MACROS.iter().find(|(name, _)| *name == "has") {
        let mut completion =
            Completion::new(name, CompletionKind::Function, range).sort(&format!("2 {name}"));
        completion.detail = Some("macro".to_string());
        completion.documentation = Some(Documentation::Text(summary.to_string()));
        completion.insert_text = "has($1)".to_string();
        completion.snippet = true;
        out.push(completion);
    }
    for keyword in ["true", "false", "null"] {
        out.push(
            Completion::new(keyword, CompletionKind::Keyword, range).sort(&format!("3 {keyword}")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_open_expression() {
        assert_eq!(open_expression("a {{ b"), Some(4));
        assert_eq!(open_expression("a {{ b }} c"), None);
        assert_eq!(open_expression("{{ '}}' + x"), Some(2));
        assert_eq!(open_expression("${ x"), Some(2));
        assert_eq!(open_expression("${ x } y"), None);
        assert_eq!(open_expression("{{ a }} {{ "), Some(10));
    }

    #[test]
    fn reads_chains_back() {
        let text = "size(nodes.a.output.items[0].name";
        assert_eq!(chain_start(text, text.len()), Some(5));
        let text = "x + f(a).b";
        assert_eq!(chain_start(text, text.len()), Some(4));
        let text = "'abc'";
        assert_eq!(chain_start(text, text.len()), Some(0));
        assert_eq!(chain_start("a)", 2), None);
    }

    #[test]
    fn macro_variables_in_scope() {
        assert_eq!(
            open_macro_variables("trigger.items.map(i, i.tags.filter(t, "),
            vec![
                ("i".to_string(), "trigger.items".to_string()),
                ("t".to_string(), "i.tags".to_string())
            ]
        );
        assert!(open_macro_variables("trigger.items.map(i, i)").is_empty());
        assert!(open_macro_variables("size(x, ").is_empty());
    }
}
