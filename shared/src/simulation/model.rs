//! What Creative Force sends in a run: events of one group about a few entities, each
//! moving one facet, bodies spelled as the sender spells them. A run's group is the task
//! group or the user group, whose bodies name the user `UserId` or `UserID` (Creative
//! Force's prose spells it so): the FIFO message group comes from the real routing, so a
//! routing that read one spelling only would put one user's events in two groups, and
//! the order invariant would see the older applied after the newer.

use std::sync::Arc;
use std::time::Duration;

use crate::events::ordering::facet;
use crate::events::{routing, EventGroup};
use crate::message::fifo_group;

use super::faults::{key_of, Fault};
use super::ledger::Sent;
use super::rng::Rng;
use super::{World, EPOCH_MS};

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

/// Creative Force: each event at its time; a 503 (`ingest-down`) is retried 5 to 10
/// minutes later, 3 times, then dropped (never accepted); some events are sent twice.
pub(super) async fn sender(
    world: Arc<World>,
    events: Vec<(String, String, String, String, i64)>,
    mut schedule: Vec<(i64, usize, u32)>,
) {
    while !schedule.is_empty() {
        schedule.sort_by_key(|(at, i, attempt)| (*at, *i, *attempt));
        let (at, i, attempt) = schedule.remove(0);
        tokio::time::sleep_until(
            tokio::time::Instant::now()
                + Duration::from_millis(u64::try_from(at - (world.now() - EPOCH_MS)).unwrap_or(0)),
        )
        .await;
        let (body, payload, entity, subject, version) = &events[i];
        if world.chance(Fault::IngestDown) {
            if attempt < 3 {
                let later = world.rng().between(300_000, 600_000) as i64;
                schedule.push((at + later, i, attempt + 1));
            }
            continue;
        }
        let key = key_of(payload, None);
        world.ledger().accepted.entry(key.clone()).or_insert(Sent { subject: subject.clone(), version: *version });
        world.bodies.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), (body.clone(), entity.clone()));
        world.send(body.clone(), key);
        if attempt < 3 && world.chance(Fault::SenderDuplicate) {
            let later = world.rng().between(0, 900_000) as i64;
            schedule.push((at + later, i, 3));
        }
    }
    world.sender_done.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Adds drift to a body: an undocumented field, or (`retyped`, on a task) a documented
/// text field sent as a number. What the consumer must report for it.
pub(super) fn plant_drift(body: &mut String, group: EventGroup, retyped: bool) -> Vec<crate::events::Finding> {
    use crate::events::baseline::JsonType;
    use crate::events::drift::JsonTypeName;
    use crate::events::Finding;
    if retyped && group == EventGroup::Task {
        *body = body.replace(r#""StepName":"Photography""#, r#""StepName":7"#);
        vec![Finding::RetypedField {
            field: "StepName".into(),
            documented: "string",
            sent: JsonTypeName(JsonType::Integer),
        }]
    } else {
        body.pop();
        body.push_str(r#","Planted":[1]}"#);
        vec![Finding::UndocumentedField { field: "Planted".into(), sent: JsonTypeName(JsonType::Array) }]
    }
}
