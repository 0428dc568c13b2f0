//! `donmaic graph`: the step graph of a plan as Mermaid or Graphviz DOT, for
//! docs and reviews. Every level is drawn; a group or loop step points at its
//! body, which is drawn once however often it is used.

use std::fmt::Write;

use donmai_runtime::plan::{Level, OnTimeout, Plan, StepDef, StepKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

/// One edge of a level: from, to, label.
fn edges(step: &StepDef) -> Vec<(u32, String)> {
    let mut edges: Vec<(u32, String)> = step.next.iter().map(|&t| (t, String::new())).collect();
    edges.extend(step.branches.iter().map(|(handle, t)| (*t, handle.clone())));
    if let StepKind::Gate { gate, .. } = &step.kind
        && let OnTimeout::Branch(target) = gate.on_timeout
    {
        edges.push((target, "timeout".into()));
    }
    edges
}

fn shape_label(plan: &Plan, step: &StepDef) -> (&'static str, String) {
    let verb = |ix: u32| {
        plan.verbs
            .get(ix as usize)
            .map_or_else(String::new, |v| v.verb.clone())
    };
    match &step.kind {
        StepKind::Trigger { .. } => ("trigger", String::new()),
        StepKind::Condition { verb: v } => ("condition", verb(*v)),
        StepKind::Action { verb: v } => ("action", verb(*v)),
        StepKind::Gate { verb: v, .. } => ("gate", v.map(verb).unwrap_or_default()),
        StepKind::Group { level } => ("group", level_name(plan, *level)),
        StepKind::Loop {
            level,
            max_iterations,
            ..
        } => (
            "loop",
            format!("{} ×≤{max_iterations}", level_name(plan, *level)),
        ),
    }
}

fn level_name(plan: &Plan, level: u32) -> String {
    plan.levels
        .get(level as usize)
        .map_or_else(String::new, |l| l.name.clone())
}

/// Node ids must be unique across levels and safe in both languages.
fn node_id(level: usize, step: usize) -> String {
    format!("L{level}S{step}")
}

fn body_of(step: &StepDef) -> Option<u32> {
    match step.kind {
        StepKind::Group { level } | StepKind::Loop { level, .. } => Some(level),
        _ => None,
    }
}

/// Escapes text for a double-quoted Mermaid label or DOT string.
fn quoted(text: &str, format: GraphFormat) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match (format, c) {
            (GraphFormat::Mermaid, '"') => out.push_str("#quot;"),
            (GraphFormat::Mermaid, '<') => out.push_str("#lt;"),
            (GraphFormat::Mermaid, '>') => out.push_str("#gt;"),
            (GraphFormat::Dot, '"') => out.push_str("\\\""),
            (GraphFormat::Dot, '\\') => out.push_str("\\\\"),
            (_, '\n' | '\r') => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

pub fn render(plan: &Plan, format: GraphFormat) -> String {
    match format {
        GraphFormat::Mermaid => mermaid(plan),
        GraphFormat::Dot => dot(plan),
    }
}

fn step_text(plan: &Plan, step: &StepDef, format: GraphFormat) -> String {
    let (kind, detail) = shape_label(plan, step);
    let newline = match format {
        GraphFormat::Mermaid => "<br/>",
        GraphFormat::Dot => "\\n",
    };
    if detail.is_empty() {
        format!("{}{newline}{kind}", quoted(&step.id, format))
    } else {
        format!(
            "{}{newline}{kind}: {}",
            quoted(&step.id, format),
            quoted(&detail, format)
        )
    }
}

fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for (l, level) in plan.levels.iter().enumerate() {
        let indent = if l == 0 { "  " } else { "    " };
        if l > 0 {
            let _ = writeln!(
                out,
                "  subgraph L{l}[\"{}\"]",
                quoted(&level.name, GraphFormat::Mermaid)
            );
        }
        for (s, step) in level.steps.iter().enumerate() {
            let text = step_text(plan, step, GraphFormat::Mermaid);
            let id = node_id(l, s);
            let _ = match step.kind {
                StepKind::Trigger { .. } => writeln!(out, "{indent}{id}([\"{text}\"])"),
                StepKind::Condition { .. } => writeln!(out, "{indent}{id}{{\"{text}\"}}"),
                StepKind::Gate { .. } => writeln!(out, "{indent}{id}[/\"{text}\"/]"),
                StepKind::Group { .. } | StepKind::Loop { .. } => {
                    writeln!(out, "{indent}{id}[[\"{text}\"]]")
                }
                StepKind::Action { .. } => writeln!(out, "{indent}{id}[\"{text}\"]"),
            };
        }
        mermaid_edges(&mut out, l, level, indent);
        if l > 0 {
            out.push_str("  end\n");
        }
    }
    for (l, level) in plan.levels.iter().enumerate() {
        for (s, step) in level.steps.iter().enumerate() {
            if let Some(body) = body_of(step) {
                let _ = writeln!(out, "  {} -.-> L{body}", node_id(l, s));
            }
        }
    }
    out
}

fn mermaid_edges(out: &mut String, l: usize, level: &Level, indent: &str) {
    for (s, step) in level.steps.iter().enumerate() {
        for (target, label) in edges(step) {
            let from = node_id(l, s);
            let to = node_id(l, target as usize);
            let _ = if label.is_empty() {
                writeln!(out, "{indent}{from} --> {to}")
            } else {
                writeln!(
                    out,
                    "{indent}{from} -- \"{}\" --> {to}",
                    quoted(&label, GraphFormat::Mermaid)
                )
            };
        }
    }
}

fn dot(plan: &Plan) -> String {
    let mut out = String::from(
        "digraph workflow {\n  rankdir=TB;\n  compound=true;\n  node [fontname=\"sans-serif\"];\n",
    );
    for (l, level) in plan.levels.iter().enumerate() {
        let indent = if l == 0 { "  " } else { "    " };
        if l > 0 {
            let _ = writeln!(
                out,
                "  subgraph cluster_L{l} {{\n    label=\"{}\";",
                quoted(&level.name, GraphFormat::Dot)
            );
        }
        for (s, step) in level.steps.iter().enumerate() {
            let shape = match step.kind {
                StepKind::Trigger { .. } => "oval",
                StepKind::Condition { .. } => "diamond",
                StepKind::Gate { .. } => "parallelogram",
                StepKind::Group { .. } | StepKind::Loop { .. } => "box3d",
                StepKind::Action { .. } => "box",
            };
            let _ = writeln!(
                out,
                "{indent}{} [label=\"{}\", shape={shape}];",
                node_id(l, s),
                step_text(plan, step, GraphFormat::Dot)
            );
        }
        for (s, step) in level.steps.iter().enumerate() {
            for (target, label) in edges(step) {
                let _ = if label.is_empty() {
                    writeln!(
                        out,
                        "{indent}{} -> {};",
                        node_id(l, s),
                        node_id(l, target as usize)
                    )
                } else {
                    writeln!(
                        out,
                        "{indent}{} -> {} [label=\"{}\"];",
                        node_id(l, s),
                        node_id(l, target as usize),
                        quoted(&label, GraphFormat::Dot)
                    )
                };
            }
        }
        if l > 0 {
            out.push_str("  }\n");
        }
    }
    for (l, level) in plan.levels.iter().enumerate() {
        for (s, step) in level.steps.iter().enumerate() {
            if let Some(body) = body_of(step)
                && plan
                    .levels
                    .get(body as usize)
                    .is_some_and(|b| !b.steps.is_empty())
            {
                let _ = writeln!(
                    out,
                    "  {} -> {} [style=dashed, lhead=cluster_L{body}];",
                    node_id(l, s),
                    node_id(body as usize, 0)
                );
            }
        }
    }
    out.push_str("}\n");
    out
}
