//! The `sluice` command exactly, plus one test hook: with `SLUICE_HARNESS_CRASH_AT=STEP:POINT`
//! (POINT one of after-intent, after-mutation, while-waiting, after-step), reaching that point
//! prints `SLUICE-HARNESS-FROZEN STEP POINT` on stdout and freezes the step, so that the test
//! can SIGKILL the process at exactly that instant.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use sluice_engine::{CrashPoint, Hooks};

struct FreezeAt {
    step: String,
    point: CrashPoint,
}

impl Hooks for FreezeAt {
    fn reached(&self, point: CrashPoint, step_id: &str) {
        if point == self.point && step_id == self.step {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "SLUICE-HARNESS-FROZEN {step_id} {}", point.as_str());
            let _ = stdout.flush();
            loop {
                std::thread::park();
            }
        }
    }
}

fn main() -> ExitCode {
    let hooks: Option<Arc<dyn Hooks>> = match std::env::var("SLUICE_HARNESS_CRASH_AT") {
        Ok(spec) => {
            let Some((step, point)) = spec.split_once(':') else {
                eprintln!("SLUICE_HARNESS_CRASH_AT must be STEP:POINT");
                return ExitCode::from(2);
            };
            let Some(point) = CrashPoint::parse(point) else {
                eprintln!("unknown crash point `{point}`");
                return ExitCode::from(2);
            };
            Some(Arc::new(FreezeAt {
                step: step.to_string(),
                point,
            }))
        }
        Err(_) => None,
    };
    sluice_cli::main_with(std::env::args_os(), hooks)
}
