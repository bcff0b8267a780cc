//! The consumer batch runner: each record on its own, typed decoding, idempotency on
//! `PayloadId`, the group's handler with panics caught, and the partial batch answer.

pub mod idempotency;
mod record;

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use base64::Engine as _;
use futures_util::FutureExt as _;
use serde::Serialize;

use crate::events::{routing, EventGroup, GroupEvent};
use crate::message::attr;
pub use idempotency::{Claim, IdempotencyStore, MemoryStore, StoreError};
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
    type Event: GroupEvent;

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

/// How a record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler applied it.
    Processed,
    /// Already applied before: skipped.
    Duplicate,
    /// Not applied; the record is retried.
    Failed {
        /// Why.
        reason: String,
        /// The failure will not go away (no dead-letter queue was at hand to take it).
        permanent: bool,
    },
    /// Not applied, and moved to the dead-letter queue.
    DeadLettered {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// `processed`, `duplicate`, `failed` or `dead-lettered`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::Failed { .. } => "failed",
            Self::DeadLettered { .. } => "dead-lettered",
        }
    }

    /// The failure reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Failed { reason, .. } | Self::DeadLettered { reason } => Some(reason),
            _ => None,
        }
    }
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

/// Runs batches of one group through its handler. The store and the dead-letter queue
/// are picked by the host once, at start-up.
pub struct Runner<H> {
    handler: H,
    store: Box<dyn IdempotencyStore>,
    dead_letters: Box<dyn DeadLetterSink>,
}

impl<H> fmt::Debug for Runner<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner").field("dead_letters", &self.dead_letters.available()).finish_non_exhaustive()
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

impl<H: Handler> Runner<H> {
    /// A runner for `handler`, with its idempotency store and dead-letter sink.
    pub fn new(
        handler: H,
        store: impl IdempotencyStore + 'static,
        dead_letters: impl DeadLetterSink + 'static,
    ) -> Self {
        Self { handler, store: Box::new(store), dead_letters: Box::new(dead_letters) }
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Handles every record of a batch, concurrently and each on its own.
    pub async fn run(&self, records: &[Record]) -> BatchReport {
        self.run_until(records, None).await
    }

    /// As [`run`](Self::run), but a handler still running at `deadline` is abandoned and
    /// its record fails (retryable), so the batch answer is out before the function's own
    /// timeout and the other records are not redelivered with it.
    pub async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
        let reports = futures_util::future::join_all(records.iter().map(|r| self.run_one(r, deadline))).await;
        BatchReport { records: reports }
    }

    async fn run_one(&self, record: &Record, deadline: Option<tokio::time::Instant>) -> RecordReport {
        let group = H::Event::GROUP;
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
        let outcome = self.outcome(record, decoded, deadline).await;
        let report = RecordReport {
            payload_id,
            event_group: group,
            action,
            reason: outcome.reason().map(str::to_owned),
            outcome,
            message_id: record.message_id.clone(),
            attempt: record.receive_count,
        };
        log(&report);
        report
    }

    async fn outcome(
        &self,
        record: &Record,
        decoded: Result<Vec<u8>, String>,
        deadline: Option<tokio::time::Instant>,
    ) -> Outcome {
        let bytes = match decoded {
            Ok(bytes) => bytes,
            Err(why) => return self.give_up(record, why).await,
        };
        let event = match H::Event::decode(&bytes) {
            Ok(event) => event,
            Err(e) => return self.give_up(record, e.to_string()).await,
        };
        // The key comes from the body, never from an attribute: it is what was signed.
        let key = format!("{}#{}", H::Event::GROUP, event.envelope().payload_id);
        match self.store.claim(&key).await {
            Ok(Claim::Acquired) => {}
            Ok(Claim::Completed) => return Outcome::Duplicate,
            Ok(Claim::InProgress) => {
                return Outcome::Failed { reason: "being processed by another consumer".into(), permanent: false }
            }
            Err(e) => return Outcome::Failed { reason: e.to_string(), permanent: false },
        }

        let raw = std::str::from_utf8(&bytes).unwrap_or_default();
        let ctx = Context { raw, message_id: &record.message_id, receive_count: record.receive_count };
        let work = AssertUnwindSafe(self.handler.handle(&event, &ctx)).catch_unwind();
        let result = match deadline {
            None => Some(work.await),
            Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        };
        let failure = match result {
            None => Err("the handler ran past its time and was stopped".to_owned()),
            Some(Ok(Ok(()))) => {
                if let Err(e) = self.store.complete(&key).await {
                    // The work is done: retrying would apply it twice. The claim expires
                    // on its own; say so loudly.
                    tracing::error!(payload_id = %event.envelope().payload_id, error = %e, "processed, but the completion was not recorded");
                }
                return Outcome::Processed;
            }
            Some(Ok(Err(HandlerError::Retryable(e)))) => Err(e.to_string()),
            Some(Ok(Err(HandlerError::Permanent(e)))) => Ok(e.to_string()),
            Some(Err(panic)) => Err(format!("handler panicked: {}", panic_message(&panic))),
        };
        if let Err(e) = self.store.release(&key).await {
            tracing::warn!(error = %e, "could not release the claim; it expires on its own");
        }
        match failure {
            Err(reason) => Outcome::Failed { reason, permanent: false },
            Ok(reason) => self.give_up(record, reason).await,
        }
    }

    /// A permanent failure: to the dead-letter queue now, or retried until the redrive
    /// policy moves it when there is no dead-letter queue at hand.
    async fn give_up(&self, record: &Record, reason: String) -> Outcome {
        if !self.dead_letters.available() {
            return Outcome::Failed { reason, permanent: true };
        }
        match self.dead_letters.dead_letter(H::Event::GROUP, record, &reason).await {
            Ok(()) => Outcome::DeadLettered { reason },
            Err(e) => {
                Outcome::Failed { reason: format!("{reason} (and the dead-letter queue failed: {e})"), permanent: true }
            }
        }
    }
}

fn decode_body(record: &Record) -> Result<Vec<u8>, String> {
    match record.body_encoding() {
        None | Some("") => Ok(record.body.as_bytes().to_vec()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(&record.body)
            .map_err(|e| format!("body marked base64 is not: {e}")),
        Some(other) => Err(format!("unknown body encoding {other:?}")),
    }
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
        Outcome::Processed | Outcome::Duplicate => tracing::debug!(
            payload_id,
            event_group,
            action,
            outcome = report.outcome.word(),
            attempt = report.attempt,
            "record done"
        ),
        Outcome::Failed { reason, permanent } => {
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
    }
}

#[cfg(test)]
mod tests;
