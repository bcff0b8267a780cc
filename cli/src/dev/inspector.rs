//! The inspector: `cfwh dev`'s page at `/_cfwh/`, on the same address as ingest. It keeps
//! the last [`KEPT`] deliveries in memory (headers, body, the answer given) with what the
//! consumers made of them (each record line: outcome, attempt, destinations), shows them
//! newest first, updates live over server-sent events, and sends a delivery again, signed
//! with the current secret, as it was or with a fresh `PayloadId`.
//!
//! Recording moves the answered request in (no copy) under the lock of one slot of a
//! fixed ring, numbered by an atomic counter; a record line likewise: nothing is
//! copied, parsed or formatted until a page asks, and nothing grows. An open page is sent
//! the rows that changed every [`UPDATE_EVERY`], or every [`UPDATE_EVERY_BUSY`] under load,
//! at most the [`KEPT`] rows, whatever the load: a person cannot read faster, and
//! `cfwh dev` does not slow down for it. The page is one HTML file
//! compiled in; no front-end build.
//!
//! It is for the developer's own machine: on a loopback address (the default) `cfwh dev`
//! answers only requests whose `Host` is a loopback name or one `--allow-host` names, on
//! every route ([`super::hosts`]: a web page elsewhere cannot reach it through DNS
//! rebinding), and a re-send must carry `X-Cfwh-Inspector`, which a cross-site form
//! cannot send. Signatures, the custom header's value and credentials are
//! masked in everything it shows.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
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
/// How often under load: after an update of more than [`BUSY_ROWS`] rows, the next waits
/// this long. Every update copies and writes out up to [`KEPT`] rows; under load nearly
/// all of them change between two updates, faster than anyone reads them.
pub const UPDATE_EVERY_BUSY: std::time::Duration = std::time::Duration::from_secs(1);
/// More rows than this in one update is load.
pub const BUSY_ROWS: usize = KEPT / 4;

/// The wait before the next update of an open page, after one of `rows` rows.
pub fn next_update(rows: usize) -> std::time::Duration {
    if rows > BUSY_ROWS {
        UPDATE_EVERY_BUSY
    } else {
        UPDATE_EVERY
    }
}

const PAGE: &str = include_str!("inspector.html");
/// Headers whose values are never shown.
const MASKED: [&str; 5] = ["authorization", "proxy-authorization", "cookie", "x-api-key", SIGNATURE_HEADER];

/// One delivery, as received and answered. Moved in once answered (its headers and
/// body are the request's own, not copies); cloned out of its slot only when a page asks.
#[derive(Clone)]
struct Entry {
    id: u64,
    /// Taken before it was published: a record line about it always comes later in this
    /// count, which is how lines find their delivery.
    order: u64,
    received_at_ms: i64,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    body_len: usize,
    answer: Answer,
    resent_from: Option<u64>,
}

impl Entry {
    fn payload_id(&self) -> Option<&str> {
        match &self.answer {
            Answer::Accepted { payload_id, .. } | Answer::Ignored { payload_id, .. } => Some(payload_id),
            _ => None,
        }
    }
}

/// A consumer's line about a record, in the order of [`Inspector::order`].
#[derive(Clone)]
struct Line {
    order: u64,
    report: RecordReport,
}

/// One place of a ring: what it holds and how often it was written (a page compares
/// that count with the one it saw to find what changed).
struct Slot<T> {
    writes: u64,
    value: Option<T>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self { writes: 0, value: None }
    }
}

/// A fixed ring of slots, each behind its own lock: a writer takes a number from an
/// atomic counter and locks only the slot of that number, so ingest and the consumers
/// almost never wait on each other, and nothing grows.
struct Ring<T> {
    slots: Box<[Mutex<Slot<T>>]>,
}

impl<T: Clone> Ring<T> {
    fn new(size: usize) -> Self {
        Self { slots: (0..size).map(|_| Mutex::new(Slot::default())).collect() }
    }

    fn slot(&self, number: u64) -> MutexGuard<'_, Slot<T>> {
        let index = usize::try_from(number % self.slots.len() as u64).expect("an index below the ring's size");
        self.slots[index].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts `value`, numbered `number`, in its slot, unless a later number is there
    /// already (a writer that was overtaken by a whole ring).
    fn put(&self, number: u64, value: T, number_of: impl Fn(&T) -> u64) {
        let mut slot = self.slot(number);
        if slot.value.as_ref().is_some_and(|held| number_of(held) > number) {
            return;
        }
        slot.value = Some(value);
        slot.writes += 1;
    }

    /// Every slot's write count and a copy of what it holds.
    fn snapshot(&self) -> Vec<(u64, Option<T>)> {
        self.slots
            .iter()
            .map(|slot| {
                let slot = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                (slot.writes, slot.value.clone())
            })
            .collect()
    }
}

/// Record lines kept: a delivery usually gets one, a retried one a few.
const LINES_KEPT: usize = 4 * KEPT;

/// What the page shows, shared by ingest (deliveries) and the consumers (record lines).
/// Recording costs two atomic increments, one uncontended lock and a move; nothing is
/// copied, parsed or formatted until a page asks.
pub struct Inspector {
    next_id: AtomicU64,
    /// Orders deliveries and lines together.
    order: AtomicU64,
    deliveries: Ring<Entry>,
    lines: Ring<Line>,
    run: Arc<str>,
    /// Whether `cfwh dev` listens on a loopback address: only then is sending again on.
    loopback_only: bool,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("loopback_only", &self.loopback_only).finish_non_exhaustive()
    }
}

/// A delivery's number and place in the order, taken before it is published.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    id: u64,
    order: u64,
}

/// A delivery with the lines that joined it, as a page is shown it.
struct Row {
    entry: Entry,
    records: Vec<Line>,
    /// The `cfwh dev` process it belongs to: numbers start again at 1 after a restart,
    /// and a page still open then starts afresh.
    run: Arc<str>,
}

/// What a page saw last: each slot's write count.
struct Seen {
    deliveries: Vec<u64>,
    lines: Vec<u64>,
}

impl Inspector {
    /// An empty inspector; `loopback_only` when `cfwh dev` listens on a loopback address.
    pub fn new(loopback_only: bool) -> Arc<Self> {
        Arc::new(Self {
            next_id: AtomicU64::new(1),
            order: AtomicU64::new(1),
            deliveries: Ring::new(KEPT),
            lines: Ring::new(LINES_KEPT),
            run: uuid::Uuid::new_v4().to_string().into(),
            loopback_only,
        })
    }

    /// A number and a place in the order for a delivery about to be published.
    pub fn ticket(&self) -> Ticket {
        Ticket { id: self.next_id.fetch_add(1, Ordering::Relaxed), order: self.order.fetch_add(1, Ordering::Relaxed) }
    }

    /// Notes a delivery once answered, under `ticket` (taken before it was published) or
    /// a new one; returns its number.
    pub fn delivery(&self, ticket: Option<Ticket>, delivered: Delivered, answer: Answer) -> u64 {
        let Ticket { id, order } = ticket.unwrap_or_else(|| self.ticket());
        let Delivered { method, headers, body, received_at_ms, resent_from } = delivered;
        let body_len = body.len();
        let body = if body_len > BODY_KEPT { body.slice(..BODY_KEPT) } else { body };
        let entry = Entry { id, order, received_at_ms, method, headers, body, body_len, answer, resent_from };
        self.deliveries.put(id, entry, |held| held.id);
        id
    }

    /// Takes a delivery through `acknowledge`, then notes it with its answer; returns its
    /// number and the answer's response.
    pub async fn acknowledge<P: Publisher>(
        &self,
        delivered: Delivered,
        trace_header: Option<&str>,
        config: &IngestConfig,
        publisher: &P,
    ) -> (u64, axum::http::Response<Vec<u8>>) {
        let mut ticket = None;
        let delivery = Delivery {
            method: &delivered.method,
            headers: &delivered.headers,
            body: &delivered.body,
            received_at_ms: delivered.received_at_ms,
            trace_header,
        };
        let answer = acknowledge_observed(delivery, config, publisher, |_| ticket = Some(self.ticket())).await.answer;
        let response = answer.to_response();
        (self.delivery(ticket, delivered, answer), response)
    }

    /// Notes a consumer's line about a record: a page shows it with the newest delivery
    /// of its `PayloadId` noted before it.
    pub fn record(&self, report: RecordReport) {
        if report.payload_id.is_none() {
            return;
        }
        let order = self.order.fetch_add(1, Ordering::Relaxed);
        self.lines.put(order, Line { order, report }, |held| held.order);
    }

    /// The deliveries kept, newest first, each with its lines; and each slot's write
    /// count, for [`Self::changed`].
    fn rows(&self) -> (Vec<Row>, Seen) {
        let (delivery_writes, entries): (Vec<u64>, Vec<Option<Entry>>) = self.deliveries.snapshot().into_iter().unzip();
        let (line_writes, lines): (Vec<u64>, Vec<Option<Line>>) = self.lines.snapshot().into_iter().unzip();
        let mut entries: Vec<Entry> = entries.into_iter().flatten().collect();
        entries.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.id));
        let mut lines: Vec<Line> = lines.into_iter().flatten().collect();
        lines.sort_unstable_by_key(|line| line.order);
        // Each payload's deliveries, by their order.
        let mut by_payload: HashMap<&str, Vec<(u64, usize)>> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            if let Some(payload_id) = entry.payload_id() {
                by_payload.entry(payload_id).or_default().push((entry.order, index));
            }
        }
        let mut records: Vec<Vec<Line>> = vec![Vec::new(); entries.len()];
        for line in lines {
            let Some(payload_id) = line.report.payload_id.as_deref() else { continue };
            let joined = by_payload
                .get(payload_id)
                .and_then(|deliveries| deliveries.iter().filter(|(order, _)| *order < line.order).max_by_key(|d| d.0));
            if let Some(&(_, index)) = joined {
                records[index].push(line);
            }
        }
        let rows = entries
            .into_iter()
            .zip(records)
            .map(|(entry, records)| Row { entry, records, run: self.run.clone() })
            .collect();
        (rows, Seen { deliveries: delivery_writes, lines: line_writes })
    }

    /// The rows changed since `seen` (oldest first), and what is seen now: a row whose
    /// delivery's slot or one of whose lines' slots was written since.
    fn changed(&self, seen: &Seen) -> (Vec<Row>, Seen) {
        let (rows, now) = self.rows();
        let written = |before: &[u64], after: &[u64]| -> HashSet<usize> {
            (0..after.len()).filter(|&i| before.get(i) != Some(&after[i])).collect()
        };
        let (deliveries, lines) = (written(&seen.deliveries, &now.deliveries), written(&seen.lines, &now.lines));
        let slot = |number: u64, size: usize| (number % size as u64) as usize;
        let mut changed: Vec<Row> = rows
            .into_iter()
            .filter(|row| {
                deliveries.contains(&slot(row.entry.id, KEPT))
                    || row.records.iter().any(|line| lines.contains(&slot(line.order, LINES_KEPT)))
            })
            .collect();
        changed.reverse();
        (changed, now)
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

    /// The row of delivery `id`, while kept.
    fn row(&self, id: u64) -> Option<Row> {
        self.rows().0.into_iter().find(|row| row.entry.id == id)
    }
}

/// A delivery as the HTTP server handed it over, moved into the inspector once answered.
#[derive(Debug)]
pub struct Delivered {
    /// Its method.
    pub method: Method,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body (what was read of it).
    pub body: Bytes,
    /// When it arrived, ms since the epoch.
    pub received_at_ms: i64,
    /// The delivery it is a re-send of.
    pub resent_from: Option<u64>,
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
fn summary(row: &Row) -> Value {
    let entry = &row.entry;
    let body: Option<Value> = serde_json::from_slice(&entry.body).ok();
    let field = |name: &str| body.as_ref().and_then(|b| b.get(name)).and_then(Value::as_str).map(str::to_owned);
    let last = row.records.last().map(|line| &line.report);
    json!({
        "id": entry.id,
        "received_at_ms": entry.received_at_ms,
        "method": entry.method.as_str(),
        "group": field("EventGroupName"),
        "action": field("Action"),
        "payload_id": entry.payload_id().map(str::to_owned).or_else(|| field("PayloadId")),
        "status": entry.answer.status().as_u16(),
        "answer": entry.answer.status_word(),
        "outcome": last.map(|r| r.outcome.word()),
        "attempts": row.records.len(),
        "destinations": last.map(|r| serde_json::to_value(&r.destinations).unwrap_or(Value::Null)),
        // How the event differs from the documented payloads: names and types, no values.
        "drift": last.map(|r| r.drift.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
        "resent_from": entry.resent_from,
        "run": &*row.run,
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

fn detail_of(row: &Row, config: &IngestConfig) -> Value {
    let mut value = summary(row);
    let entry = &row.entry;
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
    let records: Vec<Value> =
        row.records.iter().map(|line| serde_json::to_value(&line.report).unwrap_or(Value::Null)).collect();
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
    let (rows, _) = app.inspector.rows();
    axum::Json(rows.iter().map(summary).collect::<Vec<Value>>()).into_response()
}

async fn detail<P: Publisher + 'static>(State(app): State<App<P>>, Path(id): Path<u64>) -> Response {
    match app.inspector.row(id) {
        Some(row) => axum::Json(detail_of(&row, &app.config)).into_response(),
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
    let found = app.inspector.row(id).map(|Row { entry: e, .. }| (e.headers, e.body, e.body_len, authentic(&e.answer)));
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
    let received_at_ms = cf_webhooks::ack::now_ms();
    let delivered = Delivered { method: Method::POST, headers, body, received_at_ms, resent_from: Some(id) };
    let (new_id, _) = app.inspector.acknowledge(delivered, Some(&trace), &app.config, &*app.publisher).await;
    axum::Json(app.inspector.row(new_id).as_ref().map_or(Value::Null, summary)).into_response()
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

/// Server-sent events: one `rows` event with the rows changed since the last one (a JSON
/// array, oldest first), when any did, every [`UPDATE_EVERY`] or, after a large one,
/// [`UPDATE_EVERY_BUSY`] ([`next_update`]).
async fn events<P: Publisher + 'static>(State(app): State<App<P>>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let nothing = Seen { deliveries: Vec::new(), lines: Vec::new() };
    let state = (app.inspector.clone(), nothing, UPDATE_EVERY);
    let stream = futures_util::stream::unfold(state, |(inspector, mut seen, mut wait)| async move {
        loop {
            tokio::time::sleep(wait).await;
            let (changed, now) = inspector.changed(&seen);
            seen = now;
            wait = next_update(changed.len());
            let changed: Vec<Value> = changed.iter().map(summary).collect();
            if !changed.is_empty() {
                let event = Event::default().event("rows").data(Value::from(changed).to_string());
                return Some((Ok::<_, std::convert::Infallible>(event), (inspector, seen, wait)));
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

    #[test]
    fn an_open_page_is_updated_less_often_under_load() {
        assert_eq!(next_update(0), UPDATE_EVERY);
        assert_eq!(next_update(BUSY_ROWS), UPDATE_EVERY);
        assert_eq!(next_update(BUSY_ROWS + 1), UPDATE_EVERY_BUSY);
        assert_eq!(next_update(KEPT), UPDATE_EVERY_BUSY);
        assert!(UPDATE_EVERY_BUSY > UPDATE_EVERY);
    }
}
