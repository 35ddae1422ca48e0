//! Google's OAuth2 token endpoint (`POST /token`, as `https://oauth2.googleapis.com/token`)
//! with two grants: JWT-bearer (RFC 7523), where a service account signs a short-lived JWT with
//! its private key and trades it for an access token, and refresh-token (RFC 6749 §6), where
//! gcloud user credentials (`authorized_user`) trade their refresh token; and Google's Security
//! Token Service (`POST /v1/token`, as `https://sts.googleapis.com/v1/token`), the RFC 8693
//! token exchange that Workload Identity Federation (`external_account`) uses.
//!
//! For the JWT-bearer grant: The assertion's RS256 signature is verified against the
//! public key configured for its `iss` ([`crate::config::ServiceAccountKeyConfig`]); its times are
//! checked against wall-clock time (the client signs with real time, not emulated time) and its
//! audience against this endpoint's URL. Errors are Google's OAuth2 ones (`{"error",
//! "error_description"}`, HTTP 400), not the API error envelope. Neither tokens nor assertions
//! are ever logged.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::{encoding, rsa_key, Emulator};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const REFRESH_TOKEN: &str = "refresh_token";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Google's own token URI, which key files carry and assertions name as `aud`.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Access tokens live an hour; Google answers 3599 seconds.
const EXPIRES_IN: u64 = 3599;
/// The longest assertion Google accepts, from `iat` to `exp`.
const MAX_LIFETIME: i64 = 3600;
/// How far in the future `iat` may be (clock skew).
const MAX_SKEW: i64 = 300;

const BAD_SIGNATURE: &str = "Invalid JWT Signature.";
const BAD_TIMES: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";
const BAD_AUDIENCE: &str = "Invalid JWT: Failed audience check.";

/// `POST /token` with a form body `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT`
/// or `grant_type=refresh_token&client_id=…&client_secret=…&refresh_token=…`.
pub fn token(emulator: &Emulator, headers: &HeaderMap, body: &[u8]) -> Response {
    answer(grant(emulator, headers, body))
}

/// `POST /v1/token` (STS): `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with
/// `audience`, `scope`, `requested_token_type`, `subject_token` and `subject_token_type`.
pub fn sts_token(emulator: &Emulator, body: &[u8]) -> Response {
    answer(exchange(emulator, body))
}

/// OAuth2's answer: the token, or `{error, error_description}` (401 for an unknown client,
/// 400 otherwise).
fn answer(result: Result<Value, OAuthError>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err((error, description)) => (
            if error == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            },
            axum::Json(json!({ "error": error, "error_description": description })),
        )
            .into_response(),
    }
}

/// An access token for `subject` (what the token stands for), numbered and seeded.
pub(crate) fn issue(emulator: &Emulator, subject: &str, scope: &str) -> String {
    let number = emulator.tokens_issued.fetch_add(1, Ordering::Relaxed);
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{}\n{number}\n{subject}\n{scope}", emulator.config.seed).as_bytes(),
    );
    let token = format!("ya29.emulator-{}", encoding::hex(digest.as_ref()));
    emulator.issued(&token, subject);
    token
}

/// The refresh-token grant of gcloud user credentials.
fn refresh(emulator: &Emulator, form: &Form) -> Result<Value, OAuthError> {
    let client_id = form.field("client_id").unwrap_or_default();
    let secret = form.field("client_secret").unwrap_or_default();
    let refresh_token = form
        .field("refresh_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid_request("Missing required parameter: refresh_token"))?;
    let client = emulator
        .config
        .authorized_users
        .iter()
        .filter(|user| user.client_id == client_id)
        .collect::<Vec<_>>();
    if client.is_empty() || !client.iter().any(|user| user.client_secret == secret) {
        return Err(("invalid_client", "Unauthorized".into()));
    }
    if !client.iter().any(|user| user.refresh_token == refresh_token) {
        return Err(invalid_grant("Bad Request"));
    }
    let scope = "https://www.googleapis.com/auth/cloud-platform openid https://www.googleapis.com/auth/userinfo.email";
    Ok(json!({
        "access_token": issue(emulator, &format!("user:{client_id}"), scope),
        "expires_in": EXPIRES_IN,
        "scope": scope,
        "token_type": "Bearer",
    }))
}

/// STS token exchange: a subject token the pool trusts for a federated access token.
fn exchange(emulator: &Emulator, body: &[u8]) -> Result<Value, OAuthError> {
    let form = Form::parse(body)?;
    let field = |name| form.field(name);
    let grant_type = field("grant_type").unwrap_or("");
    if grant_type != TOKEN_EXCHANGE {
        return Err((
            "unsupported_grant_type",
            format!("Invalid value for \"grant_type\": {grant_type}"),
        ));
    }
    let audience = field("audience").unwrap_or("");
    if !audience.starts_with("//iam.googleapis.com/") {
        return Err(invalid_request(format!(
            "Invalid value for \"audience\". This value should be the full resource name of the Identity Provider. {audience:?} is not."
        )));
    }
    if field("requested_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return Err(invalid_request(format!(
            "Invalid value for \"requested_token_type\": expected {ACCESS_TOKEN_TYPE}"
        )));
    }
    if field("subject_token_type").unwrap_or("").is_empty() {
        return Err(invalid_request("Missing required parameter: subject_token_type"));
    }
    let scope = field("scope").unwrap_or("").trim();
    if scope.is_empty() {
        return Err(("invalid_scope", "Missing required parameter: scope".into()));
    }
    let subject = field("subject_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid_request("Missing required parameter: subject_token"))?;
    if !emulator.config.sts_subject_tokens.iter().any(|t| t == subject) {
        return Err(invalid_grant(
            "The subject token is not trusted by the workload identity pool provider.",
        ));
    }
    Ok(json!({
        "access_token": issue(emulator, &format!("principal:{audience}"), scope),
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": EXPIRES_IN,
    }))
}

/// An OAuth2 error: its code and description.
type OAuthError = (&'static str, String);

fn invalid_request(description: impl Into<String>) -> OAuthError {
    ("invalid_request", description.into())
}

fn invalid_grant(description: &str) -> OAuthError {
    ("invalid_grant", description.to_string())
}

fn grant(emulator: &Emulator, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    let form = Form::parse(body)?;
    let field = |name| form.field(name);
    let grant_type = field("grant_type").unwrap_or("");
    if grant_type == REFRESH_TOKEN {
        return refresh(emulator, &form);
    }
    if grant_type != JWT_BEARER {
        return Err((
            "unsupported_grant_type",
            format!("Invalid grant_type: {grant_type}"),
        ));
    }
    let assertion = field("assertion")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid_request("Missing required parameter: assertion"))?;
    let jwt = Jwt::parse(assertion)?;
    jwt.verify_signature(emulator)?;
    jwt.check_times(unix_now())?;
    jwt.check_audience(headers)?;
    let scope = jwt.claims["scope"].as_str().unwrap_or("").trim();
    if scope.is_empty() {
        return Err((
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.".into(),
        ));
    }
    Ok(json!({
        "access_token": issue(emulator, &jwt.issuer, scope),
        "expires_in": EXPIRES_IN,
        "token_type": "Bearer",
    }))
}

/// A JWT-bearer assertion, split and decoded, its signature not yet checked.
struct Jwt<'a> {
    /// `header.claims`, the bytes the signature covers.
    signed: &'a str,
    signature: Vec<u8>,
    claims: Value,
    issuer: String,
}

impl<'a> Jwt<'a> {
    fn parse(assertion: &'a str) -> Result<Self, OAuthError> {
        let malformed = || {
            invalid_request(
                "Invalid JWT: the assertion is not a signed JWT (header.claims.signature, base64url).",
            )
        };
        let (signed, signature) = assertion.rsplit_once('.').ok_or_else(malformed)?;
        let (header, claims) = signed.split_once('.').ok_or_else(malformed)?;
        let json = |part: &str| -> Result<Value, OAuthError> {
            let bytes = encoding::base64_decode(part).ok_or_else(malformed)?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) if value.is_object() => Ok(value),
                _ => Err(malformed()),
            }
        };
        let header = json(header)?;
        if header["alg"] != "RS256" {
            return Err(invalid_request("Invalid JWT: the header's alg must be RS256."));
        }
        if !matches!(header.get("typ"), None | Some(Value::String(_))) {
            return Err(malformed());
        }
        let claims = json(claims)?;
        let signature = encoding::base64_decode(signature).ok_or_else(malformed)?;
        let issuer = match claims["iss"].as_str() {
            Some(iss) if !iss.is_empty() => iss.to_string(),
            _ => return Err(invalid_request("Invalid JWT: the iss claim is missing.")),
        };
        Ok(Jwt {
            signed,
            signature,
            claims,
            issuer,
        })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256, against the key configured for `iss`.
    fn verify_signature(&self, emulator: &Emulator) -> Result<(), OAuthError> {
        let key = emulator
            .config
            .service_account_keys
            .iter()
            .filter(|key| key.client_email == self.issuer)
            .find_map(|key| match rsa_key::rsa_public_key_der(&key.public_key_pem) {
                Ok(der) => Some(der),
                Err(problem) => {
                    tracing::warn!(client_email = %key.client_email, "configured service-account public key unusable: {problem}");
                    None
                }
            })
            .ok_or_else(|| invalid_grant(BAD_SIGNATURE))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, key)
            .verify(self.signed.as_bytes(), &self.signature)
            .map_err(|_| invalid_grant(BAD_SIGNATURE))
    }

    /// `iat` and `exp` in unix seconds: not expired, not issued in the future (beyond skew), and
    /// at most an hour apart.
    fn check_times(&self, now: i64) -> Result<(), OAuthError> {
        let seconds = |name: &str| {
            let value = &self.claims[name];
            value
                .as_i64()
                .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
                .ok_or_else(|| invalid_grant(BAD_TIMES))
        };
        let (iat, exp) = (seconds("iat")?, seconds("exp")?);
        if exp <= now || iat > now + MAX_SKEW || exp <= iat || exp - iat > MAX_LIFETIME {
            return Err(invalid_grant(BAD_TIMES));
        }
        Ok(())
    }

    /// `aud` must name this endpoint: as reached (`http://{Host}/token`) or as Google's.
    fn check_audience(&self, headers: &HeaderMap) -> Result<(), OAuthError> {
        let here = headers
            .get("host")
            .and_then(|host| host.to_str().ok())
            .map(|host| format!("http://{host}/token"));
        let audience = self.claims["aud"].as_str().unwrap_or("");
        if audience == GOOGLE_TOKEN_URI || here.as_deref() == Some(audience) {
            Ok(())
        } else {
            Err(invalid_grant(BAD_AUDIENCE))
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `application/x-www-form-urlencoded` pairs, percent- and `+`-decoded; `None` when not UTF-8
/// or a percent escape is broken.
/// A form-encoded request body (`application/x-www-form-urlencoded`), decoded.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        form_pairs(body)
            .map(Form)
            .ok_or_else(|| invalid_request("The request body is not form-encoded."))
    }

    /// The first value of the field `name`.
    fn field(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_bodies_are_percent_decoded() {
        let pairs =
            super::form_pairs(b"grant_type=urn%3Aietf%3Aparams&assertion=a.b%3D.c&scope=a+b").unwrap();
        assert_eq!(
            pairs,
            [
                ("grant_type".to_string(), "urn:ietf:params".to_string()),
                ("assertion".to_string(), "a.b=.c".to_string()),
                ("scope".to_string(), "a b".to_string()),
            ]
        );
        assert_eq!(super::form_pairs(b"a=%zz"), None);
        assert_eq!(super::form_pairs(b"a=%4"), None);
        assert_eq!(super::form_pairs(b"a=%+1"), None);
    }
}
