//! The batch runner: each record read, archived and driven through its lifecycle (claim,
//! version, handler, destinations, settling), the records of a FIFO group in order, and
//! the batch's report.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};

use crate::archive::{Archive, ArchiveError, Stored, ARCHIVE};
use crate::destination::{Destination, Outgoing, Verdict};
use crate::events::ordering::Entity;
use crate::events::{routing, EventGroup, GroupEvent};
use crate::message::attr;

use super::attempt::{late, within, Attempt, ClaimOf, Deadlines, Owners, Read};
use super::lifecycle::{Effect, Facts, Input, Lifecycle};
use super::report::log;
use super::{
    BatchReport, Consume, Context, DeadLetterError, DeadLetterSink, Handler, HandlerError, IdempotencyStore, Order,
    Outcome, Record, RecordReport, Step, Unreadable, CLAIM_SEPARATOR, SUBJECT_SEPARATOR,
};

/// How long before a batch's deadline handlers and destinations are stopped, so that
/// the writes that settle each record (complete, release, dead-letter) fit before it. A
/// batch with less time keeps half of it for settling.
pub const SETTLE_MARGIN: Duration = Duration::from_millis(1000);

/// Runs batches of one group through its handler and its destinations. The store, the
/// dead-letter queue, the destinations and the archive are picked by the host once, at
/// start-up. Each record's steps are decided by its [`Lifecycle`]; the runner executes
/// them.
pub struct Runner<H> {
    handler: H,
    store: Box<dyn IdempotencyStore>,
    dead_letters: Box<dyn DeadLetterSink>,
    destinations: Vec<std::sync::Arc<dyn Destination>>,
    names: Vec<&'static str>,
    archive: Option<Archive>,
    ordering: Order,
    owners: Owners,
    max_receives: u32,
    in_flight: usize,
    /// `None` when drift is not checked (`CF_DRIFT=off`).
    drift: Option<super::drift::DriftLog>,
}

impl<H> fmt::Debug for Runner<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("dead_letters", &self.dead_letters.available())
            .field("destinations", &self.names)
            .field("archive", &self.archive.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl<H: Handler> Consume for Runner<H> {
    fn group(&self) -> EventGroup {
        H::Event::GROUP
    }

    fn records_in_flight(&self) -> usize {
        self.in_flight
    }

    async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
        Runner::run_until(self, records, deadline).await
    }
}

impl<H: Handler> Runner<H> {
    /// A runner for `handler`, with its idempotency store and dead-letter sink, and no
    /// destination.
    pub fn new(
        handler: H,
        store: impl IdempotencyStore + 'static,
        dead_letters: impl DeadLetterSink + 'static,
    ) -> Self {
        use opentelemetry_sdk::trace::IdGenerator as _;
        let prefix = u64::from_be_bytes(opentelemetry_aws::trace::XrayIdGenerator::default().new_span_id().to_bytes());
        Self {
            handler,
            store: Box::new(store),
            dead_letters: Box::new(dead_letters),
            destinations: Vec::new(),
            names: Vec::new(),
            archive: None,
            ordering: Order::default(),
            owners: Owners::new(prefix),
            max_receives: crate::stack::DEFAULT_MAX_RECEIVES,
            in_flight: super::DEFAULT_RECORDS_IN_FLIGHT,
            drift: Some(super::drift::DriftLog::default()),
        }
    }

    /// Checks each event against the baseline and reports its drift
    /// ([`DriftMode::Report`](super::DriftMode), the default), or does not.
    pub fn with_drift(mut self, mode: super::DriftMode) -> Self {
        self.drift = (mode == super::DriftMode::Report).then(Default::default);
        self
    }

    /// Names its attempts' owner tokens from `prefix` (a simulation's seed) rather than a
    /// random one.
    pub fn with_owner_prefix(mut self, prefix: u64) -> Self {
        self.owners = Owners::new(prefix);
        self
    }

    /// Skips events older than one applied already to the same facet of the same entity
    /// ([`Order::Latest`]), or applies every event ([`Order::All`]).
    pub fn with_ordering(mut self, ordering: Order) -> Self {
        self.ordering = ordering;
        self
    }

    /// The redrive policy's `maxReceiveCount` of the queue it reads: a copy waiting on
    /// another's claim plans its waits within it ([`claim_wait`](super::lifecycle::claim_wait)).
    pub fn with_max_receives(mut self, max_receives: u32) -> Self {
        self.max_receives = max_receives;
        self
    }

    /// Works on at most `n` records at once (at least one): their reading, claims,
    /// handlers, destination calls and settling writes. A record not started before the
    /// batch's deadline is not claimed: it fails, to come back.
    pub fn with_records_in_flight(mut self, n: usize) -> Self {
        self.in_flight = n.max(1);
        self
    }

    /// Delivers every event the handler applied to `destination` too (a retry repeats
    /// only the steps that failed).
    pub fn with_destination(mut self, destination: std::sync::Arc<dyn Destination>) -> Self {
        self.names.push(destination.name());
        self.destinations.push(destination);
        self
    }

    /// Archives every record received, before it is claimed.
    pub fn with_archive(mut self, archive: Archive) -> Self {
        self.archive = Some(archive);
        self
    }

    /// The handler this runner calls (tests read what it saw).
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Handles every record of a batch, concurrently and each on its own.
    pub async fn run(&self, records: &[Record]) -> BatchReport {
        self.run_until(records, None).await
    }

    /// As [`run`](Self::run), but the batch's answer is due at `deadline`: a handler or
    /// destination still running [`SETTLE_MARGIN`] before it is abandoned and its record
    /// fails (retryable), and the writes that settle each record stop at `deadline`, so
    /// the other records are not redelivered with it.
    ///
    /// Each record is archived, claimed and handled on its own, at most the records in
    /// flight at once; then each destination takes the records that still need it, in
    /// calls of at most that many; then each record is completed, or released with the
    /// steps done.
    pub async fn run_until(&self, records: &[Record], deadline: Option<tokio::time::Instant>) -> BatchReport {
        let deadlines = Deadlines::before(deadline);
        if records.iter().any(|r| r.message_group.is_some()) {
            return self.run_in_groups(records, deadlines).await;
        }
        self.run_together(records, deadlines).await
    }

    /// A FIFO batch: the records of one message group (one entity) one after the other,
    /// each with its destinations, in the batch's order; the groups concurrently. After a
    /// record of a group fails, the group's later records are not run and fail too, so
    /// they come back in order behind it (what SQS FIFO expects of a partial answer).
    async fn run_in_groups(&self, records: &[Record], deadlines: Deadlines) -> BatchReport {
        let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let group = record.message_group.as_deref();
            match groups.iter_mut().find(|(g, _)| *g == group && group.is_some()) {
                Some((_, members)) => members.push(index),
                None => groups.push((group, vec![index])),
            }
        }
        let runs: Vec<_> = groups
            .into_iter()
            .map(|(_, members)| async move {
                let mut reports = Vec::with_capacity(members.len());
                let mut blocked: Option<String> = None;
                for index in members {
                    let record = &records[index];
                    let report = match &blocked {
                        Some(earlier) => {
                            let reason = format!("an earlier record of its message group failed ({earlier})");
                            let report = RecordReport {
                                payload_id: record.attribute(attr::PAYLOAD_ID).map(str::to_owned),
                                event_group: H::Event::GROUP,
                                action: record.attribute(attr::ACTION).map(str::to_owned),
                                reason: Some(reason.clone()),
                                outcome: Outcome::failed(reason),
                                message_id: record.message_id.clone(),
                                attempt: record.receive_count,
                                replay_run: record.attribute(attr::REPLAY_RUN).map(str::to_owned),
                                destinations: BTreeMap::new(),
                                trace_id: record.trace_id(),
                                drift: Vec::new(),
                            };
                            log(&report);
                            report
                        }
                        None => self.run_together(std::slice::from_ref(record), deadlines).await.records.remove(0),
                    };
                    if blocked.is_none() && report.retry() {
                        blocked = Some(record.message_id.clone());
                    }
                    reports.push((index, report));
                }
                reports
            })
            .collect();
        // At most `in_flight` groups at once; within a group, one record after the other.
        let mut reports: Vec<(usize, RecordReport)> =
            futures_util::stream::iter(runs).buffer_unordered(self.in_flight).collect::<Vec<_>>().await.concat();
        reports.sort_by_key(|(index, _)| *index);
        BatchReport { records: reports.into_iter().map(|(_, report)| report).collect() }
    }

    /// Records that may run at once: each read, claimed and handled concurrently, then
    /// each destination once for all that wait for it, each record settling as soon as
    /// nothing is left for it.
    async fn run_together(&self, records: &[Record], deadlines: Deadlines) -> BatchReport {
        // Each body, and its typed event, read before any await: the events of the batch
        // in one allocation.
        let mut read: Vec<Read<H::Event>> = records
            .iter()
            .map(|record| {
                let bytes = record.body_bytes();
                let (event, drift) = match (&bytes, &self.drift) {
                    (Err(_), _) => (None, Vec::new()),
                    (Ok(bytes), None) => (Some(H::Event::decode(bytes)), Vec::new()),
                    (Ok(bytes), Some(log)) => match H::Event::decode_with_drift(bytes) {
                        Ok((event, drift)) => {
                            log.note(H::Event::GROUP, &drift);
                            (Some(Ok(event)), drift)
                        }
                        Err(e) => (Some(Err(e)), Vec::new()),
                    },
                };
                Read { bytes: Some(bytes), event, drift }
            })
            .collect();
        // At most `in_flight` records at once, in order, so the attempts keep the records'.
        // (The futures are collected first: a stream over a closure would not be `Send` for
        // every lifetime, as the consumer's future must be.)
        let begun: Vec<_> =
            records.iter().zip(read.iter_mut()).map(|(record, read)| self.begin(record, read, deadlines)).collect();
        // A batch no larger than `in_flight` (the default: ten of ten) runs all at once, its
        // futures in one allocation; a larger one through a stream that keeps `in_flight`
        // going (an allocation of over 1 KiB per record: past glibc's per-thread cache).
        let mut attempts: Vec<Attempt<'_, H::Event>> = if begun.len() <= self.in_flight {
            futures_util::future::join_all(begun).await
        } else {
            futures_util::stream::iter(begun).buffered(self.in_flight).collect().await
        };
        for destination in &self.destinations {
            self.deliver(destination.as_ref(), &mut attempts, deadlines).await;
        }
        BatchReport { records: attempts.into_iter().map(|attempt| self.report(attempt)).collect() }
    }

    /// Reads a record (decode, archive, typed event), starts its lifecycle and runs it
    /// up to its first destination or its end.
    async fn begin<'r>(
        &'r self,
        record: &'r Record,
        read: &'r mut Read<H::Event>,
        deadlines: Deadlines,
    ) -> Attempt<'r, H::Event> {
        let decoded = read.bytes.take().unwrap_or_else(|| Err(Unreadable("read twice".to_owned())));
        let event = read.event.as_ref();
        // Ingest put the envelope's facts in the message attributes: no second parse of
        // the body for them, unless a message arrives without (sent by other means).
        let (payload_id, action) = match (record.attribute(attr::PAYLOAD_ID), record.attribute(attr::ACTION), &decoded)
        {
            (Some(payload_id), Some(action), _) => (Some(payload_id.to_owned()), Some(action.to_owned())),
            (_, _, Ok(bytes)) => match routing::parse(bytes) {
                Ok(r) => (Some(r.payload_id.into_owned()), Some(r.action.into_owned())),
                Err(_) => (None, None),
            },
            _ => (None, None),
        };
        let replay_run = record.attribute(attr::REPLAY_RUN).filter(|r| !r.is_empty()).map(str::to_owned);
        let mut attempt = Attempt {
            record,
            payload_id,
            action,
            replay_run,
            archived: None,
            life: None,
            effect: Effect::End(Outcome::Processed),
            claim: None,
            drift: std::mem::take(&mut read.drift),
        };
        // Its turn came too late: not claimed, nothing done, back with the queue's retry.
        if deadlines.work.is_some_and(|work| tokio::time::Instant::now() >= work) {
            attempt.effect = Effect::End(Outcome::failed("not started before the batch's deadline"));
            return attempt;
        }
        match decoded {
            Err(why) => self.refuse(&mut attempt, why.0),
            Ok(bytes) => {
                // Archived before the typed decode and the claim: a duplicate finds it
                // there already, and an event the typed model cannot read (a field
                // Creative Force changed) is kept for a replay once the model is fixed. A
                // replayed record came from the archive.
                if let (Some(archive), None) = (&self.archive, &attempt.replay_run) {
                    match Box::pin(Self::archive(archive, record, &bytes)).await {
                        Ok(step) => attempt.archived = step,
                        Err(e) => {
                            attempt.archived = Some(Step::Failed);
                            attempt.effect = Effect::End(Outcome::failed(e.to_string()));
                            return attempt;
                        }
                    }
                }
                match event {
                    Some(Ok(event)) => self.read(&mut attempt, bytes, event),
                    Some(Err(e)) => self.refuse(&mut attempt, e.to_string()),
                    None => self.refuse(&mut attempt, "the body was not read".to_owned()),
                }
            }
        }
        self.drive(&mut attempt, deadlines).await;
        attempt
    }

    /// Archives a record by the envelope ingest routed it by; `None` when the body is
    /// not one of this group's events (it came by other means than ingest: the typed
    /// decode dead-letters it, with the body).
    async fn archive(archive: &Archive, record: &Record, bytes: &[u8]) -> Result<Option<Step>, ArchiveError> {
        let Ok(found) =
            routing::parse(bytes).map_err(drop).and_then(|f| (f.group == H::Event::GROUP).then_some(f).ok_or(()))
        else {
            return Ok(None);
        };
        match archive.event(H::Event::GROUP, &found.payload_id, found.event_time_ms, bytes, &record.reception()).await {
            Ok(Stored::Written) => Ok(Some(Step::Archived)),
            Ok(Stored::Present) => Ok(Some(Step::Present)),
            Err(e) => Err(e),
        }
    }

    /// What the lifecycle of a record starts from.
    fn facts(&self, record: &Record, replay: bool) -> Facts<'_> {
        Facts {
            event_time_ms: 0,
            now_ms: self.store.clock().now_ms(),
            memory: self.store.memory(),
            replay,
            replayed_at_ms: None,
            guarded: false,
            destinations: &self.names,
            dead_letters: self.dead_letters.available(),
            receives_left: self.max_receives.saturating_sub(record.receive_count),
        }
    }

    /// A record no handler can take: to the dead-letter queue with `why`.
    fn refuse<'r>(&'r self, attempt: &mut Attempt<'r, H::Event>, why: String) {
        let (life, effect) = Lifecycle::refuse(self.facts(attempt.record, attempt.replay_run.is_some()), why);
        (attempt.life, attempt.effect) = (Some(life), effect);
    }

    /// Decodes the typed event and starts the record's lifecycle (no await here: the
    /// event, a large value, never lives in a batch's futures but in its box).
    fn read<'r>(&'r self, attempt: &mut Attempt<'r, H::Event>, bytes: Vec<u8>, event: &'r H::Event) {
        let envelope = event.envelope();
        // The key comes from the body, never from an attribute: it is what was signed. A
        // replay run is applied once more, once.
        let group = H::Event::GROUP.as_str();
        let run = attempt.replay_run.as_deref();
        let key = joined(
            CLAIM_SEPARATOR,
            &[group, &envelope.payload_id, run.unwrap_or_default()][..2 + usize::from(run.is_some())],
        );
        // Per-entity order: the facet of the entity this event moves.
        let subject = match self.ordering {
            Order::Latest => event.subject().map(|s| joined(SUBJECT_SEPARATOR, &[group, &s.entity, &s.facet])),
            Order::All => None,
        };
        let replayed_at_ms = attempt
            .replay_run
            .as_ref()
            .and_then(|_| attempt.record.attribute(attr::REPLAYED_AT)?.trim().parse::<i64>().ok());
        let facts = Facts {
            event_time_ms: envelope.event_datetime_utc,
            replayed_at_ms,
            guarded: subject.is_some(),
            ..self.facts(attempt.record, attempt.replay_run.is_some())
        };
        let (life, effect) = Lifecycle::start(facts);
        (attempt.life, attempt.effect) = (Some(life), effect);
        // A replayed record is remembered from when its run sent it, if later.
        let remembered_from = envelope.event_datetime_utc.max(replayed_at_ms.unwrap_or(i64::MIN));
        attempt.claim = Some(ClaimOf { event, bytes, key, owner: self.owners.next(), subject, remembered_from });
    }

    /// Executes the record's effects until it waits for a destination or ends.
    async fn drive(&self, attempt: &mut Attempt<'_, H::Event>, deadlines: Deadlines) {
        loop {
            let Some(life) = attempt.life.as_mut() else { return };
            let input = match (&attempt.effect, &attempt.claim) {
                (Effect::Deliver(_) | Effect::End(_), _) => return,
                (Effect::DeadLetter(reason), _) => {
                    let sent = within(
                        deadlines.settle,
                        self.dead_letters.dead_letter(H::Event::GROUP, attempt.record, reason),
                    )
                    .await;
                    Input::DeadLettered(match sent {
                        Some(result) => result,
                        None => Err(DeadLetterError::transient("it ran past the batch's time")),
                    })
                }
                (_, None) => {
                    debug_assert!(false, "a store effect for a record without a claim");
                    return;
                }
                (Effect::Claim, Some(c)) => Input::Claimed(
                    within(deadlines.work, self.store.claim(c.who())).await.unwrap_or_else(|| late("the claim")),
                ),
                (Effect::ReadVersion, Some(c)) => {
                    let subject = c.subject.as_deref().unwrap_or_default();
                    Input::Version(
                        within(deadlines.work, self.store.applied_version(subject))
                            .await
                            .unwrap_or_else(|| late("reading the version")),
                    )
                }
                (Effect::Handle, Some(c)) => Input::Handled(self.handle(attempt.record, c, deadlines.work).await),
                (&Effect::Record { version }, Some(c)) => Input::Written(
                    within(deadlines.settle, self.store.record(c.who(), life.done(), c.version(version)))
                        .await
                        .unwrap_or_else(|| late("recording the handler's step")),
                ),
                (&Effect::Complete { version }, Some(c)) => Input::Written(
                    within(deadlines.settle, self.store.complete(c.who(), c.version(version)))
                        .await
                        .unwrap_or_else(|| late("the completion")),
                ),
                (&Effect::Release { version }, Some(c)) => Input::Written(
                    within(deadlines.settle, self.store.release(c.who(), life.done(), c.version(version)))
                        .await
                        .unwrap_or_else(|| late("the release")),
                ),
            };
            attempt.effect = life.on(input);
        }
    }

    /// The handler, with panics caught and stopped at `deadline`.
    async fn handle(
        &self,
        record: &Record,
        claim: &ClaimOf<'_, H::Event>,
        deadline: Option<tokio::time::Instant>,
    ) -> Verdict {
        let raw = std::str::from_utf8(&claim.bytes).unwrap_or_default();
        let ctx = Context { raw, message_id: &record.message_id, receive_count: record.receive_count };
        let work = AssertUnwindSafe(self.handler.handle(claim.event, &ctx)).catch_unwind();
        match within(deadline, work).await {
            None => Verdict::retry("the handler ran past its time and was stopped"),
            Some(Ok(Ok(()))) => Verdict::Delivered,
            Some(Ok(Err(HandlerError::Retryable(e)))) => Verdict::retry(e.to_string()),
            Some(Ok(Err(HandlerError::Permanent(e)))) => Verdict::Permanent { reason: e.to_string() },
            Some(Err(panic)) => Verdict::retry(format!("handler panicked: {}", panic_message(&panic))),
        }
    }

    /// One call to `destination` with every record waiting for it, then each of those
    /// records runs on to its next destination or its end.
    async fn deliver(
        &self,
        destination: &dyn Destination,
        attempts: &mut [Attempt<'_, H::Event>],
        deadlines: Deadlines,
    ) {
        let name = destination.name();
        let waits = |a: &Attempt<'_, H::Event>| matches!(a.effect, Effect::Deliver(n) if n == name);
        let verdicts = {
            let deliveries: Vec<Outgoing<'_>> = attempts
                .iter()
                .filter(|a| waits(a))
                .filter_map(|a| {
                    let c = a.claim.as_ref()?;
                    Some(Outgoing {
                        group: H::Event::GROUP,
                        body: &c.bytes,
                        payload_id: &c.event.envelope().payload_id,
                        action: c.event.action_name(),
                        event_time_ms: c.event.envelope().event_datetime_utc,
                        replay_run: a.replay_run.as_deref(),
                    })
                })
                .collect();
            if deliveries.is_empty() {
                return;
            }
            // At most `in_flight` events per call of the destination (its own calls, such as
            // EventBridge's of 10 entries, stay within them).
            let mut verdicts = Vec::with_capacity(deliveries.len());
            for chunk in deliveries.chunks(self.in_flight) {
                let mut answered = within(deadlines.work, destination.deliver(chunk))
                    .await
                    .unwrap_or_else(|| vec![Verdict::retry(format!("{name} ran past the batch's time")); chunk.len()]);
                answered.resize(chunk.len(), Verdict::retry(format!("{name} gave no answer for the record")));
                verdicts.extend(answered);
            }
            verdicts
        };
        let mut verdicts = verdicts.into_iter();
        let runs: Vec<_> = attempts
            .iter_mut()
            .filter(|a| waits(a))
            .map(|attempt| {
                if let (Some(life), Some(verdict)) = (attempt.life.as_mut(), verdicts.next()) {
                    attempt.effect = life.on(Input::Delivered(verdict));
                }
                self.drive(attempt, deadlines)
            })
            .collect();
        futures_util::stream::iter(runs).buffer_unordered(self.in_flight).for_each(|()| async {}).await;
    }

    /// The record's report, logged.
    fn report(&self, attempt: Attempt<'_, H::Event>) -> RecordReport {
        let outcome = match attempt.effect {
            Effect::End(outcome) => outcome,
            // Waiting for a destination that was never called: not possible once every
            // destination has had its turn; retried rather than lost.
            other => Outcome::failed(format!("internal error: the record stopped at {other:?}")),
        };
        let mut destinations = attempt.life.as_ref().map(|life| life.steps().clone()).unwrap_or_default();
        if let Some(step) = attempt.archived {
            destinations.insert(ARCHIVE, step);
        }
        let report = RecordReport {
            payload_id: attempt.payload_id,
            event_group: H::Event::GROUP,
            action: attempt.action,
            reason: outcome.reason().map(str::to_owned),
            outcome,
            message_id: attempt.record.message_id.clone(),
            attempt: attempt.record.receive_count,
            replay_run: attempt.replay_run,
            destinations,
            trace_id: attempt.record.trace_id(),
            drift: attempt.drift,
        };
        log(&report);
        report
    }
}

/// `parts` joined by `separator`, in one allocation of the right size.
fn joined(separator: char, parts: &[&str]) -> String {
    let length = parts.iter().map(|p| p.len()).sum::<usize>() + separator.len_utf8() * parts.len();
    let mut text = String::with_capacity(length);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            text.push(separator);
        }
        text.push_str(part);
    }
    text
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}
