//! Putting events on an EventBridge bus: how large an entry is (EventBridge's own
//! formula), how the records of a batch are packed into `PutEvents` calls (at most 10
//! entries and 256 KiB a call), which entries cannot be sent at all, and which failed
//! entries are worth retrying.

/// Most entries in one `PutEvents` call.
pub const MAX_ENTRIES_PER_CALL: usize = 10;
/// Largest total of entry sizes in one call, and so the largest entry.
pub const MAX_CALL_BYTES: usize = 256 * 1024;

/// The size EventBridge counts for an entry: `Time` (14 bytes when given), then the UTF-8
/// bytes of `Source`, `DetailType`, `Detail` and each resource.
pub fn entry_size(source: &str, detail_type: &str, detail: &str, has_time: bool) -> usize {
    let time = if has_time { 14 } else { 0 };
    time + source.len() + detail_type.len() + detail.len()
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
pub fn retryable(error_code: &str) -> bool {
    matches!(
        error_code,
        "ThrottlingException"
            | "InternalException"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "ConcurrentModificationException"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_sized_as_eventbridge_counts_them() {
        assert_eq!(entry_size("creativeforce", "Task completed", "{}", true), 14 + 13 + 14 + 2);
        assert_eq!(entry_size("cf", "Séance", "", false), 2 + 7, "UTF-8 bytes, not characters");
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
