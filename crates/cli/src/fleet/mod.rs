//! Fleets in the CLI: the fleet file, the clean-up of expired projects, progress and reports.
//! The engine runs the targets (`sluice_engine::fleet`); this knows Google (new projects,
//! labels, billing) and people (lines, tables, exit codes).

pub mod cleanup;
pub mod file;
pub mod live;
pub mod report;
mod targets;
