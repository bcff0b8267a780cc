//! Helpers of the ingest tests.

use base64::Engine as _;
use cf_webhooks::testkit::Case;
use serde_json::json;

/// A Function URL (payload format 2.0) event for a case, as AWS would build it: header
/// names lowercased, repeated headers joined with commas, binary bodies in base64.
pub fn function_url_event(case: &Case) -> String {
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

/// A signed POST of `body` with the contract secret, as a Lambda request.
#[allow(dead_code)]
pub fn signed_request(body: &str, secret: &str) -> lambda_http::Request {
    let mut case = cf_webhooks::testkit::cases::group_task_is_routed();
    case.body = body.as_bytes().to_vec();
    case.headers.retain(|(name, _)| name != "x-cf-signature");
    case.headers.push(("x-cf-signature".into(), cf_webhooks::testkit::signature(secret, body.as_bytes()).into_bytes()));
    lambda_http::request::from_str(&function_url_event(&case)).expect("a valid Function URL event")
}
