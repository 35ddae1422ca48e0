//! A run's progress on stderr, from the engine's events. On a terminal that allows escape
//! sequences (`crate::styling`): live lines redrawn by indicatif, under a header with steps
//! done / total, elapsed time and an ETA (`live`, `eta`, `history`). Otherwise (a pipe, a log
//! file, `NO_COLOR`, `--color never`): one plain line per step state change (`plain`).

mod eta;
mod history;
mod live;
mod plain;

use sluice_engine::{Engine, Event};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::args::LogFormat;

/// Starts printing the progress of `run_id`'s session from `events`, in the form stderr allows.
pub fn spawn(
    events: mpsc::UnboundedReceiver<Event>,
    format: LogFormat,
    engine: &Engine,
    run_id: &str,
) -> JoinHandle<()> {
    if format == LogFormat::Human && crate::styling::stderr().live {
        let store = engine.store().as_ref();
        let plan = store
            .run(run_id)
            .ok()
            .flatten()
            .and_then(|run| store.plan(&run.plan_digest).ok().flatten());
        let eta = plan.map(|plan| live::EtaInputs {
            plan,
            history: history::load(store, run_id),
            concurrency: engine.config().concurrency,
        });
        tokio::spawn(live::show(events, eta))
    } else {
        tokio::spawn(plain::print(events, format))
    }
}

/// What a step waiting on an operation is doing, from the kind's progress text: that text when
/// it says so itself ("waiting for the effective policy …"), else `waiting on operation (…)`.
fn waiting_text(progress: Option<&str>) -> String {
    match progress {
        Some(text) if text.starts_with("waiting") => text.to_string(),
        Some(text) => format!("waiting on operation ({text})"),
        None => "waiting on an operation".to_string(),
    }
}

/// `1 retry`, `3 retries`.
fn retries(count: u32) -> String {
    match count {
        1 => "1 retry".into(),
        n => format!("{n} retries"),
    }
}

fn human_duration(duration: std::time::Duration) -> String {
    crate::output::human_duration(duration)
}

/// Step ids, kinds, changes and errors come from plans and servers: escaped before drawing.
pub fn safe(text: String) -> String {
    // Most text needs no escape: keep it rather than copy it.
    let escaped = match crate::output::clean(&text) {
        std::borrow::Cow::Owned(escaped) => Some(escaped),
        std::borrow::Cow::Borrowed(_) => None,
    };
    escaped.unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_is_never_said_twice() {
        assert_eq!(
            waiting_text(Some("waiting for Agent Runtime's automatic registration of e1")),
            "waiting for Agent Runtime's automatic registration of e1"
        );
        assert_eq!(
            waiting_text(Some("create: operations/op-1")),
            "waiting on operation (create: operations/op-1)"
        );
        assert_eq!(waiting_text(None), "waiting on an operation");
    }
}
