//! The edges of never-twice and order, end to end through `cfwh dev`: each case fails
//! without its fix.

use crate::common;

use std::time::Duration;

use cf_webhooks::testkit;

async fn send(client: &reqwest::Client, url: &str, body: String) {
    let answer = client
        .post(format!("{url}/"))
        .header("x-cf-signature", testkit::signature(cf_webhooks::DEV_SECRET, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

/// The next `count` record lines, or what came within 15 s.
fn lines(dev: &common::DevProcess, count: usize) -> Vec<serde_json::Value> {
    let start = std::time::Instant::now();
    let mut lines = Vec::new();
    while lines.len() < count && start.elapsed() < Duration::from_secs(15) {
        lines.extend(dev.lines_within(Duration::from_secs(1)));
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_events_spelled_user_id_are_one_fifo_group_and_the_older_is_stale() {
    // Creative Force's prose spells it `UserID`. Routing read only `UserId`, so the two
    // events fell into two message groups of one batch and ran side by side: over
    // DynamoDB both read the facet's version before either wrote it, and both were
    // applied, the older after the newer.
    let moto = common::moto();
    let table = format!("edges-alias-{}", std::process::id());
    let args = ["--fifo", "--batch-window", "500ms", "--dynamodb-endpoint", &moto, "--table", &table];
    let dev = tokio::task::block_in_place(|| common::DevProcess::start_with(None, &args));
    let now = cf_webhooks::ack::now_ms();
    let event = |payload_id: &str, action: &str, at: i64| {
        format!(
            r#"{{"PayloadId":"{payload_id}","EventGroupName":"user","Action":"{action}","EventDatetimeUtc":{at},"UserID":"u-aliased"}}"#
        )
    };
    let client = reqwest::Client::new();
    send(&client, &dev.url, event("p-user-newer", "UserLoggedOut", now)).await;
    send(&client, &dev.url, event("p-user-older", "UserLoggedIn", now - 60_000)).await;
    let lines = tokio::task::block_in_place(|| lines(&dev, 2));
    let outcomes: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["payload_id"].as_str().unwrap(), l["outcome"].as_str().unwrap())).collect();
    assert_eq!(outcomes, [("p-user-newer", "processed"), ("p-user-older", "stale")], "{lines:?}");
    let (status, _) = tokio::task::block_in_place(|| dev.terminate());
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stamped_ahead_is_still_recognised_when_a_copy_comes_back_past_the_memory() {
    // An event stamped 18 s ahead (inside a 20 s skew), a memory of 31 s (more than the
    // 10 s window plus the skew). Its record used to be forgotten 31 s after its
    // completion while the expiry rule, counting from the event's time, still accepted
    // it until 49 s: a copy redriven in between was applied again.
    let moto = common::moto();
    let id = std::process::id();
    let (prefix, table) = (format!("edges-ahead-{id}"), format!("edges-ahead-{id}"));
    let args = [
        "--sqs-endpoint",
        &moto,
        "--queue-prefix",
        &prefix,
        "--dynamodb-endpoint",
        &moto,
        "--table",
        &table,
        "--max-event-age",
        "10s",
        "--max-clock-skew",
        "20s",
        "--idempotency-ttl",
        "31s",
    ];
    let dev = tokio::task::block_in_place(|| common::DevProcess::start_with(None, &args));
    let sent = std::time::Instant::now();
    let body = format!(
        r#"{{"PayloadId":"p-ahead-{id}","EventGroupName":"task","Action":"Started","EventDatetimeUtc":{},"TaskId":"t-ahead"}}"#,
        cf_webhooks::ack::now_ms() + 18_000
    );
    let client = reqwest::Client::new();
    send(&client, &dev.url, body.clone()).await;
    let first = tokio::task::block_in_place(|| lines(&dev, 1));
    assert_eq!(first[0]["outcome"], "processed", "{first:?}");

    // A copy of it in the dead-letter queue (a duplicate that was dead-lettered), redriven
    // after the completion's 31 s but before the event's own time plus 31 s.
    let sqs = cfwh::aws::sqs_client(Some(&moto), cf_webhooks::aws::Budget::consumer()).await;
    let dlq = sqs.get_queue_url().queue_name(format!("{prefix}-task-dlq")).send().await.unwrap();
    sqs.send_message().queue_url(dlq.queue_url().unwrap()).message_body(&body).send().await.unwrap();
    tokio::time::sleep(Duration::from_secs(36).saturating_sub(sent.elapsed())).await;
    let output = std::process::Command::new(common::CFWH)
        .args(["redrive", "--group", "task", "--sqs-endpoint", &moto, "--queue-prefix", &prefix])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let again = tokio::task::block_in_place(|| lines(&dev, 1));
    assert!(sent.elapsed() < Duration::from_secs(49), "the redrive came too late to show the case");
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["outcome"], "duplicate", "{again:?}");
    let (status, _) = tokio::task::block_in_place(|| dev.terminate());
    assert!(status.success());
}

/// A studio's endpoint that takes `seconds` to answer 200.
async fn slow_receiver(seconds: u64) -> String {
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// `cfwh dev` with two batches of a group side by side (as Lambda runs them), forwarding
/// to `url`, and one task event sent twice, 0.5 s apart: the copy finds the first's claim.
async fn a_copy_waiting_on_a_forward(url: &str, payload_id: &str) -> (common::DevProcess, std::time::Instant) {
    let args = ["--concurrency", "2", "--forward-url", url, "--forward-secret", "forward-secret-for-tests"];
    let dev = tokio::task::block_in_place(|| common::DevProcess::start_with(None, &args));
    let body = format!(
        r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"Started","EventDatetimeUtc":{},"TaskId":"t-slow"}}"#,
        cf_webhooks::ack::now_ms()
    );
    let client = reqwest::Client::new();
    let sent = std::time::Instant::now();
    send(&client, &dev.url, body.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&client, &dev.url, body).await;
    (dev, sent)
}

/// Record lines as they come, each with when it came, until `until` holds or 60 s pass.
fn timed_lines(
    dev: &common::DevProcess,
    until: impl Fn(&[(std::time::Instant, serde_json::Value)]) -> bool,
) -> Vec<(std::time::Instant, serde_json::Value)> {
    let start = std::time::Instant::now();
    let mut lines = Vec::new();
    while !until(&lines) && start.elapsed() < Duration::from_secs(60) {
        if let Ok(line) = dev.lines.recv_timeout(Duration::from_millis(200)) {
            lines.push((std::time::Instant::now(), serde_json::from_str(&line).unwrap()));
        }
    }
    lines
}

fn interrupt(dev: common::DevProcess) -> (std::process::ExitStatus, Duration) {
    let mut dev = dev;
    let asked = std::time::Instant::now();
    std::process::Command::new("kill").args(["-INT", &dev.child.id().to_string()]).status().unwrap();
    let status = dev.child.wait().unwrap();
    (status, asked.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_delivered_while_the_first_is_forwarded_is_a_duplicate_soon_after_and_ctrl_c_exits_at_once() {
    // The copy used to wait out the whole claim lease (2 minutes in cfwh dev), reported
    // `failed` meanwhile, and Ctrl-C waited for it too.
    let url = slow_receiver(4).await;
    let (dev, _) = a_copy_waiting_on_a_forward(&url, &format!("p-slow-{}", std::process::id())).await;
    let lines = tokio::task::block_in_place(|| {
        timed_lines(&dev, |lines| lines.iter().any(|(_, l)| l["outcome"] == "duplicate"))
    });
    let at = |outcome: &str| lines.iter().find(|(_, l)| l["outcome"] == outcome).map(|(at, _)| *at);
    let words: Vec<&str> = lines.iter().map(|(_, l)| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(words, ["waiting", "processed", "duplicate"], "{lines:?}");
    let (processed, duplicate) = (at("processed").unwrap(), at("duplicate").unwrap());
    assert!(duplicate - processed <= Duration::from_secs(15), "answered {:?} after", duplicate - processed);
    let waiting = &lines[0].1;
    assert!(waiting["reason"].as_str().unwrap().contains("looking again in"), "{waiting}");

    let (status, took) = tokio::task::block_in_place(|| interrupt(dev));
    assert!(status.success(), "{status:?}");
    assert!(took <= Duration::from_secs(15), "Ctrl-C took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_a_copy_waits_settles_the_first_answers_the_copy_and_exits_without_waiting_the_lease() {
    let url = slow_receiver(4).await;
    let (dev, _) = a_copy_waiting_on_a_forward(&url, &format!("p-slow-stop-{}", std::process::id())).await;
    let waiting =
        tokio::task::block_in_place(|| timed_lines(&dev, |lines| lines.iter().any(|(_, l)| l["outcome"] == "waiting")));
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let mut dev = dev;
    let asked = std::time::Instant::now();
    std::process::Command::new("kill").args(["-INT", &dev.child.id().to_string()]).status().unwrap();
    let status = tokio::task::block_in_place(|| dev.child.wait().unwrap());
    let took = asked.elapsed();
    let rest: Vec<serde_json::Value> = dev.lines.try_iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
    let words: Vec<&str> = rest.iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(words, ["processed", "duplicate"], "the drain settles the first, then answers the copy at once");
    assert!(status.success(), "{status:?}");
    assert!(took <= Duration::from_secs(15), "Ctrl-C took {took:?}: it waited for the claim's lease");
}
