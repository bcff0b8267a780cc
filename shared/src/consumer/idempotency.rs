//! Idempotency on `PayloadId`: a claim before the handler runs, then writes that record
//! what is done (the handler, each destination), complete the record, or release it.
//! Every write after the claim names its owner (the attempt that claimed) and is refused
//! to any other: an attempt that outlived its lease cannot complete or release what
//! another attempt holds now. Both stores read one [`Clock`].

use std::collections::BTreeSet;
use std::time::Duration;

use crate::clock::Clock;
use crate::error::{ErrorKind, ServiceError};

/// The steps of a record an earlier attempt had done: `handler` and destination names.
pub type Done = BTreeSet<String>;

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller may apply the event; `done` are the steps an earlier attempt had done.
    Acquired {
        /// Steps not to repeat.
        done: Done,
    },
    /// The event was already applied: skip it.
    Completed,
    /// Another consumer is applying it now (or was, and died): retry later.
    InProgress {
        /// How long its claim still holds, when the store knows: a record that finds it
        /// waits that long instead of using up its deliveries.
        lease_left: Option<Duration>,
    },
}

impl Claim {
    /// A first claim: nothing done yet.
    pub fn fresh() -> Self {
        Self::Acquired { done: Done::new() }
    }
}

/// Why the store did not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The store asked to slow down: the write was not made; worth trying again.
    Throttled,
    /// Unreachable, timed out, or an answer lost: the write may or may not have been made.
    Unavailable,
    /// Refused for a reason that does not change by itself (access denied, a table that
    /// does not exist): trying the same write again cannot help.
    Permanent,
    /// An answer the code does not know how to read.
    Unknown,
    /// A transaction cancelled by another one on the same items (DynamoDB's
    /// `TransactionConflict`): nothing was written; worth trying again at once.
    Conflict,
    /// The condition on the claim failed: it is not this attempt's any more (completed,
    /// released, or taken over after its lease). Nothing was written.
    Lost,
}

impl StoreErrorKind {
    /// Whether the same write, made again, can succeed.
    pub fn retryable(self) -> bool {
        !matches!(self, Self::Permanent | Self::Lost)
    }
}

impl From<ErrorKind> for StoreErrorKind {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Throttled => Self::Throttled,
            ErrorKind::Transient => Self::Unavailable,
            ErrorKind::Permanent => Self::Permanent,
            ErrorKind::Conditional => Self::Lost,
            ErrorKind::Unknown => Self::Unknown,
        }
    }
}

/// The store could not answer, or refused a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("idempotency store: {message}")]
pub struct StoreError {
    /// What kind of failure.
    pub kind: StoreErrorKind,
    /// What the store said.
    pub message: String,
}

impl StoreError {
    /// A failure of `kind`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// The store could not be asked, or its answer was lost.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Unavailable, message)
    }

    /// A conflicting transaction cancelled the write.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Conflict, message)
    }

    /// The claim is not the caller's.
    pub fn lost(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Lost, message)
    }
}

impl From<ServiceError> for StoreError {
    fn from(e: ServiceError) -> Self {
        Self::new(e.kind.into(), e.message)
    }
}

/// Which attempt makes a write: the one that claimed. A runner's random 64-bit prefix and
/// a counter, so no two attempts anywhere share one; `Copy`, so the memory store keeps it
/// without allocating (DynamoDB keeps its 32 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(pub u128);

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// Who writes to a claim: its key, the attempt that claimed it, and the event's time, from
/// which (or from now, whichever is later) the item is remembered for the memory: an
/// event stamped ahead of the clock (within the allowed skew) keeps its record as long as
/// the expiry rule, which counts from the event's time, accepts the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimant<'a> {
    /// `<group>#<PayloadId>` (and a replay's run).
    pub key: &'a str,
    /// The attempt.
    pub owner: Owner,
    /// The event's `EventDatetimeUtc` (ms since the epoch).
    pub event_ms: i64,
}

/// The facet version a write raises (never lowers): `<group>→<entity>→<facet>` and the
/// event's `EventDatetimeUtc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// The facet's key.
    pub subject: &'a str,
    /// The event's time (ms since the epoch).
    pub at: i64,
}

/// Where claims live: DynamoDB when deployed, memory in `cfwh dev`, tests and the
/// simulation. The same few conditional writes in both.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The clock its leases and expiry are read by; the runner reads the same.
    fn clock(&self) -> Clock;

    /// How long a completion is remembered (the TTL), when the store forgets: an event
    /// older than that is not applied again (`Outcome::Expired`).
    fn memory(&self) -> Option<Duration> {
        None
    }

    /// Claims `key` for the attempt `owner`: granted when absent, forgotten, released, or
    /// held by a claim past its lease.
    async fn claim(&self, who: Claimant<'_>) -> Result<Claim, StoreError>;

    /// The version (`EventDatetimeUtc`) last applied to a facet of an entity, if any.
    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError>;

    /// Raises a facet's version to `version.at`, never lowering it (an equal or newer
    /// one recorded already is no error), in a write of its own.
    async fn raise(&self, version: Version<'_>) -> Result<(), StoreError>;

    /// Records the steps `done` while `owner` keeps the claim, and raises `version`:
    /// first, in a write of its own (DynamoDB), or in the same step (memory). An attempt
    /// that dies between the two leaves the version raised and the claim unwritten.
    async fn record(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError>;

    /// Marks `key` completed if `owner` holds it (or completed it: a retried write), and
    /// raises `version`.
    async fn complete(&self, who: Claimant<'_>, version: Option<Version<'_>>) -> Result<(), StoreError>;

    /// Gives up `owner`'s claim, keeping the steps `done` for the next attempt, and raises
    /// `version`.
    async fn release(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError>;
}

#[async_trait::async_trait]
impl<S: IdempotencyStore + ?Sized> IdempotencyStore for std::sync::Arc<S> {
    fn clock(&self) -> Clock {
        (**self).clock()
    }
    fn memory(&self) -> Option<Duration> {
        (**self).memory()
    }
    async fn claim(&self, who: Claimant<'_>) -> Result<Claim, StoreError> {
        (**self).claim(who).await
    }
    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        (**self).applied_version(subject).await
    }
    async fn raise(&self, version: Version<'_>) -> Result<(), StoreError> {
        (**self).raise(version).await
    }
    async fn record(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        (**self).record(who, done, version).await
    }
    async fn complete(&self, who: Claimant<'_>, version: Option<Version<'_>>) -> Result<(), StoreError> {
        (**self).complete(who, version).await
    }
    async fn release(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        (**self).release(who, done, version).await
    }
}

/// An item of the memory store; times in ms by the store's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Claimed by `owner` until `lease_until`, remembered until `expires`.
    InProgress {
        /// The attempt holding it.
        owner: Owner,
        /// The end of its lease.
        lease_until: i64,
        /// Steps recorded so far.
        done: Done,
        /// When the item is forgotten.
        expires: i64,
    },
    /// Released with the steps done.
    Released {
        /// Steps done.
        done: Done,
        /// When the item is forgotten.
        expires: i64,
    },
    /// Applied.
    Completed {
        /// The attempt that completed it.
        owner: Owner,
        /// When the item is forgotten.
        expires: i64,
    },
}

impl Entry {
    fn expires(&self) -> i64 {
        match self {
            Self::InProgress { expires, .. } | Self::Released { expires, .. } | Self::Completed { expires, .. } => {
                *expires
            }
        }
    }
}

mod memory;
pub use memory::MemoryStore;
