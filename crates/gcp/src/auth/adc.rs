//! Finding credentials as Google's libraries do (application default credentials), and
//! parsing credential files of every type. Messages name files and fields, never their values.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use super::flows::{self, Flow, Impersonation, SubjectSource};
use crate::error::GcpError;
use crate::options::{check_endpoint, Secret};

/// Google's token endpoint, the default `token_uri`.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
const WELL_KNOWN_FILE: &str = "application_default_credentials.json";

/// Credentials found: how to get tokens, what they are, and the file's quota project.
pub(crate) struct Found {
    pub flow: Flow,
    pub described: String,
    pub quota_project: Option<String>,
    /// A token fetched while looking (the metadata server's answer), with when to renew it.
    pub first_token: Option<(Secret, Instant)>,
}

/// The environment application default credentials read.
pub(crate) struct Environment {
    pub credentials_file: Option<PathBuf>,
    /// gcloud's configuration directory (`$CLOUDSDK_CONFIG`, else `~/.config/gcloud`).
    pub gcloud_dir: Option<PathBuf>,
    /// `GCE_METADATA_HOST` (or its old name `GCE_METADATA_ROOT`), `host[:port]`.
    pub metadata_host: String,
    /// `GCE_METADATA_TIMEOUT`, in seconds as Google's Python library reads it; overrides
    /// [`crate::ClientOptions::metadata_timeout`].
    pub metadata_timeout: Option<Duration>,
}

impl Environment {
    pub fn of_process() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let gcloud_dir = var("CLOUDSDK_CONFIG").map(PathBuf::from).or_else(|| {
            if cfg!(windows) {
                var("APPDATA").map(|d| PathBuf::from(d).join("gcloud"))
            } else {
                var("HOME").map(|h| PathBuf::from(h).join(".config").join("gcloud"))
            }
        });
        let metadata_host = var("GCE_METADATA_HOST")
            .or_else(|| var("GCE_METADATA_ROOT"))
            .and_then(|v| v.into_string().ok())
            .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_string());
        let metadata_timeout = var("GCE_METADATA_TIMEOUT")
            .and_then(|v| v.into_string().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64);
        Environment {
            metadata_timeout,
            credentials_file: var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
            gcloud_dir,
            metadata_host,
        }
    }
}

/// Google's order: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file, the metadata
/// server (asked for a token, for at most `metadata_timeout`). When none works, the error says
/// what was tried and why each failed.
pub(crate) async fn discover(
    env: &Environment,
    http: &reqwest::Client,
    metadata_timeout: Duration,
) -> Result<Found, GcpError> {
    let mut tried = Vec::new();
    match &env.credentials_file {
        Some(path) => return from_file(path, "GOOGLE_APPLICATION_CREDENTIALS"),
        None => tried.push("GOOGLE_APPLICATION_CREDENTIALS (not set)".to_string()),
    }
    match env.gcloud_dir.as_ref().map(|dir| dir.join(WELL_KNOWN_FILE)) {
        Some(path) if path.is_file() => return from_file(&path, "gcloud's credentials file"),
        Some(path) => tried.push(format!("gcloud's file {} (absent)", path.display())),
        None => tried.push("gcloud's file (neither CLOUDSDK_CONFIG nor HOME is set)".to_string()),
    }
    let metadata_timeout = env.metadata_timeout.unwrap_or(metadata_timeout);
    let base = format!("http://{}", env.metadata_host.trim_end_matches('/'));
    let flow = Flow::Metadata { base: base.clone() };
    let probe = tokio::time::timeout(metadata_timeout, flows::fetch(http, &flow)).await;
    let why = match probe {
        Ok(Ok((token, lifetime))) => {
            return Ok(Found {
                flow,
                described: format!("the metadata server at {base}"),
                quota_project: None,
                first_token: Some((token, Instant::now() + lifetime / 2)),
            })
        }
        Ok(Err(error)) => error.message,
        Err(_) => format!("no answer within {} ms", metadata_timeout.as_millis()),
    };
    tried.push(format!(
        "the metadata server at {base} (GCE_METADATA_HOST; {why})"
    ));
    // The fix (gcloud login, a file, --credentials) is the caller's to word.
    Err(GcpError::config(format!(
        "no application default credentials found; tried {}",
        tried.join(", ")
    )))
}

/// A credentials file of any type. `source` says how it was named, for messages.
pub(crate) fn from_file(path: &Path, source: &str) -> Result<Found, GcpError> {
    let named = format!("credentials file {} ({source})", path.display());
    if !path.is_file() {
        return Err(GcpError::config(format!(
            "{named} does not exist or is not a file"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|error| GcpError::config(format!("{named} cannot be read: {error}")))?;
    let json: Value = serde_json::from_str(&text).map_err(|error| {
        GcpError::config(format!(
            "{named} is not JSON (line {}, column {})",
            error.line(),
            error.column()
        ))
    })?;
    let flow = parse(&json).map_err(|why| GcpError::config(format!("{named}: {why}")))?;
    let kind = json["type"].as_str().unwrap_or_default();
    Ok(Found {
        flow,
        described: format!("{kind} credentials from {}", path.display()),
        quota_project: json["quota_project_id"]
            .as_str()
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        first_token: None,
    })
}

/// The flow a credentials JSON describes; the error names the missing or bad field.
fn parse(json: &Value) -> Result<Flow, String> {
    let fields = Fields(json);
    match json["type"].as_str() {
        Some("service_account") => {
            let email = fields.required("client_email")?;
            let key = private_key(&fields.required("private_key")?)
                .map_err(|why| format!("private_key is not a usable RSA key ({why})"))?;
            Ok(Flow::ServiceAccount {
                email,
                key_id: json["private_key_id"].as_str().map(str::to_string),
                key: Arc::new(key),
                token_uri: fields.endpoint("token_uri", Some(GOOGLE_TOKEN_URI))?,
            })
        }
        Some("authorized_user") => Ok(Flow::AuthorizedUser {
            client_id: fields.required("client_id")?,
            client_secret: Secret::new(fields.required("client_secret")?),
            refresh_token: Secret::new(fields.required("refresh_token")?),
            token_uri: fields.endpoint("token_uri", Some(GOOGLE_TOKEN_URI))?,
        }),
        Some("external_account") => external_account(&fields),
        Some("impersonated_service_account") => impersonated_service_account(&fields),
        Some(other) => Err(format!(
            "type {other:?} is not one of service_account, authorized_user, external_account, \
             impersonated_service_account"
        )),
        None => Err("the file has no \"type\" field; is it a Google credentials file?".into()),
    }
}

/// The fields of one credentials JSON, read with errors that name the field.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    /// A required, non-empty string field.
    fn required(&self, name: &str) -> Result<String, String> {
        match self.0[name].as_str() {
            Some(value) if !value.is_empty() => Ok(value.to_string()),
            _ => Err(format!(
                "{} credentials need a string field {name:?}",
                self.0["type"].as_str().unwrap_or("these")
            )),
        }
    }

    /// A URL field (or its default), checked like every endpoint (https, or loopback http).
    fn endpoint(&self, name: &str, default: Option<&str>) -> Result<String, String> {
        let value = match (self.0[name].as_str(), default) {
            (Some(value), _) if !value.is_empty() => value.to_string(),
            (_, Some(default)) => default.to_string(),
            _ => self.required(name)?,
        };
        check_endpoint(&value).map_err(|error| format!("{name}: {}", error.message))
    }
}

/// Workload identity federation: an STS exchange of a file- or URL-sourced subject token.
fn external_account(fields: &Fields) -> Result<Flow, String> {
    let json = fields.0;
    // Checked in this order so that a file with several problems names the same one as before.
    let subject = subject_source(&json["credential_source"])?;
    let impersonation = match json["service_account_impersonation_url"].as_str() {
        Some(url) if !url.is_empty() => Some(Impersonation {
            url: fields.endpoint("service_account_impersonation_url", None)?,
            delegates: vec![],
        }),
        _ => None,
    };
    Ok(Flow::External {
        audience: fields.required("audience")?,
        subject_token_type: fields.required("subject_token_type")?,
        token_url: fields.endpoint("token_url", Some("https://sts.googleapis.com/v1/token"))?,
        subject,
        impersonation,
    })
}

/// Where an external account's subject token comes from (`credential_source`).
fn subject_source(source: &Value) -> Result<SubjectSource, String> {
    let format = &source["format"];
    let field = match format["type"].as_str() {
        None | Some("text") => None,
        Some("json") => Some(
            format["subject_token_field_name"]
                .as_str()
                .ok_or("credential_source.format of type json needs subject_token_field_name")?
                .to_string(),
        ),
        Some(other) => {
            return Err(format!(
                "credential_source.format.type {other:?} is not text or json"
            ))
        }
    };
    if let Some(file) = source["file"].as_str() {
        return Ok(SubjectSource::File {
            path: PathBuf::from(file),
            field,
        });
    }
    if let Some(url) = source["url"].as_str() {
        let headers = source["headers"]
            .as_object()
            .map(|headers| {
                headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(SubjectSource::Url {
            url: url.to_string(),
            headers,
            field,
        });
    }
    if source.get("executable").is_some() || source.get("environment_id").is_some() {
        return Err(
            "credential_source: executable- and AWS-sourced subject tokens are not supported; \
                    use a file- or URL-sourced configuration"
                .into(),
        );
    }
    Err("credential_source needs a file or a url".into())
}

/// gcloud's impersonation file: source credentials, then `generateAccessToken` for the target.
fn impersonated_service_account(fields: &Fields) -> Result<Flow, String> {
    let json = fields.0;
    let source = &json["source_credentials"];
    if !source.is_object() {
        return Err("impersonated_service_account credentials need source_credentials".into());
    }
    let source = parse(source).map_err(|why| format!("source_credentials: {why}"))?;
    let delegates = json["delegates"]
        .as_array()
        .map(|d| d.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Ok(Flow::Impersonated {
        source: Box::new(source),
        target: Impersonation {
            url: fields.endpoint("service_account_impersonation_url", None)?,
            delegates,
        },
    })
}

/// A PKCS#8 PEM RSA private key. The reason never includes key material.
fn private_key(pem: &str) -> Result<ring::signature::RsaKeyPair, &'static str> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    if !pem.contains("-----BEGIN PRIVATE KEY-----") {
        return Err("expected a PEM \"BEGIN PRIVATE KEY\" block");
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "the PEM body is not base64")?;
    ring::signature::RsaKeyPair::from_pkcs8(&der).map_err(|_| "not an RSA PKCS#8 key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_file_is_named_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(
            &path,
            r#"{"type": "service_account", "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"}"#,
        )
        .unwrap();
        let error = from_file(&path, "--credentials").err().unwrap();
        let text = error.to_string();
        assert!(
            text.contains("key.json") && text.contains("private_key"),
            "{text}"
        );
        assert!(!text.contains("TOPSECRETMATERIAL"), "{text}");
        let missing = from_file(&dir.path().join("nope.json"), "--credentials")
            .err()
            .unwrap();
        assert!(missing.message.contains("does not exist"), "{missing}");
    }

    #[test]
    fn plain_http_token_endpoints_are_refused_off_loopback() {
        let json = serde_json::json!({
            "type": "authorized_user", "client_id": "c", "client_secret": "SECRETVALUE",
            "refresh_token": "REFRESHVALUE", "token_uri": "http://example.com/token"
        });
        let why = parse(&json).err().unwrap();
        assert!(why.contains("token_uri") && why.contains("plain http"), "{why}");
        assert!(
            !why.contains("SECRETVALUE") && !why.contains("REFRESHVALUE"),
            "{why}"
        );
    }
}
