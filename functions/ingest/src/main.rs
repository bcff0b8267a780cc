//! The ingest Lambda binary: configuration, secrets and the SQS client built once at
//! cold start.

use std::convert::Infallible;
use std::process::ExitCode;

use cf_webhooks::aws::secrets_manager::SecretsManagerFetcher;
use cf_webhooks::aws::sqs::{QueueUrls, SqsQueues};
use cf_webhooks::aws::{sdk_config, Budget};
use cf_webhooks::config::IngestConfig;
use lambda_http::{service_fn, Request};

#[tokio::main]
async fn main() -> ExitCode {
    cf_webhooks::logging::init_json();
    let (config, urls) =
        match IngestConfig::from_env().and_then(|c| Ok((c, QueueUrls::from_lookup(|n| std::env::var(n).ok())?))) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(error = %e, "invalid configuration");
                return ExitCode::FAILURE;
            }
        };
    let sdk = sdk_config(Budget::ack(config.enqueue_timeout)).await;
    let publisher = SqsQueues::new(aws_sdk_sqs::Client::new(&sdk), urls);
    let store = config
        .secret_store
        .clone()
        .map(|store| SecretsManagerFetcher::new(aws_sdk_secretsmanager::Client::new(&sdk), store));
    if let Some(store) = &store {
        if let Err(e) = config.secrets.refresh_now(store).await {
            tracing::error!(error = %e, "cannot read the webhook secret at start-up");
            return ExitCode::FAILURE;
        }
    }
    let (config, publisher, store) = (&config, &publisher, &store);
    let result = lambda_http::run(service_fn(move |request: Request| async move {
        let response = match store {
            Some(store) => cf_webhooks_ingest::handle(request, config, publisher, store).await,
            None => cf_webhooks_ingest::handle(request, config, publisher, &cf_webhooks::secret::NoSecretStore).await,
        };
        Ok::<_, Infallible>(response)
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
