//! Creative Force events: the seven groups, the envelope, and typed models tolerant of
//! the drift between the reference and what is really sent.

pub(crate) mod action;
pub mod baseline;
mod decode;
pub mod drift;
mod group;
pub(crate) mod lenient;
mod models;
pub mod ordering;
pub mod routing;

pub use action::{JobAction, ProductAction, SampleAction, SessionAction, TaskAction, UserAction, WorkUnitAction};
pub use drift::Finding;
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
pub trait GroupEvent:
    DeserializeOwned + serde::Serialize + drift::Drifting + std::fmt::Debug + Send + Sync + 'static
{
    /// The group whose queue carries this event.
    const GROUP: EventGroup;

    /// Payload ID, group, time and actor.
    fn envelope(&self) -> &Envelope;

    /// The action's canonical name (or its raw text when unknown).
    fn action_name(&self) -> &str;

    /// Decodes a body of this group.
    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        // Through the one decoder `decode_with_drift` uses too: a second path would be a
        // second copy of the decoder in a bootstrap.
        let event = Self::decode_observed(body, &mut drift::Seen::default())
            .map_err(|source| DecodeError::Json { group: Self::GROUP, source })?;
        let found = event.envelope().event_group;
        if found != Self::GROUP {
            return Err(DecodeError::WrongGroup { expected: Self::GROUP, found });
        }
        Ok(event)
    }

    /// Decodes a body of this group, noting the JSON type of each documented field.
    #[doc(hidden)]
    fn decode_observed(body: &[u8], seen: &mut drift::Seen) -> serde_json::Result<Self>;

    /// Decodes a body of this group, with its drift from the baseline ([`drift`]): in
    /// the same pass, for a few dozen comparisons more.
    fn decode_with_drift(body: &[u8]) -> Result<(Self, Vec<Finding>), DecodeError> {
        let mut seen = drift::Seen::default();
        let event = Self::decode_observed(body, &mut seen)
            .map_err(|source| DecodeError::Json { group: Self::GROUP, source })?;
        let found = event.envelope().event_group;
        if found != Self::GROUP {
            return Err(DecodeError::WrongGroup { expected: Self::GROUP, found });
        }
        let findings = drift::check(&event, &seen);
        Ok((event, findings))
    }
}

macro_rules! group_event {
    ($($ty:ident => $group:ident, |$event:ident, $each:ident| $nested:block)+) => {$(
        impl GroupEvent for $ty {
            const GROUP: EventGroup = EventGroup::$group;
            fn envelope(&self) -> &Envelope {
                &self.envelope
            }
            fn action_name(&self) -> &str {
                self.action.name()
            }
            fn decode_observed(body: &[u8], seen: &mut drift::Seen) -> serde_json::Result<Self> {
                let mut de = serde_json::Deserializer::from_slice(body);
                let event = Self::decode_seen(&mut de, seen)?;
                de.end()?;
                Ok(event)
            }
        }

        impl drift::Drifting for $ty {
            const DRIFT_GROUP: EventGroup = EventGroup::$group;
            const FIELDS: &'static [&'static str] = $ty::FIELDS;
            fn action_known(&self) -> bool {
                self.action.is_known()
            }
            fn action_text(&self) -> &str {
                self.action.name()
            }
            fn top_extra(&self) -> &serde_json::Map<String, serde_json::Value> {
                &self.extra
            }
            fn nested_extra(&self, $each: &mut dyn FnMut(&'static str, &serde_json::Map<String, serde_json::Value>)) {
                let $event = self;
                if let Some(actor) = &$event.envelope.actor {
                    if !actor.extra.is_empty() {
                        $each("Actor", &actor.extra);
                    }
                }
                $nested
            }
        }
    )+};
}

group_event! {
    ProductEvent => Product, |_e, _each| {}
    SampleEvent => Sample, |e, each| {
        for product in e.products.iter().filter(|p| !p.extra.is_empty()) {
            each("Products[]", &product.extra);
        }
    }
    UserEvent => User, |_e, _each| {}
    TaskEvent => Task, |e, each| {
        if let Some(assignee) = e.assignee.as_ref().filter(|a| !a.extra.is_empty()) {
            each("Assignee", &assignee.extra);
        }
    }
    WorkUnitEvent => WorkUnit, |_e, _each| {}
    JobEvent => Job, |_e, _each| {}
    SessionEvent => Session, |e, each| {
        for slot in e.planned_time_slot.iter().filter(|s| !s.extra.is_empty()) {
            each("PlannedTimeSlot[]", &slot.extra);
        }
        if let Some(status) = e.planning_status.as_ref().filter(|s| !s.extra.is_empty()) {
            each("PlanningStatus", &status.extra);
        }
    }
}

#[cfg(test)]
mod tests;
