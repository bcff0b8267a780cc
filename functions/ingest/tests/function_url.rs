//! The ack-path contract through the ingest Lambda handler, fed Function URL events.

use base64::Engine as _;
use cf_webhooks::testkit::{Case, RecordingPublisher, Seen};
use lambda_http::Body;
use serde_json::json;

/// A Function URL (payload format 2.0) event for a case, as AWS would build it: header
/// names lowercased, repeated headers joined with commas, binary bodies in base64.
fn function_url_event(case: &Case) -> String {
    let mut headers = serde_json::Map::new();
    for (name, value) in &case.headers {
        let value = String::from_utf8_lossy(value).into_owned();
        let name = name.to_ascii_lowercase();
        let joined = match headers.get(&name).and_then(|v| v.as_str()) {
            Some(previous) => format!("{previous},{value}"),
            None => value,
        };
        headers.insert(name, json!(joined));
    }
    headers.insert("host".into(), json!("abc123.lambda-url.eu-west-1.on.aws"));
    let (body, encoded) = match std::str::from_utf8(&case.body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(&case.body), true),
    };
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abc123",
            "http": {
                "method": case.method.as_str(),
                "path": "/",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "CreativeForce-Webhooks"
            },
            "requestId": "b9d1c4e0-6a2f-4f0b-8d7e-0c5b2a9e3f41",
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795687200000u64
        },
        "body": body,
        "isBase64Encoded": encoded
    })
    .to_string()
}

async fn through_lambda(case: &Case) -> Seen {
    let request = lambda_http::request::from_str(&function_url_event(case)).expect("a valid Function URL event");
    let publisher = RecordingPublisher::new(case.publisher);
    let response =
        cf_webhooks_ingest::handle(request, &case.config, &publisher, &cf_webhooks::secret::NoSecretStore).await;
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let body = match response.body() {
        Body::Binary(bytes) => bytes.clone(),
        Body::Text(text) => text.clone().into_bytes(),
        _ => Vec::new(),
    };
    Seen {
        status: response.status().as_u16(),
        content_type: header("content-type"),
        allow: header("allow"),
        body,
        stored: publisher.stored(),
    }
}

cf_webhooks::ack_contract_tests!(through_lambda);

/// The sample Function URL event in `events/lambda/` is signed with the development
/// secret and accepted.
#[tokio::test]
async fn the_sample_function_url_event_is_accepted() {
    let event = include_str!("../../../events/lambda/function-url.json");
    let request = lambda_http::request::from_str(event).unwrap();
    let secrets = cf_webhooks::secret::SecretSet::parse_list(cf_webhooks::DEV_SECRET, Default::default()).unwrap();
    let config = cf_webhooks::config::IngestConfig::new(secrets);
    let publisher = RecordingPublisher::new(cf_webhooks::testkit::PublisherMode::Working);
    let response = cf_webhooks_ingest::handle(request, &config, &publisher, &cf_webhooks::secret::NoSecretStore).await;
    assert_eq!(response.status(), 200);
    assert_eq!(publisher.stored().len(), 1);
    assert_eq!(publisher.stored()[0].route.as_str(), "task");
}
