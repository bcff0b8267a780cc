//! AWS adapters behind the crate's interfaces: SQS (publisher, dead-letter sink,
//! messages as records), DynamoDB (idempotency store), Secrets Manager (secret fetcher).
//! Each sits behind a cargo feature so a binary compiles only the clients it uses.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "secrets-manager")]
pub mod secrets_manager;
#[cfg(feature = "sqs")]
pub mod sqs;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// How long AWS calls may take, all retries included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Whole operation, retries included.
    pub operation: Duration,
    /// Attempts, the first included.
    pub attempts: u32,
}

impl Budget {
    /// The ack path's budget: an unreachable or slow queue must give a 503 well inside the
    /// sender's timeout, never a hang.
    pub fn ack(operation: Duration) -> Self {
        Self { operation, attempts: 2 }
    }

    /// The consumers' budget: they have minutes, not seconds.
    pub fn consumer() -> Self {
        Self { operation: Duration::from_secs(20), attempts: 3 }
    }
}

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`)
/// with the time budget applied: connect and per-attempt timeouts, bounded retries.
pub async fn sdk_config(budget: Budget) -> SdkConfig {
    loader(budget).load().await
}

/// The loader behind [`sdk_config`], to adjust before loading.
pub fn loader(budget: Budget) -> aws_config::ConfigLoader {
    let attempts = budget.attempts.max(1);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(budget.operation.min(Duration::from_millis(1000)))
        .operation_attempt_timeout(budget.operation / attempts)
        .operation_timeout(budget.operation)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
}

/// An SDK error with its whole chain of causes, for logs and 503 answers.
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
