//! Forwarding an event to an HTTP endpoint of the studio's: the request it gets (the
//! exact bytes received, signed again with the *forward secret* so the receiver can
//! reuse Creative Force's own verification), and what each answer means.

use std::time::Duration;

use super::Verdict;
use crate::error::Invalid;
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

/// The forward's secret material: the key that signs each forward, and extra headers the
/// target needs (an `Authorization` token). Read from `CF_FORWARD_SECRET` or the Secrets
/// Manager secret `CF_FORWARD_SECRET_ARN`: either the signing key as plain text, or
/// `{"secret": "…", "headers": {"Authorization": "Bearer …"}}`. Never printed.
#[derive(Clone)]
pub struct ForwardSecret {
    /// Signs `X-CF-Signature`.
    pub secret: Secret,
    /// Sent with every forward, after ours (which they cannot replace).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl std::fmt::Debug for ForwardSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("ForwardSecret").field("secret", &self.secret).field("headers", &names).finish()
    }
}

/// The headers a forward always sets; extra headers may not replace them.
const OWN_HEADERS: [&str; 5] = ["content-type", "x-cf-event", "idempotency-key", "x-cf-signature", "x-cf-replay"];

/// The headers of the request's framing and of the connection (hop-by-hop), which the
/// HTTP client owns: an extra header setting one could cut the body short, smuggle a
/// second request to a proxy, or send the body to another virtual host.
const TRANSPORT_HEADERS: [&str; 9] =
    ["content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer", "upgrade", "expect", "host"];

/// Why an extra header may not be set, if it may not.
fn refused(header: &http::HeaderName) -> Option<&'static str> {
    let name = header.as_str();
    if OWN_HEADERS.contains(&name) {
        Some("is set by the forward itself")
    } else if TRANSPORT_HEADERS.contains(&name) || name.starts_with("proxy-") {
        Some("belongs to the HTTP connection, not to a forward's extra headers")
    } else {
        None
    }
}

impl ForwardSecret {
    /// Parses the secret's text; the errors never quote it.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        use crate::secret::SecretEncoding;
        let text = text.trim();
        if !text.starts_with('{') {
            let secret = Secret::from_text(text, SecretEncoding::Utf8).map_err(|e| Invalid(e.to_string()))?;
            return Ok(Self { secret, headers: Vec::new() });
        }
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Form {
            secret: String,
            #[serde(default)]
            headers: std::collections::BTreeMap<String, String>,
        }
        let form: Form = serde_json::from_str(text).map_err(|e| {
            Invalid(format!(
                "expected the key as text, or {{\"secret\": …, \"headers\": {{…}}}} ({})",
                e.classify_name()
            ))
        })?;
        let secret = Secret::from_text(&form.secret, SecretEncoding::Utf8).map_err(|e| Invalid(e.to_string()))?;
        let mut headers = Vec::with_capacity(form.headers.len());
        for (name, value) in form.headers {
            let header = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Invalid(format!("{name:?} is not a header name")))?;
            if let Some(why) = refused(&header) {
                return Err(Invalid(format!("the header {name} {why}")));
            }
            let mut value = http::HeaderValue::from_str(&value)
                .map_err(|_| Invalid(format!("the value of {name} is not a header value")))?;
            value.set_sensitive(true);
            headers.push((header, value));
        }
        Ok(Self { secret, headers })
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
            serde_json::error::Category::Data => "unexpected fields",
        }
    }
}

/// Forwards events to one URL: a `POST` each, concurrently, over reused connections,
/// redirects not followed, each bounded by a timeout.
#[cfg(feature = "forward")]
pub struct HttpForward {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        http_body_util::Full<bytes::Bytes>,
    >,
    url: http::Uri,
    secret: ForwardSecret,
    timeout: Duration,
}

#[cfg(feature = "forward")]
impl std::fmt::Debug for HttpForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpForward")
            .field("url", &redacted_url(&self.url))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "forward", test))]
use crate::outbound::redacted_url;

#[cfg(feature = "forward")]
impl HttpForward {
    /// A forward to `url` (http or https; https trusts the system's roots), signing with
    /// `secret`, each request bounded by `timeout` under the outbound policy
    /// ([`crate::outbound`]): a connect timeout, no redirect followed (hyper follows none).
    pub fn new(url: http::Uri, secret: ForwardSecret, timeout: Duration) -> Result<Self, Invalid> {
        let policy = crate::outbound::Policy::within(timeout);
        let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
        tcp.set_connect_timeout(Some(policy.connect));
        tcp.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| Invalid(format!("no root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            // Below the keep-alive of common servers (Node.js: 5 s), so an idle connection
            // is dropped here before the endpoint drops it.
            .pool_idle_timeout(Duration::from_secs(4))
            .build(https);
        Ok(Self { client, url, secret, timeout })
    }

    async fn forward(&self, event: &super::Outgoing<'_>) -> Verdict {
        let event_name = crate::events::detail_type(event.group, event.action);
        let own = headers(event.body, &event_name, event.payload_id, event.replay_run, &self.secret.secret);
        let body = bytes::Bytes::copy_from_slice(event.body);
        let request = || {
            let mut request = http::Request::post(self.url.clone());
            for (name, value) in &own {
                request = request.header(*name, value);
            }
            for (name, value) in &self.secret.headers {
                request = request.header(name, value);
            }
            request.body(http_body_util::Full::new(body.clone()))
        };
        let exchange = async {
            // A pooled connection the endpoint closed while idle fails the request after it
            // was written: one more try on a fresh connection (the Idempotency-Key makes a
            // repeat safe for the receiver).
            let mut answer = self.client.request(request().map_err(|e| e.to_string())?).await;
            if answer.is_err() {
                answer = self.client.request(request().map_err(|e| e.to_string())?).await;
            }
            let response = answer.map_err(|e| crate::logging::describe(&e))?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                // Delivered: the rest of the answer is not waited for.
                return Ok::<_, String>(Verdict::Delivered);
            }
            let retry_after =
                response.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
            Ok(verdict(status, retry_after.as_deref(), &start_of(response.into_body()).await))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => Verdict::retry(format!("{}: {e}", redacted_url(&self.url))),
            Err(_) => {
                Verdict::retry(format!("{}: no answer within {} ms", redacted_url(&self.url), self.timeout.as_millis()))
            }
        }
    }
}

/// No more of an answer than a reason quotes.
#[cfg(feature = "forward")]
async fn start_of(mut body: hyper::body::Incoming) -> Vec<u8> {
    use http_body_util::BodyExt as _;
    let mut start = Vec::new();
    while start.len() < QUOTED_ANSWER_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    start.extend_from_slice(data);
                }
            }
            _ => break,
        }
    }
    start
}

#[cfg(feature = "forward")]
#[async_trait::async_trait]
impl super::Destination for HttpForward {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn deliver(&self, events: &[super::Outgoing<'_>]) -> Vec<Verdict> {
        futures_util::future::join_all(events.iter().map(|e| self.forward(e))).await
    }
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
    fn the_forward_secret_is_text_or_json_with_headers_and_never_printed() {
        let plain = ForwardSecret::parse("  s3cret ").unwrap();
        assert!(plain.headers.is_empty());
        let expected = Secret::from_text("s3cret", crate::secret::SecretEncoding::Utf8).unwrap();
        assert_eq!(sign(&plain.secret, b"x"), sign(&expected, b"x"), "the text is the key, trimmed");
        let json = ForwardSecret::parse(r#"{"secret":"k","headers":{"Authorization":"Bearer tok-123"}}"#).unwrap();
        assert_eq!(json.headers.len(), 1);
        assert_eq!(json.headers[0].0.as_str(), "authorization");
        let shown = format!("{json:?}");
        assert!(!shown.contains("tok-123") && !shown.contains("\"k\""), "{shown}");
        let err = ForwardSecret::parse(r#"{"secret":"k","headers":{"X-CF-Signature":"forged"}}"#).unwrap_err().0;
        assert!(err.contains("set by the forward itself"), "{err}");
        let err = ForwardSecret::parse(r#"{"secret":"tok-456","extra":1}"#).unwrap_err().0;
        assert!(!err.contains("tok-456"), "{err}");
        assert!(ForwardSecret::parse(r#"{"secret":"k","headers":{"Bad Name":"v"}}"#).is_err());
    }

    #[test]
    fn extra_headers_may_not_set_framing_hop_by_hop_or_host() {
        for name in [
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "TE",
            "Trailer",
            "Upgrade",
            "Expect",
            "Host",
            "Proxy-Authorization",
            "proxy-connection",
        ] {
            let text = format!(r#"{{"secret":"k","headers":{{"{name}":"v"}}}}"#);
            let err = ForwardSecret::parse(&text).unwrap_err().0;
            assert!(err.contains("belongs to the HTTP connection"), "{name}: {err}");
        }
        let fine = ForwardSecret::parse(r#"{"secret":"k","headers":{"X-Tenant":"a","Authorization":"b"}}"#);
        assert_eq!(fine.unwrap().headers.len(), 2);
    }

    #[test]
    fn urls_in_logs_lose_their_query_and_credentials() {
        let url: http::Uri = "https://studio.example:8443/hooks/cf?token=abc".parse().unwrap();
        assert_eq!(redacted_url(&url), "https://studio.example:8443/hooks/cf");
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
