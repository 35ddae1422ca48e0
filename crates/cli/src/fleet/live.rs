//! Fleet progress. On a terminal: an overall line (targets done / total, in flight, failed,
//! ETA) and a line per active target, redrawn by indicatif. Otherwise: one line per target
//! state change (started, succeeded, failed, interrupted), never one per poll.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_engine::{Event, FleetEvent, TargetOutcome, TargetState};
use tokio::sync::mpsc;

use crate::progress::safe;

/// Done / in flight / failed, and an estimate of the time left.
struct Tally {
    total: usize,
    done: usize,
    /// Finished in this session: what the ETA is computed from (a resumed fleet's earlier
    /// sessions took their own time).
    done_here: usize,
    failed: usize,
    in_flight: usize,
    started: Instant,
}

impl Tally {
    fn line(&self) -> String {
        let eta = if self.done_here == 0 {
            "ETA -".to_string()
        } else {
            // The average time per target finished in this session predicts the rest.
            let per_target = self.started.elapsed().as_secs_f64() / self.done_here as f64;
            let left = self.total.saturating_sub(self.done) as f64 * per_target;
            format!("ETA {}", short(Duration::from_secs_f64(left)))
        };
        format!(
            "targets {}/{} done · {} in flight · {} failed · {eta}",
            self.done, self.total, self.in_flight, self.failed
        )
    }
}

/// A duration in whole seconds, minutes or hours (`42s`, `3m05s`, `1h02m`), for estimates.
pub(crate) fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}

/// How a finished target is told in one line.
pub fn finished_line(outcome: &TargetOutcome, position: &str) -> String {
    let name = &outcome.name;
    match outcome.state {
        TargetState::Succeeded if outcome.changes.is_empty() => {
            format!("{position} {name}: succeeded (already converged)")
        }
        TargetState::Succeeded => format!(
            "{position} {name}: succeeded ({} change{})",
            outcome.changes.len(),
            if outcome.changes.len() == 1 { "" } else { "s" }
        ),
        TargetState::Failed => match &outcome.failure {
            Some(f) => format!(
                "{position} {name}: FAILED at {}: {}",
                f.step.as_deref().unwrap_or("start"),
                f.message
            ),
            None => format!("{position} {name}: FAILED"),
        },
        other => format!("{position} {name}: {}", other.as_str()),
    }
}

/// Plain lines, one per target state change.
pub async fn print_plain(mut events: mpsc::UnboundedReceiver<FleetEvent>, total: usize, already_done: usize) {
    let mut done = already_done;
    while let Some(event) = events.recv().await {
        match event {
            FleetEvent::TargetStarted {
                index,
                name,
                run_id,
                continued,
            } => {
                let how = if continued { "continuing run" } else { "new run" };
                errln!("[{}/{total}] {name}: started ({how} {run_id})", index + 1);
            }
            FleetEvent::TargetFinished { outcome } => {
                done += 1;
                errln!(
                    "{}",
                    finished_line(
                        &outcome,
                        &format!("[{}/{total}] ({done} done)", outcome.index + 1)
                    )
                );
            }
            _ => {}
        }
    }
}

/// Live lines on a terminal.
pub async fn show(mut events: mpsc::UnboundedReceiver<FleetEvent>, total: usize, already_done: usize) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let overall = multi.add(ProgressBar::new_spinner());
    overall.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>5} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    overall.enable_steady_tick(Duration::from_millis(200));
    let style = ProgressStyle::with_template("  {prefix:<30} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut tally = Tally {
        total,
        done: already_done,
        done_here: 0,
        failed: 0,
        in_flight: 0,
        started: Instant::now(),
    };
    overall.set_message(tally.line());
    let mut lines: HashMap<usize, ProgressBar> = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            FleetEvent::TargetStarted { index, name, .. } => {
                tally.in_flight += 1;
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(safe(name));
                bar.set_message("starting");
                lines.insert(index, bar);
            }
            FleetEvent::Step { index, event } => {
                if let Some(bar) = lines.get(&index) {
                    if let Some(message) = step_message(&event) {
                        bar.set_message(safe(message));
                    }
                }
            }
            FleetEvent::TargetFinished { outcome } => {
                tally.done += 1;
                tally.done_here += 1;
                if let Some(bar) = lines.remove(&outcome.index) {
                    tally.in_flight = tally.in_flight.saturating_sub(1);
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                if outcome.state == TargetState::Failed {
                    tally.failed += 1;
                }
                let position = format!("[{}/{}]", outcome.index + 1, tally.total);
                let _ = multi.println(safe(finished_line(&outcome, &position)));
            }
            _ => {}
        }
        overall.set_message(tally.line());
    }
    overall.finish_and_clear();
}

fn step_message(event: &Event) -> Option<String> {
    Some(match event {
        Event::StepStarted { step, .. } => format!("{step}: observing"),
        Event::StepApplying { step, change } => format!("{step}: {}", change.summary),
        Event::StepWaiting { step, poll, .. } => format!("{step}: waiting (poll {poll})"),
        Event::StepRetrying {
            step, attempt, class, ..
        } => format!("{step}: retrying ({class}, attempt {attempt})"),
        _ => return None,
    })
}
