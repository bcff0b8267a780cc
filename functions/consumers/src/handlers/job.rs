//! Job events: created, updated, deleted, status and deadline changes.

use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::JobEvent;

/// Handles `Job` events.
#[derive(Debug, Clone, Default)]
pub struct JobHandler;

impl Handler for JobHandler {
    type Event = JobEvent;

    async fn handle(&self, event: &JobEvent, _ctx: &Context<'_>) -> Result<(), HandlerError> {
        tracing::debug!(
            payload_id = %event.envelope.payload_id,
            event_group = "job",
            action = %event.action,
            job_code = event.job_code.as_deref(),
            job_status = event.job_status_name.as_deref(),
            deadline_utc_ms = event.job_deadline_utc,
            "job event"
        );
        Ok(())
    }
}
