//! The lifecycle's transitions, one row per path a record can take.

use super::*;

const HTTP: &str = "http";
const BOTH: &[&str] = &["eventbridge", HTTP];

fn facts(destinations: &'static [&'static str]) -> Facts<'static> {
    Facts {
        event_time_ms: 2_000,
        now_ms: 10_000,
        memory: Some(Duration::from_secs(3600)),
        replay: false,
        replayed_at_ms: None,
        guarded: true,
        destinations,
        dead_letters: true,
        receives_left: 4,
    }
}

fn done(steps: &[&str]) -> Done {
    steps.iter().map(|s| (*s).to_owned()).collect()
}

fn acquired(steps: &[&str]) -> Input {
    Input::Claimed(Ok(Claim::Acquired { done: done(steps) }))
}

fn ok() -> Input {
    Input::Written(Ok(()))
}

fn failed(kind: StoreErrorKind) -> Input {
    Input::Written(Err(StoreError { kind, message: "boom".into() }))
}

/// Feeds `inputs` one by one and answers every effect asked for, the first included.
fn run(facts: Facts<'static>, inputs: Vec<Input>) -> (Lifecycle<'static>, Vec<Effect>) {
    let (mut life, first) = Lifecycle::start(facts);
    let mut effects = vec![first];
    for input in inputs {
        effects.push(life.on(input));
    }
    (life, effects)
}

fn end(effects: &[Effect]) -> &Outcome {
    match effects.last() {
        Some(Effect::End(outcome)) => outcome,
        other => panic!("not ended: {other:?}"),
    }
}

#[test]
fn a_guarded_event_without_destinations_is_applied_and_completed_with_its_version_in_one_write() {
    let (life, effects) =
        run(facts(&[]), vec![acquired(&[]), Input::Version(Ok(Some(1_000))), Input::Handled(Verdict::Delivered), ok()]);
    assert_eq!(
        effects,
        [
            Effect::Claim,
            Effect::ReadVersion,
            Effect::Handle,
            Effect::Complete { version: true },
            Effect::End(Outcome::Processed)
        ]
    );
    assert!(!life.unrecorded());
}

#[test]
fn with_destinations_the_handler_and_version_are_recorded_before_any_destination() {
    let (_, effects) = run(
        facts(BOTH),
        vec![
            acquired(&[]),
            Input::Version(Ok(None)),
            Input::Handled(Verdict::Delivered),
            ok(),
            Input::Delivered(Verdict::Delivered),
            Input::Delivered(Verdict::Delivered),
            ok(),
        ],
    );
    assert_eq!(
        effects[3..],
        [
            Effect::Record { version: true },
            Effect::Deliver("eventbridge"),
            Effect::Deliver(HTTP),
            Effect::Complete { version: false },
            Effect::End(Outcome::Processed)
        ]
    );
}

#[test]
fn an_older_event_than_the_facet_applied_is_stale_and_completed_without_handler_or_destination() {
    let (_, effects) = run(facts(BOTH), vec![acquired(&[]), Input::Version(Ok(Some(3_000))), ok()]);
    assert_eq!(effects[2], Effect::Complete { version: false });
    assert_eq!(end(&effects), &Outcome::Stale { newer: 3_000, version: 2_000 });
    let (_, effects) = run(facts(BOTH), vec![acquired(&[]), Input::Version(Ok(Some(2_000)))]);
    assert_eq!(effects[2], Effect::Handle, "an equal time is never stale");
}

#[test]
fn a_completed_claim_is_a_duplicate_and_one_held_elsewhere_waits_a_first_short_wait() {
    let (_, effects) = run(facts(BOTH), vec![Input::Claimed(Ok(Claim::Completed))]);
    assert_eq!(end(&effects), &Outcome::Duplicate);
    // 60 s of lease over 3 waits (4 receives left, one kept): 60 / (1 + 4 + 16) → 3 s.
    let held = Input::Claimed(Ok(Claim::InProgress { lease_left: Some(Duration::from_secs(60)) }));
    let (_, effects) = run(facts(BOTH), vec![held]);
    assert!(
        matches!(end(&effects), Outcome::Waiting { retry_after, .. } if *retry_after == Duration::from_secs(3)),
        "{effects:?}"
    );
    // Gone or released meanwhile: looked at again after the shortest wait.
    let (_, effects) = run(facts(BOTH), vec![Input::Claimed(Ok(Claim::InProgress { lease_left: None }))]);
    assert!(matches!(end(&effects), Outcome::Waiting { retry_after, .. } if *retry_after == WAIT_FLOOR));
}

/// Receive by receive, as SQS would deliver a copy whose holder died: the receive at which
/// the holder's lease has ended, and the waits on the way.
fn outwait(lease: Duration, max_receives: u32) -> (u32, Vec<Duration>) {
    let (mut left, mut waits) = (lease.as_millis() as i64, Vec::new());
    for receive in 1..=max_receives {
        if left <= 0 {
            return (receive, waits);
        }
        let wait = claim_wait(Duration::from_millis(left as u64), max_receives - receive);
        left -= wait.as_millis() as i64;
        waits.push(wait);
    }
    (max_receives + 1, waits)
}

#[test]
fn a_waiting_copy_outwaits_a_dead_holder_with_a_receive_to_spare() {
    for lease in [1, 2, 59, 60, 61, 120, 900, 1_800, 43_200].map(Duration::from_secs) {
        for max_receives in 2..=12 {
            let (claimed_at, waits) = outwait(lease, max_receives);
            assert!(claimed_at <= max_receives, "lease {lease:?}, {max_receives} receives: dead-lettered for waiting");
            if max_receives >= 3 {
                assert!(claimed_at < max_receives, "lease {lease:?}, {max_receives} receives: no receive to spare");
            }
            assert!(waits.iter().all(|w| *w >= WAIT_FLOOR && *w <= WAIT_CEILING && w.subsec_millis() == 0));
            // Each wait at most WAIT_RATIO times the last (and a second of rounding): the
            // holder that settles is answered within about three times what was waited.
            for pair in waits.windows(2) {
                assert!(pair[1] <= pair[0] * WAIT_RATIO as u32 + WAIT_FLOOR, "{lease:?} {max_receives}: {waits:?}");
            }
        }
    }
    // The default receives and a 60 s lease: 3 s, then 12 s, then the rest.
    let (_, waits) = outwait(Duration::from_secs(60), 5);
    assert_eq!(waits[..2], [Duration::from_secs(3), Duration::from_secs(12)]);
}

#[test]
fn a_copy_at_its_last_receive_waits_past_the_lease_and_a_wait_never_exceeds_what_sqs_allows() {
    assert_eq!(claim_wait(Duration::from_secs(30), 0), Duration::from_secs(31));
    assert_eq!(claim_wait(Duration::from_secs(30), 1), Duration::from_secs(31));
    assert_eq!(claim_wait(Duration::ZERO, 5), WAIT_FLOOR);
    assert_eq!(claim_wait(Duration::from_secs(100_000), 1), WAIT_CEILING);
}

#[test]
fn an_event_older_than_the_memory_is_dead_lettered_as_expired_unless_replayed() {
    let old = Facts { event_time_ms: 10_000 - 3_600_001, ..facts(&[]) };
    let (mut life, effect) = Lifecycle::start(old.clone());
    assert!(matches!(effect, Effect::DeadLetter(ref reason) if reason.starts_with("expired: ")));
    assert!(matches!(life.on(Input::DeadLettered(Ok(()))), Effect::End(Outcome::Expired { .. })));
    assert_eq!(Lifecycle::start(Facts { replay: true, ..old.clone() }).1, Effect::Claim);
    let (_, effect) = Lifecycle::start(Facts { dead_letters: false, ..old });
    assert!(matches!(effect, Effect::End(Outcome::Failed { permanent: true, .. })));
}

#[test]
fn a_failing_handler_releases_the_claim_and_reaches_no_destination() {
    let (_, effects) =
        run(facts(BOTH), vec![acquired(&[]), Input::Version(Ok(None)), Input::Handled(Verdict::retry("down")), ok()]);
    assert_eq!(effects[3], Effect::Release { version: false });
    assert_eq!(end(&effects), &Outcome::failed("down"));
    let (_, effects) = run(
        facts(&[]),
        vec![
            acquired(&[]),
            Input::Version(Ok(None)),
            Input::Handled(Verdict::Permanent { reason: "bad".into() }),
            ok(),
            Input::DeadLettered(Ok(())),
        ],
    );
    assert_eq!(effects[4], Effect::DeadLetter("bad".into()));
    assert_eq!(end(&effects), &Outcome::DeadLettered { reason: "bad".into() });
}

#[test]
fn a_refused_destination_releases_with_the_handler_done_then_dead_letters_with_its_reason() {
    let (life, effects) = run(
        facts(&[HTTP]),
        vec![
            acquired(&[]),
            Input::Version(Ok(None)),
            Input::Handled(Verdict::Delivered),
            ok(),
            Input::Delivered(Verdict::Permanent { reason: "HTTP 400".into() }),
            ok(),
            Input::DeadLettered(Ok(())),
        ],
    );
    assert_eq!(effects[5], Effect::Release { version: false });
    assert_eq!(life.done(), &done(&[HANDLER]));
    assert_eq!(effects[6], Effect::DeadLetter("http: HTTP 400".into()));
    assert_eq!(end(&effects), &Outcome::DeadLettered { reason: "http: HTTP 400".into() });
}

#[test]
fn a_retry_redoes_only_what_is_not_done() {
    let (_, effects) =
        run(facts(BOTH), vec![acquired(&[HANDLER, "eventbridge"]), Input::Delivered(Verdict::Delivered), ok()]);
    assert_eq!(effects[1], Effect::Deliver(HTTP), "no version read, no handler: both were done");
    assert_eq!(effects[2], Effect::Complete { version: false });
}

#[test]
fn a_write_that_fails_is_tried_again_a_bounded_number_of_times_and_keeps_the_version() {
    // Conflicts and lost answers: the same write again, up to WRITE_ATTEMPTS.
    let (_, effects) = run(
        facts(&[HTTP]),
        vec![
            acquired(&[]),
            Input::Version(Ok(None)),
            Input::Handled(Verdict::Delivered),
            failed(StoreErrorKind::Conflict),
            failed(StoreErrorKind::Unavailable),
            failed(StoreErrorKind::Unavailable),
            Input::Delivered(Verdict::retry("503")),
            ok(),
        ],
    );
    assert_eq!(effects[4], Effect::Record { version: true });
    assert_eq!(effects[5], Effect::Record { version: true });
    assert_eq!(effects[6], Effect::Deliver(HTTP), "the handler applied it: delivered all the same");
    assert_eq!(effects[7], Effect::Release { version: true }, "the release carries the version not yet written");
    assert_eq!(end(&effects), &Outcome::failed("http: 503"));
}

#[test]
fn a_completion_never_recorded_leaves_the_handler_unrecorded() {
    let (life, effects) = run(
        facts(&[]),
        vec![
            acquired(&[]),
            Input::Version(Ok(None)),
            Input::Handled(Verdict::Delivered),
            failed(StoreErrorKind::Unavailable),
            failed(StoreErrorKind::Unavailable),
            failed(StoreErrorKind::Unavailable),
        ],
    );
    assert_eq!(end(&effects), &Outcome::Processed);
    assert!(life.unrecorded(), "the one window no store closes: reported");
}

#[test]
fn a_write_the_store_refuses_for_good_is_not_made_again() {
    // Access denied, a table that does not exist: the kind says no retry helps, so the
    // attempt goes on at once (delivering what the handler applied) and its claim's lease
    // ends on its own.
    let (_, effects) = run(
        facts(&[HTTP]),
        vec![
            acquired(&[]),
            Input::Version(Ok(None)),
            Input::Handled(Verdict::Delivered),
            failed(StoreErrorKind::Permanent),
            Input::Delivered(Verdict::Delivered),
            failed(StoreErrorKind::Permanent),
        ],
    );
    assert_eq!(effects[4], Effect::Deliver(HTTP), "not written again: the next step at once");
    assert_eq!(effects[5], Effect::Complete { version: true });
    assert_eq!(end(&effects), &Outcome::Processed);
    for kind in
        [StoreErrorKind::Throttled, StoreErrorKind::Unavailable, StoreErrorKind::Unknown, StoreErrorKind::Conflict]
    {
        assert!(kind.retryable(), "{kind:?}");
    }
    assert!(!StoreErrorKind::Permanent.retryable() && !StoreErrorKind::Lost.retryable());
}

#[test]
fn an_attempt_that_lost_its_claim_stops_and_is_retried() {
    let (_, effects) = run(
        facts(&[HTTP]),
        vec![acquired(&[]), Input::Version(Ok(None)), Input::Handled(Verdict::Delivered), failed(StoreErrorKind::Lost)],
    );
    assert!(matches!(end(&effects), Outcome::Failed { reason, .. } if reason.contains("no longer holds the claim")));
}

#[test]
fn a_store_that_cannot_be_read_fails_the_record_and_releases_its_claim() {
    let (_, effects) = run(facts(&[]), vec![Input::Claimed(Err(StoreError::unavailable("down")))]);
    assert!(matches!(end(&effects), Outcome::Failed { permanent: false, .. }));
    let (_, effects) = run(facts(&[]), vec![acquired(&[]), Input::Version(Err(StoreError::unavailable("down"))), ok()]);
    assert_eq!(effects[2], Effect::Release { version: false });
    assert!(matches!(end(&effects), Outcome::Failed { reason, .. } if reason.contains("down")));
}

#[test]
fn an_unreadable_record_is_dead_lettered_unclaimed_or_retried_without_a_queue() {
    let (mut life, effect) = Lifecycle::refuse(facts(&[]), "cannot decode".into());
    assert_eq!(effect, Effect::DeadLetter("cannot decode".into()));
    let effect = life.on(Input::DeadLettered(Err(DeadLetterError::transient("SQS down"))));
    assert!(
        matches!(effect, Effect::End(Outcome::Failed { permanent: true, ref reason, .. }) if reason.contains("SQS down"))
    );
}

#[test]
fn a_replayed_record_is_held_to_the_memory_from_the_time_its_run_sent_it() {
    let old = Facts { event_time_ms: 10_000 - 3_600_001, replay: true, ..facts(&[]) };
    let recent_run = Facts { replayed_at_ms: Some(9_000), ..old.clone() };
    assert_eq!(Lifecycle::start(recent_run).1, Effect::Claim, "an old event, replayed now: applied once more");
    let stale_run = Facts { replayed_at_ms: Some(10_000 - 3_600_001), ..old };
    let (_, effect) = Lifecycle::start(stale_run);
    assert!(
        matches!(effect, Effect::DeadLetter(ref reason) if reason.contains("this replay run sent the event")),
        "a delivery of a run older than the memory: its claim may be forgotten, so never applied again: {effect:?}"
    );
}
