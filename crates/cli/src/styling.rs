//! Whether stderr gets colors and live (redrawn) progress, decided once at start-up from
//! `--color`, `NO_COLOR` (no-color.org: any non-empty value) and whether stderr is a terminal.
//! Without colors nothing that moves the cursor is drawn either: progress is plain lines.

use std::ffi::OsStr;
use std::sync::OnceLock;

use crate::args::ColorChoice;

/// What may be written to stderr besides plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Styling {
    /// ANSI colors in logs and progress.
    pub colors: bool,
    /// Live lines redrawn in place (indicatif): a terminal, with escape sequences allowed.
    pub live: bool,
}

impl Styling {
    /// `--color auto` colors a terminal unless `NO_COLOR` is set to a non-empty value; the
    /// explicit `always` and `never` win over the environment.
    pub fn decide(choice: ColorChoice, no_color: Option<&OsStr>, terminal: bool) -> Styling {
        let no_color = no_color.is_some_and(|value| !value.is_empty());
        let colors = match choice {
            ColorChoice::Auto => terminal && !no_color,
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        };
        Styling {
            colors,
            live: terminal && colors,
        }
    }
}

static STDERR: OnceLock<Styling> = OnceLock::new();

/// Decides stderr's styling for the whole process (the first call wins, as for logging).
pub fn init(choice: ColorChoice) -> Styling {
    *STDERR.get_or_init(|| {
        let no_color = std::env::var_os("NO_COLOR");
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Styling::decide(choice, no_color.as_deref(), terminal)
    })
}

/// Stderr's styling, as decided by [`init`] (`--color auto` if it was never called).
pub fn stderr() -> Styling {
    init(ColorChoice::Auto)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(choice: ColorChoice, no_color: Option<&str>, terminal: bool) -> Styling {
        Styling::decide(choice, no_color.map(OsStr::new), terminal)
    }

    #[test]
    fn auto_colors_and_redraws_only_a_terminal_without_no_color() {
        let full = Styling {
            colors: true,
            live: true,
        };
        let plain = Styling {
            colors: false,
            live: false,
        };
        assert_eq!(decide(ColorChoice::Auto, None, true), full);
        assert_eq!(decide(ColorChoice::Auto, None, false), plain);
        assert_eq!(decide(ColorChoice::Auto, Some("1"), true), plain);
        // no-color.org: an empty NO_COLOR is as if it were unset.
        assert_eq!(decide(ColorChoice::Auto, Some(""), true), full);
    }

    #[test]
    fn never_and_always_win_over_the_environment() {
        assert_eq!(
            decide(ColorChoice::Never, None, true),
            Styling {
                colors: false,
                live: false
            }
        );
        assert_eq!(
            decide(ColorChoice::Always, Some("1"), true),
            Styling {
                colors: true,
                live: true
            }
        );
        // Colors for a pipe that asked for them, but nothing redrawn off a terminal.
        assert_eq!(
            decide(ColorChoice::Always, None, false),
            Styling {
                colors: true,
                live: false
            }
        );
    }
}
