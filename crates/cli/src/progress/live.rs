//! Live progress on a terminal: a header (steps done / total, elapsed time, ETA) over one line
//! per active step (state, elapsed time, the operation it waits on, retries), redrawn by
//! indicatif; finished steps print once above the live lines, ✓ green and ✗ red.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_engine::{Event, Plan, StepState};
use tokio::sync::mpsc;

use super::eta::{Estimator, History};
use super::plain::finished_text;
use super::{human_duration, retries, safe, waiting_text};
use crate::fleet::live::short;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// How often the header's elapsed time and ETA are refreshed between events.
const HEADER_REFRESH: Duration = Duration::from_secs(1);

struct Line {
    bar: ProgressBar,
    retries: u32,
}

/// Steps done / total and the estimate of the time left, for the header.
struct Header {
    bar: ProgressBar,
    started: Instant,
    total: usize,
    done: usize,
    estimator: Option<Estimator>,
}

impl Header {
    fn refresh(&self, lines: &HashMap<String, Line>) {
        let running: HashMap<usize, Duration> = match &self.estimator {
            Some(estimator) => (lines.iter())
                .filter_map(|(step, line)| Some((estimator.index_of(step)?, line.bar.elapsed())))
                .collect(),
            None => HashMap::new(),
        };
        let eta = (self.estimator.as_ref())
            .and_then(|estimator| estimator.remaining(&running))
            .map(|left| format!(" · ETA {}", short(left)))
            .unwrap_or_default();
        self.bar.set_message(format!(
            "[{}/{}] steps done · {} elapsed{eta}",
            self.done,
            self.total,
            short(self.started.elapsed())
        ));
    }

    fn finished(&mut self, step: &str, succeeded: bool, took: Duration) {
        self.done += 1;
        if let Some(estimator) = &mut self.estimator {
            if let Some(i) = estimator.index_of(step) {
                estimator.finished(i, succeeded, took);
            }
        }
    }
}

/// `, 2 retries` after a step's figures, or nothing.
fn retried(count: u32) -> String {
    match count {
        0 => String::new(),
        n => format!(", {}", retries(n)),
    }
}

/// What the ETA is estimated from, once the session says which steps are settled already.
pub struct EtaInputs {
    pub plan: Plan,
    pub history: History,
    pub concurrency: usize,
}

pub async fn show(mut events: mpsc::UnboundedReceiver<Event>, eta: Option<EtaInputs>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let header_style =
        ProgressStyle::with_template("{wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut header = Header {
        bar: multi.add(ProgressBar::new_spinner().with_style(header_style)),
        started: Instant::now(),
        total: 0,
        done: 0,
        estimator: None,
    };
    let mut lines: HashMap<String, Line> = HashMap::new();
    let mut refresh = tokio::time::interval(HEADER_REFRESH);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = refresh.tick() => {
                header.refresh(&lines);
                continue;
            }
        };
        match event {
            Event::RunStarted {
                run_id,
                session,
                steps,
                settled,
            } => {
                // Steps that will not run in this session count as done from the start.
                header.total = steps;
                header.done = settled.len();
                header.estimator = eta.as_ref().and_then(|eta| {
                    let settled: Vec<bool> =
                        (eta.plan.steps.iter()).map(|s| settled.contains(&s.id)).collect();
                    Estimator::new(&eta.plan, &eta.history, &settled, eta.concurrency)
                });
                let _ = multi.println(safe(format!("run {run_id}: session {session}, {steps} steps")));
            }
            Event::StepStarted { step, kind } => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(safe(step.clone()));
                bar.set_message(safe(format!("observing ({kind})")));
                bar.enable_steady_tick(Duration::from_millis(120));
                lines.insert(step, Line { bar, retries: 0 });
            }
            Event::StepInDoubt { step } => {
                if let Some(line) = lines.get(&step) {
                    line.bar
                        .set_message("was applying when the last process stopped: observing first");
                }
            }
            Event::StepApplying { step, change } => {
                if let Some(line) = lines.get(&step) {
                    line.bar
                        .set_message(safe(format!("applying: {}", change.summary)));
                }
            }
            Event::StepWaiting {
                step, poll, progress, ..
            } => {
                if let Some(line) = lines.get(&step) {
                    line.bar.set_message(safe(format!(
                        "{} · poll {poll}{}",
                        waiting_text(progress.as_deref()),
                        retried(line.retries)
                    )));
                }
            }
            Event::StepRetrying {
                step,
                attempt,
                class,
                message,
                ..
            } => {
                if let Some(line) = lines.get_mut(&step) {
                    line.retries += 1;
                    let short: String = message.chars().take(120).collect();
                    line.bar
                        .set_message(safe(format!("retrying ({class}, attempt {attempt}): {short}")));
                }
            }
            Event::StepFinished {
                step,
                state,
                applied,
                error,
                ..
            } => {
                let line = lines.remove(&step);
                let took = line.as_ref().map(|line| line.bar.elapsed()).unwrap_or_default();
                header.finished(&step, state == StepState::Succeeded, took);
                let retries = line.as_ref().map_or(0, |line| line.retries);
                if let Some(line) = line {
                    line.bar.finish_and_clear();
                    multi.remove(&line.bar);
                }
                let text = finished_text(state, applied, error.as_deref(), retries);
                // The marks are added after escaping: the only escape sequences are ours.
                let mark = match state {
                    StepState::Failed => format!("{RED}✗{RESET}"),
                    StepState::Succeeded if applied => format!("{GREEN}✓{RESET}"),
                    StepState::Succeeded => "=".to_string(),
                    _ => "-".to_string(),
                };
                let _ = multi.println(format!(
                    "{mark} {} in {}",
                    safe(format!("{step}: {text}")),
                    human_duration(took)
                ));
            }
            _ => {}
        }
        header.refresh(&lines);
    }
    for (_, line) in lines {
        line.bar.finish_and_clear();
    }
    header.bar.finish_and_clear();
}
