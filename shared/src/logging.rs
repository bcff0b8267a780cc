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

/// Human-readable lines on stderr.
pub fn init_pretty() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
