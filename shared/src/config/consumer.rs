//! A consumer function's settings: its route, the idempotency store, the lease and the
//! memory, its queue, its destinations and per-entity order.

use std::time::Duration;

use super::*;

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
    /// Records worked on at once (`CF_RECORDS_IN_FLIGHT`): handlers, claims, forwards and
    /// EventBridge calls of a batch never exceed it.
    pub records_in_flight: usize,
    /// Drift from the documented payloads reported, or not (`CF_DRIFT`).
    pub drift: crate::consumer::DriftMode,
}

pub use crate::consumer::{DEFAULT_RECORDS_IN_FLIGHT, MAX_RECORDS_IN_FLIGHT};

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
        let drift = match get(var::DRIFT) {
            None => crate::consumer::DriftMode::default(),
            Some(text) => crate::consumer::DriftMode::parse(&text).ok_or_else(|| {
                ConfigError::new(var::DRIFT, format!("expected report or off, got {:?}", text.trim()))
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
        let records_in_flight = match number(&get, var::RECORDS_IN_FLIGHT)? {
            None => DEFAULT_RECORDS_IN_FLIGHT,
            Some(n) if (1..=MAX_RECORDS_IN_FLIGHT as u64).contains(&n) => n as usize,
            Some(n) => {
                return Err(ConfigError::new(
                    var::RECORDS_IN_FLIGHT,
                    format!("expected 1 to {MAX_RECORDS_IN_FLIGHT}, got {n}"),
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
            records_in_flight,
            drift,
        })
    }
}
