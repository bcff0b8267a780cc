//! Webhook secrets from AWS Secrets Manager: a plain string, or a JSON list of strings
//! while rotating.

use aws_sdk_secretsmanager::Client;

use crate::config::{RequiredHeader, RequiredHeaderStore, SecretStore};
use crate::error::ServiceError;
use crate::secret::{SecretFetcher, SecretSet};

/// Reads one secret of Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManagerFetcher {
    client: Client,
    store: SecretStore,
}

impl SecretsManagerFetcher {
    /// A fetcher of `store.arn`.
    pub fn new(client: Client, store: SecretStore) -> Self {
        Self { client, store }
    }
}

#[async_trait::async_trait]
impl SecretFetcher for SecretsManagerFetcher {
    async fn fetch(&self) -> Result<SecretSet, ServiceError> {
        let text = read_text(&self.client, &self.store.arn).await?;
        SecretSet::parse_stored(&text, self.store.encoding)
            .map_err(|e| ServiceError::permanent(format!("{}: {e}", self.store.arn)))
    }
}

/// The string value of the secret `arn` (the forward secret), read once.
pub async fn read_text(client: &Client, arn: &str) -> Result<String, ServiceError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| super::service_error(&e).context(format_args!("reading {arn}")))?;
    output
        .secret_string()
        .map(str::to_owned)
        .ok_or_else(|| ServiceError::permanent(format!("{arn} has no string value (binary secrets are not supported)")))
}

/// The required header, its value read from `store.arn` (surrounding whitespace removed,
/// as HTTP removes it from a header's value). An empty value is refused at start-up: a
/// header anyone can send protects nothing.
pub async fn read_required_header(
    client: &Client,
    store: &RequiredHeaderStore,
) -> Result<RequiredHeader, ServiceError> {
    let text = read_text(client, &store.arn).await?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ServiceError::permanent(format!("{} (the {} header's value) is empty", store.arn, store.name)));
    }
    Ok(RequiredHeader::new(store.name.clone(), value.as_bytes()))
}
