//! The consumer batch runner: each record on its own, typed decoding, idempotency on
//! `PayloadId`, the group's handler with panics caught, and the partial batch answer.

pub mod idempotency;
pub mod lifecycle;
mod record;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::Serialize;

use crate::archive::{Archive, Stored, ARCHIVE};
use crate::destination::{Delivery, Destination, Verdict};
use crate::events::ordering::Entity;
use crate::events::{routing, EventGroup, GroupEvent};
use crate::message::attr;
pub use idempotency::{
    Claim, Claimant, Done, IdempotencyStore, MemoryStore, Owner, StoreError, StoreErrorKind, Version,
};
pub use lifecycle::{Effect, Facts, Input, Lifecycle};
pub use record::Record;

/// Any error a handler wants to report.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a handler failed.
pub enum HandlerError {
    /// Worth retrying (a downstream system is down, a timeout): the record is retried and,
    /// after the queue's maximum receive count, dead-lettered.
    Retryable(BoxError),
    /// Will never succeed (the event makes no sense to this handler): the record goes to
    /// the dead-letter queue at once.
    Permanent(BoxError),
}

impl HandlerError {
    /// A failure worth retrying.
    pub fn retry(error: impl Into<BoxError>) -> Self {
        Self::Retryable(error.into())
    }

    /// A failure no retry will fix.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }
}

/// `?` on any error makes it retryable; say `HandlerError::permanent` when it is not.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self::Retryable(Box::new(error))
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(e) => write!(f, "Retryable({e:?})"),
            Self::Permanent(e) => write!(f, "Permanent({e:?})"),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(e) | Self::Permanent(e) => e.fmt(f),
        }
    }
}

/// What a handler gets beside the typed event.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The event's JSON exactly as Creative Force sent it.
    pub raw: &'a str,
    /// The queue's message ID.
    pub message_id: &'a str,
    /// How often the message has been received, this time included.
    pub receive_count: u32,
}

/// The slow work for one event group: write one per group.
pub trait Handler: Send + Sync {
    /// The typed event of the group.
    type Event: GroupEvent + Entity;

    /// Applies one event. Called at most once per `PayloadId` to success; a retryable
    /// error or a panic lets the record be delivered again.
    fn handle(&self, event: &Self::Event, ctx: &Context<'_>) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A dead-letter queue refused a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dead-letter queue: {0}")]
pub struct DeadLetterError(pub String);

/// Where permanently failed records go at once.
#[async_trait::async_trait]
pub trait DeadLetterSink: Send + Sync {
    /// False when there is no dead-letter queue to send to: permanent failures are then
    /// retried until the queue's redrive policy moves them.
    fn available(&self) -> bool {
        true
    }

    /// Stores `record` in the dead-letter queue of `group`, with `reason`.
    async fn dead_letter(&self, group: EventGroup, record: &Record, reason: &str) -> Result<(), DeadLetterError>;
}

#[async_trait::async_trait]
impl<Q: DeadLetterSink + ?Sized> DeadLetterSink for std::sync::Arc<Q> {
    fn available(&self) -> bool {
        (**self).available()
    }
    async fn dead_letter(&self, group: EventGroup, record: &Record, reason: &str) -> Result<(), DeadLetterError> {
        (**self).dead_letter(group, record, reason).await
    }
}

/// No dead-letter queue: permanent failures are retried until the queue's redrive policy
/// moves them to its dead-letter queue.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeadLetters;

#[async_trait::async_trait]
impl DeadLetterSink for NoDeadLetters {
    fn available(&self) -> bool {
        false
    }
    async fn dead_letter(&self, _: EventGroup, _: &Record, _: &str) -> Result<(), DeadLetterError> {
        Err(DeadLetterError("no dead-letter queue".into()))
    }
}

/// Between the group and the `PayloadId` (and a replay's run) in a claim's key:
/// `task#<PayloadId>`.
pub const CLAIM_SEPARATOR: char = '#';
/// Between the group, the entity and the facet in a version's key: `task→<TaskId>→progress`.
pub const SUBJECT_SEPARATOR: char = '\u{2192}';

/// The beginnings of every key a group's consumer writes in the idempotency table: its
/// claims and its versions both start with the group, so IAM can keep each consumer to
/// its own items (`dynamodb:LeadingKeys`).
pub fn key_prefixes(group: EventGroup) -> [String; 2] {
    [format!("{group}{CLAIM_SEPARATOR}"), format!("{group}{SUBJECT_SEPARATOR}")]
}

/// How a record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler and every destination applied it.
    Processed,
    /// Already applied before: skipped.
    Duplicate,
    /// Not applied: a newer event of the same facet of the same entity was applied
    /// already (per-entity order, `CF_ORDERING=latest`).
    Stale {
        /// The version (`EventDatetimeUtc`) applied already.
        newer: i64,
        /// This event's.
        version: i64,
    },
    /// Not applied (or not everywhere); the record is retried, and only what failed is
    /// done again.
    Failed {
        /// Why.
        reason: String,
        /// The failure will not go away (no dead-letter queue was at hand to take it).
        permanent: bool,
        /// When to deliver it again, when a destination said (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Not applied yet: another attempt holds the record's claim. The record is delivered
    /// again after `retry_after` (shorter or longer than the queue's visibility timeout,
    /// see [`claim_wait`](lifecycle::claim_wait)), and is then a duplicate, or applied
    /// when the holder gave up.
    Waiting {
        /// Why, with the holder's lease and the wait.
        reason: String,
        /// When to deliver it again.
        retry_after: Duration,
    },
    /// Not applied, and moved to the dead-letter queue.
    DeadLettered {
        /// Why.
        reason: String,
    },
    /// Not applied, and moved to the dead-letter queue: the event is older than the
    /// idempotency store remembers, so whether it was applied cannot be told (a message
    /// redriven after the memory ended). A replay run applies it deliberately.
    Expired {
        /// Why, with the event's time and the memory.
        reason: String,
    },
}

impl Outcome {
    /// When the record asked to be delivered again (a claim held elsewhere, a
    /// `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Failed { retry_after, .. } => *retry_after,
            Self::Waiting { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A retryable failure.
    pub fn failed(reason: impl Into<String>) -> Self {
        Self::Failed { reason: reason.into(), permanent: false, retry_after: None }
    }

    /// `processed`, `duplicate`, `stale`, `failed` or `dead-lettered`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::Stale { .. } => "stale",
            Self::Failed { .. } => "failed",
            Self::Waiting { .. } => "waiting",
            Self::DeadLettered { .. } => "dead-lettered",
            Self::Expired { .. } => "expired",
        }
    }

    /// The failure reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Failed { reason, .. }
            | Self::Waiting { reason, .. }
            | Self::DeadLettered { reason }
            | Self::Expired { reason } => Some(reason),
            _ => None,
        }
    }
}

/// How one destination (or the archive) fared with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Delivered by this attempt.
    Delivered,
    /// Delivered by an earlier attempt: not repeated.
    Earlier,
    /// Failed; retried or dead-lettered with the record.
    Failed,
    /// Archived by this attempt.
    Archived,
    /// Already in the archive (a duplicate delivery, or a retry).
    Present,
}

/// The end of one record, as logged and as printed by `cfwh dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordReport {
    /// `PayloadId`, when the body had one.
    pub payload_id: Option<String>,
    /// The queue's group.
    pub event_group: EventGroup,
    /// `Action`, when the body had one.
    pub action: Option<String>,
    /// `processed`, `duplicate`, `failed` or `dead-lettered`.
    #[serde(rename = "outcome", serialize_with = "outcome_word")]
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The queue's message ID.
    pub message_id: String,
    /// Delivery attempt, from 1.
    pub attempt: u32,
    /// The replay run that sent it again, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_run: Option<String>,
    /// Each destination (and the archive) and how it fared.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub destinations: BTreeMap<&'static str, Step>,
    /// The X-Ray trace the delivery was accepted in (`1-…`), when it came with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

fn outcome_word<S: serde::Serializer>(outcome: &Outcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(outcome.word())
}

impl RecordReport {
    /// True when the queue must deliver the record again.
    pub fn retry(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. } | Outcome::Waiting { .. })
    }

    /// One JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("reports always serialize")
    }
}

/// The end of a batch.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// One report per record, in the batch's order.
    pub records: Vec<RecordReport>,
}

impl BatchReport {
    /// The message IDs to return as `batchItemFailures`.
    pub fn failures(&self) -> Vec<&str> {
        self.records.iter().filter(|r| r.retry()).map(|r| r.message_id.as_str()).collect()
    }
}

/// A batch runner with its handler's type erased: what a host (the Lambda glue, `cfwh
/// dev`) holds once it has picked the group to serve.
#[async_trait::async_trait]
pub trait Consume: Send + Sync {
    /// The group whose records it runs.
    fn group(&self) -> EventGroup;

    /// Handles every record of a batch; see [`Runner::run_until`].
    async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport;
}

/// What a consumer does with an event older than one already applied to the same facet
/// of the same entity (`CF_ORDERING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Skip it as `stale`: a late retry never overwrites newer state. The default.
    #[default]
    Latest,
    /// Apply every event, whatever its age.
    All,
}

impl Order {
    /// `latest` or `all`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "latest" => Some(Self::Latest),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// How long before a batch's deadline handlers and destinations are stopped, so that
/// the writes that settle each record (complete, release, dead-letter) fit before it. A
/// batch with less time keeps half of it for settling.
pub const SETTLE_MARGIN: Duration = Duration::from_millis(1000);

/// Runs batches of one group through its handler and its destinations. The store, the
/// dead-letter queue, the destinations and the archive are picked by the host once, at
/// start-up. Each record's steps are decided by its [`Lifecycle`]; the runner executes
/// them.
pub struct Runner<H> {
    handler: H,
    store: Box<dyn IdempotencyStore>,
    dead_letters: Box<dyn DeadLetterSink>,
    destinations: Vec<std::sync::Arc<dyn Destination>>,
    names: Vec<&'static str>,
    archive: Option<Archive>,
    ordering: Order,
    owners: Owners,
    max_receives: u32,
}

/// The owner tokens of this runner's attempts: a random prefix per runner and a counter,
/// so that no two attempts anywhere share one.
#[derive(Debug)]
struct Owners {
    prefix: u64,
    next: std::sync::atomic::AtomicU64,
}

impl Owners {
    fn new(prefix: u64) -> Self {
        Self { prefix, next: std::sync::atomic::AtomicU64::new(0) }
    }

    fn next(&self) -> Owner {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Owner(u128::from(self.prefix) << 64 | u128::from(n))
    }
}

impl<H> fmt::Debug for Runner<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("dead_letters", &self.dead_letters.available())
            .field("destinations", &self.names)
            .field("archive", &self.archive.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl<H: Handler> Consume for Runner<H> {
    fn group(&self) -> EventGroup {
        H::Event::GROUP
    }

    async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
        Runner::run_until(self, records, deadline).await
    }
}

/// One record in a batch: what it is, and its lifecycle once its event is read.
struct Attempt<'r, E> {
    record: &'r Record,
    payload_id: Option<String>,
    action: Option<String>,
    replay_run: Option<String>,
    /// The archive's step: the destinations' are the lifecycle's.
    archived: Option<Step>,
    /// Set once the event is read (or refused).
    life: Option<Lifecycle<'r>>,
    effect: Effect,
    claim: Option<ClaimOf<'r, E>>,
}

/// A record's body and typed event, read for the whole batch before any await.
struct Read<E> {
    /// Taken by the record's attempt.
    bytes: Option<Result<Vec<u8>, String>>,
    /// `None` when the body could not be read.
    event: Option<Result<E, String>>,
}

/// What the steps of a readable record need. The typed event is the batch's: large, it
/// is decoded into one allocation for the whole batch, never moved through the records'
/// futures.
struct ClaimOf<'r, E> {
    event: &'r E,
    bytes: Vec<u8>,
    key: String,
    owner: Owner,
    /// `<group>→<entity>→<facet>`, when per-entity order applies.
    subject: Option<String>,
    /// The time its record is remembered from: the event's, or its replay's.
    remembered_from: i64,
}

impl<E: GroupEvent> ClaimOf<'_, E> {
    /// Who writes to the claim.
    fn who(&self) -> Claimant<'_> {
        Claimant { key: &self.key, owner: self.owner, event_ms: self.remembered_from }
    }

    /// The facet's version a write raises, when it is to.
    fn version(&self, write: bool) -> Option<Version<'_>> {
        let subject = self.subject.as_deref().filter(|_| write)?;
        Some(Version { subject, at: self.event.envelope().event_datetime_utc })
    }
}

/// When handlers and destinations stop, and when settling must be done.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    work: Option<tokio::time::Instant>,
    settle: Option<tokio::time::Instant>,
}

impl Deadlines {
    fn before(deadline: Option<tokio::time::Instant>) -> Self {
        let work = deadline.map(|deadline| {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            deadline - SETTLE_MARGIN.min(left / 2)
        });
        Self { work, settle: deadline }
    }
}

/// `future`, or `None` once `deadline` has passed.
async fn within<T>(deadline: Option<tokio::time::Instant>, future: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(future.await),
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
    }
}

fn late<T>(what: &str) -> Result<T, StoreError> {
    Err(StoreError::unavailable(format!("{what} ran past the batch's time")))
}

impl<H: Handler> Runner<H> {
    /// A runner for `handler`, with its idempotency store and dead-letter sink, and no
    /// destination.
    pub fn new(
        handler: H,
        store: impl IdempotencyStore + 'static,
        dead_letters: impl DeadLetterSink + 'static,
    ) -> Self {
        use opentelemetry_sdk::trace::IdGenerator as _;
        let prefix = u64::from_be_bytes(opentelemetry_aws::trace::XrayIdGenerator::default().new_span_id().to_bytes());
        Self {
            handler,
            store: Box::new(store),
            dead_letters: Box::new(dead_letters),
            destinations: Vec::new(),
            names: Vec::new(),
            archive: None,
            ordering: Order::default(),
            owners: Owners::new(prefix),
            max_receives: crate::stack::DEFAULT_MAX_RECEIVES,
        }
    }

    /// Names its attempts' owner tokens from `prefix` (a simulation's seed) rather than a
    /// random one.
    pub fn with_owner_prefix(mut self, prefix: u64) -> Self {
        self.owners = Owners::new(prefix);
        self
    }

    /// Skips events older than one applied already to the same facet of the same entity
    /// ([`Order::Latest`]), or applies every event ([`Order::All`]).
    pub fn with_ordering(mut self, ordering: Order) -> Self {
        self.ordering = ordering;
        self
    }

    /// The redrive policy's `maxReceiveCount` of the queue it reads: a copy waiting on
    /// another's claim plans its waits within it ([`claim_wait`](lifecycle::claim_wait)).
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives;
        self
    }

    /// Delivers every event the handler applied to `destination` too (a retry repeats
    /// only the steps that failed).
    pub fn with_destination(mut self, destination: std::sync::Arc<dyn Destination>) -> Self {
        self.names.push(destination.name());
        self.destinations.push(destination);
        self
    }

    /// Archives every record received, before it is claimed.
    pub fn with_archive(mut self, archive: Archive) -> Self {
        self.archive = Some(archive);
        self
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Handles every record of a batch, concurrently and each on its own.
    pub async fn run(&self, records: &[Record]) -> BatchReport {
        self.run_until(records, None).await
    }

    /// As [`run`](Self::run), but the batch's answer is due at `deadline`: a handler or
    /// destination still running [`SETTLE_MARGIN`] before it is abandoned and its record
    /// fails (retryable), and the writes that settle each record stop at `deadline`, so
    /// the other records are not redelivered with it.
    ///
    /// Each record is archived, claimed and handled on its own; then each destination
    /// takes, in one call, the records that still need it; then each record is
    /// completed, or released with the steps that succeeded.
    pub async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
        let deadlines = Deadlines::before(deadline);
        if records.iter().any(|r| r.message_group.is_some()) {
            return self.run_in_groups(records, deadlines).await;
        }
        self.run_together(records, deadlines).await
    }

    /// A FIFO batch: the records of one message group (one entity) one after the other,
    /// each with its destinations, in the batch's order; the groups concurrently. After a
    /// record of a group fails, the group's later records are not run and fail too, so
    /// they come back in order behind it (what SQS FIFO expects of a partial answer).
    async fn run_in_groups(&self, records: &[Record], deadlines: Deadlines) -> BatchReport {
        let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let group = record.message_group.as_deref();
            match groups.iter_mut().find(|(g, _)| *g == group && group.is_some()) {
                Some((_, members)) => members.push(index),
                None => groups.push((group, vec![index])),
            }
        }
        let runs = groups.into_iter().map(|(_, members)| async move {
            let mut reports = Vec::with_capacity(members.len());
            let mut blocked: Option<String> = None;
            for index in members {
                let record = &records[index];
                let report = match &blocked {
                    Some(earlier) => {
                        let reason = format!("an earlier record of its message group failed ({earlier})");
                        let report = RecordReport {
                            payload_id: record.attribute(attr::PAYLOAD_ID).map(str::to_owned),
                            event_group: H::Event::GROUP,
                            action: record.attribute(attr::ACTION).map(str::to_owned),
                            reason: Some(reason.clone()),
                            outcome: Outcome::failed(reason),
                            message_id: record.message_id.clone(),
                            attempt: record.receive_count,
                            replay_run: record.attribute(attr::REPLAY_RUN).map(str::to_owned),
                            destinations: BTreeMap::new(),
                            trace_id: record.trace_id(),
                        };
                        log(&report);
                        report
                    }
                    None => self.run_together(std::slice::from_ref(record), deadlines).await.records.remove(0),
                };
                if blocked.is_none() && report.retry() {
                    blocked = Some(record.message_id.clone());
                }
                reports.push((index, report));
            }
            reports
        });
        let mut reports: Vec<(usize, RecordReport)> = futures_util::future::join_all(runs).await.concat();
        reports.sort_by_key(|(index, _)| *index);
        BatchReport { records: reports.into_iter().map(|(_, report)| report).collect() }
    }

    /// Records that may run at once: each read, claimed and handled concurrently, then
    /// each destination once for all that wait for it, each record settling as soon as
    /// nothing is left for it.
    async fn run_together(&self, records: &[Record], deadlines: Deadlines) -> BatchReport {
        // Each body, and its typed event, read before any await: the events of the batch
        // in one allocation.
        let mut read: Vec<Read<H::Event>> = records
            .iter()
            .map(|record| {
                let bytes = decode_body(record);
                let event = bytes.as_ref().ok().map(|bytes| H::Event::decode(bytes).map_err(|e| e.to_string()));
                Read { bytes: Some(bytes), event }
            })
            .collect();
        let mut attempts = futures_util::future::join_all(
            records.iter().zip(read.iter_mut()).map(|(record, read)| self.begin(record, read, deadlines)),
        )
        .await;
        for destination in &self.destinations {
            self.deliver(destination.as_ref(), &mut attempts, deadlines).await;
        }
        BatchReport { records: attempts.into_iter().map(|attempt| self.report(attempt)).collect() }
    }

    /// Reads a record (decode, archive, typed event), starts its lifecycle and runs it
    /// up to its first destination or its end.
    async fn begin<'r>(
        &'r self,
        record: &'r Record,
        read: &'r mut Read<H::Event>,
        deadlines: Deadlines,
    ) -> Attempt<'r, H::Event> {
        let decoded = read.bytes.take().unwrap_or_else(|| Err("read twice".to_owned()));
        let event = read.event.as_ref();
        // Ingest put the envelope's facts in the message attributes: no second parse of
        // the body for them, unless a message arrives without (sent by other means).
        let (payload_id, action) = match (record.attribute(attr::PAYLOAD_ID), record.attribute(attr::ACTION), &decoded)
        {
            (Some(payload_id), Some(action), _) => (Some(payload_id.to_owned()), Some(action.to_owned())),
            (_, _, Ok(bytes)) => match routing::parse(bytes) {
                Ok(r) => (Some(r.payload_id.into_owned()), Some(r.action.into_owned())),
                Err(_) => (None, None),
            },
            _ => (None, None),
        };
        let replay_run = record.attribute(attr::REPLAY_RUN).filter(|r| !r.is_empty()).map(str::to_owned);
        let mut attempt = Attempt {
            record,
            payload_id,
            action,
            replay_run,
            archived: None,
            life: None,
            effect: Effect::End(Outcome::Processed),
            claim: None,
        };
        match decoded {
            Err(why) => self.refuse(&mut attempt, why),
            Ok(bytes) => {
                // Archived before the typed decode and the claim: a duplicate finds it
                // there already, and an event the typed model cannot read (a field
                // Creative Force changed) is kept for a replay once the model is fixed. A
                // replayed record came from the archive.
                if let (Some(archive), None) = (&self.archive, &attempt.replay_run) {
                    match Box::pin(Self::archive(archive, record, &bytes)).await {
                        Ok(step) => attempt.archived = step,
                        Err(e) => {
                            attempt.archived = Some(Step::Failed);
                            attempt.effect = Effect::End(Outcome::failed(e));
                            return attempt;
                        }
                    }
                }
                match event {
                    Some(Ok(event)) => self.read(&mut attempt, bytes, event),
                    Some(Err(e)) => self.refuse(&mut attempt, e.clone()),
                    None => self.refuse(&mut attempt, "the body was not read".to_owned()),
                }
            }
        }
        self.drive(&mut attempt, deadlines).await;
        attempt
    }

    /// Archives a record by the envelope ingest routed it by; `None` when the body is
    /// not one of this group's events (it came by other means than ingest: the typed
    /// decode dead-letters it, with the body).
    async fn archive(archive: &Archive, record: &Record, bytes: &[u8]) -> Result<Option<Step>, String> {
        let Ok(found) =
            routing::parse(bytes).map_err(drop).and_then(|f| (f.group == H::Event::GROUP).then_some(f).ok_or(()))
        else {
            return Ok(None);
        };
        match archive.event(H::Event::GROUP, &found.payload_id, found.event_time_ms, bytes, &record.reception()).await {
            Ok(Stored::Written) => Ok(Some(Step::Archived)),
            Ok(Stored::Present) => Ok(Some(Step::Present)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// What the lifecycle of a record starts from.
    fn facts(&self, record: &Record, replay: bool) -> Facts<'_> {
        Facts {
            event_time_ms: 0,
            now_ms: self.store.clock().now_ms(),
            memory: self.store.memory(),
            replay,
            replayed_at_ms: None,
            guarded: false,
            destinations: &self.names,
            dead_letters: self.dead_letters.available(),
            receives_left: self.max_receives.saturating_sub(record.receive_count),
        }
    }

    /// A record no handler can take: to the dead-letter queue with `why`.
    fn refuse<'r>(&'r self, attempt: &mut Attempt<'r, H::Event>, why: String) {
        let (life, effect) = Lifecycle::refuse(self.facts(attempt.record, attempt.replay_run.is_some()), why);
        (attempt.life, attempt.effect) = (Some(life), effect);
    }

    /// Decodes the typed event and starts the record's lifecycle (no await here: the
    /// event, a large value, never lives in a batch's futures but in its box).
    fn read<'r>(&'r self, attempt: &mut Attempt<'r, H::Event>, bytes: Vec<u8>, event: &'r H::Event) {
        let envelope = event.envelope();
        // The key comes from the body, never from an attribute: it is what was signed. A
        // replay run is applied once more, once.
        let group = H::Event::GROUP.as_str();
        let run = attempt.replay_run.as_deref();
        let key = joined(
            CLAIM_SEPARATOR,
            &[group, &envelope.payload_id, run.unwrap_or_default()][..2 + usize::from(run.is_some())],
        );
        // Per-entity order: the facet of the entity this event moves.
        let subject = match self.ordering {
            Order::Latest => event.subject().map(|s| joined(SUBJECT_SEPARATOR, &[group, &s.entity, &s.facet])),
            Order::All => None,
        };
        let replayed_at_ms = attempt
            .replay_run
            .as_ref()
            .and_then(|_| attempt.record.attribute(attr::REPLAYED_AT)?.trim().parse::<i64>().ok());
        let facts = Facts {
            event_time_ms: envelope.event_datetime_utc,
            replayed_at_ms,
            guarded: subject.is_some(),
            ..self.facts(attempt.record, attempt.replay_run.is_some())
        };
        let (life, effect) = Lifecycle::start(facts);
        (attempt.life, attempt.effect) = (Some(life), effect);
        // A replayed record is remembered from when its run sent it, if later.
        let remembered_from = envelope.event_datetime_utc.max(replayed_at_ms.unwrap_or(i64::MIN));
        attempt.claim = Some(ClaimOf { event, bytes, key, owner: self.owners.next(), subject, remembered_from });
    }

    /// Executes the record's effects until it waits for a destination or ends.
    async fn drive(&self, attempt: &mut Attempt<'_, H::Event>, deadlines: Deadlines) {
        loop {
            let Some(life) = attempt.life.as_mut() else { return };
            let input = match (&attempt.effect, &attempt.claim) {
                (Effect::Deliver(_) | Effect::End(_), _) => return,
                (Effect::DeadLetter(reason), _) => {
                    let sent = within(
                        deadlines.settle,
                        self.dead_letters.dead_letter(H::Event::GROUP, attempt.record, reason),
                    )
                    .await;
                    Input::DeadLettered(match sent {
                        Some(result) => result.map_err(|e| e.to_string()),
                        None => Err("it ran past the batch's time".to_owned()),
                    })
                }
                (_, None) => {
                    debug_assert!(false, "a store effect for a record without a claim");
                    return;
                }
                (Effect::Claim, Some(c)) => Input::Claimed(
                    within(deadlines.work, self.store.claim(c.who())).await.unwrap_or_else(|| late("the claim")),
                ),
                (Effect::ReadVersion, Some(c)) => {
                    let subject = c.subject.as_deref().unwrap_or_default();
                    Input::Version(
                        within(deadlines.work, self.store.applied_version(subject))
                            .await
                            .unwrap_or_else(|| late("reading the version")),
                    )
                }
                (Effect::Handle, Some(c)) => Input::Handled(self.handle(attempt.record, c, deadlines.work).await),
                (&Effect::Record { version }, Some(c)) => Input::Written(
                    within(deadlines.settle, self.store.record(c.who(), life.done(), c.version(version)))
                        .await
                        .unwrap_or_else(|| late("recording the handler's step")),
                ),
                (&Effect::Complete { version }, Some(c)) => Input::Written(
                    within(deadlines.settle, self.store.complete(c.who(), c.version(version)))
                        .await
                        .unwrap_or_else(|| late("the completion")),
                ),
                (&Effect::Release { version }, Some(c)) => Input::Written(
                    within(deadlines.settle, self.store.release(c.who(), life.done(), c.version(version)))
                        .await
                        .unwrap_or_else(|| late("the release")),
                ),
            };
            attempt.effect = life.on(input);
        }
    }

    /// The handler, with panics caught and stopped at `deadline`.
    async fn handle(
        &self,
        record: &Record,
        claim: &ClaimOf<'_, H::Event>,
        deadline: Option<tokio::time::Instant>,
    ) -> Verdict {
        let raw = std::str::from_utf8(&claim.bytes).unwrap_or_default();
        let ctx = Context { raw, message_id: &record.message_id, receive_count: record.receive_count };
        let work = AssertUnwindSafe(self.handler.handle(claim.event, &ctx)).catch_unwind();
        match within(deadline, work).await {
            None => Verdict::retry("the handler ran past its time and was stopped"),
            Some(Ok(Ok(()))) => Verdict::Delivered,
            Some(Ok(Err(HandlerError::Retryable(e)))) => Verdict::retry(e.to_string()),
            Some(Ok(Err(HandlerError::Permanent(e)))) => Verdict::Permanent { reason: e.to_string() },
            Some(Err(panic)) => Verdict::retry(format!("handler panicked: {}", panic_message(&panic))),
        }
    }

    /// One call to `destination` with every record waiting for it, then each of those
    /// records runs on to its next destination or its end.
    async fn deliver(
        &self,
        destination: &dyn Destination,
        attempts: &mut [Attempt<'_, H::Event>],
        deadlines: Deadlines,
    ) {
        let name = destination.name();
        let waits = |a: &Attempt<'_, H::Event>| matches!(a.effect, Effect::Deliver(n) if n == name);
        let verdicts = {
            let deliveries: Vec<Delivery<'_>> = attempts
                .iter()
                .filter(|a| waits(a))
                .filter_map(|a| {
                    let c = a.claim.as_ref()?;
                    Some(Delivery {
                        group: H::Event::GROUP,
                        body: &c.bytes,
                        payload_id: &c.event.envelope().payload_id,
                        action: c.event.action_name(),
                        event_time_ms: c.event.envelope().event_datetime_utc,
                        replay_run: a.replay_run.as_deref(),
                    })
                })
                .collect();
            if deliveries.is_empty() {
                return;
            }
            let count = deliveries.len();
            within(deadlines.work, destination.deliver(&deliveries))
                .await
                .unwrap_or_else(|| vec![Verdict::retry(format!("{name} ran past the batch's time")); count])
        };
        let mut verdicts = verdicts
            .into_iter()
            .chain(std::iter::repeat(Verdict::retry(format!("{name} gave no answer for the record"))));
        let runs: Vec<_> = attempts
            .iter_mut()
            .filter(|a| waits(a))
            .map(|attempt| {
                if let (Some(life), Some(verdict)) = (attempt.life.as_mut(), verdicts.next()) {
                    attempt.effect = life.on(Input::Delivered(verdict));
                }
                self.drive(attempt, deadlines)
            })
            .collect();
        futures_util::future::join_all(runs).await;
    }

    /// The record's report, logged.
    fn report(&self, attempt: Attempt<'_, H::Event>) -> RecordReport {
        let outcome = match attempt.effect {
            Effect::End(outcome) => outcome,
            // Waiting for a destination that was never called: not possible once every
            // destination has had its turn; retried rather than lost.
            other => Outcome::failed(format!("internal error: the record stopped at {other:?}")),
        };
        let mut destinations = attempt.life.as_ref().map(|life| life.steps().clone()).unwrap_or_default();
        if let Some(step) = attempt.archived {
            destinations.insert(ARCHIVE, step);
        }
        let report = RecordReport {
            payload_id: attempt.payload_id,
            event_group: H::Event::GROUP,
            action: attempt.action,
            reason: outcome.reason().map(str::to_owned),
            outcome,
            message_id: attempt.record.message_id.clone(),
            attempt: attempt.record.receive_count,
            replay_run: attempt.replay_run,
            destinations,
            trace_id: attempt.record.trace_id(),
        };
        log(&report);
        report
    }
}

/// `parts` joined by `separator`, in one allocation of the right size.
fn joined(separator: char, parts: &[&str]) -> String {
    let length = parts.iter().map(|p| p.len()).sum::<usize>() + separator.len_utf8() * parts.len();
    let mut text = String::with_capacity(length);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            text.push(separator);
        }
        text.push_str(part);
    }
    text
}

fn decode_body(record: &Record) -> Result<Vec<u8>, String> {
    record.body_bytes()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

fn log(report: &RecordReport) {
    let payload_id = report.payload_id.as_deref().unwrap_or("");
    let action = report.action.as_deref().unwrap_or("");
    let event_group = report.event_group.as_str();
    match &report.outcome {
        // Info is for what was applied (the handler logs it) and warnings for what went
        // wrong; a processed or skipped record is a debug line here, and both are counted
        // by the `Processed` and `Duplicates` metrics.
        Outcome::Processed | Outcome::Duplicate | Outcome::Stale { .. } => tracing::debug!(
            payload_id,
            event_group,
            action,
            outcome = report.outcome.word(),
            attempt = report.attempt,
            "record done"
        ),
        Outcome::Failed { reason, permanent, .. } => {
            tracing::warn!(
                payload_id,
                event_group,
                action,
                outcome = "failed",
                reason,
                permanent,
                attempt = report.attempt,
                "record failed; will be retried"
            )
        }
        Outcome::Waiting { reason, .. } => tracing::info!(
            payload_id,
            event_group,
            action,
            outcome = "waiting",
            reason,
            attempt = report.attempt,
            "record claimed by another attempt; waiting for it"
        ),
        Outcome::DeadLettered { reason } => {
            tracing::error!(
                payload_id,
                event_group,
                action,
                outcome = "dead-lettered",
                reason,
                "record moved to the dead-letter queue"
            )
        }
        Outcome::Expired { reason } => {
            tracing::error!(
                payload_id,
                event_group,
                action,
                outcome = "expired",
                reason,
                "record older than the idempotency memory moved to the dead-letter queue"
            )
        }
    }
}

#[cfg(test)]
mod tests;

/// Archives the records of the `unrouted` queue: authentic deliveries ingest could not
/// route, keyed by when they were received and their SHA-256 (so a delivery captured
/// and sent again lands on the same key), their reason kept as metadata. Answers, per
/// record, the message ID and what the archive did.
pub async fn archive_unrouted(archive: &Archive, records: &[Record]) -> Vec<(String, Result<Stored, String>)> {
    futures_util::future::join_all(records.iter().map(|record| async move {
        let stored = match decode_body(record) {
            Err(why) => Err(why),
            // By its SHA-256: a captured delivery replayed into quarantine any number of
            // times, on any day, is kept once.
            Ok(bytes) => {
                archive.unrouted(&bytes, &record.reception()).await.map(|(_, stored)| stored).map_err(|e| e.to_string())
            }
        };
        match &stored {
            Ok(_) => tracing::debug!(message_id = %record.message_id, "quarantined delivery archived"),
            Err(e) => tracing::warn!(message_id = %record.message_id, error = %e, "quarantined delivery not archived; retried"),
        }
        (record.message_id.clone(), stored)
    }))
    .await
}
