//! What people see: log set-up and safe printing (escaped text, JSON). Progress is
//! `crate::progress`; the end of a run and the `status` table are `run_report::text`; what an
//! `--emulator` run changed is `world`.

use std::borrow::Cow;
use std::time::Duration;

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

/// A duration for people: `250ms`, `1.5s`, `2m05s`.
pub fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", duration.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
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
