//! The whole ack path on any method, headers and bytes. Invariants: no panic, and no 2xx
//! answer (nothing stored) unless the request carried a valid signature of its body.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use cf_webhooks::ack::{decide, Answer, Decision, Delivery};
use cf_webhooks::testkit::{self, SECRET};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    /// 0: a valid signature of the body; 1: none; otherwise the raw header below.
    signature: u8,
    raw_signature: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    event_header: Option<Vec<u8>>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let method = [Method::POST, Method::GET, Method::PUT, Method::OPTIONS][input.method as usize % 4].clone();
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    if let Some(value) = input.event_header.as_deref().and_then(|v| HeaderValue::from_bytes(v).ok()) {
        headers.insert("x-cf-event", value);
    }
    match input.signature {
        0 => {
            headers.insert("x-cf-signature", HeaderValue::from_str(&testkit::signature(SECRET, &input.body)).unwrap());
        }
        1 => {}
        _ => {
            if let Ok(value) = HeaderValue::from_bytes(&input.raw_signature) {
                headers.append("x-cf-signature", value);
            }
        }
    }
    let mut config = testkit::config();
    config.max_body_bytes = 64 * 1024;
    let body = Bytes::from(input.body);
    let delivery = Delivery {
        method: &method,
        headers: &headers,
        body: &body,
        received_at_ms: 1_700_000_000_000,
        trace_header: None,
    };
    let decision = decide(delivery, &config);

    let answer = match &decision {
        Decision::Answer(answer) | Decision::Publish { then: answer, .. } => answer,
    };
    if answer.status().is_success() || matches!(decision, Decision::Publish { .. }) {
        let signatures: Vec<_> = headers.get_all("x-cf-signature").iter().collect();
        assert_eq!(signatures.len(), 1, "2xx without exactly one signature: {answer:?}");
        let valid = [testkit::signature(SECRET, &body), testkit::signature(testkit::OLD_SECRET, &body)];
        let sent = String::from_utf8_lossy(signatures[0].as_bytes()).trim().to_ascii_lowercase();
        let sent = sent.strip_prefix("sha256=").unwrap_or(&sent).to_owned();
        assert!(valid.contains(&sent), "2xx for a body not signed with a configured secret");
        assert!(method == Method::POST && body.len() <= config.max_body_bytes);
    }
    if let Answer::Rejected(rejection) = answer {
        assert!(!answer.status().is_success(), "{rejection:?}");
    }
    let _ = answer.body();
});
