//! Access tokens: application default credentials or a key file through `gcp_auth` (which
//! caches and refreshes tokens), or a static token for the emulator. A token only ever leaves
//! this module as a [`Secret`].

use std::path::Path;
use std::sync::Arc;

use crate::error::GcpError;
use crate::options::{Credentials, Secret};

/// The only OAuth scope Sluice asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

#[derive(Clone)]
pub(crate) enum TokenSource {
    Static(Secret),
    Provider(Arc<dyn gcp_auth::TokenProvider>),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("TokenSource::Static(<redacted>)"),
            TokenSource::Provider(_) => f.write_str("TokenSource::Provider"),
        }
    }
}

impl TokenSource {
    pub(crate) async fn new(credentials: &Credentials) -> Result<Self, GcpError> {
        match credentials {
            Credentials::StaticToken(token) if token.expose().trim().is_empty() => {
                Err(GcpError::config("the static token is empty"))
            }
            Credentials::StaticToken(token) => Ok(TokenSource::Static(token.clone())),
            Credentials::ApplicationDefault => {
                gcp_auth::provider()
                    .await
                    .map(TokenSource::Provider)
                    .map_err(|error| {
                        GcpError::config(format!(
                    "no application default credentials: {}. Run `gcloud auth application-default login`, \
                     set GOOGLE_APPLICATION_CREDENTIALS, or pass --credentials KEY.json",
                    describe(&error)
                ))
                    })
            }
            Credentials::KeyFile(path) => key_file(path),
        }
    }

    /// A token for [`SCOPE`].
    pub(crate) async fn token(&self) -> Result<Secret, GcpError> {
        match self {
            TokenSource::Static(token) => Ok(token.clone()),
            TokenSource::Provider(provider) => provider
                .token(&[SCOPE])
                .await
                .map(|token| Secret::new(token.as_str()))
                .map_err(|error| {
                    GcpError::config(format!("could not get an access token: {}", describe(&error)))
                }),
        }
    }
}

fn key_file(path: &Path) -> Result<TokenSource, GcpError> {
    if !path.is_file() {
        return Err(GcpError::config(format!(
            "credentials file {} does not exist or is not a file",
            path.display()
        )));
    }
    gcp_auth::CustomServiceAccount::from_file(path)
        .map(|account| TokenSource::Provider(Arc::new(account)))
        .map_err(|error| {
            GcpError::config(format!(
                "credentials file {} is not a usable service-account key (JSON with type, client_email, \
                 private_key, token_uri): {}",
                path.display(),
                describe(&error)
            ))
        })
}

/// The error and its causes, as `gcp_auth` words them (messages and positions, never key material).
fn describe(error: &gcp_auth::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_key_file_is_named_without_its_contents() {
        let dir = std::env::temp_dir().join(format!("sluice-gcp-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.json");
        std::fs::write(
            &path,
            r#"{"type": "service_account", "private_key": "TOPSECRETMATERIAL"}"#,
        )
        .unwrap();
        let error = TokenSource::new(&Credentials::KeyFile(path.clone()))
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("key.json"), "{text}");
        assert!(!text.contains("TOPSECRETMATERIAL"), "{text}");
        let missing = TokenSource::new(&Credentials::KeyFile(dir.join("nope.json")))
            .await
            .unwrap_err();
        assert!(missing.message.contains("does not exist"), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
