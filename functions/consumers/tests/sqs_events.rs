//! The consumer Lambdas' glue against the SQS events in `events/lambda/`.

use aws_lambda_events::sqs::SqsEvent;
use cf_webhooks::consumer::{Context, Handler, HandlerError};
use cf_webhooks::events::TaskEvent;
use cf_webhooks_consumers::handlers::*;
use cf_webhooks_consumers::lambda::{handle_batch, Host};
use cf_webhooks_consumers::local_runner as runner;

/// An SQS event of `events/lambda/`, its bodies' `EventDatetimeUtc` made recent (the
/// samples are from 2020, older than the consumers' idempotency memory).
fn event(json: &str) -> SqsEvent {
    let mut event: SqsEvent = serde_json::from_str(json).expect("a valid SQS event");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    for record in &mut event.records {
        if let Some(body) = &record.body {
            if let Ok(mut value) = serde_json::from_str::<serde_json::Value>(body) {
                value["EventDatetimeUtc"] = now.into();
                record.body = Some(value.to_string());
            }
        }
    }
    event
}

macro_rules! sample_event_is_processed {
    ($($name:ident: $handler:expr => $file:literal;)+) => {$(
        #[tokio::test]
        async fn $name() {
            let runner = runner($handler);
            let sqs = event(include_str!(concat!("../../../events/lambda/", $file)));
            let response = handle_batch(&runner, sqs.clone(), None, &Host::default()).await;
            assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
            // The same message again is a duplicate, which is a success too.
            assert!(handle_batch(&runner, sqs, None, &Host::default()).await.batch_item_failures.is_empty());
        }
    )+};
}

sample_event_is_processed! {
    product_event: ProductHandler => "sqs-product.json";
    sample_event: SampleHandler => "sqs-sample.json";
    user_event: UserHandler => "sqs-user.json";
    task_event: TaskHandler => "sqs-task.json";
    work_unit_event: WorkUnitHandler => "sqs-work-unit.json";
    job_event: JobHandler => "sqs-job.json";
    session_event: SessionHandler => "sqs-session.json";
}

struct FailsOnReject;

impl Handler for FailsOnReject {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        match event.step_name.as_deref() {
            Some("Photography") => Ok(()),
            _ => Err(HandlerError::retry("downstream refused")),
        }
    }
}

#[tokio::test]
async fn only_failed_records_are_returned_as_batch_item_failures() {
    let mut sqs = event(include_str!("../../../events/lambda/sqs-task.json"));
    let mut failing = sqs.records[0].clone();
    failing.message_id = Some("m-fail".into());
    failing.body =
        Some(failing.body.unwrap().replace("c02f0f73-1706", "aaaaaaaa-1706").replace("Photography", "Retouch"));
    let mut garbage = sqs.records[0].clone();
    garbage.message_id = Some("m-garbage".into());
    garbage.body = Some("not json".into());
    sqs.records.push(failing);
    sqs.records.push(garbage);

    let response = handle_batch(&runner(FailsOnReject), sqs, None, &Host::default()).await;
    let ids: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    // No dead-letter queue client yet: the undecodable record is retried until the
    // queue's redrive policy moves it.
    assert_eq!(ids, ["m-fail", "m-garbage"]);
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["batchItemFailures"][0]["itemIdentifier"], "m-fail");
}

#[test]
fn base64_bodies_are_flagged_from_the_message_attribute() {
    let mut sqs = event(include_str!("../../../events/lambda/sqs-task.json"));
    let mut message = sqs.records.remove(0);
    let mut attribute = message.message_attributes["cf-event-group"].clone();
    attribute.string_value = Some("base64".into());
    message.message_attributes.insert("cf-body-encoding".into(), attribute);
    let record = cf_webhooks::consumer::Record::from(message);
    assert_eq!(record.body_encoding(), Some("base64"));
    assert_eq!(record.receive_count, 1);
}

#[tokio::test]
async fn a_deadline_is_kept_with_its_margin_and_a_past_one_is_ignored() {
    use cf_webhooks_consumers::lambda::{batch_deadline, DEADLINE_MARGIN};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let now = SystemTime::now();
    let in_ten_seconds = (now + Duration::from_secs(10)).duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let deadline = batch_deadline(in_ten_seconds, now).expect("a deadline ahead is kept");
    let left = deadline - tokio::time::Instant::now();
    assert!(left <= Duration::from_secs(10) - DEADLINE_MARGIN && left > Duration::from_secs(7), "{left:?}");
    // cargo lambda's emulator hands out 600000 (ten minutes after 1970).
    assert_eq!(batch_deadline(600_000, now), None);
}

#[test]
fn a_fifo_message_keeps_its_group() {
    let mut sqs = event(include_str!("../../../events/lambda/sqs-task.json"));
    let mut message = sqs.records.remove(0);
    message.attributes.insert("MessageGroupId".into(), "task-entity-1".into());
    let record = cf_webhooks::consumer::Record::from(message);
    assert_eq!(record.message_group.as_deref(), Some("task-entity-1"));
    let plain = cf_webhooks::consumer::Record::from(
        event(include_str!("../../../events/lambda/sqs-task.json")).records.remove(0),
    );
    assert_eq!(plain.message_group, None);
}

const TRACE: &str = "Root=1-6752e0a1-5f0c2b7d9e4a6b8c1d3e5f70;Parent=53995c3f42cd8ad8;Sampled=1";

/// The task sample as Lambda hands it over when the message carries a trace.
fn traced(header: &str) -> SqsEvent {
    let mut sqs = event(include_str!("../../../events/lambda/sqs-task.json"));
    sqs.records[0].attributes.insert(cf_webhooks::xray::AWS_TRACE_HEADER.into(), header.into());
    sqs
}

#[tokio::test]
async fn each_record_continues_its_deliverys_trace_in_a_segment_sent_to_the_daemon() {
    use cf_webhooks::xray::Daemon;
    let listener = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    listener.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let daemon = Daemon::at(&listener.local_addr().unwrap().to_string()).unwrap();
    let host = Host { xray: Some((daemon, "cf-consume-task".into())), ..Host::default() };
    let runner = runner(TaskHandler);
    let response = handle_batch(&runner, traced(TRACE), None, &host).await;
    assert!(response.batch_item_failures.is_empty());

    let mut datagram = vec![0u8; 65536];
    let n = listener.recv(&mut datagram).expect("a segment reached the daemon");
    let text = String::from_utf8(datagram[..n].to_vec()).unwrap();
    let (header, document) = text.split_once('\n').unwrap();
    assert_eq!(header, r#"{"format":"json","version":1}"#);
    let segment: serde_json::Value = serde_json::from_str(document).unwrap();
    assert_eq!(segment["trace_id"], "1-6752e0a1-5f0c2b7d9e4a6b8c1d3e5f70", "the delivery's trace");
    assert_eq!(segment["parent_id"], "53995c3f42cd8ad8", "a child of the segment that queued it");
    assert_eq!(segment["name"], "cf-consume-task");
    let annotations = &segment["annotations"];
    assert_eq!((&annotations["event_group"], &annotations["outcome"]), (&"task".into(), &"processed".into()));
    assert_eq!(annotations["payload_id"], "c02f0f73-1706-4973-9a4d-38007d6685e9");
    assert!(segment["end_time"].as_f64().unwrap() >= segment["start_time"].as_f64().unwrap());

    // An unsampled trace is carried on, never sent.
    let unsampled = TRACE.replace("Sampled=1", "Sampled=0");
    let response = handle_batch(&runner, traced(&unsampled), None, &host).await;
    assert!(response.batch_item_failures.is_empty());
    listener.set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
    assert!(listener.recv(&mut datagram).is_err(), "nothing sent for an unsampled trace");
}

#[tokio::test]
async fn the_record_line_names_the_trace_it_continues() {
    use cf_webhooks::consumer::Record;
    let runner = runner(TaskHandler);
    let records: Vec<Record> = traced(TRACE).records.into_iter().map(Record::from).collect();
    let report = runner.run_until(&records, None).await;
    let line: serde_json::Value = serde_json::from_str(&report.records[0].to_json_line()).unwrap();
    assert_eq!(line["trace_id"], "1-6752e0a1-5f0c2b7d9e4a6b8c1d3e5f70");
    assert_eq!(line["outcome"], "processed");
}
