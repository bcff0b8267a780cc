//! Creative Force events: the seven groups, the envelope, and typed models tolerant of
//! the drift between the reference and what is really sent.

pub(crate) mod action;
mod group;
pub(crate) mod lenient;
mod models;
pub mod routing;

pub use action::{JobAction, ProductAction, SampleAction, SessionAction, TaskAction, UserAction, WorkUnitAction};
pub use group::{EventGroup, Route, UnknownGroup};
pub use models::{
    Actor, Envelope, JobEvent, PlannedTeam, PlannedTimeSlot, PlanningStatus, ProductEvent, ProductRef, SampleEvent,
    SessionEvent, TaskEvent, UserEvent, WorkUnitEvent,
};

use serde::de::DeserializeOwned;

/// A body could not be decoded as the event its queue carries.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or a field of the wrong type.
    #[error("cannot decode a {group} event: {source}")]
    Json {
        /// The queue's group.
        group: EventGroup,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A valid event, of another group than its queue's.
    #[error("a {found} event arrived on the {expected} queue")]
    WrongGroup {
        /// The queue's group.
        expected: EventGroup,
        /// The event's group.
        found: EventGroup,
    },
}

/// The typed event of one group, as its consumer receives it.
pub trait GroupEvent: DeserializeOwned + serde::Serialize + std::fmt::Debug + Send + Sync + 'static {
    /// The group whose queue carries this event.
    const GROUP: EventGroup;

    /// Payload ID, group, time and actor.
    fn envelope(&self) -> &Envelope;

    /// The action's canonical name (or its raw text when unknown).
    fn action_name(&self) -> &str;

    /// Decodes a body of this group.
    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let event: Self =
            serde_json::from_slice(body).map_err(|source| DecodeError::Json { group: Self::GROUP, source })?;
        let found = event.envelope().event_group;
        if found != Self::GROUP {
            return Err(DecodeError::WrongGroup { expected: Self::GROUP, found });
        }
        Ok(event)
    }
}

macro_rules! group_event {
    ($($ty:ty => $group:ident),+ $(,)?) => {$(
        impl GroupEvent for $ty {
            const GROUP: EventGroup = EventGroup::$group;
            fn envelope(&self) -> &Envelope {
                &self.envelope
            }
            fn action_name(&self) -> &str {
                self.action.name()
            }
        }
    )+};
}

group_event! {
    ProductEvent => Product,
    SampleEvent => Sample,
    UserEvent => User,
    TaskEvent => Task,
    WorkUnitEvent => WorkUnit,
    JobEvent => Job,
    SessionEvent => Session,
}

#[cfg(test)]
mod tests;
