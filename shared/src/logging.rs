//! Log set-up: structured JSON lines for Lambda, readable lines for `cfwh`, both to
//! stderr-like sinks so that `cfwh dev` keeps stdout for its record lines.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    // `RUST_LOG` first, then Lambda's own log-level setting, then `info`.
    let level = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|| "info".into());
    EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// JSON lines on stdout, one per event with its fields at the top level
/// (`{"timestamp":…,"level":"INFO","message":…,"payload_id":…}`), the form Lambda's JSON
/// log format filters by level and CloudWatch Logs Insights queries.
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(filter())
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// Human-readable lines on stderr, written by a background thread so that a slow
/// terminal never holds up an answer. Keep the guard until exit: dropping it flushes.
///
/// The Lambda functions log synchronously instead ([`init_json`]): Lambda freezes the
/// process as soon as an invocation returns, and a line still queued could be lost.
pub fn init_pretty() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer)
        .try_init();
    guard
}
