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
pub mod start;

use cf_webhooks::archive::Archive;
use cf_webhooks::config::{
    ConfigError, Destinations, ForwardSecretSource, DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL,
};
use cf_webhooks::consumer::{
    Consume, DeadLetterSink, Handler, IdempotencyStore, MemoryStore, NoDeadLetters, Order, Runner,
};
use cf_webhooks::destination::http::{ForwardSecret, HttpForward};
use cf_webhooks::destination::Destination;
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

/// Where a consumer delivers besides its handler: the destinations and the archive.
/// Clones share them (`cfwh dev` gives the same ones to every group).
#[derive(Default, Clone)]
pub struct Outlets {
    /// EventBridge, the HTTP forward, … in the order they are called.
    pub destinations: Vec<std::sync::Arc<dyn Destination>>,
    /// The archive, written before each claim.
    pub archive: Option<Archive>,
}

impl std::fmt::Debug for Outlets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlets")
            .field("destinations", &self.destinations.iter().map(|d| d.name()).collect::<Vec<_>>())
            .field("archive", &self.archive)
            .finish()
    }
}

impl Outlets {
    /// The outlets `settings` ask for. EventBridge and S3 use `sdk` (a missing `sdk`
    /// with either asked for is a configuration error); the forward secret is read from
    /// Secrets Manager when given by ARN.
    pub async fn build(settings: &Destinations, sdk: Option<&aws_types::SdkConfig>) -> Result<Self, ConfigError> {
        use cf_webhooks::config::var;
        let need_sdk = |name: &'static str| {
            sdk.ok_or_else(|| ConfigError::new(name, "needs an AWS endpoint (or AWS_ENDPOINT_URL) to talk to"))
        };
        let mut outlets = Self::default();
        if let Some(eb) = &settings.eventbridge {
            let client = aws_sdk_eventbridge::Client::new(need_sdk(var::EVENT_BUS)?);
            outlets.destinations.push(std::sync::Arc::new(cf_webhooks::destination::eventbridge::EventBridge::new(
                client, &eb.bus, &eb.source,
            )));
        }
        if let Some(http) = &settings.http {
            let text = match &http.secret {
                ForwardSecretSource::Text(text) => text.clone(),
                ForwardSecretSource::Arn(arn) => {
                    let client = aws_sdk_secretsmanager::Client::new(need_sdk(var::FORWARD_SECRET_ARN)?);
                    cf_webhooks::aws::secrets_manager::read_text(&client, arn)
                        .await
                        .map_err(|e| ConfigError::new(var::FORWARD_SECRET_ARN, e.to_string()))?
                }
            };
            let secret = ForwardSecret::parse(&text).map_err(|e| ConfigError::new(var::FORWARD_SECRET, e.0))?;
            let forward = HttpForward::new(http.url.clone(), secret, http.timeout)
                .map_err(|e| ConfigError::new(var::FORWARD_URL, e.0))?;
            outlets.destinations.push(std::sync::Arc::new(forward));
        }
        if let Some(archive) = &settings.archive {
            let client = cf_webhooks::aws::s3::client(need_sdk(var::ARCHIVE_BUCKET)?);
            let store = cf_webhooks::aws::s3::S3Store::new(client, &archive.bucket);
            outlets.archive = Some(Archive::new(store, &archive.prefix));
        }
        Ok(outlets)
    }

    /// `runner`, delivering to these destinations and writing to this archive too.
    pub fn equip<H: Handler>(self, mut runner: Runner<H>) -> Runner<H> {
        for destination in self.destinations {
            runner = runner.with_destination(destination);
        }
        match self.archive {
            Some(archive) => runner.with_archive(archive),
            None => runner,
        }
    }

    /// These and `other`'s.
    pub fn and(mut self, other: Outlets) -> Self {
        self.destinations.extend(other.destinations);
        self.archive = self.archive.or(other.archive);
        self
    }

    /// The step names, for a start-up line.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.destinations.iter().map(|d| d.name()).collect();
        if self.archive.is_some() {
            names.push(cf_webhooks::archive::ARCHIVE);
        }
        names
    }
}

struct Plain<S, D> {
    store: S,
    dead_letters: D,
    outlets: Outlets,
    policy: Policy,
}

impl<S: IdempotencyStore + 'static, D: DeadLetterSink + 'static> WithHandler for Plain<S, D> {
    type Output = Box<dyn Consume>;
    fn with<H: Handler + 'static>(self, handler: H) -> Box<dyn Consume> {
        let runner = self.policy.apply(Runner::new(handler, self.store, self.dead_letters));
        Box::new(self.outlets.equip(runner))
    }
}

/// The runner of `group`'s shipped handler over `store` and `dead_letters`, delivering
/// to `outlets` too, as `policy` says.
pub fn runner(
    group: EventGroup,
    store: impl IdempotencyStore + 'static,
    dead_letters: impl DeadLetterSink + 'static,
    outlets: Outlets,
    policy: impl Into<Policy>,
) -> Box<dyn Consume> {
    with_handler(group, Plain { store, dead_letters, outlets, policy: policy.into() })
}

/// How a runner orders, waits and spreads its work: per-entity order, the redrive policy
/// of the queue it reads (a copy waiting on another's claim plans its waits within it),
/// and the records it works on at once.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Per-entity order.
    pub order: Order,
    /// The queue's `maxReceiveCount`.
    pub max_receives: u32,
    /// Records worked on at once (`CF_RECORDS_IN_FLIGHT`).
    pub records_in_flight: usize,
    /// Drift from the documented payloads reported, or not (`CF_DRIFT`).
    pub drift: cf_webhooks::consumer::DriftMode,
}

impl Policy {
    /// `runner`, set to this policy.
    pub fn apply<H: Handler>(self, runner: Runner<H>) -> Runner<H> {
        runner
            .with_ordering(self.order)
            .with_max_receives(self.max_receives)
            .with_records_in_flight(self.records_in_flight)
            .with_drift(self.drift)
    }
}

impl From<Order> for Policy {
    /// `order`, over a queue with the template's default `maxReceiveCount`, with the
    /// default records in flight.
    fn from(order: Order) -> Self {
        Self {
            order,
            max_receives: cf_webhooks::stack::DEFAULT_MAX_RECEIVES,
            records_in_flight: cf_webhooks::config::DEFAULT_RECORDS_IN_FLIGHT,
            drift: cf_webhooks::consumer::DriftMode::default(),
        }
    }
}

/// A runner with in-memory idempotency and no dead-letter queue: permanent failures are
/// retried until the queue's redrive policy moves them. For tests and local experiments;
/// the Lambda uses DynamoDB and SQS (see [`start::start`]).
pub fn local_runner<H: Handler>(handler: H) -> Runner<H> {
    Runner::new(handler, MemoryStore::new(DEFAULT_CLAIM_LEASE, DEFAULT_IDEMPOTENCY_TTL), NoDeadLetters)
}
