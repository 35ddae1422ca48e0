//! What a run prints as it goes. Off a terminal: one line per step state change, never one per
//! poll or per repeated retry, each with a `[done/total]` counter (the shipped egress plan
//! against the emulator on loopback). On a pseudo-terminal: with `NO_COLOR` or `--color never`
//! not one escape sequence reaches it, while without them the live view colors it.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use expectrl::{Eof, Expect, Session};
use sluice_tests::{status_json, stderr, Sandbox};
use support::{Cloud, EGRESS_VARS, HARNESS};

/// A progress line: `[DONE/TOTAL] STEP: TEXT`.
struct ProgressLine {
    done: usize,
    total: usize,
    step: String,
    text: String,
}

fn progress_lines(stderr: &str) -> Vec<ProgressLine> {
    stderr
        .lines()
        .filter_map(|line| {
            let (counter, rest) = line.strip_prefix('[')?.split_once("] ")?;
            let (done, total) = counter.split_once('/')?;
            let (step, text) = rest.split_once(": ")?;
            Some(ProgressLine {
                done: done.parse().ok()?,
                total: total.parse().ok()?,
                step: step.to_string(),
                text: text.to_string(),
            })
        })
        .collect()
}

#[test]
fn an_off_terminal_run_prints_one_line_per_step_state_change() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let output = cloud
        .command(&sandbox, "run", "agent-gateway-egress.json", &EGRESS_VARS)
        .env_remove("NO_COLOR")
        .output()
        .expect("harness runs");
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    let lines = progress_lines(&text);
    let status = status_json(&sandbox, HARNESS, None);
    let steps = status["steps"].as_array().expect("steps");
    let total = steps.len();

    // The counter counts steps finished (skipped ones included) out of the plan's, never goes
    // back, and reaches the total.
    assert!(lines.iter().all(|line| line.total == total), "{text}");
    assert!(
        lines.windows(2).all(|pair| pair[0].done <= pair[1].done),
        "{text}"
    );
    assert_eq!(lines.last().map(|line| line.done), Some(total), "{text}");

    // Nothing is said twice about a step.
    let mut said = HashSet::new();
    for line in &lines {
        assert!(
            said.insert((line.step.as_str(), line.text.as_str())),
            "said twice: {}: {}\n{text}",
            line.step,
            line.text
        );
    }

    let mut per_step: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in &lines {
        per_step.entry(&line.step).or_default().push(&line.text);
    }
    let mut polled_more_than_once = 0;
    for step in steps {
        let id = step["id"].as_str().expect("step id");
        let state = step["state"].as_str().unwrap_or_default();
        let polls = step["polls"].as_u64().expect("polls");
        let attempts = step["attempts"].as_u64().expect("attempts");
        let said = per_step.remove(id).unwrap_or_default();
        let count = |start: &str| said.iter().filter(|text| text.starts_with(start)).count() as u64;
        // Whatever its retries, a step says what it applies once (its change did not vary
        // here), waits on each operation once (an operation takes an attempt), and ends once.
        assert!(count("applying: ") <= 1, "{id}: {said:#?}");
        assert!(count("waiting") <= attempts.min(polls), "{id}: {said:#?}");
        if polls > 1 {
            polled_more_than_once += 1;
        }
        let endings = said
            .iter()
            .filter(|text| text.starts_with("done (") || text.starts_with("FAILED"))
            .count();
        if state == "skipped" && said.is_empty() {
            continue; // skipped when the run was made: it never ran, and is counted from the start
        }
        assert_eq!(endings, 1, "{id}: {said:#?}");
        assert!(said.len() <= 6, "{id} said too much: {said:#?}");
    }
    assert!(per_step.is_empty(), "lines about unknown steps: {per_step:#?}");
    // Otherwise this test could not tell one line per poll from one per operation.
    assert!(
        polled_more_than_once > 0,
        "no step polled twice; status: {status:#}"
    );
}

/// `sluice run plans/demo.json` on a pseudo-terminal; everything it wrote there.
fn run_on_a_terminal(configure: impl FnOnce(&mut std::process::Command)) -> String {
    let sandbox = Sandbox::new();
    let out_dir = sandbox.work("demo").display().to_string();
    let plan = support::shipped_plan("demo.json").display().to_string();
    let out_var = format!("out_dir={out_dir}");
    let mut command = sandbox.command(HARNESS, &["run", &plan, "--var", &out_var, "--auto-approve"]);
    command.env("TERM", "xterm-256color").env_remove("NO_COLOR");
    configure(&mut command);
    let mut session = Session::spawn(command).expect("spawn on a pseudo-terminal");
    // A bound on a hung run, not a wait: the read ends when the run closes the terminal.
    session.set_expect_timeout(Some(Duration::from_secs(120)));
    let seen = session.expect(Eof).expect("the run ends");
    // Eof matches the whole output.
    let text = String::from_utf8_lossy(seen.get(0).expect("the output")).into_owned();
    assert!(text.contains(" succeeded: "), "{text}");
    text
}

/// The run on a pseudo-terminal, asserting that not one escape sequence reached it.
fn run_on_a_terminal_without_escapes(configure: impl FnOnce(&mut std::process::Command)) -> String {
    let text = run_on_a_terminal(configure);
    assert!(
        !text.contains('\u{1b}'),
        "an escape sequence reached the terminal: {text:?}"
    );
    text
}

#[test]
fn no_color_on_a_terminal_sends_no_escape_sequence_and_plain_lines() {
    let text = run_on_a_terminal_without_escapes(|command| {
        command.env("NO_COLOR", "1");
    });
    assert!(text.contains("] greeting: done (changed)"), "{text}");
}

#[test]
fn color_never_on_a_terminal_sends_no_escape_sequence() {
    let text = run_on_a_terminal_without_escapes(|command| {
        command.arg("--color").arg("never");
    });
    assert!(text.contains("] publish: attempt 1 failed (retryable)"), "{text}");
}

#[test]
fn a_terminal_without_no_color_gets_the_live_colored_view() {
    // The counterpart of the two above: the same run does send escape sequences by default, so
    // their absence there is NO_COLOR's and --color's doing.
    let text = run_on_a_terminal(|_| {});
    assert!(
        text.contains("\u{1b}[32m✓\u{1b}[0m greeting: done (changed)"),
        "{text:?}"
    );
    assert!(text.contains("steps done"), "{text:?}");
}
