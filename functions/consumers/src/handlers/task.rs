//! Task events: a production step started, completed, rejected, …

use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::TaskEvent;

/// Handles `task` events.
#[derive(Debug, Clone, Default)]
pub struct TaskHandler;

impl Handler for TaskHandler {
    type Event = TaskEvent;

    async fn handle(&self, event: &TaskEvent, _ctx: &Context<'_>) -> Result<(), HandlerError> {
        tracing::debug!(
            payload_id = %event.envelope.payload_id,
            event_group = "task",
            action = %event.action,
            step = event.step_name.as_deref(),
            step_status = event.step_status_name.as_deref(),
            product_code = event.product_code.as_deref(),
            job_code = event.job_code.as_deref(),
            assignee = event.assignee.as_ref().and_then(|a| a.user_id.as_deref()),
            "task event"
        );
        Ok(())
    }
}
