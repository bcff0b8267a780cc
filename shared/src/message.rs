//! The message ingest publishes: the exact bytes received, and the routing facts as
//! attributes that consumers read back.

use base64::Engine as _;
use bytes::Bytes;

use crate::events::{EventGroup, Route};

/// Attribute names, shared by the publishers and the consumers.
pub mod attr {
    /// Normalised event group.
    pub const EVENT_GROUP: &str = "cf-event-group";
    /// `Action`, as sent.
    pub const ACTION: &str = "cf-action";
    /// `PayloadId`.
    pub const PAYLOAD_ID: &str = "cf-payload-id";
    /// The event's name as Creative Force's `X-CF-Event` header gives it ("Task
    /// completed"), derived from the signed body: the header itself is not signed.
    pub const CF_EVENT: &str = "cf-event";
    /// On a quarantined delivery (no routable body to derive a name from): the
    /// `X-CF-Event` header as sent, named for what it is, an unsigned claim.
    pub const UNSIGNED_CF_EVENT: &str = "cf-unsigned-x-cf-event";
    /// When ingest received the delivery, milliseconds since the Unix epoch.
    pub const RECEIVED_AT: &str = "cf-received-at";
    /// `base64` when the body had to be encoded to be sendable.
    pub const BODY_ENCODING: &str = "cf-body-encoding";
    /// Why a body was quarantined or dead-lettered.
    pub const REASON: &str = "cf-reason";
    /// The `X-CF-Signature` the delivery arrived with (verified by ingest): archived with
    /// the body, so a replay can verify it again.
    pub const SIGNATURE: &str = "cf-signature";
    /// The ID of the replay run that sent the message again (`cfwh replay`).
    pub const REPLAY_RUN: &str = "cf-replay-run";
    /// When the replay run sent it (ms since the Unix epoch): the memory rule counts a
    /// replayed record from it, so a second delivery of one run is recognised, or refused
    /// once the store may have forgotten it.
    pub const REPLAYED_AT: &str = "cf-replayed-at";
}

/// The longest attribute value ingest writes from request data (`X-CF-Event`, reasons).
pub const MAX_ATTRIBUTE_TEXT: usize = 256;
/// An upper bound on the bytes all attributes of one message take (names, types and
/// values), used to check that the body limit fits the queue's message size.
pub const ATTRIBUTES_BUDGET: usize = 2048;

/// `text` made fit for an SQS attribute value: cut to [`MAX_ATTRIBUTE_TEXT`] bytes at a
/// character boundary, and every character SQS refuses (control characters but tab, line
/// feed and carriage return; U+FFFE and U+FFFF) replaced by U+FFFD, so that an authentic
/// event is never refused by SQS on every retry for what its text holds.
pub fn attribute_text(text: &str) -> String {
    let valid =
        |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    let text: std::borrow::Cow<'_, str> = if text.chars().all(valid) {
        text.into()
    } else {
        text.chars().map(|c| if valid(c) { c } else { '\u{FFFD}' }).collect::<String>().into()
    };
    crate::text::truncate(&text, MAX_ATTRIBUTE_TEXT)
}

/// The longest FIFO message group ID SQS takes.
pub const MAX_FIFO_GROUP_LEN: usize = 128;

/// The FIFO message group of an entity: its ID as sent (trimmed) when SQS takes it as a
/// group ID (1 to 128 printable ASCII characters), otherwise `sha256:` and the hex of
/// its SHA-256, so an ID with spaces, non-ASCII letters or 200 characters is still one
/// group and is never refused by the queue.
pub fn fifo_group(entity: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let entity = entity.trim();
    if !entity.is_empty() && entity.len() <= MAX_FIFO_GROUP_LEN && entity.bytes().all(|b| b.is_ascii_graphic()) {
        entity.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(entity.as_bytes())))
    }
}

/// A FIFO deduplication ID for `text`: SQS holds it to the same rules as a group ID, so
/// a replay's `<PayloadId>:<run>` over 128 characters is hashed the same way.
pub fn fifo_deduplication_id(text: &str) -> String {
    fifo_group(text)
}

/// How a message body is carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The bytes received, which are UTF-8 JSON that SQS accepts as they are.
    Raw(Bytes),
    /// Standard base64 of the bytes received: not UTF-8, or holding characters SQS
    /// refuses (U+FFFE, U+FFFF).
    Base64(String),
}

impl Body {
    /// Carries `bytes` as they are when SQS can take them, base64 otherwise.
    pub fn carry(bytes: Bytes) -> Self {
        if std::str::from_utf8(&bytes).is_ok() && sqs_accepts(&bytes) {
            Self::Raw(bytes)
        } else {
            Self::Base64(base64::engine::general_purpose::STANDARD.encode(&bytes))
        }
    }

    /// The text sent as the message body.
    pub fn as_text(&self) -> &str {
        match self {
            // Checked by `carry`, or by the ack path's UTF-8 check before routing.
            Self::Raw(bytes) => std::str::from_utf8(bytes).unwrap_or_default(),
            Self::Base64(text) => text,
        }
    }

    /// `Some("base64")` when the body is encoded.
    pub fn encoding(&self) -> Option<&'static str> {
        matches!(self, Self::Base64(_)).then_some("base64")
    }

    /// Size of the text sent (a raw body's bytes are its text: no UTF-8 check again).
    pub fn len(&self) -> usize {
        match self {
            Self::Raw(bytes) => bytes.len(),
            Self::Base64(text) => text.len(),
        }
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// True unless valid UTF-8 `bytes` hold a character outside SQS's allowed set. Valid JSON
/// text can hold only one kind of such character: the noncharacters U+FFFE and U+FFFF
/// (raw control characters are not valid JSON), both encoded as `EF BF BE|BF`.
pub fn sqs_accepts(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"\xEF\xBF").all(|at| !matches!(bytes.get(at + 2), Some(0xBE | 0xBF)))
}

/// One message for one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The queue it goes to.
    pub route: Route,
    /// The body, the exact bytes received.
    pub body: Body,
    /// Routing facts.
    pub attributes: Attributes,
    /// For FIFO queues: the message group (the entity the event is about, [`fifo_group`]).
    pub fifo_group_id: Option<String>,
    /// For FIFO queues: the deduplication ID (`PayloadId`).
    pub dedup_id: Option<String>,
    /// The X-Ray trace header it was accepted in, sent as the `AWSTraceHeader` message
    /// system attribute (not a message attribute: SQS and Lambda read it there).
    pub trace_header: Option<String>,
}

/// The routing facts a message carries beside its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Normalised event group (absent in quarantine).
    pub event_group: Option<EventGroup>,
    /// `Action` as sent.
    pub action: Option<String>,
    /// `PayloadId`.
    pub payload_id: Option<String>,
    /// The event's name, derived from the signed body ("Task completed").
    pub cf_event: Option<String>,
    /// A quarantined delivery's `X-CF-Event` header, unsigned, cut to
    /// [`MAX_ATTRIBUTE_TEXT`] bytes.
    pub unsigned_cf_event: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// Why the message was quarantined, cut to [`MAX_ATTRIBUTE_TEXT`] bytes.
    pub reason: Option<String>,
    /// The verified signature, 64 hex digits.
    pub signature: Option<String>,
    /// The replay run that sent it again, if any.
    pub replay_run: Option<String>,
    /// When that run sent it (ms since the Unix epoch).
    pub replayed_at_ms: Option<i64>,
}

impl Attributes {
    /// Every attribute as (name, value) text pairs, the body encoding included.
    pub fn pairs(&self, body: &Body) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::with_capacity(9);
        if let Some(group) = self.event_group {
            pairs.push((attr::EVENT_GROUP, group.as_str().to_owned()));
        }
        let texts = [
            (attr::ACTION, &self.action),
            (attr::PAYLOAD_ID, &self.payload_id),
            (attr::CF_EVENT, &self.cf_event),
            (attr::UNSIGNED_CF_EVENT, &self.unsigned_cf_event),
            (attr::REASON, &self.reason),
            (attr::SIGNATURE, &self.signature),
            (attr::REPLAY_RUN, &self.replay_run),
        ];
        for (name, value) in texts {
            if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
                pairs.push((name, value.clone()));
            }
        }
        pairs.push((attr::RECEIVED_AT, self.received_at_ms.to_string()));
        if let Some(at) = self.replayed_at_ms {
            pairs.push((attr::REPLAYED_AT, at.to_string()));
        }
        if let Some(encoding) = body.encoding() {
            pairs.push((attr::BODY_ENCODING, encoding.to_owned()));
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_refuses_only_the_two_noncharacters() {
        assert!(sqs_accepts("plain \u{FFFD} \u{E000} \u{10FFFF} 日本".as_bytes()));
        assert!(!sqs_accepts("a\u{FFFE}b".as_bytes()));
        assert!(!sqs_accepts("a\u{FFFF}".as_bytes()));
        assert!(sqs_accepts("\u{FFFD}".as_bytes()));
    }

    #[test]
    fn unsendable_bodies_travel_as_base64() {
        assert_eq!(Body::carry(Bytes::from_static(b"{}")), Body::Raw(Bytes::from_static(b"{}")));
        let body = Body::carry(Bytes::from_static(b"\xff{"));
        assert_eq!(body, Body::Base64("/3s=".into()));
        assert_eq!(body.encoding(), Some("base64"));
        assert!(matches!(Body::carry(Bytes::from("\"\u{FFFF}\"")), Body::Base64(_)));
    }

    #[test]
    fn an_entity_is_its_own_fifo_group_unless_sqs_would_refuse_it() {
        assert_eq!(fifo_group(" p-1 "), "p-1");
        assert_eq!(fifo_group("a!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~z"), "a!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~z");
        let hashed = [" ", "two words", "日本", &"x".repeat(MAX_FIFO_GROUP_LEN + 1)].map(fifo_group);
        for group in &hashed {
            assert!(group.starts_with("sha256:") && group.len() == 71, "{group}");
        }
        assert_ne!(hashed[1], hashed[2], "different entities stay different groups");
        assert_eq!(fifo_group("two words"), fifo_group(" two words "), "the same entity is the same group");
        assert_eq!(fifo_group(&"x".repeat(MAX_FIFO_GROUP_LEN)).len(), MAX_FIFO_GROUP_LEN);
    }

    #[test]
    fn the_fifo_group_ingest_sets_is_the_entity_the_consumer_guards() {
        use crate::events::ordering::Entity;
        use crate::events::*;
        fn check<E: Entity + serde::de::DeserializeOwned>(sample: &str) {
            let event: E = serde_json::from_str(sample).unwrap();
            let entity = event.entity().unwrap();
            let group = crate::events::routing::parse(sample.as_bytes()).unwrap().entity_id.unwrap();
            if E::GROUP == EventGroup::Session {
                // Coarser: one session's events wait for each other, whatever the work unit.
                assert!(entity.starts_with(&format!("{group}/")), "{entity} within {group}");
            } else {
                assert_eq!(fifo_group(&group), fifo_group(&entity), "{}", E::GROUP);
            }
        }
        check::<ProductEvent>(include_str!("../../events/product.json"));
        check::<SampleEvent>(include_str!("../../events/sample.json"));
        check::<UserEvent>(include_str!("../../events/user.json"));
        check::<TaskEvent>(include_str!("../../events/task.json"));
        check::<WorkUnitEvent>(include_str!("../../events/work-unit.json"));
        check::<JobEvent>(include_str!("../../events/job.json"));
        check::<SessionEvent>(include_str!("../../events/session.json"));
    }
}
