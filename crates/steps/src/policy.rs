//! `gcp.org_policy`: an organisation policy that enforces (or explicitly does not enforce) one
//! constraint on a project, folder or organisation.
//!
//! - **Guarantees:** `{parent}/policies/{constraint}` exists and its `spec.rules` are exactly
//!   `[{enforce: <enforce>}]`. It is created, or patched with the etag just read (a concurrent
//!   writer makes the patch fail with ABORTED, which is retried after a fresh read); a policy
//!   whose rules already match is left alone, and a patch keeps the policy's `dryRunSpec`.
//!   With `wait_until_effective`, the step finishes only once `getEffectivePolicy` on `parent`
//!   shows the constraint enforced (or not) as asked; its operation handle is
//!   `{"kind": "org_policy_effective", "parent": P, "constraint": C, "enforce": bool}`
//!   (re-read from the step's parameters; the handle only marks it as this kind's). A policy
//!   that already matches converges in `observe` without that wait.
//! - **Assumptions:** the policy is ours to set: other rules on it (conditions, allow/deny
//!   values, `inheritFromParent`, `reset`) are replaced by the single rule. A `custom.*`
//!   constraint must already exist in the parent's organisation (a `gcp.custom_constraint` step
//!   the policy step reads from). Google may name a project by number in its answers, so the
//!   step compares the policy's content, never its name.
//! - **Caveats:** enforcement takes up to 15 minutes after the policy is set (the seed); the step
//!   does not wait for that. `getEffectivePolicy` shows the *configured* merged state at once: it
//!   is not proof that enforcement has propagated, so even `wait_until_effective` can finish
//!   minutes before Google refuses anything. Nothing observable shows propagation short of an
//!   attempted create. Project-level calls need the Org Policy API usable in the project (a
//!   disabled API is reported as "not yet").

use serde_json::{json, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, OperationHandle, Outputs, ParamSpec, ParamType,
    PollOutcome, PollPolicy, StepContext, StepError, StepKind,
};
use sluice_gcp::{Api, PostRetry, Resource};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{classify, flag, read_optional, text};

const HANDLE_KIND: &str = "org_policy_effective";
const PROPAGATION: &str = "enforcement takes up to 15 minutes after the policy is set";

pub struct OrgPolicy {
    cloud: Cloud,
}

impl OrgPolicy {
    pub fn new(cloud: Cloud) -> Self {
        OrgPolicy { cloud }
    }
}

/// Checks a policy parent: `projects/P` (id or number), `folders/F` or `organizations/O`.
pub fn check_parent(parent: &str) -> Result<(), String> {
    let project = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
    };
    let ok = match parent.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", id] => project(id),
        ["folders", id] | ["organizations", id] => checks::numeric(id),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`parent` `{parent}` must be projects/PROJECT_ID, projects/NUMBER, folders/NUMBER or organizations/NUMBER"
        ))
    }
}

/// Checks a constraint name as it appears in a policy name (`custom.X`, `compute.Y`).
pub fn check_constraint(constraint: &str) -> Result<(), String> {
    let ok = !constraint.is_empty()
        && !constraint.starts_with('.')
        && constraint
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`constraint` `{constraint}` must be a constraint name like custom.allowlistedEgressAgentGatewaysForAgentEngine \
             (letters, digits, dots; no `constraints/` prefix)"
        ))
    }
}

/// Whether a policy's `spec` is exactly the single rule `{enforce: enforce}`.
fn rules_match(policy: &Value, enforce: bool) -> bool {
    policy["spec"]["rules"].as_array().is_some_and(|rules| {
        rules.len() == 1
            && rules[0].as_object().is_some_and(|r| r.len() == 1)
            && rules[0]["enforce"] == enforce
    })
}

/// Whether merged rules enforce the constraint (any rule with `enforce: true`).
fn enforced(policy: &Value) -> bool {
    policy["spec"]["rules"]
        .as_array()
        .is_some_and(|rules| rules.iter().any(|r| r["enforce"] == true))
}

struct Wanted {
    parent: String,
    constraint: String,
    enforce: bool,
    wait: bool,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let bad = |message: String| StepError::permanent(format!("step `{}`: {message}", cx.step_id));
        let parent = text(cx, "parent")?.trim().trim_end_matches('/').to_string();
        check_parent(&parent).map_err(bad)?;
        let constraint = text(cx, "constraint")?.trim().to_string();
        check_constraint(&constraint).map_err(bad)?;
        Ok(Wanted {
            parent,
            constraint,
            enforce: flag(cx, "enforce", true)?,
            wait: flag(cx, "wait_until_effective", false)?,
        })
    }
    fn name(&self) -> String {
        format!("{}/policies/{}", self.parent, self.constraint)
    }
    fn path(&self) -> String {
        format!("v2/{}", self.name())
    }
    fn outputs(&self) -> Outputs {
        Outputs::from([
            ("name".to_string(), json!(self.name())),
            ("constraint".to_string(), json!(self.constraint)),
            ("enforced".to_string(), json!(self.enforce)),
        ])
    }
    fn spec(&self) -> Value {
        json!({ "rules": [{ "enforce": self.enforce }] })
    }
    fn verb(&self) -> &'static str {
        if self.enforce {
            "enforcing"
        } else {
            "not enforcing"
        }
    }
    fn handle(&self) -> OperationHandle {
        OperationHandle(json!({
            "kind": HANDLE_KIND,
            "parent": self.parent,
            "constraint": self.constraint,
            "enforce": self.enforce,
        }))
    }
}

impl OrgPolicy {
    async fn read(&self, wanted: &Wanted) -> Result<Option<Value>, StepError> {
        let doing = format!("reading org policy {}", wanted.name());
        read_optional(&self.cloud, &Api::OrgPolicy, &wanted.path(), &doing).await
    }

    /// Patches the policy with its current etag unless its rules already match.
    async fn correct(&self, wanted: &Wanted, live: &Value) -> Result<(), StepError> {
        if rules_match(live, wanted.enforce) {
            return Ok(());
        }
        let mut body = json!({ "name": wanted.name(), "spec": wanted.spec() });
        if let Some(etag) = live.get("etag").filter(|e| e.is_string()) {
            body["etag"] = etag.clone();
        }
        if let Some(dry_run) = live.get("dryRunSpec").filter(|d| !d.is_null()) {
            let mut dry_run = dry_run.clone();
            if let Some(object) = dry_run.as_object_mut() {
                // Output-only fields Google sets itself.
                object.remove("updateTime");
                object.remove("etag");
            }
            body["dryRunSpec"] = dry_run;
        }
        let client = self.cloud.client().await?;
        client
            .patch_as::<Resource>(&Api::OrgPolicy, &wanted.path(), &body)
            .await
            .map_err(|e| {
                // A stale etag answers 409 ABORTED, which `classify` makes retryable: the step
                // reads the policy again and patches with the fresh etag.
                classify(&self.cloud, &format!("updating org policy {}", wanted.name()), e)
            })?;
        Ok(())
    }

    fn finish(&self, wanted: &Wanted) -> Applied {
        tracing::info!(
            policy = %wanted.name(),
            enforce = wanted.enforce,
            "org policy set: {PROPAGATION}"
        );
        if wanted.wait {
            Applied::Started(wanted.handle())
        } else {
            Applied::Done(wanted.outputs())
        }
    }
}

#[async_trait]
impl StepKind for OrgPolicy {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "an org policy enforcing one constraint on a project, folder or organisation",
            params: vec![
                ParamSpec::required(
                    "parent",
                    ParamType::String,
                    "projects/PROJECT, folders/NUMBER or organizations/NUMBER",
                ),
                ParamSpec::required(
                    "constraint",
                    ParamType::String,
                    "constraint name, e.g. custom.allowlistedEgressAgentGatewaysForAgentEngine",
                ),
                ParamSpec::optional("enforce", ParamType::Bool, "enforce the constraint [default: true]"),
                ParamSpec::optional(
                    "wait_until_effective",
                    ParamType::Bool,
                    "finish only when getEffectivePolicy shows it (configured, not yet propagated) [default: false]",
                ),
            ],
            outputs: vec!["name", "constraint", "enforced"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("parent", &check_parent)
            .string("constraint", &check_constraint)
            .done()
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let wanted = Wanted::from(cx)?;
        let name = wanted.name();
        Ok(match self.read(&wanted).await? {
            None => Observation::Diverged(
                Change::create(format!(
                    "create org policy {name} {} {} ({PROPAGATION})",
                    wanted.verb(),
                    wanted.constraint
                ))
                .predicting(wanted.outputs()),
            ),
            Some(live) if rules_match(&live, wanted.enforce) => Observation::Converged(wanted.outputs()),
            Some(live) => Observation::Diverged(
                Change::update(format!(
                    "org policy {name}: set rules to [{{enforce: {}}}] (now {}; {PROPAGATION})",
                    wanted.enforce,
                    live["spec"].get("rules").cloned().unwrap_or(Value::Null)
                ))
                .predicting(wanted.outputs()),
            ),
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let wanted = Wanted::from(cx)?;
        let name = wanted.name();
        if let Some(live) = self.read(&wanted).await? {
            self.correct(&wanted, &live).await?;
            return Ok(self.finish(&wanted));
        }
        let client = self.cloud.client().await?;
        let body = json!({ "name": name, "spec": wanted.spec() });
        let created = client
            .post_as::<Resource>(
                &Api::OrgPolicy,
                &format!("v2/{}/policies", wanted.parent),
                &body,
                // The name is ours: a repeat answers 409, handled below.
                PostRetry::Safe,
            )
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => match self.read(&wanted).await? {
                Some(live) => self.correct(&wanted, &live).await?,
                None => {
                    return Err(StepError::retryable(format!(
                        "org policy {name} exists and does not; reading again"
                    )))
                }
            },
            Err(e) => return Err(classify(&self.cloud, &format!("creating org policy {name}"), e)),
        }
        Ok(self.finish(&wanted))
    }

    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let wanted = Wanted::from(cx)?;
        if handle.0["kind"] != HANDLE_KIND || handle.0["enforce"].as_bool().is_none() {
            return Err(StepError::permanent(format!(
                "step `{}`: operation handle {} is not one this kind wrote",
                cx.step_id, handle.0
            )));
        }
        let path = format!("{}:getEffectivePolicy", wanted.path());
        let effective = self
            .cloud
            .client()
            .await?
            .get(&Api::OrgPolicy, &path)
            .await
            .map_err(|e| {
                classify(
                    &self.cloud,
                    &format!("reading the effective policy {}", wanted.name()),
                    e,
                )
            })?;
        if enforced(&effective) == wanted.enforce {
            Ok(PollOutcome::Done(wanted.outputs()))
        } else {
            Ok(PollOutcome::Pending {
                progress: Some(format!(
                    "waiting for the effective policy of {} to show {} {}",
                    wanted.parent,
                    wanted.verb(),
                    wanted.constraint
                )),
            })
        }
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(self.cloud.get_poll_policy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_have_three_shapes() {
        for ok in [
            "projects/sluice-demo",
            "projects/100000000001",
            "folders/55",
            "organizations/123456789012",
        ] {
            assert!(check_parent(ok).is_ok(), "{ok}");
        }
        for bad in [
            "sluice-demo",
            "projects/",
            "folders/abc",
            "organizations/acme",
            "projects/a/b",
            "billingAccounts/1",
        ] {
            let error = check_parent(bad).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
            assert!(error.contains("folders/NUMBER"), "{error}");
        }
    }

    fn context(params: Value) -> StepContext {
        StepContext {
            run_id: "run".into(),
            step_id: "egress_policy".into(),
            params: params.as_object().cloned().unwrap(),
            idempotency_key: "key".into(),
            attempt: 1,
        }
    }

    #[test]
    fn parameters_are_checked_with_clear_messages() {
        let wanted = Wanted::from(&context(json!({ "parent": "projects/sluice-demo",
            "constraint": "custom.egress" })))
        .unwrap();
        assert!(wanted.enforce && !wanted.wait, "defaults: enforce, do not wait");
        assert_eq!(wanted.name(), "projects/sluice-demo/policies/custom.egress");
        let error = |params: Value| match Wanted::from(&context(params)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.message().to_string(),
        };
        let message = error(json!({ "parent": "sluice-demo", "constraint": "custom.egress" }));
        assert!(
            message.starts_with("step `egress_policy`") && message.contains("`sluice-demo`"),
            "{message}"
        );
        let message =
            error(json!({ "parent": "projects/p", "constraint": "custom.egress", "enforce": "yes" }));
        assert!(message.contains("`enforce` must be true or false"), "{message}");
    }

    #[test]
    fn handles_carry_what_poll_needs() {
        let wanted = Wanted::from(&context(json!({ "parent": "folders/55",
            "constraint": "custom.egress", "enforce": false, "wait_until_effective": true })))
        .unwrap();
        assert_eq!(
            wanted.handle().0,
            json!({ "kind": "org_policy_effective", "parent": "folders/55",
                    "constraint": "custom.egress", "enforce": false })
        );
    }

    #[test]
    fn constraints_are_bare_names() {
        assert!(check_constraint("custom.allowlistedEgressAgentGatewaysForAgentEngine").is_ok());
        assert!(check_constraint("compute.disableSerialPortAccess").is_ok());
        assert!(check_constraint("constraints/compute.x")
            .unwrap_err()
            .contains("no `constraints/` prefix"));
        assert!(check_constraint("").is_err());
    }

    #[test]
    fn rules_match_only_the_single_rule() {
        let policy = |rules: Value| json!({ "name": "projects/1/policies/custom.x", "spec": { "rules": rules, "updateTime": "t" } });
        assert!(rules_match(&policy(json!([{ "enforce": true }])), true));
        assert!(!rules_match(&policy(json!([{ "enforce": true }])), false));
        assert!(rules_match(&policy(json!([{ "enforce": false }])), false));
        assert!(!rules_match(
            &policy(json!([{ "enforce": true }, { "enforce": false }])),
            true
        ));
        assert!(!rules_match(
            &policy(json!([{ "enforce": true, "condition": { "expression": "x" } }])),
            true
        ));
        assert!(!rules_match(&json!({ "name": "n" }), true));
        assert!(enforced(&policy(
            json!([{ "enforce": false }, { "enforce": true }])
        )));
        assert!(!enforced(&json!({ "spec": {} })));
    }
}
