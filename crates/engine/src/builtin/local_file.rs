//! `local.file`: a file with the given content.
//!
//! Guarantees: after success the file holds exactly `content`; an existing file with that content
//! is left untouched (no write). Assumptions: nothing else writes the file concurrently.
//! Caveats: replaces the file atomically by rename, so hard links to it are not updated.

use std::path::Path;

use async_trait::async_trait;
use serde_json::Value;

use super::{read_if_exists, record_effect, write_atomically, EFFECTS_LOG};
use crate::error::StepError;
use crate::kind::{
    Applied, Change, KindSchema, Observation, Outputs, ParamSpec, ParamType, StepContext, StepKind,
};

pub struct LocalFile;

fn outputs(path: &str, content: &str) -> Outputs {
    Outputs::from([
        ("path".to_string(), Value::from(path)),
        ("bytes".to_string(), Value::from(content.len())),
    ])
}

#[async_trait]
impl StepKind for LocalFile {
    fn schema(&self) -> KindSchema {
        KindSchema {
            description: "writes a file with the given content",
            params: vec![
                ParamSpec::required("path", ParamType::String, "file to write"),
                ParamSpec::required("content", ParamType::String, "its content"),
                EFFECTS_LOG,
            ],
            outputs: vec!["path", "bytes"],
        }
    }

    async fn observe(&self, cx: &StepContext) -> Result<Observation, StepError> {
        let (path, content) = (cx.str_param("path")?, cx.str_param("content")?);
        Ok(match read_if_exists(cx, Path::new(path))? {
            Some(existing) if existing == content.as_bytes() => {
                Observation::Converged(outputs(path, content))
            }
            Some(_) => Observation::Diverged(
                Change::update(format!("rewrite {path}")).predicting(outputs(path, content)),
            ),
            None => Observation::Diverged(
                Change::create(format!("create {path}")).predicting(outputs(path, content)),
            ),
        })
    }

    async fn apply(&self, cx: &StepContext) -> Result<Applied, StepError> {
        let (path, content) = (cx.str_param("path")?, cx.str_param("content")?);
        write_atomically(cx, Path::new(path), content.as_bytes())?;
        record_effect(cx, "write", path)?;
        Ok(Applied::Done(outputs(path, content)))
    }
}
