//! Where the store lives when `--store` / `SLUICE_STORE` are not given.

use std::path::PathBuf;

/// `$XDG_STATE_HOME/sluice`, else `$HOME/.local/state/sluice`, else `./.sluice`.
pub fn default_store() -> PathBuf {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(state).join("sluice");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/state/sluice");
    }
    PathBuf::from(".sluice")
}
