//! Configuration from environment variables, validated once at start-up with an error
//! that names the variable: the defaults and the shared readers here; the variables'
//! names, ingest's settings, the consumers' and their destinations' in their own files.

use std::time::Duration;

use crate::events::{EventGroup, Route};
use crate::filter::{step_key, Filters};
use crate::message::ATTRIBUTES_BUDGET;
use crate::secret::{Keyring, Refresh, SecretEncoding, SecretError, SecretSet};

/// Default body limit: 256 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Default maximum SQS message size: 1 MiB, the SQS maximum; the template configures
/// its queues so.
pub const DEFAULT_QUEUE_MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Default time budget of one enqueue.
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_millis(2500);
/// Default tolerance for event times in the future when the replay window is on.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// Default replay window: one hour. Creative Force tries a delivery once and retries it
/// 3 times, 5 to 10 minutes apart, so its last attempt comes at most about 30 minutes
/// after the first; twice that leaves room for its own queueing and for clock skew. An
/// authentic event older than this is quarantined (kept with the reason, never applied),
/// not refused, so a slow sender loses nothing; a captured delivery sent again later
/// cannot be applied. The idempotency TTL must be longer than this.
pub const DEFAULT_MAX_EVENT_AGE: Duration = Duration::from_secs(3600);
/// Default interval between two reads of the secret store.
pub const DEFAULT_SECRET_REFRESH: Duration = Duration::from_secs(300);
/// Default time a secret removed from the store is still accepted.
pub const DEFAULT_SECRET_OVERLAP: Duration = Duration::from_secs(3600);

mod consumer;
mod destinations;
mod ingest;
pub mod var;

pub use consumer::{
    ConsumerConfig, DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL, DEFAULT_RECORDS_IN_FLIGHT, MAX_RECORDS_IN_FLIGHT,
};
pub use destinations::{
    archive_prefix, forward_url, ArchiveSettings, Destinations, EventBridgeSettings, ForwardSecretSource,
    ForwardSettings, DEFAULT_ARCHIVE_PREFIX, DEFAULT_FORWARD_TIMEOUT, DESTINATION_NAMES,
};
pub use ingest::{IngestConfig, ReplayWindow, RequiredHeader, RequiredHeaderStore, SecretStore};

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong with it (never its secret value).
    pub problem: String,
}

impl ConfigError {
    /// A problem with `var`; `problem` must never quote a secret.
    pub fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self { var, problem: problem.into() }
    }
}

/// The idempotency memory must outlast the replay window plus the clock skew: an
/// authentic delivery replayed at any time is then either refused by ingest or
/// recognised by the store. A window of zero (off) removes the bound.
pub fn check_memory(memory: Duration, window: Duration, skew: Duration) -> Result<(), ConfigError> {
    if window.is_zero() || memory > window + skew {
        return Ok(());
    }
    Err(ConfigError::new(
        var::IDEMPOTENCY_TTL_SECS,
        format!(
            "{}s must be longer than the replay window CF_MAX_EVENT_AGE_SECS ({}s) plus the clock skew \
             CF_MAX_CLOCK_SKEW_SECS ({}s), or a replayed delivery could be applied twice",
            memory.as_secs(),
            window.as_secs(),
            skew.as_secs()
        ),
    ))
}

/// Whether a destination's group list (`all`, the default; `none`; or groups) holds
/// `group`. Every name must be a group, so a typo fails the start-up.
fn serves(get: &impl Fn(&str) -> Option<String>, var: &'static str, group: EventGroup) -> Result<bool, ConfigError> {
    let Some(text) = get(var) else { return Ok(true) };
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "all" => return Ok(true),
        "none" => return Ok(false),
        _ => {}
    }
    let mut found = false;
    for name in list(get, var) {
        let listed = EventGroup::parse(&name).map_err(|e| ConfigError::new(var, e.to_string()))?;
        found |= listed == group;
    }
    Ok(found)
}

fn number(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<Option<u64>, ConfigError> {
    get(var)
        .map(|text| {
            text.trim()
                .replace('_', "")
                .parse::<u64>()
                .map_err(|_| ConfigError::new(var, format!("expected a whole number, got {text:?}")))
        })
        .transpose()
}

fn seconds(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<Option<Duration>, ConfigError> {
    Ok(number(get, var)?.map(Duration::from_secs))
}

fn list(get: &impl Fn(&str) -> Option<String>, var: &str) -> Vec<String> {
    get(var)
        .map(|text| text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
