//! What an event costs deployed, counted rather than estimated: the AWS requests the
//! deployed code makes per processed, duplicate and stale event, with and without the
//! order guard, against moto. Each SDK request is counted as it is sent (an interceptor
//! on the real clients); capacity units follow AWS's published rules, from the sizes of
//! the items the test reads back, not from what moto reports. Writes
//! target/bench/cost.json, which `make bench` turns into BENCHMARKS.md's cost model. The
//! guard must cost at most $0.75 per million events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::sqs::SqsQueues;
use cf_webhooks::aws::Budget;
use cf_webhooks::consumer::{Consume, DeadLetterError, DeadLetterSink, Order, Record};
use cf_webhooks::events::EventGroup;
use cf_webhooks::stack::QueueType;
use cf_webhooks::testkit;
use cf_webhooks_consumers::{runner, Outlets};

use crate::common::moto;

/// DynamoDB on demand, us-east-1: per million write and read request units.
const WRITE_UNIT: f64 = 0.625;
const READ_UNIT: f64 = 0.125;
/// SQS, per million requests: FIFO and standard.
const SQS_FIFO: f64 = 0.50;

/// One request as sent: its operation, and for DynamoDB what its units depend on.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    operation: String,
    /// Items a `TransactWriteItems` writes.
    items: usize,
    /// A `GetItem` with `ConsistentRead`.
    consistent: bool,
}

/// Counts every request a client sends, retries included (each is billed).
#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<Vec<Sent>>>);

impl Counter {
    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "Counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned()).unwrap_or_default();
        let body: serde_json::Value =
            context.request().body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        let items = body["TransactItems"].as_array().map_or(0, Vec::len);
        let consistent = body["ConsistentRead"] == true;
        self.0.lock().unwrap().push(Sent { operation, items, consistent });
        Ok(())
    }
}

#[derive(Default, Clone)]
struct NoDeadLetters;

#[async_trait::async_trait]
impl DeadLetterSink for NoDeadLetters {
    async fn dead_letter(&self, _: EventGroup, _: &Record, _: &str) -> Result<(), DeadLetterError> {
        Ok(())
    }
}

/// A task event of task `t-cost` at `at_ms`, as the queue delivers it.
fn record(payload_id: &str, at_ms: i64) -> Record {
    let mut event: serde_json::Value = serde_json::from_str(testkit::sample(EventGroup::Task)).unwrap();
    event["PayloadId"] = payload_id.into();
    event["EventDatetimeUtc"] = at_ms.into();
    event["TaskId"] = "t-cost".into();
    crate::common::queued(&format!("m-{payload_id}"), &event.to_string())
}

/// The units and dollars per million events of what was sent.
fn priced(sent: &[Sent], largest_item: usize) -> serde_json::Value {
    // Writes: 1 unit per KB of item, twice in a transaction. Reads: 1 unit per 4 KB,
    // strongly consistent; half eventually consistent.
    let write_units_per_item = largest_item.div_ceil(1024).max(1) as f64;
    let read_units_per_item = largest_item.div_ceil(4096).max(1) as f64;
    let mut operations: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut writes, mut reads) = (0.0, 0.0);
    for s in sent {
        *operations.entry(&s.operation).or_default() += 1;
        match s.operation.as_str() {
            "PutItem" | "UpdateItem" | "DeleteItem" => writes += write_units_per_item,
            "TransactWriteItems" => writes += 2.0 * write_units_per_item * s.items as f64,
            "GetItem" => reads += if s.consistent { read_units_per_item } else { read_units_per_item / 2.0 },
            _ => {}
        }
    }
    serde_json::json!({
        "operations": operations,
        "write_units": writes,
        "read_units": reads,
        "dollars_per_million": writes * WRITE_UNIT + reads * READ_UNIT,
    })
}

/// DynamoDB's size of an item: each attribute's name and value, in bytes.
fn item_size(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    V::S(s) => s.len(),
                    // A number: about one byte per two digits, plus one.
                    V::N(n) => n.len().div_ceil(2) + 1,
                    V::Ss(set) => set.iter().map(String::len).sum(),
                    V::Bool(_) | V::Null(_) => 1,
                    _ => 64,
                }
        })
        .sum()
}

#[tokio::test]
async fn what_each_event_costs_deployed_counted_per_request() {
    let sdk = cfwh::aws::local_sdk_config(Budget::consumer()).await;
    let ddb_count = Counter::default();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(moto()).interceptor(ddb_count.clone()).build(),
    );
    let sqs_count = Counter::default();
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(moto()).interceptor(sqs_count.clone()).build(),
    );
    let prefix = format!("cost-{}", std::process::id());
    let queues = cfwh::aws::ensure_queues(&sqs, &prefix, QueueType::Fifo, 5, Duration::from_secs(2)).await.unwrap();
    sqs_count.take();

    // Ingest: one SendMessage per accepted delivery.
    let publisher = SqsQueues::new(sqs.clone(), queues.sources.clone());
    let body = bytes::Bytes::from_static(testkit::sample(EventGroup::Task).as_bytes());
    let mut config = testkit::config();
    config.replay_window = None;
    let mut headers = http::HeaderMap::new();
    headers.insert("x-cf-signature", testkit::signature(testkit::SECRET, &body).parse().unwrap());
    let delivery = cf_webhooks::ack::Delivery::post(&headers, &body);
    let answer = cf_webhooks::ack::acknowledge(delivery, &config, &publisher).await.answer;
    assert_eq!(answer.status(), 200, "{answer:?}");
    let ingest = sqs_count.take();
    assert_eq!(ingest.iter().map(|s| s.operation.as_str()).collect::<Vec<_>>(), ["SendMessage"]);

    let mut table = BTreeMap::new();
    for (order, name) in [(Order::Latest, "guard"), (Order::All, "no guard")] {
        let table_name = format!("{prefix}-{}", name.replace(' ', "-"));
        DynamoStore::create_table_if_missing(&ddb, &table_name).await.unwrap();
        let store = DynamoStore::new(ddb.clone(), &table_name, Duration::from_secs(60), crate::common::LONG_MEMORY);
        let consumer: Box<dyn Consume> = runner(EventGroup::Task, store, NoDeadLetters, Outlets::default(), order);
        ddb_count.take();
        let now = cf_webhooks::ack::now_ms();
        let mut runs = Vec::new();
        for (case, record) in [
            ("processed", record("cost-new", now)),
            ("duplicate", record("cost-new", now)),
            ("processed, newer", record("cost-newer", now + 1000)),
            ("stale", record("cost-older", now - 1000)),
        ] {
            let report = consumer.run_until(&[record], None).await;
            let outcome = report.records[0].outcome.word();
            runs.push((case, outcome, ddb_count.take()));
        }
        let items = ddb.scan().table_name(&table_name).send().await.unwrap();
        let largest = items.items().iter().map(item_size).max().unwrap_or(0);
        assert!(largest < 1024, "every item fits one write unit: {largest} bytes");
        for (case, outcome, sent) in runs {
            let expected = match (case, order) {
                ("stale", Order::All) => "processed",
                ("processed, newer", _) => "processed",
                (case, _) => case,
            };
            assert_eq!(outcome, expected, "{name}: {case}");
            table.insert(format!("{name}: {case}"), priced(&sent, largest));
        }
    }
    let guard = &table["guard: processed"];
    let plain = &table["no guard: processed"];
    let guard_cost = guard["dollars_per_million"].as_f64().unwrap() - plain["dollars_per_million"].as_f64().unwrap();
    // The guard's price: the facet's version read (strongly consistent) before the
    // handler, and raised after it in a write of its own, before the completion.
    assert_eq!(guard["operations"], serde_json::json!({"GetItem": 1, "UpdateItem": 3}));
    assert_eq!(plain["operations"], serde_json::json!({"UpdateItem": 2}));
    assert!(guard_cost <= 0.75 + 1e-9, "the guard costs ${guard_cost:.3} per million events, more than $0.75");
    // A duplicate is one refused claim, guard or not.
    assert_eq!(table["guard: duplicate"]["operations"], serde_json::json!({"UpdateItem": 1}));
    let out = serde_json::json!({
        "prices": {"write_unit_per_million": WRITE_UNIT, "read_unit_per_million": READ_UNIT, "sqs_fifo_per_million": SQS_FIFO},
        "ingest": {"SendMessage": ingest.len()},
        "dynamodb": table,
        "guard_dollars_per_million": guard_cost,
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cost.json"), serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
