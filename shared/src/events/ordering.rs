//! Per-entity order, groundwork: which entity an event is about, and which *facet* of it
//! the event moves. A late event is stale only against a newer event of the same facet
//! of the same entity: by default the facet is the action itself (a late "category
//! changed" still applies after a newer "style guide changed"), and the actions that move
//! one state machine share a facet, declared here once per group (a task's created,
//! started, completed, rejected … are one progress). The version of an event is its
//! `EventDatetimeUtc`.

use std::borrow::Cow;

use super::{
    EventGroup, GroupEvent, JobAction, JobEvent, ProductAction, ProductEvent, SampleAction, SampleEvent, SessionAction,
    SessionEvent, TaskAction, TaskEvent, UserAction, UserEvent, WorkUnitAction, WorkUnitEvent,
};

/// One facet of one entity: what an event is compared against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// The entity: its ID, or, where the group has none, what identifies it.
    pub entity: String,
    /// The facet of it the event moves.
    pub facet: Cow<'static, str>,
}

/// The entity an event is about, from the signed body; `None` when the body does not say
/// (such an event is not guarded).
pub trait Entity: GroupEvent {
    /// The entity's identity.
    fn entity(&self) -> Option<String>;

    /// The entity and the facet this event moves.
    fn subject(&self) -> Option<Subject> {
        Some(Subject { entity: self.entity()?, facet: facet(Self::GROUP, self.action_name()) })
    }
}

fn present(id: &Option<String>) -> Option<String> {
    id.as_deref().map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned)
}

impl Entity for ProductEvent {
    fn entity(&self) -> Option<String> {
        present(&self.product_id)
    }
}

impl Entity for SampleEvent {
    fn entity(&self) -> Option<String> {
        present(&self.sample_id)
    }
}

impl Entity for UserEvent {
    fn entity(&self) -> Option<String> {
        present(&self.user_id)
    }
}

impl Entity for TaskEvent {
    fn entity(&self) -> Option<String> {
        present(&self.task_id)
    }
}

/// `WorkUnitId` when sent; Creative Force's own example has none, and identifies the work
/// unit by its product and production type: `<ProductId>/<ProductionTypeId>`.
impl Entity for WorkUnitEvent {
    fn entity(&self) -> Option<String> {
        present(&self.work_unit_id)
            .or_else(|| Some(format!("{}/{}", present(&self.product_id)?, self.production_type_id?)))
    }
}

impl Entity for JobEvent {
    fn entity(&self) -> Option<String> {
        present(&self.job_id)
    }
}

/// A session's membership of one work unit: `<SessionId>/<WorkUnitId>`, so adding one
/// work unit never makes the removal of another stale.
impl Entity for SessionEvent {
    fn entity(&self) -> Option<String> {
        Some(format!("{}/{}", present(&self.session_id)?, present(&self.work_unit_id)?))
    }
}

/// The facets actions share, per group: (facet, the actions that move it). Every other
/// action is a facet of its own.
pub fn shared_facets(group: EventGroup) -> Vec<(&'static str, Vec<&'static str>)> {
    fn table<A: Facets>() -> Vec<(&'static str, Vec<&'static str>)> {
        A::FACETS.iter().map(|(facet, actions)| (*facet, actions.iter().map(|a| a.name()).collect())).collect()
    }
    by_group!(group, table())
}

/// The facet `action` (as sent) moves in `group`: a shared facet, or the action's own
/// canonical name (an action this version does not know: as sent).
pub fn facet(group: EventGroup, action: &str) -> Cow<'static, str> {
    fn of<A: Facets>(action: &str) -> Cow<'static, str> {
        let action = A::parse(action);
        A::FACETS
            .iter()
            .find(|(_, actions)| actions.contains(&action))
            .map_or_else(|| Cow::Owned(action.name().to_owned()), |(facet, _)| Cow::Borrowed(*facet))
    }
    by_group!(group, of(action))
}

/// `f::<the group's action type>(args)`.
macro_rules! by_group {
    ($group:expr, $f:ident($($arg:expr),*)) => {
        match $group {
            EventGroup::Product => $f::<ProductAction>($($arg),*),
            EventGroup::Sample => $f::<SampleAction>($($arg),*),
            EventGroup::User => $f::<UserAction>($($arg),*),
            EventGroup::Task => $f::<TaskAction>($($arg),*),
            EventGroup::WorkUnit => $f::<WorkUnitAction>($($arg),*),
            EventGroup::Job => $f::<JobAction>($($arg),*),
            EventGroup::Session => $f::<SessionAction>($($arg),*),
        }
    };
}
use by_group;

/// A group's action type and the facets its actions share.
trait Facets: PartialEq + Sized + 'static {
    const FACETS: &'static [(&'static str, &'static [Self])];
    fn parse(raw: &str) -> Self;
    fn name(&self) -> &str;
}

macro_rules! facets {
    ($($ty:ty => $facets:ident),+ $(,)?) => {$(
        impl Facets for $ty {
            const FACETS: &'static [(&'static str, &'static [Self])] = $facets;
            fn parse(raw: &str) -> Self {
                <$ty>::parse(raw)
            }
            fn name(&self) -> &str {
                <$ty>::name(self)
            }
        }
    )+};
}

facets!(
    ProductAction => PRODUCT,
    SampleAction => SAMPLE,
    UserAction => USER,
    TaskAction => TASK,
    WorkUnitAction => WORK_UNIT,
    JobAction => JOB,
    SessionAction => SESSION,
);

use ProductAction as P;
const PRODUCT: &[(&str, &[ProductAction])] = &[
    (
        "status",
        &[
            P::Reset,
            P::StatusChanged,
            P::StatusChangedViaKelvin,
            P::Completed,
            P::Activated,
            P::ActivatedViaKelvin,
            P::Deactivated,
            P::Ignored,
            P::IgnoredViaKelvin,
            P::Deleted,
            P::DeletedViaKelvin,
        ],
    ),
    ("style-guide", &[P::StyleGuideChanged, P::StyleGuideChangedViaKelvin]),
    ("category", &[P::CategoryChanged, P::CategoryChangedViaKelvin]),
    ("properties", &[P::PropertiesUpdated, P::PropertiesUpdatedViaKelvin]),
    (
        "copywriting",
        &[P::TriggeredCopywriting, P::DeliveredCopywriting, P::DeliveryCopywritingFailed, P::IgnoreDeliverCopywriting],
    ),
];

use SampleAction as S;
const SAMPLE: &[(&str, &[SampleAction])] =
    &[("check-in", &[S::CheckedIn, S::CheckedOut]), ("container", &[S::AddedToContainer, S::ReleasedFromContainer])];

use UserAction as U;
const USER: &[(&str, &[UserAction])] = &[
    ("sign-in", &[U::UserLoggedIn, U::UserLoggedOut]),
    ("account", &[U::UserEnabled, U::UserDisabled, U::UserDeleted]),
    ("invitation", &[U::UserInvited, U::UserReInvited, U::UserInvitationCompleted, U::UserInvitationDeleted]),
];

use TaskAction as T;
const TASK: &[(&str, &[TaskAction])] = &[
    (
        "progress",
        &[
            T::Created,
            T::ReadyToWork,
            T::Started,
            T::WaitingForColorReference,
            T::ProcessWithoutColorReference,
            T::Completed,
            T::Bypassed,
            T::Approved,
            T::Rejected,
            T::TaskSoftRejected,
            T::Failed,
            T::Reset,
        ],
    ),
    ("assignee", &[T::Assigned, T::Unassigned]),
];

use WorkUnitAction as W;
const WORK_UNIT: &[(&str, &[WorkUnitAction])] = &[
    (
        "status",
        &[W::WorkUnitCreated, W::WorkUnitStatusChanged, W::WorkUnitReset, W::WorkUnitCompleted, W::WorkUnitDeleted],
    ),
    ("enabled", &[W::WorkUnitEnabled, W::WorkUnitDisabled]),
];

use JobAction as J;
const JOB: &[(&str, &[JobAction])] = &[("status", &[J::Created, J::StatusChanged, J::Deleted])];

use SessionAction as Se;
const SESSION: &[(&str, &[SessionAction])] = &[("membership", &[Se::AddedToSession, Se::RemovedFromSession])];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_of_one_state_machine_share_a_facet_and_the_rest_are_their_own() {
        assert_eq!(facet(EventGroup::Task, "completed"), "progress");
        assert_eq!(facet(EventGroup::Task, "Started"), "progress");
        assert_eq!(facet(EventGroup::Task, "Assigned"), "assignee");
        assert_eq!(facet(EventGroup::Task, "CopywritingTaskEditMade"), "CopywritingTaskEditMade");
        assert_eq!(facet(EventGroup::Product, "ProductCategoryChanged"), "category");
        assert_eq!(facet(EventGroup::Product, "ProductStyleGuideChanged"), "style-guide");
        assert_ne!(facet(EventGroup::Product, "CategoryChanged"), facet(EventGroup::Product, "StyleGuideChanged"));
        assert_eq!(facet(EventGroup::Sample, "Checked-in"), facet(EventGroup::Sample, "CheckedOut"));
        assert_eq!(facet(EventGroup::Job, "DeadlineUpdated"), "DeadlineUpdated");
        assert_eq!(facet(EventGroup::Task, "Teleported"), "Teleported", "an unknown action is its own facet");
    }

    #[test]
    fn every_shared_action_is_named_and_in_one_facet_only() {
        for group in EventGroup::ALL {
            let mut seen = std::collections::HashSet::new();
            for (facet_name, actions) in shared_facets(group) {
                assert!(!actions.is_empty(), "{group} {facet_name}");
                for action in actions {
                    assert!(!action.is_empty(), "{group}: an action of {facet_name} has no name");
                    assert!(seen.insert(action), "{group}: {action} is in two facets");
                    assert_eq!(facet(group, action), facet_name, "{group} {action}");
                }
            }
        }
    }

    #[test]
    fn entities_come_from_the_body_and_work_units_fall_back_to_product_and_type() {
        let work_unit: WorkUnitEvent = serde_json::from_str(include_str!("../../../events/work-unit.json")).unwrap();
        assert_eq!(work_unit.entity().as_deref(), Some("7a782d57-b0bf-4743-8f02-2b1a1e229869/1"));
        let subject = work_unit.subject().unwrap();
        assert_eq!(subject.facet, "status");
        let task: TaskEvent = serde_json::from_str(include_str!("../../../events/task.json")).unwrap();
        assert_eq!(task.entity().as_deref(), Some("c02f0f73-4665-4aae-aac1-c2fbc65365de"));
        let session: SessionEvent = serde_json::from_str(include_str!("../../../events/session.json")).unwrap();
        let entity = session.entity().unwrap();
        assert!(entity.ends_with("/1e6b01e0-671e-462c-b266-692d6a16eb92"), "the session and its work unit: {entity}");
        let mut nameless: TaskEvent = task.clone();
        nameless.task_id = Some("  ".into());
        assert_eq!(nameless.subject(), None, "no entity, not guarded");
    }
}
