//! What people see: log set-up and step tables (progress is `crate::progress`).

use std::borrow::Cow;
use std::time::Duration;

use sluice_engine::{RunSummary, StepRecord};
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, LogFormat};

/// Text from plans, variables, the store or servers, made safe to print on a terminal: every
/// control character (C0 including newlines, DEL, C1) and every bidirectional override is
/// written as an escape (`\n`, `\u{1b}`), so nothing it holds can move the cursor, clear the
/// screen, forge a line or reorder what is shown. Other text is returned as it is.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Prints `value` as JSON on one line, or indented. serde_json escapes C0 controls in strings;
/// DEL, C1 controls and bidirectional overrides, which it leaves raw (they can only be inside
/// strings), are written as `\uXXXX` too, so the output stays the same JSON.
pub fn print_json(value: &impl serde::Serialize, pretty: bool) {
    write_line(&mut std::io::stdout(), &json_text(value, pretty));
}

/// Writes one line. A reader that went away (`sluice runs | head -1`) is not an error of the
/// command: the rest of the output is dropped and the command's own exit code stands, where
/// `println!` would panic (exit 101).
pub fn write_line(out: &mut impl std::io::Write, line: &str) {
    let _ = writeln!(out, "{line}");
}

fn json_text(value: &impl serde::Serialize, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .unwrap_or_default();
    let raw = |c: char| unsafe_char(c) && u32::from(c) >= 0x7f;
    if !text.chars().any(raw) {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if raw(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

pub fn init_logging(cli: &Cli) {
    let default = match (cli.log_format, cli.verbose) {
        (LogFormat::Json, 0) | (_, 1) => "info",
        // Human progress comes from engine events; tracing adds errors, and the notices the
        // Google Cloud kinds give (an adopted gateway, a fallback registration, the 15-minute
        // wait for an org policy).
        (_, 0) => "error,sluice_steps=info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(crate::styling::init(cli.color).colors)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

pub fn print_summary(summary: &RunSummary) {
    outln!("run {}: {}", summary.run_id, summary.state.as_str());
    print_steps(summary.steps.iter());
}

pub fn print_steps<'a>(steps: impl Iterator<Item = &'a StepRecord>) {
    outln!(
        "{:<28} {:<10} {:>8} {:>6} {:>10}  DETAIL",
        "STEP",
        "STATE",
        "ATTEMPTS",
        "POLLS",
        "TIME"
    );
    for step in steps {
        let elapsed = match (step.started_at_ms, step.finished_at_ms) {
            (Some(start), Some(end)) => human_duration(Duration::from_millis(end.saturating_sub(start))),
            _ => "-".into(),
        };
        let detail = if let Some(error) = &step.error {
            error.message.clone()
        } else if let Some(note) = &step.note {
            note.clone()
        } else if !step.outputs.is_empty() {
            serde_json::to_string(&step.outputs).unwrap_or_default()
        } else {
            String::new()
        };
        outln!(
            "{:<28} {:<10} {:>8} {:>6} {:>10}  {}",
            step.step_id,
            step.state().as_str(),
            step.attempts,
            step.polls,
            elapsed,
            detail
        );
    }
}

pub(crate) fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    }
}

/// What an `--emulator` run left in the emulated world, one line per resource.
pub fn print_emulated_world(emulator: &sluice_emulator::EmulatorHandle) {
    let state = emulator.state();
    let mut lines = Vec::new();
    for (name, role) in state["iamRoles"].as_object().into_iter().flatten() {
        let permissions = role["includedPermissions"].as_array().map_or(0, Vec::len);
        lines.push(format!("custom role      {name} ({permissions} permissions)"));
    }
    for project in state["projects"].as_array().into_iter().flatten() {
        let enabled = project["services"].as_object().map_or(0, |s| s.len());
        if enabled > 0 {
            let billing = project["billingAccount"]
                .as_str()
                .filter(|b| !b.is_empty())
                .map(|b| format!(", billing {b}"))
                .unwrap_or_default();
            let labels = project["labels"]
                .as_object()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let pairs: Vec<String> = l
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect();
                    format!(", labels {}", pairs.join(","))
                })
                .unwrap_or_default();
            lines.push(format!(
                "project          {}: {} ({enabled} APIs enabled{billing}{labels})",
                project["id"].as_str().unwrap_or("?"),
                project["state"].as_str().unwrap_or("ACTIVE")
            ));
        }
        for grant in project["iamGrants"].as_array().into_iter().flatten() {
            lines.push(format!(
                "IAM grant        {} → {} on {}",
                grant["role"].as_str().unwrap_or("?"),
                grant["member"].as_str().unwrap_or("?"),
                project["id"].as_str().unwrap_or("?")
            ));
        }
    }
    for gateway in state["agentGateways"].as_array().into_iter().flatten() {
        lines.push(format!(
            "agent gateway    {} ({})",
            gateway["name"].as_str().unwrap_or("?"),
            gateway["googleManaged"]["governedAccessPath"]
                .as_str()
                .unwrap_or("?")
        ));
    }
    for extension in state["authzExtensions"].as_array().into_iter().flatten() {
        lines.push(format!(
            "authz extension  {} ({})",
            extension["name"].as_str().unwrap_or("?"),
            extension["service"].as_str().unwrap_or("?")
        ));
    }
    for policy in state["authzPolicies"].as_array().into_iter().flatten() {
        let targets: Vec<&str> = (policy["target"]["resources"].as_array().into_iter().flatten())
            .filter_map(serde_json::Value::as_str)
            .collect();
        lines.push(format!(
            "authz policy     {} ({} {} on {})",
            policy["name"].as_str().unwrap_or("?"),
            policy["policyProfile"].as_str().unwrap_or("REQUEST_AUTHZ"),
            policy["action"].as_str().unwrap_or("?"),
            targets.join(", ")
        ));
    }
    for engine in state["reasoningEngines"].as_array().into_iter().flatten() {
        lines.push(format!(
            "reasoning engine {} \"{}\"",
            engine["name"].as_str().unwrap_or("?"),
            engine["displayName"].as_str().unwrap_or("")
        ));
    }
    let registry = &state["agentRegistry"];
    for agent in registry["runtimeAgents"].as_array().into_iter().flatten() {
        lines.push(format!(
            "registered agent {}",
            agent["name"].as_str().unwrap_or("?")
        ));
    }
    for service in registry["services"].as_array().into_iter().flatten() {
        lines.push(format!(
            "registry service {}",
            service["name"].as_str().unwrap_or("?")
        ));
    }
    let policy = &state["orgPolicy"];
    for constraint in policy["customConstraints"].as_array().into_iter().flatten() {
        lines.push(format!(
            "constraint       {}",
            constraint["name"].as_str().unwrap_or("?")
        ));
    }
    for p in policy["policies"].as_array().into_iter().flatten() {
        lines.push(format!("org policy       {}", p["name"].as_str().unwrap_or("?")));
    }
    let calls = emulator.requests().as_array().map_or(0, Vec::len);
    outln!("");
    outln!("in the emulated world ({calls} API calls):");
    for line in lines {
        outln!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_escapes_controls_and_bidi_overrides_and_keeps_other_text() {
        assert_eq!(clean("plain → ü"), "plain → ü");
        assert!(matches!(clean("plain"), Cow::Borrowed(_)));
        assert_eq!(
            clean("a\u{1b}[2Jb\u{7}\nc\td\u{9b}e\u{202e}f\u{7f}"),
            "a\\u{1b}[2Jb\\u{7}\\nc\\td\\u{9b}e\\u{202e}f\\u{7f}"
        );
    }

    #[test]
    fn json_output_stays_json_with_every_control_escaped() {
        let value = serde_json::json!({"name": "a\u{1b}b\u{9b}c\u{202e}d\u{7f}"});
        for pretty in [false, true] {
            let text = json_text(&value, pretty);
            assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
            assert!(!text.contains('\u{202e}'), "{text:?}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, value);
        }
    }
}
