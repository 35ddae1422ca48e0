//! Progress as plain lines (not a terminal, `NO_COLOR`, `--color never`): one line per step
//! state change, never one per poll, each prefixed with `[DONE/TOTAL]` (steps finished / steps
//! in the run). The grammar:
//!
//! ```text
//! run RUN: session 1, 20 steps
//! [2/20] STEP: applying: CHANGE SUMMARY            once per step (again only if the change differs)
//! [2/20] STEP: waiting on operation (PROGRESS)     once per operation
//! [2/20] STEP: attempt 1 failed (CLASS): MESSAGE; retrying in 50ms
//!                                                  again only when class or message differ
//! [3/20] STEP: done (changed; 7 retries)           or (no change), (skipped)
//! [3/20] STEP: FAILED: ERROR (2 retries)
//! ```

use std::collections::HashMap;

use sluice_engine::kind::OperationHandle;
use sluice_engine::{ErrorClass, Event, StepState};
use tokio::sync::mpsc;

use super::{human_duration, retries, waiting_text};
use crate::args::LogFormat;

/// Turns engine events into the plain lines (the module's grammar); pure, fed one event at a
/// time.
#[derive(Default)]
pub struct PlainLines {
    total: usize,
    done: usize,
    steps: HashMap<String, StepSaid>,
}

/// What was already said about one step, so that it is not said again.
#[derive(Default)]
struct StepSaid {
    change: Option<String>,
    operation: Option<OperationHandle>,
    retry: Option<(ErrorClass, String)>,
    retries: u32,
}

impl PlainLines {
    /// The line `event` calls for, if any.
    pub fn line(&mut self, event: &Event) -> Option<String> {
        let (step, text) = match event {
            Event::RunStarted {
                run_id,
                session,
                steps,
                settled,
            } => {
                // Steps that will not run in this session count as done from the start.
                self.total = *steps;
                self.done = settled.len();
                return Some(format!("run {run_id}: session {session}, {steps} steps"));
            }
            Event::StepInDoubt { step } => (
                step,
                "was applying when the last process stopped; observing first".to_string(),
            ),
            Event::StepApplying { step, change } => {
                let said = self.steps.entry(step.clone()).or_default();
                if said.change.as_ref() == Some(&change.summary) {
                    return None;
                }
                said.change = Some(change.summary.clone());
                (step, format!("applying: {}", change.summary))
            }
            Event::StepWaiting {
                step,
                progress,
                operation,
                ..
            } => {
                let said = self.steps.entry(step.clone()).or_default();
                if said.operation.as_ref() == Some(operation) {
                    return None;
                }
                said.operation = Some(operation.clone());
                (step, waiting_text(progress.as_deref()))
            }
            Event::StepRetrying {
                step,
                attempt,
                class,
                message,
                delay,
            } => {
                let said = self.steps.entry(step.clone()).or_default();
                said.retries += 1;
                let retry = (*class, message.clone());
                if said.retry.as_ref() == Some(&retry) {
                    return None;
                }
                said.retry = Some(retry);
                let text = format!(
                    "attempt {attempt} failed ({class}): {message}; retrying in {}",
                    human_duration(*delay)
                );
                (step, text)
            }
            Event::StepFinished {
                step,
                state,
                applied,
                error,
                ..
            } => {
                self.done += 1;
                let said = self.steps.remove(step).unwrap_or_default();
                (
                    step,
                    finished_text(*state, *applied, error.as_deref(), said.retries),
                )
            }
            _ => return None,
        };
        Some(format!("[{}/{}] {step}: {text}", self.done, self.total))
    }
}

/// How a finished step is told: `done (changed; 2 retries)`, `FAILED: ERROR (1 retry)`.
pub fn finished_text(state: StepState, applied: bool, error: Option<&str>, retry_count: u32) -> String {
    let retried = retries(retry_count);
    match (state, error) {
        (StepState::Failed, Some(error)) if retry_count > 0 => format!("FAILED: {error} ({retried})"),
        (StepState::Failed, Some(error)) => format!("FAILED: {error}"),
        (state, _) => {
            let how = match state {
                StepState::Succeeded if applied => "changed",
                StepState::Succeeded => "no change",
                other => other.as_str(),
            };
            if retry_count > 0 {
                format!("done ({how}; {retried})")
            } else {
                format!("done ({how})")
            }
        }
    }
}

/// Prints the plain lines of a run's events on stderr (human format); JSON logs come from
/// tracing instead.
pub async fn print(mut events: mpsc::UnboundedReceiver<Event>, format: LogFormat) {
    let mut lines = PlainLines::default();
    while let Some(event) = events.recv().await {
        if format == LogFormat::Json {
            continue;
        }
        if let Some(line) = lines.line(&event) {
            errln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use sluice_engine::kind::Change;

    use super::*;

    fn applying(step: &str, summary: &str) -> Event {
        Event::StepApplying {
            step: step.into(),
            change: Change::create(summary),
        }
    }

    fn waiting(step: &str, poll: u32, operation: &str, progress: Option<&str>) -> Event {
        Event::StepWaiting {
            step: step.into(),
            poll,
            progress: progress.map(String::from),
            operation: OperationHandle(json!({ "name": operation })),
        }
    }

    fn retrying(step: &str, attempt: u32, message: &str) -> Event {
        Event::StepRetrying {
            step: step.into(),
            attempt,
            class: ErrorClass::NotYet,
            message: message.into(),
            delay: Duration::from_millis(50 * u64::from(attempt)),
        }
    }

    fn finished(step: &str, state: StepState, applied: bool, error: Option<&str>) -> Event {
        Event::StepFinished {
            step: step.into(),
            state,
            applied,
            outputs: Default::default(),
            error: error.map(String::from),
        }
    }

    fn lines_of(events: &[Event]) -> Vec<String> {
        let mut lines = PlainLines::default();
        events.iter().filter_map(|event| lines.line(event)).collect()
    }

    fn started(steps: usize) -> Event {
        started_with(steps, &[])
    }

    /// A session of `steps` steps, `settled` of them skipped when the run was made.
    fn started_with(steps: usize, settled: &[&str]) -> Event {
        Event::RunStarted {
            run_id: "r1".into(),
            session: 1,
            steps,
            settled: settled.iter().map(|id| id.to_string()).collect(),
        }
    }

    #[test]
    fn a_retried_apply_is_said_once_and_its_retries_are_counted_in_the_done_line() {
        let mut events = vec![started(3)];
        for attempt in 1..=7 {
            events.push(applying("gateway", "create gateway g"));
            events.push(retrying("gateway", attempt, "networkservices is not usable yet"));
        }
        events.push(applying("gateway", "create gateway g"));
        events.push(finished("gateway", StepState::Succeeded, true, None));
        assert_eq!(
            lines_of(&events),
            [
                "run r1: session 1, 3 steps",
                "[0/3] gateway: applying: create gateway g",
                "[0/3] gateway: attempt 1 failed (not_yet): networkservices is not usable yet; retrying in 50ms",
                "[1/3] gateway: done (changed; 7 retries)",
            ]
        );
    }

    #[test]
    fn waiting_is_said_once_per_operation_not_per_poll() {
        let events = [
            started(2),
            waiting("apis", 1, "op-1", Some("create: op-1")),
            waiting("apis", 2, "op-1", Some("create: op-1")),
            waiting("apis", 3, "op-1", Some("create: op-1")),
            retrying("apis", 1, "operation failed"),
            waiting("apis", 4, "op-2", Some("create: op-2")),
            waiting("apis", 5, "op-2", Some("create: op-2")),
            finished("apis", StepState::Succeeded, true, None),
        ];
        assert_eq!(
            lines_of(&events),
            [
                "run r1: session 1, 2 steps",
                "[0/2] apis: waiting on operation (create: op-1)",
                "[0/2] apis: attempt 1 failed (not_yet): operation failed; retrying in 50ms",
                "[0/2] apis: waiting on operation (create: op-2)",
                "[1/2] apis: done (changed; 1 retry)",
            ]
        );
    }

    #[test]
    fn a_different_retry_message_or_change_is_said_again() {
        let events = [
            started(1),
            applying("role", "create role r"),
            retrying("role", 1, "iam not usable yet"),
            retrying("role", 2, "iam not usable yet"),
            retrying("role", 3, "quota exceeded"),
            retrying("role", 4, "iam not usable yet"),
            applying("role", "update role r"),
            finished("role", StepState::Failed, true, Some("permission denied")),
        ];
        let lines = lines_of(&events);
        assert_eq!(lines.len(), 7, "{lines:#?}");
        assert!(lines[3].contains("attempt 3 failed (not_yet): quota exceeded"));
        assert!(lines[4].contains("attempt 4 failed (not_yet): iam not usable yet"));
        assert_eq!(lines[5], "[0/1] role: applying: update role r");
        assert_eq!(lines[6], "[1/1] role: FAILED: permission denied (4 retries)");
    }

    #[test]
    fn the_counter_starts_from_the_steps_already_settled_and_counts_every_ending() {
        let events = [
            started_with(4, &["z"]),
            finished("a", StepState::Succeeded, false, None),
            finished("b", StepState::Skipped, false, None),
            finished("c", StepState::Failed, false, Some("boom")),
        ];
        assert_eq!(
            lines_of(&events),
            [
                "run r1: session 1, 4 steps",
                "[2/4] a: done (no change)",
                "[3/4] b: done (skipped)",
                "[4/4] c: FAILED: boom",
            ]
        );
    }
}
