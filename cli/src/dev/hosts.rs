//! Which `Host` names `cfwh dev` answers to, on every route.
//!
//! On a loopback address it answers only to `localhost`, `127.0.0.1` and `[::1]` (and the
//! names `--allow-host` adds, a tunnel's): a web page elsewhere that rebinds its own name
//! to 127.0.0.1 (DNS rebinding) could otherwise post to the pipeline, signed with the
//! public development secret, to the replay endpoint, or read the inspector.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// The names loopback always answers to.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The `Host` names answered to; any, on another address.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// `None`: any name.
    allowed: Option<Arc<[String]>>,
}

impl Hosts {
    /// Any name: `cfwh dev` on another address, whose users reach it by its name.
    pub fn any() -> Self {
        Self { allowed: None }
    }

    /// The loopback names, and `extra` (`--allow-host`), without their ports.
    pub fn loopback(extra: &[String]) -> Self {
        let names = LOOPBACK.iter().map(|n| (*n).to_owned()).chain(extra.iter().map(|n| n.trim().to_ascii_lowercase()));
        Self { allowed: Some(names.collect()) }
    }

    /// Whether a request with these headers is answered.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(allowed) = &self.allowed else { return true };
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// The answer to any other name: 403, and how to let a name in.
    fn forbidden(&self) -> Response {
        let text = format!(
            "cfwh dev answers to {} only; --allow-host NAME lets another name in (a tunnel's)\n",
            self.allowed.as_deref().unwrap_or_default().join(", ")
        );
        (StatusCode::FORBIDDEN, [("content-type", "text/plain; charset=utf-8")], text).into_response()
    }
}

/// The layer that answers 403 to any other name: a check and a call, with no future of
/// its own to allocate per request (as `axum::middleware::from_fn` boxes one).
impl<S> tower_layer::Layer<S> for Hosts {
    type Service = Guarded<S>;
    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded { hosts: self.clone(), inner }
    }
}

/// A service behind [`Hosts`].
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    hosts: Hosts,
    inner: S,
}

impl<S> tower_service::Service<Request> for Guarded<S>
where
    S: tower_service::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<S::Future, std::future::Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if self.hosts.allows(request.headers()) {
            futures_util::future::Either::Left(self.inner.call(request))
        } else {
            futures_util::future::Either::Right(std::future::ready(Ok(self.hosts.forbidden())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn host(h: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        headers
    }

    #[test]
    fn loopback_answers_to_loopback_names_and_the_allowed_ones_only() {
        let local = Hosts::loopback(&["Tunnel.Example".to_owned()]);
        for ok in
            ["localhost:3000", "127.0.0.1:3000", "[::1]:3000", "LOCALHOST", "tunnel.example", "tunnel.example:443"]
        {
            assert!(local.allows(&host(ok)), "{ok}");
        }
        for refused in ["evil.example:3000", "127.0.0.1.nip.io:3000", "localhost.evil:3000", "[::1]x", "localhost:"] {
            assert!(!local.allows(&host(refused)), "{refused}");
        }
        assert!(!local.allows(&HeaderMap::new()), "no Host at all");
        assert!(Hosts::any().allows(&host("studio-box:3000")));
    }
}
