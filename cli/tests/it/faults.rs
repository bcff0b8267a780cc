//! Injected faults and what they end as: DynamoDB unavailable, and `cfwh dev` killed with
//! SIGKILL mid-stream and restarted over SQS (moto, named in `CFWH_TEST_MOTO` by
//! `make test`). Never a lost or silently dropped event.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::common::{dynamodb_at, moto, DevProcess};
use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::Budget;
use cf_webhooks::consumer::{Context, Handler, HandlerError, NoDeadLetters, Record, Runner};
use cf_webhooks::events::TaskEvent;

struct Apply;

impl Handler for Apply {
    type Event = TaskEvent;
    async fn handle(&self, _: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

async fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
    dynamodb_at(endpoint, Budget::ack(Duration::from_millis(800))).await
}

fn task_record(payload_id: &str) -> Record {
    Record {
        message_id: format!("m-{payload_id}"),
        body: format!(
            r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1}}"#
        ),
        receive_count: 1,
        ..Record::default()
    }
}

#[tokio::test]
async fn dynamodb_unavailable_fails_the_records_for_a_retry_and_they_apply_once_it_is_back() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let table = format!("faults-{}", std::process::id());
    let lease = Duration::from_secs(60);
    let down =
        Runner::new(Apply, DynamoStore::new(dynamodb(&dead).await, &table, lease, common::LONG_MEMORY), NoDeadLetters);

    let started = Instant::now();
    let report = down.run(&[task_record("p-ddb-1"), task_record("p-ddb-2")]).await;
    assert!(started.elapsed() < Duration::from_secs(5), "a dead store fails fast: {:?}", started.elapsed());
    assert_eq!(report.failures(), ["m-p-ddb-1", "m-p-ddb-2"], "retried, not dropped and not applied blind");
    assert!(report.records[0].reason.as_deref().unwrap().contains("idempotency store"));

    let client = dynamodb(&moto()).await;
    DynamoStore::create_table_if_missing(&client, &table).await.unwrap();
    let back = Runner::new(Apply, DynamoStore::new(client, &table, lease, common::LONG_MEMORY), NoDeadLetters);
    let words = |r: &cf_webhooks::consumer::BatchReport| {
        r.records.iter().map(|l| l.outcome.word().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(words(&back.run(&[task_record("p-ddb-1"), task_record("p-ddb-2")]).await), ["processed", "processed"]);
    assert_eq!(words(&back.run(&[task_record("p-ddb-1")]).await), ["duplicate"]);
}

fn post(client: &reqwest::blocking::Client, url: &str, n: usize) -> Option<String> {
    let payload_id = format!("kill-{}-{n}", std::process::id());
    let body = format!(
        r#"{{"PayloadId":"{payload_id}","EventGroupName":"{}","Action":"Created","EventDatetimeUtc":{}}}"#,
        ["task", "job", "user", "product"][n % 4],
        cf_webhooks::ack::now_ms()
    );
    let signature = cf_webhooks::testkit::signature("kill-secret", body.as_bytes());
    let answer = client.post(url).header("x-cf-signature", signature).body(body).send().ok()?;
    answer.status().is_success().then_some(payload_id)
}

#[test]
fn sigkill_mid_stream_then_restart_loses_nothing_answered_200() {
    let moto = moto();
    let prefix = format!("kill-{}", std::process::id());
    let args = [
        "--sqs-endpoint",
        moto.as_str(),
        "--dynamodb-endpoint",
        moto.as_str(),
        "--queue-prefix",
        prefix.as_str(),
        "--table",
        prefix.as_str(),
        "--retry-delay",
        "1s",
        // Killed claims hold their records 5 s; with today's three deliveries, records
        // that found them in progress used to burn their deliveries and be dead-lettered.
        "--claim-lease",
        "5s",
        "--handler-timeout",
        "5s",
        "--max-receives",
        "3",
    ];
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut accepted = HashSet::new();

    let first = DevProcess::start_with(Some("kill-secret"), &args);
    for n in 0..150 {
        if let Some(id) = post(&client, &first.url, n) {
            accepted.insert(id);
        }
    }
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL: no drain, records in flight
    first.child.wait().unwrap();
    // payload id -> (processed lines, duplicate lines, its group)
    let mut processed: HashMap<String, usize> = HashMap::new();
    let mut skipped: HashMap<String, String> = HashMap::new();
    fn count(
        processed: &mut HashMap<String, usize>,
        skipped: &mut HashMap<String, String>,
        lines: Vec<serde_json::Value>,
    ) {
        for line in lines {
            let id = line["payload_id"].as_str().unwrap().to_owned();
            if line["outcome"] == "processed" {
                *processed.entry(id).or_default() += 1;
            } else if line["outcome"] == "duplicate" {
                skipped.insert(id, line["event_group"].as_str().unwrap().to_owned());
            }
        }
    }
    // Every line the killed process printed, until its stdout closes.
    let printed: Vec<serde_json::Value> = first.lines.iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
    count(&mut processed, &mut skipped, printed);
    assert_eq!(accepted.len(), 150, "every delivery before the kill was answered 200");

    let second = DevProcess::start_with(Some("kill-secret"), &args);
    for n in 150..200 {
        if let Some(id) = post(&client, &second.url, n) {
            accepted.insert(id);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        count(&mut processed, &mut skipped, second.lines_within(Duration::from_millis(500)));
        if accepted.iter().all(|id| processed.contains_key(id) || skipped.contains_key(id)) || Instant::now() > deadline
        {
            break;
        }
    }
    let (status, rest) = second.terminate();
    count(&mut processed, &mut skipped, rest);
    assert!(status.success());
    // A record completed just before the kill may have lost its `processed` line with the
    // process; its redelivery is then a `duplicate`. Such a record must be COMPLETED in
    // the idempotency table: applied, not lost.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let table = runtime.block_on(dynamodb(&moto));
    let mut lost = Vec::new();
    for id in &accepted {
        if processed.contains_key(id) {
            continue;
        }
        let completed = skipped.get(id).is_some_and(|group| {
            let key = aws_sdk_dynamodb::types::AttributeValue::S(format!("{group}#{id}"));
            let item =
                runtime.block_on(table.get_item().table_name(&prefix).key("pk", key).consistent_read(true).send());
            item.ok().and_then(|i| i.item().and_then(|i| i.get("state")).and_then(|s| s.as_s().ok()).cloned())
                == Some("COMPLETED".to_owned())
        });
        if !completed {
            lost.push(id.clone());
        }
    }
    assert!(lost.is_empty(), "answered 200 but never applied: {lost:?}");
    // A record whose handler finished just before the kill, but whose completion was not
    // written yet, runs again after the claim's lease: at least once, at most the records
    // in flight at the kill (7 consumers × batches of 10).
    let twice = processed.values().filter(|n| **n > 1).count();
    assert!(twice <= 70, "{twice} processed twice");
    // A crash never dead-letters an event: the records the killed process held waited for
    // its claims' leases instead of using up their deliveries.
    let sqs = runtime.block_on(cfwh::aws::sqs_client(Some(&moto), cf_webhooks::aws::Budget::consumer()));
    for route in cf_webhooks::events::Route::ALL {
        let name = cf_webhooks::stack::queue_name(&prefix, route, true, cf_webhooks::stack::QueueType::Standard);
        let url =
            runtime.block_on(sqs.get_queue_url().queue_name(&name).send()).unwrap().queue_url().unwrap().to_owned();
        assert_eq!(runtime.block_on(cfwh::aws::depth(&sqs, &url)).unwrap(), 0, "{name}: dead-lettered by the crash");
    }
    eprintln!("sigkill: {} accepted, all processed; {twice} processed twice (in flight at the kill)", accepted.len());
}

/// A pass-through TCP proxy that can be switched off for good: the listener closes and
/// every open connection is cut, as when SQS goes away.
struct Cable {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Cable {
    fn to(upstream: &str) -> Self {
        use std::sync::atomic::Ordering;
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let cable = Self { addr, down: Default::default(), open: Default::default() };
        let (down, open) = (cable.down.clone(), cable.open.clone());
        std::thread::spawn(move || {
            while !down.load(Ordering::SeqCst) {
                let Ok((inbound, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                inbound.set_nonblocking(false).unwrap();
                let Ok(outbound) = std::net::TcpStream::connect(&upstream) else { continue };
                let mut open = open.lock().unwrap();
                if down.load(Ordering::SeqCst) {
                    break; // cut while connecting: drop both ends
                }
                open.extend([inbound.try_clone().unwrap(), outbound.try_clone().unwrap()]);
                for (mut from, mut to) in
                    [(inbound.try_clone().unwrap(), outbound.try_clone().unwrap()), (outbound, inbound)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        cable
    }

    fn cut(&self) {
        // Under the lock, so that no connection accepted meanwhile is registered after it.
        let mut open = self.open.lock().unwrap();
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in open.drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn sigterm_while_sqs_is_unreachable_stops_draining_and_exits() {
    let moto = moto();
    let cable = Cable::to(&moto);
    let sqs = format!("http://{}", cable.addr);
    let prefix = format!("term-{}", std::process::id());
    let dev = DevProcess::start_with(
        Some("kill-secret"),
        &["--sqs-endpoint", &sqs, "--dynamodb-endpoint", &moto, "--queue-prefix", &prefix, "--table", &prefix],
    );
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let id = post(&client, &dev.url, 0).expect("accepted while SQS is up");
    let lines = dev.lines_within(Duration::from_secs(30));
    assert!(lines.iter().any(|l| l["payload_id"] == id.as_str() && l["outcome"] == "processed"), "{lines:?}");

    cable.cut();
    let started = Instant::now();
    let mut dev = dev;
    std::process::Command::new("kill").args(["-TERM", &dev.child.id().to_string()]).status().unwrap();
    let status = loop {
        if let Some(status) = dev.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "still draining an unreachable SQS after 20 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
}
