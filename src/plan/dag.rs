//! [`Plan`]: the stages with validated ids and inputs, in a topological order found once at
//! construction (ties keep declaration order, so output is stable). It does not compute keys.

use super::error::PlanError;
use super::stage::{Stage, StageId};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A validated DAG of stages.
#[derive(Clone, Debug)]
pub struct Plan {
    stages: Vec<Stage>,
    index: HashMap<StageId, usize>,
    order: Vec<usize>,
    dependants: Vec<Vec<usize>>,
    /// Resolved external inputs (model ids and revisions, tokenizer, ...) recorded in the lockfile.
    pub resolved: BTreeMap<String, Value>,
}

impl Plan {
    /// Checks that ids are unique, inputs exist and there is no cycle.
    pub fn new(stages: Vec<Stage>) -> Result<Plan, PlanError> {
        let mut index = HashMap::new();
        for (i, s) in stages.iter().enumerate() {
            if index.insert(s.id.clone(), i).is_some() {
                return Err(PlanError::DuplicateStage { id: s.id.0.clone() });
            }
        }
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(stages.len());
        let mut dependants = vec![Vec::new(); stages.len()];
        for (i, s) in stages.iter().enumerate() {
            let mut d = Vec::new();
            for (slot, from) in &s.inputs {
                let Some(&j) = index.get(from) else {
                    return Err(PlanError::UnknownInput {
                        stage: s.id.0.clone(),
                        slot: slot.clone(),
                        missing: from.0.clone(),
                    });
                };
                if !d.contains(&j) {
                    d.push(j);
                    if let Some(list) = dependants.get_mut(j) {
                        list.push(i);
                    }
                }
            }
            deps.push(d);
        }
        let order = topo_order(&stages, &deps)?;
        Ok(Plan {
            stages,
            index,
            order,
            dependants,
            resolved: BTreeMap::new(),
        })
    }

    /// Records a resolved external input for the lockfile (e.g. `model.revision`).
    pub fn with_resolved(mut self, name: impl Into<String>, value: Value) -> Self {
        self.resolved.insert(name.into(), value);
        self
    }

    /// The stages in declaration order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The stage with this id.
    pub fn get(&self, id: &StageId) -> Option<&Stage> {
        self.index.get(id).and_then(|&i| self.stages.get(i))
    }

    /// The index of the stage with this id.
    pub fn index_of(&self, id: &StageId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Stage indices in a topological order (inputs first).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The stages in topological order.
    pub fn ordered(&self) -> impl Iterator<Item = &Stage> {
        self.order.iter().filter_map(|&i| self.stages.get(i))
    }

    /// Indices of the stages that read stage `i`'s output.
    pub fn dependants(&self, i: usize) -> &[usize] {
        self.dependants.get(i).map(Vec::as_slice).unwrap_or(&[])
    }

    /// `id`, checked to exist.
    pub fn require(&self, id: &str) -> Result<usize, PlanError> {
        self.index
            .get(&StageId::from(id))
            .copied()
            .ok_or_else(|| PlanError::NoSuchStage {
                id: id.to_owned(),
                known: self.stages.iter().map(|s| s.id.0.clone()).collect(),
            })
    }

    /// Indices of `roots` and every stage they (transitively) read, as a set.
    pub fn ancestors_of(&self, roots: &[usize]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if let Some(s) = self.stages.get(i) {
                stack.extend(
                    s.inputs
                        .values()
                        .filter_map(|id| self.index.get(id).copied()),
                );
            }
        }
        seen
    }
}

/// Kahn's algorithm, always taking the ready stage declared first; on a cycle, names one.
fn topo_order(stages: &[Stage], deps: &[Vec<usize>]) -> Result<Vec<usize>, PlanError> {
    let n = stages.len();
    let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| remaining.get(i) == Some(&0)).collect();
    let mut users = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            if let Some(u) = users.get_mut(j) {
                u.push(i);
            }
        }
    }
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in users.get(i).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(r) = remaining.get_mut(u) {
                *r -= 1;
                if *r == 0 {
                    ready.insert(u);
                }
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(PlanError::Cycle {
        cycle: find_cycle(stages, deps, &remaining),
    })
}

/// Walks inputs from a stage left unordered until one repeats: that loop is a cycle.
fn find_cycle(stages: &[Stage], deps: &[Vec<usize>], remaining: &[usize]) -> Vec<String> {
    let name = |i: usize| stages.get(i).map(|s| s.id.0.clone()).unwrap_or_default();
    let Some(start) = remaining.iter().position(|&r| r > 0) else {
        return Vec::new();
    };
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let next = deps.get(cur).and_then(|d| {
            d.iter()
                .copied()
                .find(|&j| remaining.get(j).is_some_and(|&r| r > 0))
        });
        let Some(next) = next else {
            return path.into_iter().map(name).collect();
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<String> = path
                .get(pos..)
                .unwrap_or(&[])
                .iter()
                .map(|&i| name(i))
                .collect();
            cycle.reverse();
            if let Some(first) = cycle.first().cloned() {
                cycle.push(first);
            }
            return cycle;
        }
        path.push(next);
        cur = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn s(id: &str, inputs: &[&str]) -> Stage {
        inputs
            .iter()
            .enumerate()
            .fold(Stage::new(id, "k", json!({})), |st, (i, from)| {
                st.input(format!("in{i}"), *from)
            })
    }

    #[test]
    fn order_puts_inputs_first_and_keeps_declaration_order_for_ties() {
        let plan = Plan::new(vec![
            s("c", &["a", "b"]),
            s("b", &[]),
            s("a", &[]),
            s("d", &[]),
        ]);
        let plan = plan.expect("valid plan");
        let ids: Vec<&str> = plan.ordered().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c", "d"]);
    }

    #[test]
    fn cycle_is_named() {
        let err = Plan::new(vec![
            s("a", &["c"]),
            s("b", &["a"]),
            s("c", &["b"]),
            s("x", &[]),
        ]);
        match err {
            Err(PlanError::Cycle { cycle }) => {
                assert_eq!(cycle.len(), 4);
                assert_eq!(cycle.first(), cycle.last());
                for id in ["a", "b", "c"] {
                    assert!(cycle.iter().any(|c| c == id), "{cycle:?}");
                }
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn unknown_input_and_duplicates_are_errors() {
        assert_eq!(
            Plan::new(vec![s("a", &["zz"])]).err(),
            Some(PlanError::UnknownInput {
                stage: "a".into(),
                slot: "in0".into(),
                missing: "zz".into()
            })
        );
        assert_eq!(
            Plan::new(vec![s("a", &[]), s("a", &[])]).err(),
            Some(PlanError::DuplicateStage { id: "a".into() })
        );
    }
}
