//! [`Cloud`]: the client every kind shares, built on first use.

use std::sync::Arc;
use std::time::Duration;

use sluice_engine::{PollPolicy, StepError};
use sluice_gcp::{ClientOptions, GcpClient, TimeScale};
use tokio::sync::OnceCell;

/// How the `gcp.*` kinds reach Google Cloud (or the emulator). Cheap to clone.
#[derive(Clone)]
pub struct Cloud {
    options: Arc<ClientOptions>,
    client: Arc<OnceCell<GcpClient>>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("endpoint", &self.options.endpoint)
            .field("time_scale", &self.options.time_scale)
            .finish_non_exhaustive()
    }
}

impl Cloud {
    /// A cloud whose client is built from `options` when a `gcp.*` step first needs it.
    pub fn new(options: ClientOptions) -> Self {
        Cloud {
            options: Arc::new(options),
            client: Arc::new(OnceCell::new()),
        }
    }

    /// A cloud around a client already built (tests, embedders).
    pub fn from_client(client: GcpClient) -> Self {
        let options = ClientOptions {
            time_scale: client.time_scale(),
            ..ClientOptions::default()
        };
        Cloud {
            options: Arc::new(options),
            client: Arc::new(OnceCell::new_with(Some(client))),
        }
    }

    /// The client, built on first use. Bad credentials fail the step permanently, naming the fix.
    pub async fn client(&self) -> Result<&GcpClient, StepError> {
        self.client
            .get_or_try_init(|| GcpClient::new((*self.options).clone()))
            .await
            .map_err(|error| {
                StepError::permanent(format!(
                    "cannot reach Google Cloud: {error}. Pass --credentials KEY.json, run \
                     `gcloud auth application-default login`, or use --emulator"
                ))
            })
    }

    /// The client if a step has built it already (never builds one: no credentials needed).
    pub fn built(&self) -> Option<&GcpClient> {
        self.client.get()
    }

    /// Real seconds per emulated second of the server ([`TimeScale::REAL`] against Google).
    pub fn time_scale(&self) -> TimeScale {
        self.options.time_scale
    }

    /// `d` as this cloud's time runs.
    pub fn scaled(&self, d: Duration) -> Duration {
        self.time_scale().apply(d)
    }

    /// Polling for operations read by GET (see [`get_poll_policy`]).
    pub fn get_poll_policy(&self) -> PollPolicy {
        get_poll_policy(self.time_scale())
    }

    /// Polling for Vertex AI operations: the `:wait` long poll paces itself, so no pause between.
    pub fn long_poll_policy(&self) -> PollPolicy {
        PollPolicy {
            first_delay: Duration::ZERO,
            multiplier: 1.0,
            max_delay: Duration::ZERO,
            deadline: self.scaled(Duration::from_secs(2 * 60 * 60)),
        }
    }
}

/// Polling for operations read by GET: from 1 s doubling to 10 s, scaled; no jitter. (Google's
/// libraries cap at 20–60 s and notice a finished operation up to a minute late; 10 s keeps
/// a run within 10 % of its critical path for a few more reads.) The one schedule for GET
/// polls: the steps' `poll` (through the engine) and the fleet clean-up's project deletes.
pub fn get_poll_policy(scale: TimeScale) -> PollPolicy {
    PollPolicy {
        first_delay: scale.apply(Duration::from_secs(1)),
        multiplier: 2.0,
        max_delay: scale.apply(Duration::from_secs(10)),
        deadline: scale.apply(Duration::from_secs(60 * 60)),
    }
}
