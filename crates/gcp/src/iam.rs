//! Project IAM policy read-modify-write (Resource Manager v3, policy version 3), with the
//! grants of concurrent callers coalesced: callers ready together share one getIamPolicy and
//! one setIamPolicy, and at most one cycle per project is in flight.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::answers::Policy;
use crate::client::{GcpClient, PostRetry};
use crate::error::GcpError;
use crate::options::{Api, RetryConfig};
use crate::retry::Retry;

/// One unconditional role binding for one member (`serviceAccount:…`, `user:…`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub role: String,
    pub member: String,
}

impl Grant {
    pub fn new(role: impl Into<String>, member: impl Into<String>) -> Self {
        Grant {
            role: role.into(),
            member: member.into(),
        }
    }
}

/// Called between the get and the set of each cycle with the cycle's index (tests use it to
/// change the policy in between and provoke ABORTED).
pub type IamHook = Arc<dyn Fn(u32) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

type Answer = Result<Vec<Grant>, GcpError>;

struct Waiter {
    grants: Vec<Grant>,
    reply: oneshot::Sender<Answer>,
}

/// Callers waiting per project; a project is in the map while its leader task runs.
#[derive(Default)]
pub(crate) struct Coalescer {
    projects: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl Coalescer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Waiter>>> {
        self.projects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How many times a new leader lets other ready tasks run (and join) before it reads.
const GATHER_YIELDS: usize = 8;

impl GcpClient {
    /// Adds the grants (unconditional bindings) to the project's IAM policy and returns those
    /// that were absent when the policy was first read, in the order given (already-present
    /// ones are not returned).
    ///
    /// Keeps everything else: other members, conditional bindings, auditConfigs; sends the
    /// etag and version 3. ABORTED (a concurrent change) restarts the whole get/set cycle with
    /// backoff; a member that "does not exist" yet is retried within `retry.member_wait`
    /// (scaled), then returned (`is_member_missing`). Calls for one project that are ready
    /// together share one get and one set; at most one cycle per project is in flight, and
    /// calls arriving meanwhile share the next one. A failed cycle fails every caller in it.
    pub async fn add_project_grants(&self, project: &str, grants: &[Grant]) -> Result<Vec<Grant>, GcpError> {
        if grants.is_empty() {
            return Ok(vec![]);
        }
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut projects = self.inner.iam.lock();
            let lead = !projects.contains_key(project);
            projects.entry(project.to_string()).or_default().push(Waiter {
                grants: grants.to_vec(),
                reply,
            });
            lead
        };
        if lead {
            // A task of its own, so a caller that gives up cannot strand the others.
            tokio::spawn(self.clone().lead(project.to_string()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(GcpError::usage(
                &format!("/v3/projects/{project}:setIamPolicy"),
                "the IAM policy cycle ended without an answer",
            ))
        })
    }

    /// Reads the project's IAM policy (version 3, so conditional bindings are included). An
    /// answer without an etag or with malformed bindings is a `BAD_RESPONSE`, retried.
    pub async fn project_policy(&self, project: &str) -> Result<Policy, GcpError> {
        self.post_as(
            &Api::ResourceManager,
            &format!("v3/projects/{project}:getIamPolicy"),
            &json!({ "options": { "requestedPolicyVersion": 3 } }),
            PostRetry::Safe,
        )
        .await
    }

    /// Test hook: runs between the get and the set of every IAM cycle. Set once.
    #[doc(hidden)]
    pub fn set_iam_test_hook(&self, hook: IamHook) {
        let _ = self.inner.iam_hook.set(hook);
    }

    async fn lead(self, project: String) {
        // If this task dies (a panic, or its runtime shutting down), the project is freed and
        // the waiters' senders are dropped, so they get an error instead of waiting forever.
        let mut guard = LeaderGuard {
            coalescer: &self.inner.iam,
            project: &project,
            finished: false,
        };
        for _ in 0..GATHER_YIELDS {
            tokio::task::yield_now().await;
        }
        loop {
            let batch = {
                let mut projects = self.inner.iam.lock();
                match projects.get_mut(&project) {
                    Some(waiting) if !waiting.is_empty() => std::mem::take(waiting),
                    _ => {
                        projects.remove(&project);
                        guard.finished = true;
                        return;
                    }
                }
            };
            let wanted: BTreeSet<Grant> = batch.iter().flat_map(|w| w.grants.iter().cloned()).collect();
            let result = self.grant_cycle(&project, &wanted).await;
            for waiter in batch {
                let answer = result.as_ref().map_err(Clone::clone).map(|added| {
                    // In the caller's order, each grant once.
                    let mut seen = BTreeSet::new();
                    waiter
                        .grants
                        .iter()
                        .filter(|g| added.contains(g) && seen.insert(*g))
                        .cloned()
                        .collect()
                });
                let _ = waiter.reply.send(answer);
            }
        }
    }

    /// get → add what is missing → set, until the set succeeds or fails for good.
    async fn grant_cycle(
        &self,
        project: &str,
        wanted: &BTreeSet<Grant>,
    ) -> Result<BTreeSet<Grant>, GcpError> {
        let scale = self.inner.time_scale;
        let mut aborted = Retry::new(&self.inner.retry, scale);
        let member_config = RetryConfig {
            max_attempts: u32::MAX,
            max_elapsed: Some(self.inner.retry.member_wait),
            ..self.inner.retry.clone()
        };
        let mut member = Retry::new(&member_config, scale);
        let mut first_missing: Option<BTreeSet<Grant>> = None;
        let set_path = format!("v3/projects/{project}:setIamPolicy");
        for cycle in 0u32.. {
            let read = self.project_policy(project).await?;
            let missing = missing_grants(&read, wanted);
            let added = first_missing
                .get_or_insert_with(|| missing.iter().cloned().collect())
                .clone();
            if missing.is_empty() {
                return Ok(added);
            }
            let mut policy = read.json;
            add_bindings(&mut policy, &missing);
            if let Some(hook) = self.inner.iam_hook.get() {
                hook(cycle).await;
            }
            let body = json!({ "policy": policy, "updateMask": "bindings,etag" });
            // The answer is the new policy: one without an etag (a bad answer) is retried, and
            // a resend of a set that did take effect meets ABORTED and restarts the cycle.
            let error = match self
                .post_as::<Policy>(&Api::ResourceManager, &set_path, &body, PostRetry::Safe)
                .await
            {
                Ok(_) => {
                    tracing::debug!(project, added = missing.len(), cycle, "IAM policy set");
                    return Ok(added);
                }
                Err(error) => error,
            };
            let delay: Option<Duration> = if error.is_aborted() {
                aborted.next_delay(None)
            } else if error.is_member_missing() {
                member.next_delay(None)
            } else {
                None
            };
            match delay {
                Some(delay) => {
                    tracing::debug!(project, status = %error.status, cycle, "IAM cycle restarts");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        }
        unreachable!("the cycle loop returns")
    }
}

struct LeaderGuard<'a> {
    coalescer: &'a Coalescer,
    project: &'a str,
    finished: bool,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.coalescer.lock().remove(self.project);
        }
    }
}

/// The wanted grants the policy does not hold as unconditional bindings.
pub(crate) fn missing_grants(policy: &Policy, wanted: &BTreeSet<Grant>) -> Vec<Grant> {
    wanted
        .iter()
        .filter(|grant| !policy.holds(&grant.role, &grant.member))
        .cloned()
        .collect()
}

/// Adds the grants as unconditional bindings (joining an existing one for the role) and
/// sets version 3; everything else in the policy is left as read.
pub(crate) fn add_bindings(policy: &mut Value, grants: &[Grant]) {
    if !policy.is_object() {
        *policy = json!({});
    }
    if !policy["bindings"].is_array() {
        policy["bindings"] = json!([]);
    }
    let bindings = policy["bindings"].as_array_mut().expect("made an array above");
    for grant in grants {
        let existing = bindings
            .iter_mut()
            .find(|b| b["role"] == grant.role.as_str() && b.get("condition").is_none_or(Value::is_null));
        match existing {
            Some(binding) => {
                if !binding["members"].is_array() {
                    binding["members"] = json!([]);
                }
                let members = binding["members"].as_array_mut().expect("an array");
                if !members.iter().any(|m| m == grant.member.as_str()) {
                    members.push(json!(grant.member));
                }
            }
            None => bindings.push(json!({ "role": grant.role, "members": [grant.member] })),
        }
    }
    policy["version"] = json!(3);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::Answer;

    fn parsed(policy: &Value) -> Policy {
        Policy::from_answer(policy.clone()).unwrap()
    }

    #[test]
    fn grants_join_unconditional_bindings_and_leave_conditional_ones_alone() {
        let mut policy = json!({ "etag": "BwE=", "version": 1, "auditConfigs": [{"service": "allServices"}], "bindings": [
            { "role": "roles/viewer", "members": ["user:a@example.com"] },
            { "role": "roles/editor", "members": ["user:b@example.com"],
              "condition": { "title": "t", "expression": "request.time < timestamp('2030-01-01T00:00:00Z')" } },
        ]});
        let wanted: BTreeSet<Grant> = [
            Grant::new("roles/viewer", "user:a@example.com"),
            Grant::new("roles/viewer", "user:c@example.com"),
            Grant::new("roles/editor", "user:b@example.com"),
        ]
        .into();
        let missing = missing_grants(&parsed(&policy), &wanted);
        assert_eq!(
            missing,
            [
                Grant::new("roles/editor", "user:b@example.com"),
                Grant::new("roles/viewer", "user:c@example.com")
            ],
            "a conditional binding does not count as the unconditional grant"
        );
        add_bindings(&mut policy, &missing);
        assert_eq!(policy["version"], 3);
        assert_eq!(policy["etag"], "BwE=");
        assert_eq!(policy["auditConfigs"][0]["service"], "allServices");
        let bindings = policy["bindings"].as_array().unwrap();
        assert_eq!(bindings.len(), 3);
        assert_eq!(
            bindings[0]["members"],
            json!(["user:a@example.com", "user:c@example.com"])
        );
        assert_eq!(
            bindings[1]["members"],
            json!(["user:b@example.com"]),
            "conditional binding untouched"
        );
        assert_eq!(
            bindings[2],
            json!({ "role": "roles/editor", "members": ["user:b@example.com"] })
        );
        assert!(missing_grants(&parsed(&policy), &wanted).is_empty());
    }

    #[test]
    fn an_empty_policy_gets_bindings() {
        let mut policy = json!({ "etag": "ACAB" });
        add_bindings(&mut policy, &[Grant::new("roles/viewer", "user:a@example.com")]);
        assert_eq!(policy["bindings"][0]["members"][0], "user:a@example.com");
    }
}
