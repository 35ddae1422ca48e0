//! What the store remembers about how long steps take: the [`History`] the ETA starts from.

use std::collections::HashMap;
use std::time::Duration;

use sluice_engine::{Plan, RunRecord, Store};

use super::eta::History;

/// How many earlier succeeded runs are read: enough for a typical figure, few enough that a
/// large store does not slow the start of a run.
const RUNS_READ: usize = 5;
/// How many step records they may hold in all: a run of a 100,000-step plan starts without
/// reading half a million records first (its ETA then comes from this session's steps).
const RECORDS_READ: usize = 10_000;

/// Typical step durations in the newest succeeded runs other than `run_id`: medians by step id
/// and by kind. Empty when the store cannot say (a read error only costs the estimate).
pub fn load(store: &dyn Store, run_id: &str) -> History {
    let Ok(mut runs) = store.runs() else {
        return History::default();
    };
    runs.retain(|run| run.id != run_id && run.is_finished());
    runs.sort_by_key(|run| std::cmp::Reverse(run.created_at_ms));
    let mut by_step: HashMap<String, Vec<Duration>> = HashMap::new();
    let mut by_kind: HashMap<String, Vec<Duration>> = HashMap::new();
    let mut records_left = RECORDS_READ;
    for run in runs.iter().take(RUNS_READ) {
        let Ok(Some(plan)) = store.plan(&run.plan_digest) else {
            continue;
        };
        let Some(left) = records_left.checked_sub(plan.steps.len()) else {
            break;
        };
        records_left = left;
        for (step, kind, took) in durations(store, run, &plan) {
            by_kind.entry(kind).or_default().push(took);
            by_step.entry(step).or_default().push(took);
        }
    }
    History {
        by_step: medians(by_step),
        by_kind: medians(by_kind),
    }
}

/// (step id, kind, duration) of every step of `run` (of `plan`) that has both times.
fn durations(store: &dyn Store, run: &RunRecord, plan: &Plan) -> Vec<(String, String, Duration)> {
    let Ok(steps) = store.steps(&run.id) else {
        return Vec::new();
    };
    let kinds: HashMap<&str, &str> = plan
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.kind.as_str()))
        .collect();
    steps
        .into_iter()
        .filter_map(|record| {
            let took = record.finished_at_ms?.checked_sub(record.started_at_ms?)?;
            let kind = kinds.get(record.step_id.as_str())?.to_string();
            Some((record.step_id, kind, Duration::from_millis(took)))
        })
        .collect()
}

fn medians(samples: HashMap<String, Vec<Duration>>) -> HashMap<String, Duration> {
    samples
        .into_iter()
        .map(|(key, mut took)| {
            took.sort();
            let median = took[took.len() / 2];
            (key, median)
        })
        .collect()
}
