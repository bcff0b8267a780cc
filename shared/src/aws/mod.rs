//! AWS adapters behind the crate's interfaces: SQS (publisher, dead-letter sink,
//! messages as records), DynamoDB (idempotency store), Secrets Manager (secret fetcher).
//! Each sits behind a cargo feature so a binary compiles only the clients it uses.

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod http;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "secrets-manager")]
pub mod secrets_manager;
#[cfg(feature = "sqs")]
pub mod sqs;

use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_types::region::Region;
use aws_types::SdkConfig;

use crate::config::{var, ConfigError};
use crate::error::{ErrorKind, ServiceError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

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

/// The AWS settings of a function inside Lambda, read from the variables Lambda sets:
/// `AWS_REGION`, and the execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
/// and `AWS_SESSION_TOKEN` (valid for the life of the execution environment), plus
/// `AWS_ENDPOINT_URL` when given (a local or test endpoint) and `CF_AWS_TLS_ROOTS`
/// ([`TlsRoots`]). Data only: [`LambdaAws::sdk_config`] builds the SDK's configuration.
///
/// The functions do not load `aws-config`'s provider chain (profiles, SSO, web identity,
/// IMDS, ECS): inside Lambda the credentials are in the environment, and the chain
/// would only make every bootstrap larger and its cold start longer. `cfwh` uses
/// [`loader`], which has it.
#[derive(Clone, PartialEq, Eq)]
pub struct LambdaAws {
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    endpoint: Option<String>,
    roots: TlsRoots,
}

impl std::fmt::Debug for LambdaAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaAws")
            .field("region", &self.region)
            .field("credentials", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .field("roots", &self.roots)
            .finish()
    }
}

impl LambdaAws {
    /// Reads the variables through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required =
            |name: &'static str| get(name).ok_or_else(|| ConfigError::new(name, "is not set (Lambda sets it)"));
        Ok(Self {
            roots: get(var::AWS_TLS_ROOTS).map_or(Ok(TlsRoots::Amazon), |r| TlsRoots::parse(&r))?,
            access_key_id: required("AWS_ACCESS_KEY_ID")?,
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            session_token: get("AWS_SESSION_TOKEN"),
            region: required("AWS_REGION")?,
            endpoint: get("AWS_ENDPOINT_URL"),
        })
    }

    /// The SDK configuration with the time `budget` applied: connect and per-attempt
    /// timeouts, bounded retries.
    pub fn sdk_config(&self, budget: Budget) -> SdkConfig {
        let credentials = Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "lambda-environment",
        );
        let mut config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .http_client(https_client(self.roots))
            .sleep_impl(TokioSleep::new())
            .timeout_config(timeouts(budget))
            .retry_config(retries(budget));
        if let Some(endpoint) = &self.endpoint {
            config = config.endpoint_url(endpoint);
        }
        config.build()
    }
}

/// The loader of `aws-config` (the whole provider chain: profiles, SSO, …) with the
/// same HTTPS client and time budget, for `cfwh` on a developer's machine.
#[cfg(feature = "aws-config")]
pub fn loader(budget: Budget) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(TlsRoots::System))
        .timeout_config(timeouts(budget))
        .retry_config(retries(budget))
}

fn timeouts(budget: Budget) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(budget.operation.min(Duration::from_millis(1000)))
        .operation_attempt_timeout(budget.operation / budget.attempts.max(1))
        .operation_timeout(budget.operation)
        .build()
}

fn retries(budget: Budget) -> RetryConfig {
    RetryConfig::standard().with_max_attempts(budget.attempts.max(1))
}

/// Which root certificates the AWS clients trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// Amazon Trust Services' five roots, compiled in: every AWS service endpoint chains
    /// to one of them. Nothing to read or parse from the disk at a cold start, and no
    /// other certificate authority can vouch for an AWS endpoint. The functions' default.
    Amazon,
    /// The platform's store (`SSL_CERT_FILE`, the system bundle): for an endpoint behind
    /// a proxy of your own (`AWS_ENDPOINT_URL`), and for `cfwh`.
    System,
}

/// The roots compiled in by [`TlsRoots::Amazon`].
pub const AMAZON_TRUST_SERVICES_ROOTS: &str = include_str!("amazon-trust-services.pem");

impl TlsRoots {
    /// `amazon` or `system`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "amazon" => Ok(Self::Amazon),
            "system" => Ok(Self::System),
            other => Err(ConfigError::new(var::AWS_TLS_ROOTS, format!("expected amazon or system, got {other:?}"))),
        }
    }
}

/// rustls on ring over HTTP/1.1 ([`http`]), trusting `roots`. (The SDK's default TLS
/// stack, aws-lc, doubles a bootstrap's size for the same TLS; its default client links
/// HTTP/2, which no endpoint we call needs.)
fn https_client(roots: TlsRoots) -> SharedHttpClient {
    let tls = match roots {
        TlsRoots::Amazon => {
            http::tls_config(Some(AMAZON_TRUST_SERVICES_ROOTS)).expect("the compiled-in roots are valid")
        }
        // No usable root at all: every call fails with a TLS error naming the host, which
        // is what the caller would see with an empty store anyway.
        TlsRoots::System => http::tls_config(None).unwrap_or_else(|e| {
            tracing::error!(error = %e, "no root certificates: TLS connections will fail");
            http::tls_config(Some("")).expect("an empty store is valid")
        }),
    };
    http::sdk_client(tls)
}

pub use crate::logging::describe;

/// The kind of an AWS SDK error: what its code names, else what its HTTP status says; a
/// call that never got an answer (timed out, unreachable, cut off) is `Transient`.
pub fn kind_of<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> ErrorKind {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
        SdkError::ConstructionFailure(_) => ErrorKind::Permanent,
        SdkError::ServiceError(service) => match service.err().code().map(ErrorKind::of_aws_code) {
            Some(kind) if kind != ErrorKind::Unknown => kind,
            _ => ErrorKind::of_status(service.raw().status().as_u16()),
        },
        _ => ErrorKind::Unknown,
    }
}

/// An AWS SDK error as a [`ServiceError`]: its kind and its whole chain of causes.
pub fn service_error<E>(error: &SdkError<E, HttpResponse>) -> ServiceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    ServiceError::new(kind_of(error), describe(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_roots_are_amazon_trust_services() {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(certs.len(), 5);
        // Building the client parses them as trust anchors (and would panic if one were not).
        let _ = https_client(TlsRoots::Amazon);
        assert_eq!(TlsRoots::parse(" Amazon ").unwrap(), TlsRoots::Amazon);
        assert_eq!(TlsRoots::parse("system").unwrap(), TlsRoots::System);
        assert_eq!(TlsRoots::parse("any").unwrap_err().var, "CF_AWS_TLS_ROOTS");
    }

    #[test]
    fn the_lambda_environment_is_enough_and_named_when_missing() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        let lambda = &[("AWS_REGION", "eu-west-1"), ("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")];
        let aws = LambdaAws::from_lookup(env(lambda)).unwrap();
        assert!(!format!("{aws:?}").contains("\"s\""), "the secret key is never shown");
        let config = aws.sdk_config(Budget::consumer());
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), None);
        let err = LambdaAws::from_lookup(env(&[("AWS_REGION", "eu-west-1")])).unwrap_err();
        assert_eq!(err.var, "AWS_ACCESS_KEY_ID");
        let err = LambdaAws::from_lookup(env(&[
            ("AWS_REGION", "r"),
            ("AWS_ACCESS_KEY_ID", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("CF_AWS_TLS_ROOTS", "x"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "CF_AWS_TLS_ROOTS");
    }
}
