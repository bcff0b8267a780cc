//! The ingest Lambda over the shared ack path: a Function URL request in, an answer out,
//! at most one message published before a 2xx.

use bytes::Bytes;
use cf_webhooks::ack::{acknowledge, now_ms, Delivery};
use cf_webhooks::config::IngestConfig;
use cf_webhooks::metrics::Emf;
use cf_webhooks::queue::Publisher;
use lambda_http::{Body, Request, RequestExt, Response};

/// Handles one Function URL request. When the secrets come from a store, they are
/// re-read first if the refresh interval has passed. With `metrics`, one EMF line
/// records the answer.
pub async fn handle<P: Publisher>(
    request: Request,
    config: &IngestConfig,
    publisher: &P,
    metrics: Option<&Emf>,
) -> Response<Body> {
    let received_at_ms = now_ms();
    config.secrets.refresh_if_due().await;
    // The invocation's X-Ray trace, as the runtime received it: the queued message
    // carries it on, so the consumer's segment joins the same trace.
    let trace = request.lambda_context_ref().and_then(|context| context.xray_trace_id.clone());
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        // `Body` is non-exhaustive: a future variant still exposes its bytes.
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    let delivery = Delivery {
        method: &parts.method,
        headers: &parts.headers,
        body: &body,
        received_at_ms,
        trace_header: trace.as_deref(),
    };
    let acknowledged = acknowledge(delivery, config, publisher).await;
    if let Some(line) = metrics.and_then(|emf| emf.ingest(&acknowledged)) {
        println!("{line}");
    }
    acknowledged.answer.to_response().map(Body::Binary)
}
