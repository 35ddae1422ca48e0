//! Governed Agent Gateways through the `sluice` binary against the emulator on loopback:
//!
//! - the shipped plans with IAP and Model Armor switched on converge, each authorization policy
//!   on the right gateway with the right profile, action and extension, exactly one extension
//!   and one policy per purpose, the Model Armor extension naming its templates, and the
//!   guide's step-4 grants exactly when the templates live in another project; `sluice plan`
//!   previews the template read of a project where the plan itself enables Model Armor;
//! - the plan rule refuses Google's Agent Gateway limits (a fifth egress policy, a second or
//!   non-CONTENT_AUTHZ ingress policy, IAP in a CONTENT_AUTHZ policy, Model Armor templates in
//!   another region) with exit 2 before a single request, while the same plan within the limit
//!   is accepted; the shipped both plan with every option on stays within them;
//! - an agent calling Gemini on Vertex AI behind a deny-by-default egress gateway is warned
//!   about by `sluice plan`, fails its one deploy naming the policy and the fix, and converges
//!   once the host is allowed.

mod support;

use serde_json::{json, Value};
use sluice_tests::{stderr, stdout, Sandbox};
use support::{
    assert_listed, converges_and_reruns_without_mutation, converges_and_reruns_without_mutation_in, Cloud,
};

const PICKLE: &str = "pickle_gcs_uri=gs://agents/agent.pkl";
const LOCATION: &str = "projects/sluice-demo/locations/us-central1";
/// A gateway of the shipped plans: its default id and its governed access path.
type Gateway = (&'static str, &'static str);
const EGRESS: Gateway = ("agent-egress", "AGENT_TO_ANYWHERE");
const INGRESS: Gateway = ("agent-ingress", "CLIENT_TO_AGENT");
/// Where the Model Armor templates are: their project, the prompt and the response template.
type Templates = (&'static str, &'static str, &'static str);
const ARMOR_TEMPLATES: Templates = ("sluice-armor", "agent-prompts", "agent-responses");
const DEMO_TEMPLATES: Templates = ("sluice-demo", "agent-prompts", "agent-responses");
const MODEL_ARMOR: &str = "modelarmor.us-central1.rep.googleapis.com";
const VERTEX_AI_HOST: &str = "us-central1-aiplatform.googleapis.com";
/// The two service agents the step-4 grants name.
const SERVICE_AGENTS: [&str; 2] = [
    "serviceAccount:service-100000000001@gcp-sa-aiplatform-re.iam.gserviceaccount.com",
    "serviceAccount:service-100000000001@gcp-sa-dep.iam.gserviceaccount.com",
];

/// IAP on, and Model Armor screening prompts and responses with the templates of
/// `sluice-armor`.
const IAP_AND_MODEL_ARMOR_IN_ANOTHER_PROJECT: [&str; 6] = [
    "project=sluice-demo",
    PICKLE,
    "iap=true",
    "model_armor_template=agent-prompts",
    "model_armor_response_template=agent-responses",
    "model_armor_project=sluice-armor",
];

// ---- What the emulator holds ----------------------------------------------------------------

/// The ids of the resources in `collection` (`authzExtensions`, `authzPolicies`), sorted; each
/// must live in the agent's project and region.
fn ids(state: &Value, collection: &str) -> Vec<String> {
    let prefix = format!("{LOCATION}/{collection}/");
    let mut ids: Vec<String> = (state[collection].as_array().unwrap().iter())
        .map(|r| {
            let name = r["name"].as_str().unwrap();
            name.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{name} is not under {prefix}"))
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

fn resource<'s>(state: &'s Value, collection: &str, id: &str) -> &'s Value {
    let name = format!("{LOCATION}/{collection}/{id}");
    (state[collection].as_array().unwrap().iter())
        .find(|r| r["name"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} in the emulator: {}", state[collection]))
}

/// The name of the one gateway whose governed access path is `path`.
fn gateway_of(state: &Value, path: &str) -> String {
    let gateways: Vec<&Value> = (state["agentGateways"].as_array().unwrap().iter())
        .filter(|g| g["googleManaged"]["governedAccessPath"] == path)
        .collect();
    assert_eq!(gateways.len(), 1, "one {path} gateway: {gateways:?}");
    gateways[0]["name"].as_str().unwrap().to_string()
}

/// Policy `id` targets `gateway` alone, with `profile` and `action`, and (for CUSTOM) calls
/// extension `extension` alone; returns it.
fn assert_policy<'s>(
    state: &'s Value,
    id: &str,
    (gateway, path): Gateway,
    (profile, action): (&str, &str),
    extension: Option<&str>,
) -> &'s Value {
    let policy = resource(state, "authzPolicies", id);
    assert_eq!(
        policy["target"]["resources"],
        json!([gateway_of(state, path)]),
        "{id} targets the {path} gateway {gateway}: {policy}"
    );
    assert_eq!(policy["policyProfile"], profile, "{id}: {policy}");
    assert_eq!(policy["action"], action, "{id}: {policy}");
    let called = &policy["customProvider"]["authzExtension"]["resources"];
    match extension {
        Some(extension) => assert_eq!(
            *called,
            json!([format!("{LOCATION}/authzExtensions/{extension}")]),
            "{id}: {policy}"
        ),
        None => assert!(called.is_null(), "{id} calls no extension: {policy}"),
    }
    policy
}

/// `gateway`'s Model Armor policy (CONTENT_AUTHZ, CUSTOM) calls its own extension, which calls
/// regional Model Armor with `templates` (the metadata is a JSON string, parsed here).
fn assert_screened(state: &Value, gateway: Gateway, (project, request, response): Templates) {
    let id = format!("{}-model-armor", gateway.0);
    assert_policy(state, &id, gateway, ("CONTENT_AUTHZ", "CUSTOM"), Some(&id));
    let extension = resource(state, "authzExtensions", &id);
    assert_eq!(extension["service"], MODEL_ARMOR, "{extension}");
    let settings = extension["metadata"]["model_armor_settings"]
        .as_str()
        .unwrap_or_else(|| panic!("model_armor_settings is a JSON string: {extension}"));
    let settings: Value = serde_json::from_str(settings).expect("model_armor_settings parses");
    let template = |t: &str| format!("projects/{project}/locations/us-central1/templates/{t}");
    assert_eq!(
        settings,
        json!([{"request_template_id": template(request), "response_template_id": template(response)}]),
        "{id}"
    );
}

/// The egress gateway's IAP policy (REQUEST_AUTHZ, CUSTOM) calls its own extension, which calls
/// IAP.
fn assert_iap(state: &Value) {
    let id = "agent-egress-iap";
    assert_policy(state, id, EGRESS, ("REQUEST_AUTHZ", "CUSTOM"), Some(id));
    let extension = resource(state, "authzExtensions", id);
    assert_eq!(extension["service"], "iap.googleapis.com", "{extension}");
    assert!(
        extension["metadata"]["model_armor_settings"].is_null(),
        "{extension}"
    );
}

/// Every `roles/modelarmor.*` grant in every project, as `(project, role, member)`, sorted.
fn model_armor_grants(state: &Value) -> Vec<(String, String, String)> {
    let mut grants: Vec<(String, String, String)> = (state["projects"].as_array().unwrap().iter())
        .flat_map(|p| {
            let project = p["id"].as_str().unwrap();
            (p["iamGrants"].as_array().unwrap().iter())
                .filter(|g| g["role"].as_str().unwrap().starts_with("roles/modelarmor."))
                .map(move |g| {
                    let text = |key: &str| g[key].as_str().unwrap().to_string();
                    (project.to_string(), text("role"), text("member"))
                })
        })
        .collect();
    grants.sort();
    grants
}

/// The guide's step 4 with the templates in `armor`: calloutUser on the agent's project and
/// user on `armor`, each for both service agents.
fn step_four_grants(armor: &str) -> Vec<(String, String, String)> {
    let mut grants = Vec::new();
    for (project, role) in [
        ("sluice-demo", "roles/modelarmor.calloutUser"),
        (armor, "roles/modelarmor.user"),
    ] {
        for agent in SERVICE_AGENTS {
            grants.push((project.to_string(), role.to_string(), agent.to_string()));
        }
    }
    grants.sort();
    grants
}

/// A second `sluice plan` (after the runs) lists each of `steps` as skipped.
fn assert_skipped(cloud: &Cloud, plan: &str, vars: &[&str], steps: &[&str]) {
    let preview = cloud.sluice(&Sandbox::new(), "plan", plan, vars);
    assert!(preview.status.success(), "{}", stderr(&preview));
    assert_listed(&stdout(&preview), "/", steps);
}

// ---- 1. The shipped plans with IAP and Model Armor converge ---------------------------------

#[test]
fn egress_plan_with_iap_and_model_armor_in_another_project_converges_with_the_step_four_grants() {
    let vars = IAP_AND_MODEL_ARMOR_IN_ANOTHER_PROJECT;
    let creates = [
        "authz_apis",
        "model_armor_apis",
        "model_armor_callout",
        "model_armor_user",
        "model_armor_apis_here",
        "egress_model_armor_extension",
        "egress_model_armor_policy",
        "iap_extension",
        "iap_policy",
    ];
    let plan = "agent-gateway-egress.json";
    let cloud = converges_and_reruns_without_mutation(plan, &vars, &creates);
    let state = cloud.state();
    let purposes = ["agent-egress-iap", "agent-egress-model-armor"];
    assert_eq!(ids(&state, "authzExtensions"), purposes);
    assert_eq!(ids(&state, "authzPolicies"), purposes);
    assert_screened(&state, EGRESS, ARMOR_TEMPLATES);
    assert_iap(&state);
    assert_eq!(model_armor_grants(&state), step_four_grants("sluice-armor"));
    assert_skipped(&cloud, plan, &vars, &["egress_allow", "egress_deny_by_default"]);
}

#[test]
fn ingress_plan_with_model_armor_in_the_agent_project_converges_without_the_step_four_grants() {
    let vars = [
        "project=sluice-demo",
        PICKLE,
        "model_armor_template=agent-prompts",
    ];
    let creates = [
        "authz_apis",
        "ingress_model_armor_extension",
        "ingress_model_armor_policy",
    ];
    let plan = "agent-gateway-ingress.json";
    let world = support::config_with_model_armor_in_the_agent_project();
    let cloud = converges_and_reruns_without_mutation_in(world, plan, &vars, &creates);
    let state = cloud.state();
    assert_eq!(ids(&state, "authzExtensions"), ["agent-ingress-model-armor"]);
    assert_eq!(ids(&state, "authzPolicies"), ["agent-ingress-model-armor"]);
    // Without a response template, the prompt template screens responses too.
    assert_screened(&state, INGRESS, ("sluice-demo", "agent-prompts", "agent-prompts"));
    assert_eq!(model_armor_grants(&state), []);
    assert_skipped(
        &cloud,
        plan,
        &vars,
        &["model_armor_apis", "model_armor_callout", "model_armor_user"],
    );
}

#[test]
fn both_plan_with_iap_and_model_armor_named_in_the_agent_project_converges_without_the_step_four_grants() {
    let vars = [
        "project=sluice-demo",
        PICKLE,
        "iap=true",
        "model_armor_template=agent-prompts",
        "model_armor_response_template=agent-responses",
        "model_armor_project=sluice-demo",
    ];
    let creates = [
        "authz_apis",
        "egress_model_armor_extension",
        "egress_model_armor_policy",
        "ingress_model_armor_extension",
        "ingress_model_armor_policy",
        "iap_extension",
        "iap_policy",
    ];
    let plan = "agent-gateway-both.json";
    let world = support::config_with_model_armor_in_the_agent_project();
    let cloud = converges_and_reruns_without_mutation_in(world, plan, &vars, &creates);
    let state = cloud.state();
    let purposes = [
        "agent-egress-iap",
        "agent-egress-model-armor",
        "agent-ingress-model-armor",
    ];
    assert_eq!(ids(&state, "authzExtensions"), purposes);
    assert_eq!(ids(&state, "authzPolicies"), purposes);
    assert_screened(&state, EGRESS, DEMO_TEMPLATES);
    assert_screened(&state, INGRESS, DEMO_TEMPLATES);
    assert_iap(&state);
    assert_eq!(model_armor_grants(&state), []);
    assert_skipped(
        &cloud,
        plan,
        &vars,
        &[
            "model_armor_apis",
            "model_armor_callout",
            "model_armor_user",
            "egress_allow",
            "egress_deny_by_default",
        ],
    );
}

/// Every option of the both plan at once puts four policies on the egress gateway (Google's
/// limit) and one on the ingress gateway: no combination of its variables breaks a limit, and
/// this one, the largest, is accepted without a warning and converges.
#[test]
fn both_plan_with_every_governance_option_stays_within_googles_limits_and_converges() {
    let allow = format!("egress_allow_hosts=[\"{VERTEX_AI_HOST}\"]");
    let host_rules = [
        allow.as_str(),
        "egress_default_deny=true",
        "agent_uses_vertex_ai=true",
    ];
    let vars: Vec<&str> = IAP_AND_MODEL_ARMOR_IN_ANOTHER_PROJECT
        .into_iter()
        .chain(host_rules)
        .collect();
    let creates = [
        "model_armor_callout",
        "model_armor_user",
        "egress_model_armor_policy",
        "ingress_model_armor_policy",
        "iap_policy",
        "egress_allow",
        "egress_deny_by_default",
    ];
    let plan = "agent-gateway-both.json";
    assert_valid_without_warning(&support::shipped_plan(plan), &vars);
    let cloud = converges_and_reruns_without_mutation(plan, &vars, &creates);
    let state = cloud.state();
    assert_eq!(
        ids(&state, "authzPolicies"),
        [
            "agent-egress-allow",
            "agent-egress-deny-by-default",
            "agent-egress-iap",
            "agent-egress-model-armor",
            "agent-ingress-model-armor",
        ]
    );
    assert_eq!(
        ids(&state, "authzExtensions"),
        [
            "agent-egress-iap",
            "agent-egress-model-armor",
            "agent-ingress-model-armor"
        ]
    );
    let allowed = assert_policy(
        &state,
        "agent-egress-allow",
        EGRESS,
        ("REQUEST_AUTHZ", "ALLOW"),
        None,
    );
    assert!(
        allowed["httpRules"].to_string().contains(VERTEX_AI_HOST),
        "{allowed}"
    );
    let deny = ("REQUEST_AUTHZ", "DENY_BY_DEFAULT");
    assert_policy(&state, "agent-egress-deny-by-default", EGRESS, deny, None);
    assert_screened(&state, EGRESS, ARMOR_TEMPLATES);
    assert_screened(&state, INGRESS, ARMOR_TEMPLATES);
    assert_iap(&state);
    assert_eq!(model_armor_grants(&state), step_four_grants("sluice-armor"));
    let engines = state["reasoningEngines"].as_array().unwrap();
    assert_eq!(engines.len(), 1, "{engines:?}");
}

/// Model Armor not enabled in the agent's project, which holds the templates
/// (`support::config()`): the plan's own `model_armor_apis_here` enables it before
/// `model_armor_templates` reads them, so `sluice plan` can only say the template step is known
/// once earlier steps ran, and exit 0, as for every other read of an API the plan enables; the
/// run converges.
#[test]
fn plan_previews_the_template_read_of_an_api_that_an_earlier_step_enables() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let vars = [
        "project=sluice-demo",
        PICKLE,
        "model_armor_template=agent-prompts",
    ];
    let plan = "agent-gateway-ingress.json";
    let preview = cloud.sluice(&sandbox, "plan", plan, &vars);
    let text = stdout(&preview);
    assert_listed(&text, "+", &["model_armor_apis_here"]);
    // The template read is still to do once the plan has enabled the API (it changes nothing);
    // the steps reading it are known only then.
    assert_listed(&text, "~", &["model_armor_templates"]);
    assert!(
        text.contains("check the templates once Model Armor is enabled"),
        "{text}"
    );
    assert_listed(
        &text,
        "?",
        &["ingress_model_armor_extension", "ingress_model_armor_policy"],
    );
    assert_eq!(preview.status.code(), Some(0), "{text}\n{}", stderr(&preview));
    assert_eq!(cloud.mutations(), Vec::<String>::new(), "plan mutates nothing");
    let run = cloud.sluice(&sandbox, "run", plan, &vars);
    assert!(run.status.success(), "{}\n{}", stdout(&run), stderr(&run));
    assert_eq!(
        ids(&cloud.state(), "authzPolicies"),
        ["agent-ingress-model-armor"]
    );
}

// ---- 2. Google's limits, refused before any call ----------------------------------------------

fn gateway(mode: &str) -> Value {
    json!({"id": "gw", "kind": "gcp.agent_gateway", "with": {"project": "sluice-demo",
        "region": "us-central1", "gateway_id": format!("agent-{mode}"), "mode": mode}})
}

/// `step` with the parameters of `with` added.
fn adding(mut step: Value, with: Value) -> Value {
    for (key, value) in with.as_object().unwrap() {
        step["with"][key] = value.clone();
    }
    step
}

/// A policy step `id` on the plan's gateway, with `with` added to its parameters.
fn policy(id: &str, with: Value) -> Value {
    let step = json!({"id": id, "kind": "gcp.authz_policy", "with": {"project": "sluice-demo",
        "region": "us-central1", "policy_id": id.replace('_', "-"),
        "gateway": "${steps.gw.outputs.name}"}});
    adding(step, with)
}

/// An ALLOW policy letting the agent reach `host`.
fn allow(id: &str, host: &str) -> Value {
    policy(id, json!({"action": "ALLOW", "hosts": [host]}))
}

/// A CUSTOM policy of `profile` calling the extension step `extension`.
fn custom(id: &str, profile: &str, extension: &str) -> Value {
    let extensions = [format!("${{steps.{extension}.outputs.name}}")];
    policy(
        id,
        json!({"profile": profile, "action": "CUSTOM", "extensions": extensions}),
    )
}

/// An extension step `id` calling `service`, in `region`, with `with` added to its parameters.
fn extension(id: &str, service: &str, region: &str, with: Value) -> Value {
    let step = json!({"id": id, "kind": "gcp.authz_extension", "with": {"project": "sluice-demo",
        "region": region, "extension_id": id.replace('_', "-"), "service": service}});
    adding(step, with)
}

fn templates(region: &str) -> Value {
    json!({"id": "templates", "kind": "gcp.model_armor_template", "with": {"project": "sluice-demo",
        "region": region, "template_id": "agent-prompts"}})
}

/// A Model Armor extension in us-central1 reading the templates of the `templates` step.
fn model_armor_extension() -> Value {
    extension(
        "armor",
        "model_armor",
        "us-central1",
        json!({"request_template": "${steps.templates.outputs.name}",
            "response_template": "${steps.templates.outputs.response_name}"}),
    )
}

fn write(sandbox: &Sandbox, steps: &[Value]) -> std::path::PathBuf {
    sandbox.write_plan("governed.json", &json!({"name": "governed", "steps": steps}))
}

/// `sluice run` and `sluice plan` of a plan of `steps`: exit 2 with each of `expected` in
/// stderr, no store, and not one request to the emulator.
fn refused_before_any_call(steps: &[Value], expected: &[&str]) {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let path = write(&sandbox, steps);
    for command in ["run", "plan"] {
        let output = cloud.command_at(&sandbox, command, &path, &[]).output().unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{command}: {err}");
        for phrase in expected {
            assert!(err.contains(phrase), "{command}: stderr lacks `{phrase}`:\n{err}");
        }
    }
    assert!(!sandbox.store().exists(), "nothing written");
    assert_eq!(cloud.emulator.requests(), json!([]), "not one request");
}

/// `sluice validate` accepts the plan at `path`, without a warning.
fn assert_valid_without_warning(path: &std::path::Path, vars: &[&str]) {
    let mut args = vec!["validate", path.to_str().unwrap()];
    for var in vars {
        args.extend(["--var", var]);
    }
    let output = Sandbox::new().run(support::HARNESS, &args);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{err}");
    assert!(!err.contains("warning"), "{err}");
}

/// A plan of `steps` on the limit's other side is accepted.
fn accepted(steps: &[Value]) {
    let sandbox = Sandbox::new();
    assert_valid_without_warning(&write(&sandbox, steps), &[]);
}

#[test]
fn a_fifth_policy_on_an_egress_gateway_is_refused_before_any_call() {
    let mut steps = vec![gateway("egress")];
    for n in 1..=4 {
        steps.push(allow(&format!("allow_{n}"), &format!("api{n}.example.com")));
    }
    accepted(&steps);
    steps.push(allow("allow_5", "api5.example.com"));
    refused_before_any_call(
        &steps,
        &[
            "the plan is not valid (1 problem)",
            "$.steps[5].with.gateway",
            "egress agent gateway `gw` would get 5 authorization policies (`allow_1`, `allow_2`, \
             `allow_3`, `allow_4`, `allow_5`)",
            "Google allows at most 4 on an egress (Agent-to-Anywhere) gateway",
        ],
    );
}

#[test]
fn a_second_policy_on_an_ingress_gateway_is_refused_before_any_call() {
    let mut steps = vec![
        gateway("ingress"),
        templates("us-central1"),
        model_armor_extension(),
        custom("screen", "CONTENT_AUTHZ", "armor"),
    ];
    accepted(&steps);
    steps.push(custom("screen_again", "CONTENT_AUTHZ", "armor"));
    refused_before_any_call(
        &steps,
        &[
            "the plan is not valid (1 problem)",
            "$.steps[4].with.gateway",
            "ingress agent gateway `gw` would get 2 authorization policies (`screen`, `screen_again`)",
            "takes a single CONTENT_AUTHZ policy",
        ],
    );
}

#[test]
fn a_request_authz_policy_on_an_ingress_gateway_is_refused_before_any_call() {
    let steps = [gateway("ingress"), allow("allow", VERTEX_AI_HOST)];
    refused_before_any_call(
        &steps,
        &[
            "the plan is not valid (1 problem)",
            "$.steps[1].with.profile",
            "ingress agent gateway `gw` takes only a CONTENT_AUTHZ policy (Model Armor), not \
             REQUEST_AUTHZ",
        ],
    );
}

#[test]
fn an_iap_extension_in_a_content_authz_policy_is_refused_before_any_call() {
    let iap = extension("iap", "iap", "us-central1", json!({}));
    accepted(&[
        gateway("egress"),
        iap.clone(),
        custom("iap_policy", "REQUEST_AUTHZ", "iap"),
    ]);
    refused_before_any_call(
        &[
            gateway("egress"),
            iap,
            custom("iap_policy", "CONTENT_AUTHZ", "iap"),
        ],
        &[
            "the plan is not valid (1 problem)",
            "$.steps[2].with.extensions",
            "extension step `iap` calls iap.googleapis.com, which Google lets only a REQUEST_AUTHZ \
             policy use; this policy is CONTENT_AUTHZ",
        ],
    );
}

#[test]
fn model_armor_templates_in_another_region_than_the_extension_are_refused_before_any_call() {
    accepted(&[templates("us-central1"), model_armor_extension()]);
    refused_before_any_call(
        &[templates("europe-west4"), model_armor_extension()],
        &[
            "the plan is not valid (2 problems)",
            "$.steps[1].with.request_template",
            "$.steps[1].with.response_template",
            "the Model Armor template of step `templates` is in region europe-west4, but this \
             extension (and its gateway) is in us-central1",
        ],
    );
}

// ---- 3. An agent calling Gemini on Vertex AI behind deny-by-default -------------------------

/// The POSTs creating a reasoning engine that the emulator has answered.
fn engine_creates(cloud: &Cloud) -> usize {
    (cloud.emulator.requests().as_array().unwrap().iter())
        .filter(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/reasoningEngines"))
        .count()
}

#[test]
fn an_agent_calling_vertex_ai_behind_deny_by_default_is_warned_fails_once_then_converges_once_allowed() {
    let cloud = Cloud::start();
    let sandbox = Sandbox::new();
    let plan = "agent-gateway-egress.json";
    let denied = [
        "project=sluice-demo",
        PICKLE,
        "agent_uses_vertex_ai=true",
        "egress_default_deny=true",
    ];
    let preview = cloud.sluice(&sandbox, "plan", plan, &denied);
    assert_eq!(preview.status.code(), Some(0), "{}", stderr(&preview));
    let warning = stderr(&preview);
    assert!(
        warning.lines().any(|l| l.starts_with("warning: ")
            && l.contains(VERTEX_AI_HOST)
            && l.contains("egress_allow_hosts")),
        "the plan warns, naming the host and the fix:\n{warning}"
    );
    assert_eq!(cloud.mutations(), Vec::<String>::new(), "plan mutates nothing");

    let failed = cloud.sluice(&sandbox, "run", plan, &denied);
    let text = format!("{}{}", stdout(&failed), stderr(&failed));
    assert_eq!(failed.status.code(), Some(1), "{text}");
    // The step's own failure, not the warning the run repeats.
    let failure = (text.lines())
        .find(|l| l.contains("] agent: FAILED: "))
        .unwrap_or_else(|| panic!("the `agent` step fails:\n{text}"));
    for phrase in [
        VERTEX_AI_HOST,
        "projects/sluice-demo/locations/us-central1/authzPolicies/agent-egress-deny-by-default",
        "egress_allow_hosts",
    ] {
        assert!(
            failure.contains(phrase),
            "the failure names `{phrase}`:\n{failure}"
        );
    }
    assert_eq!(cloud.state()["reasoningEngines"], json!([]), "no engine left");
    assert_eq!(engine_creates(&cloud), 1, "one deploy, not a loop");

    let allowed_host = format!("egress_allow_hosts=[\"{VERTEX_AI_HOST}\"]");
    let allowed = [
        "project=sluice-demo",
        PICKLE,
        "agent_uses_vertex_ai=true",
        "egress_default_deny=true",
        allowed_host.as_str(),
    ];
    let preview = cloud.sluice(&sandbox, "plan", plan, &allowed);
    assert_eq!(preview.status.code(), Some(0), "{}", stderr(&preview));
    assert!(!stderr(&preview).contains("warning"), "{}", stderr(&preview));
    let run = cloud.sluice(&sandbox, "run", plan, &allowed);
    assert!(run.status.success(), "{}\n{}", stdout(&run), stderr(&run));
    let state = cloud.state();
    assert_eq!(
        ids(&state, "authzPolicies"),
        ["agent-egress-allow", "agent-egress-deny-by-default"]
    );
    let engines = state["reasoningEngines"].as_array().unwrap();
    assert_eq!(engines.len(), 1, "{engines:?}");
    let env = engines[0]["spec"]["deploymentSpec"]["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "GOOGLE_GENAI_USE_VERTEXAI" && e["value"] == "TRUE"),
        "{env:?}"
    );
    assert_eq!(engine_creates(&cloud), 2, "one more deploy, which succeeded");
}
