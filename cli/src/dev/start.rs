//! `cfwh dev`'s start: its settings read once from the flags and the environment, then
//! its resources (the listener, the queues, the store, the destinations) built from them.

use std::sync::Arc;
use std::time::Duration;

use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::Budget;
use cf_webhooks::config::{var, IngestConfig, DEFAULT_IDEMPOTENCY_TTL};
use cf_webhooks::consumer::{IdempotencyStore, MemoryStore};
use cf_webhooks::logging::LogFilter;
use cf_webhooks::stack;
use cf_webhooks::DEV_SECRET;

use super::hosts::Hosts;
use super::{inspector, Args, Backend, Dev, DevOptions, InspectorSwitch, LineSink};

/// Everything `cfwh dev` reads, checked together: the flags win over the variables.
#[derive(Debug)]
pub struct Settings {
    /// The flags.
    pub args: Args,
    /// The ack path's settings (the development secret when none is configured).
    pub ingest: IngestConfig,
    /// Whether the secrets came from `CF_WEBHOOK_SECRET` rather than the development one.
    pub configured: bool,
    /// The idempotency memory.
    pub memory: Duration,
    /// What to log.
    pub log: LogFilter,
}

impl Settings {
    /// Reads the flags and, through `env`, the variables; refuses what cannot run: the
    /// public development secret off loopback, a memory not longer than the replay
    /// window and the skew (as a deployed consumer checks them), a secret store, a claim
    /// lease shorter than the handler's timeout.
    pub fn load(args: Args, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let configured = env(var::WEBHOOK_SECRET).is_some_and(|s| !s.trim().is_empty());
        if !configured && !args.addr.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {} with the public development secret: set {}",
                args.addr,
                var::WEBHOOK_SECRET
            ));
        }
        let flag = |value: Option<Duration>| value.map(|d| d.as_secs().to_string());
        let lookup = |name: &str| match name {
            var::MAX_EVENT_AGE_SECS => flag(args.max_event_age).or_else(|| env(name)),
            var::MAX_CLOCK_SKEW_SECS => flag(args.max_clock_skew).or_else(|| env(name)),
            var::IDEMPOTENCY_TTL_SECS => flag(args.idempotency_ttl).or_else(|| env(name)),
            var::WEBHOOK_SECRET => env(name).or_else(|| Some(DEV_SECRET.to_owned())),
            _ => env(name),
        };
        let ingest = IngestConfig::from_lookup(lookup).map_err(|e| e.to_string())?;
        let memory = match lookup(var::IDEMPOTENCY_TTL_SECS) {
            None => DEFAULT_IDEMPOTENCY_TTL,
            Some(secs) => Duration::from_secs(
                secs.trim()
                    .parse()
                    .map_err(|_| format!("{}: not a number of seconds: {secs:?}", var::IDEMPOTENCY_TTL_SECS))?,
            ),
        };
        let (window, skew) =
            ingest.replay_window.map_or((Duration::ZERO, Duration::ZERO), |w| (w.max_age, w.max_future));
        cf_webhooks::config::check_memory(memory, window, skew)
            .map_err(|e| format!("--idempotency-ttl ({}): {}", humantime::format_duration(memory), e.problem))?;
        if ingest.required_header_store.is_some() {
            return Err(format!(
                "{}: cfwh dev reads no secret store; give the value in {}",
                var::REQUIRED_HEADER_VALUE_ARN,
                var::REQUIRED_HEADER_VALUE
            ));
        }
        if args.claim_lease < args.handler_timeout {
            return Err(format!(
                "--claim-lease ({}) must be at least --handler-timeout ({}): a claim must outlive the attempt that made it",
                humantime::format_duration(args.claim_lease),
                humantime::format_duration(args.handler_timeout)
            ));
        }
        if !args.allow_host.is_empty() && !args.addr.ip().is_loopback() {
            return Err(format!(
                "--allow-host is for a loopback address: on {} every Host name is answered already",
                args.addr
            ));
        }
        if let Some(bad) = args.allow_host.iter().find(|n| n.trim().is_empty() || n.contains([':', '/', ' '])) {
            return Err(format!("--allow-host {bad:?}: a host name, without a port or a path"));
        }
        let log = LogFilter::from_lookup(&env);
        Ok(Self { args, ingest, configured, memory, log })
    }
}

/// Builds what the settings ask for (the listener, the inspector, the destinations, the
/// queues and the store), starts the pipeline and says so on stderr.
pub async fn start(settings: Settings) -> Result<Dev, String> {
    let Settings { args, ingest: config, configured, memory, .. } = settings;
    if configured {
        if let Some(warning) = config.secrets.weak_warning() {
            eprintln!("cfwh dev: warning: {warning}");
        }
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|e| format!("{}: {e}", args.addr))?;
    let loopback = args.addr.ip().is_loopback();
    let inspector = match args.inspector {
        InspectorSwitch::Auto if loopback => Some(inspector::Inspector::new(true)),
        InspectorSwitch::On => Some(inspector::Inspector::new(loopback)),
        _ => None,
    };
    if inspector.is_some() && !loopback {
        eprintln!(
            "cfwh dev: warning: the inspector on {} shows every delivery's body to whoever reaches this address \
             (sending again is off there)",
            args.addr
        );
    }
    let options = DevOptions {
        batch_size: args.batch_size.into(),
        retry_delay: args.retry_delay,
        max_receives: args.max_receives,
        concurrency: args.concurrency.into(),
        records_in_flight: args.records_in_flight.into(),
        handler_timeout: args.handler_timeout,
        batch_window: args.batch_window,
        chaos_percent: args.chaos_percent,
        outlets: args.destinations.outlets().await?,
        ordering: cf_webhooks::consumer::Order::parse(&args.ordering).unwrap_or_default(),
        queue_type: if args.fifo { stack::QueueType::Fifo } else { stack::QueueType::Standard },
        inspector,
        hosts: if loopback { Hosts::loopback(&args.allow_host) } else { Hosts::any() },
        tracing: args.tracing == super::Switch::On,
        drift: if args.drift == super::Switch::On {
            cf_webhooks::consumer::DriftMode::Report
        } else {
            cf_webhooks::consumer::DriftMode::Off
        },
        ..DevOptions::default()
    };
    let secrets = if configured {
        format!("{} secret(s) from {}", config.secrets.len(), var::WEBHOOK_SECRET)
    } else {
        format!("development secret {DEV_SECRET:?} (set {} to use your own)", var::WEBHOOK_SECRET)
    };
    let budget = Budget::ack(config.enqueue_timeout);
    let backend = match &args.sqs_endpoint {
        None => Backend::Memory,
        Some(endpoint) => {
            let client = crate::aws::sqs_client(Some(endpoint), budget).await;
            let queue_type = options.queue_type;
            let queues =
                crate::aws::ensure_queues(&client, &args.queue_prefix, queue_type, args.max_receives, args.retry_delay)
                    .await?;
            eprintln!("cfwh dev: queues {}-<group>{} on {endpoint}", args.queue_prefix, queue_type.suffix());
            let consumer_client = crate::aws::sqs_client(Some(endpoint), Budget::consumer()).await;
            Backend::Sqs { client, consumer_client, queues }
        }
    };
    let mut options = options;
    let store: Arc<dyn IdempotencyStore> = match &args.dynamodb_endpoint {
        None => {
            let cap = usize::try_from(args.max_remembered).unwrap_or(usize::MAX);
            let store = Arc::new(MemoryStore::new(args.claim_lease, memory).with_cap(cap));
            options.remembering = Some(store.clone());
            store
        }
        Some(endpoint) => {
            let sdk = crate::aws::local_sdk_config(Budget::consumer()).await;
            let client = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint).build(),
            );
            let table = args.table.clone().unwrap_or_else(|| stack::idempotency_table(&args.queue_prefix));
            DynamoStore::create_table_if_missing(&client, &table).await.map_err(|e| e.to_string())?;
            eprintln!("cfwh dev: idempotency in table {table} on {endpoint}");
            Arc::new(DynamoStore::new(client, &table, args.claim_lease, memory))
        }
    };
    // One write per batch: stdout is line-buffered and each call ends in a newline.
    let lines: LineSink = Arc::new(|batch: String| {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(batch.as_bytes());
    });
    let outlet_names = options.outlets.names();
    let inspecting = options.inspector.is_some();
    let queue_type = options.queue_type;
    let dev = Dev::start(listener, config, options, lines, backend, store).map_err(|e| e.to_string())?;
    eprintln!("cfwh dev: listening on http://{} with {secrets}", dev.addr);
    if inspecting {
        eprintln!("cfwh dev: inspector on http://{}{}", dev.addr, inspector::PATH);
    }
    eprintln!("cfwh dev: {} queues, ordering {}", queue_type.as_str(), args.ordering);
    if !outlet_names.is_empty() {
        eprintln!("cfwh dev: delivering to {}", outlet_names.join(", "));
    }
    eprintln!("cfwh dev: try `cfwh send --url http://{} events/task.json`; Ctrl-C drains and exits", dev.addr);
    Ok(dev)
}
