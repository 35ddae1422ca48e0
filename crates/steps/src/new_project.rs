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
use sluice_engine::{
    async_trait, Applied, Change, KindSchema, Observation, OperationHandle, Outputs, ParamSpec, ParamType,
    PollOutcome, PollPolicy, StepContext, StepError, StepKind,
};
use sluice_gcp::{Api, Operation, OperationFamily, PostRetry};

use crate::checks;
use crate::cloud::Cloud;
use crate::common::{self, classify, number_of, optional_text, text};

pub struct NewProject {
    cloud: Cloud,
}

impl NewProject {
    pub fn new(cloud: Cloud) -> Self {
        NewProject { cloud }
    }
}

struct Wanted {
    project: String,
    parent: String,
    display_name: String,
    labels: BTreeMap<String, String>,
    owner: (String, String),
}

impl Wanted {
    fn from(cx: &StepContext) -> Result<Self, StepError> {
        let project = text(cx, "project")?.to_string();
        let owner_text = text(cx, "owner_label")?;
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
        match cx.params.get("labels") {
            None | Some(Value::Null) => {}
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
            display_name: optional_text(cx, "display_name").unwrap_or(&project).to_string(),
            parent: text(cx, "parent")?.to_string(),
            project,
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

/// What reading the project found.
enum Found {
    /// Ours, ACTIVE, under the wanted parent: outputs.
    Ours(Outputs),
    /// No project we can see with that id.
    Missing,
}

impl NewProject {
    /// Reads the project: ours and ACTIVE, missing, or a permanent error for anything else.
    /// `missing_is_taken`: after ALREADY_EXISTS, a project we cannot see is someone else's.
    async fn find(
        &self,
        cx: &StepContext,
        wanted: &Wanted,
        missing_is_taken: bool,
    ) -> Result<Found, StepError> {
        let client = self.cloud.client().await?;
        let path = format!("v3/projects/{}", wanted.project);
        let project = match client.get(&Api::ResourceManager, &path).await {
            Ok(project) => project,
            // Google answers 403 for a project that does not exist and for one we cannot see.
            Err(e) if e.is_not_found() || (e.is_permission_denied() && !e.is_service_disabled()) => {
                return if missing_is_taken {
                    Err(wanted.taken(cx))
                } else {
                    Ok(Found::Missing)
                };
            }
            Err(e) => {
                return Err(classify(
                    &self.cloud,
                    &format!("reading project {}", wanted.project),
                    e,
                ))
            }
        };
        self.judge(cx, wanted, &project).map(Found::Ours)
    }

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
impl StepKind for NewProject {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "a new project, created once and marked by the fleet's owner label",
            params: vec![
                ParamSpec::required("project", ParamType::String, "project id (global, never reused)"),
                ParamSpec::required("parent", ParamType::String, "organizations/N or folders/N"),
                ParamSpec::required(
                    "owner_label",
                    ParamType::String,
                    "KEY=VALUE marking projects this fleet created, like sluice-fleet=nightly",
                ),
                ParamSpec::optional(
                    "display_name",
                    ParamType::String,
                    "display name [default: the id]",
                ),
                ParamSpec::optional("labels", ParamType::Object, "more labels, set at creation"),
            ],
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

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let wanted = Wanted::from(cx)?;
        Ok(match self.find(cx, &wanted, false).await? {
            Found::Ours(outputs) => Observation::Converged(outputs),
            // The number is Google's to choose: steps reading it wait ("known after apply").
            Found::Missing => Observation::Diverged(
                Change::create(format!(
                    "create project {} under {} labelled {}",
                    wanted.project,
                    wanted.parent,
                    wanted.owner_text()
                ))
                .predicting(Outputs::from([
                    ("project_id".to_string(), json!(wanted.project)),
                    ("parent".to_string(), json!(wanted.parent)),
                ])),
            ),
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let wanted = Wanted::from(cx)?;
        if let Found::Ours(outputs) = self.find(cx, &wanted, false).await? {
            return Ok(Applied::Done(outputs));
        }
        let client = self.cloud.client().await?;
        let id = &wanted.project;
        // The id is ours: a repeat answers 409, handled below.
        match client
            .post_as::<Operation>(&Api::ResourceManager, "v3/projects", &wanted.body(), PostRetry::Safe)
            .await
        {
            Ok(operation) if operation.done => match common::finished(&self.cloud, operation) {
                Ok(project) => self.judge(cx, &wanted, &project).map(Applied::Done),
                Err(PollOutcome::Failed(error)) => Err(error),
                Err(_) => Err(StepError::retryable(format!("creating project {id}: observing again"))),
            },
            Ok(operation) => Ok(Applied::Started(common::handle(
                &OperationFamily::ResourceManager,
                &operation.name,
            ))),
            // A create whose answer was lost, or an id taken elsewhere.
            Err(e) if e.is_already_exists() => match self.find(cx, &wanted, true).await? {
                Found::Ours(outputs) => Ok(Applied::Done(outputs)),
                Found::Missing => Err(wanted.taken(cx)),
            },
            Err(e) if e.is_permission_denied() && !e.is_service_disabled() => Err(StepError::permanent(format!(
                "step `{}`: creating project {id}: {e}. The caller cannot create projects under {} \
                 (it needs resourcemanager.projects.create there, e.g. roles/resourcemanager.projectCreator), \
                 or that parent does not exist",
                cx.step_id, wanted.parent
            ))),
            Err(e) => Err(classify(&self.cloud, &format!("creating project {id}"), e)),
        }
    }

    fn poll_policy(&self) -> Option<PollPolicy> {
        Some(self.cloud.get_poll_policy())
    }

    async fn poll(&self, cx: &StepContext, handle: &OperationHandle) -> Result<PollOutcome, StepError> {
        let wanted = Wanted::from(cx)?;
        match common::poll_once(&self.cloud, cx, handle).await? {
            Err(outcome) => Ok(outcome),
            Ok(project) => Ok(PollOutcome::Done(self.judge(cx, &wanted, &project)?)),
        }
    }
}
