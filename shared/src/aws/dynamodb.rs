//! The DynamoDB idempotency store: one item per `<group>#<PayloadId>`, claimed with a
//! conditional write (which returns the item it found when refused), completed with a
//! TTL, released by a conditional delete.
//!
//! Item: `pk` (S), `state` (`IN_PROGRESS` | `COMPLETED`), `lease_until` (N, epoch ms) and
//! `expires_at` (N, epoch seconds, the table's TTL attribute). DynamoDB deletes expired
//! items lazily, so every condition also treats them as absent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

use super::describe;
use crate::consumer::idempotency::{Claim, IdempotencyStore, StoreError};

/// The table's partition key (a string): `<group>#<PayloadId>`.
pub const PARTITION_KEY: &str = "pk";
/// The table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// A claim's state: `IN_PROGRESS` or `COMPLETED`.
pub const STATE: &str = "state";
/// The state of an applied event.
pub const COMPLETED: &str = "COMPLETED";
const IN_PROGRESS: &str = "IN_PROGRESS";

/// Idempotency in a DynamoDB table (on-demand, TTL on `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    lease: Duration,
    ttl: Duration,
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn n(value: u128) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl DynamoStore {
    /// A store in `table`: claims last `lease` (longer than the consumer's timeout),
    /// completions `ttl` (longer than the replay window).
    pub fn new(client: Client, table: impl Into<String>, lease: Duration, ttl: Duration) -> Self {
        Self { client, table: table.into(), lease, ttl }
    }

    /// Creates the table with TTL on, unless it exists (for `cfwh dev` and tests; the SAM
    /// template creates it when deployed).
    pub async fn create_table_if_missing(client: &Client, table: &str) -> Result<(), StoreError> {
        if client.describe_table().table_name(table).send().await.is_ok() {
            return Ok(());
        }
        let build = |e: aws_sdk_dynamodb::error::BuildError| StoreError(e.to_string());
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PARTITION_KEY)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PARTITION_KEY)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(build)?,
            )
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(())
    }
}

fn state_of(item: &std::collections::HashMap<String, AttributeValue>) -> Claim {
    match item.get(STATE).and_then(|s| s.as_s().ok()).map(String::as_str) {
        Some(COMPLETED) => Claim::Completed,
        // Gone or released meanwhile: the retry claims it.
        _ => Claim::InProgress,
    }
}

impl DynamoStore {
    async fn read_state(&self, key: &str) -> Result<Claim, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(found.item().map_or(Claim::InProgress, state_of))
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(&self, key: &str) -> Result<Claim, StoreError> {
        let now = now();
        let lease_until = (now + self.lease).as_millis();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .item(STATE, AttributeValue::S(IN_PROGRESS.into()))
            .item("lease_until", n(lease_until))
            .item(TTL_ATTRIBUTE, n((now + self.lease).as_secs().into()))
            .condition_expression(
                "attribute_not_exists(#pk) OR #ttl < :now_s OR (#state = :in_progress AND lease_until < :now_ms)",
            )
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":now_ms", n(now.as_millis()))
            .expression_attribute_values(":now_s", n(now.as_secs().into()))
            // A refused claim says what it found, so no second call has to read it.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(found)) => match found.item() {
                    Some(item) => Ok(state_of(item)),
                    // An endpoint that does not return the item (an older emulator): read it.
                    None => self.read_state(key).await,
                },
                _ => Err(StoreError(describe(&e))),
            },
        }
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .item(STATE, AttributeValue::S(COMPLETED.into()))
            .item(TTL_ATTRIBUTE, n((now() + self.ttl).as_secs().into()))
            .send()
            .await
            .map_err(|e| StoreError(describe(&e)))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(key.to_owned()))
            .condition_expression("#state = :in_progress")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed meanwhile, or already gone: nothing to release.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(StoreError(describe(&e))),
        }
    }
}
