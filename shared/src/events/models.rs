//! Typed events of the seven groups, with every field the reference documents.
//!
//! Every documented field is optional (Creative Force leaves fields out and sends some
//! empty), integers and text accept each other's JSON form, "JSON literal" fields accept
//! JSON or a string holding JSON, and undocumented fields are kept in `extra`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::action::{JobAction, ProductAction, SampleAction, SessionAction, TaskAction, UserAction, WorkUnitAction};
use super::group::EventGroup;
use super::lenient;

/// The fields every event carries.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    /// ID of the payload (GUID): the idempotency key.
    #[serde(deserialize_with = "lenient::required_text")]
    pub payload_id: String,
    /// The event group, however Creative Force spelled it.
    #[serde(rename = "EventGroupName")]
    pub event_group: EventGroup,
    /// When it happened: milliseconds since the Unix epoch, UTC.
    #[serde(deserialize_with = "lenient::required_int")]
    pub event_datetime_utc: i64,
    /// Who did it; absent or empty when a background service did.
    #[serde(default, deserialize_with = "actor")]
    pub actor: Option<Actor>,
}

/// A user, identified by ID only (Creative Force never sends names).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Actor {
    /// ID of the user (GUID).
    #[serde(default, alias = "UserID", alias = "userId", deserialize_with = "lenient::text")]
    pub user_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ActorForm {
    Object(Actor),
    Id(String),
}

/// `Actor` or `Assignee`: an object, a bare user ID, or empty (`{}`, `""`, `null`) → `None`.
fn actor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Actor>, D::Error> {
    Ok(match Option::<ActorForm>::deserialize(d)? {
        Some(ActorForm::Object(actor)) if actor.user_id.is_some() || !actor.extra.is_empty() => Some(actor),
        Some(ActorForm::Id(id)) if !id.trim().is_empty() => Some(Actor { user_id: Some(id), extra: Map::new() }),
        _ => None,
    })
}

/// A product event (`EventGroupName`: `product`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: ProductAction,
    /// ID of the job (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_id: Option<String>,
    /// Job code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_code: Option<String>,
    /// ID of the client (workspace, GUID).
    #[serde(default, alias = "ClientID", deserialize_with = "lenient::text")]
    pub client_id: Option<String>,
    /// Client name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub client_name: Option<String>,
    /// ID of the product (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_id: Option<String>,
    /// Product code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_code: Option<String>,
    /// Product status ID.
    #[serde(default, deserialize_with = "lenient::int")]
    pub product_status_id: Option<i64>,
    /// Product status name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_status_name: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A product as a sample lists it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductRef {
    /// ID of the product (GUID).
    #[serde(default, alias = "productId", deserialize_with = "lenient::text")]
    pub product_id: Option<String>,
    /// Product code.
    #[serde(default, alias = "productCode", deserialize_with = "lenient::text")]
    pub product_code: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A sample event (`EventGroupName`: `sample`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SampleEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: SampleAction,
    /// ID of the client (workspace) the sample comes from; sent as `ClientID` or `ClientId`.
    #[serde(default, alias = "ClientID", deserialize_with = "lenient::text")]
    pub client_id: Option<String>,
    /// ID of the sample (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub sample_id: Option<String>,
    /// Sample code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub sample_code: Option<String>,
    /// ID of the location (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub location_id: Option<String>,
    /// Location name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub location_name: Option<String>,
    /// ID of the sub-location (GUID; all zeros when there is none).
    #[serde(default, deserialize_with = "lenient::text")]
    pub sub_location_id: Option<String>,
    /// Sub-location name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub sub_location_name: Option<String>,
    /// The products of the sample; empty when there are none.
    #[serde(default, alias = "products", deserialize_with = "list")]
    pub products: Vec<ProductRef>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ProductRef>, D::Error> {
    lenient::json(d).map(Option::unwrap_or_default)
}

/// A user event (`EventGroupName`: `user`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: UserAction,
    /// ID of the user the event is about (GUID).
    #[serde(default, alias = "UserID", deserialize_with = "lenient::text")]
    pub user_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A task event (`EventGroupName`: `task`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: TaskAction,
    /// ID of the task (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub task_id: Option<String>,
    /// Who the task is assigned to.
    #[serde(default, deserialize_with = "actor")]
    pub assignee: Option<Actor>,
    /// ID of the job (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_id: Option<String>,
    /// Job code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_code: Option<String>,
    /// ID of the client (workspace, GUID).
    #[serde(default, alias = "ClientID", deserialize_with = "lenient::text")]
    pub client_id: Option<String>,
    /// Client name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub client_name: Option<String>,
    /// ID of the product (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_id: Option<String>,
    /// Product code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_code: Option<String>,
    /// ID of the production step (documented as an integer, sent as a string).
    #[serde(default, deserialize_with = "lenient::int")]
    pub step_id: Option<i64>,
    /// Production step name (`Photography`, `Post Review`, …).
    #[serde(default, deserialize_with = "lenient::text")]
    pub step_name: Option<String>,
    /// ID of the step status.
    #[serde(default, deserialize_with = "lenient::int")]
    pub step_status_id: Option<i64>,
    /// Step status name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub step_status_name: Option<String>,
    /// ID of the shooting type (production type).
    #[serde(default, deserialize_with = "lenient::int")]
    pub shooting_type_id: Option<i64>,
    /// Shooting type name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub shooting_type_name: Option<String>,
    /// ID of the style guide.
    #[serde(default, deserialize_with = "lenient::text")]
    pub style_guide_id: Option<String>,
    /// Style guide name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub style_guide_name: Option<String>,
    /// ID of the workflow.
    #[serde(default, deserialize_with = "lenient::text")]
    pub workflow_id: Option<String>,
    /// Workflow name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub workflow_name: Option<String>,
    /// ID of the work unit (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub work_unit_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A work unit (production) event (`EventGroupName`: `work unit`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkUnitEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: WorkUnitAction,
    /// ID of the client (workspace, GUID).
    #[serde(default, alias = "ClientID", deserialize_with = "lenient::text")]
    pub client_id: Option<String>,
    /// Client name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub client_name: Option<String>,
    /// ID of the product (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_id: Option<String>,
    /// Product code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_code: Option<String>,
    /// Production type ID.
    #[serde(default, deserialize_with = "lenient::int")]
    pub production_type_id: Option<i64>,
    /// Production type name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub production_type_name: Option<String>,
    /// Work unit status ID after the change.
    #[serde(default, deserialize_with = "lenient::int")]
    pub work_unit_status_id: Option<i64>,
    /// Work unit status name after the change.
    #[serde(default, deserialize_with = "lenient::text")]
    pub work_unit_status_name: Option<String>,
    /// ID of the work unit (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub work_unit_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A job event (`EventGroupName`: `Job`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: JobAction,
    /// ID of the job (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_id: Option<String>,
    /// Job name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_name: Option<String>,
    /// Job code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_code: Option<String>,
    /// Job status ID.
    #[serde(default, deserialize_with = "lenient::int")]
    pub job_status_id: Option<i64>,
    /// Job status name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub job_status_name: Option<String>,
    /// ID of the client (workspace, GUID).
    #[serde(default, alias = "ClientID", deserialize_with = "lenient::text")]
    pub client_id: Option<String>,
    /// Client name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub client_name: Option<String>,
    /// The job's deadline: milliseconds since the Unix epoch, UTC.
    #[serde(default, deserialize_with = "lenient::int")]
    pub job_deadline_utc: Option<i64>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One planned time slot of a session.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlannedTimeSlot {
    /// Planned start, as sent (local date-time text such as `2023-12-10T01:00:00`).
    #[serde(default, deserialize_with = "lenient::text")]
    pub planned_start: Option<String>,
    /// Planned end, as sent.
    #[serde(default, deserialize_with = "lenient::text")]
    pub planned_end: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The planning status of a session (`Planned` = 1, `Unplanned` = 2).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanningStatus {
    /// 1 = planned, 2 = unplanned.
    #[serde(default, deserialize_with = "lenient::int")]
    pub planning_status_id: Option<i64>,
    /// `Planned` or `Unplanned`.
    #[serde(default, deserialize_with = "lenient::text")]
    pub planning_status: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Who takes part in a session: role (`Photographer`, `Assistant`, …) → people.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct PlannedTeam(pub Map<String, Value>);

impl PlannedTeam {
    /// The people of a role: a comma-separated text in the payload, split and trimmed.
    pub fn members(&self, role: &str) -> Vec<&str> {
        match self.0.get(role) {
            Some(Value::String(list)) => list.split(',').map(str::trim).filter(|m| !m.is_empty()).collect(),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The roles present.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// A session event (`EventGroupName`: `session`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: SessionAction,
    /// ID of the product (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_id: Option<String>,
    /// Product code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub product_code: Option<String>,
    /// ID of the shooting type (production type).
    #[serde(default, deserialize_with = "lenient::int")]
    pub shooting_type_id: Option<i64>,
    /// Shooting type name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub shooting_type_name: Option<String>,
    /// ID of the work unit (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub work_unit_id: Option<String>,
    /// ID of the client (workspace) of the session, when it has one.
    #[serde(default, alias = "ClientID", deserialize_with = "lenient::text")]
    pub client_id: Option<String>,
    /// ID of the session (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub session_id: Option<String>,
    /// Session code.
    #[serde(default, deserialize_with = "lenient::text")]
    pub session_code: Option<String>,
    /// Session name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub session_name: Option<String>,
    /// When the session is planned (sent as JSON inside a string).
    #[serde(default, deserialize_with = "time_slots")]
    pub planned_time_slot: Vec<PlannedTimeSlot>,
    /// Who takes part (sent as JSON inside a string).
    #[serde(default, deserialize_with = "lenient::json")]
    pub planned_team: Option<PlannedTeam>,
    /// ID of the planned producer (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub planned_producer_id: Option<String>,
    /// Planned producer name.
    #[serde(default, deserialize_with = "lenient::text")]
    pub planned_producer_name: Option<String>,
    /// ID of the planned set (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub planned_set_id: Option<String>,
    /// ID of the production item (GUID).
    #[serde(default, deserialize_with = "lenient::text")]
    pub production_item_id: Option<String>,
    /// Planning status (sent as JSON inside a string).
    #[serde(default, deserialize_with = "lenient::json")]
    pub planning_status: Option<PlanningStatus>,
    /// The application that triggered the event (`AddFromGateway`, …).
    #[serde(default, deserialize_with = "lenient::text")]
    pub action_source: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn time_slots<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PlannedTimeSlot>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Slots {
        Many(Vec<PlannedTimeSlot>),
        One(PlannedTimeSlot),
    }
    Ok(match lenient::json::<D, Slots>(d)? {
        Some(Slots::Many(slots)) => slots,
        Some(Slots::One(slot)) => vec![slot],
        None => Vec::new(),
    })
}
