//! Failure injection for `cfwh dev --chaos-percent` (soak tests): a handler wrapper that
//! fails a share of the payloads, and the runner built around it.

use std::sync::Arc;

use cf_webhooks::consumer::{Consume, DeadLetterSink, Handler, HandlerError, IdempotencyStore, Runner};
use cf_webhooks::events::GroupEvent;
use cf_webhooks_consumers::{Outlets, WithHandler};

/// A shipped handler with injected failures, chosen by a hash of the `PayloadId` so that a
/// payload fails the same way on every delivery: `percent / 2` of the payloads fail their
/// first attempt only, as many fail every attempt (and end in the dead-letter queue).
pub struct Chaos<H> {
    inner: H,
    percent: u8,
}

impl<H> Chaos<H> {
    /// `inner`, failing `percent` of the payloads (0: never).
    pub fn new(inner: H, percent: u8) -> Self {
        Self { inner, percent: percent.min(100) }
    }
}

/// The bucket (0..100) of a payload, and whether it fails always (odd) or once (even).
pub fn chaos_bucket(payload_id: &str) -> u8 {
    let digest = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), payload_id.as_bytes()));
    digest[0] % 100
}

impl<H: Handler> Handler for Chaos<H> {
    type Event = H::Event;

    async fn handle(&self, event: &H::Event, ctx: &cf_webhooks::consumer::Context<'_>) -> Result<(), HandlerError> {
        // No hash when there is no chaos (the default): it would cost every event.
        let bucket = if self.percent == 0 { u8::MAX } else { chaos_bucket(&event.envelope().payload_id) };
        if bucket < self.percent {
            if bucket % 2 == 1 {
                return Err(HandlerError::retry("injected failure (chaos: every attempt)"));
            }
            if ctx.receive_count <= 1 {
                return Err(HandlerError::retry("injected failure (chaos: first attempt)"));
            }
        }
        self.inner.handle(event, ctx).await
    }
}

/// Builds a group's runner around its shipped handler, wrapped for failure injection.
pub(super) struct WithChaos {
    pub(super) percent: u8,
    pub(super) store: Arc<dyn IdempotencyStore>,
    pub(super) dead_letters: Arc<dyn DeadLetterSink>,
    pub(super) outlets: Outlets,
    pub(super) policy: cf_webhooks_consumers::Policy,
}

impl WithHandler for WithChaos {
    type Output = Arc<dyn Consume>;
    fn with<H: Handler + 'static>(self, handler: H) -> Arc<dyn Consume> {
        let runner = self.policy.apply(Runner::new(Chaos::new(handler, self.percent), self.store, self.dead_letters));
        Arc::new(self.outlets.equip(runner))
    }
}
