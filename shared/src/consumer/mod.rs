//! The consumer batch runner: each record on its own, typed decoding, idempotency on
//! `PayloadId`, the group's handler with panics caught, and the partial batch answer.

pub mod idempotency;
mod record;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::Serialize;

use crate::archive::{Archive, Stored, ARCHIVE};
use crate::destination::{Delivery, Destination, Verdict, HANDLER};
use crate::events::ordering::Entity;
use crate::events::{routing, EventGroup, GroupEvent};
use crate::message::attr;
pub use idempotency::{Claim, Done, IdempotencyStore, MemoryStore, StoreError};
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
            Self::DeadLettered { .. } => "dead-lettered",
            Self::Expired { .. } => "expired",
        }
    }

    /// The failure reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Failed { reason, .. } | Self::DeadLettered { reason } | Self::Expired { reason } => Some(reason),
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
        matches!(self.outcome, Outcome::Failed { .. })
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

/// Runs batches of one group through its handler and its destinations. The store, the
/// dead-letter queue, the destinations and the archive are picked by the host once, at
/// start-up.
pub struct Runner<H> {
    handler: H,
    store: Box<dyn IdempotencyStore>,
    dead_letters: Box<dyn DeadLetterSink>,
    destinations: Vec<std::sync::Arc<dyn Destination>>,
    archive: Option<Archive>,
    ordering: Order,
}

impl<H> fmt::Debug for Runner<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("dead_letters", &self.dead_letters.available())
            .field("destinations", &self.destinations.iter().map(|d| d.name()).collect::<Vec<_>>())
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

/// A record between its claim and its end.
struct Claimed {
    key: String,
    /// The facet of the entity this event moves, when guarded: `<group>→<entity>→<facet>`.
    subject: Option<String>,
    bytes: Vec<u8>,
    payload_id: String,
    action: String,
    event_time_ms: i64,
    done: Done,
    failures: Vec<(&'static str, Verdict)>,
}

/// Where a record stands after its handler ran.
struct Stage {
    payload_id: Option<String>,
    action: Option<String>,
    replay_run: Option<String>,
    steps: BTreeMap<&'static str, Step>,
    state: State,
}

enum State {
    Ended(Outcome),
    Claimed(Box<Claimed>),
}

impl<H: Handler> Runner<H> {
    /// A runner for `handler`, with its idempotency store and dead-letter sink, and no
    /// destination.
    pub fn new(
        handler: H,
        store: impl IdempotencyStore + 'static,
        dead_letters: impl DeadLetterSink + 'static,
    ) -> Self {
        Self {
            handler,
            store: Box::new(store),
            dead_letters: Box::new(dead_letters),
            destinations: Vec::new(),
            archive: None,
            ordering: Order::default(),
        }
    }

    /// Skips events older than one applied already to the same facet of the same entity
    /// ([`Order::Latest`]), or applies every event ([`Order::All`]).
    pub fn with_ordering(mut self, ordering: Order) -> Self {
        self.ordering = ordering;
        self
    }

    /// Delivers every decoded event to `destination` too, whatever the handler's verdict
    /// (the steps are independent; a retry repeats only those that failed).
    pub fn with_destination(mut self, destination: std::sync::Arc<dyn Destination>) -> Self {
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

    /// As [`run`](Self::run), but a handler or destination still running at `deadline`
    /// is abandoned and its record fails (retryable), so the batch answer is out before
    /// the function's own timeout and the other records are not redelivered with it.
    ///
    /// Each record is archived, claimed and handled on its own; then each destination
    /// takes, in one call, the records that still need it; then each record is
    /// completed, or released with the steps that succeeded.
    pub async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
        if records.iter().any(|r| r.message_group.is_some()) {
            return self.run_in_groups(records, deadline).await;
        }
        self.run_together(records, deadline).await
    }

    /// A FIFO batch: the records of one message group (one entity) one after the other,
    /// each with its destinations, in the batch's order; the groups concurrently. After a
    /// record of a group fails, the group's later records are not run and fail too, so
    /// they come back in order behind it (what SQS FIFO expects of a partial answer).
    async fn run_in_groups(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
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
                    None => self.run_together(std::slice::from_ref(record), deadline).await.records.remove(0),
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

    /// Records that may run at once: each archived, claimed and handled concurrently,
    /// then each destination once for them all, then each completed or released.
    async fn run_together(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
        let mut stages = futures_util::future::join_all(records.iter().map(|r| self.begin(r, deadline))).await;
        for destination in &self.destinations {
            self.deliver(destination.as_ref(), &mut stages, deadline).await;
        }
        let reports = futures_util::future::join_all(records.iter().zip(stages).map(|(r, s)| self.finish(r, s))).await;
        BatchReport { records: reports }
    }

    async fn begin(&self, record: &Record, deadline: Option<tokio::time::Instant>) -> Stage {
        let decoded = decode_body(record);
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
        let mut stage =
            Stage { payload_id, action, replay_run, steps: BTreeMap::new(), state: State::Ended(Outcome::Processed) };
        stage.state = self.claim_and_handle(record, decoded, &mut stage, deadline).await;
        stage
    }

    async fn claim_and_handle(
        &self,
        record: &Record,
        decoded: Result<Vec<u8>, String>,
        stage: &mut Stage,
        deadline: Option<tokio::time::Instant>,
    ) -> State {
        let bytes = match decoded {
            Ok(bytes) => bytes,
            Err(why) => return State::Ended(self.give_up(record, why).await),
        };
        // Archived before the typed decode and the claim: a duplicate finds it there
        // already, and an event the typed model cannot read (a field Creative Force changed)
        // is kept for a replay once the model is fixed. A replayed record came from the
        // archive. The key's facts are the envelope's, which ingest routed by.
        if let (Some(archive), None) = (&self.archive, &stage.replay_run) {
            // An unroutable body or another group's event came by other means than ingest:
            // the typed decode below dead-letters it, with the body.
            if let Ok(facts) =
                routing::parse(&bytes).map_err(drop).and_then(|f| (f.group == H::Event::GROUP).then_some(f).ok_or(()))
            {
                let archived = archive
                    .event(H::Event::GROUP, &facts.payload_id, facts.event_time_ms, &bytes, &record.reception())
                    .await;
                match archived {
                    Ok(Stored::Written) => stage.steps.insert(ARCHIVE, Step::Archived),
                    Ok(Stored::Present) => stage.steps.insert(ARCHIVE, Step::Present),
                    Err(e) => {
                        stage.steps.insert(ARCHIVE, Step::Failed);
                        return State::Ended(Outcome::failed(e.to_string()));
                    }
                };
            }
        }
        let event = match H::Event::decode(&bytes) {
            Ok(event) => event,
            Err(e) => return State::Ended(self.give_up(record, e.to_string()).await),
        };
        let envelope = event.envelope();

        // Never twice, for as long as a message can live: an event older than the store
        // remembers may have been applied and forgotten, so it is not applied again (a
        // dead letter redriven on day 8 of a 7-day memory). Its signed time says so, not
        // the message's age, which a redrive resets. A replay run is deliberate, and
        // keyed by its run.
        if let (None, Some(memory)) = (&stage.replay_run, self.store.memory()) {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let oldest = now_ms.saturating_sub(i64::try_from(memory.as_millis()).unwrap_or(i64::MAX));
            if envelope.event_datetime_utc < oldest {
                let reason = format!(
                    "expired: the event's EventDatetimeUtc ({}) is older than the idempotency memory ({} s), so \
                     whether it was applied cannot be told; replay it from the archive (cfwh replay) to apply it \
                     deliberately",
                    envelope.event_datetime_utc,
                    memory.as_secs()
                );
                return State::Ended(match self.give_up(record, reason).await {
                    Outcome::DeadLettered { reason } => Outcome::Expired { reason },
                    other => other,
                });
            }
        }

        // The key comes from the body, never from an attribute: it is what was signed. A
        // replay run is applied once more, once.
        let key = match &stage.replay_run {
            None => format!("{}{CLAIM_SEPARATOR}{}", H::Event::GROUP, envelope.payload_id),
            Some(run) => format!("{}{CLAIM_SEPARATOR}{}{CLAIM_SEPARATOR}{run}", H::Event::GROUP, envelope.payload_id),
        };
        let done = match self.store.claim(&key).await {
            Ok(Claim::Acquired { done }) => done,
            Ok(Claim::Completed) => return State::Ended(Outcome::Duplicate),
            Ok(Claim::InProgress { lease_left }) => {
                // Another attempt holds it (or held it, and died): wait for its lease to
                // end rather than spend this message's deliveries in seconds.
                let reason = match lease_left {
                    Some(left) => {
                        format!("being processed by another consumer; its claim ends in {} s", left.as_secs())
                    }
                    None => "being processed by another consumer".to_owned(),
                };
                let retry_after = lease_left.map(|left| left + Duration::from_secs(1));
                return State::Ended(Outcome::Failed { reason, permanent: false, retry_after });
            }
            Err(e) => return State::Ended(Outcome::failed(e.to_string())),
        };
        // Per-entity order: an event older than the one applied last to the same facet
        // of the same entity is not applied (equal times are never stale).
        let subject = match self.ordering {
            Order::Latest => event
                .subject()
                .map(|s| format!("{}{SUBJECT_SEPARATOR}{}{SUBJECT_SEPARATOR}{}", H::Event::GROUP, s.entity, s.facet)),
            Order::All => None,
        };
        if let (Some(subject), false) = (&subject, done.contains(HANDLER)) {
            let version = envelope.event_datetime_utc;
            match self.store.applied_version(subject).await {
                Ok(Some(newer)) if newer > version => {
                    tracing::info!(
                        payload_id = %envelope.payload_id,
                        subject = %subject,
                        version,
                        newer,
                        "stale: a newer event of this facet was applied already"
                    );
                    if let Err(e) = self.store.complete(&key).await {
                        tracing::warn!(error = %e, "stale, but the completion was not recorded");
                    }
                    return State::Ended(Outcome::Stale { newer, version });
                }
                Ok(_) => {}
                Err(e) => {
                    if let Err(e) = self.store.release(&key, &done).await {
                        tracing::warn!(error = %e, "could not release the claim; it expires on its own");
                    }
                    return State::Ended(Outcome::failed(e.to_string()));
                }
            }
        }
        let mut claimed = Claimed {
            key,
            subject,
            payload_id: envelope.payload_id.clone(),
            action: event.action_name().to_owned(),
            event_time_ms: envelope.event_datetime_utc,
            bytes: Vec::new(),
            done,
            failures: Vec::new(),
        };

        if !claimed.done.contains(HANDLER) {
            let raw = std::str::from_utf8(&bytes).unwrap_or_default();
            let ctx = Context { raw, message_id: &record.message_id, receive_count: record.receive_count };
            let work = AssertUnwindSafe(self.handler.handle(&event, &ctx)).catch_unwind();
            let result = match deadline {
                None => Some(work.await),
                Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
            };
            let failure = match result {
                None => Some(Verdict::retry("the handler ran past its time and was stopped")),
                Some(Ok(Ok(()))) => None,
                Some(Ok(Err(HandlerError::Retryable(e)))) => Some(Verdict::retry(e.to_string())),
                Some(Ok(Err(HandlerError::Permanent(e)))) => Some(Verdict::Permanent { reason: e.to_string() }),
                Some(Err(panic)) => Some(Verdict::retry(format!("handler panicked: {}", panic_message(&panic)))),
            };
            match failure {
                None => {
                    claimed.done.insert(HANDLER.to_owned());
                }
                Some(verdict) => claimed.failures.push((HANDLER, verdict)),
            }
        }
        claimed.bytes = bytes;
        State::Claimed(Box::new(claimed))
    }

    /// One call to `destination` with every claimed record that still needs it.
    async fn deliver(
        &self,
        destination: &dyn Destination,
        stages: &mut [Stage],
        deadline: Option<tokio::time::Instant>,
    ) {
        let name = destination.name();
        let mut waiting = Vec::new();
        for (index, stage) in stages.iter_mut().enumerate() {
            if let State::Claimed(claimed) = &stage.state {
                if claimed.done.contains(name) {
                    stage.steps.insert(name, Step::Earlier);
                } else {
                    waiting.push(index);
                }
            }
        }
        if waiting.is_empty() {
            return;
        }
        let verdicts = {
            let deliveries: Vec<Delivery<'_>> = waiting
                .iter()
                .filter_map(|&index| match &stages[index].state {
                    State::Claimed(c) => Some(Delivery {
                        group: H::Event::GROUP,
                        body: &c.bytes,
                        payload_id: &c.payload_id,
                        action: &c.action,
                        event_time_ms: c.event_time_ms,
                        replay_run: stages[index].replay_run.as_deref(),
                    }),
                    State::Ended(_) => None,
                })
                .collect();
            let call = destination.deliver(&deliveries);
            let verdicts = match deadline {
                None => Some(call.await),
                Some(deadline) => tokio::time::timeout_at(deadline, call).await.ok(),
            };
            verdicts.unwrap_or_else(|| vec![Verdict::retry(format!("{name} ran past the batch's time")); waiting.len()])
        };
        for (index, verdict) in waiting.into_iter().zip(
            verdicts
                .into_iter()
                .chain(std::iter::repeat(Verdict::retry(format!("{name} gave no answer for the record")))),
        ) {
            let stage = &mut stages[index];
            if let State::Claimed(claimed) = &mut stage.state {
                if verdict == Verdict::Delivered {
                    claimed.done.insert(name.to_owned());
                    stage.steps.insert(name, Step::Delivered);
                } else {
                    claimed.failures.push((name, verdict));
                    stage.steps.insert(name, Step::Failed);
                }
            }
        }
    }

    async fn finish(&self, record: &Record, stage: Stage) -> RecordReport {
        let outcome = match stage.state {
            State::Ended(outcome) => outcome,
            State::Claimed(claimed) => self.settle(record, *claimed).await,
        };
        let report = RecordReport {
            payload_id: stage.payload_id,
            event_group: H::Event::GROUP,
            action: stage.action,
            reason: outcome.reason().map(str::to_owned),
            outcome,
            message_id: record.message_id.clone(),
            attempt: record.receive_count,
            replay_run: stage.replay_run,
            destinations: stage.steps,
            trace_id: record.trace_id(),
        };
        log(&report);
        report
    }

    /// Completes a record every step applied; otherwise releases it with the steps that
    /// succeeded, and retries or dead-letters it.
    async fn settle(&self, record: &Record, claimed: Claimed) -> Outcome {
        if claimed.failures.is_empty() {
            let completed = match &claimed.subject {
                Some(subject) => self.store.complete_applied(&claimed.key, subject, claimed.event_time_ms).await,
                None => self.store.complete(&claimed.key).await,
            };
            if let Err(e) = completed {
                // The work is done: retrying would apply it twice. The claim expires on
                // its own; say so loudly.
                tracing::error!(payload_id = %claimed.payload_id, error = %e, "processed, but the completion was not recorded");
            }
            return Outcome::Processed;
        }
        if let Err(e) = self.store.release(&claimed.key, &claimed.done).await {
            tracing::warn!(error = %e, "could not release the claim; it expires on its own");
        }
        let mut permanent = false;
        let mut retry_after: Option<Duration> = None;
        let mut reasons = Vec::with_capacity(claimed.failures.len());
        for (step, verdict) in claimed.failures {
            match verdict {
                Verdict::Delivered => {}
                Verdict::Retry { reason, after } => {
                    retry_after = retry_after.max(after);
                    reasons.push(named(step, &reason));
                }
                Verdict::Permanent { reason } => {
                    permanent = true;
                    reasons.push(named(step, &reason));
                }
            }
        }
        let reason = reasons.join("; ");
        if permanent {
            self.give_up(record, reason).await
        } else {
            Outcome::Failed { reason, permanent: false, retry_after }
        }
    }

    /// A permanent failure: to the dead-letter queue now, or retried until the redrive
    /// policy moves it when there is no dead-letter queue at hand.
    async fn give_up(&self, record: &Record, reason: String) -> Outcome {
        if !self.dead_letters.available() {
            return Outcome::Failed { reason, permanent: true, retry_after: None };
        }
        match self.dead_letters.dead_letter(H::Event::GROUP, record, &reason).await {
            Ok(()) => Outcome::DeadLettered { reason },
            Err(e) => Outcome::Failed {
                reason: format!("{reason} (and the dead-letter queue failed: {e})"),
                permanent: true,
                retry_after: None,
            },
        }
    }
}

/// A failure's reason with the step it came from; the handler's own words stand alone.
fn named(step: &str, reason: &str) -> String {
    if step == HANDLER {
        reason.to_owned()
    } else {
        format!("{step}: {reason}")
    }
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
