//! `acme.change_ticket`: a change ticket recorded in a ledger, a JSON file standing in for a
//! platform team's change-management system.
//!
//! Guarantees: after success the ledger holds the ticket `ticket` with exactly the given
//! `summary` and `details`, the id of the run that opened it and of the run that last wrote it;
//! other tickets are left as they were. A ticket that already says so is not written again (a
//! second run changes nothing); one whose summary or details differ is updated, keeping the run
//! that opened it.
//! Assumptions: only this process writes the ledger while a run holds it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Map, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, Outputs, ParamProblem, ParamSpec, ParamType,
    StepContext, StepError, StepKind,
};

/// The kind's name in plans.
pub const KIND: &str = "acme.change_ticket";

/// The kind. Steps of it run concurrently in one process: the lock keeps their
/// read-modify-write of a ledger whole.
#[derive(Default)]
pub struct ChangeTicket {
    ledger_lock: Mutex<()>,
}

/// What a step wants the ledger to say.
struct Wanted<'a> {
    ledger: &'a Path,
    ticket: &'a str,
    summary: &'a str,
    details: Value,
}

impl<'a> Wanted<'a> {
    fn of(cx: &'a StepContext) -> Result<Self, StepError> {
        Ok(Wanted {
            ledger: Path::new(cx.str_param("ledger")?),
            ticket: cx.str_param("ticket")?,
            summary: cx.str_param("summary")?,
            details: cx.params.get("details").cloned().unwrap_or_else(|| json!({})),
        })
    }

    fn outputs(&self) -> Outputs {
        BTreeMap::from([
            ("ticket".to_string(), Value::from(self.ticket)),
            (
                "ledger".to_string(),
                Value::from(self.ledger.display().to_string()),
            ),
        ])
    }

    /// Whether the recorded ticket says what is wanted (the runs that wrote it aside).
    fn matches(&self, recorded: &Value) -> bool {
        recorded["summary"] == self.summary && recorded["details"] == self.details
    }
}

#[async_trait]
impl StepKind for ChangeTicket {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "records a change ticket in a JSON ledger",
            params: vec![
                ParamSpec::required(
                    "ledger",
                    ParamType::String,
                    "the ledger file (JSON), created if missing",
                ),
                ParamSpec::required(
                    "ticket",
                    ParamType::String,
                    "the ticket id, e.g. CHG-my-project-iam",
                ),
                ParamSpec::required("summary", ParamType::String, "one line saying what changes"),
                ParamSpec::optional("details", ParamType::Object, "anything else to record"),
            ],
            outputs: vec!["ticket", "ledger"],
        }
    }

    fn check(&self, params: &Map<String, Value>) -> Vec<ParamProblem> {
        let ticket = params.get("ticket").and_then(Value::as_str).unwrap_or("CHG");
        let fine = !ticket.is_empty()
            && ticket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if fine {
            return Vec::new();
        }
        vec![ParamProblem::new(
            "ticket",
            format!("ticket id `{ticket}` must be letters, digits, `-` and `_`, e.g. CHG-my-project-iam"),
        )]
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let wanted = Wanted::of(cx)?;
        let ledger = read_ledger(wanted.ledger)?;
        Ok(match ledger["tickets"].get(wanted.ticket) {
            Some(recorded) if wanted.matches(recorded) => Observation::Converged(wanted.outputs()),
            Some(_) => Observation::Diverged(
                Change::update(format!(
                    "update ticket {} in {}",
                    wanted.ticket,
                    wanted.ledger.display()
                ))
                .predicting(wanted.outputs()),
            ),
            None => Observation::Diverged(
                Change::create(format!(
                    "open ticket {} in {}",
                    wanted.ticket,
                    wanted.ledger.display()
                ))
                .predicting(wanted.outputs()),
            ),
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let wanted = Wanted::of(cx)?;
        let _whole = self
            .ledger_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut ledger = read_ledger(wanted.ledger)?;
        let tickets = ledger["tickets"]
            .as_object_mut()
            .expect("read_ledger gives an object");
        let opened_by = tickets
            .get(wanted.ticket)
            .map_or_else(|| Value::from(cx.run_id.as_str()), |t| t["opened_by_run"].clone());
        tickets.insert(
            wanted.ticket.to_string(),
            json!({
                "summary": wanted.summary,
                "details": wanted.details,
                "opened_by_run": opened_by,
                "updated_by_run": cx.run_id,
            }),
        );
        write_ledger(wanted.ledger, &ledger)?;
        Ok(Applied::Done(wanted.outputs()))
    }
}

/// The ledger, `{"tickets": {}}` when the file does not exist yet. A file that is not a ledger
/// fails the step for good: a person must look at it.
fn read_ledger(path: &Path) -> Result<Value, StepError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(json!({"tickets": {}})),
        Err(error) => {
            return Err(StepError::retryable(format!(
                "cannot read {}: {error}",
                path.display()
            )))
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(ledger) if ledger["tickets"].is_object() => Ok(ledger),
        _ => Err(StepError::permanent(format!(
            "{} is not a ticket ledger (a JSON object with `tickets`); move it aside or fix it",
            path.display()
        ))),
    }
}

/// Replaces the ledger whole (a temporary file renamed over it), so a crash leaves the old one
/// or the new one, never half of one.
fn write_ledger(path: &Path, ledger: &Value) -> Result<(), StepError> {
    let failed =
        |error: std::io::Error| StepError::retryable(format!("cannot write {}: {error}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    let text = serde_json::to_string_pretty(ledger).expect("JSON values serialise");
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}
