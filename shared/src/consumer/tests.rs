//! The batch runner against the contract: each record on its own, exactly the right
//! `batchItemFailures`.

use base64::Engine as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::archive::{Archive, Stored};
use crate::destination::{Destination, Outgoing, Verdict};
use crate::events::TaskEvent;
use crate::message::attr;

/// Behaves according to the task's `StepName`: `ok`, `retry`, `permanent` or `panic`.
#[derive(Default)]
struct Scripted {
    applied: AtomicUsize,
}

impl Handler for Scripted {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, ctx: &Context<'_>) -> Result<(), HandlerError> {
        assert!(ctx.raw.contains(&event.envelope.payload_id), "the raw JSON comes along");
        match event.step_name.as_deref() {
            Some("retry") => Err(HandlerError::retry("downstream is down")),
            Some("permanent") => Err(HandlerError::permanent("no such product downstream")),
            Some("panic") => panic!("handler bug"),
            Some("io") => Err(std::io::Error::other("disk full"))?,
            Some("slow") => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            _ => {
                self.applied.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    }
}

#[derive(Default, Clone)]
struct CollectingDlq(std::sync::Arc<Mutex<Vec<(EventGroup, String, String)>>>);

#[async_trait::async_trait]
impl DeadLetterSink for CollectingDlq {
    async fn dead_letter(&self, group: EventGroup, record: &Record, reason: &str) -> Result<(), DeadLetterError> {
        self.0.lock().unwrap().push((group, record.message_id.clone(), reason.to_owned()));
        Ok(())
    }
}

fn record(id: &str, payload_id: &str, step: &str) -> Record {
    Record {
        message_id: id.to_owned(),
        body: format!(
            r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1,"StepName":"{step}"}}"#
        ),
        receive_count: 1,
        ..Record::default()
    }
}

/// The bodies here carry fixed times (1970, 2020): a memory longer than their age, so
/// that only the tests of expiry meet it.
const LONG_MEMORY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn store() -> MemoryStore {
    MemoryStore::new(Duration::from_secs(60), LONG_MEMORY)
}

fn mixed_batch() -> Vec<Record> {
    vec![
        record("m-good", "p-good", "ok"),
        record("m-dup", "p-dup", "ok"),
        record("m-retry", "p-retry", "retry"),
        record("m-permanent", "p-permanent", "permanent"),
        Record { message_id: "m-undecodable".into(), body: "{not json".into(), receive_count: 1, ..Record::default() },
        record("m-panic", "p-panic", "panic"),
    ]
}

fn outcomes(report: &BatchReport) -> Vec<(&str, &str)> {
    report.records.iter().map(|r| (r.message_id.as_str(), r.outcome.word())).collect()
}

#[tokio::test]
async fn a_mixed_batch_with_a_dead_letter_queue() {
    let store = store();
    store.claim(Claimant { key: "task#p-dup", owner: Owner(7), event_ms: 0 }).await.unwrap();
    store.complete(Claimant { key: "task#p-dup", owner: Owner(7), event_ms: 0 }, None).await.unwrap();
    let dead_letters = CollectingDlq::default();
    let runner = Runner::new(Scripted::default(), store, dead_letters.clone());

    let report = runner.run(&mixed_batch()).await;

    assert_eq!(report.failures(), ["m-retry", "m-panic"]);
    assert_eq!(
        outcomes(&report),
        [
            ("m-good", "processed"),
            ("m-dup", "duplicate"),
            ("m-retry", "failed"),
            ("m-permanent", "dead-lettered"),
            ("m-undecodable", "dead-lettered"),
            ("m-panic", "failed"),
        ]
    );
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 1);
    let mut dlq = dead_letters.0.lock().unwrap().clone();
    dlq.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(dlq.len(), 2);
    assert_eq!((dlq[0].0, dlq[0].1.as_str()), (EventGroup::Task, "m-permanent"));
    assert!(dlq[0].2.contains("no such product"), "{}", dlq[0].2);
    assert!(dlq[1].2.contains("cannot decode a task event"), "{}", dlq[1].2);
    assert!(report.records[5].reason.as_deref().unwrap().contains("handler panicked: handler bug"));
}

#[tokio::test]
async fn a_mixed_batch_without_a_dead_letter_queue_retries_permanent_failures() {
    let store = store();
    store.claim(Claimant { key: "task#p-dup", owner: Owner(7), event_ms: 0 }).await.unwrap();
    store.complete(Claimant { key: "task#p-dup", owner: Owner(7), event_ms: 0 }, None).await.unwrap();
    let runner = Runner::new(Scripted::default(), store, NoDeadLetters);

    let report = runner.run(&mixed_batch()).await;

    assert_eq!(report.failures(), ["m-retry", "m-permanent", "m-undecodable", "m-panic"]);
    assert!(matches!(report.records[3].outcome, Outcome::Failed { permanent: true, .. }));
    assert!(matches!(report.records[2].outcome, Outcome::Failed { permanent: false, .. }));
}

#[tokio::test]
async fn a_failed_attempt_releases_its_claim_and_a_success_is_applied_once() {
    let runner = Runner::new(Scripted::default(), store(), NoDeadLetters);
    let failing = record("m1", "p-1", "retry");
    assert_eq!(runner.run(&[failing]).await.failures(), ["m1"]);
    // The retry of the same payload (now succeeding) may claim it again.
    let ok = record("m1", "p-1", "ok");
    assert_eq!(outcomes(&runner.run(std::slice::from_ref(&ok)).await), [("m1", "processed")]);
    assert_eq!(outcomes(&runner.run(&[ok.clone(), ok]).await), [("m1", "duplicate"), ("m1", "duplicate")]);
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn question_mark_errors_are_retryable_and_the_same_payload_in_one_batch_is_applied_once() {
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default());
    let report = runner.run(&[record("a", "p-io", "io")]).await;
    assert_eq!(report.failures(), ["a"]);
    assert!(report.records[0].reason.as_deref().unwrap().contains("disk full"));

    let report = runner.run(&[record("x", "p-same", "ok"), record("y", "p-same", "ok")]).await;
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 1);
    let words: Vec<&str> = report.records.iter().map(|r| r.outcome.word()).collect();
    assert!(words == ["processed", "failed"] || words == ["processed", "duplicate"], "{words:?}");
}

#[tokio::test]
async fn base64_bodies_are_decoded_and_wrong_groups_dead_lettered() {
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default());
    let plain = record("b", "p-b64", "ok");
    let encoded = Record {
        body: base64::engine::general_purpose::STANDARD.encode(&plain.body),
        attributes: vec![(attr::BODY_ENCODING.into(), "base64".into())],
        ..plain
    };
    let product = Record {
        message_id: "wrong".into(),
        body: include_str!("../../../events/product.json").into(),
        receive_count: 1,
        ..Record::default()
    };
    let bad_b64 = Record {
        message_id: "bad".into(),
        body: "!!".into(),
        attributes: vec![(attr::BODY_ENCODING.into(), "base64".into())],
        ..Record::default()
    };
    let report = runner.run(&[encoded, product, bad_b64]).await;
    assert_eq!(outcomes(&report), [("b", "processed"), ("wrong", "dead-lettered"), ("bad", "dead-lettered")]);
    assert!(report.records[1].reason.as_deref().unwrap().contains("a product event arrived on the task queue"));
    assert_eq!(report.records[1].payload_id.as_deref(), Some("c02f0f73-1706-4973-9a4d-38007d6685e9"));
}

#[test]
fn report_lines_carry_the_contract_fields() {
    let report = RecordReport {
        payload_id: Some("p".into()),
        event_group: EventGroup::WorkUnit,
        action: Some("StatusChanged".into()),
        outcome: Outcome::Processed,
        reason: None,
        message_id: "m".into(),
        attempt: 1,
        replay_run: None,
        destinations: Default::default(),
        trace_id: None,
        drift: Vec::new(),
    };
    let line: serde_json::Value = serde_json::from_str(&report.to_json_line()).unwrap();
    assert_eq!(line["payload_id"], "p");
    assert_eq!(line["event_group"], "work-unit");
    assert_eq!(line["action"], "StatusChanged");
    assert_eq!(line["outcome"], "processed");
}

#[tokio::test(start_paused = true)]
async fn a_handler_past_its_time_fails_its_record_only_and_can_run_again() {
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let report =
        runner.run_until(&[record("slow", "p-slow", "slow"), record("ok", "p-ok", "ok")], Some(deadline)).await;
    assert_eq!(outcomes(&report), [("slow", "failed"), ("ok", "processed")]);
    assert!(report.records[0].reason.as_deref().unwrap().contains("ran past its time"));
    assert_eq!(report.failures(), ["slow"]);
    // The claim was released: the redelivery is not blocked by "in progress".
    let again = runner.run(&[record("slow", "p-slow", "ok")]).await;
    assert_eq!(outcomes(&again), [("slow", "processed")]);
}

/// A destination that answers from a script of verdicts per `PayloadId` (the last one
/// repeats) and counts what it was handed, call by call.
#[derive(Clone)]
struct ScriptedDestination {
    name: &'static str,
    script: std::sync::Arc<Mutex<std::collections::HashMap<String, Vec<Verdict>>>>,
    calls: std::sync::Arc<Mutex<Vec<Vec<String>>>>,
}

impl ScriptedDestination {
    fn new(name: &'static str) -> Self {
        Self { name, script: Default::default(), calls: Default::default() }
    }
    fn answer(self, payload_id: &str, verdicts: &[Verdict]) -> Self {
        self.script.lock().unwrap().insert(payload_id.to_owned(), verdicts.to_vec());
        self
    }
    fn handed(&self) -> Vec<String> {
        self.calls.lock().unwrap().concat()
    }
}

#[async_trait::async_trait]
impl Destination for ScriptedDestination {
    fn name(&self) -> &'static str {
        self.name
    }
    async fn deliver(&self, events: &[Outgoing<'_>]) -> Vec<Verdict> {
        let mut key = |e: &Outgoing<'_>| match e.replay_run {
            Some(run) => format!("{}:{run}", e.payload_id),
            None => e.payload_id.to_owned(),
        };
        self.calls.lock().unwrap().push(events.iter().map(&mut key).collect());
        let mut script = self.script.lock().unwrap();
        events
            .iter()
            .map(|e| match script.get_mut(e.payload_id) {
                Some(list) if list.len() > 1 => list.remove(0),
                Some(list) => list[0].clone(),
                None => Verdict::Delivered,
            })
            .collect()
    }
}

fn steps(report: &RecordReport) -> Vec<(&str, Step)> {
    report.destinations.iter().map(|(k, v)| (*k, *v)).collect()
}

#[tokio::test]
async fn a_failed_destination_is_retried_alone_and_nothing_else_repeats() {
    let eventbridge = ScriptedDestination::new("eventbridge");
    let http = ScriptedDestination::new("http").answer("p-1", &[Verdict::retry("HTTP 503: busy"), Verdict::Delivered]);
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default())
        .with_destination(std::sync::Arc::new(eventbridge.clone()))
        .with_destination(std::sync::Arc::new(http.clone()));
    let batch = [record("m-1", "p-1", "ok"), record("m-2", "p-2", "ok")];

    let first = runner.run(&batch).await;
    assert_eq!(outcomes(&first), [("m-1", "failed"), ("m-2", "processed")]);
    assert_eq!(first.records[0].reason.as_deref(), Some("http: HTTP 503: busy"));
    assert_eq!(steps(&first.records[0]), [("eventbridge", Step::Delivered), ("http", Step::Failed)]);
    assert_eq!(
        eventbridge.calls.lock().unwrap().clone(),
        [vec!["p-1".to_owned(), "p-2".to_owned()]],
        "one call for the batch"
    );

    let again = runner.run(&batch[..1]).await;
    assert_eq!(outcomes(&again), [("m-1", "processed")]);
    assert_eq!(steps(&again.records[0]), [("eventbridge", Step::Earlier), ("http", Step::Delivered)]);
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 2, "the handler ran once per event");
    assert_eq!(eventbridge.handed(), ["p-1", "p-2"], "EventBridge got each event once");
    assert_eq!(http.handed(), ["p-1", "p-2", "p-1"], "only the failed forward was repeated");

    let duplicate = runner.run(&batch[..1]).await;
    assert_eq!(outcomes(&duplicate), [("m-1", "duplicate")]);
    assert_eq!(http.handed().len(), 3);
}

#[tokio::test]
async fn destinations_follow_the_handler_and_a_failing_handler_reaches_none() {
    let http = ScriptedDestination::new("http");
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default())
        .with_destination(std::sync::Arc::new(http.clone()));
    let report = runner.run(&[record("m-1", "p-1", "retry")]).await;
    assert_eq!(outcomes(&report), [("m-1", "failed")]);
    assert_eq!(report.records[0].reason.as_deref(), Some("downstream is down"));
    assert_eq!(steps(&report.records[0]), [], "nothing applied, nothing delivered");
    assert!(http.handed().is_empty());
    let report = runner.run(&[record("m-1", "p-1", "ok")]).await;
    assert_eq!(outcomes(&report), [("m-1", "processed")]);
    assert_eq!(http.handed(), ["p-1"], "delivered once the handler applied it");
}

#[tokio::test]
async fn a_destination_refusing_a_newer_event_never_lets_an_older_one_of_its_facet_be_applied() {
    // The failing-destination case: the newer event is applied and its forward refused
    // (dead-lettered); the facet's version was written when the handler applied it, so
    // the older event that arrives next is stale, not applied.
    let http =
        ScriptedDestination::new("http").answer("p-new", &[Verdict::Permanent { reason: "HTTP 400: refused".into() }]);
    let dead_letters = CollectingDlq::default();
    let runner = Runner::new(Scripted::default(), store(), dead_letters.clone())
        .with_destination(std::sync::Arc::new(http.clone()));
    let newer = task_at("m-new", "p-new", "StatusChanged", 2_000);
    let older = task_at("m-old", "p-old", "StatusChanged", 1_000);
    assert_eq!(outcomes(&runner.run(&[newer]).await), [("m-new", "dead-lettered")]);
    let report = runner.run(&[older]).await;
    assert_eq!(outcomes(&report), [("m-old", "stale")]);
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 1, "only the newer event was applied");
    assert_eq!(http.handed(), ["p-new"], "a stale event reaches no destination");
}

#[tokio::test]
async fn a_permanent_destination_failure_dead_letters_with_its_reason_and_retry_after_is_kept() {
    let http = ScriptedDestination::new("http")
        .answer("p-400", &[Verdict::Permanent { reason: "HTTP 400: bad field".into() }])
        .answer("p-429", &[Verdict::Retry { reason: "HTTP 429: ".into(), after: Some(Duration::from_secs(120)) }]);
    let dead_letters = CollectingDlq::default();
    let runner =
        Runner::new(Scripted::default(), store(), dead_letters.clone()).with_destination(std::sync::Arc::new(http));
    let report = runner.run(&[record("m-400", "p-400", "ok"), record("m-429", "p-429", "ok")]).await;
    assert_eq!(outcomes(&report), [("m-400", "dead-lettered"), ("m-429", "failed")]);
    let dlq = dead_letters.0.lock().unwrap().clone();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].2, "http: HTTP 400: bad field");
    assert!(
        matches!(report.records[1].outcome, Outcome::Failed { retry_after: Some(d), .. } if d == Duration::from_secs(120))
    );
}

#[tokio::test]
async fn a_replay_run_applies_an_event_once_more_and_once_only() {
    let http = ScriptedDestination::new("http");
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default())
        .with_destination(std::sync::Arc::new(http.clone()));
    let replayed = |run: &str| {
        let mut r = record("m-r", "p-1", "ok");
        r.attributes.push((attr::REPLAY_RUN.into(), run.to_owned()));
        r
    };
    let plain = runner.run(&[record("m-1", "p-1", "ok")]).await;
    let run_a = runner.run(&[replayed("a"), replayed("a")]).await;
    let run_a_again = runner.run(&[replayed("a")]).await;
    let run_b = runner.run(&[replayed("b")]).await;
    assert_eq!(outcomes(&plain), [("m-1", "processed")]);
    let words: Vec<_> = run_a.records.iter().map(|r| r.outcome.word()).collect();
    assert_eq!(words.iter().filter(|w| **w == "processed").count(), 1, "twice in one run, applied once: {words:?}");
    assert_eq!(outcomes(&run_a_again), [("m-r", "duplicate")]);
    assert_eq!(outcomes(&run_b), [("m-r", "processed")]);
    assert_eq!(run_b.records[0].replay_run.as_deref(), Some("b"));
    assert_eq!(http.handed(), ["p-1", "p-1:a", "p-1:b"], "once per run, and the destination sees the run");
}

#[derive(Clone, Default)]
struct MemoryArchive(std::sync::Arc<Mutex<std::collections::BTreeMap<String, Vec<u8>>>>);

#[async_trait::async_trait]
impl crate::archive::ArchiveStore for MemoryArchive {
    async fn put_once(
        &self,
        key: &str,
        body: &[u8],
        _: &[(&'static str, String)],
    ) -> Result<Stored, crate::archive::ArchiveError> {
        let mut objects = self.0.lock().unwrap();
        if objects.contains_key(key) {
            return Ok(Stored::Present);
        }
        objects.insert(key.to_owned(), body.to_vec());
        Ok(Stored::Written)
    }
}

#[tokio::test]
async fn every_record_is_archived_once_before_its_claim() {
    let objects = MemoryArchive::default();
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default())
        .with_archive(Archive::new(objects.clone(), "archive"));
    let first = runner.run(&[record("m-1", "p-1", "retry")]).await;
    assert_eq!(outcomes(&first), [("m-1", "failed")], "archived even though the handler failed");
    assert_eq!(steps(&first.records[0]), [("archive", Step::Archived)]);
    let dup = runner.run(&[record("m-2", "p-2", "ok"), record("m-3", "p-2", "ok")]).await;
    let archived: Vec<_> = dup.records.iter().map(|r| r.destinations["archive"]).collect();
    assert!(archived.contains(&Step::Archived) && archived.contains(&Step::Present), "{archived:?}");
    let keys: Vec<String> = objects.0.lock().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["archive/task/1970/01/01/1-p-1.json", "archive/task/1970/01/01/1-p-2.json"]);
}

#[tokio::test]
async fn an_event_the_typed_model_refuses_is_archived_before_it_is_dead_lettered() {
    let objects = MemoryArchive::default();
    let dead_letters = CollectingDlq::default();
    let runner = Runner::new(Scripted::default(), store(), dead_letters.clone())
        .with_archive(Archive::new(objects.clone(), "archive"));
    let odd = Record {
        message_id: "m-odd".into(),
        body: r#"{"PayloadId":"p-odd","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1,"Assignee":[1,2]}"#
            .into(),
        receive_count: 1,
        ..Record::default()
    };
    let report = runner.run(&[odd]).await;
    assert_eq!(outcomes(&report), [("m-odd", "dead-lettered")], "{report:?}");
    assert_eq!(steps(&report.records[0]), [("archive", Step::Archived)]);
    assert_eq!(objects.0.lock().unwrap().keys().cloned().collect::<Vec<_>>(), ["archive/task/1970/01/01/1-p-odd.json"]);
    assert_eq!(dead_letters.0.lock().unwrap().len(), 1);
}

fn task_at(id: &str, payload_id: &str, action: &str, at: i64) -> Record {
    Record {
        message_id: id.to_owned(),
        body: format!(
            r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"{action}","EventDatetimeUtc":{at},"TaskId":"t-1"}}"#
        ),
        receive_count: 1,
        ..Record::default()
    }
}

#[tokio::test]
async fn with_latest_a_late_event_never_overwrites_a_newer_one_of_its_facet() {
    // Latest is the default.
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default());
    let sequence = [
        task_at("m-3", "p-3", "Started", 3_000),
        task_at("m-1", "p-1", "Created", 1_000),
        task_at("m-5", "p-5", "Completed", 5_000),
        task_at("m-2", "p-2", "ReadyToWork", 2_000),
        task_at("m-5b", "p-5b", "Rejected", 5_000),
        task_at("m-a", "p-a", "Assigned", 1_500),
        task_at("m-1r", "p-1", "Created", 1_000),
    ];
    let mut seen = Vec::new();
    for record in &sequence {
        let report = runner.run(std::slice::from_ref(record)).await;
        seen.push((record.message_id.clone(), report.records[0].outcome.clone()));
    }
    let words: Vec<(&str, &str)> = seen.iter().map(|(id, o)| (id.as_str(), o.word())).collect();
    assert_eq!(
        words,
        [
            ("m-3", "processed"),
            ("m-1", "stale"),
            ("m-5", "processed"),
            ("m-2", "stale"),
            ("m-5b", "processed"),
            ("m-a", "processed"),
            ("m-1r", "duplicate"),
        ],
        "equal times are never stale; another facet (assignee) is not compared"
    );
    assert_eq!(seen[1].1, Outcome::Stale { newer: 3_000, version: 1_000 });
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 4, "applied in non-decreasing version order");

    let all = Runner::new(Scripted::default(), store(), CollectingDlq::default()).with_ordering(Order::All);
    for record in &sequence[..2] {
        assert_eq!(
            all.run(std::slice::from_ref(record)).await.records[0].outcome,
            Outcome::Processed,
            "all: as before"
        );
    }
}

#[tokio::test]
async fn in_a_fifo_batch_a_failure_holds_back_its_group_only_and_order_is_kept() {
    let runner = Runner::new(Scripted::default(), store(), CollectingDlq::default());
    let in_group = |id: &str, payload_id: &str, step: &str, group: &str| {
        let mut r = record(id, payload_id, step);
        r.message_group = Some(group.to_owned());
        r
    };
    let batch = [
        in_group("a-1", "pa-1", "ok", "entity-a"),
        in_group("b-1", "pb-1", "retry", "entity-b"),
        in_group("a-2", "pa-2", "ok", "entity-a"),
        in_group("b-2", "pb-2", "ok", "entity-b"),
        in_group("b-3", "pb-3", "ok", "entity-b"),
    ];
    let report = runner.run(&batch).await;
    assert_eq!(
        outcomes(&report),
        [("a-1", "processed"), ("b-1", "failed"), ("a-2", "processed"), ("b-2", "failed"), ("b-3", "failed")]
    );
    assert!(report.records[3]
        .reason
        .as_deref()
        .unwrap()
        .contains("an earlier record of its message group failed (b-1)"));
    assert_eq!(report.failures(), ["b-1", "b-2", "b-3"], "the failed group comes back whole, in order");
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 2, "b-2 and b-3 never ran");
}

#[tokio::test]
async fn an_event_older_than_the_idempotency_memory_is_expired_unless_a_replay_run_brings_it() {
    let dead_letters = CollectingDlq::default();
    let memory = Duration::from_secs(3600);
    let runner =
        Runner::new(Scripted::default(), MemoryStore::new(Duration::from_secs(60), memory), dead_letters.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let at = |id: &str, ms_ago: i64| task_at(id, &format!("p-{id}"), "Completed", now - ms_ago);
    let old = at("old", 2 * 3_600_000);
    let recent = at("recent", 1_800_000);
    // Another task: an older event of the same task would be stale behind `recent`.
    let mut replayed = at("replayed", 2 * 3_600_000);
    replayed.body = replayed.body.replace("t-1", "t-2");
    replayed.attributes.push((attr::REPLAY_RUN.into(), "run-1".to_owned()));
    let report = runner.run(&[old, recent, replayed]).await;
    assert_eq!(outcomes(&report), [("old", "expired"), ("recent", "processed"), ("replayed", "processed")]);
    let reason = report.records[0].reason.clone().unwrap();
    assert!(reason.starts_with("expired: ") && reason.contains("3600 s"), "{reason}");
    assert!(!report.records[0].retry(), "not retried: it is in the dead-letter queue");
    let dead = dead_letters.0.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].1.as_str(), dead[0].2.as_str()), ("old", reason.as_str()));
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 2, "the old one never reached the handler");
}

/// The memory store, with releases that fail and completions that meet a conflicting
/// transaction first.
struct Flaky {
    inner: MemoryStore,
    releases_fail: bool,
    conflicts: AtomicUsize,
}

#[async_trait::async_trait]
impl IdempotencyStore for Flaky {
    fn clock(&self) -> crate::clock::Clock {
        self.inner.clock()
    }
    fn memory(&self) -> Option<Duration> {
        self.inner.memory()
    }
    async fn claim(&self, who: Claimant<'_>) -> Result<Claim, StoreError> {
        self.inner.claim(who).await
    }
    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        self.inner.applied_version(subject).await
    }
    async fn raise(&self, v: Version<'_>) -> Result<(), StoreError> {
        self.inner.raise(v).await
    }
    async fn record(&self, who: Claimant<'_>, done: &Done, v: Option<Version<'_>>) -> Result<(), StoreError> {
        self.inner.record(who, done, v).await
    }
    async fn complete(&self, who: Claimant<'_>, v: Option<Version<'_>>) -> Result<(), StoreError> {
        if self.conflicts.load(Ordering::SeqCst) > 0 {
            self.conflicts.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::conflict("TransactionConflict"));
        }
        self.inner.complete(who, v).await
    }
    async fn release(&self, who: Claimant<'_>, done: &Done, v: Option<Version<'_>>) -> Result<(), StoreError> {
        if self.releases_fail {
            return Err(StoreError::unavailable("DynamoDB unreachable"));
        }
        self.inner.release(who, done, v).await
    }
}

fn flaky(releases_fail: bool, conflicts: usize) -> std::sync::Arc<Flaky> {
    let inner = MemoryStore::with_clock(Duration::from_secs(60), LONG_MEMORY, crate::clock::Clock::system());
    std::sync::Arc::new(Flaky { inner, releases_fail, conflicts: AtomicUsize::new(conflicts) })
}

#[tokio::test(start_paused = true)]
async fn a_release_that_fails_never_runs_the_handler_again() {
    let store = flaky(true, 0);
    let http = ScriptedDestination::new("http").answer("p-1", &[Verdict::retry("HTTP 503"), Verdict::Delivered]);
    let runner = Runner::new(Scripted::default(), store.clone(), NoDeadLetters)
        .with_destination(std::sync::Arc::new(http.clone()));
    let event = task_at("m-1", "p-1", "StatusChanged", 1_000);
    assert_eq!(outcomes(&runner.run(std::slice::from_ref(&event)).await), [("m-1", "failed")]);
    // The release failed: the claim holds until its lease ends, then the retry takes it
    // over and finds the handler's step recorded before the destination was called.
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(outcomes(&runner.run(&[event]).await), [("m-1", "processed")]);
    assert_eq!(runner.handler().applied.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(http.handed(), ["p-1", "p-1"]);
}

#[tokio::test]
async fn a_conflicting_transaction_is_tried_again_and_the_version_written() {
    let store = flaky(false, 2);
    let runner = Runner::new(Scripted::default(), store.clone(), NoDeadLetters);
    let report = runner.run(&[task_at("m-1", "p-1", "StatusChanged", 1_000)]).await;
    assert_eq!(outcomes(&report), [("m-1", "processed")]);
    assert_eq!(store.conflicts.load(Ordering::SeqCst), 0, "two conflicts, then the write went through");
    assert_eq!(
        store.inner.claim(Claimant { key: "task#p-1", owner: Owner(9), event_ms: 0 }).await,
        Ok(Claim::Completed),
        "completed, not left in progress"
    );
    assert_eq!(store.inner.applied_version("task\u{2192}t-1\u{2192}StatusChanged").await, Ok(Some(1_000)));
}

/// Counts how many handlers run at once, and the order each entity's events ran in.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
    order: Mutex<Vec<(String, String)>>,
    pause: Duration,
}

impl Handler for Gauge {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.pause).await;
        let entity = event.task_id.clone().unwrap_or_default();
        self.order.lock().unwrap().push((entity, event.envelope.payload_id.clone()));
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Records the largest call a destination was given.
#[derive(Default, Clone)]
struct Widest(std::sync::Arc<AtomicUsize>, std::sync::Arc<AtomicUsize>);

#[async_trait::async_trait]
impl Destination for Widest {
    fn name(&self) -> &'static str {
        "http"
    }
    async fn deliver(&self, events: &[Outgoing<'_>]) -> Vec<Verdict> {
        self.0.fetch_max(events.len(), Ordering::SeqCst);
        self.1.fetch_add(events.len(), Ordering::SeqCst);
        vec![Verdict::Delivered; events.len()]
    }
}

/// `count` task events, `per_entity` of each entity in order, each its own `PayloadId`.
fn many(count: usize, per_entity: usize, fifo: bool) -> Vec<Record> {
    (0..count)
        .map(|i| {
            let entity = format!("t-{}", i / per_entity);
            let mut record = Record {
                message_id: format!("m-{i}"),
                body: format!(
                    r#"{{"PayloadId":"p-{i}","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":{},"TaskId":"{entity}"}}"#,
                    1_000 + i
                ),
                receive_count: 1,
                ..Record::default()
            };
            if fifo {
                record.message_group = Some(entity);
            }
            record
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_ten_thousand_keeps_at_most_the_records_in_flight_and_finishes_in_time() {
    let gauge = Gauge { pause: Duration::from_millis(10), ..Gauge::default() };
    let widest = Widest::default();
    let runner = Runner::new(gauge, store(), CollectingDlq::default())
        .with_ordering(Order::All)
        .with_records_in_flight(16)
        .with_destination(std::sync::Arc::new(widest.clone()));
    let batch = many(10_000, 1, false);
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(60);
    let report = runner.run_until(&batch, Some(deadline)).await;
    assert!(tokio::time::Instant::now() <= deadline, "finished inside the function's deadline");
    assert!(
        report.records.iter().all(|r| r.outcome.word() == "processed"),
        "{:?}",
        report.records.iter().find(|r| r.outcome.word() != "processed")
    );
    assert_eq!(runner.handler().most.load(Ordering::SeqCst), 16, "at most the bound, and the bound used");
    assert!(widest.0.load(Ordering::SeqCst) <= 16, "a destination call takes at most the bound");
    assert_eq!(widest.1.load(Ordering::SeqCst), 10_000, "every event delivered");
}

#[tokio::test(start_paused = true)]
async fn records_not_started_by_the_deadline_are_not_claimed_and_come_back() {
    let gauge = Gauge { pause: Duration::from_millis(100), ..Gauge::default() };
    let runner =
        Runner::new(gauge, store(), CollectingDlq::default()).with_ordering(Order::All).with_records_in_flight(10);
    let batch = many(10_000, 1, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let report = runner.run_until(&batch, Some(deadline)).await;
    assert!(tokio::time::Instant::now() <= deadline, "the batch answered before its deadline");
    let processed = report.records.iter().filter(|r| r.outcome.word() == "processed").count();
    let late: Vec<&RecordReport> = report
        .records
        .iter()
        .filter(|r| r.reason.as_deref() == Some("not started before the batch's deadline"))
        .collect();
    assert!(processed > 100 && processed < 1_000, "{processed} applied in the time");
    assert_eq!(processed + late.len(), 10_000, "the rest did not start");
    assert!(late.iter().all(|r| r.retry()), "they come back as retries");
    assert_eq!(report.failures().len(), late.len());
    // Never claimed: run again, every one of them is applied now, none waits on a claim.
    let again: Vec<Record> =
        batch.iter().filter(|r| late.iter().any(|l| l.message_id == r.message_id)).cloned().collect();
    let runner = runner.with_records_in_flight(1_000);
    let second = runner.run_until(&again, None).await;
    assert!(second.records.iter().all(|r| r.outcome.word() == "processed"), "not claimed the first time");
}

#[tokio::test(start_paused = true)]
async fn over_fifo_the_bound_keeps_each_groups_order() {
    let gauge = Gauge { pause: Duration::from_millis(5), ..Gauge::default() };
    let runner = Runner::new(gauge, store(), CollectingDlq::default()).with_records_in_flight(4);
    let batch = many(2_000, 20, true);
    let report = runner.run_until(&batch, None).await;
    assert!(report.records.iter().all(|r| r.outcome.word() == "processed"));
    assert!(runner.handler().most.load(Ordering::SeqCst) <= 4, "at most four groups at once");
    let order = runner.handler().order.lock().unwrap().clone();
    let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (entity, payload_id) in order {
        let n: usize = payload_id.trim_start_matches("p-").parse().unwrap();
        if let Some(previous) = last.insert(entity.clone(), n) {
            assert!(previous < n, "{entity}: p-{n} ran after p-{previous}");
        }
    }
}
