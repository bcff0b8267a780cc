//! Destinations: where a consumer delivers each event besides the studio's handler, with
//! no Rust to write. A destination takes the events of a batch together (EventBridge
//! packs them into calls) and answers one [`Verdict`] per event; the runner remembers
//! which destinations are done for a record, so a retry repeats only the others.
//!
//! The clients sit behind cargo features (`eventbridge`, `forward`), so a binary links
//! only what it can deliver to.

pub mod eventbridge;
pub mod http;

use std::time::Duration;

use crate::events::EventGroup;

/// The step name of the studio's own handler, beside the destinations' names.
pub const HANDLER: &str = "handler";

/// One event going out to the destinations (a delivery is what Creative Force sends to
/// ingest, `ack::Delivery`).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Its group.
    pub group: EventGroup,
    /// The exact bytes Creative Force signed.
    pub body: &'a [u8],
    /// `PayloadId`.
    pub payload_id: &'a str,
    /// `Action`, as sent.
    pub action: &'a str,
    /// `EventDatetimeUtc`, milliseconds since the Unix epoch.
    pub event_time_ms: i64,
    /// The replay run that sent it again, if any.
    pub replay_run: Option<&'a str>,
}

/// How one delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Delivered,
    /// Worth trying again, after `after` when the destination said.
    Retry {
        /// Why, for the logs.
        reason: String,
        /// When to try again (an HTTP `Retry-After`, capped); the queue's own delay
        /// otherwise.
        after: Option<Duration>,
    },
    /// Will not succeed: to the dead-letter queue with the reason.
    Permanent {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// A retryable failure with no advice on when.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry { reason: reason.into(), after: None }
    }
}

/// A place events are delivered to.
#[async_trait::async_trait]
pub trait Destination: Send + Sync {
    /// Its step name (`eventbridge`, `http`): in reports, metrics and the idempotency
    /// item's list of what is done.
    fn name(&self) -> &'static str;

    /// Delivers `events`, answering one verdict per event, in order. Never fails as a
    /// whole: an unreachable destination answers `Retry` for each event.
    async fn deliver(&self, events: &[Outgoing<'_>]) -> Vec<Verdict>;
}

#[async_trait::async_trait]
impl<D: Destination + ?Sized> Destination for std::sync::Arc<D> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn deliver(&self, events: &[Outgoing<'_>]) -> Vec<Verdict> {
        (**self).deliver(events).await
    }
}
