//! Queues: the publisher interface ingest writes through, and the in-memory queues of
//! `cfwh dev` and the tests.

pub mod memory;

use std::future::Future;
use std::time::Duration;

use crate::events::Route;
use crate::message::Message;

/// Why a message was not stored. Ingest answers 503 to all of them, so the sender retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The queue holds as many messages as it may.
    #[error("the {0} queue is full")]
    Full(Route),
    /// `cfwh dev`'s in-memory idempotency store remembers as many events as its cap:
    /// forgetting one still inside its memory could apply it twice, so new events wait
    /// until older ones pass their memory.
    #[error(
        "the idempotency store remembers {cap} events, its cap (cfwh dev --max-remembered): new events are \
         refused until older ones pass their memory"
    )]
    Remembering {
        /// The cap.
        cap: usize,
    },
    /// The queue no longer takes messages (the process is shutting down).
    #[error("the {0} queue is closed")]
    Closed(Route),
    /// The time budget ran out before the queue confirmed the message.
    #[error("the {route} queue did not confirm within {budget:?}")]
    Timeout {
        /// Where the message was going.
        route: Route,
        /// The budget that ran out.
        budget: Duration,
    },
    /// The queue service refused or failed.
    #[error("the {route} queue failed: {detail}")]
    Backend {
        /// Where the message was going.
        route: Route,
        /// What the service said (never a secret).
        detail: String,
    },
}

/// Stores a message durably, or says why not. Only after `Ok` may ingest answer 2xx.
pub trait Publisher: Send + Sync {
    /// Sends one message to the queue of its route.
    fn publish(&self, message: Message) -> impl Future<Output = Result<(), PublishError>> + Send;
}

impl<P: Publisher> Publisher for std::sync::Arc<P> {
    fn publish(&self, message: Message) -> impl Future<Output = Result<(), PublishError>> + Send {
        (**self).publish(message)
    }
}
