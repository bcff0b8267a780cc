//! What happened in a simulated run, and the invariants checked against it after every
//! step: never twice, order per facet, destinations, nothing vanishes, a waiting copy is
//! answered soon and never dead-lettered for waiting, and a live holder never loses its
//! claim.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::consumer::idempotency::{Entry, Owner};
use crate::destination::HANDLER;

use super::SimStore;

/// `PayloadId` and replay run: what "at most once" counts per.
pub type Key = (String, Option<String>);

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant: `never-twice`, `order`, `destinations`, `nothing-vanishes`,
    /// `waiting`, `live-holder`, `stuck`.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// When, in simulated ms since the start.
    pub at_ms: i64,
}

/// One application of an event by the handler.
#[derive(Debug, Clone)]
struct Application {
    key: Key,
    subject: String,
    version: i64,
    invocation: u64,
    /// Whether the store recorded it once its invocation ended (`None` while it runs).
    recorded: Option<bool>,
}

/// An event the sender had accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The facet of the entity it moves.
    pub subject: String,
    /// Its `EventDatetimeUtc`.
    pub version: i64,
}

/// A copy waiting on another attempt's claim (invariant 5).
#[derive(Debug, Clone)]
struct Wait {
    /// The attempt it waits on, and the end of that attempt's lease.
    holder: Owner,
    lease_until: i64,
    /// When its first wait on this holder began, and how long that wait was.
    since: i64,
    first_ms: i64,
    /// The receive at which it first found this holder.
    first_receive: u32,
    /// The receive its last wait answered, and when that wait ends.
    answered_receive: u32,
    hidden_until: i64,
    /// Received other than at the end of its waits (a duplicate delivery, a consumer
    /// killed, another failure): its plan no longer holds.
    disturbed: bool,
}

/// The run's record and its counters.
#[derive(Debug, Default)]
pub struct Ledger {
    applications: Vec<Application>,
    /// Deliveries per destination and key.
    deliveries: BTreeMap<(&'static str, Key), u32>,
    /// Outcomes reported per key.
    outcomes: BTreeMap<Key, BTreeSet<&'static str>>,
    /// Accepted events (replays included) by key.
    pub accepted: BTreeMap<Key, Sent>,
    alive: BTreeSet<u64>,
    owners: BTreeMap<Owner, u64>,
    /// The holder each (claim key, invocation) last found in its way, the end of its
    /// lease, and when.
    holders_seen: BTreeMap<(String, u64), (Owner, i64, i64)>,
    /// When each holder settled (completed or released its claim).
    settled: BTreeMap<Owner, i64>,
    /// The copies waiting, by message ID.
    waits: BTreeMap<String, Wait>,
    /// Each message's last receive.
    last_receive: BTreeMap<String, u32>,
    /// Waiting copies received again after their holder settled or its lease ended.
    pub answered_waits: u64,
    versions_seen: BTreeMap<String, i64>,
    /// The first broken invariant.
    pub violation: Option<Violation>,
    /// Faults injected, by kind.
    pub injected: BTreeMap<&'static str, u64>,
    /// Applications no write recorded by the end of their invocation (the window no
    /// store closes: killed after the handler returned, before the write): a later
    /// attempt may apply the event again, or find it stale.
    pub window: u64,
    /// Over standard queues, applications of an older event after a newer one of the
    /// same facet (two in flight at once; allowed there, and counted).
    pub standard_reorders: u64,
    /// Deliveries a destination received again (its step was not recorded).
    pub repeated_deliveries: u64,
    /// Batches run.
    pub batches: u64,
    /// Whether the queue is FIFO.
    pub fifo: bool,
    /// Simulated now (ms since the start), for the violation's time.
    pub now_ms: i64,
    /// The drift planted in events, by `PayloadId` (`sender-drift`).
    pub planted: BTreeMap<String, Vec<crate::events::Finding>>,
    /// The drift every unplanted event of the run shows (its bodies leave out documented
    /// fields), learnt from the first.
    drift_base: Option<Vec<crate::events::Finding>>,
}

impl Ledger {
    fn fail(&mut self, invariant: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { invariant, detail, at_ms: self.now_ms });
        }
    }

    /// Counts an injected fault.
    pub fn inject(&mut self, kind: &'static str) {
        *self.injected.entry(kind).or_default() += 1;
    }

    /// An invocation starts.
    pub fn start(&mut self, invocation: u64) {
        self.alive.insert(invocation);
    }

    /// An attempt of `invocation` claimed a key as `owner`.
    pub fn owns(&mut self, owner: Owner, invocation: u64) {
        self.owners.insert(owner, invocation);
    }

    /// Invariant: a claim is taken over only from a holder that is dead.
    pub fn taking_over(&mut self, key: &str, entry: Option<Entry>, now: i64) {
        if let Some(Entry::InProgress { owner, lease_until, .. }) = entry {
            if lease_until <= now {
                if let Some(invocation) = self.owners.get(&owner).filter(|i| self.alive.contains(i)) {
                    let detail = format!("{key}: invocation {invocation} still runs, but its claim's lease ended");
                    self.fail("live-holder", detail);
                }
            }
        }
    }

    /// An attempt of `invocation` found `key` claimed by `holder` until `lease_until`, at
    /// `now`.
    pub fn held_by(&mut self, key: &str, invocation: u64, holder: Owner, lease_until: i64, now: i64) {
        self.holders_seen.insert((key.to_owned(), invocation), (holder, lease_until, now));
    }

    /// `owner` completed or released its claim.
    pub fn settles(&mut self, owner: Owner, now: i64) {
        self.settled.entry(owner).or_insert(now);
    }

    /// Message `id` (of claim key `key`) was answered `waiting`, at its receive `receive`
    /// of `max_receives`, hidden for `hide_ms` from `now` (invariant 5, part one: a first
    /// wait spreads the holder's lease over the receives left, one kept, in waits growing
    /// `WAIT_RATIO`-fold, so that it is short).
    pub fn waits(
        &mut self,
        id: &str,
        key: &str,
        invocation: u64,
        (receive, max_receives): (u32, u32),
        hide_ms: i64,
        now: i64,
    ) {
        let Some(&(holder, lease_until, seen_at)) = self.holders_seen.get(&(key.to_owned(), invocation)) else {
            return self.fail("waiting", format!("{id} waits on a claim the store never showed it"));
        };
        let hidden_until = now + hide_ms;
        // Received again while this receive ran (a duplicate delivery): SQS ignores this
        // answer, and the plan does not hold.
        let disturbed = self.last_receive.get(id).is_some_and(|last| *last != receive);
        if std::env::var_os("SIM_DEBUG").is_some() {
            eprintln!("{now}: {id} receive {receive} waits {hide_ms} ms on {holder:?} (lease until {lease_until})");
        }
        match self.waits.get_mut(id) {
            Some(wait) if wait.holder == holder && !wait.disturbed => {
                (wait.answered_receive, wait.hidden_until, wait.disturbed) = (receive, hidden_until, disturbed);
            }
            _ => {
                let allowed = first_wait_allowed(lease_until - seen_at, max_receives.saturating_sub(receive));
                if hide_ms > allowed {
                    let detail = format!(
                        "{id} first waits {hide_ms} ms on a claim with {} ms of lease left and {} receives left \
                         (allowed {allowed} ms)",
                        lease_until - seen_at,
                        max_receives.saturating_sub(receive)
                    );
                    return self.fail("waiting", detail);
                }
                let wait = Wait {
                    holder,
                    lease_until,
                    since: now,
                    first_ms: hide_ms,
                    first_receive: receive,
                    answered_receive: receive,
                    hidden_until,
                    disturbed,
                };
                self.waits.insert(id.to_owned(), wait);
            }
        }
    }

    /// Message `id` is received for the `receive`th time at `now` (invariant 5, part
    /// one): once its holder settled or its lease ended, a waiting copy is received again
    /// within the wait it was in, which is at most `WAIT_RATIO` times what it had waited
    /// by then and a second, or its first wait.
    pub fn received(&mut self, id: &str, receive: u32, now: i64) {
        self.last_receive.insert(id.to_owned(), receive);
        let Some(wait) = self.waits.get_mut(id) else { return };
        if std::env::var_os("SIM_DEBUG").is_some() {
            eprintln!("{now}: {id} received ({receive}) while waiting: {wait:?}");
        }
        if receive != wait.answered_receive + 1 || now < wait.hidden_until {
            wait.disturbed = true;
        }
        if wait.disturbed {
            self.waits.remove(id);
            return;
        }
        let settled = self.settled.get(&wait.holder).copied().unwrap_or(i64::MAX).min(wait.lease_until);
        if settled > now {
            return;
        }
        let ratio = crate::consumer::lifecycle::WAIT_RATIO as i64;
        let bound = wait.first_ms.max(ratio * (settled - wait.since).max(0) + 1_000);
        let late = wait.hidden_until - settled.max(wait.since);
        if late > bound {
            let detail = format!(
                "{id} waited {} ms after its holder settled (allowed {bound} ms: it had waited {} ms, its first wait                  {} ms)",
                late,
                settled - wait.since,
                wait.first_ms
            );
            return self.fail("waiting", detail);
        }
        self.answered_waits += 1;
        self.waits.remove(id);
    }

    /// The redrive policy moved message `id` after `max_receives` receives (invariant 5,
    /// part two): never a copy that found its holder with a receive left and waited on it
    /// undisturbed.
    pub fn moved(&mut self, id: &str, max_receives: u32) {
        if let Some(wait) = self.waits.remove(id) {
            if !wait.disturbed && wait.first_receive < max_receives {
                let detail = format!(
                    "{id} was dead-lettered for waiting: it found the claim at receive {} of {max_receives}, and the \
                     holder's lease ended at {}",
                    wait.first_receive, wait.lease_until
                );
                self.fail("waiting", detail);
            }
        }
    }

    /// The handler applies `key` (invariants 1 and 2, checked as it happens).
    pub fn apply(&mut self, key: Key, subject: String, version: i64, invocation: u64) {
        for earlier in self.applications.iter().filter(|a| a.key == key) {
            match earlier.recorded {
                Some(false) => {}
                Some(true) => {
                    let detail = format!("{key:?} applied again after an application the store recorded");
                    return self.fail("never-twice", detail);
                }
                None => {
                    let detail =
                        format!("{key:?} applied by invocation {invocation} while {} applies it", earlier.invocation);
                    return self.fail("never-twice", detail);
                }
            }
        }
        let newer: Vec<(i64, Option<bool>)> = self
            .applications
            .iter()
            .filter(|a| a.subject == subject && a.version > version)
            .map(|a| (a.version, a.recorded))
            .collect();
        if let Some(&(newest, _)) = newer.iter().find(|(_, recorded)| *recorded != Some(false)) {
            if self.fifo {
                let detail = format!("{subject}: version {version} applied after {newest}");
                return self.fail("order", detail);
            }
            self.standard_reorders += 1;
        }
        self.applications.push(Application { key, subject, version, invocation, recorded: None });
    }

    /// A destination receives `key` (invariant 3: only what the handler applied, and
    /// again only when its step was not recorded).
    pub fn deliver(&mut self, destination: &'static str, key: Key, store: &dyn SimStore, claim_key: &str) {
        if !self.applications.iter().any(|a| a.key == key) {
            let detail = format!("{destination} received {key:?}, which the handler never applied");
            return self.fail("destinations", detail);
        }
        let count = self.deliveries.entry((destination, key.clone())).or_default();
        *count += 1;
        if *count > 1 {
            self.repeated_deliveries += 1;
            let recorded = match store.entry(claim_key) {
                Some(Entry::Completed { .. }) => true,
                Some(Entry::InProgress { done, .. } | Entry::Released { done, .. }) => done.contains(destination),
                None => false,
            };
            if recorded {
                let detail = format!("{destination} received {key:?} again after its delivery was recorded");
                self.fail("destinations", detail);
            }
        }
    }

    /// An invocation ended (answered or killed): which of its applications the store
    /// recorded.
    pub fn end(&mut self, invocation: u64, store: &dyn SimStore, claim_key: impl Fn(&Key) -> String) {
        self.alive.remove(&invocation);
        for application in self.applications.iter_mut().filter(|a| a.invocation == invocation && a.recorded.is_none()) {
            let recorded = match store.entry(&claim_key(&application.key)) {
                Some(Entry::Completed { .. }) => true,
                Some(Entry::InProgress { done, .. } | Entry::Released { done, .. }) => done.contains(HANDLER),
                None => false,
            };
            application.recorded = Some(recorded);
            self.window += u64::from(!recorded);
        }
    }

    /// Invariant 6, drift: a record that was read (processed, a duplicate or stale)
    /// reports exactly the drift planted in its event besides what every event of the run
    /// shows, whatever attempt, copy, redrive or replay it is.
    pub fn drift(&mut self, payload: &str, reported: &[crate::events::Finding], word: &'static str) {
        if !matches!(word, "processed" | "duplicate" | "stale") {
            return;
        }
        let planted = self.planted.get(payload).cloned().unwrap_or_default();
        if let Some(lost) = planted.iter().find(|p| !reported.contains(p)) {
            return self.fail("drift", format!("{payload}: the planted {lost} was not reported: {reported:?}"));
        }
        let rest: Vec<crate::events::Finding> = reported.iter().filter(|f| !planted.contains(f)).cloned().collect();
        match &self.drift_base {
            None => self.drift_base = Some(rest),
            Some(base) if *base != rest => {
                let detail = format!("{payload}: reported {rest:?} besides what was planted; other events: {base:?}");
                self.fail("drift", detail)
            }
            Some(_) => {}
        }
    }

    /// A record's reported outcome.
    pub fn outcome(&mut self, key: Key, word: &'static str) {
        self.outcomes.entry(key).or_default().insert(word);
    }

    /// After every step: a recorded version never moves back.
    pub fn check_versions(&mut self, store: &dyn SimStore) {
        let subjects: BTreeSet<String> = self.accepted.values().map(|s| s.subject.clone()).collect();
        for subject in subjects {
            let now = store.version(&subject);
            let before = self.versions_seen.get(&subject).copied();
            if let (Some(before), Some(now)) = (before, now) {
                if now < before {
                    self.fail("order", format!("{subject}: the recorded version moved back from {before} to {now}"));
                }
            }
            if let Some(now) = now {
                self.versions_seen.insert(subject, now);
            }
        }
    }

    /// At the end, once every queue is empty: invariants 3 and 4.
    pub fn check_end(&mut self, destinations: &[&'static str], dead: &[(Key, String)]) {
        let applied: BTreeSet<Key> = self.applications.iter().map(|a| a.key.clone()).collect();
        // An application no write recorded (the one window) may be followed by nothing
        // more: a later attempt finds the event stale or claims it afresh.
        let recorded: BTreeSet<Key> =
            self.applications.iter().filter(|a| a.recorded == Some(true)).map(|a| a.key.clone()).collect();
        if std::env::var_os("SIM_DEBUG").is_some() {
            for a in &self.applications {
                eprintln!(
                    "application {:?} v{} inv {} recorded {:?}; outcomes {:?}",
                    a.key,
                    a.version,
                    a.invocation,
                    a.recorded,
                    self.outcomes.get(&a.key)
                );
            }
        }
        for key in &recorded {
            let in_dlq: Vec<&String> = dead.iter().filter(|(k, _)| k == key).map(|(_, r)| r).collect();
            for destination in destinations {
                if !self.deliveries.contains_key(&(*destination, key.clone())) && in_dlq.is_empty() {
                    let detail =
                        format!("{key:?} was applied, never reached {destination}, and is in no dead-letter queue");
                    return self.fail("destinations", detail);
                }
            }
        }
        let keys: Vec<Key> = self.accepted.keys().cloned().collect();
        for key in keys {
            let ended = self
                .outcomes
                .get(&key)
                .is_some_and(|o| o.iter().any(|w| matches!(*w, "processed" | "duplicate" | "stale" | "expired")));
            let dead_lettered = dead.iter().any(|(k, reason)| *k == key && !reason.is_empty());
            if !ended && !dead_lettered && !applied.contains(&key) {
                let detail = format!("{key:?} was accepted and ended nowhere: {:?}", self.outcomes.get(&key));
                return self.fail("nothing-vanishes", detail);
            }
        }
    }

    /// Handler applications, in all.
    pub fn applications(&self) -> usize {
        self.applications.len()
    }

    /// Alive invocations.
    pub fn alive(&self) -> usize {
        self.alive.len()
    }

    /// Outcome counts, for the summary.
    pub fn outcome_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for words in self.outcomes.values() {
            for word in words {
                *counts.entry(*word).or_default() += 1;
            }
        }
        counts
    }
}

/// The longest first wait on a claim with `lease_left_ms` to run and `receives_left`:
/// the lease spread over all the receives left but one (at least one), in waits each
/// `WAIT_RATIO` times the last, rounded up to the second, and a second past the lease
/// when only one wait is left.
fn first_wait_allowed(lease_left_ms: i64, receives_left: u32) -> i64 {
    let ratio = crate::consumer::lifecycle::WAIT_RATIO as i64;
    let waits = receives_left.saturating_sub(1).clamp(1, 6);
    let spread: i64 = (0..waits).map(|i| ratio.pow(i)).sum();
    let margin = if waits == 1 { 1_000 } else { 0 };
    (lease_left_ms.max(0) / spread + margin + 1_000).max(1_000)
}

/// A shared ledger.
pub type Shared = Arc<std::sync::Mutex<Ledger>>;
