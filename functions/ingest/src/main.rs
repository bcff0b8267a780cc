//! The ingest Lambda binary: configuration, secrets and the SQS client built once at
//! cold start.

use std::convert::Infallible;
use std::process::ExitCode;

use cf_webhooks::aws::secrets_manager::{read_required_header, SecretsManagerFetcher};
use cf_webhooks::aws::sqs::{QueueUrls, SqsQueues};
use cf_webhooks::aws::{lambda_sdk_config, Budget};
use cf_webhooks::config::IngestConfig;
use cf_webhooks::metrics::Emf;
use lambda_http::{service_fn, Request};

#[tokio::main]
async fn main() -> ExitCode {
    cf_webhooks::logging::init_json();
    let loaded = IngestConfig::from_env().and_then(|config| {
        let sdk = lambda_sdk_config(Budget::ack(config.enqueue_timeout))?;
        Ok((config, QueueUrls::from_lookup(|n| std::env::var(n).ok())?, Emf::from_env()?, sdk))
    });
    let (mut config, urls, metrics, sdk) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    let publisher = SqsQueues::new(aws_sdk_sqs::Client::new(&sdk), urls);
    // Both secrets are read at once: a cold start waits for one round trip, not two.
    let from_store = config.secret_store.is_some() || config.required_header_store.is_some();
    let secrets_manager = from_store.then(|| aws_sdk_secretsmanager::Client::new(&sdk));
    let webhook_secret = async {
        match (config.secret_store.clone(), &secrets_manager) {
            (Some(store), Some(client)) => {
                config.secrets.follow(SecretsManagerFetcher::new(client.clone(), store));
                config
                    .secrets
                    .refresh_now()
                    .await
                    .map_err(|e| format!("cannot read the webhook secret at start-up: {e}"))
            }
            _ => Ok(()),
        }
    };
    let required_header = async {
        match (&config.required_header_store, &secrets_manager) {
            (Some(store), Some(client)) => read_required_header(client, store)
                .await
                .map(Some)
                .map_err(|e| format!("cannot read the required header's value at start-up: {e}")),
            _ => Ok(None),
        }
    };
    match tokio::join!(webhook_secret, required_header) {
        (Ok(()), Ok(header)) => {
            if header.is_some() {
                config.required_header = header;
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::FAILURE;
        }
    }
    if config.secret_store.is_none() {
        // A store's secrets are checked as they are read.
        if let Some(warning) = config.secrets.weak_warning() {
            tracing::warn!("{warning}");
        }
    }
    let (config, publisher, metrics) = (&config, &publisher, metrics.as_ref());
    let result = lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Infallible>(cf_webhooks_ingest::handle(request, config, publisher, metrics).await)
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
