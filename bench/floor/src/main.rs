//! The HTTP floor of `make bench`: axum on tokio's multi-threaded runtime, every path
//! and method, the whole body read, 200 answered. Nothing is verified, parsed, queued
//! or logged: no receiver can answer faster on this machine with this stack, so
//! `cfwh dev`'s throughput is given as a share of this one's.
//!
//! It also stands in for EventBridge in the price list: a `PutEvents` call (its
//! `X-Amz-Target`) is answered as EventBridge answers one that succeeded, an event ID per
//! entry, so that the row prices `cfwh dev`'s side of the destination.
//!
//! `floor <addr>` (default `127.0.0.1:3000`).

use axum::body::Bytes;
use axum::http::HeaderMap;

const PUT_EVENTS: &str = "AWSEvents.PutEvents";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let app = axum::Router::new().fallback(|headers: HeaderMap, body: Bytes| async move {
        if headers.get("x-amz-target").is_some_and(|t| t == PUT_EVENTS) {
            return put_events(&body);
        }
        // The body is read whole before the answer, as a receiver must to verify it.
        std::hint::black_box(body.len());
        "OK\n".to_owned()
    });
    axum::serve(listener, app).await
}

/// EventBridge's answer to a `PutEvents` whose entries all succeeded.
fn put_events(body: &[u8]) -> String {
    let entries = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|request| request["Entries"].as_array().map(Vec::len))
        .unwrap_or(0);
    let ids: Vec<serde_json::Value> =
        (0..entries).map(|i| serde_json::json!({ "EventId": format!("floor-{i}") })).collect();
    serde_json::json!({ "FailedEntryCount": 0, "Entries": ids }).to_string()
}
