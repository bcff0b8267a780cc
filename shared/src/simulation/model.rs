//! What Creative Force sends in a run: events of one group about a few entities, each
//! moving one facet, bodies spelled as the sender spells them. A run's group is the task
//! group or the user group, whose bodies name the user `UserId` or `UserID` (Creative
//! Force's prose spells it so): the FIFO message group comes from the real routing, so a
//! routing that read one spelling only would put one user's events in two groups, and
//! the order invariant would see the older applied after the newer.

use crate::events::ordering::facet;
use crate::events::{routing, EventGroup};
use crate::message::fifo_group;

use super::rng::Rng;

/// The group a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// Task or user.
    pub group: EventGroup,
}

impl Model {
    /// The user group one run in three, the task group otherwise.
    pub fn pick(rng: &mut Rng) -> Self {
        Self { group: if rng.chance(33) { EventGroup::User } else { EventGroup::Task } }
    }

    /// Actions that move two facets between them (two share one).
    pub fn actions(self) -> &'static [&'static str] {
        match self.group {
            EventGroup::User => &["UserLoggedIn", "UserLoggedOut", "UserEnabled"],
            _ => &["Started", "Completed", "Assigned"],
        }
    }

    /// The `n`th entity's ID.
    pub fn entity(self, n: u64) -> String {
        match self.group {
            EventGroup::User => format!("u-{n}"),
            _ => format!("t-{n}"),
        }
    }

    /// The facet `action` moves.
    pub fn facet(self, action: &str) -> String {
        facet(self.group, action).into_owned()
    }

    /// An action that moves `facet`.
    pub fn action_of(self, facet: &str) -> &'static str {
        self.actions().iter().copied().find(|a| self.facet(a) == facet).unwrap_or(self.actions()[0])
    }

    /// A body, the entity's field spelled as `rng` picks (both spellings of a user).
    pub fn body(self, payload: &str, action: &str, version: i64, entity: &str, rng: &mut Rng) -> String {
        let (group, field, more) = match self.group {
            EventGroup::User => ("user", *rng.pick(&["UserId", "UserID"]), ""),
            // A text field `sender-drift` may send as a number.
            _ => ("task", "TaskId", r#","StepName":"Photography""#),
        };
        format!(
            r#"{{"PayloadId":"{payload}","EventGroupName":"{group}","Action":"{action}","EventDatetimeUtc":{version},"{field}":"{entity}"{more}}}"#
        )
    }
}

/// The FIFO message group ingest gives `body`: its entity as routing reads it, else its
/// `PayloadId`.
pub fn message_group(body: &str, payload: &str) -> String {
    routing::parse(body.as_bytes())
        .ok()
        .and_then(|found| found.entity_id.map(|id| fifo_group(&id)))
        .unwrap_or_else(|| payload.to_owned())
}
