//! A run's state in memory: the frames it has open (the workflow level, and
//! one per running group or loop iteration) and their step instances. The
//! store holds the truth; this is the lease holder's working copy, written
//! back at every commit and rebuilt from the store on resume.

use super::ids::RunId;
use super::nodes::NodeKeys;
use super::records::{RunRecord, StepRecord};
use crate::plan::model::{LevelIx, StepIx};
use donmai_stdlib::value::Value;
use std::cell::OnceCell;

pub(crate) struct StepState {
    pub rec: StepRecord,
    /// A predecessor that ended took an edge to this step.
    pub activated: bool,
    /// Predecessors that reached a terminal status.
    pub terminal_preds: u32,
    /// The frame a running group or loop step opened.
    pub child: Option<u32>,
    pub dirty: bool,
}

impl StepState {
    pub fn new(step_id: String) -> StepState {
        StepState {
            rec: StepRecord::new(step_id),
            activated: false,
            terminal_preds: 0,
            child: None,
            dirty: false,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.rec.status.is_terminal()
    }
}

pub(crate) struct Frame {
    pub level: LevelIx,
    /// Prefix of the step paths in this frame (`""`, `"2.1/"`).
    pub key_prefix: String,
    /// Prefix of the display ids (`""`, `"dev/"`, `"attempts[2]/"`).
    pub display_prefix: String,
    /// The `trigger` root inside the frame.
    pub trigger: Value,
    /// The group or loop step that opened the frame.
    pub parent: Option<(u32, StepIx)>,
    pub steps: Vec<StepState>,
    /// Steps not yet terminal.
    pub open: usize,
    /// Done (its outputs were taken) or abandoned.
    pub closed: bool,
    /// The `nodes` root, built when an expression first reads it and kept
    /// current by [`RunState::set_output`].
    pub nodes: OnceCell<Value>,
}

impl Frame {
    pub fn new(
        level: LevelIx,
        key_prefix: String,
        display_prefix: String,
        trigger: Value,
        parent: Option<(u32, StepIx)>,
        steps: Vec<StepState>,
    ) -> Frame {
        Frame {
            level,
            key_prefix,
            display_prefix,
            trigger,
            parent,
            open: steps.iter().filter(|s| !s.is_terminal()).count(),
            closed: false,
            steps,
            nodes: OnceCell::new(),
        }
    }

    /// The `nodes` root of the frame: step id → `{output}`.
    pub fn nodes(&self, keys: &NodeKeys) -> &Value {
        let build = || keys.build(self.level, self.steps.iter().map(|state| &state.rec.output));
        let nodes = self.nodes.get_or_init(build);
        // Every test run checks that no output was written around
        // `RunState::set_output` (compared as text: NaN ≠ NaN).
        debug_assert_eq!(
            nodes.to_canonical_json(),
            build().to_canonical_json(),
            "the nodes root of a frame fell behind its steps' outputs"
        );
        nodes
    }

    pub fn path(&self, step: StepIx) -> String {
        format!("{}{step}", self.key_prefix)
    }
}

pub(crate) struct RunState {
    pub id: RunId,
    /// Distinguishes this in-memory copy from an earlier one of the same
    /// run: queued work carries it, so work queued before an eviction is
    /// dropped after a reload.
    pub generation: u64,
    pub record: RunRecord,
    /// The `rev` last committed, `None` before the run's first commit.
    pub stored_rev: Option<u64>,
    /// The `run` root of expressions.
    pub run_value: Value,
    pub frames: Vec<Frame>,
    pub dirty: Vec<(u32, StepIx)>,
    /// Touched by the batch being built.
    pub touched: bool,
    /// When this engine last wrote the run's lease.
    pub lease_renewed_at: u64,
}

impl RunState {
    pub fn step(&self, frame: u32, step: StepIx) -> &StepState {
        &self.frames[frame as usize].steps[step as usize]
    }

    pub fn step_mut(&mut self, frame: u32, step: StepIx) -> &mut StepState {
        &mut self.frames[frame as usize].steps[step as usize]
    }

    /// Marks a step to be written at the next commit.
    pub fn mark(&mut self, frame: u32, step: StepIx) {
        let state = self.step_mut(frame, step);
        if !state.dirty {
            state.dirty = true;
            self.dirty.push((frame, step));
        }
    }

    pub fn is_active(&self) -> bool {
        self.record.status == super::RunStatus::Running
    }

    /// The frame and step a stored path names, if that instance is open in
    /// memory (a path of a finished loop iteration is not).
    pub fn locate(&self, path: &str) -> Option<(u32, StepIx)> {
        let mut frame = 0u32;
        let mut segments = path.split('/').peekable();
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                let step: StepIx = segment.parse().ok()?;
                self.frames.get(frame as usize)?.steps.get(step as usize)?;
                return Some((frame, step));
            }
            let (step, iteration) = segment.split_once('.')?;
            let step: StepIx = step.parse().ok()?;
            let iteration: u32 = iteration.parse().ok()?;
            let state = self.frames.get(frame as usize)?.steps.get(step as usize)?;
            if state.rec.iteration != iteration {
                return None;
            }
            frame = state.child?;
        }
        None
    }

    /// Sets a step's output, and its entry in the frame's `nodes` root if
    /// that was built.
    pub fn set_output(&mut self, keys: &NodeKeys, frame: u32, step: StepIx, output: Value) {
        let frame = &mut self.frames[frame as usize];
        if let Some(nodes) = frame.nodes.get_mut() {
            keys.update(nodes, frame.level, step, &output);
        }
        frame.steps[step as usize].rec.output = output;
    }
}
