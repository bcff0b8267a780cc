//! The consumer bootstrap's start: settings read once, resources built once, then one
//! batch per invocation.

use aws_lambda_events::sqs::SqsEvent;
use cf_webhooks::archive::Archive;
use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::sqs::SqsDeadLetters;
use cf_webhooks::aws::{Budget, LambdaAws};
use cf_webhooks::config::{ConfigError, ConsumerConfig};
use cf_webhooks::consumer::Consume;
use cf_webhooks::events::Route;
use cf_webhooks::logging::{init_json, LogFilter};
use cf_webhooks::metrics::Emf;
use cf_webhooks::xray::{Daemon, DAEMON_ADDRESS};
use lambda_runtime::{service_fn, LambdaEvent};

use crate::lambda::{archive_batch, handle_batch, Host, Visibility};
use crate::Outlets;

/// Everything a consumer reads from its environment, read once at a cold start: its
/// route and settings, metrics, logging, tracing and the AWS settings Lambda gives.
#[derive(Debug)]
pub struct Settings {
    /// The route, the table, the dead-letter queue, the destinations, …
    pub consumer: ConsumerConfig,
    /// CloudWatch metrics, unless `CF_METRICS=off`.
    pub metrics: Option<Emf>,
    /// What to log.
    pub log: LogFilter,
    /// Region, credentials, endpoint and TLS roots.
    pub aws: LambdaAws,
    /// With active tracing, the address of the X-Ray daemon Lambda runs beside the
    /// function (`AWS_XRAY_DAEMON_ADDRESS`).
    pub xray: Option<String>,
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`), its segments' name.
    pub function_name: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`; the first invalid one is named.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            consumer: ConsumerConfig::from_lookup(&lookup)?,
            metrics: Emf::from_lookup(&lookup)?,
            log: LogFilter::from_lookup(&lookup),
            aws: LambdaAws::from_lookup(&lookup)?,
            xray: lookup(DAEMON_ADDRESS).filter(|a| !a.trim().is_empty()),
            function_name: lookup("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
        })
    }
}

/// What a consumer serves batches with, built once from its settings.
pub enum Consumer {
    /// A group's: the runner of its handler, and what the host does around it.
    Group {
        runner: Box<dyn Consume>,
        /// Metrics, visibility, tracing.
        host: Host,
    },
    /// The `unrouted` queue's: it only archives, `in_flight` records at once.
    Unrouted { archive: Archive, metrics: Option<Emf>, in_flight: usize },
}

/// Builds a consumer's resources from its settings: the destinations (the forward secret
/// read), the DynamoDB store, the dead-letter sink, the route's runner, and the queue's
/// visibility timeout when a destination may answer `Retry-After`.
pub async fn start(settings: Settings) -> Result<Consumer, ConfigError> {
    let Settings { consumer: config, metrics, aws, xray, function_name, .. } = settings;
    let sdk = aws.sdk_config(Budget::consumer());
    let outlets = Outlets::build(&config.destinations, Some(&sdk)).await?;
    let group = match config.route {
        Route::Group(group) => group,
        Route::Unrouted => {
            let archive = outlets.archive.expect("validated: the unrouted consumer archives");
            return Ok(Consumer::Unrouted { archive, metrics, in_flight: config.records_in_flight });
        }
    };
    let store =
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.idempotency_table, config.lease, config.ttl);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dead_letters = SqsDeadLetters::new(sqs.clone(), &config.dlq_url);
    let policy = crate::Policy {
        order: config.ordering,
        max_receives: config.max_receives,
        records_in_flight: config.records_in_flight,
        drift: config.drift,
    };
    let runner = crate::runner(group, store, dead_letters, outlets, policy);
    // Only the HTTP forward answers with Retry-After: without it, no call at cold start.
    let retry_after = config.destinations.http.is_some();
    let visibility = match config.queue_url {
        Some(url) => Some(Visibility::of(sqs, url, retry_after).await),
        None => None,
    };
    let daemon = xray.as_deref().and_then(Daemon::at);
    let host = Host { metrics, visibility, xray: daemon.map(|daemon| (daemon, function_name)) };
    Ok(Consumer::Group { runner, host })
}

/// The `main` of the consumer bootstrap.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env();
    init_json(settings.as_ref().map_or(&LogFilter::default(), |s| &s.log));
    let consumer = match settings {
        Ok(settings) => start(settings).await,
        Err(e) => Err(e),
    };
    match consumer.inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))? {
        Consumer::Unrouted { archive, metrics, in_flight } => {
            let (archive, metrics) = (&archive, metrics.as_ref());
            lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
                Ok::<_, std::convert::Infallible>(archive_batch(archive, event.payload, metrics, in_flight).await)
            }))
            .await
        }
        Consumer::Group { runner, host } => {
            let (runner, host) = (&*runner, &host);
            lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
                let deadline = event.context.deadline;
                Ok::<_, std::convert::Infallible>(handle_batch(runner, event.payload, Some(deadline), host).await)
            }))
            .await
        }
    }
}
