//! One record in a batch as the runner carries it: what it is, its lifecycle, what its
//! steps need, and the deadlines they run under.

use std::future::Future;

use crate::events::{DecodeError, GroupEvent};

use super::idempotency::{Claimant, Owner, StoreError, Version};
use super::lifecycle::{Effect, Lifecycle};
use super::record::Unreadable;
use super::{Record, Step, SETTLE_MARGIN};

/// The owner tokens of this runner's attempts: a random prefix per runner and a counter,
/// so that no two attempts anywhere share one.
#[derive(Debug)]
pub(super) struct Owners {
    pub(super) prefix: u64,
    pub(super) next: std::sync::atomic::AtomicU64,
}

impl Owners {
    pub(super) fn new(prefix: u64) -> Self {
        Self { prefix, next: std::sync::atomic::AtomicU64::new(0) }
    }

    pub(super) fn next(&self) -> Owner {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Owner(u128::from(self.prefix) << 64 | u128::from(n))
    }
}

/// One record in a batch: what it is, and its lifecycle once its event is read.
pub(super) struct Attempt<'r, E> {
    pub(super) record: &'r Record,
    pub(super) payload_id: Option<String>,
    pub(super) action: Option<String>,
    pub(super) replay_run: Option<String>,
    /// The archive's step: the destinations' are the lifecycle's.
    pub(super) archived: Option<Step>,
    /// Set once the event is read (or refused).
    pub(super) life: Option<Lifecycle<'r>>,
    pub(super) effect: Effect,
    pub(super) claim: Option<ClaimOf<'r, E>>,
    /// How the event differs from the baseline (empty when it does not, or unchecked).
    pub(super) drift: Vec<crate::events::Finding>,
}

/// A record's body and typed event, read for the whole batch before any await.
pub(super) struct Read<E> {
    /// Taken by the record's attempt.
    pub(super) bytes: Option<Result<Vec<u8>, Unreadable>>,
    /// `None` when the body could not be read.
    pub(super) event: Option<Result<E, DecodeError>>,
    /// The event's drift, taken by the record's attempt.
    pub(super) drift: Vec<crate::events::Finding>,
}

/// What the steps of a readable record need. The typed event is the batch's: large, it
/// is decoded into one allocation for the whole batch, never moved through the records'
/// futures.
pub(super) struct ClaimOf<'r, E> {
    pub(super) event: &'r E,
    pub(super) bytes: Vec<u8>,
    pub(super) key: String,
    pub(super) owner: Owner,
    /// `<group>→<entity>→<facet>`, when per-entity order applies.
    pub(super) subject: Option<String>,
    /// The time its record is remembered from: the event's, or its replay's.
    pub(super) remembered_from: i64,
}

impl<E: GroupEvent> ClaimOf<'_, E> {
    /// Who writes to the claim.
    pub(super) fn who(&self) -> Claimant<'_> {
        Claimant { key: &self.key, owner: self.owner, event_ms: self.remembered_from }
    }

    /// The facet's version a write raises, when it is to.
    pub(super) fn version(&self, write: bool) -> Option<Version<'_>> {
        let subject = self.subject.as_deref().filter(|_| write)?;
        Some(Version { subject, at: self.event.envelope().event_datetime_utc })
    }
}

/// When handlers and destinations stop, and when settling must be done.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    pub(super) work: Option<tokio::time::Instant>,
    pub(super) settle: Option<tokio::time::Instant>,
}

impl Deadlines {
    pub(super) fn before(deadline: Option<tokio::time::Instant>) -> Self {
        let work = deadline.map(|deadline| {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            deadline - SETTLE_MARGIN.min(left / 2)
        });
        Self { work, settle: deadline }
    }
}

/// `future`, or `None` once `deadline` has passed.
pub(super) async fn within<T>(deadline: Option<tokio::time::Instant>, future: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(future.await),
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
    }
}

pub(super) fn late<T>(what: &str) -> Result<T, StoreError> {
    Err(StoreError::unavailable(format!("{what} ran past the batch's time")))
}
