//! Error classes a step reports, and the engine's own errors.

use std::time::Duration;

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
    pub fn class(&self) -> &'static str {
        match self {
            StepError::Retryable { .. } => "retryable",
            StepError::NotYet { .. } => "not-yet",
            StepError::Permanent { .. } => "permanent",
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
