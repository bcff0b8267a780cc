//! The HTTP routes of `cfwh dev`: ingest on every path, the replay endpoint, and the
//! inspector's pages.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use cf_webhooks::ack::{acknowledge, now_ms, precheck, Answer, Delivery, Rejection};
use cf_webhooks::config::IngestConfig;
use cf_webhooks::queue::Publisher;

use super::hosts::Hosts;
use super::inspector::Delivered;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// The path of `cfwh dev`'s replay endpoint (`cfwh replay --dir … --url …`).
pub const REPLAY_PATH: &str = "/_cfwh/replay";

/// The ingest HTTP service over any publisher: every path, every method, but for the
/// replay endpoint at [`REPLAY_PATH`] and the inspector's paths under `/_cfwh/`; any
/// `Host`, no inspector, tracing on.
pub fn ingest_router<P: Publisher + 'static>(config: Arc<IngestConfig>, publisher: Arc<P>) -> Router {
    ingest_router_with(config, publisher, Front::default())
}

/// What stands in front of ingest in `cfwh dev`.
#[derive(Debug, Clone)]
pub struct Front {
    /// Notes every delivery and serves its page (`--inspector`).
    pub inspector: Option<Arc<super::inspector::Inspector>>,
    /// The `Host` names answered to, on every route (`--allow-host`).
    pub hosts: Hosts,
    /// Each delivery joins its caller's X-Ray trace or starts one, which its record lines
    /// name, as Lambda with active tracing does (`--tracing`).
    pub tracing: bool,
}

impl Default for Front {
    fn default() -> Self {
        Self { inspector: None, hosts: Hosts::any(), tracing: true }
    }
}

/// [`ingest_router`] behind `front`: the inspector noting every delivery and serving its
/// page, on every route to the `Host` names of `hosts` only.
pub fn ingest_router_with<P: Publisher + 'static>(
    config: Arc<IngestConfig>,
    publisher: Arc<P>,
    front: Front,
) -> Router {
    let Front { inspector, hosts, tracing } = front;
    let (replay_config, replay_publisher) = (config.clone(), publisher.clone());
    let pages = match &inspector {
        Some(inspector) => inspector.router(config.clone(), publisher.clone()),
        None => super::inspector::off(),
    };
    Router::new()
        .merge(pages)
        .route(
            REPLAY_PATH,
            axum::routing::any(move |request: Request| {
                let (config, publisher) = (replay_config.clone(), replay_publisher.clone());
                async move { replay_endpoint(request, &config, &*publisher).await }
            }),
        )
        .fallback(move |request: Request| {
            let (config, publisher, inspector) = (config.clone(), publisher.clone(), inspector.clone());
            async move { ingest(request, &config, &*publisher, inspector.as_deref(), tracing).await }
        })
        .layer(hosts)
}

/// Takes an archived event back in, for a replay run: from this machine only, with the
/// signature it was archived with (verified against the current secrets, as ingest
/// would), marked with the run (`X-CF-Replay`) and the run's time (`X-CF-Replayed-At`).
/// Never an unsigned way in.
async fn replay_endpoint<P: Publisher>(request: Request, config: &IngestConfig, publisher: &P) -> Response {
    use axum::extract::ConnectInfo;
    let plain = |status: u16, text: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Body::from(text))
            .expect("static status and header")
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    // A tunnel or proxy on this machine makes every caller look local: what came through
    // one (it says so) is refused too.
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| request.headers().contains_key(*h));
    if !peer.is_some_and(|p| p.ip().is_loopback()) || proxied {
        return plain(403, "replays are taken from this machine only\n".into());
    }
    if request.method() != axum::http::Method::POST {
        return plain(405, "POST an archived body\n".into());
    }
    let (run, received_at, replayed_at, signature) = {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let signature = header("x-cf-signature").unwrap_or_default();
        (header("x-cf-replay"), header("x-cf-received-at"), header("x-cf-replayed-at"), signature)
    };
    let Some(run) = run.filter(|r| cf_webhooks::ack::valid_run_id(r)) else {
        return plain(400, "X-CF-Replay must name the run: 1 to 64 letters, digits, - or _\n".into());
    };
    let received_at = received_at.and_then(|r| r.parse().ok()).unwrap_or_else(now_ms);
    // The run's one time (`cfwh replay` sends it with every delivery of the run), never
    // later than now: every delivery of a run is held to the memory from there.
    let now = now_ms();
    let replayed_at = match replayed_at.map(|at| at.trim().parse::<i64>()) {
        None => now,
        Some(Ok(at)) => at.min(now),
        Some(Err(_)) => return plain(400, "X-CF-Replayed-At must be the run's time, ms since the epoch\n".into()),
    };
    let body = match Limited::new(request.into_body(), config.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return respond(&Answer::Rejected(Rejection::BodyTooLarge { limit: config.max_body_bytes })),
    };
    match cf_webhooks::ack::replay(signature.as_bytes(), &body, received_at, &run, replayed_at, config) {
        Err(answer) => respond(&answer),
        Ok(message) => match publisher.publish(message).await {
            Ok(()) => plain(202, format!("replayed in run {run}\n")),
            Err(e) => plain(503, format!("{e}\n")),
        },
    }
}

async fn ingest<P: Publisher>(
    request: Request,
    config: &IngestConfig,
    publisher: &P,
    inspector: Option<&super::inspector::Inspector>,
    tracing: bool,
) -> Response {
    let received_at_ms = now_ms();
    let (parts, body) = request.into_parts();
    if let Some(answer) = precheck(&parts.method, &parts.headers, config) {
        return respond(&answer);
    }
    // Never buffer more than the limit, whatever Content-Length claimed.
    let body = match Limited::new(body, config.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return respond(&Answer::Rejected(Rejection::BodyTooLarge { limit: config.max_body_bytes }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "request body could not be read");
            return respond(&Answer::Rejected(Rejection::BodyUnreadable));
        }
    };
    // As Lambda would: the caller's X-Ray trace, or a new one, which the record lines name.
    let trace = tracing.then(|| dev_trace(&parts.headers));
    match inspector {
        Some(inspector) => {
            let delivered =
                Delivered { method: parts.method, headers: parts.headers, body, received_at_ms, resent_from: None };
            inspector.acknowledge(delivered, trace.as_deref(), config, publisher).await.1.map(Body::from)
        }
        None => {
            let delivery = Delivery {
                method: &parts.method,
                headers: &parts.headers,
                body: &body,
                received_at_ms,
                trace_header: trace.as_deref(),
            };
            respond(&acknowledge(delivery, config, publisher).await.answer)
        }
    }
}

/// The trace a delivery to `cfwh dev` belongs to: its `X-Amzn-Trace-Id` when that is a
/// valid X-Ray header, otherwise a new sampled one.
pub(crate) fn dev_trace(headers: &axum::http::HeaderMap) -> String {
    use cf_webhooks::xray::{new_root_header, TraceHeader};
    let given = headers.get("x-amzn-trace-id").and_then(|v| v.to_str().ok()).and_then(TraceHeader::parse);
    given.map_or_else(new_root_header, |trace| trace.to_header())
}

fn respond(answer: &Answer) -> Response {
    answer.to_response().map(Body::from)
}
