//! The resource hierarchy (organisation → folder → project) and how rules are inherited down it.

use serde_json::Value;

use super::Content;
use crate::error::ApiError;
use crate::world::World;
use crate::Emulator;

/// Copies folder parents from the configuration into the state (see `folder_orgs`).
pub(super) fn sync_folders(emulator: &Emulator, world: &mut World) {
    for org in &emulator.config.organizations {
        for folder in &org.folders {
            world
                .org_policy
                .folder_orgs
                .insert(folder.id.clone(), org.id.clone());
        }
    }
}

/// The canonical resource name (`projects/NUMBER`, `folders/F`, `organizations/O`).
pub(super) fn canonical(
    emulator: &Emulator,
    world: &mut World,
    kind: &str,
    id: &str,
) -> Result<String, ApiError> {
    match kind {
        "projects" => Ok(format!("projects/{}", world.project_mut(id)?.number)),
        "folders" if world.org_policy.folder_orgs.contains_key(id) => Ok(format!("folders/{id}")),
        "organizations" if emulator.config.organizations.iter().any(|o| o.id == id) => {
            Ok(format!("organizations/{id}"))
        }
        _ => Err(ApiError::permission_denied(format!(
            "Permission denied on resource '{kind}/{id}' (or it may not exist)."
        ))),
    }
}

/// The resource and its ancestors, organisation first, from a canonical name.
pub(super) fn chain(world: &World, resource: &str) -> Vec<String> {
    let mut out = vec![resource.to_string()];
    let mut current = resource.to_string();
    loop {
        let parent = if let Some(number) = current.strip_prefix("projects/") {
            world
                .projects
                .iter()
                .find(|p| p.number.to_string() == number || p.id == number)
                .map(|p| p.parent.clone())
        } else if let Some(folder) = current.strip_prefix("folders/") {
            world
                .org_policy
                .folder_orgs
                .get(folder)
                .map(|org| format!("organizations/{org}"))
        } else {
            None
        };
        match parent {
            Some(parent) => {
                out.push(parent.clone());
                current = parent;
            }
            None => break,
        }
    }
    out.reverse();
    out
}

pub(super) fn organization_of(chain: &[String]) -> Option<&str> {
    chain.first().and_then(|r| r.strip_prefix("organizations/"))
}

/// Merged rules of one spec kind down the chain (see the module notes), or None when no level
/// has such a spec. `pick` chooses the spec of a level.
pub(super) fn merged_rules<'a>(
    levels: impl Iterator<Item = Option<&'a Content>>,
    pick: fn(&Content) -> Option<&Value>,
) -> Option<Vec<Value>> {
    let mut rules: Option<Vec<Value>> = None;
    for content in levels.flatten() {
        let Some(spec) = pick(content) else { continue };
        let own: Vec<Value> = spec["rules"].as_array().cloned().unwrap_or_default();
        if spec["reset"].as_bool() == Some(true) {
            rules = Some(own);
        } else if spec["inheritFromParent"].as_bool() == Some(true) {
            rules.get_or_insert_with(Vec::new).extend(own);
        } else {
            rules = Some(own);
        }
    }
    rules
}
