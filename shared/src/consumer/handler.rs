//! What a studio writes: the handler of a group's typed events, its errors and context,
//! and where records that will never succeed go (the dead-letter sink).

use std::fmt;
use std::future::Future;

use crate::error::{ErrorKind, ServiceError};
use crate::events::ordering::Entity;
use crate::events::{EventGroup, GroupEvent};

use super::Record;

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

/// A dead-letter queue refused a record, or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dead-letter queue: {0}")]
pub struct DeadLetterError(pub ServiceError);

impl DeadLetterError {
    /// What kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// Unreachable, timed out or an answer lost.
    pub fn transient(message: impl Into<String>) -> Self {
        Self(ServiceError::transient(message))
    }
}

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
        Err(DeadLetterError(ServiceError::permanent("no dead-letter queue")))
    }
}
