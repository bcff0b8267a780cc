//! The catalogue of bad inputs: what a sender, a proxy or an attacker can send, and the
//! answer each gets from the ack path. One test per row; the table in RELIABILITY.md is
//! rendered from the same rows (`CFWH_WRITE_RELIABILITY=1` rewrites it).

use std::time::Duration;

use bytes::Bytes;
use cf_webhooks::ack::{acknowledge, now_ms, Delivery};
use cf_webhooks::config::{IngestConfig, ReplayWindow};
use cf_webhooks::events::Route;
use cf_webhooks::message::attr;
use cf_webhooks::message::Body;
use cf_webhooks::testkit::{self, PublisherMode, RecordingPublisher, SECRET};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// One bad input.
struct Row {
    /// What is sent.
    input: &'static str,
    method: Method,
    /// Header name and raw value, in order; `None` for the signature means "sign the body".
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    /// Signed over these bytes instead of the body, when set.
    signed: Option<Vec<u8>>,
    config: IngestConfig,
    /// Expected status, status word and reason.
    status: u16,
    word: &'static str,
    reason: Option<&'static str>,
    /// Where the message must be stored (nothing when `None`).
    stored: Option<Route>,
}

fn event(fields: &str) -> Vec<u8> {
    format!(
        r#"{{"PayloadId":"4b1f7f0e-5a43-4cb6-9e2a-0f3c8d7a9b10","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":{}{fields}}}"#,
        now_ms()
    )
    .into_bytes()
}

/// An event without the named envelope field; `with` adds fields (leading comma).
fn event_without(field: &str, with: &str) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for (k, v) in [
        ("PayloadId", serde_json::json!("4b1f7f0e-5a43-4cb6-9e2a-0f3c8d7a9b10")),
        ("EventGroupName", serde_json::json!("task")),
        ("Action", serde_json::json!("Completed")),
        ("EventDatetimeUtc", serde_json::json!(now_ms())),
    ] {
        if k != field {
            map.insert(k.into(), v);
        }
    }
    let text = serde_json::Value::Object(map).to_string();
    format!("{}{with}}}", &text[..text.len() - 1]).into_bytes()
}

fn row(input: &'static str, body: Vec<u8>) -> Row {
    Row {
        input,
        method: Method::POST,
        headers: vec![("content-type", b"application/json".to_vec())],
        body,
        signed: None,
        config: testkit::config(),
        status: 200,
        word: "accepted",
        reason: None,
        stored: Some(Route::Group(cf_webhooks::events::EventGroup::Task)),
    }
}

impl Row {
    fn expect(mut self, status: u16, word: &'static str, reason: &'static str) -> Self {
        self.status = status;
        self.word = word;
        self.reason = Some(reason);
        self.stored = match word {
            "quarantined" => Some(Route::Unrouted),
            _ => None,
        };
        self
    }

    fn accepted_in(mut self, route: Route) -> Self {
        self.stored = Some(route);
        self
    }

    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn signature(self, value: impl Into<Vec<u8>>) -> Self {
        self.header("x-cf-signature", value)
    }

    fn signed_over(mut self, bytes: Vec<u8>) -> Self {
        self.signed = Some(bytes);
        self
    }

    fn with_window(mut self) -> Self {
        self.config.replay_window =
            Some(ReplayWindow { max_age: Duration::from_secs(86400), max_future: Duration::from_secs(300) });
        self
    }

    fn limit(mut self, bytes: usize) -> Self {
        self.config.max_body_bytes = bytes;
        self
    }

    /// The headers sent: the given ones, plus a valid signature unless one is given.
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        let mut signed = false;
        for (name, value) in &self.headers {
            signed |= *name == "x-cf-signature" || *name == "no-signature";
            if *name == "no-signature" {
                continue;
            }
            map.append(HeaderName::from_static(name), HeaderValue::from_bytes(value).unwrap());
        }
        if !signed {
            let over = self.signed.as_deref().unwrap_or(&self.body);
            map.append("x-cf-signature", HeaderValue::from_str(&testkit::signature(SECRET, over)).unwrap());
        }
        map
    }
}

fn sig() -> String {
    testkit::signature(SECRET, b"unused")
}

macro_rules! catalogue {
    ($($name:ident => $row:expr;)+) => {
        fn catalogue() -> Vec<(&'static str, Row)> {
            vec![$((stringify!($name), $row)),+]
        }
        $(
            #[tokio::test]
            async fn $name() {
                check($row).await;
            }
        )+
    };
}

catalogue! {
    method_get => row("GET with a valid signed body", event("")).method(Method::GET).expect(405, "rejected", "method-not-allowed");
    method_head => row("HEAD", Vec::new()).method(Method::HEAD).expect(405, "rejected", "method-not-allowed");
    method_put => row("PUT", event("")).method(Method::PUT).expect(405, "rejected", "method-not-allowed");
    method_delete => row("DELETE", Vec::new()).method(Method::DELETE).expect(405, "rejected", "method-not-allowed");
    method_options => row("OPTIONS (a CORS preflight)", Vec::new()).method(Method::OPTIONS).expect(405, "rejected", "method-not-allowed");
    method_patch => row("PATCH", event("")).method(Method::PATCH).expect(405, "rejected", "method-not-allowed");
    signature_missing => row("no X-CF-Signature", event("")).header("no-signature", "").expect(401, "rejected", "signature-missing");
    signature_empty => row("X-CF-Signature empty", event("")).signature("").expect(401, "rejected", "signature-malformed");
    signature_twice => row("X-CF-Signature twice, both valid", event(""))
        .signature(testkit::signature(SECRET, &event(""))).signature(testkit::signature(SECRET, &event("")))
        .expect(401, "rejected", "signature-repeated");
    signature_63_digits => row("63 hex digits", event("")).signature(&sig()[..63]).expect(401, "rejected", "signature-malformed");
    signature_65_digits => row("65 hex digits", event("")).signature(format!("{}0", sig())).expect(401, "rejected", "signature-malformed");
    signature_not_hex => row("64 characters, one not hex", event("")).signature(format!("{}g", &sig()[..63])).expect(401, "rejected", "signature-malformed");
    signature_base64 => row("the right digest in base64", event("")).signature("UNbA81ZmPHvWnjLaWONCrjKHQ4+uEsKXuLDd+v01ce0=").expect(401, "rejected", "signature-malformed");
    signature_sha1_prefix => row("a `sha1=` prefix", event("")).signature(format!("sha1={}", sig())).expect(401, "rejected", "signature-malformed");
    signature_of_other_body => row("a valid signature of another body", event("")).signed_over(b"{}".to_vec()).expect(401, "rejected", "signature-mismatch");
    signature_other_secret => row("signed with another secret", event("")).signature(testkit::signature("guess", &event(""))).expect(401, "rejected", "signature-mismatch");
    signature_newline_appended => {
        let body = event("");
        row("a newline appended after signing (a proxy re-encoding)", [body.clone(), b"\n".to_vec()].concat()).signed_over(body).expect(401, "rejected", "signature-mismatch")
    };
    signature_reserialised => {
        let body = event("");
        let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&body).unwrap()).unwrap();
        row("the same JSON re-serialised after signing", pretty).signed_over(body).expect(401, "rejected", "signature-mismatch")
    };
    signature_uppercase => { let b = event(""); row("uppercase hex", b.clone()).signature(testkit::signature(SECRET, &b).to_uppercase()) };
    signature_prefixed_padded => { let b = event(""); row("`SHA256=` prefix and blanks around", b.clone()).signature(format!(" SHA256={}\t", testkit::signature(SECRET, &b))) };
    signature_non_ascii => row("a non-ASCII byte inside the signature", event("")).signature([sig().as_bytes()[..32].to_vec(), vec![0xff], sig().as_bytes()[33..].to_vec()].concat()).expect(401, "rejected", "signature-malformed");
    body_empty_signed => row("an empty body, correctly signed", Vec::new()).expect(200, "quarantined", "invalid-json");
    body_at_limit => { let mut b = event(",\"Pad\":\""); b.resize(1023, b'x'); b.push(b'"'); b.push(b'}'); row("a body exactly at the limit", b).limit(1025) };
    body_over_limit => row("one byte over the body limit", vec![b' '; 1025]).limit(1024).expect(413, "rejected", "body-too-large");
    body_declared_over_limit => row("Content-Length over the limit", event("")).header("content-length", "999999999").expect(413, "rejected", "body-too-large");
    body_64_kib => row("a 64 KiB event", event(&format!(",\"Notes\":\"{}\"", "n".repeat(64 * 1024))));
    encoding_latin1 => row("Latin-1 bytes (not UTF-8)", b"{\"PayloadId\":\"caf\xe9\"}".to_vec()).expect(200, "quarantined", "not-utf8");
    encoding_utf16 => row("UTF-16 text (its NUL bytes are UTF-8, but not JSON)", "{\"a\":1}".encode_utf16().flat_map(|u| u.to_le_bytes()).collect()).expect(200, "quarantined", "invalid-json");
    encoding_bom => row("a UTF-8 byte-order mark before the JSON", [b"\xEF\xBB\xBF".to_vec(), event("")].concat()).expect(200, "quarantined", "invalid-json");
    encoding_noncharacter => row("U+FFFF inside a string (refused by SQS)", event(",\"Note\":\"\u{FFFF}\""));
    encoding_escapes => row("escaped unicode and control characters", event(r#","Note":"caf\u00e9 \n \u0000 \ud83d\ude00""#));
    json_array => row("a JSON array", b"[1,2,3]".to_vec()).expect(200, "quarantined", "not-object");
    json_string => row("a JSON string", b"\"task\"".to_vec()).expect(200, "quarantined", "not-object");
    json_number => row("a JSON number", b"42".to_vec()).expect(200, "quarantined", "not-object");
    json_null => row("JSON null", b"null".to_vec()).expect(200, "quarantined", "not-object");
    json_truncated => { let b = event(""); row("truncated JSON", b[..b.len() - 5].to_vec()).expect(200, "quarantined", "invalid-json") };
    json_trailing => row("an object followed by a second one", [event(""), event("")].concat()).expect(200, "quarantined", "invalid-json");
    json_smart_quotes => row("the reference's job example (smart quotes)", include_bytes!("../../events/reference/job.txt").to_vec()).expect(200, "quarantined", "invalid-json");
    json_duplicate_key => row("PayloadId twice with two values", event(",\"PayloadId\":\"other\"")).expect(200, "quarantined", "invalid-field");
    json_deep_nesting_unknown => row("10,000 nested arrays in an unknown field (skipped without recursion)", event(&format!(",\"Deep\":{}{}", "[".repeat(10_000), "]".repeat(10_000))));
    json_deep_nesting_envelope => row("10,000 nested arrays as the PayloadId", event_without("PayloadId", &format!(",\"PayloadId\":{}{}", "[".repeat(10_000), "]".repeat(10_000)))).expect(200, "quarantined", "invalid-field");
    json_huge_unknown_number => row("a 400-digit number in an unknown field", event(&format!(",\"Big\":{}", "9".repeat(400))));
    field_payload_id_number => row("PayloadId as a number", event_without("PayloadId", ",\"PayloadId\":12345"));
    field_payload_id_object => row("PayloadId as an object", event_without("PayloadId", ",\"PayloadId\":{}")).expect(200, "quarantined", "invalid-field");
    field_payload_id_long => row("PayloadId of 200 characters", event_without("PayloadId", &format!(",\"PayloadId\":\"{}\"", "a".repeat(200)))).expect(200, "quarantined", "invalid-field");
    field_payload_id_space => row("PayloadId with a space", event_without("PayloadId", ",\"PayloadId\":\"a b\"")).expect(200, "quarantined", "invalid-field");
    field_payload_id_missing => row("no PayloadId", event_without("PayloadId", "")).expect(200, "quarantined", "missing-field");
    field_group_missing => row("no EventGroupName", event_without("EventGroupName", "")).expect(200, "quarantined", "missing-field");
    field_group_unknown => row("EventGroupName `invoice`", event_without("EventGroupName", ",\"EventGroupName\":\"invoice\"")).expect(200, "quarantined", "unknown-group");
    field_group_shouting => row("EventGroupName `WORK_UNIT`", event_without("EventGroupName", ",\"EventGroupName\":\"WORK_UNIT\"")).accepted_in(Route::Group(cf_webhooks::events::EventGroup::WorkUnit));
    field_group_number => row("EventGroupName as a number", event_without("EventGroupName", ",\"EventGroupName\":3")).expect(200, "quarantined", "unknown-group");
    field_action_missing => row("no Action", event_without("Action", "")).expect(200, "quarantined", "missing-field");
    field_action_number => row("Action as a number (kept as its text)", event_without("Action", ",\"Action\":7"));
    field_action_object => row("Action as an object", event_without("Action", ",\"Action\":{\"Name\":\"x\"}")).expect(200, "quarantined", "invalid-field");
    field_action_huge => row("Action of 10,000 characters", event_without("Action", &format!(",\"Action\":\"{}\"", "a".repeat(10_000)))).expect(200, "quarantined", "invalid-field");
    field_time_missing => row("no EventDatetimeUtc", event_without("EventDatetimeUtc", "")).expect(200, "quarantined", "missing-field");
    field_time_string => row("EventDatetimeUtc as a numeric string", event_without("EventDatetimeUtc", &format!(",\"EventDatetimeUtc\":\"{}\"", now_ms())));
    field_time_negative => row("EventDatetimeUtc negative", event_without("EventDatetimeUtc", ",\"EventDatetimeUtc\":-1")).expect(200, "quarantined", "invalid-field");
    field_time_fraction => row("EventDatetimeUtc with a fraction", event_without("EventDatetimeUtc", ",\"EventDatetimeUtc\":1.5")).expect(200, "quarantined", "invalid-field");
    field_time_beyond_i64 => row("EventDatetimeUtc beyond 64 bits", event_without("EventDatetimeUtc", ",\"EventDatetimeUtc\":99999999999999999999")).expect(200, "quarantined", "invalid-field");
    field_time_iso => row("EventDatetimeUtc as an ISO date", event_without("EventDatetimeUtc", ",\"EventDatetimeUtc\":\"2026-11-26T10:00:00Z\"")).expect(200, "quarantined", "invalid-field");
    window_too_old => row("an event two days old (replay window on)", event_without("EventDatetimeUtc", &format!(",\"EventDatetimeUtc\":{}", now_ms() - 2 * 86_400_000))).with_window().expect(200, "quarantined", "event-too-old");
    window_future => row("an event an hour in the future", event_without("EventDatetimeUtc", &format!(",\"EventDatetimeUtc\":{}", now_ms() + 3_600_000))).with_window().expect(200, "quarantined", "event-in-future");
    window_small_skew => row("an event four minutes in the future (within the skew)", event_without("EventDatetimeUtc", &format!(",\"EventDatetimeUtc\":{}", now_ms() + 240_000))).with_window();
    window_epoch => row("EventDatetimeUtc 0 (1970)", event_without("EventDatetimeUtc", ",\"EventDatetimeUtc\":0")).with_window().expect(200, "quarantined", "event-too-old");
    proxy_headers => row("proxy headers (X-Forwarded-*, Via) and a charset", event("")).header("x-forwarded-for", "203.0.113.1, 10.0.0.1").header("via", "1.1 proxy").header("content-type", "application/json; charset=utf-8");
    event_header_binary => row("X-CF-Event with non-UTF-8 bytes", event("")).header("x-cf-event", b"Task \xff completed".to_vec());
}

async fn check(row: Row) {
    let headers = row.header_map();
    let body = Bytes::from(row.body.clone());
    let publisher = RecordingPublisher::new(PublisherMode::Working);
    let delivery =
        Delivery { method: &row.method, headers: &headers, body: &body, received_at_ms: now_ms(), trace_header: None };
    let answer = acknowledge(delivery, &row.config, &publisher).await.answer;
    let json: serde_json::Value = serde_json::from_slice(&answer.body()).unwrap();
    assert_eq!(answer.status().as_u16(), row.status, "{}: {json}", row.input);
    assert_eq!(json["status"], row.word, "{}", row.input);
    assert_eq!(json["reason"].as_str(), row.reason, "{}", row.input);
    let stored = publisher.stored();
    match row.stored {
        None => assert!(stored.is_empty(), "{}: nothing may be stored", row.input),
        Some(route) => {
            assert_eq!(stored.len(), 1, "{}", row.input);
            assert_eq!(stored[0].route, route, "{}", row.input);
            let kept = match &stored[0].body {
                Body::Raw(bytes) => bytes.to_vec(),
                Body::Base64(text) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
                }
            };
            assert_eq!(kept, row.body, "{}: the exact bytes are kept", row.input);
            if let Some(cf_event) = headers.get("x-cf-event") {
                // The header is unsigned: a routed event's name comes from its body; a
                // quarantined one keeps the header under a name that says so.
                let pairs = stored[0].attributes.pairs(&stored[0].body);
                let get = |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
                if stored[0].route == Route::Unrouted {
                    let sent = cf_webhooks::message::attribute_text(&String::from_utf8_lossy(cf_event.as_bytes()));
                    assert_eq!(get(attr::UNSIGNED_CF_EVENT), Some(sent), "{}", row.input);
                } else {
                    assert_eq!(get(attr::CF_EVENT).as_deref(), Some("Task completed"), "{}", row.input);
                }
            }
        }
    }
}

fn table() -> String {
    let mut text = String::from("| # | input | answer | stored |\n|---|---|---|---|\n");
    for (i, (name, row)) in catalogue().into_iter().enumerate() {
        let stored = match row.stored {
            None => "nothing".to_owned(),
            Some(Route::Unrouted) => "`unrouted`, with the reason".to_owned(),
            Some(route) => format!("`{route}` queue"),
        };
        let reason = row.reason.map(|r| format!(" `{r}`")).unwrap_or_default();
        text.push_str(&format!(
            "| {} | {} (`{name}`) | {} {}{reason} | {stored} |\n",
            i + 1,
            row.input,
            row.status,
            row.word
        ));
    }
    text
}

#[test]
fn reliability_md_lists_every_row() {
    const BEGIN: &str = "<!-- bad-input catalogue: generated by shared/tests/bad_inputs.rs -->\n";
    const END: &str = "<!-- end of the catalogue -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../RELIABILITY.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let expected = table();
    let current = doc.split_once(BEGIN).and_then(|(_, rest)| rest.split_once(END)).map(|(t, _)| t.to_owned());
    if std::env::var_os("CFWH_WRITE_RELIABILITY").is_some() {
        let (before, after) = match doc.split_once(BEGIN) {
            Some((before, rest)) => {
                (before.to_owned(), rest.split_once(END).map(|(_, a)| a.to_owned()).unwrap_or_default())
            }
            None => (doc.clone() + "\n", String::new()),
        };
        std::fs::write(path, format!("{before}{BEGIN}{expected}{END}{after}")).unwrap();
        return;
    }
    assert!(catalogue().len() >= 40);
    assert_eq!(current.as_deref(), Some(expected.as_str()), "RELIABILITY.md is stale: run CFWH_WRITE_RELIABILITY=1 cargo test -p cf-webhooks --features testkit --test bad_inputs");
}

/// A replayed archived event goes through the ack path's own checks, but for the replay
/// window and the custom header, and carries its run.
#[test]
fn a_replay_is_verified_routed_and_marked_with_its_run() {
    use cf_webhooks::ack::{replay, valid_run_id, Answer};
    use cf_webhooks::config::RequiredHeader;
    let body =
        Bytes::from_static(br#"{"PayloadId":"p-r","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1}"#);
    let mut config = testkit::config();
    config.replay_window = Some(ReplayWindow { max_age: Duration::from_secs(60), max_future: Duration::from_secs(60) });
    config.required_header = Some(RequiredHeader::new(HeaderName::from_static("x-studio"), b"token"));
    let signature = testkit::signature(SECRET, &body);

    let message = replay(signature.as_bytes(), &body, now_ms(), "run-9", now_ms(), &config)
        .expect("a year-old event still replays");
    assert_eq!(message.route, Route::Group(cf_webhooks::events::EventGroup::Task));
    assert_eq!(message.attributes.replay_run.as_deref(), Some("run-9"));
    assert_eq!(message.dedup_id.as_deref(), Some("p-r:run-9"), "a FIFO queue keeps one per run");
    assert_eq!(message.body, Body::Raw(body.clone()));
    // The longest PayloadId and run: their deduplication ID is hashed to fit SQS's 128.
    let long_id = "p".repeat(128);
    let long = Bytes::from(format!(
        r#"{{"PayloadId":"{long_id}","EventGroupName":"task","Action":"Completed","EventDatetimeUtc":1}}"#
    ));
    let run = "r".repeat(cf_webhooks::ack::MAX_RUN_ID);
    let message =
        replay(testkit::signature(SECRET, &long).as_bytes(), &long, now_ms(), &run, now_ms(), &config).unwrap();
    let dedup = message.dedup_id.unwrap();
    assert!(dedup.len() <= 128 && dedup.starts_with("sha256:"), "{dedup}");

    let forged = testkit::signature("not-the-secret", &body);
    let refused = replay(forged.as_bytes(), &body, now_ms(), "run-9", now_ms(), &config).unwrap_err();
    assert!(matches!(refused, Answer::Rejected(_)), "{refused:?}");
    assert!(replay(b"", &body, now_ms(), "run-9", now_ms(), &config).is_err(), "no signature, no replay");
    let garbage = Bytes::from_static(b"{not json");
    let quarantined =
        replay(testkit::signature(SECRET, &garbage).as_bytes(), &garbage, now_ms(), "r", now_ms(), &config);
    assert!(matches!(quarantined, Err(Answer::Quarantined(_))), "only routable events replay");
    assert!(valid_run_id("20261129T121500Z-3fa2") && !valid_run_id("a b") && !valid_run_id("../x"));
}

fn decided(body: &[u8], event_header: &[u8]) -> cf_webhooks::message::Message {
    let config = testkit::config();
    let mut headers = HeaderMap::new();
    headers.insert("x-cf-signature", HeaderValue::from_str(&testkit::signature(SECRET, body)).unwrap());
    headers.insert("x-cf-event", HeaderValue::from_bytes(event_header).unwrap());
    let body = Bytes::copy_from_slice(body);
    let delivery = Delivery::post(&headers, &body);
    match cf_webhooks::ack::decide(delivery, &config) {
        cf_webhooks::ack::Decision::Publish { message, .. } => message,
        other => panic!("not stored: {other:?}"),
    }
}

/// `X-CF-Event` is not signed: the event's name is derived from the signed body, and a
/// quarantined delivery keeps the header under a name that says it is unsigned.
#[test]
fn the_event_name_comes_from_the_signed_body_never_from_the_unsigned_header() {
    let message = decided(&event(""), b"Product deleted");
    assert_eq!(message.attributes.cf_event.as_deref(), Some("Task completed"));
    let pairs = message.attributes.pairs(&message.body);
    assert!(!pairs.iter().any(|(_, v)| v.contains("Product deleted")), "{pairs:?}");

    let quarantined = decided(b"{not json", b"Product deleted");
    assert_eq!(quarantined.route, Route::Unrouted);
    assert_eq!(quarantined.attributes.cf_event, None);
    let pairs = quarantined.attributes.pairs(&quarantined.body);
    assert!(pairs.contains(&(attr::UNSIGNED_CF_EVENT, "Product deleted".to_owned())), "{pairs:?}");
}

/// SQS refuses attribute values with control characters or U+FFFE/U+FFFF: an authentic
/// event whose text holds them is stored with them replaced, never refused on every retry.
#[test]
fn attribute_values_are_always_valid_for_sqs() {
    let valid =
        |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
    let body = format!(
        r#"{{"PayloadId":"p-ctl","EventGroupName":"task","Action":"Comp\u0001le\u001fted\uffff","EventDatetimeUtc":{}}}"#,
        now_ms()
    );
    let message = decided(body.as_bytes(), b"x");
    assert_eq!(message.attributes.action.as_deref(), Some("Comp\u{FFFD}le\u{FFFD}ted\u{FFFD}"));
    let quarantined = decided(b"\x01{\xff", b"Task \xff\xfe done");
    for message in [message, quarantined] {
        for (name, value) in message.attributes.pairs(&message.body) {
            assert!(value.chars().all(valid), "{name}: {value:?}");
        }
    }
}

/// A flood of forged deliveries costs a handful of log lines, not one each.
#[test]
fn a_flood_of_identical_rejections_writes_a_few_log_lines_not_one_each() {
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let config = testkit::config();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let body = Bytes::from(event(""));
    let mut headers = HeaderMap::new();
    headers.insert("x-cf-signature", HeaderValue::from_static("00"));
    let rejected = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let publisher = RecordingPublisher::new(PublisherMode::Working);
            let mut rejected = 0;
            for _ in 0..500 {
                let delivery = Delivery::post(&headers, &body);
                let answer = acknowledge(delivery, &config, &publisher).await.answer;
                rejected += usize::from(matches!(answer, cf_webhooks::ack::Answer::Rejected(_)));
            }
            rejected
        })
    });
    assert_eq!(rejected, 500, "every one is still refused");
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines = text.lines().filter(|l| l.contains("delivery rejected")).count();
    // The budget is the process's (nextest runs each test in a process of its own).
    assert!(lines >= 1, "the first ones are logged: {text}");
    assert!(lines <= cf_webhooks::ack::REJECTIONS_LOGGED_PER_MINUTE as usize, "{lines} lines for 500 rejections");
}

#[test]
fn the_log_budget_counts_what_it_leaves_out_and_says_so_in_the_next_window() {
    use cf_webhooks::ack::{Admit, LogBudget};
    let budget = LogBudget::new(2, Duration::from_secs(60));
    let start = std::time::Instant::now();
    assert_eq!(budget.admit("signature-mismatch", start), Admit::Write { suppressed: 0 });
    assert_eq!(budget.admit("signature-mismatch", start), Admit::Write { suppressed: 0 });
    assert_eq!(budget.admit("signature-mismatch", start), Admit::Suppress);
    assert_eq!(budget.admit("signature-mismatch", start), Admit::Suppress);
    assert_eq!(budget.admit("body-too-large", start), Admit::Write { suppressed: 0 }, "per reason");
    let later = start + Duration::from_secs(61);
    assert_eq!(budget.admit("signature-mismatch", later), Admit::Write { suppressed: 2 });
}
