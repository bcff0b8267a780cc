//! The faults the simulation injects, and the real seams wrapped to inject them: the
//! memory store (errors, lost answers, slowness, a consumer killed before or
//! after a write), the handler, the destinations and the dead-letter queue.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::consumer::idempotency::{Claim, Claimant, Done, Entry, IdempotencyStore, Owner, StoreError, Version};
use crate::consumer::{Context, DeadLetterError, DeadLetterSink, Handler, HandlerError, Record};
use crate::destination::{Destination, Outgoing, Verdict};
use crate::events::ordering::Entity;
use crate::events::{EventGroup, GroupEvent};
use crate::message::attr;

use super::ledger::{Key, Shared};
use super::rng::Rng;
use super::sqs::Queue;
use super::SimStore;

macro_rules! faults {
    ($($fault:ident => $name:literal: $what:literal),+ $(,)?) => {
        /// A kind of fault.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Fault { $(#[doc = $what] $fault),+ }

        impl Fault {
            /// Every kind.
            pub const ALL: &'static [Fault] = &[$(Fault::$fault),+];

            /// Its name on the command line and in summaries.
            pub fn name(self) -> &'static str {
                match self { $(Fault::$fault => $name),+ }
            }

            /// What it does.
            pub fn what(self) -> &'static str {
                match self { $(Fault::$fault => $what),+ }
            }
        }
    };
}

faults! {
    StoreError => "store-error": "a store call fails and writes nothing",
    StoreLostAnswer => "store-lost-answer": "a store write is made, but its answer is an error (the SDK's retry case)",
    SlowStore => "slow-store": "a store call takes 5 to 40 s (a holder running to its timeout)",
    KillBeforeWrite => "kill-before-write": "the consumer dies before a store call or a dead letter",
    KillAfterWrite => "kill-after-write": "the consumer dies right after a store call or a dead letter",
    HandlerRetry => "handler-retry": "the handler fails, retryable",
    HandlerPermanent => "handler-permanent": "the handler fails for good",
    HandlerPanic => "handler-panic": "the handler panics",
    HandlerHang => "handler-hang": "the handler runs past the invocation's time",
    KillAfterHandler => "kill-after-handler": "the consumer dies after the handler returned, before any write",
    Destination4xx => "destination-4xx": "a destination refuses (HTTP 4xx)",
    Destination5xx => "destination-5xx": "a destination fails (HTTP 5xx, sometimes with Retry-After)",
    DestinationTimeout => "destination-timeout": "a destination never answers",
    KillAfterDelivery => "kill-after-delivery": "the consumer dies after a destination took the batch",
    DeadLetterError => "dead-letter-error": "the dead-letter queue refuses a record",
    SqsDuplicate => "sqs-duplicate": "a standard queue delivers a message in flight again",
    SenderDuplicate => "sender-duplicate": "Creative Force sends an event twice",
    IngestDown => "ingest-down": "ingest answers 503; Creative Force retries 5 to 10 minutes later, 3 times",
    Redrive => "redrive": "the dead-letter queue is moved back days later, or just past the memory",
    LateCopy => "late-copy": "a copy of an applied event sits in the dead-letter queue when it is redriven",
    FutureStamp => "future-stamp": "Creative Force stamps an event up to 5 minutes ahead (within the skew ingest allows)",
    Replay => "replay": "a replay run sends applied events again (one of them twice)",
    SenderDrift => "sender-drift": "Creative Force adds an undocumented field, or sends a documented one as another JSON type",
}

/// A set of fault kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults(u64);

impl Faults {
    /// Every kind.
    pub fn all() -> Self {
        Self(Fault::ALL.iter().fold(0, |bits, f| bits | 1 << *f as u64))
    }

    /// No fault at all.
    pub fn none() -> Self {
        Self(0)
    }

    /// True when `fault` is in.
    pub fn has(self, fault: Fault) -> bool {
        self.0 & 1 << fault as u64 != 0
    }

    /// Without `fault`.
    pub fn without(self, fault: Fault) -> Self {
        Self(self.0 & !(1 << fault as u64))
    }

    /// The kinds in it.
    pub fn kinds(self) -> Vec<Fault> {
        Fault::ALL.iter().copied().filter(|f| self.has(*f)).collect()
    }

    /// A comma-separated list of names (`all`, `none`, or kinds).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "all" => return Ok(Self::all()),
            "none" | "" => return Ok(Self::none()),
            _ => {}
        }
        text.split(',').try_fold(Self::none(), |set, name| {
            let fault =
                Fault::ALL.iter().find(|f| f.name() == name.trim()).ok_or_else(|| format!("no fault {name:?}"))?;
            Ok(Self(set.0 | 1 << *fault as u64))
        })
    }
}

impl std::fmt::Display for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if *self == Self::all() {
            return f.write_str("all");
        }
        let names: Vec<&str> = self.kinds().into_iter().map(Fault::name).collect();
        f.write_str(if names.is_empty() { "none" } else { "" })?;
        f.write_str(&names.join(","))
    }
}

/// What every wrapper shares: the ledger, the one generator, the faults on, and the
/// consumer it belongs to (its current invocation and the switch that kills it).
#[derive(Clone)]
pub struct Chaos {
    /// What happened, checked against the invariants.
    pub ledger: Shared,
    /// The one generator.
    pub rng: Arc<Mutex<Rng>>,
    /// The faults on.
    pub faults: Faults,
    /// Percent of chances at each boundary that a fault is injected.
    pub rate: u64,
    /// The consumer's current invocation and its kill switch.
    pub invocation: Arc<Mutex<(u64, Arc<tokio::sync::Notify>)>>,
}

impl Chaos {
    /// One of `kinds` (those on), or none.
    pub fn draw(&self, kinds: &[Fault]) -> Option<Fault> {
        let on: Vec<Fault> = kinds.iter().copied().filter(|f| self.faults.has(*f)).collect();
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        if on.is_empty() || !rng.chance(self.rate) {
            return None;
        }
        let fault = *rng.pick(&on);
        drop(rng);
        self.ledger().inject(fault.name());
        Some(fault)
    }

    /// A number from the generator.
    pub fn between(&self, low: u64, high: u64) -> u64 {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).between(low, high)
    }

    /// The ledger, locked.
    pub fn ledger(&self) -> std::sync::MutexGuard<'_, super::ledger::Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The consumer's current invocation.
    pub fn current(&self) -> u64 {
        self.invocation.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Kills the consumer's invocation: this future never ends, and the invocation is
    /// dropped where it stands.
    pub async fn kill(&self) {
        let switch = self.invocation.lock().unwrap_or_else(|p| p.into_inner()).1.clone();
        switch.notify_one();
        std::future::pending::<()>().await;
    }
}

/// The store with faults at every call.
pub struct FaultyStore {
    /// The real store.
    pub inner: Arc<dyn SimStore>,
    /// Its chaos.
    pub chaos: Chaos,
}

const WRITE_FAULTS: &[Fault] =
    &[Fault::StoreError, Fault::StoreLostAnswer, Fault::SlowStore, Fault::KillBeforeWrite, Fault::KillAfterWrite];

impl FaultyStore {
    /// Before a call: `Err` to answer at once, after any delay or kill.
    async fn before(&self, fault: Option<Fault>) -> Result<(), StoreError> {
        match fault {
            Some(Fault::KillBeforeWrite) => self.chaos.kill().await,
            Some(Fault::StoreError) => return Err(StoreError::unavailable("injected: unreachable")),
            Some(Fault::SlowStore) => {
                tokio::time::sleep(Duration::from_secs(self.chaos.between(5, 40))).await;
            }
            _ => {}
        }
        Ok(())
    }

    /// After a call that was made.
    async fn after<T>(&self, fault: Option<Fault>, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match fault {
            Some(Fault::KillAfterWrite) => {
                self.chaos.kill().await;
                result
            }
            Some(Fault::StoreLostAnswer) => Err(StoreError::unavailable("injected: the answer was lost")),
            _ => result,
        }
    }

    /// A write; `settling` names the owner whose claim it ends (a completion, a release).
    async fn write<F: std::future::Future<Output = Result<(), StoreError>>>(
        &self,
        settling: Option<Owner>,
        call: F,
    ) -> Result<(), StoreError> {
        let fault = self.chaos.draw(WRITE_FAULTS);
        self.before(fault).await?;
        let result = call.await;
        if let (Some(owner), Ok(())) = (settling, &result) {
            let now = self.inner.clock().now_ms();
            self.chaos.ledger().settles(owner, now);
        }
        self.after(fault, result).await
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for FaultyStore {
    fn clock(&self) -> crate::clock::Clock {
        self.inner.clock()
    }

    fn memory(&self) -> Option<Duration> {
        self.inner.memory()
    }

    async fn claim(&self, who: Claimant<'_>) -> Result<Claim, StoreError> {
        let fault = self.chaos.draw(&[
            Fault::StoreError,
            Fault::StoreLostAnswer,
            Fault::SlowStore,
            Fault::KillBeforeWrite,
            Fault::KillAfterWrite,
        ]);
        self.before(fault).await?;
        let now = self.inner.clock().now_ms();
        let before = self.inner.entry(who.key);
        self.chaos.ledger().taking_over(who.key, before.clone(), now);
        let claimed = self.inner.claim(who).await;
        let invocation = self.chaos.current();
        match (&claimed, before) {
            (Ok(Claim::Acquired { .. }), _) => self.chaos.ledger().owns(who.owner, invocation),
            (Ok(Claim::InProgress { .. }), Some(Entry::InProgress { owner, lease_until, .. })) => {
                self.chaos.ledger().held_by(who.key, invocation, owner, lease_until, now);
            }
            _ => {}
        }
        self.after(fault, claimed).await
    }

    async fn applied_version(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        let fault = self.chaos.draw(&[Fault::StoreError, Fault::SlowStore, Fault::KillBeforeWrite]);
        self.before(fault).await?;
        self.inner.applied_version(subject).await
    }

    async fn raise(&self, version: Version<'_>) -> Result<(), StoreError> {
        self.write(None, self.inner.raise(version)).await
    }

    // A write with a version is two writes, as DynamoDB makes it: the version first, then
    // the claim's; every fault can strike either, a kill between them included.

    async fn record(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        if let Some(version) = version {
            self.raise(version).await?;
        }
        self.write(None, self.inner.record(who, done, None)).await
    }

    async fn complete(&self, who: Claimant<'_>, version: Option<Version<'_>>) -> Result<(), StoreError> {
        if let Some(version) = version {
            self.raise(version).await?;
        }
        self.write(Some(who.owner), self.inner.complete(who, None)).await
    }

    async fn release(&self, who: Claimant<'_>, done: &Done, version: Option<Version<'_>>) -> Result<(), StoreError> {
        if let Some(version) = version {
            self.raise(version).await?;
        }
        self.write(Some(who.owner), self.inner.release(who, done, None)).await
    }
}

/// The key of a record: its `PayloadId` and replay run.
pub fn key_of(record_payload: &str, run: Option<&str>) -> Key {
    (record_payload.to_owned(), run.map(str::to_owned))
}

/// The studio's handler, as the simulation sees it: it notes every application in the
/// ledger (where invariants 1 and 2 are checked) and fails as the faults say.
pub struct SimHandler<E> {
    /// Its chaos.
    pub chaos: Chaos,
    /// The replay run of each message ID (the handler is not told).
    pub runs: Arc<Mutex<std::collections::BTreeMap<String, Option<String>>>>,
    /// The group's typed event.
    pub event: std::marker::PhantomData<fn() -> E>,
}

impl<E: GroupEvent + Entity> Handler for SimHandler<E> {
    type Event = E;

    async fn handle(&self, event: &E, ctx: &Context<'_>) -> Result<(), HandlerError> {
        let fault = self.chaos.draw(&[
            Fault::HandlerRetry,
            Fault::HandlerPermanent,
            Fault::HandlerPanic,
            Fault::HandlerHang,
            Fault::KillAfterHandler,
        ]);
        match fault {
            Some(Fault::HandlerRetry) => return Err(HandlerError::retry("injected: downstream is down")),
            Some(Fault::HandlerPermanent) => {
                return Err(HandlerError::permanent("injected: no such entity downstream"))
            }
            Some(Fault::HandlerPanic) => panic!("injected: handler panic"),
            Some(Fault::HandlerHang) => tokio::time::sleep(Duration::from_secs(3600)).await,
            _ => {}
        }
        let run = self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(ctx.message_id).cloned().flatten();
        let subject = event.subject().map(|s| format!("{}/{}", s.entity, s.facet)).unwrap_or_default();
        let invocation = self.chaos.current();
        let envelope = event.envelope();
        self.chaos.ledger().apply(
            key_of(&envelope.payload_id, run.as_deref()),
            subject,
            envelope.event_datetime_utc,
            invocation,
        );
        if fault == Some(Fault::KillAfterHandler) {
            self.chaos.kill().await;
        }
        Ok(())
    }
}

/// A destination that notes every delivery in the ledger and fails as the faults say.
pub struct SimDestination {
    /// `eventbridge` or `http`.
    pub name: &'static str,
    /// The group of the records it gets.
    pub group: EventGroup,
    /// Its chaos.
    pub chaos: Chaos,
    /// The store, to tell a repeated delivery whose step was recorded.
    pub store: Arc<dyn SimStore>,
}

#[async_trait::async_trait]
impl Destination for SimDestination {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn deliver(&self, events: &[Outgoing<'_>]) -> Vec<Verdict> {
        if self.chaos.draw(&[Fault::DestinationTimeout]).is_some() {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let mut verdicts = Vec::with_capacity(events.len());
        let mut kill = false;
        for event in events {
            let fault = self.chaos.draw(&[Fault::Destination4xx, Fault::Destination5xx, Fault::KillAfterDelivery]);
            let verdict = match fault {
                Some(Fault::Destination4xx) => Verdict::Permanent { reason: "injected: HTTP 400".into() },
                Some(Fault::Destination5xx) => {
                    let after =
                        (self.chaos.between(0, 1) == 1).then(|| Duration::from_secs(self.chaos.between(1, 600)));
                    Verdict::Retry { reason: "injected: HTTP 503".into(), after }
                }
                _ => Verdict::Delivered,
            };
            kill |= fault == Some(Fault::KillAfterDelivery);
            if verdict == Verdict::Delivered {
                let key = key_of(event.payload_id, event.replay_run);
                let claim = claim_key(self.group, &key);
                self.chaos.ledger().deliver(self.name, key, self.store.as_ref(), &claim);
            }
            verdicts.push(verdict);
        }
        if kill {
            self.chaos.kill().await;
        }
        verdicts
    }
}

/// The claim key of `key` in `group`, as the runner writes it.
pub fn claim_key(group: EventGroup, key: &Key) -> String {
    let sep = crate::consumer::CLAIM_SEPARATOR;
    match &key.1 {
        None => format!("{group}{sep}{}", key.0),
        Some(run) => format!("{group}{sep}{}{sep}{run}", key.0),
    }
}

/// The model's dead-letter queue behind the consumer's sink.
pub struct SimDeadLetters {
    /// The queue whose dead-letter queue it is.
    pub queue: Arc<Mutex<Queue>>,
    /// Its chaos.
    pub chaos: Chaos,
}

#[async_trait::async_trait]
impl DeadLetterSink for SimDeadLetters {
    async fn dead_letter(&self, _: EventGroup, record: &Record, reason: &str) -> Result<(), DeadLetterError> {
        let fault = self.chaos.draw(&[Fault::DeadLetterError, Fault::KillBeforeWrite, Fault::KillAfterWrite]);
        match fault {
            Some(Fault::DeadLetterError) => return Err(DeadLetterError::transient("injected: SQS refused")),
            Some(Fault::KillBeforeWrite) => self.chaos.kill().await,
            _ => {}
        }
        let mut record = record.clone();
        if record.attribute(attr::PAYLOAD_ID).is_none() {
            record.attributes.push((attr::PAYLOAD_ID.into(), String::new()));
        }
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).dead_letter(&record, reason);
        if fault == Some(Fault::KillAfterWrite) {
            self.chaos.kill().await;
        }
        Ok(())
    }
}
