//! Typed events of the seven groups, with every field the reference documents.
//!
//! Every documented field is optional (Creative Force leaves fields out and sends some
//! empty), integers and text accept each other's JSON form, "JSON literal" fields accept
//! JSON or a string holding JSON, and undocumented fields are kept in `extra`.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::action::{JobAction, ProductAction, SampleAction, SessionAction, TaskAction, UserAction, WorkUnitAction};
use super::decode::{decoder, ActorField, Int, Json, Products, Text, TimeSlots};
use super::group::EventGroup;

/// The fields every event carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Envelope {
    /// ID of the payload (GUID): the idempotency key.
    pub payload_id: String,
    /// The event group, however Creative Force spelled it.
    #[serde(rename = "EventGroupName")]
    pub event_group: EventGroup,
    /// When it happened: milliseconds since the Unix epoch, UTC.
    pub event_datetime_utc: i64,
    /// Who did it; absent or empty when a background service did.
    pub actor: Option<Actor>,
}

/// A user, identified by ID only (Creative Force never sends names).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Actor {
    /// ID of the user (GUID).
    pub user_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A product event (`EventGroupName`: `product`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: ProductAction,
    /// ID of the job (GUID).
    pub job_id: Option<String>,
    /// Job code.
    pub job_code: Option<String>,
    /// ID of the client (workspace, GUID).
    pub client_id: Option<String>,
    /// Client name.
    pub client_name: Option<String>,
    /// ID of the product (GUID).
    pub product_id: Option<String>,
    /// Product code.
    pub product_code: Option<String>,
    /// Product status ID.
    pub product_status_id: Option<i64>,
    /// Product status name.
    pub product_status_name: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A product as a sample lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProductRef {
    /// ID of the product (GUID).
    pub product_id: Option<String>,
    /// Product code.
    pub product_code: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A sample event (`EventGroupName`: `sample`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SampleEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: SampleAction,
    /// ID of the client (workspace) the sample comes from; sent as `ClientID` or `ClientId`.
    pub client_id: Option<String>,
    /// ID of the sample (GUID).
    pub sample_id: Option<String>,
    /// Sample code.
    pub sample_code: Option<String>,
    /// ID of the location (GUID).
    pub location_id: Option<String>,
    /// Location name.
    pub location_name: Option<String>,
    /// ID of the sub-location (GUID; all zeros when there is none).
    pub sub_location_id: Option<String>,
    /// Sub-location name.
    pub sub_location_name: Option<String>,
    /// The products of the sample; empty when there are none.
    pub products: Vec<ProductRef>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user event (`EventGroupName`: `user`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: UserAction,
    /// ID of the user the event is about (GUID).
    pub user_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A task event (`EventGroupName`: `task`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: TaskAction,
    /// ID of the task (GUID).
    pub task_id: Option<String>,
    /// Who the task is assigned to.
    pub assignee: Option<Actor>,
    /// ID of the job (GUID).
    pub job_id: Option<String>,
    /// Job code.
    pub job_code: Option<String>,
    /// ID of the client (workspace, GUID).
    pub client_id: Option<String>,
    /// Client name.
    pub client_name: Option<String>,
    /// ID of the product (GUID).
    pub product_id: Option<String>,
    /// Product code.
    pub product_code: Option<String>,
    /// ID of the production step (documented as an integer, sent as a string).
    pub step_id: Option<i64>,
    /// Production step name (`Photography`, `Post Review`, …).
    pub step_name: Option<String>,
    /// ID of the step status.
    pub step_status_id: Option<i64>,
    /// Step status name.
    pub step_status_name: Option<String>,
    /// ID of the shooting type (production type).
    pub shooting_type_id: Option<i64>,
    /// Shooting type name.
    pub shooting_type_name: Option<String>,
    /// ID of the style guide.
    pub style_guide_id: Option<String>,
    /// Style guide name.
    pub style_guide_name: Option<String>,
    /// ID of the workflow.
    pub workflow_id: Option<String>,
    /// Workflow name.
    pub workflow_name: Option<String>,
    /// ID of the work unit (GUID).
    pub work_unit_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A work unit (production) event (`EventGroupName`: `work unit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WorkUnitEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: WorkUnitAction,
    /// ID of the client (workspace, GUID).
    pub client_id: Option<String>,
    /// Client name.
    pub client_name: Option<String>,
    /// ID of the product (GUID).
    pub product_id: Option<String>,
    /// Product code.
    pub product_code: Option<String>,
    /// Production type ID.
    pub production_type_id: Option<i64>,
    /// Production type name.
    pub production_type_name: Option<String>,
    /// Work unit status ID after the change.
    pub work_unit_status_id: Option<i64>,
    /// Work unit status name after the change.
    pub work_unit_status_name: Option<String>,
    /// ID of the work unit (GUID).
    pub work_unit_id: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A job event (`EventGroupName`: `Job`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: JobAction,
    /// ID of the job (GUID).
    pub job_id: Option<String>,
    /// Job name.
    pub job_name: Option<String>,
    /// Job code.
    pub job_code: Option<String>,
    /// Job status ID.
    pub job_status_id: Option<i64>,
    /// Job status name.
    pub job_status_name: Option<String>,
    /// ID of the client (workspace, GUID).
    pub client_id: Option<String>,
    /// Client name.
    pub client_name: Option<String>,
    /// The job's deadline: milliseconds since the Unix epoch, UTC.
    pub job_deadline_utc: Option<i64>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One planned time slot of a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlannedTimeSlot {
    /// Planned start, as sent (local date-time text such as `2023-12-10T01:00:00`).
    pub planned_start: Option<String>,
    /// Planned end, as sent.
    pub planned_end: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The planning status of a session (`Planned` = 1, `Unplanned` = 2).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanningStatus {
    /// 1 = planned, 2 = unplanned.
    pub planning_status_id: Option<i64>,
    /// `Planned` or `Unplanned`.
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionEvent {
    /// Payload ID, group, time and actor.
    #[serde(flatten)]
    pub envelope: Envelope,
    /// What happened.
    pub action: SessionAction,
    /// ID of the product (GUID).
    pub product_id: Option<String>,
    /// Product code.
    pub product_code: Option<String>,
    /// ID of the shooting type (production type).
    pub shooting_type_id: Option<i64>,
    /// Shooting type name.
    pub shooting_type_name: Option<String>,
    /// ID of the work unit (GUID).
    pub work_unit_id: Option<String>,
    /// ID of the client (workspace) of the session, when it has one.
    pub client_id: Option<String>,
    /// ID of the session (GUID).
    pub session_id: Option<String>,
    /// Session code.
    pub session_code: Option<String>,
    /// Session name.
    pub session_name: Option<String>,
    /// When the session is planned (sent as JSON inside a string).
    pub planned_time_slot: Vec<PlannedTimeSlot>,
    /// Who takes part (sent as JSON inside a string).
    pub planned_team: Option<PlannedTeam>,
    /// ID of the planned producer (GUID).
    pub planned_producer_id: Option<String>,
    /// Planned producer name.
    pub planned_producer_name: Option<String>,
    /// ID of the planned set (GUID).
    pub planned_set_id: Option<String>,
    /// ID of the production item (GUID).
    pub production_item_id: Option<String>,
    /// Planning status (sent as JSON inside a string).
    pub planning_status: Option<PlanningStatus>,
    /// The application that triggered the event (`AddFromGateway`, …).
    pub action_source: Option<String>,
    /// Fields not in the reference.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// One pass over each body: `decode` says why not `#[serde(flatten)]`.

decoder!(object Actor, {
    user_id: Text => "UserId" | "UserID" | "userId",
});

decoder!(event ProductEvent, action: ProductAction, {
    job_id: Text => "JobId",
    job_code: Text => "JobCode",
    client_id: Text => "ClientId" | "ClientID",
    client_name: Text => "ClientName",
    product_id: Text => "ProductId",
    product_code: Text => "ProductCode",
    product_status_id: Int => "ProductStatusId",
    product_status_name: Text => "ProductStatusName",
});

decoder!(object ProductRef, {
    product_id: Text => "ProductId" | "productId",
    product_code: Text => "ProductCode" | "productCode",
});

decoder!(event SampleEvent, action: SampleAction, {
    client_id: Text => "ClientId" | "ClientID",
    sample_id: Text => "SampleId",
    sample_code: Text => "SampleCode",
    location_id: Text => "LocationId",
    location_name: Text => "LocationName",
    sub_location_id: Text => "SubLocationId",
    sub_location_name: Text => "SubLocationName",
    products: Products => "Products" | "products",
});

decoder!(event UserEvent, action: UserAction, {
    user_id: Text => "UserId" | "UserID",
});

decoder!(event TaskEvent, action: TaskAction, {
    task_id: Text => "TaskId",
    assignee: ActorField => "Assignee",
    job_id: Text => "JobId",
    job_code: Text => "JobCode",
    client_id: Text => "ClientId" | "ClientID",
    client_name: Text => "ClientName",
    product_id: Text => "ProductId",
    product_code: Text => "ProductCode",
    step_id: Int => "StepId",
    step_name: Text => "StepName",
    step_status_id: Int => "StepStatusId",
    step_status_name: Text => "StepStatusName",
    shooting_type_id: Int => "ShootingTypeId",
    shooting_type_name: Text => "ShootingTypeName",
    style_guide_id: Text => "StyleGuideId",
    style_guide_name: Text => "StyleGuideName",
    workflow_id: Text => "WorkflowId",
    workflow_name: Text => "WorkflowName",
    work_unit_id: Text => "WorkUnitId",
});

decoder!(event WorkUnitEvent, action: WorkUnitAction, {
    client_id: Text => "ClientId" | "ClientID",
    client_name: Text => "ClientName",
    product_id: Text => "ProductId",
    product_code: Text => "ProductCode",
    production_type_id: Int => "ProductionTypeId",
    production_type_name: Text => "ProductionTypeName",
    work_unit_status_id: Int => "WorkUnitStatusId",
    work_unit_status_name: Text => "WorkUnitStatusName",
    work_unit_id: Text => "WorkUnitId",
});

decoder!(event JobEvent, action: JobAction, {
    job_id: Text => "JobId",
    job_name: Text => "JobName",
    job_code: Text => "JobCode",
    job_status_id: Int => "JobStatusId",
    job_status_name: Text => "JobStatusName",
    client_id: Text => "ClientId" | "ClientID",
    client_name: Text => "ClientName",
    job_deadline_utc: Int => "JobDeadlineUtc",
});

decoder!(object PlannedTimeSlot, {
    planned_start: Text => "PlannedStart",
    planned_end: Text => "PlannedEnd",
});

decoder!(object PlanningStatus, {
    planning_status_id: Int => "PlanningStatusId",
    planning_status: Text => "PlanningStatus",
});

decoder!(event SessionEvent, action: SessionAction, {
    product_id: Text => "ProductId",
    product_code: Text => "ProductCode",
    shooting_type_id: Int => "ShootingTypeId",
    shooting_type_name: Text => "ShootingTypeName",
    work_unit_id: Text => "WorkUnitId",
    client_id: Text => "ClientId" | "ClientID",
    session_id: Text => "SessionId",
    session_code: Text => "SessionCode",
    session_name: Text => "SessionName",
    planned_time_slot: TimeSlots => "PlannedTimeSlot",
    planned_team: Json::<PlannedTeam>(PhantomData) => "PlannedTeam",
    planned_producer_id: Text => "PlannedProducerId",
    planned_producer_name: Text => "PlannedProducerName",
    planned_set_id: Text => "PlannedSetId",
    production_item_id: Text => "ProductionItemId",
    planning_status: Json::<PlanningStatus>(PhantomData) => "PlanningStatus",
    action_source: Text => "ActionSource",
});
