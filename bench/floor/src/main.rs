//! The HTTP floor of `make bench`: axum on tokio's multi-threaded runtime, every path
//! and method, the whole body read, 200 answered. Nothing is verified, parsed, queued
//! or logged: no receiver can answer faster on this machine with this stack, so
//! `cfwh dev`'s throughput is given as a share of this one's.
//!
//! `floor <addr>` (default `127.0.0.1:3000`).

use axum::body::Bytes;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let app = axum::Router::new().fallback(|body: Bytes| async move {
        // The body is read whole before the answer, as a receiver must to verify it.
        std::hint::black_box(body.len());
        "OK\n"
    });
    axum::serve(listener, app).await
}
