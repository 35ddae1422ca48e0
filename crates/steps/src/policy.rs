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

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, OperationHandle, Outputs, PollOutcome, StepContext, StepError,
};
use sluice_gcp::{Api, PostRetry, Resource as Answer};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, classify, read_optional};
use crate::reconcile::{Absent, CreateError, Current, Lookup, Mutated, Resource, Step, Verdict};

/// The handle of the wait for enforcement to take effect (Org Policy has no operations),
/// stored in step records as `{"kind": "org_policy_effective", "parent", "constraint",
/// "enforce"}`.
#[derive(Debug, Serialize, Deserialize)]
struct EffectiveWait {
    kind: EffectiveKind,
    parent: String,
    constraint: String,
    enforce: bool,
}

/// The one kind an [`EffectiveWait`] has (its tag, so that no other handle reads as one).
#[derive(Debug, Serialize, Deserialize)]
enum EffectiveKind {
    #[serde(rename = "org_policy_effective")]
    OrgPolicyEffective,
}
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

params! {
    /// The parameters of `gcp.org_policy`.
    struct PolicyParams {
        parent: text => "projects/PROJECT, folders/NUMBER or organizations/NUMBER",
        constraint: text => "constraint name, e.g. custom.allowlistedEgressAgentGatewaysForAgentEngine",
        enforce: flag(true) => "enforce the constraint [default: true]",
        wait_until_effective: flag(false) =>
            "finish only when getEffectivePolicy shows it (configured, not yet propagated) [default: false]",
    }
}

pub struct Wanted {
    parent: String,
    constraint: String,
    enforce: bool,
    wait: bool,
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let bad = |message: String| StepError::permanent(format!("step `{}`: {message}", cx.step_id));
        let params = PolicyParams::parse(cx)?;
        let parent = params.parent.trim().trim_end_matches('/').to_string();
        check_parent(&parent).map_err(bad)?;
        let constraint = params.constraint.trim().to_string();
        check_constraint(&constraint).map_err(bad)?;
        Ok(Wanted {
            parent,
            constraint,
            enforce: params.enforce,
            wait: params.wait_until_effective,
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
        common::stored_handle(&EffectiveWait {
            kind: EffectiveKind::OrgPolicyEffective,
            parent: self.parent.clone(),
            constraint: self.constraint.clone(),
            enforce: self.enforce,
        })
    }
}

#[async_trait]
impl Resource for OrgPolicy {
    type Wanted = Wanted;
    type Live = Value;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "an org policy enforcing one constraint on a project, folder or organisation",
            params: PolicyParams::specs(),
            outputs: vec!["name", "constraint", "enforced"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, serde_json::Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("parent", &check_parent)
            .string("constraint", &check_constraint)
            .done()
    }

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("org policy {}", wanted.name())
    }

    /// Read strictly whatever `reading` says (a disabled API is "not yet").
    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Value>, StepError> {
        let Lookup { wanted, .. } = lookup;
        let doing = format!("reading org policy {}", wanted.name());
        read_optional(&self.cloud, &Api::OrgPolicy, &wanted.path(), &doing).await
    }

    async fn examine(&self, step: Step<'_, Wanted>, live: &Value) -> Result<Verdict, StepError> {
        let Step { wanted, .. } = step;
        if rules_match(live, wanted.enforce) {
            return Ok(Verdict::Converged(wanted.outputs()));
        }
        Ok(Verdict::Drift(
            Change::update(format!(
                "org policy {}: set rules to [{{enforce: {}}}] (now {}; {PROPAGATION})",
                wanted.name(),
                wanted.enforce,
                live["spec"].get("rules").cloned().unwrap_or(Value::Null)
            ))
            .predicting(wanted.outputs()),
        ))
    }

    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "create org policy {} {} {} ({PROPAGATION})",
            wanted.name(),
            wanted.verb(),
            wanted.constraint
        ))
        .predicting(wanted.outputs())
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let Step { wanted, .. } = step;
        let client = self.cloud.client().await?;
        let body = json!({ "name": wanted.name(), "spec": wanted.spec() });
        // The name is ours: a repeat answers 409.
        client
            .post_as::<Answer>(
                &Api::OrgPolicy,
                &format!("v2/{}/policies", wanted.parent),
                &body,
                PostRetry::Safe,
            )
            .await?;
        Ok(Mutated::Applied(self.finish(wanted, wanted.outputs())))
    }

    fn missing_after_conflict(&self, step: Step<'_, Wanted>) -> StepError {
        let Step { wanted, .. } = step;
        StepError::retryable(format!(
            "org policy {} exists and does not; reading again",
            wanted.name()
        ))
    }

    /// Patches the policy with the etag just read, keeping its `dryRunSpec`.
    async fn patch(&self, step: Step<'_, Wanted>, live: Current<'_, Value>) -> Result<Mutated, StepError> {
        let Step { wanted, .. } = step;
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
            .patch_as::<Answer>(&Api::OrgPolicy, &wanted.path(), &body)
            .await
            .map_err(|e| {
                // A stale etag answers 409 ABORTED, which `classify` makes retryable: the step
                // reads the policy again and patches with the fresh etag.
                classify(&self.cloud, &format!("updating org policy {}", wanted.name()), e)
            })?;
        Ok(Mutated::Applied(self.finish(wanted, wanted.outputs())))
    }

    /// Set: done, or (with `wait_until_effective`) waiting for the effective policy.
    fn finish(&self, wanted: &Wanted, outputs: Outputs) -> Applied {
        tracing::info!(
            policy = %wanted.name(),
            enforce = wanted.enforce,
            "org policy set: {PROPAGATION}"
        );
        if wanted.wait {
            Applied::Started(wanted.handle())
        } else {
            Applied::Done(outputs)
        }
    }

    async fn poll_own(
        &self,
        step: Step<'_, Wanted>,
        handle: &OperationHandle,
    ) -> Option<Result<PollOutcome, StepError>> {
        let Step { cx, wanted } = step;
        if let Err(damaged) = common::read_stored::<EffectiveWait>(cx, handle) {
            return Some(Err(damaged));
        }
        Some(self.effective(wanted).await)
    }
}

impl OrgPolicy {
    /// Done once `getEffectivePolicy` shows the constraint as wanted.
    async fn effective(&self, wanted: &Wanted) -> Result<PollOutcome, StepError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enforcement_wait_handle_reads_back_in_the_shape_every_version_stored() {
        let stored = json!({ "kind": "org_policy_effective", "parent": "projects/p",
            "constraint": "custom.egress", "enforce": true });
        let cx = StepContext {
            run_id: "r".into(),
            step_id: "policy".into(),
            params: Default::default(),
            idempotency_key: "k/policy".into(),
            attempt: 1,
        };
        let wait: EffectiveWait = common::read_stored(&cx, &OperationHandle(stored.clone())).unwrap();
        assert!(wait.enforce);
        assert_eq!(common::stored_handle(&wait).0, stored);
        let without_enforce = json!({ "kind": "org_policy_effective", "parent": "projects/p",
            "constraint": "custom.egress" });
        assert!(common::read_stored::<EffectiveWait>(&cx, &OperationHandle(without_enforce)).is_err());
    }

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
