//! The local pipeline assembled: its settings, and ingest, the queues and all seven
//! consumers started in one process and drained on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cf_webhooks::aws::sqs::{SqsDeadLetters, SqsQueues};
use cf_webhooks::config::IngestConfig;
use cf_webhooks::consumer::{DeadLetterSink, IdempotencyStore, MemoryStore};
use cf_webhooks::events::{EventGroup, Route};
use cf_webhooks::queue::memory::MemoryQueues;
use cf_webhooks::queue::{PublishError, Publisher};
use cf_webhooks_consumers::{with_handler, Outlets};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::chaos::WithChaos;
use super::consume::{archive_unrouted_memory, consume, consume_sqs};
use super::routes::{ingest_router_with, Front};
use crate::aws::{depth, Queues};

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
    /// The `Host` names answered to, on every route (`--allow-host`).
    pub hosts: super::hosts::Hosts,
    /// X-Ray trace headers for every delivery, named by its record lines (`--tracing`).
    pub tracing: bool,
    /// Records a consumer works on at once (`--records-in-flight`).
    pub records_in_flight: usize,
    /// Drift from the documented payloads reported on the record lines, or not
    /// (`--drift`).
    pub drift: cf_webhooks::consumer::DriftMode,
    /// The in-memory store with its cap (`--max-remembered`): while it is full, ingest
    /// refuses new events.
    pub remembering: Option<Arc<MemoryStore>>,
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
            hosts: super::hosts::Hosts::any(),
            records_in_flight: cf_webhooks::config::DEFAULT_RECORDS_IN_FLIGHT,
            drift: cf_webhooks::consumer::DriftMode::default(),
            remembering: None,
            tracing: true,
        }
    }
}

impl DevOptions {
    fn front(&self) -> Front {
        Front { inspector: self.inspector.clone(), hosts: self.hosts.clone(), tracing: self.tracing }
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

/// Ingest's publisher in front of an in-memory store with a cap: while the store is
/// [`full`](MemoryStore::full), a new event is refused (503, and the ack path's error
/// line says why) rather than taken and then remembered past the cap, or an event still
/// inside its memory forgotten.
pub struct Admitting<P> {
    inner: Arc<P>,
    store: Option<Arc<MemoryStore>>,
}

impl<P> Admitting<P> {
    /// `inner`, refusing while `store` (when given) is full.
    pub fn new(inner: Arc<P>, store: Option<Arc<MemoryStore>>) -> Self {
        Self { inner, store }
    }
}

impl<P: Publisher> Publisher for Admitting<P> {
    async fn publish(&self, message: cf_webhooks::message::Message) -> Result<(), PublishError> {
        if let Some(store) = self.store.as_ref().filter(|store| store.full()) {
            return Err(PublishError::Remembering { cap: store.cap().unwrap_or_default() });
        }
        self.inner.publish(message).await
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
                policy: cf_webhooks_consumers::Policy {
                    order: options.ordering,
                    max_receives: options.max_receives,
                    records_in_flight: options.records_in_flight,
                    drift: options.drift,
                },
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
                let publisher = Arc::new(Admitting::new(queues.clone(), options.remembering.clone()));
                (ingest_router_with(config, publisher, options.front()), Some(queues), None)
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
                let sqs = Arc::new(SqsQueues::new(client.clone(), queues.sources.clone()));
                let publisher = Arc::new(Admitting::new(sqs, options.remembering.clone()));
                (ingest_router_with(config, publisher, options.front()), None, Some((client, queues)))
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
