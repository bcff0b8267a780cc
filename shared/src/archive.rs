//! Where an archived event lives: object keys (and local paths) that sort by time, name
//! the event, and cannot be steered by anything the sender wrote.
//!
//! `<prefix>/<group>/<yyyy>/<mm>/<dd>/<EventDatetimeUtc>-<PayloadId>.json`, the date
//! folders from the event's own time (UTC) and the `PayloadId` percent-encoded: only
//! ASCII letters, digits, `-` and `_` stay as they are, so no value can hold a `/`, a
//! `..` or a character a file system or S3 treats specially. Quarantined deliveries have
//! no trustworthy time or ID: `<prefix>/unrouted/<yyyy>/<mm>/<dd>/<received>-<sha256>.json`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::events::{EventGroup, Route};

/// Everything but ASCII letters, digits, `-` and `_` is encoded.
const KEY_TEXT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The key of an event of `group`.
pub fn event_key(prefix: &str, group: EventGroup, event_time_ms: i64, payload_id: &str) -> String {
    let id = utf8_percent_encode(payload_id, KEY_TEXT);
    format!("{}{event_time_ms}-{id}.json", folder(prefix, Route::Group(group), event_time_ms))
}

/// The key of a quarantined body: by the time it was received and its SHA-256, so the
/// same bytes always land on the same key.
pub fn unrouted_key(prefix: &str, received_at_ms: i64, body: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(body));
    format!("{}{received_at_ms}-{digest}.json", folder(prefix, Route::Unrouted, received_at_ms))
}

/// `<prefix>/<route>/<yyyy>/<mm>/<dd>/`; a time no calendar can show goes under
/// `undated/`.
fn folder(prefix: &str, route: Route, at_ms: i64) -> String {
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    let date = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .filter(|at| at.year() >= 0)
        .map_or_else(
            || "undated".to_owned(),
            |at| format!("{:04}/{:02}/{:02}", at.year(), u8::from(at.month()), at.day()),
        );
    format!("{prefix}{route}/{date}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-29T11:31:04.123Z
    const AT: i64 = 1_795_951_864_123;

    #[test]
    fn keys_sort_by_time_under_date_folders_of_the_event() {
        assert_eq!(
            event_key("archive", EventGroup::WorkUnit, AT, "c02f0f73-1706-4973-9a4d-38007d6685e9"),
            "archive/work-unit/2026/11/29/1795951864123-c02f0f73-1706-4973-9a4d-38007d6685e9.json"
        );
        assert_eq!(event_key("", EventGroup::Job, 0, "p"), "job/1970/01/01/0-p.json");
        assert_eq!(event_key("/a/b/", EventGroup::Job, 0, "p"), "a/b/job/1970/01/01/0-p.json");
    }

    #[test]
    fn no_payload_id_escapes_its_folder() {
        for hostile in ["../../etc/passwd", "a/b", "..", ".", "\\windows", "%2F", "x\u{0}y", "ünï", "a b?#*"] {
            let key = event_key("archive", EventGroup::Task, AT, hostile);
            let name = key.strip_prefix("archive/task/2026/11/29/").unwrap();
            assert!(!name.contains('/') && !name.contains('\\') && !name.contains(".."), "{hostile:?} gave {key}");
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_%.".contains(&b)), "{key}");
            assert!(name.starts_with("1795951864123-") && name.ends_with(".json"), "{key}");
        }
        assert_eq!(event_key("", EventGroup::Task, 0, "a/b"), "task/1970/01/01/0-a%2Fb.json");
    }

    #[test]
    fn quarantined_bodies_are_keyed_by_what_they_are() {
        let key = unrouted_key("archive", AT, b"{not json");
        assert!(key.starts_with("archive/unrouted/2026/11/29/1795951864123-"), "{key}");
        assert_eq!(key, unrouted_key("archive", AT, b"{not json"), "the same bytes, the same key");
        assert_ne!(key, unrouted_key("archive", AT, b"{not json!"));
        assert_eq!(key.len(), "archive/unrouted/2026/11/29/1795951864123-".len() + 64 + ".json".len());
    }

    #[test]
    fn times_no_calendar_can_show_are_undated() {
        assert_eq!(event_key("", EventGroup::Task, i64::MAX, "p"), format!("task/undated/{}-p.json", i64::MAX));
        assert_eq!(event_key("", EventGroup::Task, -1, "p"), "task/1969/12/31/-1-p.json");
    }
}
