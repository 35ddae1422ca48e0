//! `PUT`, which only Cloud Billing's `projects.updateBillingInfo` uses: a whole-resource
//! replacement, so sending it twice leaves the same state and it is retried.

use reqwest::Method;
use serde_json::Value;

use crate::answers::Answer;
use crate::client::GcpClient;
use crate::error::GcpError;
use crate::options::Api;

impl GcpClient {
    /// `PUT {base}/{path}` with a JSON body, retried; the answer parsed as `T` (a
    /// `BAD_RESPONSE` when it is not one).
    pub async fn put_as<T: Answer>(&self, api: &Api, path: &str, body: &Value) -> Result<T, GcpError> {
        self.call(Method::PUT, api, path, Some(body), true, None).await
    }
}
