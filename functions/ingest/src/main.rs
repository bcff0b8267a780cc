//! The ingest Lambda binary: settings read and resources built once at a cold start,
//! then one answer per Function URL request.

use std::convert::Infallible;
use std::process::ExitCode;

use cf_webhooks::logging::{init_json, LogFilter};
use cf_webhooks_ingest::{handle, start, Settings};
use lambda_http::{service_fn, Request};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::from_env();
    init_json(settings.as_ref().map_or(&LogFilter::default(), |s| &s.log));
    let ingest = match settings {
        Ok(settings) => start(settings).await,
        Err(e) => Err(e.to_string()),
    };
    let ingest = match ingest {
        Ok(ingest) => ingest,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    let ingest = &ingest;
    let served = lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(handle(request, &ingest.config, &ingest.publisher, ingest.metrics.as_ref()).await)
    }))
    .await;
    served.map_or_else(
        |e| {
            tracing::error!(error = %e, "runtime stopped");
            ExitCode::FAILURE
        },
        |()| ExitCode::SUCCESS,
    )
}
