//! The time a run has left, estimated from how long its steps typically take.
//!
//! A step's typical duration is, in order: the median of the same step id in earlier succeeded
//! runs in the store, else the median of steps of the same kind there ([`History`]), else the
//! mean of the steps of the same kind finished in this session, else the mean of all steps
//! finished in this session. Until every step still to run has one, there is no estimate.
//!
//! The time left is the longer of the critical path (each step's remaining time after its
//! dependencies') and the remaining work spread over `--concurrency`. A step that failed ends
//! nothing but itself here: its descendants will not run in this session, so they count for
//! nothing. Pure: the caller says how long each running step has been at it.

use std::collections::HashMap;
use std::time::Duration;

use sluice_engine::dag::{self, StepGraph};
use sluice_engine::Plan;

/// Typical durations from earlier runs: by step id, and by kind.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub by_step: HashMap<String, Duration>,
    pub by_kind: HashMap<String, Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Standing {
    /// Still to run (or running) in this session.
    ToRun,
    Succeeded(Duration),
    Failed,
    /// Final before this session started (skipped when the run was made).
    Settled,
}

pub struct Estimator {
    graph: StepGraph,
    kinds: Vec<String>,
    /// The typical duration known before this session, per step.
    known: Vec<Option<Duration>>,
    standing: Vec<Standing>,
    concurrency: usize,
}

impl Estimator {
    /// `settled[i]`: step `i` will not run in this session. `None` for a plan whose graph
    /// cannot be built (it was validated, so never in practice).
    pub fn new(plan: &Plan, history: &History, settled: &[bool], concurrency: usize) -> Option<Self> {
        let ids: Vec<String> = plan.steps.iter().map(|s| s.id.clone()).collect();
        let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let deps: Vec<Vec<usize>> = plan
            .steps
            .iter()
            .map(|step| {
                (step.named_dependencies().iter())
                    .filter_map(|id| index.get(id.as_str()).copied())
                    .collect()
            })
            .collect();
        let graph = dag::build(&ids, &deps).ok()?;
        let kinds: Vec<String> = plan.steps.iter().map(|s| s.kind.clone()).collect();
        let known = plan
            .steps
            .iter()
            .map(|s| {
                (history
                    .by_step
                    .get(&s.id)
                    .or_else(|| history.by_kind.get(&s.kind)))
                .copied()
            })
            .collect();
        let standing = (0..ids.len())
            .map(|i| match settled.get(i) {
                Some(true) => Standing::Settled,
                _ => Standing::ToRun,
            })
            .collect();
        Some(Estimator {
            graph,
            kinds,
            known,
            standing,
            concurrency: concurrency.max(1),
        })
    }

    pub fn index_of(&self, step: &str) -> Option<usize> {
        self.graph.index_of(step)
    }

    /// Step `i` finished in this session, after `took`.
    pub fn finished(&mut self, i: usize, succeeded: bool, took: Duration) {
        self.standing[i] = if succeeded {
            Standing::Succeeded(took)
        } else {
            Standing::Failed
        };
    }

    pub fn total(&self) -> usize {
        self.standing.len()
    }

    /// The time left, given how long each running step has been at it; `None` while some step
    /// still to run has no typical duration.
    pub fn remaining(&self, running: &HashMap<usize, Duration>) -> Option<Duration> {
        let mut blocked = vec![false; self.total()];
        let mut finish = vec![Duration::ZERO; self.total()];
        let mut work = Duration::ZERO;
        let mut critical = Duration::ZERO;
        for i in self.graph.topological_order() {
            let deps = self.graph.dependencies(i);
            match self.standing[i] {
                Standing::Failed => blocked[i] = true,
                Standing::ToRun if deps.iter().any(|&d| blocked[d]) => blocked[i] = true,
                Standing::ToRun => {
                    let typical = self.typical(i)?;
                    let spent = running.get(&i).copied().unwrap_or_default();
                    let left = typical.saturating_sub(spent);
                    let start = deps.iter().map(|&d| finish[d]).max().unwrap_or_default();
                    finish[i] = start + left;
                    critical = critical.max(finish[i]);
                    work += left;
                }
                Standing::Succeeded(_) | Standing::Settled => {}
            }
        }
        Some(critical.max(work / self.concurrency as u32))
    }

    fn typical(&self, i: usize) -> Option<Duration> {
        self.known[i]
            .or_else(|| self.mean_here(|j| self.kinds[j] == self.kinds[i]))
            .or_else(|| self.mean_here(|_| true))
    }

    /// The mean duration of the steps that succeeded in this session and match `which`.
    fn mean_here(&self, which: impl Fn(usize) -> bool) -> Option<Duration> {
        let took: Vec<Duration> = (0..self.total())
            .filter(|&j| which(j))
            .filter_map(|j| match self.standing[j] {
                Standing::Succeeded(took) => Some(took),
                _ => None,
            })
            .collect();
        (!took.is_empty()).then(|| took.iter().sum::<Duration>() / took.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// a → b → c (c reads b's output), and d on its own; kinds k1 (a, b), k2 (c, d).
    fn plan() -> Plan {
        serde_json::from_value(json!({
            "name": "p",
            "steps": [
                { "id": "a", "kind": "k1" },
                { "id": "b", "kind": "k1", "after": ["a"] },
                { "id": "c", "kind": "k2", "with": { "x": "${steps.b.outputs.y}" } },
                { "id": "d", "kind": "k2" }
            ]
        }))
        .unwrap()
    }

    fn history(by_step: &[(&str, u64)], by_kind: &[(&str, u64)]) -> History {
        let map = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, s)| (k.to_string(), Duration::from_secs(*s)))
                .collect()
        };
        History {
            by_step: map(by_step),
            by_kind: map(by_kind),
        }
    }

    fn estimator(history: &History, settled: &[bool], concurrency: usize) -> Estimator {
        Estimator::new(&plan(), history, settled, concurrency).unwrap()
    }

    #[test]
    fn the_critical_path_of_typical_durations_bounds_a_wide_run() {
        let history = history(&[("a", 10), ("b", 20), ("c", 5)], &[("k2", 7)]);
        let estimate = estimator(&history, &[false; 4], 8);
        // a, b, c in a row: 35 s; d (7 s, by its kind) alongside.
        assert_eq!(estimate.remaining(&HashMap::new()), Some(35 * S));
        // a has been running 4 s of its 10.
        assert_eq!(estimate.remaining(&HashMap::from([(0, 4 * S)])), Some(31 * S));
        // Overdue: counts as about to finish, never negative.
        assert_eq!(estimate.remaining(&HashMap::from([(0, 60 * S)])), Some(25 * S));
    }

    #[test]
    fn one_at_a_time_the_whole_remaining_work_counts() {
        let history = history(&[("a", 10), ("b", 20), ("c", 5)], &[("k2", 7)]);
        assert_eq!(
            estimator(&history, &[false; 4], 1).remaining(&HashMap::new()),
            Some(42 * S)
        );
    }

    #[test]
    fn no_estimate_until_every_step_to_run_has_a_typical_duration() {
        let mut estimate = estimator(&History::default(), &[false, false, false, true], 8);
        assert_eq!(estimate.remaining(&HashMap::new()), None);
        // a took 6 s: b is of the same kind, c is given the mean of what finished.
        estimate.finished(0, true, 6 * S);
        assert_eq!(estimate.remaining(&HashMap::new()), Some(12 * S));
        estimate.finished(1, true, 2 * S);
        // c: no k2 finished yet; the mean of a and b (4 s).
        assert_eq!(estimate.remaining(&HashMap::new()), Some(4 * S));
    }

    #[test]
    fn steps_after_a_failure_count_for_nothing() {
        let history = history(&[("a", 10), ("b", 20), ("c", 5), ("d", 3)], &[]);
        let mut estimate = estimator(&history, &[false; 4], 8);
        estimate.finished(0, false, S);
        assert_eq!(estimate.remaining(&HashMap::new()), Some(3 * S));
    }
}
