//! In-memory queues with the semantics `cfwh dev` needs from SQS: receive in batches,
//! delete on success, redeliver after a delay on failure, move to a dead-letter list
//! after too many receives, and drain on shutdown. FIFO queues also keep SQS FIFO's
//! order: a message group with a message in flight (or waiting to be redelivered) gives
//! none of its later messages, and a redelivered message comes back ahead of them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{PublishError, Publisher};
use crate::consumer::{DeadLetterError, DeadLetterSink, Record};
use crate::events::{EventGroup, Route};
use crate::message::Message;

/// A message handed to a consumer, until it is deleted or released.
#[derive(Debug, Clone)]
pub struct Received {
    /// Unique within the process.
    pub id: String,
    /// The message as published.
    pub message: Message,
    /// 1 on the first delivery.
    pub receive_count: u32,
    /// Its place in the queue: publishing order.
    sequence: u64,
    /// Its message group, in a FIFO queue.
    group: Option<String>,
    /// Released to wait on a claim another attempt holds (not a failure).
    waiting: bool,
    /// Woken early by a drain, once: a drain does not wait for claims' leases.
    woken: bool,
}

impl Received {
    /// The runner's view of it (with its message group, from a FIFO queue).
    pub fn record(&self) -> Record {
        let message = &self.message;
        let attributes = message.attributes.pairs(&message.body);
        let mut record = Record::new(self.id.clone(), message.body.as_text(), self.receive_count, attributes);
        record.message_group = self.group.clone();
        record.trace_header = message.trace_header.clone();
        record
    }
}

/// A message that will not be delivered again.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The message body as it was queued.
    pub body: String,
    /// `Some("base64")` when the body is encoded.
    pub body_encoding: Option<String>,
    /// Why it was given up.
    pub reason: String,
    /// How often it was delivered.
    pub receive_count: u32,
}

/// What became of a released message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// It will be delivered again after the delay.
    Requeued,
    /// It had been received as often as allowed and is now a dead letter.
    DeadLettered,
}

/// How long a FIFO queue drops a message with a deduplication ID it took already (in
/// its group: high-throughput FIFO's `DeduplicationScope=messageGroup`), as SQS does.
pub const FIFO_DEDUPLICATION_WINDOW: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
struct State {
    /// In publishing order (FIFO queues put a redelivered message back in its place).
    ready: VecDeque<Received>,
    delayed: Vec<(Instant, Received)>,
    in_flight: usize,
    dead: Vec<DeadLetter>,
    /// FIFO: the groups with messages in flight or delayed, and how many.
    blocked: HashMap<String, usize>,
    /// FIFO: the (group, deduplication ID) pairs taken in the last window, and when,
    /// in arrival order so that the expired ones leave from the front.
    deduplicated: HashSet<(String, String)>,
    deduplication_order: VecDeque<(Instant, (String, String))>,
    /// The next message's place: taken under the lock, so `ready` stays in order.
    next_sequence: u64,
}

impl State {
    fn pending(&self) -> usize {
        self.ready.len() + self.delayed.len() + self.in_flight
    }

    fn promote_due(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].0 <= now {
                let (_, message) = self.delayed.swap_remove(i);
                self.unblock(message.group.as_deref());
                if message.group.is_some() {
                    let at = self.ready.partition_point(|m| m.sequence < message.sequence);
                    self.ready.insert(at, message);
                } else {
                    self.ready.push_back(message);
                }
            } else {
                i += 1;
            }
        }
    }

    fn block(&mut self, group: Option<&str>) {
        if let Some(group) = group {
            *self.blocked.entry(group.to_owned()).or_default() += 1;
        }
    }

    fn unblock(&mut self, group: Option<&str>) {
        if let Some(count) = group.and_then(|g| self.blocked.get_mut(g)) {
            *count -= 1;
            if *count == 0 {
                self.blocked.remove(group.unwrap_or_default());
            }
        }
    }

    /// Up to `max` ready messages: the first ones, but from a FIFO queue none of a
    /// group blocked by an earlier message still in flight or delayed.
    fn take(&mut self, max: usize) -> Vec<Received> {
        let taken: Vec<Received> = if self.blocked.is_empty() {
            let take = max.min(self.ready.len());
            self.ready.drain(..take).collect()
        } else {
            // The first `max` messages of groups not blocked, found without rebuilding
            // the queue: usually near its front.
            let blocked = &self.blocked;
            let positions: Vec<usize> = self
                .ready
                .iter()
                .enumerate()
                .filter(|(_, m)| m.group.as_ref().is_none_or(|g| !blocked.contains_key(g)))
                .map(|(at, _)| at)
                .take(max)
                .collect();
            let mut taken: Vec<Received> = positions.iter().rev().filter_map(|&at| self.ready.remove(at)).collect();
            taken.reverse();
            taken
        };
        for message in &taken {
            let group = message.group.clone();
            self.block(group.as_deref());
        }
        taken
    }

    /// When nothing is ready or in flight and every delayed message is a copy waiting
    /// on a claim: whether a drain woke all of them already. `None` otherwise.
    fn waiting_only(&self) -> Option<bool> {
        let only = self.in_flight == 0
            && self.ready.is_empty()
            && !self.delayed.is_empty()
            && self.delayed.iter().all(|(_, m)| m.waiting);
        only.then(|| self.delayed.iter().all(|(_, m)| m.woken))
    }

    fn next_due(&self) -> Option<Instant> {
        self.delayed.iter().map(|(at, _)| *at).min()
    }
}

struct Queue {
    state: Mutex<State>,
    arrived: Notify,
}

/// One queue per route, each with its dead letters.
pub struct MemoryQueues {
    queues: BTreeMap<Route, Queue>,
    capacity: usize,
    max_receives: u32,
    fifo: bool,
    next_id: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
    settled: Notify,
}

impl MemoryQueues {
    /// Queues for every route holding at most `capacity` pending messages each; a message
    /// received `max_receives` times and released again becomes a dead letter.
    pub fn new(capacity: usize, max_receives: u32) -> Self {
        let queues = Route::ALL
            .into_iter()
            .map(|route| (route, Queue { state: Mutex::new(State::default()), arrived: Notify::new() }))
            .collect();
        Self {
            queues,
            capacity,
            max_receives: max_receives.max(1),
            fifo: false,
            next_id: AtomicU64::new(1),
            closed: Default::default(),
            settled: Notify::new(),
        }
    }

    /// FIFO queues: messages keep their group (the entity), and a group is delivered one
    /// message after another, in publishing order (SQS FIFO's behaviour).
    pub fn fifo(mut self) -> Self {
        self.fifo = true;
        self
    }

    /// Whether these are FIFO queues.
    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    fn queue(&self, route: Route) -> &Queue {
        &self.queues[&route]
    }

    fn lock(&self, route: Route) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-changed: every
        // critical section is a few infallible collection operations.
        self.queue(route).state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes up to `max` messages, waiting up to `wait` for the first one.
    pub async fn receive(&self, route: Route, max: usize, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        loop {
            let next_due = {
                let mut state = self.lock(route);
                state.promote_due(Instant::now());
                let mut batch = state.take(max);
                if !batch.is_empty() {
                    for received in &mut batch {
                        received.receive_count += 1;
                    }
                    state.in_flight += batch.len();
                    return batch;
                }
                state.next_due()
            };
            let now = Instant::now();
            if now >= deadline {
                return Vec::new();
            }
            let wake = next_due.map_or(deadline, |due| due.min(deadline));
            tokio::select! {
                _ = self.queue(route).arrived.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Deletes a received message: it was handled (or moved to a dead-letter queue).
    pub fn delete(&self, route: Route, received: &Received) {
        let mut state = self.lock(route);
        state.in_flight = state.in_flight.saturating_sub(1);
        state.unblock(received.group.as_deref());
        drop(state);
        // The group may have more.
        self.queue(route).arrived.notify_one();
        self.settled.notify_waiters();
    }

    /// Gives a received message back: delivered again after `delay`, or a dead letter once
    /// it was received as often as allowed.
    pub fn release(&self, route: Route, received: Received, delay: Duration, reason: &str) -> Released {
        self.give_back(route, Received { waiting: false, ..received }, delay, reason)
    }

    /// Gives back a message whose record waits on a claim another attempt holds: as
    /// [`release`](Self::release), but a drain wakes it rather than wait out its delay.
    pub fn release_waiting(&self, route: Route, received: Received, delay: Duration, reason: &str) -> Released {
        self.give_back(route, Received { waiting: true, ..received }, delay, reason)
    }

    fn give_back(&self, route: Route, received: Received, delay: Duration, reason: &str) -> Released {
        let mut state = self.lock(route);
        state.in_flight = state.in_flight.saturating_sub(1);
        let released = if received.receive_count >= self.max_receives {
            let receive_count = received.receive_count;
            let reason = format!("received {receive_count} times without success; last error: {reason}");
            let body_encoding = received.message.body.encoding().map(str::to_owned);
            let body = received.message.body.as_text().to_owned();
            state.dead.push(DeadLetter { body, body_encoding, reason, receive_count });
            state.unblock(received.group.as_deref());
            Released::DeadLettered
        } else {
            state.delayed.push((Instant::now() + delay, received));
            Released::Requeued
        };
        drop(state);
        self.queue(route).arrived.notify_one();
        self.settled.notify_waiters();
        released
    }

    /// Adds a dead letter to `route` (a permanent failure).
    pub fn dead_letter(&self, route: Route, letter: DeadLetter) {
        self.lock(route).dead.push(letter);
    }

    /// The dead letters of a route.
    pub fn dead_letters(&self, route: Route) -> Vec<DeadLetter> {
        self.lock(route).dead.clone()
    }

    /// Messages of a route not yet handled: waiting, delayed for a retry, or in flight.
    pub fn pending(&self, route: Route) -> usize {
        self.lock(route).pending()
    }

    /// Refuses new messages from now on (shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Waits until no route has a pending message but copies waiting on claims held
    /// elsewhere, and answers how many of those are left. A drain does not wait for a
    /// claim's lease: once a route has nothing ready or in flight but waiting copies (every
    /// holder in this process has settled), they are woken at once, one time; those that
    /// wait again wait on a holder elsewhere, whose own message carries the event.
    pub async fn drained(&self) -> usize {
        loop {
            let settled = self.settled.notified();
            let mut left = 0;
            let mut done = true;
            for route in Route::ALL.into_iter().filter(|r| *r != Route::Unrouted) {
                let mut state = self.lock(route);
                match state.waiting_only() {
                    None => done &= state.pending() == 0,
                    Some(true) => left += state.delayed.len(),
                    Some(false) => {
                        let now = Instant::now();
                        for (due, received) in &mut state.delayed {
                            (*due, received.woken) = (now, true);
                        }
                        drop(state);
                        self.queue(route).arrived.notify_waiters();
                        done = false;
                    }
                }
            }
            if done {
                return left;
            }
            // Woken by any delete or release; the timeout covers a retry delay expiring.
            let _ = tokio::time::timeout(Duration::from_millis(100), settled).await;
        }
    }

    /// True when a consumer of `route` may stop: nothing pending there but copies a drain
    /// woke once and that wait again.
    pub fn idle(&self, route: Route) -> bool {
        let state = self.lock(route);
        state.pending() == 0 || state.waiting_only() == Some(true)
    }
}

impl Publisher for MemoryQueues {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        let route = message.route;
        if self.closed.load(Ordering::SeqCst) {
            return Err(PublishError::Closed(route));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = self.lock(route);
            if state.pending() >= self.capacity {
                return Err(PublishError::Full(route));
            }
            let group = if self.fifo { message.fifo_group_id.clone() } else { None };
            if let (Some(group), Some(dedup)) = (&group, &message.dedup_id) {
                let now = Instant::now();
                while let Some((at, _)) = state.deduplication_order.front() {
                    if now.duration_since(*at) < FIFO_DEDUPLICATION_WINDOW {
                        break;
                    }
                    if let Some((_, key)) = state.deduplication_order.pop_front() {
                        state.deduplicated.remove(&key);
                    }
                }
                let key = (group.clone(), dedup.clone());
                if state.deduplicated.contains(&key) {
                    // SQS answers a deduplicated send with success, and keeps one copy.
                    return Ok(());
                }
                state.deduplicated.insert(key.clone());
                state.deduplication_order.push_back((now, key));
            }
            let sequence = state.next_sequence;
            state.next_sequence += 1;
            let received = Received {
                id: format!("mem-{id}"),
                message,
                receive_count: 0,
                sequence,
                group,
                waiting: false,
                woken: false,
            };
            state.ready.push_back(received);
        }
        self.queue(route).arrived.notify_one();
        Ok(())
    }
}

/// Permanent failures of `cfwh dev` go to the dead letters of the group's in-memory queue.
#[async_trait::async_trait]
impl DeadLetterSink for MemoryQueues {
    async fn dead_letter(&self, group: EventGroup, record: &Record, reason: &str) -> Result<(), DeadLetterError> {
        let letter = DeadLetter {
            body: record.body.clone(),
            body_encoding: record.body_encoding().map(str::to_owned),
            reason: reason.to_owned(),
            receive_count: record.receive_count,
        };
        MemoryQueues::dead_letter(self, Route::Group(group), letter);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Attributes, Body};

    fn message(route: Route, n: u8) -> Message {
        Message {
            route,
            body: Body::Raw(bytes::Bytes::from(vec![b'0' + n])),
            attributes: Attributes::default(),
            fifo_group_id: None,
            dedup_id: None,
            trace_header: None,
        }
    }

    const TASK: Route = Route::Group(EventGroup::Task);

    #[tokio::test]
    async fn batches_redelivery_and_dead_letters() {
        let queues = MemoryQueues::new(100, 2);
        queues.dead_letter(
            Route::Unrouted,
            DeadLetter { body: "x".into(), body_encoding: None, reason: "r".into(), receive_count: 1 },
        );
        assert_eq!(queues.dead_letters(Route::Unrouted).len(), 1);
        for n in 0..3 {
            queues.publish(message(TASK, n)).await.unwrap();
        }
        let batch = queues.receive(TASK, 2, Duration::ZERO).await;
        assert_eq!(batch.len(), 2);
        assert_eq!(queues.pending(TASK), 3);
        let mut batch = batch.into_iter();
        queues.delete(TASK, &batch.next().unwrap());
        let failed = batch.next().unwrap();
        assert_eq!(queues.release(TASK, failed, Duration::ZERO, "boom"), Released::Requeued);
        let batch = queues.receive(TASK, 10, Duration::ZERO).await;
        assert_eq!(batch.len(), 2);
        let again = batch.into_iter().find(|r| r.receive_count == 2).unwrap();
        assert_eq!(queues.release(TASK, again, Duration::ZERO, "boom"), Released::DeadLettered);
        let dead = queues.dead_letters(TASK);
        assert_eq!(dead.len(), 1);
        assert!(dead[0].reason.contains("received 2 times"), "{}", dead[0].reason);
        assert_eq!(queues.pending(TASK), 1, "one still in flight");
    }

    #[tokio::test]
    async fn full_and_closed_queues_refuse() {
        let queues = MemoryQueues::new(1, 5);
        queues.publish(message(TASK, 0)).await.unwrap();
        assert_eq!(queues.publish(message(TASK, 1)).await, Err(PublishError::Full(TASK)));
        queues.publish(message(Route::Unrouted, 1)).await.unwrap();
        queues.close();
        assert_eq!(queues.publish(message(Route::Unrouted, 2)).await, Err(PublishError::Closed(Route::Unrouted)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_message_waits_for_its_time() {
        let queues = MemoryQueues::new(10, 5);
        queues.publish(message(TASK, 0)).await.unwrap();
        let first = queues.receive(TASK, 1, Duration::ZERO).await.pop().unwrap();
        queues.release(TASK, first, Duration::from_secs(30), "later");
        assert!(queues.receive(TASK, 1, Duration::from_secs(10)).await.is_empty());
        let again = queues.receive(TASK, 1, Duration::from_secs(60)).await;
        assert_eq!(again[0].receive_count, 2);
    }

    fn in_group(n: u8, group: &str) -> Message {
        Message { fifo_group_id: Some(group.to_owned()), ..message(TASK, n) }
    }

    fn bodies(batch: &[Received]) -> Vec<String> {
        batch.iter().map(|r| r.message.body.as_text().to_owned()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_fifo_group_waits_for_its_message_in_flight_and_keeps_its_order() {
        let queues = MemoryQueues::new(100, 5).fifo();
        for (n, group) in [(1, "a"), (2, "b"), (3, "a"), (4, "b")] {
            queues.publish(in_group(n, group)).await.unwrap();
        }
        let first = queues.receive(TASK, 1, Duration::ZERO).await;
        assert_eq!(bodies(&first), ["1"]);
        assert_eq!(first[0].record().message_group.as_deref(), Some("a"));
        // a is in flight: only b's messages come, both in order.
        let second = queues.receive(TASK, 10, Duration::ZERO).await;
        assert_eq!(bodies(&second), ["2", "4"]);
        assert!(queues.receive(TASK, 10, Duration::ZERO).await.is_empty(), "both groups are busy");
        // a's first fails: it comes back ahead of a's second, after the delay.
        queues.release(TASK, first.into_iter().next().unwrap(), Duration::from_secs(5), "boom");
        for received in &second {
            queues.delete(TASK, received);
        }
        queues.publish(in_group(5, "b")).await.unwrap();
        assert_eq!(bodies(&queues.receive(TASK, 10, Duration::ZERO).await), ["5"], "a waits for its redelivery");
        let again = queues.receive(TASK, 10, Duration::from_secs(10)).await;
        assert_eq!(bodies(&again), ["1", "3"]);
        assert_eq!(again[0].receive_count, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fifo_queue_drops_a_deduplication_id_it_took_within_five_minutes() {
        let queues = MemoryQueues::new(100, 5).fifo();
        let with = |n, group: &str, dedup: &str| Message { dedup_id: Some(dedup.to_owned()), ..in_group(n, group) };
        queues.publish(with(1, "a", "p-1")).await.unwrap();
        queues.publish(with(2, "a", "p-1")).await.unwrap();
        queues.publish(with(3, "b", "p-1")).await.unwrap();
        tokio::time::advance(FIFO_DEDUPLICATION_WINDOW).await;
        queues.publish(with(4, "a", "p-1")).await.unwrap();
        let bodies = bodies(&queues.receive(TASK, 10, Duration::ZERO).await);
        assert_eq!(bodies, ["1", "3", "4"], "per group, and only within the window");
        let standard = MemoryQueues::new(100, 5);
        standard.publish(with(1, "a", "p-1")).await.unwrap();
        standard.publish(with(2, "a", "p-1")).await.unwrap();
        assert_eq!(standard.pending(TASK), 2, "standard queues do not deduplicate");
    }

    #[tokio::test]
    async fn a_standard_queue_ignores_groups() {
        let queues = MemoryQueues::new(100, 5);
        for n in 1..=3 {
            queues.publish(in_group(n, "a")).await.unwrap();
        }
        let first = queues.receive(TASK, 1, Duration::ZERO).await;
        assert_eq!(first[0].record().message_group, None);
        assert_eq!(bodies(&queues.receive(TASK, 10, Duration::ZERO).await), ["2", "3"]);
    }

    #[tokio::test]
    async fn a_dead_lettered_fifo_message_frees_its_group() {
        let queues = MemoryQueues::new(100, 1).fifo();
        queues.publish(in_group(1, "a")).await.unwrap();
        queues.publish(in_group(2, "a")).await.unwrap();
        let first = queues.receive(TASK, 1, Duration::ZERO).await.pop().unwrap();
        assert_eq!(queues.release(TASK, first, Duration::ZERO, "boom"), Released::DeadLettered);
        assert_eq!(bodies(&queues.receive(TASK, 10, Duration::ZERO).await), ["2"]);
    }
}
