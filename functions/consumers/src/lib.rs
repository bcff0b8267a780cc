//! The consumers: one handler per event group (the place for a studio's own slow work),
//! the Lambda glue that runs them on SQS batches, and the runner both the Lambdas and
//! `cfwh dev` build.
//!
//! To do real work for a group, edit its file in `handlers/`: the handler receives the
//! typed event and the raw JSON, and returns `Ok(())`, a retryable error or a permanent
//! one. The same code runs under Lambda and in `cfwh dev`.

pub mod handlers;
pub mod lambda;

use std::time::Duration;

use cf_webhooks::consumer::{Handler, MemoryStore, NoDeadLetters, Runner};

/// How long an in-progress claim holds: longer than a consumer's timeout.
pub const CLAIM_LEASE: Duration = Duration::from_secs(15 * 60);
/// How long a completed `PayloadId` is remembered.
pub const COMPLETED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The runner a consumer Lambda uses. Idempotency is held in this instance's memory and
/// permanent failures are retried until the queue's redrive policy dead-letters them.
pub fn runner<H: Handler>(handler: H) -> Runner<H, MemoryStore, NoDeadLetters> {
    Runner::new(handler, MemoryStore::new(CLAIM_LEASE, COMPLETED_TTL), NoDeadLetters)
}
