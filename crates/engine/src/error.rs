//! Error classes a step reports, and the engine's own errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The class of a step failure, spelled one way everywhere: plans (`local.flaky`'s `error`),
/// step records, the journal and status output all use [`ErrorClass::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Retryable,
    /// Journals and records written before the spelling was unified say `not-yet`.
    #[serde(alias = "not-yet")]
    NotYet,
    Permanent,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 3] = [ErrorClass::Retryable, ErrorClass::NotYet, ErrorClass::Permanent];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::NotYet => "not_yet",
            ErrorClass::Permanent => "permanent",
        }
    }

    /// The class a plan names, in its one accepted spelling (the old `not-yet` is read from
    /// stored data only, never from a plan). The error names the accepted values.
    pub fn from_plan(text: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|class| class.as_str() == text)
            .ok_or_else(|| {
                let accepted: Vec<String> = Self::ALL.iter().map(|c| format!("`{}`", c.as_str())).collect();
                format!(
                    "unknown error class `{text}`; accepted values: {}",
                    accepted.join(", ")
                )
            })
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a step failure should be treated. The executor decides what to do from the class alone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// A transient failure (throttling, unavailability, a conflict): retry with backoff, waiting
    /// at least `delay` when the server gave one.
    #[error("{message}")]
    Retryable {
        message: String,
        delay: Option<Duration>,
    },
    /// A precondition that becomes true with time (an identity not yet usable, a grant not yet
    /// propagated): retried until the step's not-yet window closes — every `delay` when the kind
    /// gives one (a steady look at a condition, no backoff growth), else with backoff.
    #[error("{message}")]
    NotYet {
        message: String,
        delay: Option<Duration>,
    },
    /// Retrying cannot help; the run stops this branch and reports the message.
    #[error("{message}")]
    Permanent { message: String },
}

impl StepError {
    pub fn retryable(message: impl Into<String>) -> Self {
        StepError::Retryable {
            message: message.into(),
            delay: None,
        }
    }
    pub fn not_yet(message: impl Into<String>) -> Self {
        StepError::NotYet {
            message: message.into(),
            delay: None,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError::Permanent {
            message: message.into(),
        }
    }
    pub fn class(&self) -> ErrorClass {
        match self {
            StepError::Retryable { .. } => ErrorClass::Retryable,
            StepError::NotYet { .. } => ErrorClass::NotYet,
            StepError::Permanent { .. } => ErrorClass::Permanent,
        }
    }
    /// A step error of `class` with `message` and no server delay.
    pub fn of_class(class: ErrorClass, message: impl Into<String>) -> Self {
        match class {
            ErrorClass::Retryable => StepError::retryable(message),
            ErrorClass::NotYet => StepError::not_yet(message),
            ErrorClass::Permanent => StepError::permanent(message),
        }
    }
    pub fn message(&self) -> &str {
        match self {
            StepError::Retryable { message, .. }
            | StepError::NotYet { message, .. }
            | StepError::Permanent { message } => message,
        }
    }
    /// The server-given minimum delay before the next attempt, if any.
    pub fn server_delay(&self) -> Option<Duration> {
        match self {
            StepError::Retryable { delay, .. } | StepError::NotYet { delay, .. } => *delay,
            StepError::Permanent { .. } => None,
        }
    }
}

/// Errors of the store: each says what went wrong; the embedding program decides the exit code
/// and adds what to type next (its own flags and commands).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} is in use by another sluice process")]
    Locked { path: String },
    #[error(
        "the store at {path} has format version {found}, but this sluice reads only version {supported}"
    )]
    UnknownFormat {
        path: String,
        found: String,
        supported: u32,
    },
    #[error("the store at {path} holds data that is not a sluice store")]
    Foreign { path: String },
    #[error("the store record `{key}` cannot be read ({reason}); the store is damaged")]
    Corrupt { key: String, reason: String },
    /// The store's files are damaged: sled found corrupted data, or a record does not decode.
    #[error("the store at {path} is damaged: {what}. The cloud side is safe, because every step observes before it changes anything: restore the store directory from a backup, or move it aside and run the plan again on a fresh store")]
    Damaged { path: String, what: String },
    #[error("store I/O failed at {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("store failed: {0}")]
    Sled(String),
}

impl From<sled::Error> for StoreError {
    /// Corruption becomes [`StoreError::Damaged`] without a path yet: the store that read it
    /// adds its own (`SledStore`).
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Corruption { .. } => StoreError::Damaged {
                path: String::new(),
                what: "its database files fail sled's checksums".into(),
            },
            other => StoreError::Sled(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{JournalEntry, JournalEvent};

    #[test]
    fn error_classes_are_written_one_way_and_read_in_the_old_spelling_too() {
        assert_eq!(serde_json::to_value(ErrorClass::NotYet).unwrap(), "not_yet");
        assert_eq!(StepError::not_yet("m").class().as_str(), "not_yet");
        let old_journal = r#"{"seq": 3, "at_ms": 1, "step": "a", "event": {"event": "attempt_failed",
            "attempt": 1, "class": "not-yet", "message": "m", "retry_in_ms": 5}}"#;
        let entry: JournalEntry = serde_json::from_str(old_journal).unwrap();
        assert!(matches!(
            entry.event,
            JournalEvent::AttemptFailed {
                class: ErrorClass::NotYet,
                ..
            }
        ));
    }

    #[test]
    fn a_plan_names_a_class_only_in_its_one_spelling() {
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::from_plan(class.as_str()), Ok(class));
        }
        let refused = ErrorClass::from_plan("not-yet").unwrap_err();
        assert!(
            refused.contains("`retryable`, `not_yet`, `permanent`"),
            "{refused}"
        );
    }
}
