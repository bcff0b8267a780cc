//! The ingest Lambda over the shared ack path: a Function URL request in, an answer out,
//! at most one message published before a 2xx. Its settings are read once, and its
//! resources built once, at a cold start.

use bytes::Bytes;
use cf_webhooks::ack::{acknowledge, now_ms, Delivery};
use cf_webhooks::aws::secrets_manager::{read_required_header, SecretsManagerFetcher};
use cf_webhooks::aws::sqs::{QueueUrls, SqsQueues};
use cf_webhooks::aws::{Budget, LambdaAws};
use cf_webhooks::config::{ConfigError, IngestConfig};
use cf_webhooks::logging::LogFilter;
use cf_webhooks::metrics::Emf;
use cf_webhooks::queue::Publisher;
use lambda_http::{Body, Request, RequestExt, Response};

/// Handles one Function URL request. When the secrets come from a store, they are
/// re-read first if the refresh interval has passed. With `metrics`, one EMF line
/// records the answer.
pub async fn handle<P: Publisher>(
    request: Request,
    config: &IngestConfig,
    publisher: &P,
    metrics: Option<&Emf>,
) -> Response<Body> {
    let received_at_ms = now_ms();
    config.secrets.refresh_if_due().await;
    // The invocation's X-Ray trace, as the runtime received it: the queued message
    // carries it on, so the consumer's segment joins the same trace.
    let trace = request.lambda_context_ref().and_then(|context| context.xray_trace_id.clone());
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        // `Body` is non-exhaustive: a future variant still exposes its bytes.
        other => Bytes::copy_from_slice(other.as_ref()),
    };
    let delivery = Delivery {
        method: &parts.method,
        headers: &parts.headers,
        body: &body,
        received_at_ms,
        trace_header: trace.as_deref(),
    };
    let acknowledged = acknowledge(delivery, config, publisher).await;
    if let Some(line) = metrics.and_then(|emf| emf.ingest(&acknowledged)) {
        println!("{line}");
    }
    acknowledged.answer.to_response().map(Body::Binary)
}

/// Everything ingest reads from its environment, read once at a cold start: the ack
/// path's settings, the queues, metrics, logging and the AWS settings Lambda gives.
#[derive(Debug)]
pub struct Settings {
    /// The ack path's settings (secrets or where to read them, limits, filters).
    pub ack: IngestConfig,
    /// The queue of each route.
    pub queues: QueueUrls,
    /// CloudWatch metrics, unless `CF_METRICS=off`.
    pub metrics: Option<Emf>,
    /// What to log.
    pub log: LogFilter,
    /// Region, credentials, endpoint and TLS roots.
    pub aws: LambdaAws,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`; the first invalid one is named.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            ack: IngestConfig::from_lookup(&lookup)?,
            queues: QueueUrls::from_lookup(&lookup)?,
            metrics: Emf::from_lookup(&lookup)?,
            log: LogFilter::from_lookup(&lookup),
            aws: LambdaAws::from_lookup(&lookup)?,
        })
    }
}

/// What ingest answers with: the ack path's settings with their secrets read, the SQS
/// publisher and the metrics.
pub struct Ingest {
    /// The ack path's settings, the secrets and the required header read.
    pub config: IngestConfig,
    /// The queues.
    pub publisher: SqsQueues,
    pub metrics: Option<Emf>,
}

/// Builds ingest's resources from its settings: the SQS client, and the secrets read
/// from Secrets Manager when they are kept there (both at once: a cold start waits for
/// one round trip, not two). An error says what could not be read.
pub async fn start(settings: Settings) -> Result<Ingest, String> {
    let Settings { ack: mut config, queues, metrics, aws, .. } = settings;
    let sdk = aws.sdk_config(Budget::ack(config.enqueue_timeout));
    let publisher = SqsQueues::new(aws_sdk_sqs::Client::new(&sdk), queues);
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
    let (secret, header) = tokio::join!(webhook_secret, required_header);
    secret?;
    if let Some(header) = header? {
        config.required_header = Some(header);
    }
    if config.secret_store.is_none() {
        // A store's secrets are checked as they are read.
        if let Some(warning) = config.secrets.weak_warning() {
            tracing::warn!("{warning}");
        }
    }
    Ok(Ingest { config, publisher, metrics })
}
