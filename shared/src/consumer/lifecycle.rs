//! The lifecycle of one record as a pure state machine: the answer to the last effect
//! goes in, the next effect comes out. No I/O, no clock, no async: the runner executes
//! the effects (claim, read a version, run the handler, deliver, write, dead-letter)
//! and feeds their results back, and the simulation checks the same machine under
//! every fault.
//!
//! ```text
//! received ─▶ expired ─▶ dead-lettered
//!    │
//!    ▼
//! claiming ─▶ duplicate | waiting (claim held elsewhere: back off, see [`claim_wait`]) | failed (store)
//!    │
//!    ▼
//! reading version ─▶ stale (complete)
//!    │
//!    ▼
//! handling ─▶ failed ─▶ released ─▶ retried | dead-lettered
//!    │
//!    ▼
//! applied (the version raised, then the handler's step or the completion written)
//!    │
//!    ▼
//! delivering to each destination not done ─▶ some failed ─▶ released ─▶ retried | dead-lettered
//!    │
//!    ▼
//! completed
//! ```
//!
//! The version of the entity's facet is written by the first write after the handler
//! applied the event, whatever comes after: a destination that fails later cannot let
//! an older event of the same facet be applied after this one.

use std::collections::BTreeMap;
use std::time::Duration;

use super::idempotency::{Claim, Done, StoreError, StoreErrorKind};
use super::DeadLetterError;
use super::{Outcome, Step};
use crate::destination::{Verdict, HANDLER};

/// Attempts of one store write before the record gives up on it. Every write is
/// idempotent for its owner, so a write whose answer was lost may be made again.
pub const WRITE_ATTEMPTS: u8 = 3;

/// What the runner knows of a record when its lifecycle starts.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The event's `EventDatetimeUtc` (ms since the epoch): its version.
    pub event_time_ms: i64,
    /// Now, by the store's clock (ms since the epoch).
    pub now_ms: i64,
    /// How long the store remembers a completion, when it forgets.
    pub memory: Option<Duration>,
    /// A replay run brought it: applied once more, deliberately, so exempt from the
    /// rule on the event's time.
    pub replay: bool,
    /// When that run sent it (ms since the epoch): a replayed record is held to the same
    /// rule on this time instead, so a second delivery of the run is recognised while
    /// its record is remembered and refused once it may be forgotten.
    pub replayed_at_ms: Option<i64>,
    /// Per-entity order applies: the facet's version is read before the handler and
    /// written with its result.
    pub guarded: bool,
    /// The destinations, in the order they are called.
    pub destinations: &'a [&'static str],
    /// A dead-letter queue is at hand; without one a permanent failure is retried until
    /// the queue's redrive policy moves it.
    pub dead_letters: bool,
    /// Receives the message has before the redrive policy moves it (`maxReceiveCount`
    /// less the receives so far): what a copy waiting on another's claim plans its waits
    /// with.
    pub receives_left: u32,
}

/// How much longer each wait of a copy waiting on another's claim is than the last.
pub const WAIT_RATIO: u64 = 4;
/// The shortest wait: SQS hides a message for whole seconds.
pub const WAIT_FLOOR: Duration = Duration::from_secs(1);
/// The longest: SQS hides a message for 12 hours at most.
pub const WAIT_CEILING: Duration = Duration::from_secs(12 * 3600);
/// The most waits a plan spreads a lease over: beyond, the first wait is the floor anyway.
const MAX_PLANNED_WAITS: u32 = 6;

/// How long a copy that found the record claimed by another attempt hides before its next
/// receive. Its waits grow [`WAIT_RATIO`]-fold, from a first one of about a second, and
/// add up to the holder's `lease_left` one receive before the redrive policy's last (of
/// `receives_left`), so that:
///
/// - a holder that settles is answered soon: within about `WAIT_RATIO - 1` times what
///   the copy had waited by then, plus its first wait;
/// - a holder that died is outwaited (its lease ends) with one receive to spare, for a
///   claim another copy took over meanwhile: a copy is never dead-lettered for waiting.
///
/// Each wait is planned afresh from what is left, so a lease read late or receives spent
/// early shorten the plan rather than break it.
pub fn claim_wait(lease_left: Duration, receives_left: u32) -> Duration {
    let waits = receives_left.saturating_sub(1).clamp(1, MAX_PLANNED_WAITS);
    // 1 + r + … + r^(waits-1): the plan's length in first waits.
    let series: u64 = (0..waits).map(|i| WAIT_RATIO.pow(i)).sum();
    let first = u64::try_from(lease_left.as_millis()).unwrap_or(u64::MAX).div_ceil(series);
    // The last wait ends past the lease, not at it: the clocks of two hosts differ.
    let margin = if waits == 1 { 1_000 } else { 0 };
    let seconds = (first + margin).div_ceil(1_000);
    Duration::from_secs(seconds).clamp(WAIT_FLOOR, WAIT_CEILING)
}

/// What the runner is to do next for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Claim the record's key for this attempt (its owner token).
    Claim,
    /// Read the last applied version of the event's facet.
    ReadVersion,
    /// Run the handler.
    Handle,
    /// Record the steps done (the handler's among them) while keeping the claim;
    /// with `version`, raise the facet's version in the same write.
    Record {
        /// Write the facet's version too.
        version: bool,
    },
    /// Deliver to this destination: the runner gives each destination the records of a
    /// batch that wait for it, in one call.
    Deliver(&'static str),
    /// Mark the record completed (with the facet's version when `version`).
    Complete {
        /// Write the facet's version too.
        version: bool,
    },
    /// Give the claim up, keeping the steps done (with the facet's version when
    /// `version`), so that a retry redoes only the others.
    Release {
        /// Write the facet's version too.
        version: bool,
    },
    /// Move the record to the dead-letter queue with this reason.
    DeadLetter(String),
    /// The record's end.
    End(Outcome),
}

/// The result of the last effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// What the claim found.
    Claimed(Result<Claim, StoreError>),
    /// The facet's last applied version.
    Version(Result<Option<i64>, StoreError>),
    /// The handler's verdict: `Delivered` when it applied the event.
    Handled(Verdict),
    /// How a store write (record, complete, release) went.
    Written(Result<(), StoreError>),
    /// A destination's verdict.
    Delivered(Verdict),
    /// How the dead-letter queue took the record.
    DeadLettered(Result<(), DeadLetterError>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Claiming,
    ReadingVersion,
    Handling,
    Recording,
    Delivering(&'static str),
    /// Completing, then ending with this outcome.
    Completing(Outcome),
    /// Releasing, then ending with this outcome (or dead-lettering, from the failures).
    Releasing(Option<Outcome>),
    DeadLettering {
        reason: String,
        expired: bool,
    },
    Ended,
}

/// One record's lifecycle.
#[derive(Debug, Clone)]
pub struct Lifecycle<'a> {
    facts: Facts<'a>,
    state: State,
    done: Done,
    failures: Vec<(&'static str, Verdict)>,
    steps: BTreeMap<&'static str, Step>,
    /// The handler applied the event in this attempt and no write has recorded it yet.
    unrecorded: bool,
    /// The facet's version waits to be written.
    version_pending: bool,
    tries: u8,
}

impl<'a> Lifecycle<'a> {
    /// A record whose event was read: the first effect is its claim, or its dead letter
    /// when it is older than the store remembers.
    pub fn start(facts: Facts<'a>) -> (Self, Effect) {
        let mut life = Self::new(facts, State::Claiming);
        // Never twice, for as long as a message can live: an event older than the store
        // remembers may have been applied and forgotten. Its signed time says so, not the
        // message's age, which a redrive resets; a replayed record's, the time its run
        // sent it.
        let counted_from = match (life.facts.replay, life.facts.replayed_at_ms) {
            (false, _) => Some(life.facts.event_time_ms),
            (true, at) => at,
        };
        if let (Some(from), Some(memory)) = (counted_from, life.facts.memory) {
            let oldest = life.facts.now_ms.saturating_sub(i64::try_from(memory.as_millis()).unwrap_or(i64::MAX));
            if from < oldest {
                let reason = if life.facts.replay {
                    format!(
                        "expired: this replay run sent the event at {from}, longer ago than the idempotency memory \
                         ({} s), so whether the run applied it already cannot be told; replay it in a new run",
                        memory.as_secs()
                    )
                } else {
                    format!(
                        "expired: the event's EventDatetimeUtc ({from}) is older than the idempotency memory ({} s), \
                         so whether it was applied cannot be told; replay it from the archive (cfwh replay) to apply \
                         it deliberately",
                        memory.as_secs()
                    )
                };
                let effect = life.dead_letter(reason, true);
                return (life, effect);
            }
        }
        (life, Effect::Claim)
    }

    /// A record no handler can take (a body that does not decode, another group's
    /// event): to the dead-letter queue with `reason`, unclaimed.
    pub fn refuse(facts: Facts<'a>, reason: String) -> (Self, Effect) {
        let mut life = Self::new(facts, State::Ended);
        let effect = life.dead_letter(reason, false);
        (life, effect)
    }

    fn new(facts: Facts<'a>, state: State) -> Self {
        Self {
            facts,
            state,
            done: Done::new(),
            failures: Vec::new(),
            steps: BTreeMap::new(),
            unrecorded: false,
            version_pending: false,
            tries: 0,
        }
    }

    /// The steps done so far (those of earlier attempts included): what a write records.
    pub fn done(&self) -> &Done {
        &self.done
    }

    /// How each destination fared in this attempt.
    pub fn steps(&self) -> &BTreeMap<&'static str, Step> {
        &self.steps
    }

    /// The handler applied the event in this attempt but no write recorded it (yet): if
    /// the attempt ends so, a later one may apply it again.
    pub fn unrecorded(&self) -> bool {
        self.unrecorded
    }

    /// The next effect, given the result of the last one.
    pub fn on(&mut self, input: Input) -> Effect {
        let state = std::mem::replace(&mut self.state, State::Ended);
        match (state, input) {
            (State::Claiming, Input::Claimed(claim)) => self.claimed(claim),
            (State::ReadingVersion, Input::Version(version)) => self.versioned(version),
            (State::Handling, Input::Handled(verdict)) => self.handled(verdict),
            (State::Recording, Input::Written(written)) => self.recorded(written),
            (State::Delivering(name), Input::Delivered(verdict)) => {
                if verdict == Verdict::Delivered {
                    self.done.insert(name.to_owned());
                    self.steps.insert(name, Step::Delivered);
                } else {
                    self.steps.insert(name, Step::Failed);
                    self.failures.push((name, verdict));
                }
                self.deliver_next()
            }
            (State::Completing(outcome), Input::Written(written)) => self.completed(outcome, written),
            (State::Releasing(then), Input::Written(written)) => self.released(then, written),
            (State::DeadLettering { reason, expired }, Input::DeadLettered(result)) => {
                self.end(match (result, expired) {
                    (Ok(()), true) => Outcome::Expired { reason },
                    (Ok(()), false) => Outcome::DeadLettered { reason },
                    (Err(e), _) => Outcome::Failed {
                        reason: format!("{reason} (and the dead-letter queue failed: {e})"),
                        permanent: true,
                        retry_after: None,
                    },
                })
            }
            (state, input) => {
                // A runner that feeds the wrong input is a bug; the record is retried
                // rather than guessed at.
                debug_assert!(false, "lifecycle: {input:?} in {state:?}");
                self.end(Outcome::failed(format!("internal error: {input:?} in {state:?}")))
            }
        }
    }

    fn claimed(&mut self, claim: Result<Claim, StoreError>) -> Effect {
        match claim {
            Ok(Claim::Acquired { done }) => {
                self.done = done;
                if self.facts.guarded && !self.done.contains(HANDLER) {
                    self.state = State::ReadingVersion;
                    Effect::ReadVersion
                } else {
                    self.handle_or_deliver()
                }
            }
            Ok(Claim::Completed) => self.end(Outcome::Duplicate),
            Ok(Claim::InProgress { lease_left }) => {
                // Another attempt holds it (or held it, and died): back off until it
                // settles or its lease ends, without spending this message's receives.
                let left = lease_left.unwrap_or_default();
                let retry_after = claim_wait(left, self.facts.receives_left);
                let reason = match lease_left {
                    Some(left) => format!(
                        "being processed by another attempt (its claim ends in {} s); looking again in {} s",
                        left.as_secs(),
                        retry_after.as_secs()
                    ),
                    None => format!("being processed by another attempt; looking again in {} s", retry_after.as_secs()),
                };
                self.end(Outcome::Waiting { reason, retry_after })
            }
            Err(e) => self.end(Outcome::failed(e.to_string())),
        }
    }

    fn versioned(&mut self, version: Result<Option<i64>, StoreError>) -> Effect {
        match version {
            // Equal times are never stale.
            Ok(Some(newer)) if newer > self.facts.event_time_ms => {
                let stale = Outcome::Stale { newer, version: self.facts.event_time_ms };
                self.tries = 0;
                self.state = State::Completing(stale);
                Effect::Complete { version: false }
            }
            Ok(_) => self.handle_or_deliver(),
            Err(e) => self.release(Some(Outcome::failed(e.to_string()))),
        }
    }

    fn handle_or_deliver(&mut self) -> Effect {
        if self.done.contains(HANDLER) {
            return self.deliver_next();
        }
        self.state = State::Handling;
        Effect::Handle
    }

    fn handled(&mut self, verdict: Verdict) -> Effect {
        if verdict != Verdict::Delivered {
            // Nothing applied: no destination is tried.
            self.failures.push((HANDLER, verdict));
            return self.release(None);
        }
        self.done.insert(HANDLER.to_owned());
        self.unrecorded = true;
        self.version_pending = self.facts.guarded;
        self.tries = 0;
        if self.pending_destination().is_none() {
            // Nothing else to do: the completion records the handler and the version.
            self.state = State::Completing(Outcome::Processed);
            return Effect::Complete { version: self.version_pending };
        }
        self.state = State::Recording;
        Effect::Record { version: self.version_pending }
    }

    fn recorded(&mut self, written: Result<(), StoreError>) -> Effect {
        match written {
            Ok(()) => {
                self.unrecorded = false;
                self.version_pending = false;
                self.deliver_next()
            }
            Err(e) if e.kind == StoreErrorKind::Lost => self.end(lost(e)),
            Err(e) if e.kind.retryable() && self.retry_write() => {
                self.state = State::Recording;
                Effect::Record { version: self.version_pending }
            }
            // The handler did apply it: deliver it all the same; the last write records
            // the handler and the version when the store is back.
            Err(_) => self.deliver_next(),
        }
    }

    fn pending_destination(&self) -> Option<&'static str> {
        self.facts
            .destinations
            .iter()
            .copied()
            .find(|name| !self.done.contains(*name) && !self.steps.contains_key(name))
    }

    fn deliver_next(&mut self) -> Effect {
        for name in self.facts.destinations {
            if self.done.contains(*name) && !self.steps.contains_key(name) {
                self.steps.insert(name, Step::Earlier);
            }
        }
        if let Some(name) = self.pending_destination() {
            self.state = State::Delivering(name);
            return Effect::Deliver(name);
        }
        if self.failures.is_empty() {
            self.tries = 0;
            self.state = State::Completing(Outcome::Processed);
            return Effect::Complete { version: self.version_pending };
        }
        self.release(None)
    }

    fn completed(&mut self, outcome: Outcome, written: Result<(), StoreError>) -> Effect {
        match written {
            Ok(()) => {
                self.unrecorded = false;
                self.end(outcome)
            }
            Err(e) if e.kind == StoreErrorKind::Lost => self.end(lost(e)),
            Err(e) if e.kind.retryable() && self.retry_write() => {
                let version = matches!(outcome, Outcome::Processed) && self.version_pending;
                self.state = State::Completing(outcome);
                Effect::Complete { version }
            }
            // Every step is done; the store could not say so. The claim stays until its
            // lease ends: a copy delivered before that waits, one after may apply the
            // event again when the handler's step was never recorded (logged, counted).
            Err(e) => {
                tracing::error!(error = %e, unrecorded = self.unrecorded, "applied, but the completion was not recorded");
                self.end(outcome)
            }
        }
    }

    fn release(&mut self, then: Option<Outcome>) -> Effect {
        self.tries = 0;
        self.state = State::Releasing(then);
        Effect::Release { version: self.version_pending }
    }

    fn released(&mut self, then: Option<Outcome>, written: Result<(), StoreError>) -> Effect {
        match written {
            Ok(()) => self.unrecorded = false,
            // Not ours any more (completed or taken over): nothing to release.
            Err(e) if e.kind == StoreErrorKind::Lost => {}
            Err(e) if e.kind.retryable() && self.retry_write() => {
                self.state = State::Releasing(then);
                return Effect::Release { version: self.version_pending };
            }
            // The claim ends with its lease; what it did not record is done again.
            Err(e) => tracing::warn!(error = %e, "could not release the claim; it expires on its own"),
        }
        if let Some(outcome) = then {
            return self.end(outcome);
        }
        let mut permanent = false;
        let mut retry_after: Option<Duration> = None;
        let mut reasons = Vec::with_capacity(self.failures.len());
        for (step, verdict) in std::mem::take(&mut self.failures) {
            match verdict {
                Verdict::Delivered => {}
                Verdict::Retry { reason, after } => {
                    retry_after = retry_after.max(after);
                    reasons.push(named(step, &reason));
                }
                Verdict::Permanent { reason } => {
                    permanent = true;
                    reasons.push(named(step, &reason));
                }
            }
        }
        let reason = reasons.join("; ");
        if permanent {
            self.dead_letter(reason, false)
        } else {
            self.end(Outcome::Failed { reason, permanent: false, retry_after })
        }
    }

    /// A permanent failure: to the dead-letter queue now, or retried until the redrive
    /// policy moves it when there is no dead-letter queue at hand.
    fn dead_letter(&mut self, reason: String, expired: bool) -> Effect {
        if !self.facts.dead_letters {
            return self.end(Outcome::Failed { reason, permanent: true, retry_after: None });
        }
        self.state = State::DeadLettering { reason: reason.clone(), expired };
        Effect::DeadLetter(reason)
    }

    fn retry_write(&mut self) -> bool {
        self.tries += 1;
        self.tries < WRITE_ATTEMPTS
    }

    fn end(&mut self, outcome: Outcome) -> Effect {
        self.state = State::Ended;
        Effect::End(outcome)
    }
}

fn lost(e: StoreError) -> Outcome {
    Outcome::failed(format!("this attempt no longer holds the claim: {e}"))
}

/// A failure's reason with the step it came from; the handler's own words stand alone.
fn named(step: &str, reason: &str) -> String {
    if step == HANDLER {
        reason.to_owned()
    } else {
        format!("{step}: {reason}")
    }
}

#[cfg(test)]
mod tests;
