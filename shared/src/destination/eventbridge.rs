//! Putting events on an EventBridge bus: how large an entry is (EventBridge's own
//! formula), how the records of a batch are packed into `PutEvents` calls (at most 10
//! entries and 256 KiB a call), which entries cannot be sent at all, and which failed
//! entries are worth retrying.

/// Most entries in one `PutEvents` call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// Largest total of entry sizes in one call, and so the largest entry.
pub const MAX_CALL_BYTES: usize = 256 * 1024;

/// The default `Source` of every entry.
pub const DEFAULT_SOURCE: &str = "creativeforce";
/// The resource a replayed event carries, followed by the run's ID: a rule matches
/// replays with `"resources": [{"prefix": "cf-webhooks:replay/"}]` and leaves them out
/// with `"resources": [{"exists": false}]`.
pub const REPLAY_RESOURCE: &str = "cf-webhooks:replay/";

/// The size EventBridge counts for an entry: `Time` (14 bytes when given), then the UTF-8
/// bytes of `Source`, `DetailType`, `Detail` and each resource.
pub fn entry_size(source: &str, detail_type: &str, detail: &str, has_time: bool, resources: &[String]) -> usize {
    let time = if has_time { 14 } else { 0 };
    time + source.len() + detail_type.len() + detail.len() + resources.iter().map(String::len).sum::<usize>()
}

/// The resources of an entry: the replay run, when it is one.
pub fn resources(replay_run: Option<&str>) -> Vec<String> {
    replay_run.map(|run| vec![format!("{REPLAY_RESOURCE}{run}")]).unwrap_or_default()
}

/// The calls to make for entries of these sizes, in order: each call a list of indexes
/// into `sizes`, at most [`MAX_ENTRIES_PER_CALL`] of them and [`MAX_CALL_BYTES`] in all.
/// Entries larger than a call can hold are returned apart: they go to the dead-letter
/// queue with that reason, never dropped.
pub fn plan_calls(sizes: &[usize]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut too_large = Vec::new();
    let mut bytes = 0;
    for (index, &size) in sizes.iter().enumerate() {
        if size > MAX_CALL_BYTES {
            too_large.push(index);
            continue;
        }
        match calls.last_mut() {
            Some(call) if call.len() < MAX_ENTRIES_PER_CALL && bytes + size <= MAX_CALL_BYTES => {
                call.push(index);
                bytes += size;
            }
            _ => {
                calls.push(vec![index]);
                bytes = size;
            }
        }
    }
    (calls, too_large)
}

/// True when a failed entry's error code is worth a retry (throttling, EventBridge's own
/// failures); anything else (a malformed entry, a bus that does not exist, access denied)
/// will fail again and goes to the dead-letter queue.
///
/// An entry's code this version does not know is not retried: a failed entry's code
/// is about the entry, and an unknown one most likely names what is wrong with it.
pub fn retryable(error_code: &str) -> bool {
    use crate::error::ErrorKind;
    matches!(ErrorKind::of_aws_code(error_code), ErrorKind::Throttled | ErrorKind::Transient)
}

/// Puts events on a bus: one entry per event, `Source` (default `creativeforce`),
/// `DetailType` the group and action in words, `Detail` the event's JSON as received,
/// `Time` its `EventDatetimeUtc`, and a replay run as a resource.
#[cfg(feature = "eventbridge")]
pub struct EventBridge {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
}

#[cfg(feature = "eventbridge")]
impl std::fmt::Debug for EventBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBridge").field("bus", &self.bus).field("source", &self.source).finish_non_exhaustive()
    }
}

#[cfg(feature = "eventbridge")]
impl EventBridge {
    /// Events to `bus` (a name or an ARN) with `source`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>, source: impl Into<String>) -> Self {
        Self { client, bus: bus.into(), source: source.into() }
    }

    async fn put(&self, events: &[super::Outgoing<'_>], call: &[usize], verdicts: &mut [super::Verdict]) {
        use super::Verdict;
        use aws_sdk_eventbridge::types::PutEventsRequestEntry;
        let entries = call
            .iter()
            .map(|&i| {
                let event = &events[i];
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&self.source)
                    .detail_type(crate::events::detail_type(event.group, event.action))
                    .detail(String::from_utf8_lossy(event.body))
                    .time(aws_smithy_types::DateTime::from_millis(event.event_time_ms))
                    .set_resources(Some(resources(event.replay_run)).filter(|r| !r.is_empty()))
                    .build()
            })
            .collect();
        match self.client.put_events().set_entries(Some(entries)).send().await {
            // One result per entry, in order: an entry with an error code failed alone.
            Ok(output) => {
                for (n, &i) in call.iter().enumerate() {
                    let result = output.entries().get(n);
                    verdicts[i] = match result.and_then(|r| r.error_code()) {
                        None if result.is_some() => Verdict::Delivered,
                        None => Verdict::retry("EventBridge gave no result for the entry"),
                        Some(code) => {
                            let message = result.and_then(|r| r.error_message()).unwrap_or_default();
                            let reason = format!("EventBridge refused the entry: {code}: {message}");
                            if retryable(code) {
                                Verdict::retry(reason)
                            } else {
                                Verdict::Permanent { reason }
                            }
                        }
                    };
                }
            }
            // The whole call failed (the network, throttling, access): every entry is
            // retried, and dead-lettered only after the queue's maximum receives.
            Err(e) => {
                let reason = format!("PutEvents failed: {}", crate::logging::describe(&e));
                for &i in call {
                    verdicts[i] = Verdict::retry(reason.clone());
                }
            }
        }
    }
}

#[cfg(feature = "eventbridge")]
#[async_trait::async_trait]
impl super::Destination for EventBridge {
    fn name(&self) -> &'static str {
        "eventbridge"
    }

    async fn deliver(&self, events: &[super::Outgoing<'_>]) -> Vec<super::Verdict> {
        let sizes: Vec<usize> = events
            .iter()
            .map(|e| {
                let detail_type = crate::events::detail_type(e.group, e.action);
                entry_size(&self.source, &detail_type, &String::from_utf8_lossy(e.body), true, &resources(e.replay_run))
            })
            .collect();
        let (calls, too_large) = plan_calls(&sizes);
        let mut verdicts = vec![super::Verdict::Delivered; events.len()];
        for i in too_large {
            verdicts[i] = super::Verdict::Permanent {
                reason: format!(
                    "too large for an EventBridge entry: {} bytes, the limit is {MAX_CALL_BYTES}",
                    sizes[i]
                ),
            };
        }
        let puts = calls.iter().map(|call| async move {
            let mut mine = vec![super::Verdict::Delivered; events.len()];
            self.put(events, call, &mut mine).await;
            (call, mine)
        });
        for (call, mine) in futures_util::future::join_all(puts).await {
            for &i in call {
                verdicts[i] = mine[i].clone();
            }
        }
        verdicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_sized_as_eventbridge_counts_them() {
        assert_eq!(entry_size("creativeforce", "Task completed", "{}", true, &[]), 14 + 13 + 14 + 2);
        assert_eq!(entry_size("cf", "Séance", "", false, &[]), 2 + 7, "UTF-8 bytes, not characters");
        let replay = resources(Some("r1"));
        assert_eq!(replay, ["cf-webhooks:replay/r1"]);
        assert_eq!(entry_size("cf", "T", "{}", false, &replay), 2 + 1 + 2 + 21);
        assert!(resources(None).is_empty());
    }

    #[test]
    fn calls_hold_ten_entries_and_256_kib_at_most() {
        let (calls, too_large) = plan_calls(&[100; 23]);
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 3]);
        assert_eq!(calls.concat(), (0..23).collect::<Vec<_>>(), "every entry once, in order");
        assert!(too_large.is_empty());

        let big = 100 * 1024;
        let (calls, _) = plan_calls(&[big, big, big, 10, big]);
        assert_eq!(calls, [vec![0, 1], vec![2, 3, 4]], "a new call before the total passes 256 KiB");
        for call in &calls {
            let total: usize = call.iter().map(|&i| [big, big, big, 10, big][i]).sum();
            assert!(total <= MAX_CALL_BYTES);
        }
    }

    #[test]
    fn an_entry_no_call_can_hold_is_set_apart_not_dropped() {
        let (calls, too_large) = plan_calls(&[10, MAX_CALL_BYTES + 1, MAX_CALL_BYTES, 10]);
        assert_eq!(too_large, [1]);
        assert_eq!(calls, [vec![0], vec![2], vec![3]]);
    }

    #[test]
    fn throttling_and_internal_errors_are_retried_malformed_entries_are_not() {
        assert!(retryable("ThrottlingException") && retryable("InternalFailure"));
        assert!(!retryable("MalformedDetail") && !retryable("InvalidArgument") && !retryable("AccessDeniedException"));
    }
}
