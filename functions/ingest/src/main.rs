//! The ingest Lambda binary: configuration and publisher built once at cold start.

use std::convert::Infallible;
use std::process::ExitCode;

use cf_webhooks::config::IngestConfig;
use cf_webhooks::queue::memory::MemoryQueues;
use lambda_http::{service_fn, Request};

#[tokio::main]
async fn main() -> ExitCode {
    cf_webhooks::logging::init_json();
    let config = match IngestConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    // Durable queues (SQS) are configured by `CF_QUEUE_BACKEND`; `memory` keeps messages in
    // this process only and exists for local emulation (`cargo lambda watch`).
    let backend = std::env::var("CF_QUEUE_BACKEND").unwrap_or_default();
    if backend != "memory" {
        tracing::error!(
            backend,
            "CF_QUEUE_BACKEND: no durable queue backend is built into this version; set it to `memory` for local emulation only"
        );
        return ExitCode::FAILURE;
    }
    let publisher = MemoryQueues::new(10_000, 5);
    let (config, publisher) = (&config, &publisher);
    let result = lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(cf_webhooks_ingest::handle(request, config, publisher).await)
    }))
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "runtime stopped");
            ExitCode::FAILURE
        }
    }
}
