//! Product events: status, style guide, category, … changes of a product.

use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::ProductEvent;

/// Handles `product` events.
#[derive(Debug, Clone, Default)]
pub struct ProductHandler;

impl Handler for ProductHandler {
    type Event = ProductEvent;

    async fn handle(&self, event: &ProductEvent, _ctx: &Context<'_>) -> Result<(), HandlerError> {
        tracing::debug!(
            payload_id = %event.envelope.payload_id,
            event_group = "product",
            action = %event.action,
            product_code = event.product_code.as_deref(),
            product_status = event.product_status_name.as_deref(),
            job_code = event.job_code.as_deref(),
            client = event.client_name.as_deref(),
            "product event"
        );
        Ok(())
    }
}
