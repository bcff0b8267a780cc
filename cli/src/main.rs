//! The `cfwh` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::Budget;
use cf_webhooks::config::IngestConfig;
use cf_webhooks::config::DEFAULT_IDEMPOTENCY_TTL;
use cf_webhooks::events::{EventGroup, Route};
use cf_webhooks::secret::{Secret, SecretEncoding, SecretSet};
use cf_webhooks::signature::{sign, Signature};
use cf_webhooks::DEV_SECRET;
use cfwh::dev::{Backend, Dev, DevOptions, LineSink, Store};
use cfwh::send::{send_files, SendOptions};
use clap::{Args, Parser, Subcommand};

/// cf-webhooks on one machine: run the pipeline, and sign, verify and send events like
/// Creative Force.
#[derive(Debug, Parser)]
#[command(name = "cfwh", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ingest, in-memory queues and all seven consumers in one process.
    ///
    /// Configuration comes from the same environment variables as the ingest Lambda
    /// (CF_WEBHOOK_SECRET, CF_MAX_BODY_BYTES, …). Without CF_WEBHOOK_SECRET a development
    /// secret is used and printed. One JSON line per finished record goes to stdout;
    /// logs go to stderr. Ctrl-C or SIGTERM drains the queues, then exits.
    Dev(DevArgs),
    /// Print the X-CF-Signature of a file's exact bytes.
    Sign {
        #[command(flatten)]
        key: KeyArgs,
        /// The body to sign.
        file: PathBuf,
    },
    /// Check a signature against a file; exits 0 when valid, 1 when not.
    Verify {
        #[command(flatten)]
        key: KeyArgs,
        /// The X-CF-Signature value (64 hex digits, optional sha256= prefix).
        #[arg(long)]
        signature: String,
        /// The body as received.
        file: PathBuf,
    },
    /// POST files to a Payload URL as Creative Force does, retrying non-2xx answers.
    Send(SendArgs),
    /// Move a group's dead-letter queue back to its source queue.
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
struct RedriveArgs {
    /// The event group: product, sample, user, task, work-unit, job, session or unrouted.
    #[arg(long)]
    group: String,
    /// The SQS API (default: the environment's, e.g. AWS_ENDPOINT_URL, or AWS itself).
    #[arg(long)]
    sqs_endpoint: Option<String>,
    /// Queue names are <prefix>-<group> and <prefix>-<group>-dlq.
    #[arg(long, default_value = "cf-webhooks")]
    queue_prefix: String,
}

#[derive(Debug, Args)]
struct DevArgs {
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
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    max_receives: u32,
    /// How long a consumer waits for its batch to fill once a first record is there
    /// (in-memory queues; like Lambda's batching window).
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    batch_window: Duration,
    /// How long a handler may run before its record fails and is retried.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    handler_timeout: Duration,
    /// How long an in-progress idempotency claim holds (a consumer killed mid-record
    /// blocks its record this long).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    claim_lease: Duration,
    /// Failure injection for soak tests: this percentage of payloads fails, half on the
    /// first attempt only, half on every attempt.
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
    #[arg(long, default_value = "cf-webhooks")]
    queue_prefix: String,
    /// The DynamoDB idempotency table.
    #[arg(long, default_value = "cf-webhooks-idempotency")]
    table: String,
}

#[derive(Debug, Args)]
struct KeyArgs {
    /// The webhook secret (several separated by commas for verify).
    #[arg(long, env = "CF_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// How the secret becomes the HMAC key: utf8 (its bytes, as Creative Force does) or base64.
    #[arg(long, env = "CF_SECRET_ENCODING", default_value = "utf8")]
    secret_encoding: String,
}

impl KeyArgs {
    fn encoding(&self) -> Result<SecretEncoding, String> {
        SecretEncoding::parse(&self.secret_encoding).map_err(|e| e.to_string())
    }

    fn one(&self) -> Result<Secret, String> {
        Secret::from_text(self.secret.trim(), self.encoding()?).map_err(|e| format!("--secret: {e}"))
    }

    fn set(&self) -> Result<SecretSet, String> {
        SecretSet::parse_list(&self.secret, self.encoding()?).map_err(|e| format!("--secret: {e}"))
    }
}

#[derive(Debug, Args)]
struct SendArgs {
    /// The Payload URL.
    #[arg(long, default_value = "http://127.0.0.1:3000/")]
    url: String,
    /// The webhook secret; without it and CF_WEBHOOK_SECRET, the development secret of `cfwh dev`.
    #[arg(long, env = "CF_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// How the secret becomes the HMAC key: utf8 or base64.
    #[arg(long, env = "CF_SECRET_ENCODING", default_value = "utf8")]
    secret_encoding: String,
    /// X-CF-Event; by default derived from the body ("Task completed").
    #[arg(long)]
    event: Option<String>,
    /// An extra header, `Name: value` (repeatable), e.g. Creative Force's custom headers.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Retries of a non-2xx answer (Creative Force makes 3).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Wait between attempts (Creative Force waits 5 to 10 minutes).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    retry_delay: Duration,
    /// Time allowed for one attempt.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Send EventDatetimeUtc as it is in the file; by default it is set to now, so that
    /// samples pass the replay window.
    #[arg(long)]
    keep_time: bool,
    /// Bodies to send, each as its exact bytes (but for EventDatetimeUtc).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(args) => runtime().and_then(|rt| rt.block_on(dev(args))),
        Command::Sign { key, file } => key.one().and_then(|secret| {
            let body = read(&file)?;
            println!("{}", sign(&secret, &body));
            Ok(ExitCode::SUCCESS)
        }),
        Command::Verify { key, signature, file } => verify(&key, &signature, &file),
        Command::Send(args) => runtime().and_then(|rt| rt.block_on(send(args))),
        Command::Redrive(args) => runtime().and_then(|rt| rt.block_on(redrive(args))),
    };
    result.unwrap_or_else(|message| {
        eprintln!("cfwh: {message}");
        ExitCode::from(2)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

fn read(file: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))
}

fn verify(key: &KeyArgs, signature: &str, file: &PathBuf) -> Result<ExitCode, String> {
    let secrets = key.set()?;
    let body = read(file)?;
    let signature = Signature::parse(signature.as_bytes()).map_err(|e| format!("--signature: {e}"))?;
    if signature.verify(&secrets, &body) {
        println!("valid");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("invalid: the signature does not match {} under the given secret(s)", file.display());
        Ok(ExitCode::FAILURE)
    }
}

async fn dev(args: DevArgs) -> Result<ExitCode, String> {
    let _flush_logs_on_exit = cf_webhooks::logging::init_pretty();
    let configured = std::env::var("CF_WEBHOOK_SECRET").is_ok_and(|s| !s.trim().is_empty());
    if !configured && !args.addr.ip().is_loopback() {
        return Err(format!(
            "refusing to listen on {} with the public development secret: set CF_WEBHOOK_SECRET",
            args.addr
        ));
    }
    let mut config = IngestConfig::from_lookup(|name| match (name, std::env::var(name).ok()) {
        ("CF_WEBHOOK_SECRET", None) => Some(DEV_SECRET.to_owned()),
        (_, value) => value,
    })
    .map_err(|e| e.to_string())?;
    // stdout carries the record lines.
    config.metrics = false;
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|e| format!("{}: {e}", args.addr))?;
    let options = DevOptions {
        batch_size: args.batch_size.into(),
        retry_delay: args.retry_delay,
        max_receives: args.max_receives,
        handler_timeout: args.handler_timeout,
        batch_window: args.batch_window,
        chaos_percent: args.chaos_percent,
        ..DevOptions::default()
    };
    let secrets = if configured {
        format!("{} secret(s) from CF_WEBHOOK_SECRET", config.secrets.len())
    } else {
        format!("development secret {DEV_SECRET:?} (set CF_WEBHOOK_SECRET to use your own)")
    };
    let budget = Budget::ack(config.enqueue_timeout);
    let backend = match &args.sqs_endpoint {
        None => Backend::Memory,
        Some(endpoint) => {
            let client = cfwh::aws::sqs_client(Some(endpoint), budget).await;
            let queues =
                cfwh::aws::ensure_queues(&client, &args.queue_prefix, args.max_receives, args.retry_delay).await?;
            eprintln!("cfwh dev: queues {}-<group> on {endpoint}", args.queue_prefix);
            let consumer_client = cfwh::aws::sqs_client(Some(endpoint), Budget::consumer()).await;
            Backend::Sqs { client, consumer_client, queues }
        }
    };
    let store = match &args.dynamodb_endpoint {
        None => Store::memory_with(args.claim_lease),
        Some(endpoint) => {
            let sdk = cfwh::aws::local_sdk_config(Budget::consumer()).await;
            let client = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk).endpoint_url(endpoint).build(),
            );
            DynamoStore::create_table_if_missing(&client, &args.table).await.map_err(|e| e.to_string())?;
            eprintln!("cfwh dev: idempotency in table {} on {endpoint}", args.table);
            Store::Dynamo(DynamoStore::new(client, &args.table, args.claim_lease, DEFAULT_IDEMPOTENCY_TTL))
        }
    };
    // One write per batch: stdout is line-buffered and each call ends in a newline.
    let lines: LineSink = Arc::new(|batch: String| {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(batch.as_bytes());
    });
    let dev = Dev::start(listener, config, options, lines, backend, store).map_err(|e| e.to_string())?;
    eprintln!("cfwh dev: listening on http://{} with {secrets}", dev.addr);
    eprintln!("cfwh dev: try `cfwh send --url http://{} events/task.json`; Ctrl-C drains and exits", dev.addr);

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

async fn shutdown_signal() {
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

async fn send(args: SendArgs) -> Result<ExitCode, String> {
    let encoding = SecretEncoding::parse(&args.secret_encoding).map_err(|e| e.to_string())?;
    let secret_text = match &args.secret {
        Some(secret) => secret.trim().to_owned(),
        None => {
            eprintln!("cfwh send: no --secret or CF_WEBHOOK_SECRET; signing with the development secret of `cfwh dev`");
            DEV_SECRET.to_owned()
        }
    };
    let secret = Secret::from_text(&secret_text, encoding).map_err(|e| format!("--secret: {e}"))?;
    let headers = args
        .headers
        .iter()
        .map(|h| match h.split_once(':') {
            Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.trim().to_owned())),
            _ => Err(format!("--header {h:?}: expected `Name: value`")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = SendOptions {
        url: args.url,
        secret,
        event: args.event,
        headers,
        retries: args.retries,
        retry_delay: args.retry_delay,
        timeout: args.timeout,
        stamp_time: !args.keep_time,
    };
    let all_ok = send_files(&options, &args.files).await.map_err(|e| e.to_string())?;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn redrive(args: RedriveArgs) -> Result<ExitCode, String> {
    let route = match args.group.trim() {
        "unrouted" => Route::Unrouted,
        name => Route::Group(EventGroup::parse(name).map_err(|e| format!("--group: {e}"))?),
    };
    let client = cfwh::aws::sqs_client(args.sqs_endpoint.as_deref(), Budget::consumer()).await;
    let url = |dead_letter: bool| {
        let name = cfwh::aws::queue_name(&args.queue_prefix, route, dead_letter);
        let client = client.clone();
        async move {
            let found = client.get_queue_url().queue_name(&name).send().await;
            found
                .map_err(|e| format!("{name}: {}", cf_webhooks::aws::describe(&e)))?
                .queue_url()
                .map(str::to_owned)
                .ok_or_else(|| format!("{name}: no queue URL"))
        }
    };
    let (dlq, source) = (url(true).await?, url(false).await?);
    let waiting = cfwh::aws::depth(&client, &dlq).await?;
    let bar = indicatif::ProgressBar::new(waiting);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} redriving {pos}/{len} [{bar:30}] {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let moved = cfwh::aws::redrive(&client, &dlq, &source, |n| {
        bar.set_length(bar.length().unwrap_or(0).max(n));
        bar.set_position(n);
    })
    .await;
    bar.finish_and_clear();
    let moved = moved?;
    println!("moved {moved} message(s) from {dlq} back to {source}");
    Ok(ExitCode::SUCCESS)
}
