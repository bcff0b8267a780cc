//! `cfwh groups`: the event groups and routes as the code defines them, with their
//! queues, variables and bootstraps, so that scripts ask the binary instead of copying
//! the list (`cfwh groups --json`).

use std::process::ExitCode;

use cf_webhooks::aws::dynamodb;
use cf_webhooks::config::var;
use cf_webhooks::events::{EventGroup, Route};
use cf_webhooks::message::attr;
use cf_webhooks::metrics::{self, name};
use cf_webhooks::stack::{self, queue_name, QueueType};
use serde_json::{json, Value};

/// `cfwh groups`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON (for scripts) instead of a table.
    #[arg(long)]
    json: bool,
    /// Queue names are <prefix>-<route> and <prefix>-<route>-dlq (a stack's name).
    #[arg(long, default_value = stack::DEFAULT_STACK)]
    queue_prefix: String,
    /// Name the FIFO queues (<prefix>-<route>.fifo), as `cfwh dev --fifo` and a stack
    /// with QueueType fifo have them.
    #[arg(long)]
    fifo: bool,
}

/// Everything a script needs to know of the groups and routes.
pub fn describe(queue_prefix: &str, queue_type: QueueType) -> Value {
    let routes: Vec<Value> = Route::ALL
        .into_iter()
        .map(|route| {
            let group = match route {
                Route::Group(group) => Some(group),
                Route::Unrouted => None,
            };
            json!({
                "route": route.as_str(),
                "group": group.map(EventGroup::as_str),
                "title": group.map(EventGroup::title),
                "queue": queue_name(queue_prefix, route, false, queue_type),
                "dead_letter_queue": queue_name(queue_prefix, route, true, queue_type),
                "queue_url_var": var::queue_url(route),
                "consumer": group.map(stack::consumer_function),
                "detail_types": group.map(cf_webhooks::events::detail_types),
            })
        })
        .collect();
    json!({
        "groups": EventGroup::ALL.map(EventGroup::as_str),
        "queue_type": queue_type.as_str(),
        "routes": routes,
        "bootstraps": { "ingest": stack::INGEST_BOOTSTRAP, "consumer": stack::CONSUMER_BOOTSTRAP },
        "idempotency_table": {
            "name": stack::idempotency_table(queue_prefix),
            "partition_key": dynamodb::PARTITION_KEY,
            "ttl_attribute": dynamodb::TTL_ATTRIBUTE,
            "state": dynamodb::STATE,
            "completed": dynamodb::COMPLETED,
        },
        "attributes": { "event_group": attr::EVENT_GROUP, "payload_id": attr::PAYLOAD_ID, "reason": attr::REASON },
        "max_receives": stack::DEFAULT_MAX_RECEIVES,
        "env": {
            "webhook_secret": var::WEBHOOK_SECRET,
            "webhook_secret_arn": var::WEBHOOK_SECRET_ARN,
            "required_header_name": var::REQUIRED_HEADER_NAME,
            "required_header_value_arn": var::REQUIRED_HEADER_VALUE_ARN,
            "event_group": var::EVENT_GROUP,
            "idempotency_table": var::IDEMPOTENCY_TABLE,
            "dlq_url": var::DLQ_URL,
            "stack": var::STACK,
            "metrics": var::METRICS,
            "destinations": var::DESTINATIONS,
            "archive_bucket": var::ARCHIVE_BUCKET,
            "archive_prefix": var::ARCHIVE_PREFIX,
            "forward_url": var::FORWARD_URL,
            "forward_secret": var::FORWARD_SECRET,
        },
        "archive": {
            "metadata": {
                "signature": cf_webhooks::archive::meta::SIGNATURE,
                "received_at": cf_webhooks::archive::meta::RECEIVED_AT,
                "action": cf_webhooks::archive::meta::ACTION,
            },
        },
        "metrics": {
            "namespace": metrics::NAMESPACE,
            "dimension": metrics::DIMENSION,
            "names": {
                "accepted": name::ACCEPTED, "rejected": name::REJECTED, "quarantined": name::QUARANTINED,
                "ignored": name::IGNORED, "processed": name::PROCESSED, "duplicates": name::DUPLICATES,
                "failed": name::FAILED, "dead_lettered": name::DEAD_LETTERED, "stale": name::STALE,
            },
        },
    })
}

/// Prints the table or the JSON.
pub fn run(args: Args) -> Result<ExitCode, String> {
    let queue_type = if args.fifo { QueueType::Fifo } else { QueueType::Standard };
    let described = describe(&args.queue_prefix, queue_type);
    if args.json {
        println!("{described}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<10} {:<28} {:<32} variable", "route", "queue", "dead-letter queue");
    for route in described["routes"].as_array().into_iter().flatten() {
        let text = |key: &str| route[key].as_str().unwrap_or_default().to_owned();
        println!(
            "{:<10} {:<28} {:<32} {}",
            text("route"),
            text("queue"),
            text("dead_letter_queue"),
            text("queue_url_var")
        );
    }
    Ok(ExitCode::SUCCESS)
}
