//! Creative Force events: the seven groups, the envelope, and typed models tolerant of
//! the drift between the reference and what is really sent.

pub(crate) mod action;
mod decode;
mod group;
pub(crate) mod lenient;
mod models;
pub mod ordering;
pub mod routing;

pub use action::{JobAction, ProductAction, SampleAction, SessionAction, TaskAction, UserAction, WorkUnitAction};
pub use group::{EventGroup, Route, UnknownGroup};
pub use models::{
    Actor, Envelope, JobEvent, PlannedTeam, PlannedTimeSlot, PlanningStatus, ProductEvent, ProductRef, SampleEvent,
    SessionEvent, TaskEvent, UserEvent, WorkUnitEvent,
};

use serde::de::DeserializeOwned;

/// The event in words, `<Group> <action>`: `Task completed`, `Product status changed`,
/// `Work unit status changed`; an action this version does not know is kept as sent
/// (`Task Teleported`). What `cfwh send` puts in `X-CF-Event`, and one fixed string per
/// known action, so that a rule can match it exactly.
pub fn detail_type(group: EventGroup, action: &str) -> String {
    // A known action's words, written once per process: no parse of words and no
    // formatting per event.
    static KNOWN: std::sync::OnceLock<Vec<Vec<String>>> = std::sync::OnceLock::new();
    fn index<A: PartialEq>(known: &[A], action: A) -> Option<usize> {
        known.iter().position(|k| *k == action)
    }
    let known = match group {
        EventGroup::Product => index(ProductAction::KNOWN, ProductAction::parse(action)),
        EventGroup::Sample => index(SampleAction::KNOWN, SampleAction::parse(action)),
        EventGroup::User => index(UserAction::KNOWN, UserAction::parse(action)),
        EventGroup::Task => index(TaskAction::KNOWN, TaskAction::parse(action)),
        EventGroup::WorkUnit => index(WorkUnitAction::KNOWN, WorkUnitAction::parse(action)),
        EventGroup::Job => index(JobAction::KNOWN, JobAction::parse(action)),
        EventGroup::Session => index(SessionAction::KNOWN, SessionAction::parse(action)),
    };
    match known {
        Some(i) => {
            let table = KNOWN.get_or_init(|| EventGroup::ALL.iter().map(|&g| detail_types(g)).collect());
            table[EventGroup::ALL.iter().position(|&g| g == group).unwrap_or_default()][i].clone()
        }
        None => spelled(group, action),
    }
}

/// [`detail_type`], worked out.
fn spelled(group: EventGroup, action: &str) -> String {
    let words = match group {
        EventGroup::Product => ProductAction::parse(action).words(),
        EventGroup::Sample => SampleAction::parse(action).words(),
        EventGroup::User => UserAction::parse(action).words(),
        EventGroup::Task => TaskAction::parse(action).words(),
        EventGroup::WorkUnit => WorkUnitAction::parse(action).words(),
        EventGroup::Job => JobAction::parse(action).words(),
        EventGroup::Session => SessionAction::parse(action).words(),
    };
    format!("{} {words}", group.title())
}

/// Every known event of `group` in words ([`detail_type`]), in the order of its actions.
pub fn detail_types(group: EventGroup) -> Vec<String> {
    fn all<A>(known: &[A], name: impl Fn(&A) -> &str, group: EventGroup) -> Vec<String> {
        known.iter().map(|action| spelled(group, name(action))).collect()
    }
    match group {
        EventGroup::Product => all(ProductAction::KNOWN, ProductAction::name, group),
        EventGroup::Sample => all(SampleAction::KNOWN, SampleAction::name, group),
        EventGroup::User => all(UserAction::KNOWN, UserAction::name, group),
        EventGroup::Task => all(TaskAction::KNOWN, TaskAction::name, group),
        EventGroup::WorkUnit => all(WorkUnitAction::KNOWN, WorkUnitAction::name, group),
        EventGroup::Job => all(JobAction::KNOWN, JobAction::name, group),
        EventGroup::Session => all(SessionAction::KNOWN, SessionAction::name, group),
    }
}

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
