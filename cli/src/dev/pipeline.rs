//! The local pipeline: ingest over HTTP, the queues and all seven consumers in one
//! process, with the very code that runs under Lambda. Queues are in memory or on an SQS
//! API; the idempotency store is whatever the caller picked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use cf_webhooks::ack::{acknowledge, now_ms, precheck, Answer, Delivery, Rejection};
use cf_webhooks::aws::sqs::{SqsDeadLetters, SqsQueues};
use cf_webhooks::config::IngestConfig;
use cf_webhooks::consumer::{
    Consume, DeadLetterSink, Handler, HandlerError, IdempotencyStore, MemoryStore, Outcome, Record, RecordReport,
    Runner,
};
use cf_webhooks::events::{EventGroup, GroupEvent, Route};
use cf_webhooks::queue::memory::{MemoryQueues, Released};
use cf_webhooks::queue::Publisher;
use cf_webhooks_consumers::{with_handler, Outlets, WithHandler};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::aws::{delete, depth, receive, Queues};

/// Where record lines go: stdout in the binary, a channel in tests. Called once per batch
/// with its lines (each ending in a newline), so that a batch costs one write.
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
    /// Batches of one group run side by side, as Lambda runs several invocations on one
    /// queue (`--concurrency`).
    pub concurrency: usize,
    /// Messages an in-memory queue holds before ingest answers 503.
    pub queue_capacity: usize,
    /// How long a handler may run before its record fails (the consumer's timeout).
    pub handler_timeout: Duration,
    /// How long a consumer waits for a batch to fill once a first message is there
    /// (Lambda's `MaximumBatchingWindowInSeconds`, in memory only).
    pub batch_window: Duration,
    /// Failure injection (`--chaos-percent`, for soak tests): this share of payloads fails,
    /// half of them on the first attempt only, half on every attempt.
    pub chaos_percent: u8,
    /// Destinations and archive, shared by every group (`--forward-url`, `--archive-dir`, …).
    pub outlets: Outlets,
    /// Per-entity order (`--ordering`).
    pub ordering: cf_webhooks::consumer::Order,
    /// The HTTP server's time and connection limits.
    pub limits: super::server::Limits,
    /// FIFO queues, the entity as message group (`--fifo`): in memory, and the queues
    /// created over SQS.
    pub queue_type: cf_webhooks::stack::QueueType,
    /// The inspector page (`--inspector`), when on.
    pub inspector: Option<Arc<super::inspector::Inspector>>,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            batch_size: 10,
            retry_delay: Duration::from_secs(1),
            max_receives: cf_webhooks::stack::DEFAULT_MAX_RECEIVES,
            concurrency: 1,
            queue_capacity: 100_000,
            handler_timeout: Duration::from_secs(60),
            batch_window: Duration::from_millis(1),
            chaos_percent: 0,
            outlets: Outlets::default(),
            ordering: cf_webhooks::consumer::Order::default(),
            queue_type: cf_webhooks::stack::QueueType::Standard,
            limits: super::server::Limits::default(),
            inspector: None,
        }
    }
}

/// Where the queues are.
pub enum Backend {
    /// In this process.
    Memory,
    /// On an SQS API.
    Sqs {
        /// The client ingest publishes with (the ack path's time budget).
        client: aws_sdk_sqs::Client,
        /// The client the consumers poll with: its budget must outlast a long poll, or a
        /// receive that timed out on our side still counts on the queue's side, and
        /// after `max_receives` of them the message lands in the dead-letter queue unseen.
        consumer_client: aws_sdk_sqs::Client,
        /// The queues, already created.
        queues: Queues,
    },
}

/// An in-memory idempotency store whose claims last `lease` and completions `memory`.
pub fn memory_store(lease: Duration, memory: Duration) -> Arc<dyn IdempotencyStore> {
    Arc::new(MemoryStore::new(lease, memory))
}

/// A shipped handler with injected failures, chosen by a hash of the `PayloadId` so that a
/// payload fails the same way on every delivery: `percent / 2` of the payloads fail their
/// first attempt only, as many fail every attempt (and end in the dead-letter queue).
pub struct Chaos<H> {
    inner: H,
    percent: u8,
}

impl<H> Chaos<H> {
    /// `inner`, failing `percent` of the payloads (0: never).
    pub fn new(inner: H, percent: u8) -> Self {
        Self { inner, percent: percent.min(100) }
    }
}

/// The bucket (0..100) of a payload, and whether it fails always (odd) or once (even).
pub fn chaos_bucket(payload_id: &str) -> u8 {
    let digest = sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), payload_id.as_bytes()));
    digest[0] % 100
}

impl<H: Handler> Handler for Chaos<H> {
    type Event = H::Event;

    async fn handle(&self, event: &H::Event, ctx: &cf_webhooks::consumer::Context<'_>) -> Result<(), HandlerError> {
        let bucket = chaos_bucket(&event.envelope().payload_id);
        if bucket < self.percent {
            if bucket % 2 == 1 {
                return Err(HandlerError::retry("injected failure (chaos: every attempt)"));
            }
            if ctx.receive_count <= 1 {
                return Err(HandlerError::retry("injected failure (chaos: first attempt)"));
            }
        }
        self.inner.handle(event, ctx).await
    }
}

/// Builds a group's runner around its shipped handler, wrapped for failure injection.
struct WithChaos {
    percent: u8,
    store: Arc<dyn IdempotencyStore>,
    dead_letters: Arc<dyn DeadLetterSink>,
    outlets: Outlets,
    ordering: cf_webhooks::consumer::Order,
    max_receives: u32,
}

impl WithHandler for WithChaos {
    type Output = Arc<dyn Consume>;
    fn with<H: Handler + 'static>(self, handler: H) -> Arc<dyn Consume> {
        let mut runner = Runner::new(Chaos::new(handler, self.percent), self.store, self.dead_letters)
            .with_ordering(self.ordering)
            .with_max_receives(self.max_receives);
        for destination in self.outlets.destinations {
            runner = runner.with_destination(destination);
        }
        if let Some(archive) = self.outlets.archive {
            runner = runner.with_archive(archive);
        }
        Arc::new(runner)
    }
}

/// Archives what lands in the in-memory `unrouted` queue, the way the deployed
/// `unrouted` consumer does; a record not archived is retried after the retry delay.
pub async fn archive_unrouted_memory(
    queues: Arc<MemoryQueues>,
    archive: cf_webhooks::archive::Archive,
    options: DevOptions,
    mut stop: watch::Receiver<bool>,
) {
    let route = Route::Unrouted;
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
        let records: Vec<Record> = batch.iter().map(|received| received.record()).collect();
        let results = cf_webhooks::consumer::archive_unrouted(&archive, &records).await;
        for (received, (_, result)) in batch.into_iter().zip(results) {
            match result {
                Ok(_) => queues.delete(route, &received),
                Err(e) => {
                    queues.release(route, received, options.retry_delay, &e);
                }
            }
        }
    }
}

/// The path of `cfwh dev`'s replay endpoint (`cfwh replay --dir … --url …`).
pub const REPLAY_PATH: &str = "/_cfwh/replay";

/// The ingest HTTP service over any publisher: every path, every method, but for the
/// replay endpoint at [`REPLAY_PATH`] and the inspector's paths under `/_cfwh/`.
pub fn ingest_router<P: Publisher + 'static>(config: Arc<IngestConfig>, publisher: Arc<P>) -> Router {
    ingest_router_with(config, publisher, None)
}

/// [`ingest_router`], noting every delivery in `inspector` and serving its page.
pub fn ingest_router_with<P: Publisher + 'static>(
    config: Arc<IngestConfig>,
    publisher: Arc<P>,
    inspector: Option<Arc<super::inspector::Inspector>>,
) -> Router {
    let (replay_config, replay_publisher) = (config.clone(), publisher.clone());
    let pages = match &inspector {
        Some(inspector) => inspector.router(config.clone(), publisher.clone()),
        None => super::inspector::off(),
    };
    Router::new()
        .merge(pages)
        .route(
            REPLAY_PATH,
            axum::routing::any(move |request: Request| {
                let (config, publisher) = (replay_config.clone(), replay_publisher.clone());
                async move { replay_endpoint(request, &config, &*publisher).await }
            }),
        )
        .fallback(move |request: Request| {
            let (config, publisher, inspector) = (config.clone(), publisher.clone(), inspector.clone());
            async move { ingest(request, &config, &*publisher, inspector.as_deref()).await }
        })
}

/// Takes an archived event back in, for a replay run: from this machine only, with the
/// signature it was archived with (verified against the current secrets, as ingest
/// would), marked with the run (`X-CF-Replay`) and the run's time (`X-CF-Replayed-At`).
/// Never an unsigned way in.
async fn replay_endpoint<P: Publisher>(request: Request, config: &IngestConfig, publisher: &P) -> Response {
    use axum::extract::ConnectInfo;
    let plain = |status: u16, text: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(text))
            .expect("static status and header")
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    // A tunnel or proxy on this machine makes every caller look local: what came through
    // one (it says so) is refused too.
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| request.headers().contains_key(*h));
    if !peer.is_some_and(|p| p.ip().is_loopback()) || proxied {
        return plain(403, "replays are taken from this machine only\n".into());
    }
    if request.method() != axum::http::Method::POST {
        return plain(405, "POST an archived body\n".into());
    }
    let (run, received_at, replayed_at, signature) = {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let signature = header("x-cf-signature").unwrap_or_default();
        (header("x-cf-replay"), header("x-cf-received-at"), header("x-cf-replayed-at"), signature)
    };
    let Some(run) = run.filter(|r| cf_webhooks::ack::valid_run_id(r)) else {
        return plain(400, "X-CF-Replay must name the run: 1 to 64 letters, digits, - or _\n".into());
    };
    let received_at = received_at.and_then(|r| r.parse().ok()).unwrap_or_else(now_ms);
    // The run's one time (`cfwh replay` sends it with every delivery of the run), never
    // later than now: every delivery of a run is held to the memory from there.
    let now = now_ms();
    let replayed_at = match replayed_at.map(|at| at.trim().parse::<i64>()) {
        None => now,
        Some(Ok(at)) => at.min(now),
        Some(Err(_)) => return plain(400, "X-CF-Replayed-At must be the run's time, ms since the epoch\n".into()),
    };
    let body = match Limited::new(request.into_body(), config.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return respond(&Answer::Rejected(Rejection::BodyTooLarge { limit: config.max_body_bytes })),
    };
    match cf_webhooks::ack::replay(signature.as_bytes(), &body, received_at, &run, replayed_at, config) {
        Err(answer) => respond(&answer),
        Ok(message) => match publisher.publish(message).await {
            Ok(()) => plain(202, format!("replayed in run {run}\n")),
            Err(e) => plain(503, format!("{e}\n")),
        },
    }
}

async fn ingest<P: Publisher>(
    request: Request,
    config: &IngestConfig,
    publisher: &P,
    inspector: Option<&super::inspector::Inspector>,
) -> Response {
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
            return respond(&Answer::Rejected(Rejection::BodyUnreadable));
        }
    };
    // As Lambda would: the caller's X-Ray trace, or a new one, which the record lines name.
    let trace = dev_trace(&parts.headers);
    let delivery = Delivery {
        method: &parts.method,
        headers: &parts.headers,
        body: &body,
        received_at_ms,
        trace_header: Some(&trace),
    };
    let answer = match inspector {
        Some(inspector) => inspector.acknowledge(delivery, config, publisher, None).await.1,
        None => acknowledge(delivery, config, publisher).await.answer,
    };
    respond(&answer)
}

/// The trace a delivery to `cfwh dev` belongs to: its `X-Amzn-Trace-Id` when that is a
/// valid X-Ray header, otherwise a new sampled one.
pub(crate) fn dev_trace(headers: &axum::http::HeaderMap) -> String {
    use cf_webhooks::xray::{new_root_header, TraceHeader};
    let given = headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()).and_then(TraceHeader::parse);
    given.map_or_else(new_root_header, |trace| trace.to_header())
}

fn respond(answer: &Answer) -> Response {
    answer.to_response().map(Body::from)
}

fn dead_lettered_line(mut line: RecordReport, out: &mut String, options: &DevOptions) {
    let reason = format!("failed {} times; last error: {}", line.attempt, line.reason.as_deref().unwrap_or_default());
    line.outcome = Outcome::DeadLettered { reason: reason.clone() };
    line.reason = Some(reason);
    push_line(out, &line, options);
}

/// How long a record is hidden when it asked for other than the retry delay: a copy
/// waiting on another's claim exactly its wait (shorter or longer), a `Retry-After` only
/// when longer, as the Lambda does.
fn hide_for(outcome: &Outcome, retry_delay: Duration) -> Option<Duration> {
    match outcome {
        Outcome::Waiting { retry_after, .. } => Some(*retry_after),
        Outcome::Failed { retry_after: Some(after), .. } if *after > retry_delay => Some(*after),
        _ => None,
    }
}

fn push_line(out: &mut String, line: &RecordReport, options: &DevOptions) {
    out.push_str(&line.to_json_line());
    out.push('\n');
    if let Some(inspector) = &options.inspector {
        inspector.record(line);
    }
}

/// Consumes one group's in-memory queue the way Lambda's event source mapping does:
/// batches, delete on success, redeliver failures after the retry delay, dead-letter
/// after `max_receives`. Stops once `stop` is set and the queue is empty.
pub async fn consume(
    queues: Arc<MemoryQueues>,
    runner: Arc<dyn Consume>,
    options: DevOptions,
    lines: LineSink,
    mut stop: watch::Receiver<bool>,
) {
    let route = Route::Group(runner.group());
    loop {
        let mut batch = tokio::select! {
            batch = queues.receive(route, options.batch_size, Duration::from_millis(500)) => batch,
            _ = stop.changed() => Vec::new(),
        };
        if !batch.is_empty() && batch.len() < options.batch_size && !options.batch_window.is_zero() {
            // Under load, one wake-up per batch rather than per message.
            tokio::time::sleep(options.batch_window).await;
            batch.extend(queues.receive(route, options.batch_size - batch.len(), Duration::ZERO).await);
        }
        if batch.is_empty() {
            if *stop.borrow() && queues.idle(route) {
                return;
            }
            continue;
        }
        let records: Vec<Record> = batch.iter().map(|received| received.record()).collect();
        let report = runner.run_until(&records, Some(tokio::time::Instant::now() + options.handler_timeout)).await;
        let mut out = String::new();
        for (received, line) in batch.into_iter().zip(report.records) {
            push_line(&mut out, &line, &options);
            if !line.retry() {
                queues.delete(route, &received);
                continue;
            }
            let reason = line.reason.clone().unwrap_or_default();
            // As the record asked: a claim still held, a Retry-After.
            let delay = hide_for(&line.outcome, options.retry_delay).unwrap_or(options.retry_delay);
            let released = if matches!(line.outcome, Outcome::Waiting { .. }) {
                queues.release_waiting(route, received, delay, &reason)
            } else {
                queues.release(route, received, delay, &reason)
            };
            if released == Released::DeadLettered {
                dead_lettered_line(line, &mut out, &options);
            }
        }
        lines(out);
    }
}

/// Consumes one group's SQS queue the way Lambda's event source mapping does: long
/// polling, batches of up to `batch_size`, delete what succeeded, leave failures to the
/// visibility timeout (the redrive policy moves them after `max_receives`). Stops when
/// `stop` is set.
pub async fn consume_sqs(
    client: aws_sdk_sqs::Client,
    url: String,
    runner: Arc<dyn Consume>,
    options: DevOptions,
    lines: LineSink,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = tokio::select! {
            batch = receive(&client, &url, options.batch_size as i32, Duration::from_secs(1)) => batch,
            _ = stop.changed() => continue,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(queue = %url, error = %e, "receive failed; polling again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let records: Vec<Record> = batch.iter().map(Record::from).collect();
        let report = runner.run_until(&records, Some(tokio::time::Instant::now() + options.handler_timeout)).await;
        let mut done = Vec::new();
        let mut out = String::new();
        for (message, line) in batch.iter().zip(report.records) {
            push_line(&mut out, &line, &options);
            if !line.retry() {
                done.extend(message.receipt_handle().map(str::to_owned));
                continue;
            }
            // Hidden as the record asked (a claim still held, a Retry-After), as the Lambda
            // does; otherwise the queue's visibility timeout applies.
            if let (Some(after), Some(receipt)) =
                (hide_for(&line.outcome, options.retry_delay), message.receipt_handle())
            {
                if let Err(e) = crate::aws::set_visibility(&client, &url, receipt, after).await {
                    tracing::warn!(queue = %url, error = %e, "the record returns at the queue's visibility timeout");
                }
            }
            if line.attempt >= options.max_receives {
                // The redrive policy moves it to the dead-letter queue at its next receive.
                dead_lettered_line(line, &mut out, &options);
            }
        }
        lines(out);
        if let Err(e) = delete(&client, &url, &done).await {
            tracing::warn!(queue = %url, error = %e, "delete failed; the messages will be delivered again");
        }
    }
}

/// A running local pipeline.
pub struct Dev {
    /// The address ingest listens on.
    pub addr: SocketAddr,
    /// The in-memory queues, when the backend is memory.
    pub memory: Option<Arc<MemoryQueues>>,
    sqs: Option<(aws_sdk_sqs::Client, Queues)>,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    consumers: JoinSet<()>,
    http_stop: Option<watch::Sender<bool>>,
    archives_unrouted: bool,
}

impl Dev {
    /// Binds `listener` and starts ingest and the seven consumers with the shipped handlers.
    pub fn start(
        listener: TcpListener,
        config: IngestConfig,
        options: DevOptions,
        lines: LineSink,
        backend: Backend,
        store: Arc<dyn IdempotencyStore>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let archives_unrouted = options.outlets.archive.is_some() && matches!(backend, Backend::Memory);
        let (stop, stopped) = watch::channel(false);
        let mut consumers = JoinSet::new();
        let config = Arc::new(config);
        let runner = |group, dead_letters: Arc<dyn DeadLetterSink>| {
            let (store, outlets) = (store.clone(), options.outlets.clone());
            let chaos = WithChaos {
                percent: options.chaos_percent,
                store,
                dead_letters,
                outlets,
                ordering: options.ordering,
                max_receives: options.max_receives,
            };
            with_handler(group, chaos)
        };
        let (router, memory, sqs) = match backend {
            Backend::Memory => {
                let queues = MemoryQueues::new(options.queue_capacity, options.max_receives);
                let queues = Arc::new(match options.queue_type {
                    cf_webhooks::stack::QueueType::Fifo => queues.fifo(),
                    cf_webhooks::stack::QueueType::Standard => queues,
                });
                for group in EventGroup::ALL {
                    let runner = runner(group, queues.clone());
                    for _ in 0..options.concurrency.max(1) {
                        let (queues, runner, options) = (queues.clone(), runner.clone(), options.clone());
                        consumers.spawn(consume(queues, runner, options, lines.clone(), stopped.clone()));
                    }
                }
                if let Some(archive) = options.outlets.archive.clone() {
                    consumers.spawn(archive_unrouted_memory(queues.clone(), archive, options.clone(), stopped.clone()));
                }
                (ingest_router_with(config, queues.clone(), options.inspector.clone()), Some(queues), None)
            }
            Backend::Sqs { client, consumer_client, queues } => {
                for group in EventGroup::ALL {
                    let route = Route::Group(group);
                    let dead_letters =
                        SqsDeadLetters::new(consumer_client.clone(), queues.dead_letters[&route].clone());
                    let runner = runner(group, Arc::new(dead_letters));
                    let url = queues.sources.get(route).to_owned();
                    for _ in 0..options.concurrency.max(1) {
                        let (client, url, runner) = (consumer_client.clone(), url.clone(), runner.clone());
                        consumers.spawn(consume_sqs(
                            client,
                            url,
                            runner,
                            options.clone(),
                            lines.clone(),
                            stopped.clone(),
                        ));
                    }
                }
                let publisher = Arc::new(SqsQueues::new(client.clone(), queues.sources.clone()));
                (ingest_router_with(config, publisher, options.inspector.clone()), None, Some((client, queues)))
            }
        };
        let (http_stop, http_stopped) = watch::channel(false);
        let server = tokio::spawn(super::server::serve(listener, router, options.limits, http_stopped));
        Ok(Self {
            addr,
            memory,
            sqs,
            stop,
            server: Some(server),
            consumers,
            http_stop: Some(http_stop),
            archives_unrouted,
        })
    }

    /// Stops taking deliveries, lets the consumers finish every queued record (retries
    /// included), then stops them.
    pub async fn drain(mut self) -> std::io::Result<()> {
        if let Some(http_stop) = self.http_stop.take() {
            let _ = http_stop.send(true);
        }
        let served = match self.server.take() {
            Some(server) => server.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        };
        if let Some(queues) = &self.memory {
            queues.close();
            let left = queues.drained().await;
            if left > 0 {
                tracing::warn!(
                    left,
                    "copies still waiting on claims held by another process are dropped: that process's own \
                     messages carry their events"
                );
            }
        }
        if self.sqs.is_some() {
            // SQS keeps what is queued: draining is a courtesy, so an SQS that cannot be
            // read three times in a row ends it instead of holding the process forever;
            // one slow or throttled answer does not.
            let mut failures = 0;
            loop {
                match self.sqs_pending().await {
                    Ok(0) => break,
                    Ok(_) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        if failures == 3 {
                            tracing::warn!(error = %e, "SQS unreachable while draining; what is queued stays in SQS for the next start");
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        let _ = self.stop.send(true);
        while self.consumers.join_next().await.is_some() {}
        served
    }

    /// Messages not yet handled, over all groups (and `unrouted`, when it is archived).
    pub async fn pending(&self) -> u64 {
        let archived = self.archives_unrouted;
        let groups = Route::ALL.into_iter().filter(move |r| archived || *r != Route::Unrouted);
        if let Some(queues) = &self.memory {
            return groups.map(|r| queues.pending(r) as u64).sum();
        }
        // An unreachable queue counts as holding something.
        self.sqs_pending().await.unwrap_or(1)
    }

    /// Messages in the SQS source queues (visible, in flight or delayed); an error when
    /// any queue cannot be read.
    async fn sqs_pending(&self) -> Result<u64, String> {
        let Some((client, queues)) = &self.sqs else { return Ok(0) };
        let mut total = 0;
        for route in Route::ALL.into_iter().filter(|r| *r != Route::Unrouted) {
            total += depth(client, queues.sources.get(route)).await?;
        }
        Ok(total)
    }
}
