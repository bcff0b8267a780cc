//! The pipeline against a real AWS API server: `moto_server`, which `make test` starts
//! and names in `CFWH_TEST_MOTO`. Every test uses its own queue and table names.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{collecting_sink, dynamodb_at, moto};
use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::sqs::SqsDeadLetters;
use cf_webhooks::aws::Budget;
use cf_webhooks::consumer::{
    Claim, Claimant, Context, Done, Handler, HandlerError, IdempotencyStore, Owner, Runner, StoreErrorKind, Version,
};
use cf_webhooks::events::{EventGroup, Route, TaskEvent};
use cf_webhooks::stack::QueueType;
use cf_webhooks::testkit;
use cfwh::aws::{depth, ensure_queues, receive, sqs_client, Queues};
use cfwh::dev::{consume_sqs, memory_store, Backend, Dev, DevOptions, LineSink};
use cfwh::redrive::move_one_by_one;
use tokio::net::TcpListener;

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

async fn sqs() -> aws_sdk_sqs::Client {
    sqs_client(Some(&moto()), Budget::consumer()).await
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    dynamodb_at(&moto(), Budget::consumer()).await
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn signed_post(client: &reqwest::Client, url: &str, body: &str) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("x-cf-signature", testkit::signature(testkit::SECRET, body.as_bytes()))
        .body(body.to_owned())
}

#[tokio::test]
async fn a_delivery_is_processed_once_through_sqs_and_dynamodb() {
    let client = sqs().await;
    let queues = ensure_queues(&client, &unique("once"), QueueType::Standard, 5, Duration::from_secs(2)).await.unwrap();
    let table = unique("idem");
    let ddb = dynamodb().await;
    DynamoStore::create_table_if_missing(&ddb, &table).await.unwrap();
    let store = Arc::new(DynamoStore::new(ddb.clone(), &table, Duration::from_secs(60), common::LONG_MEMORY));

    let (sink, lines) = collecting_sink();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = Backend::Sqs { client: client.clone(), consumer_client: client.clone(), queues: queues.clone() };
    let dev = Dev::start(listener, testkit::config(), DevOptions::default(), sink, backend, store).unwrap();
    let http = reqwest::Client::new();
    let body = testkit::sample(EventGroup::Task);
    for _ in 0..2 {
        let answer = signed_post(&http, &format!("http://{}/", dev.addr), body).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }
    wait_for("two lines", Duration::from_secs(20), async || lines.lock().unwrap().len() >= 2).await;
    dev.drain().await.unwrap();

    let outcomes: Vec<String> =
        lines.lock().unwrap().iter().map(|l| l["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["processed", "duplicate"]);
    let item = ddb
        .get_item()
        .table_name(&table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("task#c02f0f73-1706-4973-9a4d-38007d6685e9".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(item.item().unwrap()["state"].as_s().unwrap(), "COMPLETED");
    assert_eq!(depth(&client, queues.sources.get(Route::Group(EventGroup::Task))).await.unwrap(), 0);
}

/// The attempt `owner` writing to `key`, for an event of 1970 (remembered from now).
fn who(key: &str, owner: u128) -> Claimant<'_> {
    Claimant { key, owner: Owner(owner), event_ms: 0 }
}

#[tokio::test]
async fn consumers_racing_on_one_payload_id_apply_it_once() {
    let ddb = dynamodb().await;
    let table = unique("race");
    DynamoStore::create_table_if_missing(&ddb, &table).await.unwrap();
    let store = Arc::new(DynamoStore::new(ddb, &table, Duration::from_secs(2), common::LONG_MEMORY));

    let claims = futures_util::future::join_all((0..16).map(|n| {
        let store = store.clone();
        async move { (n, store.claim(who("task#p-race", n as u128)).await.unwrap()) }
    }))
    .await;
    let winners: Vec<usize> = claims.iter().filter(|(_, c)| *c == Claim::fresh()).map(|(n, _)| *n).collect();
    assert_eq!(winners.len(), 1, "{claims:?}");
    assert!(claims.iter().all(|(_, c)| matches!(c, Claim::Acquired { .. } | Claim::InProgress { .. })));
    let winner = winners[0] as u128;
    let loser = ((winners[0] + 1) % 16) as u128;
    assert_eq!(
        store.complete(who("task#p-race", loser), None).await.unwrap_err().kind,
        StoreErrorKind::Lost,
        "only the attempt that claimed completes"
    );

    store.complete(who("task#p-race", winner), None).await.unwrap();
    store.complete(who("task#p-race", winner), None).await.expect("a completion made again (its answer lost) holds");
    assert_eq!(
        store.release(who("task#p-race", winner), &Done::new(), None).await.unwrap_err().kind,
        StoreErrorKind::Lost
    );
    assert_eq!(store.claim(who("task#p-race", 100)).await.unwrap(), Claim::Completed, "a completion is never released");

    assert_eq!(store.claim(who("task#p-crashed", 101)).await.unwrap(), Claim::fresh());
    // The refused claim tells how long the one in progress still holds, from the item
    // it found: no second read.
    match store.claim(who("task#p-crashed", 102)).await.unwrap() {
        Claim::InProgress { lease_left: Some(left) } => {
            assert!(left > Duration::ZERO && left <= Duration::from_secs(2), "{left:?}")
        }
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        store.claim(who("task#p-crashed", 102)).await.unwrap(),
        Claim::fresh(),
        "an abandoned claim expires with its lease"
    );
    assert_eq!(
        store.release(who("task#p-crashed", 101), &Done::new(), None).await.unwrap_err().kind,
        StoreErrorKind::Lost,
        "the attempt that outlived its lease cannot release what another holds now"
    );

    assert_eq!(store.claim(who("task#p-failed", 103)).await.unwrap(), Claim::fresh());
    store.release(who("task#p-failed", 103), &Done::new(), None).await.unwrap();
    assert_eq!(
        store.claim(who("task#p-failed", 104)).await.unwrap(),
        Claim::fresh(),
        "a failed attempt releases its claim"
    );

    // Steps recorded while holding the claim, or kept by a release, are found by the
    // next attempt, and a crash after that claim keeps them too.
    let handler: Done = ["handler".to_owned()].into();
    let both: Done = ["handler".to_owned(), "http".to_owned()].into();
    assert_eq!(store.claim(who("task#p-partial", 103)).await.unwrap(), Claim::fresh());
    store.record(who("task#p-partial", 103), &handler, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.claim(who("task#p-partial", 104)).await.unwrap(), Claim::Acquired { done: handler.clone() });
    store.release(who("task#p-partial", 104), &both, None).await.unwrap();
    assert_eq!(store.claim(who("task#p-partial", 105)).await.unwrap(), Claim::Acquired { done: both.clone() });
    assert!(matches!(
        store.claim(who("task#p-partial", 106)).await.unwrap(),
        Claim::InProgress { lease_left: Some(_) }
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.claim(who("task#p-partial", 106)).await.unwrap(), Claim::Acquired { done: both });
    store.complete(who("task#p-partial", 106), None).await.unwrap();
    assert_eq!(store.claim(who("task#p-partial", 107)).await.unwrap(), Claim::Completed);
}

/// Counts the operations a client sends.
#[derive(Debug, Default, Clone)]
struct Calls(Arc<std::sync::atomic::AtomicUsize>);

impl aws_sdk_dynamodb::config::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }
    fn read_before_execution(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef<'_>,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_refused_claim_reads_what_it_found_in_the_same_call() {
    let ddb = dynamodb().await;
    let table = unique("one-call");
    DynamoStore::create_table_if_missing(&ddb, &table).await.unwrap();
    let calls = Calls::default();
    let counted = aws_sdk_dynamodb::Client::from_conf(ddb.config().to_builder().interceptor(calls.clone()).build());
    let store = DynamoStore::new(counted, &table, Duration::from_secs(60), common::LONG_MEMORY);
    let count = || calls.0.load(std::sync::atomic::Ordering::SeqCst);

    assert_eq!(store.claim(who("task#p-1", 103)).await.unwrap(), Claim::fresh());
    let before = count();
    assert!(matches!(store.claim(who("task#p-1", 104)).await.unwrap(), Claim::InProgress { lease_left: Some(_) }));
    assert_eq!(count() - before, 1, "an in-progress claim is told by the refused write itself");
    store.complete(who("task#p-1", 103), None).await.unwrap();
    let before = count();
    assert_eq!(store.claim(who("task#p-1", 104)).await.unwrap(), Claim::Completed);
    assert_eq!(count() - before, 1, "so is a completed one: no GetItem after the refusal");
}

/// Fails retryably unless the step is `Delete`, which fails permanently.
struct Failing;

impl Handler for Failing {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        match event.step_name.as_deref() {
            Some("Delete") => Err(HandlerError::permanent("deletes cannot be applied")),
            _ => Err(HandlerError::retry("downstream is down")),
        }
    }
}

async fn publish_task(client: &aws_sdk_sqs::Client, queues: &Queues, payload_id: &str, step: &str) {
    let body = format!(
        r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":{},"StepName":"{step}"}}"#,
        cf_webhooks::ack::now_ms()
    );
    client
        .send_message()
        .queue_url(queues.sources.get(Route::Group(EventGroup::Task)))
        .message_body(body)
        .send()
        .await
        .unwrap();
}

fn spawn_task_consumer(
    client: &aws_sdk_sqs::Client,
    queues: &Queues,
    lines: LineSink,
) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let route = Route::Group(EventGroup::Task);
    let dead_letters = SqsDeadLetters::new(client.clone(), queues.dead_letters[&route].clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let consumer = tokio::spawn(consume_sqs(
        client.clone(),
        queues.sources.get(route).to_owned(),
        Arc::new(Runner::new(
            Failing,
            memory_store(Duration::from_secs(900), cf_webhooks::config::DEFAULT_IDEMPOTENCY_TTL),
            dead_letters,
        )),
        DevOptions::default(),
        lines,
        stopped,
    ));
    (stop, consumer)
}

#[tokio::test]
async fn a_record_that_always_fails_reaches_the_dead_letter_queue_after_five_receives_and_redrive_brings_it_back() {
    let client = sqs().await;
    let prefix = unique("fails");
    let queues = ensure_queues(&client, &prefix, QueueType::Standard, 5, Duration::from_secs(1)).await.unwrap();
    let route = Route::Group(EventGroup::Task);
    let (sink, lines) = collecting_sink();
    let (stop, consumer) = spawn_task_consumer(&client, &queues, sink);

    publish_task(&client, &queues, "p-always-fails", "Retouch").await;
    let dlq = queues.dead_letters[&route].clone();
    wait_for("the dead-letter queue", Duration::from_secs(60), async || depth(&client, &dlq).await.unwrap() == 1).await;
    stop.send(true).unwrap();
    consumer.await.unwrap();

    let outcomes: Vec<String> =
        lines.lock().unwrap().iter().map(|l| l["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "failed", "failed", "dead-lettered"]);
    let source = queues.sources.get(route).to_owned();
    assert_eq!(depth(&client, &source).await.unwrap(), 0);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cfwh"))
        .args(["redrive", "--group", "task", "--sqs-endpoint", &moto(), "--queue-prefix", &prefix])
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout} {stderr}");
    assert!(stdout.starts_with("moved 1 message(s) from "), "{stdout}");
    // moto has no StartMessageMoveTask: the command falls back to moving one by one.
    assert!(stderr.contains("does not offer StartMessageMoveTask") && stderr.contains("moving one by one"), "{stderr}");
    assert_eq!(depth(&client, &dlq).await.unwrap(), 0);
    let back = receive(&client, &source, 10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(back.len(), 1);
    assert!(back[0].body().unwrap().contains("p-always-fails"));
}

#[tokio::test]
async fn a_permanent_failure_reaches_the_dead_letter_queue_at_once_with_its_reason() {
    let client = sqs().await;
    let queues =
        ensure_queues(&client, &unique("permanent"), QueueType::Standard, 5, Duration::from_secs(30)).await.unwrap();
    let route = Route::Group(EventGroup::Task);
    let (sink, lines) = collecting_sink();
    let (stop, consumer) = spawn_task_consumer(&client, &queues, sink);

    publish_task(&client, &queues, "p-delete", "Delete").await;
    let dlq = queues.dead_letters[&route].clone();
    wait_for("the dead-letter queue", Duration::from_secs(20), async || depth(&client, &dlq).await.unwrap() == 1).await;
    stop.send(true).unwrap();
    consumer.await.unwrap();

    let outcomes: Vec<String> =
        lines.lock().unwrap().iter().map(|l| l["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["dead-lettered"], "one receive, no retry");
    assert_eq!(depth(&client, queues.sources.get(route)).await.unwrap(), 0, "deleted from the source queue");
    let dead = receive(&client, &dlq, 1, Duration::from_secs(1)).await.unwrap();
    let reason = dead[0].message_attributes().unwrap()["cf-reason"].string_value().unwrap().to_owned();
    assert!(reason.contains("deletes cannot be applied"), "{reason}");
}

#[tokio::test]
async fn redrive_moves_every_dead_letter_and_drops_the_reason() {
    let client = sqs().await;
    let queues =
        ensure_queues(&client, &unique("redrive"), QueueType::Standard, 5, Duration::from_secs(30)).await.unwrap();
    let route = Route::Group(EventGroup::Job);
    let (dlq, source) = (queues.dead_letters[&route].clone(), queues.sources.get(route).to_owned());
    for i in 0..23 {
        let reason = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value("broken")
            .build()
            .unwrap();
        client
            .send_message()
            .queue_url(&dlq)
            .message_body(format!("{{\"n\":{i}}}"))
            .message_attributes("cf-reason", reason)
            .send()
            .await
            .unwrap();
    }
    let mut progress = Vec::new();
    let moved = move_one_by_one(&client, &dlq, &source, |n| progress.push(n)).await.unwrap();
    assert_eq!(moved, 23);
    assert_eq!(progress, (1..=23).collect::<Vec<u64>>());
    assert_eq!(depth(&client, &dlq).await.unwrap(), 0);
    let back = receive(&client, &source, 10, Duration::from_secs(1)).await.unwrap();
    assert!(back.iter().all(|m| m.message_attributes().is_none_or(|a| !a.contains_key("cf-reason"))));
}

#[tokio::test]
async fn the_applied_version_moves_forward_only_and_is_written_before_the_claims_write() {
    let ddb = dynamodb().await;
    let table = unique("versions");
    DynamoStore::create_table_if_missing(&ddb, &table).await.unwrap();
    let store = DynamoStore::new(ddb.clone(), &table, Duration::from_secs(60), common::LONG_MEMORY);
    let subject = "task\u{2192}t-1\u{2192}progress";
    assert_eq!(store.applied_version(subject).await.unwrap(), None);
    let at = |at| Some(Version { subject, at });
    assert_eq!(store.claim(who("task#p-new", 103)).await.unwrap(), Claim::fresh());
    store.complete(who("task#p-new", 103), at(20)).await.unwrap();
    assert_eq!(store.applied_version(subject).await.unwrap(), Some(20));
    assert_eq!(store.claim(who("task#p-new", 104)).await.unwrap(), Claim::Completed);

    // An older event completed later (the guard was off, or raced): its completion is
    // written, the version does not move back.
    assert_eq!(store.claim(who("task#p-old", 103)).await.unwrap(), Claim::fresh());
    store.complete(who("task#p-old", 103), at(10)).await.unwrap();
    assert_eq!(store.applied_version(subject).await.unwrap(), Some(20));
    assert_eq!(store.claim(who("task#p-old", 104)).await.unwrap(), Claim::Completed);
    // Recording the handler's step raises it, and so does a release (the handler applied
    // the event, a destination failed): neither waits for the completion.
    assert_eq!(store.claim(who("task#p-newer", 103)).await.unwrap(), Claim::fresh());
    store.record(who("task#p-newer", 103), &["handler".to_owned()].into(), at(30)).await.unwrap();
    assert_eq!(store.applied_version(subject).await.unwrap(), Some(30));
    assert_eq!(store.claim(who("task#p-newest", 103)).await.unwrap(), Claim::fresh());
    store.release(who("task#p-newest", 103), &["handler".to_owned()].into(), at(40)).await.unwrap();
    assert_eq!(store.applied_version(subject).await.unwrap(), Some(40));
    // The version goes first, in a write of its own: an attempt whose claim was taken
    // over after its lease (its handler applied the event) still raises it, and its
    // claim's write is refused. A later attempt finds the event stale, never older ones
    // applied after it.
    assert_eq!(store.complete(who("task#p-none", 103), at(50)).await.unwrap_err().kind, StoreErrorKind::Lost);
    assert_eq!(store.applied_version(subject).await.unwrap(), Some(50));

    // The version is kept for good (a replay of any archived span must find it); the
    // completion expires with the idempotency TTL.
    let item = |key: &str| {
        let (ddb, table) = (ddb.clone(), table.clone());
        let key = key.to_owned();
        async move {
            let found = ddb
                .get_item()
                .table_name(table)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key))
                .send()
                .await
                .unwrap();
            found.item().cloned().unwrap()
        }
    };
    assert!(!item(subject).await.contains_key(cf_webhooks::aws::dynamodb::TTL_ATTRIBUTE));
    assert!(item("task#p-newer").await.contains_key(cf_webhooks::aws::dynamodb::TTL_ATTRIBUTE));
}

#[tokio::test]
async fn fifo_over_sqs_and_dynamodb_applies_one_entitys_shuffled_events_in_order_and_skips_the_stale() {
    let client = sqs().await;
    let queues = ensure_queues(&client, &unique("order"), QueueType::Fifo, 5, Duration::from_secs(2)).await.unwrap();
    assert!(queues.sources.get(Route::Group(EventGroup::Task)).ends_with("-task.fifo"));
    let table = unique("order-idem");
    let ddb = dynamodb().await;
    DynamoStore::create_table_if_missing(&ddb, &table).await.unwrap();
    let store = Arc::new(DynamoStore::new(ddb, &table, Duration::from_secs(60), common::LONG_MEMORY));
    let (sink, lines) = collecting_sink();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = Backend::Sqs { client: client.clone(), consumer_client: client.clone(), queues };
    let options = DevOptions { queue_type: QueueType::Fifo, ..DevOptions::default() };
    let dev = Dev::start(listener, testkit::config(), options, sink, backend, store).unwrap();
    common::send_shuffled(&format!("http://{}/", dev.addr), "t-order").await;
    // The FIFO queue drops the second p-6 itself (same deduplication ID within 5 minutes).
    let all = common::SHUFFLED.len() - 1;
    wait_for("every line", Duration::from_secs(30), async || lines.lock().unwrap().len() >= all).await;
    dev.drain().await.unwrap();
    common::check_shuffled(&lines.lock().unwrap(), true);
}

/// Records the `PayloadId`s it applies; fails `fail_once` on its first delivery.
struct Recording {
    applied: Arc<std::sync::Mutex<Vec<String>>>,
    fail_once: &'static str,
}

impl Handler for Recording {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, ctx: &Context<'_>) -> Result<(), HandlerError> {
        let payload_id = event.envelope.payload_id.clone();
        if payload_id == self.fail_once && ctx.receive_count == 1 {
            return Err(HandlerError::retry("downstream is down"));
        }
        self.applied.lock().unwrap().push(payload_id);
        Ok(())
    }
}

#[tokio::test]
async fn in_a_fifo_batch_one_entitys_failure_holds_back_its_later_records_in_order_and_no_other() {
    use cf_webhooks::consumer::Record;
    use cf_webhooks::message::{Attributes, Body, Message};
    let client = sqs().await;
    let queues =
        ensure_queues(&client, &unique("fifo-batch"), QueueType::Fifo, 5, Duration::from_secs(1)).await.unwrap();
    let route = Route::Group(EventGroup::Task);
    let url = queues.sources.get(route).to_owned();
    let sent = [("a-1", "t-a"), ("b-1", "t-b"), ("a-2", "t-a"), ("b-2", "t-b"), ("b-3", "t-b")];
    for (n, (payload_id, task)) in sent.iter().enumerate() {
        let body = common::progress_event(task, payload_id, cf_webhooks::ack::now_ms() - 60_000 + n as i64);
        let message = Message {
            route,
            body: Body::Raw(body.into()),
            attributes: Attributes {
                event_group: Some(EventGroup::Task),
                payload_id: Some((*payload_id).to_owned()),
                ..Attributes::default()
            },
            fifo_group_id: Some((*task).to_owned()),
            dedup_id: Some((*payload_id).to_owned()),
            trace_header: None,
        };
        cf_webhooks::aws::sqs::send_to(&client, &url, message).await.unwrap();
    }
    let applied = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = Recording { applied: applied.clone(), fail_once: "b-1" };
    let dead_letters = SqsDeadLetters::new(client.clone(), queues.dead_letters[&route].clone());
    let runner = Runner::new(
        handler,
        memory_store(Duration::from_secs(60), cf_webhooks::config::DEFAULT_IDEMPOTENCY_TTL),
        dead_letters,
    );
    let payload = |r: &cf_webhooks::consumer::RecordReport| r.payload_id.clone().unwrap();

    let batch = receive(&client, &url, 10, Duration::from_secs(1)).await.unwrap();
    let records: Vec<Record> = batch.iter().map(Record::from).collect();
    assert_eq!(records.len(), 5, "both entities in one batch");
    assert_eq!(records[1].message_group.as_deref(), Some("t-b"));
    let report = runner.run(&records).await;
    let outcomes: Vec<(String, &str)> = report.records.iter().map(|r| (payload(r), r.outcome.word())).collect();
    let expected =
        [("a-1", "processed"), ("b-1", "failed"), ("a-2", "processed"), ("b-2", "failed"), ("b-3", "failed")];
    assert_eq!(outcomes, expected.map(|(p, o)| (p.to_owned(), o)));
    let done: Vec<String> = batch
        .iter()
        .zip(&report.records)
        .filter(|(_, r)| !r.retry())
        .filter_map(|(m, _)| m.receipt_handle().map(str::to_owned))
        .collect();
    cfwh::aws::delete(&client, &url, &done).await.unwrap();
    assert_eq!(*applied.lock().unwrap(), ["a-1", "a-2"], "the other entity went on; b-2 and b-3 never ran");

    // After the visibility timeout, the failed entity comes back in order, the way a
    // consumer polls: receive, run, delete what is done.
    let mut retried = Vec::new();
    wait_for("the retried records", Duration::from_secs(15), async || {
        let batch = receive(&client, &url, 10, Duration::from_secs(1)).await.unwrap();
        let records: Vec<Record> = batch.iter().map(Record::from).collect();
        let report = runner.run(&records).await;
        let done: Vec<String> = batch
            .iter()
            .zip(&report.records)
            .filter(|(_, r)| !r.retry())
            .filter_map(|(m, _)| m.receipt_handle().map(str::to_owned))
            .collect();
        cfwh::aws::delete(&client, &url, &done).await.unwrap();
        retried
            .extend(report.records.iter().zip(&records).map(|(r, m)| (payload(r), r.outcome.word(), m.receive_count)));
        applied.lock().unwrap().len() == 5
    })
    .await;
    let expected = [("b-1", "processed", 2), ("b-2", "processed", 2), ("b-3", "processed", 2)];
    assert_eq!(retried, expected.map(|(p, o, n)| (p.to_owned(), o, n)));
    assert_eq!(*applied.lock().unwrap(), ["a-1", "a-2", "b-1", "b-2", "b-3"]);
}

fn cfwh(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cfwh")).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn moving_to_fifo_drains_the_old_queues_into_the_new_ones_grouped_by_entity() {
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let client = sqs().await;
    let prefix = unique("move");
    let route = Route::Group(EventGroup::Task);
    let old = ensure_queues(&client, &prefix, QueueType::Standard, 5, Duration::from_secs(30)).await.unwrap();
    let (old_source, old_dlq) = (old.sources.get(route).to_owned(), old.dead_letters[&route].clone());
    for (url, payload_id, task) in [(&old_source, "p-1", "t-1"), (&old_source, "p-2", "t-2"), (&old_dlq, "p-3", "t-1")]
    {
        let reason = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value("broken")
            .build()
            .unwrap();
        client
            .send_message()
            .queue_url(url)
            .message_body(common::progress_event(task, payload_id, 1_000))
            .message_attributes("cf-reason", reason)
            .send()
            .await
            .unwrap();
    }
    // The switch: the stack now has FIFO queues beside the old ones.
    let new = ensure_queues(&client, &prefix, QueueType::Fifo, 5, Duration::from_secs(30)).await.unwrap();
    let new_source = new.sources.get(route).to_owned();
    let endpoint = moto();
    let base = ["redrive", "--group", "task", "--sqs-endpoint", &endpoint, "--queue-prefix", &prefix];

    let (ok, _, stderr) = cfwh(&base);
    assert!(!ok && stderr.contains("both") && stderr.contains("--queue-type"), "{stderr}");
    let old_dlq_name = format!("{prefix}-task-dlq");
    for from in [format!("{prefix}-task"), old_dlq_name] {
        let (ok, _, stderr) = cfwh(&[&base[..], &["--queue-type", "fifo", "--from", &from]].concat());
        assert!(ok, "{stderr}");
        assert!(stderr.contains("moved") && stderr.contains(&new_source), "{stderr}");
    }
    assert_eq!(depth(&client, &old_source).await.unwrap(), 0);
    assert_eq!(depth(&client, &old_dlq).await.unwrap(), 0);

    let moved = client
        .receive_message()
        .queue_url(&new_source)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = moved
        .messages()
        .iter()
        .map(|m| {
            let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            let group = m.attributes().unwrap()[&MessageSystemAttributeName::MessageGroupId].clone();
            assert!(m.message_attributes().is_none_or(|a| !a.contains_key("cf-reason")), "the reason is dropped");
            (body["PayloadId"].as_str().unwrap().to_owned(), group)
        })
        .collect();
    got.sort();
    let expected = [("p-1", "t-1"), ("p-2", "t-2"), ("p-3", "t-1")].map(|(p, g)| (p.to_owned(), g.to_owned()));
    assert_eq!(got, expected, "every message moved, each grouped by its entity");
}

/// Applies every task event.
struct Applies;

impl Handler for Applies {
    type Event = TaskEvent;
    async fn handle(&self, _: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A task queue (with its dead-letter queue) redriving after `max_receives`, one-second
/// visibility, and a DynamoDB store with `lease` and `memory`, all named after `name`.
async fn task_queue_and_store(
    name: &str,
    max_receives: u32,
    lease: Duration,
    memory: Duration,
) -> (aws_sdk_sqs::Client, String, String, Arc<DynamoStore>) {
    let client = sqs().await;
    let queues =
        ensure_queues(&client, &unique(name), QueueType::Standard, max_receives, Duration::from_secs(1)).await.unwrap();
    let route = Route::Group(EventGroup::Task);
    let (source, dlq) = (queues.sources.get(route).to_owned(), queues.dead_letters[&route].clone());
    let table = unique(&format!("{name}-idem"));
    let ddb = dynamodb().await;
    DynamoStore::create_table_if_missing(&ddb, &table).await.unwrap();
    (client, source, dlq, Arc::new(DynamoStore::new(ddb, &table, lease, memory)))
}

#[tokio::test]
async fn a_dead_letter_redriven_after_the_idempotency_memory_is_expired_not_applied_again() {
    // A one-hour memory, and an event of two hours ago: whether it was applied and then
    // forgotten cannot be told.
    let (client, source, dlq, store) =
        task_queue_and_store("expired", 5, Duration::from_secs(60), Duration::from_secs(3600)).await;
    let old = common::progress_event("t-old", "p-old", cf_webhooks::ack::now_ms() - 2 * 3_600_000);
    client.send_message().queue_url(&source).message_body(&old).send().await.unwrap();

    let run_once = async || {
        let (sink, lines) = collecting_sink();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let dead_letters = SqsDeadLetters::new(client.clone(), dlq.clone());
        let runner = Arc::new(Runner::new(Applies, store.clone(), dead_letters));
        let consumer =
            tokio::spawn(consume_sqs(client.clone(), source.clone(), runner, DevOptions::default(), sink, stopped));
        wait_for("a line", Duration::from_secs(20), async || !lines.lock().unwrap().is_empty()).await;
        stop.send(true).unwrap();
        consumer.await.unwrap();
        let line = lines.lock().unwrap()[0].clone();
        line
    };
    let first = run_once().await;
    assert_eq!(first["outcome"], "expired", "{first}");
    assert!(first["reason"].as_str().unwrap().starts_with("expired: "), "{first}");
    assert_eq!(depth(&client, &dlq).await.unwrap(), 1);

    // Redriven (SQS resets the message's age; its signed time stays): expired again.
    let moved = move_one_by_one(&client, &dlq, &source, |_| {}).await.unwrap();
    assert_eq!(moved, 1);
    let again = run_once().await;
    assert_eq!(again["outcome"], "expired", "{again}");
    assert_eq!(depth(&client, &dlq).await.unwrap(), 1, "back in the dead-letter queue, never applied");
    assert_eq!(depth(&client, &source).await.unwrap(), 0);
}

#[tokio::test]
async fn a_record_whose_claim_a_crashed_consumer_holds_waits_for_the_lease_instead_of_being_dead_lettered() {
    // Three deliveries, one second apart: a record that counted each "in progress" as a
    // failure would be dead-lettered within three seconds, long before the lease ends.
    // With three receives, the copy's one planned wait covers the lease (and a second).
    let (client, source, dlq, store) =
        task_queue_and_store("crashed", 3, Duration::from_secs(6), common::LONG_MEMORY).await;
    // The consumer that claimed it died (SIGKILL, out of memory): its claim holds 6 s.
    assert_eq!(store.claim(who("task#p-crashed", 101)).await.unwrap(), Claim::fresh());
    let body = common::progress_event("t-crashed", "p-crashed", cf_webhooks::ack::now_ms());
    client.send_message().queue_url(&source).message_body(&body).send().await.unwrap();

    let (sink, lines) = collecting_sink();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let dead_letters = SqsDeadLetters::new(client.clone(), dlq.clone());
    let runner = Arc::new(Runner::new(Applies, store, dead_letters).with_max_receives(3));
    let options = DevOptions { retry_delay: Duration::from_secs(1), max_receives: 3, ..DevOptions::default() };
    let consumer = tokio::spawn(consume_sqs(client.clone(), source.clone(), runner, options, sink, stopped));
    let processed = || lines.lock().unwrap().iter().any(|l| l["outcome"] == "processed");
    wait_for("the record applied after the lease", Duration::from_secs(30), async || processed()).await;
    stop.send(true).unwrap();
    consumer.await.unwrap();

    let outcomes: Vec<String> =
        lines.lock().unwrap().iter().map(|l| l["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["waiting", "processed"], "one wait for the lease, then applied");
    let waited = lines.lock().unwrap()[0]["reason"].as_str().unwrap().to_owned();
    assert!(waited.contains("its claim ends in"), "{waited}");
    assert_eq!(depth(&client, &dlq).await.unwrap(), 0, "never dead-lettered");
}
