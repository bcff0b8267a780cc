//! Work unit (production) events: status changes, resets, vendors.

use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::WorkUnitEvent;

/// Handles `work unit` events.
#[derive(Debug, Clone, Default)]
pub struct WorkUnitHandler;

impl Handler for WorkUnitHandler {
    type Event = WorkUnitEvent;

    async fn handle(&self, event: &WorkUnitEvent, _ctx: &Context<'_>) -> Result<(), HandlerError> {
        tracing::debug!(
            payload_id = %event.envelope.payload_id,
            event_group = "work-unit",
            action = %event.action,
            product_code = event.product_code.as_deref(),
            production_type = event.production_type_name.as_deref(),
            work_unit_status = event.work_unit_status_name.as_deref(),
            "work unit event"
        );
        Ok(())
    }
}
