//! `cfwh send` behaves like Creative Force: the headers it sends, and up to three
//! retries of a non-2xx answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use cf_webhooks::secret::{Secret, SecretEncoding};
use cfwh::send::{deliver, event_name, stamp_time, Attempt, SendOptions};

/// A receiver answering the given statuses in turn (the last one forever), recording
/// the requests it got.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let seen_by_server = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: bytes::Bytes| {
        let (seen, calls, statuses) = (seen_by_server.clone(), calls.clone(), statuses.clone());
        async move {
            seen.lock().unwrap().push((headers, body.to_vec()));
            let n = calls.fetch_add(1, Ordering::SeqCst);
            StatusCode::from_u16(statuses[n.min(statuses.len() - 1)]).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/payload", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn options(url: String) -> SendOptions {
    SendOptions {
        url,
        secret: Secret::from_text("key", SecretEncoding::Utf8).unwrap(),
        event: None,
        headers: vec![("X-Studio-Token".into(), "t".into())],
        retries: 3,
        retry_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
        stamp_time: false,
    }
}

const BODY: &[u8] = include_bytes!("../../../events/task.json");

#[tokio::test]
async fn sends_what_creative_force_sends() {
    let (url, seen) = receiver(vec![200]).await;
    let client = reqwest::Client::new();
    assert!(deliver(&client, &options(url), BODY.to_vec(), |_, _| {}).await);
    let seen = seen.lock().unwrap();
    let (headers, body) = &seen[0];
    assert_eq!(body, BODY, "the exact bytes");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-cf-event"], "Task completed");
    assert_eq!(headers["x-studio-token"], "t");
    let expected = cf_webhooks::signature::sign(&Secret::from_text("key", SecretEncoding::Utf8).unwrap(), BODY);
    assert_eq!(headers["x-cf-signature"], expected.as_str());
}

#[tokio::test]
async fn retries_non_2xx_answers_until_one_succeeds() {
    let (url, seen) = receiver(vec![503, 500, 200]).await;
    let mut attempts = Vec::new();
    let ok = deliver(&reqwest::Client::new(), &options(url), BODY.to_vec(), |n, a| attempts.push((n, a.clone()))).await;
    assert!(ok);
    let statuses: Vec<u16> = attempts
        .iter()
        .map(|(_, a)| match a {
            Attempt::Answered { status, .. } => *status,
            Attempt::NoAnswer(_) => 0,
        })
        .collect();
    assert_eq!(statuses, [503, 500, 200]);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn gives_up_after_three_retries() {
    let (url, seen) = receiver(vec![401]).await;
    let ok = deliver(&reqwest::Client::new(), &options(url), BODY.to_vec(), |_, _| {}).await;
    assert!(!ok);
    assert_eq!(seen.lock().unwrap().len(), 4, "one attempt and three retries");
}

#[tokio::test]
async fn an_unreachable_url_is_retried_and_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let mut reports = Vec::new();
    let mut opts = options(url);
    opts.retries = 1;
    assert!(!deliver(&reqwest::Client::new(), &opts, BODY.to_vec(), |_, a| reports.push(a.clone())).await);
    assert_eq!(reports.len(), 2);
    assert!(matches!(&reports[0], Attempt::NoAnswer(why) if !why.is_empty()));
}

#[test]
fn event_names_read_like_creative_force() {
    assert_eq!(event_name(include_bytes!("../../../events/work-unit.json")), "Work unit status changed");
    assert_eq!(event_name(include_bytes!("../../../events/user.json")), "User logged in");
    assert_eq!(event_name(b"not json"), "Unknown");
}

#[test]
fn stamping_the_time_changes_only_the_top_level_time() {
    let body = br#"{"A":{"EventDatetimeUtc":1},"EventDatetimeUtc" : "1595204418000", "s":"\"EventDatetimeUtc\":2"}"#;
    let stamped = stamp_time(body, 1_800_000_000_000).unwrap();
    assert_eq!(
        String::from_utf8(stamped).unwrap(),
        r#"{"A":{"EventDatetimeUtc":1},"EventDatetimeUtc" : 1800000000000, "s":"\"EventDatetimeUtc\":2"}"#
    );
    for sample in ["task", "job", "session"] {
        let body = std::fs::read(format!("{}/../events/{sample}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let stamped = stamp_time(&body, 1_800_000_000_000).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&stamped).unwrap();
        assert_eq!(value["EventDatetimeUtc"], 1_800_000_000_000i64, "{sample}");
    }
    let literal = include_bytes!("../../../events/reference/job.txt");
    assert!(String::from_utf8(stamp_time(literal, 7).unwrap()).unwrap().contains("\"EventDatetimeUtc\":7,"));
    assert_eq!(stamp_time(b"{}", 7), None);
}

/// `cfwh send` against `url`, with `secret` in the environment, and what it printed.
fn send_binary(url: &str, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cfwh"))
        .args(["send", "--url", url, "--retries", "0"])
        .args(extra)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/task.json"))
        .env("CF_WEBHOOK_SECRET", "key")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_redirect_is_never_followed_with_the_signed_body() {
    let (elsewhere, seen) = receiver(vec![200]).await;
    let app = axum::Router::new().fallback(move || {
        let elsewhere = elsewhere.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", elsewhere)]) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/payload", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let output = tokio::task::spawn_blocking(move || send_binary(&url, &[])).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("answered HTTP 307, a redirect to http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("not followed (the signed body stays here)"), "{stdout}");
    assert!(seen.lock().unwrap().is_empty(), "the signed body went on to the host the redirect named");
}

#[tokio::test]
async fn the_secret_comes_from_a_file_and_one_on_the_command_line_is_warned_about() {
    let (url, seen) = receiver(vec![200]).await;
    let dir = std::env::temp_dir().join(format!("cfwh-send-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "from-the-file\n").unwrap();
    let (url_a, file_a) = (url.clone(), file.to_str().unwrap().to_owned());
    let output = tokio::task::spawn_blocking(move || send_binary(&url_a, &["--secret-file", &file_a])).await.unwrap();
    assert!(output.status.success());
    let key = Secret::from_text("from-the-file", SecretEncoding::Utf8).unwrap();
    let (headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["x-cf-signature"], cf_webhooks::signature::sign(&key, &body).as_str(), "signed with the file's");

    let output = tokio::task::spawn_blocking(move || send_binary(&url, &["--secret", "on-the-line"])).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("visible to other users"), "{stderr}");
    assert!(!stderr.contains("on-the-line"), "the warning never quotes the secret");
}
