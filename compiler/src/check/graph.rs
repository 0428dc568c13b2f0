//! Topology of one workflow level: ids, edges, cycles, reachability, and
//! the facts null analysis needs (who runs before whom, who always runs).

use std::collections::HashMap;

use donmai_grammar::ast::{Ident, Step, StepType, Workflow};
use donmai_grammar::diagnostic::did_you_mean;
use donmai_grammar::yaml::scalar_source;
use donmai_grammar::{Code, Diagnostic};
use petgraph::algo::{dominators, tarjan_scc};
use petgraph::graph::{DiGraph, NodeIndex};

/// A bit set over step indices.
#[derive(Clone, Debug, Default)]
pub struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    pub fn with_len(len: usize) -> BitSet {
        BitSet {
            words: vec![0; len.div_ceil(64)],
        }
    }

    pub fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

#[derive(Clone)]
pub struct Topology {
    /// Step id → index of its first definition.
    pub index: HashMap<String, usize>,
    /// Successor indices of each step (unknown targets left out).
    pub successors: Vec<Vec<usize>>,
    pub predecessors: Vec<Vec<usize>>,
    /// Steps that start a run: `type: trigger`.
    pub entries: Vec<usize>,
    /// Position of each step in a topological order (`None` with a cycle):
    /// a step can only reach steps after it.
    order_position: Option<Vec<usize>>,
    /// The entry steps that reach each step, as bits over positions in
    /// `entries`: `reach_words` words per step, in one vector. A list per
    /// step grew with the square of the steps when many triggers feed a
    /// long chain (5,000 trigger steps into 5,000 steps took 300 MB).
    reach: Vec<u64>,
    reach_words: usize,
    /// Dominator-tree intervals: `a` dominates `b` iff `dom_in[a] <= dom_in[b]`
    /// and `dom_out[b] <= dom_out[a]`. Unreachable steps get empty intervals.
    dom_in: Vec<u32>,
    dom_out: Vec<u32>,
}

impl Topology {
    pub fn step(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// The entries reaching step `n`, as bits over positions in `entries`.
    pub fn reached_by(&self, n: usize) -> &[u64] {
        &self.reach[n * self.reach_words..(n + 1) * self.reach_words]
    }

    /// Whether some trigger reaches step `n`.
    pub fn is_reached(&self, n: usize) -> bool {
        self.reached_by(n).iter().any(|&word| word != 0)
    }

    /// The entry steps reaching step `n`, in the order of `entries`.
    pub fn reaching_entries(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.reached_by(n)
            .iter()
            .enumerate()
            .flat_map(|(w, &word)| {
                (0..64)
                    .filter(move |bit| word & (1 << bit) != 0)
                    .map(move |bit| w * 64 + bit)
            })
            .map(|k| self.entries[k])
    }

    /// Whether `ancestor` has a path to `of`. Dominators and the topological
    /// order answer most queries at once; the rest search backwards from
    /// `of`, pruned to steps ordered after `ancestor`. This keeps memory
    /// linear in the steps, where a table of all ancestors is quadratic.
    pub fn is_ancestor(&self, ancestor: usize, of: usize) -> bool {
        if ancestor == of {
            return false;
        }
        if self.dominates(ancestor, of) {
            return true;
        }
        let position = self.order_position.as_deref();
        if let Some(position) = position
            && position[ancestor] >= position[of]
        {
            return false;
        }
        let mut seen = BitSet::with_len(self.predecessors.len());
        let mut stack = vec![of];
        seen.insert(of);
        while let Some(n) = stack.pop() {
            for &p in &self.predecessors[n] {
                if p == ancestor {
                    return true;
                }
                let worth_visiting = position.is_none_or(|pos| pos[p] > pos[ancestor]);
                if worth_visiting && !seen.contains(p) {
                    seen.insert(p);
                    stack.push(p);
                }
            }
        }
        false
    }

    /// Every step with a path to `of`, in one backward search: what
    /// [`Topology::is_ancestor`] answers for all steps at once.
    pub fn ancestors(&self, of: usize) -> BitSet {
        let mut seen = BitSet::with_len(self.predecessors.len());
        let mut stack = vec![of];
        while let Some(n) = stack.pop() {
            for &p in &self.predecessors[n] {
                if !seen.contains(p) {
                    seen.insert(p);
                    stack.push(p);
                }
            }
        }
        seen
    }

    /// Whether step `j` has succeeded whenever position `index` is reached;
    /// `index == steps` stands for the end of the run, reached through every
    /// reachable sink.
    pub fn always_ran(&self, j: usize, index: usize) -> bool {
        let steps = self.successors.len();
        if index < steps {
            return self.dominates(j, index);
        }
        let mut sinks = (0..steps)
            .filter(|&s| self.successors[s].is_empty() && self.is_reached(s))
            .peekable();
        sinks.peek().is_some() && sinks.all(|s| self.dominates(j, s))
    }

    /// Whether every path from a trigger to `node` passes through `by`: then
    /// `by` has succeeded whenever `node` runs.
    pub fn dominates(&self, by: usize, node: usize) -> bool {
        self.dom_in[by] != u32::MAX
            && self.dom_in[by] <= self.dom_in[node]
            && self.dom_out[node] <= self.dom_out[by]
            && self.dom_in[node] != u32::MAX
    }

    pub fn build(workflow: &Workflow, diagnostics: &mut Vec<Diagnostic>) -> Topology {
        let steps = &workflow.steps;
        let mut index: HashMap<String, usize> = HashMap::with_capacity(steps.len());
        for (i, step) in steps.iter().enumerate() {
            if let Some(&first) = index.get(&step.id.value) {
                diagnostics.push(
                    Diagnostic::new(
                        Code::DUPLICATE_ID,
                        step.id.span,
                        format!("step id `{}` is used twice", step.id.value),
                    )
                    .with_label(steps[first].id.span, "first defined here"),
                );
            } else {
                index.insert(step.id.value.clone(), i);
            }
        }
        let mut successors = vec![Vec::new(); steps.len()];
        let mut predecessors = vec![Vec::new(); steps.len()];
        for (i, step) in steps.iter().enumerate() {
            for target in step.successors() {
                match index.get(&target.value) {
                    Some(&t) => {
                        if !successors[i].contains(&t) {
                            successors[i].push(t);
                            predecessors[t].push(i);
                        }
                    }
                    None if workflow
                        .dropped_steps
                        .iter()
                        .any(|d| d.value == target.value) => {}
                    None => diagnostics.push(unknown_step(target, steps)),
                }
            }
        }
        let entries: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.ty.value == StepType::Trigger)
            .map(|(i, _)| i)
            .collect();
        for &entry in &entries {
            if let Some(&pred) = predecessors[entry].first() {
                diagnostics.push(
                    Diagnostic::new(
                        Code::CYCLE,
                        steps[entry].id.span,
                        format!(
                            "trigger step `{}` cannot have a predecessor",
                            steps[entry].id.value
                        ),
                    )
                    .with_label(steps[pred].id.span, "this step continues into it")
                    .with_help("a trigger step only starts runs; route to the step after it"),
                );
            }
        }

        let mut graph: DiGraph<(), ()> = DiGraph::with_capacity(steps.len() + 1, steps.len());
        for _ in 0..=steps.len() {
            graph.add_node(());
        }
        for (i, succ) in successors.iter().enumerate() {
            for &t in succ {
                graph.add_edge(NodeIndex::new(i), NodeIndex::new(t), ());
            }
        }
        let mut has_cycle = false;
        for component in tarjan_scc(&graph) {
            if component.iter().any(|n| n.index() >= steps.len()) {
                continue; // the virtual root, not yet connected
            }
            let is_cycle = component.len() > 1
                || component
                    .first()
                    .is_some_and(|&n| successors[n.index()].contains(&n.index()));
            if !is_cycle {
                continue;
            }
            has_cycle = true;
            let mut members: Vec<usize> = component.iter().map(|n| n.index()).collect();
            members.sort_unstable();
            let first = members[0];
            let names: Vec<String> = members
                .iter()
                .map(|&m| format!("`{}`", steps[m].id.value))
                .collect();
            let mut diagnostic = Diagnostic::new(
                Code::CYCLE,
                steps[first].id.span,
                format!("these steps form a cycle: {}", names.join(" → ")),
            )
            .with_help("each level is a DAG: use `type: loop` for bounded repetition");
            for &m in &members[1..] {
                diagnostic = diagnostic.with_label(steps[m].id.span, "part of the cycle");
            }
            diagnostics.push(diagnostic);
        }

        // Reachability and the reaching triggers, in topological order when
        // there is no cycle, else by plain search.
        let order = if has_cycle {
            None
        } else {
            topological_order(&successors, &predecessors)
        };
        let reach_words = entries.len().div_ceil(64);
        let mut reach = vec![0u64; steps.len() * reach_words];
        for (k, &entry) in entries.iter().enumerate() {
            reach[entry * reach_words + k / 64] |= 1 << (k % 64);
        }
        match &order {
            // Each step passes what reaches it on to its successors, which
            // come later in the order: one pass, a few words per edge.
            Some(order) => {
                let mut row = vec![0u64; reach_words];
                for &n in order {
                    row.copy_from_slice(&reach[n * reach_words..(n + 1) * reach_words]);
                    for &s in &successors[n] {
                        let target = &mut reach[s * reach_words..(s + 1) * reach_words];
                        for (word, &bits) in target.iter_mut().zip(&row) {
                            *word |= bits;
                        }
                    }
                }
            }
            // With a cycle (already an error) a search from each entry.
            None => {
                for (k, &entry) in entries.iter().enumerate() {
                    let mut stack = vec![entry];
                    let mut seen = BitSet::with_len(steps.len());
                    seen.insert(entry);
                    while let Some(n) = stack.pop() {
                        reach[n * reach_words + k / 64] |= 1 << (k % 64);
                        for &s in &successors[n] {
                            if !seen.contains(s) {
                                seen.insert(s);
                                stack.push(s);
                            }
                        }
                    }
                }
            }
        }
        let order_position = order.map(|order| {
            let mut position = vec![0; order.len()];
            for (i, &n) in order.iter().enumerate() {
                position[n] = i;
            }
            position
        });

        // Dominators from a virtual root feeding every trigger step.
        let root = NodeIndex::new(steps.len());
        for &entry in &entries {
            graph.add_edge(root, NodeIndex::new(entry), ());
        }
        let doms = dominators::simple_fast(&graph, root);
        let mut children = vec![Vec::new(); steps.len() + 1];
        for n in 0..steps.len() {
            if let Some(idom) = doms.immediate_dominator(NodeIndex::new(n)) {
                children[idom.index()].push(n);
            }
        }
        let mut dom_in = vec![u32::MAX; steps.len() + 1];
        let mut dom_out = vec![0; steps.len() + 1];
        let mut clock = 0u32;
        let mut stack = vec![(steps.len(), false)];
        while let Some((n, done)) = stack.pop() {
            if done {
                dom_out[n] = clock;
                clock += 1;
                continue;
            }
            dom_in[n] = clock;
            clock += 1;
            stack.push((n, true));
            stack.extend(children[n].iter().map(|&c| (c, false)));
        }

        let topology = Topology {
            index,
            successors,
            predecessors,
            entries,
            order_position,
            reach,
            reach_words,
            dom_in,
            dom_out,
        };
        topology.report_unreachable(workflow, diagnostics);
        topology
    }

    fn report_unreachable(&self, workflow: &Workflow, diagnostics: &mut Vec<Diagnostic>) {
        let steps = &workflow.steps;
        if self.entries.is_empty() {
            if !steps.is_empty() {
                diagnostics.push(
                    Diagnostic::new(
                        Code::UNREACHABLE_STEP,
                        workflow.steps_span,
                        "no step has `type: trigger`, so nothing here can ever run",
                    )
                    .with_help("start the steps with `{id: start, type: trigger, config: {triggerId: <trigger id>}}`"),
                );
            }
            return;
        }
        for (i, step) in steps.iter().enumerate() {
            if self.index.get(&step.id.value) != Some(&i) {
                continue; // a duplicate, reported already
            }
            if !self.is_reached(i) {
                diagnostics.push(
                    Diagnostic::new(
                        Code::UNREACHABLE_STEP,
                        step.id.span,
                        format!(
                            "step `{}` cannot be reached from any trigger",
                            step.id.value
                        ),
                    )
                    .with_help("add it to the `next` or `branches` of a step that runs before it"),
                );
            }
        }
    }
}

fn unknown_step(target: &Ident, steps: &[Step]) -> Diagnostic {
    let mut diagnostic = Diagnostic::new(
        Code::UNKNOWN_STEP,
        target.span,
        format!("there is no step `{}`", target.value),
    );
    if let Some(suggestion) = did_you_mean(&target.value, steps.iter().map(|s| s.id.value.as_str()))
    {
        diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        // A target may be part of a scalar (`onTimeout: branch:<id>`), so
        // only a name that needs no quoting can be written in its place.
        if scalar_source(suggestion) == suggestion {
            diagnostic =
                diagnostic.with_replacement(format!("use `{suggestion}`"), target.span, suggestion);
        }
    }
    diagnostic
}

fn topological_order(successors: &[Vec<usize>], predecessors: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut indegree: Vec<usize> = predecessors.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..successors.len())
        .filter(|&n| indegree[n] == 0)
        .collect();
    let mut order = Vec::with_capacity(successors.len());
    while let Some(n) = ready.pop() {
        order.push(n);
        for &s in &successors[n] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.push(s);
            }
        }
    }
    (order.len() == successors.len()).then_some(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use donmai_grammar::lower::parse_workflow;
    use proptest::prelude::*;

    /// A workflow of `steps` steps, the first `triggers` of them trigger
    /// steps, with the given edges.
    fn workflow(steps: usize, triggers: usize, edges: &[(usize, usize)]) -> Workflow {
        let mut text = String::from("apiVersion: workflow/v2\nspec:\n  steps:\n");
        for i in 0..steps {
            let ty = if i < triggers { "trigger" } else { "action" };
            let next: Vec<String> = edges
                .iter()
                .filter(|(from, _)| *from == i)
                .map(|(_, to)| format!("s{to}"))
                .collect();
            text.push_str(&format!(
                "    - {{id: s{i}, type: {ty}, next: [{}]}}\n",
                next.join(", ")
            ));
        }
        parse_workflow(&text).workflow.expect("a workflow")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The reaching triggers found by propagation (or, with a cycle, by
        /// search) are those a search from each trigger finds.
        #[test]
        fn reaching_triggers_are_those_with_a_path(
            steps in 1usize..100,
            triggers in 0usize..100,
            edges in prop::collection::vec((0usize..100, 0usize..100), 0..200),
        ) {
            let triggers = triggers.min(steps);
            let edges: Vec<(usize, usize)> = edges
                .into_iter()
                .map(|(a, b)| (a % steps, b % steps))
                .collect();
            let workflow = workflow(steps, triggers, &edges);
            let topology = Topology::build(&workflow, &mut Vec::new());
            prop_assert_eq!(&topology.entries, &(0..triggers).collect::<Vec<_>>());
            for n in 0..steps {
                let expected: Vec<usize> = (0..triggers)
                    .filter(|&t| {
                        let mut seen = vec![false; steps];
                        let mut stack = vec![t];
                        seen[t] = true;
                        while let Some(m) = stack.pop() {
                            if m == n {
                                return true;
                            }
                            for &(from, to) in &edges {
                                if from == m && !seen[to] {
                                    seen[to] = true;
                                    stack.push(to);
                                }
                            }
                        }
                        false
                    })
                    .collect();
                let found: Vec<usize> = topology.reaching_entries(n).collect();
                prop_assert_eq!(&found, &expected, "step {}", n);
                prop_assert_eq!(topology.is_reached(n), !expected.is_empty());
            }
        }
    }

    /// Thousands of trigger steps feeding a chain: the reaching sets take a
    /// bit per trigger and step, not a list entry (this took 300 MB).
    #[test]
    fn many_triggers_take_a_bit_per_trigger_and_step() {
        let triggers = 3000;
        let steps = 2 * triggers;
        let edges: Vec<(usize, usize)> = (0..triggers)
            .map(|t| (t, triggers + t))
            .chain((triggers..steps - 1).map(|c| (c, c + 1)))
            .collect();
        let workflow = workflow(steps, triggers, &edges);
        let topology = Topology::build(&workflow, &mut Vec::new());
        assert_eq!(topology.reach.len(), steps * triggers.div_ceil(64));
        assert_eq!(topology.reaching_entries(steps - 1).count(), triggers);
        assert_eq!(topology.reaching_entries(triggers).count(), 1);
    }
}
