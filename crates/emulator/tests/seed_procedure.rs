//! The seed guide's procedure end to end, in plain HTTP calls against the emulator (not through
//! Sluice's steps), from a fresh project to a bound, registered agent under an enforced
//! allowlist; then the three refusals: a second egress gateway, unbinding, and a gateway that is
//! not on the allowlist. Time passes by advancing the emulated clock.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use sluice_emulator::EmulatorConfig;
use support::Client;

const PROJECT: &str = "sluice-demo";
const NUMBER: &str = "100000000001";
const ORG: &str = "123456789012";
const LOCATION: &str = "v1/projects/sluice-demo/locations/us-central1";
const CONSTRAINT: &str = "custom.allowlistedEgressAgentGatewaysForAgentEngine";

/// Waits on an operation by advancing emulated time, then returns it done.
async fn finish(client: &Client, operation: &Value, seconds: f64) -> Value {
    let name = operation["name"].as_str().expect("an operation");
    client.advance(seconds).await;
    let (status, done) = client.call(Method::GET, &format!("v1/{name}"), None).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["done"], true, "{done}");
    assert!(done.get("error").is_none(), "the operation failed: {done}");
    done
}

fn engine(display_name: &str, gateway: &str) -> Value {
    json!({
        "displayName": display_name,
        "spec": {
            "packageSpec": { "pickleObjectGcsUri": "gs://bucket/agent.pkl", "pythonVersion": "3.12" },
            "identityType": "AGENT_IDENTITY",
            "deploymentSpec": { "agentGatewayConfig": { "agentToAnywhereConfig": { "agentGateway": gateway } } },
        }
    })
}

#[tokio::test]
async fn the_seed_procedure_reaches_a_bound_registered_agent_and_refuses_what_it_forbids() {
    let (_emulator, client) = Client::start_with(EmulatorConfig::default()).await;

    // Enable the APIs (the project starts with none).
    let apis = [
        "iam",
        "cloudresourcemanager",
        "networkservices",
        "aiplatform",
        "agentregistry",
        "orgpolicy",
    ];
    let ids: Vec<String> = apis.iter().map(|a| format!("{a}.googleapis.com")).collect();
    let (status, enabling) = client
        .call(
            Method::POST,
            &format!("v1/projects/{PROJECT}/services:batchEnable"),
            Some(json!({ "serviceIds": ids })),
        )
        .await;
    assert_eq!(status, 200);
    finish(&client, &enabling, 5.0).await;
    client.advance(60.0).await;

    // 1. The Reasoning Engine service identity.
    let (status, identity) = client
        .call(
            Method::POST,
            &format!("v1beta1/projects/{PROJECT}/services/aiplatform.googleapis.com:generateServiceIdentity"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, identity["name"].as_str()),
        (200, Some("finished.DONE_OPERATION"))
    );
    let agent = format!("serviceAccount:service-{NUMBER}@gcp-sa-aiplatform-re.iam.gserviceaccount.com");

    // 2. The custom role with exactly the three permissions.
    let role = json!({ "roleId": "agentGatewayUser", "role": {
        "title": "Custom Agent Gateway access role", "description": "Custom role for Agent Gateway",
        "includedPermissions": ["networkservices.operations.get", "networkservices.agentGateways.get", "networkservices.agentGateways.use"],
    }});
    let (status, role) = client
        .call(Method::POST, &format!("v1/projects/{PROJECT}/roles"), Some(role))
        .await;
    assert_eq!(status, 200, "{role}");

    // 3. Grant it to the service agent (read-modify-write), once the agent exists.
    client.advance(10.0).await;
    let (_, mut policy) = client
        .call(
            Method::POST,
            &format!("v3/projects/{PROJECT}:getIamPolicy"),
            Some(json!({ "options": { "requestedPolicyVersion": 3 } })),
        )
        .await;
    let role_name = format!("projects/{PROJECT}/roles/agentGatewayUser");
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": role_name, "members": [agent] }));
    let (status, granted) = client
        .call(
            Method::POST,
            &format!("v3/projects/{PROJECT}:setIamPolicy"),
            Some(json!({ "policy": policy })),
        )
        .await;
    assert_eq!(status, 200, "{granted}");

    // Route traffic: the egress gateway, then the agent bound to it.
    let gateway_body = json!({ "googleManaged": { "governedAccessPath": "AGENT_TO_ANYWHERE" } });
    let (status, creating) = client
        .call(
            Method::POST,
            &format!("{LOCATION}/agentGateways?agentGatewayId=egress"),
            Some(gateway_body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{creating}");
    let gateway = finish(&client, &creating, 120.0).await["response"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, deploying) = client
        .call(
            Method::POST,
            &format!("{LOCATION}/reasoningEngines"),
            Some(engine("approved", &gateway)),
        )
        .await;
    assert_eq!(status, 200, "{deploying}");
    let deployed = finish(&client, &deploying, 300.0).await;
    let engine_name = deployed["response"]["name"].as_str().unwrap().to_string();
    let (_, bound) = client.call(Method::GET, &format!("v1/{engine_name}"), None).await;
    assert_eq!(
        bound["spec"]["deploymentSpec"]["agentGatewayConfig"]["agentToAnywhereConfig"]["agentGateway"],
        gateway.as_str()
    );
    assert!(
        bound["spec"]["effectiveIdentity"].is_string(),
        "AGENT_IDENTITY: {bound}"
    );

    // Register the agent in the registry of the same project and region.
    let service = json!({ "displayName": "approved", "agentSpec": { "type": "NO_SPEC" },
        "interfaces": [{ "url": "https://agent.example.com", "protocolBinding": "HTTP_JSON" }] });
    let (status, registering) = client
        .call(
            Method::POST,
            &format!(
                "{LOCATION}/services?serviceId=approved-agent&requestId=5f0c7a34-1b2c-4d5e-8f90-a1b2c3d4e5f6"
            ),
            Some(service),
        )
        .await;
    assert_eq!(status, 200, "{registering}");
    finish(&client, &registering, 30.0).await;

    // Restrict Agent Runtime to approved gateways: the constraint, then the enforcing policy.
    let condition = format!(
        "has(resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway) && \
         resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway != '' && \
         (resource.spec.deploymentSpec.agentGatewayConfig.agentToAnywhereConfig.agentGateway in ['{gateway}'])"
    );
    let constraint = json!({
        "name": format!("organizations/{ORG}/customConstraints/{CONSTRAINT}"),
        "resourceTypes": ["aiplatform.googleapis.com/ReasoningEngine"], "methodTypes": ["CREATE", "UPDATE"],
        "condition": condition, "actionType": "ALLOW",
        "displayName": "Restrict Reasoning Engine Egress to Approved Agent Gateways",
    });
    let (status, body) = client
        .call(
            Method::POST,
            &format!("v2/organizations/{ORG}/customConstraints"),
            Some(constraint),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let policy = json!({ "name": format!("projects/{PROJECT}/policies/{CONSTRAINT}"), "spec": { "rules": [{ "enforce": true }] } });
    let (status, body) = client
        .call(
            Method::POST,
            &format!("v2/projects/{PROJECT}/policies"),
            Some(policy),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    client.advance(900.0).await;

    // Refusal 1: a second egress gateway in the same project and region.
    let (status, body) = client
        .call(
            Method::POST,
            &format!("{LOCATION}/agentGateways?agentGatewayId=egress-two"),
            Some(gateway_body),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );

    // Refusal 2: unbinding the deployed agent from its gateway.
    let unbind = json!({ "spec": { "packageSpec": { "pickleObjectGcsUri": "gs://bucket/agent.pkl", "pythonVersion": "3.12" } } });
    let (status, body) = client
        .call(
            Method::PATCH,
            &format!("v1/{engine_name}?updateMask=spec.deploymentSpec"),
            Some(unbind),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("nbind"),
        "refused as an unbinding: {body}"
    );

    // Refusal 3: a gateway not on the allowlist, under the enforced constraint.
    let elsewhere = format!("projects/{PROJECT}/locations/us-central1/agentGateways/not-approved");
    let (status, body) = client
        .call(
            Method::POST,
            &format!("{LOCATION}/reasoningEngines"),
            Some(engine("rogue", &elsewhere)),
        )
        .await;
    assert_eq!(
        (status, body["error"]["status"].as_str()),
        (400, Some("FAILED_PRECONDITION")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains(CONSTRAINT),
        "names the constraint: {body}"
    );
    // The approved gateway is still allowed.
    let (status, body) = client
        .call(
            Method::POST,
            &format!("{LOCATION}/reasoningEngines"),
            Some(engine("second", &gateway)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
