//! Helpers shared by the cfwh integration tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cf_webhooks::aws::Budget;
use cfwh::dev::LineSink;

/// A store memory longer than the age of the fixed times some bodies carry (2020's
/// samples), for the tests that are not about expiry.
pub const LONG_MEMORY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The `cfwh` binary under test.
pub const CFWH: &str = env!("CARGO_BIN_EXE_cfwh");

/// The moto_server `make test` starts, named in `CFWH_TEST_MOTO`.
pub fn moto() -> String {
    std::env::var("CFWH_TEST_MOTO")
        .expect("CFWH_TEST_MOTO names the moto_server these tests use; run them with `make test`, which starts it")
}

/// A DynamoDB client for `endpoint`, with the local test credentials and `budget`.
pub async fn dynamodb_at(endpoint: &str, budget: Budget) -> aws_sdk_dynamodb::Client {
    let sdk = cfwh::aws::local_sdk_config(budget).await;
    aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint).build())
}

/// A line sink that keeps every record line, parsed.
pub fn collecting_sink() -> (LineSink, Arc<Mutex<Vec<serde_json::Value>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = lines.clone();
    let sink: LineSink = Arc::new(move |batch: String| {
        let mut lines = sink_lines.lock().unwrap();
        lines.extend(batch.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()));
    });
    (sink, lines)
}

/// `cfwh dev` on a free port, its stdout lines on a channel.
pub struct DevProcess {
    pub child: Child,
    pub url: String,
    pub lines: mpsc::Receiver<String>,
}

impl DevProcess {
    pub fn start(secret: Option<&str>) -> Self {
        Self::start_with(secret, &[])
    }

    pub fn start_with(secret: Option<&str>, extra: &[&str]) -> Self {
        let mut command = Command::new(CFWH);
        command.args(["dev", "--addr", "127.0.0.1:0"]).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
        command.env_remove("CF_WEBHOOK_SECRET").env("RUST_LOG", "warn");
        if let Some(secret) = secret {
            command.env("CF_WEBHOOK_SECRET", secret);
        }
        let mut child = command.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (addr_tx, addr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("cfwh dev: listening on ") {
                    let _ = addr_tx.send(rest.split_whitespace().next().unwrap().to_owned());
                }
            }
        });
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let url = addr_rx.recv_timeout(Duration::from_secs(30)).expect("cfwh dev announces its address");
        Self { child, url, lines }
    }

    /// Lines printed: the first within `wait`, any more within a short grace after it.
    pub fn lines_within(&self, wait: Duration) -> Vec<serde_json::Value> {
        let mut lines = Vec::new();
        let mut timeout = wait;
        while let Ok(line) = self.lines.recv_timeout(timeout) {
            lines.push(serde_json::from_str(&line).unwrap_or_else(|_| panic!("stdout holds only JSON lines: {line}")));
            timeout = Duration::from_millis(200);
        }
        lines
    }

    pub fn terminate(mut self) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        let rest = self.lines.try_iter().map(|l| serde_json::from_str(&l).unwrap()).collect();
        (status, rest)
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// One task's progress events (`PayloadId`, `EventDatetimeUtc`) in the shuffled order
/// they are sent: older ones arrive after newer ones were applied (`p-4` is Creative
/// Force's late retry of an event never received before), and `p-6` comes twice.
pub const SHUFFLED: [(&str, i64); 7] =
    [("p-3", 3_000), ("p-1", 1_000), ("p-5", 5_000), ("p-2", 2_000), ("p-6", 6_000), ("p-4", 4_000), ("p-6", 6_000)];

/// The body of one of [`SHUFFLED`]'s events about task `task_id`: every action moves the
/// task's progress, one facet.
pub fn progress_event(task_id: &str, payload_id: &str, at: i64) -> String {
    let action = ["Created", "ReadyToWork", "Started", "Completed", "Approved", "Rejected"][(at / 1000 % 6) as usize];
    format!(
        r#"{{"PayloadId":"{payload_id}","EventGroupName":"task","Action":"{action}","EventDatetimeUtc":{at},"TaskId":"{task_id}"}}"#
    )
}

/// What each of [`SHUFFLED`] must end as, when handled in the order sent: applied when no
/// newer event was, `stale` when one was, `duplicate` when its `PayloadId` was seen.
pub fn shuffled_outcomes() -> Vec<(&'static str, &'static str)> {
    let (mut newest, mut seen) = (i64::MIN, std::collections::HashSet::new());
    SHUFFLED
        .iter()
        .map(|&(payload_id, at)| {
            let outcome = if !seen.insert(payload_id) {
                "duplicate"
            } else if at >= newest {
                newest = at;
                "processed"
            } else {
                "stale"
            };
            (payload_id, outcome)
        })
        .collect()
}

/// Checks the record lines of [`SHUFFLED`]: each outcome as expected, in the order sent,
/// and the applied ones in non-decreasing version order. A FIFO queue (`deduplicated`)
/// drops the second `p-6` itself, within its 5-minute deduplication window.
pub fn check_shuffled(lines: &[serde_json::Value], deduplicated: bool) {
    let got: Vec<(String, String)> = lines
        .iter()
        .map(|l| (l["payload_id"].as_str().unwrap().to_owned(), l["outcome"].as_str().unwrap().to_owned()))
        .collect();
    // The order first, on its own: whatever else went wrong, nothing applied moves back.
    let version = |payload: &str| SHUFFLED.iter().find(|(p, _)| *p == payload).unwrap().1;
    let applied: Vec<i64> = got.iter().filter(|(_, o)| o == "processed").map(|(p, _)| version(p)).collect();
    assert!(applied.windows(2).all(|w| w[0] <= w[1]), "applied out of order: {applied:?}");
    let expected: Vec<(String, String)> = shuffled_outcomes()
        .into_iter()
        .filter(|(_, o)| !(deduplicated && *o == "duplicate"))
        .map(|(p, o)| (p.to_owned(), o.to_owned()))
        .collect();
    assert_eq!(got, expected, "each event's outcome, in the order sent");
}

/// Posts [`SHUFFLED`] about `task_id` to `url`, signed with the test secret, one after
/// the other, each answered before the next is sent.
pub async fn send_shuffled(url: &str, task_id: &str) {
    let http = reqwest::Client::new();
    let base = cf_webhooks::ack::now_ms() - 600_000;
    for (payload_id, at) in SHUFFLED {
        let body = progress_event(task_id, payload_id, base + at);
        let answer = http
            .post(url)
            .header("x-cf-signature", cf_webhooks::testkit::signature(cf_webhooks::testkit::SECRET, body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{payload_id}");
    }
}

/// A signed event as a queue delivers it to a consumer: its attributes as ingest sets them.
pub fn queued(id: &str, body: &str) -> cf_webhooks::consumer::Record {
    let routing = cf_webhooks::events::routing::parse(body.as_bytes()).unwrap();
    let attributes = cf_webhooks::message::Attributes {
        event_group: Some(routing.group),
        action: Some(routing.action.into_owned()),
        payload_id: Some(routing.payload_id.into_owned()),
        cf_event: None,
        unsigned_cf_event: None,
        received_at_ms: 1_795_951_864_999,
        reason: None,
        signature: Some(cf_webhooks::testkit::signature(cf_webhooks::testkit::SECRET, body.as_bytes())),
        replay_run: None,
        replayed_at_ms: None,
    };
    let pairs = attributes.pairs(&cf_webhooks::message::Body::Raw(bytes::Bytes::copy_from_slice(body.as_bytes())));
    cf_webhooks::consumer::Record::new(id, body, 1, pairs.into_iter().map(|(n, v)| (n.to_owned(), v)))
}
