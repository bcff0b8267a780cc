//! Session events: products added to or removed from a shooting session.

use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::SessionEvent;

/// Handles `session` events.
#[derive(Debug, Clone, Default)]
pub struct SessionHandler;

impl Handler for SessionHandler {
    type Event = SessionEvent;

    async fn handle(&self, event: &SessionEvent, _ctx: &Context<'_>) -> Result<(), HandlerError> {
        tracing::debug!(
            payload_id = %event.envelope.payload_id,
            event_group = "session",
            action = %event.action,
            session_code = event.session_code.as_deref(),
            product_code = event.product_code.as_deref(),
            planning_status = event.planning_status.as_ref().and_then(|s| s.planning_status.as_deref()),
            planned_start = event.planned_time_slot.first().and_then(|s| s.planned_start.as_deref()),
            source = event.action_source.as_deref(),
            "session event"
        );
        Ok(())
    }
}
