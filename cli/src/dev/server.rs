//! The HTTP server of `cfwh dev`: hyper's HTTP/1.1 connections with the limits a server
//! reachable by others needs, so that a slow or hostile client cannot hold it: headers
//! and bodies must arrive in time, each request has a time limit, connections are
//! counted, and a shutdown waits a few seconds for the requests in progress, then drops
//! whatever is left.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a request's headers to arrive, from the connection or the previous
    /// request (slowloris).
    pub header_read: Duration,
    /// Time for a whole request (its body included) to be answered.
    pub request: Duration,
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a shutdown waits for the requests in progress.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(30),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = until_set(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, never spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = until_set(&mut stop) => break,
        };
        // Reap what has finished, so the set does not grow with every connection.
        while connections.try_join_next().is_some() {}
        let (router, mut closed) = (router.clone(), closed.clone());
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let mut router = router.clone();
                async move {
                    let answer = tokio::time::timeout(
                        limits.request,
                        tower_service::Service::call(&mut router, request.map(axum::body::Body::new)),
                    )
                    .await;
                    Ok::<_, std::convert::Infallible>(match answer {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => too_slow(limits.request),
                    })
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = until_set(&mut closed) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.shutdown_grace, connection).await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Each connection finishes its request in progress within the grace period, or is
    // dropped with it.
    let finished = tokio::time::timeout(limits.shutdown_grace + Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        connections.abort_all();
    }
    Ok(())
}

/// Until the flag is set (or its sender is gone).
async fn until_set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

fn too_slow(limit: Duration) -> axum::response::Response {
    axum::response::Response::builder()
        .status(408)
        .header("content-type", "text/plain; charset=utf-8")
        .header("connection", "close")
        .body(axum::body::Body::from(format!("the request took longer than {} s\n", limit.as_secs())))
        .expect("static status and headers")
}
