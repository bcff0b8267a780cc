//! A deterministic simulation of the consumer side, for `make test` and `make simulate`:
//! one seed, one thread, one virtual clock (tokio's, paused), driving the real
//! [`Lifecycle`](crate::consumer::Lifecycle), the real [`Runner`] and the real
//! [`MemoryStore`] against a model of what SQS does and of what Creative Force sends,
//! with faults injected at every effect boundary and the invariants checked after every
//! step. A failing seed is shrunk (fewer events, fewer kinds of fault) and printed with
//! the one command that replays it.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
mod faults;
mod ledger;
mod model;
pub mod rng;
mod runs;
mod sqs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::consumer::idempotency::Entry;
use crate::consumer::{Consume, IdempotencyStore, MemoryStore, Order, Outcome, Runner};
use crate::events::ordering::Entity;
use crate::events::{EventGroup, GroupEvent, TaskEvent, UserEvent};
use crate::message::attr;

use faults::{claim_key, key_of, Chaos, FaultyStore, SimDeadLetters, SimDestination, SimHandler};
pub use faults::{Fault, Faults};
pub use ledger::Violation;
use ledger::{Key, Ledger, Sent};
use model::{message_group, plant_drift, sender, Model};
use rng::Rng;
pub use runs::{shrink, Totals};
use sqs::{Answer, Queue};

/// The consumer function's timeout in the model.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The claim lease: twice the timeout, as the template sets.
pub const LEASE: Duration = Duration::from_secs(60);
/// How long before it the Lambda glue wants the batch's answer.
const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// The idempotency memory in the model (short, so that a redrive days later meets it).
const MEMORY: Duration = Duration::from_secs(2 * 24 * 3600);
/// The simulated epoch: 2026-01-01.
const EPOCH_MS: i64 = 1_767_225_600_000;
/// How long a phase may take before the run counts as stuck.
const PHASE_LIMIT: Duration = Duration::from_secs(3 * 24 * 3600);

/// A store the simulation drives and inspects: what an item holds, and a facet's
/// recorded version, read as the checks need them.
pub trait SimStore: IdempotencyStore {
    /// The item at `key`, unless forgotten.
    fn entry(&self, key: &str) -> Option<Entry>;
    /// The facet's recorded version.
    fn version(&self, subject: &str) -> Option<i64>;
}

impl SimStore for MemoryStore {
    fn entry(&self, key: &str) -> Option<Entry> {
        MemoryStore::entry(self, key)
    }
    fn version(&self, subject: &str) -> Option<i64> {
        MemoryStore::version(self, subject)
    }
}

/// Makes the store of a run from the simulated clock, the lease and the memory.
pub type StoreFactory = Box<dyn FnOnce(Clock, Duration, Duration) -> Arc<dyn SimStore>>;

/// What one run simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The seed: everything else follows from it.
    pub seed: u64,
    /// Events Creative Force sends.
    pub events: usize,
    /// The faults on.
    pub faults: Faults,
    /// Percent of chances at each boundary that a fault is injected.
    pub rate: u64,
    /// The claim lease (twice the function's timeout, as the template sets; shorter to
    /// check that the simulation sees a live holder lose its claim).
    pub lease: Duration,
    /// Per-entity order (`latest`); `all` applies every event, which breaks order on
    /// purpose (a check of the checker).
    pub ordering: Order,
    /// Force FIFO (`Some(true)`) or standard queues; by the seed when `None`.
    pub fifo: Option<bool>,
}

impl Config {
    /// A run of `seed` with every fault on.
    pub fn new(seed: u64) -> Self {
        Self { seed, events: 12, faults: Faults::all(), rate: 6, lease: LEASE, ordering: Order::Latest, fifo: None }
    }

    /// The command that replays it.
    pub fn command(&self) -> String {
        format!("make simulate SEED={} EVENTS={} FAULTS={}", self.seed, self.events, self.faults)
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// FIFO or standard queues.
    pub fifo: bool,
    /// The group sent (task, or user with both spellings of its ID); `None` before a run.
    pub group: Option<EventGroup>,
    /// Batches run.
    pub batches: u64,
    /// Faults injected, by kind.
    pub injected: BTreeMap<&'static str, u64>,
    /// Handler applications.
    pub applications: usize,
    /// Applications no write recorded (the one window).
    pub window: u64,
    /// Older-after-newer applications over standard queues.
    pub standard_reorders: u64,
    /// Deliveries a destination got again.
    pub repeated_deliveries: u64,
    /// Copies that waited on another's claim and were received again once it settled.
    pub answered_waits: u64,
    /// Outcomes reported, by word (counted once per event and word).
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Simulated time.
    pub simulated: Duration,
}

/// Everything the actors share.
struct World {
    clock: Clock,
    queue: Arc<Mutex<Queue>>,
    store: Arc<dyn SimStore>,
    ledger: Arc<Mutex<Ledger>>,
    rng: Arc<Mutex<Rng>>,
    runs: Arc<Mutex<BTreeMap<String, Option<String>>>>,
    /// Each accepted event's body and entity.
    bodies: Mutex<BTreeMap<Key, (String, String)>>,
    arrived: tokio::sync::Notify,
    stop: std::sync::atomic::AtomicBool,
    sender_done: std::sync::atomic::AtomicBool,
    invocations: std::sync::atomic::AtomicU64,
    config: Config,
    /// The group the run sends.
    model: Model,
}

impl World {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn rng(&self) -> std::sync::MutexGuard<'_, Rng> {
        self.rng.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }
    fn has(&self, fault: Fault) -> bool {
        self.config.faults.has(fault)
    }
    fn chance(&self, fault: Fault) -> bool {
        if !self.has(fault) || !self.rng().chance(self.config.rate * 2) {
            return false;
        }
        self.ledger().inject(fault.name());
        true
    }
    /// Sends a message in the message group ingest would give it, noting its run, and
    /// wakes the consumers.
    fn send(&self, body: String, key: Key) {
        let now = self.now();
        let group = message_group(&body, &key.0);
        let mut queue = self.queue();
        if queue.send(now, body, key.clone(), Some(group)) {
            let id = queue.messages.last().map(|m| m.id.clone()).unwrap_or_default();
            self.runs.lock().unwrap_or_else(|p| p.into_inner()).insert(id, key.1);
        }
        drop(queue);
        self.arrived.notify_waiters();
    }
}

/// Keeps the handler panics the simulation injects (and the runner catches) off stderr.
fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info.payload().downcast_ref::<&str>().is_some_and(|m| m.starts_with("injected"));
            if !injected {
                default_hook(info);
            }
        }));
    });
}

/// Runs one simulation over the memory store: `Err` with the first invariant broken.
pub fn run(config: Config) -> Result<Summary, Violation> {
    run_on(config, Box::new(|clock, lease, memory| Arc::new(MemoryStore::with_clock(lease, memory, clock))))
}

/// Runs one simulation over the store `store` makes.
pub fn run_on(config: Config, store: StoreFactory) -> Result<Summary, Violation> {
    quiet_injected_panics();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(simulate(config, store))
}

async fn simulate(config: Config, store: StoreFactory) -> Result<Summary, Violation> {
    let mut rng = Rng::new(config.seed);
    let fifo = config.fifo.unwrap_or_else(|| rng.chance(50));
    let consumers = rng.between(1, 3) as usize;
    let batch = rng.between(1, 10) as usize;
    let max_receives = rng.between(2, 5) as u32;
    // Records a consumer works on at once, 1 to 10 (the batches are 1 to 10): from the
    // seed itself, not a draw, so that every other choice of a seed stays as it was.
    let in_flight = 1 + (config.seed.rotate_left(17) % 10) as usize;
    let destinations: Vec<&'static str> = match rng.between(0, 2) {
        0 => vec![],
        1 => vec!["http"],
        _ => vec!["eventbridge", "http"],
    };
    let model = Model::pick(&mut rng);
    let clock = Clock::starting_at(EPOCH_MS);
    let store = store(clock, config.lease, MEMORY);
    let visibility = (TIMEOUT * 6).as_millis() as i64;
    let mut ledger = Ledger::default();
    ledger.fifo = fifo;
    let ledger = Arc::new(Mutex::new(ledger));
    let world = Arc::new(World {
        clock,
        queue: Arc::new(Mutex::new(Queue::new(fifo, visibility, max_receives))),
        store: store.clone(),
        ledger: ledger.clone(),
        rng: Arc::new(Mutex::new(Rng::new(rng.next_u64()))),
        runs: Arc::default(),
        bodies: Mutex::default(),
        arrived: tokio::sync::Notify::new(),
        stop: false.into(),
        sender_done: false.into(),
        invocations: 0.into(),
        config,
        model,
    });

    // What Creative Force sends: events of a few entities, each moving a facet, sent at
    // random times in the first ten minutes, so often out of order.
    let entities = rng.between(1, 3);
    let mut schedule: Vec<(i64, usize, u32)> = Vec::new();
    let mut events = Vec::new();
    let mut future_stamped = 0;
    for i in 0..config.events {
        let entity = model.entity(rng.between(1, entities));
        let action = *rng.pick(model.actions());
        let mut version = EPOCH_MS - 60_000 + i as i64 * 1_000;
        if config.faults.has(Fault::FutureStamp) && rng.chance(config.rate * 4) {
            version += rng.between(60_000, 300_000) as i64;
            future_stamped += 1;
        }
        let payload = format!("p-{i}");
        let mut body = model.body(&payload, action, version, &entity, &mut rng);
        if config.faults.has(Fault::SenderDrift) && rng.chance(config.rate * 4) {
            let planted = plant_drift(&mut body, model.group, rng.chance(50));
            let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
            ledger.inject(Fault::SenderDrift.name());
            ledger.planted.insert(payload.clone(), planted);
        }
        let subject = format!("{entity}/{}", model.facet(action));
        events.push((body, payload, entity, subject, version));
        schedule.push((rng.between(0, 600_000) as i64, i, 0));
    }

    if future_stamped > 0 {
        ledger.lock().unwrap_or_else(|p| p.into_inner()).injected.insert(Fault::FutureStamp.name(), future_stamped);
    }
    let mut actors: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = Vec::new();
    actors.push(Box::pin(sender(world.clone(), events, schedule)));
    for index in 0..consumers {
        let slot = Arc::new(Mutex::new((0, Arc::new(tokio::sync::Notify::new()))));
        let chaos = Chaos {
            ledger: ledger.clone(),
            rng: world.rng.clone(),
            faults: config.faults,
            rate: config.rate,
            invocation: slot.clone(),
        };
        let runner: Box<dyn Consume> = match model.group {
            EventGroup::User => runner::<UserEvent>(&world, chaos, &destinations, (max_receives, in_flight), index),
            _ => runner::<TaskEvent>(&world, chaos, &destinations, (max_receives, in_flight), index),
        };
        actors.push(Box::pin(consumer(world.clone(), runner, slot, batch)));
    }
    actors.push(Box::pin(driver(world.clone())));
    futures_util::future::join_all(actors).await;

    let dead: Vec<(Key, String)> =
        world.queue().dead.iter().map(|(m, reason)| (m.payload.clone(), reason.clone())).collect();
    let mut ledger = world.ledger();
    ledger.now_ms = world.now() - EPOCH_MS;
    if ledger.violation.is_none() {
        ledger.check_end(&destinations, &dead);
    }
    if let Some(violation) = ledger.violation.clone() {
        return Err(violation);
    }
    Ok(Summary {
        fifo,
        group: Some(model.group),
        batches: ledger.batches,
        injected: ledger.injected.clone(),
        applications: ledger.applications(),
        window: ledger.window,
        standard_reorders: ledger.standard_reorders,
        repeated_deliveries: ledger.repeated_deliveries,
        answered_waits: ledger.answered_waits,
        outcomes: ledger.outcome_counts(),
        simulated: Duration::from_millis(u64::try_from(world.now() - EPOCH_MS).unwrap_or(0)),
    })
}

/// One consumer's runner over `E`, the run's group, with faults everywhere.
fn runner<E: GroupEvent + Entity>(
    world: &World,
    chaos: Chaos,
    destinations: &[&'static str],
    (max_receives, in_flight): (u32, usize),
    index: usize,
) -> Box<dyn Consume> {
    let store = world.store.clone();
    let handler = SimHandler::<E> { chaos: chaos.clone(), runs: world.runs.clone(), event: std::marker::PhantomData };
    let mut runner = Runner::new(
        handler,
        FaultyStore { inner: store.clone(), chaos: chaos.clone() },
        SimDeadLetters { queue: world.queue.clone(), chaos: chaos.clone() },
    )
    .with_ordering(world.config.ordering)
    .with_max_receives(max_receives)
    .with_records_in_flight(in_flight)
    .with_owner_prefix(index as u64);
    for name in destinations {
        let destination = SimDestination { name, group: E::GROUP, chaos: chaos.clone(), store: store.clone() };
        runner = runner.with_destination(Arc::new(destination));
    }
    Box::new(runner)
}

/// One consumer function: receives batches like Lambda's event source mapping, runs them
/// under the invocation's deadline (or dies by a fault, or at its timeout), and answers.
async fn consumer(
    world: Arc<World>,
    runner: Box<dyn Consume>,
    slot: Arc<Mutex<(u64, Arc<tokio::sync::Notify>)>>,
    batch: usize,
) {
    loop {
        if world.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let now = world.now();
        let duplicate = world.has(Fault::SqsDuplicate) && !world.queue().fifo && world.chance(Fault::SqsDuplicate);
        let records = {
            let mut rng = world.rng().clone();
            let mut queue = world.queue();
            let records = queue.receive(now, batch, &mut rng, duplicate);
            let moved = std::mem::take(&mut queue.moved);
            let max_receives = queue.max_receives;
            drop(queue);
            *world.rng() = rng;
            let mut ledger = world.ledger();
            for id in moved {
                ledger.moved(&id, max_receives);
            }
            for record in &records {
                ledger.received(&record.message_id, record.receive_count, now);
            }
            records
        };
        if records.is_empty() {
            let next = world.queue().next_visible().filter(|at| *at > now);
            let wait = next.map_or(Duration::from_secs(3600), |at| Duration::from_millis((at - now) as u64));
            tokio::select! {
                _ = world.arrived.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let invocation = world.invocations.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let kill = Arc::new(tokio::sync::Notify::new());
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = (invocation, kill.clone());
        world.ledger().start(invocation);
        let hard = tokio::time::Instant::now() + TIMEOUT;
        let report = tokio::select! {
            report = runner.run_until(&records, Some(hard - ANSWER_MARGIN)) => Some(report),
            _ = kill.notified() => None,
            _ = tokio::time::sleep_until(hard) => None,
        };
        let now = world.now();
        let group = world.model.group;
        world.ledger().end(invocation, world.store.as_ref(), |key| claim_key(group, key));
        if let Some(report) = report {
            let mut queue = world.queue();
            let mut ledger = world.ledger();
            for (record, line) in records.iter().zip(&report.records) {
                let key =
                    key_of(record.attribute(attr::PAYLOAD_ID).unwrap_or_default(), record.attribute(attr::REPLAY_RUN));
                if let Outcome::Waiting { retry_after, .. } = &line.outcome {
                    let hide = retry_after.as_millis() as i64;
                    let receives = (record.receive_count, queue.max_receives);
                    let claim = claim_key(world.model.group, &key);
                    ledger.waits(&record.message_id, &claim, invocation, receives, hide, now);
                }
                let payload = record.attribute(attr::PAYLOAD_ID).unwrap_or_default();
                ledger.drift(payload, &line.drift, line.outcome.word());
                ledger.outcome(key, line.outcome.word());
                let receipt = record.receipt_handle.clone().unwrap_or_default();
                let answer = match line.retry() {
                    // As the Lambda glue: one rule for how long a record is hidden.
                    true => Answer::Retry {
                        hide_ms: line
                            .outcome
                            .hide_for(Duration::from_millis(queue.visibility_ms as u64))
                            .map(|a| a.as_millis() as i64),
                        reason: line.reason.clone().unwrap_or_default(),
                    },
                    false => Answer::Delete,
                };
                queue.answer(now, &record.message_id, &receipt, answer);
            }
        }
        let mut ledger = world.ledger();
        ledger.batches += 1;
        ledger.now_ms = now - EPOCH_MS;
        ledger.check_versions(world.store.as_ref());
        let failed = ledger.violation.is_some();
        drop(ledger);
        world.arrived.notify_waiters();
        if failed {
            world.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Waits for quiet (the sender done, every queue empty, no invocation running), then a
/// redrive days later, then a replay run, then stops the consumers.
async fn driver(world: Arc<World>) {
    quiet(&world).await;
    let mut replayed_at = None;
    if world.has(Fault::Replay) && world.chance(Fault::Replay) {
        replayed_at = Some(world.now());
        let applied: Vec<(Key, Sent)> = world.ledger().accepted.iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        for (n, (key, sent)) in applied.iter().enumerate().filter(|(n, _)| n % 2 == 0) {
            let (entity, facet) = sent.subject.split_once('/').unwrap_or_default();
            let action = world.model.action_of(facet);
            // What the archive kept: the bytes Creative Force sent (drift and all).
            let archived = world.bodies.lock().unwrap_or_else(|p| p.into_inner()).get(key).map(|(b, _)| b.clone());
            let body = match archived {
                Some(body) => body,
                None => world.model.body(&key.0, action, sent.version, entity, &mut world.rng()),
            };
            let replayed = (key.0.clone(), Some("run-1".to_owned()));
            world.ledger().accepted.insert(replayed.clone(), sent.clone());
            let kept = (body.clone(), entity.to_owned());
            world.bodies.lock().unwrap_or_else(|p| p.into_inner()).insert(replayed.clone(), kept);
            world.send(body.clone(), replayed.clone());
            if n == 0 {
                // The same run delivers one event twice (the run's time on both): applied
                // once.
                tokio::time::sleep(Duration::from_secs(400)).await;
                world.send(body, replayed);
                if let Some(last) = world.queue().messages.last_mut() {
                    last.replayed_at = replayed_at;
                }
            }
        }
        quiet(&world).await;
    }
    let late_copy = world.has(Fault::LateCopy) && world.chance(Fault::LateCopy);
    if late_copy {
        // Copies of applied events (and of a replay run's deliveries) reached the
        // dead-letter queue (a duplicate that waited, a dead letter sent twice): they are
        // redriven with the rest.
        let accepted: Vec<Key> = world.ledger().accepted.keys().cloned().collect();
        let bodies = world.bodies.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut queue = world.queue();
        let copies =
            accepted.iter().filter(|k| k.1.is_none()).take(3).chain(accepted.iter().filter(|k| k.1.is_some()).take(2));
        for key in copies {
            if let Some((body, _)) = bodies.get(key) {
                let id = format!("copy-{}-{}", key.0, key.1.as_deref().unwrap_or(""));
                world.runs.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), key.1.clone());
                let copy = sqs::Message {
                    id,
                    body: body.clone(),
                    payload: key.clone(),
                    group: queue.fifo.then(|| message_group(body, &key.0)),
                    receives: 0,
                    visible_at: 0,
                    receipt: 0,
                    last_failure: None,
                    replayed_at: key.1.as_ref().and(replayed_at),
                };
                queue.dead.push((copy, "a copy".into()));
            }
        }
    }
    let redrive = world.has(Fault::Redrive) && world.chance(Fault::Redrive);
    if (late_copy || redrive) && !world.queue().dead.is_empty() {
        // Days later, or just past the memory from the events' times (where an event
        // stamped ahead of the clock is still accepted by the expiry rule) or from the
        // replay run's (where a run's second delivery must not be applied again).
        let now = world.now();
        let memory = MEMORY.as_millis() as i64;
        let just_past = world.rng().between(0, 300_000) as i64;
        let pick = world.rng().between(0, 2);
        let days = world.rng().between(0, 3);
        let at = match (pick, replayed_at) {
            (0, _) => EPOCH_MS + memory + just_past,
            (1, Some(replayed)) => replayed + memory + just_past,
            _ => now + (days * 24 * 3600 + 3600) as i64 * 1000,
        };
        tokio::time::sleep(Duration::from_millis(u64::try_from(at - now).unwrap_or(0))).await;
        let now = world.now();
        world.queue().redrive(now);
        world.arrived.notify_waiters();
        quiet(&world).await;
    }
    world.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    world.arrived.notify_waiters();
}

async fn quiet(world: &World) {
    let start = world.now();
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        if world.stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let done = world.sender_done.load(std::sync::atomic::Ordering::SeqCst);
        if done && world.queue().is_empty() && world.ledger().alive() == 0 {
            return;
        }
        if world.now() - start > PHASE_LIMIT.as_millis() as i64 {
            let mut ledger = world.ledger();
            ledger.now_ms = world.now() - EPOCH_MS;
            if ledger.violation.is_none() {
                ledger.violation = Some(Violation {
                    invariant: "stuck",
                    detail: format!("{} messages still queued after 3 simulated days", world.queue().messages.len()),
                    at_ms: ledger.now_ms,
                });
            }
            world.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            return;
        }
    }
}
