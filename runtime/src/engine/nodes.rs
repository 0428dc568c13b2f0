//! The `nodes` root of a frame (step id → `{output}`), kept current as
//! steps end instead of rebuilt for every expression that reads it.
//!
//! A frame builds its map the first time an expression reads it; from then
//! on every change of a step's output updates the one entry in place
//! (`Arc::make_mut` on a map nobody else holds), so reading `nodes` costs
//! O(1) and a step ending O(log steps), where rebuilding it per evaluation
//! made an n-step chain that pipes outputs O(n²). A value an expression
//! kept (`{{ nodes }}` as a step output) shares the map; the next update
//! then copies it once and leaves the kept value as it was.

use crate::plan::model::{LevelIx, Plan, StepIx};
use donmai_stdlib::value::{MapEntries, MapKey, Value};

/// The map keys of every level's step ids, made once per engine so an
/// update allocates no key.
pub(crate) struct NodeKeys {
    ids: Vec<Vec<MapKey>>,
    output: MapKey,
}

impl NodeKeys {
    pub fn new(plan: &Plan) -> NodeKeys {
        NodeKeys {
            ids: plan
                .levels
                .iter()
                .map(|level| {
                    level
                        .steps
                        .iter()
                        .map(|step| MapKey::from(step.id.as_str()))
                        .collect()
                })
                .collect(),
            output: MapKey::from("output"),
        }
    }

    fn entry(&self, output: Value) -> Value {
        let mut entry = MapEntries::new();
        entry.insert(self.output.clone(), output);
        Value::map(entry)
    }

    /// The map of a frame of `level` whose steps have `outputs`, in step
    /// order.
    pub fn build<'v>(&self, level: LevelIx, outputs: impl Iterator<Item = &'v Value>) -> Value {
        let mut nodes = MapEntries::new();
        for (key, output) in self.ids[level as usize].iter().zip(outputs) {
            nodes.insert(key.clone(), self.entry(output.clone()));
        }
        Value::map(nodes)
    }

    /// Sets the entry of `step` in a map [`NodeKeys::build`] made.
    pub fn update(&self, nodes: &mut Value, level: LevelIx, step: StepIx, output: &Value) {
        let Some(key) = self
            .ids
            .get(level as usize)
            .and_then(|ids| ids.get(step as usize))
        else {
            return;
        };
        let Value::Map(entries) = nodes else {
            return;
        };
        let entry = self.entry(output.clone());
        let entries = std::sync::Arc::make_mut(entries);
        match entries.get_mut(key) {
            Some(slot) => *slot = entry,
            None => {
                entries.insert(key.clone(), entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::*;

    fn plan(ids: &[&str]) -> Plan {
        let step = |id: &str| StepDef {
            id: id.into(),
            kind: StepKind::Trigger { trigger: 0 },
            inputs: vec![],
            next: vec![],
            branches: vec![],
            default: None,
            retry: None,
            timeout_ms: None,
            predecessors: vec![],
            source: SourceRef::default(),
        };
        Plan {
            header: Header {
                format_version: FORMAT_VERSION,
                api_version: "workflow/v2".into(),
                name: "t".into(),
                version: None,
                project: None,
                requires: vec![],
            },
            constants: vec![],
            verbs: vec![],
            exprs: vec![],
            levels: vec![Level {
                name: "main".into(),
                inputs: vec![],
                outputs: vec![],
                triggers: vec![],
                steps: ids.iter().map(|id| step(id)).collect(),
            }],
            sources: vec![],
        }
    }

    #[test]
    fn updates_match_a_rebuild_and_leave_kept_copies_alone() {
        let keys = NodeKeys::new(&plan(&["b", "a", "c"]));
        let mut outputs = vec![Value::Null; 3];
        let mut nodes = keys.build(0, outputs.iter());
        assert_eq!(
            nodes.to_json(),
            serde_json::json!({"a": {"output": null}, "b": {"output": null}, "c": {"output": null}})
        );
        let kept = nodes.clone();
        for (step, output) in [
            (1, Value::Int(1)),
            (0, Value::string("x")),
            (1, Value::Null),
        ] {
            keys.update(&mut nodes, 0, step, &output);
            outputs[step as usize] = output;
            assert_eq!(nodes, keys.build(0, outputs.iter()));
        }
        assert_eq!(
            kept.to_json(),
            serde_json::json!({"a": {"output": null}, "b": {"output": null}, "c": {"output": null}}),
            "a copy taken before the updates does not see them"
        );
        // Out of range (a level or step the keys do not know): no change.
        let before = nodes.clone();
        keys.update(&mut nodes, 3, 0, &Value::Int(9));
        keys.update(&mut nodes, 0, 7, &Value::Int(9));
        assert_eq!(nodes, before);
    }
}
