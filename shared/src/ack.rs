//! The ack path: from (method, headers, body, configuration) to an answer and at most
//! one message to publish. Checks run cheapest first; nothing unauthenticated is stored.
//!
//! [`decide`] is pure (it tests without a server and benchmarks without a network);
//! [`acknowledge`] adds the one side effect, publishing within the time budget, and is
//! what the Lambda and `cfwh dev` both call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;

use crate::config::IngestConfig;
use crate::events::routing::{self, Unroutable};
use crate::events::{EventGroup, Route};
pub use crate::filter::IgnoreReason;
use crate::message::{attribute_text, fifo_group, sqs_accepts, Attributes, Body, Message};
use crate::queue::{PublishError, Publisher};
use crate::signature::{Signature, SignatureFormatError, SIGNATURE_HEADER};

/// The header naming the event ("Task completed").
pub const EVENT_HEADER: &str = "x-cf-event";

/// A delivery as any transport sees it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The exact body bytes.
    pub body: &'a Bytes,
    /// When it arrived, milliseconds since the Unix epoch.
    pub received_at_ms: i64,
    /// The X-Ray trace it arrived in (`Root=1-…;Parent=…;Sampled=1`: the invocation's,
    /// which Lambda gives the runtime), carried to the queue as the message's
    /// `AWSTraceHeader` so that the consumer's work joins the same trace.
    pub trace_header: Option<&'a str>,
}

impl<'a> Delivery<'a> {
    /// A POST of `body` with `headers`, received now, in no trace.
    pub fn post(headers: &'a HeaderMap, body: &'a Bytes) -> Self {
        Self { method: &Method::POST, headers, body, received_at_ms: now_ms(), trace_header: None }
    }
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a POST.
    MethodNotAllowed,
    /// Larger than the configured limit.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No `X-CF-Signature`.
    SignatureMissing,
    /// More than one `X-CF-Signature`.
    SignatureRepeated,
    /// `X-CF-Signature` is not 64 hex digits.
    SignatureMalformed(SignatureFormatError),
    /// The signature matches no configured secret.
    SignatureMismatch,
    /// The required custom header is absent or wrong.
    CustomHeaderMismatch,
    /// The body could not be read to its end (the connection broke, a malformed chunk).
    BodyUnreadable,
}

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::SignatureMissing
            | Self::SignatureRepeated
            | Self::SignatureMalformed(_)
            | Self::SignatureMismatch
            | Self::CustomHeaderMismatch => StatusCode::UNAUTHORIZED,
            Self::BodyUnreadable => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable code for logs, metrics and the answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method-not-allowed",
            Self::BodyTooLarge { .. } => "body-too-large",
            Self::SignatureMissing => "signature-missing",
            Self::SignatureRepeated => "signature-repeated",
            Self::SignatureMalformed(_) => "signature-malformed",
            Self::SignatureMismatch => "signature-mismatch",
            Self::CustomHeaderMismatch => "custom-header-mismatch",
            Self::BodyUnreadable => "body-unreadable",
        }
    }

    /// A sentence for the sender; reveals no secret and no expected value.
    pub fn message(&self) -> String {
        match self {
            Self::MethodNotAllowed => "only POST is accepted".into(),
            Self::BodyTooLarge { limit } => format!("the body is larger than {limit} bytes"),
            Self::SignatureMissing => "the X-CF-Signature header is missing".into(),
            Self::SignatureRepeated => "the X-CF-Signature header appears more than once".into(),
            Self::SignatureMalformed(e) => format!("X-CF-Signature is malformed: {e}"),
            Self::SignatureMismatch => "X-CF-Signature does not match the body".into(),
            Self::CustomHeaderMismatch => "the required custom header is missing or wrong".into(),
            Self::BodyUnreadable => "the body could not be read to its end".into(),
        }
    }
}

/// What a delivery ends as, before and after publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Queued for its group's consumer.
    Accepted {
        /// `PayloadId`.
        payload_id: String,
        /// Its group.
        group: EventGroup,
    },
    /// Authentic, but filtered out by configuration.
    Ignored {
        /// `PayloadId`.
        payload_id: String,
        /// Which filter.
        reason: IgnoreReason,
    },
    /// Authentic but unroutable: kept in the `unrouted` queue.
    Quarantined(Unroutable),
    /// Refused.
    Rejected(Rejection),
    /// Not stored: the sender should retry.
    Unavailable(PublishError),
}

#[derive(Serialize)]
struct AnswerBody<'a> {
    status: &'a str,
    #[serde(rename = "payloadId", skip_serializing_if = "Option::is_none")]
    payload_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl Answer {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Accepted { .. } | Self::Ignored { .. } | Self::Quarantined(_) => StatusCode::OK,
            Self::Rejected(rejection) => rejection.status(),
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// `accepted`, `ignored`, `quarantined`, `rejected` or `unavailable`.
    pub fn status_word(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Ignored { .. } => "ignored",
            Self::Quarantined(_) => "quarantined",
            Self::Rejected(_) => "rejected",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// The reason code, for every answer but `accepted`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Accepted { .. } => None,
            Self::Ignored { reason, .. } => Some(reason.code()),
            Self::Quarantined(why) => Some(why.code()),
            Self::Rejected(rejection) => Some(rejection.code()),
            Self::Unavailable(_) => Some("queue-unavailable"),
        }
    }

    /// The short JSON body: `{"status":"accepted","payloadId":"…"}`, or a status with a
    /// reason code and a sentence.
    pub fn body(&self) -> Vec<u8> {
        let (payload_id, message) = match self {
            Self::Accepted { payload_id, .. } => (Some(payload_id.as_str()), None),
            Self::Ignored { payload_id, .. } => (Some(payload_id.as_str()), None),
            Self::Quarantined(why) => (None, Some(why.to_string())),
            Self::Rejected(rejection) => (None, Some(rejection.message())),
            Self::Unavailable(_) => (None, Some("the event could not be stored; retry later".to_owned())),
        };
        let body = AnswerBody { status: self.status_word(), payload_id, reason: self.reason(), message };
        serde_json::to_vec(&body).expect("answer bodies always serialize")
    }

    /// Extra headers: `Allow` on a 405, `Retry-After` on a 503.
    pub fn headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Rejected(Rejection::MethodNotAllowed) => &[("allow", "POST")],
            Self::Unavailable(_) => &[("retry-after", "60")],
            _ => &[],
        }
    }

    /// The HTTP response: status, `Content-Type: application/json`, the extra headers and
    /// the JSON body. Every transport answers with this.
    pub fn to_response(&self) -> http::Response<Vec<u8>> {
        let mut builder = http::Response::builder().status(self.status()).header("content-type", "application/json");
        for (name, value) in self.headers() {
            builder = builder.header(*name, *value);
        }
        builder.body(self.body()).expect("static status and headers are valid")
    }
}

/// The ack path's verdict: answer now, or publish this message first.
#[derive(Debug, Clone, PartialEq, Eq)]
// One per delivery, moved once: boxing the message would add an allocation to the ack
// path for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Decision {
    /// Nothing to store.
    Answer(Answer),
    /// Store `message`; answer `then` only once it is stored.
    Publish {
        /// What the queue of its route is to hold.
        message: Message,
        /// The answer after a successful publish.
        then: Answer,
    },
}

/// The checks a transport can make before it reads the body: the method, and a
/// `Content-Length` over the limit.
pub fn precheck(method: &Method, headers: &HeaderMap, config: &IngestConfig) -> Option<Answer> {
    if method != Method::POST {
        return Some(Answer::Rejected(Rejection::MethodNotAllowed));
    }
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > config.max_body_bytes as u64 => {
            Some(Answer::Rejected(Rejection::BodyTooLarge { limit: config.max_body_bytes }))
        }
        _ => None,
    }
}

/// The whole ack path, without side effects.
pub fn decide(delivery: Delivery<'_>, config: &IngestConfig) -> Decision {
    let reject = |r| Decision::Answer(Answer::Rejected(r));
    if let Some(answer) = precheck(delivery.method, delivery.headers, config) {
        return Decision::Answer(answer);
    }
    let body = delivery.body;
    if body.len() > config.max_body_bytes {
        return reject(Rejection::BodyTooLarge { limit: config.max_body_bytes });
    }

    let mut signatures = delivery.headers.get_all(SIGNATURE_HEADER).iter();
    let signature = match (signatures.next(), signatures.next()) {
        (None, _) => return reject(Rejection::SignatureMissing),
        (Some(_), Some(_)) => return reject(Rejection::SignatureRepeated),
        (Some(value), None) => match Signature::parse(value.as_bytes()) {
            Ok(signature) => signature,
            Err(e) => return reject(Rejection::SignatureMalformed(e)),
        },
    };
    if !config.secrets.with_accepted(|secrets| signature.verify(secrets, body)) {
        return reject(Rejection::SignatureMismatch);
    }
    if let Some(required) = &config.required_header {
        let mut values = delivery.headers.get_all(&required.name).iter();
        let ok = match (values.next(), values.next()) {
            (Some(value), None) => required.matches(value.as_bytes()),
            _ => false,
        };
        if !ok {
            return reject(Rejection::CustomHeaderMismatch);
        }
    }

    // Authentic from here on: whatever the body is, it is kept; what cannot be applied
    // (unroutable, or outside the replay window) is quarantined with the reason.
    let quarantine = |why: Unroutable| {
        // The header is the one name there is; unsigned, and kept as such.
        let header = delivery.headers.get(EVENT_HEADER);
        let message = Message {
            route: Route::Unrouted,
            body: Body::carry(body.clone()),
            attributes: Attributes {
                unsigned_cf_event: header.map(|v| attribute_text(&String::from_utf8_lossy(v.as_bytes()))),
                received_at_ms: delivery.received_at_ms,
                reason: Some(attribute_text(&format!("{}: {why}", why.code()))),
                signature: Some(signature.to_hex()),
                ..Attributes::default()
            },
            fifo_group_id: Some("unrouted".to_owned()),
            dedup_id: None,
            trace_header: delivery.trace_header.map(str::to_owned),
        };
        Decision::Publish { message, then: Answer::Quarantined(why) }
    };
    let routing = match routing::parse(body) {
        Ok(routing) => routing,
        Err(why) => return quarantine(why),
    };

    // An authentic event later than the window (Creative Force's retries end within about
    // 30 minutes; a captured delivery sent again) is kept but never applied.
    if let Some(window) = config.replay_window {
        let age_ms = delivery.received_at_ms.saturating_sub(routing.event_time_ms);
        if age_ms > millis(window.max_age) {
            return quarantine(Unroutable::TooOld { age_secs: age_ms / 1000, window_secs: window.max_age.as_secs() });
        }
        if -age_ms > millis(window.max_future) {
            let skew_secs = window.max_future.as_secs();
            return quarantine(Unroutable::InFuture { ahead_secs: -age_ms / 1000, skew_secs });
        }
    }

    if let Some(reason) = config.filters.check(&routing) {
        return Decision::Answer(Answer::Ignored { payload_id: routing.payload_id.into_owned(), reason });
    }

    let body = if sqs_accepts(body) { Body::Raw(body.clone()) } else { Body::carry(body.clone()) };
    let payload_id = routing.payload_id.into_owned();
    let message = Message {
        route: Route::Group(routing.group),
        body,
        attributes: Attributes {
            event_group: Some(routing.group),
            action: Some(attribute_text(&routing.action)),
            payload_id: Some(payload_id.clone()),
            cf_event: Some(attribute_text(&crate::events::detail_type(routing.group, &routing.action))),
            unsigned_cf_event: None,
            received_at_ms: delivery.received_at_ms,
            reason: None,
            signature: Some(signature.to_hex()),
            replay_run: None,
            replayed_at_ms: None,
        },
        fifo_group_id: Some(routing.entity_id.map_or_else(|| payload_id.clone(), |id| fifo_group(&id))),
        dedup_id: Some(payload_id.clone()),
        trace_header: delivery.trace_header.map(str::to_owned),
    };
    Decision::Publish { message, then: Answer::Accepted { payload_id, group: routing.group } }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// What [`acknowledge`] did: the answer, and how long the enqueue took when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The answer to give.
    pub answer: Answer,
    /// Time spent publishing (the `enqueue_ms` field of the metric line).
    pub enqueue: Option<Duration>,
}

/// The ack path with its side effect: decides, publishes within the configured time
/// budget when there is something to store, and logs the outcome. A publish that fails or
/// runs out of time answers 503, never 2xx.
pub async fn acknowledge<P: Publisher>(delivery: Delivery<'_>, config: &IngestConfig, publisher: &P) -> Acknowledged {
    acknowledge_observed(delivery, config, publisher, |_| {}).await
}

/// [`acknowledge`], calling `before_publish` with the answer a successful publish will
/// give just before publishing (`cfwh dev`'s inspector notes the delivery then, so that
/// what the consumers report about it never arrives first).
pub async fn acknowledge_observed<P: Publisher>(
    delivery: Delivery<'_>,
    config: &IngestConfig,
    publisher: &P,
    before_publish: impl FnOnce(&Answer),
) -> Acknowledged {
    let mut enqueue = None;
    let answer = match decide(delivery, config) {
        Decision::Answer(answer) => answer,
        Decision::Publish { message, then } => {
            before_publish(&then);
            let route = message.route;
            let budget = config.enqueue_timeout;
            let started = std::time::Instant::now();
            let published = tokio::time::timeout(budget, publisher.publish(message)).await;
            enqueue = Some(started.elapsed());
            match published {
                Ok(Ok(())) => then,
                Ok(Err(e)) => Answer::Unavailable(e),
                Err(_) => Answer::Unavailable(PublishError::Timeout { route, budget }),
            }
        }
    };
    log(&answer);
    Acknowledged { answer, enqueue }
}

fn log(answer: &Answer) {
    match answer {
        // Debug, not info: an accepted event is logged once, by its consumer's handler, and
        // counted by the `Accepted` metric; a line per delivery would double the log volume.
        Answer::Accepted { payload_id, group } => {
            tracing::debug!(payload_id, event_group = group.as_str(), status = "accepted", "delivery accepted")
        }
        Answer::Ignored { payload_id, reason } => {
            tracing::info!(payload_id, status = "ignored", reason = reason.code(), "delivery ignored by a filter")
        }
        Answer::Quarantined(why) => {
            tracing::warn!(status = "quarantined", reason = why.code(), detail = %why, "authentic delivery quarantined")
        }
        // A flood of junk (forged, oversized, wrong method) costs a log line each: the
        // first few per reason and minute are written, the rest counted and summed up in
        // the next one written (the `Rejected` metric still counts every one).
        Answer::Rejected(rejection) => match REJECTION_LOG.admit(rejection.code(), std::time::Instant::now()) {
            Admit::Write { suppressed: 0 } => tracing::warn!(
                status = "rejected",
                reason = rejection.code(),
                http_status = rejection.status().as_u16(),
                "delivery rejected"
            ),
            Admit::Write { suppressed } => tracing::warn!(
                status = "rejected",
                reason = rejection.code(),
                http_status = rejection.status().as_u16(),
                suppressed,
                "delivery rejected (and {suppressed} more with this reason in the last minute, not logged)"
            ),
            Admit::Suppress => {}
        },
        Answer::Unavailable(e) => {
            tracing::error!(status = "unavailable", error = %e, "delivery not stored; answering 503")
        }
    }
}

/// Log lines of identical rejections written per reason and window.
pub const REJECTIONS_LOGGED_PER_MINUTE: u32 = 10;

static REJECTION_LOG: LogBudget = LogBudget::new(REJECTIONS_LOGGED_PER_MINUTE, Duration::from_secs(60));

/// Whether to write a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write it, saying how many like it were left out since the last one written.
    Write {
        /// Left out since.
        suppressed: u32,
    },
    /// Leave it out (counted).
    Suppress,
}

/// At most `per_window` lines per key and window; the ones left out are counted and
/// reported by the next line written.
#[derive(Debug)]
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    keys: std::sync::Mutex<Vec<(&'static str, std::time::Instant, u32, u32)>>,
}

impl LogBudget {
    /// A budget of `per_window` lines per key and `window`.
    pub const fn new(per_window: u32, window: Duration) -> Self {
        Self { per_window, window, keys: std::sync::Mutex::new(Vec::new()) }
    }

    /// Whether a line for `key` at `now` is written.
    pub fn admit(&self, key: &'static str, now: std::time::Instant) -> Admit {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let at = match keys.iter().position(|(k, ..)| *k == key) {
            Some(at) => at,
            None => {
                keys.push((key, now, 0, 0));
                keys.len() - 1
            }
        };
        let (_, started, written, suppressed) = &mut keys[at];
        if now.duration_since(*started) >= self.window {
            *started = now;
            *written = 0;
        }
        if *written < self.per_window {
            *written += 1;
            Admit::Write { suppressed: std::mem::take(suppressed) }
        } else {
            *suppressed += 1;
            Admit::Suppress
        }
    }
}

/// The longest replay run ID: letters, digits, `-` and `_`, so it can sit in a key, a
/// header and an EventBridge resource as it is.
pub const MAX_RUN_ID: usize = 64;

/// True for a usable replay run ID.
pub fn valid_run_id(run: &str) -> bool {
    !run.is_empty()
        && run.len() <= MAX_RUN_ID
        && run.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An archived event sent again by replay run `run`: verified against the signature it
/// was archived with and the current secrets, routed, and marked with the run, exactly
/// as the ack path would (its filters included), but without the replay window, which
/// exists to refuse captured deliveries, not the studio's own replays, and without the
/// custom header, which the archive does not keep. The message says when the run sent it
/// (`replayed_at_ms`). Refused, the answer says why.
pub fn replay(
    signature: &[u8],
    body: &Bytes,
    received_at_ms: i64,
    run: &str,
    replayed_at_ms: i64,
    config: &IngestConfig,
) -> Result<Message, Answer> {
    let mut headers = HeaderMap::new();
    match http::HeaderValue::from_bytes(signature) {
        Ok(value) => {
            headers.insert(SIGNATURE_HEADER, value);
        }
        Err(_) => return Err(Answer::Rejected(Rejection::SignatureMissing)),
    }
    let config = IngestConfig { replay_window: None, required_header: None, ..config.clone() };
    let delivery = Delivery { method: &Method::POST, headers: &headers, body, received_at_ms, trace_header: None };
    match decide(delivery, &config) {
        Decision::Publish { mut message, then: Answer::Accepted { payload_id, .. } } => {
            message.attributes.replay_run = Some(run.to_owned());
            message.attributes.replayed_at_ms = Some(replayed_at_ms);
            message.dedup_id = Some(crate::message::fifo_deduplication_id(&format!("{payload_id}:{run}")));
            Ok(message)
        }
        Decision::Publish { then, .. } => Err(then),
        Decision::Answer(answer) => Err(answer),
    }
}
