//! The ingest Lambda over the shared ack path: a Function URL request in, an answer out,
//! at most one message published before a 2xx.

use bytes::Bytes;
use cf_webhooks::ack::{acknowledge, now_ms, Answer, Delivery};
use cf_webhooks::config::IngestConfig;
use cf_webhooks::queue::Publisher;
use cf_webhooks::secret::SecretFetcher;
use lambda_http::{Body, Request, Response};

/// Handles one Function URL request. When the secrets come from a store, they are
/// re-read first if the refresh interval has passed.
pub async fn handle<P: Publisher, F: SecretFetcher>(
    request: Request,
    config: &IngestConfig,
    publisher: &P,
    secret_store: &F,
) -> Response<Body> {
    let received_at_ms = now_ms();
    config.secrets.refresh_if_due(secret_store).await;
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        // `Body` is non-exhaustive: a future variant still exposes its bytes.
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    let delivery = Delivery { method: &parts.method, headers: &parts.headers, body: &body, received_at_ms };
    respond(&acknowledge(delivery, config, publisher).await)
}

/// The HTTP response of an answer.
pub fn respond(answer: &Answer) -> Response<Body> {
    let mut builder = Response::builder().status(answer.status()).header("content-type", "application/json");
    for (name, value) in answer.headers() {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::Binary(answer.body())).expect("static status and headers are valid")
}
