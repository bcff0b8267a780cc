//! The inspector: `cfwh dev`'s page at `/_cfwh/`, on the same address as ingest. It keeps
//! the last [`KEPT`] deliveries in memory (headers, body, the answer given) with what the
//! consumers made of them (each record line: outcome, attempt, destinations), shows them
//! newest first, updates live over server-sent events, and sends a delivery again, signed
//! with the current secret, as it was or with a fresh `PayloadId`.
//!
//! Recording costs a lock and a few reference-counted clones per delivery: nothing is
//! parsed or formatted until a page asks. An open page is sent the rows that changed
//! every [`UPDATE_EVERY`], at most the [`KEPT`] rows, whatever the load: a person cannot
//! read faster, and `cfwh dev` does not slow down for it. The page is one HTML file
//! compiled in; no front-end build.
//!
//! It is for the developer's own machine: on a loopback address (the default) `cfwh dev`
//! answers only requests whose `Host` is a loopback name or one `--allow-host` names, on
//! every route ([`super::hosts`]: a web page elsewhere cannot reach it through DNS
//! rebinding), and a re-send must carry `X-Cfwh-Inspector`, which a cross-site form
//! cannot send. Signatures, the custom header's value and credentials are
//! masked in everything it shows.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use cf_webhooks::ack::{acknowledge_observed, Answer, Delivery};
use cf_webhooks::config::IngestConfig;
use cf_webhooks::consumer::RecordReport;
use cf_webhooks::queue::Publisher;
use cf_webhooks::signature::SIGNATURE_HEADER;
use serde_json::{json, Value};

/// The page's path.
pub const PATH: &str = "/_cfwh/";
/// Deliveries kept.
pub const KEPT: usize = 200;
/// Body bytes kept of each delivery; a longer body is shown cut and cannot be re-sent.
pub const BODY_KEPT: usize = 64 * 1024;
/// The header a re-send must carry (a cross-site form cannot set it).
pub const CSRF_HEADER: &str = "x-cfwh-inspector";
/// How often an open page is sent what changed.
pub const UPDATE_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

const PAGE: &str = include_str!("inspector.html");
/// Headers whose values are never shown.
const MASKED: [&str; 5] = ["authorization", "proxy-authorization", "cookie", "x-api-key", SIGNATURE_HEADER];

/// One delivery, as received and answered, and the consumers' lines about it. Cloned
/// (cheaply: the body is shared) out of the lock before anything is parsed or formatted.
#[derive(Clone)]
struct Entry {
    id: u64,
    received_at_ms: i64,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    body_len: usize,
    answer: Answer,
    payload_id: Option<String>,
    resent_from: Option<u64>,
    records: Vec<RecordReport>,
    /// When it last changed, in [`Kept::version`]'s count.
    version: u64,
    /// The `cfwh dev` process it belongs to: numbers start again at 1 after a restart,
    /// and a page still open then starts afresh.
    run: Arc<str>,
}

struct Kept {
    next_id: u64,
    /// Counts changes: a page asks for the rows changed since the last it saw.
    version: u64,
    entries: VecDeque<Entry>,
    /// The newest delivery of each `PayloadId`: where its record lines go.
    by_payload: HashMap<String, u64>,
}

/// What the page shows, shared by ingest (deliveries) and the consumers (record lines).
pub struct Inspector {
    kept: Mutex<Kept>,
    run: Arc<str>,
    /// Whether `cfwh dev` listens on a loopback address: only then is sending again on.
    loopback_only: bool,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("loopback_only", &self.loopback_only).finish_non_exhaustive()
    }
}

impl Inspector {
    /// An empty inspector; `loopback_only` when `cfwh dev` listens on a loopback address.
    pub fn new(loopback_only: bool) -> Arc<Self> {
        let kept = Kept { next_id: 1, version: 0, entries: VecDeque::with_capacity(KEPT), by_payload: HashMap::new() };
        Arc::new(Self { kept: Mutex::new(kept), run: uuid::Uuid::new_v4().to_string().into(), loopback_only })
    }

    fn kept(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes a delivery and the answer it got (or will get); returns its number.
    fn delivery(&self, delivery: &Delivery<'_>, answer: &Answer, resent_from: Option<u64>) -> u64 {
        let payload_id = match answer {
            Answer::Accepted { payload_id, .. } | Answer::Ignored { payload_id, .. } => Some(payload_id.clone()),
            _ => None,
        };
        let body_len = delivery.body.len();
        let mut kept = self.kept();
        let id = kept.next_id;
        kept.next_id += 1;
        kept.version += 1;
        let version = kept.version;
        if kept.entries.len() == KEPT {
            if let Some(old) = kept.entries.pop_front() {
                if let Some(p) = old.payload_id {
                    if kept.by_payload.get(&p) == Some(&old.id) {
                        kept.by_payload.remove(&p);
                    }
                }
            }
        }
        if let Some(p) = &payload_id {
            kept.by_payload.insert(p.clone(), id);
        }
        kept.entries.push_back(Entry {
            id,
            received_at_ms: delivery.received_at_ms,
            method: delivery.method.clone(),
            headers: delivery.headers.clone(),
            body: delivery.body.slice(..body_len.min(BODY_KEPT)),
            body_len,
            answer: answer.clone(),
            payload_id,
            resent_from,
            records: Vec::new(),
            version,
            run: self.run.clone(),
        });
        id
    }

    /// Takes a delivery through `acknowledge`, noting it before it is published (its
    /// record lines cannot come first) or, when nothing is published, with its answer.
    pub async fn acknowledge<P: Publisher>(
        &self,
        delivery: Delivery<'_>,
        config: &IngestConfig,
        publisher: &P,
        resent_from: Option<u64>,
    ) -> (u64, Answer) {
        let mut noted = None;
        let answer = acknowledge_observed(delivery, config, publisher, |provisional| {
            noted = Some(self.delivery(&delivery, provisional, resent_from));
        })
        .await
        .answer;
        match noted {
            Some(id) => {
                self.answered(id, &answer);
                (id, answer)
            }
            None => (self.delivery(&delivery, &answer, resent_from), answer),
        }
    }

    /// Sets the answer finally given to delivery `id` (a publish that failed: 503).
    fn answered(&self, id: u64, answer: &Answer) {
        let mut kept = self.kept();
        let version = kept.version + 1;
        let Some(entry) = kept.entries.iter_mut().rev().find(|e| e.id == id) else { return };
        if entry.answer == *answer {
            return;
        }
        entry.answer = answer.clone();
        entry.version = version;
        kept.version = version;
    }

    /// Notes a consumer's line about a record: it joins the newest delivery of its
    /// `PayloadId` still kept.
    pub fn record(&self, line: &RecordReport) {
        let Some(payload_id) = &line.payload_id else { return };
        let mut kept = self.kept();
        let Some(&id) = kept.by_payload.get(payload_id) else { return };
        kept.version += 1;
        let version = kept.version;
        let Some(entry) = kept.entries.iter_mut().rev().find(|e| e.id == id) else { return };
        entry.records.push(line.clone());
        entry.version = version;
    }

    /// The routes of the page and its API, under [`PATH`]; deliveries are sent again
    /// through `config` and `publisher`, as ingest would take them.
    pub fn router<P: Publisher + 'static>(self: &Arc<Self>, config: Arc<IngestConfig>, publisher: Arc<P>) -> Router {
        let app = App { inspector: self.clone(), config, publisher };
        Router::new()
            .route("/_cfwh", get(|| async { redirect_to_page() }))
            .route(PATH, get(page))
            .route("/_cfwh/api/deliveries", get(list::<P>))
            .route("/_cfwh/api/deliveries/{id}", get(detail::<P>))
            .route("/_cfwh/api/deliveries/{id}/resend", post(resend::<P>))
            .route("/_cfwh/api/events", get(events::<P>))
            .with_state(app)
    }
}

struct App<P> {
    inspector: Arc<Inspector>,
    config: Arc<IngestConfig>,
    publisher: Arc<P>,
}

impl<P> Clone for App<P> {
    fn clone(&self) -> Self {
        Self { inspector: self.inspector.clone(), config: self.config.clone(), publisher: self.publisher.clone() }
    }
}

/// A row of the list: everything but the headers and the body.
fn summary(entry: &Entry) -> Value {
    let body: Option<Value> = serde_json::from_slice(&entry.body).ok();
    let field = |name: &str| body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str).map(str::to_owned);
    let last = entry.records.last();
    json!({
        "id": entry.id,
        "received_at_ms": entry.received_at_ms,
        "method": entry.method.as_str(),
        "group": field("EventGroupName"),
        "action": field("Action"),
        "payload_id": entry.payload_id.clone().or_else(|| field("PayloadId")),
        "status": entry.answer.status().as_u16(),
        "answer": entry.answer.status_word(),
        "outcome": last.map(|r| r.outcome.word()),
        "attempts": entry.records.len(),
        "destinations": last.map(|r| serde_json::to_value(&r.destinations).unwrap_or(Value::Null)),
        "resent_from": entry.resent_from,
        "run": &*entry.run,
    })
}

/// The header's value as shown: masked when it is a secret.
fn shown(name: &HeaderName, value: &HeaderValue, config: &IngestConfig) -> String {
    let secret = MASKED.contains(&name.as_str()) || config.required_header.as_ref().is_some_and(|h| h.name == *name);
    if secret {
        format!("•••••••• (masked, {} bytes)", value.len())
    } else {
        String::from_utf8_lossy(value.as_bytes()).into_owned()
    }
}

fn detail_of(entry: &Entry, config: &IngestConfig) -> Value {
    let mut value = summary(entry);
    let headers: Vec<Value> =
        entry.headers.iter().map(|(name, v)| json!([name.as_str(), shown(name, v, config)])).collect();
    let body = match serde_json::from_slice::<Value>(&entry.body) {
        Ok(parsed) => serde_json::to_string_pretty(&parsed).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&entry.body).into_owned(),
    };
    let object = value.as_object_mut().expect("a summary is an object");
    object.insert("headers".into(), headers.into());
    object.insert("body".into(), body.into());
    object.insert("body_bytes".into(), entry.body_len.into());
    object.insert("resendable".into(), (entry.body_len <= BODY_KEPT && authentic(&entry.answer)).into());
    let answer = entry.answer.to_response().into_body();
    object.insert("answer_body".into(), String::from_utf8_lossy(&answer).into_owned().into());
    let records: Vec<Value> = entry.records.iter().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).collect();
    object.insert("records".into(), records.into());
    value
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [("content-type", "text/plain; charset=utf-8")], text).into_response()
}

fn redirect_to_page() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [("location", PATH)]).into_response()
}

async fn page() -> Response {
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"),
            ("cache-control", "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

async fn list<P: Publisher + 'static>(State(app): State<App<P>>) -> Response {
    let entries: Vec<Entry> = app.inspector.kept().entries.iter().rev().cloned().collect();
    axum::Json(entries.iter().map(summary).collect::<Vec<Value>>()).into_response()
}

async fn detail<P: Publisher + 'static>(State(app): State<App<P>>, Path(id): Path<u64>) -> Response {
    let found = app.inspector.kept().entries.iter().find(|e| e.id == id).cloned();
    match found {
        Some(entry) => axum::Json(detail_of(&entry, &app.config)).into_response(),
        None => plain(StatusCode::NOT_FOUND, "no such delivery (only the last 200 are kept)\n"),
    }
}

/// `{"fresh": true}` sends it with a new `PayloadId`.
#[derive(Debug, serde::Deserialize)]
struct Resend {
    #[serde(default)]
    fresh: bool,
}

async fn resend<P: Publisher + 'static>(State(app): State<App<P>>, Path(id): Path<u64>, request: Request) -> Response {
    if !request.headers().contains_key(CSRF_HEADER) {
        return plain(StatusCode::FORBIDDEN, "a re-send carries the X-Cfwh-Inspector header (the page sends it)\n");
    }
    // On another address the page is read-only: whoever reaches it could otherwise have
    // any body it holds signed with the real secret.
    if !app.inspector.loopback_only {
        return plain(StatusCode::FORBIDDEN, "sending again is for a cfwh dev on a loopback address only\n");
    }
    let wanted: Resend = match axum::body::to_bytes(request.into_body(), 1024).await {
        Ok(bytes) if bytes.is_empty() => Resend { fresh: false },
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(wanted) => wanted,
            Err(_) => return plain(StatusCode::BAD_REQUEST, "send {\"fresh\": true|false}\n"),
        },
        Err(_) => return plain(StatusCode::BAD_REQUEST, "send {\"fresh\": true|false}\n"),
    };
    let found = {
        let kept = app.inspector.kept();
        kept.entries
            .iter()
            .find(|e| e.id == id)
            .map(|e| (e.headers.clone(), e.body.clone(), e.body_len, authentic(&e.answer)))
    };
    let Some((mut headers, mut body, body_len, authentic)) = found else {
        return plain(StatusCode::NOT_FOUND, "no such delivery (only the last 200 are kept)\n");
    };
    // Never a signing oracle: only what already carried a valid signature is signed again.
    if !authentic {
        return plain(StatusCode::CONFLICT, "only deliveries whose signature was valid are sent again\n");
    }
    if body_len > BODY_KEPT {
        return plain(StatusCode::CONFLICT, "only the first 64 KiB of this body were kept: it cannot be sent again\n");
    }
    if wanted.fresh {
        body = match fresh_payload_id(&body) {
            Some(changed) => changed,
            None => return plain(StatusCode::CONFLICT, "the body is not a JSON object with a PayloadId\n"),
        };
    }
    let Some(secret) = app.config.secrets.accepted().into_iter().next() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "no secret to sign with\n");
    };
    let signature = cf_webhooks::signature::sign(&secret, &body);
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).expect("hex is a valid header value"));
    headers.remove(axum::http::header::CONTENT_LENGTH);
    let trace = cf_webhooks::xray::new_root_header();
    let delivery = Delivery { trace_header: Some(&trace), ..Delivery::post(&headers, &body) };
    let (new_id, _) = app.inspector.acknowledge(delivery, &app.config, &*app.publisher, Some(id)).await;
    let entry = app.inspector.kept().entries.iter().find(|e| e.id == new_id).cloned();
    axum::Json(entry.as_ref().map_or(Value::Null, summary)).into_response()
}

/// True when the delivery's signature (and custom header) were valid: it was accepted,
/// ignored by a filter, quarantined, or refused only for being unavailable.
fn authentic(answer: &Answer) -> bool {
    match answer {
        Answer::Accepted { .. } | Answer::Ignored { .. } | Answer::Quarantined(_) | Answer::Unavailable(_) => true,
        Answer::Rejected(_) => false,
    }
}

/// The body with a new random `PayloadId` (a UUID, as Creative Force sends).
fn fresh_payload_id(body: &[u8]) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    object.get("PayloadId")?;
    object.insert("PayloadId".into(), uuid::Uuid::new_v4().to_string().into());
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// Server-sent events: every [`UPDATE_EVERY`], one `rows` event with the rows changed
/// since the last one (a JSON array, oldest first), when any did.
async fn events<P: Publisher + 'static>(State(app): State<App<P>>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let mut ticks = tokio::time::interval(UPDATE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (app.inspector.clone(), 0u64, ticks);
    let stream = futures_util::stream::unfold(state, |(inspector, mut seen, mut ticks)| async move {
        loop {
            ticks.tick().await;
            let changed: Vec<Entry> = {
                let kept = inspector.kept();
                let entries = kept.entries.iter().filter(|e| e.version > seen).cloned().collect();
                seen = kept.version;
                entries
            };
            let changed: Vec<Value> = changed.iter().map(summary).collect();
            if !changed.is_empty() {
                let event = Event::default().event("rows").data(Value::from(changed).to_string());
                return Some((Ok::<_, std::convert::Infallible>(event), (inspector, seen, ticks)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// A body for the routes of the inspector when it is off.
pub fn off() -> Router {
    let off = || async { plain(StatusCode::NOT_FOUND, "the inspector is off (cfwh dev --inspector on turns it on)\n") };
    Router::new().route(PATH, get(off)).route("/_cfwh/{*rest}", get(off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_payload_id_is_a_new_uuid_and_nothing_else_changes() {
        let body = br#"{"PayloadId":"p-1","EventGroupName":"task","Action":"Completed","Data":{"TaskId":"t"}}"#;
        let fresh: Value = serde_json::from_slice(&fresh_payload_id(body).unwrap()).unwrap();
        let id = fresh["PayloadId"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok() && id != "p-1");
        assert_eq!(fresh["Data"]["TaskId"], "t");
        assert!(fresh_payload_id(b"[1]").is_none() && fresh_payload_id(b"{}").is_none());
    }
}
