//! In-memory queues with the semantics `cfwh dev` needs from SQS: receive in batches,
//! delete on success, redeliver after a delay on failure, move to a dead-letter list
//! after too many receives, and drain on shutdown.

use std::collections::{BTreeMap, VecDeque};
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
}

impl Received {
    /// The runner's view of it.
    pub fn record(&self) -> Record {
        let message = &self.message;
        let attributes = message.attributes.pairs(&message.body).into_iter().map(|(n, v)| (n.to_owned(), v));
        Record::new(self.id.clone(), message.body.as_text(), self.receive_count, attributes)
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

#[derive(Default)]
struct State {
    ready: VecDeque<Received>,
    delayed: Vec<(Instant, Received)>,
    in_flight: usize,
    dead: Vec<DeadLetter>,
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
                self.ready.push_back(message);
            } else {
                i += 1;
            }
        }
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
            next_id: AtomicU64::new(1),
            closed: Default::default(),
            settled: Notify::new(),
        }
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
                if !state.ready.is_empty() {
                    let take = max.min(state.ready.len());
                    let mut batch: Vec<Received> = state.ready.drain(..take).collect();
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
    pub fn delete(&self, route: Route, _received: &Received) {
        let mut state = self.lock(route);
        state.in_flight = state.in_flight.saturating_sub(1);
        drop(state);
        self.settled.notify_waiters();
    }

    /// Gives a received message back: delivered again after `delay`, or a dead letter once
    /// it was received as often as allowed.
    pub fn release(&self, route: Route, received: Received, delay: Duration, reason: &str) -> Released {
        let mut state = self.lock(route);
        state.in_flight = state.in_flight.saturating_sub(1);
        let released = if received.receive_count >= self.max_receives {
            let receive_count = received.receive_count;
            let reason = format!("received {receive_count} times without success; last error: {reason}");
            let body_encoding = received.message.body.encoding().map(str::to_owned);
            let body = received.message.body.as_text().to_owned();
            state.dead.push(DeadLetter { body, body_encoding, reason, receive_count });
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

    /// Waits until no route has a pending message.
    pub async fn drained(&self) {
        loop {
            let settled = self.settled.notified();
            if Route::ALL.iter().filter(|r| **r != Route::Unrouted).all(|r| self.pending(*r) == 0) {
                return;
            }
            // Woken by any delete or release; the timeout covers a retry delay expiring.
            let _ = tokio::time::timeout(Duration::from_millis(100), settled).await;
        }
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
            state.ready.push_back(Received { id: format!("mem-{id}"), message, receive_count: 0 });
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
}
