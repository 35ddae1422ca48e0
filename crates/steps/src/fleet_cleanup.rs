//! Cleaning up a fleet's projects (not a step kind: the nightly fleet job calls these).
//!
//! - **Guarantees:** [`expired_fleet_projects`] lists only ACTIVE projects that carry the owner
//!   label exactly (`KEY=VALUE`, checked here on every result, whatever the server's filter
//!   did) and whose `createTime` is more than `ttl` before `now`. [`delete_project`] reads the
//!   project again and refuses to delete one without the owner label; it returns once Google
//!   has accepted the deletion (the operation is done and the project is DELETE_REQUESTED), read
//!   on the steps' GET poll schedule ([`crate::cloud::get_poll_policy`]).
//! - **Assumptions:** the caller may search and delete the fleet's projects
//!   (`resourcemanager.projects.get` / `.delete`, which the creator holds as owner); its clock
//!   and Google's agree within the precision a TTL needs.
//! - **Caveats:** the search sends only the label term (`labels.KEY:VALUE`): Resource Manager's
//!   search query matches *any* of several terms written side by side (its discovery
//!   document), so the state and the exact label are checked here instead. A deleted project
//!   stays restorable for about 30 days (`gcloud projects undelete`), and its id is never
//!   reused. A project whose `createTime` cannot be read is skipped, never deleted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sluice_gcp::{Api, Code, GcpClient, GcpError, Operation, OperationFamily, Status};

use crate::common::{self, encode, Reading};

/// A fleet project past its time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredProject {
    pub project_id: String,
    /// As Google wrote it (RFC 3339).
    pub create_time: String,
    /// `now` − `create_time`.
    pub age: Duration,
}

/// Every ACTIVE project labelled `owner_label` (key, value) created more than `ttl` before
/// `now`, sorted by id (all pages of `projects.search`).
pub async fn expired_fleet_projects(
    client: &GcpClient,
    owner_label: (&str, &str),
    ttl: Duration,
    now: SystemTime,
) -> Result<Vec<ExpiredProject>, GcpError> {
    let (key, value) = owner_label;
    let query = encode(&format!("labels.{key}:{value}"));
    let path = format!("v3/projects:search?query={query}&pageSize=100");
    let projects = common::list_all(client, &Api::ResourceManager, &path, "projects", Reading::Apply).await?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut expired: Vec<ExpiredProject> = projects
        .iter()
        .filter(|p| labelled(p, owner_label) && p["state"] == "ACTIVE")
        .filter_map(|p| {
            let project_id = p["projectId"].as_str()?.to_string();
            let create_time = p["createTime"].as_str()?.to_string();
            let Some(created) = parse_rfc3339(&create_time) else {
                tracing::warn!(project = %project_id, "skipping {project_id}: createTime `{create_time}` is not RFC 3339");
                return None;
            };
            let age = now.saturating_sub(created);
            (age > ttl).then_some(ExpiredProject {
                project_id,
                create_time,
                age,
            })
        })
        .collect();
    expired.sort_by(|a, b| a.project_id.cmp(&b.project_id));
    Ok(expired)
}

/// Deletes project `project_id` if it carries `owner_label`, and waits until the deletion
/// operation is done. A project already DELETE_REQUESTED is left as it is. One without the
/// label is refused (`CLIENT_USAGE`), and nothing is sent.
pub async fn delete_project(
    client: &GcpClient,
    project_id: &str,
    owner_label: (&str, &str),
) -> Result<(), GcpError> {
    let path = format!("v3/projects/{project_id}");
    let project = client.get(&Api::ResourceManager, &path).await?;
    if !labelled(&project, owner_label) {
        let (key, value) = owner_label;
        return Err(GcpError::usage(
            &path,
            format!("refusing to delete project {project_id}: it does not carry the label {key}={value}"),
        ));
    }
    if project["state"] == "DELETE_REQUESTED" {
        return Ok(());
    }
    let answer = client.delete(&Api::ResourceManager, &path).await?;
    let operation = Operation::from_json(&answer)?;
    let done = wait_until_done(client, &OperationFamily::ResourceManager, operation).await?;
    match done.error {
        None => Ok(()),
        Some(error) => Err(GcpError::operation_failed(
            &done.name,
            format!(
                "deleting project {project_id}: operation {} failed: {error}",
                done.name
            ),
        )),
    }
}

/// Reads `operation` again, on the GET poll schedule at the client's time scale, until it is
/// done. Past the schedule's deadline (the delays waited, added up) it gives up with
/// DEADLINE_EXCEEDED, naming the operation.
async fn wait_until_done(
    client: &GcpClient,
    family: &OperationFamily,
    mut operation: Operation,
) -> Result<Operation, GcpError> {
    let policy = crate::cloud::get_poll_policy(client.time_scale());
    let mut waited = Duration::ZERO;
    let mut polls = 0;
    while !operation.done {
        if waited >= policy.deadline {
            return Err(GcpError {
                status: Status::Google(Code::DeadlineExceeded),
                ..GcpError::usage(
                    &operation.name,
                    format!("operation {} still running after {polls} polls", operation.name),
                )
            });
        }
        let delay = policy.delay_before(polls);
        tokio::time::sleep(delay).await;
        waited += delay;
        polls += 1;
        operation = client.get_operation(family, &operation.name).await?;
    }
    Ok(operation)
}

/// Whether `project` carries exactly the label `key=value`.
fn labelled(project: &Value, (key, value): (&str, &str)) -> bool {
    project["labels"][key].as_str() == Some(value)
}

/// An RFC 3339 timestamp (`2026-01-01T00:00:00Z`, fractions and `±hh:mm` offsets accepted) as
/// time since the Unix epoch; `None` when it is not one or lies before 1970.
pub fn parse_rfc3339(text: &str) -> Option<Duration> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':';
    if !shape {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = fraction[..digits]
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        nanos = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * (num(text.len() - 5, 2)? * 3600 + num(text.len() - 2, 2)? * 60)
        }
        _ => return None,
    };
    // Days since 1970-01-01 of the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(Duration::new(u64::try_from(seconds).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;
    use std::time::Duration;

    #[test]
    fn rfc3339_timestamps_parse_with_fractions_and_offsets() {
        assert_eq!(
            parse_rfc3339("2026-01-01T00:00:00Z"),
            Some(Duration::from_secs(1_767_225_600))
        );
        assert_eq!(
            parse_rfc3339("2026-03-01T01:02:03.000005Z"),
            Some(Duration::new(1_767_225_600 + 86_400 * 59 + 3_723, 5_000))
        );
        assert_eq!(
            parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Some(Duration::from_secs(1_767_225_600))
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        for bad in [
            "2026-01-01",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
