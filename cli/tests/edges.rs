//! The edges of never-twice and order, end to end through `cfwh dev`: each case fails
//! without its fix.

mod common;

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
