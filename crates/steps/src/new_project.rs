//! `gcp.new_project`: a new project, created once and marked as the fleet's by an owner label.
//!
//! - **Guarantees:** when the step succeeds, project `project` exists, is ACTIVE, is under
//!   `parent`, and carries `owner_label` (`KEY=VALUE`); outputs `project_id`, `project_number`
//!   and `parent`. It is created at most once: the id is chosen here, so a create repeated after
//!   a lost answer is 409 ALREADY_EXISTS, and the step then adopts the project if it carries our
//!   owner label. A create refused by the organisation's creation quota (429) is retried after
//!   the server's delay.
//! - **Assumptions:** a project with this id and the owner label was created by this fleet
//!   (ours); one without it is someone else's. Project ids are global across Google Cloud and
//!   never reused, even after deletion, so a taken id can only be fixed by choosing another.
//!   The caller has `resourcemanager.projects.create` on `parent` (roles/resourcemanager.projectCreator)
//!   and becomes the project's owner. Resource Manager is client-based: its API must be enabled
//!   in the caller's quota project (the new project has only Google's default APIs).
//! - **Caveats:** `labels` and `display_name` are set only when the project is created; a
//!   project of ours found with other labels or another display name is left as it is (only
//!   the owner label counts, and a missing wanted label is logged). A project of ours under
//!   another parent, or whose deletion was requested (DELETE_REQUESTED), fails the step for
//!   good: the step never moves or undeletes a project, and says how to.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sluice_engine::{async_trait, Change, KindSchema, Outputs, PollOutcome, StepContext, StepError};
use sluice_gcp::{Api, GcpError, OperationFamily, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{classify, number_of};
use crate::reconcile::{Absent, Claim, CreateError, Lookup, Mutated, Resource, Step, Verdict};

pub struct NewProject {
    cloud: Cloud,
}

impl NewProject {
    pub fn new(cloud: Cloud) -> Self {
        NewProject { cloud }
    }
}

params! {
    /// The parameters of `gcp.new_project`.
    struct NewProjectParams {
        project: text => "project id (global, never reused)",
        parent: text => "organizations/N or folders/N",
        owner_label: text => "KEY=VALUE marking projects this fleet created, like sluice-fleet=nightly",
        display_name: opt_text => "display name [default: the id]",
        labels: object => "more labels, set at creation",
    }
}

pub struct Wanted {
    project: String,
    parent: String,
    display_name: String,
    labels: BTreeMap<String, String>,
    owner: (String, String),
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let params = NewProjectParams::parse(cx)?;
        let owner_text = &params.owner_label;
        let owner = owner_text
            .split_once('=')
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .ok_or_else(|| {
                StepError::permanent(format!(
                    "step `{}`: `owner_label` is `{owner_text}`; write it KEY=VALUE, like sluice-fleet=nightly",
                    cx.step_id
                ))
            })?;
        let mut labels = BTreeMap::new();
        match params.labels {
            None => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let value = value.as_str().ok_or_else(|| {
                        StepError::permanent(format!(
                            "step `{}`: label `{key}` must be a string, found {value}",
                            cx.step_id
                        ))
                    })?;
                    labels.insert(key.clone(), value.to_string());
                }
            }
            Some(other) => {
                return Err(StepError::permanent(format!(
                    "step `{}`: `labels` must be an object of strings, found {other}",
                    cx.step_id
                )))
            }
        }
        labels.insert(owner.0.clone(), owner.1.clone());
        Ok(Wanted {
            display_name: params.display_name.unwrap_or_else(|| params.project.clone()),
            parent: params.parent,
            project: params.project,
            labels,
            owner,
        })
    }

    fn outputs(&self, number: &str) -> Outputs {
        Outputs::from([
            ("project_id".to_string(), json!(self.project)),
            ("project_number".to_string(), json!(number)),
            ("parent".to_string(), json!(self.parent)),
        ])
    }

    fn body(&self) -> Value {
        json!({
            "projectId": self.project, "parent": self.parent,
            "displayName": self.display_name, "labels": self.labels,
        })
    }

    fn owner_text(&self) -> String {
        format!("{}={}", self.owner.0, self.owner.1)
    }

    fn is_ours(&self, project: &Value) -> bool {
        project["labels"][&self.owner.0].as_str() == Some(self.owner.1.as_str())
    }

    fn taken(&self, cx: &StepContext) -> StepError {
        StepError::permanent(format!(
            "step `{}`: project id {} is taken by someone else (it exists without the label {}, or \
             the caller cannot see it); project ids are global and never reused, even after \
             deletion: pick another id pattern",
            cx.step_id,
            self.project,
            self.owner_text()
        ))
    }
}

impl NewProject {
    /// Outputs for a project of ours that is ACTIVE under the wanted parent; else why not.
    fn judge(&self, cx: &StepContext, wanted: &Wanted, project: &Value) -> Result<Outputs, StepError> {
        let id = &wanted.project;
        if !wanted.is_ours(project) {
            return Err(wanted.taken(cx));
        }
        let state = project["state"].as_str().unwrap_or("STATE_UNSPECIFIED");
        if state == "DELETE_REQUESTED" {
            return Err(StepError::permanent(format!(
                "step `{}`: project {id} is ours (label {}) but its deletion was requested \
                 (DELETE_REQUESTED); restore it with `gcloud projects undelete {id}` and run again, \
                 or pick another id (ids are never reused)",
                cx.step_id,
                wanted.owner_text()
            )));
        }
        let parent = project["parent"].as_str().unwrap_or_default();
        if parent != wanted.parent {
            return Err(StepError::permanent(format!(
                "step `{}`: project {id} is ours but under {parent}, not {}; this step never moves \
                 projects: run `gcloud projects move {id} --{}` or change `parent`",
                cx.step_id,
                wanted.parent,
                wanted.parent.replacen("s/", "=", 1)
            )));
        }
        let missing: Vec<String> = wanted
            .labels
            .iter()
            .filter(|(k, v)| project["labels"][k.as_str()].as_str() != Some(v.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                project = %id,
                "project {id} lacks the labels {}; labels are set only at creation",
                missing.join(", ")
            );
        }
        let number = project["name"].as_str().and_then(number_of).ok_or_else(|| {
            StepError::retryable(format!("project {id} was answered without its number: {project}"))
        })?;
        Ok(wanted.outputs(&number))
    }
}

#[async_trait]
impl Resource for NewProject {
    type Wanted = Wanted;
    type Live = Value;

    fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "a new project, created once and marked by the fleet's owner label",
            params: NewProjectParams::specs(),
            outputs: vec!["project_id", "project_number", "parent"],
        }
    }

    fn check(&self, params: &serde_json::Map<String, Value>) -> Vec<sluice_engine::ParamProblem> {
        checks::Checks::new(params)
            .string("project", &checks::project_id)
            .string("parent", &checks::project_parent)
            .string("owner_label", &checks::key_value_label)
            .string("display_name", &checks::project_display_name)
            .labels("labels")
            .done()
    }

    fn wanted(&self, cx: &StepContext) -> Result<Wanted, StepError> {
        Wanted::from(cx)
    }

    fn describe(&self, wanted: &Wanted) -> String {
        format!("project {}", wanted.project)
    }

    /// Resource Manager is client-based: a read is strict whatever `reading` says.
    async fn find(&self, lookup: Lookup<'_, Wanted>) -> Result<Option<Value>, StepError> {
        let Lookup { wanted, .. } = lookup;
        let client = self.cloud.client().await?;
        let path = format!("v3/projects/{}", wanted.project);
        match client.get(&Api::ResourceManager, &path).await {
            Ok(project) => Ok(Some(project)),
            // Google answers 403 for a project that does not exist and for one we cannot see.
            Err(e) if e.is_not_found() || (e.is_permission_denied() && !e.is_service_disabled()) => Ok(None),
            Err(e) => Err(classify(
                &self.cloud,
                &format!("reading project {}", wanted.project),
                e,
            )),
        }
    }

    /// Ours only with the owner label; a project id is global, so one without it is taken.
    fn claim(&self, step: Step<'_, Wanted>, project: &Value) -> Claim {
        let Step { cx, wanted } = step;
        if wanted.is_ours(project) {
            Claim::Ours
        } else {
            Claim::Foreign(wanted.taken(cx))
        }
    }

    async fn examine(&self, step: Step<'_, Wanted>, project: &Value) -> Result<Verdict, StepError> {
        let Step { cx, wanted } = step;
        self.judge(cx, wanted, project).map(Verdict::Converged)
    }

    // The number is Google's to choose: steps reading it wait ("known after apply").
    fn create_change(&self, wanted: &Wanted) -> Change {
        Change::create(format!(
            "create project {} under {} labelled {}",
            wanted.project,
            wanted.parent,
            wanted.owner_text()
        ))
        .predicting(Outputs::from([
            ("project_id".to_string(), json!(wanted.project)),
            ("parent".to_string(), json!(wanted.parent)),
        ]))
    }

    async fn create(&self, step: Step<'_, Wanted>, _absent: Absent) -> Result<Mutated, CreateError> {
        let Step { wanted, .. } = step;
        let client = self.cloud.client().await?;
        // The id is ours: a repeat answers 409.
        let operation = client
            .post_as(
                &Api::ResourceManager,
                "v3/projects",
                &wanted.body(),
                PostRetry::Safe,
            )
            .await?;
        Ok(Mutated::Operation(OperationFamily::ResourceManager, operation))
    }

    fn create_refused(&self, step: Step<'_, Wanted>, e: GcpError) -> StepError {
        let Step { cx, wanted } = step;
        let id = &wanted.project;
        if e.is_permission_denied() && !e.is_service_disabled() {
            return StepError::permanent(format!(
                "step `{}`: creating project {id}: {e}. The caller cannot create projects under {} \
                 (it needs resourcemanager.projects.create there, e.g. roles/resourcemanager.projectCreator), \
                 or that parent does not exist",
                cx.step_id, wanted.parent
            ));
        }
        classify(&self.cloud, &format!("creating project {id}"), e)
    }

    /// ALREADY_EXISTS and nothing we can see: the id is someone else's.
    fn missing_after_conflict(&self, step: Step<'_, Wanted>) -> StepError {
        let Step { cx, wanted } = step;
        wanted.taken(cx)
    }

    async fn completed(&self, step: Step<'_, Wanted>, project: Value) -> Result<PollOutcome, StepError> {
        let Step { cx, wanted } = step;
        Ok(PollOutcome::Done(self.judge(cx, wanted, &project)?))
    }
}
