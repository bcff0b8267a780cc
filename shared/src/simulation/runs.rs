//! Many runs: shrinking a failing one to a smaller configuration, and the totals of
//! those that held.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{run, Config, Summary, Violation};

/// A smaller configuration that fails the same way: fewer events, then fewer kinds of
/// fault, while it still fails.
pub fn shrink(mut config: Config, violation: &Violation) -> (Config, Violation) {
    let mut last = violation.clone();
    let fails = |c: Config| run(c).err().filter(|v| v.invariant == violation.invariant);
    while config.events > 1 {
        let smaller = Config { events: config.events / 2, ..config };
        match fails(smaller) {
            Some(v) => (config, last) = (smaller, v),
            None => break,
        }
    }
    for events in (1..config.events).rev() {
        let smaller = Config { events, ..config };
        if let Some(v) = fails(smaller) {
            (config, last) = (smaller, v);
        }
    }
    for fault in config.faults.kinds() {
        let fewer = Config { faults: config.faults.without(fault), ..config };
        if let Some(v) = fails(fewer) {
            (config, last) = (fewer, v);
        }
    }
    (config, last)
}

/// Seeds run and what they did, over many runs.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds over FIFO queues.
    pub fifo: u64,
    /// Seeds sending user events (`UserId` and `UserID`), the others task events.
    pub user: u64,
    /// Batches run, every consumer of every seed together.
    pub batches: u64,
    /// Faults injected, by kind.
    pub injected: BTreeMap<&'static str, u64>,
    /// Handler applications.
    pub applications: u64,
    /// Applications no write recorded (the one window).
    pub window: u64,
    /// Older-after-newer over standard queues.
    pub standard_reorders: u64,
    /// Deliveries repeated.
    pub repeated_deliveries: u64,
    /// Waiting copies answered after their holder settled.
    pub answered_waits: u64,
    /// How many attempts ended with each outcome word.
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Simulated time.
    pub simulated: Duration,
}

impl Totals {
    /// Adds a run.
    pub fn add(&mut self, summary: &Summary) {
        self.seeds += 1;
        self.fifo += u64::from(summary.fifo);
        self.user += u64::from(summary.group == Some(crate::events::EventGroup::User));
        self.batches += summary.batches;
        for (kind, n) in &summary.injected {
            *self.injected.entry(kind).or_default() += n;
        }
        self.applications += summary.applications as u64;
        self.window += summary.window;
        self.standard_reorders += summary.standard_reorders;
        self.repeated_deliveries += summary.repeated_deliveries;
        self.answered_waits += summary.answered_waits;
        for (word, n) in &summary.outcomes {
            *self.outcomes.entry(word).or_default() += *n as u64;
        }
        self.simulated += summary.simulated;
    }

    /// Faults injected in all.
    pub fn faults(&self) -> u64 {
        self.injected.values().sum()
    }
}
