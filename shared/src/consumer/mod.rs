//! The consumer side: what a host holds (a group's runner), the keys it writes, and the
//! per-entity order setting; the runner, the lifecycle, the store and the reports in
//! their own files.

mod attempt;
mod drift;
mod handler;
pub mod idempotency;
pub mod lifecycle;
mod record;
mod report;
mod runner;
mod unrouted;

use crate::events::EventGroup;
pub use drift::DriftMode;
pub use handler::{BoxError, Context, DeadLetterError, DeadLetterSink, Handler, HandlerError, NoDeadLetters};
pub use idempotency::{
    Claim, Claimant, Done, IdempotencyStore, MemoryStore, Owner, StoreError, StoreErrorKind, Version,
};
pub use lifecycle::{Effect, Facts, Input, Lifecycle};
pub use record::{Record, Unreadable};
pub use report::{BatchReport, Outcome, RecordReport, Step};
pub use runner::{Runner, SETTLE_MARGIN};
pub use unrouted::archive_unrouted;

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

/// A batch runner with its handler's type erased: what a host (the Lambda glue, `cfwh
/// dev`) holds once it has picked the group to serve.
#[async_trait::async_trait]
pub trait Consume: Send + Sync {
    /// The group whose records it runs.
    fn group(&self) -> EventGroup;

    /// Records it works on at once: hosts bound their own per-record calls by it too.
    fn records_in_flight(&self) -> usize;

    /// Handles every record of a batch; see [`Runner::run_until`].
    async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport;
}

/// Default records a consumer works on at once: a batch of the default size, all at once.
pub const DEFAULT_RECORDS_IN_FLIGHT: usize = 10;
/// The most records in flight a consumer accepts (`CF_RECORDS_IN_FLIGHT`).
pub const MAX_RECORDS_IN_FLIGHT: usize = 1000;

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

#[cfg(test)]
mod tests;
