//! Ingest's settings: the secrets, the required header, the replay window, the filters
//! and the queues.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::*;

/// A header every delivery must carry with exactly this value (Creative Force's
/// "Custom Headers" tab), compared in constant time.
#[derive(Clone)]
pub struct RequiredHeader {
    /// Header name.
    pub name: HeaderName,
    /// None until a value kept in a secret store is read: nothing matches then.
    value_digest: Option<[u8; 32]>,
}

impl RequiredHeader {
    /// A required header; `value` is treated as a secret.
    pub fn new(name: HeaderName, value: &[u8]) -> Self {
        Self { name, value_digest: Some(Sha256::digest(value).into()) }
    }

    /// A required header whose value has yet to be read: it refuses every delivery, so
    /// that a value never read fails closed.
    pub fn unread(name: HeaderName) -> Self {
        Self { name, value_digest: None }
    }

    /// True when `value` is the configured value. Digests are compared so that neither
    /// the content nor the length of the expected value shows in the timing.
    pub fn matches(&self, value: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(value).into();
        self.value_digest.is_some_and(|expected| bool::from(digest.ct_eq(&expected)))
    }
}

impl fmt::Debug for RequiredHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequiredHeader({}: <redacted>)", self.name)
    }
}

/// A required header whose value is kept in Secrets Manager: ingest reads it once at
/// start-up (`aws::secrets_manager::read_required_header`); a changed value takes effect
/// as instances are recycled (docs/operations.md, "Revoking a leaked secret at once").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredHeaderStore {
    /// Header name.
    pub name: HeaderName,
    /// ARN (or name) of the secret holding its value.
    pub arn: String,
}

/// The replay window: how old (and how far in the future) `EventDatetimeUtc` may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Oldest accepted age.
    pub max_age: Duration,
    /// Furthest accepted distance into the future (clock skew).
    pub max_future: Duration,
}

/// Where the secrets come from when they are not in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretStore {
    /// ARN (or name) of the secret in AWS Secrets Manager.
    pub arn: String,
    /// How its text becomes keys.
    pub encoding: SecretEncoding,
}

/// Everything the ack path needs.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Accepted secrets.
    pub secrets: Arc<Keyring>,
    /// The secret store that fills `secrets`, when they come from one.
    pub secret_store: Option<SecretStore>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Optional required custom header.
    pub required_header: Option<RequiredHeader>,
    /// Where the required header's value is to be read from, until it is.
    pub required_header_store: Option<RequiredHeaderStore>,
    /// Optional replay window.
    pub replay_window: Option<ReplayWindow>,
    /// Receiver-side filters.
    pub filters: Filters,
    /// Time budget of one enqueue, after which ingest answers 503.
    pub enqueue_timeout: Duration,
}

impl IngestConfig {
    /// A configuration with these fixed secrets and no replay window, every
    /// other setting at its default.
    pub fn new(secrets: SecretSet) -> Self {
        Self {
            secrets: Arc::new(Keyring::fixed(secrets)),
            secret_store: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            required_header: None,
            required_header_store: None,
            replay_window: None,
            filters: Filters::default(),
            enqueue_timeout: DEFAULT_ENQUEUE_TIMEOUT,
        }
    }

    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let encoding = match get(var::SECRET_ENCODING) {
            Some(text) => {
                SecretEncoding::parse(&text).map_err(|e| ConfigError::new(var::SECRET_ENCODING, e.to_string()))?
            }
            None => SecretEncoding::Utf8,
        };
        let (secrets, secret_store) = match (get(var::WEBHOOK_SECRET), get(var::WEBHOOK_SECRET_ARN)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(var::WEBHOOK_SECRET_ARN, "set either it or CF_WEBHOOK_SECRET, not both"))
            }
            (None, None) => {
                return Err(ConfigError::new(
                    var::WEBHOOK_SECRET,
                    "is not set: give the webhook's secret (several separated by commas while rotating), \
                     or CF_WEBHOOK_SECRET_ARN for a secret in AWS Secrets Manager",
                ))
            }
            (Some(text), None) => {
                let set = SecretSet::parse_list(&text, encoding).map_err(|e| match e {
                    SecretError::Empty => ConfigError::new(var::WEBHOOK_SECRET, "holds an empty secret"),
                    other => ConfigError::new(var::WEBHOOK_SECRET, other.to_string()),
                })?;
                (Keyring::fixed(set), None)
            }
            (None, Some(arn)) => {
                let refresh = Refresh {
                    interval: seconds(&get, var::SECRET_REFRESH_SECS)?.unwrap_or(DEFAULT_SECRET_REFRESH),
                    overlap: seconds(&get, var::SECRET_OVERLAP_SECS)?.unwrap_or(DEFAULT_SECRET_OVERLAP),
                };
                (Keyring::refreshed(refresh), Some(SecretStore { arn: arn.trim().to_owned(), encoding }))
            }
        };

        let max_body_bytes = number(&get, var::MAX_BODY_BYTES)?.unwrap_or(DEFAULT_MAX_BODY_BYTES as u64) as usize;
        let queue_max =
            number(&get, var::QUEUE_MAX_MESSAGE_BYTES)?.unwrap_or(DEFAULT_QUEUE_MAX_MESSAGE_BYTES as u64) as usize;
        if max_body_bytes == 0 {
            return Err(ConfigError::new(var::MAX_BODY_BYTES, "must be at least 1"));
        }
        let worst_message = max_body_bytes.div_ceil(3) * 4 + ATTRIBUTES_BUDGET;
        if worst_message > queue_max {
            return Err(ConfigError::new(
                var::MAX_BODY_BYTES,
                format!(
                    "{max_body_bytes} bytes do not fit a {queue_max}-byte queue message once base64-encoded with their attributes \
                     ({worst_message} bytes); lower it to {} or raise CF_QUEUE_MAX_MESSAGE_BYTES",
                    (queue_max.saturating_sub(ATTRIBUTES_BUDGET)) / 4 * 3
                ),
            ));
        }

        let header_name = |name: String| {
            HeaderName::try_from(name.trim()).map_err(|_| {
                ConfigError::new(var::REQUIRED_HEADER_NAME, format!("{name:?} is not a valid header name"))
            })
        };
        let (required_header, required_header_store) = match (
            get(var::REQUIRED_HEADER_NAME),
            get(var::REQUIRED_HEADER_VALUE),
            get(var::REQUIRED_HEADER_VALUE_ARN),
        ) {
            (None, None, None) => (None, None),
            (None, _, _) => {
                return Err(ConfigError::new(
                    var::REQUIRED_HEADER_NAME,
                    "must be set when CF_REQUIRED_HEADER_VALUE or CF_REQUIRED_HEADER_VALUE_ARN is",
                ))
            }
            (Some(_), Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    var::REQUIRED_HEADER_VALUE_ARN,
                    "set either it or CF_REQUIRED_HEADER_VALUE, not both",
                ))
            }
            (Some(_), None, None) => {
                return Err(ConfigError::new(
                    var::REQUIRED_HEADER_VALUE,
                    "must be set (or CF_REQUIRED_HEADER_VALUE_ARN) when CF_REQUIRED_HEADER_NAME is",
                ))
            }
            (Some(name), Some(value), None) => (Some(RequiredHeader::new(header_name(name)?, value.as_bytes())), None),
            (Some(name), None, Some(arn)) => {
                let name = header_name(name)?;
                let store = RequiredHeaderStore { name: name.clone(), arn: arn.trim().to_owned() };
                (Some(RequiredHeader::unread(name)), Some(store))
            }
        };

        let replay_window = match seconds(&get, var::MAX_EVENT_AGE_SECS)?.unwrap_or(DEFAULT_MAX_EVENT_AGE) {
            age if age.is_zero() => None,
            max_age => Some(ReplayWindow {
                max_age,
                max_future: seconds(&get, var::MAX_CLOCK_SKEW_SECS)?.unwrap_or(DEFAULT_MAX_CLOCK_SKEW),
            }),
        };

        let filters = Filters {
            workspaces: list(&get, var::FILTER_WORKSPACES).into_iter().map(|w| w.to_ascii_lowercase()).collect(),
            groups: list(&get, var::FILTER_EVENT_GROUPS)
                .into_iter()
                .map(|g| EventGroup::parse(&g).map_err(|e| ConfigError::new(var::FILTER_EVENT_GROUPS, e.to_string())))
                .collect::<Result<_, _>>()?,
            steps: list(&get, var::FILTER_STEPS).iter().map(|s| step_key(s)).collect(),
        };

        let enqueue_timeout =
            number(&get, var::ENQUEUE_TIMEOUT_MS)?.map_or(DEFAULT_ENQUEUE_TIMEOUT, Duration::from_millis);
        if enqueue_timeout.is_zero() {
            return Err(ConfigError::new(var::ENQUEUE_TIMEOUT_MS, "must be at least 1"));
        }

        Ok(Self {
            secrets: Arc::new(secrets),
            secret_store,
            max_body_bytes,
            required_header,
            required_header_store,
            replay_window,
            filters,
            enqueue_timeout,
        })
    }
}
