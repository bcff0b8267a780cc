//! Test helpers shared by every crate's suite (feature `testkit`): signed requests, a
//! recording publisher, and the ack-path contract of `ARCHITECTURE.md` as one case per row,
//! run against each transport with [`ack_contract_tests!`](crate::ack_contract_tests).

use std::sync::Mutex;
use std::time::Duration;

use http::Method;

use crate::config::{IngestConfig, ReplayWindow, RequiredHeader};
use crate::events::{EventGroup, Route};
use crate::filter::Filters;
use crate::message::{attr, Message};
use crate::queue::{PublishError, Publisher};
use crate::secret::{Secret, SecretEncoding, SecretSet};
use crate::signature::sign;

/// The secret the contract cases sign with.
pub const SECRET: &str = "contract-secret";
/// A second accepted secret (rotation).
pub const OLD_SECRET: &str = "contract-old-secret";

/// The valid sample body of a group, from `events/`.
pub fn sample(group: EventGroup) -> &'static str {
    match group {
        EventGroup::Product => include_str!("../../events/product.json"),
        EventGroup::Sample => include_str!("../../events/sample.json"),
        EventGroup::User => include_str!("../../events/user.json"),
        EventGroup::Task => include_str!("../../events/task.json"),
        EventGroup::WorkUnit => include_str!("../../events/work-unit.json"),
        EventGroup::Job => include_str!("../../events/job.json"),
        EventGroup::Session => include_str!("../../events/session.json"),
    }
}

/// `X-CF-Signature` of `body` under `secret` (UTF-8 key).
pub fn signature(secret: &str, body: &[u8]) -> String {
    sign(&Secret::from_text(secret, SecretEncoding::Utf8).expect("non-empty"), body)
}

/// The configuration of the contract cases: both secrets, every option off.
pub fn config() -> IngestConfig {
    IngestConfig::new(SecretSet::parse_list(&format!("{SECRET},{OLD_SECRET}"), SecretEncoding::Utf8).expect("valid"))
}

/// How the publisher behind a case behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublisherMode {
    /// Stores every message.
    Working,
    /// Refuses every message.
    Failing,
    /// Never answers (the time budget must end it).
    Hanging,
}

/// A publisher that records what it stored.
#[derive(Debug)]
pub struct RecordingPublisher {
    mode: PublisherMode,
    stored: Mutex<Vec<Message>>,
}

impl RecordingPublisher {
    /// A publisher behaving as `mode`.
    pub fn new(mode: PublisherMode) -> Self {
        Self { mode, stored: Mutex::new(Vec::new()) }
    }

    /// Every message stored so far.
    pub fn stored(&self) -> Vec<Message> {
        self.stored.lock().unwrap().clone()
    }
}

impl Publisher for RecordingPublisher {
    async fn publish(&self, message: Message) -> Result<(), PublishError> {
        match self.mode {
            PublisherMode::Working => {
                self.stored.lock().unwrap().push(message);
                Ok(())
            }
            PublisherMode::Failing => {
                Err(PublishError::Backend { route: message.route, detail: "injected failure".into() })
            }
            PublisherMode::Hanging => std::future::pending().await,
        }
    }
}

/// One row of the ack-path table, ready to send through any transport.
#[derive(Debug, Clone)]
pub struct Case {
    /// HTTP method.
    pub method: Method,
    /// Headers, in order (a name may repeat).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Ingest configuration.
    pub config: IngestConfig,
    /// Publisher behaviour.
    pub publisher: PublisherMode,
    /// The expected answer.
    pub expect: Expect,
}

/// What a case must get.
#[derive(Debug, Clone)]
pub struct Expect {
    /// HTTP status.
    pub status: u16,
    /// `status` in the JSON answer.
    pub status_word: &'static str,
    /// Acceptable `reason` codes (empty: none expected).
    pub reasons: &'static [&'static str],
    /// Where exactly one message must be stored; `None`: nothing stored.
    pub stored_in: Option<Route>,
}

/// What a transport saw when it ran a case.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP status.
    pub status: u16,
    /// `content-type` of the answer.
    pub content_type: Option<String>,
    /// The `allow` header, if any.
    pub allow: Option<String>,
    /// Answer body.
    pub body: Vec<u8>,
    /// Messages the publisher stored.
    pub stored: Vec<Message>,
}

impl Case {
    fn signed(body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        let sig = signature(SECRET, &body);
        Self {
            method: Method::POST,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("x-cf-event".into(), b"Task completed".to_vec()),
                ("x-cf-signature".into(), sig.into_bytes()),
            ],
            body,
            config: config(),
            publisher: PublisherMode::Working,
            expect: Expect { status: 200, status_word: "accepted", reasons: &[], stored_in: None },
        }
    }

    fn accepted_in(mut self, group: EventGroup) -> Self {
        self.expect.stored_in = Some(Route::Group(group));
        self
    }

    fn expect(mut self, status: u16, status_word: &'static str, reasons: &'static [&'static str]) -> Self {
        self.expect = Expect { status, status_word, reasons, stored_in: None };
        self
    }

    fn quarantined(self, reason: &'static [&'static str]) -> Self {
        let mut case = self.expect(200, "quarantined", reason);
        case.expect.stored_in = Some(Route::Unrouted);
        case
    }

    fn set_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.into(), value.into()));
        self
    }

    fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    /// Checks what a transport saw against the contract.
    pub fn assert(&self, seen: &Seen) {
        let e = &self.expect;
        let text = String::from_utf8_lossy(&seen.body);
        assert_eq!(seen.status, e.status, "status; answer {text}");
        assert_eq!(seen.content_type.as_deref(), Some("application/json"), "every answer is JSON");
        let json: serde_json::Value =
            serde_json::from_slice(&seen.body).unwrap_or_else(|_| panic!("answer is not JSON: {text}"));
        assert_eq!(json["status"], e.status_word, "status word; answer {text}");
        match json.get("reason").and_then(|r| r.as_str()) {
            Some(reason) => assert!(e.reasons.contains(&reason), "reason {reason:?} not in {:?}", e.reasons),
            None => assert!(e.reasons.is_empty(), "no reason given, expected one of {:?}", e.reasons),
        }
        for secret in [SECRET, OLD_SECRET] {
            assert!(!text.contains(secret), "the answer reveals a secret: {text}");
        }
        if seen.status == 405 {
            assert_eq!(seen.allow.as_deref(), Some("POST"));
        }
        match e.stored_in {
            None => assert!(seen.stored.is_empty(), "nothing may be stored, found {:?}", seen.stored),
            Some(route) => {
                assert_eq!(seen.stored.len(), 1, "exactly one message stored");
                let message = &seen.stored[0];
                assert_eq!(message.route, route);
                let pairs = message.attributes.pairs(&message.body);
                let get = |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
                assert!(get(attr::RECEIVED_AT).is_some());
                let signed = self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("x-cf-signature"));
                assert_eq!(
                    get(attr::SIGNATURE).map(str::to_ascii_lowercase),
                    signed.map(|(_, v)| {
                        let v = String::from_utf8_lossy(v).trim().to_ascii_lowercase();
                        v.strip_prefix("sha256=").map_or(v.clone(), str::to_owned)
                    }),
                    "the verified signature travels with the body, for the archive"
                );
                match route {
                    Route::Group(group) => {
                        assert_eq!(message.body.as_text().as_bytes(), &self.body[..], "the exact bytes are forwarded");
                        assert_eq!(json["payloadId"].as_str(), get(attr::PAYLOAD_ID));
                        assert_eq!(get(attr::EVENT_GROUP), Some(group.as_str()));
                        let action = get(attr::ACTION).expect("the action travels");
                        let name = crate::events::detail_type(group, action);
                        assert_eq!(get(attr::CF_EVENT), Some(name.as_str()), "named from the body, not the header");
                    }
                    Route::Unrouted => {
                        let reason = get(attr::REASON).expect("quarantine keeps its reason");
                        assert!(e.reasons.iter().any(|r| reason.starts_with(r)), "{reason}");
                        let kept = match &message.body {
                            crate::message::Body::Raw(bytes) => bytes.to_vec(),
                            crate::message::Body::Base64(text) => {
                                use base64::Engine as _;
                                assert_eq!(get(attr::BODY_ENCODING), Some("base64"));
                                base64::engine::general_purpose::STANDARD.decode(text).unwrap()
                            }
                        };
                        assert_eq!(kept, self.body, "the authentic bytes are kept");
                    }
                }
            }
        }
    }
}

macro_rules! contract_cases {
    ($($(#[$doc:meta])* $name:ident => $body:expr;)+) => {
        /// One function per row of the ack-path table.
        pub mod cases {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$doc])*
                pub fn $name() -> Case {
                    $body
                }
            )+
            /// Every case, by name.
            pub fn all() -> Vec<(&'static str, fn() -> Case)> {
                vec![$((stringify!($name), $name as fn() -> Case)),+]
            }
        }

        /// Generates one `#[tokio::test]` per contract case; `$run` is an
        /// `async fn(&Case) -> Seen` that sends the case through a transport.
        #[macro_export]
        macro_rules! ack_contract_tests {
            ($run:path) => {
                $(
                    #[tokio::test]
                    async fn $name() {
                        let case = $crate::testkit::cases::$name();
                        let seen = $run(&case).await;
                        case.assert(&seen);
                    }
                )+
            };
        }
    };
}

/// A minimal event of `group_name`, `offset_ms` from now.
fn envelope(group_name: &str, offset_ms: i64) -> String {
    format!(
        r#"{{"PayloadId":"8d1e4a7c-0b7e-4f55-9c43-3c1d5f0e2a11","EventGroupName":"{group_name}","Action":"Completed","EventDatetimeUtc":{}}}"#,
        crate::ack::now_ms() + offset_ms
    )
}

contract_cases! {
    /// A GET is refused before anything else: 405 with `Allow: POST`.
    method_get_is_405 => Case { method: Method::GET, ..Case::signed(sample(EventGroup::Task)) }.expect(405, "rejected", &["method-not-allowed"]);
    /// A PUT, even signed, is 405.
    method_put_is_405 => Case { method: Method::PUT, ..Case::signed(sample(EventGroup::Task)) }.expect(405, "rejected", &["method-not-allowed"]);
    /// One byte over the limit is 413, even correctly signed.
    body_over_limit_is_413 => {
        let mut case = Case::signed(format!("{:<1025}", sample(EventGroup::User)));
        case.config.max_body_bytes = 1024;
        case.expect(413, "rejected", &["body-too-large"])
    };
    /// A body exactly at the limit is accepted.
    body_at_limit_is_accepted => {
        let mut case = Case::signed(format!("{:<1024}", sample(EventGroup::User)));
        case.config.max_body_bytes = 1024;
        case.accepted_in(EventGroup::User)
    };
    /// No `X-CF-Signature`: 401.
    signature_missing_is_401 => Case::signed(sample(EventGroup::Task)).without_header("x-cf-signature").expect(401, "rejected", &["signature-missing"]);
    /// A signature with a non-hex digit: 401.
    signature_not_hex_is_401 => {
        let case = Case::signed(sample(EventGroup::Task));
        let bad = format!("z{}", &signature(SECRET, &case.body)[1..]);
        case.set_header("x-cf-signature", bad).expect(401, "rejected", &["signature-malformed"])
    };
    /// A truncated signature: 401.
    signature_truncated_is_401 => {
        let case = Case::signed(sample(EventGroup::Task));
        let short = signature(SECRET, &case.body)[..40].to_owned();
        case.set_header("x-cf-signature", short).expect(401, "rejected", &["signature-malformed"])
    };
    /// Two signature headers (a proxy may join them with a comma): 401.
    signature_repeated_is_401 => {
        let mut case = Case::signed(sample(EventGroup::Task));
        let sig = signature(SECRET, &case.body);
        case.headers.push(("x-cf-signature".into(), sig.into_bytes()));
        case.expect(401, "rejected", &["signature-repeated", "signature-malformed"])
    };
    /// Signed with a secret that is not configured: 401.
    signature_wrong_secret_is_401 => {
        let case = Case::signed(sample(EventGroup::Task));
        let forged = signature("not-the-secret", &case.body);
        case.set_header("x-cf-signature", forged).expect(401, "rejected", &["signature-mismatch"])
    };
    /// A body changed by one byte after signing: 401.
    body_tampered_is_401 => {
        let mut case = Case::signed(sample(EventGroup::Task));
        let at = case.body.len() / 2;
        case.body[at] ^= 0x20;
        case.expect(401, "rejected", &["signature-mismatch"])
    };
    /// Uppercase hex with a `sha256=` prefix verifies.
    signature_uppercase_with_prefix_is_accepted => {
        let case = Case::signed(sample(EventGroup::Task));
        let upper = format!("sha256={}", signature(SECRET, &case.body).to_uppercase());
        case.set_header("x-cf-signature", upper).accepted_in(EventGroup::Task)
    };
    /// The second configured secret verifies (rotation).
    signature_with_rotated_secret_is_accepted => {
        let case = Case::signed(sample(EventGroup::Job));
        let old = signature(OLD_SECRET, &case.body);
        case.set_header("x-cf-signature", old).accepted_in(EventGroup::Job)
    };
    /// The required custom header absent: 401.
    custom_header_missing_is_401 => {
        let mut case = Case::signed(sample(EventGroup::Task));
        case.config.required_header = Some(RequiredHeader::new("x-studio-token".try_into().unwrap(), b"studio-token"));
        case.expect(401, "rejected", &["custom-header-mismatch"])
    };
    /// The required custom header with another value: 401.
    custom_header_wrong_is_401 => {
        let mut case = Case::signed(sample(EventGroup::Task)).set_header("x-studio-token", "studio-token-2");
        case.config.required_header = Some(RequiredHeader::new("x-studio-token".try_into().unwrap(), b"studio-token"));
        case.expect(401, "rejected", &["custom-header-mismatch"])
    };
    /// The required custom header right: accepted.
    custom_header_right_is_accepted => {
        let mut case = Case::signed(sample(EventGroup::Task)).set_header("X-Studio-Token", "studio-token");
        case.config.required_header = Some(RequiredHeader::new("x-studio-token".try_into().unwrap(), b"studio-token"));
        case.accepted_in(EventGroup::Task)
    };
    /// Authentic but not JSON (the reference's job example, smart quotes and all): quarantined.
    invalid_json_is_quarantined => Case::signed(include_str!("../../events/reference/job.txt")).quarantined(&["invalid-json"]);
    /// Authentic JSON that is not an object: quarantined.
    not_an_object_is_quarantined => Case::signed("[1,2,3]").quarantined(&["not-object"]);
    /// Authentic object without `PayloadId`: quarantined.
    missing_envelope_field_is_quarantined => Case::signed(r#"{"EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1}"#).quarantined(&["missing-field"]);
    /// Authentic object with a group that does not exist: quarantined.
    unknown_group_is_quarantined => Case::signed(envelope("invoice", 0)).quarantined(&["unknown-group"]);
    /// Authentic bytes that are not UTF-8: quarantined as base64.
    not_utf8_is_quarantined_as_base64 => Case::signed(b"{\"PayloadId\":\"\xff\xfe\"}".to_vec()).quarantined(&["not-utf8"]);
    /// Older than the replay window: authentic, so kept in quarantine, never applied.
    event_too_old_is_quarantined => {
        let mut case = Case::signed(sample(EventGroup::Task));
        case.config.replay_window = Some(ReplayWindow { max_age: Duration::from_secs(3600), max_future: Duration::from_secs(300) });
        case.quarantined(&["event-too-old"])
    };
    /// Further in the future than the allowed skew: kept in quarantine.
    event_in_future_is_quarantined => {
        let mut case = Case::signed(envelope("task", 3_600_000));
        case.config.replay_window = Some(ReplayWindow { max_age: Duration::from_secs(3600), max_future: Duration::from_secs(300) });
        case.quarantined(&["event-in-future"])
    };
    /// Inside the replay window: accepted.
    event_inside_window_is_accepted => {
        let mut case = Case::signed(envelope("task", 0));
        case.config.replay_window = Some(ReplayWindow { max_age: Duration::from_secs(3600), max_future: Duration::from_secs(300) });
        case.accepted_in(EventGroup::Task)
    };
    /// A workspace not selected: 200, ignored, nothing stored.
    workspace_filtered_is_ignored => {
        let mut case = Case::signed(sample(EventGroup::Product));
        case.config.filters = Filters { workspaces: vec!["another-workspace".into()], ..Filters::default() };
        case.expect(200, "ignored", &["workspace-filtered"])
    };
    /// A group not selected: 200, ignored.
    group_filtered_is_ignored => {
        let mut case = Case::signed(sample(EventGroup::Product));
        case.config.filters = Filters { groups: vec![EventGroup::Task], ..Filters::default() };
        case.expect(200, "ignored", &["group-filtered"])
    };
    /// A task of a production step not selected: 200, ignored.
    step_filtered_is_ignored => {
        let mut case = Case::signed(sample(EventGroup::Task));
        case.config.filters = Filters { steps: vec!["postreview".into()], ..Filters::default() };
        case.expect(200, "ignored", &["step-filtered"])
    };
    /// Every filter passed: accepted.
    filters_passed_is_accepted => {
        let mut case = Case::signed(sample(EventGroup::Task));
        case.config.filters = Filters {
            workspaces: vec!["2C856B2F-ADED-4609-BF67-27009603B2B9".into()],
            groups: vec![EventGroup::Task],
            steps: vec!["photography".into()],
        };
        case.accepted_in(EventGroup::Task)
    };
    /// The queue refuses: 503, so the sender retries.
    queue_failure_is_503 => Case { publisher: PublisherMode::Failing, ..Case::signed(sample(EventGroup::Task)) }.expect(503, "unavailable", &["queue-unavailable"]);
    /// The queue never answers: 503 once the budget runs out.
    queue_timeout_is_503 => {
        let mut case = Case { publisher: PublisherMode::Hanging, ..Case::signed(sample(EventGroup::Task)) };
        case.config.enqueue_timeout = Duration::from_millis(200);
        case.expect(503, "unavailable", &["queue-unavailable"])
    };
    /// A product event lands in the `product` queue.
    group_product_is_routed => Case::signed(sample(EventGroup::Product)).accepted_in(EventGroup::Product);
    /// A sample event lands in the `sample` queue.
    group_sample_is_routed => Case::signed(sample(EventGroup::Sample)).accepted_in(EventGroup::Sample);
    /// A user event lands in the `user` queue.
    group_user_is_routed => Case::signed(sample(EventGroup::User)).accepted_in(EventGroup::User);
    /// A task event lands in the `task` queue.
    group_task_is_routed => Case::signed(sample(EventGroup::Task)).accepted_in(EventGroup::Task);
    /// A `work unit` event lands in the `work-unit` queue.
    group_work_unit_is_routed => Case::signed(sample(EventGroup::WorkUnit)).accepted_in(EventGroup::WorkUnit);
    /// A `Job` event lands in the `job` queue.
    group_job_is_routed => Case::signed(sample(EventGroup::Job)).accepted_in(EventGroup::Job);
    /// A session event lands in the `session` queue.
    group_session_is_routed => Case::signed(sample(EventGroup::Session)).accepted_in(EventGroup::Session);
}

/// `count` records of the task sample as ingest queues them (its `PayloadId` and action in
/// the attributes), each with the next `PayloadId` after `*last`: what the runner's
/// benchmark and its allocation count feed it.
pub fn queued_task_records(last: &mut u64, count: usize) -> Vec<crate::consumer::Record> {
    let body = sample(EventGroup::Task);
    (0..count)
        .map(|_| {
            *last += 1;
            let payload_id = format!("p-{last}");
            crate::consumer::Record {
                message_id: format!("m{last}"),
                body: body.replace("c02f0f73-1706-4973-9a4d-38007d6685e9", &payload_id),
                receive_count: 1,
                attributes: vec![(attr::PAYLOAD_ID.into(), payload_id), (attr::ACTION.into(), "completed".to_owned())],
                ..crate::consumer::Record::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{acknowledge, Delivery};

    /// The contract through the ack path itself, no transport.
    async fn direct(case: &Case) -> Seen {
        let mut headers = http::HeaderMap::new();
        for (name, value) in &case.headers {
            headers.append(
                http::HeaderName::try_from(name.as_str()).unwrap(),
                http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        let body = bytes::Bytes::from(case.body.clone());
        let publisher = RecordingPublisher::new(case.publisher);
        let delivery = Delivery {
            method: &case.method,
            headers: &headers,
            body: &body,
            received_at_ms: crate::ack::now_ms(),
            trace_header: None,
        };
        let answer = acknowledge(delivery, &case.config, &publisher).await.answer;
        Seen {
            status: answer.status().as_u16(),
            content_type: Some("application/json".into()),
            allow: answer.headers().iter().find(|(n, _)| *n == "allow").map(|(_, v)| v.to_string()),
            body: answer.body(),
            stored: publisher.stored(),
        }
    }

    ack_contract_tests!(direct);

    #[test]
    fn every_group_has_a_routing_case() {
        let names: Vec<&str> = cases::all().into_iter().map(|(n, _)| n).collect();
        for group in EventGroup::ALL {
            let name = format!("group_{}_is_routed", group.as_str().replace('-', "_"));
            assert!(names.contains(&name.as_str()), "{name}");
        }
    }
}
