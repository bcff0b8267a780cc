//! `cfwh listen`: your handlers, on your machine, on the queues of a deployed stack.
//!
//! A development stack deployed with `ConsumersEnabled=false` keeps its ingest function,
//! queues, idempotency table, dead-letter queues and destinations, but its consumer
//! functions do not read the queues. Creative Force delivers to its Function URL as to
//! any stack (no tunnel to a laptop); `cfwh listen --stack dev` reads the stack's outputs
//! and consumes its queues with the handlers compiled into this `cfwh`, as the deployed
//! consumers would: the same runner, idempotency in the stack's table, permanent
//! failures to its dead-letter queues, the destinations it has on. It prints the same JSON
//! line per record as `cfwh dev`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cf_webhooks::aws::dynamodb::DynamoStore;
use cf_webhooks::aws::sqs::SqsDeadLetters;
use cf_webhooks::aws::{describe, Budget};
use cf_webhooks::config::{var, ConsumerConfig};
use cf_webhooks::events::{EventGroup, Route};
use cf_webhooks::stack::output;
use cf_webhooks_consumers::Outlets;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::dev::{consume_sqs, DevOptions, LineSink};

/// `cfwh listen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The deployed stack (its consumers switched off: `ConsumersEnabled=false`).
    #[arg(long)]
    stack: String,
    /// The groups to consume (repeat, or comma-separated) [default: all seven].
    #[arg(long = "group", value_delimiter = ',', value_parser = parse_group)]
    groups: Vec<EventGroup>,
    /// How long a handler may run before its record fails and is retried.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    handler_timeout: Duration,
}

fn parse_group(text: &str) -> Result<EventGroup, String> {
    EventGroup::parse(text).map_err(|e| e.to_string())
}

/// A stack's outputs, by name.
pub type Outputs = BTreeMap<String, String>;

/// The outputs of `stack`.
pub async fn stack_outputs(client: &aws_sdk_cloudformation::Client, stack: &str) -> Result<Outputs, String> {
    let described = client
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| format!("stack {stack}: {}", describe(&e)))?;
    let found = described.stacks().first().ok_or_else(|| format!("stack {stack}: not found"))?;
    Ok(found
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value().unwrap_or_default().to_owned())))
        .collect())
}

/// What one group's consumer needs, from the stack's outputs: its configuration as the
/// deployed consumer reads it (the outputs carry the consumers' shared settings,
/// [`output::CONSUMER_ENVIRONMENT`]), and its queue. Refused when the stack's consumers
/// are on.
pub fn consumer_of(outputs: &Outputs, stack: &str, group: EventGroup) -> Result<(ConsumerConfig, String), String> {
    match outputs.get(output::CONSUMERS_ENABLED).map(String::as_str) {
        Some("false") => {}
        Some(_) => {
            return Err(format!(
                "the consumers of stack {stack} are on: two consumers would race for the same records. Deploy it with \
                 ConsumersEnabled=false (a development stack), then listen"
            ))
        }
        None => {
            return Err(format!(
                "stack {stack} has no {} output: deploy it with this version",
                output::CONSUMERS_ENABLED
            ))
        }
    }
    let route = Route::Group(group);
    let queue = outputs
        .get(&output::queue_url(route))
        .ok_or_else(|| format!("stack {stack} has no {} output", output::queue_url(route)))?
        .clone();
    let dlq = outputs.get(&output::dead_letter_queue_url(route)).cloned().unwrap_or_default();
    let environment = output::parse_environment(outputs.get(output::CONSUMER_ENVIRONMENT).map_or("", String::as_str));
    let config = ConsumerConfig::from_lookup(|name| match name {
        n if n == var::EVENT_GROUP => Some(group.as_str().to_owned()),
        n if n == var::DLQ_URL => Some(dlq.clone()),
        n if n == var::QUEUE_URL => Some(queue.clone()),
        other => environment.get(other).cloned(),
    })
    .map_err(|e| format!("stack {stack}: {e}"))?;
    Ok((config, queue))
}

/// The queue's `maxReceiveCount`: when a record's last delivery fails, it is reported
/// `dead-lettered`, as the queue moves it.
async fn max_receives(client: &aws_sdk_sqs::Client, queue: &str) -> u32 {
    use aws_sdk_sqs::types::QueueAttributeName;
    let read =
        client.get_queue_attributes().queue_url(queue).attribute_names(QueueAttributeName::RedrivePolicy).send().await;
    read.ok()
        .and_then(|r| r.attributes().and_then(|a| a.get(&QueueAttributeName::RedrivePolicy)).cloned())
        .and_then(|policy| serde_json::from_str::<serde_json::Value>(&policy).ok())
        .and_then(|policy| {
            policy["maxReceiveCount"].as_u64().or_else(|| policy["maxReceiveCount"].as_str()?.parse().ok())
        })
        .map_or(cf_webhooks::stack::DEFAULT_MAX_RECEIVES, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// A running listener: one consumer per group on the stack's queues.
pub struct Listener {
    stop: watch::Sender<bool>,
    consumers: JoinSet<()>,
    /// The groups consumed.
    pub groups: Vec<EventGroup>,
}

impl Listener {
    /// Reads the stack's outputs and starts a consumer per group (all seven when `groups`
    /// is empty), printing record lines through `lines`.
    pub async fn start(
        sdk: &aws_types::SdkConfig,
        stack: &str,
        groups: &[EventGroup],
        handler_timeout: Duration,
        lines: LineSink,
    ) -> Result<Self, String> {
        let outputs = stack_outputs(&aws_sdk_cloudformation::Client::new(sdk), stack).await?;
        let groups = if groups.is_empty() { EventGroup::ALL.to_vec() } else { groups.to_vec() };
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let (stop, stopped) = watch::channel(false);
        let mut consumers = JoinSet::new();
        // Every group's configuration first: a refusal starts nothing.
        let configs: Vec<(EventGroup, ConsumerConfig, String)> = groups
            .iter()
            .map(|&group| consumer_of(&outputs, stack, group).map(|(config, queue)| (group, config, queue)))
            .collect::<Result<_, _>>()?;
        // A handler running past the stack's claim lease could be run again beside itself.
        if let Some((_, config, _)) = configs.iter().find(|(_, config, _)| handler_timeout > config.lease) {
            return Err(format!(
                "--handler-timeout ({}) must not exceed the stack's claim lease ({}): a record still running when its \
                 claim ends could be claimed again",
                humantime::format_duration(handler_timeout),
                humantime::format_duration(config.lease)
            ));
        }
        for (group, config, queue) in configs {
            let outlets = Outlets::build(&config.destinations, Some(sdk)).await.map_err(|e| format!("{group}: {e}"))?;
            let store = DynamoStore::new(dynamodb.clone(), &config.idempotency_table, config.lease, config.ttl);
            let dead_letters = SqsDeadLetters::new(sqs.clone(), &config.dlq_url);
            // The queue's own redrive policy, which a waiting copy plans its waits within.
            let max_receives = max_receives(&sqs, &queue).await;
            let runner = cf_webhooks_consumers::runner(
                group,
                store,
                dead_letters,
                outlets,
                cf_webhooks_consumers::Policy {
                    order: config.ordering,
                    max_receives,
                    records_in_flight: config.records_in_flight,
                    drift: config.drift,
                },
            );
            let options =
                DevOptions { handler_timeout, max_receives, retry_delay: Duration::ZERO, ..DevOptions::default() };
            consumers.spawn(consume_sqs(sqs.clone(), queue, runner.into(), options, lines.clone(), stopped.clone()));
        }
        Ok(Self { stop, consumers, groups })
    }

    /// Stops polling, lets the batches in hand finish (their records deleted or left to
    /// their visibility timeout, as in Lambda), then returns.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.consumers.join_next().await.is_some() {}
    }
}

/// Runs until Ctrl-C or SIGTERM, then finishes the batches in hand.
pub async fn run(args: Args) -> Result<ExitCode, String> {
    // The stack's outputs are its settings (read by `Listener::start`); the flags and the
    // log level are this process's own.
    let log = cf_webhooks::logging::LogFilter::from_lookup(|name| std::env::var(name).ok());
    let _flush_logs_on_exit = cf_webhooks::logging::init_pretty(&log);
    let sdk = crate::aws::sdk_config(None, Budget::consumer()).await;
    let lines: LineSink = Arc::new(|batch: String| {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(batch.as_bytes());
    });
    let listener = Listener::start(&sdk, &args.stack, &args.groups, args.handler_timeout, lines).await?;
    let names: Vec<&str> = listener.groups.iter().map(|g| g.as_str()).collect();
    eprintln!("cfwh listen: consuming {} of stack {}; Ctrl-C stops", names.join(", "), args.stack);
    crate::dev::shutdown_signal().await;
    eprintln!("cfwh listen: stopping after the batches in hand");
    tokio::select! {
        () = listener.stop() => {}
        () = crate::dev::shutdown_signal() => {
            eprintln!("cfwh listen: exiting now; records in hand return after their visibility timeout");
            return Ok(ExitCode::from(130));
        }
    }
    eprintln!("cfwh listen: stopped");
    Ok(ExitCode::SUCCESS)
}
