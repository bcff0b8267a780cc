//! User events: log-ins, invitations, profile changes.

use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::UserEvent;

/// Handles `user` events.
#[derive(Debug, Clone, Default)]
pub struct UserHandler;

impl Handler for UserHandler {
    type Event = UserEvent;

    async fn handle(&self, event: &UserEvent, _ctx: &Context<'_>) -> Result<(), HandlerError> {
        tracing::debug!(
            payload_id = %event.envelope.payload_id,
            event_group = "user",
            action = %event.action,
            user_id = event.user_id.as_deref(),
            actor = event.envelope.actor.as_ref().and_then(|a| a.user_id.as_deref()),
            "user event"
        );
        Ok(())
    }
}
