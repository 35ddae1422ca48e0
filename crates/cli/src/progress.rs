//! Live progress on a terminal: one line per active step (state, elapsed time, the operation it
//! waits on, retries), redrawn by indicatif; finished steps print once above the live lines.
//! Not on a terminal, `output::print_events` prints plain lines instead.

use std::collections::HashMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_engine::{Event, StepState};
use tokio::sync::mpsc;

struct Line {
    bar: ProgressBar,
    retries: u32,
}

pub async fn show(mut events: mpsc::UnboundedReceiver<Event>) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut lines: HashMap<String, Line> = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::RunStarted {
                run_id,
                session,
                steps,
            } => {
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
            Event::StepWaiting { step, poll, progress } => {
                if let Some(line) = lines.get(&step) {
                    let on = progress.map(|p| format!(" on {p}")).unwrap_or_default();
                    line.bar.set_message(safe(format!(
                        "waiting{on} (poll {poll}){}",
                        retries(line.retries)
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
                let text = match (state, error) {
                    (StepState::Failed, Some(error)) => format!("✗ {step}: FAILED: {error}"),
                    (StepState::Succeeded, _) if applied => format!("✓ {step}: changed"),
                    (StepState::Succeeded, _) => format!("= {step}: no change"),
                    (state, _) => format!("- {step}: {}", state.as_str()),
                };
                match lines.remove(&step) {
                    Some(line) => {
                        let elapsed = line.bar.elapsed();
                        line.bar.finish_and_clear();
                        multi.remove(&line.bar);
                        let _ = multi.println(safe(format!(
                            "{text} ({}){}",
                            seconds(elapsed),
                            retries(line.retries)
                        )));
                    }
                    None => {
                        let _ = multi.println(safe(text));
                    }
                }
            }
            _ => {}
        }
    }
    for (_, line) in lines {
        line.bar.finish_and_clear();
    }
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

fn retries(count: u32) -> String {
    match count {
        0 => String::new(),
        1 => ", 1 retry".into(),
        n => format!(", {n} retries"),
    }
}

fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
