//! `cfwh dev`: ingest, the queues and all seven consumers in one process, with the very
//! code that runs under Lambda. Prints one JSON line on stdout each time an attempt at a record ends.
//!
//! Queues are in memory (the default) or on an SQS API (`--sqs-endpoint`); idempotency is
//! in memory or in DynamoDB (`--dynamodb-endpoint`): both picked once, here.

mod chaos;
mod consume;
pub mod hosts;
pub mod inspector;
mod pipeline;
mod routes;
pub mod server;
mod start;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use cf_webhooks::archive::{Archive, DirStore};
use cf_webhooks::aws::Budget;
use cf_webhooks::config::{var, Destinations};
use cf_webhooks::stack;
use cf_webhooks_consumers::Outlets;
pub use chaos::{chaos_bucket, Chaos};
pub use consume::{archive_unrouted_memory, consume, consume_sqs};
pub use pipeline::*;
pub use routes::{ingest_router, ingest_router_with, Front, REPLAY_PATH};

/// Events `cfwh dev`'s in-memory store remembers at most, by default: about 450 MiB.
pub const DEFAULT_MAX_REMEMBERED: u64 = 4_000_000;

/// `cfwh dev`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Records per consumer batch.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10000))]
    batch_size: u16,
    /// Delay before a failed record is delivered again.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    retry_delay: Duration,
    /// Deliveries before a failing record is dead-lettered.
    #[arg(long, default_value_t = stack::DEFAULT_MAX_RECEIVES, value_parser = clap::value_parser!(u32).range(1..))]
    max_receives: u32,
    /// Batches of one group run side by side, up to this many, as Lambda runs several
    /// invocations on one queue: a copy delivered while the first is in progress then
    /// waits on its claim, as deployed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Records one consumer works on at once (handlers, claims, forwards, EventBridge
    /// calls), as CF_RECORDS_IN_FLIGHT does deployed.
    #[arg(long, default_value_t = cf_webhooks::config::DEFAULT_RECORDS_IN_FLIGHT as u16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    records_in_flight: u16,
    /// How long a consumer waits for its batch to fill once a first record is there
    /// (in-memory queues; like Lambda's batching window).
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    batch_window: Duration,
    /// How long a handler may run before its record fails and is retried.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    handler_timeout: Duration,
    /// How long an in-progress idempotency claim holds (a consumer killed mid-record
    /// blocks its record this long; its redelivery waits for it rather than failing).
    /// Twice the handler timeout, as deployed.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    claim_lease: Duration,
    /// Events the in-memory idempotency store remembers at most (about 110 bytes each):
    /// at the cap, new deliveries are answered 503 until older events pass their
    /// memory; none still inside it is forgotten.
    #[arg(long, default_value_t = DEFAULT_MAX_REMEMBERED, value_parser = clap::value_parser!(u64).range(1..))]
    max_remembered: u64,
    /// How long a processed `PayloadId` is remembered (the idempotency memory)
    /// [default: CF_IDEMPOTENCY_TTL_SECS, else 7 days]; longer than the window plus the skew.
    #[arg(long, value_parser = humantime::parse_duration)]
    idempotency_ttl: Option<Duration>,
    /// The replay window: older authentic events are quarantined; 0 turns it off
    /// [default: CF_MAX_EVENT_AGE_SECS, else 1 hour].
    #[arg(long, value_parser = humantime::parse_duration)]
    max_event_age: Option<Duration>,
    /// How far ahead of this clock an event may be stamped [default: CF_MAX_CLOCK_SKEW_SECS,
    /// else 5 minutes].
    #[arg(long, value_parser = humantime::parse_duration)]
    max_clock_skew: Option<Duration>,
    /// Failure injection for soak tests: this percentage of payloads fails, chosen by a
    /// hash of the `PayloadId`: the even buckets on the first attempt only, the odd ones on
    /// every attempt (5: 3% and 2%).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100), hide = true)]
    chaos_percent: u8,
    /// Use the SQS API at this URL instead of in-memory queues; missing queues are created.
    #[arg(long, value_name = "URL")]
    sqs_endpoint: Option<String>,
    /// Keep idempotency in DynamoDB at this URL instead of in memory; the table is created
    /// when missing.
    #[arg(long, value_name = "URL")]
    dynamodb_endpoint: Option<String>,
    /// Queue names are <prefix>-<group> and <prefix>-<group>-dlq.
    #[arg(long, default_value = stack::DEFAULT_STACK)]
    queue_prefix: String,
    /// FIFO queues, as deployed by default: the entity is the message group, so one
    /// entity's events are handled one after another, in the order received (in memory,
    /// and over SQS as <prefix>-<group>.fifo).
    #[arg(long)]
    fifo: bool,
    /// The DynamoDB idempotency table [default: <queue prefix>-idempotency].
    #[arg(long)]
    table: Option<String>,
    /// Per-entity order: `latest` skips an event older than the one applied last to the
    /// same facet of the same entity (as `stale`); `all` applies every event.
    #[arg(long, default_value = "latest", value_parser = ["latest", "all"])]
    ordering: String,
    /// The inspector page at /_cfwh/ (recent deliveries, what the consumers did, send
    /// again): `auto` turns it on when listening on a loopback address only.
    #[arg(long, value_enum, default_value_t = InspectorSwitch::Auto)]
    inspector: InspectorSwitch,
    /// X-Ray tracing, as a deployed stack with `Tracing` on: each delivery joins the
    /// caller's trace (`X-Amzn-Trace-Id`) or starts one, and its record lines name it.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    tracing: Switch,
    /// Drift from the payloads Creative Force documents (`schemas/baseline/`): each
    /// record line names its drift under `drift`, the inspector shows it, and each kind
    /// is logged once per 10 minutes.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    drift: Switch,
    /// On a loopback address every route answers only to localhost, 127.0.0.1 and [::1]
    /// as `Host`; this name too (a tunnel's, such as `abc.ngrok.app`). Repeatable.
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    #[command(flatten)]
    destinations: DestinationArgs,
}

/// The destinations of `cfwh dev`: the same as a deployed consumer's, as flags.
#[derive(Clone, Default, clap::Args)]
#[command(next_help_heading = "Destinations")]
pub struct DestinationArgs {
    /// Forward every event the consumers take to this URL, signed with the forward secret.
    #[arg(long, value_name = "URL")]
    pub forward_url: Option<String>,
    /// The forward secret: the key as text, or JSON with extra headers.
    #[arg(long, env = "CF_FORWARD_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub forward_secret: Option<String>,
    /// How long one forward may take.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub forward_timeout: Duration,
    /// Let --forward-url be plain http:// to another machine (events and signatures then
    /// cross the network unencrypted); loopback needs nothing.
    #[arg(long)]
    pub forward_allow_http: bool,
    /// Put every event the consumers take on this EventBridge bus (at --eventbridge-endpoint, or
    /// AWS_ENDPOINT_URL, or AWS).
    #[arg(long, value_name = "NAME")]
    pub event_bus: Option<String>,
    /// The entries' Source.
    #[arg(long, default_value = cf_webhooks::destination::eventbridge::DEFAULT_SOURCE)]
    pub event_source: String,
    /// The EventBridge API to talk to.
    #[arg(long, value_name = "URL")]
    pub eventbridge_endpoint: Option<String>,
    /// Archive every record in this folder, with the bucket's layout.
    #[arg(long, value_name = "DIR", conflicts_with = "archive_bucket")]
    pub archive_dir: Option<std::path::PathBuf>,
    /// Archive every record in this S3 bucket (at --s3-endpoint, or AWS_ENDPOINT_URL, or
    /// AWS).
    #[arg(long, value_name = "BUCKET")]
    pub archive_bucket: Option<String>,
    /// The prefix of archived keys.
    #[arg(long, default_value = cf_webhooks::config::DEFAULT_ARCHIVE_PREFIX)]
    pub archive_prefix: String,
    /// The S3 API to talk to.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

impl std::fmt::Debug for DestinationArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.forward_url.as_deref().map(cf_webhooks::outbound::redacted);
        f.debug_struct("DestinationArgs")
            .field("forward_url", &url)
            .field("forward_secret", &self.forward_secret.as_ref().map(|_| "<redacted>"))
            .field("event_bus", &self.event_bus)
            .field("archive_dir", &self.archive_dir)
            .field("archive_bucket", &self.archive_bucket)
            .finish_non_exhaustive()
    }
}

impl DestinationArgs {
    /// The outlets these flags ask for, checked by the same rules as a deployed
    /// consumer's variables (the errors name the flag).
    pub async fn outlets(&self) -> Result<Outlets, String> {
        use std::collections::HashMap;
        let mut vars: HashMap<&str, String> = HashMap::new();
        let mut names = Vec::new();
        if let Some(url) = &self.forward_url {
            names.push("http");
            vars.insert(var::FORWARD_URL, url.clone());
            vars.insert(var::FORWARD_TIMEOUT_MS, self.forward_timeout.as_millis().to_string());
            vars.insert(var::FORWARD_ALLOW_HTTP, self.forward_allow_http.to_string());
            if let Some(secret) = &self.forward_secret {
                vars.insert(var::FORWARD_SECRET, secret.clone());
            }
        }
        if let Some(bus) = &self.event_bus {
            names.push("eventbridge");
            vars.insert(var::EVENT_BUS, bus.clone());
            vars.insert(var::EVENT_SOURCE, self.event_source.clone());
        }
        if let Some(bucket) = &self.archive_bucket {
            names.push("archive");
            vars.insert(var::ARCHIVE_BUCKET, bucket.clone());
        }
        if self.archive_bucket.is_some() {
            vars.insert(var::ARCHIVE_PREFIX, self.archive_prefix.clone());
        }
        vars.insert(var::DESTINATIONS, names.join(","));
        let as_flag = |e: cf_webhooks::config::ConfigError| {
            let flag = match e.var {
                var::FORWARD_URL => "--forward-url",
                var::FORWARD_SECRET | var::FORWARD_SECRET_ARN => "--forward-secret",
                var::FORWARD_TIMEOUT_MS => "--forward-timeout",
                var::FORWARD_ALLOW_HTTP => "--forward-allow-http",
                var::EVENT_BUS => "--event-bus",
                var::EVENT_SOURCE => "--event-source",
                var::ARCHIVE_BUCKET => "--archive-bucket",
                var::ARCHIVE_PREFIX => "--archive-prefix",
                other => other,
            };
            format!("{flag}: {}", e.problem)
        };
        let settings = Destinations::from_lookup(&|name| vars.get(name).cloned()).map_err(as_flag)?;
        if let Some(dir) = &self.archive_dir {
            let prefix = cf_webhooks::config::archive_prefix(Some(&self.archive_prefix)).map_err(as_flag)?;
            let archive = Archive::new(DirStore::new(dir), prefix);
            return Ok(self.outlets_of(settings).await?.and(Outlets { archive: Some(archive), ..Outlets::default() }));
        }
        self.outlets_of(settings).await
    }

    async fn outlets_of(&self, settings: Destinations) -> Result<Outlets, String> {
        let mut outlets = Outlets::default();
        if let Some(http) = settings.http {
            let only = Destinations { http: Some(http), ..Destinations::default() };
            outlets = outlets.and(Outlets::build(&only, None).await.map_err(|e| e.to_string())?);
        }
        if let Some(eventbridge) = settings.eventbridge {
            let only = Destinations { eventbridge: Some(eventbridge), ..Destinations::default() };
            let sdk = crate::aws::sdk_config(self.eventbridge_endpoint.as_deref(), Budget::consumer()).await;
            outlets = outlets.and(Outlets::build(&only, Some(&sdk)).await.map_err(|e| e.to_string())?);
        }
        if let Some(archive) = settings.archive {
            let only = Destinations { archive: Some(archive), ..Destinations::default() };
            let sdk = crate::aws::sdk_config(self.s3_endpoint.as_deref(), Budget::consumer()).await;
            outlets = outlets.and(Outlets::build(&only, Some(&sdk)).await.map_err(|e| e.to_string())?);
        }
        Ok(outlets)
    }
}

/// `--inspector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectorSwitch {
    /// On when listening on a loopback address.
    Auto,
    /// On, wherever it listens.
    On,
    /// Off.
    Off,
}

/// A feature on or off (`--tracing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// Runs the pipeline until Ctrl-C or SIGTERM, then drains it.
pub async fn run(args: Args) -> Result<ExitCode, String> {
    let settings = start::Settings::load(args, |name| std::env::var(name).ok());
    let _flush_logs_on_exit =
        cf_webhooks::logging::init_pretty(settings.as_ref().map_or(&Default::default(), |s| &s.log));
    let dev = start::start(settings?).await?;
    shutdown_signal().await;
    eprintln!("cfwh dev: draining {} queued record(s); Ctrl-C again to exit now", dev.pending().await);
    tokio::select! {
        result = dev.drain() => result.map_err(|e| e.to_string())?,
        _ = shutdown_signal() => {
            eprintln!("cfwh dev: exiting without draining");
            return Ok(ExitCode::from(130));
        }
    }
    eprintln!("cfwh dev: drained, bye");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
