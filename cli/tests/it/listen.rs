//! `cfwh listen` against moto: a stub stack (moto's CloudFormation cannot run the SAM
//! transform) holding what `cfwh listen` reads of a deployed one, its outputs named by
//! `stack::output`, the code that names the template's outputs.

use crate::common;

use std::time::Duration;

use crate::common::{collecting_sink, moto};
use cf_webhooks::aws::Budget;
use cf_webhooks::config::var;
use cf_webhooks::events::{EventGroup, Route};
use cf_webhooks::stack::output;
use cf_webhooks::testkit;
use cfwh::listen::Listener;
use serde_json::json;

fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

async fn sdk() -> aws_types::SdkConfig {
    cfwh::aws::sdk_config(Some(&moto()), Budget::consumer()).await
}

/// A stack with the task group's queues (redriving after 2 receives), the idempotency
/// table, and the outputs `cfwh listen` reads: `ConsumersEnabled` as given.
async fn stub_stack(consumers_enabled: &str) -> String {
    let name = unique("listen");
    let table = format!("{name}-idempotency");
    let route = Route::Group(EventGroup::Task);
    let environment = [
        (var::IDEMPOTENCY_TABLE, table.as_str()),
        (var::IDEMPOTENCY_TTL_SECS, "604800"),
        (var::IDEMPOTENCY_LEASE_SECS, "120"),
        (var::MAX_EVENT_AGE_SECS, "3600"),
        (var::STACK, name.as_str()),
        (var::ORDERING, "latest"),
        (var::DESTINATIONS, ""),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join("\n");
    let template = json!({
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": table,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": cf_webhooks::aws::dynamodb::PARTITION_KEY, "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": cf_webhooks::aws::dynamodb::PARTITION_KEY, "KeyType": "HASH"}],
                },
            },
            "DeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": format!("{name}-task-dlq")}},
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "QueueName": format!("{name}-task"),
                    "VisibilityTimeout": 2,
                    "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}, "maxReceiveCount": 2},
                },
            },
        },
        "Outputs": {
            output::CONSUMERS_ENABLED: {"Value": consumers_enabled},
            output::queue_url(route): {"Value": {"Ref": "Queue"}},
            output::dead_letter_queue_url(route): {"Value": {"Ref": "DeadLetters"}},
            output::CONSUMER_ENVIRONMENT: {"Value": environment},
        },
    });
    let client = aws_sdk_cloudformation::Client::new(&sdk().await);
    client.create_stack().stack_name(&name).template_body(template.to_string()).send().await.unwrap();
    name
}

async fn queue_of(stack: &str, route: Route, dead_letters: bool) -> String {
    let outputs = cfwh::listen::stack_outputs(&aws_sdk_cloudformation::Client::new(&sdk().await), stack).await.unwrap();
    let name = if dead_letters { output::dead_letter_queue_url(route) } else { output::queue_url(route) };
    outputs[&name].clone()
}

/// A task event as ingest queues it: the exact body, and its attributes.
async fn enqueue(queue: &str, body: &str) {
    let headers = {
        let mut h = http::HeaderMap::new();
        h.insert("x-cf-signature", testkit::signature(testkit::SECRET, body.as_bytes()).parse().unwrap());
        h
    };
    let body = bytes::Bytes::from(body.to_owned());
    let delivery = cf_webhooks::ack::Delivery::post(&headers, &body);
    let message = match cf_webhooks::ack::decide(delivery, &testkit::config()) {
        cf_webhooks::ack::Decision::Publish { message, .. } => message,
        other => panic!("{other:?}"),
    };
    let client = aws_sdk_sqs::Client::new(&sdk().await);
    cf_webhooks::aws::sqs::send_to(&client, queue, message).await.unwrap();
}

fn task(payload_id: &str) -> String {
    let body = testkit::sample(EventGroup::Task).replace("c02f0f73-1706-4973-9a4d-38007d6685e9", payload_id);
    String::from_utf8(cfwh::send::stamp_time(body.as_bytes(), cf_webhooks::ack::now_ms()).unwrap()).unwrap()
}

async fn wait_for_lines(
    lines: &std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    n: usize,
) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let seen = lines.lock().unwrap().clone();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} record lines, got {:?}", lines.lock().unwrap());
}

#[tokio::test]
async fn listen_applies_a_stacks_records_once_with_its_table_and_dead_letters_the_permanent_failures() {
    let stack = stub_stack("false").await;
    let route = Route::Group(EventGroup::Task);
    let queue = queue_of(&stack, route, false).await;
    let (sink, lines) = collecting_sink();
    let listener =
        Listener::start(&sdk().await, &stack, &[EventGroup::Task], Duration::from_secs(30), sink).await.unwrap();
    assert_eq!(listener.groups, [EventGroup::Task]);

    let payload = unique("p-listen");
    enqueue(&queue, &task(&payload)).await;
    enqueue(&queue, &task(&payload)).await;
    // A job event in the task queue cannot be a task event: a permanent failure,
    // dead-lettered at once.
    let job = testkit::sample(EventGroup::Job).replace("c02f0f73-1706-4973-9a4d-38007d6685e9", &unique("p-job"));
    let job = String::from_utf8(cfwh::send::stamp_time(job.as_bytes(), cf_webhooks::ack::now_ms()).unwrap()).unwrap();
    enqueue(&queue, &job).await;
    let seen = wait_for_lines(&lines, 3).await;
    let outcomes: Vec<(&str, &str)> =
        seen.iter().map(|l| (l["payload_id"].as_str().unwrap_or(""), l["outcome"].as_str().unwrap())).collect();
    assert!(outcomes.contains(&(payload.as_str(), "processed")), "{outcomes:?}");
    assert!(outcomes.contains(&(payload.as_str(), "duplicate")), "{outcomes:?}");
    assert!(outcomes.iter().any(|(_, o)| *o == "dead-lettered"), "{outcomes:?}");

    // The stack's own table holds the completion; its dead-letter queue the broken one.
    let ddb = common::dynamodb_at(&moto(), Budget::consumer()).await;
    let item = ddb
        .get_item()
        .table_name(format!("{stack}-idempotency"))
        .key(
            cf_webhooks::aws::dynamodb::PARTITION_KEY,
            aws_sdk_dynamodb::types::AttributeValue::S(format!("task#{payload}")),
        )
        .send()
        .await
        .unwrap();
    assert!(item.item().is_some(), "the completion is in the stack's table");
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let dlq = queue_of(&stack, route, true).await;
    assert_eq!(cfwh::aws::depth(&sqs, &dlq).await.unwrap(), 1);

    let stopped = tokio::time::timeout(Duration::from_secs(10), listener.stop()).await;
    assert!(stopped.is_ok(), "stops within seconds");
}

#[tokio::test]
async fn listen_refuses_a_stack_whose_consumers_are_on() {
    let stack = stub_stack("true").await;
    let (sink, _) = collecting_sink();
    let refused = Listener::start(&sdk().await, &stack, &[], Duration::from_secs(30), sink).await.err().unwrap();
    assert!(refused.contains("two consumers would race") && refused.contains("ConsumersEnabled=false"), "{refused}");
    let missing = Listener::start(&sdk().await, "no-such-stack", &[], Duration::from_secs(30), collecting_sink().0)
        .await
        .err()
        .unwrap();
    assert!(missing.contains("no-such-stack"), "{missing}");
    // The stub's lease is 120 s: a longer handler timeout could run a record twice.
    let stack = stub_stack("false").await;
    let long =
        Listener::start(&sdk().await, &stack, &[EventGroup::Task], Duration::from_secs(300), collecting_sink().0)
            .await
            .err()
            .unwrap();
    assert!(long.contains("claim lease"), "{long}");
}

/// The binary: prints a record line per record and stops cleanly on Ctrl-C.
#[tokio::test]
async fn cfwh_listen_prints_record_lines_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let stack = stub_stack("false").await;
    let queue = queue_of(&stack, Route::Group(EventGroup::Task), false).await;
    let mut child = std::process::Command::new(common::CFWH)
        .args(["listen", "--stack", &stack, "--group", "task"])
        .env("AWS_ENDPOINT_URL", moto())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("consuming task of stack"), "{line}");
    let payload = unique("p-binary");
    enqueue(&queue, &task(&payload)).await;
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut record = String::new();
    stdout.read_line(&mut record).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        (record["payload_id"].as_str(), record["outcome"].as_str()),
        (Some(payload.as_str()), Some("processed"))
    );
    let started = std::time::Instant::now();
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}
