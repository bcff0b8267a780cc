//! What SQS does, as the consumers see it: visibility timeouts, receive counts and the
//! redrive policy's move to the dead-letter queue, FIFO message groups held while one of
//! their messages is in flight, deduplication, and the duplicate deliveries of standard
//! queues.

use crate::consumer::Record;
use crate::message::attr;

use super::rng::Rng;

/// One message.
#[derive(Debug, Clone)]
pub struct Message {
    /// SQS's message ID.
    pub id: String,
    /// The delivery's JSON.
    pub body: String,
    /// `PayloadId`, and the replay run when one sent it.
    pub payload: (String, Option<String>),
    /// The FIFO message group (the entity).
    pub group: Option<String>,
    /// Receives so far.
    pub receives: u32,
    /// Not receivable before this (ms).
    pub visible_at: i64,
    /// The receipt of the current receive: an answer with an older one is ignored.
    pub receipt: u64,
    /// Last failure seen, for the dead-letter queue's reason.
    pub last_failure: Option<String>,
    /// When a replay run sent it.
    pub replayed_at: Option<i64>,
}

impl Message {
    /// The record a consumer gets for it.
    pub fn record(&self) -> Record {
        let mut attributes = vec![(attr::PAYLOAD_ID.to_owned(), self.payload.0.clone())];
        if let Some(run) = &self.payload.1 {
            attributes.push((attr::REPLAY_RUN.to_owned(), run.clone()));
        }
        if let Some(at) = self.replayed_at {
            attributes.push((attr::REPLAYED_AT.to_owned(), at.to_string()));
        }
        let mut record = Record::new(self.id.clone(), self.body.clone(), self.receives, attributes);
        record.receipt_handle = Some(self.receipt.to_string());
        record.message_group = self.group.clone();
        record
    }
}

/// One queue and its dead-letter queue.
#[derive(Debug)]
pub struct Queue {
    /// FIFO semantics.
    pub fifo: bool,
    /// Its visibility timeout (ms).
    pub visibility_ms: i64,
    /// The redrive policy's `maxReceiveCount`.
    pub max_receives: u32,
    /// Messages, in the order sent.
    pub messages: Vec<Message>,
    /// The dead-letter queue: messages and why they are there.
    pub dead: Vec<(Message, String)>,
    /// Messages the redrive policy moved since the consumers last looked.
    pub moved: Vec<String>,
    /// Deduplication IDs of a FIFO queue and when they were sent (five minutes).
    dedup: Vec<(String, i64)>,
    next_id: u64,
    next_receipt: u64,
}

/// How a consumer answered for one received message.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Done with (processed, skipped, or dead-lettered by the consumer): delete it.
    Delete,
    /// Retry: it comes back at its visibility timeout, or later when `hide_ms` says.
    Retry {
        /// A longer hiding (`ChangeMessageVisibility`), ms.
        hide_ms: Option<i64>,
        /// Why, kept for the dead-letter queue's reason.
        reason: String,
    },
}

/// Five minutes, SQS FIFO's deduplication interval.
const DEDUP_MS: i64 = 5 * 60 * 1000;

impl Queue {
    /// An empty queue.
    pub fn new(fifo: bool, visibility_ms: i64, max_receives: u32) -> Self {
        Self {
            fifo,
            visibility_ms,
            max_receives,
            messages: Vec::new(),
            dead: Vec::new(),
            moved: Vec::new(),
            dedup: Vec::new(),
            next_id: 0,
            next_receipt: 0,
        }
    }

    /// Sends a message; a FIFO queue drops one whose deduplication ID it saw in the last
    /// five minutes. True when it was kept.
    pub fn send(&mut self, now: i64, body: String, payload: (String, Option<String>), group: Option<String>) -> bool {
        if self.fifo {
            let dedup = format!("{}#{}", payload.0, payload.1.as_deref().unwrap_or(""));
            self.dedup.retain(|(_, at)| now - at < DEDUP_MS);
            if self.dedup.iter().any(|(id, _)| *id == dedup) {
                return false;
            }
            self.dedup.push((dedup, now));
        }
        self.next_id += 1;
        let id = format!("m-{}", self.next_id);
        let group = group.filter(|_| self.fifo);
        let replayed_at = payload.1.is_some().then_some(now);
        self.messages.push(Message {
            id,
            body,
            payload,
            group,
            receives: 0,
            visible_at: now,
            receipt: 0,
            last_failure: None,
            replayed_at,
        });
        true
    }

    fn in_flight(&self, message: &Message, now: i64) -> bool {
        message.receives > 0 && message.visible_at > now
    }

    /// Up to `max` messages: visible ones, a FIFO group only when none of its messages is
    /// in flight (several of one group, in order), and a standard queue now and then a
    /// message in flight again (`duplicate`). A message received more often than the
    /// redrive policy allows moves to the dead-letter queue instead.
    pub fn receive(&mut self, now: i64, max: usize, rng: &mut Rng, duplicate: bool) -> Vec<Record> {
        let mut taken: Vec<usize> = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        if self.fifo {
            for (i, m) in self.messages.iter().enumerate() {
                let group = m.group.clone().unwrap_or_default();
                if blocked.contains(&group) {
                    continue;
                }
                if self.in_flight(m, now) || m.visible_at > now {
                    blocked.push(group);
                    continue;
                }
                if taken.len() < max {
                    taken.push(i);
                }
            }
        } else {
            let visible: Vec<usize> =
                self.messages.iter().enumerate().filter(|(_, m)| m.visible_at <= now).map(|(i, _)| i).collect();
            // Standard queues give no order: start anywhere.
            let start = if visible.is_empty() { 0 } else { (rng.next_u64() % visible.len() as u64) as usize };
            taken.extend(visible.iter().cycle().skip(start).take(visible.len().min(max)).copied());
            if duplicate {
                if let Some(i) = self.messages.iter().position(|m| self.in_flight(m, now)) {
                    taken.push(i);
                }
            }
        }
        let mut records = Vec::new();
        let mut moved = Vec::new();
        for i in taken {
            let m = &mut self.messages[i];
            m.receives += 1;
            if m.receives > self.max_receives {
                moved.push(i);
                continue;
            }
            self.next_receipt += 1;
            m.receipt = self.next_receipt;
            m.visible_at = now + self.visibility_ms;
            records.push(m.record());
        }
        moved.sort_unstable();
        for i in moved.into_iter().rev() {
            let m = self.messages.remove(i);
            self.moved.push(m.id.clone());
            let reason = format!(
                "moved by the redrive policy after {} receives; last: {}",
                self.max_receives,
                m.last_failure.as_deref().unwrap_or("no answer (the consumer died)")
            );
            self.dead.push((m, reason));
        }
        records
    }

    /// A consumer's answer for the message it received with `receipt`.
    pub fn answer(&mut self, now: i64, id: &str, receipt: &str, answer: Answer) {
        let Some(i) = self.messages.iter().position(|m| m.id == id && m.receipt.to_string() == receipt) else {
            return;
        };
        match answer {
            Answer::Delete => {
                self.messages.remove(i);
            }
            Answer::Retry { hide_ms, reason } => {
                let m = &mut self.messages[i];
                m.last_failure = Some(reason);
                if let Some(hide) = hide_ms {
                    m.visible_at = now + hide;
                }
            }
        }
    }

    /// The consumer's own move to the dead-letter queue (`DeadLetterSink`).
    pub fn dead_letter(&mut self, record: &Record, reason: &str) {
        let payload = (
            record.attribute(attr::PAYLOAD_ID).unwrap_or_default().to_owned(),
            record.attribute(attr::REPLAY_RUN).map(str::to_owned),
        );
        let message = Message {
            id: record.message_id.clone(),
            body: record.body.clone(),
            payload,
            group: record.message_group.clone(),
            receives: 0,
            visible_at: 0,
            receipt: 0,
            last_failure: None,
            replayed_at: record.attribute(attr::REPLAYED_AT).and_then(|at| at.parse().ok()),
        };
        self.dead.push((message, reason.to_owned()));
    }

    /// Moves every dead letter back (a redrive), as new messages.
    pub fn redrive(&mut self, now: i64) -> usize {
        let dead = std::mem::take(&mut self.dead);
        let count = dead.len();
        for (mut m, _) in dead {
            m.receives = 0;
            m.visible_at = now;
            m.receipt = 0;
            m.last_failure = None;
            self.messages.push(m);
        }
        count
    }

    /// When the next message may become receivable, if any is waiting.
    pub fn next_visible(&self) -> Option<i64> {
        self.messages.iter().map(|m| m.visible_at).min()
    }

    /// True when nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}
