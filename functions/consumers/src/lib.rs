//! The consumers: one handler per event group (the place for a studio's own slow work),
//! and the Lambda glue that runs them on SQS batches. Every consumer function deploys
//! the one `consume` bootstrap, which serves the group named by `CF_EVENT_GROUP`;
//! `cfwh dev` runs the same handlers.
//!
//! To do real work for a group, edit its file in `handlers/`: the handler receives the
//! typed event and the raw JSON, and returns `Ok(())`, a retryable error or a permanent
//! one.

pub mod handlers;
pub mod lambda;

use cf_webhooks::config::{DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL};
use cf_webhooks::consumer::{Consume, DeadLetterSink, Handler, IdempotencyStore, MemoryStore, NoDeadLetters, Runner};
use cf_webhooks::events::EventGroup;

/// What to do with the handler of a group, whatever its type: [`with_handler`] calls it
/// with the shipped handler of the group asked for.
pub trait WithHandler {
    /// What it makes of the handler.
    type Output;
    /// Called once, with the group's handler.
    fn with<H: Handler + 'static>(self, handler: H) -> Self::Output;
}

/// Calls `visit` with the shipped handler of `group`: the one place a group is mapped to
/// its handler, for the Lambda and for `cfwh dev`.
pub fn with_handler<V: WithHandler>(group: EventGroup, visit: V) -> V::Output {
    use handlers::*;
    match group {
        EventGroup::Product => visit.with(ProductHandler),
        EventGroup::Sample => visit.with(SampleHandler),
        EventGroup::User => visit.with(UserHandler),
        EventGroup::Task => visit.with(TaskHandler),
        EventGroup::WorkUnit => visit.with(WorkUnitHandler),
        EventGroup::Job => visit.with(JobHandler),
        EventGroup::Session => visit.with(SessionHandler),
    }
}

struct Plain<S, D> {
    store: S,
    dead_letters: D,
}

impl<S: IdempotencyStore + 'static, D: DeadLetterSink + 'static> WithHandler for Plain<S, D> {
    type Output = Box<dyn Consume>;
    fn with<H: Handler + 'static>(self, handler: H) -> Box<dyn Consume> {
        Box::new(Runner::new(handler, self.store, self.dead_letters))
    }
}

/// The runner of `group`'s shipped handler over `store` and `dead_letters`.
pub fn runner(
    group: EventGroup,
    store: impl IdempotencyStore + 'static,
    dead_letters: impl DeadLetterSink + 'static,
) -> Box<dyn Consume> {
    with_handler(group, Plain { store, dead_letters })
}

/// A runner with in-memory idempotency and no dead-letter queue: permanent failures are
/// retried until the queue's redrive policy moves them. For tests and local experiments;
/// the Lambda uses DynamoDB and SQS (see [`lambda::run`]).
pub fn local_runner<H: Handler>(handler: H) -> Runner<H> {
    Runner::new(handler, MemoryStore::new(DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL), NoDeadLetters)
}
