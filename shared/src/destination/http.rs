//! Forwarding an event to an HTTP endpoint of the studio's: the request it gets (the
//! exact bytes received, signed again with the *forward secret* so the receiver can
//! reuse Creative Force's own verification), and what each answer means.

use std::time::Duration;

use super::Verdict;
use crate::secret::Secret;
use crate::signature::sign;

/// The most of an answer's body a dead-letter reason quotes.
pub const QUOTED_ANSWER_BYTES: usize = 256;
/// The longest `Retry-After` honoured: the message comes back no later than this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The headers of a forwarded event, besides the studio's own extra ones:
/// `Content-Type`, `X-CF-Event`, `Idempotency-Key` (the `PayloadId`, with `:<run>` for
/// a replay run), `X-CF-Signature` (HMAC-SHA256 hex of `body` under the forward secret),
/// and `X-CF-Replay` during a replay.
pub fn headers(
    body: &[u8],
    event: &str,
    payload_id: &str,
    replay_run: Option<&str>,
    secret: &Secret,
) -> Vec<(&'static str, String)> {
    let key = match replay_run {
        Some(run) => format!("{payload_id}:{run}"),
        None => payload_id.to_owned(),
    };
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("x-cf-event", event.to_owned()),
        ("idempotency-key", key),
        ("x-cf-signature", sign(secret, body)),
    ];
    if let Some(run) = replay_run {
        headers.push(("x-cf-replay", run.to_owned()));
    }
    headers
}

/// The verdict on an answer: `status`, its `Retry-After` header if any, and its body.
pub fn verdict(status: u16, retry_after: Option<&str>, body: &[u8]) -> Verdict {
    let quoted = || {
        let cut = &body[..body.len().min(QUOTED_ANSWER_BYTES)];
        format!("HTTP {status}: {}", String::from_utf8_lossy(cut))
    };
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry { reason: quoted(), after: retry_after.and_then(parse_retry_after) },
        _ => Verdict::Permanent { reason: quoted() },
    }
}

/// `Retry-After` in seconds, capped; an HTTP date or anything else is ignored (the
/// queue's own delay applies).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretEncoding;
    use crate::signature::Signature;

    #[test]
    fn a_forward_is_signed_with_the_forward_secret_and_keyed_by_payload_id() {
        let secret = Secret::from_text("forward-secret", SecretEncoding::Utf8).unwrap();
        let body = br#"{"PayloadId":"p-1"}"#;
        let sent = headers(body, "Task completed", "p-1", None, &secret);
        let get = |name: &str| sent.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(get("x-cf-event"), Some("Task completed"));
        assert_eq!(get("idempotency-key"), Some("p-1"));
        assert_eq!(get("x-cf-replay"), None);
        let signature = Signature::parse(get("x-cf-signature").unwrap().as_bytes()).unwrap();
        let secrets = crate::secret::SecretSet::parse_list("forward-secret", SecretEncoding::Utf8).unwrap();
        assert!(signature.verify(&secrets, body), "the receiver verifies it like Creative Force's signature");

        let replayed = headers(body, "Task completed", "p-1", Some("run-7"), &secret);
        assert!(replayed.contains(&("idempotency-key", "p-1:run-7".to_owned())));
        assert!(replayed.contains(&("x-cf-replay", "run-7".to_owned())));
    }

    #[test]
    fn answers_are_delivered_retried_or_dead_lettered() {
        assert_eq!(verdict(200, None, b""), Verdict::Delivered);
        assert_eq!(verdict(204, None, b""), Verdict::Delivered);
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(verdict(status, None, b"busy"), Verdict::Retry { after: None, .. }), "{status}");
        }
        assert_eq!(
            verdict(503, Some("120"), b""),
            Verdict::Retry { reason: "HTTP 503: ".into(), after: Some(Duration::from_secs(120)) }
        );
        assert!(
            matches!(verdict(429, Some("86400"), b""), Verdict::Retry { after: Some(d), .. } if d == MAX_RETRY_AFTER)
        );
        assert!(matches!(verdict(503, Some("Wed, 21 Oct 2026 07:28:00 GMT"), b""), Verdict::Retry { after: None, .. }));
        let long = vec![b'x'; 1000];
        match verdict(400, None, &long) {
            Verdict::Permanent { reason } => assert_eq!(reason, format!("HTTP 400: {}", "x".repeat(256))),
            other => panic!("{other:?}"),
        }
        assert!(matches!(verdict(301, None, b""), Verdict::Permanent { .. }), "redirects are not followed");
        assert!(matches!(verdict(404, None, b""), Verdict::Permanent { .. }));
    }
}
