//! The OAuth2 token endpoint (`POST /token`, JWT-bearer grant): gcp_auth, unchanged, gets a
//! token with the committed test key file pointed at the emulator, and assertions with an unknown
//! key, a broken signature, bad times, a wrong audience or a wrong grant type are refused as
//! Google refuses them. No token, assertion or private key is ever printed.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use gcp_auth::TokenProvider;
use reqwest::Method;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};
use sluice_emulator::{test_service_account_key_json, EmulatorConfig, TEST_SERVICE_ACCOUNT_EMAIL};
use support::Client;

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TIMEFRAME: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

async fn start() -> (sluice_emulator::EmulatorHandle, Client) {
    Client::start_with(EmulatorConfig {
        latency_ms: 0.0,
        ..EmulatorConfig::default()
    })
    .await
}

#[tokio::test]
async fn gcp_auth_gets_a_token_with_the_test_key_file_and_the_token_calls_an_api() {
    let (emulator, client) = start().await;
    let token_uri = format!("{}/token", emulator.base_url);
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), test_service_account_key_json(&token_uri)).unwrap();

    let account = gcp_auth::CustomServiceAccount::from_file(key_file.path()).unwrap();
    let token = match account.token(&[CLOUD_PLATFORM]).await {
        Ok(token) => token,
        // gcp_auth's errors carry the endpoint's error body, never the token.
        Err(error) => panic!("gcp_auth got no token from the emulator: {error}"),
    };
    let access_token = token.as_str();
    assert!(
        access_token.starts_with("ya29.") && access_token.len() > 40,
        "the access token does not look like Google's"
    );
    assert!(!token.has_expired());

    let (status, body) = client
        .send(
            Method::GET,
            "v1/projects/sluice-demo/services/serviceusage.googleapis.com",
            None,
            Some(access_token),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (_, log) = client.send(Method::GET, "_emulator/requests", None, None).await;
    let token_calls: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["path"] == "/token")
        .collect();
    assert_eq!(token_calls.len(), 1, "{log}");
    assert_eq!(
        (&token_calls[0]["method"], &token_calls[0]["status"]),
        (&json!("POST"), &json!(200))
    );
}

#[tokio::test]
async fn a_hand_built_assertion_gets_a_bearer_token_with_padded_or_unpadded_base64() {
    let (emulator, client) = start().await;
    for padded in [true, false] {
        let claims = claims(&emulator.base_url, now() - 10, now() + 3000);
        let (status, body) = post_token(&client, JWT_BEARER, &sign(&claims, padded)).await;
        assert_eq!(status, 200, "{}", redacted(&body));
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert!(body["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("ya29.")));
    }
    // Google's own token URI is an accepted audience too (a key file left unchanged).
    let mut google = claims(&emulator.base_url, now(), now() + 3600);
    google["aud"] = json!("https://oauth2.googleapis.com/token");
    assert_eq!(post_token(&client, JWT_BEARER, &sign(&google, true)).await.0, 200);
}

#[tokio::test]
async fn an_assertion_from_an_unregistered_account_is_an_invalid_signature() {
    let (emulator, client) = start().await;
    // Signed with the test key, but naming an account whose key the emulator does not know.
    let mut stranger = claims(&emulator.base_url, now(), now() + 3600);
    stranger["iss"] = json!("stranger@sluice-demo.iam.gserviceaccount.com");
    let answer = post_token(&client, JWT_BEARER, &sign(&stranger, true)).await;
    assert_oauth_error(answer, "invalid_grant", "Invalid JWT Signature.");

    // The test key is refused when the configuration registers another key for its email.
    let (emulator, client) = Client::start_with(EmulatorConfig {
        latency_ms: 0.0,
        service_account_keys: vec![sluice_emulator::config::ServiceAccountKeyConfig {
            client_email: TEST_SERVICE_ACCOUNT_EMAIL.into(),
            public_key_pem: OTHER_PUBLIC_KEY_PEM.into(),
        }],
        ..EmulatorConfig::default()
    })
    .await;
    let test_key = claims(&emulator.base_url, now(), now() + 3600);
    let answer = post_token(&client, JWT_BEARER, &sign(&test_key, true)).await;
    assert_oauth_error(answer, "invalid_grant", "Invalid JWT Signature.");
}

#[tokio::test]
async fn tampered_claims_break_the_signature() {
    let (emulator, client) = start().await;
    let assertion = sign(&claims(&emulator.base_url, now(), now() + 3600), false);
    let (header, rest) = assertion.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut forged = claims(&emulator.base_url, now(), now() + 3600);
    forged["scope"] =
        json!("https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/admin");
    let tampered = format!(
        "{header}.{}.{signature}",
        base64url(forged.to_string().as_bytes(), false)
    );
    let answer = post_token(&client, JWT_BEARER, &tampered).await;
    assert_oauth_error(answer, "invalid_grant", "Invalid JWT Signature.");

    // A changed signature character, too (well inside the signature, not in its last bits).
    let mut bytes = assertion.into_bytes();
    let inside = bytes.len() - 20;
    bytes[inside] = if bytes[inside] == b'A' { b'B' } else { b'A' };
    let answer = post_token(&client, JWT_BEARER, &String::from_utf8(bytes).unwrap()).await;
    assert_oauth_error(answer, "invalid_grant", "Invalid JWT Signature.");
}

#[tokio::test]
async fn expired_long_lived_or_future_assertions_are_out_of_timeframe() {
    let (emulator, client) = start().await;
    let base = &emulator.base_url;
    for (what, iat, exp) in [
        ("expired", now() - 4000, now() - 500),
        ("longer than an hour", now(), now() + 3601),
        ("issued in the future", now() + 1800, now() + 3000),
        ("exp before iat", now() + 100, now() + 50),
    ] {
        let answer = post_token(&client, JWT_BEARER, &sign(&claims(base, iat, exp), true)).await;
        assert_eq!(answer.0, 400, "{what}");
        assert_oauth_error(answer, "invalid_grant", TIMEFRAME);
    }
}

#[tokio::test]
async fn an_assertion_for_another_audience_fails_the_audience_check() {
    let (emulator, client) = start().await;
    let mut elsewhere = claims(&emulator.base_url, now(), now() + 3600);
    elsewhere["aud"] = json!("https://example.com/token");
    let answer = post_token(&client, JWT_BEARER, &sign(&elsewhere, true)).await;
    assert_oauth_error(answer, "invalid_grant", "Invalid JWT: Failed audience check.");
}

#[tokio::test]
async fn other_grant_types_and_malformed_requests_are_refused() {
    let (emulator, client) = start().await;
    let assertion = sign(&claims(&emulator.base_url, now(), now() + 3600), true);
    let answer = post_token(&client, "client_credentials", &assertion).await;
    assert_oauth_error(
        answer,
        "unsupported_grant_type",
        "Invalid grant_type: client_credentials",
    );

    let answer = post_form(&client, &format!("grant_type={}", encode(JWT_BEARER))).await;
    assert_eq!(answer.1["error"], "invalid_request");

    let answer = post_token(&client, JWT_BEARER, "not-a-jwt").await;
    assert_eq!(answer.1["error"], "invalid_request");

    let hs256 = format!(
        "{}.{}.c2ln",
        base64url(br#"{"alg":"HS256","typ":"JWT"}"#, false),
        base64url(
            claims(&emulator.base_url, now(), now() + 3600)
                .to_string()
                .as_bytes(),
            false
        )
    );
    let answer = post_token(&client, JWT_BEARER, &hs256).await;
    assert_eq!(answer.0, 400);
    assert_eq!(answer.1["error"], "invalid_request");
}

// --- helpers ---

/// The public half of a second RSA key, registered nowhere by default (its private key was not
/// kept).
const OTHER_PUBLIC_KEY_PEM: &str = include_str!("../testdata/unregistered.pub.pem");

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims(base_url: &str, iat: i64, exp: i64) -> Value {
    json!({
        "iss": TEST_SERVICE_ACCOUNT_EMAIL,
        "scope": CLOUD_PLATFORM,
        "aud": format!("{base_url}/token"),
        "iat": iat,
        "exp": exp,
    })
}

/// A JWT signed RS256 with the committed test key, parts base64url (padded as gcp_auth does, or not).
fn sign(claims: &Value, padded: bool) -> String {
    let key: Value = serde_json::from_str(&test_service_account_key_json("unused")).unwrap();
    let pem = key["private_key"].as_str().unwrap();
    let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
    let der = base64_decode(&body);
    let pair = RsaKeyPair::from_pkcs8(&der).expect("the test key is PKCS#8 RSA");
    let signed = format!(
        "{}.{}",
        base64url(br#"{"alg":"RS256","typ":"JWT"}"#, padded),
        base64url(claims.to_string().as_bytes(), padded)
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{signed}.{}", base64url(&signature, padded))
}

async fn post_token(client: &Client, grant_type: &str, assertion: &str) -> (u16, Value) {
    post_form(
        client,
        &format!(
            "grant_type={}&assertion={}",
            encode(grant_type),
            encode(assertion)
        ),
    )
    .await
}

async fn post_form(client: &Client, form: &str) -> (u16, Value) {
    let response = client
        .http
        .post(format!("{}/token", client.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn assert_oauth_error((status, body): (u16, Value), error: &str, description: &str) {
    assert_eq!(
        (status, body["error"].as_str(), body["error_description"].as_str()),
        (400, Some(error), Some(description)),
        "{}",
        redacted(&body)
    );
}

/// The body with any access token masked, for assertion messages.
fn redacted(body: &Value) -> Value {
    let mut body = body.clone();
    if body.get("access_token").is_some() {
        body["access_token"] = json!("<redacted>");
    }
    body
}

/// Percent-encoding for form values (everything but unreserved characters).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(bytes: &[u8], padded: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if padded {
                out.push('=');
            }
        }
    }
    out
}

/// Standard-alphabet base64 (PEM), padding ignored.
fn base64_decode(text: &str) -> Vec<u8> {
    let (mut out, mut bits, mut count) = (Vec::new(), 0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let value = match c {
            b'+' => 62,
            b'/' => 63,
            _ => ALPHABET.iter().position(|a| *a == c).expect("base64") as u32,
        };
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}
