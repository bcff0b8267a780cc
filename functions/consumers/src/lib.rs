//! The consumers: one handler per event group (the place for a studio's own slow work),
//! and the Lambda glue that runs them on SQS batches. `cfwh dev` runs the same handlers.
//!
//! To do real work for a group, edit its file in `handlers/`: the handler receives the
//! typed event and the raw JSON, and returns `Ok(())`, a retryable error or a permanent
//! one.

pub mod handlers;
pub mod lambda;

use cf_webhooks::config::{DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL};
use cf_webhooks::consumer::{Handler, MemoryStore, NoDeadLetters, Runner};

/// A runner with in-memory idempotency and no dead-letter queue: permanent failures are
/// retried until the queue's redrive policy moves them. For tests and local experiments;
/// the Lambdas use DynamoDB and SQS (see [`lambda::run`]).
pub fn local_runner<H: Handler>(handler: H) -> Runner<H, MemoryStore, NoDeadLetters> {
    Runner::new(handler, MemoryStore::new(DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL), NoDeadLetters)
}
