//! Ingest configuration from environment variables, validated once at start-up with an
//! error that names the variable.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

/// The environment variables of every function and of `cfwh dev`: the one place their
/// names are written in code. The template and the test drivers take them from here
/// (`cfwh template`, `cfwh groups --json`); the README's table names them for people.
pub mod var {
    use crate::events::Route;

    /// The webhook secret(s), comma-separated while rotating.
    pub const WEBHOOK_SECRET: &str = "CF_WEBHOOK_SECRET";
    /// The Secrets Manager secret holding them instead.
    pub const WEBHOOK_SECRET_ARN: &str = "CF_WEBHOOK_SECRET_ARN";
    /// `utf8` (the default) or `base64`.
    pub const SECRET_ENCODING: &str = "CF_SECRET_ENCODING";
    /// Seconds between two reads of the secret store.
    pub const SECRET_REFRESH_SECS: &str = "CF_SECRET_REFRESH_SECS";
    /// Seconds a secret removed from the store is still accepted.
    pub const SECRET_OVERLAP_SECS: &str = "CF_SECRET_OVERLAP_SECS";
    /// Largest body accepted.
    pub const MAX_BODY_BYTES: &str = "CF_MAX_BODY_BYTES";
    /// The queues' maximum message size.
    pub const QUEUE_MAX_MESSAGE_BYTES: &str = "CF_QUEUE_MAX_MESSAGE_BYTES";
    /// A custom header every delivery must carry.
    pub const REQUIRED_HEADER_NAME: &str = "CF_REQUIRED_HEADER_NAME";
    /// Its value (local runs; deployed, it is read from Secrets Manager instead).
    pub const REQUIRED_HEADER_VALUE: &str = "CF_REQUIRED_HEADER_VALUE";
    /// The Secrets Manager secret holding its value: an environment variable shows to
    /// anyone who may read the function's configuration, a secret only to its policy.
    pub const REQUIRED_HEADER_VALUE_ARN: &str = "CF_REQUIRED_HEADER_VALUE_ARN";
    /// The replay window in seconds (0: off).
    pub const MAX_EVENT_AGE_SECS: &str = "CF_MAX_EVENT_AGE_SECS";
    /// Tolerated clock skew in seconds.
    pub const MAX_CLOCK_SKEW_SECS: &str = "CF_MAX_CLOCK_SKEW_SECS";
    /// Workspaces to keep.
    pub const FILTER_WORKSPACES: &str = "CF_FILTER_WORKSPACES";
    /// Event groups to keep.
    pub const FILTER_EVENT_GROUPS: &str = "CF_FILTER_EVENT_GROUPS";
    /// Production steps of task events to keep.
    pub const FILTER_STEPS: &str = "CF_FILTER_STEPS";
    /// Time budget of one enqueue in milliseconds.
    pub const ENQUEUE_TIMEOUT_MS: &str = "CF_ENQUEUE_TIMEOUT_MS";
    /// `emf` (the default) or `off`.
    pub const METRICS: &str = "CF_METRICS";
    /// The stack's name: the `Stack` dimension of every metric.
    pub const STACK: &str = "CF_STACK";
    /// The root certificates the functions' AWS clients trust: `amazon` or `system`.
    pub const AWS_TLS_ROOTS: &str = "CF_AWS_TLS_ROOTS";
    /// The group a consumer serves.
    pub const EVENT_GROUP: &str = "CF_EVENT_GROUP";
    /// The DynamoDB idempotency table.
    pub const IDEMPOTENCY_TABLE: &str = "CF_IDEMPOTENCY_TABLE";
    /// The consumer's dead-letter queue.
    pub const DLQ_URL: &str = "CF_DLQ_URL";
    /// Seconds an in-progress claim holds.
    pub const IDEMPOTENCY_LEASE_SECS: &str = "CF_IDEMPOTENCY_LEASE_SECS";
    /// The consumer function's timeout in seconds, as the template set it: a Lambda
    /// knows only each invocation's deadline, and the claim lease must outlast the whole
    /// invocation (handler and settling) or a live holder could lose its claim.
    pub const CONSUMER_TIMEOUT_SECS: &str = "CF_CONSUMER_TIMEOUT_SECS";
    /// Seconds a completed `PayloadId` is remembered.
    pub const IDEMPOTENCY_TTL_SECS: &str = "CF_IDEMPOTENCY_TTL_SECS";
    /// The queue a consumer reads (for a `Retry-After` to move a message's visibility).
    pub const QUEUE_URL: &str = "CF_QUEUE_URL";
    /// The redrive policy's `maxReceiveCount` of the queue a consumer reads (consumers):
    /// a copy waiting on another's claim plans its waits within it.
    pub const MAX_RECEIVE_COUNT: &str = "CF_MAX_RECEIVE_COUNT";
    /// `latest` (the default: an event older than the one applied last to its entity's
    /// facet is skipped as stale) or `all` (every event is applied).
    pub const ORDERING: &str = "CF_ORDERING";
    /// A consumer's destinations: `eventbridge`, `http`, `archive`, comma-separated.
    pub const DESTINATIONS: &str = "CF_DESTINATIONS";
    /// The EventBridge bus (name or ARN).
    pub const EVENT_BUS: &str = "CF_EVENT_BUS";
    /// The `Source` of the EventBridge entries.
    pub const EVENT_SOURCE: &str = "CF_EVENT_SOURCE";
    /// The URL events are forwarded to.
    pub const FORWARD_URL: &str = "CF_FORWARD_URL";
    /// The forward secret itself (text, or JSON with extra headers).
    pub const FORWARD_SECRET: &str = "CF_FORWARD_SECRET";
    /// The Secrets Manager secret holding it instead.
    pub const FORWARD_SECRET_ARN: &str = "CF_FORWARD_SECRET_ARN";
    /// Milliseconds one forward may take.
    pub const FORWARD_TIMEOUT_MS: &str = "CF_FORWARD_TIMEOUT_MS";
    /// The groups the EventBridge destination serves: `all` (the default), `none`, or a
    /// comma-separated list; a consumer of another group skips it.
    pub const EVENTBRIDGE_GROUPS: &str = "CF_EVENTBRIDGE_GROUPS";
    /// The groups the HTTP forward serves, likewise.
    pub const FORWARD_GROUPS: &str = "CF_FORWARD_GROUPS";
    /// The groups the archive serves, likewise (the `unrouted` consumer archives whenever
    /// the archive is on).
    pub const ARCHIVE_GROUPS: &str = "CF_ARCHIVE_GROUPS";
    /// The archive's bucket.
    pub const ARCHIVE_BUCKET: &str = "CF_ARCHIVE_BUCKET";
    /// The prefix of every archived key.
    pub const ARCHIVE_PREFIX: &str = "CF_ARCHIVE_PREFIX";

    /// The variable holding a route's queue URL: `CF_QUEUE_URL_TASK`,
    /// `CF_QUEUE_URL_WORK_UNIT`, `CF_QUEUE_URL_UNROUTED`, …
    pub fn queue_url(route: Route) -> String {
        format!("CF_QUEUE_URL_{}", route.as_str().replace('-', "_").to_ascii_uppercase())
    }
}

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
/// as instances are recycled (README, "Revoking a leaked secret at once").
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

/// Configuration of a consumer Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// The route it serves (`CF_EVENT_GROUP`, a group or `unrouted`): every consumer
    /// deploys the same bootstrap. The `unrouted` consumer only archives.
    pub route: Route,
    /// The DynamoDB idempotency table (unused by the `unrouted` consumer).
    pub idempotency_table: String,
    /// The group's dead-letter queue.
    pub dlq_url: String,
    /// How long an in-progress claim holds (longer than the function's timeout).
    pub lease: Duration,
    /// The function's timeout, when the template said (`CF_CONSUMER_TIMEOUT_SECS`).
    pub timeout: Option<Duration>,
    /// How long a completed `PayloadId` is remembered (longer than the replay window).
    pub ttl: Duration,
    /// The queue it reads, when given: a `Retry-After` moves a message's visibility.
    pub queue_url: Option<String>,
    /// Where events go besides the handler.
    pub destinations: Destinations,
    /// Per-entity order.
    pub ordering: crate::consumer::Order,
    /// The redrive policy's `maxReceiveCount` of its queue (`CF_MAX_RECEIVE_COUNT`).
    pub max_receives: u32,
}

/// The destinations a consumer delivers to (`CF_DESTINATIONS`); none by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations {
    /// Put each event on an EventBridge bus.
    pub eventbridge: Option<EventBridgeSettings>,
    /// Forward each event to a URL.
    pub http: Option<ForwardSettings>,
    /// Archive each record in S3.
    pub archive: Option<ArchiveSettings>,
}

impl Destinations {
    /// The names of those switched on, in `CF_DESTINATIONS` spelling.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.eventbridge.is_some() {
            names.push(DESTINATION_NAMES[0]);
        }
        if self.http.is_some() {
            names.push(DESTINATION_NAMES[1]);
        }
        if self.archive.is_some() {
            names.push(DESTINATION_NAMES[2]);
        }
        names
    }
}

/// Every destination, as `CF_DESTINATIONS` names them.
pub const DESTINATION_NAMES: [&str; 3] = ["eventbridge", "http", "archive"];
/// Default time a forward may take.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default prefix of archived keys.
pub const DEFAULT_ARCHIVE_PREFIX: &str = "events";

/// The EventBridge destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBridgeSettings {
    /// Bus name or ARN.
    pub bus: String,
    /// `Source` of every entry.
    pub source: String,
}

/// The HTTP forward.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardSettings {
    /// Where to `POST`.
    pub url: http::Uri,
    /// The forward secret, or where to read it.
    pub secret: ForwardSecretSource,
    /// Time one forward may take.
    pub timeout: Duration,
}

impl fmt::Debug for ForwardSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardSettings")
            .field("url", &crate::destination::http::redacted_url(&self.url))
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where the forward secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum ForwardSecretSource {
    /// `CF_FORWARD_SECRET`: the text itself (checked at start-up).
    Text(String),
    /// `CF_FORWARD_SECRET_ARN`: read from Secrets Manager at start-up.
    Arn(String),
}

impl fmt::Debug for ForwardSecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(_) => f.write_str("Text(<redacted>)"),
            Self::Arn(arn) => f.debug_tuple("Arn").field(arn).finish(),
        }
    }
}

/// The S3 archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// The bucket.
    pub bucket: String,
    /// The prefix of every key.
    pub prefix: String,
}

impl Destinations {
    /// Reads `CF_DESTINATIONS` and what each destination named there needs.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut destinations = Self::default();
        let required = |name: &'static str, what: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .ok_or_else(|| ConfigError::new(name, format!("is not set: {what}, which {} needs", var::DESTINATIONS)))
        };
        for name in list(get, var::DESTINATIONS) {
            match name.to_ascii_lowercase().as_str() {
                "eventbridge" => {
                    let source = get(var::EVENT_SOURCE)
                        .map(|s| s.trim().to_owned())
                        .unwrap_or_else(|| crate::destination::eventbridge::DEFAULT_SOURCE.to_owned());
                    if source.starts_with("aws.") || source.len() > 256 {
                        return Err(ConfigError::new(
                            var::EVENT_SOURCE,
                            "must not start with aws. and is at most 256 characters",
                        ));
                    }
                    destinations.eventbridge =
                        Some(EventBridgeSettings { bus: required(var::EVENT_BUS, "the EventBridge bus")?, source });
                }
                "http" => {
                    let text = required(var::FORWARD_URL, "the URL to forward to")?;
                    let url = forward_url(&text)?;
                    let secret = match (get(var::FORWARD_SECRET), get(var::FORWARD_SECRET_ARN)) {
                        (Some(text), None) => {
                            crate::destination::http::ForwardSecret::parse(&text)
                                .map_err(|e| ConfigError::new(var::FORWARD_SECRET, e))?;
                            ForwardSecretSource::Text(text)
                        }
                        (None, Some(arn)) => ForwardSecretSource::Arn(arn.trim().to_owned()),
                        (Some(_), Some(_)) => {
                            return Err(ConfigError::new(
                                var::FORWARD_SECRET,
                                format!("set this or {}, not both", var::FORWARD_SECRET_ARN),
                            ))
                        }
                        (None, None) => {
                            return Err(ConfigError::new(
                                var::FORWARD_SECRET,
                                format!("is not set (nor {}): forwards are signed", var::FORWARD_SECRET_ARN),
                            ))
                        }
                    };
                    let timeout =
                        number(get, var::FORWARD_TIMEOUT_MS)?.map_or(DEFAULT_FORWARD_TIMEOUT, Duration::from_millis);
                    if timeout.is_zero() || timeout > Duration::from_secs(300) {
                        return Err(ConfigError::new(var::FORWARD_TIMEOUT_MS, "must be between 1 and 300000"));
                    }
                    destinations.http = Some(ForwardSettings { url, secret, timeout });
                }
                "archive" => {
                    let bucket = required(var::ARCHIVE_BUCKET, "the archive's S3 bucket")?;
                    let prefix = archive_prefix(get(var::ARCHIVE_PREFIX).as_deref())?;
                    destinations.archive = Some(ArchiveSettings { bucket, prefix });
                }
                other => {
                    return Err(ConfigError::new(
                        var::DESTINATIONS,
                        format!("unknown destination {other:?}; expected {}", DESTINATION_NAMES.join(", ")),
                    ))
                }
            }
        }
        Ok(destinations)
    }
}

/// The archive's key prefix (`CF_ARCHIVE_PREFIX`, `events` when unset), without its outer
/// slashes; no `.` or `..` segment and no `//`, in a bucket or a folder alike.
pub fn archive_prefix(text: Option<&str>) -> Result<String, ConfigError> {
    let prefix = text.map_or_else(|| DEFAULT_ARCHIVE_PREFIX.to_owned(), |p| p.trim().trim_matches('/').to_owned());
    if prefix.split('/').any(|part| part == "." || part == "..") || prefix.contains("//") {
        return Err(ConfigError::new(var::ARCHIVE_PREFIX, "must not hold . or .. segments or //"));
    }
    Ok(prefix)
}

/// A forward URL: absolute, `http` or `https`, with a host and no user information
/// (credentials go in the forward secret's headers, never in a URL that logs may show).
pub fn forward_url(text: &str) -> Result<http::Uri, ConfigError> {
    let bad = |why: &str| ConfigError::new(var::FORWARD_URL, why.to_owned());
    let url: http::Uri = text.trim().parse().map_err(|_| bad("is not a URL"))?;
    match url.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("must start with https:// (or http://)")),
    }
    let authority = url.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry credentials: put an Authorization header in the forward secret"));
    }
    if authority.host().is_empty() {
        return Err(bad("has no host"));
    }
    Ok(url)
}

/// Default in-progress lease: 15 minutes, Lambda's longest timeout.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);
/// Default memory of completed events: 7 days, well past the default replay window.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

impl ConsumerConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str, what: &str| {
            get(name).map(|v| v.trim().to_owned()).ok_or_else(|| ConfigError::new(name, format!("is not set: {what}")))
        };
        let group = required(var::EVENT_GROUP, "the event group this consumer serves")?;
        let route = if group.trim().eq_ignore_ascii_case(Route::Unrouted.as_str()) {
            Route::Unrouted
        } else {
            Route::Group(EventGroup::parse(&group).map_err(|e| ConfigError::new(var::EVENT_GROUP, e.to_string()))?)
        };
        // A destination that does not serve this group is dropped before its settings are
        // read: a forward URL only the task consumer uses cannot stop the job consumer.
        let mut served = Vec::new();
        for name in list(&get, var::DESTINATIONS) {
            let groups = match name.to_ascii_lowercase().as_str() {
                "eventbridge" => Some(var::EVENTBRIDGE_GROUPS),
                "http" => Some(var::FORWARD_GROUPS),
                "archive" => Some(var::ARCHIVE_GROUPS),
                _ => None,
            };
            let keep = match (route, groups) {
                (Route::Group(group), Some(groups)) => serves(&get, groups, group)?,
                _ => true,
            };
            if keep {
                served.push(name);
            }
        }
        let served = served.join(",");
        let destinations = Destinations::from_lookup(&|name: &str| {
            if name == var::DESTINATIONS {
                Some(served.clone()).filter(|s| !s.is_empty())
            } else {
                get(name)
            }
        })?;
        let idempotency_table = match route {
            Route::Group(_) => required(var::IDEMPOTENCY_TABLE, "the DynamoDB idempotency table's name")?,
            Route::Unrouted => {
                if destinations.archive.is_none() || destinations.eventbridge.is_some() || destinations.http.is_some() {
                    return Err(ConfigError::new(
                        var::DESTINATIONS,
                        "the unrouted consumer only archives: set it to archive",
                    ));
                }
                get(var::IDEMPOTENCY_TABLE).unwrap_or_default()
            }
        };
        let dlq_url = required(var::DLQ_URL, "the URL of this group's dead-letter queue")?;
        let lease = seconds(&get, var::IDEMPOTENCY_LEASE_SECS)?.unwrap_or(DEFAULT_CLAIM_LEASE);
        let timeout = seconds(&get, var::CONSUMER_TIMEOUT_SECS)?;
        if let Some(timeout) = timeout.filter(|timeout| lease <= *timeout) {
            return Err(ConfigError::new(
                var::IDEMPOTENCY_LEASE_SECS,
                format!(
                    "{}s must be longer than the function's timeout CF_CONSUMER_TIMEOUT_SECS ({}s): a claim must \
                     outlast the invocation that holds it, handler and settling included, or a second attempt \
                     could apply the event beside it",
                    lease.as_secs(),
                    timeout.as_secs()
                ),
            ));
        }
        let ttl = seconds(&get, var::IDEMPOTENCY_TTL_SECS)?.unwrap_or(DEFAULT_IDEMPOTENCY_TTL);
        let window = seconds(&get, var::MAX_EVENT_AGE_SECS)?.unwrap_or(DEFAULT_MAX_EVENT_AGE);
        let skew = seconds(&get, var::MAX_CLOCK_SKEW_SECS)?.unwrap_or(DEFAULT_MAX_CLOCK_SKEW);
        check_memory(ttl, window, skew)?;
        let queue_url = get(var::QUEUE_URL).map(|u| u.trim().to_owned());
        let ordering = match get(var::ORDERING) {
            None => crate::consumer::Order::default(),
            Some(text) => crate::consumer::Order::parse(&text).ok_or_else(|| {
                ConfigError::new(var::ORDERING, format!("expected latest or all, got {:?}", text.trim()))
            })?,
        };
        let max_receives = match number(&get, var::MAX_RECEIVE_COUNT)? {
            None => crate::stack::DEFAULT_MAX_RECEIVES,
            Some(n @ 1..=1000) => u32::try_from(n).unwrap_or(1000),
            Some(n) => {
                return Err(ConfigError::new(
                    var::MAX_RECEIVE_COUNT,
                    format!("expected 1 to 1000 (SQS's bounds for maxReceiveCount), got {n}"),
                ))
            }
        };
        Ok(Self {
            route,
            idempotency_table,
            dlq_url,
            lease,
            timeout,
            ttl,
            queue_url,
            destinations,
            ordering,
            max_receives,
        })
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A consumer's configuration from `base` and then `extra` variables.
    fn consumer(base: &[(&str, &str)], extra: &[(&str, &str)]) -> Result<ConsumerConfig, ConfigError> {
        let map: HashMap<String, String> =
            base.iter().chain(extra).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ConsumerConfig::from_lookup(move |name| map.get(name).cloned())
    }

    fn config(vars: &[(&str, &str)]) -> Result<IngestConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        IngestConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[("CF_WEBHOOK_SECRET", "s")]).unwrap();
        assert_eq!(c.max_body_bytes, 256 * 1024);
        assert!(c.required_header.is_none() && c.secret_store.is_none());
        assert_eq!(
            c.replay_window,
            Some(ReplayWindow { max_age: DEFAULT_MAX_EVENT_AGE, max_future: DEFAULT_MAX_CLOCK_SKEW })
        );
        assert!(config(&[("CF_WEBHOOK_SECRET", "s"), ("CF_MAX_EVENT_AGE_SECS", "0")]).unwrap().replay_window.is_none());
        assert_eq!(c.filters, Filters::default());
        assert_eq!(c.enqueue_timeout, DEFAULT_ENQUEUE_TIMEOUT);
    }

    #[test]
    fn empty_values_are_unset() {
        // The SAM template passes every optional setting, empty when unused.
        let c = config(&[
            ("CF_WEBHOOK_SECRET", "s"),
            ("CF_REQUIRED_HEADER_NAME", ""),
            ("CF_REQUIRED_HEADER_VALUE", ""),
            ("CF_FILTER_WORKSPACES", ""),
            ("CF_FILTER_EVENT_GROUPS", ""),
            ("CF_FILTER_STEPS", ""),
        ])
        .unwrap();
        assert!(c.required_header.is_none());
        assert_eq!(c.filters, Filters::default());
    }

    #[test]
    fn every_setting() {
        let c = config(&[
            ("CF_WEBHOOK_SECRET", "czE=,czI="),
            ("CF_SECRET_ENCODING", "base64"),
            ("CF_MAX_BODY_BYTES", "65536"),
            ("CF_REQUIRED_HEADER_NAME", "X-Studio-Token"),
            ("CF_REQUIRED_HEADER_VALUE", "t0ken"),
            ("CF_MAX_EVENT_AGE_SECS", "3600"),
            ("CF_MAX_CLOCK_SKEW_SECS", "60"),
            ("CF_FILTER_WORKSPACES", "AAA, bbb"),
            ("CF_FILTER_EVENT_GROUPS", "task,work unit"),
            ("CF_FILTER_STEPS", "Photography, Post Review"),
            ("CF_ENQUEUE_TIMEOUT_MS", "800"),
        ])
        .unwrap();
        assert_eq!(c.secrets.len(), 2);
        assert_eq!(c.max_body_bytes, 65536);
        let header = c.required_header.as_ref().unwrap();
        assert_eq!(header.name, "x-studio-token");
        assert!(header.matches(b"t0ken") && !header.matches(b"t0ken ") && !header.matches(b""));
        assert_eq!(
            c.replay_window,
            Some(ReplayWindow { max_age: Duration::from_secs(3600), max_future: Duration::from_secs(60) })
        );
        assert_eq!(c.filters.workspaces, ["aaa", "bbb"]);
        assert_eq!(c.filters.groups, [EventGroup::Task, EventGroup::WorkUnit]);
        assert_eq!(c.filters.steps, ["photography", "postreview"]);
        assert_eq!(c.enqueue_timeout, Duration::from_millis(800));
        let shown = format!("{c:?}");
        assert!(!shown.contains("t0ken") && !shown.contains("czE"), "{shown}");
    }

    #[test]
    fn the_required_header_value_may_come_from_secrets_manager() {
        let c = config(&[
            ("CF_WEBHOOK_SECRET", "s"),
            ("CF_REQUIRED_HEADER_NAME", "X-Studio-Token"),
            ("CF_REQUIRED_HEADER_VALUE_ARN", " arn:aws:secretsmanager:eu-west-1:1:secret:header "),
        ])
        .unwrap();
        let unread = c.required_header.unwrap();
        assert!(!unread.matches(b"") && !unread.matches(b"anything"), "fails closed until the value is read");
        let store = c.required_header_store.unwrap();
        assert_eq!(
            (store.name.as_str(), store.arn.as_str()),
            ("x-studio-token", "arn:aws:secretsmanager:eu-west-1:1:secret:header")
        );
    }

    #[test]
    fn consumer_settings_and_the_ttl_outlives_the_replay_window() {
        let vars = |extra: &[(&'static str, &'static str)]| {
            consumer(
                &[("CF_EVENT_GROUP", "work unit"), ("CF_IDEMPOTENCY_TABLE", "t"), ("CF_DLQ_URL", "https://dlq")],
                extra,
            )
        };
        let c = vars(&[]).unwrap();
        assert_eq!(
            (c.route, c.lease, c.ttl),
            (Route::Group(EventGroup::WorkUnit), DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL)
        );
        assert_eq!(c.destinations, Destinations::default(), "no destination unless asked");
        assert_eq!(c.ordering, crate::consumer::Order::Latest, "late events are skipped by default");
        assert_eq!(vars(&[("CF_ORDERING", " All ")]).unwrap().ordering, crate::consumer::Order::All);
        assert_eq!(vars(&[("CF_ORDERING", "newest")]).unwrap_err().var, "CF_ORDERING");
        assert_eq!(vars(&[("CF_EVENT_GROUP", "invoice")]).unwrap_err().var, "CF_EVENT_GROUP");
        assert_eq!(vars(&[("CF_IDEMPOTENCY_TTL_SECS", "3600")]).unwrap_err().var, "CF_IDEMPOTENCY_TTL_SECS");
        assert!(vars(&[("CF_IDEMPOTENCY_TTL_SECS", "3600"), ("CF_MAX_EVENT_AGE_SECS", "600")]).is_ok());
        let lease =
            |timeout, lease| vars(&[("CF_CONSUMER_TIMEOUT_SECS", timeout), ("CF_IDEMPOTENCY_LEASE_SECS", lease)]);
        let short = lease("60", "60").unwrap_err();
        assert_eq!(short.var, "CF_IDEMPOTENCY_LEASE_SECS", "a lease must outlast the whole invocation");
        assert!(short.problem.contains("CF_CONSUMER_TIMEOUT_SECS (60s)"), "{}", short.problem);
        assert_eq!(lease("60", "120").unwrap().timeout, Some(Duration::from_secs(60)));
        let missing = ConsumerConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(missing.var, "CF_EVENT_GROUP");
        assert_eq!(vars(&[]).unwrap().max_receives, crate::stack::DEFAULT_MAX_RECEIVES);
        assert_eq!(vars(&[("CF_MAX_RECEIVE_COUNT", " 12 ")]).unwrap().max_receives, 12);
        for wrong in ["0", "1001", "five", "-1"] {
            let refused = vars(&[("CF_MAX_RECEIVE_COUNT", wrong)]).unwrap_err();
            assert_eq!(refused.var, "CF_MAX_RECEIVE_COUNT", "{wrong}");
        }
    }

    #[test]
    fn destinations_are_validated_at_start_up_and_never_quote_the_forward_secret() {
        let vars = |extra: &[(&'static str, &'static str)]| {
            consumer(&[("CF_EVENT_GROUP", "task"), ("CF_IDEMPOTENCY_TABLE", "t"), ("CF_DLQ_URL", "https://dlq")], extra)
        };
        let all = vars(&[
            ("CF_DESTINATIONS", "eventbridge, http,archive"),
            ("CF_EVENT_BUS", "studio-events"),
            ("CF_FORWARD_URL", "https://studio.example/hooks/cf?x=1"),
            ("CF_FORWARD_SECRET", "fw-s3cret"),
            ("CF_ARCHIVE_BUCKET", "b"),
            ("CF_ARCHIVE_PREFIX", "/cf/"),
        ])
        .unwrap();
        let d = &all.destinations;
        assert_eq!(d.names(), ["eventbridge", "http", "archive"]);
        assert_eq!(d.eventbridge.as_ref().unwrap().source, "creativeforce");
        assert_eq!(d.http.as_ref().unwrap().timeout, DEFAULT_FORWARD_TIMEOUT);
        assert_eq!(d.archive.as_ref().unwrap().prefix, "cf");
        assert!(!format!("{all:?}").contains("fw-s3cret"));
        assert!(!format!("{all:?}").contains("x=1"), "the URL's query may hold a token");

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CF_DESTINATIONS", "slack")], "CF_DESTINATIONS"),
            (&[("CF_DESTINATIONS", "eventbridge")], "CF_EVENT_BUS"),
            (
                &[("CF_DESTINATIONS", "eventbridge"), ("CF_EVENT_BUS", "b"), ("CF_EVENT_SOURCE", "aws.s3")],
                "CF_EVENT_SOURCE",
            ),
            (&[("CF_DESTINATIONS", "http"), ("CF_FORWARD_SECRET", "s")], "CF_FORWARD_URL"),
            (
                &[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "ftp://x"), ("CF_FORWARD_SECRET", "s")],
                "CF_FORWARD_URL",
            ),
            (
                &[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "https://u:p@x"), ("CF_FORWARD_SECRET", "s")],
                "CF_FORWARD_URL",
            ),
            (
                &[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "/relative"), ("CF_FORWARD_SECRET", "s")],
                "CF_FORWARD_URL",
            ),
            (&[("CF_DESTINATIONS", "http"), ("CF_FORWARD_URL", "https://x")], "CF_FORWARD_SECRET"),
            (
                &[
                    ("CF_DESTINATIONS", "http"),
                    ("CF_FORWARD_URL", "https://x"),
                    ("CF_FORWARD_SECRET", "s"),
                    ("CF_FORWARD_SECRET_ARN", "arn"),
                ],
                "CF_FORWARD_SECRET",
            ),
            (
                &[
                    ("CF_DESTINATIONS", "http"),
                    ("CF_FORWARD_URL", "https://x"),
                    ("CF_FORWARD_SECRET", "{\"secret\":\"leak-me\",\"bad\":1}"),
                ],
                "CF_FORWARD_SECRET",
            ),
            (
                &[
                    ("CF_DESTINATIONS", "http"),
                    ("CF_FORWARD_URL", "https://x"),
                    ("CF_FORWARD_SECRET", "s"),
                    ("CF_FORWARD_TIMEOUT_MS", "0"),
                ],
                "CF_FORWARD_TIMEOUT_MS",
            ),
            (&[("CF_DESTINATIONS", "archive")], "CF_ARCHIVE_BUCKET"),
            (
                &[("CF_DESTINATIONS", "archive"), ("CF_ARCHIVE_BUCKET", "b"), ("CF_ARCHIVE_PREFIX", "a/../b")],
                "CF_ARCHIVE_PREFIX",
            ),
        ];
        for (extra, var) in cases {
            let err = vars(extra).unwrap_err();
            assert_eq!(&err.var, var, "{extra:?}: {err}");
            assert!(!err.to_string().contains("leak-me"), "{err}");
        }

        let only_jobs = vars(&[
            ("CF_DESTINATIONS", "eventbridge,,archive"),
            ("CF_EVENT_BUS", "b"),
            ("CF_EVENTBRIDGE_GROUPS", "job, Work Unit"),
            ("CF_ARCHIVE_BUCKET", "b"),
            ("CF_ARCHIVE_GROUPS", "all"),
        ])
        .unwrap();
        assert_eq!(only_jobs.destinations.names(), ["archive"], "a task consumer skips what serves other groups");
        let typo =
            vars(&[("CF_DESTINATIONS", "eventbridge"), ("CF_EVENT_BUS", "b"), ("CF_EVENTBRIDGE_GROUPS", "taks")]);
        assert_eq!(typo.unwrap_err().var, "CF_EVENTBRIDGE_GROUPS");
        let none =
            vars(&[("CF_DESTINATIONS", "eventbridge"), ("CF_EVENT_BUS", "b"), ("CF_EVENTBRIDGE_GROUPS", "none")]);
        assert_eq!(none.unwrap().destinations, Destinations::default());

        let unrouted = |extra: &[(&'static str, &'static str)]| {
            consumer(&[("CF_EVENT_GROUP", "unrouted"), ("CF_DLQ_URL", "https://dlq")], extra)
        };
        let archiver = unrouted(&[("CF_DESTINATIONS", "archive"), ("CF_ARCHIVE_BUCKET", "b")]).unwrap();
        assert_eq!(archiver.route, Route::Unrouted);
        assert_eq!(unrouted(&[]).unwrap_err().var, "CF_DESTINATIONS", "the unrouted consumer only archives");
    }

    #[test]
    fn secrets_from_secrets_manager() {
        let c = config(&[
            ("CF_WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:cf"),
            ("CF_SECRET_REFRESH_SECS", "60"),
        ])
        .unwrap();
        assert_eq!(c.secret_store.unwrap().arn, "arn:aws:secretsmanager:eu-west-1:1:secret:cf");
        assert!(c.secrets.is_empty(), "filled by the first read of the store");
    }

    #[test]
    fn errors_name_the_variable_and_never_the_secret() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "CF_WEBHOOK_SECRET"),
            (&[("CF_WEBHOOK_SECRET", "a,,b")], "CF_WEBHOOK_SECRET"),
            (&[("CF_WEBHOOK_SECRET", "sekrit!"), ("CF_SECRET_ENCODING", "base64")], "CF_WEBHOOK_SECRET"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_SECRET_ENCODING", "rot13")], "CF_SECRET_ENCODING"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_MAX_BODY_BYTES", "lots")], "CF_MAX_BODY_BYTES"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_MAX_BODY_BYTES", "1000000")], "CF_MAX_BODY_BYTES"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_QUEUE_MAX_MESSAGE_BYTES", "262144")], "CF_MAX_BODY_BYTES"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_REQUIRED_HEADER_NAME", "X-A")], "CF_REQUIRED_HEADER_VALUE"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_REQUIRED_HEADER_VALUE", "v")], "CF_REQUIRED_HEADER_NAME"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_REQUIRED_HEADER_VALUE_ARN", "arn")], "CF_REQUIRED_HEADER_NAME"),
            (
                &[
                    ("CF_WEBHOOK_SECRET", "s"),
                    ("CF_REQUIRED_HEADER_NAME", "X-A"),
                    ("CF_REQUIRED_HEADER_VALUE", "v"),
                    ("CF_REQUIRED_HEADER_VALUE_ARN", "arn"),
                ],
                "CF_REQUIRED_HEADER_VALUE_ARN",
            ),
            (
                &[
                    ("CF_WEBHOOK_SECRET", "s"),
                    ("CF_REQUIRED_HEADER_NAME", "bad name"),
                    ("CF_REQUIRED_HEADER_VALUE", "v"),
                ],
                "CF_REQUIRED_HEADER_NAME",
            ),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_FILTER_EVENT_GROUPS", "task,invoice")], "CF_FILTER_EVENT_GROUPS"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_ENQUEUE_TIMEOUT_MS", "0")], "CF_ENQUEUE_TIMEOUT_MS"),
            (&[("CF_WEBHOOK_SECRET", "s"), ("CF_WEBHOOK_SECRET_ARN", "arn")], "CF_WEBHOOK_SECRET_ARN"),
            (&[("CF_WEBHOOK_SECRET_ARN", "arn"), ("CF_SECRET_REFRESH_SECS", "often")], "CF_SECRET_REFRESH_SECS"),
        ];
        for (vars, var) in cases {
            let err = config(vars).unwrap_err();
            assert_eq!(err.var, *var, "{vars:?}: {err}");
            assert!(err.to_string().starts_with(var));
            assert!(!err.to_string().contains("sekrit"));
        }
    }
}
