//! The agents read model (agents.get / list): one agent per Service of type Agent, named after
//! the service, plus the agents Agent Runtime registered once they are visible.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::{not_found, parent, StoredService};
use crate::api::resources::{page, page_size, resume_after};
use crate::error::ApiError;
use crate::router::Call;
use crate::world::World;
use crate::Emulator;

/// The Agent a Service of type Agent results in.
pub(super) fn agent_of(service: &StoredService, location: &str) -> Option<(String, Value)> {
    let body = &service.body;
    let name = body["registryResource"].as_str()?;
    if !name.contains("/agents/") {
        return None;
    }
    let mut agent = json!({
        "name": name,
        "agentId": service.uid,
        "uid": service.uid,
        "location": location,
        "createTime": body["createTime"],
        "updateTime": body["updateTime"],
    });
    let card = &body["agentSpec"]["content"];
    let is_card = body["agentSpec"]["type"] == "A2A_AGENT_CARD";
    let text = |field: &str, card_field: &str| {
        body[field]
            .as_str()
            .filter(|s| !s.is_empty())
            .or_else(|| card[card_field].as_str().filter(|_| is_card))
            .map(str::to_string)
    };
    if let Some(display) = text("displayName", "name") {
        agent["displayName"] = json!(display);
    }
    if let Some(description) = text("description", "description") {
        agent["description"] = json!(description);
    }
    if is_card {
        agent["card"] =
            json!({ "type": "A2A_AGENT_CARD", "content": card.as_object().cloned().unwrap_or_default() });
        if let Some(version) = card["version"].as_str() {
            agent["version"] = json!(version);
        }
        let mut protocol = json!({ "type": "A2A_AGENT" });
        if let Some(version) = card["protocolVersion"].as_str() {
            protocol["protocolVersion"] = json!(version);
        }
        if let Some(url) = card["url"].as_str() {
            let binding = match card["preferredTransport"].as_str() {
                Some("GRPC") => "GRPC",
                Some("HTTP+JSON") => "HTTP_JSON",
                _ => "JSONRPC",
            };
            protocol["interfaces"] = json!([{ "url": url, "protocolBinding": binding }]);
        }
        agent["protocols"] = json!([protocol]);
    } else if let Some(interfaces) = body["interfaces"].as_array().filter(|i| !i.is_empty()) {
        agent["protocols"] = json!([{ "type": "CUSTOM", "interfaces": interfaces }]);
    }
    Some((name.to_string(), agent))
}

/// Every agent under `parent` at `now`, sorted by name; a runtime agent wins over a same-named
/// service's.
pub(super) fn agents(world: &World, parent: &str, location: &str, now: Duration) -> Vec<(String, Value)> {
    let prefix = format!("{parent}/");
    let mut all: BTreeMap<String, Value> = world
        .agent_registry
        .services
        .iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .filter_map(|(_, s)| agent_of(s, location))
        .collect();
    all.extend(
        world
            .agent_registry
            .runtime_agents
            .iter()
            .filter(|(name, (_, visible_at))| name.starts_with(&prefix) && *visible_at <= now)
            .map(|(name, (a, _))| (name.clone(), a.clone())),
    );
    all.into_iter().collect()
}

pub(super) fn list_agents(
    emulator: &Emulator,
    project: &str,
    location: &str,
    call: &Call,
) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let parent = parent(&mut world, project, location)?;
    let (page_size, after) = (
        page_size(call)?,
        resume_after(call, &format!("{parent}/agents/"))?,
    );
    Ok(page(
        agents(&world, &parent, location, emulator.clock.now()),
        "agents",
        page_size,
        after,
    ))
}

pub(super) fn get_agent(
    emulator: &Emulator,
    project: &str,
    location: &str,
    id: &str,
) -> Result<Value, ApiError> {
    let mut world = emulator.world();
    let parent = parent(&mut world, project, location)?;
    let name = format!("{parent}/agents/{id}");
    agents(&world, &parent, location, emulator.clock.now())
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, agent)| agent)
        .ok_or_else(|| not_found(&name))
}
