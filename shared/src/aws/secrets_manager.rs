//! Webhook secrets from AWS Secrets Manager: a plain string, or a JSON list of strings
//! while rotating.

use aws_sdk_secretsmanager::Client;

use super::describe;
use crate::config::{RequiredHeader, RequiredHeaderStore, SecretStore};
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
    async fn fetch(&self) -> Result<SecretSet, String> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.store.arn)
            .send()
            .await
            .map_err(|e| format!("reading {}: {}", self.store.arn, describe(&e)))?;
        let text = output
            .secret_string()
            .ok_or_else(|| format!("{} has no string value (binary secrets are not supported)", self.store.arn))?;
        SecretSet::parse_stored(text, self.store.encoding).map_err(|e| format!("{}: {e}", self.store.arn))
    }
}

/// The string value of the secret `arn` (the forward secret), read once.
pub async fn read_text(client: &Client, arn: &str) -> Result<String, String> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| format!("reading {arn}: {}", describe(&e)))?;
    output.secret_string().map(str::to_owned).ok_or_else(|| format!("{arn} has no string value"))
}

/// The required header, its value read from `store.arn` (surrounding whitespace removed,
/// as HTTP removes it from a header's value). An empty value is refused at start-up: a
/// header anyone can send protects nothing.
pub async fn read_required_header(client: &Client, store: &RequiredHeaderStore) -> Result<RequiredHeader, String> {
    let text = read_text(client, &store.arn).await?;
    let value = text.trim();
    if value.is_empty() {
        return Err(format!("{} (the {} header's value) is empty", store.arn, store.name));
    }
    Ok(RequiredHeader::new(store.name.clone(), value.as_bytes()))
}
