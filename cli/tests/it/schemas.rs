//! The JSON Schemas of `schemas/` against a real JSON Schema validator (the `jsonschema`
//! crate): every Creative Force body among the samples validates, bodies that break the
//! documented types do not, and the EventBridge registry's schemas describe the events the
//! destination puts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cf_webhooks::events::{detail_type, EventGroup};
use cf_webhooks::secret::{Secret, SecretEncoding};
use cfwh::schemas::{self, Dialect};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn committed(group: Option<EventGroup>) -> Value {
    let path = root().join("schemas").join(schemas::file_name(group));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The validation errors of `body` against the committed schema of `group`, as text.
fn errors(group: Option<EventGroup>, body: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&committed(group)).unwrap();
    validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

fn sample(group: EventGroup) -> Value {
    serde_json::from_str(cf_webhooks::testkit::sample(group)).unwrap()
}

#[test]
fn the_committed_schemas_are_what_cfwh_schemas_writes_and_are_valid_schemas() {
    for (name, text) in schemas::files() {
        let on_disk = std::fs::read_to_string(root().join("schemas").join(&name)).unwrap();
        assert_eq!(on_disk, text, "schemas/{name} is stale: run `make schemas`");
        let schema: Value = serde_json::from_str(&text).unwrap();
        jsonschema::meta::validate(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(schemas::files().len(), 1 + EventGroup::ALL.len(), "the envelope and each group");
}

#[test]
fn every_sample_body_validates_against_its_group_and_the_envelope() {
    for group in EventGroup::ALL {
        let body = sample(group);
        assert_eq!(errors(Some(group), &body), Vec::<String>::new(), "events/{}.json", group.as_str());
        assert_eq!(errors(None, &body), Vec::<String>::new(), "events/{}.json, envelope", group.as_str());
    }
}

/// Of the help page's seven examples, as published, three are JSON (product, task,
/// session) and validate; sample, user, work unit and job are not JSON at all (a missing
/// comma, a trailing comma, typographic quotes).
#[test]
fn the_reference_examples_that_are_json_validate() {
    let mut json_ones = Vec::new();
    for group in EventGroup::ALL {
        let path = root().join("events/reference").join(format!("{}.txt", group.as_str()));
        let text = std::fs::read_to_string(&path).unwrap();
        if let Ok(body) = serde_json::from_str::<Value>(&text) {
            assert_eq!(errors(Some(group), &body), Vec::<String>::new(), "{}", path.display());
            json_ones.push(group);
        }
    }
    assert_eq!(json_ones, [EventGroup::Product, EventGroup::Task, EventGroup::Session]);
}

/// What `cfwh send` POSTs (each sample, its time stamped to now), captured by a real
/// local receiver.
#[tokio::test]
async fn what_cfwh_send_posts_validates() {
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |body: bytes::Bytes| {
        let kept = kept.clone();
        async move {
            kept.lock().unwrap().push(body.to_vec());
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let options = cfwh::send::SendOptions {
        url,
        secret: Secret::from_text("key", SecretEncoding::Utf8).unwrap(),
        event: None,
        headers: Vec::new(),
        retries: 0,
        retry_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
        stamp_time: true,
    };
    let files: Vec<PathBuf> =
        EventGroup::ALL.iter().map(|g| root().join("events").join(format!("{}.json", g.as_str()))).collect();
    assert!(cfwh::send::send_files(&options, &files).await.unwrap());
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), EventGroup::ALL.len());
    for (group, body) in EventGroup::ALL.iter().zip(&bodies) {
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_ne!(body["EventDatetimeUtc"], sample(*group)["EventDatetimeUtc"], "stamped");
        assert_eq!(errors(Some(*group), &body), Vec::<String>::new(), "{group}");
    }
}

#[test]
fn bodies_that_break_the_documented_types_do_not_validate() {
    let broken = |group: EventGroup, edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut body = sample(group);
        edit(body.as_object_mut().unwrap());
        errors(Some(group), &body)
    };
    assert!(!broken(EventGroup::Task, &|o| {
        o.remove("PayloadId");
    })
    .is_empty());
    assert!(!broken(EventGroup::Task, &|o| {
        o.insert("EventDatetimeUtc".into(), json!("yesterday"));
    })
    .is_empty());
    assert!(
        !broken(EventGroup::Task, &|o| {
            o.insert("StepId".into(), json!("three"));
        })
        .is_empty(),
        "an integer sent as a string holds digits"
    );
    assert!(!broken(EventGroup::Task, &|o| {
        o.insert("EventGroupName".into(), json!("invoice"));
    })
    .is_empty());
    assert!(!broken(EventGroup::Sample, &|o| {
        o.insert("Products".into(), json!("not a list"));
    })
    .is_empty());
    // What the consumers tolerate and report as drift stays valid: an undocumented
    // field, the group's name in another spelling, an integer sent as a string.
    assert_eq!(
        broken(EventGroup::WorkUnit, &|o| {
            o.insert("Priority".into(), json!(1));
            o.insert("EventGroupName".into(), json!("WorkUnit"));
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        broken(EventGroup::Task, &|o| {
            o.insert("StepId".into(), json!(3));
        }),
        Vec::<String>::new()
    );
}

/// The registry's schema of each group, as the template embeds it, validates the event
/// the EventBridge destination puts for that group's sample, and not another group's.
#[test]
fn the_registry_schemas_describe_what_the_eventbridge_destination_puts() {
    for group in EventGroup::ALL {
        let schema = schemas::eventbridge(group, "cf.webhooks");
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
        jsonschema::draft4::meta::validate(&schema).unwrap_or_else(|e| panic!("{group}: {e}"));
        let validator = jsonschema::draft4::new(&schema).unwrap();
        let body = sample(group);
        let action = body["Action"].as_str().unwrap().to_owned();
        let event = json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": detail_type(group, &action),
            "source": "cf.webhooks",
            "account": "111122223333",
            "time": "2020-07-20T00:20:18Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": body,
        });
        let problems: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
        assert_eq!(problems, Vec::<String>::new(), "{group}");
        let mut elsewhere = event.clone();
        elsewhere["source"] = json!("another.source");
        assert!(!validator.is_valid(&elsewhere), "{group}: the stack's source only");
        let other = if group == EventGroup::Job { EventGroup::Task } else { EventGroup::Job };
        let mut wrong = event;
        wrong["detail"] = sample(other);
        assert!(!validator.is_valid(&wrong), "{group}: a {other} event is not one");
    }
    assert_ne!(
        schemas::body_schema(None, Dialect::Draft4)["$schema"],
        schemas::body_schema(None, Dialect::Draft2020)["$schema"]
    );
}
