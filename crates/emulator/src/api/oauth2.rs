//! Google's OAuth2 token endpoint (`POST /token`), JWT-bearer grant only.
//! (Stub: to be implemented.)

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::Emulator;

/// `POST /token` with a form body `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT`.
pub fn token(_emulator: &Emulator, _headers: &HeaderMap, _body: &[u8]) -> Response {
    ApiError::unimplemented("the OAuth2 token endpoint is not emulated yet").into_response()
}
