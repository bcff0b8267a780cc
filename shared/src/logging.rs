//! Log set-up: structured JSON lines for Lambda, readable lines for `cfwh`, both to
//! stderr-like sinks so that `cfwh dev` keeps stdout for its record lines.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// `RUST_LOG` first (`info`, or `warn,cf_webhooks=debug`), then Lambda's own log-level
/// setting, then `info`. Targets and levels only: no regular expressions to compile at
/// a cold start.
fn filter() -> Targets {
    let level = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|| "info".into());
    level.parse().unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// JSON lines on stdout, one per event with its fields at the top level
/// (`{"timestamp":…,"level":"INFO","message":…,"payload_id":…}`), the form Lambda's JSON
/// log format filters by level and CloudWatch Logs Insights queries.
pub fn init_json() {
    let format = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    let _ = tracing_subscriber::registry().with(format.with_filter(filter())).try_init();
}

/// Human-readable lines on stderr, written by a background thread so that a slow
/// terminal never holds up an answer. Keep the guard until exit: dropping it flushes.
///
/// The Lambda functions log synchronously instead ([`init_json`]): Lambda freezes the
/// process as soon as an invocation returns, and a line still queued could be lost.
pub fn init_pretty() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let format = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = tracing_subscriber::registry().with(format.with_filter(filter())).try_init();
    guard
}

/// An error with its whole chain of causes (SDK and HTTP errors keep the useful part in
/// their sources), for logs, reasons and 503 answers.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
