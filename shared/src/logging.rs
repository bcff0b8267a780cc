//! Log set-up: structured JSON lines for Lambda, readable lines for `cfwh`, both to
//! stderr-like sinks so that `cfwh dev` keeps stdout for its record lines.

use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// What to log: `RUST_LOG` first (`info`, or `warn,cf_webhooks=debug`), then Lambda's
/// own log-level setting (`AWS_LAMBDA_LOG_LEVEL`), then `info`. Targets and levels only:
/// no regular expressions to compile at a cold start. Part of each entry point's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl Default for LogFilter {
    fn default() -> Self {
        Self("info".into())
    }
}

impl LogFilter {
    /// Reads `RUST_LOG`, then `AWS_LAMBDA_LOG_LEVEL`, through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        lookup("RUST_LOG")
            .or_else(|| lookup("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
            .map_or_else(Self::default, Self)
    }

    fn targets(&self) -> Targets {
        asked(&self.0)
    }
}

fn asked(level: &str) -> Targets {
    level.parse().unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// The dependencies that see raw requests: the Lambda runtime logs the whole invocation
/// event (the body, its signature, the custom header's value) at trace level, and the
/// HTTP and AWS clients log headers and bodies (a secret read from Secrets Manager, a
/// forward's signature) at debug and trace.
pub const RAW_REQUEST_TARGETS: [&str; 14] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_types",
    "aws_config",
    "aws_sigv4",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
];

/// Those dependencies at info at most, whatever `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`
/// say: our own code's trace level never writes a secret, theirs would.
fn capped() -> Targets {
    RAW_REQUEST_TARGETS
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, target| t.with_target(*target, LevelFilter::INFO))
}

/// Whether an event of `target` at `level` is written when `RUST_LOG` is `asked_for`.
pub fn writes(asked_for: &str, target: &str, level: tracing::Level) -> bool {
    asked(asked_for).would_enable(target, &level) && capped().would_enable(target, &level)
}

/// JSON lines on stdout, one per event with its fields at the top level
/// (`{"timestamp":…,"level":"INFO","message":…,"payload_id":…}`), the form Lambda's JSON
/// log format filters by level and CloudWatch Logs Insights queries.
pub fn init_json(filter: &LogFilter) {
    let format = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    let _ = tracing_subscriber::registry().with(format.with_filter(filter.targets().and(capped()))).try_init();
}

/// Human-readable lines on stderr, written by a background thread so that a slow
/// terminal never holds up an answer. Keep the guard until exit: dropping it flushes.
///
/// The Lambda functions log synchronously instead ([`init_json`]): Lambda freezes the
/// process as soon as an invocation returns, and a line still queued could be lost.
pub fn init_pretty(filter: &LogFilter) -> tracing_appender::non_blocking::WorkerGuard {
    // Buffered: the writer thread writes what has piled up in one call, flushed whenever
    // it has nothing more to write, rather than a write per line.
    let (writer, guard) =
        tracing_appender::non_blocking(std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr()));
    let format = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = tracing_subscriber::registry().with(format.with_filter(filter.targets().and(capped()))).try_init();
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_libraries_that_see_raw_requests_never_log_below_info() {
        assert!(!writes("trace", "lambda_runtime::layers::api_response", Level::TRACE), "the raw event");
        assert!(!writes("trace", "aws_smithy_runtime::client::orchestrator", Level::DEBUG));
        assert!(!writes("lambda_runtime=trace", "lambda_runtime", Level::DEBUG), "asked for by name too");
        assert!(writes("trace", "lambda_runtime", Level::INFO));
        assert!(!writes("warn", "lambda_runtime", Level::INFO), "a cap, never a raise");
        assert!(writes("trace", "cf_webhooks::ack", Level::TRACE), "our own code keeps its levels");
        assert!(writes("trace", "cfwh", Level::TRACE));
    }
}
