//! What the engine needs to know about a plan's graph before it runs it: the
//! successors of every step (the reverse of the predecessor lists) and how
//! many predecessors each step waits for.
//!
//! Nothing is checked here: the engine runs only a [`VerifiedPlan`], whose
//! verifier has proved every index in range, each level a DAG with exact,
//! sorted predecessor lists, and no level that contains itself.

use crate::plan::model::StepIx;
use crate::verify::VerifiedPlan;

pub(crate) struct Topology {
    /// `successors[level][step]`: the steps that list `step` as a
    /// predecessor, sorted.
    pub successors: Vec<Vec<Vec<StepIx>>>,
    /// `predecessors[level][step]`: how many predecessors a step waits for.
    pub predecessors: Vec<Vec<u32>>,
}

pub(crate) fn analyse(plan: &VerifiedPlan) -> Topology {
    let mut successors = Vec::with_capacity(plan.levels.len());
    let mut predecessors = Vec::with_capacity(plan.levels.len());
    for level in &plan.levels {
        let mut succ: Vec<Vec<StepIx>> = vec![Vec::new(); level.steps.len()];
        for (ix, step) in level.steps.iter().enumerate() {
            for &p in &step.predecessors {
                succ[p as usize].push(ix as StepIx);
            }
        }
        successors.push(succ);
        predecessors.push(
            level
                .steps
                .iter()
                .map(|step| step.predecessors.len() as u32)
                .collect(),
        );
    }
    Topology {
        successors,
        predecessors,
    }
}
