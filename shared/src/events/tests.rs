//! The typed models against the samples in `events/` and the drift the reference shows.

use super::*;

const PRODUCT: &str = include_str!("../../../events/product.json");
const SAMPLE: &str = include_str!("../../../events/sample.json");
const USER: &str = include_str!("../../../events/user.json");
const TASK: &str = include_str!("../../../events/task.json");
const WORK_UNIT: &str = include_str!("../../../events/work-unit.json");
const JOB: &str = include_str!("../../../events/job.json");
const SESSION: &str = include_str!("../../../events/session.json");

#[test]
fn product_sample() {
    let e = ProductEvent::decode(PRODUCT.as_bytes()).unwrap();
    assert_eq!(e.envelope.payload_id, "c02f0f73-1706-4973-9a4d-38007d6685e9");
    assert_eq!(e.envelope.event_group, EventGroup::Product);
    assert_eq!(e.envelope.event_datetime_utc, 1595204418000);
    assert_eq!(e.envelope.actor.as_ref().unwrap().user_id.as_deref(), Some("19e62847-f302-4e32-9e4a-b6d8c304fcbe"));
    assert_eq!(e.action, ProductAction::Reset);
    assert_eq!(e.job_code.as_deref(), Some("Summer 2020"));
    assert_eq!(e.client_name.as_deref(), Some("My Big client"));
    assert_eq!(e.product_code.as_deref(), Some("AW2130146"));
    assert_eq!(e.product_status_id, None);
    assert!(e.extra.is_empty(), "{:?}", e.extra);
}

#[test]
fn sample_sample() {
    let e = SampleEvent::decode(SAMPLE.as_bytes()).unwrap();
    assert_eq!(e.action, SampleAction::CheckedIn);
    assert_eq!(e.client_id.as_deref(), Some("719bee19-f630-455a-8f00-2f1331fd4a98"));
    assert_eq!(e.sample_code.as_deref(), Some("88829384"));
    assert_eq!(e.location_name.as_deref(), Some("CF Center"));
    assert_eq!(e.sub_location_name.as_deref(), Some(""));
    assert_eq!(e.products.len(), 1);
    assert_eq!(e.products[0].product_code.as_deref(), Some("ADROAN-830"));
    assert!(e.extra.is_empty(), "{:?}", e.extra);
}

#[test]
fn user_sample() {
    let e = UserEvent::decode(USER.as_bytes()).unwrap();
    assert_eq!(e.action, UserAction::UserLoggedIn);
    assert_eq!(e.user_id.as_deref(), Some("19e62847-f302-4e32-9e4a-b6d8c304fcbe"));
}

#[test]
fn task_sample_with_integers_sent_as_strings() {
    let e = TaskEvent::decode(TASK.as_bytes()).unwrap();
    assert_eq!(e.action, TaskAction::Completed);
    assert_eq!(e.step_id, Some(3));
    assert_eq!(e.step_name.as_deref(), Some("Photography"));
    assert_eq!(e.step_status_id, Some(9000));
    assert_eq!(e.step_status_name.as_deref(), Some("Done"));
    assert_eq!(e.shooting_type_id, Some(1));
    assert_eq!(e.shooting_type_name.as_deref(), Some("On Model"));
    assert_eq!(e.style_guide_name.as_deref(), Some("Summer on the beach 2020"));
    assert_eq!(e.workflow_name.as_deref(), Some("My first workflow"));
    assert_eq!(e.assignee.unwrap().user_id.as_deref(), Some("19e62847-f302-4e32-9e4a-b6d8c304fcbe"));
    assert_eq!(e.work_unit_id, None);
    assert!(e.extra.is_empty(), "{:?}", e.extra);
}

#[test]
fn work_unit_sample() {
    let e = WorkUnitEvent::decode(WORK_UNIT.as_bytes()).unwrap();
    assert_eq!(e.envelope.event_group, EventGroup::WorkUnit);
    assert_eq!(e.action, WorkUnitAction::WorkUnitStatusChanged);
    assert_eq!(e.production_type_id, Some(1));
    assert_eq!(e.production_type_name.as_deref(), Some("OnModel"));
    assert_eq!(e.work_unit_status_id, Some(3000));
    assert_eq!(e.work_unit_status_name.as_deref(), Some("InProgress"));
}

#[test]
fn job_sample() {
    let e = JobEvent::decode(JOB.as_bytes()).unwrap();
    assert_eq!(e.envelope.event_group, EventGroup::Job);
    assert_eq!(e.action, JobAction::Deleted);
    assert_eq!(e.job_name.as_deref(), Some("Summer 2020"));
    assert_eq!(e.job_status_id, Some(3000));
    assert_eq!(e.job_status_name.as_deref(), Some("In Progress"));
    assert_eq!(e.job_deadline_utc, Some(1595204529000));
}

#[test]
fn session_sample_with_json_inside_strings() {
    let e = SessionEvent::decode(SESSION.as_bytes()).unwrap();
    assert_eq!(e.action, SessionAction::AddedToSession);
    assert_eq!(e.action_source.as_deref(), Some("AddFromGateway"));
    assert_eq!(e.session_code.as_deref(), Some("SES113736CF"));
    assert_eq!(e.planned_time_slot.len(), 1);
    assert_eq!(e.planned_time_slot[0].planned_start.as_deref(), Some("2023-12-10T01:00:00"));
    assert_eq!(e.planned_time_slot[0].planned_end.as_deref(), Some("2023-12-10T10:00:00"));
    let team = e.planned_team.unwrap();
    assert_eq!(team.members("Assistant"), ["phuonglth+dev@creativeforce.io", "dungnt+sing@creativeforce.io"]);
    assert_eq!(team.members("Photographer"), ["hanh@creativeforce.io"]);
    let status = e.planning_status.unwrap();
    assert_eq!(status.planning_status_id, Some(2));
    assert_eq!(status.planning_status.as_deref(), Some("Unplanned"));
    assert_eq!(e.shooting_type_id, Some(1));
    assert_eq!(e.production_item_id.as_deref(), Some("1e6b01e0-671e-462c-b266-692d6a16eb92"));
}

#[test]
fn session_fields_also_accepted_as_plain_json() {
    let body = r#"{"PayloadId":"p","EventGroupName":"session","Action":"RemovedFromSession","EventDatetimeUtc":1,
        "PlannedTimeSlot":{"PlannedStart":"a","PlannedEnd":"b"},
        "PlannedTeam":{"Photographer":["x@y"]},
        "PlanningStatus":{"PlanningStatusId":"1","PlanningStatus":"Planned"}}"#;
    let e = SessionEvent::decode(body.as_bytes()).unwrap();
    assert_eq!(e.planned_time_slot[0].planned_end.as_deref(), Some("b"));
    assert_eq!(e.planned_team.unwrap().members("Photographer"), ["x@y"]);
    assert_eq!(e.planning_status.unwrap().planning_status_id, Some(1));
}

#[test]
fn empty_actor_client_id_spellings_and_unknown_fields() {
    for actor in [r#""Actor":{}"#, r#""Actor":null"#, r#""Actor":"""#, r#""Other":1"#] {
        let body = format!(
            r#"{{"PayloadId":"p","EventGroupName":"sample","Action":"Checked-out","EventDatetimeUtc":1,{actor},"ClientID":"c","NewField":{{"a":[1]}}}}"#
        );
        let e = SampleEvent::decode(body.as_bytes()).unwrap();
        assert_eq!(e.envelope.actor, None, "{actor}");
        assert_eq!(e.client_id.as_deref(), Some("c"));
        assert_eq!(e.extra["NewField"], serde_json::json!({"a": [1]}));
        assert_eq!(e.products, Vec::new());
    }
}

#[test]
fn numbers_as_text_and_text_as_numbers() {
    let body = r#"{"PayloadId":"p","EventGroupName":"Job","Action":"created","EventDatetimeUtc":"1595204418000",
        "JobCode":2020,"JobStatusId":" 3000 ","JobDeadlineUtc":null,"ClientName":""}"#;
    let e = JobEvent::decode(body.as_bytes()).unwrap();
    assert_eq!(e.envelope.event_datetime_utc, 1595204418000);
    assert_eq!(e.job_code.as_deref(), Some("2020"));
    assert_eq!(e.job_status_id, Some(3000));
    assert_eq!(e.job_deadline_utc, None);
    assert_eq!(e.action, JobAction::Created);
}

#[test]
fn wrong_group_and_bad_types_are_decode_errors() {
    assert!(matches!(
        TaskEvent::decode(PRODUCT.as_bytes()),
        Err(DecodeError::WrongGroup { expected: EventGroup::Task, found: EventGroup::Product })
    ));
    let bad = r#"{"PayloadId":"p","EventGroupName":"task","Action":"x","EventDatetimeUtc":1,"StepId":"three"}"#;
    let err = TaskEvent::decode(bad.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("three"), "{err}");
    assert!(TaskEvent::decode(b"[]").is_err());
}

#[test]
fn every_sample_routes_to_its_group() {
    for (body, group) in [
        (PRODUCT, EventGroup::Product),
        (SAMPLE, EventGroup::Sample),
        (USER, EventGroup::User),
        (TASK, EventGroup::Task),
        (WORK_UNIT, EventGroup::WorkUnit),
        (JOB, EventGroup::Job),
        (SESSION, EventGroup::Session),
    ] {
        assert_eq!(routing::parse(body.as_bytes()).unwrap().group, group);
    }
}

#[test]
fn four_literal_reference_examples_are_not_json() {
    let literal = [
        ("product", include_str!("../../../events/reference/product.txt"), true),
        ("sample", include_str!("../../../events/reference/sample.txt"), false),
        ("user", include_str!("../../../events/reference/user.txt"), false),
        ("task", include_str!("../../../events/reference/task.txt"), true),
        ("work-unit", include_str!("../../../events/reference/work-unit.txt"), false),
        ("job", include_str!("../../../events/reference/job.txt"), false),
        ("session", include_str!("../../../events/reference/session.txt"), true),
    ];
    for (name, text, valid) in literal {
        let parsed = routing::parse(text.as_bytes());
        assert_eq!(parsed.is_ok(), valid, "{name}: {parsed:?}");
        if !valid {
            assert_eq!(parsed.unwrap_err().code(), "invalid-json", "{name}");
        }
    }
}

#[test]
fn a_detail_type_read_from_the_table_is_the_one_worked_out_whatever_the_spelling() {
    for (group, action, expected) in [
        (EventGroup::Task, "Completed", "Task completed"),
        (EventGroup::Task, "completed", "Task completed"),
        (EventGroup::WorkUnit, "WorkUnitStatusChanged", "Work unit status changed"),
        (EventGroup::WorkUnit, "StatusChanged", "Work unit status changed"),
        (EventGroup::Sample, "Checked-in", "Sample checked in"),
        (EventGroup::Task, "Task Teleported", "Task Task Teleported"),
    ] {
        assert_eq!(detail_type(group, action), expected, "{group:?} {action}");
        assert_eq!(detail_type(group, action), spelled(group, action), "{group:?} {action}");
    }
}

#[test]
fn a_field_sent_twice_is_an_error_and_a_missing_one_is_named() {
    for (body, expected) in [
        (
            r#"{"PayloadId":"p","EventGroupName":"Job","Action":"created","EventDatetimeUtc":1,"JobCode":"a","JobCode":"b"}"#,
            "duplicate field `JobCode`",
        ),
        (
            r#"{"PayloadId":"p","EventGroupName":"Job","Action":"created","EventDatetimeUtc":1,"ClientId":"a","ClientID":"b"}"#,
            "duplicate field `ClientId`",
        ),
        (
            r#"{"PayloadId":"p","EventGroupName":"Job","Action":"created","EventDatetimeUtc":1,"PayloadId":"q"}"#,
            "duplicate field `PayloadId`",
        ),
        (
            r#"{"PayloadId":"p","EventGroupName":"Job","Action":"created","EventDatetimeUtc":1,"Action":"deleted"}"#,
            "duplicate field `Action`",
        ),
        (r#"{"PayloadId":"p","EventGroupName":"Job","EventDatetimeUtc":1}"#, "missing field `Action`"),
        (r#"{"EventGroupName":"Job","Action":"created","EventDatetimeUtc":1}"#, "missing field `PayloadId`"),
        (r#"{"PayloadId":"p","EventGroupName":"Job","Action":"created"}"#, "missing field `EventDatetimeUtc`"),
        (r#"{"PayloadId":"p","Action":"created","EventDatetimeUtc":1}"#, "missing field `EventGroupName`"),
        (r#"{"PayloadId":null,"EventGroupName":"Job","Action":"created","EventDatetimeUtc":1}"#, "text is missing"),
        (r#"["p"]"#, "expected a JSON object (JobEvent)"),
    ] {
        let err = JobEvent::decode(body.as_bytes()).unwrap_err().to_string();
        assert!(err.contains(expected), "{body}: {err}");
    }
}

#[test]
fn escaped_keys_and_values_read_like_plain_ones() {
    let body = r#"{"Payload\u0049d":"p","EventGroupName":"Job","Action":"created","EventDatetimeUtc":1,
        "Job\u0043ode":"a\"b","New\nField":"x"}"#;
    let e = JobEvent::decode(body.as_bytes()).unwrap();
    assert_eq!(e.envelope.payload_id, "p");
    assert_eq!(e.job_code.as_deref(), Some("a\"b"));
    assert_eq!(e.extra["New\nField"], "x");
}

#[test]
fn every_sample_round_trips_through_its_json_with_undocumented_fields_kept() {
    fn again<E: GroupEvent + PartialEq>(body: &str) {
        let mut value: serde_json::Value = serde_json::from_str(body).unwrap();
        value["Undocumented"] = serde_json::json!({"nested": [1, "two", null]});
        let event = E::decode(value.to_string().as_bytes()).unwrap();
        let written = serde_json::to_vec(&event).unwrap();
        assert_eq!(E::decode(&written).unwrap(), event, "{}", String::from_utf8_lossy(&written));
        let rewritten: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(rewritten["Undocumented"], value["Undocumented"]);
    }
    again::<ProductEvent>(PRODUCT);
    again::<SampleEvent>(SAMPLE);
    again::<UserEvent>(USER);
    again::<TaskEvent>(TASK);
    again::<WorkUnitEvent>(WORK_UNIT);
    again::<JobEvent>(JOB);
    again::<SessionEvent>(SESSION);
}

// Drift against the baseline (`schemas/baseline/`).

fn drift_of<E: GroupEvent>(body: &str) -> Vec<Finding> {
    E::decode_with_drift(body.as_bytes()).unwrap().1
}

/// `body` with `edit` applied to its JSON object.
fn edited(body: &str, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(body).unwrap();
    edit(value.as_object_mut().unwrap());
    value.to_string()
}

#[test]
fn no_sample_drifts() {
    assert_eq!(drift_of::<ProductEvent>(PRODUCT), vec![]);
    assert_eq!(drift_of::<SampleEvent>(SAMPLE), vec![]);
    assert_eq!(drift_of::<UserEvent>(USER), vec![]);
    assert_eq!(drift_of::<TaskEvent>(TASK), vec![], "StepId as a string is a known deviation");
    assert_eq!(drift_of::<WorkUnitEvent>(WORK_UNIT), vec![]);
    assert_eq!(drift_of::<JobEvent>(JOB), vec![]);
    assert_eq!(drift_of::<SessionEvent>(SESSION), vec![], "JSON literals inside strings are documented");
}

#[test]
fn each_kind_of_drift_is_found_and_named_without_values() {
    use baseline::JsonType as J;
    use drift::{Finding as F, JsonTypeName as T};
    let body = edited(TASK, |o| {
        o.insert("Priority".into(), serde_json::json!(3));
        o.insert("Action".into(), serde_json::json!("Teleported"));
        o.remove("TaskId");
        o.insert("StepName".into(), serde_json::json!(42));
        o.insert("EventDatetimeUtc".into(), serde_json::json!("1595204418000"));
        o["Assignee"]["Email"] = serde_json::json!("someone@example.com");
    });
    let found = drift_of::<TaskEvent>(&body);
    assert_eq!(
        found,
        vec![
            F::UndocumentedField { field: "Priority".into(), sent: T(J::Integer) },
            F::UndocumentedField { field: "Assignee.Email".into(), sent: T(J::String) },
            F::UnknownAction { action: "Teleported".into() },
            F::MissingField { field: "TaskId".into() },
            F::RetypedField { field: "EventDatetimeUtc".into(), documented: "integer", sent: T(J::String) },
            F::RetypedField { field: "StepName".into(), documented: "string", sent: T(J::Integer) },
        ]
    );
    let line = serde_json::to_string(&found).unwrap();
    assert!(!line.contains("someone@example.com") && !line.contains("1595204418000"), "{line}");
    assert!(line.contains(r#"{"kind":"retyped_field","field":"StepName","documented":"string","sent":"integer"}"#));
}

#[test]
fn drift_in_nested_lists_is_reported_once_per_field() {
    let body = edited(SAMPLE, |o| {
        o["Products"] = serde_json::json!([
            {"ProductId": "a", "ProductCode": "A", "Size": "M"},
            {"ProductId": "b", "ProductCode": "B", "Size": "L"},
        ]);
        o["Actor"]["Email"] = serde_json::json!(null);
    });
    let kinds: Vec<String> = drift_of::<SampleEvent>(&body).iter().map(ToString::to_string).collect();
    assert_eq!(kinds, ["undocumented field `Actor.Email` (null)", "undocumented field `Products[].Size` (string)"]);
    let body = edited(SESSION, |o| {
        o["PlanningStatus"] = serde_json::json!(r#"{"PlanningStatusId":1,"PlanningStatus":"Planned","By":"x"}"#);
        o["PlannedTimeSlot"] = serde_json::json!([{"PlannedStart": "a", "PlannedEnd": "b", "Room": 4}]);
    });
    let kinds: Vec<String> = drift_of::<SessionEvent>(&body).iter().map(ToString::to_string).collect();
    assert_eq!(
        kinds,
        ["undocumented field `PlannedTimeSlot[].Room` (integer)", "undocumented field `PlanningStatus.By` (string)"]
    );
}

#[test]
fn documented_spellings_and_empty_forms_are_not_drift() {
    // `ClientID` is the table's spelling; an Actor may be empty or absent.
    let body = edited(SAMPLE, |o| {
        let id = o.remove("ClientId").unwrap();
        o.insert("ClientID".into(), id);
        o.insert("Actor".into(), serde_json::json!(null));
    });
    assert_eq!(drift_of::<SampleEvent>(&body), vec![]);
    let body = edited(USER, |o| {
        o.remove("Actor");
    });
    assert_eq!(drift_of::<UserEvent>(&body), vec![]);
    // An actor sent as a bare ID is read, and is drift: the page documents an object.
    let body = edited(USER, |o| {
        o.insert("Actor".into(), serde_json::json!("19e62847"));
    });
    assert_eq!(
        drift_of::<UserEvent>(&body).iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["field `Actor` sent as string (documented: object)"]
    );
}

#[test]
fn an_unknown_action_is_reported_printable_and_cut() {
    let long = format!("New\u{7}{}", "x".repeat(200));
    let body = edited(JOB, |o| {
        o.insert("Action".into(), serde_json::json!(long));
    });
    let found = drift_of::<JobEvent>(&body);
    let [Finding::UnknownAction { action }] = found.as_slice() else { panic!("{found:?}") };
    assert_eq!(action.chars().count(), drift::ACTION_CHARS);
    assert!(action.starts_with("New?xx"), "{action}");
}

/// The models, the action enums and the baseline name the same fields and actions: the
/// baseline is the truth drift is measured against, so a model that reads a field the
/// baseline does not name (or the reverse) would hide or invent drift.
#[test]
fn the_baseline_and_the_models_agree() {
    fn fields_agree<E: GroupEvent>() {
        let own = baseline::group(E::GROUP);
        let documented: Vec<&str> = own.fields.iter().map(|f| f.name.as_str()).collect();
        let mut read: Vec<&str> = <E as drift::Drifting>::FIELDS.to_vec();
        let mut documented_sorted = documented.clone();
        read.sort_unstable();
        documented_sorted.sort_unstable();
        assert_eq!(read, documented_sorted, "{}: the model's fields and the baseline's", E::GROUP);
        // Every spelling the baseline lists is read into its field, not kept as drift.
        for field in own.fields.iter().filter(|f| !f.spellings.is_empty()) {
            for spelling in &field.spellings {
                let sample = std::fs::read_to_string(format!(
                    "{}/../events/{}.json",
                    env!("CARGO_MANIFEST_DIR"),
                    E::GROUP.as_str()
                ))
                .unwrap();
                let body = edited(&sample, |o| {
                    let value = o.remove(&field.name).unwrap_or(serde_json::json!("x"));
                    o.insert(spelling.clone(), value);
                });
                let event = E::decode(body.as_bytes()).unwrap();
                assert!(<E as drift::Drifting>::top_extra(&event).is_empty(), "{}: `{spelling}` is read", E::GROUP);
            }
        }
    }
    fields_agree::<ProductEvent>();
    fields_agree::<SampleEvent>();
    fields_agree::<UserEvent>();
    fields_agree::<TaskEvent>();
    fields_agree::<WorkUnitEvent>();
    fields_agree::<JobEvent>();
    fields_agree::<SessionEvent>();

    fn actions_agree<A: PartialEq + std::fmt::Debug>(group: EventGroup, known: &[A], parse: fn(&str) -> A) {
        let listed: Vec<A> = baseline::group(group).actions.iter().map(|a| parse(a)).collect();
        for action in known {
            assert!(listed.contains(action), "{group}: {action:?} is not in the baseline");
        }
        for (raw, parsed) in baseline::group(group).actions.iter().zip(&listed) {
            assert!(known.contains(parsed), "{group}: the baseline's {raw:?} is not a known action");
        }
    }
    actions_agree(EventGroup::Product, ProductAction::KNOWN, ProductAction::parse);
    actions_agree(EventGroup::Sample, SampleAction::KNOWN, SampleAction::parse);
    actions_agree(EventGroup::User, UserAction::KNOWN, UserAction::parse);
    actions_agree(EventGroup::Task, TaskAction::KNOWN, TaskAction::parse);
    actions_agree(EventGroup::WorkUnit, WorkUnitAction::KNOWN, WorkUnitAction::parse);
    actions_agree(EventGroup::Job, JobAction::KNOWN, JobAction::parse);
    actions_agree(EventGroup::Session, SessionAction::KNOWN, SessionAction::parse);

    // The envelope's decoder slots are the envelope baseline's fields.
    let envelope: Vec<&str> = baseline::envelope().fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(envelope, ["Action", "Actor", "PayloadId", "EventGroupName", "EventDatetimeUtc"]);
}
