//! Sample events: check-in, check-out, location and container moves.

use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::SampleEvent;

/// Handles `sample` events.
#[derive(Debug, Clone, Default)]
pub struct SampleHandler;

impl Handler for SampleHandler {
    type Event = SampleEvent;

    async fn handle(&self, event: &SampleEvent, _ctx: &Context<'_>) -> Result<(), HandlerError> {
        tracing::debug!(
            payload_id = %event.envelope.payload_id,
            event_group = "sample",
            action = %event.action,
            sample_code = event.sample_code.as_deref(),
            location = event.location_name.as_deref(),
            sub_location = event.sub_location_name.as_deref(),
            products = event.products.len(),
            "sample event"
        );
        Ok(())
    }
}
