//! The ack-path contract through real HTTP against the `cfwh dev` ingest service, and
//! the local pipeline's retries, dead letters and drain.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::collecting_sink;
use cf_webhooks::consumer::{Context, Handler, HandlerError, MemoryStore, Runner};
use cf_webhooks::events::{EventGroup, Route, TaskEvent};
use cf_webhooks::queue::memory::MemoryQueues;
use cf_webhooks::queue::Publisher;
use cf_webhooks::testkit::{self, Case, RecordingPublisher, Seen};
use cfwh::dev::{consume, ingest_router, memory_store, Backend, Dev, DevOptions};
use tokio::net::TcpListener;

async fn through_http(case: &Case) -> Seen {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let publisher = Arc::new(RecordingPublisher::new(case.publisher));
    let router = ingest_router(Arc::new(case.config.clone()), publisher.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let client = reqwest::Client::new();
    let mut request = client.request(case.method.clone(), format!("http://{addr}/payload")).body(case.body.clone());
    for (name, value) in &case.headers {
        request = request.header(name.as_str(), value.as_slice());
    }
    let response = request.send().await.expect("the server answers");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (status, content_type, allow) = (response.status().as_u16(), header("content-type"), header("allow"));
    let body = response.bytes().await.unwrap().to_vec();
    server.abort();
    Seen { status, content_type, allow, body, stored: publisher.stored() }
}

cf_webhooks::ack_contract_tests!(through_http);

/// A declared Content-Length over the limit is refused before the body is read.
#[tokio::test]
async fn an_oversized_content_length_is_refused_before_reading() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let publisher = Arc::new(RecordingPublisher::new(testkit::PublisherMode::Working));
    let router = ingest_router(Arc::new(testkit::config()), publisher.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body-too-large"));
    assert!(publisher.stored().is_empty());
}

/// A chunked body without Content-Length that goes past the limit and never ends is
/// refused as soon as the limit is crossed: the server stops reading there instead of
/// buffering until the sender stops.
#[tokio::test]
async fn an_endless_chunked_body_is_refused_at_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let publisher = Arc::new(RecordingPublisher::new(testkit::PublisherMode::Working));
    let config = testkit::config();
    let limit = config.max_body_bytes;
    let router = ingest_router(Arc::new(config), publisher.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The whole exchange under one timeout: a server that stopped reading without
    // answering would otherwise block the writes forever.
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        // limit + 1 bytes in 4 KiB chunks, then nothing more and no terminating chunk.
        let chunk = vec![b' '; 4096];
        let mut sent = 0;
        while sent <= limit {
            stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
            stream.write_all(&chunk).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
            sent += chunk.len();
        }
        let mut answer = vec![0u8; 1024];
        let n = stream.read(&mut answer).await.unwrap();
        answer.truncate(n);
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("answered without waiting for the end of the body");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body-too-large"));
    assert!(publisher.stored().is_empty());
}

/// Fails every task whose step is not `Photography`, permanently when it is `Delete`.
struct Picky;

impl Handler for Picky {
    type Event = TaskEvent;
    async fn handle(&self, event: &TaskEvent, _: &Context<'_>) -> Result<(), HandlerError> {
        match event.step_name.as_deref() {
            Some("Photography") => Ok(()),
            Some("Delete") => Err(HandlerError::permanent("cannot apply a delete")),
            _ => Err(HandlerError::retry("downstream is down")),
        }
    }
}

fn task(payload_id: &str, step: &str) -> cf_webhooks::message::Message {
    let body = format!(
        r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1,"StepName":"{step}"}}"#
    );
    let headers = http::HeaderMap::from_iter([(
        http::HeaderName::from_static("x-cf-signature"),
        http::HeaderValue::from_str(&testkit::signature(testkit::SECRET, body.as_bytes())).unwrap(),
    )]);
    let body = bytes::Bytes::from(body);
    let delivery = cf_webhooks::ack::Delivery {
        method: &http::Method::POST,
        headers: &headers,
        body: &body,
        received_at_ms: 0,
        trace_header: None,
    };
    match cf_webhooks::ack::decide(delivery, &testkit::config()) {
        cf_webhooks::ack::Decision::Publish { message, .. } => message,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failing_record_is_retried_then_dead_lettered_and_a_permanent_one_at_once() {
    let queues = Arc::new(MemoryQueues::new(100, 3));
    let store = Arc::new(MemoryStore::new(Duration::from_secs(60), common::LONG_MEMORY));
    let (sink, lines) = collecting_sink();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let options = DevOptions { retry_delay: Duration::from_millis(20), max_receives: 3, ..DevOptions::default() };
    let consumer = tokio::spawn(consume(
        queues.clone(),
        Arc::new(Runner::new(Picky, store, queues.clone())),
        options,
        sink,
        stopped,
    ));

    queues.publish(task("p-retry", "Retouch")).await.unwrap();
    queues.publish(task("p-delete", "Delete")).await.unwrap();
    queues.publish(task("p-ok", "Photography")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), queues.drained()).await.expect("drains");
    stop.send(true).unwrap();
    consumer.await.unwrap();

    let lines = lines.lock().unwrap().clone();
    let of = |id: &str| -> Vec<String> {
        lines.iter().filter(|l| l["payload_id"] == id).map(|l| l["outcome"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(of("p-ok"), ["processed"]);
    assert_eq!(of("p-delete"), ["dead-lettered"]);
    assert_eq!(of("p-retry"), ["failed", "failed", "failed", "dead-lettered"]);
    let task_route = Route::Group(EventGroup::Task);
    let dead = queues.dead_letters(task_route);
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().any(|d| d.reason.contains("cannot apply a delete")));
    assert!(dead.iter().any(|d| d.reason.contains("received 3 times")));
    assert_eq!(queues.pending(task_route), 0);
}

#[tokio::test]
async fn the_whole_pipeline_processes_every_group_once_and_drains() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sink, lines) = collecting_sink();
    let dev = Dev::start(
        listener,
        testkit::config(),
        DevOptions::default(),
        sink,
        Backend::Memory,
        memory_store(Duration::from_secs(900), cf_webhooks::config::DEFAULT_IDEMPOTENCY_TTL),
    )
    .unwrap();
    let client = reqwest::Client::new();
    // Recent, as Creative Force's are: the samples are from 2020.
    let now = cf_webhooks::ack::now_ms();
    for _round in 0..2 {
        for group in EventGroup::ALL {
            let body =
                String::from_utf8(cfwh::send::stamp_time(testkit::sample(group).as_bytes(), now).unwrap()).unwrap();
            let response = client
                .post(format!("http://{}/", dev.addr))
                .header("x-cf-signature", testkit::signature(testkit::SECRET, body.as_bytes()))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    dev.drain().await.unwrap();
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 14);
    for group in EventGroup::ALL {
        let of_group: Vec<&str> = lines
            .iter()
            .filter(|l| l["event_group"] == group.as_str())
            .map(|l| l["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(of_group, ["processed", "duplicate"], "{group}");
    }
}

#[tokio::test]
async fn fifo_in_memory_applies_one_entitys_shuffled_events_in_order_and_skips_the_stale() {
    let (sink, lines) = collecting_sink();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = DevOptions { queue_type: cf_webhooks::stack::QueueType::Fifo, ..DevOptions::default() };
    let store = memory_store(Duration::from_secs(60), cf_webhooks::config::DEFAULT_IDEMPOTENCY_TTL);
    let dev = Dev::start(listener, testkit::config(), options, sink, Backend::Memory, store).unwrap();
    assert!(dev.memory.as_ref().unwrap().is_fifo());
    common::send_shuffled(&format!("http://{}/", dev.addr), "t-order").await;
    dev.drain().await.unwrap();
    common::check_shuffled(&lines.lock().unwrap(), true);
}

/// `cfwh dev` in memory on a free port, and the record lines it prints.
async fn start_dev(
    config: cf_webhooks::config::IngestConfig,
    options: DevOptions,
) -> (Dev, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sink, lines) = collecting_sink();
    let store = memory_store(Duration::from_secs(60), cf_webhooks::config::DEFAULT_IDEMPOTENCY_TTL);
    (Dev::start(listener, config, options, sink, Backend::Memory, store).unwrap(), lines)
}

async fn dev_with(limits: cfwh::dev::server::Limits) -> Dev {
    start_dev(testkit::config(), DevOptions { limits, ..DevOptions::default() }).await.0
}

/// Reads until the server closes the connection or `limit` passes; what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    read.ok().map(|_| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn a_slow_client_cannot_hold_dev_headers_bodies_and_requests_have_time_limits() {
    use tokio::io::AsyncWriteExt as _;
    let limits = cfwh::dev::server::Limits {
        header_read: Duration::from_secs(1),
        request: Duration::from_secs(2),
        ..Default::default()
    };
    let dev = dev_with(limits).await;
    // Slowloris: headers that never end.
    let mut slow = tokio::net::TcpStream::connect(dev.addr).await.unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: dev\r\nX-Slow: 1\r\n").await.unwrap();
    assert!(read_until_closed(&mut slow, Duration::from_secs(4)).await.is_some(), "closed after the header timeout");
    // A body that never arrives.
    let mut stalled = tokio::net::TcpStream::connect(dev.addr).await.unwrap();
    stalled.write_all(b"POST / HTTP/1.1\r\nHost: dev\r\nContent-Length: 100\r\n\r\n{\"PayloadId\"").await.unwrap();
    let answer = read_until_closed(&mut stalled, Duration::from_secs(5)).await.expect("answered in time");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    dev.drain().await.unwrap();
}

#[tokio::test]
async fn a_shutdown_does_not_wait_for_a_client_that_holds_its_connection() {
    use tokio::io::AsyncWriteExt as _;
    let limits = cfwh::dev::server::Limits {
        header_read: Duration::from_secs(600),
        request: Duration::from_secs(600),
        shutdown_grace: Duration::from_secs(1),
        ..Default::default()
    };
    let dev = dev_with(limits).await;
    let mut holder = tokio::net::TcpStream::connect(dev.addr).await.unwrap();
    holder.write_all(b"POST / HTTP/1.1\r\nHost: dev\r\nContent-Length: 100\r\n\r\n{").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), dev.drain()).await.expect("drained in seconds").unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_to_be_served() {
    let limits = cfwh::dev::server::Limits { max_connections: 2, ..Default::default() };
    let dev = dev_with(limits).await;
    let idle = [
        tokio::net::TcpStream::connect(dev.addr).await.unwrap(),
        tokio::net::TcpStream::connect(dev.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/", dev.addr);
    let third = client.post(&url).timeout(Duration::from_millis(800)).body("{}").send().await;
    assert!(third.is_err(), "a third connection is not served while two are held: {third:?}");
    drop(idle);
    let fourth = client.post(&url).timeout(Duration::from_secs(5)).body("{}").send().await.unwrap();
    assert_eq!(fourth.status(), 401, "served once a slot is free (unsigned: 401)");
    dev.drain().await.unwrap();
}

/// The inspector's API, as its page uses it: every delivery with the answer and the
/// consumer's outcome, secrets masked, "send again" signed afresh (a duplicate), "with a
/// new PayloadId" (processed); only for loopback host names, and a re-send only with its
/// header.
#[tokio::test]
async fn the_inspector_shows_each_delivery_and_what_the_consumer_did_and_sends_it_again() {
    use cfwh::dev::inspector::{Inspector, CSRF_HEADER, PATH};
    let mut config = testkit::config();
    config.required_header =
        Some(cf_webhooks::config::RequiredHeader::new("x-studio-token".try_into().unwrap(), b"studio-token-value"));
    let hosts = cfwh::dev::hosts::Hosts::loopback(&[]);
    let options = DevOptions { inspector: Some(Inspector::new(true)), hosts, ..DevOptions::default() };
    let (dev, _) = start_dev(config, options).await;
    let base = format!("http://{}", dev.addr);
    let client = reqwest::Client::new();
    let body =
        cfwh::send::stamp_time(testkit::sample(EventGroup::Task).as_bytes(), cf_webhooks::ack::now_ms()).unwrap();
    let signature = testkit::signature(testkit::SECRET, &body);
    let sent = client
        .post(format!("{base}/"))
        .header("x-cf-signature", &signature)
        .header("x-studio-token", "studio-token-value")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let list = || async { json(client.get(format!("{base}/_cfwh/api/deliveries")).send().await.unwrap()).await };
    let outcome_of = |id: u64| async move {
        for _ in 0..100 {
            let rows = list().await;
            let row = rows.as_array().unwrap().iter().find(|r| r["id"] == id).cloned().unwrap();
            if !row["outcome"].is_null() {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no outcome for delivery {id}");
    };
    let first = outcome_of(1).await;
    assert_eq!(
        (&first["answer"], &first["outcome"], &first["group"]),
        (&"accepted".into(), &"processed".into(), &"task".into())
    );

    let detail = json(client.get(format!("{base}/_cfwh/api/deliveries/1")).send().await.unwrap()).await;
    let shown = detail["headers"].to_string();
    assert!(!shown.contains(&signature) && !shown.contains("studio-token-value"), "{shown}");
    assert!(shown.contains("masked"), "{shown}");
    assert_eq!(detail["records"][0]["outcome"], "processed");

    let resend = |fresh: bool, csrf: bool, host: &'static str| {
        let mut request = client
            .post(format!("{base}/_cfwh/api/deliveries/1/resend"))
            .header("host", host)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "fresh": fresh }).to_string());
        if csrf {
            request = request.header(CSRF_HEADER, "1");
        }
        request.send()
    };
    assert_eq!(resend(false, false, "127.0.0.1").await.unwrap().status(), 403, "a re-send carries the header");
    assert_eq!(resend(false, true, "evil.example").await.unwrap().status(), 403, "a rebound name is refused");
    let again = json(resend(false, true, "localhost").await.unwrap()).await;
    assert_eq!((&again["resent_from"], &again["payload_id"]), (&1.into(), &first["payload_id"]));
    let again = outcome_of(again["id"].as_u64().unwrap()).await;
    assert_eq!(again["outcome"], "duplicate", "the same PayloadId, signed again: {again}");
    let fresh = json(resend(true, true, "127.0.0.1").await.unwrap()).await;
    assert_ne!(fresh["payload_id"], first["payload_id"]);
    assert_eq!(outcome_of(fresh["id"].as_u64().unwrap()).await["outcome"], "processed");

    // Never a signing oracle: a forged delivery is shown, never signed and sent again.
    let forged = client
        .post(format!("{base}/"))
        .header("x-cf-signature", "0".repeat(64))
        .header("x-studio-token", "studio-token-value")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let rows = list().await;
    let forged_id = rows.as_array().unwrap().iter().find(|r| r["status"] == 401).unwrap()["id"].as_u64().unwrap();
    let refused = client
        .post(format!("{base}/_cfwh/api/deliveries/{forged_id}/resend"))
        .header(CSRF_HEADER, "1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);

    let page = client.get(format!("{base}{PATH}")).send().await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("api/events"));
    let elsewhere =
        client.get(format!("{base}/_cfwh/api/deliveries")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(elsewhere.status(), 403);
    dev.drain().await.unwrap();
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// Asked for on another address, the page is read-only.
#[tokio::test]
async fn on_another_address_the_inspector_sends_nothing_again() {
    use cfwh::dev::inspector::{Inspector, CSRF_HEADER};
    // As `--inspector on` sets it up for a non-loopback address.
    let options = DevOptions { inspector: Some(Inspector::new(false)), ..DevOptions::default() };
    let (dev, _) = start_dev(testkit::config(), options).await;
    let base = format!("http://{}", dev.addr);
    let client = reqwest::Client::new();
    let body = cfwh::send::stamp_time(testkit::sample(EventGroup::Job).as_bytes(), cf_webhooks::ack::now_ms()).unwrap();
    let sent = client
        .post(format!("{base}/"))
        .header("x-cf-signature", testkit::signature(testkit::SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let listed =
        client.get(format!("{base}/_cfwh/api/deliveries")).header("host", "studio-box:3000").send().await.unwrap();
    assert_eq!(listed.status(), 200, "readable from elsewhere, as asked");
    let again = client
        .post(format!("{base}/_cfwh/api/deliveries/1/resend"))
        .header(CSRF_HEADER, "1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 403);
    dev.drain().await.unwrap();
}

/// Off, its paths say so; deliveries are still taken everywhere else.
#[tokio::test]
async fn without_the_inspector_its_paths_say_it_is_off() {
    let dev = dev_with(cfwh::dev::server::Limits::default()).await;
    let answer = reqwest::get(format!("http://{}/_cfwh/", dev.addr)).await.unwrap();
    assert_eq!(answer.status(), 404);
    assert!(answer.text().await.unwrap().contains("inspector is off"));
    dev.drain().await.unwrap();
}

/// `cfwh dev` names each record's trace on its line: the caller's `X-Amzn-Trace-Id`, or
/// one it starts, as Lambda would.
#[tokio::test]
async fn dev_prints_the_trace_of_each_record_on_its_line() {
    let (dev, lines) = start_dev(testkit::config(), DevOptions::default()).await;
    let client = reqwest::Client::new();
    let trace = "Root=1-6752e0a1-5f0c2b7d9e4a6b8c1d3e5f70;Parent=53995c3f42cd8ad8;Sampled=1";
    for (group, header) in [(EventGroup::Task, Some(trace)), (EventGroup::Job, None)] {
        let body = cfwh::send::stamp_time(testkit::sample(group).as_bytes(), cf_webhooks::ack::now_ms()).unwrap();
        let mut request = client
            .post(format!("http://{}/", dev.addr))
            .header("x-cf-signature", testkit::signature(testkit::SECRET, &body));
        if let Some(header) = header {
            request = request.header("x-amzn-trace-id", header);
        }
        assert_eq!(request.body(body).send().await.unwrap().status(), 200);
    }
    dev.drain().await.unwrap();
    let lines = lines.lock().unwrap().clone();
    let of = |group: &str| {
        lines.iter().find(|l| l["event_group"] == group).unwrap()["trace_id"].as_str().unwrap().to_owned()
    };
    assert_eq!(of("task"), "1-6752e0a1-5f0c2b7d9e4a6b8c1d3e5f70");
    let started = of("job");
    assert!(started.starts_with("1-") && started.len() == 35, "{started}");
}

/// `--tracing off`: no trace is started or joined, and the lines name none.
#[tokio::test]
async fn with_tracing_off_no_line_names_a_trace() {
    let (dev, lines) = start_dev(testkit::config(), DevOptions { tracing: false, ..DevOptions::default() }).await;
    let body =
        cfwh::send::stamp_time(testkit::sample(EventGroup::Task).as_bytes(), cf_webhooks::ack::now_ms()).unwrap();
    let sent = reqwest::Client::new()
        .post(format!("http://{}/", dev.addr))
        .header("x-cf-signature", testkit::signature(testkit::SECRET, &body))
        .header("x-amzn-trace-id", "Root=1-6752e0a1-5f0c2b7d9e4a6b8c1d3e5f70;Parent=53995c3f42cd8ad8;Sampled=1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    dev.drain().await.unwrap();
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "processed");
    assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
}

/// At `--max-remembered`, new events are answered 503 with the reason, and none is
/// forgotten: a duplicate of a remembered one is still a duplicate, never applied twice.
#[tokio::test]
async fn a_full_store_refuses_new_events_with_503_and_forgets_none() {
    use cf_webhooks::consumer::MemoryStore;
    let store = std::sync::Arc::new(
        MemoryStore::new(Duration::from_secs(60), cf_webhooks::config::DEFAULT_IDEMPOTENCY_TTL).with_cap(2),
    );
    let options = DevOptions { remembering: Some(store.clone()), ..DevOptions::default() };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sink, lines) = collecting_sink();
    let dev = Dev::start(listener, testkit::config(), options, sink, Backend::Memory, store.clone()).unwrap();
    let client = reqwest::Client::new();
    let send = |payload_id: &'static str| {
        let body = testkit::sample(EventGroup::Task)
            .replace("\"PayloadId\":", &format!("\"PayloadId\":\"{payload_id}\",\"Was\":"));
        let body = cfwh::send::stamp_time(body.as_bytes(), cf_webhooks::ack::now_ms()).unwrap();
        client
            .post(format!("http://{}/", dev.addr))
            .header("x-cf-signature", testkit::signature(testkit::SECRET, &body))
            .body(body)
            .send()
    };
    for id in ["cap-1", "cap-2"] {
        assert_eq!(send(id).await.unwrap().status(), 200);
    }
    for _ in 0..200 {
        if store.len() == 2 && lines.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = send("cap-3").await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "60");
    assert_eq!(store.len(), 2, "nothing was forgotten to make room");
    let answer = refused.text().await.unwrap();
    assert!(answer.contains("retry later"), "{answer}");
    dev.drain().await.unwrap();
    let outcomes: Vec<String> =
        lines.lock().unwrap().iter().map(|l| l["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["processed", "processed"], "the refused event was not taken");
}

/// A signed task event that drifts in each of the four ways, and a job event as documented.
fn drifting_task() -> Vec<u8> {
    let mut task: serde_json::Value = serde_json::from_str(testkit::sample(EventGroup::Task)).unwrap();
    let o = task.as_object_mut().unwrap();
    o.insert("Priority".into(), serde_json::json!("high"));
    o.insert("Action".into(), serde_json::json!("Teleported"));
    o.remove("TaskId");
    o.insert("StepName".into(), serde_json::json!(7));
    o["Assignee"]["Email"] = serde_json::json!("someone@example.com");
    cfwh::send::stamp_time(task.to_string().as_bytes(), cf_webhooks::ack::now_ms()).unwrap()
}

async fn send_signed(client: &reqwest::Client, addr: std::net::SocketAddr, body: Vec<u8>) {
    let signature = testkit::signature(testkit::SECRET, &body);
    let sent = client.post(format!("http://{addr}/")).header("x-cf-signature", signature).body(body).send().await;
    assert_eq!(sent.unwrap().status(), 200);
}

#[tokio::test]
async fn each_kind_of_drift_in_a_signed_delivery_is_on_its_record_line_and_in_the_inspector() {
    use cfwh::dev::inspector::Inspector;
    let hosts = cfwh::dev::hosts::Hosts::loopback(&[]);
    let options = DevOptions { inspector: Some(Inspector::new(true)), hosts, ..DevOptions::default() };
    let (dev, lines) = start_dev(testkit::config(), options).await;
    let client = reqwest::Client::new();
    send_signed(&client, dev.addr, drifting_task()).await;
    // Its own PayloadId: the samples share one, and the inspector finds a delivery's
    // record lines by it.
    let job = testkit::sample(EventGroup::Job).replace("c02f0f73-1706-4973-9a4d-38007d6685e9", "job-of-the-drift-test");
    let job = cfwh::send::stamp_time(job.as_bytes(), cf_webhooks::ack::now_ms()).unwrap();
    send_signed(&client, dev.addr, job).await;

    let expected = serde_json::json!([
        {"kind": "undocumented_field", "field": "Priority", "sent": "string"},
        {"kind": "undocumented_field", "field": "Assignee.Email", "sent": "string"},
        {"kind": "unknown_action", "action": "Teleported"},
        {"kind": "missing_field", "field": "TaskId"},
        {"kind": "retyped_field", "field": "StepName", "documented": "string", "sent": "integer"},
    ]);
    let mut row = serde_json::Value::Null;
    for _ in 0..100 {
        let rows = json(client.get(format!("http://{}/_cfwh/api/deliveries", dev.addr)).send().await.unwrap()).await;
        row = rows.as_array().unwrap().iter().find(|r| r["group"] == "task").cloned().unwrap_or_default();
        if !row["outcome"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(row["outcome"], "processed", "drift is reported, never refused: {row}");
    let shown: Vec<&str> = row["drift"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert_eq!(
        shown,
        [
            "undocumented field `Priority` (string)",
            "undocumented field `Assignee.Email` (string)",
            "unknown action \"Teleported\"",
            "documented field `TaskId` missing",
            "field `StepName` sent as integer (documented: string)",
        ]
    );
    dev.drain().await.unwrap();
    let lines = lines.lock().unwrap().clone();
    let task = lines.iter().find(|l| l["event_group"] == "task").unwrap();
    assert_eq!(task["drift"], expected);
    assert!(!task.to_string().contains("someone@example.com"), "names and types, never values: {task}");
    let job = lines.iter().find(|l| l["event_group"] == "job").unwrap();
    assert!(job.get("drift").is_none(), "an event as documented has no drift: {job}");
}

#[tokio::test]
async fn with_drift_off_no_line_names_drift() {
    let options = DevOptions { drift: cf_webhooks::consumer::DriftMode::Off, ..DevOptions::default() };
    let (dev, lines) = start_dev(testkit::config(), options).await;
    send_signed(&reqwest::Client::new(), dev.addr, drifting_task()).await;
    dev.drain().await.unwrap();
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "processed");
    assert!(lines[0].get("drift").is_none(), "{}", lines[0]);
}
