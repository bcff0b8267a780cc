//! `cfwh dev`: ingest, the queues and all seven consumers in one process, with the very
//! code that runs under Lambda. Prints one JSON line per finished record on stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use cf_webhooks::ack::{acknowledge, now_ms, precheck, Answer, Delivery, Rejection};
use cf_webhooks::config::{IngestConfig, DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL};
use cf_webhooks::consumer::{Handler, MemoryStore, Outcome, Record, Runner};
use cf_webhooks::events::{GroupEvent, Route};
use cf_webhooks::queue::memory::{MemoryQueues, Received, Released};
use cf_webhooks::queue::Publisher;
use cf_webhooks_consumers::handlers::*;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Where record lines go: stdout in the binary, a channel in tests.
pub type LineSink = Arc<dyn Fn(String) + Send + Sync>;

/// Settings of the local pipeline.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// Records per consumer batch (Lambda's `BatchSize`).
    pub batch_size: usize,
    /// Delay before a failed record is delivered again (the visibility timeout).
    pub retry_delay: Duration,
    /// Deliveries before a record is dead-lettered (the redrive policy's `maxReceiveCount`).
    pub max_receives: u32,
    /// Messages a queue holds before ingest answers 503.
    pub queue_capacity: usize,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self { batch_size: 10, retry_delay: Duration::from_secs(1), max_receives: 5, queue_capacity: 100_000 }
    }
}

/// The ingest HTTP service over any publisher: every path, every method.
pub fn ingest_router<P: Publisher + 'static>(config: Arc<IngestConfig>, publisher: Arc<P>) -> Router {
    Router::new().fallback(move |request: Request| {
        let (config, publisher) = (config.clone(), publisher.clone());
        async move { ingest(request, &config, &*publisher).await }
    })
}

async fn ingest<P: Publisher>(request: Request, config: &IngestConfig, publisher: &P) -> Response {
    let received_at_ms = now_ms();
    let (parts, body) = request.into_parts();
    if let Some(answer) = precheck(&parts.method, &parts.headers, config) {
        return respond(&answer);
    }
    // Never buffer more than the limit, whatever Content-Length claimed.
    let body = match Limited::new(body, config.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return respond(&Answer::Rejected(Rejection::BodyTooLarge { limit: config.max_body_bytes }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "request body could not be read");
            return Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"status":"rejected","reason":"body-unreadable"}"#))
                .expect("static response");
        }
    };
    let delivery = Delivery { method: &parts.method, headers: &parts.headers, body: &body, received_at_ms };
    respond(&acknowledge(delivery, config, publisher).await)
}

fn respond(answer: &Answer) -> Response {
    let mut builder = Response::builder().status(answer.status()).header("content-type", "application/json");
    for (name, value) in answer.headers() {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(answer.body())).expect("static status and headers are valid")
}

fn record(received: &Received) -> Record {
    let message = &received.message;
    Record {
        message_id: received.id.clone(),
        body: message.body.as_text().to_owned(),
        body_encoding: message.body.encoding().map(str::to_owned),
        receive_count: received.receive_count,
        attributes: message.attributes.pairs(&message.body).into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
    }
}

/// Consumes one group's queue the way Lambda's event source mapping does: batches,
/// delete on success, redeliver failures after the retry delay, dead-letter after
/// `max_receives`. Stops once `stop` is set and the queue is empty.
pub async fn consume<H: Handler>(
    queues: Arc<MemoryQueues>,
    runner: Runner<H, Arc<MemoryStore>, Arc<MemoryQueues>>,
    options: DevOptions,
    lines: LineSink,
    mut stop: watch::Receiver<bool>,
) {
    let route = Route::Group(H::Event::GROUP);
    loop {
        let batch = tokio::select! {
            batch = queues.receive(route, options.batch_size, Duration::from_millis(500)) => batch,
            _ = stop.changed() => Vec::new(),
        };
        if batch.is_empty() {
            if *stop.borrow() && queues.pending(route) == 0 {
                return;
            }
            continue;
        }
        let records: Vec<Record> = batch.iter().map(record).collect();
        let report = runner.run(&records).await;
        for (received, mut line) in batch.into_iter().zip(report.records) {
            lines(line.to_json_line());
            if !line.retry() {
                queues.delete(route, &received);
                continue;
            }
            let reason = line.reason.clone().unwrap_or_default();
            if queues.release(route, received, options.retry_delay, &reason) == Released::DeadLettered {
                let reason = format!("failed {} times; last error: {reason}", line.attempt);
                line.outcome = Outcome::DeadLettered { reason: reason.clone() };
                line.reason = Some(reason);
                lines(line.to_json_line());
            }
        }
    }
}

/// A running local pipeline.
pub struct Dev {
    /// The address ingest listens on.
    pub addr: SocketAddr,
    /// The queues (to inspect dead letters and pending counts).
    pub queues: Arc<MemoryQueues>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    consumers: JoinSet<()>,
    http_stop: tokio::sync::oneshot::Sender<()>,
}

impl Dev {
    /// Binds `listener` and starts ingest and the seven consumers with the shipped handlers.
    pub fn start(
        listener: TcpListener,
        config: IngestConfig,
        options: DevOptions,
        lines: LineSink,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let queues = Arc::new(MemoryQueues::new(options.queue_capacity, options.max_receives));
        let store = Arc::new(MemoryStore::new(DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL));
        let (stop, stopped) = watch::channel(false);
        let mut consumers = JoinSet::new();
        macro_rules! spawn {
            ($($handler:expr),+) => {$(
                consumers.spawn(consume(
                    queues.clone(),
                    Runner::new($handler, store.clone(), queues.clone()),
                    options.clone(),
                    lines.clone(),
                    stopped.clone(),
                ));
            )+};
        }
        spawn!(ProductHandler, SampleHandler, UserHandler, TaskHandler, WorkUnitHandler, JobHandler, SessionHandler);

        let router = ingest_router(Arc::new(config), queues.clone());
        let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_stopped.await;
                })
                .await
        });
        Ok(Self { addr, queues, stop, server, consumers, http_stop })
    }

    /// Stops taking deliveries, lets the consumers finish every queued record (retries
    /// included), then stops them.
    pub async fn drain(mut self) -> std::io::Result<()> {
        let _ = self.http_stop.send(());
        let served = self.server.await.map_err(std::io::Error::other)?;
        self.queues.close();
        self.queues.drained().await;
        let _ = self.stop.send(true);
        while self.consumers.join_next().await.is_some() {}
        served
    }

    /// Messages not yet handled, over all groups.
    pub fn pending(&self) -> usize {
        Route::ALL.iter().filter(|r| **r != Route::Unrouted).map(|r| self.queues.pending(*r)).sum()
    }
}
