//! The committed **test-only** service-account key (`testdata/`): its public half, which
//! [`EmulatorConfig::default`](crate::EmulatorConfig) registers, and the key file itself for
//! tests and demos. The private key is public; it grants nothing outside the emulator.

use serde_json::Value;

/// The test key's `client_email`.
pub const TEST_SERVICE_ACCOUNT_EMAIL: &str = "sluice-test@sluice-demo.iam.gserviceaccount.com";

/// The test key's public half (SubjectPublicKeyInfo PEM).
pub const TEST_SERVICE_ACCOUNT_PUBLIC_KEY_PEM: &str =
    include_str!("../testdata/test-service-account.pub.pem");

const TEST_SERVICE_ACCOUNT_KEY_JSON: &str = include_str!("../testdata/test-service-account.json");

/// **Test-only.** The test service-account key file (JSON, as Google issues key files) with its
/// `token_uri` replaced by `token_uri`, e.g. `{emulator base URL}/token`, so a client library
/// such as gcp_auth gets its tokens from the emulator. Never use it against Google.
pub fn test_service_account_key_json(token_uri: &str) -> String {
    let mut key: Value =
        serde_json::from_str(TEST_SERVICE_ACCOUNT_KEY_JSON).expect("the committed test key file is JSON");
    key["token_uri"] = Value::String(token_uri.to_string());
    serde_json::to_string_pretty(&key).expect("JSON serialises")
}

/// **Test-only** gcloud user credentials the default config accepts (refresh-token grant).
pub const TEST_CLIENT_ID: &str = "sluice-test-client.apps.googleusercontent.com";
pub const TEST_CLIENT_SECRET: &str = "sluice-test-client-secret";
pub const TEST_REFRESH_TOKEN: &str = "1//sluice-test-refresh-token";
/// **Test-only** subject token the default config's STS endpoint accepts.
pub const TEST_SUBJECT_TOKEN: &str = "sluice-test-subject-token";

/// **Test-only.** An `authorized_user` credentials file (as `gcloud auth application-default
/// login` writes it) for the test user, with `token_uri` set (Google's files omit it and mean
/// `https://oauth2.googleapis.com/token`).
pub fn test_authorized_user_json(token_uri: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "type": "authorized_user",
        "client_id": TEST_CLIENT_ID,
        "client_secret": TEST_CLIENT_SECRET,
        "refresh_token": TEST_REFRESH_TOKEN,
        "token_uri": token_uri,
    }))
    .expect("JSON serialises")
}
