//! Destinations against real servers: EventBridge and S3 served by `moto_server` (with
//! SQS and DynamoDB), and an HTTP receiver of our own on a local port. Each event
//! arrives once; a failing destination is retried alone.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{dynamodb_at, moto, queued as record};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use cf_webhooks::archive::{event_key, meta};
use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::Budget;
use cf_webhooks::config::{ArchiveSettings, Destinations, EventBridgeSettings, ForwardSecretSource, ForwardSettings};
use cf_webhooks::consumer::{BatchReport, Consume, DeadLetterError, DeadLetterSink, MemoryStore, Order, Record};
use cf_webhooks::events::{EventGroup, Route};
use cf_webhooks::message::attr;
use cf_webhooks::secret::{SecretEncoding, SecretSet};
use cf_webhooks::signature::Signature;
use cf_webhooks::testkit;
use cf_webhooks_consumers::{runner, Outlets};

const FORWARD_SECRET: &str = "forward-secret-for-tests";

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

async fn sdk() -> aws_types::SdkConfig {
    let sdk = cfwh::aws::local_sdk_config(Budget::consumer()).await;
    sdk.into_builder().endpoint_url(moto()).build()
}

/// A record as ingest queues it: the exact bytes and the attributes, the verified
/// signature among them.
fn task_body(payload_id: &str) -> String {
    testkit::sample(EventGroup::Task).replace("c02f0f73-1706-4973-9a4d-38007d6685e9", payload_id)
}

#[derive(Default, Clone)]
struct Dlq(Arc<Mutex<Vec<(String, String)>>>);

#[async_trait::async_trait]
impl DeadLetterSink for Dlq {
    async fn dead_letter(&self, _: EventGroup, record: &Record, reason: &str) -> Result<(), DeadLetterError> {
        self.0.lock().unwrap().push((record.message_id.clone(), reason.to_owned()));
        Ok(())
    }
}

/// A studio's HTTP endpoint: answers each request with the next status of its script
/// (200 once the script is spent) and keeps what it received.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<Vec<u16>>>,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    retry_after: Option<&'static str>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Self, String) {
        Self::serve(Self { script: Arc::new(Mutex::new(script.to_vec())), ..Self::default() }).await
    }

    /// Answers `status` with `Retry-After: seconds`, always.
    async fn start_with_retry_after(status: u16, seconds: &'static str) -> (Self, String) {
        let script = Arc::new(Mutex::new(vec![status; 100]));
        Self::serve(Self { script, retry_after: Some(seconds), ..Self::default() }).await
    }

    async fn serve(receiver: Self) -> (Self, String) {
        let app = axum::Router::new().route("/hooks", post(receive)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn received(&self) -> Vec<(HeaderMap, Bytes)> {
        self.received.lock().unwrap().clone()
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap, String) {
    receiver.received.lock().unwrap().push((headers, body));
    let status = {
        let mut script = receiver.script.lock().unwrap();
        if script.is_empty() {
            200
        } else {
            script.remove(0)
        }
    };
    let mut answer = HeaderMap::new();
    if let Some(seconds) = receiver.retry_after {
        answer.insert("retry-after", seconds.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), answer, format!("answer {status}: field Title is required"))
}

fn forward(url: &str) -> ForwardSettings {
    ForwardSettings {
        url: url.parse().unwrap(),
        secret: ForwardSecretSource::Text(FORWARD_SECRET.into()),
        timeout: Duration::from_secs(5),
    }
}

async fn consumer(settings: Destinations, dlq: Dlq) -> Box<dyn Consume> {
    let outlets = Outlets::build(&settings, Some(&sdk().await)).await.unwrap();
    runner(
        EventGroup::Task,
        MemoryStore::new(Duration::from_secs(60), common::LONG_MEMORY),
        dlq,
        outlets,
        Order::Latest,
    )
}

fn outcomes(report: &BatchReport) -> Vec<&'static str> {
    report.records.iter().map(|r| r.outcome.word()).collect()
}

/// An SQS queue the EventBridge rule targets, and the rule on `detail-type`.
async fn bus_with_rule(detail_type: &str) -> (String, aws_sdk_sqs::Client, String) {
    let sdk = sdk().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bus = unique("bus");
    events.create_event_bus().name(&bus).send().await.unwrap();
    let queue_url = sqs.create_queue().queue_name(unique("target")).send().await.unwrap().queue_url.unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let rule = unique("rule");
    let pattern = serde_json::json!({"source": ["creativeforce"], "detail-type": [detail_type]});
    events.put_rule().name(&rule).event_bus_name(&bus).event_pattern(pattern.to_string()).send().await.unwrap();
    let target = aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build().unwrap();
    events.put_targets().rule(&rule).event_bus_name(&bus).targets(target).send().await.unwrap();
    (bus, sqs, queue_url)
}

async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    loop {
        let got = sqs.receive_message().queue_url(queue_url).max_number_of_messages(10).send().await.unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return all;
        }
        for m in messages {
            all.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message().queue_url(queue_url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

fn eventbridge(bus: &str) -> Option<EventBridgeSettings> {
    Some(EventBridgeSettings { bus: bus.to_owned(), source: "creativeforce".into() })
}

#[tokio::test]
async fn an_event_reaches_a_rule_on_its_detail_type_once_with_its_json_as_detail() {
    let (bus, sqs, target) = bus_with_rule("Task completed").await;
    let consumer =
        consumer(Destinations { eventbridge: eventbridge(&bus), ..Destinations::default() }, Dlq::default()).await;
    let body = task_body("eb-1");
    let report = consumer.run_until(&[record("m-1", &body), record("m-1", &body)], None).await;
    assert!(outcomes(&report).contains(&"processed"), "{report:?}");
    let again = consumer.run_until(&[record("m-1", &body)], None).await;
    assert_eq!(outcomes(&again), ["duplicate"]);

    let arrived = drain(&sqs, &target).await;
    assert_eq!(arrived.len(), 1, "once: {arrived:?}");
    assert_eq!(arrived[0]["detail-type"], "Task completed");
    assert_eq!(arrived[0]["source"], "creativeforce");
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(arrived[0]["detail"], sent, "the detail is the event's JSON");
    assert_eq!(
        report.records.iter().find(|r| r.outcome.word() == "processed").unwrap().destinations["eventbridge"],
        cf_webhooks::consumer::Step::Delivered
    );
}

#[tokio::test]
async fn the_archive_holds_each_record_once_at_its_key_with_its_signature() {
    let sdk = sdk().await;
    let s3 = cf_webhooks::aws::s3::client(&sdk);
    let bucket = unique("archive");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let archive = Some(ArchiveSettings { bucket: bucket.clone(), prefix: "events".into() });
    let consumer = consumer(Destinations { archive, ..Destinations::default() }, Dlq::default()).await;
    let body = task_body("s3/../1");
    let first = consumer.run_until(&[record("m-1", &body)], None).await;
    assert_eq!(outcomes(&first), ["processed"]);
    let duplicate = consumer.run_until(&[record("m-2", &body)], None).await;
    assert_eq!(outcomes(&duplicate), ["duplicate"]);
    assert_eq!(duplicate.records[0].destinations["archive"], cf_webhooks::consumer::Step::Present);

    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = event_key("events", EventGroup::Task, event["EventDatetimeUtc"].as_i64().unwrap(), "s3/../1");
    assert!(key.ends_with("-s3%2F%2E%2E%2F1.json") && key.starts_with("events/task/"), "{key}");
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [key.as_str()]);
    let object = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap();
    let metadata = object.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata[meta::SIGNATURE], testkit::signature(testkit::SECRET, body.as_bytes()));
    assert_eq!(metadata[meta::RECEIVED_AT], "1795951864999");
    assert_eq!(metadata[meta::ACTION], event["Action"].as_str().unwrap());
    let stored = object.body.collect().await.unwrap().into_bytes();
    assert_eq!(&stored[..], body.as_bytes(), "the body as received");
}

#[tokio::test]
async fn the_unrouted_consumer_archives_quarantined_bodies_by_their_hash() {
    let sdk = sdk().await;
    let s3 = cf_webhooks::aws::s3::client(&sdk);
    let bucket = unique("unrouted");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let settings = Destinations {
        archive: Some(ArchiveSettings { bucket: bucket.clone(), prefix: "cf".into() }),
        ..Destinations::default()
    };
    let archive = Outlets::build(&settings, Some(&sdk)).await.unwrap().archive.unwrap();
    // The same bytes received on two days (a captured delivery replayed): kept once.
    let quarantined = |id: &str, received_at: &str| {
        Record::new(
            id,
            "{not json",
            1,
            [
                (attr::RECEIVED_AT.to_owned(), received_at.to_owned()),
                (attr::REASON.to_owned(), "invalid-json: expected value".to_owned()),
            ],
        )
    };
    let results = cf_webhooks::consumer::archive_unrouted(
        &archive,
        &[quarantined("a", "1795951864123"), quarantined("b", "1796038264123")],
        cf_webhooks::config::DEFAULT_RECORDS_IN_FLIGHT,
    )
    .await;
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [cf_webhooks::archive::unrouted_key("cf", b"{not json").as_str()], "the same bytes once");
    let object = s3.get_object().bucket(&bucket).key(keys[0]).send().await.unwrap();
    assert_eq!(object.metadata().unwrap()[meta::REASON], "invalid-json: expected value");
    assert_eq!(Route::Unrouted.as_str(), "unrouted");
}

#[tokio::test]
async fn a_forward_is_the_exact_bytes_signed_with_the_forward_secret() {
    let (receiver, url) = Receiver::start(&[]).await;
    let consumer =
        consumer(Destinations { http: Some(forward(&url)), ..Destinations::default() }, Dlq::default()).await;
    let body = task_body("fw-1");
    let report = consumer.run_until(&[record("m-1", &body)], None).await;
    assert_eq!(outcomes(&report), ["processed"]);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let (headers, bytes) = &received[0];
    assert_eq!(&bytes[..], body.as_bytes(), "byte for byte");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-cf-event"], "Task completed");
    assert_eq!(headers["idempotency-key"], "fw-1");
    let signature = Signature::parse(headers["x-cf-signature"].as_bytes()).unwrap();
    let forward = SecretSet::parse_list(FORWARD_SECRET, SecretEncoding::Utf8).unwrap();
    assert!(signature.verify(&forward, bytes), "verifies with the forward secret");
    let webhook = SecretSet::parse_list(testkit::SECRET, SecretEncoding::Utf8).unwrap();
    assert!(!signature.verify(&webhook, bytes), "and not with the webhook secret");
}

#[tokio::test]
async fn a_400_dead_letters_with_its_status_and_a_503_then_200_delivers_once() {
    let (receiver, url) = Receiver::start(&[400]).await;
    let dlq = Dlq::default();
    let consumer = consumer(Destinations { http: Some(forward(&url)), ..Destinations::default() }, dlq.clone()).await;
    let report = consumer.run_until(&[record("m-400", &task_body("fw-400"))], None).await;
    assert_eq!(outcomes(&report), ["dead-lettered"]);
    let dead = dlq.0.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.starts_with("http: HTTP 400: answer 400: field Title is required"), "{}", dead[0].1);

    let (receiver_503, url) = Receiver::start(&[503]).await;
    let consumer = consumer_with(forward(&url)).await;
    let body = task_body("fw-503");
    let first = consumer.run_until(&[record("m-503", &body)], None).await;
    assert_eq!(outcomes(&first), ["failed"]);
    let second = consumer.run_until(&[record("m-503", &body)], None).await;
    assert_eq!(outcomes(&second), ["processed"]);
    let third = consumer.run_until(&[record("m-503", &body)], None).await;
    assert_eq!(outcomes(&third), ["duplicate"]);
    let delivered: Vec<_> = receiver_503.received().into_iter().map(|(_, b)| b).collect();
    assert_eq!(delivered.len(), 2, "one refused attempt, one delivery");
    assert_eq!(receiver.received().len(), 1);
}

async fn consumer_with(forward: ForwardSettings) -> Box<dyn Consume> {
    consumer(Destinations { http: Some(forward), ..Destinations::default() }, Dlq::default()).await
}

#[tokio::test]
async fn a_failing_destination_is_retried_alone_over_dynamodb() {
    let (bus, sqs, target) = bus_with_rule("Task completed").await;
    let (receiver, url) = Receiver::start(&[503, 503]).await;
    let ddb = dynamodb_at(&moto(), Budget::consumer()).await;
    let table = unique("dest-idem");
    DynamoStore::create_table_if_missing(&ddb, &table).await.unwrap();
    let store = DynamoStore::new(ddb, &table, Duration::from_secs(60), common::LONG_MEMORY);
    let settings = Destinations { eventbridge: eventbridge(&bus), http: Some(forward(&url)), archive: None };
    let outlets = Outlets::build(&settings, Some(&sdk().await)).await.unwrap();
    let consumer = runner(EventGroup::Task, store, Dlq::default(), outlets, Order::Latest);
    let body = task_body("both-1");
    let mut words = Vec::new();
    for _ in 0..4 {
        let report = consumer.run_until(&[record("m-1", &body)], None).await;
        words.push(report.records[0].outcome.word());
    }
    assert_eq!(words, ["failed", "failed", "processed", "duplicate"]);
    assert_eq!(receiver.received().len(), 3, "the forward was tried until it succeeded");
    let arrived = drain(&sqs, &target).await;
    assert_eq!(arrived.len(), 1, "EventBridge was not repeated: {arrived:?}");
}

/// A task event of its own task (`TaskId` = `t-<PayloadId>`) at `at_ms`.
fn task_at(payload_id: &str, at_ms: i64) -> String {
    let mut event: serde_json::Value = serde_json::from_str(&task_body(payload_id)).unwrap();
    event["EventDatetimeUtc"] = at_ms.into();
    event["TaskId"] = format!("t-{payload_id}").into();
    event.to_string()
}

fn replay(args: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(common::CFWH)
        .arg("replay")
        .args(args)
        .env_remove("CF_WEBHOOK_SECRET")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Receives what a replay sent to the queue and runs it through `consumer`.
async fn consume_queue(sqs: &aws_sdk_sqs::Client, url: &str, consumer: &dyn Consume) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return lines;
        }
        let records: Vec<Record> = messages.iter().map(Record::from).collect();
        let report = consumer.run_until(&records, None).await;
        for (message, line) in messages.iter().zip(&report.records) {
            lines.push(serde_json::from_str(&line.to_json_line()).unwrap());
            sqs.delete_message().queue_url(url).receipt_handle(message.receipt_handle().unwrap()).send().await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_replayed_day_is_applied_once_per_run_and_a_planted_object_is_refused() {
    let sdk = sdk().await;
    let s3 = cf_webhooks::aws::s3::client(&sdk);
    let bucket = unique("replay");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let prefix = unique("rp");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queues =
        cfwh::aws::ensure_queues(&sqs, &prefix, cf_webhooks::stack::QueueType::Standard, 5, Duration::from_secs(2))
            .await
            .unwrap();
    let task_queue = queues.sources.get(Route::Group(EventGroup::Task)).to_owned();

    let (receiver, url) = Receiver::start(&[]).await;
    let settings = Destinations {
        http: Some(forward(&url)),
        archive: Some(ArchiveSettings { bucket: bucket.clone(), prefix: "events".into() }),
        ..Destinations::default()
    };
    let outlets = Outlets::build(&settings, Some(&sdk)).await.unwrap();
    let consumer = runner(
        EventGroup::Task,
        MemoryStore::new(Duration::from_secs(60), common::LONG_MEMORY),
        Dlq::default(),
        outlets,
        Order::Latest,
    );

    // Yesterday: three events, in an order unlike their times; and one of the day before.
    let day = 1_795_824_000_000; // 2026-11-28T00:00:00Z
    let bodies = [task_at("r-2", day + 7_200_000), task_at("r-1", day + 3_600_000), task_at("r-3", day + 10_800_000)];
    let records: Vec<Record> = bodies.iter().enumerate().map(|(i, b)| record(&format!("m-{i}"), b)).collect();
    let first = consumer.run_until(&records, None).await;
    assert_eq!(outcomes(&first), ["processed"; 3]);
    consumer.run_until(&[record("m-old", &task_at("r-old", day - 1))], None).await;
    // An object planted in the bucket: a real event's bytes, no valid signature.
    let planted = task_at("r-planted", day + 60_000);
    let key = event_key("events", EventGroup::Task, day + 60_000, "r-planted");
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(planted.into_bytes().into())
        .metadata(meta::SIGNATURE, "ab".repeat(32))
        .send()
        .await
        .unwrap();
    // And one larger than any body ingest takes: refused by its size, before it is read.
    let huge_key = event_key("events", EventGroup::Task, day + 120_000, "r-huge");
    s3.put_object().bucket(&bucket).key(&huge_key).body(vec![b' '; 300_000].into()).send().await.unwrap();

    let moto = moto();
    let common_args = [
        "--bucket",
        &bucket,
        "--group",
        "task",
        "--since",
        "2026-11-28",
        "--until",
        "2026-11-29",
        "--s3-endpoint",
        &moto,
        "--sqs-endpoint",
        &moto,
        "--queue-prefix",
        &prefix,
        "--secret",
        testkit::SECRET,
    ];
    let (code, out, err) = replay(&[&common_args[..], &["--run", "run-1", "--dry-run"]].concat());
    assert!(out.contains("would send 3, refused 2"), "{out}{err}");
    assert!(err.contains(&format!("refused {huge_key}: 300000 bytes, over the body limit")), "{err}");
    assert_eq!(code, Some(1), "a refusal is a failure of the run");
    assert!(consume_queue(&sqs, &task_queue, &*consumer).await.is_empty(), "a dry run sends nothing");

    let (_, out, err) = replay(&[&common_args[..], &["--run", "run-1"]].concat());
    assert!(out.contains("replay run run-1: sent 3, refused 2"), "{out}{err}");
    assert!(err.contains(&key), "the refused object is named: {err}");
    let lines = consume_queue(&sqs, &task_queue, &*consumer).await;
    let mut applied: Vec<(String, String)> = lines
        .iter()
        .map(|l| (l["payload_id"].as_str().unwrap().to_owned(), l["outcome"].as_str().unwrap().to_owned()))
        .collect();
    applied.sort();
    assert_eq!(
        applied,
        [("r-1".into(), "processed".into()), ("r-2".into(), "processed".into()), ("r-3".into(), "processed".into())]
    );
    assert!(lines.iter().all(|l| l["replay_run"] == "run-1"));

    // The same run again applies nothing; a second run applies each once more.
    replay(&[&common_args[..], &["--run", "run-1"]].concat());
    let again = consume_queue(&sqs, &task_queue, &*consumer).await;
    assert_eq!(again.iter().filter(|l| l["outcome"] == "duplicate").count(), 3, "{again:?}");
    replay(&[&common_args[..], &["--run", "run-2"]].concat());
    let second = consume_queue(&sqs, &task_queue, &*consumer).await;
    assert_eq!(second.iter().filter(|l| l["outcome"] == "processed").count(), 3, "{second:?}");

    let keys: Vec<String> = receiver
        .received()
        .iter()
        .map(|(h, _)| h["idempotency-key"].to_str().unwrap().to_owned())
        .filter(|k| k.starts_with("r-1"))
        .collect();
    assert_eq!(keys, ["r-1", "r-1:run-1", "r-1:run-2"], "applied once, then once per run");
    let replayed = receiver.received().into_iter().filter(|(h, _)| h.get("x-cf-replay").is_some()).count();
    assert_eq!(replayed, 6);
}

#[tokio::test]
async fn an_unreachable_or_silent_endpoint_is_retried_not_dead_lettered() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let dlq = Dlq::default();
    let refused =
        consumer(Destinations { http: Some(forward(&closed_url)), ..Destinations::default() }, dlq.clone()).await;
    let report = refused.run_until(&[record("m-1", &task_body("down-1"))], None).await;
    assert_eq!(outcomes(&report), ["failed"]);
    assert!(report.records[0].reason.as_deref().unwrap().starts_with("http: http://127.0.0.1:"), "{report:?}");

    // An endpoint that accepts the connection and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hooks", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let settings = ForwardSettings { timeout: Duration::from_millis(300), ..forward(&silent_url) };
    let slow = consumer(Destinations { http: Some(settings), ..Destinations::default() }, dlq.clone()).await;
    let started = std::time::Instant::now();
    let report = slow.run_until(&[record("m-2", &task_body("slow-1"))], None).await;
    assert_eq!(outcomes(&report), ["failed"]);
    assert!(report.records[0].reason.as_deref().unwrap().contains("no answer within 300 ms"), "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(dlq.0.lock().unwrap().is_empty(), "nothing dead-lettered for a retryable failure");
}

#[tokio::test]
async fn an_event_too_large_for_eventbridge_is_dead_lettered_with_that_reason() {
    let (bus, sqs, target) = bus_with_rule("Task completed").await;
    let dlq = Dlq::default();
    let consumer =
        consumer(Destinations { eventbridge: eventbridge(&bus), ..Destinations::default() }, dlq.clone()).await;
    let mut event: serde_json::Value = serde_json::from_str(&task_body("huge-1")).unwrap();
    event["Notes"] = "x".repeat(300 * 1024).into();
    let huge = event.to_string();
    let report = consumer.run_until(&[record("m-huge", &huge), record("m-small", &task_body("small-1"))], None).await;
    assert_eq!(outcomes(&report), ["dead-lettered", "processed"]);
    let dead = dlq.0.lock().unwrap().clone();
    assert!(dead[0].1.starts_with("eventbridge: too large for an EventBridge entry"), "{}", dead[0].1);
    assert_eq!(drain(&sqs, &target).await.len(), 1, "the small one still went");
}

#[tokio::test]
async fn a_retry_after_delays_the_message_on_its_queue() {
    use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
    use cf_webhooks_consumers::lambda::{handle_batch, Host, Visibility};
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let url = sqs
        .create_queue()
        .queue_name(unique("retry-after"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "0")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let (_receiver, forward_url) = Receiver::start(&[429]).await;
    let body = task_body("later-1");
    sqs.send_message().queue_url(&url).message_body(&body).send().await.unwrap();
    let got = sqs.receive_message().queue_url(&url).send().await.unwrap().messages.unwrap().remove(0);

    let mut message = SqsMessage::default();
    message.message_id = got.message_id.clone();
    message.receipt_handle = got.receipt_handle.clone();
    message.body = Some(body);
    let mut event = SqsEvent::default();
    event.records = vec![message];
    let consumer = consumer_with(forward(&forward_url)).await;
    // The receiver's 429 carries no Retry-After: the queue's own timing applies.
    let visibility = Visibility::of(sqs.clone(), url.clone(), true).await;
    assert_eq!(visibility.queue_timeout, Some(Duration::ZERO), "the queue's visibility timeout");
    let host = Host { metrics: None, visibility: Some(visibility.clone()), xray: None };
    let response = handle_batch(&*consumer, event.clone(), None, &host).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let again = sqs.receive_message().queue_url(&url).send().await.unwrap().messages.unwrap_or_default();
    assert_eq!(again.len(), 1, "no Retry-After: visible again at once (visibility 0)");

    let (_later, later_url) = Receiver::start_with_retry_after(429, "120").await;
    let consumer = consumer_with(forward(&later_url)).await;
    event.records[0].receipt_handle = again[0].receipt_handle.clone();
    let response = handle_batch(&*consumer, event, None, &host).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    let hidden = sqs.receive_message().queue_url(&url).send().await.unwrap().messages.unwrap_or_default();
    assert!(hidden.is_empty(), "Retry-After: 120 hides the message");

    // A Retry-After shorter than the queue's own visibility is not honoured: it would
    // only make the message come back sooner.
    let (_soon, soon_url) = Receiver::start_with_retry_after(503, "1").await;
    let short = sqs.create_queue().queue_name(unique("short")).send().await.unwrap().queue_url.unwrap();
    sqs.send_message().queue_url(&short).message_body(task_body("soon-1")).send().await.unwrap();
    let got =
        sqs.receive_message().queue_url(&short).visibility_timeout(0).send().await.unwrap().messages.unwrap().remove(0);
    let mut message = SqsMessage::default();
    message.message_id = got.message_id.clone();
    message.receipt_handle = got.receipt_handle.clone();
    message.body = got.body.clone();
    let mut event = SqsEvent::default();
    event.records = vec![message];
    let queue_default = Visibility {
        queue_timeout: Some(Duration::from_secs(30)),
        ..Visibility::of(sqs.clone(), short.clone(), true).await
    };
    let host = Host { metrics: None, visibility: Some(queue_default), xray: None };
    handle_batch(&*consumer_with(forward(&soon_url)).await, event, None, &host).await;
    let back = sqs.receive_message().queue_url(&short).send().await.unwrap().messages.unwrap_or_default();
    assert_eq!(back.len(), 1, "left as it was (visibility 0 in this test), not set to 1 s");
}

#[tokio::test]
async fn a_copy_waiting_on_a_claim_is_hidden_for_its_short_wait_below_the_queues_visibility_timeout() {
    // Deployed, the queue's visibility timeout is six times the function's: a copy left
    // to it came back minutes after the first had settled. It is hidden for its own wait.
    use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
    use cf_webhooks::consumer::idempotency::{Claimant, IdempotencyStore, Owner};
    use cf_webhooks_consumers::lambda::{handle_batch, Host, Visibility};
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let url = sqs
        .create_queue()
        .queue_name(unique("waiting"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let payload_id = unique("p-waiting");
    let body = task_body(&payload_id);
    sqs.send_message().queue_url(&url).message_body(&body).send().await.unwrap();
    let got = sqs.receive_message().queue_url(&url).send().await.unwrap().messages.unwrap().remove(0);

    // The first delivery's attempt holds the claim for 3 s more.
    let store = Arc::new(MemoryStore::new(Duration::from_secs(3), common::LONG_MEMORY));
    let key = format!("task{}{payload_id}", cf_webhooks::consumer::CLAIM_SEPARATOR);
    let holder = Claimant { key: &key, owner: Owner(7), event_ms: 0 };
    store.claim(holder).await.unwrap();
    let consumer = runner(EventGroup::Task, store.clone(), Dlq::default(), Outlets::default(), Order::Latest);
    let mut message = SqsMessage::default();
    message.message_id = got.message_id.clone();
    message.receipt_handle = got.receipt_handle.clone();
    message.body = Some(body);
    message.attributes.insert("ApproximateReceiveCount".into(), "1".into());
    let mut event = SqsEvent::default();
    event.records = vec![message];
    let host =
        Host { metrics: None, visibility: Some(Visibility::of(sqs.clone(), url.clone(), false).await), xray: None };
    let waited = std::time::Instant::now();
    let response = handle_batch(&*consumer, event.clone(), None, &host).await;
    assert_eq!(response.batch_item_failures.len(), 1, "retried, not deleted");

    // 3 s of lease over the receives left: a first wait of a second, not the queue's 30 s.
    store.complete(holder, None).await.unwrap();
    let back = loop {
        let got = sqs.receive_message().queue_url(&url).wait_time_seconds(1).send().await.unwrap();
        if let Some(message) = got.messages.unwrap_or_default().pop() {
            break message;
        }
        assert!(waited.elapsed() < Duration::from_secs(10), "still hidden: the queue's own timeout applied");
    };
    assert!(waited.elapsed() >= Duration::from_millis(900), "hidden for its wait: {:?}", waited.elapsed());
    event.records[0].receipt_handle = back.receipt_handle.clone();
    event.records[0].attributes.insert("ApproximateReceiveCount".into(), "2".into());
    let response = handle_batch(&*consumer, event, None, &host).await;
    assert!(response.batch_item_failures.is_empty(), "the holder completed: a duplicate, done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfwh_dev_over_sqs_delivers_to_eventbridge_and_s3_at_their_endpoints() {
    let (bus, sqs, target) = bus_with_rule("Task completed").await;
    let sdk = sdk().await;
    let s3 = cf_webhooks::aws::s3::client(&sdk);
    let bucket = unique("dev-archive");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let moto = moto();
    let prefix = unique("devdest");
    let dev = tokio::task::block_in_place(|| {
        common::DevProcess::start_with(
            None,
            &[
                "--sqs-endpoint",
                &moto,
                "--queue-prefix",
                &prefix,
                "--event-bus",
                &bus,
                "--eventbridge-endpoint",
                &moto,
                "--archive-bucket",
                &bucket,
                "--s3-endpoint",
                &moto,
            ],
        )
    });
    let body = task_at("dev-dest-1", cf_webhooks::ack::now_ms());
    let answer = reqwest::Client::new()
        .post(format!("{}/", dev.url))
        .header("x-cf-signature", testkit::signature(cf_webhooks::DEV_SECRET, body.as_bytes()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let lines = tokio::task::block_in_place(|| dev.lines_within(Duration::from_secs(10)));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "processed");
    assert_eq!(lines[0]["destinations"]["eventbridge"], "delivered");
    assert_eq!(lines[0]["destinations"]["archive"], "archived");
    assert_eq!(drain(&sqs, &target).await.len(), 1);
    let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    let (status, _) = tokio::task::block_in_place(|| dev.terminate());
    assert!(status.success());
}

/// The failing-destination case through `cfwh dev`, sent one after the other as a new
/// user would: a task's newer event is applied, its forward refused (400) and
/// dead-lettered; the same task's older event, sent next, must end `stale` (the
/// handler's state never moves back), and never reach the endpoint.
async fn the_failing_destination_case_ends_stale(extra: &[&str]) {
    let (receiver, url) = Receiver::start(&[400]).await;
    let mut args = vec!["--forward-url", &url, "--forward-secret", FORWARD_SECRET];
    args.extend_from_slice(extra);
    let dev = tokio::task::block_in_place(|| common::DevProcess::start_with(None, &args));
    let now = cf_webhooks::ack::now_ms();
    let event = |payload_id: &str, at: i64| {
        format!(
            r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"StatusChanged","EventDatetimeUtc":{at},"TaskId":"t-refused","StepName":"Photography"}}"#
        )
    };
    let client = reqwest::Client::new();
    let send = |body: String| {
        client
            .post(format!("{}/", dev.url))
            .header("x-cf-signature", testkit::signature(cf_webhooks::DEV_SECRET, body.as_bytes()))
            .body(body)
            .send()
    };
    let (newer, older) = (unique("p-newer"), unique("p-older"));
    assert_eq!(send(event(&newer, now)).await.unwrap().status(), 200);
    let lines = tokio::task::block_in_place(|| dev.lines_within(Duration::from_secs(15)));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["outcome"], "dead-lettered", "{lines:?}");
    assert!(lines[0]["reason"].as_str().unwrap().starts_with("http: HTTP 400"), "{lines:?}");
    assert_eq!(send(event(&older, now - 60_000)).await.unwrap().status(), 200);
    let lines = tokio::task::block_in_place(|| dev.lines_within(Duration::from_secs(15)));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!((lines[0]["payload_id"].as_str(), lines[0]["outcome"].as_str()), (Some(older.as_str()), Some("stale")));
    assert_eq!(receiver.received().len(), 1, "the stale event reached no destination");
    let (status, _) = tokio::task::block_in_place(|| dev.terminate());
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failing_destination_case_ends_stale_in_memory() {
    the_failing_destination_case_ends_stale(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failing_destination_case_ends_stale_over_fifo_sqs() {
    let (moto, prefix) = (moto(), unique("refused-fifo"));
    the_failing_destination_case_ends_stale(&["--sqs-endpoint", &moto, "--queue-prefix", &prefix, "--fifo"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failing_destination_case_ends_stale_over_standard_sqs() {
    let (moto, prefix) = (moto(), unique("refused-std"));
    the_failing_destination_case_ends_stale(&["--sqs-endpoint", &moto, "--queue-prefix", &prefix]).await;
}
