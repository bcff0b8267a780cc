//! The environment variables of every function and of `cfwh dev`: the one place their
//! names are written in code. The template and the test drivers take them from here
//! (`cfwh template`, `cfwh groups --json`); docs/configuration.md names them for people.

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
/// Records a consumer works on at once: handlers, claims, forwards, EventBridge calls.
pub const RECORDS_IN_FLIGHT: &str = "CF_RECORDS_IN_FLIGHT";
/// `latest` (the default: an event older than the one applied last to its entity's
/// facet is skipped as stale) or `all` (every event is applied).
pub const ORDERING: &str = "CF_ORDERING";
/// Drift from the payloads Creative Force documents: `report` (the default: one warning
/// per kind of drift, rate-limited, and the `Drift` metric) or `off`.
pub const DRIFT: &str = "CF_DRIFT";
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
/// `true` lets the forward use a plain `http://` URL to a host other than loopback: the
/// events and their signatures then cross the network unencrypted.
pub const FORWARD_ALLOW_HTTP: &str = "CF_FORWARD_ALLOW_HTTP";
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
