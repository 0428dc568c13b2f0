//! What the engine needs to know about a plan's graph before it runs it:
//! the successors of every step (the reverse of the predecessor lists), and
//! the structural facts it relies on to index without checking (every index
//! in range, each level a DAG, no level that contains itself).
//!
//! The verifier checks these too; the engine checks them again because it
//! must never panic or loop forever on a plan that slipped through.

use super::EngineError;
use crate::plan::model::{LevelIx, OnTimeout, Plan, Predicate, StepIx, StepKind, ValueTemplate};

pub(crate) struct Topology {
    /// `successors[level][step]`: the steps that list `step` as a
    /// predecessor, sorted.
    pub successors: Vec<Vec<Vec<StepIx>>>,
    /// `predecessors[level][step]`: how many distinct predecessors a step
    /// waits for.
    pub predecessors: Vec<Vec<u32>>,
}

/// Predecessor lists may repeat an entry; a step waits for each once.
fn distinct_predecessors(step: &crate::plan::model::StepDef) -> usize {
    let mut preds = step.predecessors.clone();
    preds.sort_unstable();
    preds.dedup();
    preds.len()
}

fn plan_error(message: String) -> EngineError {
    EngineError::Plan(message)
}

pub(crate) fn analyse(plan: &Plan) -> Result<Topology, EngineError> {
    if plan.levels.is_empty() {
        return Err(plan_error("the plan has no levels".into()));
    }
    let mut successors = Vec::with_capacity(plan.levels.len());
    let mut predecessors = Vec::with_capacity(plan.levels.len());
    for (level_ix, level) in plan.levels.iter().enumerate() {
        let n = level.steps.len();
        let in_level = |ix: StepIx, what: &str, step: &str| {
            if (ix as usize) < n {
                Ok(())
            } else {
                Err(plan_error(format!(
                    "level `{}`: step `{step}` names {what} {ix}, beyond the level's {n} steps",
                    level.name
                )))
            }
        };
        let mut succ: Vec<Vec<StepIx>> = vec![Vec::new(); n];
        for (ix, step) in level.steps.iter().enumerate() {
            for &p in &step.predecessors {
                in_level(p, "predecessor", &step.id)?;
                succ[p as usize].push(ix as StepIx);
            }
            for &t in step.next.iter().chain(step.branches.iter().map(|(_, t)| t)) {
                in_level(t, "successor", &step.id)?;
                if !level.steps[t as usize]
                    .predecessors
                    .contains(&(ix as StepIx))
                {
                    return Err(plan_error(format!(
                        "level `{}`: step `{}` leads to `{}`, which does not list it as a predecessor",
                        level.name, step.id, level.steps[t as usize].id
                    )));
                }
            }
            for template in step.inputs.iter().map(|(_, t)| t) {
                check_template(plan, template)?;
            }
            match &step.kind {
                StepKind::Trigger { trigger } => {
                    if level_ix == 0 && (*trigger as usize) >= level.triggers.len() {
                        return Err(plan_error(format!(
                            "step `{}` names trigger {trigger}, beyond the {} triggers",
                            step.id,
                            level.triggers.len()
                        )));
                    }
                }
                StepKind::Condition { verb } | StepKind::Action { verb } => {
                    check_verb(plan, *verb, &step.id)?;
                }
                StepKind::Gate { verb, gate } => {
                    if let Some(verb) = verb {
                        check_verb(plan, *verb, &step.id)?;
                    }
                    if let Some(filter) = &gate.filter {
                        check_predicate(plan, filter, 0)?;
                    }
                    if let OnTimeout::Branch(t) = gate.on_timeout {
                        in_level(t, "timeout branch", &step.id)?;
                        if !level.steps[t as usize]
                            .predecessors
                            .contains(&(ix as StepIx))
                        {
                            return Err(plan_error(format!(
                                "level `{}`: the timeout branch of `{}` leads to `{}`, which does not list it as a predecessor",
                                level.name, step.id, level.steps[t as usize].id
                            )));
                        }
                    }
                }
                StepKind::Group { level: child } => check_level(plan, *child, &step.id)?,
                StepKind::Loop {
                    level: child,
                    until,
                    ..
                } => {
                    check_level(plan, *child, &step.id)?;
                    if let Some(until) = until {
                        check_predicate(plan, until, 0)?;
                    }
                }
            }
        }
        for template in level.outputs.iter().map(|(_, t)| t) {
            check_template(plan, template)?;
        }
        for list in &mut succ {
            list.sort_unstable();
            list.dedup();
        }
        check_acyclic(&level.name, &level.steps, &succ)?;
        successors.push(succ);
        predecessors.push(
            level
                .steps
                .iter()
                .map(|step| distinct_predecessors(step) as u32)
                .collect(),
        );
    }
    check_levels_acyclic(plan)?;
    Ok(Topology {
        successors,
        predecessors,
    })
}

fn check_verb(plan: &Plan, verb: u32, step: &str) -> Result<(), EngineError> {
    match plan.verbs.get(verb as usize) {
        Some(v) => {
            if let Some(key) = v.idempotency_key {
                check_expr(plan, key)?;
            }
            Ok(())
        }
        None => Err(plan_error(format!(
            "step `{step}` names verb {verb}, beyond the {} verbs",
            plan.verbs.len()
        ))),
    }
}

fn check_level(plan: &Plan, level: LevelIx, step: &str) -> Result<(), EngineError> {
    if level == 0 || level as usize >= plan.levels.len() {
        return Err(plan_error(format!(
            "step `{step}` runs level {level}, which is not a group or loop body"
        )));
    }
    Ok(())
}

fn check_expr(plan: &Plan, expr: u32) -> Result<(), EngineError> {
    if (expr as usize) < plan.exprs.len() {
        Ok(())
    } else {
        Err(plan_error(format!("expression {expr} is out of range")))
    }
}

fn check_template(plan: &Plan, template: &ValueTemplate) -> Result<(), EngineError> {
    match template {
        ValueTemplate::Const(c) => {
            if (*c as usize) < plan.constants.len() {
                Ok(())
            } else {
                Err(plan_error(format!("constant {c} is out of range")))
            }
        }
        ValueTemplate::Expr(e) => check_expr(plan, *e),
        ValueTemplate::Interpolate(parts) => parts.iter().try_for_each(|part| match part {
            crate::plan::model::TemplatePart::Text(_) => Ok(()),
            crate::plan::model::TemplatePart::Expr(e) => check_expr(plan, *e),
        }),
        ValueTemplate::List(items) => items.iter().try_for_each(|t| check_template(plan, t)),
        ValueTemplate::Map(entries) => entries
            .iter()
            .try_for_each(|(_, t)| check_template(plan, t)),
    }
}

fn check_predicate(plan: &Plan, predicate: &Predicate, depth: usize) -> Result<(), EngineError> {
    if depth > 16 {
        return Err(plan_error("a predicate nests too deeply".into()));
    }
    match predicate {
        Predicate::All(items) | Predicate::Any(items) => items
            .iter()
            .try_for_each(|p| check_predicate(plan, p, depth + 1)),
        Predicate::Not(inner) => check_predicate(plan, inner, depth + 1),
        Predicate::Leaf { value, .. } => value
            .as_ref()
            .map_or(Ok(()), |template| check_template(plan, template)),
    }
}

fn check_acyclic(
    level: &str,
    steps: &[crate::plan::model::StepDef],
    succ: &[Vec<StepIx>],
) -> Result<(), EngineError> {
    let mut indegree: Vec<usize> = steps.iter().map(distinct_predecessors).collect();
    let mut ready: Vec<usize> = (0..steps.len()).filter(|&i| indegree[i] == 0).collect();
    let mut seen = 0;
    while let Some(ix) = ready.pop() {
        seen += 1;
        for &s in &succ[ix] {
            indegree[s as usize] -= 1;
            if indegree[s as usize] == 0 {
                ready.push(s as usize);
            }
        }
    }
    if seen == steps.len() {
        Ok(())
    } else {
        Err(plan_error(format!(
            "level `{level}`: the steps form a cycle"
        )))
    }
}

fn check_levels_acyclic(plan: &Plan) -> Result<(), EngineError> {
    // Depth-first over "level A runs level B"; a back edge is a level that
    // would contain itself and open frames forever.
    fn visit(plan: &Plan, level: usize, state: &mut [u8]) -> Result<(), EngineError> {
        state[level] = 1;
        for step in &plan.levels[level].steps {
            let child = match step.kind {
                StepKind::Group { level } | StepKind::Loop { level, .. } => level as usize,
                _ => continue,
            };
            match state[child] {
                1 => {
                    return Err(plan_error(format!(
                        "level `{}` contains itself through step `{}`",
                        plan.levels[child].name, step.id
                    )));
                }
                0 => visit(plan, child, state)?,
                _ => {}
            }
        }
        state[level] = 2;
        Ok(())
    }
    let mut state = vec![0u8; plan.levels.len()];
    for level in 0..plan.levels.len() {
        if state[level] == 0 {
            visit(plan, level, &mut state)?;
        }
    }
    Ok(())
}
