//! The simulation itself under test: a fixed set of seeds holds every invariant, a seed
//! replays exactly, and the checks do fail when a guarantee is switched off.

use std::time::Duration;

use cf_webhooks::consumer::Order;
use cf_webhooks::simulation::{run, shrink, Config, Fault, Faults, TIMEOUT};

#[test]
fn fixed_seeds_hold_every_invariant_under_every_fault() {
    for seed in 0..40 {
        if let Err(violation) = run(Config::new(seed)) {
            panic!("seed {seed}: {violation:?}; replay: {}", Config::new(seed).command());
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let once = run(Config::new(7)).unwrap();
    let again = run(Config::new(7)).unwrap();
    assert_eq!(format!("{once:?}"), format!("{again:?}"));
    assert!(once.batches > 0 && once.applications > 0, "{once:?}");
}

#[test]
fn every_kind_of_fault_is_injected_across_seeds() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..2000 {
        let summary = run(Config::new(seed)).unwrap();
        seen.extend(summary.injected.keys().copied());
        if seen.len() == Fault::ALL.len() {
            break;
        }
    }
    let missing: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).filter(|name| !seen.contains(name)).collect();
    assert!(missing.is_empty(), "never injected: {missing:?}");
}

#[test]
fn the_runs_send_both_groups_and_their_copies_wait_on_claims_and_are_checked() {
    // The user group (UserId and UserID) beside the task group, and copies that found
    // another's claim: answered after it settled, each checked against invariant 5.
    let (mut user, mut task, mut waiting, mut answered) = (0, 0, 0, 0);
    for seed in 0..300 {
        let summary = run(Config::new(seed)).unwrap();
        match summary.group {
            Some(cf_webhooks::events::EventGroup::User) => user += 1,
            _ => task += 1,
        }
        waiting += summary.outcomes.get("waiting").copied().unwrap_or(0);
        answered += summary.answered_waits;
    }
    assert!(user > 50 && task > 50, "user {user}, task {task}");
    assert!(waiting > 0 && answered > 0, "waiting {waiting}, answered {answered}");
}

#[test]
fn without_the_order_guard_over_fifo_queues_the_order_invariant_breaks_and_shrinks() {
    // Applying every event (`CF_ORDERING=all`) lets a late older event be applied after a
    // newer one: the checker must see it.
    let broken = (0..40).find_map(|seed| {
        let config = Config { ordering: Order::All, fifo: Some(true), faults: Faults::none(), ..Config::new(seed) };
        run(config).err().map(|violation| (config, violation))
    });
    let (config, violation) = broken.expect("some seed sends a task's events out of order");
    assert_eq!(violation.invariant, "order", "{violation:?}");
    let (small, last) = shrink(config, &violation);
    assert_eq!(last.invariant, "order");
    assert!(small.events <= config.events && small.events >= 2, "{small:?}");
}

#[test]
fn a_lease_shorter_than_the_function_timeout_lets_a_live_holder_lose_its_claim() {
    let config = |seed| Config {
        lease: TIMEOUT / 10,
        faults: Faults::parse("slow-store,handler-hang,sqs-duplicate").unwrap(),
        rate: 30,
        ..Config::new(seed)
    };
    let broken = (0..60).find_map(|seed| run(config(seed)).err());
    let violation = broken.expect("a slow holder outlives a 3 s lease in some seed");
    assert!(matches!(violation.invariant, "live-holder" | "never-twice"), "{violation:?}");
    assert!(Duration::from_secs(3) < TIMEOUT);
}
