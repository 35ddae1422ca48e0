//! Built-in kinds that touch only local files, enough to exercise every durability claim
//! without a network: `core.noop`, `local.file`, `local.operation`, `local.flaky`.
//!
//! Each mutating kind accepts `effects_log`: a file to which every side effect appends one line
//! (`STEP ACTION TARGET`), fsynced before the side effect is reported done, so tests can count
//! side effects across crashes.

mod flaky;
mod local_file;
mod local_operation;
mod noop;

use std::io::Write;
use std::path::Path;

use crate::error::StepError;
use crate::kind::{ParamSpec, ParamType, Registry, StepContext};

pub use flaky::Flaky;
pub use local_file::LocalFile;
pub use local_operation::LocalOperation;
pub use noop::Noop;

pub(crate) fn register(registry: &mut Registry) {
    registry.register("core.noop", Noop);
    registry.register("local.file", LocalFile);
    registry.register("local.operation", LocalOperation);
    registry.register("local.flaky", Flaky);
}

const EFFECTS_LOG: ParamSpec = ParamSpec::optional(
    "effects_log",
    ParamType::String,
    "file to which each side effect appends one line, for counting",
);

fn io_error(cx: &StepContext, what: &str, path: &Path, error: std::io::Error) -> StepError {
    let message = format!("step `{}`: {what} {}: {error}", cx.step_id, path.display());
    match error.kind() {
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock => StepError::retryable(message),
        _ => StepError::permanent(message),
    }
}

/// Appends `STEP ACTION TARGET` to the effects log, if the step has one, and syncs it.
fn record_effect(cx: &StepContext, action: &str, target: &str) -> Result<(), StepError> {
    let Some(log) = cx.params.get("effects_log").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    let path = Path::new(log);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(cx, "cannot open effects log", path, e))?;
    writeln!(file, "{} {action} {target}", cx.step_id)
        .and_then(|()| file.sync_data())
        .map_err(|e| io_error(cx, "cannot append to effects log", path, e))
}

/// Replaces `path` with `content` atomically (temporary file, fsync, rename).
fn write_atomically(cx: &StepContext, path: &Path, content: &[u8]) -> Result<(), StepError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_error(cx, "cannot create directory", parent, e))?;
    }
    let temporary = path.with_extension("sluice-tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(content)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|e| io_error(cx, "cannot write", path, e))
}

/// The file's bytes, or `None` when it does not exist.
fn read_if_exists(cx: &StepContext, path: &Path) -> Result<Option<Vec<u8>>, StepError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(cx, "cannot read", path, e)),
    }
}
